//! Binary bodies of the internal storage routes (node to node).
//!
//! Chunks are sealed, incompressible bytes, so they travel raw, never as
//! bincode sequences or hex; small structured bodies (key lists, digests,
//! listings, reports) are bincode. Both binary layouts start with a version
//! byte, and the decoders are the trust boundary for bytes from the network:
//! a wrong version, truncation, trailing bytes, more than [`MAX_ENTRIES`]
//! entries or a chunk over [`MAX_CHUNK_LEN`] is refused before allocating.
//!
//! | body | layout |
//! |---|---|
//! | keyed frames (put) | `u8` 1 ‖ n × (key (48) ‖ `u32` LE length ‖ sealed bytes) |
//! | fetch answers (get) | `u8` 1 ‖ n × (`u8` status ‖ if status = 1: `u32` LE crc32 ‖ `u32` LE length ‖ sealed bytes) |
//!
//! Fetch status: 0 absent, 1 found, 2 present but failing its checksum.

use cairn_chunkstore::peers::Fetched;
use cairn_chunkstore::ChunkKey;
pub use cairn_proto::frames::MAX_CHUNK_LEN;

/// Version byte of both layouts.
pub const VERSION: u8 = 1;
/// Most entries one body may carry.
pub const MAX_ENTRIES: usize = 65_536;

/// A body that is not a valid internal frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty body or unknown version.
    #[error("unsupported internal frame version {0:?}")]
    Version(Option<u8>),
    /// The body ends inside an entry.
    #[error("truncated body: {0}")]
    Truncated(&'static str),
    /// Too many entries.
    #[error("too many entries: at most {MAX_ENTRIES}")]
    TooMany,
    /// A chunk over [`MAX_CHUNK_LEN`].
    #[error("chunk of {0} bytes exceeds the limit of {MAX_CHUNK_LEN}")]
    TooLarge(usize),
    /// An unknown fetch status byte.
    #[error("unknown fetch status {0}")]
    Status(u8),
}

fn body(bytes: &[u8]) -> Result<&[u8], WireError> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => Ok(rest),
        Some((&v, _)) => Err(WireError::Version(Some(v))),
        None => Err(WireError::Version(None)),
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
    if rest.len() < n {
        return Err(WireError::Truncated(what));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn u32_at(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn length(rest: &mut &[u8]) -> Result<usize, WireError> {
    let len = u32_at(take(rest, 4, "length")?) as usize;
    if len > MAX_CHUNK_LEN {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

/// Encodes chunks with their full keys (a put).
pub fn encode_frames(chunks: &[(ChunkKey, &[u8])]) -> Vec<u8> {
    let total: usize = chunks
        .iter()
        .map(|(_, v)| v.len() + ChunkKey::LEN + 4)
        .sum();
    let mut out = Vec::with_capacity(total + 1);
    out.push(VERSION);
    for (key, sealed) in chunks {
        out.extend_from_slice(&key.to_bytes());
        out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(sealed);
    }
    out
}

/// Decodes keyed frames, borrowing the chunk bytes.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<(ChunkKey, &[u8])>, WireError> {
    let mut rest = body(bytes)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == MAX_ENTRIES {
            return Err(WireError::TooMany);
        }
        let key = take(&mut rest, ChunkKey::LEN, "key")?;
        let key = ChunkKey::from_bytes(key).ok_or(WireError::Truncated("key"))?;
        let len = length(&mut rest)?;
        out.push((key, take(&mut rest, len, "chunk bytes")?));
    }
    Ok(out)
}

/// Encodes fetch answers (a get's reply).
pub fn encode_fetched(answers: &[Fetched]) -> Vec<u8> {
    let total: usize = answers
        .iter()
        .map(|f| match f {
            Fetched::Found { bytes, .. } => bytes.len() + 9,
            _ => 1,
        })
        .sum();
    let mut out = Vec::with_capacity(total + 1);
    out.push(VERSION);
    for f in answers {
        match f {
            Fetched::Absent => out.push(0),
            Fetched::Corrupt => out.push(2),
            Fetched::Found { crc32, bytes } => {
                out.push(1);
                out.extend_from_slice(&crc32.to_le_bytes());
                out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// Decodes fetch answers.
pub fn decode_fetched(bytes: &[u8]) -> Result<Vec<Fetched>, WireError> {
    let mut rest = body(bytes)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == MAX_ENTRIES {
            return Err(WireError::TooMany);
        }
        let status = take(&mut rest, 1, "status")?[0];
        out.push(match status {
            0 => Fetched::Absent,
            2 => Fetched::Corrupt,
            1 => {
                let crc32 = u32_at(take(&mut rest, 4, "crc")?);
                let len = length(&mut rest)?;
                Fetched::Found {
                    crc32,
                    bytes: take(&mut rest, len, "chunk bytes")?.to_vec(),
                }
            }
            other => return Err(WireError::Status(other)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::{ChunkId, VaultId};
    use proptest::prelude::*;

    fn key(i: u8) -> ChunkKey {
        ChunkKey::new(VaultId([i; 16]), ChunkId([i.wrapping_add(1); 32]))
    }

    proptest! {
        #[test]
        fn frames_round_trip(chunks in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..6)) {
            let items: Vec<(ChunkKey, &[u8])> = chunks.iter().map(|(i, v)| (key(*i), &v[..])).collect();
            let body = encode_frames(&items);
            prop_assert_eq!(decode_frames(&body).unwrap(), items);
        }

        #[test]
        fn fetched_round_trip(answers in proptest::collection::vec((0u8..3, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..100)), 0..6)) {
            let answers: Vec<Fetched> = answers.into_iter().map(|(s, crc32, bytes)| match s {
                0 => Fetched::Absent,
                1 => Fetched::Found { crc32, bytes },
                _ => Fetched::Corrupt,
            }).collect();
            prop_assert_eq!(decode_fetched(&encode_fetched(&answers)).unwrap(), answers);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_frames(&bytes);
            let _ = decode_fetched(&bytes);
        }

        #[test]
        fn truncation_is_an_error(cut in 1usize..70) {
            let body = encode_frames(&[(key(3), &[7u8; 20][..])]);
            let cut = cut.min(body.len() - 1);
            prop_assert!(decode_frames(&body[..body.len() - cut]).is_err());
            let body = encode_fetched(&[Fetched::Found { crc32: 1, bytes: vec![1; 40] }]);
            let cut = cut.min(body.len() - 2);
            prop_assert!(decode_fetched(&body[..body.len() - cut]).is_err());
        }
    }

    #[test]
    fn versions_and_sizes_are_checked() {
        assert_eq!(decode_frames(&[]), Err(WireError::Version(None)));
        assert_eq!(decode_fetched(&[9]), Err(WireError::Version(Some(9))));
        assert_eq!(decode_fetched(&[VERSION, 7]), Err(WireError::Status(7)));
        let mut body = vec![VERSION];
        body.extend_from_slice(&key(1).to_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_frames(&body), Err(WireError::TooLarge(_))));
    }
}
