//! The pure decisions of the license lease, without IO or clocks: the
//! authority's (who may hold a serial, which fencing token a grant gets,
//! what a renewal extends) and the cluster's (is it licensed, in grace or
//! read-only; what the lease worker does next). Times are milliseconds:
//! the authority's wall clock on its side, a node's monotonic clock on the
//! cluster's side (so a skewed wall clock changes nothing there).

use serde::{Deserialize, Serialize};

/// How many tenures the authority keeps per serial (the oldest are dropped).
pub const HISTORY_LEN: usize = 1_000;

/// What the authority keeps about one serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialRecord {
    /// The serial number (a secret).
    pub serial: String,
    /// Who it was issued to.
    pub customer: String,
    /// When it was issued (authority clock, ms).
    pub created_at: u64,
    /// The highest fencing token issued for it; the next grant gets more.
    pub last_token: u64,
    /// The current holder, if any (it may have run out: see [`Holder::live`]).
    pub holder: Option<Holder>,
    /// The latest telemetry a holder reported.
    pub telemetry: Option<Telemetry>,
    /// Every grant, oldest first, with the time it ended or will end.
    pub history: Vec<Tenure>,
}

/// The cluster holding a serial's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The holder's cluster id.
    pub cluster_id: String,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// When it was granted.
    pub granted_at: u64,
    /// When it was last renewed (or granted).
    pub renewed_at: u64,
    /// When it runs out unless renewed.
    pub expires_at: u64,
}

impl Holder {
    /// Whether the lease is still running at `now`.
    pub fn live(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// One grant as the authority's history keeps it: `[from, until)` is when
/// the holder was inside its lease (`until` moves with each renewal, and
/// back to the relax time on `relax`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenure {
    /// The holder's cluster id.
    pub cluster_id: String,
    /// The grant's fencing token.
    pub fencing_token: u64,
    /// Start.
    pub from: u64,
    /// End (exclusive).
    pub until: u64,
}

/// What a cluster reports with each grant and renewal (for pricing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Live accounts.
    pub accounts: u64,
    /// Live devices.
    pub devices: u64,
    /// Vaults.
    pub vaults: u64,
    /// Bytes held by the storage nodes (all copies).
    pub stored_bytes: u64,
    /// When the authority received it (its clock); set by the authority.
    #[serde(default)]
    pub reported_at: u64,
}

/// A grant or renewal: the lease as the authority now records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted {
    /// The fencing token (new for a grant, the same for a renewal).
    pub fencing_token: u64,
    /// When this lease was first granted.
    pub granted_at: u64,
    /// This grant's or renewal's time.
    pub renewed_at: u64,
    /// When it runs out unless renewed.
    pub expires_at: u64,
}

impl Granted {
    /// The length of the lease from this grant or renewal.
    pub fn length_ms(&self) -> u64 {
        self.expires_at.saturating_sub(self.renewed_at)
    }
}

/// Why the authority refused a grant or renewal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another cluster holds the serial until `expires_at`.
    #[error("the serial is held by cluster {cluster_id} until {expires_at} (ms since the epoch): wait for it to run out, or relax it at the authority (`cairnd license-authority serial relax`)")]
    Held {
        /// The holder.
        cluster_id: String,
        /// When its lease runs out.
        expires_at: u64,
    },
    /// The renewal names a fencing token that is not the current lease's.
    #[error("stale fencing token {got} (the current lease has {current:?})")]
    StaleToken {
        /// The token of the current lease, if any.
        current: Option<u64>,
        /// The token offered.
        got: u64,
    },
    /// The lease ran out (or was relaxed) before the renewal: acquire again.
    #[error("the lease is no longer held; acquire it again")]
    NotHeld,
}

/// A cluster asks for the serial. A free serial, one whose lease ran out,
/// or one this cluster already holds gets a new grant with the next
/// fencing token (a holder asking again has lost track of its lease: the
/// old tenure ends now, so tenures never overlap). Another cluster's live
/// lease is refused.
///
/// # Errors
///
/// [`Refusal::Held`] while another cluster's lease runs.
pub fn acquire(
    rec: &mut SerialRecord,
    cluster_id: &str,
    now: u64,
    lease_ms: u64,
) -> Result<Granted, Refusal> {
    if let Some(h) = &rec.holder {
        if h.live(now) && h.cluster_id != cluster_id {
            return Err(Refusal::Held {
                cluster_id: h.cluster_id.clone(),
                expires_at: h.expires_at,
            });
        }
    }
    end_current_tenure(rec, now);
    rec.last_token += 1;
    let expires_at = now.saturating_add(lease_ms);
    rec.holder = Some(Holder {
        cluster_id: cluster_id.to_owned(),
        fencing_token: rec.last_token,
        granted_at: now,
        renewed_at: now,
        expires_at,
    });
    rec.history.push(Tenure {
        cluster_id: cluster_id.to_owned(),
        fencing_token: rec.last_token,
        from: now,
        until: expires_at,
    });
    if rec.history.len() > HISTORY_LEN {
        let excess = rec.history.len() - HISTORY_LEN;
        rec.history.drain(..excess);
    }
    Ok(Granted {
        fencing_token: rec.last_token,
        granted_at: now,
        renewed_at: now,
        expires_at,
    })
}

/// The holder renews its live lease under its fencing token: the same
/// token, a new expiry `lease_ms` from now.
///
/// # Errors
///
/// [`Refusal::StaleToken`] for another token or another cluster's lease,
/// [`Refusal::NotHeld`] when the lease ran out or was relaxed.
pub fn renew(
    rec: &mut SerialRecord,
    cluster_id: &str,
    token: u64,
    now: u64,
    lease_ms: u64,
) -> Result<Granted, Refusal> {
    let Some(h) = rec.holder.as_mut() else {
        return Err(Refusal::NotHeld);
    };
    if h.fencing_token != token || h.cluster_id != cluster_id {
        return Err(Refusal::StaleToken {
            current: h.live(now).then_some(h.fencing_token),
            got: token,
        });
    }
    if !h.live(now) {
        return Err(Refusal::NotHeld);
    }
    h.renewed_at = now;
    h.expires_at = now.saturating_add(lease_ms);
    let granted = Granted {
        fencing_token: h.fencing_token,
        granted_at: h.granted_at,
        renewed_at: now,
        expires_at: h.expires_at,
    };
    if let Some(t) = rec.history.last_mut() {
        if t.fencing_token == token {
            t.until = granted.expires_at;
        }
    }
    Ok(granted)
}

/// Releases the serial early (a cluster moves): the holder's tenure ends
/// now and any cluster may acquire it. Answers whether a live lease ended.
pub fn relax(rec: &mut SerialRecord, now: u64) -> bool {
    let live = rec.holder.as_ref().is_some_and(|h| h.live(now));
    end_current_tenure(rec, now);
    rec.holder = None;
    live
}

fn end_current_tenure(rec: &mut SerialRecord, now: u64) {
    if let Some(h) = &rec.holder {
        if let Some(t) = rec.history.last_mut() {
            if t.fencing_token == h.fencing_token && t.until > now {
                t.until = now;
            }
        }
    }
}

/// Whether two tenures of different clusters overlap in `history` (what
/// the authority promises never happens).
pub fn overlapping(history: &[Tenure]) -> Option<(&Tenure, &Tenure)> {
    history.iter().enumerate().find_map(|(i, a)| {
        history[i + 1..]
            .iter()
            .find(|b| a.cluster_id != b.cluster_id && a.from < b.until && b.from < a.until)
            .map(|b| (a, b))
    })
}

/// The safety margin a cluster takes off a lease of `length_ms`: a tenth
/// (covering the time between the authority's decision and the moment
/// the cluster counts from, and clock drift over the lease).
pub fn margin_ms(length_ms: u64) -> u64 {
    length_ms / 10
}

/// The last grant or renewal as one node saw it: when (its monotonic
/// clock: for the leader that asked, when it *sent* the request) and the
/// lease's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// When, on this node's monotonic clock (ms).
    pub seen_ms: u64,
    /// The granted length (ms).
    pub length_ms: u64,
}

/// Where the cluster stands with its license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Inside the lease, `remaining_ms` before it ends (margin taken off).
    Valid {
        /// Until the lease ends on this node's view.
        remaining_ms: u64,
        /// Until the cluster would turn read-only if no renewal came: the
        /// end of the grace period counted from the last renewal (never
        /// before the lease ends).
        read_only_in_ms: u64,
    },
    /// The lease ended; writes still work for `remaining_ms`.
    Grace {
        /// Until the grace period ends.
        remaining_ms: u64,
    },
    /// New backups, vault requests and account changes are refused.
    ReadOnly(ReadOnlyReason),
    /// No license is configured and the node runs with `--dev-license`
    /// (dev and test clusters only): treated as licensed.
    DevUnlicensed,
}

/// Why a cluster is read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOnlyReason {
    /// No license is configured (`cairnd admin license set`).
    NotConfigured,
    /// A license is configured but no lease was ever granted.
    NeverLeased,
    /// The authority could not be reached (or refused) for longer than
    /// the grace period.
    GraceOver,
}

impl Mode {
    /// Whether writes (new backups, vault requests, account changes) are
    /// accepted.
    pub fn writable(&self) -> bool {
        !matches!(self, Mode::ReadOnly(_))
    }

    /// A short stable name (status, metrics, logs).
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Valid { .. } => "valid",
            Mode::Grace { .. } => "grace",
            Mode::ReadOnly(_) => "read_only",
            Mode::DevUnlicensed => "dev_unlicensed",
        }
    }

    /// What the operator should do (the `license_expired` message).
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            Mode::ReadOnly(ReadOnlyReason::NotConfigured) => Some(
                "the cluster has no license: set one with `cairnd admin license set --serial S \
                 --authority URL`",
            ),
            Mode::ReadOnly(ReadOnlyReason::NeverLeased) => Some(
                "the cluster has not obtained a license lease yet: check that the license \
                 authority is reachable from the leader and that the serial is not held by \
                 another cluster (`cairnd cluster status`, the leader's log)",
            ),
            Mode::ReadOnly(ReadOnlyReason::GraceOver) => Some(
                "the license lease ran out and the grace period is over: make the license \
                 authority reachable from the leader (or relax the serial there if another \
                 cluster holds it); the cluster recovers by itself at the next renewal",
            ),
            _ => None,
        }
    }
}

/// The cluster's mode on one node at `now_ms` (its monotonic clock): valid
/// while a lease is held and `now` is before the last renewal plus the
/// lease length minus the margin; in grace until the last renewal plus the
/// grace period (never shorter than the lease); read-only after.
pub fn mode(anchor: Option<Anchor>, lease_held: bool, grace_ms: u64, now_ms: u64) -> Mode {
    let Some(a) = anchor else {
        return Mode::ReadOnly(ReadOnlyReason::NeverLeased);
    };
    let lease_end = lease_end_ms(a);
    let grace_end = a.seen_ms.saturating_add(grace_ms).max(lease_end);
    if lease_held && now_ms < lease_end {
        return Mode::Valid {
            remaining_ms: lease_end - now_ms,
            read_only_in_ms: grace_end - now_ms,
        };
    }
    if now_ms < grace_end {
        Mode::Grace {
            remaining_ms: grace_end - now_ms,
        }
    } else {
        Mode::ReadOnly(ReadOnlyReason::GraceOver)
    }
}

/// When a lease anchored at `a` ends on this node's view.
pub fn lease_end_ms(a: Anchor) -> u64 {
    a.seen_ms
        .saturating_add(a.length_ms)
        .saturating_sub(margin_ms(a.length_ms))
}

/// What the leader's lease worker does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing is due.
    Wait,
    /// No lease is held: ask for one.
    Acquire,
    /// Renew the held lease.
    Renew,
    /// The held lease ended on this node's view without renewal: record
    /// its expiry (then acquire).
    Expire,
}

/// The lease worker's next step at `now_ms`: renew every `renew_ms` but at
/// a third of the lease length at the latest (so two renewals can fail
/// before the lease ends), record the expiry once the lease ended.
pub fn next_action(anchor: Option<Anchor>, lease_held: bool, renew_ms: u64, now_ms: u64) -> Action {
    match (lease_held, anchor) {
        (false, _) => Action::Acquire,
        // A lease this node has no anchor for cannot be judged: renew it.
        (true, None) => Action::Renew,
        (true, Some(a)) => {
            if now_ms >= lease_end_ms(a) {
                Action::Expire
            } else if now_ms >= a.seen_ms.saturating_add(renew_ms.min(a.length_ms / 3)) {
                Action::Renew
            } else {
                Action::Wait
            }
        }
    }
}

/// Where a node that did not send the last renewal itself (a follower, or
/// a node that just started) anchors it: as long ago as the wall clocks
/// say, never later than now. A wall clock ahead makes the lease look
/// shorter (safe); one behind at worst anchors it now.
pub fn first_seen_ms(now_ms: u64, now_wall_ms: u64, renewed_at_wall_ms: u64) -> u64 {
    now_ms.saturating_sub(now_wall_ms.saturating_sub(renewed_at_wall_ms))
}

/// A serial as logs and status show it: its first four characters.
pub fn redact(serial: &str) -> String {
    let head: String = serial.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record() -> SerialRecord {
        SerialRecord {
            serial: "SN-1".into(),
            customer: "acme".into(),
            created_at: 0,
            last_token: 0,
            holder: None,
            telemetry: None,
            history: Vec::new(),
        }
    }

    #[test]
    fn a_held_serial_is_refused_until_it_runs_out_or_is_relaxed() {
        let mut r = record();
        let a = acquire(&mut r, "a", 1_000, 10_000).expect("free");
        assert_eq!(a.fencing_token, 1);
        assert!(matches!(
            acquire(&mut r, "b", 5_000, 10_000),
            Err(Refusal::Held {
                expires_at: 11_000,
                ..
            })
        ));
        let b = acquire(&mut r, "b", 11_000, 10_000).expect("ran out");
        assert_eq!(b.fencing_token, 2);
        assert!(relax(&mut r, 12_000));
        let a2 = acquire(&mut r, "a", 12_000, 10_000).expect("relaxed");
        assert_eq!(a2.fencing_token, 3);
        assert_eq!(overlapping(&r.history), None);
        assert_eq!(r.history[1].until, 12_000, "relax ended b's tenure");
    }

    #[test]
    fn renewals_keep_the_token_and_stale_ones_are_refused() {
        let mut r = record();
        let g = acquire(&mut r, "a", 0, 1_000).expect("grant");
        let n = renew(&mut r, "a", g.fencing_token, 500, 1_000).expect("renew");
        assert_eq!((n.fencing_token, n.expires_at, n.granted_at), (1, 1_500, 0));
        assert!(matches!(
            renew(&mut r, "a", 0, 600, 1_000),
            Err(Refusal::StaleToken {
                current: Some(1),
                got: 0
            })
        ));
        assert!(matches!(
            renew(&mut r, "b", 1, 600, 1_000),
            Err(Refusal::StaleToken { .. })
        ));
        assert_eq!(renew(&mut r, "a", 1, 1_500, 1_000), Err(Refusal::NotHeld));
        // The holder asking again gets a new token; its old tenure ends.
        let again = acquire(&mut r, "a", 1_600, 1_000).expect("grant");
        assert_eq!(again.fencing_token, 2);
        assert_eq!(r.history[0].until, 1_500);
    }

    #[test]
    fn modes_follow_the_anchor_and_grace() {
        let a = Anchor {
            seen_ms: 1_000,
            length_ms: 10_000,
        };
        // Lease ends at 1000 + 10000 - 1000 (margin) = 10000.
        assert_eq!(
            mode(Some(a), true, 30_000, 2_000),
            Mode::Valid {
                remaining_ms: 8_000,
                read_only_in_ms: 29_000
            }
        );
        assert_eq!(
            mode(Some(a), true, 30_000, 10_000),
            Mode::Grace {
                remaining_ms: 21_000
            }
        );
        assert_eq!(
            mode(Some(a), false, 30_000, 2_000),
            Mode::Grace {
                remaining_ms: 29_000
            }
        );
        assert_eq!(
            mode(Some(a), true, 30_000, 31_000),
            Mode::ReadOnly(ReadOnlyReason::GraceOver)
        );
        assert_eq!(
            mode(None, false, 30_000, 0),
            Mode::ReadOnly(ReadOnlyReason::NeverLeased)
        );
        // A grace shorter than the lease never cuts the lease short.
        assert_eq!(
            mode(Some(a), true, 1, 9_999),
            Mode::Valid {
                remaining_ms: 1,
                read_only_in_ms: 1
            }
        );
    }

    #[test]
    fn the_worker_renews_at_a_third_and_expires_at_the_end() {
        let a = Anchor {
            seen_ms: 0,
            length_ms: 9_000,
        };
        assert_eq!(next_action(None, false, 1_000, 0), Action::Acquire);
        assert_eq!(next_action(Some(a), true, 60_000, 2_999), Action::Wait);
        assert_eq!(next_action(Some(a), true, 60_000, 3_000), Action::Renew);
        assert_eq!(next_action(Some(a), true, 1_000, 1_000), Action::Renew);
        assert_eq!(next_action(Some(a), true, 1_000, 8_100), Action::Expire);
        assert_eq!(next_action(Some(a), false, 1_000, 100), Action::Acquire);
    }

    #[test]
    fn first_sight_counts_from_the_wall_clock_age_never_the_future() {
        assert_eq!(first_seen_ms(50_000, 1_010_000, 1_000_000), 40_000);
        assert_eq!(first_seen_ms(50_000, 1_000_000, 1_010_000), 50_000);
        assert_eq!(first_seen_ms(5, 1_000_000, 0), 0);
    }

    #[test]
    fn serials_are_redacted() {
        assert_eq!(redact("ABCD-1234-5678"), "ABCD…");
        assert_eq!(redact("ab"), "ab…");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Acquire(u8),
        Renew(u8, u64),
        Relax,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3).prop_map(Op::Acquire),
            (0u8..3, 0u64..8).prop_map(|(c, t)| Op::Renew(c, t)),
            Just(Op::Relax),
        ]
    }

    proptest! {
        /// Whatever clusters ask, in whatever order: tenures of different
        /// clusters never overlap, grants' tokens strictly grow, renewals
        /// keep the token, and a refused request changes nothing.
        #[test]
        fn exclusivity_and_growing_tokens(
            steps in proptest::collection::vec((op(), 0u64..4_000, 500u64..5_000), 1..60)
        ) {
            let mut r = record();
            let mut now = 0u64;
            let mut last_grant = 0u64;
            for (op, dt, len) in steps {
                now += dt;
                let before = r.clone();
                match op {
                    Op::Acquire(c) => match acquire(&mut r, &c.to_string(), now, len) {
                        Ok(g) => {
                            prop_assert!(g.fencing_token > last_grant);
                            last_grant = g.fencing_token;
                        }
                        Err(_) => prop_assert_eq!(&r, &before),
                    },
                    Op::Renew(c, t) => match renew(&mut r, &c.to_string(), t, now, len) {
                        Ok(g) => prop_assert_eq!(g.fencing_token, t),
                        Err(_) => prop_assert_eq!(&r, &before),
                    },
                    Op::Relax => {
                        relax(&mut r, now);
                    }
                }
                prop_assert_eq!(overlapping(&r.history), None);
            }
        }

        /// Modes only get worse as time passes without a renewal.
        #[test]
        fn modes_only_worsen_without_renewal(
            seen in 0u64..1_000_000, len in 1u64..100_000, grace in 1u64..200_000,
            t1 in 0u64..400_000, dt in 0u64..400_000
        ) {
            let rank = |m: &Mode| match m {
                Mode::Valid { .. } => 0,
                Mode::Grace { .. } => 1,
                _ => 2,
            };
            let a = Some(Anchor { seen_ms: seen, length_ms: len });
            let early = mode(a, true, grace, seen + t1);
            let late = mode(a, true, grace, seen + t1 + dt);
            prop_assert!(rank(&early) <= rank(&late));
        }
    }
}
