//! End-to-end tests of the `cairn` binary against local-disk vaults.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;

/// A small tree exercising every kind of entry the format records.
fn make_source(root: &Path) {
    fs::create_dir_all(root.join("docs/empty")).unwrap();
    fs::write(root.join("docs/readme.txt"), "hello cairn\n".repeat(1000)).unwrap();
    fs::write(root.join("docs/big.bin"), pseudo_random(6 * 1024 * 1024, 1)).unwrap();
    fs::write(root.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::write(root.join("zero"), b"").unwrap();
    symlink("docs/readme.txt", root.join("link")).unwrap();
    symlink("/nonexistent/target", root.join("dangling")).unwrap();
    fs::hard_link(root.join("docs/readme.txt"), root.join("hardlink")).unwrap();
    let odd = std::ffi::OsStr::from_encoded_bytes_checked_unix(b"caf\xe9 \x01name");
    fs::write(root.join(odd), b"latin-1 name").unwrap();
    xattr::set(root.join("docs/readme.txt"), "user.cairn", b"value").unwrap();
    let fifo = std::ffi::CString::new(root.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
    let old = libc::timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 123_456_789,
    };
    let c = std::ffi::CString::new(root.join("zero").as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [old, old].as_ptr(), 0) },
        0
    );
}

trait FromUnixBytes {
    fn from_encoded_bytes_checked_unix(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromUnixBytes for std::ffi::OsStr {
    fn from_encoded_bytes_checked_unix(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A temporary directory with the usual `src`, `vault` and `out` paths in it
/// (not created); keep the guard alive for the test's duration.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let (src, vault, out) = (p("src"), p("vault"), p("out"));
    (tmp, src, vault, out)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn a_prune_gives_the_space_of_deleted_chunks_back() {
    let (_tmp, src, vault, _) = scratch();
    fs::create_dir_all(&src).unwrap();
    init_vault(&vault);
    let (v, s) = (vault.to_str().unwrap(), src.to_str().unwrap());
    fs::write(src.join("old"), pseudo_random(8 << 20, 21)).unwrap();
    let first = run_json(&["backup", "--vault", v, s]);
    fs::remove_file(src.join("old")).unwrap();
    fs::write(src.join("new"), pseudo_random(1 << 20, 22)).unwrap();
    run_json(&["backup", "--vault", v, s]);
    let before = dir_bytes(&vault);
    run_json(&["forget", "--vault", v, first["id"].as_str().unwrap()]);
    let pruned = run_json(&["prune", "--vault", v]);
    assert!(
        pruned["report"]["deleted_bytes"].as_u64().unwrap() >= 8 << 20,
        "{pruned}"
    );
    let after = dir_bytes(&vault);
    assert!(
        after + (7 << 20) < before,
        "the vault holds {after} bytes after the prune, {before} before"
    );
    run_expect(&["check", "--vault", v, "--read-data"], 0);
}

#[test]
fn backup_and_restore_reproduce_every_kind_of_entry() {
    let (_tmp, src, vault, target) = scratch();
    make_source(&src);
    init_vault(&vault);
    let v = vault.to_str().unwrap();

    let report = run_json(&["backup", "--vault", v, src.to_str().unwrap()]);
    assert_eq!(report["files"], 6, "{report}");
    assert!(report["new_chunks"].as_u64().unwrap() > 3);
    let listing = run_json(&["snapshots", "--vault", v]);
    assert_eq!(listing.as_array().unwrap().len(), 1);
    assert_eq!(listing[0]["id"], report["id"]);
    assert_eq!(listing[0]["root"], report["root"]);

    restore_latest(v, &target);
    assert_same_tree(&src, &restored(&target, &src));

    // Restoring by id prefix into a target that already holds the files
    // overwrites them and gives the same result.
    let id = report["id"].as_str().unwrap();
    run_expect(
        &[
            "restore",
            "--vault",
            v,
            &id[..8],
            "--target",
            target.to_str().unwrap(),
        ],
        0,
    );
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn json_flag_is_global_and_ls_lists_paths() {
    let (_tmp, src, vault, _) = scratch();
    make_source(&src);
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_expect(&["backup", "--vault", v, src.to_str().unwrap()], 0);
    let after = run_expect(&["snapshots", "--vault", v, "--json"], 0);
    let before = run_expect(&["--json", "snapshots", "--vault", v], 0);
    assert_eq!(after.stdout, before.stdout);
    serde_json::from_slice::<serde_json::Value>(&after.stdout).unwrap();

    let docs = src.join("docs");
    let listed = run_json(&["ls", "--vault", v, "latest", docs.to_str().unwrap()]);
    let paths: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let d = docs.to_str().unwrap();
    assert_eq!(
        paths,
        [
            d.to_string(),
            format!("{d}/big.bin"),
            format!("{d}/empty"),
            format!("{d}/readme.txt")
        ]
    );
    let text = run_expect(&["ls", "--vault", v, "latest"], 0);
    assert!(String::from_utf8_lossy(&text.stdout).contains("script.sh"));
}

#[test]
fn wrong_password_exits_3_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let out = cairn()
        .env("CAIRN_PASSWORD", "not the password")
        .args(["snapshots", "--vault", vault.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    run_expect(&["backup"], 2);
    run_expect(&["no-such-command"], 2);
    // Not a vault: a clear error, exit 1.
    let out = run_expect(&["snapshots", "--vault", tmp.path().to_str().unwrap()], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cairn vault"));
    // A password from a file works the same as from the environment.
    let pw = tmp.path().join("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = cairn()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_FILE", &pw)
        .args(["snapshots", "--vault", vault.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cairn vault init DIR` and `cairn vault init file://DIR` make local
/// vaults like `--local DIR`.
#[test]
fn vault_init_takes_a_plain_path_or_a_file_url() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    let url = tmp.path().join("url");
    for target in [
        plain.to_str().unwrap().to_owned(),
        format!("file://{}", url.display()),
    ] {
        run_expect(
            &[
                "vault",
                "init",
                &target,
                "--kdf-memory-kib",
                "1024",
                "--kdf-iterations",
                "1",
            ],
            0,
        );
    }
    for dir in [&plain, &url] {
        run_expect(&["snapshots", "--vault", dir.to_str().unwrap()], 0);
    }
}

/// An unknown zone, by flag or by `CAIRN_TZ`, is a usage error (exit 2)
/// whose message names the bad value; a good one runs.
#[test]
fn an_unknown_time_zone_is_a_usage_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let out = run_expect(
        &["--time-zone", "Mars/Olympus", "snapshots", "--vault", v],
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Olympus"));
    let out = cairn()
        .env("CAIRN_TZ", "Venus/Maxwell")
        .args(["snapshots", "--vault", v])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Venus/Maxwell"));
    run_expect(
        &[
            "--time-zone",
            "EST5EDT,M3.2.0,M11.1.0",
            "snapshots",
            "--vault",
            v,
        ],
        0,
    );
}

#[test]
fn excludes_includes_and_several_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, vault, target) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("vault"),
        tmp.path().join("out"),
    );
    for d in [&a, &b] {
        fs::create_dir_all(d.join("cache")).unwrap();
        fs::write(d.join("keep.txt"), "keep").unwrap();
        fs::write(d.join("drop.tmp"), "drop").unwrap();
        fs::write(d.join("cache/x"), "cached").unwrap();
    }
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let cache_glob = format!("{}/cache", a.display());
    run_expect(
        &[
            "backup",
            "--vault",
            v,
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--exclude",
            "*.tmp",
            "--exclude",
            &cache_glob,
        ],
        0,
    );
    restore_latest(v, &target);
    assert!(restored(&target, &a).join("keep.txt").exists());
    assert!(!restored(&target, &a).join("drop.tmp").exists());
    assert!(!restored(&target, &b).join("drop.tmp").exists());
    assert!(
        !restored(&target, &a).join("cache").exists(),
        "path glob excludes a's cache"
    );
    assert!(
        restored(&target, &b).join("cache/x").exists(),
        "but not b's"
    );

    let only = tmp.path().join("only");
    let include = b.join("keep.txt");
    run_expect(
        &[
            "restore",
            "--vault",
            v,
            "latest",
            "--target",
            only.to_str().unwrap(),
            "--include",
            include.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(fs::read(restored(&only, &include)).unwrap(), b"keep");
    assert!(!restored(&only, &a).exists());
    assert!(!restored(&only, &b).join("cache").exists());
}

#[test]
fn incremental_backups_read_only_what_changed() {
    let (_tmp, src, vault, _) = scratch();
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        fs::write(
            src.join(format!("small{i}")),
            format!("file {i}\n").repeat(100),
        )
        .unwrap();
    }
    let big = pseudo_random(24 * 1024 * 1024, 7);
    fs::write(src.join("big"), &big).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let s = src.to_str().unwrap();

    let first = run_json(&["backup", "--vault", v, s]);
    assert_eq!(first["files_read"], 21);

    let second = run_json(&["backup", "--vault", v, s]);
    assert_eq!(second["files_read"], 0, "{second}");
    // Only trees can be new: the metadata of /tmp, an ancestor of the
    // backed-up path, changes whenever another test makes a temporary dir.
    assert!(second["new_bytes"].as_u64().unwrap() < 4096, "{second}");
    assert_eq!(second["parent"], first["id"]);

    // Insert 100 bytes in the middle of the big file: only the chunks
    // around the insert (plus the changed trees) are new.
    let mut changed = big.clone();
    changed.splice(12 * 1024 * 1024..12 * 1024 * 1024, pseudo_random(100, 9));
    fs::write(src.join("big"), &changed).unwrap();
    let third = run_json(&["backup", "--vault", v, s]);
    assert_eq!(third["files_read"], 1, "{third}");
    let new_bytes = third["new_bytes"].as_u64().unwrap();
    assert!(
        new_bytes < 6 * 1024 * 1024,
        "an insert uploaded {new_bytes} bytes of a 24 MiB file"
    );

    // --force reads everything again but stores nothing new.
    let forced = run_json(&["backup", "--vault", v, s, "--force"]);
    assert_eq!(forced["files_read"], 21);
    assert!(forced["new_bytes"].as_u64().unwrap() < 4096, "{forced}");
}

#[test]
fn a_corrupted_chunk_is_found_by_check_and_not_restored() {
    let (_tmp, src, vault, target) = scratch();
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("victim"), pseudo_random(100_000, 3)).unwrap();
    fs::write(src.join("bystander"), pseudo_random(100_000, 4)).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_expect(&["backup", "--vault", v, src.to_str().unwrap()], 0);
    run_expect(&["check", "--vault", v, "--read-data"], 0);

    // Find the victim's chunk and flip a byte of it inside the store's files.
    let listed = run_json(&["ls", "--vault", v, "latest"]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"].as_str().unwrap().ends_with("/victim")));
    let victim = fs::read(src.join("victim")).unwrap();
    let keys = debug_keys(v);
    let id_key: [u8; 32] = hex::decode(keys["chunk_id_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let id = blake3::keyed_hash(&id_key, &victim).to_hex().to_string();
    let raw = debug_expect(&["cat-raw", "--vault", v, &id]);
    assert!(
        flip_in_store(&vault.join("chunks"), &raw[40..72]),
        "the sealed bytes are somewhere in the store"
    );

    let out = run_expect(&["check", "--vault", v, "--read-data"], 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("victim"), "{stderr}");
    assert!(!stderr.contains("bystander"), "{stderr}");

    let out = run_expect(
        &[
            "restore",
            "--vault",
            v,
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        4,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("victim"));
    assert!(
        !restored(&target, &src).join("victim").exists(),
        "no garbage is left behind"
    );
    assert_eq!(
        fs::read(restored(&target, &src).join("bystander")).unwrap(),
        fs::read(src.join("bystander")).unwrap()
    );
}

#[test]
fn password_change_rewraps_keys_only() {
    let (_tmp, src, vault, target) = scratch();
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "data").unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_expect(&["backup", "--vault", v, src.to_str().unwrap()], 0);
    let keys_before = debug_keys(v);
    // The raw keys are no subcommand of the production binary.
    run_expect(&["debug", "keys", "--vault", v], 2);

    let out = cairn()
        .env("CAIRN_NEW_PASSWORD", "new secret")
        .args(["key", "passwd", "--vault", v])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_expect(&["snapshots", "--vault", v], 3);
    let out = cairn_debug()
        .env("CAIRN_PASSWORD", "new secret")
        .args(["keys", "--vault", v])
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        keys_before
    );
    let out = cairn()
        .env("CAIRN_PASSWORD", "new secret")
        .args([
            "restore",
            "--vault",
            v,
            "latest",
            "--target",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        fs::read(restored(&target, &src).join("f")).unwrap(),
        b"data"
    );
}

/// Decodes a chunk from `cairn-debug cat-raw` with the AEAD rebuilt here from the
/// primitives (not the client's own module), proving the documented format.
#[test]
fn sealed_chunks_follow_the_documented_format() {
    use aes::cipher::{KeyIvInit, StreamCipher};
    use poly1305::universal_hash::KeyInit;

    let (_tmp, src, vault, _) = scratch();
    fs::create_dir_all(&src).unwrap();
    let plain = "compressible text ".repeat(5000).into_bytes();
    fs::write(src.join("f"), &plain).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_expect(&["backup", "--vault", v, src.to_str().unwrap()], 0);
    let keys = debug_keys(v);
    let key = |k: &str| -> [u8; 32] {
        hex::decode(keys[k].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let vault_id = hex::decode(keys["vault_id"].as_str().unwrap()).unwrap();
    let id = blake3::keyed_hash(&key("chunk_id_key"), &plain);
    let sealed = debug_expect(&["cat-raw", "--vault", v, &id.to_hex()]);

    let (nonce, rest) = sealed.split_at(16);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(&key("encryption_key").into(), nonce.into());
    let mut otk = [0u8; 32];
    cipher.apply_keystream(&mut otk);
    let aad = [b"cairn/chunk/v1".as_slice(), &vault_id, id.as_bytes()].concat();
    let mut mac_input = aad.clone();
    mac_input.resize(aad.len().div_ceil(16) * 16, 0);
    mac_input.extend_from_slice(ct);
    mac_input.resize(mac_input.len().div_ceil(16) * 16, 0);
    mac_input.extend_from_slice(&(aad.len() as u64).to_le_bytes());
    mac_input.extend_from_slice(&(ct.len() as u64).to_le_bytes());
    let expected = poly1305::Poly1305::new(&otk.into()).compute_unpadded(&mac_input);
    assert_eq!(expected.as_slice(), tag);
    let mut body = ct.to_vec();
    cipher.apply_keystream(&mut body);
    assert_eq!(body[0], 1, "codec byte 1 = zstd");
    assert_eq!(zstd::decode_all(&body[1..]).unwrap(), plain);
}

#[test]
fn a_killed_backup_leaves_a_consistent_vault_and_the_next_run_resumes() {
    let (_tmp, src, vault, target) = scratch();
    fs::create_dir_all(&src).unwrap();
    for i in 0..12 {
        fs::write(
            src.join(format!("f{i}")),
            pseudo_random(16 * 1024 * 1024, 100 + i),
        )
        .unwrap();
    }
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let s = src.to_str().unwrap();

    // Kill backups at several points, each once the vault has grown by some
    // MiB since the run began (so the kill lands mid-backup whatever the
    // machine's load); each must leave the vault checkable.
    let vault_bytes = || -> u64 {
        fn walk(p: &Path) -> u64 {
            fs::read_dir(p).map_or(0, |d| {
                d.flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
        }
        walk(&vault)
    };
    for grow_mib in [1u64, 10, 30] {
        let start = vault_bytes();
        let mut child = cairn()
            .args(["backup", "--vault", v, s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while vault_bytes() < start + (grow_mib << 20) && std::time::Instant::now() < deadline {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the backup finished before it could be killed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "killed mid-backup, not finished: {status}"
        );
        run_expect(&["check", "--vault", v, "--read-data"], 0);
    }

    let done = run_json(&["backup", "--vault", v, s]);
    let total = 12 * 16 * 1024 * 1024u64;
    assert_eq!(done["bytes"], total);
    let new = done["new_bytes"].as_u64().unwrap();
    assert!(
        new < total,
        "nothing stored by the killed runs was re-used ({new} of {total} new)"
    );
    run_expect(&["check", "--vault", v, "--read-data"], 0);
    restore_latest(v, &target);
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn a_file_changing_while_read_is_reported() {
    let (_tmp, src, vault, _) = scratch();
    fs::create_dir_all(&src).unwrap();
    let path = src.join("growing.log");
    fs::write(&path, pseudo_random(64 * 1024 * 1024, 5)).unwrap();
    init_vault(&vault);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let report = run_json(&[
        "backup",
        "--vault",
        vault.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let changed = report["changed_during_read"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report}");
    assert!(changed[0].as_str().unwrap().ends_with("growing.log"));
    run_expect(
        &["check", "--vault", vault.to_str().unwrap(), "--read-data"],
        0,
    );
}

#[test]
fn files_over_4_gib_are_streamed() {
    let (_tmp, src, vault, _) = scratch();
    fs::create_dir_all(&src).unwrap();
    let size = (4u64 << 30) + 12345;
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"tail marker", size - 11).unwrap();
    drop(f);
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let out = cairn()
        .args(["--json", "backup", "--vault", v, src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["bytes"], size);
    assert!(
        report["new_bytes"].as_u64().unwrap() < 64 << 20,
        "zero chunks dedup: {report}"
    );
    let listed = run_json(&[
        "ls",
        "--vault",
        v,
        "latest",
        src.join("sparse").to_str().unwrap(),
    ]);
    assert_eq!(listed[0]["size"], size);
    run_expect(&["check", "--vault", v, "--read-data"], 0);
}

#[test]
fn the_vault_is_never_backed_up_into_itself_and_is_locked_while_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, target) = (tmp.path().join("src"), tmp.path().join("out"));
    let vault = src.join("vault");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), "data").unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    // Leaving the vault out loses nothing the user asked for: a note, not a
    // skipped entry (the backup is complete, exit 0).
    let report = run_json(&["backup", "--vault", v, src.to_str().unwrap()]);
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("vault is not backed up into itself"),
        "{report}"
    );
    assert_eq!(report["skipped"], 0, "{report}");
    restore_latest(v, &target);
    assert!(restored(&target, &src).join("data").exists());
    assert!(!restored(&target, &src).join("vault").exists());

    // While another process has the vault open, commands fail clearly.
    let held = cairn_client::Vault::open(&vault, PASSWORD.as_bytes()).unwrap();
    let out = run_expect(&["snapshots", "--vault", v], 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another cairn process"));
    drop(held);
    run_expect(&["snapshots", "--vault", v], 0);
}

#[test]
fn forget_and_prune_free_only_what_no_snapshot_uses() {
    let (_tmp, src, vault, target) = scratch();
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("kept"), pseudo_random(300_000, 11)).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let s = src.to_str().unwrap();
    let first = run_json(&["backup", "--vault", v, s]);
    fs::write(src.join("temporary"), pseudo_random(500_000, 12)).unwrap();
    let second = run_json(&["backup", "--vault", v, s]);
    fs::remove_file(src.join("temporary")).unwrap();
    let third = run_json(&["backup", "--vault", v, s]);

    run_expect(&["forget", "--vault", v], 1);
    let dry = run_json(&["forget", "--vault", v, "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry["forgotten"].as_array().unwrap().len(), 2);
    assert_eq!(
        run_json(&["snapshots", "--vault", v])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Forget the snapshot that alone holds "temporary", then prune.
    run_json(&["forget", "--vault", v, second["id"].as_str().unwrap()]);
    let dry = run_json(&["prune", "--vault", v, "--dry-run"]);
    assert!(
        dry["report"]["deleted_bytes"].as_u64().unwrap() >= 500_000,
        "{dry}"
    );
    let pruned = run_json(&["prune", "--vault", v]);
    assert_eq!(
        pruned["report"]["deleted_chunks"],
        dry["report"]["deleted_chunks"]
    );
    assert_eq!(
        run_json(&["prune", "--vault", v])["report"]["deleted_chunks"],
        0
    );
    run_expect(&["check", "--vault", v, "--read-data"], 0);

    // Both remaining snapshots still restore.
    for snap in [&first, &third] {
        let out = target.join(snap["id"].as_str().unwrap());
        let id = snap["id"].as_str().unwrap();
        run_expect(
            &[
                "restore",
                "--vault",
                v,
                id,
                "--target",
                out.to_str().unwrap(),
            ],
            0,
        );
        assert_eq!(
            fs::read(restored(&out, &src).join("kept")).unwrap(),
            fs::read(src.join("kept")).unwrap()
        );
    }

    // A policy keeps the newest per group.
    let kept = run_json(&["forget", "--vault", v, "--keep-last", "1"]);
    assert_eq!(kept["kept"], serde_json::json!([third["id"]]));
}

#[test]
fn a_bare_vault_word_is_a_local_vault_only_if_one_is_there() {
    let tmp = tempfile::tempdir().unwrap();
    init_vault(&tmp.path().join("v"));
    fs::create_dir(tmp.path().join("plain")).unwrap();
    let run = |vault: &str| {
        cairn()
            .args(["--json", "snapshots", "--vault", vault])
            .current_dir(tmp.path())
            .env("XDG_CONFIG_HOME", tmp.path().join("config"))
            .env_remove("CAIRN_CONFIG")
            .output()
            .unwrap()
    };
    // `v` holds a local vault: it is that vault, no account involved.
    let out = run("v");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `plain` is a directory but no vault: the account vault "plain" is
    // meant, and without a login there is none: "no such vault" (exit 1,
    // not the wrong-password 3) with a hint.
    let out = run("plain");
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["code"], "not_found", "{err}");
    assert!(err["error"]
        .as_str()
        .unwrap()
        .contains("no vault \"plain\""));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cairn login"));
    // `./plain` looks like a path: the local directory, which is no vault.
    let out = run("./plain");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cairn vault"));
}

/// A vault's config (KDF salt, wrapped keys) and snapshot records are
/// private, and the vault directory lets nobody else in to the chunks; a
/// restore keeps new directories private until it gives them their modes.
#[test]
fn vault_files_are_private_and_restored_directories_get_their_modes() {
    let (_tmp, src, vault, target) = scratch();
    fs::create_dir_all(src.join("open/deep")).unwrap();
    fs::write(src.join("open/deep/f"), b"x").unwrap();
    fs::set_permissions(src.join("open"), fs::Permissions::from_mode(0o755)).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_json(&["backup", "--vault", v, src.to_str().unwrap()]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&vault), 0o700);
    assert_eq!(mode(&vault.join("vault.json")), 0o600);
    assert_eq!(mode(&vault.join("snapshots")), 0o700);
    for rec in fs::read_dir(vault.join("snapshots")).unwrap() {
        assert_eq!(mode(&rec.unwrap().path()), 0o600);
    }
    restore_latest(v, &target);
    assert_eq!(mode(&restored(&target, &src).join("open")), 0o755);
}

#[test]
fn benchmark_measures_the_pipeline_and_writes_nothing() {
    let (_t, src, vault, _target) = scratch();
    make_source(&src);
    let before = describe(&src);
    let j = run_json(&["benchmark", "--cores", "2", src.to_str().unwrap()]);
    // Regular files only: docs/readme.txt, docs/big.bin, script.sh, zero,
    // hardlink, the latin-1 name (links and the fifo are not read).
    assert_eq!(j["files"], 6, "{j}");
    assert_eq!(j["bytes"], 2 * 12_000 + 6 * 1024 * 1024 + 18 + 12, "{j}");
    assert_eq!(j["cores"], 2);
    let per_core = j["per_core_mib_s"].as_f64().unwrap();
    let ceiling = j["ceiling_mib_s"].as_f64().unwrap();
    assert!(
        per_core > 0.0 && (ceiling - 2.0 * per_core).abs() < 1e-6 * ceiling,
        "{j}"
    );
    // The hard link's content is sealed once.
    assert!(j["unique_chunks"].as_u64() < j["chunks"].as_u64(), "{j}");
    assert_eq!(describe(&src), before);
    assert!(!vault.exists());

    let human = run_expect(&["benchmark", src.join("docs").to_str().unwrap()], 0);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("compressing and sealing") && text.contains("ceiling on"),
        "{text}"
    );
    let bad = run_expect(
        &["benchmark", "--zstd-level", "0", src.to_str().unwrap()],
        1,
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("zstd level 0"));
    let gone = run_expect(&["benchmark", src.join("nope").to_str().unwrap()], 1);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("nope"));
    run_expect(&["benchmark", "--cores", "0", src.to_str().unwrap()], 2);
}
