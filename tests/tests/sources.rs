//! Backup sources on an account vault, as on a local one: a path below a
//! symlinked directory is saved and restored as given (directly and through
//! a protected item), a symlink named as a source is saved as the link, and
//! a backup that had to leave entries out exits 5 with its job recorded as
//! `warnings`.

use std::os::unix::fs::symlink;

use cairn_tests::{ok, stderr, stdout, Cluster, Device};

const PW: &str = "sources are what the kernel shows";

#[test]
fn account_vault_backups_hold_what_the_os_shows_under_each_source() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("erin", PW);
    let homes = cluster.scratch("devices");
    let device = Device::new(&homes.join("d"), "desk", PW);
    ok("login", &device.login(&cluster.nodes[0].url(), "erin"));
    device.json(&["vault", "request", "--tier", "one", "--name", "main"]);

    let t = std::fs::canonicalize(cluster.scratch("data")).expect("canonical scratch");
    std::fs::create_dir_all(t.join("real/d/sub")).expect("mkdir");
    std::fs::write(t.join("real/d/f1"), b"hi\n").expect("write");
    std::fs::write(t.join("real/d/sub/f2"), b"yo\n").expect("write");
    symlink(t.join("real"), t.join("link")).expect("symlink");
    let source = t.join("link/d");
    let src = source.to_str().expect("utf-8");

    // Directly.
    let report = device.json(&["backup", "--vault", "main", src]);
    assert_eq!(report["files"], 2, "{report}");
    let id = report["id"].as_str().expect("snapshot id").to_string();
    device.restore_and_compare("main", &id, &homes.join("r1"), &source);

    // Through a protected item whose path has a symlinked parent.
    ok(
        "item set",
        &device.cairn(&["item", "set", "docs", "--vault", "main", src]),
    );
    let report = device.json(&["backup", "--item", "docs"]);
    assert_eq!(report["files"], 2, "{report}");
    let id = report["id"].as_str().expect("snapshot id").to_string();
    device.restore_and_compare("main", &id, &homes.join("r2"), &source);

    // The link as a source is the link, said so.
    let link = t.join("link");
    let out = device.cairn(&["backup", "--vault", "main", link.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a symlink: saved as the link"),
        "{}",
        stderr(&out)
    );

    // An entry that cannot be backed up: exit 5, named, job `warnings`.
    let _sock = std::os::unix::net::UnixListener::bind(t.join("real/d/sock")).expect("socket");
    let out = device.cairn(&["backup", "--vault", "main", src]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("sock"), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 file skipped"), "{}", stdout(&out));
    // `cairn jobs` lists oldest first.
    let jobs = device.json(&["jobs"]);
    let newest = jobs
        .as_array()
        .and_then(|j| j.iter().rev().find(|j| j["kind"] == "backup"))
        .expect("a backup job");
    assert_eq!(newest["status"], "warning", "{jobs}");
}
