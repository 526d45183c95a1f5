//! The HTTP answer of a failure: [`ApiError`], rendered as
//! `{"code": "...", "message": "..."}` ([`ErrorBody`]) with a fitting
//! status. The `code` is stable (clients and tests match on it); the
//! message is for humans and may change. Rejections from the state machine
//! map one to one to codes ([`rejection_code`]), and every
//! [`ClusterError`] to the variant of the same name.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_consensus::Rejection;

use crate::cluster::{ClusterError, ForwardedError};

use cairn_proto::api::code;
pub use cairn_proto::api::ErrorBody;

/// An API failure, rendered as [`ErrorBody`] with a fitting HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, unknown, revoked or invalidated bearer token.
    #[error("missing or invalid token")]
    Unauthorized,
    /// A valid token of the wrong kind for this route (a device token on
    /// an admin route, the admin token on a device route).
    #[error("{0}")]
    Forbidden(String),
    /// Unknown user or wrong login key: one answer for both.
    #[error("login failed: unknown user or wrong password")]
    LoginFailed,
    /// Too many failed logins; retry after the given number of seconds.
    #[error("too many failed logins; retry in {0} s")]
    RateLimited(u64),
    /// The device has too many chunk transfers in flight; retry after the
    /// given number of seconds (`429 rate_limited`).
    #[error("{message}")]
    DeviceBusy {
        /// What is over its limit.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// A chunk upload without `Content-Length` (`411 length_required`):
    /// the quota is checked before the body is read.
    #[error("{0}")]
    LengthRequired(String),
    /// The request body is over the route's limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The vault's tier quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Fewer than W replicas of a write could be made durable.
    #[error("{0}")]
    InsufficientReplicas(String),
    /// Not one copy of a write could be made: every node of the vault's
    /// storage pool is down (`503 pool_unavailable`).
    #[error("{0}")]
    PoolUnavailable(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The cluster is read-only for want of a license lease
    /// (`403 license_expired`); the message tells the operator what to do.
    #[error("the cluster is read-only: {0}")]
    LicenseExpired(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The state machine refused the event.
    #[error("{0}")]
    Rejected(Rejection),
    /// No leader right now, or it could not be reached; retry.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
    /// A backup is running on the vault (or ran during the prune), so
    /// chunks are not deleted now.
    #[error("{0}")]
    Busy(String),
    /// Something that should not fail did.
    #[error("internal error: {0}")]
    Internal(String),
    /// The leader's answer to a forwarded request.
    #[error("{}", .0.body.message)]
    Forwarded(ForwardedError),
    /// A join the leader will not make: the node does not answer at its
    /// address as the node it claims to be (adding it would cost the
    /// cluster a voter that never votes).
    #[error("{0}")]
    JoinRefused(String),
    /// The device holds no live connection, or it went away before it
    /// answered (`409 device_offline`).
    #[error("{0}")]
    DeviceOffline(String),
    /// The device refused or failed a dispatched command
    /// (`422 device_refused`; the message carries the device's code).
    #[error("{0}")]
    DeviceRefused(String),
    /// This node does not run the route's role; the message names the
    /// nodes that do (`503 role_not_served`, so clients try another node).
    #[error("{0}")]
    RoleNotServed(String),
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unavailable(m) => ApiError::Unavailable(m),
            ClusterError::Rejected(r) => ApiError::Rejected(r),
            ClusterError::BadRequest(m) => ApiError::BadRequest(m),
            ClusterError::NotFound(m) => ApiError::NotFound(m),
            ClusterError::JoinRefused(m) => ApiError::JoinRefused(m),
            ClusterError::Forwarded(f) => ApiError::Forwarded(f),
            ClusterError::Raft(m) | ClusterError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// The stable API code of a state-machine rejection.
pub fn rejection_code(r: &Rejection) -> &'static str {
    match r {
        Rejection::UnknownAccount(_) => "unknown_account",
        Rejection::UnknownDevice(_) => "unknown_device",
        Rejection::UnknownVault(_) => "unknown_vault",
        Rejection::UnknownSnapshot(_) => "unknown_snapshot",
        Rejection::UnknownJob(_) => "unknown_job",
        Rejection::UnknownTier(_) => "unknown_tier",
        Rejection::UnknownStorageNode(_) => "unknown_storage_node",
        Rejection::DuplicateId { .. } => "duplicate_id",
        Rejection::NameTaken { .. } => "name_taken",
        Rejection::InvalidName { .. } => "invalid_name",
        Rejection::WrongOwner { .. } => "wrong_owner",
        Rejection::DeviceRevoked(_) => "device_revoked",
        Rejection::AccountHasVaults { .. } => "account_has_vaults",
        Rejection::RewrapMismatch { .. } => "rewrap_mismatch",
        Rejection::TierNotRequestable(_) => "tier_not_requestable",
        Rejection::InvalidReplicas(_) => "invalid_replicas",
        Rejection::JobAlreadyFinished(_) => "job_already_finished",
        Rejection::TimeTravel { .. } => "time_travel",
        Rejection::StorageNodeState { .. } => "storage_node_state",
        Rejection::InvalidAddress(_) => "invalid_address",
        Rejection::StaleFencingToken { .. } => "stale_fencing_token",
        Rejection::LeaseMismatch { .. } => "lease_mismatch",
        Rejection::InvalidItem(_) => "invalid_item",
        Rejection::UnknownItem { .. } => "unknown_item",
        Rejection::TooLong { .. } => "too_long",
        Rejection::InvalidQuota => "invalid_quota",
        Rejection::InvalidSecret(_) => "invalid_secret",
        Rejection::SecretAlreadySet => "secret_already_set",
        Rejection::JobNotRunning { .. } => "job_not_running",
        Rejection::TooLarge { .. } => "too_large",
        Rejection::LimitReached { .. } => "limit_reached",
        Rejection::InvalidCommand(_) => "invalid_command",
        Rejection::InvalidSchedule(_) => "invalid_schedule",
        Rejection::UnknownSchedule { .. } => "unknown_schedule",
        Rejection::InvalidRetention(_) => "invalid_retention",
        Rejection::NoRetention { .. } => "no_retention",
        Rejection::StatusReserved(_) => "status_reserved",
        Rejection::SilenceTooShort { .. } => "silence_too_short",
        Rejection::InvalidLicense(_) => "invalid_license",
        Rejection::InvalidProfile(_) => "invalid_profile",
        Rejection::TierUnsatisfiable { .. } => "tier_unsatisfiable",
        Rejection::UnknownOperator(_) => "unknown_operator",
        Rejection::UnknownOrg(_) => "unknown_org",
        Rejection::NotPermitted { .. } => "not_permitted",
        Rejection::InvalidOperator(_) => "invalid_operator",
        Rejection::UnknownSession(_) => "unknown_session",
        Rejection::AccountDisabled { .. } => code::ACCOUNT_DISABLED,
        Rejection::TotpReplayed { .. } => "totp_replayed",
        Rejection::NestedBatch => "nested_batch",
    }
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &str {
        match self {
            ApiError::Unauthorized => code::UNAUTHORIZED,
            ApiError::Forbidden(_) => code::FORBIDDEN,
            ApiError::LoginFailed => code::LOGIN_FAILED,
            ApiError::RateLimited(_) | ApiError::DeviceBusy { .. } => code::RATE_LIMITED,
            ApiError::LengthRequired(_) => "length_required",
            ApiError::PayloadTooLarge(_) => code::PAYLOAD_TOO_LARGE,
            ApiError::QuotaExceeded(_) => code::QUOTA_EXCEEDED,
            ApiError::InsufficientReplicas(_) => code::INSUFFICIENT_REPLICAS,
            ApiError::PoolUnavailable(_) => code::POOL_UNAVAILABLE,
            ApiError::BadRequest(_) => code::BAD_REQUEST,
            ApiError::NotFound(_) => code::NOT_FOUND,
            ApiError::Forwarded(f) => &f.body.code,
            ApiError::Rejected(r) => rejection_code(r),
            ApiError::Unavailable(_) => code::UNAVAILABLE,
            ApiError::Busy(_) => code::BUSY,
            ApiError::Internal(_) => "internal",
            ApiError::JoinRefused(_) => "join_refused",
            ApiError::LicenseExpired(_) => code::LICENSE_EXPIRED,
            ApiError::RoleNotServed(_) => code::ROLE_NOT_SERVED,
            ApiError::DeviceOffline(_) => code::DEVICE_OFFLINE,
            ApiError::DeviceRefused(_) => code::DEVICE_REFUSED,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::LoginFailed => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) | ApiError::DeviceBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::QuotaExceeded(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::InsufficientReplicas(_) | ApiError::PoolUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Forwarded(f) => {
                StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Rejected(Rejection::NameTaken { .. } | Rejection::DuplicateId { .. }) => {
                StatusCode::CONFLICT
            }
            ApiError::Rejected(
                Rejection::UnknownAccount(_)
                | Rejection::UnknownDevice(_)
                | Rejection::UnknownVault(_)
                | Rejection::UnknownSnapshot(_)
                | Rejection::UnknownJob(_)
                | Rejection::UnknownTier(_)
                | Rejection::UnknownStorageNode(_)
                | Rejection::UnknownItem { .. }
                | Rejection::UnknownSchedule { .. }
                | Rejection::NoRetention { .. },
            ) => StatusCode::NOT_FOUND,
            ApiError::Rejected(
                Rejection::WrongOwner { .. }
                | Rejection::NotPermitted { .. }
                | Rejection::AccountDisabled { .. },
            ) => StatusCode::FORBIDDEN,
            ApiError::Rejected(
                Rejection::JobNotRunning { .. } | Rejection::LimitReached { .. },
            ) => StatusCode::CONFLICT,
            ApiError::Rejected(Rejection::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::JoinRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::LicenseExpired(_) => StatusCode::FORBIDDEN,
            ApiError::RoleNotServed(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::DeviceOffline(_) => StatusCode::CONFLICT,
            ApiError::DeviceRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

impl ApiError {
    /// The error as the leader sends it back to a forwarding node.
    pub fn to_forwarded(&self) -> ForwardedError {
        ForwardedError {
            status: self.status().as_u16(),
            body: self.body(),
        }
    }

    fn body(&self) -> ErrorBody {
        match self {
            ApiError::Forwarded(f) => f.body.clone(),
            _ => ErrorBody {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(m) = &self {
            tracing::error!(message = %m, "internal API error");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::RateLimited(seconds)
        | ApiError::DeviceBusy {
            retry_after: seconds,
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(ApiError::Unauthorized.code(), "unauthorized");
        let r = Rejection::NameTaken {
            kind: cairn_consensus::RecordKind::Account,
            name: "a".into(),
        };
        assert_eq!(ApiError::Rejected(r.clone()).code(), "name_taken");
        assert_eq!(ApiError::Rejected(r).status(), StatusCode::CONFLICT);
    }

    #[test]
    fn forwarded_errors_keep_status_and_code() {
        let f = ApiError::NotFound("node 9 is not a member".into()).to_forwarded();
        assert_eq!(f.status, 404);
        assert!(!f.is_unavailable());
        let e = ApiError::Forwarded(f.clone());
        assert_eq!(e.code(), "not_found");
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.to_forwarded(), f);
        assert!(ApiError::Unavailable("x".into())
            .to_forwarded()
            .is_unavailable());
    }
}
