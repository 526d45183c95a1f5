//! Extractors the handlers are built from, each rejecting with a JSON
//! [`ApiError`] (a stable code) instead of axum's plain-text answers: JSON
//! bodies ([`ApiJson`]), path parameters ([`ApiPath`]), the client's
//! address ([`Peer`]) and the `Idempotency-Key` of a write
//! ([`IdempotencyKey`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use cairn_consensus::RequestId;
use serde::de::DeserializeOwned;

use super::{ApiError, JSON_BODY_LIMIT};

/// The client's address as the API handlers see it (axum `ConnectInfo`),
/// for plain and TLS connections alike ([`super::serve`] inserts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

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
/// (always, by [`super::serve`]).
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<ClientAddr>>()
                .map(|c| c.0 .0),
        ))
    }
}

/// Header carrying a client-chosen request id (32 hex digits). A client
/// that retries a write with the same key gets the first outcome back
/// instead of applying it twice, through failovers too (the state machine
/// deduplicates by request id).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The request id of a write: its `Idempotency-Key`, or a fresh one.
pub fn request_id(headers: &HeaderMap) -> Result<RequestId, ApiError> {
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
        let present = parts.headers.contains_key(IDEMPOTENCY_KEY);
        let request_id = request_id(&parts.headers)?;
        Ok(IdempotencyKey {
            idempotency_key: present.then_some(request_id),
        })
    }
}
