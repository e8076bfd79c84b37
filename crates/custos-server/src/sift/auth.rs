//! Where Sift's clients put the API key, and checking it.
//!
//! Sift's clients send the key three ways: `$api_key` in the JSON body
//! (events and labels), the `api_key` query parameter (score and unlabel
//! calls of older clients), and HTTP Basic with the key as the user name
//! and an empty password (current clients for score, unlabel and every v3
//! call). Whatever the route, the key is checked with
//! [`crate::auth::ApiKeys::accepts`], in constant time. HTTP Basic is
//! decoded here: the workspace has no base64 crate, and decoding one header
//! does not justify one.

use axum::http::{HeaderMap, header};

use crate::AppState;

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

/// Whether a presented key (if any) is one of the configured keys.
pub(crate) fn accepts(state: &AppState, presented: Option<&str>) -> bool {
    presented.is_some_and(|key| state.api_keys.accepts(key))
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
