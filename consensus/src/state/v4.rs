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

use super::{v3, v5, Layout};
use crate::event::{Lease, RetentionPolicy, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_triple_map};
use crate::ids::{AccountId, DeviceId, JobId};
use crate::state::{
    Account, Device, Item, Job, License, RequestLog, Schedule, StorageNode, Tier, Vault,
};

/// A format-4 state: format 5's first sixteen fields in the same order.
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
    pub(super) schedules: BTreeMap<(DeviceId, String), Schedule>,
    #[serde(with = "proto_id_triple_map")]
    pub(super) item_retention: BTreeMap<(VaultId, DeviceId, String), RetentionPolicy>,
    pub(super) license: Option<License>,
}

impl Layout for State {
    const SINCE: u8 = 4;
    type Older = v3::State;
}

impl From<State> for v5::State {
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
            license: s.license,
            topology: super::Topology::default(),
        }
    }
}
