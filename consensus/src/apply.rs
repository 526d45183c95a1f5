//! `apply`: the pure, deterministic transition function of the state machine.
//!
//! ```text
//!   Request { request_id, event }
//!            │
//!            ▼
//!   seen request_id? ──yes──▶ first Outcome again (nothing changes)
//!            │ no
//!            ▼
//!   validate(event, &State) ──Err(Rejection)──▶ Outcome::Rejected (state unchanged)
//!            │ Ok
//!            ▼
//!   mutate(&mut State) ──▶ Outcome::Applied
//!            │
//!            ▼
//!   remember (request_id → outcome) in the bounded RequestLog
//! ```
//!
//! Why pure: every replica applies the same log and must end in the same
//! state, so `apply` reads no clock, no randomness and no IO, and iterates
//! only ordered maps. That also makes it testable without Raft or disk (see
//! the property tests at the end of this file). Every handler checks all its
//! preconditions before its first write, so a rejection leaves the domain
//! state exactly as it was; only the dedup table records that the request
//! was answered.
//!
//! Unattended protection (schedules, before/after commands, retention
//! policies, heartbeats) follows the same pattern. A device may only
//! configure itself, and only with its account's vaults and its own items;
//! every list and text is bounded by a constant below. Removals cascade so
//! that nothing names a record that is gone: removing an item removes its
//! schedules and its retention overrides; deleting a vault removes the
//! items backed up into it (with theirs), the schedules that name it and
//! the overrides on it; revoking a device removes its schedules (its items
//! and their overrides stay, like its snapshots); deleting an account
//! removes its devices' items, schedules and overrides. A job's heartbeat
//! and end come only from its own device; a job ended
//! [`JobStatus::Abandoned`] that reports again is revived, and a revived
//! backup job never commits a snapshot (docs/FORMATS.md).

use std::collections::BTreeSet;

use cairn_proto::{SnapshotId, VaultId};
use serde::{Deserialize, Serialize};

use crate::event::{
    Credentials, Event, JobKind, JobStatus, Lease, Request, RetentionPolicy, RetentionRange, Role,
    SnapshotRecord, StorageNodeId,
};
use crate::ids::proto_id;
use crate::ids::{AccountId, DeviceId, JobId, UnixMillis};
use crate::state::{
    Account, Device, Item, Job, JobEnd, License, NodeProfile, Schedule, State, StorageNode,
    StorageNodeStatus, Tier, Vault,
};

/// Longest accepted name (accounts, devices, vaults, tiers, items), in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Largest replica count a tier may ask for (the voter cap is 5; storage
/// nodes may be more, but more than 16 copies is a typo).
pub const MAX_REPLICAS: u8 = 16;

/// Longest tier description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 1024;

/// Most paths (and, separately, exclude patterns) one protected item holds.
pub const MAX_ITEM_PATHS: usize = 256;

/// Longest path or exclude pattern of an item, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// Most protected items one device may have; keeps the state bounded.
pub const MAX_ITEMS_PER_DEVICE: usize = 256;

/// Longest job log accepted in [`Event::JobCompleted`], in bytes: the log
/// is replicated, so devices send a tail, not the whole output.
pub const MAX_JOB_LOG_LEN: usize = 64 * 1024;

/// Longest job error text, in bytes.
pub const MAX_JOB_ERROR_LEN: usize = 4096;

/// Longest login origin (`from` of [`Event::DeviceLoggedIn`]), in bytes.
pub const MAX_LOGIN_FROM_LEN: usize = 256;

/// Length of the server secret, in bytes.
pub const SERVER_SECRET_LEN: usize = 32;

/// How long a job may stay unfinished: a client that crashed never
/// finishes its job, and an unfinished backup job holds off every sweep of
/// its vault. A job start ends the account's jobs older than this as
/// abandoned (so the next prune is no longer held off), and a snapshot
/// commit by a backup job this old is refused (a prune may have swept the
/// chunks the backup reused). See docs/FORMATS.md.
pub const BACKUP_JOB_ABANDONED_MS: u64 = 24 * 3600 * 1000;

/// How far the clocks of two nodes may disagree: a backup that finished up
/// to this long before a prune started still counts as overlapping it.
pub const CLOCK_SKEW_MS: u64 = 5_000;

/// Most vaults one account may have (each vault costs every node state and
/// a quota's worth of storage).
pub const MAX_VAULTS_PER_ACCOUNT: usize = 32;

/// Largest sealed vault key blob (`wrapped_keys`), in bytes. An honest one
/// is 113 bytes (81 of secrets, a 16-byte nonce and a 16-byte tag).
pub const MAX_WRAPPED_KEYS_LEN: usize = 4096;

/// Most snapshot records one vault may hold; forget and prune make room.
pub const MAX_SNAPSHOTS_PER_VAULT: usize = 10_000;

/// Largest client-sealed metadata of one snapshot record, in bytes.
pub const MAX_SEALED_META_LEN: usize = 256 * 1024;

/// Most sealed metadata all of one account's snapshot records may hold
/// together, in bytes: the replicated state lives in every node's memory.
pub const MAX_SEALED_META_PER_ACCOUNT: u64 = 64 << 20;

/// Most jobs of one account that may be running (unfinished and younger
/// than [`BACKUP_JOB_ABANDONED_MS`]) at once.
pub const MAX_RUNNING_JOBS_PER_ACCOUNT: usize = 256;

/// How many finished jobs (logins included) the job log keeps per account;
/// older ones are dropped, oldest end first, by the event that finishes
/// one more.
pub const MAX_FINISHED_JOBS_PER_ACCOUNT: usize = 256;

/// Most before (and, separately, after) commands per level: an item, a
/// vault or a schedule.
pub const MAX_COMMANDS: usize = 8;

/// Longest command, in bytes.
pub const MAX_COMMAND_LEN: usize = 4096;

/// Longest schedule frequency text, in bytes.
pub const MAX_SCHEDULE_SPEC_LEN: usize = 256;

/// Largest random delay of a schedule, in seconds (5 h, Comet's limit).
pub const MAX_RANDOM_DELAY_S: u32 = 5 * 3600;

/// Shortest schedule timeout, in seconds.
pub const MIN_TIMEOUT_S: u32 = 1;

/// Most schedules one device may have.
pub const MAX_SCHEDULES_PER_DEVICE: usize = 64;

/// Most ranges in one retention policy.
pub const MAX_RETENTION_RANGES: usize = 16;

/// Largest count in a retention range (`Last`, `FirstOf`, `OnePer`).
pub const MAX_RETENTION_COUNT: u32 = 100_000;

/// Shortest silence after which [`Event::JobsAbandoned`] may end a job: a
/// shorter one would abandon healthy jobs between two heartbeats.
pub const MIN_ABANDON_SILENCE_MS: u64 = 10_000;

/// Most jobs one [`Event::JobsAbandoned`] may list; the cluster role sends
/// more in several events.
pub const MAX_JOBS_ABANDONED_PER_EVENT: usize = 1024;

/// What applying one log entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The event was valid and the state changed.
    Applied,
    /// The event was refused; the state did not change.
    Rejected(Rejection),
    /// A Raft-internal entry (blank or membership) that carries no event.
    NoOp,
}

impl Outcome {
    /// Whether the event took effect.
    pub fn is_applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

/// Why an event was refused. Stable: clients map these to API error codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// No such account.
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    /// No such device.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// No such vault.
    #[error("unknown vault {0}")]
    UnknownVault(#[serde(with = "proto_id")] VaultId),
    /// No such snapshot (in that vault).
    #[error("unknown snapshot {0}")]
    UnknownSnapshot(#[serde(with = "proto_id")] SnapshotId),
    /// No such job.
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    /// No such tier.
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    /// No such storage node.
    #[error("unknown storage node {0}")]
    UnknownStorageNode(StorageNodeId),
    /// The id is already in use.
    #[error("{kind} {id} already exists")]
    DuplicateId {
        /// What kind of record.
        kind: RecordKind,
        /// The id, in hex or decimal.
        id: String,
    },
    /// The name is already in use in its scope.
    #[error("{kind} name {name:?} is already taken")]
    NameTaken {
        /// What kind of record.
        kind: RecordKind,
        /// The name.
        name: String,
    },
    /// The name is empty, too long or contains control characters.
    #[error("invalid {kind} name {name:?}")]
    InvalidName {
        /// What kind of record.
        kind: RecordKind,
        /// The name (truncated).
        name: String,
    },
    /// The record belongs to another account.
    #[error("{kind} belongs to account {owner}, not {requester}")]
    WrongOwner {
        /// What kind of record.
        kind: RecordKind,
        /// The real owner.
        owner: AccountId,
        /// Who asked.
        requester: AccountId,
    },
    /// The device has been revoked.
    #[error("device {0} is revoked")]
    DeviceRevoked(DeviceId),
    /// An account with vaults cannot be deleted.
    #[error("account {account} still has {vaults} vault(s)")]
    AccountHasVaults {
        /// The account.
        account: AccountId,
        /// How many vaults it has.
        vaults: u64,
    },
    /// A password change must re-wrap exactly the account's vaults' keys.
    #[error("password change for {account} does not re-wrap exactly its vaults' keys")]
    RewrapMismatch {
        /// The account.
        account: AccountId,
    },
    /// Devices may not request vaults of this tier.
    #[error("tier {0:?} is not requestable")]
    TierNotRequestable(String),
    /// Replica count out of range.
    #[error("invalid replica count {0} (1..={MAX_REPLICAS})")]
    InvalidReplicas(u8),
    /// The job already finished.
    #[error("job {0} already finished")]
    JobAlreadyFinished(JobId),
    /// A time that must not precede another does.
    #[error("{what}: {later} is before {earlier}")]
    TimeTravel {
        /// Which times.
        what: String,
        /// The earlier time.
        earlier: UnixMillis,
        /// The time that should not precede it.
        later: UnixMillis,
    },
    /// The storage node is not in a state that allows this transition.
    #[error("storage node {node} is {status:?}")]
    StorageNodeState {
        /// The node.
        node: StorageNodeId,
        /// Its status.
        status: StorageNodeStatus,
    },
    /// The storage node address is empty or malformed.
    #[error("invalid storage node address {0:?}")]
    InvalidAddress(String),
    /// A grant whose fencing token does not exceed every earlier one.
    #[error("stale fencing token {got} (last granted {last})")]
    StaleFencingToken {
        /// The highest token granted so far.
        last: u64,
        /// The offered token.
        got: u64,
    },
    /// No lease is held, or it is not the one named.
    #[error("no current lease for serial {serial:?} with fencing token {fencing_token}")]
    LeaseMismatch {
        /// The serial named.
        serial: String,
        /// The token named.
        fencing_token: u64,
    },
    /// A protected item's paths or excludes are missing, relative, too many
    /// or too long.
    #[error("invalid item: {0}")]
    InvalidItem(String),
    /// The device has no protected item of that name.
    #[error("device {device} has no item {name:?}")]
    UnknownItem {
        /// The device.
        device: DeviceId,
        /// The item name (truncated).
        name: String,
    },
    /// A text field is longer than its bound.
    #[error("{what} is {len} bytes, at most {max} allowed")]
    TooLong {
        /// Which field.
        what: String,
        /// Its length in bytes.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// A tier quota of zero bytes (use `None` for unlimited).
    #[error("a tier quota must be at least one byte")]
    InvalidQuota,
    /// The server secret does not have [`SERVER_SECRET_LEN`] bytes.
    #[error("server secret has {0} bytes, expected {SERVER_SECRET_LEN}")]
    InvalidSecret(u64),
    /// The server secret is set once; it is already set.
    #[error("the server secret is already set")]
    SecretAlreadySet,
    /// A snapshot commit whose job is not a running backup job of the
    /// snapshot's device on its vault: without that job a concurrent prune
    /// may have deleted chunks the snapshot needs.
    #[error(
        "job {job} {reason}; a snapshot is committed only under a running backup job of the \
         same device on the same vault; run the backup again"
    )]
    JobNotRunning {
        /// The job named by the commit.
        job: JobId,
        /// Why it does not qualify.
        reason: String,
    },
    /// A blob is larger than its bound.
    #[error("{what} is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Which field.
        what: String,
        /// Its length in bytes.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// A per-account or per-vault count or total has reached its bound.
    #[error("{what}: the limit is {max}{hint}")]
    LimitReached {
        /// What is counted.
        what: String,
        /// The bound.
        max: u64,
        /// What the user can do, starting with "; ".
        hint: String,
    },
    /// A before/after command list is too long, or a command is empty or
    /// contains a NUL character.
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// A schedule's frequency text, random delay or timeout is out of range.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// The device has no schedule of that name.
    #[error("device {device} has no schedule {name:?}")]
    UnknownSchedule {
        /// The device.
        device: DeviceId,
        /// The schedule name (truncated).
        name: String,
    },
    /// A retention policy has too many ranges or a count out of range.
    #[error("invalid retention policy: {0}")]
    InvalidRetention(String),
    /// No retention policy is set there to clear.
    #[error("no retention policy is set on vault {vault} for {item:?}")]
    NoRetention {
        /// The vault.
        #[serde(with = "proto_id")]
        vault: VaultId,
        /// The item override named, or `None` for the vault's default.
        item: Option<(DeviceId, String)>,
    },
    /// A device reported a status only the cluster sets
    /// ([`JobStatus::Abandoned`]).
    #[error("a device cannot report status {0:?}; the cluster sets it")]
    StatusReserved(JobStatus),
    /// [`Event::JobsAbandoned`] with a silence below
    /// [`MIN_ABANDON_SILENCE_MS`].
    #[error("a silence of {silence_ms} ms is below the floor of {min} ms")]
    SilenceTooShort {
        /// The silence asked for.
        silence_ms: u64,
        /// The floor.
        min: u64,
    },
    /// A license setting that cannot be used (empty authority, a zero
    /// cadence, an over-long value).
    #[error("invalid license setting: {0}")]
    InvalidLicense(String),
    /// A node profile with no roles, or storage labels that are not short
    /// lowercase words.
    #[error("invalid node profile: {0}")]
    InvalidProfile(String),
    /// A labelled tier that fewer active storage nodes carry the labels of
    /// than it keeps copies.
    #[error(
        "tier {tier:?} needs {replicas} storage nodes labelled {labels:?} but only {matching} \
         active ones are"
    )]
    TierUnsatisfiable {
        /// The tier.
        tier: String,
        /// The labels it needs.
        labels: Vec<String>,
        /// Its replica count.
        replicas: u8,
        /// Active storage nodes carrying every label.
        matching: u32,
    },
    /// No such operator.
    #[error("unknown operator {0:?}")]
    UnknownOperator(String),
    /// No such organization.
    #[error("unknown organization {0:?}")]
    UnknownOrg(String),
    /// The actor's role does not allow the action (see
    /// [`permits`]).
    #[error("{actor} may not take the action {action}")]
    NotPermitted {
        /// Who asked.
        actor: String,
        /// The event kind.
        action: String,
    },
    /// An operator's role, organization, TOTP secret or session id does
    /// not fit.
    #[error("invalid operator: {0}")]
    InvalidOperator(String),
    /// The operator has no session of that id.
    #[error("no session {0}")]
    UnknownSession(String),
    /// The account is disabled: no login, token or dispatched job of it
    /// is accepted until an operator enables it.
    #[error("account {account} is disabled: {reason}")]
    AccountDisabled {
        /// The account.
        account: AccountId,
        /// The operator's reason (may be empty).
        reason: String,
    },
    /// A TOTP code of a step the operator already used (or an earlier
    /// one): a code opens one session only.
    #[error(
        "operator {operator:?} already used a TOTP code of step {last}; wait for the next code"
    )]
    TotpReplayed {
        /// The operator.
        operator: String,
        /// The last step used.
        last: u64,
    },
    /// An [`Event::Batch`] anywhere but at the top of a log entry.
    #[error("a batch of requests may not be nested")]
    NestedBatch,
}

/// A kind of record, to qualify generic rejections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// An account.
    Account,
    /// A device.
    Device,
    /// A vault.
    Vault,
    /// A tier.
    Tier,
    /// A snapshot record.
    Snapshot,
    /// A job.
    Job,
    /// A storage node.
    StorageNode,
    /// A protected item.
    Item,
    /// A schedule.
    Schedule,
    /// An operator (or one of their sessions).
    Operator,
    /// An organization.
    Org,
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Account => "account",
            RecordKind::Device => "device",
            RecordKind::Vault => "vault",
            RecordKind::Tier => "tier",
            RecordKind::Snapshot => "snapshot",
            RecordKind::Job => "job",
            RecordKind::StorageNode => "storage node",
            RecordKind::Item => "item",
            RecordKind::Schedule => "schedule",
            RecordKind::Operator => "operator",
            RecordKind::Org => "organization",
        })
    }
}

/// Applies one request to the state. Pure and deterministic; see the module
/// doc. A request id seen before (and still remembered) returns its first
/// outcome without applying anything.
///
/// An [`Event::Batch`] is not expanded here (it is rejected, as a batch
/// inside a batch is): a log entry's request goes through [`apply_entry`].
pub fn apply(state: &mut State, request: &Request) -> Outcome {
    if let Some(first) = state.requests.get(&request.request_id) {
        return first.clone();
    }
    let outcome = match apply_event(state, &request.event) {
        Ok(()) => Outcome::Applied,
        Err(rejection) => Outcome::Rejected(rejection),
    };
    state.requests.record(request.request_id, outcome.clone());
    outcome
}

/// Applies the request of one log entry: a batch's requests in order,
/// each as if it had the entry to itself, or the one request. One outcome
/// per request.
pub fn apply_entry(state: &mut State, request: &Request) -> Vec<Outcome> {
    entry_requests(request).map(|r| apply(state, r)).collect()
}

/// The requests a log entry's request stands for, in order: a batch's, or
/// the request itself. The one place that says how an entry expands.
pub fn entry_requests(request: &Request) -> std::slice::Iter<'_, Request> {
    match &request.event {
        Event::Batch(requests) => requests.iter(),
        _ => std::slice::from_ref(request).iter(),
    }
}

/// Validates and applies one event, without dedup. On `Err` nothing changed.
fn apply_event(s: &mut State, event: &Event) -> Result<(), Rejection> {
    match event {
        Event::AccountCreated {
            account,
            name,
            credentials,
            at,
        } => apply_account_created(s, *account, name, credentials, *at),
        Event::AccountCreatedInOrg {
            account,
            name,
            credentials,
            org,
            at,
        } => {
            console::check_org(s, org)?;
            apply_account_created(s, *account, name, credentials, *at)?;
            if org != crate::console::DEFAULT_ORG {
                s.account_orgs.insert(*account, org.clone());
            }
            Ok(())
        }
        Event::Audited {
            actor,
            from,
            at,
            event,
        } => console::apply_audited(s, actor, from, *at, event),
        Event::OperatorCreated {
            name,
            role,
            org,
            credentials,
            totp_secret,
            at,
        } => console::apply_operator_created(
            s,
            console::NewOperator {
                name,
                role: *role,
                org: org.as_deref(),
                credentials,
                totp_secret: totp_secret.as_deref(),
                at: *at,
            },
        ),
        Event::OperatorRemoved { name, at: _ } => console::apply_operator_removed(s, name),
        Event::OperatorSessionOpened {
            operator,
            session,
            token_hash,
            expires_at,
            from,
            at,
        } => console::apply_session_opened(
            s,
            console::NewSession {
                operator,
                session,
                token_hash,
                expires_at: *expires_at,
                from,
                totp_step: None,
                at: *at,
            },
        ),
        Event::OperatorSessionStarted {
            operator,
            session,
            token_hash,
            expires_at,
            from,
            totp_step,
            at,
        } => console::apply_session_opened(
            s,
            console::NewSession {
                operator,
                session,
                token_hash,
                expires_at: *expires_at,
                from,
                totp_step: *totp_step,
                at: *at,
            },
        ),
        Event::OperatorTotpSet {
            operator,
            totp_secret,
            at: _,
        } => console::apply_totp_set(s, operator, totp_secret.as_deref()),
        // A top-level batch never gets here (`apply` expands it).
        Event::Batch(_) => Err(Rejection::NestedBatch),
        Event::AccountDisabled {
            account,
            reason,
            at,
        } => console::apply_account_disabled(s, *account, reason, *at),
        Event::AccountEnabled { account, at: _ } => console::apply_account_enabled(s, *account),
        Event::OperatorSessionRevoked {
            operator,
            session,
            at: _,
        } => console::apply_session_revoked(s, operator, session.as_deref()),
        Event::OrgConfigured {
            name,
            display_name,
            support_url,
            tiers,
            at,
        } => console::apply_org_configured(
            s,
            crate::console::Org {
                name: name.clone(),
                display_name: display_name.clone(),
                support_url: support_url.clone(),
                tiers: tiers.clone(),
                updated_at: *at,
            },
        ),
        Event::AccountPasswordChanged {
            account,
            credentials,
            rewrapped_keys,
            at,
        } => {
            if !s.accounts.contains_key(account) {
                return Err(Rejection::UnknownAccount(*account));
            }
            let owned: Vec<VaultId> = s.vaults_of(*account).map(|v| v.id).collect();
            if owned.len() != rewrapped_keys.len()
                || owned.iter().any(|v| !rewrapped_keys.contains_key(v))
            {
                return Err(Rejection::RewrapMismatch { account: *account });
            }
            for keys in rewrapped_keys.values() {
                check_size("wrapped vault keys", keys, MAX_WRAPPED_KEYS_LEN)?;
            }
            for (vault, keys) in rewrapped_keys {
                if let Some(v) = s.vaults.get_mut(vault) {
                    v.wrapped_keys.clone_from(keys);
                }
            }
            if let Some(acc) = s.accounts.get_mut(account) {
                acc.credentials = credentials.clone();
                acc.password_changed_at = Some(*at);
            }
            // Every device must log in again with the new password; the
            // node's auth refuses an empty token hash.
            let devices: Vec<DeviceId> = s.devices_of(*account).map(|d| d.id).collect();
            for id in devices {
                if let Some(d) = s.devices.get_mut(&id) {
                    d.token_hash.clear();
                }
            }
            Ok(())
        }
        Event::AccountDeleted { account, at: _ } => {
            let acc = s
                .accounts
                .get(account)
                .ok_or(Rejection::UnknownAccount(*account))?;
            let vaults = s.vaults_of(*account).count() as u64;
            if vaults > 0 {
                return Err(Rejection::AccountHasVaults {
                    account: *account,
                    vaults,
                });
            }
            let name = acc.name.clone();
            let deps = s.account_dependents(*account);
            s.account_names.remove(&name);
            s.accounts.remove(account);
            s.account_orgs.remove(account);
            s.disabled.remove(account);
            let devices: Vec<DeviceId> = s.devices_of(*account).map(|d| d.id).collect();
            for id in devices {
                s.devices.remove(&id);
            }
            s.remove_dependents(&deps);
            Ok(())
        }
        Event::DeviceRegistered {
            device,
            account,
            name,
            token_hash,
            at,
        } => {
            check_name(RecordKind::Device, name)?;
            if !s.accounts.contains_key(account) {
                return Err(Rejection::UnknownAccount(*account));
            }
            if s.devices.contains_key(device) {
                return Err(dup(RecordKind::Device, device));
            }
            if s.devices_of(*account)
                .any(|d| d.is_live() && d.name == *name)
            {
                return Err(taken(RecordKind::Device, name));
            }
            s.devices.insert(
                *device,
                Device {
                    id: *device,
                    account: *account,
                    name: name.clone(),
                    token_hash: token_hash.clone(),
                    registered_at: *at,
                    revoked_at: None,
                    last_login_at: *at,
                },
            );
            Ok(())
        }
        Event::DeviceRevoked {
            device,
            account,
            at,
        } => {
            live_device_of(s, *device, *account)?;
            let deps = s.device_dependents(*device);
            if let Some(d) = s.devices.get_mut(device) {
                d.revoked_at = Some(*at);
            }
            s.remove_dependents(&deps);
            Ok(())
        }
        Event::DeviceRenamed {
            device,
            account,
            name,
            at: _,
        } => {
            check_name(RecordKind::Device, name)?;
            live_device_of(s, *device, *account)?;
            if s.devices_of(*account)
                .any(|d| d.id != *device && d.is_live() && d.name == *name)
            {
                return Err(taken(RecordKind::Device, name));
            }
            if let Some(d) = s.devices.get_mut(device) {
                d.name.clone_from(name);
            }
            Ok(())
        }
        Event::VaultCreated {
            vault,
            account,
            name,
            tier,
            wrapped_keys,
            at,
        } => {
            check_name(RecordKind::Vault, name)?;
            if !s.accounts.contains_key(account) {
                return Err(Rejection::UnknownAccount(*account));
            }
            let t = s
                .tiers
                .get(tier)
                .ok_or_else(|| Rejection::UnknownTier(tier.clone()))?;
            if !t.requestable || !s.offers_tier(*account, tier) {
                return Err(Rejection::TierNotRequestable(tier.clone()));
            }
            if s.vaults.contains_key(vault) {
                return Err(dup(RecordKind::Vault, vault));
            }
            if s.vaults_of(*account).any(|v| v.name == *name) {
                return Err(taken(RecordKind::Vault, name));
            }
            check_size("wrapped vault keys", wrapped_keys, MAX_WRAPPED_KEYS_LEN)?;
            if s.vaults_of(*account).count() >= MAX_VAULTS_PER_ACCOUNT {
                return Err(Rejection::LimitReached {
                    what: "vaults per account".into(),
                    max: MAX_VAULTS_PER_ACCOUNT as u64,
                    hint: "; delete a vault you no longer need".into(),
                });
            }
            s.vaults.insert(
                *vault,
                Vault {
                    id: *vault,
                    account: *account,
                    name: name.clone(),
                    tier: tier.clone(),
                    wrapped_keys: wrapped_keys.clone(),
                    created_at: *at,
                    before: Vec::new(),
                    after: Vec::new(),
                    retention: None,
                },
            );
            Ok(())
        }
        Event::VaultDeleted {
            vault,
            account,
            at: _,
        } => {
            let v = s.vaults.get(vault).ok_or(Rejection::UnknownVault(*vault))?;
            owned_by(RecordKind::Vault, v.account, *account)?;
            let deps = s.vault_dependents(*vault);
            s.vaults.remove(vault);
            let snapshots: Vec<SnapshotId> = s.snapshots_of(*vault).map(|snap| snap.id).collect();
            for id in snapshots {
                s.snapshots.remove(&id);
            }
            s.remove_dependents(&deps);
            Ok(())
        }
        Event::TierDefined {
            name,
            replicas,
            requestable,
            at,
        } => apply_tier(
            s,
            Tier {
                name: name.clone(),
                replicas: *replicas,
                requestable: *requestable,
                defined_at: *at,
                quota_bytes: None,
                description: String::new(),
            },
            &BTreeSet::new(),
        ),
        Event::SnapshotCommitted { snapshot } => apply_snapshot_committed(s, snapshot, None),
        Event::SnapshotForgotten {
            snapshot,
            vault,
            device,
            at: _,
        } => {
            let v = s.vaults.get(vault).ok_or(Rejection::UnknownVault(*vault))?;
            let owner = v.account;
            let requester = live_device(s, *device)?.account;
            // Any device of the owning account may forget any of its
            // snapshots (DESIGN §7), not only the device that made it.
            owned_by(RecordKind::Vault, owner, requester)?;
            match s.snapshots.get(snapshot) {
                Some(snap) if snap.vault == *vault => {}
                _ => return Err(Rejection::UnknownSnapshot(*snapshot)),
            }
            s.snapshots.remove(snapshot);
            Ok(())
        }
        Event::JobStarted {
            job,
            device,
            vault,
            kind,
            at,
        } => apply_job_start(
            s,
            JobStart {
                job: *job,
                device: *device,
                vault: *vault,
                kind: *kind,
                item: None,
                schedule: None,
                at: *at,
            },
            JobStatus::Failed,
        ),
        Event::JobFinished {
            job,
            device,
            status,
            log,
            at,
        } => apply_job_end(
            s,
            *job,
            *device,
            JobEnd {
                status: *status,
                log: log.clone(),
                at: *at,
                files: 0,
                bytes: 0,
                error: None,
            },
        ),
        Event::StorageNodeJoined { node, addr, at } => {
            if addr.is_empty() || addr.len() > 256 || addr.chars().any(char::is_whitespace) {
                return Err(Rejection::InvalidAddress(truncate(addr)));
            }
            if let Some(n) = s.storage_nodes.get(node) {
                if n.status != StorageNodeStatus::Removed {
                    return Err(dup(RecordKind::StorageNode, node));
                }
            }
            s.storage_nodes.insert(
                *node,
                StorageNode {
                    id: *node,
                    addr: addr.clone(),
                    status: StorageNodeStatus::Active,
                    joined_at: *at,
                    changed_at: *at,
                },
            );
            Ok(())
        }
        Event::StorageNodeDrained { node, at } => {
            storage_node_transition(s, *node, *at, StorageNodeStatus::Draining, |st| {
                st == StorageNodeStatus::Active
            })
        }
        Event::StorageNodeRemoved { node, at } => {
            storage_node_transition(s, *node, *at, StorageNodeStatus::Removed, |st| {
                st != StorageNodeStatus::Removed
            })
        }
        Event::LeaseGranted { lease } => {
            check_name(RecordKind::Item, &lease.serial).map_err(|_| Rejection::LeaseMismatch {
                serial: truncate(&lease.serial),
                fencing_token: lease.fencing_token,
            })?;
            if lease.fencing_token <= s.last_fencing_token {
                return Err(Rejection::StaleFencingToken {
                    last: s.last_fencing_token,
                    got: lease.fencing_token,
                });
            }
            if lease.expires_at < lease.granted_at {
                return Err(Rejection::TimeTravel {
                    what: "lease expiry before its grant".into(),
                    earlier: lease.granted_at,
                    later: lease.expires_at,
                });
            }
            if s.license.as_ref().is_some_and(|l| l.serial != lease.serial) {
                return Err(Rejection::LeaseMismatch {
                    serial: truncate(&lease.serial),
                    fencing_token: lease.fencing_token,
                });
            }
            s.last_fencing_token = lease.fencing_token;
            s.lease = Some(lease.clone());
            if let Some(l) = s.license.as_mut() {
                l.renewed_at = Some(lease.granted_at);
            }
            Ok(())
        }
        Event::LeaseRenewed {
            serial,
            fencing_token,
            expires_at,
            at,
        } => {
            let current = current_lease(s, serial, *fencing_token)?;
            if *expires_at < current.expires_at {
                return Err(Rejection::TimeTravel {
                    what: "renewed lease expiry before the current one".into(),
                    earlier: current.expires_at,
                    later: *expires_at,
                });
            }
            if let Some(l) = s.lease.as_mut() {
                l.expires_at = *expires_at;
            }
            if let Some(l) = s.license.as_mut() {
                l.renewed_at = Some(*at);
            }
            Ok(())
        }
        Event::LeaseExpired {
            serial,
            fencing_token,
            at: _,
        } => {
            current_lease(s, serial, *fencing_token)?;
            s.lease = None;
            Ok(())
        }
        Event::LicenseConfigured {
            serial,
            authority,
            cluster_id,
            renew_ms,
            grace_ms,
            at,
        } => apply_license_configured(
            s,
            License {
                serial: serial.clone(),
                authority: authority.clone(),
                cluster_id: cluster_id.clone(),
                renew_ms: *renew_ms,
                grace_ms: *grace_ms,
                configured_at: *at,
                renewed_at: None,
            },
        ),
        Event::DeviceLoggedIn {
            device,
            account,
            name,
            token_hash,
            job,
            from,
            at,
        } => apply_device_logged_in(
            s,
            Login {
                device: *device,
                account: *account,
                name,
                token_hash,
                job: *job,
                from,
                at: *at,
            },
        ),
        Event::TierConfigured {
            name,
            replicas,
            requestable,
            quota_bytes,
            description,
            at,
        } => apply_tier_configured(
            s,
            Tier {
                name: name.clone(),
                replicas: *replicas,
                requestable: *requestable,
                defined_at: *at,
                quota_bytes: *quota_bytes,
                description: description.clone(),
            },
            &BTreeSet::new(),
        ),
        Event::TierPooled {
            name,
            replicas,
            requestable,
            quota_bytes,
            description,
            labels,
            at,
        } => apply_tier_configured(
            s,
            Tier {
                name: name.clone(),
                replicas: *replicas,
                requestable: *requestable,
                defined_at: *at,
                quota_bytes: *quota_bytes,
                description: description.clone(),
            },
            labels,
        ),
        Event::NodeProfileSet {
            node,
            roles,
            labels,
            at,
        } => apply_node_profile(s, *node, roles, labels, *at),
        Event::ItemSet {
            device,
            account,
            name,
            paths,
            excludes,
            vault,
            at,
        } => apply_item_set(
            s,
            Item {
                device: *device,
                account: *account,
                name: name.clone(),
                paths: paths.clone(),
                excludes: excludes.clone(),
                vault: *vault,
                updated_at: *at,
                before: Vec::new(),
                after: Vec::new(),
            },
        ),
        Event::ItemRemoved {
            device,
            account,
            name,
            at: _,
        } => {
            live_device_of(s, *device, *account)?;
            item_of(s, *device, name)?;
            let deps = s.item_dependents(*device, name);
            s.items.remove(&(*device, name.clone()));
            s.remove_dependents(&deps);
            Ok(())
        }
        Event::JobCompleted {
            job,
            device,
            status,
            files,
            bytes,
            error,
            log,
            at,
        } => {
            check_len("job log", log, MAX_JOB_LOG_LEN)?;
            if let Some(error) = error {
                check_len("job error", error, MAX_JOB_ERROR_LEN)?;
            }
            apply_job_end(
                s,
                *job,
                *device,
                JobEnd {
                    status: *status,
                    log: log.clone(),
                    at: *at,
                    files: *files,
                    bytes: *bytes,
                    error: error.clone(),
                },
            )
        }
        Event::ServerSecretSet { secret, at: _ } => {
            if s.server_secret.is_some() {
                return Err(Rejection::SecretAlreadySet);
            }
            if secret.len() != SERVER_SECRET_LEN {
                return Err(Rejection::InvalidSecret(secret.len() as u64));
            }
            s.server_secret = Some(secret.clone());
            Ok(())
        }
        Event::SnapshotCommittedByJob { snapshot, job, at } => {
            apply_snapshot_committed(s, snapshot, Some((*job, *at)))
        }
        Event::ItemConfigured {
            device,
            account,
            name,
            paths,
            excludes,
            vault,
            before,
            after,
            at,
        } => apply_item_set(
            s,
            Item {
                device: *device,
                account: *account,
                name: name.clone(),
                paths: paths.clone(),
                excludes: excludes.clone(),
                vault: *vault,
                updated_at: *at,
                before: before.clone(),
                after: after.clone(),
            },
        ),
        Event::VaultCommandsSet {
            vault,
            account,
            before,
            after,
            at: _,
        } => {
            owned_vault(s, *vault, *account)?;
            check_commands(before, after)?;
            if let Some(v) = s.vaults.get_mut(vault) {
                v.before.clone_from(before);
                v.after.clone_from(after);
            }
            Ok(())
        }
        Event::ScheduleSet {
            device,
            account,
            name,
            item,
            vault,
            spec,
            random_delay_s,
            timeout_s,
            before,
            after,
            anchor,
            at,
        } => apply_schedule_set(
            s,
            Schedule {
                device: *device,
                account: *account,
                name: name.clone(),
                item: item.clone(),
                vault: *vault,
                spec: spec.clone(),
                random_delay_s: *random_delay_s,
                timeout_s: *timeout_s,
                before: before.clone(),
                after: after.clone(),
                anchor: *anchor,
                updated_at: *at,
            },
        ),
        Event::ScheduleRemoved {
            device,
            account,
            name,
            at: _,
        } => {
            live_device_of(s, *device, *account)?;
            if s.schedules.remove(&(*device, name.clone())).is_none() {
                return Err(Rejection::UnknownSchedule {
                    device: *device,
                    name: truncate(name),
                });
            }
            Ok(())
        }
        Event::RetentionSet {
            account,
            vault,
            item,
            policy,
            at: _,
        } => {
            owned_vault(s, *vault, *account)?;
            if let Some((device, name)) = item {
                live_device_of(s, *device, *account)?;
                item_of(s, *device, name)?;
            }
            check_retention(policy)?;
            match item {
                Some((device, name)) => {
                    s.item_retention
                        .insert((*vault, *device, name.clone()), policy.clone());
                }
                None => {
                    if let Some(v) = s.vaults.get_mut(vault) {
                        v.retention = Some(policy.clone());
                    }
                }
            }
            Ok(())
        }
        Event::RetentionCleared {
            account,
            vault,
            item,
            at: _,
        } => {
            owned_vault(s, *vault, *account)?;
            if let Some((device, _)) = item {
                // A revoked device's override may still be cleared: it
                // governs what is kept of that device's snapshots.
                let d = s
                    .devices
                    .get(device)
                    .ok_or(Rejection::UnknownDevice(*device))?;
                owned_by(RecordKind::Device, d.account, *account)?;
            }
            let cleared = match item {
                Some((device, name)) => s
                    .item_retention
                    .remove(&(*vault, *device, name.clone()))
                    .is_some(),
                None => s
                    .vaults
                    .get_mut(vault)
                    .and_then(|v| v.retention.take())
                    .is_some(),
            };
            if !cleared {
                return Err(Rejection::NoRetention {
                    vault: *vault,
                    item: item.as_ref().map(|(d, n)| (*d, truncate(n))),
                });
            }
            Ok(())
        }
        Event::JobBegun {
            job,
            device,
            vault,
            kind,
            item,
            schedule,
            at,
        } => apply_job_start(
            s,
            JobStart {
                job: *job,
                device: *device,
                vault: *vault,
                kind: *kind,
                item: item.clone(),
                schedule: schedule.clone(),
                at: *at,
            },
            JobStatus::Abandoned,
        ),
        Event::JobHeartbeat { job, device, at } => {
            check_job_report(s, *job, *device, *at)?;
            if let Some(j) = s.jobs.get_mut(job) {
                if j.finished.take().is_some() {
                    j.revived = true;
                }
                j.last_seen = j.last_seen.max(*at);
            }
            Ok(())
        }
        Event::JobsAbandoned {
            jobs,
            silence_ms,
            at,
        } => apply_jobs_abandoned(s, jobs, *silence_ms, *at),
        Event::JobRecorded {
            job,
            device,
            vault,
            kind,
            item,
            schedule,
            status,
            log,
            started_at,
            at,
        } => {
            device_status(*status)?;
            check_len("job log", log, MAX_JOB_LOG_LEN)?;
            if *at < *started_at {
                return Err(Rejection::TimeTravel {
                    what: "job end before its start".into(),
                    earlier: *started_at,
                    later: *at,
                });
            }
            let account = check_new_job(
                s,
                &JobStart {
                    job: *job,
                    device: *device,
                    vault: *vault,
                    kind: *kind,
                    item: item.clone(),
                    schedule: schedule.clone(),
                    at: *started_at,
                },
            )?;
            s.jobs.insert(
                *job,
                Job {
                    id: *job,
                    account,
                    device: *device,
                    vault: *vault,
                    kind: *kind,
                    started_at: *started_at,
                    finished: Some(JobEnd {
                        status: *status,
                        log: log.clone(),
                        at: *at,
                        files: 0,
                        bytes: 0,
                        error: None,
                    }),
                    item: item.clone(),
                    schedule: schedule.clone(),
                    last_seen: *started_at,
                    revived: false,
                },
            );
            trim_finished_jobs(s, account, *at);
            Ok(())
        }
    }
}

/// The fields of a job start ([`Event::JobStarted`], [`Event::JobBegun`],
/// and the start half of [`Event::JobRecorded`]).
struct JobStart {
    job: JobId,
    device: DeviceId,
    vault: Option<VaultId>,
    kind: JobKind,
    item: Option<String>,
    schedule: Option<String>,
    at: UnixMillis,
}

/// The checks every new job passes: a live device, a vault of its account,
/// a fresh id and valid item and schedule names. Returns the account.
fn check_new_job(s: &State, j: &JobStart) -> Result<AccountId, Rejection> {
    let account = live_device(s, j.device)?.account;
    if let Some(vault) = j.vault {
        owned_vault(s, vault, account)?;
    }
    if s.jobs.contains_key(&j.job) {
        return Err(dup(RecordKind::Job, j.job));
    }
    if let Some(item) = &j.item {
        check_name(RecordKind::Item, item)?;
    }
    if let Some(schedule) = &j.schedule {
        check_name(RecordKind::Schedule, schedule)?;
    }
    Ok(account)
}

/// Starts a job (both job start events). The account's jobs left unfinished
/// for [`BACKUP_JOB_ABANDONED_MS`] are ended first, with `stale_status`:
/// [`JobStatus::Failed`] under [`Event::JobStarted`] (what old logs
/// replay to) and [`JobStatus::Abandoned`] under [`Event::JobBegun`].
fn apply_job_start(s: &mut State, j: JobStart, stale_status: JobStatus) -> Result<(), Rejection> {
    let account = check_new_job(s, &j)?;
    let stale = abandoned_jobs(s, account, j.at);
    let running = s
        .jobs
        .values()
        .filter(|j| j.account == account && j.finished.is_none())
        .count()
        - stale.len();
    if running >= MAX_RUNNING_JOBS_PER_ACCOUNT {
        return Err(Rejection::LimitReached {
            what: "running jobs per account".into(),
            max: MAX_RUNNING_JOBS_PER_ACCOUNT as u64,
            hint: "; wait for some to finish (an unfinished job is ended as abandoned \
                   24 h after it started)"
                .into(),
        });
    }
    for id in stale {
        if let Some(j) = s.jobs.get_mut(&id) {
            j.finished = Some(JobEnd {
                status: stale_status,
                log: String::new(),
                at: UnixMillis(j.started_at.0.saturating_add(BACKUP_JOB_ABANDONED_MS)),
                files: 0,
                bytes: 0,
                error: Some(ABANDONED.into()),
            });
        }
    }
    s.jobs.insert(
        j.job,
        Job {
            id: j.job,
            account,
            device: j.device,
            vault: j.vault,
            kind: j.kind,
            started_at: j.at,
            finished: None,
            item: j.item,
            schedule: j.schedule,
            last_seen: j.at,
            revived: false,
        },
    );
    trim_finished_jobs(s, account, j.at);
    Ok(())
}

/// Ends, as [`JobStatus::Abandoned`], each listed job that is running and
/// silent for `silence_ms` at `at`; the rest of the list is left alone.
fn apply_jobs_abandoned(
    s: &mut State,
    jobs: &[JobId],
    silence_ms: u64,
    at: UnixMillis,
) -> Result<(), Rejection> {
    if silence_ms < MIN_ABANDON_SILENCE_MS {
        return Err(Rejection::SilenceTooShort {
            silence_ms,
            min: MIN_ABANDON_SILENCE_MS,
        });
    }
    if jobs.len() > MAX_JOBS_ABANDONED_PER_EVENT {
        return Err(Rejection::LimitReached {
            what: "jobs per abandonment".into(),
            max: MAX_JOBS_ABANDONED_PER_EVENT as u64,
            hint: "; list the rest in another event".into(),
        });
    }
    let mut accounts = std::collections::BTreeSet::new();
    for id in jobs {
        let Some(j) = s.jobs.get_mut(id) else {
            continue;
        };
        if j.finished.is_some() || at.0.saturating_sub(j.last_seen.0) < silence_ms {
            continue;
        }
        j.finished = Some(JobEnd {
            status: JobStatus::Abandoned,
            log: String::new(),
            at: UnixMillis(at.0.max(j.started_at.0)),
            files: 0,
            bytes: 0,
            error: Some(format!(
                "{SILENT}: no report for {} s",
                at.0.saturating_sub(j.last_seen.0) / 1000
            )),
        });
        accounts.insert(j.account);
    }
    for account in accounts {
        trim_finished_jobs(s, account, at);
    }
    Ok(())
}

/// The start of the error text of a job ended by [`Event::JobsAbandoned`].
pub const SILENT: &str = "abandoned: the device stopped reporting";

fn apply_schedule_set(s: &mut State, schedule: Schedule) -> Result<(), Rejection> {
    check_name(RecordKind::Schedule, &schedule.name)?;
    live_device_of(s, schedule.device, schedule.account)?;
    item_of(s, schedule.device, &schedule.item)?;
    if let Some(vault) = schedule.vault {
        owned_vault(s, vault, schedule.account)?;
    }
    check_len("schedule spec", &schedule.spec, MAX_SCHEDULE_SPEC_LEN)?;
    if schedule.spec.trim().is_empty() || schedule.spec.chars().any(char::is_control) {
        return Err(Rejection::InvalidSchedule(
            "the frequency is empty or has control characters".into(),
        ));
    }
    if schedule.random_delay_s > MAX_RANDOM_DELAY_S {
        return Err(Rejection::InvalidSchedule(format!(
            "a random delay of {} s is above {MAX_RANDOM_DELAY_S} s",
            schedule.random_delay_s
        )));
    }
    if schedule.timeout_s.is_some_and(|t| t < MIN_TIMEOUT_S) {
        return Err(Rejection::InvalidSchedule(format!(
            "a timeout must be at least {MIN_TIMEOUT_S} s"
        )));
    }
    check_commands(&schedule.before, &schedule.after)?;
    let key = (schedule.device, schedule.name.clone());
    if !s.schedules.contains_key(&key)
        && s.schedules_of(schedule.device).count() >= MAX_SCHEDULES_PER_DEVICE
    {
        return Err(Rejection::LimitReached {
            what: "schedules per device".into(),
            max: MAX_SCHEDULES_PER_DEVICE as u64,
            hint: "; remove a schedule you no longer need".into(),
        });
    }
    s.schedules.insert(key, schedule);
    Ok(())
}

/// Before and after lists: at most [`MAX_COMMANDS`] each; every command
/// non-blank, at most [`MAX_COMMAND_LEN`] bytes, without NUL (a command
/// line cannot carry one).
fn check_commands(before: &[String], after: &[String]) -> Result<(), Rejection> {
    if before.len() > MAX_COMMANDS || after.len() > MAX_COMMANDS {
        return Err(Rejection::InvalidCommand(format!(
            "at most {MAX_COMMANDS} before and {MAX_COMMANDS} after commands"
        )));
    }
    for c in before.iter().chain(after) {
        check_len("command", c, MAX_COMMAND_LEN)?;
        if c.trim().is_empty() || c.contains('\0') {
            return Err(Rejection::InvalidCommand(format!(
                "{:?} is empty or contains NUL",
                truncate(c)
            )));
        }
    }
    Ok(())
}

/// At most [`MAX_RETENTION_RANGES`] ranges; counts in
/// 1..=[`MAX_RETENTION_COUNT`]; a prune interval of at least a second.
fn check_retention(policy: &RetentionPolicy) -> Result<(), Rejection> {
    if policy.ranges.len() > MAX_RETENTION_RANGES {
        return Err(Rejection::InvalidRetention(format!(
            "at most {MAX_RETENTION_RANGES} ranges"
        )));
    }
    for range in &policy.ranges {
        let count = match range {
            RetentionRange::Last(n)
            | RetentionRange::FirstOf { count: n, .. }
            | RetentionRange::OnePer { count: n, .. } => *n,
            RetentionRange::Everything
            | RetentionRange::NewerThan { .. }
            | RetentionRange::Since(_) => continue,
        };
        if count == 0 || count > MAX_RETENTION_COUNT {
            return Err(Rejection::InvalidRetention(format!(
                "a count of {count} is outside 1..={MAX_RETENTION_COUNT}"
            )));
        }
    }
    if policy.prune_every_s == Some(0) {
        return Err(Rejection::InvalidRetention(
            "a prune interval must be at least a second".into(),
        ));
    }
    Ok(())
}

/// The vault, which must exist and belong to `account`.
fn owned_vault(s: &State, vault: VaultId, account: AccountId) -> Result<&Vault, Rejection> {
    let v = s.vaults.get(&vault).ok_or(Rejection::UnknownVault(vault))?;
    owned_by(RecordKind::Vault, v.account, account)?;
    Ok(v)
}

/// The device's item, which must exist.
fn item_of<'a>(s: &'a State, device: DeviceId, name: &str) -> Result<&'a Item, Rejection> {
    s.items
        .get(&(device, name.to_owned()))
        .ok_or_else(|| Rejection::UnknownItem {
            device,
            name: truncate(name),
        })
}

/// The error text of a job ended as abandoned.
pub const ABANDONED: &str = "abandoned: not finished within 24 h of its start";

/// The account's unfinished jobs that a job start at `at` ends as
/// abandoned: started [`BACKUP_JOB_ABANDONED_MS`] or more before `at`.
fn abandoned_jobs(s: &State, account: AccountId, at: UnixMillis) -> Vec<JobId> {
    s.jobs
        .values()
        .filter(|j| {
            j.account == account
                && j.finished.is_none()
                && at.0.saturating_sub(j.started_at.0) >= BACKUP_JOB_ABANDONED_MS
        })
        .map(|j| j.id)
        .collect()
}

/// Keeps the newest [`MAX_FINISHED_JOBS_PER_ACCOUNT`] finished jobs of the
/// account (by end time, then id) and drops the rest. A dropped backup job
/// that ended after a running prune job on its vault started (less
/// [`CLOCK_SKEW_MS`]) is what makes that prune's sweep refuse (its snapshot
/// may be missing from the prune's mark), so such a prune is ended as
/// failed first: its sweep is then refused and the client starts anew.
fn trim_finished_jobs(s: &mut State, account: AccountId, at: UnixMillis) {
    let mut finished: Vec<(UnixMillis, JobId)> = s
        .jobs
        .values()
        .filter(|j| j.account == account)
        .filter_map(|j| j.finished.as_ref().map(|e| (e.at, j.id)))
        .collect();
    let Some(excess) = finished.len().checked_sub(MAX_FINISHED_JOBS_PER_ACCOUNT) else {
        return;
    };
    if excess == 0 {
        return;
    }
    finished.sort_unstable();
    for (_, id) in finished.into_iter().take(excess) {
        let Some(dropped) = s.jobs.remove(&id) else {
            continue;
        };
        let (JobKind::Backup, Some(vault), Some(end)) =
            (dropped.kind, dropped.vault, dropped.finished.as_ref())
        else {
            continue;
        };
        let overlapped: Vec<JobId> = s
            .jobs
            .values()
            .filter(|p| {
                p.kind == JobKind::Prune
                    && p.vault == Some(vault)
                    && p.finished.is_none()
                    && end.at.0.saturating_add(CLOCK_SKEW_MS) >= p.started_at.0
            })
            .map(|p| p.id)
            .collect();
        for id in &overlapped {
            let Some(p) = s.jobs.get_mut(id) else {
                continue;
            };
            p.finished = Some(JobEnd {
                status: JobStatus::Failed,
                log: String::new(),
                at: UnixMillis(at.0.max(p.started_at.0)),
                files: 0,
                bytes: 0,
                error: Some(
                    "ended: a backup job that overlapped this prune left the job log; \
                     run the prune again"
                        .into(),
                ),
            });
        }
    }
}

/// The job records an event of `account` at may change (for the store):
/// every unfinished job of the account (abandoned or ended prunes) and the
/// oldest finished ones the retention may drop. A superset is harmless.
pub(crate) fn jobs_maybe_changed(s: &State, account: AccountId) -> Vec<JobId> {
    let mut unfinished = Vec::new();
    let mut finished = Vec::new();
    for j in s.jobs.values().filter(|j| j.account == account) {
        match &j.finished {
            None => unfinished.push(j.id),
            Some(e) => finished.push((e.at, j.id)),
        }
    }
    let may_drop = (finished.len() + unfinished.len() + 1)
        .saturating_sub(MAX_FINISHED_JOBS_PER_ACCOUNT)
        .min(finished.len());
    if may_drop > 0 {
        finished.sort_unstable();
        unfinished.extend(finished.into_iter().take(may_drop).map(|(_, id)| id));
    }
    unfinished
}

/// Defines or redefines a tier (both tier events).
/// A tier with a quota and a description (both configured-tier events).
fn apply_tier_configured(
    s: &mut State,
    tier: Tier,
    labels: &BTreeSet<String>,
) -> Result<(), Rejection> {
    if tier.quota_bytes == Some(0) {
        return Err(Rejection::InvalidQuota);
    }
    check_len("tier description", &tier.description, MAX_DESCRIPTION_LEN)?;
    apply_tier(s, tier, labels)
}

/// Defines a tier (every tier event) and records the labels its vaults'
/// storage nodes need: a labelled tier is refused unless enough active
/// storage nodes carry them (see [`State::pool`]).
fn apply_tier(s: &mut State, tier: Tier, labels: &BTreeSet<String>) -> Result<(), Rejection> {
    check_name(RecordKind::Tier, &tier.name)?;
    if tier.replicas == 0 || tier.replicas > MAX_REPLICAS {
        return Err(Rejection::InvalidReplicas(tier.replicas));
    }
    check_labels(labels)?;
    if !labels.is_empty() {
        let matching = s.pool(labels).len();
        if matching < usize::from(tier.replicas) {
            return Err(Rejection::TierUnsatisfiable {
                tier: tier.name,
                labels: labels.iter().cloned().collect(),
                replicas: tier.replicas,
                matching: u32::try_from(matching).unwrap_or(u32::MAX),
            });
        }
        s.topology
            .tier_labels
            .insert(tier.name.clone(), labels.clone());
    } else {
        s.topology.tier_labels.remove(&tier.name);
    }
    s.tiers.insert(tier.name.clone(), tier);
    Ok(())
}

/// Most storage labels on one node or tier.
pub const MAX_LABELS: usize = 16;

/// Longest storage label.
pub const MAX_LABEL_LEN: usize = 32;

/// Storage labels are at most [`MAX_LABELS`] short lowercase words
/// (`a-z`, `0-9`, `-`, `_`, `.`), so they print, compare and parse back
/// from a comma-separated list unchanged.
fn check_labels(labels: &BTreeSet<String>) -> Result<(), Rejection> {
    if labels.len() > MAX_LABELS {
        return Err(Rejection::InvalidProfile(format!(
            "at most {MAX_LABELS} storage labels"
        )));
    }
    for l in labels {
        let ok = !l.is_empty()
            && l.len() <= MAX_LABEL_LEN
            && l.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !ok {
            return Err(Rejection::InvalidProfile(format!(
                "storage label {:?} must be 1 to {MAX_LABEL_LEN} of a-z, 0-9, '-', '_', '.'",
                truncate(l)
            )));
        }
    }
    Ok(())
}

/// Records a node's roles and labels (labels only with the storage role).
fn apply_node_profile(
    s: &mut State,
    node: StorageNodeId,
    roles: &BTreeSet<Role>,
    labels: &BTreeSet<String>,
    at: UnixMillis,
) -> Result<(), Rejection> {
    if roles.is_empty() {
        return Err(Rejection::InvalidProfile(
            "a node runs at least one role".into(),
        ));
    }
    if !labels.is_empty() && !roles.contains(&Role::Storage) {
        return Err(Rejection::InvalidProfile(
            "storage labels need the storage role".into(),
        ));
    }
    check_labels(labels)?;
    s.topology.nodes.insert(
        node,
        NodeProfile {
            roles: roles.clone(),
            labels: labels.clone(),
            set_at: at,
        },
    );
    Ok(())
}

/// Ends a job (both job end events).
fn apply_job_end(
    s: &mut State,
    job: JobId,
    device: DeviceId,
    end: JobEnd,
) -> Result<(), Rejection> {
    device_status(end.status)?;
    let account = check_job_report(s, job, device, end.at)?;
    let at = end.at;
    if let Some(j) = s.jobs.get_mut(&job) {
        if j.finished.is_some() {
            j.revived = true;
        }
        j.finished = Some(end);
    }
    trim_finished_jobs(s, account, at);
    Ok(())
}

/// A status a device may report: anything but [`JobStatus::Abandoned`],
/// which only the cluster sets (so that "ended abandoned" always means the
/// cluster gave up on the job, and a report revives only such a job). No
/// old event carries that status, so old logs replay unchanged.
fn device_status(status: JobStatus) -> Result<(), Rejection> {
    if status == JobStatus::Abandoned {
        return Err(Rejection::StatusReserved(status));
    }
    Ok(())
}

/// A report (heartbeat or end) at `at` about `job` from `device`: the job
/// must be the device's, running or ended [`JobStatus::Abandoned`] (which
/// the report revives), and `at` not before its start. Returns the job's
/// account. The checks keep the order the job end events always had, so
/// old logs get the same rejections.
fn check_job_report(
    s: &State,
    job: JobId,
    device: DeviceId,
    at: UnixMillis,
) -> Result<AccountId, Rejection> {
    let j = s.jobs.get(&job).ok_or(Rejection::UnknownJob(job))?;
    if j.device != device {
        let requester = s
            .devices
            .get(&device)
            .map(|d| d.account)
            .ok_or(Rejection::UnknownDevice(device))?;
        return Err(Rejection::WrongOwner {
            kind: RecordKind::Job,
            owner: j.account,
            requester,
        });
    }
    if j.finished
        .as_ref()
        .is_some_and(|e| e.status != JobStatus::Abandoned)
    {
        return Err(Rejection::JobAlreadyFinished(job));
    }
    if at < j.started_at {
        return Err(Rejection::TimeTravel {
            what: "job end before its start".into(),
            earlier: j.started_at,
            later: at,
        });
    }
    Ok(j.account)
}

/// The fields of [`Event::DeviceLoggedIn`], borrowed.
struct Login<'a> {
    device: DeviceId,
    account: AccountId,
    name: &'a str,
    token_hash: &'a [u8],
    job: JobId,
    from: &'a str,
    at: UnixMillis,
}

fn apply_device_logged_in(s: &mut State, l: Login<'_>) -> Result<(), Rejection> {
    if !s.accounts.contains_key(&l.account) {
        return Err(Rejection::UnknownAccount(l.account));
    }
    console::check_enabled(s, l.account)?;
    check_len("login origin", l.from, MAX_LOGIN_FROM_LEN)?;
    if s.devices.contains_key(&l.device) {
        live_device_of(s, l.device, l.account)?;
    } else {
        check_name(RecordKind::Device, l.name)?;
        if s.devices_of(l.account)
            .any(|d| d.is_live() && d.name == l.name)
        {
            return Err(taken(RecordKind::Device, l.name));
        }
    }
    if s.jobs.contains_key(&l.job) {
        return Err(dup(RecordKind::Job, l.job));
    }
    match s.devices.get_mut(&l.device) {
        Some(d) => {
            d.token_hash = l.token_hash.to_vec();
            d.last_login_at = l.at;
        }
        None => {
            s.devices.insert(
                l.device,
                Device {
                    id: l.device,
                    account: l.account,
                    name: l.name.to_owned(),
                    token_hash: l.token_hash.to_vec(),
                    registered_at: l.at,
                    revoked_at: None,
                    last_login_at: l.at,
                },
            );
        }
    }
    s.jobs.insert(
        l.job,
        Job {
            id: l.job,
            account: l.account,
            device: l.device,
            vault: None,
            kind: JobKind::Login,
            started_at: l.at,
            finished: Some(JobEnd {
                status: JobStatus::Succeeded,
                log: format!("login from {}", l.from),
                at: l.at,
                files: 0,
                bytes: 0,
                error: None,
            }),
            item: None,
            schedule: None,
            last_seen: l.at,
            revived: false,
        },
    );
    trim_finished_jobs(s, l.account, l.at);
    Ok(())
}

fn apply_item_set(s: &mut State, item: Item) -> Result<(), Rejection> {
    check_name(RecordKind::Item, &item.name)?;
    live_device_of(s, item.device, item.account)?;
    owned_vault(s, item.vault, item.account)?;
    check_item_paths(&item.paths, &item.excludes)?;
    check_commands(&item.before, &item.after)?;
    let key = (item.device, item.name.clone());
    if !s.items.contains_key(&key) && s.items_of(item.device).count() >= MAX_ITEMS_PER_DEVICE {
        return Err(Rejection::InvalidItem(format!(
            "a device has at most {MAX_ITEMS_PER_DEVICE} items"
        )));
    }
    s.items.insert(key, item);
    Ok(())
}

/// Paths: 1..=[`MAX_ITEM_PATHS`], each absolute; excludes: at most
/// [`MAX_ITEM_PATHS`]; every one non-empty, at most [`MAX_PATH_LEN`] bytes
/// and free of control characters. Absolute means rooted (`/…`) or on a
/// Windows drive (`C:\…`, `C:/…`).
fn check_item_paths(paths: &[String], excludes: &[String]) -> Result<(), Rejection> {
    if paths.is_empty() {
        return Err(Rejection::InvalidItem("no paths".into()));
    }
    if paths.len() > MAX_ITEM_PATHS || excludes.len() > MAX_ITEM_PATHS {
        return Err(Rejection::InvalidItem(format!(
            "at most {MAX_ITEM_PATHS} paths and {MAX_ITEM_PATHS} excludes"
        )));
    }
    if let Some(p) = paths
        .iter()
        .chain(excludes)
        .find(|p| p.is_empty() || p.len() > MAX_PATH_LEN || p.chars().any(char::is_control))
    {
        return Err(Rejection::InvalidItem(format!(
            "{:?} is empty, longer than {MAX_PATH_LEN} bytes or has control characters",
            truncate(p)
        )));
    }
    if let Some(p) = paths.iter().find(|p| !is_absolute(p)) {
        return Err(Rejection::InvalidItem(format!(
            "path {:?} is not absolute",
            truncate(p)
        )));
    }
    Ok(())
}

fn is_absolute(path: &str) -> bool {
    match path.as_bytes() {
        [b'/', ..] => true,
        [drive, b':', b'\\' | b'/', ..] => drive.is_ascii_alphabetic(),
        _ => false,
    }
}

fn check_len(what: &str, text: &str, max: usize) -> Result<(), Rejection> {
    if text.len() > max {
        return Err(Rejection::TooLong {
            what: what.to_owned(),
            len: text.len() as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn apply_account_created(
    s: &mut State,
    account: AccountId,
    name: &str,
    credentials: &Credentials,
    at: UnixMillis,
) -> Result<(), Rejection> {
    check_name(RecordKind::Account, name)?;
    if s.accounts.contains_key(&account) {
        return Err(dup(RecordKind::Account, account));
    }
    if s.account_names.contains_key(name) {
        return Err(taken(RecordKind::Account, name));
    }
    s.account_names.insert(name.to_owned(), account);
    s.accounts.insert(
        account,
        Account {
            id: account,
            name: name.to_owned(),
            credentials: credentials.clone(),
            created_at: at,
            password_changed_at: None,
        },
    );
    Ok(())
}

/// Both snapshot commit events; `job` (with the commit's time) for
/// [`Event::SnapshotCommittedByJob`].
fn apply_snapshot_committed(
    s: &mut State,
    snap: &SnapshotRecord,
    job: Option<(JobId, UnixMillis)>,
) -> Result<(), Rejection> {
    check_name(RecordKind::Item, &snap.item)?;
    let v = s
        .vaults
        .get(&snap.vault)
        .ok_or(Rejection::UnknownVault(snap.vault))?;
    let owner = v.account;
    let requester = live_device(s, snap.device)?.account;
    owned_by(RecordKind::Vault, owner, requester)?;
    if s.snapshots.contains_key(&snap.id) {
        return Err(dup(RecordKind::Snapshot, snap.id));
    }
    if snap.finished_at < snap.started_at {
        return Err(Rejection::TimeTravel {
            what: "snapshot end before its start".into(),
            earlier: snap.started_at,
            later: snap.finished_at,
        });
    }
    if let Some((job, at)) = job {
        check_backup_job(s, snap, job, at)?;
    }
    check_snapshot_limits(s, snap, owner)?;
    s.snapshots.insert(snap.id, snap.clone());
    Ok(())
}

/// `job` must be a running backup job of the snapshot's device on its
/// vault, started less than [`BACKUP_JOB_ABANDONED_MS`] before `at`.
fn check_backup_job(
    s: &State,
    snap: &SnapshotRecord,
    job: JobId,
    at: UnixMillis,
) -> Result<(), Rejection> {
    let not_running = |reason: &str| Rejection::JobNotRunning {
        job,
        reason: reason.to_owned(),
    };
    let j = s
        .jobs
        .get(&job)
        .ok_or_else(|| not_running("does not exist (its start was never recorded)"))?;
    if j.kind != JobKind::Backup {
        return Err(not_running("is not a backup job"));
    }
    if j.device != snap.device {
        return Err(not_running("belongs to another device"));
    }
    if j.vault != Some(snap.vault) {
        return Err(not_running("works on another vault"));
    }
    if let Some(end) = &j.finished {
        return Err(match end.error.as_deref() {
            Some(ABANDONED) => not_running("was ended as abandoned (unfinished for 24 h)"),
            _ if end.status == JobStatus::Abandoned => {
                not_running("was ended as abandoned (the device stopped reporting)")
            }
            _ => not_running("has already finished"),
        });
    }
    if j.revived {
        return Err(not_running(
            "was revived after being abandoned, and a prune may have run meanwhile",
        ));
    }
    if at.0.saturating_sub(j.started_at.0) >= BACKUP_JOB_ABANDONED_MS {
        return Err(not_running(
            "started 24 h or more ago, so prunes no longer wait for it",
        ));
    }
    Ok(())
}

/// The size of the record's metadata, the vault's record count and the
/// account's metadata total.
fn check_snapshot_limits(
    s: &State,
    snap: &SnapshotRecord,
    account: AccountId,
) -> Result<(), Rejection> {
    check_size(
        "sealed snapshot metadata",
        &snap.sealed_meta,
        MAX_SEALED_META_LEN,
    )?;
    let vaults: Vec<VaultId> = s.vaults_of(account).map(|v| v.id).collect();
    let mut in_vault = 0usize;
    let mut meta = snap.sealed_meta.len() as u64;
    for r in s.snapshots.values().filter(|r| vaults.contains(&r.vault)) {
        in_vault += usize::from(r.vault == snap.vault);
        meta += r.sealed_meta.len() as u64;
    }
    if in_vault >= MAX_SNAPSHOTS_PER_VAULT {
        return Err(Rejection::LimitReached {
            what: "snapshot records per vault".into(),
            max: MAX_SNAPSHOTS_PER_VAULT as u64,
            hint: "; forget old snapshots (`cairn forget`) to make room".into(),
        });
    }
    if meta > MAX_SEALED_META_PER_ACCOUNT {
        return Err(Rejection::LimitReached {
            what: "bytes of sealed snapshot metadata per account".into(),
            max: MAX_SEALED_META_PER_ACCOUNT,
            hint: "; forget old snapshots (`cairn forget`) to make room".into(),
        });
    }
    Ok(())
}

fn check_size(what: &str, blob: &[u8], max: usize) -> Result<(), Rejection> {
    if blob.len() > max {
        return Err(Rejection::TooLarge {
            what: what.to_owned(),
            len: blob.len() as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn storage_node_transition(
    s: &mut State,
    node: StorageNodeId,
    at: UnixMillis,
    to: StorageNodeStatus,
    allowed_from: impl Fn(StorageNodeStatus) -> bool,
) -> Result<(), Rejection> {
    let n = s
        .storage_nodes
        .get_mut(&node)
        .ok_or(Rejection::UnknownStorageNode(node))?;
    if !allowed_from(n.status) {
        return Err(Rejection::StorageNodeState {
            node,
            status: n.status,
        });
    }
    n.status = to;
    n.changed_at = at;
    Ok(())
}

/// Records the license settings; a new serial drops the lease of the old
/// one and restarts the fencing sequence (the authority counts tokens per
/// serial), the same serial keeps both and its last renewal.
fn apply_license_configured(s: &mut State, mut license: License) -> Result<(), Rejection> {
    check_name(RecordKind::Item, &license.serial).map_err(|_| {
        Rejection::InvalidLicense("the serial must be 1 to 255 printable characters".into())
    })?;
    if license.authority.is_empty()
        || license.authority.len() > MAX_NAME_LEN
        || license
            .authority
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(Rejection::InvalidLicense(
            "the authority URL must be 1 to 255 characters without spaces".into(),
        ));
    }
    if license.cluster_id.is_empty() || license.cluster_id.len() > MAX_NAME_LEN {
        return Err(Rejection::InvalidLicense(
            "the cluster id must be 1 to 255 characters".into(),
        ));
    }
    if license.renew_ms == 0 || license.grace_ms == 0 {
        return Err(Rejection::InvalidLicense(
            "renewal period and grace must be positive".into(),
        ));
    }
    match &s.license {
        Some(old) if old.serial == license.serial => license.renewed_at = old.renewed_at,
        _ => {
            s.lease = None;
            s.last_fencing_token = 0;
        }
    }
    s.license = Some(license);
    Ok(())
}

fn current_lease<'a>(s: &'a State, serial: &str, token: u64) -> Result<&'a Lease, Rejection> {
    match &s.lease {
        Some(l) if l.serial == serial && l.fencing_token == token => Ok(l),
        _ => Err(Rejection::LeaseMismatch {
            serial: truncate(serial),
            fencing_token: token,
        }),
    }
}

/// The device, which must exist and not be revoked.
fn live_device(s: &State, device: DeviceId) -> Result<&Device, Rejection> {
    let d = s
        .devices
        .get(&device)
        .ok_or(Rejection::UnknownDevice(device))?;
    if !d.is_live() {
        return Err(Rejection::DeviceRevoked(device));
    }
    Ok(d)
}

/// The device, which must exist, belong to `account` and not be revoked.
fn live_device_of(s: &State, device: DeviceId, account: AccountId) -> Result<&Device, Rejection> {
    let d = s
        .devices
        .get(&device)
        .ok_or(Rejection::UnknownDevice(device))?;
    owned_by(RecordKind::Device, d.account, account)?;
    if !d.is_live() {
        return Err(Rejection::DeviceRevoked(device));
    }
    Ok(d)
}

fn owned_by(kind: RecordKind, owner: AccountId, requester: AccountId) -> Result<(), Rejection> {
    if owner == requester {
        Ok(())
    } else {
        Err(Rejection::WrongOwner {
            kind,
            owner,
            requester,
        })
    }
}

fn check_name(kind: RecordKind, name: &str) -> Result<(), Rejection> {
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
        || name.trim() != name
    {
        return Err(Rejection::InvalidName {
            kind,
            name: truncate(name),
        });
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(MAX_NAME_LEN).collect()
}

fn dup(kind: RecordKind, id: impl std::fmt::Display) -> Rejection {
    Rejection::DuplicateId {
        kind,
        id: id.to_string(),
    }
}

fn taken(kind: RecordKind, name: &str) -> Rejection {
    Rejection::NameTaken {
        kind,
        name: name.to_owned(),
    }
}

mod console;

pub(crate) use console::audit_evicted;
pub use console::{
    permits, totp_step_fresh, MAX_AUDIT_ENTRIES, MAX_BRANDING_LEN, MAX_DISABLE_REASON_LEN,
    MAX_ORG_TIERS, MAX_SESSIONS_PER_OPERATOR, MAX_TOTP_SECRET_LEN,
};

#[cfg(test)]
mod tests;
