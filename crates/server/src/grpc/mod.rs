//! etcd's v3 API over gRPC: one tonic service per file, each talking only to the door
//! ([`crate::node::Node`]).
//!
//! - `kv.rs`: Range, Put, DeleteRange, Txn, Compact;
//! - `maintenance.rs`: Status, Hash, HashKV, MoveLeader, Defragment, Alarm;
//! - `quota.rs`: the space quota checked before writes that grow the keyspace;
//! - `watch.rs`: Watch (many watches per stream, catch-up from history, progress);
//! - `lease.rs`: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive, LeaseLeases;
//! - `cluster.rs`: MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote;
//! - `lock.rs`: `v3lockpb.Lock` (Lock, Unlock) and `election.rs`: `v3electionpb.Election`
//!   (Campaign, Proclaim, Leader, Observe, Resign): etcd's recipes over the services above,
//!   called in-process through `local.rs`;
//! - `auth.rs`: Auth (users, roles, permissions, tokens) and `caller.rs`: who sent a
//!   request (token or client certificate), which every service passes on with its
//!   writes and checks its reads against;
//! - `health.rs`: `grpc.health.v1.Health` (SERVING while a leader is known);
//! - `authority.rs`: fixes the URL that etcd's Go client 3.4 sends as the HTTP/2 authority
//!   of some calls, which the h2 crate would refuse;
//! - `gateway.rs`: etcd's HTTP/JSON gateway (`POST /v3/...`), put through the services
//!   above in-process;
//! - `error.rs`: the one mapping from etcd's v3 errors (`etcd_api::v3`) and the node's
//!   transient failures to gRPC statuses.
//!
//! Requests are checked here as etcd's gRPC layer checks them (empty keys, txn size and
//! duplicate keys, the request size limit) before they reach the log; the state machine
//! decides everything else, on every member alike. Writes travel through the log as
//! `etcdrs.InternalRequest` and are answered once applied here; reads are served from this
//! member's keyspace, after a round through the log unless the request is serializable.
//!
//! Served on the client port beside HTTP/1.1 (see `crate::server`): a request whose
//! `content-type` is `application/grpc…` comes here.
//!
//! Not yet served (answered `Unimplemented`): learners, Maintenance.Snapshot and Downgrade.

mod auth;
pub(crate) mod authority;
mod caller;
mod cluster;
mod election;
mod error;
pub mod gateway;
mod health;
mod kv;
mod lease;
mod local;
mod lock;
mod maintenance;
pub mod quota;
mod watch;

use std::sync::Arc;

use etcd_v3proto::etcdserverpb::auth_server::AuthServer;
use etcd_v3proto::etcdserverpb::cluster_server::ClusterServer;
use etcd_v3proto::etcdserverpb::kv_server::KvServer;
use etcd_v3proto::etcdserverpb::lease_server::LeaseServer;
use etcd_v3proto::etcdserverpb::maintenance_server::MaintenanceServer;
use etcd_v3proto::etcdserverpb::watch_server::WatchServer;
use etcd_v3proto::etcdserverpb::ResponseHeader;
use etcd_v3proto::grpc::health::v1::health_server::HealthServer;
use etcd_v3proto::v3electionpb::election_server::ElectionServer;
use etcd_v3proto::v3lockpb::lock_server::LockServer;

use crate::node::Node;

pub use etcd_api::v3::ETCD_VERSION;

/// What gRPC accepts per message beyond the request limit (etcd's margin for framing).
const RECEIVE_MARGIN: usize = 512 * 1024;

/// What every service needs.
pub struct Ctx {
    /// The door.
    pub node: Node,
    /// Largest request put in the log, in bytes.
    pub max_request_bytes: usize,
    /// Most compares or ops per txn level.
    pub max_txn_ops: usize,
    /// How often watches that asked for progress notifications get one.
    pub progress_interval: std::time::Duration,
    /// The raft tick (heartbeat interval): how often MoveLeader looks for the new leader.
    pub tick: std::time::Duration,
    /// The space quota in bytes (`--quota-backend-bytes`; none: no quota), see `quota.rs`.
    pub quota: Option<u64>,
    /// The largest cluster (`-maxsize`): MemberAdd refuses to grow past it.
    pub max_members: usize,
    /// The bcrypt cost of v3 passwords (`--bcrypt-cost`).
    pub bcrypt_cost: u32,
    /// The shortest lease TTL granted, in seconds (etcd: 1.5 election timeouts, rounded up).
    pub min_lease_ttl: i64,
    /// TLS for forwarding to the leader over the peer API, when peer TLS is on.
    pub peer_tls: Option<tokio_rustls::TlsConnector>,
    /// The cluster id once known (it never changes after the first member's registration):
    /// spares every answer a trip through the store's lock.
    pub cluster_id: std::sync::atomic::AtomicU64,
    /// Turns true when the member stops: open watch streams end with etcd's "server stopped"
    /// (Unavailable), which clients take as a cue to resume on another member.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Ctx {
    /// A response header at `revision`.
    fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id(),
            member_id: self.node.id(),
            revision,
            raft_term: self.node.term(),
        }
    }
}

impl Ctx {
    /// Completes an answer's header (the state machine set only its revision).
    fn fill(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    /// The cluster id (0 before the first member's registration is applied).
    pub fn cluster_id(&self) -> u64 {
        use std::sync::atomic::Ordering;
        match self.cluster_id.load(Ordering::Relaxed) {
            0 => {
                let id = self.node.read(|s| s.cluster_id());
                self.cluster_id.store(id, Ordering::Relaxed);
                id
            }
            id => id,
        }
    }
}

/// The gRPC services as one router (paths `/etcdserverpb.KV/Range` and so on).
pub fn router(ctx: Ctx) -> axum::Router {
    let ctx = Arc::new(ctx);
    let receive = ctx.max_request_bytes.saturating_add(RECEIVE_MARGIN);
    tonic::service::Routes::new(
        KvServer::new(kv::Kv(ctx.clone())).max_decoding_message_size(receive),
    )
    .add_service(
        MaintenanceServer::new(maintenance::Maintenance(ctx.clone()))
            .max_decoding_message_size(receive),
    )
    .add_service(WatchServer::new(watch::Watch(ctx.clone())).max_decoding_message_size(receive))
    .add_service(LeaseServer::new(lease::Lease(ctx.clone())).max_decoding_message_size(receive))
    .add_service(
        ClusterServer::new(cluster::Cluster(ctx.clone())).max_decoding_message_size(receive),
    )
    .add_service(LockServer::new(lock::Lock(ctx.clone())).max_decoding_message_size(receive))
    .add_service(
        ElectionServer::new(election::Election(ctx.clone())).max_decoding_message_size(receive),
    )
    .add_service(AuthServer::new(auth::Auth(ctx.clone())).max_decoding_message_size(receive))
    .add_service(HealthServer::new(health::Health(ctx.clone())))
    .prepare()
    .into_axum_router()
    .layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let ctx = ctx.clone();
            async move {
                if learner_refuses(&ctx, req.uri().path()) {
                    return error::status(etcd_api::v3::V3Error::NotSupportedForLearner)
                        .into_http();
                }
                counted(req, next).await
            }
        },
    ))
}

/// Runs a call, counting it as go-grpc-prometheus and etcd do: started, handled by status
/// code (from a trailers-only answer, or the trailers at the end of the body), and the bytes
/// of its request and answer bodies.
async fn counted(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body_util::BodyExt as _;
    let m = crate::metrics::metrics();
    let Some((service, method)) = crate::metrics::grpc_names(req.uri().path()) else {
        return next.run(req).await;
    };
    let labels = [
        crate::metrics::grpc_type(service, method).to_string(),
        service.to_string(),
        method.to_string(),
    ];
    m.grpc_started
        .with_label_values(&[&labels[0], &labels[1], &labels[2]])
        .inc();
    let req = req.map(|body| {
        axum::body::Body::new(body.map_frame(|f| {
            if let Some(d) = f.data_ref() {
                crate::metrics::metrics()
                    .grpc_received_bytes
                    .inc_by(d.len() as u64);
            }
            f
        }))
    });
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let handled = move |code: i32| {
        if crate::metrics::extensive() {
            crate::metrics::metrics()
                .grpc_handling
                .with_label_values(&[&labels[0], &labels[1], &labels[2]])
                .observe(started.elapsed().as_secs_f64());
        }
        crate::metrics::metrics()
            .grpc_handled
            .with_label_values(&[
                &labels[0],
                &labels[1],
                &labels[2],
                crate::metrics::grpc_code_name(code),
            ])
            .inc();
    };
    let code_in = |h: &axum::http::HeaderMap| -> Option<i32> {
        h.get("grpc-status")?.to_str().ok()?.parse().ok()
    };
    if let Some(code) = code_in(resp.headers()) {
        handled(code);
        return resp;
    }
    resp.map(|body| {
        axum::body::Body::new(body.map_frame(move |f| {
            if let Some(d) = f.data_ref() {
                crate::metrics::metrics()
                    .grpc_sent_bytes
                    .inc_by(d.len() as u64);
            } else if let Some(code) = f.trailers_ref().and_then(&code_in) {
                handled(code);
            }
            f
        }))
    })
}

/// Whether this member, a learner, refuses the RPC at `path`: etcd's learners serve only
/// Status and serializable Range (which `kv.rs` checks), and gRPC's health check.
fn learner_refuses(ctx: &Ctx, path: &str) -> bool {
    !matches!(
        path,
        "/etcdserverpb.Maintenance/Status"
            | "/etcdserverpb.KV/Range"
            | "/grpc.health.v1.Health/Check"
    ) && ctx.node.is_learner()
}

/// True when the client asks for a leader (`hasleader` metadata, clientv3's
/// `WithRequireLeader`): without one the call is refused with `no leader`.
fn wants_leader<T>(req: &tonic::Request<T>) -> bool {
    req.metadata()
        .get("hasleader")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// True when a request is gRPC (by its content type, as etcd tells them apart).
pub fn is_grpc<B>(req: &axum::http::Request<B>) -> bool {
    req.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
