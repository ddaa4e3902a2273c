//! etcd's v2 HTTP API beside v1: `/v2/keys` (reads, writes, long-poll and streaming watches),
//! `/v2/machines`, `/v2/members`, `/v2/stats/*`, `/version` and `/health`.
//!
//! One store and one index serve both APIs: a v2 node's `modifiedIndex` is the raft log index
//! of the entry that last changed it, the number v1 calls `index`. Parameters are parsed as
//! etcd's `v2http` does (Go's `ParseBool`/`ParseUint`, the same error codes and causes), and
//! bodies are etcd's JSON with its trailing newline. Deliberate differences from etcd 3.4:
//! `/_etcd` (our member registry, shared with v1) is reserved for writes (error 106), and
//! listings are always sorted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use etcd_api::time;
use etcd_api::v2::{self, Code};
use etcd_store::{path, Action, Command, Event, NodeInfo, NodeView};

use super::app::App;
use super::auth;
use super::error::V2Error;
use super::form::key_from_path;
use super::form::Params;
use super::reply::{json, message, text};
use crate::node::{Node, Watch, WatchKind};
use crate::{clock, cluster, gocompat};

/// The API level `/version` reports as `etcdcluster`: the etcd release whose v2 API this
/// server speaks.
const CLUSTER_API_LEVEL: &str = "2.3.0";
/// How long `/health` waits for its quorum read.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The `/v2/keys` handler.
pub(super) async fn keys(
    State(app): State<App>,
    conn: auth::Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(&app, &conn, method, uri, headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(
    app: &App,
    conn: &auth::Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, V2Error> {
    if !matches!(
        method,
        Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE
    ) {
        return Ok((
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "GET, HEAD, POST, PUT, DELETE"),
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            ],
            "Method Not Allowed\n",
        )
            .into_response());
    }
    let key = key_from_path(uri.path(), "/v2/keys").map_err(V2Error::from_v1)?;
    let params = Params::from_request(&method, &uri, &headers, body, app.body_limit())
        .await
        .map_err(V2Error::from_v1)?;
    let req = Request::parse(&params, matches!(method, Method::GET | Method::HEAD))?;
    let who = auth::who(app, &headers, auth::cn_of(conn)).await;
    let (writes, recursive) = match method {
        Method::GET | Method::HEAD => (false, req.recursive),
        Method::DELETE => (true, req.recursive),
        _ => (true, false),
    };
    if !who.may(app, &key, writes, recursive) {
        return Err(V2Error::unauthorized());
    }
    // The checks below only matter to a restricted caller: with auth off (or as root) every
    // request skips their lookups.
    let restricted = who != auth::Who::Anyone;
    // A POST creates a key below `key`: the pattern must cover that child.
    if restricted
        && method == Method::POST
        && !who.may(app, &path::join(&key, &"0".repeat(20)), true, false)
    {
        return Err(V2Error::unauthorized());
    }
    // A PUT on a directory can give it a TTL (its expiry removes the whole tree) or take one
    // away: it needs write access to the tree.
    if restricted && method == Method::PUT {
        let is_dir = app.node.read(|s| s.is_dir(&key));
        if is_dir && !who.may(app, &key, true, true) {
            return Err(V2Error::unauthorized());
        }
    }
    // A role that may write but not read a key does not see its value in answers.
    let can_read = who.may(app, &key, false, false);
    match method {
        Method::GET | Method::HEAD => {
            if req.wait {
                return watch(app, &key, &req, who).await;
            }
            if req.quorum {
                quorum_read(app).await?;
            }
            let (view, index) = app.node.read(|s| {
                let index = s.index();
                (s.get_v2(&key, req.recursive), index)
            });
            let view = view.map_err(|e| V2Error::store(e, index))?;
            // Listing a directory's children reads the tree below it.
            if view.nodes.as_ref().is_some_and(|n| !n.is_empty())
                && !who.may(app, &key, false, true)
            {
                return Err(V2Error::unauthorized());
            }
            let event = v2::Event {
                action: "get".to_string(),
                node: render_view(&view, clock::now()),
                prev_node: None,
            };
            Ok(answer(app, StatusCode::OK, index, &event))
        }
        Method::PUT => {
            let value = req.value(app)?;
            let command = Command::V2Put {
                key,
                value,
                dir: req.dir,
                ttl_secs: req.ttl,
                refresh: req.refresh,
                prev_exist: req.prev_exist,
                prev_value: req.prev_value.clone(),
                prev_index: req.prev_index.filter(|i| *i > 0),
                time: clock::now(),
            };
            write(app, command, req.no_value_on_success, can_read).await
        }
        Method::POST => {
            let value = req.value(app)?;
            let command = Command::V2Post {
                key,
                value,
                dir: req.dir,
                ttl_secs: req.ttl,
                time: clock::now(),
            };
            write(app, command, req.no_value_on_success, can_read).await
        }
        _ => {
            let command = Command::V2Delete {
                key,
                dir: req.dir,
                recursive: req.recursive,
                prev_value: req.prev_value.clone(),
                prev_index: req.prev_index.filter(|i| *i > 0),
                time: clock::now(),
            };
            write(app, command, req.no_value_on_success, can_read).await
        }
    }
}

/// The parameters of a `/v2/keys` request, checked as etcd's `parseKeyRequest` does.
#[derive(Debug, Default)]
struct Request {
    value: Option<String>,
    dir: bool,
    recursive: bool,
    wait: bool,
    stream: bool,
    quorum: bool,
    refresh: bool,
    ttl: Option<i64>,
    prev_exist: Option<bool>,
    prev_value: Option<String>,
    prev_index: Option<u64>,
    wait_index: Option<u64>,
    /// Answer a successful set, create, update or compare-and-swap with its action only.
    no_value_on_success: bool,
}

impl Request {
    /// `get`: the request is a GET (or HEAD); `wait` is refused on anything else.
    fn parse(p: &Params, get: bool) -> Result<Request, V2Error> {
        let uint = |name: &str, code: Code| -> Result<Option<u64>, V2Error> {
            match p.get(name) {
                None => Ok(None),
                Some(v) => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| V2Error::request(code, format!("invalid value for \"{name}\""))),
            }
        };
        let boolean = |name: &str| -> Result<bool, V2Error> {
            match p.get(name) {
                None => Ok(false),
                Some(v) => gocompat::parse_bool(v).ok_or_else(|| {
                    V2Error::request(Code::InvalidField, format!("invalid value for \"{name}\""))
                }),
            }
        };
        let prev_index = uint("prevIndex", Code::IndexNaN)?;
        let wait_index = uint("waitIndex", Code::IndexNaN)?;
        let recursive = boolean("recursive")?;
        // Listings are always sorted; the flag is only checked.
        boolean("sorted")?;
        let wait = boolean("wait")?;
        let dir = boolean("dir")?;
        let quorum = boolean("quorum")?;
        let stream = boolean("stream")?;
        let no_value_on_success = boolean("noValueOnSuccess")?;
        if wait && !get {
            return Err(V2Error::request(
                Code::InvalidField,
                "\"wait\" can only be used with GET requests",
            ));
        }
        let prev_value = match p.get("prevValue") {
            Some("") => {
                return Err(V2Error::request(
                    Code::PrevValueRequired,
                    "\"prevValue\" cannot be empty",
                ))
            }
            other => other.map(str::to_string),
        };
        let ttl = match p.get("ttl") {
            None | Some("") => None,
            Some(_) => {
                let t = uint("ttl", Code::TtlNaN)?.expect("present");
                Some(
                    i64::try_from(t)
                        .map_err(|_| V2Error::request(Code::TtlNaN, "invalid value for \"ttl\""))?,
                )
            }
        };
        let prev_exist = match p.get("prevExist") {
            None => None,
            Some(v) => Some(gocompat::parse_bool(v).ok_or_else(|| {
                V2Error::request(Code::InvalidField, "invalid value for prevExist")
            })?),
        };
        let refresh = match p.get("refresh") {
            None => false,
            Some(v) => gocompat::parse_bool(v).ok_or_else(|| {
                V2Error::request(Code::InvalidField, "invalid value for \"refresh\"")
            })?,
        };
        let value = p.get("value").map(str::to_string);
        if refresh {
            if value.as_deref().is_some_and(|v| !v.is_empty()) {
                return Err(V2Error::request(
                    Code::RefreshValue,
                    "A value was provided on a refresh",
                ));
            }
            if ttl.is_none() {
                return Err(V2Error::request(
                    Code::RefreshTtlRequired,
                    "No TTL value set",
                ));
            }
        }
        Ok(Request {
            value,
            dir,
            recursive,
            wait,
            stream,
            quorum,
            refresh,
            ttl,
            prev_exist,
            prev_value,
            prev_index,
            wait_index,
            no_value_on_success,
        })
    }

    /// The value to write: empty for directories (etcd ignores a value given with `dir`).
    fn value(&self, app: &App) -> Result<String, V2Error> {
        let value = if self.dir {
            String::new()
        } else {
            self.value.clone().unwrap_or_default()
        };
        if value.len() > app.max_value_bytes {
            return Err(V2Error::request(
                Code::TooLarge,
                format!("the value is larger than {} bytes", app.max_value_bytes),
            ));
        }
        Ok(value)
    }
}

/// A quorum read's place in the log (as v1's `consistent=true`).
async fn quorum_read(app: &App) -> Result<(), V2Error> {
    match app.node.propose(Command::Read).await? {
        Ok(_) => Ok(()),
        Err(e) => Err(V2Error::store(e, 0)),
    }
}

/// Proposes a write and answers with its event.
async fn write(
    app: &App,
    command: Command,
    no_value: bool,
    can_read: bool,
) -> Result<Response, V2Error> {
    let post = matches!(command, Command::V2Post { .. });
    match app.node.propose(command).await? {
        Ok(Some(event)) => {
            let created = post
                || event.action == Action::Create
                || (event.action == Action::Set && event.prev_node.is_none());
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut rendered = render_event(&event);
            if !can_read {
                if let Some(prev) = &mut rendered.prev_node {
                    prev.value = None;
                }
            }
            if no_value && !event.action.removes() {
                // etcd's noValueOnSuccess: the action alone.
                #[derive(serde::Serialize)]
                struct ActionOnly<'a> {
                    action: &'a str,
                }
                let body = v2::to_go_json(&ActionOnly {
                    action: &rendered.action,
                });
                let mut r = (status, body).into_response();
                raft_headers(app, r.headers_mut(), event.index);
                return Ok(r);
            }
            Ok(answer(app, status, event.index, &rendered))
        }
        Ok(None) => unreachable!("v2 writes always answer with an event"),
        Err(e) => {
            let index = app.node.read(|s| s.index());
            let mut err = V2Error::store(e, index);
            if !can_read && err.0.code == Code::TestFailed {
                // The cause would show the current value.
                err.0.cause.clear();
            }
            Err(err)
        }
    }
}

/// A JSON answer with etcd's headers.
fn answer(app: &App, status: StatusCode, etcd_index: u64, event: &v2::Event) -> Response {
    let mut r = (status, v2::to_go_json(event)).into_response();
    raft_headers(app, r.headers_mut(), etcd_index);
    r
}

fn raft_headers(app: &App, h: &mut HeaderMap, etcd_index: u64) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("x-etcd-index", HeaderValue::from(etcd_index));
    // The driver publishes the applied index before it answers anyone (raft::driver).
    h.insert("x-raft-index", HeaderValue::from(app.node.applied()));
    h.insert("x-raft-term", HeaderValue::from(app.node.term()));
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Get => "get",
        Action::Set => "set",
        Action::Delete => "delete",
        Action::Create => "create",
        Action::Update => "update",
        Action::CompareAndSwap => "compareAndSwap",
        Action::CompareAndDelete => "compareAndDelete",
        Action::Expire => "expire",
    }
}

fn expiration(at: Option<i64>) -> Option<String> {
    at.map(time::format_rfc3339_nanos)
}

/// Whole seconds left at `now`, rounded up (etcd v2); 0 when none.
fn ttl_at(at: Option<i64>, now: i64) -> i64 {
    etcd_store::ttl_left(at, now).unwrap_or(0)
}

fn render_info(p: &NodeInfo) -> v2::Node {
    v2::Node {
        key: p.key.clone(),
        value: if p.dir { None } else { p.value.clone() },
        dir: p.dir,
        expiration: expiration(p.expiration),
        ttl: p.ttl.unwrap_or(0),
        nodes: None,
        modified_index: p.modified_index,
        created_index: p.created_index,
    }
}

/// The v2 form of a store event. `ttl` is the one recorded at the change.
fn render_event(e: &Event) -> v2::Event {
    let node = if e.action.removes() {
        v2::Node {
            key: e.key.clone(),
            dir: e.dir,
            modified_index: e.index,
            created_index: e.created_index,
            ..v2::Node::default()
        }
    } else {
        v2::Node {
            key: e.key.clone(),
            value: if e.dir { None } else { e.value.clone() },
            dir: e.dir,
            expiration: expiration(e.expiration),
            ttl: e.ttl.unwrap_or(0),
            nodes: None,
            modified_index: e.index,
            created_index: e.created_index,
        }
    };
    v2::Event {
        action: action_name(e.action).to_string(),
        node,
        prev_node: e.prev_node.as_deref().map(render_info),
    }
}

fn render_view(v: &NodeView, now: i64) -> v2::Node {
    v2::Node {
        key: if v.key == "/" {
            String::new()
        } else {
            v.key.clone()
        },
        value: v.value.clone(),
        dir: v.dir,
        expiration: expiration(v.expiration),
        ttl: ttl_at(v.expiration, now),
        nodes: v.nodes.as_ref().and_then(|children| {
            (!children.is_empty()).then(|| children.iter().map(|c| render_view(c, now)).collect())
        }),
        modified_index: v.modified_index,
        created_index: v.created_index,
    }
}

/// `wait=true`: answers with the first event at or after `waitIndex` (or the next one), and
/// with `stream=true` keeps sending events, one JSON line each, until the client leaves.
/// The headers go out at once, as etcd's do.
async fn watch(app: &App, key: &str, req: &Request, who: auth::Who) -> Result<Response, V2Error> {
    let since = req.wait_index.unwrap_or(0);
    let (first, etcd_index) = register(&app.node, key, req.recursive, since)?;
    let state = WatchState {
        node: app.node.clone(),
        key: key.to_string(),
        recursive: req.recursive,
        stream: req.stream,
        next: Some(first),
        shutdown: app.shutdown.clone(),
        who,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, next_event));
    let mut r = (StatusCode::OK, body).into_response();
    raft_headers(app, r.headers_mut(), etcd_index);
    Ok(r)
}

struct WatchState {
    node: Node,
    key: String,
    recursive: bool,
    stream: bool,
    /// What the watch waits for next; `None` once it has ended.
    next: Option<Watch>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Checked again before every event: a permission revoked meanwhile ends the watch.
    who: auth::Who,
}

fn register(node: &Node, key: &str, recursive: bool, since: u64) -> Result<(Watch, u64), V2Error> {
    match node.watch(key, WatchKind::V2 { recursive }, since) {
        (Ok(watch), index) => Ok((watch, index)),
        (Err(e), index) => Err(V2Error::store(e, index)),
    }
}

async fn next_event(mut st: WatchState) -> Option<(Result<Vec<u8>, std::io::Error>, WatchState)> {
    let event = match st.next.take()? {
        Watch::Ready(e) => e,
        Watch::Waiting(waiter) => {
            let mut shutdown = st.shutdown.clone();
            tokio::select! {
                e = waiter.event() => e?,
                _ = shutdown.wait_for(|stopping| *stopping) => return None,
            }
        }
    };
    let allowed = st
        .node
        .read(|s| st.who.may_in(s, &st.key, false, st.recursive));
    if !allowed {
        return None;
    }
    let line = v2::to_go_json(&render_event(&event));
    if st.stream {
        // When the history moved past us, the stream ends (next stays `None`): the client
        // re-watches.
        st.next = register(&st.node, &st.key, st.recursive, event.index + 1)
            .ok()
            .map(|(next, _)| next);
    }
    Some((Ok(line), st))
}

fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

/// `/v2/machines`: every member's client URL, sorted as strings (as etcd does), joined with
/// `, `.
pub(super) async fn machines(State(app): State<App>) -> Response {
    let urls = app.node.read(|s| {
        let mut urls: Vec<&str> = s
            .members()
            .values()
            .map(|m| m.etcd_url.as_str())
            .filter(|u| !u.is_empty())
            .collect();
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
        client_urls: if m.etcd_url.is_empty() {
            Vec::new()
        } else {
            vec![m.etcd_url.clone()]
        },
    }
}

/// `GET /v2/members`: the members, by id.
pub(super) async fn members(State(app): State<App>) -> Response {
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
pub(super) async fn members_add(
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
        E::EmptyName | E::NameTaken(_) | E::Refused(_) | E::Transient(_) => {
            message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// The member named by a `/v2/members/<hex id>` path: its id, or etcd's 404/410.
fn member_by_hex(app: &App, hex: &str) -> Result<u64, cluster::Error> {
    let id = u64::from_str_radix(hex, 16).map_err(|_| cluster::Error::NotFound)?;
    cluster::name_of(&app.node, id)?;
    Ok(id)
}

/// `DELETE /v2/members/<id>`: removes a member through the log (204).
pub(super) async fn members_remove(
    State(app): State<App>,
    conn: auth::Conn,
    headers: HeaderMap,
    axum::extract::Path(hex): axum::extract::Path<String>,
) -> Response {
    if let Err(r) = auth::require_root(&app, &headers, auth::cn_of(&conn)).await {
        return r;
    }
    let id = match member_by_hex(&app, &hex) {
        Ok(id) => id,
        Err(e) => return member_error(e),
    };
    match cluster::remove(&app.node, id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => member_error(e),
    }
}

/// `PUT /v2/members/<id>` `{"peerURLs":[...]}`: changes a member's peer URL (204).
pub(super) async fn members_update(
    State(app): State<App>,
    conn: auth::Conn,
    axum::extract::Path(hex): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = auth::require_root(&app, &headers, auth::cn_of(&conn)).await {
        return r;
    }
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
pub(super) async fn members_leader(State(app): State<App>) -> Response {
    let leader = app.node.leader_id().and_then(|id| {
        app.node
            .read(|s| s.members().get(&id).map(|m| member_json(id, m)))
    });
    match leader {
        Some(m) => json(StatusCode::OK, &m),
        None => message(StatusCode::SERVICE_UNAVAILABLE, "During Leader Election"),
    }
}

/// `/version`.
pub(super) async fn version() -> Response {
    #[derive(serde::Serialize)]
    struct Version {
        etcdserver: &'static str,
        etcdcluster: &'static str,
    }
    json(
        StatusCode::OK,
        &Version {
            etcdserver: env!("CARGO_PKG_VERSION"),
            etcdcluster: CLUSTER_API_LEVEL,
        },
    )
}

/// `/health`: healthy when there is a leader and a quorum read goes through the log.
pub(super) async fn health(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    struct Health {
        health: &'static str,
    }
    let ok = app.node.leader_id().is_some()
        && matches!(
            tokio::time::timeout(HEALTH_TIMEOUT, app.node.propose(Command::Read)).await,
            Ok(Ok(Ok(_)))
        );
    let (status, health) = if ok {
        (StatusCode::OK, "true")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "false")
    };
    // etcd sends this JSON as text/plain.
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        v2::to_go_json(&Health { health }),
    )
        .into_response()
}

/// `/v2/stats/self`.
pub(super) async fn stats_self(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct LeaderInfo {
        leader: String,
        uptime: String,
        start_time: String,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SelfStats {
        name: String,
        id: String,
        state: &'static str,
        start_time: String,
        leader_info: LeaderInfo,
        recv_append_request_cnt: u64,
        send_append_request_cnt: u64,
    }
    let now = clock::now();
    let status = app.node.status();
    let leader = app.node.leader_id();
    let since = status.leader_since.load(Ordering::Acquire);
    let state = match leader {
        Some(id) if id == app.node.id() => "StateLeader",
        Some(_) => "StateFollower",
        None => "StateCandidate",
    };
    let body = SelfStats {
        name: app.member.name.clone(),
        id: hex_id(app.node.id()),
        state,
        start_time: time::format_rfc3339_nanos(app.started),
        leader_info: LeaderInfo {
            leader: leader.map(hex_id).unwrap_or_default(),
            uptime: gocompat::duration(now - since),
            start_time: time::format_rfc3339_nanos(since),
        },
        recv_append_request_cnt: status.append_received.load(Ordering::Relaxed),
        send_append_request_cnt: status.append_sent.load(Ordering::Relaxed),
    };
    json(StatusCode::OK, &body)
}

/// `/v2/stats/leader`: on the leader, each follower's delivery counts and round-trip times
/// (seconds) of raft message batches; elsewhere etcd's 403 "not current leader".
pub(super) async fn stats_leader(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Latency {
        current: f64,
        average: f64,
        standard_deviation: f64,
        minimum: f64,
        maximum: f64,
    }
    #[derive(serde::Serialize)]
    struct Counts {
        fail: u64,
        success: u64,
    }
    #[derive(serde::Serialize)]
    struct Follower {
        latency: Latency,
        counts: Counts,
    }
    #[derive(serde::Serialize)]
    struct LeaderStats {
        leader: String,
        followers: std::collections::BTreeMap<String, Follower>,
    }
    if app.node.leader_id() != Some(app.node.id()) {
        return message(StatusCode::FORBIDDEN, "not current leader");
    }
    let me = app.node.id();
    let ids: Vec<u64> = app
        .node
        .read(|s| s.members().keys().copied().filter(|id| *id != me).collect());
    let stats = app.node.status().peers.lock().expect("peer stats poisoned");
    let followers = ids
        .into_iter()
        .map(|id| {
            let s = stats.get(&id).cloned().unwrap_or_default();
            let f = Follower {
                latency: Latency {
                    current: s.current,
                    average: s.average(),
                    standard_deviation: s.standard_deviation(),
                    minimum: s.minimum,
                    maximum: s.maximum,
                },
                counts: Counts {
                    fail: s.fail,
                    success: s.success,
                },
            };
            (hex_id(id), f)
        })
        .collect();
    drop(stats);
    json(
        StatusCode::OK,
        &LeaderStats {
            leader: hex_id(app.node.id()),
            followers,
        },
    )
}

/// `/v2/stats/store`: etcd v2's store counters.
pub(super) async fn stats_store(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct StoreStats {
        gets_success: u64,
        gets_fail: u64,
        sets_success: u64,
        sets_fail: u64,
        delete_success: u64,
        delete_fail: u64,
        update_success: u64,
        update_fail: u64,
        create_success: u64,
        create_fail: u64,
        compare_and_swap_success: u64,
        compare_and_swap_fail: u64,
        compare_and_delete_success: u64,
        compare_and_delete_fail: u64,
        expire_count: u64,
        watchers: u64,
    }
    let body = app.node.read(|store| {
        let s = &store.stats().v2;
        StoreStats {
            gets_success: s.gets_success.load(Ordering::Relaxed),
            gets_fail: s.gets_fail.load(Ordering::Relaxed),
            sets_success: s.sets_success,
            sets_fail: s.sets_fail,
            delete_success: s.delete_success,
            delete_fail: s.delete_fail,
            update_success: s.update_success,
            update_fail: s.update_fail,
            create_success: s.create_success,
            create_fail: s.create_fail,
            compare_and_swap_success: s.compare_and_swap_success,
            compare_and_swap_fail: s.compare_and_swap_fail,
            compare_and_delete_success: s.compare_and_delete_success,
            compare_and_delete_fail: s.compare_and_delete_fail,
            expire_count: s.expire_count,
            watchers: store.watcher_count() as u64,
        }
    });
    json(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up() {
        assert_eq!(ttl_at(Some(5_000_000_001), 0), 6);
        assert_eq!(ttl_at(Some(5_000_000_000), 0), 5);
        assert_eq!(ttl_at(Some(1), 1), 0);
        assert_eq!(ttl_at(None, 0), 0);
        assert_eq!(ttl_at(Some(i64::MAX), 0), i64::MAX / 1_000_000_000 + 1);
        assert_eq!(
            ttl_at(Some(i64::MAX), i64::MIN),
            i64::MAX / 1_000_000_000 + 1
        );
    }
}
