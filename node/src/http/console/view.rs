//! The console's page frame and the pieces every page is built from
//! (maud templates: markup is checked at compile time and every
//! interpolated value is HTML-escaped). No inline script or style
//! anywhere, so the Content-Security-Policy can forbid both.

use maud::{html, Markup, DOCTYPE};

use super::assets;
use super::call::Refused;
use super::session::{Kind, CSRF_FIELD};
use crate::present::local_time;

/// The signed-in frame's context: who (for the navigation) and the CSRF
/// token of the page's forms.
pub struct Frame<'a> {
    /// Operator or user pages.
    pub kind: Kind,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The path of the page (marks the current navigation entry).
    pub path: &'a str,
}

/// The navigation of each kind of visitor: (path, label).
fn nav(kind: Kind) -> &'static [(&'static str, &'static str)] {
    match kind {
        Kind::Operator => &[
            ("/console/", "Dashboard"),
            ("/console/users", "Users"),
            ("/console/devices", "Devices"),
            ("/console/jobs", "Job log"),
            ("/console/tiers", "Tiers"),
            ("/console/orgs", "Organizations"),
            ("/console/operators", "Operators"),
            ("/console/audit", "Audit trail"),
            ("/console/account", "My sign-in"),
        ],
        Kind::User => &[
            ("/console/", "My devices"),
            ("/console/vaults", "Vaults & snapshots"),
            ("/console/items", "Items & schedules"),
            ("/console/jobs", "Job history"),
        ],
    }
}

/// The document around `body`: head with the vendored assets, and for a
/// signed-in visitor the header (sign-out form) and navigation.
pub fn page(title: &str, frame: Option<&Frame>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not inject its indicator style (the CSP forbids
                // inline style) nor evaluate attributes.
                meta name="htmx-config" content="{\"includeIndicatorStyles\":false,\"allowEval\":false,\"allowScriptTags\":false}";
                title { (title) " · Cairn" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("htmx-2.0.11.min.js")) defer {}
                script src=(assets::url("hash-wasm-argon2-4.13.0.umd.min.js")) defer {}
                script src=(assets::url("console.js")) defer {}
            }
            body {
                @if let Some(f) = frame {
                    header.top {
                        span.brand { "Cairn" }
                        span.muted { (match f.kind { Kind::Operator => "administration", Kind::User => "my backups" }) }
                        form method="post" action="/console/logout" {
                            (csrf(f.csrf))
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                    div.shell {
                        nav.side aria-label="Sections" hx-boost="true" {
                            ul {
                                @for (href, label) in nav(f.kind) {
                                    li { a href=(href) aria-current=[(*href == f.path).then_some("page")] { (label) } }
                                }
                            }
                        }
                        main id="main" { h1 { (title) } (body) }
                    }
                } @else {
                    main id="main" { (body) }
                }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(token); }
}

/// A table with a caption-like heading, or a note when there are no rows.
pub fn table(label: &str, head: &[&str], rows: Vec<Markup>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            div.table-wrap {
                table aria-label=(label) {
                    thead { tr { @for h in head { th scope="col" { (h) } } } }
                    tbody { @for r in rows { (r) } }
                }
            }
        }
    }
}

/// A time in ms since the epoch (the node's local time).
pub fn when(ms: u64) -> Markup {
    html! { time { (local_time(ms)) } }
}

/// An optional time; "never" without one.
pub fn when_opt(ms: Option<u64>) -> Markup {
    match ms {
        Some(ms) => when(ms),
        None => html! { span.muted { "never" } },
    }
}

/// A job status, coloured by outcome.
pub fn status(name: &str) -> Markup {
    let class = match name {
        "succeeded" => "ok",
        "running" | "revived" => "muted",
        _ => "bad",
    };
    html! { span class=(class) { (name) } }
}

/// A section's API call failed: what the API said, in place of the section.
/// An ended session (`401`) says so and links to the login form.
pub fn refused(what: &str, r: &Refused) -> Markup {
    html! {
        div.flash.error role="alert" {
            (what) ": " strong { (r.body.code) } " — " (r.body.message)
            @if r.status == axum::http::StatusCode::UNAUTHORIZED {
                " Your session has ended: " a href="/console/login" { "sign in again" } "."
            }
        }
    }
}

/// A one-button form posting to `action` (revoke, remove…).
pub fn button_form(action: &str, token: &str, label: &str, aria: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(token))
            button.danger type="submit" aria-label=(aria) { (label) }
        }
    }
}

/// The hidden fields a `data-derive` form fills (see `assets/console.js`):
/// the login key and, for `create`, the parameters it was derived with.
pub fn derived_fields(create: bool) -> Markup {
    html! {
        input type="hidden" name="login_key" value="";
        @if create {
            input type="hidden" name="kdf_memory_kib" value="";
            input type="hidden" name="kdf_iterations" value="";
            input type="hidden" name="kdf_parallelism" value="";
            input type="hidden" name="kdf_salt" value="";
        }
    }
}

/// A form creating credentials (a user, an operator): `fields`, then an
/// initial password the page's script turns into a login key with a fresh
/// salt and the default cost ([`cairn_proto::kdf::Cost`]), posted with
/// the key and its parameters, never the password.
pub fn credentials_form(action: &str, token: &str, submit: &str, fields: Markup) -> Markup {
    let cost = cairn_proto::kdf::Cost::default();
    html! {
        form.stack method="post" action=(action) data-derive="create"
            data-memory-kib=(cost.memory_kib) data-iterations=(cost.iterations)
            data-parallelism=(cost.parallelism) {
            (csrf(token))
            (fields)
            (password_input("new-password", "Initial password", "new-password"))
            (derived_fields(true))
            button type="submit" { (submit) }
            p.muted role="status" aria-live="polite" {
                "The password is turned into a login key in this browser."
            }
        }
    }
}

/// A password input that is never submitted (no `name`): the page's
/// script derives the login key from it.
pub fn password_input(id: &str, label: &str, autocomplete: &str) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            input id=(id) type="password" required autocomplete=(autocomplete);
        }
    }
}

/// A labelled text input named `name`.
pub fn text_input(name: &str, label: &str, required: bool) -> Markup {
    let id = format!("f-{name}");
    html! {
        div {
            label for=(id) { (label) }
            input id=(id) name=(name) type="text" required[required];
        }
    }
}

/// The error page of a refused action.
pub fn action_refused(frame: &Frame, what: &str, r: &Refused, back: &str) -> Markup {
    page(
        what,
        Some(frame),
        html! {
            (refused(what, r))
            p { a href=(back) { "Back" } }
        },
    )
}

/// The live connections the visitor sees (`GET /api/v1/control`), to show
/// each device online or offline; none when the API refuses.
pub struct Online(Vec<cairn_proto::control::ConnectionInfo>);

impl Online {
    /// Reads the connections as `c`.
    pub async fn read(c: &super::call::Caller<'_>) -> Self {
        Online(c.get("/api/v1/control").await.unwrap_or_default())
    }

    /// `device`'s state: online (node, version) or offline.
    pub fn of(&self, device: cairn_proto::DeviceId) -> Markup {
        match self.0.iter().find(|c| c.device == device) {
            Some(c) => html! {
                span.ok { "online" } " " span.muted { "node " (c.node) ", cairn " (c.client_version) }
            },
            None => html! { span.muted { "offline" } },
        }
    }
}
