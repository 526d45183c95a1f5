//! The tree format: one blob per directory.
//!
//! A tree is a version byte ([`TREE_FORMAT`]) followed by the bincode 1.3
//! encoding (`DefaultOptions`: varint integers, little endian) of
//! [`Tree`]. Entries are sorted by name bytes and names are unique, so the
//! same directory always encodes to the same bytes and unchanged directories
//! dedup across snapshots. Names are raw bytes (non-UTF-8 names round-trip).
//!
//! Decoding is the trust boundary for restore: [`Tree::decode`] refuses
//! unknown versions, trailing or oversized input, and any entry name that is
//! empty, `.`, `..`, or contains `/` or NUL, so a hostile tree cannot make a
//! restore write outside its target.

use bincode::Options;
use cairn_proto::version::TREE_FORMAT;
use cairn_proto::ChunkId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What kind of file system object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file; its data is `content`.
    File,
    /// A directory; its entries are the tree `subtree`.
    Dir,
    /// A symbolic link to `target`.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device `rdev`.
    CharDevice,
    /// A block device `rdev`.
    BlockDevice,
}

/// One data chunk of a file: its id and plaintext length (so restores can
/// place chunks at their offsets in parallel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk's id.
    pub id: ChunkId,
    /// Plaintext length in bytes.
    pub len: u32,
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Time {
    /// Whole seconds (negative before 1970).
    pub sec: i64,
    /// Nanoseconds, below 10^9.
    pub nsec: u32,
}

impl Time {
    /// The current time.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self::of(d.as_secs() as i64, i64::from(d.subsec_nanos()))
    }

    /// The time as RFC 3339 text in UTC with nanoseconds, the one time
    /// format of `--json` output.
    pub fn rfc3339(&self) -> String {
        let nanos = i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec);
        jiff::Timestamp::from_nanosecond(nanos)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| format!("{}.{:09}", self.sec, self.nsec))
    }

    /// A time from the seconds and nanoseconds a `stat` gives (nanoseconds
    /// clamped into 0..10^9).
    pub fn of(sec: i64, nsec: i64) -> Self {
        Self {
            sec,
            nsec: nsec.clamp(0, 999_999_999) as u32,
        }
    }
}

/// One named object in a directory, with its full metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// File name bytes (no `/`, no NUL, not `.` or `..`).
    pub name: Vec<u8>,
    /// Object kind.
    pub kind: Kind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time.
    pub mtime: Time,
    /// Status change time (used to detect changed files, not restored).
    pub ctime: Time,
    /// Inode number at backup time (change detection and hard links).
    pub inode: u64,
    /// Device of the file system at backup time (hard links).
    pub device: u64,
    /// Hard link count at backup time.
    pub links: u64,
    /// Size in bytes (files: data length).
    pub size: u64,
    /// Symlink target bytes.
    pub target: Vec<u8>,
    /// Device number of character and block devices.
    pub rdev: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// File data chunks in order.
    pub content: Vec<ChunkRef>,
    /// Directory contents.
    pub subtree: Option<ChunkId>,
}

/// The sorted entries of one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name bytes, names unique.
    pub entries: Vec<Entry>,
}

/// Largest encoded tree accepted (a directory of a few million entries).
const MAX_TREE_BYTES: u64 = 256 * 1024 * 1024;

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_TREE_BYTES)
}

/// Whether `name` is safe to join onto a directory path.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Sorts entries by name; call before encoding a tree built by hand.
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// The entry called `name`, by binary search.
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The versioned encoding. Does not validate: encoding hostile trees is
    /// how the decoder's checks are tested.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![TREE_FORMAT];
        codec()
            .serialize_into(&mut out, self)
            .map_err(|e| Error::Format(format!("encode tree: {e}")))?;
        Ok(out)
    }

    /// Decodes and validates a tree blob.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (&version, body) = bytes
            .split_first()
            .ok_or_else(|| Error::Format("empty tree blob".into()))?;
        if version != TREE_FORMAT {
            return Err(Error::Format(format!(
                "tree format version {version} is not supported by this build (it reads {TREE_FORMAT})"
            )));
        }
        let tree: Tree = codec()
            .deserialize(body)
            .map_err(|e| Error::Format(format!("decode tree: {e}")))?;
        tree.validate()?;
        Ok(tree)
    }

    fn validate(&self) -> Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            if !is_safe_name(&e.name) {
                return Err(Error::Integrity(format!(
                    "tree entry has an unsafe name {:?}",
                    String::from_utf8_lossy(&e.name)
                )));
            }
            if i > 0 && self.entries[i - 1].name >= e.name {
                return Err(Error::Integrity(
                    "tree entries are not sorted and unique".into(),
                ));
            }
            if e.mtime.nsec >= 1_000_000_000 || e.ctime.nsec >= 1_000_000_000 {
                return Err(Error::Integrity("tree entry has an invalid time".into()));
            }
            if (e.kind == Kind::Dir) != e.subtree.is_some()
                || (e.kind != Kind::File && !e.content.is_empty())
            {
                return Err(Error::Integrity(format!(
                    "tree entry {:?} has fields that do not fit its kind",
                    String::from_utf8_lossy(&e.name)
                )));
            }
            if e.kind == Kind::File && e.content.iter().map(|c| c.len as u64).sum::<u64>() != e.size
            {
                return Err(Error::Integrity(format!(
                    "tree entry {:?}: chunk lengths do not add up to its size",
                    String::from_utf8_lossy(&e.name)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn entry(name: &[u8], kind: Kind) -> Entry {
        Entry {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime: Time {
                sec: 1_700_000_000,
                nsec: 5,
            },
            ctime: Time::default(),
            inode: 1,
            device: 2,
            links: 1,
            size: 0,
            target: vec![],
            rdev: 0,
            xattrs: vec![],
            content: vec![],
            subtree: (kind == Kind::Dir).then_some(ChunkId([1; 32])),
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            proptest::collection::vec(1u8..=255, 1..20).prop_filter("safe", |n| is_safe_name(n)),
            any::<u32>(),
            any::<i64>(),
            0u32..1_000_000_000,
            proptest::collection::vec(any::<u32>(), 0..4),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 1..8),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ),
                0..3,
            ),
        )
            .prop_map(|(name, mode, sec, nsec, lens, xattrs)| {
                let mut e = entry(&name, Kind::File);
                e.mode = mode;
                e.mtime = Time { sec, nsec };
                e.content = lens
                    .iter()
                    .map(|&len| ChunkRef {
                        id: ChunkId([len as u8; 32]),
                        len,
                    })
                    .collect();
                e.size = lens.iter().map(|&l| l as u64).sum();
                e.xattrs = xattrs;
                e
            })
    }

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec(arb_entry(), 0..20)) {
            let mut tree = Tree { entries };
            tree.sort();
            tree.entries.dedup_by(|a, b| a.name == b.name);
            let bytes = tree.encode().unwrap();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), tree);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..500)) {
            let _ = Tree::decode(&bytes);
            let mut v = vec![TREE_FORMAT];
            v.extend_from_slice(&bytes);
            let _ = Tree::decode(&v);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [&b".."[..], b".", b"", b"a/b", b"/", b"nul\0byte"] {
            let tree = Tree {
                entries: vec![entry(bad, Kind::File)],
            };
            let err = Tree::decode(&tree.encode().unwrap()).unwrap_err();
            assert!(matches!(err, Error::Integrity(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn unsorted_duplicate_and_future_versions_are_refused() {
        let tree = Tree {
            entries: vec![entry(b"b", Kind::File), entry(b"a", Kind::File)],
        };
        assert!(matches!(
            Tree::decode(&tree.encode().unwrap()),
            Err(Error::Integrity(_))
        ));
        let tree = Tree {
            entries: vec![entry(b"a", Kind::File), entry(b"a", Kind::File)],
        };
        assert!(matches!(
            Tree::decode(&tree.encode().unwrap()),
            Err(Error::Integrity(_))
        ));
        let mut bytes = Tree::default().encode().unwrap();
        bytes[0] = TREE_FORMAT + 1;
        assert!(Tree::decode(&bytes)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        let mut bytes = Tree::default().encode().unwrap();
        bytes.push(0);
        assert!(
            matches!(Tree::decode(&bytes), Err(Error::Format(_))),
            "trailing bytes"
        );
    }

    #[test]
    fn non_utf8_names_round_trip() {
        let tree = Tree {
            entries: vec![entry(b"caf\xe9", Kind::File)],
        };
        assert_eq!(Tree::decode(&tree.encode().unwrap()).unwrap(), tree);
    }
}
