//! Evidence packs: what Custos knows about a campaign or a case, in one
//! archive a receiving bank, the police or a court can read and check.
//!
//! A pack is a plain tar file holding `manifest.json`, `manifest.sig` and
//! the evidence files (`docs/evidence.md` says what each holds):
//! `summary.html`, `money-trail.csv`, `by-institution.csv`, `victims.csv`,
//! `artefacts.csv` and `events.ndjson`. The manifest names every file with
//! its SHA-256, the pack's scope, the Custos version, the rule-set versions
//! that decided the events and the time of export; `manifest.sig` is an
//! Ed25519 signature over the manifest's exact bytes ([`sign`]).
//!
//! Building ([`pack::export`]) is pure reading: a scope (a set of
//! accounts, a window and a title, from a campaign or a case as the engine
//! holds it: [`PackScope`]) and one pass, in log order, over the members'
//! stored records (`EventStore::scan_accounts`: through the account index,
//! so the rest of the log is not read). The pass streams:
//! events go straight to a temporary file, and only the members' payouts
//! and loans (the money trail) and the artefacts are kept in memory, so a
//! year of history costs disk, not memory. No HTTP and no runtime here: the
//! binary and the server fetch the campaign or case from their runtime and hand it
//! over, so both entry points build the same bytes.
//!
//! Verifying ([`verify::verify`]) recomputes every hash and checks the
//! signature, and lists each thing that does not hold.

pub mod cells;
pub mod pack;
pub mod sign;
pub mod verify;

pub use pack::{
    ExportOptions, ExportSummary, PackScope, ScopeAccount, ScopeEntry, export, export_campaign,
    export_case,
};
pub use sign::{SIGNATURE_FILE_NAME, SIGNING_KEY_FILE_NAME, load_or_create_signing_key};
pub use verify::{VerifyReport, pack_file, verify};

/// Why a pack could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the event log: {0}")]
    Store(#[from] custos_store::StoreError),
    #[error("writing {file}: {source}")]
    Csv {
        file: &'static str,
        #[source]
        source: csv::Error,
    },
    #[error("signing key {path}: {problem}")]
    Key { path: String, problem: String },
    #[error("{0}")]
    Invalid(String),
}

impl EvidenceError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvidenceError {
        let context = context.into();
        move |source| EvidenceError::Io { context, source }
    }
}

/// The pack format, named in every manifest.
pub const FORMAT: &str = "custos-evidence/1";

/// The evidence files, in the order they are archived after the manifest.
pub const FILES: [&str; 6] = [
    "summary.html",
    "money-trail.csv",
    "by-institution.csv",
    "victims.csv",
    "artefacts.csv",
    "events.ndjson",
];
