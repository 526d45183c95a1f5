//! Retention policies: `GET|PUT /api/v1/vaults/{id}/retention`,
//! `POST /api/v1/vaults/{id}/retention/clear`.
//!
//! A vault's default policy is the account's (any device may set it); an
//! override is for one of the asking device's items on the vault. The
//! selection itself runs on the client (`cairn_client::retention`), which
//! has the snapshot times; the cluster only stores and bounds policies.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::event::{
    Period as EventPeriod, RetentionPolicy as EventPolicy, RetentionRange as EventRange,
};
use cairn_consensus::{DeviceId, Event, UnixMillis};
use cairn_proto::api::{
    ErrorBody, PutRetention, RetentionInfo, RetentionPeriod, RetentionPolicy, RetentionRange,
};
use cairn_proto::VaultId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(get_retention, set_retention))
        .routes(routes!(clear_retention))
}

fn period_info(p: EventPeriod) -> RetentionPeriod {
    match p {
        EventPeriod::Hour => RetentionPeriod::Hour,
        EventPeriod::Day => RetentionPeriod::Day,
        EventPeriod::Week => RetentionPeriod::Week,
        EventPeriod::Month => RetentionPeriod::Month,
        EventPeriod::Year => RetentionPeriod::Year,
    }
}

fn period_event(p: RetentionPeriod) -> EventPeriod {
    match p {
        RetentionPeriod::Hour => EventPeriod::Hour,
        RetentionPeriod::Day => EventPeriod::Day,
        RetentionPeriod::Week => EventPeriod::Week,
        RetentionPeriod::Month => EventPeriod::Month,
        RetentionPeriod::Year => EventPeriod::Year,
    }
}

/// The API form of a stored policy.
pub fn policy_info(p: &EventPolicy) -> RetentionPolicy {
    let ranges = p
        .ranges
        .iter()
        .map(|r| match *r {
            EventRange::Everything => RetentionRange::Everything,
            EventRange::Last(count) => RetentionRange::Last { count },
            EventRange::NewerThan { secs } => RetentionRange::NewerThan { secs },
            EventRange::Since(at) => RetentionRange::Since { at: at.0 },
            EventRange::FirstOf { period, count } => RetentionRange::FirstOf {
                period: period_info(period),
                count,
            },
            EventRange::OnePer { period, count } => RetentionRange::OnePer {
                period: period_info(period),
                count,
            },
        })
        .collect();
    RetentionPolicy {
        ranges,
        prune_every_s: p.prune_every_s,
    }
}

fn policy_event(p: RetentionPolicy) -> EventPolicy {
    let ranges = p
        .ranges
        .into_iter()
        .map(|r| match r {
            RetentionRange::Everything => EventRange::Everything,
            RetentionRange::Last { count } => EventRange::Last(count),
            RetentionRange::NewerThan { secs } => EventRange::NewerThan { secs },
            RetentionRange::Since { at } => EventRange::Since(UnixMillis(at)),
            RetentionRange::FirstOf { period, count } => EventRange::FirstOf {
                period: period_event(period),
                count,
            },
            RetentionRange::OnePer { period, count } => EventRange::OnePer {
                period: period_event(period),
                count,
            },
        })
        .collect();
    EventPolicy {
        ranges,
        prune_every_s: p.prune_every_s,
    }
}

fn retention_info(
    app: &Cluster,
    auth: &DeviceAuth,
    id: VaultId,
) -> Result<RetentionInfo, ApiError> {
    app.state.read(|s| {
        let vault = auth.vault(s, id)?;
        let items = s
            .item_retention()
            .iter()
            .filter(|((v, d, _), _)| *v == id && *d == auth.device)
            .map(|((_, _, item), p)| (item.clone(), policy_info(p)))
            .collect();
        Ok(RetentionInfo {
            default: vault.retention.as_ref().map(policy_info),
            items,
        })
    })
}

/// The vault's default policy and the asking device's overrides on it.
#[utoipa::path(get, path = "/api/v1/vaults/{id}/retention", tag = "retention",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault")),
    responses(
        (status = 200, body = RetentionInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found (also another account's vault)"),
    ))]
async fn get_retention(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<VaultId>,
) -> Result<Json<RetentionInfo>, ApiError> {
    retention_info(&app, &auth, id).map(Json)
}

/// Sets the vault's default policy, or (with `item`) the override for one
/// of the asking device's items on it.
#[utoipa::path(put, path = "/api/v1/vaults/{id}/retention", tag = "retention",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"), IdempotencyKey),
    request_body = PutRetention,
    responses(
        (status = 200, body = RetentionInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: the vault or the item"),
        (status = 422, body = ErrorBody, description = "invalid_retention"),
    ))]
async fn set_retention(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<VaultId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PutRetention>,
) -> Result<Json<RetentionInfo>, ApiError> {
    let policy = policy_event(req.policy);
    change(&app, &auth, id, &key, req.item, |item| {
        Event::RetentionSet {
            account: auth.account,
            vault: id,
            item,
            policy,
            at: now(),
        }
    })
    .await
}

/// Clears the vault's default policy (it then keeps everything) or an
/// item's override (the item then follows the default).
#[utoipa::path(post, path = "/api/v1/vaults/{id}/retention/clear", tag = "retention",
    security(("device" = [])),
    params(("id" = VaultId, Path, description = "the vault"), IdempotencyKey),
    request_body = PutRetention,
    responses(
        (status = 200, body = RetentionInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found or no_retention"),
    ))]
async fn clear_retention(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(id): ApiPath<VaultId>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PutRetention>,
) -> Result<Json<RetentionInfo>, ApiError> {
    change(&app, &auth, id, &key, req.item, |item| {
        Event::RetentionCleared {
            account: auth.account,
            vault: id,
            item,
            at: now(),
        }
    })
    .await
}

/// A change of the vault's policies: checks the vault is the account's,
/// proposes the event `make` builds for the policy's key (`None`: the
/// vault's default, else the asking device's `item`), and answers the
/// policies as they now are.
async fn change(
    app: &Cluster,
    auth: &DeviceAuth,
    id: VaultId,
    key: &IdempotencyKey,
    item: Option<String>,
    make: impl FnOnce(Option<(DeviceId, String)>) -> Event,
) -> Result<Json<RetentionInfo>, ApiError> {
    app.state.read(|s| auth.vault(s, id))?;
    propose(app, key, make(item.map(|i| (auth.device, i)))).await?;
    retention_info(app, auth, id).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_convert_both_ways() {
        let p = RetentionPolicy {
            ranges: vec![
                RetentionRange::Everything,
                RetentionRange::Last { count: 3 },
                RetentionRange::NewerThan { secs: 60 },
                RetentionRange::Since { at: 5 },
                RetentionRange::FirstOf {
                    period: RetentionPeriod::Week,
                    count: 2,
                },
                RetentionRange::OnePer {
                    period: RetentionPeriod::Month,
                    count: 4,
                },
            ],
            prune_every_s: Some(9),
        };
        assert_eq!(policy_info(&policy_event(p.clone())), p);
    }
}
