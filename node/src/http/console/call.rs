//! The console calls the `/api/v1` routes in-process: every page reads,
//! and every form acts, through the same router, handlers and
//! authorization as a script with the same token would (API first: the
//! console has no action of its own). A call is a request with the
//! session's bearer token and the browser's address, sent to the API
//! router with tower's `oneshot`; its JSON answer is decoded into the
//! contract's types ([`cairn_proto`]), its error body kept for the page.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use cairn_proto::api::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

use crate::http::{ClientAddr, JSON_BODY_LIMIT};

/// The API router the console calls (the node's documented routes with
/// their state and per-node API state).
#[derive(Clone)]
pub struct Api(pub Router);

/// A refused or failed API call: the status and the API's error body.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The API's status.
    pub status: StatusCode,
    /// Its error (stable code, message).
    pub body: ErrorBody,
}

impl Refused {
    /// A form the console itself refuses before calling the API.
    pub fn bad_request(message: &str) -> Self {
        Refused {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                code: "bad_request".into(),
                message: message.into(),
            },
        }
    }

    fn internal(message: String) -> Self {
        Refused {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: ErrorBody {
                code: "internal".into(),
                message,
            },
        }
    }
}

/// One caller of the API: a session's token (if any) and the browser's
/// address.
pub struct Caller<'a> {
    /// The router.
    pub api: &'a Api,
    /// The bearer token, if signed in.
    pub token: Option<&'a str>,
    /// The browser's address (rate limits, the audit trail).
    pub peer: Option<SocketAddr>,
}

impl Caller<'_> {
    /// `GET path`, decoded.
    ///
    /// # Errors
    ///
    /// The API's refusal, or an answer that does not decode.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refused> {
        let body = self.send(Method::GET, path, None).await?;
        decode(&body)
    }

    /// `POST path` with a JSON body, decoded.
    ///
    /// # Errors
    ///
    /// The API's refusal, or an answer that does not decode.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Refused> {
        let answer = self.post_only(path, body).await?;
        decode(&answer)
    }

    /// `POST path` with a JSON body, the answer ignored (a `204`).
    ///
    /// # Errors
    ///
    /// The API's refusal.
    pub async fn post_only<B: Serialize>(&self, path: &str, body: &B) -> Result<Vec<u8>, Refused> {
        let json = serde_json::to_vec(body).map_err(|e| Refused::internal(e.to_string()))?;
        self.send(Method::POST, path, Some(json)).await
    }

    /// `GET path` answered as it comes (an event stream): the API's own
    /// response, passed through unbuffered.
    pub async fn stream(&self, path: &str) -> axum::response::Response {
        match self.request(Method::GET, path, None) {
            Ok(req) => match self.api.0.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            },
            Err(r) => axum::response::IntoResponse::into_response((r.status, r.body.message)),
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Request<Body>, Refused> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if json.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(peer) = self.peer {
            req = req.extension(ConnectInfo(ClientAddr(peer)));
        }
        req.body(json.map_or_else(Body::empty, Body::from))
            .map_err(|e| Refused::internal(e.to_string()))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, Refused> {
        let req = self.request(method, path, json)?;
        let response = match self.api.0.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), JSON_BODY_LIMIT * 16)
            .await
            .map_err(|e| Refused::internal(e.to_string()))?
            .to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            code: "internal".into(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
        });
        Err(Refused { status, body })
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(bytes).map_err(|e| Refused::internal(format!("API answer: {e}")))
}
