//! Comparing two rule sets: the events they decided differently, counted by
//! ground truth, with a few examples for a first look.

use std::collections::BTreeMap;

use custos_core::Event;
use custos_core::decision::{Action, Decision};
use custos_sim::truth::Truth;

use crate::report::{ChangedDecisions, ChangedExample};

const MAX_EXAMPLES: usize = 50;

/// Events decided differently by two rule sets.
#[derive(Default)]
pub(crate) struct Diff {
    changed: BTreeMap<(Action, Action), (u64, u64)>,
    pub examples: Vec<ChangedExample>,
}

impl Diff {
    pub(crate) fn observe(
        &mut self,
        event: &Event,
        truth: &Truth,
        base: &Decision,
        candidate: &Decision,
    ) {
        if base.action == candidate.action {
            return;
        }
        let counts = self
            .changed
            .entry((base.action, candidate.action))
            .or_default();
        if truth.fraud {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(ChangedExample {
                event_id: event.event_id.clone(),
                event_type: event.event_type.as_str().to_string(),
                account_id: event.account_id.clone(),
                fraud: truth.fraud,
                from: base.action.as_str().to_string(),
                to: candidate.action.as_str().to_string(),
                rules_added: codes_missing_from(candidate, base),
                rules_removed: codes_missing_from(base, candidate),
            });
        }
    }

    pub(crate) fn changed(&self) -> Vec<ChangedDecisions> {
        self.changed
            .iter()
            .map(|((from, to), (fraud, legit))| ChangedDecisions {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
                fraud: *fraud,
                legit: *legit,
            })
            .collect()
    }
}

/// Rule codes that fired in `decision` and not in `other`.
fn codes_missing_from(decision: &Decision, other: &Decision) -> Vec<String> {
    decision
        .reasons
        .iter()
        .filter(|r| !other.reasons.iter().any(|o| o.code == r.code))
        .map(|r| r.code.clone())
        .collect()
}
