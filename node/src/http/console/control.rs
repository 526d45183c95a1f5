//! The dispatcher's pages (remote control), for operators and users
//! alike: a device's page (online or offline and its version; "back up
//! now" of an item or of picked paths, restore, retention, `check
//! --read-data`, the device's directories to pick paths from, its jobs
//! with "cancel", "drop connection") and a job's live page, which follows
//! the job over server-sent events until it ends.
//!
//! Every read and action is one `/api/v1/control/…` call ([`super::call`]),
//! so an operator or user can do here exactly what the API lets them, and
//! a job's events are the API's own stream passed through.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use cairn_proto::api::JobInfo;
use cairn_proto::control::{
    DeviceControl, DirListing, DispatchBackup, DispatchCancel, DispatchCheck, DispatchRestore,
    DispatchRetention, Dispatched, ListDir, ListFiles, SealedListing, LISTING_AAD,
    LISTING_HKDF_INFO, LISTING_VERSION,
};
use cairn_proto::route::segment;
use cairn_proto::{JobId, VaultId};
use maud::{html, Markup};
use serde::Deserialize;

use super::call::{Api, Refused};
use super::session::Kind;
use super::{done, view, Visitor};
use crate::http::HttpState;
use crate::present::human_bytes;

/// The dispatcher's routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/console/devices/{id}", get(device))
        .route("/console/devices/{id}/{action}", post(action))
        .route("/console/jobs/{id}", get(job))
        .route("/console/jobs/{id}/events", get(events))
}

/// `?dir=`: the device directory to list on its page.
#[derive(Deserialize)]
struct Browse {
    #[serde(default)]
    dir: Option<String>,
}

fn base(id: &str) -> String {
    format!("/api/v1/control/{}", segment(id))
}

/// `/console/devices/{id}`: the device's dispatcher.
async fn device(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path(id): Path<String>,
    Query(browse): Query<Browse>,
) -> Response {
    let c = v.caller(&api);
    let back = match v.kind {
        Kind::Operator => "/console/devices",
        Kind::User => "/console/",
    };
    let d = match c.get::<DeviceControl>(&base(&id)).await {
        Ok(d) => d,
        Err(r) => {
            return (
                r.status,
                view::action_refused(&v.frame(back), "The device", &r, back),
            )
                .into_response()
        }
    };
    let dir = browse.dir.filter(|d| !d.is_empty());
    let listing = match &dir {
        Some(path) if d.connection.is_some() => Some(
            c.post::<_, DirListing>(
                &format!("{}/dirs", base(&id)),
                &ListDir { path: path.clone() },
            )
            .await,
        ),
        _ => None,
    };
    let path = format!("/console/devices/{id}");
    let body = html! {
        (status(&d))
        @if d.connection.is_some() {
            (view::button_form(&format!("{path}/disconnect"), &v.csrf, "Drop connection", "Drop the device's connection"))
        }
        div.cards {
            (backup_form(&v, &path, &d))
            (restore_form(&v, &path, &d))
            (retention_form(&v, &path, &d))
            (check_form(&v, &path, &d))
        }
        (files_form(&v, &path, &d))
        h2 { "The device's directories" }
        form.inline method="get" action=(path) role="search" {
            div {
                label for="f-dir" { "Directory on the device" }
                input id="f-dir" name="dir" type="text" value=(dir.clone().unwrap_or_else(|| "/".into()));
            }
            button type="submit" { "List" }
        }
        @match listing {
            Some(Ok(l)) => (browse_listing(&v, &path, &d, &l)),
            Some(Err(r)) => (view::refused("The directory", &r)),
            None => {}
        }
        h2 { "Jobs" }
        (jobs(&v, &path, &d.jobs))
    };
    view::page(
        &format!("Device {}", d.device_name),
        Some(&v.frame(&path)),
        body,
    )
    .into_response()
}

/// Online (where, which version, since when) or offline.
fn status(d: &DeviceControl) -> Markup {
    html! {
        p id="device-status" role="status" {
            "Account " strong { (d.user) } ". "
            @match &d.connection {
                Some(c) => {
                    span.ok { "online" } " via node " (c.node) ", cairn " (c.client_version)
                    ", since " (view::when(c.since))
                }
                None => { span.bad { "offline" } " (is `cairn daemon` running on it?)" }
            }
        }
    }
}

fn vault_options(d: &DeviceControl) -> Markup {
    html! { @for x in &d.vaults { option value=(x.id) { (x.name) } } }
}

fn backup_form(v: &Visitor, path: &str, d: &DeviceControl) -> Markup {
    html! {
        section.card aria-label="Back up now" {
            h2 { "Back up now" }
            form.stack id="backup" method="post" action=(format!("{path}/backup")) {
                (view::csrf(&v.csrf))
                div {
                    label for="f-b-item" { "Item" }
                    select id="f-b-item" name="item" {
                        @for i in &d.items { option value=(i.name) { (i.name) " (" (i.paths.join(", ")) ")" } }
                        option value="" { "these paths instead:" }
                    }
                }
                div {
                    label for="f-b-paths" { "Paths (one per line, with a vault)" }
                    textarea id="f-b-paths" name="paths" rows="2" {}
                }
                div {
                    label for="f-b-vault" { "Vault (for paths)" }
                    select id="f-b-vault" name="vault" { (vault_options(d)) }
                }
                button type="submit" { "Back up now" }
            }
        }
    }
}

/// The snapshots to pick from: the latest of each vault, then each one.
fn snapshot_options(d: &DeviceControl) -> Markup {
    let name = |vault: VaultId| {
        d.vaults
            .iter()
            .find(|x| x.id == vault)
            .map_or_else(|| vault.to_string(), |x| x.name.clone())
    };
    html! {
        @for x in &d.vaults { option value=(format!("{}/latest", x.id)) { "latest in " (x.name) } }
        @for s in &d.snapshots {
            option value=(format!("{}/{}", s.vault, s.id)) {
                (name(s.vault)) ": " (s.item) " of " (s.device_name) ", " (crate::present::local_time(s.started_at))
            }
        }
    }
}

fn restore_form(v: &Visitor, path: &str, d: &DeviceControl) -> Markup {
    html! {
        section.card aria-label="Restore" {
            h2 { "Restore" }
            form.stack id="restore" method="post" action=(format!("{path}/restore")) {
                (view::csrf(&v.csrf))
                div {
                    label for="f-r-snapshot" { "Snapshot" }
                    select id="f-r-snapshot" name="snapshot" { (snapshot_options(d)) }
                }
                div {
                    label for="f-r-paths" { "Only these paths (one per line; empty: all)" }
                    textarea id="f-r-paths" name="paths" rows="2" {}
                }
                div {
                    label for="f-r-target" { "Into this directory of the device" }
                    input id="f-r-target" name="target" type="text" required;
                }
                button type="submit" { "Restore" }
            }
        }
    }
}

/// A snapshot's files, opened in the browser: the device seals the listing
/// for the account ([`SealedListing`]), the page's script derives the wrap
/// key from the password typed here (argon2id, as `cairn login`), opens the
/// listing with WebCrypto and fills the second form with a box per path to
/// restore. The password field has no name: it is never submitted.
fn files_form(v: &Visitor, path: &str, d: &DeviceControl) -> Markup {
    html! {
        section.card aria-label="Snapshot files" {
            h2 { "A snapshot's files" }
            p.muted { "The device decrypts the snapshot and seals its file names for the account; \
                       your browser opens them with the account password, which never leaves this page." }
            form.stack id="files" method="post" action=(format!("{path}/files"))
                data-listing=(d.user) data-version=(LISTING_VERSION)
                data-info=(LISTING_HKDF_INFO) data-aad=(LISTING_AAD) {
                (view::csrf(&v.csrf))
                div {
                    label for="f-l-snapshot" { "Snapshot" }
                    select id="f-l-snapshot" name="snapshot" { (snapshot_options(d)) }
                }
                div {
                    label for="f-l-path" { "Directory in the snapshot (empty: all)" }
                    input id="f-l-path" name="path" type="text";
                }
                div {
                    label for="f-l-password" { "Account password of " (d.user) }
                    input id="f-l-password" type="password" autocomplete="current-password" required;
                }
                p role="status" {}
                button type="submit" disabled[d.connection.is_none() || d.vaults.is_empty()] { "Show the files" }
            }
            form.stack id="files-restore" method="post" action=(format!("{path}/restore")) hidden {
                (view::csrf(&v.csrf))
                input type="hidden" name="snapshot";
                ul.entries aria-label="Files of the snapshot" {}
                div {
                    label for="f-f-target" { "Restore the ticked paths into this directory of the device" }
                    input id="f-f-target" name="target" type="text" required;
                }
                button type="submit" { "Restore the ticked paths" }
            }
        }
    }
}

fn retention_form(v: &Visitor, path: &str, d: &DeviceControl) -> Markup {
    html! {
        section.card aria-label="Retention" {
            h2 { "Retention" }
            form.stack id="retention" method="post" action=(format!("{path}/retention")) {
                (view::csrf(&v.csrf))
                div {
                    label for="f-t-item" { "Item (its vault's policy)" }
                    select id="f-t-item" name="item" {
                        @for i in &d.items { option value=(format!("{}/{}", i.vault, i.name)) { (i.name) } }
                    }
                }
                button type="submit" disabled[d.items.is_empty()] { "Apply retention" }
            }
        }
    }
}

fn check_form(v: &Visitor, path: &str, d: &DeviceControl) -> Markup {
    html! {
        section.card aria-label="Check" {
            h2 { "Check" }
            form.stack id="check" method="post" action=(format!("{path}/check")) {
                (view::csrf(&v.csrf))
                div {
                    label for="f-c-vault" { "Vault" }
                    select id="f-c-vault" name="vault" { (vault_options(d)) }
                }
                div {
                    input id="f-c-read" name="read_data" type="checkbox" value="true";
                    label for="f-c-read" { " read and verify every chunk (--read-data)" }
                }
                button type="submit" disabled[d.vaults.is_empty()] { "Check" }
            }
        }
    }
}

/// A directory of the device: subdirectories to open, and every entry to
/// pick for a backup of those paths now.
fn browse_listing(v: &Visitor, path: &str, d: &DeviceControl, l: &DirListing) -> Markup {
    let child = |name: &str| format!("{}/{name}", l.path.trim_end_matches('/'));
    let parent = std::path::Path::new(&l.path)
        .parent()
        .map(|p| p.to_string_lossy().into_owned());
    html! {
        form.stack id="pick" method="post" action=(format!("{path}/backup")) aria-label="Pick paths" {
            (view::csrf(&v.csrf))
            input type="hidden" name="item" value="";
            @if let Some(p) = parent {
                p { a href=(format!("{path}?dir={}", urlencode(&p))) { "↑ " (p) } }
            }
            @if l.entries.is_empty() { p.empty { "An empty directory." } }
            ul.entries {
                @for (n, e) in l.entries.iter().enumerate() {
                    li {
                        input id=(format!("e-{n}")) type="checkbox" name="paths" value=(child(&e.name));
                        label for=(format!("e-{n}")) {
                            " " (e.name) @if e.dir { "/" } @else { " " span.muted { (human_bytes(e.size)) } }
                        }
                        @if e.dir { " " a href=(format!("{path}?dir={}", urlencode(&child(&e.name)))) aria-label=(format!("Open {}", e.name)) { "open" } }
                    }
                }
            }
            @if l.truncated { p.muted { "More entries than shown." } }
            div {
                label for="f-p-vault" { "Vault" }
                select id="f-p-vault" name="vault" { (vault_options(d)) }
            }
            button type="submit" { "Back up the picked paths now" }
        }
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|q| q.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

/// The device's jobs, a running one with its live page and "cancel".
fn jobs(v: &Visitor, path: &str, jobs: &[JobInfo]) -> Markup {
    view::table(
        "Jobs of the device",
        &["Started", "Kind", "Item", "Status", "Files", "Bytes", ""],
        jobs.iter()
            .map(|j| html! { tr {
                td { a href=(format!("/console/jobs/{}", j.id)) { (view::when(j.started_at)) } }
                td { (j.kind.name()) } td { (j.item.clone().unwrap_or_default()) }
                td { (view::status(j.status_name())) }
                td.num { (j.files) } td.num { (human_bytes(j.bytes)) }
                td { @if j.status.is_none() {
                    form.inline method="post" action=(format!("{path}/cancel")) {
                        (view::csrf(&v.csrf))
                        input type="hidden" name="job" value=(j.id);
                        button.danger type="submit" aria-label=(format!("Cancel job {}", j.id)) { "Cancel" }
                    }
                } }
            } })
            .collect(),
        "No jobs yet.",
    )
}

/// A dispatcher form's fields, all optional (each action reads its own;
/// `paths` may repeat).
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    /// Every line of every `name` field, trimmed, empty ones dropped.
    fn lines(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.lines().map(str::trim).map(str::to_owned))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// A `vault/rest` choice.
    fn pair(&self, name: &str) -> Result<(VaultId, String), Refused> {
        let v = self.one(name);
        let (vault, rest) = v
            .split_once('/')
            .ok_or_else(|| Refused::bad_request(&format!("pick a {name}")))?;
        Ok((vault_id(vault)?, rest.to_owned()))
    }
}

fn vault_id(s: &str) -> Result<VaultId, Refused> {
    s.parse()
        .map_err(|_| Refused::bad_request("pick one of the vaults"))
}

/// The API call of a dispatcher form: (API path suffix, JSON body).
fn request(action: &str, f: &Fields) -> Result<(&'static str, serde_json::Value), Refused> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| Refused::bad_request(&e.to_string()))
    };
    Ok(match action {
        "backup" => {
            let item = f.one("item");
            let body = if item.is_empty() {
                DispatchBackup {
                    item: None,
                    vault: Some(vault_id(&f.one("vault"))?),
                    paths: f.lines("paths"),
                }
            } else {
                DispatchBackup {
                    item: Some(item),
                    vault: None,
                    paths: Vec::new(),
                }
            };
            ("backup", json(serde_json::to_value(body))?)
        }
        "restore" => {
            let (vault, snapshot) = f.pair("snapshot")?;
            let body = DispatchRestore {
                vault,
                snapshot,
                target: f.one("target"),
                paths: f.lines("paths"),
            };
            ("restore", json(serde_json::to_value(body))?)
        }
        "retention" => {
            let (vault, item) = f.pair("item")?;
            let body = DispatchRetention { vault, item };
            ("retention", json(serde_json::to_value(body))?)
        }
        "check" => {
            let body = DispatchCheck {
                vault: vault_id(&f.one("vault"))?,
                read_data: f.one("read_data") == "true",
            };
            ("check", json(serde_json::to_value(body))?)
        }
        "cancel" => {
            let job: JobId = f
                .one("job")
                .parse()
                .map_err(|_| Refused::bad_request("not a job id"))?;
            (
                "cancel",
                json(serde_json::to_value(DispatchCancel { job }))?,
            )
        }
        "files" => {
            let (vault, snapshot) = f.pair("snapshot")?;
            let body = ListFiles {
                vault,
                snapshot,
                path: f.one("path"),
            };
            ("files", json(serde_json::to_value(body))?)
        }
        "disconnect" => ("disconnect", serde_json::Value::Null),
        _ => return Err(Refused::bad_request("no such action")),
    })
}

/// `POST /console/devices/{id}/{action}`: one dispatcher call; a job goes
/// to its live page, anything else back to the device.
async fn action(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let back = format!("/console/devices/{id}");
    let what = format!("The device's {action}");
    let fields = Fields(serde_urlencoded::from_bytes(&body).unwrap_or_default());
    let (suffix, json) = match request(&action, &fields) {
        Ok(r) => r,
        Err(r) => return done(&v, &back, &what, Err(r)),
    };
    let api_path = format!("{}/{suffix}", base(&id));
    let c = v.caller(&api);
    match suffix {
        "backup" | "restore" | "retention" | "check" => {
            match c.post::<_, Dispatched>(&api_path, &json).await {
                Ok(d) => Redirect::to(&format!("/console/jobs/{}", d.job)).into_response(),
                Err(r) => done(&v, &back, &what, Err(r)),
            }
        }
        // The page's script reads the sealed listing (or the refusal) as JSON.
        "files" => match c.post::<_, SealedListing>(&api_path, &json).await {
            Ok(l) => axum::Json(l).into_response(),
            Err(r) => (r.status, axum::Json(r.body)).into_response(),
        },
        _ => {
            let r = if json.is_null() {
                c.post_only(&api_path, &serde_json::json!({})).await
            } else {
                c.post_only(&api_path, &json).await
            };
            done(&v, &back, &what, r.map(drop))
        }
    }
}

/// `/console/jobs/{id}`: one job, followed live while it runs.
async fn job(v: Visitor, Extension(api): Extension<Api>, Path(id): Path<String>) -> Response {
    let list = match v.kind {
        Kind::Operator => "/api/v1/admin/jobs",
        Kind::User => "/api/v1/jobs",
    };
    let found = v
        .caller(&api)
        .get::<Vec<JobInfo>>(list)
        .await
        .map(|all| all.into_iter().find(|j| j.id.to_string() == id));
    let body = match found {
        Ok(Some(j)) => live(&j),
        Ok(None) => html! { p.empty { "No such job." } },
        Err(r) => view::refused("The job", &r),
    };
    view::page("Job", Some(&v.frame("/console/jobs")), body).into_response()
}

/// A job's fields; while it runs, the page's script replaces them with
/// each event of `/console/jobs/{id}/events`.
fn live(j: &JobInfo) -> Markup {
    let events = j
        .status
        .is_none()
        .then(|| format!("/console/jobs/{}/events", j.id));
    html! {
        section.card id="live" data-events=[events] aria-live="polite" aria-label="The job" {
            dl.job {
                dt { "Kind" } dd { (j.kind.name()) @if let Some(i) = &j.item { " of " (i) } }
                dt { "Device" } dd { a href=(format!("/console/devices/{}", j.device)) { (j.device_name) } " (" (j.user) ")" }
                dt { "Started" } dd { (view::when(j.started_at)) }
                @if let Some(by) = &j.dispatched_by { dt { "Dispatched by" } dd { (by) } }
                dt { "Status" } dd data-field="status" { (view::status(j.status_name())) }
                dt { "Files" } dd data-field="files" { (j.files) }
                dt { "Bytes" } dd data-field="bytes" { (j.bytes) }
                dt { "Error" } dd data-field="error" { (j.error.clone().unwrap_or_default()) }
            }
        }
    }
}

/// `/console/jobs/{id}/events`: the API's event stream of the job, as
/// this visitor.
async fn events(v: Visitor, Extension(api): Extension<Api>, Path(id): Path<String>) -> Response {
    v.caller(&api)
        .stream(&format!("/api/v1/jobs/{}/events", segment(&id)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Fields {
        Fields(serde_urlencoded::from_str(body).expect("form"))
    }

    /// Each form becomes exactly one API call; picked paths (repeated
    /// fields and lines) go together, an item wins over paths, and what
    /// cannot be an API body is refused before any call.
    #[test]
    fn forms_become_their_api_calls() {
        let vault = VaultId([7; 16]);
        let (path, body) = request("backup", &form("item=home&vault=x")).expect("item");
        assert_eq!(path, "backup");
        assert_eq!(body["item"], "home");
        assert!(body["vault"].is_null());
        let picked = format!("item=&paths=%2Fa&paths=%2Fb%0A%2Fc%0A&vault={vault}");
        let (_, body) = request("backup", &form(&picked)).expect("paths");
        assert_eq!(body["paths"], serde_json::json!(["/a", "/b", "/c"]));
        assert_eq!(body["vault"], vault.to_string());
        let restore = format!("snapshot={vault}%2Flatest&target=%2Ftmp%2Fr&paths=");
        let (_, body) = request("restore", &form(&restore)).expect("restore");
        assert_eq!(
            (body["snapshot"].as_str(), body["target"].as_str()),
            (Some("latest"), Some("/tmp/r"))
        );
        let (_, body) =
            request("retention", &form(&format!("item={vault}%2Fhome"))).expect("retention");
        assert_eq!(body["item"], "home");
        let (_, body) =
            request("check", &form(&format!("vault={vault}&read_data=true"))).expect("check");
        assert_eq!(body["read_data"], true);
        let (_, body) = request("check", &form(&format!("vault={vault}"))).expect("check");
        assert_eq!(body["read_data"], false);
        assert!(request("restore", &form("snapshot=latest&target=%2Ft")).is_err());
        assert!(request("backup", &form("item=&vault=nope")).is_err());
        assert!(request("cancel", &form("job=zz")).is_err());
        let files = format!("snapshot={vault}%2Flatest&path=%2Fhome");
        let (path, body) = request("files", &form(&files)).expect("files");
        assert_eq!(path, "files");
        assert_eq!(
            (body["snapshot"].as_str(), body["path"].as_str()),
            (Some("latest"), Some("/home"))
        );
        assert!(request("files", &form("snapshot=&path=")).is_err());
        assert!(request("format", &form("")).is_err());
        assert_eq!(
            request("disconnect", &form("")).expect("drop").0,
            "disconnect"
        );
    }
}
