//! The dispatcher (remote control): admins and users act on a device
//! through its live connection (`/api/v1/control/...`), and watch a job
//! live (`GET /api/v1/jobs/{id}/events`, server-sent events).
//!
//! Who may: the admin token and cluster admins on every device, org admins
//! on their organization's, read-only operators look only (the connection
//! list, a job's events), and a user, through any device of their account,
//! on the account's devices ([`Requester`]). A device the requester does
//! not see answers `404` exactly like a missing one.
//!
//! A job action (backup, restore, retention, check) first finds the node
//! holding the connection (`409 device_offline` if none), then begins the
//! job in the log as the requester's audited action (so the job log shows
//! who dispatched it), then sends the command there; the device runs the
//! job under that id like a job of its own. A command the device refuses
//! ends the job `failed` with the device's reason. Listings are answered
//! by the device over the same path and relayed, never stored: a
//! directory of the device in the clear (its names are not backup
//! contents), a snapshot's files sealed by the device for the account
//! ([`cairn_proto::control::SealedListing`]).
//!
//! The rules that need no IO are pure: [`plan`] (what a dispatch asks of
//! the device, checked against the state) and [`Progress::of`] (what the
//! event stream says).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::{Extension, Json};
use cairn_consensus::event::JobKind as Kind;
use cairn_consensus::event::JobStatus as StoredStatus;
use cairn_consensus::state::Device;
use cairn_consensus::{Event, State as Replicated};
use cairn_proto::api::{ErrorBody, JobInfo};
use cairn_proto::control::{
    Action, Answer, ConnectionInfo, ControlItem, ControlVault, DeviceControl, DirListing,
    DispatchBackup, DispatchCancel, DispatchCheck, DispatchRestore, DispatchRetention, Dispatched,
    ListDir, ListFiles, Outcome, SealedListing,
};
use cairn_proto::{DeviceId, JobId, VaultId};
use futures_util::stream::Stream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::jobs::job_info;
use super::{propose, ApiJson, ApiPath, ApiState, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::Requester;
use crate::http::control;
use crate::http::ApiError;
use crate::license::gate::Gate;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(connections))
        .routes(routes!(device_control))
        .routes(routes!(dispatch_backup))
        .routes(routes!(dispatch_restore))
        .routes(routes!(dispatch_retention))
        .routes(routes!(dispatch_check))
        .routes(routes!(cancel))
        .routes(routes!(list_dir))
        .routes(routes!(list_files))
        .routes(routes!(disconnect))
        .routes(routes!(job_events))
}

/// The per-node API state.
type Api = Extension<Arc<ApiState>>;

/// What a job dispatch asks: the job's record and the device's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The job's kind.
    pub kind: Kind,
    /// The vault it works on.
    pub vault: VaultId,
    /// The item it runs for, if any.
    pub item: Option<String>,
    /// The command for the device.
    pub action: Action,
}

/// A job dispatch, as the routes take it.
#[derive(Debug, Clone)]
pub enum Request {
    /// Back up.
    Backup(DispatchBackup),
    /// Restore.
    Restore(DispatchRestore),
    /// Apply retention.
    Retention(DispatchRetention),
    /// Check.
    Check(DispatchCheck),
}

/// The vault `id` of `device`'s account, by name.
fn vault_name(s: &Replicated, device: &Device, id: VaultId) -> Result<String, ApiError> {
    s.vaults()
        .get(&id)
        .filter(|v| v.account == device.account)
        .map(|v| v.name.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no vault {id}")))
}

/// A path on the device: absolute, no control characters.
fn device_path(what: &str, p: &str) -> Result<String, ApiError> {
    if p.starts_with('/') && !p.chars().any(char::is_control) && p.len() <= 4096 {
        Ok(p.to_owned())
    } else {
        Err(ApiError::BadRequest(format!(
            "{what} must be an absolute path on the device, not {p:?}"
        )))
    }
}

/// A snapshot: `latest` or a snapshot id (so it can never be read as an
/// option on the device).
fn snapshot_spec(s: &str) -> Result<String, ApiError> {
    if s == "latest" || (!s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
    {
        Ok(s.to_owned())
    } else {
        Err(ApiError::BadRequest(format!(
            "snapshot must be `latest` or a snapshot id, not {s:?}"
        )))
    }
}

/// What dispatch `req` to `device` asks, as job `job` (pure: checked
/// against the state only).
///
/// # Errors
///
/// `404 not_found` for an item or vault the device's account lacks, `400`
/// for malformed paths, snapshots or a backup naming neither an item nor
/// a vault with paths.
pub fn plan(s: &Replicated, device: &Device, job: JobId, req: Request) -> Result<Plan, ApiError> {
    Ok(match req {
        Request::Backup(b) => match (b.item, b.vault) {
            (Some(item), None) if b.paths.is_empty() => {
                let found = s
                    .items()
                    .get(&(device.id, item.clone()))
                    .ok_or_else(|| ApiError::NotFound(format!("no item {item:?} on the device")))?;
                Plan {
                    kind: Kind::Backup,
                    vault: found.vault,
                    item: Some(item.clone()),
                    action: Action::Backup {
                        job,
                        item: Some(item),
                        vault: None,
                        paths: Vec::new(),
                    },
                }
            }
            (None, Some(vault)) if !b.paths.is_empty() => {
                let paths = b
                    .paths
                    .iter()
                    .map(|p| device_path("a backup path", p))
                    .collect::<Result<Vec<_>, _>>()?;
                Plan {
                    kind: Kind::Backup,
                    vault,
                    item: None,
                    action: Action::Backup {
                        job,
                        item: None,
                        vault: Some(vault_name(s, device, vault)?),
                        paths,
                    },
                }
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "name an item, or a vault and the paths to back up".into(),
                ))
            }
        },
        Request::Restore(r) => Plan {
            kind: Kind::Restore,
            vault: r.vault,
            item: None,
            action: Action::Restore {
                job,
                vault: vault_name(s, device, r.vault)?,
                snapshot: snapshot_spec(&r.snapshot)?,
                target: device_path("target", &r.target)?,
                paths: r
                    .paths
                    .iter()
                    .map(|p| device_path("a restored path", p))
                    .collect::<Result<Vec<_>, _>>()?,
            },
        },
        Request::Retention(r) => {
            if !s.items().contains_key(&(device.id, r.item.clone())) {
                return Err(ApiError::NotFound(format!(
                    "no item {:?} on the device",
                    r.item
                )));
            }
            Plan {
                kind: Kind::Retention,
                vault: r.vault,
                item: Some(r.item.clone()),
                action: Action::Retention {
                    job,
                    vault: vault_name(s, device, r.vault)?,
                    item: r.item,
                },
            }
        }
        Request::Check(c) => Plan {
            kind: Kind::Check,
            vault: c.vault,
            item: None,
            action: Action::Check {
                job,
                vault: vault_name(s, device, c.vault)?,
                read_data: c.read_data,
            },
        },
    })
}

/// The job id of a dispatch: its `Idempotency-Key` (so a retried dispatch
/// names the same job), or a fresh one.
fn job_id(key: &IdempotencyKey) -> JobId {
    JobId(key.request_id().0)
}

/// Dispatches a job: locate the connection, begin the job as the
/// requester's audited action, send the command, end the job `failed`
/// when the device refuses.
async fn dispatch(
    app: &Cluster,
    api: &ApiState,
    gate: &Gate,
    who: &Requester,
    device: DeviceId,
    key: &IdempotencyKey,
    req: Request,
) -> Result<(StatusCode, Json<Dispatched>), ApiError> {
    app.read_barrier().await?;
    let job = job_id(key);
    let (device, plan) = app.state.read(|s| {
        let d = who.device(s, device, true)?;
        let p = plan(s, &d, job, req)?;
        Ok::<_, ApiError>((d, p))
    })?;
    if plan.kind == Kind::Backup {
        super::license::check(gate, app)?;
    }
    let holder = control::locate(app, &api.connections, device.id).await?;
    let begin = Event::JobBegun {
        job,
        device: device.id,
        vault: Some(plan.vault),
        kind: plan.kind,
        item: plan.item,
        schedule: None,
        at: now(),
    };
    propose(app, key, who.audit(begin)).await?;
    let failure =
        match control::command(app, &api.connections, &holder, device.id, plan.action).await {
            Ok(Outcome::Ok { .. }) => return Ok((StatusCode::ACCEPTED, Json(Dispatched { job }))),
            Ok(Outcome::Err { code, message }) => {
                ApiError::DeviceRefused(format!("the device refused ({code}): {message}"))
            }
            Err(e) => e,
        };
    let end = Event::JobCompleted {
        job,
        device: device.id,
        status: StoredStatus::Failed,
        files: 0,
        bytes: 0,
        error: Some(failure.to_string()),
        log: String::new(),
        at: now(),
    };
    if let Err(e) = app.propose(end).await {
        tracing::warn!(%job, error = %e, "could not record a dispatch that failed");
    }
    Err(failure)
}

/// Sends a command that is not a job and returns the device's answer.
async fn ask(
    app: &Cluster,
    api: &ApiState,
    who: &Requester,
    device: DeviceId,
    make: impl FnOnce(&Replicated, &Device) -> Result<Action, ApiError>,
) -> Result<Answer, ApiError> {
    app.read_barrier().await?;
    let (device, action) = app.state.read(|s| {
        let d = who.device(s, device, true)?;
        let a = make(s, &d)?;
        Ok::<_, ApiError>((d, a))
    })?;
    let holder = control::locate(app, &api.connections, device.id).await?;
    match control::command(app, &api.connections, &holder, device.id, action).await? {
        Outcome::Ok { answer } => Ok(answer),
        Outcome::Err { code, message } => Err(ApiError::DeviceRefused(format!(
            "the device refused ({code}): {message}"
        ))),
    }
}

/// The live connections the requester sees: every node's, with the node
/// holding each, the device's client version and since when.
#[utoipa::path(get, path = "/api/v1/control", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    responses(
        (status = 200, body = Vec<ConnectionInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
    ))]
async fn connections(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
) -> Result<Json<Vec<ConnectionInfo>>, ApiError> {
    app.read_barrier().await?;
    let all = control::everywhere(&app, &api.connections).await;
    let mut seen: Vec<ConnectionInfo> = app.state.read(|s| {
        all.into_iter()
            .filter_map(|(node, c)| {
                let d = s
                    .devices()
                    .get(&c.device)
                    .filter(|d| who.sees(s, d.account))?;
                Some(ConnectionInfo {
                    device: c.device,
                    device_name: d.name.clone(),
                    user: super::jobs::account_name(s, d.account),
                    node,
                    client_version: c.client_version,
                    since: c.since,
                })
            })
            .collect()
    });
    seen.sort_by(|a, b| (&a.user, &a.device_name).cmp(&(&b.user, &b.device_name)));
    seen.dedup_by_key(|c| c.device);
    Ok(Json(seen))
}

/// Most snapshots and jobs [`device_control`] lists.
const CONTROL_SNAPSHOTS: usize = 50;
const CONTROL_JOBS: usize = 20;

/// What the dispatcher can ask of a device: its connection (none:
/// offline), items, its account's vaults and latest snapshots, its latest
/// jobs. Read-only operators may look.
#[utoipa::path(get, path = "/api/v1/control/{id}", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = DeviceId, Path, description = "the device")),
    responses(
        (status = 200, body = DeviceControl),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found: the device (also one the requester does not see)"),
    ))]
async fn device_control(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<Json<DeviceControl>, ApiError> {
    app.read_barrier().await?;
    let device = app.state.read(|s| who.device(s, id, false))?;
    let connection = control::everywhere(&app, &api.connections)
        .await
        .into_iter()
        .find(|(_, c)| c.device == device.id);
    Ok(Json(app.state.read(|s| {
        let user = super::jobs::account_name(s, device.account);
        let vaults: Vec<ControlVault> = s
            .vaults_of(device.account)
            .map(|v| ControlVault {
                id: v.id,
                name: v.name.clone(),
            })
            .collect();
        let mut snapshots: Vec<_> = vaults
            .iter()
            .flat_map(|v| s.snapshots_of(v.id))
            .map(|r| super::snapshots::snapshot_info(s, r))
            .collect();
        snapshots.sort_by_key(|x| std::cmp::Reverse(x.started_at));
        snapshots.truncate(CONTROL_SNAPSHOTS);
        let mut jobs: Vec<JobInfo> = s
            .jobs()
            .values()
            .filter(|j| j.device == device.id)
            .map(|j| job_info(s, j))
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.started_at));
        jobs.truncate(CONTROL_JOBS);
        DeviceControl {
            device: device.id,
            device_name: device.name.clone(),
            connection: connection.map(|(node, c)| ConnectionInfo {
                device: c.device,
                device_name: device.name.clone(),
                user: user.clone(),
                node,
                client_version: c.client_version,
                since: c.since,
            }),
            items: s
                .items_of(device.id)
                .map(|i| ControlItem {
                    name: i.name.clone(),
                    vault: i.vault,
                    paths: i.paths.clone(),
                })
                .collect(),
            vaults,
            snapshots,
            jobs,
            user,
        }
    })))
}

macro_rules! job_route {
    ($name:ident, $path:literal, $body:ty, $variant:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "control",
            security(("admin" = []), ("operator" = []), ("device" = [])),
            params(("id" = DeviceId, Path, description = "the device"), IdempotencyKey),
            request_body = $body,
            responses(
                (status = 202, body = Dispatched, description = "the job runs on the device"),
                (status = 400, body = ErrorBody, description = "bad_request"),
                (status = 401, body = ErrorBody, description = "unauthorized"),
                (status = 403, body = ErrorBody, description = "forbidden: a read-only operator; not_permitted; license_expired (backups)"),
                (status = 404, body = ErrorBody, description = "not_found: the device (also one the requester does not see), its item or vault"),
                (status = 409, body = ErrorBody, description = "device_offline"),
                (status = 422, body = ErrorBody, description = "device_refused"),
            ))]
        async fn $name(
            who: Requester,
            State(app): State<Arc<Cluster>>,
            State(gate): State<Arc<Gate>>,
            Extension(api): Api,
            ApiPath(id): ApiPath<DeviceId>,
            key: IdempotencyKey,
            ApiJson(req): ApiJson<$body>,
        ) -> Result<(StatusCode, Json<Dispatched>), ApiError> {
            dispatch(&app, &api, &gate, &who, id, &key, Request::$variant(req)).await
        }
    };
}

job_route!(dispatch_backup, "/api/v1/control/{id}/backup", DispatchBackup, Backup,
    "Dispatches a backup of an item (or of ad hoc paths to a vault) to a connected device; the job is in the log at once.");
job_route!(dispatch_restore, "/api/v1/control/{id}/restore", DispatchRestore, Restore,
    "Dispatches a restore of a snapshot (or some of its paths) to a directory of a connected device; the job is in the log at once.");
job_route!(dispatch_retention, "/api/v1/control/{id}/retention", DispatchRetention, Retention,
    "Dispatches the retention pass of an item in a vault to a connected device; the job is in the log at once.");
job_route!(dispatch_check, "/api/v1/control/{id}/check", DispatchCheck, Check,
    "Dispatches a check (optionally `--read-data`) of a vault to a connected device; the job is in the log at once.");

/// Stops a running job of the device (it records `cancelled`).
#[utoipa::path(post, path = "/api/v1/control/{id}/cancel", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = DeviceId, Path, description = "the device")),
    request_body = DispatchCancel,
    responses(
        (status = 204, description = "the device stops the job"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a read-only operator"),
        (status = 404, body = ErrorBody, description = "not_found: the device or the job"),
        (status = 409, body = ErrorBody, description = "device_offline"),
        (status = 422, body = ErrorBody, description = "device_refused: the job does not run there"),
    ))]
async fn cancel(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<DispatchCancel>,
) -> Result<StatusCode, ApiError> {
    ask(&app, &api, &who, id, |s, d| {
        s.jobs()
            .get(&req.job)
            .filter(|j| j.device == d.id)
            .ok_or_else(|| ApiError::NotFound(format!("no job {} on the device", req.job)))?;
        Ok(Action::Cancel { job: req.job })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a directory of the device (to pick an item's paths).
#[utoipa::path(post, path = "/api/v1/control/{id}/dirs", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = DeviceId, Path, description = "the device")),
    request_body = ListDir,
    responses(
        (status = 200, body = DirListing),
        (status = 400, body = ErrorBody, description = "bad_request: not an absolute path"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a read-only operator"),
        (status = 404, body = ErrorBody, description = "not_found: the device"),
        (status = 409, body = ErrorBody, description = "device_offline"),
        (status = 422, body = ErrorBody, description = "device_refused: e.g. no such directory"),
    ))]
async fn list_dir(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<ListDir>,
) -> Result<Json<DirListing>, ApiError> {
    let answer = ask(&app, &api, &who, id, |_, _| {
        Ok(Action::ListDir {
            path: device_path("path", &req.path)?,
        })
    })
    .await?;
    match answer {
        Answer::Dir(d) => Ok(Json(d)),
        other => Err(unexpected(&other)),
    }
}

/// Lists the files of a snapshot, sealed by the device for the account
/// (the server relays the sealed bytes and keeps nothing).
#[utoipa::path(post, path = "/api/v1/control/{id}/files", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = DeviceId, Path, description = "the device")),
    request_body = ListFiles,
    responses(
        (status = 200, body = SealedListing),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a read-only operator"),
        (status = 404, body = ErrorBody, description = "not_found: the device or vault"),
        (status = 409, body = ErrorBody, description = "device_offline"),
        (status = 422, body = ErrorBody, description = "device_refused"),
    ))]
async fn list_files(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(req): ApiJson<ListFiles>,
) -> Result<Json<SealedListing>, ApiError> {
    let answer = ask(&app, &api, &who, id, |s, d| {
        if !req.path.is_empty() {
            device_path("path", &req.path)?;
        }
        Ok(Action::ListFiles {
            vault: vault_name(s, d, req.vault)?,
            snapshot: snapshot_spec(&req.snapshot)?,
            path: req.path.clone(),
        })
    })
    .await?;
    match answer {
        Answer::Sealed(l) => Ok(Json(l)),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(a: &Answer) -> ApiError {
    ApiError::DeviceRefused(format!("the device answered something else: {a:?}"))
}

/// Drops the device's connection (it reconnects after its backoff).
#[utoipa::path(post, path = "/api/v1/control/{id}/disconnect", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = DeviceId, Path, description = "the device")),
    responses(
        (status = 204, description = "dropped"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a read-only operator"),
        (status = 404, body = ErrorBody, description = "not_found: the device"),
        (status = 409, body = ErrorBody, description = "device_offline"),
    ))]
async fn disconnect(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    Extension(api): Api,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<StatusCode, ApiError> {
    app.read_barrier().await?;
    let device = app.state.read(|s| who.device(s, id, true))?;
    control::close(&app, &api.connections, device.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How often the event stream looks at the job.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// What the event stream says next about a job (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing new.
    Quiet,
    /// The job changed: send it.
    Changed(Box<JobInfo>),
    /// The job ended: send it and end the stream.
    Ended(Box<JobInfo>),
}

impl Progress {
    /// Compares the job now with what was sent last.
    pub fn of(now: JobInfo, last: Option<&JobInfo>) -> Progress {
        if now.status.is_some() {
            Progress::Ended(Box::new(now))
        } else if last == Some(&now) {
            Progress::Quiet
        } else {
            Progress::Changed(Box::new(now))
        }
    }
}

/// A job's progress, live (`text/event-stream`): an event `job` with the
/// job (as `GET /api/v1/jobs` shows it) whenever it changes (its
/// heartbeat, its end), the last one when it ends. Another account's job,
/// or one the requester does not see, answers `404`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/events", tag = "control",
    security(("admin" = []), ("operator" = []), ("device" = [])),
    params(("id" = JobId, Path, description = "the job")),
    responses(
        (status = 200, content_type = "text/event-stream", description = "events `job` (data: a JobInfo) until the job ends"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "not_found"),
    ))]
async fn job_events(
    who: Requester,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    app.read_barrier().await?;
    let visible = |s: &Replicated| {
        s.jobs()
            .get(&id)
            .filter(|j| who.sees(s, j.account))
            .map(|j| job_info(s, j))
    };
    let first = app
        .state
        .read(visible)
        .ok_or_else(|| ApiError::NotFound(format!("no job {id}")))?;
    let account = first.account;
    let stream = futures_util::stream::unfold(
        (app, Some(first), None::<JobInfo>, false),
        move |(app, mut next, last, done)| async move {
            if done {
                return None;
            }
            loop {
                let now = match next.take() {
                    Some(j) => j,
                    None => {
                        tokio::time::sleep(WATCH_EVERY).await;
                        let job = app.state.read(|s| {
                            s.jobs()
                                .get(&id)
                                .filter(|j| j.account == account)
                                .map(|j| job_info(s, j))
                        });
                        job?
                    }
                };
                let (job, ended) = match Progress::of(now, last.as_ref()) {
                    Progress::Quiet => continue,
                    Progress::Changed(j) => (*j, false),
                    Progress::Ended(j) => (*j, true),
                };
                let event = SseEvent::default()
                    .event("job")
                    .json_data(&job)
                    .unwrap_or_default();
                return Some((Ok(event), (app, None, Some(job), ended)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::{apply, Request as Proposal, RequestId, UnixMillis};

    fn state() -> (Replicated, Device, VaultId) {
        use cairn_consensus::event::{Credentials, KdfParams};
        let creds = Credentials {
            kdf: KdfParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 1,
                salt: vec![0; 16],
            },
            login_key_hash: vec![0; 32],
        };
        let (acc, dev, vault) = (
            cairn_proto::AccountId([1; 16]),
            DeviceId([2; 16]),
            VaultId([3; 16]),
        );
        let events = vec![
            Event::TierDefined {
                name: "t".into(),
                replicas: 1,
                requestable: true,
                at: UnixMillis(1),
            },
            Event::AccountCreated {
                account: acc,
                name: "alice".into(),
                credentials: creds,
                at: UnixMillis(1),
            },
            Event::DeviceRegistered {
                device: dev,
                account: acc,
                name: "laptop".into(),
                token_hash: vec![0; 32],
                at: UnixMillis(1),
            },
            Event::VaultCreated {
                vault,
                account: acc,
                name: "main".into(),
                tier: "t".into(),
                wrapped_keys: vec![1],
                at: UnixMillis(1),
            },
            Event::ItemSet {
                device: dev,
                account: acc,
                name: "home".into(),
                paths: vec!["/home".into()],
                excludes: vec![],
                vault,
                at: UnixMillis(1),
            },
        ];
        let mut s = Replicated::default();
        for (i, event) in events.into_iter().enumerate() {
            let r = Proposal {
                request_id: RequestId([i as u8 + 1; 16]),
                event,
            };
            assert!(apply(&mut s, &r).is_applied(), "setup {i}");
        }
        let d = s.devices()[&dev].clone();
        (s, d, vault)
    }

    #[test]
    fn plans_name_the_items_vault_and_refuse_what_could_be_an_option() {
        let (s, d, vault) = state();
        let job = JobId([9; 16]);
        let item = plan(
            &s,
            &d,
            job,
            Request::Backup(DispatchBackup {
                item: Some("home".into()),
                vault: None,
                paths: vec![],
            }),
        )
        .expect("item");
        assert_eq!((item.kind, item.vault), (Kind::Backup, vault));
        let adhoc = plan(
            &s,
            &d,
            job,
            Request::Backup(DispatchBackup {
                item: None,
                vault: Some(vault),
                paths: vec!["/etc".into()],
            }),
        )
        .expect("paths");
        assert_eq!(
            adhoc.action,
            Action::Backup {
                job,
                item: None,
                vault: Some("main".into()),
                paths: vec!["/etc".into()]
            }
        );
        let restore = |snapshot: &str, target: &str| {
            plan(
                &s,
                &d,
                job,
                Request::Restore(DispatchRestore {
                    vault,
                    snapshot: snapshot.into(),
                    target: target.into(),
                    paths: vec![],
                }),
            )
        };
        assert!(restore("latest", "/tmp/r").is_ok());
        assert!(restore("--delete", "/tmp/r").is_err());
        assert!(restore("latest", "relative").is_err());
        assert!(matches!(
            plan(
                &s,
                &d,
                job,
                Request::Check(DispatchCheck {
                    vault: VaultId([8; 16]),
                    read_data: true
                })
            ),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            plan(
                &s,
                &d,
                job,
                Request::Backup(DispatchBackup {
                    item: Some("home".into()),
                    vault: Some(vault),
                    paths: vec!["/x".into()]
                })
            ),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn the_stream_sends_changes_and_ends_with_the_job() {
        let (s, d, vault) = state();
        let mut s = s;
        let begin = Proposal {
            request_id: RequestId([50; 16]),
            event: Event::JobBegun {
                job: JobId([5; 16]),
                device: d.id,
                vault: Some(vault),
                kind: Kind::Backup,
                item: None,
                schedule: None,
                at: UnixMillis(10),
            },
        };
        assert!(apply(&mut s, &begin).is_applied());
        let running = job_info(&s, &s.jobs()[&JobId([5; 16])]);
        assert!(matches!(
            Progress::of(running.clone(), None),
            Progress::Changed(_)
        ));
        assert_eq!(
            Progress::of(running.clone(), Some(&running)),
            Progress::Quiet
        );
        let mut ended = running.clone();
        ended.status = Some(cairn_proto::api::JobStatus::Succeeded);
        assert!(matches!(
            Progress::of(ended, Some(&running)),
            Progress::Ended(_)
        ));
    }
}
