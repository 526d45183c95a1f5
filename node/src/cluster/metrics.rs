//! Prometheus metrics, scraped at `GET /metrics`.
//!
//! Gauges that mirror Raft or the replicated state are refreshed when
//! scraped, from openraft's metrics channel and the state handle, so they can
//! never drift from the values they mirror. Counters and histograms count
//! events as they happen on this node: proposals, HTTP requests (by route
//! template, never by raw path, so the label set stays bounded), snapshot
//! builds and installs (reported by the consensus store through
//! [`SnapshotObserver`]) and snapshot chunks sent and received. Job
//! health (`cairn_jobs{kind,status}`) mirrors the replicated job log; the
//! leader alone exports the overdue-backup gauges (`cairn_backups_overdue_*`,
//! see [`super::overdue`]), computed from the replicated schedules, jobs
//! and snapshots when scraped, so `max()` across nodes is the cluster's.
//!
//! Names follow Prometheus conventions (base units, `_total` counters) and
//! the exposition is checked with `promtool check metrics` in the tests.
//! `docs/OPERATIONS.md` lists the ones worth alerting on.

use std::time::Duration;

use cairn_consensus::{Outcome, SnapshotObserver};
use openraft::ServerState;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::Cluster;

/// Latency buckets for HTTP requests and commits (seconds): 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Duration buckets for snapshot builds and installs (seconds): 1 ms to 60 s.
const SNAPSHOT_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0];

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    proposals: IntCounterVec,
    term: IntGauge,
    leader_id: IntGauge,
    is_leader: IntGauge,
    running: IntGauge,
    last_log_index: OptionalGauge,
    last_applied_index: OptionalGauge,
    snapshot_index: OptionalGauge,
    purged_index: OptionalGauge,
    quorum_ack_age: OptionalGauge,
    replication_matched: IntGaugeVec,
    replication_lag: IntGaugeVec,
    membership_size: IntGauge,
    members: IntGaugeVec,
    records: IntGaugeVec,
    jobs: IntGaugeVec,
    overdue_schedules: OptionalGauge,
    overdue_devices: OptionalGauge,
    storage_nodes: IntGaugeVec,
    roles: IntGaugeVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    data_dir_size: IntGauge,
    data_dir_avail: IntGauge,
    snapshot: SnapshotMetrics,
    storage: StorageMetrics,
    license: LicenseMetrics,
}

/// The license lease's metrics (`cairn_license_*`), set by the node's
/// license worker.
#[derive(Clone)]
pub struct LicenseMetrics {
    /// Seconds until the lease ends on this node's view (0 once it ended;
    /// absent on a dev cluster without a license).
    pub lease_remaining: OptionalGauge,
    /// Seconds until the cluster turns read-only without a renewal: while
    /// the lease is valid, its end of grace counted from the last renewal;
    /// in grace, the grace left; 0 once read-only (absent without a
    /// license).
    pub grace_remaining: OptionalGauge,
    /// 1 while new backups, vault requests and account changes are refused.
    pub read_only: IntGauge,
    /// 1 while the lease has ended and the grace period runs.
    pub in_grace: IntGauge,
    /// Failed grants and renewals (leader).
    pub renewal_failures: IntCounter,
}

impl LicenseMetrics {
    fn new(r: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            lease_remaining: OptionalGauge::new(
                r,
                "cairn_license_lease_remaining_seconds",
                "Seconds until the license lease ends on this node's view (safety margin taken off); 0 once it ended, absent without a license (dev clusters).",
            )?,
            grace_remaining: OptionalGauge::new(
                r,
                "cairn_license_grace_remaining_seconds",
                "Seconds until the cluster turns read-only if no renewal comes: the grace period counted from the last renewal (while the lease is valid too), 0 once read-only; absent without a license (dev clusters).",
            )?,
            read_only: gauge(
                r,
                "cairn_license_read_only",
                "1 while the cluster refuses new backups, vault requests and account changes (license_expired).",
            )?,
            in_grace: gauge(
                r,
                "cairn_license_in_grace",
                "1 while the lease has ended and the grace period runs.",
            )?,
            renewal_failures: counter(
                r,
                "cairn_license_renewal_failures_total",
                "License grants and renewals that failed (authority unreachable or refusing), on the leader.",
            )?,
        })
    }
}

/// A gauge that has no value on some nodes or at some times: one only the
/// Raft leader computes, one only a storage node has (its chunk store's
/// size), or a log position before the first entry. Without
/// a value the series is withdrawn instead of set to a sentinel such as -1,
/// so `max()` or `sum()` across nodes means what it says and `absent()`
/// sees a missing value.
#[derive(Clone)]
pub struct OptionalGauge(GaugeVec);

impl OptionalGauge {
    fn new(r: &Registry, name: &str, help: &str) -> prometheus::Result<Self> {
        register(r, GaugeVec::new(Opts::new(name, help), &[])?).map(Self)
    }

    /// Publishes `value`, or withdraws the series for `None`.
    pub fn set(&self, value: Option<f64>) {
        match value {
            Some(v) => self.0.with_label_values::<&str>(&[]).set(v),
            None => self.0.reset(),
        }
    }
}

/// RocksDB health per database (`store` label: `raft` for the log and
/// state machine, `chunks` for the chunk store — two values, so the label
/// stays bounded): what stalls writes before it shows up as latency.
#[derive(Clone)]
pub struct RocksMetrics {
    pending_compaction: IntGaugeVec,
    write_stopped: IntGaugeVec,
    delayed_write_rate: IntGaugeVec,
    sst_bytes: IntGaugeVec,
    blob_bytes: IntGaugeVec,
}

impl RocksMetrics {
    fn new(r: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str| gauge_vec(r, name, help, &["store"]);
        Ok(Self {
            pending_compaction: vec(
                "cairn_rocksdb_pending_compaction_bytes",
                "RocksDB's estimate of the bytes compaction must rewrite; a growing value ends in write stalls.",
            )?,
            write_stopped: vec(
                "cairn_rocksdb_write_stopped",
                "1 while RocksDB stops writes (too many memtables or level-0 files, or pending compaction over its hard limit).",
            )?,
            delayed_write_rate: vec(
                "cairn_rocksdb_delayed_write_rate_bytes_per_second",
                "The rate RocksDB slows writes to while it delays them; 0 when writes are not delayed.",
            )?,
            sst_bytes: vec(
                "cairn_rocksdb_sst_files_bytes",
                "Bytes of the database's SST files.",
            )?,
            blob_bytes: vec(
                "cairn_rocksdb_blob_files_bytes",
                "Bytes of the database's blob files (chunk bodies live there).",
            )?,
        })
    }

    /// Reads the properties of the database `store` through `property`
    /// (RocksDB's integer properties, summed over column families). A
    /// property RocksDB does not report leaves its series out.
    pub fn observe(&self, store: &str, property: impl Fn(&str) -> Option<u64>) {
        for (gauge, name) in [
            (
                &self.pending_compaction,
                "rocksdb.estimate-pending-compaction-bytes",
            ),
            (&self.write_stopped, "rocksdb.is-write-stopped"),
            (
                &self.delayed_write_rate,
                "rocksdb.actual-delayed-write-rate",
            ),
            (&self.sst_bytes, "rocksdb.total-sst-files-size"),
            (&self.blob_bytes, "rocksdb.total-blob-file-size"),
        ] {
            match property(name) {
                Some(v) => gauge.with_label_values(&[store]).set(as_i64(v)),
                None => {
                    let _ = gauge.remove_label_values(&[store]);
                }
            }
        }
    }
}

/// The storage role's metrics (`cairn_storage_*`), shared with the role's
/// handlers and background tasks.
#[derive(Clone)]
pub struct StorageMetrics {
    /// Chunks stored on this node (refreshed when scraped); absent on a
    /// node without a chunk store (no storage role).
    pub chunks: OptionalGauge,
    /// Bytes of sealed chunks stored on this node (refreshed when
    /// scraped); absent without a chunk store.
    pub bytes: OptionalGauge,
    /// On the leader only: chunks short of copies after the last repair
    /// pass.
    pub under_replicated: OptionalGauge,
    /// On the leader only: labelled tiers too few live storage nodes carry
    /// the labels of (backups to them fail).
    pub unsatisfiable_tiers: OptionalGauge,
    /// Copies the running repair pass still has to make.
    pub repair_backlog: IntGauge,
    /// Chunks copied by repair and rebalancing.
    pub repair_chunks: IntCounter,
    /// Bytes copied by repair and rebalancing (`rate()` is repair bytes/s).
    pub repair_bytes: IntCounter,
    /// Repair passes completed (leader).
    pub repair_passes: IntCounter,
    /// On the leader: copies each node holds without owning them.
    pub misplaced: IntGaugeVec,
    /// Chunks received in device uploads (this node coordinating).
    pub put_chunks: IntCounter,
    /// Bytes received in device uploads.
    pub put_bytes: IntCounter,
    /// Time to store one upload batch with W copies.
    pub put_duration: Histogram,
    /// Chunks served to devices.
    pub get_chunks: IntCounter,
    /// Bytes served to devices.
    pub get_bytes: IntCounter,
    /// Time to read one step of a get (up to 16 chunks).
    pub get_duration: Histogram,
    /// Uploaded chunks that were already stored.
    pub dedup_hits: IntCounter,
    /// Copies rewritten by read repair.
    pub read_repairs: IntCounter,
    /// Damaged copies detected (checksum mismatch on read).
    pub corrupt_copies: IntCounter,
    /// Chunks of deleted vaults removed by garbage collection.
    pub gc_deleted: IntCounter,
    /// Copies read and checked by the scrub.
    pub scrubbed_chunks: IntCounter,
    /// RocksDB health of the chunk store (refreshed when scraped).
    pub rocks: RocksMetrics,
}

impl StorageMetrics {
    fn new(r: &Registry, rocks: RocksMetrics) -> prometheus::Result<Self> {
        Ok(Self {
            rocks,
            chunks: OptionalGauge::new(
                r,
                "cairn_storage_chunks",
                "Chunks stored on this node (storage nodes only).",
            )?,
            bytes: OptionalGauge::new(
                r,
                "cairn_storage_bytes",
                "Bytes of sealed chunks stored on this node (storage nodes only).",
            )?,
            under_replicated: OptionalGauge::new(
                r,
                "cairn_storage_under_replicated_chunks",
                "Exported by the leader only: chunks with fewer copies on their owners than their tier asks for, after the last repair pass.",
            )?,
            unsatisfiable_tiers: OptionalGauge::new(
                r,
                "cairn_storage_unsatisfiable_tiers",
                "Exported by the leader only: tiers whose storage labels fewer live storage nodes carry than the tier keeps copies, after the last repair pass.",
            )?,
            repair_backlog: gauge(
                r,
                "cairn_storage_repair_backlog_chunks",
                "Copies the running repair pass still has to make.",
            )?,
            repair_chunks: counter(
                r,
                "cairn_storage_repair_chunks_total",
                "Chunks copied by repair and rebalancing.",
            )?,
            repair_bytes: counter(
                r,
                "cairn_storage_repair_bytes_total",
                "Bytes copied by repair and rebalancing.",
            )?,
            repair_passes: counter(
                r,
                "cairn_storage_repair_passes_total",
                "Repair passes completed by this node as leader.",
            )?,
            misplaced: gauge_vec(
                r,
                "cairn_storage_misplaced_chunks",
                "On the leader: copies a node holds without owning them (to move away).",
                &["node"],
            )?,
            put_chunks: counter(
                r,
                "cairn_storage_put_chunks_total",
                "Chunks received in device uploads coordinated by this node.",
            )?,
            put_bytes: counter(
                r,
                "cairn_storage_put_bytes_total",
                "Bytes received in device uploads coordinated by this node.",
            )?,
            put_duration: histogram(
                r,
                "cairn_storage_put_duration_seconds",
                "Time to store one upload batch with W durable copies.",
                LATENCY_BUCKETS,
            )?,
            get_chunks: counter(
                r,
                "cairn_storage_get_chunks_total",
                "Chunks served to devices by this node.",
            )?,
            get_bytes: counter(
                r,
                "cairn_storage_get_bytes_total",
                "Bytes served to devices by this node.",
            )?,
            get_duration: histogram(
                r,
                "cairn_storage_get_duration_seconds",
                "Time to read one step (up to 16 chunks) of a device get.",
                LATENCY_BUCKETS,
            )?,
            dedup_hits: counter(
                r,
                "cairn_storage_dedup_hits_total",
                "Uploaded chunks that were already stored.",
            )?,
            read_repairs: counter(
                r,
                "cairn_storage_read_repairs_total",
                "Copies rewritten on owners found lacking or damaged by a read.",
            )?,
            corrupt_copies: counter(
                r,
                "cairn_storage_corrupt_copies_total",
                "Damaged copies detected by checksum on read.",
            )?,
            gc_deleted: counter(
                r,
                "cairn_storage_gc_deleted_chunks_total",
                "Chunks of deleted vaults removed by garbage collection.",
            )?,
            scrubbed_chunks: counter(
                r,
                "cairn_storage_scrubbed_chunks_total",
                "Copies read and checked by the scrub.",
            )?,
        })
    }
}

/// The snapshot metrics, shared with the consensus store (as its
/// [`SnapshotObserver`]) and the Raft network (chunks sent).
#[derive(Clone)]
pub struct SnapshotMetrics {
    build: Histogram,
    serve: Histogram,
    install: Histogram,
    size: IntGauge,
    /// Install-snapshot requests (chunks) this node sent as leader.
    pub chunks_sent: IntCounter,
    /// Install-snapshot requests (chunks) this node received.
    pub chunks_received: IntCounter,
}

impl SnapshotObserver for SnapshotMetrics {
    fn snapshot_built(&self, took: Duration) {
        self.build.observe(took.as_secs_f64());
    }

    fn snapshot_served(&self, bytes: usize, took: Duration) {
        self.serve.observe(took.as_secs_f64());
        self.size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn snapshot_installed(&self, bytes: usize, took: Duration) {
        self.install.observe(took.as_secs_f64());
        self.size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> prometheus::Result<T> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(registry, IntGauge::new(name, help)?)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::new(name, help)?)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, Histogram::with_opts(opts)?)
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Registers every metric.
    ///
    /// # Errors
    ///
    /// Only on a programming error (duplicate or invalid metric names).
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let snapshot = SnapshotMetrics {
            build: histogram(
                &r,
                "cairn_raft_snapshot_build_duration_seconds",
                "Time to build a state-machine snapshot (a synced write: the state is encoded only when served); _count is the number built.",
                SNAPSHOT_BUCKETS,
            )?,
            serve: histogram(
                &r,
                "cairn_raft_snapshot_serve_duration_seconds",
                "Time to encode the state for a follower that needs a snapshot; _count is the number served.",
                SNAPSHOT_BUCKETS,
            )?,
            install: histogram(
                &r,
                "cairn_raft_snapshot_install_duration_seconds",
                "Time to install a snapshot received from the leader; _count is the number installed.",
                SNAPSHOT_BUCKETS,
            )?,
            size: gauge(
                &r,
                "cairn_raft_snapshot_size_bytes",
                "Size of the last snapshot served or installed on this node.",
            )?,
            chunks_sent: counter(
                &r,
                "cairn_raft_snapshot_chunks_sent_total",
                "Install-snapshot requests (one chunk each) sent to followers.",
            )?,
            chunks_received: counter(
                &r,
                "cairn_raft_snapshot_chunks_received_total",
                "Install-snapshot requests (one chunk each) received from the leader.",
            )?,
        };
        let metrics = Self {
            proposals: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "cairn_proposals_total",
                        "Writes received by this node (proposed here or forwarded to the leader), by outcome.",
                    ),
                    &["outcome"],
                )?,
            )?,
            term: gauge(&r, "cairn_raft_term", "Current Raft term.")?,
            leader_id: gauge(
                &r,
                "cairn_raft_leader_id",
                "Id of the leader this node knows of; 0 when it knows none.",
            )?,
            is_leader: gauge(&r, "cairn_raft_is_leader", "1 if this node is the Raft leader.")?,
            running: gauge(
                &r,
                "cairn_raft_running",
                "1 while Raft runs; 0 after a fatal (storage) error.",
            )?,
            last_log_index: OptionalGauge::new(
                &r,
                "cairn_raft_last_log_index",
                "Index of the last log entry; absent for an empty log.",
            )?,
            last_applied_index: OptionalGauge::new(
                &r,
                "cairn_raft_last_applied_index",
                "Index of the last applied entry; absent before the first.",
            )?,
            snapshot_index: OptionalGauge::new(
                &r,
                "cairn_raft_snapshot_index",
                "Last log index covered by this node's current snapshot; absent without one.",
            )?,
            purged_index: OptionalGauge::new(
                &r,
                "cairn_raft_purged_index",
                "Last log index purged (compacted) from this node's log; absent before the first purge.",
            )?,
            quorum_ack_age: OptionalGauge::new(
                &r,
                "cairn_raft_leader_quorum_ack_age_seconds",
                "Exported by the leader only: time since a quorum last acknowledged it.",
            )?,
            replication_matched: gauge_vec(
                &r,
                "cairn_raft_replication_matched_index",
                "On the leader: highest log index known replicated to each member (absent before the first).",
                &["follower"],
            )?,
            replication_lag: gauge_vec(
                &r,
                "cairn_raft_replication_lag_entries",
                "On the leader: log entries each member is behind the leader's last log index.",
                &["follower"],
            )?,
            membership_size: gauge(
                &r,
                "cairn_raft_membership_size",
                "Members of the Raft cluster (voters and learners).",
            )?,
            members: gauge_vec(&r, "cairn_raft_members", "Cluster members by kind.", &["kind"])?,
            records: gauge_vec(
                &r,
                "cairn_state_records",
                "Records in the replicated state.",
                &["kind"],
            )?,
            jobs: gauge_vec(
                &r,
                "cairn_jobs",
                "Jobs in the replicated job log by kind and status (running and revived for unfinished ones; the log keeps each account's newest finished jobs).",
                &["kind", "status"],
            )?,
            overdue_schedules: OptionalGauge::new(
                &r,
                "cairn_backups_overdue_schedules",
                "Exported by the leader only: schedules whose newest successful backup is older than the schedule allows (its longest gap, random delay, timeout and a grace).",
            )?,
            overdue_devices: OptionalGauge::new(
                &r,
                "cairn_backups_overdue_devices",
                "Exported by the leader only: devices with at least one overdue schedule.",
            )?,
            storage_nodes: gauge_vec(
                &r,
                "cairn_storage_nodes",
                "Storage nodes by status.",
                &["status"],
            )?,
            roles: gauge_vec(
                &r,
                "cairn_node_role",
                "1 for each role this node runs (auth, storage, cluster, downloads).",
                &["role"],
            )?,
            http_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "cairn_http_requests_total",
                        "HTTP requests served, by route template, method and status code.",
                    ),
                    &["route", "method", "status"],
                )?,
            )?,
            http_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "cairn_http_request_duration_seconds",
                        "Time to answer an HTTP request, by route template and method.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route", "method"],
                )?,
            )?,
            data_dir_size: gauge(
                &r,
                "cairn_data_dir_size_bytes",
                "Size of the file system holding the node's data directory.",
            )?,
            data_dir_avail: gauge(
                &r,
                "cairn_data_dir_avail_bytes",
                "Bytes of that file system available to cairnd (what RocksDB can still write).",
            )?,
            snapshot,
            storage: StorageMetrics::new(&r, RocksMetrics::new(&r)?)?,
            license: LicenseMetrics::new(&r)?,
            registry: r,
        };
        // CPU, memory, open files and start time of this process
        // (`process_*`, the names every Prometheus client library uses).
        metrics.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(metrics)
    }

    /// Refreshes what this node reads from its own disk: the data
    /// directory's file system and the Raft database's RocksDB health.
    fn observe_node(&self, app: &Cluster) {
        match rustix::fs::statvfs(&app.data_dir) {
            Ok(fs) => {
                let bytes = |blocks: u64| as_i64(blocks.saturating_mul(fs.f_frsize));
                self.data_dir_size.set(bytes(fs.f_blocks));
                self.data_dir_avail.set(bytes(fs.f_bavail));
            }
            Err(e) => tracing::warn!(error = %e, "statvfs of the data directory"),
        }
        self.storage
            .rocks
            .observe("raft", |name| app.raft_db.total(name));
    }

    /// The snapshot metrics, to hand to the store and the network.
    pub fn snapshot(&self) -> &SnapshotMetrics {
        &self.snapshot
    }

    /// Exports the roles this node runs (`cairn_node_role{role}` = 1).
    pub fn set_roles(&self, roles: &std::collections::BTreeSet<cairn_consensus::event::Role>) {
        for role in roles {
            self.roles.with_label_values(&[role.name()]).set(1);
        }
    }

    /// The storage role's metrics.
    pub fn storage(&self) -> &StorageMetrics {
        &self.storage
    }

    /// The license lease's metrics.
    pub fn license(&self) -> &LicenseMetrics {
        &self.license
    }

    /// Counts a proposal's outcome.
    pub fn count_outcome(&self, outcome: &Outcome) {
        let label = match outcome {
            Outcome::Applied => "applied",
            Outcome::Rejected(_) => "rejected",
            Outcome::NoOp => "noop",
        };
        self.proposals.with_label_values(&[label]).inc();
    }

    /// Records one answered HTTP request. `route` must come from a fixed
    /// set (a route template or `unmatched`), never from the request: the
    /// label sets, and so `/metrics`, stay bounded whatever clients send.
    /// `method` is the request's method as sent; only the standard ones
    /// become labels of their own ([`method_label`]).
    pub fn observe_http(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[route, method, status_label(status)])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }

    /// Refreshes the mirrored gauges and renders the text exposition format
    /// (the storage role refreshes its own gauges before, see
    /// `Storage::refresh_metrics`).
    pub fn render(&self, app: &Cluster) -> String {
        let m = app.raft.metrics().borrow().clone();
        self.term.set(as_i64(m.current_term));
        self.leader_id.set(m.current_leader.map_or(0, as_i64));
        self.is_leader
            .set(i64::from(m.state == ServerState::Leader));
        self.running.set(i64::from(m.running_state.is_ok()));
        let index = |i: u64| i as f64;
        self.last_log_index.set(m.last_log_index.map(index));
        self.last_applied_index
            .set(m.last_applied.map(|l| index(l.index)));
        self.snapshot_index.set(m.snapshot.map(|l| index(l.index)));
        self.purged_index.set(m.purged.map(|l| index(l.index)));
        self.quorum_ack_age.set(
            m.millis_since_quorum_ack
                .map(|ms| Duration::from_millis(ms).as_secs_f64()),
        );
        self.observe_node(app);
        // Only the leader tracks replication; members that left must not
        // linger as stale series, so the vectors are rebuilt every scrape.
        self.replication_matched.reset();
        self.replication_lag.reset();
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (id, matched) in replication {
                let label = id.to_string();
                let matched = matched.map(|l| l.index);
                if let Some(matched) = matched {
                    self.replication_matched
                        .with_label_values(&[&label])
                        .set(as_i64(matched));
                }
                let lag = last.saturating_sub(matched.unwrap_or(0));
                self.replication_lag
                    .with_label_values(&[&label])
                    .set(as_i64(lag));
            }
        }
        let membership = m.membership_config.membership();
        self.membership_size
            .set(as_i64(membership.nodes().count() as u64));
        self.members
            .with_label_values(&["voter"])
            .set(as_i64(membership.voter_ids().count() as u64));
        self.members
            .with_label_values(&["learner"])
            .set(as_i64(membership.learner_ids().count() as u64));
        app.state.read(|s| {
            let count = |n: usize| as_i64(n as u64);
            self.records
                .with_label_values(&["account"])
                .set(count(s.accounts().len()));
            self.records
                .with_label_values(&["device"])
                .set(count(s.devices().len()));
            self.records
                .with_label_values(&["vault"])
                .set(count(s.vaults().len()));
            self.records
                .with_label_values(&["tier"])
                .set(count(s.tiers().len()));
            self.records
                .with_label_values(&["snapshot"])
                .set(count(s.snapshots().len()));
            self.records
                .with_label_values(&["job"])
                .set(count(s.jobs().len()));
            // Rebuilt every scrape: a (kind, status) with no job left
            // must not linger as a stale series.
            self.jobs.reset();
            for ((kind, status), n) in super::jobs::job_counts(s.jobs().values()) {
                self.jobs.with_label_values(&[kind, status]).set(as_i64(n));
            }
            let overdue = (m.state == ServerState::Leader).then(|| {
                let (schedules, newest) = super::overdue::facts_of(s);
                super::overdue::overdue(&schedules, &newest, super::now())
            });
            self.overdue_schedules
                .set(overdue.as_ref().map(|o| o.len() as f64));
            self.overdue_devices
                .set(overdue.as_ref().map(|o| super::overdue::devices(o) as f64));
            for status in ["Active", "Draining", "Removed"] {
                let n = s
                    .storage_nodes()
                    .values()
                    .filter(|n| format!("{:?}", n.status) == status)
                    .count();
                self.storage_nodes
                    .with_label_values(&[status])
                    .set(count(n));
            }
        });
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
/// The `method` label of an HTTP request: the standard methods by name,
/// anything else (made-up methods of any length) as `other`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The `status` label: one of the 500 three-digit codes (hyper only sends
/// those), anything else as `other`.
fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600).map(|c| c.to_string()).collect());
    match status
        .checked_sub(100)
        .and_then(|i| labels.get(usize::from(i)))
    {
        Some(label) => label,
        None => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_labels_come_from_fixed_sets() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("OPTIONS"), "OPTIONS");
        assert_eq!(method_label("TRACE"), "other");
        assert_eq!(method_label("get"), "other", "methods are case-sensitive");
        let made_up = "X".repeat(8192);
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(599), "599");
        assert_eq!(status_label(99), "other");
        assert_eq!(status_label(600), "other");
    }
}
