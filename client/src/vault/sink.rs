//! The writer a backup streams sealed blobs into, chosen by the backend
//! ([`super::Backend::sink`]) so the backup pipeline never asks where its
//! chunks go.
//!
//! ```text
//!  workers ──bundles of Sealed──▶ Sink::store_all (one thread) ──▶ LocalSink: store batches (no WAL)
//!                                                              └─▶ AccountSink: missing + upload batches
//!                                                              └─▶ MemorySink: a map (tests)
//! ```
//!
//! A sink batches on its own terms (see each implementation); the pipeline
//! hands over whole sealed blobs, so no copy is made on the way. They
//! travel in bundles ([`channel`]): a tree of a million tiny files made a
//! million channel hand-offs (and as many thread wake-ups) when each blob
//! went alone.

use std::cell::RefCell;
use std::time::Instant;

use cairn_proto::ChunkId;
use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};

/// A bundle is handed over once it holds this many bytes...
const BUNDLE_BYTES: usize = 256 * 1024;
/// ...or this many blobs.
const BUNDLE_BLOBS: usize = 64;

/// A bounded channel of sealed blobs, `bundles` bundles deep: what is in
/// flight is at most that many bundles plus one per sender (a blob larger
/// than [`BUNDLE_BYTES`] travels alone).
pub fn channel(bundles: usize) -> (BlobSender, Blobs) {
    let (tx, rx) = crossbeam_channel::bounded(bundles);
    (
        BlobSender {
            tx,
            bundle: RefCell::default(),
        },
        Blobs {
            rx,
            pending: Vec::new().into_iter(),
        },
    )
}

/// One thread's end of a blob channel: collects blobs into a bundle and
/// hands it over when full, on [`BlobSender::flush`], or when dropped (so
/// no blob is left behind by a thread that ends). Clones start with an
/// empty bundle of their own.
pub struct BlobSender {
    tx: Sender<Vec<Sealed>>,
    bundle: RefCell<(Vec<Sealed>, usize)>,
}

impl Clone for BlobSender {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            bundle: RefCell::default(),
        }
    }
}

impl BlobSender {
    /// Queues `blob`, handing the bundle over if it is now full.
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] when the sink has gone (it failed; its own error
    /// is the cause).
    pub fn send(&self, blob: Sealed) -> Result<()> {
        let full = {
            let mut b = self.bundle.borrow_mut();
            b.1 += blob.bytes.len();
            b.0.push(blob);
            b.1 >= BUNDLE_BYTES || b.0.len() >= BUNDLE_BLOBS
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands over the blobs queued so far.
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] when the sink has gone.
    pub fn flush(&self) -> Result<()> {
        let (bundle, _) = self.bundle.take();
        if bundle.is_empty() {
            return Ok(());
        }
        self.tx.send(bundle).map_err(|_| Error::Aborted)
    }
}

impl Drop for BlobSender {
    fn drop(&mut self) {
        // A sink that has gone reports its own error when joined.
        let _ = self.flush();
    }
}

/// The sink's end of a blob channel: the blobs one at a time.
pub struct Blobs {
    rx: Receiver<Vec<Sealed>>,
    pending: std::vec::IntoIter<Sealed>,
}

impl Blobs {
    /// A finished stream of the given blobs (stores that are not a
    /// backup's: repairs, tests).
    pub fn of(blobs: Vec<Sealed>) -> Self {
        let (_, rx) = crossbeam_channel::bounded(0);
        Self {
            rx,
            pending: blobs.into_iter(),
        }
    }

    /// The next blob; `None` once every sender is gone and all is taken.
    pub fn recv(&mut self) -> Option<Sealed> {
        self.next_with(|rx| rx.recv().ok())
    }

    /// The next blob if one is there by `deadline`.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Option<Sealed> {
        self.next_with(|rx| rx.recv_deadline(deadline).ok())
    }

    /// The next pending blob, else the first of the next bundle `wait`
    /// gets.
    fn next_with(
        &mut self,
        wait: impl Fn(&Receiver<Vec<Sealed>>) -> Option<Vec<Sealed>>,
    ) -> Option<Sealed> {
        loop {
            if let Some(blob) = self.pending.next() {
                return Some(blob);
            }
            self.pending = wait(&self.rx)?.into_iter();
        }
    }
}

impl Iterator for Blobs {
    type Item = Sealed;

    fn next(&mut self) -> Option<Sealed> {
        self.recv()
    }
}

/// A sealed blob on its way to the sink.
pub struct Sealed {
    /// Chunk id.
    pub id: ChunkId,
    /// Sealed bytes.
    pub bytes: Vec<u8>,
    /// Length of the plaintext.
    pub plain_len: u64,
    /// Whether it is a tree (account vaults cache trees locally).
    pub tree: bool,
}

/// What a sink stored that the vault did not hold before.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Chunks stored.
    pub chunks: u64,
    /// Their sealed bytes.
    pub sealed_bytes: u64,
    /// Their plaintext bytes.
    pub plain_bytes: u64,
}

/// Stores a backup's sealed blobs.
pub trait Sink: Send + Sync {
    /// Whether the sink itself skips blobs the vault already holds (in
    /// batches). When it does, the backup's workers only dedup within the
    /// run; otherwise they ask [`super::Backend::contains`] per new chunk.
    fn dedups(&self) -> bool;

    /// Stores every blob received on `blobs` until every sender is gone.
    /// Durable once [`super::Backend::flush`] returns.
    ///
    /// # Errors
    ///
    /// The first storage error; the backup then commits nothing.
    fn store_all(&self, blobs: Blobs) -> Result<Written>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn blob(n: u8, len: usize) -> Sealed {
        Sealed {
            id: ChunkId([n; 32]),
            bytes: vec![n; len],
            plain_len: len as u64,
            tree: false,
        }
    }

    fn ids(blobs: impl Iterator<Item = Sealed>) -> Vec<u8> {
        blobs.map(|b| b.id.0[0]).collect()
    }

    #[test]
    fn every_blob_arrives_in_order_and_a_dropped_sender_hands_over_its_rest() {
        let (tx, rx) = channel(2);
        let other = tx.clone();
        let sender = std::thread::spawn(move || {
            for n in 0..200u8 {
                tx.send(blob(n, 10)).unwrap();
            }
        });
        other.send(blob(255, 1)).unwrap();
        drop(other);
        let mut got = ids(rx);
        sender.join().unwrap();
        assert_eq!(got.iter().filter(|&&n| n == 255).count(), 1);
        got.retain(|&n| n != 255);
        assert_eq!(got, (0..200u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_bundle_goes_at_once_and_a_partial_one_waits_for_flush() {
        let (tx, mut rx) = channel(4);
        let soon = Instant::now() + Duration::from_millis(20);
        tx.send(blob(1, BUNDLE_BYTES)).unwrap();
        assert_eq!(rx.recv_deadline(soon).map(|b| b.id.0[0]), Some(1));
        for n in 0..BUNDLE_BLOBS as u8 - 1 {
            tx.send(blob(n, 1)).unwrap();
        }
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(rx.recv_deadline(soon).is_none(), "a partial bundle waits");
        tx.send(blob(99, 1)).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(rx.recv_deadline(soon).map(|b| b.id.0[0]), Some(0));
        assert_eq!(ids(std::iter::from_fn(|| rx.recv_deadline(soon))).len(), 63);
        tx.send(blob(7, 1)).unwrap();
        tx.flush().unwrap();
        assert_eq!(rx.recv().map(|b| b.id.0[0]), Some(7));
        drop(tx);
        assert!(rx.recv().is_none());
    }

    #[test]
    fn a_sender_whose_sink_has_gone_says_so() {
        let (tx, rx) = channel(1);
        drop(rx);
        tx.send(blob(1, 3)).unwrap();
        assert!(matches!(tx.flush(), Err(Error::Aborted)));
        assert_eq!(ids(Blobs::of(vec![blob(4, 1), blob(5, 1)])), vec![4, 5]);
    }
}
