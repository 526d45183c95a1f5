//! [`Peers`] over HTTP: how this node reaches other nodes' chunk stores.
//!
//! The replication logic in [`cairn_chunkstore`] is synchronous and runs on
//! blocking threads (`spawn_blocking` and the threads it starts); each call
//! here runs one request on the node's tokio runtime with
//! [`Handle::block_on`] and waits for it. Calls addressed to this node go to
//! the local store directly. A node that refuses connections is remembered
//! as down for [`DOWN_FOR`], so a batch of reads does not knock on a dead
//! node once per round.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_chunkstore::bucket::{self, Listed, NodeDigests};
use cairn_chunkstore::gc::Swept;
use cairn_chunkstore::peers::{push_from, Fetched, Peers, PushReport};
use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::{ChunkKey, Durability, Error, PutMode, Result, RocksStore, Store};
use cairn_consensus::StateHandle;
use cairn_proto::{ChunkId, VaultId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Handle;

use super::wire;
use crate::cluster::network::BINCODE;

/// How long a node that refused a connection is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(3);

/// Timeout of requests that carry chunk bytes to a node (a write waits
/// for a synced WAL there).
const BULK_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of a read from a node: a node that hangs (rather than refusing
/// connections) delays a read by at most this before the next copy is
/// tried.
const READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Timeout of digest and listing requests (a full scan on the peer).
const SCAN_TIMEOUT: Duration = Duration::from_secs(600);
/// Timeout of small requests.
const SMALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP [`Peers`].
pub struct HttpPeers {
    me: NodeId,
    store: Option<Arc<RocksStore>>,
    state: StateHandle,
    http: reqwest::Client,
    runtime: Handle,
    down: Mutex<HashMap<NodeId, Instant>>,
}

/// Seconds since the epoch (the touch time of stored chunks).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl HttpPeers {
    /// Peers of node `me`, whose own store is `store` (`None` on a node
    /// without the storage role, which reaches every store over HTTP);
    /// other nodes' addresses come from the replicated state. `http` carries the cluster
    /// secret; `runtime` runs the requests.
    pub fn new(
        me: NodeId,
        store: Option<Arc<RocksStore>>,
        state: StateHandle,
        http: reqwest::Client,
        runtime: Handle,
    ) -> Self {
        Self {
            me,
            store,
            state,
            http,
            runtime,
            down: Mutex::new(HashMap::new()),
        }
    }

    /// This node's own store when `node` is this node.
    fn local(&self, node: NodeId) -> Option<&RocksStore> {
        self.store.as_deref().filter(|_| node == self.me)
    }

    fn addr(&self, node: NodeId) -> Result<String> {
        self.state
            .read(|s| s.storage_nodes().get(&node).map(|n| n.addr.clone()))
            .ok_or_else(|| Error::Peer {
                node,
                detail: "not a storage node".into(),
            })
    }

    fn is_down(&self, node: NodeId) -> bool {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.get(&node).is_some_and(|until| Instant::now() < *until)
    }

    fn mark(&self, node: NodeId, up: bool) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if up {
            down.remove(&node);
        } else {
            down.insert(node, Instant::now() + DOWN_FOR);
        }
    }

    /// POSTs `body` to `path` on `node` and returns the answer's bytes.
    fn call(&self, node: NodeId, path: &str, body: Vec<u8>, timeout: Duration) -> Result<Vec<u8>> {
        if self.is_down(node) {
            return Err(Error::Unreachable {
                node,
                detail: "refused a connection moments ago".into(),
            });
        }
        let url = format!("{}{path}", self.addr(node)?.trim_end_matches('/'));
        let request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, BINCODE)
            .timeout(timeout)
            .body(body);
        let answer = self.runtime.block_on(async {
            let resp = request.send().await?;
            let status = resp.status();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        });
        match answer {
            Ok((status, bytes)) if status.is_success() => {
                self.mark(node, true);
                Ok(bytes.to_vec())
            }
            Ok((status, bytes)) => Err(Error::Peer {
                node,
                detail: format!(
                    "{url}: HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            }),
            Err(e) => {
                if e.is_connect() {
                    self.mark(node, false);
                }
                Err(Error::Unreachable {
                    node,
                    detail: crate::error::describe(&e),
                })
            }
        }
    }

    fn call_bincode<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        node: NodeId,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let answer = self.call(node, path, encode(node, req)?, timeout)?;
        bincode::deserialize(&answer).map_err(|e| Error::Peer {
            node,
            detail: format!("bad answer from {path}: {e}"),
        })
    }
}

/// The bincode body of a request to `node`.
fn encode<Req: Serialize>(node: NodeId, req: &Req) -> Result<Vec<u8>> {
    bincode::serialize(req).map_err(|e| Error::Peer {
        node,
        detail: format!("encoding: {e}"),
    })
}

impl Peers for HttpPeers {
    fn put(&self, node: NodeId, chunks: &[(ChunkKey, &[u8])], mode: PutMode) -> Result<Vec<bool>> {
        if let Some(store) = self.local(node) {
            return store.put_chunks(chunks, unix_now(), Durability::Now, mode);
        }
        let path = match mode {
            PutMode::KeepExisting => "/internal/v1/chunks/put",
            PutMode::Overwrite => "/internal/v1/chunks/put?overwrite=1",
        };
        let answer = self.call(node, path, wire::encode_frames(chunks), BULK_TIMEOUT)?;
        bincode::deserialize(&answer).map_err(|e| Error::Peer {
            node,
            detail: format!("bad put answer: {e}"),
        })
    }

    fn get(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<Fetched>> {
        if let Some(store) = self.local(node) {
            return keys.iter().map(|k| store.fetch(k)).collect();
        }
        let answer = self.call(
            node,
            "/internal/v1/chunks/get",
            encode(node, &keys)?,
            READ_TIMEOUT,
        )?;
        wire::decode_fetched(&answer).map_err(|e| Error::Peer {
            node,
            detail: format!("bad get answer: {e}"),
        })
    }

    fn contains(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>> {
        if let Some(store) = self.local(node) {
            return keys.iter().map(|k| store.contains(k)).collect();
        }
        self.call_bincode(node, "/internal/v1/chunks/contains", &keys, SMALL_TIMEOUT)
    }

    fn digests(&self, node: NodeId, placement: &Placement, down: &[NodeId]) -> Result<NodeDigests> {
        if let Some(store) = self.local(node) {
            return bucket::digests(store, node, placement, down);
        }
        self.call_bincode(
            node,
            "/internal/v1/chunks/digests",
            &(placement, down),
            SCAN_TIMEOUT,
        )
    }

    fn list(&self, node: NodeId, buckets: &[u8]) -> Result<Vec<Listed>> {
        if let Some(store) = self.local(node) {
            return bucket::list(store, buckets);
        }
        self.call_bincode(node, "/internal/v1/chunks/list", &buckets, SCAN_TIMEOUT)
    }

    fn push(&self, from: NodeId, to: NodeId, keys: &[ChunkKey]) -> Result<PushReport> {
        if let Some(store) = self.local(from) {
            return push_from(store, self, to, keys);
        }
        self.call_bincode(from, "/internal/v1/chunks/push", &(to, keys), BULK_TIMEOUT)
    }

    fn delete(&self, node: NodeId, keys: &[ChunkKey]) -> Result<()> {
        if let Some(store) = self.local(node) {
            return store.delete_batch(keys);
        }
        self.call_bincode(node, "/internal/v1/chunks/delete", &keys, SMALL_TIMEOUT)
    }

    fn touch(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>> {
        if let Some(store) = self.local(node) {
            return store.touch(keys, unix_now());
        }
        self.call_bincode(node, "/internal/v1/chunks/touch", &keys, SMALL_TIMEOUT)
    }

    fn delete_untouched(&self, node: NodeId, keys: &[ChunkKey], cutoff: u64) -> Result<Vec<Swept>> {
        if let Some(store) = self.local(node) {
            return store.delete_untouched(keys, cutoff);
        }
        self.call_bincode(
            node,
            "/internal/v1/chunks/sweep",
            &(keys, cutoff),
            SMALL_TIMEOUT,
        )
    }

    fn ids(
        &self,
        node: NodeId,
        vault: VaultId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkId>> {
        if let Some(store) = self.local(node) {
            return store.ids_after(vault, after, limit);
        }
        self.call_bincode(
            node,
            "/internal/v1/chunks/ids",
            &(vault, after, limit as u64),
            SCAN_TIMEOUT,
        )
    }

    fn ping(&self, node: NodeId) -> bool {
        if node == self.me {
            return true;
        }
        let Ok(addr) = self.addr(node) else {
            return false;
        };
        let url = format!("{}/healthz", addr.trim_end_matches('/'));
        let request = self.http.get(&url).timeout(Duration::from_secs(2));
        let up = self
            .runtime
            .block_on(async { request.send().await.is_ok_and(|r| r.status().is_success()) });
        self.mark(node, up);
        up
    }
}
