//! A vault's keys and their wrapping.
//!
//! Each vault has two random 256-bit keys: the *encryption key* (AEAD of
//! chunks, trees, snapshot metadata) and the *chunk-id key* (BLAKE3 keyed
//! hash that names chunks, so whoever stores them cannot confirm guesses of
//! content). They are sealed with the account's wrap key under the AAD
//! `"cairn/vault-keys/v1" ‖ vault_id` and the sealed blob is what a vault
//! config or a server stores. A password change re-seals this blob only.

use cairn_proto::version::KEYS_FORMAT;
use cairn_proto::VaultId;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aead;
use crate::error::{Error, Result};

const KEYS_AAD: &[u8] = b"cairn/vault-keys/v1";
const PLAINTEXT_LEN: usize = 1 + 32 + 32;

/// The unwrapped keys of one vault.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct VaultKeys {
    /// AEAD key for everything stored in the vault.
    pub encryption: [u8; 32],
    /// BLAKE3 key naming chunks.
    pub chunk_id: [u8; 32],
}

impl VaultKeys {
    /// Fresh random keys from the OS generator.
    pub fn generate() -> Self {
        Self {
            encryption: rand::random(),
            chunk_id: rand::random(),
        }
    }

    fn aad(vault: VaultId) -> Vec<u8> {
        [KEYS_AAD, vault.as_bytes()].concat()
    }

    /// Seals the keys with `wrap_key` for `vault`: version byte, encryption
    /// key, chunk-id key.
    pub fn wrap(&self, vault: VaultId, wrap_key: &[u8; 32]) -> Vec<u8> {
        let mut pt = Vec::with_capacity(PLAINTEXT_LEN);
        pt.push(KEYS_FORMAT);
        pt.extend_from_slice(&self.encryption);
        pt.extend_from_slice(&self.chunk_id);
        let sealed = aead::seal(wrap_key, &Self::aad(vault), &pt);
        pt.zeroize();
        sealed
    }

    /// Opens a wrapped-keys blob. A failed authentication means the password
    /// (hence the wrap key) is wrong: [`Error::WrongPassword`].
    pub fn unwrap(vault: VaultId, wrap_key: &[u8; 32], sealed: &[u8]) -> Result<Self> {
        let mut pt =
            aead::open(wrap_key, &Self::aad(vault), sealed).map_err(|_| Error::WrongPassword)?;
        let result = if pt.len() != PLAINTEXT_LEN || pt[0] != KEYS_FORMAT {
            Err(Error::Format(format!(
                "wrapped keys: unsupported version {} or length {}",
                pt.first().copied().unwrap_or(0),
                pt.len()
            )))
        } else {
            let mut keys = Self {
                encryption: [0; 32],
                chunk_id: [0; 32],
            };
            keys.encryption.copy_from_slice(&pt[1..33]);
            keys.chunk_id.copy_from_slice(&pt[33..65]);
            Ok(keys)
        };
        pt.zeroize();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_key() {
        let keys = VaultKeys::generate();
        let vault = VaultId::random();
        let sealed = keys.wrap(vault, &[3; 32]);
        let back = VaultKeys::unwrap(vault, &[3; 32], &sealed).unwrap();
        assert_eq!(back.encryption, keys.encryption);
        assert_eq!(back.chunk_id, keys.chunk_id);
        assert!(matches!(
            VaultKeys::unwrap(vault, &[4; 32], &sealed),
            Err(Error::WrongPassword)
        ));
        // Bound to the vault: another vault id does not open it.
        assert!(VaultKeys::unwrap(VaultId::random(), &[3; 32], &sealed).is_err());
    }
}
