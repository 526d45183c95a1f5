//! Remote control over HTTP: the devices' WebSocket (`GET /api/v1/connect`),
//! the node-to-node relay (`/internal/v1/control/*`, behind the cluster
//! secret) and the lookups the dispatcher builds on ([`locate`],
//! [`command`], [`close`], [`everywhere`]).
//!
//! ```text
//! admin ─▶ node 2: POST /api/v1/dispatch/{device}/… ─▶ locate: here? else GET /internal/v1/control on each auth node
//!            └─▶ node 1 (holder): POST /internal/v1/control/{device}/command ─▶ socket ─▶ device
//!                                 ◀─ Outcome (JSON) ◀──────────────────────────── Reply
//! ```
//!
//! Messages on the socket are [`cairn_proto::control`]'s versioned frames.
//! The node pings every [`PING_EVERY`]; a device silent for three pings,
//! revoked, or sending a malformed frame is disconnected (it reconnects).
//!
//! Where a proxy forbids the upgrade, the same frames travel over
//! long-poll (`POST /api/v1/connect/poll`): a post with frames delivers
//! them at once (`204`), an empty post waits up to [`POLL_WAIT`] for what
//! the node sends (`200`, frames one per line). The first post (the
//! hello) opens a session whose id comes back in [`POLL_SESSION`] and goes
//! with every later post. Both transports are a [`Link`] of one task,
//! [`serve_device`]: registration, pings, replies and the end are the same.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use cairn_consensus::event::Role;
use cairn_proto::api::ErrorBody;
use cairn_proto::control::{self, Action, FromDevice, Outcome, ToDevice, MAX_MESSAGE};
use cairn_proto::DeviceId;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{ApiPath, ApiState};
use super::auth::DeviceAuth;
use super::{ApiError, HttpState};
use crate::cluster::{now, Cluster};
use crate::control::{CommandError, Connected, Connections, PollLink};

/// How often the node pings a connected device.
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// How long a device has to say hello after the upgrade.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// How long a dispatched command waits for the device's answer (a
/// snapshot listing opens the vault on the device).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(120);
/// Longest client version a device may report.
const MAX_VERSION_LEN: usize = 64;

/// How long an empty long-poll waits for the node's next message (the
/// node pings every [`PING_EVERY`], so a quiet connection answers sooner).
pub const POLL_WAIT: Duration = Duration::from_secs(25);
/// The header naming a long-poll session.
pub const POLL_SESSION: &str = "cairn-poll-session";

/// The documented routes: the devices' WebSocket and its long-poll form.
pub fn routes() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .routes(routes!(poll))
}

/// The node-to-node relay; the caller puts it behind the cluster secret.
pub fn internal_routes() -> Router<HttpState> {
    Router::new()
        .route("/internal/v1/control", get(internal_list))
        .route(
            "/internal/v1/control/{device}/command",
            post(internal_command),
        )
        .route("/internal/v1/control/{device}/close", post(internal_close))
}

/// A device's live connection for remote control: a WebSocket carrying
/// the versioned control messages (docs/FORMATS.md, "Remote control").
/// The device says hello with its version; the node answers welcome and
/// then sends commands, which the device answers.
#[utoipa::path(get, path = "/api/v1/connect", tag = "control",
    security(("device" = [])),
    responses(
        (status = 101, description = "switching to the WebSocket"),
        (status = 400, body = ErrorBody, description = "bad_request: not a WebSocket upgrade"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: an admin's token"),
    ))]
async fn connect(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    Extension(api): Extension<Arc<ApiState>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve_device(app, api, auth.device, socket)))
}

/// A device's live connection for remote control over long-poll, for
/// networks whose proxies refuse the WebSocket upgrade: the same frames
/// as `GET /api/v1/connect`, one per line. The first post carries the
/// hello and no session; its answer names the session
/// (`Cairn-Poll-Session`), which every later post carries. A post with
/// frames delivers them (`204`); an empty one waits up to 25 s for the
/// node's next messages (`200`, possibly none).
#[utoipa::path(post, path = "/api/v1/connect/poll", tag = "control",
    security(("device" = [])),
    params(("cairn-poll-session" = Option<String>, Header, description = "the session (absent on the first post)")),
    request_body(content = String, content_type = "text/plain", description = "control frames, one per line"),
    responses(
        (status = 200, content_type = "text/plain", description = "the node's frames, one per line"),
        (status = 204, description = "the frames were delivered"),
        (status = 400, body = ErrorBody, description = "bad_request: no hello opening the session, or too large"),
        (status = 401, body = ErrorBody, description = "unauthorized"),
        (status = 403, body = ErrorBody, description = "forbidden: an admin's token"),
        (status = 404, body = ErrorBody, description = "not_found: the session ended (open another)"),
    ))]
async fn poll(
    auth: DeviceAuth,
    State(app): State<Arc<Cluster>>,
    Extension(api): Extension<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_MESSAGE + 4096)
        .await
        .map_err(|_| ApiError::BadRequest("control frames larger than the limit".into()))?;
    let frames: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .filter(|f| !f.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let session = headers
        .get(POLL_SESSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (session, end) = match session {
        Some(session) => {
            let end = api
                .connections
                .poll_end(auth.device, &session)
                .ok_or_else(|| ApiError::NotFound("the long-poll session ended".into()))?;
            (session, end)
        }
        None => {
            if frames.is_empty() {
                return Err(ApiError::BadRequest(
                    "a long-poll session opens with the hello".into(),
                ));
            }
            let link = api.connections.open_poll(auth.device);
            let session = link.session.clone();
            let end = api
                .connections
                .poll_end(auth.device, &session)
                .ok_or_else(|| ApiError::Internal("the session vanished".into()))?;
            tokio::spawn(serve_device(app, api.clone(), auth.device, link));
            (session, end)
        }
    };
    let header = [(POLL_SESSION, session)];
    if !frames.is_empty() {
        for f in frames {
            end.inbound
                .send(f)
                .await
                .map_err(|_| ApiError::NotFound("the long-poll session ended".into()))?;
        }
        return Ok((StatusCode::NO_CONTENT, header).into_response());
    }
    let mut out = end.outbound.lock().await;
    let first = match tokio::time::timeout(POLL_WAIT, out.recv()).await {
        Ok(Some(m)) => vec![m],
        Ok(None) => return Err(ApiError::NotFound("the long-poll session ended".into())),
        Err(_) => Vec::new(),
    };
    let mut sent: Vec<String> = first.iter().map(control::encode).collect();
    while let Ok(m) = out.try_recv() {
        sent.push(control::encode(&m));
    }
    Ok((StatusCode::OK, header, sent.join("\n")).into_response())
}

/// What a link received from the device.
enum Received {
    /// A text frame.
    Frame(Vec<u8>),
    /// Something to skip (binary, WebSocket pings).
    Ignored,
    /// The link ended.
    Ended,
}

/// One transport of a device's connection: a WebSocket or a long-poll
/// session.
trait Link: Send {
    /// Sends one message to the device; false when the link is gone.
    fn send(&mut self, msg: &ToDevice) -> impl std::future::Future<Output = bool> + Send;
    /// The device's next frame.
    fn recv(&mut self) -> impl std::future::Future<Output = Received> + Send;
    /// Ends the link.
    fn end(self, connections: &Connections) -> impl std::future::Future<Output = ()> + Send;
}

impl Link for WebSocket {
    async fn send(&mut self, msg: &ToDevice) -> bool {
        WebSocket::send(self, Message::Text(control::encode(msg).into()))
            .await
            .is_ok()
    }

    async fn recv(&mut self) -> Received {
        match WebSocket::recv(self).await {
            Some(Ok(Message::Text(t))) => Received::Frame(t.as_bytes().to_vec()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => Received::Ended,
            Some(Ok(_)) => Received::Ignored,
        }
    }

    async fn end(mut self, _: &Connections) {
        let _ = WebSocket::send(&mut self, Message::Close(None)).await;
    }
}

impl Link for PollLink {
    async fn send(&mut self, msg: &ToDevice) -> bool {
        // A full queue: the device stopped polling.
        self.outbound.try_send(msg.clone()).is_ok()
    }

    async fn recv(&mut self) -> Received {
        match self.inbound.recv().await {
            Some(f) => Received::Frame(f),
            None => Received::Ended,
        }
    }

    async fn end(self, connections: &Connections) {
        connections.close_poll(&self.session);
    }
}

/// Reads the device's hello: its client version.
async fn hello(link: &mut impl Link) -> Option<String> {
    let first = tokio::time::timeout(HELLO_WITHIN, link.recv()).await.ok()?;
    let Received::Frame(text) = first else {
        return None;
    };
    match control::decode::<FromDevice>(&text) {
        Ok(FromDevice::Hello { client_version }) => {
            Some(client_version.chars().take(MAX_VERSION_LEN).collect())
        }
        _ => None,
    }
}

/// One device's connection, registered for its life.
async fn serve_device(
    app: Arc<Cluster>,
    api: Arc<ApiState>,
    device: DeviceId,
    mut socket: impl Link,
) {
    let Some(version) = hello(&mut socket).await else {
        socket.end(&api.connections).await;
        return;
    };
    let mut reg = api.connections.register(device, version, now().0);
    tracing::info!(%device, "device connected");
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut silent_pings = 0u32;
    let welcome = ToDevice::Welcome { node: app.id() };
    if socket.send(&welcome).await {
        loop {
            tokio::select! {
                out = reg.outbox.recv() => match out {
                    Some(msg) => {
                        let closing = matches!(msg, ToDevice::Close { .. });
                        if !socket.send(&msg).await || closing {
                            break;
                        }
                    }
                    // Replaced by a newer connection of the device.
                    None => break,
                },
                incoming = socket.recv() => {
                    let text = match incoming {
                        Received::Frame(t) => t,
                        Received::Ended => break,
                        Received::Ignored => continue,
                    };
                    silent_pings = 0;
                    match control::decode::<FromDevice>(&text) {
                        Ok(FromDevice::Reply { id, outcome }) => {
                            api.connections.answer(device, reg.epoch, id, outcome);
                        }
                        Ok(FromDevice::Pong | FromDevice::Hello { .. }) => {}
                        Err(e) => {
                            tracing::warn!(%device, error = %e, "malformed control message; disconnecting");
                            break;
                        }
                    }
                },
                _ = ping.tick() => {
                    let live = app.state.read(|s| s.devices().get(&device).is_some_and(|d| d.is_live()));
                    silent_pings += 1;
                    if !live || silent_pings > 3 || !socket.send(&ToDevice::Ping).await {
                        break;
                    }
                },
            }
        }
    }
    api.connections.unregister(device, reg.epoch);
    socket.end(&api.connections).await;
    tracing::info!(%device, "device disconnected");
}

/// A connection as another node lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listed {
    device: DeviceId,
    client_version: String,
    since: u64,
}

async fn internal_list(Extension(api): Extension<Arc<ApiState>>) -> Json<Vec<Listed>> {
    Json(
        api.connections
            .list()
            .into_iter()
            .map(|c| Listed {
                device: c.device,
                client_version: c.client_version,
                since: c.since,
            })
            .collect(),
    )
}

async fn internal_command(
    Extension(api): Extension<Arc<ApiState>>,
    ApiPath(device): ApiPath<DeviceId>,
    Json(action): Json<Action>,
) -> Result<Json<Outcome>, ApiError> {
    api.connections
        .command(device, action, ANSWER_WITHIN)
        .await
        .map(Json)
        .map_err(command_error)
}

async fn internal_close(
    Extension(api): Extension<Arc<ApiState>>,
    ApiPath(device): ApiPath<DeviceId>,
) -> Response {
    if api
        .connections
        .close(device, "disconnected by an administrator")
    {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::NotFound(format!("device {device} is not connected here")).into_response()
    }
}

fn command_error(e: CommandError) -> ApiError {
    match e {
        CommandError::NotHere(_) => ApiError::NotFound(e.to_string()),
        CommandError::Gone | CommandError::Timeout(_) => ApiError::DeviceOffline(e.to_string()),
    }
}

/// Where a device's connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// On this node.
    Here,
    /// On the node at this base URL.
    Node(String),
}

/// The other auth nodes, which may hold connections.
fn others(app: &Cluster) -> Vec<(u64, String)> {
    app.serving(Role::Auth)
        .into_iter()
        .filter(|(id, _)| *id != app.id())
        .collect()
}

/// Lists another node's connections (none if it does not answer).
async fn listed_at(app: &Cluster, base: &str) -> Vec<Listed> {
    let url = format!("{}/internal/v1/control", base.trim_end_matches('/'));
    let answer = app
        .http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Every connection in the cluster, with the node holding it (nodes that
/// do not answer hold none that anyone can reach).
pub async fn everywhere(app: &Cluster, here: &Connections) -> Vec<(u64, Connected)> {
    let mut all: Vec<(u64, Connected)> = here.list().into_iter().map(|c| (app.id(), c)).collect();
    let asks = others(app);
    let lists =
        futures_util::future::join_all(asks.iter().map(|(_, base)| listed_at(app, base))).await;
    for ((node, _), list) in asks.iter().zip(lists) {
        all.extend(list.into_iter().map(|l| {
            (
                *node,
                Connected {
                    device: l.device,
                    client_version: l.client_version,
                    since: l.since,
                },
            )
        }));
    }
    all
}

/// The node holding `device`'s connection.
///
/// # Errors
///
/// [`ApiError::DeviceOffline`] when no node does.
pub async fn locate(
    app: &Cluster,
    here: &Connections,
    device: DeviceId,
) -> Result<Holder, ApiError> {
    if here.holds(device) {
        return Ok(Holder::Here);
    }
    for (_, base) in others(app) {
        if listed_at(app, &base)
            .await
            .iter()
            .any(|l| l.device == device)
        {
            return Ok(Holder::Node(base));
        }
    }
    Err(offline(device))
}

fn offline(device: DeviceId) -> ApiError {
    ApiError::DeviceOffline(format!(
        "device {device} is not connected (is `cairn daemon` running on it?)"
    ))
}

/// Sends `action` to `device` through its holder and returns the answer.
///
/// # Errors
///
/// [`ApiError::DeviceOffline`] when the connection is gone or the device
/// did not answer; the relay's failure otherwise.
pub async fn command(
    app: &Cluster,
    here: &Connections,
    holder: &Holder,
    device: DeviceId,
    action: Action,
) -> Result<Outcome, ApiError> {
    match holder {
        Holder::Here => here
            .command(device, action, ANSWER_WITHIN)
            .await
            .map_err(|e| match e {
                CommandError::NotHere(_) => offline(device),
                e => command_error(e),
            }),
        Holder::Node(base) => {
            let url = format!(
                "{}/internal/v1/control/{device}/command",
                base.trim_end_matches('/')
            );
            let answer = app
                .http
                .post(url)
                .json(&action)
                .timeout(ANSWER_WITHIN + Duration::from_secs(5))
                .send()
                .await
                .map_err(|e| ApiError::DeviceOffline(format!("relay to {base}: {e}")))?;
            if answer.status().is_success() {
                answer
                    .json()
                    .await
                    .map_err(|e| ApiError::Internal(format!("relay answer from {base}: {e}")))
            } else {
                Err(offline(device))
            }
        }
    }
}

/// Drops `device`'s connection wherever it is.
///
/// # Errors
///
/// [`ApiError::DeviceOffline`] when no node holds it.
pub async fn close(app: &Cluster, here: &Connections, device: DeviceId) -> Result<(), ApiError> {
    match locate(app, here, device).await? {
        Holder::Here => {
            here.close(device, "disconnected by an administrator");
            Ok(())
        }
        Holder::Node(base) => {
            let url = format!(
                "{}/internal/v1/control/{device}/close",
                base.trim_end_matches('/')
            );
            match app
                .http
                .post(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => Ok(()),
                _ => Err(offline(device)),
            }
        }
    }
}
