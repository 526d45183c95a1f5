//! Sealed blobs (`cairn_client::blob::BlobCodec::open`, over
//! `crypto::aead::open_into`): every data chunk and tree a client reads
//! back from a store or server. With a fixed vault key:
//!
//! - selector 0: a claimed chunk id and a sealed blob. Only a blob that
//!   passes the tag under this key, vault and id may open, and only to
//!   plaintext with that id; garbage is an error, never a panic.
//! - otherwise: the input is sealed as a blob body (codec byte ‖ payload)
//!   under the right key and context, which is what reaches the codec and
//!   zstd decompression after authentication (a buggy or old writer, or a
//!   key holder). Opening must not panic or allocate beyond
//!   `MAX_PLAINTEXT`, must refuse the blob under any id but its
//!   plaintext's, and must return exactly the raw payload or what zstd
//!   decodes the frame to.
//!
//! A seal/open round trip of the payload as plaintext is checked too.
#![no_main]

use cairn_client::blob::{BlobCodec, Compressor, OpenScratch, MAX_PLAINTEXT};
use cairn_client::crypto::aead;
use cairn_fuzz::{fixed, selector};
use cairn_proto::ChunkId;
use libfuzzer_sys::fuzz_target;

const CHUNK_AAD: &[u8] = b"cairn/chunk/v1";

fn aad(id: &ChunkId) -> Vec<u8> {
    [CHUNK_AAD, fixed::VAULT.as_bytes(), id.as_bytes()].concat()
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    let codec = BlobCodec::new(fixed::VAULT, fixed::keys(), 3);
    if which == 0 {
        // A claimed id and a sealed blob, as a read from storage gets them.
        if body.len() < 32 {
            return;
        }
        let (id, sealed) = body.split_at(32);
        let id = ChunkId::from_slice(id).expect("32 bytes");
        let authentic = aead::open(&fixed::keys().encryption, &aad(&id), sealed).is_ok();
        match codec.open(&id, sealed) {
            Ok(plain) => {
                assert!(authentic, "only an authentic blob opens");
                assert_eq!(codec.id(&plain), id, "only under its own id");
            }
            Err(_) => {}
        }
        return;
    }
    // What the body opens to, by an independent reading of the format.
    let expected: Option<Vec<u8>> = match body.split_first() {
        Some((0, raw)) => Some(raw.to_vec()),
        Some((1, frame)) => match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) if n <= 1 << 20 => zstd::bulk::decompress(frame, n as usize)
                .ok()
                .filter(|p| p.len() as u64 == n),
            _ => None,
        },
        _ => None,
    };
    let claimed = match &expected {
        Some(p) => codec.id(p),
        None => ChunkId([which; 32]),
    };
    let sealed = aead::seal_with_nonce(
        &fixed::keys().encryption,
        fixed::NONCE,
        &aad(&claimed),
        body,
    );
    let mut scratch = OpenScratch::default();
    match codec.open_with(&claimed, &sealed, &mut scratch) {
        Ok(()) => {
            let plain = scratch.plaintext();
            assert!(plain.len() <= MAX_PLAINTEXT);
            assert_eq!(codec.id(plain), claimed);
            if let Some(p) = &expected {
                assert_eq!(plain, &p[..], "open returns what the body holds");
            }
        }
        Err(_) => assert!(
            expected.is_none(),
            "a well-formed body under its own id must open"
        ),
    }
    // The same blob under another id or with a flipped bit is refused.
    let mut other = claimed;
    other.0[0] ^= 1;
    assert!(codec.open(&other, &sealed).is_err());
    let mut flipped = sealed.clone();
    let at = usize::from(which) % flipped.len();
    flipped[at] ^= 0x80;
    assert!(codec.open(&claimed, &flipped).is_err());
    // Seal and open the body as a plaintext.
    let mut z = Compressor::new().expect("zstd context");
    let id = codec.id(body);
    let blob = codec.seal(&id, body, &mut z);
    assert_eq!(codec.open(&id, &blob).expect("round trip"), body);
});
