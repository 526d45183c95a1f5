//! The format-3 layout of the whole state (snapshot data), kept only to
//! read what an older build wrote. Format 4 appended the cluster's
//! [`License`](super::License); a format-3 state had none, which is how it
//! converts. Every record kept its layout: only the snapshot data of the
//! whole state changed. The struct here must never change: it describes
//! bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v2, Layout};
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
            accounts: s.accounts,
            account_names: s.account_names,
            devices: s.devices,
            vaults: s.vaults,
            tiers: s.tiers,
            snapshots: s.snapshots,
            jobs: s.jobs,
            storage_nodes: s.storage_nodes,
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: s.items,
            server_secret: s.server_secret,
            schedules: s.schedules,
            item_retention: s.item_retention,
        }
    }
}

impl From<State> for super::State {
    fn from(s: State) -> Self {
        Self {
            accounts: s.accounts,
            account_names: s.account_names,
            devices: s.devices,
            vaults: s.vaults,
            tiers: s.tiers,
            snapshots: s.snapshots,
            jobs: s.jobs,
            storage_nodes: s.storage_nodes,
            lease: s.lease,
            last_fencing_token: s.last_fencing_token,
            requests: s.requests,
            items: s.items,
            server_secret: s.server_secret,
            schedules: s.schedules,
            item_retention: s.item_retention,
            license: None,
            topology: super::Topology::default(),
        }
    }
}
