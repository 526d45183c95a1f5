//! One job of a protected item, as `cairn backup --item NAME` and the
//! daemon's schedules both run it:
//!
//! ```text
//! resolve the item (and the schedule's vault) → open the vault → start the job
//!   → run_chain(schedule/item/vault before → backup::run → afters) → finish the job
//! ```
//!
//! and the retention pass after a scheduled backup: the item's effective
//! policy (its override, else the vault's default) applied to the item's
//! snapshots of this device as a `retention` job, then a prune when the
//! policy's cadence says one is due.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use cairn_proto::api::{FinishJob, JobInfo, JobKind, JobStatus, RetentionPolicy, ScheduleInfo};
use cairn_proto::{JobId, VaultId};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::backup::{self, BackupOptions, BackupReport, ParentChoice, Progress};
use crate::error::{Error, Result};
use crate::forget::{self, ForgetReport};
use crate::hooks::{run_chain, Chain, CommandSet, Context, Shell};
use crate::jobs::{end_of, CancelToken, JobLog};
use crate::remote::Session;
use crate::retention;
use crate::select::Filter;
use crate::{fsmeta, items, prune, Vault};

/// How often a policy without its own cadence prunes: daily.
pub const PRUNE_EVERY_DEFAULT: Duration = Duration::from_secs(24 * 3600);

/// What one item job needs besides the session.
pub struct ItemJob<'a> {
    /// The protected item's name.
    pub item: &'a str,
    /// The schedule that started it, if any (its vault and commands).
    pub schedule: Option<&'a ScheduleInfo>,
    /// The `--vault` the user named as well, if any (must be the item's).
    pub named_vault: Option<&'a Path>,
    /// The account password.
    pub password: &'a [u8],
    /// Excludes on top of the item's.
    pub extra_excludes: Vec<String>,
    /// Parent snapshot selection.
    pub parent: ParentChoice,
    /// The job's id, if the launcher chose it (the daemon does).
    pub job_id: Option<JobId>,
    /// Leave out directories holding a `CACHEDIR.TAG`.
    pub exclude_caches: bool,
    /// Do not descend into another file system below a source.
    pub one_file_system: bool,
    /// Tags sealed with the snapshot.
    pub tags: Vec<String>,
}

/// Where the job's records and side effects go.
pub struct JobEnv<'a> {
    /// Registers the running job for signals.
    pub cancel: &'a CancelToken,
    /// Job-log warnings that do not stop the job.
    pub warn: &'a dyn Fn(&str),
    /// How often the running job reports a heartbeat.
    pub heartbeat: Duration,
    /// Runs the before/after commands.
    pub shell: &'a mut dyn Shell,
}

/// How an item job went.
pub struct ItemRun {
    /// The backup's outcome; `None` when a before command failed and the
    /// backup did not run.
    pub backup: Option<Result<BackupReport>>,
    /// The job end that was recorded (status, commands' log).
    pub end: FinishJob,
    /// The job's id.
    pub job: Option<JobId>,
    /// The vault backed up into.
    pub vault: Vault,
}

/// Runs one backup job of a protected item with its before/after commands.
///
/// # Errors
///
/// Failures before the job starts (no such item, the vault cannot be
/// opened, the job cannot be recorded); the backup's own outcome is in
/// [`ItemRun::backup`].
pub fn backup_item(
    session: &mut Session,
    job: ItemJob<'_>,
    env: JobEnv<'_>,
    progress: &Progress,
) -> Result<ItemRun> {
    let mut item = session.item(job.item)?;
    if let Some(v) = job.schedule.and_then(|s| s.vault) {
        item.vault = v;
    }
    let info = session.vault_by_id(item.vault)?;
    let opened = items::open(session, &item, job.named_vault, job.password)?;
    let device = items::device_name(
        Some(session.profile().device_name.as_str()),
        Some(job.item),
        None,
        fsmeta::hostname,
    )?;
    let chain = Chain {
        schedule: job
            .schedule
            .map(|s| CommandSet {
                before: s.before.clone(),
                after: s.after.clone(),
            })
            .unwrap_or_default(),
        item: CommandSet {
            before: item.before.clone(),
            after: item.after.clone(),
        },
        vault: CommandSet {
            before: info.before.clone(),
            after: info.after.clone(),
        },
    };
    let schedule = job.schedule.map(|s| s.name.as_str());
    let session: &Session = session;
    let log = JobLog::new(Some(session), item.vault, env.cancel, env.warn)
        .with_heartbeat(env.heartbeat)
        .with_job_id(job.job_id);
    let started = log.start_for(JobKind::Backup, Some(job.item), schedule)?;
    let id = started.id();
    let ctx = Context {
        job_id: id.map(|i| i.to_string()).unwrap_or_default(),
        item: job.item.to_string(),
        vault: info.name.clone(),
        schedule: schedule.unwrap_or_default().to_string(),
    };
    let mut excludes = opened.excludes;
    excludes.extend(job.extra_excludes);
    let opts = BackupOptions {
        paths: opened.paths,
        excludes,
        item: Some(job.item.to_string()),
        device,
        parent: job.parent,
        job: id,
        exclude_caches: job.exclude_caches,
        one_file_system: job.one_file_system,
        tags: job.tags,
    };
    let vault = opened.vault;
    let outcome = RefCell::new(None);
    let end = run_chain(&chain, &ctx, env.shell, || {
        let result = backup::run(&vault, &opts, progress);
        let end = end_of(&result);
        *outcome.borrow_mut() = Some(result);
        end
    });
    started.finish_with(end.clone());
    Ok(ItemRun {
        backup: outcome.into_inner(),
        end,
        job: id,
        vault,
    })
}

/// What a retention pass did.
#[derive(Debug, Default)]
pub struct RetentionRun {
    /// The policy applied (`None`: keep everything, nothing to do).
    pub policy: Option<RetentionPolicy>,
    /// The snapshots it kept and forgot.
    pub forget: ForgetReport,
    /// Whether a prune ran after it.
    pub pruned: bool,
}

/// The effective policy of this device's `item` on `vault`: its override,
/// else the vault's default; `None` when that keeps everything.
///
/// # Errors
///
/// The cluster's.
pub fn effective_policy(
    session: &Session,
    vault: VaultId,
    item: &str,
) -> Result<Option<RetentionPolicy>> {
    let info = session.retention(vault)?;
    let policy = info.items.get(item).cloned().or(info.default);
    Ok(policy.filter(|p| !retention::keeps_everything(p)))
}

/// Applies `item`'s effective policy to this device's snapshots of it in
/// `vault` (a `retention` job), its periods taken in `tz`; then, unless `dry_run`, prunes when the
/// policy's cadence says one is due (or always, with `prune_now`).
///
/// # Errors
///
/// Reading the policy or the snapshots, or forgetting; a failed forget is
/// also recorded in the job.
pub fn apply_retention(
    session: &Session,
    vault: &Vault,
    item: &str,
    dry_run: bool,
    prune_now: bool,
    tz: &TimeZone,
    log: &JobLog<'_>,
) -> Result<RetentionRun> {
    let Some(policy) = effective_policy(session, log.vault(), item)? else {
        return Ok(RetentionRun::default());
    };
    let ranges = retention::ranges_of(&policy)?;
    let device = session.profile().device_name.clone();
    let job = log.start_for(JobKind::Retention, Some(item), None)?;
    let result = forget::by_ranges(
        vault,
        &ranges,
        &Filter {
            devices: vec![device],
            items: vec![item.to_string()],
            ..Filter::default()
        },
        Timestamp::now(),
        tz,
        dry_run,
    );
    job.finish(&result);
    let report = result?;
    let due = prune_now
        || prune_due(
            &session.jobs()?,
            log.vault(),
            Timestamp::now().as_millisecond() as u64,
            policy
                .prune_every_s
                .map_or(PRUNE_EVERY_DEFAULT, |s| Duration::from_secs(s.into())),
        );
    let pruned = !dry_run && !report.forgotten.is_empty() && due;
    if pruned {
        prune::run(vault, false, log, |_| {})?;
    }
    Ok(RetentionRun {
        policy: Some(policy),
        forget: report,
        pruned,
    })
}

/// Whether a prune of `vault` is due at `now_ms`: no prune of it has
/// succeeded within `every`.
pub fn prune_due(jobs: &[JobInfo], vault: VaultId, now_ms: u64, every: Duration) -> bool {
    let last = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Prune && j.vault == Some(vault))
        .filter(|j| j.status == Some(JobStatus::Succeeded))
        .filter_map(|j| j.finished_at)
        .max();
    last.is_none_or(|t| now_ms.saturating_sub(t) >= every.as_millis() as u64)
}

impl ItemRun {
    /// Takes the backup's report, or the reason there is none: the
    /// backup's error, or the failed before command.
    ///
    /// # Errors
    ///
    /// As said.
    pub fn take_report(&mut self) -> Result<BackupReport> {
        match self.backup.take() {
            Some(r) => r,
            None => Err(Error::Invalid(
                self.end
                    .error
                    .clone()
                    .unwrap_or_else(|| "a before command failed".into()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::{AccountId, DeviceId};

    fn job(kind: JobKind, vault: VaultId, status: Option<JobStatus>, end: u64) -> JobInfo {
        JobInfo {
            id: JobId::random(),
            account: AccountId::random(),
            user: String::new(),
            device: DeviceId::random(),
            device_name: String::new(),
            vault: Some(vault),
            kind,
            started_at: end.saturating_sub(1),
            finished_at: status.map(|_| end),
            duration_ms: None,
            status,
            files: 0,
            bytes: 0,
            error: None,
            log: String::new(),
            item: None,
            schedule: None,
            last_seen: 0,
            revived: false,
            dispatched_by: None,
        }
    }

    #[test]
    fn a_prune_is_due_when_none_succeeded_on_the_vault_within_the_cadence() {
        let v = VaultId::random();
        let other = VaultId::random();
        let hour = Duration::from_secs(3600);
        assert!(prune_due(&[], v, 10_000_000, hour));
        let jobs = vec![
            job(JobKind::Prune, v, Some(JobStatus::Succeeded), 1_000_000),
            job(JobKind::Prune, v, Some(JobStatus::Error), 9_000_000),
            job(JobKind::Prune, other, Some(JobStatus::Succeeded), 9_000_000),
            job(JobKind::Backup, v, Some(JobStatus::Succeeded), 9_000_000),
            job(JobKind::Prune, v, None, 9_000_000),
        ];
        assert!(prune_due(&jobs, v, 1_000_000 + 3_600_000, hour));
        assert!(!prune_due(&jobs, v, 1_000_000 + 3_599_999, hour));
    }
}
