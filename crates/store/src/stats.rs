//! Operation counters: the seed's four (`/v1/stats`) and etcd v2's store counters
//! (`/v2/stats/store`). Writes are counted as they are applied, so every member agrees on
//! them; reads are counted (atomically, under the store's read lock) by the member that served
//! them. Not here: raft or transport statistics (the server's `raft::Status`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::event::Action;

/// Operation counters (`/v1/stats`, `/v2/stats/store`). Reads count on the member that
/// served them; the others count commands applied, so they agree on every member.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// GETs served (file reads and listings).
    #[serde(with = "atomic")]
    pub gets: AtomicU64,
    /// Set commands applied.
    pub sets: u64,
    /// Delete commands applied.
    pub deletes: u64,
    /// Test-and-set commands applied.
    #[serde(rename = "testAndSets")]
    pub test_and_sets: u64,
    /// etcd v2's store counters.
    #[serde(default)]
    pub v2: V2Stats,
}

/// etcd v2's store counters, in its JSON names.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2Stats {
    /// Successful reads.
    #[serde(with = "atomic", default)]
    pub gets_success: AtomicU64,
    /// Failed reads.
    #[serde(with = "atomic", default)]
    pub gets_fail: AtomicU64,
    /// Successful sets.
    pub sets_success: u64,
    /// Failed sets.
    pub sets_fail: u64,
    /// Successful deletes.
    pub delete_success: u64,
    /// Failed deletes.
    pub delete_fail: u64,
    /// Successful updates.
    pub update_success: u64,
    /// Failed updates.
    pub update_fail: u64,
    /// Successful creates.
    pub create_success: u64,
    /// Failed creates.
    pub create_fail: u64,
    /// Successful compare-and-swaps.
    pub compare_and_swap_success: u64,
    /// Failed compare-and-swaps.
    pub compare_and_swap_fail: u64,
    /// Successful compare-and-deletes.
    pub compare_and_delete_success: u64,
    /// Failed compare-and-deletes.
    pub compare_and_delete_fail: u64,
    /// Expired nodes.
    pub expire_count: u64,
}

impl Stats {
    /// A copy of the counters as they are now.
    pub(crate) fn copy(&self) -> Stats {
        Stats {
            gets: AtomicU64::new(self.gets.load(Ordering::Relaxed)),
            sets: self.sets,
            deletes: self.deletes,
            test_and_sets: self.test_and_sets,
            v2: self.v2.copy(),
        }
    }
}

impl V2Stats {
    pub(crate) fn count(&mut self, action: Action, ok: bool) {
        let (success, fail) = match action {
            Action::Set => (&mut self.sets_success, &mut self.sets_fail),
            Action::Delete => (&mut self.delete_success, &mut self.delete_fail),
            Action::Update => (&mut self.update_success, &mut self.update_fail),
            Action::Create => (&mut self.create_success, &mut self.create_fail),
            Action::CompareAndSwap => (
                &mut self.compare_and_swap_success,
                &mut self.compare_and_swap_fail,
            ),
            Action::CompareAndDelete => (
                &mut self.compare_and_delete_success,
                &mut self.compare_and_delete_fail,
            ),
            Action::Expire => {
                self.expire_count += u64::from(ok);
                return;
            }
            Action::Get => {
                self.count_get(ok);
                return;
            }
        };
        if ok {
            *success += 1;
        } else {
            *fail += 1;
        }
    }

    pub(crate) fn count_get(&self, ok: bool) {
        let c = if ok {
            &self.gets_success
        } else {
            &self.gets_fail
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn copy(&self) -> V2Stats {
        V2Stats {
            gets_success: AtomicU64::new(self.gets_success.load(Ordering::Relaxed)),
            gets_fail: AtomicU64::new(self.gets_fail.load(Ordering::Relaxed)),
            ..*self
        }
    }
}

mod atomic {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(super) fn serialize<S: serde::Serializer>(v: &AtomicU64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.load(Ordering::Relaxed))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<AtomicU64, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(AtomicU64::new)
    }
}
