//! The format-1 layouts of the state records whose layout changed in state
//! format 2, kept only to read what an older build wrote (stored records
//! and snapshot data) and convert it to the format-2 layouts (devices and
//! tiers kept that layout, so they convert to today's types; jobs and the
//! whole state convert to `v2`'s, which convert on to today's).
//!
//! Format 2 added [`Device::last_login_at`](super::Device::last_login_at),
//! the tier quota and description, the job end counters and error, and the
//! state's protected items and server secret. Conversion fills them the way
//! format 1 behaved: a device last logged in when it registered, a tier has
//! no quota and no description, a job end counted nothing and reported no
//! error, and there are no items and no secret. The structs here must
//! never change: they describe bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v2, Layout};
use crate::event::{JobKind, JobStatus, Lease, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_opt};
use crate::ids::{AccountId, DeviceId, JobId, UnixMillis};
use crate::state::{Account, RequestLog, StorageNode};

/// The first layouts replaced nothing.
macro_rules! first_layout {
    ($($t:ty),*) => {$(
        impl Layout for $t {
            const SINCE: u8 = 1;
            type Older = $t;
        }
    )*};
}
first_layout!(Device, Tier, Job, State);

/// A format-1 device.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Device {
    id: DeviceId,
    account: AccountId,
    name: String,
    token_hash: Vec<u8>,
    registered_at: UnixMillis,
    revoked_at: Option<UnixMillis>,
}

impl From<Device> for super::Device {
    fn from(d: Device) -> Self {
        Self {
            id: d.id,
            account: d.account,
            name: d.name,
            token_hash: d.token_hash,
            registered_at: d.registered_at,
            revoked_at: d.revoked_at,
            last_login_at: d.registered_at,
        }
    }
}

/// A format-1 tier.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Tier {
    name: String,
    replicas: u8,
    requestable: bool,
    defined_at: UnixMillis,
}

impl From<Tier> for super::Tier {
    fn from(t: Tier) -> Self {
        Self {
            name: t.name,
            replicas: t.replicas,
            requestable: t.requestable,
            defined_at: t.defined_at,
            quota_bytes: None,
            description: String::new(),
        }
    }
}

/// A format-1 job.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Job {
    id: JobId,
    account: AccountId,
    device: DeviceId,
    #[serde(with = "proto_id_opt")]
    vault: Option<VaultId>,
    kind: JobKind,
    started_at: UnixMillis,
    finished: Option<JobEnd>,
}

/// A format-1 job end.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct JobEnd {
    status: JobStatus,
    log: String,
    at: UnixMillis,
}

impl From<Job> for v2::Job {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            account: j.account,
            device: j.device,
            vault: j.vault,
            kind: j.kind,
            started_at: j.started_at,
            finished: j.finished.map(|e| super::JobEnd {
                status: e.status,
                log: e.log,
                at: e.at,
                files: 0,
                bytes: 0,
                error: None,
            }),
        }
    }
}

/// A format-1 state (snapshot data): the same fields in the same order as
/// format 2's first eleven, with the format-1 device, tier and job layouts
/// (vaults have format 2's layout, which format 1 shared).
#[derive(Debug, Deserialize)]
pub(crate) struct State {
    accounts: BTreeMap<AccountId, Account>,
    account_names: BTreeMap<String, AccountId>,
    devices: BTreeMap<DeviceId, Device>,
    #[serde(with = "proto_id_map")]
    vaults: BTreeMap<VaultId, v2::Vault>,
    tiers: BTreeMap<String, Tier>,
    #[serde(with = "proto_id_map")]
    snapshots: BTreeMap<SnapshotId, SnapshotRecord>,
    jobs: BTreeMap<JobId, Job>,
    storage_nodes: BTreeMap<StorageNodeId, StorageNode>,
    lease: Option<Lease>,
    last_fencing_token: u64,
    requests: RequestLog,
}

impl From<State> for v2::State {
    fn from(s: State) -> Self {
        Self {
            accounts: s.accounts,
            account_names: s.account_names,
            devices: s.devices.into_iter().map(|(k, d)| (k, d.into())).collect(),
            vaults: s.vaults,
            tiers: s.tiers.into_iter().map(|(k, t)| (k, t.into())).collect(),
            snapshots: s.snapshots,
            jobs: s.jobs.into_iter().map(|(k, j)| (k, j.into())).collect(),
            storage_nodes: s.storage_nodes,
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: BTreeMap::new(),
            server_secret: None,
        }
    }
}

/// Test-only downgrades, to write records the way a format-1 build did.
#[cfg(test)]
mod downgrade {
    use super::*;

    impl From<&super::super::Device> for Device {
        fn from(d: &super::super::Device) -> Self {
            Self {
                id: d.id,
                account: d.account,
                name: d.name.clone(),
                token_hash: d.token_hash.clone(),
                registered_at: d.registered_at,
                revoked_at: d.revoked_at,
            }
        }
    }

    impl From<&super::super::Tier> for Tier {
        fn from(t: &super::super::Tier) -> Self {
            Self {
                name: t.name.clone(),
                replicas: t.replicas,
                requestable: t.requestable,
                defined_at: t.defined_at,
            }
        }
    }

    impl From<&super::super::Job> for Job {
        fn from(j: &super::super::Job) -> Self {
            Self {
                id: j.id,
                account: j.account,
                device: j.device,
                vault: j.vault,
                kind: j.kind,
                started_at: j.started_at,
                finished: j.finished.as_ref().map(|e| JobEnd {
                    status: e.status,
                    log: e.log.clone(),
                    at: e.at,
                }),
            }
        }
    }
}
