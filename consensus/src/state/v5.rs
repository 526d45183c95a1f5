//! The format-5 layout of the whole state (snapshot data), kept only to
//! read what an older build wrote. Format 6 appended the console's records
//! (operators, organizations, accounts' organizations, the audit trail); a
//! format-5 state had none, which is how it converts: every account in the
//! default organization. Every record kept its layout: only the snapshot
//! data of the whole state changed. The struct here must never change: it
//! describes bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v4, v6, Layout};
use crate::event::{Lease, RetentionPolicy, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_triple_map};
use crate::ids::{AccountId, DeviceId, JobId};
use crate::state::{
    Account, Device, Item, Job, License, RequestLog, Schedule, StorageNode, Tier, Topology, Vault,
};

/// A format-5 state: format 6's first seventeen fields in the same order.
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
    pub(super) topology: Topology,
}

impl Layout for State {
    const SINCE: u8 = 5;
    type Older = v4::State;
}

impl From<State> for v6::State {
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
            topology: s.topology,
            operators: BTreeMap::new(),
            orgs: BTreeMap::new(),
            account_orgs: BTreeMap::new(),
            audit: BTreeMap::new(),
        }
    }
}
