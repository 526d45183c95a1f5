//! Node configuration: the identity a node keeps in its data directory, the
//! data directory layout, the configuration file, and the Raft timing.
//!
//! A node's id and advertised address are fixed when it is initialised or
//! first joins, and written to `<data-dir>/node.json`; `cairnd serve` reads
//! them back so a restart cannot come up under a different identity (a Raft
//! node that changes id or address while keeping its log corrupts the
//! cluster's membership). Its roles and storage labels are kept there too
//! (`cairnd serve --change-roles` rewrites them, see `docs/OPERATIONS.md`).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::NodeError;
use cairn_consensus::event::Role;

/// Version of `node.json`.
pub const NODE_FILE_FORMAT: u32 = 1;

/// Where things live under a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Raft RocksDB (log, vote, state machine).
    pub fn raft(&self) -> PathBuf {
        self.root.join("raft")
    }

    /// The chunk store of the storage role (RocksDB).
    pub fn chunks(&self) -> PathBuf {
        self.root.join("chunks")
    }

    /// The node identity file.
    pub fn node_file(&self) -> PathBuf {
        self.root.join("node.json")
    }

    /// The admin token (mode 0600).
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// The cluster secret every node has (mode 0600).
    pub fn cluster_secret(&self) -> PathBuf {
        self.root.join("cluster.secret")
    }

    /// The generated dev TLS files (`--tls-self-signed`), mode 0700.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// The generated dev certificate; clients trust it with `--ca-file`.
    pub fn tls_cert(&self) -> PathBuf {
        self.tls_dir().join("cert.pem")
    }

    /// The generated dev private key (mode 0600).
    pub fn tls_key(&self) -> PathBuf {
        self.tls_dir().join("key.pem")
    }
}

/// What a node is, persisted in `node.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Format version of this file.
    pub format: u32,
    /// The Raft node id.
    pub node_id: u64,
    /// The socket address to bind.
    pub listen: SocketAddr,
    /// The base URL peers and clients use to reach this node.
    pub advertise: String,
    /// The roles this node runs (absent in a `node.json` from before
    /// roles: every role). Kept here, like the id, so a restart keeps them.
    #[serde(default = "crate::roles::all")]
    pub roles: BTreeSet<Role>,
    /// The storage labels of this node's chunk store (the pools it
    /// belongs to); empty without the storage role.
    #[serde(default)]
    pub storage_labels: BTreeSet<String>,
}

impl NodeIdentity {
    /// An identity advertising `http://<listen>` (`https://` with `tls`)
    /// unless told otherwise.
    pub fn new(node_id: u64, listen: SocketAddr, advertise: Option<String>, tls: bool) -> Self {
        let scheme = if tls { "https" } else { "http" };
        let advertise = advertise.unwrap_or_else(|| format!("{scheme}://{listen}"));
        Self {
            format: NODE_FILE_FORMAT,
            node_id,
            listen,
            advertise,
            roles: crate::roles::all(),
            storage_labels: BTreeSet::new(),
        }
    }

    /// Whether this node runs `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Reads `node.json`, `None` if the node was never initialised.
    ///
    /// # Errors
    ///
    /// IO errors other than "not found", malformed JSON, a newer format.
    pub fn load(dir: &DataDir) -> Result<Option<Self>, NodeError> {
        let path = dir.node_file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(NodeError::Io { path, source }),
        };
        let id: Self = serde_json::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        if id.format != NODE_FILE_FORMAT {
            return Err(NodeError::Config(format!(
                "{}: format {} is not supported by this build (expects {NODE_FILE_FORMAT})",
                path.display(),
                id.format
            )));
        }
        Ok(Some(id))
    }

    /// Writes `node.json` durably (temp file, fsync, rename, fsync dir).
    ///
    /// # Errors
    ///
    /// Any IO error.
    pub fn save(&self, dir: &DataDir) -> Result<(), NodeError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| NodeError::Config(e.to_string()))?;
        write_durably(&dir.node_file(), &json, 0o644)
    }
}

/// Writes `bytes` to `path` via a temporary file, fsyncs it, renames it into
/// place and fsyncs the directory, so a crash leaves the old or the new file.
pub(crate) fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<(), NodeError> {
    use std::os::unix::fs::OpenOptionsExt;

    let io = |source| NodeError::Io {
        path: path.to_owned(),
        source,
    };
    let parent = path
        .parent()
        .ok_or_else(|| NodeError::Config(format!("{} has no parent", path.display())))?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Largest snapshot chunk a node sends or accepts in one request.
pub const MAX_SNAPSHOT_CHUNK: u64 = 32 << 20;

/// Largest Raft snapshot a node accepts (2 GiB): a received snapshot is
/// assembled in memory at the offsets the chunks name, so a chunk whose
/// offset and length end beyond this is refused before openraft sees it
/// (an offset of 2^62 would otherwise abort the process on allocation).
/// A state whose snapshot outgrows it cannot be sent to a lagging follower.
pub const MAX_SNAPSHOT_SIZE: u64 = 2 << 30;

/// Raft timing and snapshot policy, from the `[raft]` table of the
/// configuration file and the matching `serve`/`init` flags.
///
/// Defaults: heartbeats every 60 ms and elections after 240–360 ms of
/// silence. openraft adds a leader lease (the maximum election timeout) on
/// top and checks every 1.5 heartbeats, so a follower stands for election
/// after 0.6–0.8 s without a heartbeat: ten heartbeats missed in a row,
/// which a busy two-core machine (backups compress on every core) does not
/// cause. A failover (leader crash to the first committed write on the new
/// leader) takes under 1 s. A snapshot
/// every 5 000 entries bounds the log and lets a new node catch up without
/// replaying history; it travels in chunks of 1 MiB, one HTTP request each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    /// Leader heartbeat interval, milliseconds.
    pub heartbeat_ms: u64,
    /// Lower bound of the random election timeout, milliseconds.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the random election timeout (and the leader lease),
    /// milliseconds.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
    /// Log entries kept behind the latest snapshot, so slightly lagging
    /// followers catch up from the log rather than a snapshot.
    pub snapshot_keep_logs: u64,
    /// Bytes of snapshot sent per install-snapshot request.
    pub snapshot_chunk_size: u64,
    /// How long one install-snapshot request (one chunk, or the last chunk
    /// and the install) may take, milliseconds.
    pub install_snapshot_timeout_ms: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 60,
            election_timeout_min_ms: 240,
            election_timeout_max_ms: 360,
            snapshot_every: 5000,
            snapshot_keep_logs: 1000,
            snapshot_chunk_size: 1 << 20,
            install_snapshot_timeout_ms: 10_000,
        }
    }
}

impl RaftSettings {
    /// The openraft configuration.
    ///
    /// # Errors
    ///
    /// [`NodeError::Config`] if openraft rejects the combination (e.g. a
    /// heartbeat not shorter than the election timeout), the snapshot
    /// interval is zero, or the chunk size is outside 1 B..=32 MiB.
    pub fn raft_config(&self) -> Result<Arc<openraft::Config>, NodeError> {
        if self.snapshot_every == 0 {
            return Err(NodeError::Config(
                "raft.snapshot_every must be positive".into(),
            ));
        }
        if !(1..=MAX_SNAPSHOT_CHUNK).contains(&self.snapshot_chunk_size) {
            return Err(NodeError::Config(format!(
                "raft.snapshot_chunk_size must be between 1 and {MAX_SNAPSHOT_CHUNK} bytes"
            )));
        }
        let config = openraft::Config {
            cluster_name: "cairn".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.install_snapshot_timeout_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.snapshot_keep_logs,
            snapshot_max_chunk_size: self.snapshot_chunk_size,
            ..Default::default()
        };
        Ok(Arc::new(config.validate().map_err(|e| {
            NodeError::Config(format!("raft settings: {e}"))
        })?))
    }
}

/// Limits of a node's HTTP server against slow, idle and too many
/// clients: the `[http]` table of the configuration file and the matching
/// `serve` flags (see `server::serve_app` for why these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Time a connection has to send a request's headers, milliseconds —
    /// a new connection, and an idle keep-alive one waiting for its next
    /// request (so it is also the idle timeout); then it is closed.
    pub header_timeout_ms: u64,
    /// Longest pause while a request body is received, milliseconds; the
    /// request then fails.
    pub body_timeout_ms: u64,
    /// Most connections (TLS handshakes included) served at once; further
    /// ones are closed on accept. Keep it below the process's open-file
    /// limit (`ulimit -n`, systemd `LimitNOFILE=`) minus what RocksDB and
    /// connections to peers need.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    /// 10 s for headers (and idle keep-alive), 60 s of body silence, 1024
    /// connections.
    fn default() -> Self {
        Self {
            header_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
            max_connections: 1024,
        }
    }
}

impl HttpSettings {
    /// The header (and keep-alive idle) timeout.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The body inactivity timeout.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    /// Refuses values that would disable a limit.
    ///
    /// # Errors
    ///
    /// [`NodeError::Config`] naming the setting.
    pub fn validate(&self) -> Result<(), NodeError> {
        if self.header_timeout_ms == 0 || self.body_timeout_ms == 0 {
            return Err(NodeError::Config(
                "http.header_timeout_ms and http.body_timeout_ms must be positive".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(NodeError::Config(
                "http.max_connections must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Settings of the storage role: the `[storage]` table of the configuration
/// file and the matching `serve` flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Durable copies an upload waits for (W), capped by the vault's
    /// replica count.
    pub write_quorum: usize,
    /// Pause between repair passes of the cluster role, milliseconds.
    pub repair_interval_ms: u64,
    /// Pause between garbage-collection passes, milliseconds.
    pub gc_interval_ms: u64,
    /// How long a vault's measured usage is reused for quota checks,
    /// milliseconds.
    pub usage_cache_ms: u64,
    /// Pause between scrubs (every stored copy read and checked; a damaged
    /// one is rewritten from a good copy), milliseconds; 0 turns it off.
    pub scrub_interval_ms: u64,
    /// Read rate of a scrub, bytes per second (it competes with backups
    /// for the disk).
    pub scrub_bytes_per_sec: u64,
    /// How long a running job may go without a heartbeat before the
    /// cluster role on the leader ends it `abandoned`, milliseconds (at
    /// least 10000; clients report every minute).
    pub job_silence_ms: u64,
    /// Where this storage node keeps its chunks' values: `None` in its
    /// own RocksDB (`DATA_DIR/chunks`), or an object store URL
    /// (`s3://BUCKET/PREFIX`, credentials from the `AWS_*` variables as
    /// the client reads them); metadata and touch times stay local either
    /// way. Label such a node (e.g. `cloud`) to give a tier cloud-backed
    /// copies.
    pub chunk_store: Option<String>,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            write_quorum: 2,
            repair_interval_ms: 30_000,
            gc_interval_ms: 600_000,
            usage_cache_ms: 5_000,
            scrub_interval_ms: 86_400_000,
            scrub_bytes_per_sec: 64 << 20,
            job_silence_ms: 15 * 60_000,
            chunk_store: None,
        }
    }
}

/// Settings of the downloads role: the `[downloads]` table of the
/// configuration file (see [`crate::downloads`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DownloadSettings {
    /// Where the client builds are (`cairn`, `cairn-<os>-<arch>`);
    /// default: the directory of the running `cairnd`.
    pub dir: Option<PathBuf>,
}

/// The `cairnd` configuration file (TOML, `--config FILE`).
///
/// Every key is optional and a flag given on the command line wins over the
/// file, so one file can hold a node's settings and a flag can still change
/// one of them for a run. Relative paths are relative to the file's
/// directory. A key the file does not know is an error, so a typo does not
/// silently fall back to a default.
///
/// ```toml
/// data_dir = "/var/lib/cairn"
/// node_id = 1
/// listen = "10.0.0.1:8700"
/// advertise = "http://node1.example:8700"
/// insecure_http = true
/// cluster_secret_file = "/etc/cairn/cluster.secret"
/// # tls_cert = "/etc/cairn/tls/cert.pem"  # HTTPS (with tls_key)
/// # tls_key = "/etc/cairn/tls/key.pem"
/// # tls_self_signed = true                # dev: generate <data_dir>/tls/*.pem
/// # ca_file = "/etc/cairn/ca.pem"         # extra trusted root for peers and commands
/// # join = "http://10.0.0.2:8700"      # serve: the cluster to join
/// # server = "http://127.0.0.1:8700"   # cluster/admin commands
/// # admin_token_file = "/var/lib/cairn/admin.token"
///
/// [raft]
/// heartbeat_ms = 150
/// election_timeout_min_ms = 600
/// election_timeout_max_ms = 900
/// snapshot_every = 5000
/// snapshot_keep_logs = 1000
/// snapshot_chunk_size = 1048576
/// install_snapshot_timeout_ms = 10000
///
/// [storage]
/// write_quorum = 2          # W: durable copies an upload waits for
/// repair_interval_ms = 30000
/// gc_interval_ms = 600000
/// usage_cache_ms = 5000
/// scrub_interval_ms = 86400000  # 0 = off
/// scrub_bytes_per_sec = 67108864
/// job_silence_ms = 900000   # running jobs silent this long end `abandoned`
///
/// [http]
/// header_timeout_ms = 10000  # also the idle keep-alive timeout
/// body_timeout_ms = 60000
/// max_connections = 1024
///
/// [branding]                 # what downloaded clients show (downloads role)
/// product = "Acme Backup"
/// support_url = "https://support.acme.example"
///
/// [downloads]
/// # dir = "/usr/lib/cairn/clients"  # cairn, cairn-<os>-<arch>; default: beside cairnd
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Raft node id.
    pub node_id: Option<u64>,
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Advertised URL.
    pub advertise: Option<String>,
    /// Cluster URL to join (`serve`).
    pub join: Option<String>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: Option<bool>,
    /// Cluster secret file.
    pub cluster_secret_file: Option<PathBuf>,
    /// Server URL for the `cluster` and `admin` commands.
    pub server: Option<String>,
    /// Admin token file for the `cluster` and `admin` commands.
    pub admin_token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) the node serves HTTPS with.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a generated self-signed certificate (dev only).
    pub tls_self_signed: Option<bool>,
    /// Extra trusted root certificate(s), PEM, for peers and commands.
    pub ca_file: Option<PathBuf>,
    /// The roles of a new node (`auth`, `storage`, `cluster`, `downloads`;
    /// default all).
    pub roles: Option<Vec<String>>,
    /// Storage labels of a new node (e.g. `["ssd", "eu-west"]`).
    pub storage_labels: Option<Vec<String>>,
    /// Raft timing and snapshots.
    #[serde(default)]
    pub raft: RaftSettings,
    /// The storage role: write quorum, repair and GC intervals.
    #[serde(default)]
    pub storage: StorageSettings,
    /// Limits of the HTTP server: header and body timeouts, connections.
    #[serde(default)]
    pub http: HttpSettings,
    /// The brand downloaded clients show (product name, support URL).
    #[serde(default)]
    pub branding: cairn_proto::download::Branding,
    /// The downloads role: where the client builds are.
    #[serde(default)]
    pub downloads: DownloadSettings,
}

impl FileConfig {
    /// Reads and parses `path`.
    ///
    /// # Errors
    ///
    /// Unreadable file, invalid TOML, unknown keys, wrong types.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = fs::read_to_string(path).map_err(|source| NodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
        if let Some(base) = path.parent() {
            for p in [
                &mut config.data_dir,
                &mut config.cluster_secret_file,
                &mut config.admin_token_file,
                &mut config.tls_cert,
                &mut config.tls_key,
                &mut config.ca_file,
                &mut config.downloads.dir,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_raft_settings_are_valid() {
        let config = RaftSettings::default().raft_config().expect("valid");
        assert_eq!(config.snapshot_max_chunk_size, 1 << 20);
        let bad = RaftSettings {
            heartbeat_ms: 1000,
            ..RaftSettings::default()
        };
        assert!(
            matches!(bad.raft_config(), Err(NodeError::Config(_))),
            "heartbeat must be below the election timeout"
        );
        let bad = RaftSettings {
            snapshot_chunk_size: 0,
            ..RaftSettings::default()
        };
        assert!(matches!(bad.raft_config(), Err(NodeError::Config(_))));
    }

    #[test]
    fn config_file_parses_resolves_paths_and_refuses_unknown_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("cairnd.toml");
        fs::write(
            &path,
            "data_dir = \"data\"\nnode_id = 2\nlisten = \"127.0.0.1:9001\"\n\
             tls_cert = \"tls/c.pem\"\nca_file = \"/etc/ca.pem\"\n\
             [raft]\nsnapshot_every = 7\n",
        )
        .expect("write");
        let c = FileConfig::load(&path).expect("load");
        assert_eq!(c.data_dir, Some(tmp.path().join("data")));
        assert_eq!(c.node_id, Some(2));
        assert_eq!(c.tls_cert, Some(tmp.path().join("tls/c.pem")));
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(c.raft.snapshot_every, 7);
        assert_eq!(c.raft.heartbeat_ms, RaftSettings::default().heartbeat_ms);
        fs::write(&path, "data_dri = \"x\"\n").expect("write");
        let e = FileConfig::load(&path).expect_err("unknown key");
        assert!(e.to_string().contains("data_dri"), "{e}");
        fs::write(&path, "[raft]\nsnapshot_evry = 1\n").expect("write");
        assert!(matches!(FileConfig::load(&path), Err(NodeError::Config(_))));
    }

    #[test]
    fn identity_round_trips_and_missing_is_none() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        assert_eq!(NodeIdentity::load(&dir).expect("load"), None);
        let id = NodeIdentity::new(3, "127.0.0.1:9000".parse().expect("addr"), None, false);
        id.save(&dir).expect("save");
        assert_eq!(NodeIdentity::load(&dir).expect("load"), Some(id.clone()));
        assert_eq!(id.advertise, "http://127.0.0.1:9000");
    }
}
