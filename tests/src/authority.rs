//! A real license authority for tests (`cairnd license-authority serve`
//! on loopback, killed on drop) and giving a cluster its license.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{bin, free_port, json_of, ok, wait_for, Node};

/// A `cairnd license-authority serve` process; killed on drop.
pub struct Authority {
    /// Its data directory.
    pub dir: PathBuf,
    /// Its loopback port.
    pub port: u16,
    lease_seconds: u64,
    logs: PathBuf,
    child: Option<Child>,
    runs: u32,
}

impl Authority {
    /// Initialises and starts an authority under `root` granting leases
    /// of `lease_seconds`.
    pub fn start(root: &Path, lease_seconds: u64) -> Self {
        let mut a = Authority {
            dir: root.join("authority"),
            port: free_port(),
            lease_seconds,
            logs: root.join("logs"),
            child: None,
            runs: 0,
        };
        std::fs::create_dir_all(&a.logs).expect("log dir");
        let out = a.run(&["license-authority", "init", "--data-dir", &a.dir_arg()]);
        ok("license-authority init", &out);
        a.resume();
        a
    }

    /// The data directory as an argument.
    pub fn dir_arg(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `cairnd ARGS` (to completion).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("cairnd"))
            .args(args)
            .output()
            .expect("run cairnd")
    }

    /// (Re)starts the process on the same port and data directory.
    pub fn resume(&mut self) {
        self.runs += 1;
        let log = |ext: &str| {
            std::fs::File::create(self.logs.join(format!("authority.{}.{ext}", self.runs)))
                .expect("log file")
        };
        let child = Command::new(bin("cairnd"))
            .args([
                "license-authority",
                "serve",
                "--data-dir",
                &self.dir_arg(),
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--lease-seconds",
                &self.lease_seconds.to_string(),
            ])
            .env("CAIRN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log("out"))
            .stderr(log("err"))
            .spawn()
            .expect("spawn the authority");
        self.child = Some(child);
        let port = self.port;
        wait_for("the authority listening", Duration::from_secs(30), || {
            crate::http(port, "GET", "/license/v1/serials", &[], b"").map(|_| ())
        });
    }

    /// SIGKILLs the process (`resume` starts it again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `cairnd license-authority serial ARGS --authority URL --data-dir D --json`.
    pub fn serial(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json", "license-authority", "serial"];
        all.extend_from_slice(args);
        let url = self.url();
        let dir = self.dir_arg();
        all.extend_from_slice(&["--authority", &url, "--data-dir", &dir]);
        json_of(&format!("serial {}", args.join(" ")), &self.run(&all))
    }

    /// A new serial for `customer`.
    pub fn create_serial(&self, customer: &str) -> String {
        self.serial(&["create", customer])["serial"]
            .as_str()
            .expect("serial")
            .to_owned()
    }

    /// The authority's record of `serial` (`serial list --json`).
    pub fn record(&self, serial: &str) -> Value {
        let list = self.serial(&["list"]);
        list.as_array()
            .expect("serial list")
            .iter()
            .find(|r| r["serial"] == serial)
            .cloned()
            .expect("the serial is listed")
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            for run in 1..=self.runs {
                let err = self.logs.join(format!("authority.{run}.err"));
                let text = std::fs::read_to_string(&err).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} (last lines) ---", err.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// `cairnd admin license set` on `node`'s cluster: `serial` from `authority`,
/// renewing every `renew` seconds, with `grace` seconds of grace.
pub fn set_license(node: &Node, serial: &str, authority: &str, renew: u64, grace: u64) {
    let out = node.admin(&[
        "license",
        "set",
        "--serial",
        serial,
        "--authority",
        authority,
        "--renew-seconds",
        &renew.to_string(),
        "--grace-seconds",
        &grace.to_string(),
    ]);
    ok("admin license set", &out);
}
