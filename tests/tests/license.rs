//! The license lease end to end (issue 14): a real license authority
//! (`cairnd license-authority serve`), real clusters leasing a serial
//! from it, the real `cairn` client refused with `license_expired` once
//! the grace period is over. Leases, renewals and grace are seconds long.
//!
//! - an authority outage: grace, then read-only (backups refused, restore
//!   works), then recovery on its own when the authority is back;
//! - a 3-node cluster whose leader runs with its clock 30 s ahead (more
//!   than the lease) is SIGKILLed during renewals: the new leader renews
//!   the same lease (same fencing token, no second grant), and losing the
//!   old leader's data directory loses nothing;
//! - two clusters race for one serial: the authority's history never shows
//!   two holders at once; the second gets it after `relax`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cairn_proto::admin::LicenseStatus;
use cairn_tests::authority::{set_license, Authority};
use cairn_tests::{bin, json_of, ok, stderr, wait_for, write_data, Device, Node};
use serde_json::Value;

const PASSWORD: &str = "license test passphrase";

/// Tenures of different clusters in the authority's history that
/// overlap (`[from, until)` intersect).
fn overlaps(history: &[Value]) -> Vec<(Value, Value)> {
    let span = |t: &Value| {
        (
            t["cluster_id"].as_str().unwrap_or_default().to_owned(),
            t["from"].as_u64().expect("from"),
            t["until"].as_u64().expect("until"),
        )
    };
    let mut found = Vec::new();
    for (i, a) in history.iter().enumerate() {
        for b in &history[i + 1..] {
            let (ca, fa, ua) = span(a);
            let (cb, fb, ub) = span(b);
            if ca != cb && fa < ub && fb < ua {
                found.push((a.clone(), b.clone()));
            }
        }
    }
    found
}

/// A node that is not licensed by default (no `CAIRND_DEV_LICENSE`).
fn unlicensed_node(root: &Path, id: u64) -> Node {
    let mut n = Node::new(root, id);
    n.env.push(("CAIRND_DEV_LICENSE".into(), "0".into()));
    n
}

fn license(node: &Node) -> Option<LicenseStatus> {
    node.status().and_then(|s| s.license)
}

fn wait_mode(node: &Node, mode: &str, within: Duration) -> LicenseStatus {
    wait_for(
        &format!("node {} license mode {mode}", node.id),
        within,
        || license(node).filter(|l| l.mode == mode),
    )
}

fn create_user(node: &Node, dir: &Path, name: &str) -> Output {
    let pw = dir.join(format!("{name}.pw"));
    std::fs::write(&pw, PASSWORD).expect("password file");
    node.admin(&[
        "user",
        "create",
        name,
        "--password-file",
        &pw.to_string_lossy(),
    ])
}

#[test]
fn authority_outage_grace_read_only_and_recovery() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let mut authority = Authority::start(root, 3);
    let serial = authority.create_serial("acme");
    let mut node = unlicensed_node(root, 1);
    node.init();
    node.start();
    node.wait_ready();

    // A cluster that never had a lease is read-only, and says so.
    let l = license(&node).expect("license status");
    assert_eq!(l.mode, "read_only", "{l:?}");
    assert!(
        l.detail
            .as_deref()
            .unwrap_or_default()
            .contains("no license"),
        "{l:?}"
    );
    let (code, body) = node.get("/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(body.contains("license: read-only"), "{body}");
    let refused = create_user(&node, root, "early");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("license_expired"),
        "{}",
        stderr(&refused)
    );

    // A serial off loopback without TLS is refused before the log.
    let out = node.admin(&[
        "license",
        "set",
        "--serial",
        &serial,
        "--authority",
        "http://10.9.9.9:1",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("https"), "{}", stderr(&out));

    set_license(&node, &serial, &authority.url(), 1, 6);
    let valid = wait_mode(&node, "valid", Duration::from_secs(20));
    let token = valid.fencing_token.expect("a fencing token");
    assert!(
        valid
            .serial
            .as_deref()
            .is_some_and(|s| !s.contains(&serial[5..])),
        "redacted: {valid:?}"
    );

    ok(
        "tier",
        &node.admin(&["tier", "create", "standard", "--replicas", "1"]),
    );
    ok("user create", &create_user(&node, root, "alice"));
    let device = Device::new(&root.join("laptop"), "laptop", PASSWORD);
    ok("login", &device.login(&node.url(), "alice"));
    device.json(&["vault", "request", "--tier", "standard", "--name", "main"]);
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    write_data(&data.join("a.bin"), 200_000, 1);
    let data_arg = data.to_str().expect("utf-8");
    device.json(&["item", "set", "home", "--vault", "main", data_arg]);
    device.json(&["backup", "--item", "home"]);

    // Each renewal reports the cluster's counts; the authority keeps the
    // latest.
    let rec = wait_for("telemetry with the vault", Duration::from_secs(10), || {
        Some(authority.record(&serial)).filter(|r| r["telemetry"]["vaults"] == 1)
    });
    assert_eq!(rec["telemetry"]["accounts"], 1, "{rec}");
    assert_eq!(rec["telemetry"]["devices"], 1, "{rec}");
    assert_eq!(rec["holder"]["fencing_token"], token, "{rec}");

    // The authority goes away: the lease runs out, the grace period runs,
    // then the cluster is read-only.
    authority.kill();
    wait_mode(&node, "grace", Duration::from_secs(10));
    let ro = wait_mode(&node, "read_only", Duration::from_secs(20));
    assert!(ro.detail.is_some(), "{ro:?}");
    // The license worker refreshes the metrics every half second.
    wait_for("the read-only metric", Duration::from_secs(5), || {
        (node.metric("cairn_license_read_only") == Some(1.0)).then_some(())
    });
    assert!(
        node.metric("cairn_license_renewal_failures_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    write_data(&data.join("b.bin"), 100_000, 2);
    let refused = device.cairn(&["backup", "--item", "home"]);
    assert!(!refused.status.success(), "a backup while read-only");
    assert!(
        stderr(&refused).contains("license_expired"),
        "{}",
        stderr(&refused)
    );
    let out = device.cairn(&["vault", "request", "--tier", "standard", "--name", "second"]);
    assert!(stderr(&out).contains("license_expired"), "{}", stderr(&out));
    // Listing and restore keep working.
    let snaps = device.json(&["snapshots", "--vault", "main"]);
    assert_eq!(snaps.as_array().map(Vec::len), Some(1));
    std::fs::remove_file(data.join("b.bin")).expect("rm");
    device.restore_and_compare("main", "latest", &root.join("restore"), &data);

    // The authority is back: the cluster recovers by itself.
    authority.resume();
    let back = wait_mode(&node, "valid", Duration::from_secs(20));
    assert!(
        back.fencing_token > Some(token),
        "a new grant after expiry: {back:?}"
    );
    write_data(&data.join("c.bin"), 100_000, 3);
    device.json(&["backup", "--item", "home"]);
    wait_for(
        "the read-only metric cleared",
        Duration::from_secs(5),
        || (node.metric("cairn_license_read_only") == Some(0.0)).then_some(()),
    );
    assert!(overlaps(
        authority.record(&serial)["history"]
            .as_array()
            .expect("history")
    )
    .is_empty());
}

#[test]
fn a_new_leader_renews_the_same_lease_and_tokens_only_grow() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let authority = Authority::start(root, 6);
    let serial = authority.create_serial("acme");
    let mut nodes: Vec<Node> = (1..=3).map(|id| unlicensed_node(root, id)).collect();
    // Node 1, the first leader, runs with its clock ahead by more than the
    // lease: it changes nothing.
    nodes[0]
        .env
        .push(("CAIRN_TEST_CLOCK_OFFSET_MS".into(), "30000".into()));
    nodes[0].init();
    nodes[0].start();
    nodes[0].wait_ready();
    let url1 = nodes[0].url();
    nodes[1].spawn_join(&url1);
    nodes[2].spawn_join(&url1);
    wait_for("three voters", Duration::from_secs(60), || {
        nodes[0].status().filter(|s| s.voters.len() == 3)
    });
    set_license(&nodes[0], &serial, &authority.url(), 1, 120);
    let mut token = None;
    for n in &nodes {
        let l = wait_mode(n, "valid", Duration::from_secs(30));
        assert!(
            token.is_none() || token == l.fencing_token,
            "one lease: {l:?}"
        );
        token = l.fencing_token;
    }
    let token = token.expect("a token");

    // Renewals under the same token push the expiry forward.
    let first = license(&nodes[1])
        .and_then(|l| l.expires_at)
        .expect("expiry");
    let renewed = wait_for("a renewal", Duration::from_secs(10), || {
        license(&nodes[1]).filter(|l| l.expires_at > Some(first))
    });
    assert_eq!(renewed.fencing_token, Some(token));

    // SIGKILL the leader during renewals, and lose its data directory.
    let leader = nodes[0].status().and_then(|s| s.leader).expect("leader");
    let before = license(&nodes[1])
        .and_then(|l| l.expires_at)
        .expect("expiry");
    let dead = leader as usize - 1;
    nodes[dead].kill();
    std::fs::remove_dir_all(&nodes[dead].dir).expect("lose the data dir");
    let alive: Vec<&Node> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != dead)
        .map(|(_, n)| n)
        .collect();
    let after = wait_for("the new leader renews", Duration::from_secs(30), || {
        license(alive[0]).filter(|l| l.expires_at > Some(before) && l.mode == "valid")
    });
    assert_eq!(
        after.fencing_token,
        Some(token),
        "the same lease, no second grant: {after:?}"
    );
    for n in &alive {
        let l = license(n).expect("status");
        assert_eq!(
            (l.mode.as_str(), l.fencing_token),
            ("valid", Some(token)),
            "node {}",
            n.id
        );
    }
    // The authority's own history: one grant, to this cluster.
    let rec = authority.record(&serial);
    let history = rec["history"].as_array().expect("history");
    assert_eq!(history.len(), 1, "{rec}");
    assert_eq!(rec["last_token"], token, "{rec}");
    let holder = rec["holder"]["cluster_id"].clone();
    assert_eq!(
        Some(holder.as_str().unwrap_or_default()),
        after.holder.as_deref()
    );
}

#[test]
fn two_clusters_race_for_one_serial_and_never_overlap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let authority = Authority::start(root, 3);
    let serial = authority.create_serial("acme");
    let mut a = unlicensed_node(&root.join("a"), 1);
    let mut b = unlicensed_node(&root.join("b"), 1);
    for n in [&mut a, &mut b] {
        n.init();
        n.start();
        n.wait_ready();
    }
    set_license(&a, &serial, &authority.url(), 1, 2);
    wait_mode(&a, "valid", Duration::from_secs(20));
    set_license(&b, &serial, &authority.url(), 1, 2);

    // For a minute both keep asking: A renews, B is refused every time.
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        let (la, lb) = (license(&a).expect("a"), license(&b).expect("b"));
        // A may slip into grace on a loaded machine; B never gets a lease.
        assert_ne!(la.mode, "read_only", "{la:?}");
        assert_eq!(lb.mode, "read_only", "{lb:?}");
        assert_eq!(lb.fencing_token, None, "{lb:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        b.logs_contain("lease_held"),
        "B was told the serial is held"
    );

    // A's cluster moves away: it stops and the operator relaxes the serial.
    a.kill();
    let relaxed = authority.serial(&["relax", &serial]);
    assert_eq!(relaxed["relaxed"], true);
    let lb = wait_mode(&b, "valid", Duration::from_secs(20));
    let rec = authority.record(&serial);
    let history = rec["history"].as_array().expect("history");
    assert!(history.len() >= 2, "{rec}");
    assert_eq!(overlaps(history), Vec::new(), "{rec}");
    let tokens: Vec<u64> = history
        .iter()
        .map(|t| t["fencing_token"].as_u64().expect("token"))
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens only grow: {tokens:?}"
    );
    assert_eq!(lb.fencing_token, tokens.last().copied());
}

#[test]
fn the_dev_cluster_is_licensed_by_its_embedded_authority() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = unlicensed_node(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    // Writable from its first request: the lease is taken before it serves.
    ok("user create", &create_user(&node, tmp.path(), "alice"));
    let l = license(&node).expect("license status");
    assert_eq!(l.mode, "valid", "{l:?}");
    assert_eq!(l.serial.as_deref(), Some("DEV-…"));
    assert_eq!(l.authority.as_deref(), Some(node.url().as_str()));
    let token = l.fencing_token.expect("token");

    // Its authority answers the operator (the node's admin token) like any.
    let token_file = node.token_file();
    let list = json_of(
        "serial list",
        &Command::new(bin("cairnd"))
            .args([
                "--json",
                "license-authority",
                "serial",
                "list",
                "--authority",
            ])
            .arg(node.url())
            .arg("--token-file")
            .arg(&token_file)
            .output()
            .expect("run cairnd"),
    );
    let rec = &list.as_array().expect("serials")[0];
    assert_eq!(rec["serial"], "DEV-SERIAL");
    assert_eq!(rec["holder"]["cluster_id"].as_str(), l.holder.as_deref());

    // A restart renews the same lease before serving.
    node.terminate();
    node.spawn_dev();
    node.wait_ready();
    ok("user create", &create_user(&node, tmp.path(), "bob"));
    let again = license(&node).expect("license status");
    assert_eq!(
        (again.mode.as_str(), again.fencing_token),
        ("valid", Some(token))
    );
}
