//! Sift's reserved events as Custos events: a pure translation, no I/O.
//!
//! [`map_event`] turns one Events API body into a [`Plan`]: the account the
//! events belong to and, in order, the Custos events to record (most Sift
//! events become one; `$create_account` with `$payment_methods` becomes a
//! login and a destination change; `$update_account` one event per thing
//! that changed). Steps may carry a [`Check`] that only the caller can run
//! against state (is the destination new? did the e-mail change? is this
//! withdrawal already recorded?).
//!
//! Every field of the request ends up somewhere:
//!
//! - read into a Custos field (`$user_id` → `account_id`, `$ip` → `ip`,
//!   `$login_status` → `status`, ...), and then not kept twice;
//! - otherwise kept as an attribute on every event of the plan: a reserved
//!   field `$name` as `sift_name`, a custom field under its own name;
//! - or the request is refused in Sift's error shape: an unknown `$type`
//!   (status 53), a reserved field the type does not have (105), a custom
//!   field name with characters rules cannot read (52), a value Custos
//!   cannot take (53), a missing field Custos needs (55).
//!
//! `$api_key` is the one field that is dropped: it is a secret.
//!
//! docs/sift.md is the table of all this, field by field.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use custos_core::event::VerificationChannel;

use super::SiftError;
use super::destination::{payout_destination, without_identifiers};

/// Attribute names of Sift's reserved fields start with this.
pub(crate) const RESERVED_PREFIX: &str = "sift_";
/// Longest custom field name.
const MAX_CUSTOM_NAME: usize = 64;

/// The Sift event types Custos takes at `/v205/events`.
pub(crate) const SUPPORTED_TYPES: &[&str] = &[
    "$create_account",
    "$update_account",
    "$login",
    "$logout",
    "$update_password",
    "$security_notification",
    "$verification",
    "$transaction",
    "$chargeback",
];

/// Reserved fields any event may carry.
const COMMON_FIELDS: &[&str] = &[
    "$type",
    "$api_key",
    "$user_id",
    "$session_id",
    "$ip",
    "$time",
    "$browser",
    "$app",
    "$brand_name",
    "$site_country",
    "$site_domain",
    "$user_email",
    "$verification_phone_number",
];

/// Reserved fields of `$create_account` and `$update_account`.
const ACCOUNT_FIELDS: &[&str] = &[
    "$name",
    "$phone",
    "$referrer_user_id",
    "$payment_methods",
    "$billing_address",
    "$shipping_address",
    "$promotions",
    "$social_sign_on_type",
    "$merchant_profile",
    "$account_types",
];

const LOGIN_FIELDS: &[&str] = &[
    "$login_status",
    "$failure_reason",
    "$username",
    "$social_sign_on_type",
    "$account_types",
];

const UPDATE_PASSWORD_FIELDS: &[&str] = &["$reason", "$status"];

const SECURITY_NOTIFICATION_FIELDS: &[&str] = &[
    "$notification_status",
    "$notification_type",
    "$notified_value",
];

const VERIFICATION_FIELDS: &[&str] = &[
    "$status",
    "$verification_type",
    "$verified_value",
    "$reason",
    "$verified_event",
    "$verified_entity_id",
];

const TRANSACTION_FIELDS: &[&str] = &[
    "$amount",
    "$currency_code",
    "$exchange_rate",
    "$transaction_type",
    "$transaction_status",
    "$order_id",
    "$transaction_id",
    "$billing_address",
    "$payment_method",
    "$shipping_address",
    "$seller_user_id",
    "$transfer_recipient_user_id",
    "$ordered_from",
    "$decline_category",
    "$merchant_profile",
    "$sent_address",
    "$received_address",
    "$status_3ds",
    "$triggered_3ds",
    "$merchant_initiated_transaction",
    "$digital_orders",
    "$receiver_wallet_address",
    "$receiver_external_address",
    "$minimum_deposit_amount",
    "$maximum_deposit_amount",
    "$minimum_withdrawal_amount",
    "$maximum_withdrawal_amount",
    "$current_balance",
    "$new_balance",
];

const CHARGEBACK_FIELDS: &[&str] = &[
    "$order_id",
    "$transaction_id",
    "$chargeback_state",
    "$chargeback_reason",
    "$merchant_profile",
    "$ach_return_code",
];

const LABEL_FIELDS: &[&str] = &[
    "$type",
    "$api_key",
    "$user_id",
    "$is_bad",
    "$abuse_type",
    "$description",
    "$source",
    "$analyst",
    "$time",
];

/// Sift's transaction types; Custos records three of them.
const TRANSACTION_TYPES: &[&str] = &[
    "$sale",
    "$authorize",
    "$capture",
    "$void",
    "$refund",
    "$deposit",
    "$withdrawal",
    "$transfer",
    "$buy",
    "$sell",
    "$send",
    "$receive",
];

/// Sift's abuse types, as `$abuse_type` and `abuse_types` name them.
pub(crate) const SIFT_ABUSE_TYPES: &[&str] = &[
    "payment_abuse",
    "account_abuse",
    "content_abuse",
    "promotion_abuse",
    "account_takeover",
    "legacy",
];

/// What a Sift request becomes.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The Custos account the events are recorded on.
    pub account_id: String,
    pub steps: Vec<Step>,
    /// Why nothing is recorded, when `steps` is empty (or when every step's
    /// check fails).
    pub not_recorded: Option<&'static str>,
}

/// One Custos event of a plan.
#[derive(Debug)]
pub(crate) struct Step {
    /// The Custos event, with its `event_id`.
    pub event: Map<String, Value>,
    pub check: Check,
    /// Where the destination of this event came from in the request
    /// (`$payment_methods[0]`), to name it in errors.
    pub destination_path: Option<&'static str>,
}

/// A condition only state can answer; the step is recorded only if it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    Always,
    /// The destination is not the account's current one.
    IfDestinationChanged,
    /// `value` differs from the last value of `attribute` recorded for the
    /// account; with none recorded yet, there is nothing to compare to.
    IfContactChanged {
        attribute: &'static str,
        value: String,
    },
    /// The event id is not stored yet; if it is, the stored decision answers.
    OncePerEventId,
}

impl Check {
    /// How two contact values compare: e-mails without case, phone numbers
    /// by their digits.
    pub fn normalize(attribute: &str, value: &str) -> String {
        if attribute.ends_with("phone") {
            value.chars().filter(char::is_ascii_digit).collect()
        } else {
            value.trim().to_lowercase()
        }
    }
}

/// Maps an Events API body (`/v205/events`).
pub(crate) fn map_event(body: &Map<String, Value>, now_ms: i64) -> Result<Plan, SiftError> {
    let sift_type = match body.get("$type") {
        None | Some(Value::Null) => return Err(SiftError::missing("$type")),
        Some(Value::String(t)) => t.trim().to_string(),
        Some(other) => {
            return Err(SiftError::invalid(format!(
                "`$type`: expected a string, found {}",
                json_kind(other)
            )));
        }
    };
    let specific: &[&[&str]] = match sift_type.as_str() {
        "$create_account" => &[ACCOUNT_FIELDS],
        "$update_account" => &[ACCOUNT_FIELDS, &["$changed_password"]],
        "$login" => &[LOGIN_FIELDS],
        "$logout" => &[],
        "$update_password" => &[UPDATE_PASSWORD_FIELDS],
        "$security_notification" => &[SECURITY_NOTIFICATION_FIELDS],
        "$verification" => &[VERIFICATION_FIELDS],
        "$transaction" => &[TRANSACTION_FIELDS],
        "$chargeback" => &[CHARGEBACK_FIELDS],
        "$label" => {
            return Err(SiftError::invalid(
                "`$type`: send labels to POST /v205/users/{user_id}/labels",
            ));
        }
        other if !other.starts_with('$') => {
            return Err(SiftError::invalid(format!(
                "`$type`: custom event {other:?} is not supported; Custos takes {}",
                SUPPORTED_TYPES.join(", ")
            )));
        }
        other => {
            return Err(SiftError::invalid(format!(
                "`$type`: {other} is not supported; Custos takes {}",
                SUPPORTED_TYPES.join(", ")
            )));
        }
    };
    check_names(body, |name| {
        COMMON_FIELDS.contains(&name) || specific.iter().any(|fields| fields.contains(&name))
    })
    .map_err(|name| SiftError::not_reserved(&name, &sift_type))?;
    let mut fields = Fields(body.clone());
    fields.take("$type");
    fields.take("$api_key");
    let ctx = Context::new(&mut fields, &sift_type, now_ms)?;
    let mut plan = match sift_type.as_str() {
        "$create_account" => create_account(&mut fields, &ctx)?,
        "$update_account" => update_account(&mut fields, &ctx)?,
        "$login" => login(&mut fields, &ctx)?,
        "$logout" => {
            let (account, common) = account_and_common(&mut fields)?;
            Plan::one(&account, ctx.event(&account, &common, "logout", json!({})))
        }
        "$update_password" => update_password(&mut fields, &ctx)?,
        "$security_notification" => security_notification(&mut fields, &ctx)?,
        "$verification" => verification(&mut fields, &ctx)?,
        "$transaction" => transaction(&mut fields, &ctx)?,
        _ => chargeback(&mut fields, &ctx)?,
    };
    finish(&mut plan, fields, &ctx, body)?;
    Ok(plan)
}

/// Maps a Labels API body (`POST /v205/users/{user_id}/labels`) to a Custos
/// `label` event on `user_id`.
pub(crate) fn map_label(
    body: &Map<String, Value>,
    user_id: &str,
    now_ms: i64,
) -> Result<Plan, SiftError> {
    check_names(body, |name| LABEL_FIELDS.contains(&name))
        .map_err(|name| SiftError::not_reserved(&name, "$label"))?;
    let mut fields = Fields(body.clone());
    fields.take("$api_key");
    if let Some(t) = fields.string("$type")?
        && t != "$label"
    {
        return Err(SiftError::invalid(format!(
            "`$type`: the labels route takes `$label`, not {t:?}"
        )));
    }
    if let Some(in_body) = fields.string("$user_id")?
        && in_body != user_id
    {
        return Err(SiftError::invalid(format!(
            "`$user_id`: {in_body:?} in the body differs from {user_id:?} in the path"
        )));
    }
    let ctx = Context::new(&mut fields, "$label", now_ms)?;
    let is_bad = fields
        .boolean("$is_bad")?
        .ok_or_else(|| SiftError::missing("$is_bad"))?;
    let abuse_type = fields
        .peek_choice("$abuse_type", SIFT_ABUSE_TYPES)?
        .ok_or_else(|| SiftError::missing("$abuse_type"))?;
    let label = label_kind(abuse_type, is_bad).ok_or_else(|| {
        SiftError::invalid(format!(
            "`$abuse_type`: Custos judges account takeover and payment fraud, not {abuse_type}; \
             label account_takeover, payment_abuse, account_abuse or legacy"
        ))
    })?;
    let mut details = json!({ "label": label });
    if let Some(analyst) = fields.string("$analyst")? {
        details["analyst"] = json!(analyst);
    }
    let event = ctx.event(user_id, &Common::default(), "label", details);
    let mut plan = Plan::one(user_id, event);
    finish(&mut plan, fields, &ctx, body)?;
    Ok(plan)
}

/// The Custos label for a Sift label or decision: a bad account takeover
/// is a reported compromise, other bad abuse is fraud, good is legit.
/// `None` for abuse types Custos does not judge.
pub(crate) fn label_kind(abuse_type: &str, is_bad: bool) -> Option<&'static str> {
    match (abuse_type, is_bad) {
        ("content_abuse" | "promotion_abuse", _) => None,
        (_, false) => Some("legit"),
        ("account_takeover", true) => Some("compromise_reported"),
        (_, true) => Some("fraud"),
    }
}

/// Checks the reserved (`$`) names at the top level against `reserved`,
/// before anything is read, and returns the first one not allowed. Custom
/// names are checked by [`check_custom_name`] when they become attributes.
fn check_names(body: &Map<String, Value>, reserved: impl Fn(&str) -> bool) -> Result<(), String> {
    for name in body.keys() {
        if name.starts_with('$') && !reserved(name) {
            return Err(name.clone());
        }
    }
    Ok(())
}

/// A custom field becomes an attribute under its own name, which the
/// rules language reads as `event.attributes.<name>`: letters, digits and
/// `_`, not starting with a digit. Names starting with `sift_` are taken by
/// Sift's reserved fields. Names of bank or card numbers are refused
/// outright: Custos never stores those numbers.
fn check_custom_name(name: &str) -> Result<(), SiftError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_CUSTOM_NAME
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Err(SiftError::invalid_name(format!(
            "custom field {name:?}: use 1 to {MAX_CUSTOM_NAME} letters, digits or `_`, \
             starting with a letter or `_`"
        )));
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(SiftError::invalid_name(format!(
            "custom field {name:?}: names starting with `{RESERVED_PREFIX}` hold Sift's \
             reserved fields; rename it"
        )));
    }
    // The same rule as on `/v1`, so neither route stores what the other refuses.
    if custos_core::parse::names_a_bank_or_card_number(name) {
        return Err(SiftError::invalid(format!(
            "custom field {name:?}: Custos never stores bank account or card numbers; send \
             the payout destination as `$payment_methods` (see docs/sift.md)"
        )));
    }
    Ok(())
}

/// Time, ids and the Sift type shared by the events of one request.
struct Context {
    sift_type: String,
    time_ms: i64,
    time: String,
}

impl Context {
    /// Reads `$time` (milliseconds since the epoch; now when absent).
    fn new(fields: &mut Fields, sift_type: &str, now_ms: i64) -> Result<Context, SiftError> {
        let time_ms = match fields.take("$time") {
            None => now_ms,
            Some(Value::Number(n)) => n.as_i64().filter(|ms| *ms > 0).ok_or_else(|| {
                SiftError::invalid(
                    "`$time`: expected a positive integer of milliseconds since the epoch",
                )
            })?,
            Some(other) => {
                return Err(SiftError::invalid(format!(
                    "`$time`: expected an integer of milliseconds since the epoch, found {}",
                    json_kind(&other)
                )));
            }
        };
        let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .ok_or_else(|| SiftError::invalid("`$time`: out of range"))?;
        Ok(Context {
            sift_type: sift_type.to_string(),
            time_ms,
            time,
        })
    }

    /// A Custos event of `custos_type` on `account`, with the common fields
    /// and `details` (an object) merged in.
    fn event(
        &self,
        account: &str,
        common: &Common,
        custos_type: &str,
        details: Value,
    ) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("type".into(), json!(custos_type));
        event.insert("account_id".into(), json!(account));
        event.insert("time".into(), json!(self.time));
        for (name, value) in [
            ("session_id", &common.session_id),
            ("ip", &common.ip),
            ("user_agent", &common.user_agent),
            ("device_id", &common.device_id),
        ] {
            if let Some(value) = value {
                event.insert(name.into(), json!(value));
            }
        }
        if let Value::Object(details) = details {
            event.extend(details);
        }
        event
    }
}

impl Plan {
    fn one(account: &str, event: Map<String, Value>) -> Plan {
        Plan {
            account_id: account.to_string(),
            steps: vec![Step::always(event)],
            not_recorded: None,
        }
    }

    fn nothing(account: &str, why: &'static str) -> Plan {
        Plan {
            account_id: account.to_string(),
            steps: Vec::new(),
            not_recorded: Some(why),
        }
    }
}

impl Step {
    fn always(event: Map<String, Value>) -> Step {
        Step {
            event,
            check: Check::Always,
            destination_path: None,
        }
    }
}

/// Fields every event maps the same way.
#[derive(Debug, Default)]
struct Common {
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    device_id: Option<String>,
}

const BROWSER_FIELDS: &[&str] = &["$user_agent", "$accept_language", "$content_language"];
const APP_FIELDS: &[&str] = &[
    "$os",
    "$os_version",
    "$device_manufacturer",
    "$device_model",
    "$device_unique_id",
    "$app_name",
    "$app_version",
    "$client_language",
];

/// Reads `$user_id` (the Custos account) and the common fields.
fn account_and_common(fields: &mut Fields) -> Result<(String, Common), SiftError> {
    let account = fields.required("$user_id")?;
    Ok((account, take_common(fields)?))
}

/// `$session_id`, `$ip`, `$browser.$user_agent` and `$app.$device_unique_id`
/// into Custos fields; what else `$browser` and `$app` hold stays for the
/// attributes.
fn take_common(fields: &mut Fields) -> Result<Common, SiftError> {
    let session_id = fields.string("$session_id")?;
    let ip = fields.string("$ip")?;
    if let Some(ip) = &ip
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(SiftError::invalid(format!(
            "`$ip`: {ip:?} is not an IPv4 or IPv6 address"
        )));
    }
    let user_agent = fields.nested_string("$browser", BROWSER_FIELDS, "$user_agent")?;
    let device_id = fields.nested_string("$app", APP_FIELDS, "$device_unique_id")?;
    Ok(Common {
        session_id,
        ip,
        user_agent,
        device_id,
    })
}

fn create_account(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    // Creating the account signs its owner in: the device and network it
    // was created from are the baseline later logins are judged against.
    let mut plan = Plan::one(
        &account,
        ctx.event(&account, &common, "login", json!({"status": "success"})),
    );
    if let Some(destination) = payment_methods_destination(fields)? {
        plan.steps.push(Step {
            event: ctx.event(
                &account,
                &common,
                "payout_destination_change",
                json!({ "destination": destination }),
            ),
            check: Check::IfDestinationChanged,
            destination_path: Some("$payment_methods[0]"),
        });
    }
    Ok(plan)
}

fn update_account(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let mut steps = Vec::new();
    if fields.boolean("$changed_password")? == Some(true) {
        steps.push(Step::always(ctx.event(
            &account,
            &common,
            "password_change",
            json!({"reason": "user"}),
        )));
    }
    for (field, attribute, custos_type) in [
        ("$user_email", "sift_user_email", "email_change"),
        ("$phone", "sift_phone", "phone_change"),
    ] {
        if let Some(value) = fields.peek_string(field)? {
            steps.push(Step {
                event: ctx.event(&account, &common, custos_type, json!({})),
                check: Check::IfContactChanged { attribute, value },
                destination_path: None,
            });
        }
    }
    if let Some(destination) = payment_methods_destination(fields)? {
        steps.push(Step {
            event: ctx.event(
                &account,
                &common,
                "payout_destination_change",
                json!({ "destination": destination }),
            ),
            check: Check::IfDestinationChanged,
            destination_path: Some("$payment_methods[0]"),
        });
    }
    Ok(Plan {
        account_id: account,
        steps,
        not_recorded: Some(
            "the update changes nothing Custos tracks: no new payout destination, password, \
             e-mail or phone",
        ),
    })
}

/// The payout destination in `$payment_methods` (kept as an attribute too,
/// with the payment method fields Custos does not read).
fn payment_methods_destination(fields: &Fields) -> Result<Option<Value>, SiftError> {
    match fields.0.get("$payment_methods") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(methods)) => match methods.as_slice() {
            [] => Ok(None),
            [method] => payout_destination(method, "$payment_methods[0]").map(Some),
            _ => Err(SiftError::invalid(format!(
                "`$payment_methods`: has {} entries; Custos keeps one payout destination per \
                 account: send the account's payout destination alone",
                methods.len()
            ))),
        },
        Some(other) => Err(SiftError::invalid(format!(
            "`$payment_methods`: expected an array, found {}",
            json_kind(other)
        ))),
    }
}

fn login(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let status = fields
        .choice("$login_status", &["$success", "$failure"])?
        .ok_or_else(|| SiftError::missing("$login_status"))?;
    let mut details = json!({ "status": status.trim_start_matches('$') });
    if let Some(reason) = fields.string("$failure_reason")? {
        details["failure_reason"] = json!(reason.trim_start_matches('$'));
    }
    Ok(Plan::one(
        &account,
        ctx.event(&account, &common, "login", details),
    ))
}

fn update_password(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let status = fields
        .choice("$status", &["$pending", "$success", "$failure"])?
        .ok_or_else(|| SiftError::missing("$status"))?;
    let reason = fields.choice(
        "$reason",
        &["$user_update", "$forgot_password", "$forced_reset"],
    )?;
    let event =
        |custos_type: &str, details: Value| ctx.event(&account, &common, custos_type, details);
    Ok(match (status, reason) {
        ("$success", reason) => {
            let mut details = json!({});
            if let Some(reason) = reason {
                details["reason"] = json!(match reason {
                    "$forgot_password" => "reset",
                    "$forced_reset" => "forced",
                    _ => "user",
                });
            }
            Plan::one(&account, event("password_change", details))
        }
        ("$pending", Some("$forgot_password" | "$forced_reset")) => {
            Plan::one(&account, event("password_reset_request", json!({})))
        }
        ("$pending", _) => Plan::nothing(
            &account,
            "a pending password update changes nothing yet; send `$success` when it happens",
        ),
        _ => Plan::nothing(&account, "a failed password update changes nothing"),
    })
}

fn security_notification(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let status = fields
        .choice("$notification_status", &["$sent", "$safe", "$compromised"])?
        .ok_or_else(|| SiftError::missing("$notification_status"))?;
    let method = fields
        .peek_string("$notification_type")?
        .map(|t| t.trim_start_matches('$').to_string());
    Ok(match status {
        "$safe" => {
            let mut details = json!({"status": "passed"});
            if let Some(method) = method {
                details["method"] = json!(method);
            }
            Plan::one(
                &account,
                ctx.event(&account, &common, "verification", details),
            )
        }
        "$compromised" => Plan::one(
            &account,
            ctx.event(
                &account,
                &common,
                "label",
                json!({"label": "compromise_reported"}),
            ),
        ),
        _ => Plan::nothing(
            &account,
            "a notification sent has no answer yet; send `$safe` or `$compromised` when the \
             user answers",
        ),
    })
}

fn verification(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let status = fields
        .choice("$status", &["$pending", "$success", "$failure"])?
        .ok_or_else(|| SiftError::missing("$status"))?;
    let method = fields.string("$verification_type")?;
    // Sift has no type for the contact on file before a change or for an
    // identity document: a platform answering Custos's `verification`
    // request names the channel itself.
    let named_channel = fields
        .choice("custos_channel", VerificationChannel::WIRE_NAMES)?
        .map(str::to_string);
    let outcome = match status {
        "$success" => "passed",
        "$failure" => "failed",
        _ => {
            return Ok(Plan::nothing(
                &account,
                "a pending verification has no outcome yet; send `$success` or `$failure`",
            ));
        }
    };
    let mut details = json!({ "status": outcome });
    if let Some(method) = method {
        if let Some(channel) = sift_verification_channel(&method) {
            details["channel"] = json!(channel);
        }
        details["method"] = json!(method.trim_start_matches('$'));
    }
    if let Some(channel) = named_channel {
        details["channel"] = json!(channel);
    }
    Ok(Plan::one(
        &account,
        ctx.event(&account, &common, "verification", details),
    ))
}

/// Custos's verification channel for a Sift `$verification_type`; `None`
/// for types that name no channel Custos can judge (`$question`), which
/// Custos then treats as of unknown provenance.
fn sift_verification_channel(verification_type: &str) -> Option<&'static str> {
    match verification_type {
        "$sms" => Some("sms"),
        "$phone_call" => Some("voice"),
        "$email" => Some("email"),
        "$app_tfa" => Some("totp"),
        "$push" => Some("push"),
        "$fido" | "$webauthn" => Some("security_key"),
        _ => None,
    }
}

fn transaction(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let kind = fields
        .choice("$transaction_type", TRANSACTION_TYPES)?
        .unwrap_or("$sale");
    let status = fields
        .peek_choice("$transaction_status", &["$success", "$failure", "$pending"])?
        .unwrap_or("$success");
    match kind {
        "$withdrawal" => withdrawal(fields, ctx, status),
        "$sale" | "$deposit" => credit(fields, ctx, kind, status),
        other => Err(SiftError::invalid(format!(
            "`$transaction_type`: {other} is not supported; Custos records $withdrawal (a \
             payout), $sale and $deposit (money credited to the account)"
        ))),
    }
}

/// A `$withdrawal` is a payout, decided before the money leaves. Its
/// Custos event id comes from `$transaction_id`: the `$pending` request and
/// the `$success` that follows are one payout, answered once.
fn withdrawal(fields: &mut Fields, ctx: &Context, status: &str) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    let transaction_id = fields.required("$transaction_id")?;
    let (amount, currency) = money(fields)?;
    if status == "$failure" {
        return Ok(Plan::nothing(
            &account,
            "a failed withdrawal paid nothing out",
        ));
    }
    let mut details = json!({"payout_id": transaction_id, "amount": amount, "currency": currency,
        "source": "sales"});
    let destination_path = match fields.0.get("$payment_method") {
        None | Some(Value::Null) => None,
        Some(method) => {
            details["destination"] = payout_destination(method, "$payment_method")?;
            Some("$payment_method")
        }
    };
    let mut event = ctx.event(&account, &common, "payout", details);
    event.insert(
        "event_id".into(),
        json!(format!(
            "sift-payout-{}",
            short_hash(&[&account, &transaction_id])
        )),
    );
    Ok(Plan {
        account_id: account,
        steps: vec![Step {
            event,
            check: Check::OncePerEventId,
            destination_path,
        }],
        not_recorded: None,
    })
}

/// `$sale` and `$deposit`: money credited to a balance, a Custos `sale`.
/// A sale naming `$seller_user_id` is recorded on the seller, and the
/// buyer's fields (`$user_id`, session, address, browser, app) are kept as
/// attributes rather than read as the seller's.
fn credit(fields: &mut Fields, ctx: &Context, kind: &str, status: &str) -> Result<Plan, SiftError> {
    let buyer = fields.peek_string("$user_id")?;
    let seller = fields.peek_string("$seller_user_id")?;
    let on_seller = kind == "$sale" && seller.is_some() && seller != buyer;
    let (account, common) = match (on_seller, seller) {
        (true, Some(seller)) => {
            fields.take("$seller_user_id");
            (seller, Common::default())
        }
        _ => account_and_common(fields)?,
    };
    let (amount, currency) = money(fields)?;
    if status != "$success" {
        return Ok(Plan::nothing(
            &account,
            "only a successful sale or deposit credits the balance",
        ));
    }
    Ok(Plan::one(
        &account,
        ctx.event(
            &account,
            &common,
            "sale",
            json!({"amount": amount, "currency": currency}),
        ),
    ))
}

fn chargeback(fields: &mut Fields, ctx: &Context) -> Result<Plan, SiftError> {
    let (account, common) = account_and_common(fields)?;
    Ok(Plan::one(
        &account,
        ctx.event(&account, &common, "label", json!({"label": "chargeback"})),
    ))
}

/// `$amount` (micros: 1 USD is 1,000,000) and `$currency_code`, as Custos
/// minor units. An amount that is not a whole number of minor units is
/// refused rather than rounded.
fn money(fields: &mut Fields) -> Result<(u64, String), SiftError> {
    let currency = fields.required("$currency_code")?.to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(SiftError::invalid(format!(
            "`$currency_code`: expected an ISO 4217 code such as USD, found {currency:?}"
        )));
    }
    let micros = match fields.take("$amount") {
        None => return Err(SiftError::missing("$amount")),
        Some(Value::Number(n)) => n.as_u64().filter(|m| *m > 0).ok_or_else(|| {
            SiftError::invalid("`$amount`: expected a positive integer of micros (1 USD = 1000000)")
        })?,
        Some(other) => {
            return Err(SiftError::invalid(format!(
                "`$amount`: expected an integer of micros, found {}",
                json_kind(&other)
            )));
        }
    };
    let divisor = 10u64.pow(6 - minor_unit_digits(&currency));
    if micros % divisor != 0 {
        return Err(SiftError::invalid(format!(
            "`$amount`: {micros} micros is not a whole number of {currency} minor units"
        )));
    }
    Ok((micros / divisor, currency))
}

/// Digits after the decimal point of a currency's minor unit (ISO 4217).
pub(crate) fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Adds the attributes (the `$type`, reserved fields Custos did not read,
/// custom fields) to every step, and event ids to the steps without one.
fn finish(
    plan: &mut Plan,
    fields: Fields,
    ctx: &Context,
    body: &Map<String, Value>,
) -> Result<(), SiftError> {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        format!("{RESERVED_PREFIX}type"),
        json!(ctx.sift_type.clone()),
    );
    for (name, value) in fields.0 {
        match name.strip_prefix('$') {
            Some(reserved) => {
                let value = match reserved {
                    // The destination was built from them; the stored copy
                    // keeps no IBAN fragment, last digits or payer id.
                    "payment_methods" | "payment_method" => without_identifiers(value),
                    _ => value,
                };
                attributes.insert(format!("{RESERVED_PREFIX}{reserved}"), value);
            }
            None => {
                check_custom_name(&name)?;
                attributes.insert(name, value);
            }
        }
    }
    if attributes.len() > custos_core::parse::MAX_ATTRIBUTES {
        return Err(SiftError::invalid(format!(
            "the event has {} fields Custos keeps as attributes (custom fields and reserved \
             fields it does not read, plus `sift_type`); the limit is {}",
            attributes.len(),
            custos_core::parse::MAX_ATTRIBUTES
        )));
    }
    // The limits every stored event keeps (depth, size), checked here so the
    // answer names the Sift field rather than the attribute it became.
    custos_core::parse::check_custom_fields(&attributes).map_err(|e| {
        let field = match e.field.strip_prefix(RESERVED_PREFIX) {
            Some(reserved) => format!("${reserved}"),
            None if e.field == "attributes" => "custom fields".to_string(),
            None => e.field.clone(),
        };
        SiftError::invalid(format!("`{field}`: {}", e.problem))
    })?;
    let attributes: Map<String, Value> = attributes.into_iter().collect();
    let base = base_id(&ctx.sift_type, &plan.account_id, body, ctx.time_ms);
    for step in &mut plan.steps {
        if !step.event.contains_key("event_id") {
            let custos_type = step
                .event
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("event");
            let id = format!("{base}.{custos_type}");
            step.event.insert("event_id".into(), json!(id));
        }
        step.event
            .insert("attributes".into(), Value::Object(attributes.clone()));
    }
    Ok(())
}

/// The id shared by the events of one request: the same request (same
/// body, same `$time`) gets the same ids, so a retry is answered from the
/// log. The key is left out, so rotating keys does not change ids.
pub(crate) fn base_id(
    sift_type: &str,
    account: &str,
    body: &Map<String, Value>,
    time_ms: i64,
) -> String {
    let mut without_key = body.clone();
    without_key.remove("$api_key");
    let canonical = Value::Object(without_key).to_string();
    format!(
        "sift-{}",
        short_hash(&[sift_type, account, &canonical, &time_ms.to_string()])
    )
}

/// 24 hex digits of the SHA-256 of the parts, each followed by a newline.
pub(crate) fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(&hasher.finalize()[..12])
}

/// The fields of a request, consumed as they are read into Custos fields;
/// what remains becomes attributes.
struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name).filter(|v| !v.is_null())
    }

    fn string_of(name: &str, value: Option<&Value>) -> Result<Option<String>, SiftError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(other) => Err(SiftError::invalid(format!(
                "`{name}`: expected a string, found {}",
                json_kind(other)
            ))),
        }
    }

    /// Reads and consumes a string field.
    fn string(&mut self, name: &str) -> Result<Option<String>, SiftError> {
        let value = self.take(name);
        Fields::string_of(name, value.as_ref())
    }

    /// Reads a string field and leaves it to be kept as an attribute.
    fn peek_string(&self, name: &str) -> Result<Option<String>, SiftError> {
        Fields::string_of(name, self.0.get(name))
    }

    fn required(&mut self, name: &str) -> Result<String, SiftError> {
        self.string(name)?.ok_or_else(|| SiftError::missing(name))
    }

    fn boolean(&mut self, name: &str) -> Result<Option<bool>, SiftError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(SiftError::invalid(format!(
                "`{name}`: expected true or false, found {}",
                json_kind(&other)
            ))),
        }
    }

    fn choose(
        name: &str,
        value: Option<String>,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, SiftError> {
        match value {
            None => Ok(None),
            Some(v) => allowed
                .iter()
                .find(|a| **a == v)
                .copied()
                .map(Some)
                .ok_or_else(|| {
                    SiftError::invalid(format!(
                        "`{name}`: unknown value {v:?}; expected one of {}",
                        allowed.join(", ")
                    ))
                }),
        }
    }

    /// Reads and consumes a field that takes one of `allowed`.
    fn choice(
        &mut self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, SiftError> {
        let value = self.string(name)?;
        Fields::choose(name, value, allowed)
    }

    /// [`Fields::choice`] that leaves the field to be kept as an attribute.
    fn peek_choice(
        &self,
        name: &str,
        allowed: &[&'static str],
    ) -> Result<Option<&'static str>, SiftError> {
        Fields::choose(name, self.peek_string(name)?, allowed)
    }

    /// Takes `inner` out of the object `outer` (whose fields must be among
    /// `allowed`); the rest of `outer` stays, if anything is left.
    fn nested_string(
        &mut self,
        outer: &str,
        allowed: &[&str],
        inner: &str,
    ) -> Result<Option<String>, SiftError> {
        let Some(value) = self.take(outer) else {
            return Ok(None);
        };
        let Value::Object(mut object) = value else {
            return Err(SiftError::invalid(format!(
                "`{outer}`: expected an object, found {}",
                json_kind(&value)
            )));
        };
        if let Some(name) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(SiftError::not_reserved(&format!("{outer}.{name}"), outer));
        }
        let path = format!("{outer}.{inner}");
        let found = Fields::string_of(&path, object.remove(inner).as_ref())?;
        if !object.is_empty() {
            self.0.insert(outer.to_string(), Value::Object(object));
        }
        Ok(found)
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_525_132_800_000;

    fn map(body: Value) -> Result<Plan, SiftError> {
        match body {
            Value::Object(map) => map_event(&map, NOW),
            _ => panic!("test bodies are objects"),
        }
    }

    fn types(plan: &Plan) -> Vec<&str> {
        plan.steps
            .iter()
            .map(|s| s.event["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_verification_names_its_channel_from_its_type_or_from_custos_channel() {
        let sms = map(
            json!({"$type": "$verification", "$user_id": "u1", "$status": "$success",
            "$verification_type": "$sms"}),
        )
        .unwrap();
        assert_eq!(sms.steps[0].event["channel"], "sms");
        // The contact on file before a change has no Sift type.
        let prior = map(
            json!({"$type": "$verification", "$user_id": "u1", "$status": "$success",
            "$verification_type": "$email", "custos_channel": "prior_email"}),
        )
        .unwrap();
        assert_eq!(prior.steps[0].event["channel"], "prior_email");
        assert_eq!(prior.steps[0].event["method"], "email");
        let typo = map(
            json!({"$type": "$verification", "$user_id": "u1", "$status": "$success",
            "custos_channel": "prior_mail"}),
        );
        assert!(typo.is_err());
    }

    #[test]
    fn a_login_maps_its_fields_and_keeps_the_rest_as_attributes() {
        let plan = map(json!({"$type": "$login", "$api_key": "k", "$user_id": "u1",
            "$session_id": "s1", "$ip": "128.148.1.135", "$time": 1_525_132_800_123_i64,
            "$login_status": "$failure", "$failure_reason": "$wrong_password",
            "$browser": {"$user_agent": "Mozilla/5.0", "$accept_language": "en-US"},
            "$app": {"$device_unique_id": "dev-1", "$os": "iOS"},
            "$username": "bill", "shop_tier": "gold"}))
        .unwrap();
        assert_eq!(plan.account_id, "u1");
        let event = &plan.steps[0].event;
        assert_eq!(event["type"], "login");
        assert_eq!(event["status"], "failure");
        assert_eq!(event["failure_reason"], "wrong_password");
        assert_eq!(event["time"], "2018-05-01T00:00:00.123Z");
        assert_eq!(event["session_id"], "s1");
        assert_eq!(event["user_agent"], "Mozilla/5.0");
        assert_eq!(event["device_id"], "dev-1");
        assert_eq!(
            event["attributes"],
            json!({"sift_type": "$login", "sift_username": "bill", "shop_tier": "gold",
                   "sift_browser": {"$accept_language": "en-US"}, "sift_app": {"$os": "iOS"}})
        );
        assert!(
            !Value::Object(event.clone()).to_string().contains("api_key"),
            "the key is never kept"
        );
        assert!(event["event_id"].as_str().unwrap().ends_with(".login"));
    }

    #[test]
    fn the_same_request_gets_the_same_ids_and_another_time_other_ids() {
        let body = json!({"$type": "$logout", "$user_id": "u1", "$time": 1_525_132_800_000_i64});
        let a = map(body.clone()).unwrap();
        let b = map(
            json!({"$type": "$logout", "$user_id": "u1", "$time": 1_525_132_800_000_i64,
            "$api_key": "another key"}),
        )
        .unwrap();
        assert_eq!(a.steps[0].event["event_id"], b.steps[0].event["event_id"]);
        let c = map(json!({"$type": "$logout", "$user_id": "u1", "$time": 1_525_132_800_001_i64}))
            .unwrap();
        assert_ne!(a.steps[0].event["event_id"], c.steps[0].event["event_id"]);
    }

    #[test]
    fn account_events_split_into_what_changed() {
        let created = map(json!({"$type": "$create_account", "$user_id": "u1",
            "$payment_methods": [{"$payment_type": "$ach_credit", "$routing_number": "072403005",
                                  "$account_number_last5": "12345"}]}))
        .unwrap();
        assert_eq!(types(&created), ["login", "payout_destination_change"]);
        assert_eq!(created.steps[1].check, Check::IfDestinationChanged);
        assert_eq!(
            created.steps[1].event["attributes"]["sift_payment_methods"][0]["$routing_number"],
            "072403005"
        );
        let updated = map(json!({"$type": "$update_account", "$user_id": "u1",
            "$changed_password": true, "$user_email": "a@example.com", "$phone": "1-415-555-6040",
            "$name": "Bill"}))
        .unwrap();
        assert_eq!(
            types(&updated),
            ["password_change", "email_change", "phone_change"]
        );
        assert_eq!(
            updated.steps[1].check,
            Check::IfContactChanged {
                attribute: "sift_user_email",
                value: "a@example.com".into()
            }
        );
        assert_eq!(updated.steps[0].event["attributes"]["sift_name"], "Bill");
        let nothing =
            map(json!({"$type": "$update_account", "$user_id": "u1", "$name": "B"})).unwrap();
        assert!(nothing.steps.is_empty());
        assert!(nothing.not_recorded.is_some());
    }

    #[test]
    fn transactions_become_payouts_and_sales() {
        let payout = map(json!({"$type": "$transaction", "$user_id": "u1",
            "$transaction_type": "$withdrawal", "$transaction_status": "$pending",
            "$transaction_id": "t-9", "$amount": 12_340_000, "$currency_code": "usd"}))
        .unwrap();
        let event = &payout.steps[0].event;
        assert_eq!(
            (
                &event["type"],
                &event["payout_id"],
                &event["amount"],
                &event["currency"]
            ),
            (&json!("payout"), &json!("t-9"), &json!(1234), &json!("USD"))
        );
        assert_eq!(payout.steps[0].check, Check::OncePerEventId);
        let success = map(json!({"$type": "$transaction", "$user_id": "u1",
            "$transaction_type": "$withdrawal", "$transaction_status": "$success",
            "$transaction_id": "t-9", "$amount": 12_340_000, "$currency_code": "USD"}))
        .unwrap();
        assert_eq!(
            success.steps[0].event["event_id"], event["event_id"],
            "one payout per transaction id"
        );
        let sale = map(
            json!({"$type": "$transaction", "$user_id": "buyer", "$ip": "1.2.3.4",
            "$seller_user_id": "seller", "$amount": 500_000_000, "$currency_code": "JPY"}),
        )
        .unwrap();
        assert_eq!(sale.account_id, "seller");
        let event = &sale.steps[0].event;
        assert_eq!(
            (&event["type"], &event["amount"]),
            (&json!("sale"), &json!(500))
        );
        assert!(
            event.get("ip").is_none(),
            "the buyer's address is not the seller's"
        );
        assert_eq!(event["attributes"]["sift_ip"], "1.2.3.4");
        assert_eq!(event["attributes"]["sift_user_id"], "buyer");
        let e = map(
            json!({"$type": "$transaction", "$user_id": "u1", "$amount": 1_234_567,
            "$currency_code": "USD"}),
        )
        .unwrap_err();
        assert_eq!(e.status, 53);
        assert!(e.message.contains("$amount"));
        let e = map(
            json!({"$type": "$transaction", "$user_id": "u1", "$amount": 1_000_000,
            "$currency_code": "USD", "$transaction_type": "$refund"}),
        )
        .unwrap_err();
        assert_eq!(e.status, 53);
    }

    #[test]
    fn what_is_unsupported_is_refused_with_sift_codes() {
        assert_eq!(map(json!({"$user_id": "u"})).unwrap_err().status, 55);
        assert_eq!(
            map(json!({"$type": "$create_order", "$user_id": "u"}))
                .unwrap_err()
                .status,
            53
        );
        assert_eq!(
            map(json!({"$type": "make_call", "$user_id": "u"}))
                .unwrap_err()
                .status,
            53
        );
        let e = map(json!({"$type": "$logout", "$user_id": "u", "$order_id": "o"})).unwrap_err();
        assert_eq!(e.status, 105);
        assert!(e.message.contains("$order_id"));
        let e =
            map(json!({"$type": "$logout", "$user_id": "u", "$browser": {"$x": 1}})).unwrap_err();
        assert_eq!(e.status, 105);
        assert_eq!(
            map(json!({"$type": "$logout", "$user_id": "u", "bad-name": 1}))
                .unwrap_err()
                .status,
            52
        );
        assert_eq!(
            map(json!({"$type": "$logout", "$user_id": "u", "sift_x": 1}))
                .unwrap_err()
                .status,
            52
        );
        assert_eq!(
            map(json!({"$type": "$logout", "$user_id": "u", "bank_account_number": "1"}))
                .unwrap_err()
                .status,
            53
        );
        assert_eq!(
            map(json!({"$type": "$logout", "$user_id": "u", "$ip": "nope"}))
                .unwrap_err()
                .status,
            53
        );
        assert_eq!(
            map(json!({"$type": "$login", "$user_id": "u"}))
                .unwrap_err()
                .status,
            55
        );
        assert_eq!(
            map(json!({"$type": "$logout", "$user_id": "u", "$time": "yesterday"}))
                .unwrap_err()
                .status,
            53
        );
        let mut many = json!({"$type": "$logout", "$user_id": "u"});
        for i in 0..64 {
            many[format!("field_{i}")] = json!(i);
        }
        let e = map(many).unwrap_err();
        assert_eq!(e.status, 53);
        assert!(e.message.contains("64"), "{}", e.message);
    }

    #[test]
    fn custom_fields_keep_the_limits_of_v1_events() {
        // 126 levels deep was accepted and then could not be read back.
        let mut deep = json!(1);
        for _ in 0..126 {
            deep = json!({ "n": deep });
        }
        let e = map(json!({"$type": "$logout", "$user_id": "u", "deep": deep})).unwrap_err();
        assert_eq!(e.status, 53);
        assert!(e.message.starts_with("`deep.n.n"), "{}", e.message);
        assert!(
            e.message.contains("nest more than 16 deep"),
            "{}",
            e.message
        );
        // A reserved field kept as an attribute is named as sent.
        let e = map(json!({"$type": "$logout", "$user_id": "u", "$brand_name": "x".repeat(3000)}))
            .unwrap_err();
        assert_eq!(e.status, 53);
        assert!(e.message.starts_with("`$brand_name`"), "{}", e.message);
        // The bank-number rule is the one `/v1` applies, camel case included.
        let e = map(json!({"$type": "$logout", "$user_id": "u", "bankAccountNumber": "1"}))
            .unwrap_err();
        assert_eq!(e.status, 53);
        assert!(e.message.contains("never stores"), "{}", e.message);
        let ok = map(json!({"$type": "$logout", "$user_id": "u", "shallow": {"a": [1, 2]}}));
        assert!(ok.is_ok());
    }

    #[test]
    fn labels_map_by_abuse_type() {
        assert_eq!(
            label_kind("account_takeover", true),
            Some("compromise_reported")
        );
        assert_eq!(label_kind("payment_abuse", true), Some("fraud"));
        assert_eq!(label_kind("legacy", false), Some("legit"));
        assert_eq!(label_kind("content_abuse", true), None);
        let body = json!({"$type": "$label", "$api_key": "k", "$is_bad": true,
            "$abuse_type": "account_takeover", "$analyst": "ana@example.com",
            "$description": "seller called"});
        let plan = map_label(body.as_object().unwrap(), "u1", NOW).unwrap();
        let event = &plan.steps[0].event;
        assert_eq!(
            (&event["type"], &event["label"], &event["analyst"]),
            (
                &json!("label"),
                &json!("compromise_reported"),
                &json!("ana@example.com")
            )
        );
        assert_eq!(event["attributes"]["sift_abuse_type"], "account_takeover");
        assert_eq!(event["attributes"]["sift_description"], "seller called");
        let missing = json!({"$abuse_type": "payment_abuse"});
        assert_eq!(
            map_label(missing.as_object().unwrap(), "u1", NOW)
                .unwrap_err()
                .status,
            55
        );
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(minor_unit_digits("USD"), 2);
        assert_eq!(minor_unit_digits("JPY"), 0);
        assert_eq!(minor_unit_digits("KWD"), 3);
        assert_eq!(
            Check::normalize("sift_phone", "+1 (415) 555-6040"),
            "14155556040"
        );
        assert_eq!(
            Check::normalize("sift_user_email", " A@Example.com"),
            "a@example.com"
        );
    }
}
