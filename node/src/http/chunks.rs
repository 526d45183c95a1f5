//! The device routes of the storage role, and the drain.
//!
//! | path | body | who calls it |
//! |---|---|---|
//! | `POST /api/v1/vaults/{id}/chunks/missing` | id list → id list | devices (dedup check) |
//! | `POST /api/v1/vaults/{id}/chunks` | chunk frames → [`UploadReply`] JSON | devices (upload) |
//! | `POST /api/v1/vaults/{id}/chunks/get` | id list → chunk frames, streamed | devices (restore) |
//! | `POST /api/v1/vaults/{id}/chunks/list?after=HEX` | → id list (one page) | devices (prune: what is stored) |
//! | `POST /api/v1/vaults/{id}/chunks/delete?job=HEX` | id list → [`SweepReply`] JSON | devices (prune: the sweep) |
//! | `POST /api/v1/cluster/drain` | [`DrainRequest`] JSON, admin token | `cairnd cluster drain` |
//!
//! Device bodies use [`cairn_proto::frames`]; a chunk the cluster has no
//! good copy of is simply absent from a get's answer (the client asks again,
//! possibly through another node). Limits: an upload body of at most
//! [`MAX_UPLOAD_BYTES`] and [`MAX_UPLOAD_CHUNKS`] chunks, id lists of at most
//! [`cairn_proto::frames::MAX_IDS`] ids; over a limit the answer is `413`
//! with code `payload_too_large`. An upload needs `Content-Length` (else
//! `411 length_required`) and is refused by its declared length before
//! its body is read; a get answers at most [`MAX_GET_RESPONSE_BYTES`] of
//! chunks (the rest are left out, the client asks again). A device has at
//! most [`crate::storage::TRANSFERS_PER_DEVICE`] uploads and gets in flight per node,
//! an account at most [`crate::storage::UPLOAD_BYTES_PER_ACCOUNT`] declared upload
//! bytes (over either: `429 rate_limited` with `Retry-After`). An upload that would take the vault over
//! its tier's quota is refused whole with `507` `quota_exceeded`, and one
//! that cannot reach W durable copies with `503` `insufficient_replicas`,
//! and one that cannot make a single copy (every node of the vault's pool
//! down) with `503 pool_unavailable` naming the tier.
//!
//! The two prune routes carry out garbage collection of a live vault under
//! the rules of `docs/FORMATS.md` ("Garbage collection of live vaults"):
//! the sweep needs the asking device's running `prune` job on the vault,
//! is refused with `409 busy` while a backup job on the vault runs (or if
//! one finished after the prune started), and deletes a copy only if it was
//! last touched before the prune started.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_chunkstore::gc;
use cairn_chunkstore::peers::Peers;
use cairn_chunkstore::replica::{self, Batch};
use cairn_chunkstore::ChunkKey;
use cairn_consensus::state::StorageNodeStatus;
use cairn_consensus::{Event, Outcome, Rejection};
use cairn_proto::admin::{DrainRequest, DrainResponse};
use cairn_proto::api::{ErrorBody, SweepReply, UploadReply, LIST_PAGE};
use cairn_proto::frames::{self, MAX_IDS};
use cairn_proto::{ChunkId, JobId, VaultId};
use serde::Deserialize;

use super::auth::{Admin, DeviceAuth};
use super::extract::ApiJson;
use super::{ApiError, HttpState};
use crate::cluster::{now, Cluster};
use crate::license::gate::Gate;
use crate::storage::policy::{self, SweepRefusal};
use crate::storage::{Reserved, Storage};

/// Largest upload body: room for one chunk of the largest size a frame
/// allows plus a batch of ordinary ones.
pub const MAX_UPLOAD_BYTES: usize = frames::MAX_CHUNK_LEN + (32 << 20);
/// Most chunks in one upload.
pub const MAX_UPLOAD_CHUNKS: usize = 4096;
/// Largest id-list body.
const MAX_ID_BODY: usize = 1 + MAX_IDS * ChunkId::LEN;
/// Chunks read per step of a streamed get (the stream reads one step ahead).
const GET_STEP: usize = 16;
/// Most chunk bytes one get answers with; the chunks past it are left out
/// and the client asks for them again (as for a chunk without a good
/// copy). The client asks for ~8 MiB at a time.
pub const MAX_GET_RESPONSE_BYTES: usize = 32 << 20;
/// Frame bytes around each chunk of an upload (id and length).
const FRAME_OVERHEAD: usize = ChunkId::LEN + 4;

/// The device routes and the drain route, documented (merged into the
/// node's router and OpenAPI document by [`super::router`]). The handlers
/// enforce their own body limits.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<HttpState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(missing))
        .routes(routes!(upload))
        .routes(routes!(get))
        .routes(routes!(list))
        .routes(routes!(sweep))
        .routes(routes!(drain))
        .layer(DefaultBodyLimit::disable())
}

fn parse_vault(id: &str) -> Result<VaultId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no vault {id}")))
}

/// Reads a body of at most `limit` bytes; over it: `413 payload_too_large`.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the body exceeds {limit} bytes"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::error::describe(&e).contains("length limit") {
            too_large()
        } else {
            ApiError::BadRequest(format!("reading the body: {e}"))
        }
    })
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cairn_chunkstore::Error> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(cairn_chunkstore::Error::InsufficientReplicas { key, got: 0, .. })) => {
            Err(ApiError::PoolUnavailable(format!(
                "no storage node that may hold chunk {} could take it",
                key.chunk
            )))
        }
        Ok(Err(cairn_chunkstore::Error::InsufficientReplicas { key, got, need })) => {
            Err(ApiError::InsufficientReplicas(format!(
                "only {got} of {need} copies of chunk {} could be written; retry",
                key.chunk
            )))
        }
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(ApiError::Internal(format!("storage task: {e}"))),
    }
}

/// The preamble of every device route: the vault (checked against the
/// device's account) and its quota.
fn vault_of(
    app: &Cluster,
    auth: &DeviceAuth,
    id: &str,
) -> Result<(VaultId, Option<u64>), ApiError> {
    let id = parse_vault(id)?;
    app.state.read(|s| {
        let v = auth.vault(s, id)?;
        Ok((v.id, s.tiers().get(&v.tier).and_then(|t| t.quota_bytes)))
    })
}

/// Reads and decodes an id-list body (at most [`MAX_ID_BODY`] bytes).
async fn read_ids(headers: &HeaderMap, body: Body) -> Result<Vec<ChunkId>, ApiError> {
    let body = read_body(headers, body, MAX_ID_BODY).await?;
    frames::decode_ids(&body).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A slot of the device's bounded chunk transfers, or `429 rate_limited`
/// with `Retry-After`.
fn transfer_slot(
    storage: &Storage,
    auth: &DeviceAuth,
) -> Result<Reserved<cairn_proto::DeviceId>, ApiError> {
    storage
        .transfers
        .try_reserve(auth.device, 1)
        .ok_or_else(|| ApiError::DeviceBusy {
            message: format!(
                "device {} already has {} chunk uploads or gets in flight on this node; retry shortly",
                auth.name,
                storage.transfers.limit()
            ),
            retry_after: 1,
        })
}

/// The declared body length of a request.
fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

pub(super) fn binary(bytes: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// Which of the listed chunks the vault lacks (the dedup check before an
/// upload).
#[utoipa::path(post, path = "/api/v1/vaults/{id}/chunks/missing", tag = "chunks",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "chunk id list (cairn_proto::frames::encode_ids)"),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>,
            description = "the missing ids, same encoding"),
        (status = 400, body = ErrorBody, description = "bad_request: malformed id list"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 413, body = ErrorBody, description = "payload_too_large"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn missing(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (vault, _) = vault_of(&app, &auth, &id)?;
    let ids = read_ids(&headers, body).await?;
    let keys: Vec<ChunkKey> = ids.iter().map(|c| ChunkKey::new(vault, *c)).collect();
    let placement = Storage::placement(&app);
    let peers = storage.peers.clone();
    let me = storage.id();
    let absent = blocking(move || replica::missing(&*peers, &placement, Some(me), &keys)).await?;
    let missing = ids.iter().zip(absent).filter_map(|(id, m)| m.then_some(id));
    Ok(binary(frames::encode_ids(missing)))
}

/// Stores a batch of sealed chunks on W replicas before answering.
#[utoipa::path(post, path = "/api/v1/vaults/{id}/chunks", tag = "chunks",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "chunk frames (cairn_proto::frames)"),
    responses(
        (status = 200, body = UploadReply),
        (status = 400, body = ErrorBody, description = "bad_request: malformed frames"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 411, body = ErrorBody, description = "length_required: no Content-Length"),
        (status = 413, body = ErrorBody, description = "payload_too_large"),
        (status = 429, body = ErrorBody, description = "rate_limited: the device's transfers or the account's upload bytes in flight are at their limit; retry after Retry-After"),
        (status = 503, body = ErrorBody, description = "insufficient_replicas or unavailable: retry; pool_unavailable: every storage node of the vault's tier is down"),
        (status = 507, body = ErrorBody, description = "quota_exceeded (judged by Content-Length before the body is read)"),
    ))]
async fn upload(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    State(storage): State<Arc<Storage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<UploadReply>, ApiError> {
    let started = Instant::now();
    super::api::license::check(&gate, &app)?;
    let (vault, quota) = vault_of(&app, &auth, &id)?;
    let _slot = transfer_slot(&storage, &auth)?;
    // Judged before a byte of the body is read, so a refused upload costs
    // no memory: the declared length, less the most frame overhead it can
    // hold, must fit the quota (the exact check by chunk bytes follows).
    let declared = content_length(&headers).ok_or_else(|| {
        ApiError::LengthRequired(
            "a chunk upload needs a Content-Length header (the quota is checked before the body is read)"
                .into(),
        )
    })?;
    if declared > MAX_UPLOAD_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body exceeds {MAX_UPLOAD_BYTES} bytes"
        )));
    }
    let _bytes = storage
        .upload_bytes
        .try_reserve(auth.account, declared as u64)
        .ok_or_else(|| ApiError::DeviceBusy {
            message: format!(
                "the account's devices already have close to {} bytes of uploads in flight on this node; retry shortly",
                storage.upload_bytes.limit()
            ),
            retry_after: 1,
        })?;
    let mut used = None;
    if let Some(quota) = quota {
        let now_used = storage.vault_usage(&app, vault).await;
        let least = declared.saturating_sub(1 + MAX_UPLOAD_CHUNKS * FRAME_OVERHEAD) as u64;
        if now_used.saturating_add(least) > quota {
            return Err(ApiError::QuotaExceeded(format!(
                "vault {vault} uses about {now_used} of its {quota} bytes; this upload of {declared} bytes would exceed the quota"
            )));
        }
        used = Some(now_used);
    }
    let body = read_body(&headers, body, MAX_UPLOAD_BYTES).await?;
    let frames = frames::decode_frames(&body).map_err(|e| match e {
        frames::FrameError::ChunkTooLarge(_) | frames::FrameError::TooMany => {
            ApiError::PayloadTooLarge(e.to_string())
        }
        _ => ApiError::BadRequest(e.to_string()),
    })?;
    if frames.len() > MAX_UPLOAD_CHUNKS {
        return Err(ApiError::PayloadTooLarge(format!(
            "{} chunks in one upload; at most {MAX_UPLOAD_CHUNKS}",
            frames.len()
        )));
    }
    let incoming: u64 = frames.iter().map(|(_, b)| b.len() as u64).sum();
    if let (Some(quota), Some(used)) = (quota, used) {
        if used.saturating_add(incoming) > quota {
            return Err(ApiError::QuotaExceeded(format!(
                "vault {vault} uses about {used} of its {quota} bytes; this upload of {incoming} bytes would exceed the quota"
            )));
        }
    }
    // Slices of the request body: no copy of the chunk bytes.
    let batch: Arc<Batch<Bytes>> = Arc::new(
        frames
            .iter()
            .map(|(c, b)| (ChunkKey::new(vault, *c), body.slice_ref(b)))
            .collect(),
    );
    drop(frames);
    let placement = Storage::placement(&app);
    let peers: Arc<dyn Peers> = storage.peers.clone();
    let quorum = storage.settings.write_quorum;
    let sizes: Vec<u64> = batch.iter().map(|(_, b)| b.len() as u64).collect();
    let throttle = storage.throttle.clone();
    #[cfg(feature = "unsafe-ack")]
    if let Some(reply) = unsafe_ack(batch.clone(), peers.clone(), &placement, quorum, &throttle) {
        return Ok(Json(reply));
    }
    let written = blocking(move || replica::write(peers, &placement, batch, quorum, &throttle))
        .await
        .map_err(|e| match e {
            ApiError::PoolUnavailable(_) => ApiError::PoolUnavailable(
                app.state
                    .read(|s| crate::roles::pool_down(s, vault).unwrap_or_default()),
            ),
            e => e,
        })?;
    let stored = written.new.iter().filter(|n| **n).count() as u64;
    let new_bytes: u64 = written
        .new
        .iter()
        .zip(&sizes)
        .filter(|(n, _)| **n)
        .map(|(_, s)| *s)
        .sum();
    storage.add_usage(vault, new_bytes);
    let m = &storage.metrics;
    m.put_chunks.inc_by(sizes.len() as u64);
    m.put_bytes.inc_by(incoming);
    m.dedup_hits.inc_by(sizes.len() as u64 - stored);
    m.put_duration.observe(started.elapsed().as_secs_f64());
    Ok(Json(UploadReply {
        stored,
        present: sizes.len() as u64 - stored,
        replicas: u8::try_from(written.copies).unwrap_or(u8::MAX),
    }))
}

/// A deliberate bug for the fault-injection harness (cargo feature
/// `unsafe-ack`, built only as the test binary `cairnd-unsafe-ack`): with
/// `CAIRN_UNSAFE_ACK` set, an upload is acknowledged at once and written
/// [`UNSAFE_ACK_DELAY`] later, so a node killed in between loses chunks it
/// acknowledged. `cairn-jepsen`'s chunk checker must catch it.
#[cfg(feature = "unsafe-ack")]
fn unsafe_ack(
    batch: Arc<Batch<Bytes>>,
    peers: Arc<dyn Peers>,
    placement: &cairn_chunkstore::placement::Placement,
    quorum: usize,
    throttle: &Arc<cairn_chunkstore::replica::Throttle>,
) -> Option<UploadReply> {
    std::env::var_os("CAIRN_UNSAFE_ACK")?;
    let stored = batch.len() as u64;
    let (placement, throttle) = (placement.clone(), throttle.clone());
    tokio::spawn(async move {
        tokio::time::sleep(UNSAFE_ACK_DELAY).await;
        let written =
            blocking(move || replica::write(peers, &placement, batch, quorum, &throttle)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "unsafe-ack: delayed write failed");
        }
    });
    Some(UploadReply {
        stored,
        present: 0,
        replicas: u8::try_from(quorum).unwrap_or(u8::MAX),
    })
}

/// How long `unsafe-ack` holds an acknowledged upload in memory.
#[cfg(feature = "unsafe-ack")]
const UNSAFE_ACK_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// Streams the listed chunks (a chunk without a good copy is absent).
#[utoipa::path(post, path = "/api/v1/vaults/{id}/chunks/get", tag = "chunks",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "chunk id list (cairn_proto::frames::encode_ids)"),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>,
            description = "chunk frames, streamed; at most 32 MiB of chunks, the rest left out (ask again)"),
        (status = 400, body = ErrorBody, description = "bad_request: malformed id list"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 413, body = ErrorBody, description = "payload_too_large"),
        (status = 429, body = ErrorBody, description = "rate_limited: the device's transfers in flight are at their limit; retry after Retry-After"),
    ))]
async fn get(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (vault, _) = vault_of(&app, &auth, &id)?;
    let slot = transfer_slot(&storage, &auth)?;
    let ids = read_ids(&headers, body).await?;
    let placement = Arc::new(Storage::placement(&app));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tokio::spawn(async move {
        // The device's slot is held until the answer is streamed.
        let _slot = slot;
        if tx.send(Ok(frames::frames_header())).await.is_err() {
            return;
        }
        let mut sent = 0usize;
        for step in ids.chunks(GET_STEP) {
            if sent >= MAX_GET_RESPONSE_BYTES {
                break;
            }
            let started = Instant::now();
            let keys: Vec<ChunkKey> = step.iter().map(|c| ChunkKey::new(vault, *c)).collect();
            let (peers, placement, me) = (storage.peers.clone(), placement.clone(), storage.id());
            let read = blocking(move || replica::read(&*peers, &placement, Some(me), &keys)).await;
            let report = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "chunk get failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let m = &storage.metrics;
            m.read_repairs.inc_by(report.repaired);
            m.corrupt_copies.inc_by(report.corrupt);
            let mut out = Vec::new();
            for (id, chunk) in step.iter().zip(&report.chunks) {
                if let Some(bytes) = chunk {
                    if sent > 0 && sent + bytes.len() > MAX_GET_RESPONSE_BYTES {
                        // Left out: the client asks for it again.
                        sent = MAX_GET_RESPONSE_BYTES;
                        break;
                    }
                    sent += bytes.len();
                    frames::push_frame(&mut out, id, bytes);
                    m.get_chunks.inc();
                    m.get_bytes.inc_by(bytes.len() as u64);
                }
            }
            m.get_duration.observe(started.elapsed().as_secs_f64());
            if tx.send(Ok(out)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `?after=HEX` of a listing.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: Option<String>,
}

/// `?job=HEX` of a sweep.
#[derive(Debug, Deserialize)]
struct SweepQuery {
    #[serde(default)]
    job: Option<String>,
}

/// The storage errors of the prune routes: a node that cannot be reached
/// makes them `503 unavailable` (retry), anything else is internal.
async fn gc_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, cairn_chunkstore::Error> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(
            e
            @ (cairn_chunkstore::Error::Unreachable { .. } | cairn_chunkstore::Error::Peer { .. }),
        )) => Err(ApiError::Unavailable(format!(
            "every storage node must answer: {e}; retry"
        ))),
        Ok(Err(e)) => Err(ApiError::Internal(e.to_string())),
        Err(e) => Err(ApiError::Internal(format!("storage task: {e}"))),
    }
}

/// One page of the ids of the vault's stored chunks, over every storage
/// node: ascending, each greater than `after`, at most
/// [`LIST_PAGE`]; a shorter page is the last.
#[utoipa::path(post, path = "/api/v1/vaults/{id}/chunks/list", tag = "chunks",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"),
        ("after" = Option<String>, Query, description = "list ids greater than this chunk id (hex); absent: from the first")),
    responses(
        (status = 200, content_type = "application/octet-stream", body = Vec<u8>,
            description = "chunk id list (cairn_proto::frames::encode_ids), ascending"),
        (status = 400, body = ErrorBody, description = "bad_request: malformed `after`"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 503, body = ErrorBody, description = "unavailable: a storage node did not answer; retry"),
    ))]
async fn list(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (vault, _) = vault_of(&app, &auth, &id)?;
    let after = q
        .after
        .as_deref()
        .map(str::parse::<ChunkId>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("after: {e}")))?;
    let placement = Storage::placement(&app);
    let peers = storage.peers.clone();
    let ids = gc_blocking(move || gc::list(&*peers, &placement, vault, after, LIST_PAGE)).await?;
    Ok(binary(frames::encode_ids(&ids)))
}

/// The sweep of `cairn prune`: deletes the listed chunks (the client's
/// garbage: stored minus reachable from every snapshot) except those a
/// backup touched since the prune job started.
#[utoipa::path(post, path = "/api/v1/vaults/{id}/chunks/delete", tag = "chunks",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"),
        ("job" = String, Query, description = "the asking device's running prune job on the vault (hex id)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "chunk id list (cairn_proto::frames::encode_ids)"),
    responses(
        (status = 200, body = SweepReply),
        (status = 400, body = ErrorBody, description = "bad_request: malformed id list, or `job` is not a running prune job of this device on the vault"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 409, body = ErrorBody, description = "busy: a backup job on the vault is running, or finished after the prune started"),
        (status = 413, body = ErrorBody, description = "payload_too_large"),
        (status = 503, body = ErrorBody, description = "unavailable: a storage node did not answer; retry"),
    ))]
async fn sweep(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    Path(id): Path<String>,
    Query(q): Query<SweepQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<SweepReply>, ApiError> {
    let (vault, _) = vault_of(&app, &auth, &id)?;
    let job: JobId = q
        .job
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest("the `job` query parameter is required".into()))?
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("job: {e}")))?;
    let ids = read_ids(&headers, body).await?;
    // Every backup job started anywhere before this point is seen.
    app.read_barrier().await?;
    let cutoff = app
        .state
        .read(|s| policy::sweep_cutoff(s.jobs(), auth.device, vault, job))
        .map_err(|refusal| match refusal {
            SweepRefusal::NotRunningPrune { .. } => ApiError::BadRequest(refusal.to_string()),
            SweepRefusal::BackupRunning { .. } | SweepRefusal::BackupFinishedAfter { .. } => {
                ApiError::Busy(refusal.to_string())
            }
        })?;
    let keys: Vec<ChunkKey> = ids.iter().map(|c| ChunkKey::new(vault, *c)).collect();
    let placement = Storage::placement(&app);
    let peers = storage.peers.clone();
    let report = gc_blocking(move || gc::sweep(&*peers, &placement, &keys, cutoff)).await?;
    tracing::info!(%vault, %job, asked = ids.len(), deleted = report.deleted,
        kept = report.kept, cutoff, "prune sweep");
    Ok(Json(SweepReply {
        deleted: report.deleted,
        kept_recently_used: report.kept,
    }))
}

/// Starts draining a storage node: it takes no new chunks and its chunks
/// are re-replicated elsewhere.
#[utoipa::path(post, path = "/api/v1/cluster/drain", tag = "cluster",
    security(("admin" = [])),
    request_body = DrainRequest,
    responses(
        (status = 200, body = DrainResponse),
        (status = 400, body = ErrorBody, description = "bad_request: the last active storage node"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 404, body = ErrorBody, description = "not_found: no such storage node"),
    ))]
async fn drain(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiJson(req): ApiJson<DrainRequest>,
) -> Result<Json<DrainResponse>, ApiError> {
    admin.require_cluster_admin()?;
    let node = req.node_id;
    let (status, active) = app.state.read(|s| {
        let status = s.storage_nodes().get(&node).map(|n| n.status);
        let active = s
            .storage_nodes()
            .values()
            .filter(|n| n.status == StorageNodeStatus::Active)
            .count();
        (status, active)
    });
    match status {
        None => return Err(ApiError::NotFound(format!("no storage node {node}"))),
        Some(StorageNodeStatus::Active) if active <= 1 => {
            return Err(ApiError::BadRequest(format!(
                "node {node} is the last active storage node; its chunks would have nowhere to go"
            )))
        }
        _ => {}
    }
    match app
        .propose(Event::StorageNodeDrained { node, at: now() })
        .await?
    {
        Outcome::Applied
        | Outcome::NoOp
        | Outcome::Rejected(Rejection::StorageNodeState {
            status: StorageNodeStatus::Draining,
            ..
        }) => {}
        Outcome::Rejected(r) => return Err(ApiError::Rejected(r)),
    }
    let status = app.state.read(|s| {
        s.storage_nodes()
            .get(&node)
            .map_or_else(|| "unknown".into(), |n| format!("{:?}", n.status))
    });
    Ok(Json(DrainResponse {
        node_id: node,
        status,
    }))
}
