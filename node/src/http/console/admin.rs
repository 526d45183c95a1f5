//! The operators' pages: the dashboard (cluster health, storage nodes,
//! license, overdue backups, failed jobs), users, devices, the job log
//! with filters, tiers, organizations, operators and the audit trail.
//! Each reads the admin API as the signed-in operator, so an org admin
//! sees their organization only and a read-only operator's forms are
//! refused by the API like their scripts would be.

use axum::extract::{Form, Path};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use cairn_proto::admin::{
    ClusterStatus, CreateUser, DefineTier, DisableUser, JobsQuery, Kdf, OverdueBackup, TierInfo,
    UserInfo,
};
use cairn_proto::api::{DeviceInfo, JobInfo, JobStatus};
use cairn_proto::console::{AuditInfo, ConfigureOrg, CreateOperator, OperatorInfo, OrgInfo};
use maud::{html, Markup};
use serde::Deserialize;

use super::call::{Api, Refused};
use super::{act, done, view, Visitor};
use crate::http::HttpState;
use crate::present::{human_bytes, Health};
use cairn_proto::route::segment;

/// The admin pages' own routes (the dashboard, devices and job log share
/// their paths with the user's pages, see [`super::routes`]).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/console/users", get(users).post(create_user))
        .route("/console/users/{name}/disable", post(disable_user))
        .route("/console/users/{name}/enable", post(enable_user))
        .route("/console/tiers", get(tiers).post(define_tier))
        .route("/console/orgs", get(orgs).post(configure_org))
        .route("/console/operators", get(operators).post(create_operator))
        .route("/console/operators/{name}/revoke", post(revoke_sessions))
        .route("/console/operators/{name}/remove", post(remove_operator))
        .route("/console/audit", get(audit))
}

/// A section read from the API: its markup, or the API's refusal in its
/// place (a read-only or org admin may be refused one section only).
fn section<T>(what: &str, r: Result<T, Refused>, show: impl FnOnce(T) -> Markup) -> Markup {
    match r {
        Ok(v) => show(v),
        Err(e) => view::refused(what, &e),
    }
}

/// The dashboard: health, members, storage nodes, license, overdue
/// backups, failed jobs.
pub async fn dashboard(v: &Visitor, api: &Api) -> Response {
    let c = v.caller(api);
    let status = c.get::<ClusterStatus>("/api/v1/cluster/status").await;
    let overdue = c
        .get::<Vec<OverdueBackup>>("/api/v1/admin/backups/overdue")
        .await;
    let failed = c
        .get::<Vec<JobInfo>>("/api/v1/admin/jobs?status=error")
        .await;
    let body = html! {
        (section("Cluster status", status, cluster))
        h2 { "Overdue backups" }
        (section("Overdue backups", overdue, |o| view::table("Overdue backups",
            &["User", "Device", "Schedule", "Item", "Spec", "Last success", "Due by"],
            o.iter().map(|o| html! { tr {
                td { (o.user) } td { (o.device_name) } td { (o.schedule) } td { (o.item) }
                td { code { (o.spec) } } td { (view::when_opt(o.last_success)) } td { (view::when(o.due_by)) }
            } }).collect(), "No backup is overdue.")))
        h2 { "Failed jobs" }
        (section("Failed jobs", failed, |j| jobs_table(&j.into_iter().rev().take(20).collect::<Vec<_>>())))
    };
    view::page("Dashboard", Some(&v.frame("/console/")), body).into_response()
}

fn cluster(s: ClusterStatus) -> Markup {
    // This node cannot tell which members answer (`cairnd cluster status`
    // asks each); the rest of the verdict is the CLI's.
    let health = Health {
        unreachable: Vec::new(),
        ..Health::of(&s)
    };
    html! {
        div.cards {
            section.card aria-label="Health" {
                h2 { "Health" }
                p class=(if health.healthy() { "ok" } else { "bad" }) { (health.verdict()) }
                p.muted { "Answered by node " (s.node_id) " (" (s.role) "), term " (s.term) }
            }
            section.card aria-label="License" {
                h2 { "License" }
                @match &s.license {
                    Some(l) => {
                        p class=(if l.mode == "read_only" { "bad" } else { "ok" }) { (l.mode) }
                        @if let Some(d) = &l.detail { p { (d) } }
                        @if let Some(serial) = &l.serial { p.muted { "Serial " (serial) } }
                        @if let Some(exp) = l.expires_at { p.muted { "Lease until " (view::when(exp)) } }
                    }
                    None => p.muted { "No license information." }
                }
            }
        }
        h2 { "Members" }
        (view::table("Members", &["Node", "Address", "Voter", "Roles", "Matched index"],
            s.members.iter().map(|m| html! { tr {
                td { (m.id) @if s.leader == Some(m.id) { " (leader)" } }
                td { (m.addr) } td { (if m.voter { "yes" } else { "learner" }) }
                td { (m.roles.join(", ")) }
                td.num { (m.matched_index.map_or_else(String::new, |i| i.to_string())) }
            } }).collect(), "No members."))
        h2 { "Storage nodes" }
        (view::table("Storage nodes", &["Node", "Address", "Status", "Chunks", "Bytes", "Labels"],
            s.storage_nodes.iter().map(|n| html! { tr {
                td { (n.id) } td { (n.addr) } td { (n.status) }
                td.num { (n.chunks.map_or_else(String::new, |c| c.to_string())) }
                td.num { (n.bytes.map_or_else(String::new, human_bytes)) }
                td { (n.labels.join(", ")) }
            } }).collect(), "No storage nodes."))
    }
}

/// Jobs as a table (the job log and the dashboard's failed jobs).
pub fn jobs_table(jobs: &[JobInfo]) -> Markup {
    view::table(
        "Jobs",
        &[
            "Started", "User", "Device", "Kind", "Item", "Status", "Files", "Bytes", "Error",
        ],
        jobs.iter()
            .map(|j| {
                html! { tr {
                    td { (view::when(j.started_at)) } td { (j.user) } td { (j.device_name) }
                    td { (j.kind.name()) } td { (j.item.clone().unwrap_or_default()) }
                    td { (view::status(j.status_name())) }
                    td.num { (j.files) } td.num { (human_bytes(j.bytes)) }
                    td { (j.error.clone().unwrap_or_default()) }
                } }
            })
            .collect(),
        "No jobs.",
    )
}

async fn users(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let c = v.caller(&api);
    let users = c.get::<Vec<UserInfo>>("/api/v1/admin/users").await;
    let orgs = c
        .get::<Vec<OrgInfo>>("/api/v1/admin/orgs")
        .await
        .unwrap_or_default();
    let body = html! {
        (section("Users", users, |u| view::table("Users", &["Name", "Organization", "Devices", "Vaults", "Created", "State", ""],
            u.iter().map(|u| html! { tr {
                td { (u.name) } td { (u.org) } td.num { (u.devices) } td.num { (u.vaults) } td { (view::when(u.created_at)) }
                td { (account_state(u)) }
                td { (account_switch(&v.csrf, u)) }
            } }).collect(), "No users yet.")))
        h2 { "Create a user" }
        (view::credentials_form("/console/users", &v.csrf, "Create user", html! {
            (view::text_input("name", "Login name", true))
            (org_select("Organization", None, &orgs))
        }))
    };
    view::page("Users", Some(&v.frame("/console/users")), body).into_response()
}

/// Enabled, or disabled with the operator's reason.
fn account_state(u: &UserInfo) -> Markup {
    html! {
        @match &u.disabled {
            None => span.ok { "enabled" },
            Some(reason) => {
                span.bad { "disabled" }
                @if !reason.is_empty() { " (" (reason) ")" }
            }
        }
    }
}

/// Disable (with an optional reason shown to the user) or enable again;
/// the API decides who may (a cluster admin, an org admin for their
/// organization).
fn account_switch(csrf: &str, u: &UserInfo) -> Markup {
    let base = format!("/console/users/{}", segment(&u.name));
    html! {
        @if u.disabled.is_some() {
            form.inline method="post" action=(format!("{base}/enable")) {
                (view::csrf(csrf))
                button type="submit" aria-label=(format!("Enable {}", u.name)) { "Enable" }
            }
        } @else {
            form.inline method="post" action=(format!("{base}/disable")) {
                (view::csrf(csrf))
                div {
                    label for=(format!("r-{}", u.name)) { "Reason" }
                    input id=(format!("r-{}", u.name)) name="reason" type="text";
                }
                button.danger type="submit" aria-label=(format!("Disable {}", u.name)) { "Disable" }
            }
        }
    }
}

/// `POST /console/users/{name}/disable`.
async fn disable_user(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
    Form(f): Form<DisableUser>,
) -> Response {
    let path = format!("/api/v1/admin/users/{}/disable", segment(&name));
    act(
        &v,
        &api,
        &path,
        &f,
        "/console/users",
        "Disabling the account",
    )
    .await
}

/// `POST /console/users/{name}/enable`.
async fn enable_user(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/api/v1/admin/users/{}/enable", segment(&name));
    let none = serde_json::json!({});
    act(
        &v,
        &api,
        &path,
        &none,
        "/console/users",
        "Enabling the account",
    )
    .await
}

/// The organization picker of a form (`none` adds an empty choice).
fn org_select(label: &str, none: Option<&str>, orgs: &[OrgInfo]) -> Markup {
    html! {
        div {
            label for="f-org" { (label) }
            select id="f-org" name="org" {
                @if let Some(none) = none { option value="" { (none) } }
                @for o in orgs { option value=(o.name) { (o.name) } }
            }
        }
    }
}

/// A form that created credentials in the browser: the login key and the
/// parameters it was derived with (strings: a flattened form body keeps
/// every value as text).
#[derive(Deserialize)]
struct Derived {
    login_key: String,
    kdf_memory_kib: String,
    kdf_iterations: String,
    kdf_parallelism: String,
    kdf_salt: String,
}

impl Derived {
    fn kdf(&self) -> Result<Kdf, Refused> {
        let number = |v: &str| {
            v.parse::<u32>().map_err(|_| {
                Refused::bad_request("the key's parameters are not numbers (is JavaScript on?)")
            })
        };
        Ok(Kdf {
            memory_kib: number(&self.kdf_memory_kib)?,
            iterations: number(&self.kdf_iterations)?,
            parallelism: number(&self.kdf_parallelism)?,
            salt: self.kdf_salt.clone(),
        })
    }
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    #[serde(default)]
    org: String,
    #[serde(flatten)]
    derived: Derived,
}

async fn create_user(
    v: Visitor,
    Extension(api): Extension<Api>,
    Form(f): Form<NewUser>,
) -> Response {
    let to = ("/api/v1/admin/users", "/console/users");
    create_with(
        &v,
        &api,
        f.derived,
        to,
        "Creating the user",
        |kdf, login_key| CreateUser {
            name: f.name,
            kdf,
            login_key,
            org: (!f.org.is_empty()).then_some(f.org),
        },
    )
    .await
}

/// Posts a credentials form's API body, built by `body` from the KDF
/// parameters and login key the browser derived, to `to.0`; back to
/// `to.1`.
async fn create_with<B: serde::Serialize>(
    v: &Visitor,
    api: &Api,
    derived: Derived,
    to: (&str, &str),
    what: &str,
    body: impl FnOnce(Kdf, String) -> B,
) -> Response {
    match derived.kdf() {
        Ok(kdf) => act(v, api, to.0, &body(kdf, derived.login_key), to.1, what).await,
        Err(r) => done(v, to.1, what, Err(r)),
    }
}

/// Every device the operator sees, with its account's name.
pub async fn devices(v: &Visitor, api: &Api) -> Response {
    let c = v.caller(api);
    let devices = c.get::<Vec<DeviceInfo>>("/api/v1/admin/devices").await;
    let users = c
        .get::<Vec<UserInfo>>("/api/v1/admin/users")
        .await
        .unwrap_or_default();
    let owner = |d: &DeviceInfo| {
        let id = d.account.to_string();
        users
            .iter()
            .find(|u| u.id == id)
            .map_or(id, |u| u.name.clone())
    };
    let online = view::Online::read(&c).await;
    let body = section("Devices", devices, |ds| {
        view::table(
            "Devices",
            &["Device", "User", "Connection", "Registered", "Last login", "State", ""],
            ds.iter()
                .map(|d| html! { tr {
                    td { a href=(format!("/console/devices/{}", d.id)) { (d.name) } } td { (owner(d)) }
                    td { (online.of(d.id)) } td { (view::when(d.registered_at)) }
                    td { (view::when(d.last_login_at)) }
                    td { @if let Some(r) = d.revoked_at { "revoked " (view::when(r)) } @else { span.ok { "active" } } }
                    td { @if d.revoked_at.is_none() {
                        (view::button_form(&format!("/console/devices/{}/revoke", d.id), &v.csrf, "Revoke", &format!("Revoke device {}", d.name)))
                    } }
                } })
                .collect(),
            "No devices.",
        )
    });
    view::page("Devices", Some(&v.frame("/console/devices")), body).into_response()
}

/// The job log, filtered by status and account (htmx swaps the table as
/// the filters change; the URL keeps them).
pub async fn jobs(v: &Visitor, api: &Api, q: JobsQuery) -> Response {
    let q = JobsQuery {
        status: q.status.filter(|s| !s.is_empty()),
        account: q.account.filter(|s| !s.is_empty()),
        since_ms: q.since_ms,
    };
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    let jobs = v
        .caller(api)
        .get::<Vec<JobInfo>>(&format!("/api/v1/admin/jobs?{query}"))
        .await;
    let statuses = std::iter::once("running").chain(JobStatus::ALL.iter().map(|s| s.name()));
    let body = html! {
        form.inline method="get" action="/console/jobs" hx-get="/console/jobs" hx-target="#jobs"
            hx-select="#jobs" hx-swap="outerHTML" hx-push-url="true" hx-trigger="change, submit" role="search" {
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "any" }
                    @for s in statuses { option value=(s) selected[q.status.as_deref() == Some(s)] { (s) } }
                }
            }
            div {
                label for="f-account" { "User" }
                input id="f-account" name="account" type="text" value=(q.account.clone().unwrap_or_default());
            }
            button type="submit" { "Filter" }
        }
        div id="jobs" {
            (section("Job log", jobs, |j| jobs_table(&j.into_iter().rev().collect::<Vec<_>>())))
        }
    };
    view::page("Job log", Some(&v.frame("/console/jobs")), body).into_response()
}

async fn tiers(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let tiers = v
        .caller(&api)
        .get::<Vec<TierInfo>>("/api/v1/admin/tiers")
        .await;
    let body = html! {
        (section("Tiers", tiers, |t| view::table("Tiers", &["Name", "Replicas", "Quota", "Requestable", "Labels", "Description"],
            t.iter().map(|t| html! { tr {
                td { (t.tier.name) } td.num { (t.tier.replicas) }
                td.num { (t.tier.quota_bytes.map_or_else(|| "unlimited".to_string(), human_bytes)) }
                td { (if t.tier.requestable { "yes" } else { "no" }) }
                td { (t.labels.join(", ")) } td { (t.tier.description) }
            } }).collect(), "No tiers.")))
        h2 { "Define a tier" }
        form.stack method="post" action="/console/tiers" {
            (view::csrf(&v.csrf))
            (view::text_input("name", "Name", true))
            div { label for="f-replicas" { "Replicas" } input id="f-replicas" name="replicas" type="number" min="1" max="9" value="2" required; }
            div { label for="f-quota" { "Quota per vault, bytes (empty: unlimited)" } input id="f-quota" name="quota_bytes" type="number" min="1"; }
            (view::text_input("description", "Description", false))
            button type="submit" { "Define tier" }
        }
    };
    view::page("Tiers", Some(&v.frame("/console/tiers")), body).into_response()
}

#[derive(Deserialize)]
struct NewTier {
    name: String,
    replicas: u8,
    #[serde(default)]
    quota_bytes: String,
    #[serde(default)]
    description: String,
}

async fn define_tier(
    v: Visitor,
    Extension(api): Extension<Api>,
    Form(f): Form<NewTier>,
) -> Response {
    let quota_bytes = match f.quota_bytes.trim() {
        "" => None,
        q => match q.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                let r = Refused::bad_request("the quota must be a number of bytes");
                return done(&v, "/console/tiers", "Defining the tier", Err(r));
            }
        },
    };
    let body = DefineTier {
        name: f.name,
        replicas: f.replicas,
        requestable: true,
        quota_bytes,
        description: f.description,
        labels: Vec::new(),
    };
    act(
        &v,
        &api,
        "/api/v1/admin/tiers",
        &body,
        "/console/tiers",
        "Defining the tier",
    )
    .await
}

async fn orgs(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let orgs = v
        .caller(&api)
        .get::<Vec<OrgInfo>>("/api/v1/admin/orgs")
        .await;
    let body = html! {
        (section("Organizations", orgs, |o| view::table("Organizations", &["Name", "Display name", "Support", "Tiers", "Users"],
            o.iter().map(|o| html! { tr {
                td { (o.name) } td { (o.display_name) } td { (o.support_url) }
                td { (if o.tiers.is_empty() { "all requestable".to_string() } else { o.tiers.join(", ") }) }
                td.num { (o.users) }
            } }).collect(), "No organizations.")))
        h2 { "Create or rebrand an organization" }
        form.stack method="post" action="/console/orgs" {
            (view::csrf(&v.csrf))
            (view::text_input("name", "Name", true))
            (view::text_input("display_name", "Display name", false))
            (view::text_input("support_url", "Support URL", false))
            (view::text_input("tiers", "Tiers it offers (comma-separated; empty: all)", false))
            button type="submit" { "Save organization" }
        }
    };
    view::page("Organizations", Some(&v.frame("/console/orgs")), body).into_response()
}

#[derive(Deserialize)]
struct NewOrg {
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    support_url: String,
    #[serde(default)]
    tiers: String,
}

async fn configure_org(
    v: Visitor,
    Extension(api): Extension<Api>,
    Form(f): Form<NewOrg>,
) -> Response {
    let body = ConfigureOrg {
        name: f.name,
        display_name: f.display_name,
        support_url: f.support_url,
        tiers: f
            .tiers
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    act(
        &v,
        &api,
        "/api/v1/admin/orgs",
        &body,
        "/console/orgs",
        "Saving the organization",
    )
    .await
}

async fn operators(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let c = v.caller(&api);
    let ops = c.get::<Vec<OperatorInfo>>("/api/v1/admin/operators").await;
    let orgs = c
        .get::<Vec<OrgInfo>>("/api/v1/admin/orgs")
        .await
        .unwrap_or_default();
    let body = html! {
        (section("Operators", ops, |o| view::table("Operators", &["Name", "Role", "Organization", "Sessions", "Created", ""],
            o.iter().map(|o| html! { tr {
                td { (o.name) } td { (o.role) } td { (o.org.clone().unwrap_or_else(|| "all".into())) }
                td.num { (o.sessions.len()) } td { (view::when(o.created_at)) }
                td {
                    (view::button_form(&format!("/console/operators/{}/revoke", segment(&o.name)), &v.csrf, "Sign out everywhere", &format!("Revoke every session of {}", o.name)))
                    (view::button_form(&format!("/console/operators/{}/remove", segment(&o.name)), &v.csrf, "Remove", &format!("Remove operator {}", o.name)))
                }
            } }).collect(), "No operators.")))
        h2 { "Create an operator" }
        (view::credentials_form("/console/operators", &v.csrf, "Create operator", html! {
            (view::text_input("name", "Name", true))
            div {
                label for="f-role" { "Role" }
                select id="f-role" name="role" {
                    option value="org-admin" { "org admin" }
                    option value="read-only" { "read-only" }
                    option value="cluster-admin" { "cluster admin" }
                }
            }
            (org_select("Organization (not for a cluster admin)", Some("none"), &orgs))
        }))
    };
    view::page("Operators", Some(&v.frame("/console/operators")), body).into_response()
}

#[derive(Deserialize)]
struct NewOperator {
    name: String,
    role: String,
    #[serde(default)]
    org: String,
    #[serde(flatten)]
    derived: Derived,
}

async fn create_operator(
    v: Visitor,
    Extension(api): Extension<Api>,
    Form(f): Form<NewOperator>,
) -> Response {
    let to = ("/api/v1/admin/operators", "/console/operators");
    create_with(
        &v,
        &api,
        f.derived,
        to,
        "Creating the operator",
        |kdf, login_key| CreateOperator {
            name: f.name,
            role: f.role,
            org: (!f.org.is_empty()).then_some(f.org),
            kdf,
            login_key,
            // Enrolment shows the secret once, to the operator: they enrol
            // on their own page (`/console/account`) with their password.
            totp: false,
        },
    )
    .await
}

async fn revoke_sessions(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    act(
        &v,
        &api,
        &format!("/api/v1/admin/operators/{}/revoke", segment(&name)),
        &cairn_proto::console::RevokeSessions::default(),
        "/console/operators",
        "Revoking the sessions",
    )
    .await
}

async fn remove_operator(
    v: Visitor,
    Extension(api): Extension<Api>,
    Path(name): Path<String>,
) -> Response {
    act(
        &v,
        &api,
        &format!("/api/v1/admin/operators/{}/remove", segment(&name)),
        &serde_json::json!({}),
        "/console/operators",
        "Removing the operator",
    )
    .await
}

async fn audit(v: Visitor, Extension(api): Extension<Api>) -> Response {
    let trail = v
        .caller(&api)
        .get::<Vec<AuditInfo>>("/api/v1/admin/audit")
        .await;
    let body = section("Audit trail", trail, |t| {
        view::table(
            "Audit trail",
            &["#", "When", "Who", "From", "Action", "Target"],
            t.iter()
                .rev()
                .take(200)
                .map(|e| html! { tr {
                    td.num { (e.seq) } td { (view::when(e.at)) } td { (e.actor) } td { (e.from) }
                    td { code { (e.action) } } td { (e.target) }
                } })
                .collect(),
            "The trail is empty.",
        )
    });
    view::page("Audit trail", Some(&v.frame("/console/audit")), body).into_response()
}
