//! Handler tests without a socket, a disk or raft: the routers over a door whose driver is an
//! in-memory applier (`node::in_memory`). What only processes can show (durability, TLS,
//! clusters) stays in the root `tests/`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt as _;

use super::{client_router, App};
use crate::config::{NodeInfo, TlsFiles};

fn app() -> App {
    // The node never stops here: the sender lives as long as the test process.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    App {
        node: crate::node::in_memory(),
        member: Arc::new(NodeInfo {
            id: 1,
            name: "node0".into(),
            client_addr: "127.0.0.1:4001".into(),
            peer_addr: "127.0.0.1:7001".into(),
            client_listen_host: "127.0.0.1".into(),
            peer_listen_host: "127.0.0.1".into(),
            client_tls: TlsFiles::default(),
            peer_tls: TlsFiles::default(),
            more_client_urls: Vec::new(),
            wal_dir: None,
        }),
        max_value_bytes: 1 << 20,
        max_members: 9,
        shutdown,
        started: 0,
        passwords: Default::default(),
        quota: None,
        cors: Arc::new(vec!["*".into()]),
    }
}

/// The `Access-Control-Allow-Origin` a `GET /version` from `origin` is answered with.
async fn allowed_origin(app: &App, origin: Option<&str>) -> Option<String> {
    let mut req = Request::builder().uri("/version");
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let r = client_router(app.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let mut app = app();
    assert_eq!(allowed_origin(&app, None).await.as_deref(), Some("*"));
    app.cors = Arc::new(vec![
        "http://a.example".into(),
        "https://b.example:8443".into(),
    ]);
    for (origin, want) in [
        (Some("http://a.example"), Some("http://a.example")),
        (
            Some("https://b.example:8443"),
            Some("https://b.example:8443"),
        ),
        (Some("http://c.example"), None),
        (None, None),
    ] {
        assert_eq!(
            allowed_origin(&app, origin).await.as_deref(),
            want,
            "{origin:?}"
        );
    }
    app.cors = Arc::new(vec![]);
    assert_eq!(allowed_origin(&app, Some("http://a.example")).await, None);
}

/// Sends one request through the client router; returns status, `X-Raft-Index` and body.
async fn call(app: &App, method: Method, uri: &str, form: &str) -> (StatusCode, u64, String) {
    call_as(app, None, method, uri, form).await
}

/// `call` with a basic-auth `Authorization` header.
async fn call_as(
    app: &App,
    basic: Option<&str>,
    method: Method,
    uri: &str,
    form: &str,
) -> (StatusCode, u64, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(credentials) = basic {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        req = req.header("authorization", format!("Basic {encoded}"));
    }
    if !form.is_empty() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let response = client_router(app.clone())
        .oneshot(req.body(Body::from(form.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let raft_index = response
        .headers()
        .get("x-raft-index")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        raft_index,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// Waits (at most 5 s) until the store holds `n` waiting watchers.
async fn watchers_become(app: &App, n: usize, what: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while app.node.read(|s| s.watcher_count()) != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting: {what}"));
}

#[tokio::test]
async fn v1_writes_go_through_the_door_and_reads_see_them() {
    let app = app();
    let (status, _, body) = call(&app, Method::POST, "/v1/keys/message", "value=hi").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"action":"SET","key":"/message","value":"hi","newKey":true,"index":2}"#
    );
    let (status, _, body) = call(&app, Method::GET, "/v1/keys/message", "").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            r#"{"action":"GET","key":"/message","value":"hi","index":2}"#
        )
    );
    let (status, _, body) = call(&app, Method::GET, "/v1/keys/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains(r#""errorCode":100"#), "{body}");
}

#[tokio::test]
async fn v2_answers_carry_the_applied_index_of_their_own_write() {
    let app = app();
    for i in 2..6u64 {
        let (status, raft_index, body) =
            call(&app, Method::PUT, "/v2/keys/k", &format!("value=v{i}")).await;
        assert!(status.is_success(), "{status} {body}");
        // Published before the answer: never behind the write it answers.
        assert!(
            raft_index >= i,
            "X-Raft-Index {raft_index} for the write at {i}"
        );
    }
    let (_, _, body) = call(&app, Method::GET, "/v2/members", "").await;
    assert!(body.contains(r#""name":"node0""#), "{body}");
}

#[tokio::test]
async fn a_waiting_watch_is_answered_by_the_next_write_and_an_abandoned_one_unregisters() {
    let app = app();
    let watcher = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, Method::GET, "/v1/watch/dir", "").await })
    };
    // Registered once the hub holds it.
    watchers_become(&app, 1, "the watch registers").await;
    call(&app, Method::POST, "/v1/keys/dir/a", "value=1").await;
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watch is answered")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#""key":"/dir/a""#), "{body}");

    // A client that goes away takes its watcher out of the hub.
    let abandoned = {
        let app = app.clone();
        tokio::spawn(async move { call(&app, Method::GET, "/v2/keys/other?wait=true", "").await })
    };
    watchers_become(&app, 1, "the v2 watch registers").await;
    abandoned.abort();
    let _ = abandoned.await;
    watchers_become(&app, 0, "the abandoned watch is unregistered").await;
}

#[tokio::test]
async fn member_changes_by_id_need_the_root_role() {
    use etcd_store::Command;
    let app = app();
    let hash = bcrypt::hash("pw", 4).unwrap();
    for command in [
        Command::AuthPutUser {
            name: "root".into(),
            password_hash: Some(hash.clone()),
            roles: Vec::new(),
            grant: Vec::new(),
            revoke: Vec::new(),
        },
        Command::AuthPutUser {
            name: "alice".into(),
            password_hash: Some(hash),
            roles: Vec::new(),
            grant: Vec::new(),
            revoke: Vec::new(),
        },
        Command::AuthEnable { enabled: true },
    ] {
        app.node.propose(command).await.unwrap().unwrap();
    }
    for (who, expected) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("alice:pw"), StatusCode::UNAUTHORIZED),
        // Through the check: then the member is unknown.
        (Some("root:pw"), StatusCode::NOT_FOUND),
    ] {
        for method in [Method::DELETE, Method::PUT] {
            let (status, _, body) = call_as(&app, who, method.clone(), "/v2/members/abc", "").await;
            assert_eq!(status, expected, "{method} as {who:?}: {body}");
        }
    }
    // Reading the member list needs no role.
    let (status, _, _) = call(&app, Method::GET, "/v2/members", "").await;
    assert_eq!(status, StatusCode::OK);
}
