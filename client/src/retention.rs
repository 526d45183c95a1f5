//! Retention policy: which snapshots `forget --keep-…` keeps.
//!
//! A pure function over snapshot times, in the spirit of restic's policy:
//! snapshots are grouped (same device, and same item or, without one, same
//! paths) and, newest first, a snapshot is kept by a rule when it is the
//! newest one of a new period for that rule (hour, day, ISO week, month,
//! year, in UTC) and the rule still has room. `--keep-last N` keeps the N
//! newest. A snapshot kept by any rule is kept. A policy with no rule at all
//! keeps everything: forgetting needs an explicit rule or explicit ids.

/// How many snapshots to keep per period; `None` means the rule is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The newest N.
    pub last: Option<u32>,
    /// The newest of each of the last N hours that have snapshots.
    pub hourly: Option<u32>,
    /// The newest of each of the last N days.
    pub daily: Option<u32>,
    /// The newest of each of the last N ISO weeks.
    pub weekly: Option<u32>,
    /// The newest of each of the last N months.
    pub monthly: Option<u32>,
    /// The newest of each of the last N years.
    pub yearly: Option<u32>,
}

impl KeepPolicy {
    /// Whether no rule is set.
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

/// A rule: its limit, and the period a snapshot time falls in.
type Rule = (Option<u32>, fn(i64) -> i64);

/// Decides, for snapshots of one group given as Unix seconds, which to keep.
/// Returns one flag per input, in input order.
pub fn keep(times: &[i64], policy: &KeepPolicy) -> Vec<bool> {
    if policy.is_empty() {
        return vec![true; times.len()];
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    let rules: [Rule; 6] = [
        (policy.last, |_| 0),
        (policy.hourly, |t| t.div_euclid(3600)),
        (policy.daily, |t| t.div_euclid(86_400)),
        (policy.weekly, |t| (t.div_euclid(86_400) + 3).div_euclid(7)),
        (policy.monthly, |t| {
            let (y, m, _) = civil(t.div_euclid(86_400));
            y * 12 + m
        }),
        (policy.yearly, |t| civil(t.div_euclid(86_400)).0),
    ];
    let mut kept = vec![false; times.len()];
    for (i, (limit, period)) in rules.iter().enumerate() {
        let Some(limit) = *limit else { continue };
        let (mut left, mut last_period) = (limit, None);
        for &s in &order {
            if left == 0 {
                break;
            }
            let p = period(times[s]);
            // keep-last (rule 0) keeps every snapshot; the others one per period.
            if i == 0 || last_period != Some(p) {
                kept[s] = true;
                left -= 1;
                last_period = Some(p);
            }
        }
    }
    kept
}

/// Days since 1970-01-01 to (year, month 1..=12, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(19_782), (2024, 2, 29));
        assert_eq!(civil(-1), (1969, 12, 31));
    }

    #[test]
    fn keep_last_and_daily() {
        // Three snapshots a day for five days.
        let times: Vec<i64> = (0..5)
            .flat_map(|d| (0..3).map(move |h| d * DAY + h * 3600))
            .collect();
        let last2 = keep(
            &times,
            &KeepPolicy {
                last: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(last2.iter().filter(|k| **k).count(), 2);
        assert!(last2[14] && last2[13]);

        let daily3 = keep(
            &times,
            &KeepPolicy {
                daily: Some(3),
                ..Default::default()
            },
        );
        let kept: Vec<usize> = (0..times.len()).filter(|&i| daily3[i]).collect();
        assert_eq!(
            kept,
            vec![8, 11, 14],
            "the newest of each of the last 3 days"
        );
    }

    #[test]
    fn rules_combine_and_an_empty_policy_keeps_all() {
        let times: Vec<i64> = (0..400).map(|d| d * DAY).collect();
        let k = keep(
            &times,
            &KeepPolicy {
                daily: Some(7),
                monthly: Some(12),
                ..Default::default()
            },
        );
        let n = k.iter().filter(|k| **k).count();
        assert!((12..=19).contains(&n), "{n}");
        assert!(keep(&times, &KeepPolicy::default()).iter().all(|k| *k));
    }

    proptest! {
        #[test]
        fn the_newest_is_always_kept_and_limits_hold(
            times in proptest::collection::vec(0i64..4_000_000_000, 1..60),
            last in 1u32..5, daily in 0u32..5,
        ) {
            let policy = KeepPolicy { last: Some(last), daily: (daily > 0).then_some(daily), ..Default::default() };
            let k = keep(&times, &policy);
            let newest = (0..times.len()).max_by(|&a, &b| times[a].cmp(&times[b]).then(a.cmp(&b))).unwrap();
            prop_assert!(k[newest]);
            prop_assert!(k.iter().filter(|k| **k).count() <= (last + daily) as usize);
        }
    }
}
