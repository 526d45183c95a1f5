//! Password → keys, with argon2id.
//!
//! `argon2id(password, salt)` yields 64 bytes: the first 32 are the *login
//! key* (what a server verifies, storing only a hash of it), the last 32 the
//! *wrap key* that seals the vault keys and never leaves the client. So the
//! password never reaches a server, and the password alone recovers
//! everything after a lost PC.

use cairn_proto::kdf::{self, Cost};
use serde::{Deserialize, Serialize};

pub use cairn_proto::kdf::DerivedKeys;

use crate::error::{Error, Result};

/// argon2id parameters, stored with the account or vault so they can be
/// raised later without breaking existing data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `"argon2id"` in format 1.
    pub algorithm: String,
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
    /// Random salt, hex in JSON.
    #[serde(with = "hex::serde")]
    pub salt: Vec<u8>,
}

impl KdfParams {
    /// The shared defaults ([`cairn_proto::kdf`]: m = 64 MiB, t = 3, p = 1)
    /// with a fresh random 16-byte salt.
    pub fn generate() -> Self {
        let cost = Cost::default();
        Self {
            algorithm: kdf::ALGORITHM.into(),
            memory_kib: cost.memory_kib,
            iterations: cost.iterations,
            parallelism: cost.parallelism,
            salt: kdf::generate_salt(),
        }
    }

    /// Derives the login and wrap keys from `password`.
    ///
    /// # Errors
    ///
    /// [`Error::Format`] for an unknown algorithm or parameters argon2id
    /// refuses.
    pub fn derive(&self, password: &[u8]) -> Result<DerivedKeys> {
        if self.algorithm != kdf::ALGORITHM {
            return Err(Error::Format(format!(
                "unknown key derivation {:?}",
                self.algorithm
            )));
        }
        let cost = Cost {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        };
        kdf::derive(password, &self.salt, cost).map_err(|e| Error::Format(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            ..KdfParams::generate()
        }
    }

    #[test]
    fn deterministic_and_password_dependent() {
        let p = cheap();
        let a = p.derive(b"correct horse").unwrap();
        let b = p.derive(b"correct horse").unwrap();
        let c = p.derive(b"battery staple").unwrap();
        assert_eq!(a.wrap, b.wrap);
        assert_eq!(a.login, b.login);
        assert_ne!(a.wrap, c.wrap);
        assert_ne!(a.login, a.wrap);
    }

    #[test]
    fn matches_the_argon2_reference_output() {
        use argon2::{Algorithm, Argon2, Params, Version};
        // Independent computation through argon2's own 64-byte output API.
        let p = KdfParams {
            salt: b"somesaltsomesalt".to_vec(),
            ..cheap()
        };
        let mut out = [0u8; 64];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, Some(64)).unwrap(),
        )
        .hash_password_into(b"pw", b"somesaltsomesalt", &mut out)
        .unwrap();
        let k = p.derive(b"pw").unwrap();
        assert_eq!(&out[..32], &k.login);
        assert_eq!(&out[32..], &k.wrap);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let mut p = cheap();
        p.algorithm = "scrypt".into();
        assert!(matches!(p.derive(b"x"), Err(Error::Format(m)) if m.contains("scrypt")));
        let mut p = cheap();
        p.memory_kib = 1;
        assert!(matches!(p.derive(b"x"), Err(Error::Format(m)) if m.contains("argon2id")));
    }
}
