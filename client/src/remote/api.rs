//! The HTTP client of the `cairnd` API (`cairn_proto::api`), with failover.
//!
//! ```text
//!  call(method, path, body) ──▶ node[current] ──ok──▶ answer (current stays)
//!                                   │ connection error, timeout, 502/503/504,
//!                                   │ `unavailable`, `insufficient_replicas`
//!                                   ▼
//!                               node[current+1] … every node, then again
//!                               after a back-off (a leader election takes a
//!                               moment), up to ROUND_DELAYS.len() rounds
//! ```
//!
//! Every write carries one `Idempotency-Key` (32 hex digits) for all of its
//! attempts, so a write retried through another node after a lost answer is
//! applied once (the Raft state machine deduplicates by request id; chunk
//! uploads are idempotent by content). Server certificates are always
//! verified (public roots plus an optional CA file); there is no switch to
//! turn that off. Error answers (`ErrorBody`) become [`Error`] variants the
//! CLI maps onto exit codes: refused credentials are exit 3.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_proto::api::{code, ErrorBody, PREFIX};
use cairn_proto::{route, RequestId};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Pause before each round over all nodes (the first is immediate).
/// How long one request waits out a busy node (429) before giving up.
const BUSY_PATIENCE: Duration = Duration::from_secs(120);

const ROUND_DELAYS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_millis(1500),
    Duration::from_millis(3000),
];
/// How long one request may take, body included (8 MiB batches on a slow
/// link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The header a retried write repeats (same value on every attempt).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// A blocking API client over the nodes of one cluster. Cheap to share
/// between threads (`&Api` from many workers); connections are pooled.
pub struct Api {
    nodes: Vec<String>,
    /// Index of the node that answered last: the next call starts there.
    current: AtomicUsize,
    token: Option<String>,
    http: Client,
}

/// A request body.
#[derive(Clone)]
enum Body {
    Empty,
    Json(Bytes),
    Binary(Bytes),
}

/// One failed attempt: retry elsewhere, or give up with this error.
enum Attempt {
    Retry(String),
    Fail(Error),
}

impl Api {
    /// A client for `nodes` (base URLs such as `https://node1:8700`),
    /// sending `token` when given and trusting `ca_file` in addition to the
    /// public roots.
    pub fn new(nodes: &[String], token: Option<String>, ca_file: Option<&Path>) -> Result<Self> {
        let nodes: Vec<String> = nodes
            .iter()
            .map(|n| n.trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(Error::Invalid("no server URL given".into()));
        }
        for n in &nodes {
            let url = reqwest::Url::parse(n)
                .map_err(|e| Error::Invalid(format!("bad server URL {n:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Error::Invalid(format!(
                    "bad server URL {n:?}: use http:// or https://"
                )));
            }
        }
        let mut builder = Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(32)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| Error::io("read CA file", path, e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: no PEM certificate in the CA file",
                    path.display()
                )));
            }
            // The user's CA alone: a node the cluster reports must not be
            // able to present a certificate from some other authority.
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?;
        Ok(Self {
            nodes,
            current: AtomicUsize::new(0),
            token,
            http,
        })
    }

    /// The nodes, in failover order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The node that answered last.
    pub fn current_node(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()]
    }

    /// Moves on to the next node for the following calls (e.g. to ask
    /// another node for chunks this one could not serve).
    pub fn rotate(&self) {
        let n = self.nodes.len();
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some((c + 1) % n));
    }

    /// `GET` a JSON answer.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        json_of(self.call(Method::GET, path, Body::Empty)?)
    }

    /// `POST` a JSON body, JSON answer.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        json_of(self.call(Method::POST, path, json_body(body)?)?)
    }

    /// `POST` without a body, JSON answer.
    pub fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        json_of(self.call(Method::POST, path, Body::Empty)?)
    }

    /// `PUT` a JSON body, JSON answer.
    pub fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        json_of(self.call(Method::PUT, path, json_body(body)?)?)
    }

    /// `DELETE`; any success answer (JSON or 204) is fine.
    pub fn delete(&self, path: &str) -> Result<()> {
        self.call(Method::DELETE, path, Body::Empty).map(drop)
    }

    /// `POST` a binary body (chunk ids or frames), binary answer.
    pub fn post_binary(&self, path: &str, body: Bytes) -> Result<Bytes> {
        let resp = self.call(Method::POST, path, Body::Binary(body))?;
        read_bounded(resp, MAX_BINARY_ANSWER).map(Bytes::from)
    }

    /// `POST` a binary body, JSON answer.
    pub fn post_binary_json<T: DeserializeOwned>(&self, path: &str, body: Bytes) -> Result<T> {
        json_of(self.call(Method::POST, path, Body::Binary(body))?)
    }

    /// Sends one logical request, failing over between nodes; `path` is
    /// below [`PREFIX`].
    fn call(&self, method: Method, path: &str, body: Body) -> Result<Response> {
        let key = (method != Method::GET).then(|| RequestId::random().to_hex());
        let mut failures: Vec<String> = vec![];
        for delay in ROUND_DELAYS {
            std::thread::sleep(delay);
            let start = self.current.load(Ordering::Relaxed);
            for i in failover_order(start, self.nodes.len()) {
                let node = &self.nodes[i];
                let mut req = self
                    .http
                    .request(method.clone(), format!("{node}{PREFIX}{path}"));
                if let Some(key) = &key {
                    req = req.header(IDEMPOTENCY_KEY, key);
                }
                match self.attempt_paced(req, body.clone(), path) {
                    Ok(resp) => {
                        self.current.store(i, Ordering::Relaxed);
                        return Ok(resp);
                    }
                    Err(Attempt::Fail(e)) => {
                        self.current.store(i, Ordering::Relaxed);
                        return Err(e);
                    }
                    Err(Attempt::Retry(why)) => failures.push(format!("{node}: {why}")),
                }
            }
        }
        failures.dedup();
        let shown: Vec<_> = failures.iter().rev().take(self.nodes.len()).collect();
        let hint = if failures.iter().any(|f| f.contains("certificate")) {
            " (a server certificate was not trusted: give its CA with --ca-file at login)"
        } else {
            ""
        };
        Err(Error::Network(format!(
            "no node of the cluster could handle {method} {path}; last errors: {}{hint}",
            shown
                .iter()
                .rev()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }

    /// One attempt at a node, waiting out a node's "too many requests in
    /// flight" (429 with `Retry-After`, as a node answers a device that has
    /// more chunk requests running than it allows) and trying again there,
    /// for up to [`BUSY_PATIENCE`]. A login's 429 (too many failed logins)
    /// is not waited out: it is the user's answer.
    fn attempt_paced(
        &self,
        req: RequestBuilder,
        body: Body,
        path: &str,
    ) -> Result<Response, Attempt> {
        let deadline = std::time::Instant::now() + BUSY_PATIENCE;
        let mut req = req;
        loop {
            let again = req.try_clone();
            match self.attempt(req, body.clone()) {
                Err(Attempt::Fail(Error::RateLimited { retry_after, .. }))
                    if ![route::LOGIN, route::LOGIN_PARAMS].contains(&path)
                        && std::time::Instant::now() < deadline =>
                {
                    let Some(next) = again else {
                        return Err(Attempt::Retry("busy".into()));
                    };
                    let wait = Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5));
                    std::thread::sleep(wait);
                    req = next;
                }
                other => return other,
            }
        }
    }

    fn attempt(&self, mut req: RequestBuilder, body: Body) -> Result<Response, Attempt> {
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::Empty => req,
            Body::Json(b) => req.header("content-type", "application/json").body(b),
            Body::Binary(b) => req
                .header("content-type", "application/octet-stream")
                .body(b),
        };
        let resp = req.send().map_err(|e| Attempt::Retry(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        // An error body is a short JSON object: read at most 64 KiB of it.
        let body = read_bounded(resp, 64 << 10).unwrap_or_default();
        let failure = error_body(status, &body);
        if is_retryable(status, &failure.code) {
            return Err(Attempt::Retry(format!(
                "{} {}: {}",
                status.as_u16(),
                failure.code,
                failure.message
            )));
        }
        Err(Attempt::Fail(map_error(status, failure, retry_after)))
    }
}

/// Node indices to try, starting with the one that answered last.
pub fn failover_order(start: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (start + k) % n.max(1))
}

/// Whether an error answer means "this node cannot serve it now; another
/// might": gateway errors, no leader, not enough replicas reachable — but
/// not a storage pool that is down (every node would say so).
pub fn is_retryable(status: StatusCode, code: &str) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    ) && code != code::POOL_UNAVAILABLE
        || code == code::UNAVAILABLE
        || code == code::INSUFFICIENT_REPLICAS
}

/// The error body of an answer; a body that is not an [`ErrorBody`] (a
/// proxy's HTML page, say) keeps its status as the code.
fn error_body(status: StatusCode, body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_else(|_| ErrorBody {
        code: format!("http_{}", status.as_u16()),
        message: String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string(),
    })
}

/// Maps an error answer onto the client's error (and so its exit code).
pub fn map_error(status: StatusCode, body: ErrorBody, retry_after: Option<u64>) -> Error {
    match body.code.as_str() {
        code::LOGIN_FAILED => Error::Auth("wrong password (or unknown user): login refused".into()),
        code::UNAUTHORIZED => Error::Auth(format!(
            "the server refused this device's token ({}): the device was revoked or the \
             account password changed; log in again with `cairn login`",
            body.message
        )),
        code::FORBIDDEN => Error::Auth(format!("access refused: {}", body.message)),
        code::ACCOUNT_DISABLED => Error::Auth(format!(
            "this account is disabled by its administrator ({}); its data and vaults are kept; \
             ask your administrator to enable it, then run `cairn login` if asked",
            body.message
        )),
        code::RATE_LIMITED => Error::RateLimited {
            message: format!("refused: {}", body.message),
            retry_after,
        },
        code::QUOTA_EXCEEDED => Error::QuotaExceeded(body.message),
        code::POOL_UNAVAILABLE => Error::PoolUnavailable(body.message),
        code::NOT_FOUND => Error::NotFound(body.message),
        code::BUSY => Error::Busy(body.message),
        code::NAME_TAKEN | code::BAD_REQUEST | code::PAYLOAD_TOO_LARGE => {
            Error::Invalid(body.message)
        }
        _ => Error::Remote {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        },
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn json_body<B: Serialize>(body: &B) -> Result<Body> {
    serde_json::to_vec(body)
        .map(|v| Body::Json(Bytes::from(v)))
        .map_err(|e| Error::Format(format!("encoding a request: {e}")))
}

fn json_of<T: DeserializeOwned>(resp: Response) -> Result<T> {
    let url = resp.url().path().to_string();
    let bytes = read_bounded(resp, MAX_JSON_ANSWER)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Format(format!("unexpected answer from {url}: {e}")))
}

/// The largest JSON answer read (a snapshot list of a very large account
/// is a few MiB); a hostile server's endless answer is cut off here.
pub const MAX_JSON_ANSWER: u64 = 64 << 20;
/// The largest binary answer read: well above a `chunks/get` answer of
/// this build's servers, which stop a response at 96 MiB of chunks.
pub const MAX_BINARY_ANSWER: u64 = 160 << 20;

/// Reads an answer body of at most `limit` bytes, refusing a longer one
/// (by its `Content-Length` before reading, or once `limit` is passed) so
/// memory stays bounded whatever the server sends.
fn read_bounded(resp: Response, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let url = resp.url().path().to_string();
    let too_big = || {
        Error::Format(format!(
            "the answer to {url} is larger than {} MiB: refused",
            limit >> 20
        ))
    };
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    resp.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Network(format!("reading the answer to {url}: {e}")))?;
    if out.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    fn body(code: &str) -> ErrorBody {
        ErrorBody {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn error_codes_map_to_error_kinds() {
        let e = map_error(StatusCode::UNAUTHORIZED, body(code::LOGIN_FAILED), None);
        assert!(matches!(e, Error::Auth(_)), "{e}");
        assert!(e.to_string().contains("wrong password"), "{e}");
        let e = map_error(StatusCode::FORBIDDEN, body(code::ACCOUNT_DISABLED), None);
        assert!(
            matches!(&e, Error::Auth(m) if m.contains("disabled")),
            "{e:?}"
        );
        let e = map_error(StatusCode::UNAUTHORIZED, body(code::UNAUTHORIZED), None);
        assert!(matches!(e, Error::Auth(_)), "{e}");
        assert!(e.to_string().contains("log in again"), "{e}");
        let e = map_error(
            StatusCode::TOO_MANY_REQUESTS,
            body(code::RATE_LIMITED),
            Some(30),
        );
        assert!(e.to_string().contains("retry in 30 s"), "{e}");
        assert!(
            matches!(
                e,
                Error::RateLimited {
                    retry_after: Some(30),
                    ..
                }
            ),
            "{e}"
        );
        let said = ErrorBody {
            code: code::RATE_LIMITED.into(),
            message: "too many failed logins; retry in 30 s".into(),
        };
        let e = map_error(StatusCode::TOO_MANY_REQUESTS, said, Some(30));
        assert_eq!(e.to_string().matches("retry").count(), 1, "{e}");
        let e = map_error(
            StatusCode::INSUFFICIENT_STORAGE,
            body(code::QUOTA_EXCEEDED),
            None,
        );
        assert!(matches!(e, Error::QuotaExceeded(_)));
        assert!(e.to_string().contains("quota"), "{e}");
        let e = map_error(StatusCode::NOT_FOUND, body(code::NOT_FOUND), None);
        assert!(matches!(e, Error::NotFound(_)));
        let e = map_error(StatusCode::INTERNAL_SERVER_ERROR, body("internal"), None);
        assert!(matches!(e, Error::Remote { status: 500, .. }));
        // A body that is not ours keeps the status as its code.
        let b = error_body(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(b.code, "http_502");
    }

    #[test]
    fn retryable_answers() {
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        assert!(is_retryable(StatusCode::BAD_GATEWAY, "http_502"));
        assert!(is_retryable(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::INSUFFICIENT_REPLICAS
        ));
        assert!(!is_retryable(StatusCode::UNAUTHORIZED, code::UNAUTHORIZED));
        assert!(!is_retryable(StatusCode::NOT_FOUND, code::NOT_FOUND));
        assert!(!is_retryable(StatusCode::FORBIDDEN, code::QUOTA_EXCEEDED));
        assert!(!is_retryable(
            StatusCode::SERVICE_UNAVAILABLE,
            code::POOL_UNAVAILABLE
        ));
    }

    #[test]
    fn failover_visits_every_node_once_starting_at_the_last_good_one() {
        assert_eq!(failover_order(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(failover_order(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(failover_order(4, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(failover_order(0, 1).collect::<Vec<_>>(), [0]);
    }

    /// A one-shot HTTP server on loopback answering each request with
    /// `answer`, recording the request heads it saw.
    fn serve(answers: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut heads = vec![];
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                heads.push(head);
                let mut stream = stream;
                stream.write_all(answer.as_bytes()).unwrap();
            }
            heads
        });
        (url, handle)
    }

    fn answer(status: &str, json: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{json}",
            json.len()
        )
    }

    #[test]
    fn a_busy_node_is_waited_out_but_a_login_limit_is_not() {
        let busy = || {
            let body = r#"{"code":"rate_limited","message":"busy"}"#;
            format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
                 retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let (url, _) = serve(vec![busy(), answer("200 OK", r#"{"ok":true}"#)]);
        let api = Api::new(std::slice::from_ref(&url), None, None).unwrap();
        let started = std::time::Instant::now();
        let v: serde_json::Value = api
            .post(&route::path(route::CHUNKS, &["x"]), &serde_json::json!({}))
            .unwrap();
        assert_eq!(v["ok"], true);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        let (url, _) = serve(vec![busy()]);
        let api = Api::new(std::slice::from_ref(&url), None, None).unwrap();
        let err = api
            .post::<_, serde_json::Value>(route::LOGIN, &serde_json::json!({}))
            .unwrap_err();
        assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    }

    #[test]
    fn fails_over_to_the_next_node_with_the_same_idempotency_key() {
        // Node 0 is down (nothing listens), node 1 has no leader, node 2 answers.
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let ok = || answer("200 OK", r#"{"ok":true}"#);
        let (busy, busy_seen) = serve(vec![answer(
            "503 Service Unavailable",
            r#"{"code":"unavailable","message":"no leader"}"#,
        )]);
        let (good, good_seen) = serve(vec![ok(), ok()]);
        let api = Api::new(&[dead, busy, good.clone()], Some("tok".into()), None).unwrap();
        let answer: serde_json::Value =
            api.post(route::JOBS, &serde_json::json!({"a": 1})).unwrap();
        assert_eq!(answer["ok"], true);
        assert_eq!(api.current_node(), good);
        // The next call starts at the node that answered.
        let _: serde_json::Value = api.get(route::ACCOUNT).unwrap();
        let busy_heads = busy_seen.join().unwrap();
        let good_heads = good_seen.join().unwrap();
        let key = |h: &str| {
            h.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("idempotency-key:"))
                .map(|l| l[16..].trim().to_string())
        };
        let k1 = key(&busy_heads[0]).expect("key on the first attempt");
        assert_eq!(k1.len(), 32);
        assert_eq!(key(&good_heads[0]), Some(k1), "same key on the retry");
        assert!(good_heads[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer tok"));
        assert_eq!(key(&good_heads[1]), None, "reads carry no key");
    }

    #[test]
    fn a_refusal_is_not_retried_elsewhere() {
        let (a, a_seen) = serve(vec![answer(
            "401 Unauthorized",
            r#"{"code":"unauthorized","message":"revoked"}"#,
        )]);
        let (b, _b_seen) = serve(vec![]);
        let api = Api::new(&[a, b], None, None).unwrap();
        let e = api.get::<serde_json::Value>(route::ACCOUNT).unwrap_err();
        assert!(matches!(e, Error::Auth(_)), "{e}");
        assert_eq!(a_seen.join().unwrap().len(), 1);
    }
}
