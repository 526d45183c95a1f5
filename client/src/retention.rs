//! Retention: which snapshots a policy keeps. A pure function over snapshot
//! times, the current time and a time zone.
//!
//! A policy is a list of ranges (Comet's range types, which include
//! restic's `--keep-…` rules); a snapshot kept by any range is kept, and an
//! empty policy keeps everything. Calendar periods (hour, day, ISO week,
//! month, year) are taken in the given zone, so "one per day" follows the
//! user's days, not UTC's. Whatever the ranges, the newest snapshot is
//! always kept: a retention pass can thin a history but never empty it.
//!
//! `cairn forget --keep-…` is [`KeepPolicy`], restic's rules, which are
//! [`Range::Last`] and [`Range::OnePer`] ranges ([`KeepPolicy::ranges`]).
//! A policy stored on the cluster (`cairn retention set`) is
//! [`ranges_of`] its API form.

use cairn_proto::api::{RetentionPeriod, RetentionPolicy, RetentionRange};
use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::error::{Error, Result};

/// A calendar period of a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A local clock hour.
    Hour,
    /// A local date.
    Day,
    /// An ISO week (Monday to Sunday).
    Week,
    /// A calendar month.
    Month,
    /// A calendar year.
    Year,
}

/// One range of a retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// Every snapshot.
    Everything,
    /// The N most recent snapshots.
    Last(u32),
    /// Snapshots taken less than this long before now.
    NewerThan(SignedDuration),
    /// Snapshots taken at or after this time.
    Since(Timestamp),
    /// The first snapshot of each of the last N periods, counting the
    /// current one (periods without snapshots count too).
    FirstOf(Period, u32),
    /// The newest snapshot of each period, for the N most recent periods
    /// that have snapshots (restic's `--keep-daily` and kin).
    OnePer(Period, u32),
}

/// `forget --keep-…`: how many snapshots to keep per period, restic's
/// rules; `None` means the rule is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest of each of the last N hours that have snapshots.
    pub hourly: Option<u32>,
    /// The newest of each of the last N days that have snapshots.
    pub daily: Option<u32>,
    /// The newest of each of the last N ISO weeks that have snapshots.
    pub weekly: Option<u32>,
    /// The newest of each of the last N months that have snapshots.
    pub monthly: Option<u32>,
    /// The newest of each of the last N years that have snapshots.
    pub yearly: Option<u32>,
}

impl KeepPolicy {
    /// Whether no rule is set (forgetting then needs explicit ids).
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }

    /// The rules as ranges of [`select`].
    pub fn ranges(&self) -> Vec<Range> {
        let per = [
            (self.hourly, Period::Hour),
            (self.daily, Period::Day),
            (self.weekly, Period::Week),
            (self.monthly, Period::Month),
            (self.yearly, Period::Year),
        ];
        self.last
            .map(Range::Last)
            .into_iter()
            .chain(
                per.into_iter()
                    .filter_map(|(n, p)| n.map(|n| Range::OnePer(p, n))),
            )
            .collect()
    }
}

/// Whether a stored policy keeps every snapshot (no range, or an
/// "everything" range), so a retention pass has nothing to do.
pub fn keeps_everything(policy: &RetentionPolicy) -> bool {
    policy.ranges.is_empty()
        || policy
            .ranges
            .iter()
            .any(|r| matches!(r, RetentionRange::Everything))
}

/// The ranges of a stored policy.
///
/// # Errors
///
/// [`Error::Invalid`] for a time or age out of range.
pub fn ranges_of(policy: &RetentionPolicy) -> Result<Vec<Range>> {
    let period = |p: RetentionPeriod| match p {
        RetentionPeriod::Hour => Period::Hour,
        RetentionPeriod::Day => Period::Day,
        RetentionPeriod::Week => Period::Week,
        RetentionPeriod::Month => Period::Month,
        RetentionPeriod::Year => Period::Year,
    };
    policy
        .ranges
        .iter()
        .map(|r| {
            Ok(match *r {
                RetentionRange::Everything => Range::Everything,
                RetentionRange::Last { count } => Range::Last(count),
                RetentionRange::NewerThan { secs } => Range::NewerThan(SignedDuration::from_secs(
                    i64::try_from(secs)
                        .map_err(|_| Error::Invalid(format!("age {secs}s is too large")))?,
                )),
                RetentionRange::Since { at } => Range::Since(
                    i64::try_from(at)
                        .ok()
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                        .ok_or_else(|| Error::Invalid(format!("time {at} is out of range")))?,
                ),
                RetentionRange::FirstOf { period: p, count } => Range::FirstOf(period(p), count),
                RetentionRange::OnePer { period: p, count } => Range::OnePer(period(p), count),
            })
        })
        .collect()
}

/// Decides which of `times` to keep under `ranges` at `now` in `tz`.
/// Returns one flag per input, in input order.
pub fn select(times: &[Timestamp], ranges: &[Range], now: Timestamp, tz: &TimeZone) -> Vec<bool> {
    if ranges.is_empty() {
        return vec![true; times.len()];
    }
    let mut kept = vec![false; times.len()];
    for range in ranges {
        for (k, hit) in kept.iter_mut().zip(select_range(times, range, now, tz)) {
            *k |= hit;
        }
    }
    if let Some(newest) = newest_first(times).first() {
        kept[*newest] = true;
    }
    kept
}

/// Indices of `times`, newest first (a later index first among equal
/// times, so the order is total and stable).
fn newest_first(times: &[Timestamp]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    order
}

/// What one range alone keeps.
fn select_range(times: &[Timestamp], range: &Range, now: Timestamp, tz: &TimeZone) -> Vec<bool> {
    match *range {
        Range::Everything => vec![true; times.len()],
        Range::Last(n) => {
            let mut kept = vec![false; times.len()];
            for &i in newest_first(times).iter().take(n as usize) {
                kept[i] = true;
            }
            kept
        }
        Range::NewerThan(d) => {
            let cutoff = now.checked_sub(d).unwrap_or(Timestamp::MIN);
            times.iter().map(|t| *t > cutoff).collect()
        }
        Range::Since(since) => times.iter().map(|t| *t >= since).collect(),
        Range::OnePer(period, n) => {
            let mut kept = vec![false; times.len()];
            let (mut left, mut last) = (n, None);
            for i in newest_first(times) {
                if left == 0 {
                    break;
                }
                let p = period_start(tz.to_datetime(times[i]), period);
                if last != Some(p) {
                    kept[i] = true;
                    left -= 1;
                    last = Some(p);
                }
            }
            kept
        }
        Range::FirstOf(period, n) => {
            let mut kept = vec![false; times.len()];
            if n == 0 {
                return kept;
            }
            let first = periods_before(period_start(tz.to_datetime(now), period), period, n - 1);
            let mut order = newest_first(times);
            order.reverse();
            let mut last = None;
            for i in order {
                let p = period_start(tz.to_datetime(times[i]), period);
                if p >= first && last != Some(p) {
                    kept[i] = true;
                    last = Some(p);
                }
            }
            kept
        }
    }
}

/// The civil start of the period holding `dt`: the key snapshots are
/// grouped by (equal starts, same period; later starts, later periods).
fn period_start(dt: DateTime, period: Period) -> DateTime {
    let date = dt.date();
    let day = match period {
        Period::Hour => {
            return date.to_datetime(Time::new(dt.hour(), 0, 0, 0).unwrap_or(Time::MIN));
        }
        Period::Day => date,
        Period::Week => date
            .checked_sub((date.weekday().to_monday_zero_offset() as i64).days())
            .unwrap_or(date),
        Period::Month => date.first_of_month(),
        Period::Year => date.first_of_year(),
    };
    day.to_datetime(Time::MIN)
}

/// The start of the period `n` periods before the one starting at `start`.
fn periods_before(start: DateTime, period: Period, n: u32) -> DateTime {
    let n = i64::from(n);
    let back = match period {
        Period::Hour => start.checked_sub(n.hours()),
        Period::Day => start.checked_sub(n.days()),
        Period::Week => start.checked_sub((n * 7).days()),
        Period::Month => start.checked_sub(n.months()),
        Period::Year => start.checked_sub(n.years()),
    };
    back.unwrap_or(DateTime::MIN)
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    #[test]
    fn a_stored_policy_converts_to_its_ranges() {
        let p = RetentionPolicy {
            ranges: vec![
                RetentionRange::Last { count: 2 },
                RetentionRange::NewerThan { secs: 60 },
                RetentionRange::Since { at: 1_000 },
                RetentionRange::FirstOf {
                    period: RetentionPeriod::Day,
                    count: 3,
                },
                RetentionRange::OnePer {
                    period: RetentionPeriod::Month,
                    count: 4,
                },
            ],
            prune_every_s: None,
        };
        let ranges = ranges_of(&p).unwrap();
        assert_eq!(
            ranges,
            vec![
                Range::Last(2),
                Range::NewerThan(SignedDuration::from_secs(60)),
                Range::Since(Timestamp::from_millisecond(1_000).unwrap()),
                Range::FirstOf(Period::Day, 3),
                Range::OnePer(Period::Month, 4),
            ]
        );
        assert!(!keeps_everything(&p));
        assert!(keeps_everything(&RetentionPolicy::default()));
        let far = RetentionPolicy {
            ranges: vec![RetentionRange::Since { at: u64::MAX }],
            prune_every_s: None,
        };
        assert!(matches!(ranges_of(&far), Err(Error::Invalid(_))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn kept_times(
        times: &[Timestamp],
        ranges: &[Range],
        now: Timestamp,
        tz: &TimeZone,
    ) -> Vec<Timestamp> {
        let mut out: Vec<Timestamp> = times
            .iter()
            .zip(select(times, ranges, now, tz))
            .filter(|(_, k)| *k)
            .map(|(t, _)| *t)
            .collect();
        out.sort();
        out
    }

    /// Three snapshots a day (01:00, 09:00, 17:00 UTC) for ten days from
    /// 2027-01-01.
    fn ten_days() -> Vec<Timestamp> {
        (0..10)
            .flat_map(|d| {
                [1, 9, 17].map(|h| ts("2027-01-01T00:00Z") + SignedDuration::from_hours(d * 24 + h))
            })
            .collect()
    }

    #[test]
    fn keep_policy_is_restics_rules() {
        let p = KeepPolicy {
            last: Some(2),
            daily: Some(3),
            ..Default::default()
        };
        assert_eq!(p.ranges(), [Range::Last(2), Range::OnePer(Period::Day, 3)]);
        assert!(KeepPolicy::default().is_empty() && KeepPolicy::default().ranges().is_empty());
        // Three snapshots a day for five days: the newest of each of the
        // last three days, as restic's --keep-daily 3.
        let t: Vec<Timestamp> = (0..5)
            .flat_map(|d| {
                (0..3).map(move |h| Timestamp::from_second(d * 86_400 + h * 3600).unwrap())
            })
            .collect();
        let daily = KeepPolicy {
            daily: Some(3),
            ..Default::default()
        };
        let kept = select(
            &t,
            &daily.ranges(),
            Timestamp::from_second(10 * 86_400).unwrap(),
            &TimeZone::UTC,
        );
        let idx: Vec<usize> = (0..t.len()).filter(|&i| kept[i]).collect();
        assert_eq!(idx, [8, 11, 14]);
    }

    #[test]
    fn an_empty_policy_keeps_everything() {
        let t = ten_days();
        assert!(select(&t, &[], ts("2027-02-01T00:00Z"), &TimeZone::UTC)
            .iter()
            .all(|k| *k));
    }

    #[test]
    fn first_of_each_day_and_one_per_day_differ_as_comet_and_restic_do() {
        let (t, now, utc) = (ten_days(), ts("2027-01-10T20:00Z"), TimeZone::UTC);
        assert_eq!(
            kept_times(&t, &[Range::FirstOf(Period::Day, 2)], now, &utc),
            [
                ts("2027-01-09T01:00Z"),
                ts("2027-01-10T01:00Z"),
                ts("2027-01-10T17:00Z")
            ],
            "the first of each of the last two days, and the newest"
        );
        assert_eq!(
            kept_times(&t, &[Range::OnePer(Period::Day, 2)], now, &utc),
            [ts("2027-01-09T17:00Z"), ts("2027-01-10T17:00Z")]
        );
        // Days without snapshots count for FirstOf, not for OnePer.
        let later = ts("2027-01-20T00:00Z");
        assert_eq!(
            kept_times(&t, &[Range::FirstOf(Period::Day, 3)], later, &utc),
            [ts("2027-01-10T17:00Z")],
            "only the newest: no snapshot in the last three days"
        );
        assert_eq!(
            kept_times(&t, &[Range::OnePer(Period::Day, 3)], later, &utc).len(),
            3
        );
    }

    #[test]
    fn days_are_the_zones_days() {
        // 01:00 UTC is the previous evening in New York.
        let ny = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let (t, now) = (ten_days(), ts("2027-01-10T20:00Z"));
        assert_eq!(
            kept_times(&t, &[Range::OnePer(Period::Day, 2)], now, &ny),
            [ts("2027-01-10T01:00Z"), ts("2027-01-10T17:00Z")],
            "the newest of Jan 9 in New York is 01:00 UTC on Jan 10"
        );
    }

    #[test]
    fn weeks_months_and_years() {
        let utc = TimeZone::UTC;
        // Every day of 2026 and 2027 at noon.
        let t: Vec<Timestamp> = (0..730)
            .map(|d| ts("2026-01-01T12:00Z") + SignedDuration::from_hours(d * 24))
            .collect();
        let now = ts("2027-12-31T23:00Z");
        // 2027-12-27 is a Monday: the first of the last two ISO weeks.
        assert_eq!(
            kept_times(&t, &[Range::FirstOf(Period::Week, 2)], now, &utc),
            [
                ts("2027-12-20T12:00Z"),
                ts("2027-12-27T12:00Z"),
                ts("2027-12-31T12:00Z")
            ]
        );
        assert_eq!(
            kept_times(&t, &[Range::OnePer(Period::Month, 3)], now, &utc),
            [
                ts("2027-10-31T12:00Z"),
                ts("2027-11-30T12:00Z"),
                ts("2027-12-31T12:00Z")
            ]
        );
        assert_eq!(
            kept_times(&t, &[Range::FirstOf(Period::Year, 5)], now, &utc),
            [
                ts("2026-01-01T12:00Z"),
                ts("2027-01-01T12:00Z"),
                ts("2027-12-31T12:00Z")
            ]
        );
    }

    #[test]
    fn newer_than_and_since() {
        let (t, now, utc) = (ten_days(), ts("2027-01-10T20:00Z"), TimeZone::UTC);
        assert_eq!(
            kept_times(
                &t,
                &[Range::NewerThan(SignedDuration::from_hours(12))],
                now,
                &utc
            ),
            [ts("2027-01-10T09:00Z"), ts("2027-01-10T17:00Z")]
        );
        assert_eq!(
            kept_times(&t, &[Range::Since(ts("2027-01-09T17:00Z"))], now, &utc).len(),
            4
        );
        assert_eq!(
            kept_times(&t, &[Range::Since(ts("2030-01-01T00:00Z"))], now, &utc),
            [ts("2027-01-10T17:00Z")],
            "never empty: the newest stays"
        );
    }

    fn range() -> impl Strategy<Value = Range> {
        let period = prop_oneof![
            Just(Period::Hour),
            Just(Period::Day),
            Just(Period::Week),
            Just(Period::Month),
            Just(Period::Year)
        ];
        prop_oneof![
            Just(Range::Everything),
            (0u32..20).prop_map(Range::Last),
            (0i64..5_000_000).prop_map(|s| Range::NewerThan(SignedDuration::from_secs(s))),
            (0i64..20_000_000)
                .prop_map(|s| Range::Since(Timestamp::from_second(1_790_000_000 + s).unwrap())),
            (period.clone(), 0u32..20).prop_map(|(p, n)| Range::FirstOf(p, n)),
            (period, 0u32..20).prop_map(|(p, n)| Range::OnePer(p, n)),
        ]
    }

    fn times() -> impl Strategy<Value = Vec<Timestamp>> {
        // Up to ~230 days of snapshots, with duplicates possible.
        proptest::collection::vec(
            (0i64..20_000_000).prop_map(|s| Timestamp::from_second(1_790_000_000 + s).unwrap()),
            0..60,
        )
    }

    const NOW: i64 = 1_810_000_000;

    proptest! {
        /// Ranges combine as a union, plus the newest snapshot.
        #[test]
        fn ranges_combine_as_a_union(t in times(), ranges in proptest::collection::vec(range(), 1..4), z in 0usize..3) {
            let tz = [TimeZone::UTC, TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap(), TimeZone::posix("IST-5:30").unwrap()][z].clone();
            let now = Timestamp::from_second(NOW).unwrap();
            let all = select(&t, &ranges, now, &tz);
            let newest = newest_first(&t).first().copied();
            for (i, kept) in all.iter().enumerate() {
                let any = ranges.iter().any(|r| select_range(&t, r, now, &tz)[i]);
                prop_assert_eq!(*kept, any || Some(i) == newest);
            }
        }

        /// Keeping is about times, not input order; and a larger count
        /// never keeps fewer.
        #[test]
        fn order_independent_and_monotone(t in times(), r in range(), seed in any::<u64>()) {
            let now = Timestamp::from_second(NOW).unwrap();
            let tz = TimeZone::UTC;
            let kept = kept_times(&t, &[r], now, &tz);
            let mut shuffled = t.clone();
            let len = shuffled.len().max(1);
            for i in 0..shuffled.len() {
                shuffled.swap(i, (seed as usize).wrapping_mul(i + 7) % len);
            }
            prop_assert_eq!(&kept_times(&shuffled, &[r], now, &tz), &kept);
            let more = match r {
                Range::Last(n) => Range::Last(n + 1),
                Range::FirstOf(p, n) => Range::FirstOf(p, n + 1),
                Range::OnePer(p, n) => Range::OnePer(p, n + 1),
                other => other,
            };
            let bigger = kept_times(&t, &[more], now, &tz);
            for k in &kept {
                prop_assert!(bigger.contains(k));
            }
        }

        /// One per period: the newest of each of the n most recent periods
        /// that have snapshots. First of: the earliest of each period in
        /// the window of the last n periods.
        #[test]
        fn periods_pick_the_right_member(t in times(), n in 1u32..12, p in 0usize..5) {
            let period = [Period::Hour, Period::Day, Period::Week, Period::Month, Period::Year][p];
            let now = Timestamp::from_second(NOW).unwrap();
            let tz = TimeZone::UTC;
            let key = |x: &Timestamp| period_start(tz.to_datetime(*x), period);
            let mut periods: Vec<DateTime> = t.iter().map(key).collect();
            periods.sort();
            periods.dedup();

            let one = select_range(&t, &Range::OnePer(period, n), now, &tz);
            let kept_periods: Vec<DateTime> = periods.iter().rev().take(n as usize).copied().collect();
            for (i, x) in t.iter().enumerate() {
                let newest_of_period = t.iter().filter(|y| key(y) == key(x)).max() == Some(x);
                if one[i] {
                    prop_assert!(newest_of_period && kept_periods.contains(&key(x)));
                }
            }
            prop_assert_eq!(one.iter().filter(|k| **k).count(), kept_periods.len());

            let first = select_range(&t, &Range::FirstOf(period, n), now, &tz);
            let window = periods_before(key(&now), period, n - 1);
            for (i, x) in t.iter().enumerate() {
                let earliest = t.iter().filter(|y| key(y) == key(x)).min() == Some(x);
                if first[i] {
                    prop_assert!(earliest && key(x) >= window);
                }
            }
            let in_window = periods.iter().filter(|q| **q >= window).count();
            prop_assert_eq!(first.iter().filter(|k| **k).count(), in_window);
        }
    }
}
