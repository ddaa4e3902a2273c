//! The `v3` family: etcd v3 requests (protobuf, from log entries of kind 1) applied to the
//! MVCC keyspace and the leases beside it. The keyspace has its own revisions; the v2 tree,
//! its index and its watchers are untouched.
//!
//! Leases and keys meet here: a write may only name a lease that exists, every write's
//! changes attach keys to (or detach them from) their leases, and a revocation (asked by a
//! client, or proposed by the leader when the lease ran out) deletes the lease's keys in one
//! revision.

use etcd_mvcc::pb::{LeaseGrantResponse, LeaseRevokeResponse};
use etcd_mvcc::{header, Answer, Change, Write};
use etcd_v3proto::etcdrs::{internal_request::Request, InternalRequest};

use super::v3auth::TokenChange;
use super::Store;
use crate::v3auth::Who;
use crate::Index;

/// The outcome of applying one v3 request.
#[derive(Debug)]
pub struct AppliedV3 {
    /// What to answer the proposer (the header holds only the revision).
    pub result: etcd_mvcc::Result<Answer>,
    /// The keyspace changes made, in order.
    pub changes: Vec<Change>,
    /// A lease granted or revoked (the leader's clock follows it).
    pub lease: Option<LeaseChange>,
    /// What the member's auth tokens must follow.
    pub tokens: Option<TokenChange>,
}

impl AppliedV3 {
    fn answer(result: etcd_mvcc::Result<Answer>) -> AppliedV3 {
        AppliedV3 {
            result,
            changes: Vec::new(),
            lease: None,
            tokens: None,
        }
    }
}

/// What a v3 request did to the leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// Lease `id` was granted for `ttl` seconds.
    Granted {
        /// The lease.
        id: i64,
        /// Its TTL in seconds.
        ttl: i64,
    },
    /// Lease `id` was revoked (or expired).
    Revoked(i64),
}

impl<W> Store<W> {
    /// Applies the v3 request of log entry `index`. Indexes must increase.
    pub fn apply_v3(&mut self, index: Index, req: InternalRequest) -> AppliedV3 {
        debug_assert!(index > self.applied, "log index {index} applied twice");
        self.applied = index;
        if let Some(e) = self.refused_by_alarm(&req.request) {
            return AppliedV3::answer(Err(e));
        }
        if !req.system {
            let who = Who {
                user: &req.username,
                revision: req.auth_revision,
            };
            if let Err(e) = self.check_v3_auth(who, &req.request) {
                return AppliedV3::answer(Err(e));
            }
        }
        if let Some((result, tokens)) = req
            .request
            .as_ref()
            .and_then(|r| self.apply_auth_v3(index, r))
        {
            return AppliedV3 {
                tokens,
                ..AppliedV3::answer(result)
            };
        }
        let write = match req.request {
            Some(Request::Put(p)) => Write::Put(p),
            Some(Request::DeleteRange(d)) => Write::DeleteRange(d),
            Some(Request::Txn(t)) => Write::Txn(t),
            Some(Request::Compaction(c)) => Write::Compact(c),
            Some(Request::LeaseGrant(g)) => {
                let result = self.leases.grant(g.id, g.ttl).map(|()| {
                    Answer::LeaseGrant(LeaseGrantResponse {
                        header: Some(header(self.v3.revision())),
                        id: g.id,
                        ttl: g.ttl,
                        error: String::new(),
                    })
                });
                let lease = result.is_ok().then_some(LeaseChange::Granted {
                    id: g.id,
                    ttl: g.ttl,
                });
                return AppliedV3 {
                    lease,
                    ..AppliedV3::answer(result)
                };
            }
            Some(Request::Alarm(a)) => {
                return AppliedV3::answer(Ok(Answer::Alarm(self.apply_alarm(&a))));
            }
            Some(Request::LeaseRevoke(r)) => {
                return match self.leases.revoke(r.id) {
                    Ok(lease) => {
                        let changes = self.v3.delete_keys(lease.keys);
                        AppliedV3 {
                            result: Ok(Answer::LeaseRevoke(LeaseRevokeResponse {
                                header: Some(header(self.v3.revision())),
                            })),
                            changes,
                            lease: Some(LeaseChange::Revoked(r.id)),
                            tokens: None,
                        }
                    }
                    Err(e) => AppliedV3::answer(Err(e)),
                };
            }
            // A request of a kind this release does not know (a newer member proposed it):
            // refused alike on every member of this release.
            None => return AppliedV3::answer(Err(etcd_mvcc::Error::NotCapable)),
            // Applied above.
            Some(_) => return AppliedV3::answer(Err(etcd_mvcc::Error::NotCapable)),
        };
        let leases = &self.leases;
        let (result, changes) = self.v3.apply(&write, &|id| leases.exists(id));
        self.leases.track(&changes);
        AppliedV3 {
            result,
            changes,
            lease: None,
            tokens: None,
        }
    }
}
