//! The engine: all account state, and the one entry point that turns an
//! event into a decision.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use serde::{Deserialize, Serialize};

use crate::decision::Decision;
use crate::event::Event;
use crate::policy::BootstrapPolicy;
use crate::state::AccountState;

/// Version of the snapshot layout; a snapshot of another version is ignored
/// and state is rebuilt from the log instead.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// In-memory state of every account plus the policy that decides.
#[derive(Debug, Clone)]
pub struct Engine {
    policy: BootstrapPolicy,
    /// foldhash: several times faster than SipHash on short ids, and
    /// randomly seeded per process.
    accounts: HashMap<String, AccountState, RandomState>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    accounts: Vec<AccountState>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is format {found}, this build reads format {SNAPSHOT_FORMAT}")]
    Format { found: u32 },
    #[error("snapshot is not valid: {0}")]
    Invalid(#[from] serde_json::Error),
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(BootstrapPolicy::default())
    }
}

impl Engine {
    pub fn new(policy: BootstrapPolicy) -> Engine {
        Engine {
            policy,
            accounts: HashMap::default(),
        }
    }

    /// Decides an event and folds it into the state.
    pub fn process(&mut self, event: &Event) -> Decision {
        let decision = self.decide(event);
        self.apply(event, &decision);
        decision
    }

    /// The decision for an event, without changing any state.
    pub fn decide(&self, event: &Event) -> Decision {
        self.policy
            .decide(self.accounts.get(&event.account_id), event)
    }

    /// Folds an event and the decision made for it into the state. Used
    /// directly when replaying the stored log.
    pub fn apply(&mut self, event: &Event, decision: &Decision) {
        let state = match self.accounts.get_mut(&event.account_id) {
            Some(state) => state,
            None => self
                .accounts
                .entry(event.account_id.clone())
                .or_insert_with(|| AccountState::new(&event.account_id, event.unix_time())),
        };
        state.apply(event, decision);
    }

    pub fn account(&self, account_id: &str) -> Option<&AccountState> {
        self.accounts.get(account_id)
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Serializes all account state (sorted, so equal states give equal bytes).
    pub fn snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut accounts: Vec<AccountState> = self.accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        serde_json::to_vec(&Snapshot {
            format: SNAPSHOT_FORMAT,
            accounts,
        })
    }

    /// Replaces all account state with a snapshot's.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format {
                found: snapshot.format,
            });
        }
        self.accounts = snapshot
            .accounts
            .into_iter()
            .map(|a| (a.account_id.clone(), a))
            .collect();
        Ok(())
    }
}
