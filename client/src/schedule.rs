//! Schedules on the device: the grammar and next-run arithmetic are
//! `cairn_proto::schedule`'s (the node reads the same stored text for its
//! overdue gauge); here are what only the device needs: durations as users
//! write them and the stable per-device random delay of each run.

use jiff::{SignedDuration, Timestamp};

pub use cairn_proto::schedule::{Frequency, Spec, SpecError, Weekdays};

use crate::error::Error;

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::Invalid(e.0)
    }
}

/// A duration as users write it: `90s`, `30m`, `6h`, `1h30m`, and whole
/// days or weeks (`7d`, `2w`, taken as 24 h and 7 × 24 h).
///
/// # Errors
///
/// [`Error::Invalid`] for anything else, or a negative duration.
pub fn parse_duration(text: &str) -> Result<SignedDuration, Error> {
    let t = text.trim();
    let err = || {
        Error::Invalid(format!(
            "invalid duration {text:?}: write it like 90s, 30m, 6h, 1h30m, 7d or 2w"
        ))
    };
    let days = |n: &str, per: i64| {
        n.parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(per))
            .map(SignedDuration::from_secs)
    };
    let d = if let Some(n) = t.strip_suffix('d') {
        days(n, 86_400)
    } else if let Some(n) = t.strip_suffix('w') {
        days(n, 7 * 86_400)
    } else {
        t.parse::<SignedDuration>().ok()
    };
    d.filter(|d| !d.is_negative()).ok_or_else(err)
}

/// A stable delay in `[0, max)` for one device's run of one schedule, so a
/// fleet with the same schedule spreads its start times (`--random-delay`)
/// and a restarted daemon picks the same delay for the same run.
pub fn random_delay(seed: &[u8], fire: Timestamp, max: SignedDuration) -> SignedDuration {
    let max_s = max.as_secs();
    if max_s <= 0 {
        return SignedDuration::ZERO;
    }
    let mut h = blake3::Hasher::new();
    h.update(seed);
    h.update(&fire.as_second().to_le_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&h.finalize().as_bytes()[..8]);
    SignedDuration::from_secs((u64::from_le_bytes(n) % max_s as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_users_write_them() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90s").unwrap(), 90);
        assert_eq!(secs("30m").unwrap(), 1800);
        assert_eq!(secs("1h30m").unwrap(), 5400);
        assert_eq!(secs("7d").unwrap(), 7 * 86_400);
        assert_eq!(secs("2w").unwrap(), 14 * 86_400);
        for bad in ["", "soon", "-5s", "xd", "1.5d"] {
            assert!(
                matches!(parse_duration(bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn random_delays_are_stable_bounded_and_spread() {
        let max = SignedDuration::from_hours(5);
        let t = "2027-01-01T02:00Z".parse().unwrap();
        let a = random_delay(b"device-a", t, max);
        assert_eq!(a, random_delay(b"device-a", t, max));
        let delays: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| random_delay(format!("device-{i}").as_bytes(), t, max).as_secs())
            .collect();
        assert!(delays.iter().all(|d| (0..5 * 3600).contains(d)));
        assert!(delays.len() > 45, "spread: {delays:?}");
        assert_eq!(
            random_delay(b"x", t, SignedDuration::ZERO),
            SignedDuration::ZERO
        );
    }
}
