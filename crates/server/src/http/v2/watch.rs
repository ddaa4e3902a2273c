//! `wait=true`: long-poll and streaming watches over the door's watch registration; a
//! permission revoked meanwhile ends a stream.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use etcd_api::v2::{self};

use super::render::{raft_headers, render_event};
use crate::http::app::App;
use crate::http::auth;
use crate::http::error::V2Error;
use crate::node::{Node, Watch, WatchKind};

/// How a v2 watch was asked for.
pub(super) struct WatchRequest {
    /// `waitIndex`: the first index of interest (0: the next event).
    pub(super) since: u64,
    /// `recursive`.
    pub(super) recursive: bool,
    /// `stream`: keep sending events.
    pub(super) stream: bool,
}

/// `wait=true`: answers with the first event at or after `waitIndex` (or the next one), and
/// with `stream=true` keeps sending events, one JSON line each, until the client leaves.
/// The headers go out at once, as etcd's do.
pub(super) async fn watch(
    app: &App,
    key: &str,
    req: WatchRequest,
    who: auth::Who,
) -> Result<Response, V2Error> {
    let (first, etcd_index) = register(&app.node, key, req.recursive, req.since)?;
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
