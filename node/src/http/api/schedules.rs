//! Schedules: `GET /api/v1/schedules`, `PUT|DELETE /api/v1/schedules/{name}`.
//!
//! Like items, schedules are private to the device that defined them: the
//! device's `cairn daemon` reads them and runs them. The spec's grammar is
//! `cairn_proto::schedule`'s, shared with the client: a spec that does not
//! parse is refused here (`invalid_schedule`), the state machine bounds its
//! length, and the leader reads it for the overdue-backup gauge.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::state::Schedule;
use cairn_consensus::{Event, Rejection};
use cairn_proto::api::{ErrorBody, PutSchedule, ScheduleInfo};
use cairn_proto::schedule::Spec;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(put_schedule, delete_schedule))
}

/// The API form of a schedule.
pub fn schedule_info(s: &Schedule) -> ScheduleInfo {
    ScheduleInfo {
        name: s.name.clone(),
        item: s.item.clone(),
        vault: s.vault,
        spec: s.spec.clone(),
        random_delay_s: s.random_delay_s,
        timeout_s: s.timeout_s,
        before: s.before.clone(),
        after: s.after.clone(),
        anchor: s.anchor.0,
        updated_at: s.updated_at.0,
    }
}

fn own_schedule(app: &Cluster, auth: &DeviceAuth, name: &str) -> Option<Schedule> {
    app.state
        .read(|s| s.schedules().get(&(auth.device, name.to_string())).cloned())
}

/// The asking device's schedules, by name.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<ScheduleInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_schedules(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<ScheduleInfo>>, ApiError> {
    Ok(Json(app.state.read(|s| {
        s.schedules_of(auth.device).map(schedule_info).collect()
    })))
}

/// Creates or replaces one of the asking device's schedules. A replaced
/// schedule keeps its anchor (periodic schedules keep their rhythm).
#[utoipa::path(put, path = "/api/v1/schedules/{name}", tag = "schedules",
    security(("device" = [])),
    params(("name" = String, Path, description = "the schedule name"), IdempotencyKey),
    request_body = PutSchedule,
    responses(
        (status = 200, body = ScheduleInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: the vault or the item"),
        (status = 422, body = ErrorBody, description = "invalid_schedule, invalid_name, too_long or too_many"),
    ))]
async fn put_schedule(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PutSchedule>,
) -> Result<Json<ScheduleInfo>, ApiError> {
    if let Err(e) = req.spec.parse::<Spec>() {
        return Err(ApiError::Rejected(Rejection::InvalidSchedule(e.0)));
    }
    if let Some(v) = req.vault {
        app.state.read(|s| auth.vault(s, v))?;
    }
    let has_item = app
        .state
        .read(|s| s.items().contains_key(&(auth.device, req.item.clone())));
    if !has_item {
        return Err(ApiError::NotFound(format!(
            "this device has no item {:?}",
            req.item
        )));
    }
    let at = now();
    let anchor = own_schedule(&app, &auth, &name).map_or(at, |s| s.anchor);
    let event = Event::ScheduleSet {
        device: auth.device,
        account: auth.account,
        name: name.clone(),
        item: req.item,
        vault: req.vault,
        spec: req.spec,
        random_delay_s: req.random_delay_s,
        timeout_s: req.timeout_s,
        before: req.before,
        after: req.after,
        anchor,
        at,
    };
    propose(&app, &key, event).await?;
    own_schedule(&app, &auth, &name)
        .map(|s| Json(schedule_info(&s)))
        .ok_or_else(|| ApiError::Internal(format!("schedule {name:?} missing after it was set")))
}

/// Removes one of the asking device's schedules; answers it as it was.
#[utoipa::path(delete, path = "/api/v1/schedules/{name}", tag = "schedules",
    security(("device" = [])),
    params(("name" = String, Path, description = "the schedule name"), IdempotencyKey),
    responses(
        (status = 200, body = ScheduleInfo, description = "the removed schedule"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: this device has no such schedule"),
    ))]
async fn delete_schedule(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
) -> Result<Json<ScheduleInfo>, ApiError> {
    let schedule = own_schedule(&app, &auth, &name)
        .ok_or_else(|| ApiError::NotFound(format!("this device has no schedule {name:?}")))?;
    let event = Event::ScheduleRemoved {
        device: auth.device,
        account: auth.account,
        name,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(schedule_info(&schedule)))
}
