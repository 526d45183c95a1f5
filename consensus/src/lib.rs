//! Cairn's replicated event log (DESIGN §4).
//!
//! ```text
//!   proposer (node) ──Request{request_id, Event}──▶ openraft ──▶ LogStore (RocksDB `logs`, `meta`)
//!                                                      │ committed
//!                                                      ▼
//!                                        StateMachineStore::apply
//!                                                      │ pure
//!                                                      ▼
//!                                        apply(&mut State, &Request) -> Outcome
//!                                                      │
//!                        one synced WriteBatch: State + last_applied + membership (`state`)
//! ```
//!
//! The log is the source of truth for accounts, devices, vaults, tiers,
//! snapshot records, the job log, storage nodes and the license lease, and
//! for unattended protection: each device's items and schedules, their
//! before/after commands, retention policies, and job heartbeats and
//! abandonment. This
//! crate holds the pieces that decide and persist, and nothing that talks to
//! the network: the `node` crate implements openraft's network traits over
//! HTTP and composes this crate with the chunk store.
//!
//! - [`event`]: the [`Event`]s and the [`Request`] that carries one.
//! - [`state`]: the replicated [`State`].
//! - [`apply()`]: the pure, deterministic transition function.
//! - [`types`]: the openraft type configuration.
//! - [`store`]: RocksDB storage implementing openraft's v2 storage traits,
//!   with the durability contract of DESIGN §4.
//! - [`codec`]: the versioned binary format of everything persisted.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod apply;
pub mod codec;
pub mod console;
pub mod error;
pub mod event;
pub mod ids;
pub mod state;
pub mod store;
#[cfg(test)]
mod testgen;
pub mod types;

pub use apply::{apply, apply_entry, Outcome, RecordKind, Rejection};
pub use error::ConsensusError;
pub use event::{Event, Request};
pub use ids::{AccountId, DeviceId, JobId, RequestId, UnixMillis};
pub use state::State;
pub use store::{
    open, open_observed, DbProperties, LogStore, SnapshotObserver, StateHandle, StateMachineStore,
};
pub use types::{ClusterNode, NodeId, Raft, TypeConfig};
