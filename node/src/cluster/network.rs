//! openraft's network traits over HTTP: the leader's side of Raft RPCs.
//!
//! Every Raft RPC is an HTTP `POST` of a bincode body to the peer's
//! `/raft/{append,vote,snapshot}` endpoint (served by [`crate::http`]); the
//! peer answers with bincode of `Result<Response, RaftError>`, so a refusal
//! by the remote Raft (e.g. a higher term) travels back typed, distinct from
//! a transport failure. Bincode and not JSON because log entries carry
//! opaque byte blobs (wrapped keys, sealed metadata) that JSON would inflate.
//!
//! Snapshots stream in chunks: openraft's default `full_snapshot` reads the
//! snapshot `snapshot_max_chunk_size` bytes at a time
//! ([`RaftSettings::snapshot_chunk_size`](crate::config::RaftSettings)) and
//! sends each piece as its own `/raft/snapshot` request with its offset, so
//! no request body holds the whole snapshot and a failed chunk is retried
//! alone. The follower appends the chunks and installs the snapshot when the
//! last one arrives.
//!
//! Transport failures map to openraft's error kinds so it backs off
//! correctly: connection failures are [`Unreachable`] (back off), anything
//! else on the way is a [`NetworkError`] (retry).

use std::time::Duration;

use cairn_consensus::{ClusterNode, NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prometheus::IntCounter;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Content type of bincode bodies on the internal Raft endpoints.
pub const BINCODE: &str = "application/x-cairn-bincode";

/// Builds [`HttpPeer`]s; one per target node, created by openraft.
#[derive(Clone)]
pub struct HttpNetwork {
    client: reqwest::Client,
    chunks_sent: IntCounter,
}

impl HttpNetwork {
    /// A network factory sharing `client`'s connection pool, counting the
    /// snapshot chunks it sends in `chunks_sent`.
    pub fn new(client: reqwest::Client, chunks_sent: IntCounter) -> Self {
        Self {
            client,
            chunks_sent,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: NodeId, node: &ClusterNode) -> HttpPeer {
        HttpPeer {
            client: self.client.clone(),
            target,
            base: node.http_addr.clone(),
            chunks_sent: self.chunks_sent.clone(),
        }
    }
}

/// The connection to one peer.
pub struct HttpPeer {
    client: reqwest::Client,
    target: NodeId,
    base: String,
    chunks_sent: IntCounter,
}

/// Why an RPC did not produce a remote answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached.
    #[error("cannot reach {url}: {source}")]
    Connect {
        /// The URL.
        url: String,
        /// The error.
        source: reqwest::Error,
    },
    /// The request failed on the way or the peer answered with an HTTP error.
    #[error("rpc to {url} failed: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What happened.
        detail: String,
    },
    /// A body could not be encoded or decoded.
    #[error("rpc to {url}: bad body: {source}")]
    Codec {
        /// The URL.
        url: String,
        /// The error.
        source: bincode::Error,
    },
}

/// POSTs `req` as bincode to `base/path` and decodes a bincode answer.
pub async fn post_bincode<Req, Resp>(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    req: &Req,
    timeout: Option<Duration>,
) -> Result<Resp, TransportError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let url = format!("{}{}", base.trim_end_matches('/'), path);
    let body = bincode::serialize(req).map_err(|source| TransportError::Codec {
        url: url.clone(),
        source,
    })?;
    let mut rb = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, BINCODE)
        .body(body);
    if let Some(t) = timeout {
        rb = rb.timeout(t);
    }
    let resp = rb.send().await.map_err(|source| {
        if source.is_connect() {
            TransportError::Connect {
                url: url.clone(),
                source,
            }
        } else {
            TransportError::Http {
                url: url.clone(),
                detail: source.to_string(),
            }
        }
    })?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| TransportError::Http {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if !status.is_success() {
        return Err(TransportError::Http {
            url,
            detail: format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        });
    }
    bincode::deserialize(&bytes).map_err(|source| TransportError::Codec { url, source })
}

impl HttpPeer {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, ClusterNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> =
            post_bincode(&self.client, &self.base, path, req, Some(option.hard_ttl()))
                .await
                .map_err(|e| match e {
                    TransportError::Connect { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                    _ => RPCError::Network(NetworkError::new(&e)),
                })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>>
    {
        self.call("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ClusterNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.chunks_sent.inc();
        self.call("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ClusterNode, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, &option).await
    }
}
