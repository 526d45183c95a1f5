//! Writes seed inputs for every fuzz target from real encodings: the
//! encoders of the workspace, the consensus golden fixtures
//! (`consensus/tests/fixtures`) and the client's vault fixture
//! (`client/tests/fixtures/vault-v1`).
//!
//! `cargo run --example seeds [DIR]` (default `corpus`) writes
//! `DIR/<target>/seed-<name>`; `cargo fuzz cmin` then keeps what adds
//! coverage. Selector bytes match the targets' first-byte dispatch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cairn_chunkstore::bucket::{BucketDigest, Listed, NodeDigests};
use cairn_chunkstore::gc::Swept;
use cairn_chunkstore::peers::{Fetched, PushReport};
use cairn_chunkstore::placement::Placement;
use cairn_chunkstore::{ChunkKey, Usage};
use cairn_client::blob::{BlobCodec, Compressor};
use cairn_client::chunker::ChunkerParams;
use cairn_client::crypto::{VaultKeys, VaultSecrets};
use cairn_client::snapshot::{SnapshotMeta, SnapshotRecord, SnapshotStats};
use cairn_client::tree::{ChunkRef, Entry, Kind, Time, Tree};
use cairn_consensus::codec::{self, LOG_ENTRY_FORMAT, META_FORMAT, STATE_FORMAT};
use cairn_consensus::types::{Entry as LogEntry, LogId, SnapshotMeta as RaftSnapshotMeta, Vote};
use cairn_consensus::{ClusterNode, NodeId, Outcome, Request, TypeConfig};
use cairn_fuzz::fixed;
use cairn_proto::api;
use cairn_proto::frames;
use cairn_proto::{AccountId, ChunkId, DeviceId, JobId, SnapshotId, VaultId};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, EntryPayload, Membership, StoredMembership};
use serde::Serialize;

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
    }

    fn with(&self, target: &str, name: &str, selector: u8, body: &[u8]) {
        let mut bytes = vec![selector];
        bytes.extend_from_slice(body);
        self.put(target, name, &bytes);
    }

    fn bincode<T: Serialize>(&self, target: &str, name: &str, selector: u8, value: &T) {
        self.with(
            target,
            name,
            selector,
            &bincode::serialize(value).expect("bincode"),
        );
    }

    fn json<T: Serialize>(&self, name: &str, selector: u8, value: &T) {
        self.with(
            "api_json",
            name,
            selector,
            &serde_json::to_vec(value).expect("json"),
        );
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn hex_fixture(path: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(repo().join(path)).expect("fixture");
    hex::decode(text.trim()).expect("hex fixture")
}

/// The length-prefixed (u32 BE) codec values of a log-entries fixture.
fn log_fixture(path: &str) -> Vec<Vec<u8>> {
    let all = hex_fixture(path);
    let mut rest = &all[..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    out
}

fn key(i: u8) -> ChunkKey {
    ChunkKey::new(VaultId([i; 16]), ChunkId([i.wrapping_add(1); 32]))
}

fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn membership() -> Membership<NodeId, ClusterNode> {
    let voters: BTreeSet<NodeId> = [1, 2, 3].into();
    let nodes: BTreeMap<NodeId, ClusterNode> = (1..=4)
        .map(|n| (n, ClusterNode::new(format!("https://10.0.0.{n}:7000"))))
        .collect();
    Membership::new(vec![voters], nodes)
}

fn entry(name: &str, kind: Kind) -> Entry {
    let t = Time {
        sec: 1_700_000_000,
        nsec: 5,
    };
    Entry {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime: t,
        ctime: t,
        inode: 42,
        device: 7,
        links: 1,
        size: 0,
        target: Vec::new(),
        rdev: 0,
        xattrs: Vec::new(),
        content: Vec::new(),
        subtree: None,
    }
}

fn main() {
    let out = Out(std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    ));

    // proto_frames
    let ids = [ChunkId([1; 32]), ChunkId([2; 32]), ChunkId([0xff; 32])];
    out.put("proto_frames", "ids-empty", &frames::encode_ids(&[]));
    out.put("proto_frames", "ids-3", &frames::encode_ids(&ids));
    let mut body = frames::frames_header();
    frames::push_frame(&mut body, &ids[0], b"sealed bytes of a chunk");
    out.put("proto_frames", "frames-1", &body);
    frames::push_frame(&mut body, &ids[1], &[]);
    frames::push_frame(&mut body, &ids[2], &[0xaa; 100]);
    out.put("proto_frames", "frames-3", &body);

    // storage_wire
    use cairn_node::storage::wire;
    out.put("storage_wire", "frames-0", &wire::encode_frames(&[]));
    out.put(
        "storage_wire",
        "frames-2",
        &wire::encode_frames(&[(key(1), &b"abc"[..]), (key(2), &[0u8; 40][..])]),
    );
    out.put(
        "storage_wire",
        "fetched-3",
        &wire::encode_fetched(&[
            Fetched::Absent,
            Fetched::Found {
                crc32: 0xdead_beef,
                bytes: b"chunk".to_vec(),
            },
            Fetched::Corrupt,
        ]),
    );

    // storage_internal: requests 0..=6, answers 7..=13, unit 14.
    let keys = vec![key(1), key(2), key(3)];
    let placement = Placement {
        active: vec![1, 2, 3],
        draining: vec![4],
        replicas: [(VaultId([1; 16]), 2), (VaultId([2; 16]), 3)].into(),
        pools: Default::default(),
    };
    let si = "storage_internal";
    out.bincode(si, "keys", 0, &keys);
    out.bincode(si, "digests", 1, &(placement, vec![3u64]));
    out.bincode(si, "list", 2, &vec![0u8, 7, 255]);
    out.bincode(si, "push", 3, &(2u64, keys.clone()));
    out.bincode(si, "sweep", 4, &(keys.clone(), 1_700_000_000_000u64));
    out.bincode(
        si,
        "ids",
        5,
        &(VaultId([1; 16]), Some(ChunkId([9; 32])), 1000u64),
    );
    out.bincode(si, "usage", 6, &VaultId([1; 16]));
    out.bincode(si, "bools", 7, &vec![true, false]);
    let mut digest = BucketDigest::default();
    digest.add(&key(1), 7);
    let digests = NodeDigests {
        shared: [(2u64, vec![digest; 4])].into(),
        misplaced: vec![0, 1],
        short: vec![2],
        usage: Usage {
            chunks: 3,
            bytes: 4096,
        },
        unknown_vault_chunks: 1,
    };
    out.bincode(si, "node-digests", 8, &digests);
    out.bincode(
        si,
        "listed",
        9,
        &vec![Listed {
            key: key(1),
            crc32: 5,
            size: 100,
        }],
    );
    out.bincode(
        si,
        "push-report",
        10,
        &PushReport {
            copied: 1,
            bytes: 10,
            failed: vec![key(4)],
        },
    );
    out.bincode(
        si,
        "swept",
        11,
        &vec![Swept::Absent, Swept::Deleted, Swept::Kept],
    );
    out.bincode(si, "chunk-ids", 12, &ids.to_vec());
    out.bincode(
        si,
        "usage-reply",
        13,
        &Usage {
            chunks: 1,
            bytes: 2,
        },
    );

    // tree
    let mut file = entry("a.txt", Kind::File);
    file.size = 300;
    file.content = vec![
        ChunkRef {
            id: ChunkId([3; 32]),
            len: 100,
        },
        ChunkRef {
            id: ChunkId([4; 32]),
            len: 200,
        },
    ];
    file.xattrs = vec![(b"user.k".to_vec(), b"v".to_vec())];
    let mut dir = entry("dir", Kind::Dir);
    dir.subtree = Some(ChunkId([5; 32]));
    let mut link = entry("link", Kind::Symlink);
    link.target = b"../elsewhere".to_vec();
    let mut dev = entry("tty", Kind::CharDevice);
    dev.rdev = 0x0401;
    let mut tree = Tree {
        entries: vec![
            file,
            dir,
            link,
            dev,
            entry("fifo", Kind::Fifo),
            entry("sda", Kind::BlockDevice),
            entry("caf\u{e9}", Kind::File),
        ],
    };
    tree.sort();
    out.put("tree", "empty", &Tree::default().encode().unwrap());
    out.put("tree", "all-kinds", &tree.encode().unwrap());

    // blob_open
    let codec = BlobCodec::new(fixed::VAULT, fixed::keys(), 3);
    let mut z = Compressor::new().unwrap();
    let text = b"a compressible chunk, a compressible chunk, a compressible chunk".repeat(20);
    for (name, plain) in [("sealed-zstd", &text[..]), ("sealed-raw", b"x")] {
        let id = codec.id(plain);
        let sealed = codec.seal(&id, plain, &mut z);
        out.with("blob_open", name, 0, &[&id.0[..], &sealed].concat());
    }
    out.with(
        "blob_open",
        "body-raw",
        1,
        &[&[0u8][..], b"raw plaintext"].concat(),
    );
    let frame = zstd::bulk::compress(&text, 3).unwrap();
    out.with("blob_open", "body-zstd", 1, &[&[1u8][..], &frame].concat());
    out.with(
        "blob_open",
        "body-tree",
        2,
        &[&[0u8][..], &tree.encode().unwrap()].concat(),
    );

    // vault_keys
    let keys = fixed::keys();
    let secrets = VaultSecrets {
        keys: keys.clone(),
        chunker: ChunkerParams::default(),
        zstd_level: 3,
    };
    out.with(
        "vault_keys",
        "sealed-keys",
        0,
        &keys.wrap(fixed::VAULT, &fixed::WRAP_KEY),
    );
    out.with(
        "vault_keys",
        "sealed-secrets",
        0,
        &secrets.wrap(fixed::VAULT, &fixed::WRAP_KEY),
    );
    let mut pt = vec![cairn_proto::version::KEYS_FORMAT];
    pt.extend_from_slice(&keys.encryption);
    pt.extend_from_slice(&keys.chunk_id);
    out.with("vault_keys", "keys-plaintext", 1, &pt);
    let mut pt = vec![2u8];
    pt.extend_from_slice(&keys.encryption);
    pt.extend_from_slice(&keys.chunk_id);
    for w in [256 * 1024u32, 1 << 20, 4 << 20] {
        pt.extend_from_slice(&w.to_le_bytes());
    }
    pt.extend_from_slice(&3i32.to_le_bytes());
    out.with("vault_keys", "secrets-plaintext", 1, &pt);
    let _ = VaultKeys::unwrap;

    // snapshot_record
    let snaps = repo().join("client/tests/fixtures/vault-v1/vault/snapshots");
    for f in std::fs::read_dir(&snaps).expect("fixture snapshots") {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        out.with("snapshot_record", "fixture-record", 0, &bytes);
    }
    let meta = SnapshotMeta {
        paths: vec!["/home/alice".into(), "/etc".into()],
        hostname: "laptop".into(),
        excludes: vec!["*.tmp".into()],
        warnings: vec!["/home/alice/x: permission denied".into()],
        stats: Some(SnapshotStats {
            files: 3,
            dirs: 1,
            bytes: 100,
            ..Default::default()
        }),
        bound: None,
        tags: vec![],
    };
    let id = SnapshotId([0x33; 16]);
    let rec = SnapshotRecord {
        format: 1,
        id,
        vault: fixed::VAULT,
        device: "laptop".into(),
        item: Some("home".into()),
        time: "2026-11-26T06:08:05.673532191Z".into(),
        finished: "2026-11-26T06:08:05.686130516Z".into(),
        root: ChunkId([7; 32]),
        stats: SnapshotStats::default(),
        meta: meta.seal(&keys, fixed::VAULT, id).unwrap(),
    };
    out.with(
        "snapshot_record",
        "record",
        0,
        &serde_json::to_vec(&rec).unwrap(),
    );
    out.with(
        "snapshot_record",
        "meta",
        1,
        &serde_json::to_vec(&meta).unwrap(),
    );
    out.with(
        "snapshot_record",
        "meta-local",
        1,
        &serde_json::to_vec(&SnapshotMeta::default()).unwrap(),
    );

    // consensus fixtures: log entries (codec values) and their requests.
    let mut entries: Vec<LogEntry> = Vec::new();
    for path in [
        "consensus/tests/fixtures/log_entries.v1.hex",
        "consensus/tests/fixtures/log_entries_accounts.v1.hex",
    ] {
        for value in log_fixture(path) {
            entries
                .push(codec::decode("log entry", LOG_ENTRY_FORMAT, &value).expect("fixture entry"));
        }
    }
    let requests: Vec<Request> = entries
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::Normal(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    for (i, e) in entries.iter().enumerate() {
        let value = codec::encode("log entry", LOG_ENTRY_FORMAT, e).unwrap();
        out.with("consensus_codec", &format!("entry-{i:02}"), 2, &value);
    }
    for (i, r) in requests.iter().enumerate() {
        out.bincode("raft_rpc", &format!("propose-{i:02}"), 3, r);
    }
    // consensus_apply: the fixtures' requests in order, whole and in halves.
    let seq = |rs: &[Request]| {
        rs.iter()
            .flat_map(|r| bincode::serialize(r).unwrap())
            .collect::<Vec<u8>>()
    };
    out.put("consensus_apply", "all", &seq(&requests));
    let half = requests.len() / 2;
    out.put("consensus_apply", "first-half", &seq(&requests[..half]));
    out.put("consensus_apply", "second-half", &seq(&requests[half..]));
    for (i, r) in requests.iter().enumerate() {
        out.put(
            "consensus_apply",
            &format!("one-{i:02}"),
            &seq(std::slice::from_ref(r)),
        );
    }

    // consensus_codec: snapshot data, metadata values, state records.
    let v1 = hex_fixture("consensus/tests/fixtures/state.v1.hex");
    let v2 = hex_fixture("consensus/tests/fixtures/state.v2.hex");
    out.with("consensus_codec", "state-v1", 0, &v1);
    out.with("consensus_codec", "state-v2", 0, &v2);
    let state = codec::decode_state(&v2).expect("state fixture");
    let cc = "consensus_codec";
    let enc = |format: u8, v: &dyn erased::Enc| v.enc(format);
    out.with(cc, "vote", 4, &enc(META_FORMAT, &Vote::new_committed(3, 1)));
    out.with(cc, "log-id", 5, &enc(META_FORMAT, &Some(log_id(3, 1, 42))));
    let stored = StoredMembership::new(Some(log_id(1, 1, 1)), membership());
    out.with(cc, "membership", 6, &enc(META_FORMAT, &stored));
    let snap_meta = RaftSnapshotMeta {
        last_log_id: Some(log_id(3, 1, 42)),
        last_membership: stored.clone(),
        snapshot_id: "3-42-7".into(),
    };
    out.with(cc, "snapshot-meta", 7, &enc(META_FORMAT, &snap_meta));
    if let Some(a) = state.accounts().values().next() {
        out.with(cc, "account", 8, &enc(STATE_FORMAT, a));
    }
    if let Some(d) = state.devices().values().next() {
        out.with(cc, "device", 9, &enc(STATE_FORMAT, d));
    }
    if let Some(v) = state.vaults().values().next() {
        out.with(cc, "vault", 10, &enc(STATE_FORMAT, v));
    }
    if let Some(t) = state.tiers().values().next() {
        out.with(cc, "tier", 11, &enc(STATE_FORMAT, t));
    }
    if let Some(s) = state.snapshots().values().next() {
        out.with(cc, "snapshot", 12, &enc(STATE_FORMAT, s));
    }
    if let Some(j) = state.jobs().values().next() {
        out.with(cc, "job", 13, &enc(STATE_FORMAT, j));
    }
    if let Some(n) = state.storage_nodes().values().next() {
        out.with(cc, "storage-node", 14, &enc(STATE_FORMAT, n));
    }
    if let Some(i) = state.items().values().next() {
        out.with(cc, "item", 15, &enc(STATE_FORMAT, i));
    }
    out.with(
        cc,
        "dedup",
        15,
        &enc(STATE_FORMAT, &(7u64, Outcome::Applied)),
    );

    // raft_rpc
    let vote = Vote::new_committed(3, 1);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(3, 1, 10)),
        leader_commit: Some(log_id(3, 1, 9)),
        entries: entries.iter().take(4).cloned().collect(),
    };
    out.bincode("raft_rpc", "append", 0, &append);
    let membership_entry = LogEntry {
        log_id: log_id(3, 1, 11),
        payload: EntryPayload::Membership(membership()),
    };
    let blank = LogEntry {
        log_id: log_id(3, 1, 12),
        payload: EntryPayload::Blank,
    };
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: None,
        leader_commit: None,
        entries: vec![membership_entry, blank],
    };
    out.bincode("raft_rpc", "append-membership", 0, &append);
    out.bincode(
        "raft_rpc",
        "vote",
        1,
        &VoteRequest::new(Vote::new(4, 2), Some(log_id(3, 1, 12))),
    );
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: snap_meta,
        offset: 0,
        data: v2[..200].to_vec(),
        done: false,
    };
    out.bincode("raft_rpc", "install", 2, &install);
    out.bincode("raft_rpc", "remove", 4, &3u64);
    type A<T> = Result<T, openraft::error::RaftError<NodeId>>;
    out.bincode(
        "raft_rpc",
        "append-ok",
        5,
        &A::Ok(AppendEntriesResponse::<NodeId>::Success),
    );
    out.bincode(
        "raft_rpc",
        "append-higher",
        5,
        &A::Ok(AppendEntriesResponse::<NodeId>::HigherVote(Vote::new(9, 3))),
    );
    let granted = VoteResponse {
        vote,
        vote_granted: true,
        last_log_id: Some(log_id(3, 1, 12)),
    };
    out.bincode("raft_rpc", "vote-ok", 6, &A::Ok(granted));
    out.bincode(
        "raft_rpc",
        "install-ok",
        7,
        &Result::<_, openraft::error::RaftError<NodeId, openraft::error::InstallSnapshotError>>::Ok(
            InstallSnapshotResponse { vote },
        ),
    );
    out.bincode(
        "raft_rpc",
        "proposed",
        8,
        &Result::<(u64, Outcome), String>::Ok((12, Outcome::Applied)),
    );
    out.bincode(
        "raft_rpc",
        "read-index",
        9,
        &Result::<Option<u64>, String>::Ok(Some(12)),
    );
    let removed = cairn_proto::admin::RemoveResponse {
        node_id: 3,
        leader: Some(1),
        voters: vec![1, 2],
        learners: vec![],
    };
    out.bincode(
        "raft_rpc",
        "removed",
        10,
        &Result::<_, cairn_node::error::ForwardedError>::Ok(removed),
    );

    // api_json
    let kdf = api::Kdf {
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
        salt: vec![9; 16],
    };
    let acc = AccountId([1; 16]);
    let dev = DeviceId([2; 16]);
    let vault = VaultId([3; 16]);
    out.json("kdf", 0, &kdf);
    out.json(
        "sweep",
        1,
        &api::SweepReply {
            deleted: 3,
            kept_recently_used: 1,
        },
    );
    out.json(
        "error",
        2,
        &api::ErrorBody {
            code: "bad_request".into(),
            message: "no".into(),
        },
    );
    out.json(
        "login-params",
        3,
        &api::LoginParamsRequest {
            user: "alice".into(),
        },
    );
    out.json(
        "login",
        4,
        &api::LoginRequest {
            user: "alice".into(),
            login_key: vec![7; 32],
            device: "laptop".into(),
        },
    );
    out.json(
        "login-reply",
        5,
        &api::LoginReply {
            token: "t0k3n".into(),
            account: acc,
            device: dev,
            device_name: "laptop".into(),
            nodes: vec!["https://10.0.0.1:7000".into()],
        },
    );
    out.json(
        "account",
        6,
        &api::AccountInfo {
            id: acc,
            name: "alice".into(),
            kdf: kdf.clone(),
            device: dev,
            nodes: vec![],
        },
    );
    let rewrapped = api::RewrappedKeys {
        vault,
        wrapped_keys: vec![6; 80],
    };
    out.json("rewrapped", 7, &rewrapped);
    out.json(
        "password",
        8,
        &api::PasswordChange {
            old_login_key: vec![1; 32],
            kdf: kdf.clone(),
            login_key: vec![2; 32],
            vaults: vec![rewrapped],
        },
    );
    let device = api::DeviceInfo {
        id: dev,
        account: acc,
        name: "laptop".into(),
        registered_at: 1,
        last_login_at: 2,
        revoked_at: None,
        current: true,
    };
    out.json("devices", 9, &vec![device.clone()]);
    out.json(
        "rename",
        10,
        &api::RenameDevice {
            name: "work".into(),
        },
    );
    let tier = api::TierInfo {
        name: "standard".into(),
        replicas: 3,
        quota_bytes: Some(1 << 40),
        description: "three copies".into(),
        requestable: true,
    };
    out.json("tiers", 11, &vec![tier.clone()]);
    out.json(
        "create-vault",
        12,
        &api::CreateVault {
            id: vault,
            name: "main".into(),
            tier: "standard".into(),
            wrapped_keys: vec![6; 80],
        },
    );
    let vinfo = api::VaultInfo {
        id: vault,
        name: "main".into(),
        tier: "standard".into(),
        replicas: 3,
        quota_bytes: None,
        used_bytes: 10,
        created_at: 1,
        wrapped_keys: vec![6; 80],
        snapshots: 2,
        before: vec!["true".into()],
        after: vec![],
    };
    out.json("vaults", 13, &vec![vinfo.clone()]);
    let stats = api::SnapshotStats {
        files: 1,
        bytes: 2,
        new_bytes: 3,
        new_chunks: 4,
    };
    out.json("stats", 14, &stats);
    out.json(
        "commit",
        15,
        &api::CommitSnapshot {
            id: SnapshotId([4; 16]),
            item: "home".into(),
            started_at: 1,
            finished_at: 2,
            root: ChunkId([5; 32]),
            stats,
            sealed_meta: vec![1, 2, 3],
            job: JobId([6; 16]),
        },
    );
    let sinfo = api::SnapshotInfo {
        id: SnapshotId([4; 16]),
        vault,
        device: dev,
        device_name: "laptop".into(),
        item: "home".into(),
        started_at: 1,
        finished_at: 2,
        root: ChunkId([5; 32]),
        stats,
        sealed_meta: vec![1, 2, 3],
    };
    out.json("snapshots", 16, &vec![sinfo.clone()]);
    out.json(
        "upload",
        17,
        &api::UploadReply {
            stored: 1,
            present: 2,
            replicas: 3,
        },
    );
    out.json(
        "put-item",
        18,
        &api::PutItem {
            paths: vec!["/home".into()],
            excludes: vec!["*.o".into()],
            vault,
            before: vec![],
            after: vec!["echo done".into()],
        },
    );
    let item = api::ItemInfo {
        name: "home".into(),
        paths: vec!["/home".into()],
        excludes: vec![],
        vault,
        updated_at: 5,
        before: vec![],
        after: vec!["echo done".into()],
    };
    out.json("items", 19, &vec![item.clone()]);
    out.json("job-kind", 20, &api::JobKind::Backup);
    out.json("job-status", 21, &api::JobStatus::Warning);
    out.json(
        "start-job",
        22,
        &api::StartJob {
            id: JobId([6; 16]),
            kind: api::JobKind::Backup,
            vault: Some(vault),
            item: Some("home".into()),
            schedule: None,
        },
    );
    out.json(
        "finish-job",
        23,
        &api::FinishJob {
            status: api::JobStatus::Error,
            files: 1,
            bytes: 2,
            error: Some("disk".into()),
            log: "l".into(),
        },
    );
    let job = api::JobInfo {
        id: JobId([6; 16]),
        account: acc,
        user: "alice".into(),
        device: dev,
        device_name: "laptop".into(),
        vault: Some(vault),
        kind: api::JobKind::Prune,
        started_at: 1,
        finished_at: Some(2),
        duration_ms: Some(1),
        status: Some(api::JobStatus::Succeeded),
        files: 0,
        bytes: 0,
        error: None,
        log: String::new(),
        item: Some("home".into()),
        schedule: Some("nightly".into()),
        last_seen: 2,
        revived: false,
        dispatched_by: None,
    };
    out.json("jobs", 24, &vec![job.clone()]);
    use cairn_proto::admin as node;
    let nkdf = node::Kdf {
        memory_kib: 65536,
        iterations: 3,
        parallelism: 1,
        salt: "09".repeat(16),
    };
    out.json(
        "create-user",
        25,
        &node::CreateUser {
            name: "alice".into(),
            kdf: nkdf,
            login_key: "07".repeat(32),
            org: None,
        },
    );
    out.json(
        "users",
        26,
        &vec![node::UserInfo {
            id: "01".repeat(16),
            name: "alice".into(),
            created_at: 1,
            devices: 1,
            vaults: 1,
            org: "default".into(),
            disabled: None,
        }],
    );
    out.json(
        "define-tier",
        27,
        &node::DefineTier {
            name: "gold".into(),
            replicas: 3,
            requestable: false,
            quota_bytes: Some(5),
            description: "d".into(),
            labels: vec!["ssd".into()],
        },
    );
    out.json(
        "join",
        28,
        &node::JoinRequest {
            node_id: 4,
            addr: "https://10.0.0.4:7000".into(),
            roles: vec!["storage".into()],
            labels: vec!["ssd".into()],
        },
    );
    out.json(
        "join-reply",
        29,
        &node::JoinResponse {
            voter: true,
            leader: 1,
        },
    );
    out.json(
        "status",
        30,
        &node::ClusterStatus {
            node_id: 1,
            role: "Leader".into(),
            leader: Some(1),
            leader_addr: Some("https://10.0.0.1:7000".into()),
            term: 3,
            last_applied: Some(10),
            last_log_index: Some(10),
            snapshot_index: None,
            purged_index: None,
            members: vec![node::Member {
                id: 1,
                addr: "https://10.0.0.1:7000".into(),
                voter: true,
                matched_index: Some(10),
                applied_index: Some(10),
                roles: vec!["auth".into(), "cluster".into()],
            }],
            voters: vec![1],
            storage_nodes: vec![node::StorageNodeInfo {
                id: 1,
                addr: "https://10.0.0.1:7000".into(),
                status: "Active".into(),
                chunks: Some(1),
                bytes: Some(2),
                to_move: None,
                labels: vec!["ssd".into()],
            }],
            under_replicated_chunks: Some(0),
            license: None,
            unsatisfiable_tiers: Vec::new(),
        },
    );
    out.json(
        "admin-tiers",
        31,
        &vec![node::TierInfo {
            tier: api::TierInfo {
                name: "standard".into(),
                replicas: 3,
                requestable: true,
                quota_bytes: None,
                description: String::new(),
            },
            defined_at: 1,
            labels: Vec::new(),
        }],
    );
    out.json(
        "remove",
        32,
        &node::RemoveRequest {
            node_id: 3,
            force: true,
        },
    );
    out.json(
        "remove-reply",
        33,
        &node::RemoveResponse {
            node_id: 3,
            leader: Some(1),
            voters: vec![1, 2],
            learners: vec![4],
        },
    );
    out.json(
        "drain",
        34,
        &cairn_proto::admin::DrainRequest { node_id: 2 },
    );
    out.json(
        "drain-reply",
        35,
        &cairn_proto::admin::DrainResponse {
            node_id: 2,
            status: "Draining".into(),
        },
    );
    let vault_json = std::fs::read(repo().join("client/tests/fixtures/vault-v1/vault/vault.json"))
        .expect("vault.json");
    out.with("api_json", "vault-json", 36, &vault_json);
    out.json("device", 38, &device);
    out.json("vault", 39, &vinfo);
    out.json("snapshot", 40, &sinfo);
    out.json("job", 41, &job);
    out.json("item", 42, &item);
    out.json("tier", 43, &tier);
    println!("seeds written under {}", out.0.display());
}

/// Encoding behind a format byte for values of different types.
mod erased {
    pub trait Enc {
        fn enc(&self, format: u8) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Enc for T {
        fn enc(&self, format: u8) -> Vec<u8> {
            cairn_consensus::codec::encode("seed", format, self).expect("encode")
        }
    }
}
