//! Keyed-hash tokens for bank account numbers.
//!
//! Custos must recognise the same mule account across sellers without ever
//! storing its number. A token is HMAC-SHA256 over the institution and the
//! account number under a secret key, truncated to 128 bits: equal inputs give
//! equal tokens, and without the key a token cannot be reversed or guessed by
//! enumerating account numbers.
//!
//! Holder names get a token of their own ([`DestinationTokenizer::holder_token`])
//! for the same reason: telling a family's shared account (one holder name,
//! whoever sets it) from a mule account (a name unlike the seller's) needs
//! names compared across sellers, and state is not sealed, so it may keep
//! only a keyed hash of the name, never the name.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Computes destination tokens; cheap to clone.
#[derive(Clone)]
pub struct DestinationTokenizer {
    mac: Hmac<Sha256>,
    key_id: String,
}

impl DestinationTokenizer {
    /// Key material must be at least 16 bytes; callers load it from config.
    pub fn new(key: &[u8]) -> Result<Self, TokenKeyError> {
        if key.len() < 16 {
            return Err(TokenKeyError::TooShort { len: key.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| TokenKeyError::Unusable)?;
        let mut id = Sha256::new();
        id.update(b"custos destination token key id\0");
        id.update(key);
        let key_id = hex::encode(&id.finalize()[..8]);
        Ok(DestinationTokenizer { mac, key_id })
    }

    /// A public identifier of the key, stored beside the data so that a
    /// restart with a different key is refused instead of silently producing
    /// tokens that match nothing.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `institution_id` and `account_number` must already be normalized.
    pub fn token(&self, institution_id: &str, account_number: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(institution_id.as_bytes());
        mac.update(b"\0");
        mac.update(account_number.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut token = String::with_capacity(3 + 32);
        token.push_str("tk_");
        token.push_str(&hex::encode(&digest[..16]));
        token
    }

    /// The token of a destination as a platform writes it down (spaces,
    /// dashes, either case), normalized the way the event parser does:
    /// `(institution_id, token)`, or `None` when either has no letters or
    /// digits. For matching a platform's own list of numbers against tokens
    /// (`custos tokens match`); the number is not kept.
    pub fn token_of_written(
        &self,
        institution_id: &str,
        account_number: &str,
    ) -> Option<(String, String)> {
        let institution = crate::parse::compact_code(institution_id);
        let number = crate::parse::compact_code(account_number);
        if institution.is_empty() || number.is_empty() {
            return None;
        }
        let token = self.token(&institution, &number);
        Some((institution, token))
    }

    /// A keyed hash of a holder name: `hn_` and 64 bits in hex, or `None`
    /// for a name without letters or digits. Case, punctuation and word
    /// order do not count ("Smith, Jane" is "JANE SMITH"); spelling does.
    /// 64 bits suffice to compare names, and a separate domain keeps a name
    /// token from ever equalling an account token.
    pub fn holder_token(&self, holder_name: &str) -> Option<String> {
        let mut words: Vec<String> = holder_name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        if words.is_empty() {
            return None;
        }
        words.sort_unstable();
        let mut mac = self.mac.clone();
        mac.update(b"holder name\0");
        mac.update(words.join(" ").as_bytes());
        let digest = mac.finalize().into_bytes();
        Some(format!("hn_{}", hex::encode(&digest[..8])))
    }
}

impl std::fmt::Debug for DestinationTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationTokenizer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenKeyError {
    #[error("destination token key is {len} bytes; at least 16 are required")]
    TooShort { len: usize },
    #[error("destination token key cannot be used for HMAC-SHA256")]
    Unusable,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_token_and_key_changes_it() {
        let a = DestinationTokenizer::new(b"0123456789abcdef-key-a").unwrap();
        let b = DestinationTokenizer::new(b"0123456789abcdef-key-b").unwrap();
        assert_eq!(a.token("200000", "12345678"), a.token("200000", "12345678"));
        assert_ne!(a.token("200000", "12345678"), a.token("200000", "12345679"));
        assert_ne!(a.token("200000", "12345678"), a.token("200001", "12345678"));
        assert_ne!(a.token("200000", "12345678"), b.token("200000", "12345678"));
        assert_ne!(a.key_id(), b.key_id());
        let token = a.token("200000", "12345678");
        assert!(token.starts_with("tk_") && token.len() == 35, "{token}");
        assert!(!token.contains("12345678"));
    }

    #[test]
    fn holder_tokens_ignore_case_punctuation_and_word_order_but_not_spelling() {
        let a = DestinationTokenizer::new(b"0123456789abcdef-key-a").unwrap();
        let b = DestinationTokenizer::new(b"0123456789abcdef-key-b").unwrap();
        let jane = a.holder_token("Jane Smith").unwrap();
        assert!(jane.starts_with("hn_") && jane.len() == 19, "{jane}");
        assert_eq!(
            a.holder_token("SMITH, jane").as_deref(),
            Some(jane.as_str())
        );
        assert_ne!(a.holder_token("Jane Smyth").unwrap(), jane);
        assert_ne!(b.holder_token("Jane Smith").unwrap(), jane);
        assert_eq!(a.holder_token(" - , "), None);
        assert!(!jane.to_lowercase().contains("smith"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(
            DestinationTokenizer::new(b"short").unwrap_err(),
            TokenKeyError::TooShort { len: 5 }
        );
    }

    #[test]
    fn a_written_number_tokenizes_like_the_parser_normalizes_it() {
        let key = [9u8; 32];
        let tokenizer = DestinationTokenizer::new(&key).unwrap();
        let parser = crate::EventParser::new(tokenizer.clone());
        let event = parser
            .parse_value(serde_json::json!({
                "event_id": "e1", "type": "payout_destination_change", "account_id": "a1",
                "time": "2024-01-01T00:00:00Z",
                "destination": {"institution_id": "gb-bank 01", "account_number": "1234 5678-ab"}
            }))
            .unwrap();
        let crate::Details::PayoutDestinationChange { destination, .. } = event.details else {
            panic!("a destination change");
        };
        let (institution, token) = tokenizer
            .token_of_written(" GB-bank01", "12345678ab")
            .unwrap();
        assert_eq!(institution, destination.institution_id);
        assert_eq!(token, destination.account_token);
        assert_eq!(tokenizer.token_of_written("GB", " - "), None);
    }
}
