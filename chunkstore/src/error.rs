//! The chunk store's error type.

use crate::ChunkKey;

/// Result alias for chunk store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The underlying database failed (IO error, corruption of its own files,
    /// or another process holding its lock).
    #[error("chunk store at {path}: {source}")]
    Db {
        /// The store's directory.
        path: String,
        /// What RocksDB reported.
        #[source]
        source: rocksdb::Error,
    },
    /// A stored value does not match the checksum recorded when it was
    /// written: this copy is damaged and must not be used.
    #[error("chunk {key} is corrupt in the store: {detail}")]
    Corrupt {
        /// Which chunk.
        key: ChunkKey,
        /// What did not match.
        detail: String,
    },
    /// A value or key read from the database has an impossible shape.
    #[error("malformed chunk store record: {0}")]
    Malformed(String),
    /// Another storage node could not be reached (down, or not answering
    /// in time): replication skips it and repair catches up later.
    #[error("storage node {node} is unreachable: {detail}")]
    Unreachable {
        /// The node.
        node: u64,
        /// What happened.
        detail: String,
    },
    /// Another storage node answered with an error.
    #[error("storage node {node}: {detail}")]
    Peer {
        /// The node.
        node: u64,
        /// Its answer.
        detail: String,
    },
    /// An object store URL or its settings are invalid.
    #[error("{0}")]
    Invalid(String),
    /// The object store refused our credentials.
    #[error("{0}")]
    Auth(String),
    /// The object store's bucket does not exist.
    #[error("{0}")]
    NoBucket(String),
    /// The object store could not be reached or failed a request (after
    /// its retries).
    #[error("{0}")]
    Service(String),
    /// An object is missing or shorter than what refers to it says.
    #[error("{0}")]
    Damaged(String),
    /// Fewer than the required number of copies could be made durable.
    #[error("only {got} of the {need} required copies of {key} could be written")]
    InsufficientReplicas {
        /// A chunk that fell short.
        key: ChunkKey,
        /// Copies made.
        got: usize,
        /// Copies required (W).
        need: usize,
    },
}

impl Error {
    /// Whether this error means the store is held open by another process.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Db { source, .. } if source.to_string().contains("lock"))
    }
}
