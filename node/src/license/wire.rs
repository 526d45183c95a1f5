//! The license authority's HTTP contract (JSON): paths and bodies shared by
//! its server ([`crate::http::authority`]), the cluster's lease worker
//! ([`super::client`]) and the operator commands ([`crate::client`]).
//! Errors are [`ErrorBody`](cairn_proto::api::ErrorBody) with the codes in
//! [`code`].

use serde::{Deserialize, Serialize};

use super::policy::{SerialRecord, Telemetry};

/// `POST`: a cluster asks for a serial's lease ([`AcquireRequest`] →
/// [`Granted`](super::policy::Granted)).
pub const ACQUIRE: &str = "/license/v1/acquire";
/// `POST`: the holder renews ([`RenewRequest`] → [`Granted`](super::policy::Granted)).
pub const RENEW: &str = "/license/v1/renew";
/// `GET` (operator): every serial with holder, telemetry and history;
/// `POST` (operator): issue a serial ([`CreateSerial`] → [`SerialRecord`]).
pub const SERIALS: &str = "/license/v1/serials";
/// `POST` (operator): release a serial's lease early ([`RelaxRequest`] → [`Relaxed`]).
pub const RELAX: &str = "/license/v1/relax";

/// Stable error codes of the authority.
pub mod code {
    /// No such serial.
    pub const UNKNOWN_SERIAL: &str = "unknown_serial";
    /// Another cluster holds the serial.
    pub const LEASE_HELD: &str = "lease_held";
    /// A renewal under a token that is not the current lease's.
    pub const STALE_TOKEN: &str = "stale_token";
    /// The lease ran out or was relaxed: acquire again.
    pub const NOT_HELD: &str = "not_held";
}

/// A cluster asks for the lease of `serial`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcquireRequest {
    /// The serial (a secret: only over TLS off loopback).
    pub serial: String,
    /// The asking cluster's id.
    pub cluster_id: String,
    /// The cluster's counts, kept by the authority.
    pub telemetry: Telemetry,
}

/// The holder renews its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The serial.
    pub serial: String,
    /// The holder's cluster id.
    pub cluster_id: String,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// The cluster's counts.
    pub telemetry: Telemetry,
}

/// Issue a serial to a customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSerial {
    /// Who it is for.
    pub customer: String,
}

/// Release a serial's lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelaxRequest {
    /// The serial.
    pub serial: String,
}

/// The answer to a relax.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Relaxed {
    /// Whether a running lease ended.
    pub relaxed: bool,
}

/// What the serial listing answers.
pub type SerialList = Vec<SerialRecord>;
