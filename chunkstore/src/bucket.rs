//! Buckets and digests: how co-owners find out cheaply whether they hold
//! the same chunks.
//!
//! Chunks fall into [`BUCKETS`] buckets by the first byte of their chunk id
//! (uniform, because ids are keyed hashes). A bucket digest is the XOR of
//! `BLAKE3(key ‖ crc32)` over a set of chunks, with the count beside it:
//! order-independent, so two nodes compute it from their own stores in one
//! scan each, and equal digests mean (with overwhelming probability) equal
//! sets, including the same version (CRC) of every chunk.
//!
//! A node's [`NodeDigests`] holds, for every other active node, the digest
//! per bucket of the chunks *both* own and this node holds. If node A and
//! node B agree on bucket `b`, every chunk of `b` that both own is on both;
//! if not, the leader lists that bucket on every node and diffs the
//! listings ([`crate::repair`]). Chunks a node holds but does not own
//! (`misplaced`: written while an owner was down, or left behind by a join
//! or drain) mark their bucket for listing too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::placement::{NodeId, Placement};
use crate::{ChunkKey, Error, Result, RocksStore, Usage};

/// Number of id-prefix buckets.
pub const BUCKETS: usize = 256;

/// The bucket of a chunk: the first byte of its chunk id.
pub fn bucket_of(key: &ChunkKey) -> u8 {
    key.chunk.0[0]
}

/// An order-independent digest of a set of (key, CRC) pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigest {
    /// XOR of `BLAKE3(key ‖ crc32 LE)`.
    pub xor: [u8; 32],
    /// Number of pairs.
    pub count: u64,
}

impl BucketDigest {
    /// Adds one chunk.
    pub fn add(&mut self, key: &ChunkKey, crc32: u32) {
        let mut h = blake3::Hasher::new();
        h.update(&key.to_bytes());
        h.update(&crc32.to_le_bytes());
        for (x, b) in self.xor.iter_mut().zip(h.finalize().as_bytes()) {
            *x ^= b;
        }
        self.count += 1;
    }
}

/// What one node reports to the repair pass (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDigests {
    /// For every other active node: per bucket, the digest of the chunks
    /// held here that both nodes own ([`BUCKETS`] entries).
    pub shared: BTreeMap<NodeId, Vec<BucketDigest>>,
    /// Per bucket: chunks of live vaults held here that this node does not
    /// own.
    pub misplaced: Vec<u64>,
    /// Per bucket: chunks held and owned here with an owner among the
    /// `down` nodes, counted only on the first owner that is not down (so
    /// the sum over nodes counts each chunk once).
    pub short: Vec<u64>,
    /// Everything stored here, live vaults or not.
    pub usage: Usage,
    /// Chunks of vaults the placement does not know (deleted vaults).
    pub unknown_vault_chunks: u64,
}

/// One stored chunk as a listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The chunk.
    pub key: ChunkKey,
    /// CRC-32 of its sealed bytes.
    pub crc32: u32,
    /// Length of its sealed bytes.
    pub size: u32,
}

/// Computes `me`'s digests over its store in one scan of the metadata.
///
/// # Errors
///
/// The store failed.
pub fn digests(
    store: &RocksStore,
    me: NodeId,
    placement: &Placement,
    down: &[NodeId],
) -> Result<NodeDigests> {
    // Each active node costs a table of BUCKETS digests: bound what a peer
    // can make this node allocate, and judge ownership only by a placement
    // the leader could have built.
    if let Some(why) = placement.malformed() {
        return Err(Error::Malformed(why));
    }
    let mut out = NodeDigests {
        shared: placement
            .active
            .iter()
            .filter(|&&n| n != me)
            .map(|&n| (n, vec![BucketDigest::default(); BUCKETS]))
            .collect(),
        misplaced: vec![0; BUCKETS],
        short: vec![0; BUCKETS],
        ..NodeDigests::default()
    };
    store.for_each_chunk(&mut |key, meta| {
        out.usage.chunks += 1;
        out.usage.bytes += u64::from(meta.size);
        if !placement.knows(&key.vault) {
            out.unknown_vault_chunks += 1;
            return Ok(());
        }
        let b = usize::from(bucket_of(&key));
        let owners = placement.owners(&key);
        if !owners.contains(&me) {
            out.misplaced[b] += 1;
            return Ok(());
        }
        for o in owners.iter().filter(|&&o| o != me) {
            if let Some(d) = out.shared.get_mut(o) {
                d[b].add(&key, meta.crc32);
            }
        }
        if owners.iter().any(|o| down.contains(o))
            && owners.iter().find(|o| !down.contains(o)) == Some(&me)
        {
            out.short[b] += 1;
        }
        Ok(())
    })?;
    Ok(out)
}

/// Every chunk of the given buckets stored here.
///
/// # Errors
///
/// The store failed.
pub fn list(store: &RocksStore, buckets: &[u8]) -> Result<Vec<Listed>> {
    let mut wanted = [false; BUCKETS];
    for &b in buckets {
        wanted[usize::from(b)] = true;
    }
    let mut out = Vec::new();
    store.for_each_chunk(&mut |key, meta| {
        if wanted[usize::from(bucket_of(&key))] {
            out.push(Listed {
                key,
                crc32: meta.crc32,
                size: meta.size,
            });
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Store, StoreOptions};
    use cairn_proto::{ChunkId, VaultId};

    fn key(i: u8) -> ChunkKey {
        let mut c = [i; 32];
        c[0] = i % 4;
        ChunkKey::new(VaultId([1; 16]), ChunkId(c))
    }

    #[test]
    fn digests_ignore_order_and_see_versions() {
        let (mut a, mut b) = (BucketDigest::default(), BucketDigest::default());
        a.add(&key(1), 10);
        a.add(&key(2), 20);
        b.add(&key(2), 20);
        b.add(&key(1), 10);
        assert_eq!(a, b);
        let mut c = BucketDigest::default();
        c.add(&key(1), 10);
        c.add(&key(2), 21);
        assert_ne!(a, c);
    }

    #[test]
    fn a_placement_naming_too_many_nodes_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let placement = crate::placement::Placement {
            active: (0..=crate::placement::MAX_NODES as u64).collect(),
            ..Default::default()
        };
        let err = digests(&store, 0, &placement, &[]).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{err}");
    }

    #[test]
    fn a_placement_pooling_a_node_that_is_not_active_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let mut placement = Placement {
            active: vec![1, 2],
            draining: vec![3],
            replicas: [(VaultId([1; 16]), 2)].into(),
            pools: [(VaultId([1; 16]), vec![2])].into(),
        };
        digests(&store, 1, &placement, &[]).unwrap();
        placement.pools.insert(VaultId([1; 16]), vec![2, 3]);
        let err = digests(&store, 1, &placement, &[]).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed(m) if m.contains("node 3")),
            "{err}"
        );
    }

    #[test]
    fn node_digests_split_shared_misplaced_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), &StoreOptions::default()).unwrap();
        let keys: Vec<ChunkKey> = (0..40).map(key).collect();
        let values: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10]).collect();
        let items: Vec<(ChunkKey, &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (*k, &v[..]))
            .collect();
        store.put_batch(&items, 1, Durability::Now).unwrap();
        let orphan = ChunkKey::new(VaultId([2; 16]), ChunkId([0; 32]));
        store
            .put_batch(&[(orphan, b"x")], 1, Durability::Now)
            .unwrap();
        let placement = Placement {
            active: vec![1, 2, 3],
            draining: vec![],
            replicas: [(VaultId([1; 16]), 2)].into(),
            pools: Default::default(),
        };
        let d = digests(&store, 1, &placement, &[2]).unwrap();
        assert_eq!(d.usage.chunks, 41);
        assert_eq!(d.unknown_vault_chunks, 1);
        let owned = keys
            .iter()
            .filter(|k| placement.owners(k).contains(&1))
            .count() as u64;
        let shared: u64 = d.shared.values().flatten().map(|b| b.count).sum();
        assert_eq!(shared, owned, "each owned chunk has one co-owner");
        assert_eq!(d.misplaced.iter().sum::<u64>(), 40 - owned);
        let short = keys
            .iter()
            .filter(|k| placement.owners(k).contains(&2) && placement.owners(k).contains(&1))
            .count() as u64;
        assert_eq!(d.short.iter().sum::<u64>(), short);
        let listed = list(&store, &[0, 1]).unwrap();
        assert!(listed.iter().all(|l| bucket_of(&l.key) < 2));
        assert_eq!(listed.len(), 21, "20 of vault 1 and the orphan");
    }
}
