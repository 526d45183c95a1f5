//! The web console at `/` (`/console/…`) of every node with the auth role:
//! server-rendered pages ([`view`], maud) for operators (dashboard, users,
//! devices, job log, tiers, organizations, operators, audit trail;
//! [`admin`]) and for users (their devices, vaults and snapshots, items
//! and schedules, job history; [`user`]), with htmx for in-place updates,
//! and for both the dispatcher ([`control`]: a device's page acting on it
//! through its live connection, a job's page following it live).
//!
//! API first: a page reads, and a form acts, only by calling the node's
//! own `/api/v1` routes in-process ([`call`]) with the session's token,
//! so the console can do nothing a script cannot, and the API's
//! authorization (organizations, roles, accounts) is the console's.
//!
//! An operator enrols in or removes TOTP on their own page ([`account`]).
//!
//! Signing in ([`login`]): the page's script derives the login key with
//! argon2id in the browser (vendored WASM, [`assets`]) exactly as `cairn
//! login` does, and posts only that key; the password never leaves the
//! browser. The session is a cookie holding the API token
//! ([`session`]: `HttpOnly`, `SameSite=Strict`, `Secure` off loopback).
//! Every post must carry the form's CSRF token ([`guard`], before any
//! handler runs), and every answer carries a strict
//! Content-Security-Policy ([`session::CSP`]: no inline script, WASM
//! allowed).
//!
//! Adding a page: a handler taking [`Visitor`] and [`Api`], calling the
//! API through [`Visitor::caller`], rendering with [`view::page`]; an
//! action is a form posting to a console path whose handler calls one
//! API route and redirects back (`303`), or renders the API's refusal.

pub mod account;
pub mod admin;
pub mod assets;
pub mod call;
pub mod control;
pub mod login;
pub mod session;
pub mod user;
pub mod view;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

pub use call::Api;
use call::Caller;
use session::Kind;

use super::{ClientAddr, HttpState};

/// Largest console form body (the forms are a few short fields).
const FORM_LIMIT: usize = 16 * 1024;

/// The console's routes, calling `api` in-process.
pub fn routes(api: Router) -> Router<HttpState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/", get(home))
        .route("/console/devices", get(devices))
        .route("/console/devices/{id}/revoke", post(revoke_device))
        .route("/console/jobs", get(jobs))
        .merge(admin::routes())
        .merge(account::routes())
        .merge(user::routes())
        .merge(control::routes())
        .layer(middleware::from_fn(guard))
        .layer(Extension(Api(api)))
}

/// A signed-in visitor: the session's token and kind, the CSRF token of
/// its forms and the browser's address. Without a session cookie, a page
/// redirects to the login form.
pub struct Visitor {
    /// The API token the session cookie holds.
    pub token: String,
    /// Operator or user.
    pub kind: Kind,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// The browser's address.
    pub peer: Option<SocketAddr>,
}

impl Visitor {
    /// The API caller acting as this visitor.
    pub fn caller<'a>(&'a self, api: &'a Api) -> Caller<'a> {
        Caller {
            api,
            token: Some(&self.token),
            peer: self.peer,
        }
    }

    /// The page frame of `path` for this visitor.
    pub fn frame<'a>(&'a self, path: &'a str) -> view::Frame<'a> {
        view::Frame {
            kind: self.kind,
            csrf: &self.csrf,
            path,
        }
    }
}

/// The browser's address (axum `ConnectInfo`, set by the accept loop).
fn peer_of(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0 .0)
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let token = session::cookie(&parts.headers, session::SESSION_COOKIE);
        match token.and_then(|t| Some((t, Kind::of(t)?))) {
            Some((token, kind)) => Ok(Visitor {
                token: token.to_owned(),
                kind,
                csrf: session::csrf_for(token),
                peer: peer_of(parts),
            }),
            None => Err(Redirect::to("/console/login").into_response()),
        }
    }
}

/// Every console request: a post is refused (`403`) unless its form
/// carries the CSRF token ([`session::csrf_ok`]); every answer gets the
/// security headers (CSP, no framing, no sniffing, no referrer, no
/// caching of pages).
async fn guard(request: Request, next: Next) -> Response {
    let request = if request.method() == Method::POST {
        let login_form = request.uri().path() == "/console/login";
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return secure((StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response());
        };
        if !session::csrf_ok(&parts.headers, login_form, &bytes) {
            let page = view::page(
                "Refused",
                None,
                maud::html! {
                    div.flash.error role="alert" {
                        "This form was refused: it did not carry this session's CSRF token. "
                        a href="/console/" { "Reload the console" } " and try again."
                    }
                },
            );
            return secure((StatusCode::FORBIDDEN, page).into_response());
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        request
    };
    secure(next.run(request).await)
}

fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(session::CSP),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `/console/`: the operator's dashboard or the user's devices.
async fn home(v: Visitor, Extension(api): Extension<Api>) -> Response {
    match v.kind {
        Kind::Operator => admin::dashboard(&v, &api).await,
        Kind::User => user::devices(&v, &api).await,
    }
}

/// `/console/devices`: every visible device (operators) or the user's.
async fn devices(v: Visitor, Extension(api): Extension<Api>) -> Response {
    match v.kind {
        Kind::Operator => admin::devices(&v, &api).await,
        Kind::User => user::devices(&v, &api).await,
    }
}

/// `POST /console/devices/{id}/revoke`: an operator revokes any device
/// they see (`/api/v1/admin/devices/{id}/revoke`), a user one of theirs
/// (`/api/v1/devices/{id}/revoke`).
async fn revoke_device(
    v: Visitor,
    Extension(api): Extension<Api>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let (api_path, back) = match v.kind {
        Kind::Operator => ("/api/v1/admin/devices", "/console/devices"),
        Kind::User => ("/api/v1/devices", "/console/"),
    };
    let path = format!("{api_path}/{}/revoke", cairn_proto::route::segment(&id));
    act(
        &v,
        &api,
        &path,
        &serde_json::json!({}),
        back,
        "Revoking the device",
    )
    .await
}

/// `/console/jobs`: the job log with filters (operators) or the user's
/// job history.
async fn jobs(
    v: Visitor,
    Extension(api): Extension<Api>,
    query: axum::extract::Query<cairn_proto::admin::JobsQuery>,
) -> Response {
    match v.kind {
        Kind::Operator => admin::jobs(&v, &api, query.0).await,
        Kind::User => user::jobs(&v, &api).await,
    }
}

/// An action that is one API call: `POST api_path` with `body` as the
/// visitor, then back to `back`, or the API's refusal as a page.
pub async fn act<B: serde::Serialize>(
    v: &Visitor,
    api: &Api,
    api_path: &str,
    body: &B,
    back: &str,
    what: &str,
) -> Response {
    let r = v.caller(api).post_only(api_path, body).await;
    done(v, back, what, r.map(drop))
}

/// After an action: back to `to` (`303`), or the API's refusal as a page.
pub fn done(v: &Visitor, to: &str, what: &str, result: Result<(), call::Refused>) -> Response {
    match result {
        Ok(()) => Redirect::to(to).into_response(),
        Err(r) => (r.status, view::action_refused(&v.frame(to), what, &r, to)).into_response(),
    }
}
