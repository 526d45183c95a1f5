//! The RocksDB engine behind [`Store`].
//!
//! Two column families: `chunks` holds the sealed values (large ones in
//! RocksDB's integrated BlobDB files, so compactions move keys, not
//! megabytes) and `meta` holds one [`ChunkMeta`] per chunk. Both are written
//! in one atomic `WriteBatch` with a synced WAL, so a chunk is never present
//! without its metadata and a crash never leaves half a batch. Values are
//! sealed (encrypted, already compressed) so RocksDB compression is off.

use std::path::{Path, PathBuf};

use cairn_proto::{ChunkId, VaultId};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::{ChunkKey, ChunkMeta, Durability, Error, Result, Store};

const CF_CHUNKS: &str = "chunks";
const CF_META: &str = "meta";

/// Tunables of a [`RocksStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Values at least this large go to blob files rather than SST files.
    pub min_blob_size: u64,
    /// Size of one memtable; bulk writes are flushed in steps of this size.
    pub write_buffer_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            min_blob_size: 1024,
            write_buffer_size: 8 * 1024 * 1024,
        }
    }
}

/// A [`Store`] in one RocksDB database directory.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
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
        // chunk whose value was never flushed.
        db_opts.set_atomic_flush(true);

        let mut chunks = Options::default();
        chunks.set_enable_blob_files(true);
        chunks.set_min_blob_size(options.min_blob_size);
        chunks.set_blob_file_size(256 * 1024 * 1024);
        chunks.set_enable_blob_gc(true);
        chunks.set_compression_type(DBCompressionType::None);
        chunks.set_blob_compression_type(DBCompressionType::None);
        chunks.set_write_buffer_size(options.write_buffer_size);
        chunks.set_max_write_buffer_number(2);

        let mut meta = Options::default();
        meta.set_compression_type(DBCompressionType::None);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        meta.set_block_based_table_factory(&table);

        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_CHUNKS, chunks),
            ColumnFamilyDescriptor::new(CF_META, meta),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs).map_err(|source| Error::Db {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
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
        let value = self
            .db
            .get_pinned_cf_opt(self.cf(CF_CHUNKS)?, key.to_bytes(), &read)
            .map_err(|e| self.db_err(e))?;
        match value {
            None => Err(Error::Corrupt {
                key: *key,
                detail: "metadata present but value missing".into(),
            }),
            Some(v) if !meta.matches(&v) => Err(Error::Corrupt {
                key: *key,
                detail: format!(
                    "expected {} bytes with crc32 {:08x}, found {} bytes with crc32 {:08x}",
                    meta.size,
                    meta.crc32,
                    v.len(),
                    crc32fast::hash(&v)
                ),
            }),
            Some(v) => {
                out.clear();
                out.extend_from_slice(&v);
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
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        let mut batch = WriteBatch::default();
        for (key, sealed) in chunks {
            let k = key.to_bytes();
            batch.put_cf(cf_chunks, k, sealed);
            batch.put_cf(cf_meta, k, ChunkMeta::describe(sealed, now)?.encode());
        }
        let opts = match durability {
            Durability::Now => Self::synced(),
            Durability::AtFlush => {
                let mut w = WriteOptions::default();
                w.disable_wal(true);
                w
            }
        };
        self.db_write(batch, &opts)
    }

    fn delete_batch(&self, keys: &[ChunkKey]) -> Result<()> {
        let (cf_chunks, cf_meta) = (self.cf(CF_CHUNKS)?, self.cf(CF_META)?);
        let mut batch = WriteBatch::default();
        for key in keys {
            let k = key.to_bytes();
            batch.delete_cf(cf_meta, k);
            batch.delete_cf(cf_chunks, k);
        }
        self.db_write(batch, &Self::synced())
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
