//! `custos tokens rotate`: a data directory moved to a new destination
//! token key holds the new key's tokens where the old ones were, and a
//! server started on it with the new key sees the same world.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use custos_core::DestinationTokenizer;
use custos_store::EventStore as _;
use serde_json::{Value, json};

use super::{BIN, Server, free_port, post, request, serve_command};

const OLD_KEY: &str = "rotate-test-old-token-key-0123456789";
const NEW_KEY: &str = "rotate-test-new-token-key-9876543210";
const PII_KEY: &str = "rotate-test-pii-key-0123456789";

/// The mule account three sellers set, each writing it their own way,
/// and one seller's own account.
const SHARED: (&str, &str) = ("20-00-00", "55779911");
const OWN: (&str, &str) = ("30-11-22", "12345678");

/// Three sellers point their payouts at the same account and are paid
/// there; the third is then labelled fraud for that change, which denies
/// the destination (an effect quoting its token). A fourth seller has an
/// account of its own.
fn history() -> String {
    let events = [
        json!({"event_id": "d1", "type": "payout_destination_change", "account_id": "s1",
            "time": "2024-01-01T10:00:00Z", "destination": {"institution_id": "20-00-00",
            "account_number": "55779911", "holder_name": "Jane Smith"}}),
        json!({"event_id": "d2", "type": "payout_destination_change", "account_id": "s2",
            "time": "2024-01-02T10:00:00Z", "destination": {"institution_id": "200000",
            "account_number": "5577 9911", "holder_name": "Bob Jones"}}),
        json!({"event_id": "d3", "type": "payout_destination_change", "account_id": "s3",
            "time": "2024-01-03T10:00:00Z", "destination": {"institution_id": "20 00 00",
            "account_number": "5577-9911"}}),
        json!({"event_id": "d4", "type": "payout_destination_change", "account_id": "s4",
            "time": "2024-01-03T11:00:00Z", "destination": {"institution_id": "30-11-22",
            "account_number": "12345678"}}),
        json!({"event_id": "p1", "type": "payout", "account_id": "s1", "time": "2024-01-05T10:00:00Z",
            "payout_id": "po1", "amount": 10000, "currency": "GBP"}),
        json!({"event_id": "p2", "type": "payout", "account_id": "s2", "time": "2024-01-05T11:00:00Z",
            "payout_id": "po2", "amount": 10000, "currency": "GBP"}),
        json!({"event_id": "p3", "type": "payout", "account_id": "s3", "time": "2024-01-05T12:00:00Z",
            "payout_id": "po3", "amount": 10000, "currency": "GBP"}),
        json!({"event_id": "p4", "type": "payout", "account_id": "s4", "time": "2024-01-05T13:00:00Z",
            "payout_id": "po4", "amount": 10000, "currency": "GBP"}),
        json!({"event_id": "l3", "type": "label", "account_id": "s3", "time": "2024-01-06T10:00:00Z",
            "label": "fraud", "target_event_id": "d3", "analyst": "ana"}),
    ];
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// A fifth seller sets the shared account, a sixth the fourth seller's
/// own, which is on the deny list: whether Custos knows them is what the
/// rotation must keep.
fn probe() -> Value {
    json!([
        {"event_id": "probe", "type": "payout_destination_change", "account_id": "s5",
         "time": "2024-01-07T10:00:00Z", "destination": {"institution_id": "200000",
         "account_number": "55779911"}},
        {"event_id": "probe-listed", "type": "payout_destination_change", "account_id": "s6",
         "time": "2024-01-07T11:00:00Z", "destination": {"institution_id": "301122",
         "account_number": "12345678"}}
    ])
}

/// The default rules' deny list of destinations.
const DENY_LIST: &str = "/v1/lists/denied_destinations";

fn custos(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("CUSTOS_TOKEN_KEY")
        .env_remove("CUSTOS_NEW_TOKEN_KEY")
        .env("CUSTOS_PII_KEY", PII_KEY)
        .env("CUSTOS_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// A data directory with the history, written with the old key.
fn data_dir(dir: &Path) -> PathBuf {
    let events = dir.join("events.ndjson");
    std::fs::write(&events, history()).unwrap();
    let data = dir.join("data");
    let out = custos(
        &[
            "replay".as_ref(),
            events.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
        &[("CUSTOS_TOKEN_KEY", OLD_KEY)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// Runs `tokens rotate` of `data` into `out` with the new key in the
/// environment.
fn rotate(data: &Path, numbers: &Path, out: &Path, extra: &[&str]) -> Output {
    rotate_with_keys(data, numbers, out, extra, OLD_KEY, NEW_KEY)
}

/// `custos tokens rotate` with `current` as the token key and `new` as the
/// new one, given through the environment.
fn rotate_with_keys(
    data: &Path,
    numbers: &Path,
    out: &Path,
    extra: &[&str],
    current: &str,
    new: &str,
) -> Output {
    let mut args = vec![
        "tokens".as_ref(),
        "rotate".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--numbers".as_ref(),
        numbers.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    custos(
        &args,
        &[("CUSTOS_TOKEN_KEY", current), ("CUSTOS_NEW_TOKEN_KEY", new)],
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir` and a hash of its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            found.insert(
                path.clone(),
                std::hash::BuildHasher::hash_one(
                    &std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default(),
                    &bytes,
                ),
            );
        }
    }
    found
}

/// Copies the files and directories (the event log) of `from` into the
/// new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every `tk_` token quoted anywhere in `text`.
fn tokens_in(text: &str) -> BTreeSet<String> {
    text.match_indices("tk_")
        .filter_map(|(at, _)| text.get(at..at + 35))
        .map(str::to_string)
        .collect()
}

/// `(event_id, event, decision)` of every stored record, in log order
/// (opening the store migrates nothing here: the same build wrote it).
fn records(data: &Path) -> Vec<(String, String, String)> {
    let store = custos_store::SqliteStore::open(data.join("custos.db")).unwrap();
    let mut all = Vec::new();
    store
        .scan(0, &mut |r| {
            all.push((r.event_id, r.event_json, r.decision_json));
            Ok(())
        })
        .unwrap();
    all
}

/// A server on `data` with `token_key`, recording every feature.
fn serve(dir: &Path, data: &Path, token_key: &str, port: u16) -> Server {
    let config = dir.join("features.toml");
    std::fs::write(&config, "[engine]\nrecord_features = \"all\"\n").unwrap();
    Server::spawn(
        serve_command(data, port)
            .arg("--config")
            .arg(&config)
            .env("CUSTOS_TOKEN_KEY", token_key)
            .env("CUSTOS_PII_KEY", PII_KEY),
    )
}

/// What a server on `data` with `token_key` decides for the probe, and
/// its deny list of destinations.
fn probe_on(dir: &Path, data: &Path, token_key: &str) -> (Vec<Value>, Value) {
    let port = free_port();
    let _server = serve(dir, data, token_key, port);
    let decisions = post(port, &probe()).as_array().unwrap().clone();
    let list = request(port, reqwest::Method::GET, DENY_LIST, None);
    (decisions, list["entries"].clone())
}

/// The codes of a decision's reasons.
fn reasons(decision: &Value) -> Vec<&str> {
    decision["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect()
}

#[test]
fn rotating_the_token_key_keeps_the_world_under_the_new_keys_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let old = DestinationTokenizer::new(OLD_KEY.as_bytes()).unwrap();
    let new = DestinationTokenizer::new(NEW_KEY.as_bytes()).unwrap();
    let token = |t: &DestinationTokenizer, (institution, number): (&str, &str)| {
        t.token_of_written(institution, number).unwrap().1
    };
    // An analyst puts the fourth seller's account on the deny list: a new
    // rule-set version whose list quotes the token.
    let port = free_port();
    let mut server = serve(dir.path(), &data, OLD_KEY, port);
    let edited = request(
        port,
        reqwest::Method::PATCH,
        DENY_LIST,
        Some(&json!({"add": [token(&old, OWN)]})),
    );
    assert!(edited.get("error").is_none(), "{edited}");
    let stopped = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(server.0.wait().unwrap().success());
    let before = files(&data);
    let pairs = BTreeMap::from([
        (token(&old, SHARED), token(&new, SHARED)),
        (token(&old, OWN), token(&new, OWN)),
    ]);
    let stored = records(&{
        // Read from a copy: opening a store is not reading it only.
        let copy = dir.path().join("copy");
        copy_dir(&data, &copy);
        copy
    });
    let old_tokens: BTreeSet<String> = stored
        .iter()
        .flat_map(|(_, e, d)| tokens_in(&format!("{e}{d}")))
        .collect();
    assert_eq!(
        old_tokens,
        pairs.keys().cloned().collect(),
        "the history quotes both destinations' tokens"
    );

    // Bad input, each refused with nothing written.
    let numbers = dir.path().join("numbers.csv");
    let out = dir.path().join("rotated");
    std::fs::write(
        &numbers,
        "institution_id,account_number\n20-00-00,55779911\nonly-one-column\n",
    )
    .unwrap();
    let refused = rotate(&data, &numbers, &out, &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("numbers.csv: line 3: expected institution_id,account_number"),
        "{}",
        stderr(&refused)
    );
    std::fs::write(&numbers, "20-00-00,55779911\n30-11-22, - \n").unwrap();
    let refused = rotate(&data, &numbers, &out, &[]);
    assert!(
        stderr(&refused).contains("line 2: the institution or number has no letters or digits"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !stderr(&refused).contains("55779911"),
        "no number is echoed"
    );
    std::fs::write(&numbers, "20-00-00,55779911\n30-11-22,12345678\n").unwrap();
    let same_key = rotate_with_keys(&data, &numbers, &out, &[], OLD_KEY, OLD_KEY);
    assert!(
        stderr(&same_key).contains("the new destination token key is the current one"),
        "{}",
        stderr(&same_key)
    );
    let wrong_current = rotate_with_keys(&data, &numbers, &out, &[], NEW_KEY, OLD_KEY);
    assert!(
        stderr(&wrong_current).contains("is not the one this store was written with"),
        "{}",
        stderr(&wrong_current)
    );
    // Only the shared account's number: the other token has no pair.
    std::fs::write(
        &numbers,
        "institution_id,account_number\n200000,5577 9911\n",
    )
    .unwrap();
    let unmatched = rotate(&data, &numbers, &out, &[]);
    assert!(!unmatched.status.success());
    assert!(
        stderr(&unmatched).contains(&format!(
            "1 stored destination token(s) match no number of {} ({})",
            numbers.display(),
            token(&old, OWN)
        )),
        "{}",
        stderr(&unmatched)
    );
    assert!(!out.exists(), "nothing is written when refused");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("mine"), "x").unwrap();
    let not_empty = rotate(&data, &numbers, &out, &[]);
    assert!(
        stderr(&not_empty).contains("exists and is not an empty directory"),
        "{}",
        stderr(&not_empty)
    );
    std::fs::remove_dir_all(&out).unwrap();

    // Every number given: every token has its pair.
    std::fs::write(
        &numbers,
        "institution_id,account_number\n200000,5577 9911\n30-11-22,12345678\n99-99-99,11112222\n",
    )
    .unwrap();
    let rotated = rotate(&data, &numbers, &out, &[]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let summary: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(summary["events"], stored.len(), "{summary}");
    assert_eq!(summary["tokens_replaced"], 2, "{summary}");
    assert_eq!(summary["numbers_not_in_store"], 1, "{summary}");
    assert_eq!(summary["tokens_kept"], 0, "{summary}");
    assert_eq!(summary["new_key_id"], new.key_id(), "{summary}");
    assert!(
        summary["snapshots_dropped"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert_eq!(files(&data), before, "the old data directory is untouched");
    assert!(
        !out.join(custos_config::TOKEN_KEY_FILE).exists(),
        "the keys came from the environment; none is written"
    );

    // The same records, each old token replaced by its pair, nothing else.
    let rewritten = records(&out);
    assert_eq!(rewritten.len(), stored.len());
    for ((id, event, decision), (new_id, new_event, new_decision)) in stored.iter().zip(&rewritten)
    {
        assert_eq!(id, new_id);
        let mut expected = (event.clone(), decision.clone());
        for (old_token, new_token) in &pairs {
            expected.0 = expected.0.replace(old_token, new_token);
            expected.1 = expected.1.replace(old_token, new_token);
        }
        assert_eq!(
            (new_event, new_decision),
            (&expected.0, &expected.1),
            "{id}"
        );
    }
    let new_tokens: BTreeSet<String> = rewritten
        .iter()
        .flat_map(|(_, e, d)| tokens_in(&format!("{e}{d}")))
        .collect();
    assert_eq!(new_tokens, pairs.values().cloned().collect());
    assert!(
        rewritten
            .iter()
            .any(|(_, _, d)| d.contains(&token(&new, SHARED))),
        "a decision's effect quotes the denied destination"
    );

    // The old key is refused on the new directory.
    let port = free_port();
    let mut old_key_server = serve(dir.path(), &out, OLD_KEY, port);
    let exit = wait_exit(&mut old_key_server);
    assert!(
        exit.is_some_and(|e| !e.success()),
        "the old key is refused: {exit:?}"
    );

    // The probe, on a copy of the old directory with the old key and on
    // the rotated one with the new key: the fifth seller joins the same
    // known, denied account of three others.
    let old_copy = dir.path().join("old-copy");
    copy_dir(&data, &old_copy);
    let (before, old_list) = probe_on(dir.path(), &old_copy, OLD_KEY);
    let (after, new_list) = probe_on(dir.path(), &out, NEW_KEY);
    for feature in [
        "destination.new_globally",
        "destination.other_accounts",
        "destination.denied",
    ] {
        assert_eq!(
            after[0]["features"][feature], before[0]["features"][feature],
            "{feature}: {}",
            after[0]
        );
    }
    assert_eq!(
        after[0]["features"]["destination.new_globally"], false,
        "{}",
        after[0]
    );
    assert_eq!(
        after[0]["features"]["destination.other_accounts"], 3.0,
        "{}",
        after[0]
    );
    assert_eq!(
        after[0]["features"]["destination.denied"], true,
        "{}",
        after[0]
    );
    assert_eq!(after[0]["action"], before[0]["action"], "{}", after[0]);
    assert_eq!(old_list, json!([token(&old, OWN)]));
    assert_eq!(
        new_list,
        json!([token(&new, OWN)]),
        "the list holds the new token"
    );
    assert!(
        reasons(&after[1]).contains(&"destination_on_deny_list"),
        "{}",
        after[1]
    );
    assert_eq!(reasons(&after[1]), reasons(&before[1]));
    assert!(
        summary["rule_sets_rewritten"].as_u64().unwrap() >= 1,
        "{summary}"
    );

    // A history event sent again is the same event: its stored token is
    // the one the new key gives its number.
    let port = free_port();
    let _server = serve(dir.path(), &out, NEW_KEY, port);
    let first = serde_json::from_str::<Value>(history().lines().next().unwrap()).unwrap();
    let again = post(port, &first);
    assert_eq!(again["duplicate"], true, "{again}");
}

#[test]
fn unmatched_tokens_kept_on_request_make_their_destination_look_new() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let numbers = dir.path().join("numbers.csv");
    // The seller's own account only: the shared one is left unmatched.
    std::fs::write(&numbers, "30-11-22,12345678\n").unwrap();
    let out = dir.path().join("rotated");

    // Not while a server runs on it: what it decides after the copy would
    // be lost.
    let port = free_port();
    let mut running = serve(dir.path(), &data, OLD_KEY, port);
    let login = json!({"event_id": "login-while-running", "type": "login", "account_id": "s1",
        "time": "2024-01-06T12:00:00Z", "status": "success", "ip": "81.2.69.160"});
    assert_eq!(post(port, &login)["action"], "allow");
    let refused = rotate(&data, &numbers, &out, &["--allow-unmatched"]);
    assert!(
        stderr(&refused).contains("a server may be running on this data directory"),
        "{}",
        stderr(&refused)
    );
    assert!(!out.exists());
    let stopped = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(running.0.wait().unwrap().success());

    // Nor on PostgreSQL.
    let postgres = custos(
        &[
            "tokens".as_ref(),
            "rotate".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--numbers".as_ref(),
            numbers.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        &[
            ("CUSTOS_TOKEN_KEY", OLD_KEY),
            ("CUSTOS_NEW_TOKEN_KEY", NEW_KEY),
            (
                "CUSTOS_STORE_URL",
                "postgres://custos@127.0.0.1:5432/custos",
            ),
        ],
    );
    assert!(
        stderr(&postgres).contains("keeps its log in PostgreSQL"),
        "{}",
        stderr(&postgres)
    );

    let rotated = rotate(&data, &numbers, &out, &["--allow-unmatched"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let summary: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(summary["tokens_replaced"], 1, "{summary}");
    assert_eq!(summary["tokens_kept"], 1, "{summary}");
    let old = DestinationTokenizer::new(OLD_KEY.as_bytes()).unwrap();
    let kept = old.token_of_written(SHARED.0, SHARED.1).unwrap().1;
    assert!(
        records(&out).iter().any(|(_, e, _)| e.contains(&kept)),
        "the unmatched token is kept as it was"
    );
    let (after, _) = probe_on(dir.path(), &out, NEW_KEY);
    let after = &after[0];
    assert_eq!(
        after["features"]["destination.new_globally"], true,
        "{after}"
    );
    assert_eq!(after["features"]["destination.denied"], false, "{after}");
}

/// Waits up to a minute for a server that should refuse to start.
fn wait_exit(server: &mut Server) -> Option<std::process::ExitStatus> {
    for _ in 0..600 {
        if let Some(status) = server.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// A server on `data` that reads its keys from the data directory (none
/// from the environment).
fn serve_with_keys_inside(data: &Path, port: u16) -> Server {
    Server::spawn(
        serve_command(data, port)
            .env_remove("CUSTOS_TOKEN_KEY")
            .env_remove("CUSTOS_PII_KEY"),
    )
}

/// `custos tokens rotate` of `data` into `out` with the new keys given as
/// files (`--new-key-file`, and `--new-pii-key-file` when `new_pii` is
/// given), none from the environment.
fn rotate_with_key_files(
    data: &Path,
    numbers: &Path,
    out: &Path,
    new_key: &Path,
    new_pii: Option<&Path>,
) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["tokens", "rotate", "--data-dir"])
        .arg(data)
        .arg("--numbers")
        .arg(numbers)
        .arg("--out")
        .arg(out)
        .arg("--new-key-file")
        .arg(new_key);
    if let Some(new_pii) = new_pii {
        command.arg("--new-pii-key-file").arg(new_pii);
    }
    command
        .env_remove("CUSTOS_TOKEN_KEY")
        .env_remove("CUSTOS_PII_KEY")
        .env_remove("CUSTOS_NEW_TOKEN_KEY")
        .env_remove("CUSTOS_NEW_PII_KEY")
        .env("CUSTOS_LOG", "warn")
        .output()
        .unwrap()
}

/// Keys generated into the data directory (no key configured): the new
/// key goes where the old one was, the PII key and the other files come
/// along, the old token key does not, and the same command line serves the
/// result.
#[test]
fn keys_kept_in_the_data_directory_move_with_it_and_the_old_token_key_stays_behind() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, history()).unwrap();
    let data = dir.path().join("data");
    let no_keys = [("CUSTOS_LOG", "warn")];
    let replay = Command::new(BIN)
        .args([
            "replay".as_ref(),
            events.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ])
        .env_remove("CUSTOS_TOKEN_KEY")
        .env_remove("CUSTOS_PII_KEY")
        .envs(no_keys)
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", stderr(&replay));
    std::fs::write(data.join("notes.txt"), "kept beside the data").unwrap();
    let old_key = std::fs::read_to_string(data.join(custos_config::TOKEN_KEY_FILE)).unwrap();
    let pii_key = std::fs::read(data.join(custos_config::PII_KEY_FILE)).unwrap();

    let numbers = dir.path().join("numbers.csv");
    std::fs::write(&numbers, "20-00-00,55779911\n30-11-22,12345678\n").unwrap();
    let new_key_file = dir.path().join("new.key");
    std::fs::write(&new_key_file, format!("{NEW_KEY}\n")).unwrap();
    let out = dir.path().join("rotated");
    let rotated = rotate_with_key_files(&data, &numbers, &out, &new_key_file, None);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let summary: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(summary["tokens_replaced"], 2, "{summary}");
    assert_eq!(summary["new_key_in_data_dir"], true, "{summary}");
    let new = DestinationTokenizer::new(NEW_KEY.as_bytes()).unwrap();
    assert_eq!(
        summary["new_key_id"],
        new.key_id(),
        "the file's newline is not part of the key"
    );
    assert_eq!(
        std::fs::read_to_string(out.join(custos_config::TOKEN_KEY_FILE)).unwrap(),
        NEW_KEY
    );
    assert_ne!(old_key.trim(), NEW_KEY);
    assert_eq!(
        std::fs::read(out.join(custos_config::PII_KEY_FILE)).unwrap(),
        pii_key
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "kept beside the data"
    );

    // Served as before, keys from the data directory: a history event sent
    // again is recognised, sealed holder name and new token alike.
    let port = free_port();
    let _server = serve_with_keys_inside(&out, port);
    let first = serde_json::from_str::<Value>(history().lines().next().unwrap()).unwrap();
    let again = post(port, &first);
    assert_eq!(again["duplicate"], true, "{again}");
    drop(_server);

    // A new PII key as well: it takes the generated one's place.
    let new_pii_file = dir.path().join("new-pii.key");
    std::fs::write(&new_pii_file, "rotate-test-new-pii-key-9876543210\n").unwrap();
    let out = dir.path().join("rotated-pii");
    let rotated = rotate_with_key_files(&data, &numbers, &out, &new_key_file, Some(&new_pii_file));
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_eq!(
        std::fs::read_to_string(out.join(custos_config::PII_KEY_FILE)).unwrap(),
        "rotate-test-new-pii-key-9876543210"
    );
    let port = free_port();
    let _server = serve_with_keys_inside(&out, port);
    assert_eq!(post(port, &first)["duplicate"], true);
}

/// With a new PII key too, the sealed holder names are sealed again with
/// it: they open with the new key only, a server with both new keys shows
/// them and recognises a resent event, and one with the old PII key is
/// refused.
#[test]
fn a_new_pii_key_reseals_the_holder_names_in_the_same_pass() {
    const NEW_PII_KEY: &str = "rotate-test-new-pii-key-9876543210";
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let numbers = dir.path().join("numbers.csv");
    std::fs::write(&numbers, "20-00-00,55779911\n30-11-22,12345678\n").unwrap();
    let out = dir.path().join("rotated");
    let args: Vec<&std::ffi::OsStr> = vec![
        "tokens".as_ref(),
        "rotate".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--numbers".as_ref(),
        numbers.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    let wrong_pii = custos(
        &args,
        &[
            ("CUSTOS_TOKEN_KEY", OLD_KEY),
            ("CUSTOS_NEW_TOKEN_KEY", NEW_KEY),
            ("CUSTOS_PII_KEY", "not-the-pii-key-it-was-sealed-with"),
            ("CUSTOS_NEW_PII_KEY", NEW_PII_KEY),
        ],
    );
    assert!(
        stderr(&wrong_pii).contains("is not the one this store was sealed with"),
        "{}",
        stderr(&wrong_pii)
    );
    assert!(!out.exists());
    let rotated = custos(
        &args,
        &[
            ("CUSTOS_TOKEN_KEY", OLD_KEY),
            ("CUSTOS_NEW_TOKEN_KEY", NEW_KEY),
            ("CUSTOS_NEW_PII_KEY", NEW_PII_KEY),
        ],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let summary: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let old_pii = custos_core::PiiCipher::new(PII_KEY.as_bytes()).unwrap();
    let new_pii = custos_core::PiiCipher::new(NEW_PII_KEY.as_bytes()).unwrap();
    assert_eq!(summary["new_pii_key_id"], new_pii.key_id(), "{summary}");
    assert_eq!(
        summary["sealed_values_resealed"], 2,
        "two holder names: {summary}"
    );
    assert_eq!(summary["tokens_replaced"], 2, "{summary}");

    let stored = records(&out);
    let d1: Value = serde_json::from_str(&stored[0].1).unwrap();
    let sealed = d1["destination"]["holder_name"].as_str().unwrap();
    assert!(sealed.starts_with("enc:v1:"), "{d1}");
    assert_eq!(
        new_pii.open_value("holder_name", sealed),
        Some(json!("Jane Smith"))
    );
    assert_eq!(old_pii.open_value("holder_name", sealed), None);

    let serve_with = |pii_key: &str, port: u16| {
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&out)
            .env("CUSTOS_TOKEN_KEY", NEW_KEY)
            .env("CUSTOS_PII_KEY", pii_key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server(child)
    };
    let mut refused = serve_with(PII_KEY, free_port());
    let exit = wait_exit(&mut refused);
    assert!(
        exit.is_some_and(|e| !e.success()),
        "the old pii key is refused: {exit:?}"
    );

    let port = free_port();
    let _server = serve_with(NEW_PII_KEY, port);
    let first = serde_json::from_str::<Value>(history().lines().next().unwrap()).unwrap();
    assert_eq!(post(port, &first)["duplicate"], true);
    let shown = request(port, reqwest::Method::GET, "/v1/events/d1", None);
    assert!(shown.to_string().contains("Jane Smith"), "{shown}");
}
