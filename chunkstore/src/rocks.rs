//! The RocksDB engine behind [`Store`].
//!
//! Two column families: `chunks` holds the sealed values (large ones in
//! RocksDB's integrated BlobDB files, so compactions move keys, not
//! megabytes) and `meta` holds one [`ChunkMeta`] per chunk. Both are written
//! in one atomic `WriteBatch` with a synced WAL, so a chunk is never present
//! without its metadata and a crash never leaves half a batch. Values are
//! sealed (encrypted, already compressed) so RocksDB compression is off.
//!
//! A storage node also asks the store for what replication needs beyond the
//! [`Store`] trait: puts that keep an existing copy ([`PutMode`]) and say
//! which chunks were new, per-vault usage counters ([`Usage`], kept in memory
//! once [`RocksStore::track_usage`] is called), a scan of every chunk's
//! metadata, and reads that tell a damaged copy from a missing one.
//!
//! A storage node may keep its values in an object store instead
//! ([`RocksStore::open_on_objects`]): one object per chunk at
//! `chunks/<vault>/<chunk>` (hex), metadata and touch times still in the
//! local `meta` family. A value is written before its metadata and deleted
//! after it. Uploads and object deletes run outside the usage lock (so a
//! cloud-backed node writes many chunks at once), each holding a claim on
//! its chunk keys ([`Claims`]): a put, a GC sweep or a delete of the same
//! chunk waits for the claim, so two writers never both count a chunk as
//! new and a sweep never deletes an object a concurrent put is about to
//! describe. A crash between the object and its metadata leaves an object
//! nothing describes (space, never a wrong answer), which
//! [`RocksStore::sweep_orphans`] deletes once it is older than a safe age
//! ([`orphan`], pure). A read checks the object against the metadata as a
//! local value is checked: a flipped or deleted object is a damaged copy,
//! which the scrub and read repair rewrite from another replica.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

use cairn_proto::{ChunkId, VaultId};
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, ColumnFamilyDescriptor, CompactOptions,
    DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use serde::{Deserialize, Serialize};

use crate::answer::{Fetched, Swept};
use crate::object::{Listed, Objects, TEMP_MARK};
use crate::{ChunkKey, ChunkMeta, Durability, Error, Result, Store};

const CF_CHUNKS: &str = "chunks";
const CF_META: &str = "meta";

/// Level-0 files that start a compaction (RocksDB's default is 4). A
/// backup of a few hundred MiB flushes about ten of them; with the default
/// the next run, often a short one that finds nothing changed, opened the
/// store into a compaction that relocates blobs (blob GC) and waited for it
/// at exit. Point reads check every level-0 file's bloom filter, so more of
/// them cost little; it stays below the write slowdown trigger (20).
const L0_COMPACTION_TRIGGER: i32 = 16;

/// Percent of the blob bytes that must be garbage (values of deleted chunks
/// still in their files) before [`RocksStore::reclaim`] relocates live
/// values. Relocation rewrites a quarter of the store's values, so a
/// prune that deleted a few chunks (or a repair that deleted one) must not
/// pay it; restic's prune, for comparison, repacks past 5% unused.
const RELOCATE_GARBAGE_PERCENT: u64 = 10;

/// Whether `garbage` of `live` blob bytes is worth relocating the oldest
/// blob files' values for: at least a tenth (pure).
pub fn worth_relocating(live: u64, garbage: u64) -> bool {
    at_least_percent(garbage, live, RELOCATE_GARBAGE_PERCENT)
}

/// Percent of the chunks family's table entries that must be deletions
/// before [`RocksStore::reclaim`] compacts the whole family. A whole
/// compaction rewrites every table file, and values under
/// [`StoreOptions::min_blob_size`] live in them: for a vault of a million
/// tiny files that is most of the vault, which `check` deleting one
/// damaged chunk must not rewrite. Deletions below the threshold stay as
/// tombstones and count towards the next reclaim.
const COMPACT_DELETIONS_PERCENT: u64 = 1;

/// Whether `deletions` among the `entries` of the chunks family's table
/// files (tombstones included) are worth a whole compaction: at least one
/// in a hundred (pure).
pub fn worth_compacting(entries: u64, deletions: u64) -> bool {
    at_least_percent(deletions, entries, COMPACT_DELETIONS_PERCENT)
}

/// `part` is not zero and at least `percent` of `whole`, without overflow.
fn at_least_percent(part: u64, whole: u64, percent: u64) -> bool {
    part > 0 && u128::from(part) * 100 >= u128::from(whole) * u128::from(percent)
}

/// The `# entries` and `# deletions` counts in RocksDB's text form of
/// table properties (`rocksdb.aggregated-table-properties`:
/// `# entries=12; # deletions=3; ...`); `None` if either is missing or
/// not a number.
fn table_counts(properties: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        properties.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key.trim() == name).then(|| value.trim().parse::<u64>().ok())?
        })
    };
    Some((field("# entries")?, field("# deletions")?))
}

/// Write-ahead logs an opened store may find before it retires them.
/// RocksDB 7.8 (Debian's, linked) with atomic flush only lets go of the
/// logs a recovery replays once a flush has happened: each open that writes nothing (a
/// backup that finds nothing changed) left one more empty log behind, and
/// every later open read them all again. An hourly schedule on an unchanged
/// source would pile up thousands.
const IDLE_WALS: usize = 4;

/// The default column family's key whose flush retires idle logs; nothing
/// reads it.
const WAL_TRIM_KEY: &[u8] = b"wal-trim";

/// Tunables of a [`RocksStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Values at least this large go to blob files rather than SST files.
    pub min_blob_size: u64,
    /// Size of one memtable; bulk writes are flushed in steps of this size.
    pub write_buffer_size: usize,
    /// Whether compactions relocate the live values of the oldest quarter
    /// of blob files (RocksDB's blob GC), which gives the space of deleted
    /// chunks back as the store is written. It rewrites values nothing
    /// deleted as well: a 3.9 GB backup into a new local vault rewrote its
    /// values about three times over, 10-13% of the backup's time. A store
    /// that only grows between explicit deletes (a local vault) turns it
    /// off and calls [`RocksStore::reclaim`] after deleting.
    pub blob_gc: bool,
}

impl StoreOptions {
    /// The defaults, usable in constants (`StoreOptions { blob_gc: false,
    /// ..StoreOptions::DEFAULT }`).
    pub const DEFAULT: Self = Self {
        min_blob_size: 1024,
        write_buffer_size: 8 * 1024 * 1024,
        blob_gc: true,
    };
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a put does with a chunk that is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PutMode {
    /// Keep the stored copy and refresh its touch time: uploads. A chunk is
    /// sealed with a random nonce, so a re-upload has other bytes; keeping
    /// the first copy keeps the replicas of a chunk byte-identical.
    KeepExisting,
    /// Replace the stored copy: repair, which writes a verified copy over a
    /// damaged one.
    Overwrite,
}

/// Chunks and bytes (sealed) stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Number of chunks.
    pub chunks: u64,
    /// Bytes of sealed values.
    pub bytes: u64,
}

/// Object writes of one batch in flight at once.
const OBJECT_WRITES: usize = 8;

/// Objects the orphan sweep checks (and claims) at a time.
const SWEEP_STEP: usize = 256;

/// Where a [`RocksStore`] keeps its values.
enum Values {
    /// In the `chunks` column family, beside the metadata.
    Local,
    /// One object per chunk in an object store.
    Objects(Box<Objects>),
}

/// The directory of chunk objects in an object store.
const CHUNK_OBJECTS: &str = "chunks/";

/// The object key of a chunk's value in an object store.
fn object_key(key: &ChunkKey) -> String {
    format!("{CHUNK_OBJECTS}{}/{}", key.vault, key.chunk)
}

/// The chunk whose value object `key` is (the inverse of [`object_key`])
/// and whether `key` is a temporary of a write of it ([`TEMP_MARK`]);
/// `None` for any other name.
fn chunk_of_object(key: &str) -> Option<(ChunkKey, bool)> {
    let (value, temporary) = match key.split_once(TEMP_MARK) {
        Some((value, _)) => (value, true),
        None => (key, false),
    };
    let (vault, chunk) = value.strip_prefix(CHUNK_OBJECTS)?.split_once('/')?;
    Some((
        ChunkKey::new(vault.parse().ok()?, chunk.parse().ok()?),
        temporary,
    ))
}

/// How old an object nothing describes must be before the orphan sweep
/// deletes it. A put describes its object within seconds of writing it and
/// holds a claim meanwhile (which the sweep honours); the margin covers a
/// service clock ahead of ours (modification times are the service's).
pub const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One object under `chunks/` as the orphan sweep sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrphanView {
    /// Whether it is a temporary of a write of the chunk ([`TEMP_MARK`],
    /// SFTP) rather than the chunk's value ([`object_key`]).
    pub temporary: bool,
    /// When the service last wrote it, if it says.
    pub modified: Option<SystemTime>,
    /// Whether the store has metadata for the chunk.
    pub described: bool,
    /// Whether a put or delete of the chunk is in flight (holds its claim).
    pub in_flight: bool,
}

/// Whether the orphan sweep deletes an object: one last written before
/// `cutoff` (an unknown time never qualifies), of a chunk no put or delete
/// is working on, and either a chunk value with no metadata (a crash came
/// between the object and its metadata) or a write's leftover temporary.
/// Pure.
pub fn orphan(o: &OrphanView, cutoff: SystemTime) -> bool {
    let old = o.modified.is_some_and(|m| m < cutoff);
    old && !o.in_flight && (o.temporary || !o.described)
}

/// The chunk keys whose objects a put, a sweep or a delete is writing or
/// deleting outside the usage lock; one holder per key at a time.
#[derive(Default)]
struct Claims {
    held: Mutex<HashSet<ChunkKey>>,
    freed: Condvar,
}

/// Claims held on some keys, released on drop.
struct Claim<'a> {
    claims: &'a Claims,
    keys: Vec<ChunkKey>,
}

impl Claims {
    fn held(&self) -> MutexGuard<'_, HashSet<ChunkKey>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims every key of `keys` at once, waiting while any is held by
    /// another claim. Taking all or none means two claims never wait for
    /// each other (no deadlock).
    fn claim(&self, keys: impl IntoIterator<Item = ChunkKey>) -> Claim<'_> {
        let mut keys: Vec<ChunkKey> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut held = self.held();
        while keys.iter().any(|k| held.contains(k)) {
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.extend(keys.iter().copied());
        Claim { claims: self, keys }
    }

    /// Claims the keys of `keys` nobody holds, without waiting; answers
    /// the claim and, per key of `keys`, whether another claim held it.
    fn claim_free(&self, keys: &[ChunkKey]) -> (Claim<'_>, Vec<bool>) {
        let mut held = self.held();
        let busy: Vec<bool> = keys.iter().map(|k| held.contains(k)).collect();
        let mut mine: Vec<ChunkKey> = keys
            .iter()
            .zip(&busy)
            .filter(|(_, b)| !**b)
            .map(|(k, _)| *k)
            .collect();
        mine.sort_unstable();
        mine.dedup();
        held.extend(mine.iter().copied());
        (
            Claim {
                claims: self,
                keys: mine,
            },
            busy,
        )
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.held();
        for k in &self.keys {
            held.remove(k);
        }
        drop(held);
        self.claims.freed.notify_all();
    }
}

/// A [`Store`] in one RocksDB database directory (values there too, or in
/// an object store).
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    values: Values,
    /// Per-vault usage, once tracked; metadata writes and the usage they
    /// change happen under this lock.
    usage: Mutex<Option<HashMap<VaultId, Usage>>>,
    /// [`StoreOptions::blob_gc`] as opened: a reclaim relocates only if it
    /// is off, and turns it off again.
    blob_gc: bool,
    /// Keys whose value a put or delete is working on; a claim keeps the
    /// "was it new?" answer of a put true until its metadata is written.
    claims: Claims,
}

impl RocksStore {
    /// Opens (creating if missing) the store in `path`. Fails with an error
    /// for which [`Error::is_locked`] holds if another process has it open.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(3);
        db_opts.set_max_total_wal_size(256 * 1024 * 1024);
        // Writes may skip the WAL (`Durability::AtFlush`): column families
        // must then flush together, or a crash could leave metadata for a
        // chunk whose value was never flushed. This covers the flushes
        // RocksDB starts itself; `flush` below orders its own.
        db_opts.set_atomic_flush(true);

        let mut chunks = Options::default();
        chunks.set_enable_blob_files(true);
        chunks.set_min_blob_size(options.min_blob_size);
        chunks.set_blob_file_size(256 * 1024 * 1024);
        chunks.set_enable_blob_gc(options.blob_gc);
        chunks.set_compression_type(DBCompressionType::None);
        chunks.set_blob_compression_type(DBCompressionType::None);
        chunks.set_write_buffer_size(options.write_buffer_size);
        chunks.set_max_write_buffer_number(2);
        chunks.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);
        // Values under `min_blob_size` live in the SST files beside their
        // keys, and with 4 KiB blocks whose index entries each held a
        // whole key, the index cost 3.2 MB for a million tiny files.
        // 16 KiB blocks and delta-encoded index keys take 4.3 MB (0.8%)
        // off that vault, which made it smaller than restic's; restores
        // and backups of it and of the linux tree timed the same.
        let mut chunk_table = BlockBasedOptions::default();
        chunk_table.set_block_size(16 * 1024);
        chunk_table.set_index_block_restart_interval(16);
        chunks.set_block_based_table_factory(&chunk_table);

        let mut meta = Options::default();
        // Metadata records are small and half predictable (version, the
        // size's high bytes, the touch stamp shared by a batch, sequence
        // numbers): zstd level 1 takes about a third off this family, which
        // for a million tiny files is 18 MB, 3.5% of the vault (LZ4: 14 MB).
        // Chunk values are sealed, so the chunks family stays uncompressed.
        meta.set_compression_type(DBCompressionType::Zstd);
        meta.set_compression_options(-14, 1, 0, 0);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_size(16 * 1024);
        meta.set_block_based_table_factory(&table);
        meta.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);

        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_CHUNKS, chunks),
            ColumnFamilyDescriptor::new(CF_META, meta),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|source| Error::Db {
            path: path.display().to_string(),
            source,
        })?;
        let store = Self {
            db,
            path: path.to_path_buf(),
            values: Values::Local,
            usage: Mutex::new(None),
            blob_gc: options.blob_gc,
            claims: Claims::default(),
        };
        store.retire_idle_wals()?;
        Ok(store)
    }

    /// The write-ahead logs in the store's directory (0 if it cannot be
    /// listed: RocksDB just opened it, and trimming is only housekeeping).
    fn wal_count(&self) -> usize {
        std::fs::read_dir(&self.path).map_or(0, |dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
    }

    /// Past [`IDLE_WALS`] logs, flushes one tiny write to the default
    /// column family: the flush moves RocksDB's oldest log to keep past
    /// every log recovery replayed, and it deletes them (see
    /// [`IDLE_WALS`]). Costs one small table file every few idle opens.
    fn retire_idle_wals(&self) -> Result<()> {
        if self.wal_count() <= IDLE_WALS {
            return Ok(());
        }
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        self.db
            .put_opt(WAL_TRIM_KEY, [], &w)
            .and_then(|()| self.db.flush())
            .map_err(|e| self.db_err(e))
    }

    /// Opens the store in `path` for metadata, keeping the values in
    /// `objects`, after checking that the object store answers (a missing
    /// bucket or refused credentials fail here, not at the first upload).
    /// Values a previous local-value store kept in `path` are not read:
    /// those copies read as damaged, and the scrub rewrites them into the
    /// object store from other replicas.
    ///
    /// # Errors
    ///
    /// The database cannot be opened, or the object store refused the
    /// check ([`Error::Auth`], [`Error::NoBucket`], [`Error::Service`]).
    pub fn open_on_objects(path: &Path, options: &StoreOptions, objects: Objects) -> Result<Self> {
        objects.check()?;
        let mut store = Self::open(path, options)?;
        store.values = Values::Objects(Box::new(objects));
        Ok(store)
    }

    /// The object store holding the values, if they are not local.
    pub fn objects(&self) -> Option<&Objects> {
        match &self.values {
            Values::Local => None,
            Values::Objects(o) => Some(o),
        }
    }

    fn usage_lock(&self) -> MutexGuard<'_, Option<HashMap<VaultId, Usage>>> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts keeping per-vault usage in memory (one scan of the metadata
    /// column); later puts and deletes keep it current. Idempotent.
    ///
    /// # Errors
    ///
    /// The scan failed.
    pub fn track_usage(&self) -> Result<()> {
        let mut guard = self.usage_lock();
        if guard.is_some() {
            return Ok(());
        }
        let mut map: HashMap<VaultId, Usage> = HashMap::new();
        self.for_each_chunk(&mut |key, meta| {
            let u = map.entry(key.vault).or_default();
            u.chunks += 1;
            u.bytes += u64::from(meta.size);
            Ok(())
        })?;
        *guard = Some(map);
        Ok(())
    }

    /// Usage of one vault on this store (tracking it from now on).
    ///
    /// # Errors
    ///
    /// The first call's scan failed.
    pub fn usage(&self, vault: &VaultId) -> Result<Usage> {
        self.track_usage()?;
        Ok(self
            .usage_lock()
            .as_ref()
            .and_then(|m| m.get(vault).copied())
            .unwrap_or_default())
    }

    /// Usage of every vault with chunks here (tracking it from now on).
    ///
    /// # Errors
    ///
    /// The first call's scan failed.
    pub fn usage_by_vault(&self) -> Result<Vec<(VaultId, Usage)>> {
        self.track_usage()?;
        let mut all: Vec<(VaultId, Usage)> = self
            .usage_lock()
            .as_ref()
            .map(|m| m.iter().map(|(v, u)| (*v, *u)).collect())
            .unwrap_or_default();
        all.sort_unstable_by_key(|(v, _)| *v);
        Ok(all)
    }

    /// Stores chunks like [`Store::put_batch`], keeping or replacing copies
    /// already stored as `mode` says, and answers for each chunk whether it
    /// was new here. A key repeated within the batch counts once.
    ///
    /// # Errors
    ///
    /// The write failed (nothing of the batch is stored then).
    pub fn put_chunks(
        &self,
        chunks: &[(ChunkKey, &[u8])],
        now: u64,
        durability: Durability,
        mode: PutMode,
    ) -> Result<Vec<bool>> {
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        // The claim keeps every other put, sweep and delete of these keys
        // out until the metadata is written, so what is read here stays
        // true while the values upload without the usage lock.
        let _claim = self.claims.claim(chunks.iter().map(|(k, _)| *k));
        let mut seen = HashSet::with_capacity(chunks.len());
        let mut writes = Vec::with_capacity(chunks.len());
        let mut uploads = Vec::new();
        for (key, sealed) in chunks {
            let first = seen.insert(*key);
            let write = first && (mode == PutMode::Overwrite || self.meta_of(key)?.is_none());
            if write && matches!(self.values, Values::Objects(_)) {
                uploads.push((object_key(key), sealed.to_vec()));
            }
            writes.push((first, write));
        }
        // Values before the metadata that describes them.
        if let Values::Objects(objects) = &self.values {
            objects.write_many(uploads, OBJECT_WRITES)?;
        }
        let mut guard = self.usage_lock();
        let mut batch = WriteBatch::default();
        let mut new = Vec::with_capacity(chunks.len());
        let mut delta: Vec<(VaultId, i64, i64)> = Vec::new();
        for ((key, sealed), (first, write)) in chunks.iter().zip(writes) {
            if !first {
                new.push(false);
                continue;
            }
            let k = key.to_bytes();
            // Read again under the lock: a touch may have moved the time.
            let old = self.meta_of(key)?;
            if !write {
                if let Some(old) = old {
                    let touched = ChunkMeta {
                        touched: now.max(old.touched),
                        ..old
                    };
                    batch.put_cf(cf_meta, k, touched.encode());
                }
                new.push(false);
                continue;
            }
            let meta = ChunkMeta::describe(sealed, now)?;
            if let Values::Local = self.values {
                batch.put_cf(cf_chunks, k, sealed);
            }
            batch.put_cf(cf_meta, k, meta.encode());
            new.push(old.is_none());
            let (chunks_delta, old_bytes) = match old {
                Some(o) => (0, i64::from(o.size)),
                None => (1, 0),
            };
            delta.push((key.vault, chunks_delta, i64::from(meta.size) - old_bytes));
        }
        self.db_write(batch, &Self::write_options(durability))?;
        if let Some(map) = guard.as_mut() {
            for (vault, chunks, bytes) in delta {
                let u = map.entry(vault).or_default();
                u.chunks = u.chunks.saturating_add_signed(chunks);
                u.bytes = u.bytes.saturating_add_signed(bytes);
            }
        }
        Ok(new)
    }

    /// Refreshes the touch time of every present chunk of `keys` to `now`
    /// (never moving it backwards) and answers for each whether it is
    /// present. Durable on return (synced WAL): a touch a client was told
    /// about ("present, no need to upload") must survive a crash, or a
    /// sweep could delete the copy it protects.
    ///
    /// Touches, puts and [`RocksStore::delete_untouched`] take one lock, so
    /// a touch and a sweep of the same copy never interleave: either the
    /// touch comes first (the copy is kept) or the copy is gone first (the
    /// touch answers "absent" and the client uploads it again).
    ///
    /// # Errors
    ///
    /// The database failed (no touch of the batch is then durable).
    pub fn touch(&self, keys: &[ChunkKey], now: u64) -> Result<Vec<bool>> {
        let cf_meta = self.cf(CF_META)?;
        let _guard = self.usage_lock();
        let mut batch = WriteBatch::default();
        let mut present = Vec::with_capacity(keys.len());
        for key in keys {
            match self.meta_of(key)? {
                Some(old) => {
                    if old.touched < now {
                        let touched = ChunkMeta {
                            touched: now,
                            ..old
                        };
                        batch.put_cf(cf_meta, key.to_bytes(), touched.encode());
                    }
                    present.push(true);
                }
                None => present.push(false),
            }
        }
        if !batch.is_empty() {
            self.db_write(batch, &Self::synced())?;
        }
        Ok(present)
    }

    /// The sweep of garbage collection on this node: deletes each chunk of
    /// `keys` whose touch time is before `cutoff` (Unix seconds) and keeps
    /// the others, checking and deleting under the lock every touch and put
    /// takes (see [`RocksStore::touch`]). Answers per key what happened.
    /// Durable on return.
    ///
    /// # Errors
    ///
    /// The database failed (nothing of the batch is deleted then).
    pub fn delete_untouched(&self, keys: &[ChunkKey], cutoff: u64) -> Result<Vec<Swept>> {
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        let _claim = self.claims.claim(keys.iter().copied());
        let mut guard = self.usage_lock();
        let mut batch = WriteBatch::default();
        let mut gone: Vec<(ChunkKey, u32)> = Vec::new();
        let mut seen = HashSet::with_capacity(keys.len());
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let meta = self.meta_of(key)?;
            let fate = match meta {
                None => Swept::Absent,
                Some(m) if m.touched >= cutoff => Swept::Kept,
                Some(m) => {
                    if seen.insert(*key) {
                        let k = key.to_bytes();
                        batch.delete_cf(cf_meta, k);
                        batch.delete_cf(cf_chunks, k);
                        gone.push((*key, m.size));
                    }
                    Swept::Deleted
                }
            };
            out.push(fate);
        }
        if !batch.is_empty() {
            self.db_write(batch, &Self::synced())?;
        }
        let doomed: Vec<ChunkKey> = gone.iter().map(|(key, _)| *key).collect();
        Self::forget_usage(guard.as_mut(), gone);
        drop(guard);
        self.delete_objects(&doomed)?;
        Ok(out)
    }

    /// Up to `limit` chunk ids of `vault` stored here, ascending, each
    /// greater than `after` (all from the first when `None`).
    ///
    /// # Errors
    ///
    /// The database failed or a key is malformed.
    pub fn ids_after(
        &self,
        vault: VaultId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkId>> {
        let start = match after {
            Some(c) => ChunkKey::new(vault, c).to_bytes().to_vec(),
            None => vault.as_bytes().to_vec(),
        };
        let iter = self.db.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut ids = Vec::new();
        for item in iter {
            if ids.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(vault.as_bytes()) {
                break;
            }
            let key = ChunkKey::from_bytes(&k)
                .ok_or_else(|| Error::Malformed(format!("key of {} bytes", k.len())))?;
            if Some(key.chunk) != after {
                ids.push(key.chunk);
            }
        }
        Ok(ids)
    }

    fn forget_usage(map: Option<&mut HashMap<VaultId, Usage>>, gone: Vec<(ChunkKey, u32)>) {
        let Some(map) = map else {
            return;
        };
        for (key, size) in gone {
            if let Some(u) = map.get_mut(&key.vault) {
                u.chunks = u.chunks.saturating_sub(1);
                u.bytes = u.bytes.saturating_sub(u64::from(size));
                if u.chunks == 0 {
                    map.remove(&key.vault);
                }
            }
        }
    }

    /// Deletes the objects of `keys` once their metadata is gone (called
    /// holding their claim, so no put of the same chunk runs between; a
    /// crash before leaves orphans for [`RocksStore::sweep_orphans`]).
    fn delete_objects(&self, keys: &[ChunkKey]) -> Result<()> {
        match &self.values {
            Values::Local => Ok(()),
            Values::Objects(objects) => objects.delete_many(keys.iter().map(object_key).collect()),
        }
    }

    /// Deletes the objects under `chunks/` that [`orphan`] says to (chunk
    /// values nothing describes, leftover temporaries) last written before
    /// `cutoff` (normally now minus [`ORPHAN_AGE`]); answers how many. A
    /// chunk whose put is in flight is skipped, and metadata is read
    /// holding the chunk's claim, so a put that starts meanwhile waits and
    /// then writes its object again. Nothing to do for local values.
    ///
    /// # Errors
    ///
    /// The listing, the database or a delete failed.
    pub fn sweep_orphans(&self, cutoff: SystemTime) -> Result<usize> {
        let Values::Objects(objects) = &self.values else {
            return Ok(0);
        };
        let listed: Vec<Listed> = objects.list_all(CHUNK_OBJECTS)?;
        let mut swept = 0;
        for step in listed.chunks(SWEEP_STEP) {
            // Only old objects of chunks can qualify: skip the claims and
            // reads for the rest.
            let candidates: Vec<(&Listed, ChunkKey, bool)> = step
                .iter()
                .filter(|o| o.modified.is_some_and(|m| m < cutoff))
                .filter_map(|o| chunk_of_object(&o.key).map(|(k, temp)| (o, k, temp)))
                .collect();
            let keys: Vec<ChunkKey> = candidates.iter().map(|(_, k, _)| *k).collect();
            let (_claim, busy) = self.claims.claim_free(&keys);
            let mut doomed = Vec::new();
            for ((o, key, temporary), in_flight) in candidates.into_iter().zip(busy) {
                let view = OrphanView {
                    temporary,
                    modified: o.modified,
                    described: self.meta_of(&key)?.is_some(),
                    in_flight,
                };
                if orphan(&view, cutoff) {
                    doomed.push(o.key.clone());
                }
            }
            swept += doomed.len();
            objects.delete_many(doomed)?;
        }
        Ok(swept)
    }

    fn write_options(durability: Durability) -> WriteOptions {
        match durability {
            Durability::Now => Self::synced(),
            Durability::AtFlush => {
                let mut w = WriteOptions::default();
                w.disable_wal(true);
                w
            }
        }
    }

    /// Reads a chunk, telling a damaged copy ([`Fetched::Corrupt`]) from a
    /// missing one.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn fetch(&self, key: &ChunkKey) -> Result<Fetched> {
        let mut out = Vec::new();
        match self.get_into(key, &mut out) {
            Ok(true) => Ok(Fetched::Found {
                crc32: crc32fast::hash(&out),
                bytes: out,
            }),
            Ok(false) => Ok(Fetched::Absent),
            Err(Error::Corrupt { .. }) => Ok(Fetched::Corrupt),
            Err(e) => Err(e),
        }
    }

    /// The metadata of one chunk, if stored.
    ///
    /// # Errors
    ///
    /// The database failed or the record is malformed.
    pub fn meta(&self, key: &ChunkKey) -> Result<Option<ChunkMeta>> {
        self.meta_of(key)
    }

    /// Visits the metadata of every chunk of every vault, in key order.
    ///
    /// # Errors
    ///
    /// The database failed, a record is malformed, or `visit` failed.
    pub fn for_each_chunk(
        &self,
        visit: &mut dyn FnMut(ChunkKey, ChunkMeta) -> Result<()>,
    ) -> Result<()> {
        for item in self.db.iterator_cf(self.cf(CF_META)?, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let key = ChunkKey::from_bytes(&k)
                .ok_or_else(|| Error::Malformed(format!("key of {} bytes", k.len())))?;
            visit(key, ChunkMeta::decode(&v)?)?;
        }
        Ok(())
    }

    /// Flips bits in the stored value of `key` and leaves its metadata as
    /// it was: an offline fault-injection tool (`cairnd debug
    /// corrupt-replica`) for proving that reads detect and repair damage.
    /// Answers whether the chunk was there.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn damage_value(&self, key: &ChunkKey) -> Result<bool> {
        let cf = self.cf(CF_CHUNKS)?;
        let stored = match &self.values {
            Values::Local => self
                .db
                .get_cf(cf, key.to_bytes())
                .map_err(|e| self.db_err(e))?,
            Values::Objects(objects) => objects.read(&object_key(key))?,
        };
        let Some(mut value) = stored else {
            return Ok(false);
        };
        if value.is_empty() {
            value.push(0xff);
        } else {
            let middle = value.len() / 2;
            value[middle] ^= 0xff;
            value[0] ^= 0x01;
        }
        match &self.values {
            Values::Local => self
                .db
                .put_cf_opt(cf, key.to_bytes(), value, &Self::synced())
                .map_err(|e| self.db_err(e))?,
            Values::Objects(objects) => objects.write(&object_key(key), value)?,
        }
        Ok(true)
    }

    /// Gives back the space of deleted chunks now, for a store opened
    /// without blob GC, after it deleted chunks. If enough of the chunks
    /// family's table entries are deletions ([`worth_compacting`], or if
    /// RocksDB does not say), a whole compaction of the family drops them
    /// with the blob files nothing references any more and counts the
    /// garbage left in the others. If the garbage is worth it
    /// ([`worth_relocating`]), a second one with blob GC on moves the live
    /// values out of the oldest quarter of the files (RocksDB's default age
    /// cutoff; each reclaim reaches the next quarter). Then
    /// [`StoreOptions::blob_gc`] is as it was opened.
    ///
    /// # Errors
    ///
    /// [`Error::Db`] if RocksDB refuses the option change.
    pub fn reclaim(&self) -> Result<()> {
        let cf = self.cf(CF_CHUNKS)?;
        let mut whole = CompactOptions::default();
        // The last level holds most keys: it must be compacted too.
        whole.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        let compact = || {
            self.db
                .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &whole)
        };
        if self
            .table_counts()
            .is_none_or(|(e, d)| worth_compacting(e, d))
        {
            compact();
        }
        // Only the chunks family has blob files.
        let live = self.property_total("rocksdb.live-blob-file-size");
        let garbage = self.property_total("rocksdb.live-blob-file-garbage-size");
        let (live, garbage) = (live.unwrap_or(0), garbage.unwrap_or(0));
        if self.blob_gc || !worth_relocating(live, garbage) {
            return Ok(());
        }
        let blob_gc = |on: &str| {
            self.db
                .set_options_cf(cf, &[("enable_blob_garbage_collection", on)])
                .map_err(|e| self.db_err(e))
        };
        blob_gc("true")?;
        compact();
        blob_gc("false")
    }

    /// The entries and deletions (tombstones) in the chunks family's table
    /// files, if RocksDB tells them.
    fn table_counts(&self) -> Option<(u64, u64)> {
        let cf = self.db.cf_handle(CF_CHUNKS)?;
        let text = self
            .db
            .property_value_cf(cf, "rocksdb.aggregated-table-properties")
            .ok()??;
        table_counts(&text)
    }

    /// The integer RocksDB property `name` (e.g.
    /// `rocksdb.total-blob-file-size`) summed over the store's column
    /// families, for the node's health metrics and `reclaim`; `None` if RocksDB does not
    /// know it.
    pub fn property_total(&self, name: &str) -> Option<u64> {
        [CF_CHUNKS, CF_META].iter().try_fold(0u64, |sum, cf| {
            let cf = self.db.cf_handle(cf)?;
            let value = self.db.property_int_value_cf(cf, name).ok()??;
            Some(sum.saturating_add(value))
        })
    }

    fn db_err(&self, source: rocksdb::Error) -> Error {
        Error::Db {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::Malformed(format!("column family {name} is missing")))
    }

    fn meta_of(&self, key: &ChunkKey) -> Result<Option<ChunkMeta>> {
        let raw = self
            .db
            .get_pinned_cf(self.cf(CF_META)?, key.to_bytes())
            .map_err(|e| self.db_err(e))?;
        raw.map(|m| ChunkMeta::decode(&m)).transpose()
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }

    fn db_write(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        self.db.write_opt(batch, opts).map_err(|e| self.db_err(e))
    }
}

impl Store for RocksStore {
    fn get_into(&self, key: &ChunkKey, out: &mut Vec<u8>) -> Result<bool> {
        let Some(meta) = self.meta_of(key)? else {
            return Ok(false);
        };
        // Our own CRC over the whole value (checked below) covers what
        // RocksDB's per-block checksums would; skipping theirs saves ~9% of a
        // restore's CPU.
        let mut read = ReadOptions::default();
        read.set_verify_checksums(false);
        let object;
        let pinned;
        let value: Option<&[u8]> = match &self.values {
            Values::Local => {
                pinned = self
                    .db
                    .get_pinned_cf_opt(self.cf(CF_CHUNKS)?, key.to_bytes(), &read)
                    .map_err(|e| self.db_err(e))?;
                pinned.as_deref()
            }
            Values::Objects(objects) => {
                object = objects.read(&object_key(key))?;
                object.as_deref()
            }
        };
        match value {
            None => Err(Error::Corrupt {
                key: *key,
                detail: "metadata present but value missing".into(),
            }),
            Some(v) if !meta.matches(v) => Err(Error::Corrupt {
                key: *key,
                detail: format!(
                    "expected {} bytes with crc32 {:08x}, found {} bytes with crc32 {:08x}",
                    meta.size,
                    meta.crc32,
                    v.len(),
                    crc32fast::hash(v)
                ),
            }),
            Some(v) => {
                out.clear();
                out.extend_from_slice(v);
                Ok(true)
            }
        }
    }

    fn contains(&self, key: &ChunkKey) -> Result<bool> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_META)?, key.to_bytes())
            .map_err(|e| self.db_err(e))?
            .is_some())
    }

    fn put_batch(
        &self,
        chunks: &[(ChunkKey, &[u8])],
        now: u64,
        durability: Durability,
    ) -> Result<()> {
        if self.usage_lock().is_some() || matches!(self.values, Values::Objects(_)) {
            return self
                .put_chunks(chunks, now, durability, PutMode::Overwrite)
                .map(|_| ());
        }
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        let mut batch = WriteBatch::default();
        for (key, sealed) in chunks {
            let k = key.to_bytes();
            batch.put_cf(cf_chunks, k, sealed);
            batch.put_cf(cf_meta, k, ChunkMeta::describe(sealed, now)?.encode());
        }
        self.db_write(batch, &Self::write_options(durability))
    }

    fn delete_batch(&self, keys: &[ChunkKey]) -> Result<()> {
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        let _claim = self.claims.claim(keys.iter().copied());
        let mut guard = self.usage_lock();
        let mut batch = WriteBatch::default();
        let mut gone: Vec<(ChunkKey, u32)> = Vec::new();
        let mut seen = HashSet::with_capacity(keys.len());
        for key in keys {
            if !seen.insert(*key) {
                continue;
            }
            if guard.is_some() {
                if let Some(m) = self.meta_of(key)? {
                    gone.push((*key, m.size));
                }
            }
            let k = key.to_bytes();
            batch.delete_cf(cf_meta, k);
            batch.delete_cf(cf_chunks, k);
        }
        self.db_write(batch, &Self::synced())?;
        Self::forget_usage(guard.as_mut(), gone);
        drop(guard);
        self.delete_objects(&seen.into_iter().collect::<Vec<_>>())?;
        Ok(())
    }

    fn for_each_meta(
        &self,
        vault: VaultId,
        visit: &mut dyn FnMut(ChunkId, ChunkMeta) -> Result<()>,
    ) -> Result<()> {
        let prefix = vault.as_bytes();
        let iter = self.db.iterator_cf(
            self.cf(CF_META)?,
            IteratorMode::From(prefix, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            let key = ChunkKey::from_bytes(&k)
                .ok_or_else(|| Error::Malformed(format!("key of {} bytes", k.len())))?;
            visit(key.chunk, ChunkMeta::decode(&v)?)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // Values first, metadata second: a crash in between leaves values
        // nothing describes (unreferenced), never metadata without its
        // value. (This rust-rocksdb has no one-call flush of several
        // families.)
        for cf in [CF_CHUNKS, CF_META] {
            self.db.flush_cf(self.cf(cf)?).map_err(|e| self.db_err(e))?;
        }
        self.db.flush_wal(true).map_err(|e| self.db_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u8, c: u8) -> ChunkKey {
        ChunkKey::new(VaultId([v; 16]), ChunkId([c; 32]))
    }

    #[test]
    fn opens_that_write_nothing_do_not_pile_up_logs() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        let store = RocksStore::open(dir.path(), &opts).unwrap();
        store
            .put_batch(&[(key(1, 1), b"kept")], 1, Durability::AtFlush)
            .unwrap();
        store.flush().unwrap();
        drop(store);
        for _ in 0..3 * IDLE_WALS {
            let store = RocksStore::open(dir.path(), &opts).unwrap();
            assert!(store.wal_count() <= IDLE_WALS + 1, "{}", store.wal_count());
            assert_eq!(
                store.get(&key(1, 1)).unwrap().as_deref(),
                Some(&b"kept"[..])
            );
        }
    }

    #[test]
    fn relocation_waits_for_a_tenth_of_garbage() {
        assert!(!worth_relocating(0, 0));
        assert!(!worth_relocating(1000, 0));
        assert!(!worth_relocating(1000, 99));
        assert!(worth_relocating(1000, 100));
        assert!(worth_relocating(0, 1));
        assert!(worth_relocating(u64::MAX, u64::MAX));
        assert!(!worth_relocating(u64::MAX, u64::MAX / 11));
    }

    #[test]
    fn compaction_waits_for_a_hundredth_of_deletions() {
        assert!(!worth_compacting(0, 0));
        assert!(!worth_compacting(1000, 0));
        assert!(!worth_compacting(1000, 9));
        assert!(worth_compacting(1000, 10));
        assert!(worth_compacting(1, 1));
        assert!(worth_compacting(u64::MAX, u64::MAX / 100 + 1));
        assert!(!worth_compacting(u64::MAX, u64::MAX / 101));
    }

    #[test]
    fn table_counts_read_rocksdb_text_and_refuse_anything_else() {
        let text = "# data blocks=3; # entries=1201; # deletions=12; # merge operands=0; \
                    # range deletions=0; raw key size=57648; raw value size=120100";
        assert_eq!(table_counts(text), Some((1201, 12)));
        assert_eq!(table_counts(""), None);
        assert_eq!(table_counts("# entries=5"), None);
        assert_eq!(table_counts("# entries=x; # deletions=1"), None);
        assert_eq!(table_counts("# entries=-1; # deletions=1"), None);
        assert_eq!(table_counts("# entries; # deletions=1"), None);
    }

    proptest::proptest! {
        #[test]
        fn table_counts_never_panic(text in ".{0,200}") {
            let _ = table_counts(&text);
        }

        #[test]
        fn table_counts_find_the_counts_among_other_fields(
            entries: u64,
            deletions: u64,
            before in proptest::collection::vec(("[a-z ]{1,12}", 0u64..1000), 0..4),
        ) {
            let mut fields: Vec<String> =
                before.iter().map(|(k, v)| format!("{k}={v}")).collect();
            fields.push(format!("# entries={entries}"));
            fields.push(format!("# deletions={deletions}"));
            proptest::prop_assert_eq!(table_counts(&fields.join("; ")), Some((entries, deletions)));
        }
    }

    /// A new store opened as a local vault opens it (no blob GC); the
    /// directory lives as long as the returned guard.
    fn store_without_blob_gc() -> (tempfile::TempDir, RocksStore) {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            blob_gc: false,
            ..StoreOptions::default()
        };
        let store = RocksStore::open(dir.path(), &opts).unwrap();
        (dir, store)
    }

    #[test]
    fn a_reclaim_leaves_a_few_deletions_for_the_next_one() {
        let (_dir, store) = store_without_blob_gc();
        // 200 values small enough to live in the table files.
        let value = |c: u8| vec![c; 100];
        let values: Vec<_> = (0..200u8).map(|c| (key(1, c), value(c))).collect();
        let batch: Vec<_> = values.iter().map(|(k, v)| (*k, &v[..])).collect();
        store.put_batch(&batch, 1, Durability::AtFlush).unwrap();
        store.flush().unwrap();
        assert_eq!(store.table_counts(), Some((200, 0)));
        // One deletion in 201 entries: the tables are left as they are.
        store.delete_batch(&[key(1, 0)]).unwrap();
        store.flush().unwrap();
        store.reclaim().unwrap();
        assert_eq!(store.table_counts(), Some((201, 1)));
        // Ten in 210: compacted, tombstones and deleted values gone.
        let more: Vec<_> = (1..10u8).map(|c| key(1, c)).collect();
        store.delete_batch(&more).unwrap();
        store.flush().unwrap();
        store.reclaim().unwrap();
        assert_eq!(store.table_counts(), Some((190, 0)));
        for c in 0..200u8 {
            let got = store.get(&key(1, c)).unwrap();
            assert_eq!(got, (c >= 10).then(|| value(c)), "chunk {c}");
        }
    }

    #[test]
    fn compactions_keep_deleted_space_until_a_reclaim_gives_it_back() {
        let (_dir, store) = store_without_blob_gc();
        let blob_bytes = |s: &RocksStore| s.property_total("rocksdb.total-blob-file-size");
        let compact = |s: &RocksStore| {
            let cf = s.cf(CF_CHUNKS).unwrap();
            s.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        };
        // Four blob files (one per flush) of eight values each.
        let value = |c: u8| vec![c; 40_000];
        for file in 0..4u8 {
            let values: Vec<_> = (file * 8..file * 8 + 8).map(|c| (c, value(c))).collect();
            let batch: Vec<_> = values.iter().map(|(c, v)| (key(1, *c), &v[..])).collect();
            store.put_batch(&batch, 1, Durability::AtFlush).unwrap();
            store.flush().unwrap();
        }
        let full = blob_bytes(&store).unwrap();
        // One value of 32 deleted: not worth rewriting anything for.
        store.delete_batch(&[key(1, 1)]).unwrap();
        store.flush().unwrap();
        store.reclaim().unwrap();
        assert_eq!(blob_bytes(&store), Some(full));
        // Half of every file deleted: compactions keep the files whole...
        let odd: Vec<_> = (0..32u8)
            .filter(|c| c % 2 == 1)
            .map(|c| key(1, c))
            .collect();
        store.delete_batch(&odd).unwrap();
        store.flush().unwrap();
        compact(&store);
        assert_eq!(blob_bytes(&store), Some(full));
        // ...a reclaim moves the live half out of the oldest one and drops it.
        store.reclaim().unwrap();
        let after = blob_bytes(&store).unwrap();
        assert!(after < full - 100_000, "{after} of {full} bytes left");
        for c in 0..32u8 {
            let got = store.get(&key(1, c)).unwrap();
            assert_eq!(got, (c % 2 == 0).then(|| value(c)), "chunk {c}");
        }
        // Blob GC is off again.
        compact(&store);
        assert_eq!(blob_bytes(&store), Some(after));
    }

    #[test]
    fn put_get_contains_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let big = vec![7u8; 100_000];
        store
            .put_batch(
                &[
                    (key(1, 1), b"small"),
                    (key(1, 2), &big),
                    (key(2, 1), b"other"),
                ],
                5,
                Durability::Now,
            )
            .unwrap();
        assert_eq!(store.get(&key(1, 1)).unwrap().unwrap(), b"small");
        assert_eq!(store.get(&key(1, 2)).unwrap().unwrap(), big);
        assert!(store.contains(&key(2, 1)).unwrap());
        assert!(!store.contains(&key(2, 2)).unwrap());
        assert_eq!(store.get(&key(3, 3)).unwrap(), None);

        let mut seen = vec![];
        store
            .for_each_meta(VaultId([1; 16]), &mut |id, m| {
                seen.push((id, m.size));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(ChunkId([1; 32]), 5), (ChunkId([2; 32]), 100_000)]
        );

        store.delete_batch(&[key(1, 1)]).unwrap();
        assert_eq!(store.get(&key(1, 1)).unwrap(), None);
    }

    #[test]
    fn survives_reopen_and_flush() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
            store
                .put_batch(&[(key(1, 1), &[9u8; 50_000])], 1, Durability::AtFlush)
                .unwrap();
            store.flush().unwrap();
            store
                .put_batch(&[(key(1, 2), b"after flush")], 1, Durability::Now)
                .unwrap();
        }
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(store.get(&key(1, 1)).unwrap().unwrap(), vec![9u8; 50_000]);
        assert_eq!(store.get(&key(1, 2)).unwrap().unwrap(), b"after flush");
    }

    #[test]
    fn put_modes_report_new_chunks_and_keep_usage_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .put_batch(&[(key(1, 9), b"before tracking")], 1, Durability::Now)
            .unwrap();
        store.track_usage().unwrap();
        let vault = VaultId([1; 16]);
        assert_eq!(
            store.usage(&vault).unwrap(),
            Usage {
                chunks: 1,
                bytes: 15
            }
        );
        let new = store
            .put_chunks(
                &[
                    (key(1, 1), b"first"),
                    (key(1, 1), b"dupe!"),
                    (key(1, 9), b"other"),
                ],
                2,
                Durability::Now,
                PutMode::KeepExisting,
            )
            .unwrap();
        assert_eq!(new, vec![true, false, false]);
        assert_eq!(store.get(&key(1, 1)).unwrap().unwrap(), b"first");
        assert_eq!(store.get(&key(1, 9)).unwrap().unwrap(), b"before tracking");
        assert_eq!(store.meta(&key(1, 9)).unwrap().unwrap().touched, 2);
        assert_eq!(
            store.usage(&vault).unwrap(),
            Usage {
                chunks: 2,
                bytes: 20
            }
        );
        let new = store
            .put_chunks(
                &[(key(1, 9), b"ab")],
                3,
                Durability::Now,
                PutMode::Overwrite,
            )
            .unwrap();
        assert_eq!(new, vec![false]);
        assert_eq!(store.get(&key(1, 9)).unwrap().unwrap(), b"ab");
        assert_eq!(
            store.usage(&vault).unwrap(),
            Usage {
                chunks: 2,
                bytes: 7
            }
        );
        store
            .delete_batch(&[key(1, 1), key(1, 1), key(5, 5)])
            .unwrap();
        assert_eq!(
            store.usage(&vault).unwrap(),
            Usage {
                chunks: 1,
                bytes: 2
            }
        );
        store.delete_batch(&[key(1, 9)]).unwrap();
        assert!(store.usage_by_vault().unwrap().is_empty());
    }

    #[test]
    fn damaged_values_are_told_from_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .put_batch(&[(key(1, 1), &[3u8; 40_000])], 1, Durability::Now)
            .unwrap();
        assert!(matches!(
            store.fetch(&key(1, 1)).unwrap(),
            Fetched::Found { .. }
        ));
        assert!(store.damage_value(&key(1, 1)).unwrap());
        assert!(!store.damage_value(&key(1, 2)).unwrap());
        assert_eq!(store.fetch(&key(1, 1)).unwrap(), Fetched::Corrupt);
        assert_eq!(store.fetch(&key(1, 2)).unwrap(), Fetched::Absent);
    }

    #[test]
    fn only_old_undescribed_idle_objects_are_orphans() {
        let cutoff = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10_000);
        let old = Some(cutoff - std::time::Duration::from_secs(1));
        let young = Some(cutoff + std::time::Duration::from_secs(1));
        let view = |temporary, modified, described, in_flight| OrphanView {
            temporary,
            modified,
            described,
            in_flight,
        };
        assert!(orphan(&view(false, old, false, false), cutoff));
        assert!(
            orphan(&view(true, old, true, false), cutoff),
            "old temporary"
        );
        assert!(!orphan(&view(false, old, true, false), cutoff), "described");
        assert!(!orphan(&view(false, young, false, false), cutoff), "young");
        assert!(!orphan(&view(false, None, false, false), cutoff), "no time");
        assert!(
            !orphan(&view(false, old, false, true), cutoff),
            "put in flight"
        );
        assert!(
            !orphan(&view(true, old, false, true), cutoff),
            "write in flight"
        );
        let key = key(3, 4);
        let name = object_key(&key);
        assert_eq!(chunk_of_object(&name), Some((key, false)));
        let temp = format!("{name}{TEMP_MARK}0011223344556677");
        assert_eq!(chunk_of_object(&temp), Some((key, true)));
        assert_eq!(chunk_of_object("chunks/README"), None);
        assert_eq!(chunk_of_object("packs/ab/cd"), None);
    }

    #[test]
    fn claims_wait_for_each_other_and_skip_busy_keys() {
        let claims = Claims::default();
        let held = claims.claim([key(1, 1), key(1, 2)]);
        let (free, busy) = claims.claim_free(&[key(1, 2), key(1, 3)]);
        assert_eq!(busy, vec![true, false]);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let _c = claims.claim([key(1, 3)]);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!waiter.is_finished(), "waits for the sweep's claim");
            drop(free);
            waiter.join().unwrap();
        });
        drop(held);
        assert!(claims.held().is_empty());
    }

    #[test]
    fn second_open_reports_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let second = RocksStore::open(dir.path(), &StoreOptions::default());
        assert!(second.err().unwrap().is_locked());
    }

    #[test]
    fn a_mismatching_value_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .put_batch(&[(key(1, 1), b"good bytes")], 1, Durability::Now)
            .unwrap();
        // Overwrite the value behind the store's back, keeping the old metadata.
        store
            .db
            .put_cf(
                store.cf(CF_CHUNKS).unwrap(),
                key(1, 1).to_bytes(),
                b"evil bytes",
            )
            .unwrap();
        assert!(matches!(store.get(&key(1, 1)), Err(Error::Corrupt { .. })));
    }
}
