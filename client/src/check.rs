//! Vault verification.
//!
//! The structural check walks every snapshot's trees (each tree read,
//! decrypted and validated once) and confirms every referenced chunk is
//! present. `--read-data` additionally reads every stored chunk, verifies its
//! store checksum and AEAD tag, decompresses it and re-hashes it against its
//! id, in parallel; damaged chunks are then mapped back to the files that
//! use them so the report names what a restore would lose. Where reads are
//! network round trips ([`crate::vault::Backend::batches_reads`], an
//! account vault), `--read-data` instead fetches and verifies every chunk
//! the snapshots reference, in parallel batches.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::{ChunkId, SnapshotId};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::JobOutcome;
use crate::tree::Kind;
use crate::vault::{BlobReader, Vault};

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees read.
    pub trees: u64,
    /// Chunks whose data was read and verified (`--read-data`).
    pub chunks_read: u64,
    /// Problems found, one line each.
    pub problems: Vec<String>,
    /// `snapshot-id:/path` of every file with missing or damaged data, in
    /// every snapshot that holds it.
    pub damaged_files: Vec<String>,
    /// Every snapshot a restore of which would lose data.
    pub affected_snapshots: Vec<SnapshotId>,
    /// Chunks files reference that are damaged or missing (what
    /// `cairn repair` looks for in a source).
    pub damaged_chunks: Vec<ChunkId>,
}

impl CheckReport {
    /// Whether the vault is sound.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl JobOutcome for CheckReport {
    /// Failed when a problem was found.
    fn job_end(&self) -> FinishJob {
        let clean = self.is_clean();
        let mut log = format!(
            "{} snapshots, {} trees, {} chunks read",
            self.snapshots, self.trees, self.chunks_read
        );
        for p in &self.problems {
            log.push('\n');
            log.push_str(p);
        }
        FinishJob {
            status: if clean {
                JobStatus::Succeeded
            } else {
                JobStatus::Error
            },
            files: 0,
            bytes: 0,
            error: (!clean).then(|| format!("{} problem(s)", self.problems.len())),
            log,
        }
    }
}

/// One tree as the check keeps it: its subdirectories and its files' chunks
/// (names as stored), or why it could not be read.
enum Node {
    Read {
        dirs: Vec<(Vec<u8>, ChunkId)>,
        files: Vec<(Vec<u8>, Vec<ChunkId>)>,
    },
    Unreadable(String),
}

/// Checks `vault`; `read_data` also verifies every chunk's contents.
///
/// Each distinct tree is read once, but damage is reported in every
/// snapshot whose trees lead to it: a file shared by many snapshots
/// through an unchanged directory names them all.
pub fn run(vault: &Vault, read_data: bool, done: &AtomicU64) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let listed = !vault.backend().batches_reads();
    let mut bad: HashSet<ChunkId> = if read_data && listed {
        verify_all(vault, &mut report, done)?
    } else {
        HashSet::new()
    };
    let snapshots = vault.snapshots_unverified()?;
    let mut nodes: HashMap<ChunkId, Node> = HashMap::new();
    for snap in &snapshots {
        report.snapshots += 1;
        if let Err(e) = snap.verified_meta(vault.keys()) {
            report.problems.push(e.to_string());
        }
        let mut stack = vec![snap.root];
        while let Some(id) = stack.pop() {
            if nodes.contains_key(&id) {
                continue;
            }
            let node = match vault.tree(id) {
                Ok(tree) => {
                    report.trees += 1;
                    let (mut dirs, mut files) = (vec![], vec![]);
                    for entry in tree.entries {
                        match (entry.kind, entry.subtree) {
                            (Kind::Dir, Some(sub)) => {
                                stack.push(sub);
                                dirs.push((entry.name, sub));
                            }
                            (Kind::File, _) if !entry.content.is_empty() => files
                                .push((entry.name, entry.content.iter().map(|c| c.id).collect())),
                            _ => {}
                        }
                    }
                    Node::Read { dirs, files }
                }
                Err(e) => Node::Unreadable(e.to_string()),
            };
            nodes.insert(id, node);
        }
    }
    let mut ids: Vec<ChunkId> = nodes
        .values()
        .flat_map(|n| match n {
            Node::Read { files, .. } => files.iter().flat_map(|(_, c)| c.iter().copied()).collect(),
            Node::Unreadable(_) => vec![],
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if read_data && !listed {
        // Reading every stored chunk over the network would cost more than
        // the snapshots need: verify every chunk they reference (trees were
        // verified by the walk).
        bad = verify_ids(vault, &ids, &mut report, done)?;
    }
    let unchecked: Vec<ChunkId> = ids.iter().copied().filter(|id| !bad.contains(id)).collect();
    let missing: HashSet<ChunkId> = vault.missing(&unchecked)?.into_iter().collect();
    report.damaged_chunks = ids
        .into_iter()
        .filter(|id| bad.contains(id) || missing.contains(id))
        .collect();
    let mut damage = Damage {
        nodes: &nodes,
        bad: &bad,
        missing: &missing,
        memo: HashMap::new(),
        walking: HashSet::new(),
    };
    for snap in &snapshots {
        if damage.reaches(snap.root) {
            report.affected_snapshots.push(snap.id);
            damage.walking = HashSet::from([snap.root]);
            damage.report(
                snap.root,
                &PathBuf::from("/"),
                &snap.short_id(),
                &mut report,
            );
        }
    }
    Ok(report)
}

/// Where damage lies among the trees the check read.
struct Damage<'a> {
    nodes: &'a HashMap<ChunkId, Node>,
    bad: &'a HashSet<ChunkId>,
    missing: &'a HashSet<ChunkId>,
    /// Whether a tree leads to damage, computed once per tree.
    memo: HashMap<ChunkId, bool>,
    /// The trees from a snapshot's root to the one being reported.
    walking: HashSet<ChunkId>,
}

impl Damage<'_> {
    /// The damaged or missing chunk among `chunks`, with what is wrong.
    fn lost(&self, chunks: &[ChunkId]) -> Option<(ChunkId, &'static str)> {
        chunks.iter().find_map(|c| {
            if self.bad.contains(c) {
                Some((*c, "damaged"))
            } else if self.missing.contains(c) {
                Some((*c, "missing"))
            } else {
                None
            }
        })
    }

    /// Whether tree `id` is unreadable or leads to a file with lost data.
    fn reaches(&mut self, id: ChunkId) -> bool {
        if let Some(&known) = self.memo.get(&id) {
            return known;
        }
        // Cut cycles (a hostile tree naming an ancestor): not damage here.
        self.memo.insert(id, false);
        let nodes = self.nodes;
        let found = match nodes.get(&id) {
            None | Some(Node::Unreadable(_)) => true,
            Some(Node::Read { dirs, files }) => {
                files.iter().any(|(_, c)| self.lost(c).is_some())
                    || dirs.iter().any(|(_, sub)| self.reaches(*sub))
            }
        };
        self.memo.insert(id, found);
        found
    }

    /// Adds a problem and a damaged path for everything lost below tree
    /// `id` at `path` of snapshot `snap`.
    fn report(&mut self, id: ChunkId, path: &std::path::Path, snap: &str, out: &mut CheckReport) {
        let nodes = self.nodes;
        match nodes.get(&id) {
            None => {}
            Some(Node::Unreadable(e)) => {
                out.problems
                    .push(format!("snapshot {snap}: {}: {e}", path.display()));
                out.damaged_files.push(format!("{snap}:{}", path.display()));
            }
            Some(Node::Read { dirs, files }) => {
                for (name, chunks) in files {
                    if let Some((c, what)) = self.lost(chunks) {
                        let child = path.join(std::ffi::OsStr::from_bytes(name));
                        out.problems.push(format!(
                            "snapshot {snap}: {}: chunk {c} is {what}",
                            child.display()
                        ));
                        out.damaged_files
                            .push(format!("{snap}:{}", child.display()));
                    }
                }
                for (name, sub) in dirs {
                    // A tree naming one above it is reported once, not
                    // followed round.
                    if self.reaches(*sub) && self.walking.insert(*sub) {
                        let child = path.join(std::ffi::OsStr::from_bytes(name));
                        self.report(*sub, &child, snap, out);
                        self.walking.remove(sub);
                    }
                }
            }
        }
    }
}

/// Fetches (for an account vault, prefetches a batch at a time) and
/// verifies `ids` in parallel batches; returns the damaged or missing ones
/// (each with a problem line).
fn verify_ids(
    vault: &Vault,
    ids: &[ChunkId],
    report: &mut CheckReport,
    done: &AtomicU64,
) -> Result<HashSet<ChunkId>> {
    const BATCH: usize = 16;
    let bad = Mutex::new(Vec::new());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Workers of a batched backend mostly wait on the network.
    let threads = if vault.backend().batches_reads() {
        2 * cores + 2
    } else {
        cores
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (bad, failure, next) = (&bad, &failure, &next);
            s.spawn(move || {
                let mut reader = BlobReader::default();
                loop {
                    let start = next.fetch_add(BATCH, Ordering::Relaxed);
                    if start >= ids.len() {
                        break;
                    }
                    let batch = &ids[start..(start + BATCH).min(ids.len())];
                    if let Err(e) = vault.prefetch(batch, &mut reader) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                    for id in batch {
                        if let Err(e) = vault.blob_with(*id, &mut reader) {
                            if let Ok(mut b) = bad.lock() {
                                b.push((*id, e.to_string()));
                            }
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    vault.drop_prefetched(&mut reader);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    report.chunks_read = ids.len() as u64;
    let bad = bad
        .into_inner()
        .map_err(|_| Error::Invalid("a check worker panicked".into()))?;
    for (_, msg) in &bad {
        report.problems.push(msg.clone());
    }
    Ok(bad.into_iter().map(|(id, _)| id).collect())
}

/// Reads and verifies every chunk of the vault; returns the damaged ids.
fn verify_all(
    vault: &Vault,
    report: &mut CheckReport,
    done: &AtomicU64,
) -> Result<HashSet<ChunkId>> {
    let mut ids = vec![];
    vault.backend().list_chunks(&mut |id, _| ids.push(id))?;
    verify_ids(vault, &ids, report, done)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::vault::memory::testing::{
        backup_dir, pseudo_random, small_batched_vault, small_vault, store_raw,
    };

    /// The id of a file at most the chunker's minimum long (one chunk).
    fn data_chunk(vault: &Vault, data: &[u8]) -> ChunkId {
        vault.codec().id(data)
    }

    #[test]
    fn a_sound_vault_is_clean_and_a_damaged_or_missing_chunk_names_its_file() {
        damage_is_found(&small_vault());
    }

    #[test]
    fn batched_reads_verify_the_referenced_chunks() {
        damage_is_found(&small_batched_vault());
    }

    fn damage_is_found(vault: &Vault) {
        let src = tempfile::tempdir().unwrap();
        // Files below the chunker's minimum are one chunk: their id is known.
        let victim = pseudo_random(1000, 1);
        let gone = pseudo_random(1000, 2);
        fs::write(src.path().join("victim"), &victim).unwrap();
        fs::write(src.path().join("gone"), &gone).unwrap();
        fs::write(src.path().join("bystander"), pseudo_random(1000, 3)).unwrap();
        backup_dir(vault, src.path());
        let clean = run(vault, true, &AtomicU64::new(0)).unwrap();
        assert!(clean.is_clean(), "{:?}", clean.problems);
        assert_eq!(clean.snapshots, 1);
        assert!(clean.trees >= 2, "the root and the source directory");
        assert!(clean.chunks_read >= 3);

        store_raw(vault, data_chunk(vault, &victim), vec![0; 64]);
        vault
            .backend()
            .delete_chunks(&[data_chunk(vault, &gone)], None)
            .unwrap();
        let report = run(vault, true, &AtomicU64::new(0)).unwrap();
        assert!(!report.is_clean());
        let files = report.damaged_files.join("\n");
        assert!(
            files.contains("/victim") && files.contains("/gone"),
            "{files}"
        );
        assert!(!files.contains("bystander"), "{files}");
        assert!(report.problems.iter().any(|p| p.contains("is missing")));
        // Without --read-data only the missing chunk is noticed.
        let structural = run(vault, false, &AtomicU64::new(0)).unwrap();
        assert_eq!(
            structural.damaged_files.len(),
            1,
            "{:?}",
            structural.problems
        );
        assert_eq!(structural.chunks_read, 0);
    }
}
