//! Looking into snapshots without restoring them: `find` (entries whose
//! path matches a pattern, across snapshots), `diff` (what changed between
//! two snapshots) and `stats` (restore size, unique data, what is stored,
//! the deduplication ratio).
//!
//! The walks are written over a tree loader, so `diff` is tested on trees
//! in memory; identical subtrees (same id) are never descended twice.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cairn_proto::{ChunkId, SnapshotId};
use serde::Serialize;

use crate::error::Result;
use crate::ls::{listed, Listed};
use crate::pattern::Patterns;
use crate::snapshot::SnapshotRecord;
use crate::tree::{Entry, Kind, Tree};
use crate::vault::Vault;

/// One snapshot's entries that `find` matched.
#[derive(Debug, Clone, Serialize)]
pub struct Matches {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its start time (RFC 3339).
    pub time: String,
    /// Its device.
    pub device: String,
    /// The matching entries, in path order.
    pub matches: Vec<Listed>,
}

/// The entries of each of `snapshots` whose path `patterns` match
/// ([`Patterns::is_match`]: `*.conf` at any depth, `/etc/*` anchored);
/// snapshots without a match are left out.
pub fn find(
    vault: &Vault,
    snapshots: &[SnapshotRecord],
    patterns: &Patterns,
) -> Result<Vec<Matches>> {
    let mut out = vec![];
    for snap in snapshots {
        let mut matches = vec![];
        let mut stack = vec![(snap.root, PathBuf::from("/"))];
        while let Some((id, dir)) = stack.pop() {
            for e in vault.tree(id)?.entries.iter().rev() {
                let path = dir.join(std::ffi::OsStr::from_bytes(&e.name));
                if patterns.is_match(&path) {
                    matches.push(listed(&path, e));
                }
                if let Some(sub) = e.subtree {
                    stack.push((sub, path));
                }
            }
        }
        matches.sort_by(|a, b| a.path.cmp(&b.path));
        if !matches.is_empty() {
            out.push(Matches {
                id: snap.id,
                time: snap.time.clone(),
                device: snap.device.clone(),
                matches,
            });
        }
    }
    Ok(out)
}

/// What differs between two snapshots, as absolute paths in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Only in the second snapshot (a new directory's contents included).
    pub added: Vec<String>,
    /// Only in the first.
    pub removed: Vec<String>,
    /// In both, with other content or metadata (kind, size, mode, owner,
    /// mtime, link target, xattrs).
    pub modified: Vec<String>,
}

/// The difference from tree `a` to tree `b`, trees read through `load`.
pub fn diff(load: &dyn Fn(ChunkId) -> Result<Tree>, a: ChunkId, b: ChunkId) -> Result<Diff> {
    let mut out = Diff::default();
    diff_trees(load, a, b, Path::new("/"), &mut out)?;
    out.added.sort();
    out.removed.sort();
    out.modified.sort();
    Ok(out)
}

fn diff_trees(
    load: &dyn Fn(ChunkId) -> Result<Tree>,
    a: ChunkId,
    b: ChunkId,
    dir: &Path,
    out: &mut Diff,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(a)?, load(b)?);
    let old: HashMap<&[u8], &Entry> = ta.entries.iter().map(|e| (e.name.as_slice(), e)).collect();
    let new: HashMap<&[u8], &Entry> = tb.entries.iter().map(|e| (e.name.as_slice(), e)).collect();
    for e in &ta.entries {
        if !new.contains_key(e.name.as_slice()) {
            all_below(load, e, dir, &mut out.removed)?;
        }
    }
    for e in &tb.entries {
        let path = dir.join(std::ffi::OsStr::from_bytes(&e.name));
        match old.get(e.name.as_slice()) {
            None => all_below(load, e, dir, &mut out.added)?,
            Some(o) => {
                if !same(o, e) {
                    out.modified.push(path.display().to_string());
                }
                match (o.subtree, e.subtree) {
                    (Some(x), Some(y)) => diff_trees(load, x, y, &path, out)?,
                    (Some(_), None) => {
                        below(load, o, &path, &mut out.removed)?;
                    }
                    (None, Some(_)) => {
                        below(load, e, &path, &mut out.added)?;
                    }
                    (None, None) => {}
                }
            }
        }
    }
    Ok(())
}

/// Whether two entries of the same name hold the same thing (inode and
/// ctime are where it lives, not what it is).
fn same(a: &Entry, b: &Entry) -> bool {
    a.kind == b.kind
        && a.size == b.size
        && a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.target == b.target
        && a.rdev == b.rdev
        && a.xattrs == b.xattrs
        && a.content == b.content
}

/// `e` (in `dir`) and everything below it.
fn all_below(
    load: &dyn Fn(ChunkId) -> Result<Tree>,
    e: &Entry,
    dir: &Path,
    out: &mut Vec<String>,
) -> Result<()> {
    let path = dir.join(std::ffi::OsStr::from_bytes(&e.name));
    out.push(path.display().to_string());
    below(load, e, &path, out)
}

/// Everything below directory entry `e` at `path`.
fn below(
    load: &dyn Fn(ChunkId) -> Result<Tree>,
    e: &Entry,
    path: &Path,
    out: &mut Vec<String>,
) -> Result<()> {
    if let Some(sub) = e.subtree {
        for child in load(sub)?.entries {
            all_below(load, &child, path, out)?;
        }
    }
    Ok(())
}

/// What snapshots hold and what they cost (`cairn stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files, summed over the snapshots (what restoring each would write).
    pub files: u64,
    /// Directories, likewise.
    pub dirs: u64,
    /// File bytes a restore of every snapshot would write.
    pub restore_bytes: u64,
    /// Distinct data chunks the snapshots' files use.
    pub unique_chunks: u64,
    /// Their plaintext bytes (what deduplication leaves).
    pub unique_bytes: u64,
    /// Their sealed (compressed, encrypted) bytes as stored, where the
    /// vault lists sizes (a local vault).
    pub stored_bytes: Option<u64>,
    /// `restore_bytes / unique_bytes` (1 without sharing; 0 when empty).
    pub dedup_ratio: f64,
}

/// Counts `snapshots` of `vault`; each distinct tree is read once.
pub fn stats(vault: &Vault, snapshots: &[SnapshotRecord]) -> Result<Stats> {
    let mut walk = StatsWalk {
        vault,
        totals: HashMap::new(),
        chunks: HashMap::new(),
    };
    let mut s = Stats::default();
    for snap in snapshots {
        let (files, dirs, bytes) = walk.totals(snap.root)?;
        s.snapshots += 1;
        s.files += files;
        s.dirs += dirs;
        s.restore_bytes += bytes;
    }
    s.unique_chunks = walk.chunks.len() as u64;
    s.unique_bytes = walk.chunks.values().map(|&l| u64::from(l)).sum();
    let used: HashSet<ChunkId> = walk.chunks.keys().copied().collect();
    let (mut stored, mut sized) = (0u64, true);
    vault.backend().list_chunks(&mut |id, size| {
        if used.contains(&id) {
            stored += size;
            sized &= size > 0;
        }
    })?;
    s.stored_bytes = (sized || used.is_empty()).then_some(stored);
    s.dedup_ratio = if s.unique_bytes == 0 {
        0.0
    } else {
        s.restore_bytes as f64 / s.unique_bytes as f64
    };
    Ok(s)
}

struct StatsWalk<'a> {
    vault: &'a Vault,
    /// (files, dirs, file bytes) below each tree read so far.
    totals: HashMap<ChunkId, (u64, u64, u64)>,
    /// Every data chunk seen, with its plaintext length.
    chunks: HashMap<ChunkId, u32>,
}

impl StatsWalk<'_> {
    fn totals(&mut self, id: ChunkId) -> Result<(u64, u64, u64)> {
        if let Some(&t) = self.totals.get(&id) {
            return Ok(t);
        }
        // A tree naming an ancestor counts as empty there, not forever.
        self.totals.insert(id, (0, 0, 0));
        let (mut files, mut dirs, mut bytes) = (0, 0, 0);
        for e in self.vault.tree(id)?.entries {
            match e.kind {
                Kind::Dir => {
                    dirs += 1;
                    if let Some(sub) = e.subtree {
                        let (f, d, b) = self.totals(sub)?;
                        (files, dirs, bytes) = (files + f, dirs + d, bytes + b);
                    }
                }
                Kind::File => {
                    files += 1;
                    bytes += e.size;
                    for c in &e.content {
                        self.chunks.insert(c.id, c.len);
                    }
                }
                _ => {}
            }
        }
        self.totals.insert(id, (files, dirs, bytes));
        Ok((files, dirs, bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::tree::ChunkRef;
    use crate::vault::memory::testing::{self, backup_dir, small_vault};

    fn entry(name: &str, kind: Kind, size: u64, subtree: Option<u8>) -> Entry {
        Entry {
            content: vec![ChunkRef {
                id: ChunkId([size as u8; 32]),
                len: size as u32,
            }],
            subtree: subtree.map(|n| ChunkId([n; 32])),
            ..testing::entry(name, kind, size)
        }
    }

    #[test]
    fn diff_names_what_was_added_removed_and_modified_below_changed_trees() {
        let trees: HashMap<u8, Tree> = [
            // Old root 1: a, d/ (tree 3: x), gone/ (tree 4: y).
            (
                1,
                vec![
                    entry("a", Kind::File, 1, None),
                    entry("d", Kind::Dir, 0, Some(3)),
                    entry("gone", Kind::Dir, 0, Some(4)),
                    entry("same", Kind::Dir, 0, Some(5)),
                ],
            ),
            // New root 2: a changed, d/ (tree 6: x, new), same/ unchanged.
            (
                2,
                vec![
                    entry("a", Kind::File, 2, None),
                    entry("d", Kind::Dir, 0, Some(6)),
                    entry("same", Kind::Dir, 0, Some(5)),
                ],
            ),
            (3, vec![entry("x", Kind::File, 3, None)]),
            (4, vec![entry("y", Kind::File, 4, None)]),
            (5, vec![]),
            (
                6,
                vec![
                    entry("new", Kind::File, 5, None),
                    entry("x", Kind::File, 3, None),
                ],
            ),
        ]
        .into_iter()
        .map(|(n, entries)| (n, Tree { entries }))
        .collect();
        let load = |id: ChunkId| Ok(trees[&id.0[0]].clone());
        let d = diff(&load, ChunkId([1; 32]), ChunkId([2; 32])).unwrap();
        assert_eq!(d.added, ["/d/new"]);
        assert_eq!(d.removed, ["/gone", "/gone/y"]);
        assert_eq!(d.modified, ["/a"]);
        let none = diff(&load, ChunkId([1; 32]), ChunkId([1; 32])).unwrap();
        assert_eq!(none, Diff::default());
        // Identical subtrees are not read: tree 5 is never loaded.
        let strict = |id: ChunkId| {
            assert_ne!(id, ChunkId([5; 32]), "an unchanged subtree was read");
            Ok(trees[&id.0[0]].clone())
        };
        diff(&strict, ChunkId([1; 32]), ChunkId([2; 32])).unwrap();
    }

    #[test]
    fn stats_count_every_snapshot_and_shared_data_once() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        let data = crate::vault::memory::testing::pseudo_random(1000, 5);
        fs::write(src.path().join("a"), &data).unwrap();
        fs::write(src.path().join("copy"), &data).unwrap();
        let one = backup_dir(&vault, src.path()).snapshot;
        let two = backup_dir(&vault, src.path()).snapshot;
        let s = stats(&vault, &[one.clone(), two]).unwrap();
        assert_eq!(s.snapshots, 2);
        assert_eq!(s.files, 4);
        assert_eq!(s.restore_bytes, 4000);
        assert_eq!((s.unique_chunks, s.unique_bytes), (1, 1000));
        assert_eq!(s.dedup_ratio, 4.0);
        assert!(s.stored_bytes.is_some());

        let patterns = Patterns::new(&["copy".into()], "find").unwrap();
        let found = find(&vault, &[one], &patterns).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].matches.len(), 1);
        assert!(found[0].matches[0].path.ends_with("/copy"));
    }
}
