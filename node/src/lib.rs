//! `cairnd`, the Cairn server node.
//!
//! A node composes the replicated event log ([`cairn_consensus`]) with an
//! HTTP server. Its modules form one layered spine, each using only the
//! ones below it:
//!
//! ```text
//!   server            lifecycle: init, serve, --join, the dev cluster, shutdown
//!     │
//!   http              the only module that knows axum: router (assembled once),
//!     │               extractors, auth, handlers, accept loop
//!     ├──────────────┐
//!   license ─────────┤  the license lease: pure policies, the authority's store,
//!     │              │  the cluster's gate and lease worker (http also serves the
//!     │              │  authority's routes)
//!   storage          │  chunk store, peers, pure policies, background workers
//!     │              │
//!   cluster ◀────────┘  Raft (openraft) + the replicated state: propose, read,
//!     │                 join, remove; network; metrics; ClusterError
//!   config, tls, token, totp, worker, error, control (the devices connected
//!   here), downloads (the downloads role's builds and rendered files, for http)
//! ```
//!
//! `cairnd`'s binary (`src/main.rs`, `src/cmd/`) only parses the command
//! line and prints; the operator commands talk to a cluster through
//! [`client`].
//!
//! ```text
//!            ┌────────────── cairnd ─────────────────┐
//!   HTTP ──▶ │ http (axum) ──▶ cluster ──▶ openraft ──┼──▶ peers (network, bincode/HTTP)
//!            │      │             │           │      │
//!            │      ▼             ▼           ▼      │
//!            │   storage ──▶ StateHandle ◀─ consensus store (RocksDB data/raft)
//!            └────────────────────────────────────────┘
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
//! vaults, snapshot records, protected items, jobs) and the admin API are
//! [`http::api`], with the failed-login limiter in [`http::ratelimit`].
//! The web console ([`http::console`]) serves pages at `/` that read and
//! act only through those routes, in-process, as the signed-in operator or
//! user.
//!
//! The license lease ([`license`]): the cluster leases its serial from a
//! license authority (`cairnd license-authority`, the same binary; the dev
//! cluster embeds one), records grants, renewals and expiries in the log,
//! and turns read-only (`license_expired`) after the grace period.
//!
//! The storage role ([`storage`]) keeps this node's chunks in
//! `DATA_DIR/chunks`, coordinates replicated uploads and reads for devices,
//! and, on the leader, repairs and rebalances the cluster's copies.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod cluster;
pub mod config;
pub mod control;
pub mod downloads;
pub mod error;
pub mod http;
pub mod license;
pub mod present;
pub mod roles;
pub mod server;
pub mod storage;
pub mod tls;
pub mod token;
pub mod totp;
pub mod worker;
