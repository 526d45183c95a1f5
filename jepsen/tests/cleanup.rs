//! Nothing of a run outlives it: Ctrl-C mid-run unwinds through the
//! cleanup (nodes killed, namespaces and bridge removed, the history so far
//! written), and a run removes
//! what a SIGKILLed earlier run left behind. Needs root, as CI has.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{leftover_namespaces, JEPSEN};

#[test]
fn ctrl_c_and_dead_runs_leave_nothing_behind() {
    assert!(
        common::is_root(),
        "the fault-injection run needs root (CI runs as root)"
    );
    // What a harness killed with SIGKILL leaves: a namespace named after
    // a process that no longer exists.
    let dead = "cjfffffff0-n1";
    let made = Command::new("ip")
        .args(["netns", "add", dead])
        .status()
        .unwrap();
    assert!(made.success());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let cairnd = cairn_tests::bin("cairnd");
    let mut child = Command::new(JEPSEN)
        .args(["--nodes", "3", "--time-limit", "600", "--seed", "3"])
        .args(["--nemesis", "kill,pause"])
        .arg("--report")
        .arg(&report)
        .arg("--cairnd")
        .arg(&cairnd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("running workloads") {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("namespaces left by earlier runs")),
        "{seen:?}"
    );
    assert_eq!(leftover_namespaces(0xffff_fff0), Vec::<String>::new());
    assert_eq!(
        leftover_namespaces(pid).len(),
        6,
        "3 nodes, clients, authority, switch"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let sent = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(2), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    assert_eq!(leftover_namespaces(pid), Vec::<String>::new());
    // What was recorded before the interrupt is kept.
    let history = std::fs::read_to_string(report.join("history.jsonl")).unwrap();
    assert!(history.contains(r#""type":"op""#), "{history}");
    assert!(report.join("timeline.svg").exists());
    // No cairnd of the run is left either.
    let ps = Command::new("pgrep")
        .args(["-f", &report.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
