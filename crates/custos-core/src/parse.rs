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
            Value::Object(mut map) => {
                self.open_stored(&mut map);
                self.parse_object_unenriched(map)
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
        let mut event = self.parse_object_unenriched(map)?;
        if let Some(enricher) = &self.enricher {
            let found = enricher.enrich(event.ip, event.user_agent.as_deref());
            event.enrichment.fill_from(found);
        }
        Ok(event)
    }

    fn parse_object_unenriched(&self, map: Map<String, Value>) -> Result<Event, EventError> {
        let mut fields = Fields { map };
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
        let user_agent = fields.optional_string("user_agent", MAX_TEXT_LEN)?;
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
                failure_reason: f.optional_string("failure_reason", MAX_TEXT_LEN)?,
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
                    Some(value) => self.parse_destination("destination", value)?,
                    None => return Err(EventError::missing("destination")),
                },
                previous_destination: match f.take("previous_destination") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(self.parse_destination("previous_destination", value)?),
                },
            },
            EventType::Payout => Details::Payout {
                payout_id: f.required_id("payout_id")?,
                amount: f.required_amount("amount")?,
                currency: f.required_currency("currency")?,
                destination: match f.take("destination") {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(self.parse_destination("destination", value)?),
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
                Details::AnalystAction {
                    action,
                    target_id,
                    analyst: f.required_id("analyst")?,
                    reason: f.required_string("reason", MAX_TEXT_LEN)?,
                }
            }
            EventType::Logout
            | EventType::PasswordResetRequest
            | EventType::EmailChange
            | EventType::PhoneChange => Details::None {},
        })
    }

    fn parse_destination(&self, path: &str, value: Value) -> Result<Destination, EventError> {
        let map = match value {
            Value::Object(map) => map,
            other => return Err(EventError::wrong_type(path, "an object", &other)),
        };
        let mut f = Fields { map };
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
        if let Some((name, _)) = f.map.iter().next() {
            return Err(EventError::invalid(
                &field(name),
                "unknown destination field; expected institution_id, institution_type, country, \
                 account_number or account_token, holder_name",
            ));
        }
        Ok(Destination {
            institution_id,
            institution_type,
            country,
            account_token,
            account_last4,
            holder_name,
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

/// The fields of one JSON object, consumed as they are read; what remains at
/// the end becomes the event's attributes.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
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
                serde_json::from_value(value).map_err(|e| EventError::invalid(name, e.to_string()))
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

    fn optional_string_at(
        &mut self,
        name: &str,
        path: &str,
        max_len: usize,
    ) -> Result<Option<String>, EventError> {
        match self.take(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let trimmed = s.trim();
                if trimmed.is_empty() {
                    Err(EventError::invalid(path, "must not be empty"))
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
        // Whole seconds in UTC: state keeps seconds, and the stored form must
        // re-parse to an identical event.
        let utc = parsed.to_offset(time::UtcOffset::UTC);
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
        let mut attributes = match self.map.remove("attributes") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map.into_iter().collect(),
            Some(other) => return Err(EventError::wrong_type("attributes", "an object", &other)),
        };
        if let Some(name) = attributes
            .keys()
            .chain(self.map.keys())
            .find(|name| crate::pii::is_account_number_name(name))
        {
            // Never echo the value: it may be the number itself.
            return Err(EventError::invalid(
                name,
                "custom fields must not hold bank account or card numbers; send the payout \
                 destination as `destination.account_number`, which is stored as a token and \
                 the last four characters",
            ));
        }
        for (name, value) in self.map {
            if attributes.contains_key(&name) {
                return Err(EventError::invalid(
                    &name,
                    "is sent both at top level and inside `attributes`; send it once",
                ));
            }
            attributes.insert(name, value);
        }
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(EventError::invalid(
                "attributes",
                format!(
                    "has {} custom fields; the limit is {MAX_ATTRIBUTES}",
                    attributes.len()
                ),
            ));
        }
        Ok(attributes)
    }
}
