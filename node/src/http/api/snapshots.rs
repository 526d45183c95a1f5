//! Snapshot records of a vault: `GET|POST /api/v1/vaults/{id}/snapshots`,
//! `DELETE /api/v1/vaults/{id}/snapshots/{sid}`.
//!
//! A record is committed through the log after a backup uploaded its
//! chunks, under the backup's running job (checked in `apply`, so it cannot
//! race a prune: docs/FORMATS.md, garbage collection); any device of the owning account may list and forget any
//! device's records (a lost PC's snapshots are restored from another
//! device). Another account's vault or snapshot answers `404 not_found`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cairn_consensus::event::{SnapshotRecord, SnapshotStats as Stats};
use cairn_consensus::{Event, State as Replicated, UnixMillis};
use cairn_proto::api::{CommitSnapshot, ErrorBody, SnapshotInfo, SnapshotStats};
use cairn_proto::{ChunkId, SnapshotId, VaultId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;
use crate::license::gate::Gate;
use crate::storage::Storage;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_snapshots, commit_snapshot))
        .routes(routes!(forget_snapshot))
}

/// Whether the snapshot's root tree chunk is stored in the vault: the
/// contract refuses a record whose root is not stored, so a snapshot never
/// names a tree the cluster does not have.
///
/// # Errors
///
/// When no owner of the chunk can be asked.
pub async fn root_is_stored(
    app: &Cluster,
    storage: &Storage,
    vault: VaultId,
    root: ChunkId,
) -> Result<bool, ApiError> {
    Ok(storage.chunk_stored(app, vault, root).await?)
}

/// The API form of a record, with the name of the device that made it.
pub fn snapshot_info(s: &Replicated, r: &SnapshotRecord) -> SnapshotInfo {
    SnapshotInfo {
        id: r.id,
        vault: r.vault,
        device: r.device,
        device_name: s
            .devices()
            .get(&r.device)
            .map(|d| d.name.clone())
            .unwrap_or_default(),
        item: r.item.clone(),
        started_at: r.started_at.0,
        finished_at: r.finished_at.0,
        root: r.root,
        stats: SnapshotStats {
            files: r.stats.files,
            bytes: r.stats.bytes,
            new_bytes: r.stats.new_bytes,
            new_chunks: r.stats.new_chunks,
        },
        sealed_meta: r.sealed_meta.clone(),
    }
}

/// The vault's snapshot records (every device's), oldest first.
#[utoipa::path(get, path = "/api/v1/vaults/{id}/snapshots", tag = "snapshots",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    responses(
        (status = 200, body = Vec<SnapshotInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
    ))]
async fn list_snapshots(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<VaultId>,
) -> Result<Json<Vec<SnapshotInfo>>, ApiError> {
    let mut list = app.state.read(|s| {
        auth.vault(s, id).map(|v| {
            s.snapshots_of(v.id)
                .map(|r| snapshot_info(s, r))
                .collect::<Vec<_>>()
        })
    })?;
    list.sort_by_key(|r| (r.finished_at, r.id));
    Ok(Json(list))
}

/// Commits a snapshot record made by the asking device.
#[utoipa::path(post, path = "/api/v1/vaults/{id}/snapshots", tag = "snapshots",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"), IdempotencyKey),
    request_body = CommitSnapshot,
    responses(
        (status = 201, body = SnapshotInfo),
        (status = 400, body = ErrorBody, description = "bad_request: e.g. the root tree is not stored"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 409, body = ErrorBody, description = "duplicate_id; job_not_running: `job` is not a running backup job of this device on this vault (or is 24 h old); limit_reached: the vault's records or the account's metadata are at their limit"),
        (status = 413, body = ErrorBody, description = "too_large: the sealed metadata is over its limit"),
        (status = 422, body = ErrorBody, description = "time_travel or invalid_name"),
    ))]
async fn commit_snapshot(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    State(storage): State<Arc<Storage>>,
    ApiPath(id): ApiPath<VaultId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<CommitSnapshot>,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    super::license::check(&gate, &app)?;
    let vault = app.state.read(|s| auth.vault(s, id))?;
    if !root_is_stored(&app, &storage, vault.id, req.root).await? {
        return Err(ApiError::BadRequest(format!(
            "root tree {} is not stored in vault {}",
            req.root, vault.id
        )));
    }
    let sid = req.id;
    let record = SnapshotRecord {
        id: sid,
        vault: vault.id,
        device: auth.device,
        item: req.item,
        started_at: UnixMillis(req.started_at),
        finished_at: UnixMillis(req.finished_at),
        root: req.root,
        stats: Stats {
            files: req.stats.files,
            bytes: req.stats.bytes,
            new_bytes: req.stats.new_bytes,
            new_chunks: req.stats.new_chunks,
        },
        sealed_meta: req.sealed_meta,
    };
    let event = Event::SnapshotCommittedByJob {
        snapshot: record,
        job: req.job,
        at: now(),
    };
    propose(&app, &key, event).await?;
    let info = app.state.read(|s| {
        s.snapshots()
            .get(&sid)
            .filter(|r| r.vault == vault.id)
            .map(|r| snapshot_info(s, r))
    });
    info.map(|i| (StatusCode::CREATED, Json(i)))
        .ok_or_else(|| ApiError::Internal(format!("snapshot {sid} missing after its commit")))
}

/// Forgets a snapshot record of the vault, whichever device made it (the
/// chunks stay until a prune).
#[utoipa::path(delete, path = "/api/v1/vaults/{id}/snapshots/{sid}", tag = "snapshots",
    security(("device" = [])),
    params(
        ("id" = VaultId, Path, description = "the vault"),
        ("sid" = SnapshotId, Path, description = "the snapshot"),
        IdempotencyKey,
    ),
    responses(
        (status = 204, description = "forgotten"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault or snapshot)"),
    ))]
async fn forget_snapshot(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath((id, sid)): ApiPath<(VaultId, SnapshotId)>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    app.state.read(|s| {
        auth.vault(s, id)?;
        s.snapshots()
            .get(&sid)
            .filter(|r| r.vault == id)
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("no snapshot {sid} in vault {id}")))
    })?;
    let event = Event::SnapshotForgotten {
        snapshot: sid,
        vault: id,
        device: auth.device,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(StatusCode::NO_CONTENT)
}
