//! The storage role on real `cairnd` processes: replicated uploads (R=3,
//! W=2) through one node, reads through another after SIGKILL, uploads
//! while a node is down, repair when it returns (the under-replicated gauge
//! reaches 0), a damaged copy detected and repaired on read, drain and
//! removal without loss, quota and size limits.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use cairn_chunkstore::{ChunkKey, RocksStore, Store, StoreOptions};
use cairn_proto::admin::ClusterStatus;
use cairn_proto::frames;
use cairn_proto::{ChunkId, VaultId};
use common::storage::{random_chunks, serve, three_nodes, Device, Http, FAST};
use common::{stderr, wait_for, Node};
use serde_json::{json, Value};

/// The cluster status as the leader sees it, asked through `via`.
fn leader_status(via: &Node) -> Option<ClusterStatus> {
    via.status().filter(|s| s.leader.is_some())
}

/// The leader's status once it has finished two more repair passes, so it
/// reflects everything done before the call.
fn settled_status(nodes: &[Node]) -> ClusterStatus {
    let leader = wait_for("a leader", Duration::from_secs(30), || {
        nodes.iter().find_map(|n| leader_status(n)?.leader)
    });
    let node = nodes
        .iter()
        .find(|n| n.id == leader)
        .expect("leader is one of ours");
    let passes = || node.metric("cairn_storage_repair_passes_total");
    let start = wait_for("repair passes", Duration::from_secs(30), passes);
    wait_for("two more repair passes", Duration::from_secs(30), || {
        (passes()? >= start + 2.0).then_some(())
    });
    leader_status(node).expect("leader status")
}

fn under_replicated(via: &Node) -> Option<u64> {
    leader_status(via)?.under_replicated_chunks
}

fn stored_chunks(node: &Node) -> Option<f64> {
    node.metric("cairn_storage_chunks")
}

#[test]
fn replicated_chunks_survive_a_dead_node_and_come_back_to_three_copies() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = three_nodes(tmp.path());
    let http = Http::new();
    let dev = Device::create(&http, &nodes[0], "alice", "triple", 3, None);

    // 40 chunks of 100 KiB through node 1, in two batches.
    let first = random_chunks(40, 100 * 1024);
    assert_eq!(dev.missing(&http, &nodes[0], first.keys()).len(), 40);
    let all: Vec<(&ChunkId, &Vec<u8>)> = first.iter().collect();
    for half in all.chunks(20) {
        let r = dev.upload(&http, &nodes[0], half);
        assert_eq!((r.stored, r.present), (20, 0));
        assert!(r.replicas >= 2, "{r:?}");
    }
    assert!(dev.missing(&http, &nodes[1], first.keys()).is_empty());
    let again = dev.upload(&http, &nodes[0], &all[..5]);
    assert_eq!((again.stored, again.present), (0, 5), "dedup");
    for n in &nodes {
        wait_for(
            &format!("node {} holds 40 chunks", n.id),
            Duration::from_secs(20),
            || (stored_chunks(n)? == 40.0).then_some(()),
        );
    }

    // SIGKILL node 1: everything reads back through node 3.
    nodes[0].kill();
    let ids: Vec<ChunkId> = first.keys().copied().collect();
    let got = wait_for("reads through node 3", Duration::from_secs(30), || {
        let g = dev.get(&http, &nodes[2], &ids);
        (g.len() == ids.len()).then_some(g)
    });
    assert_eq!(got, first, "byte-identical through node 3");

    // Uploads go on with W=2 while node 1 is down.
    let second = random_chunks(20, 100 * 1024);
    let batch: Vec<(&ChunkId, &Vec<u8>)> = second.iter().collect();
    let r = dev.upload(&http, &nodes[1], &batch);
    assert_eq!((r.stored, r.replicas), (20, 2), "{r:?}");
    // Every chunk has node 1 as an owner.
    wait_for(
        "the leader counts 60 chunks short",
        Duration::from_secs(30),
        || (under_replicated(&nodes[2]) == Some(60)).then_some(()),
    );

    // Node 1 returns: repair copies what it missed; the gauge reaches 0.
    serve(&mut nodes[0], FAST);
    nodes[0].wait_ready();
    wait_for(
        "repair back to three copies",
        Duration::from_secs(60),
        || {
            (under_replicated(&nodes[2]) == Some(0) && stored_chunks(&nodes[0]) == Some(60.0))
                .then_some(())
        },
    );
    let leader = leader_status(&nodes[2])
        .and_then(|s| s.leader)
        .expect("leader");
    let leader_node = nodes.iter().find(|n| n.id == leader).expect("leader node");
    assert_eq!(
        leader_node.metric("cairn_storage_under_replicated_chunks"),
        Some(0.0)
    );
    assert!(
        leader_node
            .metric("cairn_storage_repair_bytes_total")
            .unwrap_or(0.0)
            >= 20.0 * 100.0 * 1024.0
    );
    let mut everything = first.clone();
    everything.extend(second.clone());
    let ids: Vec<ChunkId> = everything.keys().copied().collect();
    assert_eq!(dev.get(&http, &nodes[0], &ids), everything);

    // Damage node 2's copy of one chunk offline: reads stay correct and
    // the copy is repaired.
    let victim = ids[7];
    nodes[1].kill();
    let out = corrupt_replica(&[
        "--data-dir",
        &nodes[1].dir.to_string_lossy(),
        "--vault",
        &dev.vault.to_hex(),
        "--chunk",
        &victim.to_hex(),
    ]);
    assert!(out.status.success(), "corrupt-replica: {}", stderr(&out));
    {
        let store = RocksStore::open(&nodes[1].dir.join("chunks"), &StoreOptions::default())
            .expect("open node 2's store");
        assert!(
            matches!(
                store.get(&ChunkKey::new(dev.vault, victim)),
                Err(cairn_chunkstore::Error::Corrupt { .. })
            ),
            "damage detected"
        );
    }
    serve(&mut nodes[1], FAST);
    nodes[1].wait_ready();
    let got = dev.get(&http, &nodes[1], &[victim]);
    assert_eq!(
        got.get(&victim),
        everything.get(&victim),
        "the read is still correct"
    );
    assert!(
        nodes[1]
            .metric("cairn_storage_corrupt_copies_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        nodes[1]
            .metric("cairn_storage_read_repairs_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    nodes[1].kill();
    let store = RocksStore::open(&nodes[1].dir.join("chunks"), &StoreOptions::default())
        .expect("open node 2's store");
    assert_eq!(
        store
            .get(&ChunkKey::new(dev.vault, victim))
            .expect("repaired copy reads"),
        everything.get(&victim).cloned()
    );
    drop(store);

    // A damaged copy that nobody reads is found and rewritten by the scrub.
    let unread = ids[11];
    nodes[2].kill();
    let out = corrupt_replica(&[
        "--data-dir",
        &nodes[2].dir.to_string_lossy(),
        "--vault",
        &dev.vault.to_hex(),
        "--chunk",
        &unread.to_hex(),
    ]);
    assert!(out.status.success(), "corrupt-replica: {}", stderr(&out));
    serve(
        &mut nodes[2],
        &[FAST, &["--scrub-interval-ms", "200"]].concat(),
    );
    wait_for(
        "the scrub repairs node 3's copy",
        Duration::from_secs(30),
        || {
            let n = &nodes[2];
            (n.metric("cairn_storage_corrupt_copies_total")? >= 1.0
                && n.metric("cairn_storage_read_repairs_total")? >= 1.0)
                .then_some(())
        },
    );
    nodes[2].kill();
    let store = RocksStore::open(&nodes[2].dir.join("chunks"), &StoreOptions::default())
        .expect("open node 3's store");
    assert_eq!(
        store
            .get(&ChunkKey::new(dev.vault, unread))
            .expect("scrubbed copy reads"),
        everything.get(&unread).cloned()
    );
}

#[test]
fn drain_and_remove_lose_nothing_and_limits_hold() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = three_nodes(tmp.path());
    let http = Http::new();
    let dev = Device::create(&http, &nodes[0], "bob", "double", 2, None);

    let chunks = random_chunks(60, 50 * 1024);
    let all: Vec<(&ChunkId, &Vec<u8>)> = chunks.iter().collect();
    let r = dev.upload(&http, &nodes[0], &all);
    assert_eq!(r.stored, 60);
    wait_for("two copies of everything", Duration::from_secs(30), || {
        let total: f64 = nodes.iter().map(|n| stored_chunks(n).unwrap_or(0.0)).sum();
        (total == 120.0).then_some(())
    });
    assert_eq!(settled_status(&nodes).under_replicated_chunks, Some(0));

    // Drain node 3: its copies move to nodes 1 and 2, then it is removed.
    let out = nodes[0].cli(&["cluster", "drain", "3"]);
    assert!(out.status.success(), "drain: {}", stderr(&out));
    wait_for("node 3 drained", Duration::from_secs(60), || {
        let s = settled_status(&nodes);
        let n3 = s.storage_nodes.iter().find(|n| n.id == 3)?;
        (n3.status == "Draining" && n3.chunks == Some(0) && s.under_replicated_chunks == Some(0))
            .then_some(())
    });
    assert_eq!(stored_chunks(&nodes[0]), Some(60.0));
    assert_eq!(stored_chunks(&nodes[1]), Some(60.0));
    let out = nodes[0].cli(&["cluster", "remove", "3"]);
    assert!(out.status.success(), "remove: {}", stderr(&out));
    nodes[2].kill();
    let ids: Vec<ChunkId> = chunks.keys().copied().collect();
    assert_eq!(dev.get(&http, &nodes[1], &ids), chunks, "nothing lost");

    // Quota: a 300 KiB vault takes 200 KiB, refuses the next 200 KiB whole.
    let small = Device::create(&http, &nodes[0], "carol", "tiny", 2, Some(300 * 1024));
    let a = random_chunks(4, 50 * 1024);
    let b = random_chunks(4, 50 * 1024);
    let r = small.upload(&http, &nodes[0], &a.iter().collect::<Vec<_>>());
    assert_eq!(r.stored, 4);
    let (code, body) = small.upload_raw(&http, &nodes[1], &b.iter().collect::<Vec<_>>());
    let err: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(
        (code, err["code"].as_str()),
        (507, Some("quota_exceeded")),
        "{err}"
    );
    assert_eq!(
        small.missing(&http, &nodes[0], b.keys()).len(),
        4,
        "nothing stored"
    );

    // Size limit: a declared body over the limit is refused with 413 JSON.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", nodes[0].port)).expect("connect");
    write!(
        s,
        "POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n",
        small.path(""),
        small.token
    )
    .expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");

    // Another account's vault is not found.
    let (code, _) = http.post(
        &nodes[0],
        &dev.path("/missing"),
        &small.token,
        frames::encode_ids(&ids[..1]),
    );
    assert_eq!(code, 404);

    // Deleting a vault: garbage collection removes its chunks everywhere.
    for n in &nodes[..2] {
        assert_eq!(stored_chunks(n), Some(64.0));
    }
    let code = http.delete(
        &nodes[0],
        &format!("/api/v1/vaults/{}", small.vault),
        &small.token,
    );
    assert!((200..300).contains(&code), "delete vault: {code}");
    for n in &nodes[..2] {
        wait_for(
            &format!("gc on node {}", n.id),
            Duration::from_secs(30),
            || (stored_chunks(n) == Some(60.0)).then_some(()),
        );
        assert_eq!(n.metric("cairn_storage_gc_deleted_chunks_total"), Some(4.0));
    }
}

/// Throughput on loopback (a measurement, not a check: `cargo test -p
/// cairn-node --release --test storage -- --ignored --nocapture`).
/// `CAIRN_BENCH_MB` sets the data size (default 200).
#[test]
#[ignore]
fn measure_throughput() {
    let mb: usize = std::env::var("CAIRN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = three_nodes(tmp.path());
    let http = Http::new();
    let dev = Device::create(&http, &nodes[0], "bench", "triple", 3, None);
    let chunks = random_chunks(mb, 1 << 20);
    let all: Vec<(ChunkId, Vec<u8>)> = chunks.into_iter().collect();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for part in all.chunks(all.len().div_ceil(4)) {
            let dev = &dev;
            let node = &nodes[0];
            s.spawn(move || {
                let http = Http::new();
                for batch in part.chunks(8) {
                    let refs: Vec<(&ChunkId, &Vec<u8>)> =
                        batch.iter().map(|(i, b)| (i, b)).collect();
                    dev.upload(&http, node, &refs);
                }
            });
        }
    });
    let up = started.elapsed();
    let started = std::time::Instant::now();
    let ids: Vec<ChunkId> = all.iter().map(|(i, _)| *i).collect();
    let got: usize = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(ids.len().div_ceil(4))
            .map(|part| {
                let dev = &dev;
                let node = &nodes[2];
                s.spawn(move || {
                    let http = Http::new();
                    part.chunks(32)
                        .map(|b| dev.get(&http, node, b).len())
                        .sum::<usize>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("reader")).sum()
    });
    let down = started.elapsed();
    assert_eq!(got, ids.len());
    nodes[1].kill();
    let extra = random_chunks(mb / 2, 1 << 20);
    let refs: Vec<(&ChunkId, &Vec<u8>)> = extra.iter().collect();
    for batch in refs.chunks(8) {
        dev.upload(&http, &nodes[0], batch);
    }
    let before = settled_status(&nodes);
    let started = std::time::Instant::now();
    serve(&mut nodes[1], FAST);
    wait_for("repair", Duration::from_secs(600), || {
        (stored_chunks(&nodes[1]) == Some((mb + mb / 2) as f64)).then_some(())
    });
    let repair = started.elapsed();
    eprintln!(
        "upload {mb} MiB to 3 nodes (R=3, W=2): {:.0} MiB/s; get through node 3: {:.0} MiB/s; \
         repair of {} MiB: {:.0} MiB/s (under-replicated before: {:?})",
        mb as f64 / up.as_secs_f64(),
        mb as f64 / down.as_secs_f64(),
        mb / 2,
        (mb / 2) as f64 / repair.as_secs_f64(),
        before.under_replicated_chunks
    );
}

#[test]
fn internal_storage_routes_need_the_cluster_secret() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = tmp.path().join("cluster.secret");
    std::fs::write(&secret, "storage-secret\n").expect("write secret");
    let mut n1 = Node::new(tmp.path(), 1);
    n1.init_with(&["--cluster-secret-file", &secret.to_string_lossy()]);
    n1.start();
    n1.wait_ready();
    let http = Http::new();
    let body = bincode::serialize(&VaultId([3; 16])).expect("bincode");
    let ask = |secret: Option<&str>| {
        http.rt.block_on(async {
            let mut rb = http
                .client
                .post(format!("{}/internal/v1/usage", n1.url()))
                .body(body.clone());
            if let Some(s) = secret {
                rb = rb.header("x-cairn-cluster-secret", s);
            }
            let resp = rb.send().await.expect("request");
            (
                resp.status().as_u16(),
                resp.bytes().await.expect("body").to_vec(),
            )
        })
    };
    assert_eq!(ask(None).0, 401);
    assert_eq!(ask(Some("wrong")).0, 401);
    for path in ["touch", "sweep", "ids"] {
        let code = http.rt.block_on(async {
            http.client
                .post(format!("{}/internal/v1/chunks/{path}", n1.url()))
                .body(vec![0u8; 8])
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        });
        assert_eq!(code, 401, "{path} without the secret");
    }
    let (code, answer) = ask(Some("storage-secret"));
    assert_eq!(code, 200);
    let usage: cairn_chunkstore::Usage = bincode::deserialize(&answer).expect("usage");
    assert_eq!(usage, cairn_chunkstore::Usage::default());
}

/// Starts a job of `kind` on the device's vault; answers its id.
impl Device {
    /// One page of `chunks/list`.
    fn list(&self, http: &Http, node: &Node, after: Option<&ChunkId>) -> Vec<ChunkId> {
        let query = after.map_or_else(String::new, |a| format!("?after={a}"));
        let (code, body) = http.post(
            node,
            &self.path(&format!("/list{query}")),
            &self.token,
            vec![],
        );
        assert_eq!(code, 200, "list: {}", String::from_utf8_lossy(&body));
        frames::decode_ids(&body).expect("id list")
    }

    /// Every stored id, page by page.
    fn list_all(&self, http: &Http, node: &Node) -> (Vec<ChunkId>, usize) {
        let (mut all, mut pages) = (Vec::new(), 0);
        loop {
            let page = self.list(http, node, all.last());
            pages += 1;
            let last = page.len() < cairn_proto::api::LIST_PAGE;
            all.extend(page);
            if last {
                return (all, pages);
            }
        }
    }

    /// `chunks/delete?job=…` of `ids`: status and JSON answer.
    fn sweep(&self, http: &Http, node: &Node, job: &str, ids: &[ChunkId]) -> (u16, Value) {
        let (code, body) = http.post(
            node,
            &self.path(&format!("/delete?job={job}")),
            &self.token,
            frames::encode_ids(ids),
        );
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

/// Garbage collection of a live vault: the listing is the union over the
/// nodes in ascending pages; the sweep is refused while a backup runs (or
/// ran during the prune) and for jobs that are not the device's running
/// prune; a chunk a backup found present (`missing`) or re-uploaded after
/// the prune started survives, an untouched one is gone from every node,
/// and repair does not bring it back.
#[test]
fn prune_sweeps_untouched_garbage_and_spares_what_backups_touched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(tmp.path());
    let http = Http::new();
    let dev = Device::create(&http, &nodes[0], "gina", "pair", 2, None);

    // A, B, C and one page's worth of small chunks more, spread over the
    // three nodes (R = 2), so the listing needs two pages.
    let named = random_chunks(3, 2000);
    let ids: Vec<ChunkId> = named.keys().copied().collect();
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let named_batch: Vec<(&ChunkId, &Vec<u8>)> = named.iter().collect();
    assert_eq!(dev.upload(&http, &nodes[0], &named_batch).stored, 3);
    let bulk = random_chunks(cairn_proto::api::LIST_PAGE, 24);
    let bulk_batch: Vec<(&ChunkId, &Vec<u8>)> = bulk.iter().collect();
    for part in bulk_batch.chunks(4096) {
        dev.upload(&http, &nodes[1], part);
    }
    let mut everything: Vec<ChunkId> = bulk.keys().chain(named.keys()).copied().collect();
    everything.sort_unstable();
    let started = std::time::Instant::now();
    let (listed, pages) = dev.list_all(&http, &nodes[2]);
    println!(
        "listed {} ids in {pages} pages in {:?}",
        listed.len(),
        started.elapsed()
    );
    assert_eq!(pages, 2);
    assert_eq!(listed, everything, "ascending union without duplicates");
    // A dedup check of a whole page of present ids (touching every owner's
    // copy, synced) costs one request per node.
    let started = std::time::Instant::now();
    assert!(dev.missing(&http, &nodes[0], bulk.keys()).is_empty());
    println!(
        "missing check of {} present ids: {:?}",
        bulk.len(),
        started.elapsed()
    );
    let (code, _) = http.post(&nodes[0], &dev.path("/list?after=zz"), &dev.token, vec![]);
    assert_eq!(code, 400, "a malformed `after`");

    // Everything so far is older than any prune job started from now on
    // (the cutoff is the job's start minus the 5 s clock allowance).
    std::thread::sleep(Duration::from_millis(6500));

    // A running backup blocks the sweep; so does one that finished after
    // the prune started (its snapshot may not be in the marked set).
    let backup = dev.start_job(&http, &nodes[0], "backup");
    let early = dev.start_job(&http, &nodes[0], "prune");
    let (code, body) = dev.sweep(&http, &nodes[0], &early, &[a, b, c]);
    assert_eq!((code, body["code"].as_str()), (409, Some("busy")), "{body}");
    dev.finish_job(&http, &nodes[0], &backup, None);
    let (code, body) = dev.sweep(&http, &nodes[1], &early, &[a, b, c]);
    assert_eq!((code, body["code"].as_str()), (409, Some("busy")), "{body}");
    dev.finish_job(&http, &nodes[0], &early, None);
    std::thread::sleep(Duration::from_millis(5500));

    // The prune: after it starts, a backup finds A present (a touch) and
    // uploads C again (a dedup hit, also a touch).
    let prune = dev.start_job(&http, &nodes[0], "prune");
    assert!(dev.missing(&http, &nodes[1], [&a]).is_empty());
    let again = dev.upload(&http, &nodes[2], &[(&c, &named[&c])]);
    assert_eq!((again.stored, again.present), (0, 1));

    // Wrong jobs are refused: a finished prune, a backup job, an unknown
    // id, another device's prune, a missing or malformed parameter.
    for job in [early.clone(), backup.clone(), "ab".repeat(16)] {
        let (code, body) = dev.sweep(&http, &nodes[0], &job, &[a, b, c]);
        assert_eq!(
            (code, body["code"].as_str()),
            (400, Some("bad_request")),
            "{job}: {body}"
        );
    }
    let (code, body) = http.json(
        &nodes[0],
        "/api/v1/login",
        "",
        json!({"user": "gina", "login_key": "11".repeat(32), "device": "desktop"}),
    );
    assert_eq!(code, 200, "second device: {body}");
    let desktop = Device {
        token: body["token"].as_str().expect("token").to_string(),
        vault: dev.vault,
    };
    let (code, _) = desktop.sweep(&http, &nodes[0], &prune, &[a, b, c]);
    assert_eq!(code, 400, "another device's prune job");
    for query in ["", "?job=nothex"] {
        let (code, _) = http.post(
            &nodes[0],
            &dev.path(&format!("/delete{query}")),
            &dev.token,
            frames::encode_ids([&b]),
        );
        assert_eq!(code, 400, "{query}");
    }
    assert_eq!(dev.list_all(&http, &nodes[0]).0.len(), everything.len());

    // The sweep: B (untouched) goes, A and C stay.
    let (code, body) = dev.sweep(&http, &nodes[2], &prune, &[a, b, c]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"deleted": 1, "kept_recently_used": 2}));
    let (left, _) = dev.list_all(&http, &nodes[0]);
    assert!(!left.contains(&b), "B is gone from every node");
    assert!(left.contains(&a) && left.contains(&c));
    assert_eq!(left.len(), everything.len() - 1);
    assert_eq!(dev.missing(&http, &nodes[0], [&a, &b, &c]), vec![b]);
    let got = dev.get(&http, &nodes[1], &[a, b, c]);
    assert_eq!(got.get(&a), named.get(&a));
    assert_eq!(got.get(&c), named.get(&c));
    assert!(!got.contains_key(&b));
    // Retrying the same sweep is harmless.
    let (code, body) = dev.sweep(&http, &nodes[0], &prune, &[b]);
    assert_eq!(
        (code, &body),
        (200, &json!({"deleted": 1, "kept_recently_used": 0}))
    );

    // Repair passes do not bring B back, and A and C keep two copies.
    settled_status(&nodes);
    let (left, _) = dev.list_all(&http, &nodes[1]);
    assert!(!left.contains(&b));
    let status = settled_status(&nodes);
    assert_eq!(status.under_replicated_chunks, Some(0));
}

/// `cairnd-debug corrupt-replica ARGS` (the offline tools' own binary).
fn corrupt_replica(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairnd-debug"))
        .arg("corrupt-replica")
        .args(args)
        .output()
        .expect("run cairnd-debug")
}
