//! Cryptography of the client: everything that turns a password and
//! plaintext into bytes the server may hold.
//!
//! - [`aead`]: the `AES256CTR-POLY1305` AEAD that seals every chunk, tree,
//!   snapshot metadata blob and wrapped key.
//! - [`kdf`]: argon2id from the password to a *login key* (sent to a server,
//!   which keeps only a hash) and a *wrap key* (never leaves the client).
//! - [`keys`]: a vault's random keys and how they are wrapped.
//! - [`listing`]: a dispatched snapshot listing sealed for the account
//!   (AES-256-GCM under HKDF-SHA256 of the wrap key), which a browser opens.

pub mod aead;
pub mod kdf;
pub mod keys;
pub mod listing;

pub use aead::{
    open, open_into, seal, seal_parts, seal_with_nonce, Key, NONCE_LEN, OVERHEAD, TAG_LEN,
};
pub use kdf::{DerivedKeys, KdfParams};
pub use keys::{VaultKeys, VaultSecrets};
