//! Storage nodes whose chunks live in an object store (issue 18, item 4):
//! four nodes, a tier of R=4, W=2; node 3 started with `--chunk-store
//! s3://BUCKET/node3` against an s3s-fs server on loopback (its objects
//! are files the test can damage), node 4 with `--chunk-store
//! sftp://root@127.0.0.1:PORT/DIR` against OpenSSH's sshd. Back up, kill
//! another node, restore byte-exact; a chunk object flipped and another
//! deleted in the bucket are found by node 3's scrub and rewritten from the
//! other replicas, and so is one `cairnd-debug corrupt-replica
//! --chunk-store` damaged on the stopped node; a prune deletes the dead
//! chunks' objects in the bucket and on the SFTP server. Before the
//! cluster: a missing bucket and refused credentials stop `cairnd serve`
//! with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_tests::{bin, ok, stderr, wait_for, write_data, Cluster, Device, Node};
use cairn_testservers::{S3sFs, Sshd, BUCKET};
use serde_json::Value;

const PW: &str = "cloud backed pass words";

/// `cairnd serve` of a fresh single node with `--chunk-store url` and
/// `env`: it must exit non-zero within a minute; answers its stderr.
fn serve_fails(url: &str, env: &[(String, String)]) -> String {
    let root = tempfile::tempdir().expect("temp dir");
    let node = Node::new(root.path(), 1);
    node.init();
    let mut child = Command::new(bin("cairnd"))
        .args(["serve", "--data-dir"])
        .arg(&node.dir)
        .args(["--chunk-store", url])
        .env("CAIRND_DEV_LICENSE", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairnd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cairnd serve with a bad chunk store kept running");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    assert!(!status.success(), "cairnd serve succeeded");
    stderr(&out)
}

/// The chunk objects (not temporaries) under an SFTP node's `chunks/`.
fn files_in(chunks: &Path) -> usize {
    let vaults = std::fs::read_dir(chunks).into_iter().flatten().flatten();
    vaults
        .flat_map(|v| std::fs::read_dir(v.path()).into_iter().flatten().flatten())
        .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
        .filter(|f| !f.file_name().to_string_lossy().contains(".tmp-"))
        .count()
}

fn status_of(node: &Node) -> Option<Value> {
    serde_json::from_slice(&node.cli(&["cluster", "status", "--json"]).stdout).ok()
}

fn wait_fully_replicated(cluster: &Cluster, via: usize) {
    wait_for(
        "under-replicated chunks to reach 0",
        Duration::from_secs(180),
        || {
            let status = status_of(&cluster.nodes[via])?;
            (status["under_replicated_chunks"].as_u64() == Some(0)).then_some(())
        },
    );
}

#[test]
fn a_cloud_backed_storage_node_survives_loss_damage_and_prune() {
    let Some(s3) = S3sFs::start() else { return };
    let Some(sshd) = Sshd::start() else { return };

    // A bucket that does not exist, then refused credentials: clear
    // messages, non-zero exit, before the node serves anything.
    let err = serve_fails("s3://no-such-bucket/x", &s3.env());
    assert!(err.contains("bucket does not exist"), "{err}");
    let mut wrong = s3.env();
    wrong.retain(|(k, _)| k != "AWS_SECRET_ACCESS_KEY");
    wrong.push(("AWS_SECRET_ACCESS_KEY".into(), "wrong".into()));
    let err = serve_fails(&format!("s3://{BUCKET}/x"), &wrong);
    assert!(err.contains("refused our credentials"), "{err}");

    let fast = [
        "--repair-interval-ms",
        "1000",
        "--scrub-interval-ms",
        "2000",
    ];
    let mut cluster = Cluster::start(2, &fast);
    let url = format!("s3://{BUCKET}/node3");
    let mut cloud: Vec<&str> = fast.to_vec();
    cloud.extend(["--chunk-store", &url]);
    cluster.add_node_with_env(&cloud, &["--storage-labels", "cloud"], &s3.env());
    let sftp_url = sshd.url("node4");
    let mut on_sftp: Vec<&str> = fast.to_vec();
    on_sftp.extend(["--chunk-store", &sftp_url]);
    cluster.add_node_with_env(&on_sftp, &["--storage-labels", "sftp"], &sshd.env());
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "triple", "--replicas", "4"]),
    );
    cluster.create_user("dana", PW);
    let homes = cluster.scratch("devices");
    let device = Device::new(&homes.join("d"), "laptop", PW);
    ok("login", &device.login(&cluster.nodes[0].url(), "dana"));
    device.json(&["vault", "request", "--tier", "triple", "--name", "main"]);

    // Back up ~40 MB through node 1; every chunk reaches node 3's bucket.
    let data = cluster.scratch("data");
    for i in 0..5u64 {
        write_data(&data.join(format!("f{i}.bin")), 8 << 20, i);
    }
    let first = device.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    let first_id = first["id"].as_str().expect("snapshot id").to_string();
    wait_fully_replicated(&cluster, 0);
    let chunks_on_3 = |c: &Cluster| c.nodes[2].metric("cairn_storage_chunks");
    let objects: Vec<PathBuf> = wait_for("node 3's objects", Duration::from_secs(60), || {
        let files = s3.files_under("node3/chunks");
        let n = chunks_on_3(&cluster)?;
        (n > 0.0 && files.len() as f64 == n).then_some(files)
    });
    assert!(
        cluster.nodes[2].dir.join("chunks").is_dir(),
        "metadata stays local"
    );
    let sftp_chunks = sshd.dir().join("vaults/node4/chunks");
    let on_4 = |c: &Cluster| c.nodes[3].metric("cairn_storage_chunks");
    wait_for("node 4's objects", Duration::from_secs(60), || {
        let files = files_in(&sftp_chunks);
        (files > 0 && Some(files as f64) == on_4(&cluster)).then_some(())
    });
    let stored_bytes: u64 = objects
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        stored_bytes > 15 << 20,
        "node 3's bucket holds {stored_bytes} bytes"
    );

    // Kill node 1: restore through node 2, byte-exact.
    cluster.node(1).kill();
    let target = cluster.scratch("restore");
    let via2 = Device::new(&homes.join("via2"), "desktop", PW);
    ok("login via 2", &via2.login(&cluster.nodes[1].url(), "dana"));
    via2.restore_and_compare("main", &first_id, &target, &data);
    cluster.node(1).start();
    cluster.nodes[0].wait_ready();

    // Flip a byte of one chunk object and delete another, behind the
    // service's back: node 3's scrub finds both and rewrites them from the
    // other replicas (which hold byte-identical copies).
    let flipped = objects[0].clone();
    let deleted = objects[objects.len() - 1].clone();
    let original_flipped = std::fs::read(&flipped).expect("object");
    let original_deleted = std::fs::read(&deleted).expect("object");
    let mut bad = original_flipped.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&flipped, &bad).expect("flip");
    std::fs::remove_file(&deleted).expect("delete");
    wait_for(
        "the scrub to rewrite both objects",
        Duration::from_secs(120),
        || {
            let a = std::fs::read(&flipped).ok()?;
            let b = std::fs::read(&deleted).ok()?;
            (a == original_flipped && b == original_deleted).then_some(())
        },
    );
    // The scrub step counts what it found once its rewrites are done: the
    // counter may trail the objects by a moment.
    wait_for(
        "the scrub to count both damaged copies",
        Duration::from_secs(30),
        || {
            let found = cluster.nodes[2].metric("cairn_storage_corrupt_copies_total");
            (found >= Some(2.0)).then_some(())
        },
    );

    // The debug tool damages a copy on the stopped cloud-backed node (the
    // object itself); the scrub rewrites it once the node is back.
    let target_object = objects[objects.len() / 2].clone();
    let original = std::fs::read(&target_object).expect("object");
    let chunk = target_object
        .file_name()
        .and_then(|n| n.to_str())
        .expect("chunk id");
    let vault = target_object
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .expect("vault id");
    cluster.node(3).kill();
    let debug = Command::new(bin("cairnd-debug"))
        .args(["corrupt-replica", "--data-dir"])
        .arg(&cluster.nodes[2].dir)
        .args(["--vault", vault, "--chunk", chunk, "--chunk-store", &url])
        .envs(s3.env())
        .output()
        .expect("cairnd-debug");
    ok("cairnd-debug corrupt-replica", &debug);
    assert_ne!(std::fs::read(&target_object).expect("object"), original);
    cluster.node(3).start();
    cluster.nodes[2].wait_ready();
    wait_for(
        "the scrub to rewrite the object the debug tool damaged",
        Duration::from_secs(120),
        || (std::fs::read(&target_object).ok()? == original).then_some(()),
    );

    // A restore through node 3 alone (a fresh device, no cache) is exact.
    let via3 = Device::new(&homes.join("via3"), "tablet", PW);
    ok("login via 3", &via3.login(&cluster.nodes[2].url(), "dana"));
    via3.restore_and_compare("main", &first_id, &target, &data);

    // Garbage collection: a snapshot of new data, forgotten and pruned,
    // leaves node 3's bucket with exactly its live chunks.
    write_data(&data.join("later.bin"), 16 << 20, 77);
    let second = device.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    wait_fully_replicated(&cluster, 0);
    let before = s3.files_under("node3/chunks").len();
    device.json(&[
        "forget",
        "--vault",
        "main",
        second["id"].as_str().expect("snapshot id"),
    ]);
    let pruned = device.json(&["prune", "--vault", "main"]);
    let report = &pruned["report"];
    assert!(report["deleted_chunks"].as_u64() >= Some(8), "{pruned}");
    let live = report["live_chunks"].as_u64().expect("live chunks") as usize;
    wait_for(
        "node 3's bucket and node 4's SFTP directory to hold only live chunks",
        Duration::from_secs(90),
        || {
            let now = s3.files_under("node3/chunks").len();
            let on_3 = now == live && now < before && chunks_on_3(&cluster)? == live as f64;
            let on_sftp = files_in(&sftp_chunks) == live && on_4(&cluster)? == live as f64;
            (on_3 && on_sftp).then_some(())
        },
    );
    std::fs::remove_file(data.join("later.bin")).expect("remove");
    via3.restore_and_compare("main", &first_id, &target, &data);
    ok(
        "check --read-data",
        &device.cairn(&["check", "--vault", "main", "--read-data"]),
    );
}
