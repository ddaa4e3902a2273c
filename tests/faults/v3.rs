//! v3 clients under the kill/pause nemesis: puts, linearizable ranges, value
//! compare-and-swap txns and deletes on the same three keys, checked by the same register
//! model; plus watchers that follow every revision across member kills (resuming from the
//! revision after the last one seen, on another member when theirs is gone) and must see
//! each revision exactly once, in order, as the final history shows it; plus lease
//! clients whose lease-bound keys must never go before their TTL has run out since the
//! last answered keep-alive, and must go once nobody keeps their leases alive.

use std::collections::BTreeMap;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op3;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use tonic::transport::Channel;
use tonic::Code;

use super::*;

/// One change as a watcher saw it: revision, key, value (`None`: deleted).
pub(super) type Seen = (i64, String, Option<String>);

pub(super) fn channels(addrs: &[String]) -> Vec<Channel> {
    addrs
        .iter()
        .map(|a| {
            Channel::from_shared(format!("http://{a}"))
                .expect("url")
                .connect_timeout(Duration::from_millis(500))
                .connect_lazy()
        })
        .collect()
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a client runtime")
}

/// An error's place in the history: unknown (it may have taken effect) unless the API
/// says it did not happen; an etcd error a correct server never gives here is an anomaly.
pub(super) fn failure(status: &tonic::Status) -> Outcome {
    if refused(status) {
        return Outcome::NotSent;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            Outcome::Record(Output::Unknown)
        }
        // A stream reset by a killed member.
        Code::Internal if !status.message().starts_with("etcdserver") => {
            Outcome::Record(Output::Unknown)
        }
        _ => Outcome::Anomaly(format!("{:?} {}", status.code(), status.message())),
    }
}

/// A call's outcome: `ok` of its answer, or what its failure or timeout means.
async fn settle<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ok: impl FnOnce(T) -> Output,
) -> Outcome {
    match tokio::time::timeout(OP_TIMEOUT, call).await {
        Ok(Ok(r)) => Outcome::Record(ok(r.into_inner())),
        Ok(Err(s)) => failure(&s),
        Err(_) => Outcome::Record(Output::Unknown),
    }
}

/// Whether the call failed because nobody listened (a killed member): it was never sent.
pub(super) fn refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        source = e.source();
    }
    false
}

pub(super) fn run_client(
    id: usize,
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
) -> ClientRun {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E6C_63D0_676A_9A99));
    let mut run = ClientRun {
        history: Vec::new(),
        stats: Stats::default(),
        anomalies: Vec::new(),
    };
    let mut recent: [Option<String>; KEYS.len()] = Default::default();
    let mut seq: u64 = 0;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        let m = rng.index(chans.len());
        let mut kv = KvClient::new(chans[m].clone());
        let k = rng.index(KEYS.len());
        let key = Bytes::from(KEYS[k]);
        let kind = match rng.below(100) {
            0..=29 => Kind::Set,
            30..=64 => Kind::Read,
            65..=84 => Kind::Cas,
            _ => Kind::Delete,
        };
        seq += 1;
        let new = format!("v3c{id}-{seq}");
        let call = now_nanos(start);
        let (input, outcome) = rt.block_on(async {
            let put = |value: &str| PutRequest {
                key: key.clone(),
                value: Bytes::from(value.to_string()),
                ..Default::default()
            };
            match kind {
                Kind::Set => (
                    Input::Set(new.clone()),
                    settle(kv.put(put(&new)), |_| Output::Ok).await,
                ),
                Kind::Read => {
                    let r = RangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    };
                    (
                        Input::Get,
                        settle(kv.range(r), |r| {
                            Output::Read(
                                r.kvs
                                    .first()
                                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                            )
                        })
                        .await,
                    )
                }
                Kind::Cas => {
                    let expected = match &recent[k] {
                        Some(v) if rng.below(4) != 0 => v.clone(),
                        _ => format!(
                            "v3c{}-{}",
                            rng.index(CLIENTS),
                            rng.below(seq.max(2) - 1) + 1
                        ),
                    };
                    let txn = TxnRequest {
                        compare: vec![Compare {
                            key: key.clone(),
                            target: CompareTarget::Value as i32,
                            result: CompareResult::Equal as i32,
                            target_union: Some(TargetUnion::Value(Bytes::from(expected.clone()))),
                            range_end: Bytes::new(),
                        }],
                        success: vec![RequestOp {
                            request: Some(Op3::RequestPut(put(&new))),
                        }],
                        failure: Vec::new(),
                    };
                    (
                        Input::TestAndSet {
                            expected,
                            new: new.clone(),
                        },
                        settle(kv.txn(txn), |r| {
                            if r.succeeded {
                                Output::Ok
                            } else {
                                Output::Failed
                            }
                        })
                        .await,
                    )
                }
                Kind::Delete => {
                    let d = DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    };
                    (
                        Input::Delete,
                        settle(kv.delete_range(d), |r| Output::Deleted(r.deleted == 1)).await,
                    )
                }
            }
        });
        let ret = now_nanos(start);
        let op = Op {
            client: id,
            key: KEYS[k].to_string(),
            input,
            output: Output::Unknown,
            call,
            ret,
        };
        let what = || {
            format!(
                "v3 client {id} at {:.3}s on {} {kind:?} {}",
                call as f64 / 1e9,
                addrs[m],
                KEYS[k]
            )
        };
        run.record(kind, op, outcome, &mut recent[k], what);
    }
    run
}

/// The TTL of the lease-bound keys' leases, in seconds.
pub(super) const LEASE_TTL: i64 = 2;

/// What a lease client saw: the keys it let go (whose leases it stopped keeping alive, so
/// they must be gone in the end), its anomalies, and how many answers it checked.
pub(super) struct Leased {
    pub(super) let_go: Vec<String>,
    pub(super) anomalies: Vec<String>,
    pub(super) checked: usize,
}

/// Lease-bound keys under faults: grants a lease of [`LEASE_TTL`] seconds, puts a key with
/// it, keeps the lease alive (through random members) for longer than its TTL while
/// reading the key, then lets it go and starts again. With its own clock (the members'
/// clocks are the same machine's) it checks that no lease ends early: a read answering
/// the key absent, a put or a keep-alive answering the lease gone, before the TTL has
/// passed since the last answered keep-alive (or the grant) was sent, is an anomaly.
pub(super) fn run_leaser(
    id: usize,
    addrs: &[String],
    seed: u64,
    until: Instant,
    stop: &AtomicBool,
) -> Leased {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let mut rng = Rng::new(seed ^ (id as u64 + 7).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let ttl = Duration::from_secs(LEASE_TTL as u64);
    let mut out = Leased {
        let_go: Vec::new(),
        anomalies: Vec::new(),
        checked: 0,
    };
    let mut round = 0;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        round += 1;
        let key = format!("leased/{id}-{round}");
        let sent = Instant::now();
        let grant = rt.block_on(settle_raw(
            LeaseClient::new(chans[rng.index(chans.len())].clone()).lease_grant(
                LeaseGrantRequest {
                    ttl: LEASE_TTL,
                    id: 0,
                },
            ),
        ));
        let Some(Ok(grant)) = grant else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let lease = grant.id;
        // The lease lasts at least until `alive_until`.
        let mut alive_until = sent + ttl;
        let gone_early = |what: &str, out: &mut Leased, alive_until: Instant| {
            let now = Instant::now();
            if now < alive_until {
                out.anomalies.push(format!(
                    "lease client {id}: {what} for {key} (lease {lease:x}) {:?} before \
                     the TTL since the last answered keep-alive ran out",
                    alive_until - now
                ));
            }
        };
        let put = rt.block_on(settle_raw(
            KvClient::new(chans[rng.index(chans.len())].clone()).put(PutRequest {
                key: Bytes::from(key.clone()),
                value: Bytes::from("leased"),
                lease,
                ..Default::default()
            }),
        ));
        out.let_go.push(key.clone());
        match put {
            Some(Ok(_)) => {}
            Some(Err(s)) if s.message().contains("requested lease not found") => {
                gone_early("a put answered the lease gone", &mut out, alive_until);
                continue;
            }
            _ => continue,
        }
        // Kept alive for twice the TTL: without the keep-alives the key would go.
        while Instant::now() < sent + ttl * 2 && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(300));
            let sent = Instant::now();
            let ch = chans[rng.index(chans.len())].clone();
            let kept = rt.block_on(async {
                let requests = futures_util::stream::iter([LeaseKeepAliveRequest { id: lease }])
                    .chain(futures_util::stream::pending());
                let mut s = match settle_raw(LeaseClient::new(ch).lease_keep_alive(requests)).await
                {
                    Some(Ok(s)) => s,
                    _ => return None,
                };
                match tokio::time::timeout(OP_TIMEOUT, s.message()).await {
                    Ok(Ok(Some(r))) => Some(r.ttl),
                    _ => None,
                }
            });
            match kept {
                Some(t) if t > 0 => alive_until = alive_until.max(sent + ttl),
                Some(_) => {
                    gone_early(
                        "a keep-alive answered the lease gone",
                        &mut out,
                        alive_until,
                    );
                    break;
                }
                None => {}
            }
            out.checked += 1;
            let read = rt.block_on(settle_raw(
                KvClient::new(chans[rng.index(chans.len())].clone()).range(RangeRequest {
                    key: Bytes::from(key.clone()),
                    ..Default::default()
                }),
            ));
            if let Some(Ok(r)) = read {
                out.checked += 1;
                if r.kvs.is_empty() {
                    gone_early("a read answered the key absent", &mut out, alive_until);
                    break;
                }
                if r.kvs[0].lease != lease {
                    out.anomalies.push(format!(
                        "lease client {id}: {key} has lease {:x}, not {lease:x}",
                        r.kvs[0].lease
                    ));
                }
            }
        }
    }
    out
}

/// A call's answer or error, or `None` when it took longer than [`OP_TIMEOUT`].
async fn settle_raw<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Option<Result<T, tonic::Status>> {
    tokio::time::timeout(OP_TIMEOUT, call)
        .await
        .ok()
        .map(|r| r.map(tonic::Response::into_inner))
}

/// Every key the lease clients let go is gone within the TTL and `slack` after they
/// stopped (nobody keeps their leases alive any more); returns those still there.
pub(super) fn leftover_leased_keys(addr: &str, slack: Duration) -> Vec<String> {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let ch = channels(&[addr.to_string()]).remove(0);
    let deadline = Instant::now() + Duration::from_secs(LEASE_TTL as u64) + slack;
    rt.block_on(async {
        loop {
            let r = KvClient::new(ch.clone())
                .range(RangeRequest {
                    key: Bytes::from("leased/"),
                    range_end: Bytes::from("leased0"),
                    keys_only: true,
                    ..Default::default()
                })
                .await;
            if let Ok(r) = r {
                let left: Vec<String> = r
                    .into_inner()
                    .kvs
                    .iter()
                    .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                    .collect();
                if left.is_empty() || Instant::now() > deadline {
                    return left;
                }
            }
            assert!(
                Instant::now() < deadline + OP_TIMEOUT,
                "the leased keys could not be read"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}

/// Watches the clients' keys from revision 1 until it has seen revision `last` (set once
/// the clients stopped), moving to another member whenever its stream ends. Returns what
/// it saw, and anomalies (a canceled or compacted watch, a revision out of order).
pub(super) fn run_watcher(
    id: usize,
    addrs: &[String],
    last: &std::sync::atomic::AtomicI64,
    deadline: &Mutex<Option<Instant>>,
) -> (Vec<Seen>, Vec<String>) {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let mut seen: Vec<Seen> = Vec::new();
    let mut anomalies = Vec::new();
    let mut member = id % chans.len();
    rt.block_on(async {
        loop {
            let done = |seen: &Vec<Seen>| {
                let target = last.load(Ordering::SeqCst);
                target > 0 && seen.last().is_some_and(|s| s.0 >= target)
            };
            if done(&seen) {
                return;
            }
            if deadline
                .lock()
                .expect("deadline")
                .is_some_and(|d| Instant::now() > d)
            {
                anomalies.push(format!(
                    "watcher {id} did not reach revision {} (last seen {:?})",
                    last.load(Ordering::SeqCst),
                    seen.last()
                ));
                return;
            }
            let from = seen.last().map_or(1, |s| s.0 + 1);
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: Bytes::from("jepsen/"),
                    range_end: Bytes::from("jepsen0"),
                    start_revision: from,
                    ..Default::default()
                })),
            };
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let mut client = WatchClient::new(chans[member].clone());
            let stream = tokio::time::timeout(OP_TIMEOUT, client.watch(requests)).await;
            let mut stream = match stream {
                Ok(Ok(s)) => s.into_inner(),
                _ => {
                    member = (member + 1) % chans.len();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Read until the stream ends, errs, or stays silent once the target is known.
            loop {
                let next = tokio::time::timeout(Duration::from_secs(2), stream.message());
                let r = match next.await {
                    Ok(Ok(Some(r))) => r,
                    Ok(Ok(None)) | Ok(Err(_)) => break,
                    Err(_) if last.load(Ordering::SeqCst) > 0 => break,
                    Err(_) => continue,
                };
                if r.canceled || r.compact_revision != 0 {
                    anomalies.push(format!("watcher {id}: canceled: {r:?}"));
                    return;
                }
                for e in r.events {
                    let kv = e.kv.unwrap_or_default();
                    let rev = kv.mod_revision;
                    if seen.last().is_some_and(|s| s.0 > rev) {
                        anomalies.push(format!(
                            "watcher {id}: revision {rev} after {:?}",
                            seen.last()
                        ));
                    }
                    let value =
                        (e.r#type == 0).then(|| String::from_utf8_lossy(&kv.value).into_owned());
                    seen.push((rev, String::from_utf8_lossy(&kv.key).into_owned(), value));
                }
                if done(&seen) {
                    return;
                }
            }
            member = (member + 1) % chans.len();
        }
    });
    (seen, anomalies)
}

/// The full change history of the clients' keys, read from `addr` once every member
/// agrees, and the revision of its last change. (Other keys, the lease clients', may
/// still change: the history is complete once a progress answer passes the revision the
/// store had when the watch began.)
pub(super) fn final_history(addr: &str) -> (Vec<Seen>, i64) {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let ch = channels(&[addr.to_string()]).remove(0);
    rt.block_on(async {
        let rev = KvClient::new(ch.clone())
            .range(RangeRequest {
                key: Bytes::from("jepsen/"),
                range_end: Bytes::from("jepsen0"),
                ..Default::default()
            })
            .await
            .expect("a final read")
            .into_inner()
            .header
            .unwrap()
            .revision;
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: Bytes::from("jepsen/"),
                range_end: Bytes::from("jepsen0"),
                start_revision: 1,
                ..Default::default()
            })),
        };
        let progress = WatchRequest {
            request_union: Some(RequestUnion::ProgressRequest(
                WatchProgressRequest::default(),
            )),
        };
        let requests =
            futures_util::stream::iter([create, progress]).chain(futures_util::stream::pending());
        let mut stream = WatchClient::new(ch)
            .watch(requests)
            .await
            .expect("a final watch")
            .into_inner();
        let mut all = Vec::new();
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("the final watch in time")
                .expect("the final watch")
                .expect("the final watch open");
            // The progress answer: every change up to its revision has been sent.
            if !r.created && r.events.is_empty() {
                assert!(r.header.unwrap_or_default().revision >= rev);
                break;
            }
            for e in r.events {
                let kv = e.kv.unwrap_or_default();
                let value =
                    (e.r#type == 0).then(|| String::from_utf8_lossy(&kv.value).into_owned());
                all.push((
                    kv.mod_revision,
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    value,
                ));
            }
        }
        let last = all.last().map_or(rev, |s: &Seen| s.0);
        (all, last)
    })
}

/// Every member answers the same keys (serializable reads of its own state) once it has
/// applied revision `rev`.
pub(super) fn converge(addrs: &[String], rev: i64) -> BTreeMap<String, String> {
    converge_range(addrs, rev, Bytes::from("jepsen/"), Bytes::from("jepsen0"))
}

/// Every member answers the same keys in `[key, end)` (serializable reads of its own state)
/// once it has applied revision `rev`.
pub(super) fn converge_range(
    addrs: &[String],
    rev: i64,
    key: Bytes,
    end: Bytes,
) -> BTreeMap<String, String> {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let deadline = Instant::now() + FINAL_CONVERGE;
    rt.block_on(async {
        let mut states = Vec::new();
        for ch in &chans {
            loop {
                let r = KvClient::new(ch.clone())
                    .range(RangeRequest {
                        key: key.clone(),
                        range_end: end.clone(),
                        serializable: true,
                        ..Default::default()
                    })
                    .await;
                if let Ok(r) = r {
                    let r = r.into_inner();
                    if r.header.unwrap().revision >= rev {
                        let state: BTreeMap<String, String> = r
                            .kvs
                            .iter()
                            .map(|kv| {
                                (
                                    String::from_utf8_lossy(&kv.key).into_owned(),
                                    String::from_utf8_lossy(&kv.value).into_owned(),
                                )
                            })
                            .collect();
                        states.push(state);
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "a member never reached revision {rev}"
                );
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
        for s in &states[1..] {
            assert_eq!(s, &states[0], "members disagree at revision {rev}");
        }
        states.remove(0)
    })
}

use futures_util::StreamExt as _;
