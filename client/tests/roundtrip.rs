//! Property and adversarial tests through the library API: random trees
//! round-trip exactly, and hostile trees cannot make a restore write outside
//! its target.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cairn_client::backup::{self, BackupOptions, Progress};
use cairn_client::blob::Compressor;
use cairn_client::chunker::ChunkerParams;
use cairn_client::crypto::KdfParams;
use cairn_client::restore::{self, RestoreOptions};
use cairn_client::snapshot::{SnapshotMeta, SnapshotRecord, SnapshotStats};
use cairn_client::tree::{Entry, Kind, Time, Tree};
use cairn_client::vault::{Blobs, CreateOptions, Sealed};
use cairn_client::{Error, Vault};
use cairn_proto::SnapshotId;
use common::{assert_same_tree, restored, PASSWORD};
use proptest::prelude::*;

/// Small chunks so random files span several of them.
fn test_options() -> CreateOptions {
    CreateOptions {
        chunker: ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        zstd_level: 3,
        kdf: KdfParams {
            memory_kib: 256,
            iterations: 1,
            ..KdfParams::generate()
        },
    }
}

#[derive(Debug, Clone)]
enum Node {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: i64,
    },
    Dir(Vec<(Vec<u8>, Node)>),
    Symlink(Vec<u8>),
    HardLinkToFirstFile,
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![b'a'..=b'z', Just(b' '), Just(0xe9u8), Just(0x01u8)],
        1..12,
    )
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        6 => (proptest::collection::vec(any::<u8>(), 0..40_000), prop_oneof![Just(0o644u32), Just(0o600), Just(0o755), Just(0o4755)], 0i64..2_000_000_000)
            .prop_map(|(data, mode, mtime)| Node::File { data, mode, mtime }),
        1 => proptest::collection::vec(1u8..=255, 1..30).prop_map(Node::Symlink),
        1 => Just(Node::HardLinkToFirstFile),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        proptest::collection::vec((name(), inner), 0..6).prop_map(Node::Dir)
    })
}

fn create(dir: &Path, entries: &[(Vec<u8>, Node)], first_file: &mut Option<std::path::PathBuf>) {
    fs::create_dir_all(dir).unwrap();
    for (name, node) in entries {
        let path = dir.join(std::ffi::OsStr::from_bytes(name));
        if fs::symlink_metadata(&path).is_ok() {
            continue; // duplicate random name
        }
        match node {
            Node::File { data, mode, mtime } => {
                fs::write(&path, data).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime as u64);
                fs::File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(t)
                    .unwrap();
                first_file.get_or_insert(path);
            }
            Node::Dir(children) => create(&path, children, first_file),
            Node::Symlink(target) => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path).unwrap()
            }
            Node::HardLinkToFirstFile => {
                if let Some(first) = first_file {
                    fs::hard_link(first, &path).unwrap();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_round_trip_exactly(entries in proptest::collection::vec((name(), node()), 0..8)) {
        let tmp = tempfile::tempdir().unwrap();
        let (src, vdir, target) = (tmp.path().join("src"), tmp.path().join("vault"), tmp.path().join("out"));
        create(&src, &entries, &mut None);
        Vault::create(&vdir, PASSWORD.as_bytes(), &test_options()).unwrap();
        let vault = Vault::open(&vdir, PASSWORD.as_bytes()).unwrap();
        let opts = BackupOptions { paths: vec![src.clone()], device: "test".into(), ..Default::default() };
        let report = backup::run(&vault, &opts, &Progress::default()).unwrap();
        let restore_opts = RestoreOptions { target: target.clone(), ..RestoreOptions::default() };
        let done = restore::run(&vault, &report.snapshot, &restore_opts, &restore::Progress::default()).unwrap();
        prop_assert!(done.damaged.is_empty());
        assert_same_tree(&src, &restored(&target, &src));
    }
}

/// Commits a snapshot whose root is `tree` (sealed and stored like any tree).
fn commit_tree(vault: &Vault, tree: &Tree) -> SnapshotRecord {
    let blob = tree.encode().unwrap();
    let id = vault.codec().id(&blob);
    let sealed = vault
        .codec()
        .seal(&id, &blob, &mut Compressor::new().unwrap());
    let sealed = Sealed {
        id,
        plain_len: blob.len() as u64,
        bytes: sealed,
        tree: true,
    };
    let backend = vault.backend();
    backend.sink().store_all(Blobs::of(vec![sealed])).unwrap();
    backend.flush().unwrap();
    let snap = SnapshotId::random();
    let record = SnapshotRecord {
        format: 1,
        id: snap,
        vault: vault.config().vault_id,
        device: "evil".into(),
        item: None,
        time: "2026-01-01T00:00:00.000000000Z".into(),
        finished: "2026-01-01T00:00:00.000000000Z".into(),
        root: id,
        stats: SnapshotStats::default(),
        meta: SnapshotMeta::default()
            .seal(vault.keys(), vault.config().vault_id, snap)
            .unwrap(),
    };
    vault.commit_snapshot(&record, None).unwrap();
    record
}

fn entry(name: &[u8], kind: Kind) -> Entry {
    Entry {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: Time::default(),
        ctime: Time::default(),
        inode: 0,
        device: 0,
        links: 1,
        size: 0,
        target: b"/etc/passwd".to_vec(),
        rdev: 0,
        xattrs: vec![],
        content: vec![],
        subtree: None,
    }
}

#[test]
fn hostile_tree_names_are_refused_and_nothing_escapes_the_target() {
    for evil in [
        &b".."[..],
        b"../../escaped",
        b"a/../../escaped",
        b"nul\0",
        b".",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (vdir, target) = (tmp.path().join("vault"), tmp.path().join("deep/target"));
        Vault::create(&vdir, PASSWORD.as_bytes(), &test_options()).unwrap();
        let vault = Vault::open(&vdir, PASSWORD.as_bytes()).unwrap();
        let record = commit_tree(
            &vault,
            &Tree {
                entries: vec![entry(evil, Kind::Symlink)],
            },
        );
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        let err = restore::run(&vault, &record, &opts, &restore::Progress::default()).unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{evil:?}: {err}");
        assert!(err.is_damaged_data());
        drop(vault);

        // Through the binary too: refused with exit 4, and nothing was
        // created outside the target.
        let out = common::cairn()
            .args([
                "restore",
                "--vault",
                vdir.to_str().unwrap(),
                "latest",
                "--all-devices",
                "--target",
                target.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut found: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        found.sort();
        assert_eq!(found, ["deep", "vault"], "{evil:?}");
        assert_eq!(fs::read_dir(tmp.path().join("deep")).unwrap().count(), 1);
    }
}
