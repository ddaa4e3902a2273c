//! The space quota (`--quota-backend-bytes`), checked as etcd 3.4's gRPC layer checks it
//! (`etcdserver/quota.go`): before a put, a txn with puts or a lease grant goes to the log,
//! its cost (etcd's estimate: 256 bytes a put plus its key and value, 64 a lease) is added to
//! the keyspace's size; at or over the quota, this member raises the NOSPACE alarm through
//! the log and the request is refused with `database space exceeded`. The alarm then refuses
//! such writes on every member (see the store's `alarms.rs`) until it is cleared.
//!
//! The size is the keyspace's estimate of what it holds (the `dbSize` that Status reports):
//! keys, values and 64 bytes per version.

use etcd_api::v3::V3Error;
use etcd_v3proto::etcdrs::internal_request::Request as Internal;
use etcd_v3proto::etcdserverpb::alarm_request::AlarmAction;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, RequestOp, TxnRequest};
use tonic::Status;

use super::error::status;
use super::Ctx;

/// etcd's default `--quota-backend-bytes` (2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

/// etcd's estimate of what a key's metadata costs.
const KV_OVERHEAD: usize = 256;
/// etcd's estimate of what a lease costs.
pub(super) const LEASE_OVERHEAD: usize = 64;

/// The quota `--quota-backend-bytes` sets: etcd's default for 0, none (no quota) below 0.
pub fn quota_of(flag: i64) -> Option<u64> {
    match flag {
        0 => Some(DEFAULT_QUOTA_BYTES),
        n if n < 0 => None,
        n => Some(n as u64),
    }
}

/// What a put costs.
pub(super) fn put_cost(p: &PutRequest) -> usize {
    KV_OVERHEAD + p.key.len() + p.value.len()
}

/// What a txn costs: its costlier branch's puts (etcd counts the top level only).
pub(super) fn txn_cost(t: &TxnRequest) -> usize {
    let branch = |ops: &[RequestOp]| {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(p)) => put_cost(p),
                _ => 0,
            })
            .sum::<usize>()
    };
    branch(&t.success).max(branch(&t.failure))
}

impl Ctx {
    /// Lets a request of `cost` through, or raises NOSPACE and refuses it (see the module
    /// docs).
    pub(super) async fn check_quota(&self, cost: usize) -> Result<(), Status> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        if cost == 0 {
            return Ok(());
        }
        let size = self.node.read(|s| s.v3().size());
        if size.saturating_add(cost as u64) < quota {
            return Ok(());
        }
        let raise = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: self.node.id(),
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.write_system(Internal::Alarm(raise)).await {
            tracing::warn!("could not raise the NOSPACE alarm: {e}");
        }
        Err(status(V3Error::NoSpace))
    }
}
