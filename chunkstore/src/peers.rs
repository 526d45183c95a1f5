//! How replication reaches the stores of other nodes: the [`Peers`] trait.
//!
//! The replication logic ([`crate::replica`], [`crate::repair`]) is written
//! against this small, synchronous interface so it can be tested with real
//! [`RocksStore`]s in one process; `cairnd` implements it over HTTP (its
//! internal storage routes, guarded by the cluster secret). Every method
//! addresses one node; an [`Error::Unreachable`](crate::Error::Unreachable)
//! means "treat the node as down for now".

use serde::{Deserialize, Serialize};

use cairn_proto::{ChunkId, VaultId};

pub use crate::answer::{Fetched, Swept};
use crate::bucket::{Listed, NodeDigests};
use crate::placement::{NodeId, Placement};
use crate::{ChunkKey, PutMode, Result, RocksStore};

/// What a push (node-to-node copy) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// Chunks written on the target.
    pub copied: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Chunks the source could not send (missing or damaged there).
    pub failed: Vec<ChunkKey>,
}

/// Access to the chunk stores of a cluster's nodes (including this one).
pub trait Peers: Send + Sync {
    /// Stores chunks on `node` durably; for each, whether it was new there.
    fn put(&self, node: NodeId, chunks: &[(ChunkKey, &[u8])], mode: PutMode) -> Result<Vec<bool>>;
    /// Reads chunks from `node`, one answer per key, in order.
    fn get(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<Fetched>>;
    /// Which of `keys` `node` holds.
    fn contains(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>>;
    /// `node`'s bucket digests under `placement`, with `down` nodes
    /// named so it can count chunks they leave short.
    fn digests(&self, node: NodeId, placement: &Placement, down: &[NodeId]) -> Result<NodeDigests>;
    /// Every chunk `node` holds in `buckets`.
    fn list(&self, node: NodeId, buckets: &[u8]) -> Result<Vec<Listed>>;
    /// Has `from` copy `keys` to `to` (overwriting what `to` holds).
    fn push(&self, from: NodeId, to: NodeId, keys: &[ChunkKey]) -> Result<PushReport>;
    /// Deletes `keys` on `node`.
    fn delete(&self, node: NodeId, keys: &[ChunkKey]) -> Result<()>;
    /// Refreshes the touch time of `keys` on `node` (to `node`'s clock)
    /// and answers which it holds: the presence check of a backup, which
    /// protects what it found from a concurrent sweep.
    fn touch(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>>;
    /// Deletes the copies of `keys` on `node` last touched before `cutoff`
    /// (Unix seconds), atomically with respect to touches there; one
    /// answer per key.
    fn delete_untouched(&self, node: NodeId, keys: &[ChunkKey], cutoff: u64) -> Result<Vec<Swept>>;
    /// Up to `limit` ids of `vault`'s chunks on `node`, ascending, each
    /// greater than `after`.
    fn ids(
        &self,
        node: NodeId,
        vault: VaultId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkId>>;
    /// Whether `node` answers at all.
    fn ping(&self, node: NodeId) -> bool;
}

/// Most bytes a push sends in one put.
pub const PUSH_BATCH_BYTES: usize = 16 << 20;

/// The source side of [`Peers::push`]: reads `keys` from `store` (verifying
/// each) and writes them to `to` in batches of about [`PUSH_BATCH_BYTES`].
///
/// # Errors
///
/// The local store failed, or `to` refused or could not be reached.
pub fn push_from(
    store: &RocksStore,
    peers: &dyn Peers,
    to: NodeId,
    keys: &[ChunkKey],
) -> Result<PushReport> {
    let mut report = PushReport::default();
    let mut batch: Vec<(ChunkKey, Vec<u8>)> = Vec::new();
    let mut size = 0usize;
    let send = |batch: &mut Vec<(ChunkKey, Vec<u8>)>, report: &mut PushReport| {
        if batch.is_empty() {
            return Ok(());
        }
        let items: Vec<(ChunkKey, &[u8])> = batch.iter().map(|(k, v)| (*k, &v[..])).collect();
        peers.put(to, &items, PutMode::Overwrite)?;
        report.copied += items.len() as u64;
        report.bytes += items.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        batch.clear();
        Ok::<(), crate::Error>(())
    };
    for key in keys {
        match store.fetch(key)? {
            Fetched::Found { bytes, .. } => {
                size += bytes.len();
                batch.push((*key, bytes));
            }
            Fetched::Absent | Fetched::Corrupt => report.failed.push(*key),
        }
        if size >= PUSH_BATCH_BYTES {
            send(&mut batch, &mut report)?;
            size = 0;
        }
    }
    send(&mut batch, &mut report)?;
    Ok(report)
}

/// [`Peers`] over stores in this process, for tests of the replication
/// logic: real RocksDB stores, nodes that can be marked down.
#[cfg(test)]
pub(crate) mod local {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{bucket, Durability, Error, Store};

    pub(crate) struct LocalPeers {
        pub stores: BTreeMap<NodeId, Arc<RocksStore>>,
        pub down: Mutex<HashSet<NodeId>>,
        /// Every node's clock (Unix seconds) for puts and touches.
        pub now: AtomicU64,
        pub _dirs: Vec<tempfile::TempDir>,
    }

    impl LocalPeers {
        pub fn new(nodes: &[NodeId]) -> Arc<Self> {
            let mut stores = BTreeMap::new();
            let mut dirs = Vec::new();
            for &n in nodes {
                let dir = tempfile::tempdir().unwrap();
                let store = RocksStore::open(dir.path(), &crate::StoreOptions::default()).unwrap();
                store.track_usage().unwrap();
                stores.insert(n, Arc::new(store));
                dirs.push(dir);
            }
            Arc::new(Self {
                stores,
                down: Mutex::new(HashSet::new()),
                now: AtomicU64::new(1),
                _dirs: dirs,
            })
        }

        pub fn set_down(&self, node: NodeId, down: bool) {
            let mut d = self.down.lock().unwrap();
            if down {
                d.insert(node);
            } else {
                d.remove(&node);
            }
        }

        pub fn set_now(&self, now: u64) {
            self.now.store(now, Ordering::SeqCst);
        }

        fn store(&self, node: NodeId) -> Result<&RocksStore> {
            if self.down.lock().unwrap().contains(&node) {
                return Err(Error::Unreachable {
                    node,
                    detail: "marked down".into(),
                });
            }
            self.stores
                .get(&node)
                .map(|s| &**s)
                .ok_or_else(|| Error::Peer {
                    node,
                    detail: "no such node".into(),
                })
        }

        pub fn has(&self, node: NodeId, key: &ChunkKey) -> bool {
            self.stores[&node].contains(key).unwrap()
        }
    }

    impl Peers for LocalPeers {
        fn put(
            &self,
            node: NodeId,
            chunks: &[(ChunkKey, &[u8])],
            mode: PutMode,
        ) -> Result<Vec<bool>> {
            self.store(node)?.put_chunks(
                chunks,
                self.now.load(Ordering::SeqCst),
                Durability::Now,
                mode,
            )
        }
        fn get(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<Fetched>> {
            let s = self.store(node)?;
            keys.iter().map(|k| s.fetch(k)).collect()
        }
        fn contains(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>> {
            let s = self.store(node)?;
            keys.iter().map(|k| s.contains(k)).collect()
        }
        fn digests(
            &self,
            node: NodeId,
            placement: &Placement,
            down: &[NodeId],
        ) -> Result<NodeDigests> {
            bucket::digests(self.store(node)?, node, placement, down)
        }
        fn list(&self, node: NodeId, buckets: &[u8]) -> Result<Vec<Listed>> {
            bucket::list(self.store(node)?, buckets)
        }
        fn push(&self, from: NodeId, to: NodeId, keys: &[ChunkKey]) -> Result<PushReport> {
            push_from(self.store(from)?, self, to, keys)
        }
        fn delete(&self, node: NodeId, keys: &[ChunkKey]) -> Result<()> {
            self.store(node)?.delete_batch(keys)
        }
        fn touch(&self, node: NodeId, keys: &[ChunkKey]) -> Result<Vec<bool>> {
            self.store(node)?
                .touch(keys, self.now.load(Ordering::SeqCst))
        }
        fn delete_untouched(
            &self,
            node: NodeId,
            keys: &[ChunkKey],
            cutoff: u64,
        ) -> Result<Vec<Swept>> {
            self.store(node)?.delete_untouched(keys, cutoff)
        }
        fn ids(
            &self,
            node: NodeId,
            vault: VaultId,
            after: Option<ChunkId>,
            limit: usize,
        ) -> Result<Vec<ChunkId>> {
            self.store(node)?.ids_after(vault, after, limit)
        }
        fn ping(&self, node: NodeId) -> bool {
            self.store(node).is_ok()
        }
    }
}
