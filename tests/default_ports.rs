//! A node started with no address flags (issue 14, point 7): it serves the seed's ports (client
//! 4001, peer 7001, and advertises them as the seed did) and etcd's (client 2379, peer 2380),
//! so that `etcdctl put foo bar` needs no flags.
//!
//! The only test that binds fixed ports: every other test takes ports from 15000 up (see
//! `bind_test_port`), so none of them can hold these. On a developer's machine where one of the
//! four is taken (an etcd running), it is skipped with a message; under CI (`CI` set) a taken
//! port fails it instead.

mod support;

use std::net::TcpListener;
use std::process::Command;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::{PutRequest, RangeRequest};
use support::*;

const PORTS: [u16; 4] = [4001, 7001, 2379, 2380];

#[test]
fn a_node_with_no_address_flags_also_serves_etcds_default_ports() {
    let busy: Vec<u16> = PORTS
        .into_iter()
        .filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect();
    if !busy.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ports {busy:?} are taken on the CI machine"
        );
        eprintln!("SKIPPED: ports {busy:?} are taken on this machine");
        return;
    }
    let mut node = Node::prepare("default", &[]);
    node.client_port = 4001;
    node.peer_port = 7001;
    let data_dir = node.data_dir.display().to_string();
    node.args = vec!["-n".into(), "default".into(), "-d".into(), data_dir];
    node.launch();
    node.wait_ready();

    // The seed's answers are unchanged: it advertises 4001 and 7001.
    assert_text(&node.get("/v1/machines"), 200, "http://127.0.0.1:4001");
    assert_text(&node.get("/v1/leader"), 200, "http://127.0.0.1:7001");
    // etcd's peer port serves the peer API too.
    let name = get("127.0.0.1:2380", "/name");
    assert_eq!((name.status, name.text()), (200, "default".to_string()));
    // And etcd's client port serves HTTP and gRPC: a v3 put through 2379 is read through
    // 4001, and a v1 write through 2379 reads back through 4001.
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let read = rt.block_on(async {
        let mut kv2379 = KvClient::new(grpc_channel("http://127.0.0.1:2379").await);
        kv2379
            .put(PutRequest {
                key: Bytes::from("through"),
                value: Bytes::from("2379"),
                ..Default::default()
            })
            .await
            .expect("a v3 put on 2379");
        let mut kv4001 = KvClient::new(grpc_channel("http://127.0.0.1:4001").await);
        kv4001
            .range(RangeRequest {
                key: Bytes::from("through"),
                ..Default::default()
            })
            .await
            .expect("a v3 range on 4001")
            .into_inner()
    });
    assert_eq!(read.kvs.len(), 1);
    assert_eq!(&read.kvs[0].value[..], b"2379");
    let set = request(
        "127.0.0.1:2379",
        "POST",
        "/v1/keys/seed",
        Some(("application/x-www-form-urlencoded", b"value=on-2379")),
    );
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(node.get("/v1/keys/seed").json()["value"], "on-2379");

    // etcdctl 3.4 with no flags at all.
    if have_etcdctl() {
        let ctl = |args: &[&str]| {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--command-timeout", "10s"])
                .args(args)
                .output()
                .expect("run etcdctl");
            assert!(
                out.status.success(),
                "etcdctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(ctl(&["put", "foo", "bar"]), "OK\n");
        assert_eq!(ctl(&["get", "foo"]), "foo\nbar\n");
    }
}
