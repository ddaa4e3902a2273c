//! The Lease service (etcd 3.4 `v3rpc/lease.go`, `etcdserver/v3_server.go`).
//!
//! Grant and revoke go through the log. Time is the leader's alone: keep-alives and
//! time-to-live questions are answered by the leader's driver, and a follower forwards them
//! to the leader over the peer API (`POST /v3rs/lease/…`), as etcd's followers do. Expiry is
//! the leader proposing the revocation (see `raft/driver.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_api::v3::V3Error;
use etcd_mvcc::Answer;
use etcd_v3proto::etcdrs::{internal_request::Request as Internal, InternalRequest};
use etcd_v3proto::etcdserverpb::lease_server;
use etcd_v3proto::etcdserverpb::*;
use futures_util::Stream;
use prost::Message as _;
use tonic::{Request, Response, Status, Streaming};

use super::error::{status, transient};
use super::Ctx;

/// How long a forwarded keep-alive or time-to-live may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The Lease service.
pub struct Lease(pub Arc<Ctx>);

impl Ctx {
    /// Asks the leader (this member, or the leader over the peer API) a lease question:
    /// `what` is `keepalive` or `timetolive`.
    async fn ask_leader(&self, what: &str, id: i64) -> Result<Result<i64, V3Error>, Status> {
        let node = &self.node;
        if node.is_leader() {
            let local = match what {
                "keepalive" => node.lease_keep_alive(id).await,
                _ => node.lease_time_to_live(id).await,
            };
            match local {
                Ok(Err(V3Error::NotLeader)) => {}
                Ok(answer) => return Ok(answer),
                Err(t) => return Err(transient(t, node.leader_id().is_some())),
            }
        }
        let Some(leader) = node.leader_id() else {
            return Err(status(V3Error::NoLeader));
        };
        let Some(url) = node.read(|s| s.peer_urls().get(&leader).cloned()) else {
            return Err(status(V3Error::NoLeader));
        };
        let body = LeaseTimeToLiveRequest { id, keys: false }.encode_to_vec();
        let path = format!("/v3rs/lease/{what}");
        let answer = crate::transport::post_once(
            &url,
            self.peer_tls.as_ref(),
            None,
            &path,
            body,
            FORWARD_TIMEOUT,
        );
        match answer.await {
            Ok((200, body)) if body.len() == 8 => Ok(Ok(i64::from_le_bytes(
                body[..].try_into().expect("8 bytes"),
            ))),
            Ok((404, _)) => Ok(Err(V3Error::LeaseNotFound)),
            // The leader changed meanwhile: the client tries again.
            Ok(_) => Err(status(V3Error::LeaderChanged)),
            Err(e) => {
                tracing::debug!(%url, "forwarding a lease {what} to the leader failed: {e}");
                Err(status(V3Error::LeaderChanged))
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl lease_server::Lease for Lease {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let caller = self.0.caller(&req).await?;
        let mut g = req.into_inner();
        if g.ttl > etcd_mvcc::MAX_LEASE_TTL {
            return Err(status(V3Error::LeaseTtlTooLarge));
        }
        // etcd raises a TTL below the minimum (and the answer shows the raised TTL).
        g.ttl = g.ttl.max(self.0.min_lease_ttl);
        if g.id == 0 {
            // Chosen here, so that every member applies the same id.
            g.id = random_lease_id();
        }
        self.0.check_quota(super::quota::LEASE_OVERHEAD).await?;
        match self.0.write(&caller, Internal::LeaseGrant(g)).await? {
            Answer::LeaseGrant(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("etcd-rs: mismatched answer")),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let caller = self.0.caller(&req).await?;
        match self
            .0
            .write(&caller, Internal::LeaseRevoke(req.into_inner()))
            .await?
        {
            Answer::LeaseRevoke(mut resp) => {
                self.0.fill(&mut resp.header);
                Ok(Response::new(resp))
            }
            _ => Err(Status::internal("etcd-rs: mismatched answer")),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let ctx = self.0.clone();
        let incoming = req.into_inner();
        // One answer per request, in order; the stream ends after an error (the client
        // opens a new one).
        let stream = futures_util::stream::unfold(Some((ctx, incoming)), |state| async move {
            let (ctx, mut incoming) = state?;
            let req = match incoming.message().await {
                Ok(Some(req)) => req,
                // The client closed its side, or went away.
                Ok(None) | Err(_) => return None,
            };
            match ctx.ask_leader("keepalive", req.id).await {
                // An unknown lease is answered with TTL 0, not an error.
                Ok(ttl) => {
                    let resp = LeaseKeepAliveResponse {
                        header: Some(ctx.header(ctx.revision())),
                        id: req.id,
                        ttl: ttl.unwrap_or(0),
                    };
                    Some((Ok(resp), Some((ctx, incoming))))
                }
                Err(s) => Some((Err(s), None)),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        let remaining = self.0.ask_leader("timetolive", r.id).await?;
        let (granted, keys, revision) = self.0.node.read(|s| {
            let lease = s.leases().get(r.id);
            (
                lease.map(|l| l.ttl),
                lease.map(|l| l.keys.iter().cloned().collect::<Vec<_>>()),
                s.v3().revision(),
            )
        });
        let resp = match (remaining, granted) {
            (Ok(ttl), Some(granted)) => LeaseTimeToLiveResponse {
                header: Some(self.0.header(revision)),
                id: r.id,
                ttl,
                granted_ttl: granted,
                keys: if r.keys {
                    keys.unwrap_or_default()
                } else {
                    Vec::new()
                },
            },
            // A missing lease is answered with TTL -1, not an error.
            _ => LeaseTimeToLiveResponse {
                header: Some(self.0.header(revision)),
                id: r.id,
                ttl: -1,
                ..Default::default()
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let (leases, revision) = self.0.node.read(|s| {
            let leases = s
                .leases()
                .iter()
                .map(|(id, _)| LeaseStatus { id })
                .collect();
            (leases, s.v3().revision())
        });
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.0.header(revision)),
            leases,
        }))
    }
}

/// A random positive lease id.
fn random_lease_id() -> i64 {
    loop {
        let id = (crate::cluster::new_member_id() >> 1) as i64;
        if id > 0 {
            return id;
        }
    }
}

impl Ctx {
    /// Puts a v3 request of `caller` through the log and returns its answer once applied
    /// here (the store checks the caller's permissions as it applies).
    pub(super) async fn write(
        &self,
        caller: &super::caller::Caller,
        request: Internal,
    ) -> Result<Answer, Status> {
        self.propose(InternalRequest {
            request: Some(request),
            username: caller.user.clone(),
            auth_revision: caller.revision,
            time: crate::clock::now(),
            ..Default::default()
        })
        .await
    }

    /// Puts a v3 request of this member's own through the log (not checked against auth).
    pub(super) async fn write_system(&self, request: Internal) -> Result<Answer, Status> {
        self.propose(InternalRequest {
            request: Some(request),
            system: true,
            time: crate::clock::now(),
            ..Default::default()
        })
        .await
    }

    async fn propose(&self, request: InternalRequest) -> Result<Answer, Status> {
        if request.encoded_len() > self.max_request_bytes {
            return Err(status(V3Error::RequestTooLarge));
        }
        match self.node.propose_v3(request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(status(e)),
            Err(t) => Err(transient(t, self.node.leader_id().is_some())),
        }
    }

    /// The keyspace's current revision here.
    pub(super) fn revision(&self) -> i64 {
        self.node.read(|s| s.v3().revision())
    }
}
