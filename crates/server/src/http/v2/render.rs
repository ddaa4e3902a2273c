//! How v2 answers look: store events and nodes as etcd's JSON (`ttl` counted from now), and
//! the `X-Etcd-Index`, `X-Raft-Index` and `X-Raft-Term` headers.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::time;
use etcd_api::v2::{self};
use etcd_store::{Action, Event, NodeInfo, NodeView};

use crate::http::app::App;

/// A JSON answer with etcd's headers.
pub(super) fn answer(
    app: &App,
    status: StatusCode,
    etcd_index: u64,
    event: &v2::Event,
) -> Response {
    let mut r = (status, v2::to_go_json(event)).into_response();
    raft_headers(app, r.headers_mut(), etcd_index);
    r
}

pub(super) fn raft_headers(app: &App, h: &mut HeaderMap, etcd_index: u64) {
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
pub(super) fn render_event(e: &Event) -> v2::Event {
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

pub(super) fn render_view(v: &NodeView, now: i64) -> v2::Node {
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
