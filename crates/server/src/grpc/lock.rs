//! The Lock service (`v3lockpb.Lock`): etcd's mutex recipe (clientv3 `concurrency.Mutex`, run
//! by the server as etcd 3.4's `v3lock` does) over this member's own KV, Lease and Watch
//! services (`local.rs`).
//!
//! A lock `name` is held by whoever has the oldest key under `name/`: Lock puts
//! `name/<lease in hex>` on the caller's lease (unless the key is already there), then waits
//! until every key under the prefix created before its own is deleted (by Unlock, or by its
//! lease ending). A caller that goes away while waiting has its key deleted, as etcd does when
//! the request's context ends. Without a lease, the lock gets a new 60-second lease that
//! nobody keeps alive (etcd's session default).

use std::sync::Arc;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::range_request::SortOrder;
use etcd_v3proto::etcdserverpb::response_op::Response as OpResp;
use etcd_v3proto::etcdserverpb::TxnRequest;
use etcd_v3proto::v3lockpb::lock_server;
use etcd_v3proto::v3lockpb::*;
use tonic::{Request, Response, Status};

use super::local::{created_at, delete_op, get, put_op, range_op, session_key, top, Local, OnDrop};
use super::Ctx;

/// The Lock service.
pub struct Lock(pub Arc<Ctx>);

#[tonic::async_trait]
impl lock_server::Lock for Lock {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let req = req.into_inner();
        let lease = local.session_lease(req.lease).await?;
        let (prefix, key) = session_key(&req.name, lease);
        // Put the key unless it is there; either way, read the oldest key under the prefix.
        let owner = range_op(top(&prefix, SortOrder::Ascend));
        let resp = local
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, Bytes::new(), lease), owner.clone()],
                failure: vec![range_op(get(&key)), owner],
            })
            .await?;
        let range = |i: usize| match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
            Some(OpResp::ResponseRange(r)) => Ok(r.clone()),
            _ => Err(Status::internal("etcd-rs: a lock txn without its reads")),
        };
        let mine = if resp.succeeded {
            resp.header.as_ref().map_or(0, |h| h.revision)
        } else {
            // The compare failed, so the same txn's read finds the key; were it missing,
            // there would be nothing to hold.
            match range(0)?.kvs.first() {
                Some(kv) => kv.create_revision,
                None => return Err(Status::unknown("mutex: session is expired")),
            }
        };
        let oldest = range(1)?;
        if oldest
            .kvs
            .first()
            .is_none_or(|kv| kv.create_revision == mine)
        {
            return Ok(Response::new(LockResponse {
                header: resp.header,
                key,
            }));
        }
        // Wait for the older keys to go. If the wait fails, or this future is dropped first
        // (the caller went away), the guard deletes the key, as etcd unlocks then.
        let unlock = TxnRequest {
            success: vec![delete_op(&key)],
            ..Default::default()
        };
        let guard = OnDrop::arm(&local, unlock);
        let header = local.wait_deletes(&prefix, mine - 1).await?;
        guard.disarm();
        Ok(Response::new(LockResponse { header, key }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let key = req.into_inner().key;
        let resp = local.delete(key).await?;
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}
