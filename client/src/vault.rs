//! Local-disk vaults: a directory holding everything a vault needs.
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
//! next backup re-uses.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_chunkstore::{ChunkKey, RocksStore, Store, StoreOptions};
use cairn_proto::version::VAULT_FORMAT;
use cairn_proto::{ChunkId, SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobCodec, OpenScratch};
use crate::chunker::ChunkerParams;
use crate::crypto::{KdfParams, VaultKeys};
use crate::error::{Error, IoContext, Result};
use crate::snapshot::SnapshotRecord;
use crate::tree::Tree;

const CONFIG_FILE: &str = "vault.json";

/// Compression settings, fixed per vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// zstd level for chunks that shrink (others are stored raw).
    pub zstd_level: i32,
}

/// The contents of `vault.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    /// Layout version.
    pub format: u32,
    /// The vault's id (part of every chunk key and AAD).
    pub vault_id: VaultId,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// Compression parameters.
    pub compression: Compression,
    /// How the password becomes the wrap key.
    pub kdf: KdfParams,
    /// Vault keys sealed with the wrap key, hex.
    #[serde(with = "hex::serde")]
    pub keys: Vec<u8>,
}

/// Settings chosen when a vault is created.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub zstd_level: i32,
    /// KDF parameters (with salt).
    pub kdf: KdfParams,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            zstd_level: 3,
            kdf: KdfParams::generate(),
        }
    }
}

/// Per-thread buffers for [`Vault::blob_with`].
#[derive(Default)]
pub struct BlobReader {
    sealed: Vec<u8>,
    scratch: OpenScratch,
}

/// An open, unlocked vault.
pub struct Vault {
    dir: PathBuf,
    config: VaultConfig,
    codec: BlobCodec,
    keys: VaultKeys,
    store: Arc<dyn Store>,
}

impl Vault {
    /// Creates a new vault in `dir` (which must not exist or be empty).
    pub fn create(dir: &Path, password: &[u8], options: &CreateOptions) -> Result<VaultConfig> {
        options.chunker.validate()?;
        if !(1..=22).contains(&options.zstd_level) {
            return Err(Error::Invalid(format!(
                "zstd level {} is not in 1..=22",
                options.zstd_level
            )));
        }
        if dir.exists() && fs::read_dir(dir).ctx("read", dir)?.next().is_some() {
            return Err(Error::Invalid(format!(
                "{} exists and is not empty; a vault needs a new or empty directory",
                dir.display()
            )));
        }
        fs::create_dir_all(dir.join("snapshots")).ctx("create", dir)?;
        let vault_id = VaultId::random();
        let wrap = options.kdf.derive(password)?;
        let config = VaultConfig {
            format: VAULT_FORMAT,
            vault_id,
            chunker: options.chunker,
            compression: Compression {
                zstd_level: options.zstd_level,
            },
            kdf: options.kdf.clone(),
            keys: VaultKeys::generate().wrap(vault_id, &wrap.wrap),
        };
        RocksStore::open(&dir.join("chunks"), &StoreOptions::default())?;
        write_atomic(&dir.join(CONFIG_FILE), &config_json(&config)?)?;
        Ok(config)
    }

    /// Reads a vault's config without unlocking it.
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

    /// Opens and unlocks the vault in `dir` with `password`.
    pub fn open(dir: &Path, password: &[u8]) -> Result<Self> {
        let config = Self::read_config(dir)?;
        let wrap = config.kdf.derive(password)?;
        let keys = VaultKeys::unwrap(config.vault_id, &wrap.wrap, &config.keys)?;
        let store =
            RocksStore::open(&dir.join("chunks"), &StoreOptions::default()).map_err(|e| {
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
            codec: BlobCodec::new(config.vault_id, keys.clone(), config.compression.zstd_level),
            keys,
            config,
            store: Arc::new(store),
        })
    }

    /// Re-wraps the vault keys under a new password. No data is rewritten.
    pub fn change_password(&mut self, new_password: &[u8]) -> Result<()> {
        let kdf = KdfParams {
            salt: rand::random::<[u8; 16]>().to_vec(),
            ..self.config.kdf.clone()
        };
        let wrap = kdf.derive(new_password)?;
        let mut config = self.config.clone();
        config.keys = self.keys.wrap(config.vault_id, &wrap.wrap);
        config.kdf = kdf;
        write_atomic(&self.dir.join(CONFIG_FILE), &config_json(&config)?)?;
        self.config = config;
        Ok(())
    }

    /// The vault's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vault's config.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The unwrapped keys (for `cairn debug keys`).
    pub fn keys(&self) -> &VaultKeys {
        &self.keys
    }

    /// The codec sealing this vault's blobs.
    pub fn codec(&self) -> &BlobCodec {
        &self.codec
    }

    /// The chunk store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The store key of chunk `id`.
    pub fn key(&self, id: ChunkId) -> ChunkKey {
        ChunkKey::new(self.config.vault_id, id)
    }

    /// The sealed bytes of chunk `id` as stored.
    pub fn raw_blob(&self, id: ChunkId) -> Result<Vec<u8>> {
        self.store
            .get(&self.key(id))?
            .ok_or_else(|| Error::Integrity(format!("chunk {id} is missing from the vault")))
    }

    /// The verified plaintext of chunk `id`.
    pub fn blob(&self, id: ChunkId) -> Result<Vec<u8>> {
        self.codec.open(&id, &self.raw_blob(id)?)
    }

    /// Reads, verifies and opens chunk `id` into `reader`'s buffers,
    /// returning the plaintext; no allocation per chunk on hot paths.
    pub fn blob_with<'r>(&self, id: ChunkId, reader: &'r mut BlobReader) -> Result<&'r [u8]> {
        if !self.store.get_into(&self.key(id), &mut reader.sealed)? {
            return Err(Error::Integrity(format!(
                "chunk {id} is missing from the vault"
            )));
        }
        self.codec
            .open_with(&id, &reader.sealed, &mut reader.scratch)?;
        Ok(reader.scratch.plaintext())
    }

    /// Loads and validates tree `id`.
    pub fn tree(&self, id: ChunkId) -> Result<Tree> {
        Tree::decode(&self.blob(id)?).map_err(|e| match e {
            Error::Format(m) | Error::Integrity(m) => Error::Integrity(format!("tree {id}: {m}")),
            other => other,
        })
    }

    /// All snapshot records, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let dir = self.dir.join("snapshots");
        let mut out = vec![];
        for entry in fs::read_dir(&dir).ctx("list", &dir)? {
            let path = entry.ctx("list", &dir)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let rec = SnapshotRecord::from_json(&fs::read(&path).ctx("read", &path)?)
                    .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
                if rec.vault != self.config.vault_id {
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

    /// Finds a snapshot by `latest`, a full id or a unique id prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotRecord> {
        let all = self.snapshots()?;
        if spec == "latest" {
            return all
                .into_iter()
                .next_back()
                .ok_or_else(|| Error::NotFound("the vault has no snapshots yet".into()));
        }
        let spec = spec.to_ascii_lowercase();
        let mut matches = all.into_iter().filter(|s| s.id.to_hex().starts_with(&spec));
        match (matches.next(), matches.next()) {
            (Some(s), None) if !spec.is_empty() => Ok(s),
            (Some(_), Some(_)) => Err(Error::NotFound(format!(
                "snapshot id prefix {spec:?} is ambiguous"
            ))),
            _ => Err(Error::NotFound(format!(
                "no snapshot {spec:?} in this vault"
            ))),
        }
    }

    /// Removes a snapshot record (its chunks stay until `prune`).
    pub fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        let dir = self.dir.join("snapshots");
        let path = dir.join(format!("{id}.json"));
        fs::remove_file(&path).ctx("remove", &path)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .ctx("sync", &dir)
    }

    /// Durably records a snapshot. Call only once every chunk it names is
    /// durable in the store.
    pub fn commit_snapshot(&self, record: &SnapshotRecord) -> Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| Error::Format(e.to_string()))?;
        write_atomic(
            &self
                .dir
                .join("snapshots")
                .join(format!("{}.json", record.id)),
            &json,
        )
    }
}

fn config_json(config: &VaultConfig) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(config).map_err(|e| Error::Format(e.to_string()))
}

/// Writes `bytes` to `path` atomically and durably: temporary file, fsync,
/// rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(bytes).ctx("write", &tmp)?;
    f.sync_all().ctx("sync", &tmp)?;
    fs::rename(&tmp, path).ctx("rename into", path)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("sync", dir)
}
