//! A hash map split into shards, each shared copy-on-write.
//!
//! The engine's big maps (accounts, holds, identifiers, destinations) had
//! two costs that grew with the state and fell on one unlucky event each:
//!
//! - **Growth.** A single map doubles when full and rehashes every entry in
//!   the call that crossed the line: up to 31 ms for the payout that grew
//!   the hold book at 100,000 sellers (BENCHMARKS.md), more at ten million.
//! - **Snapshots.** A periodic snapshot copies the engine on its thread and
//!   serializes the copy elsewhere; copying a map of owned entries stalled
//!   every event behind it for as long as the copy took.
//!
//! A [`ShardedMap`] keeps [`SHARDS`] small maps, each behind an [`Arc`]. A
//! shard grows on its own, so one insert rehashes at most a shard's share
//! of the entries. Cloning the map clones [`SHARDS`] pointers; the first
//! write into a shard that a clone still shares copies that shard only.
//! When nothing else holds a shard, writes change it in place.
//!
//! A key is hashed once per call. Its shard comes from bits 48–55 of the
//! hash, which a shard's table uses for nothing: it places a key by the low
//! bits (a shard would need 2^48 buckets to reach bit 48) and tags it with
//! the top seven. So the keys of one shard are still spread over that
//! shard's buckets and tags like any others.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// How many shards a map is split into. At ten million entries a shard
/// holds about 40,000: the most one insert rehashes, and the most the first
/// write after a snapshot copies.
pub(crate) const SHARDS: usize = 256;

/// Where the shard index sits in a key's hash (see the module docs).
const SHARD_SHIFT: u32 = 48;

type Shard<K, V> = HashTable<(K, V)>;

#[derive(Clone)]
pub(crate) struct ShardedMap<K, V> {
    /// Seeded per process, as the standard maps are.
    hasher: RandomState,
    shards: Box<[Arc<Shard<K, V>>]>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap::with_capacity(0)
    }
}

impl<K, V> std::fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedMap")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<K, V> ShardedMap<K, V> {
    /// A map sized for `entries` in all.
    pub(crate) fn with_capacity(entries: usize) -> ShardedMap<K, V> {
        let per_shard = entries.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| Arc::new(HashTable::with_capacity(per_shard)))
            .collect();
        ShardedMap {
            hasher: RandomState::default(),
            shards,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(k, v)| (k, v)))
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards
            .iter()
            .flat_map(|shard| shard.iter().map(|(_, v)| v))
    }
}

fn shard_of(hash: u64) -> usize {
    ((hash >> SHARD_SHIFT) as usize) & (SHARDS - 1)
}

impl<K: Hash + Eq + Clone, V: Clone> ShardedMap<K, V> {
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.shards[shard_of(hash)]
            .find(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The key's hash and its shard, ready to write, if the key is there.
    /// Looked up before `make_mut`: a miss must not copy a shared shard.
    fn shard_holding<Q>(&mut self, key: &Q) -> Option<(u64, &mut Shard<K, V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = &mut self.shards[shard_of(hash)];
        shard.find(hash, |(k, _)| k.borrow() == key)?;
        Some((hash, Arc::make_mut(shard)))
    }

    /// The value to change; its shard is copied first if a clone shares it.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_holding(key)?;
        shard
            .find_mut(hash, |(k, _)| k.borrow() == key)
            .map(|(_, v)| v)
    }

    /// The value under `key`, made by `new` if there is none yet. The key
    /// is only copied into the map when it is absent.
    pub(crate) fn get_or_insert_with<Q>(&mut self, key: &Q, new: impl FnOnce() -> V) -> &mut V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hash(key);
        let hasher = &self.hasher;
        let shard = Arc::make_mut(&mut self.shards[shard_of(hash)]);
        let entry = shard.entry(
            hash,
            |(k, _)| k.borrow() == key,
            |(k, _)| hasher.hash_one(k),
        );
        let occupied = match entry {
            hashbrown::hash_table::Entry::Occupied(occupied) => occupied,
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                self.len += 1;
                vacant.insert((key.to_owned(), new()))
            }
        };
        &mut occupied.into_mut().1
    }

    /// Inserts, returning the value the key had.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        let hasher = &self.hasher;
        let shard = Arc::make_mut(&mut self.shards[shard_of(hash)]);
        match shard.entry(hash, |(k, _)| *k == key, |(k, _)| hasher.hash_one(k)) {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                Some(std::mem::replace(&mut occupied.get_mut().1, value))
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert((key, value));
                self.len += 1;
                None
            }
        }
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, shard) = self.shard_holding(key)?;
        let ((_, value), _) = shard
            .find_entry(hash, |(k, _)| k.borrow() == key)
            .ok()?
            .remove();
        self.len -= 1;
        Some(value)
    }

    /// Keeps the entries `keep` says to keep. Touches every shard: for the
    /// rare sweeps of a full map, not for the per-event path.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut len = 0;
        for shard in self.shards.iter_mut() {
            let shard = Arc::make_mut(shard);
            shard.retain(|(k, v)| keep(k, v));
            len += shard.len();
        }
        self.len = len;
    }
}

impl<K: Hash + Eq + Clone, V: Clone> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let entries = entries.into_iter();
        let mut map = ShardedMap::with_capacity(entries.size_hint().0);
        for (key, value) in entries {
            map.insert(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_keeps_what_it_saw_while_the_original_changes() {
        let mut map: ShardedMap<String, u64> = ShardedMap::default();
        for i in 0..2_000 {
            map.insert(format!("k{i}"), i);
        }
        let copy = map.clone();
        *map.get_mut("k7").expect("present") = 99;
        *map.get_or_insert_with("new", || 5) += 1;
        map.insert("k8".into(), 42);
        assert_eq!(map.remove("k9"), Some(9));
        map.retain(|_, v| *v != 10);

        assert_eq!(copy.len(), 2_000);
        assert_eq!(map.len(), 2_000 - 2 + 1);
        assert_eq!(copy.get("k7"), Some(&7));
        assert_eq!(map.get("k7"), Some(&99));
        assert_eq!(map.get("new"), Some(&6));
        assert_eq!(copy.get("new"), None);
        assert_eq!(copy.get("k8"), Some(&8));
        assert_eq!(map.get("k8"), Some(&42));
        assert_eq!(copy.get("k9"), Some(&9));
        assert!(!map.contains_key("k9") && !map.contains_key("k10"));
        assert_eq!(copy.values().count(), 2_000);
        assert_eq!(map.iter().count(), map.len());
    }

    #[test]
    fn a_miss_copies_no_shared_shard_and_an_untouched_shard_stays_shared() {
        let mut map: ShardedMap<u64, u64> = (0..100).map(|i| (i, i)).collect();
        let copy = map.clone();
        assert!(map.get_mut(&1_000).is_none());
        assert!(map.remove(&1_000).is_none());
        let index = shard_of(map.hash(&1_000u64));
        assert!(Arc::ptr_eq(&map.shards[index], &copy.shards[index]));
        *map.get_mut(&3).expect("present") += 1;
        let written = shard_of(map.hash(&3u64));
        assert!(!Arc::ptr_eq(&map.shards[written], &copy.shards[written]));
        let untouched = (0..SHARDS)
            .find(|i| *i != written)
            .expect("more than one shard");
        assert!(Arc::ptr_eq(&map.shards[untouched], &copy.shards[untouched]));
    }

    #[test]
    fn get_or_insert_with_counts_only_what_it_inserts() {
        let mut map: ShardedMap<u64, Vec<u64>> = ShardedMap::default();
        map.get_or_insert_with(&1, Vec::new).push(1);
        map.get_or_insert_with(&1, Vec::new).push(2);
        map.get_or_insert_with(&2, Vec::new).push(3);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&1), Some(&vec![1, 2]));
    }

    #[test]
    fn no_shard_holds_most_of_the_keys() {
        let map: ShardedMap<u64, ()> = (0..100_000u64).map(|i| (i, ())).collect();
        let largest = map.shards.iter().map(|s| s.len()).max().unwrap_or(0);
        // 390 on average; a skewed hash would put thousands in one.
        assert!(largest < 600, "largest shard holds {largest}");
        assert_eq!(map.len(), 100_000);
    }
}
