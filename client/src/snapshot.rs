//! Snapshot records: what one backup produced.
//!
//! The record's public fields (id, vault, device, item, times, root tree id,
//! stats) are what a server may see and index; paths, host name, excludes
//! and warnings go into `meta`, sealed under the AAD
//! `"cairn/snapshot/v1" ‖ vault_id ‖ snapshot_id`, so a record moved to
//! another snapshot or vault fails to open.

use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{ChunkId, SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

use crate::crypto::{aead, VaultKeys};
use crate::error::{Error, Result};

const SNAPSHOT_AAD: &[u8] = b"cairn/snapshot/v1";

/// Counters of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// Files whose data was read (new or changed since the parent).
    pub files_read: u64,
    /// Plaintext bytes of chunks this backup added to the vault.
    pub new_bytes: u64,
    /// Chunks (data and trees) this backup added.
    pub new_chunks: u64,
    /// Sealed bytes this backup added to the vault.
    pub stored_bytes: u64,
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Record format version.
    pub format: u32,
    /// Snapshot id.
    pub id: SnapshotId,
    /// The vault it lives in.
    pub vault: VaultId,
    /// Device (host) that made it.
    pub device: String,
    /// Protected item label, if any.
    pub item: Option<String>,
    /// Start time, RFC 3339 UTC with nanoseconds (sorts as text).
    pub time: String,
    /// End time, same format.
    pub finished: String,
    /// Root tree: a directory standing for `/`.
    pub root: ChunkId,
    /// Counters.
    pub stats: SnapshotStats,
    /// Sealed [`SnapshotMeta`], hex.
    #[serde(with = "hex::serde")]
    pub meta: Vec<u8>,
}

/// The private part of a snapshot record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The backed-up paths as given (absolute, lossy UTF-8 for display).
    pub paths: Vec<String>,
    /// Host name of the device.
    pub hostname: String,
    /// Exclude patterns in force.
    pub excludes: Vec<String>,
    /// Warnings collected during the backup (unreadable or changing files).
    pub warnings: Vec<String>,
    /// All counters, for account vaults: the server's record keeps only
    /// some of them (a local record has them all in the clear, so this is
    /// absent there and local records are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<SnapshotStats>,
}

fn aad(vault: VaultId, id: SnapshotId) -> Vec<u8> {
    [SNAPSHOT_AAD, vault.as_bytes(), id.as_bytes()].concat()
}

impl SnapshotMeta {
    /// Seals this metadata for snapshot `id` of `vault`.
    pub fn seal(&self, keys: &VaultKeys, vault: VaultId, id: SnapshotId) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::Format(format!("snapshot metadata: {e}")))?;
        Ok(aead::seal(&keys.encryption, &aad(vault, id), &json))
    }
}

impl SnapshotRecord {
    /// Checks the format version and opens the sealed metadata.
    pub fn open_meta(&self, keys: &VaultKeys) -> Result<SnapshotMeta> {
        let json = aead::open(&keys.encryption, &aad(self.vault, self.id), &self.meta)
            .map_err(|e| Error::Integrity(format!("snapshot {}: metadata: {e}", self.id)))?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::Format(format!("snapshot {} metadata: {e}", self.id)))
    }

    /// Parses a record, refusing newer formats.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let rec: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::Format(format!("snapshot record: {e}")))?;
        if rec.format > SNAPSHOT_FORMAT {
            return Err(Error::Format(format!(
                "snapshot record format {} is newer than this build ({SNAPSHOT_FORMAT})",
                rec.format
            )));
        }
        Ok(rec)
    }

    /// The first 8 hex digits of the id, as shown in listings.
    pub fn short_id(&self) -> String {
        self.id.to_hex()[..8].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_bound_to_its_snapshot() {
        let keys = VaultKeys::generate();
        let vault = VaultId::random();
        let id = SnapshotId::random();
        let meta = SnapshotMeta {
            paths: vec!["/home".into()],
            ..Default::default()
        };
        let mut rec = SnapshotRecord {
            format: SNAPSHOT_FORMAT,
            id,
            vault,
            device: "host".into(),
            item: None,
            time: String::new(),
            finished: String::new(),
            root: ChunkId([0; 32]),
            stats: SnapshotStats::default(),
            meta: meta.seal(&keys, vault, id).unwrap(),
        };
        let json = serde_json::to_vec(&rec).unwrap();
        assert_eq!(
            SnapshotRecord::from_json(&json)
                .unwrap()
                .open_meta(&keys)
                .unwrap(),
            meta
        );
        rec.id = SnapshotId::random();
        assert!(matches!(rec.open_meta(&keys), Err(Error::Integrity(_))));
    }
}
