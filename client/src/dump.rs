//! `cairn dump`: one file of a snapshot as its bytes, or a directory (the
//! whole snapshot for `/`) as a tar archive, written to any `Write` (the
//! CLI's stdout), without touching the file system.
//!
//! Every chunk is verified as it is read (as by restore); a damaged chunk
//! stops the dump with [`Error::Integrity`]. Tar paths are the snapshot's
//! absolute paths without the leading `/`, as a restore lays them out under
//! its target; file data streams one chunk at a time.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::ls::lookup;
use crate::snapshot::SnapshotRecord;
use crate::tree::{ChunkRef, Entry, Kind, Tree};
use crate::vault::{BlobReader, Vault};

/// Writes `path` of `snapshot` to `out`: a regular file's bytes, a
/// directory as tar.
///
/// # Errors
///
/// [`Error::NotFound`] when the snapshot does not hold `path`,
/// [`Error::Invalid`] for a symlink or special file (nothing to print),
/// [`Error::Integrity`] for damaged data, IO errors of `out`.
pub fn dump(
    vault: &Vault,
    snapshot: &SnapshotRecord,
    path: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    let found = lookup(vault, snapshot, path)?;
    match (&found.entry, &found.tree) {
        (_, Some(tree)) => {
            let mut tar = tar::Builder::new(out);
            if let Some(e) = &found.entry {
                append(vault, &mut tar, &found.path, e)?;
            }
            append_tree(vault, &mut tar, &found.path, tree)?;
            tar.finish().map_err(write_err)
        }
        (Some(e), None) if e.kind == Kind::File => {
            let mut reader = ChunkReader::new(vault, &e.content);
            std::io::copy(&mut reader, out).map_err(|e| reader.error(e))?;
            Ok(())
        }
        _ => Err(Error::Invalid(format!(
            "{} is not a file or directory: nothing to dump",
            found.path.display()
        ))),
    }
}

fn write_err(e: std::io::Error) -> Error {
    Error::Io {
        context: "write the dump".into(),
        source: e,
    }
}

/// Appends every entry of `tree` (at `dir`) and below.
fn append_tree(
    vault: &Vault,
    tar: &mut tar::Builder<&mut dyn Write>,
    dir: &Path,
    tree: &Tree,
) -> Result<()> {
    for e in &tree.entries {
        let path = dir.join(std::ffi::OsStr::from_bytes(&e.name));
        append(vault, tar, &path, e)?;
        if let Some(sub) = e.subtree {
            append_tree(vault, tar, &path, &vault.tree(sub)?)?;
        }
    }
    Ok(())
}

/// Appends one entry with its metadata (a file with its data).
fn append(
    vault: &Vault,
    tar: &mut tar::Builder<&mut dyn Write>,
    path: &Path,
    e: &Entry,
) -> Result<()> {
    let name = path.strip_prefix("/").unwrap_or(path);
    let mut h = tar::Header::new_gnu();
    h.set_mode(e.mode & 0o7777);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime.sec.max(0) as u64);
    h.set_size(0);
    match e.kind {
        Kind::File => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(e.size);
            let mut reader = ChunkReader::new(vault, &e.content);
            return tar
                .append_data(&mut h, name, &mut reader)
                .map_err(|err| reader.error(err));
        }
        Kind::Dir => h.set_entry_type(tar::EntryType::Directory),
        Kind::Symlink => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = Path::new(std::ffi::OsStr::from_bytes(&e.target));
            return tar.append_link(&mut h, name, target).map_err(write_err);
        }
        Kind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
        Kind::CharDevice | Kind::BlockDevice => {
            h.set_entry_type(if e.kind == Kind::CharDevice {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let dev = e.rdev as libc::dev_t;
            h.set_device_major(libc::major(dev)).map_err(write_err)?;
            h.set_device_minor(libc::minor(dev)).map_err(write_err)?;
        }
    }
    tar.append_data(&mut h, name, std::io::empty())
        .map_err(write_err)
}

/// A file's content as a `Read`: one verified chunk at a time. The cause of
/// a failed read is kept, so damage is reported as damage, not as IO.
struct ChunkReader<'a> {
    vault: &'a Vault,
    chunks: std::slice::Iter<'a, ChunkRef>,
    reader: BlobReader,
    buf: Vec<u8>,
    pos: usize,
    failed: Option<Error>,
}

impl<'a> ChunkReader<'a> {
    fn new(vault: &'a Vault, chunks: &'a [ChunkRef]) -> Self {
        Self {
            vault,
            chunks: chunks.iter(),
            reader: BlobReader::default(),
            buf: vec![],
            pos: 0,
            failed: None,
        }
    }

    /// The error behind a failed copy: the chunk's, else the writer's.
    fn error(&mut self, e: std::io::Error) -> Error {
        self.failed.take().unwrap_or_else(|| write_err(e))
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(c) = self.chunks.next() else {
                return Ok(0);
            };
            match self.vault.blob_with(c.id, &mut self.reader) {
                Ok(data) if data.len() == c.len as usize => {
                    self.buf.clear();
                    self.buf.extend_from_slice(data);
                    self.pos = 0;
                }
                Ok(data) => {
                    let e = Error::Integrity(format!(
                        "chunk {} is {} bytes, the tree says {}",
                        c.id,
                        data.len(),
                        c.len
                    ));
                    self.failed = Some(e);
                    return Err(std::io::Error::other("damaged chunk"));
                }
                Err(e) => {
                    self.failed = Some(e);
                    return Err(std::io::Error::other("damaged chunk"));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::vault::memory::testing::{backup_dir, pseudo_random, small_vault};

    #[test]
    fn a_file_dumps_its_bytes_and_a_directory_a_tar_that_unpacks_to_the_source() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        let big = pseudo_random(300_000, 4);
        fs::write(src.path().join("big"), &big).unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/small"), b"small").unwrap();
        std::os::unix::fs::symlink("big", src.path().join("link")).unwrap();
        let snap = backup_dir(&vault, src.path()).snapshot;

        let mut out = vec![];
        dump(&vault, &snap, &src.path().join("big"), &mut out).unwrap();
        assert_eq!(out, big);

        let mut archive = vec![];
        dump(&vault, &snap, src.path(), &mut archive).unwrap();
        let unpacked = tempfile::tempdir().unwrap();
        tar::Archive::new(archive.as_slice())
            .unpack(unpacked.path())
            .unwrap();
        let back = unpacked.path().join(src.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read(back.join("big")).unwrap(), big);
        assert_eq!(fs::read(back.join("d/small")).unwrap(), b"small");
        assert_eq!(fs::read_link(back.join("link")).unwrap(), Path::new("big"));

        assert!(matches!(
            dump(&vault, &snap, &src.path().join("link"), &mut vec![]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            dump(&vault, &snap, &src.path().join("nope"), &mut vec![]),
            Err(Error::NotFound(_))
        ));
    }
}
