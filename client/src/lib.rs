//! The Cairn backup core: everything `cairn` does, as a library, with the
//! CLI a thin layer on top (`main.rs`).
//!
//! Data flows `backup` → [`chunker`] → [`blob`] (id, compress, seal) →
//! [`vault`] (chunk store + snapshot records), and back through [`restore`].
//! [`tree`], [`blob`], [`snapshot`] and [`crypto`] are the formats (see
//! `docs/FORMATS.md`); they are pure and tested without any IO.
#![warn(missing_docs)]

pub mod backup;
pub mod blob;
pub mod check;
pub mod chunker;
pub mod crypto;
pub mod error;
pub mod fsmeta;
pub mod ls;
pub mod prune;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod source;
pub mod tree;
pub mod vault;

pub use error::{Error, Result};
pub use vault::Vault;
