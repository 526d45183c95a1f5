//! The checkers can fail: `cairnd-unsafe-ack` (cairn-node's test-only
//! `unsafe-ack` feature, switched on by `CAIRN_UNSAFE_ACK`) acknowledges
//! chunk uploads before writing them, and one short run with kills must
//! end in a violation naming lost chunks. Needs root, as CI has.

mod common;

use common::{jepsen_pid, verdict, workspace_bin};

#[test]
fn acknowledging_before_writing_is_caught() {
    assert!(
        common::is_root(),
        "the fault-injection run needs root (CI runs as root)"
    );
    let cairnd = workspace_bin(
        "cairnd-unsafe-ack",
        "cargo build -p cairn-node --features unsafe-ack --bin cairnd-unsafe-ack",
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let (out, pid) = jepsen_pid(&[
        "--nodes",
        "3",
        "--time-limit",
        "30",
        "--nemesis",
        "kill",
        "--seed",
        "7",
        "--node-env",
        "CAIRN_UNSAFE_ACK=1",
        "--report",
        report.to_str().unwrap(),
        "--cairnd",
        cairnd.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "a violation exits 1");
    let (result, summary) = verdict(&report, "chunks");
    assert_eq!(result, "invalid", "{summary}");
    assert!(summary.contains("acknowledged chunks lost"), "{summary}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("replay: cairn-jepsen --nodes 3 --time-limit 30 --nemesis kill --seed 7 --node-env CAIRN_UNSAFE_ACK=1"), "{stdout}");
    // An invalid run keeps the node data as evidence.
    assert!(report.join("data/n1").exists());
    assert_eq!(common::leftover_namespaces(pid), Vec::<String>::new());
}
