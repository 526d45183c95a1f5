//! The node-to-node routes of the storage role (`/internal/v1/*`, behind
//! the cluster secret): chunk puts, gets, listings, digests, pushes,
//! deletes, touches and sweeps that other nodes' [`HttpPeers`] make while
//! replicating, reading, repairing and collecting garbage. Bodies are
//! binary frames ([`crate::storage::wire`]) or bincode.
//!
//! [`HttpPeers`]: crate::storage::peers::HttpPeers

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use cairn_chunkstore::bucket;
use cairn_chunkstore::peers::{push_from, Fetched};
use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::{ChunkKey, Durability, PutMode, RocksStore, Store};
use cairn_proto::api::LIST_PAGE;
use cairn_proto::{ChunkId, VaultId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::chunks::{binary, blocking, MAX_UPLOAD_BYTES};
use super::raft::{bincode_reply, decode};
use super::{ApiError, HttpState};
use crate::storage::peers::unix_now;
use crate::storage::{wire, Storage};

/// Largest internal body: an upload's frames plus room for framing.
const INTERNAL_BODY_LIMIT: usize = MAX_UPLOAD_BYTES + (16 << 20);

/// The node-to-node routes; the caller puts them behind the cluster secret.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/internal/v1/chunks/put", post(internal_put))
        .route("/internal/v1/chunks/get", post(internal_get))
        .route("/internal/v1/chunks/contains", post(internal_contains))
        .route("/internal/v1/chunks/digests", post(internal_digests))
        .route("/internal/v1/chunks/list", post(internal_list))
        .route("/internal/v1/chunks/push", post(internal_push))
        .route("/internal/v1/chunks/delete", post(internal_delete))
        .route("/internal/v1/chunks/touch", post(internal_touch))
        .route("/internal/v1/chunks/sweep", post(internal_sweep))
        .route("/internal/v1/chunks/ids", post(internal_ids))
        .route("/internal/v1/usage", post(internal_usage))
        .layer(DefaultBodyLimit::max(INTERNAL_BODY_LIMIT))
}

/// `?overwrite=1` on an internal put.
#[derive(Debug, Deserialize)]
struct PutQuery {
    #[serde(default)]
    overwrite: Option<u8>,
}

async fn internal_put(
    State(storage): State<Arc<Storage>>,
    Query(q): Query<PutQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mode = if q.overwrite.unwrap_or(0) != 0 {
        PutMode::Overwrite
    } else {
        PutMode::KeepExisting
    };
    let store = own_store(&storage)?;
    let new = blocking(move || {
        let chunks = wire::decode_frames(&body)
            .map_err(|e| cairn_chunkstore::Error::Malformed(e.to_string()))?;
        store.put_chunks(&chunks, unix_now(), Durability::Now, mode)
    })
    .await?;
    Ok(bincode_reply(&new))
}

async fn internal_get(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys: Vec<ChunkKey> = decode(&body)?;
    let store = own_store(&storage)?;
    let answers = blocking(move || {
        keys.iter()
            .map(|k| store.fetch(k))
            .collect::<Result<Vec<Fetched>, _>>()
    })
    .await?;
    storage
        .metrics
        .corrupt_copies
        .inc_by(answers.iter().filter(|a| **a == Fetched::Corrupt).count() as u64);
    Ok(binary(wire::encode_fetched(&answers)))
}

/// This node's chunk store, or the answer of a node without the storage
/// role (peers only address storage nodes, so this means a stale view).
fn own_store(storage: &Storage) -> Result<Arc<RocksStore>, ApiError> {
    storage.store.clone().ok_or_else(|| {
        ApiError::RoleNotServed(format!(
            "node {} does not run the storage role and holds no chunks",
            storage.id()
        ))
    })
}

/// The shape of the bincode internal routes: decode the request, answer
/// it from this node's storage on a blocking thread, reply in bincode.
async fn internal<Q, R>(
    storage: Arc<Storage>,
    body: &Bytes,
    answer: impl FnOnce(&Storage, &RocksStore, Q) -> Result<R, cairn_chunkstore::Error> + Send + 'static,
) -> Result<Response, ApiError>
where
    Q: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    let store = own_store(&storage)?;
    let request: Q = decode(body)?;
    let reply = blocking(move || answer(&storage, &store, request)).await?;
    Ok(bincode_reply(&reply))
}

async fn internal_contains(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(storage, &body, |_, store, keys: Vec<ChunkKey>| {
        keys.iter()
            .map(|k| store.contains(k))
            .collect::<Result<Vec<bool>, _>>()
    })
    .await
}

async fn internal_digests(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(
        storage,
        &body,
        |s, store, (placement, down): (Placement, Vec<NodeId>)| {
            bucket::digests(store, s.id(), &placement, &down)
        },
    )
    .await
}

async fn internal_list(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(storage, &body, |_, store, buckets: Vec<u8>| {
        bucket::list(store, &buckets)
    })
    .await
}

async fn internal_push(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(
        storage,
        &body,
        |s, store, (to, keys): (NodeId, Vec<ChunkKey>)| push_from(store, &*s.peers, to, &keys),
    )
    .await
}

async fn internal_delete(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(storage, &body, |_, store, keys: Vec<ChunkKey>| {
        store.delete_batch(&keys)
    })
    .await
}

async fn internal_touch(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(storage, &body, |_, store, keys: Vec<ChunkKey>| {
        store.touch(&keys, unix_now())
    })
    .await
}

async fn internal_sweep(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(
        storage,
        &body,
        |_, store, (keys, cutoff): (Vec<ChunkKey>, u64)| store.delete_untouched(&keys, cutoff),
    )
    .await
}

async fn internal_ids(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(
        storage,
        &body,
        |_, store, (vault, after, limit): (VaultId, Option<ChunkId>, u64)| {
            let limit = usize::try_from(limit).unwrap_or(LIST_PAGE).min(LIST_PAGE);
            store.ids_after(vault, after, limit)
        },
    )
    .await
}

async fn internal_usage(
    State(storage): State<Arc<Storage>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    internal(storage, &body, |_, store, vault: VaultId| {
        store.usage(&vault)
    })
    .await
}
