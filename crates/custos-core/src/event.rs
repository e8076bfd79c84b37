//! The public event model, version 1.
//!
//! These names are the wire contract: platforms send them, rules will read
//! them, stored logs keep them. `docs/events.md` documents every type with an
//! example. An [`Event`] is always *normalized*: identifiers trimmed, codes
//! upper-cased, time in UTC and bank account numbers replaced by a keyed-hash
//! token plus their last four characters. Serializing an `Event` yields the
//! normalized JSON that the store keeps; parsing that JSON again with
//! [`crate::parse::EventParser`] yields the same `Event`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// One account event, validated and normalized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub account_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(flatten)]
    pub details: Details,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Value>,
    /// Network and client facts: sent by the client, or filled in by the
    /// server's enricher before the engine sees the event, and stored with
    /// it so that a rebuild sees the same facts.
    #[serde(default, skip_serializing_if = "crate::enrich::Enrichment::is_empty")]
    pub enrichment: crate::enrich::Enrichment,
}

impl Event {
    /// Event time as whole seconds since the Unix epoch, the unit account state keeps.
    pub fn unix_time(&self) -> i64 {
        self.time.unix_timestamp()
    }
}

/// The `type` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Login,
    Logout,
    PasswordChange,
    PasswordResetRequest,
    MfaChange,
    EmailChange,
    PhoneChange,
    PayoutDestinationChange,
    Payout,
    LoanApplication,
    LoanDisbursement,
    Sale,
    Verification,
    Label,
    AnalystAction,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        EventType::Login,
        EventType::Logout,
        EventType::PasswordChange,
        EventType::PasswordResetRequest,
        EventType::MfaChange,
        EventType::EmailChange,
        EventType::PhoneChange,
        EventType::PayoutDestinationChange,
        EventType::Payout,
        EventType::LoanApplication,
        EventType::LoanDisbursement,
        EventType::Sale,
        EventType::Verification,
        EventType::Label,
        EventType::AnalystAction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Login => "login",
            EventType::Logout => "logout",
            EventType::PasswordChange => "password_change",
            EventType::PasswordResetRequest => "password_reset_request",
            EventType::MfaChange => "mfa_change",
            EventType::EmailChange => "email_change",
            EventType::PhoneChange => "phone_change",
            EventType::PayoutDestinationChange => "payout_destination_change",
            EventType::Payout => "payout",
            EventType::LoanApplication => "loan_application",
            EventType::LoanDisbursement => "loan_disbursement",
            EventType::Sale => "sale",
            EventType::Verification => "verification",
            EventType::Label => "label",
            EventType::AnalystAction => "analyst_action",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Changes an attacker makes to lock the owner out or redirect money.
    pub fn is_sensitive_change(self) -> bool {
        matches!(
            self,
            EventType::PasswordChange
                | EventType::MfaChange
                | EventType::EmailChange
                | EventType::PhoneChange
                | EventType::PayoutDestinationChange
        )
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields specific to each event type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Details {
    Login {
        status: LoginStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        failure_reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mfa: Option<bool>,
    },
    PasswordChange {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<PasswordChangeReason>,
    },
    MfaChange {
        change: MfaChangeKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<String>,
    },
    PayoutDestinationChange {
        destination: Destination,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_destination: Option<Destination>,
    },
    Payout {
        payout_id: String,
        amount: u64,
        currency: Currency,
        #[serde(skip_serializing_if = "Option::is_none")]
        destination: Option<Destination>,
        source: PayoutSource,
    },
    Loan {
        loan_id: String,
        amount: u64,
        currency: Currency,
    },
    Sale {
        amount: u64,
        currency: Currency,
    },
    Verification {
        status: VerificationStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The channel the verification went through; the factor or
        /// contact it relies on decides whether it may vouch for a risk
        /// episode (a contact changed during the episode may not).
        #[serde(skip_serializing_if = "Option::is_none")]
        channel: Option<VerificationChannel>,
    },
    Label {
        label: LabelKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        target_event_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        analyst: Option<String>,
    },
    /// A person's decision about a hold, an account or a campaign, recorded
    /// in the log like any event so that a rebuild replays it.
    AnalystAction {
        action: AnalystActionKind,
        /// The hold (payout or loan id) or campaign acted on; none for
        /// `clear_account`.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_id: Option<String>,
        analyst: String,
        reason: String,
        /// What a case action sets: the assignee, the status, the
        /// resolution, or the case merged into.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// Types with no fields of their own: logout, password_reset_request,
    /// email_change, phone_change.
    None {},
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const WIRE_NAMES: &'static [&'static str] = &[$($wire),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($wire => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(LoginStatus { Success => "success", Failure => "failure" });
wire_enum!(PasswordChangeReason { User => "user", Reset => "reset", Forced => "forced" });
wire_enum!(MfaChangeKind { Enabled => "enabled", Disabled => "disabled", MethodChanged => "method_changed" });
wire_enum!(PayoutSource { Sales => "sales", Loan => "loan", Reserve => "reserve" });
wire_enum!(VerificationStatus { Passed => "passed", Failed => "failed" });
wire_enum!(
    /// The channel a verification went through. Each relies on one of the
    /// account's contacts or factors ([`VerificationChannel::relies_on`]),
    /// except the ones that reach the owner independently of anything an
    /// attacker in the account could have changed.
    VerificationChannel {
        Email => "email",
        Sms => "sms",
        Voice => "voice",
        Totp => "totp",
        Push => "push",
        SecurityKey => "security_key",
        PriorEmail => "prior_email",
        PriorPhone => "prior_phone",
        IdentityDocument => "identity_document",
        Other => "other",
    }
);

/// A contact or factor of the account that a verification channel relies
/// on, and that an attacker who got in can move to himself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// The e-mail address on file (`email_change` moves it).
    Email,
    /// The phone number on file (`phone_change` moves it).
    Phone,
    /// The enrolled second factor (`mfa_change` moves it).
    Mfa,
}

impl VerificationChannel {
    /// The contact or factor this channel reaches the owner through; `None`
    /// for channels that rely on nothing the account holds today (the
    /// contact on file before a change, an identity document) and for
    /// `other`, whose provenance Custos cannot judge.
    /// Whether an attacker who took the account over, relaying its one-time
    /// codes or holding its session, device and current factors, still
    /// cannot pass a verification through this channel: an identity
    /// document, a phishing-resistant security key, or the contact on file
    /// before a change. The confirmation that releases money to a
    /// destination never paid before must come through one of these.
    pub fn beyond_takeover(self) -> bool {
        matches!(
            self,
            VerificationChannel::IdentityDocument
                | VerificationChannel::SecurityKey
                | VerificationChannel::PriorEmail
                | VerificationChannel::PriorPhone
        )
    }

    pub fn relies_on(self) -> Option<Credential> {
        match self {
            VerificationChannel::Email => Some(Credential::Email),
            VerificationChannel::Sms | VerificationChannel::Voice => Some(Credential::Phone),
            VerificationChannel::Totp
            | VerificationChannel::Push
            | VerificationChannel::SecurityKey => Some(Credential::Mfa),
            VerificationChannel::PriorEmail
            | VerificationChannel::PriorPhone
            | VerificationChannel::IdentityDocument
            | VerificationChannel::Other => None,
        }
    }
}
wire_enum!(LabelKind {
    Fraud => "fraud",
    Legit => "legit",
    CompromiseReported => "compromise_reported",
    Chargeback => "chargeback",
});
wire_enum!(
    /// What an analyst did: close a hold, clear an account's risk, settle
    /// a campaign, or work a case (`crate::cases`).
    AnalystActionKind {
        ReleasePayout => "release_payout",
        CancelPayout => "cancel_payout",
        ClearAccount => "clear_account",
        ConfirmCampaign => "confirm_campaign",
        DismissCampaign => "dismiss_campaign",
        OpenCase => "open_case",
        NoteCase => "note_case",
        AssignCase => "assign_case",
        SetCaseStatus => "set_case_status",
        ResolveCase => "resolve_case",
        MergeCase => "merge_case",
        AddCaseAccount => "add_case_account",
    }
);
wire_enum!(
    /// What kind of institution holds a payout destination. E-money and
    /// prepaid issuers are where mule accounts are cheapest to open.
    InstitutionType {
        Bank => "bank",
        EMoney => "e_money",
        Prepaid => "prepaid",
        Other => "other",
    }
);

/// An ISO 4217 currency code, upper case, stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Accepts three ASCII letters in either case.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Currency([
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid currency code {code:?}")))
    }
}

/// Where a payout goes. The raw account number never reaches this type: the
/// parser turns it into `account_token` (a keyed hash) and `account_last4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    /// Sort code, routing number or BIC, upper case without spaces or dashes.
    pub institution_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub institution_type: Option<InstitutionType>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
    pub account_token: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub account_last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub holder_name: Option<String>,
    /// A keyed hash of `holder_name` ([`crate::token::DestinationTokenizer::holder_token`]),
    /// filled in by the parser. Never serialized: a stored event is parsed
    /// again, and the parser derives it again from the (opened) name.
    #[serde(skip)]
    pub holder_token: Option<String>,
}

impl Destination {
    /// Two destinations are the same account when institution and token match;
    /// holder name and country are descriptive only.
    pub fn same_account(&self, other: &Destination) -> bool {
        self.institution_id == other.institution_id && self.account_token == other.account_token
    }
}
