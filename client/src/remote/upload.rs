//! The upload stage of a backup into an account vault.
//!
//! ```text
//!  sealed blobs ──▶ batcher ──batches of ~8 MiB──▶ uploaders ×UPLOADERS
//!  (from workers)   (this thread)                   missing(ids) → upload(only those)
//! ```
//!
//! The workers dedup within the run; this stage dedups against the vault:
//! each batch first asks which of its ids the cluster lacks (one request
//! for the whole batch) and uploads only those. So a backup that was
//! interrupted, or that overlaps another device's, never uploads a chunk
//! twice. Several batches are in flight at once so the network, the
//! server's replication and the client's CPU overlap. The answer to an
//! upload comes once the chunks are durable on the write quorum, so when
//! this stage returns without error every chunk of the snapshot is stored
//! and the record may be committed. The first error stops the stage; the
//! backup then fails and commits nothing (over quota included).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use super::store::RemoteVault;
use crate::backup::Sealed;
use crate::error::{Error, Result};

/// A batch closes at this many sealed bytes…
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// …or this many chunks (small files and trees)…
pub const BATCH_CHUNKS: usize = 1024;
/// …or this long after its first blob.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Upload requests in flight.
pub const UPLOADERS: usize = 4;

/// What the stage stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    /// Chunks uploaded (absent from the vault before).
    pub chunks: u64,
    /// Their sealed bytes.
    pub sealed_bytes: u64,
    /// Their plaintext bytes.
    pub plain_bytes: u64,
}

/// Splits a stream into batches by the limits above; `next` yields blobs
/// until it returns `None` (the stream ended or the wait expired).
pub fn fill_batch(first: Sealed, mut next: impl FnMut(Instant) -> Option<Sealed>) -> Vec<Sealed> {
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

/// Uploads every blob received on `blobs` that the vault lacks.
pub fn upload_all(remote: &RemoteVault, blobs: Receiver<Sealed>) -> Result<Uploaded> {
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
        while let Ok(first) = blobs.recv() {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let batch = fill_batch(first, |deadline| blobs.recv_deadline(deadline).ok());
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
    Ok(Uploaded {
        chunks: chunks.into_inner(),
        sealed_bytes: sealed.into_inner(),
        plain_bytes: plain.into_inner(),
    })
}

fn upload_batch(remote: &RemoteVault, batch: &[Sealed]) -> Result<Uploaded> {
    let ids: Vec<_> = batch.iter().map(|b| b.id).collect();
    let missing: std::collections::HashSet<_> = remote.missing(&ids)?.into_iter().collect();
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
    let mut out = Uploaded::default();
    for b in batch.iter().filter(|b| missing.contains(&b.id)) {
        out.chunks += 1;
        out.sealed_bytes += b.bytes.len() as u64;
        out.plain_bytes += b.plain_len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use cairn_proto::ChunkId;

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
