//! Output of the account commands (login, devices, vaults, tiers, items,
//! jobs): tables for people, and the JSON views of records whose `--json`
//! form leaves fields out or adds names. The work is done by
//! `cairn_client::remote::Session`.

use std::collections::HashMap;

use anyhow::Result;
use cairn_client::snapshot::ms_rfc3339;
use cairn_proto::api::{DeviceInfo, ItemInfo, JobInfo, TierInfo, VaultInfo};
use cairn_proto::VaultId;
use jiff::tz::TimeZone;
use serde::Serialize;

use super::output::{table, table_text};
use super::progress::bytes;

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` in local time
/// ([`super::zone`]; `--json` keeps RFC 3339 UTC).
pub fn when(ms: u64) -> String {
    let ts = i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
    ts.map_or_else(|| ms.to_string(), |t| local_in(t, &super::zone::get()))
}

/// An RFC 3339 time (a record's) as `YYYY-MM-DD HH:MM:SS` in local time;
/// text that is no time is shown as it is.
pub fn local(rfc3339: &str) -> String {
    rfc3339.parse::<jiff::Timestamp>().map_or_else(
        |_| rfc3339.to_string(),
        |t| local_in(t, &super::zone::get()),
    )
}

/// `t` as `YYYY-MM-DD HH:MM:SS` in `tz`.
fn local_in(t: jiff::Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A vault as JSON, without its sealed keys (opaque and long).
#[derive(Serialize)]
pub struct VaultJson<'a> {
    id: VaultId,
    name: &'a str,
    tier: &'a str,
    replicas: u8,
    quota_bytes: Option<u64>,
    used_bytes: u64,
    created_at: String,
    snapshots: u64,
}

impl<'a> From<&'a VaultInfo> for VaultJson<'a> {
    fn from(v: &'a VaultInfo) -> Self {
        Self {
            id: v.id,
            name: &v.name,
            tier: &v.tier,
            replicas: v.replicas,
            quota_bytes: v.quota_bytes,
            used_bytes: v.used_bytes,
            created_at: ms_rfc3339(v.created_at),
            snapshots: v.snapshots,
        }
    }
}

/// Prints the account's vaults.
pub fn print_vaults(vaults: &[VaultInfo]) {
    let mut t = table(&[
        "name",
        "tier",
        "replicas",
        "quota",
        "used",
        "snapshots",
        "id",
    ]);
    for v in vaults {
        t.add_row(vec![
            v.name.clone(),
            v.tier.clone(),
            v.replicas.to_string(),
            v.quota_bytes.map_or("-".into(), bytes),
            bytes(v.used_bytes),
            v.snapshots.to_string(),
            v.id.to_string(),
        ]);
    }
    println!("{}", table_text(&t));
    println!("{} account vault(s)", vaults.len());
}

/// Prints the requestable tiers.
pub fn print_tiers(tiers: &[TierInfo]) {
    let mut t = table(&["tier", "replicas", "vault quota", "description"]);
    for tier in tiers {
        t.add_row(vec![
            tier.name.clone(),
            tier.replicas.to_string(),
            tier.quota_bytes.map_or("-".into(), bytes),
            tier.description.clone(),
        ]);
    }
    println!("{}", table_text(&t));
}

/// Prints the account's devices.
pub fn print_devices(devices: &[DeviceInfo]) {
    let mut t = table(&["id", "name", "registered", "last login", "state"]);
    for d in devices {
        let state = match (d.revoked_at, d.current) {
            (Some(t), _) => format!("revoked {}", when(t)),
            (None, true) => "this device".into(),
            (None, false) => "active".into(),
        };
        t.add_row(vec![
            d.id.to_string(),
            d.name.clone(),
            when(d.registered_at),
            when(d.last_login_at),
            state,
        ]);
    }
    println!("{}", table_text(&t));
}

/// Prints this device's protected items.
pub fn print_items(items: &[ItemInfo], names: &HashMap<VaultId, String>) {
    for i in items {
        println!(
            "{}  → vault {}  (updated {})",
            i.name,
            names
                .get(&i.vault)
                .cloned()
                .unwrap_or_else(|| i.vault.to_hex()),
            when(i.updated_at)
        );
        for p in &i.paths {
            println!("    {p}");
        }
        for e in &i.excludes {
            println!("    exclude {e}");
        }
    }
    println!("{} item(s)", items.len());
}

/// A device as JSON, its times in RFC 3339 like every `--json` time.
#[derive(Serialize)]
pub struct DeviceJson<'a> {
    id: cairn_proto::DeviceId,
    account: cairn_proto::AccountId,
    name: &'a str,
    registered_at: String,
    last_login_at: String,
    revoked_at: Option<String>,
    current: bool,
}

impl<'a> From<&'a DeviceInfo> for DeviceJson<'a> {
    fn from(d: &'a DeviceInfo) -> Self {
        Self {
            id: d.id,
            account: d.account,
            name: &d.name,
            registered_at: ms_rfc3339(d.registered_at),
            last_login_at: ms_rfc3339(d.last_login_at),
            revoked_at: d.revoked_at.map(ms_rfc3339),
            current: d.current,
        }
    }
}

/// A job-log entry as JSON, its times in RFC 3339.
#[derive(Serialize)]
pub struct JobJson<'a> {
    id: cairn_proto::JobId,
    account: cairn_proto::AccountId,
    user: &'a str,
    device: cairn_proto::DeviceId,
    device_name: &'a str,
    vault: Option<VaultId>,
    kind: cairn_proto::api::JobKind,
    started_at: String,
    finished_at: Option<String>,
    duration_ms: Option<u64>,
    status: Option<cairn_proto::api::JobStatus>,
    files: u64,
    bytes: u64,
    error: Option<&'a str>,
    log: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
    last_seen: String,
    revived: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatched_by: Option<&'a str>,
}

impl<'a> From<&'a JobInfo> for JobJson<'a> {
    fn from(j: &'a JobInfo) -> Self {
        Self {
            id: j.id,
            account: j.account,
            user: &j.user,
            device: j.device,
            device_name: &j.device_name,
            vault: j.vault,
            kind: j.kind,
            started_at: ms_rfc3339(j.started_at),
            finished_at: j.finished_at.map(ms_rfc3339),
            duration_ms: j.duration_ms,
            status: j.status,
            files: j.files,
            bytes: j.bytes,
            error: j.error.as_deref(),
            log: &j.log,
            item: j.item.as_deref(),
            schedule: j.schedule.as_deref(),
            last_seen: ms_rfc3339(j.last_seen),
            revived: j.revived,
            dispatched_by: j.dispatched_by.as_deref(),
        }
    }
}

/// An item as JSON, with its vault's name when known.
#[derive(Serialize)]
pub struct ItemJson<'a> {
    name: &'a str,
    paths: &'a [String],
    excludes: &'a [String],
    vault: VaultId,
    vault_name: Option<&'a String>,
    updated_at: String,
}

impl<'a> ItemJson<'a> {
    /// `i` with its vault's name from `names`.
    pub fn new(i: &'a ItemInfo, names: &'a HashMap<VaultId, String>) -> Self {
        Self {
            name: &i.name,
            paths: &i.paths,
            excludes: &i.excludes,
            vault: i.vault,
            vault_name: names.get(&i.vault),
            updated_at: ms_rfc3339(i.updated_at),
        }
    }
}

/// Prints the job log, oldest first.
pub fn print_jobs(jobs: &[JobInfo], names: &HashMap<VaultId, String>) -> Result<()> {
    let mut t = table(&[
        "started", "kind", "device", "vault", "status", "files", "bytes", "seconds", "error",
    ]);
    for j in jobs {
        t.add_row(vec![
            when(j.started_at),
            j.kind.name().to_string(),
            j.device_name.clone(),
            j.vault
                .map(|v| {
                    names
                        .get(&v)
                        .cloned()
                        .unwrap_or_else(|| v.to_hex()[..8].into())
                })
                .unwrap_or_else(|| "-".into()),
            j.status_name().to_string(),
            j.files.to_string(),
            bytes(j.bytes),
            j.duration_ms
                .map_or("-".into(), |d| format!("{:.1}", d as f64 / 1000.0)),
            j.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{}", table_text(&t));
    println!("{} job(s)", jobs.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_in_the_given_zone_and_non_times_as_they_are() {
        let t: jiff::Timestamp = "2026-03-01T23:30:00Z".parse().unwrap();
        let tokyo = TimeZone::fixed(jiff::tz::offset(9));
        assert_eq!(local_in(t, &tokyo), "2026-03-02 08:30:00");
        assert_eq!(local_in(t, &TimeZone::UTC), "2026-03-01 23:30:00");
        assert_eq!(local("not a time"), "not a time");
    }
}
