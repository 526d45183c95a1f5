//! When a schedule fires: the grammar of a schedule's frequency (`cairn
//! schedule add … --at SPEC`), the pure next-run computation the device's
//! daemon runs on, and the longest gap a schedule can leave between two runs,
//! which the cluster's overdue-backup gauge is measured against. It lives
//! here, in the shared vocabulary, so that the client and the node read the
//! stored spec text with one grammar.
//!
//! Times are the device's local time zone, passed in as a
//! [`TimeZone`](jiff::tz::TimeZone) so the rules are tested with any zone
//! and no clock. Civil-time frequencies (daily, weekly, monthly, once) are
//! resolved day by day in that zone, so a DST change neither skips nor
//! doubles a run:
//!
//! - a time that does not exist on a spring-forward day (02:30 when clocks
//!   jump from 02:00 to 03:00) runs at the same distance past the jump
//!   (03:30), as `jiff`'s *compatible* disambiguation does;
//! - a time that exists twice on a fall-back day runs once, at its first
//!   occurrence.
//!
//! `hourly :MM` fires at every real hour whose local minute is MM, so the
//! repeated hour of a fall-back night is backed up twice and the skipped
//! one never (there is nothing to back up in an hour that did not happen).
//! `every DUR` is periodic in real time from the schedule's anchor (when it
//! was created), unaffected by zones.
//!
//! A stored spec is a [`Spec`]: a frequency, optionally followed by the
//! word `run-missed` (a run missed while the daemon was not running is run
//! when it starts). The option lives in the text so that it needed no new
//! field in the replicated state.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// Shown with every refused specification.
const EXAMPLES: &str = "examples: `once 2027-01-01T02:00`, `hourly :15`, `daily 02:00`, \
                        `weekly mon,thu 02:00`, `monthly 1 02:00`, `every 6h`";

/// Written after a frequency to run a missed run when the daemon starts.
const RUN_MISSED: &str = "run-missed";

/// The most a zone's offset moves at one change (DST, whole hours in
/// nearly every zone, half an hour on Lord Howe Island): how much longer
/// than its nominal period a gap between two civil-time runs can be.
const OFFSET_SHIFT: SignedDuration = SignedDuration::from_hours(1);

/// The westernmost offset in use (UTC−12): a local time denotes an instant
/// at most this much after the same digits read as UTC.
const WESTMOST: SignedDuration = SignedDuration::from_hours(12);

/// A schedule specification that does not parse; the message says what
/// is wrong and shows examples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// A stored schedule specification: when it fires, and whether a run
/// missed while the daemon was not running is run when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// When it fires.
    pub frequency: Frequency,
    /// Run a missed run when the daemon starts (`… run-missed`).
    pub run_missed: bool,
}

impl FromStr for Spec {
    type Err = SpecError;

    /// Parses a frequency, optionally followed by `run-missed`.
    ///
    /// # Errors
    ///
    /// [`SpecError`] as [`Frequency`]'s parse gives.
    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let trimmed = spec.trim_end();
        match trimmed.strip_suffix(RUN_MISSED) {
            Some(rest) if rest.ends_with(char::is_whitespace) => Ok(Spec {
                frequency: rest.parse()?,
                run_missed: true,
            }),
            _ => Ok(Spec {
                frequency: trimmed.parse()?,
                run_missed: false,
            }),
        }
    }
}

impl fmt::Display for Spec {
    /// The canonical spelling, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.frequency)?;
        if self.run_missed {
            write!(f, " {RUN_MISSED}")?;
        }
        Ok(())
    }
}

/// A set of weekdays, Monday first (bit 0) to Sunday (bit 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weekdays(u8);

impl Weekdays {
    /// The set holding `days`.
    pub fn of(days: &[Weekday]) -> Self {
        Self(days.iter().fold(0, |m, d| m | bit(*d)))
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & bit(day) != 0
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

fn bit(day: Weekday) -> u8 {
    1 << (day.to_monday_zero_offset() as u8)
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// How often a schedule fires (Comet's frequencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// Once, at a local date and time.
    Once(DateTime),
    /// Every hour at this minute past the (local) hour.
    Hourly {
        /// 0..=59.
        minute: i8,
    },
    /// Every day at a local time.
    Daily(Time),
    /// On these weekdays at a local time.
    Weekly(Weekdays, Time),
    /// On this day of every month (the last day of shorter months) at a
    /// local time.
    Monthly {
        /// 1..=31.
        day: i8,
        /// Local time of day.
        time: Time,
    },
    /// Periodically, this long apart, counted from the schedule's anchor
    /// (at least one second).
    Every(SignedDuration),
}

impl FromStr for Frequency {
    type Err = SpecError;

    /// Parses a schedule specification.
    ///
    /// # Errors
    ///
    /// [`SpecError`] naming what is wrong, with examples.
    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let err =
            |reason: &str| SpecError(format!("invalid schedule {spec:?}: {reason} ({EXAMPLES})"));
        let words: Vec<&str> = spec.split_whitespace().collect();
        match words.as_slice() {
            ["once", at] => at
                .parse::<DateTime>()
                .map(Frequency::Once)
                .map_err(|_| err("`once` takes a local date and time like 2027-01-01T02:00")),
            ["hourly", minute] => {
                let m = minute.strip_prefix(':').unwrap_or(minute);
                match m.parse::<i8>() {
                    Ok(minute) if (0..60).contains(&minute) && m.len() <= 2 => {
                        Ok(Frequency::Hourly { minute })
                    }
                    _ => Err(err("`hourly` takes the minute past the hour, like :15")),
                }
            }
            ["daily", time] => parse_time(time).map(Frequency::Daily).map_err(|r| err(&r)),
            ["weekly", days, time] => {
                let mut set = Weekdays::default();
                for d in days.split(',') {
                    let name = d.trim().to_ascii_lowercase();
                    let Some((_, day)) = DAY_NAMES
                        .iter()
                        .find(|(short, day)| name == *short || name == full_name(*day))
                    else {
                        return Err(err(&format!(
                            "unknown weekday {d:?} (mon, tue, wed, thu, fri, sat, sun)"
                        )));
                    };
                    set.0 |= bit(*day);
                }
                let time = parse_time(time).map_err(|r| err(&r))?;
                Ok(Frequency::Weekly(set, time))
            }
            ["monthly", day, time] => {
                let day = match day.parse::<i8>() {
                    Ok(d) if (1..=31).contains(&d) => d,
                    _ => return Err(err("`monthly` takes a day of the month from 1 to 31")),
                };
                let time = parse_time(time).map_err(|r| err(&r))?;
                Ok(Frequency::Monthly { day, time })
            }
            ["every", period] => {
                let d: SignedDuration = period
                    .parse()
                    .map_err(|_| err("`every` takes a duration like 6h, 30m, 3s or 1h30m"))?;
                if d < SignedDuration::from_secs(1) || d.subsec_nanos() != 0 {
                    return Err(err("`every` needs a whole number of seconds, at least 1s"));
                }
                Ok(Frequency::Every(d))
            }
            _ => Err(err("unknown form")),
        }
    }
}

fn full_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

fn parse_time(text: &str) -> Result<Time, String> {
    let bad = || format!("{text:?} is not a time of day like 02:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m) = (
        h.parse::<i8>().map_err(|_| bad())?,
        m.parse::<i8>().map_err(|_| bad())?,
    );
    if h.to_string().len() > 2 || m.to_string().len() > 2 {
        return Err(bad());
    }
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

impl fmt::Display for Frequency {
    /// The canonical spelling, which parses back to the same frequency.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frequency::Once(at) => write!(f, "once {}", at.strftime("%Y-%m-%dT%H:%M")),
            Frequency::Hourly { minute } => write!(f, "hourly :{minute:02}"),
            Frequency::Daily(t) => write!(f, "daily {}", t.strftime("%H:%M")),
            Frequency::Weekly(days, t) => {
                let names: Vec<&str> = DAY_NAMES
                    .iter()
                    .filter(|(_, d)| days.contains(*d))
                    .map(|(n, _)| *n)
                    .collect();
                write!(f, "weekly {} {}", names.join(","), t.strftime("%H:%M"))
            }
            Frequency::Monthly { day, time } => {
                write!(f, "monthly {day} {}", time.strftime("%H:%M"))
            }
            Frequency::Every(d) => write!(f, "every {}s", d.as_secs()),
        }
    }
}

impl Frequency {
    /// The first time strictly after `after` at which the schedule fires,
    /// or `None` for a `once` schedule whose time has passed. `anchor` is
    /// when the schedule was created (the origin of `every`).
    pub fn next_after(
        &self,
        after: Timestamp,
        tz: &TimeZone,
        anchor: Timestamp,
    ) -> Option<Timestamp> {
        match *self {
            Frequency::Once(at) => Some(resolve(tz, at)).filter(|t| *t > after),
            Frequency::Hourly { minute } => next_hourly(minute, after, tz),
            Frequency::Daily(time) => next_on_days(after, tz, time, |_| true),
            Frequency::Weekly(days, time) => {
                if days.is_empty() {
                    return None;
                }
                next_on_days(after, tz, time, |d| days.contains(d.weekday()))
            }
            Frequency::Monthly { day, time } => next_monthly(day, time, after, tz),
            Frequency::Every(period) => {
                let (p, a, t) = (period.as_secs(), anchor.as_second(), after.as_second());
                let next = if t < a { a } else { a + ((t - a) / p + 1) * p };
                Timestamp::from_second(next).ok()
            }
        }
    }

    /// The latest time in `(since, now]` at which the schedule should have
    /// fired, if any: what a daemon that was not running records as
    /// `missed` when it starts.
    pub fn last_missed(
        &self,
        since: Timestamp,
        now: Timestamp,
        tz: &TimeZone,
        anchor: Timestamp,
    ) -> Option<Timestamp> {
        let mut last = None;
        let mut t = since;
        // Bounded: a daemon that was off for years reports one miss, found
        // by jumping close to `now` for periodic schedules first.
        if let Frequency::Every(p) = self {
            let back = now - *p;
            if back > t {
                t = back;
            }
        }
        for _ in 0..10_000 {
            match self.next_after(t, tz, anchor) {
                Some(n) if n <= now => {
                    last = Some(n);
                    t = n;
                }
                _ => break,
            }
        }
        last
    }
}

impl Frequency {
    /// The longest time the schedule can leave between two consecutive
    /// runs, in any time zone, with DST changes: an hour plus an offset
    /// shift for `hourly` (a skipped hour), a day plus a shift for `daily`
    /// (a fall-back night), the largest gap between its weekdays for
    /// `weekly`, 31 days for `monthly` (each plus a shift), the period for
    /// `every`. `None` for `once`, which does not repeat.
    pub fn max_gap(&self) -> Option<SignedDuration> {
        let day = SignedDuration::from_hours(24);
        match *self {
            Frequency::Once(_) => None,
            Frequency::Hourly { .. } => Some(SignedDuration::from_hours(1) + OFFSET_SHIFT),
            Frequency::Daily(_) => Some(day + OFFSET_SHIFT),
            Frequency::Weekly(days, _) => {
                let on: Vec<i32> = DAY_NAMES
                    .iter()
                    .filter(|(_, d)| days.contains(*d))
                    .map(|(_, d)| i32::from(d.to_monday_zero_offset()))
                    .collect();
                // The gaps between consecutive days, and round the week.
                let first = *on.first()?;
                let last = *on.last()?;
                let widest = on
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .chain([first + 7 - last])
                    .max()?;
                Some(day * widest + OFFSET_SHIFT)
            }
            Frequency::Monthly { .. } => Some(day * 31 + OFFSET_SHIFT),
            Frequency::Every(period) => Some(period),
        }
    }

    /// For `once`: the latest instant its local date and time can denote
    /// in any time zone (read in the westernmost one), by when it is due
    /// everywhere. `None` for the repeating frequencies.
    pub fn once_due_by(&self) -> Option<Timestamp> {
        match self {
            Frequency::Once(at) => TimeZone::UTC
                .to_timestamp(*at)
                .ok()
                .and_then(|t| t.checked_add(WESTMOST).ok()),
            _ => None,
        }
    }
}

/// A local date and time as an instant: compatible disambiguation (a gap
/// moves forward by its length, a fold takes the first occurrence).
fn resolve(tz: &TimeZone, dt: DateTime) -> Timestamp {
    match tz.to_ambiguous_timestamp(dt).compatible() {
        Ok(t) => t,
        // Only outside jiff's supported range (years beyond ±9999).
        Err(_) => Timestamp::MAX,
    }
}

/// Next firing of a civil-time schedule on the days `on` accepts: walks
/// local dates from the day before `after` (a zone's offset can move the
/// instant across a date line) until a resolved time is after `after`.
fn next_on_days(
    after: Timestamp,
    tz: &TimeZone,
    time: Time,
    on: impl Fn(Date) -> bool,
) -> Option<Timestamp> {
    let mut day = tz.to_datetime(after).date().yesterday().ok()?;
    for _ in 0..16 {
        if on(day) {
            let t = resolve(tz, day.to_datetime(time));
            if t > after {
                return Some(t);
            }
        }
        day = day.tomorrow().ok()?;
    }
    None
}

fn next_monthly(day: i8, time: Time, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let start = tz.to_datetime(after).date().first_of_month();
    let mut month = start.checked_sub(1.month()).ok()?;
    for _ in 0..4 {
        let d = month
            .with()
            .day(day.min(month.days_in_month()))
            .build()
            .ok()?;
        let t = resolve(tz, d.to_datetime(time));
        if t > after {
            return Some(t);
        }
        month = month.checked_add(1.month()).ok()?;
    }
    None
}

/// Next instant after `after` whose local time is `HH:minute:00` for some
/// hour: walks local civil hours, taking both occurrences of a repeated
/// hour and none of a skipped one.
fn next_hourly(minute: i8, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    let local = tz.to_datetime(after);
    let mut hour = local
        .with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_sub(2.hours())
        .ok()?;
    for _ in 0..8 {
        let dt = hour.with().minute(minute).build().ok()?;
        let amb = tz.to_ambiguous_timestamp(dt);
        let candidates: Vec<Timestamp> = match amb.offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                offset.to_timestamp(dt).ok().into_iter().collect()
            }
            AmbiguousOffset::Gap { .. } => Vec::new(),
            AmbiguousOffset::Fold {
                before,
                after: later,
            } => [before, later]
                .iter()
                .filter_map(|o| o.to_timestamp(dt).ok())
                .collect(),
        };
        if let Some(t) = candidates.into_iter().filter(|t| *t > after).min() {
            return Some(t);
        }
        hour = hour.checked_add(1.hour()).ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// POSIX rules, so the tests need no time-zone database.
    const ZONES: &[&str] = &[
        "EST5EDT,M3.2.0,M11.1.0",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "AEST-10AEDT,M10.1.0,M4.1.0/3",
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
        "IST-5:30",
        "<+0545>-5:45",
        "UTC0",
    ];

    fn zone(i: usize) -> TimeZone {
        TimeZone::posix(ZONES[i % ZONES.len()]).unwrap()
    }

    fn ny() -> TimeZone {
        zone(0)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn freq(s: &str) -> Frequency {
        s.parse().unwrap()
    }

    fn runs(f: &Frequency, from: Timestamp, tz: &TimeZone, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut t = from;
        for _ in 0..n {
            match f.next_after(t, tz, from) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for spec in [
            "once 2027-01-01T02:00",
            "hourly :15",
            "daily 02:00",
            "weekly mon,thu 02:00",
            "monthly 1 02:00",
            "every 21600s",
            "every 3s",
        ] {
            assert_eq!(freq(spec).to_string(), spec);
        }
        assert_eq!(
            freq("every 6h"),
            Frequency::Every(SignedDuration::from_hours(6))
        );
        assert_eq!(
            freq("weekly Thursday,MON 2:05").to_string(),
            "weekly mon,thu 02:05"
        );
        assert_eq!(freq("hourly 5"), Frequency::Hourly { minute: 5 });
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("", "unknown form"),
            ("daily", "unknown form"),
            ("daily 25:00", "not a time of day"),
            ("daily 2", "not a time of day"),
            ("hourly :60", "minute past the hour"),
            ("weekly xyz 02:00", "unknown weekday"),
            ("monthly 0 02:00", "from 1 to 31"),
            ("monthly 32 02:00", "from 1 to 31"),
            ("every 0s", "at least 1s"),
            ("every 1.5s", "whole number of seconds"),
            ("every soon", "duration like"),
            ("once tomorrow", "local date and time"),
        ] {
            let Err(SpecError(e)) = spec.parse::<Frequency>() else {
                panic!("{spec:?} parsed");
            };
            assert!(e.contains(says), "{spec:?}: {e}");
            assert!(e.contains("daily 02:00"), "examples in {e}");
        }
    }

    #[test]
    fn a_spec_is_a_frequency_and_maybe_run_missed() {
        let s: Spec = "daily 2:00 run-missed".parse().unwrap();
        assert_eq!(s.frequency, freq("daily 02:00"));
        assert!(s.run_missed);
        assert_eq!(s.to_string(), "daily 02:00 run-missed");
        let s: Spec = "every 6h".parse().unwrap();
        assert!(!s.run_missed);
        assert_eq!(s.to_string(), "every 21600s");
        for bad in ["run-missed", "daily run-missed", "daily 02:00run-missed"] {
            assert!(bad.parse::<Spec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_longest_gaps_are_as_documented() {
        let h = |n| Some(SignedDuration::from_hours(n));
        assert_eq!(freq("hourly :15").max_gap(), h(2));
        assert_eq!(freq("daily 02:00").max_gap(), h(25));
        assert_eq!(freq("weekly mon,thu 02:00").max_gap(), h(4 * 24 + 1));
        assert_eq!(freq("weekly sun 02:00").max_gap(), h(7 * 24 + 1));
        assert_eq!(freq("monthly 1 02:00").max_gap(), h(31 * 24 + 1));
        assert_eq!(
            freq("every 3s").max_gap(),
            Some(SignedDuration::from_secs(3))
        );
        let once = freq("once 2027-01-01T02:00");
        assert_eq!(once.max_gap(), None);
        assert_eq!(once.once_due_by(), Some(ts("2027-01-01T14:00Z")));
        assert_eq!(freq("daily 02:00").once_due_by(), None);
    }

    #[test]
    fn a_daily_time_in_the_spring_gap_runs_after_the_jump_once() {
        // 2026-03-08: New York clocks jump from 02:00 EST to 03:00 EDT.
        let f = freq("daily 02:30");
        let r = runs(&f, ts("2026-03-06T12:00Z"), &ny(), 3);
        assert_eq!(
            r,
            [
                ts("2026-03-07T07:30Z"),
                ts("2026-03-08T07:30Z"),
                ts("2026-03-09T06:30Z")
            ],
            "02:30 EST, then 03:30 EDT on the day of the jump, then 02:30 EDT"
        );
    }

    #[test]
    fn a_daily_time_in_the_autumn_fold_runs_once() {
        // 2026-11-01: New York clocks go back from 02:00 EDT to 01:00 EST.
        let f = freq("daily 01:30");
        let r = runs(&f, ts("2026-10-31T12:00Z"), &ny(), 2);
        assert_eq!(r, [ts("2026-11-01T05:30Z"), ts("2026-11-02T06:30Z")]);
    }

    #[test]
    fn hourly_fires_in_both_repeated_hours_and_not_in_the_skipped_one() {
        let f = freq("hourly :15");
        let back = runs(&f, ts("2026-11-01T04:00Z"), &ny(), 4);
        assert_eq!(
            back,
            [
                ts("2026-11-01T04:15Z"), // 00:15 EDT
                ts("2026-11-01T05:15Z"), // 01:15 EDT
                ts("2026-11-01T06:15Z"), // 01:15 EST
                ts("2026-11-01T07:15Z"), // 02:15 EST
            ]
        );
        let fwd = runs(&f, ts("2026-03-08T06:00Z"), &ny(), 2);
        // 01:15 EST, then 03:15 EDT: one real hour later, 02:15 never existed.
        assert_eq!(fwd, [ts("2026-03-08T06:15Z"), ts("2026-03-08T07:15Z")]);
    }

    #[test]
    fn monthly_on_the_31st_runs_on_the_last_day_of_short_months() {
        let f = freq("monthly 31 02:00");
        let r = runs(&f, ts("2027-01-15T00:00Z"), &TimeZone::UTC, 3);
        assert_eq!(
            r,
            [
                ts("2027-01-31T02:00Z"),
                ts("2027-02-28T02:00Z"),
                ts("2027-03-31T02:00Z")
            ]
        );
    }

    #[test]
    fn once_fires_once() {
        let f = freq("once 2027-01-01T02:00");
        let before = ts("2026-12-31T00:00Z");
        assert_eq!(
            f.next_after(before, &TimeZone::UTC, before),
            Some(ts("2027-01-01T02:00Z"))
        );
        assert_eq!(
            f.next_after(ts("2027-01-01T02:00Z"), &TimeZone::UTC, before),
            None
        );
    }

    #[test]
    fn a_daemon_that_was_off_reports_the_last_missed_run() {
        let f = freq("daily 02:00");
        let tz = TimeZone::UTC;
        let (since, now) = (ts("2027-01-01T03:00Z"), ts("2027-01-04T01:00Z"));
        assert_eq!(
            f.last_missed(since, now, &tz, since),
            Some(ts("2027-01-03T02:00Z"))
        );
        assert_eq!(f.last_missed(now, now, &tz, since), None);
        // Years off with a 3-second period: one answer, found at once.
        let every = freq("every 3s");
        let anchor = ts("2020-01-01T00:00:01Z");
        assert_eq!(
            every.last_missed(anchor, ts("2027-01-01T00:00:00Z"), &tz, anchor),
            Some(ts("2026-12-31T23:59:58Z"))
        );
    }

    fn start() -> impl Strategy<Value = Timestamp> {
        // 2020 to 2035.
        (1_577_836_800i64..2_051_222_400).prop_map(|s| Timestamp::from_second(s).unwrap())
    }

    fn time() -> impl Strategy<Value = Time> {
        (0i8..24, 0i8..60).prop_map(|(h, m)| Time::new(h, m, 0, 0).unwrap())
    }

    fn frequency() -> impl Strategy<Value = Frequency> {
        prop_oneof![
            (0i8..60).prop_map(|minute| Frequency::Hourly { minute }),
            time().prop_map(Frequency::Daily),
            (1u8..128, time()).prop_map(|(m, t)| Frequency::Weekly(Weekdays(m), t)),
            (1i8..=31, time()).prop_map(|(day, time)| Frequency::Monthly { day, time }),
            (1i64..200_000).prop_map(|s| Frequency::Every(SignedDuration::from_secs(s))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The next run is after `after`, and nothing fires in between:
        /// asking from any earlier point in the gap gives the same run.
        #[test]
        fn next_is_the_first_run_after(f in frequency(), z in 0usize..7, from in start(), frac in 0.0f64..1.0) {
            let tz = zone(z);
            let next = f.next_after(from, &tz, from).unwrap();
            prop_assert!(next > from);
            let gap = (next - from).as_secs();
            let mid = from + SignedDuration::from_secs((gap as f64 * frac) as i64);
            prop_assert_eq!(f.next_after(mid.min(next - SignedDuration::from_secs(1)), &tz, from), Some(next));
            prop_assert_eq!(f.to_string().parse::<Frequency>().unwrap(), f);
        }

        /// A daily schedule fires exactly once on every local date, across
        /// DST changes in either direction, at its time or (in a spring
        /// gap) just after the jump.
        #[test]
        fn daily_runs_once_every_local_day(t in time(), z in 0usize..7, from in start()) {
            let tz = zone(z);
            let r = runs(&Frequency::Daily(t), from, &tz, 400);
            prop_assert_eq!(r.len(), 400);
            let dates: Vec<Date> = r.iter().map(|x| tz.to_datetime(*x).date()).collect();
            for w in dates.windows(2) {
                prop_assert_eq!(w[0].tomorrow().unwrap(), w[1]);
            }
            for x in &r {
                let local = tz.to_datetime(*x).time();
                let late = (local.hour() as i32 * 60 + local.minute() as i32)
                    - (t.hour() as i32 * 60 + t.minute() as i32);
                prop_assert!(late == 0 || (late > 0 && late <= 60), "{} at {}", x, local);
            }
        }

        /// Weekly and monthly runs land on every qualifying local date in
        /// turn, none skipped.
        #[test]
        fn weekly_and_monthly_skip_no_date(mask in 1u8..128, day in 1i8..=31, t in time(), z in 0usize..7, from in start()) {
            let tz = zone(z);
            let days = Weekdays(mask);
            let r = runs(&Frequency::Weekly(days, t), from, &tz, 60);
            let dates: Vec<Date> = r.iter().map(|x| tz.to_datetime(*x).date()).collect();
            for w in dates.windows(2) {
                let mut d = w[0].tomorrow().unwrap();
                while !days.contains(d.weekday()) {
                    d = d.tomorrow().unwrap();
                }
                prop_assert_eq!(d, w[1]);
            }
            let r = runs(&Frequency::Monthly { day, time: t }, from, &tz, 30);
            let dates: Vec<Date> = r.iter().map(|x| tz.to_datetime(*x).date()).collect();
            for w in dates.windows(2) {
                let next_month = w[0].first_of_month().checked_add(1.month()).unwrap();
                prop_assert_eq!(w[1].first_of_month(), next_month);
                prop_assert_eq!(w[1].day(), day.min(w[1].days_in_month()));
            }
        }

        /// Hourly runs are one real hour apart in zones whose offsets and
        /// DST shifts are whole hours, and always at the given local minute.
        #[test]
        fn hourly_runs_every_real_hour(minute in 0i8..60, z in 0usize..7, from in start()) {
            let tz = zone(z);
            let r = runs(&Frequency::Hourly { minute }, from, &tz, 30 * 24);
            for x in &r {
                prop_assert_eq!(tz.to_datetime(*x).minute(), minute);
            }
            if z != 3 {
                for w in r.windows(2) {
                    prop_assert_eq!((w[1] - w[0]).as_secs(), 3600);
                }
            }
        }

        /// No two consecutive runs are further apart than `max_gap`, in
        /// any zone, across DST changes; and a `once` time is never later
        /// than `once_due_by` in any zone.
        #[test]
        fn runs_are_never_further_apart_than_the_longest_gap(f in frequency(), z in 0usize..7, from in start()) {
            let tz = zone(z);
            let gap = f.max_gap().unwrap();
            let r = runs(&f, from, &tz, 200);
            for w in r.windows(2) {
                prop_assert!(w[1] - w[0] <= gap, "{} then {} in zone {}", w[0], w[1], ZONES[z % ZONES.len()]);
            }
            let at = tz.to_datetime(from);
            let once = Frequency::Once(at);
            prop_assert!(once.next_after(from - SignedDuration::from_secs(1), &tz, from).unwrap() <= once.once_due_by().unwrap());
        }

        /// Periodic runs keep their period and stay aligned to the anchor.
        #[test]
        fn every_keeps_its_period(p in 1i64..100_000, anchor in start(), offset in 0i64..10_000_000) {
            let f = Frequency::Every(SignedDuration::from_secs(p));
            let from = anchor + SignedDuration::from_secs(offset);
            let mut t = from;
            for _ in 0..20 {
                let n = f.next_after(t, &TimeZone::UTC, anchor).unwrap();
                prop_assert!(n > t && (n - t).as_secs() <= p);
                prop_assert_eq!((n - anchor).as_secs() % p, 0);
                t = n;
            }
        }
    }
}
