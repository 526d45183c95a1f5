//! Errors of the node below its HTTP layer: [`NodeError`] for starting
//! and running a node, [`ClusterError`] for what a write, a read barrier or
//! a membership change through the cluster can end in (typed, so the HTTP
//! layer maps each to its answer, [`ApiError`](crate::http::ApiError),
//! and the bootstrap to a start-up error, without parsing messages), and
//! [`describe`], which renders an error with its causes.

use std::path::PathBuf;

use cairn_consensus::Rejection;
use cairn_proto::api::ErrorBody;
use serde::{Deserialize, Serialize};

/// A refusal as it travels from the leader back to the node that forwarded
/// the request (bincode), so that node answers exactly what the leader said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedError {
    /// The HTTP status the leader chose.
    pub status: u16,
    /// The leader's error body.
    pub body: ErrorBody,
}

/// The HTTP status of an unavailable leader (`503`).
const SERVICE_UNAVAILABLE: u16 = 503;

impl ForwardedError {
    /// Whether the leader was unavailable (not leader any more, change in
    /// progress): worth retrying.
    pub fn is_unavailable(&self) -> bool {
        self.status == SERVICE_UNAVAILABLE
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No leader, or it could not be reached, within the retry window;
    /// another membership change in progress. Worth retrying.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// The state machine refused the event.
    #[error("{0}")]
    Rejected(Rejection),
    /// A membership request that cannot be made as asked (a bad id or URL,
    /// an id that is a member elsewhere, the last voter).
    #[error("{0}")]
    BadRequest(String),
    /// The cluster never had the node.
    #[error("{0}")]
    NotFound(String),
    /// A join the leader will not make: the node does not answer at its
    /// address as the node it claims to be (adding it would cost the
    /// cluster a voter that never votes).
    #[error("{0}")]
    JoinRefused(String),
    /// The leader's refusal of a forwarded request, as it gave it.
    #[error("{}", .0.body.message)]
    Forwarded(ForwardedError),
    /// openraft refused a local operation (e.g. this node is not the
    /// leader of a write it must not forward), in openraft's words.
    #[error("{0}")]
    Raft(String),
    /// Something that should not fail did.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Failures starting or running a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Configuration is missing, malformed or contradictory.
    #[error("configuration: {0}")]
    Config(String),
    /// A TLS certificate or key is missing, invalid or cannot be generated.
    #[error("tls: {0}")]
    Tls(String),
    /// The Raft store could not be opened.
    #[error(transparent)]
    Store(#[from] cairn_consensus::ConsensusError),
    /// openraft refused to start or stopped.
    #[error("raft: {0}")]
    Raft(String),
    /// Binding or serving the HTTP listener failed.
    #[error("http server on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The new cluster refused a step of its bootstrap (recording the
    /// storage node, the dev cluster's tier).
    #[error("{what}: {source}")]
    Bootstrap {
        /// The step.
        what: &'static str,
        /// The cluster's answer.
        source: ClusterError,
    },
    /// Joining an existing cluster failed.
    #[error("joining {url}: {detail}")]
    Join {
        /// The cluster URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// `e` followed by its causes, `": "`-separated. reqwest's own message
/// stops at "error sending request", while the cause (e.g. rustls'
/// "invalid peer certificate: UnknownIssuer") is what an operator needs.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
