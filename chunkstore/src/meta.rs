//! The per-chunk metadata record kept beside each value.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Size, checksum and last-touched time of a stored chunk.
///
/// Encoded as 17 bytes: version `1`, `size` (u32 LE), `crc32c` (u32 LE),
/// `touched` (u64 LE, Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMeta {
    /// Length of the sealed bytes.
    pub size: u32,
    /// CRC-32 (IEEE) of the sealed bytes, checked on every read.
    pub crc32: u32,
    /// When the chunk was last written or referenced (Unix seconds).
    pub touched: u64,
}

const META_VERSION: u8 = 1;
const META_LEN: usize = 17;

impl ChunkMeta {
    /// Metadata describing `sealed`, touched at `now`.
    pub fn describe(sealed: &[u8], now: u64) -> Result<Self> {
        let size = u32::try_from(sealed.len()).map_err(|_| {
            Error::Malformed(format!("chunk of {} bytes is too large", sealed.len()))
        })?;
        Ok(Self {
            size,
            crc32: crc32fast::hash(sealed),
            touched: now,
        })
    }

    /// Whether `sealed` matches this record.
    pub fn matches(&self, sealed: &[u8]) -> bool {
        sealed.len() == self.size as usize && crc32fast::hash(sealed) == self.crc32
    }

    /// The 17-byte encoding.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut out = [0u8; META_LEN];
        out[0] = META_VERSION;
        out[1..5].copy_from_slice(&self.size.to_le_bytes());
        out[5..9].copy_from_slice(&self.crc32.to_le_bytes());
        out[9..17].copy_from_slice(&self.touched.to_le_bytes());
        out
    }

    /// Parses the encoding, refusing unknown versions and wrong lengths.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != META_LEN || bytes[0] != META_VERSION {
            return Err(Error::Malformed(format!(
                "chunk metadata of {} bytes, version {:?}",
                bytes.len(),
                bytes.first()
            )));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let mut touched = [0u8; 8];
        touched.copy_from_slice(&bytes[9..17]);
        Ok(Self {
            size: u32_at(1),
            crc32: u32_at(5),
            touched: u64::from_le_bytes(touched),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(size: u32, crc32: u32, touched: u64) {
            let m = ChunkMeta { size, crc32, touched };
            prop_assert_eq!(ChunkMeta::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = ChunkMeta::decode(&bytes);
        }
    }

    #[test]
    fn detects_a_flipped_bit() {
        let data = b"sealed bytes".to_vec();
        let m = ChunkMeta::describe(&data, 7).unwrap();
        assert!(m.matches(&data));
        let mut bad = data.clone();
        bad[3] ^= 0x10;
        assert!(!m.matches(&bad));
        assert!(!m.matches(&data[1..]));
    }
}
