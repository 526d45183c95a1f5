//! Tiers as devices see them and the account's vaults:
//! `GET /api/v1/tiers`, `GET|POST /api/v1/vaults`,
//! `GET|DELETE /api/v1/vaults/{id}`, `PUT /api/v1/vaults/{id}/commands`
//! (before/after commands every device of the account runs around its
//! jobs on the vault).
//!
//! A device requests a vault from a tier the admin made requestable; the
//! client chooses the vault id (its keys' AADs bind it) and sends the
//! vault keys sealed with the wrap key, which the server stores opaquely.
//! Vaults are shared by all the account's devices; another account's vault
//! answers `404 not_found` like a missing one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cairn_consensus::state::Vault;
use cairn_consensus::{Event, State as Replicated};
use cairn_proto::api::{CreateVault, ErrorBody, TierInfo, VaultCommands, VaultInfo};
use cairn_proto::VaultId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, tier_info, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;
use crate::license::gate::Gate;
use crate::storage::Storage;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_tiers))
        .routes(routes!(list_vaults, create_vault))
        .routes(routes!(get_vault, delete_vault))
        .routes(routes!(set_vault_commands))
}

/// The API form of a vault, with its tier's replicas and quota, and the
/// bytes of sealed chunks it stores (one copy) as far as this node knows:
/// the storage role's estimate ([`Storage::used_bytes_hint`]), the same
/// figure its quota check uses.
pub fn vault_info(app: &Cluster, storage: &Storage, s: &Replicated, v: &Vault) -> VaultInfo {
    let tier = s.tiers().get(&v.tier);
    VaultInfo {
        id: v.id,
        name: v.name.clone(),
        tier: v.tier.clone(),
        replicas: tier.map_or(0, |t| t.replicas),
        quota_bytes: tier.and_then(|t| t.quota_bytes),
        used_bytes: storage.used_bytes_hint(app, v.id),
        created_at: v.created_at.0,
        wrapped_keys: v.wrapped_keys.clone(),
        snapshots: s.snapshots_of(v.id).count() as u64,
        before: v.before.clone(),
        after: v.after.clone(),
    }
}

/// The tiers devices may request vaults from: the requestable ones their
/// account's organization offers.
#[utoipa::path(get, path = "/api/v1/tiers", tag = "vaults",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<TierInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_tiers(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<TierInfo>>, ApiError> {
    Ok(Json(app.state.read(|s| {
        s.tiers()
            .values()
            .filter(|t| t.requestable && s.offers_tier(auth.account, &t.name))
            .map(tier_info)
            .collect()
    })))
}

/// The account's vaults, by name.
#[utoipa::path(get, path = "/api/v1/vaults", tag = "vaults",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<VaultInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_vaults(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
) -> Result<Json<Vec<VaultInfo>>, ApiError> {
    let mut vaults: Vec<VaultInfo> = app.state.read(|s| {
        s.vaults_of(auth.account)
            .map(|v| vault_info(&app, &storage, s, v))
            .collect()
    });
    vaults.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(vaults))
}

/// Creates a vault from a requestable tier.
#[utoipa::path(post, path = "/api/v1/vaults", tag = "vaults",
    security(("device" = [])),
    params(IdempotencyKey),
    request_body = CreateVault,
    responses(
        (status = 201, body = VaultInfo),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "unknown_tier"),
        (status = 409, body = ErrorBody, description = "name_taken or duplicate_id"),
        (status = 422, body = ErrorBody, description = "tier_not_requestable or invalid_name"),
    ))]
async fn create_vault(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    State(storage): State<Arc<Storage>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<CreateVault>,
) -> Result<(StatusCode, Json<VaultInfo>), ApiError> {
    super::license::check(&gate, &app)?;
    if req.wrapped_keys.is_empty() {
        return Err(ApiError::BadRequest("wrapped_keys is empty".into()));
    }
    let id = req.id;
    let event = Event::VaultCreated {
        vault: id,
        account: auth.account,
        name: req.name,
        tier: req.tier,
        wrapped_keys: req.wrapped_keys,
        at: now(),
    };
    propose(&app, &key, event).await?;
    let info = app.state.read(|s| {
        s.vaults()
            .get(&id)
            .filter(|v| v.account == auth.account)
            .map(|v| vault_info(&app, &storage, s, v))
    });
    info.map(|i| (StatusCode::CREATED, Json(i)))
        .ok_or_else(|| ApiError::Internal(format!("vault {id} missing after it was created")))
}

/// One of the account's vaults.
#[utoipa::path(get, path = "/api/v1/vaults/{id}", tag = "vaults",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    responses(
        (status = 200, body = VaultInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
    ))]
async fn get_vault(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    ApiPath(id): ApiPath<VaultId>,
) -> Result<Json<VaultInfo>, ApiError> {
    let info = app
        .state
        .read(|s| auth.vault(s, id).map(|v| vault_info(&app, &storage, s, &v)))?;
    Ok(Json(info))
}

/// Deletes one of the account's vaults with its snapshot records; answers
/// the vault as it was.
#[utoipa::path(delete, path = "/api/v1/vaults/{id}", tag = "vaults",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"), IdempotencyKey),
    responses(
        (status = 200, body = VaultInfo, description = "the deleted vault"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
    ))]
async fn delete_vault(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    ApiPath(id): ApiPath<VaultId>,
    key: IdempotencyKey,
) -> Result<Json<VaultInfo>, ApiError> {
    let info = app
        .state
        .read(|s| auth.vault(s, id).map(|v| vault_info(&app, &storage, s, &v)))?;
    let event = Event::VaultDeleted {
        vault: id,
        account: auth.account,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(info))
}

/// Sets the before/after commands of one of the account's vaults (empty
/// lists clear them); answers the vault.
#[utoipa::path(put, path = "/api/v1/vaults/{id}/commands", tag = "vaults",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"), IdempotencyKey),
    request_body = VaultCommands,
    responses(
        (status = 200, body = VaultInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
        (status = 422, body = ErrorBody, description = "too_long or too_many commands"),
    ))]
async fn set_vault_commands(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    ApiPath(id): ApiPath<VaultId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<VaultCommands>,
) -> Result<Json<VaultInfo>, ApiError> {
    app.state.read(|s| auth.vault(s, id))?;
    let event = Event::VaultCommandsSet {
        vault: id,
        account: auth.account,
        before: req.before,
        after: req.after,
        at: now(),
    };
    propose(&app, &key, event).await?;
    let info = app
        .state
        .read(|s| auth.vault(s, id).map(|v| vault_info(&app, &storage, s, &v)))?;
    Ok(Json(info))
}
