//! Starting a node: `cairnd init`, `cairnd serve [--join]` and the
//! no-argument dev cluster.
//!
//! ```text
//!  init:  node.json? no → Raft::initialize({self}) → wait leader → record storage node → stop
//!  serve: node.json → App::start → bind → (join task) → axum until SIGINT/SIGTERM → raft.shutdown
//!  dev:   init if needed (id 1, 127.0.0.1:8700, ./cairn-data) → serve
//! ```
//!
//! `node.json` is written last by `init`, so a crash during init leaves a
//! data directory that `init` can simply be run on again.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use cairn_consensus::ClusterNode;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::App;
use crate::config::{DataDir, HttpSettings, NodeIdentity, RaftSettings};
use crate::error::NodeError;
use crate::tls::{TlsSettings, HANDSHAKE_TIMEOUT};
use crate::token::{AdminToken, ClusterSecret};
use crate::wire::{JoinRequest, JoinResponse};

/// The client's address as the API handlers see it (axum `ConnectInfo`),
/// for plain and TLS connections alike ([`serve_app`] inserts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Refuses a non-loopback listen address without TLS unless
/// `--insecure-http` is given: Cairn must not silently serve credentials in
/// clear text on a network.
///
/// # Errors
///
/// [`NodeError::Config`] for a non-loopback address without TLS or the flag.
pub fn check_listen(addr: SocketAddr, tls: bool, insecure_http: bool) -> Result<(), NodeError> {
    if addr.ip().is_loopback() || tls || insecure_http {
        Ok(())
    } else {
        Err(NodeError::Config(format!(
            "{addr} is not a loopback address and TLS is not configured; set tls_cert and \
             tls_key (or --tls-self-signed for a test), or pass --insecure-http to serve \
             plain HTTP on a trusted network"
        )))
    }
}

/// Refuses to serve HTTPS while `node.json` advertises `http://` (or the
/// reverse): peers and clients would speak the wrong protocol to this node
/// and the cluster would only fail later, on every RPC.
///
/// # Errors
///
/// [`NodeError::Config`] when the advertised scheme does not match.
pub fn check_advertise(identity: &NodeIdentity, tls: &TlsSettings) -> Result<(), NodeError> {
    let expected = format!("{}://", tls.scheme());
    if identity.advertise.starts_with(&expected) {
        Ok(())
    } else {
        Err(NodeError::Config(format!(
            "node {} advertises {} but serves {}; pass a matching --advertise (or TLS settings)",
            identity.node_id,
            identity.advertise,
            tls.scheme()
        )))
    }
}

/// Where a new node's cluster secret comes from.
#[derive(Clone, Copy)]
enum SecretSource<'a> {
    /// The operator's file, or a fresh random secret (a new cluster).
    GivenOrNew(Option<&'a Path>),
    /// The cluster's secret, which a joining node must be given.
    Given(&'a Path),
}

fn prepare(dir: &DataDir, secret: SecretSource<'_>) -> Result<(), NodeError> {
    create_data_dir(dir)?;
    AdminToken::create_if_missing(&dir.admin_token())?;
    match secret {
        SecretSource::GivenOrNew(Some(from)) | SecretSource::Given(from) => {
            ClusterSecret::install(from, &dir.cluster_secret())
        }
        SecretSource::GivenOrNew(None) => ClusterSecret::create_if_missing(&dir.cluster_secret()),
    }
}

fn create_data_dir(dir: &DataDir) -> Result<(), NodeError> {
    std::fs::create_dir_all(dir.root()).map_err(|source| NodeError::Io {
        path: dir.root().to_owned(),
        source,
    })
}

/// Copies the cluster secret from `from` (if given) into the data
/// directory; see [`ClusterSecret::install`].
///
/// # Errors
///
/// As [`ClusterSecret::install`].
pub fn install_cluster_secret(dir: &DataDir, from: Option<&Path>) -> Result<(), NodeError> {
    match from {
        Some(from) => ClusterSecret::install(from, &dir.cluster_secret()),
        None => Ok(()),
    }
}

/// Gives a dev-cluster data directory a cluster secret if it has none (one
/// made before every node had a secret): the dev cluster has no peers that
/// would need to be told.
///
/// # Errors
///
/// IO errors.
pub fn ensure_dev_cluster_secret(dir: &DataDir) -> Result<(), NodeError> {
    create_data_dir(dir)?;
    ClusterSecret::create_if_missing(&dir.cluster_secret())
}

/// `cairnd init`: creates a one-voter cluster whose only member is this
/// node, then stops it. The cluster secret is `cluster_secret`'s, or a
/// fresh one written to `DATA_DIR/cluster.secret` for the operator to copy
/// to joining nodes.
///
/// # Errors
///
/// The node was already initialised, the store cannot be opened, or the
/// node did not become leader of its own cluster.
pub async fn init(
    dir: &DataDir,
    identity: NodeIdentity,
    cluster_secret: Option<&Path>,
    settings: &RaftSettings,
    tls: &TlsSettings,
) -> Result<(), NodeError> {
    let app = start_new_cluster(dir, identity, cluster_secret, settings, tls).await?;
    app.raft
        .shutdown()
        .await
        .map_err(|e| NodeError::Raft(format!("shutdown: {e}")))
}

/// Creates a one-voter cluster and returns the running node (the dev
/// cluster keeps it running: the store cannot be reopened in the same
/// process until every openraft task has let go of it).
///
/// # Errors
///
/// As [`init`].
pub async fn start_new_cluster(
    dir: &DataDir,
    identity: NodeIdentity,
    cluster_secret: Option<&Path>,
    settings: &RaftSettings,
    tls: &TlsSettings,
) -> Result<Arc<App>, NodeError> {
    if NodeIdentity::load(dir)?.is_some() {
        return Err(NodeError::Config(format!(
            "{} is already initialised",
            dir.root().display()
        )));
    }
    prepare(dir, SecretSource::GivenOrNew(cluster_secret))?;
    let app = App::start(dir, identity.clone(), settings, tls).await?;
    if let Err(e) = init_cluster(&app).await {
        if let Err(s) = app.raft.shutdown().await {
            tracing::error!(error = %s, "raft shutdown after failed init");
        }
        return Err(e);
    }
    identity.save(dir)?;
    Ok(app)
}

async fn init_cluster(app: &Arc<App>) -> Result<(), NodeError> {
    let id = app.id();
    let initialised = app
        .raft
        .is_initialized()
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    if !initialised {
        let members = BTreeMap::from([(id, ClusterNode::new(app.identity.advertise.clone()))]);
        app.raft
            .initialize(members)
            .await
            .map_err(|e| NodeError::Raft(format!("initialize: {e}")))?;
    }
    app.raft
        .wait(Some(Duration::from_secs(30)))
        .current_leader(id, "init: become leader of the new cluster")
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    app.record_storage_node(id, &app.identity.advertise)
        .await
        .map_err(|e| NodeError::Raft(format!("recording storage node: {e}")))?;
    Ok(())
}

/// How `serve` was asked to run.
pub struct ServeOptions {
    /// Cluster URL to join (for a node that is not yet a member).
    pub join: Option<String>,
    /// Told the bound address once the node listens (the CLI prints it).
    pub on_listening: Box<dyn FnOnce(SocketAddr) + Send>,
    /// The node's data directory (the storage role keeps its chunks there).
    pub data_dir: DataDir,
    /// Settings of the storage role.
    pub storage: crate::storage::StorageSettings,
    /// Limits of the HTTP server (timeouts, connection cap).
    pub http: HttpSettings,
}

/// `cairnd serve`: starts the node and runs it until `shutdown` resolves.
///
/// # Errors
///
/// The store cannot be opened, the address cannot be bound, or serving fails.
pub async fn serve(
    dir: &DataDir,
    identity: NodeIdentity,
    settings: &RaftSettings,
    tls: &TlsSettings,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let app = App::start(dir, identity, settings, tls).await?;
    serve_app(app, options, shutdown).await
}

/// Serves HTTP (HTTPS when [`App::tls`] is set) for a started node until
/// `shutdown` resolves, then stops Raft.
///
/// # Errors
///
/// The address cannot be bound, or serving fails.
pub async fn serve_app(
    app: Arc<App>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let identity = app.identity.clone();
    if let Err(e) = options.http.validate() {
        if let Err(s) = app.raft.shutdown().await {
            tracing::error!(error = %s, "raft shutdown");
        }
        return Err(e);
    }
    match crate::storage::Storage::start(&app, &options.data_dir, options.storage.clone()) {
        Ok(storage) => {
            // Only this function sets it, once per App.
            let _ = app.storage.set(storage);
        }
        Err(e) => {
            if let Err(s) = app.raft.shutdown().await {
                tracing::error!(error = %s, "raft shutdown");
            }
            return Err(e);
        }
    }
    let listener = match TcpListener::bind(identity.listen).await {
        Ok(l) => l,
        Err(source) => {
            if let Err(e) = app.raft.shutdown().await {
                tracing::error!(error = %e, "raft shutdown");
            }
            return Err(NodeError::Serve {
                addr: identity.listen.to_string(),
                source,
            });
        }
    };
    let local = listener.local_addr().map_err(|source| NodeError::Serve {
        addr: identity.listen.to_string(),
        source,
    })?;
    tracing::info!(node_id = identity.node_id, %local, advertise = %identity.advertise, "cairnd listening");
    (options.on_listening)(local);

    let joiner = options
        .join
        .map(|url| tokio::spawn(join_until_member(app.clone(), url)));
    let router = crate::http::router(app.clone());
    serve_connections(listener, app.tls.clone(), router, options.http, shutdown).await;
    if let Some(j) = joiner {
        j.abort();
    }
    tracing::info!("shutting down raft");
    if let Err(e) = app.raft.shutdown().await {
        tracing::error!(error = %e, "raft shutdown");
    }
    Ok(())
}

/// How long a stopping node waits for requests in flight before it stops
/// anyway (a slow client must not hold up a shutdown).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (TLS when `tls` is set) until `shutdown`
/// resolves, within `limits`:
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
async fn serve_connections(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    limits: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
        let (http1, watcher, acceptor) = (http1.clone(), graceful.watcher(), acceptor.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let served = match acceptor {
                None => {
                    let conn = http1.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let conn = http1.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
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
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
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

/// Asks the cluster at `url` to add this node, retrying until the leader
/// reports success (the cluster may be electing a leader, the URL's node may
/// be down, or another membership change may be in progress). The leader's
/// join is idempotent and records the storage node as its last step, so
/// only a successful answer ends the loop — not merely seeing ourselves in
/// the membership, which happens before that last step.
async fn join_until_member(app: Arc<App>, url: String) {
    let id = app.id();
    let req = JoinRequest {
        node_id: id,
        addr: app.identity.advertise.clone(),
    };
    let endpoint = format!("{}/api/v1/cluster/join", url.trim_end_matches('/'));
    let mut delay = Duration::from_millis(200);
    loop {
        let is_member = app
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        let is_recorded = app.state.read(|s| s.storage_nodes().contains_key(&id));
        if is_member && is_recorded {
            tracing::info!(node_id = id, "already a member of the cluster");
            return;
        }
        match app.http.post(&endpoint).json(&req).send().await {
            Ok(resp) if resp.status().is_success() => match resp.json::<JoinResponse>().await {
                Ok(j) => {
                    tracing::info!(
                        node_id = id,
                        voter = j.voter,
                        leader = j.leader,
                        "joined the cluster"
                    );
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "join: unreadable answer; retrying"),
            },
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                tracing::warn!(%status, %text, "join refused; retrying");
            }
            Err(e) => {
                let error = crate::error::describe(&e);
                tracing::warn!(%error, %endpoint, "join failed; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "listening for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "listening for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Prepares a data directory for a node that will join a cluster: its
/// admin token, the cluster's secret (`cluster_secret`, which the joiner
/// presents to be let in) and its identity.
///
/// # Errors
///
/// [`NodeError::Config`] without `cluster_secret`, naming the fix; an
/// unreadable secret file; IO errors.
pub fn prepare_joiner(
    dir: &DataDir,
    identity: &NodeIdentity,
    cluster_secret: Option<&Path>,
) -> Result<(), NodeError> {
    let Some(secret) = cluster_secret else {
        return Err(NodeError::Config(
            "joining a cluster needs its cluster secret: copy DATA_DIR/cluster.secret of a \
             member (written by `cairnd init`) to this host, private to the cairnd user, and \
             pass it with --cluster-secret-file FILE"
                .into(),
        ));
    };
    prepare(dir, SecretSource::Given(secret))?;
    identity.save(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_the_flag() {
        let lan: SocketAddr = "10.1.2.3:8700".parse().expect("addr");
        let lo: SocketAddr = "127.0.0.1:8700".parse().expect("addr");
        assert!(check_listen(lo, false, false).is_ok());
        assert!(check_listen(lan, false, false).is_err());
        assert!(check_listen(lan, false, true).is_ok());
        assert!(check_listen(lan, true, false).is_ok(), "TLS is enough");
    }

    #[test]
    fn advertised_scheme_must_match_tls() {
        let listen: SocketAddr = "127.0.0.1:8700".parse().expect("addr");
        let tls = TlsSettings {
            serve: Some(crate::tls::TlsSource::SelfSigned),
            ca_file: None,
        };
        let plain = TlsSettings::default();
        let http_id = NodeIdentity::new(1, listen, None, false);
        let https_id = NodeIdentity::new(1, listen, None, true);
        assert!(check_advertise(&http_id, &plain).is_ok());
        assert!(check_advertise(&https_id, &tls).is_ok());
        assert!(check_advertise(&http_id, &tls).is_err());
        assert!(check_advertise(&https_id, &plain).is_err());
    }
}
