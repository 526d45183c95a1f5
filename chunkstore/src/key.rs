//! The on-disk key of a chunk.

use std::fmt;

use cairn_proto::{ChunkId, VaultId};
use serde::{Deserialize, Serialize};

/// `vault_id (16 bytes) || chunk_id (32 bytes)`: keys of one vault sort
/// together, so per-vault iteration is a range scan.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkKey {
    /// The vault the chunk belongs to.
    pub vault: VaultId,
    /// The chunk's id within the vault.
    pub chunk: ChunkId,
}

impl ChunkKey {
    /// Encoded length in bytes.
    pub const LEN: usize = VaultId::LEN + ChunkId::LEN;

    /// Builds a key.
    pub fn new(vault: VaultId, chunk: ChunkId) -> Self {
        Self { vault, chunk }
    }

    /// The 48-byte encoding.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..VaultId::LEN].copy_from_slice(self.vault.as_bytes());
        out[VaultId::LEN..].copy_from_slice(self.chunk.as_bytes());
        out
    }

    /// Parses the 48-byte encoding; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        Some(Self {
            vault: VaultId::from_slice(&bytes[..VaultId::LEN])?,
            chunk: ChunkId::from_slice(&bytes[VaultId::LEN..])?,
        })
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vault, self.chunk)
    }
}

impl fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(v in proptest::array::uniform16(any::<u8>()), c in proptest::array::uniform32(any::<u8>())) {
            let key = ChunkKey::new(VaultId(v), ChunkId(c));
            prop_assert_eq!(ChunkKey::from_bytes(&key.to_bytes()), Some(key));
        }
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert!(ChunkKey::from_bytes(&[0; 47]).is_none());
        assert!(ChunkKey::from_bytes(&[0; 49]).is_none());
    }
}
