//! Prometheus metrics, scraped at `GET /metrics`.
//!
//! Gauges that mirror Raft or the replicated state are refreshed when
//! scraped, from openraft's metrics channel and the state handle, so they can
//! never drift from the values they mirror. Counters count events as they
//! happen on this node.

use cairn_consensus::Outcome;
use openraft::ServerState;
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::app::App;

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    proposals: IntCounterVec,
    term: IntGauge,
    is_leader: IntGauge,
    running: IntGauge,
    last_log_index: IntGauge,
    last_applied_index: IntGauge,
    members: IntGaugeVec,
    records: IntGaugeVec,
    storage_nodes: IntGaugeVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Registers every metric.
    ///
    /// # Errors
    ///
    /// Only on a programming error (duplicate or invalid metric names).
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let proposals = IntCounterVec::new(
            Opts::new(
                "cairn_proposals_total",
                "Writes received by this node (proposed here or forwarded to the leader), by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(proposals.clone()))?;
        Ok(Self {
            term: gauge(&registry, "cairn_raft_term", "Current Raft term.")?,
            is_leader: gauge(
                &registry,
                "cairn_raft_is_leader",
                "1 if this node is the Raft leader.",
            )?,
            running: gauge(
                &registry,
                "cairn_raft_running",
                "1 while Raft runs; 0 after a fatal (storage) error.",
            )?,
            last_log_index: gauge(
                &registry,
                "cairn_raft_last_log_index",
                "Index of the last log entry.",
            )?,
            last_applied_index: gauge(
                &registry,
                "cairn_raft_last_applied_index",
                "Index of the last applied entry.",
            )?,
            members: gauge_vec(
                &registry,
                "cairn_raft_members",
                "Cluster members by kind.",
                &["kind"],
            )?,
            records: gauge_vec(
                &registry,
                "cairn_state_records",
                "Records in the replicated state.",
                &["kind"],
            )?,
            storage_nodes: gauge_vec(
                &registry,
                "cairn_storage_nodes",
                "Storage nodes by status.",
                &["status"],
            )?,
            proposals,
            registry,
        })
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

    /// Refreshes the mirrored gauges and renders the text exposition format.
    pub fn render(&self, app: &App) -> String {
        let m = app.raft.metrics().borrow().clone();
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.term.set(as_i64(m.current_term));
        self.is_leader
            .set(i64::from(m.state == ServerState::Leader));
        self.running.set(i64::from(m.running_state.is_ok()));
        self.last_log_index.set(m.last_log_index.map_or(-1, as_i64));
        self.last_applied_index
            .set(m.last_applied.map_or(-1, |l| as_i64(l.index)));
        let membership = m.membership_config.membership();
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
                .with_label_values(&["snapshot"])
                .set(count(s.snapshots().len()));
            self.records
                .with_label_values(&["job"])
                .set(count(s.jobs().len()));
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
