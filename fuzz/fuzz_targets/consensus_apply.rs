//! The event codec end to end: a sequence of `Request`s decoded from the
//! input exactly as `/raft/propose` and the log decode them (bincode, fixed
//! integers), applied in order with `cairn_consensus::apply` to a fresh
//! `State`, as every replica applies committed entries.
//!
//! Protects what the log's consumers rely on: no event a proposer can
//! encode panics `apply` (a panic there stops every replica at the same
//! entry); `apply` is deterministic (two replicas applying the same request
//! reach the same state and outcome); a request id applied twice answers
//! its first outcome and changes nothing; and the resulting state
//! round-trips through the snapshot format.
#![no_main]

use bincode::Options;
use cairn_consensus::codec::{self, STATE_FORMAT};
use cairn_consensus::{apply, Request, State};
use libfuzzer_sys::fuzz_target;

/// At most this many requests per input (keeps one run fast).
const MAX_REQUESTS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut state = State::with_dedup_capacity(16);
    for _ in 0..MAX_REQUESTS {
        // The wire layout of `bincode::deserialize` (fixed integers, little
        // endian), reading one request after another; the limit keeps a
        // hostile length prefix from allocating.
        let options = bincode::DefaultOptions::new()
            .with_fixint_encoding()
            .with_little_endian()
            .allow_trailing_bytes()
            .with_limit(rest.len() as u64);
        let Ok(request) = options.deserialize_from::<_, Request>(&mut rest) else {
            break;
        };
        let _ = request.event.kind();
        let mut replica = state.clone();
        let outcome = apply(&mut state, &request);
        assert_eq!(
            apply(&mut replica, &request),
            outcome,
            "deterministic outcome"
        );
        assert_eq!(replica, state, "deterministic state");
        let before = state.clone();
        assert_eq!(
            apply(&mut state, &request),
            outcome,
            "a repeated request answers its first outcome"
        );
        assert_eq!(state, before, "a repeated request changes nothing");
    }
    let bytes = codec::encode("snapshot data", STATE_FORMAT, &state).expect("state encodes");
    assert_eq!(codec::decode_state(&bytes).expect("state decodes"), state);
});
