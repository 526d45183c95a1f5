//! Reading file-system metadata into tree entries, and the small OS helpers
//! (host name, times) the backup and restore paths share.

use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use std::time::SystemTime;

use crate::tree::{Entry, Kind, Time};

/// The entry kind of `meta`, or `None` for sockets (not restorable, skipped).
pub fn kind_of(meta: &Metadata) -> Option<Kind> {
    let t = meta.file_type();
    if t.is_file() {
        Some(Kind::File)
    } else if t.is_dir() {
        Some(Kind::Dir)
    } else if t.is_symlink() {
        Some(Kind::Symlink)
    } else if t.is_fifo() {
        Some(Kind::Fifo)
    } else if t.is_char_device() {
        Some(Kind::CharDevice)
    } else if t.is_block_device() {
        Some(Kind::BlockDevice)
    } else {
        None
    }
}

/// An entry for `name` with the metadata of `meta` (content and subtree
/// left empty for the caller to fill).
pub fn entry_from(name: Vec<u8>, kind: Kind, meta: &Metadata) -> Entry {
    Entry {
        name,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: Time::of(meta.mtime(), meta.mtime_nsec()),
        ctime: Time::of(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        size: if kind == Kind::File { meta.len() } else { 0 },
        target: vec![],
        rdev: if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            meta.rdev()
        } else {
            0
        },
        xattrs: vec![],
        content: vec![],
        subtree: None,
    }
}

/// Extended attributes of `path`, sorted by name: of the link itself, or
/// with `follow` of what a symlink there points to. File systems without
/// xattr support yield none.
pub fn read_xattrs(path: &Path, follow: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    if follow {
        collect_xattrs(xattr::list_deref(path), |n| xattr::get_deref(path, n))
    } else {
        collect_xattrs(xattr::list(path), |n| xattr::get(path, n))
    }
}

/// Extended attributes of an open file, sorted by name (one path lookup
/// fewer than [`read_xattrs`] when the file is open anyway).
pub fn read_file_xattrs(file: &std::fs::File) -> Vec<(Vec<u8>, Vec<u8>)> {
    use xattr::FileExt;
    collect_xattrs(file.list_xattr(), |n| file.get_xattr(n))
}

fn collect_xattrs(
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(names) = names else {
        return vec![];
    };
    let mut out: Vec<_> = names
        .filter_map(|n| Some((n.as_bytes().to_vec(), get(&n).ok().flatten()?)))
        .collect();
    out.sort();
    out
}

/// `path` with a leading `~` (alone or before `/`) replaced by `$HOME`, as
/// a shell would have done had the argument not been quoted.
pub fn expand_tilde(path: &Path) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    match (bytes, home) {
        ([b'~'], Some(home)) => home.into(),
        ([b'~', b'/', rest @ ..], Some(home)) => {
            Path::new(&home).join(std::ffi::OsStr::from_bytes(rest))
        }
        _ => path.to_path_buf(),
    }
}

/// This machine's host name (the default device name).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Now, RFC 3339 UTC with nanoseconds (fixed width, so it sorts as text).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes a private file (the profile, a vault's config and snapshot
/// records, which hold salts, wrapped keys and a token) atomically and
/// durably: temporary file created 0600, fsync, rename, fsync
/// of the directory (created 0700 when missing).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .ctx("create", &dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .ctx("create", &tmp)?;
    // The mode given to open is filtered by the umask; make sure.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .ctx("chmod", &tmp)?;
    f.write_all(bytes).ctx("write", &tmp)?;
    f.sync_all().ctx("sync", &tmp)?;
    drop(f);
    fs::rename(&tmp, path).ctx("rename into", path)?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .ctx("sync", &dir)
}
