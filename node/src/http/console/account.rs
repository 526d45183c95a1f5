//! An operator's own sign-in: enrolling in TOTP (the page shows the new
//! secret's `otpauth://` URI and the secret as text, once, to type or
//! paste into an authenticator app) or removing it.
//!
//! Like a login, it proves the operator's password: the page's script
//! derives the login key in the browser (`data-derive="login"`, the same
//! argon2id as the sign-in form) and posts only the key, with the current
//! code when already enrolled, to `POST /api/v1/operators/totp`, which
//! counts failures against the login limits and audits the change.

use axum::extract::Form;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use cairn_proto::console::{OperatorInfo, OperatorTotp};
use maud::{html, Markup};
use serde::Deserialize;

use super::call::Api;
use super::session::Kind;
use super::{view, Visitor};
use crate::http::HttpState;

/// The page's routes.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/console/account", get(page))
        .route("/console/account/totp", post(totp))
}

const PATH: &str = "/console/account";

/// The enrol-or-remove form: name, password (derived, never sent), the
/// current code when enrolled.
fn form(v: &Visitor) -> Markup {
    html! {
        form.stack id="totp" method="post" action="/console/account/totp" data-derive="login" {
            (view::csrf(&v.csrf))
            input type="hidden" name="kind" value="operator";
            (view::text_input("name", "Your operator name", true))
            (view::password_input("password", "Your password", "current-password"))
            div {
                label for="f-totp" { "Your current one-time code (when enrolled already)" }
                input id="f-totp" name="totp" type="text" inputmode="numeric" autocomplete="one-time-code";
            }
            fieldset {
                legend { "Two-step sign-in" }
                label { input type="radio" name="enable" value="true" checked; " enrol (a new secret)" }
                " "
                label { input type="radio" name="enable" value="false"; " remove" }
            }
            (view::derived_fields(false))
            button type="submit" { "Change two-step sign-in" }
            p.muted role="status" aria-live="polite" {
                "Your password never leaves this browser: it derives the login key (argon2id)."
            }
        }
    }
}

/// `GET /console/account`.
async fn page(v: Visitor) -> Response {
    let body = match v.kind {
        Kind::Operator => html! {
            p { "A one-time code (TOTP, RFC 6238) from an authenticator app as a second step of signing in." }
            (form(&v))
        },
        Kind::User => html! { p.empty { "Two-step sign-in is for administrators." } },
    };
    view::page("My sign-in", Some(&v.frame(PATH)), body).into_response()
}

/// The form's fields (the password is not among them).
#[derive(Deserialize)]
struct TotpForm {
    name: String,
    login_key: String,
    #[serde(default)]
    totp: String,
    enable: String,
}

/// `POST /console/account/totp`: the API's answer shows the new secret
/// once, on this page only.
async fn totp(v: Visitor, Extension(api): Extension<Api>, Form(f): Form<TotpForm>) -> Response {
    let request = OperatorTotp {
        name: f.name,
        login_key: f.login_key,
        totp: (!f.totp.trim().is_empty()).then(|| f.totp.trim().to_owned()),
        enable: f.enable == "true",
    };
    let answer = v
        .caller(&api)
        .post::<_, OperatorInfo>("/api/v1/operators/totp", &request)
        .await;
    let result = match answer {
        Ok(info) => match info.totp_uri {
            Some(uri) => enrolled(&uri),
            None => {
                html! { div.flash.done role="status" { "Two-step sign-in is off for " (info.name) "." } }
            }
        },
        Err(r) => view::refused("Changing two-step sign-in", &r),
    };
    let body = html! { (result) (form(&v)) };
    view::page("My sign-in", Some(&v.frame(PATH)), body).into_response()
}

/// The new secret, shown once: the URI an app takes, and the secret alone.
fn enrolled(uri: &str) -> Markup {
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .unwrap_or_default();
    html! {
        div.flash.done role="status" {
            p { "Enrolled. Add this to your authenticator app now; it is not shown again." }
            p { "Enrolment URI: " code id="totp-uri" { (uri) } }
            p { "Secret (base32): " code id="totp-secret" { (secret) } }
        }
    }
}
