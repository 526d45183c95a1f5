//! The backup's walker (the calling thread): directories depth-first in
//! name order, limited to the requested paths on the way to them; unchanged
//! files keep their parent entry, others go to the workers in batches.

use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::pipeline::{aborted, DirJob, FileJob, FileOutcome, Pending, Shared};
use super::select::{self, FileStat};
use super::{Change, Changes};
use crate::error::{Error, IoContext, Result};
use crate::fsmeta::{entry_from, kind_of, read_xattrs};
use crate::pattern::Patterns;
use crate::source::PathTrie;
use crate::tree::{Entry, Kind, Tree};

/// Files per batch, and bytes per batch, before it is sent.
pub(super) const BATCH_FILES: usize = 64;
pub(super) const BATCH_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// The batch of files a directory walk is filling.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) files: Vec<(PathBuf, Metadata)>,
    pub(super) bytes: u64,
}

/// Directories handed to the finisher at a time.
const DIR_BUNDLE: usize = 32;

pub(super) struct Walker<'a, 's> {
    pub(super) shared: &'a Shared<'s>,
    /// The vault's own directory (device, inode), never backed up into itself.
    pub(super) vault_dir: Option<(u64, u64)>,
    pub(super) excludes: &'a Patterns,
    /// Leave out directories tagged with a `CACHEDIR.TAG`.
    pub(super) exclude_caches: bool,
    /// Do not descend into another file system below a source.
    pub(super) one_file_system: bool,
    pub(super) file_tx: Sender<FileJob>,
    pub(super) dir_tx: Sender<Vec<DirJob>>,
    /// Finished directories not yet handed to the finisher (in post-order).
    pub(super) dirs: Vec<DirJob>,
    pub(super) next_dir: u64,
    /// Entries left out of the snapshot.
    pub(super) warnings: Vec<String>,
    /// Remarks that lose nothing.
    pub(super) notes: Vec<String>,
    /// Entries put in trees so far (an upper bound: the finisher may still
    /// drop files it could not read).
    pub(super) entries: u64,
    /// Files new, changed and unmodified against the parent.
    pub(super) changes: Changes,
}

impl Walker<'_, '_> {
    /// Why directory `child` (in `parent`, inside a source) is left out,
    /// if it is: a tagged cache, or another file system.
    fn left_out_dir(&self, parent: &Path, child: &Path, meta: &Metadata) -> Option<&'static str> {
        if self.exclude_caches && is_cache_dir(child) {
            return Some("a cache directory (CACHEDIR.TAG, --exclude-caches)");
        }
        if self.one_file_system && fs::metadata(parent).is_ok_and(|p| p.dev() != meta.dev()) {
            return Some("another file system (--one-file-system)");
        }
        None
    }

    /// Walks everything `trie` asks for, then hands the finisher the
    /// directories still bundled.
    pub(super) fn walk_root(&mut self, trie: &PathTrie, parent: Option<Tree>) -> Result<()> {
        let limit = (!trie.whole).then_some(trie);
        self.walk_dir(Path::new("/"), limit, parent.as_ref())?;
        self.send_dirs()
    }

    /// Queues a finished directory for the finisher. Directories travel in
    /// bundles: one hand-off (and wake-up) per directory was most of the
    /// thread switching of a backup that finds nothing changed.
    fn queue_dir(&mut self, job: DirJob) -> Result<()> {
        self.dirs.push(job);
        if self.dirs.len() >= DIR_BUNDLE {
            self.send_dirs()?;
        }
        Ok(())
    }

    fn send_dirs(&mut self) -> Result<()> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        let bundle = std::mem::take(&mut self.dirs);
        self.dir_tx.send(bundle).map_err(aborted)
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
            if sub.is_none() && self.excludes.is_match(&child) {
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
                self.warn(format!(
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
            if kind == Kind::Dir && sub.is_none() {
                if let Some(why) = self.left_out_dir(path, &child, &meta) {
                    self.notes
                        .push(format!("{}: {why} (left out)", child.display()));
                    continue;
                }
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
                            self.warn(format!("{context}: {source} (skipped)"));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Kind::File => match self.file_change(old, &meta, &child) {
                    Change::Unmodified => {
                        let o = old.ok_or_else(|| aborted(()))?;
                        entry.content = o.content.clone();
                        entry.xattrs = o.xattrs.clone();
                        self.shared.progress.files.fetch_add(1, Ordering::Relaxed);
                        self.shared
                            .progress
                            .bytes
                            .fetch_add(meta.len(), Ordering::Relaxed);
                        Pending::Ready
                    }
                    Change::New | Change::Changed => {
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
        self.queue_dir(DirJob {
            index,
            entries,
            batches,
        })?;
        Ok(index)
    }

    /// How the file at `path` compares with its parent entry `old`;
    /// counted, and told to [`super::Progress::on_file`].
    fn file_change(&mut self, old: Option<&Entry>, meta: &Metadata, path: &Path) -> Change {
        let change = match old {
            Some(o) if select::unchanged(o, &FileStat::of(meta)) => Change::Unmodified,
            Some(_) => Change::Changed,
            None => Change::New,
        };
        self.changes.count(change);
        if let Some(tell) = &self.shared.progress.on_file {
            tell(change, path);
        }
        change
    }

    /// A left-out entry: a warning, and one more error on the progress
    /// display.
    fn warn(&mut self, warning: String) {
        self.shared.progress.errors.fetch_add(1, Ordering::Relaxed);
        self.warnings.push(warning);
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

/// Whether `dir` holds a `CACHEDIR.TAG` starting with the convention's
/// signature (<https://bford.info/cachedir/>).
fn is_cache_dir(dir: &Path) -> bool {
    const SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";
    let mut head = [0u8; SIGNATURE.len()];
    fs::File::open(dir.join("CACHEDIR.TAG"))
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| head == SIGNATURE)
}
