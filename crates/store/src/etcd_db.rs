//! The v3 state as etcd's backend database, and back: what a snapshot file carries between
//! etcd and etcd-rs (`etcdctl snapshot save/status/restore`, `Maintenance.Snapshot`).
//!
//! etcd 3.4 keeps its state in a bbolt file with these buckets (the layout `crates/bolt`
//! writes and reads), all of which are written:
//! - `key`: the keyspace's versions (`etcd_mvcc::Keyspace::each_etcd_record`);
//! - `meta`: `consistent_index` (the applied log index, 8 bytes big-endian) and, once
//!   compacted, `finishedCompactRev` and `scheduledCompactRev` (the compacted revision as a
//!   revision key: 8 bytes main, `_`, 8 bytes sub);
//! - `lease`: each lease's id (8 bytes big-endian) → `leasepb.Lease{ID, TTL}`;
//! - `auth` (`authEnabled` 1 or 0, `authRevision` 8 bytes big-endian), `authUsers` (name →
//!   `authpb.User`), `authRoles` (name → `authpb.Role`);
//! - `alarm`: each active alarm, an `etcdserverpb.AlarmMember`, with an empty value;
//! - `members` (hex id → etcd's member JSON), `members_removed` (hex id → `removed`), and
//!   `cluster` (empty: the cluster version is not written): what a restore replaces anyway.
//!
//! Reading takes the keyspace, leases (their TTLs; keys attach from the keyspace) and auth
//! (users, roles, whether it is on, its revision); members, alarms and the consistent index
//! belong to the cluster that wrote the file, and a restored member starts a cluster of its
//! own.

use std::collections::BTreeMap;
use std::io::{self, Seek, Write};

use etcd_mvcc::pb::AlarmMember;
use etcd_v3proto::authpb::{Role, User};
use etcd_v3proto::etcdrs::AuthState;
use prost::Message;

use crate::snapshot::StoreSnapshot;
use crate::v3auth::AuthV3;

/// etcd's `leasepb.Lease` (only what a snapshot needs).
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseRecord {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// A revision as etcd's key: 8 bytes main, `_`, 8 bytes sub (0), big-endian.
fn revision_key(rev: i64) -> Vec<u8> {
    let mut k = rev.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&0i64.to_be_bytes());
    k
}

type Records = Vec<(Vec<u8>, Vec<u8>)>;

impl StoreSnapshot {
    /// Writes the v3 state as etcd's backend database (see the module docs).
    pub fn write_etcd_db<W: Write + Seek>(&self, out: &mut W) -> io::Result<()> {
        let mut buckets: BTreeMap<&'static [u8], Records> = BTreeMap::new();
        let alarms = self
            .alarms
            .iter()
            .map(|&(member_id, alarm)| {
                (AlarmMember { member_id, alarm }.encode_to_vec(), Vec::new())
            })
            .collect::<BTreeMap<_, _>>();
        buckets.insert(b"alarm", alarms.into_iter().collect());
        let auth = &self.auth3;
        buckets.insert(
            b"auth",
            vec![
                (b"authEnabled".to_vec(), vec![u8::from(auth.enabled())]),
                (
                    b"authRevision".to_vec(),
                    auth.revision().to_be_bytes().to_vec(),
                ),
            ],
        );
        let state = auth.to_state();
        buckets.insert(
            b"authRoles",
            state
                .roles
                .iter()
                .map(|r| (r.name.to_vec(), r.encode_to_vec()))
                .collect(),
        );
        buckets.insert(
            b"authUsers",
            state
                .users
                .iter()
                .map(|u| (u.name.to_vec(), u.encode_to_vec()))
                .collect(),
        );
        buckets.insert(b"cluster", Vec::new());
        let mut leases: Records = self
            .leases
            .iter()
            .map(|(id, l)| {
                let record = LeaseRecord {
                    id,
                    ttl: l.ttl,
                    remaining_ttl: 0,
                };
                (id.to_be_bytes().to_vec(), record.encode_to_vec())
            })
            .collect();
        leases.sort();
        buckets.insert(b"lease", leases);
        let mut members: Records = self
            .members
            .iter()
            .map(|(id, m)| {
                let json = serde_json::json!({
                    "id": id,
                    "peerURLs": [m.raft_url],
                    "name": m.name,
                    "clientURLs": m.client_urls(),
                });
                (
                    format!("{id:x}").into_bytes(),
                    json.to_string().into_bytes(),
                )
            })
            .collect();
        members.sort();
        buckets.insert(b"members", members);
        let mut removed: Records = self
            .removed
            .iter()
            .map(|id| (format!("{id:x}").into_bytes(), b"removed".to_vec()))
            .collect();
        removed.sort();
        buckets.insert(b"members_removed", removed);
        let mut meta = vec![(
            b"consistent_index".to_vec(),
            self.applied.to_be_bytes().to_vec(),
        )];
        if self.v3.compacted() > 0 {
            let c = revision_key(self.v3.compacted());
            meta.push((b"finishedCompactRev".to_vec(), c.clone()));
            meta.push((b"scheduledCompactRev".to_vec(), c));
        }
        buckets.insert(b"meta", meta);

        let mut key_records = Vec::new();
        self.v3
            .each_etcd_record(|k, v| {
                key_records.push((k, v));
                Ok::<(), ()>(())
            })
            .expect("collecting cannot fail");
        buckets.insert(b"key", key_records);
        let mut all = buckets.into_iter().map(|(name, records)| {
            let records: Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)>> =
                Box::new(records.into_iter());
            (name.to_vec(), records)
        });
        etcd_bolt::write(out, &mut all)
    }
}

/// Why an etcd database could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum EtcdDbError {
    /// The file is not a readable bbolt database.
    #[error(transparent)]
    Bolt(#[from] etcd_bolt::Error),
    /// A bucket holds what etcd never writes there.
    #[error("etcd database: {0}")]
    Content(String),
}

/// The v3 state read from an etcd database.
#[derive(Debug)]
pub struct EtcdImport {
    pub(crate) v3: etcd_mvcc::Keyspace,
    pub(crate) leases: etcd_mvcc::Leases,
    pub(crate) auth3: AuthV3,
}

impl EtcdImport {
    /// The keyspace's revision.
    pub fn revision(&self) -> i64 {
        self.v3.revision()
    }

    /// Live keys.
    pub fn keys(&self) -> usize {
        self.v3.len()
    }

    /// Leases.
    pub fn leases(&self) -> usize {
        self.leases.len()
    }
}

/// Reads the v3 state of the etcd database `db` (a whole bbolt file, without a snapshot's
/// hash trailer), keeping values where `values` says.
pub fn read_etcd_db(db: &[u8], values: etcd_mvcc::Values) -> Result<EtcdImport, EtcdDbError> {
    let bad = |what: String| EtcdDbError::Content(what);
    let mut buckets: BTreeMap<Vec<u8>, Records> = etcd_bolt::read(db)?.into_iter().collect();
    let mut take = |name: &[u8]| buckets.remove(name).unwrap_or_default();
    let meta: BTreeMap<Vec<u8>, Vec<u8>> = take(b"meta").into_iter().collect();
    let compacted = match meta.get(b"finishedCompactRev".as_slice()) {
        None => 0,
        Some(k) if k.len() == 17 => i64::from_be_bytes(k[..8].try_into().expect("8 bytes")),
        Some(k) => return Err(bad(format!("finishedCompactRev of {} bytes", k.len()))),
    };
    let v3 = etcd_mvcc::Keyspace::from_etcd_records(take(b"key"), compacted, values)
        .map_err(|e| bad(e.to_string()))?;
    let mut leases = etcd_mvcc::Leases::new();
    for (k, v) in take(b"lease") {
        let l = LeaseRecord::decode(&v[..]).map_err(|e| bad(format!("lease: {e}")))?;
        if k.len() != 8 || l.id != i64::from_be_bytes(k[..].try_into().expect("8 bytes")) {
            return Err(bad(format!("lease {}: its key does not name it", l.id)));
        }
        leases
            .grant(l.id, l.ttl)
            .map_err(|e| bad(format!("lease {}: {e}", l.id)))?;
    }
    leases.attach_from(&v3);
    let auth: BTreeMap<Vec<u8>, Vec<u8>> = take(b"auth").into_iter().collect();
    let revision = match auth.get(b"authRevision".as_slice()) {
        None => 1,
        Some(r) if r.len() == 8 => u64::from_be_bytes(r[..].try_into().expect("8 bytes")),
        Some(r) => return Err(bad(format!("authRevision of {} bytes", r.len()))),
    };
    let users = take(b"authUsers")
        .into_iter()
        .map(|(_, v)| User::decode(&v[..]).map_err(|e| bad(format!("user: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let roles = take(b"authRoles")
        .into_iter()
        .map(|(_, v)| Role::decode(&v[..]).map_err(|e| bad(format!("role: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let auth3 = AuthV3::from_state(AuthState {
        enabled: auth
            .get(b"authEnabled".as_slice())
            .is_some_and(|v| v == &[1]),
        revision,
        users,
        roles,
    });
    Ok(EtcdImport { v3, leases, auth3 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use etcd_mvcc::pb::{CompactionRequest, LeaseGrantRequest, PutRequest};
    use etcd_v3proto::etcdrs::internal_request::Request;
    use etcd_v3proto::etcdrs::InternalRequest;

    fn apply(s: &mut Store<()>, index: &mut u64, r: Request) {
        *index += 1;
        let req = InternalRequest {
            request: Some(r),
            ..Default::default()
        };
        s.apply_v3(*index, req).result.expect("applied");
    }

    #[test]
    fn the_v3_state_crosses_an_etcd_database_whole() {
        let mut s: Store<()> = Store::new(100);
        let mut i = 0;
        apply(
            &mut s,
            &mut i,
            Request::LeaseGrant(LeaseGrantRequest { id: 77, ttl: 600 }),
        );
        for n in 0..300 {
            let p = PutRequest {
                key: format!("k{}", n % 40).into_bytes().into(),
                value: vec![b'v'; n % 90].into(),
                lease: if n % 50 == 0 { 77 } else { 0 },
                ..Default::default()
            };
            apply(&mut s, &mut i, Request::Put(p));
        }
        apply(
            &mut s,
            &mut i,
            Request::Compaction(CompactionRequest {
                revision: 200,
                physical: true,
            }),
        );
        apply(
            &mut s,
            &mut i,
            Request::UserAdd(etcd_mvcc::pb::AuthUserAddRequest {
                name: "root".into(),
                hashed_password: "$2b$04$x".into(),
                ..Default::default()
            }),
        );
        apply(
            &mut s,
            &mut i,
            Request::UserGrantRole(etcd_mvcc::pb::AuthUserGrantRoleRequest {
                user: "root".into(),
                role: "root".into(),
            }),
        );
        apply(&mut s, &mut i, Request::AuthEnable(Default::default()));
        let mut db = std::io::Cursor::new(Vec::new());
        s.snapshot().write_etcd_db(&mut db).unwrap();
        let db = db.into_inner();
        let import = read_etcd_db(&db, etcd_mvcc::Values::memory()).unwrap();
        assert_eq!(import.revision(), s.v3().revision());
        assert_eq!(import.leases(), 1);
        let mut t: Store<()> = Store::new(100);
        t.import_etcd(import);
        assert_eq!(t.v3().hash_kv(0), s.v3().hash_kv(0));
        assert_eq!(t.v3().compacted(), 200);
        assert_eq!(t.auth_v3(), s.auth_v3());
        assert_eq!(
            t.snapshot().leases.get(77).map(|l| l.keys.clone()),
            s.snapshot().leases.get(77).map(|l| l.keys.clone())
        );
        // The buckets are etcd's.
        let names: Vec<Vec<u8>> = etcd_bolt::read(&db)
            .unwrap()
            .into_iter()
            .map(|b| b.0)
            .collect();
        let expected: Vec<&[u8]> = vec![
            b"alarm",
            b"auth",
            b"authRoles",
            b"authUsers",
            b"cluster",
            b"key",
            b"lease",
            b"members",
            b"members_removed",
            b"meta",
        ];
        assert_eq!(names, expected);
    }
}
