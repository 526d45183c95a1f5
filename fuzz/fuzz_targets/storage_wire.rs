//! The node-to-node chunk bodies (`cairn_node::storage::wire`): keyed
//! frames of `/internal/v1/chunks/put` (decoded by the receiving node) and
//! fetch answers of `/internal/v1/chunks/get` (decoded by the asking node).
//! Protects: no panic, limits before allocation, exact round trip.
#![no_main]

use cairn_node::storage::wire::{
    decode_fetched, decode_frames, encode_fetched, encode_frames, MAX_CHUNK_LEN, MAX_ENTRIES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = decode_frames(data) {
        assert!(frames.len() <= MAX_ENTRIES);
        assert!(frames.iter().all(|(_, v)| v.len() <= MAX_CHUNK_LEN));
        assert_eq!(
            encode_frames(&frames),
            data,
            "keyed frames re-encode to their bytes"
        );
    }
    if let Ok(answers) = decode_fetched(data) {
        assert!(answers.len() <= MAX_ENTRIES);
        assert_eq!(
            encode_fetched(&answers),
            data,
            "fetch answers re-encode to their bytes"
        );
        assert_eq!(
            decode_fetched(&encode_fetched(&answers)).expect("re-decode"),
            answers
        );
    }
});
