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

pub mod hostile;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// One `cairnd` process and its data directory; killed on drop.
pub struct Node {
    /// Raft node id.
    pub id: u64,
    /// Data directory.
    pub dir: PathBuf,
    /// Loopback port.
    pub port: u16,
    /// Extra arguments for every `serve` of this node.
    pub extra: Vec<String>,
    log_dir: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl Node {
    fn new(root: &Path, id: u64, extra: &[&str]) -> Self {
        let log_dir = root.join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Node {
            id,
            dir: root.join(format!("node{id}")),
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log_dir,
            child: None,
            runs: 0,
        }
    }

    /// The node's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn identity(&self) -> Vec<String> {
        identity_args(&self.dir, self.id, self.port)
    }

    fn spawn(&mut self, args: Vec<String>) {
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
            .args(&args)
            .args(&self.extra)
            .env("CAIRN_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("spawn cairnd");
        self.child = Some(child);
    }

    /// `cairnd serve` (after `init` or a first `--join`).
    pub fn start(&mut self) {
        let dir = self.dir.to_string_lossy().into_owned();
        self.spawn(vec!["serve".into(), "--data-dir".into(), dir]);
    }

    /// SIGKILL: a crash, not a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        http(self.port, "GET", "/readyz", &[], b"").is_some_and(|(code, _)| code == 200)
    }

    /// Waits for `/readyz`.
    pub fn wait_ready(&self) {
        wait_for(
            &format!("node {} ready", self.id),
            Duration::from_secs(60),
            || self.is_ready().then_some(()),
        );
    }

    /// The value of one metric series (name with labels, as exposed).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (code, body) = http(self.port, "GET", "/metrics", &[], b"")?;
        if code != 200 {
            return None;
        }
        String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .find_map(|v| v.trim().parse().ok())
    }

    /// This node's admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// `cairnd ARGS --server <node> --admin-token-file <its token>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("cairnd"))
            .args(args)
            .args(["--server", &self.url(), "--admin-token-file"])
            .arg(self.dir.join("admin.token"))
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

    fn dump_logs(&self) {
        dump_node_logs(&self.log_dir, self.id, self.runs, 40);
    }
}

/// Prints the last `lines` lines of the logs `<log_dir>/node<id>.<run>.{out,err}`
/// of runs `1..=runs` of node `id` (for failing tests; the layout both
/// this harness and `cairnd`'s own tests write).
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
        let id = self.nodes.len() as u64 + 1;
        let mut node = Node::new(self.root.path(), id, extra);
        if id == 1 {
            let mut args = vec!["init".to_string()];
            args.extend(node.identity());
            let out = Command::new(bin("cairnd"))
                .args(&args)
                .output()
                .expect("cairnd init");
            assert!(out.status.success(), "init: {}", stderr(&out));
            node.start();
        } else {
            // The operator's copy of the secret `init` generated for node 1.
            let secret = self.nodes[0].dir.join("cluster.secret");
            let mut args = vec!["serve".to_string()];
            args.extend(node.identity());
            args.extend(["--join".to_string(), self.nodes[0].url()]);
            args.extend([
                "--cluster-secret-file".to_string(),
                secret.to_string_lossy().into_owned(),
            ]);
            node.spawn(args);
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
        let mut cmd = Command::new(bin("cairn"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("HOME", &self.home)
            .env("CAIRN_PASSWORD", &self.password)
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_PASSWORD_FILE")
            .stdin(Stdio::null());
        match new_password {
            Some(p) => cmd.env("CAIRN_NEW_PASSWORD", p),
            None => cmd.env_remove("CAIRN_NEW_PASSWORD"),
        };
        cmd.output().expect("run cairn")
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
        ok(
            &format!("{} restores {snapshot}", self.name),
            &self.cairn(&["restore", "--vault", vault, snapshot, "--target", t]),
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

/// A TCP relay in front of a node that records every byte clients send.
pub struct RecordingProxy {
    /// The port clients connect to.
    pub port: u16,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    /// Relays `127.0.0.1:<port>` to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let record = record.clone();
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || pump(client, server, Some(record)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        RecordingProxy { port, sent }
    }

    /// Everything clients sent so far.
    pub fn sent(&self) -> Vec<u8> {
        self.sent.lock().map(|v| v.clone()).unwrap_or_default()
    }
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
    let head = String::from_utf8_lossy(&raw[..split]);
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut rest = raw[split + 4..].to_vec();
    if chunked {
        rest = dechunk(&rest)?;
    }
    Some((code, rest))
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
