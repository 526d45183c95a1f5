//! Upgrade compatibility: a vault written by format version 1 is committed
//! under `tests/fixtures/vault-v1/` and must restore byte-exact with every
//! later build. Never regenerate it to make this test pass; add a new
//! fixture for a new format version instead.
//!
//! To (re)create a fixture for a *new* version:
//! `cargo test -p cairn-client --test golden -- --ignored write_golden_fixture`

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{describe, restore_latest, restored, run_expect, run_json};
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vault-v1");

fn set_mtime(path: &Path, secs: i64, nsec: i64) {
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: nsec,
    };
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                [t, t].as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        0
    );
}

/// The deterministic source tree the fixture was made from.
fn golden_source(root: &Path) {
    fs::create_dir_all(root.join("nested/empty")).unwrap();
    fs::write(root.join("a.txt"), "cairn golden fixture\n".repeat(500)).unwrap();
    let mut x: u32 = 12345;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    fs::write(root.join("nested/noise.bin"), &noise).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::new("caf\u{e9}.txt")),
        "utf-8 name",
    )
    .unwrap();
    fs::write(
        root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"raw\xff")),
        "latin-1 name",
    )
    .unwrap();
    fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    xattr::set(root.join("a.txt"), "user.golden", b"yes").unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    for (i, p) in [
        "a.txt",
        "nested/noise.bin",
        "caf\u{e9}.txt",
        "link",
        "nested/empty",
        "nested",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64 * 1000, 250_000_000);
    }
}

fn manifest_of(root: &Path) -> serde_json::Value {
    let entries: Vec<_> = describe(root)
        .into_iter()
        .map(|(path, d)| {
            json!({
                "path": hex::encode(&path),
                "kind": d.kind,
                "mode": d.mode,
                "mtime": [d.mtime.0, d.mtime.1],
                "size": d.size,
                "blake3": d.content.map(|h| h.to_hex().to_string()),
                "target": d.target.map(hex::encode),
                "xattrs": d.xattrs.iter().map(|(k, v)| [hex::encode(k), hex::encode(v)]).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!(entries)
}

#[test]
#[ignore = "writes the committed fixture; run by hand for a new format version"]
fn write_golden_fixture() {
    let fixture = Path::new(FIXTURE);
    assert!(
        !fixture.exists(),
        "{FIXTURE} exists: fixtures are never overwritten"
    );
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("golden-src");
    golden_source(&src);
    let vault = fixture.join("vault");
    common::init_vault(&vault);
    let v = vault.to_str().unwrap();
    let backup = run_json(&[
        "backup",
        "--vault",
        v,
        src.to_str().unwrap(),
        "--item",
        "golden",
    ]);
    for entry in fs::read_dir(vault.join("chunks")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("LOG") || name == "LOCK" {
            fs::remove_file(p).unwrap();
        }
    }
    let meta = json!({
        "source": src,
        "password": common::PASSWORD,
        "snapshot_id": backup["id"],
        "root": backup["root"],
        "entries": manifest_of(&src),
    });
    fs::write(
        fixture.join("manifest.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

#[test]
fn the_v1_golden_vault_restores_byte_exact() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURE).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["password"], common::PASSWORD);
    let tmp = tempfile::tempdir().unwrap();
    let (vault, target) = (tmp.path().join("vault"), tmp.path().join("out"));
    copy_dir(&Path::new(FIXTURE).join("vault"), &vault);
    let v = vault.to_str().unwrap();

    let snaps = run_json(&["snapshots", "--vault", v]);
    assert_eq!(snaps[0]["id"], manifest["snapshot_id"]);
    assert_eq!(snaps[0]["root"], manifest["root"]);
    assert_eq!(snaps[0]["item"], "golden");
    run_expect(&["check", "--vault", v, "--read-data"], 0);
    restore_latest(v, &target);

    let source = PathBuf::from(manifest["source"].as_str().unwrap());
    assert_eq!(
        manifest_of(&restored(&target, &source)),
        manifest["entries"]
    );
}

const KEY_SLOTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/vault-v2-keyslots"
);

/// `vault.json` format 2 (key slots: two passwords and a recovery key)
/// as this build first wrote it for the v1 fixture's vault: each secret
/// still opens the vault and restores it byte-exact.
#[test]
fn the_v2_key_slot_config_opens_with_every_secret() {
    let slots: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(KEY_SLOTS).join("manifest.json")).unwrap())
            .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURE).join("manifest.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    copy_dir(&Path::new(FIXTURE).join("vault"), &vault);
    fs::copy(
        Path::new(KEY_SLOTS).join("vault.json"),
        vault.join("vault.json"),
    )
    .unwrap();
    let v = vault.to_str().unwrap();
    let source = PathBuf::from(manifest["source"].as_str().unwrap());
    for entry in slots["secrets"].as_array().unwrap() {
        let secret = entry["secret"].as_str().unwrap();
        let target = tmp.path().join(format!("out{}", entry["slot"]));
        let out = common::cairn()
            .env("CAIRN_PASSWORD", secret)
            .args(["--json", "key", "list", "--vault", v])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let in_use: Vec<_> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["in_use"] == true)
            .map(|s| s["slot"].clone())
            .collect();
        assert_eq!(in_use, [entry["slot"].clone()]);
        let out = common::cairn()
            .env("CAIRN_PASSWORD", secret)
            .args(["restore", "--vault", v, "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            manifest_of(&restored(&target, &source)),
            manifest["entries"]
        );
    }
}
