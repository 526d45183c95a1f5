//! The CI run: three real nodes for 100 s under kills, partitions, pauses,
//! power losses (unsynced writes dropped) and license authority outages,
//! with every checker valid (registers, chunks, the lease, backups and
//! restores with the real `cairn`), a complete report, and no namespace
//! left behind. Needs root, as CI has.

mod common;

use common::{jepsen_pid, report_json, verdict};

#[test]
fn three_nodes_under_kill_partition_pause_power_loss_authority_outage_lose_nothing() {
    assert!(
        common::is_root(),
        "the fault-injection run needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let cairnd = cairn_tests::bin("cairnd");
    let cairn = cairn_tests::bin("cairn");
    let (out, pid) = jepsen_pid(&[
        "--nodes",
        "3",
        "--time-limit",
        "100",
        "--nemesis",
        "kill,partition,pause,power-loss,authority",
        "--seed",
        "25",
        "--report",
        report.to_str().unwrap(),
        "--cairnd",
        cairnd.to_str().unwrap(),
        "--cairn",
        cairn.to_str().unwrap(),
    ]);
    let code = out.status.code();
    if code != Some(0) {
        panic!("exit {code:?}; report kept in {}", dir.keep().display());
    }
    for checker in [
        "register",
        "chunks",
        "lease",
        "lease-view",
        "backups",
        "nodes",
    ] {
        let (result, summary) = verdict(&report, checker);
        assert_eq!(result, "valid", "{checker}: {summary}");
    }
    let run = report_json(&report, "run.json");
    assert_eq!(run["seed"], 25);
    assert!(run["replay"].as_str().unwrap().contains("--seed 25"));
    assert!(run["ok"].as_u64().unwrap() > 100, "{run}");
    // The faults happened and are in the history and on the timeline.
    let history = std::fs::read_to_string(report.join("history.jsonl")).unwrap();
    let windows = history
        .lines()
        .filter(|l| l.contains(r#""type":"nemesis""#))
        .count();
    assert!(windows >= 5, "{windows} nemesis windows");
    assert!(
        history.contains("power loss n"),
        "no power loss in the schedule of seed 25"
    );
    for f in [
        "write",
        "read",
        "upload",
        "lease",
        "backup",
        "retention",
        "restore",
    ] {
        assert!(
            history.contains(&format!(r#""f":"{f}""#)),
            "no {f} recorded"
        );
    }
    let svg = std::fs::read_to_string(report.join("timeline.svg")).unwrap();
    assert_eq!(svg.matches(r#"class="nemesis""#).count(), windows);
    assert!(
        history.contains("authority down") || history.contains("authority cut off"),
        "no authority outage in the schedule of seed 25"
    );
    assert!(report.join("logs/n1.1.log").exists());
    assert!(report.join("logs/authority.1.log").exists());
    assert_eq!(
        report.join("data").exists(),
        code != Some(0),
        "only a run with a violation keeps the node data"
    );
    assert_eq!(common::leftover_namespaces(pid), Vec::<String>::new());
}
