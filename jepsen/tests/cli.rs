//! The command line: clear errors, no panics, no half-made runs.

mod common;

use common::{jepsen, JEPSEN};

#[test]
fn without_root_it_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    let args = [
        "--nodes",
        "3",
        "--time-limit",
        "5",
        "--report",
        report.to_str().unwrap(),
        "--cairnd",
        "/bin/true",
    ];
    let out = if common::is_root() {
        // As root (CI), drop to nobody for this one run, from a copy of
        // the binary nobody may execute.
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.path().join("cairn-jepsen");
        std::fs::copy(JEPSEN, &exe).unwrap();
        for p in [dir.path(), exe.as_path()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let exe = exe.to_str().unwrap();
        let mut all = vec!["--reuid=65534", "--regid=65534", "--clear-groups", exe];
        all.extend(args);
        let out = std::process::Command::new("setpriv")
            .args(&all)
            .output()
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out
    } else {
        jepsen(&args)
    };
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
    assert!(!report.exists(), "a refused run made its report dir");
}

#[test]
fn an_unknown_nemesis_is_named() {
    let out = jepsen(&["--nemesis", "kill,flood", "--report", "x", "--cairnd", "y"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown nemesis \"flood\"; known: kill, pause, partition, loss, corrupt"),
        "{err}"
    );
}

#[test]
fn a_missing_cairnd_cairn_or_cairnd_debug_is_named() {
    if !common::is_root() {
        return; // the root check comes first; covered above
    }
    let out = jepsen(&["--report", "/tmp/never", "--cairnd", "/nonexistent/cairnd"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cairnd binary /nonexistent/cairnd does not exist"),
        "{err}"
    );
    let out = jepsen(&["--report", "/tmp/never", "--cairnd", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cairn binary /bin/cairn does not exist"),
        "{err}"
    );
    let out = jepsen(&[
        "--nemesis",
        "corrupt",
        "--report",
        "/tmp/never",
        "--cairnd",
        "/bin/true",
        "--cairn",
        "/bin/true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the corrupt nemesis needs cairnd-debug next to cairnd: /bin/cairnd-debug does not exist"),
        "{err}"
    );
}
