//! etcd's v2 HTTP API beside v1: `/v2/keys` (reads, writes, long-poll and streaming watches),
//! `/v2/machines`, `/v2/members`, `/v2/stats/*`, `/version` and `/health`.
//!
//! One store and one index serve both APIs: a v2 node's `modifiedIndex` is the raft log index
//! of the entry that last changed it, the number v1 calls `index`. Parameters are parsed as
//! etcd's `v2http` does (Go's `ParseBool`/`ParseUint`, the same error codes and causes), and
//! bodies are etcd's JSON with its trailing newline. Deliberate differences from etcd 3.4:
//! `/_etcd` (our member registry, shared with v1) is reserved for writes (error 106), and
//! listings are always sorted.

//!
//! One file per concern: `keys` (parameters, reads, writes), `watch`, `render` (answers and
//! headers), `members`, `stats` (`/version`, `/health`, `/v2/stats/*`).

mod keys;
mod members;
mod render;
mod stats;
mod watch;

pub(super) use keys::keys;
pub(super) use members::{
    machines, members, members_add, members_leader, members_remove, members_update,
};
pub(super) use stats::{health, livez, readyz, stats_leader, stats_self, stats_store, version};
