//! Limits that keep one device or tenant from hurting the cluster, on a
//! real `cairnd`: a snapshot commits only under the device's running
//! backup job (what keeps a concurrent prune from deleting the chunks it
//! reused), uploads are judged by their declared length before their body
//! is read and are bounded per device and account, gets are capped, a
//! device's job error text cannot carry terminal escapes to an operator,
//! and the data directory is private to the node's user.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_proto::frames;
use cairn_proto::ChunkId;
use common::storage::{Device, Http};
use common::{stdout, Node};
use rand::RngCore;
use serde_json::{json, Value};

/// What these tests add to the shared device session.
impl Device {
    /// A device of a new user with one vault of a new tier (one replica).
    fn new(http: &Http, node: &Node, name: &str, quota: Option<u64>) -> Self {
        Device::create(http, node, name, &format!("tier-{name}"), 1, quota)
    }

    /// Uploads one random chunk and returns its id.
    fn upload_one(&self, http: &Http, node: &Node, size: usize) -> ChunkId {
        let (id, body) = frame_body(size);
        let (code, _, reply) = http.post_full(node, &self.path(""), &self.token, body);
        assert_eq!(code, 200, "upload: {}", String::from_utf8_lossy(&reply));
        id
    }

    fn commit(&self, http: &Http, node: &Node, root: &ChunkId, job: &str) -> (u16, Value) {
        http.json(
            node,
            &format!("/api/v1/vaults/{}/snapshots", self.vault),
            &self.token,
            json!({
                "id": hex::encode(rand::random::<[u8; 16]>()),
                "item": "home",
                "started_at": 1_000,
                "finished_at": 2_000,
                "root": root.to_string(),
                "stats": {"files": 1, "bytes": 1, "new_bytes": 1, "new_chunks": 1},
                "sealed_meta": "abcd",
                "job": job,
            }),
        )
    }
}

/// One chunk of random bytes as an upload body.
fn frame_body(size: usize) -> (ChunkId, Vec<u8>) {
    let mut bytes = vec![0u8; size];
    rand::thread_rng().fill_bytes(&mut bytes);
    let id = ChunkId(*blake3::hash(&bytes).as_bytes());
    let mut body = frames::frames_header();
    frames::push_frame(&mut body, &id, &bytes);
    (id, body)
}

fn started(root: &Path) -> Node {
    let mut node = Node::new(root, 1);
    node.init();
    node.start();
    node.wait_ready();
    node
}

/// Sends the head of a request (and `body_prefix`) on a raw connection
/// and leaves it open.
fn raw_request(
    node: &Node,
    path: &str,
    token: &str,
    headers: &str,
    body_prefix: &[u8],
) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", node.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\n{headers}\r\n"
    );
    s.write_all(head.as_bytes()).expect("write head");
    s.write_all(body_prefix).expect("write body");
    s
}

/// The status line's code of what the server answers on `s` (within the
/// read timeout), or `None` if it says nothing.
fn answer(mut s: TcpStream) -> Option<u16> {
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of the `cairnd` serving `node`, in MiB (Linux).
fn rss_mib(node: &Node) -> Option<f64> {
    let needle = node.dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        if cmd.contains("serve") && cmd.contains(&needle) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let kb: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            return Some(kb / 1024.0);
        }
    }
    None
}

#[test]
fn a_snapshot_commits_only_under_the_devices_running_backup_job() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = started(tmp.path());
    let http = Http::new();
    let dev = Device::new(&http, &node, "alice", None);
    let root = dev.upload_one(&http, &node, 1000);

    // The job start failed (never recorded): no commit.
    let (code, body) = dev.commit(&http, &node, &root, &hex::encode([7u8; 16]));
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "job_not_running", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("run the backup again"),
        "{body}"
    );
    // A prune job is not a backup job.
    let prune = dev.start_job(&http, &node, "prune");
    let (code, body) = dev.commit(&http, &node, &root, &prune);
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("job_not_running")),
        "{body}"
    );
    // The running backup job commits.
    let backup = dev.start_job(&http, &node, "backup");
    let (code, body) = dev.commit(&http, &node, &root, &backup);
    assert_eq!(code, 201, "{body}");
    // Once it has finished, it commits nothing more.
    dev.finish_job(&http, &node, &backup, None);
    let (code, body) = dev.commit(&http, &node, &root, &backup);
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("job_not_running")),
        "{body}"
    );
    // Another account's device cannot use it either.
    let other = Device::new(&http, &node, "bob", None);
    let theirs = dev.start_job(&http, &node, "backup");
    let root2 = other.upload_one(&http, &node, 1000);
    let (code, body) = other.commit(&http, &node, &root2, &theirs);
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("job_not_running")),
        "{body}"
    );
}

#[test]
fn uploads_are_judged_before_their_body_and_transfers_are_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = started(tmp.path());
    let http = Http::new();

    // Over quota by its declared length: refused before the body is sent.
    let small = Device::new(&http, &node, "small", Some(1 << 20));
    let t = Instant::now();
    let s = raw_request(
        &node,
        &small.path(""),
        &small.token,
        "Content-Length: 50000000\r\n",
        b"",
    );
    assert_eq!(answer(s), Some(507), "quota judged on Content-Length");
    assert!(t.elapsed() < Duration::from_secs(5));
    // Without a length there is nothing to judge: refused.
    let s = raw_request(
        &node,
        &small.path(""),
        &small.token,
        "Transfer-Encoding: chunked\r\n",
        b"5\r\n\x01abcd\r\n",
    );
    assert_eq!(answer(s), Some(411), "chunked upload without a length");

    // A device's transfers in flight are bounded: 8 held uploads, then 429.
    let big = Device::new(&http, &node, "big", None);
    let before = rss_mib(&node);
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            raw_request(
                &node,
                &big.path(""),
                &big.token,
                "Content-Length: 1048576\r\n",
                &[1u8; 1024],
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = frame_body(1000);
    let (code, retry, reply) = http.post_full(&node, &big.path(""), &big.token, body.clone());
    assert_eq!(code, 429, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(retry.as_deref(), Some("1"));
    let reply: Value = serde_json::from_slice(&reply).expect("json");
    assert_eq!(reply["code"], "rate_limited");
    let ids = frames::encode_ids([ChunkId([1; 32])].iter());
    let (code, _, _) = http.post_full(&node, &big.path("/get"), &big.token, ids.clone());
    assert_eq!(code, 429, "gets share the device's bound");
    // Another device is not held up by this one.
    let (code, _, _) = http.post_full(&node, &small.path("/get"), &small.token, ids);
    assert_eq!(code, 200);
    drop(held);
    common::wait_for(
        "the held uploads to be released",
        Duration::from_secs(10),
        || {
            (http
                .post_full(&node, &big.path(""), &big.token, body.clone())
                .0
                == 200)
                .then_some(())
        },
    );

    // An account's declared upload bytes in flight are bounded: near-full
    // 96 MiB bodies, held, take no more than the account's budget.
    let len = 96 << 20;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        let mut s = raw_request(
            &node,
            &big.path(""),
            &big.token,
            &format!("Content-Length: {len}\r\n"),
            b"",
        );
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut probe = [0u8; 64];
        match s.read(&mut probe) {
            Ok(n) if n > 0 && String::from_utf8_lossy(&probe[..n]).contains(" 429 ") => {
                refused += 1;
            }
            _ => {
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..95 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                held.push(s);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_mib(&node);
    eprintln!("RSS before {before:?} MiB, with 8 attempted 96 MiB uploads held {after:?} MiB ({} held, {refused} refused)", held.len());
    assert_eq!(held.len(), 2, "256 MiB of uploads in flight per account");
    assert_eq!(refused, 6);
    if let (Some(b), Some(a)) = (before, after) {
        assert!(a - b < 400.0, "RSS grew from {b} to {a} MiB");
    }
    drop(held);
}

#[test]
fn a_get_answers_at_most_its_cap_and_the_rest_is_asked_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = started(tmp.path());
    let http = Http::new();
    let dev = Device::new(&http, &node, "alice", None);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut body = frames::frames_header();
        for _ in 0..20 {
            let mut bytes = vec![0u8; 1 << 20];
            rand::thread_rng().fill_bytes(&mut bytes);
            let id = ChunkId(*blake3::hash(&bytes).as_bytes());
            frames::push_frame(&mut body, &id, &bytes);
            ids.push(id);
        }
        let (code, _, reply) = http.post_full(&node, &dev.path(""), &dev.token, body);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&reply));
    }
    let (code, _, reply) = http.post_full(
        &node,
        &dev.path("/get"),
        &dev.token,
        frames::encode_ids(ids.iter()),
    );
    assert_eq!(code, 200);
    let got = frames::decode_frames(&reply).expect("frames");
    assert!(!got.is_empty());
    assert!(got.len() <= 32, "{} MiB in one answer", got.len());
    let rest: Vec<ChunkId> = ids[got.len()..].to_vec();
    assert_eq!(
        got.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[..got.len()].to_vec()
    );
    let (code, _, reply) = http.post_full(
        &node,
        &dev.path("/get"),
        &dev.token,
        frames::encode_ids(rest.iter()),
    );
    assert_eq!(code, 200);
    assert_eq!(
        frames::decode_frames(&reply).expect("frames").len(),
        rest.len()
    );
}

#[test]
fn admin_jobs_shows_a_devices_escape_sequences_escaped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = started(tmp.path());
    let http = Http::new();
    let dev = Device::new(&http, &node, "alice", None);
    let job = dev.start_job(&http, &node, "backup");
    let info = dev.finish_job(
        &http,
        &node,
        &job,
        Some("disk \u{1b}[2J\u{1b}]0;pwned\u{7} full"),
    );
    assert_eq!(
        info["error"], "disk \\u{1b}[2J\\u{1b}]0;pwned\\u{7} full",
        "{info}"
    );
    let out = node.admin(&["jobs"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("disk \\u{1b}[2J"), "{text}");
}

#[test]
fn the_data_directory_is_private_to_the_nodes_user() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.init();
    let exposed = |root: &Path| -> Vec<String> {
        let mut bad = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(p) = pending.pop() {
            let meta = std::fs::symlink_metadata(&p).expect("metadata");
            if meta.permissions().mode() & 0o077 != 0 {
                bad.push(format!("{} {:o}", p.display(), meta.permissions().mode()));
            }
            if meta.is_dir() {
                pending.extend(
                    std::fs::read_dir(&p)
                        .expect("dir")
                        .map(|e| e.expect("entry").path()),
                );
            }
        }
        bad
    };
    assert_eq!(exposed(&node.dir), Vec::<String>::new(), "after init");
    // A data directory made readable (by an older build, or by hand) is
    // made private again when the node starts, and so is what it writes.
    let raft = node.dir.join("raft");
    std::fs::set_permissions(&node.dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for f in std::fs::read_dir(&raft).expect("raft dir").flatten() {
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    node.start();
    node.wait_ready();
    let http = Http::new();
    let dev = Device::new(&http, &node, "alice", None);
    dev.upload_one(&http, &node, 1000);
    assert_eq!(exposed(&node.dir), Vec::<String>::new(), "after serve");
}
