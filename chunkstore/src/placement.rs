//! Placement: which storage nodes own a chunk.
//!
//! Rendezvous (highest-random-weight) hashing: every node gets a score for
//! every chunk key, `BLAKE3(key ‖ node_id)`, and the `r` highest scores own
//! it. Any node computes the same owners from the same node list (the live
//! storage nodes in the Raft state), with no coordination and no table, and
//! a join or a removal moves only the keys whose owner set actually changes:
//! about `r / n` of them, the minimum possible.
//!
//! [`Placement`] bundles what every decision needs for a whole cluster: the
//! active nodes (which take copies), the draining ones (which still serve
//! what they hold) and each vault's replica count. The storage role builds
//! it from the Raft state; the leader ships it with repair requests so every
//! node judges ownership by the same inputs.

use std::collections::BTreeMap;

use cairn_proto::VaultId;
use serde::{Deserialize, Serialize};

use crate::ChunkKey;

/// A storage node's id, as in the Raft state.
pub type NodeId = u64;

fn score(key: &ChunkKey, node: NodeId) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&key.to_bytes());
    h.update(&node.to_le_bytes());
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The owners of `key` among `nodes`, best first: `replicas` of them, or all
/// nodes if there are fewer. Duplicate node ids count once. Reads try owners
/// in this order; a write coordinator sends to all of them.
pub fn owners(key: &ChunkKey, nodes: &[NodeId], replicas: usize) -> Vec<NodeId> {
    let mut scored: Vec<(u64, NodeId)> = nodes.iter().map(|&n| (score(key, n), n)).collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by_key(|s| s.1);
    scored.into_iter().take(replicas).map(|(_, n)| n).collect()
}

/// The most storage nodes a placement may name; a peer's placement naming
/// more is refused (work and memory per request grow with it).
pub const MAX_NODES: usize = 4096;

/// Placement inputs of a cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Storage nodes that take copies (`Active`).
    pub active: Vec<NodeId>,
    /// Storage nodes that serve what they hold but take nothing new
    /// (`Draining`): their copies move to the active owners.
    pub draining: Vec<NodeId>,
    /// Replicas per vault (its tier's count). A vault missing here is
    /// unknown (deleted, or not yet created): its chunks are never copied,
    /// only garbage-collected.
    pub replicas: BTreeMap<VaultId, u8>,
    /// Storage pools: for a vault whose tier names storage labels, the
    /// active nodes that carry them — the only nodes that own (and take)
    /// its copies. A vault missing here may use every active node.
    pub pools: BTreeMap<VaultId, Vec<NodeId>>,
}

impl Placement {
    /// Why a placement received from a peer cannot be one the storage role
    /// built ([`Placement`] from the Raft state): more than [`MAX_NODES`]
    /// active nodes (each costs a digest table), or a pool naming a node
    /// that is not active (pools are drawn from the active nodes, and
    /// owners must be nodes that take copies). `None` when it can be.
    pub fn malformed(&self) -> Option<String> {
        if self.active.len() > MAX_NODES {
            return Some(format!(
                "a placement of {} active nodes (at most {MAX_NODES})",
                self.active.len()
            ));
        }
        let active: std::collections::BTreeSet<NodeId> = self.active.iter().copied().collect();
        self.pools.iter().find_map(|(vault, pool)| {
            pool.iter()
                .find(|n| !active.contains(n))
                .map(|n| format!("the pool of vault {vault} names node {n}, which is not active"))
        })
    }

    /// Whether `vault` is a live vault.
    pub fn knows(&self, vault: &VaultId) -> bool {
        self.replicas.contains_key(vault)
    }

    /// The active nodes that may own copies of `vault`: its pool, or
    /// every active node.
    pub fn eligible(&self, vault: &VaultId) -> &[NodeId] {
        self.pools.get(vault).map_or(&self.active, Vec::as_slice)
    }

    /// How many owners a chunk of `vault` has: its tier's replica count
    /// capped by the nodes eligible for it; 0 for an unknown vault.
    pub fn replicas_of(&self, vault: &VaultId) -> usize {
        self.replicas
            .get(vault)
            .map_or(0, |&r| usize::from(r).min(self.eligible(vault).len()))
    }

    /// Every node eligible for `key`'s vault ranked for `key`, best first
    /// (owners and write stand-ins come from here, so a pooled vault's
    /// copies stay in its pool).
    pub fn ranking(&self, key: &ChunkKey) -> Vec<NodeId> {
        let nodes = self.eligible(&key.vault);
        owners(key, nodes, nodes.len())
    }

    /// The owners of `key`: the first [`Placement::replicas_of`] of the ranking.
    pub fn owners(&self, key: &ChunkKey) -> Vec<NodeId> {
        let mut ranked = self.ranking(key);
        ranked.truncate(self.replicas_of(&key.vault));
        ranked
    }

    /// Where a reader looks for `key`, in order: the owners (with `local`
    /// first when it is one, which saves a network hop), then the other
    /// eligible nodes by rank (a copy written while an owner was down, or
    /// not yet moved after a join), then the active nodes outside the
    /// vault's pool (a copy from before its tier was pooled), then the
    /// draining nodes.
    pub fn read_order(&self, key: &ChunkKey, local: Option<NodeId>) -> Vec<NodeId> {
        let ranked = self.ranking(key);
        let r = self.replicas_of(&key.vault);
        let mut order: Vec<NodeId> = Vec::with_capacity(ranked.len() + self.draining.len());
        // `r` is capped by the active count, which may repeat a node.
        let first_r = &ranked[..r.min(ranked.len())];
        if let Some(me) = local.filter(|me| first_r.contains(me)) {
            order.push(me);
        }
        let first = order.first().copied();
        order.extend(ranked.iter().copied().filter(|n| Some(*n) != first));
        if self.pools.contains_key(&key.vault) {
            let mut outside = owners(key, &self.active, self.active.len());
            outside.retain(|n| !order.contains(n));
            order.extend(outside);
        }
        let mut draining = owners(key, &self.draining, self.draining.len());
        draining.retain(|n| !order.contains(n));
        order.extend(draining);
        order
    }

    /// Every node that may hold copies: active and draining.
    pub fn holders(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.active.iter().chain(&self.draining).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::{ChunkId, VaultId};
    use proptest::prelude::*;

    fn key(i: u32) -> ChunkKey {
        let mut c = [0u8; 32];
        c[..4].copy_from_slice(&i.to_le_bytes());
        ChunkKey::new(VaultId([9; 16]), ChunkId(c))
    }

    #[test]
    fn a_placement_repeating_a_node_does_not_panic() {
        let p = Placement {
            active: vec![3, 3, 3],
            draining: vec![],
            replicas: [(VaultId([9; 16]), 3)].into_iter().collect(),
            pools: Default::default(),
        };
        let order = p.read_order(&key(1), Some(3));
        assert_eq!(order.first(), Some(&3));
    }

    #[test]
    fn replicas_are_capped_by_the_node_count_and_distinct() {
        assert_eq!(owners(&key(1), &[7], 3), vec![7]);
        assert_eq!(owners(&key(1), &[], 3), Vec::<NodeId>::new());
        let o = owners(&key(1), &[1, 2, 3, 4, 5], 3);
        assert_eq!(o.len(), 3);
        let mut d = o.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 3);
        assert_eq!(owners(&key(1), &[1, 1, 2], 3).len(), 2);
    }

    #[test]
    fn load_is_spread_evenly() {
        let nodes = [1, 2, 3, 4, 5];
        let mut count = [0usize; 6];
        for i in 0..10_000 {
            for n in owners(&key(i), &nodes, 3) {
                count[n as usize] += 1;
            }
        }
        // Each node should own 3/5 of 10,000 keys = 6,000, within 5%.
        for &c in &count[1..] {
            assert!((5_700..=6_300).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn a_join_moves_only_about_r_over_n_of_the_keys() {
        let before = [1, 2, 3, 4];
        let after = [1, 2, 3, 4, 5];
        let moved = (0..10_000)
            .filter(|&i| {
                let mut a = owners(&key(i), &before, 3);
                let mut b = owners(&key(i), &after, 3);
                a.sort();
                b.sort();
                a != b
            })
            .count();
        // Node 5 should take over a replica of 3/5 of the keys.
        assert!((5_600..=6_400).contains(&moved), "{moved}");
    }

    #[test]
    fn placement_caps_replicas_and_orders_reads() {
        let vault = VaultId([9; 16]);
        let mut p = Placement {
            active: vec![1, 2, 3, 4],
            draining: vec![5],
            replicas: BTreeMap::from([(vault, 3)]),
            pools: Default::default(),
        };
        let k = key(7);
        let owners = p.owners(&k);
        assert_eq!(owners.len(), 3);
        assert_eq!(owners, p.ranking(&k)[..3]);
        let spare = p.ranking(&k)[3];
        assert_eq!(
            p.read_order(&k, Some(spare)),
            [&owners[..], &[spare, 5]].concat()
        );
        let last = owners[2];
        assert_eq!(p.read_order(&k, Some(last))[0], last);
        assert!(!p.knows(&VaultId([1; 16])));
        assert!(p
            .owners(&ChunkKey::new(VaultId([1; 16]), k.chunk))
            .is_empty());
        p.active = vec![1];
        assert_eq!(p.replicas_of(&vault), 1);
        assert_eq!(p.holders(), vec![1, 5]);
    }

    proptest! {
        #[test]
        fn order_of_the_node_list_does_not_matter(i: u32, mut nodes in proptest::collection::vec(0u64..50, 1..10)) {
            let a = owners(&key(i), &nodes, 3);
            nodes.reverse();
            prop_assert_eq!(owners(&key(i), &nodes, 3), a);
        }

        #[test]
        fn removing_a_non_owner_changes_nothing(i: u32) {
            let nodes = [1, 2, 3, 4, 5, 6];
            let o = owners(&key(i), &nodes, 3);
            let spare = *nodes.iter().find(|n| !o.contains(n)).unwrap();
            let rest: Vec<_> = nodes.iter().copied().filter(|&n| n != spare).collect();
            prop_assert_eq!(owners(&key(i), &rest, 3), o);
        }
    }
}
