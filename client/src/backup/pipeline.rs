//! The backup's threads after the walk: workers read, chunk, dedup and
//! seal files (sharing out the chunks of large ones), the finisher encodes
//! each directory's tree once its files are done, and every sealed blob
//! goes to the vault's sink. See the data flow in [`super`].

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use cairn_proto::ChunkId;
use crossbeam_channel::{Receiver, Sender};

use super::Progress;
use crate::blob::Compressor;
use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::tree::{ChunkRef, Entry, Kind, Tree};
use crate::vault::{BlobSender, Sealed, Vault};

/// Flattens a worker thread's join result.
pub(super) fn joined<T>(r: std::thread::Result<Result<T>>) -> Result<T> {
    r.unwrap_or_else(|_| Err(Error::Invalid("a backup worker thread panicked".into())))
}

/// The error of a thread whose channel or lock went away because another
/// thread failed first.
pub(super) fn aborted<T>(_: T) -> Error {
    Error::Aborted
}

/// What every thread of one backup shares.
pub(super) struct Shared<'a> {
    pub(super) vault: &'a Vault,
    /// The sink skips what the vault holds (in batches): workers only
    /// dedup within the run.
    pub(super) sink_dedups: bool,
    /// Chunk ids stored or queued by this run.
    pub(super) seen: Mutex<HashSet<ChunkId>>,
    /// Read back each chunk the vault already holds and store it again if
    /// it fails verification (`backup --force`; where workers ask the
    /// vault, i.e. not behind a deduplicating sink).
    pub(super) verify_existing: bool,
    pub(super) progress: &'a Progress,
}

impl Shared<'_> {
    /// Whether `id` must be sealed and stored: not seen in this run and not
    /// already in the vault (asked here unless the sink asks in batches).
    fn is_new(&self, id: ChunkId) -> Result<bool> {
        let inserted = self.seen.lock().map_err(aborted)?.insert(id);
        if !inserted || self.sink_dedups || !self.vault.backend().contains(id)? {
            return Ok(inserted);
        }
        // Held: trusted, unless asked to verify (a damaged copy is replaced).
        Ok(self.verify_existing
            && self
                .vault
                .raw_blob(id)
                .and_then(|sealed| self.vault.codec().open(&id, &sealed))
                .is_err())
    }

    /// Seals and queues a plaintext blob for writing if it is new. With
    /// `share`, the sealing is offered to idle workers first (which takes
    /// a copy of a lent chunk); otherwise it is sealed where it lies.
    fn offer(
        &self,
        id: ChunkId,
        data: Cow<'_, [u8]>,
        lanes: &Lanes,
        zstd: &mut Compressor,
        (share, tree): (bool, bool),
    ) -> Result<()> {
        if !self.is_new(id)? {
            return Ok(());
        }
        if share && !lanes.seal_tx.is_full() {
            let job = SealJob {
                id,
                data: data.into_owned(),
                tree,
            };
            return match lanes.seal_tx.try_send(job) {
                Ok(()) => Ok(()),
                Err(e) => self.seal(e.into_inner(), &lanes.write, zstd),
            };
        }
        lanes.write.send(self.sealed(id, &data, tree, zstd))
    }

    fn seal(&self, job: SealJob, write: &BlobSender, zstd: &mut Compressor) -> Result<()> {
        let sealed = self.sealed(job.id, &job.data, job.tree, zstd);
        drop(job.data);
        write.send(sealed)
    }

    fn sealed(&self, id: ChunkId, data: &[u8], tree: bool, zstd: &mut Compressor) -> Sealed {
        Sealed {
            id,
            bytes: self.vault.codec().seal(&id, data, zstd),
            plain_len: data.len() as u64,
            tree,
        }
    }
}

/// Chunks, seals and queues everything `data` yields as one file `name`,
/// then the root tree holding it (`backup --stdin`); returns the root and
/// the file's size.
pub(super) fn stream_file(
    shared: &Shared<'_>,
    lanes: &Lanes,
    name: &str,
    data: &mut dyn std::io::Read,
) -> Result<(ChunkId, u64)> {
    let codec = shared.vault.codec();
    let mut zstd = Compressor::new()?;
    let (mut content, mut size) = (vec![], 0u64);
    shared
        .vault
        .config()
        .chunker
        .split_stream(data, &mut |chunk| {
            let id = codec.id(chunk);
            let len = chunk.len() as u32;
            size += u64::from(len);
            shared
                .progress
                .bytes
                .fetch_add(u64::from(len), Ordering::Relaxed);
            content.push(ChunkRef { id, len });
            shared.offer(id, Cow::Borrowed(chunk), lanes, &mut zstd, (false, false))
        })
        .map_err(|e| match e {
            Error::Io { source, .. } => Error::io("read", Path::new("stdin"), source),
            other => other,
        })?;
    shared.progress.files.fetch_add(1, Ordering::Relaxed);
    let now = crate::tree::Time::now();
    let entry = Entry {
        name: name.as_bytes().to_vec(),
        kind: Kind::File,
        mode: 0o644,
        // SAFETY (both): plain getters without arguments.
        uid: unsafe { libc::geteuid() },
        gid: unsafe { libc::getegid() },
        mtime: now,
        ctime: now,
        inode: 0,
        device: 0,
        links: 1,
        size,
        target: vec![],
        rdev: 0,
        xattrs: vec![],
        content,
        subtree: None,
    };
    let blob = Tree {
        entries: vec![entry],
    }
    .encode()?;
    let id = codec.id(&blob);
    shared.offer(id, Cow::Owned(blob), lanes, &mut zstd, (false, true))?;
    Ok((id, size))
}

/// The channels a worker (or the finisher) uses.
pub(super) struct Lanes {
    pub(super) files: Receiver<FileJob>,
    pub(super) seal_rx: Receiver<SealJob>,
    pub(super) seal_tx: Sender<SealJob>,
    pub(super) write: BlobSender,
}

/// Files of one directory for one worker: small files travel in batches so
/// a tree of many small files costs few hand-offs between threads; a large
/// file travels alone so its chunks can be shared out.
pub(super) struct FileJob {
    pub(super) files: Vec<(PathBuf, Metadata)>,
    pub(super) result: Sender<Vec<FileOutcome>>,
}

pub(super) enum FileOutcome {
    Read {
        content: Vec<ChunkRef>,
        size: u64,
        changed: bool,
        xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Could not be read; the file is left out with a warning.
    Skipped(String),
}

pub(super) enum Pending {
    Ready,
    /// Outcome `index` of the directory's batch `batch`.
    File {
        batch: usize,
        index: usize,
        path: PathBuf,
    },
    Dir(u64),
}

pub(super) struct DirJob {
    pub(super) index: u64,
    pub(super) entries: Vec<(Entry, Pending)>,
    /// One receiver per batch of this directory's files, in order.
    pub(super) batches: Vec<Receiver<Vec<FileOutcome>>>,
}

pub(super) struct SealJob {
    pub(super) id: ChunkId,
    pub(super) data: Vec<u8>,
    pub(super) tree: bool,
}

pub(super) fn worker(shared: &Shared<'_>, lanes: Lanes) -> Result<()> {
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
                    shared.progress.reading(path);
                    outcomes.push(match read_file(shared, path, meta, &lanes, &mut zstd) {
                        Ok(o) => o,
                        Err(Error::Io { context, source }) => {
                            shared.progress.errors.fetch_add(1, Ordering::Relaxed);
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
    let mut take = |data: Cow<'_, [u8]>, share: bool, zstd: &mut Compressor| -> Result<()> {
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
    params
        .split_file(&mut file, meta.len(), &mut |c, cdc| take(c, cdc, zstd))
        .map_err(|e| match e {
            Error::Io { source, .. } => Error::io("read", path, source),
            other => other,
        })?;
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

pub(super) struct Finished {
    pub(super) root: ChunkId,
    pub(super) files: u64,
    pub(super) dirs: u64,
    pub(super) bytes: u64,
    pub(super) files_read: u64,
    pub(super) changed: Vec<String>,
    pub(super) warnings: Vec<String>,
}

pub(super) fn finisher(
    shared: &Shared<'_>,
    dirs: Receiver<Vec<DirJob>>,
    lanes: Lanes,
) -> Result<Finished> {
    let mut zstd = Compressor::new()?;
    let mut done: HashMap<u64, ChunkId> = HashMap::new();
    let mut links: HashSet<(u64, u64)> = HashSet::new();
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
    for job in dirs.iter().flatten() {
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
                    // Hard-linked content is restored once, so counted once.
                    if entry.links < 2 || links.insert((entry.device, entry.inode)) {
                        out.bytes += entry.size;
                    }
                }
                Kind::Dir => out.dirs += 1,
                _ => {}
            }
            tree.entries.push(entry);
        }
        let blob = tree.encode()?;
        let id = shared.vault.codec().id(&blob);
        shared.offer(id, Cow::Owned(blob), &lanes, &mut zstd, (true, true))?;
        done.insert(job.index, id);
        last = Some(id);
    }
    out.root = last.ok_or_else(|| aborted(()))?;
    Ok(out)
}
