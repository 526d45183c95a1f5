//! Restore: recreate a snapshot's files under a target directory.
//!
//! Three phases:
//! 1. *Plan* (calling thread): walk the trees, create directories, symlinks
//!    and special files, and list the files to write. Large files are split
//!    into parts so several workers fill one file at their offsets.
//! 2. *Write* (worker pool): fetch, verify, decrypt and decompress chunks and
//!    write them; a file is complete (and gets its metadata) when its last
//!    part is written. A file with a damaged chunk is removed and reported,
//!    never left holding garbage.
//! 3. *Finish*: hard links, then directory metadata bottom-up (so writing
//!    files does not disturb directory mtimes).
//!
//! Few system calls per file, because a tree of many small files is bound by
//! them: inside a directory this restore created (or an empty target) nothing
//! can be in the way, so entries are created without probing the path first
//! (`O_EXCL`, falling back to the probing path if something is there after
//! all), and a file written in one piece gets its mode, owner, extended
//! attributes and times through its open descriptor before it is closed
//! (`fchmod`, `fchown`, `futimens`), not by path afterwards.
//!
//! From an account vault, consecutive jobs are grouped into units of about
//! [`UNIT_BYTES`]; fetcher threads get each unit's chunks in one request,
//! [`FETCHERS`] requests in flight, and hand them to the writers through a
//! bounded queue, so fetching runs ahead of decrypting and writing (the
//! prefetch) with a bounded amount of data in memory.
//!
//! Names come from trees that [`Tree::decode`] validated (no `..`, `/` or
//! NUL), and files are opened with `O_NOFOLLOW`, so nothing is written
//! outside the target.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cairn_proto::api::{FinishJob, JobStatus};
use cairn_proto::SnapshotId;
use crossbeam_channel::{bounded, unbounded};
use serde::Serialize;

use crate::chunker::zero_prefix;
use crate::error::{Error, IoContext, Result};
use crate::jobs::JobOutcome;
use crate::pattern::Patterns;
use crate::snapshot::SnapshotRecord;
use crate::tree::{ChunkRef, Entry, Kind, Tree};
use crate::vault::{BlobReader, Prefetched, Vault};

/// Chunks per part when a large file is written by several workers.
const CHUNKS_PER_PART: usize = 8;
/// Plaintext bytes of one unit fetched in one request (account vaults).
pub const UNIT_BYTES: u64 = 8 * 1024 * 1024;
/// Chunks of one unit at most (many small files).
const UNIT_CHUNKS: usize = 256;
/// Fetch requests in flight when restoring from an account vault.
pub const FETCHERS: usize = 4;

/// What to restore where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Directory under which each backed-up absolute path is recreated.
    pub target: PathBuf,
    /// Patterns ([`crate::pattern`]) of snapshot paths to restore, with
    /// everything below them (all when empty).
    pub includes: Vec<String>,
    /// Patterns of snapshot paths not to restore (nor to delete).
    pub excludes: Vec<String>,
    /// What to do with a path that already exists in the target.
    pub overwrite: Overwrite,
    /// Delete what the restored directories of the snapshot's sources hold
    /// in the target but the snapshot does not (directories on the way to
    /// a source are left alone: they hold what was never backed up).
    pub delete: bool,
    /// Decide and report everything, change nothing.
    pub dry_run: bool,
}

/// What a restore does with a path that already exists in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Replace it unless its size and modification time are the snapshot's.
    IfChanged,
    /// Replace it only when the snapshot's copy is newer (the default: a
    /// restore never silently destroys local data newer than the
    /// snapshot's; what it keeps is reported).
    #[default]
    IfNewer,
    /// Never replace it.
    Never,
}

/// What a restore does with one non-directory entry, given what the
/// target already holds there ([`decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is there: create it.
    Create,
    /// Replace what is there.
    Replace,
    /// What is there has the snapshot's kind, size and mtime: leave it.
    Unchanged,
    /// Keep what is there, by the policy (it is newer, or `never`).
    Keep,
}

/// What a target path holds, as [`decide`] compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// Whether it is of the snapshot entry's kind.
    pub same_kind: bool,
    /// Whether it is a symlink where the snapshot holds another kind: it
    /// holds no data and is replaced (never followed) unless `never`.
    pub stray_link: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: crate::tree::Time,
}

/// The overwrite policy for one entry: `existing` is what the target holds
/// at its path (`None`: nothing), `entry` the snapshot's.
pub fn decide(policy: Overwrite, existing: Option<Existing>, entry: &Entry) -> Decision {
    let Some(e) = existing else {
        return Decision::Create;
    };
    let same = e.same_kind && e.size == entry.size && e.mtime == entry.mtime;
    match policy {
        Overwrite::Always => Decision::Replace,
        _ if same => Decision::Unchanged,
        Overwrite::Never => Decision::Keep,
        _ if e.stray_link => Decision::Replace,
        Overwrite::IfChanged => Decision::Replace,
        Overwrite::IfNewer if entry.mtime > e.mtime => Decision::Replace,
        Overwrite::IfNewer => Decision::Keep,
    }
}

/// The outcome of a restore (or, with `dry_run`, what it would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub id: SnapshotId,
    /// The directory it was restored under.
    pub target: PathBuf,
    /// Whether nothing was changed (the counts say what would be).
    pub dry_run: bool,
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Existing paths replaced (counted in `files` too when files).
    pub replaced: u64,
    /// Existing paths left as they were because they already match the
    /// snapshot.
    pub unchanged: u64,
    /// Existing paths kept although the snapshot's differ (newer locally,
    /// or `--overwrite never`), one line each.
    pub kept: Vec<String>,
    /// Paths deleted (`--delete`) because the snapshot does not hold them.
    pub deleted: Vec<String>,
    /// Files that could not be restored because their data is damaged or
    /// missing (they are not left in the target).
    pub damaged: Vec<String>,
    /// Files that could not be written (disk full, permissions); not left in
    /// the target either.
    pub failed: Vec<String>,
    /// Metadata that could not be applied (ownership, xattrs, devices).
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

impl JobOutcome for RestoreReport {
    /// Failed when files could not be restored, warnings when metadata
    /// could not be applied.
    fn job_end(&self) -> FinishJob {
        let lost = !self.damaged.is_empty() || !self.failed.is_empty();
        let status = match (lost, self.warnings.is_empty()) {
            (true, _) => JobStatus::Error,
            (false, false) => JobStatus::Warning,
            (false, true) => JobStatus::Succeeded,
        };
        let error = lost.then(|| {
            format!(
                "{} damaged and {} unwritable file(s) not restored",
                self.damaged.len(),
                self.failed.len()
            )
        });
        let log = self
            .damaged
            .iter()
            .chain(&self.failed)
            .chain(&self.warnings)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        FinishJob {
            status,
            files: self.files,
            bytes: self.bytes,
            error,
            log,
        }
    }
}

struct FileTask {
    path: PathBuf,
    entry: Entry,
    /// Its directory was created by this restore: nothing is in the way.
    fresh: bool,
    parts_left: AtomicUsize,
    failed: AtomicBool,
    /// Held while a part is written: the file system takes the file's lock
    /// for every write anyway, and a thread waiting for it here sleeps
    /// where the kernel would spin on the lock, burning a core the other
    /// threads need for decompressing.
    writing: Mutex<()>,
}

enum Job {
    /// Create and write file `index` completely.
    Whole(usize),
    /// Write chunks `first..first + count` of pre-sized file `index` at `offset`.
    Part {
        index: usize,
        first: usize,
        count: usize,
        offset: u64,
    },
}

/// Live counters of a restore, read by another thread for its progress
/// display.
#[derive(Debug, Default)]
pub struct Progress {
    /// File bytes written so far.
    pub done: AtomicU64,
    /// File bytes the restore will write: the selected subset (after
    /// `--include`/`--exclude` and the overwrite policy), known once the
    /// plan is made.
    pub total: AtomicU64,
}

/// Restores `snapshot` from `vault` as `opts` says.
pub fn run(
    vault: &Vault,
    snapshot: &SnapshotRecord,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    if !opts.dry_run {
        fs::create_dir_all(&opts.target).ctx("create target", &opts.target)?;
    }
    let mut plan = Plan::new(vault, unsafe { libc::geteuid() } == 0, opts)?;
    let meta = snapshot.verified_meta(vault.keys())?;
    // A snapshot never holds more entries than its backup walked.
    plan.budget = meta.bound.map(|b| b.entries).filter(|&n| n > 0);
    plan.sources = meta.paths.iter().map(PathBuf::from).collect();
    let root = vault.tree(snapshot.root)?;
    let everything = plan.includes.is_empty();
    // An empty target (usually a new one) holds nothing in the way.
    let fresh = fs::read_dir(&opts.target).map_or(opts.dry_run, |mut d| d.next().is_none());
    plan.dir(&root, &opts.target, Path::new("/"), everything, fresh)?;
    if !everything && !plan.selected_any {
        return Err(Error::NotFound(format!(
            "no path in snapshot {} matches --include {}",
            snapshot.short_id(),
            opts.includes.join(" ")
        )));
    }
    let planned = RestoreReport {
        id: snapshot.id,
        target: opts.target.clone(),
        dry_run: opts.dry_run,
        replaced: plan.replaced,
        unchanged: plan.unchanged,
        kept: std::mem::take(&mut plan.kept),
        deleted: std::mem::take(&mut plan.deleted),
        ..RestoreReport::default()
    };
    let selected: u64 = plan.files.iter().map(|f| f.entry.size).sum();
    progress.total.store(selected, Ordering::Relaxed);
    if opts.dry_run {
        return Ok(RestoreReport {
            files: (plan.files.len() + plan.links.len()) as u64,
            dirs: plan.dirs.len() as u64,
            bytes: selected,
            warnings: plan.warnings,
            seconds: started.elapsed().as_secs_f64(),
            ..planned
        });
    }
    let report = Mutex::new(planned);
    let batched = vault.backend().batches_reads();
    let jobs = std::mem::take(&mut plan.jobs);
    // One writer per core, not one more: writers of a large file's parts
    // contend for its inode lock, and a third writer on two cores turns
    // that into kernel spinning (large-file restore 1.3-1.9 s with 0.8-1.7 s
    // of system time, against 1.0 s with 0.4 s with one writer per core).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Account vaults: fetchers run ahead of the writers, FETCHERS requests
    // in flight and as many fetched units waiting. Local vaults: the
    // writers take the jobs straight from a queue filled up front, so no
    // thread hands them over and no writer waits for one.
    let (tx, rx) = unbounded();
    let (ready_tx, ready_rx) = if batched {
        for unit in plan.units(jobs) {
            tx.send(unit)
                .map_err(|_| Error::Invalid("restore queue closed".into()))?;
        }
        bounded::<(Vec<Job>, Prefetched)>(FETCHERS)
    } else {
        let (ready_tx, ready_rx) = unbounded();
        for job in jobs {
            ready_tx
                .send((vec![job], Prefetched::default()))
                .map_err(|_| Error::Invalid("restore queue closed".into()))?;
        }
        (ready_tx, ready_rx)
    };
    drop(tx);
    let plan_ref = &plan;
    std::thread::scope(|s| {
        if batched {
            for _ in 0..FETCHERS {
                let (rx, ready_tx) = (rx.clone(), ready_tx.clone());
                s.spawn(move || {
                    for unit in rx {
                        // A failed fetch is not fatal: each chunk is then
                        // fetched on its own and a real error names its file.
                        let chunks = vault
                            .fetch_ahead(&plan_ref.unit_ids(&unit))
                            .unwrap_or_default();
                        if ready_tx.send((unit, chunks)).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        for _ in 0..workers {
            let ready_rx = ready_rx.clone();
            let report = &report;
            s.spawn(move || {
                let mut reader = BlobReader::default();
                for (unit, chunks) in ready_rx {
                    reader.preload(chunks);
                    for job in unit {
                        plan_ref.run_job(job, &mut reader, report, &progress.done);
                    }
                    vault.drop_prefetched(&mut reader);
                }
            });
        }
        drop(ready_rx);
        drop(ready_tx);
    });

    let mut report = report
        .into_inner()
        .map_err(|_| Error::Invalid("a restore worker panicked".into()))?;
    for (path, first) in &plan.links {
        if fs::symlink_metadata(first).is_ok() {
            let _ = fs::remove_file(path);
            fs::hard_link(first, path).ctx("hard link", path)?;
            report.files += 1;
        }
    }
    for (path, entry) in &plan.specials {
        plan.apply_meta(path, entry, &mut report.warnings);
    }
    for (path, entry) in plan.dirs.iter().rev() {
        plan.apply_meta(path, entry, &mut report.warnings);
        report.dirs += 1;
    }
    report.warnings.extend(plan.warnings);
    report.damaged.sort();
    report.failed.sort();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct Plan<'a> {
    vault: &'a Vault,
    files: Vec<FileTask>,
    jobs: Vec<Job>,
    /// (path, first path of the same inode) pairs, linked after the data.
    links: Vec<(PathBuf, PathBuf)>,
    /// Directories in pre-order; metadata applied in reverse.
    dirs: Vec<(PathBuf, Entry)>,
    /// Symlinks and special files whose metadata is applied at the end.
    specials: Vec<(PathBuf, Entry)>,
    first_link: HashMap<(u64, u64), PathBuf>,
    warnings: Vec<String>,
    is_root: bool,
    /// Entries the snapshot may still plan ([`crate::snapshot::Bound::entries`]).
    budget: Option<u64>,
    includes: Patterns,
    excludes: Patterns,
    overwrite: Overwrite,
    delete: bool,
    dry_run: bool,
    /// Directories above the walk's position not created yet (not
    /// selected themselves), with whether they have been since.
    pending: Vec<(PathBuf, Entry, bool)>,
    /// Whether any entry was selected by `includes`.
    selected_any: bool,
    /// The snapshot's sources (`--delete` works inside them only).
    sources: Vec<PathBuf>,
    replaced: u64,
    unchanged: u64,
    kept: Vec<String>,
    deleted: Vec<String>,
}

impl<'a> Plan<'a> {
    /// An empty plan over `vault`; `is_root` (running as root) decides
    /// whether ownership and device nodes are restored.
    fn new(vault: &'a Vault, is_root: bool, opts: &RestoreOptions) -> Result<Self> {
        Ok(Plan {
            vault,
            files: vec![],
            jobs: vec![],
            links: vec![],
            dirs: vec![],
            specials: vec![],
            first_link: HashMap::new(),
            warnings: vec![],
            is_root,
            budget: None,
            includes: Patterns::new(&opts.includes, "--include")?,
            excludes: Patterns::new(&opts.excludes, "--exclude")?,
            overwrite: opts.overwrite,
            delete: opts.delete,
            dry_run: opts.dry_run,
            pending: vec![],
            selected_any: false,
            sources: vec![],
            replaced: 0,
            unchanged: 0,
            kept: vec![],
            deleted: vec![],
        })
    }

    /// Groups consecutive jobs into units of about [`UNIT_BYTES`].
    fn units(&self, jobs: Vec<Job>) -> Vec<Vec<Job>> {
        let mut units = vec![];
        let (mut unit, mut bytes, mut chunks) = (vec![], 0u64, 0usize);
        for job in jobs {
            let refs = self.job_chunks(&job);
            let job_bytes: u64 = refs.iter().map(|c| c.len as u64).sum();
            if !unit.is_empty()
                && (bytes + job_bytes > UNIT_BYTES || chunks + refs.len() > UNIT_CHUNKS)
            {
                units.push(std::mem::take(&mut unit));
                (bytes, chunks) = (0, 0);
            }
            bytes += job_bytes;
            chunks += refs.len();
            unit.push(job);
        }
        if !unit.is_empty() {
            units.push(unit);
        }
        units
    }

    fn job_chunks(&self, job: &Job) -> &[crate::tree::ChunkRef] {
        match *job {
            Job::Whole(index) => &self.files[index].entry.content,
            Job::Part {
                index,
                first,
                count,
                ..
            } => &self.files[index].entry.content[first..first + count],
        }
    }

    /// The distinct chunk ids a unit reads.
    fn unit_ids(&self, unit: &[Job]) -> Vec<cairn_proto::ChunkId> {
        let mut seen = std::collections::HashSet::new();
        unit.iter()
            .flat_map(|j| self.job_chunks(j))
            .map(|c| c.id)
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// Plans the entries of `tree`, restored to `dest`, at `snap_path` in
    /// the snapshot; `selected`: whether the tree is restored whole (an
    /// include matched it or a directory above it).
    /// Plans `tree`'s entries under `dest`; `fresh`: `dest` was empty
    /// when the restore began or it created `dest` (nothing is in the way).
    fn dir(
        &mut self,
        tree: &Tree,
        dest: &Path,
        snap_path: &Path,
        selected: bool,
        fresh: bool,
    ) -> Result<()> {
        // Only inside a backed-up source: the directories on the way to one
        // (`/`, `/home`) hold much the snapshot never looked at.
        if selected && self.delete && self.sources.iter().any(|s| snap_path.starts_with(s)) {
            self.delete_extra(tree, dest, snap_path)?;
        }
        for entry in &tree.entries {
            let name = std::ffi::OsStr::from_bytes(&entry.name);
            let snap_child = snap_path.join(name);
            if self.excludes.is_match(&snap_child) {
                continue;
            }
            let path = dest.join(name);
            if selected || self.includes.is_match(&snap_child) {
                self.create_pending()?;
                self.entry(entry, &path, &snap_child, fresh)?;
            } else if let (Kind::Dir, Some(sub)) = (entry.kind, entry.subtree) {
                self.count_entry()?;
                // Created only if something below it is selected.
                self.pending.push((path.clone(), entry.clone(), false));
                let tree = self.vault.tree(sub)?;
                self.dir(&tree, &path, &snap_child, false, false)?;
                self.pending.pop();
            }
        }
        Ok(())
    }

    /// Creates the directories above a selected entry that are not yet.
    fn create_pending(&mut self) -> Result<()> {
        self.selected_any = true;
        for (path, entry, created) in &mut self.pending {
            if !*created {
                if !self.dry_run {
                    make_dir(path)?;
                }
                self.dirs.push((path.clone(), entry.clone()));
                *created = true;
            }
        }
        Ok(())
    }

    /// `--delete`: removes what `dest` holds that `tree` does not (and no
    /// exclude protects).
    fn delete_extra(&mut self, tree: &Tree, dest: &Path, snap_path: &Path) -> Result<()> {
        let Ok(listing) = fs::read_dir(dest) else {
            return Ok(());
        };
        let names: std::collections::HashSet<&[u8]> =
            tree.entries.iter().map(|e| e.name.as_slice()).collect();
        for e in listing {
            let e = e.ctx("list directory", dest)?;
            let name = e.file_name();
            if names.contains(name.as_bytes()) || self.excludes.is_match(&snap_path.join(&name)) {
                continue;
            }
            let path = dest.join(&name);
            if !self.dry_run {
                remove_existing(&path)?;
            }
            self.deleted.push(path.display().to_string());
        }
        Ok(())
    }

    /// Counts one planned entry against the snapshot's recorded bound.
    fn count_entry(&mut self) -> Result<()> {
        if let Some(left) = &mut self.budget {
            *left = left.checked_sub(1).ok_or_else(|| {
                Error::Integrity(
                    "the snapshot's trees expand to more entries than its backup recorded \
                     (trees naming the same subtree over and over?); nothing more is restored"
                        .into(),
                )
            })?;
        }
        Ok(())
    }

    /// Applies the overwrite policy to `path`; whether to write the entry.
    fn admit(&mut self, entry: &Entry, path: &Path, fresh: bool) -> bool {
        if fresh {
            return true;
        }
        let existing = fs::symlink_metadata(path).ok().map(|m| Existing {
            same_kind: crate::fsmeta::kind_of(&m) == Some(entry.kind),
            stray_link: m.file_type().is_symlink() && entry.kind != Kind::Symlink,
            size: if m.is_file() { m.len() } else { entry.size },
            mtime: crate::tree::Time::of(m.mtime(), m.mtime_nsec()),
        });
        if entry.kind == Kind::Dir && existing.is_some_and(|e| e.same_kind) {
            return true;
        }
        match decide(self.overwrite, existing, entry) {
            Decision::Create => true,
            Decision::Replace => {
                self.replaced += 1;
                true
            }
            Decision::Unchanged => {
                self.unchanged += 1;
                false
            }
            Decision::Keep => {
                self.kept.push(format!(
                    "{}: {}",
                    path.display(),
                    if self.overwrite == Overwrite::Never {
                        "exists (--overwrite never)"
                    } else {
                        "the existing copy is as new as or newer than the snapshot's"
                    }
                ));
                false
            }
        }
    }

    /// Plans one selected entry at `path`; `fresh` as for [`Plan::dir`].
    fn entry(&mut self, entry: &Entry, path: &Path, snap_path: &Path, fresh: bool) -> Result<()> {
        self.count_entry()?;
        if !self.admit(entry, path, fresh) {
            return Ok(());
        }
        match entry.kind {
            Kind::Dir => {
                let created = if self.dry_run {
                    fresh
                } else if fresh {
                    new_dir(path)?
                } else {
                    make_dir(path)?
                };
                self.dirs.push((path.to_path_buf(), entry.clone()));
                if let Some(sub) = entry.subtree {
                    let tree = self.vault.tree(sub)?;
                    self.dir(&tree, path, snap_path, true, created)?;
                }
            }
            Kind::File => {
                if entry.links > 1 {
                    let key = (entry.device, entry.inode);
                    if let Some(first) = self.first_link.get(&key) {
                        self.links.push((path.to_path_buf(), first.clone()));
                        return Ok(());
                    }
                    self.first_link.insert(key, path.to_path_buf());
                }
                let index = self.files.len();
                let parts = entry.content.len().div_ceil(CHUNKS_PER_PART);
                if parts > 1 {
                    if !self.dry_run {
                        let f = create_file(path, fresh)?;
                        f.set_len(entry.size).ctx("size", path)?;
                    }
                    let mut offset = 0u64;
                    for first in (0..entry.content.len()).step_by(CHUNKS_PER_PART) {
                        let count = CHUNKS_PER_PART.min(entry.content.len() - first);
                        self.jobs.push(Job::Part {
                            index,
                            first,
                            count,
                            offset,
                        });
                        offset += entry.content[first..first + count]
                            .iter()
                            .map(|c| c.len as u64)
                            .sum::<u64>();
                    }
                } else {
                    self.jobs.push(Job::Whole(index));
                }
                self.files.push(FileTask {
                    path: path.to_path_buf(),
                    entry: entry.clone(),
                    fresh,
                    parts_left: AtomicUsize::new(parts.max(1)),
                    failed: AtomicBool::new(false),
                    writing: Mutex::new(()),
                });
            }
            _ if self.dry_run => {}
            Kind::Symlink => {
                remove_existing(path)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&entry.target), path)
                    .ctx("create symlink", path)?;
                self.specials.push((path.to_path_buf(), entry.clone()));
            }
            Kind::Fifo | Kind::CharDevice | Kind::BlockDevice => {
                remove_existing(path)?;
                let kind_bits = match entry.kind {
                    Kind::Fifo => libc::S_IFIFO,
                    Kind::CharDevice => libc::S_IFCHR,
                    _ => libc::S_IFBLK,
                };
                if entry.kind != Kind::Fifo && !self.is_root {
                    self.warnings.push(format!(
                        "{}: device files need root to restore (skipped)",
                        path.display()
                    ));
                    return Ok(());
                }
                let c = cpath(path)?;
                // SAFETY: c is a valid NUL-terminated path.
                let rc = unsafe {
                    libc::mknod(
                        c.as_ptr(),
                        kind_bits | (entry.mode & 0o7777),
                        entry.rdev as libc::dev_t,
                    )
                };
                if rc != 0 {
                    return Err(Error::io(
                        "create special file",
                        path,
                        std::io::Error::last_os_error(),
                    ));
                }
                self.specials.push((path.to_path_buf(), entry.clone()));
            }
        }
        Ok(())
    }

    fn run_job(
        &self,
        job: Job,
        reader: &mut BlobReader,
        report: &Mutex<RestoreReport>,
        bytes_done: &AtomicU64,
    ) {
        let whole = matches!(job, Job::Whole(_));
        let mut warnings = vec![];
        let (index, result) = match job {
            Job::Whole(index) => (
                index,
                self.write_whole(&self.files[index], reader, bytes_done, &mut warnings),
            ),
            Job::Part {
                index,
                first,
                count,
                offset,
            } => (
                index,
                self.write_part(&self.files[index], reader, first, count, offset, bytes_done),
            ),
        };
        let task = &self.files[index];
        if let Err(e) = result {
            if !task.failed.swap(true, Ordering::SeqCst) {
                if let Ok(mut r) = report.lock() {
                    let line = format!("{}: {e}", task.path.display());
                    if e.is_damaged_data() {
                        r.damaged.push(line);
                    } else {
                        r.failed.push(line);
                    }
                }
            }
        }
        if task.parts_left.fetch_sub(1, Ordering::SeqCst) == 1 {
            if task.failed.load(Ordering::SeqCst) {
                let _ = fs::remove_file(&task.path);
            } else if !whole {
                // A file written in one piece got its metadata through its
                // descriptor already.
                self.apply_meta(&task.path, &task.entry, &mut warnings);
            }
            if let Ok(mut r) = report.lock() {
                if !task.failed.load(Ordering::SeqCst) {
                    r.files += 1;
                    r.bytes += task.entry.size;
                }
                r.warnings.extend(warnings);
            }
        }
    }

    /// Creates and writes a file in one piece, then gives it its metadata
    /// through the open descriptor (failures become `warnings`).
    fn write_whole(
        &self,
        task: &FileTask,
        reader: &mut BlobReader,
        bytes_done: &AtomicU64,
        warnings: &mut Vec<String>,
    ) -> Result<()> {
        let mut f = create_file(&task.path, task.fresh)?;
        let mut holes = false;
        for c in &task.entry.content {
            match self.chunk(c, reader)? {
                Some(data) => f.write_all(data).ctx("write", &task.path)?,
                None => {
                    // A hole: the file stays sparse where its source was.
                    f.seek(std::io::SeekFrom::Current(i64::from(c.len)))
                        .ctx("seek", &task.path)?;
                    holes = true;
                }
            }
            bytes_done.fetch_add(u64::from(c.len), Ordering::Relaxed);
        }
        if holes {
            f.set_len(task.entry.size).ctx("size", &task.path)?;
        }
        self.apply_meta_fd(&f, &task.path, &task.entry, warnings);
        Ok(())
    }

    fn write_part(
        &self,
        task: &FileTask,
        reader: &mut BlobReader,
        first: usize,
        count: usize,
        mut offset: u64,
        bytes_done: &AtomicU64,
    ) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&task.path)
            .ctx("open", &task.path)?;
        for c in &task.entry.content[first..first + count] {
            // The file was sized up front: an all-zero chunk stays a hole.
            if let Some(data) = self.chunk(c, reader)? {
                let _writing = task.writing.lock().map_err(|_| Error::Aborted)?;
                f.write_all_at(data, offset).ctx("write", &task.path)?;
            }
            offset += u64::from(c.len);
            bytes_done.fetch_add(u64::from(c.len), Ordering::Relaxed);
        }
        Ok(())
    }

    /// A file chunk's bytes, or `None` if they are all zero (restored as a
    /// hole, so sparse files stay sparse). A zero chunk whose id the codec
    /// already knows is not even read: a disk image's zero runs are the
    /// same few chunks over and over.
    fn chunk<'r>(&self, c: &ChunkRef, reader: &'r mut BlobReader) -> Result<Option<&'r [u8]>> {
        if self.vault.codec().is_known_zeros(&c.id, c.len) {
            return Ok(None);
        }
        let data = self.vault.blob_with(c.id, reader)?;
        check_len(data, c.len)?;
        Ok((zero_prefix(data) < data.len()).then_some(data))
    }

    /// As [`Plan::apply_meta`], through the descriptor of a regular file
    /// just written: no path lookups.
    fn apply_meta_fd(&self, f: &fs::File, path: &Path, entry: &Entry, warnings: &mut Vec<String>) {
        use std::os::fd::AsRawFd;
        use xattr::FileExt as _;
        let fd = f.as_raw_fd();
        let mut failed = |what: &str, e: std::io::Error| {
            warnings.push(format!("{}: {what}: {e}", path.display()));
        };
        for (name, value) in &entry.xattrs {
            if let Err(e) = f.set_xattr(std::ffi::OsStr::from_bytes(name), value) {
                failed(&format!("xattr {}", String::from_utf8_lossy(name)), e);
            }
        }
        // SAFETY (the three calls): fd is open for as long as `f` lives.
        if self.is_root && unsafe { libc::fchown(fd, entry.uid, entry.gid) } != 0 {
            failed("chown", std::io::Error::last_os_error());
        }
        if unsafe { libc::fchmod(fd, entry.mode as libc::mode_t) } != 0 {
            failed("chmod", std::io::Error::last_os_error());
        }
        let times = [mtime_spec(entry); 2];
        if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
            failed("set times", std::io::Error::last_os_error());
        }
    }

    /// Ownership (as root), mode, xattrs and times; failures become warnings.
    fn apply_meta(&self, path: &Path, entry: &Entry, warnings: &mut Vec<String>) {
        let Ok(c) = cpath(path) else { return };
        let is_link = entry.kind == Kind::Symlink;
        for (name, value) in &entry.xattrs {
            if let Err(e) = xattr::set(path, std::ffi::OsStr::from_bytes(name), value) {
                warnings.push(format!(
                    "{}: xattr {}: {e}",
                    path.display(),
                    String::from_utf8_lossy(name)
                ));
            }
        }
        // SAFETY (all three calls): c is a valid NUL-terminated path.
        if self.is_root && unsafe { libc::lchown(c.as_ptr(), entry.uid, entry.gid) } != 0 {
            warnings.push(format!(
                "{}: chown: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        if !is_link && unsafe { libc::chmod(c.as_ptr(), entry.mode as libc::mode_t) } != 0 {
            warnings.push(format!(
                "{}: chmod: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        let times = [mtime_spec(entry); 2];
        if unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            warnings.push(format!(
                "{}: set times: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
}

/// The entry's modification time as `utimensat`/`futimens` take it (also
/// as the access time, which a backup does not keep).
fn mtime_spec(entry: &Entry) -> libc::timespec {
    libc::timespec {
        tv_sec: entry.mtime.sec as libc::time_t,
        tv_nsec: entry.mtime.nsec as _,
    }
}

fn check_len(data: &[u8], len: u32) -> Result<()> {
    if data.len() != len as usize {
        return Err(Error::Integrity(format!(
            "chunk is {} bytes, the tree says {len}",
            data.len()
        )));
    }
    Ok(())
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{} contains NUL", path.display())))
}

/// Creates a directory, replacing a non-directory (e.g. a symlink) in the way.
/// New directories are private (0700) until the finish phase gives them
/// their recorded modes, so a directory that was private in the snapshot is
/// never readable by others while its files are written. Whether it is new
/// (then nothing is in it).
fn make_dir(path: &Path) -> Result<bool> {
    let create = || {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .ctx("create directory", path)
    };
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => {
            fs::remove_file(path).ctx("replace", path)?;
            create().map(|()| true)
        }
        Err(_) => create().map(|()| true),
    }
}

/// Creates a directory where nothing should be (its parent is fresh);
/// whether it is new. Something in the way after all (a tree naming an
/// entry twice) takes [`make_dir`]'s path.
fn new_dir(path: &Path) -> Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => make_dir(path),
        Err(e) => Err(Error::io("create directory", path, e)),
    }
}

/// Creates or truncates a regular file without following a symlink there.
/// In a `fresh` directory nothing should be there: the file is created
/// without probing the path first (`O_EXCL`), unless something is after all.
fn create_file(path: &Path, fresh: bool) -> Result<fs::File> {
    if fresh {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", path, e)),
        }
    }
    if fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        remove_existing(path)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ctx("create", path)
}

fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("replace", path),
        Ok(_) => fs::remove_file(path).ctx("replace", path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use cairn_proto::ChunkId;

    use super::*;

    fn entry_at(size: u64, sec: i64) -> Entry {
        let meta = fs::symlink_metadata("/").unwrap();
        let mut e = crate::fsmeta::entry_from(b"f".to_vec(), Kind::File, &meta);
        e.size = size;
        e.mtime = crate::tree::Time::of(sec, 0);
        e
    }

    #[test]
    fn the_overwrite_policy_keeps_newer_local_data_by_default() {
        use Decision::*;
        let snap = entry_at(10, 100);
        let at = |size, sec, same_kind| {
            Some(Existing {
                same_kind,
                stray_link: false,
                size,
                mtime: crate::tree::Time::of(sec, 0),
            })
        };
        let cases = [
            // (existing, always, if-changed, if-newer, never)
            (None, [Create, Create, Create, Create]),
            (
                at(10, 100, true),
                [Replace, Unchanged, Unchanged, Unchanged],
            ),
            (at(11, 200, true), [Replace, Replace, Keep, Keep]),
            (at(11, 50, true), [Replace, Replace, Replace, Keep]),
            (at(10, 100, false), [Replace, Replace, Keep, Keep]),
            (
                Some(Existing {
                    stray_link: true,
                    ..at(1, 200, false).unwrap()
                }),
                [Replace, Replace, Replace, Keep],
            ),
        ];
        let policies = [
            Overwrite::Always,
            Overwrite::IfChanged,
            Overwrite::IfNewer,
            Overwrite::Never,
        ];
        for (existing, expected) in cases {
            for (policy, want) in policies.iter().zip(expected) {
                assert_eq!(
                    decide(*policy, existing, &snap),
                    want,
                    "{policy:?} {existing:?}"
                );
            }
        }
        assert_eq!(Overwrite::default(), Overwrite::IfNewer);
    }

    #[test]
    fn new_directories_are_private_until_finished() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        make_dir(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A symlink in the way is replaced, not followed.
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("l")).unwrap();
        make_dir(&tmp.path().join("l")).unwrap();
        assert!(fs::symlink_metadata(tmp.path().join("l")).unwrap().is_dir());
    }
    use crate::tree::ChunkRef;
    use crate::vault::CreateOptions;

    #[test]
    fn units_group_small_jobs_up_to_the_byte_and_chunk_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        let mut opts = CreateOptions::default();
        opts.kdf.memory_kib = 64;
        opts.kdf.iterations = 1;
        Vault::create(&dir, b"pw", &opts).unwrap();
        let vault = Vault::open(&dir, b"pw").unwrap();
        let meta = fs::symlink_metadata(tmp.path()).unwrap();
        let file = |chunks: usize, len: u32| {
            let mut entry = crate::fsmeta::entry_from(b"f".to_vec(), Kind::File, &meta);
            entry.content = (0..chunks)
                .map(|i| ChunkRef {
                    id: ChunkId([i as u8; 32]),
                    len,
                })
                .collect();
            FileTask {
                path: PathBuf::from("/x"),
                entry,
                fresh: false,
                parts_left: AtomicUsize::new(1),
                failed: AtomicBool::new(false),
                writing: Mutex::new(()),
            }
        };
        let mut plan = Plan::new(&vault, false, &RestoreOptions::default()).unwrap();
        // 600 one-chunk files of 1 KiB: units close at UNIT_CHUNKS chunks.
        for _ in 0..600 {
            plan.files.push(file(1, 1024));
        }
        // Then 3 files of 8 × 1 MiB: each one alone reaches UNIT_BYTES.
        for _ in 0..3 {
            plan.files.push(file(8, 1 << 20));
        }
        let jobs = (0..plan.files.len()).map(Job::Whole).collect();
        let units = plan.units(jobs);
        let sizes: Vec<usize> = units.iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 256, 88, 1, 1, 1]);
        // A unit's ids are distinct even when its files share chunks.
        assert_eq!(plan.unit_ids(&units[0]).len(), 1);
        assert_eq!(plan.unit_ids(&units[3]).len(), 8);
    }

    #[test]
    fn progress_counts_against_the_selected_files_only() {
        let vault = crate::vault::memory::testing::small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("big"), vec![7u8; 100_000]).unwrap();
        fs::write(src.path().join("small"), vec![8u8; 5_000]).unwrap();
        let report = crate::vault::memory::testing::backup_dir(&vault, src.path());
        let out = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: out.path().to_path_buf(),
            includes: vec!["small".into()],
            ..RestoreOptions::default()
        };
        let progress = Progress::default();
        run(&vault, &report.snapshot, &opts, &progress).unwrap();
        assert_eq!(progress.total.load(Ordering::Relaxed), 5_000);
        assert_eq!(progress.done.load(Ordering::Relaxed), 5_000);
    }
}
