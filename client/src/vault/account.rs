//! An account vault as a [`Backend`]: chunks and records over the storage
//! API ([`RemoteVault`]), and the backup's upload stage (`AccountSink`).
//!
//! ```text
//!  sealed blobs ──▶ batcher ──batches of ~8 MiB──▶ uploaders ×UPLOADERS
//!  (from workers)   (this thread)                   missing(ids) → upload(only those)
//! ```
//!
//! The backup's workers dedup within the run; the upload stage dedups
//! against the vault: each batch first asks which of its ids the cluster
//! lacks (one request for the whole batch) and uploads only those. So a
//! backup that was interrupted, or that overlaps another device's, never
//! uploads a chunk twice. Several batches are in flight at once so the
//! network, the server's replication and the client's CPU overlap. The
//! answer to an upload comes once the chunks are durable on the write
//! quorum, so when the stage returns without error every chunk of the
//! snapshot is stored and the record may be committed. The first error
//! stops the stage; the backup then fails and commits nothing (over quota
//! included).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::api::VaultInfo;
use cairn_proto::version::VAULT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId};
use crossbeam_channel::bounded;

use super::backend::{Backend, Deleted};
use super::sink::{Blobs, Sealed, Sink, Written};
use super::slots::{KeySlot, Unlock};
use super::{Compression, Vault, VaultConfig};
use crate::crypto::{KdfParams, VaultSecrets};
use crate::error::{Error, Result};
use crate::remote::{RemoteVault, Session};
use crate::snapshot::SnapshotRecord;

/// A batch closes at this many sealed bytes…
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// …or this many chunks (small files and trees)…
pub const BATCH_CHUNKS: usize = 1024;
/// …or this long after its first blob.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Upload requests in flight.
pub const UPLOADERS: usize = 4;

/// An account vault.
pub struct AccountBackend {
    remote: RemoteVault,
}

impl Vault {
    /// Opens and unlocks the account vault called `name`.
    pub fn open_account(session: &mut Session, name: &str, password: &[u8]) -> Result<Self> {
        let info = session.vault_by_name(name)?;
        Self::open_account_info(session, info, password)
    }

    /// Opens and unlocks the account vault `info` (from
    /// [`Session::vaults`]).
    pub fn open_account_info(
        session: &mut Session,
        info: VaultInfo,
        password: &[u8],
    ) -> Result<Self> {
        let (remote, secrets, kdf) = session.unlock_vault(info, password)?;
        Ok(Self::from_account(remote, secrets, kdf))
    }

    /// An unlocked account vault. Its [`Vault::config`] is assembled from
    /// the vault record (id, sealed keys), the unwrapped parameters and the
    /// account's KDF parameters.
    fn from_account(remote: RemoteVault, secrets: VaultSecrets, kdf: KdfParams) -> Self {
        let config = VaultConfig {
            format: VAULT_FORMAT,
            vault_id: remote.id(),
            chunker: secrets.chunker,
            compression: Compression {
                zstd_level: secrets.zstd_level,
            },
            slots: vec![KeySlot {
                id: 0,
                unlock: Unlock::Password { kdf },
                keys: remote.info().wrapped_keys.clone(),
            }],
        };
        Self::with_backend(config, secrets.keys, Box::new(AccountBackend { remote }))
    }
}

impl Backend for AccountBackend {
    fn batches_reads(&self) -> bool {
        true
    }

    fn keeps_record_stats(&self) -> bool {
        false
    }

    fn contains(&self, id: ChunkId) -> Result<bool> {
        Ok(self.remote.missing(&[id])?.is_empty())
    }

    fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        self.remote.missing(ids)
    }

    fn get_into(&self, id: ChunkId, out: &mut Vec<u8>) -> Result<bool> {
        match self.remote.get(id)? {
            Some(bytes) => {
                *out = bytes;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        self.remote.get_many(ids)
    }

    fn list_chunks(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<()> {
        for id in self.remote.list()? {
            visit(id, 0);
        }
        Ok(())
    }

    fn delete_chunks(&self, ids: &[ChunkId], job: Option<JobId>) -> Result<Deleted> {
        let job = job.ok_or_else(|| {
            Error::Invalid(
                "pruning an account vault needs its prune job in the job log, which could \
                 not be recorded; nothing was deleted"
                    .into(),
            )
        })?;
        let swept = self.remote.sweep(job, ids)?;
        Ok(Deleted {
            deleted: swept.deleted,
            kept_recently_used: swept.kept_recently_used,
        })
    }

    /// Uploads are durable on the write quorum when answered.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sink(&self) -> Box<dyn Sink + '_> {
        Box::new(AccountSink {
            remote: &self.remote,
        })
    }

    fn cached_tree(&self, id: ChunkId) -> Option<Vec<u8>> {
        self.remote.cached_tree(id)
    }

    fn cache_tree(&self, id: ChunkId, sealed: &[u8]) {
        self.remote.cache_tree(id, sealed);
    }

    fn uncache_tree(&self, id: ChunkId) {
        self.remote.uncache_tree(id);
    }

    fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        self.remote.snapshots()
    }

    fn observe_snapshots(&self, records: &[SnapshotRecord]) -> Result<()> {
        self.remote.observe_newest(records)
    }

    fn check_latest(&self, records: &[SnapshotRecord]) -> Result<()> {
        self.remote.check_newest_seen(records)
    }

    fn acknowledge_snapshots(&self) -> Result<()> {
        self.remote.reset_newest_seen(&self.remote.snapshots()?)
    }

    fn commit_snapshot(
        &self,
        record: &SnapshotRecord,
        label: &str,
        job: Option<JobId>,
    ) -> Result<()> {
        let job = job.ok_or_else(|| {
            Error::Invalid(
                "a backup to an account vault commits only under a running backup job".into(),
            )
        })?;
        self.remote.commit(record, label, job)
    }

    fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        self.remote.forget(id)
    }

    fn rewrap(&self, _config: &VaultConfig) -> Result<()> {
        Err(Error::Invalid(
            "an account vault's keys follow the account password: use `cairn key passwd` \
             without --vault"
                .into(),
        ))
    }
}

/// The upload stage of a backup into an account vault (see the module
/// documentation).
struct AccountSink<'a> {
    remote: &'a RemoteVault,
}

impl Sink for AccountSink<'_> {
    fn dedups(&self) -> bool {
        true
    }

    fn store_all(&self, mut blobs: Blobs) -> Result<Written> {
        let remote = self.remote;
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let (chunks, sealed, plain) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
        let (batch_tx, batch_rx) = bounded::<Vec<Sealed>>(UPLOADERS);
        std::thread::scope(|s| {
            for _ in 0..UPLOADERS {
                let batch_rx = batch_rx.clone();
                let (failed, first_error) = (&failed, &first_error);
                let (chunks, sealed, plain) = (&chunks, &sealed, &plain);
                s.spawn(move || {
                    for batch in batch_rx {
                        if failed.load(Ordering::Relaxed) {
                            continue;
                        }
                        match upload_batch(remote, &batch) {
                            Ok(u) => {
                                chunks.fetch_add(u.chunks, Ordering::Relaxed);
                                sealed.fetch_add(u.sealed_bytes, Ordering::Relaxed);
                                plain.fetch_add(u.plain_bytes, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                if let Ok(mut slot) = first_error.lock() {
                                    slot.get_or_insert(e);
                                }
                            }
                        }
                    }
                });
            }
            drop(batch_rx);
            while let Some(first) = blobs.recv() {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let batch = fill_batch(first, |deadline| blobs.recv_deadline(deadline));
                if batch_tx.send(batch).is_err() {
                    break;
                }
            }
            // Dropping the receiver (on return) tells the workers to stop.
            drop(batch_tx);
        });
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        if failed.load(Ordering::Relaxed) {
            return Err(Error::Invalid("an upload worker failed".into()));
        }
        Ok(Written {
            chunks: chunks.into_inner(),
            sealed_bytes: sealed.into_inner(),
            plain_bytes: plain.into_inner(),
        })
    }
}

/// Splits a stream into batches by the limits above; `next` yields blobs
/// until it returns `None` (the stream ended or the wait expired).
fn fill_batch(first: Sealed, mut next: impl FnMut(Instant) -> Option<Sealed>) -> Vec<Sealed> {
    let deadline = Instant::now() + BATCH_WAIT;
    let mut size = first.bytes.len();
    let mut batch = vec![first];
    while size < BATCH_BYTES && batch.len() < BATCH_CHUNKS {
        match next(deadline) {
            Some(b) => {
                size += b.bytes.len();
                batch.push(b);
            }
            None => break,
        }
    }
    batch
}

fn upload_batch(remote: &RemoteVault, batch: &[Sealed]) -> Result<Written> {
    let ids: Vec<_> = batch.iter().map(|b| b.id).collect();
    let missing: HashSet<_> = remote.missing(&ids)?.into_iter().collect();
    let todo: Vec<_> = batch
        .iter()
        .filter(|b| missing.contains(&b.id))
        .map(|b| (b.id, b.bytes.as_slice()))
        .collect();
    if !todo.is_empty() {
        remote.upload(&todo)?;
    }
    for b in batch.iter().filter(|b| b.tree) {
        remote.cache_tree(b.id, &b.bytes);
    }
    let mut out = Written::default();
    for b in batch.iter().filter(|b| missing.contains(&b.id)) {
        out.chunks += 1;
        out.sealed_bytes += b.bytes.len() as u64;
        out.plain_bytes += b.plain_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8, len: usize) -> Sealed {
        Sealed {
            id: ChunkId([n; 32]),
            bytes: vec![0; len],
            plain_len: len as u64,
            tree: false,
        }
    }

    #[test]
    fn batches_close_by_size_count_or_end() {
        // By size: 3 MiB blobs close a batch at the third (9 MiB ≥ 8 MiB).
        let mut queue: Vec<Sealed> = (1..10).map(|n| blob(n, 3 << 20)).collect();
        queue.reverse();
        let batch = fill_batch(blob(0, 3 << 20), |_| queue.pop());
        assert_eq!(batch.len(), 3);
        // By count: tiny blobs stop at BATCH_CHUNKS.
        let mut n = 0u32;
        let batch = fill_batch(blob(0, 10), |_| {
            n += 1;
            Some(blob(1, 10))
        });
        assert_eq!(batch.len(), BATCH_CHUNKS);
        // By the end of the stream (or the wait): what there is.
        let batch = fill_batch(blob(0, 10), |_| None);
        assert_eq!(batch.len(), 1);
    }
}
