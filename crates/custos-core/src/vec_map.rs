//! A small map kept as a vector sorted by key.
//!
//! Account state holds several maps that stay tiny: money per currency
//! (nearly always one), event counts per type (a handful), the last change
//! per sensitive event type or credential (at most a few). A `BTreeMap`
//! allocates a whole node of eleven slots for its first entry, several
//! hundred bytes per map in every account; a vector holds exactly what it
//! has. Lookups are a binary search, inserts shift the few entries after.
//! It is written and read as a JSON object, as the map it replaces was, so
//! snapshots and API bodies do not change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    /// Inserts an absent key at its place, growing by exactly one entry:
    /// these maps stay small.
    fn insert_new(&mut self, at: usize, key: K, value: V) {
        self.0.reserve_exact(1);
        self.0.insert(at, (key, value));
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.find(key).ok().map(|at| &self.0[at].1)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at].1, value)),
            Err(at) => {
                self.insert_new(at, key, value);
                None
            }
        }
    }

    /// The value of `key`, inserted as `V::default()` if it had none.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let at = match self.find(&key) {
            Ok(at) => at,
            Err(at) => {
                self.insert_new(at, key, V::default());
                at
            }
        };
        &mut self.0[at].1
    }
}

impl<K, V> VecMap<K, V> {
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Ord, V> From<BTreeMap<K, V>> for VecMap<K, V> {
    fn from(map: BTreeMap<K, V>) -> Self {
        VecMap(map.into_iter().collect())
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for VecMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = VecMap::default();
        for (k, v) in entries {
            map.insert(k, v);
        }
        map
    }
}

impl<K: Ord, V> std::ops::Index<&K> for VecMap<K, V> {
    type Output = V;
    /// Panics when the key is absent, as `BTreeMap`'s index does.
    fn index(&self, key: &K) -> &V {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no entry for the key"),
        }
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, K, V> Deserialize<'de> for VecMap<K, V>
where
    K: Ord + Deserialize<'de>,
    V: Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::<K, V>::deserialize(deserializer).map(VecMap::from)
    }
}

#[cfg(test)]
mod tests {
    use super::VecMap;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_as_the_map_it_replaces_and_writes_the_same_json() {
        let mut small: VecMap<u8, u32> = VecMap::default();
        let mut reference: BTreeMap<u8, u32> = BTreeMap::new();
        // A fixed, shuffled sequence of keys with repeats.
        for (i, key) in [7u8, 3, 9, 3, 1, 7, 0, 255, 9, 4].into_iter().enumerate() {
            let value = i as u32;
            assert_eq!(small.insert(key, value), reference.insert(key, value));
            *small.entry_or_default(key.wrapping_add(1)) += 1;
            *reference.entry(key.wrapping_add(1)).or_default() += 1;
            assert_eq!(small.len(), reference.len());
        }
        assert!(small.iter().eq(reference.iter()));
        assert_eq!(small.get(&4), reference.get(&4));
        assert_eq!(small.get(&200), None);
        assert!(small.contains_key(&255) && !small.contains_key(&200));
        let json = serde_json::to_string(&small).unwrap();
        assert_eq!(json, serde_json::to_string(&reference).unwrap());
        let back: VecMap<u8, u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, small);
    }
}
