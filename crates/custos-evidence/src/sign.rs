//! The data directory's evidence signing key.
//!
//! Ed25519: small keys, deterministic signatures, and verifiable with any
//! common tool. The key is generated into the data directory on first use
//! (32 random bytes from the operating system, hex, mode 0600) and reused
//! after, so every pack of one installation verifies with one public key,
//! which `custos evidence public-key` prints for recipients.

use std::io::Write;
use std::path::Path;

pub use ed25519_dalek::SigningKey;
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};

use crate::EvidenceError;

pub const SIGNING_KEY_FILE_NAME: &str = "evidence-signing.key";
/// The signature file in every pack.
pub const SIGNATURE_FILE_NAME: &str = "manifest.sig";

/// The signing key kept in `data_dir`, created there if missing.
pub fn load_or_create_signing_key(data_dir: &Path) -> Result<SigningKey, EvidenceError> {
    let path = data_dir.join(SIGNING_KEY_FILE_NAME);
    let key_error = |problem: String| EvidenceError::Key {
        path: path.display().to_string(),
        problem,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes =
                hex::decode(text.trim()).map_err(|_| key_error("expected 64 hex digits".into()))?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| key_error("expected 64 hex digits".into()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| key_error(format!("no randomness: {e}")))?;
            std::fs::create_dir_all(data_dir).map_err(|e| key_error(e.to_string()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(|e| key_error(e.to_string()))?;
            file.write_all(hex::encode(seed).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| key_error(e.to_string()))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(key_error(e.to_string())),
    }
}

/// The public key as recipients are given it: 64 hex digits.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().to_bytes())
}

/// `manifest.sig`: the algorithm, the public key and the signature of
/// `manifest` (its exact bytes).
pub fn signature_file(key: &SigningKey, manifest: &[u8]) -> Vec<u8> {
    let signature = key.sign(manifest);
    let mut body = serde_json::to_vec_pretty(&serde_json::json!({
        "algorithm": "ed25519",
        "signed_file": "manifest.json",
        "public_key": public_key_hex(key),
        "signature": hex::encode(signature.to_bytes()),
    }))
    .expect("a JSON object of strings serializes");
    body.push(b'\n');
    body
}

/// Parses a public key given as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(text.trim()).map_err(|_| "expected 64 hex digits".to_string())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "expected 64 hex digits".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an ed25519 public key".to_string())
}

/// Checks `signature_hex` over `message` with `key`.
pub fn check(key: &VerifyingKey, message: &[u8], signature_hex: &str) -> Result<(), String> {
    let bytes =
        hex::decode(signature_hex.trim()).map_err(|_| "signature is not hex".to_string())?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| "signature is not 64 bytes".to_string())?;
    key.verify(message, &Signature::from_bytes(&bytes))
        .map_err(|_| "signature does not match manifest.json".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_to_its_owner_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_signing_key(dir.path()).expect("created");
        let again = load_or_create_signing_key(dir.path()).expect("read back");
        assert_eq!(public_key_hex(&first), public_key_hex(&again));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE_NAME))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_damaged_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SIGNING_KEY_FILE_NAME), "abc").expect("write");
        assert!(load_or_create_signing_key(dir.path()).is_err());
    }
}
