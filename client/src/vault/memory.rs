//! The in-memory [`Backend`]: a map of chunks and a map of records, so the
//! backup, restore, check and prune cores are unit-tested without a disk
//! vault or a server (rustic_core's `in_memory` backend plays this part
//! there). It behaves like a local vault (reads are direct, every counter
//! stays in the record) or, made with [`Vault::in_memory_batched`], like an
//! account vault (reads batched and fetched ahead, the full counters
//! sealed), so both paths of restore and check run in unit tests. Its sink
//! stores each blob.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use cairn_proto::version::VAULT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId, VaultId};

use super::backend::{Backend, Deleted};
use super::sink::{Blobs, Sink, Written};
use super::slots::{KeySlot, Unlock};
use super::{Compression, CreateOptions, Vault, VaultConfig};
use crate::crypto::VaultKeys;
use crate::error::{Error, Result};
use crate::snapshot::SnapshotRecord;

/// Chunks and snapshot records held in memory.
#[derive(Default)]
pub struct MemoryBackend {
    chunks: RwLock<BTreeMap<ChunkId, Vec<u8>>>,
    records: RwLock<BTreeMap<SnapshotId, SnapshotRecord>>,
    /// Answers as an account vault does ([`Backend::batches_reads`]).
    batched: bool,
}

impl Vault {
    /// A new, unlocked vault held in memory with `options`' chunker and
    /// zstd level (its KDF parameters are recorded, no password is
    /// derived), behaving like a local vault.
    pub fn in_memory(options: &CreateOptions) -> Self {
        Self::memory(options, MemoryBackend::default())
    }

    /// Like [`Vault::in_memory`], behaving like an account vault: reads
    /// batched and fetched ahead, the full counters sealed.
    pub fn in_memory_batched(options: &CreateOptions) -> Self {
        Self::memory(
            options,
            MemoryBackend {
                batched: true,
                ..MemoryBackend::default()
            },
        )
    }

    fn memory(options: &CreateOptions, backend: MemoryBackend) -> Self {
        let vault_id = VaultId::random();
        let keys = VaultKeys::generate();
        let config = VaultConfig {
            format: VAULT_FORMAT,
            vault_id,
            chunker: options.chunker,
            compression: Compression {
                zstd_level: options.zstd_level,
            },
            slots: vec![KeySlot {
                id: 0,
                unlock: Unlock::Password {
                    kdf: options.kdf.clone(),
                },
                keys: vec![],
            }],
        };
        Self::with_backend(config, keys, Box::new(backend))
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Invalid("the in-memory vault's lock was poisoned".into())
}

impl MemoryBackend {
    fn put(&self, id: ChunkId, sealed: Vec<u8>) -> Result<bool> {
        let mut chunks = self.chunks.write().map_err(poisoned)?;
        Ok(chunks.insert(id, sealed).is_none())
    }
}

impl Backend for MemoryBackend {
    fn batches_reads(&self) -> bool {
        self.batched
    }

    fn keeps_record_stats(&self) -> bool {
        !self.batched
    }

    fn contains(&self, id: ChunkId) -> Result<bool> {
        Ok(self.chunks.read().map_err(poisoned)?.contains_key(&id))
    }

    fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let chunks = self.chunks.read().map_err(poisoned)?;
        Ok(ids
            .iter()
            .filter(|id| !chunks.contains_key(id))
            .copied()
            .collect())
    }

    fn get_into(&self, id: ChunkId, out: &mut Vec<u8>) -> Result<bool> {
        let chunks = self.chunks.read().map_err(poisoned)?;
        match chunks.get(&id) {
            Some(sealed) => {
                out.clear();
                out.extend_from_slice(sealed);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let chunks = self.chunks.read().map_err(poisoned)?;
        Ok(ids
            .iter()
            .filter_map(|id| Some((*id, chunks.get(id)?.clone())))
            .collect())
    }

    fn list_chunks(&self, visit: &mut dyn FnMut(ChunkId, u64)) -> Result<()> {
        for (id, sealed) in self.chunks.read().map_err(poisoned)?.iter() {
            visit(*id, sealed.len() as u64);
        }
        Ok(())
    }

    fn delete_chunks(&self, ids: &[ChunkId], _job: Option<JobId>) -> Result<Deleted> {
        let mut chunks = self.chunks.write().map_err(poisoned)?;
        let mut deleted = 0;
        for id in ids {
            deleted += u64::from(chunks.remove(id).is_some());
        }
        Ok(Deleted {
            deleted,
            kept_recently_used: 0,
        })
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sink(&self) -> Box<dyn Sink + '_> {
        Box::new(MemorySink { backend: self })
    }

    fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let mut out: Vec<_> = self
            .records
            .read()
            .map_err(poisoned)?
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    fn commit_snapshot(
        &self,
        record: &SnapshotRecord,
        _label: &str,
        _job: Option<JobId>,
    ) -> Result<()> {
        self.records
            .write()
            .map_err(poisoned)?
            .insert(record.id, record.clone());
        Ok(())
    }

    fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        match self.records.write().map_err(poisoned)?.remove(&id) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("no snapshot {id} in this vault"))),
        }
    }

    fn rewrap(&self, _config: &VaultConfig) -> Result<()> {
        Ok(())
    }
}

/// Stores each blob as it arrives.
struct MemorySink<'a> {
    backend: &'a MemoryBackend,
}

impl Sink for MemorySink<'_> {
    fn dedups(&self) -> bool {
        false
    }

    fn store_all(&self, blobs: Blobs) -> Result<Written> {
        let mut out = Written::default();
        for b in blobs {
            let sealed_len = b.bytes.len() as u64;
            if self.backend.put(b.id, b.bytes)? {
                out.chunks += 1;
                out.sealed_bytes += sealed_len;
                out.plain_bytes += b.plain_len;
            }
        }
        Ok(out)
    }
}

/// Helpers for the unit tests of the commands over an in-memory vault.
#[cfg(test)]
pub mod testing {
    use std::path::Path;

    use crate::vault::Sealed;

    use super::*;
    use crate::backup::{self, BackupOptions, BackupReport, Progress};
    use crate::chunker::ChunkerParams;
    use crate::crypto::KdfParams;

    /// Small chunks, so test files span several.
    fn small() -> CreateOptions {
        CreateOptions {
            chunker: ChunkerParams {
                min_size: 1024,
                avg_size: 4096,
                max_size: 16384,
            },
            zstd_level: 3,
            kdf: KdfParams::generate(),
        }
    }

    /// An in-memory vault with small chunks, like a local vault.
    pub fn small_vault() -> Vault {
        Vault::in_memory(&small())
    }

    /// An in-memory vault with small chunks, like an account vault.
    pub fn small_batched_vault() -> Vault {
        Vault::in_memory_batched(&small())
    }

    /// Backs up `dir` as device `test`.
    pub fn backup_dir(vault: &Vault, dir: &Path) -> BackupReport {
        let opts = BackupOptions {
            paths: vec![dir.to_path_buf()],
            device: "test".into(),
            ..Default::default()
        };
        backup::run(vault, &opts, &Progress::default()).unwrap()
    }

    /// Stores `bytes` as chunk `id` (replacing what is there: a damaged
    /// chunk when they are not its sealed bytes).
    pub fn store_raw(vault: &Vault, id: ChunkId, bytes: Vec<u8>) {
        let blob = Sealed {
            id,
            plain_len: bytes.len() as u64,
            bytes,
            tree: false,
        };
        vault
            .backend()
            .sink()
            .store_all(Blobs::of(vec![blob]))
            .unwrap();
    }

    /// Snapshot record `n` (its time is January `n`, 2026; `meta` holds
    /// just `n`, for tests that key sealed metadata by record) of `device`
    /// and `item`.
    pub fn record(device: &str, item: Option<&str>, n: u8) -> crate::snapshot::SnapshotRecord {
        crate::snapshot::SnapshotRecord {
            format: 2,
            id: SnapshotId::random(),
            vault: VaultId::random(),
            device: device.into(),
            item: item.map(str::to_string),
            time: format!("2026-01-0{n}T00:00:00.000000000Z"),
            finished: String::new(),
            root: ChunkId([n; 32]),
            stats: Default::default(),
            meta: vec![n],
        }
    }

    /// A tree entry named `name` of `kind` and `size`, everything else
    /// fixed (mode 0644, times 1 s, inode 1, no content).
    pub fn entry(name: &str, kind: crate::tree::Kind, size: u64) -> crate::tree::Entry {
        use crate::tree::Time;
        crate::tree::Entry {
            name: name.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Time::of(1, 0),
            ctime: Time::of(1, 0),
            inode: 1,
            device: 1,
            links: 1,
            size,
            target: vec![],
            rdev: 0,
            xattrs: vec![],
            content: vec![],
            subtree: None,
        }
    }

    /// Deterministic incompressible bytes.
    pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
