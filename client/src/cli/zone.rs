//! The time zone of human output (listings, job logs, `ls -l`) and of
//! retention's calendar periods (`forget --keep-daily`, the retention
//! pass): `--time-zone` or `CAIRN_TZ`, else the system's. Set once at start
//! ([`set`]), before any thread; `--json` times stay RFC 3339 UTC.

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use jiff::tz::TimeZone;

static ZONE: OnceLock<TimeZone> = OnceLock::new();

/// A zone by name: `UTC`, an IANA name (`Europe/Berlin`, from the system's
/// time zone database) or a POSIX TZ string (`EST5EDT,M3.2.0,M11.1.0`,
/// which needs no database).
pub fn parse(name: &str) -> Result<TimeZone> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name)
        .or_else(|_| TimeZone::posix(name))
        .map_err(|_| {
            anyhow!(
                "{name:?} is neither a zone of the time zone database (e.g. Europe/Berlin) nor \
                 a POSIX TZ string (e.g. EST5EDT,M3.2.0,M11.1.0)"
            )
        })
}

/// `--time-zone`'s (and `CAIRN_TZ`'s) value parser: the name when it is a
/// zone [`parse`] takes, else a usage error (exit 2) naming the value.
pub fn name(name: &str) -> Result<String> {
    parse(name).map(|_| name.to_owned())
}

/// Makes `zone` the zone of this process (the first call wins).
pub fn set(zone: TimeZone) {
    let _ = ZONE.set(zone);
}

/// The zone in force: the one [`set`], else the system's.
pub fn get() -> TimeZone {
    ZONE.get().cloned().unwrap_or_else(TimeZone::system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_posix_strings_and_utc_parse_and_nonsense_is_refused() {
        assert_eq!(parse("utc").unwrap(), TimeZone::UTC);
        let ny = parse("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let t: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(t.to_zoned_datetime(ny).offset(), jiff::tz::offset(-4));
        assert!(parse("Not/A_Zone").is_err());
    }
}
