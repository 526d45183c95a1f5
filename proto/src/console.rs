//! JSON bodies of the console's `/api/v1` routes: operators (admin
//! accounts kept in the replicated state), their logins and sessions,
//! organizations and the audit trail. Byte strings are hex.
//!
//! An operator's password never reaches the server, like a user's: the
//! client asks for the operator's KDF parameters, derives the login key
//! with argon2id ([`crate::kdf`]) and sends only that; the server keeps a
//! hash of it.

use serde::{Deserialize, Serialize};

use crate::admin::Kdf;

/// `POST /api/v1/admin/operators`: create an operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateOperator {
    /// Login name.
    pub name: String,
    /// `cluster-admin`, `org-admin` or `read-only`.
    pub role: String,
    /// The organization: required for an org admin, optional for
    /// read-only (none: every organization), refused for a cluster admin.
    #[serde(default)]
    pub org: Option<String>,
    /// argon2id parameters and salt the login key was derived with.
    pub kdf: Kdf,
    /// The login key, hex (32 bytes).
    pub login_key: String,
    /// Enroll a TOTP second factor: the answer shows its `otpauth://`
    /// URI once, and every login then needs the current code.
    #[serde(default)]
    pub totp: bool,
}

/// An operator as the admin API shows it (never credentials or tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorInfo {
    /// Login name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// Organization, if the operator is bound to one.
    pub org: Option<String>,
    /// Whether a TOTP second factor is set.
    pub totp: bool,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Open (unexpired) sessions.
    pub sessions: Vec<SessionInfo>,
    /// The TOTP enrollment URI (`otpauth://totp/…`): only in the answer
    /// to the creation that enrolled it, never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_uri: Option<String>,
}

/// One session of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Session id (hex), for revoking it.
    pub id: String,
    /// Login time, ms since the epoch.
    pub opened_at: u64,
    /// Expiry, ms since the epoch.
    pub expires_at: u64,
    /// Where the login came from.
    pub from: String,
}

/// `POST /api/v1/operators/login/params`: the KDF parameters of an
/// operator (made-up but stable ones for an unknown name).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLoginParams {
    /// Operator name.
    pub name: String,
}

/// `POST /api/v1/operators/login`: log an operator in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorLogin {
    /// Operator name.
    pub name: String,
    /// The login key derived from the password, hex (32 bytes).
    pub login_key: String,
    /// The current TOTP code, for an operator enrolled in it (a missing or
    /// wrong one fails the login like a wrong password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

/// `POST /api/v1/operators/totp`: an operator enrols in (or removes) their
/// own TOTP second factor, proving their password (and, when enrolled,
/// giving the current code) like a login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorTotp {
    /// Operator name.
    pub name: String,
    /// The login key derived from the password, hex (32 bytes).
    pub login_key: String,
    /// The current TOTP code, when the operator is enrolled already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
    /// `true`: enrol (a new secret, shown once); `false`: remove.
    pub enable: bool,
}

/// `POST /api/v1/admin/operators/{name}/totp`: set or remove another
/// operator's TOTP second factor (a cluster admin, or an org admin for
/// operators of their organization).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetTotp {
    /// `true`: enrol (a new secret, shown once); `false`: remove.
    pub enable: bool,
}

/// The answer to a successful operator login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorSessionReply {
    /// The session's bearer token (shown once).
    pub token: String,
    /// The session id, for revoking it.
    pub session: String,
    /// Expiry, ms since the epoch.
    pub expires_at: u64,
    /// Who logged in.
    pub operator: OperatorInfo,
}

/// `POST /api/v1/admin/operators/{name}/revoke`: revoke sessions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeSessions {
    /// One session; none revokes every session of the operator.
    #[serde(default)]
    pub session: Option<String>,
}

/// `POST /api/v1/admin/orgs`: create or reconfigure an organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigureOrg {
    /// Name (the key).
    pub name: String,
    /// Display name (branding).
    #[serde(default)]
    pub display_name: String,
    /// Support URL (branding).
    #[serde(default)]
    pub support_url: String,
    /// Tiers its users may request; empty: every requestable tier.
    #[serde(default)]
    pub tiers: Vec<String>,
}

/// An organization as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgInfo {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Support URL.
    pub support_url: String,
    /// Tiers its users may request (empty: all requestable ones).
    pub tiers: Vec<String>,
    /// Accounts in it.
    pub users: u64,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditInfo {
    /// Position in the trail.
    pub seq: u64,
    /// Who acted: `operator NAME` or `admin token of node N`.
    pub actor: String,
    /// Where the request came from.
    pub from: String,
    /// What was done (the event kind, e.g. `account_created_in_org`).
    pub action: String,
    /// What it acted on.
    pub target: String,
    /// When, ms since the epoch.
    pub at: u64,
}
