//! Writes: Put, DeleteRange, Txn and Compact, each applied as one write transaction that makes
//! at most one new revision (etcd 3.4 `applierV3backend` Put/DeleteRange/Txn and
//! `storeTxnWrite`).

use std::sync::Arc;

use bytes::Bytes;

use crate::keyspace::{Change, Keyspace, Version, Versions};
use crate::mvccpb::{event::EventType, Event, KeyValue};
use crate::pb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use crate::value::Value;
use crate::{Error, Result, Revision};

/// A write to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// etcd's Put.
    Put(PutRequest),
    /// etcd's DeleteRange.
    DeleteRange(DeleteRangeRequest),
    /// etcd's Txn (which may also only read).
    Txn(TxnRequest),
    /// etcd's Compact.
    Compact(CompactionRequest),
}

/// What a write answers (the header holds only the revision; the server fills the rest).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// To a Put.
    Put(PutResponse),
    /// To a DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// To a Txn.
    Txn(TxnResponse),
    /// To a Compact.
    Compact(CompactionResponse),
    /// To a LeaseGrant.
    LeaseGrant(crate::pb::LeaseGrantResponse),
    /// To a LeaseRevoke.
    LeaseRevoke(crate::pb::LeaseRevokeResponse),
    /// To an Alarm (applied by the state machine that composes this crate).
    Alarm(crate::pb::AlarmResponse),
    /// To a v3 auth request (applied by the state machine that composes this crate).
    Auth(AuthAnswer),
}

/// The answer to each v3 auth request.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // one variant per response, named after it
pub enum AuthAnswer {
    Enable(crate::pb::AuthEnableResponse),
    Disable(crate::pb::AuthDisableResponse),
    Status(crate::pb::AuthStatusResponse),
    Authenticate(crate::pb::AuthenticateResponse),
    UserAdd(crate::pb::AuthUserAddResponse),
    UserDelete(crate::pb::AuthUserDeleteResponse),
    UserChangePassword(crate::pb::AuthUserChangePasswordResponse),
    UserGrantRole(crate::pb::AuthUserGrantRoleResponse),
    UserGet(crate::pb::AuthUserGetResponse),
    UserRevokeRole(crate::pb::AuthUserRevokeRoleResponse),
    UserList(crate::pb::AuthUserListResponse),
    RoleAdd(crate::pb::AuthRoleAddResponse),
    RoleGet(crate::pb::AuthRoleGetResponse),
    RoleList(crate::pb::AuthRoleListResponse),
    RoleDelete(crate::pb::AuthRoleDeleteResponse),
    RoleGrantPermission(crate::pb::AuthRoleGrantPermissionResponse),
    RoleRevokePermission(crate::pb::AuthRoleRevokePermissionResponse),
}

/// A write in progress: every change gets the revision after `begin`, numbered from 0.
pub(crate) struct WriteTxn<'a> {
    pub(crate) ks: &'a mut Keyspace,
    pub(crate) begin: Revision,
    pub(crate) changes: Vec<Change>,
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(ks: &'a mut Keyspace) -> WriteTxn<'a> {
        let begin = ks.rev;
        WriteTxn {
            ks,
            begin,
            changes: Vec::new(),
        }
    }

    /// The revision reads inside the transaction see: the one it will make once it has
    /// written anything.
    pub(crate) fn read_revision(&self) -> Revision {
        if self.changes.is_empty() {
            self.begin
        } else {
            self.begin + 1
        }
    }

    /// Writes `key` (new generation if absent) with `value` (which watchers see), kept as
    /// `kept`. Returns the previous key-value.
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: Bytes,
        kept: Value,
        lease: i64,
    ) -> Option<KeyValue> {
        let rev = self.begin + 1;
        let sub = self.changes.len() as i64;
        let prev = self.ks.newest(key).cloned();
        let prev = prev.as_ref();
        let version = Version {
            main: rev,
            sub,
            create: prev.map_or(rev, |p| p.create),
            version: prev.map_or(1, |p| p.version + 1),
            lease,
            value: kept,
        };
        let kv = KeyValue {
            key: Bytes::copy_from_slice(key),
            create_revision: version.create,
            mod_revision: rev,
            version: version.version,
            value,
            lease,
        };
        let prev_kv = prev.map(|p| p.kv(key, false));
        if prev.is_none() {
            self.ks.live += 1;
        }
        self.ks.bytes += crate::keyspace::version_size(key, &version);
        match self.ks.keys.get_mut(key) {
            Some(versions) => *versions = appended(versions, version),
            None => {
                self.ks.keys.insert(key.into(), Arc::new([version]));
            }
        }
        self.changes.push(Change {
            event: Event {
                r#type: EventType::Put as i32,
                kv: Some(kv),
                prev_kv: prev_kv.clone(),
            },
            sub,
        });
        prev_kv
    }

    /// Deletes every existing key in the range; returns what they were.
    pub(crate) fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Vec<KeyValue> {
        let mut doomed = Vec::new();
        // Every version, the transaction's own writes included.
        self.ks.each_at(key, end, Revision::MAX, |key, v| {
            doomed.push(v.kv(key, false));
            true
        });
        let rev = self.begin + 1;
        for prev in &doomed {
            let sub = self.changes.len() as i64;
            if let Some(versions) = self.ks.keys.get_mut(&prev.key[..]) {
                let tombstone = Version {
                    main: rev,
                    sub,
                    create: 0,
                    version: 0,
                    lease: 0,
                    value: Value::Deleted,
                };
                self.ks.bytes += crate::keyspace::version_size(&prev.key, &tombstone);
                *versions = appended(versions, tombstone);
            }
            self.ks.live -= 1;
            self.changes.push(Change {
                event: Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: prev.key.clone(),
                        mod_revision: rev,
                        ..Default::default()
                    }),
                    prev_kv: Some(prev.clone()),
                },
                sub,
            });
        }
        doomed
    }

    /// Ends the transaction: the keyspace moves to the new revision if anything changed.
    pub(crate) fn finish(self) -> Vec<Change> {
        if !self.changes.is_empty() {
            self.ks.rev = self.begin + 1;
        }
        self.changes
    }
}

impl Keyspace {
    /// Applies a write (validated before the log: see [`crate::check_txn`]). `lease_exists`
    /// answers whether a lease id names a live lease. Returns the answer and the changes made,
    /// in order; an error changes nothing.
    pub fn apply(
        &mut self,
        write: &Write,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> (Result<Answer>, Vec<Change>) {
        match write {
            Write::Put(p) => {
                if let Err(e) = self.check_put(p, lease_exists) {
                    return (Err(e), Vec::new());
                }
                let mut txn = WriteTxn::new(self);
                let resp = txn.put_request(p);
                (Ok(Answer::Put(resp)), txn.finish())
            }
            Write::DeleteRange(d) => {
                let mut txn = WriteTxn::new(self);
                let resp = txn.delete_request(d);
                (Ok(Answer::DeleteRange(resp)), txn.finish())
            }
            Write::Txn(t) => match self.txn(t, lease_exists) {
                Ok((resp, changes)) => (Ok(Answer::Txn(resp)), changes),
                Err(e) => (Err(e), Vec::new()),
            },
            Write::Compact(c) => {
                let result = self.compact(c.revision).map(|()| {
                    Answer::Compact(CompactionResponse {
                        header: Some(header(self.rev)),
                    })
                });
                (result, Vec::new())
            }
        }
    }

    /// What a Put needs at apply: an existing lease, and an existing key for the `ignore_*`
    /// flags.
    pub(crate) fn check_put(
        &self,
        p: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<()> {
        if (p.ignore_value || p.ignore_lease) && self.newest(&p.key).is_none() {
            return Err(Error::KeyNotFound);
        }
        if p.lease != 0 && !lease_exists(p.lease) {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }
}

impl WriteTxn<'_> {
    /// A checked Put.
    pub(crate) fn put_request(&mut self, p: &PutRequest) -> PutResponse {
        let old = self.ks.newest(&p.key);
        let lease = match (old, p.ignore_lease) {
            (Some(old), true) => old.lease,
            _ => p.lease,
        };
        let (value, kept) = match (old, p.ignore_value) {
            (Some(old), true) => (old.value.load(), old.value.clone()),
            _ => (p.value.clone(), self.ks.values.keep(&p.value)),
        };
        let prev = self.put(&p.key, value, kept, lease);
        PutResponse {
            header: Some(header(self.begin + 1)),
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }

    /// A DeleteRange.
    pub(crate) fn delete_request(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let deleted = self.delete_range(&d.key, &d.range_end);
        DeleteRangeResponse {
            header: Some(header(self.read_revision())),
            deleted: deleted.len() as i64,
            prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
        }
    }
}

/// `versions` with one more at the end.
fn appended(versions: &[Version], last: Version) -> Versions {
    versions.iter().cloned().chain([last]).collect()
}

/// A header with only the revision set.
pub fn header(revision: Revision) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}
