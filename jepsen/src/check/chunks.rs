//! The acknowledged-chunks checker: every chunk of an upload answered ok
//! must be readable, byte-exact, from its vault once the faults are healed
//! and repair has settled, and no chunk may be visible through a vault it
//! was not uploaded to.

use std::collections::{BTreeMap, BTreeSet};

use super::{Outcome, Verdict};
use crate::history::{Call, History, Outcome as OpOutcome};

/// What the healed cluster answered when the chunks were read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readback {
    /// (vault, chunk hex) → the bytes returned; absent when not returned.
    pub found: BTreeMap<(usize, String), Vec<u8>>,
    /// (vault asked, chunk hex) of chunks uploaded only to another vault
    /// that this vault returned anyway.
    pub foreign: Vec<(usize, String)>,
}

/// The chunks every upload answered ok acknowledged: (vault, chunk hex) →
/// the op index of the first acknowledgement.
pub fn acknowledged(history: &History) -> BTreeMap<(usize, String), usize> {
    let mut acked = BTreeMap::new();
    for op in &history.ops {
        if let (Call::Upload { vault, chunks }, OpOutcome::Ok { .. }) = (&op.call, &op.outcome) {
            for c in chunks {
                acked.entry((*vault, c.clone())).or_insert(op.index);
            }
        }
    }
    acked
}

/// Checks the read-back against the acknowledged uploads; `sent` gives the
/// bytes the client sent for a chunk's hex id.
pub fn check(
    history: &History,
    sent: &dyn Fn(&str) -> Option<Vec<u8>>,
    readback: &Readback,
) -> Verdict {
    let acked = acknowledged(history);
    let mut lost = Vec::new();
    let mut corrupt = Vec::new();
    let mut ops = BTreeSet::new();
    for (key, op) in &acked {
        match (readback.found.get(key), sent(&key.1)) {
            (Some(got), Some(sent)) if *got == sent => {}
            (Some(_), _) => {
                corrupt.push(short(&key.1));
                ops.insert(*op);
            }
            (None, _) => {
                lost.push(short(&key.1));
                ops.insert(*op);
            }
        }
    }
    let mut problems = Vec::new();
    if !lost.is_empty() {
        problems.push(format!(
            "{} acknowledged chunks lost ({})",
            lost.len(),
            list(&lost)
        ));
    }
    if !corrupt.is_empty() {
        problems.push(format!(
            "{} chunks read back with other bytes ({})",
            corrupt.len(),
            list(&corrupt)
        ));
    }
    if !readback.foreign.is_empty() {
        let names: Vec<String> = readback
            .foreign
            .iter()
            .map(|(v, c)| format!("{} via vault {v}", short(c)))
            .collect();
        problems.push(format!(
            "{} chunks visible through another vault ({})",
            names.len(),
            list(&names)
        ));
    }
    let (result, summary) = if !problems.is_empty() {
        (Outcome::Invalid, problems.join("; "))
    } else if acked.is_empty() {
        (Outcome::Unknown, "no upload was acknowledged".into())
    } else {
        (
            Outcome::Valid,
            format!(
                "all {} acknowledged chunks read back byte-exact",
                acked.len()
            ),
        )
    };
    Verdict {
        checker: "chunks",
        result,
        summary,
        ops: ops.into_iter().collect(),
    }
}

/// [`check`] of the read-back through each node (named by `via`): one
/// verdict, invalid if any node answered wrongly, naming those nodes.
pub fn check_each(
    history: &History,
    sent: &dyn Fn(&str) -> Option<Vec<u8>>,
    readbacks: &[(String, Readback)],
) -> Verdict {
    let verdicts: Vec<(&String, Verdict)> = readbacks
        .iter()
        .map(|(via, r)| (via, check(history, sent, r)))
        .collect();
    let bad: Vec<&(&String, Verdict)> = verdicts
        .iter()
        .filter(|(_, v)| v.result == Outcome::Invalid)
        .collect();
    if bad.is_empty() {
        let mut v = match verdicts.into_iter().next() {
            Some((_, v)) => v,
            None => check(history, sent, &Readback::default()),
        };
        if v.result == Outcome::Valid {
            v.summary = format!("{}, through each of {} nodes", v.summary, readbacks.len());
        }
        return v;
    }
    let mut ops = BTreeSet::new();
    let mut summary = Vec::new();
    for (via, v) in bad {
        ops.extend(v.ops.iter().copied());
        summary.push(format!("via {via}: {}", v.summary));
    }
    Verdict {
        checker: "chunks",
        result: Outcome::Invalid,
        summary: summary.join("; "),
        ops: ops.into_iter().collect(),
    }
}

/// The first 12 hex digits of a chunk id.
fn short(hex: &str) -> String {
    hex.chars().take(12).collect()
}

/// At most ten names, then how many more.
fn list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(", … {} more", names.len() - 10));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn upload(index: usize, vault: usize, chunks: &[&str], outcome: OpOutcome) -> Op {
        Op {
            index,
            client: 0,
            node: 0,
            start_ms: 0,
            end_ms: 1,
            call: Call::Upload {
                vault,
                chunks: chunks.iter().map(|c| c.to_string()).collect(),
            },
            outcome,
        }
    }

    fn setup() -> (History, BTreeMap<String, Vec<u8>>, Readback) {
        let history = History {
            ops: vec![
                upload(0, 0, &["aa", "bb"], OpOutcome::Ok { value: None }),
                upload(
                    1,
                    1,
                    &["cc"],
                    OpOutcome::Unknown {
                        error: "timeout".into(),
                    },
                ),
            ],
            nemesis: vec![],
        };
        let contents: BTreeMap<String, Vec<u8>> = [("aa", 1u8), ("bb", 2), ("cc", 3)]
            .into_iter()
            .map(|(c, b)| (c.to_string(), vec![b; 4]))
            .collect();
        let readback = Readback {
            found: [
                ((0, "aa".to_string()), vec![1; 4]),
                ((0, "bb".into()), vec![2; 4]),
            ]
            .into_iter()
            .collect(),
            foreign: vec![],
        };
        (history, contents, readback)
    }

    #[test]
    fn everything_acknowledged_read_back_is_valid_and_unknown_uploads_may_be_gone() {
        let (h, c, r) = setup();
        let v = check(&h, &|k| c.get(k).cloned(), &r);
        assert_eq!(v.result, Outcome::Valid, "{v:?}");
    }

    #[test]
    fn a_lost_or_altered_chunk_names_its_upload() {
        let (h, c, mut r) = setup();
        r.found.remove(&(0, "bb".to_string()));
        let v = check(&h, &|k| c.get(k).cloned(), &r);
        assert_eq!(v.result, Outcome::Invalid);
        assert_eq!(v.ops, vec![0]);
        assert!(
            v.summary.contains("1 acknowledged chunks lost (bb)"),
            "{}",
            v.summary
        );
        let (h, c, mut r) = setup();
        r.found.insert((0, "aa".to_string()), vec![9; 4]);
        let v = check(&h, &|k| c.get(k).cloned(), &r);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("other bytes (aa)"), "{}", v.summary);
    }

    #[test]
    fn every_node_must_answer_right() {
        let (h, c, good) = setup();
        let mut bad = good.clone();
        bad.found.insert((0, "aa".to_string()), vec![9; 4]);
        let all_good = [
            ("n1".to_string(), good.clone()),
            ("n2".to_string(), good.clone()),
        ];
        let v = check_each(&h, &|k| c.get(k).cloned(), &all_good);
        assert_eq!(v.result, Outcome::Valid);
        assert!(
            v.summary.ends_with("through each of 2 nodes"),
            "{}",
            v.summary
        );
        let one_bad = [("n1".to_string(), good), ("n2".to_string(), bad)];
        let v = check_each(&h, &|k| c.get(k).cloned(), &one_bad);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.starts_with("via n2: "), "{}", v.summary);
        assert_eq!(v.ops, vec![0]);
    }

    #[test]
    fn a_chunk_visible_through_another_vault_is_a_violation() {
        let (h, c, mut r) = setup();
        r.foreign.push((1, "aa".into()));
        let v = check(&h, &|k| c.get(k).cloned(), &r);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("aa via vault 1"), "{}", v.summary);
    }
}
