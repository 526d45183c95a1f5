//! Node configuration: the identity a node keeps in its data directory, the
//! data directory layout, and the Raft timing.
//!
//! A node's id and advertised address are fixed when it is initialised or
//! first joins, and written to `<data-dir>/node.json`; `cairnd serve` reads
//! them back so a restart cannot come up under a different identity (a Raft
//! node that changes id or address while keeping its log corrupts the
//! cluster's membership).

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::NodeError;

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

    /// The node identity file.
    pub fn node_file(&self) -> PathBuf {
        self.root.join("node.json")
    }

    /// The admin token (mode 0600).
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// The cluster secret, if the cluster uses one (mode 0600).
    pub fn cluster_secret(&self) -> PathBuf {
        self.root.join("cluster.secret")
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
}

impl NodeIdentity {
    /// An identity advertising `http://<listen>` unless told otherwise.
    pub fn new(node_id: u64, listen: SocketAddr, advertise: Option<String>) -> Self {
        let advertise = advertise.unwrap_or_else(|| format!("http://{listen}"));
        Self {
            format: NODE_FILE_FORMAT,
            node_id,
            listen,
            advertise,
        }
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

/// Raft timing and snapshot policy.
///
/// Heartbeats every 200 ms and elections after 1–2 s: slow enough that a
/// busy two-core machine (backups compress on every core) does not trigger
/// spurious elections, fast enough that a failover finishes in seconds.
/// A snapshot every 5 000 entries bounds the log and lets a new node catch
/// up without replaying history. `CAIRN_SNAPSHOT_EVERY=N` snapshots every
/// `N` entries and keeps no log behind the snapshot instead, so tests (and
/// operators checking the snapshot path) can exercise it quickly.
///
/// # Errors
///
/// If openraft rejects the combination (it never should; checked in tests),
/// or `CAIRN_SNAPSHOT_EVERY` is not a positive integer.
pub fn raft_config() -> Result<Arc<openraft::Config>, NodeError> {
    let every = match std::env::var("CAIRN_SNAPSHOT_EVERY") {
        Ok(v) => Some(v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            NodeError::Config(format!(
                "CAIRN_SNAPSHOT_EVERY={v:?} is not a positive integer"
            ))
        })?),
        Err(_) => None,
    };
    let mut config = openraft::Config {
        cluster_name: "cairn".into(),
        heartbeat_interval: 200,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(5000),
        max_in_snapshot_log_to_keep: 1000,
        snapshot_max_chunk_size: 1 << 20,
        ..Default::default()
    };
    if let Some(n) = every {
        config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(n);
        config.max_in_snapshot_log_to_keep = 0;
    }
    Ok(Arc::new(
        config
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_config_is_valid() {
        assert!(raft_config().is_ok());
    }

    #[test]
    fn identity_round_trips_and_missing_is_none() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        assert_eq!(NodeIdentity::load(&dir).expect("load"), None);
        let id = NodeIdentity::new(3, "127.0.0.1:9000".parse().expect("addr"), None);
        id.save(&dir).expect("save");
        assert_eq!(NodeIdentity::load(&dir).expect("load"), Some(id.clone()));
        assert_eq!(id.advertise, "http://127.0.0.1:9000");
    }
}
