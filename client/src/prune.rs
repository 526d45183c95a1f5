//! Forgetting snapshots and pruning the chunks no snapshot uses.
//!
//! `forget` only removes snapshot records; `prune` then deletes every chunk
//! that no remaining snapshot reaches. Safety argument for a local vault:
//! the chunk store's exclusive lock means no backup runs during a prune, so
//! the live set (every tree and data chunk reachable from every snapshot
//! record) is complete when the sweep starts; and if any tree of any
//! snapshot cannot be read, prune stops before deleting anything rather than
//! trust an incomplete live set.

use std::collections::{BTreeMap, HashSet};

use cairn_proto::{ChunkId, SnapshotId};
use serde::Serialize;

use crate::error::Result;
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
    /// Their sealed size in bytes.
    pub deleted_bytes: u64,
}

/// What `prune` says about an account vault.
pub const REMOTE_NOTE: &str = "account vault: the live set was verified (every tree of every \
     snapshot readable); the cluster frees the chunks of deleted vaults itself and does not yet \
     sweep unreferenced chunks of live vaults, so nothing was deleted";

/// Deletes every chunk that no snapshot references. For an account vault
/// it marks and verifies the live set (every tree readable) but deletes
/// nothing: the storage API has no sweep of a live vault's chunks yet
/// ([`REMOTE_NOTE`]).
pub fn prune(vault: &Vault, dry_run: bool) -> Result<PruneReport> {
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
    if vault.remote().is_some() {
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
