//! A vault on object storage or SFTP (`s3://BUCKET/PREFIX`,
//! `sftp://USER@HOST[:PORT]/PATH`) as a [`Backend`], through one Apache
//! OpenDAL operator ([`store::Objects`]).
//!
//! ```text
//! PREFIX/vault.json              the config, as a local vault's
//! PREFIX/snapshots/<id>.json     one record per snapshot, as a local vault's
//! PREFIX/packs/<hh>/<pack>       sealed blobs back to back (pack.rs)
//! PREFIX/index/<pack>            the pack's index (ids, offsets, lengths)
//! PREFIX/locks/<kind>-<random>   backup and prune locks (lock.rs)
//! ```
//!
//! The service sees only sealed bytes, chunk ids and sizes. Costs: a
//! backup sends one PUT per ~16 MiB pack and one per index, a few packs in
//! flight ([`UPLOADS`]); existence checks are answered from the index in
//! memory, loaded at open from a local cache
//! (`$XDG_CACHE_HOME/cairn/objects/<vault>/index/`) that is verified
//! (each cached index carries its checksum) and completed from the
//! service: losing it costs one GET per pack, never correctness. Restores
//! read ranges of packs, adjacent blobs in one request ([`coalesce`]).
//!
//! Concurrency without a coordinator: a backup holds a shared lock object
//! and a prune an exclusive one from before it reads the snapshot list
//! until its last delete ([`lock`]); `docs/FORMATS.md` has the argument.

pub mod lock;
pub mod pack;
/// The object store layer (URL, OpenDAL operator, request counters),
/// shared with storage nodes whose chunks live in a bucket.
pub use cairn_chunkstore::object as store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use cairn_proto::{ChunkId, JobId, SnapshotId, VaultId};

use super::backend::{Backend, Deleted, Hold, LockKind};
use super::sink::{Blobs, Sink, Written};
use super::{CreateOptions, Vault, VaultConfig};
use crate::error::{Error, Result};
use crate::snapshot::SnapshotRecord;
use lock::HeldLock;
use pack::{Entry, Finished, Index, Location, PackBuilder, PackName, PACK_BYTES};
use store::{ObjectUrl, Objects, Upload};

/// Pack uploads in flight during a backup.
pub const UPLOADS: usize = 4;
/// Ranged reads in flight during a restore or check.
pub const READS: usize = 8;
/// Adjacent blobs are fetched in one ranged read up to this many bytes.
pub const SPAN_BYTES: u64 = 8 * 1024 * 1024;

const CONFIG: &str = "vault.json";

/// How old a temporary object (an interrupted write's, SFTP) must be for
/// prune to delete it: far longer than any one object's upload takes.
pub const TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long a backup waits for a prune to finish before giving up.
const BACKUP_WAIT: (u32, Duration) = (24, Duration::from_secs(5));

impl Vault {
    /// Creates a new vault at `url` (which must not hold one), with
    /// settings from `env` ([`ObjectUrl`] lists them).
    pub fn create_object(
        url: &ObjectUrl,
        password: &[u8],
        options: &CreateOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<VaultConfig> {
        let objects = Objects::open(url, env)?;
        if objects.read(CONFIG)?.is_some() {
            return Err(Error::Invalid(format!("{url} already holds a cairn vault")));
        }
        let config = super::new_config(password, options)?;
        objects.write(CONFIG, super::config_json(&config)?)?;
        Ok(config)
    }

    /// Opens and unlocks the vault at `url` with `password`.
    pub fn open_object(
        url: &ObjectUrl,
        password: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let objects = Objects::open(url, env)?;
        let bytes = objects
            .read(CONFIG)?
            .ok_or_else(|| Error::NotFound(format!("{url} is not a cairn vault (no {CONFIG})")))?;
        let config: VaultConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Format(format!("{url}/{CONFIG}: {e}")))?;
        let (keys, slot) = super::slots::unlock(config.vault_id, &config.slots, password)?;
        let cache = crate::remote::store::cache_root(env).map(|r| {
            r.join("objects")
                .join(config.vault_id.to_hex())
                .join("index")
        });
        let backend = ObjectBackend::open(objects, config.vault_id, cache)?;
        let mut vault = Self::with_backend(config, keys, Box::new(backend));
        vault.slot = slot;
        Ok(vault)
    }
}

/// A vault on an object store.
pub struct ObjectBackend {
    objects: Arc<Objects>,
    vault: VaultId,
    index: RwLock<Index>,
    /// Where verified copies of the indexes are kept, if anywhere.
    cache: Option<PathBuf>,
    /// The lock of the backup or prune running through this backend.
    held: Mutex<Weak<HeldLock>>,
}

impl ObjectBackend {
    /// Opens the vault `vault` in `objects`, loading the pack index.
    fn open(objects: Objects, vault: VaultId, cache: Option<PathBuf>) -> Result<Self> {
        let backend = Self {
            objects: Arc::new(objects),
            vault,
            index: RwLock::new(Index::default()),
            cache,
            held: Mutex::new(Weak::new()),
        };
        backend.load_index()?;
        Ok(backend)
    }

    /// Brings the index up to date with the service: packs listed there
    /// and unknown here are read from the cache (when their copy verifies)
    /// or fetched; packs gone from the service are forgotten.
    fn load_index(&self) -> Result<()> {
        let listed: HashSet<PackName> = self
            .objects
            .list("index/")?
            .iter()
            .filter_map(|n| PackName::parse(n))
            .collect();
        let mut index = self.index.write().map_err(|_| poisoned())?;
        let gone: Vec<PackName> = index
            .pack_names()
            .filter(|n| !listed.contains(n))
            .copied()
            .collect();
        for name in gone {
            index.remove(&name);
        }
        for name in listed {
            if index.has_pack(&name) {
                continue;
            }
            let cached = self.cache_path(&name).and_then(|p| fs::read(p).ok());
            let entries = match cached.map(|b| pack::decode_index(&b)) {
                Some(Ok(entries)) => entries,
                _ => {
                    let key = name.index_key();
                    let Some(bytes) = self.objects.read(&key)? else {
                        continue; // deleted by a prune since the listing
                    };
                    let entries = pack::decode_index(&bytes).map_err(|e| {
                        Error::Integrity(format!("{}: {key}: {e}", self.objects.url()))
                    })?;
                    self.cache_index(&name, &bytes);
                    entries
                }
            };
            index.insert(name, entries);
        }
        self.prune_cache(&index);
        Ok(())
    }

    fn cache_path(&self, name: &PackName) -> Option<PathBuf> {
        self.cache.as_ref().map(|d| d.join(hex::encode(name.0)))
    }

    /// Keeps a verified copy of an index (best effort).
    fn cache_index(&self, name: &PackName, bytes: &[u8]) {
        if let Some(path) = self.cache_path(name) {
            let _ = crate::fsmeta::write_private(&path, bytes);
        }
    }

    /// Drops cached indexes of packs the index no longer has.
    fn prune_cache(&self, index: &Index) {
        let Some(dir) = &self.cache else { return };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let known =
                PackName::parse(&name.to_string_lossy()).is_some_and(|n| index.has_pack(&n));
            if !known {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Starts uploading a finished pack, then its index.
    fn ship(&self, done: Finished) -> (Upload, PackName, Vec<u8>, Vec<Entry>) {
        let upload = self.objects.start_writes(vec![
            (done.name.pack_key(), done.bytes),
            (done.name.index_key(), done.index.clone()),
        ]);
        (upload, done.name, done.index, done.entries)
    }

    /// Waits for an upload; its chunks are then stored and indexed.
    fn landed(&self, shipped: (Upload, PackName, Vec<u8>, Vec<Entry>)) -> Result<()> {
        let (upload, name, index_bytes, entries) = shipped;
        self.objects.finish(upload)?;
        self.cache_index(&name, &index_bytes);
        self.index
            .write()
            .map_err(|_| poisoned())?
            .insert(name, entries);
        Ok(())
    }

    /// Fails unless a lock of `kind` is held through this backend and has
    /// not lapsed.
    /// Deletes temporary objects interrupted writes left (SFTP only: S3
    /// writes are atomic) once they are [`TEMP_AGE`] old, under the prune
    /// lock, so no backup of this vault is writing.
    fn drop_stale_temporaries(&self) -> Result<()> {
        if !self.objects.writes_through_temporaries() {
            return Ok(());
        }
        self.check_held(LockKind::Prune, "deleting temporary objects")?;
        let cutoff = std::time::SystemTime::now() - TEMP_AGE;
        let stale = self.objects.stale_temporaries(cutoff)?;
        Ok(self.objects.delete_many(stale)?)
    }

    fn check_held(&self, kind: LockKind, what: &str) -> Result<()> {
        let held = self.held.lock().map_err(|_| poisoned())?.upgrade();
        match held {
            Some(l) if l.kind() == kind => l.check(),
            _ => Err(Error::Invalid(format!(
                "{}: {what} needs the vault's {kind:?} lock",
                self.objects.url()
            ))),
        }
    }

    /// Reads the blobs at `locs`, adjacent ones in one request.
    fn read_blobs(&self, locs: &[(ChunkId, Location)]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let spans = coalesce(locs, SPAN_BYTES);
        let ranges: Vec<(String, u64, u32)> = spans
            .iter()
            .map(|s| (s.pack.pack_key(), s.offset, s.len))
            .collect();
        let bytes = self.objects.read_ranges(&ranges, READS)?;
        let mut out = HashMap::with_capacity(locs.len());
        for (span, data) in spans.iter().zip(bytes) {
            for (id, at, len) in &span.blobs {
                out.insert(*id, data[*at..*at + *len].to_vec());
            }
        }
        Ok(out)
    }
}

fn poisoned() -> Error {
    Error::Invalid("an object vault's index lock was poisoned by a panic".into())
}

/// One ranged read covering adjacent blobs of a pack.
#[derive(Debug, PartialEq, Eq)]
pub struct Span {
    /// The pack.
    pub pack: PackName,
    /// Offset of the first blob.
    pub offset: u64,
    /// Bytes to read.
    pub len: u32,
    /// The blobs: id, offset within the span, length.
    pub blobs: Vec<(ChunkId, usize, usize)>,
}

/// Groups blob locations into ranged reads (pure): blobs that follow each
/// other in a pack share one read of at most `max` bytes (a lone larger
/// blob gets a read of its own).
pub fn coalesce(locs: &[(ChunkId, Location)], max: u64) -> Vec<Span> {
    let mut sorted: Vec<_> = locs.to_vec();
    sorted.sort_by_key(|(_, l)| (l.pack, l.offset));
    sorted.dedup_by_key(|(id, _)| *id);
    let mut out: Vec<Span> = vec![];
    for (id, l) in sorted {
        if let Some(s) = out.last_mut() {
            let end = s.offset + u64::from(s.len);
            if s.pack == l.pack && l.offset == end && end + u64::from(l.len) - s.offset <= max {
                s.blobs.push((id, s.len as usize, l.len as usize));
                s.len += l.len;
                continue;
            }
        }
        out.push(Span {
            pack: l.pack,
            offset: l.offset,
            len: l.len,
            blobs: vec![(id, 0, l.len as usize)],
        });
    }
    out
}

impl Backend for ObjectBackend {
    fn batches_reads(&self) -> bool {
        true
    }

    fn keeps_record_stats(&self) -> bool {
        true
    }

    fn lock(&self, kind: LockKind) -> Result<Option<Hold>> {
        let (attempts, wait) = match kind {
            LockKind::Backup => BACKUP_WAIT,
            // A prune retries on its own (`prune::run`).
            LockKind::Prune => (1, Duration::ZERO),
        };
        let held = Arc::new(HeldLock::take(&self.objects, kind, attempts, wait)?);
        // What other processes stored before the lock is now visible.
        self.load_index()?;
        *self.held.lock().map_err(|_| poisoned())? = Arc::downgrade(&held);
        Ok(Some(Box::new(held)))
    }

    fn requests(&self) -> u64 {
        self.objects.requests().total()
    }

    fn contains(&self, id: ChunkId) -> Result<bool> {
        Ok(self
            .index
            .read()
            .map_err(|_| poisoned())?
            .get(&id)
            .is_some())
    }

    fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let index = self.index.read().map_err(|_| poisoned())?;
        Ok(ids
            .iter()
            .filter(|id| index.get(id).is_none())
            .copied()
            .collect())
    }

    fn get_into(&self, id: ChunkId, out: &mut Vec<u8>) -> Result<bool> {
        let Some(loc) = self.index.read().map_err(|_| poisoned())?.get(&id) else {
            return Ok(false);
        };
        match self.read_blobs(&[(id, loc)])?.remove(&id) {
            Some(bytes) => {
                *out = bytes;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let locs: Vec<_> = {
            let index = self.index.read().map_err(|_| poisoned())?;
            ids.iter()
                .filter_map(|id| index.get(id).map(|l| (*id, l)))
                .collect()
        };
        self.read_blobs(&locs)
    }

    fn list_chunks(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<()> {
        for (id, size) in self.index.read().map_err(|_| poisoned())?.chunks() {
            visit(id, size);
        }
        Ok(())
    }

    /// Drops packs holding only `ids`, repacks those holding some (their
    /// other blobs are written to new packs first), under the prune lock.
    fn delete_chunks(&self, ids: &[ChunkId], _job: Option<JobId>) -> Result<Deleted> {
        self.check_held(LockKind::Prune, "deleting chunks")?;
        let dead: HashSet<ChunkId> = ids.iter().copied().collect();
        let sweep = pack::plan_sweep(self.index.read().map_err(|_| poisoned())?.packs(), &dead);
        // Live blobs of mixed packs move first, so no moment lacks them.
        let mut builder = PackBuilder::default();
        let mut shipped = VecDeque::new();
        let mut moved = HashSet::new();
        for (name, live) in &sweep.repack {
            let locs: Vec<_> = live
                .iter()
                .filter(|e| moved.insert(e.id))
                .map(|e| {
                    (
                        e.id,
                        Location {
                            pack: *name,
                            offset: e.offset,
                            len: e.len,
                        },
                    )
                })
                .collect();
            let mut blobs = self.read_blobs(&locs)?;
            for (id, _) in &locs {
                let bytes = blobs.remove(id).unwrap_or_default();
                builder.push(*id, &bytes)?;
            }
            if builder.len() >= PACK_BYTES {
                shipped.push_back(self.ship(std::mem::take(&mut builder).finish()));
            }
        }
        if !builder.is_empty() {
            shipped.push_back(self.ship(builder.finish()));
        }
        for s in shipped {
            self.landed(s)?;
        }
        let old = sweep.drop.iter().chain(sweep.repack.iter().map(|(n, _)| n));
        for name in old {
            self.check_held(LockKind::Prune, "deleting chunks")?;
            // The index goes first: a pack without an index is ignored.
            self.objects.delete(&name.index_key())?;
            self.objects.delete(&name.pack_key())?;
            self.index.write().map_err(|_| poisoned())?.remove(name);
            if let Some(p) = self.cache_path(name) {
                let _ = fs::remove_file(p);
            }
        }
        self.drop_stale_temporaries()?;
        Ok(Deleted {
            deleted: sweep.deleted,
            kept_recently_used: 0,
        })
    }

    /// Uploads are stored when [`Sink::store_all`] returns.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sink(&self) -> Box<dyn Sink + '_> {
        Box::new(ObjectSink { backend: self })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let mut out = vec![];
        for name in self.objects.list("snapshots/")? {
            if !name.ends_with(".json") {
                continue;
            }
            let key = format!("snapshots/{name}");
            // Forgotten since the listing: not a snapshot any more.
            let Some(bytes) = self.objects.read(&key)? else {
                continue;
            };
            let rec = SnapshotRecord::from_json(&bytes)
                .map_err(|e| Error::Format(format!("{}/{key}: {e}", self.objects.url())))?;
            if rec.vault != self.vault {
                return Err(Error::Integrity(format!(
                    "{}/{key} belongs to another vault",
                    self.objects.url()
                )));
            }
            out.push(rec);
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Commits only while the backup's lock holds (a lapsed lock may have
    /// let a prune delete chunks this snapshot reuses).
    fn commit_snapshot(
        &self,
        record: &SnapshotRecord,
        _label: &str,
        _job: Option<JobId>,
    ) -> Result<()> {
        self.check_held(LockKind::Backup, "committing a snapshot")?;
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Format(e.to_string()))?;
        Ok(self
            .objects
            .write(&format!("snapshots/{}.json", record.id), json)?)
    }

    fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        Ok(self.objects.delete(&format!("snapshots/{id}.json"))?)
    }

    fn rewrap(&self, config: &VaultConfig) -> Result<()> {
        Ok(self.objects.write(CONFIG, super::config_json(config)?)?)
    }
}

/// An object vault's backup writer: blobs the index lacks go into packs of
/// [`PACK_BYTES`], [`UPLOADS`] packs in flight; each pack's chunks count
/// as stored once the pack and its index are.
struct ObjectSink<'a> {
    backend: &'a ObjectBackend,
}

impl Sink for ObjectSink<'_> {
    fn dedups(&self) -> bool {
        true
    }

    fn store_all(&self, mut blobs: Blobs) -> Result<Written> {
        let b = self.backend;
        let mut out = Written::default();
        let mut seen = HashSet::new();
        let mut builder = PackBuilder::default();
        let mut in_flight = VecDeque::new();
        while let Some(blob) = blobs.recv() {
            if !seen.insert(blob.id) || b.contains(blob.id)? {
                continue;
            }
            builder.push(blob.id, &blob.bytes)?;
            out.chunks += 1;
            out.sealed_bytes += blob.bytes.len() as u64;
            out.plain_bytes += blob.plain_len;
            if builder.len() >= PACK_BYTES {
                in_flight.push_back(b.ship(std::mem::take(&mut builder).finish()));
                if in_flight.len() >= UPLOADS {
                    if let Some(first) = in_flight.pop_front() {
                        b.landed(first)?;
                    }
                }
            }
        }
        if !builder.is_empty() {
            in_flight.push_back(b.ship(builder.finish()));
        }
        for s in in_flight {
            b.landed(s)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_blobs_share_a_read() {
        let (a, b) = (PackName([1; 32]), PackName([2; 32]));
        let at = |pack, offset, len| Location { pack, offset, len };
        let id = |n: u8| ChunkId([n; 32]);
        let locs = [
            (id(3), at(a, 20, 5)),
            (id(1), at(a, 0, 10)),
            (id(2), at(a, 10, 10)),
            (id(4), at(b, 0, 10)),
            (id(5), at(a, 40, 10)),
            (id(1), at(a, 0, 10)),
        ];
        let spans = coalesce(&locs, 100);
        assert_eq!(spans.len(), 3);
        assert_eq!((spans[0].pack, spans[0].offset, spans[0].len), (a, 0, 25));
        assert_eq!(
            spans[0].blobs,
            vec![(id(1), 0, 10), (id(2), 10, 10), (id(3), 20, 5)]
        );
        assert_eq!((spans[1].offset, spans[1].len), (40, 10));
        assert_eq!(spans[2].pack, b);
        // The size cap splits a run.
        assert_eq!(coalesce(&locs, 20).len(), 4);
        assert!(coalesce(&[], 10).is_empty());
    }
}
