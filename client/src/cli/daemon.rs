//! `cairn daemon`: runs this device's schedules until SIGTERM or Ctrl-C
//! (see `cairn_client::daemon` for what it does).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_client::daemon::{self, DaemonLock, DaemonOptions};
use cairn_client::remote::config::profile_path;
use cairn_client::schedule::parse_duration;
use clap::Args;

use super::interrupt;
use super::open::{session, ACCOUNT_PASSWORD};

/// `cairn daemon` options.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn daemon                      # in the foreground; Ctrl-C stops it
  systemctl --user enable --now cairn-daemon   # deploy/systemd/cairn-daemon.service

Jobs run as `cairn backup --item ITEM --schedule NAME`, each in its own
process, with the item's, vault's and schedule's before/after commands.
The account password comes from CAIRN_PASSWORD, CAIRN_PASSWORD_FILE or
CAIRN_PASSWORD_COMMAND (never a prompt).

The daemon also keeps a live connection to one of the cluster's nodes
(failing over between them) so administrators and the account's other
devices can dispatch backups, restores, retention and checks to it.")]
pub struct DaemonArgs {
    /// How often to reload the schedules from the cluster (e.g. 60s).
    #[arg(long, value_name = "DUR", default_value = "60s")]
    pub poll: String,
    /// Keep no live connection: administrators cannot dispatch jobs to
    /// this device (schedules still run).
    #[arg(long)]
    pub no_remote_control: bool,
}

/// Set by SIGTERM or SIGINT: the daemon stops its jobs and exits 0.
static STOP: AtomicBool = AtomicBool::new(false);

/// `cairn daemon`; `time_zone` (`--time-zone`) is handed on to its jobs.
pub fn daemon(config: Option<&Path>, time_zone: Option<&str>, args: DaemonArgs) -> Result<u8> {
    let path = profile_path(config, |k| std::env::var(k).ok())?;
    let mut s = session(config)?;
    let lock = DaemonLock::take(&path)?;
    let say = |line: &str| eprintln!("cairn daemon: {line}");
    // Snapshot listings for remote control are sealed with a key from the
    // account password; without one in the environment they are refused.
    let password = (!args.no_remote_control)
        .then(|| super::password::from_environment(ACCOUNT_PASSWORD))
        .flatten();
    let listing_key = match password.map(|pw| pw.and_then(|pw| Ok(s.listing_key(&pw)?))) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => {
            say(&format!("snapshot listings are off: {e}"));
            None
        }
        None => None,
    };
    let poll = parse_duration(&args.poll)?;
    let opts = DaemonOptions {
        exe: std::env::current_exe().context("the cairn binary's path")?,
        global_args: config
            .iter()
            .flat_map(|c| ["--config".into(), c.as_os_str().to_owned()])
            .chain(
                time_zone
                    .iter()
                    .flat_map(|z| ["--time-zone".into(), z.into()]),
            )
            .collect(),
        poll: Duration::from_millis(poll.as_millis().max(100) as u64),
        tz: super::zone::get(),
        remote_control: !args.no_remote_control,
        listing_key,
    };
    interrupt::stop_on_signal(&STOP);
    say(&format!(
        "running for device {} (lock {})",
        s.profile().device_name,
        lock.path().display()
    ));
    daemon::run(&s, &opts, &STOP, &say)?;
    say("stopped");
    Ok(0)
}
