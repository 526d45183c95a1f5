//! Helpers to run real `cairnd` processes: free ports, data directories in
//! a temp dir, logs captured to files (printed when a test fails), polling
//! with deadlines instead of fixed sleeps. The generic pieces (ports,
//! polling, HTTP, log tails) are the cross-crate harness's, `cairn_tests`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use cairn_node::wire::ClusterStatus;
// Each test target uses its own subset of these.
#[allow(unused_imports)]
pub use cairn_tests::{free_port, stderr, stdout, wait_for};

pub const CAIRND: &str = env!("CARGO_BIN_EXE_cairnd");

/// One `cairnd` process; killed on drop.
pub struct Node {
    pub id: u64,
    pub dir: PathBuf,
    pub port: u16,
    pub log_dir: PathBuf,
    child: Option<Child>,
    runs: u32,
    /// Extra environment for every process this node spawns.
    pub env: Vec<(String, String)>,
    /// Configuration file passed as `--config` to `init` and `serve`.
    pub config: Option<PathBuf>,
}

impl Node {
    pub fn new(root: &Path, id: u64) -> Self {
        let dir = root.join(format!("node{id}"));
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Node {
            id,
            dir,
            port: free_port(),
            log_dir,
            child: None,
            runs: 0,
            env: Vec::new(),
            config: None,
        }
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts `cairnd` with `args`, logging to `<logs>/node<id>.<run>.{out,err}`.
    pub fn spawn(&mut self, args: &[&str]) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        self.runs += 1;
        let out = std::fs::File::create(
            self.log_dir
                .join(format!("node{}.{}.out", self.id, self.runs)),
        )
        .expect("log");
        let err = std::fs::File::create(
            self.log_dir
                .join(format!("node{}.{}.err", self.id, self.runs)),
        )
        .expect("log");
        let child = Command::new(CAIRND)
            .args(self.with_config(args))
            .env("CAIRN_LOG", "info,openraft=info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
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

    /// `--data-dir D --node-id N --listen ADDR` of this node.
    fn identity_args(&self) -> Vec<String> {
        cairn_tests::identity_args(&self.dir, self.id, self.port)
    }

    /// `cairnd init` with extra arguments.
    pub fn init_with(&self, extra: &[&str]) {
        let ident = self.identity_args();
        let mut args: Vec<&str> = vec!["init"];
        args.extend(ident.iter().map(String::as_str));
        args.extend_from_slice(extra);
        let out = run_owned(self.with_config(&args));
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cairnd serve` of an initialised node.
    pub fn spawn_serve(&mut self) {
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
        let ident = self.identity_args();
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

    pub fn token_file(&self) -> PathBuf {
        self.dir.join("admin.token")
    }

    /// `Authorization` header value carrying this node's admin token.
    pub fn bearer(&self) -> String {
        let token = std::fs::read_to_string(self.token_file()).expect("admin token");
        format!("Bearer {}", token.trim())
    }

    /// Whether the process is running (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The value of metric `series` (name with labels, exactly as exposed),
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

    /// Runs `cairnd admin --server <this node> --admin-token-file <its token> ARGS`.
    pub fn admin(&self, args: &[&str]) -> Output {
        let token = self.token_file().to_string_lossy().into_owned();
        let url = self.url();
        let mut all = vec!["admin", "--server", &url, "--admin-token-file", &token];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn status(&self) -> Option<ClusterStatus> {
        let out = run(&["cluster", "status", "--server", &self.url(), "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// An HTTP request to this node; panics if it cannot be made.
    pub fn port_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        http_request(self.port, method, path, headers, body).expect("http request")
    }

    /// A JSON `POST` to this node; `None` if it cannot be made.
    pub fn get_post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<(u16, String)> {
        http_request(self.port, "POST", path, headers, body)
    }

    /// Runs `cairnd ARGS --server <this node> --admin-token-file <its token>`
    /// (for `cluster` commands).
    pub fn run_cli(&self, args: &[&str]) -> Output {
        let token = self.token_file().to_string_lossy().into_owned();
        let url = self.url();
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--server", &url, "--admin-token-file", &token]);
        run(&all)
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.get("/readyz"), Some((200, _)))
    }

    pub fn wait_ready(&self) {
        wait_for(
            &format!("node {} ready", self.id),
            Duration::from_secs(30),
            || self.is_ready().then_some(()),
        );
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
        cairn_tests::dump_node_logs(&self.log_dir, self.id, self.runs, 60);
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

/// Initialises `nodes[0]`, joins `nodes[1]` and `nodes[2]` to it, and
/// waits until the three are voters and storage nodes and all are ready.
pub fn form_three(nodes: &mut [Node]) {
    nodes[0].init();
    nodes[0].spawn_serve();
    nodes[0].wait_ready();
    let url1 = nodes[0].url();
    nodes[1].spawn_join(&url1);
    nodes[2].spawn_join(&url1);
    wait_for("three voters", Duration::from_secs(60), || {
        nodes[0]
            .status()
            .filter(|s| s.voters.len() == 3 && s.storage_nodes.len() == 3)
    });
    for n in &nodes[..3] {
        n.wait_ready();
    }
}

pub fn run(args: &[&str]) -> Output {
    run_owned(args.iter().map(|s| s.to_string()).collect())
}

pub fn run_owned(args: Vec<String>) -> Output {
    Command::new(CAIRND)
        .args(&args)
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .expect("run cairnd")
}

/// A minimal HTTP/1.1 GET, so the tests need no HTTP client of their own.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, &[], "")
}

/// A minimal HTTP/1.1 request with extra headers and a JSON body
/// ([`cairn_tests::http`], answering text).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut all = headers.to_vec();
    if !body.is_empty() {
        all.push(("Content-Type", "application/json"));
    }
    let (status, answer) = cairn_tests::http(port, method, path, &all, body.as_bytes())?;
    Some((status, String::from_utf8_lossy(&answer).into_owned()))
}

/// The body of a `POST /api/v1/admin/users` that creates `name` (a fixed
/// login key: no KDF to run, so tests can write fast).
pub fn user_body(name: &str) -> String {
    format!(
        r#"{{"name":"{name}","kdf":{{"memory_kib":8,"iterations":1,"parallelism":1,"salt":"{}"}},"login_key":"{}"}}"#,
        "00".repeat(16),
        "11".repeat(32)
    )
}

/// Names from `admin user list --json`.
pub fn user_names(o: &Output) -> Vec<String> {
    assert!(o.status.success(), "user list failed: {}", stderr(o));
    let users: Vec<cairn_node::wire::UserInfo> =
        serde_json::from_slice(&o.stdout).expect("user list json");
    users.into_iter().map(|u| u.name).collect()
}
