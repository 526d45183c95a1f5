//! One node's view of the license: it watches the replicated lease (and,
//! on the leader, the requests it sends) on its own monotonic clock and
//! answers whether writes are allowed ([`Gate::check`]). Every node
//! decides for itself from the log, so a new leader, a restarted follower
//! or a node with a skewed wall clock agree on the mode.

use std::sync::Mutex;
use std::time::Instant;

use cairn_consensus::event::Lease;
use cairn_consensus::state::License;
use cairn_consensus::State;

use super::policy::{self, Anchor, Mode, ReadOnlyReason};
use crate::cluster::now;

/// What the gate last saw, and the mode it derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The mode.
    pub mode: Mode,
    /// The serial, redacted; `None` without a license.
    pub serial: Option<String>,
    /// The lease's fencing token, if one is held.
    pub fencing_token: Option<u64>,
    /// The lease's expiry (authority clock, ms since the epoch).
    pub expires_at: Option<u64>,
    /// The cluster id presented to the authority.
    pub cluster_id: Option<String>,
    /// The authority's URL.
    pub authority: Option<String>,
}

/// The parts of the replicated state the license depends on (small, so
/// the worker can copy them out of the state each tick).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The license settings.
    pub license: Option<License>,
    /// The lease, if held.
    pub lease: Option<Lease>,
    /// The highest fencing token granted.
    pub last_token: u64,
}

impl Facts {
    /// The facts of `state`.
    pub fn of(state: &State) -> Self {
        Self {
            license: state.license().cloned(),
            lease: state.lease().cloned(),
            last_token: state.last_fencing_token(),
        }
    }

    /// The lease, if it is the configured serial's.
    pub fn current_lease(&self) -> Option<&Lease> {
        let serial = &self.license.as_ref()?.serial;
        self.lease.as_ref().filter(|l| &l.serial == serial)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (fencing token, renewal time) of the grant the anchor is for.
    key: Option<(u64, u64)>,
    anchor: Option<Anchor>,
}

/// The node's license gate.
#[derive(Debug)]
pub struct Gate {
    start: Instant,
    /// The wall clock when the gate was made: the monotonic clock starts
    /// there, so ages read from wall clocks fit on it.
    base_ms: u64,
    dev_unlicensed: bool,
    inner: Mutex<Inner>,
}

impl Gate {
    /// A gate; with `dev_unlicensed` (`--dev-license`: dev and test
    /// clusters), a cluster without a license counts as licensed.
    pub fn new(dev_unlicensed: bool) -> Self {
        Self {
            start: Instant::now(),
            base_ms: now().0,
            dev_unlicensed,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// This node's monotonic clock (ms; it starts at the wall clock's
    /// value when the gate was made and then only follows elapsed time).
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-written
        // in a way that matters: every write replaces whole fields.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The leader got a grant or renewal for a request it sent at `sent_ms`
    /// (its monotonic clock): the lease counts from then, not from when
    /// the log applies it.
    pub fn anchor_sent(&self, token: u64, renewed_at: u64, length_ms: u64, sent_ms: u64) {
        let mut inner = self.lock();
        inner.key = Some((token, renewed_at));
        inner.anchor = Some(Anchor {
            seen_ms: sent_ms,
            length_ms,
        });
    }

    /// The anchor of the last grant or renewal, updated from `facts`.
    pub fn anchor(&self, facts: &Facts) -> Option<Anchor> {
        let renewed_at = facts.license.as_ref()?.renewed_at?.0;
        let token = facts.last_token;
        let length = facts
            .current_lease()
            .map(|l| l.expires_at.0.saturating_sub(renewed_at));
        let now_ms = self.now_ms();
        let mut inner = self.lock();
        if inner.key != Some((token, renewed_at)) {
            // Anchored no later than now, and no later than the grant as
            // the wall clocks place it: a follower that learns of a
            // renewal late (it was paused, or the commit reached it after
            // an election) must not count the lease from when it learnt
            // it, or its view would outlive the authority's tenure by that
            // delay (found by the harness's `lease-view` checker). A wall
            // clock behind only makes the anchor later, never past now.
            let seen_ms = policy::first_seen_ms(now_ms, now().0, renewed_at);
            let length_ms = length.or(inner.anchor.map(|a| a.length_ms)).unwrap_or(0);
            inner.key = Some((token, renewed_at));
            inner.anchor = Some(Anchor { seen_ms, length_ms });
        }
        inner.anchor
    }

    /// The mode and what it rests on, from `facts` now.
    pub fn view(&self, facts: &Facts) -> View {
        let Some(license) = &facts.license else {
            let mode = if self.dev_unlicensed {
                Mode::DevUnlicensed
            } else {
                Mode::ReadOnly(ReadOnlyReason::NotConfigured)
            };
            return View {
                mode,
                serial: None,
                fencing_token: None,
                expires_at: None,
                cluster_id: None,
                authority: None,
            };
        };
        let lease = facts.current_lease();
        let anchor = self.anchor(facts);
        let mode = policy::mode(anchor, lease.is_some(), license.grace_ms, self.now_ms());
        View {
            mode,
            serial: Some(policy::redact(&license.serial)),
            fencing_token: lease.map(|l| l.fencing_token),
            expires_at: lease.map(|l| l.expires_at.0),
            cluster_id: Some(license.cluster_id.clone()),
            authority: Some(license.authority.clone()),
        }
    }

    /// `Ok` when writes are allowed; otherwise the operator's advice.
    ///
    /// # Errors
    ///
    /// The advice of a read-only mode ([`Mode::advice`]).
    pub fn check(&self, state: &State) -> Result<(), &'static str> {
        match self.view(&Facts::of(state)).mode.advice() {
            None => Ok(()),
            Some(advice) => Err(advice),
        }
    }
}

#[cfg(test)]
mod tests {
    use cairn_consensus::{apply, Event, Request, RequestId, UnixMillis};

    use super::*;

    fn propose(state: &mut State, event: Event) {
        let r = Request {
            request_id: RequestId::random(),
            event,
        };
        assert!(apply(state, &r).is_applied());
    }

    #[test]
    fn unconfigured_clusters_are_read_only_unless_dev() {
        let state = State::default();
        assert_eq!(
            Gate::new(false).view(&Facts::of(&state)).mode,
            Mode::ReadOnly(ReadOnlyReason::NotConfigured)
        );
        assert!(Gate::new(false).check(&state).is_err());
        assert_eq!(
            Gate::new(true).view(&Facts::of(&state)).mode,
            Mode::DevUnlicensed
        );
        assert!(Gate::new(true).check(&state).is_ok());
    }

    #[test]
    fn a_fresh_grant_is_valid_and_an_old_one_is_not() {
        let mut state = State::default();
        propose(
            &mut state,
            Event::LicenseConfigured {
                serial: "SN-1".into(),
                authority: "http://127.0.0.1:1".into(),
                cluster_id: "c".into(),
                renew_ms: 1_000,
                grace_ms: 10_000,
                at: UnixMillis(0),
            },
        );
        let gate = Gate::new(false);
        assert_eq!(
            gate.view(&Facts::of(&state)).mode,
            Mode::ReadOnly(ReadOnlyReason::NeverLeased)
        );
        let t = now().0;
        propose(
            &mut state,
            Event::LeaseGranted {
                lease: Lease {
                    serial: "SN-1".into(),
                    fencing_token: 1,
                    granted_at: UnixMillis(t),
                    expires_at: UnixMillis(t + 60_000),
                },
            },
        );
        let view = gate.view(&Facts::of(&state));
        assert!(matches!(view.mode, Mode::Valid { .. }), "{view:?}");
        assert_eq!(view.fencing_token, Some(1));
        assert_eq!(view.serial.as_deref(), Some("SN-1…"));
        // Another node that starts now and sees a grant renewed an hour
        // ago (wall clock) counts it from then: past its grace.
        let mut old = State::default();
        propose(
            &mut old,
            Event::LicenseConfigured {
                serial: "SN-1".into(),
                authority: "http://127.0.0.1:1".into(),
                cluster_id: "c".into(),
                renew_ms: 1_000,
                grace_ms: 10_000,
                at: UnixMillis(0),
            },
        );
        propose(
            &mut old,
            Event::LeaseGranted {
                lease: Lease {
                    serial: "SN-1".into(),
                    fencing_token: 1,
                    granted_at: UnixMillis(t - 3_600_000),
                    expires_at: UnixMillis(t - 3_540_000),
                },
            },
        );
        assert_eq!(
            Gate::new(false).view(&Facts::of(&old)).mode,
            Mode::ReadOnly(ReadOnlyReason::GraceOver)
        );
    }

    #[test]
    fn a_renewal_learnt_late_counts_from_the_grant_not_from_now() {
        let mut state = State::default();
        propose(
            &mut state,
            Event::LicenseConfigured {
                serial: "SN-1".into(),
                authority: "http://127.0.0.1:1".into(),
                cluster_id: "c".into(),
                renew_ms: 1_000,
                grace_ms: 10_000,
                at: UnixMillis(0),
            },
        );
        let t = now().0;
        let grant = |state: &mut State, token: u64, at: u64| {
            propose(
                state,
                Event::LeaseGranted {
                    lease: Lease {
                        serial: "SN-1".into(),
                        fencing_token: token,
                        granted_at: UnixMillis(at),
                        expires_at: UnixMillis(at + 60_000),
                    },
                },
            );
        };
        // A follower watching the lease sees the first grant…
        grant(&mut state, 1, t.saturating_sub(30_000));
        let gate = Gate::new(false);
        assert!(matches!(
            gate.view(&Facts::of(&state)).mode,
            Mode::Valid { .. }
        ));
        // …and the next one 20 s after the authority gave it (it was
        // paused): the lease has at most 40 s left on its view.
        grant(&mut state, 2, t.saturating_sub(20_000));
        match gate.view(&Facts::of(&state)).mode {
            Mode::Valid { remaining_ms, .. } => {
                assert!(remaining_ms <= 40_000, "{remaining_ms} ms left")
            }
            other => panic!("{other:?}"),
        }
    }
}
