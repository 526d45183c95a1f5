//! The replicated state: what the log says is true after applying it.
//!
//! [`State`] is plain data (ordered maps, serde) so that it can be compared,
//! snapshotted byte for byte, and rebuilt identically on every replica. Only
//! [`apply`](crate::apply()) mutates it; everything else reads it through the
//! accessors here, which keep the invariants that `apply` maintains (for
//! example the account-name index) out of callers' reach.
//!
//! The state also carries the request dedup table ([`RequestLog`]) because
//! "has this request already been applied" is itself replicated state: a
//! client that retries through a new leader after a failover must get the
//! first outcome back, on every replica.
//!
//! Besides the records named by the events, the state holds each device's
//! protected [`Item`]s (private to the account: the node shows them to the
//! account's devices only) and the cluster's server secret, from which the
//! node derives stable fake KDF parameters for unknown login names.
//!
//! The layout of these types is persisted (state format 2, see
//! [`codec`](crate::codec)); the format-1 layouts, from before devices,
//! tiers and job ends gained fields, are kept in the private `v1` module so
//! older data is still read.

pub(crate) mod v1;

use std::collections::BTreeMap;

use cairn_proto::{SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

use crate::apply::Outcome;
use crate::event::{Credentials, JobKind, JobStatus, Lease, SnapshotRecord, StorageNodeId};
use crate::ids::{proto_id, proto_id_map, proto_id_opt};
use crate::ids::{AccountId, DeviceId, JobId, RequestId, UnixMillis};

/// How many request outcomes the dedup table remembers by default. A client
/// retries within seconds; ten thousand proposals is far longer than any
/// retry window while bounding the state.
pub const DEFAULT_DEDUP_CAPACITY: u32 = 10_000;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its login name.
    pub name: String,
    /// Login credentials.
    pub credentials: Credentials,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When the password last changed.
    pub password_changed_at: Option<UnixMillis>,
}

/// A device of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// The owning account.
    pub account: AccountId,
    /// Its name.
    pub name: String,
    /// Hash of its bearer token.
    pub token_hash: Vec<u8>,
    /// When it registered.
    pub registered_at: UnixMillis,
    /// When its token was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
    /// When it last logged in (its registration counts as a login).
    pub last_login_at: UnixMillis,
}

impl Device {
    /// Whether the device may still act.
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A vault record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vault {
    /// Its id.
    #[serde(with = "proto_id")]
    pub id: VaultId,
    /// The owning account.
    pub account: AccountId,
    /// Its name within the account.
    pub name: String,
    /// The tier it came from.
    pub tier: String,
    /// Its keys sealed with the account's wrap key.
    pub wrapped_keys: Vec<u8>,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// A vault tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Its name.
    pub name: String,
    /// Chunk replica count.
    pub replicas: u8,
    /// Whether devices may request vaults of it.
    pub requestable: bool,
    /// When it was last defined.
    pub defined_at: UnixMillis,
    /// Most bytes one vault of this tier may hold; `None` is unlimited.
    pub quota_bytes: Option<u64>,
    /// Free text for users choosing a tier.
    pub description: String,
}

/// One entry of the job log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The account of the device that ran it.
    pub account: AccountId,
    /// The device that ran it.
    pub device: DeviceId,
    /// The vault it worked on.
    #[serde(with = "proto_id_opt")]
    pub vault: Option<VaultId>,
    /// What kind of job.
    pub kind: JobKind,
    /// When it started.
    pub started_at: UnixMillis,
    /// How it ended, once it has.
    pub finished: Option<JobEnd>,
}

/// The end of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnd {
    /// How it ended.
    pub status: JobStatus,
    /// Output and messages.
    pub log: String,
    /// When it ended.
    pub at: UnixMillis,
    /// Files processed.
    pub files: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// What went wrong, if the device said.
    pub error: Option<String>,
}

/// A protected item: a named set of paths one device backs up into one
/// vault. Private to the account: only its devices see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The device that protects it.
    pub device: DeviceId,
    /// The device's account.
    pub account: AccountId,
    /// Its name, unique per device.
    pub name: String,
    /// Absolute paths to back up.
    pub paths: Vec<String>,
    /// Exclude patterns.
    pub excludes: Vec<String>,
    /// The vault it is backed up into.
    #[serde(with = "proto_id")]
    pub vault: VaultId,
    /// When it was last set.
    pub updated_at: UnixMillis,
}

/// Lifecycle of a storage node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageNodeStatus {
    /// Receives and serves chunks.
    Active,
    /// Serves chunks, receives none; its chunks move elsewhere.
    Draining,
    /// Gone; kept so its id is never silently reused.
    Removed,
}

/// A storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNode {
    /// Its id (= its Raft node id).
    pub id: StorageNodeId,
    /// Its HTTP address.
    pub addr: String,
    /// Where it is in its lifecycle.
    pub status: StorageNodeStatus,
    /// When it (last) joined.
    pub joined_at: UnixMillis,
    /// When its status last changed.
    pub changed_at: UnixMillis,
}

/// The bounded table of recent request outcomes.
///
/// Eviction is first-in first-out by apply order with a capacity that is
/// itself part of the state, so every replica evicts the same ids at the
/// same log index regardless of its build's defaults. Each entry carries
/// its sequence number so the table can be stored one entry per key and
/// rebuilt in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLog {
    capacity: u32,
    next_seq: u64,
    /// seq → request id, oldest first.
    order: BTreeMap<u64, RequestId>,
    /// request id → (seq, first outcome).
    outcomes: BTreeMap<RequestId, (u64, Outcome)>,
}

impl RequestLog {
    /// An empty table remembering at most `capacity` outcomes (at least 1).
    pub fn with_capacity(capacity: u32) -> Self {
        Self {
            capacity: capacity.max(1),
            next_seq: 0,
            order: BTreeMap::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// The outcome recorded for `id`, if it is still remembered.
    pub fn get(&self, id: &RequestId) -> Option<&Outcome> {
        self.outcomes.get(id).map(|(_, o)| o)
    }

    /// Number of remembered outcomes.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// The capacity.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The request ids that recording one more new id would evict.
    pub(crate) fn would_evict(&self) -> impl Iterator<Item = RequestId> + '_ {
        let excess = (self.order.len() + 1).saturating_sub(self.capacity as usize);
        self.order.values().take(excess).copied()
    }

    /// Records the first outcome of `id`, evicting the oldest when full.
    pub(crate) fn record(&mut self, id: RequestId, outcome: Outcome) {
        if self.outcomes.contains_key(&id) {
            return;
        }
        while self.order.len() >= self.capacity as usize {
            match self.order.pop_first() {
                Some((_, old)) => {
                    self.outcomes.remove(&old);
                }
                None => break,
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, id);
        self.outcomes.insert(id, (seq, outcome));
    }

    /// The entry of `id` with its sequence number, for storage.
    pub(crate) fn entry(&self, id: &RequestId) -> Option<&(u64, Outcome)> {
        self.outcomes.get(id)
    }

    /// Every entry, for storage.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&RequestId, &(u64, Outcome))> {
        self.outcomes.iter()
    }

    /// The header (capacity, next sequence number), for storage.
    pub(crate) fn header(&self) -> (u32, u64) {
        (self.capacity, self.next_seq)
    }

    /// Rebuilds a table from its stored header and entries.
    pub(crate) fn from_parts(
        capacity: u32,
        next_seq: u64,
        entries: impl IntoIterator<Item = (RequestId, u64, Outcome)>,
    ) -> Self {
        let mut log = Self::with_capacity(capacity);
        log.next_seq = next_seq;
        for (id, seq, outcome) in entries {
            log.order.insert(seq, id);
            log.outcomes.insert(id, (seq, outcome));
        }
        log
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_DEDUP_CAPACITY)
    }
}

/// Everything the replicated log establishes. See the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    /// Index: live account name → id. Maintained by `apply` only.
    pub(crate) account_names: BTreeMap<String, AccountId>,
    pub(crate) devices: BTreeMap<DeviceId, Device>,
    #[serde(with = "proto_id_map")]
    pub(crate) vaults: BTreeMap<VaultId, Vault>,
    pub(crate) tiers: BTreeMap<String, Tier>,
    #[serde(with = "proto_id_map")]
    pub(crate) snapshots: BTreeMap<SnapshotId, SnapshotRecord>,
    pub(crate) jobs: BTreeMap<JobId, Job>,
    pub(crate) storage_nodes: BTreeMap<StorageNodeId, StorageNode>,
    pub(crate) lease: Option<Lease>,
    /// The highest fencing token ever granted; grants must exceed it.
    pub(crate) last_fencing_token: u64,
    pub(crate) requests: RequestLog,
    /// Protected items by (device, name).
    pub(crate) items: BTreeMap<(DeviceId, String), Item>,
    /// The cluster-wide server secret, once set.
    pub(crate) server_secret: Option<Vec<u8>>,
}

impl State {
    /// An empty state whose dedup table remembers `capacity` requests.
    pub fn with_dedup_capacity(capacity: u32) -> Self {
        Self {
            requests: RequestLog::with_capacity(capacity),
            ..Self::default()
        }
    }

    /// All accounts by id.
    pub fn accounts(&self) -> &BTreeMap<AccountId, Account> {
        &self.accounts
    }

    /// The account with login name `name`.
    pub fn account_by_name(&self, name: &str) -> Option<&Account> {
        self.account_names
            .get(name)
            .and_then(|id| self.accounts.get(id))
    }

    /// All devices (live and revoked) by id.
    pub fn devices(&self) -> &BTreeMap<DeviceId, Device> {
        &self.devices
    }

    /// The devices of one account.
    pub fn devices_of(&self, account: AccountId) -> impl Iterator<Item = &Device> {
        self.devices.values().filter(move |d| d.account == account)
    }

    /// All vaults by id.
    pub fn vaults(&self) -> &BTreeMap<VaultId, Vault> {
        &self.vaults
    }

    /// The vaults of one account.
    pub fn vaults_of(&self, account: AccountId) -> impl Iterator<Item = &Vault> {
        self.vaults.values().filter(move |v| v.account == account)
    }

    /// All tiers by name.
    pub fn tiers(&self) -> &BTreeMap<String, Tier> {
        &self.tiers
    }

    /// All snapshot records by id.
    pub fn snapshots(&self) -> &BTreeMap<SnapshotId, SnapshotRecord> {
        &self.snapshots
    }

    /// The snapshot records of one vault.
    pub fn snapshots_of(&self, vault: VaultId) -> impl Iterator<Item = &SnapshotRecord> {
        self.snapshots.values().filter(move |s| s.vault == vault)
    }

    /// The job log by id.
    pub fn jobs(&self) -> &BTreeMap<JobId, Job> {
        &self.jobs
    }

    /// Storage nodes by id (including removed ones).
    pub fn storage_nodes(&self) -> &BTreeMap<StorageNodeId, StorageNode> {
        &self.storage_nodes
    }

    /// The current lease, if one is held (granted and not expired).
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The highest fencing token ever granted.
    pub fn last_fencing_token(&self) -> u64 {
        self.last_fencing_token
    }

    /// All protected items by (device, name).
    pub fn items(&self) -> &BTreeMap<(DeviceId, String), Item> {
        &self.items
    }

    /// The protected items of one device, by name.
    pub fn items_of(&self, device: DeviceId) -> impl Iterator<Item = &Item> {
        self.items
            .range((device, String::new())..)
            .take_while(move |((d, _), _)| *d == device)
            .map(|(_, item)| item)
    }

    /// The cluster-wide server secret, once it has been set.
    pub fn server_secret(&self) -> Option<&[u8]> {
        self.server_secret.as_deref()
    }

    /// The request dedup table.
    pub fn requests(&self) -> &RequestLog {
        &self.requests
    }

    /// Whether `self` and `other` agree on everything except the dedup table.
    pub fn same_domain(&self, other: &State) -> bool {
        let mut a = self.clone();
        a.requests = other.requests.clone();
        a == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(n: u8) -> RequestId {
        RequestId([n; 16])
    }

    #[test]
    fn request_log_evicts_oldest_first() {
        let mut log = RequestLog::with_capacity(2);
        log.record(rid(1), Outcome::Applied);
        log.record(rid(2), Outcome::Applied);
        log.record(rid(3), Outcome::Applied);
        assert!(log.get(&rid(1)).is_none());
        assert!(log.get(&rid(2)).is_some());
        assert!(log.get(&rid(3)).is_some());
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn request_log_keeps_first_outcome() {
        let mut log = RequestLog::with_capacity(4);
        log.record(rid(1), Outcome::Applied);
        log.record(rid(1), Outcome::NoOp);
        assert_eq!(log.get(&rid(1)), Some(&Outcome::Applied));
        assert_eq!(log.len(), 1);
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut log = RequestLog::with_capacity(0);
        log.record(rid(1), Outcome::Applied);
        assert_eq!(log.capacity(), 1);
        assert_eq!(log.len(), 1);
    }
}
