//! Shared invariants of the fuzz targets.
//!
//! Every target feeds bytes from libFuzzer to a real decoder of the
//! workspace and checks what a parser of untrusted bytes must keep: it never
//! panics (libFuzzer reports a panic as a crash), never allocates far beyond
//! its input (run with `-malloc_limit_mb`/`-rss_limit_mb`, see README.md),
//! and, where there is an encoder, what decodes re-encodes to a value that
//! decodes to the same thing.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// bincode 1.x with the legacy configuration (`bincode::deserialize`), as
/// the node decodes Raft and internal storage bodies (`node/src/http.rs`
/// `decode`, `node/src/network.rs` `post_bincode`).
///
/// If `bytes` decodes as `T`, its re-encoding must decode again and
/// re-encode to the same bytes (the types need not implement `PartialEq`).
/// Returns the decoded value.
pub fn bincode_legacy<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = bincode::deserialize(bytes).ok()?;
    let once = bincode::serialize(&value).expect("a decoded value must re-encode");
    let again: T = bincode::deserialize(&once).expect("a re-encoded value must decode");
    let twice = bincode::serialize(&again).expect("re-encode");
    assert_eq!(
        once,
        twice,
        "bincode round trip of {}",
        std::any::type_name::<T>()
    );
    Some(value)
}

/// JSON through serde_json, as axum's `Json` extractor and the client's API
/// replies parse bodies. Same round-trip property as [`bincode_legacy`].
pub fn json<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(bytes).ok()?;
    let once = serde_json::to_vec(&value).expect("a decoded value must re-encode");
    let again: T = serde_json::from_slice(&once).expect("a re-encoded value must decode");
    let twice = serde_json::to_vec(&again).expect("re-encode");
    assert_eq!(
        once,
        twice,
        "JSON round trip of {}",
        std::any::type_name::<T>()
    );
    Some(value)
}

/// Splits off the first byte (a selector most targets use to pick which
/// decoder gets the rest), or `None` for empty input.
pub fn selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&s, rest)| (s, rest))
}

/// The fixed vault keys, vault id and wrap key the crypto targets use. A
/// fixed key keeps runs reproducible; the seed generator seals with it too.
pub mod fixed {
    use cairn_client::crypto::VaultKeys;
    use cairn_proto::VaultId;

    /// The vault every crypto target opens blobs of.
    pub const VAULT: VaultId = VaultId([0x5a; 16]);
    /// The account wrap key sealing vault keys.
    pub const WRAP_KEY: [u8; 32] = [0x77; 32];
    /// A fixed nonce for sealing fuzzer-chosen plaintexts (never reused
    /// outside fuzzing: this is a test key).
    pub const NONCE: [u8; 16] = [0x42; 16];

    /// The vault's keys.
    pub fn keys() -> VaultKeys {
        VaultKeys {
            encryption: [0x11; 32],
            chunk_id: [0x22; 32],
        }
    }
}
