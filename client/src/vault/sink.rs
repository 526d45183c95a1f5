//! The writer a backup streams sealed blobs into, chosen by the backend
//! ([`super::Backend::sink`]) so the backup pipeline never asks where its
//! chunks go.
//!
//! ```text
//!  workers ──Sealed──▶ Sink::store_all (one thread) ──▶ LocalSink: store batches (no WAL)
//!                                                   └─▶ AccountSink: missing + upload batches
//!                                                   └─▶ MemorySink: a map (tests)
//! ```
//!
//! A sink batches on its own terms (see each implementation); the pipeline
//! hands over whole sealed blobs, so no copy is made on the way.

use cairn_proto::ChunkId;
use crossbeam_channel::Receiver;

use crate::error::Result;

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

    /// Stores every blob received on `blobs` until the channel closes.
    /// Durable once [`super::Backend::flush`] returns.
    ///
    /// # Errors
    ///
    /// The first storage error; the backup then commits nothing.
    fn store_all(&self, blobs: Receiver<Sealed>) -> Result<Written>;
}
