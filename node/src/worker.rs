//! One shell for the node's background loops (repair, garbage collection,
//! scrub, and those to come): a named task that runs one unit of work per
//! period, logs a failed one with its name and backs off (bounded
//! exponential) while failures repeat, and stops at once when its cancel
//! signal fires — between units or in the middle of one. The server's
//! lifecycle starts the workers and, on shutdown, fires the signal and
//! awaits them ([`Workers::stop`]), so no loop outlives the node.
//! (The pattern of Garage's `Worker`.)

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

/// Longest pause a failing worker backs off to (unless its period is
/// longer: backing off never shortens the pause).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One background loop's unit of work.
pub trait Work: Send + 'static {
    /// Why a unit failed (logged with the worker's name).
    type Error: Display + Send;

    /// Runs one unit (a repair pass, a GC pass, a scrub). Dropped at its
    /// next await point when the worker is cancelled.
    fn tick(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// When a worker runs: its first unit after `first`, then one unit every
/// `every` (start to start; a unit that takes longer is followed by the
/// next at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Before the first unit.
    pub first: Duration,
    /// Between the starts of two units while they succeed.
    pub every: Duration,
}

impl Schedule {
    /// The pause before the next unit after `failures` failures in a row:
    /// the period, doubled per failure up to `max(every, MAX_BACKOFF)`.
    pub fn pause(&self, failures: u32) -> Duration {
        let cap = self.every.max(MAX_BACKOFF);
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.every.saturating_mul(factor).min(cap)
    }
}

/// The node's running workers and the signal that stops them.
#[derive(Debug)]
pub struct Workers {
    cancel: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Workers {
    fn default() -> Self {
        Self::new()
    }
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Self {
        Self {
            cancel: watch::channel(false).0,
            running: Vec::new(),
        }
    }

    /// Starts `work` as the worker `name` on `schedule`.
    pub fn spawn<W: Work>(&mut self, name: &'static str, schedule: Schedule, work: W) {
        let cancel = self.cancel.subscribe();
        let handle = tokio::spawn(run(name, schedule, cancel, work));
        self.running.push((name, handle));
    }

    /// The names of the running workers.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|(name, _)| *name).collect()
    }

    /// Fires the cancel signal and waits until every worker has stopped.
    pub async fn stop(self) {
        // Receivers live in the tasks; a task that already ended is fine.
        let _ = self.cancel.send(true);
        for (name, handle) in self.running {
            if let Err(e) = handle.await {
                tracing::error!(worker = name, error = %e, "worker ended abnormally");
            }
        }
    }
}

/// The loop of one worker.
async fn run<W: Work>(
    name: &'static str,
    schedule: Schedule,
    mut cancel: watch::Receiver<bool>,
    mut work: W,
) {
    let mut next = Instant::now() + schedule.first;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            () = sleep_until(next) => {}
            _ = cancel.wait_for(|stop| *stop) => break,
        }
        let started = Instant::now();
        let done = tokio::select! {
            done = work.tick() => done,
            _ = cancel.wait_for(|stop| *stop) => break,
        };
        match done {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(worker = name, failures, error = %e, "worker unit failed");
            }
        }
        next = started + schedule.pause(failures);
    }
    tracing::debug!(worker = name, "worker stopped");
}

/// Rate-limits a log line that would repeat at a loop's pace (a lease
/// worker retrying an unreachable authority twice a second): the first
/// failure is logged, then at most one line per `every`, saying how many
/// were held back; a success lets the next failure through at once.
/// Pure over the times it is given.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    every: Duration,
    last: Option<std::time::Instant>,
    held: u64,
}

impl LogThrottle {
    /// At most one line per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            held: 0,
        }
    }

    /// Whether to log a failure at `now`: `Some(held)` (log it, saying
    /// `held` like it were not logged since the last line), else `None`.
    pub fn admit(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }

    /// A success: the next failure is news again.
    pub fn reset(&mut self) {
        self.last = None;
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Counts its units; fails the first `fail` of them.
    struct Counter {
        runs: Arc<AtomicU32>,
        fail: u32,
    }

    impl Work for Counter {
        type Error = String;

        async fn tick(&mut self) -> Result<(), String> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            if n <= self.fail {
                Err(format!("unit {n} failed"))
            } else {
                Ok(())
            }
        }
    }

    fn counter(fail: u32) -> (Counter, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        (
            Counter {
                runs: runs.clone(),
                fail,
            },
            runs,
        )
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_shortens_the_period() {
        let s = Schedule {
            first: Duration::ZERO,
            every: SECOND,
        };
        assert_eq!(s.pause(0), SECOND);
        assert_eq!(s.pause(1), 2 * SECOND);
        assert_eq!(s.pause(3), 8 * SECOND);
        assert_eq!(s.pause(10), MAX_BACKOFF);
        assert_eq!(s.pause(u32::MAX), MAX_BACKOFF);
        let daily = Schedule {
            first: Duration::ZERO,
            every: 86_400 * SECOND,
        };
        assert_eq!(daily.pause(5), daily.every, "capped at the period");
    }

    #[tokio::test(start_paused = true)]
    async fn units_run_on_schedule_and_stop_on_cancel() {
        let (work, runs) = counter(0);
        let mut workers = Workers::new();
        let schedule = Schedule {
            first: 5 * SECOND,
            every: 10 * SECOND,
        };
        workers.spawn("count", schedule, work);
        assert_eq!(workers.names(), vec!["count"]);
        tokio::time::sleep(4 * SECOND).await;
        assert_eq!(runs.load(Ordering::SeqCst), 0, "not before `first`");
        tokio::time::sleep(2 * SECOND).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(30 * SECOND).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4, "at 5, 15, 25 and 35 s");
        workers.stop().await;
        tokio::time::sleep(60 * SECOND).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4, "nothing after stop");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_a_success_resets() {
        let (work, runs) = counter(3);
        let mut workers = Workers::new();
        let schedule = Schedule {
            first: Duration::ZERO,
            every: SECOND,
        };
        workers.spawn("flaky", schedule, work);
        // Units at 0 (fails), 2 (fails), 6 (fails), 14 (ok), 15, 16 ...
        tokio::time::sleep(SECOND / 2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(5 * SECOND).await; // t = 5.5
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        tokio::time::sleep(8 * SECOND).await; // t = 13.5
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::sleep(3 * SECOND).await; // t = 16.5
        assert_eq!(runs.load(Ordering::SeqCst), 6, "back to every second");
        workers.stop().await;
    }

    /// A unit that never ends is dropped by the cancel signal.
    struct Stuck;

    impl Work for Stuck {
        type Error = String;

        async fn tick(&mut self) -> Result<(), String> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_interrupts_a_unit_in_progress() {
        let mut workers = Workers::new();
        let schedule = Schedule {
            first: Duration::ZERO,
            every: SECOND,
        };
        workers.spawn("stuck", schedule, Stuck);
        tokio::time::sleep(SECOND).await;
        tokio::time::timeout(SECOND, workers.stop())
            .await
            .expect("stopped without waiting for the unit");
    }
}
