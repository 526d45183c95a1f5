//! How the operator tools present what the cluster reports, for people:
//! the cluster's health verdict over its status document, times as local
//! clock readings, byte counts in binary units. Pure; shared by `cairnd`'s
//! operator commands ([`crate::client`]) and the web console
//! ([`crate::http::console`]), so both say the same thing the same way.

use cairn_proto::admin::ClusterStatus;

/// Whether a cluster, as `cluster status` saw it, is healthy: it has a
/// leader, every member answered, no chunk is short of its replicas and
/// every pooled tier has enough live storage nodes.
/// Pure, over the status document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The leader, if there is one.
    pub leader: Option<u64>,
    /// Members that did not answer (id, address).
    pub unreachable: Vec<(u64, String)>,
    /// Chunks short of their replicas (the leader's last repair pass).
    pub under_replicated: u64,
    /// Tiers whose labels too few live storage nodes carry.
    pub unsatisfiable_tiers: Vec<String>,
}

impl Health {
    /// The verdict on `s`.
    pub fn of(s: &ClusterStatus) -> Self {
        Self {
            leader: s.leader,
            unreachable: s
                .members
                .iter()
                .filter(|m| m.applied_index.is_none())
                .map(|m| (m.id, m.addr.clone()))
                .collect(),
            under_replicated: s.under_replicated_chunks.unwrap_or(0),
            unsatisfiable_tiers: s.unsatisfiable_tiers.clone(),
        }
    }

    /// Healthy: a leader, every member reachable, every chunk replicated,
    /// every tier satisfiable.
    pub fn healthy(&self) -> bool {
        self.problems().is_empty()
    }

    /// One line: "healthy", or "NOT HEALTHY: " and every reason.
    pub fn verdict(&self) -> String {
        if self.healthy() {
            "healthy".into()
        } else {
            format!("NOT HEALTHY: {}", self.problems().join("; "))
        }
    }

    /// What is wrong, one phrase each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = vec![];
        if self.leader.is_none() {
            out.push("no leader (no quorum: writes and logins wait)".to_string());
        }
        for (id, addr) in &self.unreachable {
            out.push(format!("node {id} ({addr}) unreachable"));
        }
        if self.under_replicated > 0 {
            out.push(format!("{} chunks under-replicated", self.under_replicated));
        }
        for tier in &self.unsatisfiable_tiers {
            out.push(format!("tier {tier} unsatisfiable"));
        }
        out
    }
}

/// A time in ms since the epoch as an operator reads a clock: local time
/// to the second (the raw number if it is out of range).
pub fn local_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || ms.to_string(),
            |t| {
                t.to_zoned_datetime(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            },
        )
}

/// `n` bytes for people: "1.5 GiB" (binary units, one decimal).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
