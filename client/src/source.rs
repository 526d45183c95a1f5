//! Backup sources: the paths a user names, resolved the way the kernel
//! resolves them, and the tree of names the walker follows to reach them.
//!
//! The snapshot must hold what the operating system shows under each path
//! *as given*, so:
//!
//! - directories on the way to a source are followed like the kernel follows
//!   them (a symlinked parent is entered) and recorded as directories under
//!   the name given, so a restore recreates `T/…/link/d/…`;
//! - a source that is itself a symlink is recorded as the link (as restic
//!   does), unless it is written with a trailing `/` or `/.`, which the kernel
//!   resolves to the directory it points to;
//! - `..` is resolved by the kernel (after a symlink it leads to the link
//!   target's parent, not back lexically); `.` and repeated slashes vanish;
//! - a relative path is taken against the logical working directory (`$PWD`
//!   when it names the current directory, as a shell shows it).
//!
//! Symlinks *inside* a backed-up tree stay symlinks. So one source below a
//! symlink inside another source cannot be represented (that name would have
//! to be both a link and a directory): it is refused before anything is read.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// One resolved source path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Absolute, without `.` or `..`: the path recorded in the snapshot and
    /// recreated under a restore's target.
    pub path: PathBuf,
    /// Given with a trailing `/` (or `/.`, `/..`): a symlink here is followed
    /// to the directory it points to instead of being saved as a link.
    pub follow: bool,
}

/// Resolves the paths given on the command line against the logical working
/// directory; each must exist.
pub fn resolve(paths: &[PathBuf]) -> Result<Vec<Source>> {
    if paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let cwd = logical_cwd()?;
    paths.iter().map(|p| resolve_one(p, &cwd)).collect()
}

/// `raw` made absolute against the logical working directory, otherwise as
/// given (a trailing `/` and any `..` are kept, to be resolved by
/// [`resolve`] when the backup runs): how protected items store paths.
pub fn absolute(raw: &Path) -> Result<PathBuf> {
    Ok(logical_cwd()?.join(raw))
}

/// The working directory as the shell shows it: `$PWD` when it is an absolute
/// path without `.` or `..` naming the current directory, else `getcwd`.
fn logical_cwd() -> Result<PathBuf> {
    let real = std::env::current_dir().ctx("read the working directory", Path::new("."))?;
    let Some(pwd) = std::env::var_os("PWD").map(PathBuf::from) else {
        return Ok(real);
    };
    let plain = pwd.is_absolute()
        && pwd
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    let same = |a: &Path, b: &Path| match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    Ok(if plain && same(&pwd, &real) {
        pwd
    } else {
        real
    })
}

/// Resolves one path given relative to `cwd` (see the module doc).
fn resolve_one(raw: &Path, cwd: &Path) -> Result<Source> {
    let bytes = raw.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Err(Error::Invalid("an empty path cannot be backed up".into()));
    }
    let last = bytes.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let follow = bytes.ends_with(b"/") || last == b"." || last == b"..";
    let abs = cwd.join(raw);
    let comps: Vec<Component> = abs.components().collect();
    let mut path = match comps.iter().rposition(|c| *c == Component::ParentDir) {
        // The kernel resolves `..` after whatever symlinks precede it.
        Some(i) => {
            let prefix: PathBuf = comps[..=i].iter().collect();
            fs::canonicalize(&prefix).ctx("resolve", raw)?
        }
        None => PathBuf::from("/"),
    };
    let after = comps
        .iter()
        .rposition(|c| *c == Component::ParentDir)
        .map_or(0, |i| i + 1);
    for c in &comps[after..] {
        if let Component::Normal(n) = c {
            path.push(n);
        }
    }
    let exists = if follow {
        // With the trailing slash, so the kernel insists on a directory.
        fs::metadata(path.join(""))
    } else {
        fs::symlink_metadata(&path)
    };
    exists.ctx("back up", &path)?;
    Ok(Source { path, follow })
}

/// The sources as a tree of names below `/`. A node marked `whole` is backed
/// up entirely; other nodes are directories on the way to one, followed like
/// the kernel follows a path.
#[derive(Debug, Default)]
pub struct PathTrie {
    /// A source ends here: back up everything below.
    pub whole: bool,
    /// A source here was given with a trailing slash: follow a symlink.
    pub follow: bool,
    /// A source here was given without one: a symlink is saved as the link.
    as_link: bool,
    /// Names on the way to deeper sources.
    pub children: BTreeMap<Vec<u8>, PathTrie>,
}

impl PathTrie {
    /// The trie of `sources`; fails if a source needs a symlink followed that
    /// another source saves as a link (see the module doc).
    pub fn new(sources: &[Source]) -> Result<Self> {
        let mut root = PathTrie::default();
        for s in sources {
            let mut node = &mut root;
            for c in s.path.components() {
                if let Component::Normal(n) = c {
                    node = node.children.entry(n.as_bytes().to_vec()).or_default();
                }
            }
            node.whole = true;
            node.follow |= s.follow;
            node.as_link |= !s.follow;
        }
        root.check_links(Path::new("/"), None)?;
        Ok(root)
    }

    /// Refuses a symlink that one source saves as a link (it is inside that
    /// source, or is that source) while another must be followed through it.
    fn check_links(&self, path: &Path, inside: Option<&Path>) -> Result<()> {
        let saved_as_link_by = inside.or((self.whole && self.as_link).then_some(path));
        let needs_follow = self.follow || !self.children.is_empty();
        if let Some(outer) = saved_as_link_by.filter(|_| needs_follow) {
            if fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
                let below = self.first_followed(path);
                let real = fs::canonicalize(&below).unwrap_or_else(|_| below.clone());
                return Err(Error::Invalid(format!(
                    "cannot back up {}: it is reached through the symlink {}, which the \
                     source {} saves as a link; give its real path ({}) or back it up in a \
                     separate snapshot",
                    below.display(),
                    path.display(),
                    outer.display(),
                    real.display()
                )));
            }
        }
        let inside = inside.or(self.whole.then_some(path));
        for (name, child) in &self.children {
            child.check_links(&path.join(std::ffi::OsStr::from_bytes(name)), inside)?;
        }
        Ok(())
    }

    /// The first source at or below this node that is followed through it.
    fn first_followed(&self, path: &Path) -> PathBuf {
        match self.children.iter().next() {
            Some((n, c)) if !self.follow => {
                c.first_followed(&path.join(std::ffi::OsStr::from_bytes(n)))
            }
            _ => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(t.path()).unwrap();
        fs::create_dir_all(base.join("real/d")).unwrap();
        fs::write(base.join("real/d/f"), b"x").unwrap();
        symlink(base.join("real"), base.join("link")).unwrap();
        (t, base)
    }

    fn one(raw: &str, cwd: &Path) -> Source {
        resolve_one(Path::new(raw), cwd).unwrap()
    }

    #[test]
    fn a_symlinked_parent_is_kept_as_given() {
        let (_t, b) = scratch();
        let s = one("link/d", &b);
        assert_eq!(s.path, b.join("link/d"));
        assert!(!s.follow);
    }

    #[test]
    fn trailing_slash_and_dot_follow_the_last_link() {
        let (_t, b) = scratch();
        assert_eq!(
            one("link", &b),
            Source {
                path: b.join("link"),
                follow: false
            }
        );
        assert_eq!(
            one("link/", &b),
            Source {
                path: b.join("link"),
                follow: true
            }
        );
        assert_eq!(
            one("link/.", &b),
            Source {
                path: b.join("link"),
                follow: true
            }
        );
        assert_eq!(one("./link//d/", &b).path, b.join("link/d"));
    }

    #[test]
    fn dot_dot_is_resolved_by_the_kernel_after_a_link() {
        let (_t, b) = scratch();
        fs::create_dir_all(b.join("other/deep")).unwrap();
        symlink(b.join("other/deep"), b.join("real/d/up")).unwrap();
        // Lexically `real/d/up/..` is `real/d`; the kernel says `other`.
        let s = one("real/d/up/..", &b);
        assert_eq!(s.path, b.join("other"));
        assert!(s.follow);
        assert_eq!(one("real/d/up/../deep", &b).path, b.join("other/deep"));
    }

    #[test]
    fn missing_and_empty_paths_are_errors() {
        let (_t, b) = scratch();
        let err = resolve_one(Path::new("nope"), &b).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        let err = resolve_one(Path::new(""), &b).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
        // A link to a file given with a trailing slash is not a directory.
        fs::write(b.join("file"), b"x").unwrap();
        symlink(b.join("file"), b.join("flink")).unwrap();
        assert!(matches!(
            resolve_one(Path::new("flink/"), &b).unwrap_err(),
            Error::Io { .. }
        ));
    }

    #[test]
    fn a_source_below_a_link_inside_another_source_is_refused() {
        let (_t, b) = scratch();
        let outer = one(".", &b);
        let inner = one("link/d", &b);
        let err = PathTrie::new(&[outer.clone(), inner.clone()]).unwrap_err();
        let Error::Invalid(msg) = err else {
            panic!("{err}")
        };
        assert!(
            msg.contains(&b.join("link/d").display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&b.join("real/d").display().to_string()),
            "{msg}"
        );
        // Through real directories, or with the link as a link, it is fine.
        PathTrie::new(&[outer.clone(), one("real/d", &b)]).unwrap();
        PathTrie::new(&[outer.clone(), one("link", &b)]).unwrap();
        assert!(matches!(
            PathTrie::new(&[outer, one("link/", &b)]),
            Err(Error::Invalid(_))
        ));
        // A link given as a source, and a path through it (or the same link
        // with a trailing slash), contradict each other.
        assert!(matches!(
            PathTrie::new(&[one("link", &b), one("link/d", &b)]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            PathTrie::new(&[one("link", &b), one("link/", &b)]),
            Err(Error::Invalid(_))
        ));
        PathTrie::new(&[one("real", &b), one("real/", &b)]).unwrap();
        // Outside any source, a symlinked parent is simply followed.
        let t = PathTrie::new(&[inner]).unwrap();
        assert!(!t.whole && t.children.len() == 1);
    }
}
