//! The lease checker: the license lease is exclusive and fenced. From the
//! lease operations of the history (the cluster's nodes' views, the rival
//! holder's grants and renewals) and the authority's own record of every
//! tenure, it checks that
//!
//! - no two holders held the serial at the same time: each ok operation
//!   that saw a lease held proves it held over `[end, start + valid)` (the
//!   answer was given somewhere inside the operation), and such intervals
//!   of different holders must not overlap;
//! - fencing tokens strictly increase: a token belongs to one holder, and a
//!   tenure first seen after another one was seen has a larger token; the
//!   authority's tenures carry strictly increasing tokens and do not overlap
//!   across holders;
//! - separately ([`check_views`], verdict `lease-view`): no holder counted
//!   on its lease past the end of its hold at the authority: its tenure
//!   and any it took up right after under a new token (the margin a
//!   cluster takes off is there for exactly this).
//!
//! Times of the authority are its wall clock; the harness's are ms since
//! the run started, whose wall clock time it records (`t0_epoch_ms`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Outcome, Verdict};
use crate::history::{Call, History, LeaseHeld, Outcome as OpOutcome};

/// How far the harness's and the authority's clocks may disagree (same
/// machine: two readings of the wall clock at the run's start).
pub const CLOCK_TOLERANCE_MS: u64 = 50;

/// One tenure of the authority's history: who held the serial under
/// which fencing token, from when until when (authority clock, ms since
/// the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

/// A lease an operation proved held: by `holder`, under `token`, over
/// `[from_ms, until_ms)` of the run (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    /// The operation.
    pub op: usize,
    /// The holder (a cluster id).
    pub holder: String,
    /// The fencing token.
    pub token: u64,
    /// Start of the proven interval (the operation's completion).
    pub from_ms: u64,
    /// End (the operation's invocation plus the lease's remaining time).
    pub until_ms: u64,
    /// When the operation was invoked.
    pub start_ms: u64,
}

/// Every lease the history's ok lease operations saw held.
pub fn holdings(history: &History) -> Vec<Holding> {
    history
        .ops
        .iter()
        .filter_map(|op| {
            let (Call::Lease { holder, .. }, OpOutcome::Ok { value: Some(v) }) =
                (&op.call, &op.outcome)
            else {
                return None;
            };
            let held = LeaseHeld::parse(v)?;
            Some(Holding {
                op: op.index,
                holder: holder.clone(),
                token: held.token,
                from_ms: op.end_ms,
                until_ms: op.start_ms.saturating_add(held.valid_ms),
                start_ms: op.start_ms,
            })
        })
        .collect()
}

/// Checks the history's lease operations against each other and against
/// the authority's `tenures`.
pub fn check(history: &History, tenures: &[Tenure]) -> Verdict {
    let held = holdings(history);
    let mut problems: Vec<(String, Vec<usize>)> = Vec::new();
    problems.extend(overlaps(&held));
    problems.extend(token_order(&held));
    problems.extend(authority_record(tenures));
    problems.extend(foreign_tokens(&held, tenures));
    let holders: BTreeMap<&str, usize> = held.iter().fold(BTreeMap::new(), |mut m, h| {
        *m.entry(h.holder.as_str()).or_default() += 1;
        m
    });
    let (result, summary) = if let Some((first, _)) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        (Outcome::Invalid, format!("{first}{more}"))
    } else if held.is_empty() {
        (Outcome::Unknown, "no lease was ever seen held".to_string())
    } else {
        let seen: Vec<String> = holders.iter().map(|(h, n)| format!("{h} {n}")).collect();
        let tokens = tenures.iter().map(|t| t.fencing_token);
        let range = match (tokens.clone().min(), tokens.max()) {
            (Some(a), Some(b)) => format!("tokens {a}–{b}"),
            _ => "no tokens".into(),
        };
        (
            Outcome::Valid,
            format!(
                "{} tenures ({range}), leases seen held ({}): never two holders at once, tokens increasing",
                tenures.len(),
                seen.join(", ")
            ),
        )
    };
    let mut ops: Vec<usize> = problems.into_iter().flat_map(|(_, o)| o).collect();
    ops.sort_unstable();
    ops.dedup();
    Verdict {
        checker: "lease",
        result,
        summary,
        ops,
    }
}

/// Proven intervals of different holders that overlap, and tokens seen
/// with two holders.
fn overlaps(held: &[Holding]) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for (i, a) in held.iter().enumerate() {
        for b in &held[i + 1..] {
            if a.holder == b.holder {
                continue;
            }
            if a.token == b.token {
                out.push((
                    format!(
                        "fencing token {} held by {} (op {}) and {} (op {})",
                        a.token, a.holder, a.op, b.holder, b.op
                    ),
                    vec![a.op, b.op],
                ));
            } else if a.from_ms < a.until_ms
                && b.from_ms < b.until_ms
                && a.from_ms < b.until_ms
                && b.from_ms < a.until_ms
            {
                out.push((
                    format!(
                        "two holders at once: {} (token {}, op {}, {}–{} ms) and {} (token {}, op {}, {}–{} ms)",
                        a.holder, a.token, a.op, a.from_ms, a.until_ms,
                        b.holder, b.token, b.op, b.from_ms, b.until_ms
                    ),
                    vec![a.op, b.op],
                ));
            }
        }
    }
    out
}

/// Tenures (holder, token) in the order they were first seen: one first
/// seen (completed) before another was first asked for has the smaller
/// token.
fn token_order(held: &[Holding]) -> Vec<(String, Vec<usize>)> {
    let mut first: BTreeMap<(&str, u64), &Holding> = BTreeMap::new();
    for h in held {
        let e = first.entry((h.holder.as_str(), h.token)).or_insert(h);
        if h.from_ms < e.from_ms {
            *e = h;
        }
    }
    let firsts: Vec<&Holding> = first.into_values().collect();
    let mut out = Vec::new();
    for a in &firsts {
        for b in &firsts {
            if a.from_ms < b.start_ms
                && a.token >= b.token
                && (a.holder != b.holder || a.token != b.token)
            {
                out.push((
                    format!(
                        "fencing token went back: {} (op {}) saw token {} before {} (op {}) first saw token {}",
                        a.holder, a.op, a.token, b.holder, b.op, b.token
                    ),
                    vec![a.op, b.op],
                ));
            }
        }
    }
    out
}

/// The `lease-view` checker: no operation saw a lease counted on past the
/// end of its tenure at the authority (beyond [`CLOCK_TOLERANCE_MS`]); the
/// operations that did are named.
pub fn check_views(history: &History, tenures: &[Tenure], t0_epoch_ms: u64) -> Verdict {
    let held = holdings(history);
    let mut ordered: Vec<&Tenure> = tenures.iter().collect();
    ordered.sort_by_key(|t| t.fencing_token);
    let mut late: Vec<(&Holding, u64)> = Vec::new();
    for h in &held {
        if let Some(until) = holding_end(&ordered, &h.holder, h.token) {
            let end = until.saturating_sub(t0_epoch_ms);
            if h.until_ms > end + CLOCK_TOLERANCE_MS {
                late.push((h, end));
            }
        }
    }
    let (result, summary) = match late.iter().max_by_key(|(h, end)| h.until_ms - end) {
        Some((h, end)) => (
            Outcome::Invalid,
            format!(
                "{} views counted on a lease past its tenure; worst: {} (op {}) counted on \
                 token {} until {} ms, but its tenure ended at {end} ms",
                late.len(),
                h.holder,
                h.op,
                h.token,
                h.until_ms
            ),
        ),
        None if held.is_empty() => (Outcome::Unknown, "no lease was ever seen held".into()),
        None => (
            Outcome::Valid,
            format!(
                "all {} views of a held lease ended within its tenure",
                held.len()
            ),
        ),
    };
    Verdict {
        checker: "lease-view",
        result,
        summary,
        ops: late.iter().map(|(h, _)| h.op).collect(),
    }
}

/// When `holder`'s hold on the serial that began under `token` ended: the
/// end of that tenure, or of the tenures the holder took up right after
/// it without a gap. A holder that asks again while it holds gets a new
/// token and its old tenure ends there, but it never stopped holding: a
/// view still counting on the old token then is no risk to anyone.
/// `ordered`: the tenures by fencing token.
fn holding_end(ordered: &[&Tenure], holder: &str, token: u64) -> Option<u64> {
    let first = ordered
        .iter()
        .position(|t| t.fencing_token == token && t.cluster_id == holder)?;
    let mut until = ordered[first].until;
    for next in &ordered[first + 1..] {
        if next.cluster_id != holder || next.from > until {
            break;
        }
        until = until.max(next.until);
    }
    Some(until)
}

/// The authority's own record: tokens strictly increasing, no two
/// holders' tenures overlapping.
fn authority_record(tenures: &[Tenure]) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for w in tenures.windows(2) {
        if w[1].fencing_token <= w[0].fencing_token {
            out.push((
                format!(
                    "the authority granted token {} after token {}",
                    w[1].fencing_token, w[0].fencing_token
                ),
                Vec::new(),
            ));
        }
    }
    for (i, a) in tenures.iter().enumerate() {
        for b in &tenures[i + 1..] {
            if a.cluster_id != b.cluster_id && a.from < b.until && b.from < a.until {
                out.push((
                    format!(
                        "the authority's tenures overlap: {} (token {}) and {} (token {})",
                        a.cluster_id, a.fencing_token, b.cluster_id, b.fencing_token
                    ),
                    Vec::new(),
                ));
            }
        }
    }
    out
}

/// Leases seen held under a token the authority granted to another holder
/// (or never, within the tokens its record covers).
fn foreign_tokens(held: &[Holding], tenures: &[Tenure]) -> Vec<(String, Vec<usize>)> {
    let Some(oldest) = tenures.iter().map(|t| t.fencing_token).min() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for h in held.iter().filter(|h| h.token >= oldest) {
        match tenures.iter().find(|t| t.fencing_token == h.token) {
            Some(t) if t.cluster_id != h.holder => out.push((
                format!(
                    "{} (op {}) held token {}, which the authority granted to {}",
                    h.holder, h.op, h.token, t.cluster_id
                ),
                vec![h.op],
            )),
            Some(_) => {}
            None => out.push((
                format!(
                    "{} (op {}) held token {}, which the authority never granted",
                    h.holder, h.op, h.token
                ),
                vec![h.op],
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{LeaseRequest, Op};

    const T0: u64 = 1_000_000;

    fn op(index: usize, holder: &str, start: u64, end: u64, held: Option<(u64, u64)>) -> Op {
        Op {
            index,
            client: 0,
            node: 0,
            start_ms: start,
            end_ms: end,
            call: Call::Lease {
                holder: holder.into(),
                request: LeaseRequest::Status,
            },
            outcome: OpOutcome::Ok {
                value: held.map(|(token, valid_ms)| LeaseHeld { token, valid_ms }.to_value()),
            },
        }
    }

    fn tenure(holder: &str, token: u64, from: u64, until: u64) -> Tenure {
        Tenure {
            cluster_id: holder.into(),
            fencing_token: token,
            from: T0 + from,
            until: T0 + until,
        }
    }

    fn history(ops: Vec<Op>) -> History {
        History {
            ops,
            nemesis: vec![],
        }
    }

    /// The cluster holds token 1 until 6 s, the rival token 2 from 7 s.
    fn good() -> (History, Vec<Tenure>) {
        (
            history(vec![
                op(0, "c", 0, 10, Some((1, 5_000))),
                op(1, "c", 5_100, 5_110, None),
                op(2, "rival", 7_000, 7_020, Some((2, 6_000))),
                op(3, "c", 8_000, 8_010, None),
            ]),
            vec![tenure("c", 1, 0, 6_000), tenure("rival", 2, 7_010, 13_010)],
        )
    }

    #[test]
    fn exclusive_increasing_leases_are_valid() {
        let (h, t) = good();
        let v = check(&h, &t);
        assert_eq!(v.result, Outcome::Valid, "{}", v.summary);
        assert!(v.summary.contains("tokens 1–2"), "{}", v.summary);
    }

    #[test]
    fn nothing_held_is_unknown() {
        let v = check(&history(vec![op(0, "c", 0, 10, None)]), &[]);
        assert_eq!(v.result, Outcome::Unknown);
    }

    #[test]
    fn two_holders_at_once_are_caught() {
        let (mut h, t) = good();
        // The cluster still counts on token 1 at 7.5 s, under the rival.
        h.ops.push(op(4, "c", 7_400, 7_410, Some((1, 500))));
        let v = check(&h, &t);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("two holders at once"), "{}", v.summary);
        assert!(v.ops.contains(&2) && v.ops.contains(&4), "{:?}", v.ops);
    }

    #[test]
    fn a_token_going_back_is_caught() {
        let h = history(vec![
            op(0, "rival", 0, 10, Some((5, 100))),
            op(1, "c", 1_000, 1_010, Some((4, 100))),
        ]);
        let v = check(&h, &[]);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("went back"), "{}", v.summary);
        assert_eq!(v.ops, vec![0, 1]);
    }

    #[test]
    fn a_token_of_two_holders_is_caught() {
        let h = history(vec![
            op(0, "rival", 0, 10, Some((5, 100))),
            op(1, "c", 1_000, 1_010, Some((5, 100))),
        ]);
        let v = check(&h, &[]);
        assert_eq!(v.result, Outcome::Invalid);
    }

    #[test]
    fn a_lease_counted_past_its_tenure_is_caught() {
        let (h, mut t) = good();
        assert_eq!(check_views(&h, &t, T0).result, Outcome::Valid);
        // The authority ended the cluster's tenure at 4 s; it counted to 5 s.
        t[0].until = T0 + 4_000;
        let v = check_views(&h, &t, T0);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(
            v.summary.contains("tenure ended at 4000 ms"),
            "{}",
            v.summary
        );
        assert_eq!(v.ops, vec![0]);
        // The exclusivity checker does not judge views.
        assert_eq!(check(&h, &t).result, Outcome::Valid);
        // Within the clock tolerance is not a violation.
        t[0].until = T0 + 5_000 - CLOCK_TOLERANCE_MS;
        assert_eq!(check_views(&h, &t, T0).result, Outcome::Valid);
        assert_eq!(
            check_views(&history(vec![]), &t, T0).result,
            Outcome::Unknown
        );
    }

    #[test]
    fn a_holder_that_asks_again_holds_on_through_its_new_token() {
        // The cluster re-acquired at 4 s (token 2) and held to 9 s; a view
        // at 3 s still counting on token 1 to 5 s is within its hold.
        let h = history(vec![op(0, "c", 0, 10, Some((1, 5_000)))]);
        let mut t = vec![tenure("c", 1, 0, 4_000), tenure("c", 2, 4_000, 9_000)];
        assert_eq!(check_views(&h, &t, T0).result, Outcome::Valid);
        // A gap between the tenures (the serial was free) ends the hold.
        t[1].from = T0 + 4_500;
        assert_eq!(check_views(&h, &t, T0).result, Outcome::Invalid);
        // So does another holder in between.
        let t = vec![
            tenure("c", 1, 0, 4_000),
            tenure("rival", 2, 4_000, 4_200),
            tenure("c", 3, 4_200, 9_000),
        ];
        assert_eq!(check_views(&h, &t, T0).result, Outcome::Invalid);
    }

    #[test]
    fn a_bad_authority_record_is_caught() {
        let (h, mut t) = good();
        t[1].from = T0 + 5_000;
        let v = check(&h, &t);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("tenures overlap"), "{}", v.summary);
        let (h, mut t) = good();
        t[1].fencing_token = 1;
        t[1].cluster_id = "c".into();
        assert_eq!(check(&h, &t).result, Outcome::Invalid);
        // A token the authority gave someone else, or never gave.
        let (h, mut t) = good();
        t[1].cluster_id = "other".into();
        assert_eq!(check(&h, &t).result, Outcome::Invalid);
        let (h, mut t) = good();
        t.pop();
        assert_eq!(check(&h, &t).result, Outcome::Invalid);
    }
}
