//! Listing a snapshot's contents.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    /// Modification time, RFC 3339.
    pub mtime: String,
}

/// Lists `path` (the whole snapshot for `/`) and everything below it.
pub fn list(vault: &Vault, snapshot: &SnapshotRecord, path: &Path) -> Result<Vec<Listed>> {
    let mut tree = vault.tree(snapshot.root)?;
    let mut prefix = PathBuf::from("/");
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    let mut out = vec![];
    for (i, name) in names.iter().enumerate() {
        let entry = tree.find(name).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "{} is not in snapshot {}",
                path.display(),
                snapshot.short_id()
            ))
        })?;
        prefix.push(std::ffi::OsStr::from_bytes(name));
        if i + 1 == names.len() {
            out.push(listed(&prefix, &entry));
        }
        match entry.subtree {
            Some(sub) => tree = vault.tree(sub)?,
            None if i + 1 == names.len() => return Ok(out),
            None => {
                return Err(Error::NotFound(format!(
                    "{} is not a directory",
                    prefix.display()
                )))
            }
        }
    }
    walk(vault, &tree, &prefix, &mut out)?;
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

fn listed(path: &Path, e: &Entry) -> Listed {
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
        mtime: e.mtime.rfc3339(),
    }
}
