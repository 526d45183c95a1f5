//! The client-facing JSON API of the auth role (`/api/v1`, the contract in
//! [`cairn_proto::api`]) and the router and OpenAPI document of every
//! public route, built together.
//!
//! One module per resource: [`login`], [`account`], [`devices`],
//! [`vaults`] (with tiers), [`snapshots`], [`items`], [`jobs`], and
//! [`admin`] (the admin-token routes that concern devices and jobs). The
//! handlers are thin: check who asks ([`DeviceAuth`](crate::auth::DeviceAuth)
//! or [`Admin`](crate::auth::Admin)), check ownership against the
//! replicated state (another account's record answers `404 not_found`
//! exactly like a missing one), propose an event through
//! [`App::propose_request`] under the request's `Idempotency-Key`, and
//! answer from the state the node has then applied.
//!
//! # Adding a route
//!
//! Routes and the OpenAPI document are built by one
//! [`OpenApiRouter`]: a handler is routed only through `routes!`, which
//! also documents it, so the two cannot drift apart (a unit test below
//! rejects plain axum `route` calls on `/api/v1` paths, and `node/tests/authz.rs`
//! takes every documented path and fails for one without a row).
//!
//! 1. Write the handler with a `#[utoipa::path(...)]` attribute naming the
//!    method, the full path (`/api/v1/...`, axum's `{param}` syntax), the
//!    `security` (`("device" = [])` or `("admin" = [])`), request body,
//!    params and responses (errors as [`ErrorBody`]). Take JSON bodies with
//!    [`ApiJson`] and path parameters with [`ApiPath`] so malformed input
//!    and oversized bodies answer a JSON error with a stable code.
//! 2. Add `.routes(routes!(handler_a, handler_b))` to your module's
//!    `routes()` (handlers of one path in one `routes!`), and merge that
//!    into [`documented`] below.
//! 3. Body limits: [`documented`] puts [`JSON_BODY_LIMIT`] on everything;
//!    a route that takes more (chunk uploads) adds its own
//!    `.layer(DefaultBodyLimit::max(N))` on its own `OpenApiRouter` before
//!    the merge — the innermost limit wins.
//! 4. Add a row for each new path and method to the table in
//!    `node/tests/authz.rs`.

pub mod account;
pub mod admin;
pub mod devices;
pub mod items;
pub mod jobs;
pub mod login;
pub mod snapshots;
pub mod vaults;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::{middleware, Extension, Json};
use cairn_consensus::event::KdfParams;
use cairn_consensus::{Event, Request as Proposal, RequestId};
use cairn_proto::api::{ErrorBody, Kdf};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::app::App;
use crate::error::ApiError;
use crate::ratelimit::{Limits, LoginLimiter};

/// Largest JSON request body of the API routes (1 MiB): the largest
/// legitimate one, a password change re-wrapping every vault's keys, is a
/// few KiB per vault.
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// Per-node state of the API beyond [`App`]: the failed-login counters
/// (per node by design, see [`crate::ratelimit`]).
pub struct ApiState {
    /// Failed logins per account name and per address.
    pub limiter: Mutex<LoginLimiter>,
}

impl ApiState {
    /// Fresh counters with the default limits.
    pub fn new() -> Self {
        ApiState {
            limiter: Mutex::new(LoginLimiter::new(Limits::default())),
        }
    }
}

impl Default for ApiState {
    fn default() -> Self {
        Self::new()
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
            "cluster_secret",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::token::CLUSTER_SECRET_HEADER,
                "The cluster secret (DATA_DIR/cluster.secret), as nodes present it",
            ))),
        );
    }
}

/// Every documented route of the node — the client API, the admin and
/// cluster API and the health endpoints — with its OpenAPI description.
/// The cluster-internal `/raft/*` bincode endpoints are routed separately
/// by [`crate::http::router`].
///
/// `app` is needed only to guard the join route (cluster secret or admin
/// token); `None` builds the same routes and document unguarded (for
/// [`document`], never served).
pub fn documented(app: Option<Arc<App>>) -> OpenApiRouter<Arc<App>> {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut join = OpenApiRouter::new().routes(utoipa_axum::routes!(crate::http::cluster_join));
    if let Some(app) = app {
        join = join.route_layer(middleware::from_fn_with_state(
            app,
            crate::http::join_authorized,
        ));
    }
    OpenApiRouter::with_openapi(doc)
        .merge(crate::http::routes())
        .merge(join)
        .merge(login::routes())
        .merge(account::routes())
        .merge(devices::routes())
        .merge(vaults::routes())
        .merge(snapshots::routes())
        .merge(items::routes())
        .merge(jobs::routes())
        .merge(admin::routes())
        .merge(crate::storage::http::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
}

/// The OpenAPI document served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    documented(None).into_openapi()
}

/// A JSON body whose rejections are API errors: `413 payload_too_large`
/// over the route's limit, `400 bad_request` for anything malformed.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!(
            "the request body is larger than this route accepts ({JSON_BODY_LIMIT} bytes for JSON)"
        ))
    } else {
        ApiError::BadRequest(r.body_text())
    }
}

/// Path parameters whose rejections are `400 bad_request` JSON errors.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|r| ApiError::BadRequest(r.body_text()))
    }
}

/// The client's address, when the server was started with connect info
/// (always, by [`crate::server`]).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<crate::server::ClientAddr>>()
                .map(|c| c.0 .0),
        ))
    }
}

/// The per-node API state (installed by [`crate::http::router`]).
pub type Shared = Extension<Arc<ApiState>>;

/// The optional `Idempotency-Key` header of every write: the request id
/// under which the write is proposed, so a retry with the same key is
/// applied at most once (the state machine answers it with the first
/// outcome, through failovers too). Malformed keys answer `400`.
#[derive(Debug, Clone, Copy, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKey {
    /// 32 hex digits chosen by the client; a retry with the same key is
    /// applied at most once and answers like the first attempt.
    #[param(rename = "Idempotency-Key")]
    pub idempotency_key: Option<RequestId>,
}

impl IdempotencyKey {
    /// The request id: the client's key, or a fresh random one.
    pub fn request_id(&self) -> RequestId {
        self.idempotency_key.unwrap_or_else(RequestId::random)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let present = parts.headers.contains_key(crate::http::IDEMPOTENCY_KEY);
        let request_id = crate::http::request_id(&parts.headers)?;
        Ok(IdempotencyKey {
            idempotency_key: present.then_some(request_id),
        })
    }
}

/// Proposes `event` under the request's [`IdempotencyKey`] and maps a
/// rejection to its API error. When it returns Ok, this node has applied
/// the event.
///
/// # Errors
///
/// The state machine's rejection, or no leader.
pub async fn propose(app: &App, key: &IdempotencyKey, event: Event) -> Result<(), ApiError> {
    let request_id = key.request_id();
    crate::http::applied(
        app.propose_request(Proposal { request_id, event }).await?,
        (),
    )
}

/// Base URLs of every Raft member (voters and learners), for failover.
pub fn cluster_nodes(app: &App) -> Vec<String> {
    app.raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(_, n)| n.http_addr.clone())
        .collect()
}

/// The API form of stored KDF parameters.
pub fn kdf_info(k: &KdfParams) -> Kdf {
    Kdf {
        memory_kib: k.memory_kib,
        iterations: k.iterations,
        parallelism: k.parallelism,
        salt: k.salt.clone(),
    }
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
