//! The request and answer examples of README.md and docs/*.md, run against a
//! real server: a changed rule fails here until the documentation says what
//! the server now answers.
//!
//! Examples are marked in the Markdown with an HTML comment on the line just
//! before their fenced block (invisible on GitHub):
//!
//! - `<!-- example: NAME -->` before a `sh` block of `curl` commands (one
//!   request each; `$KEY` is the development key), or
//!   `<!-- example: NAME METHOD PATH -->` before a `json` block sent as the
//!   body. Requests are sent in document order to a server started for the
//!   document alone (fresh data directory, no configured keys, so the
//!   development key works, and one webhook receiver).
//! - `<!-- answer: NAME[.N] [POINTER] [status=CODE] -->` before a `json`
//!   block: the answer to the example's (Nth, from 1) request, or the part
//!   of it at the JSON pointer. Without `status=` the request must succeed.
//! - `<!-- webhook: TYPE EVENT_ID -->` before a `json` block: the webhook
//!   envelope of that type delivered for that event.
//! - `<!-- replay: FILE NAME -->` sends another document's example first
//!   (so docs can build on the README's story without repeating it).
//!
//! A documented answer is compared field by field. It may be shortened:
//! an object shows only some of the real fields (the others are not
//! checked), a string written with `...` matches any real string with the
//! same beginning and end. Arrays have the documented length. The only
//! fields never compared are those in [`VARIABLE`]. A mismatch fails the
//! test naming the file, line, example and field, and prints the real answer
//! in the documented shape, ready to paste over the block.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::webhooks::{Receiver, webhook_config};
use super::*;

/// Fields whose documented value is an example: they must be present but
/// are never compared. JSON pointers into an answer or a webhook envelope;
/// `*` matches any array index or key.
const VARIABLE: &[(&str, &str)] = &[
    ("/created", "a webhook's queueing time: the server's clock"),
    ("/time", "when a Sift answer was made: the server's clock"),
    (
        "/score_response/actions/*/time",
        "when a Sift action was applied: the server's clock",
    ),
];

/// The development key the examples use; `$KEY` in a command stands for it.
const DEV_KEY: &str = "custos-dev-key";

/// Every file whose examples are run.
fn documents() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".md").then(|| format!("docs/{name}"))
        })
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[derive(Debug, Clone)]
enum Item {
    Example {
        name: String,
        /// `METHOD PATH` for a JSON body; empty for curl commands.
        target: Vec<String>,
        lang: String,
        body: String,
        line: usize,
    },
    Answer {
        name: String,
        pointer: String,
        status: Option<u16>,
        body: String,
        line: usize,
    },
    Webhook {
        kind: String,
        event_id: String,
        body: String,
        line: usize,
    },
    Replay {
        file: String,
        name: String,
        line: usize,
    },
}

/// The marked items of a Markdown file, in order. Panics on a marker not
/// followed by a fenced block, and on a `curl` block with no marker.
fn parse(file: &str, text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    let mut marked = false;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(fence) = line.strip_prefix("```") {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && lines[end].trim() != "```" {
                end += 1;
            }
            let body = lines[start..end.min(lines.len())].join("\n");
            assert!(
                marked || !body.contains("curl ") || !body.contains("localhost:8080"),
                "{file}:{start}: a curl example with no `<!-- example: NAME -->` before it: \
                 mark it so the docs test runs it"
            );
            if marked {
                match items.last_mut() {
                    Some(Item::Example { lang, body: b, .. }) => {
                        *lang = fence.trim().to_string();
                        *b = body;
                    }
                    Some(Item::Answer { body: b, .. }) | Some(Item::Webhook { body: b, .. }) => {
                        *b = body
                    }
                    _ => unreachable!("only block markers set `marked`"),
                }
            }
            marked = false;
            i = end + 1;
            continue;
        }
        assert!(
            !marked || line.is_empty(),
            "{file}:{}: a marker must be followed by its fenced block",
            i
        );
        if let Some(marker) = line
            .strip_prefix("<!--")
            .and_then(|l| l.strip_suffix("-->"))
            .and_then(|l| {
                let (kind, args) = l.trim().split_once(':')?;
                Some((kind.trim(), args.split_whitespace().collect::<Vec<_>>()))
            })
        {
            let at = i + 1;
            let (kind, args) = marker;
            let name = || {
                args.first()
                    .unwrap_or_else(|| panic!("{file}:{at}: no name"))
                    .to_string()
            };
            match kind {
                "example" => {
                    items.push(Item::Example {
                        name: name(),
                        target: args[1..].iter().map(|s| s.to_string()).collect(),
                        lang: String::new(),
                        body: String::new(),
                        line: at,
                    });
                    marked = true;
                }
                "answer" => {
                    let mut pointer = String::new();
                    let mut status = None;
                    for arg in &args[1..] {
                        if let Some(code) = arg.strip_prefix("status=") {
                            status =
                                Some(code.parse().unwrap_or_else(|e| panic!("{file}:{at}: {e}")));
                        } else {
                            pointer = arg.to_string();
                        }
                    }
                    items.push(Item::Answer {
                        name: name(),
                        pointer,
                        status,
                        body: String::new(),
                        line: at,
                    });
                    marked = true;
                }
                "webhook" => {
                    assert_eq!(args.len(), 2, "{file}:{at}: webhook: TYPE EVENT_ID");
                    items.push(Item::Webhook {
                        kind: args[0].to_string(),
                        event_id: args[1].to_string(),
                        body: String::new(),
                        line: at,
                    });
                    marked = true;
                }
                "replay" => {
                    assert_eq!(args.len(), 2, "{file}:{at}: replay: FILE NAME");
                    items.push(Item::Replay {
                        file: args[0].to_string(),
                        name: args[1].to_string(),
                        line: at,
                    });
                }
                _ => {}
            }
        }
        i += 1;
    }
    assert!(!marked, "{file}: a marker at the end with no block");
    items
}

/// One HTTP request of an example.
#[derive(Debug)]
struct Request {
    method: reqwest::Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// Splits shell words: single and double quotes, backslash escapes and
/// line continuations; `$KEY` outside single quotes is the development key.
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                let mut inner = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => inner.extend(chars.next()),
                        c => inner.push(c),
                    }
                }
                w.push_str(&inner.replace("${KEY}", DEV_KEY).replace("$KEY", DEV_KEY));
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
            },
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
        .into_iter()
        .map(|w| if w == "$KEY" { DEV_KEY.to_string() } else { w })
        .collect()
}

/// The requests of a block of `curl` commands (one command per request).
fn curl_requests(body: &str) -> Result<Vec<Request>, String> {
    let words = shell_words(body);
    let mut requests = Vec::new();
    let mut iter = words.into_iter().peekable();
    while let Some(word) = iter.next() {
        if word != "curl" {
            return Err(format!("expected `curl`, found `{word}`"));
        }
        let mut request = Request {
            method: reqwest::Method::GET,
            path: String::new(),
            headers: Vec::new(),
            body: None,
        };
        let mut method = None;
        while let Some(arg) = iter.next_if(|w| w != "curl") {
            match arg.as_str() {
                "-s" | "--silent" | "-S" | "-i" => {}
                "-H" | "--header" => {
                    let h = iter.next().ok_or("-H without a header")?;
                    let (k, v) = h.split_once(':').ok_or(format!("bad header `{h}`"))?;
                    request
                        .headers
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
                "-d" | "--data" | "--data-raw" => {
                    request.body = Some(iter.next().ok_or("-d without a body")?);
                }
                "-X" | "--request" => {
                    let m = iter.next().ok_or("-X without a method")?;
                    method = Some(m.parse().map_err(|e| format!("{e}"))?);
                }
                url if !url.starts_with('-') => {
                    let rest = url.trim_start_matches("http://");
                    let path = rest
                        .strip_prefix("localhost:8080")
                        .or_else(|| rest.strip_prefix("127.0.0.1:8080"))
                        .ok_or(format!("not a URL of the local server: `{url}`"))?;
                    request.path = path.to_string();
                }
                other => return Err(format!("unsupported curl option `{other}`")),
            }
        }
        request.method = method.unwrap_or(if request.body.is_some() {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        });
        if request.path.is_empty() {
            return Err("a curl command without a URL".into());
        }
        requests.push(request);
    }
    Ok(requests)
}

/// What came back for one request.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: Value,
    /// Where the request is in the docs, for messages.
    at: String,
}

/// Runs the items of one document; returns its failures.
struct Run<'a> {
    file: &'a str,
    server: TestServer,
    receiver: Receiver,
    answers: HashMap<String, Answer>,
    checked: Vec<String>,
    failures: Vec<String>,
}

impl Run<'_> {
    async fn example(
        &mut self,
        file: &str,
        name: &str,
        target: &[String],
        lang: &str,
        body: &str,
        line: usize,
    ) {
        let at = format!("{file}:{line} example `{name}`");
        let requests = match lang {
            "sh" | "bash" | "console" => curl_requests(body),
            "json" => match target {
                [method, path] => method
                    .parse()
                    .map(|method| {
                        vec![Request {
                            method,
                            path: path.clone(),
                            headers: vec![
                                ("Authorization".into(), format!("Bearer {DEV_KEY}")),
                                ("Content-Type".into(), "application/json".into()),
                            ],
                            body: Some(body.to_string()),
                        }]
                    })
                    .map_err(|e| format!("{e}")),
                _ => Err("a json example needs `METHOD PATH` in its marker".into()),
            },
            other => Err(format!("cannot run a `{other}` block")),
        };
        let requests = match requests {
            Ok(r) => r,
            Err(e) => {
                self.failures.push(format!("{at}: {e}"));
                return;
            }
        };
        for (n, r) in requests.iter().enumerate() {
            let mut builder = self
                .server
                .client
                .request(r.method.clone(), format!("{}{}", self.server.base, r.path));
            for (k, v) in &r.headers {
                builder = builder.header(k, v);
            }
            if let Some(b) = &r.body {
                builder = builder.body(b.clone());
            }
            let response = builder.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let key = if requests.len() == 1 {
                name.to_string()
            } else {
                format!("{name}.{}", n + 1)
            };
            let answer = Answer {
                status,
                body,
                at: format!("{at}, request {} ({} {})", n + 1, r.method, r.path),
            };
            self.answers.insert(key, answer);
        }
    }

    fn answer(&mut self, name: &str, pointer: &str, status: Option<u16>, body: &str, line: usize) {
        let at = format!("{}:{line} answer `{name}`", self.file);
        let Some(real) = self.answers.get(name).cloned() else {
            self.failures
                .push(format!("{at}: no example `{name}` ran before it"));
            return;
        };
        self.checked.push(name.to_string());
        let want_status = status.unwrap_or(200);
        if real.status != want_status {
            self.failures.push(format!(
                "{at}: status documented {want_status}, real {} ({})\n{}",
                real.status, real.at, real.body
            ));
            return;
        }
        let Some(part) = real.body.pointer(pointer).cloned() else {
            self.failures.push(format!(
                "{at}: the real answer has nothing at `{pointer}`\n{}",
                real.body
            ));
            return;
        };
        self.compare(&at, body, &part, pointer);
    }

    async fn webhook(&mut self, kind: &str, event_id: &str, body: &str, line: usize) {
        let at = format!("{}:{line} webhook `{kind}` of `{event_id}`", self.file);
        let deadline = Instant::now() + Duration::from_secs(30);
        let found = loop {
            if let Some(e) = self
                .receiver
                .find(|e| e["type"] == kind && e["data"]["event_id"] == event_id)
            {
                break Some(e);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match found {
            Some(envelope) => self.compare(&at, body, &envelope, ""),
            None => self
                .failures
                .push(format!("{at}: not delivered within 30 s")),
        }
    }

    /// `documented` against `real`, the part of an answer at `pointer`.
    fn compare(&mut self, at: &str, documented: &str, real: &Value, pointer: &str) {
        let documented: Value = match serde_json::from_str(documented) {
            Ok(v) => v,
            Err(e) => {
                self.failures
                    .push(format!("{at}: the documented block is not JSON: {e}"));
                return;
            }
        };
        let mut diffs = Vec::new();
        diff(&documented, real, pointer, &mut diffs);
        if !diffs.is_empty() {
            let mut message = format!("{at}:\n");
            for d in &diffs {
                let _ = writeln!(message, "  {d}");
            }
            let _ = writeln!(
                message,
                "  the real answer, in the documented shape (paste it over the block):\n{}",
                serde_json::to_string_pretty(&project(&documented, real, pointer)).unwrap()
            );
            self.failures.push(message);
        }
    }
}

fn variable(path: &str) -> bool {
    VARIABLE.iter().any(|(pattern, _)| {
        let p: Vec<&str> = pattern.split('/').collect();
        let q: Vec<&str> = path.split('/').collect();
        p.len() == q.len() && p.iter().zip(&q).all(|(a, b)| *a == "*" || a == b)
    })
}

/// A documented string shortened with `...` or `…` matches any real string
/// with the same beginning and end.
fn string_matches(documented: &str, real: &str) -> bool {
    let cut = documented
        .split_once("...")
        .or_else(|| documented.split_once('…'));
    match cut {
        Some((head, tail)) => {
            real.len() >= head.len() + tail.len() && real.starts_with(head) && real.ends_with(tail)
        }
        None => documented == real,
    }
}

/// The differences between a documented value and the real one, by JSON
/// pointer.
fn diff(documented: &Value, real: &Value, path: &str, out: &mut Vec<String>) {
    if variable(path) {
        return;
    }
    let here = if path.is_empty() { "/" } else { path };
    match (documented, real) {
        (Value::Object(d), Value::Object(r)) => {
            for (k, dv) in d {
                let p = format!("{path}/{k}");
                match r.get(k) {
                    Some(rv) => diff(dv, rv, &p, out),
                    None => out.push(format!("{p}: documented {dv}, absent from the real answer")),
                }
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            if d.len() != r.len() {
                out.push(format!(
                    "{here}: {} items documented, {} real",
                    d.len(),
                    r.len()
                ));
            }
            for (n, (dv, rv)) in d.iter().zip(r).enumerate() {
                diff(dv, rv, &format!("{path}/{n}"), out);
            }
        }
        (Value::Number(d), Value::Number(r)) if d.as_f64() == r.as_f64() => {}
        (Value::String(d), Value::String(r)) if string_matches(d, r) => {}
        (d, r) if d == r => {}
        (d, r) => out.push(format!("{here}: documented {d}, real {r}")),
    }
}

/// The real value in the documented shape: the documented keys of objects,
/// every real item of arrays (an item the docs do not show yet with the
/// keys of the first documented one, their values whole), the documented
/// text where a shortened string or a variable field matched.
fn project(documented: &Value, real: &Value, path: &str) -> Value {
    if variable(path) {
        return documented.clone();
    }
    match (documented, real) {
        (Value::Object(d), Value::Object(r)) => {
            let mut out = Map::new();
            for (k, dv) in d {
                if let Some(rv) = r.get(k) {
                    out.insert(k.clone(), project(dv, rv, &format!("{path}/{k}")));
                }
            }
            Value::Object(out)
        }
        (Value::Array(d), Value::Array(r)) => Value::Array(
            r.iter()
                .enumerate()
                .map(|(n, rv)| match (d.get(n), d.first(), rv) {
                    (Some(dv), _, _) => project(dv, rv, &format!("{path}/{n}")),
                    (None, Some(Value::Object(keys)), Value::Object(r)) => Value::Object(
                        r.iter()
                            .filter(|(k, _)| keys.contains_key(*k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                    _ => rv.clone(),
                })
                .collect(),
        ),
        (Value::String(d), Value::String(r)) if string_matches(d, r) => documented.clone(),
        (_, r) => r.clone(),
    }
}

async fn run_document(file: &str, all: &HashMap<String, Vec<Item>>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0).await;
    let mut config = webhook_config(dir.path(), Vec::new());
    let mut endpoint =
        custos_config::WebhookEndpointConfig::new(receiver.url(), super::webhooks::SECRET);
    endpoint.min_action = custos_core::Action::Allow;
    config.webhooks = vec![endpoint];
    config.api_keys = Vec::new();
    let mut run = Run {
        file,
        server: TestServer::start(config).await,
        receiver,
        answers: HashMap::new(),
        checked: Vec::new(),
        failures: Vec::new(),
    };
    for item in &all[file] {
        match item {
            Item::Example {
                name,
                target,
                lang,
                body,
                line,
            } => run.example(file, name, target, lang, body, *line).await,
            Item::Replay {
                file: other,
                name,
                line,
            } => {
                let found = all.get(other.as_str()).and_then(|items| {
                    items.iter().find_map(|i| match i {
                        Item::Example {
                            name: n,
                            target,
                            lang,
                            body,
                            line,
                        } if n == name => Some((target, lang, body, *line)),
                        _ => None,
                    })
                });
                match found {
                    Some((target, lang, body, l)) => {
                        run.example(other, name, target, lang, body, l).await
                    }
                    None => run.failures.push(format!(
                        "{file}:{line}: replay: no example `{name}` in {other}"
                    )),
                }
            }
            Item::Answer {
                name,
                pointer,
                status,
                body,
                line,
            } => run.answer(name, pointer, *status, body, *line),
            Item::Webhook {
                kind,
                event_id,
                body,
                line,
            } => run.webhook(kind, event_id, body, *line).await,
        }
    }
    // A request with no documented answer must still succeed.
    let mut unanswered: Vec<_> = run
        .answers
        .iter()
        .filter(|(k, a)| !run.checked.contains(k) && !(200..300).contains(&a.status))
        .map(|(_, a)| format!("{}: answered {}\n{}", a.at, a.status, a.body))
        .collect();
    unanswered.sort();
    run.failures.extend(unanswered);
    run.server.server.stop().await.expect("clean stop");
    run.failures
}

/// Every marked example of every document, each document on its own server.
#[tokio::test]
async fn documented_examples_answer_as_documented() {
    let mut all = HashMap::new();
    for file in documents() {
        let items = parse(&file, &read(&file));
        all.insert(file, items);
    }
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in documents() {
        if all[&file].is_empty() {
            continue;
        }
        ran += 1;
        failures.extend(run_document(&file, &all).await);
    }
    // The README's story and the answers built on it are marked.
    assert!(ran >= 2, "only {ran} documents have marked examples");
    assert!(
        failures.is_empty(),
        "{} documented example(s) no longer match the server:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn curl_commands_are_read_as_a_shell_would() {
    let requests = curl_requests(
        "curl -s -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n  \
         -d '{\"analyst\": \"ana\"}' \\\n  localhost:8080/v1/payouts/po-77/release\n\
         curl -s localhost:8080/v1/holds",
    )
    .unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, reqwest::Method::POST);
    assert_eq!(requests[0].path, "/v1/payouts/po-77/release");
    assert_eq!(
        requests[0].headers[0],
        ("Authorization".to_string(), format!("Bearer {DEV_KEY}"))
    );
    assert_eq!(requests[0].body.as_deref(), Some("{\"analyst\": \"ana\"}"));
    assert_eq!(requests[1].method, reqwest::Method::GET);
    assert!(curl_requests("curl -s example.com/v1/holds").is_err());
}

#[test]
fn documented_answers_compare_field_by_field() {
    let real = serde_json::json!({"id": "sift-3f0c9a.e1.login", "score": 100.0, "created": 5,
        "reasons": [{"code": "a", "score": 80}, {"code": "b", "score": 60}], "extra": 1});
    let mut out = Vec::new();
    diff(
        &serde_json::json!({"id": "sift-3f0c...e1.login", "score": 100, "created": 1,
            "reasons": [{"code": "a"}, {"code": "b"}]}),
        &real,
        "",
        &mut out,
    );
    assert_eq!(out, Vec::<String>::new());
    let documented =
        serde_json::json!({"id": "sift-...x", "score": 80, "reasons": [{"code": "a"}]});
    diff(&documented, &real, "", &mut out);
    assert_eq!(
        out,
        [
            "/id: documented \"sift-...x\", real \"sift-3f0c9a.e1.login\"",
            "/reasons: 1 items documented, 2 real",
            "/score: documented 80, real 100.0",
        ]
    );
    assert_eq!(
        project(&documented, &real, ""),
        serde_json::json!({"id": "sift-3f0c9a.e1.login", "score": 100.0,
            "reasons": [{"code": "a"}, {"code": "b"}]})
    );
}
