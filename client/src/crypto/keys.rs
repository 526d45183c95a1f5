//! A vault's keys and their wrapping.
//!
//! Each vault has two random 256-bit keys: the *encryption key* (AEAD of
//! chunks, trees, snapshot metadata) and the *chunk-id key* (BLAKE3 keyed
//! hash that names chunks, so whoever stores them cannot confirm guesses of
//! content). They are sealed with the account's wrap key under the AAD
//! `"cairn/vault-keys/v1" ‖ vault_id` and the sealed blob is what a vault
//! config or a server stores. A password change re-seals this blob only.
//!
//! An account vault has no `vault.json`, so its sealed blob
//! ([`VaultSecrets`], version 2) also carries the parameters fixed at its
//! creation (chunker bounds and zstd level): every device that unwraps the
//! keys chunks and compresses the same way, and the server learns neither.

use cairn_proto::version::KEYS_FORMAT;
use cairn_proto::VaultId;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aead;
use crate::chunker::ChunkerParams;
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

/// Version byte of the [`VaultSecrets`] plaintext (version 1 is the
/// keys-only blob of local vaults, [`KEYS_FORMAT`]).
pub const SECRETS_FORMAT: u8 = 2;
const SECRETS_LEN: usize = 1 + 32 + 32 + 4 * 4;

/// An account vault's keys and creation parameters, sealed together into
/// the vault record's `wrapped_keys`:
/// `0x02 ‖ encryption_key[32] ‖ chunk_id_key[32] ‖ min u32 LE ‖ avg u32 LE ‖
/// max u32 LE ‖ zstd_level i32 LE`, same AEAD and AAD as [`VaultKeys`].
#[derive(Clone)]
pub struct VaultSecrets {
    /// The keys.
    pub keys: VaultKeys,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub zstd_level: i32,
}

impl VaultSecrets {
    /// Seals keys and parameters with `wrap_key` for `vault`.
    pub fn wrap(&self, vault: VaultId, wrap_key: &[u8; 32]) -> Vec<u8> {
        let mut pt = Vec::with_capacity(SECRETS_LEN);
        pt.push(SECRETS_FORMAT);
        pt.extend_from_slice(&self.keys.encryption);
        pt.extend_from_slice(&self.keys.chunk_id);
        pt.extend_from_slice(&self.chunker.min_size.to_le_bytes());
        pt.extend_from_slice(&self.chunker.avg_size.to_le_bytes());
        pt.extend_from_slice(&self.chunker.max_size.to_le_bytes());
        pt.extend_from_slice(&self.zstd_level.to_le_bytes());
        let sealed = aead::seal(wrap_key, &VaultKeys::aad(vault), &pt);
        pt.zeroize();
        sealed
    }

    /// Opens a sealed secrets blob; a failed authentication is
    /// [`Error::WrongPassword`], a blob of another version or shape, or
    /// parameters no chunker accepts, an [`Error::Format`].
    pub fn unwrap(vault: VaultId, wrap_key: &[u8; 32], sealed: &[u8]) -> Result<Self> {
        let mut pt = aead::open(wrap_key, &VaultKeys::aad(vault), sealed)
            .map_err(|_| Error::WrongPassword)?;
        let result = Self::decode(&pt);
        pt.zeroize();
        result
    }

    fn decode(pt: &[u8]) -> Result<Self> {
        if pt.len() != SECRETS_LEN || pt[0] != SECRETS_FORMAT {
            return Err(Error::Format(format!(
                "account vault keys: unsupported version {} or length {} (this build reads version {SECRETS_FORMAT})",
                pt.first().copied().unwrap_or(0),
                pt.len()
            )));
        }
        let word = |i: usize| {
            let at = 65 + 4 * i;
            [pt[at], pt[at + 1], pt[at + 2], pt[at + 3]]
        };
        let mut keys = VaultKeys {
            encryption: [0; 32],
            chunk_id: [0; 32],
        };
        keys.encryption.copy_from_slice(&pt[1..33]);
        keys.chunk_id.copy_from_slice(&pt[33..65]);
        let secrets = Self {
            keys,
            chunker: ChunkerParams {
                min_size: u32::from_le_bytes(word(0)),
                avg_size: u32::from_le_bytes(word(1)),
                max_size: u32::from_le_bytes(word(2)),
            },
            zstd_level: i32::from_le_bytes(word(3)),
        };
        secrets
            .chunker
            .validate()
            .map_err(|e| Error::Format(format!("account vault parameters: {e}")))?;
        if !(1..=22).contains(&secrets.zstd_level) {
            return Err(Error::Format(format!(
                "account vault parameters: zstd level {} out of range",
                secrets.zstd_level
            )));
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn secrets_round_trip_and_are_bound_to_the_vault() {
        let s = VaultSecrets {
            keys: VaultKeys::generate(),
            chunker: ChunkerParams::default(),
            zstd_level: 3,
        };
        let vault = VaultId::random();
        let sealed = s.wrap(vault, &[5; 32]);
        let back = VaultSecrets::unwrap(vault, &[5; 32], &sealed).unwrap();
        assert_eq!(back.keys.encryption, s.keys.encryption);
        assert_eq!(back.keys.chunk_id, s.keys.chunk_id);
        assert_eq!(back.chunker, s.chunker);
        assert_eq!(back.zstd_level, 3);
        assert!(matches!(
            VaultSecrets::unwrap(vault, &[6; 32], &sealed),
            Err(Error::WrongPassword)
        ));
        assert!(matches!(
            VaultSecrets::unwrap(VaultId::random(), &[5; 32], &sealed),
            Err(Error::WrongPassword)
        ));
        // A local vault's keys-only blob is not an account vault's secrets
        // and vice versa: a clear format error, not garbage keys.
        let v1 = s.keys.wrap(vault, &[5; 32]);
        assert!(matches!(
            VaultSecrets::unwrap(vault, &[5; 32], &v1),
            Err(Error::Format(_))
        ));
        assert!(matches!(
            VaultKeys::unwrap(vault, &[5; 32], &sealed),
            Err(Error::Format(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_plaintext_is_refused_not_panicked_on(pt in proptest::collection::vec(any::<u8>(), 0..100)) {
            let vault = VaultId([1; 16]);
            let sealed = aead::seal(&[7; 32], &VaultKeys::aad(vault), &pt);
            if let Ok(s) = VaultSecrets::unwrap(vault, &[7; 32], &sealed) {
                prop_assert_eq!(pt.len(), SECRETS_LEN);
                prop_assert!(s.chunker.validate().is_ok());
            }
        }
    }

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
        assert!(matches!(
            VaultKeys::unwrap(VaultId::random(), &[3; 32], &sealed),
            Err(Error::WrongPassword)
        ));
    }
}
