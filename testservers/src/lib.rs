//! Storage servers for tests, started on loopback and killed when dropped:
//! [`S3sFs`] (an S3 implementation over a directory that checks request
//! signatures; its objects are plain files a test can damage), [`Moto`]
//! (moto's S3 server, in memory, a second independent implementation),
//! [`Sshd`] (Debian's OpenSSH server, for SFTP), and [`Tmpfs`], a small
//! disk that fills up; [`pseudo_random`] makes incompressible test data.
//!
//! This crate depends on no cairn crate, so the chunk store, the client and
//! the cross-process tests all take it as a dev-dependency (one set of
//! launchers, no dependency cycle).
//!
//! A server binary comes from `PATH`, the tools directory
//! `scripts/install-deps.sh` fills (`$CAIRN_TOOLS`, default
//! `~/.cache/cairn-tools`) or `/usr/sbin`; a missing one skips the test
//! with a message, except under CI (`CI=true`), where it fails it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every S3 server has.
pub const BUCKET: &str = "cairn-test";
const S3SFS_ACCESS_KEY: &str = "cairn";
const S3SFS_SECRET_KEY: &str = "cairn-secret";

/// Finds a server binary on `PATH`, in the tools directory or in
/// `/usr/sbin`; `None` (after saying so) when it is missing outside CI.
///
/// # Panics
///
/// Under CI when the binary is missing.
pub fn tool(name: &str) -> Option<PathBuf> {
    let tools = std::env::var("CAIRN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/cairn-tools")
        });
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    dirs.extend([
        tools.join("bin"),
        tools.join("moto/bin"),
        "/usr/sbin".into(),
    ]);
    if let Some(found) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name} is missing; scripts/install-deps.sh installs it");
    }
    eprintln!("SKIPPED: {name} is not installed (scripts/install-deps.sh installs it)");
    None
}

/// A loopback port that was free a moment ago.
///
/// # Panics
///
/// No port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until `child` (called `what`) accepts connections on `port`.
///
/// # Panics
///
/// The process exits first, or a minute passes.
pub fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server process, killed (and reaped) when dropped.
pub struct Proc(Child);

impl Proc {
    /// Kills the process now (idempotent).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` quietly and waits for it to listen on `port`.
fn listen(mut cmd: Command, port: u16, what: &str) -> Proc {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    wait_for_port(port, &mut child, what);
    Proc(child)
}

/// A running `s3s-fs` with the bucket [`BUCKET`], over a temporary
/// directory that outlives restarts ([`S3sFs::cut`], [`S3sFs::resume`]).
pub struct S3sFs {
    /// Its loopback port.
    pub port: u16,
    root: tempfile::TempDir,
    proc: Proc,
}

impl S3sFs {
    /// Starts one, or `None` when the binary is missing (see [`tool`]).
    ///
    /// # Panics
    ///
    /// The server does not start listening within a minute.
    pub fn start() -> Option<Self> {
        let bin = tool("s3s-fs")?;
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket dir");
        let port = free_port();
        let proc = Self::spawn(&bin, root.path(), port);
        Some(Self { port, root, proc })
    }

    fn spawn(bin: &Path, root: &Path, port: u16) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3SFS_ACCESS_KEY])
            .args(["--secret-key", S3SFS_SECRET_KEY])
            .arg(root);
        listen(cmd, port, "s3s-fs")
    }

    /// Kills the server: the network is cut.
    pub fn cut(&mut self) {
        self.proc.kill();
    }

    /// Starts it again on the same port over the same objects.
    ///
    /// # Panics
    ///
    /// The binary is gone or the server does not listen.
    pub fn resume(&mut self) {
        let bin = tool("s3s-fs").expect("s3s-fs");
        self.proc = Self::spawn(&bin, self.root.path(), self.port);
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `AWS_*` variables that reach it with its credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(self.port, S3SFS_ACCESS_KEY, S3SFS_SECRET_KEY)
    }

    /// The file holding object `key` of [`BUCKET`].
    pub fn file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The files of every object under `prefix` of [`BUCKET`], sorted
    /// (s3s-fs's own temporary files left out).
    pub fn files_under(&self, prefix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut dirs = vec![self.file(prefix)];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let temporary = entry.file_name().to_string_lossy().contains(".tmp");
                match entry.file_type() {
                    Ok(t) if t.is_dir() => dirs.push(path),
                    Ok(t) if t.is_file() && !temporary => out.push(path),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }
}

/// The `AWS_*` variables of a loopback S3 server.
fn s3_env(port: u16, key: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", key.into()),
        ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// moto's S3 server (in memory) with the bucket [`BUCKET`]; it does not
/// check signatures.
pub struct Moto {
    /// Its loopback port.
    pub port: u16,
    _proc: Proc,
}

impl Moto {
    /// Starts one and creates the bucket, or `None` when the binary is
    /// missing (see [`tool`]).
    ///
    /// # Panics
    ///
    /// The server does not listen or refuses the bucket.
    pub fn start() -> Option<Self> {
        let bin = tool("moto_server")?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let moto = Self {
            port,
            _proc: listen(cmd, port, "moto_server"),
        };
        // moto takes an unsigned request: one plain HTTP/1.1 PUT.
        let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
        write!(
            conn,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .expect("send the bucket request");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).expect("moto's answer");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create the bucket: {answer}"
        );
        Some(moto)
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The `AWS_*` variables that reach it.
    pub fn env(&self) -> Vec<(String, String)> {
        s3_env(self.port, "test", "test")
    }
}

/// Debian's sshd on a loopback port, run as root with a fresh host key and
/// a client key (`root` logs in with it); SFTP paths live under
/// [`Sshd::dir`].
pub struct Sshd {
    /// Its loopback port.
    pub port: u16,
    dir: tempfile::TempDir,
    _proc: Proc,
}

impl Sshd {
    /// Starts one, or `None` when sshd is missing (see [`tool`]) or we are
    /// not root (sshd must be to log a user in).
    ///
    /// # Panics
    ///
    /// ssh-keygen fails or sshd does not listen.
    pub fn start() -> Option<Self> {
        let sshd = tool("sshd")?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: sshd needs root to log users in");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for (key, file) in [("host", "host_key"), ("client", "client_key")] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
                .arg(d.join(file))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "{out:?}");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("keys");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        std::fs::create_dir(d.join("vaults")).expect("vaults dir");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n\
             Subsystem sftp internal-sftp\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let mut cmd = Command::new(sshd);
        cmd.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
        let proc = listen(cmd, port, "sshd");
        Some(Self {
            port,
            dir,
            _proc: proc,
        })
    }

    /// The server's temporary directory (keys, config, `vaults/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `sftp://root@127.0.0.1:PORT/DIR/vaults/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "sftp://root@127.0.0.1:{}{}/vaults/{name}",
            self.port,
            self.dir.path().display()
        )
    }

    /// The variables that log in with the client key and accept the fresh
    /// host key (`CAIRN_SFTP_KEY`, `CAIRN_SFTP_KNOWN_HOSTS`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "CAIRN_SFTP_KEY".into(),
                self.dir.path().join("client_key").display().to_string(),
            ),
            ("CAIRN_SFTP_KNOWN_HOSTS".into(), "accept".into()),
        ]
    }
}

impl Drop for Sshd {
    /// Ends the ssh master connections clients left behind (OpenDAL's SFTP
    /// service starts them with `ControlPersist=yes`, one per pooled
    /// connection): the processes whose command line names this server's
    /// client key, so only this server's.
    fn drop(&mut self) {
        let key = self.dir.path().join("client_key");
        let key = key.to_string_lossy();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(key.as_ref()) {
                // SIGKILL: an idle ssh master notes SIGTERM but sleeps on.
                // SAFETY: kill has no memory preconditions; the pid is one
                // of the ssh processes started against this server.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// A tmpfs mounted for a test (a disk that fills up at a size the test
/// picks), unmounted on drop. Needs root, as [`Sshd`] does.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts one of `size` (`mount`'s syntax: `96m`) at `at`, creating it.
    ///
    /// # Panics
    ///
    /// The directory cannot be created or `mount` fails.
    pub fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).expect("tmpfs mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs at {}", at.display());
        Self(at.to_path_buf())
    }

    /// Grows or shrinks it to `size` in place (what is stored stays).
    ///
    /// # Panics
    ///
    /// `mount -o remount` fails.
    pub fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(st.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `len` bytes of xorshift64 noise from `seed`: test data that does not
/// compress or deduplicate, the same on every run.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
