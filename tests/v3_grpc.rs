//! etcd's v3 API through a gRPC client (our generated tonic clients), for what etcdctl
//! cannot show: the fields of watch responses (ids, created, canceled, compaction, progress),
//! many watches on one stream, every revision seen exactly once and in order by watchers
//! slow and fast under concurrent writes, and etcd's error codes and messages.

mod support;

use std::time::Duration;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_create_request::FilterType;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::mvccpb;
use support::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn channel(node: &Node) -> Channel {
    grpc_channel(&node.client_url()).await
}

async fn put(kv: &mut KvClient<Channel>, k: &str, v: &str) -> i64 {
    kv.put(PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .header
    .unwrap()
    .revision
}

/// The HashKV of the current revision.
async fn hash_kv(ch: Channel) -> u32 {
    MaintenanceClient::new(ch)
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .expect("hash_kv")
        .into_inner()
        .hash
}

/// A txn of `n` puts (keys `t0`, `t1`…) and nothing else.
fn puts_txn(n: usize) -> TxnRequest {
    TxnRequest {
        success: (0..n)
            .map(|i| RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: b(&format!("t{i}")),
                    ..Default::default()
                })),
            })
            .collect(),
        ..Default::default()
    }
}

/// Every key there is now.
async fn everything(kv: &mut KvClient<Channel>) -> RangeResponse {
    kv.range(RangeRequest {
        key: b("\0"),
        range_end: b("\0"),
        ..Default::default()
    })
    .await
    .expect("a range of every key")
    .into_inner()
}

/// A watch stream: requests in, responses out.
struct Stream {
    tx: mpsc::Sender<WatchRequest>,
    rx: Streaming<WatchResponse>,
}

impl Stream {
    async fn open(ch: Channel) -> Stream {
        let (tx, rx) = mpsc::channel(64);
        let requests = stream_from(rx);
        // As etcd's Go client, no limit on a response's size (a catch-up of big values).
        let rx = WatchClient::new(ch)
            .max_decoding_message_size(usize::MAX)
            .watch(requests)
            .await
            .expect("watch stream")
            .into_inner();
        Stream { tx, rx }
    }

    async fn send(&self, r: RequestUnion) {
        self.tx
            .send(WatchRequest {
                request_union: Some(r),
            })
            .await
            .expect("send");
    }

    async fn create(&self, c: WatchCreateRequest) {
        self.send(RequestUnion::CreateRequest(c)).await
    }

    async fn next(&mut self) -> WatchResponse {
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("a watch response in time")
            .expect("stream ok")
            .expect("stream open")
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn watch_ids_creates_cancels_filters_progress_and_compaction() {
    let node = Node::start("v3watch", &[]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        let rev = put(&mut kv, "w/a", "0").await; // 2
        assert_eq!(rev, 2);
        let mut s = Stream::open(ch.clone()).await;
        // Auto ids start at 0 per stream; each create is answered, in order, at the current
        // revision.
        for key in ["w/a", "w/b"] {
            s.create(WatchCreateRequest {
                key: b(key),
                ..Default::default()
            })
            .await;
        }
        s.create(WatchCreateRequest {
            key: b("w/"),
            range_end: b("w0"),
            prev_kv: true,
            filters: vec![FilterType::Nodelete as i32],
            ..Default::default()
        })
        .await;
        for id in 0..3 {
            let r = s.next().await;
            assert!(r.created && !r.canceled, "{r:?}");
            assert_eq!((r.watch_id, r.header.unwrap().revision), (id, 2));
        }
        // An explicit id, then the same id again.
        for _ in 0..2 {
            s.create(WatchCreateRequest {
                key: b("w/b"),
                watch_id: 7,
                ..Default::default()
            })
            .await;
        }
        let r = s.next().await;
        assert_eq!((r.watch_id, r.created, r.canceled), (7, true, false));
        let r = s.next().await;
        assert_eq!(
            (r.watch_id, r.created, r.canceled),
            (-1, true, true),
            "{r:?}"
        );
        assert_eq!(
            r.cancel_reason,
            "mvcc: duplicate watch ID provided on the WatchStream"
        );
        // A write to w/a: watcher 0 and the prefix watcher (with prev_kv).
        put(&mut kv, "w/a", "1").await; // 3
        let mut got = [s.next().await, s.next().await];
        got.sort_by_key(|r| r.watch_id);
        assert_eq!(got[0].watch_id, 0);
        assert!(got[0].events[0].prev_kv.is_none());
        assert_eq!(got[0].header.as_ref().unwrap().revision, 3);
        assert_eq!(got[1].watch_id, 2);
        assert_eq!(got[1].events[0].prev_kv.as_ref().unwrap().value, b("0"));
        // Cancel watcher 0; canceling an unknown id is ignored.
        s.send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 0,
        }))
        .await;
        let r = s.next().await;
        assert_eq!((r.watch_id, r.canceled), (0, true));
        s.send(RequestUnion::CancelRequest(WatchCancelRequest {
            watch_id: 99,
        }))
        .await;
        // A deletion reaches neither the canceled watcher nor the NODELETE one: the next
        // thing on the stream is the progress answer, at the current revision.
        kv.delete_range(DeleteRangeRequest {
            key: b("w/a"),
            ..Default::default()
        })
        .await
        .unwrap(); // 4
        s.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
            .await;
        let r = s.next().await;
        assert_eq!(r.watch_id, -1, "{r:?}");
        assert!(r.events.is_empty() && !r.created && !r.canceled);
        assert_eq!(r.header.unwrap().revision, 4);
        // History replay from an old revision, then compaction.
        s.create(WatchCreateRequest {
            key: b("w/a"),
            start_revision: 2,
            ..Default::default()
        })
        .await;
        let r = s.next().await;
        assert!(r.created);
        let replay_id = r.watch_id;
        assert_eq!(replay_id, 3, "the next auto id");
        let r = s.next().await;
        let revs: Vec<i64> = r
            .events
            .iter()
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert_eq!((r.watch_id, revs), (replay_id, vec![2, 3, 4]));
        assert_eq!(r.events[2].r#type, 1, "DELETE");
        kv.compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap();
        s.create(WatchCreateRequest {
            key: b("w/a"),
            start_revision: 3,
            ..Default::default()
        })
        .await;
        let created = s.next().await;
        assert!(created.created);
        let r = s.next().await;
        assert_eq!(
            (r.watch_id, r.canceled, r.compact_revision),
            (created.watch_id, true, 4),
            "{r:?}"
        );
        // Starting at the compaction revision itself is allowed (and sees the version kept
        // there).
        put(&mut kv, "x/a", "2").await; // 5, watched by none of the above
        kv.compact(CompactionRequest {
            revision: 5,
            physical: false,
        })
        .await
        .unwrap();
        s.create(WatchCreateRequest {
            key: b("x/a"),
            start_revision: 5,
            ..Default::default()
        })
        .await;
        assert!(s.next().await.created);
        let r = s.next().await;
        assert!(!r.canceled, "{r:?}");
        assert_eq!(r.events.len(), 1, "{r:?}");
        assert_eq!(r.events[0].kv.as_ref().unwrap().mod_revision, 5);
    });
}

/// Reads a watch's responses until they hold `n` events; returns them all.
async fn responses_with(s: &mut Stream, n: usize) -> Vec<WatchResponse> {
    let mut out: Vec<WatchResponse> = Vec::new();
    while out.iter().map(|r| r.events.len()).sum::<usize>() < n {
        out.push(s.next().await);
    }
    out
}

/// Whether `parts` are one response in fragments: two or more, each within the request
/// limit (1.5 MiB, and a little for the header), all but the last marked `fragment`.
fn fragmented(parts: &[WatchResponse]) -> bool {
    use etcd_v3proto::prost::Message;
    let last = parts.len() - 1;
    parts.len() >= 2
        && parts.iter().enumerate().all(|(i, p)| {
            p.fragment == (i < last) && p.encoded_len() <= 1536 * 1024 + 128 && !p.events.is_empty()
        })
}

#[test]
fn responses_over_the_request_limit_come_in_fragments_to_watchers_that_ask() {
    let node = Node::start("v3fragment", &[]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        // Three values of 700 KiB: any two make a response over the 1.5 MiB limit.
        let big = "x".repeat(700 * 1024);
        for i in 0..3 {
            put(&mut kv, &format!("big/{i}"), &big).await;
        }
        let prefix = |start_revision: i64, prev_kv: bool, fragment: bool| WatchCreateRequest {
            key: b("big/"),
            range_end: b("big0"),
            start_revision,
            prev_kv,
            fragment,
            ..Default::default()
        };
        // A catch-up of the three revisions, in fragments...
        let mut s = Stream::open(ch.clone()).await;
        s.create(prefix(1, false, true)).await;
        assert!(s.next().await.created);
        let parts = responses_with(&mut s, 3).await;
        assert!(
            fragmented(&parts),
            "{:?}",
            parts
                .iter()
                .map(|p| (p.events.len(), p.fragment))
                .collect::<Vec<_>>()
        );
        let revs: Vec<i64> = parts
            .iter()
            .flat_map(|p| &p.events)
            .map(|e| e.kv.as_ref().unwrap().mod_revision)
            .collect();
        assert_eq!(revs, [2, 3, 4]);
        // ...and whole to a watcher that did not ask (as etcd; Go clients take any size).
        let mut whole = Stream::open(ch.clone()).await;
        whole.create(prefix(1, false, false)).await;
        assert!(whole.next().await.created);
        let r = whole.next().await;
        assert_eq!((r.events.len(), r.fragment), (3, false));
        // A live revision over the limit: one delete of the three keys, with their previous
        // values, in fragments; without the previous values, in one response.
        s.create(prefix(0, true, true)).await;
        assert!(s.next().await.created);
        kv.delete_range(DeleteRangeRequest {
            key: b("big/"),
            range_end: b("big0"),
            ..Default::default()
        })
        .await
        .expect("delete");
        let mut by_watch: std::collections::BTreeMap<i64, Vec<WatchResponse>> = Default::default();
        for r in responses_with(&mut s, 6).await {
            by_watch.entry(r.watch_id).or_default().push(r);
        }
        assert_eq!(by_watch[&0].len(), 1);
        assert_eq!(
            (by_watch[&0][0].events.len(), by_watch[&0][0].fragment),
            (3, false)
        );
        assert!(fragmented(&by_watch[&1]));
        let prev: usize = by_watch[&1]
            .iter()
            .flat_map(|p| &p.events)
            .map(|e| e.prev_kv.as_ref().unwrap().value.len())
            .sum();
        assert_eq!(prev, 3 * big.len());
    });
}

#[test]
fn the_request_size_txn_size_and_progress_interval_flags_apply() {
    let node = Node::start(
        "v3limits",
        &[
            "--max-request-bytes",
            "4194304",
            "--max-txn-ops=300",
            "--experimental-watch-progress-notify-interval",
            "300ms",
        ],
    );
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        // 3 MiB goes in (the default 1.5 MiB would refuse it), 4.2 MiB does not.
        put(&mut kv, "big", &"x".repeat(3 << 20)).await;
        let got = kv
            .range(RangeRequest {
                key: b("big"),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        assert_eq!(got.kvs[0].value.len(), 3 << 20);
        let s = kv
            .put(PutRequest {
                key: b("bigger"),
                value: Bytes::from(vec![b'x'; 4300 * 1024]),
                ..Default::default()
            })
            .await
            .expect_err("too large");
        assert_eq!(
            (s.code(), s.message()),
            (Code::InvalidArgument, "etcdserver: request is too large")
        );
        // 300 operations in a txn, not 301.
        let done = kv.txn(puts_txn(300)).await.expect("300 ops");
        assert!(done.into_inner().succeeded);
        let s = kv.txn(puts_txn(301)).await.expect_err("301 ops");
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request"
            )
        );
        // A watch that asked for progress notifications gets one (empty, its id, the current
        // revision) well before etcd's default 10 minutes.
        let rev = put(&mut kv, "w", "1").await;
        let mut s = Stream::open(ch.clone()).await;
        s.create(WatchCreateRequest {
            key: b("w"),
            progress_notify: true,
            ..Default::default()
        })
        .await;
        let created = s.next().await;
        assert!(created.created);
        let progress = s.next().await;
        assert_eq!(
            (
                progress.watch_id,
                progress.events.len(),
                progress.header.unwrap().revision
            ),
            (created.watch_id, 0, rev)
        );
    });
}

#[test]
fn every_revision_reaches_slow_and_fast_watchers_exactly_once_in_order() {
    let node = Node::start("v3watchload", &[]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let start = put(&mut KvClient::new(ch.clone()), "load/start", "").await + 1;
        let mut fast = Stream::open(ch.clone()).await;
        let mut slow = Stream::open(ch.clone()).await;
        for s in [&fast, &slow] {
            s.create(WatchCreateRequest {
                key: b("load/"),
                range_end: b("load0"),
                start_revision: start,
                ..Default::default()
            })
            .await;
        }
        assert!(fast.next().await.created);
        assert!(slow.next().await.created);
        // 4 writers, 700 puts of 2 KiB each: more than a stream's queue and the HTTP/2 windows
        // hold, so the slow watcher, which reads nothing until the writes are done, falls
        // behind and catches up from history.
        const WRITERS: usize = 4;
        const PUTS: usize = 700;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let mut kv = KvClient::new(ch.clone());
                tokio::spawn(async move {
                    for i in 0..PUTS {
                        let value = format!("{i:02048}");
                        put(&mut kv, &format!("load/{w}/{}", i % 50), &value).await;
                    }
                })
            })
            .collect();
        let total = WRITERS * PUTS;
        let last = start + total as i64 - 1;
        let fast_revs = collect_through(&mut fast, last).await;
        for w in writers {
            w.await.unwrap();
        }
        let slow_revs = collect_through(&mut slow, last).await;
        let want: Vec<i64> = (start..=last).collect();
        assert_eq!(fast_revs, want, "fast watcher");
        assert_eq!(slow_revs, want, "slow watcher");
    });
}

/// The revisions of the events a watch stream delivers, until it reaches `last`.
async fn collect_through(s: &mut Stream, last: i64) -> Vec<i64> {
    let mut revs = Vec::new();
    while revs.last().copied().unwrap_or(0) < last {
        let r = s.next().await;
        assert!(!r.canceled, "{r:?}");
        revs.extend(r.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision));
    }
    revs
}

#[test]
fn errors_carry_etcds_codes_and_messages() {
    let node = Node::start("v3errors", &[]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        fn err<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> (Code, String) {
            let s = r.expect_err("an error");
            (s.code(), s.message().to_string())
        }
        assert_eq!(
            err(kv.range(RangeRequest::default()).await),
            (
                Code::InvalidArgument,
                "etcdserver: key is not provided".into()
            )
        );
        assert_eq!(
            err(kv
                .put(PutRequest {
                    key: b("k"),
                    lease: 42,
                    ..Default::default()
                })
                .await),
            (
                Code::NotFound,
                "etcdserver: requested lease not found".into()
            )
        );
        assert_eq!(
            err(kv
                .put(PutRequest {
                    key: b("k"),
                    value: b("v"),
                    ignore_value: true,
                    ..Default::default()
                })
                .await),
            (
                Code::InvalidArgument,
                "etcdserver: value is provided".into()
            )
        );
        // Bigger than --max-request-bytes (1.5 MiB) but within gRPC's limit: etcd's error.
        assert_eq!(
            err(kv
                .put(PutRequest {
                    key: b("big"),
                    value: Bytes::from(vec![b'x'; 1600 * 1024]),
                    ..Default::default()
                })
                .await),
            (
                Code::InvalidArgument,
                "etcdserver: request is too large".into()
            )
        );
        // Beyond what gRPC accepts at all: refused before decoding.
        let s = kv
            .put(PutRequest {
                key: b("huge"),
                value: Bytes::from(vec![b'x'; 3 << 20]),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
        let many = puts_txn(129);
        assert_eq!(
            err(kv.txn(many).await),
            (
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request".into()
            )
        );
        assert_eq!(
            err(kv
                .range(RangeRequest {
                    key: b("k"),
                    revision: 100,
                    ..Default::default()
                })
                .await),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision".into()
            )
        );
        // Nothing above left a trace.
        let r = everything(&mut kv).await;
        assert_eq!((r.count, r.header.unwrap().revision), (0, 1));
        // Status answers as an etcd 3.5 server.
        let status = MaintenanceClient::new(ch.clone())
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(status.version.starts_with("3.5."), "{status:?}");
        // gRPC's health service.
        let health = etcd_v3proto::grpc::health::v1::health_client::HealthClient::new(ch.clone())
            .check(etcd_v3proto::grpc::health::v1::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, 1, "SERVING");
        // Services not served yet say so.
        let s = MaintenanceClient::new(ch)
            .downgrade(DowngradeRequest::default())
            .await
            .expect_err("not served");
        assert_eq!(s.code(), Code::Unimplemented);
    });
}

/// The lease's TTL as the leader counts it (-1 when it does not exist).
async fn time_to_live(ch: Channel, id: i64) -> LeaseTimeToLiveResponse {
    LeaseClient::new(ch)
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .expect("time to live")
        .into_inner()
}

/// A keep-alive stream: one request, one answer.
struct KeepAlive {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    async fn open(ch: Channel) -> KeepAlive {
        let (tx, rx) = mpsc::channel(8);
        let requests = stream_from(rx);
        let rx = LeaseClient::new(ch)
            .lease_keep_alive(requests)
            .await
            .expect("keep-alive stream")
            .into_inner();
        KeepAlive { tx, rx }
    }

    async fn once(&mut self, id: i64) -> LeaseKeepAliveResponse {
        self.tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .expect("send");
        tokio::time::timeout(WAIT, self.rx.message())
            .await
            .expect("an answer in time")
            .expect("stream ok")
            .expect("stream open")
    }
}

#[test]
fn leases_grant_attach_keep_alive_revoke_and_expire() {
    let node = Node::start("v3lease", &[]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut lease = LeaseClient::new(ch.clone());
        let mut kv = KvClient::new(ch.clone());
        // Chosen ids are positive; a given id is kept; a TTL below the minimum (1.5 election
        // timeouts: 2 s by default) is raised.
        let chosen = lease
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .unwrap()
            .into_inner();
        assert!(chosen.id > 0 && chosen.ttl == 60, "{chosen:?}");
        let given = lease
            .lease_grant(LeaseGrantRequest { ttl: 1, id: 77 })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((given.id, given.ttl), (77, 2));
        let again = lease
            .lease_grant(LeaseGrantRequest { ttl: 5, id: 77 })
            .await
            .expect_err("taken");
        assert_eq!(
            (again.code(), again.message()),
            (Code::FailedPrecondition, "etcdserver: lease already exists")
        );
        // Keys attach; time-to-live lists them.
        for k in ["l/a", "l/b"] {
            kv.put(PutRequest {
                key: b(k),
                value: b("v"),
                lease: chosen.id,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let ttl = time_to_live(ch.clone(), chosen.id).await;
        assert_eq!(ttl.granted_ttl, 60);
        assert!(ttl.ttl > 55 && ttl.ttl <= 60, "{ttl:?}");
        assert_eq!(ttl.keys, vec![b("l/a"), b("l/b")]);
        let mut ka = KeepAlive::open(ch.clone()).await;
        let r = ka.once(chosen.id).await;
        assert_eq!((r.id, r.ttl), (chosen.id, 60));
        // Unknown leases: keep-alive TTL 0, time-to-live -1, revoke NotFound.
        assert_eq!(ka.once(12345).await.ttl, 0);
        assert_eq!(time_to_live(ch.clone(), 12345).await.ttl, -1);
        let s = lease
            .lease_revoke(LeaseRevokeRequest { id: 12345 })
            .await
            .expect_err("unknown");
        assert_eq!(s.code(), Code::NotFound);
        let listed = lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut ids: Vec<i64> = listed.leases.iter().map(|l| l.id).collect();
        ids.sort();
        let mut want = vec![77, chosen.id];
        want.sort();
        assert_eq!(ids, want);
        // Revoking deletes the attached keys at one revision.
        let mut s = Stream::open(ch.clone()).await;
        s.create(WatchCreateRequest {
            key: b("l/"),
            range_end: b("l0"),
            ..Default::default()
        })
        .await;
        assert!(s.next().await.created);
        let revoked = lease
            .lease_revoke(LeaseRevokeRequest { id: chosen.id })
            .await
            .unwrap()
            .into_inner();
        let rev = revoked.header.unwrap().revision;
        let r = s.next().await;
        assert_eq!(r.events.len(), 2, "{r:?}");
        assert!(r
            .events
            .iter()
            .all(|e| e.r#type == 1 && e.kv.as_ref().unwrap().mod_revision == rev));
        // Expiry: lease 77 (2 s) with a key, not kept alive, goes away with its key.
        kv.put(PutRequest {
            key: b("l/short"),
            value: b("v"),
            lease: 77,
            ..Default::default()
        })
        .await
        .unwrap();
        let r = s.next().await;
        assert_eq!(r.events[0].r#type, 0);
        let r = s.next().await;
        assert_eq!(
            r.events[0].r#type, 1,
            "the key expired with its lease: {r:?}"
        );
        assert_eq!(time_to_live(ch.clone(), 77).await.ttl, -1);
    });
}

#[test]
fn leases_kept_alive_through_followers_outlive_a_leader_kill_and_then_expire() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let runtime = rt();
    let (follower_ch, other_ch) = runtime.block_on(async {
        (
            channel(c.member(follower)).await,
            channel(c.member(other)).await,
        )
    });
    // FAST_TIMING's election timeout is 500 ms: the minimum TTL is 1 s; take 3 s.
    let id = runtime.block_on(async {
        let granted = LeaseClient::new(follower_ch.clone())
            .lease_grant(LeaseGrantRequest { ttl: 3, id: 0 })
            .await
            .unwrap()
            .into_inner();
        KvClient::new(follower_ch.clone())
            .put(PutRequest {
                key: b("owned"),
                value: b("v"),
                lease: granted.id,
                ..Default::default()
            })
            .await
            .unwrap();
        // Kept alive through a follower (forwarded to the leader) for longer than the TTL.
        let mut ka = KeepAlive::open(follower_ch.clone()).await;
        for _ in 0..8 {
            assert_eq!(ka.once(granted.id).await.ttl, 3);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let ttl = time_to_live(other_ch.clone(), granted.id).await;
        assert!(ttl.ttl >= 2, "{ttl:?}");
        granted.id
    });
    // The leader goes; a new leader starts every lease's clock at its full TTL.
    c.kill(leader);
    let new_leader = c.leader_within(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    runtime.block_on(async {
        let ttl = time_to_live(follower_ch.clone(), id).await;
        assert!(ttl.ttl >= 1, "the lease must not expire early: {ttl:?}");
        let got = KvClient::new(other_ch.clone())
            .range(RangeRequest {
                key: b("owned"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.count, 1);
        // Without keep-alives it expires, and its key with it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = KvClient::new(other_ch.clone())
                .range(RangeRequest {
                    key: b("owned"),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if got.count == 0 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(time_to_live(other_ch.clone(), id).await.ttl, -1);
    });
}

#[test]
fn the_v3_keyspace_and_leases_survive_kill_9_through_snapshots() {
    let mut node = Node::start("v3restart", &["-snapshot-count", "20"]);
    let runtime = rt();
    let (before, lease_id, rev, cluster_id, hash) = runtime.block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        let lease = LeaseClient::new(ch.clone())
            .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        for i in 0..150 {
            kv.put(PutRequest {
                key: b(&format!("r/{}", i % 40)),
                value: Bytes::from(vec![i as u8; 100]),
                lease: if i % 10 == 0 { lease } else { 0 },
                ..Default::default()
            })
            .await
            .unwrap();
        }
        kv.delete_range(DeleteRangeRequest {
            key: b("r/3"),
            range_end: b("r/4"),
            ..Default::default()
        })
        .await
        .unwrap();
        kv.compact(CompactionRequest {
            revision: 100,
            physical: true,
        })
        .await
        .unwrap();
        let all = everything(&mut kv).await;
        let header = all.header.unwrap();
        (
            all.kvs,
            lease,
            header.revision,
            header.cluster_id,
            hash_kv(ch).await,
        )
    });
    node.kill();
    node.restart();
    runtime.block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        let all = everything(&mut kv).await;
        let header = all.header.unwrap();
        assert_eq!((header.revision, header.cluster_id), (rev, cluster_id));
        assert_eq!(all.kvs, before);
        assert_eq!(hash_kv(ch.clone()).await, hash);
        // History above the compaction is still there to read and to watch; below it is not.
        let old = kv
            .range(RangeRequest {
                key: b("r/0"),
                revision: 120,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(old.kvs.len(), 1);
        let s = kv
            .range(RangeRequest {
                key: b("r/0"),
                revision: 99,
                ..Default::default()
            })
            .await
            .expect_err("compacted");
        assert_eq!(s.code(), Code::OutOfRange);
        let mut w = Stream::open(ch.clone()).await;
        w.create(WatchCreateRequest {
            key: b("r/"),
            range_end: b("r0"),
            start_revision: 140,
            ..Default::default()
        })
        .await;
        assert!(w.next().await.created);
        let r = w.next().await;
        let first = r.events[0].kv.as_ref().unwrap().mod_revision;
        assert_eq!(first, 140);
        // The lease and its keys came back.
        let ttl = time_to_live(ch.clone(), lease_id).await;
        assert_eq!(ttl.granted_ttl, 600);
        let leased: Vec<Bytes> = before
            .iter()
            .filter(|kv| kv.lease == lease_id)
            .map(|kv| kv.key.clone())
            .collect();
        assert!(!leased.is_empty());
        assert_eq!(ttl.keys, leased);
    });
    let snaps = std::fs::read_dir(node.data_dir.join("snap"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(snaps > 0, "the test meant to restart from a snapshot");
}

/// The member's value files still open (they are unlinked at once, so only its open file
/// descriptors show them).
fn value_files(node: &Node) -> usize {
    let pid = node.pid().expect("running");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("v3-values."))
        .count()
}

#[test]
fn values_of_every_size_read_back_through_the_value_files_restarts_and_compaction() {
    let mut node = Node::start("v3values", &["-snapshot-count", "30"]);
    let runtime = rt();
    // Sizes around the in-memory limit (64 bytes) and up to near the request limit.
    let sizes = [0usize, 1, 64, 65, 1_000, 100_000, 1_400_000];
    let value =
        |i: usize, size: usize| -> Bytes { (0..size).map(|j| (i * 7 + j % 251) as u8).collect() };
    let before = runtime.block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        // 60 keys of 1.2 MB: more than one value file (64 MiB each).
        let first = put(&mut kv, "big/00", "").await + 1;
        for i in 0..60 {
            kv.put(PutRequest {
                key: b(&format!("big/{i:02}")),
                value: value(i, 1_200_000),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        assert_eq!(value_files(&node), 2);
        for (i, size) in sizes.iter().enumerate() {
            kv.put(PutRequest {
                key: b(&format!("size/{size}")),
                value: value(i, *size),
                ..Default::default()
            })
            .await
            .unwrap();
        }
        // Compares and sorts on stored values.
        let t = kv
            .txn(TxnRequest {
                compare: vec![Compare {
                    key: b("big/07"),
                    target: compare::CompareTarget::Value as i32,
                    result: compare::CompareResult::Equal as i32,
                    target_union: Some(compare::TargetUnion::Value(value(7, 1_200_000))),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(t.succeeded);
        let sorted = kv
            .range(RangeRequest {
                key: b("size/"),
                range_end: b("size0"),
                sort_target: range_request::SortTarget::Value as i32,
                sort_order: range_request::SortOrder::Descend as i32,
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut by_value: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| value(i, *s))
            .collect();
        by_value.sort();
        by_value.reverse();
        assert_eq!(
            sorted
                .kvs
                .iter()
                .map(|kv| kv.value.clone())
                .collect::<Vec<_>>(),
            by_value[..2].to_vec()
        );
        assert!(sorted.more);
        // Every big value written again, small: a watch from the first big write sees each
        // big value, and each as the previous value of its overwrite.
        for i in 0..60 {
            put(&mut kv, &format!("big/{i:02}"), "small").await;
        }
        let mut w = Stream::open(ch.clone()).await;
        w.create(WatchCreateRequest {
            key: b("big/"),
            range_end: b("big0"),
            start_revision: first,
            prev_kv: true,
            ..Default::default()
        })
        .await;
        assert!(w.next().await.created);
        let mut events = Vec::new();
        while events.len() < 120 {
            events.extend(w.next().await.events);
        }
        for (n, e) in events.iter().enumerate() {
            let i = n % 60;
            let kv = e.kv.as_ref().unwrap();
            if n < 60 {
                assert_eq!(kv.value, value(i, 1_200_000), "event {n}");
            } else {
                assert_eq!(kv.value, b("small"), "event {n}");
                assert_eq!(e.prev_kv.as_ref().unwrap().value, value(i, 1_200_000));
            }
        }
        // Once compacted, the first file holds nothing in use and goes.
        let rev = put(&mut kv, "last", "x").await;
        kv.compact(CompactionRequest {
            revision: rev,
            physical: true,
        })
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while value_files(&node) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "value files not released"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        everything(&mut kv).await.kvs
    });
    let check = |all: &[mvccpb::KeyValue]| {
        for (i, size) in sizes.iter().enumerate() {
            let key = format!("size/{size}");
            let kv = all.iter().find(|kv| kv.key == key.as_bytes()).unwrap();
            assert_eq!(kv.value, value(i, *size), "{key}");
        }
    };
    check(&before);
    node.kill();
    node.restart();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(&node).await);
        let all = everything(&mut kv).await.kvs;
        assert_eq!(all, before);
        check(&all);
    });
}

#[test]
fn the_hasleader_metadata_refuses_calls_and_watches_without_a_leader() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let survivor = (leader + 1) % 3;
    c.kill(leader);
    c.kill((leader + 2) % 3);
    let runtime = rt();
    runtime.block_on(async {
        let ch = channel(c.member(survivor)).await;
        let with_leader = |mut req: tonic::Request<RangeRequest>| {
            req.metadata_mut()
                .insert("hasleader", "true".parse().unwrap());
            req
        };
        // Once the survivor knows it has no leader: etcd's error, not a wait.
        let deadline = tokio::time::Instant::now() + WAIT;
        let status = loop {
            let req = with_leader(tonic::Request::new(RangeRequest {
                key: b("k"),
                serializable: true,
                ..Default::default()
            }));
            match KvClient::new(ch.clone()).range(req).await {
                Err(s) => break s,
                Ok(_) => {
                    assert!(tokio::time::Instant::now() < deadline, "still a leader");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(
            (status.code(), status.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        // Without the metadata a serializable read is served from local state.
        KvClient::new(ch.clone())
            .range(RangeRequest {
                key: b("k"),
                serializable: true,
                ..Default::default()
            })
            .await
            .expect("a serializable read");
        // A watch stream that asks for a leader is refused.
        let mut req = tonic::Request::new(futures_util::stream::pending::<WatchRequest>());
        req.metadata_mut()
            .insert("hasleader", "true".parse().unwrap());
        let s = WatchClient::new(ch)
            .watch(req)
            .await
            .expect_err("no leader");
        assert_eq!(s.code(), Code::Unavailable);
    });
}

#[test]
fn a_member_added_after_log_compaction_gets_the_v3_keyspace_and_leases_by_snapshot() {
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(&["-snapshot-count", "200"]);
    let mut c = Cluster::start(2, &flags);
    let leader = c.leader();
    let runtime = rt();
    let (lease, want, hash) = runtime.block_on(async {
        let ch = channel(c.member(leader)).await;
        let lease = LeaseClient::new(ch.clone())
            .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        let mut kv = KvClient::new(ch.clone());
        for i in 0..3000 {
            kv.put(PutRequest {
                key: b(&format!("snap/{}", i % 700)),
                value: b(&format!("v{i}")),
                lease: if i % 100 == 0 { lease } else { 0 },
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let want = kv
            .range(RangeRequest {
                key: b("snap/"),
                range_end: b("snap0"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        (lease, want, hash_kv(ch).await)
    });
    poll_until(Duration::from_secs(30), "a snapshot on the leader", || {
        (!c.member(leader).data_files("snap", ".snap").is_empty()).then_some(())
    });
    let new = c.add_member("node3");
    runtime.block_on(async {
        let ch = channel(c.member(new)).await;
        let mut kv = KvClient::new(ch.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = kv
                .range(RangeRequest {
                    key: b("snap/"),
                    range_end: b("snap0"),
                    serializable: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if got.kvs == want.kvs {
                // The same cluster, and the same keyspace down to every version's hash.
                let (ours, theirs) = (got.header.unwrap(), want.header.unwrap());
                assert_eq!(ours.cluster_id, theirs.cluster_id);
                assert_eq!(ours.revision, theirs.revision);
                assert_eq!(hash_kv(ch.clone()).await, hash);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the new member never caught up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let leases = LeaseClient::new(ch)
            .lease_leases(LeaseLeasesRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            leases.leases.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![lease]
        );
    });
    assert!(
        !c.member(new).data_files("snap", ".snap").is_empty(),
        "the new member was caught up by a snapshot"
    );
}

#[test]
fn move_leader_is_the_leaders_to_do_and_hands_over_leadership() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    let runtime = rt();
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            runtime.block_on(async {
                MaintenanceClient::new(channel(c.member(i)).await)
                    .status(StatusRequest {})
                    .await
                    .expect("status")
                    .into_inner()
                    .header
                    .unwrap()
                    .member_id
            })
        })
        .collect();
    runtime.block_on(async {
        let mut on_follower = MaintenanceClient::new(channel(c.member(follower)).await);
        let s = on_follower
            .move_leader(MoveLeaderRequest {
                target_id: ids[follower],
            })
            .await
            .expect_err("not the leader");
        assert_eq!(
            (s.code(), s.message()),
            (Code::FailedPrecondition, "etcdserver: not leader")
        );
        let mut on_leader = MaintenanceClient::new(channel(c.member(leader)).await);
        let s = on_leader
            .move_leader(MoveLeaderRequest { target_id: 0xbad })
            .await
            .expect_err("no such member");
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee"
            )
        );
        let answer = on_leader
            .move_leader(MoveLeaderRequest {
                target_id: ids[follower],
            })
            .await
            .expect("move leader")
            .into_inner();
        assert_eq!(answer, MoveLeaderResponse::default());
        // Answered once the target leads.
        let status = MaintenanceClient::new(channel(c.member(follower)).await)
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert_eq!(status.leader, ids[follower]);
    });
    assert_eq!(c.leader(), follower);
}

#[test]
fn periodic_auto_compaction_keeps_the_retention_of_history() {
    let node = Node::start("v3autocompact", &["--auto-compaction-retention", "1s"]);
    rt().block_on(async {
        let ch = channel(&node).await;
        let mut kv = KvClient::new(ch.clone());
        let mut maintenance = MaintenanceClient::new(ch.clone());
        let started = tokio::time::Instant::now();
        // Writing on, until a compaction beyond the first revisions happened (one is due each
        // second, to the revision of a second before).
        let (compacted, current) = loop {
            let current = put(&mut kv, "k", "v").await;
            let h = maintenance
                .hash_kv(HashKvRequest { revision: 0 })
                .await
                .expect("hash_kv")
                .into_inner();
            if h.compact_revision > 1 {
                break (h.compact_revision, current);
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no auto-compaction in 20 s (compact revision {})",
                h.compact_revision
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        assert!(compacted < current, "{compacted} {current}");
        // History below it is gone; from it on, and the present, are there.
        let err = kv
            .range(RangeRequest {
                key: b("k"),
                revision: compacted - 1,
                ..Default::default()
            })
            .await
            .expect_err("compacted");
        assert_eq!(err.code(), Code::OutOfRange);
        let at = kv
            .range(RangeRequest {
                key: b("k"),
                revision: compacted,
                ..Default::default()
            })
            .await
            .expect("at the compaction")
            .into_inner();
        assert_eq!(at.kvs.len(), 1);
    });
}

#[test]
fn the_corruption_check_compares_every_members_hash_and_raises_nothing_on_a_healthy_cluster() {
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(&["--experimental-corrupt-check-time", "200ms"]);
    let mut c = Cluster::start(3, &flags);
    let leader = c.leader();
    let runtime = rt();
    runtime.block_on(async {
        let mut kvs = Vec::new();
        for i in 0..3 {
            kvs.push(KvClient::new(channel(c.member(i)).await));
        }
        // Writes through every member and a compaction, while the leader checks: until it has
        // passed checks in which both followers answered.
        let started = tokio::time::Instant::now();
        let mut round = 0;
        loop {
            round += 1;
            let rev = put(&mut kvs[round % 3], &format!("c/{}", round % 20), "v").await;
            if round == 40 {
                kvs[0]
                    .compact(CompactionRequest {
                        revision: rev - 10,
                        physical: true,
                    })
                    .await
                    .expect("compact");
            }
            let logs = c.member(leader).logs();
            let checked = logs
                .lines()
                .filter(|l| l.contains("corruption check passed") && l.contains("peers=2"))
                .count();
            if round > 60 && checked >= 3 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no corruption checks with both peers: {logs}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let alarms = MaintenanceClient::new(channel(c.member(leader)).await)
            .alarm(AlarmRequest::default())
            .await
            .expect("alarm list")
            .into_inner()
            .alarms;
        assert!(alarms.is_empty(), "{alarms:?}");
    });
    assert!(!c.member(leader).logs().contains("raising CORRUPT"));
}

/// A follower whose stored value changes under it (bytes overwritten in its value file, as a
/// disk could) hashes differently: the leader's check raises CORRUPT for it, and then every
/// member refuses writes.
#[test]
fn the_corruption_check_names_a_member_whose_data_changed_under_it() {
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(&["--experimental-corrupt-check-time", "200ms"]);
    let mut c = Cluster::start(3, &flags);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    let runtime = rt();
    // A value bigger than the value files' write buffer, so that it is in the file.
    let big = "v".repeat(400 << 10);
    let follower_id = runtime.block_on(async {
        let mut kv = KvClient::new(channel(c.member(leader)).await);
        let rev = put(&mut kv, "big", &big).await;
        // Every member has it.
        for i in 0..3 {
            let kv = KvClient::new(channel(c.member(i)).await);
            poll_async(|| {
                let mut kv = kv.clone();
                async move {
                    let r = kv
                        .range(RangeRequest {
                            key: b("big"),
                            serializable: true,
                            ..Default::default()
                        })
                        .await
                        .ok()?
                        .into_inner();
                    (r.header?.revision >= rev).then_some(())
                }
            })
            .await;
        }
        MaintenanceClient::new(channel(c.member(follower)).await)
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .header
            .unwrap()
            .member_id
    });
    // Overwrite part of the value in the follower's value file (unlinked: reached through
    // the process's open descriptors).
    let pid = c.member(follower).pid().expect("running");
    let mut overwritten = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let path = entry.unwrap().path();
        let target = std::fs::read_link(&path).unwrap_or_default();
        if target.to_string_lossy().contains("v3-values.") {
            use std::os::unix::fs::FileExt as _;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            if file.metadata().unwrap().len() > 2000 {
                file.write_all_at(&[b'Z'; 1000], 1000).unwrap();
                overwritten += 1;
            }
        }
    }
    assert_eq!(overwritten, 1, "the follower's value file");
    runtime.block_on(async {
        let maintenance = MaintenanceClient::new(channel(c.member(leader)).await);
        let alarms = poll_async(|| {
            let mut maintenance = maintenance.clone();
            async move {
                let alarms = maintenance
                    .alarm(AlarmRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .alarms;
                (!alarms.is_empty()).then_some(alarms)
            }
        })
        .await;
        assert_eq!(
            alarms,
            [AlarmMember {
                member_id: follower_id,
                alarm: AlarmType::Corrupt as i32,
            }]
        );
        let mut kv = KvClient::new(channel(c.member(leader)).await);
        let s = kv
            .put(PutRequest {
                key: b("after"),
                value: b("x"),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(
            (s.code(), s.message()),
            (Code::DataLoss, "etcdserver: corrupt cluster")
        );
    });
}

/// Polls `f` every [`POLL_INTERVAL`] until it gives `Some`, for at most [`WAIT`].
async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not in time");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Keep-alives that reach the leader around the moment their lease runs out: each is either
/// answered "not found" (the lease is going) or, when answered alive, the lease's key is still
/// there right after, never revoked by an expiry already on its way through the log.
#[test]
fn a_keep_alive_at_the_moment_a_lease_runs_out_never_precedes_its_revocation() {
    // Three members: an expiry takes a round trip to commit, the window this is about.
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    rt().block_on(async {
        let ch = channel(c.member(leader)).await;
        let ttl = Duration::from_secs(1);
        let mut tasks = Vec::new();
        for i in 0..120u64 {
            let ch = ch.clone();
            tasks.push(tokio::spawn(async move {
                let mut leases = LeaseClient::new(ch.clone());
                let mut kv = KvClient::new(ch);
                let id = leases
                    .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
                    .await
                    .expect("grant")
                    .into_inner()
                    .id;
                let granted = tokio::time::Instant::now();
                let key = format!("race/{i}");
                kv.put(PutRequest {
                    key: b(&key),
                    value: b("v"),
                    lease: id,
                    ..Default::default()
                })
                .await
                .expect("put");
                // Around the deadline: from 30 ms before to 30 ms after.
                tokio::time::sleep_until(granted + ttl - Duration::from_millis(30)).await;
                tokio::time::sleep(Duration::from_millis(i % 60)).await;
                let sent = tokio::time::Instant::now();
                let requests = futures_util::StreamExt::chain(
                    futures_util::stream::iter([LeaseKeepAliveRequest { id }]),
                    futures_util::stream::pending(),
                );
                let mut answers = leases
                    .lease_keep_alive(requests)
                    .await
                    .expect("keep-alive")
                    .into_inner();
                let kept = answers
                    .message()
                    .await
                    .expect("an answer")
                    .expect("open")
                    .ttl;
                if kept <= 0 {
                    return (false, None);
                }
                let read = kv
                    .range(RangeRequest {
                        key: b(&key),
                        ..Default::default()
                    })
                    .await
                    .expect("read")
                    .into_inner();
                let early = (read.kvs.is_empty() && sent.elapsed() < ttl)
                    .then(|| format!("{key}: kept alive, then gone {:?} later", sent.elapsed()));
                (true, early)
            }));
        }
        let (mut kept, mut gone, mut early) = (0, 0, Vec::new());
        for t in tasks {
            let (alive, problem) = t.await.expect("a task");
            if alive {
                kept += 1;
            } else {
                gone += 1;
            }
            early.extend(problem);
        }
        assert!(
            early.is_empty(),
            "leases revoked after an answered keep-alive: {early:?}"
        );
        // The keep-alives did straddle the deadlines.
        assert!(kept > 0 && gone > 0, "kept {kept}, gone {gone}");
    });
}

/// `--experimental-initial-corrupt-check`: a member restarting from its own data compares its
/// hash with the peers' before it serves (here all agree, so it starts and serves; the rule
/// that refuses a difference is `corrupt::initial_mismatches`, unit-tested: a valid but
/// divergent data directory cannot be made from outside, as every file is checksummed).
#[test]
fn a_restarted_member_checks_its_hash_with_the_peers_before_serving() {
    let mut flags = FAST_TIMING.to_vec();
    flags.push("--experimental-initial-corrupt-check");
    let mut c = Cluster::start(3, &flags);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    assert!(
        !c.member(follower)
            .logs()
            .contains("initial corruption check"),
        "a new member has nothing to check"
    );
    let runtime = rt();
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(c.member(leader)).await);
        for i in 0..20 {
            put(&mut kv, &format!("k{i}"), "v").await;
        }
    });
    c.kill(follower);
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(c.member(leader)).await);
        put(&mut kv, "while-down", "v").await;
    });
    c.restart(follower);
    let logs = c.member(follower).logs();
    assert!(
        logs.contains("initial corruption check passed") && logs.contains("peers=2"),
        "{logs}"
    );
    runtime.block_on(async {
        let mut kv = KvClient::new(channel(c.member(follower)).await);
        put(&mut kv, "after", "v").await;
    });
}

/// A leader stopped with SIGTERM hands leadership over before it exits (etcd's leadership
/// transfer on stop): with a 3 s election timeout, the others have a new leader at once
/// rather than after an election timeout.
#[test]
fn a_leader_stopped_with_sigterm_hands_leadership_over_first() {
    let mut c = Cluster::start(
        3,
        &["-heartbeat-interval", "100", "-election-timeout", "3000"],
    );
    let old = c.leader();
    let status = c.member_mut(old).terminate();
    assert!(status.success(), "{status:?}");
    let logs = c.member(old).logs();
    assert!(logs.contains("leadership transferred"), "{logs}");
    // Already elected: well within the election timeout the followers would otherwise wait.
    let started = std::time::Instant::now();
    let new = c.leader_within(Duration::from_millis(1500));
    assert_ne!(new, old);
    assert!(started.elapsed() < Duration::from_millis(1500));
}
