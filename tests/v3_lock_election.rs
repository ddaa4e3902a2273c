//! etcd's Lock and Election services (`v3lockpb`, `v3electionpb`) through gRPC, and etcdctl
//! 3.4's `lock` and `elect` (which run the same recipes client-side over KV, Lease and Watch).
//!
//! Each scenario takes a client URL, so that it runs against a fresh etcd-rs node and, with
//! `ETCD_COMPARE_34=1` and Debian's `etcd` on the PATH, against etcd 3.4 too: the expectations
//! written here are etcd's behaviour, checked on etcd itself.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::v3electionpb::election_client::ElectionClient;
use etcd_v3proto::v3electionpb::*;
use etcd_v3proto::v3lockpb::lock_client::LockClient;
use etcd_v3proto::v3lockpb::*;
use support::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn grant(ch: &Channel, ttl: i64) -> i64 {
    LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id
}

/// The keys under `prefix`, oldest first.
async fn keys_under(ch: &Channel, prefix: &str) -> Vec<String> {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let mut kvs = KvClient::new(ch.clone())
        .range(RangeRequest {
            key: b(prefix),
            range_end: Bytes::from(end),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner()
        .kvs;
    kvs.sort_by_key(|kv| kv.create_revision);
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// Polls `keys_under(prefix)` until it has `n` keys.
async fn until_keys(ch: &Channel, prefix: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let keys = keys_under(ch, prefix).await;
        if keys.len() == n {
            return keys;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: {keys:?}, not {n} keys"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A task's result within [`WAIT`].
async fn finished<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("in time")
        .expect("the task")
}

/// Asks for lock `name` on `lease` in a task of its own (the call returns once it holds it).
fn lock_in_background(
    locks: &LockClient<Channel>,
    name: &str,
    lease: i64,
) -> tokio::task::JoinHandle<Result<tonic::Response<LockResponse>, tonic::Status>> {
    let mut locks = locks.clone();
    let name = b(name);
    tokio::spawn(async move { locks.lock(LockRequest { name, lease }).await })
}

async fn lock_scenario(url: &str) {
    let ch = grpc_channel(url).await;
    let locks = LockClient::new(ch.clone());
    let (a, lb, c) = (
        grant(&ch, 60).await,
        grant(&ch, 60).await,
        grant(&ch, 60).await,
    );
    // Free: held at once, by the key name/<lease in hex>.
    let held = locks
        .clone()
        .lock(LockRequest {
            name: b("l"),
            lease: a,
        })
        .await
        .expect("lock")
        .into_inner();
    assert_eq!(held.key, b(&format!("l/{a:x}")));
    let at = held.header.unwrap().revision;
    // Taken: the next caller's key goes in, and it waits.
    let waiting = lock_in_background(&locks, "l", lb);
    until_keys(&ch, "l/", 2).await;
    assert!(!waiting.is_finished());
    // Unlocked: the next caller holds it, answered at or after the unlock.
    let unlocked = locks
        .clone()
        .unlock(UnlockRequest { key: held.key })
        .await
        .expect("unlock")
        .into_inner()
        .header
        .unwrap()
        .revision;
    assert!(unlocked > at);
    let got = finished(waiting)
        .await
        .expect("the second lock")
        .into_inner();
    assert_eq!(got.key, b(&format!("l/{lb:x}")));
    assert!(got.header.unwrap().revision >= unlocked);
    // The holder's lease ends: the lock is free again.
    let waiting = lock_in_background(&locks, "l", c);
    until_keys(&ch, "l/", 2).await;
    LeaseClient::new(ch.clone())
        .lease_revoke(LeaseRevokeRequest { id: lb })
        .await
        .expect("revoke");
    let got = finished(waiting)
        .await
        .expect("the third lock")
        .into_inner();
    assert_eq!(got.key, b(&format!("l/{c:x}")));
    // A caller that goes away while waiting leaves no key behind.
    let d = grant(&ch, 60).await;
    let waiting = lock_in_background(&locks, "l", d);
    until_keys(&ch, "l/", 2).await;
    waiting.abort();
    until_keys(&ch, "l/", 1).await;
    // Without a lease: a new one of 60 s holds the lock.
    let free = locks
        .clone()
        .lock(LockRequest {
            name: b("free"),
            lease: 0,
        })
        .await
        .expect("lock without a lease")
        .into_inner();
    let kv = KvClient::new(ch.clone())
        .range(RangeRequest {
            key: free.key.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .kvs
        .remove(0);
    assert_ne!(kv.lease, 0);
    let ttl = LeaseClient::new(ch.clone())
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: kv.lease,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    // An unknown lease: etcd's error, under `Unknown` (etcd's embedded client's error).
    let err = locks
        .clone()
        .lock(LockRequest {
            name: b("l2"),
            lease: 0x1234,
        })
        .await
        .expect_err("an unknown lease");
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "etcdserver: requested lease not found")
    );
}

/// The next leader an Observe stream reports: its key and value.
async fn next_observed(observed: &mut mpsc::Receiver<LeaderResponse>) -> (String, String) {
    let r = tokio::time::timeout(WAIT, observed.recv())
        .await
        .expect("in time")
        .expect("the stream open");
    let kv = r.kv.unwrap();
    assert!(r.header.unwrap().revision >= kv.mod_revision);
    (
        String::from_utf8_lossy(&kv.key).into_owned(),
        String::from_utf8_lossy(&kv.value).into_owned(),
    )
}

async fn election_scenario(url: &str) {
    let ch = grpc_channel(url).await;
    let elections = ElectionClient::new(ch.clone());
    let err = elections
        .clone()
        .leader(LeaderRequest { name: b("e") })
        .await
        .expect_err("no leader yet");
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: no leader")
    );
    // An observer, from before the first candidate (its call is answered with the first
    // leader: a Go server sends the response headers with the first message).
    let (tx, mut observed) = mpsc::channel(16);
    let mut observer = elections.clone();
    tokio::spawn(async move {
        let mut stream = observer
            .observe(LeaderRequest { name: b("e") })
            .await
            .expect("observe")
            .into_inner();
        while let Ok(Some(r)) = stream.message().await {
            if tx.send(r).await.is_err() {
                return;
            }
        }
    });
    let (a, lb) = (grant(&ch, 60).await, grant(&ch, 60).await);
    let won = elections
        .clone()
        .campaign(CampaignRequest {
            name: b("e"),
            lease: a,
            value: b("a"),
        })
        .await
        .expect("campaign")
        .into_inner();
    let leader = won.leader.clone().unwrap();
    assert_eq!(leader.key, b(&format!("e/{a:x}")));
    assert_eq!(leader.rev, won.header.unwrap().revision);
    assert_eq!((leader.name.clone(), leader.lease), (b("e"), a));
    assert_eq!(
        next_observed(&mut observed).await,
        (format!("e/{a:x}"), "a".into())
    );
    // A second candidate waits.
    let mut second = elections.clone();
    let waiting = tokio::spawn(async move {
        second
            .campaign(CampaignRequest {
                name: b("e"),
                lease: lb,
                value: b("b"),
            })
            .await
    });
    until_keys(&ch, "e/", 2).await;
    assert!(!waiting.is_finished());
    // The leader proclaims; observers and Leader see it.
    elections
        .clone()
        .proclaim(ProclaimRequest {
            leader: Some(leader.clone()),
            value: b("a2"),
        })
        .await
        .expect("proclaim");
    assert_eq!(
        next_observed(&mut observed).await,
        (format!("e/{a:x}"), "a2".into())
    );
    let now = elections
        .clone()
        .leader(LeaderRequest { name: b("e") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.kv.unwrap().value, b("a2"));
    // Not with another leadership's revision, nor without a leader key.
    let stale = LeaderKey {
        rev: leader.rev + 100,
        ..leader.clone()
    };
    let err = elections
        .clone()
        .proclaim(ProclaimRequest {
            leader: Some(stale),
            value: b("x"),
        })
        .await
        .expect_err("stale");
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "election: not leader")
    );
    let err = elections
        .clone()
        .proclaim(ProclaimRequest {
            leader: None,
            value: b("x"),
        })
        .await
        .expect_err("no leader key");
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unknown, "\"leader\" field must be provided")
    );
    // The leader resigns: the second candidate wins.
    elections
        .clone()
        .resign(ResignRequest {
            leader: Some(leader),
        })
        .await
        .expect("resign");
    let won = finished(waiting)
        .await
        .expect("the second campaign")
        .into_inner();
    let second_leader = won.leader.unwrap();
    assert_eq!(second_leader.key, b(&format!("e/{lb:x}")));
    assert_eq!(
        next_observed(&mut observed).await,
        (format!("e/{lb:x}"), "b".into())
    );
    // Campaigning again with the same lease is the same candidacy, with the new value.
    let again = elections
        .clone()
        .campaign(CampaignRequest {
            name: b("e"),
            lease: lb,
            value: b("b2"),
        })
        .await
        .expect("campaign again")
        .into_inner()
        .leader
        .unwrap();
    assert_eq!(again.rev, second_leader.rev);
    assert_eq!(
        next_observed(&mut observed).await,
        (format!("e/{lb:x}"), "b2".into())
    );
}

/// Runs `scenario` against a fresh etcd-rs node, and against etcd 3.4 when asked to.
fn run<F: std::future::Future<Output = ()>>(name: &str, scenario: impl Fn(String) -> F) {
    let node = Node::start(name, &[]);
    rt().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), scenario(node.client_url()))
            .await
            .expect("the scenario in time")
    });
    if std::env::var_os("ETCD_COMPARE_34").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let (mut etcd, url) = start_etcd34(dir.path());
        rt().block_on(async {
            wait_for_grpc(&url).await;
            tokio::time::timeout(Duration::from_secs(60), scenario(url))
                .await
                .expect("the scenario in time against etcd 3.4")
        });
        let _ = etcd.kill();
        let _ = etcd.wait();
    }
}

async fn wait_for_grpc(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(ch) = Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
        {
            let r = KvClient::new(ch)
                .range(RangeRequest {
                    key: b("ready"),
                    ..Default::default()
                })
                .await;
            if r.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn locks_are_held_in_turn_released_by_unlock_or_lease_end_and_abandoned_waits_leave_nothing() {
    run("v3lock", |url| async move { lock_scenario(&url).await });
}

#[test]
fn elections_campaign_proclaim_observe_and_resign_as_etcd() {
    run(
        "v3elect",
        |url| async move { election_scenario(&url).await },
    );
}

#[test]
fn locks_and_elections_through_a_follower_of_three_members() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let follower = (c.leader() + 1) % 3;
    let url = c.member(follower).client_url();
    rt().block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            lock_scenario(&url).await;
            election_scenario(&url).await;
        })
        .await
        .expect("the scenarios in time")
    });
}

/// An etcdctl process whose standard output goes to a file in `dir`.
struct Ctl {
    child: Child,
    out: std::path::PathBuf,
}

impl Ctl {
    fn spawn(endpoint: &str, args: &[&str], dir: &Path, name: &str) -> Ctl {
        let out = dir.join(format!("{name}.out"));
        let child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", endpoint])
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("etcdctl");
        Ctl { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until its output has `lines` lines; returns them.
    fn lines(&self, lines: usize) -> Vec<String> {
        poll_until(WAIT, "etcdctl's output", || {
            let out = self.output();
            (out.lines().count() >= lines).then(|| out.lines().map(String::from).collect())
        })
    }

    /// SIGTERM (etcdctl unlocks or resigns on it) and its exit status.
    fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_child(&mut self.child, WAIT).and_then(|s| s.code())
    }
}

fn etcdctl_scenario(endpoint: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rt = rt();
    let ch = rt.block_on(grpc_channel(&format!("http://{endpoint}")));
    // lock: the first holds it (prints its key), the second waits, and runs its command once
    // the first lets go on SIGTERM.
    let first = Ctl::spawn(endpoint, &["lock", "mylock"], d, "first");
    let key = first.lines(1)[0].clone();
    assert!(key.starts_with("mylock/"), "{key}");
    let mut second = Ctl::spawn(endpoint, &["lock", "mylock", "echo", "second"], d, "second");
    rt.block_on(until_keys(&ch, "mylock/", 2));
    assert!(second.child.try_wait().unwrap().is_none());
    assert_eq!(first.terminate(), Some(0));
    assert_eq!(
        wait_child(&mut second.child, WAIT).and_then(|s| s.code()),
        Some(0)
    );
    assert_eq!(second.output(), "second\n");
    assert_eq!(
        rt.block_on(keys_under(&ch, "mylock/")),
        Vec::<String>::new()
    );
    // elect: p1 leads, an observer sees it; p2 waits and leads once p1 resigns on SIGTERM.
    let p1 = Ctl::spawn(endpoint, &["elect", "myelection", "p1"], d, "p1");
    let lines = p1.lines(2);
    assert!(
        lines[0].starts_with("myelection/") && lines[1] == "p1",
        "{lines:?}"
    );
    let observer = Ctl::spawn(endpoint, &["elect", "-l", "myelection"], d, "observer");
    assert_eq!(observer.lines(2), lines);
    let p2 = Ctl::spawn(endpoint, &["elect", "myelection", "p2"], d, "p2");
    rt.block_on(until_keys(&ch, "myelection/", 2));
    assert_eq!(p1.terminate(), Some(0));
    let p2_lines = p2.lines(2);
    assert!(
        p2_lines[0].starts_with("myelection/") && p2_lines[1] == "p2",
        "{p2_lines:?}"
    );
    assert_eq!(observer.lines(4)[2..], p2_lines[..]);
    assert_eq!(p2.terminate(), Some(0));
    assert_eq!(observer.terminate(), Some(0));
}

#[test]
fn etcdctl_lock_and_elect_take_turns() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("v3ctllock", &[]);
    etcdctl_scenario(&node.client_addr());
    if std::env::var_os("ETCD_COMPARE_34").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let (mut etcd, url) = start_etcd34(dir.path());
        rt().block_on(wait_for_grpc(&url));
        etcdctl_scenario(url.trim_start_matches("http://"));
        let _ = etcd.kill();
        let _ = etcd.wait();
    }
}
