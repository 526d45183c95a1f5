//! JSON bodies of the `/api/v1` admin and cluster endpoints: the contract
//! between `cairnd`'s HTTP API and its operator commands (and the tests),
//! next to the device API ([`crate::api`]). Byte strings are hex.
//!
//! Schemas (`utoipa`) are behind the `openapi` feature, as in
//! [`crate::api`]; the names an admin type shares with a device type are
//! renamed in the document (`AdminKdf`, `AdminTierInfo`).

use serde::{Deserialize, Serialize};

/// `POST /api/v1/admin/users`: create an account.
///
/// The password never reaches the server: the CLI derives the login key
/// with argon2id locally and sends it with the parameters; the server stores
/// only a hash of the login key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateUser {
    /// Login name.
    pub name: String,
    /// argon2id parameters and salt the login key was derived with.
    pub kdf: Kdf,
    /// The login key, hex (32 bytes).
    pub login_key: String,
    /// The account's organization; none: the asking org admin's, or the
    /// default organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// argon2id parameters, salt in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AdminKdf))]
pub struct Kdf {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Salt, hex.
    pub salt: String,
}

/// An account as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// Account id, hex.
    pub id: String,
    /// Login name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Live devices.
    pub devices: u64,
    /// Vaults.
    pub vaults: u64,
    /// Organization.
    #[serde(default)]
    pub org: String,
    /// Set when the account is disabled: the operator's reason (may be
    /// empty). Absent: the account is enabled.
    #[serde(default)]
    pub disabled: Option<String>,
}

/// `POST /api/v1/admin/users/{name}/disable`: refuse the account's logins
/// and tokens (its data and vaults stay) until it is enabled again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisableUser {
    /// Why, shown to the user when a login or token is refused.
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/v1/admin/users/{name}/delete`: delete an account (its
/// devices, items, schedules and jobs go with it; every token stops
/// working).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteUser {
    /// Delete the account's vaults (and their snapshots) first; without
    /// it, an account that owns vaults is refused (`account_has_vaults`).
    #[serde(default)]
    pub delete_vaults: bool,
}

/// `POST /api/v1/admin/tiers`: define (or redefine) a tier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DefineTier {
    /// Tier name.
    pub name: String,
    /// Replica count.
    pub replicas: u8,
    /// Whether devices may request it (default true).
    #[serde(default = "yes")]
    pub requestable: bool,
    /// Per-vault quota in bytes of stored chunks; none is unlimited.
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// What the tier is for, shown to users choosing one.
    #[serde(default)]
    pub description: String,
    /// Storage labels every node holding a copy must carry (a storage
    /// pool, e.g. `["ssd"]`); empty: any storage node.
    #[serde(default)]
    pub labels: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/cluster/join`: ask the cluster to add a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinRequest {
    /// The joining node's id.
    pub node_id: u64,
    /// Its advertised base URL.
    pub addr: String,
    /// The roles it runs (`auth`, `storage`, `cluster`, `downloads`);
    /// empty (an older node) means all. A node without `auth` joins as a
    /// learner and is never promoted to voter.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Its storage labels (with the storage role).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// What a join did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JoinResponse {
    /// Whether the node became a voter (else it stays a learner).
    pub voter: bool,
    /// The leader that handled the join.
    pub leader: u64,
}

/// `GET /api/v1/cluster/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    /// Its Raft role (`Leader`, `Follower`, `Learner`, `Candidate`, `Shutdown`).
    pub role: String,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The leader's advertised URL, if known.
    pub leader_addr: Option<String>,
    /// Current term.
    pub term: u64,
    /// Index of the last applied entry on the answering node.
    pub last_applied: Option<u64>,
    /// Index of the last log entry on the answering node.
    pub last_log_index: Option<u64>,
    /// Last log index covered by the answering node's current snapshot.
    pub snapshot_index: Option<u64>,
    /// Last log index purged from the answering node's log.
    pub purged_index: Option<u64>,
    /// Every member.
    pub members: Vec<Member>,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Storage nodes in the replicated state.
    pub storage_nodes: Vec<StorageNodeInfo>,
    /// Chunks with fewer copies on their owners than their tier asks for,
    /// as the leader's last repair pass counted them; `None` on other nodes
    /// and before the first pass.
    pub under_replicated_chunks: Option<u64>,
    /// The license lease as the answering node sees it (absent from older
    /// nodes' answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<LicenseStatus>,
    /// Labelled tiers that fewer live storage nodes carry the labels of
    /// than they keep copies (backups to them fail until nodes return).
    #[serde(default)]
    pub unsatisfiable_tiers: Vec<String>,
}

/// The license lease in `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseStatus {
    /// `valid`, `grace`, `read_only` or `dev_unlicensed`.
    pub mode: String,
    /// Why the cluster is read-only and what to do; `None` otherwise.
    pub detail: Option<String>,
    /// The serial, redacted (its first characters).
    pub serial: Option<String>,
    /// The license authority's URL.
    pub authority: Option<String>,
    /// The holder: this cluster's id, while it holds the lease.
    pub holder: Option<String>,
    /// The lease's fencing token, while one is held.
    pub fencing_token: Option<u64>,
    /// When the lease runs out (authority clock, ms since the epoch).
    pub expires_at: Option<u64>,
    /// Seconds until the lease ends on this node's view (margin taken off).
    pub lease_remaining_seconds: Option<u64>,
    /// Seconds of grace left once the lease has ended.
    pub grace_remaining_seconds: Option<u64>,
}

/// `POST /api/v1/admin/license`: the cluster's serial and authority, and
/// its cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetLicense {
    /// The serial number.
    pub serial: String,
    /// The license authority's base URL (`https://` off loopback).
    pub authority: String,
    /// How often the leader renews (default: a third of the lease).
    pub renew_seconds: Option<u64>,
    /// How long the cluster keeps working without the authority (default 72 h).
    pub grace_seconds: Option<u64>,
}

/// One member of the Raft cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Advertised URL.
    pub addr: String,
    /// Voter (else learner).
    pub voter: bool,
    /// The highest log index known replicated to it: exact on the leader
    /// (its replication progress), else only known for the answering node.
    pub matched_index: Option<u64>,
    /// The index it has applied, as it reported itself: the server fills it
    /// for itself, `cairnd cluster status` asks every other member.
    pub applied_index: Option<u64>,
    /// The roles it runs, as the replicated state records them.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A storage node as recorded in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageNodeInfo {
    /// Node id.
    pub id: u64,
    /// Address.
    pub addr: String,
    /// `Active`, `Draining` or `Removed`.
    pub status: String,
    /// Chunks it holds, as the leader's last repair pass saw them.
    #[serde(default)]
    pub chunks: Option<u64>,
    /// Bytes of those chunks.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Copies it holds without owning them (left to move away: a draining
    /// node is empty when this reaches 0).
    #[serde(default)]
    pub to_move: Option<u64>,
    /// Its storage labels (the pools it belongs to).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A tier as the admin API shows it (`GET /api/v1/admin/tiers`, and the
/// answer to `POST`): the devices' view of it ([`crate::api::TierInfo`],
/// the same JSON fields) and when it was last defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AdminTierInfo))]
pub struct TierInfo {
    /// The tier as devices see it (flattened into this object).
    #[serde(flatten)]
    pub tier: crate::api::TierInfo,
    /// When it was last defined, ms since the epoch.
    pub defined_at: u64,
    /// Storage labels its copies need (empty: any storage node).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// `POST /api/v1/cluster/remove`: remove a node from the cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoveRequest {
    /// The node to remove.
    pub node_id: u64,
    /// Remove an active storage node without draining it first (it is gone
    /// for good; its copies are rebuilt from the other replicas, and chunks
    /// of single-replica vaults it held are lost).
    #[serde(default)]
    pub force: bool,
}

/// What a removal left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoveResponse {
    /// The removed node.
    pub node_id: u64,
    /// The leader after the change (none while a removed leader steps down).
    pub leader: Option<u64>,
    /// Voters after the change.
    pub voters: Vec<u64>,
    /// Learners after the change.
    pub learners: Vec<u64>,
}

/// `POST /api/v1/cluster/drain`: drain a storage node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainRequest {
    /// The storage node to drain.
    pub node_id: u64,
}

/// What a drain request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainResponse {
    /// The node.
    pub node_id: u64,
    /// Its status now (`Draining`).
    pub status: String,
}

/// `GET /api/v1/admin/jobs` query: which jobs an operator wants to see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct JobsQuery {
    /// Only jobs with this status (`succeeded`, `running`, `revived`,
    /// `warning`, `error`, `timeout`, `quota`, `missed`, `cancelled`,
    /// `skipped_already_running`, `abandoned`).
    pub status: Option<String>,
    /// Only jobs started at or after this time, ms since the epoch.
    pub since_ms: Option<u64>,
    /// Only jobs of this account (by name).
    pub account: Option<String>,
}

/// One overdue schedule (`GET /api/v1/admin/backups/overdue`): its newest
/// successful backup is older than the schedule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverdueBackup {
    /// The account's name.
    pub user: String,
    /// The device that runs the schedule.
    pub device: crate::DeviceId,
    /// The device's name.
    pub device_name: String,
    /// The schedule's name.
    pub schedule: String,
    /// The item it backs up.
    pub item: String,
    /// Its spec (`daily 02:00`…).
    pub spec: String,
    /// The newest successful backup of the item, ms since the epoch.
    pub last_success: Option<u64>,
    /// When a successful backup was due by, ms since the epoch.
    pub due_by: u64,
}

/// An age as operators write it: a whole number and a unit, `s`, `m`,
/// `h`, `d` or `w` (`90s`, `24h`, `7d`), in milliseconds.
///
/// # Errors
///
/// A message naming the accepted form.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let unit = match t.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        Some('w') => 7 * 86_400_000,
        _ => 0,
    };
    t[..t.len().saturating_sub(1)]
        .parse::<u64>()
        .ok()
        .filter(|_| unit > 0)
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| {
            format!("invalid age {text:?}: write a number and s, m, h, d or w (24h, 7d)")
        })
}

#[cfg(test)]
mod age_tests {
    use super::parse_age;

    #[test]
    fn ages_are_a_number_and_a_unit() {
        assert_eq!(parse_age("90s"), Ok(90_000));
        assert_eq!(parse_age("24h"), Ok(86_400_000));
        assert_eq!(parse_age("2w"), Ok(14 * 86_400_000));
        for bad in ["", "h", "1.5h", "3y", "-1d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
