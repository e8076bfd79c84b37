//! What Custos answers for each event.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{Credential, VerificationChannel};
use crate::features::Features;
pub use crate::types::Action;

/// One reason behind a decision: a policy check that fired, or a signal
/// worth showing to an analyst (those carry `allow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine name, e.g. `new_device_and_network_login`.
    pub code: String,
    pub action: Action,
    /// Contribution to the decision's score.
    pub score: u32,
    pub message: String,
    /// The values the rule read when it fired, by path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub saw: BTreeMap<String, serde_json::Value>,
    /// The rule is tagged [`OWNER_CONFIRMS_TAG`]: a hold it opens is
    /// released when the owner confirms through a channel that may vouch
    /// (or by an analyst), never because its cool-off ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner_confirms: bool,
}

/// The rule tag that makes the holds a rule opens wait for the owner's
/// confirmation (docs/holds.md).
pub const OWNER_CONFIRMS_TAG: &str = "owner_confirms";

/// The answer for one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// 0 (nothing suspicious) to 100.
    pub score: u32,
    pub reasons: Vec<Reason>,
    /// Shadow rules that fired: recorded, never acted on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<Reason>,
    /// The rule set that decided, e.g. `default`.
    pub policy: Cow<'static, str>,
    /// Its version (0 for decisions made before rule sets were versioned).
    #[serde(default)]
    pub rules_version: u64,
    /// Named features computed for the event (see `docs/login-risk.md`).
    #[serde(default, skip_serializing_if = "Features::is_empty")]
    pub features: Features,
    /// What the event set off beyond its own answer: a hold opened or
    /// closed, an account put at risk or cleared, a campaign detected or
    /// grown. Stored with the decision, so webhooks are derived from the log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// How the platform should verify the owner when it steps up or asks
    /// for a hold's confirmation: which channels may vouch and which may
    /// not (a contact or factor changed during the account's risk
    /// episode). `None` when any channel will do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationRequest>,
}

/// The channels a verification for this decision should use, best first,
/// and the ones that cannot vouch for the account now, with the evidence
/// why (e.g. `phone_change` during the risk episode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationRequest {
    /// Channels that may vouch, the platform's first choice first.
    pub channels: Vec<VerificationChannel>,
    /// Channels a passed verification through which will not clear the
    /// risk: they rely on a contact or factor changed in the episode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<VerificationChannel>,
    /// The event types that made the refused channels untrustworthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub because: Vec<String>,
}

/// Channels that rely on a contact or factor, strongest first.
const CREDENTIAL_CHANNELS: [VerificationChannel; 6] = [
    VerificationChannel::SecurityKey,
    VerificationChannel::Totp,
    VerificationChannel::Push,
    VerificationChannel::Email,
    VerificationChannel::Sms,
    VerificationChannel::Voice,
];

impl VerificationRequest {
    /// The request for an account whose contacts and factors `untrusted`
    /// cannot vouch (changed by the event types `because`); `None` when
    /// every channel may. Best first: the contact on file before a changed
    /// one, an identity document, then channels relying on nothing changed.
    pub fn for_untrusted(
        untrusted: &[Credential],
        because: Vec<String>,
    ) -> Option<VerificationRequest> {
        if untrusted.is_empty() {
            return None;
        }
        let mut channels = Vec::new();
        for credential in untrusted {
            match credential {
                Credential::Email => channels.push(VerificationChannel::PriorEmail),
                Credential::Phone => channels.push(VerificationChannel::PriorPhone),
                Credential::Mfa => {}
            }
        }
        channels.push(VerificationChannel::IdentityDocument);
        let relies_on_untrusted =
            |c: &VerificationChannel| c.relies_on().is_some_and(|r| untrusted.contains(&r));
        channels.extend(
            CREDENTIAL_CHANNELS
                .into_iter()
                .filter(|c| !relies_on_untrusted(c)),
        );
        let mut refused: Vec<VerificationChannel> = CREDENTIAL_CHANNELS
            .into_iter()
            .filter(relies_on_untrusted)
            .collect();
        // Custos cannot judge what `other` relies on.
        refused.push(VerificationChannel::Other);
        Some(VerificationRequest {
            channels,
            refused,
            because,
        })
    }
}

impl VerificationRequest {
    /// The request for a hold on money to a destination this account was
    /// never paid to: only channels a takeover cannot pass
    /// ([`VerificationChannel::beyond_takeover`]) may confirm it, those of
    /// `untrusted` (the account's own request, if any) first; every channel
    /// relying on the account's current contacts and factors is refused,
    /// because an attacker holding the session relays its codes too.
    /// `because` names the held event's type.
    pub fn for_money_to_new_destination(
        untrusted: Option<VerificationRequest>,
        because: &str,
    ) -> VerificationRequest {
        let mut request = untrusted.unwrap_or(VerificationRequest {
            channels: Vec::new(),
            refused: Vec::new(),
            because: Vec::new(),
        });
        let mut channels: Vec<VerificationChannel> = request
            .channels
            .iter()
            .copied()
            .filter(|c| c.beyond_takeover())
            .collect();
        for channel in [
            VerificationChannel::IdentityDocument,
            VerificationChannel::SecurityKey,
        ] {
            if !channels.contains(&channel) && !request.refused.contains(&channel) {
                channels.push(channel);
            }
        }
        for channel in CREDENTIAL_CHANNELS
            .into_iter()
            .chain([VerificationChannel::Other])
        {
            if !channel.beyond_takeover() && !request.refused.contains(&channel) {
                request.refused.push(channel);
            }
        }
        if !request.because.iter().any(|b| b == because) {
            request.because.push(because.to_string());
        }
        request.channels = channels;
        request
    }
}

/// One consequence of an event, as delivered in a webhook: `kind` is the
/// webhook's `type`, `data` its object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    #[serde(rename = "type")]
    pub kind: EffectKind,
    pub data: serde_json::Value,
}

impl Effect {
    /// An effect whose data is `value` serialized; a value that cannot be
    /// (none of ours) gives `null` data rather than losing the effect.
    pub fn of(kind: EffectKind, value: &impl Serialize) -> Effect {
        Effect {
            kind,
            data: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The kinds of [`Effect`], by their wire (webhook `type`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EffectKind {
    #[serde(rename = "hold.created")]
    HoldCreated,
    #[serde(rename = "hold.released")]
    HoldReleased,
    #[serde(rename = "hold.cancelled")]
    HoldCancelled,
    #[serde(rename = "account.at_risk")]
    AccountAtRisk,
    #[serde(rename = "account.cleared")]
    AccountCleared,
    #[serde(rename = "destination.denied")]
    DestinationDenied,
    #[serde(rename = "campaign.detected")]
    CampaignDetected,
    #[serde(rename = "campaign.updated")]
    CampaignUpdated,
    #[serde(rename = "campaign.confirmed")]
    CampaignConfirmed,
    #[serde(rename = "campaign.dismissed")]
    CampaignDismissed,
    #[serde(rename = "case.updated")]
    CaseUpdated,
}

impl EffectKind {
    pub const ALL: [EffectKind; 11] = [
        EffectKind::HoldCreated,
        EffectKind::HoldReleased,
        EffectKind::HoldCancelled,
        EffectKind::AccountAtRisk,
        EffectKind::AccountCleared,
        EffectKind::DestinationDenied,
        EffectKind::CampaignDetected,
        EffectKind::CampaignUpdated,
        EffectKind::CampaignConfirmed,
        EffectKind::CampaignDismissed,
        EffectKind::CaseUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EffectKind::HoldCreated => "hold.created",
            EffectKind::HoldReleased => "hold.released",
            EffectKind::HoldCancelled => "hold.cancelled",
            EffectKind::AccountAtRisk => "account.at_risk",
            EffectKind::AccountCleared => "account.cleared",
            EffectKind::DestinationDenied => "destination.denied",
            EffectKind::CampaignDetected => "campaign.detected",
            EffectKind::CampaignUpdated => "campaign.updated",
            EffectKind::CampaignConfirmed => "campaign.confirmed",
            EffectKind::CampaignDismissed => "campaign.dismissed",
            EffectKind::CaseUpdated => "case.updated",
        }
    }
}

/// Highest score a reason may add, and the cap of a decision's score.
pub const MAX_SCORE: u32 = 100;

impl Decision {
    /// The login risk this decision recorded (the `login.risk` feature):
    /// state takes a session's risk from here, so that a rebuild gives the
    /// session the risk it had when it was decided.
    pub fn login_risk(&self) -> Option<f64> {
        self.features.number_of("login.risk")
    }

    /// Combines what fired: the strongest action among `reasons`, capped at
    /// `max_action`; their scores added up to at most [`MAX_SCORE`]. Shadow
    /// reasons are carried along and change neither.
    pub fn from_reasons(
        policy: Cow<'static, str>,
        rules_version: u64,
        reasons: Vec<Reason>,
        shadow: Vec<Reason>,
        max_action: Action,
    ) -> Decision {
        let action = reasons
            .iter()
            .map(|r| r.action)
            .max()
            .unwrap_or(Action::Allow)
            .min(max_action);
        let score = reasons.iter().map(|r| r.score).sum::<u32>().min(MAX_SCORE);
        Decision {
            action,
            score,
            reasons,
            shadow,
            policy,
            rules_version,
            features: Features::default(),
            effects: Vec::new(),
            verification: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(action: Action, score: u32) -> Reason {
        Reason {
            code: format!("{action}_{score}"),
            action,
            score,
            message: String::new(),
            saw: BTreeMap::new(),
            owner_confirms: false,
        }
    }

    fn decide(reasons: Vec<Reason>, shadow: Vec<Reason>, max_action: Action) -> Decision {
        Decision::from_reasons("test".into(), 1, reasons, shadow, max_action)
    }

    #[test]
    fn a_verification_request_puts_independent_channels_first_and_refuses_changed_ones() {
        use VerificationChannel as C;
        assert_eq!(VerificationRequest::for_untrusted(&[], Vec::new()), None);
        let mfa = VerificationRequest::for_untrusted(&[Credential::Mfa], vec!["mfa_change".into()])
            .expect("a request");
        assert_eq!(
            mfa.channels,
            [C::IdentityDocument, C::Email, C::Sms, C::Voice]
        );
        assert_eq!(mfa.refused, [C::SecurityKey, C::Totp, C::Push, C::Other]);
        let both = VerificationRequest::for_untrusted(
            &[Credential::Email, Credential::Phone],
            vec!["email_change".into(), "phone_change".into()],
        )
        .expect("a request");
        assert_eq!(
            both.channels,
            [
                C::PriorEmail,
                C::PriorPhone,
                C::IdentityDocument,
                C::SecurityKey,
                C::Totp,
                C::Push
            ]
        );
        assert_eq!(both.refused, [C::Email, C::Sms, C::Voice, C::Other]);
    }

    #[test]
    fn money_to_a_new_destination_asks_only_channels_beyond_a_takeover() {
        use VerificationChannel as C;
        let plain = VerificationRequest::for_money_to_new_destination(None, "payout");
        assert_eq!(plain.channels, [C::IdentityDocument, C::SecurityKey]);
        assert_eq!(
            plain.refused,
            [C::Totp, C::Push, C::Email, C::Sms, C::Voice, C::Other]
        );
        assert_eq!(plain.because, ["payout"]);
        // After a phone change the prior phone stays first; a security key
        // is not offered while the MFA method is in doubt.
        let changed = VerificationRequest::for_untrusted(
            &[Credential::Phone, Credential::Mfa],
            vec!["phone_change".into(), "mfa_change".into()],
        );
        let request =
            VerificationRequest::for_money_to_new_destination(changed, "loan_disbursement");
        assert_eq!(request.channels, [C::PriorPhone, C::IdentityDocument]);
        assert!(request.refused.contains(&C::SecurityKey));
        assert!(request.refused.contains(&C::Email));
        assert_eq!(
            request.because,
            ["phone_change", "mfa_change", "loan_disbursement"]
        );
    }

    #[test]
    fn strongest_action_wins_capped_and_score_is_capped() {
        let fired = || {
            vec![
                reason(Action::Review, 50),
                reason(Action::Hold, 70),
                reason(Action::Challenge, 10),
            ]
        };
        let d = decide(fired(), vec![reason(Action::Block, 99)], Action::Block);
        assert_eq!(
            (d.action, d.score),
            (Action::Hold, 100),
            "shadow never acts"
        );
        let capped = decide(fired(), vec![], Action::Review);
        assert_eq!(capped.action, Action::Review);
        let empty = decide(vec![], vec![], Action::Block);
        assert_eq!((empty.action, empty.score), (Action::Allow, 0));
    }
}
