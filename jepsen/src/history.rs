//! The recorded history of a run: every client operation with its invoke
//! and completion time and outcome, and every nemesis action, as plain data
//! written one JSON object per line (`history.jsonl` in the report).
//!
//! Times are milliseconds since the run started. An operation whose outcome
//! is [`Outcome::Unknown`] may or may not have taken effect (a timeout, a
//! connection cut after the request was sent, a 5xx); checkers must allow
//! both.

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Call {
    /// Set register `key` to `value` (a tier's description).
    Write { key: String, value: String },
    /// Read register `key`; the value is in the outcome.
    Read { key: String },
    /// Upload chunks (hex ids) to the client's vault.
    Upload { vault: usize, chunks: Vec<String> },
    /// A lease request of `holder` (`cluster`: a node's status, read by
    /// the observer; `rival`: another cluster's client at the authority).
    /// An ok outcome's value is the lease the holder then held, as
    /// `TOKEN:MS` ([`LeaseHeld`]): its fencing token and how many ms it
    /// ran on from the moment of the answer; `None`: it held none.
    Lease {
        holder: String,
        request: LeaseRequest,
    },
    /// `cairn backup` of generated tree `tree`; an ok outcome's value is
    /// the snapshot id.
    Backup { tree: u64 },
    /// `cairn retention apply` (keep the last 3, then prune); an ok
    /// outcome's value is the forgotten snapshot ids, comma separated.
    Retention,
    /// `cairn restore` of `snapshot`, compared with tree `tree`: ok with no
    /// value when byte for byte the same, with the difference otherwise.
    Restore { snapshot: String, tree: u64 },
    /// `cairn snapshots`: the value is every listed id, comma separated.
    Snapshots,
    /// `cairn check --read-data` (every chunk of every snapshot read back).
    Check,
}

/// What a lease operation asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseRequest {
    /// A new lease from the authority.
    Acquire,
    /// The held lease extended.
    Renew,
    /// A node's view of its cluster's lease (`cluster status`).
    Status,
}

/// A lease as an operation saw it held: the value of an ok
/// [`Call::Lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseHeld {
    /// The fencing token.
    pub token: u64,
    /// How long it ran on from the answer, ms.
    pub valid_ms: u64,
}

impl LeaseHeld {
    /// The outcome value (`TOKEN:MS`).
    pub fn to_value(self) -> String {
        format!("{}:{}", self.token, self.valid_ms)
    }

    /// Parses [`LeaseHeld::to_value`].
    pub fn parse(value: &str) -> Option<LeaseHeld> {
        let (token, ms) = value.split_once(':')?;
        Some(LeaseHeld {
            token: token.parse().ok()?,
            valid_ms: ms.parse().ok()?,
        })
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// It took effect; a read carries the value it saw (`None`: the
    /// register did not exist yet).
    Ok { value: Option<String> },
    /// It certainly did not take effect.
    Fail { error: String },
    /// It may or may not have taken effect.
    Unknown { error: String },
}

impl Outcome {
    /// A short name: `ok`, `fail` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok { .. } => "ok",
            Outcome::Fail { .. } => "fail",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// One completed client operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Index in the history (stable, for naming operations in verdicts).
    pub index: usize,
    /// The client (thread) that ran it; a client runs one operation at a time.
    pub client: usize,
    /// The node the request went to.
    pub node: usize,
    /// Invoke time, ms since the start of the run.
    pub start_ms: u64,
    /// Completion time, ms since the start of the run.
    pub end_ms: u64,
    /// What was asked.
    #[serde(flatten)]
    pub call: Call,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A nemesis window as it actually happened: the fault, when it started
/// and when it was healed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NemesisEvent {
    /// A human-readable description (`kill n2`, `partition [1] | [2, 3]`).
    pub fault: String,
    /// When it was applied, ms since the start of the run.
    pub start_ms: u64,
    /// When it was healed.
    pub end_ms: u64,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    /// A client operation.
    Op(Op),
    /// A nemesis window.
    Nemesis(NemesisEvent),
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Client operations in completion order.
    pub ops: Vec<Op>,
    /// Nemesis windows in start order.
    pub nemesis: Vec<NemesisEvent>,
}

impl History {
    /// The history as JSON lines: operations, then nemesis windows.
    pub fn to_jsonl(&self) -> String {
        let entries = self
            .ops
            .iter()
            .cloned()
            .map(Entry::Op)
            .chain(self.nemesis.iter().cloned().map(Entry::Nemesis));
        let mut out = String::new();
        for e in entries {
            // Plain data of strings and integers: serialisation cannot fail.
            out.push_str(&serde_json::to_string(&e).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// Parses what [`History::to_jsonl`] wrote.
    pub fn from_jsonl(text: &str) -> Result<History, serde_json::Error> {
        let mut h = History::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line)? {
                Entry::Op(op) => h.ops.push(op),
                Entry::Nemesis(n) => h.nemesis.push(n),
            }
        }
        Ok(h)
    }

    /// How many operations ended each way: (ok, fail, unknown).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.ops
            .iter()
            .fold((0, 0, 0), |(o, f, u), op| match op.outcome {
                Outcome::Ok { .. } => (o + 1, f, u),
                Outcome::Fail { .. } => (o, f + 1, u),
                Outcome::Unknown { .. } => (o, f, u + 1),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips() {
        let h = History {
            ops: vec![
                Op {
                    index: 0,
                    client: 1,
                    node: 2,
                    start_ms: 5,
                    end_ms: 9,
                    call: Call::Write {
                        key: "k0".into(),
                        value: "v1".into(),
                    },
                    outcome: Outcome::Unknown {
                        error: "timeout".into(),
                    },
                },
                Op {
                    index: 1,
                    client: 0,
                    node: 0,
                    start_ms: 6,
                    end_ms: 7,
                    call: Call::Upload {
                        vault: 1,
                        chunks: vec!["ab".into()],
                    },
                    outcome: Outcome::Ok { value: None },
                },
            ],
            nemesis: vec![NemesisEvent {
                fault: "kill n1".into(),
                start_ms: 1,
                end_ms: 4,
            }],
        };
        let mut h = h;
        h.ops.push(Op {
            index: 2,
            client: 6,
            node: 0,
            start_ms: 7,
            end_ms: 8,
            call: Call::Lease {
                holder: "rival".into(),
                request: LeaseRequest::Acquire,
            },
            outcome: Outcome::Ok {
                value: Some(
                    LeaseHeld {
                        token: 3,
                        valid_ms: 6_000,
                    }
                    .to_value(),
                ),
            },
        });
        let text = h.to_jsonl();
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains(r#""request":"acquire""#), "{text}");
        assert_eq!(
            LeaseHeld::parse("3:6000"),
            Some(LeaseHeld {
                token: 3,
                valid_ms: 6_000
            })
        );
        assert_eq!(LeaseHeld::parse("3"), None);
        assert!(text.contains(r#""f":"write""#), "{text}");
        assert_eq!(History::from_jsonl(&text).unwrap(), h);
        assert_eq!(h.counts(), (2, 0, 1));
    }
}
