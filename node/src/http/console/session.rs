//! The console's browser session, as pure functions over headers and form
//! bodies: which cookie carries whose token, the cookie attributes, the
//! CSRF tokens and the security headers of every console response.
//!
//! The session cookie holds the bearer token the API would take
//! (`cairnop_…` for an operator's session, `cairn_…` for a user's
//! device), `HttpOnly` so page scripts cannot read it, `SameSite=Strict`
//! so other sites cannot make the browser send it, and `Secure` unless the
//! page was asked for on a loopback host (where browsers also treat plain
//! HTTP as a secure context).
//!
//! CSRF: every form carries a `csrf` field. Signed in, it is a hash of the
//! session token under a fixed context ([`csrf_for`]): stateless, the same
//! on every node, and unguessable without the token, which the page's
//! origin alone can read back through the form. Before the login there is
//! no session yet, so the login form's token is a random value the login
//! page also sets as a cookie (double submit); a post whose field does not
//! match is refused ([`csrf_ok`]).

use axum::http::header::{COOKIE, HOST};
use axum::http::HeaderMap;

/// The cookie carrying the session's bearer token.
pub const SESSION_COOKIE: &str = "cairn_session";
/// The cookie carrying the login form's CSRF token (before a session).
pub const LOGIN_CSRF_COOKIE: &str = "cairn_login_csrf";
/// The form field every console form carries its CSRF token in.
pub const CSRF_FIELD: &str = "csrf";

/// The Content-Security-Policy of every console response: scripts and
/// styles only from the node itself (no inline script or style, no
/// `eval`), WebAssembly compilation for the in-browser argon2id
/// (`'wasm-unsafe-eval'`), requests only to the node, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Who a session token belongs to, by its form (the API checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An operator's session (`cairnop_…`): the admin pages.
    Operator,
    /// A user's device token (`cairn_…`): the user's pages.
    User,
}

impl Kind {
    /// The kind of `token`, `None` for anything else.
    pub fn of(token: &str) -> Option<Kind> {
        if token.starts_with("cairnop_") {
            Some(Kind::Operator)
        } else if token.starts_with("cairn_") {
            Some(Kind::User)
        } else {
            None
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Whether the request named a loopback host (`localhost`, `127.x`,
/// `[::1]`): there the cookies go without `Secure`.
pub fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Set-Cookie` value: `name=value` for `max_age_s` seconds (a browser
/// session when `None`), `HttpOnly`, `SameSite=Strict`, on `/`, `Secure`
/// when `secure`.
pub fn set_cookie(name: &str, value: &str, max_age_s: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_s {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Some(0), secure)
}

/// The CSRF token of the forms of the session whose token is `token`.
pub fn csrf_for(token: &str) -> String {
    hex::encode(blake3::derive_key(
        "cairn 2026 console csrf token v1",
        token.as_bytes(),
    ))
}

/// A fresh random token for the login form (and its cookie).
pub fn login_csrf() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The `csrf` field of an `application/x-www-form-urlencoded` body.
pub fn form_csrf(body: &[u8]) -> Option<String> {
    form_urlencoded_pairs(body)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
}

/// Whether a form post carries the CSRF token it must: on the login form
/// the login cookie's value, elsewhere the session token's
/// ([`csrf_for`]). Compared in constant time; no cookie, no field or a
/// mismatch refuses.
pub fn csrf_ok(headers: &HeaderMap, login_form: bool, body: &[u8]) -> bool {
    let expected = if login_form {
        cookie(headers, LOGIN_CSRF_COOKIE).map(str::to_owned)
    } else {
        cookie(headers, SESSION_COOKIE).map(csrf_for)
    };
    match (expected, form_csrf(body)) {
        (Some(e), Some(got)) => {
            blake3::hash(e.as_bytes()) == blake3::hash(got.as_bytes()) && !got.is_empty()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[
            ("cookie", "a=1; cairn_session=cairnop_x"),
            ("cookie", "cairn_session_old=2"),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("cairnop_x"));
        assert_eq!(cookie(&h, "cairn_session_old"), Some("2"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "cairn_session=")]), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn secure_is_left_off_only_on_loopback_hosts() {
        for host in ["127.0.0.1:8080", "localhost", "[::1]:80", "127.1.2.3"] {
            assert!(loopback_host(&headers(&[("host", host)])), "{host}");
        }
        for host in ["backup.example.com", "10.0.0.1:443", "[2001:db8::1]:80"] {
            assert!(!loopback_host(&headers(&[("host", host)])), "{host}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
        let c = set_cookie(SESSION_COOKIE, "t", Some(60), true);
        assert_eq!(
            c,
            "cairn_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(!set_cookie("a", "b", None, false).contains("Secure"));
        assert!(clear_cookie("a", false).contains("Max-Age=0"));
    }

    #[test]
    fn token_kinds() {
        assert_eq!(Kind::of("cairnop_ab_cd"), Some(Kind::Operator));
        assert_eq!(Kind::of("cairn_ab_cd"), Some(Kind::User));
        assert_eq!(Kind::of("admin-token"), None);
    }

    /// Posts without the session's token, with another session's, or with
    /// none at all are refused; the login form needs its cookie's value.
    #[test]
    fn csrf_needs_the_matching_field() {
        let session = headers(&[("cookie", "cairn_session=cairn_a_b")]);
        let good = format!("name=x&csrf={}", csrf_for("cairn_a_b"));
        assert!(csrf_ok(&session, false, good.as_bytes()));
        assert!(!csrf_ok(&session, false, b"name=x"));
        let other = format!("csrf={}", csrf_for("cairn_other_b"));
        assert!(!csrf_ok(&session, false, other.as_bytes()));
        assert!(!csrf_ok(&HeaderMap::new(), false, good.as_bytes()));
        assert!(!csrf_ok(&session, true, good.as_bytes()), "login form");
        let login = headers(&[("cookie", "cairn_login_csrf=abc")]);
        assert!(csrf_ok(&login, true, b"csrf=abc&name=x"));
        assert!(!csrf_ok(&login, true, b"csrf=abd"));
        assert!(!csrf_ok(&login, true, b"csrf="));
        assert!(!csrf_ok(&login, true, b"\xff\xfe"));
    }

    proptest::proptest! {
        /// No body is accepted without the right token.
        #[test]
        fn arbitrary_bodies_without_the_token_are_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let session = headers(&[("cookie", "cairn_session=cairn_a_b")]);
            let token = csrf_for("cairn_a_b");
            proptest::prop_assume!(!crate::http::console::session::tests::contains(&body, token.as_bytes()));
            proptest::prop_assert!(!csrf_ok(&session, false, &body));
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }
}
