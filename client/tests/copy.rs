//! `cairn copy` between local vaults through the real binary: snapshots
//! re-encrypted for a vault with other keys and another password, restored
//! byte-exact from there; a second copy stores nothing; the selection
//! filters pick what is copied; a wrong source password is exit 3.
//! (Local → account vault: `tests/tests/copy.rs`.)

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{assert_same_tree, cairn, init_vault, restored, run_json, PASSWORD};

/// The target vaults' password (the source's is [`PASSWORD`]).
const TARGET_PW: &str = "another vault, another password";

/// Runs `cairn --json ARGS` as the target's owner: `CAIRN_PASSWORD` is the
/// target's, `CAIRN_FROM_PASSWORD` the source's.
fn as_target(args: &[&str]) -> Output {
    cairn()
        .env("CAIRN_PASSWORD", TARGET_PW)
        .env("CAIRN_FROM_PASSWORD", PASSWORD)
        .arg("--json")
        .args(args)
        .output()
        .expect("run cairn")
}

fn json_ok(args: &[&str]) -> serde_json::Value {
    let out = as_target(args);
    assert!(
        out.status.success(),
        "cairn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// A vault with [`TARGET_PW`].
fn init_target(dir: &Path) {
    let out = cairn()
        .env("CAIRN_PASSWORD", TARGET_PW)
        .args(["vault", "init", "--local", dir.to_str().unwrap()])
        .args(["--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .output()
        .expect("run cairn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(v: &serde_json::Value, key: &str) -> usize {
    v[key].as_array().map_or(usize::MAX, Vec::len)
}

#[test]
fn copy_re_encrypts_for_the_target_dedups_and_follows_the_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to, picked) = (
        tmp.path().join("from"),
        tmp.path().join("to"),
        tmp.path().join("picked"),
    );
    init_vault(&from);
    init_target(&to);
    init_target(&picked);
    let (f, t, p) = (
        from.to_str().unwrap(),
        to.to_str().unwrap(),
        picked.to_str().unwrap(),
    );
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("sub/note.txt"), b"remember the milk").unwrap();
    let s = src.to_str().unwrap();
    let first = run_json(&["backup", "--vault", f, s]);
    fs::write(src.join("sub/later.txt"), b"added later").unwrap();
    let second = run_json(&["backup", "--vault", f, s, "--tag", "keep"]);

    // Everything into `to`: two snapshots, under the target's keys.
    let copied = json_ok(&["copy", "--from", f, "--vault", t]);
    assert_eq!(count(&copied, "copied"), 2, "{copied}");
    assert_eq!(copied["copied"][0]["from"], first["id"], "{copied}");
    assert!(copied["chunks_stored"].as_u64().unwrap() > 2, "{copied}");
    let listed = json_ok(&["snapshots", "--vault", t]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let originals = run_json(&["snapshots", "--vault", f]);
    assert_eq!(listed[1]["time"], originals[1]["time"], "the time stays");
    assert_eq!(
        listed[1]["device"], originals[1]["device"],
        "the device stays"
    );
    assert_eq!(listed[1]["tags"], serde_json::json!(["keep"]), "{listed:?}");

    // The copy restores byte-exact with the target's password only.
    let target = tmp.path().join("restored");
    let r = target.to_str().unwrap();
    json_ok(&[
        "restore",
        "--vault",
        t,
        "latest",
        "--all-devices",
        "--target",
        r,
    ]);
    assert_same_tree(&src, &restored(&target, &src));
    assert_eq!(
        fs::read(restored(&target, &src).join("big.bin")).unwrap(),
        big
    );

    // Again: both are there already, nothing is stored.
    let again = json_ok(&["copy", "--from", f, "--vault", t]);
    assert_eq!(
        (count(&again, "copied"), count(&again, "already_there")),
        (0, 2),
        "{again}"
    );
    assert_eq!(again["chunks_stored"], 0, "{again}");

    // The selection filters pick what is copied.
    let tagged = json_ok(&["copy", "--from", f, "--vault", p, "--tag", "keep"]);
    assert_eq!(count(&tagged, "copied"), 1, "{tagged}");
    assert_eq!(tagged["copied"][0]["from"], second["id"], "{tagged}");
    let by_id = json_ok(&[
        "copy",
        "--from",
        f,
        "--vault",
        p,
        first["id"].as_str().unwrap(),
    ]);
    assert_eq!(count(&by_id, "copied"), 1, "{by_id}");
    // The big file's chunks were there already: only trees and the small
    // file are stored.
    assert!(by_id["chunks_reused"].as_u64().unwrap() > 0, "{by_id}");
    assert!(by_id["bytes_stored"].as_u64().unwrap() < 10_000, "{by_id}");

    // A wrong source password is the wrong-password exit code; nothing
    // is copied.
    let wrong = cairn()
        .env("CAIRN_PASSWORD", TARGET_PW)
        .env("CAIRN_FROM_PASSWORD", "not it")
        .args(["copy", "--from", f, "--vault", p])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(3), "{wrong:?}");
    // Into itself: refused.
    let same = cairn()
        .env("CAIRN_PASSWORD", TARGET_PW)
        .env("CAIRN_FROM_PASSWORD", TARGET_PW)
        .args(["copy", "--from", t, "--vault", t])
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(1), "{same:?}");
}
