//! The single-node dev cluster and the operator CLI, against a real
//! `cairnd` process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{run, stderr, stdout, user_names, wait_for, Node};

#[test]
fn dev_cluster_serves_health_admin_and_metrics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();

    println!("=== health, admin token file");
    assert_eq!(node.get("/healthz").map(|r| r.0), Some(200));
    let mode = std::fs::metadata(node.token_file())
        .expect("token file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "admin.token must be private");

    println!("=== cluster status");
    let status = wait_for("status with storage node", Duration::from_secs(10), || {
        node.status().filter(|s| !s.storage_nodes.is_empty())
    });
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.voters, vec![1]);
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.storage_nodes[0].id, 1);

    println!("=== admin user create / list");
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse\n").expect("write pw");
    let pw = pw.to_string_lossy().into_owned();
    let created = node.admin(&["user", "create", "alice", "--password-file", &pw, "--json"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let user: cairn_node::wire::UserInfo = serde_json::from_slice(&created.stdout).expect("json");
    assert_eq!(user.name, "alice");
    assert_eq!(
        user_names(&node.admin(&["user", "list", "--json"])),
        vec!["alice"]
    );

    println!("=== duplicate name is refused with a stable code");
    let dup = node.admin(&["user", "create", "alice", "--password-file", &pw]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("name_taken"), "{}", stderr(&dup));

    println!("=== a retried write (same idempotency key) applies once");
    let token = std::fs::read_to_string(node.token_file()).expect("token");
    let auth = format!("Bearer {}", token.trim());
    let body = format!(
        r#"{{"name":"carol","kdf":{{"memory_kib":8,"iterations":1,"parallelism":1,"salt":"{}"}},"login_key":"{}"}}"#,
        "00".repeat(16),
        "11".repeat(32)
    );
    let key = "ab".repeat(16);
    let post = |key: &str| {
        let headers = [("Authorization", auth.as_str()), ("Idempotency-Key", key)];
        node.port_request("POST", "/api/v1/admin/users", &headers, &body)
    };
    let (c1, b1) = post(&key);
    let (c2, b2) = post(&key);
    assert_eq!((c1, c2), (201, 201), "{b1} {b2}");
    let first: cairn_node::wire::UserInfo = serde_json::from_str(&b1).expect("json");
    let again: cairn_node::wire::UserInfo = serde_json::from_str(&b2).expect("json");
    assert_eq!(
        first, again,
        "the retry must report the first attempt's account"
    );
    let (c3, b3) = post(&"cd".repeat(16));
    assert_eq!(c3, 409, "{b3}");
    assert!(b3.contains("name_taken"), "{b3}");
    assert_eq!(
        user_names(&node.admin(&["user", "list", "--json"])),
        vec!["alice", "carol"]
    );

    println!("=== wrong or missing token: exit code 3");
    let bad = tmp.path().join("bad.token");
    std::fs::write(&bad, "nope").expect("write");
    let out = run(&[
        "admin",
        "--server",
        &node.url(),
        "--admin-token-file",
        &bad.to_string_lossy(),
        "user",
        "list",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run(&["admin", "--server", &node.url(), "user", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    println!("=== tiers");
    let out = node.admin(&["tier", "create", "standard", "--replicas", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = node.admin(&["tier", "create", "broken", "--replicas", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid_replicas"),
        "{}",
        stderr(&out)
    );

    println!("=== metrics and errors");
    let (code, metrics) = node.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("cairn_raft_is_leader 1"), "{metrics}");
    assert!(
        metrics.contains("cairn_state_records{kind=\"account\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_proposals_total{outcome=\"rejected\"}"),
        "{metrics}"
    );
    let (code, body) = node.get("/api/v1/nope").expect("404");
    assert_eq!(code, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");

    println!("=== the OpenAPI document lists every endpoint, and they exist");
    let (code, doc) = node.get("/api/v1/openapi.json").expect("openapi");
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("openapi json");
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/admin/users"), "{paths:?}");
    for (path, ops) in paths {
        if ops.get("get").is_some() {
            let (code, _) = node.get(path).expect("get");
            assert!(code != 404, "{path} is documented but not served");
        }
    }

    println!("=== SIGTERM shuts down cleanly");
    assert!(node.terminate().success());
}

#[test]
fn state_survives_a_crash_and_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "pw").expect("write pw");
    let pw = pw.to_string_lossy().into_owned();
    for name in ["alice", "bob"] {
        let out = node.admin(&["user", "create", name, "--password-file", &pw]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let applied = node
        .status()
        .and_then(|s| s.last_applied)
        .expect("applied index");

    println!("=== SIGKILL, restart");
    node.kill();
    node.spawn_dev();
    node.wait_ready();
    assert_eq!(
        user_names(&node.admin(&["user", "list", "--json"])),
        vec!["alice", "bob"]
    );
    let status = node.status().expect("status");
    assert!(status.last_applied >= Some(applied), "{status:?}");
}

#[test]
fn cli_refuses_bad_setups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let node = Node::new(tmp.path(), 1);
    let dir = node.dir.to_string_lossy().into_owned();

    println!("=== serve before init");
    let out = run(&["serve", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not initialised"), "{}", stderr(&out));

    println!("=== non-loopback without --insecure-http");
    let out = run(&[
        "init",
        "--data-dir",
        &dir,
        "--node-id",
        "1",
        "--listen",
        "0.0.0.0:1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("insecure-http"), "{}", stderr(&out));

    println!("=== init twice");
    node.init();
    let out = run(&[
        "init",
        "--data-dir",
        &dir,
        "--node-id",
        "1",
        "--listen",
        &node.listen(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already initialised"),
        "{}",
        stderr(&out)
    );

    println!("=== serve cannot change the node's identity");
    let out = run(&["serve", "--data-dir", &dir, "--node-id", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot change"), "{}", stderr(&out));

    println!("=== usage errors exit 2");
    let out = run(&["cluster", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
}
