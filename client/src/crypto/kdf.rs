//! Password → keys, with argon2id.
//!
//! `argon2id(password, salt)` yields 64 bytes: the first 32 are the *login
//! key* (what a server verifies, storing only a hash of it), the last 32 the
//! *wrap key* that seals the vault keys and never leaves the client. So the
//! password never reaches a server, and the password alone recovers
//! everything after a lost PC.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

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
    /// Defaults (m = 64 MiB, t = 3, p = 1) with a fresh random 16-byte salt.
    pub fn generate() -> Self {
        Self {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
            salt: rand::random::<[u8; 16]>().to_vec(),
        }
    }

    /// Derives the login and wrap keys from `password`.
    pub fn derive(&self, password: &[u8]) -> Result<DerivedKeys> {
        if self.algorithm != "argon2id" {
            return Err(Error::Format(format!(
                "unknown key derivation {:?}",
                self.algorithm
            )));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(64))
            .map_err(|e| Error::Format(format!("invalid argon2id parameters: {e}")))?;
        let mut out = [0u8; 64];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(password, &self.salt, &mut out)
            .map_err(|e| Error::Format(format!("argon2id failed: {e}")))?;
        let mut keys = DerivedKeys {
            login: [0; 32],
            wrap: [0; 32],
        };
        keys.login.copy_from_slice(&out[..32]);
        keys.wrap.copy_from_slice(&out[32..]);
        out.zeroize();
        Ok(keys)
    }
}

/// The two keys derived from a password; wiped from memory on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DerivedKeys {
    /// Proves knowledge of the password to a server.
    pub login: [u8; 32],
    /// Seals vault keys; never sent anywhere.
    pub wrap: [u8; 32],
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
        assert!(p.derive(b"x").is_err());
        let mut p = cheap();
        p.memory_kib = 1;
        assert!(p.derive(b"x").is_err());
    }
}
