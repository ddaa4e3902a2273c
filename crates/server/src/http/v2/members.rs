//! `/v2/machines` and `/v2/members` (list, add before start, remove, peer URL update,
//! leader), over `crate::cluster`, with etcd's `{"message": …}` errors.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::cluster;
use crate::http::app::App;
use crate::http::auth;
use crate::http::reply::{json, message, text};

pub(super) fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

/// `/v2/machines`: every member's client URL, sorted as strings (as etcd does), joined with
/// `, `.
pub(in crate::http) async fn machines(State(app): State<App>) -> Response {
    let urls = app.node.read(|s| {
        let mut urls: Vec<String> = s.members().values().flat_map(|m| m.client_urls()).collect();
        urls.sort_unstable();
        urls.join(", ")
    });
    text(urls)
}

#[derive(serde::Serialize)]
struct MemberJson {
    id: String,
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    client_urls: Vec<String>,
}

/// A member as `/v2/members` shows it; one added but not started yet has no name and no
/// client URLs.
fn member_json(id: u64, m: &etcd_store::Member) -> MemberJson {
    MemberJson {
        id: hex_id(id),
        name: m.name.clone(),
        peer_urls: vec![m.raft_url.clone()],
        client_urls: m.client_urls(),
    }
}

/// `GET /v2/members`: the members, by id.
pub(in crate::http) async fn members(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    struct Members {
        members: Vec<MemberJson>,
    }
    let members = app.node.read(|s| {
        s.members()
            .iter()
            .map(|(id, m)| member_json(*id, m))
            .collect()
    });
    json(StatusCode::OK, &Members { members })
}

/// The body of `POST /v2/members` and `PUT /v2/members/<id>`.
#[derive(serde::Deserialize)]
struct PeerUrls {
    #[serde(rename = "peerURLs")]
    peer_urls: Vec<String>,
}

/// Reads a members request body: JSON with exactly one peer URL whose scheme matches the
/// peer side's TLS. Errors are etcd's 415 and 400 answers.
async fn peer_url_body(app: &App, headers: &HeaderMap, body: Body) -> Result<String, Response> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/json"));
    if !json_type {
        return Err(message(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Bad Content-Type",
        ));
    }
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .map_err(|e| message(StatusCode::BAD_REQUEST, e.to_string()))?;
    let req: PeerUrls = serde_json::from_slice(&bytes)
        .map_err(|e| message(StatusCode::BAD_REQUEST, e.to_string()))?;
    let [url] = &req.peer_urls[..] else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "exactly one peer URL is supported per member",
        ));
    };
    let url = url.trim_end_matches('/').to_string();
    let scheme = if app.member.peer_tls.is_set() {
        "https://"
    } else {
        "http://"
    };
    let addr_ok = url
        .strip_prefix(scheme)
        .is_some_and(|addr| crate::config::split_host_port(addr).is_ok());
    if !addr_ok {
        return Err(message(
            StatusCode::BAD_REQUEST,
            format!("URL address does not have the form \"{scheme}host:port\": {url}"),
        ));
    }
    Ok(url)
}

/// `POST /v2/members` `{"peerURLs":["http://host:port"]}`: adds a member that has not started
/// yet. It becomes a voter at once (so the quorum grows, as in etcd); started with
/// `--initial-cluster-state existing` (or `-C`), it takes this id and its name.
pub(in crate::http) async fn members_add(
    State(app): State<App>,
    conn: auth::Conn,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = auth::require_root(&app, &headers, auth::cn_of(&conn)).await {
        return r;
    }
    let url = match peer_url_body(&app, &headers, body).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match cluster::add_unstarted(&app.node, app.max_members, &url).await {
        Ok(id) => json(
            StatusCode::CREATED,
            &MemberJson {
                id: hex_id(id),
                name: String::new(),
                peer_urls: vec![url],
                client_urls: Vec::new(),
            },
        ),
        Err(e) => member_error(e),
    }
}

/// etcd's answer to a refused member change.
fn member_error(e: cluster::Error) -> Response {
    use cluster::Error as E;
    match e {
        E::PeerUrlTaken(_) => message(StatusCode::CONFLICT, "etcdserver: peerURL exists"),
        E::Full(_) => message(StatusCode::CONFLICT, e.to_string()),
        E::NotFound => message(StatusCode::NOT_FOUND, "etcdserver: member not found"),
        E::Removed => message(StatusCode::GONE, "etcdserver: member removed"),
        E::EmptyName
        | E::NameTaken(_)
        | E::Refused(_)
        | E::Transient(_)
        | E::TooManyLearners
        | E::NotLearner
        | E::LearnerNotReady
        | E::NotLeader
        | E::NotEnoughStarted => message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The member named by a `/v2/members/<hex id>` path: its id, or etcd's 404/410.
fn member_by_hex(app: &App, hex: &str) -> Result<u64, cluster::Error> {
    let id = u64::from_str_radix(hex, 16).map_err(|_| cluster::Error::NotFound)?;
    cluster::name_of(&app.node, id)?;
    Ok(id)
}

/// `DELETE /v2/members/<id>` (root only, see the router): removes a member through the log
/// (204).
pub(in crate::http) async fn members_remove(
    State(app): State<App>,
    axum::extract::Path(hex): axum::extract::Path<String>,
) -> Response {
    let id = match member_by_hex(&app, &hex) {
        Ok(id) => id,
        Err(e) => return member_error(e),
    };
    match cluster::remove(&app.node, id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => member_error(e),
    }
}

/// `PUT /v2/members/<id>` `{"peerURLs":[...]}` (root only, see the router): changes a
/// member's peer URL (204).
pub(in crate::http) async fn members_update(
    State(app): State<App>,
    axum::extract::Path(hex): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let id = match member_by_hex(&app, &hex) {
        Ok(id) => id,
        Err(e) => return member_error(e),
    };
    let url = match peer_url_body(&app, &headers, body).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match cluster::update_peer(&app.node, id, &url).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => member_error(e),
    }
}

/// `GET /v2/members/leader`: the leader member (etcdctl's `member list` asks for it), or 503
/// while there is none.
pub(in crate::http) async fn members_leader(State(app): State<App>) -> Response {
    let leader = app.node.leader_id().and_then(|id| {
        app.node
            .read(|s| s.members().get(&id).map(|m| member_json(id, m)))
    });
    match leader {
        Some(m) => json(StatusCode::OK, &m),
        None => message(StatusCode::SERVICE_UNAVAILABLE, "During Leader Election"),
    }
}
