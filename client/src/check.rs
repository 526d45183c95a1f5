//! Vault verification.
//!
//! The structural check walks every snapshot's trees (each tree read,
//! decrypted and validated once) and confirms every referenced chunk is
//! present. `--read-data` additionally reads every stored chunk, verifies its
//! store checksum and AEAD tag, decompresses it and re-hashes it against its
//! id, in parallel; damaged chunks are then mapped back to the files that
//! use them so the report names what a restore would lose.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_proto::ChunkId;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tree::Kind;
use crate::vault::{BlobReader, Vault};

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees read.
    pub trees: u64,
    /// Chunks whose data was read and verified (`--read-data`).
    pub chunks_read: u64,
    /// Problems found, one line each.
    pub problems: Vec<String>,
    /// `snapshot-id:/path` of every file with missing or damaged data.
    pub damaged_files: Vec<String>,
}

impl CheckReport {
    /// Whether the vault is sound.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks `vault`; `read_data` also verifies every chunk's contents.
pub fn run(vault: &Vault, read_data: bool, done: &AtomicU64) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let bad: HashSet<ChunkId> = if read_data {
        verify_all(vault, &mut report, done)?
    } else {
        HashSet::new()
    };
    let mut seen_trees = HashSet::new();
    for snap in vault.snapshots()? {
        report.snapshots += 1;
        if let Err(e) = snap.open_meta(vault.keys()) {
            report.problems.push(e.to_string());
        }
        let mut stack = vec![(snap.root, PathBuf::from("/"))];
        while let Some((id, path)) = stack.pop() {
            if !seen_trees.insert(id) {
                continue;
            }
            let tree = match vault.tree(id) {
                Ok(t) => t,
                Err(e) => {
                    report.problems.push(format!(
                        "snapshot {}: {}: {e}",
                        snap.short_id(),
                        path.display()
                    ));
                    report
                        .damaged_files
                        .push(format!("{}:{}", snap.short_id(), path.display()));
                    continue;
                }
            };
            report.trees += 1;
            for entry in &tree.entries {
                let child = path.join(std::ffi::OsStr::from_bytes(&entry.name));
                match (entry.kind, entry.subtree) {
                    (Kind::Dir, Some(sub)) => stack.push((sub, child)),
                    (Kind::File, _) => {
                        for c in &entry.content {
                            let damaged =
                                bad.contains(&c.id) || !vault.store().contains(&vault.key(c.id))?;
                            if damaged {
                                report.problems.push(format!(
                                    "snapshot {}: {}: chunk {} is {}",
                                    snap.short_id(),
                                    child.display(),
                                    c.id,
                                    if bad.contains(&c.id) {
                                        "damaged"
                                    } else {
                                        "missing"
                                    }
                                ));
                                report.damaged_files.push(format!(
                                    "{}:{}",
                                    snap.short_id(),
                                    child.display()
                                ));
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(report)
}

/// Reads and verifies every chunk of the vault; returns the damaged ids.
fn verify_all(
    vault: &Vault,
    report: &mut CheckReport,
    done: &AtomicU64,
) -> Result<HashSet<ChunkId>> {
    let mut ids = vec![];
    vault
        .store()
        .for_each_meta(vault.config().vault_id, &mut |id, _| {
            ids.push(id);
            Ok(())
        })?;
    let bad = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = ids.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in ids.chunks(per) {
            let bad = &bad;
            s.spawn(move || {
                let mut reader = BlobReader::default();
                for id in part {
                    if let Err(e) = vault.blob_with(*id, &mut reader) {
                        if let Ok(mut b) = bad.lock() {
                            b.push((*id, e.to_string()));
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    report.chunks_read = ids.len() as u64;
    let bad = bad
        .into_inner()
        .map_err(|_| Error::Invalid("a check worker panicked".into()))?;
    for (_, msg) in &bad {
        report.problems.push(msg.clone());
    }
    Ok(bad.into_iter().map(|(id, _)| id).collect())
}
