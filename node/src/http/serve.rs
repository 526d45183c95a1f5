//! The accept loop of the node's HTTP server: hyper's HTTP/1 connections
//! with a timer (header and body timeouts), a connection cap, TLS
//! handshakes with a timeout, upgrades (the devices' WebSockets) and a
//! graceful stop. `axum::serve` sets no timer, hence this loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use super::extract::ClientAddr;
use crate::config::HttpSettings;
use crate::tls::HANDSHAKE_TIMEOUT;

/// How long a stopping node waits for requests in flight before it stops
/// anyway (a slow client must not hold up a shutdown).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (TLS when `tls` is set) until `shutdown`
/// resolves, then waits up to `SHUTDOWN_GRACE` (10 s) for requests in flight,
/// within `limits`:
///
/// - at most `max_connections` connections at once, TLS handshakes
///   included; a connection over the cap is closed at once rather than
///   queued, so descriptors stay bounded and the node keeps accepting;
/// - a connection that has not sent a request's headers within
///   `header_timeout` — a new one, or an idle keep-alive one waiting for
///   its next request — is closed (hyper's header timer, which only runs
///   with a timer: `axum::serve` sets none);
/// - a request body that pauses for longer than `body_timeout` fails.
///
/// The cap is per node, not per client: a client that opens
/// `max_connections` connections can still fill it, but only for
/// `header_timeout` at a time per connection, after which peers and
/// `/healthz` get in again. A separate budget for Raft peers would need to
/// know who a connection is before its first request (the secret travels
/// in a header), so the cap is set high and the header timeout short.
pub async fn serve_connections(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    limits: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // Stopping: `stop` turns true, each connection finishes its requests
    // and closes; `all_done` answers once every connection's `alive` is gone.
    let (stop, stopping) = watch::channel(false);
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .keep_alive(true);
    let body_timeout = limits.body_timeout();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // E.g. out of file descriptors: back off, keep serving.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    %peer,
                    max_connections = limits.max_connections,
                    refused,
                    "connection cap reached: closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "TCP_NODELAY");
        }
        let service = connection_service(router.clone(), peer, body_timeout);
        let (http1, mut stopping, alive, acceptor) = (
            http1.clone(),
            stopping.clone(),
            alive.clone(),
            acceptor.clone(),
        );
        tokio::spawn(async move {
            let (_slot, _alive) = (slot, alive);
            let served = match acceptor {
                None => {
                    let conn = http1.serve_connection(TokioIo::new(stream), service);
                    graceful(conn.with_upgrades(), &mut stopping).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = http1.serve_connection(TokioIo::new(stream), service);
                            graceful(conn.with_upgrades(), &mut stopping).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(alive);
    tokio::select! {
        _ = all_done.recv() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
        }
    }
}

/// Serves one connection (upgrades included) until it ends, or, once
/// `stopping` turns true, lets its requests in flight finish and closes it.
/// An upgraded connection (a WebSocket) has left hyper by then and lives
/// until the process stops.
async fn graceful<I, S, B>(
    conn: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    stopping: &mut watch::Receiver<bool>,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served,
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// The per-connection hyper service: the router, with the client's address
/// for the handlers (`ConnectInfo<ClientAddr>`: login rate limits, audit
/// records) and the body timeout on the request body.
fn connection_service(
    router: axum::Router,
    peer: SocketAddr,
    body_timeout: Duration,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let mut request = request.map(|body| {
            axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body))
        });
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(peer)));
        async move { tower_service::Service::call(&mut router, request).await }
    })
}
