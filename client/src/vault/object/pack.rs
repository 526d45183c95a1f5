//! Packs and their indexes: the cost-aware layout of an object vault.
//!
//! A metered service charges per request and per object, so sealed blobs
//! (data chunks and trees alike) travel in packs of about [`PACK_BYTES`]
//! (as restic does): one PUT per pack instead of one per chunk. Each pack
//! `packs/<hh>/<name>` has an index object `index/<name>` listing its
//! blobs; the pack is written before its index, so an index only ever
//! names a pack that is stored.
//!
//! Index format 1 (all integers little-endian):
//!
//! ```text
//! "CAIRNIX1" | count u32 | count × (chunk id [32] | offset u64 | length u32)
//!            | BLAKE3 of everything before [32]
//! ```
//!
//! The trailing hash lets a cached copy be verified before it is trusted
//! (a torn or damaged cache file is refetched, never used). The index is
//! not sealed: it holds ids, offsets and lengths, which the service sees
//! anyway; a forged index leads to blobs that fail their AEAD check.
//!
//! Everything here is pure: encoding, decoding and the repack plan of a
//! prune ([`plan_sweep`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use cairn_proto::ChunkId;

use crate::error::{Error, Result};

/// A pack closes once it holds this many sealed bytes.
pub const PACK_BYTES: usize = 16 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"CAIRNIX1";
const ENTRY: usize = ChunkId::LEN + 8 + 4;
const HASH: usize = 32;

/// Where a blob is: its pack, offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack's name (BLAKE3 of its bytes).
    pub pack: PackName,
    /// Offset of the sealed blob in the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub len: u32,
}

/// A pack's name: the BLAKE3 hash of its bytes (so a pack is immutable and
/// two devices writing the same bytes write the same object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackName(pub [u8; 32]);

impl PackName {
    /// The name of a pack holding `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Parses the lower-case hex form (an object's file name).
    pub fn parse(hex_name: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_name, &mut out).ok()?;
        Some(Self(out))
    }

    /// The pack object's key below the vault's prefix (fanned out by the
    /// first byte, which keeps SFTP directories small).
    pub fn pack_key(&self) -> String {
        let h = hex::encode(self.0);
        format!("packs/{}/{h}", &h[..2])
    }

    /// The index object's key below the vault's prefix.
    pub fn index_key(&self) -> String {
        format!("index/{}", hex::encode(self.0))
    }
}

/// One blob of a pack, as its index lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The chunk.
    pub id: ChunkId,
    /// Offset in the pack.
    pub offset: u64,
    /// Sealed length.
    pub len: u32,
}

/// A pack being filled: the concatenated blobs and their entries.
#[derive(Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

impl PackBuilder {
    /// Appends a sealed blob.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a blob of 4 GiB or more (chunks are far
    /// smaller; the index keeps lengths in 32 bits).
    pub fn push(&mut self, id: ChunkId, sealed: &[u8]) -> Result<()> {
        let len = u32::try_from(sealed.len())
            .map_err(|_| Error::Invalid(format!("blob {id} is too large for a pack")))?;
        self.entries.push(Entry {
            id,
            offset: self.bytes.len() as u64,
            len,
        });
        self.bytes.extend_from_slice(sealed);
        Ok(())
    }

    /// Sealed bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished pack: its name, bytes and encoded index.
    pub fn finish(self) -> Finished {
        let name = PackName::of(&self.bytes);
        Finished {
            name,
            index: encode_index(&self.entries),
            bytes: self.bytes,
            entries: self.entries,
        }
    }
}

/// A pack ready to upload.
pub struct Finished {
    /// Its name.
    pub name: PackName,
    /// The pack's bytes.
    pub bytes: Vec<u8>,
    /// The encoded index.
    pub index: Vec<u8>,
    /// The entries the index lists.
    pub entries: Vec<Entry>,
}

/// Encodes an index (format 1).
pub fn encode_index(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + entries.len() * ENTRY + HASH);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(e.id.as_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// Decodes and verifies an index.
///
/// # Errors
///
/// [`Error::Integrity`] when the bytes are not a whole, undamaged index.
pub fn decode_index(bytes: &[u8]) -> Result<Vec<Entry>> {
    let bad = |why: &str| Error::Integrity(format!("pack index: {why}"));
    if bytes.len() < MAGIC.len() + 4 + HASH || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad("not an index of format 1"));
    }
    let (body, hash) = bytes.split_at(bytes.len() - HASH);
    if blake3::hash(body).as_bytes() != hash {
        return Err(bad("checksum mismatch"));
    }
    let count = u32::from_le_bytes(body[8..12].try_into().map_err(|_| bad("short"))?) as usize;
    let rest = &body[12..];
    if rest.len() != count.saturating_mul(ENTRY) {
        return Err(bad("length does not match the entry count"));
    }
    Ok(rest
        .chunks_exact(ENTRY)
        .map(|e| {
            let (id, tail) = e.split_at(ChunkId::LEN);
            let (offset, len) = tail.split_at(8);
            Entry {
                id: ChunkId::from_slice(id).unwrap_or_default(),
                offset: u64::from_le_bytes(offset.try_into().unwrap_or_default()),
                len: u32::from_le_bytes(len.try_into().unwrap_or_default()),
            }
        })
        .collect())
}

/// The blobs of every pack, as loaded from the indexes.
#[derive(Default)]
pub struct Index {
    packs: BTreeMap<PackName, Vec<Entry>>,
    by_id: HashMap<ChunkId, Location>,
}

impl Index {
    /// Adds (or replaces) the entries of pack `name`.
    pub fn insert(&mut self, name: PackName, entries: Vec<Entry>) {
        for e in &entries {
            self.by_id.insert(
                e.id,
                Location {
                    pack: name,
                    offset: e.offset,
                    len: e.len,
                },
            );
        }
        self.packs.insert(name, entries);
    }

    /// Forgets pack `name` (deleted or repacked); its chunks stay
    /// findable where another pack also holds them.
    pub fn remove(&mut self, name: &PackName) {
        let Some(entries) = self.packs.remove(name) else {
            return;
        };
        for e in entries {
            if self.by_id.get(&e.id).is_some_and(|l| l.pack == *name) {
                self.by_id.remove(&e.id);
                if let Some(other) = self.packs.iter().find_map(|(n, es)| {
                    es.iter().find(|x| x.id == e.id).map(|x| Location {
                        pack: *n,
                        offset: x.offset,
                        len: x.len,
                    })
                }) {
                    self.by_id.insert(e.id, other);
                }
            }
        }
    }

    /// Where chunk `id` is.
    pub fn get(&self, id: &ChunkId) -> Option<Location> {
        self.by_id.get(id).copied()
    }

    /// Whether pack `name` is known.
    pub fn has_pack(&self, name: &PackName) -> bool {
        self.packs.contains_key(name)
    }

    /// The known packs.
    pub fn pack_names(&self) -> impl Iterator<Item = &PackName> {
        self.packs.keys()
    }

    /// Every stored chunk with its sealed length, in id order.
    pub fn chunks(&self) -> Vec<(ChunkId, u64)> {
        let mut all: Vec<_> = self
            .by_id
            .iter()
            .map(|(id, l)| (*id, u64::from(l.len)))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// The entries of each pack (for a prune's plan).
    pub fn packs(&self) -> &BTreeMap<PackName, Vec<Entry>> {
        &self.packs
    }
}

/// What a prune does to the packs, given the chunks to delete.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Packs holding only deleted chunks: removed outright.
    pub drop: Vec<PackName>,
    /// Packs holding some deleted chunks: their live blobs are written to
    /// new packs, then the old pack is removed.
    pub repack: Vec<(PackName, Vec<Entry>)>,
    /// Chunks that will be gone (each id once).
    pub deleted: u64,
}

/// Plans a sweep of `dead` over `packs` (pure). A chunk held by several
/// packs (two devices uploaded it at once) is deleted from all of them;
/// a live chunk is kept in every pack that holds it until that pack is
/// repacked, when it is written once.
pub fn plan_sweep(packs: &BTreeMap<PackName, Vec<Entry>>, dead: &HashSet<ChunkId>) -> Sweep {
    let mut sweep = Sweep::default();
    let mut gone = HashSet::new();
    for (name, entries) in packs {
        let (dying, live): (Vec<&Entry>, Vec<&Entry>) =
            entries.iter().partition(|e| dead.contains(&e.id));
        if dying.is_empty() {
            continue;
        }
        gone.extend(dying.iter().map(|e| e.id));
        if live.is_empty() {
            sweep.drop.push(*name);
        } else {
            sweep
                .repack
                .push((*name, live.into_iter().copied().collect()));
        }
    }
    sweep.deleted = gone.len() as u64;
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    /// Golden fixture: an index of format 1 as this format's first build
    /// wrote it (docs/FORMATS.md); it must still decode, and encoding its
    /// entries must give the same bytes.
    #[test]
    fn golden_index_v1_decodes() {
        let golden = include_bytes!("../../../tests/fixtures/object-index-v1.bin");
        let entries = decode_index(golden).unwrap();
        let want = vec![
            Entry {
                id: id(1),
                offset: 0,
                len: 1000,
            },
            Entry {
                id: id(2),
                offset: 1000,
                len: 70_000,
            },
            Entry {
                id: id(3),
                offset: 71_000,
                len: 5,
            },
        ];
        assert_eq!(entries, want);
        assert_eq!(encode_index(&want), golden.to_vec());
    }

    #[test]
    fn an_index_names_its_blobs_and_refuses_damage() {
        let mut b = PackBuilder::default();
        b.push(id(1), b"first").unwrap();
        b.push(id(2), b"second blob").unwrap();
        let done = b.finish();
        assert_eq!(done.name, PackName::of(&done.bytes));
        let entries = decode_index(&done.index).unwrap();
        assert_eq!(entries, done.entries);
        let second = entries[1];
        let at = second.offset as usize;
        assert_eq!(&done.bytes[at..at + second.len as usize], b"second blob");
        for cut in [0, 8, done.index.len() - 1] {
            assert!(decode_index(&done.index[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = done.index.clone();
        flipped[14] ^= 1;
        assert!(matches!(decode_index(&flipped), Err(Error::Integrity(_))));
        assert_eq!(PackName::parse(&hex::encode(done.name.0)), Some(done.name));
        assert!(done.name.pack_key().starts_with("packs/"));
    }

    #[test]
    fn a_sweep_drops_dead_packs_and_repacks_mixed_ones() {
        let e = |n: u8, offset: u64| Entry {
            id: id(n),
            offset,
            len: 10,
        };
        let (a, b, c) = (PackName([1; 32]), PackName([2; 32]), PackName([3; 32]));
        let packs = BTreeMap::from([
            (a, vec![e(1, 0), e(2, 10)]),
            (b, vec![e(3, 0), e(4, 10)]),
            // Chunk 1 twice: uploaded by two devices at once.
            (c, vec![e(5, 0), e(1, 10)]),
        ]);
        let dead = HashSet::from([id(1), id(2), id(4)]);
        let sweep = plan_sweep(&packs, &dead);
        assert_eq!(sweep.drop, vec![a]);
        assert_eq!(sweep.repack, vec![(b, vec![e(3, 0)]), (c, vec![e(5, 0)])]);
        assert_eq!(sweep.deleted, 3);
        assert_eq!(plan_sweep(&packs, &HashSet::new()), Sweep::default());
    }

    #[test]
    fn removing_a_pack_keeps_chunks_another_pack_holds() {
        let mut index = Index::default();
        let (a, b) = (PackName([1; 32]), PackName([2; 32]));
        let e = |n: u8| Entry {
            id: id(n),
            offset: 0,
            len: 1,
        };
        index.insert(a, vec![e(1), e(2)]);
        index.insert(b, vec![e(2)]);
        index.remove(&b);
        assert_eq!(index.get(&id(2)).map(|l| l.pack), Some(a));
        index.insert(b, vec![e(2)]);
        index.remove(&a);
        assert_eq!(index.get(&id(2)).map(|l| l.pack), Some(b));
        assert_eq!(index.get(&id(1)), None);
        assert_eq!(index.chunks(), vec![(id(2), 1)]);
    }

    proptest! {
        #[test]
        fn indexes_round_trip(blobs in proptest::collection::vec(
            (any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..40)) {
            let mut b = PackBuilder::default();
            for (i, bytes) in &blobs {
                b.push(ChunkId(*i), bytes).unwrap();
            }
            let done = b.finish();
            let back = decode_index(&done.index).unwrap();
            prop_assert_eq!(back.len(), blobs.len());
            for (e, (i, bytes)) in back.iter().zip(&blobs) {
                prop_assert_eq!(e.id, ChunkId(*i));
                let at = e.offset as usize;
                prop_assert_eq!(&done.bytes[at..at + e.len as usize], bytes.as_slice());
            }
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_index(&bytes);
        }
    }
}
