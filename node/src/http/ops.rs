//! Operations routes: liveness, readiness and metrics for orchestration
//! and Prometheus, the OpenAPI document, and the cluster's membership
//! (`status`, `join`, `remove`) for operators and joining nodes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_consensus::state::StorageNodeStatus;
use cairn_consensus::Rejection;
use cairn_proto::admin::{JoinRequest, JoinResponse, RemoveRequest, RemoveResponse};
use cairn_proto::api::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{join_authorized, Admin};
use super::extract::ApiJson;
use super::{ApiError, HttpState};
use crate::cluster::{Cluster, ForwardedError, FORWARDED_HEADER};
use crate::license::gate::Gate;
use crate::storage::Storage;

/// The documented routes of this module; `app` guards the join route
/// (`None` builds the same routes unguarded, for the OpenAPI document).
pub fn routes(app: Option<Arc<Cluster>>) -> OpenApiRouter<HttpState> {
    let mut join = OpenApiRouter::new().routes(routes!(cluster_join));
    if let Some(app) = app {
        join = join.route_layer(middleware::from_fn_with_state(app, join_authorized));
    }
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(cluster_status))
        .routes(routes!(cluster_remove))
        .routes(routes!(openapi))
        .merge(join)
}

/// `GET /api/v1/openapi.json`: the OpenAPI document, built once from the
/// same router the node serves.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document")))]
async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let doc = DOC
        .get_or_init(|| serde_json::to_value(super::document()).unwrap_or(serde_json::Value::Null));
    Json(doc).into_response()
}

/// Liveness: Raft is running.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "ok"), (status = 503, description = "raft stopped")))]
async fn healthz(State(app): State<Arc<Cluster>>) -> Response {
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
async fn readyz(State(app): State<Arc<Cluster>>, State(gate): State<Arc<Gate>>) -> Response {
    if app.is_ready().await {
        // A read-only cluster still serves logins, listings and restores:
        // ready, with the reason in the detail.
        match super::api::license::status(&gate, &app).detail {
            Some(detail) => (
                StatusCode::OK,
                format!("ready\nlicense: read-only: {detail}\n"),
            )
                .into_response(),
            None => (StatusCode::OK, "ready\n").into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "metrics, text format 0.0.4")))]
async fn metrics(State(app): State<Arc<Cluster>>, State(storage): State<Arc<Storage>>) -> Response {
    storage.refresh_metrics();
    let text = app.metrics.render(&app);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This node's view of the cluster.
#[utoipa::path(get, path = "/api/v1/cluster/status", tag = "cluster",
    responses((status = 200, body = cairn_proto::admin::ClusterStatus)))]
async fn cluster_status(
    State(app): State<Arc<Cluster>>,
    State(storage): State<Arc<Storage>>,
    State(gate): State<Arc<Gate>>,
) -> Response {
    let view = storage.view();
    let mut status = app.status(view.as_ref().map(|v| &v.report));
    status.license = Some(super::api::license::status(&gate, &app));
    Json(status).into_response()
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
async fn cluster_join(
    State(app): State<Arc<Cluster>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Response {
    let is_leader = app.raft.metrics().borrow().current_leader == Some(app.id());
    if is_leader {
        return match app.join(&req).await {
            Ok(resp) => Json(resp).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    if headers.contains_key(FORWARDED_HEADER) {
        return ApiError::Unavailable("not the leader".into()).into_response();
    }
    let Some(leader) = app.status(None).leader_addr else {
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
    admin: Admin,
    State(app): State<Arc<Cluster>>,
    ApiJson(req): ApiJson<RemoveRequest>,
) -> Result<Json<RemoveResponse>, ApiError> {
    admin.require_cluster_admin()?;
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
