//! `cairn-jepsen`: a fault-injection harness in the manner of Jepsen. It
//! runs real `cairnd` nodes, each in its own network namespace on a bridge
//! it creates (and always removes), drives real clients against them while
//! a nemesis kills, pauses, partitions, drops and delays packets, skews a
//! clock, cuts the power (losing unsynced writes) and replaces members on
//! a schedule
//! derived from one seed, records every operation, and checks the history:
//! registers through the event log must be linearizable, and every chunk
//! an upload acknowledged must read back byte-exact once faults are healed.
//!
//! Pure parts (no IO, unit- and property-tested): [`history`], [`check`],
//! [`schedule`], [`timeline`], and the replay command in [`report`]. IO:
//! [`net`] (namespaces, bridge, iptables), [`delay`] (the NFQUEUE
//! delayer), [`lazyfs`] (the lose-unfsynced-writes filesystem; its
//! [`lazyfs::Pending`] is pure), [`cluster`] (the processes),
//! [`http`] (the clients' requests), [`workload`] (client threads),
//! [`nemesis`] (faults applied), [`interrupt`] (Ctrl-C), [`run`] (one run
//! from preflight to report).

pub mod check;
pub mod cluster;
pub mod delay;
pub mod error;
pub mod history;
pub mod http;
pub mod interrupt;
pub mod lazyfs;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod run;
pub mod schedule;
pub mod timeline;
pub mod workload;

pub use error::JepsenError;
