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
//! For unattended protection the state also holds each device's
//! [`Schedule`]s, the before/after commands of items and vaults, retention
//! policies (a vault's default in [`Vault::retention`], per item×vault
//! overrides in the state) and, per job, the item and schedule it ran for,
//! when it last reported and whether it was revived after being abandoned.
//! The accessors below answer what the node needs from them: a device's
//! schedules, the effective retention policy of an item on a vault, the
//! running jobs and the commands around a job.
//!
//! For the license lease the state holds, besides the [`Lease`] itself, the
//! cluster's [`License`]: serial, authority, cadence and the last renewal,
//! from which every node derives whether the cluster is licensed, in grace
//! or read-only.
//!
//! For server roles the state holds the [`Topology`]: each node's roles and
//! storage labels, and the labels each pooled tier needs.
//!
//! For the console the state holds operators (with their sessions),
//! organizations, each account's organization (absent: the default one)
//! and the bounded audit trail of admin actions ([`crate::console`]).
//!
//! For daily administration it holds the disabled accounts ([`Disabled`]:
//! an account kept with its data whose logins and tokens are refused) and,
//! per operator, the last TOTP step a login used, so that a code is
//! accepted once cluster-wide.
//!
//! The layout of these types is persisted (state format 7, see
//! [`codec`](crate::codec)); the format-1 layouts, from before devices,
//! tiers and job ends gained fields, the format-2 layouts, from before
//! items, vaults and jobs gained the fields of unattended protection, the
//! format-3 state, from before the license, the format-4 state, from
//! before the topology, the format-5 state, from before the console, and
//! the format-6 state, from before disabled accounts and TOTP replay
//! protection, are kept in the private `v1` to `v6` modules so older data
//! is still read.

mod map;
pub(crate) mod v1;
pub(crate) mod v2;
pub(crate) mod v3;
pub(crate) mod v4;
pub(crate) mod v5;
pub(crate) mod v6;

use std::collections::{BTreeMap, BTreeSet};

use cairn_proto::{SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

pub use self::map::Map;
use crate::apply::Outcome;
use crate::console::{AuditEntry, Operator, Org, DEFAULT_ORG};
use crate::event::{
    Credentials, JobKind, JobStatus, Lease, RetentionPolicy, Role, SnapshotRecord, StorageNodeId,
};
use crate::ids::{proto_id, proto_id_map, proto_id_opt, proto_id_triple_map};
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

/// Why and since when an account is disabled: its data and vaults stay,
/// but no login, device token or dispatched job of it is accepted until
/// it is enabled again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    /// What the operator gave as the reason (may be empty).
    pub reason: String,
    /// When it was disabled.
    pub at: UnixMillis,
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
    /// Commands run before each job on the vault (every device of the
    /// account shares them).
    pub before: Vec<String>,
    /// Commands run after each job on the vault.
    pub after: Vec<String>,
    /// The vault's default retention policy; `None` keeps everything.
    pub retention: Option<RetentionPolicy>,
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
    /// The protected item it ran for, if any.
    pub item: Option<String>,
    /// The schedule that started it, if any.
    pub schedule: Option<String>,
    /// When it last reported: its start, or its latest heartbeat. The
    /// cluster role abandons running jobs silent for too long.
    pub last_seen: UnixMillis,
    /// Whether it reported again after being ended
    /// [`JobStatus::Abandoned`]. A revived backup job never commits a
    /// snapshot: a prune may have swept while it counted as abandoned.
    pub revived: bool,
}

impl Job {
    /// Whether the job is running (not finished; revived jobs included).
    pub fn is_running(&self) -> bool {
        self.finished.is_none()
    }

    /// Whether the job was ever counted as abandoned (by the 24 h rule of a
    /// job start, by [`Event::JobsAbandoned`](crate::Event::JobsAbandoned),
    /// or revived after either).
    pub fn was_abandoned(&self) -> bool {
        self.revived
            || self.finished.as_ref().is_some_and(|e| {
                e.status == JobStatus::Abandoned
                    || e.error.as_deref() == Some(crate::apply::ABANDONED)
            })
    }
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
    /// Commands run before each job of the item.
    pub before: Vec<String>,
    /// Commands run after each job of the item.
    pub after: Vec<String>,
}

/// A schedule: when one device's daemon backs up one of its items on its
/// own. Private to the account, like items. Removed with its item, with
/// its vault (when it names one) and when its device is revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The device that runs it.
    pub device: DeviceId,
    /// The device's account.
    pub account: AccountId,
    /// Its name, unique per device.
    pub name: String,
    /// The item it backs up (an item of `device`).
    pub item: String,
    /// The vault it backs up into; `None`: the item's vault.
    #[serde(with = "proto_id_opt")]
    pub vault: Option<VaultId>,
    /// The frequency text; its grammar is `cairn_proto::schedule`'s.
    pub spec: String,
    /// Random delay before each run, in seconds.
    pub random_delay_s: u32,
    /// How long a run may take, in seconds.
    pub timeout_s: Option<u32>,
    /// Commands run before each run.
    pub before: Vec<String>,
    /// Commands run after each run.
    pub after: Vec<String>,
    /// The origin of periodic schedules.
    pub anchor: UnixMillis,
    /// When it was last set.
    pub updated_at: UnixMillis,
}

/// The records that go with a removed record (an item, a vault, a device's
/// schedules, an account), computed before the removal: `apply` removes
/// them and the store rewrites exactly their keys.
#[derive(Debug, Default)]
pub(crate) struct Dependents {
    /// Items by (device, name).
    pub(crate) items: Vec<(DeviceId, String)>,
    /// Schedules by (device, name).
    pub(crate) schedules: Vec<(DeviceId, String)>,
    /// Retention overrides by (vault, device, item).
    pub(crate) overrides: Vec<(VaultId, DeviceId, String)>,
}

/// Where an [`EffectiveRetention`] policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionSource {
    /// The override for that item on that vault.
    ItemOverride,
    /// The vault's default.
    VaultDefault,
    /// Neither is set: keep everything.
    KeepEverything,
}

/// The retention policy that applies to one device's item on one vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveRetention<'a> {
    /// The policy (an empty one keeps everything).
    pub policy: &'a RetentionPolicy,
    /// Where it comes from.
    pub source: RetentionSource,
}

/// The policy that keeps everything, for items with neither an override
/// nor a vault default.
static KEEP_EVERYTHING: RetentionPolicy = RetentionPolicy {
    ranges: Vec::new(),
    prune_every_s: None,
};

/// One level of before/after commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandSet<'a> {
    /// Run before the job.
    pub before: &'a [String],
    /// Run after the job.
    pub after: &'a [String],
}

impl<'a> CommandSet<'a> {
    fn of(before: &'a [String], after: &'a [String]) -> Self {
        Self { before, after }
    }
}

/// The commands around one job of an item: the schedule's (outermost),
/// the item's and the vault's (innermost) levels. The client runs them
/// (`cairn_client::hooks`, which also decides what runs when one fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Commands<'a> {
    /// The vault's (shared by the account's devices).
    pub vault: CommandSet<'a>,
    /// The item's.
    pub item: CommandSet<'a>,
    /// The schedule's, for a scheduled job.
    pub schedule: CommandSet<'a>,
}

impl<'a> Commands<'a> {
    /// The before commands, outermost level first: schedule, item, vault.
    pub fn before(&self) -> impl Iterator<Item = &'a String> {
        let (v, i, s) = (self.vault.before, self.item.before, self.schedule.before);
        s.iter().chain(i).chain(v)
    }

    /// The after commands, innermost level first: vault, item, schedule
    /// (they undo what the before commands set up, in reverse nesting).
    pub fn after(&self) -> impl Iterator<Item = &'a String> {
        let (v, i, s) = (self.vault.after, self.item.after, self.schedule.after);
        v.iter().chain(i).chain(s)
    }
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
    order: Map<u64, RequestId>,
    /// request id → (seq, first outcome).
    outcomes: Map<RequestId, (u64, Outcome)>,
}

impl RequestLog {
    /// An empty table remembering at most `capacity` outcomes (at least 1).
    pub fn with_capacity(capacity: u32) -> Self {
        Self {
            capacity: capacity.max(1),
            next_seq: 0,
            order: Map::new(),
            outcomes: Map::new(),
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
            match self.order.get_min().map(|(seq, old)| (*seq, *old)) {
                Some((seq, old)) => {
                    self.order.remove(&seq);
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
    pub(crate) accounts: Map<AccountId, Account>,
    /// Index: live account name → id. Maintained by `apply` only.
    pub(crate) account_names: Map<String, AccountId>,
    pub(crate) devices: Map<DeviceId, Device>,
    #[serde(with = "proto_id_map")]
    pub(crate) vaults: Map<VaultId, Vault>,
    pub(crate) tiers: Map<String, Tier>,
    #[serde(with = "proto_id_map")]
    pub(crate) snapshots: Map<SnapshotId, SnapshotRecord>,
    pub(crate) jobs: Map<JobId, Job>,
    pub(crate) storage_nodes: Map<StorageNodeId, StorageNode>,
    pub(crate) lease: Option<Lease>,
    /// The highest fencing token ever granted; grants must exceed it.
    pub(crate) last_fencing_token: u64,
    pub(crate) requests: RequestLog,
    /// Protected items by (device, name).
    pub(crate) items: Map<(DeviceId, String), Item>,
    /// The cluster-wide server secret, once set.
    pub(crate) server_secret: Option<Vec<u8>>,
    /// Schedules by (device, name).
    pub(crate) schedules: Map<(DeviceId, String), Schedule>,
    /// Retention overrides by (vault, device, item name).
    #[serde(with = "proto_id_triple_map")]
    pub(crate) item_retention: Map<(VaultId, DeviceId, String), RetentionPolicy>,
    /// The cluster's license settings, once set.
    pub(crate) license: Option<License>,
    /// Node roles, storage labels and the labels of pooled tiers.
    pub(crate) topology: Topology,
    /// Operators by name (format 6).
    pub(crate) operators: Map<String, Operator>,
    /// Organizations by name; the default one is implicit until configured.
    pub(crate) orgs: Map<String, Org>,
    /// The organization of each account not in [`DEFAULT_ORG`].
    pub(crate) account_orgs: Map<AccountId, String>,
    /// The audit trail by sequence number, the newest
    /// [`MAX_AUDIT_ENTRIES`](crate::apply::MAX_AUDIT_ENTRIES).
    pub(crate) audit: Map<u64, AuditEntry>,
    /// Disabled accounts (format 7).
    pub(crate) disabled: Map<AccountId, Disabled>,
    /// The last TOTP step a login of each operator used (format 7): a
    /// code of that step or an earlier one is refused.
    pub(crate) totp_steps: Map<String, u64>,
}

/// Which node runs which roles, which labels its store carries, and which
/// labels each pooled tier needs (issue 13). A node without a profile
/// (one from before roles) runs every role with no labels.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    /// Profiles by node id.
    pub(crate) nodes: BTreeMap<StorageNodeId, NodeProfile>,
    /// Labels by tier name; tiers without labels are absent.
    pub(crate) tier_labels: BTreeMap<String, BTreeSet<String>>,
}

/// One node's roles and storage labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// The roles it runs.
    pub roles: BTreeSet<Role>,
    /// Its storage labels.
    pub labels: BTreeSet<String>,
    /// When the profile was last recorded.
    pub set_at: UnixMillis,
}

impl Topology {
    /// The recorded profiles by node id.
    pub fn nodes(&self) -> &BTreeMap<StorageNodeId, NodeProfile> {
        &self.nodes
    }

    /// Whether `node` runs `role` (a node without a profile runs all).
    pub fn has_role(&self, node: StorageNodeId, role: Role) -> bool {
        self.nodes
            .get(&node)
            .is_none_or(|p| p.roles.contains(&role))
    }

    /// The storage labels of `node` (none without a profile).
    pub fn labels_of(&self, node: StorageNodeId) -> Option<&BTreeSet<String>> {
        self.nodes.get(&node).map(|p| &p.labels)
    }

    /// The labels tier `tier` needs (none: any storage node).
    pub fn tier_labels(&self, tier: &str) -> Option<&BTreeSet<String>> {
        self.tier_labels.get(tier)
    }

    /// Whether `node` carries every label in `needed`.
    pub fn carries(&self, node: StorageNodeId, needed: &BTreeSet<String>) -> bool {
        needed.is_empty()
            || self
                .labels_of(node)
                .is_some_and(|have| needed.is_subset(have))
    }
}

/// The cluster's license settings (`cairnd admin license set`) and the last
/// time the authority granted or renewed its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// Serial number (a secret).
    pub serial: String,
    /// Base URL of the license authority.
    pub authority: String,
    /// The id the cluster presents to the authority.
    pub cluster_id: String,
    /// How often the leader renews.
    pub renew_ms: u64,
    /// How long the cluster keeps working after the last renewal.
    pub grace_ms: u64,
    /// When the settings were recorded.
    pub configured_at: UnixMillis,
    /// When the authority last granted or renewed the lease (the
    /// authority's clock, like the lease's times); `None` before the first
    /// grant of this serial.
    pub renewed_at: Option<UnixMillis>,
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
    pub fn accounts(&self) -> &Map<AccountId, Account> {
        &self.accounts
    }

    /// The account with login name `name`.
    pub fn account_by_name(&self, name: &str) -> Option<&Account> {
        self.account_names
            .get(name)
            .and_then(|id| self.accounts.get(id))
    }

    /// All devices (live and revoked) by id.
    pub fn devices(&self) -> &Map<DeviceId, Device> {
        &self.devices
    }

    /// The devices of one account.
    pub fn devices_of(&self, account: AccountId) -> impl Iterator<Item = &Device> {
        self.devices.values().filter(move |d| d.account == account)
    }

    /// All vaults by id.
    pub fn vaults(&self) -> &Map<VaultId, Vault> {
        &self.vaults
    }

    /// The vaults of one account.
    pub fn vaults_of(&self, account: AccountId) -> impl Iterator<Item = &Vault> {
        self.vaults.values().filter(move |v| v.account == account)
    }

    /// All tiers by name.
    pub fn tiers(&self) -> &Map<String, Tier> {
        &self.tiers
    }

    /// All snapshot records by id.
    pub fn snapshots(&self) -> &Map<SnapshotId, SnapshotRecord> {
        &self.snapshots
    }

    /// The snapshot records of one vault.
    pub fn snapshots_of(&self, vault: VaultId) -> impl Iterator<Item = &SnapshotRecord> {
        self.snapshots.values().filter(move |s| s.vault == vault)
    }

    /// The job log by id.
    pub fn jobs(&self) -> &Map<JobId, Job> {
        &self.jobs
    }

    /// Storage nodes by id (including removed ones).
    pub fn storage_nodes(&self) -> &Map<StorageNodeId, StorageNode> {
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
    pub fn items(&self) -> &Map<(DeviceId, String), Item> {
        &self.items
    }

    /// The protected items of one device, by name.
    pub fn items_of(&self, device: DeviceId) -> impl Iterator<Item = &Item> {
        self.items
            .range((device, String::new())..)
            .take_while(move |((d, _), _)| *d == device)
            .map(|(_, item)| item)
    }

    /// All schedules by (device, name).
    pub fn schedules(&self) -> &Map<(DeviceId, String), Schedule> {
        &self.schedules
    }

    /// The schedules of one device, by name.
    pub fn schedules_of(&self, device: DeviceId) -> impl Iterator<Item = &Schedule> {
        self.schedules
            .range((device, String::new())..)
            .take_while(move |((d, _), _)| *d == device)
            .map(|(_, schedule)| schedule)
    }

    /// All retention overrides by (vault, device, item name).
    pub fn item_retention(&self) -> &Map<(VaultId, DeviceId, String), RetentionPolicy> {
        &self.item_retention
    }

    /// The retention policy for `device`'s item `item` on `vault`: the
    /// override if one is set, else the vault's default, else keep
    /// everything.
    pub fn effective_retention(
        &self,
        vault: VaultId,
        device: DeviceId,
        item: &str,
    ) -> EffectiveRetention<'_> {
        if let Some(policy) = self.item_retention.get(&(vault, device, item.to_owned())) {
            return EffectiveRetention {
                policy,
                source: RetentionSource::ItemOverride,
            };
        }
        match self.vaults.get(&vault).and_then(|v| v.retention.as_ref()) {
            Some(policy) => EffectiveRetention {
                policy,
                source: RetentionSource::VaultDefault,
            },
            None => EffectiveRetention {
                policy: &KEEP_EVERYTHING,
                source: RetentionSource::KeepEverything,
            },
        }
    }

    /// The running jobs (revived ones included); each carries its
    /// `last_seen`, which the cluster role compares with its silence.
    pub fn running_jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values().filter(|j| j.is_running())
    }

    /// The commands around a job of `device`'s item `item` on `vault`
    /// (started by `schedule`, if any), or `None` if the device has no such
    /// item. A vault or schedule that does not exist contributes nothing.
    pub fn commands_for(
        &self,
        device: DeviceId,
        item: &str,
        vault: VaultId,
        schedule: Option<&str>,
    ) -> Option<Commands<'_>> {
        let i = self.items.get(&(device, item.to_owned()))?;
        let vault = self
            .vaults
            .get(&vault)
            .map(|v| CommandSet::of(&v.before, &v.after))
            .unwrap_or_default();
        let schedule = schedule
            .and_then(|name| self.schedules.get(&(device, name.to_owned())))
            .map(|s| CommandSet::of(&s.before, &s.after))
            .unwrap_or_default();
        Some(Commands {
            vault,
            item: CommandSet::of(&i.before, &i.after),
            schedule,
        })
    }

    /// What removing `device`'s item `item` removes with it: the schedules
    /// that name it and its retention overrides on every vault.
    pub(crate) fn item_dependents(&self, device: DeviceId, item: &str) -> Dependents {
        let mut deps = Dependents::default();
        self.add_item_dependents(&mut deps, device, item);
        deps
    }

    fn add_item_dependents(&self, deps: &mut Dependents, device: DeviceId, item: &str) {
        deps.schedules.extend(
            self.schedules_of(device)
                .filter(|s| s.item == item)
                .map(|s| (device, s.name.clone())),
        );
        deps.overrides.extend(
            self.item_retention
                .keys()
                .filter(|(_, d, i)| *d == device && i == item)
                .cloned(),
        );
    }

    /// What deleting `vault` removes with it: the items backed up into it
    /// (with their schedules and overrides), the schedules that name it and
    /// the overrides on it.
    pub(crate) fn vault_dependents(&self, vault: VaultId) -> Dependents {
        let mut deps = Dependents::default();
        for item in self.items.values().filter(|i| i.vault == vault) {
            deps.items.push((item.device, item.name.clone()));
            self.add_item_dependents(&mut deps, item.device, &item.name);
        }
        deps.schedules.extend(
            self.schedules
                .values()
                .filter(|s| s.vault == Some(vault))
                .map(|s| (s.device, s.name.clone())),
        );
        deps.overrides.extend(
            self.item_retention
                .keys()
                .filter(|(v, _, _)| *v == vault)
                .cloned(),
        );
        deps
    }

    /// What revoking `device` removes: its schedules (its items stay, like
    /// its snapshots, and so do their retention overrides, which still
    /// govern what is kept of them).
    pub(crate) fn device_dependents(&self, device: DeviceId) -> Dependents {
        Dependents {
            schedules: self
                .schedules_of(device)
                .map(|s| (device, s.name.clone()))
                .collect(),
            ..Dependents::default()
        }
    }

    /// What deleting `account` removes with its devices: their items,
    /// schedules and retention overrides.
    pub(crate) fn account_dependents(&self, account: AccountId) -> Dependents {
        let mut deps = Dependents::default();
        for item in self.items.values().filter(|i| i.account == account) {
            deps.items.push((item.device, item.name.clone()));
            self.add_item_dependents(&mut deps, item.device, &item.name);
        }
        deps.schedules.extend(
            self.schedules
                .values()
                .filter(|s| s.account == account)
                .map(|s| (s.device, s.name.clone())),
        );
        deps
    }

    /// Removes the records listed in `deps`.
    pub(crate) fn remove_dependents(&mut self, deps: &Dependents) {
        for key in &deps.items {
            self.items.remove(key);
        }
        for key in &deps.schedules {
            self.schedules.remove(key);
        }
        for key in &deps.overrides {
            self.item_retention.remove(key);
        }
    }

    /// The cluster's license settings, once set.
    pub fn license(&self) -> Option<&License> {
        self.license.as_ref()
    }

    /// Node roles, storage labels and tier labels.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The storage pool of `labels`: the active storage nodes that carry
    /// every one of them (every active storage node when `labels` is
    /// empty). A labelled tier is satisfiable while this holds at least its
    /// replica count.
    pub fn pool(&self, labels: &BTreeSet<String>) -> Vec<StorageNodeId> {
        self.storage_nodes
            .values()
            .filter(|n| n.status == StorageNodeStatus::Active)
            .filter(|n| self.topology.carries(n.id, labels))
            .map(|n| n.id)
            .collect()
    }

    /// Operators by name.
    pub fn operators(&self) -> &Map<String, Operator> {
        &self.operators
    }

    /// Configured organizations by name (the default one appears once
    /// configured; it exists either way).
    pub fn orgs(&self) -> &Map<String, Org> {
        &self.orgs
    }

    /// Whether organization `name` exists (the default one always does).
    pub fn org_exists(&self, name: &str) -> bool {
        name == DEFAULT_ORG || self.orgs.contains_key(name)
    }

    /// The organization of `account`.
    pub fn org_of(&self, account: AccountId) -> &str {
        self.account_orgs
            .get(&account)
            .map_or(DEFAULT_ORG, String::as_str)
    }

    /// Whether `account`'s organization offers tier `tier` (an
    /// organization without a tier list offers every tier).
    pub fn offers_tier(&self, account: AccountId, tier: &str) -> bool {
        self.orgs
            .get(self.org_of(account))
            .is_none_or(|o| o.tiers.is_empty() || o.tiers.iter().any(|t| t == tier))
    }

    /// The audit trail, oldest first.
    pub fn audit(&self) -> &Map<u64, AuditEntry> {
        &self.audit
    }

    /// The sequence number the next audit entry gets.
    pub fn next_audit_seq(&self) -> u64 {
        self.audit.keys().next_back().map_or(0, |s| s + 1)
    }

    /// Why `account` is disabled, if it is.
    pub fn disabled(&self, account: AccountId) -> Option<&Disabled> {
        self.disabled.get(&account)
    }

    /// The last TOTP step a login of `operator` used, if any.
    pub fn totp_step(&self, operator: &str) -> Option<u64> {
        self.totp_steps.get(operator).copied()
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

/// A persisted layout and the layout it replaced: a chain that ends at a
/// layout which replaced nothing (its `Older` is itself, `SINCE` is 1).
/// `codec::decode_migrating` follows the chain from the layout in force at
/// a value's format byte up to today's.
pub(crate) trait Layout: serde::de::DeserializeOwned {
    /// The first format written with this layout.
    const SINCE: u8;
    /// The layout of the formats before [`Self::SINCE`].
    type Older: Layout + Into<Self>;
}

/// The layout chains of the records whose layout changed: format-1 devices
/// and tiers, format-1 and -2 jobs and states, format-2 (and -1) vaults and
/// items are read through the legacy modules.
mod layouts {
    use super::*;

    impl Layout for Device {
        const SINCE: u8 = 2;
        type Older = v1::Device;
    }
    impl Layout for Tier {
        const SINCE: u8 = 2;
        type Older = v1::Tier;
    }
    impl Layout for Vault {
        const SINCE: u8 = 3;
        type Older = v2::Vault;
    }
    impl Layout for Item {
        const SINCE: u8 = 3;
        type Older = v2::Item;
    }
    impl Layout for Job {
        const SINCE: u8 = 3;
        type Older = v2::Job;
    }
    impl Layout for State {
        const SINCE: u8 = 7;
        type Older = v6::State;
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
