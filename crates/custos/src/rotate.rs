//! `custos tokens rotate`: moves a stopped instance's data to a new
//! destination token key.
//!
//! Raw account numbers are never stored, so stored tokens cannot be
//! recomputed from the store alone: the platform supplies its own list of
//! destination numbers (the file `custos tokens match` reads), and each
//! number gives the pair (token under the current key, token under the new
//! key). Every stored text that quotes a token (the events, their decisions
//! with reasons and effects, rule-set versions with their destination
//! lists, the webhook outbox) is rewritten with the pairs; everything else
//! about the destination (institution, last four digits, sealed holder
//! name) stays as it was.
//!
//! The old data directory is only read. The result is written under a
//! temporary name beside `--out`: the store copied consistently and
//! rewritten in one transaction without its snapshots
//! (`custos_store::rewrite`), the new key's id recorded, the console's
//! database and the other files copied (never the old token key), then
//! opened once with the new key, which rebuilds every account, destination
//! and campaign from the rewritten log and writes a fresh snapshot; only
//! then is it renamed to `--out`. A failure at any step leaves no `--out`.
//!
//! A token that no number maps to is refused unless `--allow-unmatched`
//! keeps it as it is: such a destination then no longer matches itself,
//! so it looks new if it ever comes again. Tokens are recognised by their
//! shape (`tk_` and 32 hex digits); tokens a platform sent itself in
//! another shape (`account_token`) were not made with the key and are left
//! alone.
//!
//! `--new-pii-key-file` (or `CUSTOS_NEW_PII_KEY`) moves the key that seals
//! personal values in the same pass ([`PiiRotation`]): each sealed value is
//! opened with the current PII key and sealed again with the new one, and
//! the new key's id recorded; a sealed value the current key does not open
//! stops the rotation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use custos_config::{DATABASE_FILE, PII_KEY_FILE, TOKEN_KEY_FILE};
use custos_core::pii::SEALED_PREFIX;
use custos_core::{DestinationTokenizer, PiiCipher};
use custos_server::console::db::CONSOLE_DATABASE_FILE;
use serde_json::{Value, json};

use crate::evidence::{DataDirArgs, for_each_number, load_config, written_token};

/// Where the new key is read from when `--new-key-file` is not given.
const NEW_KEY_ENV: &str = "CUSTOS_NEW_TOKEN_KEY";
/// Where a new PII key is read from when `--new-pii-key-file` is not given.
const NEW_PII_KEY_ENV: &str = "CUSTOS_NEW_PII_KEY";

/// Unmatched tokens named in the refusal; the count says how many more.
const UNMATCHED_SHOWN: usize = 5;

#[derive(clap::Args)]
pub struct RotateArgs {
    /// CSV of institution_id,account_number (a header line is allowed):
    /// every destination number the platform knows, as for `tokens match`.
    #[arg(long)]
    numbers: PathBuf,
    /// The new data directory to write; it must not exist or be empty.
    #[arg(long)]
    out: PathBuf,
    /// A file holding the new destination token key (at least 16 bytes of
    /// text, surrounding whitespace ignored). Without it the key is read
    /// from CUSTOS_NEW_TOKEN_KEY.
    #[arg(long)]
    new_key_file: Option<PathBuf>,
    /// Keep stored tokens that no number of the file maps to as they are
    /// (those destinations then look new if they ever come again); without
    /// it they are refused.
    #[arg(long)]
    allow_unmatched: bool,
    /// Also move the key that seals personal values to a new one, read
    /// from this file (or from CUSTOS_NEW_PII_KEY): every sealed value is
    /// opened with the current PII key and sealed again with the new one.
    #[arg(long)]
    new_pii_key_file: Option<PathBuf>,
    #[command(flatten)]
    dir: DataDirArgs,
}

pub fn run(args: RotateArgs) -> anyhow::Result<()> {
    let config = load_config(&args.dir)?;
    if config.store.postgres_url().is_some() {
        bail!(
            "store.url: this instance keeps its log in PostgreSQL; custos tokens rotate \
             rewrites the embedded store only (docs/operations.md, \"Keys\")"
        );
    }
    let data_dir = &config.data_dir;
    let database = data_dir.join(DATABASE_FILE);
    if !database.is_file() {
        bail!(
            "{} holds no store: name the data directory to rotate",
            data_dir.display()
        );
    }
    refuse_if_in_use(&database)?;
    let out = prepare_out(&args.out, data_dir)?;

    // The current key, loaded as a start would, but never generated: a
    // key made now would match nothing stored.
    let key_in_data_dir =
        config.destination_token_key.is_none() && config.secrets.token_key_file.is_none();
    if key_in_data_dir && !data_dir.join(TOKEN_KEY_FILE).is_file() {
        bail!(
            "{} holds no destination token key and none is configured: give the key the \
             store was written with (CUSTOS_TOKEN_KEY or secrets.token_key_file)",
            data_dir.display()
        );
    }
    let current = custos_config::load_token_key(&config)?;
    let facts = custos_store::rewrite::inspect(&database, &[custos_runtime::TOKEN_KEY_META])?;
    match facts.meta.first().cloned().flatten() {
        None => bail!(
            "{} records no destination token key id: start custos on it once, then rotate",
            database.display()
        ),
        Some(stored) if stored != current.key_id() => bail!(
            "the current destination token key (id {}) is not the one this store was written \
             with (id {stored}): rotate with the key the server runs with",
            current.key_id()
        ),
        Some(_) => {}
    }
    let new_key = read_key(args.new_key_file.as_deref(), NEW_KEY_ENV, "--new-key-file")?
        .ok_or_else(|| {
            anyhow!("give the new destination token key: --new-key-file FILE or {NEW_KEY_ENV}")
        })?;
    let new = DestinationTokenizer::new(new_key.as_bytes())
        .map_err(|e| anyhow!("the new destination token key: {e}"))?;
    if new.key_id() == current.key_id() {
        bail!(
            "the new destination token key is the current one (id {}): nothing to rotate",
            new.key_id()
        );
    }

    let mut pii = match read_key(
        args.new_pii_key_file.as_deref(),
        NEW_PII_KEY_ENV,
        "--new-pii-key-file",
    )? {
        Some(new_pii_key) => Some(PiiRotation::prepare(&config, &database, new_pii_key)?),
        None => None,
    };

    // Old token → new token; the numbers themselves are dropped line by line.
    let mut pairs: HashMap<String, String> = HashMap::new();
    let mut numbers = 0u64;
    for_each_number(&args.numbers, |line, institution, number| {
        let (_, old_token) = written_token(&current, &args.numbers, line, institution, number)?;
        let (_, new_token) = written_token(&new, &args.numbers, line, institution, number)?;
        pairs.insert(old_token, new_token);
        numbers += 1;
        Ok(())
    })?;

    let mut meta = vec![(custos_runtime::TOKEN_KEY_META, new.key_id().to_string())];
    if let Some(pii) = &pii {
        meta.push((custos_runtime::PII_KEY_META, pii.new.key_id().to_string()));
    }
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let parent = out.parent().unwrap_or(Path::new("."));
    let work = tempfile::Builder::new()
        .prefix(".custos-rotate-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let mut replaced: HashSet<String> = HashSet::new();
    let mut unmatched: BTreeSet<String> = BTreeSet::new();
    let stats = custos_store::rewrite::rewrite_copy(
        &database,
        &work.path().join(DATABASE_FILE),
        &mut |text| {
            let tokens = rewrite_tokens(text, |token| match pairs.get(token) {
                Some(new_token) => {
                    if !replaced.contains(token) {
                        replaced.insert(token.to_string());
                    }
                    Some(new_token.as_str())
                }
                None => {
                    if !unmatched.contains(token) {
                        unmatched.insert(token.to_string());
                    }
                    None
                }
            });
            match &mut pii {
                None => tokens,
                Some(pii) => pii.reseal(tokens.as_deref().unwrap_or(text)).or(tokens),
            }
        },
        &meta,
    )
    .context("rewriting the store")?;
    if let Some(pii) = pii.as_ref().filter(|p| p.unopened > 0) {
        bail!(
            "{} sealed value(s) in the store do not open with the current pii key: give the \
             key the store was sealed with; nothing was written",
            pii.unopened
        );
    }
    if !unmatched.is_empty() && !args.allow_unmatched {
        let shown: Vec<&str> = unmatched
            .iter()
            .take(UNMATCHED_SHOWN)
            .map(String::as_str)
            .collect();
        bail!(
            "{} stored destination token(s) match no number of {} ({}{}): add the numbers of \
             those destinations, or give --allow-unmatched to keep them as they are (they then \
             look new if they ever come again); nothing was written",
            unmatched.len(),
            args.numbers.display(),
            shown.join(", "),
            if unmatched.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }

    let console = data_dir.join(CONSOLE_DATABASE_FILE);
    if console.is_file() {
        custos_store::rewrite::copy_untouched(&console, &work.path().join(CONSOLE_DATABASE_FILE))
            .context("copying the console's database")?;
    }
    let old_key_file = config
        .secrets
        .token_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join(TOKEN_KEY_FILE));
    let mut left_behind = vec![old_key_file];
    if let Some(pii) = &pii {
        left_behind.push(pii.old_key_file.clone());
    }
    copy_other_files(data_dir, work.path(), &left_behind)?;
    if key_in_data_dir {
        // The instance finds its key in the data directory: so it finds
        // the new one in the new directory, with the same warning at start.
        write_private(&work.path().join(TOKEN_KEY_FILE), new_key.as_bytes())?;
    }
    if let Some(pii) = pii.as_ref().filter(|p| p.in_data_dir) {
        write_private(&work.path().join(PII_KEY_FILE), pii.new_key.as_bytes())?;
    }

    // Opened once with the new key: the rewritten log replays into every
    // account, destination and campaign, and the snapshot written at
    // shutdown spares the first real start the full replay.
    let mut check = config.clone();
    check.data_dir = work.path().to_path_buf();
    check.destination_token_key = Some(new_key.clone());
    check.secrets.token_key_file = None;
    check.rules.dir = None;
    check.rules.removal_override = None;
    if let Some(pii) = &pii {
        check.secrets.pii_key = Some(pii.new_key.clone());
        check.secrets.pii_key_file = None;
    }
    let runtime = custos_runtime::open(&check, custos_store::SqliteOptions::default())
        .context("the rotated store did not open with the new key")?;
    let engine = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting a reader")?
        .block_on(runtime.stats());
    runtime
        .shutdown_blocking()
        .context("closing the rotated store")?;
    drop(runtime);
    let engine = engine.context("reading the rebuilt state")?;

    sync_tree(work.path())?;
    let work = work.keep();
    if out.exists() {
        // Checked empty above; rename does not replace a directory.
        std::fs::remove_dir(&out).with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::rename(&work, &out)
        .with_context(|| format!("cannot rename {} to {}", work.display(), out.display()))?;
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", parent.display()))?;

    let summary = json!({
        "out": out.display().to_string(),
        "events": stats.events,
        "last_seq": engine.last_seq,
        "accounts": engine.accounts,
        "old_key_id": current.key_id(),
        "new_key_id": new.key_id(),
        "numbers": numbers,
        "numbers_not_in_store": pairs.len() - replaced.len(),
        "tokens_replaced": replaced.len(),
        "tokens_kept": unmatched.len(),
        "events_rewritten": stats.events_rewritten,
        "decisions_rewritten": stats.decisions_rewritten,
        "rule_sets_rewritten": stats.rule_sets_rewritten,
        "webhooks_rewritten": stats.webhooks_rewritten,
        "snapshots_dropped": stats.snapshots_dropped,
        "new_key_in_data_dir": key_in_data_dir,
        "new_pii_key_id": pii.as_ref().map(|p| p.new.key_id().to_string()),
        "sealed_values_resealed": pii.as_ref().map_or(0, |p| p.resealed.len()),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if !unmatched.is_empty() {
        eprintln!(
            "kept {} token(s) no number maps to: those destinations look new if they come again",
            unmatched.len()
        );
    }
    if key_in_data_dir {
        eprintln!(
            "the new key is in {}; start custos on {} (the old directory and key are untouched)",
            out.join(TOKEN_KEY_FILE).display(),
            out.display()
        );
    } else {
        eprintln!(
            "start custos on {} with the new key in CUSTOS_TOKEN_KEY or secrets.token_key_file; \
             the old directory and key are untouched",
            out.display()
        );
    }
    Ok(())
}

/// A new key: from `file` (trimmed, like `[secrets]` key files) or from
/// the environment variable `env` (as is, like `CUSTOS_TOKEN_KEY`), not
/// both; `None` when neither is given.
fn read_key(file: Option<&Path>, env: &str, flag: &str) -> anyhow::Result<Option<String>> {
    let from_env = std::env::var(env).ok().filter(|k| !k.is_empty());
    match (file, from_env) {
        (Some(_), Some(_)) => bail!("give the new key once: {flag} or {env}, not both"),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{flag}: cannot read {}", path.display()))?;
            let key = text.trim();
            if key.is_empty() {
                bail!("{flag}: {} is empty", path.display());
            }
            Ok(Some(key.to_string()))
        }
        (None, from_env) => Ok(from_env),
    }
}

/// Moving the sealed personal values to a new PII key, alongside the
/// tokens: each sealed value (`enc:v1:`) of a stored text is opened with
/// the current key under the name of the field it is the value of (its
/// associated data) and sealed again with the new key. Sealing is
/// deterministic, so one value sealed in many places maps to one new
/// sealed value, and the text is rewritten as stored, nothing else moved.
struct PiiRotation {
    current: PiiCipher,
    new: PiiCipher,
    new_key: String,
    /// The current key lives in the data directory (not configured).
    in_data_dir: bool,
    old_key_file: PathBuf,
    /// Old sealed value → new sealed value.
    resealed: HashMap<String, String>,
    /// Sealed values that did not open with the current key.
    unopened: u64,
}

impl PiiRotation {
    fn prepare(
        config: &custos_config::Config,
        database: &Path,
        new_key: String,
    ) -> anyhow::Result<PiiRotation> {
        let configured = config.secrets.pii_key.is_some() || config.secrets.pii_key_file.is_some();
        let old_key_file = config
            .secrets
            .pii_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(PII_KEY_FILE));
        if !configured && !old_key_file.is_file() {
            bail!(
                "{} holds no pii key and none is configured: give the key the store was \
                 sealed with (CUSTOS_PII_KEY or secrets.pii_key_file)",
                config.data_dir.display()
            );
        }
        // Both keys exist by now: loading them creates nothing.
        let current = custos_runtime::secrets::load_secrets(config)?.pii;
        let facts = custos_store::rewrite::inspect(database, &[custos_runtime::PII_KEY_META])?;
        match facts.meta.first().cloned().flatten() {
            None => bail!(
                "{} records no pii key id: start custos on it once, then rotate",
                database.display()
            ),
            Some(stored) if stored != current.key_id() => bail!(
                "the current pii key (id {}) is not the one this store was sealed with \
                 (id {stored}): rotate with the key the server runs with",
                current.key_id()
            ),
            Some(_) => {}
        }
        let new =
            PiiCipher::new(new_key.as_bytes()).map_err(|e| anyhow!("the new pii key: {e}"))?;
        if new.key_id() == current.key_id() {
            bail!(
                "the new pii key is the current one (id {}): nothing to rotate",
                new.key_id()
            );
        }
        Ok(PiiRotation {
            current,
            new,
            new_key,
            in_data_dir: !configured,
            old_key_file,
            resealed: HashMap::new(),
            unopened: 0,
        })
    }

    /// `text` with its sealed values sealed with the new key, or `None`
    /// when it holds none.
    fn reseal(&mut self, text: &str) -> Option<String> {
        if !text.contains(SEALED_PREFIX) {
            return None;
        }
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            self.unopened += 1;
            return None;
        };
        let mut found = Vec::new();
        sealed_values(None, &value, &mut found);
        let mut out: Option<String> = None;
        for (field, sealed) in found {
            let resealed = match self.resealed.get(sealed) {
                Some(resealed) => resealed.clone(),
                None => {
                    let opened = field.and_then(|f| Some((f, self.current.open_value(f, sealed)?)));
                    let Some(resealed) = opened.and_then(|(field, clear)| {
                        self.new
                            .seal_value(field, &clear)
                            .as_str()
                            .map(String::from)
                    }) else {
                        self.unopened += 1;
                        continue;
                    };
                    self.resealed.insert(sealed.to_string(), resealed.clone());
                    resealed
                }
            };
            let text = out.get_or_insert_with(|| text.to_string());
            *text = text.replace(&format!("\"{sealed}\""), &format!("\"{resealed}\""));
        }
        out
    }
}

/// Every sealed string under `value`, with the name of the field it is
/// the value of (in an array, the array's field).
fn sealed_values<'a>(
    field: Option<&'a str>,
    value: &'a Value,
    found: &mut Vec<(Option<&'a str>, &'a str)>,
) {
    match value {
        Value::String(text) if text.starts_with(SEALED_PREFIX) => found.push((field, text)),
        Value::Object(map) => {
            for (key, inner) in map {
                sealed_values(Some(key), inner, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                sealed_values(field, item, found);
            }
        }
        _ => {}
    }
}

/// A server keeps the store's write-ahead log open and never empty while
/// it runs; a clean stop empties it. Rotating a store that is still being
/// written would lose whatever is decided after the copy.
fn refuse_if_in_use(database: &Path) -> anyhow::Result<()> {
    let mut wal = database.as_os_str().to_os_string();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        bail!(
            "{} is not empty: a server may be running on this data directory; stop it first \
             (after a crash, start and stop it once)",
            wal.display()
        );
    }
    Ok(())
}

/// `--out` made absolute: it must not exist or be an empty directory, and
/// must lie outside the data directory.
fn prepare_out(out: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let out = std::path::absolute(out)
        .with_context(|| format!("--out: cannot resolve {}", out.display()))?;
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(&out)
                .with_context(|| format!("--out: cannot read {}", out.display()))?
                .next()
                .is_none();
        if !empty {
            bail!(
                "--out: {} exists and is not an empty directory; name a new directory",
                out.display()
            );
        }
    }
    let parent = out
        .parent()
        .ok_or_else(|| anyhow!("--out: {} has no parent directory", out.display()))?;
    if !parent.is_dir() {
        bail!("--out: {} does not exist", parent.display());
    }
    let data = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let parent = parent
        .canonicalize()
        .with_context(|| format!("--out: cannot resolve {}", parent.display()))?;
    if parent.starts_with(&data) {
        bail!(
            "--out: {} is inside the data directory; name a directory outside it",
            out.display()
        );
    }
    Ok(out)
}

/// Copies the data directory's other files and folders (the PII key and
/// the evidence signing key when they live there, anything else kept
/// beside the data), but neither database, which are copied consistently
/// by their own means, nor the old keys being replaced.
fn copy_other_files(from: &Path, to: &Path, old_keys: &[PathBuf]) -> anyhow::Result<()> {
    let skipped: Vec<String> = [DATABASE_FILE, CONSOLE_DATABASE_FILE]
        .iter()
        .flat_map(|db| {
            // `-events`: the store's event log, which the copy carries in
            // its `events` table instead.
            ["", "-wal", "-shm", "-journal", "-events"]
                .iter()
                .map(move |suffix| format!("{db}{suffix}"))
        })
        .collect();
    let old_keys: Vec<PathBuf> = old_keys
        .iter()
        .filter_map(|k| k.canonicalize().ok())
        .collect();
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let name = entry.file_name();
        if skipped.iter().any(|s| name.as_os_str() == s.as_str()) {
            continue;
        }
        let path = entry.path();
        if path.canonicalize().is_ok_and(|p| old_keys.contains(&p)) {
            continue;
        }
        copy_entry(&path, &to.join(&name))?;
    }
    Ok(())
}

fn copy_entry(from: &Path, to: &Path) -> anyhow::Result<()> {
    let kind =
        std::fs::metadata(from).with_context(|| format!("cannot read {}", from.display()))?;
    if kind.is_dir() {
        std::fs::create_dir(to).with_context(|| format!("cannot create {}", to.display()))?;
        for entry in
            std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
            copy_entry(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if kind.is_file() {
        // Permissions come along: a key file stays readable by its owner only.
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Writes a new file readable by its owner only, synced.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Syncs every file and directory under `dir`, so that the rename that
/// publishes it publishes finished files.
fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot sync {}", path.display()))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Length of a token after its `tk_` prefix: 128 bits in hex
/// (`custos_core::DestinationTokenizer::token`).
const TOKEN_HEX_DIGITS: usize = 32;

/// `text` with every token `lookup` knows replaced by its answer, or `None`
/// when nothing was replaced. A token is `tk_` and 32 lowercase hex digits
/// standing alone (no letter, digit or `_` touching it), wherever it is:
/// a field, a list in a rule's source, a reason's message. Tokens have no
/// character JSON escapes, so the text is rewritten as it is stored.
fn rewrite_tokens<'a>(
    text: &str,
    mut lookup: impl FnMut(&str) -> Option<&'a str>,
) -> Option<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out: Option<String> = None;
    let mut copied = 0;
    for (at, _) in text.match_indices("tk_") {
        let end = at + 3 + TOKEN_HEX_DIGITS;
        if end > bytes.len() {
            break;
        }
        if (at > 0 && word(bytes[at - 1]))
            || (end < bytes.len() && word(bytes[end]))
            || !bytes[at + 3..end]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            continue;
        }
        if let Some(new_token) = lookup(&text[at..end]) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..at]);
            out.push_str(new_token);
            copied = end;
        }
    }
    out.map(|mut out| {
        out.push_str(&text[copied..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "tk_0123456789abcdef0123456789abcdef";
    const NEW: &str = "tk_fedcba9876543210fedcba9876543210";

    fn with_pairs(text: &str) -> (Option<String>, Vec<String>) {
        let mut asked = Vec::new();
        let out = rewrite_tokens(text, |token| {
            asked.push(token.to_string());
            (token == OLD).then_some(NEW)
        });
        (out, asked)
    }

    #[test]
    fn every_standing_token_is_looked_up_and_only_known_ones_are_replaced() {
        let other = "tk_11111111111111111111111111111111";
        let text = format!(
            r#"{{"account_token":"{OLD}","saw":{{"list":["{other}","{OLD}"]}},"msg":"to {OLD}."}}"#
        );
        let (out, asked) = with_pairs(&text);
        assert_eq!(
            out.unwrap(),
            format!(
                r#"{{"account_token":"{NEW}","saw":{{"list":["{other}","{NEW}"]}},"msg":"to {NEW}."}}"#
            )
        );
        assert_eq!(asked, [OLD, other, OLD, OLD]);
    }

    fn pii_rotation(current: &str, new: &str) -> PiiRotation {
        PiiRotation {
            current: PiiCipher::new(current.as_bytes()).unwrap(),
            new: PiiCipher::new(new.as_bytes()).unwrap(),
            new_key: new.into(),
            in_data_dir: false,
            old_key_file: PathBuf::new(),
            resealed: HashMap::new(),
            unopened: 0,
        }
    }

    #[test]
    fn sealed_values_are_sealed_again_under_their_field_and_the_rest_is_kept() {
        let old = PiiCipher::new(b"old-pii-key-0123456789").unwrap();
        let new = PiiCipher::new(b"new-pii-key-0123456789").unwrap();
        let name = old.seal_value("holder_name", &json!("Jane Smith"));
        let email = old.seal_value("email", &json!("jane@example.com"));
        let text = format!(
            r#"{{"destination":{{"holder_name":{name},"account_token":"{OLD}"}},"attributes":{{"contacts":[{{"email":{email}}}],"plan":"pro"}}}}"#
        );
        let mut rotation = pii_rotation("old-pii-key-0123456789", "new-pii-key-0123456789");
        let out = rotation.reseal(&text).unwrap();
        let value: Value = serde_json::from_str(&out).unwrap();
        let new_name = value["destination"]["holder_name"].as_str().unwrap();
        let new_email = value["attributes"]["contacts"][0]["email"]
            .as_str()
            .unwrap();
        assert_eq!(
            new.open_value("holder_name", new_name),
            Some(json!("Jane Smith"))
        );
        assert_eq!(
            new.open_value("email", new_email),
            Some(json!("jane@example.com"))
        );
        assert_eq!(old.open_value("holder_name", new_name), None);
        assert_eq!(
            out.replace(new_name, "N").replace(new_email, "E"),
            text.replace(name.as_str().unwrap(), "N")
                .replace(email.as_str().unwrap(), "E"),
            "nothing else changes"
        );
        assert_eq!((rotation.resealed.len(), rotation.unopened), (2, 0));
        assert_eq!(rotation.reseal(r#"{"plan":"pro"}"#), None);

        let mut wrong = pii_rotation("another-pii-key-0123456789", "new-pii-key-0123456789");
        assert_eq!(wrong.reseal(&text), None);
        assert_eq!(wrong.unopened, 2);
    }

    #[test]
    fn look_alikes_are_left_alone_and_nothing_replaced_is_none() {
        for text in [
            format!("x{OLD}"),                            // part of a longer word
            format!("{OLD}0"),                            // one digit too many
            format!("{OLD}_"),                            // touching an underscore
            OLD[..34].to_string(),                        // one digit short, at the end
            OLD.to_uppercase(),                           // not lowercase
            "tk_0123456789abcdeg0123456789abcdef".into(), // not hex
            "hn_0123456789abcdef".into(),                 // a holder-name token
        ] {
            let (out, asked) = with_pairs(&text);
            assert_eq!(out, None, "{text}");
            assert!(asked.is_empty(), "{text}: {asked:?}");
        }
        let (out, asked) = with_pairs("tk_22222222222222222222222222222222 only");
        assert_eq!(out, None);
        assert_eq!(asked.len(), 1);
    }
}
