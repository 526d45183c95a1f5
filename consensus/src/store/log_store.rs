//! The Raft log and vote: openraft's [`RaftLogStorage`] and [`RaftLogReader`]
//! over the `logs` and `meta` column families.
//!
//! Why every mutation here is a synced write: Raft's safety argument assumes
//! that a node which acknowledged an entry or a vote still has it after a
//! crash. A node that forgets its vote can vote twice in one term; one that
//! forgets acknowledged entries can let a committed entry be overwritten.
//! So `save_vote`, `append` (before its callback), `truncate` and `purge`
//! all fsync the WAL before reporting success.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogId};
use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{index_key, key_index, sto, Db, CF_LOGS, CF_META};
use crate::codec::{self, LOG_ENTRY_FORMAT, META_FORMAT};
use crate::error::{ConsensusError, Result};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// The log store. Cheap to clone; clones share the database (openraft uses a
/// clone as the log reader for replication tasks).
#[derive(Clone)]
pub struct LogStore {
    db: Db,
}

impl LogStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Whether an earlier write failed and the store refuses all operations.
    pub fn is_poisoned(&self) -> bool {
        self.db.is_poisoned()
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>> {
        match self.db.get(CF_META, key)? {
            Some(bytes) => Ok(Some(codec::decode(what, META_FORMAT, &bytes)?)),
            None => Ok(None),
        }
    }

    fn last_purged(&self) -> Result<Option<LogId>> {
        self.read_meta(KEY_LAST_PURGED, "last purged log id")
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<Entry>> {
        self.db.check()?;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let cf = self.db.cf(CF_LOGS)?;
        let key = index_key(start);
        let mut out = Vec::new();
        for item in self
            .db
            .raw()
            .iterator_cf(cf, IteratorMode::From(&key, Direction::Forward))
        {
            let (k, v) = item.map_err(|source| ConsensusError::Db {
                op: "read logs",
                source,
            })?;
            let index = key_index(&k)?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry = codec::decode("log entry", LOG_ENTRY_FORMAT, &v)?;
            if entry.get_log_id().index != index {
                return Err(ConsensusError::Corrupt {
                    what: "log entry",
                    detail: format!("key {index} holds entry {}", entry.get_log_id()),
                });
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId>> {
        self.db.check()?;
        let cf = self.db.cf(CF_LOGS)?;
        match self.db.raw().iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(|source| ConsensusError::Db {
                    op: "read last log",
                    source,
                })?;
                let entry: Entry = codec::decode("log entry", LOG_ENTRY_FORMAT, &v)?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }

    fn do_append(&self, entries: impl IntoIterator<Item = Entry>) -> Result<()> {
        let cf = self.db.cf(CF_LOGS)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            let value = codec::encode("log entry", LOG_ENTRY_FORMAT, &entry)?;
            batch.put_cf(cf, index_key(entry.get_log_id().index), value);
        }
        self.db.write_synced("append logs", batch)
    }

    fn do_truncate(&self, from: u64) -> Result<()> {
        let cf = self.db.cf(CF_LOGS)?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, index_key(from), index_key(u64::MAX));
        // delete_range's end is exclusive.
        batch.delete_cf(cf, index_key(u64::MAX));
        self.db.write_synced("truncate logs", batch)
    }

    fn do_purge(&self, log_id: &LogId) -> Result<()> {
        let logs = self.db.cf(CF_LOGS)?;
        let meta = self.db.cf(CF_META)?;
        let mut batch = WriteBatch::default();
        // The pointer and the deletion go in one batch, so a crash leaves
        // either both or neither: never entries at or below `last_purged`
        // that `get_log_state` would count, nor a hole.
        batch.put_cf(
            meta,
            KEY_LAST_PURGED,
            codec::encode("last purged log id", META_FORMAT, log_id)?,
        );
        batch.delete_range_cf(logs, index_key(0), index_key(log_id.index));
        batch.delete_cf(logs, index_key(log_id.index));
        // Synced although openraft would tolerate losing a purge: it is
        // rare, and keeping every log mutation synced keeps the contract
        // simple to state and check.
        self.db.write_synced("purge logs", batch)
    }

    fn put_meta<T: serde::Serialize>(
        &self,
        key: &[u8],
        what: &'static str,
        value: &T,
        sync: bool,
    ) -> Result<()> {
        let cf = self.db.cf(CF_META)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, codec::encode(what, META_FORMAT, value)?);
        if sync {
            self.db.write_synced(what, batch)
        } else {
            self.db.write_unsynced(what, batch)
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(range)
            .map_err(|e| sto(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let read = |e| sto(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged_log_id = self.last_purged().map_err(read)?;
        let last_log_id = match self.last_entry_id().map_err(read)? {
            Some(id) => Some(id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, "vote", vote, true)
            .map_err(|e| sto(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(KEY_VOTE, "vote")
            .map_err(|e| sto(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    /// Not synced: the state machine persists `last_applied` itself, so a
    /// lost `committed` only means re-learning the commit index from the
    /// leader, never re-applying or losing an entry.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_meta(KEY_COMMITTED, "committed log id", &committed, false)
            .map_err(|e| sto(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .read_meta::<Option<LogId>>(KEY_COMMITTED, "committed log id")
            .map_err(|e| sto(ErrorSubject::Store, ErrorVerb::Read, e))?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // The write is synced, so the entries are on disk before the callback.
        self.do_append(entries)
            .map_err(|e| sto(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating log");
        self.do_truncate(log_id.index)
            .map_err(|e| sto(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging log");
        self.do_purge(&log_id)
            .map_err(|e| sto(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))
    }
}
