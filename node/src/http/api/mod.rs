//! The JSON API of the auth role (`/api/v1`): the device API (the contract
//! in [`cairn_proto::api`]) and the admin API ([`cairn_proto::admin`]).
//!
//! One module per resource: [`login`], [`account`], [`devices`],
//! [`vaults`] (with tiers and shared commands), [`snapshots`], [`items`],
//! [`jobs`], [`schedules`], [`retention`], [`operators`] (the console's
//! operators, their logins, organizations and the audit trail),
//! [`dispatch`] (remote control: jobs and listings dispatched to a
//! connected device, a job's live events), and
//! [`admin`] (the admin-token routes: users, tiers, and every account's
//! devices and jobs), and [`license`] (the admin route setting the
//! cluster's license, and the `license_expired` check). The
//! handlers are thin: check who asks ([`DeviceAuth`](crate::http::auth::DeviceAuth)
//! or [`Admin`](crate::http::auth::Admin)), check ownership against the
//! replicated state (another account's record answers `404 not_found`
//! exactly like a missing one), propose an event through
//! [`Cluster::propose_request`] under the request's `Idempotency-Key`, and
//! answer from the state the node has then applied.
//!
//! # Adding a route
//!
//! Routes and the OpenAPI document are built by one
//! [`OpenApiRouter`]: a handler is routed only through `routes!`, which
//! also documents it, so the two cannot drift apart (a unit test of
//! [`crate::http`] rejects plain axum `route` calls on `/api/v1` paths, and `node/tests/authz.rs`
//! takes every documented path and fails for one without a row).
//!
//! 1. Write the handler with a `#[utoipa::path(...)]` attribute naming the
//!    method, the full path (`/api/v1/...`, axum's `{param}` syntax), the
//!    `security` (`("device" = [])` or `("admin" = [])`), request body,
//!    params and responses (errors as `ErrorBody`). Take JSON bodies with
//!    [`ApiJson`] and path parameters with [`ApiPath`] so malformed input
//!    and oversized bodies answer a JSON error with a stable code.
//! 2. Add `.routes(routes!(handler_a, handler_b))` to your module's
//!    `routes()` (handlers of one path in one `routes!`), and merge that
//!    into [`routes`] below (the router takes it from there).
//! 3. Body limits: the router puts [`JSON_BODY_LIMIT`](super::JSON_BODY_LIMIT) on everything;
//!    a route that takes more (chunk uploads) adds its own
//!    `.layer(DefaultBodyLimit::max(N))` on its own `OpenApiRouter` before
//!    the merge — the innermost limit wins.
//! 4. Add a row for each new path and method to the table in
//!    `node/tests/authz.rs`.

pub mod account;
pub mod admin;
pub mod devices;
pub mod dispatch;
pub mod items;
pub mod jobs;
pub mod license;
pub mod login;
pub mod operators;
pub mod retention;
pub mod schedules;
pub mod snapshots;
pub mod vaults;

use std::sync::{Arc, Mutex};

use axum::Extension;
use cairn_consensus::event::KdfParams;
use cairn_consensus::{Event, Outcome, Request as Proposal};
use cairn_proto::api::Kdf;
use utoipa_axum::router::OpenApiRouter;

pub use super::extract::{ApiJson, ApiPath, IdempotencyKey, Peer};
use super::ratelimit::{Limits, LoginLimiter};
use super::{ApiError, HttpState};
use crate::cluster::Cluster;
use crate::control::Connections;

/// The routes of the device and admin API.
pub fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .merge(login::routes())
        .merge(account::routes())
        .merge(devices::routes())
        .merge(vaults::routes())
        .merge(snapshots::routes())
        .merge(items::routes())
        .merge(jobs::routes())
        .merge(schedules::routes())
        .merge(retention::routes())
        .merge(admin::routes())
        .merge(license::routes())
        .merge(operators::routes())
        .merge(dispatch::routes())
}

/// Per-node state of the API beyond [`Cluster`]: the failed-login counters
/// (per node by design, see [`crate::http::ratelimit`]) and the devices
/// connected to this node (remote control).
pub struct ApiState {
    /// Failed logins per account name and per address.
    pub limiter: Mutex<LoginLimiter>,
    /// The live device connections this node holds.
    pub connections: Connections,
}

impl ApiState {
    /// Fresh counters with the default limits.
    pub fn new() -> Self {
        ApiState {
            limiter: Mutex::new(LoginLimiter::new(Limits::default())),
            connections: Connections::new(),
        }
    }
}

impl Default for ApiState {
    fn default() -> Self {
        Self::new()
    }
}

/// The per-node API state (installed by [`super::router`]).
pub type Shared = Extension<Arc<ApiState>>;

/// Proposes `event` under the request's [`IdempotencyKey`] and maps a
/// rejection to its API error. When it returns Ok, this node has applied
/// the event.
///
/// # Errors
///
/// The state machine's rejection, or no leader.
pub async fn propose(app: &Cluster, key: &IdempotencyKey, event: Event) -> Result<(), ApiError> {
    let request_id = key.request_id();
    applied(
        app.propose_request(Proposal { request_id, event }).await?,
        (),
    )
}

/// Base URLs of every Raft member (voters and learners), for failover.
pub fn cluster_nodes(app: &Cluster) -> Vec<String> {
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

/// `ok` if the event was applied, else its rejection as an API error.
///
/// # Errors
///
/// [`ApiError::Rejected`] with the state machine's rejection.
pub fn applied<T>(outcome: Outcome, ok: T) -> Result<T, ApiError> {
    match outcome {
        Outcome::Applied => Ok(ok),
        Outcome::Rejected(r) => Err(ApiError::Rejected(r)),
        Outcome::NoOp => Err(ApiError::Internal("event produced no outcome".into())),
    }
}

/// The server-side hash of a login key: the state stores this, never the
/// key. A plain (fast) hash is enough because the login key is itself the
/// output of argon2id, not a guessable password.
pub fn login_key_hash(login_key: &[u8]) -> Vec<u8> {
    blake3::derive_key("cairn 2026 login-key hash v1", login_key).to_vec()
}
