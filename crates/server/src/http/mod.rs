//! The HTTP APIs: the v1 client API (spec section 2), etcd's v2 API (`v2`), and the peer API.
//!
//! [`client_router`] builds the whole client API from an [`App`], so it can be served on any
//! listener or driven in tests without a socket. Handlers validate, then either read the store
//! under its lock (never held across an `.await`) or hand a command to the raft driver and
//! wait for it to be applied.

mod auth;
mod error;
mod form;
mod info;
mod keys;
mod peer;
mod v2;
mod watch;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::Router;
use etcd_api::{time, Action, ErrorCode, KeyResponse};
use etcd_store::Event;

pub use auth::ClientCn;
pub use error::Error;

use crate::config::{NodeInfo, MAX_KEY_BYTES};
use crate::node::Node;

/// What every handler needs.
#[derive(Clone)]
pub struct App {
    /// The door to this member: proposals, reads, watches, status.
    pub node: Node,
    /// This member's configuration.
    pub member: Arc<NodeInfo>,
    /// Largest value accepted.
    pub max_value_bytes: usize,
    /// Largest cluster this member lets others join (`-maxsize`).
    pub max_members: usize,
    /// Flips to true when the node stops; waiting watches end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// When this process started (Unix nanoseconds).
    pub started: i64,
    /// Password checks that succeeded (see `auth`).
    pub passwords: auth::PasswordCache,
}

impl App {
    /// Largest request body read: room for a maximal value percent-encoded, plus the rest.
    fn body_limit(&self) -> usize {
        self.max_value_bytes
            .saturating_mul(3)
            .saturating_add(64 << 10)
    }
}

/// The client API.
pub fn client_router(app: App) -> Router {
    // The v2 auth API: root only (see `auth::root_only`).
    let auth_api = Router::new()
        .route(
            "/v2/auth/enable",
            get(auth::enable_status)
                .put(auth::enable)
                .delete(auth::enable),
        )
        .route("/v2/auth/users", get(auth::list_users))
        .route(
            "/v2/auth/users/{name}",
            get(auth::get_user)
                .put(auth::put_user)
                .delete(auth::delete_user),
        )
        .route("/v2/auth/roles", get(auth::list_roles))
        .route(
            "/v2/auth/roles/{name}",
            get(auth::get_role)
                .put(auth::put_role)
                .delete(auth::delete_role),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::root_only,
        ));
    Router::new()
        .merge(auth_api)
        .route("/", get(info::version))
        .route("/v1/keys", any(keys::keys))
        .route("/v1/keys/", any(keys::keys))
        .route("/v1/keys/{*key}", any(keys::keys))
        .route("/v1/watch", any(watch::watch))
        .route("/v1/watch/", any(watch::watch))
        .route("/v1/watch/{*key}", any(watch::watch))
        .route("/v1/machines", get(info::machines))
        .route("/v1/machines/{name}", delete(peer::remove_member))
        .route("/v1/leader", get(info::leader))
        .route("/v1/stats", get(info::stats))
        .route("/v2/keys", any(v2::keys))
        .route("/v2/keys/", any(v2::keys))
        .route("/v2/keys/{*key}", any(v2::keys))
        .route("/v2/machines", get(v2::machines))
        .route("/v2/members", get(v2::members).post(v2::members_add))
        .route("/v2/members/", get(v2::members).post(v2::members_add))
        .route("/v2/members/leader", get(v2::members_leader))
        .route(
            "/v2/members/{id}",
            axum::routing::delete(v2::members_remove).put(v2::members_update),
        )
        .route("/v2/stats/self", get(v2::stats_self))
        .route("/v2/stats/leader", get(v2::stats_leader))
        .route("/v2/stats/store", get(v2::stats_store))
        .route("/version", get(v2::version))
        .route("/health", get(v2::health))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(cors))
        .with_state(app)
}

/// etcd 3.4's CORS answers on the v2 API (it allows any origin by default): the three
/// headers on every `/v2`, `/version` and `/health` answer, and 200 to a preflight
/// `OPTIONS`. The v1 API keeps the seed's exact answers.
async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let v2 = path.starts_with("/v2/") || path == "/version" || path == "/health";
    if !v2 {
        return next.run(req).await;
    }
    let mut r = if req.method() == axum::http::Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-headers",
        axum::http::HeaderValue::from_static("accept, content-type, authorization"),
    );
    h.insert(
        "access-control-allow-methods",
        axum::http::HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(
        "access-control-allow-origin",
        axum::http::HeaderValue::from_static("*"),
    );
    r
}

/// The peer API: raft messages, snapshots, joins.
pub fn peer_router(app: App) -> Router {
    Router::new()
        .route("/raft", post(peer::raft_messages))
        .route("/raft/snapshot", post(peer::raft_snapshot))
        .route("/join", post(peer::join))
        .route("/name", get(info::name))
        .route("/version", get(info::version))
        .fallback(not_found)
        .with_state(app)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::CONTENT_TYPE, "text/plain")],
        "Method Not Allowed",
    )
        .into_response()
}

/// The clean key named by a request path below `prefix`, percent-decoded.
fn key_from_path(path: &str, prefix: &str) -> Result<String, Error> {
    let raw = path.strip_prefix(prefix).unwrap_or("");
    let decoded = percent_decode(raw);
    if decoded.len() > MAX_KEY_BYTES {
        return Err(Error::new(
            ErrorCode::InvalidField,
            format!("the key is longer than {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(etcd_store::path::clean(&decoded))
}

/// `%XX` decoding of a path (a `+` stays a `+`); invalid escapes stay as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The wire form of a store event; `ttl` is counted from now.
fn render(e: &Event) -> KeyResponse {
    KeyResponse {
        action: match e.action {
            etcd_store::Action::Get => Action::Get,
            a if a.removes() => Action::Delete,
            _ => Action::Set,
        },
        key: e.key.clone(),
        dir: e.dir,
        prev_value: e.prev_value.clone(),
        value: e.value.clone(),
        new_key: e.new_key,
        expiration: e.expiration.map(time::format_rfc3339_nanos),
        ttl: e
            .expiration
            .and_then(|t| time::remaining_ttl_secs(t, crate::clock::now())),
        index: e.index,
    }
}

/// A 200 JSON response.
fn json_ok(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn event_response(e: &Event) -> Response {
    json_ok(serde_json::to_vec(&render(e)).expect("serialising a response cannot fail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_and_cleaned() {
        assert_eq!(key_from_path("/v1/keys/a%2Fb", "/v1/keys").unwrap(), "/a/b");
        assert_eq!(
            key_from_path("/v1/keys//a/./b/../c", "/v1/keys").unwrap(),
            "/a/c"
        );
        assert_eq!(key_from_path("/v1/keys", "/v1/keys").unwrap(), "/");
        assert_eq!(
            key_from_path("/v1/keys/a+b%zz%4", "/v1/keys").unwrap(),
            "/a+b%zz%4"
        );
        assert_eq!(key_from_path("/v1/keys/%41", "/v1/keys").unwrap(), "/A");
        let long = format!("/v1/keys/{}", "k".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(
            key_from_path(&long, "/v1/keys").unwrap_err().0.code,
            ErrorCode::InvalidField
        );
    }
}
