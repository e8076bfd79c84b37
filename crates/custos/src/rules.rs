//! `custos rules`: rule directories checked offline, as a CI step for a
//! team's rules repository.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;
use custos_config::{LoadRulesError, load_rules_dir};
use custos_core::rules::RuleSet;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Parse and type-check every rule and list in DIR; print what each rule
    /// reads, or every error with its line, column and a caret. Exits 1 on
    /// any error.
    Check {
        dir: PathBuf,
        /// Print the compiled summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check { dir, json } => check(dir, json),
    }
}

fn check(dir: PathBuf, json: bool) -> anyhow::Result<()> {
    let compiled = load_rules_dir(&dir)
        .and_then(|source| RuleSet::compile(source, 0).map_err(LoadRulesError::Invalid));
    let rules = match compiled {
        Ok(rules) => rules,
        Err(LoadRulesError::Invalid(e)) => {
            for error in &e.errors {
                eprintln!("error: {error}\n");
            }
            bail!(
                "{} problem{} in {}",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" },
                dir.display()
            );
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        let summary: Vec<serde_json::Value> = rules
            .rules()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.source.id,
                    "action": r.source.action,
                    "mode": r.source.mode,
                    "events": r.source.events,
                    "reads": r.reads().collect::<Vec<_>>(),
                    "lists": r.lists(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": rules.name(),
                "rules": summary,
            }))?
        );
        return Ok(());
    }
    println!(
        "{}: rule set {:?}, {} rules, {} lists: ok",
        dir.display(),
        rules.name(),
        rules.rules().len(),
        rules.source().lists.len()
    );
    for rule in rules.rules() {
        let events = if rule.source.events.is_empty() {
            "all events".to_string()
        } else {
            rule.source
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mode = match rule.source.mode {
            custos_core::rules::Mode::Active => "",
            custos_core::rules::Mode::Shadow => " (shadow)",
        };
        println!(
            "  {:<48} {:<9}{mode} on {events}; reads {}",
            rule.source.id,
            rule.source.action.as_str(),
            rule.reads().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}
