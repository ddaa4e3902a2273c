//! [`Member`]: one cluster member as the log registered it (its peer URL, and once it runs, its
//! name and client URL). The list and its changes are the `store/members.rs` family; raft's
//! own configuration is the server's `cluster.rs`.

use serde::{Deserialize, Serialize};

/// A cluster member, as registered through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Unique name.
    pub name: String,
    /// Advertised peer URL.
    pub raft_url: String,
    /// Advertised client URL.
    pub etcd_url: String,
}
