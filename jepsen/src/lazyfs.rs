//! A filesystem that loses unsynced writes, in the spirit of Jepsen's
//! LazyFS: a FUSE passthrough over a backing directory whose file data
//! writes (and truncations) are held in memory, per file, until the file
//! is fsynced or fdatasynced (or was opened `O_SYNC`/`O_DSYNC`). A
//! [`LazyMount::power_loss`] drops every held write and remounts, so the
//! node restarts on exactly what it made durable, as after a power cut.
//!
//! Metadata (create, mkdir, rename, unlink, permissions) reaches the
//! backing directory at once, as LazyFS does: only file contents are lazy,
//! so a directory fsync has nothing left to do. Mounting needs root (the
//! `mount(2)` call is made directly, without `fusermount3`).
//!
//! The pure part, [`Pending`] (what a file's unsynced writes make of its
//! backing bytes), is property-tested against a plain byte vector.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    SessionACL, TimeOrNow, WriteFlags,
};

use crate::error::JepsenError;

/// One unsynced change to a file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `data` written at `offset`.
    Write { offset: u64, data: Vec<u8> },
    /// The file cut (or extended with zeros) to `len` bytes.
    Truncate { len: u64 },
}

/// A file's unsynced changes, in order, over its durable bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The changes since the last sync.
    pub changes: Vec<Change>,
    /// The file's size as its writer sees it.
    pub size: u64,
}

impl Pending {
    /// No changes yet over a durable file of `durable_len` bytes.
    pub fn new(durable_len: u64) -> Pending {
        Pending {
            changes: Vec::new(),
            size: durable_len,
        }
    }

    /// Records a write.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        self.size = self.size.max(offset + data.len() as u64);
        self.changes.push(Change::Write {
            offset,
            data: data.to_vec(),
        });
    }

    /// Records a truncation (or extension) to `len`.
    pub fn truncate(&mut self, len: u64) {
        self.size = len;
        self.changes.push(Change::Truncate { len });
    }

    /// How many bytes a read of `len` at `offset` answers.
    pub fn read_len(&self, offset: u64, len: usize) -> usize {
        usize::try_from(self.size.saturating_sub(offset)).map_or(len, |left| left.min(len))
    }

    /// Lays the changes over `buf`, which holds the durable bytes at
    /// `offset` (zeros past the durable end).
    pub fn overlay(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        for change in &self.changes {
            match change {
                Change::Write { offset: at, data } => {
                    let from = (*at).max(offset);
                    let to = (at + data.len() as u64).min(end);
                    if from < to {
                        let src = usize::try_from(from - at).unwrap_or(0);
                        let dst = usize::try_from(from - offset).unwrap_or(0);
                        let n = usize::try_from(to - from).unwrap_or(0);
                        buf[dst..dst + n].copy_from_slice(&data[src..src + n]);
                    }
                }
                Change::Truncate { len } => {
                    if *len < end {
                        let dst = usize::try_from(len.saturating_sub(offset)).unwrap_or(0);
                        buf[dst..].fill(0);
                    }
                }
            }
        }
    }

    /// Applies the changes to the durable file.
    fn apply(&self, file: &File) -> std::io::Result<()> {
        for change in &self.changes {
            match change {
                Change::Write { offset, data } => file.write_all_at(data, *offset)?,
                Change::Truncate { len } => file.set_len(*len)?,
            }
        }
        file.sync_all()
    }
}

/// An open file: its backing file and whether every write is synced.
#[derive(Debug)]
struct Handle {
    file: File,
    sync: bool,
}

/// What the filesystem knows, shared with the mount handle.
#[derive(Debug, Default)]
struct State {
    /// Paths (relative to the backing directory) by inode.
    paths: HashMap<u64, PathBuf>,
    /// Unsynced changes by inode.
    pending: HashMap<u64, Pending>,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// The backing root's own inode number (FUSE calls the root 1).
    root_ino: u64,
}

/// The FUSE side.
#[derive(Debug)]
struct LazyFs {
    backing: PathBuf,
    state: Arc<Mutex<State>>,
}

/// How long the kernel may cache names and attributes.
const TTL: Duration = Duration::from_secs(1);

/// The FUSE file type of backing metadata (the database and the nodes
/// make only directories, files and, at most, symlinks).
fn kind_of(meta: &std::fs::Metadata) -> FileType {
    if meta.is_dir() {
        FileType::Directory
    } else if meta.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

impl State {
    /// The FUSE inode of a backing inode (the root and inode 1 swap).
    fn fuse_ino(&self, backing: u64) -> u64 {
        if backing == self.root_ino {
            1
        } else if backing == 1 {
            self.root_ino
        } else {
            backing
        }
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino.0 == 1 {
            return Ok(PathBuf::new());
        }
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    /// Moves every known path under `from` to under `to`.
    fn rename_paths(&mut self, from: &Path, to: &Path) {
        for p in self.paths.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                // `join("")` would add a trailing slash.
                *p = if rest.as_os_str().is_empty() {
                    to.to_owned()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    /// Forgets the unsynced data of a file about to lose its last name.
    fn forget_if_last_link(&mut self, meta: &std::fs::Metadata) {
        if meta.is_file() && meta.nlink() <= 1 {
            let ino = self.fuse_ino(meta.ino());
            self.pending.remove(&ino);
        }
    }
}

impl LazyFs {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn attr(&self, st: &State, meta: &std::fs::Metadata) -> FileAttr {
        let ino = st.fuse_ino(meta.ino());
        let size = st.pending.get(&ino).map_or(meta.size(), |p| p.size);
        let time = |s: i64, ns: i64| {
            SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(s).unwrap_or(0),
                    u32::try_from(ns).unwrap_or(0),
                )
        };
        let kind = kind_of(meta);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: u16::try_from(meta.mode() & 0o7777).unwrap_or(0o644),
            nlink: u32::try_from(meta.nlink()).unwrap_or(1),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Stats `rel`, remembers its inode's path, answers its attributes.
    fn entry(&self, st: &mut State, rel: PathBuf) -> Result<FileAttr, Errno> {
        let meta = std::fs::symlink_metadata(self.backing.join(&rel)).map_err(errno)?;
        let attr = self.attr(st, &meta);
        st.paths.insert(attr.ino.0, rel);
        Ok(attr)
    }

    fn child(&self, st: &State, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(st.path(parent)?.join(name))
    }

    /// Writes out `ino`'s unsynced changes through `file`.
    fn sync(&self, st: &mut State, ino: u64, file: &File) -> Result<(), Errno> {
        if let Some(p) = st.pending.get(&ino) {
            p.apply(file).map_err(errno)?;
            st.pending.remove(&ino);
        } else {
            file.sync_data().map_err(errno)?;
        }
        Ok(())
    }

    /// Opens the backing file of `rel` for reading and, if allowed, writing.
    fn open_backing(&self, rel: &Path, flags: i32) -> Result<File, Errno> {
        let path = self.backing.join(rel);
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|_| {
                OpenOptions::new()
                    .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
                    .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
                    .open(&path)
            })
            .map_err(errno)
    }

    fn add_handle(&self, st: &mut State, file: File, flags: i32) -> u64 {
        st.next_fh += 1;
        let sync = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        st.handles.insert(st.next_fh, Handle { file, sync });
        st.next_fh
    }
}

impl fuser::Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.lock();
        match self
            .child(&st, parent, name)
            .and_then(|rel| self.entry(&mut st, rel))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut st = self.lock();
        match st.path(ino).and_then(|rel| self.entry(&mut st, rel)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.lock();
        let result = st.path(ino).and_then(|rel| {
            let path = self.backing.join(&rel);
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if let Some(len) = size {
                let durable = std::fs::metadata(&path).map_err(errno)?.len();
                st.pending
                    .entry(ino.0)
                    .or_insert_with(|| Pending::new(durable))
                    .truncate(len);
            }
            self.entry(&mut st, rel)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.lock();
        let result = self.child(&st, parent, name).and_then(|rel| {
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(self.backing.join(&rel))
                .map_err(errno)?;
            self.entry(&mut st, rel)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.lock();
        let result = self.child(&st, parent, name).and_then(|rel| {
            let path = self.backing.join(&rel);
            let meta = std::fs::symlink_metadata(&path).map_err(errno)?;
            std::fs::remove_file(&path).map_err(errno)?;
            st.forget_if_last_link(&meta);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let st = self.lock();
        match self
            .child(&st, parent, name)
            .and_then(|rel| std::fs::remove_dir(self.backing.join(rel)).map_err(errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let mut st = self.lock();
        let result = self.child(&st, parent, name).and_then(|from| {
            let to = self.child(&st, newparent, newname)?;
            if let Ok(meta) = std::fs::symlink_metadata(self.backing.join(&to)) {
                st.forget_if_last_link(&meta);
            }
            std::fs::rename(self.backing.join(&from), self.backing.join(&to)).map_err(errno)?;
            st.rename_paths(&from, &to);
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.lock();
        let result = st
            .path(ino)
            .and_then(|rel| self.open_backing(&rel, flags.0))
            .map(|file| self.add_handle(&mut st, file, flags.0));
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.lock();
        let result = self.child(&st, parent, name).and_then(|rel| {
            let mut opts = OpenOptions::new();
            opts.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & libc::O_EXCL != 0 {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
            let file = opts.open(self.backing.join(&rel)).map_err(errno)?;
            let attr = self.entry(&mut st, rel)?;
            if flags & libc::O_TRUNC != 0 && attr.size > 0 {
                st.pending
                    .entry(attr.ino.0)
                    .or_insert_with(|| Pending::new(attr.size))
                    .truncate(0);
            }
            let fh = self.add_handle(&mut st, file, flags);
            Ok((attr, fh))
        });
        match result {
            Ok((mut attr, fh)) => {
                attr.size = st.pending.get(&attr.ino.0).map_or(attr.size, |p| p.size);
                reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                )
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.lock();
        let Some(handle) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let want = usize::try_from(size).unwrap_or(0);
        let mut buf = match st.pending.get(&ino.0) {
            Some(p) => vec![0; p.read_len(offset, want)],
            None => vec![0; want],
        };
        let mut got = 0;
        while got < buf.len() {
            match handle.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return reply.error(errno(e)),
            }
        }
        match st.pending.get(&ino.0) {
            Some(p) => p.overlay(offset, &mut buf),
            None => buf.truncate(got),
        }
        reply.data(&buf);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.lock();
        let Some(handle) = st.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let (sync, file) = match handle.file.try_clone() {
            Ok(f) => (handle.sync, f),
            Err(e) => return reply.error(errno(e)),
        };
        let durable = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return reply.error(errno(e)),
        };
        st.pending
            .entry(ino.0)
            .or_insert_with(|| Pending::new(durable))
            .write(offset, data);
        if sync {
            if let Err(e) = self.sync(&mut st, ino.0, &file) {
                return reply.error(e);
            }
        }
        reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.lock();
        let file = match st.handles.get(&fh.0).map(|h| h.file.try_clone()) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return reply.error(errno(e)),
            None => return reply.error(Errno::EBADF),
        };
        match self.sync(&mut st, ino.0, &file) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Metadata is durable at once (see the module docs).
        reply.ok();
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
        let rel = match st.path(ino) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let dir = match std::fs::read_dir(self.backing.join(&rel)) {
            Ok(d) => d,
            Err(e) => return reply.error(errno(e)),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, OsStr::new(".").to_owned()),
            (ino.0, FileType::Directory, OsStr::new("..").to_owned()),
        ];
        for e in dir.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let child = st.fuse_ino(meta.ino());
            st.paths.insert(child, rel.join(e.file_name()));
            let kind = kind_of(&meta);
            entries.push((child, kind, e.file_name()));
        }
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(skip) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Ok(path) = std::ffi::CString::new(self.backing.as_os_str().as_encoded_bytes()) else {
            return reply.error(Errno::EINVAL);
        };
        // SAFETY: statvfs on a NUL-terminated path into a zeroed struct.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
            return reply.error(errno(std::io::Error::last_os_error()));
        }
        reply.statfs(
            s.f_blocks,
            s.f_bfree,
            s.f_bavail,
            s.f_files,
            s.f_ffree,
            u32::try_from(s.f_bsize).unwrap_or(4096),
            u32::try_from(s.f_namemax).unwrap_or(255),
            u32::try_from(s.f_frsize).unwrap_or(4096),
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Preallocation that keeps the size changes no byte a reader sees.
        if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            reply.ok();
        } else {
            reply.error(Errno::EOPNOTSUPP);
        }
    }
}

/// A mounted lazy filesystem: `mountpoint` shows `backing`, holding
/// unsynced writes in memory. Unmounted on drop.
pub struct LazyMount {
    backing: PathBuf,
    mountpoint: PathBuf,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for LazyMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyMount")
            .field("backing", &self.backing)
            .field("mountpoint", &self.mountpoint)
            .finish()
    }
}

impl LazyMount {
    /// Mounts `backing` (created if missing) at `mountpoint` (created if
    /// missing). Needs root.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<LazyMount, JepsenError> {
        for d in [backing, mountpoint] {
            std::fs::create_dir_all(d)
                .map_err(JepsenError::io(format!("creating {}", d.display())))?;
        }
        let mut m = LazyMount {
            backing: backing.to_owned(),
            mountpoint: mountpoint.to_owned(),
            state: Arc::new(Mutex::new(State::default())),
            session: None,
        };
        m.attach()?;
        Ok(m)
    }

    fn attach(&mut self) -> Result<(), JepsenError> {
        let root_ino = std::fs::metadata(&self.backing)
            .map_err(JepsenError::io(format!(
                "reading {}",
                self.backing.display()
            )))?
            .ino();
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State {
            root_ino,
            ..State::default()
        };
        let fs = LazyFs {
            backing: self.backing.clone(),
            state: self.state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("cairn-lazyfs".into()),
            MountOption::DefaultPermissions,
        ];
        config.acl = SessionACL::All;
        let session =
            fuser::spawn_mount(fs, &self.mountpoint, &config).map_err(JepsenError::io(format!(
                "mounting the lazy filesystem at {}",
                self.mountpoint.display()
            )))?;
        self.session = Some(session);
        Ok(())
    }

    /// Bytes written but not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.pending
            .values()
            .flat_map(|p| &p.changes)
            .map(|c| match c {
                Change::Write { data, .. } => data.len() as u64,
                Change::Truncate { .. } => 0,
            })
            .sum()
    }

    /// A power cut: aborts the FUSE connection, unmounts (dropping the
    /// kernel's cached pages too), forgets every unsynced write and mounts
    /// again. Whatever used the filesystem must be dead already.
    pub fn power_loss(&mut self) -> Result<(), JepsenError> {
        self.detach()?;
        self.attach()
    }

    /// Aborts the connection, then unmounts. Aborting first matters: every
    /// node's `ip netns exec` copied this mount into its own mount
    /// namespace, so an unmount here alone would leave the connection (and
    /// the session thread) alive.
    fn detach(&mut self) -> Result<(), JepsenError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let dev = std::fs::metadata(&self.mountpoint)
            .map_err(JepsenError::io(format!(
                "reading {}",
                self.mountpoint.display()
            )))?
            .dev();
        abort_connection(dev)?;
        session.umount_and_join().map_err(JepsenError::io(format!(
            "unmounting {}",
            self.mountpoint.display()
        )))
    }
}

/// Where the kernel lists FUSE connections (the `fusectl` filesystem).
const CONNECTIONS: &str = "/sys/fs/fuse/connections";

/// Aborts FUSE connection `dev` through `fusectl`, mounting that first if
/// the system has not.
fn abort_connection(dev: u64) -> Result<(), JepsenError> {
    let abort = Path::new(CONNECTIONS).join(dev.to_string()).join("abort");
    if !abort.exists() {
        let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
        let (src, target, fstype) = (c("fusectl"), c(CONNECTIONS), c("fusectl"));
        // SAFETY: mount(2) with NUL-terminated strings and no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(JepsenError::io(format!(
                "mounting fusectl on {CONNECTIONS}"
            ))(std::io::Error::last_os_error()));
        }
    }
    std::fs::write(&abort, b"1").map_err(JepsenError::io(format!("writing {}", abort.display())))
}

impl Drop for LazyMount {
    fn drop(&mut self) {
        let _ = self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same changes made to a plain vector.
    fn model(durable: &[u8], changes: &[Change]) -> Vec<u8> {
        let mut v = durable.to_vec();
        for c in changes {
            match c {
                Change::Write { offset, data } => {
                    let end = *offset as usize + data.len();
                    if v.len() < end {
                        v.resize(end, 0);
                    }
                    v[*offset as usize..end].copy_from_slice(data);
                }
                Change::Truncate { len } => v.resize(*len as usize, 0),
            }
        }
        v
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (0u64..300, proptest::collection::vec(any::<u8>(), 0..50))
                .prop_map(|(offset, data)| Change::Write { offset, data }),
            (0u64..300).prop_map(|len| Change::Truncate { len }),
        ]
    }

    proptest! {
        #[test]
        fn reads_through_pending_changes_match_the_model(
            durable in proptest::collection::vec(any::<u8>(), 0..200),
            changes in proptest::collection::vec(change(), 0..12),
            offset in 0u64..350, len in 0usize..120,
        ) {
            let mut p = Pending::new(durable.len() as u64);
            for c in &changes {
                match c {
                    Change::Write { offset, data } => p.write(*offset, data),
                    Change::Truncate { len } => p.truncate(*len),
                }
            }
            let want = model(&durable, &changes);
            prop_assert_eq!(p.size, want.len() as u64);
            let mut buf = vec![0; p.read_len(offset, len)];
            let start = (offset as usize).min(durable.len());
            let end = (start + buf.len()).min(durable.len());
            if (offset as usize) < durable.len() {
                buf[..end - start].copy_from_slice(&durable[start..end]);
            }
            p.overlay(offset, &mut buf);
            let from = (offset as usize).min(want.len());
            let to = (from + len).min(want.len());
            prop_assert_eq!(&buf[..], &want[from..to]);
        }
    }

    #[test]
    fn syncing_applies_changes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abcdef").unwrap();
        let mut p = Pending::new(6);
        p.write(4, b"XYZ");
        p.truncate(2);
        p.write(3, b"Q");
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        p.apply(&f).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ab\0Q");
    }
}
