//! What survives a restart, and what a snapshot carries.
//!
//! Each test writes through the openraft traits, drops the store (closing
//! RocksDB) and opens the same directory again, as a node restart would.

use std::collections::BTreeSet;
use std::io::Cursor;

use cairn_consensus::event::{Credentials, KdfParams};
use cairn_consensus::types::{Entry, LogId, Vote};
use cairn_consensus::{open, AccountId, Event, Outcome, Request, RequestId, UnixMillis};
use openraft::storage::{RaftLogReaderExt, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{CommittedLeaderId, EntryPayload, Membership, RaftLogReader};

fn entry(term: u64, index: u64, payload: EntryPayload<cairn_consensus::TypeConfig>) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload,
    }
}

fn account(n: u8, name: &str) -> EntryPayload<cairn_consensus::TypeConfig> {
    EntryPayload::Normal(Request {
        request_id: RequestId([n; 16]),
        event: Event::AccountCreated {
            account: AccountId([n; 16]),
            name: name.into(),
            credentials: Credentials {
                kdf: KdfParams {
                    memory_kib: 8,
                    iterations: 1,
                    parallelism: 1,
                    salt: vec![n],
                },
                login_key_hash: vec![n],
            },
            at: UnixMillis(u64::from(n)),
        },
    })
}

fn membership() -> EntryPayload<cairn_consensus::TypeConfig> {
    EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1u64])], None))
}

/// Appends through the v2 API and waits for the flush callback.
async fn append(log: &mut cairn_consensus::LogStore, entries: Vec<Entry>) {
    use openraft::storage::RaftLogStorageExt;
    log.blocking_append(entries).await.expect("append");
}

#[tokio::test]
async fn log_and_vote_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (mut log, _sm) = open(dir.path()).expect("open");
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        append(
            &mut log,
            (1..=10).map(|i| entry(1, i, EntryPayload::Blank)).collect(),
        )
        .await;
        log.truncate(log_id(1, 1, 8)).await.expect("truncate");
        log.purge(log_id(1, 1, 2)).await.expect("purge");
    }
    let (mut log, _sm) = open(dir.path()).expect("reopen");
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 7)));
    let entries = log.try_get_log_entries(0..100).await.expect("entries");
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![3, 4, 5, 6, 7]);
    assert!(log.try_get_log_entry(8).await.expect("read").is_none());
}

#[tokio::test]
async fn purging_everything_keeps_the_last_log_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut log, _sm) = open(dir.path()).expect("open");
    append(
        &mut log,
        (1..=3).map(|i| entry(2, i, EntryPayload::Blank)).collect(),
    )
    .await;
    log.purge(log_id(2, 1, 3)).await.expect("purge");
    let state = log.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 3)));
}

#[tokio::test]
async fn applied_state_survives_restart_without_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_log, mut sm) = open(dir.path()).expect("open");
        let out = sm
            .apply(vec![
                entry(1, 1, membership()),
                entry(1, 2, account(1, "alice")),
                entry(1, 3, account(2, "alice")),
                entry(1, 4, account(3, "carol")),
            ])
            .await
            .expect("apply");
        assert_eq!(out[0], vec![Outcome::NoOp]);
        assert_eq!(out[1], vec![Outcome::Applied]);
        assert!(matches!(out[2][..], [Outcome::Rejected(_)]));
        assert_eq!(out[3], vec![Outcome::Applied]);
    }
    // Reopen and look before applying anything: the state is already there.
    let (_log, mut sm) = open(dir.path()).expect("reopen");
    let (applied, mem) = sm.applied_state().await.expect("applied");
    assert_eq!(applied, Some(log_id(1, 1, 4)));
    assert_eq!(mem.log_id(), &Some(log_id(1, 1, 1)));
    let names: Vec<String> = sm
        .handle()
        .read(|s| s.accounts().values().map(|a| a.name.clone()).collect());
    assert_eq!(names, vec!["alice".to_string(), "carol".to_string()]);
    // The dedup table survived too: a retry of request 1 is not re-applied.
    let out = sm
        .apply(vec![entry(1, 5, account(1, "dave"))])
        .await
        .expect("apply");
    assert_eq!(out, vec![vec![Outcome::Applied]]);
    assert!(sm.handle().read(|s| s.account_by_name("dave").is_none()));
}

#[tokio::test]
async fn snapshot_carries_state_to_another_node() {
    let dir_a = tempfile::tempdir().expect("tempdir");
    let dir_b = tempfile::tempdir().expect("tempdir");
    let (_la, mut a) = open(dir_a.path()).expect("open a");
    a.apply(vec![
        entry(1, 1, membership()),
        entry(1, 2, account(1, "alice")),
    ])
    .await
    .expect("apply");
    let built = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 2)));
    // The bytes are encoded when a follower needs them.
    let snap = a
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some snapshot");
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 2)));

    {
        let (_lb, mut b) = open(dir_b.path()).expect("open b");
        let mut rx = b.begin_receiving_snapshot().await.expect("begin");
        rx.get_mut().extend_from_slice(snap.snapshot.get_ref());
        b.install_snapshot(&snap.meta, rx).await.expect("install");
        assert_eq!(
            b.handle().read(|s| s.clone()),
            a.handle().read(|s| s.clone())
        );
        let cur = b
            .get_current_snapshot()
            .await
            .expect("current")
            .expect("some snapshot");
        assert_eq!(cur.meta.last_log_id, snap.meta.last_log_id);
    }
    // The installed state survives a restart of b; the snapshot does not
    // (openraft builds one at start when the log was purged).
    let (_lb, mut b) = open(dir_b.path()).expect("reopen b");
    assert_eq!(
        b.applied_state().await.expect("applied").0,
        Some(log_id(1, 1, 2))
    );
    assert_eq!(
        b.handle().read(|s| s.clone()),
        a.handle().read(|s| s.clone())
    );
    assert!(b.get_current_snapshot().await.expect("current").is_none());
}

#[tokio::test]
async fn corrupt_snapshot_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_l, mut sm) = open(dir.path()).expect("open");
    sm.apply(vec![entry(1, 1, account(1, "alice"))])
        .await
        .expect("apply");
    let before = sm.handle().read(|s| s.clone());
    let meta = cairn_consensus::types::SnapshotMeta {
        last_log_id: Some(log_id(2, 1, 10)),
        last_membership: Default::default(),
        snapshot_id: "bogus".into(),
    };
    let err = sm
        .install_snapshot(&meta, Box::new(Cursor::new(vec![1, 2, 3])))
        .await;
    assert!(err.is_err());
    assert_eq!(sm.handle().read(|s| s.clone()), before);
    assert_eq!(
        sm.applied_state().await.expect("applied").0,
        Some(log_id(1, 1, 1))
    );
    assert!(sm.get_current_snapshot().await.expect("current").is_none());
}
