//! The detector's snapshot: its whole state as one serde value, and the
//! restore that checks it.
//!
//! Equal states serialize to equal JSON bytes: every hash map is written
//! sorted, floats are written as their bit patterns ([`f64_bits`]) because
//! JSON floats may not round-trip, and graph nodes are five-element arrays
//! because there may be a million of them. A snapshot comes from disk, so
//! restoring one checks every reference in it (node parents, parent chains
//! that must end at a root, keys, accounts, components, campaign merges)
//! and refuses a damaged one instead of panicking later on a bad index.
//! The layout is [`SNAPSHOT_VERSION`]; the field order is part of it.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::burst::{BurstDetector, BurstState, RateTracker};
use super::campaign::{CampaignBook, CampaignSlot};
use super::graph::{Component, GraphState, LinkGraph, Node};
use super::{AccountEntry, CampaignConfig, CampaignDetector, CampaignError};
use crate::event::InstitutionType;

/// Layout version of [`CampaignSnapshot`].
pub const SNAPSHOT_VERSION: u32 = 1;

/// Everything the detector knows, in a deterministic order: equal states
/// serialize to equal JSON bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignSnapshot {
    version: u32,
    now: i64,
    first_day: Option<i64>,
    compaction_blocked_until: i64,
    refused_nodes: u64,
    nodes: Vec<Node>,
    /// Key hash and node, sorted by hash.
    keys: Vec<(u64, u32)>,
    /// In slot order.
    accounts: Vec<AccountEntry>,
    /// Root and component, sorted by root.
    components: Vec<(u32, Component)>,
    /// Sorted by institution id.
    institutions: Vec<(String, RateTracker)>,
    institution_types: Vec<(InstitutionType, RateTracker)>,
    campaigns: Vec<CampaignSlot>,
}

impl Default for CampaignSnapshot {
    fn default() -> Self {
        CampaignDetector::new(CampaignConfig::default()).to_snapshot()
    }
}

impl CampaignSnapshot {
    /// Everything `detector` knows.
    pub(super) fn of(detector: &CampaignDetector) -> CampaignSnapshot {
        let graph = detector.graph.to_state();
        let bursts = detector.bursts.to_state();
        CampaignSnapshot {
            version: SNAPSHOT_VERSION,
            now: detector.now,
            first_day: bursts.first_day,
            compaction_blocked_until: graph.compaction_blocked_until,
            refused_nodes: graph.refused_nodes,
            nodes: graph.nodes,
            keys: graph.keys,
            accounts: detector.accounts.clone(),
            components: graph.components,
            institutions: bursts.institutions,
            institution_types: bursts.institution_types,
            campaigns: detector.campaigns.slots().to_vec(),
        }
    }

    /// The detector of this snapshot, after checking every reference in
    /// it.
    pub(super) fn restore(self, config: CampaignConfig) -> Result<CampaignDetector, CampaignError> {
        let snapshot = self;
        let damaged = |what: &str| CampaignError::Snapshot(what.to_string());
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(CampaignError::Snapshot(format!(
                "version {} is not {SNAPSHOT_VERSION}",
                snapshot.version
            )));
        }
        let node_count = snapshot.nodes.len();
        if node_count >= u32::MAX as usize || snapshot.accounts.len() >= u32::MAX as usize {
            return Err(damaged("too many nodes"));
        }
        let in_nodes = |n: u32| (n as usize) < node_count;
        if snapshot.nodes.iter().any(|n| !in_nodes(n.parent)) {
            return Err(damaged("node parent out of range"));
        }
        // Parent chains must end at a root: walk each once, marking nodes
        // known to reach one.
        let mut reaches_root = vec![false; node_count];
        let mut path = Vec::new();
        for start in 0..node_count {
            let mut at = start;
            path.clear();
            while !reaches_root[at] {
                let parent = snapshot.nodes[at].parent as usize;
                if parent == at {
                    break;
                }
                path.push(at);
                if path.len() > node_count {
                    return Err(damaged("node parents form a cycle"));
                }
                at = parent;
            }
            reaches_root[at] = true;
            for &n in &path {
                reaches_root[n] = true;
            }
        }
        if snapshot.keys.iter().any(|(_, n)| !in_nodes(*n)) {
            return Err(damaged("key node out of range"));
        }
        let mut account_index: HashMap<String, u32, RandomState> = HashMap::default();
        for (slot, account) in snapshot.accounts.iter().enumerate() {
            if !in_nodes(account.node) || account.keys.iter().any(|&k| !in_nodes(k)) {
                return Err(damaged("account node out of range"));
            }
            if account_index
                .insert(account.id.clone(), slot as u32)
                .is_some()
            {
                return Err(damaged("account listed twice"));
            }
        }
        let campaign_count = snapshot.campaigns.len() as u32;
        let mut components: Vec<(u32, Component)> = Vec::with_capacity(snapshot.components.len());
        for (root, component) in snapshot.components {
            if !in_nodes(root)
                || snapshot.nodes[root as usize].parent != root
                || component
                    .accounts
                    .iter()
                    .any(|&s| s as usize >= snapshot.accounts.len())
                || component.campaign > campaign_count
            {
                return Err(damaged("component out of range"));
            }
            components.push((root, component));
        }
        for (i, slot) in snapshot.campaigns.iter().enumerate() {
            if let CampaignSlot::Merged { into } = slot
                && (*into == 0 || *into > campaign_count || *into as usize == i + 1)
            {
                return Err(damaged("campaign merged out of range"));
            }
        }
        let mut detector = CampaignDetector::new(config);
        detector.campaigns = CampaignBook::from_slots(snapshot.campaigns);
        for number in 1..=campaign_count {
            if detector.campaigns.resolve(number).is_none() {
                return Err(damaged("campaign merges form a cycle"));
            }
        }
        detector.now = snapshot.now;
        detector.graph = LinkGraph::from_state(GraphState {
            compaction_blocked_until: snapshot.compaction_blocked_until,
            refused_nodes: snapshot.refused_nodes,
            nodes: snapshot.nodes,
            keys: snapshot.keys,
            components,
        });
        detector.accounts = snapshot.accounts;
        detector.account_index = account_index;
        detector.bursts = BurstDetector::from_state(BurstState {
            first_day: snapshot.first_day,
            institutions: snapshot.institutions,
            institution_types: snapshot.institution_types,
        });
        Ok(detector)
    }
}

/// f64 as its bit pattern, so that snapshots restore exactly.
pub(super) mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        u64::deserialize(deserializer).map(f64::from_bits)
    }
}
