//! The HTTP APIs: the v1 client API (spec section 2), etcd's v2 API (`v2`), and the peer API.
//!
//! [`client_router`] builds the whole client API from an [`App`], so it can be served on any
//! listener or driven in tests without a socket. Handlers validate, then either read the store
//! through the door (`crate::node::Node::read`) or propose a command through it and wait for
//! it to be applied. This module holds only the routers; each handler file takes what it
//! shares from `app`, `reply`, `form` and `error`, never from here.

mod app;
mod auth;
pub(crate) mod body;
mod error;
pub(crate) mod form;
mod peer;
mod reply;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::Router;

pub use app::App;
pub use error::Error;

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
    // Member changes by id: root only, like the auth API.
    let member_changes = Router::new()
        .route(
            "/v2/members/{id}",
            axum::routing::delete(v2::members_remove).put(v2::members_update),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::root_only,
        ));
    Router::new()
        .merge(auth_api)
        .merge(member_changes)
        .route("/", get(v1::info::version))
        .route("/v1/keys", any(v1::keys::keys))
        .route("/v1/keys/", any(v1::keys::keys))
        .route("/v1/keys/{*key}", any(v1::keys::keys))
        .route("/v1/watch", any(v1::watch::watch))
        .route("/v1/watch/", any(v1::watch::watch))
        .route("/v1/watch/{*key}", any(v1::watch::watch))
        .route("/v1/machines", get(v1::info::machines))
        .route("/v1/machines/{name}", delete(peer::remove_member))
        .route("/v1/leader", get(v1::info::leader))
        .route("/v1/stats", get(v1::info::stats))
        .route("/v2/keys", any(v2::keys))
        .route("/v2/keys/", any(v2::keys))
        .route("/v2/keys/{*key}", any(v2::keys))
        .route("/v2/machines", get(v2::machines))
        .route("/v2/members", get(v2::members).post(v2::members_add))
        .route("/v2/members/", get(v2::members).post(v2::members_add))
        .route("/v2/members/leader", get(v2::members_leader))
        .route("/v2/stats/self", get(v2::stats_self))
        .route("/v2/stats/leader", get(v2::stats_leader))
        .route("/v2/stats/store", get(v2::stats_store))
        .route("/version", get(v2::version))
        .route("/health", get(v2::health))
        .route("/livez", get(v2::livez))
        .route("/readyz", get(v2::readyz))
        .route("/metrics", get(metrics))
        .fallback(reply::not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), cors))
        .with_state(app)
}

/// `GET /metrics`: every metric in Prometheus' text format (see `crate::metrics`).
async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> Response {
    let (content_type, body) = crate::metrics::metrics().render(&app.node, app.quota);
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

/// etcd 3.4's CORS answers on the v2 API (`--cors`, any origin by default): the three
/// headers on every `/v2`, `/version` and `/health` answer to an allowed origin (`*` when any
/// is), and 200 to a preflight `OPTIONS`. The v1 API keeps the seed's exact answers.
async fn cors(
    axum::extract::State(app): axum::extract::State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let v2 = path.starts_with("/v2/") || path == "/version" || path == "/health";
    if !v2 {
        return next.run(req).await;
    }
    let allowed = if app.cors.iter().any(|o| o == "*") {
        Some(axum::http::HeaderValue::from_static("*"))
    } else {
        req.headers()
            .get(axum::http::header::ORIGIN)
            .filter(|o| app.cors.iter().any(|a| a.as_bytes() == o.as_bytes()))
            .cloned()
    };
    let mut r = if req.method() == axum::http::Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(req).await
    };
    let Some(origin) = allowed else {
        return r;
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
    h.insert("access-control-allow-origin", origin);
    r
}

/// What `--listen-metrics-urls` serves: the metrics and the health checks alone.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(v2::health))
        .route("/livez", get(v2::livez))
        .route("/readyz", get(v2::readyz))
        .fallback(reply::not_found)
        .with_state(app)
}

/// The peer API: raft messages, snapshots, joins.
pub fn peer_router(app: App) -> Router {
    Router::new()
        .route("/raft", post(peer::raft_messages))
        .route("/raft/snapshot", post(peer::raft_snapshot))
        .route("/join", post(peer::join))
        .route("/v3rs/lease/{what}", post(peer::lease))
        .route("/v3rs/removed", post(peer::removed))
        .route("/v3rs/promote", post(peer::promote))
        .route("/v3rs/hashkv", post(peer::hashkv))
        .route("/name", get(v1::info::name))
        .route("/version", get(v1::info::version))
        .fallback(reply::not_found)
        .with_state(app)
}
