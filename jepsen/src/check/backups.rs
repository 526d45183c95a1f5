//! The backups checker, over the backup workload's operations
//! ([`crate::backup`]): every committed snapshot is still listed after the
//! faults unless retention may have forgotten it; every listed snapshot
//! restores, byte for byte the tree it was made of; no restore during the
//! run came back different; and `cairn check --read-data` (every chunk of
//! every snapshot read back) passed at the end. Backups ran while
//! retention forgot and pruned: a snapshot losing a chunk to a prune fails
//! its restore and the check.

use std::collections::{BTreeMap, BTreeSet};

use super::{Outcome, Verdict};
use crate::history::{Call, History, Outcome as OpOutcome};

/// Checks the history; operations invoked at or after `final_ms` are the
/// verification after the faults ([`crate::backup::verify`]).
pub fn check(history: &History, final_ms: u64) -> Verdict {
    // Committed snapshots: id → (tree, op).
    let mut committed: BTreeMap<&str, (u64, usize, u64)> = BTreeMap::new();
    let mut unknown_backups = 0usize;
    let mut forgotten: BTreeSet<&str> = BTreeSet::new();
    // Retention runs that may have forgotten anything committed before.
    let mut unsure_retention_until: Option<u64> = None;
    let mut retentions = 0usize;
    let mut listed: Option<BTreeSet<&str>> = None;
    let mut problems: Vec<(String, Vec<usize>)> = Vec::new();
    // Per snapshot, the last verification restore: (op, ok?, error).
    let mut final_restores: BTreeMap<&str, (usize, Result<(), String>)> = BTreeMap::new();
    let mut checked: Option<Result<(), String>> = None;
    for op in &history.ops {
        match (&op.call, &op.outcome) {
            (Call::Backup { tree }, OpOutcome::Ok { value: Some(id) }) => {
                committed.insert(id, (*tree, op.index, op.end_ms));
            }
            (Call::Backup { .. }, OpOutcome::Unknown { .. }) => unknown_backups += 1,
            (Call::Retention, OpOutcome::Ok { value }) => {
                retentions += 1;
                forgotten.extend(
                    value
                        .iter()
                        .flat_map(|v| v.split(','))
                        .filter(|s| !s.is_empty()),
                );
            }
            (Call::Retention, _) => {
                retentions += 1;
                unsure_retention_until = unsure_retention_until.max(Some(op.end_ms));
            }
            (Call::Restore { snapshot, tree }, OpOutcome::Ok { value }) => {
                if let Some(diff) = value {
                    problems.push((
                        format!("snapshot {snapshot} (tree {tree}) restored differently: {diff}"),
                        vec![op.index],
                    ));
                } else if let Some((t, made, _)) = committed.get(snapshot.as_str()) {
                    if t != tree {
                        problems.push((
                            format!("snapshot {snapshot} of tree {t} restored tree {tree}"),
                            vec![*made, op.index],
                        ));
                    }
                }
                if op.start_ms >= final_ms {
                    final_restores.insert(snapshot, (op.index, Ok(())));
                }
            }
            (
                Call::Restore { snapshot, .. },
                OpOutcome::Fail { error } | OpOutcome::Unknown { error },
            ) if op.start_ms >= final_ms => {
                final_restores.insert(snapshot, (op.index, Err(error.clone())));
            }
            (Call::Snapshots, OpOutcome::Ok { value }) if op.start_ms >= final_ms => {
                listed = Some(
                    value
                        .iter()
                        .flat_map(|v| v.split(','))
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            (Call::Check, OpOutcome::Ok { .. }) if op.start_ms >= final_ms => {
                checked = Some(Ok(()))
            }
            // A failed attempt counts unless one passed.
            (Call::Check, OpOutcome::Fail { error } | OpOutcome::Unknown { error })
                if op.start_ms >= final_ms && !matches!(checked, Some(Ok(()))) =>
            {
                checked = Some(Err(error.clone()));
            }
            _ => {}
        }
    }
    let Some(listed) = listed else {
        return verdict(
            Outcome::Unknown,
            if committed.is_empty() {
                "no backup was committed and the snapshots were not listed".into()
            } else {
                "the snapshots could not be listed after the faults".into()
            },
            Vec::new(),
        );
    };
    for (id, (tree, op, end)) in &committed {
        let maybe_forgotten =
            forgotten.contains(id) || unsure_retention_until.is_some_and(|u| *end <= u);
        if !listed.contains(id) && !maybe_forgotten {
            problems.push((
                format!(
                    "committed snapshot {id} (tree {tree}) is gone, and no retention forgot it"
                ),
                vec![*op],
            ));
        }
    }
    for id in &listed {
        match final_restores.get(id) {
            Some((_, Ok(()))) => {}
            Some((op, Err(e))) => {
                problems.push((format!("snapshot {id} does not restore: {e}"), vec![*op]))
            }
            None => problems.push((format!("snapshot {id} was not restored"), Vec::new())),
        }
    }
    match &checked {
        Some(Ok(())) => {}
        Some(Err(e)) => problems.push((format!("check --read-data failed: {e}"), Vec::new())),
        None => problems.push(("check --read-data did not run".into(), Vec::new())),
    }
    if let Some((first, _)) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let mut ops: Vec<usize> = problems.iter().flat_map(|(_, o)| o.clone()).collect();
        ops.sort_unstable();
        ops.dedup();
        return verdict(Outcome::Invalid, format!("{first}{more}"), ops);
    }
    if committed.is_empty() {
        return verdict(
            Outcome::Unknown,
            "no backup was committed".into(),
            Vec::new(),
        );
    }
    verdict(
        Outcome::Valid,
        format!(
            "{} backups committed ({unknown_backups} unknown), {retentions} retention runs \
             forgot {}; all {} snapshots left restore byte for byte; check --read-data clean",
            committed.len(),
            forgotten.len(),
            listed.len()
        ),
        Vec::new(),
    )
}

fn verdict(result: Outcome, summary: String, ops: Vec<usize>) -> Verdict {
    Verdict {
        checker: "backups",
        result,
        summary,
        ops,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn op(index: usize, start: u64, call: Call, outcome: OpOutcome) -> Op {
        Op {
            index,
            client: 7,
            node: 0,
            start_ms: start,
            end_ms: start + 5,
            call,
            outcome,
        }
    }

    fn ok(v: Option<&str>) -> OpOutcome {
        OpOutcome::Ok {
            value: v.map(str::to_string),
        }
    }

    fn restore(index: usize, start: u64, id: &str, tree: u64, diff: Option<&str>) -> Op {
        op(
            index,
            start,
            Call::Restore {
                snapshot: id.into(),
                tree,
            },
            ok(diff),
        )
    }

    /// s0..s3 committed; retention forgot s0; s1..s3 listed and restored.
    fn good() -> Vec<Op> {
        vec![
            op(0, 0, Call::Backup { tree: 0 }, ok(Some("s0"))),
            op(1, 10, Call::Backup { tree: 1 }, ok(Some("s1"))),
            op(2, 20, Call::Backup { tree: 2 }, ok(Some("s2"))),
            op(3, 30, Call::Backup { tree: 3 }, ok(Some("s3"))),
            op(4, 40, Call::Retention, ok(Some("s0"))),
            restore(5, 50, "s3", 3, None),
            op(6, 1_000, Call::Snapshots, ok(Some("s1,s2,s3"))),
            restore(7, 1_010, "s1", 1, None),
            restore(8, 1_020, "s2", 2, None),
            restore(9, 1_030, "s3", 3, None),
            op(10, 1_040, Call::Check, ok(None)),
        ]
    }

    fn run(ops: Vec<Op>) -> Verdict {
        check(
            &History {
                ops,
                nemesis: vec![],
            },
            1_000,
        )
    }

    #[test]
    fn kept_snapshots_that_restore_are_valid() {
        let v = run(good());
        assert_eq!(v.result, Outcome::Valid, "{}", v.summary);
        assert!(v.summary.contains("4 backups committed"), "{}", v.summary);
    }

    #[test]
    fn a_committed_snapshot_gone_is_caught() {
        let mut ops = good();
        ops[6] = op(6, 1_000, Call::Snapshots, ok(Some("s2,s3")));
        ops.remove(7);
        let v = run(ops);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("s1 (tree 1) is gone"), "{}", v.summary);
        assert_eq!(v.ops, vec![1]);
        // An unsure retention after it may have forgotten it.
        let mut ops = good();
        ops[6] = op(6, 1_000, Call::Snapshots, ok(Some("s2,s3")));
        ops.remove(7);
        ops[4] = op(
            4,
            40,
            Call::Retention,
            OpOutcome::Unknown {
                error: "timed out".into(),
            },
        );
        assert_eq!(run(ops).result, Outcome::Valid);
    }

    #[test]
    fn a_restore_that_differs_or_fails_is_caught() {
        let mut ops = good();
        ops[5] = restore(5, 50, "s3", 3, Some("f2 differs"));
        assert_eq!(run(ops).result, Outcome::Invalid);
        let mut ops = good();
        ops[8] = op(
            8,
            1_020,
            Call::Restore {
                snapshot: "s2".into(),
                tree: 0,
            },
            OpOutcome::Fail {
                error: "chunk missing".into(),
            },
        );
        let v = run(ops);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(
            v.summary.contains("s2 does not restore: chunk missing"),
            "{}",
            v.summary
        );
        // A restore of the wrong tree.
        let mut ops = good();
        ops[9] = restore(9, 1_030, "s3", 2, None);
        assert_eq!(run(ops).result, Outcome::Invalid);
    }

    #[test]
    fn a_failed_check_is_caught() {
        let mut ops = good();
        ops[10] = op(
            10,
            1_040,
            Call::Check,
            OpOutcome::Fail {
                error: "3 chunks missing".into(),
            },
        );
        let v = run(ops);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("3 chunks missing"), "{}", v.summary);
    }
}
