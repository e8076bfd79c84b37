//! The account link graph: a union-find over accounts and the keys they
//! touched in risky sensitive changes.
//!
//! Nodes are accounts and keys (destinations, devices, addresses, networks,
//! burst episodes); linking an account to a key joins their components, so
//! two accounts that share any key end up in one component. Union by size
//! keeps trees shallow enough for `&self` queries to walk without path
//! compression; the walks that may mutate compress. Shared infrastructure
//! is pruned at [`CampaignConfig::max_accounts_per_key`] and forgotten after
//! [`CampaignConfig::key_ttl_days`]; the graph is bounded by
//! [`CampaignConfig::max_nodes`] and compacts itself ([`LinkGraph::make_room`])
//! when full. Why the graph is built this way is in the module docs of
//! [`super`].
//!
//! The graph knows nothing of campaigns beyond the number a component
//! carries: when a link joins two components that both hold a campaign, it
//! says so ([`CampaignsMet`]) and the lifecycle merges them. Key hashes are
//! fixed forever: snapshots keep them.

use std::collections::HashMap;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::{AccountEntry, CampaignConfig, DAY};
use crate::profile::{TraitKind, stable_hash_parts};
use crate::types::NetworkPrefix;

/// Keys (destinations, devices, addresses, networks, bursts) linked per
/// account at most; beyond, an account's further keys link nothing.
pub const MAX_KEYS_PER_ACCOUNT: usize = 32;
/// Nodes one call may add at most (an account, four keys, a burst node):
/// compaction runs before a call that might not find room.
pub(super) const NODES_PER_CALL: usize = 8;
/// A component's campaign number when it has none (numbers are 1-based).
pub(super) const NO_CAMPAIGN: u32 = 0;

/// What ties accounts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    SharedDestination,
    SharedDevice,
    SharedIp,
    SharedNetwork,
    InstitutionBurst,
}

/// The kind of a graph node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum NodeKind {
    Account,
    Destination,
    Device,
    Ip,
    Network,
    Burst,
}

impl NodeKind {
    pub(super) fn link(self) -> Option<LinkKind> {
        match self {
            NodeKind::Account => None,
            NodeKind::Destination => Some(LinkKind::SharedDestination),
            NodeKind::Device => Some(LinkKind::SharedDevice),
            NodeKind::Ip => Some(LinkKind::SharedIp),
            NodeKind::Network => Some(LinkKind::SharedNetwork),
            NodeKind::Burst => Some(LinkKind::InstitutionBurst),
        }
    }

    /// Shared infrastructure: pruned at the cap, forgotten after the TTL.
    fn prunable(self) -> bool {
        matches!(self, NodeKind::Device | NodeKind::Ip | NodeKind::Network)
    }
}

/// One union-find node. `size` is meaningful at roots only. Snapshots
/// write it as a five-element array: there may be a million of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "NodeRecord", from = "NodeRecord")]
pub(super) struct Node {
    pub(super) parent: u32,
    pub(super) size: u32,
    pub(super) kind: NodeKind,
    /// For keys: distinct accounts linked.
    pub(super) linked: u32,
    /// For keys: the last link; for accounts: the last risky change.
    pub(super) touched: i64,
}
#[derive(Serialize, Deserialize)]
struct NodeRecord(u32, u32, NodeKind, u32, i64);

impl From<Node> for NodeRecord {
    fn from(n: Node) -> NodeRecord {
        NodeRecord(n.parent, n.size, n.kind, n.linked, n.touched)
    }
}

impl From<NodeRecord> for Node {
    fn from(NodeRecord(parent, size, kind, linked, touched): NodeRecord) -> Node {
        Node {
            parent,
            size,
            kind,
            linked,
            touched,
        }
    }
}

/// What a union-find component holds, kept at its root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Component {
    /// Account slots.
    pub(super) accounts: Vec<u32>,
    /// Accounts not cleared.
    pub(super) active: u32,
    pub(super) last_at: i64,
    /// Campaign number (1-based), [`NO_CAMPAIGN`] when none.
    pub(super) campaign: u32,
}

// Key hashes: fixed forever, snapshots keep them. Destinations use the
// destination index's key, so both modules agree on what a destination is.
pub(super) fn device_key(device_id: &str) -> u64 {
    stable_hash_parts(
        TraitKind::Device,
        &[b"campaign-device", device_id.as_bytes()],
    )
}

fn ip_bytes(ip: IpAddr) -> ([u8; 16], usize) {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (bytes, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}

pub(super) fn ip_key(ip: IpAddr) -> u64 {
    let (bytes, len) = ip_bytes(ip);
    stable_hash_parts(TraitKind::Ip, &[b"campaign-ip", &bytes[..len]])
}

pub(super) fn network_key(ip: IpAddr) -> u64 {
    let (bytes, len) = ip_bytes(NetworkPrefix::of(ip).ip());
    stable_hash_parts(TraitKind::Network, &[b"campaign-network", &bytes[..len]])
}

pub(super) fn burst_key(institution_id: &str, day: i64) -> u64 {
    stable_hash_parts(
        TraitKind::Device,
        &[
            b"campaign-burst",
            institution_id.as_bytes(),
            &day.to_le_bytes(),
        ],
    )
}

/// Two campaigns whose components a link joined: the lifecycle folds
/// `gone` into the older `keep` and records the survivor at `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CampaignsMet {
    pub(super) root: u32,
    pub(super) keep: u32,
    pub(super) gone: u32,
}

/// The union-find and its key table.
#[derive(Debug, Clone)]
pub(super) struct LinkGraph {
    nodes: Vec<Node>,
    /// Key hash to key node.
    keys: HashMap<u64, u32, RandomState>,
    /// At each root that holds accounts.
    components: HashMap<u32, Component, RandomState>,
    compaction_blocked_until: i64,
    refused_nodes: u64,
}

/// What a snapshot keeps of the graph, in a deterministic order.
pub(super) struct GraphState {
    pub(super) compaction_blocked_until: i64,
    pub(super) refused_nodes: u64,
    pub(super) nodes: Vec<Node>,
    /// Sorted by hash.
    pub(super) keys: Vec<(u64, u32)>,
    /// Sorted by root.
    pub(super) components: Vec<(u32, Component)>,
}

impl LinkGraph {
    pub(super) fn new() -> LinkGraph {
        LinkGraph {
            nodes: Vec::new(),
            keys: HashMap::default(),
            components: HashMap::default(),
            compaction_blocked_until: i64::MIN,
            refused_nodes: 0,
        }
    }

    /// The root of `node`, without path compression (for `&self` queries;
    /// union by size keeps trees shallow).
    pub(super) fn find(&self, mut node: u32) -> u32 {
        loop {
            let parent = self.nodes[node as usize].parent;
            if parent == node {
                return node;
            }
            node = parent;
        }
    }

    /// The root of `node`, compressing the path.
    pub(super) fn find_compress(&mut self, node: u32) -> u32 {
        let root = self.find(node);
        let mut at = node;
        while at != root {
            let next = self.nodes[at as usize].parent;
            self.nodes[at as usize].parent = root;
            at = next;
        }
        root
    }

    pub(super) fn new_node(
        &mut self,
        kind: NodeKind,
        at: i64,
        config: &CampaignConfig,
    ) -> Option<u32> {
        if self.nodes.len() >= config.max_nodes {
            self.refused_nodes = self.refused_nodes.saturating_add(1);
            return None;
        }
        let index = self.nodes.len() as u32;
        self.nodes.push(Node {
            parent: index,
            size: 1,
            kind,
            linked: 0,
            touched: at,
        });
        Some(index)
    }

    /// A new account node, alone in its component; `None` when the graph is
    /// full.
    pub(super) fn add_account(
        &mut self,
        slot: u32,
        at: i64,
        config: &CampaignConfig,
    ) -> Option<u32> {
        let node = self.new_node(NodeKind::Account, at, config)?;
        self.components.insert(
            node,
            Component {
                accounts: vec![slot],
                active: 1,
                last_at: at,
                campaign: NO_CAMPAIGN,
            },
        );
        Some(node)
    }

    /// Records activity on a node (an account's last risky change).
    pub(super) fn touch(&mut self, node: u32, at: i64) {
        self.nodes[node as usize].touched = self.nodes[node as usize].touched.max(at);
    }

    pub(super) fn node(&self, node: u32) -> &Node {
        &self.nodes[node as usize]
    }

    /// The node of a key, if the key is in the graph.
    pub(super) fn key_node(&self, hash: u64) -> Option<u32> {
        self.keys.get(&hash).copied()
    }

    /// The component whose root is `root`.
    pub(super) fn component(&self, root: u32) -> Option<&Component> {
        self.components.get(&root)
    }

    pub(super) fn component_mut(&mut self, root: u32) -> Option<&mut Component> {
        self.components.get_mut(&root)
    }

    pub(super) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Accounts and keys not added because the graph was full.
    pub(super) fn refused_nodes(&self) -> u64 {
        self.refused_nodes
    }

    /// Joins the components of `a` and `b`. Accounts that come into a
    /// campaign's component are added to `joins`; when both components hold
    /// a campaign, the older one's number is kept for now and the meeting is
    /// returned.
    pub(super) fn union(
        &mut self,
        a: u32,
        b: u32,
        at: i64,
        joins: &mut Vec<u32>,
    ) -> Option<CampaignsMet> {
        let ra = self.find_compress(a);
        let rb = self.find_compress(b);
        if ra == rb {
            if let Some(c) = self.components.get_mut(&ra) {
                c.last_at = c.last_at.max(at);
            }
            return None;
        }
        let (big, small) = if self.nodes[ra as usize].size >= self.nodes[rb as usize].size {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.nodes[small as usize].parent = big;
        self.nodes[big as usize].size = self.nodes[big as usize]
            .size
            .saturating_add(self.nodes[small as usize].size);
        let mut met = None;
        let merged = match (self.components.remove(&big), self.components.remove(&small)) {
            (None, None) => None,
            (Some(c), None) | (None, Some(c)) => Some(c),
            (Some(x), Some(y)) => {
                let (component, campaigns) = merge_components(x, y, joins);
                met = campaigns.map(|(keep, gone)| CampaignsMet {
                    root: big,
                    keep,
                    gone,
                });
                Some(component)
            }
        };
        if let Some(mut component) = merged {
            component.last_at = component.last_at.max(at);
            self.components.insert(big, component);
        }
        met
    }

    /// Links `account` to the key `hash`, unless the key is a pruned hub or
    /// the account already holds as many keys as it may. What the union
    /// reports goes to the caller (see [`LinkGraph::union`]).
    pub(super) fn link(
        &mut self,
        account: &mut AccountEntry,
        hash: u64,
        kind: NodeKind,
        at: i64,
        config: &CampaignConfig,
        joins: &mut Vec<u32>,
    ) -> Option<CampaignsMet> {
        let ttl = i64::from(config.key_ttl_days) * DAY;
        let existing = self.keys.get(&hash).copied().filter(|&node| {
            // Shared infrastructure quiet for longer than the TTL starts
            // over (the old node stays in its component).
            !(kind.prunable() && at.saturating_sub(self.nodes[node as usize].touched) > ttl)
        });
        if let Some(node) = existing
            && account.keys.contains(&node)
        {
            let key = &mut self.nodes[node as usize];
            key.touched = key.touched.max(at);
            let root = self.find_compress(node);
            if let Some(c) = self.components.get_mut(&root) {
                c.last_at = c.last_at.max(at);
            }
            return None;
        }
        if account.keys.len() >= MAX_KEYS_PER_ACCOUNT {
            return None;
        }
        let node = match existing {
            Some(node) => {
                if kind.prunable()
                    && self.nodes[node as usize].linked >= config.max_accounts_per_key
                {
                    return None;
                }
                node
            }
            None => {
                let node = self.new_node(kind, at, config)?;
                self.keys.insert(hash, node);
                node
            }
        };
        account.keys.push(node);
        let key = &mut self.nodes[node as usize];
        key.linked = key.linked.saturating_add(1);
        key.touched = key.touched.max(at);
        self.union(account.node, node, at, joins)
    }

    /// Compacts the graph if this call might not find room: components
    /// that are not campaigns and saw no link since the horizon are dropped,
    /// with their accounts (the account table is renumbered).
    pub(super) fn make_room(
        &mut self,
        at: i64,
        config: &CampaignConfig,
        accounts: &mut Vec<AccountEntry>,
        account_index: &mut HashMap<String, u32, RandomState>,
    ) {
        if self.nodes.len() + NODES_PER_CALL <= config.max_nodes
            || at < self.compaction_blocked_until
        {
            return;
        }
        let horizon = at.saturating_sub(i64::from(config.forget_after_days) * DAY);
        let count = self.nodes.len();
        let roots: Vec<u32> = (0..count as u32).map(|n| self.find_compress(n)).collect();
        let keep_root = |root: u32| {
            self.components
                .get(&root)
                .is_some_and(|c| c.campaign != NO_CAMPAIGN || c.last_at >= horizon)
        };
        let mut new_index = vec![u32::MAX; count];
        let mut nodes = Vec::with_capacity(count);
        for old in 0..count {
            if keep_root(roots[old]) {
                new_index[old] = nodes.len() as u32;
                nodes.push(self.nodes[old]);
            }
        }
        if nodes.len() == count {
            self.compaction_blocked_until = at.saturating_add(DAY);
            return;
        }
        for (old, &new) in new_index.iter().enumerate() {
            if new != u32::MAX {
                nodes[new as usize].parent = new_index[roots[old] as usize];
            }
        }
        let mut new_slot = vec![u32::MAX; accounts.len()];
        let mut kept = Vec::with_capacity(accounts.len());
        for (old_slot, mut account) in std::mem::take(accounts).into_iter().enumerate() {
            let node = new_index[account.node as usize];
            if node == u32::MAX {
                continue;
            }
            account.node = node;
            account.keys = account
                .keys
                .iter()
                .map(|&k| new_index[k as usize])
                .filter(|&k| k != u32::MAX)
                .collect();
            new_slot[old_slot] = kept.len() as u32;
            kept.push(account);
        }
        *account_index = kept
            .iter()
            .enumerate()
            .map(|(slot, a)| (a.id.clone(), slot as u32))
            .collect();
        *accounts = kept;
        self.keys
            .retain(|_, node| new_index[*node as usize] != u32::MAX);
        for node in self.keys.values_mut() {
            *node = new_index[*node as usize];
        }
        self.components = std::mem::take(&mut self.components)
            .into_iter()
            .filter(|(root, _)| new_index[*root as usize] != u32::MAX)
            .map(|(root, mut c)| {
                c.accounts = c
                    .accounts
                    .iter()
                    .map(|&s| new_slot[s as usize])
                    .filter(|&s| s != u32::MAX)
                    .collect();
                (new_index[root as usize], c)
            })
            .collect();
        let freed = count - nodes.len();
        self.nodes = nodes;
        if freed < config.max_nodes / 10 {
            // Too little to gain: try again tomorrow, not on every call.
            self.compaction_blocked_until = at.saturating_add(DAY);
        }
    }

    pub(super) fn to_state(&self) -> GraphState {
        let mut keys: Vec<(u64, u32)> = self.keys.iter().map(|(k, n)| (*k, *n)).collect();
        keys.sort_unstable();
        let mut components: Vec<(u32, Component)> = self
            .components
            .iter()
            .map(|(r, c)| (*r, c.clone()))
            .collect();
        components.sort_unstable_by_key(|(r, _)| *r);
        GraphState {
            compaction_blocked_until: self.compaction_blocked_until,
            refused_nodes: self.refused_nodes,
            nodes: self.nodes.clone(),
            keys,
            components,
        }
    }

    /// The graph of a snapshot whose references were checked.
    pub(super) fn from_state(state: GraphState) -> LinkGraph {
        LinkGraph {
            nodes: state.nodes,
            keys: state.keys.into_iter().collect(),
            components: state.components.into_iter().collect(),
            compaction_blocked_until: state.compaction_blocked_until,
            refused_nodes: state.refused_nodes,
        }
    }
}

/// The component of two joined ones. When both hold a campaign, the older
/// number stands for both and the pair (older, younger) is returned.
fn merge_components(
    x: Component,
    y: Component,
    joins: &mut Vec<u32>,
) -> (Component, Option<(u32, u32)>) {
    let mut campaigns = None;
    let campaign = match (x.campaign, y.campaign) {
        (NO_CAMPAIGN, NO_CAMPAIGN) => NO_CAMPAIGN,
        (c, NO_CAMPAIGN) => {
            joins.extend_from_slice(&y.accounts);
            c
        }
        (NO_CAMPAIGN, c) => {
            joins.extend_from_slice(&x.accounts);
            c
        }
        (c1, c2) => {
            campaigns = Some((c1.min(c2), c1.max(c2)));
            c1.min(c2)
        }
    };
    let (mut accounts, rest) = if x.accounts.len() >= y.accounts.len() {
        (x.accounts, y.accounts)
    } else {
        (y.accounts, x.accounts)
    };
    accounts.extend_from_slice(&rest);
    (
        Component {
            accounts,
            active: x.active.saturating_add(y.active),
            last_at: x.last_at.max(y.last_at),
            campaign,
        },
        campaigns,
    )
}
