//! Pruning: deleting the chunks no snapshot uses (after [`crate::forget`]
//! removed records).
//!
//! `prune` deletes every chunk that no remaining snapshot reaches. For an
//! account vault the sweep is
//! the server's `chunks/delete`, run as the device's prune job: the server
//! refuses it while a backup runs on the vault and keeps any chunk touched
//! (uploaded, or found present by a backup's dedup check) after the job
//! started, so a backup that deduplicated against an unreferenced chunk
//! during the mark never loses it. Safety argument for a local vault:
//! the chunk store's exclusive lock means no backup runs during a prune, so
//! the live set (every tree and data chunk reachable from every snapshot
//! record) is complete when the sweep starts; and if any tree of any
//! snapshot cannot be read, prune stops before deleting anything rather than
//! trust an incomplete live set.

use std::collections::HashSet;
use std::time::Duration;

use cairn_proto::api::{FinishJob, JobKind, JobStatus};
use cairn_proto::{ChunkId, JobId};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::{JobLog, JobOutcome};
use crate::vault::{LockKind, Vault};

/// How many times [`run`] marks again when a concurrent backup makes the
/// server refuse its sweep.
pub const PRUNE_ATTEMPTS: u32 = 4;
/// Wait before marking again: longer than the server's clock-skew margin
/// around a backup's end (5 s).
pub const PRUNE_RETRY: Duration = Duration::from_secs(6);

/// What `prune` found and removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots whose chunks were kept.
    pub snapshots: u64,
    /// Chunks (trees and data) still referenced.
    pub live_chunks: u64,
    /// Chunks deleted (or that would be, with `dry_run`).
    pub deleted_chunks: u64,
    /// Their sealed size in bytes (local vaults; an account vault's
    /// listing has ids only).
    pub deleted_bytes: u64,
    /// Unreferenced chunks an account vault kept because a backup used
    /// them after the prune started.
    pub kept_recently_used: u64,
}

/// Deletes every chunk that no snapshot references. An account vault's
/// sweep runs as prune job `job` (started by the caller before the mark,
/// so the server keeps every chunk a concurrent backup touches after it).
pub fn prune(vault: &Vault, dry_run: bool, job: Option<JobId>) -> Result<PruneReport> {
    // Held from before the mark to the last delete: no backup commits in
    // between what this prune did not see.
    let _lock = match dry_run {
        true => None,
        false => vault.backend().lock(LockKind::Prune)?,
    };
    let mut live: HashSet<ChunkId> = HashSet::new();
    let mut report = PruneReport::default();
    for snap in vault.snapshots()? {
        report.snapshots += 1;
        let mut stack = vec![snap.root];
        while let Some(id) = stack.pop() {
            if !live.insert(id) {
                continue;
            }
            // An unreadable tree aborts the prune: the live set would be incomplete.
            for entry in vault.tree(id)?.entries {
                live.extend(entry.content.iter().map(|c| c.id));
                stack.extend(entry.subtree);
            }
        }
    }
    report.live_chunks = live.len() as u64;
    let mut dead = vec![];
    vault.backend().list_chunks(&mut |id, size| {
        if !live.contains(&id) {
            dead.push(id);
            report.deleted_bytes += size;
        }
    })?;
    report.deleted_chunks = dead.len() as u64;
    if !dry_run && !dead.is_empty() {
        let swept = vault.backend().delete_chunks(&dead, job)?;
        report.deleted_chunks = swept.deleted;
        report.kept_recently_used = swept.kept_recently_used;
    }
    Ok(report)
}

/// Prunes `vault` as jobs of `log`. A backup that ran during the mark makes
/// an account vault's server refuse the sweep ([`Error::Busy`]: its snapshot
/// may be missing from the marked set), so the prune marks again under a
/// new job, up to [`PRUNE_ATTEMPTS`] times, [`PRUNE_RETRY`] apart; before
/// each wait `retrying` hears why.
///
/// # Errors
///
/// [`Error::Busy`] once the attempts are used up, or the prune's error.
pub fn run(
    vault: &Vault,
    dry_run: bool,
    log: &JobLog<'_>,
    mut retrying: impl FnMut(&str),
) -> Result<PruneReport> {
    let mut attempt = 1;
    loop {
        let job = log.start(JobKind::Prune)?;
        let result = prune(vault, dry_run, job.id());
        job.finish(&result);
        match result {
            Err(Error::Busy(why)) if attempt < PRUNE_ATTEMPTS => {
                retrying(&format!(
                    "{why}; marking again in {} s",
                    PRUNE_RETRY.as_secs()
                ));
                std::thread::sleep(PRUNE_RETRY);
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl JobOutcome for PruneReport {
    fn job_end(&self) -> FinishJob {
        FinishJob {
            status: JobStatus::Succeeded,
            files: 0,
            bytes: self.deleted_bytes,
            error: None,
            log: format!(
                "{} chunks deleted, {} kept (used again during the prune), {} live",
                self.deleted_chunks, self.kept_recently_used, self.live_chunks
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::atomic::AtomicU64;

    use super::*;
    use crate::forget::{self, Selection};
    use crate::jobs::CancelToken;
    use crate::select::Filter;
    use crate::vault::memory::testing::{backup_dir, pseudo_random, small_vault};

    fn stored_chunks(vault: &Vault) -> usize {
        let mut n = 0;
        vault.backend().list_chunks(&mut |_, _| n += 1).unwrap();
        n
    }

    #[test]
    fn prune_deletes_only_what_no_snapshot_uses() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("kept"), pseudo_random(40_000, 1)).unwrap();
        fs::write(src.path().join("old"), pseudo_random(40_000, 2)).unwrap();
        let first = backup_dir(&vault, src.path());
        fs::remove_file(src.path().join("old")).unwrap();
        let second = backup_dir(&vault, src.path());

        // Nothing is unreferenced while both snapshots exist.
        let none = prune(&vault, false, None).unwrap();
        assert_eq!((none.snapshots, none.deleted_chunks), (2, 0));

        let ids = vec![first.snapshot.id.to_hex()];
        forget::run(
            &vault,
            &Selection::Ids(ids),
            &Filter::default(),
            &jiff::tz::TimeZone::UTC,
            false,
        )
        .unwrap();
        let stored = stored_chunks(&vault) as u64;
        let dry = prune(&vault, true, None).unwrap();
        assert!(dry.deleted_chunks > 0 && dry.deleted_bytes > 0, "{dry:?}");
        assert_eq!(stored_chunks(&vault) as u64, stored);

        let cancel = CancelToken::new();
        let log = JobLog::new(None, vault.config().vault_id, &cancel, &|_| {});
        let done = run(&vault, false, &log, |_| panic!("no retry")).unwrap();
        assert_eq!(done.deleted_chunks, dry.deleted_chunks);
        assert_eq!(done.live_chunks + done.deleted_chunks, stored);
        let left = stored_chunks(&vault) as u64;
        assert_eq!(left, done.live_chunks);
        let check = crate::check::run(&vault, true, &AtomicU64::new(0)).unwrap();
        assert!(check.is_clean(), "{:?}", check.problems);
        assert_eq!(
            vault.find_snapshot("latest").unwrap().id,
            second.snapshot.id
        );
    }

    #[test]
    fn an_unreadable_tree_stops_prune_before_anything_is_deleted() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), pseudo_random(10_000, 3)).unwrap();
        let report = backup_dir(&vault, src.path());
        vault
            .backend()
            .delete_chunks(&[report.snapshot.root], None)
            .unwrap();
        let stored = stored_chunks(&vault);
        assert!(matches!(
            prune(&vault, false, None),
            Err(Error::Integrity(m)) if m.contains("missing")
        ));
        assert_eq!(stored_chunks(&vault), stored);
    }
}
