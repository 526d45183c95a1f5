//! The license on the node's API: the admin route that sets it
//! (`POST /api/v1/admin/license`, `cairnd admin license set`), the write
//! check behind `license_expired` ([`check`]) that the backup, vault and
//! account routes call, and the license part of `cluster status`
//! ([`status`]).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_proto::admin::{LicenseStatus, SetLicense};
use cairn_proto::api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::Admin;
use crate::http::ApiError;
use crate::license::gate::{Facts, Gate};
use crate::license::policy::Mode;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new().routes(routes!(set_license))
}

/// `Ok` while the cluster may take new backups, vault requests and
/// account changes.
///
/// # Errors
///
/// [`ApiError::LicenseExpired`] with what the operator should do.
pub fn check(gate: &Gate, app: &Cluster) -> Result<(), ApiError> {
    app.state
        .read(|s| gate.check(s))
        .map_err(|advice| ApiError::LicenseExpired(advice.to_owned()))
}

/// The license as this node sees it.
pub fn status(gate: &Gate, app: &Cluster) -> LicenseStatus {
    let view = gate.view(&app.state.read(Facts::of));
    let secs = |ms: u64| ms / 1_000;
    let (lease, grace) = match view.mode {
        Mode::Valid { remaining_ms, .. } => (Some(secs(remaining_ms)), None),
        Mode::Grace { remaining_ms } => (Some(0), Some(secs(remaining_ms))),
        Mode::ReadOnly(_) => (Some(0), Some(0)),
        Mode::DevUnlicensed => (None, None),
    };
    LicenseStatus {
        mode: view.mode.name().to_owned(),
        detail: view.mode.advice().map(str::to_owned),
        serial: view.serial,
        authority: view.authority,
        holder: view.fencing_token.and(view.cluster_id),
        fencing_token: view.fencing_token,
        expires_at: view.expires_at,
        lease_remaining_seconds: lease,
        grace_remaining_seconds: grace,
    }
}

/// Records the cluster's serial, license authority and cadence through the
/// log; the leader then acquires the lease. A new serial drops the old
/// one's lease.
#[utoipa::path(post, path = "/api/v1/admin/license", tag = "admin",
    security(("admin" = [])),
    params(IdempotencyKey),
    request_body = SetLicense,
    responses(
        (status = 200, body = LicenseStatus),
        (status = 400, body = ErrorBody, description = "bad_request: an authority off loopback without https://, zero seconds"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 422, body = ErrorBody, description = "invalid_license"),
    ))]
async fn set_license(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<SetLicense>,
) -> Result<Json<LicenseStatus>, ApiError> {
    let current = app.state.read(|s| s.license().cloned());
    let event = crate::license::configure(current.as_ref(), &req, now())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    propose(&app, &key, admin.audit(event)).await?;
    Ok(Json(status(&gate, &app)))
}
