//! `cairn-jepsen`: a fault-injection harness in the manner of Jepsen. It
//! runs real `cairnd` nodes, each in its own network namespace on a bridge
//! it creates (and always removes), drives real clients against them while
//! a nemesis kills, pauses, partitions, drops and delays packets, skews a
//! clock, cuts the power (losing unsynced writes), replaces members and
//! takes the license authority away on a schedule derived from one seed,
//! records every operation, and checks the history: registers through the
//! event log must be linearizable, every chunk an upload acknowledged must
//! read back byte-exact once faults are healed, the license lease must
//! never have two holders at once, with fencing tokens that only grow, and
//! every snapshot the real `cairn` client committed (while retention
//! forgot and pruned) must restore byte for byte.
//!
//! Pure parts (no IO, unit- and property-tested): [`history`], [`check`],
//! [`schedule`], [`timeline`], and the replay command in [`report`]. IO:
//! [`net`] (namespaces, bridge, iptables), [`delay`] (the NFQUEUE
//! delayer), [`lazyfs`] (the lose-unfsynced-writes filesystem; its
//! [`lazyfs::Pending`] is pure), [`authority`] (the real license
//! authority, over TLS), [`cluster`] (the processes), [`http`] (the
//! clients' requests), [`workload`] (register and chunk clients),
//! [`backup`] (the `cairn` device),
//! [`lease`] (the lease observer and rival), [`nemesis`] (faults
//! applied), [`interrupt`] (Ctrl-C), [`run`] (one run from preflight to
//! report).

pub mod authority;
pub mod backup;
pub mod check;
pub mod cluster;
pub mod delay;
pub mod error;
pub mod history;
pub mod http;
pub mod interrupt;
pub mod lazyfs;
pub mod lease;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod schedule;
pub mod timeline;
pub mod workload;

pub use error::JepsenError;
