//! The test network: one network namespace per node, one for the
//! clients and one for the license authority, each wired by a veth pair to a bridge inside a "switch"
//! namespace, so nothing of a run lives in the host's own namespace and
//! deleting the namespaces removes links, bridge and rules.
//!
//! Names carry the harness's pid (`cj<pid hex>-n1`), so parallel runs
//! cannot collide and a later run can tell the leftovers of a dead one
//! ([`remove_leftovers`]). A [`Network`] removes itself on drop: on
//! success, on error, and after Ctrl-C (see [`crate::interrupt`]).
//!
//! Faults are iptables rules inside the node namespaces (`INPUT` drops:
//! partitions, one-way cuts; `-m statistic` drops: packet loss; `NFQUEUE`:
//! delay, see [`crate::delay`]) and inside the authority's (an authority
//! outage: the nodes cut off from it while the clients still reach it).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;

use crate::error::JepsenError;

/// Prefix of every namespace a run creates.
pub const PREFIX: &str = "cj";

/// A run's namespaces and bridge.
#[derive(Debug)]
pub struct Network {
    tag: String,
    nodes: usize,
}

/// Runs a command to completion; its stderr becomes the error.
pub fn run(program: &str, args: &[&str]) -> Result<(), JepsenError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(JepsenError::io(format!("running {program}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(JepsenError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Whether `program` can be run (`program --version` starts).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Network {
    /// Creates the switch, `nodes` node namespaces, the client namespace
    /// and the authority's, named after this process.
    pub fn create(nodes: usize) -> Result<Network, JepsenError> {
        let net = Network {
            tag: format!("{PREFIX}{:x}", std::process::id()),
            nodes,
        };
        // From here on, drop removes whatever was made.
        let sw = net.ns("sw");
        run("ip", &["netns", "add", &sw])?;
        run("ip", &["-n", &sw, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &sw, "link", "set", "br0", "up"])?;
        let members = (0..nodes)
            .map(|i| (net.node_ns(i), net.node_addr(i)))
            .chain([
                (net.client_ns(), net.client_addr()),
                (net.authority_ns(), net.authority_addr()),
            ]);
        for (k, (ns, addr)) in members.enumerate() {
            let port = format!("p{k}");
            let dev = net.dev();
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &port,
                    "netns", &sw,
                ],
            )?;
            run("ip", &["-n", &sw, "link", "set", &port, "master", "br0"])?;
            run("ip", &["-n", &sw, "link", "set", &port, "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            let cidr = format!("{addr}/24");
            run("ip", &["-n", &ns, "addr", "add", &cidr, "dev", &dev])?;
            run("ip", &["-n", &ns, "link", "set", &dev, "up"])?;
        }
        Ok(net)
    }

    /// The namespace `name` of this run.
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// The interface name inside every member namespace.
    fn dev(&self) -> String {
        // ≤ 15 bytes: "cj" + pid hex (≤ 8) + "-e".
        format!("{}-e", self.tag)
    }

    /// Node `i`'s namespace (nodes count from 0).
    pub fn node_ns(&self, i: usize) -> String {
        self.ns(&format!("n{}", i + 1))
    }

    /// The clients' namespace.
    pub fn client_ns(&self) -> String {
        self.ns("c")
    }

    /// The license authority's namespace.
    pub fn authority_ns(&self) -> String {
        self.ns("a")
    }

    /// The license authority's address.
    pub fn authority_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 250)
    }

    /// Node `i`'s address.
    pub fn node_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 11 + i as u8)
    }

    /// The clients' address.
    pub fn client_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 200)
    }

    /// Moves the calling thread (and the threads it spawns later) into the
    /// clients' namespace, from where every node is reachable.
    pub fn enter_client_ns(&self) -> Result<(), JepsenError> {
        let path = format!("/var/run/netns/{}", self.client_ns());
        let f = File::open(&path).map_err(JepsenError::io(format!("opening {path}")))?;
        // SAFETY: setns on a valid, open namespace file descriptor; it only
        // changes this thread's network namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(JepsenError::io(format!("setns {path}"))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// `iptables ARGS` inside node `i`'s namespace.
    fn iptables(&self, i: usize, args: &[&str]) -> Result<(), JepsenError> {
        iptables_in(&self.node_ns(i), args)
    }

    /// Cuts every node off from the license authority (both ways: its
    /// `INPUT` drops whatever a node sends, so no connection forms); the
    /// clients still reach it.
    pub fn cut_authority(&self) -> Result<(), JepsenError> {
        for i in 0..self.nodes {
            let src = self.node_addr(i).to_string();
            iptables_in(
                &self.authority_ns(),
                &["-A", "INPUT", "-s", &src, "-j", "DROP"],
            )?;
        }
        Ok(())
    }

    /// Drops every packet from node `from` arriving at node `at`.
    pub fn block(&self, at: usize, from: usize) -> Result<(), JepsenError> {
        let src = self.node_addr(from).to_string();
        self.iptables(at, &["-A", "INPUT", "-s", &src, "-j", "DROP"])
    }

    /// Drops `percent` of the packets in and out of node `i` at random.
    pub fn loss(&self, i: usize, percent: u8) -> Result<(), JepsenError> {
        let p = format!("{:.2}", f64::from(percent) / 100.0);
        let dev = self.dev();
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            self.iptables(
                i,
                &[
                    "-A",
                    chain,
                    dir,
                    &dev,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Sends every packet node `i` emits to its namespace's NFQUEUE
    /// `queue` (a [`crate::delay::Delayer`] holds them; without one they
    /// pass).
    pub fn delay(&self, i: usize, queue: u16) -> Result<(), JepsenError> {
        let dev = self.dev();
        let queue = queue.to_string();
        self.iptables(
            i,
            &[
                "-A",
                "OUTPUT",
                "-o",
                &dev,
                "-j",
                "NFQUEUE",
                "--queue-num",
                &queue,
                "--queue-bypass",
            ],
        )
    }

    /// Removes every rule from every node namespace and the authority's.
    pub fn heal(&self) -> Result<(), JepsenError> {
        let faulty = (0..self.nodes)
            .map(|i| self.node_ns(i))
            .chain([self.authority_ns()]);
        for ns in faulty {
            iptables_in(&ns, &["-F", "INPUT"])?;
            iptables_in(&ns, &["-F", "OUTPUT"])?;
        }
        Ok(())
    }

    /// Every namespace of this run (node, client, authority, switch).
    fn all_ns(&self) -> Vec<String> {
        (0..self.nodes)
            .map(|i| self.node_ns(i))
            .chain([self.client_ns(), self.authority_ns(), self.ns("sw")])
            .collect()
    }
}

/// `iptables ARGS` inside namespace `ns`.
fn iptables_in(ns: &str, args: &[&str]) -> Result<(), JepsenError> {
    let mut all = vec!["netns", "exec", ns, "iptables", "-w"];
    all.extend_from_slice(args);
    run("ip", &all)
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.all_ns() {
            delete_ns(&ns);
        }
    }
}

/// Kills what still runs in namespace `ns` and deletes it (quietly: it
/// may not exist).
fn delete_ns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            // The harness's own threads sit in the client namespace.
            let pid = pid.parse::<u32>().ok().filter(|p| *p != std::process::id());
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) with a pid and a signal number.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    let _ = Command::new("ip").args(["netns", "del", ns]).output();
}

/// The pid a namespace name of this harness carries (`cj1f2e-n1` → 0x1f2e).
pub fn owner_pid(ns: &str) -> Option<u32> {
    let hex = ns.strip_prefix(PREFIX)?.split('-').next()?;
    u32::from_str_radix(hex, 16).ok()
}

/// Deletes the namespaces of earlier runs whose harness is gone (killed
/// before it could clean up). Runs still alive are left alone.
pub fn remove_leftovers() -> Result<usize, JepsenError> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(JepsenError::io("ip netns list"))?;
    let mut removed = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = owner_pid(ns) else { continue };
        let alive = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "cairn-jepsen");
        if !alive {
            delete_ns(ns);
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_carry_the_owner() {
        let net = Network {
            tag: format!("{PREFIX}{:x}", u32::MAX),
            nodes: 0,
        };
        assert!(net.dev().len() <= 15, "{}", net.dev());
        assert_eq!(owner_pid(&net.node_ns(4)), Some(u32::MAX));
        assert_eq!(net.node_ns(0), "cjffffffff-n1");
        assert_eq!(owner_pid("cjzz-n1"), None);
        assert_eq!(owner_pid("other-n1"), None);
        assert_eq!(net.node_addr(2), Ipv4Addr::new(10, 77, 0, 13));
    }
}
