//! The identifiers the consensus layer uses (accounts, devices, jobs and
//! client requests live in [`cairn_proto`] beside vault, snapshot and chunk
//! ids), the proposer-chosen clock value [`UnixMillis`], and serde adapters
//! for proto ids inside events and state.
//!
//! The adapters pin the persisted encoding independently of `cairn_proto`'s
//! serde impls: a fixed-width tuple in binary formats (what the golden
//! fixtures hold; proto's own impls now encode the same bytes, an earlier
//! version wrote a length prefix its decoder did not read) and the proto
//! type's hex string in human-readable ones; maps are written as sequences
//! of pairs.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use cairn_proto::{AccountId, DeviceId, JobId, RequestId};

/// A fixed-size byte identifier, so one serde adapter serves every id type.
pub trait FixedId: Sized + Copy {
    /// Length in bytes.
    const LEN: usize;
    /// The raw bytes.
    fn bytes(&self) -> &[u8];
    /// Builds the identifier from exactly [`Self::LEN`] bytes.
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

macro_rules! proto_fixed {
    ($($t:ty),*) => {$(
        impl FixedId for $t {
            const LEN: usize = <$t>::LEN;
            fn bytes(&self) -> &[u8] {
                self.as_bytes()
            }
            fn from_bytes(bytes: &[u8]) -> Option<Self> {
                <$t>::from_slice(bytes)
            }
        }
    )*};
}
proto_fixed!(
    cairn_proto::VaultId,
    cairn_proto::SnapshotId,
    cairn_proto::ChunkId,
    AccountId,
    DeviceId,
    JobId,
    RequestId
);

fn serialize_fixed<T: FixedId, S: Serializer>(id: &T, s: S) -> Result<S::Ok, S::Error> {
    let mut t = s.serialize_tuple(T::LEN)?;
    for b in id.bytes() {
        t.serialize_element(b)?;
    }
    t.end()
}

fn deserialize_fixed<'de, T: FixedId, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: FixedId> Visitor<'de> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{} bytes", T::LEN)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
            let mut buf = [0u8; 64];
            let out = buf
                .get_mut(..T::LEN)
                .ok_or_else(|| de::Error::custom("id too long"))?;
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            T::from_bytes(out).ok_or_else(|| de::Error::invalid_length(T::LEN, &self))
        }
    }
    d.deserialize_tuple(T::LEN, V(std::marker::PhantomData))
}

/// Serde adapter (`#[serde(with = "proto_id")]`) for a `cairn_proto` id
/// field: fixed-width tuple in binary formats, the proto type's hex string in
/// human-readable ones. See the module doc for why.
pub mod proto_id {
    use super::*;

    /// Serializes one id.
    pub fn serialize<T, S>(id: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: FixedId + Serialize,
        S: Serializer,
    {
        if s.is_human_readable() {
            id.serialize(s)
        } else {
            serialize_fixed(id, s)
        }
    }

    /// Deserializes one id.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FixedId + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        if d.is_human_readable() {
            T::deserialize(d)
        } else {
            deserialize_fixed(d)
        }
    }
}

/// Serde adapter for `Option<proto id>` fields.
pub mod proto_id_opt {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(bound(
        serialize = "T: FixedId + Serialize",
        deserialize = "T: FixedId + Deserialize<'de>"
    ))]
    struct W<T>(#[serde(with = "proto_id")] T);

    /// Serializes an optional id.
    pub fn serialize<T, S>(id: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: FixedId + Serialize,
        S: Serializer,
    {
        id.map(W).serialize(s)
    }

    /// Deserializes an optional id.
    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FixedId + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Option::<W<T>>::deserialize(d)?.map(|w| w.0))
    }
}

/// The maps the id-keyed serde adapters below read and build: the events'
/// `BTreeMap`s and the state's persistent maps (which implement it beside
/// their type), which encode alike.
pub trait IdMap<K, V>: Default {
    /// The pairs in key order.
    fn pairs<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a;
    /// Inserts `v` under `k`; whether `k` was already present.
    fn put(&mut self, k: K, v: V) -> bool;
}

impl<K: Ord, V> IdMap<K, V> for BTreeMap<K, V> {
    fn pairs<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)>
    where
        K: 'a,
        V: 'a,
    {
        self.iter()
    }

    fn put(&mut self, k: K, v: V) -> bool {
        self.insert(k, v).is_some()
    }
}

/// Serde adapter for a map keyed by a proto id: encoded as a sequence
/// of `(id, value)` pairs so the key goes through [`proto_id`] too.
pub mod proto_id_map {
    use super::*;

    #[derive(Serialize)]
    #[serde(bound(serialize = "K: FixedId + Serialize, V: Serialize"))]
    struct Pair<'a, K, V>(#[serde(with = "proto_id")] K, &'a V);

    #[derive(Deserialize)]
    #[serde(bound(deserialize = "K: FixedId + Deserialize<'de>, V: Deserialize<'de>"))]
    struct OwnedPair<K, V>(#[serde(with = "proto_id")] K, V);

    /// Serializes the map.
    pub fn serialize<K, V, M, S>(map: &M, s: S) -> Result<S::Ok, S::Error>
    where
        K: FixedId + Serialize,
        V: Serialize,
        M: IdMap<K, V>,
        S: Serializer,
    {
        s.collect_seq(map.pairs().map(|(k, v)| Pair(*k, v)))
    }

    /// Deserializes the map; a repeated key is an error, not a silent overwrite.
    pub fn deserialize<'de, K, V, M, D>(d: D) -> Result<M, D::Error>
    where
        K: FixedId + Ord + Deserialize<'de> + fmt::Debug,
        V: Deserialize<'de>,
        M: IdMap<K, V>,
        D: Deserializer<'de>,
    {
        let pairs = Vec::<OwnedPair<K, V>>::deserialize(d)?;
        let mut map = M::default();
        for OwnedPair(k, v) in pairs {
            if map.put(k, v) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
        }
        Ok(map)
    }
}

/// Serde adapter for a `BTreeMap` keyed by a triple whose first element is
/// a proto id (the item retention overrides, keyed by vault, device and
/// item name): a sequence of `(id, b, c, value)` so the id goes through
/// [`proto_id`] like everywhere else.
pub mod proto_id_triple_map {
    use super::*;

    #[derive(Serialize)]
    #[serde(bound(serialize = "K: FixedId + Serialize, B: Serialize, C: Serialize, V: Serialize"))]
    struct Row<'a, K, B, C, V>(#[serde(with = "proto_id")] K, &'a B, &'a C, &'a V);

    #[derive(Deserialize)]
    #[serde(bound(
        deserialize = "K: FixedId + Deserialize<'de>, B: Deserialize<'de>, C: Deserialize<'de>, V: Deserialize<'de>"
    ))]
    struct OwnedRow<K, B, C, V>(#[serde(with = "proto_id")] K, B, C, V);

    /// Serializes the map.
    pub fn serialize<K, B, C, V, M, S>(map: &M, s: S) -> Result<S::Ok, S::Error>
    where
        K: FixedId + Serialize,
        B: Serialize,
        C: Serialize,
        V: Serialize,
        M: IdMap<(K, B, C), V>,
        S: Serializer,
    {
        s.collect_seq(map.pairs().map(|((k, b, c), v)| Row(*k, b, c, v)))
    }

    /// Deserializes the map; a repeated key is an error, not a silent overwrite.
    pub fn deserialize<'de, K, B, C, V, M, D>(d: D) -> Result<M, D::Error>
    where
        K: FixedId + Ord + Deserialize<'de> + fmt::Debug,
        B: Ord + Deserialize<'de> + fmt::Debug + Clone,
        C: Ord + Deserialize<'de> + fmt::Debug + Clone,
        V: Deserialize<'de>,
        M: IdMap<(K, B, C), V>,
        D: Deserializer<'de>,
    {
        let rows = Vec::<OwnedRow<K, B, C, V>>::deserialize(d)?;
        let mut map = M::default();
        for OwnedRow(k, b, c, v) in rows {
            let key = (k, b.clone(), c.clone());
            if map.put(key, v) {
                return Err(de::Error::custom(format!("duplicate key {:?}", (k, b, c))));
            }
        }
        Ok(map)
    }
}

/// Milliseconds since the Unix epoch, as chosen by the proposer.
///
/// `apply` never reads a clock: every replica must reach the same state from
/// the same log, so the time an event happened travels inside the event.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cairn_proto::VaultId;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "proto_id")]
        vault: VaultId,
        #[serde(with = "proto_id_opt")]
        maybe: Option<VaultId>,
        #[serde(with = "proto_id_map")]
        map: BTreeMap<VaultId, u32>,
        account: AccountId,
        tail: u32,
    }

    fn holder(a: [u8; 16], b: [u8; 16], c: [u8; 16], tail: u32) -> Holder {
        Holder {
            vault: VaultId(a),
            maybe: Some(VaultId(b)),
            map: [(VaultId(c), 7), (VaultId(a), 9)].into_iter().collect(),
            account: AccountId(b),
            tail,
        }
    }

    proptest! {
        /// The adapters round-trip through both the binary and the JSON encoding.
        #[test]
        fn adapters_round_trip(a in any::<[u8; 16]>(), b in any::<[u8; 16]>(), c in any::<[u8; 16]>(), tail in any::<u32>()) {
            let h = holder(a, b, c, tail);
            let bin = bincode::serialize(&h).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&bincode::deserialize::<Holder>(&bin).map_err(|e| TestCaseError::fail(e.to_string()))?, &h);
            let json = serde_json::to_string(&h).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&serde_json::from_str::<Holder>(&json).map_err(|e| TestCaseError::fail(e.to_string()))?, &h);
        }
    }

    #[test]
    fn binary_ids_are_fixed_width() {
        let bin = bincode::serialize(&AccountId([1; 16])).expect("encode");
        assert_eq!(bin, vec![1u8; 16]);
    }

    #[test]
    fn hex_parse_rejects_garbage() {
        assert!("zz".parse::<DeviceId>().is_err());
        let id = DeviceId([0xab; 16]);
        assert_eq!(id.to_hex().parse::<DeviceId>(), Ok(id));
    }

    #[test]
    fn duplicate_map_keys_are_rejected() {
        let json = format!(r#"[["{0}",1],["{0}",2]]"#, "00".repeat(16));
        let mut de = serde_json::Deserializer::from_str(&json);
        let r: Result<BTreeMap<VaultId, u32>, _> = proto_id_map::deserialize(&mut de);
        assert!(r.is_err());
    }
}
