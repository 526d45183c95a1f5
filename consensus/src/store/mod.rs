//! RocksDB storage for openraft: the log store and the state machine, in one
//! database with one column family per purpose.
//!
//! | column family | keys | written by |
//! |---|---|---|
//! | `logs` | big-endian `u64` log index (so byte order = numeric order) | [`LogStore`] |
//! | `meta` | `vote`, `committed`, `last_purged` | [`LogStore`] |
//! | `state` | one key per record, plus `last_applied` and membership (see `records`) | [`StateMachineStore`] |
//! | `snapshot` | empty: older builds kept `meta` and `data` here; a snapshot build deletes them | [`StateMachineStore`] |
//!
//! Durability contract (DESIGN §4): the vote, appended entries, truncation
//! and purge are written with `sync = true` (the WAL is fsynced) before the
//! call returns or the append callback fires; the state machine writes the
//! records an apply touched, `last_applied` and membership in one atomic
//! `WriteBatch` (not fsynced: the log replays a lost apply; a snapshot
//! build is a synced write, see `state_machine`), so a restart resumes
//! from what was applied instead of replaying the whole log, and never
//! sees a state without its log position.
//! A failed write poisons the shared handle: every later call on either
//! store returns [`ConsensusError::Poisoned`] and openraft shuts the node
//! down, instead of retrying on top of an unknown on-disk state.
//!
//! RocksDB calls are synchronous and are made directly from openraft's async
//! storage methods, as openraft's own RocksDB example does; an fsync blocks
//! one runtime worker for its duration.

mod log_store;
mod records;
mod state_machine;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, MemtableFactory, Options, WriteBatch, WriteOptions, DB,
};

pub use self::log_store::LogStore;
pub use self::state_machine::{StateHandle, StateMachineStore};
use crate::error::{ConsensusError, Result};

pub(crate) const CF_LOGS: &str = "logs";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_SNAPSHOT: &str = "snapshot";
const ALL_CFS: [&str; 4] = [CF_LOGS, CF_META, CF_STATE, CF_SNAPSHOT];

/// Opens (creating if needed) the Raft database at `path` and returns its
/// log store and state machine. Both share one RocksDB instance and one
/// poison flag.
///
/// # Errors
///
/// Fails if RocksDB cannot open the directory (including when another
/// process holds it) or if the persisted state machine cannot be decoded.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore)> {
    open_observed(path, Arc::new(NoObserver))
}

/// As [`open`], reporting the state machine's snapshot work to `observer`.
///
/// # Errors
///
/// As [`open`].
pub fn open_observed(
    path: &Path,
    observer: Arc<dyn SnapshotObserver>,
) -> Result<(LogStore, StateMachineStore)> {
    let db = Db::open(path)?;
    let mut sm = StateMachineStore::load(db.clone())?;
    sm.set_observer(observer);
    Ok((LogStore::new(db), sm))
}

/// Told about every snapshot the state machine builds, serves or installs,
/// so the node can export counts, sizes and durations as metrics without
/// this crate depending on a metrics library. Called synchronously after
/// the work is done; implementations must be cheap and must not block.
pub trait SnapshotObserver: Send + Sync + 'static {
    /// A snapshot was built (made durable as a log position) in `took`.
    fn snapshot_built(&self, took: Duration);
    /// The current snapshot was encoded into `bytes` bytes for a follower
    /// in `took`.
    fn snapshot_served(&self, bytes: usize, took: Duration);
    /// A snapshot of `bytes` bytes received from the leader was installed
    /// (decoded and written) in `took`.
    fn snapshot_installed(&self, bytes: usize, took: Duration);
}

/// The observer of a store nobody watches.
pub(crate) struct NoObserver;

impl SnapshotObserver for NoObserver {
    fn snapshot_built(&self, _: Duration) {}
    fn snapshot_served(&self, _: usize, _: Duration) {}
    fn snapshot_installed(&self, _: usize, _: Duration) {}
}

/// The shared database handle: RocksDB plus the poison flag.
#[derive(Clone)]
pub(crate) struct Db {
    db: Arc<DB>,
    poisoned: Arc<AtomicBool>,
    /// Fault injection for tests: makes the next synced write fail inside
    /// RocksDB (a synced write with the WAL disabled is an invalid argument).
    #[cfg(test)]
    break_writes: Arc<AtomicBool>,
}

impl Db {
    fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // Paranoid checks make RocksDB report corruption instead of skipping it.
        opts.set_paranoid_checks(true);
        // The state column family is written on every apply and read only
        // when the node starts (the live state is in memory), so its
        // memtable is a vector: an insert is an append, sorted once at
        // flush. A skiplist memtable cost a few µs of cache misses per key
        // and was a fifth of a loaded leader's CPU. A vector memtable takes
        // no concurrent inserts, hence the database-wide switch.
        opts.set_allow_concurrent_memtable_write(false);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf = Options::default();
            if *name == CF_STATE {
                cf.set_memtable_factory(MemtableFactory::Vector);
            }
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db =
            DB::open_cf_descriptors(&opts, path, cfs).map_err(|source| ConsensusError::Open {
                path: path.to_owned(),
                source,
            })?;
        for name in ALL_CFS {
            if db.cf_handle(name).is_none() {
                return Err(ConsensusError::MissingColumnFamily(name));
            }
        }
        Ok(Self {
            db: Arc::new(db),
            poisoned: Arc::new(AtomicBool::new(false)),
            #[cfg(test)]
            break_writes: Arc::new(AtomicBool::new(false)),
        })
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or(ConsensusError::MissingColumnFamily(name))
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(ConsensusError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Marks the store unusable. Called on any failed write.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// Whether an earlier write failed.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check()?;
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(|source| ConsensusError::Db { op: "read", source })
    }

    /// Writes `batch` atomically and fsyncs the WAL before returning.
    pub(crate) fn write_synced(&self, op: &'static str, batch: WriteBatch) -> Result<()> {
        self.write(op, batch, true)
    }

    /// Writes `batch` atomically without waiting for the fsync; only for
    /// what the log can rebuild (`committed`, the applied state).
    pub(crate) fn write_unsynced(&self, op: &'static str, batch: WriteBatch) -> Result<()> {
        self.write(op, batch, false)
    }

    fn write(&self, op: &'static str, batch: WriteBatch, sync: bool) -> Result<()> {
        self.check()?;
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        #[cfg(test)]
        if self.break_writes.swap(false, Ordering::AcqRel) {
            wo.disable_wal(true);
        }
        self.db.write_opt(batch, &wo).map_err(|source| {
            tracing::error!(op, %source, "raft store write failed; poisoning the store");
            self.poison();
            ConsensusError::Db { op, source }
        })
    }

    pub(crate) fn raw(&self) -> &DB {
        &self.db
    }
}

/// Read access to the Raft database's RocksDB statistics, for the node's
/// health metrics (pending compaction, write stalls, file sizes), without
/// handing out the database itself.
#[derive(Clone)]
pub struct DbProperties(Db);

impl DbProperties {
    /// The integer RocksDB property `name` (e.g.
    /// `rocksdb.estimate-pending-compaction-bytes`) summed over the
    /// database's column families; `None` if RocksDB does not know it.
    pub fn total(&self, name: &str) -> Option<u64> {
        let db = self.0.raw();
        ALL_CFS.iter().try_fold(0u64, |sum, cf| {
            let cf = db.cf_handle(cf)?;
            let value = db.property_int_value_cf(cf, name).ok()??;
            Some(sum.saturating_add(value))
        })
    }
}

/// Wraps a crate error as openraft's storage error, naming what failed
/// (openraft then stops the node: storage errors are fatal by design).
pub(crate) fn sto(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: ConsensusError,
) -> crate::types::StorageError {
    openraft::StorageIOError::new(subject, verb, &e).into()
}

/// Big-endian fixed-width key for a log index, so RocksDB's byte order is
/// numeric order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The log index of a `logs` key.
pub(crate) fn key_index(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| ConsensusError::Corrupt {
        what: "log key",
        detail: format!("{} bytes, expected 8", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_numerically() {
        let mut keys: Vec<[u8; 8]> = [300u64, 2, 1 << 40, 0, 255, 256].map(index_key).to_vec();
        keys.sort();
        let back: Vec<u64> = keys
            .iter()
            .map(|k| key_index(k).expect("8 bytes"))
            .collect();
        assert_eq!(back, vec![0, 2, 255, 256, 300, 1 << 40]);
        assert!(matches!(
            key_index(&[1, 2, 3]),
            Err(ConsensusError::Corrupt {
                what: "log key",
                ..
            })
        ));
    }

    #[test]
    fn poisoned_store_refuses_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        db.write_synced("test", WriteBatch::default())
            .expect("write");
        db.poison();
        assert!(matches!(
            db.get(CF_META, b"vote"),
            Err(ConsensusError::Poisoned)
        ));
        assert!(matches!(
            db.write_synced("test", WriteBatch::default()),
            Err(ConsensusError::Poisoned)
        ));
    }

    /// A write that RocksDB refuses poisons both stores: the failed call
    /// reports an error and every later call does too, even reads.
    #[tokio::test]
    async fn failed_write_poisons_log_and_state_machine() {
        use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};

        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let mut log = LogStore::new(db.clone());
        let mut sm = StateMachineStore::load(db.clone()).expect("load");
        let vote = crate::types::Vote::new(1, 1);
        log.save_vote(&vote).await.expect("healthy write");

        db.break_writes.store(true, Ordering::Release);
        let entry = crate::types::Entry {
            log_id: openraft::testing::log_id(1, 1, 1),
            payload: openraft::EntryPayload::Blank,
        };
        assert!(log.blocking_append([entry.clone()]).await.is_err());
        assert!(log.is_poisoned() && sm.is_poisoned());
        // Every later operation is refused as poisoned, not tried again.
        let poisoned =
            |e: openraft::StorageError<crate::types::NodeId>| e.to_string().contains("poisoned");
        assert!(
            log.read_vote().await.is_err_and(poisoned),
            "reads refuse too"
        );
        assert!(log.save_vote(&vote).await.is_err_and(poisoned));
        assert!(sm.apply([entry]).await.is_err_and(poisoned));
    }

    #[test]
    fn second_open_of_same_dir_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Db::open(dir.path()).expect("open");
        assert!(matches!(
            Db::open(dir.path()),
            Err(ConsensusError::Open { .. })
        ));
    }
}
