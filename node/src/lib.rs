//! `cairnd`, the Cairn server node.
//!
//! A node composes the replicated event log ([`cairn_consensus`]) with an
//! HTTP server: openraft's network traits over HTTP ([`network`]), the Raft
//! RPC, cluster and admin endpoints ([`http`]), and the process lifecycle —
//! `init`, `serve`, `--join`, the dev cluster ([`server`]). Operator commands
//! that talk to a running cluster live in [`cli`].
//!
//! ```text
//!            ┌────────────── cairnd ───────────────┐
//!   HTTP ──▶ │ http (axum) ──▶ app ──▶ openraft ───┼──▶ peers (network, bincode/HTTP)
//!            │                  │         │        │
//!            │                  ▼         ▼        │
//!            │           StateHandle ◀─ consensus store (RocksDB data/raft)
//!            └─────────────────────────────────────┘
//! ```
//!
//! Security of the cluster-internal endpoints (`/raft/*`, joins, chunk
//! replication under `/internal/v1/`) rests on a shared cluster secret
//! ([`token::ClusterSecret`]) that every node has, loopback and the dev
//! cluster included: `init` generates it (or takes `--cluster-secret-file`)
//! and every joining node must be given it. There is no open mode.
//!
//! HTTPS ([`tls`]): with `tls_cert`/`tls_key` or `--tls-self-signed` the node
//! serves rustls and advertises `https://`; peers and the operator commands
//! verify certificates (extra roots with `--ca-file`). A non-loopback
//! listen address without TLS needs `--insecure-http`.
//!
//! The client-facing API of the auth role (login, account, devices, tiers,
//! vaults, snapshot records, protected items, jobs) is [`api`], with the
//! failed-login limiter in [`ratelimit`]; the router and its OpenAPI
//! document are built together there.
//!
//! The storage role ([`storage`]) keeps this node's chunks in
//! `DATA_DIR/chunks`, coordinates replicated uploads and reads for devices,
//! and, on the leader, repairs and rebalances the cluster's copies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod network;
pub mod ratelimit;
pub mod server;
pub mod storage;
pub mod tls;
pub mod token;
pub mod wire;
