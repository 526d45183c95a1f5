//! The HTTP layer of a node: the only module that knows axum. Thin
//! handlers parse a request, call the cluster ([`Cluster`]) or the storage
//! role ([`Storage`]), and map the result to a response ([`ApiError`]). The
//! router is assembled here, once ([`router`]), and the OpenAPI document is
//! built from the same routes ([`document`]).
//!
//! | module | routes |
//! |---|---|
//! | [`raft`] | `/raft/*` (bincode, peers) |
//! | [`internal`] | `/internal/v1/*` (bincode, peers' chunk replication) |
//! | [`ops`] | health, metrics, OpenAPI document, cluster status, join, remove |
//! | [`api`] | the device API and the admin API |
//! | [`control`] | `/api/v1/connect` (devices' WebSocket) and `/internal/v1/control/*` (relay between nodes) |
//! | [`chunks`] | device chunk routes and the drain |
//! | [`authority`] | the license authority's `/license/v1/*` (its own server; mounted on the dev cluster's node as its embedded authority) |
//! | [`downloads`] | `/download/*`: pre-configured client builds (the downloads role) |
//! | [`console`] | `/` and `/console/*`: the server-rendered web console (the auth role), calling the API in-process |
//!
//! Routes belong to roles: the device and admin API ([`api`]) to `auth`,
//! the node-to-node chunk routes ([`internal`]) to `storage`, `/download/`
//! to `downloads`; a node answers a route of a role it does not run with
//! `503 role_not_served` naming the nodes that do (`require_role`). The
//! device chunk routes ([`chunks`]) are served by every node: a node
//! without a chunk store coordinates them to the storage nodes.
//!
//! [`serve`] is the accept loop (connection cap, timeouts, TLS); [`auth`],
//! [`extract`] and [`ratelimit`] are what handlers are built from.
//!
//! | path | body | who calls it |
//! |---|---|---|
//! | `POST /raft/{append,vote,snapshot}` | bincode | peers' [`HttpNetwork`](crate::cluster::network::HttpNetwork) |
//! | `POST /raft/propose`, `/raft/read-index`, `/raft/remove-node` | bincode | followers forwarding writes, reads and removals |
//! | `GET /healthz`, `/readyz`, `/metrics` | text | orchestration, Prometheus |
//! | `GET /api/v1/cluster/status`, `POST /api/v1/cluster/join` | JSON | `cairnd cluster status`, joining nodes |
//! | `POST /api/v1/cluster/remove` | JSON, admin token | `cairnd cluster remove` |
//! | `GET, POST /api/v1/admin/users`, `GET, POST /api/v1/admin/tiers` | JSON, admin token | `cairnd admin` |
//! | `GET /api/v1/openapi.json` | JSON | API clients |
//! | the rest of `/api/v1` | JSON, device or admin token | `cairn`, see [`crate::http::api`] |
//!
//! The `/raft/*` and `/internal/v1/*` endpoints are cluster-internal: they
//! require the cluster secret ([`ClusterSecret`](crate::token::ClusterSecret),
//! which every node has) in the `x-cairn-cluster-secret` header. A join
//! needs that secret (the joining node presents it) or the admin token. The
//! admin API requires the node's admin token as `Authorization: Bearer
//! <token>`.
//!
//! Every public route is routed and documented together (utoipa-axum's
//! `OpenApiRouter`, see [`api`] for how to add one); only the cluster-internal
//! `/raft/*` and `/internal/v1/*` endpoints are routed plainly, outside the
//! document.
//!
//! Every request is counted and timed by route template (not raw path, so
//! the metric's label set stays bounded) in the `track_http` middleware.

pub mod api;
pub mod auth;
pub mod authority;
pub mod chunks;
pub mod console;
pub mod control;
pub mod downloads;
pub mod error;
pub mod extract;
pub mod internal;
pub mod ops;
pub mod raft;
pub mod ratelimit;
pub mod serve;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use cairn_proto::api::ErrorBody;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;
pub use extract::{ClientAddr, IDEMPOTENCY_KEY};

use crate::cluster::Cluster;
use crate::license::gate::Gate;
use crate::storage::Storage;
use cairn_consensus::event::Role;

/// Largest JSON request body of the API routes (1 MiB): the largest
/// legitimate one, a password change re-wrapping every vault's keys, is a
/// few KiB per vault.
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// What every handler may ask for (axum state): the cluster and the
/// storage role. Handlers extract the part they need
/// (`State<Arc<Cluster>>`, `State<Arc<Storage>>`).
#[derive(Clone)]
pub struct HttpState {
    /// The cluster (Raft, the replicated state).
    pub cluster: Arc<Cluster>,
    /// This node's storage role.
    pub storage: Arc<Storage>,
    /// This node's license gate (refuses writes while read-only).
    pub license: Arc<Gate>,
    /// The embedded license authority (dev cluster), served on the node's
    /// listener.
    pub authority: Option<authority::AuthorityState>,
    /// The downloads role: client builds, brand, the cluster's CA.
    pub downloads: Arc<crate::downloads::Downloads>,
}

impl FromRef<HttpState> for Arc<crate::downloads::Downloads> {
    fn from_ref(state: &HttpState) -> Self {
        state.downloads.clone()
    }
}

impl FromRef<HttpState> for Arc<Gate> {
    fn from_ref(state: &HttpState) -> Self {
        state.license.clone()
    }
}

impl FromRef<HttpState> for Arc<Cluster> {
    fn from_ref(state: &HttpState) -> Self {
        state.cluster.clone()
    }
}

impl FromRef<HttpState> for Arc<Storage> {
    fn from_ref(state: &HttpState) -> Self {
        state.storage.clone()
    }
}

/// The node's router, assembled here once: the cluster-internal routes
/// behind the cluster secret, every documented route (`documented`),
/// the fallbacks, the per-node API state and the request metrics.
pub fn router(state: HttpState) -> Router {
    let app = state.cluster.clone();
    let internal = Router::new()
        .merge(raft::routes())
        .merge(control::internal_routes())
        .merge(
            internal::routes().route_layer(middleware::from_fn_with_state(
                (app.clone(), Role::Storage),
                require_role,
            )),
        )
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            auth::cluster_only,
        ));
    let downloads = downloads::routes().route_layer(middleware::from_fn_with_state(
        (app.clone(), Role::Downloads),
        require_role,
    ));
    let (documented, _) = documented(Some(app.clone())).split_for_parts();
    let shared = Extension(Arc::new(api::ApiState::new()));
    // The web console calls the same routes in-process, sharing the
    // per-node API state (the failed-login counters).
    let console = console::routes(
        documented
            .clone()
            .layer(shared.clone())
            .with_state(state.clone()),
    )
    .route_layer(middleware::from_fn_with_state(
        (app.clone(), Role::Auth),
        require_role,
    ));
    let embedded = state.authority.clone().map(authority::router);
    let node = Router::new()
        .merge(internal)
        .merge(downloads)
        .merge(documented)
        .merge(console)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(shared)
        .layer(middleware::from_fn_with_state(app, track_http))
        .with_state(state);
    match embedded {
        Some(authority) => node.merge(authority),
        None => node,
    }
}

/// The OpenAPI document's fixed part: title, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn node API",
        description = "Errors are JSON objects with a stable `code` (match on it) and a human \
                       `message`. Another account's vault, snapshot, device or job answers \
                       exactly like a missing one (404 not_found)."
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_string()))
                    .build(),
            )
        };
        components.add_security_scheme("device", bearer("A device token from POST /api/v1/login"));
        components.add_security_scheme("admin", bearer("The node's admin.token"));
        components.add_security_scheme(
            "operator",
            bearer("An operator's session token (POST /api/v1/operators/login)"),
        );
        components.add_security_scheme(
            "cluster_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::token::CLUSTER_SECRET_HEADER,
                "The cluster secret (DATA_DIR/cluster.secret), as nodes present it",
            ))),
        );
    }
}

/// Every documented route of the node — the client API, the admin and
/// cluster API, the chunk routes and the health endpoints — with its
/// OpenAPI description.
///
/// `app` is needed only to guard the join route (cluster secret or admin
/// token); `None` builds the same routes and document unguarded (for
/// [`document`], never served).
fn documented(app: Option<Arc<Cluster>>) -> OpenApiRouter<HttpState> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let auth_api = api::routes().merge(control::routes());
    let auth_api = match &app {
        Some(app) => auth_api.route_layer(middleware::from_fn_with_state(
            (app.clone(), Role::Auth),
            require_role,
        )),
        None => auth_api,
    };
    OpenApiRouter::with_openapi(doc)
        .merge(ops::routes(app))
        .merge(auth_api)
        .merge(chunks::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
}

/// Lets a request through to a route of `role` only on a node that runs
/// it; elsewhere answers `503 role_not_served` naming the nodes that do.
/// The routes stay in the router (and the OpenAPI document) on every node,
/// so the answer is this JSON error and never a bare 404.
async fn require_role(
    State((app, role)): State<(Arc<Cluster>, Role)>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if app.identity.has(role) {
        return next.run(request).await;
    }
    let serving = app.serving(role);
    ApiError::RoleNotServed(crate::roles::not_served(app.id(), role, &serving)).into_response()
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    documented(None).into_openapi()
}

/// The `route` label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Counts and times every request by route template, method (a fixed set,
/// [`crate::cluster::metrics::method_label`]) and status.
async fn track_http(
    State(app): State<Arc<Cluster>>,
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
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `/api/v1` route must go through `routes!` (documented); a
    /// plain axum `route` call on an `/api/v1` path anywhere in the node's sources would be
    /// routed but missing from the OpenAPI document.
    #[test]
    fn no_undocumented_api_routes_in_the_sources() {
        fn scan(dir: &std::path::Path, bad: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    scan(&path, bad);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read");
                    let needle = concat!(".route(", "\"/api/v1");
                    if text.contains(needle) {
                        bad.push(path.display().to_string());
                    }
                }
            }
        }
        let mut bad = Vec::new();
        scan(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut bad,
        );
        assert!(bad.is_empty(), "undocumented /api/v1 routes in {bad:?}");
    }

    #[test]
    fn document_covers_the_contract_and_no_internal_paths() {
        let json = serde_json::to_value(document()).expect("json");
        let schemes = &json["components"]["securitySchemes"];
        assert_eq!(schemes["device"]["scheme"], "bearer");
        assert_eq!(schemes["admin"]["scheme"], "bearer");
        let paths: Vec<&String> = json["paths"].as_object().expect("paths").keys().collect();
        for p in &paths {
            assert!(
                p.starts_with("/api/v1/")
                    || ["/healthz", "/readyz", "/metrics"].contains(&p.as_str()),
                "unexpected documented path {p}"
            );
        }
        // The routes table of cairn_proto::api (chunk routes come with the
        // storage role).
        for p in [
            "/api/v1/login/params",
            "/api/v1/login",
            "/api/v1/account",
            "/api/v1/account/password",
            "/api/v1/devices",
            "/api/v1/devices/{id}/rename",
            "/api/v1/devices/{id}/revoke",
            "/api/v1/tiers",
            "/api/v1/vaults",
            "/api/v1/vaults/{id}",
            "/api/v1/vaults/{id}/snapshots",
            "/api/v1/vaults/{id}/snapshots/{sid}",
            "/api/v1/items",
            "/api/v1/items/{name}",
            "/api/v1/jobs",
            "/api/v1/jobs/{id}/finish",
            "/api/v1/admin/jobs",
            "/api/v1/admin/devices",
            "/api/v1/admin/devices/{id}/revoke",
            "/api/v1/openapi.json",
        ] {
            assert!(paths.iter().any(|d| d.as_str() == p), "{p} not documented");
        }
        // Types of the same name in proto and wire keep separate schemas.
        let items = |path: &str| {
            json["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["items"]["$ref"]
                .clone()
        };
        assert_eq!(items("/api/v1/tiers"), "#/components/schemas/TierInfo");
        assert_eq!(
            items("/api/v1/admin/tiers"),
            "#/components/schemas/AdminTierInfo"
        );
        assert!(json["components"]["schemas"]["AdminKdf"].is_object());
        assert!(json["components"]["schemas"]["TierInfo"]["properties"]["quota_bytes"].is_object());
        // Every operation names who may call it (or is public on purpose).
        let public = [
            "/api/v1/login/params",
            "/api/v1/login",
            "/api/v1/operators/login/params",
            "/api/v1/operators/login",
            // Proves the operator's password (and current code) in its body, like a login.
            "/api/v1/operators/totp",
            "/api/v1/openapi.json",
            "/api/v1/cluster/status",
            "/healthz",
            "/readyz",
            "/metrics",
        ];
        for (path, item) in json["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let secured = op
                    .get("security")
                    .and_then(|s| s.as_array())
                    .is_some_and(|s| !s.is_empty());
                assert_eq!(
                    secured,
                    !public.contains(&path.as_str()),
                    "{method} {path} security"
                );
            }
        }
    }
}
