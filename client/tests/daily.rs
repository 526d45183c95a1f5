//! Daily use through the real `cairn` binary: the traps a careful user
//! must never fall into (restore over existing data, snapshot selection,
//! script contracts, relative excludes, paths and passwords, healing).
//! Skipped files (exit 5) are covered by `sources.rs`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cairn_testservers::pseudo_random;
use common::{cairn, flip_in_store, init_vault, run_expect, run_json};

fn scratch() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    init_vault(&vault);
    let v = vault.to_str().unwrap().to_string();
    (tmp, vault, v)
}

/// Where a restore under `target` puts the source path `p`.
fn restored(target: &Path, p: &Path) -> PathBuf {
    target.join(p.strip_prefix("/").unwrap())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the command's stderr says `text`.
fn says(out: &std::process::Output, text: &str) {
    assert!(stderr(out).contains(text), "{}", stderr(out));
}

/// A fresh vault (its `--vault` argument) and [`make_source`]'s source in
/// a temporary directory.
fn with_source() -> (tempfile::TempDir, String, PathBuf) {
    let (tmp, _vault, v) = scratch();
    let src = make_source(tmp.path());
    (tmp, v, src)
}

/// Source: `src/{a.txt, b.txt, sub/c.txt, sub/d.log}`; returns the source.
fn make_source(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"a from the snapshot").unwrap();
    fs::write(src.join("b.txt"), b"b").unwrap();
    fs::write(src.join("sub/c.txt"), b"c").unwrap();
    fs::write(src.join("sub/d.log"), b"d").unwrap();
    src
}

fn restore_json(v: &str, target: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "restore",
        "--vault",
        v,
        "latest",
        "--target",
        target.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_json(&args)
}

#[test]
fn restore_never_silently_replaces_newer_local_data() {
    let (tmp, v, src) = with_source();
    run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    let target = tmp.path().join("target");
    restore_json(&v, &target, &[]);
    let a = restored(&target, &src.join("a.txt"));
    assert_eq!(fs::read(&a).unwrap(), b"a from the snapshot");

    // A local edit after the restore is newer than the snapshot's copy.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&a, b"edited locally").unwrap();
    let extra = restored(&target, &src.join("sub/extra"));
    fs::write(&extra, b"not in the snapshot").unwrap();
    // Beside the source, on the way to it: never deleted.
    let beside = restored(&target, &tmp.path().join("beside"));
    fs::write(&beside, b"never backed up").unwrap();
    let out = run_expect(
        &[
            "restore",
            "--vault",
            &v,
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(fs::read(&a).unwrap(), b"edited locally");
    assert!(stderr(&out).contains("kept:"), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--overwrite always"));
    let report = restore_json(&v, &target, &[]);
    assert_eq!(report["kept"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["unchanged"], 3, "{report}");
    assert!(extra.exists(), "no --delete, nothing deleted");

    // A dry run says what would happen and changes nothing.
    let dry = restore_json(
        &v,
        &target,
        &["--overwrite", "always", "--delete", "--dry-run"],
    );
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["replaced"], 4, "{dry}");
    assert_eq!(dry["deleted"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(fs::read(&a).unwrap(), b"edited locally");
    assert!(extra.exists());

    // `never` keeps even an older local file; `always` with --delete
    // brings the snapshot back exactly.
    let old = restored(&target, &src.join("b.txt"));
    fs::write(&old, b"older").unwrap();
    let t = fs::File::options().write(true).open(&old).unwrap();
    t.set_modified(std::time::UNIX_EPOCH).unwrap();
    drop(t);
    let never = restore_json(&v, &target, &["--overwrite", "never"]);
    assert_eq!(never["kept"].as_array().unwrap().len(), 2, "{never}");
    assert_eq!(fs::read(&old).unwrap(), b"older");
    let newer = restore_json(&v, &target, &[]);
    assert_eq!(
        fs::read(&old).unwrap(),
        b"b",
        "an older local copy is refreshed"
    );
    assert_eq!(newer["replaced"], 1, "{newer}");
    restore_json(&v, &target, &["--overwrite", "always", "--delete"]);
    assert_eq!(fs::read(&a).unwrap(), b"a from the snapshot");
    assert!(!extra.exists());
    assert!(beside.exists(), "outside the sources nothing is deleted");
}

#[test]
fn include_and_exclude_patterns_match_at_any_depth_unless_absolute() {
    let (tmp, v, src) = with_source();
    // Backup: a relative `sub/d.log` excludes that file wherever it is.
    run_json(&[
        "backup",
        "--vault",
        &v,
        src.to_str().unwrap(),
        "--exclude",
        "sub/d.log",
    ]);
    let listing = run_json(&["ls", "--vault", &v, "latest"]);
    let paths: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("sub/c.txt")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.ends_with("d.log")), "{paths:?}");
    // ls times are RFC 3339 like every JSON time.
    let mtime = listing[0]["mtime"].as_str().unwrap();
    assert!(mtime.ends_with('Z') && mtime.contains('T'), "{mtime}");

    // Restore: glob includes, relative at any depth, minus excludes.
    let t1 = tmp.path().join("t1");
    let r = restore_json(&v, &t1, &["--include", "*.txt", "--exclude", "sub"]);
    assert_eq!(r["files"], 2, "{r}");
    assert!(restored(&t1, &src.join("a.txt")).is_file());
    assert!(!restored(&t1, &src.join("sub")).exists());
    let t2 = tmp.path().join("t2");
    restore_json(&v, &t2, &["--include", "sub/c.txt"]);
    assert!(restored(&t2, &src.join("sub/c.txt")).is_file());
    assert!(!restored(&t2, &src.join("a.txt")).exists());
    // An absolute include is anchored: the source's own path works, a
    // relative-looking one rooted elsewhere matches nothing.
    let t3 = tmp.path().join("t3");
    restore_json(&v, &t3, &["--include", src.join("sub").to_str().unwrap()]);
    assert!(restored(&t3, &src.join("sub/c.txt")).is_file());
    let out = run_expect(
        &[
            "restore",
            "--vault",
            &v,
            "latest",
            "--target",
            tmp.path().join("t4").to_str().unwrap(),
            "--include",
            "/sub",
        ],
        1,
    );
    says(&out, "matches --include");
}

#[test]
fn a_closed_pipe_ends_quietly_with_0() {
    let (tmp, _vault, v) = scratch();
    let src = tmp.path().join("many");
    fs::create_dir(&src).unwrap();
    for i in 0..3000 {
        fs::write(src.join(format!("file-with-a-long-name-{i:05}")), b"x").unwrap();
    }
    // And a file of several MiB, for dump.
    let mut big = vec![0u8; 4 << 20];
    big.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 7) as u8);
    fs::write(src.join("big"), &big).unwrap();
    run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    let s = src.to_str().unwrap().to_string();
    for args in [
        vec!["ls", "--vault", &v, "latest"],
        vec!["--json", "ls", "--vault", &v, "latest"],
        vec!["dump", "--vault", &v, "latest", &s],
    ] {
        let cmd = args.join(" ");
        let mut child = cairn()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read one byte, then close the pipe (as `head -c1` would).
        let mut stdout = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        std::io::Read::read_exact(&mut stdout, &mut one).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{cmd}: {}", stderr(&out));
    }
}

#[test]
fn script_contracts_json_errors_ids_tilde_empty_passwords_and_typos() {
    let (tmp, _vault, v) = scratch();
    // A usage error under --json is one JSON document on stderr.
    let out = run_expect(&["--json", "restore", "--vault", &v], 2);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON on stderr");
    assert_eq!(err["code"], "usage", "{err}");
    assert_eq!(err["exit_code"], 2);
    assert!(out.stdout.is_empty());
    // A failure under --json too, with its code.
    let out = run_expect(&["--json", "ls", "--vault", &v, "latest"], 1);
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON on stderr");
    assert_eq!(err["code"], "not_found", "{err}");

    // One id key: the backup's `id` is the snapshot's `id` everywhere.
    let src = make_source(tmp.path());
    let backup = run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    assert!(backup.get("snapshot_id").is_none(), "{backup}");
    let snaps = run_json(&["snapshots", "--vault", &v]);
    assert_eq!(snaps[0]["id"], backup["id"]);
    let restore = restore_json(&v, &tmp.path().join("r"), &[]);
    assert_eq!(restore["id"], backup["id"]);

    // A quoted `~` is the home directory, not a directory named `~`.
    let home = tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let created = cairn()
        .args(["--json", "vault", "init", "--local", "~/tilde-vault"])
        .args(["--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .env("HOME", &home)
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(home.join("tilde-vault/vault.json").is_file());
    assert!(!work.join("~").exists());
    let listed = cairn()
        .args(["--json", "snapshots", "--vault", "~/tilde-vault"])
        .env("HOME", &home)
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));

    // An empty password creates nothing, from the environment or a file.
    let empty_file = tmp.path().join("empty");
    fs::write(&empty_file, b"\n").unwrap();
    for (var, value) in [
        ("CAIRN_PASSWORD", ""),
        ("CAIRN_PASSWORD_FILE", empty_file.to_str().unwrap()),
    ] {
        let dir = tmp.path().join(format!("empty-{var}"));
        let out = cairn()
            .env_remove("CAIRN_PASSWORD")
            .env(var, value)
            .args(["vault", "init", "--local", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{var}: {}", stderr(&out));
        assert!(stderr(&out).contains("empty password"), "{}", stderr(&out));
        assert!(!dir.join("vault.json").exists());
    }

    // An IO error says its cause once.
    let out = run_expect(
        &[
            "backup",
            "--vault",
            &v,
            tmp.path().join("no-such-dir").to_str().unwrap(),
        ],
        1,
    );
    let text = stderr(&out);
    let cause = "No such file or directory";
    assert_eq!(text.matches(cause).count(), 1, "{text}");

    // A typo of a local path while logged out: no such vault, exit 1.
    let out = cairn()
        .args(["snapshots", "--vault", "vualt"])
        .current_dir(tmp.path())
        .env("CAIRN_CONFIG", tmp.path().join("no-profile.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    says(&out, "no vault \"vualt\"");
}

#[test]
fn latest_is_resolved_within_the_filters_and_defaults_to_this_device() {
    let (tmp, v, src) = with_source();
    let s = src.to_str().unwrap();
    let sub = src.join("sub");
    let mine = run_json(&["backup", "--vault", &v, s]);
    let laptop = run_json(&["backup", "--vault", &v, s, "--device", "laptop"]);
    let laptop_sub = run_json(&[
        "backup",
        "--vault",
        &v,
        sub.to_str().unwrap(),
        "--device",
        "laptop",
        "--item",
        "docs",
    ]);
    // The vault's newest is another device's; this host's `latest` is its own.
    let r = restore_json(&v, &tmp.path().join("r1"), &[]);
    assert_eq!(r["id"], mine["id"], "{r}");
    let r = restore_json(&v, &tmp.path().join("r2"), &["--host", "laptop"]);
    assert_eq!(r["id"], laptop_sub["id"], "{r}");
    let r = restore_json(
        &v,
        &tmp.path().join("r3"),
        &["--device", "laptop", "--path", s],
    );
    assert_eq!(r["id"], laptop["id"], "{r}");
    let r = restore_json(&v, &tmp.path().join("r4"), &["--all-devices"]);
    assert_eq!(r["id"], laptop_sub["id"], "{r}");
    let listed = run_json(&[
        "ls", "--vault", &v, "latest", "--item", "docs", "--device", "laptop",
    ]);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|l| !l["path"].as_str().unwrap().ends_with("a.txt")));
    // A device with no snapshot here gets no other device's data.
    let out = run_expect(&["ls", "--vault", &v, "latest", "--device", "phone"], 1);
    assert!(stderr(&out).contains("laptop"), "{}", stderr(&out));

    // Listings show every device unless filtered.
    assert_eq!(
        run_json(&["snapshots", "--vault", &v])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let only = run_json(&[
        "snapshots",
        "--vault",
        &v,
        "--device",
        "laptop",
        "--item",
        "docs",
    ]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["id"], laptop_sub["id"]);

    // forget's policy applies within the filters only: two more backups of
    // the same paths by each device, and only laptop's older ones go.
    let mine2 = run_json(&["backup", "--vault", &v, s]);
    let laptop2 = run_json(&["backup", "--vault", &v, s, "--device", "laptop"]);
    let forgot = run_json(&[
        "forget",
        "--vault",
        &v,
        "--device",
        "laptop",
        "--keep-last",
        "1",
    ]);
    assert_eq!(
        forgot["forgotten"],
        serde_json::json!([laptop["id"]]),
        "{forgot}"
    );
    let left: Vec<serde_json::Value> = run_json(&["snapshots", "--vault", &v])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert_eq!(
        left,
        [&mine["id"], &laptop_sub["id"], &mine2["id"], &laptop2["id"]].map(|x| x.clone())
    );
}

/// Flips a byte of the stored chunk holding `content` (one chunk: below
/// the chunker's minimum).
fn damage_chunk_of(vault: &Path, content: &[u8]) {
    let v = vault.to_str().unwrap();
    let keys = common::debug_keys(v);
    let id_key: [u8; 32] = hex::decode(keys["chunk_id_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let id = blake3::keyed_hash(&id_key, content).to_hex().to_string();
    let raw = common::debug_expect(&["cat-raw", "--vault", v, &id]);
    assert!(
        flip_in_store(&vault.join("chunks"), &raw[40..72]),
        "the sealed bytes are somewhere in the store"
    );
}

#[test]
fn damage_is_named_in_every_snapshot_and_healed_from_the_source() {
    let (tmp, vault, v) = scratch();
    // The victim sits in a directory no backup changes, so all three
    // snapshots share its tree; a sibling changes each time.
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("stable")).unwrap();
    let victim = pseudo_random(100_000, 7);
    fs::write(src.join("stable/victim"), &victim).unwrap();
    fs::write(src.join("stable/bystander"), pseudo_random(100_000, 8)).unwrap();
    let mut ids = vec![];
    for i in 0..3 {
        fs::write(src.join("changing"), format!("version {i}")).unwrap();
        let b = run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
        ids.push(b["id"].as_str().unwrap().to_string());
    }
    run_expect(&["check", "--vault", &v, "--read-data"], 0);
    damage_chunk_of(&vault, &victim);

    // check --read-data names all three snapshots and only the victim.
    let out = run_expect(&["--json", "check", "--vault", &v, "--read-data"], 4);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut affected: Vec<&str> = report["affected_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    affected.sort();
    let mut all: Vec<&str> = ids.iter().map(String::as_str).collect();
    all.sort();
    assert_eq!(affected, all, "{report}");
    let files = report["damaged_files"].to_string();
    assert_eq!(files.matches("stable/victim").count(), 3, "{files}");
    assert!(!files.contains("bystander"), "{files}");

    // A copy elsewhere heals it (content, not names, is what counts).
    let copy = tmp.path().join("copy");
    fs::create_dir(&copy).unwrap();
    fs::write(copy.join("renamed"), &victim).unwrap();
    let out = run_expect(
        &["repair", "--vault", &v, "--source", copy.to_str().unwrap()],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 healed"));
    run_expect(&["check", "--vault", &v, "--read-data"], 0);
    for id in &ids {
        let target = tmp.path().join(format!("r-{id}"));
        run_expect(
            &[
                "restore",
                "--vault",
                &v,
                id,
                "--target",
                target.to_str().unwrap(),
            ],
            0,
        );
        let back = restored(&target, &src.join("stable/victim"));
        assert_eq!(fs::read(back).unwrap(), victim, "{id} byte-exact");
    }

    // Damage again: a source without the chunk heals nothing and names
    // the snapshots (exit 4); then `backup --force` replaces the damaged
    // chunk instead of trusting dedup.
    damage_chunk_of(&vault, &victim);
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let out = run_expect(
        &["repair", "--vault", &v, "--source", empty.to_str().unwrap()],
        4,
    );
    let err = stderr(&out);
    for id in &ids {
        assert!(
            err.contains(&format!("snapshot {id}: still damaged")),
            "{err}"
        );
    }
    run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    run_expect(&["check", "--vault", &v, "--read-data"], 4);
    run_json(&["backup", "--vault", &v, src.to_str().unwrap(), "--force"]);
    run_expect(&["check", "--vault", &v, "--read-data"], 0);
}

#[test]
fn what_cannot_be_healed_is_forgotten_only_with_the_flag() {
    let (tmp, vault, v) = scratch();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let lost = pseudo_random(50_000, 9);
    fs::write(src.join("lost"), &lost).unwrap();
    run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    damage_chunk_of(&vault, &lost);
    fs::remove_file(src.join("lost")).unwrap();
    let s = src.to_str().unwrap();
    run_expect(&["repair", "--vault", &v, "--source", s], 4);
    assert_eq!(
        run_json(&["snapshots", "--vault", &v])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let report = run_json(&["repair", "--vault", &v, "--source", s, "--forget-unhealed"]);
    assert_eq!(report["forgotten"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        run_json(&["snapshots", "--vault", &v])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn check_without_read_data_verifies_the_trees_it_reads() {
    let (tmp, vault, v) = scratch();
    let src = make_source(tmp.path());
    let first = run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    fs::write(src.join("b.txt"), b"changed").unwrap();
    let second = run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    run_expect(&["check", "--vault", &v], 0);
    let root = first["root"].as_str().unwrap();
    let raw = common::debug_expect(&["cat-raw", "--vault", &v, root]);
    assert!(flip_in_store(&vault.join("chunks"), &raw[40..72]));
    let out = run_expect(&["--json", "check", "--vault", &v], 4);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["affected_snapshots"],
        serde_json::json!([first["id"]]),
        "{report}"
    );
    assert_ne!(first["id"], second["id"]);
}

#[test]
fn everyday_tools_ls_l_dump_find_diff_stats() {
    let (tmp, v, src) = with_source();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    let first = run_json(&["backup", "--vault", &v, s]);
    fs::write(src.join("sub/new.txt"), b"new").unwrap();
    fs::remove_file(src.join("b.txt")).unwrap();
    fs::write(src.join("a.txt"), b"a changed").unwrap();
    let second = run_json(&["backup", "--vault", &v, s]);
    let (id1, id2) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    // ls -l: mode, owner, size, mtime and a link's target.
    let out = run_expect(&["ls", "--vault", &v, id1, "-l", s], 0);
    let text = String::from_utf8_lossy(&out.stdout);
    let link = text.lines().find(|l| l.contains("/link")).unwrap();
    assert!(
        link.starts_with('l') && link.ends_with("-> a.txt"),
        "{link}"
    );
    let b = text.lines().find(|l| l.ends_with("/b.txt")).unwrap();
    assert!(b.starts_with("-rw"), "{b}");

    // dump: a file's bytes, a directory as tar.
    let a = src.join("a.txt");
    let out = run_expect(&["dump", "--vault", &v, id1, a.to_str().unwrap()], 0);
    assert_eq!(out.stdout, b"a from the snapshot");
    let out = run_expect(&["dump", "--vault", &v, "latest", s], 0);
    let unpacked = tmp.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let mut untar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&unpacked)
        .stdin(Stdio::piped())
        .spawn()
        .expect("tar (Debian's tar package)");
    std::io::Write::write_all(untar.stdin.as_mut().unwrap(), &out.stdout).unwrap();
    drop(untar.stdin.take());
    assert!(untar.wait().unwrap().success());
    let back = restored(&unpacked, &src);
    assert_eq!(fs::read(back.join("sub/new.txt")).unwrap(), b"new");
    assert_eq!(fs::read(back.join("a.txt")).unwrap(), b"a changed");

    // find: by pattern across snapshots.
    let found = run_json(&["find", "--vault", &v, "new.txt"]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["id"], second["id"]);
    let found = run_json(&["find", "--vault", &v, "*.txt"]);
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");

    // diff: what changed between the two.
    let d = run_json(&["diff", "--vault", &v, id1, id2]);
    let has = |key: &str, end: &str| {
        d[key]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().ends_with(end))
    };
    assert!(has("added", "/sub/new.txt"), "{d}");
    assert!(has("removed", "/b.txt"), "{d}");
    assert!(has("modified", "/a.txt"), "{d}");
    assert!(!has("modified", "/sub/c.txt"), "{d}");

    // stats: both snapshots share c.txt and d.log.
    let st = run_json(&["stats", "--vault", &v]);
    assert_eq!(st["snapshots"], 2, "{st}");
    assert!(st["dedup_ratio"].as_f64().unwrap() > 1.0, "{st}");
    assert!(st["stored_bytes"].as_u64().unwrap() > 0, "{st}");
    let one = run_json(&["stats", "--vault", &v, id1]);
    assert_eq!(one["snapshots"], 1);
    assert_eq!(one["files"], 4, "{one}");
}

#[test]
fn the_vault_and_password_can_come_from_the_environment_and_a_command() {
    let (tmp, v, src) = with_source();
    let pw_file = tmp.path().join("pw");
    fs::write(&pw_file, common::PASSWORD).unwrap();
    let out = cairn()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_VAULT", &v)
        .env(
            "CAIRN_PASSWORD_COMMAND",
            format!("cat '{}'", pw_file.display()),
        )
        .args(["--json", "backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let failing = cairn()
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_VAULT", &v)
        .env("CAIRN_PASSWORD_COMMAND", "exit 7")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1));
    says(&failing, "CAIRN_PASSWORD_COMMAND failed");
}

#[test]
fn version_completions_and_man_pages() {
    let out = run_expect(&["--version"], 0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("commit ") && text.contains("built 20"),
        "{text}"
    );
    let out = run_expect(&["completions", "bash"], 0);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("restore") && script.contains("--overwrite"),
        "bash completion"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    run_expect(&["man", "--dir", dir.to_str().unwrap()], 0);
    let page = fs::read_to_string(dir.join("cairn-restore.1")).unwrap();
    assert!(page.contains("overwrite"), "{page}");
    assert!(dir.join("cairn.1").is_file());
}

#[test]
fn exclude_file_exclude_caches_and_files_from() {
    let (tmp, v, src) = with_source();
    let cache = src.join("cache");
    fs::create_dir(&cache).unwrap();
    fs::write(
        cache.join("CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    )
    .unwrap();
    fs::write(cache.join("blob"), b"cached").unwrap();
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("o.txt"), b"o").unwrap();
    let excludes = tmp.path().join("excludes");
    fs::write(&excludes, "# logs\n*.log\n\nb.txt\n").unwrap();
    let list = tmp.path().join("list");
    fs::write(
        &list,
        format!("{}\n# comment\n{}\n", src.display(), other.display()),
    )
    .unwrap();
    let report = run_json(&[
        "backup",
        "--vault",
        &v,
        "--files-from",
        list.to_str().unwrap(),
        "--exclude-file",
        excludes.to_str().unwrap(),
        "--exclude-caches",
    ]);
    assert!(
        report["notes"].to_string().contains("CACHEDIR.TAG"),
        "{report}"
    );
    let paths: Vec<String> = run_json(&["ls", "--vault", &v, "latest"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    let has = |end: &str| paths.iter().any(|p| p.ends_with(end));
    assert!(
        has("/src/a.txt") && has("/other/o.txt") && has("/sub/c.txt"),
        "{paths:?}"
    );
    assert!(
        !has("b.txt") && !has("d.log") && !has("/cache") && !has("blob"),
        "{paths:?}"
    );
}

#[test]
fn one_file_system_leaves_other_mounts_out() {
    use std::os::unix::fs::MetadataExt;
    // /dev usually has file systems mounted below it (pts, shm, mqueue).
    let dev = fs::metadata("/dev").unwrap().dev();
    let Some(mount) = fs::read_dir("/dev")
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_type().is_ok_and(|t| t.is_dir()) && e.metadata().is_ok_and(|m| m.dev() != dev)
        })
    else {
        eprintln!("SKIPPED: no file system is mounted below /dev here");
        return;
    };
    let (_tmp, _vault, v) = scratch();
    let out = cairn()
        .args([
            "--json",
            "backup",
            "--vault",
            &v,
            "/dev",
            "--one-file-system",
        ])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 5)), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = report["notes"].to_string();
    let name = mount.path().display().to_string();
    assert!(
        notes.contains(&format!("{name}: another file system")),
        "{name}: {notes}"
    );
}

#[test]
fn quiet_drops_notes_but_keeps_results() {
    let (tmp, v, src) = with_source();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&src, &link).unwrap();
    let l = link.to_str().unwrap();
    let loud = run_expect(&["backup", "--vault", &v, l], 0);
    assert!(stderr(&loud).contains("note:"), "{}", stderr(&loud));
    let quiet = run_expect(&["-q", "backup", "--vault", &v, l], 0);
    assert!(!stderr(&quiet).contains("note:"), "{}", stderr(&quiet));
    assert!(String::from_utf8_lossy(&quiet.stdout).contains("saved"));
}

#[test]
fn tags_select_snapshots_and_latest_within_them() {
    let (tmp, v, src) = with_source();
    let s = src.to_str().unwrap();
    let weekly = run_json(&["backup", "--vault", &v, s, "--tag", "weekly,keep"]);
    let plain = run_json(&["backup", "--vault", &v, s]);
    let listed = run_json(&["snapshots", "--vault", &v, "--tag", "weekly"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["tags"], serde_json::json!(["weekly", "keep"]));
    let r = restore_json(&v, &tmp.path().join("r"), &["--tag", "keep,weekly"]);
    assert_eq!(r["id"], weekly["id"]);
    let r = restore_json(&v, &tmp.path().join("r2"), &[]);
    assert_eq!(r["id"], plain["id"]);
    let none = run_json(&["snapshots", "--vault", &v, "--tag", "weekly,nope"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
}

#[test]
fn sparse_files_are_restored_sparse() {
    use std::os::unix::fs::MetadataExt;
    let (tmp, _vault, v) = scratch();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // 1 MiB of data, 32 MiB of nothing, 1 MiB of data: a hole in between.
    let size = 34u64 << 20;
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(size).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pseudo_random(1 << 20, 1), 0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pseudo_random(1 << 20, 2), size - (1 << 20))
        .unwrap();
    drop(f);
    run_json(&["backup", "--vault", &v, src.to_str().unwrap()]);
    let target = tmp.path().join("t");
    restore_json(&v, &target, &[]);
    let back = restored(&target, &src.join("sparse"));
    assert_eq!(
        fs::read(&back).unwrap(),
        fs::read(src.join("sparse")).unwrap()
    );
    let allocated = fs::metadata(&back).unwrap().blocks() * 512;
    assert!(
        allocated < size / 2,
        "{allocated} bytes allocated for {size}"
    );
}

/// Starts `cairn --json backup --stdin --stdin-filename NAME` into vault
/// `v`; returns it and its standard input, to feed.
fn stdin_backup(v: &str, name: &str) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = cairn()
        .args(["--json", "backup", "--vault", v, "--stdin"])
        .args(["--stdin-filename", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = child.stdin.take().unwrap();
    (child, input)
}

#[test]
fn standard_input_is_backed_up_as_one_file() {
    let (tmp, _vault, v) = scratch();
    let data = pseudo_random(3 << 20, 11);
    let backup = |name: &str| {
        let (child, mut input) = stdin_backup(&v, name);
        let payload = data.clone();
        let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut input, &payload));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = backup("db.sql");
    assert_eq!(first["bytes"], data.len() as u64, "{first}");
    let again = backup("db.sql");
    assert!(
        again["new_bytes"].as_u64().unwrap() < 4096,
        "deduplicated: {again}"
    );
    let out = run_expect(&["dump", "--vault", &v, "latest", "/db.sql"], 0);
    assert!(out.stdout == data, "dump returns what was piped in");
    let target = tmp.path().join("r");
    restore_json(&v, &target, &[]);
    assert!(fs::read(target.join("db.sql")).unwrap() == data);
    let out = run_expect(
        &[
            "backup",
            "--vault",
            &v,
            "--stdin",
            "--stdin-filename",
            "a/b",
        ],
        1,
    );
    says(&out, "--stdin-filename");
}

#[test]
fn verbose_lists_the_files_and_the_summary_counts_changes_against_the_parent() {
    let (tmp, v, src) = with_source();
    let s = src.to_str().unwrap();
    let first = run_expect(&["backup", "--vault", &v, s, "-v"], 0);
    let listed = stderr(&first);
    assert!(
        listed.contains(&format!("new        {s}/a.txt")),
        "{listed}"
    );
    assert_eq!(listed.matches("new        ").count(), 4, "{listed}");
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(
        text.contains("files: 4 new, 0 changed, 0 unmodified (no parent)"),
        "{text}"
    );

    fs::write(src.join("b.txt"), b"b, edited").unwrap();
    fs::write(src.join("e.txt"), b"e").unwrap();
    // Hard-linked content counts once.
    fs::hard_link(src.join("a.txt"), src.join("a-link")).unwrap();
    let parent = run_json(&["snapshots", "--vault", &v]);
    let parent_id = parent[0]["id"].as_str().unwrap().to_string();
    let report = run_json(&["backup", "--vault", &v, s]);
    assert_eq!(report["parent"], parent_id.as_str());
    assert_eq!(
        [
            &report["files_new"],
            &report["files_changed"],
            &report["files_unmodified"]
        ],
        // New: e.txt, a-link; changed: b.txt, and a.txt (the link changed
        // its ctime); unmodified: c.txt, d.log.
        [2, 2, 2],
        "{report}"
    );
    let content = [&b"a from the snapshot"[..], b"b, edited", b"c", b"d", b"e"];
    assert_eq!(
        report["bytes"],
        content.iter().map(|c| c.len()).sum::<usize>()
    );

    // -vv names the unmodified files too; -v leaves them out; JSON has no listing.
    let vv = run_expect(&["backup", "--vault", &v, s, "-vv"], 0);
    assert_eq!(
        stderr(&vv).matches("unmodified ").count(),
        6,
        "{}",
        stderr(&vv)
    );
    let v1 = run_expect(&["backup", "--vault", &v, s, "-v"], 0);
    assert!(!stderr(&v1).contains("unmodified "), "{}", stderr(&v1));
    let text = String::from_utf8_lossy(&v1.stdout);
    assert!(
        text.contains("0 new, 0 changed, 6 unmodified (parent "),
        "{text}"
    );
    run_json(&["backup", "--vault", &v, s, "-v"]);
    let both = run_expect(&["backup", "--vault", &v, s, "-v", "-q"], 2);
    says(&both, "cannot be used with");
    drop(tmp);
}

#[test]
fn a_terminal_shows_a_bar_against_the_parents_totals_and_a_pipe_none() {
    let (tmp, _vault, v) = scratch();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("big");
    fs::write(&big, pseudo_random(32 << 20, 7)).unwrap();
    let s = src.to_str().unwrap();
    let piped = run_expect(&["backup", "--vault", &v, s], 0);
    assert!(!stderr(&piped).contains('\x1b'), "{}", stderr(&piped));
    fs::write(&big, pseudo_random(32 << 20, 8)).unwrap();
    // `script` gives the backup a terminal (util-linux, in every Debian).
    let cairn_bin = env!("CARGO_BIN_EXE_cairn");
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{cairn_bin} backup --vault {v} {s}"),
            "/dev/null",
        ])
        .env("CAIRN_PASSWORD", common::PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(screen.contains("MiB / 32.00 MiB"), "{screen}");
    assert!(screen.contains("% ") && screen.contains("] "), "{screen}");
    // The parent's file count is the total ("0 / 1" while the file is read,
    // which on a fast machine can fall between two frames).
    assert!(screen.contains(" / 1 files"), "{screen}");
}

#[test]
fn json_streams_status_lines_on_stderr_and_ends_with_the_summary() {
    use std::io::Write;
    let (_tmp, _vault, v) = scratch();
    let (child, mut input) = stdin_backup(&v, "slow.bin");
    // More than the largest chunk, so some is counted before the pause.
    input.write_all(&pseudo_random(12 << 20, 3)).unwrap();
    // A slow producer: the backup outlives its first second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    input.write_all(&pseudo_random(1 << 20, 4)).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: Vec<serde_json::Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document a line"))
        .collect();
    assert!(!status.is_empty(), "a status line after a second");
    assert!(status.iter().all(|s| s["message_type"] == "status"));
    assert!(status[0]["bytes_done"].as_u64().unwrap() > 0, "{status:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["bytes"], 13 << 20);
}

#[test]
fn tag_adds_removes_and_sets_tags_and_selection_follows() {
    let (tmp, v, src) = with_source();
    let s = src.to_str().unwrap();
    let first = run_json(&["backup", "--vault", &v, s, "--tag", "daily"]);
    let second = run_json(&["backup", "--vault", &v, s]);
    // Every snapshot the selection keeps: the untagged one is not touched.
    let out = run_json(&[
        "tag",
        "--vault",
        &v,
        "--tag",
        "daily",
        "--add",
        "keep,audit",
    ]);
    let retagged = out["retagged"].as_array().unwrap();
    assert_eq!(retagged.len(), 1, "{out}");
    assert_eq!(retagged[0]["old"], first["id"]);
    assert_eq!(
        retagged[0]["tags"],
        serde_json::json!(["daily", "keep", "audit"])
    );
    let kept = run_json(&["snapshots", "--vault", &v, "--tag", "keep"]);
    assert_eq!(kept.as_array().unwrap().len(), 1);
    assert_eq!(kept[0]["id"], retagged[0]["id"]);
    // The data is the same snapshot's: it restores.
    let r = restore_json(&v, &tmp.path().join("r"), &["--tag", "keep"]);
    assert_eq!(r["id"], retagged[0]["id"]);
    let a = restored(&tmp.path().join("r"), &src.join("a.txt"));
    assert_eq!(fs::read(a).unwrap(), b"a from the snapshot");

    // By id prefix: remove, then set; asking again changes nothing.
    let id = retagged[0]["id"].as_str().unwrap().to_string();
    let out = run_json(&["tag", "--vault", &v, &id[..10], "--remove", "daily"]);
    let id = out["retagged"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        out["retagged"][0]["tags"],
        serde_json::json!(["keep", "audit"])
    );
    let out = run_json(&["tag", "--vault", &v, &id, "--set", "monthly"]);
    let id = out["retagged"][0]["id"].as_str().unwrap().to_string();
    let again = run_json(&["tag", "--vault", &v, &id, "--add", "monthly"]);
    assert_eq!(again["unchanged"], serde_json::json!([id]));
    let all = run_json(&["snapshots", "--vault", &v]);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&second["id"].as_str().unwrap()) && ids.contains(&id.as_str()));
    let text = run_expect(&["tag", "--vault", &v, &id, "--set", ""], 0);
    assert!(String::from_utf8_lossy(&text.stdout).contains("no tags"));

    // Nothing to do is an error.
    let out = run_expect(&["tag", "--vault", &v, "latest"], 1);
    says(&out, "give --add, --remove or --set");
}
