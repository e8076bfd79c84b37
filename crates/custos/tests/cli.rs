//! The `custos` binary end to end: what the README tells a newcomer to run.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

// Beside this file, not in tests/ itself, so that it stays in this binary.
#[path = "cli/rotate.rs"]
mod rotate;

#[path = "cli/cluster.rs"]
mod cluster;

const BIN: &str = env!("CARGO_BIN_EXE_custos");

/// Runs `custos` with `args`, asserts it succeeded, and returns its stdout.
fn run_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn help_names_the_commands() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in ["serve", "replay", "bench", "fraud"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn generate_then_replay_decides_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let mut ndjson = run_ok(&[
        "bench",
        "generate",
        "--events",
        "3000",
        "--accounts",
        "40",
        "--takeover-rate",
        "0.05",
    ]);
    ndjson.extend_from_slice(b"{\"event_id\": \"broken\"}\n");
    std::fs::write(&file, &ndjson).unwrap();
    let data = dir.path().join("data");
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "replay".as_ref(),
            file.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        serde_json::from_slice::<Value>(&run_ok(&args)).unwrap()
    };
    let summary = replay(&["--json", "--batch", "500"]);
    assert_eq!(summary["events"], 3000, "{summary}");
    assert_eq!(summary["rejected"], 1);
    assert!(
        summary["rejections"][0]
            .as_str()
            .unwrap()
            .contains("line 3001"),
        "{summary}"
    );
    let actions = summary["actions"].as_object().unwrap();
    assert!(
        actions["challenge"].as_u64().unwrap() > 0,
        "takeover logins are challenged: {summary}"
    );
    assert!(
        actions["hold"].as_u64().unwrap_or(0) + actions["review"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    assert!(summary["events_per_second"].as_f64().unwrap() > 0.0);
    // Replaying into the same data directory again: all duplicates.
    let again = replay(&["--json"]);
    assert_eq!(again["duplicates"], 3000, "{again}");
    assert_eq!(again["actions"], summary["actions"]);
}

#[test]
fn replay_rejects_events_from_the_future_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let sale = |id: &str, time: &str| {
        json!({"event_id": id, "type": "sale", "account_id": "seller-1", "time": time,
               "amount": 100, "currency": "GBP"})
        .to_string()
    };
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            sale("old", "2018-05-01T00:00:00Z"),
            sale("future", "9999-01-01T00:00:00Z")
        ),
    )
    .unwrap();
    let replay = |data: &str, extra: &[&str]| {
        let data = dir.path().join(data);
        let mut args = vec![
            "replay".as_ref(),
            file.as_os_str(),
            "--json".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        serde_json::from_slice::<Value>(&run_ok(&args)).unwrap()
    };
    let bounded = replay("bounded", &[]);
    assert_eq!(
        (bounded["events"].as_u64(), bounded["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    let why = bounded["rejections"][0].as_str().unwrap();
    assert!(
        why.starts_with("line 2: time: 9999-01-01T00:00:00Z is ")
            && why.contains("max_future_skew"),
        "{why}"
    );
    let unbounded = replay("unbounded", &["--no-time-bound"]);
    assert_eq!(
        (unbounded["events"].as_u64(), unbounded["rejected"].as_u64()),
        (Some(2), Some(0))
    );
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &std::path::Path, port: u16) -> Server {
    serve_with_env(data, port, &[])
}

/// `custos serve` on `data` and a loopback `port`, its output discarded;
/// callers add their environment or flags, then [`Server::spawn`] it.
fn serve_command(data: &std::path::Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

impl Server {
    fn spawn(command: &mut Command) -> Server {
        Server(command.spawn().unwrap())
    }
}

fn serve_with_env(data: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Server {
    Server::spawn(serve_command(data, port).envs(env.iter().copied()))
}

/// `method path` with the development key and a JSON body, once the
/// server on `port` answers (up to a minute: a loaded machine starts a
/// debug build slowly); the answer's JSON.
fn request(port: u16, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = custos_server::tls::client();
        for _ in 0..600 {
            if client
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut request = client
            .request(method, format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth("custos-dev-key");
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap().json::<Value>().await.unwrap()
    })
}

/// Sends `body` (an event or a batch) to `POST /v1/events`.
fn post(port: u16, body: &Value) -> Value {
    request(port, reqwest::Method::POST, "/v1/events", Some(body))
}

#[test]
fn serve_decides_stops_on_sigterm_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = serve(dir.path(), port);
    let history = json!({"event_id": "h1", "type": "login", "account_id": "seller-1", "time": "2018-05-01T08:00:00Z",
        "status": "success", "ip": "81.2.69.160", "device_id": "laptop", "session_id": "home"});
    assert_eq!(post(port, &history)["action"], "allow");
    let attack = json!([
        {"event_id": "a1", "type": "login", "account_id": "seller-1", "time": "2018-05-16T09:00:00Z",
         "status": "success", "ip": "185.220.101.4", "device_id": "unknown", "session_id": "x"},
        {"event_id": "a2", "type": "payout_destination_change", "account_id": "seller-1", "time": "2018-05-16T09:02:00Z",
         "session_id": "x", "destination": {"institution_id": "23-69-72", "institution_type": "e_money", "account_number": "12345678"}},
        {"event_id": "a3", "type": "payout", "account_id": "seller-1", "time": "2018-05-17T09:00:00Z",
         "payout_id": "p1", "amount": 250000, "currency": "GBP"}
    ]);
    let answers = post(port, &attack);
    let actions: Vec<&str> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["challenge", "hold", "hold"]);
    // SIGTERM: a clean stop, exit code 0.
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let server = serve(dir.path(), port);
    let again = post(port, &attack);
    assert_eq!(again[2]["action"], "hold");
    assert_eq!(again[2]["duplicate"], true);
    drop(server);
}

#[test]
fn evaluate_login_risk_reports_every_configuration_and_the_default_separates_attackers() {
    let out = run_ok(&[
        "evaluate",
        "login-risk",
        "--accounts",
        "150",
        "--days",
        "120",
        "--attacks",
        "60",
        "--warmup-days",
        "45",
        "--json",
    ]);
    let report: Value = serde_json::from_slice(&out).unwrap();
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), 4, "two mixtures, with and without device ids");
    let default = &report[0];
    assert_eq!(default["mixture"], "geometric");
    assert_eq!(default["attack_logins"]["naive"], 60);
    // At most 5% of legitimate logins challenged.
    let point = &default["operating_points"][1];
    assert!(
        point["legit_challenged"].as_f64().unwrap() <= 0.05,
        "{point}"
    );
    for model in ["naive", "vpn", "targeted"] {
        let detected = point["detected"][model].as_f64().unwrap();
        assert!(detected >= 0.9, "{model}: {detected} in {point}");
    }
}

#[test]
fn eval_login_risk_still_works_as_a_deprecated_alias_of_evaluate_login_risk() {
    let args = [
        "login-risk",
        "--accounts",
        "40",
        "--days",
        "60",
        "--attacks",
        "10",
        "--warmup-days",
        "20",
        "--json",
    ];
    let new = Command::new(BIN)
        .arg("evaluate")
        .args(args)
        .output()
        .unwrap();
    let old = Command::new(BIN).arg("eval").args(args).output().unwrap();
    assert!(new.status.success() && old.status.success());
    assert_eq!(
        String::from_utf8(new.stdout).unwrap(),
        String::from_utf8(old.stdout).unwrap()
    );
    let warned = String::from_utf8(old.stderr).unwrap();
    assert!(
        warned.contains("`custos eval` is deprecated; use `custos evaluate login-risk`"),
        "{warned}"
    );
    assert!(
        !String::from_utf8(new.stderr)
            .unwrap()
            .contains("deprecated")
    );
}

fn help(args: &[&str]) -> String {
    String::from_utf8(run_ok(&[args, &["--help"]].concat())).unwrap()
}

#[test]
fn evaluate_takes_a_history_or_the_login_risk_command_and_its_help_says_so() {
    let text = help(&["evaluate"]);
    assert!(
        text.contains("Usage: custos evaluate [OPTIONS] <FILE>")
            && text.contains("custos evaluate <COMMAND>")
            && text.contains("login-risk  Detection rate of the login-risk model")
            && text.contains("--compare <COMPARE>"),
        "{text}"
    );
    let text = help(&["evaluate", "login-risk"]);
    assert!(
        text.contains("Usage: custos evaluate login-risk [OPTIONS]")
            && text.contains("--warmup-days"),
        "{text}"
    );
    let text = help(&["eval", "login-risk"]);
    assert!(
        text.contains("Usage: custos eval login-risk [OPTIONS]") && text.contains("--warmup-days"),
        "{text}"
    );
    // `eval` is hidden from the main help, `evaluate` is not.
    let text = help(&[]);
    assert!(text.contains("  evaluate  "), "{text}");
    assert!(!text.contains("  eval  "), "{text}");

    let out = Command::new(BIN).arg("evaluate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("<FILE>"), "{err}");
    let out = Command::new(BIN)
        .args(["evaluate", "history.ndjson", "login-risk"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("the subcommand 'login-risk' cannot be used with '<FILE>'"),
        "{err}"
    );
}

#[test]
fn simulate_then_evaluate_writes_both_reports_and_prints_the_headline() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("small.ndjson");
    run_ok(&[
        "simulate".as_ref(),
        "--sellers".as_ref(),
        "200".as_ref(),
        "--days".as_ref(),
        "60".as_ref(),
        "--seed".as_ref(),
        "2".as_ref(),
        "--output".as_ref(),
        history.as_os_str(),
    ]);
    let out = String::from_utf8(run_ok(&[
        "evaluate".as_ref(),
        history.as_os_str(),
        "--no-responses".as_ref(),
    ]))
    .unwrap();
    assert!(
        out.starts_with("rules default (built-in) on small.ndjson: "),
        "{out}"
    );
    assert!(out.contains("stolen value stopped: "), "{out}");
    assert!(out.contains("campaign phishing-2018: "), "{out}");
    let json = dir.path().join("small.report.json");
    let html = dir.path().join("small.report.html");
    assert!(
        out.ends_with(&format!(
            "report: {} and {}\n",
            html.display(),
            json.display()
        )),
        "{out}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(report["input"], "small.ndjson");
    assert_eq!(report["responses"]["verifications_passed"], 0);
    assert!(
        report["headline"]["share_stolen_stopped"].is_number(),
        "{report}"
    );
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);
}

#[test]
fn rules_check_accepts_the_default_rules_and_shows_errors_with_a_caret() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
    let out = String::from_utf8(run_ok(&["rules", "check", rules])).unwrap();
    assert!(out.contains("rule set \"default\""), "{out}");
    assert!(
        out.contains("high_login_risk")
            && out.contains("reads event.login.status, login.first, login.risk"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{rules}/ruleset.toml"),
        dir.path().join("ruleset.toml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    for list in ["denied_destinations.txt", "blocked_ips.txt"] {
        std::fs::write(dir.path().join("lists").join(list), "").unwrap();
    }
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rule]]\nid = \"typo\"\nwhen = \"session.risky && destination.age < 7x\"\naction = \"hold\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("rule `typo`: when (line 1, column 36)"),
        "{err}"
    );
    assert!(err.contains("`7x` is not a valid duration"), "{err}");
    assert!(
        err.contains("|                                    ^^"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_rules_dir_that_removes_protection_unless_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A first start installs the built-in default as version 1.
    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    run_ok(&[
        "replay".as_ref(),
        empty.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]);
    // A rules directory with a login rule only: no payout holds, no lists.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("ruleset.toml"), "name = \"logins-only\"\n").unwrap();
    std::fs::write(
        rules.join("login.toml"),
        "[[rule]]\nid = \"risky_login\"\nevents = [\"login\"]\nwhen = \"login.risk > 3\"\naction = \"challenge\"\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = |extra: &[&str]| {
        Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data)
            .arg("--rules")
            .arg(&rules)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut refused = start(&[]);
    let status = (0..300)
        .find_map(|_| {
            let status = refused.try_wait().unwrap();
            if status.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            status
        })
        .unwrap_or_else(|| {
            let _ = refused.kill();
            panic!("serve started with rules that remove protection");
        });
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("the configured rules were not installed over version 1")
            && stderr.contains("protection:payout")
            && stderr.contains("list:denied_destinations")
            && stderr.contains("--confirm-removal"),
        "{stderr}"
    );

    let mut args = Vec::new();
    for item in [
        "protection:payout",
        "protection:loan_disbursement",
        "list:blocked_ips",
        "list:denied_destinations",
    ] {
        args.extend(["--confirm-removal", item]);
    }
    args.extend([
        "--override-reason",
        "logins only on this staging host",
        "--override-analyst",
        "ops-ana",
    ]);
    let _server = Server(start(&args));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let version: Value = rt.block_on(async {
        let client = custos_server::tls::client();
        for _ in 0..300 {
            if let Ok(response) = client
                .get(format!("http://127.0.0.1:{port}/v1/rules/2"))
                .bearer_auth("custos-dev-key")
                .send()
                .await
            {
                return response.json().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve did not start with the removal confirmed");
    });
    assert_eq!(version["source"]["name"], "logins-only", "{version}");
    let audit = &version["removal_override"];
    assert_eq!(
        (&audit["via"], &audit["analyst"], &audit["reason"]),
        (
            &json!("rules_dir"),
            &json!("ops-ana"),
            &json!("logins only on this staging host")
        ),
        "{version}"
    );
}

/// The README's first commands, as a newcomer types them (run in an empty
/// directory), at a small size: `custos demo`, then `custos simulate ... >
/// events.ndjson` and `custos evaluate events.ndjson`.
#[test]
fn the_readmes_demo_simulate_and_evaluate_run_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let run_in = |args: &[&str], stdout: Stdio| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "custos {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };

    // "It prints the share of the stolen value stopped (and how much of it
    // by a step-up the attacker failed), the share of honest payouts held
    // and their median delay, and the honest logins challenged, and writes
    // `custos-demo/seller-phishing-2018.report.html`. [...] `custos
    // evaluate --no-responses custos-demo/seller-phishing-2018.ndjson` [...]
    // shows [at which victim the campaign was detected]."
    let out = run_in(
        &["demo", "--sellers", "300", "--days", "90"],
        Stdio::piped(),
    );
    for said in [
        "stolen value stopped: ",
        "by a failed step-up",
        "legitimate payouts held: ",
        "median delay ",
        "legitimate logins challenged: ",
    ] {
        assert!(out.contains(said), "demo does not print {said:?}:\n{out}");
    }
    let open = run_in(
        &[
            "evaluate",
            "--no-responses",
            "custos-demo/seller-phishing-2018.ndjson",
        ],
        Stdio::piped(),
    );
    assert!(
        open.contains("campaign phishing-2018: detected at victim "),
        "{open}"
    );
    let page = std::fs::read_to_string(
        dir.path()
            .join("custos-demo/seller-phishing-2018.report.html"),
    )
    .unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);

    // `custos simulate ... > events.ndjson`: the history goes to stdout.
    let events = std::fs::File::create(dir.path().join("events.ndjson")).unwrap();
    run_in(
        &[
            "simulate",
            "--sellers",
            "200",
            "--days",
            "60",
            "--seed",
            "1",
            "--scenario",
            "seller-phishing-2018",
        ],
        Stdio::from(events),
    );
    let history = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let lines = history.lines().count();
    assert!(lines > 1_000, "{lines} events");
    for line in history.lines().take(100) {
        let event: Value = serde_json::from_str(line).unwrap();
        assert!(event["event_id"].is_string(), "{event}");
    }
    let out = run_in(&["evaluate", "events.ndjson"], Stdio::piped());
    assert!(
        out.starts_with(&format!(
            "rules default (built-in) on events.ndjson: {lines} events in "
        )),
        "{out}"
    );
    assert!(out.contains("stolen value stopped: "), "{out}");
    assert!(
        out.ends_with("report: events.report.html and events.report.json\n"),
        "{out}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("events.report.json")).unwrap())
            .unwrap();
    assert_eq!(report["events"]["read"], lines as u64, "{report}");
}

/// A server on `data` whose keys come from the environment, kept apart from
/// the data directory (what a backup that is to be restored elsewhere
/// needs).
fn serve_with_external_keys(data: &std::path::Path, port: u16) -> Server {
    serve_with_env(
        data,
        port,
        &[
            ("CUSTOS_TOKEN_KEY", "backup-test-token-key-0123456789"),
            ("CUSTOS_PII_KEY", "backup-test-pii-key-0123456789"),
        ],
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Clients that send events to `POST /v1/events` without pause, one
/// thread each, and record every event a server acknowledged with its
/// answer. A refused or cut-off request (a server down or restarting) is no
/// acknowledgement: the client waits a moment, moves to the next of the
/// servers' ports (if there are several) and sends its next event. Refusals
/// with an HTTP status are kept too.
struct Load {
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<(Value, Value)>>>,
    refused: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `clients` threads; client `c` sends `event(c, 1)`, `event(c, 2)`, ...
    fn start(port: u16, clients: usize, event: fn(usize, u64) -> Value) -> Load {
        Load::start_on(vec![port], clients, event)
    }

    /// [`Load::start`] over several servers; client `c` starts on port `c`.
    fn start_on(ports: Vec<u16>, clients: usize, event: fn(usize, u64) -> Value) -> Load {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        let acknowledged: Arc<std::sync::Mutex<Vec<(Value, Value)>>> = Arc::default();
        let refused: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let clients = (0..clients)
            .map(|client| {
                let acknowledged = Arc::clone(&acknowledged);
                let refused = Arc::clone(&refused);
                let stop = Arc::clone(&stop);
                let ports = ports.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let http = custos_server::tls::client();
                        let mut target = client;
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            let event = event(client, n);
                            let port = ports[target % ports.len()];
                            let sent = http
                                .post(format!("http://127.0.0.1:{port}/v1/events"))
                                .bearer_auth("custos-dev-key")
                                .json(&event)
                                .timeout(Duration::from_secs(30))
                                .send()
                                .await;
                            let answer = match sent {
                                Ok(answer) if answer.status().is_success() => {
                                    answer.json::<Value>().await.ok()
                                }
                                Ok(answer) => {
                                    let status = answer.status();
                                    let body = answer.text().await.unwrap_or_default();
                                    refused
                                        .lock()
                                        .unwrap()
                                        .push(format!("port {port}: {status} {body}"));
                                    None
                                }
                                Err(_) => None,
                            };
                            match answer {
                                Some(answer) => acknowledged.lock().unwrap().push((event, answer)),
                                None => {
                                    target += 1;
                                    tokio::time::sleep(Duration::from_millis(20)).await;
                                }
                            }
                        }
                    });
                })
            })
            .collect();
        Load {
            acknowledged,
            refused,
            stop,
            clients,
        }
    }

    fn acknowledged_count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Requests answered with an error status so far.
    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }

    fn acknowledged_ids(&self) -> Vec<String> {
        self.acknowledged
            .lock()
            .unwrap()
            .iter()
            .map(|(event, _)| event["event_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits (up to `within`) until `more` events more are acknowledged.
    fn wait_for_more(&self, more: usize, within: Duration) {
        let target = self.acknowledged_count() + more;
        let deadline = std::time::Instant::now() + within;
        while self.acknowledged_count() < target && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the clients and returns every acknowledged event with its answer.
    fn stop(self) -> Vec<(Value, Value)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        std::mem::take(&mut *self.acknowledged.lock().unwrap())
    }
}

#[test]
fn a_backup_taken_under_load_restores_every_event_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let _server = serve_with_external_keys(&data, port);
    let added = Command::new(BIN)
        .args(["users", "add", "ana", "--role", "analyst", "--data-dir"])
        .arg(&data)
        .env("CUSTOS_PASSWORD", "a long enough password")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    post(
        port,
        &json!({"event_id": "warm-up", "type": "login", "account_id": "seller-0",
        "time": "2018-05-01T08:00:00Z", "status": "success", "ip": "81.2.69.160"}),
    );
    // Three clients send logins and payouts without pause, each recording
    // the ids the server acknowledged.
    let load = Load::start(port, 3, |client, n| {
        let id = format!("c{client}-{n}");
        let account = format!("seller-{client}-{}", n % 50);
        if n.is_multiple_of(3) {
            json!({"event_id": id, "type": "payout", "account_id": account,
                   "time": "2018-05-02T08:00:00Z", "payout_id": id, "amount": 1000, "currency": "GBP"})
        } else {
            json!({"event_id": id, "type": "login", "account_id": account,
                   "time": "2018-05-02T08:00:00Z", "status": "success", "ip": "81.2.69.160"})
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    let before: Vec<String> = load.acknowledged_ids();
    let backup = dir.path().join("custos.backup");
    let out = run_ok(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        backup.as_os_str(),
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let after = load.stop().len();
    assert!(before.len() > 30, "too little load: {}", before.len());
    assert!(
        after > before.len(),
        "the server kept deciding during the backup"
    );
    let said = String::from_utf8_lossy(&out);
    assert!(
        said.contains("the token and PII keys are not in it"),
        "{said}"
    );

    // Restored into an empty data directory and served: every event
    // acknowledged before the backup began is there, with its decision.
    let restored = dir.path().join("restored");
    run_ok(&[
        "restore".as_ref(),
        backup.as_os_str(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ]);
    // The console's users (and audit trail) came back with the log.
    let listed = run_ok(&[
        "users".as_ref(),
        "list".as_ref(),
        "--data-dir".as_ref(),
        restored.as_os_str(),
    ]);
    assert!(
        String::from_utf8_lossy(&listed).starts_with("ana\tanalyst"),
        "{}",
        String::from_utf8_lossy(&listed)
    );
    let refused = Command::new(BIN)
        .args([
            "restore".as_ref(),
            backup.as_os_str(),
            "--data-dir".as_ref(),
            restored.as_os_str(),
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already holds a database"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let port = free_port();
    let _copy = serve_with_external_keys(&restored, port);
    post(
        port,
        &json!({"event_id": "after-restore", "type": "login", "account_id": "seller-0",
        "time": "2018-05-03T08:00:00Z", "status": "success", "ip": "81.2.69.160"}),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let missing: Vec<String> = rt.block_on(async {
        let http = custos_server::tls::client();
        let mut missing = Vec::new();
        for id in &before {
            let answer = http
                .get(format!("http://127.0.0.1:{port}/v1/events/{id}"))
                .bearer_auth("custos-dev-key")
                .send()
                .await
                .unwrap();
            let found = answer.status().is_success()
                && answer
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["decision"]["action"].is_string());
            if !found {
                missing.push(id.clone());
            }
        }
        missing
    });
    assert!(
        missing.is_empty(),
        "{} of {} missing, e.g. {:?}",
        missing.len(),
        before.len(),
        &missing[..missing.len().min(5)]
    );
}

/// The server's `GET /metrics` (no key on loopback), or `None` when it
/// does not answer.
fn metrics_text(port: u16) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        custos_server::tls::client()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    })
}

/// Waits (up to a minute: a loaded machine starts a debug build slowly)
/// until the server on `port` answers `/readyz` with 200.
fn wait_ready(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ready = rt.block_on(async {
        let http = custos_server::tls::client();
        for _ in 0..600 {
            let answer = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(ready, "the server on port {port} never became ready");
}

/// One client's `n`-th event: a seller's logins from home, a bank change
/// from a new device every so often, and payouts after it, so that the
/// stream holds allows, challenges and holds.
fn load_event(client: usize, n: u64) -> Value {
    let account = format!("k{client}-{}", n % 25);
    let id = format!("k{client}-{n}");
    // One event a minute from 2018-05-01T08:00Z (a run sends far fewer
    // than a month's worth).
    let minutes = 8 * 60 + n;
    let time = format!(
        "2018-05-{:02}T{:02}:{:02}:00Z",
        1 + minutes / 1440,
        minutes % 1440 / 60,
        minutes % 60
    );
    match n % 8 {
        5 => json!({"event_id": id, "type": "login", "account_id": account, "time": time,
                    "status": "success", "ip": "185.220.101.4", "device_id": "box", "session_id": format!("x{n}")}),
        6 => {
            json!({"event_id": id, "type": "payout_destination_change", "account_id": account, "time": time,
                    "session_id": format!("x{}", n - 1),
                    "destination": {"institution_id": "23-69-72", "institution_type": "e_money",
                                    "account_number": format!("4000{:04}", n % 7)}})
        }
        3 | 7 => json!({"event_id": id, "type": "payout", "account_id": account, "time": time,
                        "payout_id": id, "amount": 25_000 + n, "currency": "GBP"}),
        _ => json!({"event_id": id, "type": "login", "account_id": account, "time": time,
                    "status": "success", "ip": "81.2.69.160", "device_id": "laptop", "session_id": format!("h{n}")}),
    }
}

/// Issue 20's crash test: several clients send without pause while the
/// server is killed with SIGKILL at random moments and restarted on the same
/// data directory. Every event the server acknowledged is stored afterwards
/// with the decision it was answered with, and sending it again is a
/// duplicate with that same decision.
#[test]
fn acknowledged_events_survive_kill_9_under_load_with_their_decisions() {
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = serve(&data, port);
    post(
        port,
        &json!({"event_id": "warm-up", "type": "login", "account_id": "seller-0",
        "time": "2018-05-01T07:00:00Z", "status": "success", "ip": "81.2.69.160"}),
    );
    let load = Load::start(port, 4, load_event);
    // Kill moments drawn from the clock, printed so a failure can be told
    // apart from a lucky run.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut kills = Vec::new();
    let mut seen = 0;
    for _ in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = 400 + seed % 1200;
        wait_ready(port);
        std::thread::sleep(Duration::from_millis(wait));
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        let now = load.acknowledged_count();
        kills.push((wait, now));
        assert!(now > seen, "no event acknowledged before kill {kills:?}");
        seen = now;
        server = serve(&data, port);
    }
    // Load continues on the restarted server before the clients stop.
    wait_ready(port);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while load.acknowledged_count() < seen + 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let acknowledged: HashMap<String, (Value, Value)> = load
        .stop()
        .into_iter()
        .map(|(event, answer)| {
            let id = event["event_id"].as_str().unwrap().to_owned();
            (id, (event, answer))
        })
        .collect();
    assert!(
        acknowledged.len() > seen,
        "the restarted server decided nothing: {kills:?}"
    );
    let holds = acknowledged
        .values()
        .filter(|(_, answer)| answer["action"] == "hold")
        .count();
    assert!(holds > 0, "the load produced no hold to check");
    eprintln!(
        "{} events acknowledged ({holds} holds); kills after (ms, acknowledged so far): {kills:?}",
        acknowledged.len()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let problems: Vec<String> = rt.block_on(async {
        let http = custos_server::tls::client();
        let mut problems = Vec::new();
        for (id, (event, answer)) in &acknowledged {
            let stored = http
                .get(format!("http://127.0.0.1:{port}/v1/events/{id}"))
                .bearer_auth("custos-dev-key")
                .send()
                .await
                .unwrap();
            if !stored.status().is_success() {
                problems.push(format!("{id}: not stored ({})", stored.status()));
                continue;
            }
            let stored: Value = stored.json().await.unwrap();
            let decision = &stored["decision"];
            if decision["action"] != answer["action"] || decision["reasons"] != answer["reasons"] {
                problems.push(format!(
                    "{id}: answered {} {}, stored {} {}",
                    answer["action"], answer["reasons"], decision["action"], decision["reasons"]
                ));
            }
            // Every tenth is sent again: a duplicate, answered the same way.
            if id.ends_with('0') {
                let again: Value = http
                    .post(format!("http://127.0.0.1:{port}/v1/events"))
                    .bearer_auth("custos-dev-key")
                    .json(event)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if again["duplicate"] != true || again["action"] != answer["action"] {
                    problems.push(format!("{id}: sent again, answered {again}"));
                }
            }
        }
        problems
    });
    assert!(
        problems.is_empty(),
        "{} of {} acknowledged events differ after kills {kills:?}: {:?}",
        problems.len(),
        acknowledged.len(),
        &problems[..problems.len().min(5)]
    );
}

/// Every custos metric the alerting rules and the dashboard under deploy/
/// name is exported by a running server once it has decided some events: no
/// alert or panel on a series that does not exist.
#[test]
fn every_metric_the_alerts_and_the_dashboard_read_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = serve(dir.path(), port);
    let history = json!([
        {"event_id": "h1", "type": "login", "account_id": "seller-1", "time": "2018-05-01T08:00:00Z",
         "status": "success", "ip": "81.2.69.160", "device_id": "laptop", "session_id": "home"},
        {"event_id": "a1", "type": "login", "account_id": "seller-1", "time": "2018-05-16T09:00:00Z",
         "status": "success", "ip": "185.220.101.4", "device_id": "unknown", "session_id": "x"},
        {"event_id": "a2", "type": "payout_destination_change", "account_id": "seller-1", "time": "2018-05-16T09:02:00Z",
         "session_id": "x", "destination": {"institution_id": "23-69-72", "institution_type": "e_money", "account_number": "12345678"}},
        {"event_id": "a3", "type": "payout", "account_id": "seller-1", "time": "2018-05-17T09:00:00Z",
         "payout_id": "p1", "amount": 250000, "currency": "GBP"}
    ]);
    post(port, &history);
    let exported = metrics_text(port).expect("/metrics answers");
    let exported: std::collections::BTreeSet<&str> = exported
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/");
    let mut named = std::collections::BTreeSet::new();
    for file in ["prometheus/alerts.yml", "grafana/custos-dashboard.json"] {
        let text = std::fs::read_to_string(format!("{root}{file}")).unwrap();
        for (at, _) in text.match_indices("custos_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            // Words like "custos_fraud" in prose would show up here too; the
            // files name only metrics.
            named.insert((file, name));
        }
    }
    assert!(named.len() > 10, "{named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|(_, name)| !exported.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:?}\nexported: {exported:?}"
    );
}

/// `custos users ... ` with `stdin` as standard input and no
/// `CUSTOS_PASSWORD`: (success, stdout, stderr).
fn users(data: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(BIN)
        .arg("users")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CUSTOS_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn users_are_added_with_a_password_from_stdin_listed_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = users(
        &data,
        &["add", "ana", "--role", "analyst"],
        "a long password here\n",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "added ana (analyst)");
    let (ok, _, err) = users(
        &data,
        &["add", "ana", "--role", "lead"],
        "a long password here\n",
    );
    assert!(!ok && err.contains("exists already"), "{err}");
    let (ok, _, err) = users(
        &data,
        &["add", "bob", "--role", "boss"],
        "a long password here\n",
    );
    assert!(!ok && err.contains("--role"), "{err}");
    let (ok, _, err) = users(&data, &["add", "bob", "--role", "lead"], "short\n");
    assert!(!ok && err.contains("at least 12"), "{err}");
    let (ok, _, err) = users(&data, &["add", "bob", "--role", "lead"], "");
    assert!(!ok && err.contains("no password"), "{err}");
    // The password is never a flag.
    let (ok, _, _) = users(
        &data,
        &[
            "add",
            "bob",
            "--role",
            "lead",
            "--password",
            "a long password here",
        ],
        "",
    );
    assert!(!ok);
    let (ok, _, err) = users(&data, &["disable", "ana"], "");
    assert!(ok, "{err}");
    let (_, out, _) = users(&data, &["list"], "");
    assert_eq!(out, "ana\tanalyst\tdisabled\n");
    let (ok, _, err) = users(&data, &["reset-password", "nobody"], "another long one\n");
    assert!(!ok && err.contains("no user"), "{err}");
}

/// The contents of one file of an evidence pack.
fn pack_file(pack: &[u8], name: &str) -> String {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(pack);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == name {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return text;
        }
    }
    panic!("{name} is not in the pack");
}

fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The demo's campaign, replayed open loop (no platform responses) into a
/// data directory: its pack names every victim of the scenario and no
/// honest seller, its sums are the engine's, it verifies until a byte
/// changes, and the platform's own numbers find the mule destination.
#[test]
fn the_demo_campaigns_evidence_pack_names_its_victims_verifies_and_matches_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("events.ndjson");
    let ndjson = run_ok(&[
        "simulate",
        "--sellers",
        "400",
        "--days",
        "60",
        "--seed",
        "1",
        "--scenario",
        "seller-phishing-2018",
    ]);
    std::fs::write(&history, &ndjson).unwrap();
    let data = dir.path().join("data");
    run_ok(&[
        "replay".as_ref(),
        history.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--no-time-bound".as_ref(),
    ]);
    let pack_path = dir.path().join("cmp_1.tar");
    let export = |campaign: &str, out: &std::path::Path| {
        Command::new(BIN)
            .args(["evidence", "export", "--campaign", campaign, "--out"])
            .arg(out)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let missing = export("cmp_999", &dir.path().join("none.tar"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no campaign with id \"cmp_999\""));
    let out = export("cmp_1", &pack_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pack = std::fs::read(&pack_path).unwrap();

    // Ground truth: the sellers the scenario attacked, and the mule
    // destinations' numbers as the platform knows them.
    let mut attacked = std::collections::BTreeSet::new();
    let mut mule_numbers = std::collections::BTreeSet::new();
    for line in String::from_utf8(ndjson).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        if event["truth"]["fraud"] == true {
            attacked.insert(event["account_id"].as_str().unwrap().to_string());
            if event["type"] == "payout_destination_change" {
                let d = &event["destination"];
                mule_numbers.insert((
                    d["institution_id"].as_str().unwrap().to_string(),
                    d["account_number"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert!(!attacked.is_empty() && !mule_numbers.is_empty());
    let victims = csv_rows(&pack_file(&pack, "victims.csv"));
    let in_pack: std::collections::BTreeSet<String> =
        victims.iter().map(|v| v["account_id"].clone()).collect();
    assert_eq!(
        in_pack, attacked,
        "victims.csv against the scenario's truth"
    );
    let events = pack_file(&pack, "events.ndjson");
    for line in events.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            attacked.contains(v["account_id"].as_str().unwrap()),
            "{line}"
        );
    }

    // The sums agree with each other and with what the engine counted:
    // the engine keeps a campaign's money from each member's first risky
    // change on, as held (decided hold or block, not released since) or
    // paid (decided below hold, or a hold released), and takes out a
    // member's money when a `legit` label clears it.
    let manifest: Value = serde_json::from_str(&pack_file(&pack, "manifest.json")).unwrap();
    let cleared: std::collections::BTreeSet<&str> = victims
        .iter()
        .filter(|v| v["cleared"] == "yes")
        .map(|v| v["account_id"].as_str())
        .collect();
    let trail = csv_rows(&pack_file(&pack, "money-trail.csv"));
    let counted: Vec<_> = trail
        .iter()
        .filter(|r| r["after_risky_change"] == "yes" && !cleared.contains(r["account_id"].as_str()))
        .collect();
    let withheld = |r: &&std::collections::HashMap<String, String>| {
        (r["decision"] == "hold" || r["decision"] == "block") && r["fate"] != "released"
    };
    let amount =
        |r: &&std::collections::HashMap<String, String>| r["amount_minor"].parse::<u64>().unwrap();
    let held: u64 = counted.iter().filter(|r| withheld(r)).map(amount).sum();
    let paid: u64 = counted.iter().filter(|r| !withheld(r)).map(amount).sum();
    assert_eq!(
        (held, paid),
        (
            manifest["engine_money"]["EUR"]["held"].as_u64().unwrap(),
            manifest["engine_money"]["EUR"]["paid"]
                .as_u64()
                .unwrap_or(0)
        ),
        "money-trail.csv (held, paid) against the engine's campaign money"
    );
    let sum = |rows: &[std::collections::HashMap<String, String>], column: &str| -> u64 {
        rows.iter().map(|r| r[column].parse::<u64>().unwrap()).sum()
    };
    let by_institution = csv_rows(&pack_file(&pack, "by-institution.csv"));
    for column in ["paid_minor", "held_minor", "stopped_minor"] {
        assert_eq!(
            sum(&victims, column),
            sum(&by_institution, column),
            "{column}"
        );
    }
    assert!(sum(&victims, "taken_minor") + sum(&victims, "stopped_minor") > 0);

    // Verification passes with the data directory's key, and fails when
    // any one byte changes.
    let key = String::from_utf8(run_ok(&[
        "evidence".as_ref(),
        "public-key".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]))
    .unwrap();
    let verify = |path: &std::path::Path| {
        Command::new(BIN)
            .args(["evidence", "verify"])
            .arg(path)
            .args(["--public-key", key.trim()])
            .output()
            .unwrap()
    };
    let ok = verify(&pack_path);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let tampered_path = dir.path().join("tampered.tar");
    // A byte in the middle of events.ndjson's data (not the tar padding).
    let at = {
        let mut archive = tar::Archive::new(pack.as_slice());
        let entry = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_string_lossy() == "events.ndjson")
            .unwrap();
        (entry.raw_file_position() + entry.size() / 2) as usize
    };
    let mut tampered = pack.clone();
    tampered[at] ^= 0x20;
    std::fs::write(&tampered_path, &tampered).unwrap();
    let bad = verify(&tampered_path);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("FAILED  events.ndjson"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );

    // The campaign's case, exported offline: its accounts are victims, and
    // its events are theirs only; an unknown case is refused.
    let case_pack_path = dir.path().join("case.tar");
    let export_case = |case: &str, out: &std::path::Path| {
        Command::new(BIN)
            .args(["evidence", "export", "--case", case, "--out"])
            .arg(out)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let missing = export_case("case-nope", &dir.path().join("none.tar"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no case with id \"case-nope\""));
    let out = export_case("campaign-cmp_1", &case_pack_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let case_pack = std::fs::read(&case_pack_path).unwrap();
    let ok = verify(&case_pack_path);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let case_manifest: Value =
        serde_json::from_str(&pack_file(&case_pack, "manifest.json")).unwrap();
    assert_eq!(case_manifest["scope"]["kind"], "case");
    assert_eq!(case_manifest["scope"]["id"], "campaign-cmp_1");
    let case_accounts: std::collections::BTreeSet<String> = case_manifest["scope"]["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        !case_accounts.is_empty() && case_accounts.is_subset(&attacked),
        "{case_accounts:?}"
    );
    for line in pack_file(&case_pack, "events.ndjson").lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            case_accounts.contains(v["account_id"].as_str().unwrap()),
            "{line}"
        );
    }
    for row in csv_rows(&pack_file(&case_pack, "money-trail.csv")) {
        assert!(case_accounts.contains(&row["account_id"]), "{row:?}");
    }

    // The platform's numbers find the mule destinations; the numbers are
    // not echoed.
    let numbers = dir.path().join("numbers.csv");
    let mut list = String::from("institution_id,account_number\n");
    for (institution, number) in &mule_numbers {
        list.push_str(&format!("{institution},{number}\n"));
    }
    list.push_str("BANKXX99,00001234567\n");
    std::fs::write(&numbers, &list).unwrap();
    let matched = String::from_utf8(run_ok(&[
        "tokens".as_ref(),
        "match".as_ref(),
        "--numbers".as_ref(),
        numbers.as_os_str(),
        "--pack".as_ref(),
        pack_path.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
    ]))
    .unwrap();
    let rows = csv_rows(&matched);
    assert_eq!(rows.len(), mule_numbers.len() + 1, "{matched}");
    for (row, (_, number)) in rows.iter().zip(&mule_numbers) {
        assert_eq!(row["in_pack"], "yes", "{matched}");
        assert!(!matched.contains(number.as_str()));
    }
    assert_eq!(rows.last().unwrap()["in_pack"], "no");
}

/// The value of `name="csrf" value="..."` in a page.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a csrf field") + marker.len();
    let end = start + page[start..].find('"').expect("closed");
    page[start..end].to_string()
}

#[test]
fn demo_serve_loads_the_marketplace_and_a_newcomer_logs_in_to_a_full_queue() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args(["demo", "--serve", "--sellers", "300", "--days", "60"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--out"])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut password = None;
    // Kept open to the end: a closed pipe would fail the server's next print.
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("log in as lead with password ") {
            password = Some(rest.trim().to_string());
            break;
        }
    }
    let password = password.expect("the demo prints a login");
    assert!(password.len() >= 32, "{password}");
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = custos_server::tls::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // The server rebuilds its state from the loaded log as it starts:
        // under load that takes a while.
        for _ in 0..1_800 {
            let ready = client.get(format!("{base}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let cookie_of = |r: &reqwest::Response| {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
                .find(|c| !c.ends_with('='))
                .expect("a cookie")
        };
        let form = client
            .get(format!("{base}/console/login"))
            .send()
            .await
            .unwrap();
        let login_cookie = cookie_of(&form);
        let csrf = csrf_of(&form.text().await.unwrap());
        let logged = client
            .post(format!("{base}/console/login"))
            .header("cookie", login_cookie)
            .header("origin", &base)
            .header("content-type", "application/x-www-form-urlencoded")
            // The password and token are hex: nothing to escape.
            .body(format!("name=lead&password={password}&csrf={csrf}"))
            .send()
            .await
            .unwrap();
        assert_eq!(logged.status(), 303);
        let session = cookie_of(&logged);
        let page = |path: &'static str| {
            let (client, base, session) = (client.clone(), base.clone(), session.clone());
            async move {
                let r = client
                    .get(format!("{base}{path}"))
                    .header("cookie", session)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.text().await.unwrap()
            }
        };
        let queue = page("/console/queue").await;
        assert!(queue.contains("/console/holds/"), "an empty queue: {queue}");
        let cases = page("/console/cases").await;
        assert!(cases.contains("/console/cases/case-"), "no case: {cases}");
        assert!(cases.contains("campaign-cmp_"), "no campaign case: {cases}");
    });
    drop(server);
    drop(lines);
}
