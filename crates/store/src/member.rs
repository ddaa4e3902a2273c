//! [`Member`]: one cluster member as the log registered it.

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
