//! Listing a snapshot's contents, and finding a path in it ([`lookup`],
//! also for `dump`).

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::snapshot::SnapshotRecord;
use crate::tree::{Entry, Kind, Tree};
use crate::vault::Vault;

/// One listed object.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Absolute path in the snapshot (lossy UTF-8).
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `chardev` or `blockdev`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// A symlink's target (lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Listed {
    /// The `ls -l` line: type and permissions, owner, size, mtime (to the
    /// second, in `tz`), path and a link's target.
    pub fn long(&self, tz: &TimeZone) -> String {
        let kind = match self.kind {
            "dir" => 'd',
            "symlink" => 'l',
            "fifo" => 'p',
            "chardev" => 'c',
            "blockdev" => 'b',
            _ => '-',
        };
        let mut perms = String::with_capacity(10);
        perms.push(kind);
        for (shift, special, lower, upper) in [
            (6, 0o4000, 's', 'S'),
            (3, 0o2000, 's', 'S'),
            (0, 0o1000, 't', 'T'),
        ] {
            let bits = (self.mode >> shift) & 7;
            perms.push(if bits & 4 != 0 { 'r' } else { '-' });
            perms.push(if bits & 2 != 0 { 'w' } else { '-' });
            perms.push(match (bits & 1 != 0, self.mode & special != 0) {
                (true, true) => lower,
                (false, true) => upper,
                (true, false) => 'x',
                (false, false) => '-',
            });
        }
        let time = self.mtime.parse::<jiff::Timestamp>().map_or_else(
            |_| self.mtime.clone(),
            |t| {
                t.to_zoned_datetime(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        );
        let mut line = format!(
            "{perms} {:>5} {:>5} {:>12} {time} {}",
            self.uid, self.gid, self.size, self.path
        );
        if let Some(t) = &self.target {
            line.push_str(" -> ");
            line.push_str(t);
        }
        line
    }
}

/// What a path names inside a snapshot.
pub struct Found {
    /// The path, normalized (absolute, no `.` or `..`).
    pub path: PathBuf,
    /// Its entry (`None` for the root `/`).
    pub entry: Option<Entry>,
    /// The directory's contents, if it is one.
    pub tree: Option<Tree>,
}

/// Finds `path` (absolute; `/` is the root) in `snapshot`.
///
/// # Errors
///
/// [`Error::NotFound`] when the snapshot does not hold it.
pub fn lookup(vault: &Vault, snapshot: &SnapshotRecord, path: &Path) -> Result<Found> {
    let mut tree = vault.tree(snapshot.root)?;
    let mut found = PathBuf::from("/");
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut entry = None;
    for (i, name) in names.iter().enumerate() {
        let e = tree.find(name).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "{} is not in snapshot {}",
                path.display(),
                snapshot.short_id()
            ))
        })?;
        found.push(std::ffi::OsStr::from_bytes(name));
        match e.subtree {
            Some(sub) => tree = vault.tree(sub)?,
            None if i + 1 == names.len() => {
                return Ok(Found {
                    path: found,
                    entry: Some(e),
                    tree: None,
                })
            }
            None => {
                return Err(Error::NotFound(format!(
                    "{} is not a directory",
                    found.display()
                )))
            }
        }
        entry = Some(e);
    }
    Ok(Found {
        path: found,
        entry,
        tree: Some(tree),
    })
}

/// Lists `path` (the whole snapshot for `/`) and everything below it.
pub fn list(vault: &Vault, snapshot: &SnapshotRecord, path: &Path) -> Result<Vec<Listed>> {
    let found = lookup(vault, snapshot, path)?;
    let mut out: Vec<Listed> = found.entry.iter().map(|e| listed(&found.path, e)).collect();
    if let Some(tree) = &found.tree {
        walk(vault, tree, &found.path, &mut out)?;
    }
    Ok(out)
}

fn walk(vault: &Vault, tree: &Tree, prefix: &Path, out: &mut Vec<Listed>) -> Result<()> {
    for entry in &tree.entries {
        let path = prefix.join(std::ffi::OsStr::from_bytes(&entry.name));
        out.push(listed(&path, entry));
        if let Some(sub) = entry.subtree {
            walk(vault, &vault.tree(sub)?, &path, out)?;
        }
    }
    Ok(())
}

/// The listing of entry `e` at `path`.
pub fn listed(path: &Path, e: &Entry) -> Listed {
    Listed {
        path: path.to_string_lossy().into_owned(),
        kind: match e.kind {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::CharDevice => "chardev",
            Kind::BlockDevice => "blockdev",
        },
        size: e.size,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        mtime: e.mtime.rfc3339(),
        target: (e.kind == Kind::Symlink).then(|| String::from_utf8_lossy(&e.target).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_read_like_ls_l() {
        let l = Listed {
            path: "/a/link".into(),
            kind: "symlink",
            size: 7,
            mode: 0o777,
            uid: 1000,
            gid: 100,
            mtime: "2026-01-02T03:04:05.123Z".into(),
            target: Some("/etc/x".into()),
        };
        assert_eq!(
            l.long(&TimeZone::UTC),
            "lrwxrwxrwx  1000   100            7 2026-01-02 03:04:05 /a/link -> /etc/x"
        );
        // The time is the zone's (New York: five hours behind in January).
        let ny = TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap();
        assert!(
            l.long(&ny).contains(" 2026-01-01 22:04:05 /a/link"),
            "{}",
            l.long(&ny)
        );
        let f = Listed {
            path: "/bin/su".into(),
            kind: "file",
            mode: 0o4750,
            target: None,
            ..l.clone()
        };
        assert!(f.long(&TimeZone::UTC).starts_with("-rwsr-x--- "));
        let d = Listed {
            kind: "dir",
            mode: 0o1777,
            ..f
        };
        assert!(d.long(&TimeZone::UTC).starts_with("drwxrwxrwt "));
    }
}
