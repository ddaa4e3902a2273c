//! The services' own client: KV, Lease and Watch calls made in-process by the services that
//! etcd builds on top of them (Lock and Election, `lock.rs` and `election.rs`), as etcd's
//! server runs its lock and election recipes through an embedded client.
//!
//! Each call goes through the same service code a remote client's does (the same checks,
//! the same path through the log, the same linearizable reads and watch streams), only
//! without the network. It owns nothing; it holds no state between calls.
//!
//! Its errors keep etcd's message under gRPC's `Unknown` code, as etcd's do: its embedded
//! client turns a status into a plain Go error, which etcd's gRPC server then answers as
//! `Unknown` (checked against etcd 3.4: a Lock on a missing lease is `Unknown`
//! `etcdserver: requested lease not found`, where a Put says `NotFound`).

use std::sync::Arc;

use bytes::Bytes;
use etcd_api::v3::V3Error;
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_server::Kv as _;
use etcd_v3proto::etcdserverpb::lease_server::Lease as _;
use etcd_v3proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::mvccpb::event::EventType;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tonic::{Request, Status};

use super::caller::{Caller, Credentials};
use super::error::status;
use super::Ctx;

/// The lease TTL of a session that brings no lease (clientv3's `concurrency` default).
const SESSION_TTL: i64 = 60;

/// The services' in-process client. See the module docs.
#[derive(Clone)]
pub(super) struct Local {
    ctx: Arc<Ctx>,
    /// On whose behalf the calls are made (the recipe's own caller: its permissions apply).
    caller: Caller,
}

impl Local {
    /// The client of a call to a recipe service from `req`'s caller.
    pub(super) async fn of<T>(ctx: &Arc<Ctx>, req: &Request<T>) -> Result<Local, Status> {
        Ok(Local {
            caller: ctx.caller(req).await.map_err(embedded)?,
            ctx: ctx.clone(),
        })
    }

    /// A request of this client's caller.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.extensions_mut().insert(self.caller.clone());
        r
    }

    pub(super) async fn txn(&self, t: TxnRequest) -> Result<TxnResponse, Status> {
        let kv = super::kv::Kv(self.ctx.clone());
        Ok(kv
            .txn(self.request(t))
            .await
            .map_err(embedded)?
            .into_inner())
    }

    pub(super) async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        let kv = super::kv::Kv(self.ctx.clone());
        Ok(kv
            .range(self.request(r))
            .await
            .map_err(embedded)?
            .into_inner())
    }

    /// Deletes `key` alone.
    pub(super) async fn delete(&self, key: Bytes) -> Result<DeleteRangeResponse, Status> {
        let kv = super::kv::Kv(self.ctx.clone());
        let d = DeleteRangeRequest {
            key,
            ..Default::default()
        };
        Ok(kv
            .delete_range(self.request(d))
            .await
            .map_err(embedded)?
            .into_inner())
    }

    /// The lease a recipe's keys go on: `lease`, or (for 0) a new one of [`SESSION_TTL`]
    /// seconds that nobody keeps alive, as a clientv3 session without a lease makes and then
    /// orphans.
    pub(super) async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let leases = super::lease::Lease(self.ctx.clone());
        let grant = LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        };
        Ok(leases
            .lease_grant(self.request(grant))
            .await
            .map_err(embedded)?
            .into_inner()
            .id)
    }

    /// A watch stream with the one watch `create`: its responses (the creation's first), until
    /// the receiver is dropped.
    pub(super) fn watch(&self, create: WatchCreateRequest) -> mpsc::Receiver<super::watch::Out> {
        let request = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        };
        // The request stream stays open (pending) so that the watch lives on.
        let incoming =
            futures_util::stream::iter([Ok(request)]).chain(futures_util::stream::pending());
        let credentials = Credentials::of(&self.request(()));
        super::watch::open(self.ctx.clone(), Box::pin(incoming), false, credentials)
    }

    /// Waits until `key` is deleted at or after revision `from` (clientv3 `waitDelete`).
    pub(super) async fn wait_delete(&self, key: Bytes, from: i64) -> Result<(), Status> {
        let mut responses = self.watch(WatchCreateRequest {
            key,
            start_revision: from,
            ..Default::default()
        });
        while let Some(r) = responses.recv().await {
            let r = r.map_err(embedded)?;
            if r.compact_revision != 0 {
                return Err(embedded(status(V3Error::Compacted)));
            }
            if r.canceled {
                return Err(Status::unknown("lost watcher waiting for delete"));
            }
            if r.events
                .iter()
                .any(|e| e.r#type == EventType::Delete as i32)
            {
                return Ok(());
            }
        }
        Err(Status::unknown("lost watcher waiting for delete"))
    }

    /// Waits until every key under `prefix` created at or below `max_create` is deleted
    /// (clientv3 `waitDeletes`: the newest such key, until none is left). Returns the header
    /// of the read that found none.
    pub(super) async fn wait_deletes(
        &self,
        prefix: &Bytes,
        max_create: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let mut last = top(prefix, SortOrder::Descend);
            last.max_create_revision = max_create;
            let r = self.range(last).await?;
            let Some(kv) = r.kvs.first() else {
                return Ok(r.header);
            };
            let at = r.header.as_ref().map_or(0, |h| h.revision);
            self.wait_delete(kv.key.clone(), at).await?;
        }
    }
}

/// `name/`: where a lock's or an election's keys live.
pub(super) fn prefix_of(name: &[u8]) -> Bytes {
    Bytes::from([name, b"/"].concat())
}

/// The prefix of lock or election `name`, and the key a session on `lease` holds under it:
/// `name/<lease in hex>` (clientv3 `concurrency`'s naming).
pub(super) fn session_key(name: &[u8], lease: i64) -> (Bytes, Bytes) {
    let prefix = prefix_of(name);
    let key = Bytes::from([&prefix[..], format!("{lease:x}").as_bytes()].concat());
    (prefix, key)
}

/// The first (`Ascend`) or last (`Descend`) created key under `prefix` (clientv3's
/// `WithFirstCreate` / `WithLastCreate`).
pub(super) fn top(prefix: &Bytes, order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.clone(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The end of the range of every key starting with `prefix` (clientv3 `GetPrefixRangeEnd`).
pub(super) fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    // Every byte 0xff: no end, every key from the prefix on.
    Bytes::from_static(b"\0")
}

/// A compare that `key`'s create revision is `rev` (0: the key is absent).
pub(super) fn created_at(key: &Bytes, rev: i64) -> Compare {
    Compare {
        key: key.clone(),
        target: CompareTarget::Create as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::CreateRevision(rev)),
        range_end: Bytes::new(),
    }
}

/// A put of `key` on `lease` as a txn op.
pub(super) fn put_op(key: &Bytes, value: Bytes, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.clone(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

/// A read as a txn op.
pub(super) fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(r)),
    }
}

/// A read of `key` alone.
pub(super) fn get(key: &Bytes) -> RangeRequest {
    RangeRequest {
        key: key.clone(),
        ..Default::default()
    }
}

/// A delete of `key` alone as a txn op.
pub(super) fn delete_op(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
            key: key.clone(),
            ..Default::default()
        })),
    }
}

/// A txn that undoes a recipe's step (deletes a lock's key, resigns a candidacy) when its
/// call ends without finishing: dropped while waiting (the caller went away, as etcd's
/// request context ending) or failed. [`OnDrop::disarm`] once the step stands.
pub(super) struct OnDrop(Option<(Local, TxnRequest)>);

impl OnDrop {
    pub(super) fn arm(local: &Local, undo: TxnRequest) -> OnDrop {
        OnDrop(Some((local.clone(), undo)))
    }

    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some((local, undo)) = self.0.take() {
            tokio::spawn(async move {
                if let Err(e) = local.txn(undo).await {
                    tracing::warn!("could not undo an abandoned lock or campaign: {e}");
                }
            });
        }
    }
}

/// An error of an in-process call as etcd's embedded client passes it on: its message, with
/// gRPC's `Unknown` code (see the module docs).
pub(super) fn embedded(s: Status) -> Status {
    Status::unknown(s.message().to_string())
}
