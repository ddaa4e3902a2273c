//! Leases, beside the keyspace: the replicated part ([`Leases`]: which leases exist, their
//! granted TTL and the keys attached to them) and the leader's clock ([`Deadlines`]: when
//! each lease runs out, kept only by the leader and never replicated, as etcd's lessor does).
//!
//! The state machine composes them with the keyspace: a put with a lease attaches the key
//! ([`Leases::track`] reads every write's changes), a revocation deletes the attached keys
//! in one write ([`Keyspace::delete_keys`]). Expiry is the leader's decision: when a
//! deadline passes it proposes the revocation through the log. A new leader starts every
//! lease's clock afresh at its full TTL, so no lease expires early across a leader change.

use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};

use crate::keyspace::{Change, Keyspace};
use crate::write::WriteTxn;
use crate::{Error, Result};

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A lease as every member holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Granted TTL in seconds.
    pub ttl: i64,
    /// Keys attached to it now.
    pub keys: imbl::OrdSet<Bytes>,
}

/// The replicated leases. Persistent maps, so cloning for a snapshot is O(1).
#[derive(Debug, Clone, Default)]
pub struct Leases {
    leases: imbl::OrdMap<i64, Lease>,
}

impl Leases {
    /// No leases.
    pub fn new() -> Leases {
        Leases::default()
    }

    /// Whether lease `id` exists.
    pub fn exists(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// Lease `id`, if it exists.
    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// Every lease, by id.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Lease)> {
        self.leases.iter().map(|(id, l)| (*id, l))
    }

    /// How many leases exist.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// True when none does.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Grants lease `id` (positive, chosen by the proposer) for `ttl` seconds.
    pub fn grant(&mut self, id: i64, ttl: i64) -> Result<()> {
        if self.leases.contains_key(&id) {
            return Err(Error::LeaseExists);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTtlTooLarge);
        }
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: imbl::OrdSet::new(),
            },
        );
        Ok(())
    }

    /// Removes lease `id`; returns it (its keys are the caller's to delete).
    pub fn revoke(&mut self, id: i64) -> Result<Lease> {
        self.leases.remove(&id).ok_or(Error::LeaseNotFound)
    }

    /// Follows a write's changes: a key written with a lease is attached to it, and detached
    /// from the lease it had before (a put without a lease, or a deletion, detaches it).
    pub fn track(&mut self, changes: &[Change]) {
        for c in changes {
            let key = c
                .event
                .kv
                .as_ref()
                .map(|kv| kv.key.clone())
                .unwrap_or_default();
            let before = c.event.prev_kv.as_ref().map_or(0, |kv| kv.lease);
            let after = c.event.kv.as_ref().map_or(0, |kv| kv.lease);
            if before == after {
                continue;
            }
            if let Some(l) = self.leases.get_mut(&before) {
                l.keys.remove(&key);
            }
            if let Some(l) = self.leases.get_mut(&after) {
                l.keys.insert(key);
            }
        }
    }

    /// Rebuilds the key sets from the keyspace (after restoring both from a snapshot).
    pub fn attach_from(&mut self, keyspace: &Keyspace) {
        for (key, versions) in keyspace.keys.iter() {
            let Some(v) = versions.last().filter(|v| v.is_put()) else {
                continue;
            };
            if let Some(l) = self.leases.get_mut(&v.lease) {
                l.keys.insert(Bytes::copy_from_slice(key));
            }
        }
    }

    /// Snapshot records: one per lease, `id: i64 LE | ttl: i64 LE` (keys are rebuilt from the
    /// keyspace).
    pub fn each_record<E>(
        &self,
        mut record: impl FnMut(&dyn Fn(&mut Vec<u8>)) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for (id, lease) in self.leases.iter() {
            record(&|b: &mut Vec<u8>| {
                b.extend_from_slice(&id.to_le_bytes());
                b.extend_from_slice(&lease.ttl.to_le_bytes());
            })?;
        }
        Ok(())
    }

    /// Decodes one record at the start of `data`; returns the bytes it took.
    pub fn read_record(&mut self, data: &[u8]) -> std::result::Result<usize, crate::DecodeError> {
        let (Some(id), Some(ttl)) = (data.get(..8), data.get(8..16)) else {
            return Err(crate::DecodeError("a truncated lease record".into()));
        };
        let id = i64::from_le_bytes(id.try_into().expect("8 bytes"));
        let ttl = i64::from_le_bytes(ttl.try_into().expect("8 bytes"));
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: imbl::OrdSet::new(),
            },
        );
        Ok(16)
    }
}

impl Keyspace {
    /// Deletes `keys` (those that exist) in one write: one revision, increasing
    /// sub-revisions. Returns the changes.
    pub fn delete_keys(&mut self, keys: impl IntoIterator<Item = Bytes>) -> Vec<Change> {
        let mut txn = WriteTxn::new(self);
        for key in keys {
            txn.delete_range(&key, &[]);
        }
        txn.finish()
    }
}

/// When each lease runs out, as the leader counts (nanoseconds on any clock the caller
/// chooses, as long as it is always the same one).
#[derive(Debug, Default)]
pub struct Deadlines {
    by_id: HashMap<i64, i64>,
    by_time: BTreeSet<(i64, i64)>,
}

impl Deadlines {
    /// No deadlines.
    pub fn new() -> Deadlines {
        Deadlines::default()
    }

    /// Lease `id` runs out at `at`.
    pub fn set(&mut self, id: i64, at: i64) {
        if let Some(old) = self.by_id.insert(id, at) {
            self.by_time.remove(&(old, id));
        }
        self.by_time.insert((at, id));
    }

    /// Forgets lease `id`.
    pub fn remove(&mut self, id: i64) {
        if let Some(old) = self.by_id.remove(&id) {
            self.by_time.remove(&(old, id));
        }
    }

    /// Forgets every lease (no longer the leader).
    pub fn clear(&mut self) {
        self.by_id.clear();
        self.by_time.clear();
    }

    /// When lease `id` runs out, if it is counted.
    pub fn get(&self, id: i64) -> Option<i64> {
        self.by_id.get(&id).copied()
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Up to `max` leases whose deadline is at or before `now`, earliest first; they are
    /// forgotten (the caller proposes their revocation).
    pub fn take_due(&mut self, now: i64, max: usize) -> Vec<i64> {
        let due: Vec<(i64, i64)> = self
            .by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(max)
            .copied()
            .collect();
        for (at, id) in &due {
            self.by_time.remove(&(*at, *id));
            self.by_id.remove(id);
        }
        due.into_iter().map(|(_, id)| id).collect()
    }
}
