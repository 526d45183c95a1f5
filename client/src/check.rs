//! Vault verification.
//!
//! The structural check walks every snapshot's trees (each tree read,
//! decrypted and validated once) and confirms every referenced chunk is
//! present. `--read-data` additionally reads every stored chunk, verifies its
//! store checksum and AEAD tag, decompresses it and re-hashes it against its
//! id, in parallel; damaged chunks are then mapped back to the files that
//! use them so the report names what a restore would lose. An account
//! vault cannot list its chunks, so there `--read-data` fetches and
//! verifies every chunk the snapshots reference, in parallel batches.

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
    let mut bad: HashSet<ChunkId> = if read_data && vault.remote().is_none() {
        verify_all(vault, &mut report, done)?
    } else {
        HashSet::new()
    };
    let mut seen_trees = HashSet::new();
    // Files with their chunks, checked for presence in one batched pass
    // after the walk (one request per many ids for an account vault).
    let mut files: Vec<(String, Vec<ChunkId>)> = vec![];
    for snap in vault.snapshots_unverified()? {
        report.snapshots += 1;
        if let Err(e) = snap.verified_meta(vault.keys()) {
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
                    (Kind::File, _) if !entry.content.is_empty() => files.push((
                        format!("{}:{}", snap.short_id(), child.display()),
                        entry.content.iter().map(|c| c.id).collect(),
                    )),
                    _ => {}
                }
            }
        }
    }
    let mut ids: Vec<ChunkId> = files.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    if read_data && vault.remote().is_some() {
        // An account vault cannot list its chunks: verify every chunk the
        // snapshots reference (trees were verified by the walk).
        bad = verify_ids(vault, &ids, &mut report, done)?;
    }
    let unchecked: Vec<ChunkId> = ids.into_iter().filter(|id| !bad.contains(id)).collect();
    let missing: HashSet<ChunkId> = vault.missing(&unchecked)?.into_iter().collect();
    for (label, chunks) in files {
        if let Some(c) = chunks
            .iter()
            .find(|c| bad.contains(c) || missing.contains(c))
        {
            let (snap, path) = label.split_once(':').unwrap_or((&label, ""));
            report.problems.push(format!(
                "snapshot {snap}: {path}: chunk {c} is {}",
                if bad.contains(c) {
                    "damaged"
                } else {
                    "missing"
                }
            ));
            report.damaged_files.push(label);
        }
    }
    Ok(report)
}

/// Fetches (for an account vault, prefetches a batch at a time) and
/// verifies `ids` in parallel batches; returns the damaged or missing ones
/// (each with a problem line).
fn verify_ids(
    vault: &Vault,
    ids: &[ChunkId],
    report: &mut CheckReport,
    done: &AtomicU64,
) -> Result<HashSet<ChunkId>> {
    const BATCH: usize = 16;
    let bad = Mutex::new(Vec::new());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // An account vault's workers mostly wait on the network.
    let threads = if vault.remote().is_some() {
        2 * cores + 2
    } else {
        cores
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (bad, failure, next) = (&bad, &failure, &next);
            s.spawn(move || {
                let mut reader = BlobReader::default();
                loop {
                    let start = next.fetch_add(BATCH, Ordering::Relaxed);
                    if start >= ids.len() {
                        break;
                    }
                    let batch = &ids[start..(start + BATCH).min(ids.len())];
                    if let Err(e) = vault.prefetch(batch, &mut reader) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                    for id in batch {
                        if let Err(e) = vault.blob_with(*id, &mut reader) {
                            if let Ok(mut b) = bad.lock() {
                                b.push((*id, e.to_string()));
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    vault.drop_prefetched(&mut reader);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    report.chunks_read = ids.len() as u64;
    let bad = bad
        .into_inner()
        .map_err(|_| Error::Invalid("a check worker panicked".into()))?;
    for (_, msg) in &bad {
        report.problems.push(msg.clone());
    }
    Ok(bad.into_iter().map(|(id, _)| id).collect())
}

/// Reads and verifies every chunk of the vault; returns the damaged ids.
fn verify_all(
    vault: &Vault,
    report: &mut CheckReport,
    done: &AtomicU64,
) -> Result<HashSet<ChunkId>> {
    let mut ids = vec![];
    vault
        .store()?
        .for_each_meta(vault.config().vault_id, &mut |id, _| {
            ids.push(id);
            Ok(())
        })?;
    verify_ids(vault, &ids, report, done)
}
