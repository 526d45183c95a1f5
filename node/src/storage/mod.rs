//! The storage role of `cairnd`: this node's chunk store, the peers it
//! replicates through ([`peers`], [`wire`]), the pure decisions that keep
//! chunks safe ([`policy`]) and the background work that repairs,
//! rebalances (on the Raft leader only), collects and scrubs ([`workers`]).
//! Its HTTP routes are the HTTP layer's (`crate::http::chunks` for devices,
//! `crate::http::internal` for other nodes); nothing here knows axum.
//!
//! ```text
//!  device ──POST /api/v1/vaults/{id}/chunks[/missing|/get]──▶ http::chunks (coordinator)
//!                                                              │ spawn_blocking
//!                                                              ▼
//!                       cairn_chunkstore::replica (W-of-R write, verified read, read repair)
//!                                                              │ Peers
//!                               ┌──────────────────────────────┴─────────────────┐
//!                        local RocksStore (DATA_DIR/chunks)     peers: POST /internal/v1/chunks/* (http::internal)
//!
//!  device ──POST /api/v1/vaults/{id}/chunks/{list,delete}──▶ cairn_chunkstore::gc (prune: listing, sweep)
//!
//!  leader only, every repair interval: cairn_chunkstore::repair::anti_entropy
//!     (bucket digests → listings of dirty buckets → node-to-node pushes → stray deletes)
//!  every node, every GC interval: chunks of vaults the state no longer has are deleted
//!  every node, every scrub interval: every copy re-read; damaged ones rewritten or dropped
//! ```
//!
//! Placement comes from the replicated state ([`Storage::placement`]):
//! `Active` storage nodes take copies, `Draining` ones only serve theirs,
//! `Removed` ones are gone; a vault's replica count is its tier's, and a
//! vault whose tier names storage labels keeps its copies on the active
//! nodes carrying them (its pool).
//!
//! A node without the storage role has no chunk store ([`Storage::store`]
//! is `None`): it still coordinates devices' uploads and reads, all of them
//! over HTTP to the storage nodes.

pub mod peers;
pub mod policy;
pub mod wire;
pub mod workers;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::metrics::StorageMetrics;
use crate::cluster::{Cluster, ClusterError};
use crate::config::{DataDir, StorageSettings};
use crate::error::NodeError;
use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::repair::RepairReport;
use cairn_chunkstore::replica::Throttle;
use cairn_chunkstore::{ChunkKey, RocksStore, StoreOptions};
use cairn_consensus::state::StorageNodeStatus;
use cairn_proto::VaultId;
use peers::HttpPeers;

/// Replica sends a coordinator keeps in flight (uploads beyond this wait).
const SENDS_IN_FLIGHT: usize = 32;

/// Memtable size of a node's chunk store.
const STORE_WRITE_BUFFER: usize = 64 << 20;

/// Replica count of a vault whose tier is unknown (DESIGN §5 default).
pub const DEFAULT_REPLICAS: u8 = 3;

/// Most chunk uploads and gets one device may have in flight on one node
/// (the client runs 4 uploaders and 4 restore fetchers).
pub const TRANSFERS_PER_DEVICE: u64 = 8;

/// Most upload body bytes (as declared by `Content-Length`) one account's
/// devices may have in flight on one node: a held upload is buffered whole
/// before it is stored, so this bounds the memory one tenant can pin (an
/// honest device has 4 uploads of ~8-12 MiB in flight).
pub const UPLOAD_BYTES_PER_ACCOUNT: u64 = 256 << 20;

/// Per-key budgets of what is in flight (requests, bytes), each bounded,
/// so that one device or account cannot hold a node's memory with
/// parallel transfers. An entry exists only while its key has something in
/// flight.
#[derive(Debug)]
pub struct InFlight<K: std::hash::Hash + Eq + Copy> {
    limit: u64,
    used: Arc<Mutex<HashMap<K, u64>>>,
}

/// A reservation of [`InFlight`]; released on drop (also when the client
/// goes away and the request's future is dropped).
#[derive(Debug)]
pub struct Reserved<K: std::hash::Hash + Eq + Copy> {
    key: K,
    amount: u64,
    used: Arc<Mutex<HashMap<K, u64>>>,
}

impl<K: std::hash::Hash + Eq + Copy> InFlight<K> {
    /// At most `limit` in flight per key.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Reserves `amount` for `key`, or `None` when that would pass the
    /// limit (a first reservation of more than the limit is refused too).
    pub fn try_reserve(&self, key: K, amount: u64) -> Option<Reserved<K>> {
        let mut map = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let used = map.entry(key).or_insert(0);
        if used.saturating_add(amount) > self.limit {
            if *used == 0 {
                map.remove(&key);
            }
            return None;
        }
        *used += amount;
        Some(Reserved {
            key,
            amount,
            used: self.used.clone(),
        })
    }

    /// The limit per key.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl<K: std::hash::Hash + Eq + Copy> Drop for Reserved<K> {
    fn drop(&mut self) {
        let mut map = self
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(self.amount);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// Opens the chunk store with its values in the object store at `url`
/// (`s3://BUCKET/PREFIX` or `sftp://USER@HOST[:PORT]/PATH`; credentials
/// from the process environment, as the client reads them) and its
/// metadata in `path`. The object layer blocks on a runtime of its own,
/// which must not happen on an async thread: the open (and its check that
/// the location answers) runs on a thread of its own. Also used by
/// `cairnd-debug` on a stopped cloud-backed node.
///
/// # Errors
///
/// The URL is invalid, the location refused us, or the metadata database
/// cannot be opened.
pub fn open_on_objects(
    url: &str,
    path: &std::path::Path,
    options: &StoreOptions,
) -> cairn_chunkstore::Result<RocksStore> {
    use cairn_chunkstore::object::{ObjectUrl, Objects};
    let url = ObjectUrl::parse(url)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            let objects = Objects::open(&url, &|k| std::env::var(k).ok())?;
            RocksStore::open_on_objects(path, options, objects)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(cairn_chunkstore::Error::Service(format!(
                "{url}: opening the object store failed"
            )))
        })
    })
}

/// The leader's latest view of the cluster's chunks (from its last repair
/// pass), for `cluster status`.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The last pass's report.
    pub report: RepairReport,
    /// When it finished.
    pub at: Option<Instant>,
}

/// The running storage role.
pub struct Storage {
    /// This node's chunk store; `None` on a node without the storage role
    /// (it coordinates devices' chunk traffic to the storage nodes, and
    /// holds no `chunks/` directory).
    pub store: Option<Arc<RocksStore>>,
    /// Every node's store, this one included.
    pub peers: Arc<HttpPeers>,
    /// Settings.
    pub settings: StorageSettings,
    /// Metrics (registered with the node's registry).
    pub metrics: StorageMetrics,
    /// Bounds the replica sends this node has in flight as a coordinator.
    pub throttle: Arc<Throttle>,
    /// Bounds each device's chunk uploads and gets in flight.
    pub transfers: InFlight<cairn_proto::DeviceId>,
    /// Bounds each account's upload bytes in flight.
    pub upload_bytes: InFlight<cairn_proto::AccountId>,
    me: NodeId,
    usage_cache: Mutex<HashMap<VaultId, (Instant, u64)>>,
    view: Mutex<Option<ClusterView>>,
}

impl Storage {
    /// Opens `DATA_DIR/chunks` for `app` when the node runs the storage
    /// role (the background work is [`workers`], started by the server);
    /// without it, the node only coordinates devices' chunk traffic.
    ///
    /// # Errors
    ///
    /// The chunk store cannot be opened (e.g. another process holds it).
    pub fn start(
        app: &Arc<Cluster>,
        dir: &DataDir,
        settings: StorageSettings,
    ) -> Result<Arc<Storage>, NodeError> {
        let store = if app.identity.has(cairn_consensus::event::Role::Storage) {
            let path = dir.chunks();
            // Uploads arrive in batches of several MiB: a larger memtable
            // flushes (and so writes blob files) less often.
            let options = StoreOptions {
                write_buffer_size: STORE_WRITE_BUFFER,
                ..StoreOptions::default()
            };
            let store = match &settings.chunk_store {
                None => RocksStore::open(&path, &options),
                Some(url) => open_on_objects(url, &path, &options),
            }
            .and_then(|s| s.track_usage().map(|()| s))
            .map_err(|e| NodeError::Config(format!("chunk store {}: {e}", path.display())))?;
            Some(Arc::new(store))
        } else {
            None
        };
        let peers = Arc::new(HttpPeers::new(
            app.id(),
            store.clone(),
            app.state.clone(),
            app.http.clone(),
            tokio::runtime::Handle::current(),
        ));
        let storage = Arc::new(Storage {
            store,
            peers,
            settings,
            metrics: app.metrics.storage().clone(),
            throttle: Throttle::new(SENDS_IN_FLIGHT),
            transfers: InFlight::new(TRANSFERS_PER_DEVICE),
            upload_bytes: InFlight::new(UPLOAD_BYTES_PER_ACCOUNT),
            me: app.id(),
            usage_cache: Mutex::new(HashMap::new()),
            view: Mutex::new(None),
        });
        Ok(storage)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Placement as the replicated state on this node describes it.
    pub fn placement(app: &Cluster) -> Placement {
        app.state.read(|s| {
            let mut p = Placement::default();
            for n in s.storage_nodes().values() {
                match n.status {
                    StorageNodeStatus::Active => p.active.push(n.id),
                    StorageNodeStatus::Draining => p.draining.push(n.id),
                    StorageNodeStatus::Removed => {}
                }
            }
            p.replicas = s
                .vaults()
                .values()
                .map(|v| {
                    let r = s
                        .tiers()
                        .get(&v.tier)
                        .map_or(DEFAULT_REPLICAS, |t| t.replicas);
                    (v.id, r)
                })
                .collect();
            let pools: BTreeMap<&str, Vec<NodeId>> = s
                .tiers()
                .keys()
                .filter_map(|t| s.topology().tier_labels(t).map(|l| (t.as_str(), s.pool(l))))
                .collect();
            p.pools = s
                .vaults()
                .values()
                .filter_map(|v| {
                    pools
                        .get(v.tier.as_str())
                        .map(|nodes| (v.id, nodes.clone()))
                })
                .collect();
            p
        })
    }

    /// The leader's last repair view; `None` on other nodes or before the
    /// first pass.
    pub fn view(&self) -> Option<ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_view(&self, view: Option<ClusterView>) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = view;
    }

    /// Bytes of one copy of `vault`'s chunks, approximately: the vault's
    /// bytes summed over every node that holds copies, divided by its
    /// replica count, measured at most [`StorageSettings::usage_cache_ms`]
    /// ago (plus what this node uploaded since). Nodes that do not answer
    /// count as empty, copies in transit (written to a stand-in, or not yet
    /// deleted after a move) count twice: the figure is for quotas, not
    /// billing.
    ///
    pub async fn vault_usage(&self, app: &Cluster, vault: VaultId) -> u64 {
        let ttl = Duration::from_millis(self.settings.usage_cache_ms);
        if let Some((at, bytes)) = self.cache().get(&vault) {
            if at.elapsed() < ttl {
                return *bytes;
            }
        }
        let placement = Self::placement(app);
        let mut total: u64 = 0;
        let mut asks = Vec::new();
        for node in placement.holders() {
            if node == self.me {
                total += self.local_usage(vault);
                continue;
            }
            let Some(addr) = app
                .state
                .read(|s| s.storage_nodes().get(&node).map(|n| n.addr.clone()))
            else {
                continue;
            };
            let http = app.http.clone();
            asks.push(async move {
                let answer: Result<cairn_chunkstore::Usage, _> =
                    crate::cluster::network::post_bincode(
                        &http,
                        &addr,
                        "/internal/v1/usage",
                        &vault,
                        Some(Duration::from_secs(5)),
                    )
                    .await;
                answer.map(|u| u.bytes).unwrap_or(0)
            });
        }
        for bytes in futures_util::future::join_all(asks).await {
            total += bytes;
        }
        let r = placement.replicas_of(&vault).max(1) as u64;
        let one_copy = total / r;
        self.cache().insert(vault, (Instant::now(), one_copy));
        one_copy
    }

    /// A cheap, synchronous usage figure for listings (`VaultInfo::used_bytes`):
    /// the last measured [`Storage::vault_usage`] if there is one, else an
    /// extrapolation from this node's own share: a node holds about `R / n`
    /// of the copies, so one copy is about `local × n / R` (exact when
    /// every node holds every chunk, `R = n`).
    pub fn used_bytes_hint(&self, app: &Cluster, vault: VaultId) -> u64 {
        if let Some((_, bytes)) = self.cache().get(&vault) {
            return *bytes;
        }
        let local = self.local_usage(vault);
        let placement = Self::placement(app);
        let r = placement.replicas_of(&vault).max(1) as u64;
        let n = placement.active.len().max(1) as u64;
        local.saturating_mul(n) / r
    }

    /// Whether the cluster holds `chunk` of `vault` on some reachable owner
    /// (for refusing a snapshot whose root tree is not stored).
    ///
    /// # Errors
    ///
    /// The storage task failed.
    pub async fn chunk_stored(
        &self,
        app: &Cluster,
        vault: VaultId,
        chunk: cairn_proto::ChunkId,
    ) -> Result<bool, ClusterError> {
        let placement = Self::placement(app);
        let peers = self.peers.clone();
        let me = self.me;
        let key = ChunkKey::new(vault, chunk);
        let missing = tokio::task::spawn_blocking(move || {
            cairn_chunkstore::replica::missing(&*peers, &placement, Some(me), &[key])
        })
        .await
        .map_err(|e| ClusterError::Internal(format!("storage task: {e}")))?
        .map_err(|e| ClusterError::Internal(e.to_string()))?;
        Ok(missing.first() == Some(&false))
    }

    /// Sets the gauges of what this node stores (chunks and bytes over
    /// every vault) and of its chunk store's RocksDB health, before a
    /// scrape renders them.
    pub fn refresh_metrics(&self) {
        let Some(store) = &self.store else {
            return;
        };
        self.metrics
            .rocks
            .observe("chunks", |name| store.property_total(name));
        if let Ok(usage) = store.usage_by_vault() {
            let (chunks, bytes) = usage
                .iter()
                .fold((0u64, 0u64), |(c, b), (_, u)| (c + u.chunks, b + u.bytes));
            self.metrics.chunks.set(Some(chunks as f64));
            self.metrics.bytes.set(Some(bytes as f64));
        }
    }

    /// Bytes of `vault` in this node's own store (0 without one).
    fn local_usage(&self, vault: VaultId) -> u64 {
        self.store
            .as_ref()
            .and_then(|s| s.usage(&vault).ok())
            .map_or(0, |u| u.bytes)
    }

    /// Adds freshly stored bytes to the cached usage of `vault`.
    pub fn add_usage(&self, vault: VaultId, bytes: u64) {
        if let Some(entry) = self.cache().get_mut(&vault) {
            entry.1 = entry.1.saturating_add(bytes);
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<VaultId, (Instant, u64)>> {
        self.usage_cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
