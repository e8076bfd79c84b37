//! Finding accounts by what they used: a payout destination (its token,
//! or its last four digits at an institution), a network, a device.
//!
//! There is no index for these: a search walks the accounts' state, at most
//! `scan_limit` accounts, and stops at `max_hits`; the answer says when it
//! stopped early. Networks are kept per account as their /24 (IPv4) or /48
//! (IPv6) prefix, so an address matches the accounts seen on its network;
//! a prefix written as text (`81.2.` or `81.2.69.0`) matches networks whose
//! address starts with it.

use std::net::IpAddr;

use serde::Serialize;

use crate::engine::Engine;
use crate::state::AccountState;
use crate::types::NetworkPrefix;

/// What to look for.
#[derive(Debug, Clone)]
pub enum AccountQuery {
    DestinationToken(String),
    Last4 {
        last4: String,
        /// Matches any institution when empty.
        institution: String,
    },
    Ip(IpAddr),
    IpPrefix(String),
    Device(String),
}

/// One account found, and what matched.
#[derive(Debug, Clone, Serialize)]
pub struct AccountHit {
    pub account_id: String,
    pub matched: String,
}

/// What a search found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AccountSearch {
    pub hits: Vec<AccountHit>,
    pub scanned: usize,
    /// The walk stopped at `scan_limit` or `max_hits` before the end.
    pub cut: bool,
}

/// The account's networks: those it learnt, and those of logins it has not
/// learnt yet (an attacker's, while the session is in doubt).
pub(crate) fn networks(state: &AccountState) -> impl Iterator<Item = NetworkPrefix> + '_ {
    state.networks.iter().map(|s| s.value).chain(
        state
            .sessions
            .iter()
            .filter_map(|s| s.unlearnt.as_ref().and_then(|u| u.network)),
    )
}

/// The account's devices, learnt or not yet (as [`networks`]).
pub(crate) fn devices(state: &AccountState) -> impl Iterator<Item = &str> + '_ {
    state.devices.iter().map(|s| s.value.as_str()).chain(
        state
            .sessions
            .iter()
            .filter_map(|s| s.unlearnt.as_ref().and_then(|u| u.device.as_deref())),
    )
}

fn matched(state: &AccountState, query: &AccountQuery) -> Option<String> {
    match query {
        AccountQuery::DestinationToken(token) => state
            .destination
            .iter()
            .chain(&state.previous_destinations)
            .find(|r| r.destination.account_token == *token)
            .map(|r| format!("destination {} {}", r.destination.institution_id, token)),
        AccountQuery::Last4 { last4, institution } => state
            .destination
            .iter()
            .chain(&state.previous_destinations)
            .find(|r| {
                r.destination.account_last4.as_deref() == Some(last4.as_str())
                    && (institution.is_empty() || r.destination.institution_id == *institution)
            })
            .map(|r| {
                format!(
                    "destination {} ending {last4}",
                    r.destination.institution_id
                )
            }),
        AccountQuery::Ip(ip) => {
            let network = NetworkPrefix::of(*ip);
            networks(state)
                .find(|n| *n == network)
                .map(|n| format!("network {}", n.ip()))
        }
        AccountQuery::IpPrefix(prefix) => networks(state)
            .find(|n| n.ip().to_string().starts_with(prefix.as_str()))
            .map(|n| format!("network {}", n.ip())),
        AccountQuery::Device(device) => devices(state)
            .find(|d| *d == device.as_str())
            .map(|d| format!("device {d}")),
    }
}

impl Engine {
    /// Accounts that used what `query` names (see the module's doc for the
    /// bounds); in no particular order.
    pub fn search_accounts(
        &self,
        query: &AccountQuery,
        scan_limit: usize,
        max_hits: usize,
    ) -> AccountSearch {
        let mut out = AccountSearch::default();
        for state in self.accounts.values() {
            if out.scanned >= scan_limit || out.hits.len() >= max_hits {
                out.cut = true;
                break;
            }
            out.scanned += 1;
            if let Some(matched) = matched(state, query) {
                out.hits.push(AccountHit {
                    account_id: state.account_id.clone(),
                    matched,
                });
            }
        }
        out.hits.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        out
    }
}

/// The accounts that set each of some destination tokens as their payout
/// destination (now or before).
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct TokenMatches {
    /// Token → accounts, sorted; only tokens that matched.
    pub accounts: std::collections::BTreeMap<String, Vec<String>>,
    pub scanned: usize,
    /// The walk stopped at `scan_limit` before the end.
    pub cut: bool,
}

impl Engine {
    /// Which of `tokens` the accounts used as payout destinations, in one
    /// walk of at most `scan_limit` accounts (`POST /v1/tokens/match`).
    pub fn accounts_by_destination_token(
        &self,
        tokens: &[String],
        scan_limit: usize,
    ) -> TokenMatches {
        let wanted: std::collections::HashSet<&str> = tokens.iter().map(String::as_str).collect();
        let mut out = TokenMatches::default();
        for state in self.accounts.values() {
            if out.scanned >= scan_limit {
                out.cut = true;
                break;
            }
            out.scanned += 1;
            for record in state.destination.iter().chain(&state.previous_destinations) {
                let token = record.destination.account_token.as_str();
                if wanted.contains(token) {
                    let accounts = out.accounts.entry(token.to_string()).or_default();
                    if !accounts.contains(&state.account_id) {
                        accounts.push(state.account_id.clone());
                    }
                }
            }
        }
        for accounts in out.accounts.values_mut() {
            accounts.sort();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{at, event};
    use serde_json::json;

    #[test]
    fn finds_accounts_by_destination_network_and_device_within_bounds() {
        let mut engine = Engine::default();
        for (account, ip, device, number) in [
            ("a1", "81.2.69.160", "laptop-1", "12345678"),
            ("a2", "81.2.69.7", "phone-2", "87654321"),
            ("a3", "10.0.0.1", "laptop-1", "12345678"),
        ] {
            engine.process(&event(
                json!({"event_id": format!("{account}-l"), "type": "login",
                "account_id": account, "time": at(0), "status": "success", "ip": ip,
                "device_id": device}),
            ));
            engine.process(&event(json!({"event_id": format!("{account}-d"),
                "type": "payout_destination_change", "account_id": account, "time": at(60),
                "destination": {"institution_id": "20-00-00", "account_number": number}})));
        }
        let ids = |s: AccountSearch| s.hits.into_iter().map(|h| h.account_id).collect::<Vec<_>>();
        let ip = AccountQuery::Ip("81.2.69.1".parse().unwrap());
        assert_eq!(ids(engine.search_accounts(&ip, 100, 100)), ["a1", "a2"]);
        let prefix = AccountQuery::IpPrefix("10.".into());
        assert_eq!(ids(engine.search_accounts(&prefix, 100, 100)), ["a3"]);
        let device = AccountQuery::Device("laptop-1".into());
        assert_eq!(ids(engine.search_accounts(&device, 100, 100)), ["a1", "a3"]);
        let last4 = AccountQuery::Last4 {
            last4: "5678".into(),
            institution: "200000".into(),
        };
        assert_eq!(ids(engine.search_accounts(&last4, 100, 100)), ["a1", "a3"]);
        let elsewhere = AccountQuery::Last4 {
            last4: "5678".into(),
            institution: "300000".into(),
        };
        assert!(engine.search_accounts(&elsewhere, 100, 100).hits.is_empty());
        let any = AccountQuery::Last4 {
            last4: "5678".into(),
            institution: String::new(),
        };
        assert_eq!(ids(engine.search_accounts(&any, 100, 100)), ["a1", "a3"]);
        let token = engine.account("a2").unwrap().destination.as_ref().unwrap();
        let token = AccountQuery::DestinationToken(token.destination.account_token.clone());
        assert_eq!(ids(engine.search_accounts(&token, 100, 100)), ["a2"]);
        // The bound: one account scanned, and the answer says it stopped.
        let cut = engine.search_accounts(&ip, 1, 100);
        assert_eq!(cut.scanned, 1);
        assert!(cut.cut);
    }
}
