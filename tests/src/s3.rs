//! A loopback S3 server for tests: `s3s-fs` (an S3 implementation over a
//! directory that checks request signatures), started in a temp dir with
//! one bucket, killed when dropped. Its objects are plain files, so a test
//! can damage or delete one behind the service's back.
//!
//! The binary comes from `PATH` or the tools directory
//! `scripts/install-deps.sh` fills (`$CAIRN_TOOLS`, default
//! `~/.cache/cairn-tools`); a missing one skips the test with a message,
//! except under CI (`CI=true`), where it fails it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for};

/// The bucket every server has.
pub const BUCKET: &str = "cairn-test";
const ACCESS_KEY: &str = "cairn";
const SECRET_KEY: &str = "cairn-secret";

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

/// A running `s3s-fs` with the bucket [`BUCKET`].
pub struct S3sFs {
    /// Its loopback port.
    pub port: u16,
    root: tempfile::TempDir,
    child: Child,
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
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let mut server = Self { port, root, child };
        wait_for("s3s-fs to listen", Duration::from_secs(60), || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("s3s-fs exited early: {status}");
            }
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(server)
    }

    /// The `AWS_*` variables that reach it with its credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The file holding object `key` of [`BUCKET`].
    pub fn file(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The files of every object under `prefix` of [`BUCKET`], sorted.
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

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
