//! The messages between the engine thread and the writer thread.
//!
//! The engine hands each decided group to the writer as a [`Job`], with the
//! answers it holds back ([`Reply`]) until the group is durable; the writer
//! tells the engine what became of each commit ([`Note`]). Both threads
//! import these types from here, so neither module depends on the other.

use std::sync::mpsc as std_mpsc;

use custos_core::{AccountState, EventType};
use tokio::sync::oneshot;

use crate::{Origin, Outcome, SubmitError};

/// Kept so that an [`AccountState`] read is answered only after the events
/// it reflects are durable.
pub(crate) type AccountReply = oneshot::Sender<Option<AccountState>>;

/// A decided event waiting for its commit.
pub(crate) struct GroupEntry {
    pub outcome: Outcome,
    pub event_type: EventType,
    pub account_id: String,
    pub event_time: i64,
    pub event_json: String,
    pub decision_json: String,
    /// Set for an event a cluster owner decided: published to the commit log.
    pub origin: Option<Origin>,
}

/// An answer held back until the group it belongs to is durable.
pub(crate) enum Reply {
    Submit {
        reply: oneshot::Sender<Result<Vec<Option<Outcome>>, SubmitError>>,
        result: Result<Vec<Option<Outcome>>, SubmitError>,
    },
    Account {
        reply: AccountReply,
        // Boxed: an account state is large and replies queue up per commit.
        state: Option<Box<AccountState>>,
    },
    Read {
        reply: oneshot::Sender<serde_json::Value>,
        value: serde_json::Value,
    },
}

pub(crate) enum Job {
    /// Commit these entries, then send these replies.
    Commit {
        generation: u64,
        entries: Vec<GroupEntry>,
        replies: Vec<Reply>,
    },
    /// Acknowledge once every earlier job is handled.
    Barrier { ack: std_mpsc::SyncSender<()> },
}

/// What the writer tells the engine thread.
pub(crate) enum Note {
    Committed {
        last_seq: u64,
    },
    /// A commit failed: the engine's memory is ahead of the log.
    Failed,
}
