//! The job log: `GET|POST /api/v1/jobs`, `POST /api/v1/jobs/{id}/finish`,
//! `POST /api/v1/jobs/{id}/heartbeat` (a running job is alive; the cluster
//! role ends silent jobs `abandoned`) and `POST /api/v1/jobs/record` (a job
//! that never ran: `missed`, `skipped_already_running`, or one recorded
//! after the fact).
//!
//! Every job (backup, restore, check, prune) writes a start and a finish
//! record through the log; logins appear as finished `login` jobs written
//! by the server. A device sees its account's jobs; only the device that
//! started a job may finish it. Another account's job answers `404`. A job
//! a dispatcher began for a device (`http::api::dispatch`) is started by
//! that device under the same id and answers as started.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cairn_consensus::event::JobKind as Kind;
use cairn_consensus::state::Job;
use cairn_consensus::{AccountId, DeviceId, Event, State as Replicated};
use cairn_proto::api::{ErrorBody, FinishJob, JobInfo, JobKind, RecordJob, StartJob};
use cairn_proto::{JobId, VaultId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::jobs::{kind_info, status_event, status_info};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;
use crate::license::gate::Gate;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, start_job))
        .routes(routes!(finish_job))
        .routes(routes!(job_heartbeat))
        .routes(routes!(record_job))
}

/// The stored kind of a kind a device may start (not `login`).
fn device_kind(kind: JobKind) -> Result<Kind, ApiError> {
    Ok(match kind {
        JobKind::Backup => Kind::Backup,
        JobKind::Restore => Kind::Restore,
        JobKind::Check => Kind::Check,
        JobKind::Prune => Kind::Prune,
        JobKind::Retention => Kind::Retention,
        JobKind::Login => {
            return Err(ApiError::BadRequest(
                "login jobs are written by the server".into(),
            ))
        }
    })
}

/// An account's name (empty for one that no longer exists).
pub fn account_name(s: &Replicated, account: AccountId) -> String {
    s.accounts()
        .get(&account)
        .map(|a| a.name.clone())
        .unwrap_or_default()
}

/// A device's name (empty for one that no longer exists).
pub fn device_name(s: &Replicated, device: DeviceId) -> String {
    s.devices()
        .get(&device)
        .map(|d| d.name.clone())
        .unwrap_or_default()
}

/// The API form of a job, with its account's and device's names.
pub fn job_info(s: &Replicated, j: &Job) -> JobInfo {
    let end = j.finished.as_ref();
    JobInfo {
        id: j.id,
        account: j.account,
        user: account_name(s, j.account),
        device: j.device,
        device_name: device_name(s, j.device),
        vault: j.vault,
        kind: kind_info(j.kind),
        started_at: j.started_at.0,
        finished_at: end.map(|e| e.at.0),
        duration_ms: end.map(|e| e.at.0.saturating_sub(j.started_at.0)),
        status: end.map(|e| status_info(e.status)),
        files: end.map_or(0, |e| e.files),
        bytes: end.map_or(0, |e| e.bytes),
        error: end.and_then(|e| e.error.clone()),
        log: end.map(|e| e.log.clone()).unwrap_or_default(),
        item: j.item.clone(),
        schedule: j.schedule.clone(),
        last_seen: j.last_seen.0,
        revived: j.revived,
        dispatched_by: dispatcher_of(s, j.id),
    }
}

/// Who dispatched job `id` (remote control), from the audit trail: the
/// actor of the audited start of the job.
fn dispatcher_of(s: &Replicated, id: JobId) -> Option<String> {
    let target = id.to_string();
    s.audit()
        .values()
        .rev()
        .find(|e| e.action == DISPATCHED && e.target == target)
        .map(|e| e.actor.to_string())
}

/// The audit action of a dispatched job's start.
const DISPATCHED: &str = "job_begun";

/// Jobs passing `keep`, oldest first.
pub fn jobs_where(app: &Cluster, keep: impl Fn(&Job) -> bool) -> Vec<JobInfo> {
    let mut jobs: Vec<JobInfo> = app.state.read(|s| {
        s.jobs()
            .values()
            .filter(|j| keep(j))
            .map(|j| job_info(s, j))
            .collect()
    });
    jobs.sort_by_key(|j| (j.started_at, j.id));
    jobs
}

/// The account's jobs (every device's, logins included), oldest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<JobInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_jobs(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<JobInfo>>, ApiError> {
    Ok(Json(jobs_where(&app, |j| j.account == auth.account)))
}

/// Records the start of a job on the asking device.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
    security(("device" = [])),
    params(IdempotencyKey),
    request_body = StartJob,
    responses(
        (status = 201, body = JobInfo),
        (status = 400, body = ErrorBody, description = "bad_request: e.g. kind login (written by the server)"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: the vault (also another account's)"),
        (status = 403, body = ErrorBody, description = "license_expired: a backup while the cluster is read-only"),
        (status = 409, body = ErrorBody, description = "duplicate_id"),
    ))]
async fn start_job(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<StartJob>,
) -> Result<(StatusCode, Json<JobInfo>), ApiError> {
    let kind = device_kind(req.kind)?;
    if kind == Kind::Backup {
        super::license::check(&gate, &app)?;
    }
    if let Some(job) = dispatched(&app, &auth, &req, kind) {
        return Ok((StatusCode::CREATED, Json(job)));
    }
    check_vault(&app, &auth, req.vault)?;
    let event = Event::JobBegun {
        job: req.id,
        device: auth.device,
        vault: req.vault,
        kind,
        item: req.item,
        schedule: req.schedule,
        at: now(),
    };
    let job = propose_for(&app, &auth, &key, req.id, event).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// The job a dispatcher already began for this device under the id it
/// starts (remote control): the device's start of it answers that job,
/// running, instead of `duplicate_id`.
fn dispatched(app: &Cluster, auth: &DeviceAuth, req: &StartJob, kind: Kind) -> Option<JobInfo> {
    app.state.read(|s| {
        s.jobs()
            .get(&req.id)
            .filter(|j| {
                j.device == auth.device && j.kind == kind && j.vault == req.vault && j.is_running()
            })
            .map(|j| job_info(s, j))
    })
}

/// Checks that the vault a job names, if any, is the account's.
fn check_vault(app: &Cluster, auth: &DeviceAuth, vault: Option<VaultId>) -> Result<(), ApiError> {
    match vault {
        Some(v) => app.state.read(|s| auth.vault(s, v).map(|_| ())),
        None => Ok(()),
    }
}

/// Checks that job `id` is the asking device's own (another device of the
/// account sees it but may not `act` on it).
fn check_device_job(
    app: &Cluster,
    auth: &DeviceAuth,
    id: JobId,
    act: &str,
) -> Result<(), ApiError> {
    if own_job(app, auth, id)?.device != auth.device {
        return Err(ApiError::Forbidden(format!(
            "only the device that started a job may {act}"
        )));
    }
    Ok(())
}

/// Proposes `event` about job `id` and answers the job as it now is.
async fn propose_for(
    app: &Cluster,
    auth: &DeviceAuth,
    key: &IdempotencyKey,
    id: JobId,
    event: Event,
) -> Result<JobInfo, ApiError> {
    propose(app, key, event).await?;
    own_job(app, auth, id)
}

fn own_job(app: &Cluster, auth: &DeviceAuth, id: JobId) -> Result<JobInfo, ApiError> {
    app.state
        .read(|s| {
            s.jobs()
                .get(&id)
                .filter(|j| j.account == auth.account)
                .map(|j| job_info(s, j))
        })
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))
}

/// Records how a job of the asking device ended.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/finish", tag = "jobs",
    security(("device" = [])),
    params(("id" = JobId, Path, description = "the job"), IdempotencyKey),
    request_body = FinishJob,
    responses(
        (status = 200, body = JobInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token, or another device of the account started the job"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's job)"),
        (status = 422, body = ErrorBody, description = "job_already_finished, time_travel or too_long"),
    ))]
async fn finish_job(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<JobId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<FinishJob>,
) -> Result<Json<JobInfo>, ApiError> {
    check_device_job(&app, &auth, id, "finish it")?;
    // Stored and shown escaped: a device's text never reaches an
    // operator's terminal as control sequences.
    let event = Event::JobCompleted {
        job: id,
        device: auth.device,
        status: status_event(req.status),
        files: req.files,
        bytes: req.bytes,
        error: req
            .error
            .map(|e| escaped_within(&e, false, cairn_consensus::apply::MAX_JOB_ERROR_LEN)),
        log: escaped_within(&req.log, true, cairn_consensus::apply::MAX_JOB_LOG_LEN),
        at: now(),
    };
    propose_for(&app, &auth, &key, id, event).await.map(Json)
}

/// Records that a running job of the asking device is alive (revives a job
/// the cluster ended `abandoned`).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/heartbeat", tag = "jobs",
    security(("device" = [])),
    params(("id" = JobId, Path, description = "the job"), IdempotencyKey),
    responses(
        (status = 200, body = JobInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token, or another device's job"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's job)"),
        (status = 422, body = ErrorBody, description = "job_already_finished"),
    ))]
async fn job_heartbeat(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<JobId>,
    key: IdempotencyKey,
) -> Result<Json<JobInfo>, ApiError> {
    check_device_job(&app, &auth, id, "report on it")?;
    let event = Event::JobHeartbeat {
        job: id,
        device: auth.device,
        at: now(),
    };
    propose_for(&app, &auth, &key, id, event).await.map(Json)
}

/// Records a job of the asking device that started and ended at once.
#[utoipa::path(post, path = "/api/v1/jobs/record", tag = "jobs",
    security(("device" = [])),
    params(IdempotencyKey),
    request_body = RecordJob,
    responses(
        (status = 201, body = JobInfo),
        (status = 400, body = ErrorBody, description = "bad_request: kind login"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: the vault (also another account's)"),
        (status = 409, body = ErrorBody, description = "duplicate_id"),
        (status = 422, body = ErrorBody, description = "status_reserved, time_travel or too_long"),
    ))]
async fn record_job(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<RecordJob>,
) -> Result<(StatusCode, Json<JobInfo>), ApiError> {
    let kind = device_kind(req.kind)?;
    check_vault(&app, &auth, req.vault)?;
    let at = now();
    let event = Event::JobRecorded {
        job: req.id,
        device: auth.device,
        vault: req.vault,
        kind,
        item: req.item,
        schedule: req.schedule,
        status: status_event(req.status),
        log: escaped_within(&req.log, true, cairn_consensus::apply::MAX_JOB_LOG_LEN),
        started_at: cairn_consensus::UnixMillis(req.started_at.min(at.0)),
        at,
    };
    let job = propose_for(&app, &auth, &key, req.id, event).await?;
    Ok((StatusCode::CREATED, Json(job)))
}

/// `text` with every control character (also ESC, so no terminal escape
/// sequence survives) written as a Rust-style escape (`\u{1b}`, `\r`…);
/// `\n` and `\t` are kept when `keep_lines` (multi-line logs). For text a
/// device sent that an operator's terminal will show.
pub fn escape_control(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && !(keep_lines && (c == '\n' || c == '\t')) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape_control`], keeping the end of the result within `max` bytes
/// when escaping made text that fitted longer (a log is a tail anyway);
/// text that was already too long is left for `apply` to refuse.
fn escaped_within(text: &str, keep_lines: bool, max: usize) -> String {
    let escaped = escape_control(text, keep_lines);
    if text.len() > max || escaped.len() <= max {
        return escaped;
    }
    let mut start = escaped.len() - max;
    while !escaped.is_char_boundary(start) {
        start += 1;
    }
    escaped[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_control("disk \x1b[2Jfull", false),
            "disk \\u{1b}[2Jfull"
        );
        assert_eq!(escape_control("a\nb\tc\r", true), "a\nb\tc\\r");
        assert_eq!(escape_control("a\nb", false), "a\\nb");
        assert_eq!(escape_control("naïve ✓", false), "naïve ✓");
        assert_eq!(escape_control("\u{9b}2J", false), "\\u{9b}2J");
    }

    #[test]
    fn escaping_keeps_text_that_fitted_within_the_bound() {
        let text = format!("{}\x1b", "a".repeat(10));
        let out = escaped_within(&text, false, 12);
        assert!(out.len() <= 12, "{out}");
        assert!(out.ends_with("{1b}"), "{out}");
        let long = "b".repeat(13);
        assert_eq!(escaped_within(&long, false, 12), long, "apply refuses it");
    }
}
