//! The operator's HTTP client: what `cairnd cluster status|drain|remove`
//! and `cairnd admin user|tier|device|jobs|license` ask a running cluster,
//! over its admin and cluster API ([`cairn_proto::admin`]), and what
//! `cairnd license-authority serial …` asks a license authority
//! ([`crate::license::wire`]).
//!
//! `admin user create` derives the account's login key locally with
//! argon2id ([`cairn_proto::kdf`], the same derivation and defaults as the
//! `cairn` client) so the password never leaves the operator's machine,
//! then sends only the login key and the KDF parameters.
//!
//! Every request verifies the server's certificate for `https://` URLs
//! ([`crate::tls::client_builder`]: public roots plus `--ca-file`).

use std::path::Path;
use std::time::Duration;

use cairn_proto::admin::{
    ClusterStatus, CreateUser, DefineTier, DeleteUser, DrainRequest, DrainResponse, Kdf,
    LicenseStatus, RemoveRequest, RemoveResponse, SetLicense, TierInfo, UserInfo,
};
use cairn_proto::api::ErrorBody;
use cairn_proto::kdf;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::describe;
use crate::http::IDEMPOTENCY_KEY;
use crate::license::policy::SerialRecord;
use crate::license::wire;

mod console;
pub mod table;

pub use crate::present::{human_bytes, local_time, Health};

/// How many times a write is attempted while the cluster is unavailable.
const WRITE_ATTEMPTS: u32 = 5;

/// Why an operator command failed: the server refused the credentials, the
/// command line is incomplete, or anything else (the binary maps each to
/// its exit code).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server refused the credentials, or there are none.
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The command line (with the configuration file) is incomplete.
    #[error("{0}")]
    Usage(String),
    /// `cluster status` answered, and the cluster has no leader: the
    /// status was printed, the exit code says so.
    #[error("the cluster is not healthy: {0}")]
    Unhealthy(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

/// The password in `path` (its first line), which must not be empty.
fn read_password(path: &Path) -> Result<zeroize::Zeroizing<String>, CliError> {
    let mut password = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| other(format!("{}: {e}", path.display())))?,
    );
    let trimmed_len = password.trim_end_matches(['\n', '\r']).len();
    password.truncate(trimmed_len);
    if password.is_empty() {
        return Err(other(format!("{} is empty", path.display())));
    }
    Ok(password)
}

/// A login key derived from the password in `password_file` with a fresh
/// salt and the default cost, and those parameters: what a new account or
/// operator is created with (the password stays on this machine).
fn new_login_key(password_file: &Path) -> Result<(Kdf, String), CliError> {
    let password = read_password(password_file)?;
    let salt = kdf::generate_salt();
    let cost = kdf::Cost::default();
    let keys = kdf::derive(password.as_bytes(), &salt, cost).map_err(other)?;
    let params = Kdf {
        memory_kib: cost.memory_kib,
        iterations: cost.iterations,
        parallelism: cost.parallelism,
        salt: hex::encode(salt),
    };
    Ok((params, hex::encode(keys.login)))
}

/// A failed request, with its causes (see [`describe`]).
fn request_failed(e: reqwest::Error) -> CliError {
    CliError::Other(describe(&e))
}

/// A client for one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `server`, authenticating with `token` if given and
    /// trusting the certificates in `ca_file` besides the public roots.
    ///
    /// # Errors
    ///
    /// The CA file is unusable or the HTTP client cannot be built.
    pub fn new(
        server: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<Self, CliError> {
        let http = crate::tls::client_builder(ca_file)
            .map_err(other)?
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(other)?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn handle<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, CliError> {
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(other);
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| format!("{} ({})", b.message, b.code))
            .unwrap_or_else(|_| format!("HTTP {status}: {text}"));
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            Err(CliError::Auth(message))
        } else {
            Err(CliError::Other(message))
        }
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let resp = self
            .auth(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .map_err(request_failed)?;
        Self::handle(resp).await
    }

    /// POSTs a write with one idempotency key for all attempts, retrying
    /// while the cluster is unavailable (e.g. electing a new leader) or the
    /// connection fails: the server applies the write at most once.
    async fn post_write<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<reqwest::Response, CliError> {
        let key = hex::encode(rand::random::<[u8; 16]>());
        let mut delay = Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            let sent = self
                .auth(self.http.post(format!("{}{path}", self.base)))
                .header(IDEMPOTENCY_KEY, &key)
                .json(body)
                .send()
                .await;
            let retry = match &sent {
                Ok(resp) => resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if !retry || attempt >= WRITE_ATTEMPTS {
                return sent.map_err(request_failed);
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CliError> {
        Self::handle(self.post_write(path, body).await?).await
    }

    /// The cluster status, preferably as the leader sees it (only the
    /// leader knows every member's replication progress).
    ///
    /// # Errors
    ///
    /// The server cannot be reached.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, CliError> {
        let here: ClusterStatus = self.get("/api/v1/cluster/status").await?;
        let mut status = here.clone();
        if here.leader != Some(here.node_id) {
            if let Some(addr) = &here.leader_addr {
                if let Ok(s) = self
                    .at(addr)
                    .get::<ClusterStatus>("/api/v1/cluster/status")
                    .await
                {
                    status = s;
                }
            }
        }
        // Each member knows its own applied index; ask the others (a member
        // that does not answer keeps `None`).
        for member in &mut status.members {
            if member.applied_index.is_some() {
                continue;
            }
            if member.id == here.node_id {
                member.applied_index = here.last_applied;
                continue;
            }
            let peer = self.at(&member.addr);
            let probe = peer.get::<ClusterStatus>("/api/v1/cluster/status");
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                member.applied_index = s.last_applied;
            }
        }
        Ok(status)
    }

    /// A token-less client for another node of the cluster.
    fn at(&self, addr: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: addr.trim_end_matches('/').to_string(),
            token: None,
        }
    }

    /// Creates an account with the password read from `password_file`,
    /// in organization `org` (none: the asking org admin's, or the default
    /// one).
    ///
    /// # Errors
    ///
    /// Unreadable file, KDF failure, or the server's refusal.
    pub async fn create_user(
        &self,
        name: &str,
        password_file: &Path,
        org: Option<String>,
    ) -> Result<UserInfo, CliError> {
        let (kdf, login_key) = new_login_key(password_file)?;
        let body = CreateUser {
            name: name.to_string(),
            kdf,
            login_key,
            org,
        };
        self.post("/api/v1/admin/users", &body).await
    }

    /// Lists accounts.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, CliError> {
        self.get("/api/v1/admin/users").await
    }

    /// Deletes account `name` (with `delete_vaults`, its vaults first);
    /// answers the account as it was.
    ///
    /// # Errors
    ///
    /// The server's refusal (`account_has_vaults` without `delete_vaults`).
    pub async fn delete_user(&self, name: &str, delete_vaults: bool) -> Result<UserInfo, CliError> {
        let path = format!(
            "/api/v1/admin/users/{}/delete",
            cairn_proto::route::segment(name)
        );
        self.post(&path, &DeleteUser { delete_vaults }).await
    }

    /// Disables account `name` (with a reason shown to its user) or, with
    /// `reason` `None`, enables it again.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn set_user_disabled(
        &self,
        name: &str,
        reason: Option<String>,
    ) -> Result<UserInfo, CliError> {
        let segment = cairn_proto::route::segment(name);
        match reason {
            Some(reason) => {
                let path = format!("/api/v1/admin/users/{segment}/disable");
                self.post(&path, &cairn_proto::admin::DisableUser { reason })
                    .await
            }
            None => {
                let path = format!("/api/v1/admin/users/{segment}/enable");
                self.post(&path, &serde_json::json!({})).await
            }
        }
    }

    /// Defines (or redefines) a tier.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn define_tier(&self, tier: &DefineTier) -> Result<TierInfo, CliError> {
        self.post("/api/v1/admin/tiers", tier).await
    }

    /// Lists tiers.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_tiers(&self) -> Result<Vec<TierInfo>, CliError> {
        self.get("/api/v1/admin/tiers").await
    }

    /// Sets the cluster's license (`cairnd admin license set`).
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn set_license(&self, req: &SetLicense) -> Result<LicenseStatus, CliError> {
        self.post("/api/v1/admin/license", req).await
    }

    /// Issues a serial at a license authority (this client's server).
    ///
    /// # Errors
    ///
    /// The authority's refusal.
    pub async fn create_serial(&self, customer: &str) -> Result<SerialRecord, CliError> {
        let req = wire::CreateSerial {
            customer: customer.to_owned(),
        };
        self.post(wire::SERIALS, &req).await
    }

    /// Every serial of a license authority, with holders and history.
    ///
    /// # Errors
    ///
    /// The authority's refusal.
    pub async fn list_serials(&self) -> Result<wire::SerialList, CliError> {
        self.get(wire::SERIALS).await
    }

    /// Releases a serial's lease at a license authority.
    ///
    /// # Errors
    ///
    /// The authority's refusal (e.g. an unknown serial).
    pub async fn relax_serial(&self, serial: &str) -> Result<wire::Relaxed, CliError> {
        let req = wire::RelaxRequest {
            serial: serial.to_owned(),
        };
        self.post(wire::RELAX, &req).await
    }

    /// Every account's devices (`cairnd admin device list`).
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_devices(&self) -> Result<Vec<cairn_proto::api::DeviceInfo>, CliError> {
        self.get("/api/v1/admin/devices").await
    }

    /// The devices online now (`cairnd admin device online`): every node's
    /// live connections.
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn connections(&self) -> Result<Vec<cairn_proto::control::ConnectionInfo>, CliError> {
        self.get("/api/v1/control").await
    }

    /// Revokes any account's device: its token is refused by every node.
    ///
    /// # Errors
    ///
    /// The server's refusal (unknown device).
    pub async fn revoke_device(
        &self,
        device: cairn_proto::DeviceId,
    ) -> Result<cairn_proto::api::DeviceInfo, CliError> {
        self.post(&format!("/api/v1/admin/devices/{device}/revoke"), &())
            .await
    }

    /// Every account's job log (`cairnd admin jobs`).
    ///
    /// # Errors
    ///
    /// The server's refusal.
    pub async fn list_jobs(
        &self,
        query: &cairn_proto::admin::JobsQuery,
    ) -> Result<Vec<cairn_proto::api::JobInfo>, CliError> {
        let mut params = Vec::new();
        if let Some(s) = &query.status {
            params.push(format!("status={}", cairn_proto::route::segment(s)));
        }
        if let Some(t) = query.since_ms {
            params.push(format!("since_ms={t}"));
        }
        if let Some(a) = &query.account {
            params.push(format!("account={}", cairn_proto::route::segment(a)));
        }
        let q = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        self.get(&format!("/api/v1/admin/jobs{q}")).await
    }

    /// The overdue schedules (`cairnd admin backups overdue`).
    ///
    /// # Errors
    ///
    /// Transport failures and the server's refusal.
    pub async fn overdue_backups(
        &self,
    ) -> Result<Vec<cairn_proto::admin::OverdueBackup>, CliError> {
        self.get("/api/v1/admin/backups/overdue").await
    }

    /// Drains a storage node (`cairnd cluster drain`).
    ///
    /// # Errors
    ///
    /// The server's refusal (unknown node, the last active node, no leader).
    pub async fn drain_node(&self, node_id: u64) -> Result<DrainResponse, CliError> {
        self.post("/api/v1/cluster/drain", &DrainRequest { node_id })
            .await
    }

    /// Removes a node from the cluster.
    ///
    /// # Errors
    ///
    /// The server's refusal (unknown node, last voter, an active storage
    /// node without `force`, no leader).
    pub async fn remove_node(&self, node_id: u64, force: bool) -> Result<RemoveResponse, CliError> {
        self.post("/api/v1/cluster/remove", &RemoveRequest { node_id, force })
            .await
    }
}

/// Parses a byte size: a plain number of bytes or a number with a unit,
/// `K`/`M`/`G`/`T` (powers of 1000, also `KB`…) or `KiB`/`MiB`/`GiB`/`TiB`
/// (powers of 1024), case-insensitive; e.g. `10GiB`, `500M`, `1.5TB`.
///
/// # Errors
///
/// Not a size, zero, or too large for 64 bits.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    let bad = || format!("{text:?} is not a size (e.g. 10GiB, 500M, 1000000)");
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .map_err(|_| bad())?
            .checked_mul(multiplier)
            .ok_or_else(|| format!("{text:?} is too large"))?,
        Some(_) => {
            let value: f64 = number.parse().map_err(|_| bad())?;
            let bytes = (value * multiplier as f64).round();
            if !(bytes.is_finite() && bytes < u64::MAX as f64) {
                return Err(format!("{text:?} is too large"));
            }
            bytes as u64
        }
    };
    if bytes == 0 {
        return Err(format!("{text:?}: a quota must be at least one byte"));
    }
    Ok(bytes)
}

/// Renders a status for humans (`docs/OPERATIONS.md` explains each field).
pub fn format_status(s: &ClusterStatus) -> String {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |i| i.to_string());
    let mut out = format!("{}\n", Health::of(s).verdict());
    out.push_str(&format!(
        "node {} ({}), leader {}, term {}\n",
        s.node_id,
        s.role,
        s.leader.map_or("none".to_string(), |l| l.to_string()),
        s.term,
    ));
    out.push_str(&format!(
        "log: last {}, applied {}, snapshot {}, purged {}\n",
        opt(s.last_log_index),
        opt(s.last_applied),
        opt(s.snapshot_index),
        opt(s.purged_index),
    ));
    out.push_str("members:\n");
    let mut members = table::table(&["id", "kind", "address", "matched", "applied", "roles", ""]);
    for m in &s.members {
        let kind = match (s.leader == Some(m.id), m.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let reached = if m.applied_index.is_some() {
            ""
        } else {
            "UNREACHABLE"
        };
        members.add_row(vec![
            m.id.to_string(),
            kind.to_string(),
            m.addr.clone(),
            opt(m.matched_index),
            opt(m.applied_index),
            m.roles.join(","),
            reached.to_string(),
        ]);
    }
    out.push_str(&table::text(&members, "  "));
    out.push_str(&format!(
        "under-replicated chunks: {}\n",
        opt(s.under_replicated_chunks)
    ));
    out.push_str("storage nodes:\n");
    let mut nodes = table::table(&[
        "id", "status", "address", "chunks", "stored", "labels", "to move",
    ]);
    for n in &s.storage_nodes {
        nodes.add_row(vec![
            n.id.to_string(),
            n.status.to_string(),
            n.addr.clone(),
            opt(n.chunks),
            n.bytes.map_or_else(|| "-".to_string(), human_bytes),
            if n.labels.is_empty() {
                "-".to_string()
            } else {
                n.labels.join(",")
            },
            n.to_move.map_or_else(|| "-".to_string(), |m| m.to_string()),
        ]);
    }
    out.push_str(&table::text(&nodes, "  "));
    if !s.unsatisfiable_tiers.is_empty() {
        out.push_str(&format!(
            "unsatisfiable tiers (too few live storage nodes carry their labels): {}\n",
            s.unsatisfiable_tiers.join(", ")
        ));
    }
    if let Some(l) = &s.license {
        out.push_str(&license_line(l));
        if let Some(d) = &l.detail {
            out.push_str(&format!("  read-only: {d}\n"));
        }
    }
    out
}

/// The license's line of `cluster status`: what holds now, leaving out
/// what does not apply (no "grace left" while the lease is valid, no
/// "lease left" once it ran out).
fn license_line(l: &LicenseStatus) -> String {
    let mut parts = vec![format!("license: {}", l.mode)];
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            parts.push(format!("{name} {v}"));
        }
    };
    add("serial", l.serial.clone());
    add("holder", l.holder.clone());
    add("fencing token", l.fencing_token.map(|t| t.to_string()));
    add("expires", l.expires_at.map(local_time));
    add(
        "lease left",
        l.lease_remaining_seconds
            .filter(|s| *s > 0)
            .map(|s| format!("{s} s")),
    );
    add(
        "grace left",
        l.grace_remaining_seconds
            .filter(|_| l.mode != "valid")
            .map(|s| format!("{s} s")),
    );
    parts.join("  ") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_license_line_shows_what_applies() {
        let mut l = LicenseStatus {
            mode: "valid".into(),
            detail: None,
            serial: Some("SN-1…".into()),
            authority: None,
            holder: Some("c1".into()),
            fencing_token: Some(3),
            expires_at: None,
            lease_remaining_seconds: Some(40),
            grace_remaining_seconds: Some(3_600),
        };
        let line = license_line(&l);
        assert!(line.contains("lease left 40 s"), "{line}");
        assert!(!line.contains("grace"), "{line}");
        l.mode = "grace".into();
        l.lease_remaining_seconds = Some(0);
        l.fencing_token = None;
        let line = license_line(&l);
        assert!(line.contains("grace left 3600 s"), "{line}");
        assert!(
            !line.contains("lease left") && !line.contains("token"),
            "{line}"
        );
    }

    fn status(leader: Option<u64>, applied: [Option<u64>; 3]) -> ClusterStatus {
        ClusterStatus {
            node_id: 1,
            role: "Follower".into(),
            leader,
            leader_addr: None,
            term: 2,
            last_applied: Some(9),
            last_log_index: Some(9),
            snapshot_index: None,
            purged_index: None,
            members: (1..=3)
                .map(|id| cairn_proto::admin::Member {
                    id,
                    addr: format!("http://n{id}:8700"),
                    voter: true,
                    matched_index: None,
                    applied_index: applied[id as usize - 1],
                    roles: vec!["auth".into(), "storage".into()],
                })
                .collect(),
            voters: vec![1, 2, 3],
            storage_nodes: vec![cairn_proto::admin::StorageNodeInfo {
                id: 1,
                addr: "http://n1:8700".into(),
                status: "Active".into(),
                chunks: Some(3),
                bytes: Some(3 << 30),
                to_move: None,
                labels: vec![],
            }],
            under_replicated_chunks: Some(0),
            unsatisfiable_tiers: vec![],
            license: None,
        }
    }

    #[test]
    fn health_needs_a_leader_and_every_member_and_names_what_is_wrong() {
        let ok = status(Some(1), [Some(9), Some(9), Some(8)]);
        assert!(Health::of(&ok).healthy());
        let text = format_status(&ok);
        assert!(text.starts_with("healthy\n"), "{text}");
        assert!(text.contains("3.0 GiB"), "{text}");
        let down = status(None, [Some(9), None, Some(9)]);
        let h = Health::of(&down);
        assert!(!h.healthy());
        assert_eq!(
            h.verdict(),
            "NOT HEALTHY: no leader (no quorum: writes and logins wait); node 2 \
             (http://n2:8700) unreachable"
        );
        assert!(format_status(&down).contains("UNREACHABLE"));
        let short = ClusterStatus {
            under_replicated_chunks: Some(4),
            ..ok
        };
        assert_eq!(
            Health::of(&short).verdict(),
            "NOT HEALTHY: 4 chunks under-replicated"
        );
        let pool_short = ClusterStatus {
            unsatisfiable_tiers: vec!["fast".into()],
            ..status(Some(1), [Some(9), Some(9), Some(8)])
        };
        assert_eq!(
            Health::of(&pool_short).verdict(),
            "NOT HEALTHY: tier fast unsatisfiable"
        );
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 << 30), "10.0 GiB");
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("10gib"), Ok(10 << 30));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("1.5TB"), Ok(1_500_000_000_000));
        assert_eq!(parse_size("2 KiB"), Ok(2048));
        for bad in [
            "",
            "GiB",
            "0",
            "10XB",
            "1.2.3G",
            "-5",
            "99999999999999999999",
            "20000000TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
