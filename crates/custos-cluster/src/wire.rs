//! What nodes send each other: decision batches on the decisions stream,
//! answers on a node's answers subject. JSON, versioned by field presence.

use custos_core::Decision;
use serde::{Deserialize, Serialize};

/// Header naming the subject the owner answers an event on.
pub(crate) const REPLY_HEADER: &str = "Custos-Reply";

/// One message of the decisions stream: what one owner committed for one
/// partition in one group.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DecisionBatch {
    pub node: String,
    pub partition: u32,
    /// The events-stream sequence of the last event this batch decided:
    /// the next owner reads on from the one after it.
    pub input_seq: u64,
    pub records: Vec<DecidedRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DecidedRecord {
    /// The event in its stored (sealed) form.
    pub event: String,
    /// The decision as stored.
    pub decision: String,
}

/// The owner's answer for one event.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<DecidedAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AnswerError>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DecidedAnswer {
    pub seq: u64,
    pub duplicate: bool,
    pub decision: Decision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AnswerErrorKind {
    /// The id is stored with another body.
    Conflict,
    /// The owner could not read the event (another key or version).
    Unreadable,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AnswerError {
    pub kind: AnswerErrorKind,
    pub message: String,
}
