//! `cairn schedule add|list|remove`: this device's schedules, stored on the
//! cluster with its items and run by `cairn daemon`.

use std::path::Path;

use anyhow::Result;
use cairn_client::schedule::{parse_duration, Spec};
use cairn_proto::api::{PutSchedule, ScheduleInfo};
use clap::Subcommand;

use super::args::CommandArgs;
use super::open::session;
use super::output::{self, print_json};

/// The schedule subcommands.
#[derive(Subcommand)]
#[command(after_help = SCHEDULE_EXAMPLES)]
pub enum ScheduleCommand {
    /// Define (or redefine) a schedule: when `cairn daemon` backs up an item.
    ///
    /// Times are this device's local time zone; a DST change neither skips
    /// nor doubles a daily run. A run that is due while the previous job of
    /// the schedule still runs is recorded `skipped_already_running`; one
    /// that passed while the daemon was not running is recorded `missed`
    /// (and run when the daemon starts, with `--run-missed`).
    Add {
        /// Schedule name (unique on this device).
        name: String,
        /// The protected item it backs up (`cairn item list`).
        #[arg(long)]
        item: String,
        /// Back up into this account vault instead of the item's.
        #[arg(long, value_name = "NAME")]
        vault: Option<String>,
        /// When: `once 2027-01-01T02:00`, `hourly :15`, `daily 02:00`,
        /// `weekly mon,thu 02:00`, `monthly 1 02:00`, `every 6h` (or `every 3s`).
        #[arg(long, value_name = "SPEC")]
        at: String,
        /// Start each run up to this much later, at random (spreads a fleet's
        /// load; at most 5h). E.g. 30m.
        #[arg(long, value_name = "DUR")]
        random_delay: Option<String>,
        /// Stop a run that takes longer (recorded `timeout`). E.g. 4h.
        #[arg(long, value_name = "DUR")]
        timeout: Option<String>,
        /// When the daemon starts after a run was due, run it then (it is
        /// recorded `missed` either way). Stored in the spec as a trailing
        /// `run-missed`, which `--at` also accepts.
        #[arg(long)]
        run_missed: bool,
        #[command(flatten)]
        commands: CommandArgs,
    },
    /// List this device's schedules.
    List,
    /// Remove a schedule.
    Remove {
        /// Schedule name.
        name: String,
    },
}

const SCHEDULE_EXAMPLES: &str = "Examples:
  cairn schedule add nightly --item home --at 'daily 02:00' --random-delay 30m
  cairn schedule add office --item work --at 'weekly mon,thu 19:30' --timeout 2h \\
      --before 'systemctl stop app' --after 'systemctl start app'
  cairn schedule add often --item home --at 'every 6h'
  cairn schedule add laptop --item home --at 'daily 12:30' --run-missed
  cairn schedule list
  cairn daemon    # runs them (see deploy/systemd/cairn-daemon.service)";

fn secs(flag: &str, text: Option<&str>) -> Result<Option<u32>> {
    text.map(|t| {
        let d = parse_duration(t)?;
        u32::try_from(d.as_secs()).map_err(|_| anyhow::anyhow!("{flag} {t}: too long"))
    })
    .transpose()
}

/// `cairn schedule …`.
pub fn schedule(config: Option<&Path>, cmd: ScheduleCommand, json: bool) -> Result<u8> {
    let s = session(config)?;
    match cmd {
        ScheduleCommand::Add {
            name,
            item,
            vault,
            at,
            random_delay,
            timeout,
            run_missed,
            commands,
        } => {
            let mut spec: Spec = at.parse()?;
            spec.run_missed |= run_missed;
            let vault = vault.map(|v| s.vault_by_name(&v)).transpose()?;
            let put = PutSchedule {
                item,
                vault: vault.map(|v| v.id),
                spec: spec.to_string(),
                random_delay_s: secs("--random-delay", random_delay.as_deref())?.unwrap_or(0),
                timeout_s: secs("--timeout", timeout.as_deref())?,
                before: commands.before,
                after: commands.after,
            };
            let saved = s.set_schedule(&name, &put)?;
            if json {
                print_json(&saved)?;
            } else {
                println!(
                    "schedule {} backs up item {} at `{}`; `cairn daemon` runs it",
                    saved.name, saved.item, saved.spec
                );
            }
        }
        ScheduleCommand::List => {
            let list = s.schedules()?;
            if json {
                print_json(&list)?;
            } else {
                print(&list);
            }
        }
        ScheduleCommand::Remove { name } => {
            s.remove_schedule(&name)?;
            if json {
                print_json(&output::RemovedJson { removed: &name })?;
            } else {
                println!("removed schedule {name}");
            }
        }
    }
    Ok(0)
}

fn print(list: &[ScheduleInfo]) {
    let mut t = super::output::table(&["name", "item", "at", "delay s", "limit s", "commands"]);
    for s in list {
        t.add_row(vec![
            s.name.clone(),
            s.item.clone(),
            s.spec.clone(),
            s.random_delay_s.to_string(),
            s.timeout_s.map_or("-".into(), |t| t.to_string()),
            format!("{} before, {} after", s.before.len(), s.after.len()),
        ]);
    }
    println!("{}", super::output::table_text(&t));
    println!("{} schedule(s)", list.len());
}
