//! What one node's store answers about one chunk copy: read by the store
//! itself ([`RocksStore`](crate::RocksStore)), carried over the wire by a
//! [`Peers`](crate::peers::Peers) implementation, and interpreted by the
//! replication logic. A leaf module so the store and the peer layer both
//! use it without depending on each other.

use serde::{Deserialize, Serialize};

/// One chunk as a node returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The node does not have it.
    Absent,
    /// The node has a copy that fails its checksum.
    Corrupt,
    /// The sealed bytes and the CRC-32 the node computed over them; the
    /// reader checks the CRC again after the transfer.
    Found {
        /// CRC-32 of `bytes`.
        crc32: u32,
        /// The sealed bytes.
        bytes: Vec<u8>,
    },
}

/// What a sweep did with one copy of a chunk on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Swept {
    /// The node had no copy.
    Absent,
    /// The copy was older than the cutoff and is deleted.
    Deleted,
    /// The copy was touched at or after the cutoff and is kept.
    Kept,
}
