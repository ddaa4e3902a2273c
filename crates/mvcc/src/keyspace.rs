//! [`Keyspace`]: the state (every key's versions, the current and compacted revisions) and
//! compaction.
//!
//! Invariants: each key's versions are in increasing (main, sub) order and never empty; the
//! newest version of a key is at most the current revision; below the compacted revision a key
//! keeps at most its newest version, and only if that is a put.
//!
//! Memory: a key costs one allocation for its entry (its bytes and its versions beside the
//! handle), its versions one more, and nothing in the set but a pointer; values over
//! [`crate::INLINE_MAX`] bytes live in the [`ValueStore`](crate::ValueStore) when there is one.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::mvccpb::{self, KeyValue};
use crate::value::{Value, Values};
use crate::{Error, Result, Revision};

/// One version of a key: what a write left it as.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Version {
    /// The write's main revision.
    pub(crate) main: Revision,
    /// Its place among the changes of that revision.
    pub(crate) sub: i64,
    /// The revision that created the key's generation (0 for a deletion).
    pub(crate) create: Revision,
    /// Writes since the generation began, this one included (0 for a deletion).
    pub(crate) version: i64,
    /// The lease the key was attached to (0 for none).
    pub(crate) lease: i64,
    /// The value, or [`Value::Deleted`].
    pub(crate) value: Value,
}

impl Version {
    /// True if this version is a put (not a deletion).
    pub(crate) fn is_put(&self) -> bool {
        self.value != Value::Deleted
    }

    /// The key-value this version is (for a put), reading its value unless `keys_only`.
    pub(crate) fn kv(&self, key: &[u8], keys_only: bool) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key),
            create_revision: self.create,
            mod_revision: self.main,
            version: self.version,
            value: if keys_only {
                Bytes::new()
            } else {
                self.value.load()
            },
            lease: self.lease,
        }
    }
}

/// A key as the keyspace holds it: its own copy, shared with snapshots and with the branch
/// nodes of the tree (which hold keys only).
pub(crate) type Key = Arc<[u8]>;

/// A key's versions, oldest first; shared with snapshots until written.
pub(crate) type Versions = Arc<[Version]>;

/// One change a write made, in order: for watchers and for the lessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The event as watchers see it (a deletion's `kv` holds the key and the deletion's
    /// revision; `prev_kv` is always filled where there was one).
    pub event: mvccpb::Event,
    /// The change's sub-revision.
    pub sub: i64,
}

/// etcd's v3 keyspace. See the crate docs.
#[derive(Debug, Clone)]
pub struct Keyspace {
    pub(crate) keys: imbl::OrdMap<Key, Versions>,
    pub(crate) rev: Revision,
    pub(crate) compacted: Revision,
    /// Live keys (whose newest version is a put).
    pub(crate) live: usize,
    /// Estimated bytes held: see [`Keyspace::size`].
    pub(crate) bytes: u64,
    /// Where values are kept.
    pub(crate) values: Values,
}

/// What one version is counted as beside its key and value bytes (its revisions, lease and
/// place in the key's list).
const VERSION_OVERHEAD: u64 = 64;

/// The bytes a version is counted as.
pub(crate) fn version_size(key: &[u8], v: &Version) -> u64 {
    (key.len() + v.value.len()) as u64 + VERSION_OVERHEAD
}

/// A stored file is rewritten by compaction when less than this share of it is still in use.
const REWRITE_BELOW: f64 = 0.5;

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace::new()
    }
}

impl Keyspace {
    /// An empty keyspace at revision 1, as etcd's starts, keeping every value in memory.
    pub fn new() -> Keyspace {
        Keyspace::with_values(Values::memory())
    }

    /// An empty keyspace keeping values where `values` says.
    pub fn with_values(values: Values) -> Keyspace {
        Keyspace {
            keys: imbl::OrdMap::new(),
            rev: 1,
            compacted: 0,
            live: 0,
            bytes: 0,
            values,
        }
    }

    /// Where this keyspace keeps values.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// Keeps values written from now on where `values` says (those written before stay
    /// where they are).
    pub fn set_values(&mut self, values: Values) {
        self.values = values;
    }

    /// The current revision.
    pub fn revision(&self) -> Revision {
        self.rev
    }

    /// The revision of the last compaction (0 before any).
    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// How many keys exist now.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Estimated bytes held by every version kept (keys, values and a fixed overhead per
    /// version): what Status reports as the database size, and what a space quota measures.
    pub fn size(&self) -> u64 {
        self.bytes
    }

    /// True when no key exists now.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The key as it is now, if it exists.
    pub fn get(&self, key: &[u8]) -> Option<KeyValue> {
        self.newest(key).map(|v| v.kv(key, false))
    }

    /// The key's newest version, if the key exists now.
    pub(crate) fn newest(&self, key: &[u8]) -> Option<&Version> {
        self.keys.get(key)?.last().filter(|v| v.is_put())
    }

    /// Checks a read revision: 0 or less means the current one.
    pub(crate) fn read_revision(&self, rev: Revision, current: Revision) -> Result<Revision> {
        if rev > current {
            return Err(Error::FutureRevision);
        }
        let rev = if rev <= 0 { current } else { rev };
        if rev < self.compacted {
            return Err(Error::Compacted);
        }
        Ok(rev)
    }

    /// Forgets the versions that a newer version at or below `rev` replaced, and keys whose
    /// newest version at or below `rev` is a deletion. Reads below `rev` fail afterwards.
    ///
    /// Stored values then in use fill less than half of some sealed value files: those
    /// values are stored again, so that the files can go once no clone refers to them.
    pub fn compact(&mut self, rev: Revision) -> Result<()> {
        if rev <= self.compacted {
            return Err(Error::Compacted);
        }
        if rev > self.rev {
            return Err(Error::FutureRevision);
        }
        self.compacted = rev;
        let mut gone = Vec::new();
        let mut trimmed = Vec::new();
        for (key, versions) in self.keys.iter() {
            // Versions at or below `rev`: all but the newest go; the newest goes too if it is
            // a deletion.
            let at_or_below = versions.partition_point(|v| v.main <= rev);
            if at_or_below == 0 {
                continue;
            }
            let keep_newest = versions[at_or_below - 1].is_put();
            let drop = if keep_newest {
                at_or_below - 1
            } else {
                at_or_below
            };
            if drop == 0 {
                continue;
            }
            if drop == versions.len() {
                gone.push(key.clone());
            } else {
                trimmed.push((key.clone(), drop));
            }
        }
        for key in gone {
            if let Some(versions) = self.keys.remove(&key) {
                let freed: u64 = versions.iter().map(|v| version_size(&key, v)).sum();
                self.bytes -= freed;
            }
        }
        for (key, drop) in trimmed {
            if let Some(versions) = self.keys.get_mut(&key) {
                let freed: u64 = versions[..drop].iter().map(|v| version_size(&key, v)).sum();
                self.bytes -= freed;
                *versions = versions[drop..].into();
            }
        }
        self.rewrite_sparse_files();
        Ok(())
    }

    /// Stores again the values kept in sealed value files of which less than half is still
    /// in use (see [`Keyspace::compact`]).
    fn rewrite_sparse_files(&mut self) {
        // Bytes in use per file, files named by address.
        let mut in_use: HashMap<*const (), (u64, u64)> = HashMap::new();
        for versions in self.keys.values() {
            for v in versions.iter() {
                if let Value::Stored(s) = &v.value {
                    let file = s.file();
                    if file.sealed() {
                        let slot = in_use
                            .entry(Arc::as_ptr(file) as *const ())
                            .or_insert((0, file.written()));
                        slot.0 += u64::from(s.len());
                    }
                }
            }
        }
        let sparse = |s: &crate::value::Stored| {
            in_use
                .get(&(Arc::as_ptr(s.file()) as *const ()))
                .is_some_and(|(used, written)| (*used as f64) < (*written as f64) * REWRITE_BELOW)
        };
        if !in_use
            .values()
            .any(|(used, written)| (*used as f64) < (*written as f64) * REWRITE_BELOW)
        {
            return;
        }
        let moved: Vec<Key> = self
            .keys
            .iter()
            .filter(|(_, versions)| {
                versions
                    .iter()
                    .any(|v| matches!(&v.value, Value::Stored(s) if sparse(s)))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in moved {
            let Some(versions) = self.keys.get_mut(&key) else {
                continue;
            };
            *versions = versions
                .iter()
                .map(|v| match &v.value {
                    Value::Stored(s) if sparse(s) => Version {
                        value: self.values.keep(&v.value.load()),
                        ..v.clone()
                    },
                    _ => v.clone(),
                })
                .collect();
        }
    }

    /// The key's newest version at or below `rev`, if the key existed then.
    pub(crate) fn at(versions: &[Version], rev: Revision) -> Option<&Version> {
        let n = versions.partition_point(|v| v.main <= rev);
        versions.get(n.checked_sub(1)?).filter(|v| v.is_put())
    }
}
