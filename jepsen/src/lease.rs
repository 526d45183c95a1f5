//! The lease workload: two holders contend for the run's serial. The
//! cluster holds it through its leader's lease worker; an observer reads
//! every node's view of it (`cluster status`: mode, fencing token, time
//! left). A rival — a second cluster's lease client, speaking the
//! authority's real protocol over TLS under its own cluster id — asks for
//! the same serial every second, and when it gets it (the cluster's lease
//! lapsed: an authority cut, a leader that could not renew) holds it a few
//! seconds, then lets it run out so the cluster can take it back. Both
//! record what they saw held as [`Call::Lease`] operations for
//! [`crate::check::lease`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_proto::admin::{ClusterStatus, LicenseStatus};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::authority::Serial;
use crate::history::{Call, LeaseHeld, LeaseRequest, Outcome};
use crate::http::{self, Tls};
use crate::workload::{write_outcome, ClientCtx};

/// The rival's cluster id at the authority.
pub const RIVAL: &str = "jepsen-rival";

/// The observer: every 200–400 ms, one node's view of the lease. `cluster`
/// is the cluster's id (the holder it reports).
pub fn observer(ctx: ClientCtx, cluster: String) {
    let mut rng = ctx.rng();
    while !ctx.stop.load(Ordering::SeqCst) {
        let node = rng.gen_range(0..ctx.nodes.len());
        let start = ctx.rec.now_ms();
        let r = http::request(
            ctx.nodes[node],
            "GET",
            "/api/v1/cluster/status",
            &[],
            b"",
            Duration::from_secs(2),
        );
        let (holder, outcome) = match r {
            Ok((200, body)) => match serde_json::from_slice::<ClusterStatus>(&body) {
                Ok(s) => seen(s.license, &cluster),
                Err(e) => (cluster.clone(), fail(format!("status: {e}"))),
            },
            Ok((code, body)) => (
                cluster.clone(),
                fail(format!("{code} {}", String::from_utf8_lossy(&body))),
            ),
            Err(e) => (cluster.clone(), fail(e.to_string())),
        };
        let call = Call::Lease {
            holder,
            request: LeaseRequest::Status,
        };
        ctx.rec.op(ctx.client, node, start, call, outcome);
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..400)));
    }
}

fn fail(error: String) -> Outcome {
    Outcome::Fail { error }
}

/// What a node's status says is held: while its mode is valid, the token
/// and the time left (whole seconds: a lower bound); otherwise nothing.
fn seen(license: Option<LicenseStatus>, cluster: &str) -> (String, Outcome) {
    let Some(l) = license else {
        return (cluster.to_string(), fail("no license in the status".into()));
    };
    let holder = l.holder.unwrap_or_else(|| cluster.to_string());
    let value = match (l.mode.as_str(), l.fencing_token, l.lease_remaining_seconds) {
        ("valid", Some(token), Some(secs)) => Some(
            LeaseHeld {
                token,
                valid_ms: secs.saturating_mul(1_000),
            }
            .to_value(),
        ),
        _ => None,
    };
    (holder, Outcome::Ok { value })
}

/// The authority's answer to a grant or renewal.
#[derive(Debug, Deserialize)]
struct Granted {
    fencing_token: u64,
    renewed_at: u64,
    expires_at: u64,
}

/// The rival: acquire every second; once granted, renew every second for
/// 2–6 s, then stop and wait out the lease (`lease_ms`) before asking
/// again.
pub fn rival(ctx: ClientCtx, tls: Tls, authority: SocketAddr, serial: Serial, lease_ms: u64) {
    let mut rng = ctx.rng();
    // (token, renew until) while holding.
    let mut holding: Option<(u64, u64)> = None;
    while !ctx.stop.load(Ordering::SeqCst) {
        let start = ctx.rec.now_ms();
        let (request, body) = match holding {
            Some((_, until)) if start >= until => {
                holding = None;
                sleep_unless_stopped(&ctx, lease_ms + 500);
                continue;
            }
            Some((token, _)) => (
                LeaseRequest::Renew,
                json!({"serial": serial.0, "cluster_id": RIVAL, "fencing_token": token,
                       "telemetry": telemetry()}),
            ),
            None => (
                LeaseRequest::Acquire,
                json!({"serial": serial.0, "cluster_id": RIVAL, "telemetry": telemetry()}),
            ),
        };
        let path = match request {
            LeaseRequest::Acquire => "/license/v1/acquire",
            _ => "/license/v1/renew",
        };
        let r = http::request_tls(
            &tls,
            authority,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
            Duration::from_secs(5),
        );
        let granted = match &r {
            Ok((200, answer)) => serde_json::from_slice::<Granted>(answer).ok(),
            _ => None,
        };
        let outcome = match (&granted, write_outcome(&r)) {
            (Some(g), _) => Outcome::Ok {
                value: Some(
                    LeaseHeld {
                        token: g.fencing_token,
                        valid_ms: g.expires_at.saturating_sub(g.renewed_at),
                    }
                    .to_value(),
                ),
            },
            // A 2xx that does not parse: something was granted, unknown what.
            (None, Outcome::Ok { .. }) => Outcome::Unknown {
                error: "an unreadable grant".into(),
            },
            (None, other) => other,
        };
        match (&granted, &outcome, request) {
            (Some(g), _, LeaseRequest::Acquire) => {
                holding = Some((g.fencing_token, start + rng.gen_range(2_000..6_000)));
            }
            // Refused: the lease is gone (ran out, or another token).
            (None, Outcome::Fail { .. }, LeaseRequest::Renew) => holding = None,
            _ => {}
        }
        let call = Call::Lease {
            holder: RIVAL.to_string(),
            request,
        };
        ctx.rec.op(ctx.client, 0, start, call, outcome);
        sleep_unless_stopped(&ctx, 1_000);
    }
}

fn telemetry() -> serde_json::Value {
    json!({"accounts": 0, "devices": 0, "vaults": 0, "stored_bytes": 0})
}

/// Sleeps `ms`, waking early when the run stops.
fn sleep_unless_stopped(ctx: &ClientCtx, ms: u64) {
    let until = ctx.rec.now_ms() + ms;
    while ctx.rec.now_ms() < until && !ctx.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(mode: &str, token: Option<u64>, secs: Option<u64>) -> Option<LicenseStatus> {
        Some(LicenseStatus {
            mode: mode.into(),
            detail: None,
            serial: None,
            authority: None,
            holder: token.map(|_| "c1".into()),
            fencing_token: token,
            expires_at: None,
            lease_remaining_seconds: secs,
            grace_remaining_seconds: None,
        })
    }

    #[test]
    fn a_valid_status_is_a_held_lease_and_grace_is_none() {
        let (holder, outcome) = seen(status("valid", Some(3), Some(4)), "c1");
        assert_eq!(holder, "c1");
        assert_eq!(
            outcome,
            Outcome::Ok {
                value: Some("3:4000".into())
            }
        );
        let (_, outcome) = seen(status("grace", Some(3), Some(0)), "c1");
        assert_eq!(outcome, Outcome::Ok { value: None });
        assert_eq!(seen(None, "c1").1.name(), "fail");
    }
}
