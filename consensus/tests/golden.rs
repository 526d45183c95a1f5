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

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cairn_consensus::codec::{self, LOG_ENTRY_FORMAT, STATE_FORMAT};
use cairn_consensus::event::{
    Credentials, JobKind, JobStatus, KdfParams, Lease, SnapshotRecord, SnapshotStats,
};
use cairn_consensus::types::{Entry, LogId};
use cairn_consensus::{
    apply, AccountId, DeviceId, Event, JobId, Request, RequestId, State, TypeConfig, UnixMillis,
};
use cairn_proto::{ChunkId, SnapshotId, VaultId};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    let mut all = Vec::new();
    for e in &entries {
        let bytes = codec::encode("log entry", LOG_ENTRY_FORMAT, e).expect("encode");
        all.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        all.extend_from_slice(&bytes);
    }
    let committed = check("log_entries.v1.hex", &all);
    // Decode the committed bytes independently of the encoder.
    let mut rest = committed.as_slice();
    let mut decoded = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let (one, tail) = tail.split_at(len);
        decoded.push(codec::decode::<Entry>("log entry", LOG_ENTRY_FORMAT, one).expect("decode"));
        rest = tail;
    }
    assert_eq!(decoded, entries);
}

#[test]
fn every_event_kind_is_in_the_fixture_and_applies() {
    let kinds: BTreeSet<&str> = events().iter().map(Event::kind).collect();
    assert_eq!(kinds.len(), 19, "add new event kinds to the golden fixture");
    let mut state = State::default();
    for r in requests() {
        assert!(apply(&mut state, &r).is_applied(), "{:?}", r.event);
    }
}

#[test]
fn state_v1_decodes_and_encodes_unchanged() {
    // A state with records in every collection: apply all but the final
    // deletions.
    let mut state = State::default();
    let reqs = requests();
    for r in &reqs[..reqs.len() - 4] {
        apply(&mut state, r);
    }
    assert!(!state.accounts().is_empty() && !state.vaults().is_empty() && !state.jobs().is_empty());
    let bytes = codec::encode("snapshot data", STATE_FORMAT, &state).expect("encode");
    let committed = check("state.v1.hex", &bytes);
    let decoded: State = codec::decode("snapshot data", STATE_FORMAT, &committed).expect("decode");
    assert_eq!(decoded, state);
}
