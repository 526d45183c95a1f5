//! Backups to a replicated cluster end to end (issue 5): three nodes, R=3,
//! W=2, the real `cairn` client, real SIGKILLs.
//!
//! The scenario follows the issue: back up through node 1; kill node 1 and
//! restore through node 3; back up again while node 1 is down; bring node 1
//! back and wait for repair to restore three copies of everything; kill the
//! node a backup is talking to; corrupt one replica on disk; drain and
//! remove a node. After every step the restored bytes must be identical.
//!
//! `CAIRN_E2E_MB` sets the size of the first backup (default 200).

use std::process::Stdio;
use std::time::{Duration, Instant};

use cairn_tests::{bin, ok, wait_for, write_data, Cluster, Device};
use serde_json::Value;

const PW: &str = "replicated pass words";

/// Every live node's count of stored chunks, once the leader reports no
/// under-replicated chunk.
fn wait_fully_replicated(cluster: &Cluster, live: &[usize], timeout: Duration) {
    wait_for("under-replicated chunks to reach 0", timeout, || {
        let node = &cluster.nodes[live[0]];
        let status: Value =
            serde_json::from_slice(&node.cli(&["cluster", "status", "--json"]).stdout).ok()?;
        (status["under_replicated_chunks"].as_u64() == Some(0)).then_some(())
    });
}

fn chunks_on(cluster: &Cluster, i: usize) -> Option<f64> {
    cluster.nodes[i].metric("cairn_storage_chunks")
}

#[test]
fn replicated_backups_survive_kills_corruption_and_drains() {
    let mb: usize = std::env::var("CAIRN_E2E_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let fast_repair = ["--repair-interval-ms", "1000"];
    let mut cluster = Cluster::start(3, &fast_repair);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "triple", "--replicas", "3"]),
    );
    cluster.create_user("carol", PW);
    let homes = cluster.scratch("devices");
    let via1 = Device::new(&homes.join("via1"), "via-node-1", PW);
    let via3 = Device::new(&homes.join("via3"), "via-node-3", PW);
    ok("login via 1", &via1.login(&cluster.nodes[0].url(), "carol"));
    ok("login via 3", &via3.login(&cluster.nodes[2].url(), "carol"));
    via1.json(&["vault", "request", "--tier", "triple", "--name", "main"]);

    // 1. Back up ~200 MB through node 1.
    let data = cluster.scratch("data");
    let per_file = 8 << 20;
    for i in 0..(mb << 20).div_ceil(per_file) {
        write_data(&data.join(format!("f{i:03}.bin")), per_file, i as u64);
    }
    let t = Instant::now();
    let first = via1.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    eprintln!(
        "backup of {mb} MB through node 1: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let first_id = first["id"].as_str().expect("snapshot id").to_string();
    wait_fully_replicated(&cluster, &[0, 1, 2], Duration::from_secs(120));

    // 2. SIGKILL node 1; restore through node 3, byte-identical.
    cluster.node(1).kill();
    let target = cluster.scratch("restore");
    via3.restore_and_compare("main", &first_id, &target, &data);

    // 3. Back up again while node 1 is down (W=2 of the 2 live owners);
    //    the device logged in through node 1 fails over by itself.
    write_data(&data.join("while-down.bin"), 16 << 20, 99);
    let second = via1.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    let second_id = second["id"].as_str().expect("snapshot id").to_string();

    // 4. Restart node 1: repair brings every chunk back to three copies.
    cluster.node(1).start();
    cluster.nodes[0].wait_ready();
    wait_fully_replicated(&cluster, &[0, 1, 2], Duration::from_secs(180));
    wait_for("node 1 holds every chunk", Duration::from_secs(120), || {
        let counts: Vec<f64> = (0..3)
            .map(|i| chunks_on(&cluster, i))
            .collect::<Option<_>>()?;
        (counts[0] > 0.0 && counts.iter().all(|c| *c == counts[0])).then_some(())
    });
    via1.restore_and_compare("main", &second_id, &target, &data);

    // 5. Kill the node a backup is talking to, mid-upload: the backup either
    //    completes through another node or fails cleanly, and a rerun
    //    completes without uploading everything again.
    write_data(&data.join("mid-upload.bin"), 48 << 20, 7);
    let via2 = Device::new(&homes.join("via2"), "via-node-2", PW);
    ok("login via 2", &via2.login(&cluster.nodes[1].url(), "carol"));
    let mut backup = std::process::Command::new(bin("cairn"))
        .args([
            "--json",
            "backup",
            "--vault",
            "main",
            data.to_str().expect("utf-8"),
        ])
        .env("XDG_CONFIG_HOME", via2.config_dir())
        .env("XDG_CACHE_HOME", homes.join("via2/cache"))
        .env("CAIRN_PASSWORD", PW)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup");
    std::thread::sleep(Duration::from_millis(1500));
    cluster.node(2).kill();
    let status = backup.wait().expect("backup exit");
    if !status.success() {
        let rerun = via2.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
        let uploaded = rerun["new_bytes"].as_u64().expect("new_bytes");
        assert!(
            uploaded < 48 << 20,
            "the rerun re-uploaded everything: {rerun}"
        );
    }
    cluster.node(2).start();
    cluster.nodes[1].wait_ready();
    wait_fully_replicated(&cluster, &[0, 1, 2], Duration::from_secs(180));
    via3.restore_and_compare("main", "latest", &target, &data);

    // 6. Corrupt node 3's copy of the newest root tree on its disk: restores
    //    stay identical and the copy is repaired.
    let snaps = via3.json(&["snapshots", "--vault", "main"]);
    let root = snaps.as_array().and_then(|a| a.last()).expect("snapshots")["root"]
        .as_str()
        .expect("root id")
        .to_string();
    let vault = via3.json(&["vault", "list"]).as_array().expect("array")[0]["id"]
        .as_str()
        .expect("vault id")
        .to_string();
    cluster.node(3).kill();
    let out = std::process::Command::new(bin("cairnd-debug"))
        .args(["corrupt-replica", "--data-dir"])
        .arg(&cluster.nodes[2].dir)
        .args(["--vault", &vault, "--chunk", &root])
        .output()
        .expect("corrupt-replica");
    ok("corrupt-replica", &out);
    cluster.node(3).start();
    cluster.nodes[2].wait_ready();
    // A device with an empty cache, so the tree is fetched from node 3.
    let fresh = Device::new(&homes.join("fresh"), "fresh-via-node-3", PW);
    ok(
        "login fresh",
        &fresh.login(&cluster.nodes[2].url(), "carol"),
    );
    fresh.restore_and_compare("main", "latest", &target, &data);
    // Node 3 read its own damaged copy first, caught it by checksum and
    // rewrote it from another owner.
    let found = cluster.nodes[2].metric("cairn_storage_corrupt_copies_total");
    assert!(found >= Some(1.0), "damage detected: {found:?}");
    let repaired = cluster.nodes[2].metric("cairn_storage_read_repairs_total");
    assert!(repaired >= Some(1.0), "copy repaired: {repaired:?}");

    // 7. A fourth node joins; drain node 2 and remove it: nothing is lost.
    cluster.add_node(&fast_repair);
    let out = cluster.nodes[0].cli(&["cluster", "drain", "2"]);
    ok("drain", &out);
    wait_fully_replicated(&cluster, &[0, 2, 3], Duration::from_secs(180));
    wait_for("node 2 drained", Duration::from_secs(180), || {
        let status: Value = serde_json::from_slice(
            &cluster.nodes[0]
                .cli(&["cluster", "status", "--json"])
                .stdout,
        )
        .ok()?;
        let nodes = status["storage_nodes"].as_array()?;
        let n2 = nodes.iter().find(|n| n["id"] == 2)?;
        (n2["status"] == "Draining" && n2["to_move"] == 0).then_some(())
    });
    ok("remove", &cluster.nodes[0].cli(&["cluster", "remove", "2"]));
    cluster.node(2).kill();
    via3.restore_and_compare("main", "latest", &target, &data);

    // 8. Forget every snapshot but a new one without `while-down.bin`, then
    //    prune: its chunks leave every node, and what is kept is intact.
    std::fs::remove_file(data.join("while-down.bin")).expect("remove file");
    let newest = via3.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    let stored = |c: &Cluster| -> Option<f64> { [0, 2, 3].iter().map(|&i| chunks_on(c, i)).sum() };
    // Snapshots of three devices: forget by id (a `--keep-…` policy keeps
    // some of each device's).
    let snaps = via3.json(&["snapshots", "--vault", "main"]);
    let mut forget = vec!["forget", "--vault", "main"];
    forget.extend(
        snaps
            .as_array()
            .expect("snapshots")
            .iter()
            .filter_map(|s| s["id"].as_str())
            .filter(|id| Some(*id) != newest["id"].as_str()),
    );
    via3.json(&forget);
    let pruned = via3.json(&["prune", "--vault", "main"]);
    let report = &pruned["report"];
    // 16 MiB of half-random data is at least 8 chunks.
    assert!(report["deleted_chunks"].as_u64() >= Some(8), "{pruned}");
    let live = report["live_chunks"].as_f64().expect("live chunks");
    // In the end the three nodes hold exactly three copies of the live set.
    wait_for(
        "only live chunks left, three copies each",
        Duration::from_secs(90),
        || (stored(&cluster)? == 3.0 * live).then_some(()),
    );
    via3.restore_and_compare("main", "latest", &target, &data);
    ok(
        "check --read-data after prune",
        &via3.cairn(&["check", "--vault", "main", "--read-data"]),
    );
}
