//! The backup pipeline: walk → read → chunk → hash → dedup → compress →
//! seal → store, in parallel with bounded memory.
//!
//! ```text
//!  walker ──FileJob──▶ workers (read, FastCDC, BLAKE3, dedup, zstd, AEAD) ──sealed──▶ writer
//!    │                   ▲   │ chunk lists                                           ▲
//!    │                   └───┘ SealJob (chunks of large files, shared out)           │
//!    └──DirJob──▶ finisher (waits for its files, encodes trees) ──SealJob──▶ workers ┘
//! ```
//!
//! - The *walker* (calling thread) visits directories depth-first in name
//!   order. A file whose size, mtime, ctime and inode match the parent
//!   snapshot's entry keeps that entry's chunk list (and xattrs) and is not
//!   read.
//! - *Workers* (one per core, plus one to overlap IO) read and chunk changed
//!   files. A chunk already in the vault or already queued in this run is
//!   skipped. Small files are sealed where they were read (no hand-off); the
//!   chunks of a large file are offered to the other workers, which prefer
//!   sealing queued chunks over starting a new file, so one big file still
//!   keeps every core busy.
//! - The *finisher* receives directories in post-order (in bundles of up
//!   to 32), so each tree's children are done when it is encoded; the last
//!   one is the root.
//! - The *writer* is the vault's [`crate::vault::Sink`]
//!   ([`crate::vault::Backend::sink`]): a local vault's batches skip the
//!   WAL and are flushed before the commit; an account vault's upload
//!   stage checks whole batches with one `missing` request and uploads only
//!   what the vault lacks. When the sink dedups against the vault itself
//!   ([`crate::vault::Sink::dedups`]), the workers do not ask the vault
//!   about each chunk. The snapshot record is committed last, after
//!   [`crate::vault::Backend::flush`].
//!
//! Every channel is bounded, so the data in flight is a few chunks per
//! thread whatever the size of the backup. A failure anywhere disconnects
//! the channels and unwinds the pipeline; the first real error is reported
//! and no snapshot is committed.
//!
//! Files: this one wires the threads and commits the snapshot; `walk.rs`
//! is the walker, `pipeline.rs` the workers and the finisher, `select.rs`
//! the pure decisions (unchanged files, the parent); excludes are
//! [`crate::pattern`].

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::Instant;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId};
use crossbeam_channel::bounded;
use serde::Serialize;

mod pipeline;
mod select;
mod walk;

use crate::error::{Error, Result};
use crate::fsmeta;
use crate::jobs::JobOutcome;
use crate::pattern::Patterns;
use crate::snapshot::{Bound, SnapshotMeta, SnapshotRecord, SnapshotStats};
use crate::source::{self, PathTrie};
use crate::vault::{blob_channel, LockKind, Vault};
use pipeline::{finisher, joined, worker, DirJob, FileJob, Lanes, SealJob, Shared};
use walk::Walker;

/// Which snapshot a backup compares against to skip unchanged files.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same device and item (or, without an
    /// item, the same paths).
    #[default]
    Auto,
    /// Read every file, and (where the vault is asked about each chunk, a
    /// local vault) verify each chunk it already holds, storing a damaged
    /// one again: `backup --force` heals from an intact source.
    None,
    /// This snapshot (id, prefix or `latest`).
    Snapshot(String),
}

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Paths to back up, as given (resolved by [`source::resolve`]).
    pub paths: Vec<PathBuf>,
    /// Exclude patterns ([`crate::pattern`]: relative ones match at any
    /// depth, absolute ones are anchored).
    pub excludes: Vec<String>,
    /// Protected item label.
    pub item: Option<String>,
    /// Device name recorded in the snapshot.
    pub device: String,
    /// Parent snapshot selection.
    pub parent: ParentChoice,
    /// The running backup job (account vaults: required to commit).
    pub job: Option<JobId>,
    /// Leave out directories holding a `CACHEDIR.TAG` (the cache
    /// directory tagging convention).
    pub exclude_caches: bool,
    /// Do not descend into another file system below a source.
    pub one_file_system: bool,
    /// Tags sealed with the snapshot (for `--tag` selection).
    pub tags: Vec<String>,
}

/// Live counters for progress display, read by another thread while the
/// backup runs.
#[derive(Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// File bytes finished (read or skipped as unchanged).
    pub bytes: AtomicU64,
    /// Files and bytes the backup is expected to reach: the parent
    /// snapshot's totals (0 without a parent), so a bar can show a
    /// percentage and an ETA without a pre-scan walking the tree twice.
    pub expected_files: AtomicU64,
    /// See [`Progress::expected_files`].
    pub expected_bytes: AtomicU64,
    /// Entries skipped so far (unreadable, sockets): the warnings to come.
    pub errors: AtomicU64,
    /// The file a worker started reading last.
    pub current: Mutex<PathBuf>,
    /// Told of every file as the walker decides about it (`cairn -v`
    /// lists them); called on the walking thread, so it should be quick.
    pub on_file: Option<Box<FileListener>>,
}

/// What [`Progress::on_file`] calls: how the file at the path compares
/// with the parent.
pub type FileListener = dyn Fn(Change, &Path) + Send + Sync;

impl Progress {
    /// Records that a worker started reading `path`.
    fn reading(&self, path: &Path) {
        if let Ok(mut current) = self.current.lock() {
            current.clear();
            current.push(path);
        }
    }
}

/// How a backed-up file compares with the parent snapshot's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The parent has no such file: read.
    New,
    /// The parent's differs in size, times or inode: read again.
    Changed,
    /// As in the parent: its chunk list is reused, it is not read.
    Unmodified,
}

/// How many files of a backup were new, changed or unmodified against its
/// parent (as the walker saw them: a file that then cannot be read is
/// counted here and named in the warnings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Files the parent did not have.
    #[serde(rename = "files_new")]
    pub new: u64,
    /// Files the parent had in another state.
    #[serde(rename = "files_changed")]
    pub changed: u64,
    /// Files as the parent had them.
    #[serde(rename = "files_unmodified")]
    pub unmodified: u64,
}

impl Changes {
    /// Counts one file.
    fn count(&mut self, change: Change) {
        match change {
            Change::New => self.new += 1,
            Change::Changed => self.changed += 1,
            Change::Unmodified => self.unmodified += 1,
        }
    }
}

/// The outcome of a committed backup. Its JSON (`cairn --json backup`)
/// flattens the snapshot's id, root and counters beside the lists.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The committed record.
    pub snapshot: SnapshotRecord,
    /// The parent used for change detection.
    pub parent: Option<SnapshotId>,
    /// Files new, changed and unmodified against the parent.
    pub changes: Changes,
    /// Entries the operating system showed that are missing from the
    /// snapshot (unreadable, sockets): the backup is incomplete.
    pub warnings: Vec<String>,
    /// Things worth saying that lose nothing (a source saved as a symlink,
    /// the vault not backed up into itself).
    pub notes: Vec<String>,
    /// Files that changed while they were read (stored as read).
    pub changed_during_read: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

impl Serialize for BackupReport {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            id: SnapshotId,
            parent: Option<SnapshotId>,
            root: ChunkId,
            #[serde(flatten)]
            stats: &'a SnapshotStats,
            #[serde(flatten)]
            changes: Changes,
            warnings: &'a [String],
            skipped: usize,
            notes: &'a [String],
            changed_during_read: &'a [String],
            seconds: f64,
        }
        Json {
            id: self.snapshot.id,
            parent: self.parent,
            root: self.snapshot.root,
            stats: &self.snapshot.stats,
            changes: self.changes,
            warnings: &self.warnings,
            skipped: self.warnings.len(),
            notes: &self.notes,
            changed_during_read: &self.changed_during_read,
            seconds: self.seconds,
        }
        .serialize(serializer)
    }
}

impl JobOutcome for BackupReport {
    /// Warnings when entries were left out or changed while read.
    fn job_end(&self) -> FinishJob {
        let status = if self.warnings.is_empty() && self.changed_during_read.is_empty() {
            JobStatus::Succeeded
        } else {
            JobStatus::Warning
        };
        let log = self
            .warnings
            .iter()
            .cloned()
            .chain(
                self.changed_during_read
                    .iter()
                    .map(|c| format!("{c} changed while it was read")),
            )
            .collect::<Vec<_>>()
            .join("\n");
        FinishJob {
            status,
            files: self.snapshot.stats.files,
            bytes: self.snapshot.stats.bytes,
            error: None,
            log,
        }
    }
}

/// Runs a backup into `vault` and commits its snapshot.
pub fn run(vault: &Vault, opts: &BackupOptions, progress: &Progress) -> Result<BackupReport> {
    // Held until the snapshot is committed: no prune may delete what this
    // backup reuses in between.
    let _lock = vault.backend().lock(LockKind::Backup)?;
    let started = Instant::now();
    let time = fsmeta::now_rfc3339();
    let sources = source::resolve(&opts.paths)?;
    let trie = PathTrie::new(&sources)?;
    let shown_paths: Vec<String> = sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Snapshot(spec) => Some(vault.find_snapshot(spec)?),
        ParentChoice::Auto => {
            let all = vault.snapshots()?;
            select::auto_parent(
                &all,
                &opts.device,
                opts.item.as_deref(),
                &shown_paths,
                |s| Ok(s.open_meta(vault.keys())?.paths),
            )?
            .cloned()
        }
    };
    if let Some(p) = &parent {
        progress.expected_files.store(p.stats.files, Relaxed);
        progress.expected_bytes.store(p.stats.bytes, Relaxed);
    }
    let parent_root = parent.as_ref().map(|p| vault.tree(p.root)).transpose()?;
    let excludes = Patterns::new(&opts.excludes, "--exclude")?;

    let sink = vault.backend().sink();
    let shared = Shared {
        vault,
        sink_dedups: sink.dedups(),
        seen: Mutex::new(HashSet::new()),
        verify_existing: matches!(opts.parent, ParentChoice::None),
        progress,
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let (file_tx, file_rx) = bounded::<FileJob>(64);
    let (dir_tx, dir_rx) = bounded::<Vec<DirJob>>(8);
    let (seal_tx, seal_rx) = bounded::<SealJob>(2);
    let (write_tx, write_rx) = blob_channel(2);

    let outcome = std::thread::scope(|s| {
        let shared = &shared;
        let worker_handles: Vec<_> = (0..workers)
            .map(|_| {
                let lanes = Lanes {
                    files: file_rx.clone(),
                    seal_rx: seal_rx.clone(),
                    seal_tx: seal_tx.clone(),
                    write: write_tx.clone(),
                };
                s.spawn(move || worker(shared, lanes))
            })
            .collect();
        let finisher_handle = {
            let lanes = Lanes {
                files: crossbeam_channel::never(),
                seal_rx: seal_rx.clone(),
                seal_tx: seal_tx.clone(),
                write: write_tx.clone(),
            };
            s.spawn(move || finisher(shared, dir_rx, lanes))
        };
        let sink = &sink;
        let writer_handle = s.spawn(move || sink.store_all(write_rx));
        drop((file_rx, seal_rx, seal_tx, write_tx));

        let mut walker = Walker {
            shared,
            vault_dir: vault
                .backend()
                .dir()
                .and_then(|d| fs::metadata(d).ok())
                .map(|m| (m.dev(), m.ino())),
            excludes: &excludes,
            exclude_caches: opts.exclude_caches,
            one_file_system: opts.one_file_system,
            file_tx,
            dir_tx,
            dirs: vec![],
            next_dir: 0,
            warnings: vec![],
            notes: vec![],
            entries: 0,
            changes: Changes::default(),
        };
        let walked = walker.walk_root(&trie, parent_root);
        let walk_warnings = std::mem::take(&mut walker.warnings);
        let notes = std::mem::take(&mut walker.notes);
        let entries = walker.entries;
        let changes = walker.changes;
        drop(walker);

        let mut errors = vec![];
        if let Err(e) = walked {
            errors.push(e);
        }
        let finished = joined(finisher_handle.join());
        for h in worker_handles {
            errors.extend(joined(h.join()).err());
        }
        let written = joined(writer_handle.join());
        let finished = finished.map_err(|e| errors.push(e)).ok();
        let written = written.map_err(|e| errors.push(e)).ok();
        // A disconnected channel is a symptom; report the cause.
        errors.sort_by_key(|e| matches!(e, Error::Aborted));
        match (errors.into_iter().next(), finished, written) {
            (None, Some(f), Some(w)) => Ok((f, w, walk_warnings, notes, entries, changes)),
            (Some(e), _, _) => Err(e),
            _ => Err(Error::Aborted),
        }
    });
    let (finished, written, mut warnings, notes, entries, changes) = outcome?;
    warnings.extend(finished.warnings);
    let stats = SnapshotStats {
        files: finished.files,
        dirs: finished.dirs,
        bytes: finished.bytes,
        files_read: finished.files_read,
        new_bytes: written.plain_bytes,
        new_chunks: written.chunks,
        stored_bytes: written.sealed_bytes,
    };
    let done = Done {
        started,
        time,
        paths: shown_paths,
        root: finished.root,
        stats,
        entries,
        parent: parent.map(|p| p.id),
        changes,
        warnings,
        notes,
        changed: finished.changed,
    };
    commit(vault, opts, done)
}

/// Backs up everything `data` yields as one file `name` at the root of a
/// new snapshot (`backup --stdin`: a database dump piped in, say); the
/// snapshot's path is `/name`. Chunks dedup as a file's do.
pub fn run_stdin(
    vault: &Vault,
    opts: &BackupOptions,
    name: &str,
    data: &mut dyn std::io::Read,
    progress: &Progress,
) -> Result<BackupReport> {
    if name.is_empty() || name.contains(['/', '\0']) || name == "." || name == ".." {
        return Err(Error::Invalid(format!(
            "--stdin-filename {name:?}: give a file name (no '/')"
        )));
    }
    let _lock = vault.backend().lock(LockKind::Backup)?;
    let started = Instant::now();
    let time = fsmeta::now_rfc3339();
    let sink = vault.backend().sink();
    let shared = Shared {
        vault,
        sink_dedups: sink.dedups(),
        seen: Mutex::new(HashSet::new()),
        verify_existing: false,
        progress,
    };
    let (write_tx, write_rx) = blob_channel(2);
    let (seal_tx, seal_rx) = bounded::<SealJob>(1);
    let (root, size, written) = std::thread::scope(|s| {
        let sink = &sink;
        let writer = s.spawn(move || sink.store_all(write_rx));
        let lanes = Lanes {
            files: crossbeam_channel::never(),
            seal_rx,
            seal_tx,
            write: write_tx,
        };
        let built = pipeline::stream_file(&shared, &lanes, name, data);
        drop(lanes);
        match (built, joined(writer.join())) {
            (Ok((root, size)), Ok(w)) => Ok((root, size, w)),
            // A closed channel is a symptom; the writer's error the cause.
            (Err(Error::Aborted), Err(e)) | (Err(e), _) | (_, Err(e)) => Err(e),
        }
    })?;
    let stats = SnapshotStats {
        files: 1,
        dirs: 0,
        bytes: size,
        files_read: 1,
        new_bytes: written.plain_bytes,
        new_chunks: written.chunks,
        stored_bytes: written.sealed_bytes,
    };
    let done = Done {
        started,
        time,
        paths: vec![format!("/{name}")],
        root,
        stats,
        entries: 1,
        parent: None,
        changes: Changes {
            new: 1,
            ..Changes::default()
        },
        warnings: vec![],
        notes: vec![],
        changed: vec![],
    };
    commit(vault, opts, done)
}

/// What a backup's data phase produced, for [`commit`].
struct Done {
    started: Instant,
    time: String,
    paths: Vec<String>,
    root: ChunkId,
    stats: SnapshotStats,
    entries: u64,
    parent: Option<SnapshotId>,
    changes: Changes,
    warnings: Vec<String>,
    notes: Vec<String>,
    changed: Vec<String>,
}

/// Makes the written chunks durable, then seals and commits the snapshot
/// record (the last step: a record only ever names durable data).
fn commit(vault: &Vault, opts: &BackupOptions, done: Done) -> Result<BackupReport> {
    vault.backend().flush()?;
    let id = SnapshotId::random();
    let meta = SnapshotMeta {
        paths: done.paths,
        hostname: fsmeta::hostname(),
        excludes: opts.excludes.clone(),
        warnings: select::first_lines(&done.warnings, select::META_WARNINGS_MAX),
        stats: (!vault.backend().keeps_record_stats()).then(|| done.stats.clone()),
        bound: None,
        tags: opts.tags.clone(),
    };
    let mut record = SnapshotRecord {
        format: SNAPSHOT_FORMAT,
        id,
        vault: vault.config().vault_id,
        device: opts.device.clone(),
        item: opts.item.clone(),
        time: done.time,
        finished: fsmeta::now_rfc3339(),
        root: done.root,
        stats: done.stats,
        meta: vec![],
    };
    let meta = SnapshotMeta {
        bound: Some(Bound::of(&record, done.entries)?),
        ..meta
    };
    record.meta = meta.seal(vault.keys(), vault.config().vault_id, id)?;
    vault.commit_snapshot(&record, opts.job)?;
    Ok(BackupReport {
        snapshot: record,
        parent: done.parent,
        changes: done.changes,
        warnings: done.warnings,
        notes: done.notes,
        changed_during_read: done.changed,
        seconds: done.started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::restore::{self, RestoreOptions};
    use crate::vault::memory::testing::{
        backup_dir, pseudo_random, small_batched_vault, small_vault,
    };

    #[test]
    fn a_backup_stores_each_chunk_once_and_restores() {
        backup_and_restore(&small_vault());
    }

    #[test]
    fn a_backup_through_batched_reads_restores_and_seals_its_counters() {
        let vault = small_batched_vault();
        backup_and_restore(&vault);
        // The record's counters came back from the sealed metadata.
        let listed = &vault.snapshots().unwrap()[0];
        assert_eq!(listed.stats.files, 3);
        let meta = listed.open_meta(vault.keys()).unwrap();
        assert_eq!(meta.stats.as_ref(), Some(&listed.stats));
        assert_eq!(
            small_vault_meta_stats(),
            None,
            "a local-like vault keeps its counters in the clear only"
        );
    }

    fn small_vault_meta_stats() -> Option<SnapshotStats> {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"a").unwrap();
        let report = backup_dir(&vault, src.path());
        report.snapshot.open_meta(vault.keys()).unwrap().stats
    }

    fn backup_and_restore(vault: &Vault) {
        let src = tempfile::tempdir().unwrap();
        let data = pseudo_random(100_000, 1);
        fs::write(src.path().join("a"), &data).unwrap();
        fs::write(src.path().join("copy"), &data).unwrap();
        fs::create_dir(src.path().join("d")).unwrap();
        fs::write(src.path().join("d/small"), b"small").unwrap();

        let report = backup_dir(vault, src.path());
        let stats = &report.snapshot.stats;
        assert_eq!((stats.files, stats.files_read), (3, 3));
        assert_eq!(stats.bytes, 200_005);
        // The copy adds no data: new bytes are one copy plus "small" plus trees.
        assert!(stats.new_bytes < 110_000, "{stats:?}");
        assert!(report.warnings.is_empty() && report.parent.is_none());
        assert_eq!(vault.snapshots().unwrap().len(), 1);

        let out = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: out.path().to_path_buf(),
            ..RestoreOptions::default()
        };
        let restored = restore::run(
            vault,
            &report.snapshot,
            &opts,
            &restore::Progress::default(),
        )
        .unwrap();
        assert!(restored.damaged.is_empty() && restored.failed.is_empty());
        let back = out.path().join(src.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read(back.join("copy")).unwrap(), data);
        assert_eq!(fs::read(back.join("d/small")).unwrap(), b"small");
    }

    #[test]
    fn an_unchanged_file_is_not_read_again_and_adds_nothing() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), pseudo_random(50_000, 2)).unwrap();
        fs::write(src.path().join("b"), pseudo_random(50_000, 3)).unwrap();
        let first = backup_dir(&vault, src.path());
        let second = backup_dir(&vault, src.path());
        assert_eq!(second.parent, Some(first.snapshot.id));
        assert_eq!(second.snapshot.stats.files_read, 0);
        // No data is new; only trees of the directories above the source
        // may be (other tests change the times of the shared /tmp).
        let levels = src.path().components().count() as u64;
        assert!(
            second.snapshot.stats.new_chunks < levels,
            "{:?}",
            second.snapshot.stats
        );

        fs::write(src.path().join("b"), pseudo_random(50_000, 4)).unwrap();
        fs::write(src.path().join("c"), b"c").unwrap();
        let third = backup_dir(&vault, src.path());
        assert_eq!(third.snapshot.stats.files_read, 2);
        assert!(third.snapshot.stats.new_chunks > 0);
        assert_eq!(
            third.changes,
            Changes {
                new: 1,
                changed: 1,
                unmodified: 1
            }
        );
        assert_eq!(first.changes.new, 2);
        assert_eq!(second.changes.unmodified, 2);
    }

    #[test]
    fn the_walker_tells_each_file_and_hard_links_count_once() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), pseudo_random(10_000, 5)).unwrap();
        fs::hard_link(src.path().join("a"), src.path().join("b")).unwrap();
        let told = std::sync::Arc::new(Mutex::new(vec![]));
        let tell = told.clone();
        let progress = Progress {
            on_file: Some(Box::new(move |c, p| {
                tell.lock().unwrap().push((c, p.to_path_buf()));
            })),
            ..Progress::default()
        };
        let opts = BackupOptions {
            paths: vec![src.path().to_path_buf()],
            ..opts_named()
        };
        let report = run(&vault, &opts, &progress).unwrap();
        assert_eq!(report.snapshot.stats.files, 2);
        assert_eq!(report.snapshot.stats.bytes, 10_000, "one content");
        assert_eq!(progress.errors.load(Relaxed), 0);
        assert_eq!(
            *told.lock().unwrap(),
            [
                (Change::New, src.path().join("a")),
                (Change::New, src.path().join("b"))
            ]
        );
    }

    #[test]
    fn standard_input_becomes_one_file_at_the_root() {
        for vault in [small_vault(), small_batched_vault()] {
            let data = pseudo_random(200_000, 9);
            let report = run_stdin(
                &vault,
                &opts_named(),
                "dump.sql",
                &mut data.as_slice(),
                &Progress::default(),
            )
            .unwrap();
            assert_eq!(report.snapshot.stats.bytes, 200_000);
            let meta = report.snapshot.open_meta(vault.keys()).unwrap();
            assert_eq!(meta.paths, ["/dump.sql"]);
            let out = tempfile::tempdir().unwrap();
            let opts = RestoreOptions {
                target: out.path().to_path_buf(),
                ..RestoreOptions::default()
            };
            restore::run(
                &vault,
                &report.snapshot,
                &opts,
                &restore::Progress::default(),
            )
            .unwrap();
            assert_eq!(fs::read(out.path().join("dump.sql")).unwrap(), data);
            let bad = run_stdin(
                &vault,
                &opts_named(),
                "../x",
                &mut &b""[..],
                &Progress::default(),
            );
            assert!(matches!(bad, Err(Error::Invalid(_))));
        }
    }

    fn opts_named() -> BackupOptions {
        BackupOptions {
            device: "test".into(),
            ..Default::default()
        }
    }

    #[test]
    fn skipped_entries_make_the_job_end_with_warnings() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"a").unwrap();
        let mut report = backup_dir(&vault, src.path());
        assert_eq!(report.job_end().status, JobStatus::Succeeded);
        report
            .warnings
            .push("/x/secret: permission denied (skipped)".into());
        let end = report.job_end();
        assert_eq!(end.status, JobStatus::Warning);
        assert!(end.log.contains("/x/secret"), "{}", end.log);
    }

    #[test]
    fn the_report_json_flattens_the_snapshot_counters() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"a").unwrap();
        let report = backup_dir(&vault, src.path());
        let json = serde_json::to_value(&report).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "bytes",
                "changed_during_read",
                "dirs",
                "files",
                "files_changed",
                "files_new",
                "files_read",
                "files_unmodified",
                "id",
                "new_bytes",
                "new_chunks",
                "notes",
                "parent",
                "root",
                "seconds",
                "skipped",
                "stored_bytes",
                "warnings"
            ]
        );
        assert_eq!(json["id"], report.snapshot.id.to_hex());
        assert_eq!(json["files"], 1);
        assert_eq!(json["skipped"], 0);
    }
}
