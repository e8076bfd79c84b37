//! The check behind every doc generated from code (`docs/errors.md`'s table
//! from the error codes, `docs/keys.md`'s from the route table, and all of
//! `docs/openapi.json` from both, `openapi.rs`): a test
//! passes when the doc holds what the code renders, rewrites it under
//! `UPDATE_DOCS=1` (the prose around it is kept), and otherwise fails with
//! the text to paste.

use std::path::Path;

/// `doc` is the file under `docs/`, split into `before`, the generated
/// `found` part and `after`; `source` names what it is generated from.
pub(crate) fn check(
    doc: &str,
    source: &str,
    (before, found, after): (&str, &str, &str),
    expected: &str,
) {
    if found == expected {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(doc);
        std::fs::write(&path, format!("{before}{expected}{after}"))
            .unwrap_or_else(|e| panic!("cannot rewrite docs/{doc}: {e}"));
        return;
    }
    panic!(
        "docs/{doc} differs from {source}; replace the generated part with this \
         (or run with UPDATE_DOCS=1):\n\n{expected}"
    );
}

/// The text of `docs/{doc}`.
pub(crate) fn read(doc: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(doc);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read docs/{doc}: {e}"))
}
