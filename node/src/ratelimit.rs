//! Rate limiting of failed logins, per account name and per client address.
//!
//! A login key is the output of argon2id, so guessing passwords costs the
//! attacker a KDF run per guess — but only if the server refuses to answer
//! guesses quickly. [`LoginLimiter`] counts failed logins in a sliding
//! window: after [`Limits::per_account`] failures for one account name (any
//! address) or [`Limits::per_address`] failures from one IP address (any
//! name) within [`Limits::window`], further attempts are refused with
//! `429 rate_limited` and a `Retry-After` *before* the key is checked, so a
//! correct guess during the lock-out is not recognised either. A successful
//! login clears its account's counter (not the address's: one address
//! trying many accounts stays limited).
//!
//! The limiter is **per node**: each `cairnd` counts the attempts it
//! answered, so an attacker spreading attempts over `n` nodes gets `n`
//! times the budget. That keeps failed logins out of the replicated log
//! (no write amplification from an attack) at a bounded cost.
//!
//! Pure: the clock is passed in ([`Instant`]), so the tests drive time.
//! Memory is bounded: at most [`Limits::max_keys`] names and addresses are
//! tracked; expired ones are dropped first, and when every tracked key is
//! still active the oldest is forgotten.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures allowed per account name within the window.
    pub per_account: usize,
    /// Failures allowed per client address within the window.
    pub per_address: usize,
    /// The sliding window.
    pub window: Duration,
    /// Most keys (names plus addresses) tracked at once.
    pub max_keys: usize,
}

impl Default for Limits {
    /// 5 failures per account and 20 per address in 5 minutes.
    fn default() -> Self {
        Limits {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(300),
            max_keys: 100_000,
        }
    }
}

/// Failure times of one key, oldest first, at most `limit` of them.
#[derive(Debug, Default)]
struct Failures(VecDeque<Instant>);

impl Failures {
    fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .0
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            self.0.pop_front();
        }
    }

    /// When the key is locked: the time until its oldest counted failure
    /// leaves the window.
    fn locked_for(&self, now: Instant, limit: usize, window: Duration) -> Option<Duration> {
        if self.0.len() < limit {
            return None;
        }
        let oldest = self.0.front()?;
        Some(window.saturating_sub(now.saturating_duration_since(*oldest)))
    }

    fn record(&mut self, now: Instant, limit: usize) {
        self.0.push_back(now);
        while self.0.len() > limit {
            self.0.pop_front();
        }
    }

    fn newest(&self) -> Option<Instant> {
        self.0.back().copied()
    }
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn locked_for(
        &mut self,
        key: &K,
        now: Instant,
        limit: usize,
        window: Duration,
    ) -> Option<Duration> {
        let failures = self.entries.get_mut(key)?;
        failures.expire(now, window);
        failures.locked_for(now, limit, window)
    }

    fn record(&mut self, key: K, now: Instant, limit: usize, window: Duration, max_keys: usize) {
        if !self.entries.contains_key(&key) && self.entries.len() >= max_keys {
            self.entries.retain(|_, f| {
                f.expire(now, window);
                !f.0.is_empty()
            });
            if self.entries.len() >= max_keys {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, f)| f.newest())
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        let failures = self.entries.entry(key).or_default();
        failures.expire(now, window);
        failures.record(now, limit);
    }
}

/// Counts failed logins; see the module doc.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    accounts: Table<String>,
    addresses: Table<IpAddr>,
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            accounts: Table::new(),
            addresses: Table::new(),
        }
    }

    /// Whether a login for `account` from `address` may be checked now;
    /// `Err(wait)` with the time until it may (at least one second, for
    /// `Retry-After`).
    ///
    /// # Errors
    ///
    /// The account name or the address is locked.
    pub fn check(
        &mut self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let l = self.limits;
        let by_account =
            self.accounts
                .locked_for(&account.to_string(), now, l.per_account, l.window);
        let by_address =
            address.and_then(|a| self.addresses.locked_for(&a, now, l.per_address, l.window));
        match by_account.into_iter().chain(by_address).max() {
            Some(wait) => Err(wait.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    /// Records a failed login.
    pub fn failed(&mut self, account: &str, address: Option<IpAddr>, now: Instant) {
        let l = self.limits;
        self.accounts.record(
            account.to_string(),
            now,
            l.per_account,
            l.window,
            l.max_keys,
        );
        if let Some(a) = address {
            self.addresses
                .record(a, now, l.per_address, l.window, l.max_keys);
        }
    }

    /// Records a successful login: clears the account's failures.
    pub fn succeeded(&mut self, account: &str) {
        self.accounts.entries.remove(account);
    }
}

/// `wait` in whole seconds, rounded up (the `Retry-After` value).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
    .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(Limits {
            per_account: 3,
            per_address: 5,
            window: Duration::from_secs(60),
            max_keys: 100,
        })
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn account_locks_after_its_limit_and_unlocks_after_the_window() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(l.check("alice", ip(i), t0).is_ok(), "attempt {i}");
            l.failed("alice", ip(i), t0 + Duration::from_secs(u64::from(i)));
        }
        let now = t0 + Duration::from_secs(10);
        let wait = l.check("alice", ip(9), now).expect_err("locked");
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the first failure expires"
        );
        assert_eq!(retry_after_secs(wait), 50);
        assert!(
            l.check("bob", ip(9), now).is_ok(),
            "other accounts unaffected"
        );
        assert!(l
            .check("alice", ip(9), t0 + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn address_locks_across_account_names() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..5 {
            l.failed(&format!("user{i}"), ip(1), t0);
        }
        assert!(l.check("someone-else", ip(1), t0).is_err());
        assert!(l.check("someone-else", ip(2), t0).is_ok());
        assert!(l.check("someone-else", None, t0).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let mut l = limiter();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.failed("alice", ip(1), t0);
        }
        assert!(l.check("alice", ip(2), t0).is_err());
        l.succeeded("alice");
        assert!(l.check("alice", ip(2), t0).is_ok());
        l.failed("x", ip(1), t0);
        l.failed("y", ip(1), t0);
        assert!(
            l.check("alice", ip(1), t0).is_err(),
            "address has 5 failures"
        );
    }

    #[test]
    fn sliding_window_counts_only_recent_failures() {
        let mut l = limiter();
        let t0 = Instant::now();
        l.failed("a", None, t0);
        l.failed("a", None, t0 + Duration::from_secs(30));
        l.failed("a", None, t0 + Duration::from_secs(61));
        assert!(
            l.check("a", None, t0 + Duration::from_secs(62)).is_ok(),
            "first expired"
        );
        l.failed("a", None, t0 + Duration::from_secs(62));
        let wait = l
            .check("a", None, t0 + Duration::from_secs(62))
            .expect_err("three in the window");
        assert_eq!(wait, Duration::from_secs(28));
    }

    #[test]
    fn tracked_keys_are_bounded() {
        let mut l = LoginLimiter::new(Limits {
            per_account: 1,
            per_address: 1,
            window: Duration::from_secs(60),
            max_keys: 10,
        });
        let t0 = Instant::now();
        for i in 0..100u32 {
            l.failed(
                &format!("u{i}"),
                None,
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(l.accounts.entries.len() <= 10);
        assert!(
            l.check("u99", None, t0 + Duration::from_secs(1)).is_err(),
            "newest kept"
        );
        assert!(
            l.check("u0", None, t0 + Duration::from_secs(1)).is_ok(),
            "oldest evicted"
        );
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
