//! A real Prometheus (Debian's `prometheus`) scrapes etcd-rs members and evaluates the PromQL
//! of etcd's published alerts (the etcd mixin's `etcd3` group, with its selector
//! `job=~".*etcd.*"` and instance label `instance`) through its HTTP API:
//!
//! - on a healthy 3-member cluster every member is up and scraped, etcdNoLeader,
//!   etcdHighNumberOfLeaderChanges, etcdHighFsyncDurations, etcdHighCommitDurations,
//!   etcdDatabaseQuotaLowSpace, etcdHighNumberOfFailedProposals and
//!   etcdHighNumberOfFailedGRPCRequests evaluate and stay silent (on metrics that exist), the
//!   fsync 99th percentile is finite on every member after writes, the quota ratio is between
//!   0 and 95 %, and Prometheus' leader and database size agree with each member's `/metrics`;
//! - when two of the three members are killed, etcdNoLeader fires for the survivor,
//!   etcdMembersDown and etcdInsufficientMembers fire, and linearizable reads refused for want
//!   of a leader make etcdHighNumberOfFailedGRPCRequests fire for `Range`;
//! - a member with a 1 MiB `--quota-backend-bytes` filled with v3 puts until it refuses one
//!   makes etcdDatabaseQuotaLowSpace fire, and the refused puts make
//!   etcdHighNumberOfFailedGRPCRequests fire for `Put`.
//!
//! Skipped (with a message) when Prometheus is not installed, unless `ETCD_REQUIRE_PROMETHEUS`
//! is set (`.ci/run` installs it and sets it).

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::{PutRequest, RangeRequest};
use support::*;
use tempfile::TempDir;
use tonic::transport::Channel;
use tonic::Code;

/// How long Prometheus may take from spawn to `/-/ready`.
const PROMETHEUS_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a condition that needs a few scrapes (1 s apart) may take to show in a query.
const SCRAPES_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a percentage computed by Prometheus may be: `100 * a / a` can round a little
/// above 100.
const MAX_PERCENT: f64 = 100.0 + 1e-9;

/// The alerts' selector, as the mixin's `etcd_selector`.
const SEL: &str = r#"job=~".*etcd.*""#;

/// etcdNoLeader.
const NO_LEADER: &str = r#"etcd_server_has_leader{job=~".*etcd.*"} == 0"#;
/// etcdHighNumberOfLeaderChanges.
const HIGH_LEADER_CHANGES: &str = r#"increase((max without (instance) (etcd_server_leader_changes_seen_total{job=~".*etcd.*"}) or 0*absent(etcd_server_leader_changes_seen_total{job=~".*etcd.*"}))[15m:1m]) >= 4"#;
/// etcdHighFsyncDurations, without its threshold (`> 0.5`).
const FSYNC_P99: &str = r#"histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{job=~".*etcd.*"}[5m]))"#;
/// etcdHighCommitDurations, without its threshold (`> 0.25`).
const COMMIT_P99: &str = r#"histogram_quantile(0.99, rate(etcd_disk_backend_commit_duration_seconds_bucket{job=~".*etcd.*"}[5m]))"#;
/// etcdDatabaseQuotaLowSpace, without its threshold (`> 95`).
const QUOTA_PERCENT: &str = r#"(last_over_time(etcd_mvcc_db_total_size_in_bytes{job=~".*etcd.*"}[5m]) / last_over_time(etcd_server_quota_backend_bytes{job=~".*etcd.*"}[5m]))*100"#;
/// etcdHighNumberOfFailedProposals.
const HIGH_FAILED_PROPOSALS: &str =
    r#"rate(etcd_server_proposals_failed_total{job=~".*etcd.*"}[15m]) > 5"#;
/// etcdHighNumberOfFailedGRPCRequests (the warning, `> 1`).
const HIGH_FAILED_GRPC: &str = r#"100 * sum(rate(grpc_server_handled_total{job=~".*etcd.*", grpc_code=~"Unknown|FailedPrecondition|ResourceExhausted|Internal|Unavailable|DataLoss|DeadlineExceeded"}[5m])) without (grpc_type, grpc_code) / sum(rate(grpc_server_handled_total{job=~".*etcd.*"}[5m])) without (grpc_type, grpc_code) > 1"#;
/// etcdMembersDown (`network_failure_range` 120 s).
const MEMBERS_DOWN: &str = r#"max without (endpoint) (sum without (instance) (up{job=~".*etcd.*"} == bool 0) or count without (To) (sum without (instance) (rate(etcd_network_peer_sent_failures_total{job=~".*etcd.*"}[120s])) > 0.01)) > 0"#;
/// etcdInsufficientMembers.
const INSUFFICIENT_MEMBERS: &str = r#"sum(up{job=~".*etcd.*"} == bool 1) without (instance) < ((count(up{job=~".*etcd.*"}) without (instance) + 1) / 2)"#;

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

/// The Prometheus binary (`/usr/bin/prometheus`, else `prometheus` on the PATH), if it runs;
/// says the test skips when there is none, and fails then if `ETCD_REQUIRE_PROMETHEUS` is set.
fn prometheus_binary() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/prometheus")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("prometheus")));
    }
    let found = candidates.into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("ETCD_REQUIRE_PROMETHEUS").is_none(),
            "ETCD_REQUIRE_PROMETHEUS is set but prometheus is not installed"
        );
        eprintln!("skipped: prometheus not installed (apt-get install prometheus)");
    }
    found
}

/// A Prometheus process scraping the members' client addresses every second as job `etcd`,
/// with its configuration, database and log in a temporary directory. Killed on drop; its
/// log is printed if the test panicked.
struct Prometheus {
    child: Child,
    /// `127.0.0.1:PORT` of its web API.
    addr: String,
    dir: TempDir,
}

/// One element of an instant vector.
#[derive(Debug, Clone)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    #[track_caller]
    fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .unwrap_or_else(|| panic!("no label {name} in {self:?}"))
    }
}

impl Prometheus {
    /// Starts `bin` on a free port with `targets` (`host:port`) as the static targets of job
    /// `etcd`, and waits until it is ready.
    #[track_caller]
    fn start(bin: &Path, targets: &[String]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("etcd-rs-prometheus-")
            .tempdir()
            .expect("create temp dir");
        let targets = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: etcd\n    scheme: http\n    metrics_path: /metrics\n\
             \x20   static_configs:\n      - targets: [{targets}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout.log")).expect("create stdout log"))
            .stderr(File::create(dir.path().join("stderr.log")).expect("create stderr log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut prometheus = Prometheus { child, addr, dir };
        let addr = prometheus.addr.clone();
        poll_until(PROMETHEUS_READY_TIMEOUT, "Prometheus ready", || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "Prometheus exited at startup ({status}):\n{}",
                    prometheus.log()
                );
            }
            try_request(&addr, "GET", "/-/ready", None, PROBE_TIMEOUT)
                .is_ok_and(|r| r.status == 200)
                .then_some(())
        });
        prometheus
    }

    fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// An instant query (at now) that must answer `status: success` with a vector; its
    /// samples.
    #[track_caller]
    fn query(&self, promql: &str) -> Vec<Sample> {
        let r = get(
            &self.addr,
            &format!("/api/v1/query?query={}", urlencode(promql)),
        );
        let body = r.json();
        assert!(
            r.status == 200 && body["status"] == "success",
            "Prometheus refused {promql}: {} {}",
            r.status,
            r.text()
        );
        assert_eq!(
            body["data"]["resultType"],
            "vector",
            "{promql}: {}",
            r.text()
        );
        body["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: no result array in {}", r.text()))
            .iter()
            .map(|s| Sample {
                labels: serde_json::from_value(s["metric"].clone())
                    .unwrap_or_else(|e| panic!("{promql}: labels of {s}: {e}")),
                value: s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{promql}: value of {s}")),
            })
            .collect()
    }

    /// The samples of `promql` by their `instance` label (which must be there, once each).
    #[track_caller]
    fn by_instance(&self, promql: &str) -> BTreeMap<String, f64> {
        let samples = self.query(promql);
        let map: BTreeMap<String, f64> = samples
            .iter()
            .map(|s| (s.label("instance").to_string(), s.value))
            .collect();
        assert_eq!(map.len(), samples.len(), "{promql}: {samples:?}");
        map
    }

    /// Asserts that an alert's expression evaluates to no series. So that it cannot pass
    /// because a metric it reads is missing, `metric` (a name the expression reads) must have
    /// series from every one of `instances` first.
    #[track_caller]
    fn assert_silent(&self, alert: &str, promql: &str, metric: &str, instances: &[String]) {
        self.wait_present(metric, instances);
        let fired = self.query(promql);
        assert!(fired.is_empty(), "{alert} fired: {promql} gave {fired:?}");
    }

    /// Waits (bounded: a metric first set by a call just made shows up a scrape later) until
    /// `metric{job=~".*etcd.*"}` has series from exactly `instances`.
    #[track_caller]
    fn wait_present(&self, metric: &str, instances: &[String]) {
        let expected = sorted(instances);
        wait_for(&format!("{metric} from {expected:?}"), || {
            let by = self.by_instance(&format!("count by (instance) ({metric}{{{SEL}}})"));
            let seen: Vec<String> = by.into_keys().collect();
            if seen == expected {
                Ok(())
            } else {
                Err(format!("series from {seen:?}"))
            }
        });
    }

    /// Waits (bounded) until `up{job="etcd"}` is 1 for exactly `instances`.
    #[track_caller]
    fn wait_all_up(&self, instances: &[String]) {
        let expected: BTreeMap<String, f64> = instances.iter().map(|i| (i.clone(), 1.0)).collect();
        wait_for("every member scraped and up", || {
            let up = self.by_instance(r#"up{job="etcd"}"#);
            if up == expected {
                Ok(())
            } else {
                // The targets' page says why a scrape failed.
                let targets = get(&self.addr, "/api/v1/targets").text();
                Err(format!("up {up:?}; targets {targets}"))
            }
        });
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() || show_logs() {
            eprintln!(
                "===== Prometheus at {} (in {}) =====\n{}",
                self.addr,
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// Calls `f` every `POLL_INTERVAL` until it answers `Ok`, for at most `SCRAPES_TIMEOUT`; then
/// panics with `f`'s last `Err` (what it saw).
#[track_caller]
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + SCRAPES_TIMEOUT;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {SCRAPES_TIMEOUT:?} waiting for {what}; last saw {last}")
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// `Ok(samples)` when there are any, else `Err` describing the query's empty answer.
fn any_series(promql: &str, samples: Vec<Sample>) -> Result<Vec<Sample>, String> {
    if samples.is_empty() {
        Err(format!("no series from {promql}"))
    } else {
        Ok(samples)
    }
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// The value of the unlabelled sample `name` in a member's `/metrics`.
#[track_caller]
fn scraped(node: &Node, name: &str) -> f64 {
    let r = node.request("GET", "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A Range of one key, asking for a leader (`hasleader`, as etcd's clientv3
/// `WithRequireLeader`) or not.
fn range_request(require_leader: bool) -> tonic::Request<RangeRequest> {
    let mut req = tonic::Request::new(RangeRequest {
        key: Bytes::from_static(b"k"),
        serializable: !require_leader,
        ..Default::default()
    });
    if require_leader {
        req.metadata_mut()
            .insert("hasleader", "true".parse().expect("ASCII metadata"));
    }
    req
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_mixins_alerts_stay_silent_on_a_healthy_cluster_and_fire_when_quorum_is_lost() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    let mut c = Cluster::start(3, &FAST_TIMING);
    let instances: Vec<String> = (0..3).map(|i| c.member(i).client_addr()).collect();
    let prom = Prometheus::start(&bin, &instances);
    prom.wait_all_up(&instances);

    // etcdNoLeader: every member has the leader, and exactly one is it, the one the cluster
    // names.
    let leader = c.leader();
    prom.assert_silent(
        "etcdNoLeader",
        NO_LEADER,
        "etcd_server_has_leader",
        &instances,
    );
    let has_leader = prom.by_instance(&format!("etcd_server_has_leader{{{SEL}}}"));
    assert!(has_leader.values().all(|&v| v == 1.0), "{has_leader:?}");
    let leaders = prom.query(&format!("sum(etcd_server_is_leader{{{SEL}}})"));
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(leaders[0].value, 1.0, "{leaders:?}");
    let is_leader = prom.by_instance(&format!("etcd_server_is_leader{{{SEL}}}"));
    for (i, instance) in instances.iter().enumerate() {
        let expected = if i == leader { 1.0 } else { 0.0 };
        assert_eq!(is_leader.get(instance), Some(&expected), "{is_leader:?}");
        assert_eq!(
            scraped(c.member(i), "etcd_server_is_leader"),
            expected,
            "{instance}'s /metrics"
        );
    }

    // etcdHighNumberOfLeaderChanges and etcdHighNumberOfFailedProposals.
    prom.assert_silent(
        "etcdHighNumberOfLeaderChanges",
        HIGH_LEADER_CHANGES,
        "etcd_server_leader_changes_seen_total",
        &instances,
    );
    prom.assert_silent(
        "etcdHighNumberOfFailedProposals",
        HIGH_FAILED_PROPOSALS,
        "etcd_server_proposals_failed_total",
        &instances,
    );

    // etcdHighFsyncDurations: v2 writes (fsynced on every member) until the 99th percentile
    // of every member's WAL fsyncs over 5 minutes is a number, which needs fsyncs counted
    // between two scrapes; then the alert stays silent on this loopback cluster.
    let leader_node = c.member(leader);
    let mut writes = 0;
    let p99 = wait_for("WAL fsync percentiles on every member", || {
        for _ in 0..20 {
            let r = leader_node.request("PUT", &format!("/v2/keys/k{writes}?value=v"), None);
            assert!(r.status == 200 || r.status == 201, "{}", r.text());
            writes += 1;
        }
        let p99 = prom.by_instance(FSYNC_P99);
        if p99.len() == 3 && p99.values().all(|v| v.is_finite()) {
            Ok(p99)
        } else {
            Err(format!("{p99:?} after {writes} writes"))
        }
    });
    assert_eq!(p99.keys().cloned().collect::<Vec<_>>(), sorted(&instances));
    let fired = prom.query(&format!("{FSYNC_P99} > 0.5"));
    assert!(
        fired.is_empty(),
        "etcdHighFsyncDurations fired: {fired:?} (after {writes} writes; p99s {p99:?})"
    );

    // etcdHighCommitDurations: evaluates, one quantile per member, silent. (On etcd-rs the
    // histogram counts state-machine snapshots only, so between snapshots it has no
    // observations and the quantile is NaN.)
    prom.assert_silent(
        "etcdHighCommitDurations",
        &format!("{COMMIT_P99} > 0.25"),
        "etcd_disk_backend_commit_duration_seconds_bucket",
        &instances,
    );
    let commit = prom.by_instance(COMMIT_P99);
    assert_eq!(commit.len(), 3, "{commit:?}");

    // etcdDatabaseQuotaLowSpace: with some v3 keys the keyspace is between 0 and 95 % of
    // the (default, 2 GiB) quota on every member, and the alert is silent.
    let rt = runtime();
    let channels: Vec<Channel> = rt.block_on(async {
        let mut channels = Vec::new();
        for i in 0..3 {
            channels.push(grpc_channel(&c.member(i).client_url()).await);
        }
        channels
    });
    rt.block_on(async {
        let mut kv = KvClient::new(channels[leader].clone());
        for i in 0..20 {
            kv.put(PutRequest {
                key: Bytes::from(format!("v3/{i}")),
                value: Bytes::from(vec![b'x'; 1000]),
                ..Default::default()
            })
            .await
            .expect("a v3 put");
        }
        // A successful read on every member (the denominator of the gRPC failure ratio).
        for ch in &channels {
            KvClient::new(ch.clone())
                .range(range_request(true))
                .await
                .expect("a linearizable read");
        }
    });
    prom.assert_silent(
        "etcdDatabaseQuotaLowSpace",
        &format!("{QUOTA_PERCENT} > 95"),
        "etcd_server_quota_backend_bytes",
        &instances,
    );
    prom.wait_present("etcd_mvcc_db_total_size_in_bytes", &instances);
    let percent = wait_for("the v3 keys in every member's size", || {
        let percent = prom.by_instance(QUOTA_PERCENT);
        if percent.len() == 3 && percent.values().all(|&p| p > 0.0) {
            Ok(percent)
        } else {
            Err(format!("{percent:?}"))
        }
    });
    assert!(percent.values().all(|&p| p < 95.0), "{percent:?}");
    let quota = prom.by_instance(&format!("etcd_server_quota_backend_bytes{{{SEL}}}"));
    assert!(quota.values().all(|&q| q == 2147483648.0), "{quota:?}");
    // Prometheus' sizes are each member's own.
    wait_for("Prometheus' sizes = the members'", || {
        let sizes = prom.by_instance(&format!("etcd_mvcc_db_total_size_in_bytes{{{SEL}}}"));
        let own: BTreeMap<String, f64> = (0..3)
            .map(|i| {
                let size = scraped(c.member(i), "etcd_mvcc_db_total_size_in_bytes");
                (instances[i].clone(), size)
            })
            .collect();
        if sizes == own {
            Ok(())
        } else {
            Err(format!("Prometheus {sizes:?}, members {own:?}"))
        }
    });

    // etcdHighNumberOfFailedGRPCRequests: nothing failed.
    prom.assert_silent(
        "etcdHighNumberOfFailedGRPCRequests",
        HIGH_FAILED_GRPC,
        "grpc_server_handled_total",
        &instances,
    );
    prom.assert_silent("etcdMembersDown", MEMBERS_DOWN, "up", &instances);
    prom.assert_silent(
        "etcdInsufficientMembers",
        INSUFFICIENT_MEMBERS,
        "up",
        &instances,
    );

    // Quorum lost: the leader and one follower killed. The survivor has no leader.
    let survivor = (0..3).find(|&i| i != leader).expect("a follower");
    for i in (0..3).filter(|&i| i != survivor) {
        c.kill(i);
    }
    let survivor_instance = instances[survivor].clone();
    wait_for(
        "etcdNoLeader for the survivor alone, and one member up",
        || {
            let fired = prom.query(NO_LEADER);
            let up = prom.query(r#"sum(up{job="etcd"})"#);
            if fired.len() == 1
                && fired[0].label("instance") == survivor_instance
                && fired[0].value == 0.0
                && up.len() == 1
                && up[0].value == 1.0
            {
                Ok(())
            } else {
                Err(format!("etcdNoLeader {fired:?}, sum(up) {up:?}"))
            }
        },
    );
    assert_eq!(scraped(c.member(survivor), "etcd_server_has_leader"), 0.0);
    let down = prom.query(MEMBERS_DOWN);
    assert!(
        down.len() == 1 && down[0].value == 2.0,
        "etcdMembersDown: {down:?}"
    );
    let insufficient = prom.query(INSUFFICIENT_MEMBERS);
    assert!(
        insufficient.len() == 1 && insufficient[0].value == 1.0,
        "etcdInsufficientMembers: {insufficient:?}"
    );

    // Reads that require a leader are refused (Unavailable, "no leader") beside serializable
    // reads that are served, a few each second: etcdHighNumberOfFailedGRPCRequests fires for
    // the survivor's Range. (A trickle, not one burst: rate() needs the failures' counter in
    // two scrapes, and it only appears with the first failure.)
    let kv = KvClient::new(channels[survivor].clone());
    let mut failed = 0;
    let fired = wait_for("etcdHighNumberOfFailedGRPCRequests", || {
        rt.block_on(async {
            let status = kv
                .clone()
                .range(range_request(true))
                .await
                .expect_err("no leader");
            assert_eq!(
                (status.code(), status.message()),
                (Code::Unavailable, "etcdserver: no leader")
            );
            failed += 1;
            kv.clone()
                .range(range_request(false))
                .await
                .expect("a serializable read");
        });
        any_series(HIGH_FAILED_GRPC, prom.query(HIGH_FAILED_GRPC))
    });
    assert_eq!(fired.len(), 1, "{fired:?}");
    let range = &fired[0];
    assert_eq!(
        (
            range.label("instance"),
            range.label("grpc_service"),
            range.label("grpc_method")
        ),
        (survivor_instance.as_str(), "etcdserverpb.KV", "Range"),
        "{fired:?}"
    );
    assert!(
        range.value > 1.0 && range.value <= MAX_PERCENT,
        "{fired:?} after {failed} refused reads"
    );
}

#[test]
fn the_quota_alert_fires_when_the_keyspace_fills_the_quota() {
    let Some(bin) = prometheus_binary() else {
        return;
    };
    const QUOTA: u64 = 1 << 20;
    let quota = QUOTA.to_string();
    let node = Node::start("quota", &["--quota-backend-bytes", &quota]);
    let instances = vec![node.client_addr()];
    let prom = Prometheus::start(&bin, &instances);
    prom.wait_all_up(&instances);
    let quotas = prom.by_instance(&format!("etcd_server_quota_backend_bytes{{{SEL}}}"));
    assert_eq!(quotas.get(&instances[0]), Some(&(QUOTA as f64)));
    prom.assert_silent(
        "etcdDatabaseQuotaLowSpace",
        &format!("{QUOTA_PERCENT} > 95"),
        "etcd_mvcc_db_total_size_in_bytes",
        &instances,
    );

    // 16 KiB values until a put is refused: the keyspace then holds more than the quota less
    // one put (about 98 %).
    let rt = runtime();
    let kv = KvClient::new(rt.block_on(grpc_channel(&node.client_url())));
    let value = Bytes::from(vec![b'x'; 16 << 10]);
    let put = |i: usize| {
        rt.block_on(kv.clone().put(PutRequest {
            key: Bytes::from(format!("fill/{i:04}")),
            value: value.clone(),
            ..Default::default()
        }))
    };
    let mut accepted = 0;
    let refused = loop {
        assert!(
            accepted < 2 * (QUOTA as usize) / value.len(),
            "{accepted} puts of {} bytes accepted under a quota of {QUOTA}",
            value.len()
        );
        match put(accepted) {
            Ok(_) => accepted += 1,
            Err(status) => break status,
        }
    };
    assert_eq!(
        (refused.code(), refused.message()),
        (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded"
        ),
        "after {accepted} puts"
    );
    let size = scraped(&node, "etcd_mvcc_db_total_size_in_bytes");
    assert!(
        size > 0.95 * QUOTA as f64 && size < QUOTA as f64,
        "size {size} after {accepted} puts"
    );

    // etcdDatabaseQuotaLowSpace fires, with the member's own size (once Prometheus has
    // scraped it after the last accepted put).
    let expected = size / QUOTA as f64 * 100.0;
    assert!(expected > 95.0 && expected <= 100.0, "{expected}");
    wait_for("etcdDatabaseQuotaLowSpace at the member's size", || {
        let fired = prom.by_instance(&format!("{QUOTA_PERCENT} > 95"));
        match fired.get(&instances[0]) {
            Some(at) if fired.len() == 1 && (at - expected).abs() < 1e-9 => Ok(()),
            _ => Err(format!("{fired:?}, expected {expected}")),
        }
    });

    // Further puts are refused (the NOSPACE alarm) beside reads that are served, a few each
    // second: etcdHighNumberOfFailedGRPCRequests fires for Put (and only Put).
    let fired = wait_for("etcdHighNumberOfFailedGRPCRequests", || {
        let status = put(accepted).expect_err("no space");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        rt.block_on(kv.clone().range(range_request(true)))
            .expect("a read");
        any_series(HIGH_FAILED_GRPC, prom.query(HIGH_FAILED_GRPC))
    });
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(
        (
            fired[0].label("instance"),
            fired[0].label("grpc_service"),
            fired[0].label("grpc_method")
        ),
        (instances[0].as_str(), "etcdserverpb.KV", "Put"),
        "{fired:?}"
    );
    assert!(
        fired[0].value > 1.0 && fired[0].value <= MAX_PERCENT,
        "{fired:?}"
    );
}
