//! Password → keys: the one argon2id derivation of Cairn.
//!
//! `argon2id(password, salt)` yields 64 bytes: the first 32 are the *login
//! key* (what a server verifies, storing only a hash of it), the last 32 the
//! *wrap key* that seals the vault keys and never leaves the client. The
//! client derives both; `cairnd admin user create` derives the login key of
//! a new account. Both must compute the same bytes from the same inputs, so
//! the derivation and its defaults live here once, pinned by a known-answer
//! vector. Behind the `kdf` feature so crates that never derive keys do not
//! link argon2.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The only algorithm name of format 1 (stored with every account and vault).
pub const ALGORITHM: &str = "argon2id";
/// Default memory cost for new accounts and vaults, in KiB (64 MiB).
pub const DEFAULT_MEMORY_KIB: u32 = 64 * 1024;
/// Default number of passes for new accounts and vaults.
pub const DEFAULT_ITERATIONS: u32 = 3;
/// Default degree of parallelism for new accounts and vaults.
pub const DEFAULT_PARALLELISM: u32 = 1;
/// Length of a freshly generated salt, in bytes.
pub const SALT_LEN: usize = 16;

/// argon2id cost parameters (the salt travels separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for Cost {
    fn default() -> Self {
        Self {
            memory_kib: DEFAULT_MEMORY_KIB,
            iterations: DEFAULT_ITERATIONS,
            parallelism: DEFAULT_PARALLELISM,
        }
    }
}

/// A fresh random salt of [`SALT_LEN`] bytes.
pub fn generate_salt() -> Vec<u8> {
    rand::random::<[u8; SALT_LEN]>().to_vec()
}

/// The two keys derived from a password; wiped from memory on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DerivedKeys {
    /// Proves knowledge of the password to a server.
    pub login: [u8; 32],
    /// Seals vault keys; never sent anywhere.
    pub wrap: [u8; 32],
}

/// Why a derivation could not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KdfError {
    /// The parameters are outside what argon2id accepts (e.g. memory below
    /// 8 KiB per lane, zero passes, a salt under 8 bytes).
    #[error("invalid argon2id parameters: {0}")]
    InvalidParams(String),
}

/// Derives the login and wrap keys from `password` and `salt`.
///
/// # Errors
///
/// [`KdfError::InvalidParams`] when argon2id refuses the cost or the salt.
pub fn derive(password: &[u8], salt: &[u8], cost: Cost) -> Result<DerivedKeys, KdfError> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(64))
        .map_err(|e| KdfError::InvalidParams(e.to_string()))?;
    let mut out = [0u8; 64];
    let memory = working_memory(params.block_count());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, salt, &mut out, memory)
        .map_err(|e| KdfError::InvalidParams(e.to_string()))?;
    let mut keys = DerivedKeys {
        login: [0; 32],
        wrap: [0; 32],
    };
    keys.login.copy_from_slice(&out[..32]);
    keys.wrap.copy_from_slice(&out[32..]);
    out.zeroize();
    Ok(keys)
}

/// argon2id's working memory (64 MiB by default), zeroed, on huge pages
/// where the kernel offers them. Touching fresh 4 KiB pages one fault at a
/// time cost more than the zeroing itself: 32 ms for 64 MiB on a VM here,
/// 7 ms on 2 MiB pages — a fifth of a no-change backup of a large file.
fn working_memory(blocks: usize) -> Vec<Block> {
    let mut memory: Vec<Block> = Vec::with_capacity(blocks);
    advise_huge_pages(memory.as_mut_ptr().cast(), blocks * Block::SIZE);
    memory.resize(blocks, Block::default());
    memory
}

/// Asks the kernel to back the whole 2 MiB pages of `len` bytes at `start`
/// with transparent huge pages (Linux with THP in `madvise` or `always`
/// mode; elsewhere, or refused, the memory just keeps small pages).
#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let begin = (start as usize).next_multiple_of(HUGE);
    let end = (start as usize + len) / HUGE * HUGE;
    if end > begin {
        // SAFETY: [begin, end) lies inside the allocation of `len` bytes at
        // `start` that the caller owns and has not touched; MADV_HUGEPAGE
        // changes only how the kernel backs those pages, never their
        // contents, and its failure changes nothing.
        unsafe {
            libc::madvise(begin as *mut libc::c_void, end - begin, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Cost = Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// A known-answer vector: an account created by one build must log in
    /// with another, and the client and `cairnd` must agree byte for byte.
    #[test]
    fn known_answer() {
        let k = derive(b"correct horse battery staple", b"cairn-golden-salt", CHEAP).unwrap();
        assert_eq!(hex::encode(k.login), GOLDEN_LOGIN);
        assert_eq!(hex::encode(k.wrap), GOLDEN_WRAP);
    }

    // Computed independently with the reference C implementation
    // (argon2-cffi's `hash_secret_raw`, type ID, version 0x13, 64-byte output).
    const GOLDEN_LOGIN: &str = "be9a00990a99d688a658c0228e43400f7326029facddbf16887c4436ad25a2e5";
    const GOLDEN_WRAP: &str = "b2b72a183e947ecbfdc7cf03a7c0f37eb94ffe7eeef7c6ceb22de6982489ad08";

    #[test]
    fn deterministic_and_password_dependent() {
        let a = derive(b"pw", b"somesaltsomesalt", CHEAP).unwrap();
        let b = derive(b"pw", b"somesaltsomesalt", CHEAP).unwrap();
        let c = derive(b"other", b"somesaltsomesalt", CHEAP).unwrap();
        assert_eq!((a.login, a.wrap), (b.login, b.wrap));
        assert_ne!(a.wrap, c.wrap);
        assert_ne!(a.login, a.wrap);
    }

    /// Memory spanning several 2 MiB pages (the huge-page advice applies)
    /// gives argon2's own answer from its own allocation.
    #[test]
    fn huge_page_memory_gives_the_same_keys() {
        let cost = Cost {
            memory_kib: 8 * 1024 + 3,
            ..CHEAP
        };
        let k = derive(b"pw", b"somesaltsomesalt", cost).unwrap();
        let mut out = [0u8; 64];
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(cost.memory_kib, 1, 1, Some(64)).unwrap(),
        )
        .hash_password_into(b"pw", b"somesaltsomesalt", &mut out)
        .unwrap();
        assert_eq!((&out[..32], &out[32..]), (&k.login[..], &k.wrap[..]));
    }

    #[test]
    fn bad_parameters_are_refused() {
        let low = Cost {
            memory_kib: 1,
            ..CHEAP
        };
        assert!(matches!(
            derive(b"x", b"somesaltsomesalt", low),
            Err(KdfError::InvalidParams(_))
        ));
        assert!(matches!(
            derive(b"x", b"short", CHEAP),
            Err(KdfError::InvalidParams(_))
        ));
    }

    #[test]
    fn defaults_and_salt() {
        assert_eq!(Cost::default().memory_kib, 64 * 1024);
        let s = generate_salt();
        assert_eq!(s.len(), SALT_LEN);
        assert_ne!(s, generate_salt());
    }
}
