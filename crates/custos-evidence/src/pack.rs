//! Building a pack from a scope and one pass over its accounts' records.
//!
//! A pack covers a [`PackScope`]: a set of accounts, a time window and a
//! title, with what the engine knows about them (their timeline, their
//! first risky changes). A campaign's scope ([`PackScope::campaign`]) is
//! its listed members and the attack window: from the earliest of the
//! campaign's timeline and its members' joining, to its last activity. A
//! case's ([`PackScope::case`]) is the case's accounts, from the earliest
//! of its opening, its history and the start of its accounts' latest
//! trouble, to its last update. Both are widened by a
//! margin on both sides (a week by default, so the risky login before the
//! first risky change is in). Events of other accounts are never written;
//! events of the scope's accounts outside the window are read only to know
//! which destination a payout went to and what became of a hold (a release
//! after the window still counts).
//!
//! Fates in the money trail come from the stored decisions: a payout or
//! disbursement decided below `hold` was paid; `block` was refused; `hold`
//! is held until a `hold.released` (paid after all) or `hold.cancelled`
//! effect closes it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use custos_core::campaigns::{Campaign, TimelineKind};
use custos_core::cases::Case;
use custos_core::{Action, Decision, Destination, Details, Event, EventParser, EventType};
use custos_store::{EventStore, StoreError, StoredRecord};
use ed25519_dalek::SigningKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::cells::write_row;
use crate::{EvidenceError, FILES, FORMAT};

/// How to build a pack.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Added before and after the attack window.
    pub margin_secs: i64,
    /// Written into the manifest.
    pub exported_at: OffsetDateTime,
    /// Written into the manifest.
    pub custos_version: String,
}

impl ExportOptions {
    pub fn now(custos_version: &str) -> ExportOptions {
        ExportOptions {
            margin_secs: 7 * 86_400,
            exported_at: OffsetDateTime::now_utc(),
            custos_version: custos_version.to_string(),
        }
    }
}

/// What a pack holds, for the caller to print.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// `campaign` or `case`.
    pub kind: &'static str,
    pub id: String,
    pub accounts: usize,
    pub events: u64,
    pub payouts_and_loans: usize,
    pub window_from: i64,
    pub window_to: i64,
    pub rules_versions: Vec<u64>,
    pub bytes: u64,
}

/// One payout or loan disbursement of a member.
#[derive(Debug, Clone)]
struct MoneyRow {
    time: i64,
    event_id: String,
    account_id: String,
    kind: &'static str,
    money_id: String,
    amount: u64,
    currency: String,
    source: String,
    destination: Option<SetDestination>,
    action: Action,
    /// From the campaign's first risky change of the account on: what the
    /// engine counts as the campaign's money.
    after_risky_change: bool,
}

/// A destination and the change that set it.
#[derive(Debug, Clone)]
struct SetDestination {
    destination: Destination,
    event_id: Option<String>,
    session_id: Option<String>,
    device_id: Option<String>,
    /// Set in a risky session, decided `challenge` or worse, or named by
    /// the campaign as a risky change, and not one the account set before
    /// the window: the attacker's destination.
    risky: bool,
}

/// An address, network, device or user agent seen in a risky session.
#[derive(Debug, Default)]
struct Artefact {
    first_seen: i64,
    last_seen: i64,
    accounts: BTreeSet<String>,
    first_event: String,
}

/// An account a pack covers.
#[derive(Debug, Clone)]
pub struct ScopeAccount {
    pub account_id: String,
    /// When it joined the campaign (none for a case's account).
    pub joined_at: Option<i64>,
    /// What links it to the others (`shared_destination`, ...).
    pub linked_by: Vec<String>,
    /// Cleared by a `legit` label or an analyst.
    pub cleared: bool,
}

/// One line of the engine's own account of what happened, for the
/// summary's timeline.
#[derive(Debug, Clone)]
pub struct ScopeEntry {
    pub at: i64,
    pub kind: String,
    pub account_id: Option<String>,
    pub detail: String,
    pub event_id: String,
}

/// What a pack covers: a set of accounts, a window, a title, and what the
/// engine knows about them. Built from a campaign or a case; the pack is
/// built the same way from either.
#[derive(Debug, Clone)]
pub struct PackScope {
    /// `campaign` or `case`, written into the manifest.
    pub kind: &'static str,
    pub id: String,
    /// The summary's heading, e.g. `Campaign cmp_1` or `Case case_3`.
    pub title: String,
    pub status: String,
    /// When the campaign was detected or the case opened.
    pub opened_at: i64,
    pub accounts: Vec<ScopeAccount>,
    /// Accounts in scope that the engine does not list.
    pub accounts_not_listed: u32,
    /// The window before the margin is added.
    pub start: i64,
    pub end: i64,
    /// Each account's first risky change; money from then on is the
    /// scope's. `None`: learned from the log (the account's first event
    /// decided `challenge` or worse, or made in a risky session).
    pub first_risky: Option<HashMap<String, i64>>,
    /// Events the engine itself names as risky changes.
    pub risky_change_ids: HashSet<String>,
    pub timeline: Vec<ScopeEntry>,
    pub timeline_dropped: u64,
    /// What the engine counted as the scope's money, when it counts it.
    pub engine_money: Option<serde_json::Value>,
}

impl PackScope {
    /// A campaign's listed members and its attack window.
    pub fn campaign(campaign: &Campaign) -> PackScope {
        let mut first_risky = HashMap::new();
        for entry in &campaign.timeline {
            if entry.kind == TimelineKind::SensitiveChange
                && let Some(account) = &entry.account_id
            {
                first_risky.entry(account.clone()).or_insert(entry.at.0);
            }
        }
        let start = campaign
            .timeline
            .iter()
            .map(|e| e.at.0)
            .chain(campaign.accounts.iter().map(|m| m.joined_at.0))
            .min()
            .unwrap_or(campaign.detected_at.0);
        let name = |value: serde_json::Result<serde_json::Value>| {
            value
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        PackScope {
            kind: "campaign",
            id: campaign.id.clone(),
            title: format!("Campaign {}", campaign.id),
            status: campaign.status.as_str().to_string(),
            opened_at: campaign.detected_at.0,
            accounts: campaign
                .accounts
                .iter()
                .map(|m| ScopeAccount {
                    account_id: m.account_id.clone(),
                    joined_at: Some(m.joined_at.0),
                    linked_by: m
                        .via
                        .iter()
                        .map(|k| name(serde_json::to_value(k)))
                        .collect(),
                    cleared: m.cleared,
                })
                .collect(),
            accounts_not_listed: campaign.more_accounts,
            start,
            end: campaign.last_activity.0.max(campaign.detected_at.0),
            first_risky: Some(first_risky),
            risky_change_ids: campaign
                .timeline
                .iter()
                .filter(|e| e.kind == TimelineKind::SensitiveChange)
                .map(|e| e.event_id.clone())
                .collect(),
            timeline: campaign
                .timeline
                .iter()
                .map(|e| ScopeEntry {
                    at: e.at.0,
                    kind: name(serde_json::to_value(e.kind)),
                    account_id: e.account_id.clone(),
                    detail: e.detail.clone(),
                    event_id: e.event_id.clone(),
                })
                .collect(),
            timeline_dropped: campaign.timeline_dropped,
            engine_money: serde_json::to_value(&campaign.money).ok(),
        }
    }

    /// A case's accounts, from the earliest of its opening, its history
    /// and `trouble_since` (when its accounts' trouble began:
    /// `Engine::case_trouble_since`) to its last update. Its history is
    /// the timeline; its notes, free text by people, are not in the pack.
    pub fn case(case: &Case, trouble_since: Option<i64>) -> PackScope {
        let start = case
            .history
            .iter()
            .map(|e| e.at)
            .chain([case.opened_at])
            .chain(trouble_since)
            .min()
            .unwrap_or(case.opened_at);
        let end = case
            .history
            .iter()
            .map(|e| e.at)
            .chain([case.updated_at, case.opened_at])
            .max()
            .unwrap_or(case.updated_at);
        PackScope {
            kind: "case",
            id: case.id.clone(),
            title: format!("Case {}", case.id),
            status: case.status.as_str().to_string(),
            opened_at: case.opened_at,
            accounts: case
                .accounts
                .iter()
                .map(|a| ScopeAccount {
                    account_id: a.clone(),
                    joined_at: None,
                    linked_by: Vec::new(),
                    cleared: false,
                })
                .collect(),
            accounts_not_listed: 0,
            start,
            end,
            first_risky: None,
            risky_change_ids: HashSet::new(),
            timeline: case
                .history
                .iter()
                .map(|e| ScopeEntry {
                    at: e.at,
                    kind: e.what.clone(),
                    account_id: None,
                    detail: format!("{}: {}", e.by, e.detail),
                    event_id: e.event_id.clone(),
                })
                .collect(),
            timeline_dropped: 0,
            engine_money: None,
        }
    }

    fn account_count(&self) -> u64 {
        self.accounts.len() as u64 + u64::from(self.accounts_not_listed)
    }
}

/// Builds the pack of `campaign` into `out` (see [`export`]).
pub fn export_campaign(
    campaign: &Campaign,
    store: &dyn EventStore,
    parser: &EventParser,
    key: &SigningKey,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportSummary, EvidenceError> {
    export(
        &PackScope::campaign(campaign),
        store,
        parser,
        key,
        options,
        out,
    )
}

/// Builds the pack of `case` into `out` (see [`export`] and
/// [`PackScope::case`]).
pub fn export_case(
    case: &Case,
    trouble_since: Option<i64>,
    store: &dyn EventStore,
    parser: &EventParser,
    key: &SigningKey,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportSummary, EvidenceError> {
    export(
        &PackScope::case(case, trouble_since),
        store,
        parser,
        key,
        options,
        out,
    )
}

/// Builds the pack of `scope` into `out`: reads `store` once, writes its
/// files into a temporary directory, then archives them.
pub fn export(
    scope: &PackScope,
    store: &dyn EventStore,
    parser: &EventParser,
    key: &SigningKey,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportSummary, EvidenceError> {
    let members: BTreeSet<String> = scope
        .accounts
        .iter()
        .map(|m| m.account_id.clone())
        .collect();
    let window_from = scope.start.saturating_sub(options.margin_secs);
    let window_to = scope.end.saturating_add(options.margin_secs);

    let dir = tempfile::tempdir().map_err(EvidenceError::io("creating a temporary directory"))?;
    let events_path = dir.path().join("events.ndjson");
    let mut events_out = BufWriter::new(
        std::fs::File::create(&events_path).map_err(EvidenceError::io("creating events.ndjson"))?,
    );

    let mut scan = Scan {
        members: &members,
        first_risky: scope.first_risky.clone().unwrap_or_default(),
        learn_first_risky: scope.first_risky.is_none(),
        window_from,
        window_to,
        parser,
        events_out: &mut events_out,
        events: 0,
        rules_versions: BTreeSet::new(),
        destination_of: HashMap::new(),
        risky_sessions: HashSet::new(),
        owned_before: HashMap::new(),
        risky_change_ids: scope.risky_change_ids.clone(),
        money: Vec::new(),
        fates: HashMap::new(),
        artefacts: BTreeMap::new(),
    };
    store.scan_accounts(&members, &mut |record| scan.visit(record))?;
    let Scan {
        events,
        first_risky,
        rules_versions,
        money,
        fates,
        artefacts,
        ..
    } = scan;
    events_out
        .into_inner()
        .map_err(|e| EvidenceError::Io {
            context: "writing events.ndjson".into(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(EvidenceError::io("writing events.ndjson"))?;

    let fate = |row: &MoneyRow| -> &'static str {
        match row.action {
            Action::Block => "refused",
            Action::Hold => fates
                .get(&(row.account_id.clone(), row.money_id.clone()))
                .copied()
                .unwrap_or("held"),
            _ => "paid",
        }
    };

    write_money_trail(dir.path(), &money, &fate)?;
    write_by_institution(dir.path(), &money, &fate)?;
    write_victims(dir.path(), scope, &money, &fate)?;
    write_artefacts(dir.path(), &artefacts)?;
    write_summary(
        dir.path(),
        scope,
        &money,
        &fate,
        &artefacts,
        &first_risky,
        (window_from, window_to),
        events,
    )?;

    let mut files = Vec::new();
    for name in FILES {
        let path = dir.path().join(name);
        let (sha256, bytes) = hash_file(&path)?;
        files.push(serde_json::json!({ "name": name, "sha256": sha256, "bytes": bytes }));
    }
    let manifest = serde_json::json!({
        "format": FORMAT,
        "scope": {
            "kind": scope.kind,
            "id": scope.id,
            "status": scope.status,
            "accounts": members,
            "accounts_not_listed": scope.accounts_not_listed,
            "window": {
                "from": rfc3339(window_from),
                "to": rfc3339(window_to),
                "margin_seconds": options.margin_secs,
            },
        },
        // What the engine itself counted for a campaign (payouts and
        // loans from each member's first risky change on: `paid` decided
        // below hold, `held` decided hold or block), to compare with the
        // files; null for a case (the engine counts no money per case).
        "engine_money": scope.engine_money,
        "custos_version": options.custos_version,
        "rules_versions": rules_versions,
        "exported_at": options
            .exported_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "events": events,
        "files": files,
    });
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a JSON value serializes");
    manifest_bytes.push(b'\n');
    let signature = crate::sign::signature_file(key, &manifest_bytes);

    let mut counter = CountingWriter {
        inner: out,
        bytes: 0,
    };
    {
        let mut archive = tar::Builder::new(&mut counter);
        append_bytes(&mut archive, "manifest.json", &manifest_bytes, options)?;
        append_bytes(
            &mut archive,
            crate::SIGNATURE_FILE_NAME,
            &signature,
            options,
        )?;
        for name in FILES {
            let path = dir.path().join(name);
            let mut file = std::fs::File::open(&path).map_err(EvidenceError::io(name))?;
            let len = file.metadata().map_err(EvidenceError::io(name))?.len();
            let mut header = header(len, options);
            archive
                .append_data(&mut header, name, &mut file)
                .map_err(EvidenceError::io(format!("archiving {name}")))?;
        }
        archive
            .finish()
            .map_err(EvidenceError::io("finishing the archive"))?;
    }
    counter
        .flush()
        .map_err(EvidenceError::io("writing the archive"))?;

    Ok(ExportSummary {
        kind: scope.kind,
        id: scope.id.clone(),
        accounts: members.len(),
        events,
        payouts_and_loans: money.len(),
        window_from,
        window_to,
        rules_versions: rules_versions.into_iter().collect(),
        bytes: counter.bytes,
    })
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    bytes: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(len: u64, options: &ExportOptions) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(options.exported_at.unix_timestamp().max(0) as u64);
    header.set_cksum();
    header
}

fn append_bytes<W: Write>(
    archive: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    options: &ExportOptions,
) -> Result<(), EvidenceError> {
    let mut header = header(bytes.len() as u64, options);
    archive
        .append_data(&mut header, name, bytes)
        .map_err(EvidenceError::io(format!("archiving {name}")))
}

fn hash_file(path: &Path) -> Result<(String, u64), EvidenceError> {
    let mut file = std::fs::File::open(path).map_err(EvidenceError::io("hashing"))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher).map_err(EvidenceError::io("hashing"))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// The state of the one pass over the log.
struct Scan<'a> {
    members: &'a BTreeSet<String>,
    first_risky: HashMap<String, i64>,
    /// Record each account's first risky event as its first risky change
    /// (a case's scope, which names none).
    learn_first_risky: bool,
    window_from: i64,
    window_to: i64,
    parser: &'a EventParser,
    events_out: &'a mut BufWriter<std::fs::File>,
    events: u64,
    rules_versions: BTreeSet<u64>,
    destination_of: HashMap<String, SetDestination>,
    risky_sessions: HashSet<(String, String)>,
    risky_change_ids: HashSet<String>,
    /// Per member, the destinations (institution, token) it set before
    /// the window.
    owned_before: HashMap<String, HashSet<(String, String)>>,
    money: Vec<MoneyRow>,
    fates: HashMap<(String, String), &'static str>,
    /// (kind, value) → where and when.
    artefacts: BTreeMap<(&'static str, String), Artefact>,
}

impl Scan<'_> {
    fn visit(&mut self, record: StoredRecord) -> Result<(), StoreError> {
        if !self.members.contains(&record.account_id) || record.event_time < self.window_from {
            // Before the window only the destination a member set matters.
            if self.members.contains(&record.account_id)
                && record.event_type == "payout_destination_change"
                && let Some(event) = self.parse(&record)
            {
                self.note_destination(&event, false);
            }
            return Ok(());
        }
        let in_window = record.event_time <= self.window_to;
        if in_window {
            self.write_event(&record)?;
        }
        let decision: Option<Decision> = serde_json::from_str(&record.decision_json).ok();
        if let Some(decision) = &decision {
            if in_window {
                self.rules_versions.insert(decision.rules_version);
            }
            for effect in &decision.effects {
                let fate = match serde_json::to_value(effect.kind).ok() {
                    Some(serde_json::Value::String(kind)) if kind == "hold.released" => "released",
                    Some(serde_json::Value::String(kind)) if kind == "hold.cancelled" => {
                        "cancelled"
                    }
                    _ => continue,
                };
                let account = effect.data.get("account_id").and_then(|v| v.as_str());
                let hold = effect.data.get("hold_id").and_then(|v| v.as_str());
                if let (Some(account), Some(hold)) = (account, hold) {
                    self.fates
                        .insert((account.to_string(), hold.to_string()), fate);
                }
            }
        }
        let Some(event) = self.parse(&record) else {
            return Ok(());
        };
        let action = decision.as_ref().map_or(Action::Allow, |d| d.action);
        if event.event_type.as_str() == "login"
            && action >= Action::Challenge
            && let Some(session) = &event.session_id
        {
            self.risky_sessions
                .insert((event.account_id.clone(), session.clone()));
        }
        if in_window
            && let Some(session) = &event.session_id
            && self
                .risky_sessions
                .contains(&(event.account_id.clone(), session.clone()))
        {
            self.note_artefacts(&event, record.event_time);
        }
        let risky_change = action >= Action::Challenge
            || self.risky_change_ids.contains(&event.event_id)
            || event.session_id.as_ref().is_some_and(|s| {
                self.risky_sessions
                    .contains(&(event.account_id.clone(), s.clone()))
            });
        if risky_change && self.learn_first_risky {
            self.first_risky
                .entry(event.account_id.clone())
                .or_insert(record.event_time);
        }
        self.note_destination(&event, risky_change);
        if in_window {
            self.note_money(&event, record.event_time, action);
        }
        Ok(())
    }

    fn parse(&self, record: &StoredRecord) -> Option<Event> {
        let value: serde_json::Value = serde_json::from_str(&record.event_json).ok()?;
        self.parser.parse_stored(value).ok()
    }

    fn write_event(&mut self, record: &StoredRecord) -> Result<(), StoreError> {
        // The stored JSON goes in verbatim, wrapped with where it sits in
        // the log: `event` and `decision` are exactly the stored bytes.
        let write = |out: &mut BufWriter<std::fs::File>| -> std::io::Result<()> {
            writeln!(
                out,
                "{{\"seq\":{},\"event_id\":{},\"account_id\":{},\"event_type\":{},\"event_time\":{},\"received_at_ms\":{},\"event\":{},\"decision\":{}}}",
                record.seq,
                json_string(&record.event_id),
                json_string(&record.account_id),
                json_string(&record.event_type),
                record.event_time,
                record.received_at_ms,
                record.event_json,
                record.decision_json,
            )
        };
        write(self.events_out)
            .map_err(|e| StoreError::Visitor(format!("writing events.ndjson: {e}")))?;
        self.events += 1;
        Ok(())
    }

    fn note_destination(&mut self, event: &Event, risky: bool) {
        if let Details::PayoutDestinationChange { destination, .. } = &event.details {
            // The seller's own accounts from before the window are not the
            // attacker's, even when set again in a risky session.
            let key = (
                destination.institution_id.clone(),
                destination.account_token.clone(),
            );
            let owned = self
                .owned_before
                .entry(event.account_id.clone())
                .or_default();
            let risky = if risky {
                !owned.contains(&key)
            } else {
                if event.unix_time() < self.window_from {
                    owned.insert(key);
                }
                false
            };
            self.destination_of.insert(
                event.account_id.clone(),
                SetDestination {
                    destination: destination.clone(),
                    event_id: Some(event.event_id.clone()),
                    session_id: event.session_id.clone(),
                    device_id: event.device_id.clone(),
                    risky,
                },
            );
        }
    }

    fn note_money(&mut self, event: &Event, at: i64, action: Action) {
        let (kind, money_id, amount, currency, source, given) = match &event.details {
            Details::Payout {
                payout_id,
                amount,
                currency,
                destination,
                source,
            } => (
                "payout",
                payout_id,
                *amount,
                currency,
                serde_json::to_value(source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                destination.as_ref(),
            ),
            // An application moves no money; only its disbursement does
            // (both carry the loan's details).
            Details::Loan {
                loan_id,
                amount,
                currency,
            } if event.event_type == EventType::LoanDisbursement => (
                "loan_disbursement",
                loan_id,
                *amount,
                currency,
                "loan".to_string(),
                None,
            ),
            _ => return,
        };
        let current = self.destination_of.get(&event.account_id);
        let destination = match given {
            // A destination named on the payout itself: the change that set
            // it is known only if it is the account's current one.
            Some(d) => Some(match current {
                Some(c) if c.destination.same_account(d) => c.clone(),
                _ => SetDestination {
                    destination: d.clone(),
                    event_id: None,
                    session_id: None,
                    device_id: None,
                    risky: false,
                },
            }),
            None => current.cloned(),
        };
        let after_risky_change = self
            .first_risky
            .get(event.account_id.as_str())
            .is_some_and(|first| at >= *first);
        self.money.push(MoneyRow {
            time: at,
            event_id: event.event_id.clone(),
            account_id: event.account_id.clone(),
            kind,
            money_id: money_id.clone(),
            amount,
            currency: currency.to_string(),
            source,
            destination,
            action,
            after_risky_change,
        });
    }

    fn note_artefacts(&mut self, event: &Event, at: i64) {
        let mut seen: Vec<(&'static str, String)> = Vec::new();
        if let Some(ip) = event.ip {
            seen.push(("ip", ip.to_string()));
            seen.push(("network", network_of(ip)));
        }
        if let Some(asn) = event.enrichment.network.asn {
            let org = event.enrichment.network.as_org.clone().unwrap_or_default();
            seen.push(("asn", format!("AS{asn} {org}").trim_end().to_string()));
        }
        if let Some(device) = &event.device_id {
            seen.push(("device", device.clone()));
        }
        if let Some(agent) = &event.user_agent {
            seen.push(("user_agent", agent.clone()));
        }
        for key in seen {
            let artefact = self.artefacts.entry(key).or_insert_with(|| Artefact {
                first_seen: at,
                last_seen: at,
                accounts: BTreeSet::new(),
                first_event: event.event_id.clone(),
            });
            artefact.first_seen = artefact.first_seen.min(at);
            artefact.last_seen = artefact.last_seen.max(at);
            artefact.accounts.insert(event.account_id.clone());
        }
    }
}

fn network_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn csv_writer(dir: &Path, name: &'static str) -> Result<csv::Writer<std::fs::File>, EvidenceError> {
    let file = std::fs::File::create(dir.join(name)).map_err(EvidenceError::io(name))?;
    Ok(csv::Writer::from_writer(file))
}

fn csv_error(file: &'static str) -> impl Fn(csv::Error) -> EvidenceError {
    move |source| EvidenceError::Csv { file, source }
}

fn finish(mut writer: csv::Writer<std::fs::File>, name: &'static str) -> Result<(), EvidenceError> {
    writer.flush().map_err(EvidenceError::io(name))
}

fn write_money_trail(
    dir: &Path,
    money: &[MoneyRow],
    fate: &dyn Fn(&MoneyRow) -> &'static str,
) -> Result<(), EvidenceError> {
    const NAME: &str = "money-trail.csv";
    let mut w = csv_writer(dir, NAME)?;
    let error = csv_error(NAME);
    write_row(
        &mut w,
        &[
            "time",
            "event_id",
            "account_id",
            "kind",
            "payout_or_loan_id",
            "amount_minor",
            "currency",
            "source",
            "institution_id",
            "destination_token",
            "account_last4",
            "holder_name",
            "destination_set_by_event",
            "destination_set_in_session",
            "destination_set_from_device",
            "destination_set_in_risky_change",
            "decision",
            "fate",
            "after_risky_change",
        ],
    )
    .map_err(&error)?;
    for row in money {
        let d = row.destination.as_ref();
        let dest = d.map(|d| &d.destination);
        write_row(
            &mut w,
            &[
                &rfc3339(row.time),
                &row.event_id,
                &row.account_id,
                row.kind,
                &row.money_id,
                &row.amount.to_string(),
                &row.currency,
                &row.source,
                dest.map_or("", |d| d.institution_id.as_str()),
                dest.map_or("", |d| d.account_token.as_str()),
                dest.and_then(|d| d.account_last4.as_deref()).unwrap_or(""),
                dest.and_then(|d| d.holder_name.as_deref()).unwrap_or(""),
                d.and_then(|d| d.event_id.as_deref()).unwrap_or(""),
                d.and_then(|d| d.session_id.as_deref()).unwrap_or(""),
                d.and_then(|d| d.device_id.as_deref()).unwrap_or(""),
                if d.is_some_and(|d| d.risky) {
                    "yes"
                } else {
                    "no"
                },
                action_name(row.action),
                fate(row),
                if row.after_risky_change { "yes" } else { "no" },
            ],
        )
        .map_err(&error)?;
    }
    finish(w, NAME)
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "allow",
        Action::Challenge => "challenge",
        Action::Review => "review",
        Action::Hold => "hold",
        Action::Block => "block",
    }
}

/// Paid out: decided below hold, or released from a hold.
fn is_paid(fate: &str) -> bool {
    fate == "paid" || fate == "released"
}

#[derive(Default)]
struct Sums {
    count: u64,
    paid: u64,
    /// Paid to a destination set in a risky change.
    taken: u64,
    /// Some of it went to a destination set in a risky change.
    risky: bool,
    held: u64,
    stopped: u64,
    first: Option<i64>,
    last: Option<i64>,
    accounts: BTreeSet<String>,
    events: Vec<String>,
}

impl Sums {
    fn add(&mut self, row: &MoneyRow, fate: &str) {
        self.count += 1;
        self.risky |= row.destination.as_ref().is_some_and(|d| d.risky);
        match fate {
            f if is_paid(f) => {
                self.paid = self.paid.saturating_add(row.amount);
                if row.destination.as_ref().is_some_and(|d| d.risky) {
                    self.taken = self.taken.saturating_add(row.amount);
                }
                self.first = Some(self.first.map_or(row.time, |t| t.min(row.time)));
                self.last = Some(self.last.map_or(row.time, |t| t.max(row.time)));
            }
            "held" => self.held = self.held.saturating_add(row.amount),
            _ => self.stopped = self.stopped.saturating_add(row.amount),
        }
        self.accounts.insert(row.account_id.clone());
        self.events.push(row.event_id.clone());
    }
}

fn write_by_institution(
    dir: &Path,
    money: &[MoneyRow],
    fate: &dyn Fn(&MoneyRow) -> &'static str,
) -> Result<(), EvidenceError> {
    const NAME: &str = "by-institution.csv";
    let mut groups: BTreeMap<(String, String, String, String), Sums> = BTreeMap::new();
    for row in money.iter().filter(|r| r.after_risky_change) {
        let dest = row.destination.as_ref().map(|d| &d.destination);
        let key = (
            dest.map_or(String::new(), |d| d.institution_id.clone()),
            dest.map_or(String::new(), |d| d.account_token.clone()),
            dest.and_then(|d| d.account_last4.clone())
                .unwrap_or_default(),
            row.currency.clone(),
        );
        groups.entry(key).or_default().add(row, fate(row));
    }
    let mut w = csv_writer(dir, NAME)?;
    let error = csv_error(NAME);
    write_row(
        &mut w,
        &[
            "institution_id",
            "destination_token",
            "account_last4",
            "currency",
            "set_in_risky_change",
            "payouts_and_loans",
            "paid_minor",
            "held_minor",
            "stopped_minor",
            "first_paid",
            "last_paid",
            "accounts",
            "event_ids",
        ],
    )
    .map_err(&error)?;
    for ((institution, token, last4, currency), s) in &groups {
        write_row(
            &mut w,
            &[
                institution,
                token,
                last4,
                currency,
                if s.risky { "yes" } else { "no" },
                &s.count.to_string(),
                &s.paid.to_string(),
                &s.held.to_string(),
                &s.stopped.to_string(),
                &s.first.map(rfc3339).unwrap_or_default(),
                &s.last.map(rfc3339).unwrap_or_default(),
                &join(&s.accounts),
                &s.events.join(" "),
            ],
        )
        .map_err(&error)?;
    }
    finish(w, NAME)
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" ")
}

fn write_victims(
    dir: &Path,
    scope: &PackScope,
    money: &[MoneyRow],
    fate: &dyn Fn(&MoneyRow) -> &'static str,
) -> Result<(), EvidenceError> {
    const NAME: &str = "victims.csv";
    let mut sums: BTreeMap<(String, String), Sums> = BTreeMap::new();
    for row in money.iter().filter(|r| r.after_risky_change) {
        sums.entry((row.account_id.clone(), row.currency.clone()))
            .or_default()
            .add(row, fate(row));
    }
    let mut w = csv_writer(dir, NAME)?;
    let error = csv_error(NAME);
    write_row(
        &mut w,
        &[
            "account_id",
            "joined_campaign",
            "linked_by",
            "cleared",
            "currency",
            "payouts_and_loans",
            "paid_minor",
            "taken_minor",
            "held_minor",
            "stopped_minor",
            "event_ids",
        ],
    )
    .map_err(&error)?;
    for member in &scope.accounts {
        let via = member.linked_by.join(" ");
        let joined = member.joined_at.map_or(String::new(), rfc3339);
        let cleared = if member.cleared { "yes" } else { "no" };
        let mut any = false;
        for ((account, currency), s) in sums.range((member.account_id.clone(), String::new())..) {
            if account != &member.account_id {
                break;
            }
            any = true;
            write_row(
                &mut w,
                &[
                    &member.account_id,
                    &joined,
                    &via,
                    cleared,
                    currency,
                    &s.count.to_string(),
                    &s.paid.to_string(),
                    &s.taken.to_string(),
                    &s.held.to_string(),
                    &s.stopped.to_string(),
                    &s.events.join(" "),
                ],
            )
            .map_err(&error)?;
        }
        if !any {
            write_row(
                &mut w,
                &[
                    &member.account_id,
                    &joined,
                    &via,
                    cleared,
                    "",
                    "0",
                    "0",
                    "0",
                    "0",
                    "0",
                    "",
                ],
            )
            .map_err(&error)?;
        }
    }
    finish(w, NAME)
}

fn write_artefacts(
    dir: &Path,
    artefacts: &BTreeMap<(&'static str, String), Artefact>,
) -> Result<(), EvidenceError> {
    const NAME: &str = "artefacts.csv";
    let mut w = csv_writer(dir, NAME)?;
    let error = csv_error(NAME);
    write_row(
        &mut w,
        &[
            "kind",
            "value",
            "first_seen",
            "last_seen",
            "accounts",
            "account_count",
            "first_event_id",
        ],
    )
    .map_err(&error)?;
    for ((kind, value), a) in artefacts {
        write_row(
            &mut w,
            &[
                kind,
                value,
                &rfc3339(a.first_seen),
                &rfc3339(a.last_seen),
                &join(&a.accounts),
                &a.accounts.len().to_string(),
                &a.first_event,
            ],
        )
        .map_err(&error)?;
    }
    finish(w, NAME)
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn money_text(minor: u64, currency: &str) -> String {
    format!("{}.{:02} {}", minor / 100, minor % 100, escape(currency))
}

#[allow(clippy::too_many_arguments)]
fn write_summary(
    dir: &Path,
    scope: &PackScope,
    money: &[MoneyRow],
    fate: &dyn Fn(&MoneyRow) -> &'static str,
    artefacts: &BTreeMap<(&'static str, String), Artefact>,
    first_risky: &HashMap<String, i64>,
    window: (i64, i64),
    events: u64,
) -> Result<(), EvidenceError> {
    use std::fmt::Write as _;
    let mut h = String::new();
    let title = escape(&scope.title);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evidence: {} {}</title>\
         <style>body{{font-family:serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #888;padding:2px 6px;text-align:left;vertical-align:top}}code{{font-size:90%}}</style>\
         </head><body>\n<h1>{title}: evidence summary</h1>\n",
        escape(scope.kind),
        escape(&scope.id),
    );
    let what = if scope.kind == "campaign" {
        format!(
            "Custos linked <b>{}</b> seller accounts as taken over together (status: {}; detected {}).",
            scope.account_count(),
            escape(&scope.status),
            escape(&rfc3339(scope.opened_at)),
        )
    } else {
        format!(
            "This {} holds <b>{}</b> seller accounts (status: {}; opened {}).",
            escape(scope.kind),
            scope.account_count(),
            escape(&scope.status),
            escape(&rfc3339(scope.opened_at)),
        )
    };
    let _ = writeln!(
        h,
        "<p>{what} \
         This pack covers their events from {} to {} ({} events in <code>events.ndjson</code>). \
         Every claim below names the event ids that support it; each id is one line of <code>events.ndjson</code>.</p>",
        escape(&rfc3339(window.0)),
        escape(&rfc3339(window.1)),
        events,
    );

    // Totals per currency, counted from each account's first risky change.
    let mut totals: BTreeMap<String, Sums> = BTreeMap::new();
    for row in money.iter().filter(|r| r.after_risky_change) {
        totals
            .entry(row.currency.clone())
            .or_default()
            .add(row, fate(row));
    }
    h.push_str("<h2>Money</h2>\n<table><tr><th>currency</th><th>paid out</th><th>of which to destinations set in risky changes (taken)</th><th>still held</th><th>stopped</th><th>payouts and loans</th></tr>\n");
    for (currency, s) in &totals {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(currency),
            money_text(s.paid, currency),
            money_text(s.taken, currency),
            money_text(s.held, currency),
            money_text(s.stopped, currency),
            s.count
        );
    }
    h.push_str("</table>\n<p>Per payout: <code>money-trail.csv</code>; per receiving institution and destination: <code>by-institution.csv</code>; per seller: <code>victims.csv</code>.</p>\n");

    h.push_str("<h2>Receiving destinations</h2>\n<table><tr><th>institution</th><th>account (last four)</th><th>token</th><th>paid (minor units)</th><th>events</th></tr>\n");
    let mut by_destination: BTreeMap<(String, String, String), Sums> = BTreeMap::new();
    for row in money.iter().filter(|r| r.after_risky_change) {
        let dest = row.destination.as_ref().map(|d| &d.destination);
        by_destination
            .entry((
                dest.map_or(String::new(), |d| d.institution_id.clone()),
                dest.and_then(|d| d.account_last4.clone())
                    .unwrap_or_default(),
                dest.map_or(String::new(), |d| d.account_token.clone()),
            ))
            .or_default()
            .add(row, fate(row));
    }
    for ((institution, last4, token), s) in &by_destination {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            escape(institution),
            escape(last4),
            escape(token),
            s.paid,
            escape(&s.events.join(" "))
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Accounts</h2>\n<table><tr><th>account</th><th>joined</th><th>linked by</th><th>first risky change (event)</th></tr>\n");
    for member in &scope.accounts {
        let first_change = scope.timeline.iter().find(|e| {
            e.kind == "sensitive_change" && e.account_id.as_deref() == Some(&member.account_id)
        });
        let first_change = match first_change {
            Some(e) => format!(
                "{} <code>{}</code>",
                escape(&rfc3339(e.at)),
                escape(&e.event_id)
            ),
            None => first_risky
                .get(&member.account_id)
                .map_or(String::new(), |at| escape(&rfc3339(*at))),
        };
        let via = member.linked_by.join(", ");
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&member.account_id),
            escape(&member.joined_at.map_or(String::new(), rfc3339)),
            escape(&via),
            first_change
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>What links the accounts</h2>\n<p>Addresses, networks, devices and user agents seen in risky sessions of two or more of the accounts (all of them: <code>artefacts.csv</code>).</p>\n<table><tr><th>kind</th><th>value</th><th>accounts</th><th>first seen (event)</th></tr>\n");
    for ((kind, value), a) in artefacts.iter().filter(|(_, a)| a.accounts.len() > 1) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} <code>{}</code></td></tr>",
            escape(kind),
            escape(value),
            escape(&join(&a.accounts)),
            escape(&rfc3339(a.first_seen)),
            escape(&a.first_event)
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Timeline</h2>\n<table><tr><th>time</th><th>what</th><th>account</th><th>detail</th><th>event</th></tr>\n");
    for entry in &scope.timeline {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            escape(&rfc3339(entry.at)),
            escape(&entry.kind),
            escape(entry.account_id.as_deref().unwrap_or("")),
            escape(&entry.detail),
            escape(&entry.event_id)
        );
    }
    if scope.timeline_dropped > 0 {
        let _ = writeln!(
            h,
            "<tr><td colspan=\"5\">{} entries between these are not kept by the engine; every event is in events.ndjson.</td></tr>",
            scope.timeline_dropped
        );
    }
    h.push_str("</table>\n<p>Check this pack with <code>custos evidence verify</code> and the publisher's public key (docs/evidence.md).</p>\n</body></html>\n");
    std::fs::write(dir.join("summary.html"), h).map_err(EvidenceError::io("summary.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_leaves_no_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn networks_are_the_address_prefix() {
        assert_eq!(
            network_of("203.0.113.9".parse().expect("ip")),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2::1".parse().expect("ip")),
            "2001:db8:1::/48"
        );
    }
}
