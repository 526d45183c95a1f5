//! The console's admin API: operators (`/api/v1/admin/operators`), their
//! logins (`/api/v1/operators/login[/params]`, `/api/v1/operators/logout`),
//! their TOTP second factor (`/api/v1/operators/totp` for oneself,
//! `/api/v1/admin/operators/{name}/totp` for another), organizations
//! (`/api/v1/admin/orgs`) and the audit trail (`/api/v1/admin/audit`).
//!
//! An operator logs in like a user: the client fetches the operator's KDF
//! parameters (made-up stable ones for an unknown name), derives the login
//! key with argon2id and sends only that; failed attempts count against
//! the same per-node limiter as user logins (under `operator/NAME`). A
//! success proposes [`Event::OperatorSessionStarted`] with the TOTP step
//! of the code (the state machine refuses a step already used, on any
//! node), audited as the operator's own action, and answers a session
//! token for the `Admin` routes. Every write here is proposed as the asking actor's
//! [`Event::Audited`] action, so the state machine checks the role
//! (`cairn_consensus::apply::permits`) and records it in the trail.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cairn_consensus::console::{Actor, Operator, OperatorRole, DEFAULT_ORG};
use cairn_consensus::event::{Credentials, KdfParams};
use cairn_consensus::{Event, UnixMillis};
use cairn_proto::admin::Kdf as AdminKdf;
use cairn_proto::api::{ErrorBody, Kdf};
use cairn_proto::console::{
    AuditInfo, ConfigureOrg, CreateOperator, OperatorInfo, OperatorLogin, OperatorLoginParams,
    OperatorSessionReply, OperatorTotp, OrgInfo, RevokeSessions, SessionInfo, SetTotp,
};
use std::net::SocketAddr;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::login::{fake_kdf, server_secret, verify_login};
use super::{kdf_info, login_key_hash, propose, ApiJson, ApiPath, IdempotencyKey, Peer, Shared};
use crate::cluster::{now, Cluster};
use crate::http::auth::{bearer, mint_session, session_of, Admin};
use crate::http::ApiError;

/// How long an operator session lasts.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(login_params))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(list_operators, create_operator))
        .routes(routes!(remove_operator))
        .routes(routes!(revoke_sessions))
        .routes(routes!(own_totp))
        .routes(routes!(set_totp))
        .routes(routes!(list_orgs, configure_org))
        .routes(routes!(audit))
}

/// The limiter's key for an operator name (apart from user names).
fn limiter_key(name: &str) -> String {
    format!("operator/{name}")
}

/// The API form of an operator at time `now` (expired sessions left out).
pub fn operator_info(op: &Operator, now: UnixMillis) -> OperatorInfo {
    OperatorInfo {
        name: op.name.clone(),
        role: op.role.name().to_owned(),
        org: op.org.clone(),
        totp: op.totp_secret.is_some(),
        created_at: op.created_at.0,
        sessions: op
            .sessions
            .iter()
            .filter(|(_, s)| s.expires_at > now)
            .map(|(id, s)| SessionInfo {
                id: id.clone(),
                opened_at: s.opened_at.0,
                expires_at: s.expires_at.0,
                from: s.from.clone(),
            })
            .collect(),
        totp_uri: None,
    }
}

/// Decodes hex of `len` bytes (any length when `None`).
fn hex_field(what: &str, s: &str, len: Option<usize>) -> Result<Vec<u8>, ApiError> {
    let bytes = hex::decode(s).map_err(|_| ApiError::BadRequest(format!("{what} is not hex")))?;
    match len {
        Some(n) if bytes.len() != n => {
            Err(ApiError::BadRequest(format!("{what} must be {n} bytes")))
        }
        _ => Ok(bytes),
    }
}

/// Stored credentials from a client-derived login key and its parameters.
///
/// # Errors
///
/// `bad_request` for malformed hex or a salt shorter than 16 bytes.
pub fn credentials(kdf: &AdminKdf, login_key: &str) -> Result<Credentials, ApiError> {
    let login_key = hex_field("login_key", login_key, Some(32))?;
    let salt = hex_field("kdf.salt", &kdf.salt, None)?;
    if salt.len() < 16 {
        return Err(ApiError::BadRequest(
            "kdf.salt must be at least 16 bytes".into(),
        ));
    }
    Ok(Credentials {
        kdf: KdfParams {
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            parallelism: kdf.parallelism,
            salt,
        },
        login_key_hash: login_key_hash(&login_key),
    })
}

/// The KDF parameters of an operator, so the client can derive the login
/// key; an unknown name gets made-up, stable ones.
#[utoipa::path(post, path = "/api/v1/operators/login/params", tag = "console",
    request_body = OperatorLoginParams,
    responses(
        (status = 200, body = Kdf),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn login_params(
    State(app): State<Arc<Cluster>>,
    ApiJson(req): ApiJson<OperatorLoginParams>,
) -> Result<Json<Kdf>, ApiError> {
    app.read_barrier().await?;
    let known = app.state.read(|s| {
        s.operators()
            .get(&req.name)
            .map(|o| kdf_info(&o.credentials.kdf))
    });
    match known {
        Some(kdf) => Ok(Json(kdf)),
        None => Ok(Json(fake_kdf(
            &server_secret(&app).await?,
            &limiter_key(&req.name),
        ))),
    }
}

/// Checks operator `name`'s login key (hex) and, when they are enrolled,
/// their TOTP code under the login limits: the operator and the step of
/// the accepted code. A missing, wrong or already used code fails exactly
/// like a wrong password (and counts against the limiter).
async fn verify_operator(
    app: &Cluster,
    shared: &Shared,
    peer: Option<SocketAddr>,
    name: &str,
    login_key: &str,
    code: Option<&str>,
) -> Result<(Operator, Option<u64>), ApiError> {
    let login_key = hex_field("login_key", login_key, None)?;
    let at_s = now().0 / 1000;
    verify_login(app, shared, &limiter_key(name), peer, &login_key, |s| {
        s.operators().get(name).map(|o| {
            let step = o.totp_secret.as_deref().map(|secret| {
                code.and_then(|c| crate::totp::accepted_step(secret, c, at_s, s.totp_step(name)))
            });
            let hash = match step {
                Some(None) => Vec::new(),
                _ => o.credentials.login_key_hash.clone(),
            };
            ((o.clone(), step.flatten()), hash)
        })
    })
    .await
}

/// `event` as operator `name`'s own audited action (a login, a change of
/// their own second factor): they prove who they are in the request, not
/// with a session, so there is no [`Admin`] to audit it.
fn own_action(name: &str, from: String, at: UnixMillis, event: Event) -> Event {
    Event::Audited {
        actor: Actor::Operator {
            name: name.to_owned(),
        },
        from,
        at,
        event: Box::new(event),
    }
}

/// Logs an operator in: checks the login key and answers a session token.
#[utoipa::path(post, path = "/api/v1/operators/login", tag = "console",
    params(IdempotencyKey),
    request_body = OperatorLogin,
    responses(
        (status = 200, body = OperatorSessionReply),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "login_failed: unknown operator, wrong password, or a missing, wrong or already used TOTP code"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many failed logins; see Retry-After"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn login(
    State(app): State<Arc<Cluster>>,
    shared: Shared,
    Peer(peer): Peer,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<OperatorLogin>,
) -> Result<Json<OperatorSessionReply>, ApiError> {
    let (op, totp_step) = verify_operator(
        &app,
        &shared,
        peer,
        &req.name,
        &req.login_key,
        req.totp.as_deref(),
    )
    .await?;
    let session = mint_session();
    let at = now();
    let from = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    let expires_at = UnixMillis(at.0 + SESSION_TTL_MS);
    let event = own_action(
        &op.name,
        from.clone(),
        at,
        Event::OperatorSessionStarted {
            operator: op.name.clone(),
            session: session.id.clone(),
            token_hash: session.hash.clone(),
            expires_at,
            from,
            totp_step,
            at,
        },
    );
    // Another node accepted the same code first: a failed login.
    propose(&app, &key, event).await.map_err(|e| match e {
        ApiError::Rejected(cairn_consensus::Rejection::TotpReplayed { .. }) => {
            ApiError::LoginFailed
        }
        e => e,
    })?;
    let op = app
        .state
        .read(|s| s.operators().get(&op.name).cloned())
        .filter(|o| {
            o.sessions
                .get(&session.id)
                .is_some_and(|s| s.token_hash == session.hash)
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this Idempotency-Key was already used by a login whose token cannot be shown \
                 again; log in with a new key"
                    .into(),
            )
        })?;
    Ok(Json(OperatorSessionReply {
        token: session.token,
        session: session.id,
        expires_at: expires_at.0,
        operator: operator_info(&op, at),
    }))
}

/// Ends the session whose token the request carries.
#[utoipa::path(post, path = "/api/v1/operators/logout", tag = "console",
    security(("operator" = [])),
    params(IdempotencyKey),
    responses(
        (status = 204, description = "the session is revoked on every node"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: not an operator session"),
    ))]
async fn logout(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    key: IdempotencyKey,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (Actor::Operator { name }, Some(session)) =
        (&admin.actor, bearer(&headers).and_then(session_of))
    else {
        return Err(ApiError::Forbidden(
            "only an operator session can log out".into(),
        ));
    };
    let event = Event::OperatorSessionRevoked {
        operator: name.clone(),
        session: Some(session.to_owned()),
        at: now(),
    };
    propose(&app, &key, admin.audit(event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The operators the asking actor sees (an org admin: their organization's).
#[utoipa::path(get, path = "/api/v1/admin/operators", tag = "console",
    security(("admin" = []), ("operator" = [])),
    responses(
        (status = 200, body = Vec<OperatorInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
    ))]
async fn list_operators(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<OperatorInfo>>, ApiError> {
    app.read_barrier().await?;
    let at = now();
    Ok(Json(app.state.read(|s| {
        s.operators()
            .values()
            .filter(|o| admin.org.is_none() || o.org == admin.org)
            .map(|o| operator_info(o, at))
            .collect()
    })))
}

/// Creates an operator (its password was turned into a login key by the
/// client). A cluster admin creates any; an org admin, operators of their
/// organization other than cluster admins. With `totp`, the operator is
/// enrolled in a TOTP second factor whose URI this answer shows, once.
#[utoipa::path(post, path = "/api/v1/admin/operators", tag = "console",
    security(("admin" = []), ("operator" = [])),
    params(IdempotencyKey),
    request_body = CreateOperator,
    responses(
        (status = 201, body = OperatorInfo),
        (status = 400, body = ErrorBody, description = "bad_request: an unknown role, malformed key"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 409, body = ErrorBody, description = "name_taken"),
        (status = 422, body = ErrorBody, description = "invalid_operator, unknown_org, not_permitted"),
    ))]
async fn create_operator(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<CreateOperator>,
) -> Result<(StatusCode, Json<OperatorInfo>), ApiError> {
    let role = OperatorRole::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown role {:?}: use cluster-admin, org-admin or read-only",
            req.role
        ))
    })?;
    let secret = req.totp.then(crate::totp::generate_secret);
    let event = Event::OperatorCreated {
        name: req.name.clone(),
        role,
        org: req.org,
        credentials: credentials(&req.kdf, &req.login_key)?,
        totp_secret: secret.clone(),
        at: now(),
    };
    let info = totp_answer(&app, &key, admin.audit(event), &req.name, secret).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Removes an operator with their sessions.
#[utoipa::path(post, path = "/api/v1/admin/operators/{name}/remove", tag = "console",
    security(("admin" = []), ("operator" = [])),
    params(("name" = String, Path, description = "the operator"), IdempotencyKey),
    responses(
        (status = 204, description = "removed"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 422, body = ErrorBody, description = "unknown_operator, not_permitted"),
    ))]
async fn remove_operator(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
) -> Result<StatusCode, ApiError> {
    let event = Event::OperatorRemoved { name, at: now() };
    propose(&app, &key, admin.audit(event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one session of an operator, or all of them: every node refuses
/// the tokens from the moment this answers.
#[utoipa::path(post, path = "/api/v1/admin/operators/{name}/revoke", tag = "console",
    security(("admin" = []), ("operator" = [])),
    params(("name" = String, Path, description = "the operator"), IdempotencyKey),
    request_body = RevokeSessions,
    responses(
        (status = 204, description = "revoked"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 422, body = ErrorBody, description = "unknown_operator, unknown_session, not_permitted"),
    ))]
async fn revoke_sessions(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<RevokeSessions>,
) -> Result<StatusCode, ApiError> {
    let event = Event::OperatorSessionRevoked {
        operator: name,
        session: req.session,
        at: now(),
    };
    propose(&app, &key, admin.audit(event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Proposes `event` (an operator's creation or TOTP change, as someone's
/// audited action) and answers the operator with the new secret's URI,
/// once.
async fn totp_answer(
    app: &Cluster,
    key: &IdempotencyKey,
    event: Event,
    name: &str,
    secret: Option<Vec<u8>>,
) -> Result<OperatorInfo, ApiError> {
    propose(app, key, event).await?;
    let at = now();
    let mut info = app
        .state
        .read(|s| {
            s.operators()
                .get(name)
                .filter(|o| o.totp_secret == secret)
                .map(|o| operator_info(o, at))
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this Idempotency-Key was already used by a request whose TOTP secret cannot be \
                 shown again"
                    .into(),
            )
        })?;
    info.totp_uri = secret.map(|s| crate::totp::uri(&s, "Cairn", name));
    Ok(info)
}

/// An operator enrols in TOTP (a new secret, whose URI this answer shows
/// once) or removes it, proving their password (and giving the current
/// code when enrolled) like a login: failures count against the same
/// limits.
#[utoipa::path(post, path = "/api/v1/operators/totp", tag = "console",
    params(IdempotencyKey),
    request_body = OperatorTotp,
    responses(
        (status = 200, body = OperatorInfo),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "login_failed: unknown operator, wrong password, or a missing or wrong TOTP code"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many failed logins; see Retry-After"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn own_totp(
    State(app): State<Arc<Cluster>>,
    shared: Shared,
    Peer(peer): Peer,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<OperatorTotp>,
) -> Result<Json<OperatorInfo>, ApiError> {
    let (op, _) = verify_operator(
        &app,
        &shared,
        peer,
        &req.name,
        &req.login_key,
        req.totp.as_deref(),
    )
    .await?;
    let secret = req.enable.then(crate::totp::generate_secret);
    let at = now();
    let event = own_action(
        &op.name,
        peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        at,
        Event::OperatorTotpSet {
            operator: op.name.clone(),
            totp_secret: secret.clone(),
            at,
        },
    );
    Ok(Json(
        totp_answer(&app, &key, event, &op.name, secret).await?,
    ))
}

/// Sets (a new secret, whose URI this answer shows once) or removes
/// another operator's TOTP second factor: a cluster admin any operator's,
/// an org admin those of their organization. Operators change their own
/// through `/api/v1/operators/totp`, which needs their password.
#[utoipa::path(post, path = "/api/v1/admin/operators/{name}/totp", tag = "console",
    security(("admin" = []), ("operator" = [])),
    params(("name" = String, Path, description = "the operator"), IdempotencyKey),
    request_body = SetTotp,
    responses(
        (status = 200, body = OperatorInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: one's own (use /api/v1/operators/totp); not_permitted"),
        (status = 422, body = ErrorBody, description = "unknown_operator"),
    ))]
async fn set_totp(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<SetTotp>,
) -> Result<Json<OperatorInfo>, ApiError> {
    if admin.actor == (Actor::Operator { name: name.clone() }) {
        return Err(ApiError::Forbidden(
            "change your own second factor with your password: POST /api/v1/operators/totp \
             (cairnd admin operator totp enable|disable NAME --password-file FILE)"
                .into(),
        ));
    }
    let secret = req.enable.then(crate::totp::generate_secret);
    let event = admin.audit(Event::OperatorTotpSet {
        operator: name.clone(),
        totp_secret: secret.clone(),
        at: now(),
    });
    Ok(Json(totp_answer(&app, &key, event, &name, secret).await?))
}

fn org_info(s: &cairn_consensus::State, name: &str) -> OrgInfo {
    let users = s
        .accounts()
        .keys()
        .filter(|a| s.org_of(**a) == name)
        .count() as u64;
    match s.orgs().get(name) {
        Some(o) => OrgInfo {
            name: o.name.clone(),
            display_name: o.display_name.clone(),
            support_url: o.support_url.clone(),
            tiers: o.tiers.clone(),
            users,
        },
        None => OrgInfo {
            name: name.to_owned(),
            display_name: String::new(),
            support_url: String::new(),
            tiers: Vec::new(),
            users,
        },
    }
}

/// The organizations the asking actor sees: all (the default one first)
/// for a cluster admin, their own for an org admin.
#[utoipa::path(get, path = "/api/v1/admin/orgs", tag = "console",
    security(("admin" = []), ("operator" = [])),
    responses(
        (status = 200, body = Vec<OrgInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
    ))]
async fn list_orgs(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<OrgInfo>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(app.state.read(|s| {
        let others = s.orgs().keys().filter(|n| *n != DEFAULT_ORG);
        std::iter::once(DEFAULT_ORG)
            .chain(others.map(String::as_str))
            .filter(|n| admin.sees(n))
            .map(|n| org_info(s, n))
            .collect()
    })))
}

/// Creates or reconfigures an organization (an org admin may brand their
/// own, not change its tiers).
#[utoipa::path(post, path = "/api/v1/admin/orgs", tag = "console",
    security(("admin" = []), ("operator" = [])),
    params(IdempotencyKey),
    request_body = ConfigureOrg,
    responses(
        (status = 201, body = OrgInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 404, body = ErrorBody, description = "unknown_tier"),
        (status = 422, body = ErrorBody, description = "invalid_name, too_long, not_permitted"),
    ))]
async fn configure_org(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<ConfigureOrg>,
) -> Result<(StatusCode, Json<OrgInfo>), ApiError> {
    let event = Event::OrgConfigured {
        name: req.name.clone(),
        display_name: req.display_name,
        support_url: req.support_url,
        tiers: req.tiers,
        at: now(),
    };
    propose(&app, &key, admin.audit(event)).await?;
    Ok((
        StatusCode::CREATED,
        Json(app.state.read(|s| org_info(s, &req.name))),
    ))
}

/// The audit trail, oldest first: every entry for actors who see all
/// organizations, the entries of their organization's operators for the
/// others.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "console",
    security(("admin" = []), ("operator" = [])),
    responses(
        (status = 200, body = Vec<AuditInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
    ))]
async fn audit(
    admin: Admin,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<AuditInfo>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(app.state.read(|s| {
        let visible = |actor: &Actor| match (&admin.org, actor) {
            (None, _) => true,
            (Some(org), Actor::Operator { name }) => s
                .operators()
                .get(name)
                .is_some_and(|o| o.org.as_deref() == Some(org)),
            (Some(_), Actor::AdminToken { .. }) => false,
            (Some(org), Actor::Device { device }) => s
                .devices()
                .get(device)
                .is_some_and(|d| s.org_of(d.account) == org.as_str()),
        };
        s.audit()
            .values()
            .filter(|e| visible(&e.actor))
            .map(|e| AuditInfo {
                seq: e.seq,
                actor: e.actor.to_string(),
                from: e.from.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                at: e.at.0,
            })
            .collect()
    })))
}
