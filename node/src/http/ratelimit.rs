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
//! login clears its account's counter (not the address's earlier failures:
//! one address trying many accounts stays limited).
//!
//! The limiter is **per node**: each `cairnd` counts the attempts it
//! answered, so an attacker spreading attempts over `n` nodes gets `n`
//! times the budget. That keeps failed logins out of the replicated log
//! (no write amplification from an attack) at a bounded cost.
//!
//! Attempts are counted *before* the credential check: [`LoginLimiter::begin`]
//! checks the limits and records the attempt as a failure in one step
//! (under the caller's lock), so concurrent wrong logins cannot all pass
//! the check while the first ones are still awaiting the check of their
//! key; a correct key gives the attempt back ([`LoginLimiter::succeeded`]),
//! as does a request that failed for another reason
//! ([`LoginLimiter::release`]).
//!
//! Pure: the clock is passed in ([`Instant`]), so the tests drive time.
//! Memory is bounded: account names are kept as a fixed-size hash (a name
//! of a megabyte costs 32 bytes), entries whose failures have all left the
//! window are purged at least once per window, and at most
//! [`Limits::max_keys`] names and as many addresses are tracked — when
//! every tracked key is still active, the eighth with the oldest latest
//! failure is forgotten at once (amortised: no scan per request).

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
    /// Most names tracked at once, and most addresses.
    pub max_keys: usize,
}

impl Default for Limits {
    /// 5 failures per account and 20 per address in 5 minutes; 50,000
    /// names and 50,000 addresses (a few MB at most).
    fn default() -> Self {
        Limits {
            per_account: 5,
            per_address: 20,
            window: Duration::from_secs(300),
            max_keys: 50_000,
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

    /// Forgets one failure recorded at `at` (a given-back attempt).
    fn forget(&mut self, at: Instant) {
        if let Some(i) = self.0.iter().rposition(|t| *t == at) {
            self.0.remove(i);
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

    /// Drops every entry with no failure left in the window.
    fn purge(&mut self, now: Instant, window: Duration) {
        self.entries.retain(|_, f| {
            f.expire(now, window);
            !f.0.is_empty()
        });
    }

    fn record(&mut self, key: K, now: Instant, limit: usize, window: Duration, max_keys: usize) {
        if !self.entries.contains_key(&key) && self.entries.len() >= max_keys {
            self.purge(now, window);
            if self.entries.len() >= max_keys {
                self.evict_oldest(max_keys);
            }
        }
        let failures = self.entries.entry(key).or_default();
        failures.expire(now, window);
        failures.record(now, limit);
    }

    /// Forgets the eighth of the entries (at least one) whose latest
    /// failure is oldest, so the next `max_keys / 8` new keys need no scan.
    fn evict_oldest(&mut self, max_keys: usize) {
        let n = (max_keys / 8).max(1).min(self.entries.len());
        if n == 0 {
            return;
        }
        let mut by_age: Vec<(Option<Instant>, K)> = self
            .entries
            .iter()
            .map(|(k, f)| (f.newest(), k.clone()))
            .collect();
        by_age.select_nth_unstable_by_key(n - 1, |(t, _)| *t);
        for (_, k) in by_age.into_iter().take(n) {
            self.entries.remove(&k);
        }
    }

    fn forget(&mut self, key: &K, at: Instant) {
        if let Some(f) = self.entries.get_mut(key) {
            f.forget(at);
            if f.0.is_empty() {
                self.entries.remove(key);
            }
        }
    }
}

/// An account name as the limiter keys it: a fixed-size hash, whatever
/// the name's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NameKey([u8; 32]);

impl NameKey {
    fn of(name: &str) -> Self {
        NameKey(*blake3::hash(name.as_bytes()).as_bytes())
    }
}

/// A login attempt counted by [`LoginLimiter::begin`]: give it back with
/// [`LoginLimiter::succeeded`] or [`LoginLimiter::release`], or drop it to
/// leave it counted as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an attempt is a failure unless given back"]
pub struct Attempt {
    account: NameKey,
    address: Option<IpAddr>,
    at: Instant,
}

/// Counts failed logins; see the module doc.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    accounts: Table<NameKey>,
    addresses: Table<IpAddr>,
    last_purge: Option<Instant>,
}

impl LoginLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            accounts: Table::new(),
            addresses: Table::new(),
            last_purge: None,
        }
    }

    /// Checks the limits for a login of `account` from `address` and, if
    /// it may go ahead, counts it as a failure at once (so concurrent
    /// attempts see it) and answers the [`Attempt`] to settle later.
    ///
    /// # Errors
    ///
    /// The account name or the address is locked: the time until it is
    /// not (at least one second, for `Retry-After`).
    pub fn begin(
        &mut self,
        account: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        self.purge_if_due(now);
        let l = self.limits;
        let key = NameKey::of(account);
        let by_account = self.accounts.locked_for(&key, now, l.per_account, l.window);
        let by_address =
            address.and_then(|a| self.addresses.locked_for(&a, now, l.per_address, l.window));
        if let Some(wait) = by_account.into_iter().chain(by_address).max() {
            return Err(wait.max(Duration::from_secs(1)));
        }
        self.accounts
            .record(key, now, l.per_account, l.window, l.max_keys);
        if let Some(a) = address {
            self.addresses
                .record(a, now, l.per_address, l.window, l.max_keys);
        }
        Ok(Attempt {
            account: key,
            address,
            at: now,
        })
    }

    /// The attempt had the right key: clears the account's failures and
    /// gives back the address's count of this attempt (one address trying
    /// many accounts stays limited by its failures).
    pub fn succeeded(&mut self, attempt: Attempt) {
        self.accounts.entries.remove(&attempt.account);
        if let Some(a) = attempt.address {
            self.addresses.forget(&a, attempt.at);
        }
    }

    /// The attempt ended before its key was checked (e.g. no leader):
    /// not a failure, so it is given back.
    pub fn release(&mut self, attempt: Attempt) {
        self.accounts.forget(&attempt.account, attempt.at);
        if let Some(a) = attempt.address {
            self.addresses.forget(&a, attempt.at);
        }
    }

    /// Names and addresses tracked now (for tests and diagnostics).
    pub fn tracked(&self) -> usize {
        self.accounts.entries.len() + self.addresses.entries.len()
    }

    /// Drops expired entries once per window, so memory follows recent
    /// traffic even below the cap.
    fn purge_if_due(&mut self, now: Instant) {
        let due = self
            .last_purge
            .is_none_or(|t| now.saturating_duration_since(t) >= self.limits.window);
        if due {
            self.accounts.purge(now, self.limits.window);
            self.addresses.purge(now, self.limits.window);
            self.last_purge = Some(now);
        }
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

    /// One failed login (begun and left counted).
    fn fail(l: &mut LoginLimiter, user: &str, address: Option<IpAddr>, at: Instant) {
        let _failed = l.begin(user, address, at).expect("not locked");
    }

    #[test]
    fn account_locks_after_its_limit_and_unlocks_after_the_window() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..3 {
            fail(
                &mut l,
                "alice",
                ip(i),
                t0 + Duration::from_secs(u64::from(i)),
            );
        }
        let now = t0 + Duration::from_secs(10);
        let wait = l.begin("alice", ip(9), now).expect_err("locked");
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "until the first failure expires"
        );
        assert_eq!(retry_after_secs(wait), 50);
        assert!(
            l.begin("bob", ip(9), now).is_ok(),
            "other accounts unaffected"
        );
        assert!(l
            .begin("alice", ip(9), t0 + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn begin_counts_the_attempt_before_it_is_settled() {
        // Concurrent logins: each `begin` runs under the caller's lock and
        // sees the attempts begun before it, settled or not.
        let mut l = limiter();
        let t0 = Instant::now();
        let pending: Vec<Attempt> = (0..3)
            .map(|i| l.begin("alice", ip(i), t0).expect("within the limit"))
            .collect();
        assert!(
            l.begin("alice", ip(7), t0).is_err(),
            "three unsettled attempts fill the limit"
        );
        // One had the right key: the account is cleared.
        l.succeeded(pending[0]);
        assert!(l.begin("alice", ip(7), t0).is_ok());
    }

    #[test]
    fn a_released_attempt_is_not_a_failure() {
        let mut l = limiter();
        let t0 = Instant::now();
        for _ in 0..10 {
            let a = l.begin("alice", ip(1), t0).expect("never locked");
            l.release(a);
        }
        assert_eq!(l.tracked(), 0, "nothing left counted");
    }

    #[test]
    fn address_locks_across_account_names() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..5 {
            fail(&mut l, &format!("user{i}"), ip(1), t0);
        }
        assert!(l.begin("someone-else", ip(1), t0).is_err());
        assert!(l.begin("someone-else", ip(2), t0).is_ok());
        assert!(l.begin("someone-else", None, t0).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let mut l = limiter();
        let t0 = Instant::now();
        for _ in 0..2 {
            fail(&mut l, "alice", ip(1), t0);
        }
        let right = l.begin("alice", ip(2), t0).expect("third attempt");
        assert!(l.begin("alice", ip(2), t0).is_err());
        l.succeeded(right);
        assert!(l.begin("alice", ip(3), t0).is_ok(), "account cleared");
        fail(&mut l, "x", ip(1), t0);
        fail(&mut l, "y", ip(1), t0);
        fail(&mut l, "z", ip(1), t0);
        assert!(
            l.begin("alice", ip(1), t0).is_err(),
            "address has 5 failures"
        );
    }

    #[test]
    fn sliding_window_counts_only_recent_failures() {
        let mut l = limiter();
        let t0 = Instant::now();
        fail(&mut l, "a", None, t0);
        fail(&mut l, "a", None, t0 + Duration::from_secs(30));
        fail(&mut l, "a", None, t0 + Duration::from_secs(61));
        fail(&mut l, "a", None, t0 + Duration::from_secs(62));
        let wait = l
            .begin("a", None, t0 + Duration::from_secs(62))
            .expect_err("three in the window");
        assert_eq!(wait, Duration::from_secs(28));
    }

    #[test]
    fn tracked_keys_are_capped_and_the_oldest_evicted() {
        let mut l = LoginLimiter::new(Limits {
            per_account: 1,
            per_address: 1,
            window: Duration::from_secs(60),
            max_keys: 10,
        });
        let t0 = Instant::now();
        for i in 0..100u32 {
            fail(
                &mut l,
                &format!("u{i}"),
                None,
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(l.accounts.entries.len() <= 10);
        assert!(
            l.begin("u99", None, t0 + Duration::from_secs(1)).is_err(),
            "newest kept"
        );
        assert!(
            l.begin("u0", None, t0 + Duration::from_secs(1)).is_ok(),
            "oldest evicted"
        );
    }

    #[test]
    fn expired_entries_are_purged_below_the_cap() {
        let mut l = limiter();
        let t0 = Instant::now();
        for i in 0..50u8 {
            fail(&mut l, &format!("u{i}"), ip(i), t0);
        }
        assert_eq!(l.tracked(), 100);
        // One window later, the next attempt purges everything expired.
        let later = t0 + Duration::from_secs(61);
        fail(&mut l, "late", ip(200), later);
        assert_eq!(l.tracked(), 2, "only the new attempt's name and address");
    }

    #[test]
    fn long_names_cost_a_fixed_size_key() {
        let mut l = limiter();
        let t0 = Instant::now();
        let long = "n".repeat(1 << 20);
        for _ in 0..3 {
            fail(&mut l, &long, None, t0);
        }
        assert!(l.begin(&long, None, t0).is_err(), "still limited");
        let key = NameKey::of(&long);
        assert_eq!(std::mem::size_of_val(&key), 32);
        assert!(l.accounts.entries.contains_key(&key));
        assert!(l.begin(&long[1..], None, t0).is_ok(), "another name");
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
    }
}
