//! The run's license authority: a real `cairnd license-authority serve`
//! in its own namespace, serving HTTPS with a certificate the harness
//! makes for its address (a serial is a secret: nodes send it off
//! loopback only over TLS), trusted by every node through `--ca-file`.
//! The cluster is licensed with a serial of it, as an operator would do;
//! the authority outage nemesis kills it (or cuts it off, see
//! [`crate::net::Network::cut_authority`]), and the lease workload
//! ([`crate::lease`]) contends for the same serial.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::check::lease::Tenure;
use crate::error::JepsenError;
use crate::http::{self, Tls};
use crate::interrupt;
use crate::net::Network;

/// The port the authority listens on (in its namespace).
pub const PORT: u16 = 8800;

/// The serial every run's cluster holds (and the rival contends for).
#[derive(Debug, Clone)]
pub struct Serial(pub String);

/// The authority process.
#[derive(Debug)]
pub struct Authority {
    cairnd: PathBuf,
    ns: String,
    addr: SocketAddr,
    dir: PathBuf,
    logs: PathBuf,
    lease_seconds: u64,
    tls: Tls,
    child: Option<Child>,
    runs: u32,
}

impl Authority {
    /// Makes its certificate under `dir/tls`, starts it in the authority
    /// namespace of `net` granting leases of `lease_seconds`, and waits
    /// until it answers.
    pub fn start(
        net: &Network,
        cairnd: &Path,
        dir: &Path,
        logs: &Path,
        lease_seconds: u64,
    ) -> Result<Authority, JepsenError> {
        let addr = SocketAddr::new(net.authority_addr().into(), PORT);
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)
            .map_err(JepsenError::io(format!("creating {}", tls_dir.display())))?;
        let cert = rcgen::generate_simple_self_signed(vec![addr.ip().to_string()])
            .map_err(|e| JepsenError::Setup(format!("authority certificate: {e}")))?;
        let write = |name: &str, text: String| {
            let path = tls_dir.join(name);
            std::fs::write(&path, text)
                .map_err(JepsenError::io(format!("writing {}", path.display())))
        };
        write("cert.pem", cert.cert.pem())?;
        write("key.pem", cert.signing_key.serialize_pem())?;
        let tls = Tls::trusting(&tls_dir.join("cert.pem")).map_err(JepsenError::Setup)?;
        let mut a = Authority {
            cairnd: cairnd.to_owned(),
            ns: net.authority_ns(),
            addr,
            dir: dir.to_owned(),
            logs: logs.to_owned(),
            lease_seconds,
            tls,
            child: None,
            runs: 0,
        };
        a.resume()?;
        Ok(a)
    }

    /// Its base URL, as the cluster's license names it.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The certificate nodes trust (`--ca-file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/cert.pem")
    }

    /// A TLS client configuration trusting it.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// (Re)starts the process on the same data and port; waits (up to 30
    /// s) until it answers. Logs go to `logs/authority.<run>.log`.
    pub fn resume(&mut self) -> Result<(), JepsenError> {
        self.runs += 1;
        let path = self.logs.join(format!("authority.{}.log", self.runs));
        let log =
            File::create(&path).map_err(JepsenError::io(format!("creating {}", path.display())))?;
        let err = log
            .try_clone()
            .map_err(JepsenError::io("cloning a log handle"))?;
        let tls = self.dir.join("tls");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .arg(&self.cairnd)
            .args(["license-authority", "serve", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen", &self.addr.to_string()])
            .args(["--lease-seconds", &self.lease_seconds.to_string()])
            .arg("--tls-cert")
            .arg(tls.join("cert.pem"))
            .arg("--tls-key")
            .arg(tls.join("key.pem"))
            .env("CAIRN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(JepsenError::io("starting the license authority"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Any answer (401 without the operator token) means it serves.
            if self.get("/license/v1/serials", "").is_ok() {
                return Ok(());
            }
            if interrupt::interrupted() {
                return Err(JepsenError::Interrupted);
            }
            if Instant::now() > deadline {
                return Err(JepsenError::Timeout("the license authority".into()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILLs the process ([`Authority::resume`] starts it again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The operator's token.
    fn operator_token(&self) -> Result<String, JepsenError> {
        let path = self.dir.join("data/operator.token");
        std::fs::read_to_string(&path)
            .map(|t| t.trim().to_string())
            .map_err(JepsenError::io(format!("reading {}", path.display())))
    }

    fn get(&self, path: &str, token: &str) -> Result<http::Response, http::HttpError> {
        let bearer = format!("Bearer {token}");
        http::request_tls(
            &self.tls,
            self.addr,
            "GET",
            path,
            &[("Authorization", &bearer)],
            b"",
            Duration::from_secs(5),
        )
    }

    /// Issues a serial for the run (as `serial create` does).
    pub fn create_serial(&self) -> Result<Serial, JepsenError> {
        let bearer = format!("Bearer {}", self.operator_token()?);
        let body = json!({"customer": "jepsen"}).to_string();
        let r = http::request_tls(
            &self.tls,
            self.addr,
            "POST",
            "/license/v1/serials",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
            Duration::from_secs(10),
        );
        match r {
            Ok((200, answer)) => serde_json::from_slice::<Value>(&answer)
                .ok()
                .and_then(|v| Some(Serial(v["serial"].as_str()?.to_string())))
                .ok_or_else(|| JepsenError::Setup("the authority issued no serial".into())),
            other => Err(JepsenError::Setup(format!("issuing a serial: {other:?}"))),
        }
    }

    /// The authority's history of `serial`: every tenure, oldest first.
    pub fn tenures(&self, serial: &Serial) -> Result<Vec<Tenure>, JepsenError> {
        #[derive(Deserialize)]
        struct Record {
            serial: String,
            history: Vec<Tenure>,
        }
        let token = self.operator_token()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = loop {
            match self.get("/license/v1/serials", &token) {
                Ok((200, answer)) => break answer,
                other if Instant::now() > deadline => {
                    return Err(JepsenError::Setup(format!("listing serials: {other:?}")))
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        };
        let records: Vec<Record> = serde_json::from_slice(&answer)
            .map_err(|e| JepsenError::Setup(format!("the serial list: {e}")))?;
        records
            .into_iter()
            .find(|r| r.serial == serial.0)
            .map(|r| r.history)
            .ok_or_else(|| JepsenError::Setup("the run's serial is not listed".into()))
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        self.kill();
    }
}
