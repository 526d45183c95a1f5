//! The domain events that make up Cairn's replicated log.
//!
//! The Raft log is the source of truth for the auth and cluster roles: every
//! change to accounts, devices, vaults, tiers, snapshot records, the job log,
//! storage-node membership and the licensing lease is one [`Event`], wrapped
//! in a [`Request`] that carries the proposer's [`RequestId`]. Events are
//! facts chosen by the proposer, including every time and random id, so that
//! [`apply`](crate::apply()) can stay pure and every replica computes the
//! same [`State`](crate::State) from the same log.
//!
//! Events are persisted (bincode, behind a format byte, see
//! [`codec`](crate::codec)): add new variants at the end and never reorder or
//! change existing ones; a change of meaning gets a new variant. New
//! variants keep the log entry format at 1, because every entry an older
//! build wrote still decodes to the same value.
//!
//! The accounts/auth events (from [`Event::DeviceLoggedIn`] on) were added
//! that way: a login that rotates a device's token and leaves an audit job,
//! tiers with quotas and descriptions ([`Event::TierConfigured`], which
//! [`Event::TierDefined`] now abbreviates), per-device protected items,
//! job completion with counters ([`Event::JobCompleted`], which
//! [`Event::JobFinished`] abbreviates) and the server secret. One existing
//! variant changed meaning in the same step, before any release:
//! [`Event::AccountPasswordChanged`] now also empties every device token of
//! the account, so each device has to log in again.
//!
//! Resource bounds were added the same way, still before any release:
//! vault creation, password changes, snapshot commits and job starts are
//! refused beyond the per-account limits of [`apply`](crate::apply()) (far
//! above what an honest client reaches), a job start ends the account's
//! jobs left unfinished for 24 h (abandoned), and every event that finishes
//! a job drops the account's oldest finished jobs beyond a retention count.
//! Snapshot commits carry their backup job ([`Event::SnapshotCommittedByJob`]).
//!
//! Unattended protection (issue 12) was added the same way, after the first
//! deployments, so every older log must replay to the state it produced:
//! items gained before/after commands ([`Event::ItemConfigured`], which
//! [`Event::ItemSet`] now abbreviates with no commands), vaults got shared
//! commands ([`Event::VaultCommandsSet`]) and retention policies (a vault
//! default and per item×vault overrides, [`Event::RetentionSet`] and
//! [`Event::RetentionCleared`]), devices got schedules
//! ([`Event::ScheduleSet`], [`Event::ScheduleRemoved`]), jobs remember
//! their item and schedule ([`Event::JobBegun`], which [`Event::JobStarted`]
//! abbreviates), report heartbeats ([`Event::JobHeartbeat`]), are ended
//! [`JobStatus::Abandoned`] by the cluster role after a silence
//! ([`Event::JobsAbandoned`]) and revived if they report again, and jobs
//! that never ran are recorded in one event ([`Event::JobRecorded`]).
//! [`JobStatus`] and [`JobKind`] gained variants at their end. One rule
//! differs by event so that old logs replay unchanged: the 24 h rule of a
//! job start ends the account's stale jobs as `Failed` (with the
//! [`ABANDONED`](crate::apply::ABANDONED) error text) under
//! [`Event::JobStarted`], as it always did, and as `Abandoned` (same text)
//! under [`Event::JobBegun`]. Only jobs ended `Abandoned` are revived by a
//! heartbeat or a finish, and no old event produces that status, so an old
//! finish of an old abandoned job is still refused.
//!
//! Server roles (issue 13) were added the same way: a node's [`Role`]s and
//! storage labels ([`Event::NodeProfileSet`]) and tiers that name the
//! labels their vaults' nodes need ([`Event::TierPooled`], which
//! [`Event::TierConfigured`] now abbreviates with no labels).
//! The console (issue 15) appended operators, their sessions,
//! organizations and the audit wrapper ([`Event::Audited`]) the same way;
//! accounts created before organizations existed belong to the default
//! one, so old logs replay to the same accounts.
//!
//! Daily administration (issues 11 and 15) appended accounts disabled and
//! enabled again ([`Event::AccountDisabled`], [`Event::AccountEnabled`]),
//! TOTP enrolment and removal of existing operators
//! ([`Event::OperatorTotpSet`]) and sessions opened with the TOTP step
//! they used ([`Event::OperatorSessionStarted`], which
//! [`Event::OperatorSessionOpened`] now abbreviates with no step), so a
//! code is accepted once. No older event changed meaning: a log from
//! before has no disabled account and no recorded step.

use std::collections::BTreeMap;

use cairn_proto::{ChunkId, SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

use crate::ids::{proto_id, proto_id_map, proto_id_opt};
use crate::ids::{AccountId, DeviceId, JobId, RequestId, UnixMillis};

/// Identifies a storage node; it is the node's Raft node id.
pub type StorageNodeId = u64;

/// One proposal to the replicated log: the client's request id plus the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client and reused on retry so a request applies once.
    pub request_id: RequestId,
    /// What happened.
    pub event: Event,
}

/// A change to the replicated state. See the module doc for the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A new account.
    AccountCreated {
        /// The new account's id.
        account: AccountId,
        /// Login name, unique among live accounts.
        name: String,
        /// Login credentials (hash of the client-derived login key, salt).
        credentials: Credentials,
        /// When the account was created.
        at: UnixMillis,
    },
    /// The password changed: new credentials and every vault's keys
    /// re-wrapped with the new wrap key, atomically (no data is rewritten).
    AccountPasswordChanged {
        /// The account.
        account: AccountId,
        /// The new credentials.
        credentials: Credentials,
        /// The re-wrapped (sealed) keys of each of the account's vaults; must
        /// name exactly the account's vaults.
        #[serde(with = "proto_id_map")]
        rewrapped_keys: BTreeMap<VaultId, Vec<u8>>,
        /// When the password changed.
        at: UnixMillis,
    },
    /// An account was deleted; refused while it still owns vaults. Its
    /// devices go with it.
    AccountDeleted {
        /// The account.
        account: AccountId,
        /// When it was deleted.
        at: UnixMillis,
    },
    /// A device logged in for the first time.
    DeviceRegistered {
        /// The new device's id.
        device: DeviceId,
        /// The owning account.
        account: AccountId,
        /// Name, unique among the account's live devices.
        name: String,
        /// Hash of the device's bearer token (the token itself never
        /// reaches the log).
        token_hash: Vec<u8>,
        /// When the device registered.
        at: UnixMillis,
    },
    /// A device's token was revoked; the device record stays so its
    /// snapshots and jobs still name it.
    DeviceRevoked {
        /// The device.
        device: DeviceId,
        /// Its account (checked: a request may only touch its own devices).
        account: AccountId,
        /// When it was revoked.
        at: UnixMillis,
    },
    /// A device was renamed.
    DeviceRenamed {
        /// The device.
        device: DeviceId,
        /// Its account.
        account: AccountId,
        /// The new name.
        name: String,
        /// When it was renamed.
        at: UnixMillis,
    },
    /// A vault was created from a requestable tier.
    VaultCreated {
        /// The new vault's id.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// The owning account.
        account: AccountId,
        /// Name, unique among the account's vaults.
        name: String,
        /// The tier it was requested from.
        tier: String,
        /// The vault's keys sealed with the account's wrap key.
        wrapped_keys: Vec<u8>,
        /// When it was created.
        at: UnixMillis,
    },
    /// A vault was deleted, with its snapshot records.
    VaultDeleted {
        /// The vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// Its account.
        account: AccountId,
        /// When it was deleted.
        at: UnixMillis,
    },
    /// An operator defined (or redefined) a vault tier.
    TierDefined {
        /// Tier name, e.g. `standard`.
        name: String,
        /// Replica count of chunks in vaults of this tier.
        replicas: u8,
        /// Whether devices may request vaults of this tier.
        requestable: bool,
        /// When it was defined.
        at: UnixMillis,
    },
    /// A backup finished and its snapshot record was committed.
    SnapshotCommitted {
        /// The record.
        snapshot: SnapshotRecord,
    },
    /// A snapshot record was forgotten (by any device of the owning account).
    SnapshotForgotten {
        /// The snapshot.
        #[serde(with = "proto_id")]
        snapshot: SnapshotId,
        /// Its vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// The device asking.
        device: DeviceId,
        /// When it was forgotten.
        at: UnixMillis,
    },
    /// A job (backup, restore, …) started on a device. Superseded by
    /// [`Event::JobBegun`] (this means it without item and schedule, except
    /// that its 24 h rule still ends stale jobs `Failed`).
    JobStarted {
        /// The new job's id.
        job: JobId,
        /// The device running it.
        device: DeviceId,
        /// The vault it works on, if any.
        #[serde(with = "proto_id_opt")]
        vault: Option<VaultId>,
        /// What kind of job.
        kind: JobKind,
        /// When it started.
        at: UnixMillis,
    },
    /// A job finished.
    JobFinished {
        /// The job.
        job: JobId,
        /// The device that ran it (checked).
        device: DeviceId,
        /// How it ended.
        status: JobStatus,
        /// Command output and messages, as the device reported them.
        log: String,
        /// When it finished.
        at: UnixMillis,
    },
    /// A storage node joined the cluster.
    StorageNodeJoined {
        /// The node.
        node: StorageNodeId,
        /// Its HTTP address.
        addr: String,
        /// When it joined.
        at: UnixMillis,
    },
    /// A storage node is being drained: it receives no new chunks and its
    /// chunks are re-replicated elsewhere.
    StorageNodeDrained {
        /// The node.
        node: StorageNodeId,
        /// When draining started.
        at: UnixMillis,
    },
    /// A storage node left the cluster.
    StorageNodeRemoved {
        /// The node.
        node: StorageNodeId,
        /// When it was removed.
        at: UnixMillis,
    },
    /// The license authority granted a lease for the cluster's serial.
    LeaseGranted {
        /// The lease.
        lease: Lease,
    },
    /// The lease was renewed under the same fencing token.
    LeaseRenewed {
        /// Serial number.
        serial: String,
        /// The fencing token of the lease being renewed.
        fencing_token: u64,
        /// The new expiry.
        expires_at: UnixMillis,
        /// When it was renewed.
        at: UnixMillis,
    },
    /// The lease ran out (or was lost) without renewal.
    LeaseExpired {
        /// Serial number.
        serial: String,
        /// The fencing token of the lease that expired.
        fencing_token: u64,
        /// When it was recorded as expired.
        at: UnixMillis,
    },
    /// A device logged in with the account's password: a known device gets
    /// a fresh token (its name stays), an unknown one is registered. Either
    /// way the login is recorded as a finished [`JobKind::Login`] job, the
    /// account's audit trail of logins.
    DeviceLoggedIn {
        /// The device: an existing live device of `account`, or a new id.
        device: DeviceId,
        /// The account whose password was checked.
        account: AccountId,
        /// Name for a new device, unique among the account's live devices;
        /// ignored for an existing device.
        name: String,
        /// Hash of the new bearer token; replaces the device's old one.
        token_hash: Vec<u8>,
        /// Id of the audit job recording this login.
        job: JobId,
        /// Where the login came from (client address), for the audit log.
        from: String,
        /// When the login happened.
        at: UnixMillis,
    },
    /// An operator defined (or redefined) a vault tier, with a per-vault
    /// quota and a description. Supersedes [`Event::TierDefined`], which
    /// now means this event with no quota and an empty description.
    TierConfigured {
        /// Tier name, e.g. `standard`.
        name: String,
        /// Replica count of chunks in vaults of this tier.
        replicas: u8,
        /// Whether devices may request vaults of this tier.
        requestable: bool,
        /// Most bytes a vault of this tier may hold; `None` is unlimited,
        /// `Some(0)` is refused.
        quota_bytes: Option<u64>,
        /// Free text shown to users choosing a tier (bounded length).
        description: String,
        /// When it was configured.
        at: UnixMillis,
    },
    /// A protected item of one device (a named set of paths backed up into
    /// one vault) was created or replaced. Superseded by
    /// [`Event::ItemConfigured`]: this means it with no commands (so it
    /// clears the commands of an item it replaces).
    ItemSet {
        /// The device that protects the item.
        device: DeviceId,
        /// Its account (checked).
        account: AccountId,
        /// Item name, unique per device.
        name: String,
        /// Absolute paths to back up; at least one.
        paths: Vec<String>,
        /// Exclude patterns.
        excludes: Vec<String>,
        /// The vault it is backed up into; must belong to the account.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// When it was set.
        at: UnixMillis,
    },
    /// A protected item was removed (its snapshots stay).
    ItemRemoved {
        /// The device.
        device: DeviceId,
        /// Its account (checked).
        account: AccountId,
        /// Item name.
        name: String,
        /// When it was removed.
        at: UnixMillis,
    },
    /// A job finished, with its counters and error text. Supersedes
    /// [`Event::JobFinished`], which now means this event with zero
    /// counters and no error.
    JobCompleted {
        /// The job.
        job: JobId,
        /// The device that ran it (checked).
        device: DeviceId,
        /// How it ended.
        status: JobStatus,
        /// Files processed.
        files: u64,
        /// Bytes processed.
        bytes: u64,
        /// What went wrong, for a failed job (bounded length).
        error: Option<String>,
        /// Command output and messages (bounded length).
        log: String,
        /// When it finished.
        at: UnixMillis,
    },
    /// The cluster-wide server secret was set (once, at bootstrap). The node
    /// derives stable fake KDF parameters for unknown user names from it,
    /// so a login probe cannot tell which names exist.
    ServerSecretSet {
        /// The secret: 32 random bytes.
        secret: Vec<u8>,
        /// When it was set.
        at: UnixMillis,
    },
    /// A backup committed its snapshot record under its backup job.
    /// Supersedes [`Event::SnapshotCommitted`], which the node no longer
    /// proposes: the running job is what keeps a concurrent prune from
    /// deleting the chunks the backup reused, so a record is refused unless
    /// `job` is a running backup job of the snapshot's device on its vault,
    /// started less than [`BACKUP_JOB_ABANDONED_MS`](crate::apply::BACKUP_JOB_ABANDONED_MS)
    /// before `at` (docs/FORMATS.md, garbage collection of live vaults).
    SnapshotCommittedByJob {
        /// The record.
        snapshot: SnapshotRecord,
        /// The backup job that made it.
        job: JobId,
        /// When the node accepted the commit (its clock).
        at: UnixMillis,
    },
    /// A protected item was created or replaced, with its before/after
    /// commands. Supersedes [`Event::ItemSet`], which now means this event
    /// with no commands.
    ItemConfigured {
        /// The device that protects the item.
        device: DeviceId,
        /// Its account (checked).
        account: AccountId,
        /// Item name, unique per device.
        name: String,
        /// Absolute paths to back up; at least one.
        paths: Vec<String>,
        /// Exclude patterns.
        excludes: Vec<String>,
        /// The vault it is backed up into; must belong to the account.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// Commands the device runs before each job of the item.
        before: Vec<String>,
        /// Commands the device runs after each job of the item.
        after: Vec<String>,
        /// When it was set.
        at: UnixMillis,
    },
    /// The before/after commands of an account vault, shared by every
    /// device of the account that backs up into it; empty lists clear them.
    VaultCommandsSet {
        /// The vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// Its account (checked).
        account: AccountId,
        /// Commands run before each job on the vault.
        before: Vec<String>,
        /// Commands run after each job on the vault.
        after: Vec<String>,
        /// When they were set.
        at: UnixMillis,
    },
    /// A schedule of a device was created or replaced: when the device's
    /// daemon runs a backup of one of its items on its own.
    ScheduleSet {
        /// The device that runs it.
        device: DeviceId,
        /// Its account (checked).
        account: AccountId,
        /// Schedule name, unique per device.
        name: String,
        /// The item it backs up: an existing item of `device`.
        item: String,
        /// The vault it backs up into; `None` is the item's vault (at the
        /// time the schedule runs).
        #[serde(with = "proto_id_opt")]
        vault: Option<VaultId>,
        /// The frequency text (`daily 02:00`, `every 6h`…). Its grammar is
        /// `cairn_proto::schedule`'s (the node checks it before proposing);
        /// consensus only bounds its length.
        spec: String,
        /// Random delay before each run, in seconds (Comet's jitter).
        random_delay_s: u32,
        /// How long a run may take before it is stopped as timed out.
        timeout_s: Option<u32>,
        /// Commands run before each run of this schedule.
        before: Vec<String>,
        /// Commands run after each run of this schedule.
        after: Vec<String>,
        /// The origin of periodic schedules (`every 6h` counts from here);
        /// the proposer keeps the old anchor when replacing, or sets `at`.
        anchor: UnixMillis,
        /// When it was set.
        at: UnixMillis,
    },
    /// A schedule of a device was removed.
    ScheduleRemoved {
        /// The device.
        device: DeviceId,
        /// Its account (checked).
        account: AccountId,
        /// Schedule name.
        name: String,
        /// When it was removed.
        at: UnixMillis,
    },
    /// A retention policy was set: the vault's default (`item: None`) or
    /// the override for one device's item on that vault.
    RetentionSet {
        /// The account (checked: owns the vault and the device).
        account: AccountId,
        /// The vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// `None`: the vault's default; `Some((device, item))`: the
        /// override for that item of that device on this vault.
        item: Option<(DeviceId, String)>,
        /// The policy.
        policy: RetentionPolicy,
        /// When it was set.
        at: UnixMillis,
    },
    /// A retention policy was cleared: the vault then keeps everything, or
    /// the item falls back to the vault's default.
    RetentionCleared {
        /// The account (checked).
        account: AccountId,
        /// The vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// As in [`Event::RetentionSet`].
        item: Option<(DeviceId, String)>,
        /// When it was cleared.
        at: UnixMillis,
    },
    /// A job started on a device, naming the item and schedule it runs for.
    /// Supersedes [`Event::JobStarted`], which now means this event with
    /// neither (except that the jobs its 24 h rule ends keep the status
    /// they had, see the module doc).
    JobBegun {
        /// The new job's id.
        job: JobId,
        /// The device running it.
        device: DeviceId,
        /// The vault it works on, if any.
        #[serde(with = "proto_id_opt")]
        vault: Option<VaultId>,
        /// What kind of job.
        kind: JobKind,
        /// The protected item it runs for, if any.
        item: Option<String>,
        /// The schedule that started it, if any.
        schedule: Option<String>,
        /// When it started.
        at: UnixMillis,
    },
    /// A running job is alive. Sets the job's `last_seen`; a job that was
    /// ended [`JobStatus::Abandoned`] is revived (running again, flagged
    /// `revived`, and never allowed to commit a snapshot).
    JobHeartbeat {
        /// The job.
        job: JobId,
        /// The device running it (checked).
        device: DeviceId,
        /// When the device reported.
        at: UnixMillis,
    },
    /// Proposed by the cluster role on the Raft leader: every listed job
    /// that is still running and whose `last_seen` is at least `silence_ms`
    /// before `at` is ended [`JobStatus::Abandoned`]; other listed jobs are
    /// left alone.
    JobsAbandoned {
        /// The candidates.
        jobs: Vec<JobId>,
        /// How long a job must have been silent.
        silence_ms: u64,
        /// When the leader decided (its clock).
        at: UnixMillis,
    },
    /// A job started and finished in one event: one that never ran
    /// ([`JobStatus::Missed`], [`JobStatus::SkippedAlreadyRunning`], a
    /// failed before-command) or that is recorded after the fact (it could
    /// not start while the cluster was unreachable).
    JobRecorded {
        /// The new job's id.
        job: JobId,
        /// The device.
        device: DeviceId,
        /// The vault it was for, if any.
        #[serde(with = "proto_id_opt")]
        vault: Option<VaultId>,
        /// What kind of job.
        kind: JobKind,
        /// The protected item, if any.
        item: Option<String>,
        /// The schedule, if any.
        schedule: Option<String>,
        /// How it ended.
        status: JobStatus,
        /// Messages (bounded length).
        log: String,
        /// When it started (or was due).
        started_at: UnixMillis,
        /// When it ended.
        at: UnixMillis,
    },
    /// The operator set the cluster's license: the serial it leases, the
    /// authority it asks, and the cluster's own cadence. Recording it
    /// through the log makes every node (and every future leader) lease the
    /// same serial under the same cluster id. A different serial than the
    /// current one drops the current lease and starts a new fencing
    /// sequence (tokens are the serial's).
    LicenseConfigured {
        /// Serial number (a secret: shown redacted).
        serial: String,
        /// Base URL of the license authority.
        authority: String,
        /// The id this cluster presents to the authority (kept when only
        /// the cadence changes).
        cluster_id: String,
        /// How often the leader renews (it renews sooner if the lease is
        /// short: at a third of its length at the latest).
        renew_ms: u64,
        /// How long the cluster keeps working after the last renewal when
        /// the authority cannot be reached.
        grace_ms: u64,
        /// When it was set.
        at: UnixMillis,
    },
    /// A node's roles and storage labels, as it runs them (recorded when
    /// it first joins and whenever its `--roles` or `--storage-labels`
    /// change), so every node knows which nodes serve which role and which
    /// storage nodes belong to which pool.
    NodeProfileSet {
        /// The node (its Raft id).
        node: StorageNodeId,
        /// The roles it runs; never empty.
        roles: std::collections::BTreeSet<Role>,
        /// Its storage labels (e.g. `ssd`, `eu-west`); empty without the
        /// storage role.
        labels: std::collections::BTreeSet<String>,
        /// When it was recorded.
        at: UnixMillis,
    },
    /// An operator defined (or redefined) a vault tier whose vaults keep
    /// every copy on storage nodes carrying all of `labels` (a storage
    /// pool). Supersedes [`Event::TierConfigured`], which now means this
    /// event with no labels (any storage node).
    TierPooled {
        /// Tier name.
        name: String,
        /// Replica count of chunks in vaults of this tier.
        replicas: u8,
        /// Whether devices may request vaults of this tier.
        requestable: bool,
        /// Most bytes a vault of this tier may hold; `None` is unlimited.
        quota_bytes: Option<u64>,
        /// Free text shown to users choosing a tier (bounded length).
        description: String,
        /// The labels every node holding a copy must carry; empty means
        /// any storage node. A labelled tier is refused unless at least
        /// `replicas` active storage nodes carry them.
        labels: std::collections::BTreeSet<String>,
        /// When it was configured.
        at: UnixMillis,
    },
    /// An admin action, with who took it: the inner event applies as it
    /// would alone (after the actor's role is checked against it) and,
    /// when it applies, leaves an [`AuditEntry`](crate::console::AuditEntry).
    /// Every event the admin API proposes is wrapped in one.
    Audited {
        /// Who acted.
        actor: Actor,
        /// Where the request came from (client address, bounded length).
        from: String,
        /// When the node accepted the request.
        at: UnixMillis,
        /// The action; never itself [`Event::Audited`].
        event: Box<Event>,
    },
    /// A new operator (an admin account of the cluster).
    OperatorCreated {
        /// Login name, unique among operators.
        name: String,
        /// What they may do.
        role: OperatorRole,
        /// Their organization: required for an org admin, optional for
        /// read-only, refused for a cluster admin.
        org: Option<String>,
        /// Hash of the client-derived login key, and the KDF parameters.
        credentials: Credentials,
        /// A TOTP secret, for a second factor.
        totp_secret: Option<Vec<u8>>,
        /// When it was created.
        at: UnixMillis,
    },
    /// An operator was removed, with their sessions.
    OperatorRemoved {
        /// The operator.
        name: String,
        /// When.
        at: UnixMillis,
    },
    /// An operator logged in: a new session (the oldest is dropped beyond
    /// the per-operator bound; expired ones are dropped too).
    OperatorSessionOpened {
        /// The operator.
        operator: String,
        /// The session's id (hex of 16 bytes).
        session: String,
        /// Hash of the session's bearer token.
        token_hash: Vec<u8>,
        /// When the session stops being accepted.
        expires_at: UnixMillis,
        /// Where the login came from (bounded length).
        from: String,
        /// When the login happened.
        at: UnixMillis,
    },
    /// Sessions of an operator were revoked: one, or all of them.
    OperatorSessionRevoked {
        /// The operator.
        operator: String,
        /// The session; `None` revokes every session of the operator.
        session: Option<String>,
        /// When.
        at: UnixMillis,
    },
    /// An organization was created or reconfigured.
    OrgConfigured {
        /// Its name.
        name: String,
        /// Display name (branding).
        display_name: String,
        /// Support URL (branding).
        support_url: String,
        /// The tiers its users may request (each must exist); empty: all.
        tiers: Vec<String>,
        /// When.
        at: UnixMillis,
    },
    /// An account was created in an organization. Supersedes
    /// [`Event::AccountCreated`], which now means this event in
    /// [`DEFAULT_ORG`](crate::console::DEFAULT_ORG).
    AccountCreatedInOrg {
        /// The new account's id.
        account: AccountId,
        /// Login name, unique among live accounts.
        name: String,
        /// Login credentials.
        credentials: Credentials,
        /// Its organization (must exist, or be the default one).
        org: String,
        /// When it was created.
        at: UnixMillis,
    },
    /// An account was disabled: its logins, device tokens and dispatched
    /// jobs are refused from this entry on; its data and vaults stay.
    /// Disabling a disabled account replaces the reason.
    AccountDisabled {
        /// The account.
        account: AccountId,
        /// Why, for the user and the operators (bounded length).
        reason: String,
        /// When.
        at: UnixMillis,
    },
    /// A disabled account was enabled again (new logins work; tokens
    /// issued before are accepted again too).
    AccountEnabled {
        /// The account.
        account: AccountId,
        /// When.
        at: UnixMillis,
    },
    /// An existing operator's TOTP second factor was set (enrolment, or a
    /// new secret) or removed.
    OperatorTotpSet {
        /// The operator.
        operator: String,
        /// The new secret; `None` removes the second factor.
        totp_secret: Option<Vec<u8>>,
        /// When.
        at: UnixMillis,
    },
    /// An operator logged in, with the TOTP step of the code they gave.
    /// Supersedes [`Event::OperatorSessionOpened`], which now means this
    /// event with no step. A step at or before the operator's last one is
    /// refused, so a code opens one session only, on any node.
    OperatorSessionStarted {
        /// The operator.
        operator: String,
        /// The session's id (hex of 16 bytes).
        session: String,
        /// Hash of the session's bearer token.
        token_hash: Vec<u8>,
        /// When the session stops being accepted.
        expires_at: UnixMillis,
        /// Where the login came from (bounded length).
        from: String,
        /// The TOTP step the accepted code belongs to; `None` for an
        /// operator without a second factor.
        totp_step: Option<u64>,
        /// When the login happened.
        at: UnixMillis,
    },
    /// Several requests in one log entry, applied in order as if each had
    /// an entry of its own (each with its own request id, dedup and
    /// outcome; the batch's own request id is not remembered; see
    /// [`crate::apply::apply_entry`]). The leader
    /// packs the writes that arrive while its previous entry is being
    /// written to disk, so many writes share one fsync: Raft's throughput
    /// under concurrency. A batch inside a batch (or inside
    /// [`Event::Audited`]) is rejected.
    Batch(Vec<Request>),
}

/// A role a node runs (issue 13): each can be scaled apart from the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accounts, devices, tokens and vault records: the node is a Raft
    /// voter (up to the voter cap) and serves the device and admin API.
    Auth,
    /// A chunk store: the node is a placement target.
    Storage,
    /// The cluster's background work (repair, rebalancing, abandoned jobs,
    /// the license lease); it runs on the leader, which must be an auth
    /// voter.
    Cluster,
    /// Serves pre-configured client downloads (`GET /download/`).
    Downloads,
}

impl Role {
    /// Every role, in their canonical order.
    pub const ALL: [Role; 4] = [Role::Auth, Role::Storage, Role::Cluster, Role::Downloads];

    /// The role's name on the command line, in configs and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Auth => "auth",
            Role::Storage => "storage",
            Role::Cluster => "cluster",
            Role::Downloads => "downloads",
        }
    }

    /// The role named `name` (case-insensitive, surrounding space ignored).
    pub fn parse(name: &str) -> Option<Role> {
        let name = name.trim();
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    /// A short stable name of the variant, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AccountCreated { .. } => "account_created",
            Event::AccountPasswordChanged { .. } => "account_password_changed",
            Event::AccountDeleted { .. } => "account_deleted",
            Event::DeviceRegistered { .. } => "device_registered",
            Event::DeviceRevoked { .. } => "device_revoked",
            Event::DeviceRenamed { .. } => "device_renamed",
            Event::VaultCreated { .. } => "vault_created",
            Event::VaultDeleted { .. } => "vault_deleted",
            Event::TierDefined { .. } => "tier_defined",
            Event::SnapshotCommitted { .. } => "snapshot_committed",
            Event::SnapshotForgotten { .. } => "snapshot_forgotten",
            Event::JobStarted { .. } => "job_started",
            Event::JobFinished { .. } => "job_finished",
            Event::StorageNodeJoined { .. } => "storage_node_joined",
            Event::StorageNodeDrained { .. } => "storage_node_drained",
            Event::StorageNodeRemoved { .. } => "storage_node_removed",
            Event::LeaseGranted { .. } => "lease_granted",
            Event::LeaseRenewed { .. } => "lease_renewed",
            Event::LeaseExpired { .. } => "lease_expired",
            Event::DeviceLoggedIn { .. } => "device_logged_in",
            Event::TierConfigured { .. } => "tier_configured",
            Event::ItemSet { .. } => "item_set",
            Event::ItemRemoved { .. } => "item_removed",
            Event::JobCompleted { .. } => "job_completed",
            Event::ServerSecretSet { .. } => "server_secret_set",
            Event::SnapshotCommittedByJob { .. } => "snapshot_committed_by_job",
            Event::ItemConfigured { .. } => "item_configured",
            Event::VaultCommandsSet { .. } => "vault_commands_set",
            Event::ScheduleSet { .. } => "schedule_set",
            Event::ScheduleRemoved { .. } => "schedule_removed",
            Event::RetentionSet { .. } => "retention_set",
            Event::RetentionCleared { .. } => "retention_cleared",
            Event::JobBegun { .. } => "job_begun",
            Event::JobHeartbeat { .. } => "job_heartbeat",
            Event::JobsAbandoned { .. } => "jobs_abandoned",
            Event::JobRecorded { .. } => "job_recorded",
            Event::LicenseConfigured { .. } => "license_configured",
            Event::NodeProfileSet { .. } => "node_profile_set",
            Event::TierPooled { .. } => "tier_pooled",
            Event::Audited { .. } => "audited",
            Event::OperatorCreated { .. } => "operator_created",
            Event::OperatorRemoved { .. } => "operator_removed",
            Event::OperatorSessionOpened { .. } => "operator_session_opened",
            Event::OperatorSessionRevoked { .. } => "operator_session_revoked",
            Event::OrgConfigured { .. } => "org_configured",
            Event::AccountCreatedInOrg { .. } => "account_created_in_org",
            Event::AccountDisabled { .. } => "account_disabled",
            Event::AccountEnabled { .. } => "account_enabled",
            Event::OperatorTotpSet { .. } => "operator_totp_set",
            Event::OperatorSessionStarted { .. } => "operator_session_started",
            Event::Batch(_) => "batch",
        }
    }
}

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OperatorRole {
    /// Everything, in every organization.
    ClusterAdmin,
    /// Reads and changes the accounts of one organization.
    OrgAdmin,
    /// Reads (of one organization, or of all when it names none); changes
    /// nothing but its own sessions.
    ReadOnly,
}

impl OperatorRole {
    /// The role's name on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            OperatorRole::ClusterAdmin => "cluster-admin",
            OperatorRole::OrgAdmin => "org-admin",
            OperatorRole::ReadOnly => "read-only",
        }
    }

    /// The role named `name` ([`Self::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::ClusterAdmin, Self::OrgAdmin, Self::ReadOnly]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// Who took an admin action: the audit trail's subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A holder of a node's `admin.token` (bootstrap and scripts).
    AdminToken {
        /// The node whose token it was.
        node: u64,
    },
    /// An operator, through one of their sessions.
    Operator {
        /// The operator's name.
        name: String,
    },
    /// A user, through one of their account's devices (remote control:
    /// dispatching a job to another device of the same account).
    Device {
        /// The device whose token the request carried.
        device: DeviceId,
    },
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::AdminToken { node } => write!(f, "admin token of node {node}"),
            Actor::Operator { name } => write!(f, "operator {name}"),
            Actor::Device { device } => write!(f, "device {device}"),
        }
    }
}

/// What the server keeps to check a login: never the password, never the
/// wrap key (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// How the client derives its keys from the password; handed to any
    /// device that logs in so it can derive the same keys.
    pub kdf: KdfParams,
    /// Hash of the login key (the first half of the argon2id output).
    pub login_key_hash: Vec<u8>,
}

/// argon2id parameters and salt of an account (the client's `KdfParams`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
    /// Random salt.
    pub salt: Vec<u8>,
}

/// A committed snapshot, as the client reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshot's id.
    #[serde(with = "proto_id")]
    pub id: SnapshotId,
    /// Its vault.
    #[serde(with = "proto_id")]
    pub vault: VaultId,
    /// The device that made it.
    pub device: DeviceId,
    /// The protected item it belongs to.
    pub item: String,
    /// When the backup started.
    pub started_at: UnixMillis,
    /// When the backup finished.
    pub finished_at: UnixMillis,
    /// Root tree id.
    #[serde(with = "proto_id")]
    pub root: ChunkId,
    /// Counters.
    pub stats: SnapshotStats,
    /// Client-sealed metadata (paths, host…), opaque to the server.
    pub sealed_meta: Vec<u8>,
}

/// Counters reported with a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Files in the snapshot.
    pub files: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Bytes uploaded for this snapshot (after dedup, before compression).
    pub new_bytes: u64,
    /// Chunks uploaded for this snapshot.
    pub new_chunks: u64,
}

/// The kind of a job in the job log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// A backup.
    Backup,
    /// A restore.
    Restore,
    /// A repository check.
    Check,
    /// Forget and prune.
    Prune,
    /// A login with the account's password (an audit record, finished when
    /// it is created).
    Login,
    /// Applying a retention policy (forget per policy, then prune).
    Retention,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Completed successfully.
    Succeeded,
    /// Completed with warnings (e.g. unreadable files skipped).
    Warnings,
    /// Failed.
    Failed,
    /// Cancelled by the user or a shutdown.
    Cancelled,
    /// Stopped because it ran longer than its schedule's timeout.
    Timeout,
    /// Stopped because the vault's quota was reached.
    Quota,
    /// A scheduled run that did not happen (the device was off or asleep).
    Missed,
    /// A scheduled run skipped because the previous one was still running.
    SkippedAlreadyRunning,
    /// Ended by the cluster: the device stopped reporting (no heartbeat for
    /// the configured silence, [`Event::JobsAbandoned`]) or the job was
    /// unfinished 24 h after its start (a job start by [`Event::JobBegun`]).
    Abandoned,
}

/// A retention policy: which snapshots of a vault (or of one item on it)
/// to keep. A snapshot is kept when any range keeps it; no range at all
/// keeps everything. The selection itself is the client's (pure, over the
/// snapshot records); consensus stores and bounds the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// The ranges, at most [`MAX_RETENTION_RANGES`](crate::apply::MAX_RETENTION_RANGES).
    pub ranges: Vec<RetentionRange>,
    /// How often the policy is applied (a `Retention` job), in seconds;
    /// `None` leaves it to the client's default.
    pub prune_every_s: Option<u32>,
}

/// One range of a [`RetentionPolicy`], mirroring the client's selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionRange {
    /// Keep every snapshot.
    Everything,
    /// Keep the newest N snapshots.
    Last(u32),
    /// Keep the snapshots younger than `secs` seconds.
    NewerThan {
        /// The age bound, in seconds.
        secs: u64,
    },
    /// Keep the snapshots taken since this time.
    Since(UnixMillis),
    /// Keep the first snapshot of each of the last `count` calendar periods.
    FirstOf {
        /// The calendar period.
        period: Period,
        /// How many periods back.
        count: u32,
    },
    /// Keep the newest snapshot of each period, for the `count` most recent
    /// periods that have snapshots.
    OnePer {
        /// The calendar period.
        period: Period,
        /// How many periods with snapshots.
        count: u32,
    },
}

/// A calendar period of a [`RetentionRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Period {
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// A week.
    Week,
    /// A month.
    Month,
    /// A year.
    Year,
}

/// A license lease: exclusive, short-term, fenced (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The cluster's serial number.
    pub serial: String,
    /// Strictly increasing across grants; leader-only work checks it.
    pub fencing_token: u64,
    /// When the grant happened.
    pub granted_at: UnixMillis,
    /// When it runs out unless renewed.
    pub expires_at: UnixMillis,
}
