//! The harness of Cairn's cross-crate tests: real `cairnd` clusters on
//! loopback driven by the real `cairn` client.
//!
//! Everything here runs the binaries `cargo test --workspace` builds (found
//! next to the test executable, or in `CAIRN_BIN_DIR`): no component is
//! replaced by a stand-in. Processes log to files that are printed when a
//! test panics; waits poll with deadlines instead of sleeping fixed times.
//!
//! - [`Node`] / [`Cluster`]: `cairnd init`, `serve`, `--join`, SIGKILL,
//!   restart, admin commands, metrics.
//! - [`Device`]: one client machine — its own config file, cache and
//!   password — running `cairn` commands.
//! - [`RecordingProxy`]: a TCP relay that keeps every byte a client sent,
//!   so a test can prove what never went over the wire.
//! - [`hostile::HostileServer`]: a scripted malicious server, relaying to a
//!   real node and rewriting the answers a test chooses.

pub mod authority;
pub mod hostile;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::admin::ClusterStatus;
use serde_json::Value;

/// The path of one of the workspace's binaries (`cairnd`, `cairn`).
///
/// # Panics
///
/// If the binary has not been built (run the tests through
/// `scripts/test.sh` or `cargo test --workspace`).
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CAIRN_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            // target/<profile>/deps/<test> → target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_owned()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo test --workspace` (or set CAIRN_BIN_DIR)",
        path.display()
    );
    path
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// Polls `f` until it answers `Some`, panicking after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `--data-dir DIR --node-id ID --listen 127.0.0.1:PORT`: who a node is,
/// as `cairnd init` and a first `cairnd serve --join` take it.
pub fn identity_args(dir: &Path, id: u64, port: u16) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.to_string_lossy().into_owned(),
        "--node-id".into(),
        id.to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ]
}

/// Standard output of a finished command, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error of a finished command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a command succeeded and returns its standard output; the
/// panic message carries the exit code and both streams.
pub fn ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\n{}\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts success and parses standard output as JSON.
pub fn json_of(what: &str, o: &Output) -> Value {
    ok(what, o);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{what}: output is not JSON ({e}): {}", stdout(o)))
}

/// One `cairnd` process and its data directory; killed on drop (its logs
/// printed, and kept past the temp dir, when the test panics). The one
/// node harness of the workspace: `cairnd`'s own tests use it too.
pub struct Node {
    /// Raft node id.
    pub id: u64,
    /// Data directory (`<root>/node<id>`).
    pub dir: PathBuf,
    /// Loopback port.
    pub port: u16,
    /// Extra arguments for every process this node spawns.
    pub extra: Vec<String>,
    /// Extra environment for every process this node spawns.
    pub env: Vec<(String, String)>,
    /// Configuration file passed as `--config` before the arguments of
    /// `init`, `serve` and the dev cluster.
    pub config: Option<PathBuf>,
    /// Where the logs go: `node<id>.<run>.{out,err}`.
    pub log_dir: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl Node {
    /// Node `id` with its data directory and logs under `root`, on a free
    /// port; not started.
    pub fn new(root: &Path, id: u64) -> Self {
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Node {
            id,
            dir: root.join(format!("node{id}")),
            port: free_port(),
            extra: Vec::new(),
            env: Vec::new(),
            config: None,
            log_dir,
            child: None,
            runs: 0,
        }
    }

    /// The node's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's listen address.
    pub fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `--data-dir D --node-id N --listen ADDR` of this node.
    pub fn identity(&self) -> Vec<String> {
        identity_args(&self.dir, self.id, self.port)
    }

    /// `args` preceded by `--config FILE` when the node has one.
    fn with_config(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = match &self.config {
            Some(c) => vec!["--config".into(), c.to_string_lossy().into_owned()],
            None => Vec::new(),
        };
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Starts `cairnd ARGS` (then the node's `extra`), logging to
    /// `<logs>/node<id>.<run>.{out,err}`. A node counts as licensed while
    /// its cluster has no license (`CAIRND_DEV_LICENSE=1`, a dev and test
    /// setting) unless the node's `env` says otherwise: the license tests
    /// set it to `0`.
    pub fn spawn(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        self.runs += 1;
        let log = |ext: &str| {
            std::fs::File::create(
                self.log_dir
                    .join(format!("node{}.{}.{ext}", self.id, self.runs)),
            )
            .expect("log file")
        };
        let child = Command::new(bin("cairnd"))
            .args(self.with_config(args))
            .args(&self.extra)
            .env("CAIRN_LOG", "info,openraft=info")
            .env("CAIRND_DEV_LICENSE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("spawn cairnd");
        self.child = Some(child);
    }

    /// The dev cluster: `cairnd --data-dir D --listen ADDR`.
    pub fn spawn_dev(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        let listen = self.listen();
        self.spawn(&["--data-dir", &dir, "--listen", &listen]);
    }

    /// `cairnd init` (runs to completion).
    pub fn init(&self) {
        self.init_with(&[]);
    }

    /// `cairnd init` with extra arguments; panics if it fails.
    pub fn init_with(&self, extra: &[&str]) {
        let ident = self.identity();
        let mut args: Vec<&str> = vec!["init"];
        args.extend(ident.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let out = Command::new(bin("cairnd"))
            .args(self.with_config(&args))
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .expect("run cairnd init");
        assert!(out.status.success(), "init failed: {}", stderr(&out));
    }

    /// `cairnd serve` of an initialised node.
    pub fn start(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        self.spawn(&["serve", "--data-dir", &dir]);
    }

    /// `cairnd serve --join URL` of a new node.
    pub fn spawn_join(&mut self, url: &str) {
        self.spawn_join_with(url, &[]);
    }

    /// `cairnd serve --join URL` with extra arguments. Unless `extra`
    /// names one, the joiner is given the cluster secret that `init`
    /// generated for the test's first node (`<root>/node1/cluster.secret`),
    /// as an operator copies it to a new host.
    pub fn spawn_join_with(&mut self, url: &str, extra: &[&str]) {
        let ident = self.identity();
        let secret = self.first_node_secret().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec!["serve"];
        args.extend(ident.iter().map(String::as_str));
        args.extend_from_slice(&["--join", url]);
        if !extra.contains(&"--cluster-secret-file") {
            args.extend_from_slice(&["--cluster-secret-file", &secret]);
        }
        args.extend_from_slice(extra);
        self.spawn(&args);
    }

    /// The cluster secret file of node 1 of this node's test (the node
    /// `init` ran on).
    pub fn first_node_secret(&self) -> PathBuf {
        let root = self
            .dir
            .parent()
            .expect("data dirs live in the test's root");
        root.join("node1").join("cluster.secret")
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = c.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        wait_for("clean exit after SIGTERM", Duration::from_secs(20), || {
            c.try_wait().ok().flatten()
        })
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The admin token file.
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    /// This node's admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.token_file())
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// `Authorization` header value carrying this node's admin token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.admin_token())
    }

    /// A request to this node with extra headers and a JSON body (when
    /// not empty), answering text; `None` if it cannot be made.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        let mut all = headers.to_vec();
        if !body.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        let (status, answer) = http(self.port, method, path, &all, body.as_bytes())?;
        Some((status, String::from_utf8_lossy(&answer).into_owned()))
    }

    /// `GET path`; `None` if the node does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, &[], "")
    }

    /// A request to this node; panics if it cannot be made.
    pub fn port_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        self.request(method, path, headers, body)
            .expect("http request")
    }

    /// A JSON `POST` to this node; `None` if it cannot be made.
    pub fn get_post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        self.request("POST", path, headers, body)
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        matches!(self.get("/readyz"), Some((200, _)))
    }

    /// Waits for `/readyz`.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("node {} ready", self.id),
            Duration::from_secs(60),
            || self.is_ready().then_some(()),
        );
    }

    /// The value of one metric series (name with labels, as exposed),
    /// `None` if the node does not answer or does not expose it.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (code, text) = self.get("/metrics")?;
        if code != 200 {
            return None;
        }
        text.lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
    }

    /// `cairnd ARGS --server <node> --admin-token-file <its token>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("cairnd"))
            .args(args)
            .args(["--server", &self.url(), "--admin-token-file"])
            .arg(self.token_file())
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .expect("run cairnd")
    }

    /// `cairnd admin ARGS` against this node.
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        self.cli(&all)
    }

    /// `cairnd cluster status --json` of this node, `None` if it fails.
    pub fn status(&self) -> Option<ClusterStatus> {
        let out = Command::new(bin("cairnd"))
            .args(["cluster", "status", "--server", &self.url(), "--json"])
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Whether any of this node's logs so far contains `text`.
    pub fn logs_contain(&self, text: &str) -> bool {
        (1..=self.runs).any(|run| {
            ["out", "err"].iter().any(|ext| {
                let p = self.log_dir.join(format!("node{}.{run}.{ext}", self.id));
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(text))
            })
        })
    }

    /// Prints this node's logs (for failing tests).
    pub fn dump_logs(&self) {
        dump_node_logs(&self.log_dir, self.id, self.runs, 60);
    }
}

/// Prints the last `lines` lines of the logs `<log_dir>/node<id>.<run>.{out,err}`
/// of runs `1..=runs` of node `id` (for failing tests).
pub fn dump_node_logs(log_dir: &Path, id: u64, runs: u32, lines: usize) {
    for run in 1..=runs {
        for ext in ["out", "err"] {
            let p = log_dir.join(format!("node{id}.{run}.{ext}"));
            if let Ok(text) = std::fs::read_to_string(&p) {
                let tail: Vec<&str> = text.lines().rev().take(lines).collect();
                eprintln!("----- {} (last {} lines) -----", p.display(), tail.len());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.dump_logs();
            // Keep the full logs past the temp dir's deletion.
            let keep = std::env::temp_dir().join(format!(
                "cairn-failed-{}-node{}",
                std::process::id(),
                self.id
            ));
            if std::fs::create_dir_all(&keep).is_ok() {
                if let Ok(entries) = std::fs::read_dir(&self.log_dir) {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.starts_with(&format!("node{}.", self.id)) {
                            let _ = std::fs::copy(e.path(), keep.join(&name));
                        }
                    }
                }
                eprintln!("logs of node {} kept in {}", self.id, keep.display());
            }
        }
    }
}

/// A cluster of real nodes in a temporary directory.
pub struct Cluster {
    /// The nodes, node `i + 1` at index `i`.
    pub nodes: Vec<Node>,
    root: tempfile::TempDir,
}

impl Cluster {
    /// Initialises node 1, joins the others (given node 1's cluster
    /// secret), waits until all are ready. `extra` goes to every `serve`.
    pub fn start(n: u64, extra: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let mut cluster = Cluster {
            nodes: Vec::new(),
            root,
        };
        for _ in 0..n {
            cluster.add_node(extra);
        }
        cluster
    }

    /// Adds (initialises or joins) one more node and waits for it.
    pub fn add_node(&mut self, extra: &[&str]) -> &Node {
        self.add_node_with(extra, &[])
    }

    /// Adds one more node whose first start (`init` for node 1, `serve
    /// --join` for the others) also gets `own` (e.g. `--roles storage`),
    /// and waits for it.
    pub fn add_node_with(&mut self, extra: &[&str], own: &[&str]) -> &Node {
        self.add_configured_node(extra, own, None)
    }

    /// [`Cluster::add_node_with`] for a node started with `--config
    /// config` (e.g. a `[branding]` table).
    pub fn add_configured_node(
        &mut self,
        extra: &[&str],
        own: &[&str],
        config: Option<PathBuf>,
    ) -> &Node {
        self.add_node_in(extra, own, config, &[])
    }

    /// [`Cluster::add_node_with`] for a node whose processes get `env`
    /// (e.g. the `AWS_*` variables of its object store).
    pub fn add_node_with_env(
        &mut self,
        extra: &[&str],
        own: &[&str],
        env: &[(String, String)],
    ) -> &Node {
        self.add_node_in(extra, own, None, env)
    }

    fn add_node_in(
        &mut self,
        extra: &[&str],
        own: &[&str],
        config: Option<PathBuf>,
        env: &[(String, String)],
    ) -> &Node {
        let id = self.nodes.len() as u64 + 1;
        let mut node = Node::new(self.root.path(), id);
        node.config = config;
        node.env = env.to_vec();
        if id == 1 {
            node.init_with(own);
            node.extra = extra.iter().map(|s| s.to_string()).collect();
            node.start();
        } else {
            node.extra = extra.iter().map(|s| s.to_string()).collect();
            let url = self.nodes[0].url();
            // The operator's copy of the secret `init` generated for node 1.
            node.spawn_join_with(&url, own);
        }
        node.wait_ready();
        self.nodes.push(node);
        &self.nodes[self.nodes.len() - 1]
    }

    /// Node `id` (1-based).
    pub fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// A scratch directory inside the cluster's temp dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.root.path().join(name);
        std::fs::create_dir_all(&p).expect("scratch dir");
        p
    }

    /// Creates an account through node 1 (`cairnd admin user create`).
    pub fn create_user(&self, name: &str, password: &str) {
        let pw = self.root.path().join(format!("{name}.pw"));
        std::fs::write(&pw, password).expect("password file");
        let out = self.nodes[0].admin(&[
            "user",
            "create",
            name,
            "--password-file",
            &pw.to_string_lossy(),
        ]);
        assert!(out.status.success(), "user create: {}", stderr(&out));
    }

    /// The current leader's id, as the first answering node sees it.
    pub fn leader(&self) -> Option<u64> {
        self.nodes.iter().find_map(|n| {
            let out = n.cli(&["cluster", "status", "--json"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            v["leader"].as_u64()
        })
    }
}

/// A running `cairn daemon`, killed on drop: a test that fails halfway
/// leaves no daemon behind.
pub struct Daemon(Child);

impl Daemon {
    /// Starts `cmd` (a `cairn daemon` command line).
    pub fn spawn(cmd: &mut Command) -> Self {
        Self(cmd.spawn().expect("spawn cairn daemon"))
    }

    /// Sends signal `sig` (`TERM`, `KILL`…).
    pub fn signal(&self, sig: &str) {
        ok(
            &format!("kill -{sig}"),
            &Command::new("kill")
                .args([&format!("-{sig}"), &self.0.id().to_string()])
                .output()
                .expect("kill"),
        );
    }

    /// SIGTERM, then the daemon's exit status (within 30 s).
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        wait_for("the daemon to exit", Duration::from_secs(30), || {
            self.0.try_wait().ok().flatten()
        })
    }

    /// SIGKILL, and the daemon reaped.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One client machine: its own `cairn` config, cache and password.
pub struct Device {
    /// The device name it logs in with.
    pub name: String,
    /// Its password (changes with `key passwd`).
    pub password: String,
    home: PathBuf,
}

impl Device {
    /// A device whose files live under `home`.
    pub fn new(home: &Path, name: &str, password: &str) -> Self {
        std::fs::create_dir_all(home).expect("device home");
        Device {
            name: name.into(),
            password: password.into(),
            home: home.to_owned(),
        }
    }

    /// The config file `cairn` keeps the token in.
    pub fn config_dir(&self) -> PathBuf {
        self.home.join("config")
    }

    /// Runs `cairn ARGS` as this device (own config and cache, password from
    /// `CAIRN_PASSWORD`, new password from `CAIRN_NEW_PASSWORD`).
    pub fn cairn_with(&self, args: &[&str], new_password: Option<&str>) -> Output {
        let mut cmd = self.command(args);
        match new_password {
            Some(p) => cmd.env("CAIRN_NEW_PASSWORD", p),
            None => cmd.env_remove("CAIRN_NEW_PASSWORD"),
        };
        cmd.output().expect("run cairn")
    }

    /// `cairn ARGS` as this device, not started: its own config and cache,
    /// the password in `CAIRN_PASSWORD`, stdin closed (for processes a
    /// test runs in the background, like `cairn daemon`).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("cairn"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("HOME", &self.home)
            .env("CAIRN_PASSWORD", &self.password)
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_PASSWORD_FILE")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `cairn ARGS` as this device.
    pub fn cairn(&self, args: &[&str]) -> Output {
        self.cairn_with(args, None)
    }

    /// Runs `cairn --json ARGS`, asserting success, and parses the output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        json_of(&format!("cairn {}", args.join(" ")), &self.cairn(&all))
    }

    /// Restores `snapshot` of account vault `vault` into a fresh `target`
    /// and asserts that the backed-up directory `source` came back byte for
    /// byte (a backed-up path is recreated under the target by its
    /// absolute path).
    pub fn restore_and_compare(&self, vault: &str, snapshot: &str, target: &Path, source: &Path) {
        let _ = std::fs::remove_dir_all(target);
        let t = target.to_str().expect("utf-8 target");
        // `latest` here is the vault's newest snapshot, whichever device
        // made it (cairn's own default is this device's newest).
        let mut args = vec!["restore", "--vault", vault, snapshot, "--target", t];
        if snapshot == "latest" {
            args.push("--all-devices");
        }
        ok(
            &format!("{} restores {snapshot}", self.name),
            &self.cairn(&args),
        );
        let restored = target.join(source.strip_prefix("/").expect("absolute source"));
        if let Err(e) = same_tree(source, &restored) {
            panic!("restore of {snapshot} by {} differs: {e}", self.name);
        }
    }

    /// `cairn login --server URL --user USER --device NAME`.
    pub fn login(&self, url: &str, user: &str) -> Output {
        self.cairn(&[
            "login", "--server", url, "--user", user, "--device", &self.name,
        ])
    }
}

/// A TCP relay in front of a node that records every byte clients send
/// and every byte the node answers.
pub struct RecordingProxy {
    /// The port clients connect to.
    pub port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    /// Relays `127.0.0.1:<port>` to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Self {
        Self::start_with(target, false)
    }

    /// Like [`RecordingProxy::start`], but a connection whose first
    /// request asks for an `Upgrade:` (a WebSocket) is answered `403` and
    /// closed, as proxies that forbid WebSockets do.
    pub fn refusing_upgrades(target: u16) -> Self {
        Self::start_with(target, true)
    }

    fn start_with(target: u16, refuse_upgrades: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (record, answers) = (sent.clone(), received.clone());
        std::thread::spawn(move || {
            for mut client in listener.incoming().flatten() {
                let (record, answers) = (record.clone(), answers.clone());
                // Its own thread: reading the head must not hold up others.
                std::thread::spawn(move || {
                    if refuse_upgrades && asks_upgrade(&client) {
                        let _ = client.write_all(
                            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        return;
                    };
                    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => (c, s),
                        _ => return,
                    };
                    std::thread::spawn(move || pump(s2, c2, Some(answers)));
                    pump(client, server, Some(record));
                });
            }
        });
        RecordingProxy {
            port,
            sent,
            received,
        }
    }

    /// Everything clients sent so far.
    pub fn sent(&self) -> Vec<u8> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Everything the node answered so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Whether the first request head on `client` asks for an upgrade (read
/// with `peek`, so a relayed connection loses nothing).
fn asks_upgrade(client: &TcpStream) -> bool {
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let n = match client.peek(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if let Some(end) = head.find("\r\n\r\n") {
            return head[..end].contains("\r\nupgrade:");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn pump(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(r) = &record {
            if let Ok(mut v) = r.lock() {
                v.extend_from_slice(&buf[..n]);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The TOTP secret an `otpauth://` URI carries (RFC 4648 base32, no
/// padding), to compute the codes an authenticator app would show.
pub fn totp_secret(uri: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = uri
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("a secret in the otpauth URI");
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base32") as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir` whose bytes contain `needle` (hex and raw forms
/// are the caller's business).
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() && std::fs::read(&p).is_ok_and(|b| contains(&b, needle)) => {
                    found.push(p);
                }
                _ => {}
            }
        }
    }
    found
}

/// A minimal HTTP/1.1 request on loopback: `(status, body)`, `None` if the
/// node does not answer.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    http_with_head(port, method, path, headers, body).map(|(code, _, body)| (code, body))
}

/// [`http`], also answering the response head (status line and headers,
/// as sent).
pub fn http_with_head(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut rest = raw[split + 4..].to_vec();
    if chunked {
        rest = dechunk(&rest)?;
    }
    Some((code, head, rest))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Writes `size` bytes of reproducible, partly compressible data to `path`.
pub fn write_data(path: &Path, size: usize, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create data"));
    let mut block = vec![0u8; 64 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        // Half random, half repeated text: zstd has something to do.
        rng.fill(&mut block[..n / 2]);
        for (i, b) in block[n / 2..n].iter_mut().enumerate() {
            *b = b"cairn backup test data "[i % 23];
        }
        f.write_all(&block[..n]).expect("write data");
        left -= n;
    }
    f.flush().expect("flush data");
}

/// Whether two directory trees have the same files with the same bytes.
pub fn same_tree(a: &Path, b: &Path) -> Result<(), String> {
    let list = |root: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p.clone());
                }
                out.push(p.strip_prefix(root).map(Path::to_owned).unwrap_or(p));
            }
        }
        out.sort();
        out
    };
    let (la, lb) = (list(a), list(b));
    if la != lb {
        return Err(format!("different entries:\n{la:?}\n{lb:?}"));
    }
    for rel in la {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        if pa.is_file() && std::fs::read(&pa).ok() != std::fs::read(&pb).ok() {
            return Err(format!("{} differs", rel.display()));
        }
    }
    Ok(())
}
