//! Replicated writes and reads, coordinated by the node a client talks to.
//!
//! **Write** ([`write`]): every chunk goes to its `R` owners
//! ([`Placement::owners`]) in parallel, one request per node carrying the
//! chunks it owns; the call returns as soon as every chunk of the batch has
//! `W` durable copies (the rest of the sends finish in the background). A
//! node that fails is skipped; if a chunk can no longer reach `W` among its
//! owners, it goes to the next nodes of its ranking (a copy outside the
//! owners that repair later moves home), and only when no node is left does
//! the write fail with [`Error::InsufficientReplicas`].
//!
//! **Read** ([`read`]): each chunk is asked of the nodes of its
//! [`Placement::read_order`] one at a time (owners first), batched per node
//! per round. A copy is accepted only if its CRC matches after the
//! transfer; an owner that answered "absent" or "corrupt" before the good
//! copy was found gets the good bytes written back (read repair).
//!
//! **Missing** ([`missing`]): a chunk counts as stored when any reachable
//! owner has it (repair brings the other owners up to date); asking also
//! touches every owner's copy, which protects it from a concurrent
//! garbage-collection sweep.

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

use crate::peers::{Fetched, Peers};
use crate::placement::{NodeId, Placement};
use crate::{ChunkKey, Error, PutMode, Result};

/// Chunks to write: key and sealed bytes (any owner of the bytes, so a
/// caller can hand over slices of a request body without copying).
pub type Batch<B = Vec<u8>> = Vec<(ChunkKey, B)>;

/// Bounds the sends a coordinator has in flight, including those still
/// running after their write was acknowledged (the copies beyond W). A node
/// that is slower than the others would otherwise collect an ever longer
/// queue of background sends (each holding its batch in memory); with the
/// bound, new sends wait instead — backpressure to the client.
pub struct Throttle {
    max: usize,
    running: Mutex<usize>,
    freed: Condvar,
}

impl Throttle {
    /// At most `max` sends in flight (at least one).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            running: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    fn acquire(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.max {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
    }

    fn release(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        self.freed.notify_one();
    }

    /// Sends in flight now.
    pub fn running(&self) -> usize {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a replicated write achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Durable copies of the least-replicated chunk when the call returned
    /// (at least `W`).
    pub copies: usize,
    /// Per chunk: whether it was new on the first node that acknowledged
    /// it (`false` is a dedup hit).
    pub new: Vec<bool>,
}

struct Sent {
    node: NodeId,
    indices: Vec<usize>,
    result: Result<Vec<bool>>,
}

fn spawn_put<B: AsRef<[u8]> + Send + Sync + 'static>(
    peers: &Arc<dyn Peers>,
    batch: &Arc<Batch<B>>,
    throttle: &Arc<Throttle>,
    node: NodeId,
    indices: Vec<usize>,
    tx: &mpsc::Sender<Sent>,
) {
    let (peers, batch, tx) = (peers.clone(), batch.clone(), tx.clone());
    let throttle = throttle.clone();
    throttle.acquire();
    std::thread::spawn(move || {
        let items: Vec<(ChunkKey, &[u8])> = indices
            .iter()
            .map(|&i| (batch[i].0, batch[i].1.as_ref()))
            .collect();
        let result = peers.put(node, &items, PutMode::KeepExisting);
        drop(items);
        drop(batch);
        throttle.release();
        // The coordinator may have returned already (W reached): fine.
        let _ = tx.send(Sent {
            node,
            indices,
            result,
        });
    });
}

/// Writes `batch` to the owners of each chunk and returns once every chunk
/// has `quorum` durable copies (capped by its replica count).
///
/// # Errors
///
/// [`Error::InsufficientReplicas`] when some chunk cannot reach its quorum
/// on any node (copies already made stay; they are harmless and repair or
/// GC deals with them).
pub fn write<B: AsRef<[u8]> + Send + Sync + 'static>(
    peers: Arc<dyn Peers>,
    placement: &Placement,
    batch: Arc<Batch<B>>,
    quorum: usize,
    throttle: &Arc<Throttle>,
) -> Result<Written> {
    let n = batch.len();
    let rankings: Vec<Vec<NodeId>> = batch.iter().map(|(k, _)| placement.ranking(k)).collect();
    let replicas: Vec<usize> = batch
        .iter()
        .map(|(k, _)| placement.replicas_of(&k.vault))
        .collect();
    let need: Vec<usize> = replicas
        .iter()
        .map(|&r| quorum.clamp(1, r.max(1)))
        .collect();
    if let Some(i) = (0..n).find(|&i| replicas[i] == 0) {
        return Err(Error::InsufficientReplicas {
            key: batch[i].0,
            got: 0,
            need: need[i],
        });
    }
    let mut acked = vec![0usize; n];
    let mut new: Vec<Option<bool>> = vec![None; n];
    // Index of the next fallback candidate in each ranking.
    let mut next = replicas.clone();
    let (tx, rx) = mpsc::channel::<Sent>();
    let mut jobs: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (i, ranking) in rankings.iter().enumerate() {
        for &node in &ranking[..replicas[i]] {
            jobs.entry(node).or_default().push(i);
        }
    }
    let mut outstanding = 0usize;
    let mut failed: HashSet<NodeId> = HashSet::new();
    loop {
        for (node, indices) in std::mem::take(&mut jobs) {
            spawn_put(&peers, &batch, throttle, node, indices, &tx);
            outstanding += 1;
        }
        if (0..n).all(|i| acked[i] >= need[i]) {
            break;
        }
        if outstanding == 0 {
            // Every send finished and some chunk is short: try the next
            // nodes of its ranking.
            for i in (0..n).filter(|&i| acked[i] < need[i]) {
                let mut wanted = need[i] - acked[i];
                while wanted > 0 && next[i] < rankings[i].len() {
                    let node = rankings[i][next[i]];
                    next[i] += 1;
                    if !failed.contains(&node) {
                        jobs.entry(node).or_default().push(i);
                        wanted -= 1;
                    }
                }
            }
            if jobs.is_empty() {
                let i = (0..n).find(|&i| acked[i] < need[i]).unwrap_or(0);
                return Err(Error::InsufficientReplicas {
                    key: batch[i].0,
                    got: acked[i],
                    need: need[i],
                });
            }
            continue;
        }
        let Ok(sent) = rx.recv() else {
            break;
        };
        outstanding -= 1;
        match sent.result {
            Ok(flags) => {
                for (j, &i) in sent.indices.iter().enumerate() {
                    acked[i] += 1;
                    if new[i].is_none() {
                        new[i] = Some(flags.get(j).copied().unwrap_or(false));
                    }
                }
            }
            Err(_) => {
                failed.insert(sent.node);
            }
        }
    }
    Ok(Written {
        copies: acked.iter().copied().min().unwrap_or(0),
        new: new.into_iter().map(|b| b.unwrap_or(false)).collect(),
    })
}

/// What a replicated read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Per key: the verified sealed bytes, or `None` if no reachable node
    /// had a good copy.
    pub chunks: Vec<Option<Vec<u8>>>,
    /// Damaged copies met on the way (each is repaired when a good copy
    /// was found).
    pub corrupt: u64,
    /// Copies written back to owners that lacked them or had them damaged.
    pub repaired: u64,
    /// Per key: `true` when it was not found but some candidate node could
    /// not be asked (so "absent" is not certain).
    pub uncertain: Vec<bool>,
}

/// Reads `keys`, trying the nodes of each key's read order in turn, and
/// repairs owners found lacking on the way. `local` is this node (tried
/// first when it owns a chunk).
///
/// # Errors
///
/// None of its own today: unreachable nodes are skipped, and a failed
/// repair write is left for anti-entropy. The `Result` leaves room for
/// local store failures.
pub fn read(
    peers: &dyn Peers,
    placement: &Placement,
    local: Option<NodeId>,
    keys: &[ChunkKey],
) -> Result<ReadReport> {
    let n = keys.len();
    let orders: Vec<Vec<NodeId>> = keys
        .iter()
        .map(|k| placement.read_order(k, local))
        .collect();
    let owners: Vec<Vec<NodeId>> = keys.iter().map(|k| placement.owners(k)).collect();
    let mut pos = vec![0usize; n];
    let mut report = ReadReport {
        chunks: vec![None; n],
        uncertain: vec![false; n],
        ..ReadReport::default()
    };
    let mut lacking: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    let mut down: HashSet<NodeId> = HashSet::new();
    loop {
        let mut jobs: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            if report.chunks[i].is_some() {
                continue;
            }
            while pos[i] < orders[i].len() && down.contains(&orders[i][pos[i]]) {
                report.uncertain[i] = true;
                pos[i] += 1;
            }
            if let Some(&node) = orders[i].get(pos[i]) {
                jobs.entry(node).or_default().push(i);
            }
        }
        if jobs.is_empty() {
            break;
        }
        let answers: Vec<(NodeId, Vec<usize>, Result<Vec<Fetched>>)> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(node, indices)| {
                    s.spawn(move || {
                        let ks: Vec<ChunkKey> = indices.iter().map(|&i| keys[i]).collect();
                        let r = peers.get(node, &ks);
                        (node, indices, r)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (node, indices, result) in answers {
            let fetched = match result {
                Ok(f) if f.len() == indices.len() => f,
                _ => {
                    down.insert(node);
                    continue;
                }
            };
            for (&i, f) in indices.iter().zip(fetched) {
                pos[i] += 1;
                match f {
                    Fetched::Found { crc32, bytes } if crc32fast::hash(&bytes) == crc32 => {
                        report.chunks[i] = Some(bytes);
                    }
                    Fetched::Found { .. } | Fetched::Corrupt => {
                        report.corrupt += 1;
                        if owners[i].contains(&node) {
                            lacking[i].push(node);
                        }
                    }
                    Fetched::Absent => {
                        if owners[i].contains(&node) {
                            lacking[i].push(node);
                        }
                    }
                }
            }
        }
    }
    let mut repairs: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (i, nodes) in lacking.iter().enumerate() {
        if report.chunks[i].is_some() {
            report.uncertain[i] = false;
            for &node in nodes {
                repairs.entry(node).or_default().push(i);
            }
        }
    }
    for (node, indices) in repairs {
        let items: Vec<(ChunkKey, &[u8])> = indices
            .iter()
            .filter_map(|&i| report.chunks[i].as_deref().map(|b| (keys[i], b)))
            .collect();
        if peers.put(node, &items, PutMode::Overwrite).is_ok() {
            report.repaired += items.len() as u64;
        }
    }
    Ok(report)
}

/// Which of `keys` no reachable owner holds (the chunks a client must
/// upload). A chunk whose owners cannot be reached at all counts as
/// missing, so the client uploads it (and the upload decides).
///
/// Every owner is asked at once (one request per node) with
/// [`Peers::touch`], so every owner's copy of a chunk reported present has
/// its touch time refreshed before the answer: a garbage-collection sweep
/// that started earlier keeps those copies (see [`crate::gc`]).
///
/// # Errors
///
/// None of its own today (see [`read`]).
pub fn missing(
    peers: &dyn Peers,
    placement: &Placement,
    local: Option<NodeId>,
    keys: &[ChunkKey],
) -> Result<Vec<bool>> {
    let mut jobs: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let r = placement.replicas_of(&k.vault);
        let mut owners = placement.read_order(k, local);
        owners.truncate(r);
        for node in owners {
            jobs.entry(node).or_default().push(i);
        }
    }
    let answers: Vec<(Vec<usize>, Result<Vec<bool>>)> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(node, indices)| {
                s.spawn(move || {
                    let ks: Vec<ChunkKey> = indices.iter().map(|&i| keys[i]).collect();
                    let r = peers.touch(node, &ks);
                    (indices, r)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut present = vec![false; keys.len()];
    for (indices, result) in answers {
        if let Ok(has) = result {
            if has.len() == indices.len() {
                for (&i, h) in indices.iter().zip(has) {
                    present[i] |= h;
                }
            }
        }
    }
    Ok(present.into_iter().map(|p| !p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::local::LocalPeers;
    use crate::Store;
    use cairn_proto::{ChunkId, VaultId};
    use std::collections::BTreeMap as Map;

    const VAULT: VaultId = VaultId([5; 16]);

    fn placement(active: &[NodeId], r: u8) -> Placement {
        Placement {
            active: active.to_vec(),
            draining: vec![],
            replicas: Map::from([(VAULT, r)]),
            pools: Default::default(),
        }
    }

    fn batch(count: u32) -> Arc<Batch> {
        Arc::new(
            (0..count)
                .map(|i| {
                    let mut c = [0u8; 32];
                    c[..4].copy_from_slice(&i.to_le_bytes());
                    c[4] = 0xaa;
                    let key = ChunkKey::new(VAULT, ChunkId(c));
                    (key, vec![i as u8; 1000 + i as usize])
                })
                .collect(),
        )
    }

    fn wait_until(mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("condition not reached");
    }

    #[test]
    fn writes_reach_every_owner_and_reads_verify() {
        let peers = LocalPeers::new(&[1, 2, 3, 4]);
        let p = placement(&[1, 2, 3, 4], 3);
        let b = batch(50);
        let w = write(peers.clone(), &p, b.clone(), 2, &Throttle::new(64)).unwrap();
        assert!(w.copies >= 2);
        assert!(w.new.iter().all(|&n| n));
        // The background sends finish: every owner, and only owners.
        wait_until(|| {
            b.iter()
                .all(|(k, _)| p.owners(k).iter().all(|&o| peers.has(o, k)))
        });
        for (k, _) in b.iter() {
            let holders = [1, 2, 3, 4].iter().filter(|&&n| peers.has(n, k)).count();
            assert_eq!(holders, 3);
        }
        let again = write(peers.clone(), &p, b.clone(), 2, &Throttle::new(64)).unwrap();
        assert!(
            again.new.iter().all(|&n| !n),
            "second write is all dedup hits"
        );
        let keys: Vec<ChunkKey> = b.iter().map(|(k, _)| *k).collect();
        let r = read(&*peers, &p, Some(1), &keys).unwrap();
        for ((_, v), got) in b.iter().zip(&r.chunks) {
            assert_eq!(got.as_deref(), Some(&v[..]));
        }
        assert_eq!(r.repaired, 0);
        assert!(missing(&*peers, &p, Some(2), &keys)
            .unwrap()
            .iter()
            .all(|m| !m));
    }

    #[test]
    fn a_down_owner_is_skipped_and_w_is_enforced() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 3);
        peers.set_down(1, true);
        let b = batch(20);
        let w = write(peers.clone(), &p, b.clone(), 2, &Throttle::new(64)).unwrap();
        assert_eq!(w.copies, 2);
        peers.set_down(2, true);
        let e = write(peers.clone(), &p, batch(3), 2, &Throttle::new(64)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InsufficientReplicas {
                    got: 1,
                    need: 2,
                    ..
                }
            ),
            "{e}"
        );
        peers.set_down(1, false);
        peers.set_down(2, false);
        // Node 1 missed the first batch: reads still work and repair it.
        let keys: Vec<ChunkKey> = b.iter().map(|(k, _)| *k).collect();
        let r = read(&*peers, &p, Some(1), &keys).unwrap();
        assert!(r.chunks.iter().all(Option::is_some));
        assert_eq!(r.repaired, 20, "node 1 was asked first and lacked all");
        assert!(keys.iter().all(|k| peers.has(1, k)));
    }

    #[test]
    fn short_owner_sets_fall_back_to_other_nodes() {
        let peers = LocalPeers::new(&[1, 2, 3, 4]);
        let p = placement(&[1, 2, 3, 4], 2);
        let b = batch(30);
        // Take down node 1: chunks it owns get their second copy elsewhere.
        peers.set_down(1, true);
        let w = write(peers.clone(), &p, b.clone(), 2, &Throttle::new(64)).unwrap();
        assert_eq!(w.copies, 2);
        for (k, _) in b.iter() {
            let holders = [2, 3, 4].iter().filter(|&&n| peers.has(n, k)).count();
            assert!(holders >= 2, "{k}");
        }
        peers.set_down(1, false);
        let keys: Vec<ChunkKey> = b.iter().map(|(k, _)| *k).collect();
        let r = read(&*peers, &p, None, &keys).unwrap();
        assert!(r.chunks.iter().all(Option::is_some));
    }

    #[test]
    fn a_throttle_of_one_still_writes_everything_and_drains() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 3);
        let throttle = Throttle::new(1);
        let b = batch(30);
        for part in b.chunks(10) {
            let w = write(peers.clone(), &p, Arc::new(part.to_vec()), 2, &throttle).unwrap();
            assert!(w.copies >= 2);
        }
        wait_until(|| throttle.running() == 0);
        for (k, _) in b.iter() {
            assert!([1, 2, 3].iter().all(|&n| peers.has(n, k)));
        }
    }

    #[test]
    fn a_corrupt_copy_is_detected_and_repaired_on_read() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 3);
        let b = batch(5);
        write(peers.clone(), &p, b.clone(), 3, &Throttle::new(64)).unwrap();
        let key = b[0].0;
        assert!(peers.stores[&1].damage_value(&key).unwrap());
        let r = read(&*peers, &p, Some(1), &[key]).unwrap();
        assert_eq!(r.chunks[0].as_deref(), Some(&b[0].1[..]));
        assert_eq!((r.corrupt, r.repaired), (1, 1));
        assert_eq!(
            peers.stores[&1].get(&key).unwrap().as_deref(),
            Some(&b[0].1[..])
        );
    }

    #[test]
    fn missing_reports_what_no_owner_has() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 2);
        let b = batch(10);
        write(
            peers.clone(),
            &p,
            Arc::new(b[..5].to_vec()),
            2,
            &Throttle::new(64),
        )
        .unwrap();
        let keys: Vec<ChunkKey> = b.iter().map(|(k, _)| *k).collect();
        let m = missing(&*peers, &p, Some(3), &keys).unwrap();
        assert_eq!(m, [vec![false; 5], vec![true; 5]].concat());
    }
}
