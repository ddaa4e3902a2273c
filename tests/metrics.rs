//! `GET /metrics` in Prometheus' text format, with etcd's metric names, types, labels and
//! units, after real traffic: leadership on every member of three (one leader), raft
//! indexes, WAL fsync histograms with etcd's buckets, keys and sizes, the space quota, gRPC
//! calls started and handled by code (unary and streams), bytes, puts and ranges, versions,
//! and the standard process metrics.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::{LeaseRevokeRequest, PutRequest, RangeRequest};
use support::*;

/// A scrape: each sample line's `name{labels}` → value, and each `# TYPE`.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Scrape {
    fn of(node: &Node) -> Scrape {
        let r = node.request("GET", "/metrics", None);
        assert_eq!(r.status, 200);
        assert!(
            r.content_type().starts_with("text/plain"),
            "{}",
            r.content_type()
        );
        let text = r.text();
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("a type line");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (name, value) = line.rsplit_once(' ').expect("a sample line");
                samples.insert(name.to_string(), value.parse().expect("a number"));
            }
        }
        Scrape {
            samples,
            types,
            text,
        }
    }

    #[track_caller]
    fn value(&self, sample: &str) -> f64 {
        *self
            .samples
            .get(sample)
            .unwrap_or_else(|| panic!("no sample {sample} in\n{}", self.text))
    }

    #[track_caller]
    fn kind(&self, name: &str, kind: &str) {
        assert_eq!(
            self.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
}

#[test]
fn one_member_reports_etcds_metrics_after_real_traffic() {
    let node = Node::start("metrics", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = grpc_channel(&node.client_url()).await;
        let mut kv = KvClient::new(ch.clone());
        for i in 0..10 {
            kv.put(PutRequest {
                key: Bytes::from(format!("k{i}")),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        kv.range(RangeRequest {
            key: Bytes::from_static(b"k1"),
            ..Default::default()
        })
        .await
        .unwrap();
        LeaseClient::new(ch)
            .lease_revoke(LeaseRevokeRequest { id: 77 })
            .await
            .expect_err("no such lease");
    });
    let s = Scrape::of(&node);
    for (name, kind) in [
        ("etcd_server_has_leader", "gauge"),
        ("etcd_server_is_leader", "gauge"),
        ("etcd_server_leader_changes_seen_total", "counter"),
        ("etcd_server_proposals_committed_total", "gauge"),
        ("etcd_server_proposals_applied_total", "gauge"),
        ("etcd_server_proposals_pending", "gauge"),
        ("etcd_server_proposals_failed_total", "counter"),
        ("etcd_server_heartbeat_send_failures_total", "counter"),
        ("etcd_server_slow_apply_total", "counter"),
        ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
        ("etcd_disk_backend_commit_duration_seconds", "histogram"),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
        ("etcd_server_quota_backend_bytes", "gauge"),
        ("etcd_debugging_mvcc_keys_total", "gauge"),
        ("etcd_mvcc_put_total", "counter"),
        ("etcd_mvcc_range_total", "counter"),
        ("etcd_network_client_grpc_sent_bytes_total", "counter"),
        ("etcd_network_client_grpc_received_bytes_total", "counter"),
        ("grpc_server_started_total", "counter"),
        ("grpc_server_handled_total", "counter"),
        ("etcd_server_version", "gauge"),
        ("etcd_cluster_version", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        s.kind(name, kind);
    }
    assert_eq!(s.value("etcd_server_has_leader"), 1.0);
    assert_eq!(s.value("etcd_server_is_leader"), 1.0);
    assert!(s.value("etcd_server_leader_changes_seen_total") >= 1.0);
    let applied = s.value("etcd_server_proposals_applied_total");
    assert!(applied >= 11.0, "{applied}");
    assert!(s.value("etcd_server_proposals_committed_total") >= applied);
    assert_eq!(s.value("etcd_debugging_mvcc_keys_total"), 10.0);
    assert!(s.value("etcd_mvcc_db_total_size_in_bytes") > 0.0);
    assert_eq!(s.value("etcd_server_quota_backend_bytes"), 2147483648.0);
    assert_eq!(s.value("etcd_mvcc_put_total"), 10.0);
    assert_eq!(s.value("etcd_mvcc_range_total"), 1.0);
    // Every acknowledged write was fsynced: the histogram counted them, in etcd's buckets.
    assert!(s.value("etcd_disk_wal_fsync_duration_seconds_count") >= 10.0);
    for le in ["0.001", "0.002", "0.004", "1.024", "8.192", "+Inf"] {
        s.value(&format!(
            "etcd_disk_wal_fsync_duration_seconds_bucket{{le=\"{le}\"}}"
        ));
    }
    assert_eq!(
        s.value(
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}"
        ),
        10.0
    );
    assert_eq!(
        s.value(
            "grpc_server_handled_total{grpc_code=\"NotFound\",grpc_method=\"LeaseRevoke\",grpc_service=\"etcdserverpb.Lease\",grpc_type=\"unary\"}"
        ),
        1.0
    );
    assert_eq!(
        s.value(
            "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}"
        ),
        1.0
    );
    assert!(s.value("etcd_network_client_grpc_received_bytes_total") > 0.0);
    assert!(s.value("etcd_network_client_grpc_sent_bytes_total") > 0.0);
    assert_eq!(
        s.value("etcd_server_version{server_version=\"3.5.17\"}"),
        1.0
    );
    assert!(s.value("process_resident_memory_bytes") > 1e6);
}

#[test]
fn every_member_of_three_has_the_leader_and_one_is_it() {
    let c = Cluster::start(3, &FAST_TIMING);
    let mut leaders = 0.0;
    for i in 0..3 {
        let s = Scrape::of(c.member(i));
        assert_eq!(s.value("etcd_server_has_leader"), 1.0);
        leaders += s.value("etcd_server_is_leader");
        assert!(s.value("etcd_server_proposals_applied_total") > 0.0);
        // Raft traffic by member id (hex), both ways: the leader's with each follower, a
        // follower's with the leader.
        let peers = if s.value("etcd_server_is_leader") == 1.0 {
            2
        } else {
            1
        };
        s.kind("etcd_network_peer_sent_bytes_total", "counter");
        s.kind("etcd_network_peer_received_bytes_total", "counter");
        s.kind("etcd_network_peer_round_trip_time_seconds", "histogram");
        let with_traffic = |label: &str| {
            s.samples
                .iter()
                .filter(|(k, v)| k.starts_with(label) && **v > 0.0)
                .count()
        };
        assert_eq!(
            with_traffic("etcd_network_peer_sent_bytes_total{To="),
            peers,
            "{}",
            s.text
        );
        assert_eq!(
            with_traffic("etcd_network_peer_received_bytes_total{From="),
            peers,
            "{}",
            s.text
        );
    }
    assert_eq!(leaders, 1.0);
}

/// `--metrics extensive` times every gRPC call (`grpc_server_handling_seconds`, which etcd's
/// slow-requests alert reads); the default, basic, does not, as in etcd.
#[test]
fn extensive_metrics_time_grpc_calls() {
    let basic = Node::start("basic", &[]);
    let extensive = Node::start("extensive", &["--metrics", "extensive"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for node in [&basic, &extensive] {
        rt.block_on(async {
            let mut kv = KvClient::new(grpc_channel(&node.client_url()).await);
            kv.put(PutRequest {
                key: Bytes::from_static(b"timed"),
                value: Bytes::from_static(b"v"),
                ..Default::default()
            })
            .await
            .unwrap();
        });
    }
    assert!(!Scrape::of(&basic)
        .text
        .contains("grpc_server_handling_seconds"));
    let s = Scrape::of(&extensive);
    s.kind("grpc_server_handling_seconds", "histogram");
    let labels = "grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
    assert_eq!(
        s.value(&format!("grpc_server_handling_seconds_count{{{labels}}}")),
        1.0
    );
    assert_eq!(
        s.value(&format!(
            "grpc_server_handling_seconds_bucket{{{labels},le=\"+Inf\"}}"
        )),
        1.0
    );
}

/// A member that cannot be reached shows in the leader's
/// `etcd_network_peer_sent_failures_total{To}` (etcd's members-down alert reads it).
#[test]
fn sends_to_a_dead_member_count_as_failures() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let dead = (leader + 1) % 3;
    c.kill(dead);
    poll_until(Duration::from_secs(10), "a send failure counted", || {
        let s = Scrape::of(c.member(leader));
        s.samples
            .iter()
            .any(|(k, v)| k.starts_with("etcd_network_peer_sent_failures_total{To=") && *v > 0.0)
            .then_some(())
    });
    Scrape::of(c.member(leader)).kind("etcd_network_peer_sent_failures_total", "counter");
}

/// etcdctl 3.4's `endpoint status` (through gRPC's Maintenance.Status) and `/metrics` agree,
/// member by member: who leads, the database size and the raft index.
#[test]
fn etcdctl_endpoint_status_and_metrics_agree_on_leader_and_sizes() {
    if !have_etcdctl() {
        return;
    }
    let c = Cluster::start(3, &FAST_TIMING);
    let ep = c.member(0).client_url();
    for i in 0..50 {
        let (code, _, err) = etcdctl3(
            &ep,
            &[],
            &["put", &format!("k{i}"), &"v".repeat(1000)],
            None,
        );
        assert_eq!(code, Some(0), "{err}");
    }
    for i in 0..3 {
        let member = c.member(i);
        // Settled: every member has applied the puts.
        poll_until(Duration::from_secs(10), "the puts applied", || {
            let s = Scrape::of(member);
            (s.value("etcd_debugging_mvcc_keys_total") == 50.0).then_some(())
        });
        // (An endpoint URL, which etcdctl 3.4 sends as the HTTP/2 :authority of this call:
        // see `grpc/authority.rs`.)
        let (code, out, err) = etcdctl3(
            &member.client_url(),
            &[],
            &["endpoint", "status", "-w", "json"],
            None,
        );
        assert_eq!(code, Some(0), "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).expect(&out);
        let status = &status[0]["Status"];
        let s = Scrape::of(member);
        let leads = status["leader"] == status["header"]["member_id"];
        assert_eq!(
            s.value("etcd_server_is_leader") == 1.0,
            leads,
            "{out}\n{}",
            s.text
        );
        assert_eq!(
            s.value("etcd_mvcc_db_total_size_in_bytes"),
            status["dbSize"].as_f64().unwrap(),
            "{out}"
        );
        assert_eq!(
            s.value("etcd_mvcc_db_total_size_in_use_in_bytes"),
            status["dbSizeInUse"].as_f64().unwrap(),
            "{out}"
        );
        assert!(
            s.value("etcd_mvcc_db_total_size_in_bytes") > 50_000.0,
            "{}",
            s.text
        );
    }
}

/// `/health` (etcd 3.4's body; 3.5's `?serializable=true`), `/livez` and `/readyz`: healthy
/// with a leader and no alarm; an active alarm makes `/health` and `/readyz` fail until it
/// is cleared.
#[test]
fn health_livez_and_readyz_follow_the_leader_and_the_alarms() {
    use etcd_v3proto::etcdserverpb::alarm_request::AlarmAction;
    use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use etcd_v3proto::etcdserverpb::{AlarmRequest, AlarmType};
    let node = Node::start("health", &[]);
    for path in ["/health", "/health?serializable=true"] {
        let r = node.request("GET", path, None);
        assert_eq!(
            (r.status, r.text()),
            (200, "{\"health\":\"true\"}\n".to_string())
        );
    }
    for path in ["/livez", "/readyz"] {
        let r = node.request("GET", path, None);
        assert_eq!((r.status, r.text()), (200, "ok".to_string()), "{path}");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let alarm = |action: AlarmAction| {
        rt.block_on(async {
            let ch = grpc_channel(&node.client_url()).await;
            let mut m = MaintenanceClient::new(ch);
            let status = m
                .status(etcd_v3proto::etcdserverpb::StatusRequest {})
                .await
                .unwrap()
                .into_inner();
            m.alarm(AlarmRequest {
                action: action as i32,
                member_id: status.header.unwrap().member_id,
                alarm: AlarmType::Nospace as i32,
            })
            .await
            .unwrap();
        })
    };
    alarm(AlarmAction::Activate);
    let r = node.request("GET", "/health", None);
    assert_eq!(
        (r.status, r.text()),
        (503, "{\"health\":\"false\"}\n".to_string())
    );
    let r = node.request("GET", "/readyz", None);
    assert_eq!(r.status, 503);
    assert!(r.text().contains("ALARM NOSPACE"), "{}", r.text());
    assert_eq!(node.request("GET", "/livez", None).status, 200);
    alarm(AlarmAction::Deactivate);
    assert_eq!(node.request("GET", "/health", None).status, 200);
    assert_eq!(node.request("GET", "/readyz", None).status, 200);
}

/// `--listen-metrics-urls`: every URL of the list serves the metrics and the health checks,
/// and nothing else; an https URL is refused with its reason.
#[test]
fn listen_metrics_urls_serve_metrics_and_health_alone() {
    let [a, b] = free_ports::<2>();
    let flag = format!("http://127.0.0.1:{a},http://127.0.0.1:{b}");
    let node = Node::start("metricsurls", &["--listen-metrics-urls", &flag]);
    for port in [a, b] {
        let addr = format!("127.0.0.1:{port}");
        let r = get(&addr, "/metrics");
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains("etcd_server_has_leader 1"),
            "{}",
            r.text()
        );
        assert_eq!(get(&addr, "/health").status, 200);
        assert_eq!(get(&addr, "/readyz").status, 200);
        assert_eq!(get(&addr, "/v2/keys/").status, 404);
    }
    drop(node);
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["-n", "m", "--listen-metrics-urls", "https://127.0.0.1:1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let exit = run_etcd(&args, dir.path());
    assert_ne!(exit.code(), Some(0));
    assert!(
        exit.stderr.contains("--listen-metrics-urls"),
        "{}",
        exit.stderr
    );
}
