//! Forgetting snapshots: by id, or all those a [`KeepPolicy`] does not
//! keep. Only records go; [`crate::prune`] then frees the data no snapshot
//! uses any more.

use std::collections::BTreeMap;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::SnapshotId;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::JobOutcome;
use crate::retention::{self, KeepPolicy};
use crate::select::Filter;
use crate::snapshot::SnapshotRecord;
use crate::vault::Vault;

/// Which snapshots to forget.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These (ids or unique id prefixes).
    Ids(Vec<String>),
    /// Those the policy does not keep, in each group of snapshots.
    Policy(KeepPolicy),
}

/// What `forget` decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    /// Whether nothing was changed (`--dry-run`).
    pub dry_run: bool,
    /// Snapshots kept.
    pub kept: Vec<SnapshotId>,
    /// Snapshots forgotten (or that would be, with `dry_run`).
    pub forgotten: Vec<SnapshotId>,
}

impl JobOutcome for ForgetReport {
    /// A retention job's end: the snapshots kept and forgotten, in its log.
    fn job_end(&self) -> FinishJob {
        let ids = |v: &[SnapshotId]| {
            v.iter()
                .map(|i| i.to_hex()[..8].to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        FinishJob {
            status: JobStatus::Succeeded,
            files: 0,
            bytes: 0,
            error: None,
            log: format!(
                "{}kept {} snapshot(s): {}\nforgot {} snapshot(s): {}",
                if self.dry_run { "dry run: " } else { "" },
                self.kept.len(),
                ids(&self.kept),
                self.forgotten.len(),
                ids(&self.forgotten)
            ),
        }
    }
}

/// Forgets the snapshots `selection` names (with `dry_run`, only says
/// which); a policy applies to the snapshots `within` keeps only (ids name
/// their snapshot whatever it says).
///
/// # Errors
///
/// [`Error::Invalid`] for an empty selection; [`Error::NotFound`] for an id
/// that names no snapshot or several; [`Error::Format`] for a record whose
/// time cannot be read.
pub fn run(
    vault: &Vault,
    selection: &Selection,
    within: &Filter,
    tz: &TimeZone,
    dry_run: bool,
) -> Result<ForgetReport> {
    let mut report = match selection {
        Selection::Ids(ids) if !ids.is_empty() => by_id(vault, ids, dry_run)?,
        Selection::Policy(policy) if !policy.is_empty() => {
            by_policy(vault, policy, within, tz, dry_run)?
        }
        _ => {
            return Err(Error::Invalid(
                "nothing to forget: name snapshots or give a --keep-… policy".into(),
            ))
        }
    };
    report.dry_run = dry_run;
    Ok(report)
}

/// Forgets each snapshot `specs` names, in order.
fn by_id(vault: &Vault, specs: &[String], dry_run: bool) -> Result<ForgetReport> {
    let mut report = ForgetReport::default();
    for spec in specs {
        let snap = vault.find_snapshot(spec)?;
        if !dry_run {
            vault.forget_snapshot(snap.id)?;
        }
        report.forgotten.push(snap.id);
    }
    Ok(report)
}

/// Applies `policy` to each group of snapshots (same device, and same item
/// or, without one, same paths) and removes the records it does not keep;
/// its hours, days, weeks, months and years are those of `tz`.
fn by_policy(
    vault: &Vault,
    policy: &KeepPolicy,
    within: &Filter,
    tz: &TimeZone,
    dry_run: bool,
) -> Result<ForgetReport> {
    by_ranges(
        vault,
        &policy.ranges(),
        within,
        Timestamp::now(),
        tz,
        dry_run,
    )
}

/// Applies `ranges` at `now` in `tz` to each group of snapshots (same
/// device, and same item or, without one, same paths) among those `within`
/// keeps, and removes the records they do not keep.
///
/// # Errors
///
/// As [`run`].
pub fn by_ranges(
    vault: &Vault,
    ranges: &[retention::Range],
    within: &Filter,
    now: Timestamp,
    tz: &TimeZone,
    dry_run: bool,
) -> Result<ForgetReport> {
    let mut groups: BTreeMap<(String, String), Vec<SnapshotRecord>> = BTreeMap::new();
    for snap in vault.snapshots_in(within)? {
        let what = match &snap.item {
            Some(item) => format!("item {item}"),
            None => snap.open_meta(vault.keys())?.paths.join("\n"),
        };
        groups
            .entry((snap.device.clone(), what))
            .or_default()
            .push(snap);
    }
    let mut report = ForgetReport {
        dry_run,
        ..ForgetReport::default()
    };
    for snaps in groups.values() {
        let times = snaps
            .iter()
            .map(start_time)
            .collect::<Result<Vec<Timestamp>>>()?;
        let keep = retention::select(&times, ranges, now, tz);
        for (snap, keep) in snaps.iter().zip(keep) {
            if keep {
                report.kept.push(snap.id);
            } else {
                report.forgotten.push(snap.id);
            }
        }
    }
    if !dry_run {
        for id in &report.forgotten {
            vault.forget_snapshot(*id)?;
        }
    }
    Ok(report)
}

/// A snapshot's start time, for the retention rules.
///
/// # Errors
///
/// [`Error::Format`] when the time is not RFC 3339: a policy must not place
/// a snapshot it cannot date (as the oldest, say).
fn start_time(snap: &SnapshotRecord) -> Result<Timestamp> {
    snap.time.parse::<Timestamp>().map_err(|_| {
        Error::Format(format!(
            "snapshot {}: start time {:?} is not an RFC 3339 time",
            snap.short_id(),
            snap.time
        ))
    })
}

#[cfg(test)]
mod tests {
    use cairn_proto::ChunkId;

    use super::*;
    use crate::snapshot::SnapshotMeta;
    use crate::vault::memory::testing::small_vault;

    /// Commits a format-1 record (no sealed bound) starting at `time`.
    fn commit(vault: &Vault, time: &str) -> SnapshotId {
        let id = SnapshotId::random();
        let record = SnapshotRecord {
            format: 1,
            id,
            vault: vault.config().vault_id,
            device: "d".into(),
            item: Some("i".into()),
            time: time.into(),
            finished: time.into(),
            root: ChunkId([1; 32]),
            stats: Default::default(),
            meta: SnapshotMeta::default()
                .seal(vault.keys(), vault.config().vault_id, id)
                .unwrap(),
        };
        vault.commit_snapshot(&record, None).unwrap();
        id
    }

    #[test]
    fn a_policy_keeps_the_newest_and_forgets_the_rest() {
        let vault = small_vault();
        let old = commit(&vault, "2026-01-01T00:00:00.000000000Z");
        let new = commit(&vault, "2026-01-02T00:00:00.000000000Z");
        let keep_last = Selection::Policy(KeepPolicy {
            last: Some(1),
            ..KeepPolicy::default()
        });
        let dry = run(&vault, &keep_last, &Filter::default(), &TimeZone::UTC, true).unwrap();
        assert_eq!(
            (dry.kept.clone(), dry.forgotten.clone()),
            (vec![new], vec![old])
        );
        assert!(dry.dry_run);
        assert_eq!(vault.snapshots().unwrap().len(), 2);
        let done = run(
            &vault,
            &keep_last,
            &Filter::default(),
            &TimeZone::UTC,
            false,
        )
        .unwrap();
        assert!(!done.dry_run);
        assert_eq!(vault.snapshots().unwrap().len(), 1);
    }

    #[test]
    fn an_unparsable_time_is_an_error_not_the_epoch() {
        let vault = small_vault();
        commit(&vault, "2026-01-01T00:00:00.000000000Z");
        commit(&vault, "yesterday");
        let policy = Selection::Policy(KeepPolicy {
            last: Some(1),
            ..KeepPolicy::default()
        });
        assert!(matches!(
            run(&vault, &policy, &Filter::default(), &TimeZone::UTC, false),
            Err(Error::Format(m)) if m.contains("\"yesterday\"")
        ));
        assert_eq!(vault.snapshots().unwrap().len(), 2, "nothing was forgotten");
    }

    #[test]
    fn an_empty_selection_or_an_unknown_id_is_refused() {
        let vault = small_vault();
        commit(&vault, "2026-01-01T00:00:00.000000000Z");
        for empty in [
            Selection::Ids(vec![]),
            Selection::Policy(KeepPolicy::default()),
        ] {
            assert!(matches!(
                run(&vault, &empty, &Filter::default(), &TimeZone::UTC, false),
                Err(Error::Invalid(m)) if m.contains("nothing to forget")
            ));
        }
        assert!(matches!(
            run(
                &vault,
                &Selection::Ids(vec!["ffff".into()]),
                &Filter::default(),
                &TimeZone::UTC,
                false
            ),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn keep_daily_counts_the_days_of_the_given_zone() {
        // 23:30 and 00:30 UTC: two UTC days, one day in New York (19:30 and
        // 20:30 the evening before), so New York keeps one of the two.
        let vault = small_vault();
        commit(&vault, "2026-07-01T23:30:00Z");
        let late = commit(&vault, "2026-07-02T00:30:00Z");
        let daily = Selection::Policy(KeepPolicy {
            daily: Some(5),
            ..KeepPolicy::default()
        });
        let ny = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let utc = run(&vault, &daily, &Filter::default(), &TimeZone::UTC, true).unwrap();
        assert_eq!((utc.kept.len(), utc.forgotten.len()), (2, 0));
        let local = run(&vault, &daily, &Filter::default(), &ny, true).unwrap();
        assert_eq!(local.kept, vec![late]);
        assert_eq!(local.forgotten.len(), 1);
    }
}
