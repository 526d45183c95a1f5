//! Starting a node: `cairnd init`, `cairnd serve [--join]` and the
//! no-argument dev cluster.
//!
//! ```text
//!  init:  node.json? no → Raft::initialize({self}) → wait leader → record storage node → stop
//!  serve: node.json → Cluster::start → storage + workers → bind → (join task)
//!         → HTTP until SIGINT/SIGTERM → stop workers → raft.shutdown
//!  dev:   init if needed (id 1, 127.0.0.1:8700, ./cairn-data, tier `standard`) → serve
//! ```
//!
//! The policy of these commands lives here, not in the binary: which
//! identity `serve` runs as ([`serve_identity`]) and how the dev cluster is
//! bootstrapped ([`dev`]); the binary only merges settings and prints.
//!
//! `node.json` is written last by `init`, so a crash during init leaves a
//! data directory that `init` can simply be run on again.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::{ClusterNode, RequestId};
use cairn_proto::admin::{DefineTier, JoinRequest, JoinResponse};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::config::{DataDir, HttpSettings, NodeIdentity, RaftSettings, StorageSettings};
use crate::error::NodeError;
use crate::http::{self, HttpState};
use crate::storage::{self, Storage};
use crate::tls::TlsSettings;
use crate::token::{AdminToken, ClusterSecret};
use crate::worker::Workers;

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
) -> Result<Arc<Cluster>, NodeError> {
    if NodeIdentity::load(dir)?.is_some() {
        return Err(NodeError::Config(format!(
            "{} is already initialised",
            dir.root().display()
        )));
    }
    prepare(dir, SecretSource::GivenOrNew(cluster_secret))?;
    let app = Cluster::start(dir, identity.clone(), settings, tls).await?;
    if let Err(e) = init_cluster(&app).await {
        if let Err(s) = app.raft.shutdown().await {
            tracing::error!(error = %s, "raft shutdown after failed init");
        }
        return Err(e);
    }
    identity.save(dir)?;
    Ok(app)
}

async fn init_cluster(app: &Arc<Cluster>) -> Result<(), NodeError> {
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
        .map_err(|source| NodeError::Bootstrap {
            what: "recording the storage node",
            source,
        })?;
    Ok(())
}

/// What a node reports once it listens (the command line prints it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// This node's Raft id.
    pub node_id: u64,
    /// The bound address as a URL (`http://` or `https://`).
    pub url: String,
    /// The URL peers and clients use.
    pub advertise: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The admin token file.
    pub admin_token: PathBuf,
}

/// How `serve` was asked to run.
pub struct ServeOptions {
    /// Cluster URL to join (for a node that is not yet a member).
    pub join: Option<String>,
    /// Told where the node listens once it does (the command line prints it).
    pub on_listening: Box<dyn FnOnce(&Listening) + Send>,
    /// The node's data directory (the storage role keeps its chunks there).
    pub data_dir: DataDir,
    /// Settings of the storage role.
    pub storage: StorageSettings,
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
    let app = Cluster::start(dir, identity, settings, tls).await?;
    serve_app(app, options, shutdown).await
}

/// Serves HTTP (HTTPS when [`Cluster::tls`] is set) for a started node until
/// `shutdown` resolves, then stops Raft — on every way out, a failed start
/// included.
///
/// # Errors
///
/// Invalid HTTP limits, the chunk store cannot be opened, the address
/// cannot be bound.
pub async fn serve_app(
    app: Arc<Cluster>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let served = run(&app, options, shutdown).await;
    tracing::info!("shutting down raft");
    if let Err(e) = app.raft.shutdown().await {
        tracing::error!(error = %e, "raft shutdown");
    }
    served
}

/// The node's life between Raft's start and stop: the storage role and its
/// workers, the listener, the join task, the HTTP server until `shutdown`;
/// then the join task is aborted and the workers are stopped (their cancel
/// signal fired and awaited) before Raft stops.
async fn run(
    app: &Arc<Cluster>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let identity = app.identity.clone();
    options.http.validate()?;
    let storage = Storage::start(app, &options.data_dir, options.storage.clone())?;
    let mut workers = Workers::new();
    storage::workers::start(&mut workers, app, &storage);
    crate::cluster::abandon::start(&mut workers, app, options.storage.job_silence_ms);
    tracing::debug!(workers = ?workers.names(), "workers started");
    let bind_error = |source| NodeError::Serve {
        addr: identity.listen.to_string(),
        source,
    };
    let listener = match TcpListener::bind(identity.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            workers.stop().await;
            return Err(bind_error(e));
        }
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(e) => {
            workers.stop().await;
            return Err(bind_error(e));
        }
    };
    tracing::info!(node_id = identity.node_id, %local, advertise = %identity.advertise, "cairnd listening");
    let scheme = if app.tls.is_some() { "https" } else { "http" };
    (options.on_listening)(&Listening {
        node_id: identity.node_id,
        url: format!("{scheme}://{local}"),
        advertise: identity.advertise.clone(),
        data_dir: options.data_dir.root().to_owned(),
        admin_token: options.data_dir.admin_token(),
    });
    let joiner = options
        .join
        .map(|url| tokio::spawn(join_until_member(app.clone(), url)));
    let router = http::router(HttpState {
        cluster: app.clone(),
        storage,
    });
    http::serve::serve_connections(listener, app.tls.clone(), router, options.http, shutdown).await;
    if let Some(j) = joiner {
        j.abort();
    }
    workers.stop().await;
    Ok(())
}

/// Asks the cluster at `url` to add this node, retrying until the leader
/// reports success (the cluster may be electing a leader, the URL's node may
/// be down, or another membership change may be in progress). The leader's
/// join is idempotent and records the storage node as its last step, so
/// only a successful answer ends the loop — not merely seeing ourselves in
/// the membership, which happens before that last step.
async fn join_until_member(app: Arc<Cluster>, url: String) {
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

/// Where `serve` runs: the node identity of the data directory, or for a
/// node that is not yet a member and is given `--join`, a new identity from
/// the flags (its data directory prepared with the cluster's secret).
#[derive(Debug, Clone, Default)]
pub struct ServeRequest {
    /// `--node-id`: must match an existing identity; needed for a joiner.
    pub node_id: Option<u64>,
    /// `--listen`: must match an existing identity; needed for a joiner.
    pub listen: Option<SocketAddr>,
    /// `--advertise` of a new joiner.
    pub advertise: Option<String>,
    /// Whether the node serves HTTPS (the default advertised scheme).
    pub tls: bool,
    /// Whether the node joins a cluster (`--join`).
    pub joining: bool,
    /// `--cluster-secret-file`: installed into the data directory if given.
    pub cluster_secret: Option<PathBuf>,
}

/// Resolves the identity `serve` runs as (see [`ServeRequest`]).
///
/// # Errors
///
/// [`NodeError::Config`] when `--node-id`/`--listen` contradict the data
/// directory, or it is not initialised and this is not a join; as
/// [`prepare_joiner`] and [`install_cluster_secret`].
pub fn serve_identity(dir: &DataDir, req: ServeRequest) -> Result<NodeIdentity, NodeError> {
    let secret = req.cluster_secret.as_deref();
    match (NodeIdentity::load(dir)?, req.node_id, req.listen) {
        (Some(id), n, l) => {
            if n.is_some_and(|n| n != id.node_id) || l.is_some_and(|l| l != id.listen) {
                return Err(NodeError::Config(format!(
                    "{} belongs to node {} on {}; --node-id/--listen cannot change that",
                    dir.root().display(),
                    id.node_id,
                    id.listen
                )));
            }
            install_cluster_secret(dir, secret)?;
            Ok(id)
        }
        (None, Some(n), Some(l)) if req.joining => {
            let id = NodeIdentity::new(n, l, req.advertise, req.tls);
            prepare_joiner(dir, &id, secret)?;
            Ok(id)
        }
        (None, _, _) => Err(NodeError::Config(format!(
            "{} is not initialised: run `cairnd init`, or pass --node-id, --listen and --join",
            dir.root().display()
        ))),
    }
}

/// Data directory of the dev cluster unless one is given.
pub const DEV_DATA_DIR: &str = "./cairn-data";

/// Listen address of the dev cluster unless one is given.
pub const DEV_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8700);

/// The tier a new dev cluster offers: one copy of every chunk.
pub const DEV_TIER: &str = "standard";

/// The no-argument dev cluster: one loopback node, id 1, plain HTTP, every
/// role, initialised on first start with the [`DEV_TIER`] tier (defined
/// through [`Cluster::define_tier`], the admin API's validated path), then
/// served until `shutdown` resolves.
///
/// # Errors
///
/// A non-loopback address, the store cannot be opened, the tier is
/// refused, or serving fails.
pub async fn dev(
    listen: SocketAddr,
    settings: &RaftSettings,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    check_listen(listen, false, false)?;
    let dir = options.data_dir.clone();
    // The dev cluster is loopback-only and plain HTTP.
    let tls = TlsSettings::default();
    let app = match NodeIdentity::load(&dir)? {
        Some(id) => {
            // A dev data dir from before every node had a secret.
            ensure_dev_cluster_secret(&dir)?;
            Cluster::start(&dir, id, settings, &tls).await?
        }
        None => {
            let identity = NodeIdentity::new(1, listen, None, false);
            let app = start_new_cluster(&dir, identity, None, settings, &tls).await?;
            // Usable at once: devices can request vaults of this tier.
            let tier = DefineTier {
                name: DEV_TIER.into(),
                replicas: 1,
                requestable: true,
                quota_bytes: None,
                description: "dev cluster: one copy of every chunk".into(),
            };
            if let Err(e) = app.define_tier(RequestId::random(), tier).await {
                if let Err(s) = app.raft.shutdown().await {
                    tracing::error!(error = %s, "raft shutdown");
                }
                return Err(NodeError::Bootstrap {
                    what: "defining the dev tier",
                    source: e,
                });
            }
            app
        }
    };
    serve_app(app, options, shutdown).await
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
        assert!(matches!(
            check_listen(lan, false, false),
            Err(NodeError::Config(_))
        ));
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
        assert!(matches!(
            check_advertise(&http_id, &tls),
            Err(NodeError::Config(_))
        ));
        assert!(matches!(
            check_advertise(&https_id, &plain),
            Err(NodeError::Config(_))
        ));
    }
}
