//! The binary bodies of the device chunk API (`cairn_proto::frames`): id
//! lists and chunk frames, decoded by the node from devices and by the
//! client from the node. Protects: no panic, no allocation beyond the input
//! (limits checked before allocating), and decode(encode(x)) == x.
#![no_main]

use cairn_proto::frames::{
    decode_frames, decode_ids, encode_ids, frames_header, push_frame, MAX_CHUNK_LEN, MAX_IDS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ids) = decode_ids(data) {
        assert!(ids.len() <= MAX_IDS);
        assert_eq!(encode_ids(&ids), data, "an id list re-encodes to its bytes");
    }
    if let Ok(frames) = decode_frames(data) {
        assert!(frames.len() <= MAX_IDS);
        let mut body = frames_header();
        for (id, sealed) in &frames {
            assert!(sealed.len() <= MAX_CHUNK_LEN);
            push_frame(&mut body, id, sealed);
        }
        assert_eq!(body, data, "chunk frames re-encode to their bytes");
        assert_eq!(decode_frames(&body).expect("re-decode"), frames);
    }
});
