//! Who is asking: bearer tokens of devices and of the admin.
//!
//! A device token is `cairn_<device id hex>_<secret hex>`. The device id
//! lets the node find the device without scanning; the secret is checked
//! against the hash kept in the replicated state (the token itself is
//! never stored anywhere on the server). Hashes are compared in constant
//! time ([`blake3::Hash`]).
//!
//! Every device check first waits for a linearizable read point
//! ([`Cluster::read_barrier`]), so a token revoked (or invalidated by a password
//! change) through any node is refused by every node from the moment the
//! revocation is acknowledged — including a node that is still catching up.
//!
//! Operators (admin accounts in the replicated state) carry session tokens
//! `cairnop_<session id hex>_<secret hex>`, checked the same way against
//! the session's hash and expiry; the [`Admin`] extractor takes either
//! an operator's session or the admin token.
//!
//! Remote control is for both: [`Requester`] takes an admin or a user
//! (through any live device of their account) and decides which devices
//! they see and may act on.
//!
//! The admin token is the node's `admin.token` ([`crate::token`]). Each kind
//! of token is refused with `forbidden` on the other kind's routes, and a
//! missing or unknown token with `unauthorized`.
//!
//! Cluster-internal routes need the cluster secret instead
//! ([`cluster_only`]); a join takes the secret or the admin token
//! ([`join_authorized`]).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cairn_consensus::console::{Actor, Operator, OperatorRole};
use cairn_consensus::state::{Device, Vault};
use cairn_consensus::Event;
use cairn_proto::{AccountId, DeviceId, VaultId};

use super::{ApiError, HttpState};
use crate::cluster::Cluster;
use crate::token::CLUSTER_SECRET_HEADER;

const TOKEN_PREFIX: &str = "cairn_";

/// A freshly minted device token and the hash the state keeps.
pub struct NewToken {
    /// The token, shown to the device once.
    pub token: String,
    /// What the replicated state stores.
    pub hash: Vec<u8>,
}

/// Mints a random token for `device`.
pub fn mint_token(device: DeviceId) -> NewToken {
    let secret: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}_{}", device.to_hex(), hex::encode(secret));
    let hash = token_hash(&token).as_bytes().to_vec();
    NewToken { token, hash }
}

fn token_hash(token: &str) -> blake3::Hash {
    blake3::Hash::from(blake3::derive_key(
        "cairn 2026 device token hash v1",
        token.as_bytes(),
    ))
}

/// The device id a token claims (not yet verified).
fn claimed_device(token: &str) -> Option<DeviceId> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 {
        return None;
    }
    id.parse().ok()
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `token` is this node's admin token.
fn is_admin(app: &Cluster, token: &str) -> bool {
    app.admin.as_ref().is_some_and(|a| a.verify(token))
}

/// The live device a token belongs to, checked against `state`.
pub fn device_for_token(state: &cairn_consensus::State, token: &str) -> Option<Device> {
    let id = claimed_device(token)?;
    let device = state.devices().get(&id)?;
    let stored = <[u8; 32]>::try_from(device.token_hash.as_slice()).ok()?;
    let live = device.is_live() && state.accounts().contains_key(&device.account);
    (live && token_hash(token) == blake3::Hash::from(stored)).then(|| device.clone())
}

/// Refuses an account an operator disabled (`403 account_disabled`, with
/// the reason): its tokens stop working on every node at once, because
/// every device check reads the replicated state after a read barrier.
///
/// # Errors
///
/// [`ApiError::Rejected`] with [`Rejection::AccountDisabled`](cairn_consensus::Rejection::AccountDisabled).
pub fn check_enabled(state: &cairn_consensus::State, account: AccountId) -> Result<(), ApiError> {
    match state.disabled(account) {
        Some(d) => Err(ApiError::Rejected(
            cairn_consensus::Rejection::AccountDisabled {
                account,
                reason: d.reason.clone(),
            },
        )),
        None => Ok(()),
    }
}

/// Who is asking on an admin route: the node's admin token, or an
/// operator's session ([`operator_for_token`]). The organization bounds
/// what the handler shows; what the actor may change is checked by the
/// state machine on the [`Event::Audited`] the handler proposes
/// ([`Admin::audit`]).
#[derive(Debug, Clone)]
pub struct Admin {
    /// Who acts.
    pub actor: Actor,
    /// The operator's role; `None` for the admin token.
    pub role: Option<OperatorRole>,
    /// The organization the actor is bound to; `None`: every one.
    pub org: Option<String>,
    /// The client's address, for the audit trail.
    pub from: String,
}

impl Admin {
    /// `event` as this actor's audited action.
    pub fn audit(&self, event: Event) -> Event {
        Event::Audited {
            actor: self.actor.clone(),
            from: self.from.clone(),
            at: crate::cluster::now(),
            event: Box::new(event),
        }
    }

    /// Whether the actor may see records of organization `org`.
    pub fn sees(&self, org: &str) -> bool {
        self.org.as_deref().is_none_or(|own| own == org)
    }

    /// Refuses anyone but the admin token and cluster admins, for the
    /// cluster-wide actions that are not events of the audit trail
    /// (membership, drain, license).
    ///
    /// # Errors
    ///
    /// [`ApiError::Forbidden`] for other operators.
    pub fn require_cluster_admin(&self) -> Result<(), ApiError> {
        match self.role {
            None | Some(OperatorRole::ClusterAdmin) => Ok(()),
            Some(role) => Err(ApiError::Forbidden(format!(
                "this route needs a cluster admin, not a {}",
                role.name()
            ))),
        }
    }
}

impl FromRequestParts<HttpState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let app = Arc::<Cluster>::from_ref(state);
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let from = parts
            .extensions
            .get::<axum::extract::ConnectInfo<super::extract::ClientAddr>>()
            .map(|c| c.0 .0.ip().to_string())
            .unwrap_or_default();
        if is_admin(&app, token) {
            return Ok(Admin {
                actor: Actor::AdminToken {
                    node: app.identity.node_id,
                },
                role: None,
                org: None,
                from,
            });
        }
        if claimed_session(token).is_some() {
            app.read_barrier().await?;
            let now = crate::cluster::now();
            let op = app
                .state
                .read(|s| operator_for_token(s, token, now))
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Admin {
                actor: Actor::Operator {
                    name: op.name.clone(),
                },
                role: Some(op.role),
                org: (!op.sees_all()).then(|| op.org.clone()).flatten(),
                from,
            });
        }
        if claimed_device(token).is_some() {
            app.read_barrier().await?;
            if app.state.read(|s| device_for_token(s, token)).is_some() {
                return Err(ApiError::Forbidden(
                    "this route needs the admin token, not a device token".into(),
                ));
            }
        }
        Err(ApiError::Unauthorized)
    }
}

/// A freshly minted operator session token, its id and the hash the state
/// keeps.
pub struct NewSession {
    /// The session id (hex of 16 random bytes).
    pub id: String,
    /// The token, shown to the operator once.
    pub token: String,
    /// What the replicated state stores.
    pub hash: Vec<u8>,
}

/// Mints a random operator session token:
/// `cairnop_<session id hex>_<secret hex>`.
pub fn mint_session() -> NewSession {
    let id = hex::encode(rand::random::<[u8; 16]>());
    let secret: [u8; 32] = rand::random();
    let token = format!("{SESSION_PREFIX}{id}_{}", hex::encode(secret));
    let hash = session_hash(&token).as_bytes().to_vec();
    NewSession { id, token, hash }
}

const SESSION_PREFIX: &str = "cairnop_";

fn session_hash(token: &str) -> blake3::Hash {
    blake3::Hash::from(blake3::derive_key(
        "cairn 2026 operator session token hash v1",
        token.as_bytes(),
    ))
}

/// The session id an operator token claims (not yet verified).
fn claimed_session(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(SESSION_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 32 && secret.len() == 64).then_some(id)
}

/// The operator whose unexpired session `token` is, checked against
/// `state` at time `now`.
pub fn operator_for_token(
    state: &cairn_consensus::State,
    token: &str,
    now: cairn_consensus::UnixMillis,
) -> Option<Operator> {
    let id = claimed_session(token)?;
    let presented = session_hash(token);
    state
        .operators()
        .values()
        .find(|op| {
            op.sessions.get(id).is_some_and(|s| {
                let stored = <[u8; 32]>::try_from(s.token_hash.as_slice()).ok();
                s.expires_at > now && stored.is_some_and(|h| blake3::Hash::from(h) == presented)
            })
        })
        .cloned()
}

/// The session id of an operator token (for logging out), if it is one.
pub fn session_of(token: &str) -> Option<&str> {
    claimed_session(token)
}

/// An authenticated device: the request carried a live device's token.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// The device.
    pub device: DeviceId,
    /// Its account.
    pub account: AccountId,
    /// The device's name.
    pub name: String,
}

impl DeviceAuth {
    /// The vault `id` if it belongs to this device's account. Another
    /// account's vault is reported exactly like a missing one.
    ///
    /// # Errors
    ///
    /// [`ApiError::NotFound`] when the vault is missing or not the account's.
    pub fn vault(&self, state: &cairn_consensus::State, id: VaultId) -> Result<Vault, ApiError> {
        state
            .vaults()
            .get(&id)
            .filter(|v| v.account == self.account)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no vault {id}")))
    }
}

impl FromRequestParts<HttpState> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        let app = Arc::<Cluster>::from_ref(state);
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        if is_admin(&app, token) || claimed_session(token).is_some() {
            return Err(ApiError::Forbidden(
                "this route needs a device token (cairn login), not an admin's".into(),
            ));
        }
        if claimed_device(token).is_none() {
            return Err(ApiError::Unauthorized);
        }
        app.read_barrier().await?;
        let device = app.state.read(|s| {
            let device = device_for_token(s, token).ok_or(ApiError::Unauthorized)?;
            check_enabled(s, device.account)?;
            Ok::<_, ApiError>(device)
        })?;
        Ok(DeviceAuth {
            device: device.id,
            account: device.account,
            name: device.name,
        })
    }
}

/// Who asks on a route that admins and users share (remote control): an
/// admin ([`Admin`]) or a user through one of their account's devices
/// ([`DeviceAuth`], with the client's address for the audit trail).
#[derive(Debug, Clone)]
pub enum Requester {
    /// The admin token or an operator.
    Admin(Admin),
    /// A user, through a device of theirs, from this address.
    User(DeviceAuth, String),
}

impl Requester {
    /// `event` as this requester's audited action.
    pub fn audit(&self, event: Event) -> Event {
        match self {
            Requester::Admin(a) => a.audit(event),
            Requester::User(d, from) => Event::Audited {
                actor: Actor::Device { device: d.device },
                from: from.clone(),
                at: crate::cluster::now(),
                event: Box::new(event),
            },
        }
    }

    /// Whether the requester sees `account`'s devices and jobs: a user
    /// their own account's, an admin their organizations'.
    pub fn sees(&self, state: &cairn_consensus::State, account: AccountId) -> bool {
        match self {
            Requester::Admin(a) => a.sees(state.org_of(account)),
            Requester::User(d, _) => d.account == account,
        }
    }

    /// Device `id`, if the requester sees it and, with `act`, may act on
    /// it (a read-only operator only looks). A device the requester does
    /// not see answers exactly like a missing one.
    ///
    /// # Errors
    ///
    /// [`ApiError::NotFound`] for a device missing, revoked or not seen;
    /// [`ApiError::Forbidden`] for a read-only operator acting.
    pub fn device(
        &self,
        state: &cairn_consensus::State,
        id: DeviceId,
        act: bool,
    ) -> Result<Device, ApiError> {
        let device = state
            .devices()
            .get(&id)
            .filter(|d| d.is_live() && self.sees(state, d.account))
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))?;
        if let (true, Requester::Admin(a)) = (act, self) {
            if a.role == Some(OperatorRole::ReadOnly) {
                return Err(ApiError::Forbidden(
                    "a read-only operator cannot act on devices".into(),
                ));
            }
        }
        Ok(device)
    }
}

impl FromRequestParts<HttpState> for Requester {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, ApiError> {
        if bearer(&parts.headers).and_then(claimed_device).is_some() {
            let from = parts
                .extensions
                .get::<axum::extract::ConnectInfo<super::extract::ClientAddr>>()
                .map(|c| c.0 .0.ip().to_string())
                .unwrap_or_default();
            let auth = DeviceAuth::from_request_parts(parts, state).await?;
            return Ok(Requester::User(auth, from));
        }
        Admin::from_request_parts(parts, state)
            .await
            .map(Requester::Admin)
    }
}

/// Whether `headers` carry the cluster secret.
fn has_cluster_secret(app: &Cluster, headers: &HeaderMap) -> bool {
    headers
        .get(CLUSTER_SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| app.cluster_secret.verify(p))
}

/// Admits a request to a cluster-internal endpoint only with the cluster
/// secret (every node has one): `401 unauthorized` otherwise.
pub async fn cluster_only(
    State(app): State<Arc<Cluster>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if !has_cluster_secret(&app, request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Admits a join (an operator action: it changes the voters) with the
/// cluster secret, which the joining node presents, or this node's admin
/// token: `401 unauthorized` otherwise.
pub async fn join_authorized(
    State(app): State<Arc<Cluster>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let admin = bearer(headers).is_some_and(|t| is_admin(&app, t));
    if !has_cluster_secret(&app, headers) && !admin {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_device_and_hash_stably() {
        let id = DeviceId([9; 16]);
        let t = mint_token(id);
        assert_eq!(claimed_device(&t.token), Some(id));
        assert_eq!(token_hash(&t.token).as_bytes().to_vec(), t.hash);
        assert_ne!(mint_token(id).token, t.token);
    }

    /// A session token is accepted only with its own secret, before its
    /// expiry, and only while its operator keeps that session.
    #[test]
    fn operator_sessions_check_secret_expiry_and_presence() {
        use cairn_consensus::event::{Credentials, KdfParams};
        use cairn_consensus::{apply, Request, RequestId, UnixMillis};
        let mut state = cairn_consensus::State::default();
        let session = mint_session();
        let events = [
            Event::OperatorCreated {
                name: "ro".into(),
                role: OperatorRole::ReadOnly,
                org: None,
                credentials: Credentials {
                    kdf: KdfParams {
                        memory_kib: 8,
                        iterations: 1,
                        parallelism: 1,
                        salt: vec![0; 16],
                    },
                    login_key_hash: vec![0; 32],
                },
                totp_secret: None,
                at: UnixMillis(1),
            },
            Event::OperatorSessionOpened {
                operator: "ro".into(),
                session: session.id.clone(),
                token_hash: session.hash.clone(),
                expires_at: UnixMillis(100),
                from: String::new(),
                at: UnixMillis(2),
            },
        ];
        for (i, event) in events.into_iter().enumerate() {
            let r = Request {
                request_id: RequestId([i as u8; 16]),
                event,
            };
            assert!(apply(&mut state, &r).is_applied());
        }
        let at = |ms| operator_for_token(&state, &session.token, UnixMillis(ms));
        assert_eq!(at(99).map(|o| o.name), Some("ro".to_string()));
        assert!(at(100).is_none(), "expired");
        let (head, _) = session.token.rsplit_once('_').expect("token");
        let forged = format!("{head}_{}", "ab".repeat(32));
        assert!(operator_for_token(&state, &forged, UnixMillis(3)).is_none());
        assert_eq!(session_of(&session.token), Some(session.id.as_str()));
        assert_eq!(claimed_device(&session.token), None);
        let revoke = Request {
            request_id: RequestId([9; 16]),
            event: Event::OperatorSessionRevoked {
                operator: "ro".into(),
                session: None,
                at: UnixMillis(4),
            },
        };
        assert!(apply(&mut state, &revoke).is_applied());
        assert!(operator_for_token(&state, &session.token, UnixMillis(5)).is_none());
    }

    #[test]
    fn malformed_tokens_claim_nothing() {
        for bad in [
            "",
            "cairn_",
            "cairn_zz_00",
            "bearer",
            "cairn_09090909090909090909090909090909_short",
        ] {
            assert_eq!(claimed_device(bad), None, "{bad}");
        }
    }
}
