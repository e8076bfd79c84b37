//! The accounts the engine keeps, shared copy-on-write with snapshots.
//!
//! A periodic snapshot copies the engine on its thread and serializes the
//! copy elsewhere. With every account in one map of owned states, copying
//! the accounts alone took 236 ms at 100,000 sellers, during which no event
//! was decided, and it grew with the state.
//!
//! Here the accounts live in a [`ShardedMap`] and each account's state is
//! behind an [`Arc`] too: copying the table copies a few hundred pointers.
//! The work moves to the first write after the copy, and it is cut small:
//! the first write into a shard that a snapshot still holds copies that
//! shard's keys and pointers (not the states), and the first write to an
//! account copies that one account. When no snapshot holds the table,
//! writes change it in place.

use std::sync::Arc;

use crate::sharded_map::ShardedMap;
use crate::state::AccountState;

/// Accounts by id, each state behind its own [`Arc`].
#[derive(Clone, Default, Debug)]
pub(crate) struct AccountTable(ShardedMap<String, Arc<AccountState>>);

impl AccountTable {
    /// A table sized for `accounts` in all.
    pub(crate) fn with_capacity(accounts: usize) -> AccountTable {
        AccountTable(ShardedMap::with_capacity(accounts))
    }

    pub(crate) fn get(&self, account_id: &str) -> Option<&AccountState> {
        self.0.get(account_id).map(|a| &**a)
    }

    /// The account's state to change; copied first if a snapshot holds it.
    pub(crate) fn get_mut(&mut self, account_id: &str) -> Option<&mut AccountState> {
        self.0.get_mut(account_id).map(Arc::make_mut)
    }

    /// The account's state to change, made by `new` if it has none yet.
    pub(crate) fn get_or_insert_with(
        &mut self,
        account_id: &str,
        new: impl FnOnce() -> AccountState,
    ) -> &mut AccountState {
        Arc::make_mut(self.0.get_or_insert_with(account_id, || Arc::new(new())))
    }

    /// Adds a restored account, replacing one of the same id.
    pub(crate) fn insert(&mut self, state: AccountState) {
        self.0.insert(state.account_id.clone(), Arc::new(state));
    }

    /// Every account, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &AccountState> {
        self.0.values().map(|a| &**a)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, at: i64) -> AccountState {
        AccountState::new(id, at)
    }

    #[test]
    fn a_copy_keeps_what_it_saw_while_the_original_changes() {
        let mut table = AccountTable::default();
        for i in 0..2_000 {
            table.get_or_insert_with(&format!("acct-{i}"), || state(&format!("acct-{i}"), 1));
        }
        let copy = table.clone();
        // Change one, add one, and restore one over an existing id.
        table.get_mut("acct-7").expect("present").last_seen.0 = 99;
        table.get_or_insert_with("acct-new", || state("acct-new", 5));
        table.insert(state("acct-8", 42));

        assert_eq!(copy.len(), 2_000);
        assert_eq!(table.len(), 2_001);
        assert_eq!(copy.get("acct-7").expect("in the copy").last_seen.0, 1);
        assert_eq!(table.get("acct-7").expect("in the table").last_seen.0, 99);
        assert!(copy.get("acct-new").is_none());
        assert_eq!(copy.get("acct-8").expect("in the copy").last_seen.0, 1);
        assert_eq!(table.get("acct-8").expect("in the table").last_seen.0, 42);
        // Accounts nobody wrote are shared, not copied.
        let shared = |id: &str| {
            let (Some(mine), Some(theirs)) = (table.0.get(id), copy.0.get(id)) else {
                return false;
            };
            Arc::ptr_eq(mine, theirs)
        };
        assert!(shared("acct-9"));
        assert!(!shared("acct-7"));
    }

    #[test]
    fn values_lists_every_account_once() {
        let mut table = AccountTable::with_capacity(10_000);
        for i in 0..10_000 {
            table.insert(state(&format!("s{i}"), i));
        }
        table.insert(state("s5", 0));
        let mut ids: Vec<&str> = table.values().map(|s| s.account_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(table.len(), 10_000);
    }
}
