//! A small bounded map shared between threads, for answers that are costly
//! to compute and asked for again and again (parsed user agents, decoded
//! database records).
//!
//! Sharded `Mutex<HashMap>`s: threads asking about different keys rarely
//! wait for each other, and an uncontended lock costs a few nanoseconds. A
//! shard that is full is cleared before the next insert. That forgets some
//! hot entries now and then, but they come back at the cost of one miss
//! each, and it needs no bookkeeping on hits; an LRU would pay on every call
//! to save a few misses.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;

const SHARDS: usize = 16;

pub(crate) struct BoundedCache<K, V> {
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, V, RandomState>>]>,
    shard_capacity: usize,
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    /// A cache of at most `capacity` entries (rounded up to a multiple of
    /// the shard count).
    pub(crate) fn new(capacity: usize) -> Self {
        let hasher = RandomState::default();
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(HashMap::with_hasher(hasher.clone())))
            .collect();
        BoundedCache {
            hasher,
            shards,
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V, RandomState>> {
        let index = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // Every change to a shard is a single map call, so a panic elsewhere
        // while the lock was held cannot have left it half-written.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).get(key).cloned()
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        let mut shard = self.shard(&key);
        if shard.len() >= self.shard_capacity && !shard.contains_key(&key) {
            shard.clear();
        }
        shard.insert(key, value);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_capacity() {
        let cache = BoundedCache::<String, usize>::new(64);
        for i in 0..1_000 {
            cache.insert(format!("key {i}"), i);
            assert!(cache.len() <= 64, "{} entries after {i}", cache.len());
        }
        cache.insert("kept".to_string(), 7);
        assert_eq!(cache.get("kept"), Some(7));
        assert_eq!(cache.get("never inserted"), None);
    }
}
