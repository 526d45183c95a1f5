//! The `license` worker, on every node (through the worker shell,
//! [`crate::worker`]): each tick it refreshes this node's [`Gate`] from
//! the replicated state, its metrics and a log line when the mode changes;
//! on the Raft leader it also runs the lease: acquire, renew (with
//! telemetry) and record grants, renewals and expiries through the log
//! ([`policy::next_action`]). A new leader continues the lease it finds in
//! the log (same fencing token) by renewing it.
//!
//! An unreachable or refusing authority is not a failed unit (the shell
//! would back off for up to a minute): it is counted
//! (`cairn_license_renewal_failures_total`) and logged, and the next tick
//! tries again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_consensus::event::Lease;
use cairn_consensus::{Event, Outcome, Request, RequestId, State, UnixMillis};

use super::client::AuthorityClient;
use super::gate::{Facts, Gate, View};
use super::policy::{self, Action, Granted, Mode, Telemetry};
use crate::cluster::{Cluster, ClusterError};
use crate::storage::Storage;
use crate::worker::{LogThrottle, Work};

/// At most one log line per this while lease requests keep failing.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The license worker of one node.
pub struct LeaseWorker {
    app: Arc<Cluster>,
    storage: Arc<Storage>,
    gate: Arc<Gate>,
    last_mode: Option<&'static str>,
    /// Lease failures repeat at the tick's pace while the authority is
    /// unreachable: one log line a minute.
    failure_log: Mutex<LogThrottle>,
}

impl LeaseWorker {
    /// The worker over this node's cluster, storage role and gate.
    pub fn new(app: Arc<Cluster>, storage: Arc<Storage>, gate: Arc<Gate>) -> Self {
        Self {
            app,
            storage,
            gate,
            last_mode: None,
            failure_log: Mutex::new(LogThrottle::new(FAILURE_LOG_EVERY)),
        }
    }

    /// Whether to log a lease failure now (`Some`: how many were not).
    fn throttled(&self) -> Option<u64> {
        self.failure_log
            .lock()
            .map_or(Some(0), |mut t| t.admit(std::time::Instant::now()))
    }

    /// The authority answered: the next failure is logged at once.
    fn lease_answered(&self) {
        if let Ok(mut t) = self.failure_log.lock() {
            t.reset();
        }
    }

    fn is_leader(&self) -> bool {
        self.app.raft.metrics().borrow().current_leader == Some(self.app.id())
    }

    fn telemetry(&self) -> Telemetry {
        let stored_bytes = self
            .storage
            .view()
            .map(|v| v.report.held.values().map(|u| u.bytes).sum())
            .unwrap_or(0);
        self.app.state.read(|s: &State| Telemetry {
            accounts: s.accounts().len() as u64,
            devices: s.devices().values().filter(|d| d.is_live()).count() as u64,
            vaults: s.vaults().len() as u64,
            stored_bytes,
            reported_at: 0,
        })
    }

    /// Metrics and a log line on a change of mode.
    fn report(&mut self, view: &View) {
        let m = self.app.metrics.license();
        // No value is no series (not -1): a dev cluster has no lease. While
        // the lease is valid the grace gauge says how long until read-only
        // should renewals stop now, so it always has a value with a license.
        let secs = |ms: u64| Some((ms / 1_000) as f64);
        let (lease, grace) = match view.mode {
            Mode::Valid {
                remaining_ms,
                read_only_in_ms,
            } => (secs(remaining_ms), secs(read_only_in_ms)),
            Mode::Grace { remaining_ms } => (Some(0.0), secs(remaining_ms)),
            Mode::ReadOnly(_) => (Some(0.0), Some(0.0)),
            Mode::DevUnlicensed => (None, None),
        };
        m.lease_remaining.set(lease);
        m.grace_remaining.set(grace);
        m.in_grace
            .set(i64::from(matches!(view.mode, Mode::Grace { .. })));
        m.read_only.set(i64::from(!view.mode.writable()));
        let name = view.mode.name();
        if self.last_mode != Some(name) {
            match view.mode.advice() {
                Some(advice) => {
                    tracing::warn!(mode = name, serial = ?view.serial, "license: read-only: {advice}")
                }
                None => {
                    tracing::info!(mode = name, serial = ?view.serial, token = ?view.fencing_token, "license mode")
                }
            }
            self.last_mode = Some(name);
        }
    }

    /// What the lease needs next on `facts`, by this node's clock.
    fn next_action(&self, facts: &Facts) -> Action {
        let Some(license) = &facts.license else {
            return Action::Wait;
        };
        let anchor = self.gate.anchor(facts);
        policy::next_action(
            anchor,
            facts.current_lease().is_some(),
            license.renew_ms,
            self.gate.now_ms(),
        )
    }

    /// One step of the lease on the leader.
    async fn lease_step(&self, facts: &Facts) -> Result<(), ClusterError> {
        let mut facts = facts.clone();
        let mut action = self.next_action(&facts);
        if matches!(action, Action::Acquire | Action::Expire) {
            // A leader back from a pause (or a partition) still believes
            // it leads and may not have applied the renewals a newer
            // leader made meanwhile: ending or replacing the lease on
            // those stale facts would throw a live lease away (the
            // harness's `lease-view` checker caught a resumed leader
            // expiring a lease renewed 2 s before). Catch up with the log
            // first, then decide again.
            self.app.read_barrier().await?;
            if !self.is_leader() {
                return Ok(());
            }
            facts = self.app.state.read(Facts::of);
            action = self.next_action(&facts);
        }
        let Some(license) = facts.license.clone() else {
            return Ok(());
        };
        let lease = facts.current_lease().cloned();
        let authority = AuthorityClient::new(&self.app.http, &license.authority);
        let failures = &self.app.metrics.license().renewal_failures;
        match (action, lease) {
            (Action::Wait, _) => Ok(()),
            (Action::Acquire, _) => {
                let sent = self.gate.now_ms();
                match authority
                    .acquire(&license.serial, &license.cluster_id, self.telemetry())
                    .await
                {
                    Ok(g) => {
                        self.lease_answered();
                        self.gate
                            .anchor_sent(g.fencing_token, g.renewed_at, g.length_ms(), sent);
                        let lease = lease_of(&license.serial, &g);
                        tracing::info!(token = g.fencing_token, serial = %policy::redact(&license.serial), "license lease granted");
                        self.record(Event::LeaseGranted { lease }).await
                    }
                    Err(e) => {
                        failures.inc();
                        if let Some(held) = self.throttled() {
                            tracing::warn!(error = %e, repeats_not_logged = held, "license: acquiring the lease failed");
                        }
                        Ok(())
                    }
                }
            }
            (Action::Renew, Some(lease)) => {
                let sent = self.gate.now_ms();
                let renewed = authority
                    .renew(
                        &license.serial,
                        &license.cluster_id,
                        lease.fencing_token,
                        self.telemetry(),
                    )
                    .await;
                match renewed {
                    Ok(g) => {
                        self.lease_answered();
                        self.gate
                            .anchor_sent(g.fencing_token, g.renewed_at, g.length_ms(), sent);
                        self.record(Event::LeaseRenewed {
                            serial: license.serial.clone(),
                            fencing_token: g.fencing_token,
                            expires_at: UnixMillis(g.expires_at),
                            at: UnixMillis(g.renewed_at),
                        })
                        .await
                    }
                    Err(e) => {
                        failures.inc();
                        if let Some(held) = self.throttled() {
                            tracing::warn!(error = %e, token = lease.fencing_token, repeats_not_logged = held, "license: renewing the lease failed");
                        }
                        if e.lease_gone() {
                            self.expire(&lease).await
                        } else {
                            Ok(())
                        }
                    }
                }
            }
            (Action::Expire, Some(lease)) => {
                tracing::warn!(
                    token = lease.fencing_token,
                    "license: the lease ran out without renewal"
                );
                self.expire(&lease).await
            }
            (Action::Renew | Action::Expire, None) => Ok(()),
        }
    }

    /// Records the end of `lease` through this node's own Raft, never
    /// forwarded: an expiry is a judgement on this leader's facts, and a
    /// node that lost the lead meanwhile must not end the lease its
    /// successor keeps renewing (the successor judges for itself).
    async fn expire(&self, lease: &Lease) -> Result<(), ClusterError> {
        let request = Request {
            request_id: RequestId::random(),
            event: Event::LeaseExpired {
                serial: lease.serial.clone(),
                fencing_token: lease.fencing_token,
                at: crate::cluster::now(),
            },
        };
        match self.app.propose_local(request).await {
            Ok((_, outcome)) => {
                self.app.metrics.count_outcome(&outcome);
                Self::refused(&outcome);
                Ok(())
            }
            Err(ClusterError::Raft(e)) => {
                tracing::info!(error = %e, "license: not recording the lease's end: no longer the leader");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Logs a lease event the state machine refused.
    fn refused(outcome: &Outcome) {
        if let Outcome::Rejected(r) = outcome {
            tracing::warn!(rejection = %r, "license: the log refused a lease event");
        }
    }

    async fn record(&self, event: Event) -> Result<(), ClusterError> {
        Self::refused(&self.app.propose(event).await?);
        Ok(())
    }
}

fn lease_of(serial: &str, g: &Granted) -> Lease {
    Lease {
        serial: serial.to_owned(),
        fencing_token: g.fencing_token,
        granted_at: UnixMillis(g.granted_at),
        expires_at: UnixMillis(g.expires_at),
    }
}

impl Work for LeaseWorker {
    type Error = ClusterError;

    async fn tick(&mut self) -> Result<(), ClusterError> {
        if self.is_leader() {
            let facts = self.app.state.read(Facts::of);
            self.lease_step(&facts).await?;
        }
        // After the step, so the metrics show a grant or renewal at once.
        let view = self.gate.view(&self.app.state.read(Facts::of));
        self.report(&view);
        Ok(())
    }
}
