//! The `cairnd` processes of a run, one per node namespace: `init` on the
//! first, `serve --join` on the others, SIGKILL and restart, SIGSTOP and
//! SIGCONT, and the cluster's status over HTTP.
//!
//! Nodes listen on their namespace address with `--insecure-http` (the
//! run's network is private to the harness) and share the cluster secret
//! `init` generated, as an operator would copy it. They trust the license
//! authority's certificate (`--ca-file`), and the cluster is licensed for
//! real ([`Cluster::license`]): no dev license.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_proto::admin::ClusterStatus;

use crate::error::JepsenError;
use crate::http;
use crate::interrupt;
use crate::lazyfs::LazyMount;
use crate::net::Network;

/// The port every node listens on (each in its own namespace).
pub const PORT: u16 = 7000;

/// Fast repair and GC passes, so a run settles quickly after a fault.
const SERVE_FLAGS: &[&str] = &[
    "--insecure-http",
    "--repair-interval-ms",
    "300",
    "--gc-interval-ms",
    "300",
];

/// One node.
#[derive(Debug)]
struct NodeProc {
    dir: PathBuf,
    child: Option<Child>,
    runs: u32,
    paused: bool,
    /// The lose-unfsynced-writes filesystem under `dir`, if any.
    lazy: Option<LazyMount>,
    /// Milliseconds the node's clock is set off by (0: true).
    clock_offset_ms: i64,
    /// Its node id (a node churned out is replaced under a new one).
    id: u64,
}

/// The run's nodes.
#[derive(Debug)]
pub struct Cluster {
    cairnd: PathBuf,
    debug_tool: PathBuf,
    env: Vec<(String, String)>,
    logs: PathBuf,
    addrs: Vec<SocketAddr>,
    namespaces: Vec<String>,
    nodes: Vec<NodeProc>,
    /// The cluster secret, copied out of node 1's data dir after `init`
    /// (node 1 may be churned away later).
    secret: PathBuf,
    /// The id the next node to join gets.
    next_id: u64,
    /// The certificate of the license authority, trusted by every node.
    ca_file: PathBuf,
}

impl Cluster {
    /// Nodes for every node namespace of `net`, with data under `data`
    /// and logs under `logs`; `env` is set for every `cairnd`, and every
    /// node trusts the certificate in `ca_file` (the license authority's).
    /// None runs yet. The offline tool `cairnd-debug` is expected next to
    /// `cairnd`.
    pub fn new(
        net: &Network,
        count: usize,
        cairnd: &Path,
        data: &Path,
        logs: &Path,
        env: Vec<(String, String)>,
        ca_file: &Path,
    ) -> Cluster {
        Cluster {
            ca_file: ca_file.to_owned(),
            cairnd: cairnd.to_owned(),
            debug_tool: cairnd.with_file_name("cairnd-debug"),
            env,
            logs: logs.to_owned(),
            addrs: (0..count)
                .map(|i| SocketAddr::new(net.node_addr(i).into(), PORT))
                .collect(),
            namespaces: (0..count).map(|i| net.node_ns(i)).collect(),
            secret: data.join("cluster.secret"),
            next_id: count as u64 + 1,
            nodes: (0..count)
                .map(|i| NodeProc {
                    dir: data.join(format!("n{}", i + 1)),
                    child: None,
                    runs: 0,
                    paused: false,
                    lazy: None,
                    clock_offset_ms: 0,
                    id: i as u64 + 1,
                })
                .collect(),
        }
    }

    /// How many nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// Every node's admin token (each node has its own), by node.
    pub fn admin_tokens(&self) -> Result<Vec<String>, JepsenError> {
        (0..self.node_count())
            .map(|i| self.admin_token(i))
            .collect()
    }

    /// `cairnd ARGS` in node `i`'s namespace, not waited for; output to
    /// `logs/n<i>.<run>.log`.
    fn spawn(&mut self, i: usize, args: &[String]) -> Result<(), JepsenError> {
        let node = &mut self.nodes[i];
        node.runs += 1;
        let log_path = self.logs.join(format!("n{}.{}.log", i + 1, node.runs));
        let log = File::create(&log_path)
            .map_err(JepsenError::io(format!("creating {}", log_path.display())))?;
        let err = log
            .try_clone()
            .map_err(JepsenError::io("cloning a log handle"))?;
        // `ip netns exec` execs cairnd: the child's pid is the node's.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[i]])
            .arg(&self.cairnd)
            .args(args)
            .env("CAIRN_LOG", "info,openraft=info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "CAIRN_TEST_CLOCK_OFFSET_MS",
                node.clock_offset_ms.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(JepsenError::io("starting cairnd"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// Puts every node's data dir on a lose-unfsynced-writes filesystem
    /// (backed by `n<i>.disk` beside it), so [`Cluster::power_loss`] can
    /// drop what a node did not fsync. Before [`Cluster::form`].
    pub fn mount_lazy(&mut self) -> Result<(), JepsenError> {
        for node in &mut self.nodes {
            let backing = node.dir.with_extension("disk");
            node.lazy = Some(LazyMount::mount(&backing, &node.dir)?);
        }
        Ok(())
    }

    /// A power cut on node `i`: SIGKILL, then every write it did not
    /// fsync is lost (its filesystem remounted without them); answers how
    /// many bytes were lost. Restart it with [`Cluster::start`].
    pub fn power_loss(&mut self, i: usize) -> Result<u64, JepsenError> {
        self.kill(i);
        match self.nodes[i].lazy.as_mut() {
            Some(m) => {
                let lost = m.unsynced_bytes();
                m.power_loss().map(|()| lost)
            }
            None => Err(JepsenError::Setup(format!(
                "n{} has no lazy filesystem for a power loss",
                i + 1
            ))),
        }
    }

    /// Restarts node `i` with its wall clock `offset_ms` off (0: true).
    pub fn restart_with_clock_offset(
        &mut self,
        i: usize,
        offset_ms: i64,
    ) -> Result<(), JepsenError> {
        self.kill(i);
        self.nodes[i].clock_offset_ms = offset_ms;
        self.start(i)
    }

    /// `cairnd init` on node 0, then every node serving, the others
    /// joining through node 0; waits until all are voters, storage nodes
    /// and ready.
    pub fn form(&mut self) -> Result<(), JepsenError> {
        let first = self.nodes[0].dir.to_string_lossy().into_owned();
        let listen0 = self.addrs[0].to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.namespaces[0]])
            .arg(&self.cairnd)
            .args(["init", "--data-dir", &first, "--node-id", "1", "--listen"])
            .args([&listen0, "--insecure-http"])
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .map_err(JepsenError::io("running cairnd init"))?;
        if !out.status.success() {
            return Err(JepsenError::Command {
                command: "cairnd init".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        self.start(0)?;
        self.wait_ready(0, Duration::from_secs(60))?;
        let secret = self.nodes[0].dir.join("cluster.secret");
        std::fs::copy(&secret, &self.secret)
            .map_err(JepsenError::io(format!("copying {}", secret.display())))?;
        for i in 1..self.node_count() {
            self.join(i, 0)?;
        }
        let n = self.node_count();
        self.wait(
            "every node a voter and an active storage node",
            Duration::from_secs(90),
            |c| {
                let s = c.status(0)?;
                let active = s
                    .storage_nodes
                    .iter()
                    .filter(|n| n.status == "Active")
                    .count();
                (s.voters.len() == n && active == n).then_some(())
            },
        )?;
        for i in 0..n {
            self.wait_ready(i, Duration::from_secs(60))?;
        }
        Ok(())
    }

    /// `cairnd serve --join` of node `i` (its data dir empty) through
    /// node `via`, under node `i`'s id.
    fn join(&mut self, i: usize, via: usize) -> Result<(), JepsenError> {
        let mut args: Vec<String> = [
            "serve",
            "--data-dir",
            &self.nodes[i].dir.to_string_lossy(),
            "--node-id",
            &self.nodes[i].id.to_string(),
            "--listen",
            &self.addrs[i].to_string(),
            "--join",
            &format!("http://{}", self.addrs[via]),
            "--cluster-secret-file",
            &self.secret.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.serve_flags());
        self.spawn(i, &args)
    }

    /// The flags of every `cairnd serve`.
    fn serve_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = SERVE_FLAGS.iter().map(|s| s.to_string()).collect();
        flags.push("--ca-file".into());
        flags.push(self.ca_file.to_string_lossy().into_owned());
        flags
    }

    /// Licenses the cluster: `serial` of the authority at `url`, renewed
    /// every `renew_seconds`, `grace_seconds` of grace (as `cairnd admin
    /// license set`); waits until the leader reports the lease valid.
    pub fn license(
        &self,
        serial: &str,
        url: &str,
        renew_seconds: u64,
        grace_seconds: u64,
    ) -> Result<(), JepsenError> {
        let leader = self.wait_leader()?;
        let body = serde_json::json!({
            "serial": serial,
            "authority": url,
            "renew_seconds": renew_seconds,
            "grace_seconds": grace_seconds,
        });
        crate::workload::setup_json(
            self.addrs[leader],
            "/api/v1/admin/license",
            &self.admin_token(leader)?,
            body,
        )?;
        self.wait("a valid license lease", Duration::from_secs(60), |c| {
            let license = c.status(c.leader()?)?.license?;
            (license.mode == "valid").then_some(())
        })
    }

    /// The file holding node `i`'s admin token.
    pub fn admin_token_file(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("admin.token")
    }

    /// Node `i`'s admin token.
    fn admin_token(&self, i: usize) -> Result<String, JepsenError> {
        let path = self.admin_token_file(i);
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(JepsenError::io(format!("reading {}", path.display())))
    }

    /// The leader's index, waited for.
    fn wait_leader(&self) -> Result<usize, JepsenError> {
        self.wait("a leader", Duration::from_secs(60), Cluster::leader)
    }

    /// Starts draining node `i` (`POST /api/v1/cluster/drain` to the leader).
    pub fn drain(&mut self, i: usize) -> Result<(), JepsenError> {
        let leader = self.wait_leader()?;
        let body = serde_json::json!({ "node_id": self.nodes[i].id });
        crate::workload::setup_json(
            self.addrs[leader],
            "/api/v1/cluster/drain",
            &self.admin_token(leader)?,
            body,
        )
        .map(drop)
    }

    /// Ends a drain of node `i`: waits (up to a minute) until it holds
    /// nothing and nothing is under-replicated, removes it (forced if the
    /// drain did not finish: the other copies remain), and joins a fresh
    /// node, with a new id and an empty data dir, in its place.
    pub fn replace(&mut self, i: usize) -> Result<(), JepsenError> {
        let id = self.nodes[i].id;
        let drained = self
            .wait("a drained node", Duration::from_secs(60), |c| {
                let s = c.status(c.leader()?)?;
                let node = s.storage_nodes.iter().find(|n| n.id == id)?;
                (node.chunks == Some(0) && s.under_replicated_chunks == Some(0)).then_some(())
            })
            .is_ok();
        let leader = self.wait_leader()?;
        let body = serde_json::json!({ "node_id": id, "force": !drained });
        crate::workload::setup_json(
            self.addrs[leader],
            "/api/v1/cluster/remove",
            &self.admin_token(leader)?,
            body,
        )?;
        self.kill(i);
        let dir = &self.nodes[i].dir;
        let entries = std::fs::read_dir(dir)
            .map_err(JepsenError::io(format!("listing {}", dir.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(JepsenError::io(format!("removing {}", p.display())))?;
        }
        self.nodes[i].id = self.next_id;
        self.next_id += 1;
        let via = self.wait_leader()?;
        self.join(i, via)?;
        eprintln!(
            "cairn-jepsen: n{} (id {id}) removed{}; id {} joined in its place",
            i + 1,
            if drained { " drained" } else { " by force" },
            self.nodes[i].id
        );
        self.wait_ready(i, Duration::from_secs(90))
    }

    /// `cairnd serve` of an initialised or joined node.
    pub fn start(&mut self, i: usize) -> Result<(), JepsenError> {
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".into(),
            self.nodes[i].dir.to_string_lossy().into_owned(),
        ];
        args.extend(self.serve_flags());
        self.spawn(i, &args)
    }

    /// SIGKILL node `i` (a crash).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.nodes[i].paused = false;
    }

    /// Damages stopped node `i`'s copy of `chunk` of `vault` (hex ids)
    /// with `cairnd-debug corrupt-replica`; `false` if it holds no copy.
    pub fn corrupt(&self, i: usize, vault: &str, chunk: &str) -> Result<bool, JepsenError> {
        let out = Command::new(&self.debug_tool)
            .arg("corrupt-replica")
            .arg("--data-dir")
            .arg(&self.nodes[i].dir)
            .args(["--vault", vault, "--chunk", chunk])
            .output()
            .map_err(JepsenError::io(format!(
                "running {}",
                self.debug_tool.display()
            )))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            Ok(true)
        } else if stderr.contains("holds no copy") {
            Ok(false)
        } else {
            Err(JepsenError::Command {
                command: "cairnd-debug corrupt-replica".into(),
                stderr: stderr.trim().to_string(),
            })
        }
    }

    /// Whether node `i` has a process (running or paused).
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Sends `sig` to node `i`'s process, if it has one.
    fn signal(&self, i: usize, sig: libc::c_int) {
        if let Some(c) = &self.nodes[i].child {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        }
    }

    /// SIGSTOP node `i`.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.nodes[i].paused = self.is_up(i);
    }

    /// SIGCONT node `i`.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.nodes[i].paused = false;
    }

    /// Every node running and not paused again: SIGCONT the paused ones,
    /// restart the dead ones. Answers the nodes whose process had exited
    /// by itself (a crash the harness did not cause), with its status.
    pub fn revive(&mut self) -> Result<Vec<(usize, String)>, JepsenError> {
        let mut crashed = Vec::new();
        for i in 0..self.node_count() {
            if self.nodes[i].paused {
                self.resume(i);
            }
            let exited = match self.nodes[i].child.as_mut() {
                Some(c) => match c.try_wait() {
                    Ok(None) => false,
                    Ok(Some(status)) => {
                        crashed.push((i, status.to_string()));
                        true
                    }
                    Err(e) => {
                        crashed.push((i, e.to_string()));
                        true
                    }
                },
                None => true,
            };
            if exited {
                self.nodes[i].child = None;
                self.start(i)?;
            }
        }
        Ok(crashed)
    }

    /// `GET /api/v1/cluster/status` of node `i`.
    pub fn status(&self, i: usize) -> Option<ClusterStatus> {
        let (code, body) = http::request(
            self.addrs[i],
            "GET",
            "/api/v1/cluster/status",
            &[],
            b"",
            Duration::from_secs(2),
        )
        .ok()?;
        (code == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    /// The leader as any running node reports it (node index).
    pub fn leader(&self) -> Option<usize> {
        (0..self.node_count())
            .filter(|&i| self.is_up(i) && !self.nodes[i].paused)
            .find_map(|i| self.status(i)?.leader)
            .and_then(|id| self.nodes.iter().position(|n| n.id == id))
    }

    /// A Prometheus series of node `i`.
    pub fn metric(&self, i: usize, series: &str) -> Option<f64> {
        let (code, body) = http::request(
            self.addrs[i],
            "GET",
            "/metrics",
            &[],
            b"",
            Duration::from_secs(2),
        )
        .ok()?;
        if code != 200 {
            return None;
        }
        String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
    }

    /// Waits until node `i` answers `/readyz` with 200.
    pub fn wait_ready(&self, i: usize, timeout: Duration) -> Result<(), JepsenError> {
        let addr = self.addrs[i];
        self.wait(&format!("n{} ready", i + 1), timeout, |_| {
            let r = http::request(addr, "GET", "/readyz", &[], b"", Duration::from_secs(2));
            matches!(r, Ok((200, _))).then_some(())
        })
    }

    /// Polls `f` every 200 ms until it answers `Some`.
    pub fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Cluster) -> Option<T>,
    ) -> Result<T, JepsenError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return Ok(v);
            }
            if interrupt::interrupted() {
                return Err(JepsenError::Interrupted);
            }
            if Instant::now() > deadline {
                return Err(JepsenError::Timeout(what.to_string()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        // Only now that no node holds a file open: unmount.
        for node in &mut self.nodes {
            node.lazy = None;
        }
    }
}
