//! An etcd deployment's own files start etcd-rs unchanged: three members configured by etcd's
//! YAML config file alone (`--config-file`, as a systemd unit starts etcd), with TLS for
//! clients and peers (client certificates required on both), two client URLs each, metrics on
//! their own port, zap JSON logs to a file, and the keys of etcd's sample configuration that
//! etcd-rs accepts at their defaults. Each member tells systemd it is ready (`sd_notify`
//! `READY=1`) once it serves. The cluster token names the cluster: a member started with
//! another token is refused before it is added. Bad config files are refused with the key
//! named. The example unit and config files in `docs/` parse.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// One member of the deployment: its node (ports, data dir), its second client port, its
/// metrics port, and the files made for it.
struct Member {
    node: Node,
    second_client: u16,
    metrics: u16,
    log: PathBuf,
    notify: UnixDatagram,
}

fn tls() -> Transport {
    Transport::Tls(
        TlsClient::new(
            &fixture("ca.crt"),
            Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
        )
        .expect("TLS client"),
    )
}

/// etcd 3.5's sample configuration (`etcd.conf.yml.sample`), filled in for one member as a
/// deployment would: every key the sample has, in its order.
fn config_yaml(m: &Member, cluster: &str, token: &str) -> String {
    let n = &m.node;
    let (cert, key, ca) = (
        fixture_arg("server.crt"),
        fixture_arg("server.key.insecure"),
        fixture_arg("ca.crt"),
    );
    format!(
        "# This is the configuration file for the etcd server.\n\
         name: '{name}'\n\
         data-dir: {data}\n\
         wal-dir: {wal}\n\
         snapshot-count: 10000\n\
         heartbeat-interval: 100\n\
         election-timeout: 1000\n\
         quota-backend-bytes: 0\n\
         listen-peer-urls: https://127.0.0.1:{peer}\n\
         listen-client-urls: https://127.0.0.1:{client},https://127.0.0.1:{client2}\n\
         max-snapshots: 5\n\
         max-wals: 5\n\
         cors:\n\
         initial-advertise-peer-urls: https://127.0.0.1:{peer}\n\
         advertise-client-urls: https://127.0.0.1:{client},https://127.0.0.1:{client2}\n\
         discovery:\n\
         discovery-fallback: 'proxy'\n\
         discovery-proxy:\n\
         discovery-srv:\n\
         initial-cluster: {cluster}\n\
         initial-cluster-token: '{token}'\n\
         initial-cluster-state: 'new'\n\
         strict-reconfig-check: false\n\
         enable-v2: true\n\
         enable-pprof: true\n\
         proxy: 'off'\n\
         proxy-failure-wait: 5000\n\
         proxy-refresh-interval: 30000\n\
         proxy-dial-timeout: 1000\n\
         proxy-write-timeout: 5000\n\
         proxy-read-timeout: 0\n\
         client-transport-security:\n  \
           cert-file: {cert}\n  \
           key-file: {key}\n  \
           client-cert-auth: true\n  \
           trusted-ca-file: {ca}\n  \
           auto-tls: false\n\
         peer-transport-security:\n  \
           cert-file: {cert}\n  \
           key-file: {key}\n  \
           client-cert-auth: true\n  \
           trusted-ca-file: {ca}\n  \
           auto-tls: false\n\
         debug: false\n\
         logger: zap\n\
         log-outputs: [{log}]\n\
         force-new-cluster: false\n\
         auto-compaction-mode: periodic\n\
         auto-compaction-retention: \"1\"\n\
         listen-metrics-urls: http://127.0.0.1:{metrics}\n",
        name = n.name,
        data = n.data_dir.display(),
        wal = n.tmp_path().join("wal-disk").display(),
        peer = n.peer_port,
        client = n.client_port,
        client2 = m.second_client,
        metrics = m.metrics,
        log = m.log.display(),
    )
}

/// Prepares members `names` of a static cluster named by `token`; each started by
/// `--config-file` alone, with `NOTIFY_SOCKET` set.
fn prepare(names: &[&str], tokens: &[&str]) -> Vec<Member> {
    let mut members: Vec<Member> = names
        .iter()
        .map(|name| {
            let node = Node::prepare(name, &[]);
            let avoid = [node.client_port, node.peer_port];
            let [second_client, metrics] = free_ports_vec(2, &avoid)[..] else {
                unreachable!()
            };
            let log = node.tmp_path().join("etcd.log");
            let notify_path = node.tmp_path().join("notify.sock");
            let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
            Member {
                node,
                second_client,
                metrics,
                log,
                notify,
            }
        })
        .collect();
    let cluster = members
        .iter()
        .map(|m| format!("{}=https://127.0.0.1:{}", m.node.name, m.node.peer_port))
        .collect::<Vec<_>>()
        .join(",");
    for (m, token) in members.iter_mut().zip(tokens) {
        let conf = m.node.tmp_path().join("etcd.conf.yml");
        std::fs::write(&conf, config_yaml(m, &cluster, token)).expect("write the config");
        m.node.args = vec!["--config-file".into(), conf.display().to_string()];
        let notify_path = m.node.tmp_path().join("notify.sock");
        m.node
            .env
            .push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
    }
    members
}

/// Waits (bounded) for `READY=1` on the member's notify socket.
fn wait_ready_notification(m: &mut Member, timeout: Duration) {
    m.notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("socket timeout");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        m.node.assert_running();
        if let Ok(n) = m.notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == "READY=1") {
                return;
            }
        }
    }
    panic!(
        "{} did not notify READY=1 within {timeout:?}: {}",
        m.node.name,
        m.node.logs()
    );
}

/// `PUT /v2/keys/<key>` of a fresh `value` at `addr`: created.
fn put_v2(t: &Transport, addr: &str, key: &str, value: &str) {
    let form = format!("value={value}");
    let put = t
        .try_request(
            addr,
            "PUT",
            &format!("/v2/keys/{key}"),
            Some(("application/x-www-form-urlencoded", form.as_bytes())),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("put {key} at {addr}: {e}"));
    assert_eq!(put.status, 201, "{}", put.text());
}

/// `POST /v3/cluster/member/list` through the JSON gateway at `addr`.
fn member_list(t: &Transport, addr: &str) -> serde_json::Value {
    let r = t
        .try_request(
            addr,
            "POST",
            "/v3/cluster/member/list",
            Some(("application/json", b"{}")),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("member list at {addr}: {e}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_tls_deployment_starts_from_etcds_config_file_alone() {
    let token = "etcd-cluster-prod";
    let mut members = prepare(&["infra0", "infra1", "infra2"], &[token; 3]);
    for m in members.iter_mut().rev() {
        m.node.launch();
    }
    let t = tls();
    for m in members.iter_mut() {
        wait_ready_notification(m, Duration::from_secs(60));
        // Ready means serving: both client URLs answer at once.
        for port in [m.node.client_port, m.second_client] {
            let addr = format!("127.0.0.1:{port}");
            let r = t
                .try_request(&addr, "GET", "/version", None, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{addr} after READY=1: {e}"));
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    // All three members, one cluster id: the one the token names.
    let expected = etcd_server::cluster::static_cluster_id(
        token,
        &format!("127.0.0.1:{}", members[0].node.peer_port),
    );
    poll_until(Duration::from_secs(30), "three members listed", || {
        let list = member_list(&t, &members[2].node.client_addr());
        (list["members"].as_array().map(Vec::len) == Some(3)).then_some(())
    });
    // Each member advertises both its client URLs.
    let list = member_list(&t, &members[0].node.client_addr());
    for m in &members {
        let listed = list["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == m.node.name.as_str())
            .unwrap_or_else(|| panic!("{} in {list}", m.node.name));
        assert_eq!(
            listed["clientURLs"],
            serde_json::json!([
                format!("https://127.0.0.1:{}", m.node.client_port),
                format!("https://127.0.0.1:{}", m.second_client)
            ]),
            "{list}"
        );
    }
    for m in &members {
        let list = member_list(&t, &format!("127.0.0.1:{}", m.second_client));
        assert_eq!(
            list["header"]["cluster_id"],
            expected.to_string(),
            "{}: {list} {}",
            m.node.name,
            std::fs::read_to_string(&m.log).unwrap_or_default()
        );
    }
    // A write through one member's second URL is read through another's first.
    put_v2(
        &t,
        &format!("127.0.0.1:{}", members[1].second_client),
        "deployed",
        "yes",
    );
    let got = t
        .try_request(
            &members[2].node.client_addr(),
            "GET",
            "/v2/keys/deployed?quorum=true",
            None,
            Duration::from_secs(5),
        )
        .expect("get");
    assert_eq!(got.json()["node"]["value"], "yes", "{}", got.text());
    // What operators run: etcdctl 3.4 with the endpoints as https URLs (the calls aimed at
    // one endpoint send the URL as the HTTP/2 authority).
    if have_etcdctl() {
        let eps: Vec<String> = members
            .iter()
            .flat_map(|m| [m.node.client_port, m.second_client])
            .map(|p| format!("https://127.0.0.1:{p}"))
            .collect();
        for cmd in [
            ["endpoint", "status"],
            ["endpoint", "hashkv"],
            ["endpoint", "health"],
        ] {
            let (code, out, err) = etcdctl3(&eps.join(","), &etcdctl_tls_flags(), &cmd, None);
            assert_eq!(code, Some(0), "{cmd:?}: {out}{err}");
            // (etcdctl 3.4 prints health to standard error.)
            let lines = format!("{out}{err}");
            let answered = lines.lines().filter(|l| l.contains("127.0.0.1")).count();
            assert_eq!(answered, 6, "{cmd:?}: {lines}");
        }
    }
    // Plain HTTP is not served on the client URLs (client certificates are required).
    assert!(try_request(
        &members[0].node.client_addr(),
        "GET",
        "/version",
        None,
        Duration::from_secs(2)
    )
    .map_or(true, |r| r.status != 200));
    // Metrics on their own port, over plain HTTP; exactly one leader.
    let mut leaders = 0.0;
    for m in &members {
        let r = get(&format!("127.0.0.1:{}", m.metrics), "/metrics");
        assert_eq!(r.status, 200);
        let text = r.text();
        let line = text
            .lines()
            .find(|l| l.starts_with("etcd_server_is_leader "))
            .unwrap_or_else(|| panic!("no etcd_server_is_leader in {text}"));
        leaders += line[line.len() - 1..].parse::<f64>().unwrap();
        assert!(
            text.contains("etcd_server_has_leader 1"),
            "{}",
            &text[..2000.min(text.len())]
        );
    }
    assert_eq!(leaders, 1.0);
    // The WAL is where --wal-dir put it, and a member killed and restarted from the same
    // file finds its log there.
    let m = &mut members[1];
    let wal_disk = m.node.tmp_path().join("wal-disk");
    assert!(std::fs::read_dir(&wal_disk).map_or(0, |d| d.count()) > 0);
    assert!(!m.node.data_dir.join("wal").exists());
    m.node.kill();
    m.node.launch();
    wait_ready_notification(m, Duration::from_secs(30));
    let got = t
        .try_request(
            &m.node.client_addr(),
            "GET",
            "/v2/keys/deployed",
            None,
            Duration::from_secs(5),
        )
        .expect("get after restart");
    assert_eq!(got.json()["node"]["value"], "yes", "{}", got.text());
    // zap logs, to the file only: etcd's fields on every line, elections and the notice for
    // a flag accepted without effect among them.
    for m in &members {
        let log = std::fs::read_to_string(&m.log).expect("the log file");
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(!lines.is_empty(), "{} logged nothing", m.node.name);
        for l in &lines {
            for field in ["level", "ts", "caller", "msg"] {
                assert!(l[field].is_string(), "{field} missing in {l}");
            }
            let ts = l["ts"].as_str().unwrap();
            assert!(
                ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{ts}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l["msg"] == "elected leader" && l["local-member-id"].is_string()),
            "{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["level"] == "warn"
                    && l["msg"].as_str().unwrap().contains("--enable-pprof")),
            "{log}"
        );
        assert!(
            !m.node.stderr().contains("\"level\""),
            "logs went to stderr too: {}",
            m.node.stderr()
        );
    }
}

#[test]
fn a_member_started_with_another_token_is_refused_before_it_is_added() {
    let mut members = prepare(&["t0", "t1"], &["blue", "green"]);
    members[0].node.launch();
    wait_ready_notification(&mut members[0], Duration::from_secs(30));
    members[1].node.launch();
    let status = members[1]
        .node
        .wait_exit(Duration::from_secs(30))
        .expect("t1 should refuse to start");
    assert_eq!(status.code(), Some(1), "{}", members[1].node.logs());
    let logs =
        members[1].node.logs() + &std::fs::read_to_string(&members[1].log).unwrap_or_default();
    assert!(logs.contains("cluster ID mismatch"), "{logs}");
    // It was never added: t0 still runs alone, with its quorum of one.
    let t = tls();
    let list = member_list(&t, &members[0].node.client_addr());
    assert_eq!(list["members"].as_array().map(Vec::len), Some(1), "{list}");
    put_v2(&t, &members[0].node.client_addr(), "still", "writable");
}

#[test]
fn bad_config_files_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let conf = tmp.path().join("etcd.conf.yml");
    let file = conf.display().to_string();
    for (text, expect) in [
        ("name: a\nnmae: b\n", "unknown key \"nmae\""),
        (
            "name: a\nsnapshot-count: many\n",
            "snapshot-count: expected a non-negative integer",
        ),
        ("name: a\nproxy: 'on'\n", "--proxy=\"on\""),
        (
            "name: a\nclient-transport-security:\n  auto-tls: true\n",
            "--auto-tls=\"true\"",
        ),
        (
            "name: a\npeer-transport-security:\n  cert: x\n",
            "unknown key peer-transport-security.cert",
        ),
        ("name: [a\n", "invalid YAML"),
        ("name: a\nlog-level: loud\n", "--log-level: \"loud\""),
        (
            "name: a\nlisten-client-urls: 127.0.0.1:2379\n",
            "--listen-client-urls",
        ),
    ] {
        std::fs::write(&conf, text).expect("write");
        let exit = run_etcd(&["--config-file".to_string(), file.clone()], tmp.path());
        assert_eq!(exit.code(), Some(1), "{text}: {}", exit.stderr);
        assert!(
            exit.stderr.contains(expect),
            "{text}: stderr should mention {expect:?}: {}",
            exit.stderr
        );
    }
    let missing = tmp.path().join("none.yml").display().to_string();
    let exit = run_etcd(&["--config-file".to_string(), missing.clone()], tmp.path());
    assert_eq!(exit.code(), Some(1), "{}", exit.stderr);
    assert!(exit.stderr.contains(&missing), "{}", exit.stderr);
}

/// The example files in `docs/` are what a deployment would install: the config file parses
/// as etcd-rs reads it, and the unit's `ExecStart` flags do too, with `Type=notify`.
#[test]
fn the_example_unit_and_config_files_parse() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let conf = docs.join("etcd.conf.yml");
    let args = vec!["--config-file".to_string(), conf.display().to_string()];
    match etcd_server::config::parse_with_env(&args, &|_| None) {
        Ok(etcd_server::config::Command::Run(c)) => {
            assert_eq!(c.node.name, "infra0");
            assert!(c.logging.zap);
            assert_eq!(c.listen_metrics.len(), 1);
            assert_eq!(c.more_client_listen.len(), 1);
            assert!(c.node.client_tls.ca.is_some() && c.node.peer_tls.ca.is_some());
            assert!(c.static_cluster.is_some());
        }
        other => panic!("{}: {other:?}", conf.display()),
    }
    let unit = std::fs::read_to_string(docs.join("etcd.service")).expect("docs/etcd.service");
    assert!(unit.lines().any(|l| l.trim() == "Type=notify"), "{unit}");
    let exec = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/etcd"));
    let flags: Vec<String> = words
        .map(|w| w.replace("/etc/etcd/etcd.conf.yml", &conf.display().to_string()))
        .collect();
    assert!(
        matches!(
            etcd_server::config::parse_with_env(&flags, &|_| None),
            Ok(etcd_server::config::Command::Run(_))
        ),
        "{exec}"
    );
}
