//! The Election service (`v3electionpb.Election`): etcd's election recipe (clientv3
//! `concurrency.Election`, run by the server as etcd 3.4's `v3election` does) over this
//! member's own KV, Lease and Watch services (`local.rs`).
//!
//! A candidate puts `name/<lease in hex>` with its value on its lease; the oldest key under
//! `name/` leads, and its value is the election's. Campaign waits until every older key is
//! gone; Proclaim and Resign act only while the leader key is still the one campaigned for
//! (same create revision); Leader reads the oldest key; Observe streams the leader and each
//! value it proclaims, then the next leader when the key goes. Errors that are not etcd's
//! (`election: no leader`, `election: not leader`, a missing leader key) carry gRPC's
//! `Unknown` code and etcd's text, as a Go error does through etcd's gRPC server.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::range_request::SortOrder;
use etcd_v3proto::etcdserverpb::response_op::Response as OpResp;
use etcd_v3proto::etcdserverpb::{TxnRequest, TxnResponse, WatchCreateRequest};
use etcd_v3proto::mvccpb::event::EventType;
use etcd_v3proto::v3electionpb::election_server;
use etcd_v3proto::v3electionpb::*;
use futures_util::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::local::{
    created_at, delete_op, get, prefix_end, prefix_of, put_op, range_op, session_key, top, Local,
    OnDrop,
};
use super::Ctx;

/// The Election service.
pub struct Election(pub Arc<Ctx>);

fn no_leader() -> Status {
    Status::unknown("election: no leader")
}

fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

fn leader_missing() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

/// The txn that resigns `leader`: deletes its key if it is still the same key.
fn resign_txn(leader: &LeaderKey) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(&leader.key, leader.rev)],
        success: vec![delete_op(&leader.key)],
        failure: Vec::new(),
    }
}

impl Election {
    /// Sets `leader`'s value, if it still leads (clientv3 `Election.Proclaim`).
    async fn proclaim_as(
        &self,
        local: &Local,
        leader: &LeaderKey,
        value: Bytes,
    ) -> Result<TxnResponse, Status> {
        let lease = local.session_lease(leader.lease).await?;
        let resp = local
            .txn(TxnRequest {
                compare: vec![created_at(&leader.key, leader.rev)],
                success: vec![put_op(&leader.key, value, lease)],
                failure: Vec::new(),
            })
            .await?;
        if !resp.succeeded {
            return Err(not_leader());
        }
        Ok(resp)
    }
}

#[tonic::async_trait]
impl election_server::Election for Election {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let req = req.into_inner();
        let lease = local.session_lease(req.lease).await?;
        let (prefix, key) = session_key(&req.name, lease);
        let resp = local
            .txn(TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![put_op(&key, req.value.clone(), lease)],
                failure: vec![range_op(get(&key))],
            })
            .await?;
        let mut leader = LeaderKey {
            name: req.name.clone(),
            key: key.clone(),
            rev: resp.header.as_ref().map_or(0, |h| h.revision),
            lease,
        };
        if !resp.succeeded {
            // Already a candidate with this lease: the same candidacy, its value updated.
            let existing = match resp.responses.first().and_then(|r| r.response.as_ref()) {
                Some(OpResp::ResponseRange(r)) => r.kvs.first().cloned(),
                _ => None,
            };
            let Some(existing) = existing else {
                return Err(Status::internal("etcd-rs: a campaign txn without its read"));
            };
            leader.rev = existing.create_revision;
            if existing.value != req.value {
                if let Err(e) = self.proclaim_as(&local, &leader, req.value.clone()).await {
                    let _ = local.txn(resign_txn(&leader)).await;
                    return Err(e);
                }
            }
        }
        // Wait until every older candidate is gone. A caller that goes away meanwhile
        // resigns (etcd resigns when the request's context ends).
        let guard = OnDrop::arm(&local, resign_txn(&leader));
        let waited = local.wait_deletes(&prefix, leader.rev - 1).await;
        guard.disarm();
        waited?;
        Ok(Response::new(CampaignResponse {
            header: resp.header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(leader_missing)?;
        let resp = self.proclaim_as(&local, &leader, req.value).await?;
        Ok(Response::new(ProclaimResponse {
            header: resp.header,
        }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let prefix = prefix_of(&req.into_inner().name);
        let resp = local.range(top(&prefix, SortOrder::Ascend)).await?;
        let kv = resp.kvs.into_iter().next().ok_or_else(no_leader)?;
        Ok(Response::new(LeaderResponse {
            header: resp.header,
            kv: Some(kv),
        }))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let prefix = prefix_of(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(observe(local, prefix, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let local = Local::of(&self.0, &req).await?;
        let leader = req.into_inner().leader.ok_or_else(leader_missing)?;
        // As etcd's session for the leader's lease (a new lease if it names none).
        local.session_lease(leader.lease).await?;
        let resp = local.txn(resign_txn(&leader)).await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

/// Observe's task (clientv3 `Election.observe`): sends the leader, then every value it
/// proclaims; when its key goes, the next leader (waiting for one if there is none). Ends
/// when the caller goes away or a read or watch fails.
async fn observe(local: Local, prefix: Bytes, tx: mpsc::Sender<Result<LeaderResponse, Status>>) {
    loop {
        let Ok(resp) = local.range(top(&prefix, SortOrder::Ascend)).await else {
            return;
        };
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => {
                // No leader yet: the first key put under the prefix from here on.
                let from = resp.header.as_ref().map_or(0, |h| h.revision);
                let mut watch = local.watch(WatchCreateRequest {
                    key: prefix.clone(),
                    range_end: prefix_end(&prefix),
                    start_revision: from,
                    ..Default::default()
                });
                loop {
                    let Some(Ok(r)) = watch.recv().await else {
                        return;
                    };
                    if r.canceled {
                        return;
                    }
                    let put = r
                        .events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = put {
                        let mut header = r.header;
                        if let Some(h) = header.as_mut() {
                            h.revision = kv.mod_revision;
                        }
                        break (header, kv);
                    }
                }
            }
        };
        let from = header.as_ref().map_or(0, |h| h.revision) + 1;
        let key = kv.key.clone();
        if tx
            .send(Ok(LeaderResponse {
                header,
                kv: Some(kv),
            }))
            .await
            .is_err()
        {
            return;
        }
        // The leader's new values, until its key goes.
        let mut watch = local.watch(WatchCreateRequest {
            key,
            start_revision: from,
            ..Default::default()
        });
        'leader: loop {
            let Some(Ok(r)) = watch.recv().await else {
                return;
            };
            if r.canceled {
                return;
            }
            for e in r.events {
                if e.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                let answer = LeaderResponse {
                    header: r.header,
                    kv: e.kv,
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        }
    }
}
