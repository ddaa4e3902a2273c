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

use axum::body::Body;
use axum::extract::{Path, State};
use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::ErrorCode;
use etcd_store::Command;
use raft::eraftpb::{ConfChange, ConfChangeType};
use serde::{Deserialize, Serialize};

use super::{event_response, App, Error};
use crate::transport;

/// How long a join of a member added beforehand waits for its name to commit.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The answer to a successful join.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// Peer URL of every member, by raft id.
    pub members: BTreeMap<u64, String>,
    /// The raft id the new member must take, when it differs from the one it asked with: the
    /// member was added beforehand (`POST /v2/members`) with this id for its peer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

fn join_answer(app: &App, id: Option<u64>) -> Response {
    let members = app
        .raft
        .store
        .read()
        .expect("store lock poisoned")
        .peer_urls();
    let body =
        serde_json::to_vec(&JoinAnswer { members, id }).expect("serialising a map cannot fail");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
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
    let msgs = match transport::decode_batch(&bytes) {
        Ok(m) => m,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("bad raft message batch: {e}"),
            )
                .into_response()
        }
    };
    // A removed member must learn it (and stop) rather than disrupt the cluster (etcd does the
    // same with 410 Gone).
    let removed = {
        let store = app.raft.store.read().expect("store lock poisoned");
        msgs.iter().any(|m| store.is_removed(m.from))
    };
    if removed {
        return (
            StatusCode::GONE,
            "this member has been removed from the cluster",
        )
            .into_response();
    }
    // A proposal that the state machine could not decode would be committed and then stop
    // every member at every restart: refuse it here.
    if let Some(reason) = msgs.iter().find_map(invalid_proposal) {
        tracing::warn!("refusing a raft proposal from a peer: {reason}");
        return (StatusCode::BAD_REQUEST, reason).into_response();
    }
    for m in msgs {
        if app.raft.step(m).is_err() {
            return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Why a forwarded proposal must not enter the log, if it must not.
fn invalid_proposal(m: &raft::eraftpb::Message) -> Option<String> {
    use protobuf::Message as _;
    use raft::eraftpb::{ConfChangeV2, EntryType, MessageType};
    if m.get_msg_type() != MessageType::MsgPropose {
        return None;
    }
    m.get_entries().iter().find_map(|e| {
        let context = match e.get_entry_type() {
            EntryType::EntryNormal if e.data.is_empty() => return None,
            EntryType::EntryNormal => {
                return Command::decode(&e.data).err().map(|err| err.to_string())
            }
            EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&e.data) {
                Ok(cc) => cc.context,
                Err(err) => return Some(err.to_string()),
            },
            EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&e.data) {
                Ok(cc) => cc.context,
                Err(err) => return Some(err.to_string()),
            },
        };
        if context.is_empty() {
            return None;
        }
        match Command::decode(&context) {
            Ok(Command::Join { .. } | Command::Leave { .. }) => None,
            Ok(_) => Some("a configuration change must carry a join or a leave".into()),
            Err(err) => Some(err.to_string()),
        }
    })
}

/// `POST /join`.
pub(super) async fn join(State(app): State<App>, body: Body) -> Response {
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
        ref name,
        ref raft_url,
        ref etcd_url,
    } = cmd
    else {
        return Err(Error::new(
            ErrorCode::InvalidForm,
            "join request: not a join",
        ));
    };
    if name.is_empty() {
        return Err(Error::new(
            ErrorCode::InvalidField,
            "join request: the member name must not be empty",
        ));
    }
    let added = {
        let store = app.raft.store.read().expect("store lock poisoned");
        if let Some((member_id, _)) = store.members().iter().find(|(_, m)| m.name == *name) {
            if *member_id == id {
                // A retry of a join that already went through. (Never a member of that name
                // under another id, even at the same URLs: that is a member that lost its data,
                // and taking its old place with an empty log could undo committed entries.)
                return Ok(join_answer(app, None));
            }
            return Err(Error::new(
                ErrorCode::InvalidField,
                format!("the member name {name:?} is taken by another member"),
            ));
        }
        let added = store
            .members()
            .iter()
            .find(|(_, m)| m.name.is_empty() && m.raft_url == *raft_url)
            .map(|(id, _)| *id);
        if added.is_none() && store.members().values().any(|m| m.raft_url == *raft_url) {
            // Another member (named, so running) has this peer URL: messages for the new one
            // would reach it.
            return Err(Error::new(
                ErrorCode::InvalidField,
                format!("the peer URL {raft_url} is taken by another member"),
            ));
        }
        if added.is_none() && store.members().len() >= app.max_members {
            return Err(Error::new(ErrorCode::NoMoreMachine, ""));
        }
        added
    };
    if let Some(added) = added {
        // Added beforehand with `POST /v2/members`: it is a voter already (the cluster may
        // even need it for a quorum), so it only has to take the id it was added with; once
        // it runs, it publishes its name and client URL through the log itself.
        tracing::info!(%name, id = added, "a member added beforehand joins");
        // Bind the name through the log first, so that the id is handed out once: another
        // process (or this one after losing its data) asking later meets "name taken". When
        // the cluster has no quorum without the new member (one member growing to two), that
        // cannot commit until the member runs: then answer anyway, and the member publishes
        // its name itself once it runs.
        let claim = Command::Join {
            id: added,
            name: name.clone(),
            raft_url: raft_url.clone(),
            etcd_url: etcd_url.clone(),
        };
        match tokio::time::timeout(CLAIM_WAIT, app.raft.propose(claim)).await {
            Ok(Ok(Err(e))) => return Err(e.into()),
            Ok(Ok(Ok(_))) => {}
            Ok(Err(_)) | Err(_) => tracing::info!(
                %name,
                "the claim did not commit without the new member; it publishes its name once it runs"
            ),
        }
        return Ok(join_answer(app, Some(added)));
    }
    tracing::info!(%name, id, "proposing to add a member");
    let change = ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id: id,
        context: cmd.encode().into(),
        ..Default::default()
    };
    match app.raft.conf_change(change).await? {
        Ok(_) => Ok(join_answer(app, None)),
        Err(e) => Err(e.into()),
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
    let found = app
        .raft
        .store
        .read()
        .expect("store lock poisoned")
        .members()
        .iter()
        .find(|(_, m)| m.name == name)
        .map(|(id, _)| *id);
    let Some(id) = found else {
        return Error::new(ErrorCode::KeyNotFound, format!("/_etcd/machines/{name}"))
            .into_response();
    };
    tracing::info!(%name, id, "proposing to remove a member");
    let change = ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id: id,
        context: Command::Leave { id, name }.encode().into(),
        ..Default::default()
    };
    let result = async {
        match app.raft.conf_change(change).await? {
            Ok(Some(event)) => Ok(event_response(&event)),
            Ok(None) => Ok(StatusCode::OK.into_response()),
            Err(e) => Err(Error::from(e)),
        }
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, Message, MessageType};

    fn proposal(data: &[u8]) -> Message {
        Message {
            msg_type: MessageType::MsgPropose,
            entries: vec![Entry {
                data: data.to_vec().into(),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn undecodable_proposals_are_refused_at_the_door() {
        assert!(invalid_proposal(&proposal(b"garbage")).is_some());
        assert!(invalid_proposal(&proposal(b"")).is_none());
        let ok = Command::Delete { key: "/k".into() }.encode();
        assert!(invalid_proposal(&proposal(&ok)).is_none());
        let mut heartbeat = proposal(b"garbage");
        heartbeat.msg_type = MessageType::MsgHeartbeat;
        assert!(invalid_proposal(&heartbeat).is_none());
    }
}
