//! The register checker: the history's reads and writes split per key,
//! each key checked for linearizability ([`super::linear`]).

use std::collections::BTreeMap;

use super::linear::{self, RegKind, RegOp};
use super::{Outcome, Verdict};
use crate::history::{Call, History, Outcome as OpOutcome};

/// States one key's search may visit before the checker gives up.
pub const BUDGET_PER_KEY: usize = 2_000_000;

/// Per key, the operations that may have had an effect: ok reads, ok
/// writes, and writes of unknown outcome (failed operations and reads that
/// did not answer are left out).
pub fn per_key(history: &History) -> BTreeMap<&str, Vec<RegOp>> {
    let mut keys: BTreeMap<&str, Vec<RegOp>> = BTreeMap::new();
    for op in &history.ops {
        let (key, kind, end) = match (&op.call, &op.outcome) {
            (Call::Write { key, value }, OpOutcome::Ok { .. }) => {
                (key, RegKind::Write(value.clone()), Some(op.end_ms))
            }
            (Call::Write { key, value }, OpOutcome::Unknown { .. }) => {
                (key, RegKind::Write(value.clone()), None)
            }
            (Call::Read { key }, OpOutcome::Ok { value }) => {
                (key, RegKind::Read(value.clone()), Some(op.end_ms))
            }
            _ => continue,
        };
        keys.entry(key.as_str()).or_default().push(RegOp {
            index: op.index,
            start: op.start_ms,
            end,
            kind,
        });
    }
    keys
}

/// Checks every key of `history` with at most `budget` states per key.
pub fn check(history: &History, budget: usize) -> Verdict {
    let keys = per_key(history);
    let mut bad = Vec::new();
    let mut ops = Vec::new();
    let mut gave_up = Vec::new();
    let mut checked = 0usize;
    for (key, reg) in &keys {
        checked += reg.len();
        match linear::check(reg, budget) {
            linear::Verdict::Linearizable => {}
            linear::Verdict::NotLinearizable { ops: stuck } => {
                bad.push(format!("{key} (ops {stuck:?})"));
                ops.extend(stuck);
            }
            linear::Verdict::GaveUp { states } => gave_up.push(format!("{key} ({states} states)")),
        }
    }
    let (result, summary) = if !bad.is_empty() {
        (
            Outcome::Invalid,
            format!("not linearizable: {}", bad.join(", ")),
        )
    } else if !gave_up.is_empty() {
        (
            Outcome::Unknown,
            format!("search gave up on {}", gave_up.join(", ")),
        )
    } else if checked == 0 {
        (Outcome::Unknown, "no register operations to check".into())
    } else {
        (
            Outcome::Valid,
            format!("{} keys, {checked} operations linearizable", keys.len()),
        )
    };
    Verdict {
        checker: "register",
        result,
        summary,
        ops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn op(index: usize, start: u64, end: u64, call: Call, outcome: OpOutcome) -> Op {
        Op {
            index,
            client: index,
            node: 0,
            start_ms: start,
            end_ms: end,
            call,
            outcome,
        }
    }

    fn write(key: &str, v: &str) -> Call {
        Call::Write {
            key: key.into(),
            value: v.into(),
        }
    }

    fn read(key: &str) -> Call {
        Call::Read { key: key.into() }
    }

    fn ok(v: Option<&str>) -> OpOutcome {
        OpOutcome::Ok {
            value: v.map(str::to_string),
        }
    }

    #[test]
    fn keys_are_independent_and_failures_have_no_effect() {
        let h = History {
            ops: vec![
                op(0, 0, 10, write("a", "1"), ok(None)),
                op(1, 0, 10, write("b", "2"), ok(None)),
                op(
                    2,
                    11,
                    12,
                    write("a", "3"),
                    OpOutcome::Fail {
                        error: "refused".into(),
                    },
                ),
                op(3, 20, 30, read("a"), ok(Some("1"))),
                op(4, 20, 30, read("b"), ok(Some("2"))),
                op(
                    5,
                    31,
                    40,
                    read("b"),
                    OpOutcome::Unknown {
                        error: "timeout".into(),
                    },
                ),
            ],
            nemesis: vec![],
        };
        let v = check(&h, 1000);
        assert_eq!(v.result, Outcome::Valid, "{v:?}");
        assert_eq!(per_key(&h).len(), 2);
    }

    #[test]
    fn a_lost_write_is_named() {
        let h = History {
            ops: vec![
                op(0, 0, 10, write("a", "1"), ok(None)),
                op(1, 20, 30, read("a"), ok(None)),
            ],
            nemesis: vec![],
        };
        let v = check(&h, 1000);
        assert_eq!(v.result, Outcome::Invalid);
        assert_eq!(v.ops, vec![1]);
        assert!(v.summary.contains("a (ops [1])"), "{}", v.summary);
    }

    #[test]
    fn nothing_to_check_is_not_a_pass() {
        assert_eq!(check(&History::default(), 10).result, Outcome::Unknown);
    }
}
