//! The platform's side of the closed loop: who can answer a verification
//! the platform asks for, and which of the history's events could no longer
//! have happened once an attacker failed one.
//!
//! A history is open loop: the simulator wrote what attackers did as if
//! nothing stopped them. The replay plays the platform's answers to Custos
//! (step-ups after a challenge, confirmations after a hold), and this module
//! keeps what those answers depend on, per account:
//!
//! - the channel the owner usually verifies through (the last one their
//!   own `verification` events named), used when a decision does not say
//!   which channels may vouch;
//! - the channels the attacker can answer (`truth.controls` of his latest
//!   event), less those whose contact or factor change never happened in
//!   the replay, plus those whose contact or factor he did move;
//! - the contacts and factors the attacker moved to himself (his replayed
//!   `email_change`, `phone_change`, `mfa_change`), until the owner changes
//!   them back: through those the owner can no longer be reached;
//! - whether the attacker's payout destination is current, never happened
//!   (his change came after a failed step-up), or was never tried, and
//!   whether he is locked out (his last session ended on a failed step-up).
//!
//! The rules of who answers are in docs/evaluate.md. Everything here is
//! bounded by the history's accounts: one small entry per account an
//! attacker touched or whose owner named a channel.

use std::collections::{HashMap, HashSet};

use custos_core::Event;
use custos_core::decision::Decision;
use custos_core::event::{Credential, Details, EventType, LoginStatus, VerificationChannel};
use custos_sim::truth::{Actor, Truth};

use crate::report::Responses;

/// The channel a platform steps up through when neither the decision nor
/// the owner's history names one: an authenticator app.
pub(crate) const DEFAULT_CHANNEL: VerificationChannel = VerificationChannel::Totp;

/// The attacker's payout destination on an account, as the replay has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum AttackerDestination {
    /// He never set one (or the owner set their own since).
    #[default]
    None,
    /// His change was replayed: payouts go to him.
    Set,
    /// His change came after (or was) a step-up he failed: it never
    /// happened, so payouts still go to the owner.
    Prevented,
}

#[derive(Debug, Default)]
struct AccountSide {
    usual_channel: Option<VerificationChannel>,
    /// The channels of the attacker's latest event's `truth.controls`.
    controls: Vec<VerificationChannel>,
    /// Contacts and factors the attacker moved to himself in the replay.
    moved: Vec<Credential>,
    /// Contacts and factors whose change by the attacker never happened.
    change_prevented: Vec<Credential>,
    destination: AttackerDestination,
    locked_out: bool,
}

impl AccountSide {
    /// Whether the attacker can answer through `channel` now.
    fn attacker_controls(&self, channel: VerificationChannel) -> bool {
        match channel.relies_on() {
            Some(credential) if self.moved.contains(&credential) => true,
            Some(credential) if self.change_prevented.contains(&credential) => false,
            _ => self.controls.contains(&channel),
        }
    }

    /// Whether the owner can still be reached through `channel`.
    fn owner_reachable(&self, channel: VerificationChannel) -> bool {
        channel
            .relies_on()
            .is_none_or(|credential| !self.moved.contains(&credential))
    }
}

/// A step-up the platform asks for after a challenge, and its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepUp {
    pub channel: VerificationChannel,
    pub passed: bool,
}

/// Who answers a hold's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldAnswer {
    /// The attacker controls the channel asked, and passes.
    AttackerPasses,
    /// The owner confirms their own payout.
    OwnerConfirms,
    /// The owner denies a payout to the attacker's destination, and
    /// reports the compromise.
    OwnerDenies,
}

/// Why an event of the history is not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotReplayed {
    /// An attacker's event in a session the platform ended.
    SessionEnded,
    /// A stolen payout or disbursement that went to the owner: the
    /// attacker's destination change never happened.
    PaidToOwner,
}

#[derive(Default)]
pub(crate) struct Platform {
    accounts: HashMap<String, AccountSide>,
    ended_sessions: HashSet<u64>,
}

impl Platform {
    /// Whether the platform would have seen `event` at all, given the
    /// step-ups played so far; `None` when it is replayed.
    pub(crate) fn not_replayed(&mut self, event: &Event, truth: &Truth) -> Option<NotReplayed> {
        let attacker_side = truth.actor == Some(Actor::Attacker) || truth.fraud;
        if !attacker_side {
            return None;
        }
        if let Some(session) = event.session_id.as_deref()
            && self
                .ended_sessions
                .contains(&session_hash(&event.account_id, session))
        {
            self.did_not_happen(event);
            return Some(NotReplayed::SessionEnded);
        }
        if truth.fraud && is_money(event) {
            let side = self.accounts.get(&event.account_id)?;
            let to_owner = match side.destination {
                AttackerDestination::Prevented => true,
                // A locked-out attacker cannot ask for a payout to a
                // destination he names, and the current one is the owner's.
                AttackerDestination::None => side.locked_out,
                AttackerDestination::Set => false,
            };
            if to_owner {
                return Some(NotReplayed::PaidToOwner);
            }
        }
        None
    }

    /// Plays the step-up a decision asks for, if any, and learns from the
    /// replayed event. Call once per replayed event, after its decision.
    pub(crate) fn after(
        &mut self,
        event: &Event,
        truth: &Truth,
        decision: &Decision,
        responses: &mut Responses,
    ) -> Option<StepUp> {
        let step_up = self.step_up(event, truth, decision, responses);
        if step_up.is_some_and(|s| !s.passed) && truth.actor == Some(Actor::Attacker) {
            // The platform ends the session: what the challenged event
            // asked for never happened, nor does anything after it.
            if let Some(session) = event.session_id.as_deref() {
                self.ended_sessions
                    .insert(session_hash(&event.account_id, session));
            }
            self.did_not_happen(event);
            self.accounts
                .entry(event.account_id.clone())
                .or_default()
                .locked_out = true;
        } else {
            self.learn(event, truth);
        }
        step_up
    }

    fn step_up(
        &mut self,
        event: &Event,
        truth: &Truth,
        decision: &Decision,
        responses: &mut Responses,
    ) -> Option<StepUp> {
        let asks = match event.event_type {
            // A login answered more strongly than a challenge is stepped up
            // too: the platform offers the owner a way in.
            EventType::Login => decision.action >= custos_core::Action::Challenge,
            _ => decision.action == custos_core::Action::Challenge,
        };
        event.session_id.as_ref()?;
        if !asks {
            return None;
        }
        let channel = self.channel_for(&event.account_id, decision);
        let side = self.accounts.get(&event.account_id);
        let (passed, tally) = match truth.actor {
            Some(Actor::Seller) => {
                let passed = side.is_none_or(|s| s.owner_reachable(channel));
                let tally = if passed {
                    &mut responses.step_ups.owner_passed
                } else {
                    &mut responses.step_ups.owner_failed
                };
                (passed, tally)
            }
            Some(Actor::Attacker) => {
                // His controls at this moment, as the event's truth says,
                // less the changes the replay never let happen.
                let mut now = side.map(|s| AccountSide {
                    moved: s.moved.clone(),
                    change_prevented: s.change_prevented.clone(),
                    ..AccountSide::default()
                });
                let now = now.get_or_insert_with(AccountSide::default);
                now.controls = channels(&truth.controls);
                let passed = now.attacker_controls(channel);
                let tally = if passed {
                    &mut responses.step_ups.attacker_passed
                } else {
                    &mut responses.step_ups.attacker_failed
                };
                (passed, tally)
            }
            _ => return None,
        };
        *tally += 1;
        *responses
            .step_ups
            .by_channel
            .entry(channel.as_str().to_string())
            .or_default() += 1;
        Some(StepUp { channel, passed })
    }

    /// The channel the platform uses for a decision: the first the decision
    /// allows, else the owner's usual one.
    pub(crate) fn channel_for(&self, account_id: &str, decision: &Decision) -> VerificationChannel {
        decision
            .verification
            .as_ref()
            .and_then(|v| v.channels.first().copied())
            .or_else(|| {
                self.accounts
                    .get(account_id)
                    .and_then(|side| side.usual_channel)
            })
            .unwrap_or(DEFAULT_CHANNEL)
    }

    /// Who answers a confirmation of a hold through `channel` now.
    pub(crate) fn hold_answer(
        &self,
        account_id: &str,
        channel: VerificationChannel,
        fraud: bool,
    ) -> HoldAnswer {
        let attacker = self
            .accounts
            .get(account_id)
            .is_some_and(|side| side.attacker_controls(channel));
        if attacker {
            HoldAnswer::AttackerPasses
        } else if fraud {
            HoldAnswer::OwnerDenies
        } else {
            HoldAnswer::OwnerConfirms
        }
    }

    /// Records that an attacker's event never happened.
    fn did_not_happen(&mut self, event: &Event) {
        let credential = changed_credential(event);
        let destination = event.event_type == EventType::PayoutDestinationChange;
        if credential.is_none() && !destination {
            return;
        }
        let side = self.accounts.entry(event.account_id.clone()).or_default();
        if let Some(credential) = credential
            && !side.moved.contains(&credential)
            && !side.change_prevented.contains(&credential)
        {
            side.change_prevented.push(credential);
        }
        if destination && side.destination != AttackerDestination::Set {
            side.destination = AttackerDestination::Prevented;
        }
    }

    /// What a replayed event tells about the account's contacts and the
    /// attacker's reach.
    fn learn(&mut self, event: &Event, truth: &Truth) {
        match truth.actor {
            Some(Actor::Attacker) => {
                let side = self.accounts.entry(event.account_id.clone()).or_default();
                side.controls = channels(&truth.controls);
                let attempt_only = matches!(
                    event.details,
                    Details::Login {
                        status: LoginStatus::Failure,
                        ..
                    }
                );
                if !attempt_only {
                    side.locked_out = false;
                }
                if let Some(credential) = changed_credential(event) {
                    side.change_prevented.retain(|c| *c != credential);
                    if !side.moved.contains(&credential) {
                        side.moved.push(credential);
                    }
                }
                if event.event_type == EventType::PayoutDestinationChange {
                    side.destination = AttackerDestination::Set;
                }
            }
            Some(Actor::Seller) => {
                let channel = match event.details {
                    Details::Verification {
                        channel: Some(channel),
                        ..
                    } => Some(channel),
                    _ => None,
                };
                let credential = changed_credential(event);
                let destination = event.event_type == EventType::PayoutDestinationChange;
                if channel.is_none() && credential.is_none() && !destination {
                    return;
                }
                // Only accounts the replay already follows, or whose owner
                // names a channel, get an entry.
                if channel.is_none() && !self.accounts.contains_key(&event.account_id) {
                    return;
                }
                let side = self.accounts.entry(event.account_id.clone()).or_default();
                if let Some(channel) = channel {
                    side.usual_channel = Some(channel);
                }
                if let Some(credential) = credential {
                    // The owner took the contact or factor back.
                    side.moved.retain(|c| *c != credential);
                    side.controls.retain(|c| c.relies_on() != Some(credential));
                }
                if destination {
                    side.destination = AttackerDestination::None;
                }
            }
            _ => {}
        }
    }
}

/// A payout or loan disbursement: money leaving the platform.
pub(crate) fn is_money(event: &Event) -> bool {
    matches!(
        event.event_type,
        EventType::Payout | EventType::LoanDisbursement
    )
}

/// The contact or factor an event changes, if it changes one.
fn changed_credential(event: &Event) -> Option<Credential> {
    match event.event_type {
        EventType::EmailChange => Some(Credential::Email),
        EventType::PhoneChange => Some(Credential::Phone),
        EventType::MfaChange => Some(Credential::Mfa),
        _ => None,
    }
}

/// Channels by wire name; names this version does not know are skipped.
fn channels(names: &[String]) -> Vec<VerificationChannel> {
    names
        .iter()
        .filter_map(|name| VerificationChannel::from_name(name))
        .collect()
}

fn session_hash(account_id: &str, session_id: &str) -> u64 {
    use std::hash::Hasher as _;
    // Fixed keys: the same session must hash the same way every time.
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(account_id.as_bytes());
    hasher.write_u8(0);
    hasher.write(session_id.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests;
