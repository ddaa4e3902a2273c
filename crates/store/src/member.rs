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
    /// Advertised client URLs, comma-separated (one, unless the member advertises several);
    /// empty for a member added but not started yet.
    pub etcd_url: String,
    /// A learner: receives the log, does not vote (until promoted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learner: bool,
}

impl Member {
    /// The advertised client URLs, one by one.
    pub fn client_urls(&self) -> Vec<String> {
        self.etcd_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect()
    }
}

/// The cluster id of a cluster whose first member had raft id `first`: the same on every
/// member, for the life of the cluster (members joining and leaving do not change it). A
/// mix of the bits (splitmix64's finalizer) so that it does not read as a member id.
pub fn cluster_id_of(first: u64) -> u64 {
    let mut z = first ^ 0x6574_6364_2d72_7321; // "etcd-rs!"
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_are_split_and_an_unstarted_member_has_none() {
        let mut m = Member {
            name: "a".into(),
            raft_url: "http://10.0.0.1:2380".into(),
            etcd_url: "https://10.0.0.1:2379,https://127.0.0.1:2379".into(),
            learner: false,
        };
        assert_eq!(
            m.client_urls(),
            ["https://10.0.0.1:2379", "https://127.0.0.1:2379"]
        );
        m.etcd_url = "http://10.0.0.1:2379".into();
        assert_eq!(m.client_urls(), ["http://10.0.0.1:2379"]);
        m.etcd_url.clear();
        assert!(m.client_urls().is_empty());
    }
}
