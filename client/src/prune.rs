//! Forgetting snapshots and pruning the chunks no snapshot uses.
//!
//! `forget` only removes snapshot records; `prune` then deletes every chunk
//! that no remaining snapshot reaches. For an account vault the sweep is
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

use std::collections::{BTreeMap, HashSet};

use cairn_proto::{ChunkId, JobId, SnapshotId};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::retention::{self, KeepPolicy};
use crate::snapshot::SnapshotRecord;
use crate::vault::Vault;

/// What `forget` decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// Snapshots kept.
    pub kept: Vec<SnapshotId>,
    /// Snapshots forgotten (or that would be, with `dry_run`).
    pub forgotten: Vec<SnapshotId>,
}

/// Applies `policy` to each group of snapshots (same device, and same item
/// or, without one, same paths) and removes the records it does not keep.
pub fn forget(vault: &Vault, policy: &KeepPolicy, dry_run: bool) -> Result<ForgetReport> {
    let mut groups: BTreeMap<(String, String), Vec<SnapshotRecord>> = BTreeMap::new();
    for snap in vault.snapshots()? {
        let what = match &snap.item {
            Some(item) => format!("item {item}"),
            None => snap.open_meta(vault.keys())?.paths.join("\n"),
        };
        groups
            .entry((snap.device.clone(), what))
            .or_default()
            .push(snap);
    }
    let mut report = ForgetReport::default();
    for snaps in groups.values() {
        let times: Vec<i64> = snaps
            .iter()
            .map(|s| {
                humantime::parse_rfc3339(&s.time)
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs() as i64)
            })
            .collect();
        for (snap, keep) in snaps.iter().zip(retention::keep(&times, policy)) {
            if keep {
                report.kept.push(snap.id);
            } else {
                report.forgotten.push(snap.id);
            }
        }
    }
    if !dry_run {
        for id in &report.forgotten {
            vault.forget_snapshot(*id)?;
        }
    }
    Ok(report)
}

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
    if let Some(remote) = vault.remote() {
        let dead: Vec<ChunkId> = remote
            .list()?
            .into_iter()
            .filter(|id| !live.contains(id))
            .collect();
        report.deleted_chunks = dead.len() as u64;
        if !dry_run && !dead.is_empty() {
            let job = job.ok_or_else(|| {
                Error::Invalid(
                    "pruning an account vault needs its prune job in the job log, which could \
                     not be recorded; nothing was deleted"
                        .into(),
                )
            })?;
            let swept = remote.sweep(job, &dead)?;
            report.deleted_chunks = swept.deleted;
            report.kept_recently_used = swept.kept_recently_used;
        }
        return Ok(report);
    }
    let store = vault.store()?;
    let mut dead = vec![];
    store.for_each_meta(vault.config().vault_id, &mut |id, meta| {
        if !live.contains(&id) {
            dead.push(vault.key(id));
            report.deleted_bytes += u64::from(meta.size);
        }
        Ok(())
    })?;
    report.deleted_chunks = dead.len() as u64;
    if !dry_run {
        for batch in dead.chunks(1024) {
            store.delete_batch(batch)?;
        }
        store.flush()?;
    }
    Ok(report)
}
