//! The crate's error type.
//!
//! Storage code returns [`ConsensusError`] internally and converts it to
//! openraft's [`StorageError`](openraft::StorageError) (with the subject and
//! verb of the failed operation) at the trait boundary. openraft treats every
//! storage error as fatal and stops the node; that is the intended outcome,
//! because a log or state machine that may have lost a write must not keep
//! acknowledging (see [`ConsensusError::Poisoned`]).

use std::path::PathBuf;

/// Everything that can go wrong in this crate outside `apply` (which never
/// fails: invalid events become [`Rejection`](crate::Rejection)s).
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The RocksDB database could not be opened.
    #[error("opening raft store at {path}: {source}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A RocksDB read or write failed.
    #[error("raft store {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A column family that `open` creates is missing.
    #[error("raft store column family {0:?} is missing")]
    MissingColumnFamily(&'static str),
    /// A value could not be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The bincode error.
        source: bincode::Error,
    },
    /// A stored value could not be decoded: corruption or a foreign database.
    #[error("decoding {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The bincode error.
        source: bincode::Error,
    },
    /// A stored value has a format newer than this build understands.
    #[error("{what} has format version {found}, this build reads up to {supported}")]
    UnsupportedFormat {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The newest version this build reads.
        supported: u8,
    },
    /// A stored value is structurally wrong (empty, wrong key length…).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// An earlier write failed, so the on-disk state is unknown. The store
    /// refuses every further operation; the node must restart and recover
    /// from what is really on disk rather than retry and carry on.
    #[error("raft store is poisoned by an earlier write failure; restart the node")]
    Poisoned,
    /// Snapshot work on the blocking pool panicked or was cancelled (the
    /// runtime is shutting down).
    #[error("raft store background task failed: {0}")]
    Task(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = ConsensusError> = std::result::Result<T, E>;
