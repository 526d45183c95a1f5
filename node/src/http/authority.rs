//! The license authority's routes (`cairnd license-authority serve`, and
//! the dev cluster's embedded authority): grants and renewals for
//! clusters, serial issuance, listing and relaxing for the operator (its
//! token, `operator.token` of the authority's data directory, as
//! `Authorization: Bearer`). The contract is [`crate::license::wire`]; the
//! decisions are [`crate::license::policy`]'s, the state
//! [`AuthorityStore`]'s. Not part of the node's OpenAPI document: it is a
//! separate service that happens to share the binary.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_proto::api::ErrorBody;
use serde::Serialize;

use super::extract::ApiJson;
use crate::cluster::now;
use crate::license::policy::Refusal;
use crate::license::store::{AuthorityError, AuthorityStore};
use crate::license::wire::{
    self, code, AcquireRequest, CreateSerial, RelaxRequest, Relaxed, RenewRequest,
};
use crate::token::AdminToken;

/// What the authority's handlers share.
#[derive(Clone)]
pub struct AuthorityState {
    /// The serials.
    pub store: Arc<AuthorityStore>,
    /// The operator's token (hash).
    pub operator: AdminToken,
    /// The length of every grant and renewal.
    pub lease_ms: u64,
}

/// The authority's router.
pub fn router(state: AuthorityState) -> Router {
    Router::new()
        .route(wire::ACQUIRE, post(acquire))
        .route(wire::RENEW, post(renew))
        .route(wire::SERIALS, get(list).post(create))
        .route(wire::RELAX, post(relax))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = ErrorBody {
        code: code.into(),
        message,
    };
    (status, Json(body)).into_response()
}

fn failed(e: AuthorityError) -> Response {
    let message = e.to_string();
    match e {
        AuthorityError::UnknownSerial => {
            error(StatusCode::NOT_FOUND, code::UNKNOWN_SERIAL, message)
        }
        AuthorityError::Refused(Refusal::Held { .. }) => {
            error(StatusCode::CONFLICT, code::LEASE_HELD, message)
        }
        AuthorityError::Refused(Refusal::StaleToken { .. }) => {
            error(StatusCode::CONFLICT, code::STALE_TOKEN, message)
        }
        AuthorityError::Refused(Refusal::NotHeld) => {
            error(StatusCode::CONFLICT, code::NOT_HELD, message)
        }
        AuthorityError::Store(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
    }
}

/// Runs a store operation off the async threads (RocksDB syncs).
async fn blocking<T: Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthorityError> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

fn is_operator(state: &AuthorityState, headers: &HeaderMap) -> bool {
    super::auth::bearer(headers).is_some_and(|t| state.operator.verify(t))
}

fn unauthorized() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        cairn_proto::api::code::UNAUTHORIZED,
        "the authority's operator token is required".into(),
    )
}

async fn acquire(
    State(s): State<AuthorityState>,
    ApiJson(req): ApiJson<AcquireRequest>,
) -> Response {
    let lease_ms = s.lease_ms;
    blocking(move || {
        s.store.acquire(
            &req.serial,
            &req.cluster_id,
            req.telemetry,
            now().0,
            lease_ms,
        )
    })
    .await
}

async fn renew(State(s): State<AuthorityState>, ApiJson(req): ApiJson<RenewRequest>) -> Response {
    let lease_ms = s.lease_ms;
    blocking(move || {
        s.store.renew(
            &req.serial,
            &req.cluster_id,
            req.fencing_token,
            req.telemetry,
            now().0,
            lease_ms,
        )
    })
    .await
}

async fn list(State(s): State<AuthorityState>, headers: HeaderMap) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    blocking(move || s.store.list()).await
}

async fn create(
    State(s): State<AuthorityState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateSerial>,
) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    if req.customer.trim().is_empty() || req.customer.len() > 255 {
        return error(
            StatusCode::BAD_REQUEST,
            cairn_proto::api::code::BAD_REQUEST,
            "the customer must be 1 to 255 characters".into(),
        );
    }
    blocking(move || s.store.create(&req.customer, now().0)).await
}

async fn relax(
    State(s): State<AuthorityState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RelaxRequest>,
) -> Response {
    if !is_operator(&s, &headers) {
        return unauthorized();
    }
    blocking(move || {
        s.store
            .relax(&req.serial, now().0)
            .map(|relaxed| Relaxed { relaxed })
    })
    .await
}
