//! The storage role of `cairnd`: this node's chunk store, the device chunk
//! API, the internal routes other nodes replicate through, and the cluster
//! role that repairs and rebalances (on the Raft leader only).
//!
//! ```text
//!  device ──POST /api/v1/vaults/{id}/chunks[/missing|/get]──▶ http (coordinator)
//!                                                              │ spawn_blocking
//!                                                              ▼
//!                       cairn_chunkstore::replica (W-of-R write, verified read, read repair)
//!                                                              │ Peers
//!                               ┌──────────────────────────────┴─────────────────┐
//!                        local RocksStore (DATA_DIR/chunks)     peers: POST /internal/v1/chunks/* (cluster secret)
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
//! `Removed` ones are gone; a vault's replica count is its tier's.

pub mod http;
pub mod peers;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::repair::{self, RepairObserver, RepairReport};
use cairn_chunkstore::replica::Throttle;
use cairn_chunkstore::{ChunkKey, RocksStore, Store, StoreOptions};
use cairn_consensus::state::StorageNodeStatus;
use cairn_proto::VaultId;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::config::DataDir;
use crate::error::{ApiError, NodeError};
use crate::metrics::StorageMetrics;
use peers::HttpPeers;

/// Replica sends a coordinator keeps in flight (uploads beyond this wait).
const SENDS_IN_FLIGHT: usize = 32;

/// Memtable size of a node's chunk store.
const STORE_WRITE_BUFFER: usize = 64 << 20;

/// Replica count of a vault whose tier is unknown (DESIGN §5 default).
pub const DEFAULT_REPLICAS: u8 = 3;

/// Settings of the storage role: the `[storage]` table of the configuration
/// file and the matching `serve` flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Durable copies an upload waits for (W), capped by the vault's
    /// replica count.
    pub write_quorum: usize,
    /// Pause between repair passes of the cluster role, milliseconds.
    pub repair_interval_ms: u64,
    /// Pause between garbage-collection passes, milliseconds.
    pub gc_interval_ms: u64,
    /// How long a vault's measured usage is reused for quota checks,
    /// milliseconds.
    pub usage_cache_ms: u64,
    /// Pause between scrubs (every stored copy read and checked; a damaged
    /// one is rewritten from a good copy), milliseconds; 0 turns it off.
    pub scrub_interval_ms: u64,
    /// Read rate of a scrub, bytes per second (it competes with backups
    /// for the disk).
    pub scrub_bytes_per_sec: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            write_quorum: 2,
            repair_interval_ms: 30_000,
            gc_interval_ms: 600_000,
            usage_cache_ms: 5_000,
            scrub_interval_ms: 86_400_000,
            scrub_bytes_per_sec: 64 << 20,
        }
    }
}

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
    /// This node's chunk store.
    pub store: Arc<RocksStore>,
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
    /// Opens `DATA_DIR/chunks` and starts the role for `app`: the store, the
    /// repair loop (acting only while this node leads), the GC loop and the
    /// scrub.
    ///
    /// # Errors
    ///
    /// The chunk store cannot be opened (e.g. another process holds it).
    pub fn start(
        app: &Arc<App>,
        dir: &DataDir,
        settings: StorageSettings,
    ) -> Result<Arc<Storage>, NodeError> {
        let path = dir.chunks();
        // Uploads arrive in batches of several MiB: a larger memtable
        // flushes (and so writes blob files) less often.
        let options = StoreOptions {
            write_buffer_size: STORE_WRITE_BUFFER,
            ..StoreOptions::default()
        };
        let store = RocksStore::open(&path, &options)
            .and_then(|s| s.track_usage().map(|()| s))
            .map_err(|e| NodeError::Config(format!("chunk store {}: {e}", path.display())))?;
        let store = Arc::new(store);
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
        storage.metrics.under_replicated.set(-1);
        tokio::spawn(cluster_role(app.clone(), storage.clone()));
        tokio::spawn(garbage_collector(app.clone(), storage.clone()));
        if storage.settings.scrub_interval_ms > 0 {
            tokio::spawn(scrubber(app.clone(), storage.clone()));
        }
        Ok(storage)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Placement as the replicated state on this node describes it.
    pub fn placement(app: &App) -> Placement {
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
            p
        })
    }

    /// The leader's last repair view; `None` on other nodes or before the
    /// first pass.
    pub fn view(&self) -> Option<ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_view(&self, view: Option<ClusterView>) {
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
    /// # Errors
    ///
    /// None today; the `Result` leaves room for refusing when too few nodes
    /// answer.
    pub async fn vault_usage(&self, app: &App, vault: VaultId) -> Result<u64, ApiError> {
        let ttl = Duration::from_millis(self.settings.usage_cache_ms);
        if let Some((at, bytes)) = self.cache().get(&vault) {
            if at.elapsed() < ttl {
                return Ok(*bytes);
            }
        }
        let placement = Self::placement(app);
        let mut total: u64 = 0;
        let mut asks = Vec::new();
        for node in placement.holders() {
            if node == self.me {
                total += self.store.usage(&vault).map(|u| u.bytes).unwrap_or(0);
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
                let answer: Result<cairn_chunkstore::Usage, _> = crate::network::post_bincode(
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
        Ok(one_copy)
    }

    /// A cheap, synchronous usage figure for listings (`VaultInfo::used_bytes`):
    /// the last measured [`Storage::vault_usage`] if there is one, else an
    /// extrapolation from this node's own share: a node holds about `R / n`
    /// of the copies, so one copy is about `local × n / R` (exact when
    /// every node holds every chunk, `R = n`).
    pub fn used_bytes_hint(&self, app: &App, vault: VaultId) -> u64 {
        if let Some((_, bytes)) = self.cache().get(&vault) {
            return *bytes;
        }
        let local = self.store.usage(&vault).map(|u| u.bytes).unwrap_or(0);
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
        app: &App,
        vault: VaultId,
        chunk: cairn_proto::ChunkId,
    ) -> Result<bool, ApiError> {
        let placement = Self::placement(app);
        let peers = self.peers.clone();
        let me = self.me;
        let key = ChunkKey::new(vault, chunk);
        let missing = tokio::task::spawn_blocking(move || {
            cairn_chunkstore::replica::missing(&*peers, &placement, Some(me), &[key])
        })
        .await
        .map_err(|e| ApiError::Internal(format!("storage task: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(missing.first() == Some(&false))
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

/// Feeds repair progress into the metrics, and allows deletions only while
/// this node leads under the pass's placement.
struct Progress {
    metrics: StorageMetrics,
    app: Arc<App>,
    placement: Placement,
}

impl RepairObserver for Progress {
    fn may_delete(&self) -> bool {
        is_leader(&self.app) && same_layout(&Storage::placement(&self.app), &self.placement)
    }

    fn backlog(&self, remaining: u64) {
        self.metrics
            .repair_backlog
            .set(i64::try_from(remaining).unwrap_or(i64::MAX));
    }

    fn copied(&self, chunks: u64, bytes: u64) {
        self.metrics.repair_chunks.inc_by(chunks);
        self.metrics.repair_bytes.inc_by(bytes);
    }
}

/// Whether two placements put every chunk they both know in the same
/// place (vaults created or deleted in between do not matter).
fn same_layout(a: &Placement, b: &Placement) -> bool {
    let sorted = |v: &[NodeId]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    sorted(&a.active) == sorted(&b.active)
        && sorted(&a.draining) == sorted(&b.draining)
        && a.replicas
            .iter()
            .all(|(v, r)| b.replicas.get(v).is_none_or(|s| s == r))
}

fn is_leader(app: &App) -> bool {
    app.raft.metrics().borrow().current_leader == Some(app.id())
}

/// The cluster role: while this node leads, one anti-entropy pass per
/// repair interval. Leadership is checked before every pass, so the role
/// moves with it; a pass that overlaps a leadership change is harmless
/// (copies are idempotent, and deletes need every owner to hold a copy).
async fn cluster_role(app: Arc<App>, storage: Arc<Storage>) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        storage.settings.repair_interval_ms.max(10),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !is_leader(&app) {
            storage.set_view(None);
            storage.metrics.under_replicated.set(-1);
            storage.metrics.repair_backlog.set(0);
            storage.metrics.misplaced.reset();
            continue;
        }
        let placement = Storage::placement(&app);
        let peers = storage.peers.clone();
        let progress = Progress {
            metrics: storage.metrics.clone(),
            app: app.clone(),
            placement: placement.clone(),
        };
        let started = Instant::now();
        let pass = tokio::task::spawn_blocking(move || {
            repair::anti_entropy(&*peers, &placement, &progress)
        })
        .await;
        match pass {
            Ok(Ok(report)) => {
                let m = &storage.metrics;
                m.repair_passes.inc();
                m.under_replicated
                    .set(i64::try_from(report.under_replicated).unwrap_or(i64::MAX));
                m.misplaced.reset();
                for (node, n) in &report.misplaced {
                    m.misplaced
                        .with_label_values(&[&node.to_string()])
                        .set(i64::try_from(*n).unwrap_or(i64::MAX));
                }
                if report.copied > 0 || report.deleted > 0 || report.failed > 0 {
                    tracing::info!(
                        copied = report.copied,
                        bytes = report.bytes_copied,
                        deleted = report.deleted,
                        failed = report.failed,
                        under_replicated = report.under_replicated,
                        dirty_buckets = report.dirty_buckets,
                        unreachable = ?report.unreachable,
                        took_ms = started.elapsed().as_millis() as u64,
                        "repair pass"
                    );
                }
                if is_leader(&app) {
                    storage.set_view(Some(ClusterView {
                        report,
                        at: Some(Instant::now()),
                    }));
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "repair pass failed"),
            Err(e) => tracing::error!(error = %e, "repair pass panicked"),
        }
    }
}

/// Keys deleted per batch by the garbage collector.
const GC_BATCH: usize = 1024;

/// Deletes the chunks of vaults the state no longer has. A vault must be
/// missing from the state in two passes in a row (each after a
/// linearizable read point) before its chunks go; see `docs/FORMATS.md`
/// for why this cannot delete a live vault's chunks.
async fn garbage_collector(app: Arc<App>, storage: Arc<Storage>) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        storage.settings.gc_interval_ms.max(10),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut suspects: HashSet<VaultId> = HashSet::new();
    loop {
        tick.tick().await;
        if app.read_barrier().await.is_err() {
            continue;
        }
        let live: HashSet<VaultId> = app.state.read(|s| s.vaults().keys().copied().collect());
        let here = match storage.store.usage_by_vault() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "gc: reading usage");
                continue;
            }
        };
        let gone: HashSet<VaultId> = here
            .into_iter()
            .map(|(v, _)| v)
            .filter(|v| !live.contains(v))
            .collect();
        let doomed: Vec<VaultId> = gone.intersection(&suspects).copied().collect();
        suspects = gone;
        if doomed.is_empty() {
            continue;
        }
        let store = storage.store.clone();
        let metrics = storage.metrics.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut deleted = 0u64;
            for vault in doomed {
                let mut keys = Vec::new();
                store.for_each_meta(vault, &mut |chunk, _| {
                    keys.push(ChunkKey::new(vault, chunk));
                    Ok(())
                })?;
                for batch in keys.chunks(GC_BATCH) {
                    store.delete_batch(batch)?;
                    deleted += batch.len() as u64;
                }
            }
            metrics.gc_deleted.inc_by(deleted);
            Ok::<u64, cairn_chunkstore::Error>(deleted)
        })
        .await;
        match done {
            Ok(Ok(n)) => tracing::info!(chunks = n, "gc: deleted chunks of deleted vaults"),
            Ok(Err(e)) => tracing::warn!(error = %e, "gc failed"),
            Err(e) => tracing::error!(error = %e, "gc panicked"),
        }
    }
}

/// Chunks checked per step of a scrub.
const SCRUB_STEP: usize = 64;

/// The scrub: every scrub interval, every copy on this node is read and its
/// checksum checked, at most [`StorageSettings::scrub_bytes_per_sec`]. A
/// damaged copy of a chunk this node owns is rewritten from a good copy
/// elsewhere (a verified read that starts here, so read repair fixes it);
/// a damaged stray copy (one this node does not own) is deleted. Repair
/// passes compare metadata only, so without the scrub a damaged copy would
/// wait for a read to find it.
async fn scrubber(app: Arc<App>, storage: Arc<Storage>) {
    let interval = Duration::from_millis(storage.settings.scrub_interval_ms);
    loop {
        tokio::time::sleep(interval).await;
        let store = storage.store.clone();
        let keys = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            store.for_each_chunk(&mut |k, _| {
                keys.push(k);
                Ok(())
            })?;
            Ok::<_, cairn_chunkstore::Error>(keys)
        })
        .await;
        let keys = match keys {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "scrub: listing chunks");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "scrub panicked");
                continue;
            }
        };
        let (mut damaged, mut fixed) = (0u64, 0u64);
        for step in keys.chunks(SCRUB_STEP) {
            let started = Instant::now();
            let (store, peers, me) = (storage.store.clone(), storage.peers.clone(), storage.me);
            let placement = Storage::placement(&app);
            let step = step.to_vec();
            let count = step.len() as u64;
            let checked = tokio::task::spawn_blocking(move || {
                let mut bytes = 0u64;
                let mut bad = Vec::new();
                for key in step {
                    match store.fetch(&key)? {
                        cairn_chunkstore::peers::Fetched::Found { bytes: b, .. } => {
                            bytes += b.len() as u64
                        }
                        cairn_chunkstore::peers::Fetched::Corrupt => bad.push(key),
                        cairn_chunkstore::peers::Fetched::Absent => {}
                    }
                }
                let (owned, strays): (Vec<ChunkKey>, Vec<ChunkKey>) =
                    bad.iter().partition(|k| placement.owners(k).contains(&me));
                let read = cairn_chunkstore::replica::read(&*peers, &placement, Some(me), &owned)?;
                store.delete_batch(&strays)?;
                Ok::<_, cairn_chunkstore::Error>((bytes, bad.len() as u64, read.repaired))
            })
            .await;
            match checked {
                Ok(Ok((bytes, bad, repaired))) => {
                    damaged += bad;
                    fixed += repaired;
                    storage.metrics.corrupt_copies.inc_by(bad);
                    storage.metrics.read_repairs.inc_by(repaired);
                    storage.metrics.scrubbed_chunks.inc_by(count);
                    let budget = Duration::from_secs_f64(
                        bytes as f64 / storage.settings.scrub_bytes_per_sec.max(1) as f64,
                    );
                    if let Some(rest) = budget.checked_sub(started.elapsed()) {
                        tokio::time::sleep(rest).await;
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "scrub step failed"),
                Err(e) => tracing::error!(error = %e, "scrub step panicked"),
            }
        }
        if damaged > 0 {
            tracing::warn!(damaged, repaired = fixed, "scrub found damaged copies");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn layouts_differ_only_by_nodes_or_replicas_of_known_vaults() {
        let v = |i: u8| VaultId([i; 16]);
        let a = Placement {
            active: vec![1, 2, 3],
            draining: vec![],
            replicas: BTreeMap::from([(v(1), 3), (v(2), 2)]),
        };
        let mut b = a.clone();
        b.active = vec![3, 1, 2];
        b.replicas.insert(v(9), 1);
        b.replicas.remove(&v(2));
        assert!(
            same_layout(&a, &b),
            "order, new and deleted vaults do not matter"
        );
        b.replicas.insert(v(1), 2);
        assert!(!same_layout(&a, &b), "a tier's replicas changed");
        let mut c = a.clone();
        c.active = vec![1, 2];
        c.draining = vec![3];
        assert!(!same_layout(&a, &c), "a drain");
    }
}
