//! The storage behind a [`super::Vault`]: one trait, so backup, restore,
//! check, forget and prune never ask where the chunks live.
//!
//! Modelled on rustic_core's `ReadBackend`/`WriteBackend`, cut to what a
//! vault needs: sealed chunks by id (batched where a round trip costs),
//! snapshot records, and the writer a backup streams sealed blobs into
//! ([`Sink`]). Implementations: [`super::local::LocalBackend`] (a directory
//! with a RocksDB chunk store), [`super::account::AccountBackend`] (a
//! vault of an account on a `cairnd` cluster),
//! [`super::object::ObjectBackend`] (S3 or SFTP through OpenDAL) and
//! [`super::memory::MemoryBackend`] (the in-memory double unit tests use).
//!
//! The few places where batching changes the algorithm ask a capability
//! ([`Backend::batches_reads`], [`Sink::dedups`]), never the kind of
//! backend.

use std::collections::HashMap;
use std::path::Path;

use cairn_proto::{ChunkId, JobId, SnapshotId};

use super::sink::Sink;
use super::VaultConfig;
use crate::error::Result;
use crate::snapshot::SnapshotRecord;

/// What a chunk sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Chunks deleted.
    pub deleted: u64,
    /// Unreferenced chunks kept because a backup used them after the prune
    /// job started (account vaults; always 0 elsewhere).
    pub kept_recently_used: u64,
}

/// What a process takes a vault's lock for ([`Backend::lock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// A backup: shared with other backups, excludes prunes.
    Backup,
    /// A prune: exclusive.
    Prune,
}

/// A lock [`Backend::lock`] took; held until dropped.
pub type Hold = Box<dyn Send>;

/// Where a vault's sealed chunks and snapshot records live.
///
/// Every method may fail with the backend's IO, store or network errors;
/// sections below name the errors that carry a decision.
pub trait Backend: Send + Sync {
    /// Whether each read is a network round trip: callers then fetch ahead
    /// in batches ([`Backend::get_many`]), run more threads than cores, and
    /// `check --read-data` verifies the chunks snapshots reference instead
    /// of listing the store.
    fn batches_reads(&self) -> bool;

    /// Whether a committed record keeps every counter of its
    /// [`crate::snapshot::SnapshotStats`] in the clear. When not (a server
    /// keeps some), the full counters travel in the sealed metadata.
    fn keeps_record_stats(&self) -> bool;

    /// The vault's own directory, if it has one on this machine (a backup
    /// never saves the vault into itself).
    fn dir(&self) -> Option<&Path> {
        None
    }

    /// Keeps what must not overlap a `kind` run out of the vault until the
    /// returned hold is dropped: taken by a backup before it reads its
    /// parent, by a prune before it reads the snapshot list. `None` where
    /// the backend excludes otherwise (a local vault's store lock, an
    /// account vault's job log on the cluster).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Busy`] while a conflicting run holds the vault.
    fn lock(&self, _kind: LockKind) -> Result<Option<Hold>> {
        Ok(None)
    }

    /// Requests sent to a metered storage service so far (object vaults;
    /// 0 elsewhere), for reports of requests per GB.
    fn requests(&self) -> u64 {
        0
    }

    /// Whether chunk `id` is stored.
    fn contains(&self, id: ChunkId) -> Result<bool>;

    /// Which of `ids` are not stored (in as few requests as the backend
    /// allows).
    fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>>;

    /// Replaces `out` with the sealed bytes of chunk `id`; returns whether
    /// it is stored.
    fn get_into(&self, id: ChunkId, out: &mut Vec<u8>) -> Result<bool>;

    /// The sealed bytes of `ids`, batched; ids not stored are absent.
    fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>>;

    /// Visits every stored chunk with its sealed size (0 where the backend
    /// lists ids only), in id order; nothing is collected on the way, so a
    /// caller keeps only what it needs of a large vault.
    fn list_chunks(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<()>;

    /// Deletes chunks no snapshot references, as prune job `job`.
    ///
    /// # Errors
    ///
    /// An account vault refuses without a job ([`crate::Error::Invalid`])
    /// and while a backup runs on the vault ([`crate::Error::Busy`]).
    fn delete_chunks(&self, ids: &[ChunkId], job: Option<JobId>) -> Result<Deleted>;

    /// Makes every chunk written so far durable (the commit point of a
    /// backup's writes).
    fn flush(&self) -> Result<()>;

    /// The writer a backup streams its sealed blobs into.
    fn sink(&self) -> Box<dyn Sink + '_>;

    /// A cached sealed tree, if the backend keeps a cache.
    fn cached_tree(&self, _id: ChunkId) -> Option<Vec<u8>> {
        None
    }

    /// Caches a sealed tree (best effort).
    fn cache_tree(&self, _id: ChunkId, _sealed: &[u8]) {}

    /// Drops a cached tree that failed verification.
    fn uncache_tree(&self, _id: ChunkId) {}

    /// Every snapshot record as stored, oldest first, not yet verified.
    fn snapshots(&self) -> Result<Vec<SnapshotRecord>>;

    /// Notes the verified list `records` (oldest first), so a later list
    /// hiding newer snapshots is noticed.
    fn observe_snapshots(&self, _records: &[SnapshotRecord]) -> Result<()> {
        Ok(())
    }

    /// Refuses a verified list whose newest snapshot is older than one
    /// seen here before, before `latest` is taken from it.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Integrity`] when the list may hide newer snapshots.
    fn check_latest(&self, _records: &[SnapshotRecord]) -> Result<()> {
        Ok(())
    }

    /// Accepts the current list as the newest seen (after snapshots were
    /// forgotten elsewhere on purpose).
    fn acknowledge_snapshots(&self) -> Result<()> {
        Ok(())
    }

    /// Durably records a snapshot whose chunks are all durable; `label` is
    /// its item name or paths label, `job` the running backup job.
    ///
    /// # Errors
    ///
    /// An account vault commits only under a running backup job
    /// ([`crate::Error::Invalid`] without one).
    fn commit_snapshot(
        &self,
        record: &SnapshotRecord,
        label: &str,
        job: Option<JobId>,
    ) -> Result<()>;

    /// Removes a snapshot record (its chunks stay until prune).
    fn forget_snapshot(&self, id: SnapshotId) -> Result<()>;

    /// Stores `config` with its re-wrapped keys (a password change).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Invalid`] where the keys follow an account password.
    fn rewrap(&self, config: &VaultConfig) -> Result<()>;
}
