//! Learners (etcd 3.4's), through Debian's etcdctl 3.4 and a gRPC client: `member add
//! --learner` adds one (a second is refused), an unstarted or lagging learner cannot be
//! promoted, a started learner receives the log and serves serializable reads and Status
//! but refuses everything else with etcd's error, stays a learner across kill -9, cannot be
//! made leader, and once promoted (through a follower too: the leader judges) is a voter that
//! serves writes; a learner can be removed without a quorum check.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_v3proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use support::*;
use tonic::Code;

fn ctl(endpoint: &str, args: &[&str]) -> (Option<i32>, String, String) {
    etcdctl3(endpoint, &[], args, None)
}

#[track_caller]
fn ok(endpoint: &str, args: &[&str]) -> String {
    let (code, out, err) = ctl(endpoint, args);
    assert_eq!(code, Some(0), "etcdctl {args:?}: {out}{err}");
    out
}

#[track_caller]
fn fails_with(endpoint: &str, args: &[&str], message: &str) {
    let (code, out, err) = ctl(endpoint, args);
    assert_ne!(code, Some(0), "etcdctl {args:?} succeeded: {out}");
    assert!(err.contains(message), "etcdctl {args:?}: {err}");
}

/// The member list line of the member at `peer_url`: (id, started, learner).
fn member(ep: &str, peer_url: &str) -> Option<(String, bool, bool)> {
    ok(ep, &["member", "list"]).lines().find_map(|l| {
        let f: Vec<&str> = l.split(", ").collect();
        (f.len() == 6 && f[3] == peer_url)
            .then(|| (f[0].to_string(), f[1] == "started", f[5] == "true"))
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn put(url: &str, k: &str) -> Result<(), tonic::Status> {
    let ch = grpc_channel(url).await;
    KvClient::new(ch)
        .put(PutRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })
        .await
        .map(drop)
}

async fn range(url: &str, k: &str, serializable: bool) -> Result<i64, tonic::Status> {
    let ch = grpc_channel(url).await;
    KvClient::new(ch)
        .range(RangeRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            serializable,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().count)
}

#[track_caller]
fn refused_for_learner<T: std::fmt::Debug>(r: Result<T, tonic::Status>) {
    let s = r.expect_err("a learner refuses it");
    assert_eq!(
        (s.code(), s.message()),
        (
            Code::Unavailable,
            "etcdserver: rpc not supported for learner"
        )
    );
}

/// Waits (bounded) until `node` knows a leader.
fn wait_serving(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = try_request(
            &node.client_addr(),
            "GET",
            "/v1/leader",
            None,
            Duration::from_secs(2),
        );
        if r.is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{} serves no leader", node.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_learner_follows_the_log_serves_what_etcd_lets_it_and_is_promoted_once_in_sync() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(2, &FAST_TIMING);
    let leader = c.leader();
    let follower = 1 - leader;
    let ep = c.member(leader).client_addr();
    let via_follower = c.member(follower).client_addr();
    for i in 0..20 {
        ok(&ep, &["put", &format!("k{i}"), "v"]);
    }
    // The learner's process is prepared first, for its peer URL.
    let dir = tempfile::tempdir().unwrap();
    let [client, peer] = free_ports::<2>();
    let mut learner = Node::prepare_in(
        &dir.path().join("l"),
        "l",
        client,
        peer,
        &[
            "-C",
            &c.member(leader).peer_addr(),
            "-heartbeat-interval",
            "50",
            "-election-timeout",
            "500",
        ],
    );
    let peer_url = learner.peer_url();
    // Through a follower: it forwards the change to the leader.
    let added = ok(
        &via_follower,
        &["member", "add", "l", "--learner", "--peer-urls", &peer_url],
    );
    assert!(added.contains("added to cluster"), "{added}");
    let (id, started, is_learner) = member(&ep, &peer_url).expect("listed");
    assert!(!started && is_learner, "unstarted learner: {id}");
    fails_with(
        &ep,
        &[
            "member",
            "add",
            "l2",
            "--learner",
            "--peer-urls",
            "http://127.0.0.1:1",
        ],
        "etcdserver: too many learner members in cluster",
    );
    // Not started: not in sync (asked through the follower: the leader judges).
    fails_with(
        &via_follower,
        &["member", "promote", &id],
        "etcdserver: can only promote a learner member which is in sync with leader",
    );

    learner.launch();
    wait_serving(&learner);
    let url = learner.client_url();
    let learner_ep = learner.client_addr();
    let runtime = rt();
    // It receives the log: a serializable read finds every key.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runtime.block_on(range(&url, "k19", true)).ok() != Some(1) {
        assert!(Instant::now() < deadline, "the learner never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    refused_for_learner(runtime.block_on(put(&url, "x")));
    refused_for_learner(runtime.block_on(range(&url, "k1", false)));
    let status = runtime.block_on(async {
        let ch = grpc_channel(&url).await;
        MaintenanceClient::new(ch).status(StatusRequest {}).await
    });
    assert!(status.expect("Status is served").into_inner().is_learner);
    let s = ok(&learner_ep, &["endpoint", "status"]);
    assert!(s.contains(", false, true, "), "not leader, learner: {s}");
    // It cannot lead.
    fails_with(
        &ep,
        &["move-leader", &id],
        "etcdserver: bad leader transferee",
    );
    // A learner stays one across kill -9.
    learner.kill();
    learner.launch();
    wait_serving(&learner);
    refused_for_learner(runtime.block_on(put(&url, "x")));
    assert!(member(&ep, &peer_url).expect("listed").2);

    // In sync: promoted (retried while it catches up after the restart).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = ctl(&via_follower, &["member", "promote", &id]);
        if code == Some(0) {
            assert!(out.contains("promoted in cluster"), "{out}");
            break;
        }
        assert!(err.contains("in sync with leader"), "{err}");
        assert!(Instant::now() < deadline, "never promoted: {err}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(member(&ep, &peer_url), Some((id.clone(), true, false)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.block_on(put(&url, "x")).is_err() {
        assert!(
            Instant::now() < deadline,
            "the promoted member serves no write"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(runtime.block_on(range(&url, "x", false)).unwrap(), 1);
    fails_with(
        &ep,
        &["member", "promote", &id],
        "etcdserver: can only promote a learner member",
    );
    // The v2 member list agrees.
    let v2 = c.member(leader).request("GET", "/v2/members", None).text();
    assert!(v2.contains(&peer_url), "{v2}");

    // A learner that never started goes without a quorum check.
    ok(
        &ep,
        &[
            "member",
            "add",
            "gone",
            "--learner",
            "--peer-urls",
            "http://127.0.0.1:2",
        ],
    );
    let (gone, _, _) = member(&ep, "http://127.0.0.1:2").expect("listed");
    ok(&ep, &["member", "remove", &gone]);
    assert!(member(&ep, "http://127.0.0.1:2").is_none());
}
