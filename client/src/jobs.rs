//! The job log of an account: each backup, restore, check and prune on an
//! account vault is recorded as a job that starts, then finishes from its
//! report (or is cancelled by a signal).
//!
//! ```text
//!  JobLog::start(kind) ──▶ Job (registered with the CancelToken)
//!      │                     │ command runs
//!      │                     ├─▶ Job::finish(&result): status from the report (JobOutcome)
//!      │                     └─▶ CancelToken::take → PendingCancel::record: `cancelled`
//!  local vault: no log, every step a no-op
//! ```
//!
//! While a job runs, a thread reports a heartbeat every
//! [`JobLog::with_heartbeat`] interval: the cluster ends a job whose device
//! went silent as `abandoned` (a SIGKILLed client), and an abandoned job
//! that reports again is revived but never commits a snapshot.
//!
//! A backup's running job is what keeps a concurrent prune from deleting
//! the chunks it reuses, so a backup whose job cannot be recorded does not
//! run ([`Error::JobNotRecorded`]); for the other kinds an unwritable log is
//! a warning. A job left running would hold off prune on its vault for a
//! day, so a signal records it as cancelled before the process exits.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::api::{FinishJob, JobInfo, JobKind, JobStatus, StartJob};
use cairn_proto::{route, JobId, VaultId};

use crate::error::{Error, Result};
use crate::remote::{Api, Session};

/// The most job-log text sent (the cluster keeps at most 64 KiB).
const JOB_LOG_MAX: usize = 60 * 1024;
/// The most error text sent with a job (the cluster keeps at most 4 KiB).
const JOB_ERROR_MAX: usize = 4000;

/// How often a running job reports a heartbeat unless told otherwise: well
/// inside the cluster's default silence before it abandons a job.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// How a command's report ends its job: status, counts, error and log.
pub trait JobOutcome {
    /// The job end this outcome records.
    fn job_end(&self) -> FinishJob;
}

/// Where jobs of one vault are recorded: the account's job log through
/// `session`, or nowhere (a local vault).
pub struct JobLog<'a> {
    session: Option<&'a Session>,
    vault: VaultId,
    cancel: &'a CancelToken,
    warn: &'a dyn Fn(&str),
    heartbeat: Duration,
    preset: std::cell::Cell<Option<JobId>>,
}

/// A started job; [`Job::finish`] records its end. Its heartbeat thread
/// stops when the job is finished or dropped.
pub struct Job<'a> {
    log: &'a JobLog<'a>,
    id: Option<JobId>,
    _heartbeat: Option<Sender<()>>,
}

impl<'a> JobLog<'a> {
    /// The job log of `vault` (`session`: an account vault's), registering
    /// running jobs with `cancel` and reporting log failures that do not
    /// stop the command through `warn`.
    pub fn new(
        session: Option<&'a Session>,
        vault: VaultId,
        cancel: &'a CancelToken,
        warn: &'a dyn Fn(&str),
    ) -> Self {
        Self {
            session,
            vault,
            cancel,
            warn,
            heartbeat: HEARTBEAT_EVERY,
            preset: std::cell::Cell::new(None),
        }
    }

    /// The same log, whose next job gets id `id` (chosen by whoever
    /// launched this process, so it can tell whether the job started).
    pub fn with_job_id(self, id: Option<JobId>) -> Self {
        self.preset.set(id);
        self
    }

    /// The same log with running jobs reporting every `every`.
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(100));
        self
    }

    /// The vault whose jobs this log records.
    pub fn vault(&self) -> VaultId {
        self.vault
    }

    /// Records the start of a `kind` job (account vaults only; the API
    /// client already retried through every node).
    ///
    /// # Errors
    ///
    /// [`Error::JobNotRecorded`] for a backup whose job could not be
    /// recorded; other kinds then run unrecorded, with a warning.
    pub fn start(&self, kind: JobKind) -> Result<Job<'_>> {
        self.start_for(kind, None, None)
    }

    /// [`JobLog::start`] for a job of protected item `item`, started by
    /// `schedule` if any.
    ///
    /// # Errors
    ///
    /// As [`JobLog::start`].
    pub fn start_for(
        &self,
        kind: JobKind,
        item: Option<&str>,
        schedule: Option<&str>,
    ) -> Result<Job<'_>> {
        let unrecorded = Job {
            log: self,
            id: None,
            _heartbeat: None,
        };
        let Some(s) = self.session else {
            return Ok(unrecorded);
        };
        let id = self.preset.take().unwrap_or_else(JobId::random);
        let started: Result<JobInfo> = s.api().post(
            route::JOBS,
            &StartJob {
                id,
                kind,
                vault: Some(self.vault),
                item: item.map(str::to_string),
                schedule: schedule.map(str::to_string),
            },
        );
        match started {
            Ok(_) => {
                self.cancel.arm(PendingCancel {
                    api: s.api().clone(),
                    id,
                });
                Ok(Job {
                    log: self,
                    id: Some(id),
                    _heartbeat: Some(heartbeat(s.api().clone(), id, self.heartbeat)),
                })
            }
            Err(e) if kind == JobKind::Backup => Err(Error::JobNotRecorded(Box::new(e))),
            Err(e) => {
                (self.warn)(&format!("could not record the job in the job log: {e}"));
                Ok(unrecorded)
            }
        }
    }
}

/// Starts the thread that reports job `id` alive every `every` until the
/// returned sender is dropped. A failed report is retried at the next beat
/// (the cluster allows many missed beats before it abandons a job).
fn heartbeat(api: Arc<Api>, id: JobId, every: Duration) -> Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let path = route::path(route::JOB_HEARTBEAT, &[&id.to_string()]);
    std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            let _: Result<JobInfo> = api.post_empty(&path);
        }
    });
    stop
}

impl Job<'_> {
    /// The job's id, if it was recorded.
    pub fn id(&self) -> Option<JobId> {
        self.id
    }

    /// Records how the job ended: from the report's [`JobOutcome`], or
    /// `error` (`quota` for an over-quota vault) with the error text.
    pub fn finish<T: JobOutcome>(self, outcome: &Result<T>) {
        self.finish_with(end_of(outcome));
    }

    /// Records how the job ended, as given.
    pub fn finish_with(self, end: FinishJob) {
        let (Some(s), Some(id)) = (self.log.session, self.id) else {
            return;
        };
        self.log.cancel.disarm();
        if let Err(e) = finish_job(s.api(), id, &end) {
            (self.log.warn)(&format!(
                "could not record the end of the job in the job log: {e}"
            ));
        }
    }
}

/// The job end a command's outcome records: its report's, or `error`
/// (`quota` when the vault is over its quota) with the error text.
pub fn end_of<T: JobOutcome>(outcome: &Result<T>) -> FinishJob {
    match outcome {
        Ok(report) => report.job_end(),
        Err(e) => FinishJob {
            status: match e {
                Error::QuotaExceeded(_) => JobStatus::Quota,
                _ => JobStatus::Error,
            },
            files: 0,
            bytes: 0,
            error: Some(e.to_string()),
            log: String::new(),
        },
    }
}

/// The running job a signal should record as cancelled. One per process:
/// `cairn` keeps it in a static its signal thread reads.
#[derive(Default)]
pub struct CancelToken {
    pending: Mutex<Option<PendingCancel>>,
}

/// A job to record as cancelled ([`CancelToken::take`]).
pub struct PendingCancel {
    api: Arc<Api>,
    id: JobId,
}

impl CancelToken {
    /// A token with no job running.
    pub const fn new() -> Self {
        Self {
            pending: Mutex::new(None),
        }
    }

    fn arm(&self, job: PendingCancel) {
        if let Ok(mut p) = self.pending.lock() {
            *p = Some(job);
        }
    }

    fn disarm(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = None;
        }
    }

    /// The running job, if any, for recording as cancelled; a job ending
    /// by itself afterwards records nothing more.
    pub fn take(&self) -> Option<PendingCancel> {
        self.pending.lock().ok().and_then(|mut p| p.take())
    }
}

impl PendingCancel {
    /// Records the job as cancelled by `why` (a signal's name).
    pub fn record(self, why: &str) -> Result<()> {
        let end = FinishJob {
            status: JobStatus::Cancelled,
            files: 0,
            bytes: 0,
            error: Some(format!("interrupted by {why}")),
            log: String::new(),
        };
        finish_job(&self.api, self.id, &end)
    }
}

/// Records the end of job `id`, which another process started: the daemon
/// ends a job whose process it stopped on its schedule's timeout.
///
/// # Errors
///
/// The cluster's (no such job, already ended, unreachable).
pub fn finish_by_id(session: &Session, id: JobId, end: &FinishJob) -> Result<()> {
    finish_job(session.api(), id, end)
}

fn finish_job(api: &Api, id: JobId, finish: &FinishJob) -> Result<()> {
    // Clipped rather than refused: an unrecorded end would leave the job
    // running, holding off prune until it is abandoned.
    let finish = FinishJob {
        log: clip(&finish.log, JOB_LOG_MAX),
        error: finish.error.as_deref().map(|e| clip(e, JOB_ERROR_MAX)),
        ..finish.clone()
    };
    let _: JobInfo = api.post(&route::path(route::JOB_FINISH, &[&id.to_string()]), &finish)?;
    Ok(())
}

/// `text` cut to at most `max` bytes on a character boundary, saying how
/// much was left out.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let note_room = 48;
    let mut end = max.saturating_sub(note_room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_text_fits_and_says_what_is_missing() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(10_000);
        let c = clip(&long, 1000);
        assert!(c.len() <= 1000, "{}", c.len());
        assert!(c.ends_with("bytes more)"), "{c}");
    }

    struct Report(u64);

    impl JobOutcome for Report {
        fn job_end(&self) -> FinishJob {
            FinishJob {
                status: JobStatus::Succeeded,
                files: self.0,
                bytes: 0,
                error: None,
                log: String::new(),
            }
        }
    }

    #[test]
    fn a_local_vault_records_nothing_and_arms_no_cancel() {
        let cancel = CancelToken::new();
        let warned = std::cell::Cell::new(0);
        let warn = |_: &str| warned.set(warned.get() + 1);
        let log = JobLog::new(None, VaultId::random(), &cancel, &warn);
        let job = log.start(JobKind::Backup).unwrap();
        assert_eq!(job.id(), None);
        assert!(cancel.take().is_none());
        job.finish(&Ok(Report(1)));
        assert_eq!(warned.get(), 0);
    }

    #[test]
    fn an_over_quota_error_ends_the_job_as_quota() {
        let quota: Result<Report> = Err(Error::QuotaExceeded("full".into()));
        assert_eq!(end_of(&quota).status, JobStatus::Quota);
        let other: Result<Report> = Err(Error::Network("down".into()));
        let end = end_of(&other);
        assert_eq!(end.status, JobStatus::Error);
        assert!(end.error.is_some_and(|e| e.contains("down")));
        assert_eq!(end_of(&Ok(Report(3))).files, 3);
    }
}
