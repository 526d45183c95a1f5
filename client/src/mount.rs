//! `cairn mount`: the snapshots of a vault as a read-only FUSE file system.
//!
//! ```text
//! MOUNTPOINT/snapshots/<snapshot id>/…   each snapshot's tree
//! MOUNTPOINT/snapshots/latest            symlink to the newest one
//! ```
//!
//! Inodes are handed out as directories are first listed or looked up
//! ([`Nodes`], pure); trees and chunks are read, verified and decrypted on
//! demand, so mounting a large vault costs nothing up front. Reads map a
//! byte range onto the file's chunks ([`chunk_span`], pure) and keep the
//! last chunk decrypted, since the kernel reads a file in pieces much
//! smaller than a chunk.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use cairn_proto::ChunkId;
use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyOpen, Request,
};

use crate::error::{Error, Result};
use crate::snapshot::SnapshotRecord;
use crate::tree::{ChunkRef, Entry, Kind};
use crate::vault::{BlobReader, Vault};

/// The mount is a frozen view: the kernel may cache attributes a while.
const TTL: Duration = Duration::from_secs(60);

/// What an inode shows.
#[derive(Debug, Clone)]
pub enum Node {
    /// The mount's root: holds `snapshots`.
    Root,
    /// `snapshots/`: one directory per snapshot, and `latest`.
    Snapshots,
    /// A directory whose entries are tree `tree` (a snapshot's root or a
    /// directory in it); `entry` is `None` for a snapshot's root.
    Dir {
        /// The tree to list.
        tree: ChunkId,
        /// Its tree entry (mode, owner, times).
        entry: Option<Box<Entry>>,
        /// The snapshot's time, for a snapshot's root.
        time: SystemTime,
    },
    /// Anything else a tree holds: a file, a symlink, a device, a fifo.
    Leaf(Box<Entry>),
    /// A symlink the mount itself makes (`latest`).
    Link(Vec<u8>),
}

/// A directory's children: name and inode.
type Children = Vec<(Vec<u8>, u64)>;

/// The inode table: node `ino` is `nodes[ino - 1]`; a directory's children
/// are filled in once, the first time it is looked into.
#[derive(Default)]
pub struct Nodes {
    nodes: Vec<(Node, Option<Children>)>,
}

impl Nodes {
    /// A table with the root and `snapshots/` filled in from `snapshots`
    /// (oldest first; `latest` names the last).
    pub fn new(snapshots: &[SnapshotRecord]) -> Self {
        let mut t = Self::default();
        t.push(Node::Root);
        let dir = t.push(Node::Snapshots);
        let mut children = vec![];
        for s in snapshots {
            let time = time_of(&s.time);
            let ino = t.push(Node::Dir {
                tree: s.root,
                entry: None,
                time,
            });
            children.push((s.id.to_string().into_bytes(), ino));
        }
        if let Some(last) = snapshots.last() {
            let ino = t.push(Node::Link(last.id.to_string().into_bytes()));
            children.push((b"latest".to_vec(), ino));
        }
        t.nodes[0].1 = Some(vec![(b"snapshots".to_vec(), dir)]);
        t.nodes[(dir - 1) as usize].1 = Some(children);
        t
    }

    fn push(&mut self, node: Node) -> u64 {
        self.nodes.push((node, None));
        self.nodes.len() as u64
    }

    /// The node `ino`, if it exists.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i).map(|(n, _)| n)
    }

    /// The children of directory `ino` if already filled in.
    pub fn children(&self, ino: u64) -> Option<&[(Vec<u8>, u64)]> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i)?.1.as_deref()
    }

    /// Fills in directory `ino` from its tree's entries (once).
    pub fn fill(&mut self, ino: u64, entries: Vec<Entry>) {
        let mut children = Vec::with_capacity(entries.len());
        for e in entries {
            let name = e.name.clone();
            let node = match (e.kind, e.subtree) {
                (Kind::Dir, Some(tree)) => Node::Dir {
                    tree,
                    time: SystemTime::UNIX_EPOCH,
                    entry: Some(Box::new(e)),
                },
                _ => Node::Leaf(Box::new(e)),
            };
            children.push((name, self.push(node)));
        }
        if let Some(slot) = usize::try_from(ino - 1)
            .ok()
            .and_then(|i| self.nodes.get_mut(i))
        {
            slot.1 = Some(children);
        }
    }
}

fn time_of(rfc3339: &str) -> SystemTime {
    rfc3339
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| u64::try_from(t.as_second()).ok())
        .map_or(SystemTime::UNIX_EPOCH, |s| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(s)
        })
}

/// The pieces of a file made of chunks of lengths `lens` that the byte
/// range `offset .. offset + size` covers: (chunk index, start within the
/// chunk, length), in order; nothing past the end of the file.
pub fn chunk_span(lens: &[u32], offset: u64, size: u64) -> Vec<(usize, usize, usize)> {
    let mut out = vec![];
    let (mut start, end) = (0u64, offset.saturating_add(size));
    for (i, len) in lens.iter().enumerate() {
        let stop = start + u64::from(*len);
        if stop > offset && start < end {
            let from = offset.max(start);
            let to = end.min(stop);
            out.push((i, (from - start) as usize, (to - from) as usize));
        }
        if stop >= end {
            break;
        }
        start = stop;
    }
    out
}

struct State {
    nodes: Nodes,
    reader: BlobReader,
    /// The last chunk decrypted, for the reads that follow within it.
    last: Option<(ChunkId, Vec<u8>)>,
}

/// The FUSE file system over an unlocked vault.
pub struct SnapshotFs {
    vault: Vault,
    state: Mutex<State>,
    uid: u32,
    gid: u32,
}

/// Reports a failed tree or chunk read on stderr (the reader sees only
/// `EIO`).
fn io_error(e: &Error) -> Errno {
    eprintln!("cairn mount: {e}");
    Errno::EIO
}

impl SnapshotFs {
    /// A file system showing `snapshots` of `vault`; the mount's own
    /// directories belong to `uid`/`gid`.
    pub fn new(vault: Vault, snapshots: &[SnapshotRecord], uid: u32, gid: u32) -> Self {
        Self {
            vault,
            state: Mutex::new(State {
                nodes: Nodes::new(snapshots),
                reader: BlobReader::default(),
                last: None,
            }),
            uid,
            gid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The children of directory `ino`, reading its tree the first time.
    fn children(
        &self,
        st: &mut State,
        ino: u64,
    ) -> std::result::Result<Vec<(Vec<u8>, u64)>, Errno> {
        if let Some(c) = st.nodes.children(ino) {
            return Ok(c.to_vec());
        }
        let Some(Node::Dir { tree, .. }) = st.nodes.get(ino) else {
            return Err(Errno::ENOTDIR);
        };
        let tree = self.vault.tree(*tree).map_err(|e| io_error(&e))?;
        st.nodes.fill(ino, tree.entries);
        Ok(st.nodes.children(ino).unwrap_or_default().to_vec())
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let stamp = |t: &crate::tree::Time| {
            SystemTime::UNIX_EPOCH
                + Duration::new(u64::try_from(t.sec).unwrap_or(0), t.nsec.min(999_999_999))
        };
        let (kind, perm, size, uid, gid, mtime, nlink) = match node {
            Node::Root | Node::Snapshots => (
                FileType::Directory,
                0o555,
                0,
                self.uid,
                self.gid,
                SystemTime::UNIX_EPOCH,
                2,
            ),
            Node::Dir {
                entry: None, time, ..
            } => (FileType::Directory, 0o555, 0, self.uid, self.gid, *time, 2),
            Node::Dir { entry: Some(e), .. } => (
                FileType::Directory,
                e.mode,
                0,
                e.uid,
                e.gid,
                stamp(&e.mtime),
                2,
            ),
            Node::Link(target) => (
                FileType::Symlink,
                0o777,
                target.len() as u64,
                self.uid,
                self.gid,
                SystemTime::UNIX_EPOCH,
                1,
            ),
            Node::Leaf(e) => {
                let kind = match e.kind {
                    Kind::File => FileType::RegularFile,
                    Kind::Dir => FileType::Directory,
                    Kind::Symlink => FileType::Symlink,
                    Kind::Fifo => FileType::NamedPipe,
                    Kind::CharDevice => FileType::CharDevice,
                    Kind::BlockDevice => FileType::BlockDevice,
                };
                let size = match e.kind {
                    Kind::Symlink => e.target.len() as u64,
                    _ => e.content.iter().map(|c| u64::from(c.len)).sum(),
                };
                (kind, e.mode, size, e.uid, e.gid, stamp(&e.mtime), 1)
            }
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            // Read-only: no write bits, whatever the original mode.
            perm: u16::try_from(perm & 0o7555).unwrap_or(0o444),
            nlink,
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Reads `size` bytes at `offset` of a file made of `chunks`.
    fn read_chunks(
        &self,
        st: &mut State,
        chunks: &[ChunkRef],
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>> {
        let lens: Vec<u32> = chunks.iter().map(|c| c.len).collect();
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for (i, from, len) in chunk_span(&lens, offset, size) {
            let c = chunks[i];
            if st.last.as_ref().is_none_or(|(id, _)| *id != c.id) {
                let plain = self.vault.blob_with(c.id, &mut st.reader)?.to_vec();
                if plain.len() != c.len as usize {
                    return Err(Error::Integrity(format!(
                        "chunk {} is {} bytes, the tree says {}",
                        c.id,
                        plain.len(),
                        c.len
                    )));
                }
                st.last = Some((c.id, plain));
            }
            if let Some((_, plain)) = &st.last {
                out.extend_from_slice(&plain[from..from + len]);
            }
        }
        Ok(out)
    }
}

impl fuser::Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.lock();
        let children = match self.children(&mut st, parent.0) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let found = children
            .iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
            .and_then(|(_, ino)| Some((*ino, st.nodes.get(*ino)?)));
        match found {
            Some((ino, node)) => reply.entry(&TTL, &self.attr(ino, node), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.lock();
        match st.nodes.get(ino.0) {
            Some(node) => reply.attr(&TTL, &self.attr(ino.0, node)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.lock();
        match st.nodes.get(ino.0) {
            Some(Node::Link(target)) => reply.data(target),
            Some(Node::Leaf(e)) if e.kind == Kind::Symlink => reply.data(&e.target),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.lock().nodes.get(ino.0) {
            Some(Node::Leaf(e)) if e.kind == Kind::File => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.lock();
        let chunks = match st.nodes.get(ino.0) {
            Some(Node::Leaf(e)) if e.kind == Kind::File => e.content.clone(),
            _ => return reply.error(Errno::EINVAL),
        };
        match self.read_chunks(&mut st, &chunks, offset, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(io_error(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.lock();
        let children = match self.children(&mut st, ino.0) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut all = vec![
            (ino.0, FileType::Directory, b".".to_vec()),
            (ino.0, FileType::Directory, b"..".to_vec()),
        ];
        for (name, child) in children {
            if let Some(node) = st.nodes.get(child) {
                all.push((child, self.attr(child, node).kind, name));
            }
        }
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(skip) {
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `fs` read-only at `mountpoint` on a background thread; dropping
/// or [`BackgroundSession::umount_and_join`] unmounts.
pub fn mount(fs: SnapshotFs, mountpoint: &Path) -> Result<BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("cairn".into()),
        MountOption::RO,
        MountOption::DefaultPermissions,
    ];
    fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| Error::io("mount", mountpoint, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spans_cover_exactly_the_range() {
        assert_eq!(chunk_span(&[10, 10, 10], 0, 5), [(0, 0, 5)]);
        assert_eq!(chunk_span(&[10, 10, 10], 8, 5), [(0, 8, 2), (1, 0, 3)]);
        assert_eq!(chunk_span(&[10, 10, 10], 25, 100), [(2, 5, 5)]);
        assert!(chunk_span(&[10], 10, 5).is_empty());
        assert!(chunk_span(&[], 0, 5).is_empty());
    }

    #[test]
    fn nodes_show_snapshots_and_latest_and_fill_directories_once() {
        let empty = Nodes::new(&[]);
        assert_eq!(empty.children(1).unwrap().len(), 1);
        assert!(
            empty.children(2).unwrap().is_empty(),
            "no latest without snapshots"
        );
        assert!(empty.get(0).is_none() && empty.get(3).is_none());
        let mut t = Nodes::new(&[]);
        let file = crate::vault::memory::testing::entry("f", Kind::File, 3);
        t.nodes.push((
            Node::Dir {
                tree: ChunkId([1; 32]),
                entry: None,
                time: SystemTime::UNIX_EPOCH,
            },
            None,
        ));
        assert!(t.children(3).is_none());
        t.fill(3, vec![file]);
        let kids = t.children(3).unwrap().to_vec();
        assert_eq!(kids, [(b"f".to_vec(), 4)]);
        assert!(matches!(t.get(4), Some(Node::Leaf(e)) if e.name == b"f"));
    }

    proptest! {
        #[test]
        fn spans_read_the_same_bytes_as_slicing(
            lens in proptest::collection::vec(1u32..50, 0..8),
            offset in 0u64..400,
            size in 0u64..200,
        ) {
            let whole: Vec<u8> = (0..lens.iter().sum::<u32>()).map(|i| i as u8).collect();
            let mut starts = vec![0usize];
            for l in &lens {
                starts.push(starts.last().copied().unwrap_or(0) + *l as usize);
            }
            let got: Vec<u8> = chunk_span(&lens, offset, size)
                .into_iter()
                .flat_map(|(i, from, len)| whole[starts[i] + from..starts[i] + from + len].to_vec())
                .collect();
            let a = (offset as usize).min(whole.len());
            let b = ((offset + size) as usize).min(whole.len());
            prop_assert_eq!(got, whole[a..b].to_vec());
        }
    }
}
