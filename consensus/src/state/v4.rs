//! The format-4 layout of the whole state (snapshot data), kept only to
//! read what an older build wrote. Format 5 appended the
//! [`Topology`](super::Topology) (node roles, storage labels, tier labels);
//! a format-4 state had none, which is how it converts: every node runs
//! every role and no tier is pooled. Every record kept its layout: only the
//! snapshot data of the whole state changed (and a new `m/topology`
//! record). The struct here must never change: it describes bytes already
//! on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v3, Layout, License};
use crate::event::{Lease, RetentionPolicy, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_triple_map};
use crate::ids::{AccountId, DeviceId, JobId};
use crate::state::{Account, Device, Item, Job, RequestLog, Schedule, StorageNode, Tier, Vault};

/// A format-4 state: format 5's first sixteen fields in the same order.
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
    license: Option<License>,
}

impl Layout for State {
    const SINCE: u8 = 4;
    type Older = v3::State;
}

impl From<v3::State> for State {
    fn from(s: v3::State) -> Self {
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
            license: s.license,
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
            license: s.license,
            topology: super::Topology::default(),
        }
    }
}
