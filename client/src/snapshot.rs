//! Snapshot records: what one backup produced.
//!
//! The record's public fields (id, vault, device, item, times, root tree id,
//! stats) are what a server may see and index; paths, host name, excludes
//! and warnings go into `meta`, sealed under the AAD
//! `"cairn/snapshot/v1" ‖ vault_id ‖ snapshot_id`, so a record moved to
//! another snapshot or vault fails to open.
//!
//! From format 2 the sealed metadata also repeats what restore relies on
//! ([`Bound`]: root tree, start time, item), and [`SnapshotRecord::verified_meta`]
//! refuses a record whose public fields differ: a server cannot swap in
//! another snapshot's root, move a snapshot in time to make it `latest`, or
//! fabricate one. Format-1 records (written before) are read as they are.

use std::time::{Duration, UNIX_EPOCH};

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
    /// The public fields restore relies on, authenticated (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<Bound>,
    /// Labels given at backup (`backup --tag`), for selection (`--tag`);
    /// absent when none, so untagged metadata is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The public fields of a record that restore and `latest` rely on, sealed
/// with the metadata so the vault keys vouch for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// The root tree.
    pub root: ChunkId,
    /// Start time, milliseconds since the epoch (the precision a server
    /// record keeps).
    pub started_ms: u64,
    /// The protected item, if any.
    pub item: Option<String>,
    /// At most this many entries in all the snapshot's trees together, as
    /// the backup walked them: a restore refuses trees that expand to more
    /// (a few small trees naming each other repeatedly could otherwise
    /// expand to 2^depth files). 0: unknown.
    #[serde(default)]
    pub entries: u64,
}

impl Bound {
    /// The bound fields of `record`, for a snapshot of `entries` entries.
    pub fn of(record: &SnapshotRecord, entries: u64) -> Result<Self> {
        Ok(Self {
            root: record.root,
            started_ms: rfc3339_ms(&record.time)?,
            item: record.item.clone(),
            entries,
        })
    }

    /// Whether `record`'s public fields are the ones sealed here.
    fn matches(&self, record: &SnapshotRecord) -> Result<bool> {
        Ok(self.root == record.root
            && self.started_ms == rfc3339_ms(&record.time)?
            && self.item == record.item)
    }
}

/// Milliseconds since the epoch as the RFC 3339 text snapshot records use.
pub fn ms_rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// RFC 3339 text to milliseconds since the epoch.
pub fn rfc3339_ms(text: &str) -> Result<u64> {
    humantime::parse_rfc3339(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .ok_or_else(|| Error::Format(format!("bad time {text:?}")))
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

    /// Opens the sealed metadata and checks that the record's root, start
    /// time and item are the ones sealed in it. Any failure is an integrity
    /// error naming the snapshot, never a record silently skipped.
    pub fn verified_meta(&self, keys: &VaultKeys) -> Result<SnapshotMeta> {
        let meta = self.open_meta(keys)?;
        match &meta.bound {
            Some(b) if !b.matches(self)? => Err(Error::Integrity(format!(
                "snapshot {}: the record's root, time or item differ from those sealed with it \
                 (the record was altered; do not trust it)",
                self.id
            ))),
            None if self.format >= 2 => Err(Error::Integrity(format!(
                "snapshot {}: a format-{} record without its sealed root and time (the record \
                 was altered; do not trust it)",
                self.id, self.format
            ))),
            _ => Ok(meta),
        }
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

    /// A sealed record as a backup writes it (format 2, bound fields).
    fn sealed(keys: &VaultKeys) -> SnapshotRecord {
        let (vault, id) = (VaultId::random(), SnapshotId::random());
        let mut rec = SnapshotRecord {
            format: SNAPSHOT_FORMAT,
            id,
            vault,
            device: "host".into(),
            item: Some("docs".into()),
            time: "2026-12-02T10:00:00.123456789Z".into(),
            finished: "2026-12-02T10:01:00Z".into(),
            root: ChunkId([1; 32]),
            stats: SnapshotStats::default(),
            meta: vec![],
        };
        let meta = SnapshotMeta {
            bound: Some(Bound::of(&rec, 1).unwrap()),
            ..Default::default()
        };
        rec.meta = meta.seal(keys, vault, id).unwrap();
        rec
    }

    #[test]
    fn a_record_whose_root_time_or_item_changed_is_refused() {
        let keys = VaultKeys::generate();
        let rec = sealed(&keys);
        rec.verified_meta(&keys).unwrap();
        // A server keeps milliseconds: the same time at that precision is fine.
        let ms = SnapshotRecord {
            time: "2026-12-02T10:00:00.123Z".into(),
            ..rec.clone()
        };
        ms.verified_meta(&keys).unwrap();
        for altered in [
            SnapshotRecord {
                root: ChunkId([2; 32]),
                ..rec.clone()
            },
            SnapshotRecord {
                time: "2030-01-01T00:00:00Z".into(),
                ..rec.clone()
            },
            SnapshotRecord {
                item: None,
                ..rec.clone()
            },
            SnapshotRecord {
                meta: vec![7; 64],
                ..rec.clone()
            },
        ] {
            let err = altered
                .verified_meta(&keys)
                .expect_err("altered record accepted");
            assert!(matches!(err, Error::Integrity(_)), "{err}");
        }
    }

    #[test]
    fn only_format_1_records_may_lack_the_bound_fields() {
        let keys = VaultKeys::generate();
        let mut rec = sealed(&keys);
        rec.meta = SnapshotMeta::default()
            .seal(&keys, rec.vault, rec.id)
            .unwrap();
        assert!(matches!(rec.verified_meta(&keys), Err(Error::Integrity(_))));
        rec.format = 1;
        rec.verified_meta(&keys).unwrap();
    }
}
