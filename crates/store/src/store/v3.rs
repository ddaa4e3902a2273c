//! The `v3` family: etcd v3 requests (protobuf, from log entries of kind 1) applied to the
//! MVCC keyspace. The keyspace has its own revisions; the v2 tree, its index and its watchers
//! are untouched.

use etcd_mvcc::{Answer, Change, Write};
use etcd_v3proto::etcdrs::{internal_request::Request, InternalRequest};

use super::Store;
use crate::Index;

/// The outcome of applying one v3 request.
#[derive(Debug)]
pub struct AppliedV3 {
    /// What to answer the proposer (the header holds only the revision).
    pub result: etcd_mvcc::Result<Answer>,
    /// The keyspace changes made, in order.
    pub changes: Vec<Change>,
}

impl<W> Store<W> {
    /// Applies the v3 request of log entry `index`. Indexes must increase.
    pub fn apply_v3(&mut self, index: Index, req: InternalRequest) -> AppliedV3 {
        debug_assert!(index > self.applied, "log index {index} applied twice");
        self.applied = index;
        let write = match req.request {
            Some(Request::Put(p)) => Write::Put(p),
            Some(Request::DeleteRange(d)) => Write::DeleteRange(d),
            Some(Request::Txn(t)) => Write::Txn(t),
            Some(Request::Compaction(c)) => Write::Compact(c),
            // Leases are not served yet: a request of theirs in the log cannot have been
            // proposed by this release.
            Some(Request::LeaseGrant(_)) | Some(Request::LeaseRevoke(_)) | None => {
                return AppliedV3 {
                    result: Err(etcd_mvcc::Error::LeaseNotFound),
                    changes: Vec::new(),
                }
            }
        };
        let (result, changes) = self.v3.apply(&write, &|_lease| false);
        AppliedV3 { result, changes }
    }
}
