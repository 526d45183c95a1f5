//! The Cairn backup core: everything `cairn` does, as a library, with the
//! CLI a thin layer on top (`main.rs`).
//!
//! Data flows `backup` → [`chunker`] → [`blob`] (id, compress, seal) →
//! [`vault`] (config, keys and a [`vault::Backend`]: a local directory, an
//! account vault on a cluster, or memory) and back through [`restore`].
//! [`tree`], [`blob`], [`snapshot`] and [`crypto`] are the formats (see
//! `docs/FORMATS.md`); they are pure and tested without any IO.
//!
//! Layers, each using only those after it: [`daemon`] (runs schedules) →
//! [`run`] (one job of a protected item: its before/after commands from
//! [`hooks`] around a backup, and the retention pass) → [`items`]
//! (protected items) →
//! the commands ([`backup`], [`restore`], [`check`], [`ls`], [`forget`],
//! [`prune`], [`mount`]) → [`jobs`] (an account's job log) → [`vault`] → [`remote`]
//! (the API client of a cluster) → the formats. The `cairn` binary adds
//! arguments, passwords, progress and output; exit codes are its policy.
#![warn(missing_docs)]

pub mod backup;
pub mod benchmark;
pub mod blob;
pub mod browse;
pub mod check;
pub mod chunker;
pub mod copy;
pub mod crypto;
pub mod daemon;
pub mod dump;
pub mod error;
pub mod forget;
pub mod fsmeta;
pub mod hooks;
pub mod items;
pub mod jobs;
pub mod ls;
pub mod mount;
pub mod pattern;
pub mod prune;
pub mod remote;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod run;
pub mod schedule;
pub mod select;
pub mod snapshot;
pub mod source;
pub mod tag;
pub mod tree;
pub mod vault;

pub use backup::{BackupOptions, BackupReport};
pub use check::CheckReport;
pub use error::{Error, Result};
pub use forget::ForgetReport;
pub use jobs::{CancelToken, JobLog};
pub use prune::PruneReport;
pub use restore::{RestoreOptions, RestoreReport};
pub use vault::{Backend, Vault};
