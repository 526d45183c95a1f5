//! The single-node dev cluster and the operator CLI, against a real
//! `cairnd` process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{run, run_owned, stderr, stdout, user_body, user_names, wait_for, Node};

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
    let user: cairn_proto::admin::UserInfo = serde_json::from_slice(&created.stdout).expect("json");
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
    let auth = node.bearer();
    let body = user_body("carol");
    let key = "ab".repeat(16);
    let post = |key: &str| {
        let headers = [("Authorization", auth.as_str()), ("Idempotency-Key", key)];
        node.port_request("POST", "/api/v1/admin/users", &headers, &body)
    };
    let (c1, b1) = post(&key);
    let (c2, b2) = post(&key);
    assert_eq!((c1, c2), (201, 201), "{b1} {b2}");
    let first: cairn_proto::admin::UserInfo = serde_json::from_str(&b1).expect("json");
    let again: cairn_proto::admin::UserInfo = serde_json::from_str(&b2).expect("json");
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
    // A new dev cluster offers a one-copy `standard` tier.
    let out = node.admin(&["tier", "list", "--json"]);
    let tiers: Vec<cairn_proto::admin::TierInfo> =
        serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        tiers
            .iter()
            .any(|t| t.tier.name == "standard" && t.tier.replicas == 1 && t.tier.requestable),
        "{tiers:?}"
    );
    let out = node.admin(&["tier", "create", "standard", "--replicas", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("defined tier standard"),
        "{}",
        stdout(&out)
    );
    let out = node.admin(&[
        "tier",
        "create",
        "cold",
        "--replicas",
        "2",
        "--not-requestable",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cold: cairn_proto::admin::TierInfo = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            cold.tier.name.as_str(),
            cold.tier.replicas,
            cold.tier.requestable
        ),
        ("cold", 2, false)
    );
    let out = node.admin(&["tier", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tiers: Vec<cairn_proto::admin::TierInfo> =
        serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = tiers.iter().map(|t| t.tier.name.as_str()).collect();
    assert_eq!(names, vec!["cold", "standard"]);
    let out = node.admin(&["tier", "list"]);
    // A table: `cold` is not requestable, `standard` is.
    let listed = stdout(&out);
    let requestable = |tier: &str| {
        listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(tier))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or_else(|| panic!("no {tier} tier in {listed}"))
            .to_owned()
    };
    assert_eq!(requestable("cold"), "no", "{listed}");
    assert_eq!(requestable("standard"), "yes", "{listed}");
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
    assert_eq!(doc["openapi"], "3.1.0");
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

    // `init` of node 1 on a non-loopback address, with `extra` flags.
    let init_lan = |extra: &[&str]| {
        let mut args = vec![
            "init",
            "--data-dir",
            &dir,
            "--node-id",
            "1",
            "--listen",
            "0.0.0.0:1",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    println!("=== non-loopback without --insecure-http");
    let out = init_lan(&[]);
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

    println!("=== serve of a node without its cluster secret says how to give it one");
    std::fs::remove_file(node.dir.join("cluster.secret")).expect("remove secret");
    let out = run(&["serve", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cluster.secret does not exist")
            && stderr(&out).contains("--cluster-secret-file"),
        "{}",
        stderr(&out)
    );

    println!("=== node id 0 is refused");
    let other = tmp.path().join("zero").to_string_lossy().into_owned();
    let out = run(&[
        "init",
        "--data-dir",
        &other,
        "--node-id",
        "0",
        "--listen",
        &node.listen(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    println!("=== usage errors exit 2");
    let out = run(&["cluster", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
}

/// Every metric issue 3 asks for is exposed, and `promtool check metrics`
/// accepts the exposition (skipped, loudly, where promtool is missing;
/// a failure under `CI`).
#[test]
fn metrics_exposition_is_complete_and_valid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    let auth = node.bearer();
    let headers = [("Authorization", auth.as_str())];
    let (code, body) = node.port_request("POST", "/api/v1/admin/users", &headers, &user_body("m"));
    assert_eq!(code, 201, "{body}");
    let _ = node.get("/api/v1/admin/users");
    let (code, text) = node.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    for name in [
        "cairn_raft_term ",
        "cairn_raft_leader_id 1",
        "cairn_raft_is_leader 1",
        "cairn_raft_last_log_index ",
        "cairn_raft_last_applied_index ",
        "cairn_raft_replication_lag_entries{follower=\"1\"} 0",
        "cairn_raft_snapshot_build_duration_seconds_count ",
        "cairn_raft_snapshot_install_duration_seconds_count ",
        "cairn_raft_membership_size 1",
        "cairn_http_requests_total{method=\"POST\",route=\"/api/v1/admin/users\",status=\"201\"} 1",
        "cairn_http_requests_total{method=\"GET\",route=\"/api/v1/admin/users\",status=\"401\"} 1",
        "cairn_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/admin/users\",le=\"",
        "cairn_data_dir_size_bytes ",
        "cairn_data_dir_avail_bytes ",
        "cairn_rocksdb_pending_compaction_bytes{store=\"raft\"} ",
        "cairn_rocksdb_pending_compaction_bytes{store=\"chunks\"} ",
        "cairn_rocksdb_write_stopped{store=\"raft\"} 0",
        "cairn_rocksdb_blob_files_bytes{store=\"chunks\"} ",
        "cairn_rocksdb_sst_files_bytes{store=\"raft\"} ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(name), "missing {name:?} in\n{text}");
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(c) => c,
        // CI installs promtool (scripts/install-deps.sh): there, a missing
        // one fails the test instead of skipping the check.
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("promtool not runnable under CI ({e}): install Debian's `prometheus` package")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED promtool check: promtool not runnable ({e}); install Debian's `prometheus` package"
            );
            return;
        }
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("feed promtool");
    }
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `--config FILE` supplies settings, flags override them, and the
/// commands that print take `--json`.
#[test]
fn config_file_flags_override_and_json_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    let file_port = common::free_port();
    let config = tmp.path().join("cairnd.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"node1\"\nlisten = \"127.0.0.1:{file_port}\"\n\
             server = \"{}\"\nadmin_token_file = \"node1/admin.token\"\n[raft]\nsnapshot_every = 10\n",
            node.url()
        ),
    )
    .expect("write config");
    node.config = Some(config.clone());
    let cfg = config.to_string_lossy().into_owned();

    println!("=== the dev cluster takes its data dir from the file and --listen from the flag");
    let listen = node.listen();
    node.spawn(&["--listen", &listen, "--json"]);
    node.wait_ready();
    assert!(
        node.dir.join("node.json").exists(),
        "data_dir from the file"
    );
    let line = std::fs::read_to_string(node.log_dir.join("node1.1.out")).expect("stdout log");
    let first: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("json line");
    assert_eq!(first["event"], "listening");
    assert_eq!(first["url"], node.url());

    println!("=== server and admin token from the file");
    let out = run(&["--config", &cfg, "cluster", "status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: cairn_proto::admin::ClusterStatus =
        serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(status.leader, Some(1));
    let out = run(&[
        "--config",
        &cfg,
        "admin",
        "tier",
        "create",
        "gold",
        "--replicas",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["--config", &cfg, "admin", "tier", "list", "--json"]);
    let tiers: Vec<cairn_proto::admin::TierInfo> =
        serde_json::from_slice(&out.stdout).expect("json");
    let names: Vec<&str> = tiers.iter().map(|t| t.tier.name.as_str()).collect();
    assert_eq!(
        names,
        ["gold", "standard"],
        "the new tier next to the dev one"
    );

    println!("=== a flag wins over the file");
    let out = run(&[
        "--config",
        &cfg,
        "cluster",
        "status",
        "--server",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    println!("=== the raft settings from the file apply: a snapshot every 10 entries");
    let auth = node.bearer();
    for i in 0..12 {
        let headers = [("Authorization", auth.as_str())];
        let (code, body) = node.port_request(
            "POST",
            "/api/v1/admin/users",
            &headers,
            &user_body(&format!("u{i}")),
        );
        assert_eq!(code, 201, "{body}");
    }
    wait_for("a snapshot", Duration::from_secs(10), || {
        node.metric("cairn_raft_snapshot_build_duration_seconds_count")
            .filter(|n| *n >= 1.0)
    });

    println!("=== a bad file is refused with its name and the offending key");
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "listne = \"127.0.0.1:1\"\n").expect("write");
    let out = run_owned(vec![
        "--config".into(),
        bad.to_string_lossy().into_owned(),
        "cluster".into(),
        "status".into(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listne"), "{}", stderr(&out));

    println!("=== init --json");
    let other = Node::new(tmp.path(), 2);
    let dir = other.dir.to_string_lossy().into_owned();
    let out = run(&[
        "init",
        "--data-dir",
        &dir,
        "--node-id",
        "2",
        "--listen",
        &other.listen(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(init["node_id"], 2);
}
