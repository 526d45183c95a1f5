//! Overdue backups: schedules whose newest successful backup is older than
//! the schedule allows, so an alert can page on "customers' backups are not
//! happening" and not only on Raft health.
//!
//! A schedule is overdue at `now` when
//!
//! ```text
//! now − max(newest success of its device×item, when the schedule was set)
//!     > max_gap(spec) + random delay + timeout + grace
//! ```
//!
//! where `max_gap` is the longest interval the spec can leave between two
//! runs in any time zone (`cairn_proto::schedule`, the grammar the devices
//! use), and the grace is one more gap, at most an hour: a schedule is
//! overdue once about one run is missing, not on the dot. A `once`
//! schedule is due by its local time read in the westernmost zone (plus
//! the same slack) and never overdue once a backup succeeded after it was
//! set. A success is a finished backup job of the item (`succeeded` or
//! `warning`) or a snapshot of it: snapshots outlive the bounded job log.
//! A spec that does not parse (written before the node checked specs) is
//! never overdue: its daemon does not run it either and says so.
//!
//! [`overdue`] is the whole decision over plain data; the leader's
//! `/metrics` and `cairnd admin backups overdue` feed it the replicated
//! state ([`facts_of`]).

use std::collections::BTreeMap;

use cairn_consensus::event::{JobKind, JobStatus};
use cairn_consensus::state::State;
use cairn_consensus::{AccountId, DeviceId, UnixMillis};
use cairn_proto::schedule::Spec;
use jiff::SignedDuration;

/// The most grace a schedule gets past its longest gap.
pub const MAX_GRACE: SignedDuration = SignedDuration::from_hours(1);

/// One schedule as the overdue check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// The device that runs it.
    pub device: DeviceId,
    /// The device's account.
    pub account: AccountId,
    /// The schedule's name.
    pub name: String,
    /// The item it backs up.
    pub item: String,
    /// Its spec text.
    pub spec: String,
    /// Most random delay before a run, seconds.
    pub random_delay_s: u32,
    /// Longest a run may take, seconds.
    pub timeout_s: Option<u32>,
    /// When it was last set (a new or changed schedule starts counting
    /// from here).
    pub set_at: UnixMillis,
}

/// An overdue schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// The schedule.
    pub schedule: Scheduled,
    /// The newest successful backup of its item, if any.
    pub last_success: Option<UnixMillis>,
    /// When a successful backup was due by.
    pub due_by: UnixMillis,
}

/// The schedules and the newest success of each device×item, read from
/// the replicated state.
pub fn facts_of(s: &State) -> (Vec<Scheduled>, BTreeMap<(DeviceId, String), UnixMillis>) {
    let schedules = s
        .schedules()
        .values()
        .map(|sc| Scheduled {
            device: sc.device,
            account: sc.account,
            name: sc.name.clone(),
            item: sc.item.clone(),
            spec: sc.spec.clone(),
            random_delay_s: sc.random_delay_s,
            timeout_s: sc.timeout_s,
            set_at: sc.updated_at,
        })
        .collect();
    let jobs = s.jobs().values().filter_map(|j| {
        let end = j.finished.as_ref()?;
        let ok = matches!(end.status, JobStatus::Succeeded | JobStatus::Warnings);
        let item = j
            .item
            .as_ref()
            .filter(|_| ok && j.kind == JobKind::Backup)?;
        Some(((j.device, item.clone()), end.at))
    });
    let snapshots = s
        .snapshots()
        .values()
        .map(|r| ((r.device, r.item.clone()), r.finished_at));
    let mut newest = BTreeMap::new();
    for (key, at) in jobs.chain(snapshots) {
        let e = newest.entry(key).or_insert(at);
        *e = (*e).max(at);
    }
    (schedules, newest)
}

/// When a successful backup of `s` is due by, given its newest success:
/// `None` when it cannot be overdue (a `once` that already succeeded, a
/// spec that does not parse).
pub fn due_by(s: &Scheduled, last_success: Option<UnixMillis>) -> Option<UnixMillis> {
    let frequency = s.spec.parse::<Spec>().ok()?.frequency;
    let slack = SignedDuration::from_secs(
        i64::from(s.random_delay_s) + i64::from(s.timeout_s.unwrap_or(0)),
    );
    let ms = |d: SignedDuration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let since = last_success.map_or(s.set_at, |t| t.max(s.set_at));
    let deadline = match frequency.max_gap() {
        Some(gap) => since
            .0
            .saturating_add(ms(gap))
            .saturating_add(ms(gap.min(MAX_GRACE))),
        None => {
            if last_success.is_some_and(|t| t >= s.set_at) {
                return None;
            }
            let at = frequency.once_due_by()?.as_millisecond();
            u64::try_from(at).unwrap_or(0).saturating_add(ms(MAX_GRACE))
        }
    };
    Some(UnixMillis(deadline.saturating_add(ms(slack))))
}

/// The overdue schedules at `now`, by device then name.
pub fn overdue(
    schedules: &[Scheduled],
    newest: &BTreeMap<(DeviceId, String), UnixMillis>,
    now: UnixMillis,
) -> Vec<Overdue> {
    let mut out: Vec<Overdue> = schedules
        .iter()
        .filter_map(|s| {
            let last_success = newest.get(&(s.device, s.item.clone())).copied();
            let due_by = due_by(s, last_success)?;
            (now > due_by).then(|| Overdue {
                schedule: s.clone(),
                last_success,
                due_by,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.schedule.device, &a.schedule.name).cmp(&(b.schedule.device, &b.schedule.name))
    });
    out
}

/// How many distinct devices have an overdue schedule.
pub fn devices(overdue: &[Overdue]) -> usize {
    let mut d: Vec<DeviceId> = overdue.iter().map(|o| o.schedule.device).collect();
    d.sort();
    d.dedup();
    d.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: u64 = 3_600_000;

    fn sched(spec: &str, set_at: u64) -> Scheduled {
        Scheduled {
            device: DeviceId::random(),
            account: AccountId::random(),
            name: "nightly".into(),
            item: "home".into(),
            spec: spec.into(),
            random_delay_s: 0,
            timeout_s: None,
            set_at: UnixMillis(set_at),
        }
    }

    fn newest(s: &Scheduled, at: u64) -> BTreeMap<(DeviceId, String), UnixMillis> {
        BTreeMap::from([((s.device, s.item.clone()), UnixMillis(at))])
    }

    #[test]
    fn a_daily_schedule_is_overdue_a_day_an_hour_and_an_hour_after_its_last_success() {
        let mut s = sched("daily 02:00", 0);
        s.random_delay_s = 1800;
        s.timeout_s = Some(3600);
        let last = 100 * H;
        let due = last + 25 * H + H + H / 2 + H;
        let n = newest(&s, last);
        let list = std::slice::from_ref(&s);
        assert!(overdue(list, &n, UnixMillis(due)).is_empty());
        let o = overdue(list, &n, UnixMillis(due + 1));
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].due_by, UnixMillis(due));
        assert_eq!(o[0].last_success, Some(UnixMillis(last)));
        // Another device's success does not count.
        let other = newest(&sched("daily 02:00", 0), last);
        assert_eq!(overdue(list, &other, UnixMillis(due + 1)).len(), 1);
    }

    #[test]
    fn a_new_schedule_counts_from_when_it_was_set() {
        let s = sched("every 3s", 10_000);
        let none = BTreeMap::new();
        let list = std::slice::from_ref(&s);
        assert!(overdue(list, &none, UnixMillis(16_000)).is_empty());
        assert_eq!(overdue(list, &none, UnixMillis(16_001)).len(), 1);
        // A success older than the schedule's change does not move it back.
        assert_eq!(
            overdue(list, &newest(&s, 1_000), UnixMillis(16_001)).len(),
            1
        );
    }

    #[test]
    fn once_is_due_by_its_westernmost_instant_and_never_after_a_success() {
        let s = sched("once 2027-01-01T02:00", 0);
        let due = "2027-01-01T15:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond() as u64;
        assert_eq!(due_by(&s, None), Some(UnixMillis(due)));
        assert_eq!(due_by(&s, Some(UnixMillis(5))), None);
        assert!(overdue(&[s], &BTreeMap::new(), UnixMillis(due + 1)).len() == 1);
    }

    #[test]
    fn an_unparseable_spec_is_never_overdue_and_devices_count_once() {
        assert_eq!(due_by(&sched("whenever", 0), None), None);
        let a = sched("every 3s", 0);
        let mut b = sched("every 5s", 0);
        b.device = a.device;
        let c = sched("every 7s", 0);
        let o = overdue(&[a, b, c], &BTreeMap::new(), UnixMillis(H));
        assert_eq!(o.len(), 3);
        assert_eq!(devices(&o), 2);
    }

    proptest! {
        /// Overdue is monotonic in time and reset by a newer success: a
        /// schedule overdue at `t` is overdue at every later time with no
        /// newer success, and a success at `t` makes it not overdue until
        /// at least one longest gap has passed.
        #[test]
        fn overdue_grows_with_time_and_a_success_resets_it(
            secs in 1u64..200_000, set in 0u64..1_000_000_000, last in 0u64..2_000_000_000,
            t in 0u64..4_000_000_000, dt in 0u64..1_000_000_000, delay in 0u32..18_000,
        ) {
            let mut s = sched(&format!("every {secs}s"), set);
            s.random_delay_s = delay;
            let n = newest(&s, last);
            let list = std::slice::from_ref(&s);
            let at = |t: u64| !overdue(list, &n, UnixMillis(t)).is_empty();
            if at(t) {
                prop_assert!(at(t + dt));
            }
            let fresh = newest(&s, t.max(set));
            let gap = secs * 1_000;
            prop_assert!(overdue(list, &fresh, UnixMillis(t.max(set) + gap)).is_empty());
        }
    }
}
