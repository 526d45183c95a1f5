//! The cluster's side of the authority's contract: the lease worker asks
//! for and renews the lease over HTTP(S) ([`super::wire`]), with a short
//! timeout so an unreachable authority costs one tick, not the lease.

use std::time::Duration;

use cairn_proto::api::ErrorBody;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::policy::{Granted, Telemetry};
use super::wire::{self, AcquireRequest, RenewRequest};
use crate::error::describe;

/// How long one call to the authority may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call to the authority failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// It could not be reached (or answered something unreadable).
    #[error("license authority unreachable: {0}")]
    Unreachable(String),
    /// It refused, with a stable code ([`wire::code`]).
    #[error("license authority refused: {message} ({code})")]
    Refused {
        /// The code.
        code: String,
        /// Its explanation.
        message: String,
    },
}

impl CallError {
    /// Whether the authority says the lease is gone (ran out, relaxed, or
    /// another token): the cluster records its expiry and acquires again.
    pub fn lease_gone(&self) -> bool {
        matches!(self, CallError::Refused { code, .. }
            if code == wire::code::NOT_HELD || code == wire::code::STALE_TOKEN)
    }
}

/// Calls one authority.
pub struct AuthorityClient<'a> {
    http: &'a reqwest::Client,
    base: &'a str,
}

impl<'a> AuthorityClient<'a> {
    /// A client for the authority at `base`, over the node's HTTP client
    /// (which verifies certificates like every peer connection).
    pub fn new(http: &'a reqwest::Client, base: &'a str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/'),
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let unreachable = |e: reqwest::Error| CallError::Unreachable(describe(&e));
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(unreachable);
        }
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) if status.is_client_error() => Err(CallError::Refused {
                code: b.code,
                message: b.message,
            }),
            _ => Err(CallError::Unreachable(format!("HTTP {status}: {text}"))),
        }
    }

    /// Asks for the lease of `serial`.
    ///
    /// # Errors
    ///
    /// See [`CallError`].
    pub async fn acquire(
        &self,
        serial: &str,
        cluster_id: &str,
        telemetry: Telemetry,
    ) -> Result<Granted, CallError> {
        let req = AcquireRequest {
            serial: serial.to_owned(),
            cluster_id: cluster_id.to_owned(),
            telemetry,
        };
        self.post(wire::ACQUIRE, &req).await
    }

    /// Renews the lease with `fencing_token`.
    ///
    /// # Errors
    ///
    /// See [`CallError`].
    pub async fn renew(
        &self,
        serial: &str,
        cluster_id: &str,
        fencing_token: u64,
        telemetry: Telemetry,
    ) -> Result<Granted, CallError> {
        let req = RenewRequest {
            serial: serial.to_owned(),
            cluster_id: cluster_id.to_owned(),
            fencing_token,
            telemetry,
        };
        self.post(wire::RENEW, &req).await
    }
}
