//! `/v2/keys`: parameters parsed as etcd's `v2http` does, reads (with `quorum`), writes
//! through the door, and the dispatch to watches.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use etcd_api::v2::{self, Code};
use etcd_store::{path, Action, Command};

use super::render::{answer, raft_headers, render_event, render_view};
use super::watch::{watch, WatchRequest};
use crate::http::app::App;
use crate::http::auth;
use crate::http::error::V2Error;
use crate::http::form::key_from_path;
use crate::http::form::Params;
use crate::{clock, gocompat};

/// The `/v2/keys` handler.
pub(in crate::http) async fn keys(
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
    let key = key_from_path(uri.path(), "/v2/keys")?;
    let params = Params::from_request(&method, &uri, &headers, body, app.body_limit()).await?;
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
                let watching = WatchRequest {
                    since: req.wait_index.unwrap_or(0),
                    recursive: req.recursive,
                    stream: req.stream,
                };
                return watch(app, &key, watching, who).await;
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
        Method::PUT | Method::POST => {
            let (value, time) = (req.value(app)?, clock::now());
            let command = if method == Method::PUT {
                Command::V2Put {
                    key,
                    value,
                    dir: req.dir,
                    ttl_secs: req.ttl,
                    refresh: req.refresh,
                    prev_exist: req.prev_exist,
                    prev_value: req.prev_value.clone(),
                    prev_index: req.prev_index.filter(|i| *i > 0),
                    time,
                }
            } else {
                Command::V2Post {
                    key,
                    value,
                    dir: req.dir,
                    ttl_secs: req.ttl,
                    time,
                }
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
