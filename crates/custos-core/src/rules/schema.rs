//! What rules can read: event fields, enrichment and features, each with a
//! dotted path and a static type. `docs/rules.md` lists them all; a test
//! checks that the list there matches [`PATHS`].

use crate::event::*;
use crate::features::{Feature, FeatureKind, FeatureValue, Features};

use super::value::{Type, Value};

/// Everything a compiled rule reads while evaluating one event.
pub struct EvalContext<'a> {
    pub event: &'a Event,
    pub features: &'a Features,
    /// The destination the event concerns: the new one of a
    /// `payout_destination_change`, the one a payout or loan disbursement
    /// pays into.
    pub destination: Option<&'a Destination>,
}

/// Reads one field from the context.
pub type FieldFn = for<'a> fn(&EvalContext<'a>) -> Value<'a>;

/// Where a path's value comes from.
#[derive(Clone, Copy)]
pub enum Source {
    Feature(Feature),
    Field(FieldFn),
}

/// A readable path.
#[derive(Clone, Copy)]
pub struct PathDef {
    pub path: &'static str,
    pub ty: Type,
    pub source: Source,
    pub doc: &'static str,
}

/// Prefix of custom attributes: `event.attributes.<name>` reads a
/// client-defined field of type `dyn`.
pub const ATTRIBUTES_PREFIX: &str = "event.attributes.";

/// Prefix of named lists: `lists.<name>`, only on the right of `in`.
pub const LISTS_PREFIX: &str = "lists.";

fn amount(e: &Event) -> Option<(u64, Currency)> {
    match &e.details {
        Details::Payout {
            amount, currency, ..
        }
        | Details::Loan {
            amount, currency, ..
        }
        | Details::Sale { amount, currency } => Some((*amount, *currency)),
        _ => None,
    }
}

fn int(n: u64) -> Value<'static> {
    i64::try_from(n).map_or(Value::Null, Value::Int)
}

macro_rules! field {
    ($path:literal, $ty:expr, $doc:literal, |$c:ident| $body:expr) => {
        PathDef {
            path: $path,
            ty: $ty,
            source: Source::Field({
                #[allow(unused_braces)]
                fn read<'a>($c: &EvalContext<'a>) -> Value<'a> {
                    $body
                }
                read
            }),
            doc: $doc,
        }
    };
}

const EVENT_TYPES: &[&str] = &[
    "login",
    "logout",
    "password_change",
    "password_reset_request",
    "mfa_change",
    "email_change",
    "phone_change",
    "payout_destination_change",
    "payout",
    "loan_application",
    "loan_disbursement",
    "sale",
    "verification",
    "label",
];

/// The event fields and enrichment rules can read. Features come from
/// [`Feature::ALL`].
pub const FIELDS: &[PathDef] = &[
    field!(
        "event.type",
        Type::Enum(EVENT_TYPES),
        "the event type",
        |c| { Value::str(c.event.event_type.as_str()) }
    ),
    field!("event.id", Type::String, "the event id", |c| Value::str(
        &c.event.event_id
    )),
    field!("event.account_id", Type::String, "the account", |c| {
        Value::str(&c.event.account_id)
    }),
    field!(
        "event.session_id",
        Type::String,
        "the session, if sent",
        |c| { Value::opt_str(c.event.session_id.as_deref()) }
    ),
    field!("event.ip", Type::Ip, "the client address, if sent", |c| c
        .event
        .ip
        .map_or(Value::Null, Value::Ip)),
    field!(
        "event.user_agent",
        Type::String,
        "the user agent, if sent",
        |c| { Value::opt_str(c.event.user_agent.as_deref()) }
    ),
    field!(
        "event.device_id",
        Type::String,
        "the device id, if sent",
        |c| { Value::opt_str(c.event.device_id.as_deref()) }
    ),
    field!(
        "event.amount",
        Type::Int,
        "payout, loan or sale amount in minor units",
        |c| amount(c.event).map_or(Value::Null, |(a, _)| int(a))
    ),
    field!(
        "event.currency",
        Type::String,
        "payout, loan or sale currency (ISO 4217, upper case)",
        |c| match &c.event.details {
            Details::Payout { currency, .. }
            | Details::Loan { currency, .. }
            | Details::Sale { currency, .. } => Value::str(currency.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.payout.source",
        Type::Enum(PayoutSource::WIRE_NAMES),
        "what a payout pays out: sales, loan or reserve",
        |c| match &c.event.details {
            Details::Payout { source, .. } => Value::str(source.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.login.status",
        Type::Enum(LoginStatus::WIRE_NAMES),
        "success or failure",
        |c| match &c.event.details {
            Details::Login { status, .. } => Value::str(status.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.login.failure_reason",
        Type::String,
        "why a login failed, as sent",
        |c| match &c.event.details {
            Details::Login { failure_reason, .. } => Value::opt_str(failure_reason.as_deref()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.login.mfa",
        Type::Bool,
        "whether the login passed a second factor",
        |c| match &c.event.details {
            Details::Login { mfa: Some(m), .. } => Value::Bool(*m),
            _ => Value::Null,
        }
    ),
    field!(
        "event.mfa.change",
        Type::Enum(MfaChangeKind::WIRE_NAMES),
        "enabled, disabled or method_changed",
        |c| match &c.event.details {
            Details::MfaChange { change, .. } => Value::str(change.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.password.reason",
        Type::Enum(PasswordChangeReason::WIRE_NAMES),
        "user, reset or forced",
        |c| match &c.event.details {
            Details::PasswordChange { reason } => {
                reason.map_or(Value::Null, |r| Value::str(r.as_str()))
            }
            _ => Value::Null,
        }
    ),
    field!(
        "event.verification.status",
        Type::Enum(VerificationStatus::WIRE_NAMES),
        "passed or failed",
        |c| match &c.event.details {
            Details::Verification { status, .. } => Value::str(status.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.verification.channel",
        Type::Enum(VerificationChannel::WIRE_NAMES),
        "the channel a verification went through",
        |c| match &c.event.details {
            Details::Verification {
                channel: Some(channel),
                ..
            } => Value::str(channel.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "event.label",
        Type::Enum(LabelKind::WIRE_NAMES),
        "the label of a label event",
        |c| match &c.event.details {
            Details::Label { label, .. } => Value::str(label.as_str()),
            _ => Value::Null,
        }
    ),
    field!(
        "destination.institution_id",
        Type::String,
        "sort code, routing number or BIC of the destination the event concerns",
        |c| c
            .destination
            .map_or(Value::Null, |d| Value::str(&d.institution_id))
    ),
    field!(
        "destination.institution_type",
        Type::Enum(InstitutionType::WIRE_NAMES),
        "bank, e_money, prepaid or other",
        |c| c
            .destination
            .and_then(|d| d.institution_type)
            .map_or(Value::Null, |t| Value::str(t.as_str()))
    ),
    field!(
        "destination.country",
        Type::String,
        "destination country (ISO 3166-1 alpha-2)",
        |c| Value::opt_str(c.destination.and_then(|d| d.country.as_deref()))
    ),
    field!(
        "destination.token",
        Type::String,
        "keyed-hash token of the destination account number",
        |c| c
            .destination
            .map_or(Value::Null, |d| Value::str(&d.account_token))
    ),
    field!(
        "destination.last4",
        Type::String,
        "last four characters of the destination account number",
        |c| Value::opt_str(c.destination.and_then(|d| d.account_last4.as_deref()))
    ),
    field!(
        "network.asn",
        Type::Int,
        "autonomous system number of the address",
        |c| c
            .event
            .enrichment
            .network
            .asn
            .map_or(Value::Null, |a| Value::Int(i64::from(a)))
    ),
    field!(
        "network.as_org",
        Type::String,
        "organisation holding the autonomous system",
        |c| Value::opt_str(c.event.enrichment.network.as_org.as_deref())
    ),
    field!(
        "network.country",
        Type::String,
        "country of the address (ISO 3166-1 alpha-2)",
        |c| Value::opt_str(c.event.enrichment.network.country.as_deref())
    ),
    field!("network.city", Type::String, "city of the address", |c| {
        Value::opt_str(c.event.enrichment.network.city.as_deref())
    }),
    field!(
        "client.browser",
        Type::String,
        "browser family from the user agent",
        |c| Value::opt_str(c.event.enrichment.client.browser.as_deref())
    ),
    field!(
        "client.os",
        Type::String,
        "operating system family from the user agent",
        |c| Value::opt_str(c.event.enrichment.client.os.as_deref())
    ),
    field!(
        "client.device_type",
        Type::Enum(&["desktop", "mobile", "tablet", "bot", "other", "unknown"]),
        "device type from the user agent",
        |c| Value::str(c.event.enrichment.client.device_type.as_str())
    ),
];

/// The type a feature has in rules.
pub fn feature_type(feature: Feature) -> Type {
    match feature.kind() {
        FeatureKind::Flag => Type::Bool,
        FeatureKind::Number => Type::Float,
        FeatureKind::Duration => Type::Duration,
    }
}

/// Reads a feature slot as a rules value.
#[inline]
pub fn read_feature<'a>(features: &Features, feature: Feature) -> Value<'a> {
    match (features.value(feature), feature.kind()) {
        (None, _) => Value::Null,
        (Some(FeatureValue::Bool(b)), _) => Value::Bool(b),
        (Some(FeatureValue::Number(n)), FeatureKind::Duration) => Value::Duration(n as i64),
        (Some(FeatureValue::Number(n)), _) => Value::Float(n),
    }
}

/// Looks a path up among fields and features.
pub fn resolve(path: &str) -> Option<PathDef> {
    if let Some(feature) = Feature::from_name(path) {
        return Some(PathDef {
            path: feature.name(),
            ty: feature_type(feature),
            source: Source::Feature(feature),
            doc: "",
        });
    }
    FIELDS.iter().find(|f| f.path == path).copied()
}

/// Every readable path, fields first.
pub fn all_paths() -> impl Iterator<Item = (&'static str, Type)> {
    FIELDS
        .iter()
        .map(|f| (f.path, f.ty))
        .chain(Feature::ALL.iter().map(|f| (f.name(), feature_type(*f))))
}

/// The closest known path, for "did you mean" hints.
pub fn suggest(path: &str) -> Option<&'static str> {
    all_paths()
        .map(|(p, _)| (edit_distance(path, p), p))
        .filter(|(d, p)| *d <= 3.max(p.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p)
}

/// Levenshtein distance over bytes; paths are ASCII.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
