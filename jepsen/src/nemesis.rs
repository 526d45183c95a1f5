//! Applies the schedule's faults to the real cluster and network, and
//! heals them: the only module that turns a [`Fault`] into signals,
//! iptables rules, held packets, lost writes, skewed clocks and damaged
//! chunk copies, and license authority outages.

use std::time::Duration;

use crate::authority::Authority;
use crate::cluster::Cluster;
use crate::delay::Delayer;
use crate::error::JepsenError;
use crate::net::Network;
use crate::schedule::Fault;

/// A fault in force, with what healing it needs.
#[derive(Debug)]
pub enum Active {
    /// Restart this node.
    Killed(usize),
    /// SIGCONT this node.
    Paused(usize),
    /// Flush the rules.
    Rules,
    /// Flush the rules and stop the delayer.
    Delayed(Delayer),
    /// Restart this node with its clock true again.
    Skewed(usize),
    /// Remove this draining node and join a fresh one in its place.
    Draining(usize),
    /// Restart the license authority.
    AuthorityKilled,
    /// Nothing was done (no leader to isolate).
    Nothing,
}

/// Applies `fault`; the description says what actually happened (the
/// leader an isolation picked, the chunk a corruption damaged).
/// `targets` are (vault, chunk) hex ids a corruption may pick, best first.
pub fn apply(
    fault: &Fault,
    cluster: &mut Cluster,
    authority: &mut Authority,
    net: &Network,
    targets: &[(String, String)],
) -> Result<(Active, String), JepsenError> {
    let n = cluster.node_count();
    Ok(match fault {
        Fault::Kill { node } => {
            cluster.kill(*node);
            (Active::Killed(*node), fault.to_string())
        }
        Fault::Pause { node } => {
            cluster.pause(*node);
            (Active::Paused(*node), fault.to_string())
        }
        Fault::Halves { side } => {
            cut(net, n, side)?;
            (Active::Rules, fault.to_string())
        }
        Fault::IsolateLeader => match cluster.leader() {
            Some(leader) => {
                cut(net, n, &[leader])?;
                (Active::Rules, format!("isolate leader n{}", leader + 1))
            }
            None => (Active::Nothing, "isolate leader (none found)".into()),
        },
        Fault::OneWay { from, to } => {
            net.block(*to, *from)?;
            (Active::Rules, fault.to_string())
        }
        Fault::Loss { node, percent } => {
            net.loss(*node, *percent)?;
            (Active::Rules, fault.to_string())
        }
        Fault::PowerLoss { node } => {
            let lost = cluster.power_loss(*node)?;
            (
                Active::Killed(*node),
                format!("{fault} ({lost} unsynced bytes lost)"),
            )
        }
        Fault::Delay { node, ms } => {
            let delayer = Delayer::start(&net.node_ns(*node), Duration::from_millis(*ms))?;
            net.delay(*node, delayer.queue())?;
            (Active::Delayed(delayer), fault.to_string())
        }
        Fault::Clock { node, offset_ms } => {
            cluster.restart_with_clock_offset(*node, *offset_ms)?;
            (Active::Skewed(*node), fault.to_string())
        }
        Fault::Churn { .. } if n <= 3 => (
            Active::Nothing,
            format!("{fault} (skipped: {n} nodes cannot spare one)"),
        ),
        Fault::Churn { node } => {
            cluster.drain(*node)?;
            (Active::Draining(*node), fault.to_string())
        }
        Fault::AuthorityDown => {
            authority.kill();
            (Active::AuthorityKilled, fault.to_string())
        }
        Fault::AuthorityCut => {
            net.cut_authority()?;
            (Active::Rules, fault.to_string())
        }
        Fault::Corrupt { node } => {
            cluster.kill(*node);
            let mut what = format!("corrupt n{}: no copy of a recent chunk", node + 1);
            for (vault, chunk) in targets {
                if cluster.corrupt(*node, vault, chunk)? {
                    what = format!(
                        "corrupt n{} chunk {}",
                        node + 1,
                        &chunk[..chunk.len().min(12)]
                    );
                    break;
                }
            }
            (Active::Killed(*node), what)
        }
    })
}

/// Cuts `side` off from the other nodes, both ways.
fn cut(net: &Network, nodes: usize, side: &[usize]) -> Result<(), JepsenError> {
    for a in side {
        for b in (0..nodes).filter(|b| !side.contains(b)) {
            net.block(*a, b)?;
            net.block(b, *a)?;
        }
    }
    Ok(())
}

/// Heals what [`apply`] did.
pub fn heal(
    active: Active,
    cluster: &mut Cluster,
    authority: &mut Authority,
    net: &Network,
) -> Result<(), JepsenError> {
    match active {
        Active::Killed(i) => cluster.start(i),
        Active::Paused(i) => {
            cluster.resume(i);
            Ok(())
        }
        Active::Rules => net.heal(),
        Active::Delayed(delayer) => {
            let healed = net.heal();
            drop(delayer);
            healed
        }
        Active::Skewed(i) => cluster.restart_with_clock_offset(i, 0),
        Active::Draining(i) => cluster.replace(i),
        Active::AuthorityKilled => authority.resume(),
        Active::Nothing => Ok(()),
    }
}
