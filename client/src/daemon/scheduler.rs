//! The daemon's decisions, pure: given the device's schedules, the time,
//! which schedules still have a job running and when each last ran, what
//! to do now. No clock, no network, no processes: the daemon loop
//! ([`super::run`]) feeds it and carries out its [`Action`]s.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::schedule::{random_delay, Frequency};

/// One schedule as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub frequency: Frequency,
    /// Origin of periodic schedules.
    pub anchor: Timestamp,
    /// Most random delay after each fire time.
    pub max_delay: SignedDuration,
    /// Run the latest missed run when the daemon starts (besides recording
    /// it `missed`).
    pub run_missed: bool,
}

/// What the daemon should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a job of the schedule (its run due at `due`).
    Start {
        /// The schedule.
        schedule: String,
        /// The fire time it is for.
        due: Timestamp,
    },
    /// Record that the run due at `due` was skipped: the previous job of
    /// the schedule still runs.
    Skip {
        /// The schedule.
        schedule: String,
        /// The fire time it was for.
        due: Timestamp,
    },
    /// Record that the run due at `due` was missed: the daemon was not
    /// running then.
    Missed {
        /// The schedule.
        schedule: String,
        /// The fire time it was for.
        due: Timestamp,
    },
}

/// The next run of one schedule: its fire time and when, after its random
/// delay, it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Next {
    due: Timestamp,
    start: Timestamp,
}

/// What the scheduler remembers between ticks: each known schedule's next
/// run, keyed by everything that defines its times (a changed spec or
/// anchor is a new schedule).
#[derive(Debug, Default)]
pub struct Scheduler {
    next: BTreeMap<(String, String, Timestamp), Option<Next>>,
    seed: Vec<u8>,
}

impl Scheduler {
    /// A scheduler whose random delays are seeded by `seed` (the device's
    /// id: a fleet with one schedule spreads out, a restart keeps them).
    pub fn new(seed: &[u8]) -> Self {
        Self {
            next: BTreeMap::new(),
            seed: seed.to_vec(),
        }
    }

    /// The actions due at `now`. `schedules` is the current set (reloaded
    /// or not); `running(name)` says whether a job of that schedule still
    /// runs; `since(name)` is when the schedule was last accounted for (its
    /// newest job, its anchor, the daemon's start), for a schedule first
    /// seen: a fire time in `(since, now]` is [`Action::Missed`] (the
    /// latest one only).
    pub fn tick(
        &mut self,
        schedules: &[Planned],
        now: Timestamp,
        tz: &TimeZone,
        running: impl Fn(&str) -> bool,
        since: impl Fn(&str) -> Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let keys: Vec<_> = schedules.iter().map(key).collect();
        self.next.retain(|k, _| keys.contains(k));
        for (s, k) in schedules.iter().zip(keys) {
            let entry = match self.next.get(&k) {
                Some(n) => *n,
                None => {
                    let from = since(&s.name).max(s.anchor);
                    if let Some(due) = s.frequency.last_missed(from, now, tz, s.anchor) {
                        actions.push(Action::Missed {
                            schedule: s.name.clone(),
                            due,
                        });
                        if s.run_missed {
                            actions.push(start_or_skip(s, due, &running));
                        }
                    }
                    let n = self.after(s, now, tz);
                    self.next.insert(k.clone(), n);
                    n
                }
            };
            let Some(n) = entry else { continue };
            if now < n.start {
                continue;
            }
            actions.push(start_or_skip(s, n.due, &running));
            // The next run after both this one and now: a daemon that was
            // busy or asleep does not replay a backlog.
            let n = self.after(s, now.max(n.due), tz);
            self.next.insert(k, n);
        }
        actions
    }

    /// When `s` next starts after `t`.
    fn after(&self, s: &Planned, t: Timestamp, tz: &TimeZone) -> Option<Next> {
        let due = s.frequency.next_after(t, tz, s.anchor)?;
        let delay = random_delay(&self.seed_of(&s.name), due, s.max_delay);
        Some(Next {
            due,
            start: due.checked_add(delay).unwrap_or(due),
        })
    }

    fn seed_of(&self, name: &str) -> Vec<u8> {
        let mut seed = self.seed.clone();
        seed.extend_from_slice(name.as_bytes());
        seed
    }

    /// When the next action is due, for sleeping until then.
    pub fn next_start(&self) -> Option<Timestamp> {
        self.next.values().flatten().map(|n| n.start).min()
    }
}

/// Starts the run of `s` due at `due`, or skips it while a job of `s` still
/// runs.
fn start_or_skip(s: &Planned, due: Timestamp, running: impl Fn(&str) -> bool) -> Action {
    let schedule = s.name.clone();
    if running(&s.name) {
        Action::Skip { schedule, due }
    } else {
        Action::Start { schedule, due }
    }
}

fn key(s: &Planned) -> (String, String, Timestamp) {
    (s.name.clone(), s.frequency.to_string(), s.anchor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn every(name: &str, secs: i64, anchor: i64) -> Planned {
        Planned {
            name: name.into(),
            frequency: Frequency::Every(SignedDuration::from_secs(secs)),
            anchor: ts(anchor),
            max_delay: SignedDuration::ZERO,
            run_missed: false,
        }
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn tick(s: &mut Scheduler, p: &[Planned], now: i64, running: bool) -> Vec<Action> {
        s.tick(p, ts(now), &TimeZone::UTC, |_| running, |_| ts(now))
    }

    #[test]
    fn a_periodic_schedule_starts_once_per_period() {
        let mut s = Scheduler::new(b"dev");
        let p = [every("a", 10, 0)];
        assert!(tick(&mut s, &p, 5, false).is_empty());
        assert_eq!(s.next_start(), Some(ts(10)));
        assert!(tick(&mut s, &p, 9, false).is_empty());
        let start = |due| Action::Start {
            schedule: "a".into(),
            due: ts(due),
        };
        assert_eq!(tick(&mut s, &p, 10, false), [start(10)]);
        assert!(tick(&mut s, &p, 11, false).is_empty());
        // Late by more than a period: one start, no backlog.
        assert_eq!(tick(&mut s, &p, 35, false), [start(20)]);
        assert_eq!(tick(&mut s, &p, 40, false), [start(40)]);
    }

    #[test]
    fn a_schedule_still_running_is_skipped() {
        let mut s = Scheduler::new(b"dev");
        let p = [every("a", 10, 0)];
        tick(&mut s, &p, 1, false);
        assert_eq!(
            tick(&mut s, &p, 10, true),
            [Action::Skip {
                schedule: "a".into(),
                due: ts(10)
            }]
        );
    }

    #[test]
    fn fire_times_passed_before_the_daemon_saw_the_schedule_are_missed_once() {
        let mut s = Scheduler::new(b"dev");
        let p = [every("a", 10, 0)];
        // Last accounted for at 5; the daemon comes back at 47: 40 was the
        // latest fire time missed (10..40 are one record, not four).
        let actions = s.tick(&p, ts(47), &TimeZone::UTC, |_| false, |_| ts(5));
        assert_eq!(
            actions,
            [Action::Missed {
                schedule: "a".into(),
                due: ts(40)
            }]
        );
        assert!(tick(&mut s, &p, 48, false).is_empty(), "not missed again");
    }

    #[test]
    fn a_run_missed_schedule_also_runs_the_missed_run_at_once() {
        let mut s = Scheduler::new(b"dev");
        let p = [Planned {
            run_missed: true,
            ..every("a", 10, 0)
        }];
        let missed = Action::Missed {
            schedule: "a".into(),
            due: ts(40),
        };
        let actions = s.tick(&p, ts(47), &TimeZone::UTC, |_| false, |_| ts(5));
        let start = Action::Start {
            schedule: "a".into(),
            due: ts(40),
        };
        assert_eq!(actions, [missed.clone(), start]);
        // Still running from before (another daemon's job): skipped.
        let mut s = Scheduler::new(b"dev");
        let actions = s.tick(&p, ts(47), &TimeZone::UTC, |_| true, |_| ts(5));
        let skip = Action::Skip {
            schedule: "a".into(),
            due: ts(40),
        };
        assert_eq!(actions, [missed, skip]);
        // Nothing missed, nothing run.
        let mut s = Scheduler::new(b"dev");
        assert!(s
            .tick(&p, ts(47), &TimeZone::UTC, |_| false, |_| ts(45))
            .is_empty());
    }

    #[test]
    fn a_changed_schedule_is_planned_anew_and_a_removed_one_forgotten() {
        let mut s = Scheduler::new(b"dev");
        tick(&mut s, &[every("a", 10, 0)], 1, false);
        assert_eq!(s.next_start(), Some(ts(10)));
        tick(&mut s, &[every("a", 3, 0)], 1, false);
        assert_eq!(s.next_start(), Some(ts(3)));
        tick(&mut s, &[], 1, false);
        assert_eq!(s.next_start(), None);
    }

    #[test]
    fn a_once_schedule_fires_once() {
        let mut s = Scheduler::new(b"dev");
        let at = "1970-01-01T00:01:00".parse().unwrap();
        let p = [Planned {
            name: "o".into(),
            frequency: Frequency::Once(at),
            anchor: ts(0),
            max_delay: SignedDuration::ZERO,
            run_missed: false,
        }];
        assert!(tick(&mut s, &p, 30, false).is_empty());
        assert_eq!(tick(&mut s, &p, 60, false).len(), 1);
        assert!(tick(&mut s, &p, 3600, false).is_empty());
        assert_eq!(s.next_start(), None);
    }

    proptest! {
        /// Ticking at arbitrary times, a periodic schedule never starts
        /// before its due time nor twice for one due time, starts at most
        /// once per tick, and a start is never more than one period plus
        /// the delay late relative to the tick that made it.
        #[test]
        fn starts_are_never_early_or_repeated(
            period in 1i64..600,
            delay in 0i64..300,
            steps in proptest::collection::vec(1i64..900, 1..60),
        ) {
            let mut s = Scheduler::new(b"dev");
            let p = [Planned { max_delay: SignedDuration::from_secs(delay), ..every("a", period, 0) }];
            let mut now = 0;
            let mut dues = Vec::new();
            tick(&mut s, &p, now, false);
            for step in steps {
                now += step;
                let actions = tick(&mut s, &p, now, false);
                prop_assert!(actions.len() <= 1);
                for a in actions {
                    let Action::Start { due, .. } = a else { panic!("{a:?}") };
                    prop_assert!(due <= ts(now));
                    prop_assert_eq!(due.as_second() % period, 0);
                    prop_assert!(!dues.contains(&due));
                    dues.push(due);
                }
            }
            prop_assert!(dues.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
