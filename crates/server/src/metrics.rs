//! Prometheus metrics with etcd's names, types, labels and units (etcd 3.4
//! `etcdserver/metrics.go`, `wal/metrics.go`, `mvcc/metrics.go`, go-grpc-prometheus), for the
//! alerts and dashboards operators already have: served at `GET /metrics` on the client port
//! in Prometheus' text format.
//!
//! The `prometheus` crate (TiKV's) keeps the registry and writes the format; its `process`
//! collector gives the standard `process_*` metrics under the same names as Go's client, which
//! etcd's dashboards query. Counters and histograms are updated where things happen (WAL
//! fsyncs, leader changes, proposals, gRPC calls, puts and ranges); gauges that mirror the
//! member's state (leader, raft indexes, sizes, keys) are set from the door when scraped.
//!
//! Not here: anything about how the values are computed beyond reading them.

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::node::Node;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// `etcd_server_has_leader`: 1 while a leader is known.
    pub has_leader: IntGauge,
    /// `etcd_server_is_leader`: 1 on the leader.
    pub is_leader: IntGauge,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: IntCounter,
    /// `etcd_server_proposals_committed_total` (a gauge in etcd: the commit index).
    pub proposals_committed: IntGauge,
    /// `etcd_server_proposals_applied_total` (a gauge: the applied index).
    pub proposals_applied: IntGauge,
    /// `etcd_server_proposals_pending`.
    pub proposals_pending: IntGauge,
    /// `etcd_server_proposals_failed_total`.
    pub proposals_failed: IntCounter,
    /// `etcd_server_heartbeat_send_failures_total`.
    pub heartbeat_send_failures: IntCounter,
    /// `etcd_server_slow_apply_total`: applies that took over 100 ms.
    pub slow_apply: IntCounter,
    /// `etcd_disk_wal_fsync_duration_seconds`.
    pub wal_fsync: Histogram,
    /// `etcd_disk_backend_commit_duration_seconds`: here, writing a snapshot of the state
    /// machine (what makes applied state durable beside the WAL, as etcd's backend commit).
    pub backend_commit: Histogram,
    /// `etcd_mvcc_db_total_size_in_bytes`.
    pub db_size: IntGauge,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes`.
    pub db_size_in_use: IntGauge,
    /// `etcd_server_quota_backend_bytes`.
    pub quota_backend_bytes: IntGauge,
    /// `etcd_debugging_mvcc_keys_total`.
    pub keys_total: IntGauge,
    /// `etcd_mvcc_put_total`.
    pub put_total: IntCounter,
    /// `etcd_mvcc_range_total`.
    pub range_total: IntCounter,
    /// `etcd_network_client_grpc_received_bytes_total`.
    pub grpc_received_bytes: IntCounter,
    /// `etcd_network_client_grpc_sent_bytes_total`.
    pub grpc_sent_bytes: IntCounter,
    /// `etcd_network_peer_sent_bytes_total{To}`: raft traffic delivered to each peer.
    pub peer_sent_bytes: IntCounterVec,
    /// `etcd_network_peer_received_bytes_total{From}`.
    pub peer_received_bytes: IntCounterVec,
    /// `etcd_network_peer_sent_failures_total{To}`: batches of raft messages not delivered
    /// (etcd's members-down alert reads it).
    pub peer_sent_failures: IntCounterVec,
    /// `etcd_network_peer_round_trip_time_seconds{To}`: here the round trip of each batch of
    /// raft messages delivered.
    pub peer_rtt: HistogramVec,
    /// `grpc_server_started_total{grpc_type, grpc_service, grpc_method}`.
    pub grpc_started: IntCounterVec,
    /// `grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}`.
    pub grpc_handled: IntCounterVec,
    /// `grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}`: only with
    /// `--metrics extensive` (see [`set_extensive`]), as in etcd.
    pub grpc_handling: HistogramVec,
    /// `etcd_server_version{server_version}` and `etcd_cluster_version{cluster_version}`: 1.
    versions: (IntGaugeVec, IntGaugeVec),
}

/// etcd's disk histograms' buckets: 1 ms doubling to about 8 s.
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 14).expect("valid buckets")
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("a valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("a valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let histogram = |name: &str, help: &str| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(disk_buckets()))
                .expect("a valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("registered once");
            h
        };
        let grpc_labels = ["grpc_type", "grpc_service", "grpc_method"];
        let grpc_started = IntCounterVec::new(
            Opts::new(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
            ),
            &grpc_labels,
        )
        .expect("valid");
        let grpc_handled = IntCounterVec::new(
            Opts::new(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
            ),
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )
        .expect("valid");
        registry
            .register(Box::new(grpc_started.clone()))
            .expect("once");
        registry
            .register(Box::new(grpc_handled.clone()))
            .expect("once");
        // go-grpc-prometheus' default buckets (Prometheus' DefBuckets).
        let grpc_handling = HistogramVec::new(
            HistogramOpts::new(
                "grpc_server_handling_seconds",
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &grpc_labels,
        )
        .expect("valid");
        registry
            .register(Box::new(grpc_handling.clone()))
            .expect("once");
        let server_version = IntGaugeVec::new(
            Opts::new(
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
            ),
            &["server_version"],
        )
        .expect("valid");
        let cluster_version = IntGaugeVec::new(
            Opts::new(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
            ),
            &["cluster_version"],
        )
        .expect("valid");
        let peer_sent_bytes = IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
            ),
            &["To"],
        )
        .expect("valid");
        let peer_received_bytes = IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
            ),
            &["From"],
        )
        .expect("valid");
        let peer_sent_failures = IntCounterVec::new(
            Opts::new(
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
            ),
            &["To"],
        )
        .expect("valid");
        registry
            .register(Box::new(peer_sent_failures.clone()))
            .expect("once");
        let peer_rtt = HistogramVec::new(
            HistogramOpts::new(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 14).expect("valid buckets")),
            &["To"],
        )
        .expect("valid");
        registry
            .register(Box::new(peer_sent_bytes.clone()))
            .expect("once");
        registry
            .register(Box::new(peer_received_bytes.clone()))
            .expect("once");
        registry.register(Box::new(peer_rtt.clone())).expect("once");
        registry
            .register(Box::new(server_version.clone()))
            .expect("once");
        registry
            .register(Box::new(cluster_version.clone()))
            .expect("once");
        server_version
            .with_label_values(&[etcd_api::v3::ETCD_VERSION])
            .set(1);
        cluster_version
            .with_label_values(&[etcd_api::v3::ETCD_CLUSTER_VERSION])
            .set(1);
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("once");
        Metrics {
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            heartbeat_send_failures: counter(
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            slow_apply: counter(
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            wal_fsync: histogram(
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            ),
            backend_commit: histogram(
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            ),
            db_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_size_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            quota_backend_bytes: gauge(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            keys_total: gauge(
                "etcd_debugging_mvcc_keys_total",
                "Total number of keys.",
            ),
            put_total: counter("etcd_mvcc_put_total", "Total number of puts seen by this member."),
            range_total: counter(
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            grpc_received_bytes: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            grpc_sent_bytes: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            peer_sent_bytes,
            peer_received_bytes,
            peer_sent_failures,
            peer_rtt,
            grpc_started,
            grpc_handled,
            grpc_handling,
            versions: (server_version, cluster_version),
            registry,
        }
    }

    /// Sets the gauges that mirror `node`'s state, then writes every metric in Prometheus'
    /// text format.
    pub fn render(&self, node: &Node, quota: Option<u64>) -> (String, String) {
        let status = node.status();
        use std::sync::atomic::Ordering;
        self.has_leader.set(i64::from(node.leader_id().is_some()));
        self.is_leader.set(i64::from(node.is_leader()));
        let applied = status.applied.load(Ordering::Acquire) as i64;
        self.proposals_applied.set(applied);
        self.proposals_committed
            .set((status.committed.load(Ordering::Acquire) as i64).max(applied));
        self.proposals_pending
            .set(status.pending.load(Ordering::Acquire) as i64);
        let (size, keys) = node.read(|s| (s.v3().size() as i64, s.v3().len() as i64));
        self.db_size.set(size);
        self.db_size_in_use.set(size);
        self.keys_total.set(keys);
        self.quota_backend_bytes.set(quota.map_or(0, |q| q as i64));
        let _ = &self.versions;
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        encoder
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to a Vec");
        (
            encoder.format_type().to_string(),
            String::from_utf8_lossy(&out).into_owned(),
        )
    }
}

/// The gRPC service and method of a path `/package.Service/Method`.
pub fn grpc_names(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

/// go-grpc-prometheus' name of a gRPC status code.
pub fn grpc_code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

static EXTENSIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--metrics extensive`: also time every gRPC call (`grpc_server_handling_seconds`, which
/// etcd's slow-requests alert reads), as etcd does with it.
pub fn set_extensive(on: bool) {
    EXTENSIVE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether gRPC calls are timed.
pub fn extensive() -> bool {
    EXTENSIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Creates every served gRPC method's `grpc_server_started_total` series and its
/// `grpc_server_handled_total` series for every code at zero, as go-grpc-prometheus'
/// `Register` does for etcd: Prometheus' `rate()` ignores a counter's first appearance, so
/// without them the first failures of a method (and its first successes) would never show in
/// etcd's failed-requests alert.
pub fn preregister_grpc() {
    let pool = prost_reflect::DescriptorPool::decode(etcd_v3proto::FILE_DESCRIPTOR_SET)
        .expect("the committed descriptors decode");
    let m = metrics();
    for service in pool.services() {
        let svc = service.full_name();
        for method in service.methods() {
            let kind = grpc_type(svc, method.name());
            m.grpc_started
                .with_label_values(&[kind, svc, method.name()]);
            for code in 0..=16 {
                m.grpc_handled
                    .with_label_values(&[kind, svc, method.name(), grpc_code_name(code)]);
            }
        }
    }
}

/// go-grpc-prometheus' `grpc_type` of a method.
pub fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
            "server_stream"
        }
        ("grpc.health.v1.Health", "Watch") => "server_stream",
        _ => "unary",
    }
}

#[cfg(test)]
mod grpc_series_tests {
    use super::*;

    #[test]
    fn every_method_is_preregistered_with_its_streaming_type() {
        let pool =
            prost_reflect::DescriptorPool::decode(etcd_v3proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = 0;
        for service in pool.services() {
            for method in service.methods() {
                let want = match (method.is_client_streaming(), method.is_server_streaming()) {
                    (true, true) => "bidi_stream",
                    (false, true) => "server_stream",
                    (true, false) => "client_stream",
                    (false, false) => "unary",
                };
                assert_eq!(
                    grpc_type(service.full_name(), method.name()),
                    want,
                    "{}/{}",
                    service.full_name(),
                    method.name()
                );
                methods += 1;
            }
        }
        assert!(methods > 40, "{methods}");
        preregister_grpc();
        let families = metrics().registry.gather();
        let handled = families
            .iter()
            .find(|f| f.name() == "grpc_server_handled_total")
            .unwrap();
        assert!(handled.get_metric().len() >= methods * 17);
    }
}
