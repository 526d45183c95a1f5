//! The Raft RPCs and the leader's side of forwarding, between nodes
//! (bincode bodies, behind the cluster secret): `POST /raft/{append,vote,
//! snapshot}` from peers' [`HttpNetwork`](crate::cluster::network::HttpNetwork),
//! `/raft/propose`, `/raft/read-index` and `/raft/remove-node` from
//! followers forwarding writes, reads and removals.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use cairn_consensus::{Request, TypeConfig};
use openraft::raft::InstallSnapshotRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ApiError, HttpState};
use crate::cluster::network::BINCODE;
use crate::cluster::Cluster;
use crate::config::{MAX_SNAPSHOT_CHUNK, MAX_SNAPSHOT_SIZE};

/// Largest Raft RPC body: the largest snapshot chunk plus room for its
/// metadata; append batches are far smaller.
const RAFT_BODY_LIMIT: usize = (MAX_SNAPSHOT_CHUNK as usize) + (1 << 20);

/// The `/raft/*` routes; the router puts them behind the cluster secret.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/raft/propose", post(raft_propose))
        .route("/raft/read-index", post(raft_read_index))
        .route("/raft/remove-node", post(raft_remove_node))
        .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
}

/// A bincode answer of a cluster-internal route (also the storage role's,
/// [`crate::storage::http`]).
pub(crate) fn bincode_reply<T: Serialize>(value: &T) -> Response {
    match bincode::serialize(value) {
        Ok(bytes) => ([(CONTENT_TYPE, BINCODE)], bytes).into_response(),
        Err(e) => ApiError::Internal(format!("encoding reply: {e}")).into_response(),
    }
}

/// Decodes the bincode body of a cluster-internal request; garbage is a
/// `400 bad_request`.
pub(crate) fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    bincode::deserialize(body).map_err(|e| ApiError::BadRequest(format!("bad bincode body: {e}")))
}

async fn raft_append(State(app): State<Arc<Cluster>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => bincode_reply(&app.raft.append_entries(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn raft_vote(State(app): State<Arc<Cluster>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => bincode_reply(&app.raft.vote(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn raft_snapshot(State(app): State<Arc<Cluster>>, body: Bytes) -> Response {
    app.metrics.snapshot().chunks_received.inc();
    match decode::<InstallSnapshotRequest<TypeConfig>>(&body).and_then(check_snapshot_chunk) {
        Ok(rpc) => bincode_reply(&app.raft.install_snapshot(rpc).await),
        Err(e) => e.into_response(),
    }
}

/// Refuses a snapshot chunk that would end beyond [`MAX_SNAPSHOT_SIZE`]:
/// openraft writes it into an in-memory buffer at its offset, so an absurd
/// offset would be an absurd allocation (and an abort), not an error.
fn check_snapshot_chunk(
    rpc: InstallSnapshotRequest<TypeConfig>,
) -> Result<InstallSnapshotRequest<TypeConfig>, ApiError> {
    let end = rpc.offset.checked_add(rpc.data.len() as u64);
    if end.is_some_and(|end| end <= MAX_SNAPSHOT_SIZE) {
        Ok(rpc)
    } else {
        Err(ApiError::BadRequest(format!(
            "snapshot chunk at offset {} ({} bytes) ends beyond the largest snapshot a node \
             accepts ({MAX_SNAPSHOT_SIZE} bytes)",
            rpc.offset,
            rpc.data.len()
        )))
    }
}

async fn raft_propose(State(app): State<Arc<Cluster>>, body: Bytes) -> Response {
    match decode::<Request>(&body) {
        // The wire form keeps the reason as text (the forwarding node
        // retries and only reports it).
        Ok(req) => bincode_reply(&app.propose_local(req).await.map_err(|e| e.to_string())),
        Err(e) => e.into_response(),
    }
}

async fn raft_read_index(State(app): State<Arc<Cluster>>) -> Response {
    bincode_reply(&app.read_index().await.map_err(|e| e.to_string()))
}

async fn raft_remove_node(State(app): State<Arc<Cluster>>, body: Bytes) -> Response {
    match decode::<u64>(&body) {
        Ok(node) => bincode_reply(
            &app.remove_local(node)
                .await
                .map_err(|e| ApiError::from(e).to_forwarded()),
        ),
        Err(e) => e.into_response(),
    }
}
