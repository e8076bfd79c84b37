//! A campaign's link graph as people read it: which of its members used
//! which shared artefact (a payout destination, a device, an address, a
//! network, an institution's burst).
//!
//! The union-find ([`super::graph`]) answers "are these accounts linked?"
//! and keeps per account the key nodes it linked ([`super::AccountEntry`]),
//! so who-used-what is already there as node numbers. What a node *is*
//! is not: keys are hashes. A destination is named from the account's own
//! risky destinations (kept in full as [`DestinationSummary`]); a device
//! or a network from the devices and networks the account's state still
//! remembers (the caller's [`KnownArtefacts`]), by hashing each candidate
//! the way the graph did and looking the hash up; a burst from the latest
//! burst episode of each of the campaign's institutions. An exact address
//! is never kept outside the log, so an address node stays unnamed, as
//! does anything the state has forgotten (or an older burst episode): it
//! is still drawn, and its accounts are still the accounts that share it.
//!
//! Only keys that two or more accounts linked are shared; a key one
//! account alone used explains nothing and is left out. The answer is
//! bounded by the caller's `max_accounts` (members in the order they
//! joined) and at most [`super::MAX_KEYS_PER_ACCOUNT`] keys each, and costs
//! a few hash lookups per drawn account and per institution of the
//! campaign: no scan of the graph.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::graph::{NodeKind, device_key, network_key};
use super::{CampaignDetector, DestinationSummary, LinkKind};
use crate::destinations::destination_key_of;
use crate::engine::Engine;
use crate::types::NetworkPrefix;

/// A campaign's members and the artefacts they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignLinks {
    pub campaign_id: String,
    /// Members in the order they joined, at most the caller's bound.
    pub accounts: Vec<LinkedAccount>,
    /// Members beyond those in `accounts` (listed or only counted).
    pub more_accounts: u32,
    /// Keys two or more accounts linked, in the order the first of
    /// `accounts` to use each came (then by kind).
    pub artefacts: Vec<SharedArtefact>,
}

/// One member and what it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAccount {
    pub account_id: String,
    /// A `legit` label cleared it.
    pub cleared: bool,
    /// Indexes into [`CampaignLinks::artefacts`], ascending.
    pub artefacts: Vec<usize>,
}

/// A key shared by accounts of the campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedArtefact {
    pub kind: LinkKind,
    /// For a destination: which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationSummary>,
    /// For a device its id, a network its prefix (`185.220.101.0/24`), a
    /// burst its institution; `None` when the engine no longer knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Accounts that linked it in all, drawn or not (a device, address or
    /// network stops linking at the configured cap).
    pub linked: u32,
}

/// What an account's state still remembers that could name its keys.
#[derive(Debug, Clone, Default)]
pub struct KnownArtefacts {
    pub devices: Vec<String>,
    pub networks: Vec<NetworkPrefix>,
}

impl CampaignDetector {
    /// The link graph of a campaign (an id merged into another gives the
    /// survivor's): its first `max_accounts` members and the keys two or
    /// more accounts share. `known` names an account's devices and
    /// networks; it is asked only for accounts that linked such a key.
    pub fn campaign_links(
        &self,
        campaign_id: &str,
        max_accounts: usize,
        known: impl Fn(&str) -> KnownArtefacts,
    ) -> Option<CampaignLinks> {
        let campaign = self.campaign(campaign_id)?;
        let drawn: Vec<_> = campaign.accounts.iter().take(max_accounts).collect();
        let more_accounts = u32::try_from(campaign.accounts.len() - drawn.len())
            .unwrap_or(u32::MAX)
            .saturating_add(campaign.more_accounts);

        // Names of key nodes, from what each drawn account can tell.
        let mut names: HashMap<u32, (Option<DestinationSummary>, Option<String>)> = HashMap::new();
        let node_of =
            |hash: u64, keys: &[u32]| self.graph.key_node(hash).filter(|node| keys.contains(node));
        for member in &drawn {
            let Some(&slot) = self.account_index.get(member.account_id.as_str()) else {
                continue;
            };
            let entry = &self.accounts[slot as usize];
            for d in &entry.destinations {
                if let Some(node) = node_of(
                    destination_key_of(&d.institution_id, &d.account_token),
                    &entry.keys,
                ) {
                    names.entry(node).or_insert((Some(d.clone()), None));
                }
            }
            let wants_more = entry.keys.iter().any(|&k| {
                matches!(
                    self.graph.node(k).kind,
                    NodeKind::Device | NodeKind::Network
                ) && !names.contains_key(&k)
            });
            if !wants_more {
                continue;
            }
            let known = known(&member.account_id);
            for device in &known.devices {
                if let Some(node) = node_of(device_key(device), &entry.keys) {
                    names.entry(node).or_insert((None, Some(device.clone())));
                }
            }
            for network in &known.networks {
                if let Some(node) = node_of(network_key(network.ip()), &entry.keys) {
                    names
                        .entry(node)
                        .or_insert((None, Some(network.to_string())));
                }
            }
        }
        // A burst node is its institution's latest episode's, as the burst
        // detector remembers it; an older episode's stays unnamed.
        for institution in &campaign.institutions {
            if let Some(node) = self
                .bursts
                .latest_burst_key(institution)
                .and_then(|key| self.graph.key_node(key))
                && self.graph.node(node).kind == NodeKind::Burst
            {
                names
                    .entry(node)
                    .or_insert((None, Some(institution.clone())));
            }
        }

        let mut index: HashMap<u32, usize> = HashMap::new();
        let mut artefacts = Vec::new();
        let mut accounts = Vec::with_capacity(drawn.len());
        for member in &drawn {
            let mut used = Vec::new();
            if let Some(&slot) = self.account_index.get(member.account_id.as_str()) {
                let entry = &self.accounts[slot as usize];
                let mut shared: Vec<(LinkKind, u32)> = entry
                    .keys
                    .iter()
                    .filter_map(|&k| {
                        let node = self.graph.node(k);
                        (node.linked >= 2)
                            .then(|| node.kind.link().map(|kind| (kind, k)))
                            .flatten()
                    })
                    .collect();
                shared.sort_unstable();
                for (kind, k) in shared {
                    let at = *index.entry(k).or_insert_with(|| {
                        let (destination, value) = names.get(&k).cloned().unwrap_or_default();
                        artefacts.push(SharedArtefact {
                            kind,
                            destination,
                            value,
                            linked: self.graph.node(k).linked,
                        });
                        artefacts.len() - 1
                    });
                    used.push(at);
                }
                used.sort_unstable();
                used.dedup();
            }
            accounts.push(LinkedAccount {
                account_id: member.account_id.clone(),
                cleared: member.cleared,
                artefacts: used,
            });
        }
        Some(CampaignLinks {
            campaign_id: campaign.id.clone(),
            accounts,
            more_accounts,
            artefacts,
        })
    }
}

impl Engine {
    /// [`CampaignDetector::campaign_links`], naming devices and networks
    /// from the accounts' state (learnt, or seen in a session still in
    /// doubt).
    pub fn campaign_links(&self, campaign_id: &str, max_accounts: usize) -> Option<CampaignLinks> {
        self.campaigns
            .campaign_links(campaign_id, max_accounts, |account_id| {
                self.account(account_id)
                    .map(|state| KnownArtefacts {
                        devices: crate::search::devices(state).map(str::to_string).collect(),
                        networks: crate::search::networks(state).collect(),
                    })
                    .unwrap_or_default()
            })
    }
}
