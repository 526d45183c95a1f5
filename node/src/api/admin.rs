//! The admin token's view of devices and jobs across accounts:
//! `GET /api/v1/admin/jobs`, `GET /api/v1/admin/devices`,
//! `POST /api/v1/admin/devices/{id}/revoke`. (Users and tiers are in
//! [`crate::http`].)

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::Event;
use cairn_proto::api::{DeviceInfo, ErrorBody, JobInfo};
use cairn_proto::DeviceId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::{device_info, device_now};
use super::jobs::jobs_where;
use super::{propose, ApiPath, IdempotencyKey};
use crate::app::{now, App};
use crate::auth::Admin;
use crate::error::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(all_jobs))
        .routes(routes!(all_devices))
        .routes(routes!(revoke_any_device))
}

/// Every account's jobs, with user and device names, oldest first
/// (linearizable).
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, body = Vec<JobInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn all_jobs(
    _admin: Admin,
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<JobInfo>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(jobs_where(&app, |_| true)))
}

/// Every device of every account, revoked ones included (linearizable).
#[utoipa::path(get, path = "/api/v1/admin/devices", tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, body = Vec<DeviceInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn all_devices(
    _admin: Admin,
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    app.read_barrier().await?;
    let mut devices: Vec<DeviceInfo> = app
        .state
        .read(|s| s.devices().values().map(|d| device_info(d, None)).collect());
    devices.sort_by_key(|d| (d.account, d.registered_at, d.id));
    Ok(Json(devices))
}

/// Revokes any account's device.
#[utoipa::path(post, path = "/api/v1/admin/devices/{id}/revoke", tag = "admin",
    security(("admin" = [])),
    params(("id" = DeviceId, Path, description = "the device"), IdempotencyKey),
    responses(
        (status = 200, body = DeviceInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 422, body = ErrorBody, description = "device_revoked: already revoked"),
    ))]
async fn revoke_any_device(
    _admin: Admin,
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<DeviceId>,
    key: IdempotencyKey,
) -> Result<Json<DeviceInfo>, ApiError> {
    app.read_barrier().await?;
    let account = app
        .state
        .read(|s| s.devices().get(&id).map(|d| d.account))
        .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))?;
    let event = Event::DeviceRevoked {
        device: id,
        account,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(device_now(&app, id, None)?))
}
