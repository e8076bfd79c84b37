//! Signing webhooks, and the reference check for receivers.
//!
//! The scheme is Stripe's: the header
//!
//! ```text
//! Custos-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! ```
//!
//! carries the Unix time of the attempt and the hex HMAC-SHA256, keyed with
//! the endpoint's secret, of `"<t>.<raw body>"`. Signing the time with the
//! body lets a receiver refuse a captured request replayed later (outside
//! the tolerance, 300 s by default); signing the raw bytes means receivers
//! must check the body exactly as received, before parsing it.
//!
//! A header may carry several `v1=` values (for a later secret rotation);
//! one match is enough. Unknown keys are ignored, so schemes can be added.
//! Comparison is constant-time, so timing does not leak a valid signature.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Custos-Signature";
/// The header that carries the webhook's id.
pub const WEBHOOK_ID_HEADER: &str = "Custos-Webhook-Id";
/// How far a signature's time may be from the receiver's clock by default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header: {0}")]
    Malformed(&'static str),
    #[error("signature header: timestamp is {age_secs}s away from now, more than the tolerance")]
    Stale { age_secs: i64 },
    #[error("signature: no v1 signature matches the body")]
    Mismatch,
}

fn tag(secret: &[u8], timestamp: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `Custos-Signature` value for `body` sent at `timestamp` (Unix
/// seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(tag(secret, timestamp, body))
    )
}

/// Checks a `Custos-Signature` header against the raw body, as a receiver
/// must: the timestamp within `tolerance` of `now` (Unix seconds) and a
/// `v1` HMAC-SHA256 of `"<t>.<body>"` under `secret`, compared in constant
/// time.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one t"));
                }
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a Unix time"))?;
                timestamp = Some(t);
            }
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("no v1"));
    }
    let age_secs = now.saturating_sub(timestamp);
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if age_secs.unsigned_abs() > tolerance.unsigned_abs() {
        return Err(SignatureError::Stale { age_secs });
    }
    let expected = tag(secret, timestamp, body);
    let mut matched = subtle::Choice::from(0);
    for candidate in candidates {
        // A candidate that is not 64 hex digits simply does not match.
        if let Ok(bytes) = hex::decode(candidate) {
            matched |= bytes.as_slice().ct_eq(&expected);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec-test-0123456789";
    const BODY: &[u8] = br#"{"id":"7.0","type":"decision.created"}"#;
    const NOW: i64 = 1_700_000_000;

    fn check(header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
        verify_signature(SECRET, header, body, now, DEFAULT_TOLERANCE)
    }

    #[test]
    fn a_signed_body_verifies() {
        let header = sign(SECRET, NOW, BODY);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(check(&header, BODY, NOW), Ok(()));
        assert_eq!(check(&header, BODY, NOW + 300), Ok(()), "at the tolerance");
        assert_eq!(check(&header, BODY, NOW - 300), Ok(()), "clock skew");
    }

    #[test]
    fn the_signature_matches_an_independent_hmac() {
        // python3 -c 'import hmac, hashlib; print(hmac.new(b"whsec-test-0123456789",
        //   b"1700000000." + BODY, hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(SECRET, NOW, BODY),
            "t=1700000000,v1=9b4d36530e47c941bbc2b9d7250519fa3edbbfeda95c7a9d5b2d91f81de60cc7"
        );
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_fails() {
        let header = sign(SECRET, NOW, BODY);
        let tampered = br#"{"id":"7.0","type":"decision.created "}"#;
        assert_eq!(check(&header, tampered, NOW), Err(SignatureError::Mismatch));
        let other = sign(b"another-secret-0123456789", NOW, BODY);
        assert_eq!(check(&other, BODY, NOW), Err(SignatureError::Mismatch));
        // The time is signed too: moving it breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(check(&moved, BODY, NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_stale_or_future_timestamp_fails() {
        let header = sign(SECRET, NOW, BODY);
        assert_eq!(
            check(&header, BODY, NOW + 301),
            Err(SignatureError::Stale { age_secs: 301 })
        );
        assert_eq!(
            check(&header, BODY, NOW - 301),
            Err(SignatureError::Stale { age_secs: -301 })
        );
        assert_eq!(
            verify_signature(
                SECRET,
                &header,
                BODY,
                NOW + 3_600,
                Duration::from_secs(7_200)
            ),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = sign(SECRET, NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        for (header, want) in [
            ("", "expected key=value pairs"),
            ("garbage", "expected key=value pairs"),
            (&format!("v1={v1}") as &str, "no t"),
            ("t=1700000000", "no v1"),
            (&format!("t=soon,v1={v1}"), "t is not a Unix time"),
            (&format!("t=1,t=2,v1={v1}"), "more than one t"),
        ] {
            assert_eq!(
                check(header, BODY, NOW),
                Err(SignatureError::Malformed(want)),
                "{header:?}"
            );
        }
        // Not hex, or the wrong length: no match, never a panic.
        for v1 in ["zz", "abc", &v1[..62]] {
            assert_eq!(
                check(&format!("t={NOW},v1={v1}"), BODY, NOW),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn any_matching_v1_and_unknown_keys_are_accepted() {
        let good = sign(SECRET, NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW}, v0=old, v1={}, v1={v1}", "00".repeat(32));
        assert_eq!(check(&header, BODY, NOW), Ok(()));
    }
}
