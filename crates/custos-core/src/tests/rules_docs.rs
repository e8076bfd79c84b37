//! `docs/rules.md` stays true: every readable path, every default rule and
//! every default list is documented there.

use crate::rules::{default_source, schema};

fn documented() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/rules.md"))
        .expect("docs/rules.md")
}

#[test]
fn every_readable_path_is_documented() {
    let docs = documented();
    for (path, _) in schema::all_paths() {
        assert!(
            docs.contains(&format!("`{path}`")),
            "{path} is not in docs/rules.md"
        );
    }
    assert!(docs.contains("`event.attributes.<name>`"));
}

#[test]
fn every_default_rule_and_list_is_documented() {
    let docs = documented();
    let source = default_source();
    for rule in &source.rules {
        assert!(
            docs.contains(&format!("`{}`", rule.id)),
            "rule {} is not in docs/rules.md",
            rule.id
        );
        assert!(
            !rule.description.is_empty(),
            "rule {} has no description",
            rule.id
        );
    }
    for name in source.lists.keys() {
        assert!(
            docs.contains(&format!("lists.{name}")),
            "list {name} is not in docs/rules.md"
        );
    }
}
