//! Shared by the harness's integration tests: running `cairn-jepsen` and
//! reading its report.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The harness binary.
pub const JEPSEN: &str = env!("CARGO_BIN_EXE_cairn-jepsen");

/// `cairn-jepsen ARGS`, its output shown for the test log.
pub fn jepsen(args: &[&str]) -> Output {
    jepsen_pid(args).0
}

/// `cairn-jepsen ARGS` and the process id it ran with.
pub fn jepsen_pid(args: &[&str]) -> (Output, u32) {
    let child = Command::new(JEPSEN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run cairn-jepsen");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait for cairn-jepsen");
    eprintln!(
        "cairn-jepsen {args:?} → {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, pid)
}

/// A workspace binary next to `cairnd` (built by `scripts/test.sh`).
pub fn workspace_bin(name: &str, build: &str) -> PathBuf {
    let cairnd = cairn_tests::bin("cairnd");
    let path = cairnd.with_file_name(name);
    assert!(path.exists(), "{} not built: run `{build}`", path.display());
    path
}

/// A JSON file of the report.
pub fn report_json(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("report file");
    serde_json::from_str(&text).expect("report json")
}

/// The verdict of `checker` (`valid`, `invalid`, `unknown`) and its summary.
pub fn verdict(dir: &Path, checker: &str) -> (String, String) {
    let all = report_json(dir, "verdicts.json");
    let v = all
        .as_array()
        .expect("verdict list")
        .iter()
        .find(|v| v["checker"] == checker)
        .unwrap_or_else(|| panic!("no {checker} verdict in {all}"));
    (
        v["result"].as_str().unwrap_or_default().to_string(),
        v["summary"].as_str().unwrap_or_default().to_string(),
    )
}

/// Namespaces left by the run with process id `pid` (must be none).
pub fn leftover_namespaces(pid: u32) -> Vec<String> {
    let prefix = format!("cj{pid:x}-");
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| ns.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Whether the tests run as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
