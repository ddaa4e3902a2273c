//! Snapshots that cross between etcd 3.4 and etcd-rs, in both directions, with Debian's
//! etcdctl and etcd 3.4:
//! - `etcdctl snapshot save` against etcd-rs (one node, and a follower of three over TLS)
//!   gives a file that `etcdctl snapshot status` reads and `etcdctl snapshot restore` turns
//!   into a data directory on which a real etcd 3.4 starts with the same keys, versions,
//!   revisions (reads at old revisions included), compaction, leases (with their keys),
//!   users and roles, and the same HashKV;
//! - a snapshot etcd 3.4 saved becomes an etcd-rs node (`--restore-snapshot`) with the same,
//!   which survives kill -9 and takes new writes after the restored revision;
//! - damaged files (a flipped byte, a cut, no hash, not a database) are refused with a
//!   clear error, and a non-root user cannot take a snapshot when auth is on.
//!
//! The tests need etcdctl 3.x (and etcd 3.x for the crossings) on the PATH; without them
//! they say so and pass, unless `ETCD_REQUIRE_ETCDCTL` / `ETCD_REQUIRE_ETCD34` are set.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

thread_local! {
    /// Flags every etcdctl run of this test's thread gets (TLS).
    static EXTRA: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn extra() -> Vec<String> {
    EXTRA.with(|e| e.borrow().clone())
}

/// Runs `etcdctl --endpoints <endpoint> <args>` (v3) with this thread's [`EXTRA`] flags;
/// (exit code, stdout, stderr).
fn ctl(endpoint: &str, args: &[&str]) -> (Option<i32>, String, String) {
    etcdctl3(endpoint, &extra(), args, None)
}

#[track_caller]
fn ok(endpoint: &str, args: &[&str]) -> String {
    let (code, out, err) = ctl(endpoint, args);
    assert_eq!(code, Some(0), "etcdctl {args:?}: {out}{err}");
    out
}

/// The shared history (`support::history`) written through Debian's etcdctl at `ep`.
fn write_history(ep: &str) {
    history::write_history(&|args, input| etcdctl3(ep, &extra(), args, input));
}

/// The shared fingerprint (`support::history`) read through Debian's etcdctl at `ep`.
fn fingerprint(ep: &str) -> Vec<String> {
    history::fingerprint(&|args, input| etcdctl3(ep, &extra(), args, input))
}

/// Waits until `ep` answers (bounded).
fn wait_serving(ep: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let (code, _, err) = ctl(ep, &["endpoint", "health", "--user", "root:rootpw"]);
        if code == Some(0) || err.contains("user name is empty") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{ep} did not serve within 20 s");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

#[test]
fn our_snapshot_restored_by_etcdctl_starts_etcd_3_4_with_the_same_data() {
    if !have_etcdctl() || !have_etcd34() {
        return;
    }
    let node = Node::start("snapsrc", &["--bcrypt-cost", "4"]);
    let ep = node.client_addr();
    write_history(&ep);
    let ours = fingerprint(&ep);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.db");
    let f = file.to_str().unwrap();
    // Only root may take it.
    let (code, _, err) = ctl(&ep, &["snapshot", "save", f, "--user", "alice:alicepw"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("auth: permission denied"), "{err}");
    let saved = ok(&ep, &["snapshot", "save", f, "--user", "root:rootpw"]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(len % 512, 32, "a database of whole pages and the SHA-256");
    let status = ok(&ep, &["snapshot", "status", f, "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(
        status["revision"].as_i64(),
        Some(ours_revision(&ours)),
        "{status}"
    );
    assert_eq!(status["totalSize"].as_u64(), Some(len - 32), "{status}");

    let [client, peer] = free_ports::<2>();
    let peer_url = format!("http://127.0.0.1:{peer}");
    let restored = dir.path().join("restored");
    let r = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore", f, "--data-dir"])
        .arg(&restored)
        .args(["--name", "m1", "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("m1={peer_url}")])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (child, url) = start_etcd34_on(&restored, "m1", &peer_url, client);
    let _etcd = Killed(child);
    let theirs_ep = host_port(&url);
    wait_serving(&theirs_ep);
    assert_eq!(fingerprint(&theirs_ep), ours);
}

fn ours_revision(fp: &[String]) -> i64 {
    fp.iter()
        .find_map(|l| l.strip_prefix("revision "))
        .and_then(|r| r.parse().ok())
        .expect("a revision line")
}

#[test]
fn a_snapshot_etcd_3_4_saved_becomes_an_etcd_rs_node_with_the_same_data() {
    if !have_etcdctl() || !have_etcd34() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = start_etcd34(dir.path());
    let etcd = Killed(child);
    let ep = host_port(&url);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctl(&ep, &["endpoint", "health"]).0 != Some(0) {
        assert!(Instant::now() < deadline, "etcd 3.4 did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    write_history(&ep);
    let theirs = fingerprint(&ep);
    let file = dir.path().join("etcd.db");
    ok(
        &ep,
        &[
            "snapshot",
            "save",
            file.to_str().unwrap(),
            "--user",
            "root:rootpw",
        ],
    );
    drop(etcd);

    let flag = format!("--restore-snapshot={}", file.display());
    let mut node = Node::start("fromsnap", &["--bcrypt-cost", "4", &flag]);
    let ours_ep = node.client_addr();
    assert_eq!(fingerprint(&ours_ep), theirs);
    // The state is the member's own now: it survives kill -9 (the same flag is ignored once
    // the data directory has a log), and writes go on after the restored revision.
    node.kill();
    node.restart();
    assert_eq!(fingerprint(&ours_ep), theirs);
    let put = ok(
        &ours_ep,
        &["put", "k1", "new", "-w", "json", "--user", "root:rootpw"],
    );
    let v: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert_eq!(
        v["header"]["revision"].as_i64(),
        Some(ours_revision(&theirs) + 1),
        "{put}"
    );
}

/// Three members over TLS with client certificates: a snapshot saved through a follower
/// holds what the leader serves, and a member restored from it serves the same.
#[test]
fn a_snapshot_saved_through_a_follower_over_tls_holds_the_clusters_data() {
    if !have_etcdctl() {
        return;
    }
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(&["--bcrypt-cost", "4"]);
    let mut members = start_tls_members(&["tls1", "tls2", "tls3"], &flags);
    EXTRA.with(|e| *e.borrow_mut() = etcdctl_tls_flags());
    let ep = format!("https://{}", members[0].client_addr());
    let follower_ep = format!("https://{}", members[1].client_addr());
    write_history(&ep);
    let ours = fingerprint(&ep);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tls.db");
    let f = file.to_str().unwrap();
    ok(
        &follower_ep,
        &["snapshot", "save", f, "--user", "root:rootpw"],
    );
    let status = ok(&follower_ep, &["snapshot", "status", f, "-w", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(
        status["revision"].as_i64(),
        Some(ours_revision(&ours)),
        "{status}"
    );
    EXTRA.with(|e| e.borrow_mut().clear());
    let flag = format!("--restore-snapshot={}", file.display());
    let restored = Node::start("fromtls", &["--bcrypt-cost", "4", &flag]);
    assert_eq!(fingerprint(&restored.client_addr()), ours);
    for n in &mut members {
        n.kill();
    }
}

#[test]
fn damaged_snapshot_files_are_refused_with_a_clear_error() {
    let node = Node::start("snapbad", &[]);
    let dir = tempfile::tempdir().unwrap();
    // A good file, made through the gRPC stream as etcdctl makes it.
    let good = save_over_grpc(&node, dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &[&str], &str)> = vec![
        (
            "flipped",
            flip(&bytes, bytes.len() / 2),
            &[],
            "does not match its contents",
        ),
        (
            "cut",
            bytes[..bytes.len() - 700].to_vec(),
            &[],
            "no SHA-256 at its end",
        ),
        (
            "nohash",
            bytes[..bytes.len() - 32].to_vec(),
            &[],
            "no SHA-256 at its end",
        ),
        (
            "cutpages",
            bytes[..bytes.len() / 2 - 32].to_vec(),
            &["--skip-hash-check"],
            "truncated",
        ),
        (
            "junk",
            vec![7u8; 8192],
            &["--skip-hash-check"],
            "not a bbolt database",
        ),
    ];
    for (name, content, extra, says) in cases {
        let file = dir.path().join(format!("{name}.db"));
        std::fs::write(&file, content).unwrap();
        let mut args: Vec<String> = ["-n", name, "-d"].iter().map(|s| s.to_string()).collect();
        args.push(
            dir.path()
                .join(format!("{name}.etcd"))
                .display()
                .to_string(),
        );
        args.push(format!("--restore-snapshot={}", file.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let exit = run_etcd(&args, dir.path());
        assert_ne!(exit.code(), Some(0), "{name}");
        assert!(exit.stderr.contains(says), "{name}: {}", exit.stderr);
        assert!(!exit.stderr.contains("panicked"), "{name}: {}", exit.stderr);
    }
    // Without a hash, the waiver restores it.
    let file = dir.path().join("waived.db");
    std::fs::write(&file, &bytes[..bytes.len() - 32]).unwrap();
    let flag = format!("--restore-snapshot={}", file.display());
    let restored = Node::start("waived", &[&flag, "--skip-hash-check"]);
    assert_eq!(
        restored.request("GET", "/v2/keys/", None).status,
        200,
        "the restored member serves"
    );
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x40;
    b
}

/// `Maintenance.Snapshot` through our gRPC client, into a file as etcdctl writes it; the
/// stream's trailer must be the SHA-256 of what came before it.
fn save_over_grpc(node: &Node, dir: &Path) -> PathBuf {
    use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use etcd_v3proto::etcdserverpb::{PutRequest, SnapshotRequest};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let blobs = rt.block_on(async {
        let ch = grpc_channel(&node.client_url()).await;
        let mut kv = etcd_v3proto::etcdserverpb::kv_client::KvClient::new(ch.clone());
        for i in 0..100 {
            kv.put(PutRequest {
                key: format!("k{i}").into_bytes().into(),
                value: vec![b'v'; 300].into(),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let mut s = MaintenanceClient::new(ch)
            .snapshot(SnapshotRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut blobs = Vec::new();
        while let Some(m) = s.message().await.unwrap() {
            blobs.push((m.remaining_bytes, m.blob.to_vec()));
        }
        blobs
    });
    let (trailer, db) = blobs.split_last().expect("blobs");
    let db: Vec<u8> = db.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(db.len() % 4096, 0);
    assert_eq!(trailer.0, 0);
    for (i, (remaining, _)) in blobs[..blobs.len() - 1].iter().enumerate() {
        let sent: usize = blobs[..=i].iter().map(|(_, b)| b.len()).sum();
        assert_eq!(*remaining as usize, db.len() - sent);
    }
    let sha = sha256(&db);
    assert_eq!(trailer.1, sha, "the trailer is the database's SHA-256");
    let file = dir.join("good.db");
    let mut all = db;
    all.extend_from_slice(&trailer.1);
    std::fs::write(&file, all).unwrap();
    file
}

/// SHA-256 by `sha256sum`, an independent implementation.
fn sha256(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout);
    let hex = hex.split_whitespace().next().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
