//! The format-2 layouts of the state records whose layout changed in state
//! format 3, kept only to read what an older build wrote (stored records
//! and snapshot data) and convert it to today's types.
//!
//! Format 3 added, for unattended protection, the before/after commands of
//! items and vaults, the vault's default retention policy, each job's item,
//! schedule, `last_seen` and `revived` flag, and the state's schedules and
//! item retention overrides. Conversion fills them the way format 2
//! behaved: no commands, no retention policy (keep everything), jobs ran
//! for no item and no schedule, were last seen when they started and were
//! never revived, and there are no schedules and no overrides. The structs
//! here must never change: they describe bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v1, Layout};
use crate::event::{JobKind, Lease, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id, proto_id_map, proto_id_opt};
use crate::ids::{AccountId, DeviceId, JobId, UnixMillis};
use crate::state::{Account, Device, JobEnd, RequestLog, StorageNode, Tier};

/// A format-2 vault (also format 1's).
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Vault {
    #[serde(with = "proto_id")]
    id: VaultId,
    account: AccountId,
    name: String,
    tier: String,
    wrapped_keys: Vec<u8>,
    created_at: UnixMillis,
}

impl Layout for Vault {
    const SINCE: u8 = 1;
    type Older = Vault;
}

impl From<Vault> for super::Vault {
    fn from(v: Vault) -> Self {
        Self {
            id: v.id,
            account: v.account,
            name: v.name,
            tier: v.tier,
            wrapped_keys: v.wrapped_keys,
            created_at: v.created_at,
            before: Vec::new(),
            after: Vec::new(),
            retention: None,
        }
    }
}

/// A format-2 protected item (format 1 had none).
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Item {
    device: DeviceId,
    account: AccountId,
    name: String,
    paths: Vec<String>,
    excludes: Vec<String>,
    #[serde(with = "proto_id")]
    vault: VaultId,
    updated_at: UnixMillis,
}

impl Layout for Item {
    const SINCE: u8 = 1;
    type Older = Item;
}

impl From<Item> for super::Item {
    fn from(i: Item) -> Self {
        Self {
            device: i.device,
            account: i.account,
            name: i.name,
            paths: i.paths,
            excludes: i.excludes,
            vault: i.vault,
            updated_at: i.updated_at,
            before: Vec::new(),
            after: Vec::new(),
        }
    }
}

/// A format-2 job.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(crate) struct Job {
    pub(super) id: JobId,
    pub(super) account: AccountId,
    pub(super) device: DeviceId,
    #[serde(with = "proto_id_opt")]
    pub(super) vault: Option<VaultId>,
    pub(super) kind: JobKind,
    pub(super) started_at: UnixMillis,
    pub(super) finished: Option<JobEnd>,
}

impl Layout for Job {
    const SINCE: u8 = 2;
    type Older = v1::Job;
}

impl From<Job> for super::Job {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            account: j.account,
            device: j.device,
            vault: j.vault,
            kind: j.kind,
            started_at: j.started_at,
            finished: j.finished,
            item: None,
            schedule: None,
            last_seen: j.started_at,
            revived: false,
        }
    }
}

/// A format-2 state (snapshot data): format 3's first thirteen fields in
/// the same order, with the format-2 vault, job and item layouts.
#[derive(Debug, Deserialize)]
pub(crate) struct State {
    pub(super) accounts: BTreeMap<AccountId, Account>,
    pub(super) account_names: BTreeMap<String, AccountId>,
    pub(super) devices: BTreeMap<DeviceId, Device>,
    #[serde(with = "proto_id_map")]
    pub(super) vaults: BTreeMap<VaultId, Vault>,
    pub(super) tiers: BTreeMap<String, Tier>,
    #[serde(with = "proto_id_map")]
    pub(super) snapshots: BTreeMap<SnapshotId, SnapshotRecord>,
    pub(super) jobs: BTreeMap<JobId, Job>,
    pub(super) storage_nodes: BTreeMap<StorageNodeId, StorageNode>,
    pub(super) lease: Option<Lease>,
    pub(super) last_fencing_token: u64,
    pub(super) requests: RequestLog,
    pub(super) items: BTreeMap<(DeviceId, String), Item>,
    pub(super) server_secret: Option<Vec<u8>>,
}

impl Layout for State {
    const SINCE: u8 = 2;
    type Older = v1::State;
}

impl From<State> for super::State {
    fn from(s: State) -> Self {
        Self {
            accounts: s.accounts.into_iter().collect(),
            account_names: s.account_names.into_iter().collect(),
            devices: s.devices.into_iter().collect(),
            vaults: s.vaults.into_iter().map(|(k, v)| (k, v.into())).collect(),
            tiers: s.tiers.into_iter().collect(),
            snapshots: s.snapshots.into_iter().collect(),
            jobs: s.jobs.into_iter().map(|(k, j)| (k, j.into())).collect(),
            storage_nodes: s.storage_nodes.into_iter().collect(),
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: s.items.into_iter().map(|(k, i)| (k, i.into())).collect(),
            server_secret: s.server_secret,
            ..Self::default()
        }
    }
}

/// Test-only downgrades, to write records the way a format-2 build did.
#[cfg(test)]
mod downgrade {
    use super::*;

    impl From<&super::super::Vault> for Vault {
        fn from(v: &super::super::Vault) -> Self {
            Self {
                id: v.id,
                account: v.account,
                name: v.name.clone(),
                tier: v.tier.clone(),
                wrapped_keys: v.wrapped_keys.clone(),
                created_at: v.created_at,
            }
        }
    }

    impl From<&super::super::Item> for Item {
        fn from(i: &super::super::Item) -> Self {
            Self {
                device: i.device,
                account: i.account,
                name: i.name.clone(),
                paths: i.paths.clone(),
                excludes: i.excludes.clone(),
                vault: i.vault,
                updated_at: i.updated_at,
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
                finished: j.finished.clone(),
            }
        }
    }
}
