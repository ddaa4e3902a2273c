//! The KV service: Range, Put, DeleteRange, Txn and Compact (etcd 3.4 `v3rpc/key.go` for the
//! checks made before the log, `etcdserver/v3_server.go` for how each is served).

use std::sync::Arc;

use etcd_api::v3::V3Error;
use etcd_mvcc::{Answer, Write};
use etcd_store::{Command, ReadCheck};
use etcd_v3proto::etcdrs::internal_request::Request as Internal;
use etcd_v3proto::etcdserverpb::kv_server;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::error::{status, transient};
use super::Ctx;

/// The KV service.
pub struct Kv(pub Arc<Ctx>);

impl Kv {
    /// Waits until this member has applied everything committed before the call (a no-op
    /// entry through the log), so that a read served afterwards is linearizable.
    async fn linearize(&self) -> Result<(), Status> {
        match self.0.node.propose(Command::Read).await {
            Ok(_) => Ok(()),
            Err(t) => Err(transient(t, self.0.node.leader_id().is_some())),
        }
    }

    /// Refuses a request that asks for a leader (`hasleader` metadata) when none is known.
    fn require_leader<T>(&self, req: &Request<T>) -> Result<(), Status> {
        if super::wants_leader(req) && self.0.node.leader_id().is_none() {
            return Err(status(V3Error::NoLeader));
        }
        Ok(())
    }
}

/// The answer with its header completed.
fn fill<T>(
    ctx: &Ctx,
    mut resp: T,
    header: impl FnOnce(&mut T) -> &mut Option<etcd_v3proto::etcdserverpb::ResponseHeader>,
) -> Response<T> {
    ctx.fill(header(&mut resp));
    Response::new(resp)
}

#[tonic::async_trait]
impl kv_server::Kv for Kv {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.require_leader(&req)?;
        crate::metrics::metrics().range_total.inc();
        let caller = self.0.caller(&req).await?;
        let r = req.into_inner();
        if r.key.is_empty() {
            return Err(status(V3Error::KeyNotProvided));
        }
        if !r.serializable {
            if self.0.node.is_learner() {
                return Err(status(V3Error::NotSupportedForLearner));
            }
            self.linearize().await?;
        }
        let resp = self
            .0
            .node
            .read(|s| {
                s.check_read(caller.who(), &ReadCheck::Range(&r.key, &r.range_end))?;
                s.v3().range(&r)
            })
            .map_err(status)?;
        Ok(fill(&self.0, resp, |r| &mut r.header))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.require_leader(&req)?;
        crate::metrics::metrics().put_total.inc();
        let caller = self.0.caller(&req).await?;
        let p = req.into_inner();
        if p.key.is_empty() {
            return Err(status(V3Error::KeyNotProvided));
        }
        if p.ignore_value && !p.value.is_empty() {
            return Err(status(V3Error::ValueProvided));
        }
        if p.ignore_lease && p.lease != 0 {
            return Err(status(V3Error::LeaseProvided));
        }
        self.0.check_quota(super::quota::put_cost(&p)).await?;
        match self.0.write(&caller, Internal::Put(p)).await? {
            Answer::Put(resp) => Ok(fill(&self.0, resp, |r| &mut r.header)),
            other => Err(mismatch(other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        self.require_leader(&req)?;
        let caller = self.0.caller(&req).await?;
        let d = req.into_inner();
        if d.key.is_empty() {
            return Err(status(V3Error::KeyNotProvided));
        }
        match self.0.write(&caller, Internal::DeleteRange(d)).await? {
            Answer::DeleteRange(resp) => Ok(fill(&self.0, resp, |r| &mut r.header)),
            other => Err(mismatch(other)),
        }
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.require_leader(&req)?;
        let caller = self.0.caller(&req).await?;
        let t = req.into_inner();
        etcd_mvcc::check_txn(&t, self.0.max_txn_ops).map_err(status)?;
        if etcd_mvcc::is_read_only(&t) {
            // Served like a read: on a clone of the keyspace (O(1)), never through the log.
            if !serializable(&t) {
                self.linearize().await?;
            }
            let mut keyspace = self
                .0
                .node
                .read(|s| {
                    s.check_read(caller.who(), &ReadCheck::Txn(&t))
                        .map(|()| s.v3().clone())
                })
                .map_err(status)?;
            return match keyspace.apply(&Write::Txn(t), &|_| false).0 {
                Ok(Answer::Txn(resp)) => Ok(fill(&self.0, resp, |r| &mut r.header)),
                Ok(other) => Err(mismatch(other)),
                Err(e) => Err(status(e)),
            };
        }
        self.0.check_quota(super::quota::txn_cost(&t)).await?;
        match self.0.write(&caller, Internal::Txn(t)).await? {
            Answer::Txn(resp) => Ok(fill(&self.0, resp, |r| &mut r.header)),
            other => Err(mismatch(other)),
        }
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        self.require_leader(&req)?;
        let caller = self.0.caller(&req).await?;
        // Compaction happens as the entry applies, so `physical` is always honoured.
        match self
            .0
            .write(&caller, Internal::Compaction(req.into_inner()))
            .await?
        {
            Answer::Compact(resp) => Ok(fill(&self.0, resp, |r| &mut r.header)),
            other => Err(mismatch(other)),
        }
    }
}

/// True when every range of a read-only txn, at any depth, is serializable (etcd serves such
/// a txn from local state).
fn serializable(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            Some(Op::RequestTxn(t)) => serializable(t),
            _ => true,
        })
}

/// An answer of another kind than the request's: a bug, reported rather than panicking.
fn mismatch(answer: Answer) -> Status {
    tracing::error!(
        ?answer,
        "a v3 write was answered with another kind of answer"
    );
    Status::internal("etcd-rs: mismatched answer")
}
