//! What the state machine reports: [`Event`]s (one change of the v2/v1 key space, or one
//! entry a read found), the nodes they describe, and the tree views of v2 reads. Both APIs
//! render these; neither wire format lives here.

use serde::{Deserialize, Serialize};

use crate::{Index, UnixNanos};

/// What an event did: etcd v2's actions (the v1 API shows `SET`, `GET` or `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Set (replace or create).
    Set,
    /// Read.
    Get,
    /// Delete.
    Delete,
    /// Create of a key that must not exist (v2 `prevExist=false`, `POST`).
    Create,
    /// Update of a key that must exist (v2 `prevExist=true`).
    Update,
    /// Compare-and-swap (v1 test-and-set, v2 `prevValue`/`prevIndex`).
    CompareAndSwap,
    /// Compare-and-delete.
    CompareAndDelete,
    /// TTL expiry.
    Expire,
}

impl Action {
    /// True for actions that remove a node.
    pub fn removes(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::CompareAndDelete | Action::Expire
        )
    }
}

/// A node as it was at some index, as events and `prevNode` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Clean key.
    pub key: String,
    /// A directory.
    #[serde(default)]
    pub dir: bool,
    /// A file's value.
    #[serde(default)]
    pub value: Option<String>,
    /// Absolute expiry, if it has a TTL.
    #[serde(default)]
    pub expiration: Option<UnixNanos>,
    /// Whole seconds left then, rounded up (etcd v2's `ttl`), if it had some left.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// Index that created it.
    pub created_index: Index,
    /// Index that last modified it.
    pub modified_index: Index,
}

/// One change (or, for reads, one entry) of the key space.
///
/// The v1 fields (`prev_value`, `new_key`, `expiration` of a removed key) and the v2 fields
/// (`created_index`, `ttl`, `prev_node`) describe the same change; each API renders its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// Clean key.
    pub key: String,
    /// True for directories (listings, and v2 directory writes and removals).
    #[serde(default)]
    pub dir: bool,
    /// The value before the change.
    #[serde(default)]
    pub prev_value: Option<String>,
    /// The value after the change (or the value read).
    #[serde(default)]
    pub value: Option<String>,
    /// True when a set created the key.
    #[serde(default)]
    pub new_key: bool,
    /// Absolute expiry, when the key has (or, for removals, had) a TTL.
    #[serde(default)]
    pub expiration: Option<UnixNanos>,
    /// Log index of the change, the node's `modifiedIndex` (for v1 reads: of the last change
    /// of the store).
    pub index: Index,
    /// The node's `createdIndex`.
    #[serde(default)]
    pub created_index: Index,
    /// TTL left at the time of the change (v2's `ttl`), for nodes that still exist.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// The node before the change, if there was one (v2's `prevNode`).
    #[serde(default)]
    pub prev_node: Option<Box<NodeInfo>>,
    /// A TTL refresh: recorded, but it wakes no watcher.
    #[serde(default)]
    pub refresh: bool,
}

/// A node and (for directories) what a v2 GET shows of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Clean key (`/` for the root).
    pub key: String,
    /// A directory.
    pub dir: bool,
    /// A file's value.
    pub value: Option<String>,
    /// Absolute expiry, if it has a TTL.
    pub expiration: Option<UnixNanos>,
    /// Index that created it (0 for the root).
    pub created_index: Index,
    /// Index that last modified it (0 for the root).
    pub modified_index: Index,
    /// A directory's children (hidden ones left out), sorted by key; `None` for files and for
    /// directories below the listed one in a non-recursive listing.
    pub nodes: Option<Vec<NodeView>>,
}
