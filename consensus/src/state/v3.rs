//! The format-3 layout of the whole state (snapshot data), kept only to
//! read what an older build wrote. Format 4 appended the cluster's
//! [`License`](super::License); a format-3 state had none, which is how it
//! converts. Every record kept its layout: only the snapshot data of the
//! whole state changed. The struct here must never change: it describes
//! bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v2, v4, Layout};
use crate::event::{Lease, RetentionPolicy, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_triple_map};
use crate::ids::{AccountId, DeviceId, JobId};
use crate::state::{Account, Device, Item, Job, RequestLog, Schedule, StorageNode, Tier, Vault};

/// A format-3 state: format 4's first fifteen fields in the same order.
#[derive(Debug, Deserialize)]
pub(crate) struct State {
    accounts: BTreeMap<AccountId, Account>,
    account_names: BTreeMap<String, AccountId>,
    devices: BTreeMap<DeviceId, Device>,
    #[serde(with = "proto_id_map")]
    vaults: BTreeMap<VaultId, Vault>,
    tiers: BTreeMap<String, Tier>,
    #[serde(with = "proto_id_map")]
    snapshots: BTreeMap<SnapshotId, SnapshotRecord>,
    jobs: BTreeMap<JobId, Job>,
    storage_nodes: BTreeMap<StorageNodeId, StorageNode>,
    lease: Option<Lease>,
    last_fencing_token: u64,
    requests: RequestLog,
    items: BTreeMap<(DeviceId, String), Item>,
    server_secret: Option<Vec<u8>>,
    schedules: BTreeMap<(DeviceId, String), Schedule>,
    #[serde(with = "proto_id_triple_map")]
    item_retention: BTreeMap<(VaultId, DeviceId, String), RetentionPolicy>,
}

impl Layout for State {
    const SINCE: u8 = 3;
    type Older = v2::State;
}

impl From<v2::State> for State {
    fn from(s: v2::State) -> Self {
        let s: super::State = s.into();
        Self {
            accounts: s.accounts.into_iter().collect(),
            account_names: s.account_names.into_iter().collect(),
            devices: s.devices.into_iter().collect(),
            vaults: s.vaults.into_iter().collect(),
            tiers: s.tiers.into_iter().collect(),
            snapshots: s.snapshots.into_iter().collect(),
            jobs: s.jobs.into_iter().collect(),
            storage_nodes: s.storage_nodes.into_iter().collect(),
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: s.items.into_iter().collect(),
            server_secret: s.server_secret,
            schedules: s.schedules.into_iter().collect(),
            item_retention: s.item_retention.into_iter().collect(),
        }
    }
}

impl From<State> for v4::State {
    fn from(s: State) -> Self {
        Self {
            accounts: s.accounts.into_iter().collect(),
            account_names: s.account_names.into_iter().collect(),
            devices: s.devices.into_iter().collect(),
            vaults: s.vaults.into_iter().collect(),
            tiers: s.tiers.into_iter().collect(),
            snapshots: s.snapshots.into_iter().collect(),
            jobs: s.jobs.into_iter().collect(),
            storage_nodes: s.storage_nodes.into_iter().collect(),
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: s.items.into_iter().collect(),
            server_secret: s.server_secret,
            schedules: s.schedules.into_iter().collect(),
            item_retention: s.item_retention.into_iter().collect(),
            license: None,
        }
    }
}
