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
//! - The *finisher* receives directories in post-order, so each tree's
//!   children are done when it is encoded; the last one is the root.
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

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId};
use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;

mod select;

use crate::blob::Compressor;
use crate::error::{Error, IoContext, Result};
use crate::fsmeta::{self, entry_from, kind_of, read_xattrs};
use crate::jobs::JobOutcome;
use crate::snapshot::{Bound, SnapshotMeta, SnapshotRecord, SnapshotStats};
use crate::source::{self, PathTrie};
use crate::tree::{ChunkRef, Entry, Kind, Tree};
use crate::vault::{Sealed, Vault};
use select::{Excludes, FileStat};

/// Which snapshot a backup compares against to skip unchanged files.
#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same device and item (or, without an
    /// item, the same paths).
    #[default]
    Auto,
    /// Read every file.
    None,
    /// This snapshot (id, prefix or `latest`).
    Snapshot(String),
}

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Paths to back up, as given (resolved by [`source::resolve`]).
    pub paths: Vec<PathBuf>,
    /// Glob patterns: with a `/` they match the absolute path, otherwise the
    /// file name.
    pub excludes: Vec<String>,
    /// Protected item label.
    pub item: Option<String>,
    /// Device name recorded in the snapshot.
    pub device: String,
    /// Parent snapshot selection.
    pub parent: ParentChoice,
    /// The running backup job (account vaults: required to commit).
    pub job: Option<JobId>,
}

/// Live counters for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// File bytes finished (read or skipped as unchanged).
    pub bytes: AtomicU64,
}

/// The outcome of a committed backup. Its JSON (`cairn --json backup`)
/// flattens the snapshot's id, root and counters beside the lists.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The committed record.
    pub snapshot: SnapshotRecord,
    /// The parent used for change detection.
    pub parent: Option<SnapshotId>,
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
            snapshot_id: SnapshotId,
            parent: Option<SnapshotId>,
            root: ChunkId,
            #[serde(flatten)]
            stats: &'a SnapshotStats,
            warnings: &'a [String],
            skipped: usize,
            notes: &'a [String],
            changed_during_read: &'a [String],
            seconds: f64,
        }
        Json {
            snapshot_id: self.snapshot.id,
            parent: self.parent,
            root: self.snapshot.root,
            stats: &self.snapshot.stats,
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
            JobStatus::Warnings
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
    let parent_root = parent.as_ref().map(|p| vault.tree(p.root)).transpose()?;
    let excludes = Excludes::new(&opts.excludes)?;

    let sink = vault.backend().sink();
    let shared = Shared {
        vault,
        sink_dedups: sink.dedups(),
        seen: Mutex::new(HashSet::new()),
        progress,
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
    let (file_tx, file_rx) = bounded::<FileJob>(64);
    let (dir_tx, dir_rx) = bounded::<DirJob>(256);
    let (seal_tx, seal_rx) = bounded::<SealJob>(2);
    let (write_tx, write_rx) = bounded::<Sealed>(2);

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
            file_tx,
            dir_tx,
            next_dir: 0,
            warnings: vec![],
            notes: vec![],
            entries: 0,
        };
        let walked = walker.walk_root(&trie, parent_root);
        let walk_warnings = std::mem::take(&mut walker.warnings);
        let notes = std::mem::take(&mut walker.notes);
        let entries = walker.entries;
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
        errors.sort_by_key(|e| matches!(e, Error::Invalid(m) if m == ABORTED));
        match (errors.into_iter().next(), finished, written) {
            (None, Some(f), Some(w)) => Ok((f, w, walk_warnings, notes, entries)),
            (Some(e), _, _) => Err(e),
            _ => Err(Error::Invalid(ABORTED.into())),
        }
    });
    let (finished, written, mut warnings, notes, entries) = outcome?;
    vault.backend().flush()?;

    warnings.extend(finished.warnings);
    let id = SnapshotId::random();
    let stats = SnapshotStats {
        files: finished.files,
        dirs: finished.dirs,
        bytes: finished.bytes,
        files_read: finished.files_read,
        new_bytes: written.plain_bytes,
        new_chunks: written.chunks,
        stored_bytes: written.sealed_bytes,
    };
    let meta = SnapshotMeta {
        paths: shown_paths,
        hostname: fsmeta::hostname(),
        excludes: opts.excludes.clone(),
        warnings: select::first_lines(&warnings, select::META_WARNINGS_MAX),
        stats: (!vault.backend().keeps_record_stats()).then(|| stats.clone()),
        bound: None,
    };
    let mut record = SnapshotRecord {
        format: SNAPSHOT_FORMAT,
        id,
        vault: vault.config().vault_id,
        device: opts.device.clone(),
        item: opts.item.clone(),
        time,
        finished: fsmeta::now_rfc3339(),
        root: finished.root,
        stats,
        meta: vec![],
    };
    let meta = SnapshotMeta {
        bound: Some(Bound::of(&record, entries)?),
        ..meta
    };
    record.meta = meta.seal(vault.keys(), vault.config().vault_id, id)?;
    vault.commit_snapshot(&record, opts.job)?;
    Ok(BackupReport {
        snapshot: record,
        parent: parent.map(|p| p.id),
        warnings,
        notes,
        changed_during_read: finished.changed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

const ABORTED: &str = "backup pipeline aborted";

/// Flattens a worker thread's join result.
fn joined<T>(r: std::thread::Result<Result<T>>) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::Invalid("a backup worker thread panicked".into())))
}

fn aborted<T>(_: T) -> Error {
    Error::Invalid(ABORTED.into())
}

struct Shared<'a> {
    vault: &'a Vault,
    /// The sink skips what the vault holds (in batches): workers only
    /// dedup within the run.
    sink_dedups: bool,
    /// Chunk ids stored or queued by this run.
    seen: Mutex<HashSet<ChunkId>>,
    progress: &'a Progress,
}

impl Shared<'_> {
    /// Whether `id` must be sealed and stored: not seen in this run and not
    /// already in the vault (asked here unless the sink asks in batches).
    fn is_new(&self, id: ChunkId) -> Result<bool> {
        let inserted = self.seen.lock().map_err(aborted)?.insert(id);
        Ok(inserted && (self.sink_dedups || !self.vault.backend().contains(id)?))
    }

    /// Seals and queues a plaintext blob for writing if it is new. With
    /// `share`, the sealing is offered to idle workers first.
    fn offer(
        &self,
        id: ChunkId,
        data: Vec<u8>,
        lanes: &Lanes,
        zstd: &mut Compressor,
        (share, tree): (bool, bool),
    ) -> Result<()> {
        if !self.is_new(id)? {
            return Ok(());
        }
        let job = SealJob { id, data, tree };
        let job = if share {
            match lanes.seal_tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(e) => e.into_inner(),
            }
        } else {
            job
        };
        self.seal(job, &lanes.write, zstd)
    }

    fn seal(&self, job: SealJob, write: &Sender<Sealed>, zstd: &mut Compressor) -> Result<()> {
        let bytes = self.vault.codec().seal(&job.id, &job.data, zstd);
        let plain_len = job.data.len() as u64;
        drop(job.data);
        write
            .send(Sealed {
                id: job.id,
                bytes,
                plain_len,
                tree: job.tree,
            })
            .map_err(aborted)
    }
}

/// The channels a worker (or the finisher) uses.
struct Lanes {
    files: Receiver<FileJob>,
    seal_rx: Receiver<SealJob>,
    seal_tx: Sender<SealJob>,
    write: Sender<Sealed>,
}

/// Files of one directory for one worker: small files travel in batches so
/// a tree of many small files costs few hand-offs between threads; a large
/// file travels alone so its chunks can be shared out.
struct FileJob {
    files: Vec<(PathBuf, Metadata)>,
    result: Sender<Vec<FileOutcome>>,
}

/// Files per batch, and bytes per batch, before it is sent.
const BATCH_FILES: usize = 64;
const BATCH_FILE_BYTES: u64 = 8 * 1024 * 1024;

enum FileOutcome {
    Read {
        content: Vec<ChunkRef>,
        size: u64,
        changed: bool,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Could not be read; the file is left out with a warning.
    Skipped(String),
}

enum Pending {
    Ready,
    /// Outcome `index` of the directory's batch `batch`.
    File {
        batch: usize,
        index: usize,
        path: PathBuf,
    },
    Dir(u64),
}

struct DirJob {
    index: u64,
    entries: Vec<(Entry, Pending)>,
    /// One receiver per batch of this directory's files, in order.
    batches: Vec<Receiver<Vec<FileOutcome>>>,
}

/// The batch of files a directory walk is filling.
#[derive(Default)]
struct Batch {
    files: Vec<(PathBuf, Metadata)>,
    bytes: u64,
}

struct SealJob {
    id: ChunkId,
    data: Vec<u8>,
    tree: bool,
}

struct Walker<'a, 's> {
    shared: &'a Shared<'s>,
    /// The vault's own directory (device, inode), never backed up into itself.
    vault_dir: Option<(u64, u64)>,
    excludes: &'a Excludes,
    file_tx: Sender<FileJob>,
    dir_tx: Sender<DirJob>,
    next_dir: u64,
    /// Entries left out of the snapshot.
    warnings: Vec<String>,
    /// Remarks that lose nothing.
    notes: Vec<String>,
    /// Entries put in trees so far (an upper bound: the finisher may still
    /// drop files it could not read).
    entries: u64,
}

impl Walker<'_, '_> {
    fn walk_root(&mut self, trie: &PathTrie, parent: Option<Tree>) -> Result<()> {
        if trie.whole {
            return self
                .walk_dir(Path::new("/"), None, parent.as_ref())
                .map(|_| ());
        }
        self.walk_dir(Path::new("/"), Some(trie), parent.as_ref())
            .map(|_| ())
    }

    /// Walks directory `path`; `trie` limits it to the requested paths when
    /// it is on the way to them. Returns the directory's job index.
    fn walk_dir(
        &mut self,
        path: &Path,
        trie: Option<&PathTrie>,
        parent: Option<&Tree>,
    ) -> Result<u64> {
        // Listed entries keep their `DirEntry` so metadata is read relative
        // to the open directory (fstatat), not by re-walking the full path.
        let names: Vec<(Vec<u8>, Option<fs::DirEntry>)> = match trie {
            Some(t) => t.children.keys().map(|n| (n.clone(), None)).collect(),
            None => {
                let mut names = vec![];
                for entry in fs::read_dir(path).ctx("list directory", path)? {
                    let entry = entry.ctx("list directory", path)?;
                    names.push((entry.file_name().as_bytes().to_vec(), Some(entry)));
                }
                names.sort_by(|a, b| a.0.cmp(&b.0));
                names
            }
        };
        let mut entries = Vec::with_capacity(names.len());
        let (mut batch, mut batches) = (Batch::default(), vec![]);
        for (name, dir_entry) in names {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            let sub = trie.and_then(|t| t.children.get(&name));
            if sub.is_none() && self.excludes.excluded(&child, &name) {
                continue;
            }
            // On the way to a source, follow the path as the kernel does; a
            // source itself (unless given with a trailing slash) and
            // everything inside one is taken as it is.
            let follow = sub.is_some_and(|s| !s.whole || s.follow);
            let meta = match dir_entry {
                Some(d) => d.metadata(),
                None if follow => fs::metadata(&child),
                None => fs::symlink_metadata(&child),
            };
            let meta = match meta {
                Ok(m) => m,
                Err(e) if trie.is_none() => {
                    self.warnings
                        .push(format!("{}: {e} (skipped)", child.display()));
                    continue;
                }
                Err(e) => return Err(Error::io("back up", &child, e)),
            };
            if meta.is_dir() && self.vault_dir == Some((meta.dev(), meta.ino())) {
                self.notes.push(format!(
                    "{}: the vault is not backed up into itself (left out)",
                    child.display()
                ));
                continue;
            }
            let Some(kind) = kind_of(&meta) else {
                self.warnings.push(format!(
                    "{}: sockets cannot be backed up (skipped)",
                    child.display()
                ));
                continue;
            };
            let old = parent
                .and_then(|p| p.find(&name))
                .filter(|e| e.kind == kind);
            if kind == Kind::Symlink && sub.is_some() {
                let target = fs::read_link(&child).unwrap_or_default();
                self.notes.push(format!(
                    "{} is a symlink: saved as the link, its target {} was not followed \
                     (write {}/ to back up what it points to)",
                    child.display(),
                    target.display(),
                    child.display()
                ));
            }
            let mut entry = entry_from(name, kind, &meta);
            if kind != Kind::File {
                entry.xattrs = read_xattrs(&child, follow);
            }
            let pending = match kind {
                Kind::Dir => {
                    let old_tree = match old.and_then(|o| o.subtree) {
                        Some(id) => Some(self.shared.vault.tree(id)?),
                        None => None,
                    };
                    let walk_trie = sub.filter(|s| !s.whole);
                    match self.walk_dir(&child, walk_trie, old_tree.as_ref()) {
                        Ok(index) => Pending::Dir(index),
                        Err(Error::Io { context, source }) if trie.is_none() => {
                            self.warnings.push(format!("{context}: {source} (skipped)"));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Kind::File => match old {
                    Some(o) if select::unchanged(o, &FileStat::of(&meta)) => {
                        entry.content = o.content.clone();
                        entry.xattrs = o.xattrs.clone();
                        self.shared.progress.files.fetch_add(1, Ordering::Relaxed);
                        self.shared
                            .progress
                            .bytes
                            .fetch_add(meta.len(), Ordering::Relaxed);
                        Pending::Ready
                    }
                    _ => {
                        let large = meta.len() > self.shared.vault.config().chunker.max_size as u64;
                        if large {
                            // Alone in its batch, so its chunks are shared out at once.
                            self.send_batch(&mut batch, &mut batches)?;
                        }
                        let pending = Pending::File {
                            batch: batches.len(),
                            index: batch.files.len(),
                            path: child.clone(),
                        };
                        batch.bytes += meta.len();
                        batch.files.push((child, meta));
                        if large
                            || batch.files.len() >= BATCH_FILES
                            || batch.bytes >= BATCH_FILE_BYTES
                        {
                            self.send_batch(&mut batch, &mut batches)?;
                        }
                        pending
                    }
                },
                Kind::Symlink => {
                    let target = fs::read_link(&child).ctx("read symlink", &child)?;
                    entry.target = target.as_os_str().as_bytes().to_vec();
                    Pending::Ready
                }
                Kind::Fifo | Kind::CharDevice | Kind::BlockDevice => Pending::Ready,
            };
            entries.push((entry, pending));
        }
        self.send_batch(&mut batch, &mut batches)?;
        self.entries += entries.len() as u64;
        let index = self.next_dir;
        self.next_dir += 1;
        self.dir_tx
            .send(DirJob {
                index,
                entries,
                batches,
            })
            .map_err(aborted)?;
        Ok(index)
    }

    /// Sends the files gathered in `batch` (if any) to the workers.
    fn send_batch(
        &self,
        batch: &mut Batch,
        batches: &mut Vec<Receiver<Vec<FileOutcome>>>,
    ) -> Result<()> {
        if batch.files.is_empty() {
            return Ok(());
        }
        let (tx, rx) = bounded(1);
        let files = std::mem::take(&mut batch.files);
        batch.bytes = 0;
        self.file_tx
            .send(FileJob { files, result: tx })
            .map_err(aborted)?;
        batches.push(rx);
        Ok(())
    }
}

fn worker(shared: &Shared<'_>, lanes: Lanes) -> Result<()> {
    let mut zstd = Compressor::new()?;
    loop {
        // Queued chunks first: they hold memory and may block a reader.
        if let Ok(job) = lanes.seal_rx.try_recv() {
            shared.seal(job, &lanes.write, &mut zstd)?;
            continue;
        }
        crossbeam_channel::select_biased! {
            recv(lanes.seal_rx) -> job => {
                if let Ok(job) = job {
                    shared.seal(job, &lanes.write, &mut zstd)?;
                }
            }
            recv(lanes.files) -> job => {
                let Ok(job) = job else {
                    break;
                };
                let mut outcomes = Vec::with_capacity(job.files.len());
                for (path, meta) in &job.files {
                    outcomes.push(match read_file(shared, path, meta, &lanes, &mut zstd) {
                        Ok(o) => o,
                        Err(Error::Io { context, source }) => {
                            FileOutcome::Skipped(format!("{context}: {source} (skipped)"))
                        }
                        Err(e) => return Err(e),
                    });
                    shared.progress.files.fetch_add(1, Ordering::Relaxed);
                }
                // The finisher may have gone away after an error elsewhere.
                let _ = job.result.send(outcomes);
            }
        }
    }
    // No more files: drop our own sender (so the queue can disconnect), then
    // help drain what other workers and the finisher still queue.
    let Lanes {
        files,
        seal_rx,
        seal_tx,
        write,
    } = lanes;
    drop((files, seal_tx));
    while let Ok(job) = seal_rx.recv() {
        shared.seal(job, &write, &mut zstd)?;
    }
    Ok(())
}

fn read_file(
    shared: &Shared<'_>,
    path: &Path,
    meta: &Metadata,
    lanes: &Lanes,
    zstd: &mut Compressor,
) -> Result<FileOutcome> {
    let codec = shared.vault.codec();
    let params = shared.vault.config().chunker;
    let mut file = File::open(path).ctx("open", path)?;
    let xattrs = fsmeta::read_file_xattrs(&file);
    let mut content = vec![];
    let mut size = 0u64;
    let mut take = |data: Vec<u8>, share: bool, zstd: &mut Compressor| -> Result<()> {
        let id = codec.id(&data);
        let len = data.len() as u32;
        size += len as u64;
        shared
            .progress
            .bytes
            .fetch_add(len as u64, Ordering::Relaxed);
        content.push(ChunkRef { id, len });
        shared.offer(id, data, lanes, zstd, (share, false))
    };
    if meta.len() <= params.max_size as u64 {
        let data = read_small(&mut file, meta.len()).ctx("read", path)?;
        if data.len() <= params.min_size as usize {
            if !data.is_empty() {
                take(data, false, zstd)?;
            }
        } else {
            params.split_slice(&data, &mut |c| take(c.to_vec(), true, zstd))?;
        }
    } else {
        params
            .split_stream(&mut file, &mut |c| take(c, true, zstd))
            .map_err(|e| match e {
                Error::Io { source, .. } => Error::io("read", path, source),
                other => other,
            })?;
    }
    let after = file.metadata().ctx("stat", path)?;
    let changed = after.len() != size
        || after.mtime() != meta.mtime()
        || after.mtime_nsec() != meta.mtime_nsec()
        || after.ctime() != meta.ctime()
        || after.ctime_nsec() != meta.ctime_nsec();
    Ok(FileOutcome::Read {
        content,
        size,
        changed,
        xattrs,
    })
}

/// Reads a file expected to be `expected` bytes long, in as few calls as
/// possible (no extra stat the way `read_to_end` does); a file that grew is
/// read to its end.
fn read_small(file: &mut File, expected: u64) -> std::io::Result<Vec<u8>> {
    let mut data = vec![0u8; expected as usize];
    let mut filled = 0;
    while filled < data.len() {
        match file.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    if filled == expected as usize {
        file.read_to_end(&mut data)?;
    }
    Ok(data)
}

struct Finished {
    root: ChunkId,
    files: u64,
    dirs: u64,
    bytes: u64,
    files_read: u64,
    changed: Vec<String>,
    warnings: Vec<String>,
}

fn finisher(shared: &Shared<'_>, dirs: Receiver<DirJob>, lanes: Lanes) -> Result<Finished> {
    let mut zstd = Compressor::new()?;
    let mut done: HashMap<u64, ChunkId> = HashMap::new();
    let mut out = Finished {
        root: ChunkId([0; 32]),
        files: 0,
        dirs: 0,
        bytes: 0,
        files_read: 0,
        changed: vec![],
        warnings: vec![],
    };
    let mut last = None;
    for job in dirs {
        let mut tree = Tree {
            entries: Vec::with_capacity(job.entries.len()),
        };
        let mut outcomes = Vec::with_capacity(job.batches.len());
        for rx in &job.batches {
            outcomes.push(
                rx.recv()
                    .map_err(aborted)?
                    .into_iter()
                    .map(Some)
                    .collect::<Vec<_>>(),
            );
        }
        for (mut entry, pending) in job.entries {
            match pending {
                Pending::Ready => {}
                Pending::File { batch, index, path } => match outcomes
                    .get_mut(batch)
                    .and_then(|b| b.get_mut(index))
                    .and_then(Option::take)
                    .ok_or_else(|| aborted(()))?
                {
                    FileOutcome::Read {
                        content,
                        size,
                        changed,
                        xattrs,
                    } => {
                        entry.content = content;
                        entry.size = size;
                        entry.xattrs = xattrs;
                        out.files_read += 1;
                        if changed {
                            out.changed.push(path.display().to_string());
                        }
                    }
                    FileOutcome::Skipped(warning) => {
                        out.warnings.push(warning);
                        continue;
                    }
                },
                Pending::Dir(index) => {
                    entry.subtree = Some(done.remove(&index).ok_or_else(|| aborted(()))?);
                }
            }
            match entry.kind {
                Kind::File => {
                    out.files += 1;
                    out.bytes += entry.size;
                }
                Kind::Dir => out.dirs += 1,
                _ => {}
            }
            tree.entries.push(entry);
        }
        let blob = tree.encode()?;
        let id = shared.vault.codec().id(&blob);
        shared.offer(id, blob, &lanes, &mut zstd, (true, true))?;
        done.insert(job.index, id);
        last = Some(id);
    }
    out.root = last.ok_or_else(|| aborted(()))?;
    Ok(out)
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
            includes: vec![],
        };
        let restored = restore::run(vault, &report.snapshot, &opts, &AtomicU64::new(0)).unwrap();
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
        let third = backup_dir(&vault, src.path());
        assert_eq!(third.snapshot.stats.files_read, 1);
        assert!(third.snapshot.stats.new_chunks > 0);
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
                "files_read",
                "new_bytes",
                "new_chunks",
                "notes",
                "parent",
                "root",
                "seconds",
                "skipped",
                "snapshot_id",
                "stored_bytes",
                "warnings"
            ]
        );
        assert_eq!(json["snapshot_id"], report.snapshot.id.to_hex());
        assert_eq!(json["files"], 1);
        assert_eq!(json["skipped"], 0);
    }
}
