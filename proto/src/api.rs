//! The client-facing HTTP API of `cairnd`: paths, JSON bodies and error codes.
//!
//! This module is the contract between the `cairn` client and the node's
//! auth and storage roles; both sides use these types, so a change here is
//! a change of the API (versioned under [`PREFIX`]). Byte strings are hex in
//! JSON; ids are hex through their own serde impls. Chunk bodies are binary
//! (see [`crate::frames`]).
//!
//! Authentication: `Authorization: Bearer <token>`. A device token comes
//! from [`LoginRequest`]; the admin token is the node's `admin.token`. The
//! server stores only hashes of tokens and of login keys.
//!
//! | method and path | token | body → answer |
//! |---|---|---|
//! | `POST /api/v1/login/params` | none | [`LoginParamsRequest`] → [`Kdf`] |
//! | `POST /api/v1/login` | none | [`LoginRequest`] → [`LoginReply`] |
//! | `GET /api/v1/account` | device | → [`AccountInfo`] |
//! | `POST /api/v1/account/password` | device | [`PasswordChange`] → [`LoginReply`] |
//! | `GET /api/v1/devices` | device | → `[`[`DeviceInfo`]`]` |
//! | `POST /api/v1/devices/{id}/rename` | device | [`RenameDevice`] → [`DeviceInfo`] |
//! | `POST /api/v1/devices/{id}/revoke` | device | → [`DeviceInfo`] |
//! | `GET /api/v1/tiers` | device | → `[`[`TierInfo`]`]` (requestable ones) |
//! | `GET /api/v1/vaults` | device | → `[`[`VaultInfo`]`]` |
//! | `POST /api/v1/vaults` | device | [`CreateVault`] → [`VaultInfo`] |
//! | `GET`, `DELETE /api/v1/vaults/{id}` | device | → [`VaultInfo`] |
//! | `GET /api/v1/vaults/{id}/snapshots` | device | → `[`[`SnapshotInfo`]`]` |
//! | `POST /api/v1/vaults/{id}/snapshots` | device | [`CommitSnapshot`] → [`SnapshotInfo`] |
//! | `DELETE /api/v1/vaults/{id}/snapshots/{sid}` | device | → 204 |
//! | `POST /api/v1/vaults/{id}/chunks/missing` | device | ids (binary) → missing ids (binary) |
//! | `POST /api/v1/vaults/{id}/chunks` | device | chunk frames (binary) → [`UploadReply`] |
//! | `POST /api/v1/vaults/{id}/chunks/get` | device | ids (binary) → chunk frames (binary) |
//! | `POST /api/v1/vaults/{id}/chunks/list?after=HEX` | device | → ids (binary, ascending, one page) |
//! | `POST /api/v1/vaults/{id}/chunks/delete?job=HEX` | device | ids (binary) → [`SweepReply`] |
//! | `GET /api/v1/items` | device | → `[`[`ItemInfo`]`]` (this device's own) |
//! | `PUT`, `DELETE /api/v1/items/{name}` | device | [`PutItem`] → [`ItemInfo`] |
//! | `GET /api/v1/jobs` | device | → `[`[`JobInfo`]`]` (the account's) |
//! | `POST /api/v1/jobs` | device | [`StartJob`] → [`JobInfo`] |
//! | `POST /api/v1/jobs/{id}/finish` | device | [`FinishJob`] → [`JobInfo`] |
//! | `GET /api/v1/admin/jobs` | admin | → `[`[`JobInfo`]`]` (every account's) |
//! | `GET /api/v1/admin/devices` | admin | → `[`[`DeviceInfo`]`]` |
//! | `POST /api/v1/admin/devices/{id}/revoke` | admin | → [`DeviceInfo`] |
//!
//! Another account's vault, snapshot, device or job answers exactly like one
//! that does not exist (`404`, code [`code::NOT_FOUND`]), so responses never
//! reveal what other accounts have.

use serde::{Deserialize, Serialize};

use crate::id::{AccountId, ChunkId, DeviceId, JobId, SnapshotId, VaultId};

/// Every client-facing path starts with this.
pub const PREFIX: &str = "/api/v1";

/// Stable error codes (`ErrorBody::code`) that clients match on.
pub mod code {
    /// No token, or a token that is unknown, revoked or invalidated.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// Unknown user or wrong login key (deliberately the same answer).
    pub const LOGIN_FAILED: &str = "login_failed";
    /// Too many failed logins for this account or address; retry later.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A device token on an admin route, or an admin token on a device route.
    pub const FORBIDDEN: &str = "forbidden";
    /// No such thing (or another account's thing).
    pub const NOT_FOUND: &str = "not_found";
    /// Malformed request.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The body is larger than the route accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// The vault's tier quota would be exceeded.
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    /// A name is already used.
    pub const NAME_TAKEN: &str = "name_taken";
    /// Not enough storage replicas could be written; retry.
    pub const INSUFFICIENT_REPLICAS: &str = "insufficient_replicas";
    /// No storage node of the vault's pool (the nodes carrying its tier's
    /// labels, or every storage node for a tier without labels) could take
    /// an upload: they are all down. Sent with `503` but not worth retrying
    /// elsewhere (every node would answer the same); the message names the
    /// tier. Vaults of other tiers are unaffected.
    pub const POOL_UNAVAILABLE: &str = "pool_unavailable";
    /// No leader or not caught up; retry (possibly on another node).
    pub const UNAVAILABLE: &str = "unavailable";
    /// A backup is running on the vault (or finished after the prune
    /// started): chunks are not deleted now.
    pub const BUSY: &str = "busy";
    /// The cluster's license lease ran out and its grace period is over:
    /// new backups, vault requests and account changes are refused until
    /// the operator fixes it (the message says how); restores work.
    pub const LICENSE_EXPIRED: &str = "license_expired";
    /// The node does not run the role the route belongs to (`auth`,
    /// `storage`, `downloads`); the message names the nodes that do. Sent
    /// with `503`, so a client with several servers tries the next one.
    pub const ROLE_NOT_SERVED: &str = "role_not_served";
    /// Remote control: the device holds no live connection to the cluster
    /// (`cairn daemon` is not running there, or it went away).
    pub const DEVICE_OFFLINE: &str = "device_offline";
    /// Remote control: the device refused or failed the command (the
    /// message says why).
    pub const DEVICE_REFUSED: &str = "device_refused";
    /// The account is disabled by an operator (`403`): no login and no
    /// token of it works until it is enabled; the message carries the
    /// operator's reason. Retrying does not help.
    pub const ACCOUNT_DISABLED: &str = "account_disabled";
}

/// Most ids one page of `chunks/list` answers; a shorter page is the last.
pub const LIST_PAGE: usize = 65_536;

/// Answer to `chunks/delete`, the sweep half of `cairn prune`.
///
/// Safety rules the server applies (see docs/FORMATS.md, "Garbage
/// collection"): the `job` must be the asking device's running `prune` job;
/// the sweep is refused with [`code::BUSY`] while any backup job on the
/// vault is running, or if one finished after the prune job started (its
/// snapshot may be missing from the mark: start a new prune); and a copy is deleted only if its last-touched time
/// (upload, or a `missing` check that found it present) is older than the
/// prune job's start, so a chunk a concurrent backup deduplicated against
/// is never removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepReply {
    /// Chunks whose every copy was deleted.
    pub deleted: u64,
    /// Chunks kept because they were touched after the prune started.
    pub kept_recently_used: u64,
}

/// Every error answer: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code (see [`code`]).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// argon2id parameters and salt of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kdf {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Salt, hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub salt: Vec<u8>,
}

/// `POST /api/v1/login/params`: the KDF parameters to derive the login key.
/// An unknown user gets stable made-up parameters, so the answer does not
/// reveal which accounts exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginParamsRequest {
    /// Login name.
    pub user: String,
}

/// `POST /api/v1/login`: register (or re-register) a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// Login name.
    pub user: String,
    /// The login key (first half of argon2id(password, salt)), hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub login_key: Vec<u8>,
    /// Device name. A live device of the same name gets a new token (the
    /// old one stops working); otherwise a new device is registered.
    pub device: String,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginReply {
    /// The bearer token (shown once; the server keeps only its hash).
    pub token: String,
    /// The account.
    pub account: AccountId,
    /// The device the token belongs to.
    pub device: DeviceId,
    /// The device's name.
    pub device_name: String,
    /// Base URLs of every node of the cluster, for failover.
    pub nodes: Vec<String>,
}

/// `GET /api/v1/account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountInfo {
    /// Account id.
    pub id: AccountId,
    /// Login name.
    pub name: String,
    /// Current KDF parameters.
    pub kdf: Kdf,
    /// The device asking.
    pub device: DeviceId,
    /// Base URLs of every node of the cluster.
    pub nodes: Vec<String>,
}

/// One vault's keys re-wrapped with the new wrap key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RewrappedKeys {
    /// The vault.
    pub vault: VaultId,
    /// Its keys sealed with the new wrap key, hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped_keys: Vec<u8>,
}

/// `POST /api/v1/account/password`: change the password in one event.
/// Every vault's keys are re-wrapped by the client; all other devices must
/// log in again; the asking device gets a fresh token in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordChange {
    /// The current login key, hex (proves knowledge of the old password).
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub old_login_key: Vec<u8>,
    /// The new KDF parameters (new salt).
    pub kdf: Kdf,
    /// The new login key, hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub login_key: Vec<u8>,
    /// Every vault of the account, re-wrapped.
    pub vaults: Vec<RewrappedKeys>,
}

/// A device as its account (or the admin) sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    /// Device id.
    pub id: DeviceId,
    /// Its account.
    pub account: AccountId,
    /// Its name.
    pub name: String,
    /// First registration, ms since the epoch.
    pub registered_at: u64,
    /// Last login, ms since the epoch.
    pub last_login_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// Whether this is the device asking.
    pub current: bool,
}

/// `POST /api/v1/devices/{id}/rename`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameDevice {
    /// The new name.
    pub name: String,
}

/// A vault tier as devices see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierInfo {
    /// Tier name.
    pub name: String,
    /// Chunk replicas.
    pub replicas: u8,
    /// Per-vault quota in bytes of stored (sealed) chunks, if any.
    pub quota_bytes: Option<u64>,
    /// What the tier is for.
    pub description: String,
    /// Whether devices may request vaults of it.
    pub requestable: bool,
}

/// `POST /api/v1/vaults`: create a vault from a requestable tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateVault {
    /// The vault id, chosen by the client (its keys' AADs bind it).
    pub id: VaultId,
    /// Name, unique among the account's vaults.
    pub name: String,
    /// The tier.
    pub tier: String,
    /// The vault's keys and parameters sealed with the wrap key, hex
    /// (opaque to the server).
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped_keys: Vec<u8>,
}

/// A vault of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VaultInfo {
    /// Vault id.
    pub id: VaultId,
    /// Name.
    pub name: String,
    /// Tier name.
    pub tier: String,
    /// Replicas of each chunk.
    pub replicas: u8,
    /// Quota in bytes, if the tier has one.
    pub quota_bytes: Option<u64>,
    /// Bytes of sealed chunks stored (one copy), as far as known.
    pub used_bytes: u64,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Sealed keys, hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub wrapped_keys: Vec<u8>,
    /// Snapshot records in the vault.
    pub snapshots: u64,
    /// Commands every device of the account runs before each job on the vault.
    #[serde(default)]
    pub before: Vec<String>,
    /// Commands run after each job on the vault.
    #[serde(default)]
    pub after: Vec<String>,
}

/// Counters of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotStats {
    /// Files in the snapshot.
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Bytes that were new (after dedup, before compression).
    pub new_bytes: u64,
    /// Chunks uploaded.
    pub new_chunks: u64,
}

/// `POST /api/v1/vaults/{id}/snapshots`: commit a snapshot record. Refused
/// unless the root tree is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitSnapshot {
    /// Snapshot id, chosen by the client.
    pub id: SnapshotId,
    /// Protected item name (or a label derived from the paths).
    pub item: String,
    /// When the backup started, ms since the epoch.
    pub started_at: u64,
    /// When it finished, ms since the epoch.
    pub finished_at: u64,
    /// Root tree id.
    pub root: ChunkId,
    /// Counters.
    pub stats: SnapshotStats,
    /// Client-sealed metadata (paths, host, …), hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub sealed_meta: Vec<u8>,
    /// The backup job this snapshot ends: the commit is refused unless it
    /// is a running `backup` job of the asking device on this vault, since
    /// that job is what keeps a concurrent prune from deleting the chunks
    /// the backup reused (docs/FORMATS.md, garbage collection).
    pub job: JobId,
}

/// A committed snapshot record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotInfo {
    /// Snapshot id.
    pub id: SnapshotId,
    /// Its vault.
    pub vault: VaultId,
    /// The device that made it.
    pub device: DeviceId,
    /// That device's name.
    pub device_name: String,
    /// Protected item.
    pub item: String,
    /// Start, ms since the epoch.
    pub started_at: u64,
    /// End, ms since the epoch.
    pub finished_at: u64,
    /// Root tree id.
    pub root: ChunkId,
    /// Counters.
    pub stats: SnapshotStats,
    /// Sealed metadata, hex.
    #[serde(with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub sealed_meta: Vec<u8>,
}

/// Answer to a chunk upload batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadReply {
    /// Chunks newly stored.
    pub stored: u64,
    /// Chunks that were already there.
    pub present: u64,
    /// Replicas durably written for every chunk of the batch (at least W).
    pub replicas: u8,
}

/// A protected item: what a device backs up under one name. Private to the
/// device that defined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutItem {
    /// Absolute paths to back up.
    pub paths: Vec<String>,
    /// Exclude globs.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// The vault it backs up to.
    pub vault: VaultId,
    /// Commands run before each job of the item (`/bin/sh -c`).
    #[serde(default)]
    pub before: Vec<String>,
    /// Commands run after each job of the item.
    #[serde(default)]
    pub after: Vec<String>,
}

/// A protected item as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemInfo {
    /// Item name, unique per device.
    pub name: String,
    /// Paths.
    pub paths: Vec<String>,
    /// Exclude globs.
    pub excludes: Vec<String>,
    /// Target vault.
    pub vault: VaultId,
    /// Last change, ms since the epoch.
    pub updated_at: u64,
    /// Commands run before each job of the item.
    #[serde(default)]
    pub before: Vec<String>,
    /// Commands run after each job of the item.
    #[serde(default)]
    pub after: Vec<String>,
}

/// The kind of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Backup.
    Backup,
    /// Restore.
    Restore,
    /// Check.
    Check,
    /// Forget and prune.
    Prune,
    /// A device logged in (an audit record; written by the server).
    Login,
    /// A retention pass: forget by the vault's or item's policy, then prune.
    Retention,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Succeeded.
    Succeeded,
    /// Succeeded with warnings (e.g. unreadable files left out). Older
    /// clients wrote `warnings`.
    #[serde(alias = "warnings")]
    Warning,
    /// Failed (a before command, the backup itself, the network…). Older
    /// clients wrote `failed`.
    #[serde(alias = "failed")]
    Error,
    /// Cancelled.
    Cancelled,
    /// Ended by its schedule's time limit.
    Timeout,
    /// Failed because the vault is over its quota.
    Quota,
    /// Its scheduled time passed while the device's daemon was not running.
    Missed,
    /// Its schedule fired while the previous job of the schedule still ran.
    SkippedAlreadyRunning,
    /// Its device stopped reporting; ended by the cluster (a device cannot
    /// report this status).
    Abandoned,
}

/// `POST /api/v1/jobs`: a job starts on the asking device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StartJob {
    /// Job id, chosen by the client (a retry reuses it).
    pub id: JobId,
    /// What kind.
    pub kind: JobKind,
    /// The vault it works on.
    pub vault: Option<VaultId>,
    /// The protected item it runs for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The schedule that started it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

/// `POST /api/v1/jobs/{id}/finish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishJob {
    /// How it ended.
    pub status: JobStatus,
    /// Files processed.
    pub files: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Error text when it failed.
    pub error: Option<String>,
    /// Output of before/after commands and warnings.
    #[serde(default)]
    pub log: String,
}

/// A job-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    /// Job id.
    pub id: JobId,
    /// Account.
    pub account: AccountId,
    /// Account name.
    pub user: String,
    /// Device.
    pub device: DeviceId,
    /// Device name.
    pub device_name: String,
    /// Vault, if any.
    pub vault: Option<VaultId>,
    /// Kind.
    pub kind: JobKind,
    /// Start, ms since the epoch.
    pub started_at: u64,
    /// End, if finished.
    pub finished_at: Option<u64>,
    /// Duration in ms, if finished.
    pub duration_ms: Option<u64>,
    /// Status, if finished.
    pub status: Option<JobStatus>,
    /// Files processed.
    pub files: u64,
    /// Bytes processed.
    pub bytes: u64,
    /// Error text.
    pub error: Option<String>,
    /// Output and messages.
    pub log: String,
    /// The protected item it ran for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The schedule that started it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Its device's last report (start or heartbeat), ms since the epoch.
    #[serde(default)]
    pub last_seen: u64,
    /// Whether it was ended `abandoned` and then reported again (a revived
    /// job never commits a snapshot).
    #[serde(default)]
    pub revived: bool,
    /// Who dispatched it to the device (remote control), if someone did:
    /// `operator NAME`, `admin token of node N` or `device ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched_by: Option<String>,
}

impl JobInfo {
    /// The status as users see it: the end status, or `running` /
    /// `revived` for an unfinished job.
    pub fn status_name(&self) -> &'static str {
        match self.status {
            Some(s) => s.name(),
            None if self.revived => "revived",
            None => "running",
        }
    }
}

impl JobStatus {
    /// Every status, for filters and metrics labels.
    pub const ALL: [JobStatus; 9] = [
        JobStatus::Succeeded,
        JobStatus::Warning,
        JobStatus::Error,
        JobStatus::Cancelled,
        JobStatus::Timeout,
        JobStatus::Quota,
        JobStatus::Missed,
        JobStatus::SkippedAlreadyRunning,
        JobStatus::Abandoned,
    ];

    /// The wire and display name (`succeeded`, `skipped_already_running`…).
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Warning => "warning",
            JobStatus::Error => "error",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Timeout => "timeout",
            JobStatus::Quota => "quota",
            JobStatus::Missed => "missed",
            JobStatus::SkippedAlreadyRunning => "skipped_already_running",
            JobStatus::Abandoned => "abandoned",
        }
    }
}

impl JobKind {
    /// Every kind, for metrics labels.
    pub const ALL: [JobKind; 6] = [
        JobKind::Backup,
        JobKind::Restore,
        JobKind::Check,
        JobKind::Prune,
        JobKind::Login,
        JobKind::Retention,
    ];

    /// The wire and display name.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Restore => "restore",
            JobKind::Check => "check",
            JobKind::Prune => "prune",
            JobKind::Login => "login",
            JobKind::Retention => "retention",
        }
    }
}

/// `POST /api/v1/jobs/record`: a job of the asking device that started and
/// ended at once: one that never ran (`missed`, `skipped_already_running`)
/// or one recorded after the fact (it could not start while the cluster was
/// unreachable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordJob {
    /// Job id, chosen by the client (a retry reuses it).
    pub id: JobId,
    /// What kind.
    pub kind: JobKind,
    /// The vault it was for.
    pub vault: Option<VaultId>,
    /// The protected item, if any.
    #[serde(default)]
    pub item: Option<String>,
    /// The schedule, if any.
    #[serde(default)]
    pub schedule: Option<String>,
    /// How it ended.
    pub status: JobStatus,
    /// Messages.
    #[serde(default)]
    pub log: String,
    /// When it was due or started, ms since the epoch.
    pub started_at: u64,
}

/// `PUT /api/v1/vaults/{id}/commands`: the vault's before/after commands,
/// shared by the account's devices (empty lists clear them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VaultCommands {
    /// Run before each job on the vault.
    #[serde(default)]
    pub before: Vec<String>,
    /// Run after each job on the vault.
    #[serde(default)]
    pub after: Vec<String>,
}

/// `PUT /api/v1/schedules/{name}`: a schedule of the asking device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutSchedule {
    /// The item it backs up (an item of the device).
    pub item: String,
    /// The vault, if not the item's.
    #[serde(default)]
    pub vault: Option<VaultId>,
    /// When it runs (`daily 02:00`, `every 6h`…; the client's grammar).
    pub spec: String,
    /// Most random delay before each run, seconds.
    #[serde(default)]
    pub random_delay_s: u32,
    /// Longest a run may take, seconds.
    #[serde(default)]
    pub timeout_s: Option<u32>,
    /// Commands run before each run.
    #[serde(default)]
    pub before: Vec<String>,
    /// Commands run after each run.
    #[serde(default)]
    pub after: Vec<String>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleInfo {
    /// Name, unique per device.
    pub name: String,
    /// As in [`PutSchedule`].
    pub item: String,
    /// As in [`PutSchedule`].
    pub vault: Option<VaultId>,
    /// As in [`PutSchedule`].
    pub spec: String,
    /// As in [`PutSchedule`].
    pub random_delay_s: u32,
    /// As in [`PutSchedule`].
    pub timeout_s: Option<u32>,
    /// As in [`PutSchedule`].
    pub before: Vec<String>,
    /// As in [`PutSchedule`].
    pub after: Vec<String>,
    /// Origin of periodic (`every …`) schedules, ms since the epoch.
    pub anchor: u64,
    /// Last change, ms since the epoch.
    pub updated_at: u64,
}

/// A calendar period of a retention range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetentionPeriod {
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// An ISO week.
    Week,
    /// A month.
    Month,
    /// A year.
    Year,
}

/// One range of a retention policy (Comet's range types).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RetentionRange {
    /// Keep every snapshot.
    Everything,
    /// Keep the newest `count`.
    Last {
        /// How many.
        count: u32,
    },
    /// Keep those younger than `secs`.
    NewerThan {
        /// Age bound, seconds.
        secs: u64,
    },
    /// Keep those taken since `at` (ms since the epoch).
    Since {
        /// The time.
        at: u64,
    },
    /// The first snapshot of each of the last `count` periods.
    FirstOf {
        /// The period.
        period: RetentionPeriod,
        /// How many periods back.
        count: u32,
    },
    /// The newest snapshot of each period, for the `count` most recent
    /// periods that have one.
    OnePer {
        /// The period.
        period: RetentionPeriod,
        /// How many periods.
        count: u32,
    },
}

/// A retention policy: the union of its ranges (none keeps everything).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPolicy {
    /// The ranges.
    pub ranges: Vec<RetentionRange>,
    /// How often the daemon prunes after applying it, seconds.
    #[serde(default)]
    pub prune_every_s: Option<u32>,
}

/// `PUT /api/v1/vaults/{id}/retention`, `POST …/retention/clear`: the
/// vault's default policy (`item: None`) or the asking device's override
/// for one of its items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PutRetention {
    /// The item of the asking device, for an override.
    #[serde(default)]
    pub item: Option<String>,
    /// The policy (ignored when clearing).
    #[serde(default)]
    pub policy: RetentionPolicy,
}

/// `GET /api/v1/vaults/{id}/retention`: the vault's default policy and the
/// asking device's overrides on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionInfo {
    /// The vault's default, if set (none keeps everything).
    pub default: Option<RetentionPolicy>,
    /// Overrides for the asking device's items, by item name.
    pub items: std::collections::BTreeMap<String, RetentionPolicy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_hex_in_json() {
        let k = Kdf {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 1,
            salt: vec![0xab, 0x01],
        };
        let json = serde_json::to_string(&k).expect("encode");
        assert!(json.contains("\"salt\":\"ab01\""), "{json}");
        assert_eq!(serde_json::from_str::<Kdf>(&json).expect("decode"), k);
    }

    #[test]
    fn enums_are_snake_case() {
        let json = serde_json::to_string(&JobKind::Backup).expect("encode");
        assert_eq!(json, "\"backup\"");
        assert!(serde_json::from_str::<JobStatus>("\"nonsense\"").is_err());
    }
}
