//! The raft log payload: one [`Command`] per normal log entry.
//!
//! Commands are stored on disk and sent between members, so the tags (`"op"` values) are
//! stable strings named after the seed's log commands and must never be renamed or reused.
//! A command carries its own time, so applying it never reads a clock.

use serde::{Deserialize, Serialize};

use crate::UnixNanos;

/// A state-machine command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op")]
pub enum Command {
    /// Set `key` to `value`; with `ttl_secs`, expire at `time + ttl_secs` (≤ 0 deletes).
    #[serde(rename = "etcd:set")]
    Set {
        /// The key (normalised again on apply).
        key: String,
        /// The new value.
        value: String,
        /// Time to live in seconds, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<i64>,
        /// The proposer's clock, for the TTL.
        time: UnixNanos,
    },
    /// Set only if the current value equals `prev_value`.
    #[serde(rename = "etcd:testAndSet")]
    TestAndSet {
        /// The key.
        key: String,
        /// The value the key must hold.
        prev_value: String,
        /// The new value.
        value: String,
        /// Time to live in seconds, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<i64>,
        /// The proposer's clock, for the TTL.
        time: UnixNanos,
    },
    /// Delete a key (never a directory).
    #[serde(rename = "etcd:delete")]
    Delete {
        /// The key.
        key: String,
    },
    /// Expire `key` if its expiry is at or before `time` (the leader's clock), with everything
    /// below it. Without `key` (logs written before per-key expiry), every node due at `time`
    /// expires in this one entry.
    #[serde(rename = "etcd:expire")]
    Expire {
        /// The cut-off.
        time: UnixNanos,
        /// The node to expire.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// A v2 `PUT`: set, create (`prev_exist` false), update (`prev_exist` true, no compare) or
    /// compare-and-swap (`prev_value` or `prev_index`), of a file or (`dir`) a directory.
    #[serde(rename = "etcd:v2put")]
    V2Put {
        /// The key.
        key: String,
        /// The new value (empty for a directory).
        #[serde(default)]
        value: String,
        /// Make a directory instead of a file.
        #[serde(default, skip_serializing_if = "is_false")]
        dir: bool,
        /// Time to live in seconds; `None` makes the node permanent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<i64>,
        /// Only reset the TTL: keep the value and do not wake watchers.
        #[serde(default, skip_serializing_if = "is_false")]
        refresh: bool,
        /// Whether the key must exist (`Some(true)`) or must not (`Some(false)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_exist: Option<bool>,
        /// The value the key must hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_value: Option<String>,
        /// The modified index the key must have.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_index: Option<u64>,
        /// The proposer's clock, for the TTL.
        time: UnixNanos,
    },
    /// A v2 `POST`: create a uniquely named, in-order key below `key` (the name is the entry's
    /// index, zero-padded to 20 digits).
    #[serde(rename = "etcd:v2post")]
    V2Post {
        /// The directory.
        key: String,
        /// The new value (empty for a directory).
        #[serde(default)]
        value: String,
        /// Make a directory instead of a file.
        #[serde(default, skip_serializing_if = "is_false")]
        dir: bool,
        /// Time to live in seconds, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<i64>,
        /// The proposer's clock, for the TTL.
        time: UnixNanos,
    },
    /// A v2 `DELETE`: of a file, an empty directory (`dir`), a whole subtree (`recursive`), or
    /// compare-and-delete of a file (`prev_value` or `prev_index`).
    #[serde(rename = "etcd:v2delete")]
    V2Delete {
        /// The key.
        key: String,
        /// Directories may be deleted (when empty).
        #[serde(default, skip_serializing_if = "is_false")]
        dir: bool,
        /// Directories are deleted with everything below them.
        #[serde(default, skip_serializing_if = "is_false")]
        recursive: bool,
        /// The value the key must hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_value: Option<String>,
        /// The modified index the key must have.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prev_index: Option<u64>,
        /// The proposer's clock (for the TTL shown in `prevNode`).
        time: UnixNanos,
    },
    /// Register a member under `/_etcd/machines/<name>`.
    #[serde(rename = "etcd:join")]
    Join {
        /// The raft node id.
        id: u64,
        /// The unique member name.
        name: String,
        /// Advertised peer URL.
        raft_url: String,
        /// Advertised client URL.
        etcd_url: String,
    },
    /// Add a learner (a member that receives the log but does not vote) at `raft_url`, not
    /// started yet: the context of raft's AddLearnerNode (`MemberAdd` with `isLearner`).
    #[serde(rename = "etcd:addLearner")]
    AddLearner {
        /// The raft node id.
        id: u64,
        /// Advertised peer URL.
        raft_url: String,
    },
    /// Make learner `id` a voting member: the context of raft's AddNode for it.
    #[serde(rename = "etcd:promote")]
    Promote {
        /// The raft node id.
        id: u64,
    },
    /// Change a member's advertised peer URL (`PUT /v2/members/<id>`).
    #[serde(rename = "etcd:updatePeer")]
    UpdatePeer {
        /// The raft node id.
        id: u64,
        /// The new peer URL.
        raft_url: String,
    },
    /// Create or change a v2 auth user (see `auth::Auth::put_user`).
    #[serde(rename = "etcd:authUser")]
    AuthPutUser {
        /// The user.
        name: String,
        /// bcrypt hash of a new password (never the password).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_hash: Option<String>,
        /// Roles given at creation.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roles: Vec<String>,
        /// Roles to add.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        grant: Vec<String>,
        /// Roles to take away.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        revoke: Vec<String>,
    },
    /// Delete a v2 auth user.
    #[serde(rename = "etcd:authDeleteUser")]
    AuthDeleteUser {
        /// The user.
        name: String,
    },
    /// Create a v2 auth role, or grant or revoke key patterns.
    #[serde(rename = "etcd:authRole")]
    AuthPutRole {
        /// The role.
        name: String,
        /// Patterns of a new role.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permissions: Option<crate::auth::Permissions>,
        /// Patterns to add.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant: Option<crate::auth::Permissions>,
        /// Patterns to take away.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revoke: Option<crate::auth::Permissions>,
    },
    /// Delete a v2 auth role.
    #[serde(rename = "etcd:authDeleteRole")]
    AuthDeleteRole {
        /// The role.
        name: String,
    },
    /// Turn v2 auth on or off.
    #[serde(rename = "etcd:authEnable")]
    AuthEnable {
        /// On or off.
        enabled: bool,
    },
    /// A linearizable read's place in the log: changes nothing. Once it is applied on a
    /// member, that member's store reflects every write committed before the read began.
    #[serde(rename = "etcd:read")]
    Read,
    /// Remove a member and its `/_etcd/machines/<name>` registration.
    #[serde(rename = "etcd:leave")]
    Leave {
        /// The raft node id.
        id: u64,
        /// The member name.
        name: String,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Command {
    /// Encodes the command for the log.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialising a command cannot fail")
    }

    /// Decodes a command from the log.
    pub fn decode(bytes: &[u8]) -> Result<Command, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable() {
        let c = Command::Set {
            key: "/a".into(),
            value: "v".into(),
            ttl_secs: None,
            time: 7,
        };
        assert_eq!(
            String::from_utf8(c.encode()).unwrap(),
            r#"{"op":"etcd:set","key":"/a","value":"v","time":7}"#
        );
        assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        let e = Command::Expire { time: 1, key: None };
        assert_eq!(
            String::from_utf8(e.encode()).unwrap(),
            r#"{"op":"etcd:expire","time":1}"#
        );
        let e = Command::Expire {
            time: 1,
            key: Some("/k".into()),
        };
        assert_eq!(
            String::from_utf8(e.encode()).unwrap(),
            r#"{"op":"etcd:expire","time":1,"key":"/k"}"#
        );
        let p = Command::V2Put {
            key: "/d".into(),
            value: String::new(),
            dir: true,
            ttl_secs: None,
            refresh: false,
            prev_exist: Some(false),
            prev_value: None,
            prev_index: None,
            time: 5,
        };
        assert_eq!(
            String::from_utf8(p.encode()).unwrap(),
            r#"{"op":"etcd:v2put","key":"/d","value":"","dir":true,"prev_exist":false,"time":5}"#
        );
        assert_eq!(Command::decode(&p.encode()).unwrap(), p);
    }
}
