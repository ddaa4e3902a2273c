//! The deterministic state machine of etcd-rs.
//!
//! Everything the cluster agrees on lives here: the key tree, the TTL index, the bounded event
//! history used by watch-from-index, the registry of waiting watchers, the member list and the
//! counters. Every change is [`Store::apply`]`(index, command)`, where `index` is the raft log
//! index of the command; the same commands at the same indexes give the same state on every
//! member.
//!
//! Invariants:
//! - no clock: time arrives inside commands ([`Command::Expire`] carries the leader's clock, a
//!   set carries its proposer's clock for the TTL), so expiry happens at the same log position
//!   on every member;
//! - no I/O, no async, no raft: the server persists the log and snapshots; this crate only turns
//!   commands into events and can [`Store::snapshot`] and [`Store::restore`] its whole state
//!   (history and counters included);
//! - watchers are an opaque payload `W` (the server uses a channel sender); firing one means
//!   handing `(W, Event)` back to the caller, which delivers it after releasing its lock.
//!
//! Deliberately not here: key-space validation that happens before the log (value required,
//! TTL parsing, `_etcd` keyword checks are repeated here only as a safety net), JSON, HTTP
//! statuses, and wall-clock reads for `ttl` in responses (the server computes those).
//!
//! Descends from the seed's `store/` and etcd v2's `v2store` (file-per-concept split).

pub mod auth;
mod command;
pub mod envelope;
mod error;
mod etcd_db;
mod event;
mod history;
mod member;
pub mod path;
mod snapshot;
mod stats;
mod store;
mod tree;
pub mod v3auth;
mod watch;

pub use command::Command;
pub use error::{Error, Result};
pub use etcd_db::{read_etcd_db, EtcdDbError, EtcdImport};
pub use event::{Action, Event, NodeInfo, NodeView};
pub use member::{cluster_id_of, Member};
pub use snapshot::{SnapshotError, StoreSnapshot};
pub use stats::{Stats, V2Stats};
pub use store::{
    ttl_left, Applied, AppliedV3, Got, LeaseChange, MigrateError, ReadCheck, Store, TokenChange,
    Watched,
};

/// A raft log index.
pub type Index = u64;
/// Nanoseconds since the Unix epoch (UTC).
pub type UnixNanos = i64;
