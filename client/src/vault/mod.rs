//! Vaults: the config and keys of one vault over a [`Backend`] that holds
//! its chunks and snapshot records. Every backend unlocks to the same
//! [`Vault`], so backup, restore, check and the rest do not care where the
//! chunks live.
//!
//! | module | what |
//! |---|---|
//! | [`backend`] | the [`Backend`] trait |
//! | [`sink`] | the [`Sink`] trait a backup writes through, [`Sealed`] blobs |
//! | [`local`] | a local directory: RocksDB chunk store, one JSON file per record |
//! | [`account`] | an account vault on a `cairnd` cluster, and its upload stage |
//! | [`object`] | S3 or SFTP through OpenDAL: packs, an index cache, lock objects |
//! | [`memory`] | the in-memory double unit tests use |
//! | [`slots`] | key slots: several passwords and recovery keys per vault |

pub mod account;
pub mod backend;
pub mod local;
pub mod memory;
pub mod object;
pub mod sink;
pub mod slots;

use std::collections::HashMap;
use std::path::Path;

use cairn_proto::version::VAULT_FORMAT;
use cairn_proto::{ChunkId, JobId, SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

pub use backend::{Backend, Deleted, Hold, LockKind};
pub use sink::{channel as blob_channel, BlobSender, Blobs, Sealed, Sink, Written};

use crate::blob::{BlobCodec, OpenScratch};
use crate::chunker::ChunkerParams;
use crate::crypto::{KdfParams, VaultKeys};
use crate::error::{Error, Result};
use crate::select::{self, Filter, ThisDevice};
use crate::snapshot::SnapshotRecord;
use crate::tree::Tree;
use local::LocalBackend;
use slots::{KeySlot, RecoveryKey, Unlock};

/// Compression settings, fixed per vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compression {
    /// zstd level for chunks that shrink (others are stored raw).
    pub zstd_level: i32,
}

/// The contents of `vault.json` (format 1 or 2, see [`slots`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFile", into = "ConfigFile")]
pub struct VaultConfig {
    /// Layout version as read (written as [`VaultConfig::layout`] says).
    pub format: u32,
    /// The vault's id (part of every chunk key and AAD).
    pub vault_id: VaultId,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// Compression parameters.
    pub compression: Compression,
    /// The key slots, each sealing the vault keys for one secret.
    pub slots: Vec<KeySlot>,
}

impl VaultConfig {
    /// The format this config is written in: 1 while its only slot is
    /// password slot 0 (older builds still open it), 2 otherwise.
    pub fn layout(&self) -> u32 {
        match self.slots.as_slice() {
            [only] if only.is_first_password() => 1,
            _ => VAULT_FORMAT,
        }
    }
}

/// `vault.json` as stored: format 1 has top-level `kdf` and `keys` (one
/// password slot, id 0), format 2 a `key_slots` list.
#[derive(Serialize, Deserialize)]
struct ConfigFile {
    format: u32,
    vault_id: VaultId,
    chunker: ChunkerParams,
    compression: Compression,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<KdfParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    keys: Option<HexBytes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    key_slots: Vec<KeySlot>,
}

/// Bytes as hex in JSON.
#[derive(Serialize, Deserialize)]
struct HexBytes(#[serde(with = "hex::serde")] Vec<u8>);

impl TryFrom<ConfigFile> for VaultConfig {
    type Error = String;

    fn try_from(f: ConfigFile) -> std::result::Result<Self, String> {
        if f.format > VAULT_FORMAT {
            return Err(format!(
                "vault format {} is newer than this build understands ({VAULT_FORMAT}); upgrade cairn",
                f.format
            ));
        }
        let slots = match (f.format, f.kdf, f.keys, f.key_slots) {
            (1, Some(kdf), Some(keys), extra) if extra.is_empty() => vec![KeySlot {
                id: 0,
                unlock: Unlock::Password { kdf },
                keys: keys.0,
            }],
            (1, ..) => return Err("format 1 needs `kdf` and `keys` and no `key_slots`".into()),
            (_, None, None, slots) if !slots.is_empty() => slots,
            _ => {
                return Err("format 2 needs a non-empty `key_slots` and no `kdf` or `keys`".into())
            }
        };
        Ok(Self {
            format: f.format,
            vault_id: f.vault_id,
            chunker: f.chunker,
            compression: f.compression,
            slots,
        })
    }
}

impl From<VaultConfig> for ConfigFile {
    fn from(c: VaultConfig) -> Self {
        let format = c.layout();
        let mut file = Self {
            format,
            vault_id: c.vault_id,
            chunker: c.chunker,
            compression: c.compression,
            kdf: None,
            keys: None,
            key_slots: vec![],
        };
        if let [KeySlot {
            unlock: Unlock::Password { kdf },
            keys,
            ..
        }] = c.slots.as_slice()
        {
            if format == 1 {
                file.kdf = Some(kdf.clone());
                file.keys = Some(HexBytes(keys.clone()));
                return file;
            }
        }
        file.key_slots = c.slots;
        file
    }
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

/// Per-thread buffers for [`Vault::blob_with`], and the chunks a
/// [`Vault::prefetch`] fetched ahead for this thread.
#[derive(Default)]
pub struct BlobReader {
    sealed: Vec<u8>,
    scratch: OpenScratch,
    prefetched: HashMap<ChunkId, Vec<u8>>,
}

/// Sealed chunks fetched ahead ([`Vault::fetch_ahead`]).
#[derive(Default)]
pub struct Prefetched(HashMap<ChunkId, Vec<u8>>);

impl BlobReader {
    /// Hands this reader chunks fetched ahead; [`Vault::blob_with`] takes
    /// them from here instead of asking the store.
    pub fn preload(&mut self, chunks: Prefetched) {
        self.prefetched.extend(chunks.0);
    }
}

/// An open, unlocked vault.
pub struct Vault {
    config: VaultConfig,
    codec: BlobCodec,
    keys: VaultKeys,
    /// The key slot that unlocked it.
    slot: u32,
    backend: Box<dyn Backend>,
}

/// A slot [`Vault::add_key`] added, and the recovery key to show once
/// when it is a recovery slot.
pub struct AddedKey {
    /// The new slot's id.
    pub id: u32,
    /// The recovery key (shown once, stored nowhere).
    pub recovery: Option<RecoveryKey>,
}

impl Vault {
    /// Creates a new local vault in `dir` (which must not exist or be
    /// empty).
    pub fn create(dir: &Path, password: &[u8], options: &CreateOptions) -> Result<VaultConfig> {
        local::create(dir, || new_config(password, options))
    }

    /// Opens and unlocks the local vault in `dir` with `password` (any of
    /// its key slots' passwords or recovery keys).
    ///
    /// The chunk store opens on another thread while argon2id derives the
    /// key: the two are independent and each takes tens of milliseconds,
    /// a large part of a backup that finds nothing changed.
    pub fn open(dir: &Path, password: &[u8]) -> Result<Self> {
        let config = local::read_config(dir)?;
        let (unlocked, backend) = std::thread::scope(|s| {
            let backend = s.spawn(|| LocalBackend::open(dir, config.vault_id));
            let unlocked = slots::unlock(config.vault_id, &config.slots, password);
            let backend = backend
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("opening the chunk store panicked".into())));
            (unlocked, backend)
        });
        // A wrong password is reported before anything about the store.
        let (keys, slot) = unlocked?;
        let backend = backend?;
        let mut vault = Self::with_backend(config, keys, Box::new(backend));
        vault.slot = slot;
        Ok(vault)
    }

    /// An unlocked vault over `backend` (unlocked by slot 0).
    fn with_backend(config: VaultConfig, keys: VaultKeys, backend: Box<dyn Backend>) -> Self {
        Self {
            codec: BlobCodec::new(config.vault_id, keys.clone(), config.compression.zstd_level),
            keys,
            slot: 0,
            config,
            backend,
        }
    }

    /// The id of the key slot that unlocked this vault.
    pub fn unlocked_by(&self) -> u32 {
        self.slot
    }

    /// Password-slot KDF parameters with a fresh salt: the costs of the
    /// slot in use, or of the first password slot, or the defaults.
    fn fresh_kdf(&self) -> KdfParams {
        let password_kdf = |s: &KeySlot| match &s.unlock {
            Unlock::Password { kdf } => Some(kdf.clone()),
            Unlock::Recovery => None,
        };
        let in_use = self.config.slots.iter().find(|s| s.id == self.slot);
        match in_use
            .and_then(password_kdf)
            .or_else(|| self.config.slots.iter().find_map(password_kdf))
        {
            Some(kdf) => KdfParams {
                salt: KdfParams::generate().salt,
                ..kdf
            },
            None => KdfParams::generate(),
        }
    }

    /// Stores `slots` as the vault's key slots (local vaults only).
    fn store_slots(&mut self, slots: Vec<KeySlot>) -> Result<()> {
        let mut config = self.config.clone();
        config.slots = slots;
        config.format = config.layout();
        self.backend.rewrap(&config)?;
        self.config = config;
        Ok(())
    }

    /// Adds a key slot: a password slot for `password`, or with `None` a
    /// recovery slot whose fresh key is returned (to be shown once). No
    /// data is rewritten.
    pub fn add_key(&mut self, password: Option<&[u8]>) -> Result<AddedKey> {
        let id = slots::next_id(&self.config.slots);
        let vault = self.config.vault_id;
        let (slot, recovery) = match password {
            Some(pw) => {
                let unlock = Unlock::Password {
                    kdf: self.fresh_kdf(),
                };
                (KeySlot::seal(id, unlock, vault, &self.keys, pw)?, None)
            }
            None => {
                let rk = RecoveryKey::generate();
                let secret = rk.display();
                let slot =
                    KeySlot::seal(id, Unlock::Recovery, vault, &self.keys, secret.as_bytes())?;
                (slot, Some(rk))
            }
        };
        let mut all = self.config.slots.clone();
        all.push(slot);
        self.store_slots(all)?;
        Ok(AddedKey { id, recovery })
    }

    /// Removes key slot `id`; refused for the last slot and the slot in
    /// use ([`slots::check_removal`]).
    pub fn remove_key(&mut self, id: u32) -> Result<()> {
        slots::check_removal(&self.config.slots, id, self.slot)?;
        let kept = self
            .config
            .slots
            .iter()
            .filter(|s| s.id != id)
            .cloned()
            .collect();
        self.store_slots(kept)
    }

    /// Re-wraps the vault keys under a new password in the password slot
    /// that unlocked the vault (a fresh salt). No data is rewritten. Local
    /// vaults only: an account's password covers all its vaults
    /// ([`crate::remote::Session::change_password`]).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when a recovery key unlocked the vault: add a
    /// password with [`Vault::add_key`] instead.
    pub fn change_password(&mut self, new_password: &[u8]) -> Result<()> {
        let (id, vault, kdf) = (self.slot, self.config.vault_id, self.fresh_kdf());
        let mut all = self.config.slots.clone();
        let Some(slot) = all
            .iter_mut()
            .find(|s| s.id == id && matches!(s.unlock, Unlock::Password { .. }))
        else {
            return Err(Error::Invalid(
                "a recovery key unlocked this vault; add a password with `cairn key add`".into(),
            ));
        };
        *slot = KeySlot::seal(
            id,
            Unlock::Password { kdf },
            vault,
            &self.keys,
            new_password,
        )?;
        self.store_slots(all)
    }

    /// The storage behind this vault.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The vault's config.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The unwrapped keys (for `cairn-debug keys`).
    pub fn keys(&self) -> &VaultKeys {
        &self.keys
    }

    /// The codec sealing this vault's blobs.
    pub fn codec(&self) -> &BlobCodec {
        &self.codec
    }

    /// Which of `ids` are not stored (batched for account vaults).
    pub fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        self.backend.missing(ids)
    }

    /// Fetches `ids` ahead into `reader` in one request, so the following
    /// [`Vault::blob_with`] calls for them need no round trip (a no-op
    /// where reads are direct and as fast one by one).
    pub fn prefetch(&self, ids: &[ChunkId], reader: &mut BlobReader) -> Result<()> {
        if self.backend.batches_reads() {
            let want: Vec<ChunkId> = ids
                .iter()
                .filter(|id| !reader.prefetched.contains_key(id))
                .copied()
                .collect();
            if !want.is_empty() {
                reader.prefetched.extend(self.backend.get_many(&want)?);
            }
        }
        Ok(())
    }

    /// Fetches the sealed bytes of `ids` in one request, for handing to a
    /// [`BlobReader`] later ([`BlobReader::preload`]): a fetching thread
    /// can run ahead of the threads that decrypt and write. Empty where
    /// reads are direct (read one by one instead).
    pub fn fetch_ahead(&self, ids: &[ChunkId]) -> Result<Prefetched> {
        if self.backend.batches_reads() {
            self.backend.get_many(ids).map(Prefetched)
        } else {
            Ok(Prefetched::default())
        }
    }

    /// Forgets chunks prefetched into `reader` but not used.
    pub fn drop_prefetched(&self, reader: &mut BlobReader) {
        reader.prefetched.clear();
    }

    /// The sealed bytes of chunk `id` as stored.
    pub fn raw_blob(&self, id: ChunkId) -> Result<Vec<u8>> {
        let mut out = vec![];
        if self.backend.get_into(id, &mut out)? {
            Ok(out)
        } else {
            Err(Error::Integrity(format!(
                "chunk {id} is missing from the vault"
            )))
        }
    }

    /// Reads, verifies and opens chunk `id` into `reader`'s buffers,
    /// returning the plaintext; no allocation per chunk on hot paths.
    pub fn blob_with<'r>(&self, id: ChunkId, reader: &'r mut BlobReader) -> Result<&'r [u8]> {
        // A prefetched chunk stays until the unit is done: many files of a
        // unit may share it (one fetch, not one per duplicate).
        if let Some(sealed) = reader.prefetched.get(&id) {
            self.codec.open_with(&id, sealed, &mut reader.scratch)?;
            return Ok(reader.scratch.plaintext());
        }
        if !self.backend.get_into(id, &mut reader.sealed)? {
            return Err(Error::Integrity(format!(
                "chunk {id} is missing from the vault"
            )));
        }
        self.codec
            .open_with(&id, &reader.sealed, &mut reader.scratch)?;
        Ok(reader.scratch.plaintext())
    }

    /// Loads and validates tree `id` (through the backend's tree cache if
    /// it keeps one: a cached tree is verified like a fetched one and
    /// refetched on failure).
    pub fn tree(&self, id: ChunkId) -> Result<Tree> {
        let cached = self
            .backend
            .cached_tree(id)
            .and_then(|sealed| self.codec.open(&id, &sealed).ok());
        let plain = match cached {
            Some(plain) => plain,
            None => {
                self.backend.uncache_tree(id);
                let sealed = self.raw_blob(id)?;
                let plain = self.codec.open(&id, &sealed)?;
                self.backend.cache_tree(id, &sealed);
                plain
            }
        };
        Tree::decode(&plain).map_err(|e| match e {
            Error::Format(m) | Error::Integrity(m) => Error::Integrity(format!("tree {id}: {m}")),
            other => other,
        })
    }

    /// All snapshot records, oldest first, each verified against its
    /// sealed metadata ([`SnapshotRecord::verified_meta`]): one that fails
    /// is an error, not skipped. The backend notes the newest one, so
    /// `latest` can notice a server hiding newer snapshots later
    /// ([`Vault::find_snapshot`]).
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let mut all = self.snapshots_unverified()?;
        for rec in &mut all {
            let meta = rec.verified_meta(&self.keys)?;
            // The full counters travel sealed where the record keeps some.
            if let Some(stats) = meta.stats {
                rec.stats = stats;
            }
        }
        self.backend.observe_snapshots(&all)?;
        Ok(all)
    }

    /// Accepts the server's current list as the newest this device has seen
    /// (after snapshots were forgotten on another device on purpose).
    pub fn acknowledge_snapshots(&self) -> Result<()> {
        self.backend.acknowledge_snapshots()
    }

    /// The snapshot records as stored or served, oldest first, without
    /// opening their metadata (for `check`, which reports each bad one).
    pub fn snapshots_unverified(&self) -> Result<Vec<SnapshotRecord>> {
        self.backend.snapshots()
    }

    /// Finds a snapshot by `latest`, a full id or a unique id prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotRecord> {
        let every = Filter {
            all_devices: true,
            ..Filter::default()
        };
        let anyone = ThisDevice {
            name: "",
            always: false,
        };
        self.find_snapshot_in(spec, &every, &anyone)
    }

    /// The snapshot `spec` names within `filter` ([`select::resolve`]:
    /// `latest` is the newest the filter keeps, by default of
    /// `this` device).
    pub fn find_snapshot_in(
        &self,
        spec: &str,
        filter: &Filter,
        this: &ThisDevice<'_>,
    ) -> Result<SnapshotRecord> {
        let all = self.snapshots()?;
        if spec == "latest" {
            self.backend.check_latest(&all)?;
        }
        let meta_of = |s: &SnapshotRecord| s.open_meta(&self.keys);
        select::resolve(&all, spec, filter, this, &meta_of).cloned()
    }

    /// The snapshots `filter` keeps, oldest first (verified as by
    /// [`Vault::snapshots`]).
    pub fn snapshots_in(&self, filter: &Filter) -> Result<Vec<SnapshotRecord>> {
        let all = self.snapshots()?;
        let meta_of = |s: &SnapshotRecord| s.open_meta(&self.keys);
        Ok(select::filter(&all, filter, &meta_of)?
            .into_iter()
            .cloned()
            .collect())
    }

    /// Removes a snapshot record (its chunks stay until `prune`).
    pub fn forget_snapshot(&self, id: SnapshotId) -> Result<()> {
        self.backend.forget_snapshot(id)
    }

    /// Durably records a snapshot. Call only once every chunk it names is
    /// durable in the store.
    ///
    /// An account vault commits only as the end of a running backup job
    /// (`job`): that job is what keeps a concurrent prune from deleting the
    /// chunks the backup reused, so without one nothing is committed.
    pub fn commit_snapshot(&self, record: &SnapshotRecord, job: Option<JobId>) -> Result<()> {
        let label = match &record.item {
            Some(item) => item.clone(),
            None => paths_label(&self.keys, &record.open_meta(&self.keys)?.paths),
        };
        self.backend.commit_snapshot(record, &label, job)
    }
}

/// The config of a new vault: `options` checked, fresh vault keys sealed
/// in one password slot for `password` (format 1, the layout older builds
/// read).
fn new_config(password: &[u8], options: &CreateOptions) -> Result<VaultConfig> {
    if password.is_empty() {
        return Err(Error::Invalid("an empty password is not allowed".into()));
    }
    options.chunker.validate()?;
    crate::blob::check_level(options.zstd_level)?;
    let vault_id = VaultId::random();
    Ok(VaultConfig {
        format: 1,
        vault_id,
        chunker: options.chunker,
        compression: Compression {
            zstd_level: options.zstd_level,
        },
        slots: vec![KeySlot::seal(
            0,
            Unlock::Password {
                kdf: options.kdf.clone(),
            },
            vault_id,
            &VaultKeys::generate(),
            password,
        )?],
    })
}

/// `vault.json` as written (local and object vaults).
fn config_json(config: &VaultConfig) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(config).map_err(|e| Error::Format(e.to_string()))
}

/// The item label of a backup of plain paths in an account vault: `~`
/// and 16 hex digits of a keyed hash of the paths. The server needs a
/// label to group snapshots by; this one groups the same paths together
/// without telling the server any file name (it cannot test guesses
/// without the vault's key), and no item name can start with `~`
/// ([`crate::remote::check_vault_name`]).
pub fn paths_label(keys: &VaultKeys, paths: &[String]) -> String {
    let mut h = blake3::Hasher::new_keyed(&keys.chunk_id);
    h.update(b"cairn paths label v1");
    for p in paths {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("~{}", &h.finalize().to_hex()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_labels_group_paths_without_revealing_them() {
        let keys = VaultKeys::generate();
        let a = paths_label(&keys, &["/home/me".into()]);
        assert_eq!(a, paths_label(&keys, &["/home/me".into()]), "stable");
        assert!(a.starts_with('~') && a.len() == 17, "{a}");
        assert!(!a.contains("home"));
        // Different paths, a different split of the same bytes, or another
        // vault's key: a different label.
        assert_ne!(a, paths_label(&keys, &["/home/you".into()]));
        assert_ne!(
            paths_label(&keys, &["/a".into(), "b".into()]),
            paths_label(&keys, &["/ab".into()])
        );
        assert_ne!(a, paths_label(&VaultKeys::generate(), &["/home/me".into()]));
        // No item name can look like a label.
        assert!(matches!(
            crate::remote::check_vault_name("item", &a),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn config_layouts_round_trip_and_newer_ones_are_refused() {
        let v1 = include_str!("../../tests/fixtures/vault-v1/vault/vault.json");
        let config: VaultConfig = serde_json::from_str(v1).unwrap();
        assert_eq!((config.format, config.layout()), (1, 1));
        assert!(config.slots[0].is_first_password());
        // Written back byte-for-byte in format 1 (older builds read it).
        let again = serde_json::to_value(&config).unwrap();
        let orig: serde_json::Value = serde_json::from_str(v1).unwrap();
        assert_eq!(again, orig);

        let v2 = include_str!("../../tests/fixtures/vault-v2-keyslots/vault.json");
        let slotted: VaultConfig = serde_json::from_str(v2).unwrap();
        assert_eq!((slotted.format, slotted.layout()), (2, 2));
        assert_eq!(slotted.slots.len(), 3);
        assert_eq!(slotted.slots[0], config.slots[0]);
        let back: VaultConfig =
            serde_json::from_value(serde_json::to_value(&slotted).unwrap()).unwrap();
        assert_eq!(back, slotted);

        let mut newer: serde_json::Value = serde_json::from_str(v2).unwrap();
        newer["format"] = 3.into();
        let err = serde_json::from_value::<VaultConfig>(newer).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
        let mut mixed: serde_json::Value = serde_json::from_str(v1).unwrap();
        mixed["format"] = 2.into();
        assert!(serde_json::from_value::<VaultConfig>(mixed).is_err());
    }
}
