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
}

impl Error {
    /// Whether this error means the store is held open by another process.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Db { source, .. } if source.to_string().contains("lock"))
    }
}
