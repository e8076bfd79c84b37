//! What a new rule-set version would take away from the live one, and the
//! explicit confirmation needed to install it anyway.
//!
//! Installing a rule set replaces the live one whole, so one careless
//! request (`POST /v1/rules {}`, a list emptied by mistake, a rules
//! directory half copied) would silently switch protection off: payouts of
//! accounts at risk allowed, mule lists gone. [`Removal::between`] compares
//! the live set with the new one and names what would be lost:
//!
//! - **every active rule** (`removed_rules`): the live set has active rules
//!   and the new one has none (shadow rules decide nothing);
//! - **payout protection** (`lost_payout_protection`): for `payout` and
//!   `loan_disbursement`, the live set can hold or block them (an active
//!   rule for that type whose action is `hold` or `block`, and a
//!   `max_action` that lets it) and the new set cannot. Defined by what the
//!   rules can do, not by the ids of the default rules, so it protects any
//!   team's own rule set;
//! - **lists the rules read** (`removed_lists`, `emptied_lists`): a list an
//!   active rule of the live set reads that the new set no longer has, or
//!   that had entries and has none. (A new set whose rules read a list it
//!   does not define does not compile at all.)
//!
//! Anything else (rules renamed, edited, added, some removed) is an ordinary
//! change. A removal is installed only with a [`RemovalOverride`] that lists
//! every item lost, exactly (`rule:<id>`, `protection:<event type>`,
//! `list:<name>`), with who asked and why; the runtime stores it with the new
//! version, so the audit trail says who switched what off.
//!
//! Pure: compiled rule sets in, a comparison out.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::parse::{MAX_ID_LEN, MAX_TEXT_LEN};
use crate::types::Action;

use super::ruleset::{Mode, RuleSet};

/// The event types whose protection a new version may not drop unconfirmed.
pub const PROTECTED_PAYOUT_TYPES: [EventType; 2] = [EventType::Payout, EventType::LoanDisbursement];

/// What a new version would lose compared with the live one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Every active rule of the live set, when the new set has none active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_rules: Vec<String>,
    /// Payout types the live set can hold or block and the new one cannot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_payout_protection: Vec<EventType>,
    /// Lists the live set's active rules read, absent from the new set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_lists: Vec<String>,
    /// Lists the live set's active rules read, with entries there and none
    /// in the new set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emptied_lists: Vec<String>,
}

/// Whether a set can hold or block events of this type: an active rule
/// that applies to it asks for `hold` or more, and `max_action` allows it.
pub fn protects(rules: &RuleSet, event_type: EventType) -> bool {
    rules.max_action() >= Action::Hold
        && rules.rules().iter().any(|r| {
            r.source.mode == Mode::Active
                && r.source.action >= Action::Hold
                && (r.source.events.is_empty() || r.source.events.contains(&event_type))
        })
}

impl Removal {
    /// What installing `new` over `live` would lose.
    pub fn between(live: &RuleSet, new: &RuleSet) -> Removal {
        let active = |set: &RuleSet| {
            set.rules()
                .iter()
                .filter(|r| r.source.mode == Mode::Active)
                .map(|r| r.source.id.clone())
                .collect::<Vec<_>>()
        };
        let mut removal = Removal::default();
        let live_active = active(live);
        if !live_active.is_empty() && active(new).is_empty() {
            let mut ids = live_active;
            ids.sort();
            removal.removed_rules = ids;
        }
        removal.lost_payout_protection = PROTECTED_PAYOUT_TYPES
            .into_iter()
            .filter(|t| protects(live, *t) && !protects(new, *t))
            .collect();
        let read: BTreeSet<&str> = live
            .rules()
            .iter()
            .filter(|r| r.source.mode == Mode::Active)
            .flat_map(|r| r.lists().iter().map(String::as_str))
            .collect();
        for name in read {
            match new.source().lists.get(name) {
                None => removal.removed_lists.push(name.to_string()),
                Some(list)
                    if list.entries.is_empty()
                        && live
                            .source()
                            .lists
                            .get(name)
                            .is_some_and(|l| !l.entries.is_empty()) =>
                {
                    removal.emptied_lists.push(name.to_string());
                }
                Some(_) => {}
            }
        }
        removal
    }

    pub fn is_empty(&self) -> bool {
        self.removed_rules.is_empty()
            && self.lost_payout_protection.is_empty()
            && self.removed_lists.is_empty()
            && self.emptied_lists.is_empty()
    }

    /// What a confirmation must list, sorted: `rule:<id>`,
    /// `protection:<event type>`, `list:<name>`.
    pub fn items(&self) -> Vec<String> {
        let mut items: Vec<String> = self
            .removed_rules
            .iter()
            .map(|id| format!("rule:{id}"))
            .chain(
                self.lost_payout_protection
                    .iter()
                    .map(|t| format!("protection:{t}")),
            )
            .chain(
                self.removed_lists
                    .iter()
                    .chain(&self.emptied_lists)
                    .map(|name| format!("list:{name}")),
            )
            .collect();
        items.sort();
        items.dedup();
        items
    }

    /// Checks a confirmation against this removal: nothing removed needs
    /// none; otherwise it must list every item exactly, and say who and why.
    pub fn check(&self, confirmation: Option<&RemovalOverride>) -> Result<(), RemovalRefused> {
        let items = self.items();
        let Some(confirmation) = confirmation else {
            return if items.is_empty() {
                Ok(())
            } else {
                Err(RemovalRefused::Unconfirmed {
                    removal: self.clone(),
                    missing: items,
                })
            };
        };
        confirmation.validate()?;
        let confirmed: BTreeSet<&str> = confirmation
            .confirm_removal
            .iter()
            .map(|s| s.trim())
            .collect();
        if let Some(extra) = confirmed.iter().find(|c| !items.iter().any(|i| i == *c)) {
            return Err(RemovalRefused::InvalidOverride {
                field: "confirm_removal".into(),
                message: if items.is_empty() {
                    format!(
                        "`{extra}` is not removed by this version, which removes nothing that \
                         needs confirming; send no override"
                    )
                } else {
                    format!(
                        "`{extra}` is not removed by this version; it removes exactly: {}",
                        items.join(", ")
                    )
                },
            });
        }
        let missing: Vec<String> = items
            .iter()
            .filter(|i| !confirmed.contains(i.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(RemovalRefused::Unconfirmed {
                removal: self.clone(),
                missing,
            })
        }
    }
}

fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl fmt::Display for Removal {
    /// `every active rule (a, b), payout protection for payout and
    /// loan_disbursement, the list mules (removed)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.removed_rules.is_empty() {
            parts.push(format!(
                "every active rule ({})",
                self.removed_rules.join(", ")
            ));
        }
        if !self.lost_payout_protection.is_empty() {
            let types: Vec<String> = self
                .lost_payout_protection
                .iter()
                .map(ToString::to_string)
                .collect();
            parts.push(format!(
                "payout protection (no active rule can hold or block {} any more)",
                and_list(&types)
            ));
        }
        for (lists, how) in [
            (&self.removed_lists, "removed"),
            (&self.emptied_lists, "emptied"),
        ] {
            if !lists.is_empty() {
                let s = if lists.len() == 1 { "" } else { "s" };
                parts.push(format!(
                    "the list{s} {} that active rules read ({how})",
                    and_list(lists)
                ));
            }
        }
        write!(f, "{}", and_list(&parts))
    }
}

/// An explicit confirmation of a removal: every item, who, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemovalOverride {
    /// Every item the version removes ([`Removal::items`]).
    #[serde(default)]
    pub confirm_removal: Vec<String>,
    /// Why, for the audit trail.
    #[serde(default)]
    pub reason: String,
    /// Who asks.
    #[serde(default)]
    pub analyst: String,
}

impl RemovalOverride {
    fn validate(&self) -> Result<(), RemovalRefused> {
        let invalid = |field: &str, message: String| RemovalRefused::InvalidOverride {
            field: field.into(),
            message,
        };
        for (field, value, max) in [
            ("analyst", &self.analyst, MAX_ID_LEN),
            ("reason", &self.reason, MAX_TEXT_LEN),
        ] {
            let value = value.trim();
            if value.is_empty() {
                return Err(invalid(
                    field,
                    "is required with an override, for the audit trail".into(),
                ));
            }
            if value.chars().count() > max || value.chars().any(char::is_control) {
                return Err(invalid(
                    field,
                    format!("must be 1 to {max} characters, without control characters"),
                ));
            }
        }
        if self.confirm_removal.is_empty() {
            return Err(invalid(
                "confirm_removal",
                "lists nothing; name each item the version removes".into(),
            ));
        }
        Ok(())
    }
}

/// Why a version that removes protection was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalRefused {
    /// It removes what the live set protects, and no override (or one
    /// short of `missing`) confirms it.
    #[error(
        "the new version would remove {removal}; nothing was changed. To install it anyway, \
         confirm each of: {}",
        missing.join(", ")
    )]
    Unconfirmed {
        removal: Removal,
        missing: Vec<String>,
    },
    /// The override itself is wrong.
    #[error("override.{field}: {message}")]
    InvalidOverride { field: String, message: String },
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::{RuleSetSource, default_rule_set};

    fn compile(value: serde_json::Value) -> RuleSet {
        let source: RuleSetSource = serde_json::from_value(value).expect("a source");
        RuleSet::compile(source, 2).expect("compiles")
    }

    fn confirm(items: &[&str]) -> RemovalOverride {
        RemovalOverride {
            confirm_removal: items.iter().map(|s| s.to_string()).collect(),
            reason: "migrating to the new policy".into(),
            analyst: "ana".into(),
        }
    }

    #[test]
    fn an_empty_set_over_the_default_removes_everything_it_protects() {
        let live = default_rule_set();
        let removal = Removal::between(&live, &compile(json!({})));
        assert_eq!(
            removal.removed_rules.len(),
            live.rules()
                .iter()
                .filter(|r| r.source.mode == Mode::Active)
                .count()
        );
        assert_eq!(
            removal.lost_payout_protection,
            [EventType::Payout, EventType::LoanDisbursement]
        );
        assert_eq!(
            removal.removed_lists,
            ["blocked_ips", "denied_destinations"]
        );
        let refused = removal.check(None).unwrap_err();
        let message = refused.to_string();
        assert!(
            message.starts_with("the new version would remove every active rule (")
                && message.contains("payout protection (no active rule can hold or block payout and loan_disbursement any more)")
                && message.contains("the lists blocked_ips and denied_destinations that active rules read (removed)"),
            "{message}"
        );
        assert!(message.contains("protection:payout, rule:"), "{message}");
    }

    #[test]
    fn protection_is_what_rules_can_do_not_their_ids() {
        let live = compile(json!({"rules": [
            {"id": "team_hold", "events": ["payout", "loan_disbursement"], "when": "event.amount > 100",
             "action": "hold"},
            {"id": "login_check", "events": ["login"], "when": "login.risk > 3", "action": "challenge"}
        ]}));
        // Renamed, rewritten, still holding: nothing lost.
        let renamed = compile(json!({"rules": [
            {"id": "any_big_money", "when": "event.amount > 500", "action": "block"}
        ]}));
        assert!(Removal::between(&live, &renamed).is_empty());
        // Reviewing instead of holding, or capped below hold, or in shadow.
        for new in [
            json!({"rules": [{"id": "team_hold", "events": ["payout", "loan_disbursement"],
                              "when": "true", "action": "review"}]}),
            json!({"max_action": "review", "rules": [{"id": "team_hold", "when": "true", "action": "hold"}]}),
            json!({"rules": [{"id": "team_hold", "when": "true", "action": "hold", "mode": "shadow"},
                             {"id": "login_check", "events": ["login"], "when": "true", "action": "challenge"}]}),
        ] {
            let removal = Removal::between(&live, &compile(new.clone()));
            assert_eq!(
                removal.lost_payout_protection,
                [EventType::Payout, EventType::LoanDisbursement],
                "{new}"
            );
        }
        // One type only.
        let payouts_only = compile(json!({"rules": [
            {"id": "team_hold", "events": ["payout"], "when": "true", "action": "hold"}
        ]}));
        let removal = Removal::between(&live, &payouts_only);
        assert_eq!(
            removal.lost_payout_protection,
            [EventType::LoanDisbursement]
        );
        assert_eq!(removal.items(), ["protection:loan_disbursement"]);
        // A set that never protected payouts loses nothing by not doing so.
        let logins = compile(json!({"rules": [
            {"id": "login_check", "events": ["login"], "when": "true", "action": "challenge"}
        ]}));
        assert!(Removal::between(&logins, &logins).is_empty());
    }

    #[test]
    fn lists_the_live_rules_read_may_not_go_or_be_emptied() {
        let live = compile(json!({
            "lists": {"mules": {"kind": "destination", "entries": ["tk_1"]},
                      "spare": {"kind": "ip", "entries": ["10.0.0.1"]}},
            "rules": [{"id": "mule", "when": "destination.token in lists.mules", "action": "block"}]
        }));
        let without = compile(json!({
            "rules": [{"id": "mule", "when": "event.amount > 5", "action": "block"}]
        }));
        let removal = Removal::between(&live, &without);
        assert_eq!(
            (removal.removed_lists.as_slice(), removal.items()),
            (&["mules".to_string()][..], vec!["list:mules".to_string()])
        );
        let emptied = compile(json!({
            "lists": {"mules": {"kind": "destination", "entries": []}},
            "rules": [{"id": "mule", "when": "destination.token in lists.mules", "action": "block"}]
        }));
        let removal = Removal::between(&live, &emptied);
        assert_eq!(removal.emptied_lists, ["mules"]);
        assert!(
            removal
                .to_string()
                .contains("the list mules that active rules read (emptied)")
        );
        // A list no active rule reads may go.
        let kept = compile(json!({
            "lists": {"mules": {"kind": "destination", "entries": ["tk_1", "tk_2"]}},
            "rules": [{"id": "mule", "when": "destination.token in lists.mules", "action": "block"}]
        }));
        assert!(Removal::between(&live, &kept).is_empty());
    }

    #[test]
    fn an_override_must_confirm_exactly_what_is_removed_and_say_who_and_why() {
        let live = compile(json!({
            "lists": {"mules": {"kind": "destination", "entries": ["tk_1"]}},
            "rules": [{"id": "mule", "when": "destination.token in lists.mules", "action": "block"}]
        }));
        let removal = Removal::between(&live, &compile(json!({})));
        assert_eq!(
            removal.items(),
            [
                "list:mules",
                "protection:loan_disbursement",
                "protection:payout",
                "rule:mule"
            ]
        );
        let all = confirm(&[
            "rule:mule",
            "list:mules",
            "protection:payout",
            "protection:loan_disbursement",
        ]);
        assert_eq!(removal.check(Some(&all)), Ok(()));
        match removal.check(Some(&confirm(&["rule:mule", "list:mules"]))) {
            Err(RemovalRefused::Unconfirmed { missing, .. }) => {
                assert_eq!(
                    missing,
                    ["protection:loan_disbursement", "protection:payout"]
                );
            }
            other => panic!("{other:?}"),
        }
        let extra = confirm(&[
            "rule:mule",
            "list:mules",
            "protection:payout",
            "protection:loan_disbursement",
            "list:other",
        ]);
        let err = removal.check(Some(&extra)).unwrap_err().to_string();
        assert!(
            err.starts_with("override.confirm_removal: `list:other` is not removed"),
            "{err}"
        );
        let anonymous = RemovalOverride {
            analyst: " ".into(),
            ..all.clone()
        };
        let err = removal.check(Some(&anonymous)).unwrap_err().to_string();
        assert_eq!(
            err,
            "override.analyst: is required with an override, for the audit trail"
        );
        let no_reason = RemovalOverride {
            reason: String::new(),
            ..all.clone()
        };
        assert!(
            removal
                .check(Some(&no_reason))
                .unwrap_err()
                .to_string()
                .starts_with("override.reason")
        );
        // Nothing removed: no override needed, and one that confirms
        // something is refused as a mistake.
        let none = Removal::default();
        assert_eq!(none.check(None), Ok(()));
        assert!(none.check(Some(&confirm(&["rule:mule"]))).is_err());
    }
}
