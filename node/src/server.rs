//! Starting a node: `cairnd init`, `cairnd serve [--join]` and the
//! no-argument dev cluster.
//!
//! ```text
//!  init:  node.json? no → Raft::initialize({self}) → wait leader → record storage node → stop
//!  serve: node.json → Cluster::start → storage + workers → bind → (join task)
//!         → HTTP until SIGINT/SIGTERM → stop workers → raft.shutdown
//!  dev:   init if needed (id 1, 127.0.0.1:8700, ./cairn-data, tier `standard`)
//!         → embedded license authority (dev serial, lease taken in-process) → serve
//!  license-authority init|serve: DIR/operator.token + DIR/db (RocksDB) → HTTP(S)
//! ```
//!
//! The policy of these commands lives here, not in the binary: which
//! identity `serve` runs as ([`serve_identity`]) and how the dev cluster is
//! bootstrapped ([`dev`]); the binary only merges settings and prints.
//!
//! `node.json` is written last by `init`, so a crash during init leaves a
//! data directory that `init` can simply be run on again.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::event::Role;
use cairn_consensus::{ClusterNode, RequestId};
use cairn_proto::admin::{DefineTier, JoinRequest, JoinResponse};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::config::{
    DataDir, DownloadSettings, HttpSettings, NodeIdentity, RaftSettings, StorageSettings,
};
use crate::downloads::Downloads;
use crate::error::NodeError;
use crate::http::authority::AuthorityState;
use crate::http::{self, HttpState};
use crate::license::gate::Gate;
use crate::license::store::AuthorityStore;
use crate::license::worker::LeaseWorker;
use crate::storage::{self, Storage};
use crate::tls::TlsSettings;
use crate::token::{AdminToken, ClusterSecret};
use crate::worker::{Schedule, Workers};

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
    crate::roles::check(&identity.roles, &identity.storage_labels, true)?;
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
    app.record_profile(id, &app.identity.roles, &app.identity.storage_labels)
        .await
        .map_err(|source| NodeError::Bootstrap {
            what: "recording the node's roles",
            source,
        })?;
    if app.identity.has(Role::Storage) {
        app.record_storage_node(id, &app.identity.advertise)
            .await
            .map_err(|source| NodeError::Bootstrap {
                what: "recording the storage node",
                source,
            })?;
    }
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
    /// `--dev-license`: a cluster without a license counts as licensed
    /// (dev and test clusters only).
    pub dev_license: bool,
    /// The embedded license authority to serve on the node's listener
    /// (set by [`dev`]; `None` elsewhere).
    pub authority: Option<AuthorityState>,
    /// The downloads role: where the client builds are.
    pub downloads: DownloadSettings,
    /// The brand downloaded clients show.
    pub branding: cairn_proto::download::Branding,
}

/// How often the `license` worker refreshes the node's gate and, on the
/// leader, checks whether the lease is due for renewal.
const LICENSE_TICK: Duration = Duration::from_millis(500);

/// Length of the embedded dev authority's leases.
const DEV_LEASE: Duration = Duration::from_secs(600);

/// How often the dev cluster renews its lease.
const DEV_RENEW_SECONDS: u64 = 60;

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
    let ca = crate::downloads::client_ca(tls, dir);
    serve_app(app, options, ca, shutdown).await
}

/// Serves HTTP (HTTPS when [`Cluster::tls`] is set) for a started node until
/// `shutdown` resolves, then stops Raft — on every way out, a failed start
/// included. Downloaded clients trust `client_ca` (see
/// [`crate::downloads::client_ca`]).
///
/// # Errors
///
/// Invalid HTTP limits, the chunk store cannot be opened, the address
/// cannot be bound.
pub async fn serve_app(
    app: Arc<Cluster>,
    options: ServeOptions,
    client_ca: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let served = run(&app, options, client_ca, shutdown).await;
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
    client_ca: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let identity = app.identity.clone();
    options.http.validate()?;
    let downloads = Arc::new(Downloads::new(
        &options.downloads,
        options.branding.clone(),
        client_ca.as_deref(),
    )?);
    let storage = Storage::start(app, &options.data_dir, options.storage.clone())?;
    let mut workers = Workers::new();
    storage::workers::start(&mut workers, app, &storage);
    if identity.has(Role::Cluster) {
        crate::cluster::abandon::start(&mut workers, app, options.storage.job_silence_ms);
    }
    let license = Arc::new(Gate::new(options.dev_license));
    if options.dev_license {
        tracing::warn!(
            "--dev-license: without a license this cluster counts as licensed (dev and tests only)"
        );
    }
    workers.spawn(
        "license",
        Schedule {
            first: Duration::ZERO,
            every: LICENSE_TICK,
        },
        LeaseWorker::new(app.clone(), storage.clone(), license.clone()),
    );
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
    let joiner = match options.join {
        Some(url) => tokio::spawn(join_until_member(app.clone(), url)),
        None => tokio::spawn(record_profile_until_done(app.clone())),
    };
    let router = http::router(HttpState {
        cluster: app.clone(),
        storage,
        license,
        authority: options.authority,
        downloads,
    });
    http::serve::serve_connections(listener, app.tls.clone(), router, options.http, shutdown).await;
    joiner.abort();
    workers.stop().await;
    Ok(())
}

/// Records this node's roles and labels in the replicated state when they
/// differ from what it holds (a node restarted with `--change-roles`, or
/// one from before roles), retrying until a leader takes it.
async fn record_profile_until_done(app: Arc<Cluster>) {
    let mut delay = Duration::from_millis(200);
    loop {
        let id = app.id();
        let recorded = app.state.read(|s| {
            s.topology().nodes().get(&id).is_some_and(|p| {
                p.roles == app.identity.roles && p.labels == app.identity.storage_labels
            })
        });
        if recorded {
            return;
        }
        match app
            .record_profile(id, &app.identity.roles, &app.identity.storage_labels)
            .await
        {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "recording this node's roles; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
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
        roles: crate::roles::names(&app.identity.roles),
        labels: app.identity.storage_labels.iter().cloned().collect(),
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
        let is_recorded = app.state.read(|s| {
            s.topology().nodes().contains_key(&id)
                && (!app.identity.has(Role::Storage) || s.storage_nodes().contains_key(&id))
        });
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
    /// `--roles` (a new node's, or with `change_roles` the new ones).
    pub roles: Option<BTreeSet<Role>>,
    /// `--storage-labels` (likewise).
    pub storage_labels: Option<BTreeSet<String>>,
    /// `--change-roles`: replace node.json's roles and labels.
    pub change_roles: bool,
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
        (Some(mut id), n, l) => {
            if n.is_some_and(|n| n != id.node_id) || l.is_some_and(|l| l != id.listen) {
                return Err(NodeError::Config(format!(
                    "{} belongs to node {} on {}; --node-id/--listen cannot change that",
                    dir.root().display(),
                    id.node_id,
                    id.listen
                )));
            }
            let roles = req.roles.clone().unwrap_or_else(|| id.roles.clone());
            let labels = req
                .storage_labels
                .clone()
                .unwrap_or_else(|| id.storage_labels.clone());
            if (roles != id.roles || labels != id.storage_labels) && !req.change_roles {
                return Err(NodeError::Config(format!(
                    "node {} runs {} with storage labels [{}] (kept in {}); pass --change-roles \
                     to change them (see OPERATIONS.md, \"Changing a node's roles\")",
                    id.node_id,
                    crate::roles::names(&id.roles).join(","),
                    id.storage_labels
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(","),
                    dir.node_file().display()
                )));
            }
            crate::roles::check(&roles, &labels, false)?;
            install_cluster_secret(dir, secret)?;
            if roles != id.roles || labels != id.storage_labels {
                id.roles = roles;
                id.storage_labels = labels;
                id.save(dir)?;
            }
            Ok(id)
        }
        (None, Some(n), Some(l)) if req.joining => {
            let mut id = NodeIdentity::new(n, l, req.advertise, req.tls);
            if let Some(roles) = req.roles {
                id.roles = roles;
            }
            id.storage_labels = req.storage_labels.unwrap_or_default();
            crate::roles::check(&id.roles, &id.storage_labels, false)?;
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
    let mut options = options;
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
                labels: Vec::new(),
            };
            if let Err(e) = app.define_tier(RequestId::random(), tier, |e| e).await {
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
    match dev_license(&app, &dir).await {
        Ok(authority) => options.authority = Some(authority),
        Err(e) => {
            if let Err(s) = app.raft.shutdown().await {
                tracing::error!(error = %s, "raft shutdown");
            }
            return Err(e);
        }
    }
    serve_app(app, options, None, shutdown).await
}

/// The dev cluster's embedded license authority: its store under
/// `DATA_DIR/license-authority` with the dev serial, the node's admin
/// token as its operator token, served on the node's own listener. The
/// cluster's license is set to it on first start, and the lease is taken
/// (or renewed) in-process before the node serves, so the dev cluster is
/// writable from its first request; the `license` worker renews it over
/// HTTP like any cluster's.
async fn dev_license(app: &Arc<Cluster>, dir: &DataDir) -> Result<AuthorityState, NodeError> {
    use cairn_consensus::{Event, UnixMillis};

    use crate::license::{configure, DEV_SERIAL};

    let bootstrap = |what: &'static str| {
        move |e: crate::cluster::ClusterError| NodeError::Bootstrap { what, source: e }
    };
    let store = Arc::new(AuthorityStore::open(&dir.root().join("license-authority"))?);
    let at = crate::cluster::now();
    let authority_error = |e: crate::license::store::AuthorityError| {
        NodeError::Config(format!("embedded license authority: {e}"))
    };
    store
        .ensure(DEV_SERIAL, "dev cluster", at.0)
        .map_err(authority_error)?;
    let lease_ms = u64::try_from(DEV_LEASE.as_millis()).unwrap_or(u64::MAX);
    let current = app.state.read(|s| s.license().cloned());
    let url = app.identity.advertise.clone();
    if current
        .as_ref()
        .is_none_or(|l| l.serial == DEV_SERIAL && l.authority != url)
    {
        let req = cairn_proto::admin::SetLicense {
            serial: DEV_SERIAL.into(),
            authority: url,
            renew_seconds: Some(DEV_RENEW_SECONDS),
            grace_seconds: None,
        };
        let event =
            configure(current.as_ref(), &req, at).map_err(|e| NodeError::Config(e.to_string()))?;
        app.propose(event)
            .await
            .map_err(bootstrap("setting the dev license"))?;
    }
    let (license, lease) = app
        .state
        .read(|s| (s.license().cloned(), s.lease().cloned()));
    if let Some(license) = license.filter(|l| l.serial == DEV_SERIAL) {
        let telemetry = crate::license::policy::Telemetry::default();
        let renewed = lease.as_ref().and_then(|l| {
            store
                .renew(
                    DEV_SERIAL,
                    &license.cluster_id,
                    l.fencing_token,
                    telemetry.clone(),
                    at.0,
                    lease_ms,
                )
                .ok()
        });
        let event = match renewed {
            Some(g) => Event::LeaseRenewed {
                serial: DEV_SERIAL.into(),
                fencing_token: g.fencing_token,
                expires_at: UnixMillis(g.expires_at),
                at: UnixMillis(g.renewed_at),
            },
            None => {
                if let Some(l) = &lease {
                    app.propose(Event::LeaseExpired {
                        serial: l.serial.clone(),
                        fencing_token: l.fencing_token,
                        at,
                    })
                    .await
                    .map_err(bootstrap("ending the old dev lease"))?;
                }
                let g = store
                    .acquire(DEV_SERIAL, &license.cluster_id, telemetry, at.0, lease_ms)
                    .map_err(authority_error)?;
                Event::LeaseGranted {
                    lease: cairn_consensus::event::Lease {
                        serial: DEV_SERIAL.into(),
                        fencing_token: g.fencing_token,
                        granted_at: UnixMillis(g.granted_at),
                        expires_at: UnixMillis(g.expires_at),
                    },
                }
            }
        };
        app.propose(event)
            .await
            .map_err(bootstrap("taking the dev lease"))?;
    }
    Ok(AuthorityState {
        store,
        operator: AdminToken::load(&dir.admin_token())?,
        lease_ms,
    })
}

/// `cairnd license-authority init`: the authority's data directory with
/// its operator token (`operator.token`, mode 0600) and its database.
/// Running it again changes nothing.
///
/// # Errors
///
/// IO errors, or the database cannot be created.
pub fn license_authority_init(dir: &Path) -> Result<PathBuf, NodeError> {
    std::fs::create_dir_all(dir).map_err(|source| NodeError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let token = dir.join(AUTHORITY_TOKEN_FILE);
    AdminToken::create_if_missing(&token)?;
    AuthorityStore::open(&dir.join("db"))?;
    Ok(token)
}

/// The operator token file in a license authority's data directory.
pub const AUTHORITY_TOKEN_FILE: &str = "operator.token";

/// How `license-authority serve` runs.
pub struct AuthorityOptions {
    /// The authority's data directory (initialised if needed).
    pub data_dir: PathBuf,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The length of every grant and renewal.
    pub lease: Duration,
    /// HTTPS certificate and key (PEM), if it serves TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP off loopback anyway.
    pub insecure_http: bool,
    /// Told where it listens (the command line prints it).
    pub on_listening: Box<dyn FnOnce(&str) + Send>,
}

/// `cairnd license-authority serve`: the authority until `shutdown`.
/// Like a node it refuses plain HTTP off loopback unless told
/// (`--insecure-http`): serials are secrets.
///
/// # Errors
///
/// The address, TLS files, database or bind fail.
pub async fn license_authority_serve(
    options: AuthorityOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    check_listen(options.listen, options.tls.is_some(), options.insecure_http)?;
    if options.lease < Duration::from_secs(1) {
        return Err(NodeError::Config(
            "--lease-seconds must be at least 1".into(),
        ));
    }
    license_authority_init(&options.data_dir)?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(crate::tls::load_server_config(cert, key)?),
        None => None,
    };
    let state = AuthorityState {
        store: Arc::new(AuthorityStore::open(&options.data_dir.join("db"))?),
        operator: AdminToken::load(&options.data_dir.join(AUTHORITY_TOKEN_FILE))?,
        lease_ms: u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX),
    };
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| NodeError::Serve {
            addr: options.listen.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| NodeError::Serve {
        addr: options.listen.to_string(),
        source,
    })?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{local}");
    tracing::info!(%url, lease_ms = state.lease_ms, "license authority listening");
    (options.on_listening)(&url);
    let router = http::authority::router(state);
    http::serve::serve_connections(listener, tls, router, HttpSettings::default(), shutdown).await;
    Ok(())
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
