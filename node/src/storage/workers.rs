//! The storage role's background work, each a [`Work`] run by the
//! node's worker shell ([`crate::worker`]), started and stopped by the
//! server's lifecycle:
//!
//! - `repair` ([`Repair`]): on the leader only, one anti-entropy pass per
//!   repair interval (bucket digests → listings of dirty buckets →
//!   node-to-node pushes → stray deletes);
//! - `gc` ([`Gc`]): on every node, the chunks of vaults the state no
//!   longer has are deleted ([`policy::doomed_vaults`]);
//! - `scrub` ([`Scrub`]): on every node, every copy re-read and checked;
//!   damaged ones rewritten or dropped ([`policy::scrub_split`]); on a
//!   cloud-backed node, then chunk objects without metadata older than
//!   [`ORPHAN_AGE`] deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::repair::{self, RepairObserver};
use cairn_chunkstore::{ChunkKey, RocksStore, Store, ORPHAN_AGE};
use cairn_proto::VaultId;

use super::{policy, ClusterView, Storage};
use crate::cluster::metrics::StorageMetrics;
use crate::cluster::Cluster;
use crate::worker::{Schedule, Work, Workers};

/// Why a unit of storage work failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    /// The chunk store or a peer failed.
    #[error(transparent)]
    Store(#[from] cairn_chunkstore::Error),
    /// The blocking task running the unit panicked.
    #[error("the blocking task panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
}

/// Starts the storage role's workers in `workers`: repair with the
/// cluster role, GC and the scrub (unless its interval is 0) on a node
/// that has a chunk store.
pub fn start(workers: &mut Workers, app: &Arc<Cluster>, storage: &Arc<Storage>) {
    let settings = &storage.settings;
    let every = |ms: u64| Duration::from_millis(ms.max(10));
    if app.identity.has(cairn_consensus::event::Role::Cluster) {
        workers.spawn(
            "repair",
            Schedule {
                first: Duration::ZERO,
                every: every(settings.repair_interval_ms),
            },
            Repair {
                app: app.clone(),
                storage: storage.clone(),
            },
        );
    }
    let Some(store) = storage.store.clone() else {
        return;
    };
    workers.spawn(
        "gc",
        Schedule {
            first: Duration::ZERO,
            every: every(settings.gc_interval_ms),
        },
        Gc {
            app: app.clone(),
            storage: storage.clone(),
            store: store.clone(),
            suspects: HashSet::new(),
        },
    );
    if settings.scrub_interval_ms > 0 {
        let interval = Duration::from_millis(settings.scrub_interval_ms);
        workers.spawn(
            "scrub",
            Schedule {
                first: interval,
                every: interval,
            },
            Scrub {
                app: app.clone(),
                storage: storage.clone(),
                store,
            },
        );
    }
}

/// Feeds repair progress into the metrics, and allows deletions only while
/// this node leads under the pass's placement.
struct Progress {
    metrics: StorageMetrics,
    app: Arc<Cluster>,
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
        && a.replicas
            .keys()
            .filter(|v| b.replicas.contains_key(v))
            .all(|v| a.pools.get(v).map(|p| sorted(p)) == b.pools.get(v).map(|p| sorted(p)))
}

fn is_leader(app: &Cluster) -> bool {
    app.raft.metrics().borrow().current_leader == Some(app.id())
}

/// The cluster role: while this node leads, one anti-entropy pass per
/// repair interval. Leadership is checked before every pass, so the role
/// moves with it; a pass that overlaps a leadership change is harmless
/// (copies are idempotent, and deletes need every owner to hold a copy).
pub struct Repair {
    app: Arc<Cluster>,
    storage: Arc<Storage>,
}

impl Work for Repair {
    type Error = WorkError;

    async fn tick(&mut self) -> Result<(), WorkError> {
        let (app, storage) = (&self.app, &self.storage);
        if !is_leader(app) {
            storage.set_view(None);
            storage.metrics.under_replicated.set(None);
            storage.metrics.unsatisfiable_tiers.set(None);
            storage.metrics.repair_backlog.set(0);
            storage.metrics.misplaced.reset();
            return Ok(());
        }
        let placement = Storage::placement(app);
        let peers = storage.peers.clone();
        let progress = Progress {
            metrics: storage.metrics.clone(),
            app: app.clone(),
            placement: placement.clone(),
        };
        let started = Instant::now();
        let report = tokio::task::spawn_blocking(move || {
            repair::anti_entropy(&*peers, &placement, &progress)
        })
        .await??;
        {
            {
                let m = &storage.metrics;
                m.repair_passes.inc();
                m.under_replicated.set(Some(report.under_replicated as f64));
                let unsatisfiable = app
                    .state
                    .read(|s| crate::roles::unsatisfiable_tiers(s, &report.unreachable).len());
                m.unsatisfiable_tiers.set(Some(unsatisfiable as f64));
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
                if is_leader(app) {
                    storage.set_view(Some(ClusterView {
                        report,
                        at: Some(Instant::now()),
                    }));
                }
            }
        }
        Ok(())
    }
}

/// Keys deleted per batch by the garbage collector.
const GC_BATCH: usize = 1024;

/// Deletes the chunks of vaults the state no longer has. A vault must be
/// missing from the state in two passes in a row (each after a
/// linearizable read point) before its chunks go
/// ([`policy::doomed_vaults`]); see `docs/FORMATS.md` for why this cannot
/// delete a live vault's chunks.
pub struct Gc {
    app: Arc<Cluster>,
    storage: Arc<Storage>,
    store: Arc<RocksStore>,
    suspects: HashSet<VaultId>,
}

impl Work for Gc {
    type Error = WorkError;

    async fn tick(&mut self) -> Result<(), WorkError> {
        let (app, storage) = (&self.app, &self.storage);
        if app.read_barrier().await.is_err() {
            // No leader now: nothing is decided, the next pass reads again.
            return Ok(());
        }
        let live: HashSet<VaultId> = app.state.read(|s| s.vaults().keys().copied().collect());
        let here = self.store.usage_by_vault()?;
        let (doomed, suspects) =
            policy::doomed_vaults(here.into_iter().map(|(v, _)| v), &live, &self.suspects);
        self.suspects = suspects;
        if doomed.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let metrics = storage.metrics.clone();
        let deleted = tokio::task::spawn_blocking(move || {
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
        .await??;
        tracing::info!(chunks = deleted, "gc: deleted chunks of deleted vaults");
        Ok(())
    }
}

/// Chunks checked per step of a scrub.
const SCRUB_STEP: usize = 64;

/// The scrub: every scrub interval, every copy on this node is read and its
/// checksum checked, at most [`StorageSettings::scrub_bytes_per_sec`](crate::config::StorageSettings::scrub_bytes_per_sec). A
/// damaged copy of a chunk this node owns is rewritten from a good copy
/// elsewhere (a verified read that starts here, so read repair fixes it);
/// a damaged stray copy (one this node does not own) is deleted. Repair
/// passes compare metadata only, so without the scrub a damaged copy would
/// wait for a read to find it. Each pass ends with the orphan sweep of a
/// cloud-backed store (objects a crash left without metadata).
pub struct Scrub {
    app: Arc<Cluster>,
    storage: Arc<Storage>,
    store: Arc<RocksStore>,
}

impl Work for Scrub {
    type Error = WorkError;

    async fn tick(&mut self) -> Result<(), WorkError> {
        let (app, storage) = (&self.app, &self.storage);
        let store = self.store.clone();
        let keys = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            store.for_each_chunk(&mut |k, _| {
                keys.push(k);
                Ok(())
            })?;
            Ok::<_, cairn_chunkstore::Error>(keys)
        })
        .await??;
        let (mut damaged, mut fixed) = (0u64, 0u64);
        for step in keys.chunks(SCRUB_STEP) {
            let started = Instant::now();
            let (store, peers, me) = (self.store.clone(), storage.peers.clone(), storage.me);
            let placement = Storage::placement(app);
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
                let (owned, strays) = policy::scrub_split(&bad, &placement, me);
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
        // Chunk objects a crash left without metadata (a cloud-backed
        // store only; see `RocksStore::sweep_orphans`).
        let store = self.store.clone();
        let cutoff = SystemTime::now()
            .checked_sub(ORPHAN_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        match tokio::task::spawn_blocking(move || store.sweep_orphans(cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(swept)) => tracing::info!(swept, "scrub deleted orphan chunk objects"),
            Ok(Err(e)) => tracing::warn!(error = %e, "orphan sweep failed"),
            Err(e) => tracing::error!(error = %e, "orphan sweep panicked"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn layouts_differ_only_by_nodes_or_replicas_of_known_vaults() {
        let v = |i: u8| VaultId([i; 16]);
        let a = Placement {
            active: vec![1, 2, 3],
            draining: vec![],
            replicas: BTreeMap::from([(v(1), 3), (v(2), 2)]),
            pools: Default::default(),
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
