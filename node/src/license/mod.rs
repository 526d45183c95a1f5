//! The license lease (DESIGN §8): a serial number obtains a short-term,
//! exclusive, fenced lease from a license authority; the lease belongs to
//! the cluster and lives in its replicated log.
//!
//! ```text
//!  authority (cairnd license-authority serve)        cluster (every cairnd)
//!  ┌───────────────────────────────┐   acquire/    ┌─────────────────────────────────┐
//!  │ http::authority (axum routes) │◀── renew ─────│ worker (leader: lease; all: gate)│
//!  │ store: RocksDB, one JSON      │   + telemetry │   │ LeaseGranted/Renewed/Expired │
//!  │ record per serial             │               │   ▼ through the log             │
//!  │ policy: acquire/renew/relax   │               │ gate: Valid | Grace | ReadOnly   │
//!  └───────────────────────────────┘               │  ◀── http handlers check it     │
//!                                                  └─────────────────────────────────┘
//! ```
//!
//! - [`policy`]: the pure decisions (exclusivity and growing fencing tokens
//!   on the authority; the cluster's mode with its safety margin and grace;
//!   the renewal schedule), property-tested without IO.
//! - [`store`]: the authority's durable serials (RocksDB).
//! - [`wire`]: the authority's HTTP contract.
//! - [`client`]: the cluster's calls to the authority.
//! - [`gate`]: one node's view (monotonic clock) and the write check
//!   behind the `license_expired` error.
//! - [`worker`]: the `license` worker: gate refresh, metrics, and on the
//!   leader the lease itself.
//!
//! The authority's clock decides expiry; a cluster counts its lease from
//! when it *sent* the request and ends it early by a margin
//! ([`policy::margin_ms`]), so skewed clocks cannot make two clusters
//! believe they hold one serial at once.

pub mod client;
pub mod gate;
pub mod policy;
pub mod store;
pub mod wire;
pub mod worker;

/// The serial of the embedded dev authority (`cairnd` without arguments).
pub const DEV_SERIAL: &str = "DEV-SERIAL";

/// How often the leader renews unless told (`--renew-seconds`); a short
/// lease is renewed sooner, at a third of its length.
pub const DEFAULT_RENEW_SECONDS: u64 = 3_600;

/// The grace period unless told (`--grace-seconds`): 72 hours.
pub const DEFAULT_GRACE_SECONDS: u64 = 72 * 3_600;

/// Why license settings are refused before they reach the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// The event recording `req` as the cluster's license: the cluster keeps
/// its id across changes (a new one is drawn the first time), and a serial
/// goes to an authority off loopback only over `https://`.
///
/// # Errors
///
/// A plain-HTTP authority off loopback, or zero seconds.
pub fn configure(
    current: Option<&cairn_consensus::state::License>,
    req: &cairn_proto::admin::SetLicense,
    at: cairn_consensus::UnixMillis,
) -> Result<cairn_consensus::Event, SettingsError> {
    let authority = req.authority.trim_end_matches('/').to_owned();
    check_authority_url(&authority)?;
    let renew = req.renew_seconds.unwrap_or(DEFAULT_RENEW_SECONDS);
    let grace = req.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if renew == 0 || grace == 0 {
        return Err(SettingsError(
            "--renew-seconds and --grace-seconds must be positive".into(),
        ));
    }
    let cluster_id = current.map_or_else(
        || hex::encode(rand::random::<[u8; 16]>()),
        |l| l.cluster_id.clone(),
    );
    Ok(cairn_consensus::Event::LicenseConfigured {
        serial: req.serial.trim().to_owned(),
        authority,
        cluster_id,
        renew_ms: renew.saturating_mul(1_000),
        grace_ms: grace.saturating_mul(1_000),
        at,
    })
}

/// A serial is a secret: it travels to an authority off loopback only
/// over TLS.
///
/// # Errors
///
/// Not `http(s)://`, or `http://` to a host that is not loopback.
pub fn check_authority_url(url: &str) -> Result<(), SettingsError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(SettingsError(format!(
            "the authority URL {url:?} must start with https:// (or http:// on loopback)"
        )));
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(SettingsError(format!(
            "the authority {url:?} is not on loopback: a serial is a secret, use https://"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_go_off_loopback_only_over_tls() {
        for ok in [
            "https://license.example",
            "http://127.0.0.1:8800",
            "http://localhost:1",
            "http://[::1]:80/x",
        ] {
            assert!(check_authority_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8800",
            "http://license.example",
            "ftp://x",
            "",
        ] {
            assert!(check_authority_url(bad).is_err(), "{bad}");
        }
    }
}
