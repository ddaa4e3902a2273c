//! `/v1/watch/<prefix>`: a long poll that answers with exactly one event (spec section 6).
//!
//! Registration happens under the store's write lock, the same lock apply holds, so no event
//! can fall between "checked the history" and "registered". A waiting watch costs one entry in
//! the store's hub and one parked task; no thread. When the client goes away, the handler's
//! future is dropped and with it the door's waiter, which removes the watcher.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use etcd_api::ErrorCode;

use crate::http::app::App;
use crate::http::error::Error;
use crate::http::form::key_from_path;
use crate::http::form::Params;
use crate::http::reply::{event_response, method_not_allowed};
use crate::node::{Transient, Watch, WatchKind};

/// The `/v1/watch` handler.
pub(in crate::http) async fn watch(
    State(app): State<App>,
    conn: crate::http::auth::Conn,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !matches!(method, Method::GET | Method::POST) {
        return method_not_allowed();
    }
    // A v1 watch sees everything below its prefix: it needs read access to that tree.
    let who = crate::http::auth::who(&app, &headers, crate::http::auth::cn_of(&conn)).await;
    match key_from_path(uri.path(), "/v1/watch") {
        Ok(prefix) if !who.may(&app, &prefix, false, true) => {
            return Error::unauthorized().into_response()
        }
        _ => {}
    }
    wait(app, method, uri, headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn wait(
    app: App,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Error> {
    let prefix = key_from_path(uri.path(), "/v1/watch")?;
    let params = Params::from_request(&method, &uri, &headers, body, app.body_limit()).await?;
    let since = match params.get("index") {
        None | Some("") => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| Error::new(ErrorCode::IndexNaN, "Watch From Index"))?,
    };
    let waiter = match app.node.watch(&prefix, WatchKind::V1Prefix, since).0? {
        Watch::Ready(event) => return Ok(event_response(&event)),
        Watch::Waiting(waiter) => waiter,
    };
    let mut shutdown = app.shutdown.clone();
    tokio::select! {
        event = waiter.event() => match event {
            Some(event) => Ok(event_response(&event)),
            // Dropped unanswered: the node stops, or it caught up from a snapshot whose
            // history no longer reaches back to this watch.
            None if *app.shutdown.borrow() => Err(Transient::ShuttingDown.into()),
            None => Err(Error::new(
                ErrorCode::EventIndexCleared,
                "the watcher was cleared: this member caught up from a snapshot",
            )),
        },
        _ = shutdown.wait_for(|stopping| *stopping) => Err(Transient::ShuttingDown.into()),
    }
}
