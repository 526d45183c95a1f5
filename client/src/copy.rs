//! `cairn copy`: snapshots of one vault into another, re-encrypted for the
//! target.
//!
//! Chunk ids are keyed by the vault's chunk-id key, so nothing of the
//! source can be stored as it is: every chunk is opened with the source's
//! keys (and verified), its id recomputed with the target's key, and
//! sealed for the target only when the target does not hold it yet (dedup
//! against everything already there, and within the copy). Trees are
//! rewritten bottom-up with the new ids; the record keeps the source's
//! time, item, paths, host name, tags and counters under a new id, sealed
//! for the target. Chunk boundaries stay the source's (restic's copy does
//! the same): nothing is re-chunked, so dedup with the target's own backups
//! is best when both vaults use the same chunker parameters.
//!
//! A snapshot the target already holds (same start time, host name, item,
//! paths and tags, restic's rule) is skipped, so copying again copies only
//! what is new. Each snapshot is committed once its chunks are durable: an
//! interrupted copy keeps the snapshots it finished.

use std::collections::HashMap;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId};
use serde::Serialize;

use crate::blob::Compressor;
use crate::error::{Error, Result};
use crate::jobs::JobOutcome;
use crate::snapshot::{Bound, SnapshotMeta, SnapshotRecord};
use crate::tree::ChunkRef;
use crate::vault::{blob_channel, BlobReader, BlobSender, Sealed, Vault, Written};

/// How many chunks of a file are read, re-keyed and asked about at once
/// (bounds memory: at most this many plaintext chunks are held).
const BATCH: usize = 32;

/// How the copies are recorded in the target.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The device the copies record; `None` keeps each source snapshot's.
    /// (An account vault records the logged-in device, whatever is given.)
    pub device: Option<String>,
    /// The running backup job an account vault commits under.
    pub job: Option<JobId>,
}

/// One snapshot copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copied {
    /// The snapshot in the source vault.
    pub from: SnapshotId,
    /// Its copy in the target vault.
    pub id: SnapshotId,
}

/// What `cairn copy` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CopyReport {
    /// The snapshots copied, in the order given.
    pub copied: Vec<Copied>,
    /// Source snapshots the target already held a copy of.
    pub already_there: Vec<SnapshotId>,
    /// Chunks (data and trees) the target did not hold and now stores.
    pub chunks_stored: u64,
    /// Their plaintext bytes.
    pub bytes_stored: u64,
    /// Their sealed bytes, as stored.
    pub sealed_bytes_stored: u64,
    /// Chunks the copied snapshots use that the target already held.
    pub chunks_reused: u64,
}

impl JobOutcome for CopyReport {
    /// A copy into an account vault runs as a backup job of the target.
    fn job_end(&self) -> FinishJob {
        FinishJob {
            status: JobStatus::Succeeded,
            files: 0,
            bytes: self.bytes_stored,
            error: None,
            log: format!(
                "copied {} snapshot(s) ({} already there): {} chunks stored, {} reused",
                self.copied.len(),
                self.already_there.len(),
                self.chunks_stored,
                self.chunks_reused
            ),
        }
    }
}

/// What makes two snapshots the same backup (restic's rule for copy):
/// start time, host name, item, paths and tags.
#[derive(Debug, PartialEq, Eq)]
struct Identity {
    started_ms: u64,
    hostname: String,
    item: Option<String>,
    paths: Vec<String>,
    tags: Vec<String>,
}

impl Identity {
    fn of(record: &SnapshotRecord, meta: &SnapshotMeta) -> Result<Self> {
        Ok(Self {
            started_ms: crate::snapshot::rfc3339_ms(&record.time)?,
            hostname: meta.hostname.clone(),
            item: record.item.clone(),
            paths: meta.paths.clone(),
            tags: meta.tags.clone(),
        })
    }
}

/// Copies `records` (snapshots of `src`) into `dst`; those `dst` already
/// holds are skipped.
///
/// # Errors
///
/// Damaged source data ([`Error::Integrity`]), and the backends' errors;
/// the snapshot being copied is then not committed (those before it are).
pub fn copy(
    src: &Vault,
    dst: &Vault,
    records: &[SnapshotRecord],
    opts: &CopyOptions,
) -> Result<CopyReport> {
    if src.config().vault_id == dst.config().vault_id {
        return Err(Error::Invalid(
            "the source and the target are the same vault".into(),
        ));
    }
    let mut held = vec![];
    for r in dst.snapshots()? {
        held.push(Identity::of(&r, &r.verified_meta(dst.keys())?)?);
    }
    let mut report = CopyReport::default();
    let mut ids = HashMap::new();
    for record in records {
        let meta = record.verified_meta(src.keys())?;
        let identity = Identity::of(record, &meta)?;
        if held.contains(&identity) {
            report.already_there.push(record.id);
            continue;
        }
        let (root, written, reused) = copy_trees(src, dst, record.root, &mut ids)?;
        dst.backend().flush()?;
        report.chunks_stored += written.chunks;
        report.bytes_stored += written.plain_bytes;
        report.sealed_bytes_stored += written.sealed_bytes;
        report.chunks_reused += reused;
        let id = commit(dst, record, meta, root, opts)?;
        report.copied.push(Copied {
            from: record.id,
            id,
        });
        held.push(identity);
    }
    Ok(report)
}

/// Rewrites the tree `root` of `src` (and everything under it) for `dst`,
/// streaming what `dst` lacks into its sink; returns the new root, what
/// the sink stored and how many chunks `dst` already held.
fn copy_trees(
    src: &Vault,
    dst: &Vault,
    root: ChunkId,
    ids: &mut HashMap<ChunkId, ChunkId>,
) -> Result<(ChunkId, Written, u64)> {
    let sink = dst.backend().sink();
    let (tx, rx) = blob_channel(2);
    std::thread::scope(|s| {
        let storing = s.spawn(move || sink.store_all(rx));
        let mut copier = Copier {
            src,
            dst,
            ids,
            tx,
            zstd: Compressor::new()?,
            reader: BlobReader::default(),
            reused: 0,
        };
        let walked = copier.tree(root);
        let reused = copier.reused;
        drop(copier);
        let stored = storing
            .join()
            .map_err(|_| Error::Invalid("the copy's storing thread panicked".into()))?;
        // A sink that failed closes its end first: its error is the cause.
        let written = stored?;
        Ok((walked?, written, reused))
    })
}

/// The walk that re-keys one snapshot's trees and chunks.
struct Copier<'a, 'm> {
    src: &'a Vault,
    dst: &'a Vault,
    /// Source id → target id of every chunk and tree copied (or found in
    /// the target) so far, across snapshots.
    ids: &'m mut HashMap<ChunkId, ChunkId>,
    tx: BlobSender,
    zstd: Compressor,
    reader: BlobReader,
    reused: u64,
}

impl Copier<'_, '_> {
    /// The target id of source tree `id`, copying it and what it names.
    fn tree(&mut self, id: ChunkId) -> Result<ChunkId> {
        if let Some(done) = self.ids.get(&id) {
            return Ok(*done);
        }
        let mut tree = self.src.tree(id)?;
        for entry in &mut tree.entries {
            if let Some(sub) = entry.subtree {
                entry.subtree = Some(self.tree(sub)?);
            }
            for batch in entry.content.chunks_mut(BATCH) {
                self.chunks(batch)?;
            }
        }
        self.store(vec![(id, tree.encode()?)], true)?;
        Ok(self.ids[&id])
    }

    /// Re-keys one batch of a file's chunk references.
    fn chunks(&mut self, refs: &mut [ChunkRef]) -> Result<()> {
        let mut todo: Vec<ChunkId> = refs
            .iter()
            .map(|r| r.id)
            .filter(|id| !self.ids.contains_key(id))
            .collect();
        todo.sort_unstable();
        todo.dedup();
        self.src.prefetch(&todo, &mut self.reader)?;
        let mut plain = Vec::with_capacity(todo.len());
        for id in todo {
            plain.push((id, self.src.blob_with(id, &mut self.reader)?.to_vec()));
        }
        self.src.drop_prefetched(&mut self.reader);
        self.store(plain, false)?;
        for r in refs {
            r.id = self.ids[&r.id];
        }
        Ok(())
    }

    /// Computes the target ids of `plain` (source id, plaintext), seals and
    /// sends what the target does not hold, and records the mapping.
    fn store(&mut self, plain: Vec<(ChunkId, Vec<u8>)>, tree: bool) -> Result<()> {
        let keyed: Vec<(ChunkId, ChunkId, Vec<u8>)> = plain
            .into_iter()
            .map(|(from, p)| (from, self.dst.codec().id(&p), p))
            .collect();
        let new: Vec<ChunkId> = keyed.iter().map(|(_, to, _)| *to).collect();
        let mut missing = self.dst.missing(&new)?;
        missing.sort_unstable();
        for (from, to, p) in keyed {
            self.ids.insert(from, to);
            match missing.binary_search(&to) {
                Ok(i) => {
                    // Sealed once even when two source ids share a plaintext.
                    missing.remove(i);
                    let bytes = self.dst.codec().seal(&to, &p, &mut self.zstd);
                    let sealed = Sealed {
                        id: to,
                        bytes,
                        plain_len: p.len() as u64,
                        tree,
                    };
                    // A closed channel means the sink failed; its error is
                    // reported when it is joined.
                    self.tx.send(sealed)?;
                }
                Err(_) => self.reused += 1,
            }
        }
        Ok(())
    }
}

/// Seals `record`'s metadata for `dst` with its new root and commits it.
fn commit(
    dst: &Vault,
    record: &SnapshotRecord,
    meta: SnapshotMeta,
    root: ChunkId,
    opts: &CopyOptions,
) -> Result<SnapshotId> {
    let id = SnapshotId::random();
    let vault = dst.config().vault_id;
    let entries = meta.bound.as_ref().map_or(0, |b| b.entries);
    let mut copy = SnapshotRecord {
        format: SNAPSHOT_FORMAT,
        id,
        vault,
        device: opts.device.clone().unwrap_or_else(|| record.device.clone()),
        item: record.item.clone(),
        time: record.time.clone(),
        finished: record.finished.clone(),
        root,
        stats: record.stats.clone(),
        meta: vec![],
    };
    let meta = SnapshotMeta {
        stats: (!dst.backend().keeps_record_stats()).then(|| record.stats.clone()),
        bound: Some(Bound::of(&copy, entries)?),
        ..meta
    };
    copy.meta = meta.seal(dst.keys(), vault, id)?;
    dst.commit_snapshot(&copy, opts.job)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::restore::{self, RestoreOptions};
    use crate::vault::memory::testing::{
        backup_dir, pseudo_random, small_batched_vault, small_vault,
    };

    fn source() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("big"), pseudo_random(300_000, 7)).unwrap();
        fs::write(src.join("sub/small"), b"small").unwrap();
        (tmp, src)
    }

    #[test]
    fn a_copy_restores_byte_exact_under_the_targets_keys_and_is_not_repeated() {
        let (tmp, src) = source();
        let from = small_vault();
        let to = small_batched_vault();
        let first = backup_dir(&from, &src).snapshot;
        let report = copy(
            &from,
            &to,
            std::slice::from_ref(&first),
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(report.copied.len(), 1);
        assert!(report.chunks_stored > 3, "{report:?}");
        assert_eq!(report.chunks_reused, 0);
        let copied = &to.snapshots().unwrap()[0];
        assert_eq!(copied.id, report.copied[0].id);
        assert_ne!(copied.root, first.root, "re-keyed for the target");
        assert_eq!((&copied.time, &copied.device), (&first.time, &first.device));
        let target = tmp.path().join("restored");
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        restore::run(&to, copied, &opts, &restore::Progress::default()).unwrap();
        let back = target.join(src.strip_prefix("/").unwrap());
        assert_eq!(
            fs::read(back.join("big")).unwrap(),
            pseudo_random(300_000, 7)
        );
        assert_eq!(fs::read(back.join("sub/small")).unwrap(), b"small");

        // Again: already there. A second snapshot with one new file stores
        // only that file's chunk and its trees.
        let again = copy(
            &from,
            &to,
            std::slice::from_ref(&first),
            &CopyOptions::default(),
        )
        .unwrap();
        assert_eq!(
            (again.copied.len(), again.already_there),
            (0, vec![first.id])
        );
        fs::write(src.join("new"), b"new file").unwrap();
        let second = backup_dir(&from, &src).snapshot;
        let more = copy(&from, &to, &[first, second], &CopyOptions::default()).unwrap();
        assert_eq!(more.copied.len(), 1);
        // The new file's chunk and the trees on the way to it (each names
        // a changed subtree): the rest was reused.
        let trees = src.components().count() as u64;
        assert_eq!(more.chunks_stored, 1 + trees, "{more:?}");
        assert!(more.chunks_reused > 3, "{more:?}");
    }

    #[test]
    fn a_copy_into_the_same_vault_is_refused() {
        let (_tmp, src) = source();
        let v = small_vault();
        let r = backup_dir(&v, &src).snapshot;
        assert!(matches!(
            copy(&v, &v, &[r], &CopyOptions::default()),
            Err(Error::Invalid(_))
        ));
    }
}
