//! `/`, `/v1/machines`, `/v1/leader`, `/v1/stats`, and the peer API's `/name`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use etcd_api::ErrorCode;

use crate::config::VERSION;
use crate::http::app::App;
use crate::http::error::Error;
use crate::http::reply::{json_ok, text};

/// `/`: the version string.
pub(in crate::http) async fn version() -> Response {
    text(VERSION.to_string())
}

/// `/v1/machines`: every member's client URL, by name, joined with `, `.
pub(in crate::http) async fn machines(State(app): State<App>) -> Response {
    let urls = app.node.read(|s| {
        let mut members: Vec<_> = s.members().values().collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        // Members added through /v2/members but not started have no client URL yet.
        let urls: Vec<String> = members.iter().flat_map(|m| m.client_urls()).collect();
        urls.join(", ")
    });
    text(urls)
}

/// `/v1/leader`: the leader's peer URL, or 500/301 during an election.
pub(in crate::http) async fn leader(State(app): State<App>) -> Response {
    let url = app.node.leader_id().and_then(|id| {
        app.node
            .read(|s| s.members().get(&id).map(|m| m.raft_url.clone()))
    });
    match url {
        Some(url) => text(url),
        None => Error::new(ErrorCode::LeaderElect, "").into_response(),
    }
}

/// `/v1/stats`: operation counters, the seed's four.
pub(in crate::http) async fn stats(State(app): State<App>) -> Response {
    #[derive(serde::Serialize)]
    struct V1Stats {
        gets: u64,
        sets: u64,
        deletes: u64,
        #[serde(rename = "testAndSets")]
        test_and_sets: u64,
    }
    let body = app.node.read(|store| {
        let s = store.stats();
        V1Stats {
            gets: s.gets.load(std::sync::atomic::Ordering::Relaxed),
            sets: s.sets,
            deletes: s.deletes,
            test_and_sets: s.test_and_sets,
        }
    });
    json_ok(serde_json::to_vec(&body).expect("serialising counters cannot fail"))
}

/// Peer `/name`: this member's name.
pub(in crate::http) async fn name(State(app): State<App>) -> Response {
    text(app.member.name.clone())
}
