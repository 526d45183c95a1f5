//! `cairn retention set|show|clear|apply`: the retention policies of the
//! account's vaults (a vault's default, and this device's per-item
//! overrides), stored on the cluster; the selection is
//! `cairn_client::retention`'s.

use std::path::Path;

use anyhow::{bail, Result};
use cairn_client::jobs::JobLog;
use cairn_client::run::{apply_retention, RetentionRun};
use cairn_client::schedule::parse_duration;
use cairn_client::Vault;
use cairn_proto::api::{RetentionPeriod, RetentionPolicy, RetentionRange};
use clap::{Args, Subcommand};
use jiff::civil::Date;
use serde::Serialize;

use super::interrupt;
use super::open::{account_password, session};
use super::output::print_json;

/// The retention subcommands.
#[derive(Subcommand)]
#[command(after_help = RETENTION_EXAMPLES)]
pub enum RetentionCommand {
    /// Set the policy of an account vault (its default for every item of
    /// every device) or, with --item, of one of this device's items on it.
    ///
    /// The ranges combine as a union: a snapshot is kept if any range keeps
    /// it, and the newest snapshot is always kept. Without a policy a vault
    /// keeps everything.
    Set(SetArgs),
    /// Show a vault's default policy and this device's overrides on it.
    Show {
        /// The account vault.
        #[arg(long, value_name = "NAME")]
        vault: String,
    },
    /// Clear a vault's default policy, or an item's override.
    Clear {
        /// The account vault.
        #[arg(long, value_name = "NAME")]
        vault: String,
        /// This device's item whose override goes.
        #[arg(long)]
        item: Option<String>,
    },
    /// Apply the policy now to this device's snapshots of its items on a
    /// vault (or of one item): forget what it does not keep, then prune.
    Apply {
        /// The account vault.
        #[arg(long, value_name = "NAME")]
        vault: String,
        /// Only this item (default: every item of this device on the vault).
        #[arg(long)]
        item: Option<String>,
        /// Say what would be forgotten; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

const RETENTION_EXAMPLES: &str = "Examples:
  cairn retention set --vault laptop --keep-last 3 --one-per-day 7 --one-per-month 12
  cairn retention set --vault laptop --item home --newer-than 30d --prune-every 1d
  cairn retention show --vault laptop
  cairn retention apply --vault laptop --dry-run";

/// `cairn retention set`.
#[derive(Args)]
pub struct SetArgs {
    /// The account vault.
    #[arg(long, value_name = "NAME")]
    pub vault: String,
    /// Override the vault's default for this item of this device.
    #[arg(long)]
    pub item: Option<String>,
    /// Keep every snapshot (the default without a policy).
    #[arg(long, conflicts_with_all = ["keep_last", "newer_than", "since", "first_daily", "first_weekly", "first_monthly", "one_per_day", "one_per_week", "one_per_month"])]
    pub keep_everything: bool,
    /// Keep the N most recent snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep snapshots younger than DUR (e.g. 30d, 12h).
    #[arg(long, value_name = "DUR")]
    pub newer_than: Option<String>,
    /// Keep snapshots taken since DATE (YYYY-MM-DD, local time).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Keep the first snapshot of each of the last N days.
    #[arg(long, value_name = "N")]
    pub first_daily: Option<u32>,
    /// Keep the first snapshot of each of the last N weeks.
    #[arg(long, value_name = "N")]
    pub first_weekly: Option<u32>,
    /// Keep the first snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    pub first_monthly: Option<u32>,
    /// Keep the last N backups, one for each day.
    #[arg(long, value_name = "N")]
    pub one_per_day: Option<u32>,
    /// Keep the last N backups, one for each week.
    #[arg(long, value_name = "N")]
    pub one_per_week: Option<u32>,
    /// Keep the last N backups, one for each month.
    #[arg(long, value_name = "N")]
    pub one_per_month: Option<u32>,
    /// How often the daemon prunes after applying the policy (default 1d).
    #[arg(long, value_name = "DUR")]
    pub prune_every: Option<String>,
}

impl SetArgs {
    /// The policy these flags describe.
    fn policy(&self) -> Result<RetentionPolicy> {
        let mut ranges = Vec::new();
        if self.keep_everything {
            ranges.push(RetentionRange::Everything);
        }
        if let Some(count) = self.keep_last {
            ranges.push(RetentionRange::Last { count });
        }
        if let Some(d) = &self.newer_than {
            let secs = parse_duration(d)?.as_secs().unsigned_abs();
            ranges.push(RetentionRange::NewerThan { secs });
        }
        if let Some(d) = &self.since {
            let date: Date = d
                .parse()
                .map_err(|e| anyhow::anyhow!("--since {d:?}: not a date like 2027-01-31 ({e})"))?;
            let at = super::zone::get()
                .to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .compatible()?;
            ranges.push(RetentionRange::Since {
                at: u64::try_from(at.as_millisecond()).unwrap_or(0),
            });
        }
        let periods = [
            (self.first_daily, RetentionPeriod::Day, true),
            (self.first_weekly, RetentionPeriod::Week, true),
            (self.first_monthly, RetentionPeriod::Month, true),
            (self.one_per_day, RetentionPeriod::Day, false),
            (self.one_per_week, RetentionPeriod::Week, false),
            (self.one_per_month, RetentionPeriod::Month, false),
        ];
        for (n, period, first) in periods {
            if let Some(count) = n {
                ranges.push(if first {
                    RetentionRange::FirstOf { period, count }
                } else {
                    RetentionRange::OnePer { period, count }
                });
            }
        }
        if ranges.is_empty() {
            bail!("no range given: use --keep-everything or --keep-last, --newer-than, --since, --first-…, --one-per-…");
        }
        let prune_every_s = self
            .prune_every
            .as_deref()
            .map(|d| -> Result<u32> { Ok(u32::try_from(parse_duration(d)?.as_secs())?) })
            .transpose()?;
        Ok(RetentionPolicy {
            ranges,
            prune_every_s,
        })
    }
}

#[derive(Serialize)]
struct AppliedJson<'a> {
    item: &'a str,
    policy: bool,
    kept: usize,
    forgotten: Vec<String>,
    pruned: bool,
    dry_run: bool,
}

/// `cairn retention …`.
pub fn retention(config: Option<&Path>, cmd: RetentionCommand, json: bool) -> Result<u8> {
    match cmd {
        RetentionCommand::Set(args) => {
            let s = session(config)?;
            let v = s.vault_by_name(&args.vault)?;
            let info = s.set_retention(v.id, args.item.as_deref(), args.policy()?)?;
            if json {
                print_json(&info)?;
            } else {
                println!(
                    "retention policy of vault {}{} set",
                    v.name,
                    args.item
                        .map(|i| format!(" for item {i}"))
                        .unwrap_or_default()
                );
            }
        }
        RetentionCommand::Show { vault } => {
            let s = session(config)?;
            let v = s.vault_by_name(&vault)?;
            let info = s.retention(v.id)?;
            if json {
                print_json(&info)?;
            } else {
                let show = |p: &RetentionPolicy| serde_json::to_string(p).unwrap_or_default();
                match &info.default {
                    Some(p) => println!("vault {}: {}", v.name, show(p)),
                    None => println!("vault {}: keep everything", v.name),
                }
                for (item, p) in &info.items {
                    println!("  item {item}: {}", show(p));
                }
            }
        }
        RetentionCommand::Clear { vault, item } => {
            let s = session(config)?;
            let v = s.vault_by_name(&vault)?;
            let info = s.clear_retention(v.id, item.as_deref())?;
            if json {
                print_json(&info)?;
            } else {
                println!("retention policy cleared");
            }
        }
        RetentionCommand::Apply {
            vault,
            item,
            dry_run,
        } => {
            let mut s = session(config)?;
            let pw = account_password()?;
            let v = Vault::open_account(&mut s, &vault, &pw)?;
            let id = v.config().vault_id;
            let items: Vec<String> = match item {
                Some(i) => vec![i],
                None => s
                    .items()?
                    .into_iter()
                    .filter(|i| i.vault == id)
                    .map(|i| i.name)
                    .collect(),
            };
            let warn = |w: &str| eprintln!("warning: {w}");
            let log = JobLog::new(Some(&s), id, interrupt::cancel_token(), &warn)
                .with_job_id(super::commands::dispatched_job());
            let mut applied = Vec::new();
            for i in &items {
                let run: RetentionRun =
                    apply_retention(&s, &v, i, dry_run, true, &super::zone::get(), &log)?;
                applied.push(AppliedJson {
                    item: i,
                    policy: run.policy.is_some(),
                    kept: run.forget.kept.len(),
                    forgotten: run.forget.forgotten.iter().map(|f| f.to_hex()).collect(),
                    pruned: run.pruned,
                    dry_run,
                });
            }
            if json {
                print_json(&applied)?;
            } else {
                for a in &applied {
                    if !a.policy {
                        println!("item {}: no policy, everything kept", a.item);
                        continue;
                    }
                    println!(
                        "item {}: kept {}, {} {}{}",
                        a.item,
                        a.kept,
                        if dry_run { "would forget" } else { "forgot" },
                        a.forgotten.len(),
                        if a.pruned { "; pruned" } else { "" }
                    );
                }
            }
        }
    }
    Ok(0)
}
