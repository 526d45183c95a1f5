//! The format-6 layout of the whole state (snapshot data), kept only to
//! read what an older build wrote. Format 7 appended disabled accounts and
//! the last TOTP step each operator used; a format-6 state had neither,
//! which is how it converts: every account enabled, no TOTP code used yet.
//! Every record kept its layout: only the snapshot data of the whole state
//! changed (and the new `X` and `Z` records). The struct here must never
//! change: it describes bytes already on disk.

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::Deserialize;

use super::{v5, Layout};
use crate::console::{AuditEntry, Operator, Org};
use crate::event::{Lease, RetentionPolicy, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id_map, proto_id_triple_map};
use crate::ids::{AccountId, DeviceId, JobId};
use crate::state::{
    Account, Device, Item, Job, License, RequestLog, Schedule, StorageNode, Tier, Topology, Vault,
};

/// A format-6 state: format 7's first twenty-one fields in the same order.
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
    pub(super) operators: BTreeMap<String, Operator>,
    pub(super) orgs: BTreeMap<String, Org>,
    pub(super) account_orgs: BTreeMap<AccountId, String>,
    pub(super) audit: BTreeMap<u64, AuditEntry>,
}

impl Layout for State {
    const SINCE: u8 = 6;
    type Older = v5::State;
}

impl From<State> for super::State {
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
            operators: s.operators.into_iter().collect(),
            orgs: s.orgs.into_iter().collect(),
            account_orgs: s.account_orgs.into_iter().collect(),
            audit: s.audit.into_iter().collect(),
            ..Self::default()
        }
    }
}
