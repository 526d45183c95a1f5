//! A local vault: a directory holding the config, a RocksDB chunk store
//! and one JSON file per snapshot record.
//!
//! ```text
//! DIR/vault.json            config: id, chunker and zstd parameters, KDF
//!                           parameters and salt, the sealed vault keys
//! DIR/chunks/               the chunk store (chunkstore's RocksDB engine)
//! DIR/snapshots/<id>.json   one record per committed snapshot
//! ```
//!
//! Crash safety comes from ordering: chunks are durable (synced batches)
//! before the tree that names them, trees before the snapshot record, and the
//! record is written to a temporary file, synced, and renamed into place. A
//! backup killed at any point leaves at most unreferenced chunks, which the
//! next backup re-uses. The store's exclusive lock keeps a second process
//! (a backup during a prune) out.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_chunkstore::{ChunkKey, Durability, RocksStore, Store, StoreOptions};
use cairn_proto::version::VAULT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId, VaultId};

use super::backend::{Backend, Deleted};
use super::sink::{Blobs, Sink, Written};
use super::VaultConfig;
use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::snapshot::SnapshotRecord;

const CONFIG_FILE: &str = "vault.json";

/// Chunks deleted per store batch.
const DELETE_BATCH: usize = 1024;

/// The chunk store's settings. Without blob GC a backup's compactions move
/// keys only, not values (10-13% off a 3.9 GB backup); a prune gives the
/// space back itself ([`RocksStore::reclaim`]).
const STORE: StoreOptions = StoreOptions {
    blob_gc: false,
    ..StoreOptions::DEFAULT
};

/// Lays out a new vault in `dir` (new or empty) with the config `make`
/// returns (called once the directory is known to be usable), private to
/// its owner: the config holds the KDF salt and the wrapped keys, and
/// anyone who reads the chunks can test password guesses offline.
pub fn create(dir: &Path, make: impl FnOnce() -> Result<VaultConfig>) -> Result<VaultConfig> {
    if dir.exists() && fs::read_dir(dir).ctx("read", dir)?.next().is_some() {
        return Err(Error::Invalid(format!(
            "{} exists and is not empty; a vault needs a new or empty directory",
            dir.display()
        )));
    }
    for d in [dir.to_path_buf(), dir.join("snapshots")] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .ctx("create", &d)?;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).ctx("chmod", &d)?;
    }
    let config = make()?;
    RocksStore::open(&dir.join("chunks"), &STORE)?;
    fsmeta::write_private(&dir.join(CONFIG_FILE), &super::config_json(&config)?)?;
    Ok(config)
}

/// Reads a local vault's config without unlocking it.
pub fn read_config(dir: &Path) -> Result<VaultConfig> {
    let path = dir.join(CONFIG_FILE);
    let bytes = fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound(format!(
                "{} is not a cairn vault (no {CONFIG_FILE})",
                dir.display()
            ))
        } else {
            Error::io("read", &path, e)
        }
    })?;
    let config: VaultConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
    if config.format > VAULT_FORMAT {
        return Err(Error::Format(format!(
            "vault format {} is newer than this build understands ({VAULT_FORMAT}); upgrade cairn",
            config.format
        )));
    }
    Ok(config)
}

/// A vault in a local directory.
pub struct LocalBackend {
    dir: PathBuf,
    vault: VaultId,
    store: RocksStore,
}

impl LocalBackend {
    /// Opens the chunk store of the vault `vault` in `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when another process holds the vault.
    pub fn open(dir: &Path, vault: VaultId) -> Result<Self> {
        let store = RocksStore::open(&dir.join("chunks"), &STORE).map_err(|e| {
            if e.is_locked() {
                Error::Invalid(format!(
                    "vault {} is in use by another cairn process; wait for it to finish",
                    dir.display()
                ))
            } else {
                e.into()
            }
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            vault,
            store,
        })
    }

    fn key(&self, id: ChunkId) -> ChunkKey {
        ChunkKey::new(self.vault, id)
    }

    fn snapshot_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }
}

impl Backend for LocalBackend {
    fn batches_reads(&self) -> bool {
        false
    }

    fn keeps_record_stats(&self) -> bool {
        true
    }

    fn dir(&self) -> Option<&Path> {
        Some(&self.dir)
    }

    fn contains(&self, id: ChunkId) -> Result<bool> {
        Ok(self.store.contains(&self.key(id))?)
    }

    fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let mut out = vec![];
        for id in ids {
            if !self.store.contains(&self.key(*id))? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    fn get_into(&self, id: ChunkId, out: &mut Vec<u8>) -> Result<bool> {
        Ok(self.store.get_into(&self.key(id), out)?)
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(sealed) = self.store.get(&self.key(*id))? {
                out.insert(*id, sealed);
            }
        }
        Ok(out)
    }

    fn list_chunks(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<()> {
        self.store.for_each_meta(self.vault, &mut |id, meta| {
            visit(id, u64::from(meta.size));
            Ok(())
        })?;
        Ok(())
    }

    fn delete_chunks(&self, ids: &[ChunkId], _job: Option<JobId>) -> Result<Deleted> {
        let keys: Vec<ChunkKey> = ids.iter().map(|id| self.key(*id)).collect();
        for batch in keys.chunks(DELETE_BATCH) {
            self.store.delete_batch(batch)?;
        }
        self.store.flush()?;
        self.store.reclaim()?;
        Ok(Deleted {
            deleted: ids.len() as u64,
            kept_recently_used: 0,
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(self.store.flush()?)
    }

    fn sink(&self) -> Box<dyn Sink + '_> {
        Box::new(LocalSink { backend: self })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let dir = self.snapshot_dir();
        let mut out = vec![];
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            let path = entry.ctx("list", &dir)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let rec = SnapshotRecord::from_json(&fs::read(&path).ctx("read", &path)?)
                    .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
                if rec.vault != self.vault {
                    return Err(Error::Integrity(format!(
                        "{} belongs to another vault",
                        path.display()
                    )));
                }
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn commit_snapshot(
        &self,
        record: &SnapshotRecord,
        _label: &str,
        _job: Option<JobId>,
    ) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Format(e.to_string()))?;
        fsmeta::write_private(
            &self.snapshot_dir().join(format!("{}.json", record.id)),
            &json,
        )
    }

    fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        let dir = self.snapshot_dir();
        let path = dir.join(format!("{id}.json"));
        fs::remove_file(&path).ctx("remove", &path)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .ctx("sync", &dir)
    }

    fn rewrap(&self, config: &VaultConfig) -> Result<()> {
        fsmeta::write_private(&self.dir.join(CONFIG_FILE), &super::config_json(config)?)
    }
}

/// A local backup's writer: groups sealed blobs into batches written
/// without the WAL ([`Durability::AtFlush`]). Nothing is acknowledged
/// before the snapshot commit, which first flushes the store, so each
/// chunk is written once; a killed backup loses at most the unflushed
/// memtable (a few MiB) and keeps everything flushed before it.
struct LocalSink<'a> {
    backend: &'a LocalBackend,
}

impl Sink for LocalSink<'_> {
    fn dedups(&self) -> bool {
        false
    }

    /// A batch closes at `BATCH_BYTES`, or `BATCH_WAIT` after its first blob.
    fn store_all(&self, mut blobs: Blobs) -> Result<Written> {
        const BATCH_BYTES: usize = 2 * 1024 * 1024;
        const BATCH_WAIT: Duration = Duration::from_millis(200);
        let mut out = Written::default();
        while let Some(first) = blobs.recv() {
            let deadline = Instant::now() + BATCH_WAIT;
            let mut size = first.bytes.len();
            let mut batch = vec![first];
            while size < BATCH_BYTES {
                match blobs.recv_deadline(deadline) {
                    Some(b) => {
                        size += b.bytes.len();
                        batch.push(b);
                    }
                    None => break,
                }
            }
            let items: Vec<_> = batch
                .iter()
                .map(|b| (self.backend.key(b.id), b.bytes.as_slice()))
                .collect();
            self.backend
                .store
                .put_batch(&items, fsmeta::unix_now(), Durability::AtFlush)?;
            out.chunks += batch.len() as u64;
            out.sealed_bytes += size as u64;
            out.plain_bytes += batch.iter().map(|b| b.plain_len).sum::<u64>();
        }
        Ok(out)
    }
}
