//! The reviewed interleaving of a jobless backup and a prune: device A's
//! backup cannot record its job (a relay answers 503 to `POST /jobs`), while
//! device B forgets A's first snapshot and prunes. Before the fix, A's
//! backup ran without a job, committed, and its snapshot lost the chunks it
//! reused from the parent. Now A's backup refuses to run without its job,
//! nothing is committed, and every snapshot that exists restores with
//! `check --read-data` clean.

use cairn_tests::hostile::{hide_other_nodes, Answer, HostileServer, Request};
use cairn_tests::{ok, stderr, write_data, Cluster, Device};
use serde_json::json;

const PW: &str = "no commit without protection";

#[test]
fn a_backup_that_cannot_record_its_job_commits_nothing_and_prune_loses_nothing() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("gc", PW);
    let url = cluster.nodes[0].url();
    let port = cluster.nodes[0].port;
    // Answers 503 to every job start without the node seeing it (as during
    // an election), and hides the real node so the client cannot fail over
    // around it.
    let no_jobs = |r: &Request| {
        (r.method == "POST" && r.path == "/api/v1/jobs").then(|| {
            Answer::with_json(
                503,
                &json!({"code": "unavailable", "message": "no leader (relay)"}),
            )
        })
    };
    let relay = HostileServer::start_with(port, no_jobs, hide_other_nodes);

    let homes = cluster.scratch("devices");
    let a = Device::new(&homes.join("a"), "a", PW);
    let b = Device::new(&homes.join("b"), "b", PW);
    ok("login b", &b.login(&url, "gc"));
    b.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    let data = cluster.scratch("data");
    for i in 0..4 {
        write_data(&data.join(format!("f{i}")), 400_000, i);
    }
    let src = data.to_str().expect("utf-8");
    // S1 by A, directly.
    ok("login a", &a.login(&url, "gc"));
    let s1 = a.json(&["backup", "--vault", "main", src]);
    let s1_id = s1["id"].as_str().expect("id").to_string();

    // A's next backup goes through the relay: its job cannot be recorded.
    write_data(&data.join("f9"), 400_000, 9);
    let a_relay = Device::new(&homes.join("a-relay"), "a-relay", PW);
    ok("login a-relay", &a_relay.login(&relay.url(), "gc"));
    let out = a_relay.cairn(&["backup", "--vault", "main", src]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not record the backup job, so nothing was backed up"),
        "{}",
        stderr(&out)
    );
    assert!(
        !relay
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/chunks")
                || r.path.ends_with("/snapshots") && r.method == "POST"),
        "the jobless backup uploaded or committed"
    );

    // B forgets S1 and prunes: every chunk only S1 used goes.
    ok("forget", &b.cairn(&["forget", "--vault", "main", &s1_id]));
    ok("prune", &b.cairn(&["prune", "--vault", "main"]));
    let snaps = b.json(&["snapshots", "--vault", "main"]);
    assert_eq!(snaps.as_array().map(Vec::len), Some(0), "{snaps}");

    // A backs up again with its job recorded: complete, and it restores.
    let s2 = a.json(&["backup", "--vault", "main", src]);
    let s2_id = s2["id"].as_str().expect("id").to_string();
    ok(
        "check",
        &a.cairn(&["check", "--vault", "main", "--read-data"]),
    );
    a.restore_and_compare("main", &s2_id, &homes.join("restored"), &data);
}
