//! The storage role's safety decisions, as pure functions of the state
//! they read: no IO, no clock, no async, so each is tested on its own.
//!
//! - [`sweep_cutoff`]: whether a prune may delete a live vault's chunks
//!   now, and up to which last-touched time (`docs/FORMATS.md`, "Garbage
//!   collection of live vaults");
//! - [`doomed_vaults`]: which deleted vaults' chunks the garbage collector
//!   removes (only those missing from the state in two passes in a row);
//! - [`scrub_split`]: which damaged copies the scrub rewrites (chunks this
//!   node owns) and which it drops (strays).

use std::collections::HashSet;

use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::ChunkKey;
use cairn_consensus::event::JobKind;
use cairn_consensus::state::{Job, Map};
use cairn_proto::{DeviceId, JobId, VaultId};

/// How far the clocks of two nodes may disagree: the cutoff of a sweep is
/// the prune job's start minus this, and a backup that finished up to this
/// long before the prune started still counts as overlapping it.
pub use cairn_consensus::apply::CLOCK_SKEW_MS;

/// Why a prune's sweep may not run now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepRefusal {
    /// `job` is not a running prune job of the asking device on the vault.
    #[error("job {job} is not a running prune job of this device on vault {vault}")]
    NotRunningPrune {
        /// The job the sweep named.
        job: JobId,
        /// The vault.
        vault: VaultId,
    },
    /// A backup job on the vault has not finished: it may yet commit a
    /// snapshot that needs chunks the prune did not mark.
    #[error("backup job {backup} is running on vault {vault}; prune again once it has finished")]
    BackupRunning {
        /// The running backup.
        backup: JobId,
        /// The vault.
        vault: VaultId,
    },
    /// A backup job on the vault finished after the prune started (within
    /// [`CLOCK_SKEW_MS`]), so its snapshot may be missing from the marked set.
    #[error(
        "backup job {backup} on vault {vault} finished after prune job {job} started, so its \
         snapshot may be missing from the marked set; start a new prune"
    )]
    BackupFinishedAfter {
        /// The backup.
        backup: JobId,
        /// The vault.
        vault: VaultId,
        /// The prune job.
        job: JobId,
    },
}

/// The cutoff (Unix seconds) of a sweep of `vault` by `device`'s prune
/// `job`: copies last touched before it may be deleted. Refused while a
/// backup job on the vault is unfinished — whatever its age: starting the
/// prune ended (in `apply`) every job of the account that was 24 h old by
/// then, so one still unfinished may yet commit — or finished after the
/// prune started.
///
/// # Errors
///
/// The [`SweepRefusal`].
pub fn sweep_cutoff(
    jobs: &Map<JobId, Job>,
    device: DeviceId,
    vault: VaultId,
    job: JobId,
) -> Result<u64, SweepRefusal> {
    let prune = jobs
        .get(&job)
        .filter(|j| {
            j.device == device
                && j.kind == JobKind::Prune
                && j.vault == Some(vault)
                && j.finished.is_none()
        })
        .ok_or(SweepRefusal::NotRunningPrune { job, vault })?;
    let started = prune.started_at.0;
    for j in jobs.values() {
        if j.kind != JobKind::Backup || j.vault != Some(vault) {
            continue;
        }
        match &j.finished {
            None => {
                return Err(SweepRefusal::BackupRunning {
                    backup: j.id,
                    vault,
                })
            }
            Some(end) if end.at.0.saturating_add(CLOCK_SKEW_MS) >= started => {
                return Err(SweepRefusal::BackupFinishedAfter {
                    backup: j.id,
                    vault,
                    job,
                });
            }
            Some(_) => {}
        }
    }
    Ok(started.saturating_sub(CLOCK_SKEW_MS) / 1000)
}

/// One pass of the deleted-vault garbage collector: of the vaults this
/// node `stored`, those the state no longer has (`live` misses them) are
/// this pass's suspects; the ones that were suspects of the previous pass
/// too are doomed (their chunks go now). Two passes in a row, each after a
/// linearizable read point, keep a vault created on another node between
/// a write and this node's apply from losing its chunks.
///
/// Returns `(doomed, suspects)`: the suspects are the next pass's `suspects`.
pub fn doomed_vaults(
    stored: impl IntoIterator<Item = VaultId>,
    live: &HashSet<VaultId>,
    suspects: &HashSet<VaultId>,
) -> (Vec<VaultId>, HashSet<VaultId>) {
    let gone: HashSet<VaultId> = stored.into_iter().filter(|v| !live.contains(v)).collect();
    let mut doomed: Vec<VaultId> = gone.intersection(suspects).copied().collect();
    doomed.sort_unstable();
    (doomed, gone)
}

/// The scrub's split of `damaged` copies on node `me`: those of chunks it
/// owns under `placement` (rewritten from a good copy elsewhere by a
/// verified read), and strays (deleted: their owners hold the chunk).
pub fn scrub_split(
    damaged: &[ChunkKey],
    placement: &Placement,
    me: NodeId,
) -> (Vec<ChunkKey>, Vec<ChunkKey>) {
    damaged
        .iter()
        .partition(|k| placement.owners(k).contains(&me))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_consensus::event::JobStatus;
    use cairn_consensus::state::JobEnd;
    use cairn_consensus::UnixMillis;
    use cairn_proto::{AccountId, ChunkId};

    use super::*;

    const DEVICE: DeviceId = DeviceId([1; 16]);
    const VAULT: VaultId = VaultId([2; 16]);
    const PRUNE: JobId = JobId([3; 16]);
    /// When the prune started, ms.
    const START: u64 = 100 * 24 * 3600 * 1000;

    fn job(id: u8, kind: JobKind, vault: VaultId, started: u64, end: Option<u64>) -> Job {
        Job {
            id: JobId([id; 16]),
            account: AccountId([9; 16]),
            device: DEVICE,
            vault: Some(vault),
            kind,
            started_at: UnixMillis(started),
            finished: end.map(|at| JobEnd {
                status: JobStatus::Succeeded,
                log: String::new(),
                at: UnixMillis(at),
                files: 0,
                bytes: 0,
                error: None,
            }),
            item: None,
            schedule: None,
            last_seen: UnixMillis(started),
            revived: false,
        }
    }

    fn jobs(list: Vec<Job>) -> Map<JobId, Job> {
        list.into_iter().map(|j| (j.id, j)).collect()
    }

    fn prune() -> Job {
        job(3, JobKind::Prune, VAULT, START, None)
    }

    #[test]
    fn the_cutoff_is_the_prune_start_minus_the_clock_skew_in_seconds() {
        let old_backup = job(
            4,
            JobKind::Backup,
            VAULT,
            1,
            Some(START - CLOCK_SKEW_MS - 1),
        );
        let other_vault = job(5, JobKind::Backup, VaultId([7; 16]), START, None);
        let got = sweep_cutoff(
            &jobs(vec![prune(), old_backup, other_vault]),
            DEVICE,
            VAULT,
            PRUNE,
        );
        assert_eq!(got, Ok((START - CLOCK_SKEW_MS) / 1000));
    }

    #[test]
    fn only_a_running_prune_of_the_asking_device_on_the_vault_may_sweep() {
        let refused = Err(SweepRefusal::NotRunningPrune {
            job: PRUNE,
            vault: VAULT,
        });
        assert_eq!(sweep_cutoff(&jobs(vec![]), DEVICE, VAULT, PRUNE), refused);
        let mut finished = prune();
        finished.finished = job(0, JobKind::Prune, VAULT, 0, Some(START + 1)).finished;
        assert_eq!(
            sweep_cutoff(&jobs(vec![finished]), DEVICE, VAULT, PRUNE),
            refused
        );
        assert_eq!(
            sweep_cutoff(&jobs(vec![prune()]), DeviceId([8; 16]), VAULT, PRUNE),
            refused
        );
        let mut backup = prune();
        backup.kind = JobKind::Backup;
        assert_eq!(
            sweep_cutoff(&jobs(vec![backup]), DEVICE, VAULT, PRUNE),
            refused
        );
        let elsewhere = Err(SweepRefusal::NotRunningPrune {
            job: PRUNE,
            vault: VaultId([7; 16]),
        });
        assert_eq!(
            sweep_cutoff(&jobs(vec![prune()]), DEVICE, VaultId([7; 16]), PRUNE),
            elsewhere
        );
    }

    #[test]
    fn an_unfinished_backup_blocks_whatever_its_age() {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        for started in [START - 1, START - DAY_MS, START - 30 * DAY_MS, 0] {
            let backup = job(4, JobKind::Backup, VAULT, started, None);
            assert_eq!(
                sweep_cutoff(&jobs(vec![prune(), backup]), DEVICE, VAULT, PRUNE),
                Err(SweepRefusal::BackupRunning {
                    backup: JobId([4; 16]),
                    vault: VAULT
                }),
                "a backup started at {started}"
            );
        }
    }

    #[test]
    fn a_backup_that_finished_after_the_prune_started_blocks_within_the_clock_skew() {
        for end in [START + 1, START, START - CLOCK_SKEW_MS] {
            let backup = job(4, JobKind::Backup, VAULT, 1, Some(end));
            assert_eq!(
                sweep_cutoff(&jobs(vec![prune(), backup]), DEVICE, VAULT, PRUNE),
                Err(SweepRefusal::BackupFinishedAfter {
                    backup: JobId([4; 16]),
                    vault: VAULT,
                    job: PRUNE
                }),
                "a backup that ended at {end}"
            );
        }
        let before = job(
            4,
            JobKind::Backup,
            VAULT,
            1,
            Some(START - CLOCK_SKEW_MS - 1),
        );
        assert!(sweep_cutoff(&jobs(vec![prune(), before]), DEVICE, VAULT, PRUNE).is_ok());
    }

    #[test]
    fn a_deleted_vault_is_doomed_only_in_its_second_pass() {
        let v = |i: u8| VaultId([i; 16]);
        let live = HashSet::from([v(1)]);
        let (doomed, suspects) = doomed_vaults([v(1), v(2)], &live, &HashSet::new());
        assert!(doomed.is_empty(), "first pass: only suspected");
        assert_eq!(suspects, HashSet::from([v(2)]));
        let (doomed, suspects) = doomed_vaults([v(1), v(2), v(3)], &live, &suspects);
        assert_eq!(doomed, vec![v(2)]);
        assert_eq!(suspects, HashSet::from([v(2), v(3)]));
        // A suspect that reappears in the state (its creation applied
        // late here) is no longer a suspect.
        let live = HashSet::from([v(1), v(3)]);
        let (doomed, suspects) = doomed_vaults([v(1), v(3)], &live, &suspects);
        assert!(doomed.is_empty());
        assert!(suspects.is_empty());
    }

    proptest::proptest! {
        /// Whatever the vaults stored, live and suspected: a doomed vault
        /// is stored, not live, and was a suspect; the next suspects are
        /// exactly the stored vaults that are not live.
        #[test]
        fn doomed_vaults_were_suspected_and_are_not_live(
            stored in proptest::collection::hash_set(0u8..16, 0..16),
            live in proptest::collection::hash_set(0u8..16, 0..16),
            suspects in proptest::collection::hash_set(0u8..16, 0..16),
        ) {
            let v = |i: &u8| VaultId([*i; 16]);
            let live: HashSet<VaultId> = live.iter().map(v).collect();
            let suspects: HashSet<VaultId> = suspects.iter().map(v).collect();
            let (doomed, next) = doomed_vaults(stored.iter().map(v), &live, &suspects);
            for d in &doomed {
                proptest::prop_assert!(!live.contains(d) && suspects.contains(d));
                proptest::prop_assert!(stored.contains(&d.0[0]));
            }
            let expected: HashSet<VaultId> =
                stored.iter().map(v).filter(|x| !live.contains(x)).collect();
            proptest::prop_assert_eq!(next, expected);
        }

        /// The split loses and invents no copy, and sends each to the side
        /// its ownership says.
        #[test]
        fn the_scrub_split_is_a_partition_by_ownership(
            chunks in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..32),
            me in 1u64..6,
        ) {
            let vault = VaultId([5; 16]);
            let placement = Placement {
                active: vec![1, 2, 3, 4],
                draining: vec![5],
                replicas: BTreeMap::from([(vault, 2)]),
                pools: Default::default(),
            };
            let keys: Vec<ChunkKey> =
                chunks.iter().map(|c| ChunkKey::new(vault, ChunkId(*c))).collect();
            let (owned, strays) = scrub_split(&keys, &placement, me);
            proptest::prop_assert_eq!(owned.len() + strays.len(), keys.len());
            proptest::prop_assert!(owned.iter().all(|k| placement.owners(k).contains(&me)));
            proptest::prop_assert!(strays.iter().all(|k| !placement.owners(k).contains(&me)));
        }
    }

    #[test]
    fn the_scrub_rewrites_owned_copies_and_drops_strays() {
        let vault = VaultId([5; 16]);
        let placement = Placement {
            active: vec![1, 2, 3],
            draining: vec![],
            replicas: BTreeMap::from([(vault, 2)]),
            pools: Default::default(),
        };
        let keys: Vec<ChunkKey> = (0u8..32)
            .map(|i| ChunkKey::new(vault, ChunkId([i; 32])))
            .collect();
        let (owned, strays) = scrub_split(&keys, &placement, 1);
        assert_eq!(owned.len() + strays.len(), keys.len());
        assert!(
            !owned.is_empty() && !strays.is_empty(),
            "2 of 3 nodes own each chunk"
        );
        assert!(owned.iter().all(|k| placement.owners(k).contains(&1)));
        assert!(strays.iter().all(|k| !placement.owners(k).contains(&1)));
        let (owned, strays) = scrub_split(&keys, &placement, 9);
        assert!(
            owned.is_empty(),
            "a node outside the placement owns nothing"
        );
        assert_eq!(strays, keys);
    }
}
