//! The shared vocabulary of Cairn: typed identifiers and format version
//! constants used by both the server (`cairnd`) and the client (`cairn`).
//!
//! This crate does no IO and has no heavy dependencies so that every other
//! crate can depend on it. Anything that crosses a process or disk boundary
//! and is understood by more than one crate is named here.
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod console;
pub mod control;
pub mod download;
pub mod frames;
pub mod id;
#[cfg(feature = "kdf")]
pub mod kdf;
pub mod route;
#[cfg(feature = "schedule")]
pub mod schedule;
pub mod version;

pub use id::{AccountId, ChunkId, DeviceId, IdParseError, JobId, RequestId, SnapshotId, VaultId};
