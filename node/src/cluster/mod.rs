//! The cluster layer: this node's Raft instance, a read handle on the
//! replicated state, and the three operations every API handler is built
//! from — [`Cluster::propose`] (a write through the log),
//! [`Cluster::read_barrier`] (a linearizable read) and [`Cluster::join`] /
//! [`Cluster::remove_node`] (membership, always changed by the leader).
//! Failures are a typed [`ClusterError`]; the peers' transport is
//! [`network`], the Prometheus registry [`metrics`]; [`abandon`] is the
//! leader's worker that ends silent jobs, [`jobs`] the job log's names and
//! counts, [`overdue`] the schedules whose backups are overdue. No other
//! role lives here:
//! the storage role is built on top ([`crate::storage`]), and nothing in
//! this module knows HTTP servers.
//!
//! Writes may arrive at any node. The node proposes locally; if it is not
//! the leader it forwards the *same* [`Request`] (same request id) to the
//! leader's internal `/raft/propose` endpoint, and retries on failover. The
//! request id makes those retries safe: the state machine answers a repeated
//! id with its first outcome instead of applying the event twice. The
//! leader answers a forwarded write with the entry's log index, and the
//! forwarding node waits until it has applied that index itself, so a
//! client that reads from the node it wrote to sees its write (without the
//! extra quorum round trip of a read barrier).
//!
//! Reads are linearizable through openraft's read index: the leader
//! confirms its leadership with a quorum and waits until it has applied up
//! to its commit index; a follower asks the leader for that index
//! (`/raft/read-index`) and waits until it has applied that far itself, then
//! reads its own copy of the state.

pub mod abandon;
pub mod batch;
pub mod jobs;
pub mod metrics;
pub mod network;
pub mod overdue;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_consensus::event::{Role, StorageNodeId};
use cairn_consensus::{
    ClusterNode, Event, NodeId, Outcome, Raft, Request, RequestId, StateHandle, UnixMillis,
};
use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::{sleep, Instant};

pub use crate::error::{ClusterError, ForwardedError};
use cairn_chunkstore::repair::RepairReport;
use cairn_proto::admin::{
    ClusterStatus, DefineTier, JoinRequest, JoinResponse, Member, RemoveResponse, StorageNodeInfo,
    TierInfo,
};
use metrics::Metrics;
use network::{post_bincode, HttpNetwork};

use crate::config::{DataDir, NodeIdentity, RaftSettings};
use crate::error::NodeError;
use crate::tls::TlsSettings;
use crate::token::{AdminToken, ClusterSecret, CLUSTER_SECRET_HEADER};

/// Voters beyond this many stay learners (DESIGN §4): more voters slow every
/// commit and add little availability.
pub const MAX_VOTERS: usize = 5;

/// How many entries behind the leader's commit index a node may be and
/// still report ready.
pub const READY_LAG: u64 = 100;

/// How long a write or read keeps retrying through leader changes.
const RETRY_FOR: Duration = Duration::from_secs(15);

/// How long the leader waits for a joining node to answer at its address.
const JOIN_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Header marking a request already forwarded once, to stop forwarding loops.
pub const FORWARDED_HEADER: &str = "x-cairn-forwarded";

/// The node.
pub struct Cluster {
    /// This node's identity.
    pub identity: NodeIdentity,
    /// The Raft instance.
    pub raft: Raft,
    /// Read-only view of the applied state.
    pub state: StateHandle,
    /// Hash of the admin token (absent when the node has no token file).
    pub admin: Option<AdminToken>,
    /// The cluster secret required on every internal endpoint.
    pub cluster_secret: ClusterSecret,
    /// HTTP client for peers (forwarding, joins); verifies certificates
    /// against the public roots and the node's `ca_file`.
    pub http: reqwest::Client,
    /// The HTTPS server configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The data directory (its file system's free space is a metric).
    pub data_dir: std::path::PathBuf,
    /// RocksDB statistics of the Raft database, for the health metrics.
    pub raft_db: cairn_consensus::DbProperties,
    /// The queue every write proposed on this node goes through, so
    /// concurrent writes share log entries ([`batch`]).
    batcher: batch::Batcher,
}

/// The API form of a tier, as devices see it.
pub fn tier_info(t: &cairn_consensus::state::Tier) -> cairn_proto::api::TierInfo {
    cairn_proto::api::TierInfo {
        name: t.name.clone(),
        replicas: t.replicas,
        quota_bytes: t.quota_bytes,
        description: t.description.clone(),
        requestable: t.requestable,
    }
}

/// The admin API's form of a tier: the devices' view, when it was last
/// defined and the storage labels it needs.
pub fn admin_tier_info(s: &cairn_consensus::State, t: &cairn_consensus::state::Tier) -> TierInfo {
    TierInfo {
        tier: tier_info(t),
        defined_at: t.defined_at.0,
        labels: s
            .topology()
            .tier_labels(&t.name)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default(),
    }
}

/// Environment variable offsetting this node's wall clock by a signed
/// number of milliseconds. Test-only: it exists so a test can prove that a
/// skewed clock changes nothing about the license lease (or anything else).
pub const TEST_CLOCK_OFFSET_ENV: &str = "CAIRN_TEST_CLOCK_OFFSET_MS";

/// Milliseconds since the epoch, chosen by the proposer for events
/// (offset by [`TEST_CLOCK_OFFSET_ENV`] when a test sets it).
pub fn now() -> UnixMillis {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        std::env::var(TEST_CLOCK_OFFSET_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    });
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ms = i64::try_from(ms).unwrap_or(i64::MAX).saturating_add(offset);
    UnixMillis(u64::try_from(ms).unwrap_or(0))
}

fn unavailable(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Unavailable(e.to_string())
}

/// Maps a failed membership change: not being the leader and another
/// change in progress are worth retrying (unavailable), the rest is not.
fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => unavailable("not the leader"),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(e),
        )) => unavailable(e),
        other => ClusterError::Internal(other.to_string()),
    }
}

/// The error of a data directory without a cluster secret (one
/// initialised before every node had one), saying how to give it one.
fn no_cluster_secret(dir: &DataDir) -> NodeError {
    NodeError::Config(format!(
        "{} does not exist: every node needs the cluster secret, which guards the \
         cluster-internal endpoints. Pass --cluster-secret-file FILE with the cluster's \
         secret (DATA_DIR/cluster.secret of a member); for a cluster made before secrets \
         were required, create one (e.g. `openssl rand -hex 32 > cluster.secret`, mode 0600) \
         and pass it to every node",
        dir.cluster_secret().display()
    ))
}

/// Keeps the data directory private to the node's user: it holds KDF
/// salts, wrapped vault keys, token hashes and the secrets. Every file the
/// process creates from now on (RocksDB's included) gets no group or other
/// access (umask 077), and what is already there loses it (a data dir made
/// before this, or by hand).
fn restrict_data_dir(root: &std::path::Path) -> Result<(), NodeError> {
    use std::os::unix::fs::PermissionsExt;

    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| NodeError::Io { path, source }
    };
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & !0o077))
                .map_err(io(&path))?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io(&path))? {
                pending.push(entry.map_err(io(&path))?.path());
            }
        }
    }
    Ok(())
}

impl Cluster {
    /// Opens the Raft store under `dir` and starts Raft (not the HTTP
    /// server, which [`Cluster::tls`] configures).
    ///
    /// # Errors
    ///
    /// The store cannot be opened (e.g. another `cairnd` holds it), the TLS
    /// files are unusable, or Raft refuses to start.
    pub async fn start(
        dir: &DataDir,
        identity: NodeIdentity,
        settings: &RaftSettings,
        tls: &TlsSettings,
    ) -> Result<Arc<Cluster>, NodeError> {
        let config = settings.raft_config()?;
        restrict_data_dir(dir.root())?;
        // Before the store is opened: bad TLS files fail the start cleanly.
        let server_tls = tls.server_config(dir, &identity)?;
        let cluster_secret =
            ClusterSecret::load(&dir.cluster_secret())?.ok_or_else(|| no_cluster_secret(dir))?;
        let metrics = Metrics::new().map_err(|e| NodeError::Config(format!("metrics: {e}")))?;
        metrics.set_roles(&identity.roles);
        let (log, sm) =
            cairn_consensus::open_observed(&dir.raft(), Arc::new(metrics.snapshot().clone()))?;
        let state = sm.handle();
        let raft_db = sm.properties();
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value = reqwest::header::HeaderValue::from_str(cluster_secret.expose())
            .map_err(|_| NodeError::Config("the cluster secret must be printable ASCII".into()))?;
        value.set_sensitive(true);
        headers.insert(CLUSTER_SECRET_HEADER, value);
        // Peer traffic (Raft RPCs, forwarding, joins) presents the secret.
        let http = crate::tls::client_builder(tls.ca_file.as_deref())?
            .connect_timeout(Duration::from_secs(2))
            .default_headers(headers)
            .build()
            .map_err(|e| NodeError::Config(format!("http client: {e}")))?;
        let raft = Raft::new(
            identity.node_id,
            config,
            HttpNetwork::new(http.clone(), metrics.snapshot().chunks_sent.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let admin = match AdminToken::load(&dir.admin_token()) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no admin token: the admin API is disabled on this node");
                None
            }
        };
        let batcher = batch::Batcher::start(raft.clone());
        Ok(Arc::new(Cluster {
            identity,
            batcher,
            raft,
            state,
            admin,
            cluster_secret,
            http,
            tls: server_tls,
            metrics,
            data_dir: dir.root().to_owned(),
            raft_db,
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.identity.node_id
    }

    /// Proposes `event` under a fresh request id.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`] if no leader accepted it within the retry
    /// window. A rejection by the state machine is an `Ok(Outcome::Rejected)`.
    pub async fn propose(&self, event: Event) -> Result<Outcome, ClusterError> {
        self.propose_request(Request {
            request_id: RequestId::random(),
            event,
        })
        .await
    }

    /// Proposes `request`, forwarding to the leader and retrying (with the
    /// same request id) until it is committed or the retry window ends.
    /// When it returns, this node has applied the entry.
    ///
    /// # Errors
    ///
    /// As [`Cluster::propose`].
    pub async fn propose_request(&self, request: Request) -> Result<Outcome, ClusterError> {
        let deadline = Instant::now() + RETRY_FOR;
        let mut last_error = String::from("no leader");
        loop {
            match self.batcher.write(request.clone()).await {
                Ok((_, outcome)) => {
                    self.metrics.count_outcome(&outcome);
                    return Ok(outcome);
                }
                Err(batch::WriteError::NotLeader(f)) => {
                    if let Some(leader) = f.leader_node {
                        let answer: Result<Result<(u64, Outcome), String>, _> = post_bincode(
                            &self.http,
                            &leader.http_addr,
                            "/raft/propose",
                            &request,
                            Some(RETRY_FOR),
                        )
                        .await;
                        match answer {
                            Ok(Ok((index, outcome))) => {
                                self.metrics.count_outcome(&outcome);
                                self.wait_applied(index).await?;
                                return Ok(outcome);
                            }
                            Ok(Err(e)) => last_error = e,
                            Err(e) => last_error = e.to_string(),
                        }
                    }
                }
                Err(batch::WriteError::Refused(e)) => return Err(ClusterError::Internal(e)),
                Err(batch::WriteError::Fatal(f)) => return Err(unavailable(f)),
            }
            if Instant::now() >= deadline {
                return Err(unavailable(last_error));
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this node has applied log index `index`.
    async fn wait_applied(&self, index: u64) -> Result<(), ClusterError> {
        self.raft
            .wait(Some(RETRY_FOR))
            .applied_index_at_least(Some(index), "apply a forwarded write")
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Proposes on this node only (the leader side of forwarding): no
    /// further forwarding, so two nodes that disagree about the leader
    /// cannot bounce a request between them. Answers the entry's log index
    /// with its outcome.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Raft`] if this node is not the leader or Raft failed.
    pub async fn propose_local(&self, request: Request) -> Result<(u64, Outcome), ClusterError> {
        // Not counted here: the node that received the write counts it.
        self.batcher
            .write(request)
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Waits until this node's state reflects every write committed before
    /// the call (a linearizable read point).
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`] without a reachable leader.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let err = match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    match f.leader_node {
                        Some(leader) => match self.follower_read_index(&leader).await {
                            Ok(()) => return Ok(()),
                            Err(e) => e,
                        },
                        None => "no leader".to_string(),
                    }
                }
                Err(RaftError::APIError(e)) => e.to_string(),
                Err(RaftError::Fatal(f)) => return Err(unavailable(f)),
            };
            if Instant::now() >= deadline {
                return Err(unavailable(err));
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until this node has applied what `leader` says it must for a
    /// linearizable read. The error is the reason, for the retry loop.
    async fn follower_read_index(&self, leader: &ClusterNode) -> Result<(), String> {
        let answer: Result<Option<u64>, String> = post_bincode(
            &self.http,
            &leader.http_addr,
            "/raft/read-index",
            &(),
            Some(Duration::from_secs(5)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let index = answer?;
        self.raft
            .wait(Some(Duration::from_secs(5)))
            .applied_index_at_least(index, "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The leader side of a follower read: confirms leadership and returns
    /// the index the follower must have applied.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Raft`] if this node is not the leader.
    pub async fn read_index(&self) -> Result<Option<u64>, ClusterError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|l| l.map(|l| l.index))
            .map_err(|e| ClusterError::Raft(e.to_string()))
    }

    /// Adds a node: as a learner first (waiting until it has caught up), then,
    /// if it runs the auth role, as a voter while there are fewer than
    /// [`MAX_VOTERS`] (other nodes stay learners: storage nodes never change
    /// the quorum); records its roles and labels, and, with the storage
    /// role, it as a storage node. Idempotent: a node that is already a member is
    /// left as it is.
    ///
    /// Must run on the leader; the HTTP handler forwards otherwise.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Unavailable`] if this node is not the leader (the caller
    /// forwards), other membership errors as internal errors.
    pub async fn join(&self, req: &JoinRequest) -> Result<JoinResponse, ClusterError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let known = membership.membership().get_node(&req.node_id).cloned();
        match known {
            Some(node) if node.http_addr != req.addr => {
                return Err(ClusterError::BadRequest(format!(
                    "node {} is already a member at {}, not {}",
                    req.node_id, node.http_addr, req.addr
                )));
            }
            Some(_) => {}
            None => {
                self.check_joiner(req).await?;
                self.raft
                    .add_learner(req.node_id, ClusterNode::new(req.addr.clone()), true)
                    .await
                    .map_err(membership_error)?;
            }
        }
        let roles = if req.roles.is_empty() {
            crate::roles::all()
        } else {
            crate::roles::parse(&req.roles).map_err(|e| ClusterError::BadRequest(e.to_string()))?
        };
        let labels = crate::roles::parse_labels(&req.labels);
        // The profile first: a storage node must not become a placement
        // target before its labels are known.
        self.record_profile(req.node_id, &roles, &labels).await?;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        let mut voter = voters.contains(&req.node_id);
        if !voter && crate::roles::votes(&roles) && voters.len() < MAX_VOTERS {
            self.raft
                .change_membership(
                    ChangeMembers::AddVoterIds(BTreeSet::from([req.node_id])),
                    false,
                )
                .await
                .map_err(membership_error)?;
            voter = true;
        }
        if roles.contains(&Role::Storage) {
            self.record_storage_node(req.node_id, &req.addr).await?;
        }
        Ok(JoinResponse {
            voter,
            leader: self.id(),
        })
    }

    /// Checks a new member before it is added: a valid id and URL, an
    /// address no other member has, and a node that answers there (with
    /// the cluster secret, as peers do) as the node it claims to be. A
    /// joiner that is not there would become a voter that never votes and,
    /// in a small cluster, stop every write.
    async fn check_joiner(&self, req: &JoinRequest) -> Result<(), ClusterError> {
        if req.node_id == 0 {
            return Err(ClusterError::BadRequest(
                "node ids are positive integers".into(),
            ));
        }
        let base = req.addr.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClusterError::BadRequest(format!(
                "{} is not an http:// or https:// URL",
                req.addr
            )));
        }
        let taken = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .find(|(_, n)| n.http_addr.trim_end_matches('/') == base)
            .map(|(id, _)| *id);
        if let Some(id) = taken {
            return Err(ClusterError::JoinRefused(format!(
                "{} is node {id}'s address, not node {}'s",
                req.addr, req.node_id
            )));
        }
        let url = format!("{base}/api/v1/cluster/status");
        let answer = self
            .http
            .get(&url)
            .timeout(JOIN_PROBE_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let status = match answer {
            Ok(resp) => resp.json::<ClusterStatus>().await,
            Err(e) => Err(e),
        };
        match status {
            Ok(s) if s.node_id == req.node_id => Ok(()),
            Ok(s) => Err(ClusterError::JoinRefused(format!(
                "{} is node {}, not node {}",
                req.addr, s.node_id, req.node_id
            ))),
            Err(e) => Err(ClusterError::JoinRefused(format!(
                "node {} does not answer at {} ({}); start it with `cairnd serve --join` \
                 and an address this node can reach",
                req.node_id,
                req.addr,
                crate::error::describe(&e)
            ))),
        }
    }

    /// Removes `node` from the cluster (`cairnd cluster remove`): asks the
    /// leader, wherever it is, retrying through leader changes.
    ///
    /// # Errors
    ///
    /// As [`Cluster::remove_local`]; [`ClusterError::Unavailable`] without a leader.
    pub async fn remove_node(&self, node: NodeId) -> Result<RemoveResponse, ClusterError> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let leader = {
                let m = self.raft.metrics().borrow().clone();
                m.current_leader.map(|l| {
                    let addr = m
                        .membership_config
                        .membership()
                        .get_node(&l)
                        .map(|n| n.http_addr.clone());
                    (l, addr)
                })
            };
            let err = match leader {
                Some((l, _)) if l == self.id() => match self.remove_local(node).await {
                    Err(ClusterError::Unavailable(e)) => e,
                    done => return done,
                },
                Some((_, Some(addr))) => {
                    let answer: Result<Result<RemoveResponse, ForwardedError>, _> = post_bincode(
                        &self.http,
                        &addr,
                        "/raft/remove-node",
                        &node,
                        Some(RETRY_FOR),
                    )
                    .await;
                    match answer {
                        Ok(Ok(done)) => return Ok(done),
                        Ok(Err(f)) if !f.is_unavailable() => {
                            return Err(ClusterError::Forwarded(f))
                        }
                        Ok(Err(f)) => f.body.message,
                        Err(e) => e.to_string(),
                    }
                }
                _ => "no leader".to_string(),
            };
            if Instant::now() >= deadline {
                return Err(unavailable(err));
            }
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// The leader side of [`Cluster::remove_node`]: records the node's storage
    /// role as removed, then drops it (voter or learner) from the cluster
    /// with a membership change and, if a voter slot opened up, promotes a
    /// learner. The record comes first because a leader that removes
    /// itself steps down and can no longer propose. Idempotent: removing a
    /// node that was already removed succeeds.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotFound`] for a node the cluster never had,
    /// [`ClusterError::BadRequest`] for the last voter, [`ClusterError::Unavailable`]
    /// if this node is not the leader or another change is in progress.
    pub async fn remove_local(&self, node: NodeId) -> Result<RemoveResponse, ClusterError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
        let is_member = membership.membership().get_node(&node).is_some();
        let was_recorded = self.state.read(|s| s.storage_nodes().contains_key(&node));
        if !is_member && !was_recorded {
            return Err(ClusterError::NotFound(format!(
                "node {node} is not a member of the cluster"
            )));
        }
        if voters.len() == 1 && voters.contains(&node) {
            return Err(ClusterError::BadRequest(format!(
                "node {node} is the only voter; a cluster cannot remove its last voter"
            )));
        }
        let outcome = self
            .propose(Event::StorageNodeRemoved { node, at: now() })
            .await?;
        match outcome {
            Outcome::Applied
            | Outcome::NoOp
            | Outcome::Rejected(
                cairn_consensus::Rejection::UnknownStorageNode(_)
                | cairn_consensus::Rejection::StorageNodeState { .. },
            ) => {}
            Outcome::Rejected(r) => return Err(ClusterError::Rejected(r)),
        }
        if is_member {
            let change = if voters.contains(&node) {
                ChangeMembers::RemoveVoters(BTreeSet::from([node]))
            } else {
                ChangeMembers::RemoveNodes(BTreeSet::from([node]))
            };
            self.raft
                .change_membership(change, false)
                .await
                .map_err(membership_error)?;
            tracing::info!(node, "removed from the cluster");
        }
        if node != self.id() {
            self.promote_learners().await?;
        }
        let m = self.raft.metrics().borrow().clone();
        Ok(RemoveResponse {
            node_id: node,
            leader: m.current_leader.filter(|l| *l != node),
            voters: m.membership_config.membership().voter_ids().collect(),
            learners: m.membership_config.membership().learner_ids().collect(),
        })
    }

    /// Promotes auth learners to voters (lowest id first) while there are
    /// fewer than [`MAX_VOTERS`] voters.
    async fn promote_learners(&self) -> Result<(), ClusterError> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let voters = membership.membership().voter_ids().count();
        let topology = self.state.read(|s| s.topology().clone());
        let promote: BTreeSet<NodeId> = membership
            .membership()
            .learner_ids()
            .filter(|id| topology.has_role(*id, Role::Auth))
            .take(MAX_VOTERS.saturating_sub(voters))
            .collect();
        if promote.is_empty() {
            return Ok(());
        }
        tracing::info!(?promote, "promoting learners to voters");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(promote), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Records `node`'s roles and storage labels unless the state already
    /// holds exactly these.
    ///
    /// # Errors
    ///
    /// No leader; an invalid label ([`ClusterError::Rejected`]).
    pub async fn record_profile(
        &self,
        node: NodeId,
        roles: &BTreeSet<Role>,
        labels: &BTreeSet<String>,
    ) -> Result<(), ClusterError> {
        let same = self.state.read(|s| {
            s.topology()
                .nodes()
                .get(&node)
                .is_some_and(|p| p.roles == *roles && p.labels == *labels)
        });
        if same {
            return Ok(());
        }
        match self
            .propose(Event::NodeProfileSet {
                node,
                roles: roles.clone(),
                labels: labels.clone(),
                at: now(),
            })
            .await?
        {
            Outcome::Applied | Outcome::NoOp => Ok(()),
            Outcome::Rejected(r) => Err(ClusterError::Rejected(r)),
        }
    }

    /// The members (id → address) that run `role`.
    pub fn serving(&self, role: Role) -> Vec<(NodeId, String)> {
        let members: BTreeMap<NodeId, String> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.http_addr.clone()))
            .collect();
        self.state
            .read(|s| crate::roles::serving(&members, s.topology(), role))
    }

    /// Records `node` as a storage node unless it already is one.
    ///
    /// # Errors
    ///
    /// No leader.
    pub async fn record_storage_node(
        &self,
        node: StorageNodeId,
        addr: &str,
    ) -> Result<(), ClusterError> {
        let already = self.state.read(|s| {
            s.storage_nodes()
                .get(&node)
                .is_some_and(|n| n.status != cairn_consensus::state::StorageNodeStatus::Removed)
        });
        if already {
            return Ok(());
        }
        match self
            .propose(Event::StorageNodeJoined {
                node,
                addr: addr.to_string(),
                at: now(),
            })
            .await?
        {
            Outcome::Applied
            | Outcome::Rejected(cairn_consensus::Rejection::DuplicateId { .. }) => Ok(()),
            Outcome::Rejected(r) => Err(ClusterError::Rejected(r)),
            Outcome::NoOp => Ok(()),
        }
    }

    /// This node's view of the cluster. Replication progress per member is
    /// only known on the leader, as is `repair`, the storage role's last
    /// repair pass (chunks held and left to move per node).
    pub fn status(&self, repair: Option<&RepairReport>) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication: BTreeMap<NodeId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let topology = self.state.read(|s| s.topology().clone());
        let roles_of = |id: NodeId| match topology.nodes().get(&id) {
            Some(p) => crate::roles::names(&p.roles),
            None => crate::roles::names(&crate::roles::all()),
        };
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                roles: roles_of(*id),
                id: *id,
                addr: node.http_addr.clone(),
                voter: voters.contains(id),
                matched_index: if *id == m.id {
                    m.last_log_index
                } else {
                    replication.get(id).copied().flatten()
                },
                applied_index: if *id == m.id {
                    m.last_applied.map(|l| l.index)
                } else {
                    None
                },
            })
            .collect();
        let leader_addr = m
            .current_leader
            .and_then(|l| membership.get_node(&l))
            .map(|n| n.http_addr.clone());
        let storage_nodes = self.state.read(|s| {
            s.storage_nodes()
                .values()
                .map(|n| {
                    let report = repair;
                    let held = report.and_then(|r| r.held.get(&n.id));
                    StorageNodeInfo {
                        id: n.id,
                        addr: n.addr.clone(),
                        status: format!("{:?}", n.status),
                        chunks: held.map(|u| u.chunks),
                        bytes: held.map(|u| u.bytes),
                        to_move: report.and_then(|r| r.misplaced.get(&n.id).copied()),
                        labels: topology
                            .labels_of(n.id)
                            .map(|l| l.iter().cloned().collect())
                            .unwrap_or_default(),
                    }
                })
                .collect()
        });
        ClusterStatus {
            node_id: m.id,
            role: format!("{:?}", m.state),
            leader: m.current_leader,
            leader_addr,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
            voters: voters.into_iter().collect(),
            storage_nodes,
            under_replicated_chunks: repair.map(|r| r.under_replicated),
            license: None,
            unsatisfiable_tiers: self.state.read(|s| {
                let down = repair.map_or(&[][..], |r| r.unreachable.as_slice());
                crate::roles::unsatisfiable_tiers(s, down)
            }),
        }
    }

    /// Whether the node can serve (`/readyz`): Raft running, a leader
    /// known, this node a member of the cluster, and caught up — within
    /// [`READY_LAG`] entries of the leader's commit index, which a follower
    /// asks the leader for (a node that only knows its own log cannot tell
    /// how far behind it is).
    pub async fn is_ready(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        let member = m.running_state.is_ok()
            && m.state != ServerState::Shutdown
            && m.membership_config.membership().get_node(&m.id).is_some();
        let leader = m
            .current_leader
            .and_then(|l| m.membership_config.membership().get_node(&l).cloned());
        let (true, Some(leader)) = (member, leader) else {
            return false;
        };
        if m.current_leader == Some(m.id) {
            return true;
        }
        let answer: Result<Result<Option<u64>, String>, _> = post_bincode(
            &self.http,
            &leader.http_addr,
            "/raft/read-index",
            &(),
            Some(Duration::from_secs(2)),
        )
        .await;
        let applied = m.last_applied.map_or(0, |l| l.index);
        match answer {
            Ok(Ok(committed)) => {
                m.last_applied.is_some() && applied + READY_LAG >= committed.unwrap_or(0)
            }
            _ => false,
        }
    }

    /// Defines or redefines a vault tier under `request_id` (the admin
    /// API's `POST /api/v1/admin/tiers`, and the dev cluster's tier): the
    /// state machine validates it (replicas, name, quota, description).
    /// `wrap` turns the event into the proposal (the admin API's audited
    /// action).
    /// Answers the tier as this node has then applied it.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Rejected`] for an invalid tier, [`ClusterError::Unavailable`]
    /// without a leader.
    pub async fn define_tier(
        &self,
        request_id: RequestId,
        req: DefineTier,
        wrap: impl FnOnce(Event) -> Event,
    ) -> Result<TierInfo, ClusterError> {
        let at = now();
        let fallback = TierInfo {
            tier: cairn_proto::api::TierInfo {
                name: req.name.clone(),
                replicas: req.replicas,
                quota_bytes: req.quota_bytes,
                description: req.description.clone(),
                requestable: req.requestable,
            },
            defined_at: at.0,
            labels: req.labels.clone(),
        };
        let event = Event::TierPooled {
            name: req.name,
            replicas: req.replicas,
            requestable: req.requestable,
            quota_bytes: req.quota_bytes,
            description: req.description,
            labels: crate::roles::parse_labels(&req.labels),
            at,
        };
        let event = wrap(event);
        match self.propose_request(Request { request_id, event }).await? {
            Outcome::Applied => {}
            Outcome::Rejected(r) => return Err(ClusterError::Rejected(r)),
            Outcome::NoOp => {
                return Err(ClusterError::Internal("event produced no outcome".into()))
            }
        }
        // A retried request was applied by its first attempt, with that
        // attempt's time: answer from the state.
        Ok(self
            .state
            .read(|s| {
                s.tiers()
                    .get(&fallback.tier.name)
                    .map(|t| admin_tier_info(s, t))
            })
            .unwrap_or(fallback))
    }

    /// Whether Raft is still running (storage not failed).
    pub fn is_healthy(&self) -> bool {
        self.raft.metrics().borrow().running_state.is_ok()
    }
}
