//! Checking a pack: the signature over `manifest.json`, then every file's
//! SHA-256 and size against the manifest, and nothing in the archive that
//! the manifest does not name.
//!
//! The public key to check against should come from the publisher, out of
//! band (`custos evidence public-key`); without one the key written in
//! `manifest.sig` is used, which shows the pack is whole but not who made it,
//! and the report says so.

use std::collections::BTreeMap;
use std::io::Read;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::EvidenceError;
use crate::sign;

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Files whose hash matched.
    pub ok_files: Vec<String>,
    /// Everything that does not hold, one line each.
    pub failures: Vec<String>,
    /// The signature was checked against a key given by the caller.
    pub key_given: bool,
    pub public_key: Option<String>,
    pub scope: Option<serde_json::Value>,
}

impl VerifyReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One file of a pack, `None` when the pack has no such file. Reads only;
/// [`verify`] says whether the file can be trusted.
pub fn pack_file(archive: impl Read, name: &str) -> Result<Option<Vec<u8>>, EvidenceError> {
    let mut tar = tar::Archive::new(archive);
    for entry in tar
        .entries()
        .map_err(EvidenceError::io("reading the pack"))?
    {
        let mut entry = entry.map_err(EvidenceError::io("reading the pack"))?;
        let is_it = entry
            .path()
            .is_ok_and(|path| path.to_string_lossy() == name);
        if is_it {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(EvidenceError::io(format!("reading {name}")))?;
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// Verifies the pack read from `archive`; `public_key` is the publisher's,
/// as 64 hex digits.
pub fn verify(archive: impl Read, public_key: Option<&str>) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut manifest: Option<Vec<u8>> = None;
    let mut signature: Option<Vec<u8>> = None;
    // name → (sha256, bytes) of every other entry, hashed as it streams.
    let mut seen: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    let entries = match tar.entries() {
        Ok(entries) => entries,
        Err(e) => {
            report
                .failures
                .push(format!("not a readable tar archive: {e}"));
            return report;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                report.failures.push(format!("archive is damaged: {e}"));
                return report;
            }
        };
        let name = match entry.path() {
            Ok(path) => path.to_string_lossy().into_owned(),
            Err(e) => {
                report
                    .failures
                    .push(format!("an entry has no readable name: {e}"));
                continue;
            }
        };
        if name == "manifest.json" || name == sign::SIGNATURE_FILE_NAME {
            let mut bytes = Vec::new();
            if let Err(e) = entry.by_ref().take(16 << 20).read_to_end(&mut bytes) {
                report.failures.push(format!("{name}: cannot read: {e}"));
                continue;
            }
            if name == "manifest.json" {
                manifest = Some(bytes);
            } else {
                signature = Some(bytes);
            }
            continue;
        }
        let mut hasher = Sha256::new();
        match std::io::copy(&mut entry, &mut hasher) {
            Ok(bytes) => {
                if seen
                    .insert(name.clone(), (hex::encode(hasher.finalize()), bytes))
                    .is_some()
                {
                    report
                        .failures
                        .push(format!("{name}: appears twice in the archive"));
                }
            }
            Err(e) => report.failures.push(format!("{name}: cannot read: {e}")),
        }
    }
    let Some(manifest) = manifest else {
        report
            .failures
            .push("manifest.json: missing from the archive".into());
        return report;
    };
    check_signature(&mut report, &manifest, signature.as_deref(), public_key);
    let parsed: serde_json::Value = match serde_json::from_slice(&manifest) {
        Ok(v) => v,
        Err(e) => {
            report
                .failures
                .push(format!("manifest.json: not valid JSON: {e}"));
            return report;
        }
    };
    report.scope = parsed.get("scope").cloned();
    let Some(files) = parsed.get("files").and_then(|f| f.as_array()) else {
        report
            .failures
            .push("manifest.json: no list of files".into());
        return report;
    };
    let mut listed = std::collections::BTreeSet::new();
    for file in files {
        let name = file.get("name").and_then(|v| v.as_str()).unwrap_or("");
        let want = file.get("sha256").and_then(|v| v.as_str()).unwrap_or("");
        let want_bytes = file.get("bytes").and_then(|v| v.as_u64());
        listed.insert(name.to_string());
        match seen.get(name) {
            None => report.failures.push(format!(
                "{name}: named in the manifest but missing from the archive"
            )),
            Some((got, bytes)) => {
                if got != want {
                    report.failures.push(format!(
                        "{name}: SHA-256 is {got}, the manifest says {want}: the file was changed"
                    ));
                } else if want_bytes.is_some_and(|b| b != *bytes) {
                    report.failures.push(format!(
                        "{name}: {bytes} bytes, the manifest says {}",
                        want_bytes.unwrap_or_default()
                    ));
                } else {
                    report.ok_files.push(name.to_string());
                }
            }
        }
    }
    for name in seen.keys().filter(|n| !listed.contains(*n)) {
        report.failures.push(format!(
            "{name}: in the archive but not named in the manifest"
        ));
    }
    report
}

fn check_signature(
    report: &mut VerifyReport,
    manifest: &[u8],
    signature: Option<&[u8]>,
    public_key: Option<&str>,
) {
    let Some(signature) = signature else {
        report.failures.push(format!(
            "{}: missing from the archive",
            sign::SIGNATURE_FILE_NAME
        ));
        return;
    };
    let parsed: serde_json::Value = match serde_json::from_slice(signature) {
        Ok(v) => v,
        Err(e) => {
            report.failures.push(format!(
                "{}: not valid JSON: {e}",
                sign::SIGNATURE_FILE_NAME
            ));
            return;
        }
    };
    let embedded = parsed.get("public_key").and_then(|v| v.as_str());
    let key_text = match (public_key, embedded) {
        (Some(given), embedded) => {
            report.key_given = true;
            if embedded.is_some_and(|e| !e.eq_ignore_ascii_case(given.trim())) {
                report.failures.push(format!(
                    "{}: signed with another key than the one given",
                    sign::SIGNATURE_FILE_NAME
                ));
            }
            given
        }
        (None, Some(embedded)) => embedded,
        (None, None) => {
            report
                .failures
                .push(format!("{}: no public key", sign::SIGNATURE_FILE_NAME));
            return;
        }
    };
    let key: VerifyingKey = match sign::parse_public_key(key_text) {
        Ok(key) => key,
        Err(problem) => {
            report.failures.push(format!("public key: {problem}"));
            return;
        }
    };
    report.public_key = Some(hex::encode(key.to_bytes()));
    let signature_hex = parsed
        .get("signature")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if let Err(problem) = sign::check(&key, manifest, signature_hex) {
        report
            .failures
            .push(format!("{}: {problem}", sign::SIGNATURE_FILE_NAME));
    }
}
