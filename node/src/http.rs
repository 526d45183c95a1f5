//! The HTTP surface of a node (axum): thin handlers that parse, call
//! [`App`], and map the result to a response.
//!
//! | path | body | who calls it |
//! |---|---|---|
//! | `POST /raft/{append,vote,snapshot}` | bincode | peers' [`HttpNetwork`](crate::network::HttpNetwork) |
//! | `POST /raft/propose`, `/raft/read-index`, `/raft/remove-node` | bincode | followers forwarding writes, reads and removals |
//! | `GET /healthz`, `/readyz`, `/metrics` | text | orchestration, Prometheus |
//! | `GET /api/v1/cluster/status`, `POST /api/v1/cluster/join` | JSON | `cairnd cluster status`, joining nodes |
//! | `POST /api/v1/cluster/remove` | JSON, admin token | `cairnd cluster remove` |
//! | `GET, POST /api/v1/admin/users`, `GET, POST /api/v1/admin/tiers` | JSON, admin token | `cairnd admin` |
//! | `GET /api/v1/openapi.json` | JSON | API clients |
//! | the rest of `/api/v1` | JSON, device or admin token | `cairn`, see [`crate::api`] |
//!
//! The `/raft/*` and `/internal/v1/*` endpoints are cluster-internal: they
//! require the cluster secret ([`ClusterSecret`](crate::token::ClusterSecret),
//! which every node has) in the `x-cairn-cluster-secret` header. A join
//! needs that secret (the joining node presents it) or the admin token. The
//! admin API requires the node's admin token as `Authorization: Bearer
//! <token>`.
//!
//! Every public route is routed and documented together (utoipa-axum's
//! `OpenApiRouter`, see [`crate::api`]); only the `/raft/*` endpoints are
//! routed plainly, outside the document.
//!
//! Every request is counted and timed by route template (not raw path, so
//! the metric's label set stays bounded) in the `track_http` middleware.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::{Json, Router};
use cairn_consensus::event::{Credentials, KdfParams};
use cairn_consensus::state::StorageNodeStatus;
use cairn_consensus::{AccountId, Event, Outcome, Rejection, Request, RequestId, TypeConfig};
use openraft::raft::InstallSnapshotRequest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{ApiJson, ApiState, IdempotencyKey};
use crate::app::{now, App, FORWARDED_HEADER};
use crate::auth::Admin;
use crate::config::{MAX_SNAPSHOT_CHUNK, MAX_SNAPSHOT_SIZE};
use crate::error::{ApiError, ErrorBody, ForwardedError};
use crate::network::BINCODE;
use crate::token::CLUSTER_SECRET_HEADER;
use crate::wire::{
    CreateUser, DefineTier, JoinRequest, JoinResponse, RemoveRequest, RemoveResponse, TierInfo,
    UserInfo,
};

/// Largest Raft RPC body: the largest snapshot chunk plus room for its
/// metadata; append batches are far smaller.
const RAFT_BODY_LIMIT: usize = (MAX_SNAPSHOT_CHUNK as usize) + (1 << 20);

/// The node's router: the cluster-internal Raft endpoints plus every
/// documented route ([`crate::api::documented`]).
pub fn router(app: Arc<App>) -> Router {
    let internal = Router::new()
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/raft/propose", post(raft_propose))
        .route("/raft/read-index", post(raft_read_index))
        .route("/raft/remove-node", post(raft_remove_node))
        .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
        .merge(crate::storage::http::internal_routes())
        .route_layer(middleware::from_fn_with_state(app.clone(), cluster_only));
    let (documented, _) = crate::api::documented(Some(app.clone())).split_for_parts();
    Router::new()
        .merge(internal)
        .merge(documented)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(Arc::new(ApiState::new())))
        .layer(middleware::from_fn_with_state(app.clone(), track_http))
        .with_state(app)
}

/// The documented routes of this module (admin, cluster, health).
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<Arc<App>> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(cluster_status))
        .routes(routes!(cluster_remove))
        .routes(routes!(list_users, create_user))
        .routes(routes!(list_tiers, define_tier))
        .routes(routes!(openapi))
}

/// The `route` label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Counts and times every request by route template, method (a fixed set,
/// [`crate::metrics::method_label`]) and status.
async fn track_http(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    // A template of the router's (a fixed set) or `unmatched`: never the
    // raw path, so the label sets stay bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    app.metrics.observe_http(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `GET /api/v1/openapi.json`: the OpenAPI document, built once from the
/// same router the node serves.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document")))]
async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        serde_json::to_value(crate::api::document()).unwrap_or(serde_json::Value::Null)
    });
    Json(doc).into_response()
}

/// Whether `headers` carry the cluster secret.
fn has_cluster_secret(app: &App, headers: &HeaderMap) -> bool {
    headers
        .get(CLUSTER_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| app.cluster_secret.verify(p))
}

/// Whether `headers` carry this node's admin token as a bearer token.
fn has_admin_token(app: &App, headers: &HeaderMap) -> bool {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&app.admin, token) {
        (Some(admin), Some(token)) => admin.verify(token),
        _ => false,
    }
}

/// Admits a request to a cluster-internal endpoint only with the cluster
/// secret (every node has one): `401 unauthorized` otherwise.
pub(crate) async fn cluster_only(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if !has_cluster_secret(&app, request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Admits a join (an operator action: it changes the voters) with the
/// cluster secret, which the joining node presents, or this node's admin
/// token: `401 unauthorized` otherwise.
pub(crate) async fn join_authorized(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if !has_cluster_secret(&app, headers) && !has_admin_token(&app, headers) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn not_found() -> Response {
    let body = ErrorBody {
        code: "not_found".into(),
        message: "no such endpoint".into(),
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn method_not_allowed() -> Response {
    let body = ErrorBody {
        code: "method_not_allowed".into(),
        message: "this endpoint does not take that method".into(),
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

// --- Raft RPCs (bincode) --------------------------------------------------

/// A bincode answer of a cluster-internal route (also the storage role's,
/// [`crate::storage::http`]).
pub(crate) fn bincode_reply<T: Serialize>(value: &T) -> Response {
    match bincode::serialize(value) {
        Ok(bytes) => ([(CONTENT_TYPE, BINCODE)], bytes).into_response(),
        Err(e) => ApiError::Internal(format!("encoding reply: {e}")).into_response(),
    }
}

/// Decodes the bincode body of a cluster-internal request; garbage is a
/// `400 bad_request`.
pub(crate) fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    bincode::deserialize(body).map_err(|e| ApiError::BadRequest(format!("bad bincode body: {e}")))
}

async fn raft_append(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => bincode_reply(&app.raft.append_entries(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn raft_vote(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode(&body) {
        Ok(rpc) => bincode_reply(&app.raft.vote(rpc).await),
        Err(e) => e.into_response(),
    }
}

async fn raft_snapshot(State(app): State<Arc<App>>, body: Bytes) -> Response {
    app.metrics.snapshot().chunks_received.inc();
    match decode::<InstallSnapshotRequest<TypeConfig>>(&body).and_then(check_snapshot_chunk) {
        Ok(rpc) => bincode_reply(&app.raft.install_snapshot(rpc).await),
        Err(e) => e.into_response(),
    }
}

/// Refuses a snapshot chunk that would end beyond [`MAX_SNAPSHOT_SIZE`]:
/// openraft writes it into an in-memory buffer at its offset, so an absurd
/// offset would be an absurd allocation (and an abort), not an error.
fn check_snapshot_chunk(
    rpc: InstallSnapshotRequest<TypeConfig>,
) -> Result<InstallSnapshotRequest<TypeConfig>, ApiError> {
    let end = rpc.offset.checked_add(rpc.data.len() as u64);
    if end.is_some_and(|end| end <= MAX_SNAPSHOT_SIZE) {
        Ok(rpc)
    } else {
        Err(ApiError::BadRequest(format!(
            "snapshot chunk at offset {} ({} bytes) ends beyond the largest snapshot a node \
             accepts ({MAX_SNAPSHOT_SIZE} bytes)",
            rpc.offset,
            rpc.data.len()
        )))
    }
}

async fn raft_propose(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode::<Request>(&body) {
        Ok(req) => bincode_reply(&app.propose_local(req).await),
        Err(e) => e.into_response(),
    }
}

async fn raft_read_index(State(app): State<Arc<App>>) -> Response {
    bincode_reply(&app.read_index().await)
}

async fn raft_remove_node(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode::<u64>(&body) {
        Ok(node) => bincode_reply(&app.remove_local(node).await.map_err(|e| e.to_forwarded())),
        Err(e) => e.into_response(),
    }
}

// --- health and metrics ----------------------------------------------------

/// Liveness: Raft is running.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "ok"), (status = 503, description = "raft stopped")))]
async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.is_healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "raft stopped\n").into_response()
    }
}

/// Readiness: a leader is known, this node is a member and within 100
/// entries of the leader's commit index.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_ready().await {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "metrics, text format 0.0.4")))]
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render(&app);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

// --- cluster -------------------------------------------------------------

/// This node's view of the cluster.
#[utoipa::path(get, path = "/api/v1/cluster/status", tag = "cluster",
    responses((status = 200, body = crate::wire::ClusterStatus)))]
async fn cluster_status(State(app): State<Arc<App>>) -> Response {
    Json(app.status()).into_response()
}

/// Adds a node (learner, then voter while there are fewer than 5) once it
/// answers at its address as the node it says it is. An operator action:
/// needs the cluster secret header (the joining node presents it) or the
/// admin token.
#[utoipa::path(post, path = "/api/v1/cluster/join", tag = "cluster",
    security(("admin" = []), ("cluster_secret" = [])),
    request_body = JoinRequest,
    responses(
        (status = 200, body = JoinResponse),
        (status = 400, body = ErrorBody, description = "bad_request: the id is a member at another address"),
        (status = 401, body = ErrorBody, description = "unauthorized: neither the cluster secret nor the admin token"),
        (status = 422, body = ErrorBody, description = "join_refused: the node does not answer at its address as that node"),
        (status = 503, body = ErrorBody, description = "unavailable: no leader or another change in progress; retry"),
    ))]
pub(crate) async fn cluster_join(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Response {
    let is_leader = app.raft.metrics().borrow().current_leader == Some(app.id());
    if is_leader {
        return match app.join(&req).await {
            Ok(resp) => Json(resp).into_response(),
            Err(e) => e.into_response(),
        };
    }
    if headers.contains_key(FORWARDED_HEADER) {
        return ApiError::Unavailable("not the leader".into()).into_response();
    }
    let Some(leader) = app.status().leader_addr else {
        return ApiError::Unavailable("no leader".into()).into_response();
    };
    let url = format!("{}/api/v1/cluster/join", leader.trim_end_matches('/'));
    let forwarded = app
        .http
        .post(&url)
        .header(FORWARDED_HEADER, "1")
        .json(&req)
        .send()
        .await;
    match forwarded {
        Ok(resp) if resp.status().is_success() => match resp.json::<JoinResponse>().await {
            Ok(j) => Json(j).into_response(),
            Err(e) => ApiError::Unavailable(format!("leader answer: {e}")).into_response(),
        },
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            match serde_json::from_str::<ErrorBody>(&text) {
                // The leader's refusal, as it gave it.
                Ok(body) => ApiError::Forwarded(ForwardedError {
                    status: status.as_u16(),
                    body,
                })
                .into_response(),
                Err(_) => {
                    ApiError::Unavailable(format!("leader said {status}: {text}")).into_response()
                }
            }
        }
        Err(e) => ApiError::Unavailable(format!("forwarding to {url}: {e}")).into_response(),
    }
}

/// Removes a node from the cluster (membership change through the leader).
#[utoipa::path(post, path = "/api/v1/cluster/remove", tag = "cluster",
    security(("admin" = [])),
    request_body = RemoveRequest,
    responses(
        (status = 200, body = RemoveResponse, description = "removed (or already removed)"),
        (status = 400, body = ErrorBody, description = "bad_request: the node is the last voter"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: a device token"),
        (status = 404, body = ErrorBody, description = "not_found: the cluster never had this node"),
        (status = 422, body = ErrorBody, description = "storage_node_state: an active storage node; drain it first or force"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn cluster_remove(
    _admin: Admin,
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RemoveRequest>,
) -> Result<Json<RemoveResponse>, ApiError> {
    app.read_barrier().await?;
    let status = app
        .state
        .read(|s| s.storage_nodes().get(&req.node_id).map(|n| n.status));
    if let (Some(status @ StorageNodeStatus::Active), false) = (status, req.force) {
        // Removing a node that still holds the only copies of some chunks
        // (single-replica vaults) would lose them: drain it first.
        return Err(ApiError::Rejected(Rejection::StorageNodeState {
            node: req.node_id,
            status,
        }));
    }
    Ok(Json(app.remove_node(req.node_id).await?))
}

// --- admin -----------------------------------------------------------------

/// The server-side hash of a login key: the state stores this, never the
/// key. A plain (fast) hash is enough because the login key is itself the
/// output of argon2id, not a guessable password.
pub fn login_key_hash(login_key: &[u8]) -> Vec<u8> {
    blake3::derive_key("cairn 2026 login-key hash v1", login_key).to_vec()
}

fn parse_hex(what: &str, s: &str, len: Option<usize>) -> Result<Vec<u8>, ApiError> {
    let bytes = hex::decode(s).map_err(|_| ApiError::BadRequest(format!("{what} is not hex")))?;
    match len {
        Some(n) if bytes.len() != n => {
            Err(ApiError::BadRequest(format!("{what} must be {n} bytes")))
        }
        _ => Ok(bytes),
    }
}

/// `ok` if the event was applied, else its rejection as an API error.
pub(crate) fn applied<T>(outcome: Outcome, ok: T) -> Result<T, ApiError> {
    match outcome {
        Outcome::Applied => Ok(ok),
        Outcome::Rejected(r) => Err(ApiError::Rejected(r)),
        Outcome::NoOp => Err(ApiError::Internal("event produced no outcome".into())),
    }
}

/// Header carrying a client-chosen request id (32 hex digits). A client
/// that retries a write with the same key gets the first outcome back
/// instead of applying it twice, through failovers too (the state machine
/// deduplicates by request id).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request id of a write: its `Idempotency-Key`, or a fresh one.
pub(crate) fn request_id(headers: &HeaderMap) -> Result<RequestId, ApiError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(RequestId::random()),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{IDEMPOTENCY_KEY} must be 32 hex digits"))
            }),
    }
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
    _admin: Admin,
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    let request_id = request_id(&headers)?;
    let login_key = parse_hex("login_key", &req.login_key, Some(32))?;
    let salt = parse_hex("kdf.salt", &req.kdf.salt, None)?;
    if salt.len() < 16 {
        return Err(ApiError::BadRequest(
            "kdf.salt must be at least 16 bytes".into(),
        ));
    }
    let account = account_id_for(request_id);
    let at = now();
    let event = Event::AccountCreated {
        account,
        name: req.name.clone(),
        credentials: Credentials {
            kdf: KdfParams {
                memory_kib: req.kdf.memory_kib,
                iterations: req.kdf.iterations,
                parallelism: req.kdf.parallelism,
                salt,
            },
            login_key_hash: login_key_hash(&login_key),
        },
        at,
    };
    let fallback = UserInfo {
        id: account.to_hex(),
        name: req.name,
        created_at: at.0,
        devices: 0,
        vaults: 0,
    };
    applied(
        app.propose_request(Request { request_id, event }).await?,
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
    _admin: Admin,
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    app.read_barrier().await?;
    let mut users: Vec<UserInfo> = app.state.read(|s| {
        s.accounts()
            .keys()
            .filter_map(|id| user_info(s, *id))
            .collect()
    });
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(users))
}

fn tier_info(t: &cairn_consensus::state::Tier) -> TierInfo {
    TierInfo {
        name: t.name.clone(),
        replicas: t.replicas,
        requestable: t.requestable,
        defined_at: t.defined_at.0,
        quota_bytes: t.quota_bytes,
        description: t.description.clone(),
    }
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
    _admin: Admin,
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<DefineTier>,
) -> Result<(StatusCode, Json<TierInfo>), ApiError> {
    let request_id = request_id(&headers)?;
    let at = now();
    let fallback = TierInfo {
        name: req.name.clone(),
        replicas: req.replicas,
        requestable: req.requestable,
        defined_at: at.0,
        quota_bytes: req.quota_bytes,
        description: req.description.clone(),
    };
    let event = Event::TierConfigured {
        name: req.name,
        replicas: req.replicas,
        requestable: req.requestable,
        quota_bytes: req.quota_bytes,
        description: req.description,
        at,
    };
    applied(
        app.propose_request(Request { request_id, event }).await?,
        (),
    )?;
    let info = app
        .state
        .read(|s| s.tiers().get(&fallback.name).map(tier_info))
        .unwrap_or(fallback);
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
    State(app): State<Arc<App>>,
) -> Result<Json<Vec<TierInfo>>, ApiError> {
    app.read_barrier().await?;
    Ok(Json(
        app.state
            .read(|s| s.tiers().values().map(tier_info).collect()),
    ))
}
