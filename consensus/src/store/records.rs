//! The per-record layout of the `state` column family.
//!
//! Why per record and not one blob: the state grows with every backup (one
//! snapshot record each) and is read and written on every apply. Writing it
//! as one value would make each applied event cost O(state) in encoding and
//! disk writes. Instead every record is its own key, and applying a request
//! rewrites only the records it can touch ([`touched`], computed from the
//! state *before* the request, so cascades such as "deleting a vault drops
//! its snapshot records" are included), plus `last_applied` and membership —
//! all in the one synced `WriteBatch` of that apply.
//!
//! | key | value (format byte ‖ bincode) |
//! |---|---|
//! | `A` ‖ account id (16) | [`Account`](crate::state::Account) |
//! | `D` ‖ device id (16) | [`Device`](crate::state::Device) |
//! | `V` ‖ vault id (16) | [`Vault`](crate::state::Vault) |
//! | `T` ‖ tier name (UTF-8) | [`Tier`](crate::state::Tier) |
//! | `S` ‖ snapshot id (16) | [`SnapshotRecord`] |
//! | `J` ‖ job id (16) | [`Job`](crate::state::Job) |
//! | `N` ‖ node id (u64 BE) | [`StorageNode`](crate::state::StorageNode) |
//! | `I` ‖ device id (16) ‖ item name (UTF-8) | [`Item`](crate::state::Item) |
//! | `C` ‖ device id (16) ‖ schedule name (UTF-8) | [`Schedule`](crate::state::Schedule) |
//! | `P` ‖ vault id (16) ‖ device id (16) ‖ item name (UTF-8) | item retention override ([`RetentionPolicy`](crate::event::RetentionPolicy)) |
//! | `R` ‖ request id (16) | `(seq, Outcome)` of the dedup table |
//! | `O` ‖ operator name (UTF-8) | [`Operator`](crate::console::Operator), with its sessions (format 6) |
//! | `G` ‖ organization name (UTF-8) | [`Org`](crate::console::Org) (format 6) |
//! | `W` ‖ account id (16) | the account's organization name, when not the default one (format 6) |
//! | `U` ‖ sequence (u64 BE) | [`AuditEntry`](crate::console::AuditEntry) (format 6) |
//! | `X` ‖ account id (16) | [`Disabled`](crate::state::Disabled): the account is disabled (format 7) |
//! | `Z` ‖ operator name (UTF-8) | the last TOTP step (`u64`) a login of the operator used (format 7) |
//! | `m/singletons` | lease, last fencing token, dedup table header |
//! | `m/server_secret` | the server secret (`Vec<u8>`), once set |
//! | `m/license` | the cluster's [`License`](crate::state::License), once set (format 4) |
//! | `m/topology` | the [`Topology`](crate::state::Topology): node roles and labels, tier labels (format 5) |
//! | `m/last_applied`, `m/membership` | the state machine's log position |
//!
//! The account-name index is not stored; it is rebuilt from the accounts
//! when loading.
//!
//! Records are written with the current [`STATE_FORMAT`] (7; format 4
//! only added the `m/license` record, format 5 the `m/topology` record,
//! format 6 the `O`, `G`, `W` and `U` records, format 7 the `X` and `Z`
//! records). Format 2
//! added fields to devices, tiers and job ends, format 3 to items, vaults
//! and jobs (and the `C` and `P` records); their older records are still
//! read, through the legacy layouts in `state/v1.rs` and `state/v2.rs`
//! (each record type's layout chain, see [`codec`](crate::codec)), and
//! rewritten as format 3 the next time an apply touches them. Every other
//! record has the same layout in every format.

use cairn_proto::{SnapshotId, VaultId};
use rocksdb::{ColumnFamily, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::Db;
use crate::apply::{audit_evicted, jobs_maybe_changed, Outcome};
use crate::codec::{self, STATE_FORMAT};
use crate::error::{ConsensusError, Result};
use crate::event::{Event, Lease, Request, SnapshotRecord};
use crate::ids::{AccountId, DeviceId, FixedId, JobId, RequestId};
use crate::state::{Dependents, Device, Item, Job, Layout, RequestLog, State, Tier, Vault};

pub(crate) const KEY_LAST_APPLIED: &[u8] = b"m/last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_SINGLETONS: &[u8] = b"m/singletons";
const KEY_SERVER_SECRET: &[u8] = b"m/server_secret";
const KEY_LICENSE: &[u8] = b"m/license";
const KEY_TOPOLOGY: &[u8] = b"m/topology";

/// One stored record of the state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RecordKey {
    Account(AccountId),
    Device(DeviceId),
    Vault(VaultId),
    Tier(String),
    Snapshot(SnapshotId),
    Job(JobId),
    StorageNode(u64),
    Request(RequestId),
    Singletons,
    Item(DeviceId, String),
    ServerSecret,
    Schedule(DeviceId, String),
    ItemRetention(VaultId, DeviceId, String),
    License,
    Topology,
    Operator(String),
    Org(String),
    AccountOrg(AccountId),
    Audit(u64),
    Disabled(AccountId),
    TotpStep(String),
}

impl RecordKey {
    fn encode(&self) -> Vec<u8> {
        fn with(prefix: u8, rest: &[u8]) -> Vec<u8> {
            let mut k = Vec::with_capacity(1 + rest.len());
            k.push(prefix);
            k.extend_from_slice(rest);
            k
        }
        match self {
            RecordKey::Account(id) => with(b'A', id.bytes()),
            RecordKey::Device(id) => with(b'D', id.bytes()),
            RecordKey::Vault(id) => with(b'V', id.bytes()),
            RecordKey::Tier(name) => with(b'T', name.as_bytes()),
            RecordKey::Snapshot(id) => with(b'S', id.bytes()),
            RecordKey::Job(id) => with(b'J', id.bytes()),
            RecordKey::StorageNode(id) => with(b'N', &id.to_be_bytes()),
            RecordKey::Request(id) => with(b'R', id.bytes()),
            RecordKey::Singletons => KEY_SINGLETONS.to_vec(),
            RecordKey::Item(device, name) => {
                let mut k = with(b'I', device.bytes());
                k.extend_from_slice(name.as_bytes());
                k
            }
            RecordKey::ServerSecret => KEY_SERVER_SECRET.to_vec(),
            RecordKey::License => KEY_LICENSE.to_vec(),
            RecordKey::Topology => KEY_TOPOLOGY.to_vec(),
            RecordKey::Operator(name) => with(b'O', name.as_bytes()),
            RecordKey::Org(name) => with(b'G', name.as_bytes()),
            RecordKey::AccountOrg(id) => with(b'W', id.bytes()),
            RecordKey::Audit(seq) => with(b'U', &seq.to_be_bytes()),
            RecordKey::Disabled(id) => with(b'X', id.bytes()),
            RecordKey::TotpStep(name) => with(b'Z', name.as_bytes()),
            RecordKey::Schedule(device, name) => {
                let mut k = with(b'C', device.bytes());
                k.extend_from_slice(name.as_bytes());
                k
            }
            RecordKey::ItemRetention(vault, device, name) => {
                let mut k = with(b'P', vault.bytes());
                k.extend_from_slice(device.bytes());
                k.extend_from_slice(name.as_bytes());
                k
            }
        }
    }

    /// The keys of the records in `deps`.
    fn of_dependents(deps: Dependents) -> impl Iterator<Item = RecordKey> {
        let items = deps.items.into_iter().map(|(d, n)| RecordKey::Item(d, n));
        let schedules = deps
            .schedules
            .into_iter()
            .map(|(d, n)| RecordKey::Schedule(d, n));
        let overrides = deps
            .overrides
            .into_iter()
            .map(|(v, d, n)| RecordKey::ItemRetention(v, d, n));
        items.chain(schedules).chain(overrides)
    }
}

/// Small values that are not keyed records.
#[derive(Debug, Serialize, Deserialize)]
struct Singletons {
    lease: Option<Lease>,
    last_fencing_token: u64,
    requests_capacity: u32,
    requests_next_seq: u64,
}

/// The records that applying `request` (not a batch: see
/// [`crate::apply::apply_entry`]) to `state` may change. A superset is
/// harmless (an unchanged record is rewritten); a missing key would lose a
/// change on restart, which the store's property test guards against.
pub(crate) fn touched(state: &State, request: &Request) -> Vec<RecordKey> {
    use RecordKey as K;
    if state.requests.get(&request.request_id).is_some() {
        // A repeated request applies nothing.
        return Vec::new();
    }
    let mut keys = vec![K::Request(request.request_id), K::Singletons];
    keys.extend(state.requests.would_evict().map(K::Request));
    event_touched(state, &request.event, &mut keys);
    keys
}

/// The records applying `event` to `state` may change, added to `keys`.
fn event_touched(state: &State, event: &Event, keys: &mut Vec<RecordKey>) {
    use RecordKey as K;
    match event {
        // Nested (in an audit entry): rejected, it changes nothing. A batch
        // at the top of an entry is expanded by the state machine, which
        // asks about each of its requests against the state the ones
        // before it left.
        Event::Batch(_) => {}
        Event::AccountCreated { account, .. } => keys.push(K::Account(*account)),
        Event::AccountCreatedInOrg { account, .. } => {
            keys.push(K::Account(*account));
            keys.push(K::AccountOrg(*account));
        }
        Event::Audited { event, .. } => {
            event_touched(state, event, keys);
            keys.push(K::Audit(state.next_audit_seq()));
            keys.extend(audit_evicted(state).map(K::Audit));
        }
        Event::OperatorCreated { name, .. }
        | Event::OperatorSessionOpened { operator: name, .. }
        | Event::OperatorSessionRevoked { operator: name, .. }
        | Event::OperatorTotpSet { operator: name, .. } => keys.push(K::Operator(name.clone())),
        Event::OperatorRemoved { name, .. }
        | Event::OperatorSessionStarted { operator: name, .. } => {
            keys.push(K::Operator(name.clone()));
            keys.push(K::TotpStep(name.clone()));
        }
        Event::AccountDisabled { account, .. } | Event::AccountEnabled { account, .. } => {
            keys.push(K::Disabled(*account))
        }
        Event::OrgConfigured { name, .. } => keys.push(K::Org(name.clone())),
        Event::AccountPasswordChanged {
            account,
            rewrapped_keys,
            ..
        } => {
            keys.push(K::Account(*account));
            keys.extend(rewrapped_keys.keys().map(|v| K::Vault(*v)));
            keys.extend(state.devices_of(*account).map(|d| K::Device(d.id)));
        }
        Event::AccountDeleted { account, .. } => {
            keys.push(K::Account(*account));
            keys.push(K::AccountOrg(*account));
            keys.push(K::Disabled(*account));
            keys.extend(state.devices_of(*account).map(|d| K::Device(d.id)));
            keys.extend(K::of_dependents(state.account_dependents(*account)));
        }
        Event::DeviceRegistered { device, .. } | Event::DeviceRenamed { device, .. } => {
            keys.push(K::Device(*device))
        }
        Event::DeviceRevoked { device, .. } => {
            keys.push(K::Device(*device));
            keys.extend(K::of_dependents(state.device_dependents(*device)));
        }
        Event::VaultCreated { vault, .. } | Event::VaultCommandsSet { vault, .. } => {
            keys.push(K::Vault(*vault))
        }
        Event::VaultDeleted { vault, .. } => {
            keys.push(K::Vault(*vault));
            keys.extend(state.snapshots_of(*vault).map(|s| K::Snapshot(s.id)));
            keys.extend(K::of_dependents(state.vault_dependents(*vault)));
        }
        Event::TierDefined { name, .. }
        | Event::TierConfigured { name, .. }
        | Event::TierPooled { name, .. } => {
            keys.push(K::Tier(name.clone()));
            keys.push(K::Topology);
        }
        Event::NodeProfileSet { .. } => keys.push(K::Topology),
        Event::SnapshotCommitted { snapshot } | Event::SnapshotCommittedByJob { snapshot, .. } => {
            keys.push(K::Snapshot(snapshot.id))
        }
        Event::SnapshotForgotten { snapshot, .. } => keys.push(K::Snapshot(*snapshot)),
        Event::JobStarted { job, device, .. }
        | Event::JobBegun { job, device, .. }
        | Event::JobRecorded { job, device, .. } => {
            keys.push(K::Job(*job));
            if let Some(d) = state.devices.get(device) {
                keys.extend(jobs_maybe_changed(state, d.account).into_iter().map(K::Job));
            }
        }
        Event::JobFinished { job, .. }
        | Event::JobCompleted { job, .. }
        | Event::JobHeartbeat { job, .. } => {
            keys.push(K::Job(*job));
            if let Some(j) = state.jobs.get(job) {
                keys.extend(jobs_maybe_changed(state, j.account).into_iter().map(K::Job));
            }
        }
        Event::StorageNodeJoined { node, .. }
        | Event::StorageNodeDrained { node, .. }
        | Event::StorageNodeRemoved { node, .. } => keys.push(K::StorageNode(*node)),
        Event::LeaseGranted { .. }
        | Event::LeaseRenewed { .. }
        | Event::LeaseExpired { .. }
        | Event::LicenseConfigured { .. } => keys.push(K::License),
        Event::DeviceLoggedIn {
            device,
            account,
            job,
            ..
        } => {
            keys.push(K::Device(*device));
            keys.push(K::Job(*job));
            keys.extend(jobs_maybe_changed(state, *account).into_iter().map(K::Job));
        }
        Event::ItemSet { device, name, .. } | Event::ItemConfigured { device, name, .. } => {
            keys.push(K::Item(*device, name.clone()))
        }
        Event::ItemRemoved { device, name, .. } => {
            keys.push(K::Item(*device, name.clone()));
            keys.extend(K::of_dependents(state.item_dependents(*device, name)));
        }
        Event::ServerSecretSet { .. } => keys.push(K::ServerSecret),
        Event::ScheduleSet { device, name, .. } | Event::ScheduleRemoved { device, name, .. } => {
            keys.push(K::Schedule(*device, name.clone()))
        }
        Event::RetentionSet { vault, item, .. } | Event::RetentionCleared { vault, item, .. } => {
            match item {
                Some((device, name)) => keys.push(K::ItemRetention(*vault, *device, name.clone())),
                None => keys.push(K::Vault(*vault)),
            }
        }
        Event::JobsAbandoned { jobs, .. } => {
            keys.extend(jobs.iter().map(|j| K::Job(*j)));
            let accounts: std::collections::BTreeSet<AccountId> = jobs
                .iter()
                .filter_map(|j| state.jobs.get(j).map(|j| j.account))
                .collect();
            for account in accounts {
                keys.extend(jobs_maybe_changed(state, account).into_iter().map(K::Job));
            }
        }
    }
}

fn put_or_delete<T: Serialize>(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    key: &RecordKey,
    value: Option<&T>,
) -> Result<()> {
    match value {
        Some(v) => batch.put_cf(
            cf,
            key.encode(),
            codec::encode("state record", STATE_FORMAT, v)?,
        ),
        None => batch.delete_cf(cf, key.encode()),
    }
    Ok(())
}

/// Stages the current value of `key` in `state` (or its deletion).
pub(crate) fn stage(
    batch: &mut WriteBatch,
    cf: &ColumnFamily,
    state: &State,
    key: &RecordKey,
) -> Result<()> {
    use RecordKey as K;
    match key {
        K::Account(id) => put_or_delete(batch, cf, key, state.accounts.get(id)),
        K::Device(id) => put_or_delete(batch, cf, key, state.devices.get(id)),
        K::Vault(id) => put_or_delete(batch, cf, key, state.vaults.get(id)),
        K::Tier(name) => put_or_delete(batch, cf, key, state.tiers.get(name)),
        K::Snapshot(id) => put_or_delete(batch, cf, key, state.snapshots.get(id)),
        K::Job(id) => put_or_delete(batch, cf, key, state.jobs.get(id)),
        K::StorageNode(id) => put_or_delete(batch, cf, key, state.storage_nodes.get(id)),
        K::Request(id) => put_or_delete(batch, cf, key, state.requests.entry(id)),
        K::Singletons => {
            let (requests_capacity, requests_next_seq) = state.requests.header();
            let s = Singletons {
                lease: state.lease.clone(),
                last_fencing_token: state.last_fencing_token,
                requests_capacity,
                requests_next_seq,
            };
            put_or_delete(batch, cf, key, Some(&s))
        }
        K::Item(device, name) => {
            put_or_delete(batch, cf, key, state.items.get(&(*device, name.clone())))
        }
        K::ServerSecret => put_or_delete(batch, cf, key, state.server_secret.as_ref()),
        K::License => put_or_delete(batch, cf, key, state.license.as_ref()),
        K::Topology => {
            let empty = state.topology == crate::state::Topology::default();
            put_or_delete(batch, cf, key, (!empty).then_some(&state.topology))
        }
        K::Operator(name) => put_or_delete(batch, cf, key, state.operators.get(name)),
        K::Org(name) => put_or_delete(batch, cf, key, state.orgs.get(name)),
        K::AccountOrg(id) => put_or_delete(batch, cf, key, state.account_orgs.get(id)),
        K::Audit(seq) => put_or_delete(batch, cf, key, state.audit.get(seq)),
        K::Disabled(id) => put_or_delete(batch, cf, key, state.disabled.get(id)),
        K::TotpStep(name) => put_or_delete(batch, cf, key, state.totp_steps.get(name)),
        K::Schedule(device, name) => put_or_delete(
            batch,
            cf,
            key,
            state.schedules.get(&(*device, name.clone())),
        ),
        K::ItemRetention(vault, device, name) => put_or_delete(
            batch,
            cf,
            key,
            state.item_retention.get(&(*vault, *device, name.clone())),
        ),
    }
}

/// Stages the whole `state`, replacing every record (snapshot install).
pub(crate) fn stage_all(batch: &mut WriteBatch, cf: &ColumnFamily, state: &State) -> Result<()> {
    use RecordKey as K;
    batch.delete_range_cf(cf, [0u8].as_slice(), [0xffu8].as_slice());
    let mut keys = vec![K::Singletons];
    keys.extend(state.accounts.keys().map(|k| K::Account(*k)));
    keys.extend(state.devices.keys().map(|k| K::Device(*k)));
    keys.extend(state.vaults.keys().map(|k| K::Vault(*k)));
    keys.extend(state.tiers.keys().map(|k| K::Tier(k.clone())));
    keys.extend(state.snapshots.keys().map(|k| K::Snapshot(*k)));
    keys.extend(state.jobs.keys().map(|k| K::Job(*k)));
    keys.extend(state.storage_nodes.keys().map(|k| K::StorageNode(*k)));
    keys.extend(state.requests.entries().map(|(k, _)| K::Request(*k)));
    keys.extend(state.items.keys().map(|(d, n)| K::Item(*d, n.clone())));
    keys.push(K::ServerSecret);
    keys.push(K::License);
    keys.push(K::Topology);
    keys.extend(
        state
            .schedules
            .keys()
            .map(|(d, n)| K::Schedule(*d, n.clone())),
    );
    keys.extend(
        state
            .item_retention
            .keys()
            .map(|(v, d, n)| K::ItemRetention(*v, *d, n.clone())),
    );
    keys.extend(state.operators.keys().map(|n| K::Operator(n.clone())));
    keys.extend(state.orgs.keys().map(|n| K::Org(n.clone())));
    keys.extend(state.account_orgs.keys().map(|a| K::AccountOrg(*a)));
    keys.extend(state.audit.keys().map(|s| K::Audit(*s)));
    keys.extend(state.disabled.keys().map(|a| K::Disabled(*a)));
    keys.extend(state.totp_steps.keys().map(|n| K::TotpStep(n.clone())));
    for key in &keys {
        stage(batch, cf, state, key)?;
    }
    Ok(())
}

fn id16<T: FixedId>(what: &'static str, key: &[u8]) -> Result<T> {
    T::from_bytes(key.get(1..).unwrap_or_default()).ok_or_else(|| ConsensusError::Corrupt {
        what,
        detail: format!("key of {} bytes", key.len()),
    })
}

/// The big-endian `u64` that follows the prefix byte.
fn u64_key(what: &'static str, key: &[u8]) -> Result<u64> {
    key.get(1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| ConsensusError::Corrupt {
            what,
            detail: format!("{} bytes", key.len()),
        })
}

/// The 16-byte id that follows the prefix byte of a longer key.
fn id16_prefix<T: FixedId>(what: &'static str, key: &[u8]) -> Result<T> {
    T::from_bytes(key.get(1..17).unwrap_or_default()).ok_or_else(|| ConsensusError::Corrupt {
        what,
        detail: format!("key of {} bytes", key.len()),
    })
}

fn dec<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<T> {
    codec::decode("state record", STATE_FORMAT, value)
}

/// Decodes a record whose layout changed (see `state::Layout`).
fn dec_migrating<T: Layout>(value: &[u8]) -> Result<T> {
    codec::decode_migrating::<T>("state record", STATE_FORMAT, value)
}

/// The UTF-8 name that ends a key, from byte `from` on.
fn name_at(what: &'static str, key: &[u8], from: usize) -> Result<String> {
    std::str::from_utf8(key.get(from..).unwrap_or_default())
        .map(str::to_owned)
        .map_err(|e| ConsensusError::Corrupt {
            what,
            detail: e.to_string(),
        })
}

/// Loads the state stored by [`stage`] and [`stage_all`].
pub(crate) fn load(db: &Db, cf_name: &'static str) -> Result<State> {
    db.check()?;
    let cf = db.cf(cf_name)?;
    let mut state = State::default();
    let mut requests: Vec<(RequestId, u64, Outcome)> = Vec::new();
    let mut header = None;
    for item in db.raw().iterator_cf(cf, IteratorMode::Start) {
        let (key, value) = item.map_err(|source| ConsensusError::Db {
            op: "load state",
            source,
        })?;
        match key.first() {
            Some(b'A') => {
                let id: AccountId = id16("account key", &key)?;
                state.accounts.insert(id, dec(&value)?);
            }
            Some(b'D') => {
                let id: DeviceId = id16("device key", &key)?;
                state.devices.insert(id, dec_migrating::<Device>(&value)?);
            }
            Some(b'V') => {
                let id: VaultId = id16("vault key", &key)?;
                state.vaults.insert(id, dec_migrating::<Vault>(&value)?);
            }
            Some(b'T') => {
                let name = name_at("tier key", &key, 1)?;
                state.tiers.insert(name, dec_migrating::<Tier>(&value)?);
            }
            Some(b'S') => {
                let id: SnapshotId = id16("snapshot key", &key)?;
                let record: SnapshotRecord = dec(&value)?;
                state.snapshots.insert(id, record);
            }
            Some(b'J') => {
                let id: JobId = id16("job key", &key)?;
                state.jobs.insert(id, dec_migrating::<Job>(&value)?);
            }
            Some(b'N') => {
                let id = u64_key("storage node key", &key)?;
                state.storage_nodes.insert(id, dec(&value)?);
            }
            Some(b'R') => {
                let id: RequestId = id16("request key", &key)?;
                let (seq, outcome): (u64, Outcome) = dec(&value)?;
                requests.push((id, seq, outcome));
            }
            Some(b'I') => {
                let device: DeviceId = id16_prefix("item key", &key)?;
                let name = name_at("item key", &key, 17)?;
                state
                    .items
                    .insert((device, name), dec_migrating::<Item>(&value)?);
            }
            Some(b'C') => {
                let device: DeviceId = id16_prefix("schedule key", &key)?;
                let name = name_at("schedule key", &key, 17)?;
                state.schedules.insert((device, name), dec(&value)?);
            }
            Some(b'P') => {
                let vault: VaultId = id16_prefix("retention key", &key)?;
                let device = key
                    .get(17..33)
                    .and_then(DeviceId::from_bytes)
                    .ok_or_else(|| ConsensusError::Corrupt {
                        what: "retention key",
                        detail: format!("key of {} bytes", key.len()),
                    })?;
                let name = name_at("retention key", &key, 33)?;
                state
                    .item_retention
                    .insert((vault, device, name), dec(&value)?);
            }
            Some(b'O') => {
                let name = name_at("operator key", &key, 1)?;
                state.operators.insert(name, dec(&value)?);
            }
            Some(b'G') => {
                let name = name_at("organization key", &key, 1)?;
                state.orgs.insert(name, dec(&value)?);
            }
            Some(b'W') => {
                let id: AccountId = id16("account organization key", &key)?;
                state.account_orgs.insert(id, dec(&value)?);
            }
            Some(b'U') => {
                let seq = u64_key("audit key", &key)?;
                state.audit.insert(seq, dec(&value)?);
            }
            Some(b'X') => {
                let id: AccountId = id16("disabled account key", &key)?;
                state.disabled.insert(id, dec(&value)?);
            }
            Some(b'Z') => {
                let name = name_at("TOTP step key", &key, 1)?;
                state.totp_steps.insert(name, dec(&value)?);
            }
            Some(b'm') if &*key == KEY_SINGLETONS => header = Some(dec::<Singletons>(&value)?),
            Some(b'm') if &*key == KEY_SERVER_SECRET => {
                state.server_secret = Some(dec::<Vec<u8>>(&value)?);
            }
            Some(b'm') if &*key == KEY_LICENSE => state.license = Some(dec(&value)?),
            Some(b'm') if &*key == KEY_TOPOLOGY => state.topology = dec(&value)?,
            Some(b'm') if &*key == KEY_LAST_APPLIED || &*key == KEY_MEMBERSHIP => {}
            _ => {
                return Err(ConsensusError::Corrupt {
                    what: "state key",
                    detail: format!("unknown key {}", String::from_utf8_lossy(&key)),
                })
            }
        }
    }
    let account_names: crate::state::Map<String, AccountId> = state
        .accounts
        .values()
        .map(|a| (a.name.clone(), a.id))
        .collect();
    state.account_names = account_names;
    if let Some(h) = header {
        state.lease = h.lease;
        state.last_fencing_token = h.last_fencing_token;
        state.requests = RequestLog::from_parts(h.requests_capacity, h.requests_next_seq, requests);
    } else if !requests.is_empty() {
        return Err(ConsensusError::Corrupt {
            what: "state",
            detail: "request log without header".into(),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::apply;
    use crate::event::{JobKind, JobStatus};
    use crate::state::{v1, v2};
    use crate::store::CF_STATE;
    use crate::testgen::{acc, dev, item_set, job, requests, t, vault};

    /// Stores `state` in a fresh database and returns it with a batch that
    /// relabels every record as `format`: an older build's database, once
    /// the caller adds the records whose layout differs in that format.
    fn stored_relabelled(state: &State, format: u8) -> (tempfile::TempDir, Db, WriteBatch) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let cf = db.cf(CF_STATE).expect("cf");
        let mut batch = WriteBatch::default();
        stage_all(&mut batch, cf, state).expect("stage");
        db.write_synced("test", batch).expect("write");
        let mut old = WriteBatch::default();
        for item in db.raw().iterator_cf(cf, IteratorMode::Start) {
            let (key, value) = item.expect("iterate");
            assert_eq!(value.first(), Some(&STATE_FORMAT));
            let mut relabelled = value.to_vec();
            relabelled[0] = format;
            old.put_cf(cf, &key, relabelled);
        }
        (dir, db, old)
    }

    /// `value` encoded behind format byte `format` (an older layout).
    fn encoded_as<T: Serialize>(format: u8, value: &T) -> Vec<u8> {
        codec::encode("old record", format, value).expect("encode")
    }

    /// A database written by a format-1 build (every record behind format
    /// byte 1, devices, tiers, jobs and vaults in their old layout) loads
    /// into the state today's code derives from the same events, and the
    /// next write of a record uses the current format.
    #[test]
    fn format_1_records_load_as_current() {
        let mut state = State::default();
        let events = vec![
            Event::JobStarted {
                job: job(1),
                device: dev(0),
                vault: Some(vault(0)),
                kind: JobKind::Backup,
                at: t(10),
            },
            Event::JobFinished {
                job: job(1),
                device: dev(0),
                status: JobStatus::Succeeded,
                log: "ok".into(),
                at: t(11),
            },
        ];
        for r in requests(events) {
            assert!(apply(&mut state, &r).is_applied());
        }
        let (_dir, db, mut old) = stored_relabelled(&state, 1);
        let cf = db.cf(CF_STATE).expect("cf");
        for d in state.devices.values() {
            let key = RecordKey::Device(d.id).encode();
            old.put_cf(cf, key, encoded_as(1, &v1::Device::from(d)));
        }
        for tier in state.tiers.values() {
            let key = RecordKey::Tier(tier.name.clone()).encode();
            old.put_cf(cf, key, encoded_as(1, &v1::Tier::from(tier)));
        }
        for j in state.jobs.values() {
            let key = RecordKey::Job(j.id).encode();
            old.put_cf(cf, key, encoded_as(1, &v1::Job::from(j)));
        }
        for v in state.vaults.values() {
            let key = RecordKey::Vault(v.id).encode();
            old.put_cf(cf, key, encoded_as(1, &v2::Vault::from(v)));
        }
        db.write_synced("test", old).expect("write");

        let loaded = load(&db, CF_STATE).expect("load");
        assert_eq!(loaded, state);
        let d = &loaded.devices[&dev(0)];
        assert_eq!(d.last_login_at, d.registered_at);
        let end = loaded.jobs[&job(1)].finished.as_ref().expect("finished");
        assert_eq!((end.files, end.bytes, end.error.as_deref()), (0, 0, None));

        let mut next = loaded;
        let rename = Request {
            request_id: RequestId([0xee; 16]),
            event: Event::DeviceRenamed {
                device: dev(0),
                account: acc(0),
                name: "renamed".into(),
                at: t(12),
            },
        };
        let keys = touched(&next, &rename);
        assert!(apply(&mut next, &rename).is_applied());
        let mut batch = WriteBatch::default();
        for key in &keys {
            stage(&mut batch, cf, &next, key).expect("stage");
        }
        db.write_synced("test", batch).expect("write");
        let stored = db
            .get(CF_STATE, &RecordKey::Device(dev(0)).encode())
            .expect("get")
            .expect("device record");
        assert_eq!(stored.first(), Some(&STATE_FORMAT));
        assert_eq!(load(&db, CF_STATE).expect("reload"), next);
    }

    /// Schedules and retention overrides are stored under their own keys,
    /// and the cascades that remove them (item removal, vault deletion,
    /// device revocation) rewrite exactly those keys: applying request by
    /// request, staging what `touched` names, reloads to the applied state.
    #[test]
    fn schedules_and_overrides_persist_through_their_cascades() {
        use crate::event::{RetentionPolicy, RetentionRange};
        let schedule = |name: &str, item: &str| Event::ScheduleSet {
            device: dev(0),
            account: acc(0),
            name: name.into(),
            item: item.into(),
            vault: None,
            spec: "daily".into(),
            random_delay_s: 0,
            timeout_s: None,
            before: Vec::new(),
            after: Vec::new(),
            anchor: t(5),
            at: t(5),
        };
        let retention = |item: &str| Event::RetentionSet {
            account: acc(0),
            vault: vault(0),
            item: Some((dev(0), item.into())),
            policy: RetentionPolicy {
                ranges: vec![RetentionRange::Last(3)],
                prune_every_s: None,
            },
            at: t(6),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open");
        let cf = db.cf(CF_STATE).expect("cf");
        let mut state = State::default();
        let mut next_id = 0u8;
        let check = |reqs: Vec<Request>, state: &mut State| {
            for r in reqs {
                let keys = touched(state, &r);
                assert!(apply(state, &r).is_applied(), "{:?}", r.event);
                let mut batch = WriteBatch::default();
                for key in &keys {
                    stage(&mut batch, cf, state, key).expect("stage");
                }
                db.write_synced("test", batch).expect("write");
            }
            assert_eq!(&load(&db, CF_STATE).expect("load"), state);
        };
        let mut one = |event: Event| {
            next_id += 1;
            vec![Request {
                request_id: RequestId([0xd0 ^ next_id; 16]),
                event,
            }]
        };
        check(
            requests(vec![
                item_set(0, 0, "home", 0),
                item_set(0, 0, "docs", 0),
                schedule("nightly", "home"),
                schedule("docs", "docs"),
                retention("home"),
                retention("docs"),
            ]),
            &mut state,
        );
        assert_eq!(
            (state.schedules().len(), state.item_retention().len()),
            (2, 2)
        );
        let removed = Event::ItemRemoved {
            device: dev(0),
            account: acc(0),
            name: "home".into(),
            at: t(7),
        };
        check(one(removed), &mut state);
        assert_eq!(
            (state.schedules().len(), state.item_retention().len()),
            (1, 1)
        );
        let revoked = Event::DeviceRevoked {
            device: dev(0),
            account: acc(0),
            at: t(8),
        };
        check(one(revoked), &mut state);
        assert!(state.schedules().is_empty());
        let deleted = Event::VaultDeleted {
            vault: vault(0),
            account: acc(0),
            at: t(9),
        };
        check(one(deleted), &mut state);
        assert!(state.items().is_empty() && state.item_retention().is_empty());
    }

    /// A database written by a format-2 build (vaults, items and jobs in
    /// their format-2 layout) loads into the state today's code derives
    /// from the same events: no commands, no retention, jobs last seen at
    /// their start and never revived.
    #[test]
    fn format_2_records_load_as_format_3() {
        let mut state = State::default();
        let events = vec![
            item_set(0, 0, "home", 0),
            Event::JobStarted {
                job: job(1),
                device: dev(0),
                vault: Some(vault(0)),
                kind: JobKind::Backup,
                at: t(10),
            },
        ];
        for r in requests(events) {
            assert!(apply(&mut state, &r).is_applied());
        }
        let (_dir, db, mut old) = stored_relabelled(&state, 2);
        let cf = db.cf(CF_STATE).expect("cf");
        for v in state.vaults.values() {
            old.put_cf(
                cf,
                RecordKey::Vault(v.id).encode(),
                encoded_as(2, &v2::Vault::from(v)),
            );
        }
        for i in state.items.values() {
            let key = RecordKey::Item(i.device, i.name.clone()).encode();
            old.put_cf(cf, key, encoded_as(2, &v2::Item::from(i)));
        }
        for j in state.jobs.values() {
            old.put_cf(
                cf,
                RecordKey::Job(j.id).encode(),
                encoded_as(2, &v2::Job::from(j)),
            );
        }
        db.write_synced("test", old).expect("write");

        let loaded = load(&db, CF_STATE).expect("load");
        assert_eq!(loaded, state);
        let j = &loaded.jobs[&job(1)];
        assert_eq!(
            (j.last_seen, j.revived, j.item.as_deref()),
            (t(10), false, None)
        );
        assert!(loaded
            .vaults
            .values()
            .all(|v| v.retention.is_none() && v.before.is_empty()));
    }
}
