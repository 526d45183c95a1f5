//! Snapshot records and their sealed metadata (`cairn_client::snapshot`):
//! `SnapshotRecord::from_json` (record files of a local vault) and
//! `SnapshotRecord::open_meta` (the sealed paths, host name, excludes and
//! warnings, as a vault's storage or a server hands them back). With a
//! fixed vault key:
//!
//! - selector 0: the input as a record. What parses has a supported format
//!   and survives a JSON round trip; metadata that opens re-seals.
//! - otherwise: the input is sealed as the metadata JSON under the right key
//!   and context; what opens re-seals and opens to the same metadata.
#![no_main]

use cairn_client::crypto::aead;
use cairn_client::snapshot::{SnapshotMeta, SnapshotRecord, SnapshotStats};
use cairn_fuzz::{fixed, selector};
use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{ChunkId, SnapshotId};
use libfuzzer_sys::fuzz_target;

const SNAPSHOT_AAD: &[u8] = b"cairn/snapshot/v1";

/// Metadata that opened re-seals and opens to the same value.
fn check_reseal(rec: &SnapshotRecord, meta: &SnapshotMeta) {
    let keys = fixed::keys();
    let resealed = SnapshotRecord {
        meta: meta.seal(&keys, rec.vault, rec.id).expect("metadata seals"),
        ..rec.clone()
    };
    let back = resealed.open_meta(&keys).expect("re-sealed metadata opens");
    assert_eq!(&back, meta);
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    let keys = fixed::keys();
    if which == 0 {
        let Ok(rec) = SnapshotRecord::from_json(body) else {
            return;
        };
        assert!(rec.format <= SNAPSHOT_FORMAT);
        let json = serde_json::to_vec(&rec).expect("a record encodes");
        assert_eq!(SnapshotRecord::from_json(&json).expect("re-parse"), rec);
        let _ = rec.short_id();
        if let Ok(meta) = rec.open_meta(&keys) {
            check_reseal(&rec, &meta);
        }
        return;
    }
    let id = SnapshotId([0x33; 16]);
    let aad = [SNAPSHOT_AAD, fixed::VAULT.as_bytes(), id.as_bytes()].concat();
    let rec = SnapshotRecord {
        format: SNAPSHOT_FORMAT,
        id,
        vault: fixed::VAULT,
        device: "fuzz".into(),
        item: None,
        time: String::new(),
        finished: String::new(),
        root: ChunkId([0; 32]),
        stats: SnapshotStats::default(),
        meta: aead::seal_with_nonce(&keys.encryption, fixed::NONCE, &aad, body),
    };
    let Ok(meta) = rec.open_meta(&keys) else {
        return;
    };
    check_reseal(&rec, &meta);
    // Under another snapshot id the same sealed metadata must not open.
    let moved = SnapshotRecord {
        id: SnapshotId([0x34; 16]),
        ..rec
    };
    assert!(moved.open_meta(&keys).is_err());
});
