//! A held payout's reasons in one line of plain words, for the queue: what
//! the fired rules saw, said as an analyst would say it. Pure, so every
//! combination of facts is tested without a server.

use custos_core::features::{Feature, FeatureKind};
use serde_json::{Map, Value};

/// Everything a stored decision recorded about its event: the features it
/// kept and what each fired rule saw (a rule's reading wins over a kept
/// feature of the same name; they are the same value).
pub fn facts_of(decision: &Value) -> Map<String, Value> {
    let mut facts = decision
        .get("features")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for reason in decision
        .get("reasons")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(saw) = reason.get("saw").and_then(Value::as_object) {
            for (path, value) in saw {
                facts.insert(path.clone(), value.clone());
            }
        }
    }
    facts
}

/// The session that set the account's bank account, as the account state
/// remembers it: what its login had that the seller had never used.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeSession {
    pub new_device: bool,
    pub new_network: bool,
    /// The login's network (`185.220.101.0/24`), when the state kept it.
    #[serde(default)]
    pub network: Option<String>,
}

/// The session that set the account's current bank account, if that bank
/// account is the one the hold would pay (set before the hold, the same
/// token when the hold names one) and the session and its login are still
/// remembered. Reads only the account's state in memory.
pub fn change_session_of(
    account: &custos_core::state::AccountState,
    hold: &custos_core::holds::Hold,
) -> Option<ChangeSession> {
    let current = account.destination.as_ref()?;
    if current.set_at.0 > hold.held_at.0 {
        return None;
    }
    if let Some(paid) = &hold.destination
        && paid.account_token != current.destination.account_token
    {
        return None;
    }
    let id = current.set_in_session.as_deref()?;
    let session = account.sessions.iter().find(|s| s.session_id == id)?;
    let login = session.login.as_ref()?;
    // A first login has nothing to be new against.
    if login.first_login {
        return None;
    }
    Some(ChangeSession {
        new_device: login.new_device,
        new_network: login.new_network,
        network: session
            .unlearnt
            .as_ref()
            .and_then(|u| u.network)
            .map(|n| n.to_string()),
    })
}

/// "from a device and a network this seller had not used (…)", or `None`
/// when the session's login had nothing new.
fn novelty(change: &ChangeSession) -> Option<String> {
    let what = match (change.new_device, change.new_network) {
        (true, true) => "a device and a network",
        (true, false) => "a device",
        (false, true) => "a network",
        (false, false) => return None,
    };
    let mut text = format!("from {what} this seller had not used");
    if let Some(network) = change.network.as_deref().filter(|_| change.new_network) {
        text.push_str(&format!(" ({network})"));
    }
    Some(text)
}

/// A span of seconds in words: "less than a minute", "2 min",
/// "23 h 59 min", "1 day", "3 days 4 h".
pub fn duration(seconds: f64) -> String {
    // Whole seconds: a feature's duration is never fractional in meaning.
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let plural = |n: u64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if days > 0 {
        let d = plural(days, "day", "days");
        if hours > 0 {
            format!("{d} {hours} h")
        } else {
            d
        }
    } else if hours > 0 {
        if minutes > 0 {
            format!("{hours} h {minutes} min")
        } else {
            format!("{hours} h")
        }
    } else if minutes > 0 {
        format!("{minutes} min")
    } else {
        "less than a minute".into()
    }
}

/// One `saw` value for the detail list: durations in words, the rest as
/// recorded.
pub fn saw_value(path: &str, value: &Value) -> String {
    let is_duration = Feature::from_name(path).map(Feature::kind) == Some(FeatureKind::Duration);
    match value.as_f64() {
        Some(seconds) if is_duration => duration(seconds),
        _ => value.to_string(),
    }
}

fn flag(facts: &Map<String, Value>, path: &str) -> Option<bool> {
    facts.get(path).and_then(Value::as_bool)
}

fn number(facts: &Map<String, Value>, path: &str) -> Option<f64> {
    facts.get(path).and_then(Value::as_f64)
}

fn count(n: f64, one: &str, many: &str) -> String {
    // Counts are whole; a stray fraction is not worth printing.
    let n = n.max(0.0).round() as u64;
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The held payout in one line, from its decision's facts and the campaign
/// the hold is in; empty when the facts say nothing this knows how to say.
/// Each clause needs its fact: nothing is guessed.
pub fn summary(
    facts: &Map<String, Value>,
    campaign: Option<&str>,
    change_session: Option<&ChangeSession>,
) -> String {
    let mut clauses: Vec<String> = Vec::new();

    // When the bank account changed, and in what session.
    let age = number(facts, "destination.age")
        .or_else(|| number(facts, "account.since_destination_change"));
    let mut change = match age {
        Some(age) => {
            let verb = if flag(facts, "destination.replaced") == Some(false) {
                "set"
            } else {
                "changed"
            };
            Some(format!(
                "bank account {verb} {} before this payout",
                duration(age)
            ))
        }
        None => None,
    };
    let risky = flag(facts, "destination.set_in_risky_session") == Some(true);
    let session = match (change_session.and_then(novelty), risky) {
        (Some(new), true) => Some(format!("in a session {new}, not verified since")),
        (Some(new), false) => Some(format!("in a session {new}")),
        (None, true) => Some("in a risky session not verified since".to_string()),
        (None, false) => None,
    };
    if let Some(session) = session {
        change = Some(match change {
            Some(c) => format!("{c}, {session}"),
            None => format!("bank account set {session}"),
        });
    }
    if flag(facts, "destination.set_during_burst") == Some(true) {
        let burst = "while changes toward its bank were bursting across sellers";
        change = Some(match change {
            Some(c) => format!("{c}, {burst}"),
            None => format!("bank account set {burst}"),
        });
    }
    clauses.extend(change);

    if flag(facts, "destination.known") == Some(false) {
        clauses.push("the seller never registered this bank account".into());
    }
    if flag(facts, "destination.first_payout") == Some(true) {
        let mut first = "the first payout to it".to_string();
        if flag(facts, "destination.owner_confirmed") == Some(false) {
            first.push_str(", not confirmed by the owner");
        }
        clauses.push(first);
    }
    if flag(facts, "destination.denied") == Some(true) {
        clauses.push("the bank account is denied".into());
    }

    // The payout's own session.
    let mut session: Vec<&str> = Vec::new();
    if flag(facts, "session.risky") == Some(true) {
        session.push("risky");
    }
    if flag(facts, "session.impossible_travel") == Some(true) {
        session.push("after travel no one could make");
    }
    if flag(facts, "device.platform_changed") == Some(true) {
        session.push("on a device whose platform changed");
    }
    if !session.is_empty() {
        clauses.push(format!("the payout's session is {}", session.join(", ")));
    }
    if flag(facts, "account.at_risk") == Some(true) {
        clauses.push("the account is at risk and not cleared since".into());
    }

    // Who else uses the bank account.
    let others = number(facts, "destination.other_accounts")
        .filter(|n| *n >= 1.0)
        .map(|n| count(n, "other seller", "other sellers"));
    let mut shared = others.map(|o| format!("the bank account is also used by {o}"));
    for (path, one, many) in [
        (
            "destination.other_accounts_risky",
            "seller at risk",
            "sellers at risk",
        ),
        (
            "destination.other_accounts_mule_like",
            "mule-like seller",
            "mule-like sellers",
        ),
    ] {
        if let Some(n) = number(facts, path).filter(|n| *n >= 1.0) {
            let c = count(n, one, many);
            shared = Some(match shared {
                Some(s) => format!("{s} ({c})"),
                None => format!("the bank account is used by {c}"),
            });
        }
    }
    // The hold's campaign may link the seller by a device or a network, so
    // the bank account is said to be in it only when the rules saw that.
    let destination_in_campaign = flag(facts, "destination.in_campaign") == Some(true);
    if destination_in_campaign {
        let tail = match campaign {
            Some(c) => format!("in campaign {c}"),
            None => "in a campaign across sellers".into(),
        };
        shared = Some(match shared {
            Some(s) => format!("{s}, {tail}"),
            None => format!("the bank account is {tail}"),
        });
    }
    clauses.extend(shared);
    if let Some(c) = campaign.filter(|_| !destination_in_campaign) {
        clauses.push(format!("the seller is in campaign {c}"));
    }
    if flag(facts, "account.in_confirmed_campaign") == Some(true) {
        clauses.push("the seller is linked to a confirmed campaign".into());
    }
    if let Some(ratio) = number(facts, "payout.amount_ratio").filter(|r| *r >= 1.5) {
        clauses.push(format!("{ratio:.1} times the seller's usual payout"));
    }

    let line = clauses.join("; ");
    let mut chars = line.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn durations_read_as_words_at_their_boundaries() {
        assert_eq!(duration(0.0), "less than a minute");
        assert_eq!(duration(59.0), "less than a minute");
        assert_eq!(duration(60.0), "1 min");
        assert_eq!(duration(120.0), "2 min");
        assert_eq!(duration(3599.0), "59 min");
        assert_eq!(duration(3600.0), "1 h");
        assert_eq!(duration(86_340.0), "23 h 59 min");
        assert_eq!(duration(86_399.0), "23 h 59 min");
        assert_eq!(duration(86_400.0), "1 day");
        assert_eq!(duration(3.0 * 86_400.0), "3 days");
        assert_eq!(duration(3.0 * 86_400.0 + 4.0 * 3600.0 + 59.0), "3 days 4 h");
        assert_eq!(duration(-5.0), "less than a minute");
        assert_eq!(duration(f64::NAN), "less than a minute");
    }

    #[test]
    fn a_takeover_payout_reads_as_one_sentence() {
        let f = facts(json!({
            "destination.age": 86_340,
            "destination.set_in_risky_session": true,
            "account.at_risk": true,
            "destination.in_campaign": true,
            "destination.other_accounts": 4,
        }));
        assert_eq!(
            summary(&f, Some("cmp_1"), None),
            "Bank account changed 23 h 59 min before this payout, in a risky session not \
             verified since; the account is at risk and not cleared since; the bank account \
             is also used by 4 other sellers, in campaign cmp_1."
        );
    }

    #[test]
    fn absent_or_false_facts_say_nothing() {
        assert_eq!(summary(&Map::new(), None, None), "");
        let f = facts(json!({
            "destination.set_in_risky_session": false,
            "account.at_risk": false,
            "destination.other_accounts": 0,
            "session.risky": "not a flag",
        }));
        assert_eq!(summary(&f, None, None), "");
        // A fact alone is said alone.
        let f = facts(json!({"account.at_risk": true}));
        assert_eq!(
            summary(&f, None, None),
            "The account is at risk and not cleared since."
        );
        // A campaign without the bank account in it is the seller's.
        assert_eq!(
            summary(&f, Some("cmp_<b>"), None),
            "The account is at risk and not cleared since; the seller is in campaign cmp_<b>."
        );
    }

    #[test]
    fn each_fact_finds_its_clause() {
        let f = facts(json!({
            "destination.set_in_risky_session": true,
            "destination.first_payout": true,
            "destination.owner_confirmed": false,
            "destination.replaced": true,
            "session.risky": true,
            "session.impossible_travel": true,
            "destination.other_accounts_mule_like": 2,
            "payout.amount_ratio": 4.3,
        }));
        assert_eq!(
            summary(&f, None, None),
            "Bank account set in a risky session not verified since; the first payout to \
             it, not confirmed by the owner; the payout's session is risky, after travel no \
             one could make; the bank account is used by 2 mule-like sellers; 4.3 times the \
             seller's usual payout."
        );
        let f = facts(json!({
            "account.since_destination_change": 120,
            "destination.replaced": false,
            "destination.known": false,
            "destination.other_accounts": 1,
            "destination.in_campaign": true,
        }));
        assert_eq!(
            summary(&f, None, None),
            "Bank account set 2 min before this payout; the seller never registered this \
             bank account; the bank account is also used by 1 other seller, in a campaign \
             across sellers."
        );
    }

    #[test]
    fn the_change_session_says_what_was_new() {
        let f = facts(json!({
            "destination.age": 120,
            "destination.set_in_risky_session": true,
        }));
        let both = ChangeSession {
            new_device: true,
            new_network: true,
            network: Some("185.220.101.0/24".into()),
        };
        assert_eq!(
            summary(&f, None, Some(&both)),
            "Bank account changed 2 min before this payout, in a session from a device and a \
             network this seller had not used (185.220.101.0/24), not verified since."
        );
        // The network is named only when it was the new thing.
        let device = ChangeSession {
            new_device: true,
            new_network: false,
            network: Some("81.2.69.0/24".into()),
        };
        let f = facts(json!({"destination.age": 3 * 86_400}));
        assert_eq!(
            summary(&f, None, Some(&device)),
            "Bank account changed 3 days before this payout, in a session from a device this \
             seller had not used."
        );
        // Nothing new: the rules' word "risky" stands alone.
        let nothing = ChangeSession::default();
        let f = facts(json!({"destination.set_in_risky_session": true}));
        assert_eq!(
            summary(&f, None, Some(&nothing)),
            "Bank account set in a risky session not verified since."
        );
        let network = ChangeSession {
            new_device: false,
            new_network: true,
            network: None,
        };
        assert_eq!(
            summary(&Map::new(), None, Some(&network)),
            "Bank account set in a session from a network this seller had not used."
        );
    }

    #[test]
    fn facts_come_from_every_fired_rule_and_the_kept_features() {
        let decision = json!({
            "features": {"destination.other_accounts": 3, "account.at_risk": false},
            "reasons": [
                {"code": "a", "saw": {"destination.age": 60}},
                {"code": "b", "saw": {"account.at_risk": true}},
                {"code": "c"},
            ],
        });
        let f = facts_of(&decision);
        assert_eq!(f["destination.age"], 60);
        assert_eq!(f["account.at_risk"], true);
        assert_eq!(f["destination.other_accounts"], 3);
        assert!(facts_of(&Value::Null).is_empty());
    }

    #[test]
    fn saw_values_humanize_durations_only() {
        assert_eq!(saw_value("destination.age", &json!(86_340)), "23 h 59 min");
        assert_eq!(saw_value("destination.other_accounts", &json!(5)), "5");
        assert_eq!(saw_value("account.at_risk", &json!(true)), "true");
        assert_eq!(saw_value("no.such.feature", &json!(86_340)), "86340");
        assert_eq!(saw_value("destination.age", &json!("x")), "\"x\"");
    }
}
