//! Shared helpers for the client's integration tests: run the real `cairn`
//! binary, and describe directory trees (contents and metadata) so a restore
//! can be compared with its source.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password every test vault uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// A `cairn` command with the test password and cheap KDF-independent env.
pub fn cairn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
    c.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_PASSWORD_FILE");
    c
}

/// A `cairn-debug` command (raw keys and chunks) with the test password.
pub fn cairn_debug() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cairn-debug"));
    c.env("CAIRN_PASSWORD", PASSWORD)
        .env_remove("CAIRN_PASSWORD_FILE");
    c
}

/// Runs `cairn-debug ARGS` expecting success; returns its stdout.
pub fn debug_expect(args: &[&str]) -> Vec<u8> {
    let out = cairn_debug().args(args).output().expect("run cairn-debug");
    assert!(
        out.status.success(),
        "cairn-debug {args:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `cairn-debug keys --vault VAULT` and parses the keys it prints.
pub fn debug_keys(vault: &str) -> serde_json::Value {
    serde_json::from_slice(&debug_expect(&["keys", "--vault", vault])).expect("keys as JSON")
}

/// Runs `cairn ARGS`, returning the output; panics with its stderr if the
/// exit code is not `code`.
pub fn run_expect(args: &[&str], code: i32) -> Output {
    let out = cairn().args(args).output().expect("run cairn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cairn --json ARGS` expecting success and parses its JSON output.
pub fn run_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run_expect(&all, 0);
    serde_json::from_slice(&out.stdout).expect("cairn printed one JSON document")
}

/// Restores the latest snapshot of `vault` into `target`, expecting success.
pub fn restore_latest(vault: &str, target: &Path) {
    run_expect(
        &[
            "restore",
            "--vault",
            vault,
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        0,
    );
}

/// Creates a vault with cheap KDF parameters (tests only).
pub fn init_vault(dir: &Path) {
    run_expect(
        &[
            "vault",
            "init",
            "--local",
            dir.to_str().unwrap(),
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
        ],
        0,
    );
}

/// Flips one bit of the first occurrence of `needle` in any file under `dir`.
pub fn flip_in_store(dir: &Path, needle: &[u8]) -> bool {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[pos] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
            return true;
        }
    }
    false
}

/// Everything a restore must reproduce about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub kind: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<blake3::Hash>,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index of the first path with the same inode (hard links).
    pub link_group: Option<Vec<u8>>,
}

/// Describes every path below `root` (relative path bytes → description).
pub fn describe(root: &Path) -> BTreeMap<Vec<u8>, Described> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<Vec<u8>, Described>,
    inodes: &mut BTreeMap<(u64, u64), Vec<u8>>,
) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let t = meta.file_type();
        let kind = if t.is_file() {
            "file"
        } else if t.is_dir() {
            "dir"
        } else if t.is_symlink() {
            "symlink"
        } else if t.is_fifo() {
            "fifo"
        } else {
            "other"
        };
        let link_group = (t.is_file() && meta.nlink() > 1).then(|| {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        let mut xattrs: Vec<_> = if t.is_symlink() {
            vec![]
        } else {
            xattr::list(&path)
                .map(|l| {
                    l.map(|n| {
                        (
                            n.as_bytes().to_vec(),
                            xattr::get(&path, &n).unwrap().unwrap_or_default(),
                        )
                    })
                    .collect()
                })
                .unwrap_or_default()
        };
        xattrs.sort();
        out.insert(
            rel,
            Described {
                kind: kind.into(),
                mode: if t.is_symlink() {
                    0
                } else {
                    meta.mode() & 0o7777
                },
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                size: if t.is_file() { meta.len() } else { 0 },
                content: t
                    .is_file()
                    .then(|| blake3::hash(&std::fs::read(&path).unwrap())),
                target: t.is_symlink().then(|| {
                    std::fs::read_link(&path)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                }),
                xattrs,
                link_group,
            },
        );
        if t.is_dir() {
            walk(root, &path, out, inodes);
        }
    }
}

/// Asserts two trees are identical, naming the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let (a, b) = (describe(expected), describe(actual));
    for (path, da) in &a {
        let p = String::from_utf8_lossy(path);
        let db = b
            .get(path)
            .unwrap_or_else(|| panic!("{p} is missing from the restore"));
        assert_eq!(da, db, "{p} differs");
    }
    for path in b.keys() {
        assert!(
            a.contains_key(path),
            "{} is extra in the restore",
            String::from_utf8_lossy(path)
        );
    }
}

/// Where a backed-up absolute path lands under a restore target.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}
