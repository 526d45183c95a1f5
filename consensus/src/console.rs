//! The records of the web console and remote control (issue 15):
//! operators (admin accounts in the replicated state), their sessions,
//! organizations and the audit trail of admin actions.
//!
//! Why in the log: the per-node `admin.token` is one secret per node with
//! no name attached; operators are cluster-wide (any node accepts their
//! sessions), carry a role, and every action they take is recorded with
//! their name ([`crate::Event::Audited`]). The password of an operator
//! never reaches the server: like a user, the operator's client derives a
//! login key with argon2id (`cairn_proto::kdf`) and the state keeps a hash
//! of it ([`Credentials`]).
//!
//! Organizations are the down-level resellers: every account belongs to
//! one, accounts without an explicit one to [`DEFAULT_ORG`]; an org admin
//! sees and changes only accounts of their organization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Credentials;
pub use crate::event::{Actor, OperatorRole};
use crate::ids::UnixMillis;

/// The organization of every account that names none (all accounts from
/// before organizations existed).
pub const DEFAULT_ORG: &str = "default";

/// An operator: an admin account of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Login name, unique among operators.
    pub name: String,
    /// What they may do.
    pub role: OperatorRole,
    /// The organization they act in: required for an org admin, optional
    /// for read-only, none for a cluster admin.
    pub org: Option<String>,
    /// Hash of the client-derived login key, and the KDF parameters.
    pub credentials: Credentials,
    /// The TOTP secret, when the operator has a second factor.
    pub totp_secret: Option<Vec<u8>>,
    /// When the operator was created.
    pub created_at: UnixMillis,
    /// Open sessions by id (hex), at most
    /// [`MAX_SESSIONS_PER_OPERATOR`](crate::apply::MAX_SESSIONS_PER_OPERATOR).
    pub sessions: BTreeMap<String, OperatorSession>,
}

impl Operator {
    /// Whether this operator sees every organization (a cluster admin, or
    /// read-only without an organization).
    pub fn sees_all(&self) -> bool {
        self.role == OperatorRole::ClusterAdmin || self.org.is_none()
    }
}

/// One login of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSession {
    /// Hash of the session's bearer token (the token never reaches the log).
    pub token_hash: Vec<u8>,
    /// When the session was opened.
    pub opened_at: UnixMillis,
    /// When it stops being accepted.
    pub expires_at: UnixMillis,
    /// Where the login came from.
    pub from: String,
}

/// An organization: its own users, the tiers it may offer, its branding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Its name (the key).
    pub name: String,
    /// Display name for branding.
    pub display_name: String,
    /// Where its users get support.
    pub support_url: String,
    /// The tiers its users may request; empty: every requestable tier.
    pub tiers: Vec<String>,
    /// When it was last configured.
    pub updated_at: UnixMillis,
}

/// One entry of the audit trail: an admin action that took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the trail (strictly increasing, never reused).
    pub seq: u64,
    /// Who acted.
    pub actor: Actor,
    /// Where the request came from (client address).
    pub from: String,
    /// The event's kind ([`crate::Event::kind`]).
    pub action: String,
    /// What it acted on (a name or id), if the event names one.
    pub target: String,
    /// When.
    pub at: UnixMillis,
}
