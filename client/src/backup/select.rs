//! The backup's pure decisions, tested without a file system: which files
//! are skipped as unchanged, which snapshot is the parent, and how many warnings travel sealed.

use std::os::unix::fs::MetadataExt;

use crate::error::Result;
use crate::snapshot::SnapshotRecord;
use crate::tree::{Entry, Time};

/// What change detection compares of a file: size, modification and
/// change times, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Time,
    /// Change time (any metadata change, a rename included).
    pub ctime: Time,
    /// Inode number.
    pub inode: u64,
}

impl FileStat {
    /// The fields of `meta` change detection compares.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime: Time::of(meta.mtime(), meta.mtime_nsec()),
            ctime: Time::of(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// Whether a file still looks as it did when `entry` was taken: same size,
/// modification and change times, and inode. Then its chunks are reused
/// and it is not read.
pub fn unchanged(entry: &Entry, now: &FileStat) -> bool {
    entry.size == now.size
        && entry.mtime == now.mtime
        && entry.ctime == now.ctime
        && entry.inode == now.inode
}

/// The newest snapshot of `all` (oldest first) a backup of `paths` by
/// `device` compares against: same device and item, and without an item
/// the same paths (`paths_of` opens a snapshot's sealed paths).
pub fn auto_parent<'a>(
    all: &'a [SnapshotRecord],
    device: &str,
    item: Option<&str>,
    paths: &[String],
    paths_of: impl Fn(&SnapshotRecord) -> Result<Vec<String>>,
) -> Result<Option<&'a SnapshotRecord>> {
    for snap in all.iter().rev() {
        if snap.device != device || snap.item.as_deref() != item {
            continue;
        }
        if item.is_some() || paths_of(snap)? == paths {
            return Ok(Some(snap));
        }
    }
    Ok(None)
}

/// Bytes of warnings kept in a snapshot's sealed metadata (a server keeps
/// at most 256 KiB of it per snapshot); the report keeps them all.
pub const META_WARNINGS_MAX: usize = 32 * 1024;

/// The first lines of `lines` that fit in `max` bytes, then one saying how
/// many were left out.
pub fn first_lines(lines: &[String], max: usize) -> Vec<String> {
    let mut used = 0;
    let mut out = vec![];
    for (i, l) in lines.iter().enumerate() {
        if used + l.len() > max {
            out.push(format!("… and {} more", lines.len() - i));
            break;
        }
        used += l.len();
        out.push(l.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::vault::memory::testing::{self, record};

    #[test]
    fn sealed_warnings_are_bounded_and_say_how_many_were_left_out() {
        let lines: Vec<String> = (0..1000)
            .map(|i| format!("/some/path/{i}: denied"))
            .collect();
        let kept = first_lines(&lines, 1024);
        assert!(kept.iter().map(String::len).sum::<usize>() < 1100);
        let last = kept.last().unwrap();
        assert!(
            last.starts_with("… and ") && last.ends_with(" more"),
            "{last}"
        );
        assert_eq!(first_lines(&lines[..3], 1024), lines[..3].to_vec());
    }

    fn entry(size: u64, mtime: i64, ctime: i64, inode: u64) -> Entry {
        Entry {
            mtime: Time::of(mtime, 5),
            ctime: Time::of(ctime, 7),
            inode,
            ..testing::entry("f", crate::tree::Kind::File, size)
        }
    }

    #[test]
    fn a_file_is_unchanged_only_if_size_times_and_inode_all_match() {
        let e = entry(10, 100, 200, 42);
        let same = FileStat {
            size: 10,
            mtime: Time::of(100, 5),
            ctime: Time::of(200, 7),
            inode: 42,
        };
        assert!(unchanged(&e, &same));
        for differs in [
            FileStat { size: 11, ..same },
            FileStat {
                mtime: Time::of(100, 6),
                ..same
            },
            FileStat {
                ctime: Time::of(201, 7),
                ..same
            },
            FileStat { inode: 43, ..same },
        ] {
            assert!(!unchanged(&e, &differs), "{differs:?}");
        }
    }

    #[test]
    fn the_parent_is_the_newest_of_the_same_device_item_and_paths() {
        let all = [
            record("a", None, 1),
            record("a", None, 2),
            record("b", None, 3),
            record("a", Some("home"), 4),
        ];
        // Paths "by record": the second snapshot backed up other paths.
        let paths_of = |s: &SnapshotRecord| {
            Ok(vec![
                if s.meta == [2] { "/other" } else { "/home" }.to_string()
            ])
        };
        let home = ["/home".to_string()];
        let got = auto_parent(&all, "a", None, &home, paths_of).unwrap();
        assert_eq!(got.map(|s| s.meta.clone()), Some(vec![1]));
        let got = auto_parent(&all, "a", Some("home"), &[], paths_of).unwrap();
        assert_eq!(got.map(|s| s.meta.clone()), Some(vec![4]));
        assert!(auto_parent(&all, "c", None, &home, paths_of)
            .unwrap()
            .is_none());
        // A sealed path list that cannot be opened is an error, not a skip.
        let broken = |_: &SnapshotRecord| Err(Error::Integrity("sealed".into()));
        assert!(matches!(
            auto_parent(&all, "a", None, &home, broken),
            Err(Error::Integrity(_))
        ));
    }
}
