//! Signing in and out of the console. The login form's script fetches
//! the KDF parameters (`/api/v1/login/params` or
//! `/api/v1/operators/login/params`), derives the login key in the
//! browser and posts only the name and that key; [`submit`] logs in
//! through `POST /api/v1/login` (a user: the browser becomes the
//! account's device `web console`) or `POST /api/v1/operators/login` and
//! keeps the token in the session cookie. Signing out ends the session
//! through the API too: the operator's session is revoked, the user's
//! browser device is revoked.

use axum::extract::Form;
use axum::http::header::SET_COOKIE;
use axum::http::HeaderMap;
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Extension;
use cairn_proto::api::{AccountInfo, LoginReply, LoginRequest};
use cairn_proto::console::{OperatorLogin, OperatorSessionReply};
use maud::html;
use serde::Deserialize;

use super::call::{Api, Caller, Refused};
use super::session::{self, Kind, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::{view, Visitor};
use crate::http::api::Peer;

/// The device name a user's browser session is registered under.
pub const WEB_DEVICE: &str = "web console";

/// `GET /console/login`: the form, with a fresh login CSRF token in a
/// cookie and the form.
pub async fn form(headers: HeaderMap) -> Response {
    let token = session::login_csrf();
    let secure = !session::loopback_host(&headers);
    let cookie = session::set_cookie(LOGIN_CSRF_COOKIE, &token, Some(3600), secure);
    (AppendHeaders([(SET_COOKIE, cookie)]), page(&token, None)).into_response()
}

fn page(csrf: &str, error: Option<&Refused>) -> maud::Markup {
    view::page(
        "Sign in",
        None,
        html! {
            section.card.login {
                h1 { "Sign in to Cairn" }
                @if let Some(r) = error { (view::refused("Sign-in failed", r)) }
                form.stack method="post" action="/console/login" data-derive="login" {
                    (view::csrf(csrf))
                    fieldset {
                        legend { "I am" }
                        label { input type="radio" name="kind" value="user" checked; " a user" }
                        " "
                        label { input type="radio" name="kind" value="operator"; " an administrator" }
                    }
                    (view::text_input("name", "Name", true))
                    (view::password_input("password", "Password", "current-password"))
                    div {
                        label for="f-totp" { "One-time code (administrators enrolled in TOTP)" }
                        input id="f-totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code";
                    }
                    (view::derived_fields(false))
                    button type="submit" { "Sign in" }
                    p.muted role="status" aria-live="polite" {
                        "Your password never leaves this browser: it derives the login key (argon2id)."
                    }
                }
            }
        },
    )
}

/// The login form's fields (the password is not among them).
#[derive(Deserialize)]
pub struct LoginForm {
    kind: String,
    name: String,
    login_key: String,
    /// An enrolled operator's TOTP code; empty otherwise.
    #[serde(default)]
    totp: String,
    csrf: String,
}

/// `POST /console/login`: logs in through the API and sets the session
/// cookie; a refusal shows the form again with the API's error.
pub async fn submit(
    headers: HeaderMap,
    Peer(peer): Peer,
    Extension(api): Extension<Api>,
    Form(f): Form<LoginForm>,
) -> Response {
    let caller = Caller {
        api: &api,
        token: None,
        peer,
    };
    let answer = match f.kind.as_str() {
        "operator" => caller
            .post::<_, OperatorSessionReply>(
                "/api/v1/operators/login",
                &OperatorLogin {
                    name: f.name,
                    login_key: f.login_key,
                    totp: (!f.totp.is_empty()).then_some(f.totp),
                },
            )
            .await
            .map(|r| (r.token, Some(r.expires_at))),
        _ => match hex::decode(&f.login_key) {
            Ok(login_key) => caller
                .post::<_, LoginReply>(
                    "/api/v1/login",
                    &LoginRequest {
                        user: f.name,
                        login_key,
                        device: WEB_DEVICE.into(),
                    },
                )
                .await
                .map(|r| (r.token, None)),
            Err(_) => Err(Refused::bad_request(
                "the login key is not hex (is JavaScript on?)",
            )),
        },
    };
    let secure = !session::loopback_host(&headers);
    match answer {
        Ok((token, expires_at)) => {
            let max_age = expires_at.map(|ms| ms.saturating_sub(crate::cluster::now().0) / 1000);
            let set = session::set_cookie(SESSION_COOKIE, &token, max_age, secure);
            let clear = session::clear_cookie(LOGIN_CSRF_COOKIE, secure);
            (
                AppendHeaders([(SET_COOKIE, set), (SET_COOKIE, clear)]),
                Redirect::to("/console/"),
            )
                .into_response()
        }
        Err(r) => (r.status, page(&f.csrf, Some(&r))).into_response(),
    }
}

/// `POST /console/logout`: ends the session through the API and clears
/// the cookie (also when the API refuses: the session may be gone already).
pub async fn logout(v: Visitor, headers: HeaderMap, Extension(api): Extension<Api>) -> Response {
    let caller = v.caller(&api);
    // Best effort: an expired or revoked session has nothing left to end.
    let _ended = match v.kind {
        Kind::Operator => caller
            .post_only("/api/v1/operators/logout", &serde_json::json!({}))
            .await
            .map(drop),
        Kind::User => match caller.get::<AccountInfo>("/api/v1/account").await {
            Ok(me) => caller
                .post_only(
                    &format!("/api/v1/devices/{}/revoke", me.device),
                    &serde_json::json!({}),
                )
                .await
                .map(drop),
            Err(r) => Err(r),
        },
    };
    let secure = !session::loopback_host(&headers);
    (
        AppendHeaders([(SET_COOKIE, session::clear_cookie(SESSION_COOKIE, secure))]),
        Redirect::to("/console/login"),
    )
        .into_response()
}
