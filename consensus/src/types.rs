//! The openraft type configuration: which Rust types openraft moves around.
//!
//! Log entries carry a [`Request`] (the proposer's request id plus an
//! [`Event`](crate::Event)); applying one yields an [`Outcome`] per request
//! (several for a batch, [`crate::Event::Batch`]; a blank or membership
//! entry yields [`Outcome::NoOp`]). Nodes are
//! addressed by a `u64` id and described by [`ClusterNode`], which holds the
//! HTTP address peers use for Raft RPCs. Snapshots travel as a byte cursor
//! holding the bincode-encoded [`State`](crate::State).

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::apply::Outcome;
use crate::event::Request;

/// A Raft node id. Also the id of the node's storage role.
pub type NodeId = u64;

/// What the cluster knows about a member: where to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// Base URL or `host:port` of the node's HTTP API, used for Raft RPCs.
    pub http_addr: String,
}

impl ClusterNode {
    /// A node reachable at `http_addr`.
    pub fn new(http_addr: impl Into<String>) -> Self {
        Self {
            http_addr: http_addr.into(),
        }
    }
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http_addr)
    }
}

openraft::declare_raft_types!(
    /// Cairn's openraft type configuration.
    pub TypeConfig:
        D = Request,
        R = Vec<Outcome>,
        NodeId = NodeId,
        Node = ClusterNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle for Cairn's log.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// Membership as stored with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, ClusterNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, ClusterNode>;
/// A snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// openraft's storage error for this configuration.
pub type StorageError = openraft::StorageError<NodeId>;
