//! Anti-entropy: one repair pass over the cluster, run by the leader's
//! cluster role.
//!
//! 1. Ping every node that may hold copies (active and draining); the
//!    silent ones are `down` for this pass.
//! 2. Ask every reachable node for its [`NodeDigests`] under the pass's
//!    [`Placement`].
//! 3. A bucket is *dirty* if two reachable active nodes disagree on the
//!    digest of the chunks they co-own there, or if some node holds chunks
//!    of it that it does not own (misplaced). Clean buckets need nothing;
//!    their chunks that a down owner leaves short are counted from the
//!    digests' `short` counts.
//! 4. Dirty buckets are listed on every reachable node (a few buckets at a
//!    time) and diffed per chunk: the *canonical* copy is the one held by
//!    the best-ranked owner that has it (replicas converge to one version);
//!    every reachable owner without it gets it pushed from a holder (node
//!    to node, never through the leader); a non-owner's copy is deleted
//!    only once **every** owner holds the canonical copy — seen in the
//!    listing, or acknowledged durable by the push of this pass — so a move
//!    (join, drain) never drops the last copy, and a chunk with a down
//!    owner keeps its stray copies. Before the delete the owners' copies
//!    are touched, so the touch time a stray carried (a backup's upload)
//!    is not lost to a concurrent garbage-collection sweep.
//!
//! Chunks of vaults the placement does not know (deleted vaults) are never
//! copied; garbage collection removes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::bucket::{Listed, NodeDigests, BUCKETS};
use crate::peers::{Peers, PushReport};
use crate::placement::{NodeId, Placement};
use crate::{ChunkKey, Result, Usage};

/// Buckets listed together (bounds the memory of a pass).
pub const LIST_GROUP: usize = 16;

/// Keys per push request.
const PUSH_KEYS: usize = 512;

/// Receives progress while a pass runs (for metrics).
pub trait RepairObserver: Sync {
    /// Copies still to make in this pass.
    fn backlog(&self, remaining: u64);
    /// Copies made (chunks and bytes) since the last call.
    fn copied(&self, chunks: u64, bytes: u64);
    /// Asked before every batch of deletions: whether the pass may still
    /// delete (the node still leads and the placement has not changed). Two
    /// overlapping passes under different placements could otherwise each
    /// delete the copies the other one counted on.
    fn may_delete(&self) -> bool {
        true
    }
}

impl RepairObserver for () {
    fn backlog(&self, _: u64) {}
    fn copied(&self, _: u64, _: u64) {}
}

/// What one pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Nodes that did not answer.
    pub unreachable: Vec<NodeId>,
    /// Buckets that needed listing.
    pub dirty_buckets: usize,
    /// Chunks with fewer good copies on their owners than they should have
    /// after this pass (copies to down nodes cannot be made yet).
    pub under_replicated: u64,
    /// Copies made.
    pub copied: u64,
    /// Their bytes.
    pub bytes_copied: u64,
    /// Copies that could not be made (source or target failed).
    pub failed: u64,
    /// Copies deleted from nodes that no longer own them.
    pub deleted: u64,
    /// Per node: what it holds, as its digests reported.
    pub held: BTreeMap<NodeId, Usage>,
    /// Per node: copies it holds without owning them, after this pass (for
    /// a draining node: what is left to move).
    pub misplaced: BTreeMap<NodeId, u64>,
}

/// The copies and deletions one listing calls for.
#[derive(Default)]
struct Plan {
    /// (source, target) → keys, with alternative sources per key.
    copies: BTreeMap<(NodeId, NodeId), Vec<ChunkKey>>,
    alternatives: HashMap<(ChunkKey, NodeId), Vec<NodeId>>,
    /// Copies on non-owners, deletable once every owner holds the
    /// canonical copy (now, or after this plan's copies succeed).
    moves: Vec<(ChunkKey, Vec<NodeId>)>,
    /// Keys short even after the planned copies (a down owner).
    short_anyway: u64,
    /// Keys with at least one planned copy.
    needing_copies: BTreeSet<ChunkKey>,
}

fn plan(placement: &Placement, listings: &[(NodeId, Vec<Listed>)], down: &[NodeId]) -> Plan {
    let mut held: HashMap<ChunkKey, Vec<(NodeId, u32)>> = HashMap::new();
    for (node, listed) in listings {
        for l in listed {
            held.entry(l.key).or_default().push((*node, l.crc32));
        }
    }
    let mut plan = Plan::default();
    for (key, holders) in held {
        if !placement.knows(&key.vault) {
            continue;
        }
        let owners = placement.owners(&key);
        let crc_on = |n: NodeId| holders.iter().find(|(h, _)| *h == n).map(|(_, c)| *c);
        let canonical = owners
            .iter()
            .find_map(|&o| crc_on(o))
            .or_else(|| holders.iter().min_by_key(|(n, _)| *n).map(|(_, c)| *c));
        let Some(canonical) = canonical else { continue };
        let mut sources: Vec<NodeId> = owners
            .iter()
            .copied()
            .filter(|&o| crc_on(o) == Some(canonical))
            .collect();
        let mut others: Vec<NodeId> = holders
            .iter()
            .filter(|(n, c)| *c == canonical && !owners.contains(n))
            .map(|(n, _)| *n)
            .collect();
        others.sort_unstable();
        sources.extend(others);
        let lacking: Vec<NodeId> = owners
            .iter()
            .copied()
            .filter(|&o| crc_on(o) != Some(canonical))
            .collect();
        let owner_down = lacking.iter().any(|o| down.contains(o));
        if owner_down {
            plan.short_anyway += 1;
        }
        for &target in lacking.iter().filter(|o| !down.contains(o)) {
            plan.copies
                .entry((sources[0], target))
                .or_default()
                .push(key);
            plan.alternatives
                .insert((key, target), sources[1..].to_vec());
            plan.needing_copies.insert(key);
        }
        let strays: Vec<NodeId> = holders
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !owners.contains(n))
            .collect();
        if !owner_down && !owners.is_empty() && !strays.is_empty() {
            plan.moves.push((key, strays));
        }
    }
    plan
}

/// Runs one repair pass; see the module doc.
///
/// # Errors
///
/// None of its own today: nodes that fail are reported, not fatal.
pub fn anti_entropy(
    peers: &dyn Peers,
    placement: &Placement,
    observer: &dyn RepairObserver,
) -> Result<RepairReport> {
    let holders = placement.holders();
    let alive: Vec<(NodeId, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = holders
            .iter()
            .map(|&n| s.spawn(move || (n, peers.ping(n))))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut down: Vec<NodeId> = alive
        .iter()
        .filter(|(_, up)| !up)
        .map(|(n, _)| *n)
        .collect();
    let answers: Vec<(NodeId, Result<NodeDigests>)> = std::thread::scope(|s| {
        let down = &down;
        let handles: Vec<_> = holders
            .iter()
            .filter(|n| !down.contains(n))
            .map(|&n| s.spawn(move || (n, peers.digests(n, placement, down))))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut digests: BTreeMap<NodeId, NodeDigests> = BTreeMap::new();
    for (n, d) in answers {
        match d {
            Ok(d) if d.misplaced.len() == BUCKETS && d.short.len() == BUCKETS => {
                digests.insert(n, d);
            }
            _ => down.push(n),
        }
    }
    down.sort_unstable();
    let mut report = RepairReport {
        unreachable: down.clone(),
        ..RepairReport::default()
    };
    let mut dirty = [false; BUCKETS];
    for (&a, da) in &digests {
        report.held.insert(a, da.usage);
        for (b, &m) in da.misplaced.iter().enumerate() {
            dirty[b] |= m > 0;
        }
        for (&peer, mine) in &da.shared {
            let Some(theirs) = digests.get(&peer).and_then(|d| d.shared.get(&a)) else {
                continue;
            };
            for (b, d) in dirty.iter_mut().enumerate() {
                *d |= mine.get(b) != theirs.get(b);
            }
        }
    }
    for d in digests.values() {
        for (b, &short) in d.short.iter().enumerate() {
            if !dirty[b] {
                report.under_replicated += short;
            }
        }
    }
    let mut misplaced: BTreeMap<NodeId, u64> = digests
        .iter()
        .map(|(n, d)| (*n, d.misplaced.iter().sum()))
        .collect();
    let dirty: Vec<u8> = (0..=255u8).filter(|&b| dirty[usize::from(b)]).collect();
    report.dirty_buckets = dirty.len();
    let up: Vec<NodeId> = digests.keys().copied().collect();
    for group in dirty.chunks(LIST_GROUP) {
        let listings: Vec<(NodeId, Vec<Listed>)> = std::thread::scope(|s| {
            let handles: Vec<_> = up
                .iter()
                .map(|&n| s.spawn(move || (n, peers.list(n, group))))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter_map(|(n, r)| r.ok().map(|l| (n, l)))
                .collect()
        });
        if listings.len() != up.len() {
            // A node vanished mid-pass: judge nothing on partial listings.
            report.failed += 1;
            continue;
        }
        let plan = plan(placement, &listings, &down);
        let failed_keys = execute_copies(peers, &plan, observer, &mut report);
        report.under_replicated += plan.short_anyway;
        report.under_replicated += plan
            .needing_copies
            .iter()
            .filter(|k| failed_keys.contains(k))
            .count() as u64;
        let moved: Vec<ChunkKey> = plan
            .moves
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !failed_keys.contains(k))
            .collect();
        let kept_home = touch_owners(peers, placement, &moved);
        let mut deletes: BTreeMap<NodeId, Vec<ChunkKey>> = BTreeMap::new();
        for (key, strays) in &plan.moves {
            if kept_home.contains(key) {
                for n in strays {
                    deletes.entry(*n).or_default().push(*key);
                }
            }
        }
        for (node, keys) in &deletes {
            if !observer.may_delete() {
                break;
            }
            if peers.delete(*node, keys).is_ok() {
                report.deleted += keys.len() as u64;
                if let Some(m) = misplaced.get_mut(node) {
                    *m = m.saturating_sub(keys.len() as u64);
                }
            }
        }
    }
    report.misplaced = misplaced;
    observer.backlog(0);
    Ok(report)
}

/// Touches every owner's copy of `keys` before their stray copies go and
/// answers the keys every owner still holds. A stray copy may be the one a
/// backup's upload touched (written as a stand-in while the owners were
/// down) while the owners' copies are old: moving the touch home keeps a
/// concurrent garbage-collection sweep from deleting the owners' copies
/// after the stray is gone, and a key an owner lost meanwhile (a sweep
/// got there first) keeps its strays.
fn touch_owners(peers: &dyn Peers, placement: &Placement, keys: &[ChunkKey]) -> BTreeSet<ChunkKey> {
    let mut by_owner: BTreeMap<NodeId, Vec<ChunkKey>> = BTreeMap::new();
    for k in keys {
        for o in placement.owners(k) {
            by_owner.entry(o).or_default().push(*k);
        }
    }
    let mut lacking: BTreeSet<ChunkKey> = BTreeSet::new();
    for (node, ks) in &by_owner {
        match peers.touch(*node, ks) {
            Ok(has) if has.len() == ks.len() => {
                lacking.extend(ks.iter().zip(has).filter(|(_, h)| !h).map(|(k, _)| *k));
            }
            _ => lacking.extend(ks.iter().copied()),
        }
    }
    keys.iter()
        .filter(|k| !lacking.contains(k))
        .copied()
        .collect()
}

/// Makes the planned copies, pushing from each source in parallel and
/// retrying a failed key once from another holder. Returns the keys
/// that could not be copied.
fn execute_copies(
    peers: &dyn Peers,
    plan: &Plan,
    observer: &dyn RepairObserver,
    report: &mut RepairReport,
) -> BTreeSet<ChunkKey> {
    let total: u64 = plan.copies.values().map(|k| k.len() as u64).sum();
    let remaining = std::sync::atomic::AtomicU64::new(total);
    observer.backlog(total);
    let mut by_source: BTreeMap<NodeId, Vec<(NodeId, &Vec<ChunkKey>)>> = BTreeMap::new();
    for ((from, to), keys) in &plan.copies {
        by_source.entry(*from).or_default().push((*to, keys));
    }
    let push = |from: NodeId, to: NodeId, keys: &[ChunkKey]| -> (PushReport, Vec<ChunkKey>) {
        let mut done = PushReport::default();
        let mut failed = Vec::new();
        for part in keys.chunks(PUSH_KEYS) {
            match peers.push(from, to, part) {
                Ok(r) => {
                    observer.copied(r.copied, r.bytes);
                    done.copied += r.copied;
                    done.bytes += r.bytes;
                    failed.extend(r.failed);
                }
                Err(_) => failed.extend_from_slice(part),
            }
            let left = remaining
                .fetch_sub(part.len() as u64, std::sync::atomic::Ordering::Relaxed)
                .saturating_sub(part.len() as u64);
            observer.backlog(left);
        }
        (done, failed)
    };
    let results: Vec<(NodeId, PushReport, Vec<ChunkKey>)> = std::thread::scope(|s| {
        let handles: Vec<_> = by_source
            .iter()
            .map(|(&from, targets)| {
                let push = &push;
                s.spawn(move || {
                    targets
                        .iter()
                        .map(|(to, keys)| {
                            let (r, f) = push(from, *to, keys);
                            (*to, r, f)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    let mut still_failed = BTreeSet::new();
    for (to, r, failed) in results {
        report.copied += r.copied;
        report.bytes_copied += r.bytes;
        for key in failed {
            let retried = plan
                .alternatives
                .get(&(key, to))
                .into_iter()
                .flatten()
                .find_map(|&alt| {
                    let r = peers.push(alt, to, &[key]).ok()?;
                    (r.copied == 1).then_some(r)
                });
            match retried {
                Some(r) => {
                    observer.copied(r.copied, r.bytes);
                    report.copied += 1;
                    report.bytes_copied += r.bytes;
                }
                None => {
                    report.failed += 1;
                    still_failed.insert(key);
                }
            }
        }
    }
    still_failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::local::LocalPeers;
    use crate::replica::{self, Batch};
    use crate::Store;
    use cairn_proto::{ChunkId, VaultId};
    use std::sync::Arc;

    const VAULT: VaultId = VaultId([6; 16]);

    fn placement(active: &[NodeId], draining: &[NodeId], r: u8) -> Placement {
        Placement {
            active: active.to_vec(),
            draining: draining.to_vec(),
            replicas: BTreeMap::from([(VAULT, r)]),
            pools: Default::default(),
        }
    }

    fn batch(count: u32, seed: u8) -> Arc<Batch> {
        Arc::new(
            (0..count)
                .map(|i| {
                    let mut c = [seed; 32];
                    c[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
                    (ChunkKey::new(VAULT, ChunkId(c)), vec![seed ^ i as u8; 500])
                })
                .collect(),
        )
    }

    fn copies(peers: &LocalPeers, nodes: &[NodeId], key: &ChunkKey) -> Vec<NodeId> {
        nodes
            .iter()
            .copied()
            .filter(|&n| peers.has(n, key))
            .collect()
    }

    #[test]
    fn a_returning_node_is_brought_back_to_full_replication() {
        let peers = LocalPeers::new(&[1, 2, 3]);
        let p = placement(&[1, 2, 3], &[], 3);
        peers.set_down(1, true);
        let b = batch(300, 1);
        replica::write(peers.clone(), &p, b.clone(), 2, &replica::Throttle::new(64)).unwrap();
        let r = anti_entropy(&*peers, &p, &()).unwrap();
        assert_eq!(r.unreachable, vec![1]);
        assert_eq!(r.under_replicated, 300, "{r:?}");
        assert_eq!(r.copied, 0);
        peers.set_down(1, false);
        let r = anti_entropy(&*peers, &p, &()).unwrap();
        assert_eq!(
            (r.copied, r.under_replicated, r.failed),
            (300, 0, 0),
            "{r:?}"
        );
        for (k, _) in b.iter() {
            assert_eq!(copies(&peers, &[1, 2, 3], k), vec![1, 2, 3]);
        }
        let r = anti_entropy(&*peers, &p, &()).unwrap();
        assert_eq!((r.dirty_buckets, r.copied, r.under_replicated), (0, 0, 0));
    }

    #[test]
    fn join_and_drain_move_copies_without_losing_any() {
        let peers = LocalPeers::new(&[1, 2, 3, 4]);
        let before = placement(&[1, 2, 3], &[], 2);
        let b = batch(400, 2);
        replica::write(
            peers.clone(),
            &before,
            b.clone(),
            2,
            &replica::Throttle::new(64),
        )
        .unwrap();
        // Let the background sends land.
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Node 4 joins: it takes over about half of the copies.
        let joined = placement(&[1, 2, 3, 4], &[], 2);
        let r = anti_entropy(&*peers, &joined, &()).unwrap();
        assert!(r.copied > 100 && r.deleted == r.copied, "{r:?}");
        for (k, _) in b.iter() {
            let mut owners = joined.owners(k);
            owners.sort();
            assert_eq!(copies(&peers, &[1, 2, 3, 4], k), owners);
        }
        // Node 2 drains: afterwards it holds nothing and nothing is lost.
        let drain = placement(&[1, 3, 4], &[2], 2);
        let r = anti_entropy(&*peers, &drain, &()).unwrap();
        assert_eq!(r.misplaced.get(&2), Some(&0), "{r:?}");
        assert_eq!(peers.stores[&2].usage(&VAULT).unwrap().chunks, 0);
        let keys: Vec<ChunkKey> = b.iter().map(|(k, _)| *k).collect();
        let after = placement(&[1, 3, 4], &[], 2);
        let read = replica::read(&*peers, &after, None, &keys).unwrap();
        assert!(read.chunks.iter().all(Option::is_some));
        for (k, _) in b.iter() {
            assert_eq!(copies(&peers, &[1, 3, 4], k).len(), 2);
        }
    }

    #[test]
    fn diverging_versions_converge_and_deleted_vaults_are_left_alone() {
        let peers = LocalPeers::new(&[1, 2]);
        let p = placement(&[1, 2], &[], 2);
        let key = ChunkKey::new(VAULT, ChunkId([9; 32]));
        peers.stores[&1]
            .put_batch(&[(key, b"version one")], 1, crate::Durability::Now)
            .unwrap();
        peers.stores[&2]
            .put_batch(&[(key, b"version two")], 1, crate::Durability::Now)
            .unwrap();
        let orphan = ChunkKey::new(VaultId([7; 16]), ChunkId([1; 32]));
        peers.stores[&1]
            .put_batch(&[(orphan, b"x")], 1, crate::Durability::Now)
            .unwrap();
        let r = anti_entropy(&*peers, &p, &()).unwrap();
        assert_eq!(r.copied, 1);
        let winner = p.owners(&key)[0];
        let expect = peers.stores[&winner].get(&key).unwrap();
        for n in [1, 2] {
            assert_eq!(peers.stores[&n].get(&key).unwrap(), expect);
        }
        assert!(!peers.has(2, &orphan), "unknown vaults are not replicated");
        assert!(peers.has(1, &orphan), "nor deleted by repair");
    }
}

/// `plan` over plain listings: no stores, no threads, no peers.
#[cfg(test)]
mod plan_tests {
    use super::*;
    use cairn_proto::{ChunkId, VaultId};
    use proptest::prelude::*;

    const KNOWN: VaultId = VaultId([1; 16]);
    const UNKNOWN: VaultId = VaultId([2; 16]);

    fn key(vault: VaultId, i: u8) -> ChunkKey {
        ChunkKey::new(vault, ChunkId([i; 32]))
    }

    fn listed(key: ChunkKey, crc32: u32) -> Listed {
        Listed {
            key,
            crc32,
            size: 10,
        }
    }

    fn placement(active: Vec<NodeId>, replicas: u8) -> Placement {
        Placement {
            active,
            draining: Vec::new(),
            replicas: BTreeMap::from([(KNOWN, replicas)]),
            pools: Default::default(),
        }
    }

    #[test]
    fn copies_go_from_an_owner_with_the_canonical_copy_to_owners_lacking_it() {
        let p = placement(vec![1, 2, 3], 3);
        let k = key(KNOWN, 7);
        let owners = p.owners(&k);
        // The first owner has a good copy, the second a different one, the
        // third none: both of the others get the first owner's copy.
        let listings = vec![
            (owners[0], vec![listed(k, 100)]),
            (owners[1], vec![listed(k, 999)]),
        ];
        let plan = plan(&p, &listings, &[]);
        let targets: Vec<(NodeId, NodeId)> = plan.copies.keys().copied().collect();
        assert_eq!(targets, {
            let mut t = vec![(owners[0], owners[1]), (owners[0], owners[2])];
            t.sort_unstable();
            t
        });
        assert_eq!(plan.short_anyway, 0);
        assert!(plan.moves.is_empty());
    }

    #[test]
    fn a_down_owner_gets_no_copy_and_blocks_stray_deletion() {
        let p = placement(vec![1, 2, 3, 4], 2);
        let k = key(KNOWN, 9);
        let owners = p.owners(&k);
        let stray = (1..=4).find(|n| !owners.contains(n)).unwrap();
        let listings = vec![(owners[0], vec![listed(k, 5)]), (stray, vec![listed(k, 5)])];
        let plan = plan(&p, &listings, &[owners[1]]);
        assert!(plan.copies.is_empty(), "no copy to a down node");
        assert_eq!(plan.short_anyway, 1);
        assert!(plan.moves.is_empty(), "the stray is the only spare copy");
    }

    #[test]
    fn chunks_of_unknown_vaults_are_left_alone() {
        let p = placement(vec![1, 2], 2);
        let listings = vec![(1, vec![listed(key(UNKNOWN, 3), 1)])];
        let plan = plan(&p, &listings, &[]);
        assert!(plan.copies.is_empty() && plan.moves.is_empty());
        assert_eq!(plan.short_anyway, 0);
    }

    proptest! {
        /// For any holdings, the plan's copies (done) leave every owner that
        /// is up with the canonical copy; copies come from holders of the
        /// canonical copy and never go to a down node or to a node that
        /// already has it; strays are only ever non-owners, and only
        /// deleted when no owner is down.
        #[test]
        fn plan_heals_what_can_be_healed(
            nodes in 2u64..6,
            replicas in 1u8..4,
            holdings in proptest::collection::vec(
                (0u8..12, 1u64..6, 0u32..3), 0..40),
            down_mask in 0u8..32,
        ) {
            let active: Vec<NodeId> = (1..=nodes).collect();
            let p = placement(active.clone(), replicas);
            let down: Vec<NodeId> = active.iter().copied()
                .filter(|n| down_mask & (1 << (n - 1)) != 0).collect();
            let mut by_node: BTreeMap<NodeId, BTreeMap<ChunkKey, u32>> = BTreeMap::new();
            for (i, node, crc) in holdings {
                if node <= nodes {
                    by_node.entry(node).or_default().insert(key(KNOWN, i), crc);
                }
            }
            let listings: Vec<(NodeId, Vec<Listed>)> = by_node.iter()
                .map(|(n, m)| (*n, m.iter().map(|(k, c)| listed(*k, *c)).collect()))
                .collect();
            let plan = plan(&p, &listings, &down);

            let crc_on = |n: NodeId, k: &ChunkKey| by_node.get(&n).and_then(|m| m.get(k)).copied();
            let mut after = by_node.clone();
            for ((src, dst), keys) in &plan.copies {
                prop_assert!(!down.contains(dst));
                for k in keys {
                    let owners = p.owners(k);
                    prop_assert!(owners.contains(dst));
                    let canonical = owners.iter().find_map(|&o| crc_on(o, k))
                        .or_else(|| by_node.iter().find_map(|(_, m)| m.get(k).copied()));
                    prop_assert_eq!(crc_on(*src, k), canonical, "source holds the canonical copy");
                    prop_assert_ne!(crc_on(*dst, k), canonical, "target lacked it");
                    after.entry(*dst).or_default().insert(*k, canonical.unwrap());
                }
            }
            let keys: BTreeSet<ChunkKey> = by_node.values().flat_map(|m| m.keys().copied()).collect();
            for k in &keys {
                let owners = p.owners(k);
                let canonical = owners.iter().find_map(|&o| crc_on(o, k))
                    .or_else(|| by_node.iter().find_map(|(_, m)| m.get(k).copied()));
                for o in owners.iter().filter(|o| !down.contains(o)) {
                    prop_assert_eq!(after.get(o).and_then(|m| m.get(k)).copied(), canonical);
                }
            }
            for (k, strays) in &plan.moves {
                let owners = p.owners(k);
                prop_assert!(strays.iter().all(|s| !owners.contains(s)));
                let canonical = owners.iter().find_map(|&o| crc_on(o, k));
                prop_assert!(owners.iter().all(|o| !down.contains(o) || crc_on(*o, k) == canonical));
            }
        }
    }
}
