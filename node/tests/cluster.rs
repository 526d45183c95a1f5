//! Clusters of real `cairnd` processes: init, join, replicated writes
//! through any node, linearizable reads on followers, leader failover,
//! catch-up of a restarted node and of a new node through a snapshot, node
//! removal, the cluster secret, and `cluster status`'s verdict.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http_request, stderr, user_body, user_names, wait_for, Node};

fn create_user(node: &Node, pw: &str, name: &str) {
    let out = node.admin(&["user", "create", name, "--password-file", pw]);
    assert!(
        out.status.success(),
        "create {name} via node {}: {}",
        node.id,
        stderr(&out)
    );
}

/// One node the concurrent writer may send to.
#[derive(Clone)]
struct Target {
    port: u16,
    bearer: String,
}

impl Target {
    fn of(node: &Node) -> Self {
        Target {
            port: node.port,
            bearer: node.bearer(),
        }
    }
}

/// A client that creates users (`w00000`, `w00001`, …) one after another,
/// round-robin over the live nodes, for as long as the scenario runs. A
/// write that fails is retried with the same idempotency key on the next
/// node; only writes answered `201` count as acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<Vec<Target>>>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Writer {
    fn start(targets: Vec<Target>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let targets = Arc::new(Mutex::new(targets));
        let thread = {
            let stop = stop.clone();
            let targets = targets.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut turn = 0usize;
                for i in 0u128.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let name = format!("w{i:05}");
                    let key = format!("{:032x}", 0x5eed_0000_0000u128 + i);
                    let body = user_body(&name);
                    for _attempt in 0..20 {
                        turn += 1;
                        let target = {
                            let t = targets.lock().expect("targets");
                            t[turn % t.len()].clone()
                        };
                        let headers = [
                            ("Authorization", target.bearer.as_str()),
                            ("Idempotency-Key", key.as_str()),
                        ];
                        let answer = http_request(
                            target.port,
                            "POST",
                            "/api/v1/admin/users",
                            &headers,
                            &body,
                        );
                        if matches!(answer, Some((201, _))) {
                            acked.push(name.clone());
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    std::thread::sleep(Duration::from_millis(15));
                }
                acked
            })
        };
        Writer {
            stop,
            targets,
            thread,
        }
    }

    fn set_targets(&self, nodes: &[&Node]) {
        *self.targets.lock().expect("targets") = nodes.iter().map(|n| Target::of(n)).collect();
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("writer thread")
    }
}

fn leader_of(node: &Node) -> u64 {
    wait_for("a leader", Duration::from_secs(30), || {
        node.status().and_then(|s| s.leader)
    })
}

/// The scenario of issue 3: three `cairnd` processes; users created through
/// a follower; SIGKILL of the leader (a new leader takes writes within 3 s);
/// the old leader restarts and catches up; a fourth node joins after the
/// log was compacted and catches up through a chunked snapshot; a node is
/// removed with `cairnd cluster remove`. A writer runs throughout, and at
/// the end every write it saw acknowledged is on every remaining node.
#[test]
fn cluster_survives_failover_restart_snapshot_join_and_removal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pw = pw_file(tmp.path());
    // Snapshot often and keep no log behind it, so the fourth node can only
    // catch up through a snapshot; tiny chunks, so that snapshot travels in
    // many requests.
    let config = tmp.path().join("cairnd.toml");
    std::fs::write(
        &config,
        "[raft]\nsnapshot_every = 40\nsnapshot_keep_logs = 0\nsnapshot_chunk_size = 1024\n",
    )
    .expect("write config");

    println!("=== init node 1, join nodes 2 and 3");
    let mut nodes: Vec<Node> = (1..=4)
        .map(|id| {
            let mut n = Node::new(tmp.path(), id);
            n.config = Some(config.clone());
            n
        })
        .collect();
    common::form_three(&mut nodes);
    let writer = Writer::start(nodes[..3].iter().map(Target::of).collect());

    println!("=== a write through a follower is forwarded; another follower reads it");
    let leader = leader_of(&nodes[0]);
    let followers: Vec<usize> = (0..3).filter(|i| nodes[*i].id != leader).collect();
    create_user(&nodes[followers[0]], &pw, "alice");
    let names = user_names(&nodes[followers[1]].admin(&["user", "list", "--json"]));
    assert!(names.contains(&"alice".to_string()), "{names:?}");

    println!("=== SIGKILL the leader (node {leader}); writes succeed again within 3 s");
    std::thread::sleep(Duration::from_secs(1));
    let li = (leader - 1) as usize;
    let survivor = followers[0];
    writer.set_targets(&[&nodes[followers[0]], &nodes[followers[1]]]);
    let bearer = nodes[survivor].bearer();
    let killed_at = Instant::now();
    nodes[li].kill();
    let mut attempt = 0u32;
    let failover = wait_for(
        "a write after the failover",
        Duration::from_secs(30),
        || {
            attempt += 1;
            let key = format!("{:032x}", 0xfa11_0000u128 + u128::from(attempt));
            let headers = [
                ("Authorization", bearer.as_str()),
                ("Idempotency-Key", key.as_str()),
            ];
            let body = r#"{"name":"after-failover","replicas":2}"#;
            match nodes[survivor].get_post("/api/v1/admin/tiers", &headers, body) {
                Some((201, _)) => Some(killed_at.elapsed()),
                _ => None,
            }
        },
    );
    println!("failover: first write acknowledged {failover:?} after the SIGKILL");
    assert!(
        failover < Duration::from_secs(3),
        "a write took {failover:?} after the leader was killed"
    );
    let new_leader = leader_of(&nodes[survivor]);
    assert_ne!(new_leader, leader);

    println!("=== the old leader restarts and catches up");
    nodes[li].start();
    nodes[li].wait_ready();
    let names = user_names(&nodes[li].admin(&["user", "list", "--json"]));
    assert!(names.contains(&"alice".to_string()), "{names:?}");
    writer.set_targets(&[&nodes[0], &nodes[1], &nodes[2]]);

    println!("=== the log is compacted; node 4 joins and catches up through a snapshot");
    wait_for(
        "log purged behind a snapshot",
        Duration::from_secs(60),
        || {
            nodes[survivor]
                .status()
                .filter(|s| s.purged_index.is_some_and(|p| p >= 40))
        },
    );
    let survivor_url = nodes[survivor].url();
    nodes[3].spawn_join(&survivor_url);
    wait_for("four voters", Duration::from_secs(60), || {
        nodes[survivor].status().filter(|s| s.voters.len() == 4)
    });
    nodes[3].wait_ready();
    let installs = nodes[3]
        .metric("cairn_raft_snapshot_install_duration_seconds_count")
        .expect("install metric");
    let chunks = nodes[3]
        .metric("cairn_raft_snapshot_chunks_received_total")
        .expect("chunk metric");
    println!("node 4 installed {installs} snapshot(s) from {chunks} chunk request(s)");
    assert!(installs >= 1.0, "node 4 should have installed a snapshot");
    assert!(
        chunks > 1.0,
        "the snapshot should have come in several chunks"
    );
    writer.set_targets(&[&nodes[0], &nodes[1], &nodes[2], &nodes[3]]);
    std::thread::sleep(Duration::from_secs(1));

    println!("=== remove a node through a follower (forwarded to the leader)");
    let leader = leader_of(&nodes[3]);
    let removed = (1..=3).find(|id| *id != leader).expect("a follower");
    let via = (1..=4)
        .find(|id| *id != leader && *id != removed)
        .expect("another follower");
    let ri = (removed - 1) as usize;
    let vi = (via - 1) as usize;
    let keep: Vec<&Node> = nodes.iter().filter(|n| n.id != removed).collect();
    writer.set_targets(&keep);
    // An active storage node is not removed without a drain or --force.
    let refused = nodes[vi].cli(&["cluster", "remove", &removed.to_string()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("storage_node_state"),
        "{}",
        stderr(&refused)
    );
    let out = nodes[vi].cli(&[
        "cluster",
        "remove",
        &removed.to_string(),
        "--force",
        "--json",
    ]);
    assert!(out.status.success(), "cluster remove: {}", stderr(&out));
    let answer: cairn_proto::admin::RemoveResponse =
        serde_json::from_slice(&out.stdout).expect("remove json");
    assert_eq!(answer.node_id, removed);
    assert!(!answer.voters.contains(&removed), "{answer:?}");
    let status = wait_for(
        "membership without the node",
        Duration::from_secs(30),
        || {
            nodes[vi]
                .status()
                .filter(|s| s.voters.len() == 3 && s.members.iter().all(|m| m.id != removed))
        },
    );
    let record = status.storage_nodes.iter().find(|n| n.id == removed);
    assert_eq!(
        record.map(|n| n.status.as_str()),
        Some("Removed"),
        "{status:?}"
    );
    nodes[ri].kill();
    // Removing it again is harmless; a node the cluster never had is not found.
    let again = nodes[vi].cli(&["cluster", "remove", &removed.to_string()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let unknown = nodes[vi].cli(&["cluster", "remove", "77"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("not_found"),
        "{}",
        stderr(&unknown)
    );
    std::thread::sleep(Duration::from_secs(1));

    println!("=== every acknowledged write is on every remaining node");
    let acked = writer.finish();
    println!("the writer saw {} writes acknowledged", acked.len());
    assert!(
        acked.len() >= 20,
        "the writer barely wrote: {}",
        acked.len()
    );
    for n in nodes.iter().filter(|n| n.id != removed) {
        let names: std::collections::BTreeSet<String> =
            user_names(&n.admin(&["user", "list", "--json"]))
                .into_iter()
                .collect();
        let missing: Vec<&String> = acked.iter().filter(|a| !names.contains(*a)).collect();
        assert!(
            missing.is_empty(),
            "node {} lacks acknowledged writes {missing:?}",
            n.id
        );
        assert!(names.contains("alice"));
    }

    println!("=== the leader can remove itself; the other two elect a new one");
    let leader = leader_of(&nodes[3]);
    let li = (leader - 1) as usize;
    let out = nodes[li].cli(&[
        "cluster",
        "remove",
        &leader.to_string(),
        "--force",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "leader removing itself: {}",
        stderr(&out)
    );
    let rest: Vec<usize> = (0..4)
        .filter(|i| nodes[*i].id != removed && nodes[*i].id != leader)
        .collect();
    let status = wait_for(
        "a new leader of two voters",
        Duration::from_secs(30),
        || {
            nodes[rest[0]]
                .status()
                .filter(|s| s.voters.len() == 2 && s.leader.is_some_and(|l| l != leader))
        },
    );
    assert!(!status.voters.contains(&leader), "{status:?}");
    nodes[li].kill();
    create_user(&nodes[rest[1]], &pw, "after-removing-the-leader");
}

#[test]
fn cluster_secret_guards_internal_endpoints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = tmp.path().join("cluster.secret");
    std::fs::write(&secret, "s3cret-for-this-cluster\n").expect("write secret");
    let secret = secret.to_string_lossy().into_owned();

    println!("=== a cluster with a secret");
    let mut n1 = Node::new(tmp.path(), 1);
    n1.init_with(&["--cluster-secret-file", &secret]);
    n1.start();
    n1.wait_ready();

    println!("=== internal endpoints refuse requests without it");
    let (code, body) = n1.port_request("POST", "/raft/vote", &[], "");
    assert_eq!(code, 401, "{body}");
    let join = r#"{"node_id":9,"addr":"http://127.0.0.1:1"}"#;
    let (code, body) = n1.port_request("POST", "/api/v1/cluster/join", &[], join);
    assert_eq!(code, 401, "{body}");
    // Public endpoints stay public.
    assert_eq!(n1.get("/healthz").map(|r| r.0), Some(200));

    println!("=== a node with the secret joins; one with another secret is refused");
    let mut n2 = Node::new(tmp.path(), 2);
    n2.spawn_join_with(&n1.url(), &["--cluster-secret-file", &secret]);
    let wrong = tmp.path().join("wrong.secret");
    std::fs::write(&wrong, "not-this-cluster's\n").expect("write secret");
    let mut n3 = Node::new(tmp.path(), 3);
    n3.spawn_join_with(
        &n1.url(),
        &["--cluster-secret-file", &wrong.to_string_lossy()],
    );
    wait_for("node 2 votes", Duration::from_secs(60), || {
        n1.status().filter(|s| s.voters == vec![1, 2])
    });
    n2.wait_ready();
    wait_for("node 3 refused", Duration::from_secs(30), || {
        n3.logs_contain("401 Unauthorized").then_some(())
    });
    let status = n1.status().expect("status");
    assert!(status.members.iter().all(|m| m.id != 3), "{status:?}");

    println!("=== replication works between the nodes that hold it");
    create_user(&n1, &pw_file(tmp.path()), "alice");
    assert_eq!(
        user_names(&n2.admin(&["user", "list", "--json"])),
        vec!["alice"]
    );

    println!("=== cluster status: healthy; without a leader, says why and exits 4");
    let out = n1.cli(&["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.starts_with("healthy\n"), "{text}");
    n1.kill();
    let out = wait_for("no leader", Duration::from_secs(30), || {
        let out = n2.cli(&["cluster", "status"]);
        (out.status.code() == Some(4)).then_some(out)
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("NOT HEALTHY: no leader"), "{text}");
    assert!(
        text.contains(&format!("node 1 ({}) unreachable", n1.url())),
        "{text}"
    );
    assert!(stderr(&out).contains("not healthy"), "{}", stderr(&out));
    // Scripts reading JSON get the document (`"leader": null`) and exit 0.
    let out = n2.cli(&["cluster", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn pw_file(dir: &std::path::Path) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, "pw").expect("write pw");
    pw.to_string_lossy().into_owned()
}
