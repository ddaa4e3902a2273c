//! `/version`, `/health`, `/livez`, `/readyz` and `/v2/stats/{self,leader,store}`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::time;
use etcd_api::v2::{self};
use etcd_store::Command;

use super::members::hex_id;
use crate::http::app::App;
use crate::http::reply::{json, message};
use crate::{clock, gocompat};

/// How long `/health` waits for its quorum read.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// `/version`: the etcd versions this server answers as (the same as v3's `Status`), so
/// that tools choosing their API from it pick v3.
pub(in crate::http) async fn version() -> Response {
    #[derive(serde::Serialize)]
    struct Version {
        etcdserver: &'static str,
        etcdcluster: &'static str,
    }
    json(
        StatusCode::OK,
        &Version {
            etcdserver: etcd_api::v3::ETCD_VERSION,
            etcdcluster: etcd_api::v3::ETCD_CLUSTER_VERSION,
        },
    )
}

/// What the health checks found: `None` when healthy, else why not (etcd 3.5's reasons).
async fn unhealthy(app: &App, serializable: bool) -> Option<String> {
    let alarms = app.node.read(|s| s.alarms());
    if let Some(a) = alarms.first() {
        let kind = etcd_v3proto::etcdserverpb::AlarmType::try_from(a.alarm)
            .map(|t| t.as_str_name())
            .unwrap_or("UNKNOWN");
        return Some(format!("ALARM {kind}"));
    }
    if app.node.leader_id().is_none() {
        return Some("RAFT NO LEADER".into());
    }
    // A quorum read through the log, unless only this member's view is asked for.
    if !serializable
        && !matches!(
            tokio::time::timeout(HEALTH_TIMEOUT, app.node.propose(Command::Read)).await,
            Ok(Ok(Ok(_)))
        )
    {
        return Some("QGET ERROR".into());
    }
    None
}

/// `/health`: healthy when no alarm is active, there is a leader, and a quorum read goes
/// through the log (with `?serializable=true`, etcd 3.5's, this member's view alone: no
/// read). The body is etcd 3.4's.
pub(in crate::http) async fn health(
    State(app): State<App>,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    #[derive(serde::Serialize)]
    struct Health {
        health: &'static str,
    }
    let serializable = query.get("serializable").is_some_and(|v| v == "true");
    let bad = unhealthy(&app, serializable).await;
    if let Some(reason) = &bad {
        tracing::warn!(%reason, "/health: unhealthy");
    }
    let (status, health) = match bad {
        None => (StatusCode::OK, "true"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "false"),
    };
    // etcd sends this JSON as text/plain.
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        v2::to_go_json(&Health { health }),
    )
        .into_response()
}

/// `/livez` (etcd 3.5): `ok` while the process serves at all.
pub(in crate::http) async fn livez() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok",
    )
        .into_response()
}

/// `/readyz` (etcd 3.5): `ok` when this member can serve reads (a leader known, no alarm);
/// else 503 and the failed check.
pub(in crate::http) async fn readyz(State(app): State<App>) -> Response {
    let (status, body) = match unhealthy(&app, true).await {
        None => (StatusCode::OK, "ok".to_string()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]{reason}\nhealth check failed"),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `/v2/stats/self`.
pub(in crate::http) async fn stats_self(State(app): State<App>) -> Response {
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
pub(in crate::http) async fn stats_leader(State(app): State<App>) -> Response {
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
pub(in crate::http) async fn stats_store(State(app): State<App>) -> Response {
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
