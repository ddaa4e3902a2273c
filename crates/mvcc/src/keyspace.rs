//! [`Keyspace`]: the state (every key's versions, the current and compacted revisions) and
//! compaction.
//!
//! Invariants: each key's versions are in increasing (main, sub) order and never empty; the
//! newest version of a key is at most the current revision; below the compacted revision a key
//! keeps at most its newest version, and only if that is a put.

use std::sync::Arc;

use bytes::Bytes;

use crate::mvccpb::{self, KeyValue};
use crate::{Error, Result, Revision};

/// One version of a key: what a write left it as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The write's main revision.
    pub main: Revision,
    /// Its place among the changes of that revision.
    pub sub: i64,
    /// The key-value written, or `None` for a deletion.
    pub kv: Option<KeyValue>,
}

/// A key's versions, oldest first; shared with snapshots until written.
pub(crate) type Versions = Arc<Vec<Version>>;

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
    pub(crate) keys: imbl::OrdMap<Bytes, Versions>,
    pub(crate) rev: Revision,
    pub(crate) compacted: Revision,
    /// Live keys (whose newest version is a put).
    pub(crate) live: usize,
    /// Estimated bytes held: see [`Keyspace::size`].
    pub(crate) bytes: u64,
}

/// What one version is counted as beside its key and value bytes (its revisions, lease and
/// place in the key's list).
const VERSION_OVERHEAD: u64 = 64;

/// The bytes a version is counted as.
pub(crate) fn version_size(key: &[u8], v: &Version) -> u64 {
    let value = v.kv.as_ref().map_or(0, |kv| kv.value.len());
    (key.len() + value) as u64 + VERSION_OVERHEAD
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace::new()
    }
}

impl Keyspace {
    /// An empty keyspace at revision 1, as etcd's starts.
    pub fn new() -> Keyspace {
        Keyspace {
            keys: imbl::OrdMap::new(),
            rev: 1,
            compacted: 0,
            live: 0,
            bytes: 0,
        }
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
    pub fn get(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys.get(key)?.last()?.kv.as_ref()
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
            let keep_newest = versions[at_or_below - 1].kv.is_some();
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
                Arc::make_mut(versions).drain(..drop);
            }
        }
        Ok(())
    }

    /// A CRC-32 of every version in (compacted, `rev`], in key and revision order: equal on
    /// every member that applied the same log. `rev` 0 is the current revision. Returns the
    /// hash and the revision hashed.
    pub fn hash_kv(&self, rev: Revision) -> Result<(u32, Revision)> {
        let rev = self.read_revision(rev, self.rev)?;
        let mut h = crc32fast::Hasher::new();
        for (key, versions) in self.keys.iter() {
            for v in versions.iter().filter(|v| v.main <= rev) {
                if v.main <= self.compacted && v.kv.is_none() {
                    continue;
                }
                h.update(key);
                h.update(&v.main.to_be_bytes());
                h.update(&v.sub.to_be_bytes());
                match &v.kv {
                    Some(kv) => {
                        h.update(&[1]);
                        h.update(&kv.create_revision.to_be_bytes());
                        h.update(&kv.version.to_be_bytes());
                        h.update(&kv.lease.to_be_bytes());
                        h.update(&kv.value);
                    }
                    None => h.update(&[0]),
                }
            }
        }
        Ok((h.finalize(), rev))
    }

    /// The key's newest version at or below `rev`, if the key existed then.
    pub(crate) fn at(versions: &[Version], rev: Revision) -> Option<&KeyValue> {
        let n = versions.partition_point(|v| v.main <= rev);
        versions.get(n.checked_sub(1)?)?.kv.as_ref()
    }
}
