//! Leader-side abandonment of silent jobs: a job whose device stopped
//! reporting (a SIGKILLed client, a machine that lost power) would stay
//! `running` and hold off prune on its vault. The cluster role on the Raft
//! leader proposes [`Event::JobsAbandoned`] for every running job silent
//! for the configured silence; the state machine checks the silence again
//! against its own `last_seen`, so a heartbeat racing the proposal wins.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use cairn_consensus::apply::{MAX_JOBS_ABANDONED_PER_EVENT, MIN_ABANDON_SILENCE_MS};
use cairn_consensus::{Event, JobId, Outcome, UnixMillis};

use super::{now, Cluster};
use crate::worker::{Schedule, Work, Workers};

/// The running jobs (id, last report) silent for at least `silence_ms` at
/// `now`, oldest report first, in batches one event may carry.
pub fn silent_jobs(
    running: &[(JobId, UnixMillis)],
    now: UnixMillis,
    silence_ms: u64,
) -> Vec<Vec<JobId>> {
    let mut silent: Vec<_> = running
        .iter()
        .filter(|(_, seen)| now.0.saturating_sub(seen.0) >= silence_ms)
        .copied()
        .collect();
    silent.sort_by_key(|(id, seen)| (*seen, *id));
    silent
        .chunks(MAX_JOBS_ABANDONED_PER_EVENT)
        .map(|c| c.iter().map(|(id, _)| *id).collect())
        .collect()
}

/// How often the leader looks for silent jobs: a quarter of the silence,
/// between 1 s and a minute.
pub fn check_every(silence_ms: u64) -> Duration {
    Duration::from_millis(silence_ms / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Starts the `abandon` worker (it acts only while this node leads); a
/// silence below the state machine's minimum is raised to it.
pub fn start(workers: &mut Workers, app: &Arc<Cluster>, silence_ms: u64) {
    let silence_ms = silence_ms.max(MIN_ABANDON_SILENCE_MS);
    let every = check_every(silence_ms);
    workers.spawn(
        "abandon",
        Schedule {
            first: every,
            every,
        },
        Abandon {
            app: app.clone(),
            silence_ms,
        },
    );
}

/// The worker: one look per period.
struct Abandon {
    app: Arc<Cluster>,
    silence_ms: u64,
}

impl Work for Abandon {
    type Error = Infallible;

    async fn tick(&mut self) -> Result<(), Infallible> {
        let app = &self.app;
        if app.raft.metrics().borrow().current_leader != Some(app.id()) {
            return Ok(());
        }
        let running: Vec<(JobId, UnixMillis)> = app
            .state
            .read(|s| s.running_jobs().map(|j| (j.id, j.last_seen)).collect());
        let at = now();
        for jobs in silent_jobs(&running, at, self.silence_ms) {
            let n = jobs.len();
            let event = Event::JobsAbandoned {
                jobs,
                silence_ms: self.silence_ms,
                at,
            };
            match app.propose(event).await {
                Ok(Outcome::Rejected(r)) => {
                    tracing::warn!(rejection = %r, "abandoning silent jobs was refused");
                }
                Ok(_) => tracing::info!(jobs = n, "silent jobs abandoned"),
                Err(e) => tracing::warn!(error = %e, "could not abandon silent jobs"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jobs_silent_long_enough_are_abandoned_oldest_first() {
        let (a, b, c) = (JobId::random(), JobId::random(), JobId::random());
        let running = [
            (a, UnixMillis(9_000)),
            (b, UnixMillis(1_000)),
            (c, UnixMillis(5_000)),
        ];
        assert_eq!(
            silent_jobs(&running, UnixMillis(11_000), 6_000),
            vec![vec![b, c]]
        );
        assert!(silent_jobs(&running, UnixMillis(6_999), 6_000).is_empty());
        assert!(silent_jobs(&[], UnixMillis(1), 0).is_empty());
    }

    #[test]
    fn many_silent_jobs_go_in_bounded_batches() {
        let running: Vec<_> = (0..MAX_JOBS_ABANDONED_PER_EVENT + 3)
            .map(|i| (JobId::random(), UnixMillis(i as u64)))
            .collect();
        let batches = silent_jobs(&running, UnixMillis(1 << 40), 10);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), MAX_JOBS_ABANDONED_PER_EVENT);
        assert_eq!(batches[1].len(), 3);
    }

    #[test]
    fn the_leader_looks_a_few_times_per_silence() {
        assert_eq!(check_every(10_000), Duration::from_millis(2_500));
        assert_eq!(check_every(100), Duration::from_secs(1));
        assert_eq!(check_every(1 << 30), Duration::from_secs(60));
    }
}
