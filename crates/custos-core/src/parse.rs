//! Turning untrusted JSON into a normalized [`Event`].
//!
//! Every rejection names the field (as a dotted path such as
//! `destination.account_number`) and says what is wrong with it, so that an
//! integrator can fix the request without reading our code. Error messages
//! never echo a bank account number.
//!
//! Top-level fields that are not part of the event's type are kept in
//! `attributes`, where rules can read them later; an `attributes` object may
//! also be sent explicitly. A name present in both places is rejected rather
//! than silently merged.
//!
//! Whatever is accepted must round-trip: the stored form of an event is read
//! back at every restart, so an event the store could not read back would
//! stop the server from ever starting again. Custom fields are therefore
//! bounded here (count, nesting depth, entries per object or array, string
//! length, total size, see [`check_custom_field`]), well inside what
//! serde_json reads back (it refuses nesting past 128 levels); times must be
//! representable as RFC 3339 in UTC; enrichment coordinates must be on the
//! globe; and ids may not carry control characters, which would otherwise
//! reach logs and terminals as escape sequences.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::event::*;
use crate::token::DestinationTokenizer;

/// Longest accepted identifier (`event_id`, `account_id`, `session_id`, ...).
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted free-text field (`user_agent`, `failure_reason`, ...).
pub const MAX_TEXT_LEN: usize = 2048;
/// Most custom attributes on one event.
pub const MAX_ATTRIBUTES: usize = 64;
/// Deepest nesting of objects and arrays inside one custom field: a field
/// `{"a": {"b": [1]}}` nests 2 deep below the field's own object.
pub const MAX_CUSTOM_DEPTH: usize = 16;
/// Most keys of one object, or items of one array, inside a custom field.
pub const MAX_CUSTOM_ENTRIES: usize = 1024;
/// Longest string (value or key) inside a custom field, in bytes.
pub const MAX_CUSTOM_STRING: usize = 2048;
/// Largest serialized size of all custom fields of one event, in bytes.
pub const MAX_CUSTOM_BYTES: usize = 32 * 1024;

/// Why an event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct EventError {
    /// Dotted path of the offending field, e.g. `destination.country`.
    pub field: String,
    pub kind: EventErrorKind,
    /// Human-readable description, lowercase, without the field name.
    pub problem: String,
}

/// The class of an [`EventError`], stable for API error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventErrorKind {
    /// The event is not a JSON object.
    NotAnObject,
    MissingField,
    InvalidField,
    UnknownEventType,
}

impl EventError {
    fn new(field: impl Into<String>, kind: EventErrorKind, problem: impl Into<String>) -> Self {
        EventError {
            field: field.into(),
            kind,
            problem: problem.into(),
        }
    }

    fn missing(field: &str) -> Self {
        EventError::new(
            field,
            EventErrorKind::MissingField,
            "is required but missing",
        )
    }

    fn invalid(field: &str, problem: impl Into<String>) -> Self {
        EventError::new(field, EventErrorKind::InvalidField, problem)
    }

    fn wrong_type(field: &str, expected: &str, found: &Value) -> Self {
        EventError::invalid(
            field,
            format!("expected {expected}, found {}", json_kind(found)),
        )
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One event as read from JSON, for [`EventParser::parse_raw`]: an object's
/// fields in the order they were sent, not yet in a map. Reading an object
/// into `serde_json`'s map (a `BTreeMap`) only for the parser to take its
/// fields out again was a seventh of the cost of parsing an event. Nested
/// values stay [`Value`]s. Anything but an object is kept whole, for the
/// parser to refuse as it refuses it from a [`Value`].
#[derive(Debug)]
pub enum RawEvent {
    Object(Vec<(String, Value)>),
    Other(Value),
}

impl<'de> serde::Deserialize<'de> for RawEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> serde::de::Visitor<'de> for RawVisitor {
            type Value = RawEvent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawEvent, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(RawEvent::Object(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawEvent, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(RawEvent::Other(Value::Array(items)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::String(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::Null))
            }
            fn visit_none<E>(self) -> Result<RawEvent, E> {
                Ok(RawEvent::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

/// Parses and normalizes events; holds the key that tokenizes account
/// numbers, and the enricher that fills in network and client facts.
#[derive(Clone)]
pub struct EventParser {
    tokenizer: DestinationTokenizer,
    enricher: Option<std::sync::Arc<dyn crate::enrich::Enricher>>,
    /// Seals personal values in the stored copy ([`crate::pii`]).
    pii: Option<crate::pii::PiiCipher>,
}

impl EventParser {
    pub fn new(tokenizer: DestinationTokenizer) -> Self {
        EventParser {
            tokenizer,
            enricher: None,
            pii: None,
        }
    }

    /// The key that turns account numbers into tokens.
    pub fn tokenizer(&self) -> &DestinationTokenizer {
        &self.tokenizer
    }

    /// Seals personal values in the stored copy of every event, and opens
    /// them when stored events are read back ([`crate::pii`]).
    pub fn with_pii(mut self, cipher: crate::pii::PiiCipher) -> Self {
        self.pii = Some(cipher);
        self
    }

    /// The cipher for personal values, if one is configured.
    pub fn pii(&self) -> Option<&crate::pii::PiiCipher> {
        self.pii.as_ref()
    }

    /// The copy of `event` to store, with its personal values sealed;
    /// `None` when there is nothing to seal (or no cipher).
    pub fn sealed_for_storage(&self, event: &Event) -> Option<Event> {
        crate::pii::seal_event(self.pii.as_ref()?, event)
    }

    /// Opens the sealed values of a stored event (JSON object) in place; a
    /// value that cannot be opened reads `[redacted]`.
    pub fn open_stored(&self, event: &mut Map<String, Value>) {
        crate::pii::open_stored(self.pii.as_ref(), event);
    }

    /// Enriches every event [`EventParser::parse_value`] parses.
    pub fn with_enricher(mut self, enricher: std::sync::Arc<dyn crate::enrich::Enricher>) -> Self {
        self.enricher = Some(enricher);
        self
    }

    /// Parses an event read back from the store: it was enriched when it
    /// arrived, and must not change now that the databases may have.
    /// Personal values sealed at rest are opened first.
    pub fn parse_stored(&self, value: Value) -> Result<Event, EventError> {
        match value {
            // Limits added since an event was stored must not make it
            // unreadable: recovery would then stop at it.
            Value::Object(mut map) => {
                self.open_stored(&mut map);
                self.parse_object_unenriched(map, Strictness::Stored)
            }
            other => self.parse_value(other),
        }
    }

    /// Identifies the tokenization key, see [`DestinationTokenizer::key_id`].
    pub fn token_key_id(&self) -> &str {
        self.tokenizer.key_id()
    }

    /// Parses one event from a JSON value (the request body or one batch item).
    pub fn parse_value(&self, value: Value) -> Result<Event, EventError> {
        match value {
            Value::Object(map) => self.parse_object(map),
            other => Err(EventError::new(
                "",
                EventErrorKind::NotAnObject,
                format!(
                    "an event must be a JSON object, found {}",
                    json_kind(&other)
                ),
            )),
        }
    }

    /// Parses one event from a JSON object, and enriches it.
    pub fn parse_object(&self, map: Map<String, Value>) -> Result<Event, EventError> {
        let event = self.parse_object_unenriched(map, Strictness::Input)?;
        Ok(self.enriched(event))
    }

    fn enriched(&self, mut event: Event) -> Event {
        if let Some(enricher) = &self.enricher {
            let found = enricher.enrich(event.ip, event.user_agent.as_deref());
            event.enrichment.fill_from(found);
        }
        event
    }

    fn parse_object_unenriched(
        &self,
        map: Map<String, Value>,
        strictness: Strictness,
    ) -> Result<Event, EventError> {
        self.parse_fields(Fields::new(map, strictness))
    }

    /// Parses one event read as a [`RawEvent`] (the request body, one batch
    /// item or one line), and enriches it: the same event, or the same
    /// error, as [`EventParser::parse_value`] gives for the same JSON.
    pub fn parse_raw(&self, raw: RawEvent) -> Result<Event, EventError> {
        let entries = match raw {
            RawEvent::Object(entries) => entries,
            RawEvent::Other(other) => return self.parse_value(other),
        };
        let event = self.parse_fields(Fields::from_entries(entries, Strictness::Input))?;
        Ok(self.enriched(event))
    }

    fn parse_fields(&self, mut fields: Fields) -> Result<Event, EventError> {
        let event_id = fields.required_id("event_id")?;
        let type_name = fields.required_string("type", 64)?;
        let event_type = EventType::from_name(&type_name).ok_or_else(|| {
            EventError::new(
                "type",
                EventErrorKind::UnknownEventType,
                format!(
                    "unknown event type {type_name:?}; expected one of: {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ),
            )
        })?;
        let account_id = fields.required_id("account_id")?;
        let time = fields.required_time("time")?;
        let session_id = fields.optional_id("session_id")?;
        let ip = fields.optional_ip("ip")?;
        let user_agent = fields.optional_text("user_agent")?;
        let device_id = fields.optional_id("device_id")?;
        let details = self.parse_details(event_type, &mut fields)?;
        let enrichment = fields.optional_enrichment("enrichment")?;
        let attributes = fields.into_attributes()?;
        Ok(Event {
            event_id,
            event_type,
            account_id,
            time,
            session_id,
            ip,
            user_agent,
            device_id,
            details,
            attributes,
            enrichment,
        })
    }

    fn parse_details(&self, event_type: EventType, f: &mut Fields) -> Result<Details, EventError> {
        Ok(match event_type {
            EventType::Login => Details::Login {
                status: f.required_enum(
                    "status",
                    LoginStatus::from_name,
                    LoginStatus::WIRE_NAMES,
                )?,
                failure_reason: f.optional_text("failure_reason")?,
                mfa: f.optional_bool("mfa")?,
            },
            EventType::PasswordChange => Details::PasswordChange {
                reason: f.optional_enum(
                    "reason",
                    PasswordChangeReason::from_name,
                    PasswordChangeReason::WIRE_NAMES,
                )?,
            },
            EventType::MfaChange => Details::MfaChange {
                change: f.required_enum(
                    "change",
                    MfaChangeKind::from_name,
                    MfaChangeKind::WIRE_NAMES,
                )?,
                method: f.optional_string("method", MAX_ID_LEN)?,
            },
            EventType::PayoutDestinationChange => Details::PayoutDestinationChange {
                destination: match f.take("destination") {
                    Some(value) => self.parse_destination("destination", value, f.strictness)?,
                    None => return Err(EventError::missing("destination")),
                },
                previous_destination: match f.take("previous_destination") {
                    None | Some(Value::Null) => None,
                    Some(value) => {
                        Some(self.parse_destination("previous_destination", value, f.strictness)?)
                    }
                },
            },
            EventType::Payout => Details::Payout {
                payout_id: f.required_id("payout_id")?,
                amount: f.required_amount("amount")?,
                currency: f.required_currency("currency")?,
                destination: match f.take("destination") {
                    None | Some(Value::Null) => None,
                    Some(value) => {
                        Some(self.parse_destination("destination", value, f.strictness)?)
                    }
                },
                source: f
                    .optional_enum("source", PayoutSource::from_name, PayoutSource::WIRE_NAMES)?
                    .unwrap_or(PayoutSource::Sales),
            },
            EventType::LoanApplication | EventType::LoanDisbursement => Details::Loan {
                loan_id: f.required_id("loan_id")?,
                amount: f.required_amount("amount")?,
                currency: f.required_currency("currency")?,
            },
            EventType::Sale => Details::Sale {
                amount: f.required_amount("amount")?,
                currency: f.required_currency("currency")?,
            },
            EventType::Verification => Details::Verification {
                status: f.required_enum(
                    "status",
                    VerificationStatus::from_name,
                    VerificationStatus::WIRE_NAMES,
                )?,
                method: f.optional_string("method", MAX_ID_LEN)?,
                channel: f.optional_enum(
                    "channel",
                    VerificationChannel::from_name,
                    VerificationChannel::WIRE_NAMES,
                )?,
            },
            EventType::Label => Details::Label {
                label: f.required_enum("label", LabelKind::from_name, LabelKind::WIRE_NAMES)?,
                target_event_id: f.optional_id("target_event_id")?,
                analyst: f.optional_id("analyst")?,
            },
            EventType::AnalystAction => {
                let action = f.required_enum(
                    "action",
                    AnalystActionKind::from_name,
                    AnalystActionKind::WIRE_NAMES,
                )?;
                let target_id = f.optional_id("target_id")?;
                if target_id.is_none() && action != AnalystActionKind::ClearAccount {
                    return Err(EventError::missing("target_id"));
                }
                let value = f.optional_id("value")?;
                crate::cases::check_value(action, value.as_deref())
                    .map_err(|problem| EventError::invalid("value", problem))?;
                if action.is_case_action() && value.is_none() && action.needs_value() {
                    return Err(EventError::missing("value"));
                }
                Details::AnalystAction {
                    action,
                    target_id,
                    analyst: f.required_id("analyst")?,
                    reason: f
                        .optional_text("reason")?
                        .ok_or_else(|| EventError::missing("reason"))?,
                    value,
                }
            }
            EventType::Logout
            | EventType::PasswordResetRequest
            | EventType::EmailChange
            | EventType::PhoneChange => Details::None {},
        })
    }

    fn parse_destination(
        &self,
        path: &str,
        value: Value,
        strictness: Strictness,
    ) -> Result<Destination, EventError> {
        let map = match value {
            Value::Object(map) => map,
            other => return Err(EventError::wrong_type(path, "an object", &other)),
        };
        let mut f = Fields::new(map, strictness);
        let field = |name: &str| format!("{path}.{name}");
        let institution_id = f
            .required_string_at("institution_id", &field("institution_id"), 64)
            .and_then(|raw| {
                let normalized = compact_code(&raw);
                if normalized.is_empty() {
                    Err(EventError::invalid(
                        &field("institution_id"),
                        "must contain letters or digits",
                    ))
                } else {
                    Ok(normalized)
                }
            })?;
        let institution_type = match f.take("institution_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(InstitutionType::from_name(&s).ok_or_else(|| {
                EventError::invalid(
                    &field("institution_type"),
                    format!(
                        "unknown value {s:?}; expected one of: {}",
                        InstitutionType::WIRE_NAMES.join(", ")
                    ),
                )
            })?),
            Some(other) => {
                return Err(EventError::wrong_type(
                    &field("institution_type"),
                    "a string",
                    &other,
                ));
            }
        };
        let country = match f.take("country") {
            None | Some(Value::Null) => None,
            Some(Value::String(s))
                if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                Some(s.to_ascii_uppercase())
            }
            Some(Value::String(_)) => {
                return Err(EventError::invalid(
                    &field("country"),
                    "expected a two-letter ISO 3166-1 country code",
                ));
            }
            Some(other) => {
                return Err(EventError::wrong_type(
                    &field("country"),
                    "a string",
                    &other,
                ));
            }
        };
        let holder_name = f.optional_string_at("holder_name", &field("holder_name"), MAX_ID_LEN)?;
        let account_number = f.take("account_number").filter(|v| !v.is_null());
        let account_token = f.take("account_token").filter(|v| !v.is_null());
        let last4_given = f.optional_string_at("account_last4", &field("account_last4"), 4)?;
        let (account_token, account_last4) = match (account_number, account_token) {
            (Some(_), Some(_)) => {
                return Err(EventError::invalid(
                    &field("account_number"),
                    "give either account_number or account_token, not both",
                ));
            }
            (None, None) => {
                return Err(EventError::new(
                    field("account_number"),
                    EventErrorKind::MissingField,
                    "is required (or give account_token instead)",
                ));
            }
            (Some(Value::String(raw)), None) => {
                let number = compact_code(&raw);
                if number.len() < 4
                    || number.len() > 34
                    || number.len() != raw.chars().filter(|c| c.is_ascii_alphanumeric()).count()
                {
                    // Never echo the number itself: it is the secret we protect.
                    return Err(EventError::invalid(
                        &field("account_number"),
                        "expected 4 to 34 letters or digits (spaces and dashes allowed)",
                    ));
                }
                let token = self.tokenizer.token(&institution_id, &number);
                let last4 = number[number.len() - 4..].to_string();
                (token, Some(last4))
            }
            (Some(other), None) => {
                return Err(EventError::invalid(
                    &field("account_number"),
                    format!(
                        "expected a string (numbers lose leading zeros), found {}",
                        json_kind(&other)
                    ),
                ));
            }
            (None, Some(Value::String(token))) => {
                let token = token.trim().to_string();
                if token.is_empty() || token.len() > MAX_ID_LEN {
                    return Err(EventError::invalid(
                        &field("account_token"),
                        format!("expected 1 to {MAX_ID_LEN} characters"),
                    ));
                }
                if strictness == Strictness::Input && token.chars().any(is_forbidden_in_line) {
                    return Err(EventError::invalid(
                        &field("account_token"),
                        "must not contain control characters",
                    ));
                }
                (token, last4_given)
            }
            (None, Some(other)) => {
                return Err(EventError::wrong_type(
                    &field("account_token"),
                    "a string",
                    &other,
                ));
            }
        };
        if let Some((name, _)) = f.entries.iter().find(|(_, value)| value.is_some()) {
            return Err(EventError::invalid(
                &field(name),
                "unknown destination field; expected institution_id, institution_type, country, \
                 account_number or account_token, holder_name",
            ));
        }
        let holder_token = holder_name
            .as_deref()
            .and_then(|name| self.tokenizer.holder_token(name));
        Ok(Destination {
            institution_id,
            institution_type,
            country,
            account_token,
            account_last4,
            holder_name,
            holder_token,
        })
    }
}

/// Upper-cases and drops spaces and dashes: `20-00-00` and `200000` are the
/// same sort code, `gb29 nwbk` and `GB29NWBK` the same IBAN prefix.
pub(crate) fn compact_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// What a string field may hold besides printable text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// Ids, codes, names: one line.
    Line,
    /// Free text: line breaks and tabs too.
    Lines,
}

/// Checks what a client sent as enrichment: coordinates on the globe (a
/// latitude of 1e308 would turn distances and speeds into infinities, which
/// JSON stores as null), and strings of bounded length.
fn check_enrichment(name: &str, e: &crate::enrich::Enrichment) -> Result<(), EventError> {
    let n = &e.network;
    for (field, value, limit) in [
        ("network.latitude", n.latitude, 90.0),
        ("network.longitude", n.longitude, 180.0),
    ] {
        if let Some(v) = value
            && !(-limit..=limit).contains(&v)
        {
            return Err(EventError::invalid(
                &format!("{name}.{field}"),
                format!("must be a number from -{limit} to {limit}"),
            ));
        }
    }
    if n.latitude.is_some() != n.longitude.is_some() {
        return Err(EventError::invalid(
            &format!("{name}.network"),
            "give latitude and longitude together, or neither",
        ));
    }
    let c = &e.client;
    for (field, value) in [
        ("network.country", &n.country),
        ("network.city", &n.city),
        ("network.as_org", &n.as_org),
        ("client.browser", &c.browser),
        ("client.browser_version", &c.browser_version),
        ("client.os", &c.os),
        ("client.os_version", &c.os_version),
    ] {
        if let Some(v) = value {
            if v.len() > MAX_ID_LEN {
                return Err(EventError::invalid(
                    &format!("{name}.{field}"),
                    format!("is {} bytes long; the limit is {MAX_ID_LEN}", v.len()),
                ));
            }
            if v.chars().any(is_forbidden_in_line) {
                return Err(EventError::invalid(
                    &format!("{name}.{field}"),
                    "must not contain control characters",
                ));
            }
        }
    }
    Ok(())
}

/// Whether the input limits apply: to everything that arrives, but not to
/// events read back from the store, which were accepted under the limits of
/// their day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Input,
    Stored,
}

/// Whether a custom field's name says it holds a bank account or card
/// number (`iban`, `account_number`, `bankAccountNumber`, `card-number`,
/// `pan`, ...). Custos never stores those numbers: a payout destination's
/// number is tokenized, and a custom field with such a name is refused, on
/// `/v1` and on the Sift route alike.
pub fn names_a_bank_or_card_number(name: &str) -> bool {
    // Most names hold none of the stems: answer without allocating, since
    // every custom field of every event comes through here.
    let stems: [&[u8]; 5] = [b"account", b"acct", b"card", b"iban", b"pan"];
    if !stems.iter().any(|stem| {
        name.as_bytes()
            .windows(stem.len())
            .any(|w| w.eq_ignore_ascii_case(stem))
    }) {
        return false;
    }
    // Words split at anything not a letter or digit and at lower-to-upper
    // case changes, so snake, kebab and camel case all read the same.
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut after_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            words.push(std::mem::take(&mut word));
            after_lower = false;
            continue;
        }
        if c.is_uppercase() && after_lower {
            words.push(std::mem::take(&mut word));
        }
        after_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    words.push(word);
    words.retain(|w| !w.is_empty());
    let joined = words.concat();
    joined.contains("accountnumber")
        || joined.contains("acctnumber")
        || joined.contains("cardnumber")
        || words.iter().any(|w| w == "iban")
        || joined == "pan"
}

/// Whether `c` may not appear in an id or a one-line text: control
/// characters (NUL, ESC and the rest of C0 and C1, DEL) and the invisible
/// direction overrides that make text display as something else.
/// Printable ASCII only: nothing a line or a text field forbids, checked a
/// byte at a time (most ids and user agents are this).
fn is_plain_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn is_forbidden_in_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks one custom field (an attribute) against the limits every accepted
/// event keeps, so that its stored form reads back: its name is at most
/// [`MAX_CUSTOM_STRING`] bytes without control characters and does not name
/// a bank or card number; inside its value, objects and arrays nest at most
/// [`MAX_CUSTOM_DEPTH`] deep with at most [`MAX_CUSTOM_ENTRIES`] entries
/// each, and strings (keys too) are at most [`MAX_CUSTOM_STRING`] bytes.
/// The error names the field, and the place inside it that is at fault.
/// The total size ([`MAX_CUSTOM_BYTES`]) is checked over all fields at once,
/// see [`check_custom_fields`].
pub fn check_custom_field(name: &str, value: &Value) -> Result<(), EventError> {
    if name.is_empty() {
        return Err(EventError::invalid(
            name,
            "a custom field needs a non-empty name",
        ));
    }
    if name.len() > MAX_CUSTOM_STRING {
        return Err(EventError::invalid(
            prefix(name, 64),
            format!(
                "the custom field's name is {} bytes long; the limit is {MAX_CUSTOM_STRING}",
                name.len()
            ),
        ));
    }
    if name.chars().any(is_forbidden_in_line) {
        return Err(EventError::invalid(
            &name.escape_debug().to_string(),
            "a custom field's name must not contain control characters",
        ));
    }
    if names_a_bank_or_card_number(name) {
        return Err(EventError::invalid(
            name,
            "names a bank account or card number, which Custos never stores; send the payout \
             destination as `destination` (its number is tokenized)",
        ));
    }
    check_custom_value(value, 0).map_err(|(mut path, problem)| {
        path.push(name.to_string());
        path.reverse();
        EventError::invalid(&path.concat(), problem)
    })
}

/// Checks every custom field, then their total serialized size.
pub fn check_custom_fields<'a>(
    fields: impl IntoIterator<Item = (&'a String, &'a Value)> + Clone,
) -> Result<(), EventError> {
    let mut count = 0;
    for (name, value) in fields.clone() {
        check_custom_field(name, value)?;
        count += 1;
    }
    if count > MAX_ATTRIBUTES {
        return Err(EventError::invalid(
            "attributes",
            format!("has {count} custom fields; the limit is {MAX_ATTRIBUTES}"),
        ));
    }
    let mut size = SizeCounter(0);
    let map: BTreeMap<&String, &Value> = fields.into_iter().collect();
    serde_json::to_writer(&mut size, &map)
        .expect("serializing JSON values into a counter cannot fail");
    if size.0 > MAX_CUSTOM_BYTES {
        return Err(EventError::invalid(
            "attributes",
            format!(
                "the custom fields take {} bytes as JSON; the limit is {MAX_CUSTOM_BYTES}",
                size.0
            ),
        ));
    }
    Ok(())
}

/// At most the first `max` bytes of `s`, cut at a character boundary: long
/// names are shortened in error paths.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Counts the bytes written to it.
struct SizeCounter(usize);

impl std::io::Write for SizeCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The path segments (innermost first) and problem of the first value over
/// a limit. The path is built only on the way back from an error.
type Fault = (Vec<String>, String);

fn check_custom_value(value: &Value, depth: usize) -> Result<(), Fault> {
    fn string(s: &str, what: &str) -> Result<(), Fault> {
        if s.len() > MAX_CUSTOM_STRING {
            return Err((
                Vec::new(),
                format!(
                    "{what} is {} bytes long; the limit is {MAX_CUSTOM_STRING}",
                    s.len()
                ),
            ));
        }
        Ok(())
    }
    let nested = |entries: usize, what: &str| -> Result<(), Fault> {
        if depth >= MAX_CUSTOM_DEPTH {
            return Err((
                Vec::new(),
                format!(
                    "objects and arrays nest more than {MAX_CUSTOM_DEPTH} deep in a custom \
                     field; the limit is {MAX_CUSTOM_DEPTH}"
                ),
            ));
        }
        if entries > MAX_CUSTOM_ENTRIES {
            return Err((
                Vec::new(),
                format!("{what} has {entries} entries; the limit is {MAX_CUSTOM_ENTRIES}"),
            ));
        }
        Ok(())
    };
    match value {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !f.is_finite() => Err((Vec::new(), "must be a finite number".into())),
            _ => Ok(()),
        },
        Value::String(s) => string(s, "the string"),
        Value::Array(items) => {
            nested(items.len(), "the array")?;
            for (i, item) in items.iter().enumerate() {
                check_custom_value(item, depth + 1).map_err(|(mut path, problem)| {
                    path.push(format!("[{i}]"));
                    (path, problem)
                })?;
            }
            Ok(())
        }
        Value::Object(map) => {
            nested(map.len(), "the object")?;
            for (key, item) in map {
                let in_key = |(mut path, problem): Fault| {
                    path.push(format!(".{}", prefix(key, 64)));
                    (path, problem)
                };
                string(key, "the key").map_err(in_key)?;
                check_custom_value(item, depth + 1).map_err(in_key)?;
            }
            Ok(())
        }
    }
}

/// The fields of one JSON object, taken one by one as the event is read;
/// what is left over becomes the event's attributes.
///
/// A sorted vector rather than the object's own map: removing from a
/// `BTreeMap` rebalances its nodes, and was most of the cost of parsing an
/// event (about 360 instructions per field). Here a field is found by a
/// binary search and taken by leaving `None` in its place. The order is by
/// length first ([`field_order`]): most comparisons end there, without
/// comparing bytes.
struct Fields {
    entries: Vec<(String, Option<Value>)>,
    strictness: Strictness,
}

/// Shorter names first, then by bytes: a total order that mostly decides
/// on the length alone.
fn field_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Fields {
    fn new(map: Map<String, Value>, strictness: Strictness) -> Self {
        let mut entries: Vec<(String, Option<Value>)> =
            map.into_iter().map(|(k, v)| (k, Some(v))).collect();
        entries.sort_unstable_by(|a, b| field_order(&a.0, &b.0));
        Fields {
            entries,
            strictness,
        }
    }

    /// From an object's entries in the order they were sent. A name sent
    /// twice keeps its last value, as `serde_json`'s map does, so both ways
    /// in parse the same JSON alike.
    fn from_entries(mut entries: Vec<(String, Value)>, strictness: Strictness) -> Self {
        // Stable, so equal names stay in the order they were sent.
        entries.sort_by(|a, b| field_order(&a.0, &b.0));
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Fields {
            entries: entries.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            strictness,
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let at = self
            .entries
            .binary_search_by(|(key, _)| field_order(key, name))
            .ok()?;
        self.entries[at].1.take()
    }

    fn required_string(&mut self, name: &str, max_len: usize) -> Result<String, EventError> {
        self.required_string_at(name, name, max_len)
    }

    fn required_string_at(
        &mut self,
        name: &str,
        path: &str,
        max_len: usize,
    ) -> Result<String, EventError> {
        match self.optional_string_at(name, path, max_len)? {
            Some(s) => Ok(s),
            None => Err(EventError::missing(path)),
        }
    }

    fn optional_enrichment(&mut self, name: &str) -> Result<crate::enrich::Enrichment, EventError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(value @ Value::Object(_)) => {
                let enrichment: crate::enrich::Enrichment = serde_json::from_value(value)
                    .map_err(|e| EventError::invalid(name, e.to_string()))?;
                if self.strictness == Strictness::Input {
                    check_enrichment(name, &enrichment)?;
                }
                Ok(enrichment)
            }
            Some(other) => Err(EventError::invalid(
                name,
                format!("must be an object, found {}", json_kind(&other)),
            )),
        }
    }

    fn optional_string(
        &mut self,
        name: &str,
        max_len: usize,
    ) -> Result<Option<String>, EventError> {
        self.optional_string_at(name, name, max_len)
    }

    /// A free-text field (`user_agent`, `reason`, ...): up to
    /// [`MAX_TEXT_LEN`] bytes, where line breaks and tabs are allowed.
    fn optional_text(&mut self, name: &str) -> Result<Option<String>, EventError> {
        self.string_at(name, name, MAX_TEXT_LEN, Text::Lines)
    }

    /// An id or other one-line string: no control characters.
    fn optional_string_at(
        &mut self,
        name: &str,
        path: &str,
        max_len: usize,
    ) -> Result<Option<String>, EventError> {
        self.string_at(name, path, max_len, Text::Line)
    }

    fn string_at(
        &mut self,
        name: &str,
        path: &str,
        max_len: usize,
        text: Text,
    ) -> Result<Option<String>, EventError> {
        let allowed = |c: char| match text {
            Text::Line => !is_forbidden_in_line(c),
            Text::Lines => matches!(c, '\n' | '\r' | '\t') || !is_forbidden_in_line(c),
        };
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    Err(EventError::invalid(path, "must not be empty"))
                } else if self.strictness == Strictness::Input
                    && !is_plain_ascii(trimmed)
                    && !trimmed.chars().all(allowed)
                {
                    Err(EventError::invalid(
                        path,
                        match text {
                            Text::Line => {
                                "must not contain control characters (NUL, escape, line breaks, \
                                 ...) or direction overrides"
                            }
                            Text::Lines => {
                                "must not contain control characters other than line breaks \
                                 and tabs, or direction overrides"
                            }
                        },
                    ))
                } else if trimmed.len() > max_len {
                    Err(EventError::invalid(
                        path,
                        format!("is {} bytes long; the limit is {max_len}", trimmed.len()),
                    ))
                } else if trimmed.len() == s.len() {
                    Ok(Some(s))
                } else {
                    Ok(Some(trimmed.to_string()))
                }
            }
            Some(other) => Err(EventError::wrong_type(path, "a string", &other)),
        }
    }

    fn required_id(&mut self, name: &str) -> Result<String, EventError> {
        self.required_string(name, MAX_ID_LEN)
    }

    fn optional_id(&mut self, name: &str) -> Result<Option<String>, EventError> {
        self.optional_string(name, MAX_ID_LEN)
    }

    fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, EventError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(EventError::wrong_type(name, "true or false", &other)),
        }
    }

    fn required_time(&mut self, name: &str) -> Result<OffsetDateTime, EventError> {
        let text = self.required_string(name, 64)?;
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).map_err(|_| {
            EventError::invalid(
                name,
                format!("{text:?} is not an RFC 3339 timestamp such as 2024-05-16T09:30:00Z"),
            )
        })?;
        // Stored in UTC, as RFC 3339, which has four-digit years: an offset
        // may carry a time at the edge of year 0000 or 9999 out of that
        // range (and out of what `time` represents, where the unchecked
        // conversion panics).
        let utc = parsed
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|utc| (0..=9999).contains(&utc.year()))
            .ok_or_else(|| {
                EventError::invalid(
                    name,
                    format!(
                        "{text:?} is outside the years 0000 to 9999 once converted to UTC; \
                         the limits are 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
                    ),
                )
            })?;
        // Whole seconds in UTC: state keeps seconds, and the stored form must
        // re-parse to an identical event.
        utc.replace_nanosecond(utc.nanosecond() / 1_000 * 1_000)
            .map_err(|_| EventError::invalid(name, "has an out-of-range fraction of a second"))
    }

    fn optional_ip(&mut self, name: &str) -> Result<Option<IpAddr>, EventError> {
        match self.optional_string(name, 64)? {
            None => Ok(None),
            Some(text) => text.parse::<IpAddr>().map(Some).map_err(|_| {
                EventError::invalid(name, format!("{text:?} is not an IPv4 or IPv6 address"))
            }),
        }
    }

    fn required_amount(&mut self, name: &str) -> Result<u64, EventError> {
        match self.take(name) {
            None | Some(Value::Null) => Err(EventError::missing(name)),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(0) => Err(EventError::invalid(name, "must be greater than zero")),
                Some(v) if v <= i64::MAX as u64 => Ok(v),
                Some(_) => Err(EventError::invalid(name, "is too large")),
                None if n.is_i64() => Err(EventError::invalid(name, "must be greater than zero")),
                None => Err(EventError::invalid(
                    name,
                    "expected an integer amount in minor units (cents), found a decimal number",
                )),
            },
            Some(other) => Err(EventError::wrong_type(
                name,
                "an integer amount in minor units (cents)",
                &other,
            )),
        }
    }

    fn required_currency(&mut self, name: &str) -> Result<Currency, EventError> {
        let code = self.required_string(name, 8)?;
        Currency::parse(&code).ok_or_else(|| {
            EventError::invalid(
                name,
                format!("{code:?} is not a three-letter ISO 4217 currency code"),
            )
        })
    }

    fn optional_enum<T>(
        &mut self,
        name: &str,
        from_name: fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Result<Option<T>, EventError> {
        match self.optional_string(name, 64)? {
            None => Ok(None),
            Some(text) => from_name(&text).map(Some).ok_or_else(|| {
                EventError::invalid(
                    name,
                    format!(
                        "unknown value {text:?}; expected one of: {}",
                        allowed.join(", ")
                    ),
                )
            }),
        }
    }

    fn required_enum<T>(
        &mut self,
        name: &str,
        from_name: fn(&str) -> Option<T>,
        allowed: &[&str],
    ) -> Result<T, EventError> {
        self.optional_enum(name, from_name, allowed)?
            .ok_or_else(|| EventError::missing(name))
    }

    fn into_attributes(mut self) -> Result<BTreeMap<String, Value>, EventError> {
        let mut attributes = match self.take("attributes") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map.into_iter().collect(),
            Some(other) => return Err(EventError::wrong_type("attributes", "an object", &other)),
        };
        let left_over = self
            .entries
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)));
        for (name, value) in left_over {
            if attributes.contains_key(&name) {
                return Err(EventError::invalid(
                    &name,
                    "is sent both at top level and inside `attributes`; send it once",
                ));
            }
            attributes.insert(name, value);
        }
        if self.strictness == Strictness::Input {
            check_custom_fields(&attributes)?;
        }
        Ok(attributes)
    }
}
