//! The versioned binary format of everything the consensus crate persists
//! or installs (`cairn_consensus::codec`): snapshot data (a whole `State`,
//! format 1 migrated, as `install_snapshot` and a restart read it), stored
//! log entries (the event codec: `Entry<TypeConfig>` carrying a `Request`
//! and its `Event`), the metadata values (vote, log ids, membership,
//! snapshot meta) and the per-record values of the `state` column family.
//! The first byte picks the value.
//!
//! Protects: a corrupt or hostile value is an error, never a panic or an
//! allocation beyond the input (the 1 GiB `DECODE_LIMIT` is no defence on
//! its own); trailing bytes and newer formats are refused; and every value
//! that decodes re-encodes (at the current format) to one that decodes to
//! the same value and re-encodes to the same bytes.
#![no_main]

use cairn_consensus::codec::{self, LOG_ENTRY_FORMAT, META_FORMAT, STATE_FORMAT};
use cairn_consensus::state::{Account, Device, Item, Job, StorageNode, Tier, Vault};
use cairn_consensus::types::{Entry, LogId, SnapshotMeta, StoredMembership, Vote};
use cairn_consensus::{event::SnapshotRecord, Outcome};
use cairn_fuzz::selector;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decodes with `codec::decode` and checks the round trip at `format`.
fn value<T: Serialize + DeserializeOwned>(what: &'static str, format: u8, bytes: &[u8]) {
    let Ok(v) = codec::decode::<T>(what, format, bytes) else {
        return;
    };
    let once = codec::encode(what, format, &v).expect("a decoded value encodes");
    let again: T = codec::decode(what, format, &once).expect("a re-encoded value decodes");
    // Maps decode from any key order (and openraft's from repeated keys),
    // so only the re-encoding is canonical, not the input.
    assert_eq!(codec::encode(what, format, &again).expect("encode"), once);
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    match which % 16 {
        0 | 1 => {
            if let Ok(state) = codec::decode_state(body) {
                let bytes = codec::encode("snapshot data", STATE_FORMAT, &state).expect("encode");
                let back = codec::decode_state(&bytes).expect("re-encoded state decodes");
                assert_eq!(back, state);
                // The accessors the node reads an installed state through.
                assert!(state.same_domain(&back));
                for account in state.accounts().values().take(4) {
                    let _ = state.account_by_name(&account.name);
                }
                let _ = state.requests().capacity();
            }
        }
        2 | 3 => value::<Entry>("log entry", LOG_ENTRY_FORMAT, body),
        4 => value::<Vote>("vote", META_FORMAT, body),
        5 => value::<Option<LogId>>("log id", META_FORMAT, body),
        6 => value::<StoredMembership>("membership", META_FORMAT, body),
        7 => value::<SnapshotMeta>("snapshot meta", META_FORMAT, body),
        8 => value::<Account>("state record", STATE_FORMAT, body),
        9 => value::<Device>("state record", STATE_FORMAT, body),
        10 => value::<Vault>("state record", STATE_FORMAT, body),
        11 => value::<Tier>("state record", STATE_FORMAT, body),
        12 => value::<SnapshotRecord>("state record", STATE_FORMAT, body),
        13 => value::<Job>("state record", STATE_FORMAT, body),
        14 => value::<StorageNode>("state record", STATE_FORMAT, body),
        _ => {
            value::<Item>("state record", STATE_FORMAT, body);
            value::<(u64, Outcome)>("state record", STATE_FORMAT, body);
        }
    }
});
