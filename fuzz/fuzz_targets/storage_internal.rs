//! The bincode bodies of the node-to-node storage routes
//! (`node/src/storage/http.rs` `internal_*`, decoded with the node's
//! `bincode::deserialize`) and the answers the asking node decodes
//! (`node/src/storage/peers.rs` `call_bincode`). The first byte picks the
//! body. Protects: no panic and no allocation beyond the input for any
//! body, a stable round trip, and for a decoded [`Placement`] (the digests
//! route) that what the receiving node then computes from it — which vaults
//! it knows, the owners of a chunk, where it reads — cannot panic, and for
//! one the route accepts ([`Placement::malformed`] is `None`) stays within
//! the placement.
#![no_main]

use cairn_chunkstore::bucket::{bucket_of, Listed, NodeDigests, BUCKETS};
use cairn_chunkstore::gc::Swept;
use cairn_chunkstore::peers::PushReport;
use cairn_chunkstore::placement::{NodeId, Placement};
use cairn_chunkstore::{ChunkKey, Usage};
use cairn_fuzz::{bincode_legacy as de, selector};
use cairn_proto::{ChunkId, VaultId};
use libfuzzer_sys::fuzz_target;

/// What the digests route does with a placement from the leader.
fn placement(p: &Placement, down: &[NodeId]) {
    let accepted = p.malformed().is_none();
    let mut keys: Vec<ChunkKey> = p
        .replicas
        .keys()
        .take(8)
        .map(|v| ChunkKey::new(*v, ChunkId([0xab; 32])))
        .collect();
    keys.push(ChunkKey::new(VaultId([0; 16]), ChunkId([0; 32])));
    for key in &keys {
        assert!(usize::from(bucket_of(key)) < BUCKETS);
        let owners = p.owners(key);
        let _ = p.read_order(key, down.first().copied());
        assert!(owners.len() <= p.replicas_of(&key.vault));
        assert!(!accepted || owners.iter().all(|o| p.active.contains(o)));
        assert_eq!(p.knows(&key.vault), p.replicas.contains_key(&key.vault));
        let _ = owners.iter().any(|o| down.contains(o));
    }
    let holders = p.holders();
    assert!(holders.windows(2).all(|w| w[0] < w[1]));
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    match which % 16 {
        // Requests a node receives.
        0 => drop(de::<Vec<ChunkKey>>(body)),
        1 => {
            if let Some((p, down)) = de::<(Placement, Vec<NodeId>)>(body) {
                placement(&p, &down);
            }
        }
        2 => drop(de::<Vec<u8>>(body)),
        3 => drop(de::<(NodeId, Vec<ChunkKey>)>(body)),
        4 => drop(de::<(Vec<ChunkKey>, u64)>(body)),
        5 => drop(de::<(VaultId, Option<ChunkId>, u64)>(body)),
        6 => drop(de::<VaultId>(body)),
        // Answers the asking node decodes.
        7 => drop(de::<Vec<bool>>(body)),
        8 => drop(de::<NodeDigests>(body)),
        9 => drop(de::<Vec<Listed>>(body)),
        10 => drop(de::<PushReport>(body)),
        11 => drop(de::<Vec<Swept>>(body)),
        12 => drop(de::<Vec<ChunkId>>(body)),
        13 => drop(de::<Usage>(body)),
        _ => drop(de::<()>(body)),
    }
});
