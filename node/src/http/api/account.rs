//! The asking device's account: `GET /api/v1/account` and the password
//! change `POST /api/v1/account/password`.
//!
//! A password change is one event, [`Event::AccountPasswordChanged`]: new
//! credentials and every vault's keys re-wrapped by the client with the new
//! wrap key (the server checks that exactly the account's vaults are
//! named; it cannot read any of them). Applying it empties every device's
//! token, so all devices must log in again with the new password — except
//! the asking one, which gets a fresh token in the answer through a second
//! event ([`Event::DeviceLoggedIn`]). The old login key is checked like a
//! login (same rate limits), so a stolen token alone cannot change the
//! password.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::event::{Credentials, KdfParams};
use cairn_consensus::Event;
use cairn_proto::api::{AccountInfo, ErrorBody, LoginReply, PasswordChange};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::login::{check_limits, key_matches, log_in_device, record_attempt};
use super::login_key_hash;
use super::{cluster_nodes, kdf_info, propose, ApiJson, IdempotencyKey, Peer, Shared};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;
use crate::license::gate::Gate;

/// Shortest salt accepted for new credentials, in bytes.
const MIN_SALT: usize = 16;

/// Length of a login key, in bytes.
const LOGIN_KEY_LEN: usize = 32;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(get_account))
        .routes(routes!(change_password))
}

/// The asking device's account, its KDF parameters and the cluster's nodes.
#[utoipa::path(get, path = "/api/v1/account", tag = "account",
    security(("device" = [])),
    responses(
        (status = 200, body = AccountInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn get_account(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<AccountInfo>, ApiError> {
    let account = app
        .state
        .read(|s| s.accounts().get(&auth.account).cloned())
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(AccountInfo {
        id: account.id,
        name: account.name,
        kdf: kdf_info(&account.credentials.kdf),
        device: auth.device,
        nodes: cluster_nodes(&app),
    }))
}

/// Changes the account's password: new credentials and every vault's keys
/// re-wrapped, in one event. Every other device must log in again; the
/// asking device gets a new token in the answer.
#[utoipa::path(post, path = "/api/v1/account/password", tag = "account",
    security(("device" = [])),
    params(IdempotencyKey),
    request_body = PasswordChange,
    responses(
        (status = 200, body = LoginReply),
        (status = 400, body = ErrorBody, description = "bad_request"),
        (status = 401, body = ErrorBody, description = "unauthorized, or login_failed: wrong old login key"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 422, body = ErrorBody, description = "rewrap_mismatch: not exactly the account's vaults"),
        (status = 429, body = ErrorBody, description = "rate_limited; see Retry-After"),
        (status = 503, body = ErrorBody, description = "unavailable; retry"),
    ))]
async fn change_password(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    State(gate): State<Arc<Gate>>,
    shared: Shared,
    Peer(peer): Peer,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Json<LoginReply>, ApiError> {
    super::license::check(&gate, &app)?;
    if req.login_key.len() != LOGIN_KEY_LEN {
        return Err(ApiError::BadRequest(format!(
            "login_key must be {LOGIN_KEY_LEN} bytes"
        )));
    }
    if req.kdf.salt.len() < MIN_SALT {
        return Err(ApiError::BadRequest(format!(
            "kdf.salt must be at least {MIN_SALT} bytes"
        )));
    }
    let account = app
        .state
        .read(|s| s.accounts().get(&auth.account).cloned())
        .ok_or(ApiError::Unauthorized)?;
    let attempt = check_limits(&shared, &account.name, peer)?;
    let ok = key_matches(Some(&account), &req.old_login_key);
    record_attempt(&shared, attempt, ok);
    if !ok {
        return Err(ApiError::LoginFailed);
    }
    let mut rewrapped_keys = BTreeMap::new();
    for v in req.vaults {
        if rewrapped_keys.insert(v.vault, v.wrapped_keys).is_some() {
            return Err(ApiError::BadRequest(format!(
                "vault {} is named twice",
                v.vault
            )));
        }
    }
    let event = Event::AccountPasswordChanged {
        account: account.id,
        credentials: Credentials {
            kdf: KdfParams {
                memory_kib: req.kdf.memory_kib,
                iterations: req.kdf.iterations,
                parallelism: req.kdf.parallelism,
                salt: req.kdf.salt,
            },
            login_key_hash: login_key_hash(&req.login_key),
        },
        rewrapped_keys,
        at: now(),
    };
    propose(&app, &key, event).await?;
    // The change emptied every token, this device's too: log it back in
    // (a fresh request id — the token is new).
    let reply = log_in_device(
        &app,
        &IdempotencyKey::default(),
        account.id,
        auth.device,
        &auth.name,
        peer,
    )
    .await?;
    Ok(Json(reply))
}
