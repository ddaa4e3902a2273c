//! Graceful stops: a rolling restart of a three-member cluster (each member stopped with
//! SIGTERM, restarted, and caught up before the next; the leader among them) under 64
//! connections of etcd-bench v3 puts spread over all members fails no request. A stopping
//! member hands leadership over, answers what is in flight, ends its long polls with a
//! complete answer and its v3 watch streams with etcd's "server stopped" (Unavailable), and
//! exits 0; clients send what the stopping member refused to another member, as etcd's
//! clients do (etcd-bench counts those as retries).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use support::*;

/// How long the load runs: enough for three restarts of a debug build on two cores.
const LOAD: Duration = Duration::from_secs(25);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_rolling_restart_under_load_fails_no_request() {
    let mut cluster = Cluster::start(3, &[]);
    let endpoints: Vec<String> = (0..3).map(|i| cluster.member(i).client_url()).collect();
    let started = Instant::now();
    let bench = Command::new(env!("CARGO_BIN_EXE_etcd-bench"))
        .args(["--endpoints", &endpoints.join(","), "--api", "v3"])
        .args(["--conns", "64", "--keys", "1000", "--json", "-q"])
        .args(["--duration", &format!("{}s", LOAD.as_secs()), "put"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start etcd-bench");
    let rt = rt();
    // Let the load reach every member first.
    std::thread::sleep(Duration::from_secs(2));
    let mut stopped_a_leader = false;
    for i in 0..3 {
        let leader = cluster.leader();
        stopped_a_leader |= leader == i;
        let addr = cluster.member(i).client_addr();
        // A v2 long poll and a v3 watch stream on the member about to stop.
        let poll = Pending::spawn(
            &addr,
            "GET",
            "/v2/keys/nothing-here?wait=true",
            None,
            Duration::from_secs(30),
        );
        let url = cluster.member(i).client_url();
        let mut watch = rt.block_on(async {
            let channel = tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect()
                .await
                .expect("connect for the watch");
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: "nothing-here".into(),
                    ..Default::default()
                })),
            };
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let mut stream = WatchClient::new(channel)
                .watch(requests)
                .await
                .expect("watch")
                .into_inner();
            let created = stream.message().await.expect("created").expect("created");
            assert!(created.created);
            stream
        });
        let status = cluster.member_mut(i).terminate();
        assert!(status.success(), "member {i} exited with {status}");
        // The long poll got a whole answer, and the watch ended with "server stopped".
        let answer = poll.wait(Duration::from_secs(10));
        assert!(answer.status > 0, "member {i}: the long poll got no answer");
        let end = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), stream_end(&mut watch)).await
        });
        match end {
            Ok(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert_eq!(status.message(), "etcdserver: server stopped");
            }
            other => panic!("member {i}: the watch stream ended with {other:?}"),
        }
        cluster.restart(i);
        // Caught up (a linearizable read answered) before the next member stops.
        poll_until(
            Duration::from_secs(30),
            "the restarted member serves",
            || {
                let r = cluster.member(i).get("/v2/keys/?quorum=true");
                (r.status == 200).then_some(())
            },
        );
    }
    assert!(stopped_a_leader, "no leader was stopped");
    println!("three restarts took {:?}", started.elapsed());
    assert!(
        started.elapsed() < LOAD,
        "the restarts took {:?}, longer than the load ran: the test proves nothing",
        started.elapsed()
    );
    let out = bench.wait_with_output().expect("etcd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("bench JSON");
    println!("rolling restart under load: {summary}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary}");
    assert!(summary["ops"].as_u64().unwrap() > 1000, "{summary}");
}

/// The status a watch stream ends with (Ok if it ended without one).
async fn stream_end(
    stream: &mut tonic::Streaming<etcd_v3proto::etcdserverpb::WatchResponse>,
) -> Result<(), tonic::Status> {
    while stream.message().await?.is_some() {}
    Ok(())
}

use futures_util::StreamExt as _;
