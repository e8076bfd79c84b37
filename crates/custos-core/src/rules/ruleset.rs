//! Rule sets: sources (files, or a JSON or TOML document posted to the API),
//! their validation, and the compiled form that decides events.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Reason};
use crate::event::EventType;
use crate::features::FeatureSet;
use crate::types::Action;

use super::compile::{CompiledExpr, compile_condition};
use super::lists::{ListKind, NamedList};
use super::schema::EvalContext;
use super::syntax::Span;
use super::value::Value;

/// Whether a rule's verdict counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Fires into the decision.
    #[default]
    Active,
    /// Evaluated and recorded in the decision's `shadow` reasons; never
    /// changes the action or the score.
    Shadow,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSource {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The condition, in the rules language.
    pub when: String,
    pub action: Action,
    /// Added to the decision's score when the rule fires (0–100).
    #[serde(default, skip_serializing_if = "is_default")]
    pub score: u32,
    /// Higher first, in evaluation and in the decision's reasons.
    #[serde(default, skip_serializing_if = "is_default")]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Event types the rule applies to; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventType>,
}

/// A named list as written: its kind and entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSource {
    pub kind: ListKind,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub entries: Vec<String>,
}

/// A whole rule set as written: what `POST /v1/rules` takes and `GET
/// /v1/rules` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSource {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The strongest action this rule set may take, e.g. `review` while a
    /// new set is being tried out. `block` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_action: Option<Action>,
    /// How long after a sensitive change a payout hold lasts before it may
    /// be released by itself, e.g. `7d` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_cool_off: Option<String>,
    #[serde(default, rename = "rules", alias = "rule")]
    pub rules: Vec<RuleSource>,
    #[serde(default)]
    pub lists: BTreeMap<String, ListSource>,
}

fn default_name() -> String {
    "rules".to_string()
}

/// Where in a rule's source an error is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    /// 1-based line within the field (a `when` may span lines).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// One problem in a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// The file, when loaded from a directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The rule's id, when the problem is in a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The field at fault: `when`, `id`, `score`, `lists.<name>`, ...
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The source line with a caret under the spot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippet: Option<String>,
}

impl RuleError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> RuleError {
        RuleError {
            file: None,
            rule: None,
            field: field.into(),
            message: message.into(),
            position: None,
            snippet: None,
        }
    }

    fn in_rule(mut self, id: &str) -> RuleError {
        self.rule = Some(id.to_string());
        self
    }

    /// An error at `span` of `src`, with the line and a caret.
    pub fn at(field: &str, message: String, src: &str, span: Span) -> RuleError {
        let start = span.start.min(src.len());
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let line_text = &src[line_start..line_end];
        let line = src[..start].matches('\n').count() + 1;
        let column = src[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = src[start..end].chars().count().max(1);
        let gutter = " ".repeat(line.to_string().len());
        // Tabs stay tabs under the line so that the caret lines up.
        let pad: String = src[line_start..start]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let snippet = format!(
            "{gutter} |\n{line} | {line_text}\n{gutter} | {pad}{}",
            "^".repeat(width)
        );
        RuleError {
            position: Some(Position { line, column }),
            snippet: Some(snippet),
            ..RuleError::new(field, message)
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        write!(f, "{}", self.field)?;
        if let Some(p) = &self.position {
            write!(f, " (line {}, column {})", p.line, p.column)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        Ok(())
    }
}

/// Every problem found in a rule set; it is loaded only when there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSetError {
    pub errors: Vec<RuleError>,
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleSetError {}

/// One compiled rule.
pub struct Rule {
    pub source: RuleSource,
    condition: CompiledExpr,
}

impl Rule {
    /// Features the rule reads.
    pub fn features(&self) -> FeatureSet {
        self.condition.features
    }

    /// Paths the rule reads, in order of first use.
    pub fn reads(&self) -> impl Iterator<Item = &str> {
        self.condition.reads.iter().map(|r| r.path.as_str())
    }

    /// Named lists the rule uses.
    pub fn lists(&self) -> &[String] {
        &self.condition.lists
    }

    /// Evaluates the condition: fires only on `true`.
    #[inline]
    pub fn fires(&self, ctx: &EvalContext<'_>) -> bool {
        matches!((self.condition.node)(ctx), Value::Bool(true))
    }

    fn explain(&self, ctx: &EvalContext<'_>) -> Reason {
        let saw = self
            .condition
            .reads
            .iter()
            .map(|r| (r.path.clone(), (r.node)(ctx).to_json()))
            .collect();
        Reason {
            code: self.source.id.clone(),
            action: self.source.action,
            score: self.source.score,
            message: self.source.description.clone(),
            saw,
            owner_confirms: self
                .source
                .tags
                .iter()
                .any(|t| t == crate::decision::OWNER_CONFIRMS_TAG),
        }
    }
}

/// A validated, compiled rule set: immutable, shared by `Arc`, swapped
/// whole.
pub struct RuleSet {
    name: String,
    version: u64,
    max_action: Action,
    hold_cool_off_secs: i64,
    rules: Vec<Rule>,
    /// Indexes of the rules that apply to each event type, in order.
    by_type: Vec<Vec<usize>>,
    /// Features read by the rules of each event type.
    needs: Vec<FeatureSet>,
    lists: BTreeMap<String, Arc<NamedList>>,
    source: RuleSetSource,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleSet")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("rules", &self.rules.len())
            .finish()
    }
}

pub use crate::decision::MAX_SCORE;

/// The cool-off of a payout hold when the rule set names none: a week, long
/// enough for the owner to notice a notification about the change.
pub const DEFAULT_HOLD_COOL_OFF_SECS: i64 = 7 * 86_400;
/// The longest cool-off a rule set may ask for.
pub const MAX_HOLD_COOL_OFF_SECS: i64 = 365 * 86_400;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

impl RuleSet {
    /// Validates and compiles a source; `version` is recorded in every
    /// decision the set makes.
    pub fn compile(source: RuleSetSource, version: u64) -> Result<RuleSet, RuleSetError> {
        let mut errors = Vec::new();
        let mut lists = BTreeMap::new();
        for (name, list) in &source.lists {
            if !valid_id(name) {
                errors.push(RuleError::new(
                    format!("lists.{name}"),
                    "list names use lower-case letters, digits, `_`, `-` and `.`",
                ));
            }
            match NamedList::build(list.kind, list.entries.iter().map(String::as_str)) {
                Ok(built) => {
                    lists.insert(name.clone(), Arc::new(built));
                }
                Err(message) => errors.push(RuleError::new(format!("lists.{name}"), message)),
            }
        }
        let hold_cool_off_secs = match source.hold_cool_off.as_deref() {
            None => DEFAULT_HOLD_COOL_OFF_SECS,
            Some(text) => match crate::rules::syntax::parse_duration(text) {
                Some(secs) if secs > 0 && secs <= MAX_HOLD_COOL_OFF_SECS => secs,
                _ => {
                    errors.push(RuleError::new(
                        "hold_cool_off",
                        format!(
                            "{text:?} is not a duration from 1s to 365d (write it like `7d` or `36h`)"
                        ),
                    ));
                    DEFAULT_HOLD_COOL_OFF_SECS
                }
            },
        };
        let mut rules = Vec::with_capacity(source.rules.len());
        let mut seen = std::collections::HashSet::new();
        for rule in &source.rules {
            let id = rule.id.as_str();
            if !valid_id(id) {
                errors.push(
                    RuleError::new(
                        "id",
                        "rule ids are 1 to 64 lower-case letters, digits, `_`, `-` or `.`",
                    )
                    .in_rule(id),
                );
            } else if !seen.insert(id) {
                errors.push(RuleError::new("id", "two rules have this id").in_rule(id));
            }
            if rule.score > MAX_SCORE {
                errors.push(
                    RuleError::new(
                        "score",
                        format!("must be 0 to {MAX_SCORE}, is {}", rule.score),
                    )
                    .in_rule(id),
                );
            }
            match compile_condition(&rule.when, &lists) {
                Ok(condition) => rules.push(Rule {
                    source: rule.clone(),
                    condition,
                }),
                Err(e) => {
                    errors.push(RuleError::at("when", e.message, &rule.when, e.span).in_rule(id))
                }
            }
        }
        if !errors.is_empty() {
            return Err(RuleSetError { errors });
        }
        // Higher priority first; ties keep the written order.
        rules.sort_by_key(|r| std::cmp::Reverse(r.source.priority));
        let mut by_type = vec![Vec::new(); EventType::ALL.len()];
        let mut needs = vec![FeatureSet::EMPTY; EventType::ALL.len()];
        for (i, rule) in rules.iter().enumerate() {
            for ty in EventType::ALL {
                if rule.source.events.is_empty() || rule.source.events.contains(&ty) {
                    by_type[ty as usize].push(i);
                    needs[ty as usize] = needs[ty as usize].union(rule.features());
                }
            }
        }
        Ok(RuleSet {
            name: source.name.clone(),
            version,
            max_action: source.max_action.unwrap_or(Action::Block),
            hold_cool_off_secs,
            rules,
            by_type,
            needs,
            lists,
            source,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The strongest action the set may take.
    pub fn max_action(&self) -> Action {
        self.max_action
    }

    /// Seconds a payout hold lasts after the account's last sensitive change.
    pub fn hold_cool_off_secs(&self) -> i64 {
        self.hold_cool_off_secs
    }

    pub fn source(&self) -> &RuleSetSource {
        &self.source
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn list(&self, name: &str) -> Option<&NamedList> {
        self.lists.get(name).map(Arc::as_ref)
    }

    /// The features the rules for this event type read.
    pub fn needs(&self, event_type: EventType) -> FeatureSet {
        self.needs[event_type as usize]
    }

    /// Evaluates every rule that applies to the event. Active rules that
    /// fire make the decision (the strongest action, capped by
    /// `max_action`; scores added up to 100); shadow rules that fire are
    /// recorded only.
    pub fn decide(&self, ctx: &EvalContext<'_>) -> Decision {
        let mut reasons = Vec::new();
        let mut shadow = Vec::new();
        for &i in &self.by_type[ctx.event.event_type as usize] {
            let rule = &self.rules[i];
            if rule.fires(ctx) {
                let reason = rule.explain(ctx);
                match rule.source.mode {
                    Mode::Active => reasons.push(reason),
                    Mode::Shadow => shadow.push(reason),
                }
            }
        }
        Decision::from_reasons(
            self.name.clone().into(),
            self.version,
            reasons,
            shadow,
            self.max_action,
        )
    }
}

/// The files of a rule directory, read by an adapter: `ruleset.toml` (the
/// name, `max_action` and named lists), any other `*.toml` holding
/// `[[rule]]` tables, and the list files `ruleset.toml` names.
#[derive(Debug, Clone, Default)]
pub struct RuleFiles {
    /// Relative path and contents, e.g. `("login.toml", "...")`.
    pub files: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    max_action: Option<Action>,
    #[serde(default)]
    hold_cool_off: Option<String>,
    #[serde(default)]
    lists: BTreeMap<String, ManifestList>,
    #[serde(default)]
    rule: Vec<RuleSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestList {
    kind: ListKind,
    #[serde(default)]
    description: String,
    /// A file with one entry per line; `#` starts a comment.
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    entries: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSource>,
}

fn toml_error(file: &str, text: &str, e: &toml::de::Error) -> RuleError {
    let error = match e.span() {
        Some(span) => RuleError::at(
            "file",
            e.message().to_string(),
            text,
            Span {
                start: span.start,
                end: span.end,
            },
        ),
        None => RuleError::new("file", e.message().to_string()),
    };
    RuleError {
        file: Some(file.to_string()),
        ..error
    }
}

/// The entries of a list file: one per line, `#` to the end of a line is a
/// comment.
pub fn list_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which file each rule and list came from, to name it in errors.
#[derive(Default)]
struct Origins {
    rules: Vec<(String, String)>,
    lists: Vec<(String, String)>,
}

impl RuleFiles {
    /// Assembles the files into one source. Rules keep file order (files
    /// sorted by name), then written order.
    pub fn into_source(self) -> Result<RuleSetSource, RuleSetError> {
        self.assemble().map(|(source, _)| source)
    }

    /// Assembles and compiles the files; errors name the file each rule or
    /// list came from. Returns the source, valid.
    pub fn check(self) -> Result<RuleSetSource, RuleSetError> {
        let (source, origins) = self.assemble()?;
        match RuleSet::compile(source.clone(), 0) {
            Ok(_) => Ok(source),
            Err(mut e) => {
                for error in &mut e.errors {
                    let files: Vec<&str> = match (&error.rule, error.field.strip_prefix("lists.")) {
                        (Some(id), _) => origins
                            .rules
                            .iter()
                            .filter(|(rule, _)| rule == id)
                            .map(|(_, file)| file.as_str())
                            .collect(),
                        (None, Some(list)) => origins
                            .lists
                            .iter()
                            .filter(|(name, _)| name == list)
                            .map(|(_, file)| file.as_str())
                            .collect(),
                        _ => Vec::new(),
                    };
                    if !files.is_empty() {
                        let mut files = files;
                        files.dedup();
                        error.file = Some(files.join(", "));
                    }
                }
                Err(e)
            }
        }
    }

    fn assemble(mut self) -> Result<(RuleSetSource, Origins), RuleSetError> {
        self.files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut errors = Vec::new();
        let mut origins = Origins::default();
        let manifest_text = self
            .files
            .iter()
            .find(|(p, _)| p == "ruleset.toml")
            .map(|(_, t)| t.as_str());
        let manifest = match manifest_text.map(|t| (t, toml::from_str::<Manifest>(t))) {
            None => {
                return Err(RuleSetError {
                    errors: vec![RuleError::new(
                        "ruleset.toml",
                        "a rule directory needs a ruleset.toml",
                    )],
                });
            }
            Some((text, Err(e))) => {
                return Err(RuleSetError {
                    errors: vec![toml_error("ruleset.toml", text, &e)],
                });
            }
            Some((_, Ok(m))) => m,
        };
        for rule in &manifest.rule {
            origins.rules.push((rule.id.clone(), "ruleset.toml".into()));
        }
        let mut source = RuleSetSource {
            name: manifest.name,
            description: manifest.description,
            max_action: manifest.max_action,
            hold_cool_off: manifest.hold_cool_off,
            rules: manifest.rule,
            lists: BTreeMap::new(),
        };
        for (name, list) in manifest.lists {
            let mut entries = list.entries;
            let file = list.file.unwrap_or_else(|| "ruleset.toml".to_string());
            if file != "ruleset.toml" {
                match self.files.iter().find(|(p, _)| *p == file) {
                    Some((_, text)) => entries.extend(list_entries(text)),
                    None => errors.push(RuleError::new(
                        format!("lists.{name}"),
                        format!("list file `{file}` is missing"),
                    )),
                }
            }
            origins.lists.push((name.clone(), file));
            source.lists.insert(
                name,
                ListSource {
                    kind: list.kind,
                    description: list.description,
                    entries,
                },
            );
        }
        for (path, text) in &self.files {
            if path == "ruleset.toml" || !path.ends_with(".toml") {
                continue;
            }
            match toml::from_str::<RuleFile>(text) {
                Ok(file) => {
                    for rule in &file.rule {
                        origins.rules.push((rule.id.clone(), path.clone()));
                    }
                    source.rules.extend(file.rule);
                }
                Err(e) => errors.push(toml_error(path, text, &e)),
            }
        }
        if errors.is_empty() {
            Ok((source, origins))
        } else {
            Err(RuleSetError { errors })
        }
    }
}
