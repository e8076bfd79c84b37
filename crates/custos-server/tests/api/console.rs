//! The analyst console over HTTP, as a browser drives it: login, sessions,
//! CSRF, roles, four-eyes, the audit trail, escaping and 404 pages.

use std::collections::HashMap;

use custos_config::{Config, Role};
use custos_server::console::db::ConsoleDb;
use custos_server::console::session::hash_password;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{KEY, TestServer, at, config, story};

const PASSWORD: &str = "correct horse battery staple";

/// A browser: keeps cookies, does not follow redirects.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
    }
}

impl Browser {
    fn new(server: &TestServer) -> Browser {
        Browser {
            client: custos_server::tls::client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.base.clone(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            // What a browser sends on a same-origin form post.
            .header("origin", &self.base)
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// A download: status, content type and the bytes as sent.
    async fn download(&mut self, path: &str) -> (StatusCode, String, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, kind, response.bytes().await.unwrap().to_vec())
    }

    async fn login(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[("name", name), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    async fn logged_in(server: &TestServer, name: &str) -> Browser {
        let mut browser = Browser::new(server);
        let page = browser.login(name, PASSWORD).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/queue");
        browser
    }
}

fn add_user(server: &TestServer, name: &str, role: Role) {
    let db = ConsoleDb::open_in(&server.config.data_dir).unwrap();
    db.add_user(name, role, &hash_password(PASSWORD).unwrap())
        .unwrap();
}

fn console_config(dir: &std::path::Path) -> Config {
    let mut config = config(dir);
    config.console.four_eyes_above = 50_000;
    config.console.max_failed_logins = 3;
    config
}

/// `story`, with the held payout's amount set.
fn held(account: &str, amount: u64) -> Vec<Value> {
    let mut events = story(account);
    let last = events.last_mut().unwrap();
    last["amount"] = json!(amount);
    events
}

async fn server_with_holds(dir: &std::path::Path) -> TestServer {
    let server = TestServer::start(console_config(dir)).await;
    for (account, amount) in [("small", 20_000), ("large", 900_000), ("middle", 300_000)] {
        let (status, answer) = server.post(&json!(held(account, amount))).await;
        assert_eq!(status, 200, "{answer}");
        let last = answer.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["action"], "hold", "{last}");
    }
    for (name, role) in [
        ("vera", Role::Viewer),
        ("ana", Role::Analyst),
        ("bob", Role::Analyst),
        ("lea", Role::Lead),
        ("lou", Role::Lead),
        ("adm", Role::Admin),
    ] {
        add_user(&server, name, role);
    }
    server
}

#[tokio::test]
async fn the_queue_is_ordered_by_money_and_says_why_behind_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;

    // Not logged in: the login page, never the queue.
    let mut anonymous = Browser::new(&server);
    let page = anonymous.get("/console/queue").await;
    assert_eq!(
        (page.status.as_u16(), page.location()),
        (303, "/console/login")
    );

    let mut vera = Browser::logged_in(&server, "vera").await;
    let cookie = vera.cookies.get("custos_session").unwrap().clone();
    assert_eq!(cookie.len(), 64);
    let page = vera.get("/console/queue").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "no script at all");
    // Not no-referrer: browsers would then post `Origin: null`.
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    // The most money first.
    let at = |needle: &str| {
        page.body
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    assert!(at(">9,000.00 GBP</a>") < at(">3,000.00 GBP</a>"));
    assert!(at(">3,000.00 GBP</a>") < at(">200.00 GBP</a>"));
    // Count and sum at the top.
    assert!(page.body.contains("<strong>3</strong>"), "{}", page.body);
    assert!(page.body.contains("12,200.00 GBP"), "{}", page.body);
    // Why, in words from the rule, and the time left.
    assert!(page.body.contains("left") || page.body.contains("cool-off ended"));
    assert!(page.body.contains("payout_while_account_at_risk"));
    // Above the rules, one line in plain words from what they saw: the
    // takeover story's bank change a day before the payout, in the
    // attacker's session from his box and his network; no raw seconds.
    let lines: Vec<&str> = page
        .body
        .split("<p class=\"why-line\">")
        .skip(1)
        .filter_map(|rest| rest.split("</p>").next())
        .collect();
    let story = "Bank account set 23 h 59 min before this payout, in a session from a device \
        and a network this seller had not used (185.220.101.0/24), not verified since; the \
        first payout to it, not confirmed by the owner; the account is at risk and not cleared \
        since; ";
    // The first account held (the smallest) was in no campaign yet when its
    // payout was decided; the later two paid into the campaign's account.
    assert_eq!(
        lines,
        [
            format!("{story}the bank account is in campaign cmp_1."),
            format!("{story}the bank account is in campaign cmp_1."),
            format!("{story}the seller is in campaign cmp_1."),
        ],
        "{}",
        page.body
    );
    // The rules' detail stays below, its durations in words too.
    assert!(
        page.body.contains("destination.age = 23 h 59 min"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("86340"), "{}", page.body);

    // Filters: a minimum amount, a rule.
    let page = vera.get("/console/queue?min_amount=1000").await;
    assert!(page.body.contains("9,000.00 GBP") && page.body.contains("3,000.00 GBP"));
    assert!(!page.body.contains(">200.00 GBP</a>"), "{}", page.body);
    let page = vera.get("/console/queue?rule=no_such_rule").await;
    assert!(page.body.contains("No open holds match."));
    let page = vera.get("/console/queue?min_amount=lots").await;
    assert_eq!(page.status, 400);

    // Hold detail, the account and the login cookie's attributes.
    let page = vera.get("/console/holds/large/p1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("9,000.00 GBP"));
    // A viewer is offered no action.
    assert!(!page.body.contains("/release\""), "{}", page.body);
    let page = vera.get("/console/accounts/large").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("large-atk-change"), "{}", page.body);
    // Its devices and networks, from the behavioural profile.
    assert!(page.body.contains("Devices and networks"), "{}", page.body);
    // The ten logins from home; the attacker's is not learnt.
    assert!(page.body.contains("10 logins kept"), "{}", page.body);
    // Paged: 25 events, 50 to a page.
    assert!(!page.body.contains("?page=1"), "{}", page.body);
    let page = vera.get("/console/accounts/large?page=1").await;
    assert!(
        page.body.contains("No events on this page."),
        "{}",
        page.body
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_strict_and_logout_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut ana = Browser::new(&server);
    let page = ana.login("ana", PASSWORD).await;
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("custos_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "not without console.secure_cookie"
    );
    let session = ana.cookies["custos_session"].clone();
    let queue = ana.get("/console/queue").await;
    let csrf = queue.csrf();
    let page = ana.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (page.status.as_u16(), page.location()),
        (303, "/console/login")
    );
    // The old cookie no longer works.
    ana.cookies.insert("custos_session".into(), session);
    let page = ana.get("/console/queue").await;
    assert_eq!(page.status, 303);

    // Wrong password; unknown user: the same answer.
    let mut eve = Browser::new(&server);
    let wrong = eve.login("ana", "not the password at all").await;
    let unknown = eve.login("nobody", PASSWORD).await;
    assert_eq!((wrong.status.as_u16(), unknown.status.as_u16()), (401, 401));
    assert!(wrong.body.contains("wrong name or password"));

    // A login form posted without its cookie (another site's form) is refused.
    let mut other = Browser::new(&server);
    let page = other
        .post(
            "/console/login",
            &[("name", "ana"), ("password", PASSWORD), ("csrf", "x")],
        )
        .await;
    assert_eq!(page.status, 403);
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn posts_without_or_with_a_wrong_csrf_token_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut ana = Browser::logged_in(&server, "ana").await;
    for form in [
        vec![("reason", "ok")],
        vec![("reason", "ok"), ("csrf", "0000")],
    ] {
        let page = ana.post("/console/holds/small/p1/release", &form).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.body.contains("security token"), "{}", page.body);
    }
    // Nothing was released.
    let (_, hold) = server.get("/v1/holds/p1?account_id=small").await;
    assert_eq!(hold["status"], "held");
    // Another session's token does not do either.
    let bob = Browser::logged_in(&server, "bob").await;
    let mut bob = bob;
    let bobs = bob.get("/console/queue").await.csrf();
    let page = ana
        .post(
            "/console/holds/small/p1/release",
            &[("reason", "ok"), ("csrf", &bobs)],
        )
        .await;
    assert_eq!(page.status, 403);
    // Not logged in at all.
    let mut anonymous = Browser::new(&server);
    let page = anonymous
        .post(
            "/console/holds/small/p1/release",
            &[("reason", "ok"), ("csrf", &bobs)],
        )
        .await;
    assert_eq!(page.status, 403);
    // Another site's page (or an opaque one) is refused at the edge.
    let csrf = ana.get("/console/queue").await.csrf();
    for origin in ["null", "https://evil.example"] {
        let answer = ana
            .client
            .post(format!("{}/console/holds/small/p1/release", ana.base))
            .header("cookie", ana.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", origin)
            .body(format!("reason=ok&csrf={csrf}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{origin}");
    }
    let (_, hold) = server.get("/v1/holds/p1?account_id=small").await;
    assert_eq!(hold["status"], "held");
    // A GET cannot change anything.
    let page = ana.get("/console/holds/small/p1/release").await;
    assert_eq!(page.status, 405);
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn roles_decide_who_acts_and_four_eyes_need_a_second_lead() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;

    // A viewer cannot act.
    let mut vera = Browser::logged_in(&server, "vera").await;
    let csrf = vera.get("/console/queue").await.csrf();
    let page = vera
        .post(
            "/console/holds/small/p1/release",
            &[("reason", "ok"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("holds:write"), "{}", page.body);

    // Below the four-eyes amount an analyst releases at once, through the
    // analyst_action path: the event names the person.
    let mut ana = Browser::logged_in(&server, "ana").await;
    let csrf = ana.get("/console/queue").await.csrf();
    let page = ana
        .post(
            "/console/holds/small/p1/release",
            &[("reason", "owner called"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=small").await;
    assert_eq!(hold["status"], "released", "{hold}");
    assert_eq!(hold["resolution"]["by"], "ana");

    // Above it, the release only asks.
    let page = ana
        .post(
            "/console/holds/large/p1/release",
            &[("reason", "looks fine"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("waits for a lead"), "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=large").await;
    assert_eq!(hold["status"], "held");
    let page = ana.get("/console/approvals").await;
    assert!(page.body.contains("looks fine") && page.body.contains("pending"));
    let id = "1";

    // An analyst cannot approve, nor can the requester, even as a lead.
    let page = ana
        .post(
            &format!("/console/approvals/{id}/approve"),
            &[("reason", "me"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("holds:approve"), "{}", page.body);
    let mut lea = Browser::logged_in(&server, "lea").await;
    let lea_csrf = lea.get("/console/queue").await.csrf();
    let page = lea
        .post(
            "/console/holds/middle/p1/release",
            &[("reason", "mine"), ("csrf", &lea_csrf)],
        )
        .await;
    assert!(page.body.contains("waits for a lead"), "{}", page.body);
    let page = lea
        .post(
            "/console/approvals/2/approve",
            &[("reason", "self"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("nobody approves their own request"));

    // A second lead approves: the hold is released, naming both.
    let page = lea
        .post(
            &format!("/console/approvals/{id}/approve"),
            &[("reason", "called the seller"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=large").await;
    assert_eq!(hold["status"], "released", "{hold}");
    assert_eq!(hold["resolution"]["by"], "ana, approved by lea");
    // Once only.
    let page = lea
        .post(
            &format!("/console/approvals/{id}/approve"),
            &[("reason", "again"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 409);
    // Another lead rejects lea's own request: it stays held.
    let mut lou = Browser::logged_in(&server, "lou").await;
    let lou_csrf = lou.get("/console/queue").await.csrf();
    let page = lou
        .post(
            "/console/approvals/2/reject",
            &[("reason", "not convinced"), ("csrf", &lou_csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=middle").await;
    assert_eq!(hold["status"], "held");

    // The audit trail: admin only; who, what, from where; exportable.
    let page = lea.get("/console/audit").await;
    assert_eq!(page.status, 403);
    let mut adm = Browser::logged_in(&server, "adm").await;
    let page = adm.get("/console/audit").await;
    assert_eq!(page.status, 200);
    for action in [
        "release_requested",
        "release_approved",
        "release_rejected",
        "login",
    ] {
        assert!(page.body.contains(action), "{action} in {}", page.body);
    }
    let page = adm.get("/console/audit.ndjson").await;
    assert_eq!(page.status, 200);
    let entries: Vec<Value> = page
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let approved = entries
        .iter()
        .find(|e| e["action"] == "release_approved")
        .unwrap();
    assert_eq!(approved["actor"], "lea");
    assert_eq!(approved["address"], "127.0.0.1");
    assert_eq!(approved["target"], "hold large/p1");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "release" && e["actor"] == "ana")
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_ids_render_as_text_and_unknown_ids_give_a_404_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(console_config(dir.path())).await;
    add_user(&server, "vera", Role::Viewer);
    let hostile = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
    ];
    for account in hostile {
        let (status, answer) = server.post(&json!(story(account))).await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut vera = Browser::logged_in(&server, "vera").await;
    let page = vera.get("/console/queue").await;
    assert_eq!(page.status, 200);
    for raw in ["<script>alert(1)</script>", "<img src=x", "\"><img"] {
        assert!(!page.body.contains(raw), "{raw} unescaped in {}", page.body);
    }
    // Shown as text: escaped, whichever entities the templates use.
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
            || page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    let path = format!(
        "/console/accounts/{}",
        url::form_urlencoded::byte_serialize(hostile[1].as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    );
    let page = vera.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<img src=x"));
    // Their campaign's graph: both drawn, named as text, linked by
    // percent-encoded paths.
    let page = vera.get("/console/campaigns/cmp_1").await;
    let (svg, table) = links_of(&page);
    assert_eq!(svg.matches("class=\"node account\"").count(), 2, "{svg}");
    assert!(
        svg.contains("href=\"/console/accounts/%3Cscript%3Ealert%281%29%3C%2Fscript%3E\""),
        "{svg}"
    );
    for part in [svg, table] {
        assert!(
            part.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || part.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{part}"
        );
    }
    // Their campaign's page (victims, chart, graph, forms) and the queue's
    // echoed filter values too.
    for path in [
        "/console/campaigns/cmp_1",
        "/console/queue?older_than_hours=1&campaign=%3Cscript%3Ealert(1)%3C/script%3E",
    ] {
        let page = vera.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        for raw in ["<script>alert(1)</script>", "<img src=x", "\"><img"] {
            assert!(
                !page.body.contains(raw),
                "{path}: {raw} unescaped in {}",
                page.body
            );
        }
    }

    for path in [
        "/console/accounts/nobody",
        "/console/holds/nobody/p9",
        "/console/campaigns/cmp_999",
        "/console/campaigns/%3Cscript%3E",
        "/console/no/such/page",
    ] {
        let page = vera.get(path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(page.body.contains("<!doctype html>"), "{path}");
        assert!(!page.body.contains("<script>"), "{path}");
    }
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn failed_logins_are_limited_and_a_disabled_user_is_logged_out_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = console_config(dir.path());
    config.console.secure_cookie = true;
    let server = TestServer::start(config).await;
    add_user(&server, "ana", Role::Analyst);
    add_user(&server, "bob", Role::Analyst);
    let mut eve = Browser::new(&server);
    for _ in 0..3 {
        let page = eve.login("ana", "guess guess guess").await;
        assert_eq!(page.status, 401);
    }
    // Past the limit even the right password is not checked.
    let page = eve.login("ana", PASSWORD).await;
    assert_eq!(page.status, 429, "{}", page.body);
    // Other users are not locked out by it.
    let mut bob = Browser::new(&server);
    let page = bob.login("bob", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.body);
    // With console.secure_cookie the session cookie is Secure too.
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("custos_session=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    assert_eq!(bob.get("/console/queue").await.status, 200);

    // Disabling (as `custos users disable` does, from another process)
    // ends the session at its next request.
    let db = ConsoleDb::open_in(dir.path()).unwrap();
    db.set_disabled("bob", true).unwrap();
    let page = bob.get("/console/queue").await;
    assert_eq!(
        (page.status.as_u16(), page.location()),
        (303, "/console/login")
    );
    let page = bob.login("bob", PASSWORD).await;
    assert_eq!(page.status, 401);
    // Enabled again, the old session stays ended.
    db.set_disabled("bob", false).unwrap();
    let page = bob.get("/console/queue").await;
    assert_eq!(page.status, 303);
    let audit: Vec<String> = db
        .audit_page(None, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(audit.contains(&"login_throttled".to_string()), "{audit:?}");
    assert_eq!(
        audit.iter().filter(|a| *a == "login_failed").count(),
        4,
        "{audit:?}"
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_campaign_lists_its_victims_in_time_order_and_an_analyst_confirms_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut vera = Browser::logged_in(&server, "vera").await;
    let page = vera.get("/console/queue").await;
    assert!(
        page.body.contains("/console/campaigns/cmp_1"),
        "{}",
        page.body
    );
    let page = vera.get("/console/campaigns/cmp_1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("suspected"));
    // Every victim, listed by the time they joined.
    let victims = &page.body[page.body.find("Victims in order of time").unwrap()
        ..page.body.find("Shared destinations").unwrap()];
    for account in ["small", "large", "middle"] {
        assert!(victims.contains(&format!(">{account}</a>")), "{victims}");
    }
    let joined: Vec<&str> = victims
        .split("<tr><td>")
        .skip(1)
        .map(|row| &row[..19])
        .collect();
    assert_eq!(joined.len(), 3, "{victims}");
    assert!(joined.windows(2).all(|w| w[0] <= w[1]), "{joined:?}");
    // Per victim, the money lost (paid out) and stopped (held) since its
    // first risky change: each had its payout held.
    let row = |account: &str| {
        let start = victims.find(&format!(">{account}</a>")).unwrap();
        &victims[start..start + victims[start..].find("</tr>").unwrap()]
    };
    assert!(
        row("large").contains("<td class=\"num\">none</td><td class=\"num\">9,000.00 GBP</td>"),
        "{}",
        row("large")
    );
    assert!(
        row("small").contains(">200.00 GBP</td>"),
        "{}",
        row("small")
    );
    // The institution's burst against its baseline: an inline SVG, one bar
    // per day of the seven-day window, the baseline dashed, no script.
    let chart = &page.body[page.body.find("<svg").unwrap()..page.body.find("</svg>").unwrap()];
    assert_eq!(chart.matches("<rect class=\"all\"").count(), 7, "{chart}");
    assert!(chart.contains("class=\"baseline\""), "{chart}");
    assert!(chart.contains("toward 236972 per day"), "{chart}");
    // The last day: three changes, all risky (the attacker's).
    assert!(chart.contains(": 3 changes, 3 risky"), "{chart}");
    assert!(!page.body.contains("<script"), "no script");
    assert!(
        !page.body.contains("/confirm\""),
        "a viewer is offered no action"
    );
    let csrf = page.csrf();
    let refused = vera
        .post(
            "/console/campaigns/cmp_1/confirm",
            &[("reason", "x"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 403);

    let mut ana = Browser::logged_in(&server, "ana").await;
    let csrf = ana.get("/console/campaigns/cmp_1").await.csrf();
    let page = ana
        .post(
            "/console/campaigns/cmp_1/confirm",
            &[("reason", "same mule account"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, campaign) = server.get("/v1/campaigns/cmp_1").await;
    assert_eq!(campaign["status"], "confirmed", "{campaign}");
    assert_eq!(campaign["status_by"]["by"], "ana");
    server.server.stop().await.unwrap();
}

/// The campaign page's link graph: the `<figure class="links">` and its
/// table.
fn links_of(page: &Page) -> (&str, &str) {
    let start = page
        .body
        .find("<figure class=\"links\">")
        .unwrap_or_else(|| panic!("no link graph in {}", page.body));
    let end = start + page.body[start..].find("</figure>").unwrap();
    let table_start = page.body.find("<table id=\"link-table\">").unwrap();
    let table_end = table_start + page.body[table_start..].find("</table>").unwrap();
    (&page.body[start..end], &page.body[table_start..table_end])
}

#[tokio::test]
async fn the_campaign_graph_draws_every_victim_and_shared_artefact_as_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    // Two more victims whose change itself came from the attacker's device
    // and address (the first three only logged in from them): those link
    // too.
    for account in ["fourth", "fifth"] {
        let mut events = held(account, 30_000);
        let change = events
            .iter_mut()
            .find(|e| e["type"] == "payout_destination_change")
            .unwrap();
        change["ip"] = json!("185.220.101.4");
        change["device_id"] = json!("box");
        let (status, answer) = server.post(&json!(events)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut vera = Browser::logged_in(&server, "vera").await;
    let page = vera.get("/console/campaigns/cmp_1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (svg, table) = links_of(&page);
    // One node per victim; the mule once (all five used it), and the
    // device, the address and its network once each (the last two).
    assert_eq!(svg.matches("class=\"node account\"").count(), 5, "{svg}");
    for kind in ["destination", "device", "ip", "network"] {
        assert_eq!(
            svg.matches(&format!("class=\"node {kind}\"")).count(),
            1,
            "{kind}: {svg}"
        );
    }
    assert_eq!(svg.matches("<line ").count(), 5 + 2 * 3, "{svg}");
    assert_eq!(svg.matches("<title>").count(), 1 + 5 + 4, "a tooltip each");
    // Accounts link to their pages, artefacts to a search for them.
    for account in ["small", "large", "middle", "fourth", "fifth"] {
        assert!(
            svg.contains(&format!("href=\"/console/accounts/{account}\"")),
            "{svg}"
        );
    }
    let (_, campaign) = server.get("/v1/campaigns/cmp_1").await;
    let token = campaign["destinations"][0]["account_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mule = format!("/console/search?q={token}");
    assert!(svg.contains(&format!("href=\"{mule}\"")), "{svg}");
    assert!(svg.contains(">236972 ending 1234</text>"), "{svg}");
    assert!(svg.contains("href=\"/console/search?q=box\""), "{svg}");
    assert!(svg.contains(">network 185.220.101.0/24</text>"), "{svg}");
    assert!(
        svg.contains("href=\"/console/search?q=185.220.101.0\""),
        "{svg}"
    );
    // The address itself is not kept by the engine: its node points at
    // its row of the table.
    let address = &svg[svg.find("class=\"node ip\"").unwrap()..];
    let href = &address[address.find("href=\"").unwrap() + 6..];
    let href = &href[..href.find('"').unwrap()];
    assert!(href.starts_with("#link-"), "{address}");
    assert!(
        table.contains(&format!("<tr id=\"{}\">", &href[1..])),
        "{table}"
    );
    // The links lead where they say: the mule's search finds the five.
    let found = vera.get(&mule).await;
    assert_eq!(found.status, 200);
    for account in ["small", "large", "middle", "fourth", "fifth"] {
        assert!(
            found.body.contains(&format!(">account {account}</a>")),
            "{}",
            found.body
        );
    }
    for search in ["185.220.101.0", "box"] {
        let found = vera.get(&format!("/console/search?q={search}")).await;
        assert!(found.body.contains(">account fifth</a>"), "{}", found.body);
    }
    // The table repeats every link, with the accounts that used each.
    assert_eq!(table.matches("<tr id=\"link-").count(), 4, "{table}");
    let mule_row = &table[table.find(&format!("href=\"{mule}\"")).unwrap()..];
    let mule_row = &mule_row[..mule_row.find("</tr>").unwrap()];
    for account in ["small", "large", "middle", "fourth", "fifth"] {
        assert!(
            mule_row.contains(&format!(
                "<a href=\"/console/accounts/{account}\">{account}</a>"
            )),
            "{mule_row}"
        );
    }
    assert!(!page.body.contains("<script"), "no script");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_campaign_with_more_victims_than_drawn_draws_the_first_and_says_how_many_more() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(console_config(dir.path())).await;
    add_user(&server, "vera", Role::Viewer);
    let victims: Vec<String> = (0..103).map(|i| format!("v{i:03}")).collect();
    for chunk in victims.chunks(40) {
        let events: Vec<Value> = chunk.iter().flat_map(|a| story(a)).collect();
        let (status, answer) = server.post(&json!(events)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (_, campaign) = server.get("/v1/campaigns/cmp_1").await;
    assert_eq!(
        campaign["accounts"].as_array().unwrap().len(),
        103,
        "{campaign}"
    );
    let mut vera = Browser::logged_in(&server, "vera").await;
    let page = vera.get("/console/campaigns/cmp_1").await;
    assert_eq!(page.status, 200);
    let (svg, table) = links_of(&page);
    assert_eq!(svg.matches("class=\"node account\"").count(), 100, "{svg}");
    assert_eq!(svg.matches("class=\"node destination\"").count(), 1);
    assert_eq!(svg.matches("<line ").count(), 100);
    // The first hundred to join; the caption counts the rest and links to
    // the full list of victims, which has them all.
    let first: Vec<String> = campaign["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["account_id"].as_str().unwrap().to_string())
        .collect();
    for (i, account) in first.iter().enumerate() {
        let drawn = svg.contains(&format!("href=\"/console/accounts/{account}\""));
        assert_eq!(drawn, i < 100, "{account} at {i}");
    }
    assert!(
        page.body.contains(
            "3 more accounts are not drawn: see <a href=\"#victims\">the victims list</a>"
        ),
        "{svg}"
    );
    assert!(page.body.contains("<h2 id=\"victims\">"));
    assert!(
        table.contains(">103</td>"),
        "the table counts them all: {table}"
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn queue_rows_and_account_pages_link_the_cases_of_their_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let middle = case_of(&server, "middle").await;
    let middle_case = middle["id"].as_str().unwrap().to_string();
    let who = json!({"analyst": "ana", "reason": "called the seller", "assignee": "bob"});
    let (status, _) = post_json(&server, &format!("/v1/cases/{middle_case}/assign"), who).await;
    assert_eq!(status, 200);
    let mut vera = Browser::logged_in(&server, "vera").await;
    let page = vera.get("/console/queue").await;
    let row = |body: &str, account: &str| -> String {
        let start = body
            .find(&format!(">{account}</a>"))
            .unwrap_or_else(|| panic!("no {account} in {body}"));
        body[start..start + body[start..].find("</tr>").unwrap()].to_string()
    };
    for account in ["small", "large", "middle"] {
        let case = case_of(&server, account).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let row = row(&page.body, account);
        assert!(
            row.contains(&format!("<a href=\"/console/cases/{case}\">{case}</a>")),
            "{account}: {row}"
        );
    }
    // Resolved while its payout stays held (above the four-eyes amount, or
    // inconclusive): the row still names the case its hold opened in.
    let body = json!({"analyst": "ana", "reason": "no answer", "resolution": "inconclusive"});
    let (status, done) =
        post_json(&server, &format!("/v1/cases/{middle_case}/resolve"), body).await;
    assert_eq!(status, 200, "{done}");
    let page = vera.get("/console/queue").await;
    assert!(
        row(&page.body, "middle").contains(&format!("/console/cases/{middle_case}\"")),
        "{}",
        page.body
    );
    // The account page lists the account's cases, open ones first.
    let page = vera.get("/console/accounts/middle").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cases = &page.body[page.body.find("<h2>Cases</h2>").unwrap()
        ..page.body.find("<h2>Devices and networks</h2>").unwrap()];
    let campaign_at = cases
        .find("<a href=\"/console/cases/campaign-cmp_1\">campaign-cmp_1</a>")
        .unwrap_or_else(|| panic!("{cases}"));
    let own_at = cases
        .find(&format!(
            "<a href=\"/console/cases/{middle_case}\">{middle_case}</a>"
        ))
        .unwrap_or_else(|| panic!("{cases}"));
    assert!(campaign_at < own_at, "open first: {cases}");
    let own = &cases[own_at..];
    let own = &own[..own.find("</tr>").unwrap()];
    assert!(own.contains("<td>resolved: inconclusive</td>"), "{own}");
    assert!(own.contains("<td>bob</td>"), "{own}");
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn an_analyst_takes_a_hold_or_gives_it_to_another_and_the_queue_filters_by_assignee() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut ana = Browser::logged_in(&server, "ana").await;
    let csrf = ana.get("/console/queue").await.csrf();
    let page = ana
        .post("/console/holds/small/p1/assign", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("assigned to ana"), "{}", page.body);
    let page = ana
        .post(
            "/console/holds/middle/p1/assign",
            &[("assignee", "bob"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Only someone who may work holds, and only an existing hold.
    for (path, assignee, status) in [
        ("/console/holds/large/p1/assign", "vera", 400),
        ("/console/holds/large/p1/assign", "nobody", 400),
        ("/console/holds/large/p9/assign", "bob", 404),
    ] {
        let page = ana
            .post(path, &[("assignee", assignee), ("csrf", &csrf)])
            .await;
        assert_eq!(page.status, status, "{assignee}: {}", page.body);
    }
    let mine = ana.get("/console/queue?assignee=me").await;
    assert!(mine.body.contains(">200.00 GBP</a>"), "{}", mine.body);
    assert!(!mine.body.contains(">3,000.00 GBP</a>"));
    let bobs = ana.get("/console/queue?assignee=bob").await;
    assert!(bobs.body.contains(">3,000.00 GBP</a>") && !bobs.body.contains(">200.00 GBP</a>"));
    let nobodys = ana.get("/console/queue?assignee=none").await;
    assert!(nobodys.body.contains(">9,000.00 GBP</a>"));
    assert!(
        !nobodys.body.contains(">200.00 GBP</a>") && !nobodys.body.contains(">3,000.00 GBP</a>")
    );

    // A viewer cannot.
    let mut vera = Browser::logged_in(&server, "vera").await;
    let csrf = vera.get("/console/queue").await.csrf();
    let page = vera
        .post("/console/holds/large/p1/assign", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, 403);
    let db = ConsoleDb::open_in(dir.path()).unwrap();
    let actions: Vec<(String, String)> = db
        .audit_page(None, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.detail))
        .collect();
    assert!(
        actions.contains(&("hold_taken".into(), "ana".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("hold_assigned".into(), "bob".into())),
        "{actions:?}"
    );
    server.server.stop().await.unwrap();
}

/// The account's own case (not its campaign's), from `GET /v1/cases`.
async fn case_of(server: &TestServer, account: &str) -> Value {
    let (status, list) = server.get(&format!("/v1/cases?account_id={account}")).await;
    assert_eq!(status, 200, "{list}");
    let own: Vec<&Value> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["campaign"].is_null())
        .collect();
    assert_eq!(own.len(), 1, "{list}");
    own[0].clone()
}

async fn post_json(server: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    server
        .send_to(
            reqwest::Method::POST,
            path,
            "application/json",
            body.to_string(),
        )
        .await
}

#[tokio::test]
async fn holds_open_cases_that_the_api_works_and_resolving_feeds_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;

    // The engine opened one case per account, holding its hold; the three
    // share a mule destination, so a campaign was found, whose case links
    // the three.
    let (_, all) = server.get("/v1/cases?status=open").await;
    assert_eq!(all["total"], 4, "{all}");
    let (_, campaign) = server.get("/v1/cases/campaign-cmp_1").await;
    assert_eq!(campaign["campaign"], "cmp_1", "{campaign}");
    assert_eq!(
        campaign["linked"].as_array().unwrap().len(),
        3,
        "{campaign}"
    );
    let small = case_of(&server, "small").await;
    assert_eq!(small["holds"], 1, "{small}");
    let id = small["id"].as_str().unwrap().to_string();
    let (status, case) = server.get(&format!("/v1/cases/{id}")).await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["holds"], json!(["small/p1"]), "{case}");

    // Notes, assignment, status: events in the log, kept in the case.
    let who = json!({"analyst": "ana", "reason": "called the seller"});
    let (status, case) = post_json(&server, &format!("/v1/cases/{id}/notes"), who.clone()).await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["notes"][0]["detail"], "called the seller");
    let mut body = who.clone();
    body["assignee"] = json!("bob");
    let (_, case) = post_json(&server, &format!("/v1/cases/{id}/assign"), body).await;
    assert_eq!(case["assignee"], "bob", "{case}");
    let mut body = who.clone();
    body["status"] = json!("investigating");
    let (_, case) = post_json(&server, &format!("/v1/cases/{id}/status"), body).await;
    assert_eq!(case["status"], "investigating", "{case}");
    let (_, mine) = server.get("/v1/cases?assignee=bob").await;
    assert_eq!(mine["total"], 1, "{mine}");

    // Bad input: the standard error body.
    let (status, body) = server.get("/v1/cases/nope").await;
    crate::assert_error(status, &body, 404, "case_not_found");
    let mut body = who.clone();
    body["resolution"] = json!("maybe");
    let (status, body) = post_json(&server, &format!("/v1/cases/{id}/resolve"), body).await;
    crate::assert_error(status, &body, 400, "invalid_field");
    let (status, body) = post_json(&server, &format!("/v1/cases/{id}/notes"), json!({})).await;
    crate::assert_error(status, &body, 400, "missing_field");
    let (status, body) = server.get("/v1/cases?status=closed").await;
    crate::assert_error(status, &body, 400, "invalid_field");

    // False positive below the four-eyes amount: cleared and released.
    let mut fp = who.clone();
    fp["resolution"] = json!("false_positive");
    let (status, done) = post_json(&server, &format!("/v1/cases/{id}/resolve"), fp.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["case"]["status"], "resolved");
    assert_eq!(done["case"]["resolution"], "false_positive");
    assert_eq!(done["feedback"]["cleared"], json!(["small"]), "{done}");
    let (_, hold) = server.get("/v1/holds/p1?account_id=small").await;
    assert_eq!(hold["status"], "released", "{hold}");
    // Resolved: only notes.
    let mut assign = who.clone();
    assign["assignee"] = json!("ana");
    let (status, body) = post_json(&server, &format!("/v1/cases/{id}/assign"), assign).await;
    crate::assert_error(status, &body, 409, "case_resolved");

    // Above the four-eyes amount the hold stays held for a lead.
    let middle = case_of(&server, "middle").await;
    let (_, done) = post_json(
        &server,
        &format!("/v1/cases/{}/resolve", middle["id"].as_str().unwrap()),
        fp,
    )
    .await;
    assert_eq!(done["feedback"]["left_held"][0]["hold_id"], "p1", "{done}");
    let (_, hold) = server.get("/v1/holds/p1?account_id=middle").await;
    assert_eq!(hold["status"], "held", "{hold}");

    // Fraud confirmed labels the account, which denies its destination.
    let large = case_of(&server, "large").await;
    let large_id = large["id"].as_str().unwrap().to_string();
    let mut body = who.clone();
    body["resolution"] = json!("fraud_confirmed");
    let (status, done) = post_json(&server, &format!("/v1/cases/{large_id}/resolve"), body).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["feedback"]["labelled"], json!(["large"]), "{done}");
    assert_eq!(done["feedback"]["campaign_confirmed"], "cmp_1", "{done}");
    let (_, cmp) = server.get("/v1/campaigns/cmp_1").await;
    assert_eq!(cmp["status"], "confirmed", "{cmp}");
    let (_, account) = server.get("/v1/accounts/large").await;
    assert!(account.to_string().contains("fraud"), "{account}");

    // Merging and adding accounts; a manual case.
    let (status, opened) = post_json(
        &server,
        "/v1/cases",
        json!({"analyst": "ana", "reason": "same mule?", "account_id": "middle"}),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    let manual = opened["id"].as_str().unwrap().to_string();
    let mut body = who.clone();
    body["account_id"] = json!("small");
    let (_, case) = post_json(&server, &format!("/v1/cases/{manual}/accounts"), body).await;
    assert_eq!(case["accounts"], json!(["middle", "small"]), "{case}");
    let (_, other) = post_json(
        &server,
        "/v1/cases",
        json!({"analyst": "ana", "reason": "second", "account_id": "large"}),
    )
    .await;
    let mut body = who.clone();
    body["into"] = json!(manual);
    let (status, merged) = post_json(
        &server,
        &format!("/v1/cases/{}/merge", other["id"].as_str().unwrap()),
        body,
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["id"], manual.as_str());
    assert_eq!(merged["accounts"], json!(["middle", "small", "large"]));

    // Every case action is in the log: a restart gives the same cases.
    let (_, before) = server.get("/v1/cases?limit=1000").await;
    let server = server.restart().await;
    let (_, after) = server.get("/v1/cases?limit=1000").await;
    assert_eq!(before, after);

    // What the key changed is in the console's audit trail, by key name.
    let mut adm = Browser::logged_in(&server, "adm").await;
    let page = adm.get("/console/audit.ndjson").await;
    assert!(
        page.body.contains("POST /v1/cases/{case_id}/resolve") && page.body.contains("\"key:"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_console_lists_cases_and_works_one_with_csrf_roles_and_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let large = case_of(&server, "large").await;
    let id = large["id"].as_str().unwrap().to_string();
    let href = format!("/console/cases/{id}");

    let mut ana = Browser::logged_in(&server, "ana").await;
    let page = ana.get("/console/cases").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&href), "{}", page.body);
    // The hold page leads to its case.
    let page = ana.get("/console/holds/large/p1").await;
    assert!(
        page.body.contains(&format!("href=\"{href}\"")),
        "{}",
        page.body
    );
    let page = ana.get(&href).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("/console/holds/large/p1"),
        "{}",
        page.body
    );
    assert!(page.body.contains("9,000.00 GBP"), "{}", page.body);
    let csrf = page.csrf();

    // A note that tries to be markup is text.
    let page = ana
        .post(
            &format!("{href}/notes"),
            &[("reason", "<script>alert(1)</script>"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = ana.get(&href).await;
    assert!(!page.body.contains("<script>alert(1)"), "{}", page.body);
    assert!(
        page.body.contains("&#60;script&#62;alert(1)"),
        "{}",
        page.body
    );

    // Without the token, or as a viewer: refused.
    let page = ana
        .post(
            &format!("{href}/notes"),
            &[("reason", "x"), ("csrf", "wrong")],
        )
        .await;
    assert_eq!(page.status, 403);
    let mut vera = Browser::logged_in(&server, "vera").await;
    let vcsrf = vera.get(&href).await.csrf();
    let page = vera
        .post(
            &format!("{href}/notes"),
            &[("reason", "x"), ("csrf", &vcsrf)],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("holds:write"), "{}", page.body);
    let page = ana.get("/console/cases/nope").await;
    assert_eq!(page.status, 404);

    // Take it, then resolve as a false positive: the large hold becomes a
    // release request for a lead, not a release.
    let page = ana
        .post(
            &format!("{href}/assign"),
            &[("assignee", ""), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = ana.get("/console/cases?assignee=me").await;
    assert!(page.body.contains(&href), "{}", page.body);
    let page = ana
        .post(
            &format!("{href}/resolve"),
            &[
                ("resolution", "false_positive"),
                ("reason", "owner confirmed the new bank"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("wait for a lead"), "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=large").await;
    assert_eq!(hold["status"], "held", "{hold}");
    let page = ana.get("/console/approvals").await;
    assert!(
        page.body.contains("owner confirmed the new bank"),
        "{}",
        page.body
    );
    let (_, case) = server.get(&format!("/v1/cases/{id}")).await;
    assert_eq!(case["status"], "resolved");
    assert_eq!(case["assignee"], "ana");
}

#[tokio::test]
async fn search_finds_accounts_events_payouts_destinations_networks_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut vera = Browser::logged_in(&server, "vera").await;
    let mut find = async |q: &str, institution: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .append_pair("institution", institution)
            .finish();
        let page = vera.get(&format!("/console/search?{query}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.body
    };
    let accounts = |body: &str| {
        ["small", "middle", "large"]
            .into_iter()
            .filter(|a| body.contains(&format!("href=\"/console/accounts/{a}\"")))
            .count()
    };
    let body = find("large", "").await;
    assert!(body.contains("account id"), "{body}");
    assert_eq!(accounts(&body), 1);
    let body = find("middle-atk-payout", "").await;
    assert!(body.contains("event id, payout"), "{body}");
    let body = find("p1", "").await;
    assert_eq!(body.matches("payout id").count(), 3, "{body}");
    // The shared mule account: by last four at its institution, and not at
    // another one.
    let body = find("1234", "23-69-72").await;
    assert_eq!(accounts(&body), 3, "{body}");
    assert!(body.contains("ending 1234"), "{body}");
    let body = find("1234", "99-99-99").await;
    assert_eq!(accounts(&body), 0, "{body}");
    // The attacker's address, its prefix, and device.
    for q in ["185.220.101.4", "185.220.", "box"] {
        let body = find(q, "").await;
        assert_eq!(accounts(&body), 3, "{q}: {body}");
    }
    let body = find("81.2.69.1", "").await;
    assert_eq!(accounts(&body), 3, "{body}");
    let body = find("<script>alert(1)</script>", "").await;
    assert!(body.contains("Nothing found"), "{body}");
    assert!(!body.contains("<script>alert(1)"), "{body}");
}

/// The audit trail's (actor, action, target, detail), oldest first.
fn audit_entries(dir: &std::path::Path) -> Vec<(String, String, String, String)> {
    let db = ConsoleDb::open_in(dir).unwrap();
    let mut entries: Vec<_> = db
        .audit_page(None, 1_000)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.target, e.detail))
        .collect();
    entries.reverse();
    entries
}

#[tokio::test]
async fn releasing_a_whole_campaign_or_dismissing_it_always_needs_a_second_lead() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;

    // A viewer can ask for neither.
    let mut vera = Browser::logged_in(&server, "vera").await;
    let csrf = vera.get("/console/campaigns/cmp_1").await.csrf();
    for action in ["release-all", "dismiss"] {
        let page = vera
            .post(
                &format!("/console/campaigns/cmp_1/{action}"),
                &[("reason", "x"), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.status, 403, "{action}: {}", page.body);
        assert!(page.body.contains("holds:write"), "{}", page.body);
    }

    // An analyst asks for every open hold to be released: nothing moves yet.
    let mut ana = Browser::logged_in(&server, "ana").await;
    let page = ana.get("/console/campaigns/cmp_1").await;
    assert!(
        page.body.contains("Release all 3 open holds"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let page = ana
        .post(
            "/console/campaigns/cmp_1/release-all",
            &[
                ("reason", "the sellers confirmed by phone"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("request 1 to release every open hold waits for a lead"),
        "{}",
        page.body
    );
    for account in ["small", "large", "middle"] {
        let (_, hold) = server
            .get(&format!("/v1/holds/p1?account_id={account}"))
            .await;
        assert_eq!(hold["status"], "held", "{hold}");
    }
    // Asking again gives the same request.
    let page = ana
        .post(
            "/console/campaigns/cmp_1/release-all",
            &[("reason", "again"), ("csrf", &csrf)],
        )
        .await;
    assert!(page.body.contains("request 1 "), "{}", page.body);
    // The queue says the holds wait for a lead.
    let queue = ana.get("/console/queue").await;
    assert_eq!(
        queue.body.matches("release awaits a lead").count(),
        3,
        "{}",
        queue.body
    );
    // A hold that arrives after the request is not covered by it.
    let (status, answer) = server.post(&json!(held("late", 70_000))).await;
    assert_eq!(status, 200, "{answer}");
    let (_, campaign) = server.get("/v1/campaigns/cmp_1").await;
    assert!(
        campaign["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["account_id"] == "late"),
        "{campaign}"
    );

    // The approvals page shows who, when, why and what was asked.
    let page = ana.get("/console/approvals").await;
    assert!(
        page.body.contains(
            "release every open hold of campaign <a href=\"/console/campaigns/cmp_1\">cmp_1</a>"
        ),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("3 open holds, 12,200.00 GBP"),
        "{}",
        page.body
    );
    assert!(page.body.contains("ana, 20"), "{}", page.body);
    assert!(page.body.contains("the sellers confirmed by phone"));
    // An analyst cannot approve it.
    let page = ana
        .post(
            "/console/approvals/1/approve",
            &[("reason", "me"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);

    // A lead asks for the dismissal, and cannot approve it herself.
    let mut lea = Browser::logged_in(&server, "lea").await;
    let lea_csrf = lea.get("/console/campaigns/cmp_1").await.csrf();
    let page = lea
        .post(
            "/console/campaigns/cmp_1/dismiss",
            &[
                ("reason", "a bank migration, not an attack"),
                ("csrf", &lea_csrf),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("request 2 to dismiss the campaign"),
        "{}",
        page.body
    );
    let page = lea
        .post(
            "/console/approvals/2/approve",
            &[("reason", "self"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("nobody approves their own request"));

    // She approves the analyst's: the three holds asked about are released,
    // naming both people; the late one stays held.
    let page = lea
        .post(
            "/console/approvals/1/approve",
            &[("reason", "checked the calls"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("3 of 3 holds released"), "{}", page.body);
    for account in ["small", "large", "middle"] {
        let (_, hold) = server
            .get(&format!("/v1/holds/p1?account_id={account}"))
            .await;
        assert_eq!(hold["status"], "released", "{hold}");
        assert_eq!(hold["resolution"]["by"], "ana, approved by lea", "{hold}");
    }
    let (_, hold) = server.get("/v1/holds/p1?account_id=late").await;
    assert_eq!(hold["status"], "held", "{hold}");
    // At most once.
    let page = lea
        .post(
            "/console/approvals/1/approve",
            &[("reason", "again"), ("csrf", &lea_csrf)],
        )
        .await;
    assert_eq!(page.status, 409, "{}", page.body);

    // Another lead approves the dismissal.
    let mut lou = Browser::logged_in(&server, "lou").await;
    let lou_csrf = lou.get("/console/approvals").await.csrf();
    let page = lou
        .post(
            "/console/approvals/2/approve",
            &[("reason", "agreed"), ("csrf", &lou_csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, campaign) = server.get("/v1/campaigns/cmp_1").await;
    assert_eq!(campaign["status"], "dismissed", "{campaign}");
    assert_eq!(campaign["status_by"]["by"], "lea, approved by lou");

    // A request can be rejected: nothing moves.
    let page = ana
        .post(
            "/console/campaigns/cmp_1/release-all",
            &[("reason", "the late one too"), ("csrf", &csrf)],
        )
        .await;
    assert!(page.body.contains("request 3 "), "{}", page.body);
    let page = lou
        .post(
            "/console/approvals/3/reject",
            &[("reason", "not yet"), ("csrf", &lou_csrf)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (_, hold) = server.get("/v1/holds/p1?account_id=late").await;
    assert_eq!(hold["status"], "held", "{hold}");

    // Every step is on the trail.
    let trail = audit_entries(dir.path());
    let has = |actor: &str, action: &str, target: &str, detail: &str| {
        trail
            .iter()
            .any(|(a, x, t, d)| a == actor && x == action && t == target && d.contains(detail))
    };
    assert!(
        has(
            "ana",
            "campaign_release_requested",
            "campaign cmp_1",
            "request 1: the sellers confirmed by phone (3 open holds"
        ),
        "{trail:?}"
    );
    assert!(
        has(
            "lea",
            "campaign_release_approved",
            "campaign cmp_1",
            "released 3 of 3"
        ),
        "{trail:?}"
    );
    for account in ["small", "large", "middle"] {
        assert!(
            has(
                "lea",
                "release",
                &format!("hold {account}/p1"),
                "campaign request 1 by ana"
            ),
            "{trail:?}"
        );
    }
    assert!(has(
        "lea",
        "campaign_dismiss_requested",
        "campaign cmp_1",
        "request 2"
    ));
    assert!(has(
        "lou",
        "campaign_dismiss_approved",
        "campaign cmp_1",
        "request 2 by lea"
    ));
    assert!(has(
        "lou",
        "campaign_release_rejected",
        "campaign cmp_1",
        "request 3 by ana"
    ));
    server.server.stop().await.unwrap();
}

/// `story` with its own destination institution, network and device, and
/// the payout `later` seconds after the others'.
fn elsewhere(account: &str, amount: u64, later: i64) -> Vec<Value> {
    let mut events = held(account, amount);
    for event in &mut events {
        if event["session_id"] == "atk" {
            event["ip"] = json!("203.0.113.9");
            event["device_id"] = json!("other-box");
        }
        if event["type"] == "payout_destination_change" {
            event["destination"]["institution_id"] = json!("40-11-22");
            event["destination"]["account_number"] = json!("5000 9876");
        }
    }
    let payout = events.last_mut().unwrap();
    payout["time"] = json!(crate::at(21, later));
    events
}

/// The count and the sum at the top of the queue.
fn summary(page: &Page) -> (String, String) {
    let strong = |label: &str| {
        let start = page.body.find(label).unwrap_or_else(|| panic!("{label}")) + label.len();
        let rest = &page.body[start..];
        let open = rest.find("<strong>").unwrap() + "<strong>".len();
        let close = rest.find("</strong>").unwrap();
        rest[open..close].to_string()
    };
    (strong("Open holds shown"), strong("Money at risk"))
}

#[tokio::test]
async fn the_queue_filters_by_institution_age_rule_campaign_and_amount_with_count_and_sum() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    // Three hours after the others, to another institution, on its own.
    let (status, answer) = server
        .post(&json!(elsewhere("other", 50_000, 3 * 3600)))
        .await;
    assert_eq!(status, 200, "{answer}");
    let last = answer.as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "hold", "{last}");
    // The engine's clock follows one account ahead of the others only by
    // a lead: a second account's event vouches for the time.
    let (status, answer) = server
        .post(&json!([{"event_id": "bystander-login", "type": "login",
            "account_id": "bystander", "time": crate::at(21, 3 * 3600), "status": "success",
            "session_id": "b1", "ip": "81.2.69.160", "device_id": "laptop"}]))
        .await;
    assert_eq!(status, 200, "{answer}");
    let mut vera = Browser::logged_in(&server, "vera").await;

    let all = vera.get("/console/queue").await;
    assert_eq!(summary(&all), ("4".into(), "12,700.00 GBP".into()));
    // The form offers the institutions of the open holds.
    assert!(
        all.body.contains("<option value=\"401122\">"),
        "{}",
        all.body
    );
    // Money at risk beyond the hold: the sales balance (ten sales of 100.00).
    assert!(
        all.body
            .contains("next payout would send up to 1,000.00 GBP (sales balance); no loans seen"),
        "{}",
        all.body
    );
    // How long each has been held, by the engine's clock.
    assert!(
        all.body.contains("<td>3h</td>") && all.body.contains("<td>0h</td>"),
        "{}",
        all.body
    );

    for (query, count, sum, shown) in [
        (
            "institution=401122",
            "1",
            "500.00 GBP",
            vec![">500.00 GBP</a>"],
        ),
        (
            "institution=236972",
            "3",
            "12,200.00 GBP",
            vec![">9,000.00 GBP</a>", ">200.00 GBP</a>"],
        ),
        (
            "older_than_hours=2",
            "3",
            "12,200.00 GBP",
            vec![">3,000.00 GBP</a>"],
        ),
        ("older_than_hours=4", "0", "0", vec!["No open holds match."]),
        (
            "older_than_hours=0&institution=401122",
            "1",
            "500.00 GBP",
            vec![">500.00 GBP</a>"],
        ),
        (
            "campaign=cmp_1",
            "3",
            "12,200.00 GBP",
            vec![">200.00 GBP</a>"],
        ),
        (
            "min_amount=2500",
            "2",
            "12,000.00 GBP",
            vec![">9,000.00 GBP</a>", ">3,000.00 GBP</a>"],
        ),
        (
            "rule=payout_while_account_at_risk",
            "4",
            "12,700.00 GBP",
            vec![">500.00 GBP</a>"],
        ),
        ("rule=no_such_rule", "0", "0", vec!["No open holds match."]),
        (
            "assignee=none&min_amount=5000",
            "1",
            "9,000.00 GBP",
            vec![">9,000.00 GBP</a>"],
        ),
    ] {
        let page = vera.get(&format!("/console/queue?{query}")).await;
        assert_eq!(page.status, 200, "{query}: {}", page.body);
        assert_eq!(summary(&page), (count.into(), sum.into()), "{query}");
        for needle in shown {
            assert!(
                page.body.contains(needle),
                "{query}: {needle} in {}",
                page.body
            );
        }
        let rows = page.body.matches("<td class=\"num\"><a href=").count();
        assert_eq!(rows.to_string(), count, "{query}");
    }
    // What was asked stays in the form.
    let page = vera
        .get("/console/queue?institution=401122&older_than_hours=1")
        .await;
    assert!(
        page.body.contains("<option value=\"401122\" selected>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("name=\"older_than_hours\" value=\"1\""),
        "{}",
        page.body
    );
    let page = vera.get("/console/queue?older_than_hours=soon").await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("older than (hours)"), "{}", page.body);
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn leads_and_admins_download_campaign_and_case_evidence_packs_and_the_audit_trail_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let case = case_of(&server, "large").await;
    let case_id = case["id"].as_str().unwrap().to_string();
    let case_path = format!("/console/cases/{case_id}");
    let campaign_pack = "/console/campaigns/cmp_1/evidence".to_string();
    let case_pack = format!("{case_path}/evidence");

    // The API's scope for packs (`evidence:export`, leads and admins):
    // viewers and analysts are neither offered the button nor served it.
    for name in ["vera", "ana"] {
        let mut person = Browser::logged_in(&server, name).await;
        for (page, pack) in [
            ("/console/campaigns/cmp_1", &campaign_pack),
            (&case_path, &case_pack),
        ] {
            let page = person.get(page).await;
            assert_eq!(page.status, 200, "{}", page.body);
            assert!(
                !page.body.contains("/evidence"),
                "{name} is offered a pack: {}",
                page.body
            );
            let refused = person.get(pack).await;
            assert_eq!(refused.status, 403, "{name}: {}", refused.body);
        }
    }

    let mut adm = Browser::logged_in(&server, "adm").await;
    let page = adm.get("/console/campaigns/cmp_1").await;
    assert!(
        page.body.contains(&format!(
            "<a class=\"button\" href=\"{campaign_pack}\" download>"
        )),
        "{}",
        page.body
    );
    let page = adm.get(&case_path).await;
    assert!(
        page.body.contains(&format!(
            "<a class=\"button\" href=\"{case_pack}\" download>"
        )),
        "{}",
        page.body
    );
    let key = custos_evidence::load_or_create_signing_key(&server.config.data_dir).unwrap();
    let public = custos_evidence::sign::public_key_hex(&key);
    for (path, kind, id, accounts) in [
        (
            &campaign_pack,
            "campaign",
            "cmp_1",
            json!(["large", "middle", "small"]),
        ),
        (&case_pack, "case", case_id.as_str(), json!(["large"])),
    ] {
        let (status, content_type, pack) = adm.download(path).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pack));
        assert_eq!(content_type, "application/x-tar");
        let report = custos_evidence::verify(pack.as_slice(), Some(&public));
        assert!(report.passed(), "{path}: {:?}", report.failures);
        let scope = report.scope.unwrap();
        assert_eq!(
            (scope["kind"].as_str(), scope["id"].as_str()),
            (Some(kind), Some(id))
        );
        assert_eq!(scope["accounts"], accounts);
    }
    let missing = adm.get("/console/cases/case-nope/evidence").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    // A lead is offered the campaign's pack and served it.
    let mut lea = Browser::logged_in(&server, "lea").await;
    let page = lea.get("/console/campaigns/cmp_1").await;
    assert!(page.body.contains(&campaign_pack), "{}", page.body);
    let (status, _, pack) = lea.download(&campaign_pack).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&pack));
    assert!(custos_evidence::verify(pack.as_slice(), Some(&public)).passed());

    // Each pack served is in the audit trail, by person; refusals are not.
    let db = ConsoleDb::open_in(&server.config.data_dir).unwrap();
    let exports: Vec<(String, String)> = db
        .audit_page(None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "evidence_exported")
        .map(|e| (e.actor, e.target))
        .collect();
    let mut exports = exports;
    exports.sort();
    assert_eq!(
        exports,
        [
            ("adm".to_string(), "campaign cmp_1".to_string()),
            ("adm".to_string(), format!("case {case_id}")),
            ("lea".to_string(), "campaign cmp_1".to_string()),
        ]
    );
    server.server.stop().await.unwrap();
}

/// A textarea's text as a browser would submit it (askama's escapes undone).
fn textarea(page: &Page, name: &str) -> String {
    let open = format!("<textarea name=\"{name}\"");
    let start = page
        .body
        .find(&open)
        .unwrap_or_else(|| panic!("no textarea {name} in {}", page.body));
    let start = start + page.body[start..].find('>').unwrap() + 1;
    let end = start + page.body[start..].find("</textarea>").unwrap();
    page.body[start..end]
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

/// The rule added by the changes below: it reviews every payout, so that
/// a decision shows it fired.
const ADDED_RULE: &str = r#"[[rules]]
id = "console_added_payout_review"
description = "added from the console <script>alert(1)</script>"
events = ["payout"]
when = "event.amount > 0"
action = "review"

"#;

/// The live rules' text from the form, with `ADDED_RULE` before the first
/// rule (top-level keys must stay first in TOML).
fn with_added_rule(text: &str) -> String {
    let at = text.find("[[rules]]").expect("the live rules have rules");
    format!("{}{ADDED_RULE}{}", &text[..at], &text[at..])
}

/// The pending rules changes.
fn pending_rules_changes(dir: &std::path::Path) -> Vec<custos_server::console::db::Approval> {
    ConsoleDb::open_in(dir)
        .unwrap()
        .pending()
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == "rules_change")
        .collect()
}

#[tokio::test]
async fn a_rules_change_is_checked_asked_by_an_admin_and_installed_by_another_lead() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;

    // Every role reads the live rules; only an admin is offered the form.
    for name in ["vera", "ana", "lea"] {
        let mut reader = Browser::logged_in(&server, name).await;
        let page = reader.get("/console/rules").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Rules: version 1 (default)"),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains("payout_to_destination_set_in_risky_session")
        );
        assert!(
            page.body
                .contains("destination.set_in_risky_session &#38;&#38;")
        );
        assert!(page.body.contains("href=\"/console/rules/1\""));
        assert!(!page.body.contains("<textarea"), "{name}: {}", page.body);
        // Nor may they ask for a change.
        let csrf = page.csrf();
        let refused = reader
            .post(
                "/console/rules",
                &[("csrf", &csrf), ("rules", ADDED_RULE), ("reason", "mine")],
            )
            .await;
        assert_eq!(refused.status, 403, "{name}: {}", refused.body);
    }
    let page = Browser::logged_in(&server, "vera")
        .await
        .get("/console/rules/1")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("live now") && page.body.contains("[[rules]]"));

    let mut adm = Browser::logged_in(&server, "adm").await;
    let page = adm.get("/console/rules").await;
    let csrf = page.csrf();
    let live_text = textarea(&page, "rules");
    assert!(live_text.starts_with("name = \"default\""), "{live_text}");

    // An invalid text: the error where it is, escaped, and nothing asked.
    let bad = "[[rules]]\nid = \"typo\"\nwhen = \"session.risky && destination.age < 7x\"\n\
               action = \"hold\"\n";
    let page = adm
        .post(
            "/console/rules",
            &[("csrf", &csrf), ("rules", bad), ("reason", "tighter")],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains("rule `typo`: when (line 1, column 36)")
            && page.body.contains("`7x` is not a valid duration"),
        "{}",
        page.body
    );
    // The text comes back as it was sent, escaped.
    assert!(
        page.body
            .contains("session.risky &#38;&#38; destination.age &#60; 7x")
    );
    // Not TOML at all: toml's line and column.
    let page = adm
        .post(
            "/console/rules",
            &[("csrf", &csrf), ("rules", "name = \n"), ("reason", "x")],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("line 1, column"), "{}", page.body);
    // A hostile rule id: shown as text, in the errors and in the form.
    let hostile =
        "[[rules]]\nid = \"<script>alert(1)</script>\"\nwhen = \"true\"\naction = \"review\"\n";
    let page = adm
        .post(
            "/console/rules",
            &[("csrf", &csrf), ("rules", hostile), ("reason", "x")],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(
        page.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
    );
    // A valid text without a reason.
    let page = adm
        .post(
            "/console/rules",
            &[
                ("csrf", &csrf),
                ("rules", &with_added_rule(&live_text)),
                ("reason", " "),
            ],
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("reason: say why"), "{}", page.body);
    assert!(pending_rules_changes(dir.path()).is_empty());

    // A valid text with a reason: a request, nothing installed yet.
    let page = adm
        .post(
            "/console/rules",
            &[
                ("csrf", &csrf),
                ("rules", &with_added_rule(&live_text)),
                ("reason", "review payouts while we look"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("rules change requested"),
        "{}",
        page.body
    );
    let pending = pending_rules_changes(dir.path());
    assert_eq!(pending.len(), 1, "{pending:?}");
    let request = &pending[0];
    assert_eq!(
        (request.base_version, request.summary.as_str()),
        (1, "rules added: console_added_payout_review")
    );
    let (_, rules) = server.get("/v1/rules").await;
    assert_eq!(rules["version"], 1);
    // On the approvals page, with the proposed text behind a link, escaped.
    let approvals = adm.get("/console/approvals").await;
    assert!(
        approvals
            .body
            .contains(&format!("href=\"/console/approvals/{}/rules\"", request.id))
            && approvals
                .body
                .contains("rules added: console_added_payout_review"),
        "{}",
        approvals.body
    );
    let proposal = adm
        .get(&format!("/console/approvals/{}/rules", request.id))
        .await;
    assert_eq!(proposal.status, 200, "{}", proposal.body);
    assert!(!proposal.body.contains("<script>"), "{}", proposal.body);
    assert!(
        proposal
            .body
            .contains("from the console &#60;script&#62;alert(1)&#60;/script&#62;")
    );

    // The requester cannot approve; an analyst cannot either.
    let approve = format!("/console/approvals/{}/approve", request.id);
    let page = adm
        .post(&approve, &[("csrf", &csrf), ("reason", "self")])
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("nobody approves their own request"));
    let mut ana = Browser::logged_in(&server, "ana").await;
    let ana_csrf = ana.get("/console/approvals").await.csrf();
    let page = ana
        .post(&approve, &[("csrf", &ana_csrf), ("reason", "ok")])
        .await;
    assert_eq!(page.status, 403, "{}", page.body);

    // A lead approves: version 2 is live, through the API's path.
    let mut lea = Browser::logged_in(&server, "lea").await;
    let lea_csrf = lea.get("/console/approvals").await.csrf();
    let page = lea
        .post(&approve, &[("csrf", &lea_csrf), ("reason", "agreed")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("rule-set version 2 is live"),
        "{}",
        page.body
    );
    let (_, rules) = server.get("/v1/rules").await;
    assert_eq!(rules["version"], 2, "{rules}");
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "console_added_payout_review"),
        "{rules}"
    );
    let (status, stored) = server.get("/v1/rules/2").await;
    assert_eq!(status, 200, "{stored}");
    // Approved once: a second approval finds it decided.
    let page = lea
        .post(&approve, &[("csrf", &lea_csrf), ("reason", "again")])
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
    let (_, rules) = server.get("/v1/rules").await;
    assert_eq!(rules["version"], 2);

    // The new rule fires on the next payout.
    let (status, answer) = server.post(&json!(held("after", 20_000))).await;
    assert_eq!(status, 200, "{answer}");
    let payout = answer.as_array().unwrap().last().unwrap();
    assert!(
        payout["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "console_added_payout_review"),
        "{payout}"
    );
    // The rules page says who changed them.
    let page = lea.get("/console/rules").await;
    assert!(page.body.contains("Rules: version 2"), "{}", page.body);
    assert!(
        page.body.contains("asked by adm, approved by lea"),
        "{}",
        page.body
    );
    let actions: Vec<(String, String)> = audit_entries(dir.path())
        .into_iter()
        .filter(|(_, action, _, _)| action.starts_with("rules_change"))
        .map(|(actor, action, _, _)| (actor, action))
        .collect();
    assert_eq!(
        actions,
        [
            ("adm".to_string(), "rules_change_requested".to_string()),
            ("lea".to_string(), "rules_change_approved".to_string()),
        ]
    );
    server.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rules_change_written_over_an_older_version_is_refused_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let mut adm = Browser::logged_in(&server, "adm").await;
    let page = adm.get("/console/rules").await;
    let csrf = page.csrf();
    let changed = with_added_rule(&textarea(&page, "rules"));
    let other = changed.replace("console_added_payout_review", "console_added_other_review");
    // The same change asked twice is one request; another is a second.
    for (text, reason) in [(&changed, "first"), (&changed, "again"), (&other, "second")] {
        let page = adm
            .post(
                "/console/rules",
                &[("csrf", &csrf), ("rules", text), ("reason", reason)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
    }
    let pending = pending_rules_changes(dir.path());
    assert_eq!(pending.len(), 2, "{pending:?}");

    // Meanwhile the rules change through the API: version 2.
    let (status, answer) = server
        .send_to(
            reqwest::Method::PATCH,
            "/v1/lists/blocked_ips",
            "application/json",
            json!({"add": ["203.0.113.9"]}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{answer}");

    // A lead's approval is refused: the request did not see version 2.
    let mut lea = Browser::logged_in(&server, "lea").await;
    let lea_csrf = lea.get("/console/approvals").await.csrf();
    let approve = format!("/console/approvals/{}/approve", pending[0].id);
    let page = lea
        .post(&approve, &[("csrf", &lea_csrf), ("reason", "agreed")])
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(
        page.body.contains("is stale and was not installed"),
        "{}",
        page.body
    );
    let (_, rules) = server.get("/v1/rules").await;
    assert_eq!(rules["version"], 2, "{rules}");
    assert!(
        !rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "console_added_payout_review")
    );
    let db = ConsoleDb::open_in(dir.path()).unwrap();
    assert_eq!(
        db.approval(pending[0].id).unwrap().unwrap().status,
        "refused"
    );
    // Refused for good: approving again finds it decided.
    let page = lea
        .post(&approve, &[("csrf", &lea_csrf), ("reason", "again")])
        .await;
    assert_eq!(page.status, 409, "{}", page.body);

    // The other request is rejected: nothing changes.
    let reject = format!("/console/approvals/{}/reject", pending[1].id);
    let page = lea
        .post(&reject, &[("csrf", &lea_csrf), ("reason", "not now")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("the rules stay as they are"));
    assert!(pending_rules_changes(dir.path()).is_empty());
    let actions: Vec<String> = audit_entries(dir.path())
        .into_iter()
        .map(|(_, action, _, _)| action)
        .filter(|action| action.starts_with("rules_change"))
        .collect();
    assert_eq!(
        actions,
        [
            "rules_change_requested",
            "rules_change_requested",
            "rules_change_requested",
            "rules_change_refused_stale",
            "rules_change_rejected"
        ]
    );
    server.server.stop().await.unwrap();
}

/// Labels and analyst actions change what Custos does, whichever route
/// brings them: sent as events to `POST /v1/events` or through Sift's
/// labels route, they are in the audit trail with the key that sent them,
/// once (a resend is a duplicate and writes nothing); account events are
/// data and stay out of it.
#[tokio::test]
async fn labels_and_analyst_actions_sent_as_events_are_audited_once_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_holds(dir.path()).await;
    let before = audit_entries(dir.path()).len();
    let label = json!({"event_id": "label-1", "type": "label", "account_id": "large",
        "time": at(22, 0), "label": "fraud", "analyst": "ops@example.com"});
    let action = json!({"event_id": "action-1", "type": "analyst_action", "account_id": "small",
        "time": at(22, 60), "action": "release_payout", "target_id": "p1",
        "analyst": "ops@example.com", "reason": "owner confirmed by phone"});
    let login = json!({"event_id": "login-1", "type": "login", "account_id": "small",
        "time": at(22, 120), "status": "success", "ip": "81.2.69.160"});
    for _ in 0..2 {
        let (status, answer) = server
            .post(&json!([label.clone(), action.clone(), login.clone()]))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, _) = server
        .client
        .post(format!("{}/v205/users/middle/labels", server.base))
        .basic_auth(KEY, Some(""))
        .json(
            &json!({"$type": "$label", "$is_bad": true, "$abuse_type": "account_takeover",
            "$analyst": "ana@example.com", "$time": 1_525_132_800_000_i64 + 23 * 86_400_000}),
        )
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, 200);

    let added: Vec<_> = audit_entries(dir.path()).split_off(before);
    let actions: Vec<(&str, &str)> = added
        .iter()
        .map(|(_, action, target, _)| (action.as_str(), target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("label", "large"),
            ("analyst_action:release_payout", "small/p1"),
            ("label", "middle"),
        ],
        "{added:?}"
    );
    for (actor, _, _, detail) in &added {
        assert!(actor.starts_with("key:"), "{actor}");
        assert!(
            !actor.contains(KEY),
            "the key itself is never written: {actor}"
        );
        assert!(detail.contains("(event "), "{detail}");
    }
    assert!(
        added[0].3.starts_with("fraud by ops@example.com"),
        "{added:?}"
    );
    assert!(added[1].3.contains("owner confirmed by phone"), "{added:?}");
}
