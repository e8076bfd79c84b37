//! Cases: the accounts, holds and campaign of one incident, with the
//! status, assignee, notes and history of the people who work it.
//!
//! A case is opened by the engine itself when a hold opens, an account is
//! put at risk or a campaign is found, from the effects of the event that
//! did so; an account joins the case it is already in while that case is
//! not resolved. A campaign's case (`campaign-ID`) links the cases of its
//! victims. Everything people do to a case is an `analyst_action` event
//! (`open_case`, `note_case`, `assign_case`, `set_case_status`,
//! `resolve_case`, `merge_case`, `add_case_account`), so a rebuild from the
//! log reproduces every case, and each change is a `case.updated` effect
//! that webhooks carry.
//!
//! Case numbers come from a counter in the state, so replaying the same log
//! gives the same ids.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use crate::decision::{Effect, EffectKind};
use crate::engine::Engine;
use crate::event::{AnalystActionKind, Event};

/// Where a case is in its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Investigating,
    Resolved,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Investigating => "investigating",
            CaseStatus::Resolved => "resolved",
        }
    }

    pub fn from_name(name: &str) -> Option<CaseStatus> {
        match name {
            "open" => Some(CaseStatus::Open),
            "investigating" => Some(CaseStatus::Investigating),
            "resolved" => Some(CaseStatus::Resolved),
            _ => None,
        }
    }
}

/// How a resolved case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseResolution {
    FraudConfirmed,
    FalsePositive,
    Inconclusive,
}

impl CaseResolution {
    pub const WIRE_NAMES: &'static [&'static str] =
        &["fraud_confirmed", "false_positive", "inconclusive"];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseResolution::FraudConfirmed => "fraud_confirmed",
            CaseResolution::FalsePositive => "false_positive",
            CaseResolution::Inconclusive => "inconclusive",
        }
    }

    pub fn from_name(name: &str) -> Option<CaseResolution> {
        match name {
            "fraud_confirmed" => Some(CaseResolution::FraudConfirmed),
            "false_positive" => Some(CaseResolution::FalsePositive),
            "inconclusive" => Some(CaseResolution::Inconclusive),
            _ => None,
        }
    }
}

/// One line of a case's history (or one note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEntry {
    pub at: i64,
    /// The analyst, or `custos` for what the engine did.
    pub by: String,
    /// `opened`, `hold_opened`, `note`, `assigned`, `resolved`, ...
    pub what: String,
    pub detail: String,
    pub event_id: String,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub status: CaseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<CaseResolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub opened_at: i64,
    pub opened_by: String,
    pub updated_at: i64,
    /// The accounts of the incident, in the order they joined.
    pub accounts: Vec<String>,
    /// Hold ids (`account_id/hold_id`) that opened in the case.
    #[serde(default)]
    pub holds: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Other cases this one links (a campaign's case: its victims').
    #[serde(default)]
    pub linked: Vec<String>,
    /// The case this one was merged into; it is then resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    #[serde(default)]
    pub notes: Vec<CaseEntry>,
    #[serde(default)]
    pub history: Vec<CaseEntry>,
}

/// History lines kept per case; older ones are dropped (the events stay in
/// the log).
const MAX_HISTORY: usize = 500;

impl Case {
    fn log(&mut self, at: i64, by: &str, what: &str, detail: String, event_id: &str) {
        self.updated_at = self.updated_at.max(at);
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(CaseEntry {
            at,
            by: by.to_string(),
            what: what.to_string(),
            detail,
            event_id: event_id.to_string(),
        });
    }

    fn add_account(&mut self, account_id: &str) -> bool {
        if self.accounts.iter().any(|a| a == account_id) {
            return false;
        }
        self.accounts.push(account_id.to_string());
        true
    }
}

/// All cases, and which open case each account is in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseBook {
    /// Each case behind an [`Arc`]: a snapshot's copy of the book shares
    /// the cases, and a write copies only the case it changes.
    cases: BTreeMap<String, Arc<Case>>,
    /// The case an account's new trouble goes to while it is not resolved.
    /// Hashed, not ordered: a campaign's case looks up every victim here
    /// on each change the campaign's members make. Written sorted.
    #[serde(serialize_with = "sorted")]
    current: HashMap<String, String, RandomState>,
    next: u64,
}

/// Why a case action was refused (it is then recorded and does nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0:?}")]
    NoSuchCase(String),
    #[error("case {0:?} is resolved")]
    Resolved(String),
    #[error("{0}")]
    Invalid(String),
}

/// What an analyst asked of a case, from an `analyst_action` event.
pub struct CaseAction<'a> {
    pub action: AnalystActionKind,
    pub case_id: &'a str,
    pub account_id: &'a str,
    pub value: Option<&'a str>,
    pub analyst: &'a str,
    pub reason: &'a str,
    pub event_id: &'a str,
    pub at: i64,
}

/// A map written in key order, so that equal books give equal bytes.
fn sorted<S: serde::Serializer>(
    map: &HashMap<String, String, RandomState>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&String, &String> = map.iter().collect();
    ordered.serialize(serializer)
}

impl CaseBook {
    pub fn get(&self, id: &str) -> Option<&Case> {
        self.cases.get(id).map(|c| &**c)
    }

    /// The case to change; copied first if a snapshot still holds it.
    fn case_mut(&mut self, id: &str) -> Option<&mut Case> {
        self.cases.get_mut(id).map(Arc::make_mut)
    }

    /// All cases, newest number last.
    pub fn all(&self) -> impl DoubleEndedIterator<Item = &Case> {
        self.cases.values().map(|c| &**c)
    }

    pub fn len(&self) -> usize {
        self.cases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// The unresolved case an account is in, if any.
    pub fn current_of(&self, account_id: &str) -> Option<&Case> {
        self.current
            .get(account_id)
            .and_then(|id| self.get(id))
            .filter(|c| c.status != CaseStatus::Resolved)
    }

    /// Cases that name the account, newest first.
    pub fn of_account(&self, account_id: &str) -> Vec<&Case> {
        self.all()
            .rev()
            .filter(|c| c.accounts.iter().any(|a| a == account_id))
            .collect()
    }

    /// The case a hold opened in (`Case::holds`), or the case that was
    /// merged into, resolved or not. A hold opens in its account's current
    /// case, so that one is looked at first; only a hold whose account has
    /// moved on to another case costs a walk of the cases.
    pub fn case_of_hold(&self, account_id: &str, hold_id: &str) -> Option<&Case> {
        self.cases_of_holds(&[(account_id, hold_id)])
            .pop()
            .flatten()
    }

    /// [`CaseBook::case_of_hold`] for many holds (the queue's), in their
    /// order, with at most one walk of the cases for all of them.
    pub fn cases_of_holds(&self, holds: &[(&str, &str)]) -> Vec<Option<&Case>> {
        let keys: Vec<String> = holds.iter().map(|(a, h)| format!("{a}/{h}")).collect();
        let lives_on = |case: &Case, key: &str| {
            case.merged_into.is_none() && case.holds.iter().any(|k| k == key)
        };
        let mut found: Vec<Option<&Case>> = holds
            .iter()
            .zip(&keys)
            .map(|((account_id, _), key)| {
                self.current
                    .get(*account_id)
                    .and_then(|id| self.get(id))
                    .filter(|c| lives_on(c, key))
            })
            .collect();
        let mut missing: HashMap<&str, usize> = found
            .iter()
            .zip(&keys)
            .enumerate()
            .filter(|(_, (case, _))| case.is_none())
            .map(|(i, (_, key))| (key.as_str(), i))
            .collect();
        // Newest first: a hold is in one living case, this only settles
        // a hand-made log's ties the same way every time.
        for case in self.cases.values().rev() {
            if missing.is_empty() {
                break;
            }
            if case.merged_into.is_some() {
                continue;
            }
            for key in &case.holds {
                if let Some(i) = missing.remove(key.as_str()) {
                    found[i] = Some(case);
                }
            }
        }
        found
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        format!("case-{}", self.next)
    }

    /// The account's unresolved case, or a new one opened by the engine.
    fn case_for(&mut self, account_id: &str, title: &str, at: i64, event_id: &str) -> String {
        if let Some(case) = self.current_of(account_id) {
            return case.id.clone();
        }
        let id = self.new_id();
        self.open(&id, title, account_id, "custos", at, event_id);
        id
    }

    fn open(&mut self, id: &str, title: &str, account_id: &str, by: &str, at: i64, event_id: &str) {
        let mut case = Case {
            id: id.to_string(),
            title: title.to_string(),
            status: CaseStatus::Open,
            resolution: None,
            assignee: None,
            opened_at: at,
            opened_by: by.to_string(),
            updated_at: at,
            accounts: Vec::new(),
            holds: Vec::new(),
            campaign: None,
            linked: Vec::new(),
            merged_into: None,
            notes: Vec::new(),
            history: Vec::new(),
        };
        if !account_id.is_empty() {
            case.accounts.push(account_id.to_string());
            self.current.insert(account_id.to_string(), id.to_string());
        }
        case.log(at, by, "opened", title.to_string(), event_id);
        self.cases.insert(id.to_string(), Arc::new(case));
    }

    /// Follows merges to the case that lives on.
    fn resolve_id(&self, id: &str) -> Option<String> {
        let mut id = id.to_string();
        for _ in 0..64 {
            let case = self.cases.get(&id)?;
            match &case.merged_into {
                Some(into) => id = into.clone(),
                None => return Some(id),
            }
        }
        None
    }

    /// Applies an analyst's case action; the case id changed, or why not.
    pub fn apply(&mut self, a: &CaseAction<'_>) -> Result<String, CaseError> {
        let by = a.analyst;
        if a.action == AnalystActionKind::OpenCase {
            if self.cases.contains_key(a.case_id) {
                return Err(CaseError::Invalid(format!(
                    "case {:?} exists already",
                    a.case_id
                )));
            }
            self.open(a.case_id, a.reason, a.account_id, by, a.at, a.event_id);
            return Ok(a.case_id.to_string());
        }
        let id = self
            .resolve_id(a.case_id)
            .ok_or_else(|| CaseError::NoSuchCase(a.case_id.to_string()))?;
        let value = a.value.unwrap_or_default();
        if a.action == AnalystActionKind::MergeCase {
            let into = self
                .resolve_id(value)
                .ok_or_else(|| CaseError::NoSuchCase(value.to_string()))?;
            if into == id {
                return Err(CaseError::Invalid(
                    "a case cannot be merged into itself".into(),
                ));
            }
            let from = self
                .case_mut(&id)
                .ok_or_else(|| CaseError::NoSuchCase(id.clone()))?;
            from.merged_into = Some(into.clone());
            from.status = CaseStatus::Resolved;
            from.log(
                a.at,
                by,
                "merged",
                format!("into {into}: {}", a.reason),
                a.event_id,
            );
            let (accounts, holds, linked, campaign) = (
                from.accounts.clone(),
                from.holds.clone(),
                from.linked.clone(),
                from.campaign.clone(),
            );
            let target = self
                .case_mut(&into)
                .ok_or_else(|| CaseError::NoSuchCase(into.clone()))?;
            for account in &accounts {
                target.add_account(account);
            }
            for hold in holds {
                if !target.holds.contains(&hold) {
                    target.holds.push(hold);
                }
            }
            for link in linked {
                if link != into && !target.linked.contains(&link) {
                    target.linked.push(link);
                }
            }
            if target.campaign.is_none() {
                target.campaign = campaign;
            }
            target.log(
                a.at,
                by,
                "merged_from",
                format!("{id}: {}", a.reason),
                a.event_id,
            );
            for account in accounts {
                self.current.insert(account, into.clone());
            }
            return Ok(into);
        }
        let case = self
            .case_mut(&id)
            .ok_or_else(|| CaseError::NoSuchCase(id.clone()))?;
        if case.status == CaseStatus::Resolved && a.action != AnalystActionKind::NoteCase {
            return Err(CaseError::Resolved(id));
        }
        match a.action {
            AnalystActionKind::NoteCase => {
                case.updated_at = case.updated_at.max(a.at);
                case.notes.push(CaseEntry {
                    at: a.at,
                    by: by.to_string(),
                    what: "note".into(),
                    detail: a.reason.to_string(),
                    event_id: a.event_id.to_string(),
                });
                case.log(a.at, by, "note", String::new(), a.event_id);
            }
            AnalystActionKind::AssignCase => {
                case.assignee = Some(value.to_string());
                case.log(a.at, by, "assigned", value.to_string(), a.event_id);
            }
            AnalystActionKind::SetCaseStatus => {
                let status = CaseStatus::from_name(value)
                    .filter(|s| *s != CaseStatus::Resolved)
                    .ok_or_else(|| CaseError::Invalid(format!("status {value:?}")))?;
                case.status = status;
                case.log(
                    a.at,
                    by,
                    "status",
                    format!("{value}: {}", a.reason),
                    a.event_id,
                );
            }
            AnalystActionKind::ResolveCase => {
                let resolution = CaseResolution::from_name(value)
                    .ok_or_else(|| CaseError::Invalid(format!("resolution {value:?}")))?;
                case.status = CaseStatus::Resolved;
                case.resolution = Some(resolution);
                case.log(
                    a.at,
                    by,
                    "resolved",
                    format!("{value}: {}", a.reason),
                    a.event_id,
                );
            }
            AnalystActionKind::AddCaseAccount => {
                if case.add_account(a.account_id) {
                    case.log(
                        a.at,
                        by,
                        "account_added",
                        a.account_id.to_string(),
                        a.event_id,
                    );
                    self.current.insert(a.account_id.to_string(), id.clone());
                }
            }
            _ => return Err(CaseError::Invalid("not a case action".into())),
        }
        Ok(id)
    }
}

impl AnalystActionKind {
    /// Whether the action works a case (its `target_id` is the case id).
    pub fn is_case_action(self) -> bool {
        matches!(
            self,
            AnalystActionKind::OpenCase
                | AnalystActionKind::NoteCase
                | AnalystActionKind::AssignCase
                | AnalystActionKind::SetCaseStatus
                | AnalystActionKind::ResolveCase
                | AnalystActionKind::MergeCase
                | AnalystActionKind::AddCaseAccount
        )
    }

    /// Whether the action needs a `value` (assignee, status, resolution,
    /// or the case merged into).
    pub fn needs_value(self) -> bool {
        matches!(
            self,
            AnalystActionKind::AssignCase
                | AnalystActionKind::SetCaseStatus
                | AnalystActionKind::ResolveCase
                | AnalystActionKind::MergeCase
        )
    }
}

/// Checks an action's `value` where it names a status or resolution; the
/// problem in words.
pub fn check_value(action: AnalystActionKind, value: Option<&str>) -> Result<(), String> {
    match (action, value) {
        (AnalystActionKind::SetCaseStatus, Some(v)) if !matches!(v, "open" | "investigating") => {
            Err(format!(
                "must be open or investigating (resolve with resolve_case), is {v:?}"
            ))
        }
        (AnalystActionKind::ResolveCase, Some(v)) if CaseResolution::from_name(v).is_none() => {
            Err(format!(
                "must be one of {}, is {v:?}",
                CaseResolution::WIRE_NAMES.join(", ")
            ))
        }
        (a, Some(_)) if !a.needs_value() => Err(format!("{} takes no value", a.as_str())),
        _ => Ok(()),
    }
}

/// The `case.updated` effect of a change.
fn case_effect(case: &Case, change: &str, by: &str) -> Effect {
    Effect::of(
        EffectKind::CaseUpdated,
        &serde_json::json!({
            "case_id": case.id,
            "change": change,
            "by": by,
            "status": case.status,
            "resolution": case.resolution,
            "assignee": case.assignee,
            "accounts": case.accounts,
            "campaign": case.campaign,
        }),
    )
}

impl Engine {
    pub fn cases(&self) -> &CaseBook {
        &self.cases
    }

    /// When the latest trouble of a case's accounts began, as the engine
    /// knows it: per account, the newest of its sensitive changes and of
    /// its at-risk episode's start; the earliest of those over the
    /// accounts. A case opened by hand long after the attack still
    /// reaches back to it (its evidence pack's window starts here).
    pub fn case_trouble_since(&self, case: &Case) -> Option<i64> {
        case.accounts
            .iter()
            .filter_map(|id| self.account(id))
            .filter_map(|state| {
                state
                    .sensitive_changes
                    .values()
                    .map(|t| t.0)
                    .chain(state.at_risk.as_ref().map(|r| r.since.0))
                    .max()
            })
            .min()
    }

    /// An analyst's case action (`analyst_action` with a case kind).
    pub(crate) fn apply_case_action(&mut self, action: &CaseAction<'_>, effects: &mut Vec<Effect>) {
        // A refused action is recorded in the log and changes nothing: the
        // server checks before it writes, so it is a race or a hand-made
        // event.
        if let Ok(id) = self.cases.apply(action)
            && let Some(case) = self.cases.get(&id)
        {
            effects.push(case_effect(case, action.action.as_str(), action.analyst));
        }
    }

    /// Opens or extends cases for what an event set off: a hold opened, an
    /// account put at risk, a campaign found or grown.
    pub(crate) fn open_cases(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let at = event.unix_time();
        let by = "custos";
        let mut changed: Vec<(String, &'static str)> = Vec::new();
        for effect in effects.iter() {
            let text = |k: &str| {
                effect
                    .data
                    .get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            match effect.kind {
                EffectKind::HoldCreated => {
                    let (Some(account), Some(hold)) = (text("account_id"), text("hold_id")) else {
                        continue;
                    };
                    let id = self.cases.case_for(
                        &account,
                        &format!("hold {hold} opened on {account}"),
                        at,
                        &event.event_id,
                    );
                    if let Some(case) = self.cases.case_mut(&id) {
                        let key = format!("{account}/{hold}");
                        if !case.holds.contains(&key) {
                            case.holds.push(key);
                            case.log(at, by, "hold_opened", hold, &event.event_id);
                        }
                    }
                    changed.push((id, "hold_opened"));
                }
                EffectKind::AccountAtRisk => {
                    let Some(account) = text("account_id") else {
                        continue;
                    };
                    let fresh = self.cases.current_of(&account).is_none();
                    let id = self.cases.case_for(
                        &account,
                        &format!("{account} put at risk"),
                        at,
                        &event.event_id,
                    );
                    if !fresh && let Some(case) = self.cases.case_mut(&id) {
                        case.log(at, by, "at_risk", account, &event.event_id);
                    }
                    changed.push((id, "at_risk"));
                }
                EffectKind::CampaignDetected | EffectKind::CampaignUpdated => {
                    let Some(campaign_id) = text("id") else {
                        continue;
                    };
                    let id = format!("campaign-{campaign_id}");
                    // Only a change is a `case.updated`: a campaign that
                    // grew in money alone changes no case.
                    let mut grew = false;
                    if !self.cases.cases.contains_key(&id) {
                        grew = true;
                        self.cases.open(
                            &id,
                            &format!("campaign {campaign_id} found"),
                            "",
                            by,
                            at,
                            &event.event_id,
                        );
                        if let Some(case) = self.cases.case_mut(&id) {
                            case.campaign = Some(campaign_id.clone());
                        }
                    }
                    let Some(campaign) = self.campaigns.campaign(&campaign_id) else {
                        if grew {
                            changed.push((id, "campaign"));
                        }
                        continue;
                    };
                    // A campaign of a thousand victims is updated by each of
                    // their changes: the members are read in place and only
                    // what is new to the case is copied.
                    let victims = || campaign.accounts.iter().filter(|m| !m.cleared);
                    // A victim's last case, resolved or not: a campaign
                    // growing does not reopen a victim already settled.
                    let without_case: Vec<String> = victims()
                        .filter(|m| !self.cases.current.contains_key(&m.account_id))
                        .map(|m| m.account_id.clone())
                        .collect();
                    for victim in &without_case {
                        self.cases.case_for(
                            victim,
                            &format!("{victim} is in campaign {campaign_id}"),
                            at,
                            &event.event_id,
                        );
                    }
                    let Some(case) = self.cases.cases.get(&id) else {
                        continue;
                    };
                    let members: HashSet<&str, RandomState> =
                        case.accounts.iter().map(String::as_str).collect();
                    let known: HashSet<&str, RandomState> =
                        case.linked.iter().map(String::as_str).collect();
                    let mut new_members: Vec<String> = Vec::new();
                    let mut new_links: Vec<String> = Vec::new();
                    let mut seen_members: HashSet<&str, RandomState> = HashSet::default();
                    let mut seen_links: HashSet<&str, RandomState> = HashSet::default();
                    for victim in victims() {
                        let account = victim.account_id.as_str();
                        if !members.contains(account) && seen_members.insert(account) {
                            new_members.push(account.to_string());
                        }
                        if let Some(link) = self.cases.current.get(account)
                            && !known.contains(link.as_str())
                            && seen_links.insert(link.as_str())
                        {
                            new_links.push(link.clone());
                        }
                    }
                    // Nothing new: the case is not written, so a snapshot
                    // holding it does not make it copied.
                    if (!new_members.is_empty() || !new_links.is_empty())
                        && let Some(case) = self.cases.case_mut(&id)
                    {
                        for victim in new_members {
                            case.accounts.push(victim);
                            grew = true;
                        }
                        for link in new_links {
                            case.log(at, by, "linked", link.clone(), &event.event_id);
                            case.linked.push(link);
                            grew = true;
                        }
                    }
                    if grew {
                        changed.push((id, "campaign"));
                    }
                }
                _ => {}
            }
        }
        changed.dedup();
        for (id, change) in changed {
            if let Some(case) = self.cases.get(&id) {
                effects.push(case_effect(case, change, by));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action<'a>(
        action: AnalystActionKind,
        case_id: &'a str,
        account_id: &'a str,
        value: Option<&'a str>,
        at: i64,
    ) -> CaseAction<'a> {
        CaseAction {
            action,
            case_id,
            account_id,
            value,
            analyst: "ana",
            reason: "because",
            event_id: "e",
            at,
        }
    }

    #[test]
    fn opens_assigns_notes_and_resolves() {
        let mut book = CaseBook::default();
        let id = book.case_for("a1", "hold h1 opened", 10, "e1");
        assert_eq!(id, "case-1");
        // The account's next trouble goes to the same case.
        assert_eq!(book.case_for("a1", "again", 11, "e2"), "case-1");
        book.apply(&action(
            AnalystActionKind::AssignCase,
            &id,
            "a1",
            Some("bob"),
            12,
        ))
        .unwrap();
        book.apply(&action(AnalystActionKind::NoteCase, &id, "a1", None, 13))
            .unwrap();
        book.apply(&action(
            AnalystActionKind::SetCaseStatus,
            &id,
            "a1",
            Some("investigating"),
            14,
        ))
        .unwrap();
        let case = book.get(&id).unwrap();
        assert_eq!(case.assignee.as_deref(), Some("bob"));
        assert_eq!(case.notes.len(), 1);
        assert_eq!(case.status, CaseStatus::Investigating);
        book.apply(&action(
            AnalystActionKind::ResolveCase,
            &id,
            "a1",
            Some("false_positive"),
            15,
        ))
        .unwrap();
        assert_eq!(
            book.get(&id).unwrap().resolution,
            Some(CaseResolution::FalsePositive)
        );
        // Resolved: new trouble opens a new case; actions but notes refused.
        assert_eq!(book.case_for("a1", "later", 20, "e9"), "case-2");
        assert!(matches!(
            book.apply(&action(
                AnalystActionKind::AssignCase,
                &id,
                "a1",
                Some("x"),
                21
            )),
            Err(CaseError::Resolved(_))
        ));
        assert!(
            book.apply(&action(
                AnalystActionKind::ResolveCase,
                "case-2",
                "a1",
                Some("maybe"),
                22
            ))
            .is_err()
        );
    }

    #[test]
    fn a_hold_names_the_case_it_opened_in_after_resolving_and_merging() {
        let mut book = CaseBook::default();
        let hold_into = |book: &mut CaseBook, id: &str, key: &str| {
            book.case_mut(id).unwrap().holds.push(key.into());
        };
        let first = book.case_for("a1", "hold h1 opened", 10, "e1");
        hold_into(&mut book, &first, "a1/h1");
        let id_of =
            |book: &CaseBook, hold: &str| book.case_of_hold("a1", hold).map(|c| c.id.clone());
        assert_eq!(id_of(&book, "h1").as_deref(), Some("case-1"));
        assert_eq!(id_of(&book, "h2"), None);
        // Resolved while its hold is still open: still the hold's case.
        book.apply(&action(
            AnalystActionKind::ResolveCase,
            &first,
            "a1",
            Some("inconclusive"),
            11,
        ))
        .unwrap();
        let second = book.case_for("a1", "hold h2 opened", 12, "e2");
        hold_into(&mut book, &second, "a1/h2");
        assert_eq!(id_of(&book, "h1").as_deref(), Some("case-1"));
        assert_eq!(id_of(&book, "h2").as_deref(), Some("case-2"));
        // Merged into another account's case: the case that lives on.
        let other = book.case_for("b1", "b1 put at risk", 13, "e3");
        book.apply(&action(
            AnalystActionKind::MergeCase,
            &second,
            "a1",
            Some(&other),
            14,
        ))
        .unwrap();
        assert_eq!(id_of(&book, "h2").as_deref(), Some("case-3"));
        assert_eq!(
            book.case_of_hold("b1", "h2"),
            None,
            "another account's hold"
        );
        // Many at once, in their order, as the queue asks.
        let ids: Vec<Option<&str>> = book
            .cases_of_holds(&[("a1", "h2"), ("a1", "h9"), ("a1", "h1")])
            .into_iter()
            .map(|c| c.map(|c| c.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("case-3"), None, Some("case-1")]);
    }

    #[test]
    fn merge_moves_accounts_and_follows() {
        let mut book = CaseBook::default();
        let a = book.case_for("a1", "one", 1, "e1");
        let b = book.case_for("a2", "two", 2, "e2");
        let into = book
            .apply(&action(AnalystActionKind::MergeCase, &b, "a2", Some(&a), 3))
            .unwrap();
        assert_eq!(into, a);
        assert_eq!(book.get(&a).unwrap().accounts, vec!["a1", "a2"]);
        assert_eq!(
            book.get(&b).unwrap().merged_into.as_deref(),
            Some(a.as_str())
        );
        assert_eq!(book.current_of("a2").unwrap().id, a);
        // Acting on the merged case acts on the one it went into.
        book.apply(&action(
            AnalystActionKind::AddCaseAccount,
            &b,
            "a3",
            None,
            4,
        ))
        .unwrap();
        assert_eq!(book.get(&a).unwrap().accounts, vec!["a1", "a2", "a3"]);
        assert!(
            book.apply(&action(AnalystActionKind::MergeCase, &a, "a1", Some(&b), 5))
                .is_err()
        );
    }
}
