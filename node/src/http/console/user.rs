//! A user's pages: their devices (revoking one), vaults and each vault's
//! snapshots, protected items and schedules, job history. Each reads the
//! device API as the browser's own device (`web console`), so a user sees
//! their account only, exactly as `cairn` on one of their devices would.
//! Snapshot contents are sealed: the server (and so this page) shows what
//! the records say, never file names.

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use cairn_proto::api::{DeviceInfo, ItemInfo, JobInfo, ScheduleInfo, SnapshotInfo, VaultInfo};
use cairn_proto::route::segment;
use maud::html;

use super::admin::jobs_table;
use super::call::Api;
use super::{view, Visitor};
use crate::http::HttpState;
use crate::present::human_bytes;

/// The user pages' own routes (the home page and job history share their
/// paths with the operators' pages, see [`super::routes`]).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/console/vaults", get(vaults))
        .route("/console/vaults/{id}", get(vault))
        .route("/console/items", get(items))
}

/// The account's devices and its latest jobs.
pub async fn devices(v: &Visitor, api: &Api) -> Response {
    let c = v.caller(api);
    let devices = c.get::<Vec<DeviceInfo>>("/api/v1/devices").await;
    let jobs = c.get::<Vec<JobInfo>>("/api/v1/jobs").await;
    let online = view::Online::read(&c).await;
    let body = html! {
        @match devices {
            Ok(ds) => (view::table("My devices", &["Device", "Connection", "Registered", "Last login", "State", ""],
                ds.iter().map(|d| html! { tr {
                    td { @if d.current { (d.name) } @else { a href=(format!("/console/devices/{}", d.id)) { (d.name) } } @if d.current { " " span.muted { "(this browser)" } } }
                    td { @if !d.current { (online.of(d.id)) } }
                    td { (view::when(d.registered_at)) } td { (view::when(d.last_login_at)) }
                    td { @if let Some(r) = d.revoked_at { "revoked " (view::when(r)) } @else { span.ok { "active" } } }
                    td { @if d.revoked_at.is_none() && !d.current {
                        (view::button_form(&format!("/console/devices/{}/revoke", segment(&d.id.to_string())), &v.csrf, "Revoke", &format!("Revoke device {}", d.name)))
                    } }
                } }).collect(), "No devices.")),
            Err(r) => (view::refused("My devices", &r)),
        }
        h2 { "Latest jobs" }
        @match jobs {
            Ok(j) => (jobs_table(&j.into_iter().rev().take(10).collect::<Vec<_>>())),
            Err(r) => (view::refused("Latest jobs", &r)),
        }
    };
    view::page("My devices", Some(&v.frame("/console/")), body).into_response()
}

async fn vaults(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let vaults = v.caller(&api).get::<Vec<VaultInfo>>("/api/v1/vaults").await;
    let body = match vaults {
        Ok(vs) => view::table(
            "My vaults",
            &["Vault", "Tier", "Replicas", "Used", "Quota", "Snapshots", "Created"],
            vs.iter()
                .map(|x| html! { tr {
                    td { a href=(format!("/console/vaults/{}", x.id)) { (x.name) } }
                    td { (x.tier) } td.num { (x.replicas) } td.num { (human_bytes(x.used_bytes)) }
                    td.num { (x.quota_bytes.map_or_else(|| "unlimited".to_string(), human_bytes)) }
                    td.num { (x.snapshots) } td { (view::when(x.created_at)) }
                } })
                .collect(),
            "No vaults yet: `cairn vault create` makes one.",
        ),
        Err(r) => view::refused("My vaults", &r),
    };
    view::page(
        "Vaults & snapshots",
        Some(&v.frame("/console/vaults")),
        body,
    )
    .into_response()
}

async fn vault(v: Visitor, Extension(api): Extension<Api>, Path(id): Path<String>) -> Response {
    let c = v.caller(&api);
    let base = format!("/api/v1/vaults/{}", segment(&id));
    let info = c.get::<VaultInfo>(&base).await;
    let snapshots = c
        .get::<Vec<SnapshotInfo>>(&format!("{base}/snapshots"))
        .await;
    let title = info
        .as_ref()
        .map_or_else(|_| "Vault".to_string(), |i| format!("Vault {}", i.name));
    let body = html! {
        @if let Err(r) = &info { (view::refused("Vault", r)) }
        @match snapshots {
            Ok(s) => (view::table("Snapshots", &["Snapshot", "Device", "Item", "Finished", "Files", "Size", "New data"],
                s.iter().rev().map(|s| html! { tr {
                    td { code { (s.id.to_string().get(..8).unwrap_or_default()) } }
                    td { (s.device_name) } td { (s.item) } td { (view::when(s.finished_at)) }
                    td.num { (s.stats.files) } td.num { (human_bytes(s.stats.bytes)) } td.num { (human_bytes(s.stats.new_bytes)) }
                } }).collect(), "No snapshots yet.")),
            Err(r) => (view::refused("Snapshots", &r)),
        }
        p { a href="/console/vaults" { "All vaults" } }
    };
    view::page(&title, Some(&v.frame("/console/vaults")), body).into_response()
}

async fn items(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let c = v.caller(&api);
    let items = c.get::<Vec<ItemInfo>>("/api/v1/items").await;
    let schedules = c.get::<Vec<ScheduleInfo>>("/api/v1/schedules").await;
    let body = html! {
        h2 { "Protected items" }
        @match items {
            Ok(i) => (view::table("Protected items", &["Item", "Paths", "Excludes", "Vault", "Updated"],
                i.iter().map(|i| html! { tr {
                    td { (i.name) } td { (i.paths.join(", ")) } td { (i.excludes.join(", ")) }
                    td { code { (i.vault.to_string().get(..8).unwrap_or_default()) } } td { (view::when(i.updated_at)) }
                } }).collect(), "No protected items: `cairn item add` defines one.")),
            Err(r) => (view::refused("Protected items", &r)),
        }
        h2 { "Schedules" }
        @match schedules {
            Ok(s) => (view::table("Schedules", &["Schedule", "Item", "When", "Random delay", "Time limit"],
                s.iter().map(|s| html! { tr {
                    td { (s.name) } td { (s.item) } td { code { (s.spec) } }
                    td.num { (s.random_delay_s) " s" }
                    td.num { (s.timeout_s.map_or_else(|| "none".to_string(), |t| format!("{t} s"))) }
                } }).collect(), "No schedules.")),
            Err(r) => (view::refused("Schedules", &r)),
        }
    };
    view::page("Items & schedules", Some(&v.frame("/console/items")), body).into_response()
}

/// The account's job history, newest first.
pub async fn jobs(v: &Visitor, api: &Api) -> Response {
    let body = match v.caller(api).get::<Vec<JobInfo>>("/api/v1/jobs").await {
        Ok(j) => jobs_table(&j.into_iter().rev().collect::<Vec<_>>()),
        Err(r) => view::refused("Job history", &r),
    };
    view::page("Job history", Some(&v.frame("/console/jobs")), body).into_response()
}
