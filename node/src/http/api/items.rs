//! Protected items: `GET /api/v1/items`, `PUT|DELETE /api/v1/items/{name}`.
//!
//! Items are private to the device that defined them: every route works on
//! the asking device's own items only, so another device (of the same
//! account or not) can neither see nor change them. The target vault must
//! be one of the account's vaults (another account's answers `404`).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use cairn_consensus::state::Item;
use cairn_consensus::Event;
use cairn_proto::api::{ErrorBody, ItemInfo, PutItem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{propose, ApiJson, ApiPath, IdempotencyKey};
use crate::cluster::{now, Cluster};
use crate::http::auth::DeviceAuth;
use crate::http::ApiError;

/// The routes of this module.
pub fn routes() -> OpenApiRouter<crate::http::HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_items))
        .routes(routes!(put_item, delete_item))
}

/// The API form of an item.
pub fn item_info(i: &Item) -> ItemInfo {
    ItemInfo {
        name: i.name.clone(),
        paths: i.paths.clone(),
        excludes: i.excludes.clone(),
        vault: i.vault,
        updated_at: i.updated_at.0,
        before: i.before.clone(),
        after: i.after.clone(),
    }
}

fn own_item(app: &Cluster, auth: &DeviceAuth, name: &str) -> Option<ItemInfo> {
    app.state.read(|s| {
        s.items()
            .get(&(auth.device, name.to_string()))
            .map(item_info)
    })
}

/// The asking device's protected items, by name.
#[utoipa::path(get, path = "/api/v1/items", tag = "items",
    security(("device" = [])),
    responses(
        (status = 200, body = Vec<ItemInfo>),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
    ))]
async fn list_items(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
) -> Result<Json<Vec<ItemInfo>>, ApiError> {
    Ok(Json(app.state.read(|s| {
        s.items_of(auth.device).map(item_info).collect()
    })))
}

/// Creates or replaces one of the asking device's protected items.
#[utoipa::path(put, path = "/api/v1/items/{name}", tag = "items",
    security(("device" = [])),
    params(("name" = String, Path, description = "the item name"), IdempotencyKey),
    request_body = PutItem,
    responses(
        (status = 200, body = ItemInfo),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: the vault (also another account's)"),
        (status = 422, body = ErrorBody, description = "invalid_item, invalid_name, too_long or too_many (commands)"),
    ))]
async fn put_item(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
    ApiJson(req): ApiJson<PutItem>,
) -> Result<Json<ItemInfo>, ApiError> {
    app.state.read(|s| auth.vault(s, req.vault))?;
    let event = Event::ItemConfigured {
        device: auth.device,
        account: auth.account,
        name: name.clone(),
        paths: req.paths,
        excludes: req.excludes,
        vault: req.vault,
        before: req.before,
        after: req.after,
        at: now(),
    };
    propose(&app, &key, event).await?;
    own_item(&app, &auth, &name)
        .map(Json)
        .ok_or_else(|| ApiError::Internal(format!("item {name:?} missing after it was set")))
}

/// Removes one of the asking device's protected items (its snapshots
/// stay); answers the item as it was.
#[utoipa::path(delete, path = "/api/v1/items/{name}", tag = "items",
    security(("device" = [])),
    params(("name" = String, Path, description = "the item name"), IdempotencyKey),
    responses(
        (status = 200, body = ItemInfo, description = "the removed item"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: the admin token"),
        (status = 404, body = ErrorBody, description = "not_found: this device has no such item"),
    ))]
async fn delete_item(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    ApiPath(name): ApiPath<String>,
    key: IdempotencyKey,
) -> Result<Json<ItemInfo>, ApiError> {
    let item = own_item(&app, &auth, &name)
        .ok_or_else(|| ApiError::NotFound(format!("this device has no item {name:?}")))?;
    let event = Event::ItemRemoved {
        device: auth.device,
        account: auth.account,
        name,
        at: now(),
    };
    propose(&app, &key, event).await?;
    Ok(Json(item))
}
