//! What an event sets off beyond its own account's state: holds opened and
//! closed, accounts put at risk and cleared, destinations denied, campaigns
//! found and grown. Each consequence is returned as an [`Effect`], which the
//! engine puts in the decision; the stored decision then carries it to
//! webhooks, and a replay of the log does the same things again.
//!
//! The rules of the game, in one place:
//!
//! - A payout or loan disbursement decided `hold` opens a hold that expires
//!   at the end of the cool-off: the rule set's `hold_cool_off` after the
//!   account's last sensitive change (or after the payout, if that change
//!   is older). The expiry is kept in the stored effect, so a later rule
//!   set with another cool-off does not change a replay.
//!   The cool-off starts no earlier than the engine's clock and the
//!   account's newest event time: a payout dated in the far past does not
//!   open a hold that has already expired.
//! - At expiry a hold is released by itself unless the account is at risk,
//!   in a confirmed campaign, or the destination is denied; then it waits
//!   for an analyst, or for whatever clears the account (a passed
//!   verification, a `legit` label, an analyst's `clear_account`). Expiry
//!   runs against the engine's clock ([`crate::clock`]) for every hold, and
//!   against the account's own newest event time for the account's holds.
//! - In a replay, the holds the stored decision says this event closed are
//!   closed, whatever the clocks say: a log written by a build whose clock
//!   ran ahead (one far-future event used to move it for everyone) rebuilds
//!   the state that build had, and acknowledged, and sent as webhooks.
//! - `fraud` and `compromise_reported` labels put the account at risk,
//!   cancel its open holds and deny the destinations the attacker set: those
//!   set in a risky session or while the account was at risk, or the one the
//!   label's `target_event_id` set; failing those, the current destination
//!   if it was set in the 30 days before the label.
//! - A `legit` label clears the account and releases its open holds.
//! - A passed verification without a session, through a channel that may
//!   vouch ([`crate::state::AccountState::may_vouch`]), is the owner
//!   confirming the account out of band: its open holds that nothing else
//!   argues against are released at once. Holds a rule tagged
//!   `owner_confirms` asked for are released only so (or by a person):
//!   at expiry they wait for an analyst, and a step-up passed in a session
//!   does not release them.
//! - Money released from a hold counts as paid into its destination, like
//!   an allowed payout: the next payout there is not a first one.

use serde::Deserialize;

use crate::campaigns::{
    CampaignDetector, CampaignNotice, CampaignNoticeKind, CampaignStatus, SensitiveChange,
};
use crate::decision::{Decision, Effect, EffectKind};
use crate::destinations::destination_key_of;
use crate::engine::Engine;
use crate::event::{
    AnalystActionKind, Currency, Destination, Details, Event, EventType, InstitutionType, LabelKind,
};
use crate::features::{CampaignStanding, CampaignView};
use crate::holds::{DestinationView, Hold, HoldKey, HoldStatus, NewHold, Resolution};
use crate::state::{AccountChange, AtRisk};
use crate::types::{Action, Timestamp};

/// Who closes a hold that closes by itself.
pub const SYSTEM_ACTOR: &str = "custos";

/// Without a risky session to go by, a fraud label denies the current
/// destination only if it was set this recently.
const RECENT_DESTINATION_SECS: i64 = 30 * 86_400;

/// What the engine notes before the account's state changes.
pub(crate) struct Before {
    /// The event's session was risky before the event.
    session_risky: bool,
    /// A destination change toward an institution that is bursting.
    burst: bool,
    /// For a destination change: the other accounts whose earlier setting
    /// of the destination looks like mule reuse to this one, and when.
    pub(crate) earlier_setters: Vec<(String, i64)>,
}

#[derive(serde::Serialize)]
struct AccountAtRiskData<'a> {
    account_id: &'a str,
    at_risk: &'a AtRisk,
}

#[derive(serde::Serialize)]
struct AccountClearedData<'a> {
    account_id: &'a str,
    by: &'a str,
    reason: &'a str,
    at: Timestamp,
}

#[derive(serde::Serialize)]
struct DestinationDeniedData<'a> {
    destination: DestinationView,
    account_id: &'a str,
    label: LabelKind,
    at: Timestamp,
}

/// A risk episode opening this soon after a destination change makes the
/// change one made in the episode.
const EPISODE_LINKS_CHANGE_SECS: i64 = 3_600;

fn campaign_effect(notice: CampaignNotice) -> Effect {
    let kind = match notice.kind {
        CampaignNoticeKind::Detected => EffectKind::CampaignDetected,
        CampaignNoticeKind::Updated => EffectKind::CampaignUpdated,
        CampaignNoticeKind::Confirmed => EffectKind::CampaignConfirmed,
        CampaignNoticeKind::Dismissed => EffectKind::CampaignDismissed,
    };
    Effect::of(kind, &notice.summary)
}

/// The expiry a stored decision already gave this hold, if it has one.
fn stored_expiry(decision: &Decision, hold_id: &str) -> Option<i64> {
    decision
        .effects
        .iter()
        .filter(|e| e.kind == EffectKind::HoldCreated)
        .find(|e| e.data["hold_id"] == hold_id)
        .and_then(|e| Timestamp::deserialize(&e.data["expires_at"]).ok())
        .map(|t| t.0)
}

impl Engine {
    pub(crate) fn before_apply(&self, event: &Event) -> Before {
        // Only sensitive changes feed the campaign detector: other events
        // skip the account lookup.
        let session_risky = event.event_type.is_sensitive_change()
            && self
                .account(&event.account_id)
                .and_then(|s| s.session_for(event))
                .is_some_and(|s| s.risky);
        let burst = match &event.details {
            Details::PayoutDestinationChange { destination, .. } => {
                self.campaigns
                    .institution_burst(&destination.institution_id, event.unix_time())
                    .bursting
            }
            _ => false,
        };
        Before {
            session_risky,
            burst,
            earlier_setters: Vec::new(),
        }
    }

    pub(crate) fn after_apply(
        &mut self,
        event: &Event,
        decision: &Decision,
        before: Before,
        change: AccountChange,
    ) -> Vec<Effect> {
        let at = event.unix_time();
        let mut effects = Vec::new();
        if before.burst
            && matches!(event.details, Details::PayoutDestinationChange { .. })
            && let Some(record) = self
                .accounts
                .get_mut(&event.account_id)
                .and_then(|s| s.destination.as_mut())
        {
            record.set_during_burst = true;
        }
        if change.put_at_risk {
            self.push_at_risk(&event.account_id, &mut effects);
            self.mark_destination_set_in_episode(&event.account_id);
        }
        if change.cleared {
            self.push_cleared(
                event,
                SYSTEM_ACTOR,
                "verification passed",
                false,
                &mut effects,
            );
        }
        if change.owner_confirmed {
            self.release_confirmed(event, &mut effects);
        }
        if event.event_type.is_sensitive_change() {
            let destination = match &event.details {
                Details::PayoutDestinationChange { destination, .. } => Some(destination),
                _ => None,
            };
            let notices = self.campaigns.observe_change(&SensitiveChange {
                account_id: &event.account_id,
                event_id: &event.event_id,
                at,
                event_type: event.event_type,
                destination,
                device_id: event.device_id.as_deref(),
                ip: event.ip,
                risky: before.session_risky || decision.action >= Action::Review,
                earlier_setters: &before.earlier_setters,
            });
            effects.extend(notices.into_iter().map(campaign_effect));
        }
        match &event.details {
            Details::Payout {
                payout_id,
                amount,
                currency,
                destination,
                ..
            } => {
                self.money_moved(
                    event,
                    decision,
                    payout_id,
                    *amount,
                    *currency,
                    destination.as_ref(),
                    &mut effects,
                );
            }
            Details::Loan {
                loan_id,
                amount,
                currency,
            } if event.event_type == EventType::LoanDisbursement => {
                self.money_moved(
                    event,
                    decision,
                    loan_id,
                    *amount,
                    *currency,
                    None,
                    &mut effects,
                );
            }
            Details::Label {
                label,
                target_event_id,
                ..
            } => self.apply_label(event, *label, target_event_id.as_deref(), &mut effects),
            Details::AnalystAction {
                action,
                target_id: Some(case_id),
                analyst,
                reason,
                value,
            } if action.is_case_action() => self.apply_case_action(
                &crate::cases::CaseAction {
                    action: *action,
                    case_id,
                    account_id: &event.account_id,
                    value: value.as_deref(),
                    analyst,
                    reason,
                    event_id: &event.event_id,
                    at: event.unix_time(),
                },
                &mut effects,
            ),
            Details::AnalystAction {
                action,
                target_id,
                analyst,
                reason,
                ..
            } => self.apply_analyst_action(
                event,
                *action,
                target_id.as_deref(),
                analyst,
                reason,
                &mut effects,
            ),
            _ => {}
        }
        self.clock.observe(&event.account_id, at);
        self.expire_holds(event, &mut effects);
        self.close_as_stored(decision, &mut effects);
        self.mark_released_paid(&effects);
        effects
    }

    /// Closes the holds a stored decision says its event closed and that
    /// are still open: for replays of logs whose holds expired by another
    /// clock (see the module docs). A fresh decision has no effects yet.
    fn close_as_stored(&mut self, decision: &Decision, effects: &mut Vec<Effect>) {
        for effect in &decision.effects {
            let status = match effect.kind {
                EffectKind::HoldReleased => HoldStatus::Released,
                EffectKind::HoldCancelled => HoldStatus::Cancelled,
                _ => continue,
            };
            let Ok(stored) = Hold::deserialize(&effect.data) else {
                continue;
            };
            let Some(resolution) = stored.resolution else {
                continue;
            };
            let open = self
                .holds
                .get(&stored.account_id, &stored.hold_id)
                .is_some_and(|h| h.status == HoldStatus::Held);
            if open
                && let Ok(hold) =
                    self.holds
                        .close(&stored.account_id, &stored.hold_id, status, resolution)
            {
                effects.push(Effect::of(effect.kind, hold));
            }
        }
    }

    /// A payout or disbursement: counted toward campaigns, held if decided so.
    #[allow(clippy::too_many_arguments)]
    fn money_moved(
        &mut self,
        event: &Event,
        decision: &Decision,
        hold_id: &str,
        amount: u64,
        currency: Currency,
        named: Option<&Destination>,
        effects: &mut Vec<Effect>,
    ) {
        let at = event.unix_time();
        if decision.action == Action::Hold {
            // Remembered by hold, so that a release counts it as paid.
            self.campaigns.record_held_money(
                &event.account_id,
                &event.event_id,
                at,
                amount,
                currency,
                hold_id,
            );
        } else {
            let held = decision.action >= Action::Hold;
            let notices = self.campaigns.record_money(
                &event.account_id,
                &event.event_id,
                at,
                amount,
                currency,
                held,
            );
            effects.extend(notices.into_iter().map(campaign_effect));
        }
        if decision.action != Action::Hold {
            return;
        }
        let state = self.accounts.get(&event.account_id);
        let expires_at = stored_expiry(decision, hold_id).unwrap_or_else(|| {
            let cool_off = self.rules.hold_cool_off_secs();
            // A payout dated before what the engine has seen starts its
            // cool-off now, not in the past it claims.
            let start = state
                .map_or(at, |s| s.last_seen.0.max(at))
                .max(self.clock.now());
            let last_change = state.and_then(|s| s.sensitive_changes.values().max().map(|t| t.0));
            match last_change {
                Some(changed) if changed.saturating_add(cool_off) > start => changed + cool_off,
                _ => start.saturating_add(cool_off),
            }
        });
        let destination = named.or_else(|| {
            state
                .and_then(|s| s.destination.as_ref())
                .map(|r| &r.destination)
        });
        let opened = self.holds.open_hold(NewHold {
            hold_id,
            account_id: &event.account_id,
            kind: event.event_type,
            event_id: &event.event_id,
            amount,
            currency,
            destination,
            decision,
            at,
            expires_at,
        });
        if let Some(hold) = opened {
            effects.push(Effect::of(EffectKind::HoldCreated, hold));
        }
    }

    fn apply_label(
        &mut self,
        event: &Event,
        label: LabelKind,
        target_event_id: Option<&str>,
        effects: &mut Vec<Effect>,
    ) {
        let at = event.unix_time();
        let notices = self
            .campaigns
            .label(&event.account_id, &event.event_id, at, label);
        effects.extend(notices.into_iter().map(campaign_effect));
        match label {
            LabelKind::Fraud | LabelKind::CompromiseReported => {
                for destination in
                    self.attacker_destinations(&event.account_id, at, target_event_id)
                {
                    if self.destinations.deny(&destination, at) {
                        effects.push(Effect::of(
                            EffectKind::DestinationDenied,
                            &DestinationDeniedData {
                                destination: DestinationView::from(&destination),
                                account_id: &event.account_id,
                                label,
                                at: Timestamp(at),
                            },
                        ));
                    }
                }
                let put_at_risk = self
                    .accounts
                    .get_mut(&event.account_id)
                    .is_some_and(|s| s.mark_at_risk(event, at));
                if put_at_risk {
                    self.push_at_risk(&event.account_id, effects);
                }
                let reason = format!("labelled {label}");
                self.close_open_holds(event, HoldStatus::Cancelled, &reason, effects);
            }
            LabelKind::Legit => {
                let cleared = self
                    .accounts
                    .get_mut(&event.account_id)
                    .is_some_and(|s| s.clear_risk());
                if cleared {
                    self.push_cleared(event, labeller(event), "labelled legit", true, effects);
                }
                self.close_open_holds(event, HoldStatus::Released, "labelled legit", effects);
            }
            LabelKind::Chargeback => {}
        }
    }

    /// The destinations a fraud label puts on the deny list (see the
    /// module docs).
    fn attacker_destinations(
        &self,
        account_id: &str,
        at: i64,
        target_event_id: Option<&str>,
    ) -> Vec<Destination> {
        let Some(state) = self.accounts.get(account_id) else {
            return Vec::new();
        };
        let risky_since = state.at_risk.as_ref().map(|r| r.since.0);
        let records = state
            .destination
            .iter()
            .chain(state.previous_destinations.iter());
        let mut chosen: Vec<Destination> = records
            .clone()
            .filter(|r| {
                r.set_in_risky_session
                    || risky_since.is_some_and(|since| r.set_at.0 >= since)
                    || target_event_id == Some(r.set_by_event.as_str())
            })
            .map(|r| r.destination.clone())
            .collect();
        if chosen.is_empty()
            && let Some(current) = &state.destination
            && at - current.set_at.0 <= RECENT_DESTINATION_SECS
        {
            chosen.push(current.destination.clone());
        }
        chosen
    }

    fn apply_analyst_action(
        &mut self,
        event: &Event,
        action: AnalystActionKind,
        target_id: Option<&str>,
        analyst: &str,
        reason: &str,
        effects: &mut Vec<Effect>,
    ) {
        let at = event.unix_time();
        let resolution = || Resolution {
            by: analyst.to_string(),
            reason: reason.to_string(),
            at: Timestamp(at),
            event_id: event.event_id.clone(),
        };
        match (action, target_id) {
            (AnalystActionKind::ReleasePayout | AnalystActionKind::CancelPayout, Some(id)) => {
                // Holds are keyed by account: an action recorded on one
                // account cannot close another's.
                let (status, kind) = if action == AnalystActionKind::ReleasePayout {
                    (HoldStatus::Released, EffectKind::HoldReleased)
                } else {
                    (HoldStatus::Cancelled, EffectKind::HoldCancelled)
                };
                if let Ok(hold) = self
                    .holds
                    .close(&event.account_id, id, status, resolution())
                {
                    effects.push(Effect::of(kind, hold));
                }
            }
            (AnalystActionKind::ClearAccount, _) => {
                let risk_cleared = self
                    .accounts
                    .get_mut(&event.account_id)
                    .is_some_and(|s| s.clear_risk());
                let left_campaign =
                    self.campaigns
                        .clear_account(&event.account_id, &event.event_id, at, analyst);
                if risk_cleared || left_campaign {
                    self.push_cleared(event, analyst, reason, true, effects);
                }
            }
            (AnalystActionKind::ConfirmCampaign | AnalystActionKind::DismissCampaign, Some(id)) => {
                let status = if action == AnalystActionKind::ConfirmCampaign {
                    CampaignStatus::Confirmed
                } else {
                    CampaignStatus::Dismissed
                };
                if let Ok(notices) =
                    self.campaigns
                        .set_status(id, status, analyst, reason, &event.event_id, at)
                {
                    effects.extend(notices.into_iter().map(campaign_effect));
                }
            }
            _ => {}
        }
    }

    /// A risk episode that opens in the session that set the account's
    /// destination, or within the hour after, makes that setting one made
    /// in a risky episode for every later setter of the destination: the
    /// owner was asked to confirm the change and whoever answered failed.
    fn mark_destination_set_in_episode(&mut self, account_id: &str) {
        let Some(state) = self.accounts.get(account_id) else {
            return;
        };
        let (Some(at_risk), Some(record)) = (&state.at_risk, &state.destination) else {
            return;
        };
        let same_session =
            at_risk.session_id.is_some() && at_risk.session_id == record.set_in_session;
        let just_before =
            (0..=EPISODE_LINKS_CHANGE_SECS).contains(&(at_risk.since.0 - record.set_at.0));
        if same_session || just_before {
            let destination = record.destination.clone();
            self.destinations.mark_risky(&destination, account_id);
        }
    }

    fn push_at_risk(&self, account_id: &str, effects: &mut Vec<Effect>) {
        if let Some(at_risk) = self.account(account_id).and_then(|s| s.at_risk.as_ref()) {
            effects.push(Effect::of(
                EffectKind::AccountAtRisk,
                &AccountAtRiskData {
                    account_id,
                    at_risk,
                },
            ));
        }
    }

    /// Records that the account was cleared, and releases its holds that
    /// waited past their cool-off only because of its risk; holds waiting
    /// for the owner's confirmation only if a person cleared it
    /// (`releases_confirmations`): a step-up in a session is not the owner
    /// confirming a payout out of band.
    fn push_cleared(
        &mut self,
        event: &Event,
        by: &str,
        reason: &str,
        releases_confirmations: bool,
        effects: &mut Vec<Effect>,
    ) {
        effects.push(Effect::of(
            EffectKind::AccountCleared,
            &AccountClearedData {
                account_id: &event.account_id,
                by,
                reason,
                at: Timestamp(event.unix_time()),
            },
        ));
        for key in self.holds.open_keys_of(&event.account_id) {
            let waiting = self.holds.get(&key.0, &key.1).is_some_and(|h| {
                h.awaiting_analyst && (releases_confirmations || !h.owner_must_confirm)
            });
            if waiting && self.releasable(&key) {
                self.release(
                    &key,
                    event,
                    by,
                    "cool-off over and account cleared",
                    effects,
                );
            }
        }
    }

    /// The owner confirmed the account out of band through a channel that
    /// may vouch: every open hold of the account that nothing else argues
    /// against is released now, not at the end of its cool-off.
    fn release_confirmed(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let beyond_takeover = match &event.details {
            Details::Verification { channel, .. } => channel.is_some_and(|c| c.beyond_takeover()),
            _ => false,
        };
        for key in self.holds.open_keys_of(&event.account_id) {
            let needs_beyond_takeover = self
                .holds
                .get(&key.0, &key.1)
                .is_some_and(|h| h.confirm_beyond_takeover);
            if needs_beyond_takeover && !beyond_takeover {
                // Money to a destination never paid before: a code the
                // attacker relays confirms nothing; the hold keeps waiting
                // for a channel the decision asked for.
                continue;
            }
            if self.releasable(&key) {
                self.release_settling_sharing(&key, event, "owner confirmed", effects);
            } else {
                // Something else still argues against paying; the owner's
                // part is done, so at expiry only that decides.
                self.holds.owner_confirmed(&key);
            }
        }
    }

    /// Releases a hold nothing argues against; a suspected campaign it
    /// waited on whose every link looks like sharing is dismissed with it,
    /// so a household's next payouts are not held for it.
    fn release_settling_sharing(
        &mut self,
        key: &HoldKey,
        event: &Event,
        reason: &str,
        effects: &mut Vec<Effect>,
    ) {
        let sharing = self.sharing_campaign_of_hold(key);
        self.release(key, event, SYSTEM_ACTOR, reason, effects);
        if let Some(id) = sharing
            && let Ok(notices) = self.campaigns.set_status(
                &id,
                CampaignStatus::Dismissed,
                SYSTEM_ACTOR,
                "its accounts share a bank account as related accounts do",
                &event.event_id,
                event.unix_time(),
            )
        {
            effects.extend(notices.into_iter().map(campaign_effect));
        }
    }

    /// Money released from a hold counts as paid into its destination:
    /// the next payout there is not a first one; and as paid in the
    /// campaigns' money (a cancelled hold stays counted as held).
    fn mark_released_paid(&mut self, effects: &[Effect]) {
        for effect in effects {
            if !matches!(
                effect.kind,
                EffectKind::HoldReleased | EffectKind::HoldCancelled
            ) {
                continue;
            }
            let Ok(hold) = Hold::deserialize(&effect.data) else {
                continue;
            };
            if effect.kind == EffectKind::HoldCancelled {
                self.campaigns.forget_hold(&hold.account_id, &hold.hold_id);
                continue;
            }
            self.campaigns
                .release_money(&hold.account_id, &hold.hold_id);
            let (Some(destination), Some(resolution)) = (&hold.destination, &hold.resolution)
            else {
                continue;
            };
            if let Some(state) = self.accounts.get_mut(&hold.account_id) {
                state.mark_destination_paid(
                    &destination.institution_id,
                    &destination.account_token,
                    resolution.at,
                );
            }
        }
    }

    /// Closes every open hold of the event's account.
    fn close_open_holds(
        &mut self,
        event: &Event,
        status: HoldStatus,
        reason: &str,
        effects: &mut Vec<Effect>,
    ) {
        let kind = match status {
            HoldStatus::Cancelled => EffectKind::HoldCancelled,
            _ => EffectKind::HoldReleased,
        };
        for (account_id, id) in self.holds.open_keys_of(&event.account_id) {
            let resolution = Resolution {
                by: labeller(event).to_string(),
                reason: reason.to_string(),
                at: Timestamp(event.unix_time()),
                event_id: event.event_id.clone(),
            };
            if let Ok(hold) = self.holds.close(&account_id, &id, status, resolution) {
                effects.push(Effect::of(kind, hold));
            }
        }
    }

    fn release(
        &mut self,
        key: &HoldKey,
        event: &Event,
        by: &str,
        reason: &str,
        effects: &mut Vec<Effect>,
    ) {
        let resolution = Resolution {
            by: by.to_string(),
            reason: reason.to_string(),
            at: Timestamp(event.unix_time()),
            event_id: event.event_id.clone(),
        };
        if let Ok(hold) = self
            .holds
            .close(&key.0, &key.1, HoldStatus::Released, resolution)
        {
            effects.push(Effect::of(EffectKind::HoldReleased, hold));
        }
    }

    /// Nothing argues against paying a hold out any more.
    fn releasable(&self, key: &HoldKey) -> bool {
        self.holds.get(&key.0, &key.1).is_some() && self.hold_blocker(key).is_none()
    }

    /// What still argues against paying a hold out, if anything: the reason
    /// it waits for an analyst.
    fn hold_blocker(&self, key: &HoldKey) -> Option<String> {
        let hold = self.holds.get(&key.0, &key.1)?;
        let account = self.account(&hold.account_id);
        if account.is_some_and(|s| s.at_risk.is_some()) {
            return Some("account at risk".into());
        }
        if let Some(campaign) = self.campaigns.account_in_live_campaign(&hold.account_id)
            && campaign.status == CampaignStatus::Confirmed
        {
            return Some(format!("account in confirmed campaign {}", campaign.id));
        }
        let destination = hold.destination.as_ref()?;
        let destination_key =
            destination_key_of(&destination.institution_id, &destination.account_token);
        if self.destinations.is_denied_key(destination_key) {
            return Some("destination denied".into());
        }
        // Money to a destination that links accounts in a live campaign
        // waits for a person only when the sharing looks like a mule (set by
        // unrelated sellers, under other names, or in their risky
        // episodes): a household's or an accountant's shared account that a
        // risky change happened to link is paid when the cool-off ends,
        // instead of waiting forever.
        let campaign = self
            .campaigns
            .campaign_of_destination_key(destination_key)?;
        if campaign.status == CampaignStatus::Dismissed {
            return None;
        }
        let mule_like = self
            .destinations
            .get_key(destination_key)
            .is_some_and(|used| {
                let own = used
                    .setter(&hold.account_id)
                    .map(|s| s.by)
                    .unwrap_or_default();
                used.compare(
                    &hold.account_id,
                    hold.expires_at.0,
                    &own,
                    account.map(|s| &s.profile),
                )
                .mule_like
                    > 0
            });
        mule_like.then(|| {
            format!(
                "destination links accounts in campaign {} and looks like mule reuse",
                campaign.id
            )
        })
    }

    /// The suspected campaign a hold's destination links, if all of it
    /// looks like sharing: every member set one of its destinations, every
    /// destination was set by two members or more, and none of those
    /// settings looks like mule reuse to the other members (see
    /// [`crate::destinations::DestinationUse::compare`]). A campaign found
    /// through a burst, or too big to list, is never such.
    fn sharing_campaign_of_hold(&self, key: &HoldKey) -> Option<String> {
        let hold = self.holds.get(&key.0, &key.1)?;
        let destination = hold.destination.as_ref()?;
        let campaign = self
            .campaigns
            .campaign_of_destination_key(destination_key_of(
                &destination.institution_id,
                &destination.account_token,
            ))?;
        if campaign.status != CampaignStatus::Suspected
            || campaign.links.institution_burst > 0
            || campaign.more_accounts > 0
            || campaign.more_destinations > 0
        {
            return None;
        }
        let mut members_with_a_destination = 0;
        for member in &campaign.accounts {
            let set_one = campaign.destinations.iter().any(|d| {
                self.destinations
                    .get_key(destination_key_of(&d.institution_id, &d.account_token))
                    .is_some_and(|u| u.setter(&member.account_id).is_some())
            });
            if set_one {
                members_with_a_destination += 1;
            }
        }
        if members_with_a_destination != campaign.accounts.len() {
            return None;
        }
        let at = hold.expires_at.0;
        let all_sharing = campaign.destinations.iter().all(|d| {
            let Some(used) = self
                .destinations
                .get_key(destination_key_of(&d.institution_id, &d.account_token))
            else {
                return false;
            };
            let setters: Vec<&crate::destinations::Setter> = campaign
                .accounts
                .iter()
                .filter_map(|m| used.setter(&m.account_id))
                .collect();
            setters.len() >= 2
                && setters.iter().all(|s| {
                    let profile = self.account(&s.account_id).map(|a| &a.profile);
                    used.compare(&s.account_id, at, &s.by, profile).mule_like == 0
                })
        });
        all_sharing.then(|| campaign.id.clone())
    }

    /// Holds whose cool-off ended by the engine's clock, then the event's
    /// account's holds whose cool-off ended by its own newest event time:
    /// released, or left for an analyst when something still argues
    /// against paying.
    fn expire_holds(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let mut due = self.holds.take_expired(self.clock.now());
        if let Some(own) = self.accounts.get(&event.account_id).map(|s| s.last_seen.0) {
            due.extend(self.holds.take_expired_of(&event.account_id, own));
        }
        for key in due {
            let confirm = self
                .holds
                .get(&key.0, &key.1)
                .is_some_and(|h| h.owner_must_confirm);
            match self.hold_blocker(&key) {
                Some(reason) => self.holds.await_analyst_because(&key, &reason),
                // Time passing is no confirmation: the owner has not said
                // the destination is theirs.
                None if confirm => self
                    .holds
                    .await_analyst_because(&key, "the owner has not confirmed it"),
                None => self.release_settling_sharing(&key, event, "cool-off ended", effects),
            }
        }
    }
}

/// Features read campaigns through this view of the detector.
impl CampaignView for CampaignDetector {
    fn linked_accounts(&self, account_id: &str) -> u32 {
        CampaignDetector::linked_accounts(self, account_id)
    }

    fn account_standing(&self, account_id: &str) -> Option<CampaignStanding> {
        self.account_in_live_campaign(account_id)
            .map(|c| match c.status {
                CampaignStatus::Confirmed => CampaignStanding::Confirmed,
                _ => CampaignStanding::Suspected,
            })
    }

    fn destination_in_campaign(&self, destination: &Destination) -> bool {
        self.campaign_of_destination(destination)
            .is_some_and(|c| c.status != CampaignStatus::Dismissed)
    }

    fn institution_burst(&self, institution_id: &str, at: i64) -> (f64, bool) {
        let burst = CampaignDetector::institution_burst(self, institution_id, at);
        (burst.score, burst.bursting)
    }

    fn institution_type_burst(&self, kind: InstitutionType, at: i64) -> bool {
        CampaignDetector::institution_type_burst(self, kind, at).bursting
    }
}

/// Who a label's consequences are recorded as done by.
fn labeller(event: &Event) -> &str {
    match &event.details {
        Details::Label {
            analyst: Some(analyst),
            ..
        } => analyst,
        _ => "label",
    }
}
