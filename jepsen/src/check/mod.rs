//! Checkers: pure functions from a recorded history (and, for chunks, what
//! the healed cluster returned) to a [`Verdict`]. Each can fail: the tests
//! feed them violating histories, and the `unsafe-ack` node build gives
//! them a real one.

pub mod backups;
pub mod chunks;
pub mod lease;
pub mod linear;
pub mod register;

use serde::Serialize;

/// What one checker concluded, as written to `verdicts.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The checker (`register`, `chunks`).
    pub checker: &'static str,
    /// `valid`, `invalid`, or `unknown` (the checker could not decide).
    pub result: Outcome,
    /// One line for people.
    pub summary: String,
    /// History indexes of the operations involved in a violation.
    pub ops: Vec<usize>,
}

/// A checker's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No violation found.
    Valid,
    /// A violation, named in the verdict.
    Invalid,
    /// The checker gave up (search budget) or had nothing to check.
    Unknown,
}

/// The nodes checker: no `cairnd` may exit unless the nemesis killed it;
/// `crashed` names the ones that did.
pub fn nodes(crashed: &[String]) -> Verdict {
    let (result, summary) = if crashed.is_empty() {
        (Outcome::Valid, "no node exited by itself".to_string())
    } else {
        (Outcome::Invalid, crashed.join("; "))
    };
    Verdict {
        checker: "nodes",
        result,
        summary,
        ops: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_exited_by_itself_is_a_violation() {
        assert_eq!(nodes(&[]).result, Outcome::Valid);
        let v = nodes(&["n2 exited by itself (exit status: 101)".into()]);
        assert_eq!(v.result, Outcome::Invalid);
        assert!(v.summary.contains("n2"));
    }
}
