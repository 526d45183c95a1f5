//! Shared test fixtures: constructors for ids and events, and a proptest
//! generator of event sequences over a small universe of ids and names, so
//! that most random events hit existing records (used by the `apply`
//! property tests and the state machine store's persistence test).

use cairn_proto::{ChunkId, SnapshotId, VaultId};
use proptest::prelude::*;

use crate::event::{
    Credentials, Event, JobKind, JobStatus, KdfParams, Lease, Period, Request, RetentionPolicy,
    RetentionRange, SnapshotRecord, SnapshotStats,
};
use crate::ids::{AccountId, DeviceId, JobId, RequestId, UnixMillis};

pub(crate) fn acc(n: u8) -> AccountId {
    AccountId([n; 16])
}
pub(crate) fn dev(n: u8) -> DeviceId {
    DeviceId([n; 16])
}
pub(crate) fn vault(n: u8) -> VaultId {
    VaultId([n; 16])
}
pub(crate) fn snap_id(n: u8) -> SnapshotId {
    SnapshotId([n; 16])
}
pub(crate) fn job(n: u8) -> JobId {
    JobId([n; 16])
}
pub(crate) fn t(ms: u64) -> UnixMillis {
    UnixMillis(ms)
}
pub(crate) fn creds(n: u8) -> Credentials {
    Credentials {
        kdf: KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            salt: vec![n; 16],
        },
        login_key_hash: vec![n; 32],
    }
}

pub(crate) fn account_created(n: u8, name: &str) -> Event {
    Event::AccountCreated {
        account: acc(n),
        name: name.into(),
        credentials: creds(n),
        at: t(1),
    }
}
pub(crate) fn device_registered(d: u8, a: u8, name: &str) -> Event {
    Event::DeviceRegistered {
        device: dev(d),
        account: acc(a),
        name: name.into(),
        token_hash: vec![d; 32],
        at: t(2),
    }
}
pub(crate) fn tier(name: &str, requestable: bool) -> Event {
    Event::TierDefined {
        name: name.into(),
        replicas: 3,
        requestable,
        at: t(0),
    }
}
pub(crate) fn vault_created(v: u8, a: u8, name: &str, tier: &str) -> Event {
    Event::VaultCreated {
        vault: vault(v),
        account: acc(a),
        name: name.into(),
        tier: tier.into(),
        wrapped_keys: vec![v; 48],
        at: t(3),
    }
}
pub(crate) fn logged_in(d: u8, a: u8, name: &str, j: u8, at: u64) -> Event {
    Event::DeviceLoggedIn {
        device: dev(d),
        account: acc(a),
        name: name.into(),
        token_hash: vec![d ^ j; 32],
        job: job(j),
        from: "192.0.2.1".into(),
        at: t(at),
    }
}
pub(crate) fn item_set(d: u8, a: u8, name: &str, v: u8) -> Event {
    Event::ItemSet {
        device: dev(d),
        account: acc(a),
        name: name.into(),
        paths: vec!["/home/alice".into(), "C:\\Users\\alice".into()],
        excludes: vec!["*.tmp".into()],
        vault: vault(v),
        at: t(4),
    }
}
pub(crate) fn backup_started(j: u8, d: u8, v: u8, at: u64) -> Event {
    Event::JobStarted {
        job: job(j),
        device: dev(d),
        vault: Some(vault(v)),
        kind: JobKind::Backup,
        at: t(at),
    }
}
pub(crate) fn committed_by(id: u8, v: u8, d: u8, j: u8, at: u64) -> Event {
    Event::SnapshotCommittedByJob {
        snapshot: snapshot(id, v, d),
        job: job(j),
        at: t(at),
    }
}
pub(crate) fn snapshot(id: u8, v: u8, d: u8) -> SnapshotRecord {
    SnapshotRecord {
        id: snap_id(id),
        vault: vault(v),
        device: dev(d),
        item: "home".into(),
        started_at: t(10),
        finished_at: t(20),
        root: ChunkId([id; 32]),
        stats: SnapshotStats {
            files: 1,
            bytes: 2,
            new_bytes: 3,
            new_chunks: 4,
        },
        sealed_meta: vec![id],
    }
}

// ---------------------------------------------------------------------------
// Property tests over random event sequences drawn from a small universe of
// ids and names, so that most events hit existing records and both the
// accept and the reject paths of every rule are exercised.

pub(crate) fn small_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("c".to_string()),
        Just(String::new()),
    ]
}

/// Item names: few, so that removals and replacements meet earlier sets.
fn item_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just(String::new())
    ]
}

/// A device with, mostly, its [`setup`] account and that account's vault
/// (so item events reach their accept path), else any of each.
fn owned_device() -> impl Strategy<Value = (DeviceId, AccountId, VaultId)> {
    prop_oneof![
        3 => (0u8..4).prop_map(|n| {
            let owner = [0, 0, 1, 2][usize::from(n)];
            (dev(n), acc(owner), vault(owner))
        }),
        1 => (0u8..4, 0u8..3, 0u8..3).prop_map(|(d, a, v)| (dev(d), acc(a), vault(v))),
    ]
}

/// Any event, old or new: the pre-issue-12 kinds and the unattended
/// protection kinds, in proportion to their number.
pub(crate) fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![26 => old_event(), 10 => protection_event(), 6 => console_event()]
}

/// The console's events (operators, sessions, organizations, audited
/// admin actions) over a small universe of names, so that sessions meet
/// their operators and audited events meet their actors.
pub(crate) fn console_event() -> impl Strategy<Value = Event> {
    use crate::console::{Actor, OperatorRole};
    let op = || {
        prop_oneof![
            Just("root".to_string()),
            Just("oa".to_string()),
            Just("ro".to_string())
        ]
    };
    let org = || {
        prop_oneof![
            Just("default".to_string()),
            Just("acme".to_string()),
            Just("zeta".to_string())
        ]
    };
    let role = prop_oneof![
        Just(OperatorRole::ClusterAdmin),
        Just(OperatorRole::OrgAdmin),
        Just(OperatorRole::ReadOnly),
    ];
    let session = (0u8..3).prop_map(|n| hex::encode([n; 16]));
    let at = (0u64..50).prop_map(UnixMillis);
    let plain = prop_oneof![
        (op(), role, proptest::option::of(org()), at.clone()).prop_map(|(name, role, org, at)| {
            Event::OperatorCreated {
                name,
                role,
                org,
                credentials: creds(7),
                totp_secret: None,
                at,
            }
        }),
        (op(), at.clone()).prop_map(|(name, at)| Event::OperatorRemoved { name, at }),
        (op(), session.clone(), at.clone(), 0u64..60).prop_map(|(operator, session, at, len)| {
            Event::OperatorSessionOpened {
                operator,
                session,
                token_hash: vec![1; 32],
                expires_at: UnixMillis(at.0 + len),
                from: "127.0.0.1".into(),
                at,
            }
        }),
        (op(), proptest::option::of(session.clone()), at.clone()).prop_map(
            |(operator, session, at)| {
                Event::OperatorSessionRevoked {
                    operator,
                    session,
                    at,
                }
            }
        ),
        (org(), at.clone()).prop_map(|(name, at)| Event::OrgConfigured {
            name,
            display_name: "Acme".into(),
            support_url: "https://acme.example".into(),
            tiers: Vec::new(),
            at,
        }),
        (0u8..4, org(), at.clone()).prop_map(|(n, org, at)| Event::AccountCreatedInOrg {
            account: acc(n),
            name: format!("o{n}"),
            credentials: creds(n),
            org,
            at,
        }),
        (0u8..4).prop_map(|d| Event::DeviceRevoked {
            device: dev(d),
            account: acc([0, 0, 1, 2][usize::from(d)]),
            at: t(9),
        }),
    ];
    // Format 7's events: disabled accounts, TOTP set on existing
    // operators, sessions that use a TOTP step (few steps, so they repeat).
    let daily = prop_oneof![
        (0u8..4, at.clone()).prop_map(|(n, at)| Event::AccountDisabled {
            account: acc(n),
            reason: "unpaid".into(),
            at,
        }),
        (0u8..4, at.clone()).prop_map(|(n, at)| Event::AccountEnabled {
            account: acc(n),
            at,
        }),
        (op(), proptest::option::of(Just(vec![5u8; 20])), at.clone()).prop_map(
            |(operator, totp_secret, at)| Event::OperatorTotpSet {
                operator,
                totp_secret,
                at,
            }
        ),
        (
            op(),
            session.clone(),
            at.clone(),
            proptest::option::of(0u64..4)
        )
            .prop_map(
                |(operator, session, at, totp_step)| Event::OperatorSessionStarted {
                    operator,
                    session,
                    token_hash: vec![2; 32],
                    expires_at: UnixMillis(at.0 + 30),
                    from: "127.0.0.1".into(),
                    totp_step,
                    at,
                }
            ),
    ];
    let plain = prop_oneof![3 => plain, 1 => daily];
    let actor = prop_oneof![
        Just(Actor::AdminToken { node: 1 }),
        op().prop_map(|name| Actor::Operator { name }),
    ];
    prop_oneof![
        2 => plain.clone(),
        3 => (actor, plain, at).prop_map(|(actor, event, at)| Event::Audited {
            actor,
            from: "127.0.0.1".into(),
            at,
            event: Box::new(event),
        }),
    ]
}

/// Schedule names: mostly one, so that removals meet earlier sets.
fn schedule_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just("a".to_string()), 1 => Just(String::new())]
}

/// Before/after command lists: mostly valid, sometimes too many or empty.
fn commands() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        3 => Just(Vec::new()),
        3 => Just(vec!["echo hi".to_string()]),
        1 => Just(vec!["x".to_string(); 9]),
        1 => Just(vec![String::new()]),
    ]
}

/// Retention policies: mostly valid, sometimes with a zero count.
fn policy() -> impl Strategy<Value = RetentionPolicy> {
    let period = prop_oneof![
        Just(Period::Hour),
        Just(Period::Day),
        Just(Period::Week),
        Just(Period::Month),
        Just(Period::Year),
    ];
    let range = prop_oneof![
        Just(RetentionRange::Everything),
        (0u32..4).prop_map(RetentionRange::Last),
        (0u64..100).prop_map(|secs| RetentionRange::NewerThan { secs }),
        (0u64..50).prop_map(|ms| RetentionRange::Since(UnixMillis(ms))),
        (period.clone(), 1u32..4)
            .prop_map(|(period, count)| RetentionRange::FirstOf { period, count }),
        (period, 1u32..4).prop_map(|(period, count)| RetentionRange::OnePer { period, count }),
    ];
    (
        proptest::collection::vec(range, 0..4),
        proptest::option::of(0u32..3),
    )
        .prop_map(|(ranges, prune_every_s)| RetentionPolicy {
            ranges,
            prune_every_s,
        })
}

/// Job statuses, old and new.
fn status() -> impl Strategy<Value = JobStatus> {
    prop_oneof![
        Just(JobStatus::Succeeded),
        Just(JobStatus::Failed),
        Just(JobStatus::Timeout),
        Just(JobStatus::Missed),
        Just(JobStatus::SkippedAlreadyRunning),
        Just(JobStatus::Abandoned),
    ]
}

/// The unattended-protection events, over the same small universe. Times
/// of job reports and abandonments span minutes so that silences of 10 s
/// and more occur.
pub(crate) fn protection_event() -> impl Strategy<Value = Event> {
    let j = (0u8..6).prop_map(job);
    let d = (0u8..4).prop_map(dev);
    let long_ms = (0u64..8).prop_map(|n| UnixMillis(n * 7_000));
    let opt_name = || proptest::option::of(item_name());
    prop_oneof![
        (
            owned_device(),
            item_name(),
            commands(),
            commands(),
            long_ms.clone()
        )
            .prop_map(|((device, account, vault), name, before, after, at)| {
                Event::ItemConfigured {
                    device,
                    account,
                    name,
                    paths: vec!["/a".into()],
                    excludes: Vec::new(),
                    vault,
                    before,
                    after,
                    at,
                }
            }),
        (owned_device(), commands(), commands(), long_ms.clone()).prop_map(
            |((_, account, vault), before, after, at)| Event::VaultCommandsSet {
                vault,
                account,
                before,
                after,
                at,
            }
        ),
        (
            owned_device(),
            schedule_name(),
            item_name(),
            any::<bool>(),
            prop_oneof![3 => Just(0u32), 3 => Just(18_000), 1 => Just(18_001)],
            prop_oneof![3 => Just(None), 1 => Just(Some(0u32)), 3 => Just(Some(60))],
            commands(),
            long_ms.clone()
        )
            .prop_map(
                |(
                    (device, account, vault),
                    name,
                    item,
                    explicit,
                    random_delay_s,
                    timeout_s,
                    before,
                    at,
                )| {
                    Event::ScheduleSet {
                        device,
                        account,
                        name,
                        item,
                        vault: explicit.then_some(vault),
                        spec: "daily 02:00".into(),
                        random_delay_s,
                        timeout_s,
                        before,
                        after: Vec::new(),
                        anchor: at,
                        at,
                    }
                }
            ),
        (owned_device(), schedule_name(), long_ms.clone()).prop_map(
            |((device, account, _), name, at)| Event::ScheduleRemoved {
                device,
                account,
                name,
                at,
            }
        ),
        (owned_device(), opt_name(), policy(), long_ms.clone()).prop_map(
            |((device, account, vault), item, policy, at)| Event::RetentionSet {
                account,
                vault,
                item: item.map(|n| (device, n)),
                policy,
                at,
            }
        ),
        (owned_device(), opt_name(), long_ms.clone()).prop_map(
            |((device, account, vault), item, at)| Event::RetentionCleared {
                account,
                vault,
                item: item.map(|n| (device, n)),
                at,
            }
        ),
        (
            j.clone(),
            owned_device(),
            any::<bool>(),
            opt_name(),
            opt_name(),
            long_ms.clone()
        )
            .prop_map(|(job, (device, _, vault), backup, item, schedule, at)| {
                Event::JobBegun {
                    job,
                    device,
                    vault: Some(vault),
                    kind: if backup {
                        JobKind::Backup
                    } else {
                        JobKind::Retention
                    },
                    item,
                    schedule,
                    at,
                }
            }),
        (j.clone(), d.clone(), long_ms.clone()).prop_map(|(job, device, at)| Event::JobHeartbeat {
            job,
            device,
            at
        }),
        (
            proptest::collection::vec(j.clone(), 0..4),
            prop_oneof![Just(5_000u64), Just(10_000), Just(20_000)],
            long_ms.clone()
        )
            .prop_map(|(jobs, silence_ms, at)| Event::JobsAbandoned {
                jobs,
                silence_ms,
                at,
            }),
        (
            j,
            owned_device(),
            opt_name(),
            status(),
            long_ms.clone(),
            long_ms
        )
            .prop_map(|(job, (device, _, vault), item, status, started_at, at)| {
                Event::JobRecorded {
                    job,
                    device,
                    vault: Some(vault),
                    kind: JobKind::Backup,
                    item,
                    schedule: None,
                    status,
                    log: String::new(),
                    started_at,
                    at,
                }
            }),
    ]
}

/// The events that existed before unattended protection.
fn old_event() -> impl Strategy<Value = Event> {
    let a = (0u8..3).prop_map(acc);
    let d = (0u8..4).prop_map(dev);
    let v = (0u8..3).prop_map(vault);
    let ms = (0u64..50).prop_map(UnixMillis);
    let tier_name = prop_oneof![Just("standard".to_string()), Just("ssd".to_string())];
    prop_oneof![
        (a.clone(), small_name(), any::<u8>(), ms.clone()).prop_map(|(account, name, c, at)| {
            Event::AccountCreated {
                account,
                name,
                credentials: creds(c),
                at,
            }
        }),
        (
            a.clone(),
            any::<u8>(),
            proptest::collection::btree_map(0u8..3, any::<u8>(), 0..3),
            ms.clone()
        )
            .prop_map(|(account, c, keys, at)| Event::AccountPasswordChanged {
                account,
                credentials: creds(c),
                rewrapped_keys: keys.into_iter().map(|(k, b)| (vault(k), vec![b])).collect(),
                at,
            }),
        (a.clone(), ms.clone()).prop_map(|(account, at)| Event::AccountDeleted { account, at }),
        (d.clone(), a.clone(), small_name(), ms.clone()).prop_map(|(device, account, name, at)| {
            Event::DeviceRegistered {
                device,
                account,
                name,
                token_hash: vec![1],
                at,
            }
        }),
        (d.clone(), a.clone(), ms.clone()).prop_map(|(device, account, at)| Event::DeviceRevoked {
            device,
            account,
            at
        }),
        (d.clone(), a.clone(), small_name(), ms.clone()).prop_map(|(device, account, name, at)| {
            Event::DeviceRenamed {
                device,
                account,
                name,
                at,
            }
        }),
        (
            v.clone(),
            a.clone(),
            small_name(),
            tier_name.clone(),
            ms.clone()
        )
            .prop_map(|(vault, account, name, tier, at)| Event::VaultCreated {
                vault,
                account,
                name,
                tier,
                wrapped_keys: vec![7],
                at
            }),
        (v.clone(), a.clone(), ms.clone()).prop_map(|(vault, account, at)| Event::VaultDeleted {
            vault,
            account,
            at
        }),
        (tier_name.clone(), 0u8..4, any::<bool>(), ms.clone()).prop_map(
            |(name, replicas, requestable, at)| {
                Event::TierDefined {
                    name,
                    replicas,
                    requestable,
                    at,
                }
            }
        ),
        (0u8..3, 0u8..3, 0u8..4).prop_map(|(id, v, d)| Event::SnapshotCommitted {
            snapshot: snapshot(id, v, d)
        }),
        (0u8..3, 0u8..3, 0u8..4, (0u8..3).prop_map(job), ms.clone()).prop_map(
            |(id, v, d, job, at)| Event::SnapshotCommittedByJob {
                snapshot: snapshot(id, v, d),
                job,
                at,
            }
        ),
        ((0u8..3).prop_map(snap_id), v.clone(), d.clone(), ms.clone()).prop_map(
            |(snapshot, vault, device, at)| Event::SnapshotForgotten {
                snapshot,
                vault,
                device,
                at
            }
        ),
        (
            (0u8..3).prop_map(job),
            d.clone(),
            proptest::option::of(v.clone()),
            ms.clone()
        )
            .prop_map(|(job, device, vault, at)| Event::JobStarted {
                job,
                device,
                vault,
                kind: JobKind::Backup,
                at
            }),
        ((0u8..3).prop_map(job), d.clone(), ms.clone()).prop_map(|(job, device, at)| {
            Event::JobFinished {
                job,
                device,
                status: JobStatus::Failed,
                log: String::new(),
                at,
            }
        }),
        (0u64..3, ms.clone()).prop_map(|(node, at)| Event::StorageNodeJoined {
            node,
            addr: format!("10.0.0.{node}:8700"),
            at
        }),
        (0u64..3, ms.clone()).prop_map(|(node, at)| Event::StorageNodeDrained { node, at }),
        (0u64..3, ms.clone()).prop_map(|(node, at)| Event::StorageNodeRemoved { node, at }),
        (0u64..4, ms.clone()).prop_map(|(token, at)| Event::LeaseGranted {
            lease: Lease {
                serial: "SN".into(),
                fencing_token: token,
                granted_at: at,
                expires_at: UnixMillis(at.0 + 10)
            }
        }),
        (0u64..4, ms.clone()).prop_map(|(fencing_token, at)| Event::LeaseRenewed {
            serial: "SN".into(),
            fencing_token,
            expires_at: UnixMillis(at.0 + 20),
            at
        }),
        (0u64..4, ms.clone()).prop_map(|(fencing_token, at)| Event::LeaseExpired {
            serial: "SN".into(),
            fencing_token,
            at
        }),
        (prop_oneof![Just("SN"), Just("SN2")], 1u64..3, ms.clone()).prop_map(
            |(serial, renew, at)| Event::LicenseConfigured {
                serial: serial.into(),
                authority: "https://license.example".into(),
                cluster_id: "c1".into(),
                renew_ms: renew * 1_000,
                grace_ms: 60_000,
                at
            }
        ),
        (
            0u64..3,
            proptest::sample::subsequence(crate::event::Role::ALL.to_vec(), 0..=4),
            proptest::sample::subsequence(vec!["ssd", "hdd", "Bad"], 0..=2),
            ms.clone()
        )
            .prop_map(|(node, roles, labels, at)| Event::NodeProfileSet {
                node,
                roles: roles.into_iter().collect(),
                labels: labels.into_iter().map(String::from).collect(),
                at
            }),
        (
            prop_oneof![Just("standard"), Just("fast")],
            0u8..3,
            proptest::sample::subsequence(vec!["ssd", "hdd"], 0..=2),
            ms.clone()
        )
            .prop_map(|(name, replicas, labels, at)| Event::TierPooled {
                name: name.into(),
                replicas,
                requestable: true,
                quota_bytes: None,
                description: String::new(),
                labels: labels.into_iter().map(String::from).collect(),
                at
            }),
        (
            d.clone(),
            a.clone(),
            small_name(),
            (3u8..6).prop_map(job),
            ms.clone()
        )
            .prop_map(|(device, account, name, job, at)| Event::DeviceLoggedIn {
                device,
                account,
                name,
                token_hash: vec![2],
                job,
                from: "10.0.0.9".into(),
                at
            }),
        (
            tier_name,
            0u8..4,
            any::<bool>(),
            proptest::option::of(0u64..3),
            ms.clone()
        )
            .prop_map(|(name, replicas, requestable, quota_bytes, at)| {
                Event::TierConfigured {
                    name,
                    replicas,
                    requestable,
                    quota_bytes,
                    description: "d".into(),
                    at,
                }
            }),
        (
            owned_device(),
            item_name(),
            prop_oneof![
                Just(vec!["/a".to_string()]),
                Just(vec!["/a".to_string(), "D:/b".to_string()]),
                Just(Vec::new()),
                Just(vec!["rel".to_string()]),
            ],
            ms.clone()
        )
            .prop_map(
                |((device, account, vault), name, paths, at)| Event::ItemSet {
                    device,
                    account,
                    name,
                    paths,
                    excludes: vec!["*.o".into()],
                    vault,
                    at
                }
            ),
        (owned_device(), item_name(), ms.clone()).prop_map(|((device, account, _), name, at)| {
            Event::ItemRemoved {
                device,
                account,
                name,
                at,
            }
        }),
        (
            (0u8..6).prop_map(job),
            d,
            0u64..5,
            proptest::option::of(Just("boom".to_string())),
            ms.clone()
        )
            .prop_map(|(job, device, files, error, at)| Event::JobCompleted {
                job,
                device,
                status: JobStatus::Warnings,
                files,
                bytes: files * 100,
                error,
                log: "l".into(),
                at
            }),
        (prop_oneof![Just(32usize), Just(31usize)], any::<u8>(), ms).prop_map(|(len, b, at)| {
            Event::ServerSecretSet {
                secret: vec![b; len],
                at,
            }
        }),
    ]
}

/// A fixed opening drawn from the generator's universe (a requestable tier,
/// two accounts with devices and a vault each), so that random events that
/// follow mostly meet existing records and reach their accept paths.
pub(crate) fn setup() -> Vec<Event> {
    vec![
        Event::TierDefined {
            name: "standard".into(),
            replicas: 2,
            requestable: true,
            at: t(0),
        },
        account_created(0, "a"),
        account_created(1, "b"),
        device_registered(0, 0, "a"),
        device_registered(1, 0, "b"),
        device_registered(2, 1, "a"),
        vault_created(0, 0, "a", "standard"),
        vault_created(1, 1, "a", "standard"),
    ]
}

/// Requests with distinct ids 1..=n: the [`setup`] events, then `events`.
pub(crate) fn requests(events: Vec<Event>) -> Vec<Request> {
    setup()
        .into_iter()
        .chain(events)
        .enumerate()
        .map(|(i, event)| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            Request {
                request_id: RequestId(id),
                event,
            }
        })
        .collect()
}
