//! Garbage collection of a live vault, cluster side: the listing a client
//! marks against and the sweep that deletes what it found unreferenced.
//!
//! The client computes the garbage (stored ids minus everything reachable
//! from every snapshot) and the cluster deletes it under the safety rules of
//! `docs/FORMATS.md` ("Garbage collection of live vaults"). The part that
//! lives here is per copy: every node holding a copy deletes it only if its
//! touch time is before the cutoff, atomically with respect to touches on
//! that node ([`RocksStore::delete_untouched`](crate::RocksStore::delete_untouched)),
//! so a chunk that a concurrent backup found present (a `missing` check
//! touches every owner's copy) or uploaded again survives the sweep.
//!
//! Both calls ask every holder node (active and draining) and fail if one
//! cannot be reached: a listing that missed a node would only hide garbage,
//! but a sweep that missed a node would leave a copy that repair copies
//! back everywhere (a chunk is gone only once every copy is).

pub use crate::answer::Swept;
use crate::peers::Peers;
use crate::placement::{NodeId, Placement};
use crate::{ChunkKey, Error, Result};
use cairn_proto::{ChunkId, VaultId};

/// What a sweep did over the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Chunks with no copy left on any node (including ones that had none
    /// already, so a retried sweep answers the same).
    pub deleted: u64,
    /// Chunks some node kept because they were touched at or after the
    /// cutoff (copies on other nodes may be gone; repair re-replicates).
    pub kept: u64,
}

/// Runs `f` on every node of `nodes` in parallel; the first error wins.
fn on_every<T: Send>(
    nodes: &[NodeId],
    f: impl Fn(NodeId) -> Result<T> + Sync,
) -> Result<Vec<(NodeId, T)>> {
    let answers: Vec<(NodeId, Result<T>)> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter()
            .map(|&node| {
                let f = &f;
                (node, s.spawn(move || f(node)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(node, h)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(Error::Peer {
                        node,
                        detail: "the request thread panicked".into(),
                    })
                });
                (node, r)
            })
            .collect()
    });
    answers
        .into_iter()
        .map(|(node, r)| r.map(|v| (node, v)))
        .collect()
}

/// Deletes every copy of `keys` that was last touched before `cutoff`
/// (Unix seconds) on every holder node.
///
/// # Errors
///
/// A holder could not be reached or failed: the copies other nodes
/// deleted stay deleted (they were garbage and untouched), and the caller
/// retries once the node is back.
pub fn sweep(
    peers: &dyn Peers,
    placement: &Placement,
    keys: &[ChunkKey],
    cutoff: u64,
) -> Result<SweepReport> {
    let answers = on_every(&placement.holders(), |node| {
        let fates = peers.delete_untouched(node, keys, cutoff)?;
        if fates.len() == keys.len() {
            Ok(fates)
        } else {
            Err(Error::Peer {
                node,
                detail: format!("{} answers for {} keys", fates.len(), keys.len()),
            })
        }
    })?;
    let mut report = SweepReport::default();
    for i in 0..keys.len() {
        if answers.iter().any(|(_, fates)| fates[i] == Swept::Kept) {
            report.kept += 1;
        } else {
            report.deleted += 1;
        }
    }
    Ok(report)
}

/// Up to `limit` ids of `vault`'s chunks stored anywhere in the cluster,
/// ascending and without duplicates, each greater than `after`. Each node
/// answers its own first `limit` ids, which is enough: the first `limit`
/// of the union are among them.
///
/// # Errors
///
/// A holder could not be reached or failed.
pub fn list(
    peers: &dyn Peers,
    placement: &Placement,
    vault: VaultId,
    after: Option<ChunkId>,
    limit: usize,
) -> Result<Vec<ChunkId>> {
    let answers = on_every(&placement.holders(), |node| {
        peers.ids(node, vault, after, limit)
    })?;
    let mut all: Vec<ChunkId> = answers.into_iter().flat_map(|(_, ids)| ids).collect();
    all.retain(|id| after.is_none_or(|a| *id > a));
    all.sort_unstable();
    all.dedup();
    all.truncate(limit);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::local::LocalPeers;
    use crate::replica::{self, Batch, Throttle};
    use crate::{Durability, PutMode, RocksStore, Store, StoreOptions};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    const VAULT: VaultId = VaultId([3; 16]);

    fn key(i: u32) -> ChunkKey {
        let mut c = [0u8; 32];
        c[..4].copy_from_slice(&i.to_be_bytes());
        ChunkKey::new(VAULT, ChunkId(c))
    }

    fn placement(nodes: &[NodeId], r: u8) -> Placement {
        Placement {
            active: nodes.to_vec(),
            draining: vec![],
            replicas: BTreeMap::from([(VAULT, r)]),
            pools: Default::default(),
        }
    }

    fn store() -> (tempfile::TempDir, RocksStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        s.track_usage().unwrap();
        (dir, s)
    }

    #[test]
    fn the_cutoff_decides_per_copy_and_touches_move_it() {
        let (_d, s) = store();
        let chunks: Vec<(ChunkKey, &[u8])> = vec![(key(1), b"one"), (key(2), b"two")];
        s.put_chunks(&chunks, 100, Durability::Now, PutMode::KeepExisting)
            .unwrap();
        // A touch at the cutoff keeps the chunk; one before it does not.
        assert_eq!(s.touch(&[key(1), key(9)], 200).unwrap(), vec![true, false]);
        assert_eq!(s.meta(&key(1)).unwrap().unwrap().touched, 200);
        assert_eq!(
            s.touch(&[key(1)], 150).unwrap(),
            vec![true],
            "touches never go back"
        );
        assert_eq!(s.meta(&key(1)).unwrap().unwrap().touched, 200);
        let fates = s
            .delete_untouched(&[key(1), key(2), key(2), key(9)], 200)
            .unwrap();
        assert_eq!(
            fates,
            vec![Swept::Kept, Swept::Deleted, Swept::Deleted, Swept::Absent]
        );
        assert!(s.contains(&key(1)).unwrap());
        assert!(!s.contains(&key(2)).unwrap());
        assert_eq!(s.usage(&VAULT).unwrap().chunks, 1);
        // A re-upload of a present chunk touches it like a `missing` check.
        s.put_chunks(
            &[(key(1), b"new")],
            300,
            Durability::Now,
            PutMode::KeepExisting,
        )
        .unwrap();
        assert_eq!(
            s.delete_untouched(&[key(1)], 300).unwrap(),
            vec![Swept::Kept]
        );
        assert_eq!(s.get(&key(1)).unwrap().unwrap(), b"one", "first copy kept");
        assert_eq!(
            s.delete_untouched(&[key(1)], 301).unwrap(),
            vec![Swept::Deleted]
        );
        assert!(s.usage_by_vault().unwrap().is_empty());
    }

    /// Touches racing a sweep: every touch that reported "present" leaves a
    /// copy behind, whatever the interleaving.
    #[test]
    fn a_touch_that_saw_a_chunk_always_keeps_it() {
        let (_d, s) = store();
        let s = Arc::new(s);
        for round in 0..20u32 {
            let keys: Vec<ChunkKey> = (0..200).map(|i| key(round * 1000 + i)).collect();
            let chunks: Vec<(ChunkKey, &[u8])> = keys.iter().map(|k| (*k, &b"x"[..])).collect();
            s.put_chunks(&chunks, 10, Durability::Now, PutMode::KeepExisting)
                .unwrap();
            let (toucher, sweeper) = (s.clone(), s.clone());
            let (tk, sk) = (keys.clone(), keys.clone());
            let touch = std::thread::spawn(move || {
                tk.iter()
                    .map(|k| toucher.touch(&[*k], 50).unwrap()[0])
                    .collect::<Vec<bool>>()
            });
            let sweep = std::thread::spawn(move || {
                sk.chunks(7)
                    .flat_map(|b| sweeper.delete_untouched(b, 50).unwrap())
                    .collect::<Vec<Swept>>()
            });
            let seen = touch.join().unwrap();
            let fates = sweep.join().unwrap();
            for ((k, saw), fate) in keys.iter().zip(seen).zip(fates) {
                let here = s.contains(k).unwrap();
                if saw {
                    assert!(here, "{k}: touched present, then deleted");
                    assert_eq!(fate, Swept::Kept);
                } else {
                    assert!(!here && fate == Swept::Deleted, "{k}: {fate:?}");
                }
            }
        }
    }

    #[test]
    fn a_cluster_sweep_deletes_untouched_chunks_everywhere_and_keeps_touched_ones() {
        let peers = LocalPeers::new(&[1, 2, 3, 4]);
        let p = placement(&[1, 2, 3, 4], 3);
        peers.set_now(100);
        let batch: Arc<Batch> = Arc::new((0..40).map(|i| (key(i), vec![i as u8; 500])).collect());
        replica::write(peers.clone(), &p, batch.clone(), 3, &Throttle::new(64)).unwrap();
        let keys: Vec<ChunkKey> = batch.iter().map(|(k, _)| *k).collect();
        // The prune starts at 200; a backup then finds chunk 0 present.
        peers.set_now(200);
        let absent = replica::missing(&*peers, &p, Some(1), &keys[..1]).unwrap();
        assert_eq!(absent, vec![false]);
        for o in p.owners(&keys[0]) {
            assert_eq!(
                peers.stores[&o].meta(&keys[0]).unwrap().unwrap().touched,
                200
            );
        }
        let r = sweep(&*peers, &p, &keys, 200).unwrap();
        assert_eq!((r.deleted, r.kept), (39, 1));
        for k in &keys[1..] {
            assert!([1, 2, 3, 4].iter().all(|&n| !peers.has(n, k)), "{k}");
        }
        assert_eq!(
            [1, 2, 3, 4]
                .iter()
                .filter(|&&n| peers.has(n, &keys[0]))
                .count(),
            3,
            "every owner's copy was touched and kept"
        );
        assert_eq!(
            replica::missing(&*peers, &p, None, &keys[..2]).unwrap(),
            vec![false, true]
        );
        // Retrying is harmless; a down holder makes the sweep refuse.
        assert_eq!(sweep(&*peers, &p, &keys[1..], 200).unwrap().deleted, 39);
        peers.set_down(2, true);
        assert!(matches!(
            sweep(&*peers, &p, &keys, 300),
            Err(Error::Unreachable { node: 2, .. })
        ));
    }

    #[test]
    fn repair_moves_the_touch_of_a_stray_copy_home() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 2);
        let k = key(5);
        let owners = p.owners(&k);
        let stray = [1, 2, 3].into_iter().find(|n| !owners.contains(n)).unwrap();
        // Old copies on the owners; a backup's recent stand-in copy elsewhere.
        for o in &owners {
            peers.stores[o]
                .put_chunks(&[(k, b"old")], 100, Durability::Now, PutMode::KeepExisting)
                .unwrap();
        }
        peers.stores[&stray]
            .put_chunks(&[(k, b"new")], 250, Durability::Now, PutMode::KeepExisting)
            .unwrap();
        peers.set_now(260);
        let r = crate::repair::anti_entropy(&*peers, &p, &()).unwrap();
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(!peers.has(stray, &k));
        // A prune that started at 200 keeps it: the touch moved home.
        assert_eq!(sweep(&*peers, &p, &[k], 200).unwrap().kept, 1);
        assert!(owners.iter().all(|o| peers.has(*o, &k)));
    }

    #[test]
    fn listings_are_the_sorted_union_in_pages() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], 1);
        let batch: Arc<Batch> = Arc::new((0..50).map(|i| (key(i), vec![1u8; 10])).collect());
        replica::write(peers.clone(), &p, batch.clone(), 1, &Throttle::new(64)).unwrap();
        // One chunk also has a stray copy on every node: listed once.
        for n in [1, 2, 3] {
            peers.stores[&n]
                .put_chunks(&[(key(7), b"x")], 1, Durability::Now, PutMode::KeepExisting)
                .unwrap();
        }
        // Another vault's chunks never show.
        peers.stores[&1]
            .put_batch(
                &[(ChunkKey::new(VaultId([4; 16]), ChunkId([0; 32])), b"o")],
                1,
                Durability::Now,
            )
            .unwrap();
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let page = list(&*peers, &p, VAULT, after, 16).unwrap();
            got.extend(page.iter().copied());
            if page.len() < 16 {
                break;
            }
            after = page.last().copied();
        }
        let want: Vec<ChunkId> = (0..50).map(|i| key(i).chunk).collect();
        assert_eq!(got, want);
        peers.set_down(3, true);
        assert!(matches!(
            list(&*peers, &p, VAULT, None, 16),
            Err(Error::Unreachable { .. })
        ));
    }
}
