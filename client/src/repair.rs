//! Healing a vault: chunks that [`crate::check`] finds damaged or missing
//! are stored again from a source (the original files, or any copy of
//! them) whose content hashes to their ids. A chunk id is the keyed hash
//! of its plaintext, so a source chunk with the id *is* the lost chunk:
//! nothing is trusted that the id does not prove.
//!
//! The source is cut the way a backup cuts files
//! ([`crate::chunker::ChunkerParams::split_file`]), so an unchanged file
//! yields the chunks it was stored as. After storing, the vault is checked
//! again; what could not be healed is reported with every snapshot it
//! damages, and (asked explicitly) those snapshots are forgotten.
//!
//! Works where the vault stores what it is given (a local vault); an
//! account vault's cluster repairs a damaged copy from its other replicas
//! itself and dedups uploads against what it holds.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use cairn_proto::{ChunkId, SnapshotId};
use serde::Serialize;

use crate::blob::Compressor;
use crate::check::{self, CheckReport};
use crate::error::{Error, IoContext, Result};
use crate::vault::{Blobs, Sealed, Vault};

/// What to heal from, and what to do with what cannot be healed.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Files and directories to look for the lost chunks in.
    pub sources: Vec<PathBuf>,
    /// Forget the snapshots that are still damaged afterwards.
    pub forget_unhealed: bool,
}

/// What `repair` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Damaged or missing chunks found by the first check.
    pub damaged_chunks: Vec<ChunkId>,
    /// Those stored again from the sources (verified after storing).
    pub healed: Vec<ChunkId>,
    /// Source files read.
    pub files_read: u64,
    /// What the check after healing found.
    pub after: CheckReport,
    /// Snapshots forgotten because they stayed damaged (only when asked).
    pub forgotten: Vec<SnapshotId>,
}

impl RepairReport {
    /// Whether the vault is sound now (every damaged snapshot healed or
    /// forgotten).
    pub fn is_clean(&self) -> bool {
        self.after.is_clean()
            || (!self.forgotten.is_empty()
                && self.forgotten.len() == self.after.affected_snapshots.len())
    }
}

/// Heals `vault` from `opts.sources` (`done` counts chunks verified by the
/// checks).
pub fn run(vault: &Vault, opts: &RepairOptions, done: &AtomicU64) -> Result<RepairReport> {
    if vault.backend().sink().dedups() {
        return Err(Error::Invalid(
            "repair heals local vaults: an account vault's cluster repairs a damaged copy \
             from its other replicas itself (run `cairn check --read-data` to see whether \
             any chunk is lost everywhere)"
                .into(),
        ));
    }
    let before = check::run(vault, true, done)?;
    let mut report = RepairReport {
        damaged_chunks: before.damaged_chunks.clone(),
        ..RepairReport::default()
    };
    let mut wanted: HashSet<ChunkId> = before.damaged_chunks.iter().copied().collect();
    if !wanted.is_empty() {
        let mut found = vec![];
        let mut zstd = Compressor::new()?;
        for source in &opts.sources {
            find(
                vault,
                source,
                &mut wanted,
                &mut found,
                &mut zstd,
                &mut report,
            )?;
        }
        store(vault, found, &mut report)?;
    }
    report.after = if report.healed.is_empty() {
        before
    } else {
        check::run(vault, true, done)?
    };
    if opts.forget_unhealed {
        for id in &report.after.affected_snapshots {
            vault.forget_snapshot(*id)?;
            report.forgotten.push(*id);
        }
    }
    Ok(report)
}

/// Looks for the chunks in `wanted` in the files under `path`, moving each
/// one found (sealed) from `wanted` to `found`.
fn find(
    vault: &Vault,
    path: &Path,
    wanted: &mut HashSet<ChunkId>,
    found: &mut Vec<Sealed>,
    zstd: &mut Compressor,
    report: &mut RepairReport,
) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let meta = fs::symlink_metadata(path).ctx("stat", path)?;
    if meta.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(path)
            .ctx("list directory", path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .ctx("list directory", path)?;
        names.sort();
        for child in names {
            find(vault, &child, wanted, found, zstd, report)?;
        }
    } else if meta.is_file() {
        let mut file = File::open(path).ctx("open", path)?;
        report.files_read += 1;
        let codec = vault.codec();
        vault
            .config()
            .chunker
            .split_file(&mut file, meta.len(), &mut |data, _| {
                let id = codec.id(&data);
                if wanted.remove(&id) {
                    found.push(Sealed {
                        id,
                        bytes: codec.seal(&id, &data, zstd),
                        plain_len: data.len() as u64,
                        tree: false,
                    });
                }
                Ok(())
            })
            .map_err(|e| match e {
                Error::Io { source, .. } => Error::io("read", path, source),
                other => other,
            })?;
    }
    Ok(())
}

/// Stores `found` over the damaged copies, durably, and keeps as healed
/// those that read back verified.
fn store(vault: &Vault, found: Vec<Sealed>, report: &mut RepairReport) -> Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    let ids: Vec<ChunkId> = found.iter().map(|s| s.id).collect();
    vault.backend().sink().store_all(Blobs::of(found))?;
    vault.backend().flush()?;
    for id in ids {
        let sealed = vault.raw_blob(id)?;
        vault.codec().open(&id, &sealed)?;
        report.healed.push(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::memory::testing::{backup_dir, pseudo_random, small_vault, store_raw};

    #[test]
    fn a_damaged_chunk_is_healed_from_a_copy_and_the_rest_reported() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        let victim = pseudo_random(1000, 1);
        let lost = pseudo_random(1000, 2);
        fs::write(src.path().join("victim"), &victim).unwrap();
        fs::write(src.path().join("lost"), &lost).unwrap();
        let first = backup_dir(&vault, src.path());
        fs::write(src.path().join("other"), b"more").unwrap();
        let second = backup_dir(&vault, src.path());
        store_raw(&vault, vault.codec().id(&victim), vec![0; 64]);
        store_raw(&vault, vault.codec().id(&lost), vec![1; 64]);

        // The copy holds the victim only (renamed: content is what counts).
        let copy = tempfile::tempdir().unwrap();
        fs::write(copy.path().join("renamed"), &victim).unwrap();
        let opts = RepairOptions {
            sources: vec![copy.path().to_path_buf()],
            forget_unhealed: false,
        };
        let report = run(&vault, &opts, &AtomicU64::new(0)).unwrap();
        assert_eq!(report.damaged_chunks.len(), 2);
        assert_eq!(report.healed, vec![vault.codec().id(&victim)]);
        let mut affected = report.after.affected_snapshots.clone();
        affected.sort();
        let mut both = vec![first.snapshot.id, second.snapshot.id];
        both.sort();
        assert_eq!(affected, both, "both snapshots still lose `lost`");
        assert!(!report.is_clean());

        // Healing the rest from the original, then nothing is left.
        let opts = RepairOptions {
            sources: vec![src.path().to_path_buf()],
            forget_unhealed: true,
        };
        let report = run(&vault, &opts, &AtomicU64::new(0)).unwrap();
        assert_eq!(report.healed, vec![vault.codec().id(&lost)]);
        assert!(report.after.is_clean() && report.forgotten.is_empty());
        assert!(report.is_clean());
    }

    #[test]
    fn what_cannot_be_healed_is_forgotten_only_when_asked() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        let lost = pseudo_random(1000, 3);
        fs::write(src.path().join("lost"), &lost).unwrap();
        let snap = backup_dir(&vault, src.path());
        store_raw(&vault, vault.codec().id(&lost), vec![1; 64]);
        let nowhere = tempfile::tempdir().unwrap();
        let opts = RepairOptions {
            sources: vec![nowhere.path().to_path_buf()],
            forget_unhealed: true,
        };
        let report = run(&vault, &opts, &AtomicU64::new(0)).unwrap();
        assert!(report.healed.is_empty());
        assert_eq!(report.forgotten, vec![snap.snapshot.id]);
        assert!(report.is_clean());
        assert!(vault.snapshots().unwrap().is_empty());
    }
}
