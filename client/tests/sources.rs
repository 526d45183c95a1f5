//! The source invariant, through the real binary: after `backup` and
//! `restore`, the manifest of every source *as given* (type, path, mode,
//! size, content hash, link target) equals what the operating system showed,
//! or the backup named what it left out and exited non-zero. Never "saved"
//! with less than the OS showed.
//!
//! Trees are generated with symlinked parents at any depth, symlinks as
//! sources, relative sources, `.`, trailing slashes, `..`, overlapping
//! sources, hard links across sources and a source on another file system
//! (`/dev/shm`, a tmpfs, when it exists).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use common::{cairn, init_vault, PASSWORD};
use proptest::prelude::*;

/// One entry of a manifest: what a user sees of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        hash: blake3::Hash,
    },
    Link {
        target: Vec<u8>,
    },
    Other {
        mode: u32,
    },
}

fn seen(path: &Path, meta: &fs::Metadata) -> Seen {
    let t = meta.file_type();
    let mode = meta.mode() & 0o7777;
    if t.is_dir() {
        Seen::Dir { mode }
    } else if t.is_file() {
        Seen::File {
            mode,
            size: meta.len(),
            hash: blake3::hash(&fs::read(path).expect("read file")),
        }
    } else if t.is_symlink() {
        Seen::Link {
            target: fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec(),
        }
    } else {
        Seen::Other { mode }
    }
}

/// The manifest of `root` (followed when `follow`, else taken as it is) and
/// everything below it, symlinks below never followed; keys are relative.
fn manifest(root: &Path, follow: bool) -> BTreeMap<Vec<u8>, Seen> {
    let mut out = BTreeMap::new();
    let meta = if follow {
        fs::metadata(root)
    } else {
        fs::symlink_metadata(root)
    }
    .unwrap_or_else(|e| panic!("{}: {e}", root.display()));
    out.insert(vec![], seen(root, &meta));
    if meta.is_dir() {
        walk(root, &[], &mut out);
    }
    out
}

fn walk(dir: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, Seen>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let mut r = rel.to_vec();
        if !r.is_empty() {
            r.push(b'/');
        }
        r.extend_from_slice(e.file_name().as_bytes());
        let meta = fs::symlink_metadata(e.path()).unwrap();
        out.insert(r.clone(), seen(&e.path(), &meta));
        if meta.is_dir() {
            walk(&e.path(), &r, out);
        }
    }
}

/// A source as the test gives it, and what the test expects of it.
#[derive(Debug, Clone)]
struct Given {
    /// The argument, as typed (relative to `cwd` unless absolute).
    arg: String,
    /// Where the kernel says it is, absolute, as the snapshot records it.
    recorded: PathBuf,
    /// Written with a trailing slash: a symlink there is followed.
    follow: bool,
}

/// The real directories of a generated tree, below its base.
const DIRS: &[&str] = &["r", "r/a", "r/a/b", "r/c", "s", "s/x"];
/// Where symlinks go (each to one of [`DIRS`], or a file).
const LINKS: &[&str] = &["l1", "r/l2", "s/x/l3", "r/a/l4"];

#[derive(Debug, Clone)]
struct Layout {
    /// Per file: directory index, content length, content seed.
    files: Vec<(usize, usize, u8)>,
    /// Per link slot: target directory index and whether it is relative;
    /// `None` leaves the slot empty.
    links: Vec<Option<(usize, bool)>>,
    /// A file hard-linked into two directories.
    hardlink: Option<(usize, usize)>,
    /// A directory on another file system, reached through `s/shm`.
    other_fs: bool,
    /// Sources: index into the candidate paths, and how to write it
    /// (0 absolute, 1 relative, 2 trailing slash, 3 `./` and `//`, 4 `X/sub/..`).
    sources: Vec<(usize, u8)>,
    /// Also back up `.` (the working directory).
    dot: bool,
    /// Working directory: index into [`DIRS`] (or the base).
    cwd: Option<usize>,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::collection::vec((0..DIRS.len(), 0usize..5000, any::<u8>()), 1..8),
        prop::collection::vec(
            prop::option::of((0..DIRS.len(), any::<bool>())),
            LINKS.len(),
        ),
        prop::option::of((0..DIRS.len(), 0..DIRS.len())),
        any::<bool>(),
        prop::collection::vec((0usize..1000, 0u8..5), 1..4),
        prop::bool::weighted(0.2),
        prop::option::of(0..DIRS.len()),
    )
        .prop_map(
            |(files, links, hardlink, other_fs, sources, dot, cwd)| Layout {
                files,
                links,
                hardlink: hardlink.filter(|(a, b)| a != b),
                other_fs,
                sources,
                dot,
                cwd,
            },
        )
}

/// Builds `layout` under `base` (and `shm` for the other file system).
fn build(base: &Path, shm: Option<&Path>, l: &Layout) {
    for d in DIRS {
        fs::create_dir_all(base.join(d)).unwrap();
    }
    fs::set_permissions(base.join("r/c"), fs::Permissions::from_mode(0o750)).unwrap();
    for (i, &(dir, len, seed)) in l.files.iter().enumerate() {
        let data: Vec<u8> = (0..len)
            .map(|j| (j as u8).wrapping_mul(seed) ^ seed)
            .collect();
        let f = base.join(DIRS[dir]).join(format!("f{i}"));
        fs::write(&f, data).unwrap();
        fs::set_permissions(
            &f,
            fs::Permissions::from_mode(0o600 + (i as u32 % 3) * 0o40),
        )
        .unwrap();
    }
    for (slot, link) in LINKS.iter().zip(&l.links) {
        let Some((dir, relative)) = link else {
            continue;
        };
        let at = base.join(slot);
        let target = base.join(DIRS[*dir]);
        if *relative {
            let up = "../".repeat(slot.matches('/').count());
            symlink(format!("{up}{}", DIRS[*dir]), &at).unwrap();
        } else {
            symlink(&target, &at).unwrap();
        }
    }
    if let Some((a, b)) = l.hardlink {
        let first = base.join(DIRS[a]).join("hard");
        fs::write(&first, b"linked twice").unwrap();
        fs::hard_link(&first, base.join(DIRS[b]).join("hard2")).unwrap();
    }
    if let Some(shm) = shm.filter(|_| l.other_fs) {
        fs::create_dir_all(shm.join("m")).unwrap();
        fs::write(shm.join("m/tmpfs-file"), b"on another file system").unwrap();
        symlink(shm, base.join("s/shm")).unwrap();
    }
}

/// Name paths below `base` up to depth 4, going through symlinks to
/// directories (what a user could type).
fn candidates(base: &Path) -> Vec<PathBuf> {
    fn go(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth == 4 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut names: Vec<_> = rd.map(|e| e.unwrap().file_name()).collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            out.push(r.clone());
            if fs::metadata(dir.join(&n)).is_ok_and(|m| m.is_dir()) {
                go(&dir.join(&n), &r, depth + 1, out);
            }
        }
    }
    let mut out = vec![];
    go(base, Path::new(""), 0, &mut out);
    out
}

/// What the kernel makes of `arg` in `cwd`: the recorded absolute path.
fn kernel_path(cwd: &Path, arg: &str) -> PathBuf {
    let abs = cwd.join(arg);
    let comps: Vec<Component> = abs.components().collect();
    match comps.iter().rposition(|c| *c == Component::ParentDir) {
        Some(i) => {
            let mut p = fs::canonicalize(comps[..=i].iter().collect::<PathBuf>()).unwrap();
            p.extend(&comps[i + 1..]);
            p
        }
        None => comps.iter().collect(),
    }
}

fn given(base: &Path, cwd: &Path, rel: &Path, style: u8) -> Given {
    let abs = base.join(rel);
    let mut arg = match style {
        1 | 3 => pathdiff(&abs, cwd),
        _ => abs.display().to_string(),
    };
    let is_dir = fs::metadata(&abs).is_ok_and(|m| m.is_dir());
    if style == 3 {
        arg = format!("./{}", arg.replacen('/', "//", 1));
    }
    let follow = style == 2 && is_dir;
    if follow {
        arg.push('/');
    }
    if style == 4 && is_dir {
        // `X/sub/..` with `sub` a real directory of X: X itself, as the kernel sees it.
        let sub = fs::read_dir(&abs)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.file_type().unwrap().is_dir());
        if let Some(sub) = sub {
            arg = format!("{arg}/{}/..", sub.file_name().to_string_lossy());
        }
    }
    // As the kernel reads it: a trailing `/`, `.` or `..` resolves a link.
    let last = arg.rsplit('/').next().unwrap_or_default();
    let follow = follow || arg.ends_with('/') || last == "." || last == "..";
    Given {
        recorded: kernel_path(cwd, &arg),
        arg,
        follow,
    }
}

/// `to` relative to `from` (both absolute, canonical base).
fn pathdiff(to: &Path, from: &Path) -> String {
    let (t, f): (Vec<_>, Vec<_>) = (to.components().collect(), from.components().collect());
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    out.extend(&t[common..]);
    if out.as_os_str().is_empty() {
        ".".into()
    } else {
        out.display().to_string()
    }
}

/// Whether a source of `sources` needs a symlink followed that another one
/// saves as a link: the backup must refuse (it cannot hold both).
fn contradiction(sources: &[Given]) -> bool {
    sources.iter().any(|w| {
        sources.iter().any(|s| {
            let (q, p) = (&w.recorded, &s.recorded);
            if !p.starts_with(q) {
                return false;
            }
            // Paths from q (if W saves q itself as a link) down to p (if S
            // follows p itself) that S must follow.
            let mut at = q.clone();
            let mut check = vec![];
            if !w.follow && (p != q || s.follow) {
                check.push(at.clone());
            }
            let below: Vec<_> = p.strip_prefix(q).unwrap().components().collect();
            for (i, c) in below.iter().enumerate() {
                at.push(c);
                if i + 1 < below.len() || s.follow {
                    check.push(at.clone());
                }
            }
            check
                .iter()
                .any(|c| fs::symlink_metadata(c).is_ok_and(|m| m.is_symlink()))
        })
    })
}

fn run_case(l: &Layout) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(tmp.path()).unwrap();
    let shm_dir = Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").unwrap());
    let shm = shm_dir.as_ref().map(|d| d.path().to_path_buf());
    let work = base.join("w");
    fs::create_dir(&work).unwrap();
    build(&work, shm.as_deref(), l);
    let vault = base.join("vault");
    init_vault(&vault);

    let cwd = l.cwd.map_or(work.clone(), |i| work.join(DIRS[i]));
    let cands = candidates(&work);
    let mut sources: Vec<Given> = l
        .sources
        .iter()
        .map(|&(i, style)| given(&work, &cwd, &cands[i % cands.len()], style))
        .collect();
    if l.dot {
        sources.push(Given {
            arg: ".".into(),
            recorded: cwd.clone(),
            follow: true,
        });
    }
    let before: Vec<_> = sources
        .iter()
        .map(|s| manifest(&s.recorded, s.follow))
        .collect();
    let whole_before = manifest(&work, false);

    let out = cairn()
        .current_dir(&cwd)
        .env("PWD", &cwd)
        .args(["--json", "backup", "--vault"])
        .arg(&vault)
        .args(sources.iter().map(|s| &s.arg))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    if contradiction(&sources) {
        prop_assert_eq!(code, Some(1), "{:?}: {}", sources, stderr);
        prop_assert!(stderr.contains("cannot back up"), "{}", stderr);
        return Ok(());
    }
    prop_assert_eq!(code, Some(0), "{:?}: {}", sources, stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    prop_assert_eq!(&report["skipped"], 0, "{}", report);
    let target = base.join("t");
    common::restore_latest(vault.to_str().unwrap(), &target);
    for (s, want) in sources.iter().zip(&before) {
        let restored = target.join(s.recorded.strip_prefix("/").unwrap());
        let got = manifest(&restored, false);
        prop_assert_eq!(
            want,
            &got,
            "source {} ({}) restored differently",
            &s.arg,
            s.recorded.display()
        );
    }
    // Hard links across sources stay hard links when both are restored.
    if let Some((a, b)) = l.hardlink {
        let one = target
            .join(work.strip_prefix("/").unwrap())
            .join(DIRS[a])
            .join("hard");
        let two = target
            .join(work.strip_prefix("/").unwrap())
            .join(DIRS[b])
            .join("hard2");
        if let (Ok(x), Ok(y)) = (fs::symlink_metadata(&one), fs::symlink_metadata(&two)) {
            prop_assert_eq!(x.ino(), y.ino(), "hard link broken");
        }
    }
    // Nothing was written through a symlink: the source tree is unchanged.
    prop_assert_eq!(whole_before, manifest(&work, false));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_source_restores_as_the_os_showed_it(l in layout()) {
        run_case(&l)?;
    }
}

/// The issue's reproduction: a source below a symlinked directory.
#[test]
fn a_source_below_a_symlinked_directory_is_saved_and_restored_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    let t = fs::canonicalize(tmp.path()).unwrap();
    fs::create_dir_all(t.join("real/d")).unwrap();
    fs::write(t.join("real/d/f1"), b"hi\n").unwrap();
    fs::write(t.join("real/d/f2"), b"yo\n").unwrap();
    symlink(t.join("real"), t.join("link")).unwrap();
    let vault = t.join("v");
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    let source = t.join("link/d");
    let report = common::run_json(&["backup", "--vault", v, source.to_str().unwrap()]);
    assert_eq!(report["files"], 2, "{report}");
    let listing = common::run_expect(&["ls", "--vault", v, "latest"], 0);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains(&format!("{}/f1", source.display())),
        "{listing}"
    );
    // Restore into a target where the path holds a planted symlink: it is
    // replaced, never written through.
    let target = t.join("target");
    let planted = target.join(t.strip_prefix("/").unwrap());
    fs::create_dir_all(&planted).unwrap();
    fs::create_dir(t.join("elsewhere")).unwrap();
    symlink(t.join("elsewhere"), planted.join("link")).unwrap();
    common::restore_latest(v, &target);
    let restored = planted.join("link");
    assert!(fs::symlink_metadata(&restored).unwrap().is_dir());
    assert_eq!(fs::read(restored.join("d/f1")).unwrap(), b"hi\n");
    assert_eq!(fs::read(restored.join("d/f2")).unwrap(), b"yo\n");
    assert_eq!(fs::read_dir(t.join("elsewhere")).unwrap().count(), 0);

    // The link itself as a source: saved as the link, with a note.
    let out = common::run_expect(
        &["backup", "--vault", v, t.join("link").to_str().unwrap()],
        0,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a symlink: saved as the link"),
        "{stderr}"
    );
}

/// Unreadable entries and a socket: the snapshot is saved without them, the
/// backup names each and exits 5, and everything else restores.
#[test]
fn skipped_entries_are_named_and_the_backup_exits_incomplete() {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let t = fs::canonicalize(tmp.path()).unwrap();
    fs::set_permissions(&t, fs::Permissions::from_mode(0o777)).unwrap();
    let src = t.join("src");
    fs::create_dir_all(src.join("locked")).unwrap();
    fs::write(src.join("ok"), b"fine").unwrap();
    fs::write(src.join("locked/inside"), b"hidden").unwrap();
    fs::write(src.join("secret"), b"no").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let vault = t.join("vault");
    init_vault(&vault);

    // Root reads everything, so run the client as nobody when we are root.
    let root = euid() == 0;
    let bin = t.join("cairn");
    fs::copy(env!("CARGO_BIN_EXE_cairn"), &bin).unwrap();
    let mut cmd = if root {
        chown_r(&t, 65534);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .env("CAIRN_PASSWORD", PASSWORD)
        .env("HOME", &t)
        .env("XDG_CACHE_HOME", t.join("cache"))
        .args(["backup", "--vault"])
        .arg(&vault)
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{stdout}\n{stderr}");
    for name in ["secret", "locked", "sock"] {
        assert!(
            stderr.contains(&format!("{}", src.join(name).display())),
            "{name} not named: {stderr}"
        );
    }
    assert!(stdout.contains("3 files skipped"), "{stdout}");
    let target = t.join("target");
    common::restore_latest(vault.to_str().unwrap(), &target);
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(restored.join("ok")).unwrap(), b"fine");
    let names: Vec<_> = fs::read_dir(&restored)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["ok".to_string()], "only the readable file");
}

/// The effective user id (the owner of this process's /proc entry).
fn euid() -> u32 {
    fs::metadata("/proc/self").map_or(1, |m| m.uid())
}

fn chown_r(p: &Path, uid: u32) {
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(status.success());
}
