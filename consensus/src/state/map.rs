//! The ordered map every collection of the state is kept in.
//!
//! Readers hold an `Arc` of the applied state while the next apply changes
//! a copy of it (`Arc::make_mut`). With `BTreeMap`s each such apply
//! deep-copied the whole state: at two million accounts malloc alone was
//! about a third of a loaded leader's CPU. This map is persistent (structure-sharing, [`imbl::OrdMap`]):
//! a clone is O(1) and an update copies one path.
//!
//! It encodes exactly as a `BTreeMap` does (a map, in key order), so the
//! formats and golden fixtures are unchanged. Decoding goes through a
//! `BTreeMap` because imbl's own decoder reserves memory for the length an
//! untrusted input declares.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A persistent ordered map; derefs to [`imbl::OrdMap`] for its API.
#[derive(Clone, PartialEq, Eq)]
pub struct Map<K: Ord + Clone, V: Clone>(imbl::OrdMap<K, V>);

impl<K: Ord + Clone, V: Clone> Map<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self(imbl::OrdMap::new())
    }
}

impl<K: Ord + Clone, V: Clone> Default for Map<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone + fmt::Debug, V: Clone + fmt::Debug> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Ord + Clone, V: Clone> Deref for Map<K, V> {
    type Target = imbl::OrdMap<K, V>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K: Ord + Clone, V: Clone> DerefMut for Map<K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<K: Ord + Clone, V: Clone> FromIterator<(K, V)> for Map<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<K: Ord + Clone, V: Clone> IntoIterator for Map<K, V> {
    type Item = (K, V);
    type IntoIter = imbl::ordmap::ConsumingIter<K, V, imbl::shared_ptr::DefaultSharedPtr>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, K: Ord + Clone, V: Clone> IntoIterator for &'a Map<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = imbl::ordmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> Serialize for Map<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de, K, V> Deserialize<'de> for Map<K, V>
where
    K: Ord + Clone + Deserialize<'de>,
    V: Clone + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<K, V>::deserialize(d)?.into_iter().collect())
    }
}

/// The id-keyed serde adapters read and build these as they do `BTreeMap`s.
impl<K: Ord + Clone, V: Clone> crate::ids::IdMap<K, V> for Map<K, V> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_a_btree_map_does() {
        let pairs = [(3u32, "c".to_string()), (1, "a".into()), (2, "b".into())];
        let tree: BTreeMap<u32, String> = pairs.iter().cloned().collect();
        let map: Map<u32, String> = pairs.iter().cloned().collect();
        let bytes = bincode::serialize(&map).unwrap();
        assert_eq!(bytes, bincode::serialize(&tree).unwrap());
        let back: Map<u32, String> = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn a_huge_declared_length_is_an_error_not_an_allocation() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend([1, 0, 0, 0]);
        assert!(bincode::deserialize::<Map<u32, u32>>(&bytes).is_err());
    }

    #[test]
    fn a_clone_shares_and_an_update_does_not_leak_into_it() {
        let mut a: Map<u32, u32> = (0..1000).map(|i| (i, i)).collect();
        let b = a.clone();
        a.insert(5, 50);
        a.remove(&6);
        assert_eq!(b.get(&5), Some(&5));
        assert_eq!(b.get(&6), Some(&6));
        assert_eq!((a.get(&5), a.get(&6)), (Some(&50), None));
    }
}
