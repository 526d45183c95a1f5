//! The admin API (the admin token's and operators' routes; an operator
//! bound to an organization sees only its accounts, devices and jobs, and
//! every write is an audited action): accounts
//! (`GET, POST /api/v1/admin/users`, `POST
//! /api/v1/admin/users/{name}/delete|disable|enable`), tiers (`GET, POST
//! /api/v1/admin/tiers`), and every account's devices and jobs
//! (`GET /api/v1/admin/jobs`, `GET /api/v1/admin/devices`,
//! `POST /api/v1/admin/devices/{id}/revoke`), and the overdue schedules
//! (`GET /api/v1/admin/backups/overdue`). The bodies are
//! [`cairn_proto::admin`]'s.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::collections::BTreeSet;

use cairn_consensus::console::DEFAULT_ORG;
use cairn_consensus::{AccountId, Event, Request, RequestId};
use cairn_proto::admin::{
    CreateUser, DefineTier, DeleteUser, DisableUser, JobsQuery, OverdueBackup, TierInfo, UserInfo,
};
use cairn_proto::api::{DeviceInfo, ErrorBody, JobInfo, JobStatus};
use cairn_proto::DeviceId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::devices::{device_info, device_now};
use super::jobs::{account_name, device_name, jobs_where};
use super::{applied, propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{admin_tier_info, now, overdue, Cluster};
use crate::http::auth::Admin;
use crate::http::ApiError;
use crate::license::gate::Gate;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(all_jobs))
        .routes(routes!(overdue_backups))
        .routes(routes!(all_devices))
        .routes(routes!(revoke_any_device))
        .routes(routes!(list_users, create_user))
        .routes(routes!(delete_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(list_tiers, define_tier))
}

/// Every account's jobs, with user and device names, oldest first
/// (linearizable); optionally only those of one status, since a time, of
/// one account.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin",
    security(("admin" = [])),
    params(JobsQuery),
    responses(
        (status = 200, body = Vec<JobInfo>),
        (status = 400, body = ErrorBody, description = "bad_request: an unknown status"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn all_jobs(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Vec<JobInfo>>, ApiError> {
    let status = q.status.as_deref().map(status_filter).transpose()?;
    app.read_barrier().await?;
    let visible = visible_accounts(&app, &admin);
    let jobs = jobs_where(&app, |j| visible.contains(&j.account));
    Ok(Json(
        jobs.into_iter()
            .filter(|j| job_matches(j, status, q.since_ms, q.account.as_deref()))
            .collect(),
    ))
}

/// The accounts of the organizations `admin` sees.
pub fn visible_accounts(app: &Cluster, admin: &Admin) -> BTreeSet<AccountId> {
    app.state.read(|s| {
        s.accounts()
            .keys()
            .filter(|a| admin.sees(s.org_of(**a)))
            .copied()
            .collect()
    })
}

/// The schedules whose newest successful backup is older than the schedule
/// allows (linearizable), by device then schedule: what the leader's
/// `cairn_backups_overdue_*` gauges count (an operator bound to an
/// organization sees only its accounts').
#[utoipa::path(get, path = "/api/v1/admin/backups/overdue", tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, body = Vec<OverdueBackup>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn overdue_backups(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<OverdueBackup>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(app.state.read(|s| {
        let (schedules, newest) = overdue::facts_of(s);
        overdue::overdue(&schedules, &newest, now())
            .into_iter()
            .filter(|o| admin.sees(s.org_of(o.schedule.account)))
            .map(|o| OverdueBackup {
                user: account_name(s, o.schedule.account),
                device: o.schedule.device,
                device_name: device_name(s, o.schedule.device),
                schedule: o.schedule.name,
                item: o.schedule.item,
                spec: o.schedule.spec,
                last_success: o.last_success.map(|t| t.0),
                due_by: o.due_by.0,
            })
            .collect()
    })))
}

/// The status name a `status` filter means (old names accepted).
///
/// # Errors
///
/// `bad_request` naming the statuses, for an unknown one.
pub fn status_filter(status: &str) -> Result<&'static str, ApiError> {
    let status = match status {
        "failed" => "error",
        "warnings" => "warning",
        s => s,
    };
    let names = ["running", "revived"]
        .into_iter()
        .chain(JobStatus::ALL.iter().map(|s| s.name()));
    names.clone().find(|n| *n == status).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown job status {status:?}: use one of {}",
            names.collect::<Vec<_>>().join(", ")
        ))
    })
}

/// Whether job `j` passes an operator's filters.
pub fn job_matches(
    j: &JobInfo,
    status: Option<&str>,
    since_ms: Option<u64>,
    account: Option<&str>,
) -> bool {
    status.is_none_or(|s| j.status_name() == s)
        && since_ms.is_none_or(|t| j.started_at >= t)
        && account.is_none_or(|a| j.user == a)
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
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    app.read_barrier().await?;
    let visible = visible_accounts(&app, &admin);
    let mut devices: Vec<DeviceInfo> = app.state.read(|s| {
        s.devices()
            .values()
            .filter(|d| visible.contains(&d.account))
            .map(|d| device_info(d, None))
            .collect()
    });
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
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<DeviceId>,
    key: IdempotencyKey,
) -> Result<Json<DeviceInfo>, ApiError> {
    app.read_barrier().await?;
    let account = app
        .state
        .read(|s| {
            s.devices()
                .get(&id)
                .filter(|d| admin.sees(s.org_of(d.account)))
                .map(|d| d.account)
        })
        .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))?;
    let event = Event::DeviceRevoked {
        device: id,
        account,
        at: now(),
    };
    propose(&app, &key, admin.audit(event)).await?;
    Ok(Json(device_now(&app, id, None)?))
}

/// The id of the account a request creates, derived from the request id so
/// that a retried request names the same account as its first attempt.
fn account_id_for(request: RequestId) -> AccountId {
    let digest = blake3::derive_key("cairn 2026 account id from request id v1", &request.0);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    AccountId(id)
}

fn user_info(s: &cairn_consensus::State, id: AccountId) -> Option<UserInfo> {
    s.accounts().get(&id).map(|a| UserInfo {
        id: a.id.to_hex(),
        name: a.name.clone(),
        created_at: a.created_at.0,
        devices: s.devices_of(a.id).filter(|d| d.is_live()).count() as u64,
        vaults: s.vaults_of(a.id).count() as u64,
        org: s.org_of(a.id).to_owned(),
        disabled: s.disabled(a.id).map(|d| d.reason.clone()),
    })
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin",
    security(("admin" = [])),
    params(IdempotencyKey),
    request_body = CreateUser,
    responses(
        (status = 201, body = UserInfo),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 409, body = ErrorBody, description = "name_taken"),
        (status = 422, body = ErrorBody, description = "invalid_name"),
        (status = 503, body = ErrorBody, description = "unavailable; retry with the same Idempotency-Key"),
    ))]
async fn create_user(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    super::license::check(&gate, &app)?;
    let request_id = key.request_id();
    let credentials = super::operators::credentials(&req.kdf, &req.login_key)?;
    let org = req
        .org
        .or_else(|| admin.org.clone())
        .unwrap_or_else(|| DEFAULT_ORG.to_owned());
    let account = account_id_for(request_id);
    let at = now();
    let event = Event::AccountCreatedInOrg {
        account,
        name: req.name.clone(),
        credentials,
        org: org.clone(),
        at,
    };
    let fallback = UserInfo {
        id: account.to_hex(),
        name: req.name,
        created_at: at.0,
        devices: 0,
        vaults: 0,
        org,
        disabled: None,
    };
    applied(
        app.propose_request(Request {
            request_id,
            event: admin.audit(event),
        })
        .await?,
        (),
    )?;
    // Answer from the state (a retried request was applied by its first
    // attempt, with that attempt's time); `propose_request` returns once
    // this node has applied the write.
    let info = app
        .state
        .read(|s| user_info(s, account))
        .unwrap_or(fallback);
    Ok((StatusCode::CREATED, Json(info)))
}

/// Lists accounts (linearizable).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, body = Vec<UserInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn list_users(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    app.read_barrier().await?;
    let mut users: Vec<UserInfo> = app.state.read(|s| {
        s.accounts()
            .keys()
            .filter(|id| admin.sees(s.org_of(**id)))
            .filter_map(|id| user_info(s, *id))
            .collect()
    });
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(users))
}

/// Deletes an account: its devices (so every token it issued stops
/// working at once), items, schedules and jobs; with `delete_vaults` its
/// vaults and their snapshot records first (their chunks are collected as
/// garbage). Answers the account as it was.
#[utoipa::path(post, path = "/api/v1/admin/users/{name}/delete", tag = "admin",
    security(("admin" = [])),
    params(("name" = String, Path, description = "the account's login name"), IdempotencyKey),
    request_body = DeleteUser,
    responses(
        (status = 200, body = UserInfo, description = "the deleted account"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token, or an operator not permitted"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 409, body = ErrorBody, description = "account_has_vaults: delete them (delete_vaults) first"),
        (status = 503, body = ErrorBody, description = "unavailable; retry with the same Idempotency-Key"),
    ))]
async fn delete_user(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<DeleteUser>,
) -> Result<Json<UserInfo>, ApiError> {
    app.read_barrier().await?;
    let (account, info, vaults) = app
        .state
        .read(|s| {
            let a = s.account_by_name(&name)?;
            let vaults: Vec<_> = s.vaults_of(a.id).map(|v| v.id).collect();
            let info = user_info(s, a.id)?;
            admin.sees(s.org_of(a.id)).then_some((a.id, info, vaults))
        })
        .ok_or_else(|| ApiError::NotFound(format!("no user {name:?}")))?;
    if req.delete_vaults {
        for vault in vaults {
            // One request per vault, derived from the key: a retry deletes
            // each at most once (and finds the ones already gone gone).
            let digest = blake3::derive_key(
                "cairn 2026 admin user delete: vault request v1",
                &[key.request_id().0.as_slice(), vault.as_bytes()].concat(),
            );
            let mut request_id = [0u8; 16];
            request_id.copy_from_slice(&digest[..16]);
            let event = Event::VaultDeleted {
                vault,
                account,
                at: now(),
            };
            applied(
                app.propose_request(Request {
                    request_id: RequestId(request_id),
                    event: admin.audit(event),
                })
                .await?,
                (),
            )?;
        }
    }
    let event = Event::AccountDeleted { account, at: now() };
    propose(&app, &key, admin.audit(event)).await?;
    Ok(Json(info))
}

/// The account named `name`, if the asking actor sees it.
fn seen_account(
    admin: &Admin,
    s: &cairn_consensus::State,
    name: &str,
) -> Result<AccountId, ApiError> {
    s.account_by_name(name)
        .filter(|a| admin.sees(s.org_of(a.id)))
        .map(|a| a.id)
        .ok_or_else(|| ApiError::NotFound(format!("no user {name:?}")))
}

/// Disables an account: from the moment this answers every node refuses
/// its logins and every token of its devices (`403 account_disabled`, with
/// the reason); its data and vaults stay. Disabling again replaces the
/// reason.
#[utoipa::path(post, path = "/api/v1/admin/users/{name}/disable", tag = "admin",
    security(("admin" = []), ("operator" = [])),
    params(("name" = String, Path, description = "the account's login name"), IdempotencyKey),
    request_body = DisableUser,
    responses(
        (status = 200, body = UserInfo, description = "the account, disabled"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token; not_permitted: an operator not permitted"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 422, body = ErrorBody, description = "too_long: the reason"),
        (status = 503, body = ErrorBody, description = "unavailable; retry with the same Idempotency-Key"),
    ))]
async fn disable_user(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<DisableUser>,
) -> Result<Json<UserInfo>, ApiError> {
    app.read_barrier().await?;
    let account = app.state.read(|s| seen_account(&admin, s, &name))?;
    let event = Event::AccountDisabled {
        account,
        reason: req.reason,
        at: now(),
    };
    propose(&app, &key, admin.audit(event)).await?;
    app.state
        .read(|s| user_info(s, account))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no user {name:?}")))
}

/// Enables a disabled account again: new logins work (and tokens issued
/// before the account was disabled work again).
#[utoipa::path(post, path = "/api/v1/admin/users/{name}/enable", tag = "admin",
    security(("admin" = []), ("operator" = [])),
    params(("name" = String, Path, description = "the account's login name"), IdempotencyKey),
    responses(
        (status = 200, body = UserInfo, description = "the account, enabled"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token; not_permitted: an operator not permitted"),
        (status = 404, body = ErrorBody, description = "not_found"),
        (status = 503, body = ErrorBody, description = "unavailable; retry with the same Idempotency-Key"),
    ))]
async fn enable_user(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
) -> Result<Json<UserInfo>, ApiError> {
    app.read_barrier().await?;
    let account = app.state.read(|s| seen_account(&admin, s, &name))?;
    let event = Event::AccountEnabled { account, at: now() };
    propose(&app, &key, admin.audit(event)).await?;
    app.state
        .read(|s| user_info(s, account))
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no user {name:?}")))
}

/// Defines or redefines a vault tier (replicas, per-vault quota,
/// description, whether devices may request it).
#[utoipa::path(post, path = "/api/v1/admin/tiers", tag = "admin",
    security(("admin" = [])),
    params(IdempotencyKey),
    request_body = DefineTier,
    responses(
        (status = 201, body = TierInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 422, body = ErrorBody, description = "invalid_replicas, invalid_name, invalid_quota or too_long"),
    ))]
async fn define_tier(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<DefineTier>,
) -> Result<(StatusCode, Json<TierInfo>), ApiError> {
    let info = app
        .define_tier(key.request_id(), req, |e| admin.audit(e))
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Lists every vault tier, requestable or not (linearizable).
#[utoipa::path(get, path = "/api/v1/admin/tiers", tag = "admin",
    security(("admin" = [])),
    responses(
        (status = 200, body = Vec<TierInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn list_tiers(
    _admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<TierInfo>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(app.state.read(|s| {
        s.tiers().values().map(|t| admin_tier_info(s, t)).collect()
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::{AccountId, JobId};

    fn job(status: Option<JobStatus>, revived: bool, user: &str, started_at: u64) -> JobInfo {
        JobInfo {
            id: JobId::random(),
            account: AccountId::random(),
            user: user.into(),
            device: DeviceId::random(),
            device_name: "d".into(),
            vault: None,
            kind: cairn_proto::api::JobKind::Backup,
            started_at,
            finished_at: None,
            duration_ms: None,
            status,
            files: 0,
            bytes: 0,
            error: None,
            log: String::new(),
            item: None,
            schedule: None,
            last_seen: 0,
            revived,
            dispatched_by: None,
        }
    }

    #[test]
    fn operators_filter_by_status_time_and_account() {
        let err = job(Some(JobStatus::Error), false, "alice", 100);
        let running = job(None, false, "bob", 200);
        let revived = job(None, true, "bob", 300);
        let error = Some(status_filter("failed").unwrap());
        assert!(job_matches(&err, error, None, None));
        assert!(!job_matches(&running, error, None, None));
        assert!(job_matches(&running, Some("running"), None, None));
        assert!(job_matches(
            &revived,
            Some("revived"),
            Some(300),
            Some("bob")
        ));
        assert!(!job_matches(&revived, None, Some(301), None));
        assert!(!job_matches(&err, None, None, Some("bob")));
        assert!(status_filter("nonsense").is_err());
        assert_eq!(
            status_filter("skipped_already_running").unwrap(),
            "skipped_already_running"
        );
    }
}
