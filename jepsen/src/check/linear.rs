//! A linearizability checker for one register (Wing & Gong's search with
//! Lowe's memoisation of (linearized set, value) states, as Knossos does).
//!
//! Histories are split per key by the caller, which keeps each search
//! small. A write whose outcome is unknown may take effect at any point
//! after its invocation, or never; reads and writes that failed, and reads
//! that did not answer, are left out by the caller (they had no effect).

use std::collections::HashSet;

/// One operation on the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegOp {
    /// The operation's index in the run's history (for verdicts).
    pub index: usize,
    /// Invoke time.
    pub start: u64,
    /// Completion time; `None` for a write with an unknown outcome.
    pub end: Option<u64>,
    /// What it did.
    pub kind: RegKind,
}

/// A register operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegKind {
    /// Set the value.
    Write(String),
    /// Observed this value (`None`: the register was not set).
    Read(Option<String>),
}

/// What the checker concluded about one register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A legal order exists.
    Linearizable,
    /// No legal order exists; `ops` are the history indexes of the
    /// operations no order could place after the longest legal prefix.
    NotLinearizable { ops: Vec<usize> },
    /// The search gave up after visiting this many states.
    GaveUp { states: usize },
}

/// Checks `ops` (any order) against a register that starts unset, visiting
/// at most `budget` states.
pub fn check(ops: &[RegOp], budget: usize) -> Verdict {
    let mut ops = ops.to_vec();
    ops.sort_by_key(|o| (o.start, o.end.unwrap_or(u64::MAX)));
    // Values as small integers: 0 is "unset".
    let mut values: Vec<Option<String>> = vec![None];
    let mut code = |v: Option<&String>| -> u32 {
        match values.iter().position(|x| x.as_ref() == v) {
            Some(i) => i as u32,
            None => {
                values.push(v.cloned());
                (values.len() - 1) as u32
            }
        }
    };
    // (is a write, value code): the effect of each op.
    let effect: Vec<(bool, u32)> = ops
        .iter()
        .map(|o| match &o.kind {
            RegKind::Write(v) => (true, code(Some(v))),
            RegKind::Read(v) => (false, code(v.as_ref())),
        })
        .collect();
    let n = ops.len();
    let end = |i: usize| ops[i].end.unwrap_or(u64::MAX);
    let mut required_left = ops.iter().filter(|o| o.end.is_some()).count();
    let mut lin = vec![0u64; n.div_ceil(64)];
    let is_lin = |lin: &[u64], i: usize| lin[i / 64] & (1 << (i % 64)) != 0;
    let flip = |lin: &mut [u64], i: usize| lin[i / 64] ^= 1 << (i % 64);
    let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
    let mut stack: Vec<(usize, u32)> = Vec::new();
    let mut value = 0u32;
    let mut cursor = 0usize;
    let mut deepest: (usize, Vec<usize>) = (0, Vec::new());
    loop {
        if required_left == 0 {
            return Verdict::Linearizable;
        }
        if seen.len() > budget {
            return Verdict::GaveUp { states: seen.len() };
        }
        // An op may go next only if no pending op completed before it began.
        let min_end = (0..n)
            .filter(|&i| !is_lin(&lin, i))
            .map(end)
            .min()
            .unwrap_or(u64::MAX);
        let mut next = None;
        for i in cursor..n {
            if ops[i].start > min_end {
                break;
            }
            if is_lin(&lin, i) {
                continue;
            }
            let (write, v) = effect[i];
            if !write && v != value {
                continue;
            }
            let after = if write { v } else { value };
            flip(&mut lin, i);
            if seen.insert((lin.clone(), after)) {
                next = Some((i, after));
                break;
            }
            flip(&mut lin, i);
        }
        match next {
            Some((i, after)) => {
                stack.push((i, value));
                value = after;
                cursor = 0;
                if ops[i].end.is_some() {
                    required_left -= 1;
                }
            }
            None => {
                if deepest.1.is_empty() || stack.len() > deepest.0 {
                    // The required ops that could not be placed here.
                    let stuck = (0..n)
                        .filter(|&i| !is_lin(&lin, i) && ops[i].end.is_some())
                        .filter(|&i| ops[i].start <= min_end)
                        .map(|i| ops[i].index)
                        .collect();
                    deepest = (stack.len(), stuck);
                }
                let Some((i, prev)) = stack.pop() else {
                    return Verdict::NotLinearizable { ops: deepest.1 };
                };
                flip(&mut lin, i);
                value = prev;
                cursor = i + 1;
                if ops[i].end.is_some() {
                    required_left += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(index: usize, start: u64, end: Option<u64>, v: &str) -> RegOp {
        RegOp {
            index,
            start,
            end,
            kind: RegKind::Write(v.into()),
        }
    }

    fn r(index: usize, start: u64, end: u64, v: Option<&str>) -> RegOp {
        RegOp {
            index,
            start,
            end: Some(end),
            kind: RegKind::Read(v.map(str::to_string)),
        }
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_caught() {
        let h = [
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(30), "b"),
            r(2, 40, 50, Some("a")),
        ];
        assert_eq!(check(&h, 1000), Verdict::NotLinearizable { ops: vec![2] });
    }

    #[test]
    fn a_concurrent_read_may_see_either_value() {
        let h = [
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(30), "b"),
            r(2, 25, 50, Some("a")),
            r(3, 26, 51, Some("b")),
        ];
        assert_eq!(check(&h, 1000), Verdict::Linearizable);
    }

    #[test]
    fn reads_cannot_go_back_in_time() {
        // b is seen, then a later read sees a again: not linearizable.
        let h = [
            w(0, 0, Some(10), "a"),
            w(1, 20, Some(100), "b"),
            r(2, 30, 40, Some("b")),
            r(3, 50, 60, Some("a")),
        ];
        assert!(matches!(check(&h, 1000), Verdict::NotLinearizable { .. }));
    }

    #[test]
    fn an_unknown_write_may_apply_late_or_never() {
        let late = [
            w(0, 0, None, "a"),
            r(1, 10, 20, None),
            r(2, 30, 40, Some("a")),
        ];
        assert_eq!(check(&late, 1000), Verdict::Linearizable);
        let never = [w(0, 0, None, "a"), r(1, 10, 20, None)];
        assert_eq!(check(&never, 1000), Verdict::Linearizable);
        // A value nobody wrote is never legal.
        let invented = [w(0, 0, None, "a"), r(1, 10, 20, Some("z"))];
        assert!(matches!(
            check(&invented, 1000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn the_budget_is_reported() {
        let h: Vec<RegOp> = (0..20).map(|i| w(i, 0, None, &i.to_string())).collect();
        let mut with_read = h.clone();
        with_read.push(r(99, 1, 2, Some("nobody")));
        assert!(matches!(check(&with_read, 50), Verdict::GaveUp { .. }));
    }

    /// A history generated from a real sequential execution: each op takes
    /// effect at a point inside its interval; unknown writes maybe never.
    fn simulated() -> impl Strategy<Value = Vec<RegOp>> {
        prop::collection::vec(
            (0u64..200, 1u64..40, any::<bool>(), 0u8..4, any::<bool>()),
            1..18,
        )
        .prop_map(|spec| {
            // (point, index, start, end, is write, unknown, applies)
            let mut events: Vec<(u64, usize, u64, Option<u64>, bool, bool)> = spec
                .iter()
                .enumerate()
                .map(|(i, &(start, len, write, kind, applies))| {
                    let end = start + len;
                    let point = start + (len * u64::from(kind)) / 4;
                    let unknown = write && kind == 3;
                    let end = if unknown { None } else { Some(end) };
                    (point, i, start, end, write, unknown && !applies)
                })
                .collect();
            events.sort();
            let mut value: Option<String> = None;
            let mut ops = Vec::new();
            for (_, i, start, end, write, skipped) in events {
                let kind = if write {
                    if !skipped {
                        value = Some(format!("v{i}"));
                    }
                    RegKind::Write(format!("v{i}"))
                } else {
                    RegKind::Read(value.clone())
                };
                ops.push(RegOp {
                    index: i,
                    start,
                    end,
                    kind,
                });
            }
            ops
        })
    }

    proptest! {
        #[test]
        fn real_executions_are_linearizable(h in simulated()) {
            prop_assert_eq!(check(&h, 1_000_000), Verdict::Linearizable);
        }

        #[test]
        fn a_read_of_a_value_never_written_is_caught(h in simulated(), at in 0usize..18) {
            let mut h = h;
            let reads: Vec<usize> = (0..h.len()).filter(|&i| matches!(h[i].kind, RegKind::Read(_))).collect();
            prop_assume!(!reads.is_empty());
            let i = reads[at % reads.len()];
            h[i].kind = RegKind::Read(Some("never written".into()));
            let expected = h[i].index;
            match check(&h, 1_000_000) {
                Verdict::NotLinearizable { ops } => prop_assert!(ops.contains(&expected), "{ops:?}"),
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
