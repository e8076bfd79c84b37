//! Reading a rules directory (like the repository's `rules/`) into one
//! rule-set source: `ruleset.toml`, the rule files beside it and the list
//! files under `lists/`. `custos serve --rules`, `custos rules check` and
//! the backtest all read directories this way, so a directory that passes
//! the check is exactly what the server installs.
//!
//! Only reading happens here; compiling and type-checking is
//! [`RuleFiles::check`] in the core.

use std::path::Path;

use custos_core::rules::{RuleFiles, RuleSetError, RuleSetSource};

/// Largest file read from a rules directory.
const MAX_RULE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a rules directory (`ruleset.toml`, rule files, list files) into
/// one source.
pub fn load_rules_dir(dir: &Path) -> Result<RuleSetSource, LoadRulesError> {
    let mut files = RuleFiles::default();
    read_dir_into(dir, dir, &mut files, 0)?;
    Ok(files.check()?)
}

#[derive(Debug, thiserror::Error)]
pub enum LoadRulesError {
    #[error("cannot read the rules in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_RULE_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{0}")]
    Invalid(#[from] RuleSetError),
}

fn read_dir_into(
    root: &Path,
    dir: &Path,
    files: &mut RuleFiles,
    depth: u32,
) -> Result<(), LoadRulesError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| LoadRulesError::Io { path, source }
    };
    // Rule directories are shallow: `lists/` at most. Deeper trees are
    // not read, which also keeps a symlink loop from spinning.
    if depth > 2 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(io(&path))?;
        if meta.is_dir() {
            read_dir_into(root, &path, files, depth + 1)?;
            continue;
        }
        if meta.len() > MAX_RULE_FILE_BYTES {
            return Err(LoadRulesError::TooLarge {
                path: path.display().to_string(),
            });
        }
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if relative.ends_with(".toml") || relative.ends_with(".txt") {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            files.files.push((relative, text));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_rules_are_the_built_in_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let source = load_rules_dir(&dir).unwrap();
        assert!(source == custos_core::rules::default_source());
    }

    #[test]
    fn unreadable_and_oversized_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_rules_dir(&missing).unwrap_err();
        assert!(matches!(err, LoadRulesError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        // Sparse: no 16 MB are written.
        let big = std::fs::File::create(dir.path().join("ruleset.toml")).unwrap();
        big.set_len(MAX_RULE_FILE_BYTES + 1).unwrap();
        let err = load_rules_dir(dir.path()).unwrap_err();
        assert!(matches!(err, LoadRulesError::TooLarge { .. }), "{err}");
    }
}
