//! Where Sift's clients put the API key, and checking it.
//!
//! Sift's clients send the key three ways: `$api_key` in the JSON body
//! (events and labels), the `api_key` query parameter (score and unlabel
//! calls of older clients), and HTTP Basic with the key as the user name
//! and an empty password (current clients for score, unlabel and every v3
//! call). Whatever the route, the key is identified with
//! [`crate::auth::ApiKeys::identify`], in constant time, and the scope the
//! route table gives the route ([`Required`]) is checked with
//! [`crate::auth::authorize`], as on `/v1`. A handler calls [`authorize`]
//! as soon as it has the key, before it does anything. HTTP Basic is
//! decoded here: the workspace has no base64 crate, and decoding one header
//! does not justify one.

use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::events::Plan;
use super::{SiftError, V3Error};
use crate::AppState;
use crate::auth::{Caller, record_caller, scope_for_event_name};
use crate::error::ApiError;
use crate::routes::Required;

/// The key of an `Authorization: Basic` header: the user name, up to the
/// first `:`. `None` when there is no such header or it does not decode.
pub(crate) fn basic_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(decode_base64(encoded.trim())?).ok()?;
    let user = decoded.split(':').next().unwrap_or_default();
    (!user.is_empty()).then(|| user.to_string())
}

/// Why a Sift request was refused before its route ran.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No key, or not a configured one.
    InvalidKey,
    /// A valid key without the scope (`insufficient_scope`).
    Scope(ApiError),
}

impl From<Refused> for SiftError {
    fn from(refused: Refused) -> SiftError {
        match refused {
            Refused::InvalidKey => SiftError::invalid_key(),
            Refused::Scope(e) => SiftError::from_api(e),
        }
    }
}

impl From<Refused> for V3Error {
    fn from(refused: Refused) -> V3Error {
        match refused {
            Refused::InvalidKey => V3Error::unauthorized(),
            Refused::Scope(e) => V3Error::forbidden(e.message),
        }
    }
}

/// The caller of a presented key (if any), if it holds the route's scope.
pub(crate) fn authorize(
    state: &AppState,
    presented: Option<&str>,
    required: &Required,
) -> Result<Caller, Refused> {
    let Some(caller) = presented.and_then(|key| state.api_keys.identify(key)) else {
        tracing::debug!(
            route = required.route,
            "request refused: the api key is not valid"
        );
        return Err(Refused::InvalidKey);
    };
    record_caller(&caller);
    crate::auth::authorize(&caller, required.scope, required.route).map_err(Refused::Scope)?;
    Ok(caller)
}

/// Checks that `caller` may have the Custos events of `plan` recorded: a
/// label needs `labels:write`, an analyst action `holds:write`
/// ([`crate::auth::scope_for_event`]), whatever route they come through.
pub(crate) fn authorize_plan(caller: &Caller, plan: &Plan) -> Result<(), SiftError> {
    for step in &plan.steps {
        let Some(Value::String(event_type)) = step.event.get("type") else {
            continue;
        };
        if let Some(scope) = scope_for_event_name(event_type) {
            crate::auth::authorize(caller, scope, &format!("an event of type {event_type}"))
                .map_err(SiftError::from_api)?;
        }
    }
    Ok(())
}

/// Standard base64 (RFC 4648, `+/`), padding optional.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= sextet(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(
            decode_base64("WU9VUl9BUElfS0VZOg==").unwrap(),
            b"YOUR_API_KEY:"
        );
        assert_eq!(
            decode_base64("WU9VUl9BUElfS0VZOg").unwrap(),
            b"YOUR_API_KEY:"
        );
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("YW!j").is_none());
        assert!(decode_base64("Y").is_none());
        assert!(decode_base64("YW===").is_none());
    }

    #[test]
    fn the_key_is_the_basic_user_name() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_key(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            "Basic WU9VUl9BUElfS0VZOg==".parse().unwrap(),
        );
        assert_eq!(basic_key(&headers).as_deref(), Some("YOUR_API_KEY"));
        headers.insert(header::AUTHORIZATION, "basic YWJjOmRlZg==".parse().unwrap());
        assert_eq!(basic_key(&headers).as_deref(), Some("abc"));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer YWJjOmRlZg==".parse().unwrap(),
        );
        assert_eq!(basic_key(&headers), None);
        // ":" alone: no user name.
        headers.insert(header::AUTHORIZATION, "Basic Og==".parse().unwrap());
        assert_eq!(basic_key(&headers), None);
    }
}
