//! Personal data at rest: holder names and custom fields that look personal
//! are sealed before an event is stored, and opened when it is read back.
//!
//! The engine and the rules see clear text: sealing happens only on the
//! stored copy ([`seal_event`], called when the canonical JSON is encoded)
//! and opening only when that copy is read ([`open_stored`], called by
//! [`crate::EventParser::parse_stored`] and by the routes that show stored
//! events). So a rule may compare holder names or read
//! `event.attributes.email` exactly as before, while someone who reads the
//! database file, a backup or a log of stored rows sees `enc:v1:…`.
//!
//! ## What is sealed
//!
//! - `destination.holder_name` and `previous_destination.holder_name`;
//! - in `attributes`, at any depth, the value of every key whose name looks
//!   personal ([`is_personal_name`]: name, e-mail, phone, address, birth
//!   date, national ids, ...), as a whole, whatever its JSON type.
//!
//! The list errs on the side of sealing: a sealed value costs nothing to the
//! rules (they read clear text) and only hides the field from someone who
//! queries the database directly. `docs/security.md` has the field-by-field
//! table and the threat model.
//!
//! ## The format and why the nonce is derived
//!
//! `enc:v1:` followed by base64url (no padding) of a 24-byte nonce and the
//! XChaCha20-Poly1305 ciphertext with its tag. The plaintext is the value's
//! JSON text; the associated data is the field's name, so a sealed value
//! moved to another field does not open.
//!
//! The nonce is not random: it is HMAC-SHA256 of the field name and the
//! plaintext under a key derived from the PII key, truncated to 24 bytes
//! (the SIV construction in spirit). Idempotency needs it: a resent event
//! must encode to the same stored bytes, or a retry would look like a
//! different event reusing its id. The price is that equal values in the
//! same field seal to equal text, so a reader of the database learns which
//! events share a holder name, never the name itself. Distinct plaintexts
//! get distinct nonces (with overwhelming probability), which is all that
//! XChaCha20-Poly1305 needs for confidentiality.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{Destination, Details, Event};

/// What every sealed value starts with; the version names the format.
pub const SEALED_PREFIX: &str = "enc:v1:";
/// What a sealed value is shown as when it cannot be opened (no key, or a
/// different one).
pub const REDACTED: &str = "[redacted]";

/// The associated data and nonce context of a holder name.
const HOLDER_NAME: &str = "holder_name";
const NONCE_LEN: usize = 24;

/// Seals and opens personal values; cheap to clone.
#[derive(Clone)]
pub struct PiiCipher {
    aead: XChaCha20Poly1305,
    nonce_mac: Hmac<Sha256>,
    key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiKeyError {
    #[error("pii key is {len} bytes; at least 16 are required")]
    TooShort { len: usize },
}

impl PiiCipher {
    /// Key material must be at least 16 bytes; the encryption key and the
    /// nonce key are derived from it, so a key file of any length works.
    pub fn new(key: &[u8]) -> Result<Self, PiiKeyError> {
        if key.len() < 16 {
            return Err(PiiKeyError::TooShort { len: key.len() });
        }
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("invariant: HMAC-SHA256 takes keys of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let aead = XChaCha20Poly1305::new(&derive(b"custos pii encryption key").into());
        let nonce_mac = <Hmac<Sha256> as Mac>::new_from_slice(&derive(b"custos pii nonce key"))
            .expect("invariant: HMAC-SHA256 takes keys of any length");
        let mut id = Sha256::new();
        id.update(b"custos pii key id\0");
        id.update(key);
        let key_id = hex::encode(&id.finalize()[..8]);
        Ok(PiiCipher {
            aead,
            nonce_mac,
            key_id,
        })
    }

    /// A public identifier of the key, stored beside the data so that a
    /// restart with another key is refused instead of hiding every value.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `value` stored under the field `context`.
    pub fn seal_value(&self, context: &str, value: &Value) -> Value {
        let plaintext = value.to_string();
        let mut mac = self.nonce_mac.clone();
        mac.update(context.as_bytes());
        mac.update(b"\0");
        mac.update(plaintext.as_bytes());
        let digest = mac.finalize().into_bytes();
        let nonce = XNonce::from_slice(&digest[..NONCE_LEN]);
        let ciphertext = self
            .aead
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("invariant: XChaCha20-Poly1305 encrypts any message shorter than 256 GB");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(nonce);
        bytes.extend_from_slice(&ciphertext);
        let mut sealed = String::from(SEALED_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&bytes, &mut sealed);
        Value::String(sealed)
    }

    /// Opens a value sealed under `context`; `None` when it was sealed with
    /// another key, under another field, or altered.
    pub fn open_value(&self, context: &str, sealed: &str) -> Option<Value> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

impl std::fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiCipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Whether a custom field's name says it holds personal data. Compared in
/// lower case on the name without a leading `$`, by substring, so that
/// `billing_address`, `userEmail` and `sift_phone` are all caught.
pub fn is_personal_name(name: &str) -> bool {
    const PERSONAL: &[&str] = &[
        "name",
        "mail",
        "phone",
        "mobile",
        "address",
        "street",
        "postcode",
        "postal",
        "zip",
        "dob",
        "birth",
        "ssn",
        "social_security",
        "passport",
        "national_id",
        "tax_id",
        "driver",
        "licence",
        "license",
    ];
    let lower = name.trim_start_matches('$').to_ascii_lowercase();
    PERSONAL.iter().any(|word| lower.contains(word))
}

/// The copy of `event` to store, with its personal values sealed; `None`
/// when it holds nothing to seal (most events), so the caller encodes the
/// event itself without a clone.
pub fn seal_event(cipher: &PiiCipher, event: &Event) -> Option<Event> {
    let has_holder =
        destinations(&event.details).any(|d| d.is_some_and(|d| d.holder_name.is_some()));
    if !has_holder && !event.attributes.iter().any(|(k, v)| needs_seal(k, v)) {
        return None;
    }
    let mut sealed = event.clone();
    for destination in destinations_mut(&mut sealed.details).flatten() {
        if let Some(name) = &destination.holder_name {
            let value = cipher.seal_value(HOLDER_NAME, &Value::String(name.clone()));
            destination.holder_name = value.as_str().map(String::from);
        }
    }
    for (name, value) in sealed.attributes.iter_mut() {
        seal_tree(cipher, name, value);
    }
    Some(sealed)
}

/// Opens the sealed values of a stored event in place (the stored JSON
/// object, before it is parsed or shown). A value that cannot be opened
/// (no key given, another key) becomes [`REDACTED`], so a reader never sees
/// ciphertext and never fails on it.
pub fn open_stored(cipher: Option<&PiiCipher>, event: &mut Map<String, Value>) {
    for key in ["destination", "previous_destination"] {
        if let Some(Value::Object(destination)) = event.get_mut(key)
            && let Some(holder) = destination.get_mut(HOLDER_NAME)
        {
            open_in_place(cipher, HOLDER_NAME, holder);
        }
    }
    if let Some(Value::Object(attributes)) = event.get_mut("attributes") {
        for (name, value) in attributes.iter_mut() {
            open_tree(cipher, name, value);
        }
    }
}

fn needs_seal(name: &str, value: &Value) -> bool {
    if value.is_null() {
        return false;
    }
    if is_personal_name(name) {
        return true;
    }
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| needs_seal(k, v)),
        Value::Array(items) => items.iter().any(|v| needs_seal(name, v)),
        _ => false,
    }
}

/// Seals `value` whole when `name` looks personal, else looks inside it.
fn seal_tree(cipher: &PiiCipher, name: &str, value: &mut Value) {
    for_each_personal(name, value, &mut |name, value| {
        *value = cipher.seal_value(name, value);
    });
}

fn open_tree(cipher: Option<&PiiCipher>, name: &str, value: &mut Value) {
    for_each_personal(name, value, &mut |name, value| {
        open_in_place(cipher, name, value);
    });
}

/// Calls `f` on `value` whole when `name` looks personal, else on the
/// personal values inside it; sealing and opening walk the same places.
/// Array items are looked into under the array's name, so that a list of
/// objects (`sift_payment_methods`) has its personal keys reached.
fn for_each_personal<F: FnMut(&str, &mut Value)>(name: &str, value: &mut Value, f: &mut F) {
    if value.is_null() {
        return;
    }
    if is_personal_name(name) {
        f(name, value);
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                for_each_personal(key, inner, f);
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(map) = item {
                    for (key, inner) in map.iter_mut() {
                        for_each_personal(key, inner, f);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Only strings with the prefix are opened: data stored before sealing
/// existed is clear text, and stays readable as it is.
fn open_in_place(cipher: Option<&PiiCipher>, context: &str, value: &mut Value) {
    let Value::String(text) = value else { return };
    if !text.starts_with(SEALED_PREFIX) {
        return;
    }
    *value = cipher
        .and_then(|c| c.open_value(context, text))
        .unwrap_or_else(|| Value::String(REDACTED.into()));
}

fn destinations(details: &Details) -> impl Iterator<Item = Option<&Destination>> {
    let (a, b) = match details {
        Details::PayoutDestinationChange {
            destination,
            previous_destination,
            ..
        } => (Some(destination), previous_destination.as_ref()),
        Details::Payout { destination, .. } => (destination.as_ref(), None),
        _ => (None, None),
    };
    [a, b].into_iter()
}

fn destinations_mut(details: &mut Details) -> impl Iterator<Item = Option<&mut Destination>> {
    let (a, b) = match details {
        Details::PayoutDestinationChange {
            destination,
            previous_destination,
            ..
        } => (Some(destination), previous_destination.as_mut()),
        Details::Payout { destination, .. } => (destination.as_mut(), None),
        _ => (None, None),
    };
    [a, b].into_iter()
}

#[cfg(test)]
mod tests;
