//! The nemesis schedule: which fault happens when, derived from the run's
//! seed alone, so `--seed N` replays the same faults at the same offsets.
//!
//! Faults come one at a time in windows separated by quiet gaps (the
//! cluster recovers between faults, and throughput dips show up inside the
//! windows of the timeline). Nodes are numbered from 0 here; they are
//! `n1`… in names and node ids.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A family of faults, as named on the command line (`--nemesis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NemesisKind {
    /// SIGKILL a node, restart it when the window ends.
    Kill,
    /// SIGSTOP a node, SIGCONT it when the window ends.
    Pause,
    /// Network partitions: random halves, the leader isolated, one way.
    Partition,
    /// Random packet loss on one node's interface.
    Loss,
    /// One byte flipped in one node's stored copy of a chunk (the node is
    /// stopped for it and restarted when the window ends).
    Corrupt,
    /// A node killed and every write it did not fsync dropped (its data
    /// dir sits on [`crate::lazyfs`]); restarted when the window ends.
    PowerLoss,
    /// Every packet one node sends held back (NFQUEUE, see [`crate::delay`]).
    Delay,
    /// One node restarted with its wall clock offset; restarted without
    /// the offset when the window ends.
    Clock,
    /// Membership churn: one node drained; when the window ends it is
    /// removed and a fresh node (new id, empty data) joins in its place.
    Churn,
    /// A license authority outage: the authority killed, or cut off from
    /// every node (the clients still reach it); back when the window ends.
    Authority,
}

impl NemesisKind {
    /// Every kind, in command-line order.
    pub const ALL: [NemesisKind; 10] = [
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Partition,
        NemesisKind::Loss,
        NemesisKind::Corrupt,
        NemesisKind::PowerLoss,
        NemesisKind::Delay,
        NemesisKind::Clock,
        NemesisKind::Churn,
        NemesisKind::Authority,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Partition => "partition",
            NemesisKind::Loss => "loss",
            NemesisKind::Corrupt => "corrupt",
            NemesisKind::PowerLoss => "power-loss",
            NemesisKind::Delay => "delay",
            NemesisKind::Clock => "clock",
            NemesisKind::Churn => "churn",
            NemesisKind::Authority => "authority",
        }
    }
}

impl FromStr for NemesisKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        NemesisKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = NemesisKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown nemesis {s:?}; known: {}", names.join(", "))
            })
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, then restart.
    Kill { node: usize },
    /// SIGSTOP, then SIGCONT.
    Pause { node: usize },
    /// `side` cannot talk to the other nodes, nor they to it.
    Halves { side: Vec<usize> },
    /// Whoever leads when the window opens is cut off from every peer.
    IsolateLeader,
    /// Packets from `from` to `to` are dropped (the other way works).
    OneWay { from: usize, to: usize },
    /// `percent` of the packets in and out of `node` are dropped.
    Loss { node: usize, percent: u8 },
    /// `node` is stopped, a recently acknowledged chunk's copy on it
    /// damaged, and the node restarted when the window ends.
    Corrupt { node: usize },
    /// `node` killed and its unsynced writes dropped, restarted when the
    /// window ends.
    PowerLoss { node: usize },
    /// Every packet `node` sends is held `ms` milliseconds.
    Delay { node: usize, ms: u64 },
    /// `node` restarted with its clock `offset_ms` off.
    Clock { node: usize, offset_ms: i64 },
    /// `node` drained, then removed and replaced by a fresh node.
    Churn { node: usize },
    /// The license authority killed, restarted when the window ends.
    AuthorityDown,
    /// The license authority unreachable from every node.
    AuthorityCut,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[usize]| {
            v.iter()
                .map(|n| format!("n{}", n + 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Kill { node } => write!(f, "kill n{}", node + 1),
            Fault::Pause { node } => write!(f, "pause n{}", node + 1),
            Fault::Halves { side } => write!(f, "partition {{{}}} | rest", names(side)),
            Fault::IsolateLeader => write!(f, "isolate leader"),
            Fault::OneWay { from, to } => write!(f, "drop n{} -> n{}", from + 1, to + 1),
            Fault::Loss { node, percent } => write!(f, "loss {percent}% n{}", node + 1),
            Fault::Corrupt { node } => write!(f, "corrupt a chunk copy on n{}", node + 1),
            Fault::PowerLoss { node } => write!(f, "power loss n{}", node + 1),
            Fault::Delay { node, ms } => write!(f, "delay {ms} ms n{}", node + 1),
            Fault::Clock { node, offset_ms } => {
                write!(f, "clock {offset_ms:+} ms n{}", node + 1)
            }
            Fault::Churn { node } => write!(f, "churn n{}", node + 1),
            Fault::AuthorityDown => write!(f, "authority down"),
            Fault::AuthorityCut => write!(f, "authority cut off"),
        }
    }
}

/// A fault and when it starts and is healed, in ms since the run started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// When the fault is applied.
    pub start_ms: u64,
    /// When it is healed.
    pub end_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// Quiet time before the first fault (the workload warms up).
pub const WARMUP_MS: u64 = 3_000;

/// The faults of a run of `time_limit_ms` on `nodes` nodes, from `seed`:
/// quiet gaps of 2–5 s alternate with faults of 3–9 s, each drawn from
/// `kinds`; the last fault is healed before the time limit. No kinds, or a
/// run too short for one fault, give no windows.
pub fn schedule(seed: u64, kinds: &[NemesisKind], nodes: usize, time_limit_ms: u64) -> Vec<Window> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut windows = Vec::new();
    if kinds.is_empty() || nodes == 0 {
        return windows;
    }
    let mut t = WARMUP_MS;
    loop {
        let start = t + rng.gen_range(2_000..=5_000);
        let end = start + rng.gen_range(3_000..=9_000);
        if end > time_limit_ms {
            return windows;
        }
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let fault = draw(&mut rng, kind, nodes);
        windows.push(Window {
            start_ms: start,
            end_ms: end,
            fault,
        });
        t = end;
    }
}

/// One fault of `kind` on `nodes` nodes.
fn draw(rng: &mut ChaCha8Rng, kind: NemesisKind, nodes: usize) -> Fault {
    let node = rng.gen_range(0..nodes);
    match kind {
        NemesisKind::Kill => Fault::Kill { node },
        NemesisKind::Pause => Fault::Pause { node },
        NemesisKind::Corrupt => Fault::Corrupt { node },
        NemesisKind::PowerLoss => Fault::PowerLoss { node },
        NemesisKind::Churn => Fault::Churn { node },
        NemesisKind::Authority if rng.gen_bool(0.5) => Fault::AuthorityDown,
        NemesisKind::Authority => Fault::AuthorityCut,
        NemesisKind::Delay => Fault::Delay {
            node,
            ms: rng.gen_range(50..=400),
        },
        NemesisKind::Clock => {
            // Minutes either way: far beyond any timeout the cluster uses.
            let magnitude = rng.gen_range(1_000..=600_000);
            let offset_ms = if rng.gen_bool(0.5) {
                magnitude
            } else {
                -magnitude
            };
            Fault::Clock { node, offset_ms }
        }
        NemesisKind::Loss => Fault::Loss {
            node,
            percent: rng.gen_range(10..=40),
        },
        NemesisKind::Partition if nodes < 2 => Fault::IsolateLeader,
        NemesisKind::Partition => match rng.gen_range(0..3) {
            0 => {
                let mut all: Vec<usize> = (0..nodes).collect();
                all.shuffle(rng);
                // A minority side (at least one node): the majority keeps quorum.
                let size = rng.gen_range(1..=nodes.saturating_sub(1).div_ceil(2).max(1));
                let mut side = all[..size].to_vec();
                side.sort_unstable();
                Fault::Halves { side }
            }
            1 => Fault::IsolateLeader,
            _ => {
                let from = node;
                let to = (from + rng.gen_range(1..nodes)) % nodes;
                Fault::OneWay { from, to }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_parse_and_unknown_ones_are_listed() {
        assert_eq!("pause".parse(), Ok(NemesisKind::Pause));
        let err = "flood".parse::<NemesisKind>().unwrap_err();
        assert!(
            err.contains(
                "kill, pause, partition, loss, corrupt, power-loss, delay, clock, churn, authority"
            ),
            "{err}"
        );
    }

    #[test]
    fn faults_read_well() {
        assert_eq!(Fault::Kill { node: 0 }.to_string(), "kill n1");
        assert_eq!(
            Fault::Halves { side: vec![0, 2] }.to_string(),
            "partition {n1,n3} | rest"
        );
        assert_eq!(
            Fault::OneWay { from: 1, to: 0 }.to_string(),
            "drop n2 -> n1"
        );
    }

    #[test]
    fn no_kinds_or_no_time_means_no_faults() {
        assert!(schedule(1, &[], 3, 60_000).is_empty());
        assert!(schedule(1, &NemesisKind::ALL, 3, 5_000).is_empty());
    }

    proptest! {
        #[test]
        fn a_seed_gives_one_schedule_of_ordered_windows_inside_the_run(
            seed in any::<u64>(), nodes in 1usize..7, limit in 0u64..300_000,
            mask in 1u16..1024,
        ) {
            let kinds: Vec<NemesisKind> = NemesisKind::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, k)| k)
                .collect();
            let s = schedule(seed, &kinds, nodes, limit);
            prop_assert_eq!(&s, &schedule(seed, &kinds, nodes, limit));
            let mut t = WARMUP_MS;
            for w in &s {
                prop_assert!(w.start_ms >= t + 2_000 && w.end_ms > w.start_ms);
                prop_assert!(w.end_ms <= limit);
                t = w.end_ms;
                let kind = match &w.fault {
                    Fault::Kill { node }
                    | Fault::Pause { node }
                    | Fault::Loss { node, .. }
                    | Fault::Corrupt { node }
                    | Fault::PowerLoss { node }
                    | Fault::Delay { node, .. }
                    | Fault::Clock { node, .. }
                    | Fault::Churn { node } => {
                        prop_assert!(*node < nodes);
                        match w.fault {
                            Fault::Kill { .. } => NemesisKind::Kill,
                            Fault::Pause { .. } => NemesisKind::Pause,
                            Fault::Corrupt { .. } => NemesisKind::Corrupt,
                            Fault::PowerLoss { .. } => NemesisKind::PowerLoss,
                            Fault::Delay { .. } => NemesisKind::Delay,
                            Fault::Clock { .. } => NemesisKind::Clock,
                            Fault::Churn { .. } => NemesisKind::Churn,
                            _ => NemesisKind::Loss,
                        }
                    }
                    Fault::Halves { side } => {
                        prop_assert!(!side.is_empty() && side.len() * 2 < nodes + 1);
                        prop_assert!(side.iter().all(|n| *n < nodes));
                        NemesisKind::Partition
                    }
                    Fault::OneWay { from, to } => {
                        prop_assert!(from != to && *from < nodes && *to < nodes);
                        NemesisKind::Partition
                    }
                    Fault::IsolateLeader => NemesisKind::Partition,
                    Fault::AuthorityDown | Fault::AuthorityCut => NemesisKind::Authority,
                };
                prop_assert!(kinds.contains(&kind));
            }
        }
    }
}
