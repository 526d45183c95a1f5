//! The chunk store: where sealed chunks live, on server nodes and in a
//! client's local-disk vault alike.
//!
//! A chunk is addressed by [`ChunkKey`] = `vault_id || chunk_id`, so a vault
//! is the unit of deduplication and one vault's chunks are contiguous on disk.
//! Values are opaque sealed bytes: the store never sees plaintext. Beside each
//! value the store keeps a small [`ChunkMeta`] record (size, CRC-32 (IEEE) of the
//! sealed bytes, last-touched time) so it can verify what it reads before it
//! hands it out, and so garbage collection and repair can work on metadata
//! alone.
//!
//! [`Store`] is the small, synchronous interface the rest of Cairn programs
//! against; [`RocksStore`] is its RocksDB engine (values in RocksDB, or
//! in an object store through [`object`], Apache OpenDAL); [`placement`]
//! decides which storage nodes own a chunk.
//!
//! The storage role's replication logic lives here too, as plain
//! synchronous code over the [`peers::Peers`] trait so it is tested with
//! several real stores in one process: [`replica`] (W-of-R writes, reads
//! with checksum verification and read repair), [`bucket`] (id-prefix
//! buckets and their digests), [`repair`] (the anti-entropy pass) and
//! [`gc`] (listing and sweeping a live vault's unreferenced chunks).
#![warn(missing_docs)]

mod answer;
pub mod bucket;
pub mod crc32c;
mod error;
pub mod gc;
mod key;
mod meta;
pub mod object;
pub mod peers;
pub mod placement;
pub mod repair;
pub mod replica;
mod rocks;

pub use error::{Error, Result};
pub use key::ChunkKey;
pub use meta::ChunkMeta;
pub use rocks::{
    orphan, worth_compacting, worth_relocating, OrphanView, PutMode, RocksStore, StoreOptions,
    Usage, ORPHAN_AGE,
};

use cairn_proto::{ChunkId, VaultId};

/// When a write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before `put_batch` returns (synced WAL). For writes acknowledged to
    /// someone else, such as a storage node's replies.
    Now,
    /// Only once `flush` returns; a crash before that loses the batch (never
    /// half of it). For bulk writes whose commit point comes later, such as a
    /// local backup, which then writes each chunk once instead of twice.
    AtFlush,
}

/// A durable map from [`ChunkKey`] to sealed bytes.
///
/// Implementations verify what they return: `get` fails with
/// [`Error::Corrupt`] rather than hand out bytes whose checksum does not match
/// the metadata written with them.
pub trait Store: Send + Sync {
    /// The sealed bytes of a chunk, verified against its checksum, or `None`.
    fn get(&self, key: &ChunkKey) -> Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        Ok(self.get_into(key, &mut out)?.then_some(out))
    }

    /// Like [`Store::get`], but replaces the contents of `out` (so a reader
    /// can reuse one buffer); returns whether the chunk exists.
    fn get_into(&self, key: &ChunkKey, out: &mut Vec<u8>) -> Result<bool>;

    /// Whether a chunk is present (metadata only; reads no value).
    fn contains(&self, key: &ChunkKey) -> Result<bool>;

    /// Stores a batch of chunks atomically. With [`Durability::Now`] it
    /// returns only once the batch is durable (one WAL sync per batch: group
    /// commit); with [`Durability::AtFlush`] the batch skips the WAL and is
    /// durable once [`Store::flush`] returns. Re-putting a present chunk is
    /// harmless and refreshes its touch time.
    fn put_batch(
        &self,
        chunks: &[(ChunkKey, &[u8])],
        now: u64,
        durability: Durability,
    ) -> Result<()>;

    /// Deletes chunks (absent ones are ignored); durable on return.
    fn delete_batch(&self, keys: &[ChunkKey]) -> Result<()>;

    /// Visits the metadata of every chunk of a vault in id order.
    fn for_each_meta(
        &self,
        vault: VaultId,
        visit: &mut dyn FnMut(ChunkId, ChunkMeta) -> Result<()>,
    ) -> Result<()>;

    /// Makes every write so far durable in its final files (memtables
    /// flushed, WAL synced): the commit point of [`Durability::AtFlush`].
    fn flush(&self) -> Result<()>;
}
