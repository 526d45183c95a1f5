//! Server roles that scale apart (issue 13), with real processes: three
//! auth+cluster voters with no storage, two storage-only nodes labelled
//! `hdd`, then a third storage node labelled `ssd`.
//!
//! The voter set stays the three auth nodes; no auth-only node has a chunk
//! store; a storage-only node answers the device API with a JSON error
//! naming the auth nodes; a backup through an auth-only node restores
//! byte-exact through another auth node; a tier `--labels ssd` keeps every
//! copy on the ssd node and a tier needing two ssd nodes is refused; with
//! one hdd node SIGKILLed the R=2 hdd vault still restores, a backup still
//! goes through (W=1), and repair brings it back to two copies when the
//! node returns; storage gauges exist on storage nodes only; with the whole
//! ssd pool down a backup to its tier fails `pool_unavailable` while the
//! hdd vault restores.

use std::time::Duration;

use cairn_tests::{ok, wait_for, write_data, Cluster, Device};
use serde_json::Value;

const PW: &str = "roles pass words";

fn status(cluster: &Cluster, i: usize) -> Value {
    serde_json::from_slice(
        &cluster.nodes[i]
            .cli(&["cluster", "status", "--json"])
            .stdout,
    )
    .expect("cluster status --json")
}

fn chunks_on(cluster: &Cluster, i: usize) -> f64 {
    cluster.nodes[i]
        .metric("cairn_storage_chunks")
        .unwrap_or(0.0)
}

#[test]
fn auth_and_storage_nodes_scale_apart() {
    // W=1 so a backup to the two-node hdd pool goes on with one node down;
    // a quick repair so the returning node is filled in soon.
    let serve = ["--repair-interval-ms", "1000", "--write-quorum", "1"];
    let mut cluster = Cluster::start(0, &serve);
    for _ in 0..3 {
        cluster.add_node_with(&serve, &["--roles", "auth,cluster"]);
    }
    for _ in 0..2 {
        cluster.add_node_with(&serve, &["--roles", "storage", "--storage-labels", "hdd"]);
    }
    cluster.add_node_with(&serve, &["--roles", "storage", "--storage-labels", "ssd"]);

    // The voters are the three auth nodes; storage nodes are learners.
    let s = wait_for("six members", Duration::from_secs(30), || {
        let s = status(&cluster, 0);
        (s["members"].as_array()?.len() == 6).then_some(s)
    });
    assert_eq!(s["voters"], serde_json::json!([1, 2, 3]), "{s}");
    for m in s["members"].as_array().expect("members") {
        let id = m["id"].as_u64().expect("id");
        let roles: Vec<&str> = m["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if id <= 3 {
            assert_eq!(roles, ["auth", "cluster"], "{m}");
            assert!(m["voter"].as_bool().expect("voter"), "{m}");
        } else {
            assert_eq!(roles, ["storage"], "{m}");
            assert!(!m["voter"].as_bool().expect("voter"), "{m}");
        }
    }
    let storage: Vec<u64> = s["storage_nodes"]
        .as_array()
        .expect("storage nodes")
        .iter()
        .filter_map(|n| n["id"].as_u64())
        .collect();
    assert_eq!(storage, [4, 5, 6]);
    let text =
        String::from_utf8_lossy(&cluster.nodes[0].cli(&["cluster", "status"]).stdout).into_owned();
    assert!(
        text.contains("roles")
            && text.contains("auth,cluster")
            && text.contains("labels")
            && text.contains("ssd"),
        "{text}"
    );

    // No auth-only node holds a chunk store.
    for i in 0..3 {
        assert!(
            !cluster.nodes[i].dir.join("chunks").exists(),
            "node {} has a chunk store",
            i + 1
        );
    }
    assert!(cluster.nodes[3].dir.join("chunks").exists());
    // Storage gauges exist on storage nodes only.
    for i in 0..3 {
        assert_eq!(
            cluster.nodes[i].metric("cairn_storage_chunks"),
            None,
            "node {} exports a chunk count without a chunk store",
            i + 1
        );
    }
    assert!(cluster.nodes[3].metric("cairn_storage_chunks").is_some());
    assert!(cluster.nodes[3].metric("cairn_storage_bytes").is_some());

    // A storage-only node refuses the device API, naming the auth nodes.
    let (code, body) = cluster.nodes[3].get("/api/v1/tiers").expect("answer");
    assert_eq!(code, 503, "{body}");
    let err: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(err["code"], "role_not_served", "{err}");
    let message = err["message"].as_str().expect("message");
    for i in 0..3 {
        assert!(message.contains(&cluster.nodes[i].url()), "{message}");
    }

    // Tiers over storage pools; one the pool cannot hold is refused.
    let admin = &cluster.nodes[0];
    ok(
        "hdd tier",
        &admin.admin(&[
            "tier",
            "create",
            "hdd2",
            "--replicas",
            "2",
            "--labels",
            "hdd",
        ]),
    );
    ok(
        "ssd tier",
        &admin.admin(&[
            "tier",
            "create",
            "fast",
            "--replicas",
            "1",
            "--labels",
            "ssd",
        ]),
    );
    let refused = admin.admin(&[
        "tier",
        "create",
        "fast2",
        "--replicas",
        "2",
        "--labels",
        "ssd",
    ]);
    assert!(!refused.status.success(), "a tier needing two ssd nodes");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("ssd") && why.contains("tier"), "{why}");

    cluster.create_user("dana", PW);
    let homes = cluster.scratch("devices");
    let via1 = Device::new(&homes.join("via1"), "via-auth-1", PW);
    let via2 = Device::new(&homes.join("via2"), "via-auth-2", PW);
    ok(
        "login via node 1",
        &via1.login(&cluster.nodes[0].url(), "dana"),
    );
    ok(
        "login via node 2",
        &via2.login(&cluster.nodes[1].url(), "dana"),
    );
    via1.json(&["vault", "request", "--tier", "fast", "--name", "quick"]);
    via1.json(&["vault", "request", "--tier", "hdd2", "--name", "bulk"]);

    // The ssd vault's every copy is on the ssd node.
    let data = cluster.scratch("data");
    for i in 0..4 {
        write_data(&data.join(format!("f{i}.bin")), 4 << 20, i);
    }
    let src = data.to_str().expect("utf-8");
    via1.json(&["backup", "--vault", "quick", src]);
    let on_ssd = chunks_on(&cluster, 5);
    assert!(on_ssd > 0.0, "the ssd node holds the fast vault");
    assert_eq!(chunks_on(&cluster, 3) + chunks_on(&cluster, 4), 0.0);

    // A backup through auth node 1 restores byte-exact through auth node 2.
    let first = via1.json(&["backup", "--vault", "bulk", src]);
    let first_id = first["id"].as_str().expect("snapshot id").to_string();
    let target = cluster.scratch("restore");
    via2.restore_and_compare("bulk", &first_id, &target, &data);
    assert_eq!(
        chunks_on(&cluster, 5),
        on_ssd,
        "the hdd vault stays off ssd"
    );
    wait_for(
        "two copies on the hdd nodes",
        Duration::from_secs(60),
        || {
            let (a, b) = (chunks_on(&cluster, 3), chunks_on(&cluster, 4));
            (a > 0.0 && a == b).then_some(())
        },
    );

    // SIGKILL one hdd node: restores go on (R=2), backups too (W=1), and
    // the node gets its copies back when it returns.
    cluster.node(4).kill();
    via2.restore_and_compare("bulk", &first_id, &target, &data);
    write_data(&data.join("while-down.bin"), 4 << 20, 77);
    let second = via1.json(&["backup", "--vault", "bulk", src]);
    let second_id = second["id"].as_str().expect("snapshot id").to_string();
    cluster.node(4).start();
    cluster.nodes[3].wait_ready();
    wait_for(
        "repair to bring node 4 back to two copies",
        Duration::from_secs(120),
        || {
            let s = status(&cluster, 0);
            let leader = s["leader"].as_u64()? as usize;
            let l = status(&cluster, leader - 1);
            let (a, b) = (chunks_on(&cluster, 3), chunks_on(&cluster, 4));
            (l["under_replicated_chunks"].as_u64() == Some(0) && a == b).then_some(())
        },
    );
    cluster.node(5).kill();
    via2.restore_and_compare("bulk", &second_id, &target, &data);

    // The whole ssd pool down: a backup to its tier fails with its own
    // code, naming the tier, and commits nothing; the hdd vault still
    // restores.
    cluster.node(6).kill();
    let fresh = cluster.scratch("fresh");
    write_data(&fresh.join("new.bin"), 1 << 20, 99);
    let failed = via1.cairn(&[
        "--json",
        "backup",
        "--vault",
        "quick",
        fresh.to_str().expect("utf-8"),
    ]);
    assert!(!failed.status.success(), "a backup to a pool that is down");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let err: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("code").is_some())
        .unwrap_or_else(|| panic!("no JSON error in {stderr}"));
    assert_eq!(err["code"], "pool_unavailable", "{err}");
    let message = err["error"].as_str().unwrap_or_default();
    assert!(message.contains("fast") && message.contains("ssd"), "{err}");
    via2.restore_and_compare("bulk", &second_id, &target, &data);
}

/// The cluster role's workers run only where the role is: a leader
/// without it does no repair pass however long it leads, and the voter
/// with the role that takes over does.
#[test]
fn a_leader_without_the_cluster_role_runs_no_cluster_workers() {
    let serve = ["--repair-interval-ms", "200"];
    let mut cluster = Cluster::start(0, &serve);
    cluster.add_node_with(&serve, &["--roles", "auth,storage"]);
    for _ in 0..2 {
        cluster.add_node_with(&serve, &["--roles", "auth,storage,cluster"]);
    }
    let passes = |cluster: &Cluster, i: usize| {
        cluster.nodes[i]
            .metric("cairn_storage_repair_passes_total")
            .unwrap_or(0.0)
    };
    assert_eq!(cluster.leader(), Some(1), "node 1 founded the cluster");
    // Fifteen repair intervals as leader: not one pass.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(passes(&cluster, 0), 0.0, "node 1 runs no cluster workers");
    assert!(
        cluster.nodes[0]
            .metric("cairn_storage_under_replicated_chunks")
            .is_none(),
        "no repair pass, no count"
    );
    cluster.node(1).kill();
    let leader = wait_for(
        "a leader with the cluster role",
        Duration::from_secs(30),
        || {
            let status = status(&cluster, 1);
            let id = status["leader"].as_u64()?;
            (id != 1).then_some(id as usize)
        },
    );
    wait_for("its repair passes", Duration::from_secs(30), || {
        (passes(&cluster, leader - 1) > 0.0).then_some(())
    });
}
