//! A three-node cluster of real `cairnd` processes: init, join, replicated
//! writes through any node, linearizable reads on followers, leader
//! failover, and catch-up of a restarted node.

mod common;

use std::time::Duration;

use common::{stderr, user_names, wait_for, Node};

fn create_user(node: &Node, pw: &str, name: &str) {
    let out = node.admin(&["user", "create", name, "--password-file", pw]);
    assert!(
        out.status.success(),
        "create {name} via node {}: {}",
        node.id,
        stderr(&out)
    );
}

#[test]
fn three_nodes_replicate_fail_over_and_catch_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "pw").expect("write pw");
    let pw = pw.to_string_lossy().into_owned();

    println!("=== init node 1, join nodes 2 and 3");
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::new(tmp.path(), id)).collect();
    nodes[0].init();
    nodes[0].spawn_serve();
    nodes[0].wait_ready();
    let url1 = nodes[0].url();
    nodes[1].spawn_join(&url1);
    nodes[2].spawn_join(&url1);
    let status = wait_for("three voters", Duration::from_secs(60), || {
        nodes[0]
            .status()
            .filter(|s| s.voters.len() == 3 && s.storage_nodes.len() == 3)
    });
    assert_eq!(status.leader, Some(1));
    for n in &nodes {
        n.wait_ready();
    }

    println!("=== a write through a follower is forwarded; a follower read sees it");
    create_user(&nodes[1], &pw, "alice");
    assert_eq!(
        user_names(&nodes[2].admin(&["user", "list", "--json"])),
        vec!["alice"]
    );

    println!("=== every member reports replication progress on the leader");
    let status = wait_for("all caught up", Duration::from_secs(20), || {
        nodes[0].status().filter(|s| {
            let last = s.last_log_index;
            s.members
                .iter()
                .all(|m| m.matched_index == last && m.applied_index == last)
        })
    });
    assert_eq!(status.members.len(), 3);

    println!("=== kill the leader; the others elect a new one and keep working");
    nodes[0].kill();
    let new_leader = wait_for("new leader", Duration::from_secs(30), || {
        nodes[1].status().and_then(|s| s.leader.filter(|l| *l != 1))
    });
    println!("new leader: {new_leader}");
    create_user(&nodes[2], &pw, "bob");
    assert_eq!(
        user_names(&nodes[1].admin(&["user", "list", "--json"])),
        vec!["alice", "bob"]
    );

    println!("=== the old leader restarts, rejoins as follower and catches up");
    nodes[0].spawn_serve();
    nodes[0].wait_ready();
    assert_eq!(
        user_names(&nodes[0].admin(&["user", "list", "--json"])),
        vec!["alice", "bob"]
    );
    let status = nodes[0].status().expect("status");
    assert_eq!(status.voters, vec![1, 2, 3]);
}

#[test]
fn late_joiner_catches_up_from_a_snapshot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "pw").expect("write pw");
    let pw = pw.to_string_lossy().into_owned();
    let snapshot_every = ("CAIRN_SNAPSHOT_EVERY".to_string(), "5".to_string());

    println!("=== one node, enough writes to snapshot and purge the log");
    let mut n1 = Node::new(tmp.path(), 1);
    n1.env.push(snapshot_every.clone());
    n1.init();
    n1.spawn_serve();
    n1.wait_ready();
    let names: Vec<String> = (0..12).map(|i| format!("user{i:02}")).collect();
    for name in &names {
        create_user(&n1, &pw, name);
    }
    let status = wait_for(
        "log purged behind a snapshot",
        Duration::from_secs(30),
        || {
            n1.status()
                .filter(|s| s.purged_index.is_some_and(|p| p >= 5))
        },
    );
    println!(
        "leader snapshot {:?}, purged {:?}",
        status.snapshot_index, status.purged_index
    );

    println!("=== a new node can only catch up by installing the snapshot");
    let mut n2 = Node::new(tmp.path(), 2);
    n2.env.push(snapshot_every);
    n2.spawn_join(&n1.url());
    wait_for("two voters", Duration::from_secs(60), || {
        n1.status().filter(|s| s.voters.len() == 2)
    });
    n2.wait_ready();
    assert_eq!(user_names(&n2.admin(&["user", "list", "--json"])), names);
    let s2 = n2.status().expect("status");
    assert!(
        s2.snapshot_index.is_some(),
        "node 2 should hold the installed snapshot: {s2:?}"
    );

    println!("=== and it survives a restart from that snapshot");
    n2.kill();
    n2.spawn_serve();
    n2.wait_ready();
    assert_eq!(user_names(&n2.admin(&["user", "list", "--json"])), names);
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
    n1.spawn_serve();
    n1.wait_ready();

    println!("=== internal endpoints refuse requests without it");
    let (code, body) = n1.port_request("POST", "/raft/vote", &[], "");
    assert_eq!(code, 401, "{body}");
    let join = r#"{"node_id":9,"addr":"http://127.0.0.1:1"}"#;
    let (code, body) = n1.port_request("POST", "/api/v1/cluster/join", &[], join);
    assert_eq!(code, 401, "{body}");
    // Public endpoints stay public.
    assert_eq!(n1.get("/healthz").map(|r| r.0), Some(200));

    println!("=== a node with the secret joins; one without it is refused");
    let mut n2 = Node::new(tmp.path(), 2);
    n2.spawn_join_with(&n1.url(), &["--cluster-secret-file", &secret]);
    let mut n3 = Node::new(tmp.path(), 3);
    n3.spawn_join(&n1.url());
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
}

fn pw_file(dir: &std::path::Path) -> String {
    let pw = dir.join("pw");
    std::fs::write(&pw, "pw").expect("write pw");
    pw.to_string_lossy().into_owned()
}
