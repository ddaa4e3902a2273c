//! etcd's v3 keyspace, as a pure state machine: revisions, every key's history of versions,
//! reads at any uncompacted revision, writes (put, delete range, txn), and compaction.
//!
//! Semantics are etcd 3.4's, rule by rule (`shared/design/v3.md` §3; the tests are named
//! after its lines):
//! - the store revision starts at 1; every write request that changes something makes one new
//!   revision, its changes numbered 0, 1, 2… within it (sub-revisions);
//! - a key's `create_revision` is the revision that created its current generation,
//!   `mod_revision` its latest write, and `version` counts writes since creation; deleting it
//!   ends the generation, and writing it again starts a new one at version 1;
//! - reads at revision `r` see every key as it was after revision `r`; below the compaction
//!   revision they fail with `compacted`, above the current one with `future revision`;
//! - compaction at `r` forgets, for every key, the versions that a newer version at or below
//!   `r` replaced (and keys whose newest version at or below `r` is a deletion).
//!
//! Structure: [`Keyspace`] holds each key with its versions in an [`imbl::OrdMap`] (a
//! persistent B-tree), so a snapshot is an O(1) clone and can be written out by another thread
//! while writes go on. Values over [`INLINE_MAX`] bytes are kept out of the heap when the
//! server gives the keyspace a [`ValueStore`] (see `value.rs`); answers and events get their
//! own copies of keys and values. [`Keyspace::hash_kv`] is etcd's own HashKV (`hash.rs`).
//!
//! Leases live beside the keyspace ([`Leases`], replicated; [`Deadlines`], the leader's
//! clock): see `lease.rs`.
//!
//! Watches: [`Watchers`] is the registry of watchers (synced or catching up), offering each
//! revision's changes through a [`WatchSink`] that never blocks; [`Keyspace::events`] is the
//! history an unsynced watcher catches up from.
//!
//! Deliberately not here: I/O (a [`ValueStore`] does the keyspace's), clocks, threads, gRPC,
//! streams (the server owns them and implements [`WatchSink`]), leases (the state machine that composes this crate checks lease
//! ids and tells the lessor which keys a write attached or detached, from the [`Change`]s
//! every write returns), and auth.

mod etcd_db;
mod hash;
mod keyspace;
mod lease;
mod range;
mod snapshot;
mod txn;
mod value;
mod watch;
mod write;

pub use etcd_api::v3::V3Error as Error;
pub use etcd_v3proto::etcdserverpb as pb;
pub use etcd_v3proto::mvccpb;
pub use hash::Crc32c;
pub use keyspace::{Change, Keyspace};
pub use lease::{Deadlines, Lease, Leases, MAX_LEASE_TTL};
pub use snapshot::DecodeError;
pub use txn::{check_txn, is_read_only};
pub use value::{FileHandle, Stored, ValueFile, ValueStore, Values, INLINE_MAX};
pub use watch::{WatchSink, WatchSpec, Watchers};
pub use write::{header, Answer, AuthAnswer, Write};

/// A main revision of the keyspace.
pub type Revision = i64;

/// Results of this crate: etcd's v3 errors.
pub type Result<T> = std::result::Result<T, Error>;

/// Whether `end` (a request's `range_end`) names a range rather than the single `key`.
/// `"\0"` means every key from `key` on.
pub(crate) fn key_range(key: &[u8], end: &[u8]) -> KeyRange {
    match end {
        [] => KeyRange::One,
        [0] => KeyRange::From,
        _ if end <= key => KeyRange::Empty,
        _ => KeyRange::Until,
    }
}

/// The shape of a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// Just the key.
    One,
    /// The key and every key after it.
    From,
    /// [key, end).
    Until,
    /// Nothing (`end` at or before `key`).
    Empty,
}

#[cfg(test)]
mod tests;
