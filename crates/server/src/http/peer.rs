//! The peer API (the `-s` listener): raft messages in, joins, and member removal's client side
//! (`DELETE /v1/machines/<name>` on the client API, which is a configuration change too).
//!
//! - `POST /raft`: a batch of raft messages (see `transport.rs` for the format); each is
//!   stepped by the driver. 204.
//! - `POST /raft/snapshot`: one `MsgSnapshot`, on a connection of its own. 204.
//! - `POST /join`: a `Join` command (JSON). The receiving member checks `-maxsize` and name
//!   clashes, then proposes the configuration change adding the member (raft forwards it to
//!   the leader) and answers once it is applied here: 200 with [`JoinAnswer`], the members'
//!   peer URLs, which the new member needs to answer the leader before its own log tells it.
//! - `POST /v3rs/lease/keepalive`, `POST /v3rs/lease/timetolive`: a follower forwards a v3
//!   lease keep-alive or time-to-live (protobuf `LeaseKeepAliveRequest` /
//!   `LeaseTimeToLiveRequest` with only the id) to the leader, which alone counts lease time:
//!   200 with the seconds as 8 bytes (i64 LE); 404 for an unknown lease; 503 when this member
//!   does not lead (any more).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::ErrorCode;
use etcd_store::Command;

use super::app::App;
use super::error::Error;
use super::reply::event_response;
use crate::cluster::{self, JoinAnswer};
use crate::node::Refused;

fn join_answer(answer: &JoinAnswer) -> Response {
    let body = serde_json::to_vec(answer).expect("serialising a map cannot fail");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// `POST /v3rs/lease/keepalive` and `POST /v3rs/lease/timetolive`.
pub async fn lease(
    State(app): State<App>,
    Path(what): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    use prost::Message as _;
    let Ok(req) = etcd_v3proto::etcdserverpb::LeaseTimeToLiveRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, "not a lease request").into_response();
    };
    let result = match what.as_str() {
        "keepalive" => app.node.lease_keep_alive(req.id).await,
        "timetolive" => app.node.lease_time_to_live(req.id).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match result {
        Ok(Ok(seconds)) => (StatusCode::OK, seconds.to_le_bytes().to_vec()).into_response(),
        Ok(Err(etcd_api::v3::V3Error::LeaseNotFound)) => StatusCode::NOT_FOUND.into_response(),
        Ok(Err(_)) | Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `POST /v3rs/promote` with a member id (u64 LE): as leader, promotes that learner (see
/// `cluster::promote`): `200`, or `404` (no such member), `409` (not a learner), `412` (not in
/// sync with the leader), `424` (too few started members), `503` (not the leader, or no
/// quorum).
pub async fn promote(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let Ok(id) = <[u8; 8]>::try_from(&body[..]) else {
        return (StatusCode::BAD_REQUEST, "not a member id").into_response();
    };
    match cluster::promote(&app.node, u64::from_le_bytes(id)).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(cluster::Error::NotFound | cluster::Error::Removed) => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(cluster::Error::NotLearner) => StatusCode::CONFLICT.into_response(),
        Err(cluster::Error::LearnerNotReady) => StatusCode::PRECONDITION_FAILED.into_response(),
        Err(cluster::Error::NotEnoughStarted) => StatusCode::FAILED_DEPENDENCY.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `POST /v3rs/removed` with a member id (u64 LE): `410 Gone` if the log says that member was
/// removed, `204` otherwise. Asked by a member that hears from no leader (see
/// `cluster::notice_removal`).
pub async fn removed(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let Ok(id) = <[u8; 8]>::try_from(&body[..]) else {
        return (StatusCode::BAD_REQUEST, "not a member id").into_response();
    };
    if app.node.is_removed(u64::from_le_bytes(id)) {
        (
            StatusCode::GONE,
            "this member has been removed from the cluster",
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// `POST /v3rs/hashkv` with a revision (i64 LE): this member's HashKV at that revision, as a
/// protobuf `HashKVResponse` (header: this member's id and current revision; compact
/// revision -1 if never compacted), for the leader's corruption check (`corrupt.rs`). 409 if
/// the revision is compacted or not reached here.
pub async fn hashkv(State(app): State<App>, body: axum::body::Bytes) -> Response {
    use prost::Message as _;
    let Ok(rev) = <[u8; 8]>::try_from(&body[..]) else {
        return (StatusCode::BAD_REQUEST, "not a revision").into_response();
    };
    match crate::corrupt::local_hash(&app.node, i64::from_le_bytes(rev)).await {
        Ok(h) => {
            let answer = etcd_v3proto::etcdserverpb::HashKvResponse {
                header: Some(etcd_v3proto::etcdserverpb::ResponseHeader {
                    member_id: app.node.id(),
                    revision: h.revision,
                    ..Default::default()
                }),
                hash: h.hash,
                compact_revision: h.compact_revision(),
                hash_revision: 0,
            };
            (StatusCode::OK, answer.encode_to_vec()).into_response()
        }
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

/// Largest `/raft` body: a full batch, with room.
const MAX_RAFT_BODY: usize = 64 << 20;
/// Largest snapshot accepted.
const MAX_SNAPSHOT_BODY: usize = 4 << 30;

/// `POST /raft`.
pub(super) async fn raft_messages(State(app): State<App>, body: Body) -> Response {
    step_all(&app, body, MAX_RAFT_BODY).await
}

/// `POST /raft/snapshot`.
pub(super) async fn raft_snapshot(State(app): State<App>, body: Body) -> Response {
    step_all(&app, body, MAX_SNAPSHOT_BODY).await
}

async fn step_all(app: &App, body: Body, limit: usize) -> Response {
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match app.node.receive(&bytes) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // etcd answers a removed member 410 Gone, so that it stops.
        Err(e @ Refused::SenderRemoved) => (StatusCode::GONE, e.to_string()).into_response(),
        Err(e @ (Refused::Malformed(_) | Refused::InvalidProposal(_))) => {
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
        Err(e @ Refused::ShuttingDown) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// `POST /join`.
pub(super) async fn join(
    State(app): State<App>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Body,
) -> Response {
    // A member of a new static cluster says which cluster it expects (see
    // `cluster::static_cluster_id`): it must not join another.
    let expected = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "cluster-id")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(expected) = expected {
        let ours = app.node.read(|s| s.cluster_id());
        if u64::from_str_radix(&expected, 16) != Ok(ours) {
            return (
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "request cluster ID mismatch: this cluster is {ours:x}, the member expects {expected} (started with another --initial-cluster-token or --initial-cluster?)"
                ),
            )
                .into_response();
        }
    }
    add_member(&app, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn add_member(app: &App, body: Body) -> Result<Response, Error> {
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .map_err(|e| Error::new(ErrorCode::InvalidForm, e.to_string()))?;
    let cmd = Command::decode(&bytes)
        .map_err(|e| Error::new(ErrorCode::InvalidForm, format!("join request: {e}")))?;
    let Command::Join {
        id,
        name,
        raft_url,
        etcd_url,
    } = cmd
    else {
        return Err(Error::new(
            ErrorCode::InvalidForm,
            "join request: not a join",
        ));
    };
    match cluster::join(&app.node, app.max_members, id, &name, &raft_url, &etcd_url).await {
        Ok(answer) => Ok(join_answer(&answer)),
        Err(e) => Err(v1_error(e)),
    }
}

/// The v1 error for a refused member change.
fn v1_error(e: cluster::Error) -> Error {
    use cluster::Error as E;
    match e {
        E::EmptyName => Error::new(
            ErrorCode::InvalidField,
            "join request: the member name must not be empty",
        ),
        E::NameTaken(_) | E::PeerUrlTaken(_) => Error::new(ErrorCode::InvalidField, e.to_string()),
        E::Full(_) => Error::new(ErrorCode::NoMoreMachine, ""),
        E::TooManyLearners
        | E::NotLearner
        | E::LearnerNotReady
        | E::NotLeader
        | E::NotEnoughStarted => Error::new(ErrorCode::InvalidField, e.to_string()),
        E::NotFound | E::Removed => Error::new(ErrorCode::KeyNotFound, e.to_string()),
        E::Refused(e) => e.into(),
        E::Transient(t) => t.into(),
    }
}

/// `DELETE /v1/machines/<name>` (client API): removes a member through the log.
pub(super) async fn remove_member(
    State(app): State<App>,
    conn: super::auth::Conn,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = super::auth::require_root(&app, &headers, super::auth::cn_of(&conn)).await {
        return r;
    }
    let Some(id) = cluster::id_of(&app.node, &name) else {
        return Error::new(ErrorCode::KeyNotFound, format!("/_etcd/machines/{name}"))
            .into_response();
    };
    match cluster::remove(&app.node, id).await {
        Ok(Some(event)) => event_response(&event),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => v1_error(e).into_response(),
    }
}
