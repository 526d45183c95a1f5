//! Binary bodies of the chunk API: id lists and chunk frames.
//!
//! Chunks are already sealed and mostly incompressible, so they travel as
//! raw bytes rather than hex JSON. Both layouts start with a version byte so
//! either side can refuse what a newer build sends.
//!
//! | body | layout |
//! |---|---|
//! | id list | `u8` [`FRAMES_VERSION`] ‖ n × chunk id (32 bytes) |
//! | chunk frames | `u8` [`FRAMES_VERSION`] ‖ n × (chunk id (32) ‖ `u32` LE length ‖ sealed bytes) |
//!
//! Decoders are the trust boundary for bytes from the network: they reject
//! a wrong version, truncation, trailing bytes, more than [`MAX_IDS`]
//! entries and chunks over [`MAX_CHUNK_LEN`] before allocating.

use crate::id::ChunkId;

/// Version byte of both layouts.
pub const FRAMES_VERSION: u8 = 1;
/// Most ids (or frames) one body may carry.
pub const MAX_IDS: usize = 65_536;
/// Largest sealed chunk accepted (a tree of a huge directory is one chunk).
pub const MAX_CHUNK_LEN: usize = 64 << 20;

/// A body that is not a valid id list or frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Empty body, or a version this build does not know.
    #[error("unsupported frame version {0:?} (this build reads version {FRAMES_VERSION})")]
    Version(Option<u8>),
    /// The body ends inside an entry.
    #[error("truncated body: {0}")]
    Truncated(&'static str),
    /// Too many entries.
    #[error("too many entries: at most {MAX_IDS} per request")]
    TooMany,
    /// A chunk longer than [`MAX_CHUNK_LEN`].
    #[error("chunk of {0} bytes exceeds the limit of {MAX_CHUNK_LEN}")]
    ChunkTooLarge(usize),
}

fn body(bytes: &[u8]) -> Result<&[u8], FrameError> {
    match bytes.split_first() {
        Some((&FRAMES_VERSION, rest)) => Ok(rest),
        Some((&v, _)) => Err(FrameError::Version(Some(v))),
        None => Err(FrameError::Version(None)),
    }
}

/// Encodes a list of chunk ids.
pub fn encode_ids<'a>(ids: impl IntoIterator<Item = &'a ChunkId>) -> Vec<u8> {
    let mut out = vec![FRAMES_VERSION];
    for id in ids {
        out.extend_from_slice(id.as_bytes());
    }
    out
}

/// Decodes a list of chunk ids.
pub fn decode_ids(bytes: &[u8]) -> Result<Vec<ChunkId>, FrameError> {
    let rest = body(bytes)?;
    if rest.len() % ChunkId::LEN != 0 {
        return Err(FrameError::Truncated(
            "id list length is not a multiple of 32",
        ));
    }
    if rest.len() / ChunkId::LEN > MAX_IDS {
        return Err(FrameError::TooMany);
    }
    Ok(rest
        .chunks_exact(ChunkId::LEN)
        .filter_map(ChunkId::from_slice)
        .collect())
}

/// Appends chunk frames to a body; start with [`frames_header`].
pub fn push_frame(out: &mut Vec<u8>, id: &ChunkId, sealed: &[u8]) {
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(sealed);
}

/// The first byte of a frame body.
pub fn frames_header() -> Vec<u8> {
    vec![FRAMES_VERSION]
}

/// Decodes chunk frames, borrowing the chunk bytes from `bytes`.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<(ChunkId, &[u8])>, FrameError> {
    let mut rest = body(bytes)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == MAX_IDS {
            return Err(FrameError::TooMany);
        }
        if rest.len() < ChunkId::LEN + 4 {
            return Err(FrameError::Truncated("frame header"));
        }
        let (id, tail) = rest.split_at(ChunkId::LEN);
        let (len, tail) = tail.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_CHUNK_LEN {
            return Err(FrameError::ChunkTooLarge(len));
        }
        if tail.len() < len {
            return Err(FrameError::Truncated("chunk bytes"));
        }
        let (sealed, tail) = tail.split_at(len);
        let id = ChunkId::from_slice(id).ok_or(FrameError::Truncated("chunk id"))?;
        out.push((id, sealed));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_unknown_versions_are_refused() {
        assert_eq!(decode_ids(&[]), Err(FrameError::Version(None)));
        assert_eq!(decode_frames(&[2]), Err(FrameError::Version(Some(2))));
        assert_eq!(decode_ids(&[FRAMES_VERSION]), Ok(vec![]));
    }

    #[test]
    fn oversized_chunk_is_refused_before_reading_it() {
        let mut body = frames_header();
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frames(&body),
            Err(FrameError::ChunkTooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn frames_round_trip(chunks in proptest::collection::vec(
            (any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
            let mut body = frames_header();
            for (id, bytes) in &chunks {
                push_frame(&mut body, &ChunkId(*id), bytes);
            }
            let back = decode_frames(&body).expect("decode");
            prop_assert_eq!(back.len(), chunks.len());
            for ((id, bytes), (got_id, got)) in chunks.iter().zip(back) {
                prop_assert_eq!(&got_id.0, id);
                prop_assert_eq!(got, &bytes[..]);
            }
            let ids: Vec<ChunkId> = chunks.iter().map(|(id, _)| ChunkId(*id)).collect();
            prop_assert_eq!(decode_ids(&encode_ids(&ids)).expect("ids"), ids);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frames(&bytes);
            let _ = decode_ids(&bytes);
        }

        #[test]
        fn truncation_is_an_error(cut in 1usize..60) {
            let mut body = frames_header();
            push_frame(&mut body, &ChunkId([7; 32]), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]);
            let cut = cut.min(body.len() - 1);
            prop_assert!(decode_frames(&body[..body.len() - cut]).is_err());
        }
    }
}
