//! The seeds of the `event` and `sift` fuzz targets (`fuzz/corpus/`), run on
//! stable Rust through the targets' own checks (`fuzz/src/`), so a seed added
//! there is checked by `cargo test` too. Seed names set what is expected:
//! `ok-` and `doc-` seeds must be accepted (and round-trip), `bad-` seeds
//! refused, others (`found-`, inputs the fuzzer found) need only not break
//! anything.

use std::path::{Path, PathBuf};

#[path = "../../../../fuzz/src/event_input.rs"]
mod event_input;
#[path = "../../../../fuzz/src/sift_input.rs"]
mod sift_input;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

fn expected(name: &str) -> Option<bool> {
    if name.starts_with("ok-") || name.starts_with("doc-") {
        Some(true)
    } else if name.starts_with("bad-") {
        Some(false)
    } else {
        None
    }
}

#[test]
fn event_corpus_runs_cleanly() {
    use event_input::Outcome;
    let seeds = seeds("event");
    assert!(seeds.len() >= 20, "only {} event seeds", seeds.len());
    for (name, data) in seeds {
        let outcome = event_input::check(&data);
        match expected(&name) {
            Some(true) => assert_eq!(outcome, Outcome::RoundTrips, "seed {name}"),
            Some(false) => assert_ne!(outcome, Outcome::RoundTrips, "seed {name}"),
            None => {}
        }
    }
}

#[test]
fn sift_corpus_runs_cleanly() {
    use sift_input::Outcome;
    let seeds = seeds("sift");
    assert!(seeds.len() >= 10, "only {} sift seeds", seeds.len());
    for (name, data) in seeds {
        let outcome = sift_input::check(&data);
        let recorded = match outcome {
            Outcome::Translated { recorded, refused } => refused == 0 && recorded > 0,
            Outcome::Refused(_) => false,
        };
        if let Some(want) = expected(&name) {
            assert_eq!(recorded, want, "seed {name}: {outcome:?}");
        }
    }
}
