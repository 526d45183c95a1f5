//! The account's devices: list, rename, revoke (`/api/v1/devices`).
//!
//! A device sees and changes only its own account's devices; another
//! account's device answers `404 not_found` like a missing one. Revoking
//! takes effect on every node at once: token checks read the state after a
//! linearizable read point ([`crate::http::auth`]).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::state::Device;
use cairn_consensus::Event;
use cairn_proto::api::{DeviceInfo, ErrorBody, RenameDevice};
use cairn_proto::DeviceId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_devices))
        .routes(routes!(rename_device))
        .routes(routes!(revoke_device))
}

/// The API form of a device; `current` marks the asking one.
pub fn device_info(d: &Device, asking: Option<DeviceId>) -> DeviceInfo {
    DeviceInfo {
        id: d.id,
        account: d.account,
        name: d.name.clone(),
        registered_at: d.registered_at.0,
        last_login_at: d.last_login_at.0,
        revoked_at: d.revoked_at.map(|t| t.0),
        current: asking == Some(d.id),
    }
}

/// The device `id` if it belongs to the asking device's account.
fn own_device(app: &Cluster, auth: &DeviceAuth, id: DeviceId) -> Result<Device, ApiError> {
    app.state
        .read(|s| {
            s.devices()
                .get(&id)
                .filter(|d| d.account == auth.account)
                .cloned()
        })
        .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))
}

/// The current record of device `id` (after a write this node applied).
pub(super) fn device_now(
    app: &Cluster,
    id: DeviceId,
    asking: Option<DeviceId>,
) -> Result<DeviceInfo, ApiError> {
    app.state
        .read(|s| s.devices().get(&id).map(|d| device_info(d, asking)))
        .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))
}

/// The account's devices, revoked ones included, oldest first.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<DeviceInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_devices(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    let mut devices: Vec<DeviceInfo> = app.state.read(|s| {
        s.devices_of(auth.account)
            .map(|d| device_info(d, Some(auth.device)))
            .collect()
    });
    devices.sort_by_key(|d| (d.registered_at, d.id));
    Ok(Json(devices))
}

/// Renames one of the account's devices.
#[utoipa::path(post, path = "/api/v1/devices/{id}/rename", tag = "devices",
    security(("device" = [])),
    params(("id" = DeviceId, Path, description = "the device"), IdempotencyKey),
    request_body = RenameDevice,
    responses(
        (status = 200, body = DeviceInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's device)"),
        (status = 409, body = ErrorBody, description = "name_taken"),
        (status = 422, body = ErrorBody, description = "invalid_name or device_revoked"),
    ))]
async fn rename_device(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<DeviceId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<RenameDevice>,
) -> Result<Json<DeviceInfo>, ApiError> {
    let device = own_device(&app, &auth, id)?;
    let event = Event::DeviceRenamed {
        device: device.id,
        account: device.account,
        name: req.name,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(device_now(&app, id, Some(auth.device))?))
}

/// Revokes one of the account's devices (the asking one too): its token
/// is refused on every node from now on.
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "devices",
    security(("device" = [])),
    params(("id" = DeviceId, Path, description = "the device"), IdempotencyKey),
    responses(
        (status = 200, body = DeviceInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's device)"),
        (status = 422, body = ErrorBody, description = "device_revoked: already revoked"),
    ))]
async fn revoke_device(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<DeviceId>,
    key: IdempotencyKey,
) -> Result<Json<DeviceInfo>, ApiError> {
    let device = own_device(&app, &auth, id)?;
    let event = Event::DeviceRevoked {
        device: device.id,
        account: device.account,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(device_now(&app, id, Some(auth.device))?))
}
