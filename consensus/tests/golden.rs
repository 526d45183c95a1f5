//! Golden fixtures of the persisted formats (DESIGN §6: every format is
//! covered by committed fixtures, so a newer build always reads data an
//! older one wrote).
//!
//! Each fixture is the hex of the exact bytes the codec writes for a fixed
//! value: one log entry per event kind (plus a blank and a membership
//! entry), and the snapshot encoding of the state those events produce. The
//! test fails if today's code encodes differently or cannot decode the
//! committed bytes. After a deliberate format change (with a new format
//! version and a migration), regenerate with
//! `CAIRN_BLESS=1 cargo test -p cairn-consensus --test golden`.
//!
//! | fixture | holds |
//! |---|---|
//! | `log_entries.v1.hex` | the first 19 event kinds (log format 1) |
//! | `log_entries_accounts.v1.hex` | the accounts/auth event kinds, appended to the same enum (still log format 1) |
//! | `state.v1.hex` | state format 1 snapshot data; frozen, never blessed: today's build must keep reading it |
//! | `state.v2.hex` | state format 2 snapshot data with every field format 2 added; frozen since format 3 |
//! | `log_entries_jobs.v1.hex` | snapshot commits under a backup job and the limit rejections (still log format 1, state format 2) |
//! | `log_entries_protection.v1.hex` | the unattended-protection event kinds (schedules, commands, retention, heartbeats, abandonment; still log format 1) |
//! | `state.v3.hex` | state format 3 snapshot data with every field format 3 added; frozen since format 4 |
//! | `log_entries_license.v1.hex` | the license event kind and the lease events around it (still log format 1) |
//! | `state.v4.hex` | state format 4 snapshot data with the license set; frozen since format 5 |
//! | `log_entries_roles.v1.hex` | the server-role event kinds: node profiles and pooled tiers (still log format 1) |
//! | `state.v5.hex` | state format 5 snapshot data with the topology set; frozen since format 6 |
//! | `log_entries_console.v1.hex` | the console event kinds: operators, sessions, organizations, audited actions (still log format 1) |
//! | `state.v6.hex` | state format 6 snapshot data with the topology, operators, an organization and the audit trail; frozen since format 7 |
//! | `log_entries_daily.v1.hex` | daily administration: accounts disabled and enabled, TOTP set on existing operators, sessions with their TOTP step (still log format 1) |
//! | `state.v7.hex` | state format 7 snapshot data with a disabled account and an operator's last TOTP step |
//! | `log_entries_batch.v1.hex` | batch entries: the leader's concurrent writes packed into one entry, a retried request inside (still log format 1) |
//!
//! `state.v2.hex` to `state.v6.hex` are frozen too: today's
//! build reads
//! them, converted with the later formats' defaults, and never writes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_consensus::codec::{self, LOG_ENTRY_FORMAT, STATE_FORMAT};
use cairn_consensus::console::{self, Actor, OperatorRole};
use cairn_consensus::event::{
    Credentials, JobKind, JobStatus, KdfParams, Lease, Period, RetentionPolicy, RetentionRange,
    Role, SnapshotRecord, SnapshotStats,
};
use cairn_consensus::state::JobEnd;
use cairn_consensus::types::{Entry, LogId};
use cairn_consensus::{
    apply, apply_entry, AccountId, DeviceId, Event, JobId, Outcome, Rejection, Request, RequestId,
    State, TypeConfig, UnixMillis,
};
use cairn_proto::{ChunkId, SnapshotId, VaultId};
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use proptest::prelude::*;

/// The fixture `name`, found through the directory `cargo test` runs us
/// from (a test binary built in another checkout that shares the build
/// cache would otherwise look in that checkout).
fn fixture(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures")
        .join(name)
}

/// Compares `bytes` with the committed fixture (or writes it when blessing).
fn check(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = fixture(name);
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(&path, hex::encode(bytes) + "\n").expect("write fixture");
    }
    let text = std::fs::read_to_string(&path).expect("fixture exists (bless to create)");
    let committed = hex::decode(text.trim()).expect("fixture is hex");
    assert_eq!(
        hex::encode(bytes),
        hex::encode(&committed),
        "{name}: encoding changed"
    );
    committed
}

fn events() -> Vec<Event> {
    let acc = AccountId([1; 16]);
    let dev = DeviceId([2; 16]);
    let vault = VaultId([3; 16]);
    let snap = SnapshotId([4; 16]);
    let job = JobId([5; 16]);
    let t = UnixMillis(1_700_000_000_000);
    let creds = Credentials {
        kdf: KdfParams {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 1,
            salt: vec![9; 16],
        },
        login_key_hash: vec![7; 32],
    };
    vec![
        Event::TierDefined {
            name: "standard".into(),
            replicas: 3,
            requestable: true,
            at: t,
        },
        Event::AccountCreated {
            account: acc,
            name: "alice".into(),
            credentials: creds.clone(),
            at: t,
        },
        Event::DeviceRegistered {
            device: dev,
            account: acc,
            name: "laptop".into(),
            token_hash: vec![8; 32],
            at: t,
        },
        Event::DeviceRenamed {
            device: dev,
            account: acc,
            name: "work laptop".into(),
            at: t,
        },
        Event::VaultCreated {
            vault,
            account: acc,
            name: "main".into(),
            tier: "standard".into(),
            wrapped_keys: vec![6; 80],
            at: t,
        },
        Event::AccountPasswordChanged {
            account: acc,
            credentials: creds,
            rewrapped_keys: BTreeMap::from([(vault, vec![0xaa; 80])]),
            at: t,
        },
        Event::JobStarted {
            job,
            device: dev,
            vault: Some(vault),
            kind: JobKind::Backup,
            at: t,
        },
        Event::SnapshotCommitted {
            snapshot: SnapshotRecord {
                id: snap,
                vault,
                device: dev,
                item: "home".into(),
                started_at: t,
                finished_at: UnixMillis(t.0 + 60_000),
                root: ChunkId([0xcc; 32]),
                stats: SnapshotStats {
                    files: 10,
                    bytes: 1 << 20,
                    new_bytes: 4096,
                    new_chunks: 2,
                },
                sealed_meta: vec![0xdd; 40],
            },
        },
        Event::JobFinished {
            job,
            device: dev,
            status: JobStatus::Succeeded,
            log: "ok".into(),
            at: t,
        },
        Event::SnapshotForgotten {
            snapshot: snap,
            vault,
            device: dev,
            at: t,
        },
        Event::StorageNodeJoined {
            node: 1,
            addr: "http://10.0.0.1:8700".into(),
            at: t,
        },
        Event::StorageNodeJoined {
            node: 2,
            addr: "http://10.0.0.2:8700".into(),
            at: t,
        },
        Event::StorageNodeDrained { node: 2, at: t },
        Event::StorageNodeRemoved { node: 2, at: t },
        Event::LeaseGranted {
            lease: Lease {
                serial: "SN-1".into(),
                fencing_token: 7,
                granted_at: t,
                expires_at: UnixMillis(t.0 + 1),
            },
        },
        Event::LeaseRenewed {
            serial: "SN-1".into(),
            fencing_token: 7,
            expires_at: UnixMillis(t.0 + 2),
            at: t,
        },
        Event::LeaseExpired {
            serial: "SN-1".into(),
            fencing_token: 7,
            at: t,
        },
        Event::DeviceRevoked {
            device: dev,
            account: acc,
            at: t,
        },
        Event::VaultDeleted {
            vault,
            account: acc,
            at: t,
        },
        Event::AccountDeleted {
            account: acc,
            at: t,
        },
    ]
}

/// The events added for accounts and auth (appended to [`Event`], so the log
/// format stays 1), each with the outcome it has when applied after the
/// format-1 state's events: every new variant and field, and each new
/// rejection, so the dedup table of the format-2 state holds them too.
fn accounts_events() -> Vec<(Event, Outcome)> {
    let acc = AccountId([1; 16]);
    let dev = DeviceId([2; 16]);
    let phone = DeviceId([12; 16]);
    let vault = VaultId([3; 16]);
    let t = UnixMillis(1_700_000_100_000);
    let ok = Outcome::Applied;
    let no = Outcome::Rejected;
    let item = |device, name: &str, paths: Vec<&str>, excludes: Vec<&str>| Event::ItemSet {
        device,
        account: acc,
        name: name.into(),
        paths: paths.into_iter().map(String::from).collect(),
        excludes: excludes.into_iter().map(String::from).collect(),
        vault,
        at: t,
    };
    let tier = |quota_bytes, description: String| Event::TierConfigured {
        name: "archive".into(),
        replicas: 2,
        requestable: true,
        quota_bytes,
        description,
        at: t,
    };
    let secret = |len| Event::ServerSecretSet {
        secret: vec![0x5e; len],
        at: t,
    };
    vec![
        (
            tier(Some(10 << 30), "Two copies, 10 GiB per vault".into()),
            ok.clone(),
        ),
        (tier(Some(0), String::new()), no(Rejection::InvalidQuota)),
        (
            tier(None, "x".repeat(1025)),
            no(Rejection::TooLong {
                what: "tier description".into(),
                len: 1025,
                max: 1024,
            }),
        ),
        (
            Event::DeviceLoggedIn {
                device: dev,
                account: acc,
                name: "ignored for a known device".into(),
                token_hash: vec![0x18; 32],
                job: JobId([15; 16]),
                from: "203.0.113.7".into(),
                at: UnixMillis(t.0 + 1_000),
            },
            ok.clone(),
        ),
        (
            Event::DeviceLoggedIn {
                device: phone,
                account: acc,
                name: "phone".into(),
                token_hash: vec![0x1c; 32],
                job: JobId([16; 16]),
                from: "[2001:db8::1]:443".into(),
                at: UnixMillis(t.0 + 2_000),
            },
            ok.clone(),
        ),
        (
            item(
                dev,
                "home",
                vec!["/home/alice", "C:\\Users\\alice"],
                vec!["*.cache", "/home/alice/tmp"],
            ),
            ok.clone(),
        ),
        (
            item(phone, "photos", vec!["/sdcard/DCIM"], vec![]),
            ok.clone(),
        ),
        (item(dev, "scratch", vec!["/tmp"], vec![]), ok.clone()),
        (
            item(dev, "bad", vec![], vec![]),
            no(Rejection::InvalidItem("no paths".into())),
        ),
        (
            Event::ItemRemoved {
                device: dev,
                account: acc,
                name: "scratch".into(),
                at: t,
            },
            ok.clone(),
        ),
        (
            Event::ItemRemoved {
                device: dev,
                account: acc,
                name: "scratch".into(),
                at: t,
            },
            no(Rejection::UnknownItem {
                device: dev,
                name: "scratch".into(),
            }),
        ),
        (
            Event::JobStarted {
                job: JobId([17; 16]),
                device: dev,
                vault: Some(vault),
                kind: JobKind::Backup,
                at: t,
            },
            ok.clone(),
        ),
        (
            Event::JobCompleted {
                job: JobId([17; 16]),
                device: dev,
                status: JobStatus::Failed,
                files: 42,
                bytes: 1 << 20,
                error: Some("disk full".into()),
                log: "read 42 files\nwrite failed".into(),
                at: UnixMillis(t.0 + 5_000),
            },
            ok.clone(),
        ),
        (secret(31), no(Rejection::InvalidSecret(31))),
        (secret(32), ok),
        (secret(32), no(Rejection::SecretAlreadySet)),
    ]
}

/// The events added for snapshot commits under a backup job and for the
/// resource limits, with their outcomes when applied after the format-2
/// state's events.
fn jobs_events() -> Vec<(Event, Outcome)> {
    let acc = AccountId([1; 16]);
    let dev = DeviceId([2; 16]);
    let vault = VaultId([3; 16]);
    let t = UnixMillis(1_700_000_200_000);
    let backup = JobId([20; 16]);
    let commit = |id: u8, job: JobId, meta: usize, at: UnixMillis| Event::SnapshotCommittedByJob {
        snapshot: SnapshotRecord {
            id: SnapshotId([id; 16]),
            vault,
            device: dev,
            item: "home".into(),
            started_at: t,
            finished_at: UnixMillis(t.0 + 1_000),
            root: ChunkId([id; 32]),
            stats: SnapshotStats {
                files: 3,
                bytes: 300,
                new_bytes: 100,
                new_chunks: 1,
            },
            sealed_meta: vec![0xee; meta],
        },
        job,
        at,
    };
    let max_keys = cairn_consensus::apply::MAX_WRAPPED_KEYS_LEN;
    vec![
        (
            commit(30, JobId([21; 16]), 40, t),
            Outcome::Rejected(Rejection::JobNotRunning {
                job: JobId([21; 16]),
                reason: "does not exist (its start was never recorded)".into(),
            }),
        ),
        (
            Event::JobStarted {
                job: backup,
                device: dev,
                vault: Some(vault),
                kind: JobKind::Backup,
                at: t,
            },
            Outcome::Applied,
        ),
        (
            Event::VaultCreated {
                vault: VaultId([33; 16]),
                account: acc,
                name: "huge keys".into(),
                tier: "standard".into(),
                wrapped_keys: vec![0x77; max_keys + 1],
                at: t,
            },
            Outcome::Rejected(Rejection::TooLarge {
                what: "wrapped vault keys".into(),
                len: max_keys as u64 + 1,
                max: max_keys as u64,
            }),
        ),
        (
            commit(32, backup, 40, UnixMillis(t.0 + 2_000)),
            Outcome::Applied,
        ),
    ]
}

fn jobs_requests() -> Vec<(Request, Outcome)> {
    jobs_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 200; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

#[test]
fn log_entries_of_the_job_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(jobs_requests(), 3, 200);
    let all = encode_entries(&entries);
    let committed = check("log_entries_jobs.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v2_state();
    for (r, expected) in jobs_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    assert!(state.snapshots().contains_key(&SnapshotId([32; 16])));
}

/// The events of unattended protection (issue 12), with their outcomes
/// when applied after the job events: item, vault and schedule commands,
/// schedules, retention policies, jobs with item and schedule, heartbeats,
/// abandonment and revival, and jobs recorded after the fact.
fn protection_events() -> Vec<(Event, Outcome)> {
    let acc = AccountId([1; 16]);
    let dev = DeviceId([2; 16]);
    let phone = DeviceId([12; 16]);
    let vault = VaultId([3; 16]);
    let t = UnixMillis(1_700_000_300_000);
    let at = |ms: u64| UnixMillis(t.0 + ms);
    let ok = Outcome::Applied;
    let no = Outcome::Rejected;
    let strings = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let home = |before: Vec<String>| Event::ItemConfigured {
        device: dev,
        account: acc,
        name: "home".into(),
        paths: strings(&["/home/alice", "C:\\Users\\alice"]),
        excludes: strings(&["*.cache"]),
        vault,
        before,
        after: strings(&["rm /home/alice/db.sql"]),
        at: t,
    };
    let schedule = |name: &str, item: &str, vault, spec: &str, delay| Event::ScheduleSet {
        device: dev,
        account: acc,
        name: name.into(),
        item: item.into(),
        vault,
        spec: spec.into(),
        random_delay_s: delay,
        timeout_s: Some(3_600),
        before: strings(&["echo start"]),
        after: Vec::new(),
        anchor: t,
        at: t,
    };
    let removed = |name: &str| Event::ScheduleRemoved {
        device: dev,
        account: acc,
        name: name.into(),
        at: t,
    };
    let retention = |item: Option<(DeviceId, &str)>, ranges| Event::RetentionSet {
        account: acc,
        vault,
        item: item.map(|(d, n)| (d, n.to_string())),
        policy: RetentionPolicy {
            ranges,
            prune_every_s: Some(86_400),
        },
        at: t,
    };
    let cleared = |item: Option<(DeviceId, &str)>| Event::RetentionCleared {
        account: acc,
        vault,
        item: item.map(|(d, n)| (d, n.to_string())),
        at: t,
    };
    let begun = |n: u8, kind| Event::JobBegun {
        job: JobId([n; 16]),
        device: dev,
        vault: Some(vault),
        kind,
        item: Some("home".into()),
        schedule: Some("nightly".into()),
        at: t,
    };
    let heartbeat = |n: u8, ms| Event::JobHeartbeat {
        job: JobId([n; 16]),
        device: dev,
        at: at(ms),
    };
    let recorded = |n: u8, status, started_at, end| Event::JobRecorded {
        job: JobId([n; 16]),
        device: dev,
        vault: Some(vault),
        kind: JobKind::Backup,
        item: Some("home".into()),
        schedule: Some("nightly".into()),
        status,
        log: "the device was asleep".into(),
        started_at,
        at: end,
    };
    let completed = |n: u8, status| Event::JobCompleted {
        job: JobId([n; 16]),
        device: dev,
        status,
        files: 0,
        bytes: 0,
        error: None,
        log: String::new(),
        at: at(80_000),
    };
    let commit = Event::SnapshotCommittedByJob {
        snapshot: SnapshotRecord {
            id: SnapshotId([34; 16]),
            vault,
            device: dev,
            item: "home".into(),
            started_at: t,
            finished_at: at(71_000),
            root: ChunkId([34; 32]),
            stats: SnapshotStats::default(),
            sealed_meta: vec![0xee; 8],
        },
        job: JobId([20; 16]),
        at: at(71_000),
    };
    vec![
        (
            home(strings(&["pg_dump -f /home/alice/db.sql"])),
            ok.clone(),
        ),
        (
            home(vec!["true".to_string(); 9]),
            no(Rejection::InvalidCommand(
                "at most 8 before and 8 after commands".into(),
            )),
        ),
        (
            Event::VaultCommandsSet {
                vault,
                account: acc,
                before: strings(&["mount /mnt/backup"]),
                after: strings(&["umount /mnt/backup"]),
                at: t,
            },
            ok.clone(),
        ),
        (
            schedule("nightly", "home", None, "daily 02:00", 600),
            ok.clone(),
        ),
        (
            schedule("six-hourly", "home", Some(vault), "every 6h", 0),
            ok.clone(),
        ),
        (
            schedule("bad", "nope", None, "daily", 0),
            no(Rejection::UnknownItem {
                device: dev,
                name: "nope".into(),
            }),
        ),
        (
            schedule("bad", "home", None, "daily", 18_001),
            no(Rejection::InvalidSchedule(
                "a random delay of 18001 s is above 18000 s".into(),
            )),
        ),
        (removed("six-hourly"), ok.clone()),
        (
            removed("six-hourly"),
            no(Rejection::UnknownSchedule {
                device: dev,
                name: "six-hourly".into(),
            }),
        ),
        (
            retention(
                None,
                vec![
                    RetentionRange::Last(7),
                    RetentionRange::OnePer {
                        period: Period::Day,
                        count: 14,
                    },
                    RetentionRange::FirstOf {
                        period: Period::Month,
                        count: 12,
                    },
                    RetentionRange::NewerThan { secs: 86_400 },
                    RetentionRange::Since(UnixMillis(1_690_000_000_000)),
                ],
            ),
            ok.clone(),
        ),
        (
            retention(
                Some((dev, "home")),
                vec![
                    RetentionRange::Last(30),
                    RetentionRange::OnePer {
                        period: Period::Week,
                        count: 8,
                    },
                    RetentionRange::OnePer {
                        period: Period::Year,
                        count: 3,
                    },
                    RetentionRange::FirstOf {
                        period: Period::Hour,
                        count: 24,
                    },
                ],
            ),
            ok.clone(),
        ),
        (
            retention(None, vec![RetentionRange::Last(0)]),
            no(Rejection::InvalidRetention(
                "a count of 0 is outside 1..=100000".into(),
            )),
        ),
        (
            retention(Some((phone, "photos")), vec![RetentionRange::Everything]),
            ok.clone(),
        ),
        (cleared(Some((phone, "photos"))), ok.clone()),
        (
            cleared(Some((phone, "photos"))),
            no(Rejection::NoRetention {
                vault,
                item: Some((phone, "photos".into())),
            }),
        ),
        (begun(40, JobKind::Retention), ok.clone()),
        (begun(41, JobKind::Backup), ok.clone()),
        (heartbeat(41, 5_000), ok.clone()),
        (
            Event::JobsAbandoned {
                jobs: vec![JobId([41; 16]), JobId([40; 16]), JobId([20; 16])],
                silence_ms: 60_000,
                at: at(62_000),
            },
            ok.clone(),
        ),
        (
            Event::JobsAbandoned {
                jobs: vec![JobId([41; 16])],
                silence_ms: 5_000,
                at: at(62_000),
            },
            no(Rejection::SilenceTooShort {
                silence_ms: 5_000,
                min: 10_000,
            }),
        ),
        (heartbeat(20, 70_000), ok.clone()),
        (
            commit,
            no(Rejection::JobNotRunning {
                job: JobId([20; 16]),
                reason: "was revived after being abandoned, and a prune may have run meanwhile"
                    .into(),
            }),
        ),
        (heartbeat(40, 75_000), ok.clone()),
        (completed(20, JobStatus::Timeout), ok.clone()),
        (completed(41, JobStatus::Quota), ok.clone()),
        (recorded(42, JobStatus::Missed, t, t), ok.clone()),
        (
            recorded(43, JobStatus::SkippedAlreadyRunning, t, at(1)),
            ok.clone(),
        ),
        (
            recorded(44, JobStatus::Missed, at(2), at(1)),
            no(Rejection::TimeTravel {
                what: "job end before its start".into(),
                earlier: at(2),
                later: at(1),
            }),
        ),
        (
            recorded(44, JobStatus::Abandoned, t, t),
            no(Rejection::StatusReserved(JobStatus::Abandoned)),
        ),
    ]
}

fn protection_requests() -> Vec<(Request, Outcome)> {
    protection_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let mut id = [0x30; 16];
            id[15] = i as u8;
            let request = Request {
                request_id: RequestId(id),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The format-3 state: the format-2 state, then the job events, then the
/// protection events.
fn v3_state() -> State {
    let mut state = v2_state();
    for (r, _) in jobs_requests().into_iter().chain(protection_requests()) {
        apply(&mut state, &r);
    }
    state
}

#[test]
fn log_entries_of_the_protection_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(protection_requests(), 4, 300);
    let all = encode_entries(&entries);
    let committed = check("log_entries_protection.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v2_state();
    for (r, _) in jobs_requests() {
        apply(&mut state, &r);
    }
    for (r, expected) in protection_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    let jobs = state.jobs();
    let status = |n: u8| jobs[&JobId([n; 16])].finished.as_ref().map(|e| e.status);
    assert_eq!(status(40), None);
    assert!(jobs[&JobId([40; 16])].revived);
    assert_eq!(status(41), Some(JobStatus::Quota));
    assert!(!jobs[&JobId([41; 16])].revived);
    assert_eq!(status(20), Some(JobStatus::Timeout));
    assert!(jobs[&JobId([20; 16])].revived);
    assert_eq!(status(42), Some(JobStatus::Missed));
}

/// The format-3 snapshot data a previous build wrote (frozen since format
/// 4: never blessed again), with every field format 3 added holding a
/// non-default value, decodes to the state today's code derives from the
/// same events, with no license (format 4's addition).
#[test]
fn state_v3_decodes_into_format_4_values() {
    let state = v3_state();
    let vault = &state.vaults()[&VaultId([3; 16])];
    assert!(!vault.before.is_empty() && !vault.after.is_empty() && vault.retention.is_some());
    assert!(state
        .items()
        .values()
        .any(|i| !i.before.is_empty() && !i.after.is_empty()));
    assert!(state.jobs().values().any(|j| j.item.is_some()
        && j.schedule.is_some()
        && j.last_seen != j.started_at
        && j.revived));
    assert_eq!(state.schedules().len(), 1);
    assert_eq!(state.item_retention().len(), 1);

    let text = std::fs::read_to_string(fixture("state.v3.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("fixture is hex");
    assert_eq!(committed.first(), Some(&3), "state.v3.hex is format 3");
    let decoded = codec::decode_state(&committed).expect("decode format 3");
    assert_eq!(decoded, state);
    assert!(decoded.license().is_none());
}

/// The license events (issue 14), with their outcomes when applied after
/// the protection events: settings, a grant, a renewal, a stale grant, an
/// expiry, a grant under a new serial after the settings changed, and
/// refused settings.
fn license_events() -> Vec<(Event, Outcome)> {
    let t = UnixMillis(1_700_000_400_000);
    let configured = |serial: &str, renew_ms: u64, at: u64| Event::LicenseConfigured {
        serial: serial.into(),
        authority: "https://license.example:8800".into(),
        cluster_id: "0123456789abcdef".into(),
        renew_ms,
        grace_ms: 259_200_000,
        at: UnixMillis(t.0 + at),
    };
    let grant = |serial: &str, token: u64, at: u64| Event::LeaseGranted {
        lease: Lease {
            serial: serial.into(),
            fencing_token: token,
            granted_at: UnixMillis(t.0 + at),
            expires_at: UnixMillis(t.0 + at + 3_600_000),
        },
    };
    let ok = Outcome::Applied;
    vec![
        (configured("SN-A", 1_200_000, 0), ok.clone()),
        (grant("SN-A", 7, 10), ok.clone()),
        (
            Event::LeaseRenewed {
                serial: "SN-A".into(),
                fencing_token: 7,
                expires_at: UnixMillis(t.0 + 1_000 + 3_600_000),
                at: UnixMillis(t.0 + 1_000),
            },
            ok.clone(),
        ),
        (
            grant("SN-A", 6, 2_000),
            Outcome::Rejected(Rejection::StaleFencingToken { last: 7, got: 6 }),
        ),
        (
            grant("SN-B", 8, 2_000),
            Outcome::Rejected(Rejection::LeaseMismatch {
                serial: "SN-B".into(),
                fencing_token: 8,
            }),
        ),
        (
            Event::LeaseExpired {
                serial: "SN-A".into(),
                fencing_token: 7,
                at: UnixMillis(t.0 + 5_000_000),
            },
            ok.clone(),
        ),
        (configured("SN-A", 600_000, 5_000_001), ok.clone()),
        (
            Event::LicenseConfigured {
                serial: "SN-A".into(),
                authority: "has space".into(),
                cluster_id: "0123456789abcdef".into(),
                renew_ms: 1,
                grace_ms: 1,
                at: t,
            },
            Outcome::Rejected(Rejection::InvalidLicense(
                "the authority URL must be 1 to 255 characters without spaces".into(),
            )),
        ),
        (configured("SN-B", 600_000, 5_000_002), ok.clone()),
        (grant("SN-B", 1, 5_000_003), ok),
    ]
}

fn license_requests() -> Vec<(Request, Outcome)> {
    license_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 120; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The format-4 state: the format-3 state, then the license events.
fn v4_state() -> State {
    let mut state = v3_state();
    for (r, _) in license_requests() {
        apply(&mut state, &r);
    }
    state
}

#[test]
fn log_entries_of_the_license_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(license_requests(), 5, 400);
    let all = encode_entries(&entries);
    let committed = check("log_entries_license.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v3_state();
    for (r, expected) in license_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    let license = state.license().expect("license set");
    assert_eq!(license.serial, "SN-B");
    assert_eq!(license.renewed_at, Some(UnixMillis(1_700_005_400_003)));
    assert_eq!(state.lease().map(|l| l.fencing_token), Some(1));
    assert_eq!(
        state.last_fencing_token(),
        1,
        "a new serial, a new sequence"
    );
}

/// The format-4 snapshot data a previous build wrote (frozen since format
/// 5: never blessed again), with the license set, decodes to the state
/// today's code derives from the same events, with an empty topology
/// (format 5's addition: every node runs every role, no tier is pooled),
/// no operators, no organizations and every account in the default one.
#[test]
fn state_v4_decodes_into_format_6_values() {
    let state = v4_state();
    assert!(state.license().is_some_and(|l| l.renewed_at.is_some()));
    let text = std::fs::read_to_string(fixture("state.v4.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("fixture is hex");
    assert_eq!(committed.first(), Some(&4), "state.v4.hex is format 4");
    let decoded = codec::decode_state(&committed).expect("decode format 4");
    assert_eq!(decoded, state);
    assert!(decoded.topology().nodes().is_empty());
    assert!(decoded.operators().is_empty() && decoded.audit().is_empty());
    assert!(decoded
        .accounts()
        .keys()
        .all(|a| decoded.org_of(*a) == console::DEFAULT_ORG));
}

/// The server-role events (issue 13), with their outcomes when applied
/// after the license events: a storage node's profile and its join, an
/// auth node's profile, a pooled tier, one its pool cannot satisfy, and
/// refused profiles.
fn roles_events() -> Vec<(Event, Outcome)> {
    let t = UnixMillis(1_700_000_500_000);
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };
    let profile = |node, roles: &[Role], labels: &[&str]| Event::NodeProfileSet {
        node,
        roles: roles.iter().copied().collect(),
        labels: set(labels),
        at: t,
    };
    let tier = |name: &str, replicas| Event::TierPooled {
        name: name.into(),
        replicas,
        requestable: true,
        quota_bytes: Some(1 << 30),
        description: "ssd pool".into(),
        labels: set(&["ssd"]),
        at: t,
    };
    let ok = Outcome::Applied;
    let invalid = |m: &str| Outcome::Rejected(Rejection::InvalidProfile(m.into()));
    vec![
        (
            profile(7, &[Role::Storage], &["ssd", "eu-west"]),
            ok.clone(),
        ),
        (
            Event::StorageNodeJoined {
                node: 7,
                addr: "http://10.0.0.7:8700".into(),
                at: t,
            },
            ok.clone(),
        ),
        (profile(8, &[Role::Auth, Role::Cluster], &[]), ok.clone()),
        (tier("fast", 1), ok),
        (
            tier("fast2", 2),
            Outcome::Rejected(Rejection::TierUnsatisfiable {
                tier: "fast2".into(),
                labels: vec!["ssd".into()],
                replicas: 2,
                matching: 1,
            }),
        ),
        (
            profile(9, &[], &[]),
            invalid("a node runs at least one role"),
        ),
        (
            profile(9, &[Role::Auth], &["ssd"]),
            invalid("storage labels need the storage role"),
        ),
        (
            profile(9, &[Role::Storage], &["SSD"]),
            invalid("storage label \"SSD\" must be 1 to 32 of a-z, 0-9, '-', '_', '.'"),
        ),
    ]
}

fn roles_requests() -> Vec<(Request, Outcome)> {
    roles_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 140; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The console events (issue 15), with their outcomes when applied after
/// the license events: an organization, an operator of each role, audited
/// actions by the admin token and by operators (one refused by role),
/// sessions opened and revoked, an account created in an organization.
fn console_events() -> Vec<(Event, Outcome)> {
    let t = |ms: u64| UnixMillis(1_700_000_500_000 + ms);
    let creds = Credentials {
        kdf: KdfParams {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 4,
            salt: vec![0x5a; 16],
        },
        login_key_hash: vec![0xa5; 32],
    };
    let audited = |actor: Actor, at: u64, event: Event| Event::Audited {
        actor,
        from: "192.0.2.7".into(),
        at: t(at),
        event: Box::new(event),
    };
    let token = Actor::AdminToken { node: 1 };
    let root = || Actor::Operator {
        name: "root".into(),
    };
    let oa = || Actor::Operator {
        name: "acme-admin".into(),
    };
    let operator =
        |name: &str, role: OperatorRole, org: Option<&str>, totp: bool| Event::OperatorCreated {
            name: name.into(),
            role,
            org: org.map(str::to_owned),
            credentials: creds.clone(),
            totp_secret: totp.then(|| vec![0x42; 20]),
            at: t(1),
        };
    let ok = Outcome::Applied;
    vec![
        (
            audited(
                token.clone(),
                1,
                operator("root", OperatorRole::ClusterAdmin, None, true),
            ),
            ok.clone(),
        ),
        (
            audited(
                root(),
                2,
                Event::OrgConfigured {
                    name: "acme".into(),
                    display_name: "Acme Backup".into(),
                    support_url: "https://support.acme.example".into(),
                    tiers: vec!["standard".into()],
                    at: t(2),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                root(),
                3,
                operator("acme-admin", OperatorRole::OrgAdmin, Some("acme"), false),
            ),
            ok.clone(),
        ),
        (
            operator("auditor", OperatorRole::ReadOnly, None, false),
            ok.clone(),
        ),
        (
            audited(
                oa(),
                4,
                Event::OperatorSessionOpened {
                    operator: "acme-admin".into(),
                    session: "00112233445566778899aabbccddeeff".into(),
                    token_hash: vec![0x77; 32],
                    expires_at: t(3_600_004),
                    from: "192.0.2.7".into(),
                    at: t(4),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                oa(),
                5,
                Event::AccountCreatedInOrg {
                    account: AccountId([0x51; 16]),
                    name: "acme-user".into(),
                    credentials: creds.clone(),
                    org: "acme".into(),
                    at: t(5),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                oa(),
                6,
                Event::AccountCreatedInOrg {
                    account: AccountId([0x52; 16]),
                    name: "stranger".into(),
                    credentials: creds.clone(),
                    org: "default".into(),
                    at: t(6),
                },
            ),
            Outcome::Rejected(Rejection::NotPermitted {
                actor: "operator acme-admin".into(),
                action: "account_created_in_org".into(),
            }),
        ),
        (
            audited(
                root(),
                7,
                Event::OperatorSessionRevoked {
                    operator: "acme-admin".into(),
                    session: None,
                    at: t(7),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                root(),
                8,
                Event::OperatorRemoved {
                    name: "auditor".into(),
                    at: t(8),
                },
            ),
            ok,
        ),
    ]
}

fn console_requests() -> Vec<(Request, Outcome)> {
    console_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 160; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The format-5 state: the format-4 state, then the server-role events.
fn v5_state() -> State {
    let mut state = v4_state();
    for (r, _) in roles_requests() {
        apply(&mut state, &r);
    }
    state
}

/// The format-6 state: the format-5 state, then the console events.
fn v6_state() -> State {
    let mut state = v5_state();
    for (r, _) in console_requests() {
        apply(&mut state, &r);
    }
    state
}

#[test]
fn log_entries_of_the_roles_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(roles_requests(), 6, 500);
    let all = encode_entries(&entries);
    let committed = check("log_entries_roles.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v4_state();
    for (r, expected) in roles_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    let topology = state.topology();
    assert!(topology.has_role(7, Role::Storage) && !topology.has_role(7, Role::Auth));
    assert!(topology.has_role(1, Role::Auth), "no profile: every role");
    let ssd: BTreeSet<String> = ["ssd".to_string()].into();
    assert_eq!(topology.tier_labels("fast"), Some(&ssd));
    assert_eq!(topology.tier_labels("fast2"), None);
    assert!(state.pool(&ssd).contains(&7));
}

#[test]
fn log_entries_of_the_console_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(console_requests(), 6, 500);
    let all = encode_entries(&entries);
    let committed = check("log_entries_console.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v4_state();
    for (r, expected) in console_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    assert_eq!(
        state.operators().keys().collect::<Vec<_>>(),
        ["acme-admin", "root"]
    );
    assert!(state.operators()["acme-admin"].sessions.is_empty());
    assert_eq!(state.org_of(AccountId([0x51; 16])), "acme");
    assert_eq!(state.audit().len(), 7);
}

/// The format-5 snapshot data a previous build wrote (frozen since format
/// 6: never blessed again), with the topology set, decodes to the state
/// today's code derives from the same events, with no operators, no
/// organizations and every account in the default one.
#[test]
fn state_v5_decodes_into_format_6_values() {
    let state = v5_state();
    assert!(!state.topology().nodes().is_empty());
    let text = std::fs::read_to_string(fixture("state.v5.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("hex");
    assert_eq!(committed.first(), Some(&5), "state.v5.hex is format 5");
    let decoded = codec::decode_state(&committed).expect("decode format 5");
    assert_eq!(decoded, state);
    assert!(decoded.operators().is_empty() && decoded.audit().is_empty());
    assert!(decoded
        .accounts()
        .keys()
        .all(|a| decoded.org_of(*a) == console::DEFAULT_ORG));
}

/// The format-6 snapshot data a previous build wrote (frozen since
/// format 7: never blessed again), with the topology, operators, an
/// organization, an account in it and the audit trail, decodes to the
/// state today's code derives from the same events, with no account
/// disabled and no TOTP step used.
#[test]
fn state_v6_decodes_into_format_7_values() {
    let state = v6_state();
    assert!(!state.topology().nodes().is_empty() && !state.operators().is_empty());
    let text = std::fs::read_to_string(fixture("state.v6.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("hex");
    assert_eq!(committed.first(), Some(&6), "state.v6.hex is format 6");
    let decoded = codec::decode_state(&committed).expect("decode format 6");
    assert_eq!(decoded, state);
    assert!(decoded
        .accounts()
        .keys()
        .all(|a| decoded.disabled(*a).is_none()));
    assert!(decoded
        .operators()
        .keys()
        .all(|o| decoded.totp_step(o).is_none()));
}

/// Daily administration (state format 7): an org admin disables a user
/// of their organization and enables it again, a cluster admin disables
/// another; an operator enrols in TOTP themself, a read-only operator may
/// not set another's; a TOTP step opens one session only.
fn daily_events() -> Vec<(Event, Outcome)> {
    let t = |ms: u64| UnixMillis(1_700_000_900_000 + ms);
    let audited = |name: &str, at: u64, event: Event| Event::Audited {
        actor: Actor::Operator { name: name.into() },
        from: "192.0.2.9".into(),
        at: t(at),
        event: Box::new(event),
    };
    let acme_user = AccountId([0x51; 16]);
    let session = |n: u8, step: Option<u64>| Event::OperatorSessionStarted {
        operator: "root".into(),
        session: hex::encode([n; 16]),
        token_hash: vec![n; 32],
        expires_at: t(3_600_000),
        from: "192.0.2.9".into(),
        totp_step: step,
        at: t(10),
    };
    let ok = Outcome::Applied;
    vec![
        (
            audited(
                "acme-admin",
                1,
                Event::AccountDisabled {
                    account: acme_user,
                    reason: "invoice overdue".into(),
                    at: t(1),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                "acme-admin",
                2,
                Event::AccountEnabled {
                    account: acme_user,
                    at: t(2),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                "root",
                3,
                Event::AccountDisabled {
                    account: acme_user,
                    reason: "left the company".into(),
                    at: t(3),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                "acme-admin",
                4,
                Event::OperatorTotpSet {
                    operator: "acme-admin".into(),
                    totp_secret: Some(vec![0x24; 20]),
                    at: t(4),
                },
            ),
            ok.clone(),
        ),
        (
            audited(
                "acme-admin",
                5,
                Event::OperatorTotpSet {
                    operator: "root".into(),
                    totp_secret: None,
                    at: t(5),
                },
            ),
            Outcome::Rejected(Rejection::NotPermitted {
                actor: "operator acme-admin".into(),
                action: "operator_totp_set".into(),
            }),
        ),
        (audited("root", 6, session(1, Some(56_666_697))), ok.clone()),
        (
            audited("root", 7, session(2, Some(56_666_697))),
            Outcome::Rejected(Rejection::TotpReplayed {
                operator: "root".into(),
                last: 56_666_697,
            }),
        ),
        (audited("root", 8, session(3, Some(56_666_698))), ok.clone()),
        (session(4, None), ok),
    ]
}

fn daily_requests() -> Vec<(Request, Outcome)> {
    daily_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 240; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The format-7 state: the format-6 state, then the daily events.
fn v7_state() -> State {
    let mut state = v6_state();
    for (r, _) in daily_requests() {
        apply(&mut state, &r);
    }
    state
}

#[test]
fn log_entries_of_the_daily_events_decode_encode_and_apply_unchanged() {
    let entries = normal_entries(daily_requests(), 7, 600);
    let all = encode_entries(&entries);
    let committed = check("log_entries_daily.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v6_state();
    for (r, expected) in daily_requests() {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
    let disabled = state.disabled(AccountId([0x51; 16])).expect("disabled");
    assert_eq!(disabled.reason, "left the company");
    assert_eq!(state.totp_step("root"), Some(56_666_698));
    assert!(state.operators()["acme-admin"].totp_secret.is_some());
    assert_eq!(state.operators()["root"].sessions.len(), 3);
}

/// The format-7 snapshot data, with a disabled account and an operator's
/// last TOTP step, encodes to the committed bytes and decodes back.
#[test]
fn state_v7_decodes_and_encodes_unchanged() {
    let state = v7_state();
    assert!(state.disabled(AccountId([0x51; 16])).is_some() && state.totp_step("root").is_some());
    let bytes = codec::encode("snapshot data", STATE_FORMAT, &state).expect("encode");
    assert_eq!(bytes[0], 7);
    let committed = check("state.v7.hex", &bytes);
    assert_eq!(codec::decode_state(&committed).expect("decode"), state);
}

/// Batch entries, as the leader packs concurrent writes: the daily events
/// in two batches (the second repeating a request of the first), applied
/// with the outcomes of the same requests one per entry.
#[test]
fn log_entries_of_batches_decode_encode_and_apply_unchanged() {
    let daily = daily_requests();
    let (first, second) = daily.split_at(daily.len() / 2);
    let mut second: Vec<(Request, Outcome)> = second.to_vec();
    second.push(first[0].clone());
    let batch = |n: u8, part: &[(Request, Outcome)]| Request {
        request_id: RequestId([n; 16]),
        event: Event::Batch(part.iter().map(|(r, _)| r.clone()).collect()),
    };
    let batches = vec![(batch(0xb1, first), ()), (batch(0xb2, &second), ())];
    let entries = normal_entries(batches.clone(), 8, 700);
    let committed = check("log_entries_batch.v1.hex", &encode_entries(&entries));
    assert_eq!(decode_entries(&committed), entries);
    let mut state = v6_state();
    let outcomes: Vec<Vec<Outcome>> = batches
        .iter()
        .map(|(r, _)| apply_entry(&mut state, r))
        .collect();
    let expected = |part: &[(Request, Outcome)]| -> Vec<Outcome> {
        part.iter().map(|(_, o)| o.clone()).collect()
    };
    // The repeated request answers its first outcome again.
    assert_eq!(outcomes, vec![expected(first), expected(&second)]);
    assert_eq!(state, v7_state());
}

fn accounts_requests() -> Vec<(Request, Outcome)> {
    accounts_events()
        .into_iter()
        .enumerate()
        .map(|(i, (event, outcome))| {
            let request = Request {
                request_id: RequestId([i as u8 + 100; 16]),
                event,
            };
            (request, outcome)
        })
        .collect()
}

/// The requests that make the format-1 state: all but the final deletions.
fn v1_state_requests() -> Vec<Request> {
    let mut reqs = requests();
    reqs.truncate(reqs.len() - 4);
    reqs
}

fn requests() -> Vec<Request> {
    events()
        .into_iter()
        .enumerate()
        .map(|(i, event)| Request {
            request_id: RequestId([i as u8 + 1; 16]),
            event,
        })
        .collect()
}

fn entries() -> Vec<Entry> {
    let id = |i: u64| LogId::new(CommittedLeaderId::new(1, 1), i);
    let mut out = vec![
        Entry {
            log_id: id(1),
            payload: EntryPayload::<TypeConfig>::Blank,
        },
        Entry {
            log_id: id(2),
            payload: EntryPayload::Membership(Membership::new(
                vec![BTreeSet::from([1u64, 2, 3])],
                None,
            )),
        },
    ];
    for (i, r) in requests().into_iter().enumerate() {
        out.push(Entry {
            log_id: id(i as u64 + 3),
            payload: EntryPayload::Normal(r),
        });
    }
    out
}

#[test]
fn log_entries_v1_decode_and_encode_unchanged() {
    let entries = entries();
    let all = encode_entries(&entries);
    let committed = check("log_entries.v1.hex", &all);
    // Decode the committed bytes independently of the encoder.
    assert_eq!(decode_entries(&committed), entries);
}

/// Log entries of `requests` in term `term`, indexed from `first`.
fn normal_entries<T>(requests: Vec<(Request, T)>, term: u64, first: u64) -> Vec<Entry> {
    let id = |i: u64| LogId::new(CommittedLeaderId::new(term, 1), i);
    requests
        .into_iter()
        .enumerate()
        .map(|(i, (r, _))| Entry {
            log_id: id(i as u64 + first),
            payload: EntryPayload::Normal(r),
        })
        .collect()
}

/// `entries` as a fixture: each behind its length (4 bytes, big-endian).
fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut all = Vec::new();
    for e in entries {
        let bytes = codec::encode("log entry", LOG_ENTRY_FORMAT, e).expect("encode");
        all.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        all.extend_from_slice(&bytes);
    }
    all
}

/// Splits and decodes a fixture of length-prefixed log entries.
fn decode_entries(mut rest: &[u8]) -> Vec<Entry> {
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (one, tail) = tail.split_at(len);
        decoded.push(codec::decode::<Entry>("log entry", LOG_ENTRY_FORMAT, one).expect("decode"));
        rest = tail;
    }
    decoded
}

#[test]
fn log_entries_of_the_accounts_events_decode_and_encode_unchanged() {
    let entries = normal_entries(accounts_requests(), 2, 100);
    let all = encode_entries(&entries);
    let committed = check("log_entries_accounts.v1.hex", &all);
    assert_eq!(decode_entries(&committed), entries);
}

#[test]
fn every_event_kind_is_in_the_fixtures_and_applies() {
    let accounts = accounts_requests();
    let kinds: BTreeSet<&str> = events()
        .iter()
        .chain(accounts.iter().map(|(r, _)| &r.event))
        .chain(jobs_events().iter().map(|(e, _)| e))
        .chain(protection_events().iter().map(|(e, _)| e))
        .chain(license_events().iter().map(|(e, _)| e))
        .chain(roles_events().iter().map(|(e, _)| e))
        .chain(console_events().iter().map(|(e, _)| e))
        .chain(daily_events().iter().map(|(e, _)| e))
        .flat_map(|e| match e {
            Event::Audited { event, .. } => vec![e.kind(), event.kind()],
            _ => vec![e.kind()],
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        kinds.len(),
        50,
        "add new event kinds to the golden fixtures"
    );
    let mut state = State::default();
    for r in requests() {
        assert!(apply(&mut state, &r).is_applied(), "{:?}", r.event);
    }
    let mut state = State::default();
    for r in v1_state_requests() {
        assert!(apply(&mut state, &r).is_applied(), "{:?}", r.event);
    }
    for (r, expected) in accounts {
        assert_eq!(apply(&mut state, &r), expected, "{:?}", r.event);
    }
}

/// The format-1 snapshot data a previous build wrote (frozen: never
/// blessed), decoded by today's build, is the state today's code derives
/// from the same events, with format 2's new fields filled in as format 1
/// behaved: a device last logged in when it registered, tiers have no
/// quota and no description, job ends count nothing and carry no error,
/// and there are no items and no server secret (and format 3's as
/// `state_v2_decodes_into_format_3_values` spells out).
#[test]
fn state_v1_decodes_into_current_values() {
    let text = std::fs::read_to_string(fixture("state.v1.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("fixture is hex");
    assert_eq!(committed.first(), Some(&1), "state.v1.hex is format 1");
    let decoded = codec::decode_state(&committed).expect("decode format 1");

    let mut expected = State::default();
    for r in v1_state_requests() {
        apply(&mut expected, &r);
    }
    assert_eq!(decoded.accounts(), expected.accounts());
    assert_eq!(decoded.vaults(), expected.vaults());
    assert_eq!(decoded.tiers(), expected.tiers());
    assert_eq!(decoded.snapshots(), expected.snapshots());
    assert_eq!(decoded.jobs(), expected.jobs());
    assert_eq!(decoded.storage_nodes(), expected.storage_nodes());
    assert_eq!(decoded.lease(), expected.lease());
    assert_eq!(decoded.last_fencing_token(), expected.last_fencing_token());
    assert_eq!(decoded.requests(), expected.requests());
    assert_eq!(
        decoded.account_by_name("alice").map(|a| a.id),
        Some(AccountId([1; 16]))
    );
    assert!(decoded.items().is_empty());
    assert_eq!(decoded.server_secret(), None);
    // Format 1 kept device tokens across a password change; today's apply
    // empties them. Everything else about the device matches.
    let mut devices = expected.devices().clone();
    for (_, d) in expected.devices() {
        assert!(d.token_hash.is_empty());
        if let Some(d) = devices.get_mut(&d.id) {
            d.token_hash = vec![8; 32];
        }
    }
    assert_eq!(decoded.devices(), &devices);

    // The new fields, spelled out.
    let t = UnixMillis(1_700_000_000_000);
    let device = &decoded.devices()[&DeviceId([2; 16])];
    assert_eq!((device.registered_at, device.last_login_at), (t, t));
    let tier = &decoded.tiers()["standard"];
    assert_eq!((tier.quota_bytes, tier.description.as_str()), (None, ""));
    let end = decoded.jobs()[&JobId([5; 16])].finished.clone();
    assert_eq!(
        end,
        Some(JobEnd {
            status: JobStatus::Succeeded,
            log: "ok".into(),
            at: t,
            files: 0,
            bytes: 0,
            error: None,
        })
    );
    // Written again, it is the current format.
    let again = codec::encode("snapshot data", STATE_FORMAT, &decoded).expect("encode");
    assert_eq!((again[0], STATE_FORMAT), (7, 7));
    assert_eq!(
        codec::decode_state(&again).expect("decode the current format"),
        decoded
    );
}

fn v2_state() -> State {
    let mut state = State::default();
    for r in v1_state_requests() {
        apply(&mut state, &r);
    }
    for (r, _) in accounts_requests() {
        apply(&mut state, &r);
    }
    state
}

/// The format-2 snapshot data a previous build wrote (frozen since format
/// 3: never blessed again) decodes to the state today's code derives from
/// the same events, with format 3's new fields filled in as format 2
/// behaved: no commands, no retention policies, jobs ran for no item and
/// no schedule, were last seen at their start and never revived, and there
/// are no schedules and no retention overrides.
#[test]
fn state_v2_decodes_into_format_3_values() {
    let state = v2_state();
    // Every field format 2 added holds a non-default value.
    assert!(state
        .devices()
        .values()
        .any(|d| d.last_login_at != d.registered_at));
    assert!(state
        .tiers()
        .values()
        .any(|t| t.quota_bytes.is_some() && !t.description.is_empty()));
    assert!(state.jobs().values().any(|j| j.kind == JobKind::Login));
    assert!(state.jobs().values().any(|j| j
        .finished
        .as_ref()
        .is_some_and(|e| e.files > 0 && e.bytes > 0 && e.error.is_some())));
    assert_eq!(state.items().len(), 2);
    assert!(state.items().values().any(|i| !i.excludes.is_empty()));
    assert!(state.server_secret().is_some());

    let text = std::fs::read_to_string(fixture("state.v2.hex")).expect("fixture");
    let committed = hex::decode(text.trim()).expect("fixture is hex");
    assert_eq!(committed.first(), Some(&2), "state.v2.hex is format 2");
    let decoded = codec::decode_state(&committed).expect("decode format 2");
    assert_eq!(decoded, state);
    // The new fields, spelled out.
    assert!(decoded
        .vaults()
        .values()
        .all(|v| v.before.is_empty() && v.after.is_empty() && v.retention.is_none()));
    assert!(decoded
        .items()
        .values()
        .all(|i| i.before.is_empty() && i.after.is_empty()));
    assert!(decoded.jobs().values().all(|j| j.item.is_none()
        && j.schedule.is_none()
        && j.last_seen == j.started_at
        && !j.revived));
    assert!(decoded.schedules().is_empty() && decoded.item_retention().is_empty());
}

/// Every strict prefix of a committed state fixture is refused, not
/// misread.
#[test]
fn truncated_state_fixtures_are_errors() {
    for name in [
        "state.v1.hex",
        "state.v2.hex",
        "state.v3.hex",
        "state.v4.hex",
        "state.v5.hex",
        "state.v6.hex",
        "state.v7.hex",
    ] {
        let text = std::fs::read_to_string(fixture(name)).expect("fixture");
        let bytes = hex::decode(text.trim()).expect("hex");
        for len in 0..bytes.len() {
            assert!(
                codec::decode_state(&bytes[..len]).is_err(),
                "{name}: prefix of {len} bytes decoded"
            );
        }
    }
}

proptest! {
    /// Garbage behind either state format byte is an error, never a panic
    /// or a huge allocation.
    #[test]
    fn garbage_state_is_refused(format in 1u8..=7, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![format];
        bytes.extend_from_slice(&body);
        prop_assert!(codec::decode_state(&bytes).is_err());
    }
}
