//! The bootstrap policy: a small, fixed set of checks that stands in until
//! the rules language replaces it. Its name, `bootstrap-v1`, is stored with
//! every decision it makes.
//!
//! It answers the core of the seller account-takeover chain:
//!
//! 1. a successful login to an account with history from a device *and* a
//!    network (/24 or /48) it has never used → `challenge`; otherwise, a
//!    login whose `login.risk` reaches the threshold → `challenge`
//!    (`high_login_risk`);
//! 2. a sensitive change (password, MFA, email, phone, payout destination) in
//!    a session opened by such a login (either kind) and not verified since →
//!    `review`;
//! 3. a payout or loan disbursement to a destination that was set less than
//!    the cool-off period ago in such a session → `hold`;
//! 4. a payout in such a session to a destination changed within the
//!    cool-off period → `hold`;
//! 5. a payout to a destination the account never registered → `review`.
//!
//! Weaker signals (a new device alone, a new network alone, an e-money or
//! prepaid destination) are reported as `allow` reasons with a small score so
//! that analysts see them.

use crate::decision::{Action, Decision, Reason};
use crate::event::*;
use crate::features::Features;
use crate::state::{AccountState, DestinationRecord, HIGH_LOGIN_RISK};

pub const BOOTSTRAP_POLICY_NAME: &str = "bootstrap-v1";

/// Tunables of the bootstrap policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapPolicy {
    /// How long after a risky destination change payouts to it are held.
    pub cool_off_secs: i64,
    /// `login.risk` (log10) at or above which a login is challenged.
    pub login_risk_threshold: f64,
}

/// Default `login.risk` threshold; see `docs/login-risk.md` for how it was
/// chosen.
pub const DEFAULT_LOGIN_RISK_THRESHOLD: f64 = 1.0;

impl Default for BootstrapPolicy {
    fn default() -> Self {
        BootstrapPolicy {
            cool_off_secs: 7 * 24 * 3600,
            login_risk_threshold: DEFAULT_LOGIN_RISK_THRESHOLD,
        }
    }
}

fn reason(code: &str, action: Action, score: u32, message: String) -> Reason {
    Reason {
        code: code.to_string(),
        action,
        score,
        message,
    }
}

impl BootstrapPolicy {
    /// Decides one event against the account's state before the event.
    pub fn decide(
        &self,
        state: Option<&AccountState>,
        event: &Event,
        features: &Features,
    ) -> Decision {
        let mut reasons = Vec::new();
        match &event.details {
            Details::Login {
                status: LoginStatus::Success,
                ..
            } => self.check_login(state, event, features, &mut reasons),
            Details::Payout { destination, .. } => {
                self.check_payout(state, event, destination.as_ref(), &mut reasons)
            }
            Details::Loan { .. } if event.event_type == EventType::LoanDisbursement => {
                self.check_payout(state, event, None, &mut reasons)
            }
            _ => {}
        }
        if event.event_type.is_sensitive_change() {
            self.check_sensitive_change(state, event, &mut reasons);
        }
        Decision::from_reasons(BOOTSTRAP_POLICY_NAME, reasons)
    }

    fn check_login(
        &self,
        state: Option<&AccountState>,
        event: &Event,
        features: &Features,
        out: &mut Vec<Reason>,
    ) {
        let Some(state) = state else { return };
        let signals = state.login_signals(event);
        if signals.first_login {
            return;
        }
        if let Some(risk) = features.number_of("login.risk")
            && risk >= self.login_risk_threshold
            && !(signals.new_device && signals.new_network)
        {
            out.push(reason(
                HIGH_LOGIN_RISK,
                Action::Challenge,
                60,
                format!(
                    "login risk {risk:.1} (log10) is at or above {:.1}: this login is unlike the account's history",
                    self.login_risk_threshold
                ),
            ));
        }
        match (signals.new_device, signals.new_network) {
            (true, true) => out.push(reason(
                "new_device_and_network_login",
                Action::Challenge,
                60,
                "login from a device and a network this account has never used".into(),
            )),
            (true, false) => out.push(reason(
                "new_device",
                Action::Allow,
                20,
                "login from a device this account has never used".into(),
            )),
            (false, true) => out.push(reason(
                "new_network",
                Action::Allow,
                15,
                "login from a network this account has never used".into(),
            )),
            (false, false) => {}
        }
    }

    fn check_sensitive_change(
        &self,
        state: Option<&AccountState>,
        event: &Event,
        out: &mut Vec<Reason>,
    ) {
        if let Some(session) = state.and_then(|s| s.session_for(event)).filter(|s| s.risky) {
            out.push(reason(
                "sensitive_change_in_risky_session",
                Action::Review,
                50,
                format!(
                    "{} in session {} opened by a login from a new device or network, not verified since",
                    event.event_type, session.session_id
                ),
            ));
        }
        if let Details::PayoutDestinationChange { destination, .. } = &event.details
            && matches!(
                destination.institution_type,
                Some(InstitutionType::EMoney | InstitutionType::Prepaid)
            )
        {
            out.push(reason(
                "destination_at_e_money_or_prepaid_issuer",
                Action::Allow,
                10,
                format!(
                    "new payout destination at an {} issuer",
                    destination
                        .institution_type
                        .map_or("unknown", InstitutionType::as_str)
                ),
            ));
        }
    }

    fn check_payout(
        &self,
        state: Option<&AccountState>,
        event: &Event,
        explicit: Option<&Destination>,
        out: &mut Vec<Reason>,
    ) {
        let Some(state) = state else { return };
        if let Some(destination) = explicit
            && !state.knows_destination(destination)
        {
            out.push(reason(
                "payout_to_unregistered_destination",
                Action::Review,
                40,
                "payout to a destination this account never registered".into(),
            ));
        }
        let record: Option<&DestinationRecord> = match explicit {
            None => state.destination.as_ref(),
            Some(d) => state
                .destination
                .iter()
                .chain(state.previous_destinations.iter())
                .find(|r| r.destination.same_account(d)),
        };
        let Some(record) = record else { return };
        let age = event.unix_time() - record.set_at.0;
        if age >= self.cool_off_secs {
            return;
        }
        let age_text = format_age(age);
        if record.set_in_risky_session {
            out.push(reason(
                "payout_to_destination_set_in_risky_session",
                Action::Hold,
                80,
                format!(
                    "destination ending {} was set {age_text} ago in a session opened by a login \
                     from a new device or network; cool-off is {}",
                    record
                        .destination
                        .account_last4
                        .as_deref()
                        .unwrap_or("????"),
                    format_age(self.cool_off_secs)
                ),
            ));
        } else if state.session_for(event).is_some_and(|s| s.risky) {
            out.push(reason(
                "payout_in_risky_session_after_destination_change",
                Action::Hold,
                70,
                format!(
                    "payout in a session opened by a login from a new device or network, to a \
                     destination set {age_text} ago"
                ),
            ));
        }
    }
}

fn format_age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs >= 86_400 {
        format!("{}d{}h", secs / 86_400, secs % 86_400 / 3600)
    } else if secs >= 3600 {
        format!("{}h{}m", secs / 3600, secs % 3600 / 60)
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}
