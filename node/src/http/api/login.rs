//! Login: `POST /api/v1/login/params` and `POST /api/v1/login`.
//!
//! The client derives `argon2id(password, salt)` with the account's
//! parameters and sends the first half (the login key); the server compares
//! a hash of it with the stored hash in constant time and never sees the
//! password or the wrap key. An unknown user gets made-up but stable
//! parameters (the salt is a keyed hash of the name under the cluster's
//! server secret, the same on every node) and the same `login_failed`
//! answer as a wrong key, so neither call tells which accounts exist.
//!
//! Failed attempts are limited per account name and per client address
//! ([`crate::http::ratelimit`], per node), checked before the key is. A success
//! proposes [`Event::DeviceLoggedIn`]: the account's live device of that
//! name gets a new token (its old one stops working), otherwise a new
//! device is registered; the event also records the login in the job log.
//! An account an operator disabled is refused after its key checks out
//! (`403 account_disabled` with the reason), so a wrong password still
//! answers `login_failed`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::Json;
use cairn_consensus::state::Account;
use cairn_consensus::Event;
use cairn_proto::api::{ErrorBody, Kdf, LoginParamsRequest, LoginReply, LoginRequest};
use cairn_proto::{DeviceId, JobId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::login_key_hash;
use super::{cluster_nodes, kdf_info, propose, ApiJson, IdempotencyKey, Peer, Shared};
use crate::cluster::{now, Cluster};
use crate::http::auth::mint_token;
use crate::http::ratelimit::{retry_after_secs, Attempt};
use crate::http::ApiError;
use cairn_proto::kdf::{
    DEFAULT_ITERATIONS as KDF_ITERATIONS, DEFAULT_MEMORY_KIB as KDF_MEMORY_KIB,
    DEFAULT_PARALLELISM as KDF_PARALLELISM,
};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(login_params))
        .routes(routes!(login))
}

/// The cluster's server secret, setting it first if nobody has: this node
/// proposes a random one, and if another node won the race the state holds
/// the winner's (the event is accepted once).
///
/// # Errors
///
/// No leader, or the state still has no secret after the proposal.
pub async fn server_secret(app: &Cluster) -> Result<Vec<u8>, ApiError> {
    let current = || app.state.read(|s| s.server_secret().map(<[u8]>::to_vec));
    if let Some(secret) = current() {
        return Ok(secret);
    }
    let secret: [u8; 32] = rand::random();
    let outcome = app
        .propose(Event::ServerSecretSet {
            secret: secret.to_vec(),
            at: now(),
        })
        .await?;
    current().ok_or_else(|| {
        ApiError::Internal(format!(
            "server secret still unset after proposing it: {outcome:?}"
        ))
    })
}

/// Made-up, stable KDF parameters for a user name that has no account.
pub fn fake_kdf(secret: &[u8], user: &str) -> Kdf {
    let key = blake3::derive_key("cairn 2026 fake login salt v1", secret);
    let salt = blake3::keyed_hash(&key, user.as_bytes()).as_bytes()[..16].to_vec();
    Kdf {
        memory_kib: KDF_MEMORY_KIB,
        iterations: KDF_ITERATIONS,
        parallelism: KDF_PARALLELISM,
        salt,
    }
}

/// The KDF parameters of an account, so the client can derive its keys.
/// An unknown user gets made-up parameters that stay the same on every
/// call and every node.
#[utoipa::path(post, path = "/api/v1/login/params", tag = "login",
    request_body = LoginParamsRequest,
    responses(
        (status = 200, body = Kdf),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn login_params(
    State(app): State<Arc<Cluster>>,
    ApiJson(req): ApiJson<LoginParamsRequest>,
) -> Result<Json<Kdf>, ApiError> {
    app.read_barrier().await?;
    let known = app.state.read(|s| {
        s.account_by_name(&req.user)
            .map(|a| kdf_info(&a.credentials.kdf))
    });
    match known {
        Some(kdf) => Ok(Json(kdf)),
        None => Ok(Json(fake_kdf(&server_secret(&app).await?, &req.user))),
    }
}

/// Whether `login_key` is the account's, in constant time. Unknown users
/// are checked against a dummy hash so both paths cost the same.
pub fn key_matches(account: Option<&Account>, login_key: &[u8]) -> bool {
    hash_matches(
        account.map(|a| a.credentials.login_key_hash.as_slice()),
        login_key,
    )
}

/// Whether `login_key` hashes to `stored`, in constant time; `None` (no
/// such account or operator) costs the same and never matches.
pub fn hash_matches(stored: Option<&[u8]>, login_key: &[u8]) -> bool {
    let presented = to_hash(&login_key_hash(login_key));
    match stored {
        Some(stored) => presented == to_hash(stored),
        None => {
            // Same work as a real comparison; the result is ignored.
            let _ = presented == blake3::Hash::from([0u8; 32]);
            false
        }
    }
}

/// A stored or computed 32-byte hash as a [`blake3::Hash`] (whose `==` is
/// constant-time); anything else compares unequal to every real hash.
fn to_hash(bytes: &[u8]) -> blake3::Hash {
    <[u8; 32]>::try_from(bytes)
        .map(blake3::Hash::from)
        .unwrap_or_else(|_| blake3::hash(bytes))
}

/// Checks the rate limits for `user` from `peer` and counts the attempt
/// as a failure at once (atomically with the check, so concurrent attempts
/// see it); settle it with [`record_attempt`] or [`release_attempt`].
pub(super) fn check_limits(
    shared: &Shared,
    user: &str,
    peer: Option<SocketAddr>,
) -> Result<Attempt, ApiError> {
    let mut limiter = shared
        .limiter
        .lock()
        .map_err(|_| ApiError::Internal("login limiter poisoned".into()))?;
    limiter
        .begin(user, peer.map(|p| p.ip()), Instant::now())
        .map_err(|wait| ApiError::RateLimited(retry_after_secs(wait)))
}

/// Settles an attempt by the result of its credential check: a right key
/// gives it back (and clears the account's failures), a wrong one leaves
/// it counted.
pub(super) fn record_attempt(shared: &Shared, attempt: Attempt, ok: bool) {
    if ok {
        if let Ok(mut limiter) = shared.limiter.lock() {
            limiter.succeeded(attempt);
        }
    }
}

/// Gives back an attempt that ended before its key was checked (no
/// leader, say): it is not a failed login.
fn release_attempt(shared: &Shared, attempt: Attempt) {
    if let Ok(mut limiter) = shared.limiter.lock() {
        limiter.release(attempt);
    }
}

/// A login attempt under the rate limits: counts it for `limiter_key`
/// from `peer`, finds the record and its stored key hash with `find` (after
/// a read barrier) and checks `login_key` against it in constant time.
///
/// # Errors
///
/// `rate_limited`, `login_failed` (unknown name or wrong key alike), or no
/// leader (the attempt is then not counted).
pub(super) async fn verify_login<T>(
    app: &Cluster,
    shared: &Shared,
    limiter_key: &str,
    peer: Option<SocketAddr>,
    login_key: &[u8],
    find: impl FnOnce(&cairn_consensus::State) -> Option<(T, Vec<u8>)>,
) -> Result<T, ApiError> {
    let attempt = check_limits(shared, limiter_key, peer)?;
    if let Err(e) = app.read_barrier().await {
        release_attempt(shared, attempt);
        return Err(e.into());
    }
    let found = app.state.read(find);
    let ok = hash_matches(found.as_ref().map(|(_, h)| h.as_slice()), login_key);
    record_attempt(shared, attempt, ok);
    found
        .filter(|_| ok)
        .map(|(t, _)| t)
        .ok_or(ApiError::LoginFailed)
}

/// Gives `device` (of `account`) a fresh token through
/// [`Event::DeviceLoggedIn`] and answers the login.
pub(super) async fn log_in_device(
    app: &Cluster,
    key: &IdempotencyKey,
    account: cairn_proto::AccountId,
    device: DeviceId,
    name: &str,
    peer: Option<SocketAddr>,
) -> Result<LoginReply, ApiError> {
    let token = mint_token(device);
    let event = Event::DeviceLoggedIn {
        device,
        account,
        name: name.to_string(),
        token_hash: token.hash.clone(),
        job: JobId::random(),
        from: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        at: now(),
    };
    propose(app, key, event).await?;
    // A retried request (same Idempotency-Key) is answered by the state
    // machine with the first attempt's outcome, but that attempt's token
    // was shown once and is not known any more: say so instead of handing
    // out a token that does not work.
    let device_name = app
        .state
        .read(|s| {
            s.devices()
                .get(&device)
                .filter(|d| d.token_hash == token.hash)
                .map(|d| d.name.clone())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this Idempotency-Key was already used by a login whose token cannot be shown \
                 again; log in with a new key"
                    .into(),
            )
        })?;
    Ok(LoginReply {
        token: token.token,
        account,
        device,
        device_name,
        nodes: cluster_nodes(app),
    })
}

/// Logs a device in: checks the login key and answers a bearer token.
/// The account's live device of the same name gets a new token (its old
/// token stops working); otherwise a new device is registered.
#[utoipa::path(post, path = "/api/v1/login", tag = "login",
    params(IdempotencyKey),
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginReply),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "login_failed: unknown user or wrong password"),
        (status = 403, body = ErrorBody, description = "account_disabled: an operator disabled the account (the message has the reason)"),
        (status = 409, body = ErrorBody, description = "name_taken: a concurrent login registered that device name"),
        (status = 422, body = ErrorBody, description = "invalid_name"),
        (status = 429, body = ErrorBody, description = "rate_limited: too many failed logins; see Retry-After"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn login(
    State(app): State<Arc<Cluster>>,
    shared: Shared,
    Peer(peer): Peer,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginReply>, ApiError> {
    let account = verify_login(&app, &shared, &req.user, peer, &req.login_key, |s| {
        s.account_by_name(&req.user)
            .map(|a| (a.clone(), a.credentials.login_key_hash.clone()))
    })
    .await?;
    app.state
        .read(|s| crate::http::auth::check_enabled(s, account.id))?;
    let device = app
        .state
        .read(|s| {
            s.devices_of(account.id)
                .find(|d| d.is_live() && d.name == req.device)
                .map(|d| d.id)
        })
        .unwrap_or_else(DeviceId::random);
    let reply = log_in_device(&app, &key, account.id, device, &req.device, peer).await?;
    Ok(Json(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_consensus::event::{Credentials, KdfParams};
    use cairn_consensus::UnixMillis;

    #[test]
    fn fake_params_are_stable_per_name_and_secret() {
        let a = fake_kdf(&[1; 32], "mallory");
        assert_eq!(a, fake_kdf(&[1; 32], "mallory"));
        assert_eq!(a.salt.len(), 16);
        assert_ne!(a.salt, fake_kdf(&[1; 32], "mallorY").salt);
        assert_ne!(a.salt, fake_kdf(&[2; 32], "mallory").salt);
        assert_eq!(a.memory_kib, KDF_MEMORY_KIB);
    }

    #[test]
    fn only_the_right_key_matches() {
        let account = Account {
            id: cairn_proto::AccountId([1; 16]),
            name: "alice".into(),
            credentials: Credentials {
                kdf: KdfParams {
                    memory_kib: 8,
                    iterations: 1,
                    parallelism: 1,
                    salt: vec![0; 16],
                },
                login_key_hash: login_key_hash(&[0x11; 32]),
            },
            created_at: UnixMillis(1),
            password_changed_at: None,
        };
        assert!(key_matches(Some(&account), &[0x11; 32]));
        assert!(!key_matches(Some(&account), &[0x12; 32]));
        assert!(!key_matches(Some(&account), &[]));
        assert!(!key_matches(None, &[0x11; 32]));
    }
}
