//! The job log as operators watch it: the names of stored job kinds and
//! statuses (the API's), and the pure counts behind the `cairn_jobs`
//! gauge of `/metrics` (every job in the replicated log by kind and
//! status, `running` and `revived` for unfinished ones), so an alert can
//! page on failing customer backups and not only on Raft health.

use std::collections::BTreeMap;

use cairn_consensus::event::{JobKind as Kind, JobStatus as Status};
use cairn_consensus::state::Job;
use cairn_proto::api::{JobKind, JobStatus};

/// The API form of a stored job kind.
pub fn kind_info(k: Kind) -> JobKind {
    match k {
        Kind::Backup => JobKind::Backup,
        Kind::Restore => JobKind::Restore,
        Kind::Check => JobKind::Check,
        Kind::Prune => JobKind::Prune,
        Kind::Login => JobKind::Login,
        Kind::Retention => JobKind::Retention,
    }
}

/// The API form of a stored job status.
pub fn status_info(s: Status) -> JobStatus {
    match s {
        Status::Succeeded => JobStatus::Succeeded,
        Status::Warnings => JobStatus::Warning,
        Status::Failed => JobStatus::Error,
        Status::Cancelled => JobStatus::Cancelled,
        Status::Timeout => JobStatus::Timeout,
        Status::Quota => JobStatus::Quota,
        Status::Missed => JobStatus::Missed,
        Status::SkippedAlreadyRunning => JobStatus::SkippedAlreadyRunning,
        Status::Abandoned => JobStatus::Abandoned,
    }
}

/// The stored form of a status a device reports.
pub fn status_event(s: JobStatus) -> Status {
    match s {
        JobStatus::Succeeded => Status::Succeeded,
        JobStatus::Warning => Status::Warnings,
        JobStatus::Error => Status::Failed,
        JobStatus::Cancelled => Status::Cancelled,
        JobStatus::Timeout => Status::Timeout,
        JobStatus::Quota => Status::Quota,
        JobStatus::Missed => Status::Missed,
        JobStatus::SkippedAlreadyRunning => Status::SkippedAlreadyRunning,
        // Refused by the state machine (`status_reserved`): only the
        // cluster abandons jobs.
        JobStatus::Abandoned => Status::Abandoned,
    }
}

/// The status a user sees for a stored job: its end status, or `running`
/// / `revived`.
pub fn status_name(j: &Job) -> &'static str {
    match &j.finished {
        Some(end) => status_info(end.status).name(),
        None if j.revived => "revived",
        None => "running",
    }
}

/// How many jobs there are of each (kind, status).
pub fn job_counts<'a>(
    jobs: impl IntoIterator<Item = &'a Job>,
) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut counts = BTreeMap::new();
    for j in jobs {
        *counts
            .entry((kind_info(j.kind).name(), status_name(j)))
            .or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::state::JobEnd;
    use cairn_consensus::{AccountId, DeviceId, JobId, UnixMillis};

    fn job(kind: Kind, end: Option<Status>, revived: bool) -> Job {
        Job {
            id: JobId::random(),
            account: AccountId::random(),
            device: DeviceId::random(),
            vault: None,
            kind,
            started_at: UnixMillis(1),
            finished: end.map(|status| JobEnd {
                status,
                log: String::new(),
                at: UnixMillis(2),
                files: 0,
                bytes: 0,
                error: None,
            }),
            item: None,
            schedule: None,
            last_seen: UnixMillis(1),
            revived,
        }
    }

    #[test]
    fn jobs_are_counted_by_kind_and_user_visible_status() {
        let jobs = [
            job(Kind::Backup, Some(Status::Failed), false),
            job(Kind::Backup, Some(Status::Failed), false),
            job(Kind::Backup, Some(Status::Warnings), false),
            job(Kind::Backup, None, false),
            job(Kind::Backup, None, true),
            job(Kind::Retention, Some(Status::Abandoned), false),
        ];
        let counts = job_counts(&jobs);
        assert_eq!(counts[&("backup", "error")], 2);
        assert_eq!(counts[&("backup", "warning")], 1);
        assert_eq!(counts[&("backup", "running")], 1);
        assert_eq!(counts[&("backup", "revived")], 1);
        assert_eq!(counts[&("retention", "abandoned")], 1);
        assert_eq!(counts.values().sum::<u64>(), 6);
    }
}
