//! Remote control: the daemon's live connection to the cluster and the
//! commands dispatched over it.
//!
//! ```text
//!  connect(node i) ── wss://node/api/v1/connect (device token; the profile's CA) ──┐
//!    │ upgrade refused (a proxy): POST …/connect/poll, same frames, long-poll       │
//!    │ failed / dropped: next node, after a backoff (1 s doubling to 30 s, jittered)  │
//!    ▼                                                                            │
//!  Hello{version} → Welcome → loop: Ping → Pong; Close → reconnect; Command → ────┘
//!      backup | restore | retention | check → child `cairn …` under the job id the
//!                                             node began (CAIRN_JOB_ID / --job-id)
//!      cancel                               → SIGTERM to that child (it records `cancelled`)
//!      list_dir                             → the directory's entries
//!      list_files                           → `cairn ls --json` sealed with the listing key
//! ```
//!
//! A listing runs on a blocking thread, so the connection keeps answering
//! pings meanwhile. A dispatched job runs as its own process group, like a
//! scheduled one, and dies with the daemon; a child that ends unsuccessfully
//! has its job ended `failed` unless it recorded the end itself. What the
//! device decides (which process to start, with which arguments) is the
//! pure [`job_command`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::control::{
    self, Action, Answer, DirEntry, DirListing, FromDevice, Outcome, SealedListing, ToDevice,
    MAX_DIR_ENTRIES, MAX_MESSAGE,
};
use cairn_proto::JobId;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::error::{Error, Result};
use crate::jobs::finish_by_id;
use crate::remote::Session;

/// The environment variable carrying a dispatched job's id to the `cairn`
/// child that runs it (its job log starts the job under that id).
pub const JOB_ID_ENV: &str = "CAIRN_DISPATCHED_JOB";

/// First and longest wait between connection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A node silent this long is taken for gone (it pings every 10 s).
const SILENCE: Duration = Duration::from_secs(45);
/// Largest `cairn ls` output relayed.
const MAX_LISTING: usize = MAX_MESSAGE / 2 - 1024;

/// The dispatched jobs running on this device, by job (the connection
/// starts them, the daemon's loop reaps them: [`reap`]).
pub type Running = Arc<Mutex<HashMap<JobId, Child>>>;

/// Keeps the device connected to one of `session`'s nodes until `stop` is
/// set, failing over between them, and starts what is dispatched into
/// `running`.
pub fn run(
    session: &Session,
    opts: &super::DaemonOptions,
    running: &Running,
    stop: &AtomicBool,
    say: &(dyn Fn(&str) + Sync),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say(&format!("remote control is off: no async runtime ({e})"));
            return;
        }
    };
    let tls = match tls_config(session.profile().ca_file.as_deref()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            say(&format!("remote control is off: {e}"));
            return;
        }
    };
    let nodes = session.api().nodes().to_vec();
    let mut backoff = BACKOFF.0;
    let mut next = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let node = &nodes[next % nodes.len()];
        let connected = runtime.block_on(connection(session, opts, node, &tls, running, stop, say));
        match connected {
            Ok(()) => backoff = BACKOFF.0,
            Err(e) => {
                say(&format!("remote control: {node}: {e}"));
                next += 1;
                // A full round of failures waits; trying the next node does not.
                if next % nodes.len() == 0 {
                    sleep_unless(stop, jittered(backoff));
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
        }
    }
    // Still on the thread that started them (see above).
    stop_all(running, super::STOP_GRACE);
}

/// `d` shortened by up to a quarter, so devices do not reconnect in step.
fn jittered(d: Duration) -> Duration {
    d - d.mul_f64(rand::random::<f64>() / 4.0)
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rustls configuration of the connection: the profile's CA alone when
/// it names one (as the HTTP client does), else the public roots.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| Error::io("read CA file", path, e))?;
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The WebSocket URL of a node's base URL.
fn ws_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let url = match base.split_once("://") {
        Some(("https", rest)) => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => format!("ws://{base}"),
    };
    format!(
        "{url}{}{}",
        cairn_proto::api::PREFIX,
        cairn_proto::route::CONNECT
    )
}

/// The device's end of a connection: a WebSocket, or long-poll where a
/// proxy refuses the upgrade.
enum Link {
    /// The WebSocket.
    Ws(Box<WsStream>),
    /// Long-poll: a task polls and hands the node's frames over.
    Poll(Poller),
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A long-poll session: a task keeps an empty post waiting for the node's
/// frames (handed over in `frames`, an `Err` ending the connection), and
/// each frame of the device goes in a post of its own.
struct Poller {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    frames: tokio::sync::mpsc::UnboundedReceiver<std::result::Result<String, String>>,
    errors: tokio::sync::mpsc::UnboundedSender<std::result::Result<String, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long an empty poll may take before the device gives up on it (the
/// node answers within 25 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(40);

impl Link {
    /// Opens a link to `node` saying `hello`: a WebSocket, else (the
    /// upgrade refused, e.g. by a proxy) long-poll. A refused token is
    /// final.
    async fn open(
        session: &Session,
        node: &str,
        tls: &Arc<rustls::ClientConfig>,
        hello: &FromDevice,
        say: &(dyn Fn(&str) + Sync),
    ) -> std::result::Result<Link, String> {
        let token = session.profile().token.clone();
        let refused = match websocket(node, &token, tls).await {
            Ok(mut ws) => {
                ws.send(Message::text(control::encode(hello)))
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(Link::Ws(Box::new(ws)));
            }
            Err(Upgrade::Unreachable(e)) => return Err(e),
            Err(Upgrade::Refused(e)) => e,
        };
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((**tls).clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let url = format!(
            "{}{}{}",
            node.trim_end_matches('/'),
            cairn_proto::api::PREFIX,
            cairn_proto::route::CONNECT_POLL
        );
        let opened = post_frames(&http, &url, &token, None, control::encode(hello)).await?;
        say(&format!(
            "remote control: {node} refused the WebSocket ({refused}); long-polling"
        ));
        let (tx, frames) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(poll_loop(
            http.clone(),
            url.clone(),
            token.clone(),
            opened.clone(),
            tx.clone(),
        ));
        Ok(Link::Poll(Poller {
            http,
            url,
            token,
            session: opened,
            frames,
            errors: tx,
            task,
        }))
    }

    /// The node's next frame; `None` once the link ended.
    async fn recv(&mut self) -> Option<std::result::Result<String, String>> {
        match self {
            Link::Ws(ws) => loop {
                return match ws.next().await {
                    Some(Ok(Message::Text(t))) => Some(Ok(t.to_string())),
                    Some(Ok(Message::Close(_))) | None => None,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => Some(Err(e.to_string())),
                };
            },
            Link::Poll(p) => p.frames.recv().await,
        }
    }

    /// Sends one message; false once the link is gone.
    async fn send(&mut self, msg: &FromDevice) -> bool {
        match self {
            Link::Ws(ws) => ws.send(Message::text(control::encode(msg))).await.is_ok(),
            Link::Poll(p) => {
                // Its own post, so a waiting poll is never cut short.
                let (http, url, token) = (p.http.clone(), p.url.clone(), p.token.clone());
                let (session, errors) = (p.session.clone(), p.errors.clone());
                let frame = control::encode(msg);
                tokio::spawn(async move {
                    if let Err(e) = post_frames(&http, &url, &token, Some(&session), frame).await {
                        let _ = errors.send(Err(e));
                    }
                });
                true
            }
        }
    }

    async fn close(self) {
        if let Link::Ws(mut ws) = self {
            let _ = ws.as_mut().close(None).await;
        }
    }
}

/// Why a WebSocket did not open.
enum Upgrade {
    /// The node (or something in front of it) answered but did not
    /// upgrade: long-poll may pass.
    Refused(String),
    /// No answer, or the token was refused: long-poll would not help.
    Unreachable(String),
}

/// The WebSocket to `node`.
async fn websocket(
    node: &str,
    token: &str,
    tls: &Arc<rustls::ClientConfig>,
) -> std::result::Result<WsStream, Upgrade> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut request = ws_url(node)
        .into_client_request()
        .map_err(|e| Upgrade::Unreachable(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Upgrade::Unreachable("the device token is not a header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(Connector::Rustls(tls.clone())),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => Err(Upgrade::Unreachable("connection timed out".into())),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(WsError::Http(r))) if r.status().as_u16() == 401 => Err(Upgrade::Unreachable(
            "the node refused the device token (401)".into(),
        )),
        Ok(Err(e @ (WsError::Http(_) | WsError::Protocol(_)))) => {
            Err(Upgrade::Refused(e.to_string()))
        }
        Ok(Err(e)) => Err(Upgrade::Unreachable(e.to_string())),
    }
}

/// Posts frames of a long-poll session (`session` none: opening it);
/// answers the session.
async fn post_frames(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    frames: String,
) -> std::result::Result<String, String> {
    let mut req = http
        .post(url)
        .bearer_auth(token)
        .timeout(CONNECT_TIMEOUT)
        .body(frames);
    if let Some(s) = session {
        req = req.header(POLL_SESSION, s);
    }
    let r = req.send().await.map_err(|e| format!("long-poll: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("long-poll: the node answered {}", r.status()));
    }
    r.headers()
        .get(POLL_SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| "long-poll: the node named no session".to_string())
}

/// Keeps one empty post waiting for the node's frames, handing them to
/// `frames`, until the session ends (an `Err` is the last thing sent).
async fn poll_loop(
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
    frames: tokio::sync::mpsc::UnboundedSender<std::result::Result<String, String>>,
) {
    let err = loop {
        let answer = http
            .post(&url)
            .bearer_auth(&token)
            .header(POLL_SESSION, &session)
            .timeout(POLL_TIMEOUT)
            .send()
            .await;
        let r = match answer {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => break format!("long-poll: the node answered {}", r.status()),
            Err(e) => break format!("long-poll: {e}"),
        };
        let body = match r.text().await {
            Ok(b) => b,
            Err(e) => break format!("long-poll: {e}"),
        };
        for f in body.lines().filter(|l| !l.is_empty()) {
            if frames.send(Ok(f.to_owned())).is_err() {
                return;
            }
        }
    };
    let _ = frames.send(Err(err));
}

/// The header naming a long-poll session (the node's `POLL_SESSION`).
const POLL_SESSION: &str = "cairn-poll-session";

/// One connection to `node`, until it ends (`Ok` once it was welcomed).
async fn connection(
    session: &Session,
    opts: &super::DaemonOptions,
    node: &str,
    tls: &Arc<rustls::ClientConfig>,
    running: &Running,
    stop: &AtomicBool,
    say: &(dyn Fn(&str) + Sync),
) -> std::result::Result<(), String> {
    let hello = FromDevice::Hello {
        client_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut link = Link::open(session, node, tls, &hello, say).await?;
    let (replies, mut answered) = tokio::sync::mpsc::unbounded_channel::<FromDevice>();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_heard = tokio::time::Instant::now();
    let mut welcomed = false;
    loop {
        tokio::select! {
            incoming = link.recv() => {
                let text = match incoming {
                    Some(Ok(t)) => t,
                    None => break,
                    Some(Err(e)) => return done(welcomed, e),
                };
                last_heard = tokio::time::Instant::now();
                match control::decode::<ToDevice>(text.as_bytes()) {
                    Ok(ToDevice::Welcome { node: id }) => {
                        welcomed = true;
                        say(&format!("remote control: connected to node {id} ({node})"));
                    }
                    Ok(ToDevice::Ping) => {
                        if !link.send(&FromDevice::Pong).await {
                            break;
                        }
                    }
                    Ok(ToDevice::Close { reason }) => {
                        say(&format!("remote control: the node closed the connection: {reason}"));
                        break;
                    }
                    Ok(ToDevice::Command { id, action }) => {
                        let job_opts = (opts.exe.clone(), opts.global_args.clone(), opts.listing_key);
                        if matches!(action, Action::ListDir { .. } | Action::ListFiles { .. }) {
                            let (replies, running) = (replies.clone(), running.clone());
                            tokio::task::spawn_blocking(move || {
                                let outcome = handle(&job_opts, &running, action);
                                let _ = replies.send(FromDevice::Reply { id, outcome });
                            });
                        } else {
                            // Jobs start on this thread, which outlives them:
                            // their PR_SET_PDEATHSIG follows the thread that
                            // spawned them, and pool threads come and go.
                            let outcome = handle(&job_opts, running, action);
                            let _ = replies.send(FromDevice::Reply { id, outcome });
                        }
                    }
                    Err(e) => return done(welcomed, format!("refused a message from the node: {e}")),
                }
            },
            reply = answered.recv() => {
                if let Some(reply) = reply {
                    if !link.send(&reply).await {
                        break;
                    }
                }
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) || last_heard.elapsed() > SILENCE {
                    break;
                }
            },
        }
    }
    link.close().await;
    done(welcomed, "the connection ended".into())
}

/// `Ok` for a connection that was welcomed (the next attempt goes to the
/// same node without waiting), else the error.
fn done(welcomed: bool, e: String) -> std::result::Result<(), String> {
    if welcomed {
        Ok(())
    } else {
        Err(e)
    }
}

/// The child process a job action starts: its arguments after the global
/// ones, and whether the job id goes in `--job-id` (an item's backup) or in
/// [`JOB_ID_ENV`] (pure).
///
/// # Errors
///
/// [`Error::Invalid`] for an action that is not a job, or a path or
/// snapshot that could be read as an option.
pub fn job_command(action: &Action) -> Result<(JobId, Vec<OsString>)> {
    let text = |s: &str| OsString::from(s);
    let absolute = |p: &str| {
        if p.starts_with('/') {
            Ok(())
        } else {
            Err(Error::Invalid(format!("{p:?} is not an absolute path")))
        }
    };
    let snapshot = |s: &str| {
        if s.starts_with('-') || s.is_empty() {
            Err(Error::Invalid(format!("{s:?} is not a snapshot")))
        } else {
            Ok(())
        }
    };
    let mut args: Vec<OsString> = Vec::new();
    let job = match action {
        Action::Backup {
            job,
            item: Some(item),
            ..
        } => {
            args.extend(["backup", "--item", item.as_str(), "--job-id"].map(text));
            args.push(job.to_string().into());
            *job
        }
        Action::Backup {
            job,
            item: None,
            vault: Some(vault),
            paths,
        } if !paths.is_empty() => {
            paths.iter().try_for_each(|p| absolute(p))?;
            args.extend(["backup", "--vault", vault.as_str(), "--"].map(text));
            args.extend(paths.iter().map(|p| text(p)));
            *job
        }
        Action::Restore {
            job,
            vault,
            snapshot: snap,
            target,
            paths,
        } => {
            snapshot(snap)?;
            absolute(target)?;
            paths.iter().try_for_each(|p| absolute(p))?;
            args.extend(["restore", "--vault", vault.as_str()].map(text));
            args.push(format!("--target={target}").into());
            args.extend(
                paths
                    .iter()
                    .map(|p| OsString::from(format!("--include={p}"))),
            );
            args.extend(["--", snap.as_str()].map(text));
            *job
        }
        Action::Retention { job, vault, item } => {
            args.extend(
                [
                    "retention",
                    "apply",
                    "--vault",
                    vault.as_str(),
                    "--item",
                    item.as_str(),
                ]
                .map(text),
            );
            *job
        }
        Action::Check {
            job,
            vault,
            read_data,
        } => {
            args.extend(["check", "--vault", vault.as_str()].map(text));
            if *read_data {
                args.push("--read-data".into());
            }
            *job
        }
        other => return Err(Error::Invalid(format!("not a job: {other:?}"))),
    };
    Ok((job, args))
}

/// The settings a command handler needs: the binary, its global
/// arguments, the listing key.
type JobOpts = (
    PathBuf,
    Vec<OsString>,
    Option<crate::crypto::listing::ListingKey>,
);

fn refused(code: &str, message: impl Into<String>) -> Outcome {
    Outcome::Err {
        code: code.into(),
        message: message.into(),
    }
}

fn ok(answer: Answer) -> Outcome {
    Outcome::Ok { answer }
}

/// Carries out one command.
fn handle(opts: &JobOpts, running: &Running, action: Action) -> Outcome {
    match action {
        Action::Cancel { job } => {
            let jobs = running.lock().unwrap_or_else(|p| p.into_inner());
            match jobs.get(&job) {
                Some(child) => {
                    super::signal(child, libc::SIGTERM);
                    ok(Answer::Cancelled)
                }
                None => refused(
                    "not_found",
                    format!("job {job} does not run on this device"),
                ),
            }
        }
        Action::ListDir { path } => match list_dir(Path::new(&path)) {
            Ok(l) => ok(Answer::Dir(l)),
            Err(e) => refused("failed", e.to_string()),
        },
        Action::ListFiles {
            vault,
            snapshot,
            path,
        } => match list_files(opts, &vault, &snapshot, &path) {
            Ok(l) => ok(Answer::Sealed(l)),
            Err(e) => refused("failed", e.to_string()),
        },
        job_action => {
            let (job, args) = match job_command(&job_action) {
                Ok(c) => c,
                Err(e) => return refused("bad_request", e.to_string()),
            };
            let mut jobs = running.lock().unwrap_or_else(|p| p.into_inner());
            if jobs.contains_key(&job) {
                // A retried dispatch of a job already running.
                return ok(Answer::Started);
            }
            match super::spawn_job(&opts.0, &opts.1, &args, &[(JOB_ID_ENV, job.to_string())]) {
                Ok(child) => {
                    jobs.insert(job, child);
                    ok(Answer::Started)
                }
                Err(e) => refused("failed", format!("could not start the job: {e}")),
            }
        }
    }
}

/// A directory's entries, by name, at most [`MAX_DIR_ENTRIES`].
fn list_dir(path: &Path) -> std::io::Result<DirListing> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let meta = e.metadata()?;
        entries.push(DirEntry {
            name: e.file_name().to_string_lossy().into_owned(),
            dir: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let truncated = entries.len() > MAX_DIR_ENTRIES;
    entries.truncate(MAX_DIR_ENTRIES);
    Ok(DirListing {
        path: path.to_string_lossy().into_owned(),
        entries,
        truncated,
    })
}

/// `cairn ls --json` of a snapshot, sealed with the listing key.
fn list_files(opts: &JobOpts, vault: &str, snapshot: &str, path: &str) -> Result<SealedListing> {
    let key = opts.2.ok_or_else(|| {
        Error::Invalid(
            "this daemon has no account password (CAIRN_PASSWORD or CAIRN_PASSWORD_FILE), \
             so it cannot list snapshots"
                .into(),
        )
    })?;
    if snapshot.starts_with('-') || (!path.is_empty() && !path.starts_with('/')) {
        return Err(Error::Invalid("malformed snapshot or path".into()));
    }
    let mut cmd = Command::new(&opts.0);
    cmd.args(&opts.1)
        .args(["--json", "ls", "--vault", vault, "--", snapshot]);
    if !path.is_empty() {
        cmd.arg(path);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("run cairn ls", &opts.0, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Invalid(format!("cairn ls failed: {}", err.trim())));
    }
    if out.stdout.len() > MAX_LISTING {
        return Err(Error::Invalid(
            "the listing is too large to relay; list a directory of the snapshot".into(),
        ));
    }
    Ok(SealedListing {
        version: control::LISTING_VERSION,
        sealed: hex::encode(crate::crypto::listing::seal(&key, &out.stdout)),
    })
}

/// Forgets dispatched children that ended and ends their jobs from the
/// exit status (refused, harmlessly, when the child recorded the end).
/// Blocking HTTP: called from the daemon's loop, never the connection's.
pub fn reap(session: &Session, running: &Running, say: &dyn Fn(&str)) {
    let mut ended = Vec::new();
    running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|job, child| match child.try_wait() {
            Ok(Some(status)) => {
                ended.push((*job, status));
                false
            }
            _ => true,
        });
    for (job, status) in ended {
        say(&format!("remote control: job {job} ended with {status}"));
        // Refused (job_already_finished) when the process recorded its end,
        // which is the rule; this ends a job it never got to record.
        let _ = finish_by_id(session, job, &unrecorded_end(status));
    }
}

/// How a dispatched job ends when its process did not record the end:
/// by its exit status. A SIGTERM is the daemon's own doing (a cancel, or
/// the daemon stopping), so `cancelled`: whether it killed the process
/// outright or `cairn` took it before its job was registered to record
/// (it then exits 128 + SIGTERM, as a shell expects).
fn unrecorded_end(status: std::process::ExitStatus) -> FinishJob {
    use std::os::unix::process::ExitStatusExt;
    let (status, error) = if status.success() {
        (JobStatus::Succeeded, None)
    } else if status.signal() == Some(libc::SIGTERM) || status.code() == Some(128 + libc::SIGTERM) {
        (JobStatus::Cancelled, None)
    } else {
        let error = format!("the job's process ended with {status}");
        (JobStatus::Error, Some(error))
    };
    FinishJob {
        status,
        files: 0,
        bytes: 0,
        error,
        log: "the job's process ended without recording the job's end".into(),
    }
}

/// SIGTERM to every dispatched child (each records `cancelled`), then
/// waits up to `grace` for them to end.
fn stop_all(running: &Running, grace: Duration) {
    let lock = || running.lock().unwrap_or_else(|p| p.into_inner());
    for child in lock().values() {
        super::signal(child, libc::SIGTERM);
    }
    let until = std::time::Instant::now() + grace;
    while std::time::Instant::now() < until
        && lock()
            .values_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process killed by the daemon's SIGTERM ends its job cancelled,
    /// any other failure as an error, a clean exit as succeeded.
    #[test]
    fn unrecorded_ends_follow_the_exit_status() {
        use std::os::unix::process::ExitStatusExt;
        let end = |raw| unrecorded_end(std::process::ExitStatus::from_raw(raw));
        assert_eq!(end(0).status, JobStatus::Succeeded);
        assert_eq!(end(libc::SIGTERM).status, JobStatus::Cancelled);
        assert_eq!(end(libc::SIGTERM).error, None);
        assert_eq!(end((128 + libc::SIGTERM) << 8).status, JobStatus::Cancelled);
        assert_eq!(end(libc::SIGKILL).status, JobStatus::Error);
        let failed = end(3 << 8);
        assert_eq!(failed.status, JobStatus::Error);
        assert!(failed.error.expect("why").contains("exit status: 3"));
    }

    #[test]
    fn urls_follow_the_scheme() {
        assert_eq!(ws_url("https://n1:8700/"), "wss://n1:8700/api/v1/connect");
        assert_eq!(
            ws_url("http://127.0.0.1:9"),
            "ws://127.0.0.1:9/api/v1/connect"
        );
    }

    #[test]
    fn job_commands_never_let_a_value_become_an_option() {
        let job = JobId([1; 16]);
        let (id, args) = job_command(&Action::Restore {
            job,
            vault: "main".into(),
            snapshot: "latest".into(),
            target: "/tmp/r".into(),
            paths: vec!["/home/a b".into()],
        })
        .expect("restore");
        assert_eq!(id, job);
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            args,
            [
                "restore",
                "--vault",
                "main",
                "--target=/tmp/r",
                "--include=/home/a b",
                "--",
                "latest"
            ]
        );
        for bad in [
            Action::Restore {
                job,
                vault: "v".into(),
                snapshot: "--delete".into(),
                target: "/t".into(),
                paths: vec![],
            },
            Action::Backup {
                job,
                item: None,
                vault: Some("v".into()),
                paths: vec!["-rf".into()],
            },
            Action::ListDir { path: "/".into() },
        ] {
            assert!(job_command(&bad).is_err(), "{bad:?}");
        }
        let (_, args) = job_command(&Action::Backup {
            job,
            item: Some("home".into()),
            vault: None,
            paths: vec![],
        })
        .expect("item");
        assert_eq!(args[..3], ["backup", "--item", "home"].map(OsString::from));
    }

    #[test]
    fn directories_list_sorted_with_kinds() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("b")).expect("dir");
        std::fs::write(dir.path().join("a"), b"xyz").expect("file");
        let l = list_dir(dir.path()).expect("list");
        assert_eq!(
            l.entries,
            vec![
                DirEntry {
                    name: "a".into(),
                    dir: false,
                    size: 3
                },
                DirEntry {
                    name: "b".into(),
                    dir: true,
                    size: 0
                }
            ]
        );
        assert!(list_dir(&dir.path().join("missing")).is_err());
    }
}
