//! The offline tools' changes to a whole state, outside the log: what `etcdutl backup` and
//! `etcdctl migrate` do to a stopped member's data (the server's `raft::offline` reads and
//! writes it; this is the state machine's part, pure and deterministic as the rest).
//!
//! - [`StoreSnapshot::refounded`]: the state as the first state of a new cluster: the old
//!   members (their list, removed ids, `/_etcd/machines` entries), the cluster id and the
//!   alarms are forgotten; keys, history, leases, users and roles stay. The new cluster's
//!   members are then registered as any first members are.
//! - [`Store::migrate_v2_to_v3`]: etcd 3.4's `etcdctl migrate`: every v2 file becomes a v3
//!   key with the same value, its create and mod revisions the file's created and modified
//!   indexes, version 1 (directories are not keys; with `no_ttl`, files with a TTL are left
//!   out, otherwise they are copied without one, as etcd's migrate copies them). Only into an
//!   empty v3 keyspace.

use etcd_mvcc::mvccpb::KeyValue;
use prost::Message as _;

use super::Store;
use crate::snapshot::StoreSnapshot;
use crate::tree::Kind;

impl StoreSnapshot {
    /// This state without its cluster (see the module docs).
    pub fn refounded(mut self) -> StoreSnapshot {
        for m in self.members.values() {
            if !m.name.is_empty() {
                self.tree
                    .remove(&crate::path::join(crate::path::MACHINES_DIR, &m.name));
            }
        }
        self.members.clear();
        self.removed.clear();
        self.cluster_id = 0;
        self.alarms.clear();
        self
    }
}

/// Why a migration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MigrateError {
    /// The v3 keyspace is not empty: revisions would mix.
    #[error("the v3 keyspace is not empty (revision {0}): etcdctl migrate fills an empty one")]
    NotEmpty(i64),
    /// The records did not make a keyspace.
    #[error("{0}")]
    Import(String),
}

impl<W> Store<W> {
    /// Copies the v2 files into the (empty) v3 keyspace (see the module docs); returns how
    /// many keys it made (0: there was nothing to migrate, and nothing changed).
    pub fn migrate_v2_to_v3(&mut self, no_ttl: bool) -> Result<usize, MigrateError> {
        if self.v3.revision() > 1 {
            return Err(MigrateError::NotEmpty(self.v3.revision()));
        }
        // etcd's `key` bucket records: revision (main, sub) → KeyValue.
        let mut records: Vec<(i64, Vec<u8>)> = Vec::new();
        let internal_dir = format!("/{}", crate::path::RESERVED_SEGMENT);
        self.tree.walk(|key, node| {
            let Kind::File(value) = &node.kind else {
                return;
            };
            let internal = key == internal_dir || key.starts_with(&format!("{internal_dir}/"));
            if internal || (no_ttl && node.expire_at.is_some()) {
                return;
            }
            let kv = KeyValue {
                key: key.as_bytes().to_vec().into(),
                create_revision: node.created as i64,
                mod_revision: node.modified as i64,
                version: 1,
                value: value.as_bytes().to_vec().into(),
                lease: 0,
            };
            records.push((node.modified as i64, kv.encode_to_vec()));
        });
        if records.is_empty() {
            return Ok(0);
        }
        records.sort_by_key(|(main, _)| *main);
        // Two files last written by one command (none do today) would share a revision:
        // they get sub-revisions 0, 1, ….
        let mut sub = 0i64;
        let mut last = -1i64;
        let bucket = records.iter().map(|(main, value)| {
            sub = if *main == last { sub + 1 } else { 0 };
            last = *main;
            let mut k = Vec::with_capacity(17);
            k.extend_from_slice(&main.to_be_bytes());
            k.push(b'_');
            k.extend_from_slice(&sub.to_be_bytes());
            (k, value.clone())
        });
        let keyspace = etcd_mvcc::Keyspace::from_etcd_records(bucket, 0, self.v3_values())
            .map_err(|e| MigrateError::Import(e.to_string()))?;
        let made = records.len();
        self.v3 = keyspace;
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    fn store() -> Store<()> {
        let mut s: Store<()> = Store::new(100);
        s.apply(
            1,
            &Command::Join {
                id: 7,
                name: "n1".into(),
                raft_url: "http://a:1".into(),
                etcd_url: "http://a:2".into(),
            },
        );
        for (i, (key, ttl)) in [("/a", None), ("/dir/b", None), ("/t", Some(600))]
            .into_iter()
            .enumerate()
        {
            s.apply(
                i as u64 + 2,
                &Command::Set {
                    key: key.into(),
                    value: format!("v{i}"),
                    ttl_secs: ttl,
                    time: 1,
                },
            );
        }
        s
    }

    #[test]
    fn v2_files_become_v3_keys_at_their_indexes() {
        let mut s = store();
        assert_eq!(s.migrate_v2_to_v3(false), Ok(3));
        let v3 = s.v3();
        assert_eq!(v3.revision(), 4);
        let all = v3
            .range(&etcd_mvcc::pb::RangeRequest {
                key: vec![0].into(),
                range_end: vec![0].into(),
                ..Default::default()
            })
            .unwrap();
        let got: Vec<(String, String, i64, i64, i64)> = all
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/a".into(), "v0".into(), 2, 2, 1),
                ("/dir/b".into(), "v1".into(), 3, 3, 1),
                ("/t".into(), "v2".into(), 4, 4, 1),
            ]
        );
        // Once filled, the keyspace is not migrated into again.
        assert_eq!(s.migrate_v2_to_v3(false), Err(MigrateError::NotEmpty(4)));
    }

    #[test]
    fn no_ttl_leaves_expiring_files_out() {
        let mut s = store();
        assert_eq!(s.migrate_v2_to_v3(true), Ok(2));
    }

    #[test]
    fn a_refounded_state_has_no_members_and_keeps_the_data() {
        let s = store();
        let snap = s.snapshot();
        assert_eq!(snap.members.len(), 1);
        let r = snap.refounded();
        assert!(r.members.is_empty() && r.removed.is_empty());
        assert_eq!(r.cluster_id, 0);
        assert!(r.tree.get("/_etcd/machines/n1").is_none());
        assert!(r.tree.get("/a").is_some());
    }
}
