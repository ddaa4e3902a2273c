//! A Kubernetes-shaped sequence through the v3 API, compared with etcd 3.4's answers.
//!
//! Eight clients, taking turns in a fixed (seeded) order so that the sequence is the same on
//! every run, do what kube-apiserver does to etcd (its shapes as kine documents them):
//! creates as `txn(mod(key) = 0, put, range)`, updates and deletes as `txn(mod(key) = rev,
//! put | delete with prev_kv, range)` (some with a stale revision, so they fail and read),
//! lists with `limit` at a fixed `revision` and their continuations, counts, gets, a
//! compaction every 60 steps (after the compact-revision bookkeeping txn on
//! `compact_rev_key`), events written on a lease kept alive meanwhile and left to expire at
//! the end, and a
//! prefix watch with `prev_kv` (and progress requests) that must deliver every change.
//!
//! Every answer is rendered as text (headers' cluster id, member id and raft term masked) and
//! the transcript must equal `tools/v3-reference/k8s.etcd-3.4.23.txt`, recorded from Debian's
//! etcd 3.4.23 with `ETCD_RECORD=1 cargo test --test k8s_shaped` (which runs the same sequence
//! against `etcd` on the PATH and rewrites the file).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::response_op::Response as OpResp;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::mvccpb::{Event, KeyValue};
use support::*;
use tokio::sync::mpsc;
use tonic::transport::Channel;

const CLIENTS: usize = 8;
const STEPS: usize = 400;
const LEASE_ID: i64 = 0x1234;
const REFERENCE: &str = "tools/v3-reference/k8s.etcd-3.4.23.txt";

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn kv_text(kv: &KeyValue) -> String {
    format!(
        "{}={} c{} m{} v{} l{}",
        s(&kv.key),
        s(&kv.value),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease
    )
}

fn header_text(h: &Option<ResponseHeader>) -> String {
    h.as_ref()
        .map_or("-".into(), |h| format!("rev {}", h.revision))
}

fn range_text(r: &RangeResponse) -> String {
    let kvs: Vec<String> = r.kvs.iter().map(kv_text).collect();
    format!(
        "range {} count {} more {} [{}]",
        header_text(&r.header),
        r.count,
        r.more,
        kvs.join(", ")
    )
}

fn txn_text(r: &TxnResponse) -> String {
    let parts: Vec<String> = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(OpResp::ResponseRange(r)) => range_text(r),
            Some(OpResp::ResponsePut(p)) => format!(
                "put {} prev {}",
                header_text(&p.header),
                p.prev_kv.as_ref().map_or("-".into(), kv_text)
            ),
            Some(OpResp::ResponseDeleteRange(d)) => {
                let prev: Vec<String> = d.prev_kvs.iter().map(kv_text).collect();
                format!(
                    "delete {} deleted {} prev [{}]",
                    header_text(&d.header),
                    d.deleted,
                    prev.join(", ")
                )
            }
            Some(OpResp::ResponseTxn(t)) => format!("txn {}", txn_text(t)),
            None => "none".into(),
        })
        .collect();
    format!(
        "txn {} succeeded {} {{{}}}",
        header_text(&r.header),
        r.succeeded,
        parts.join("; ")
    )
}

fn event_text(e: &Event) -> String {
    let kind = if e.r#type == 0 { "PUT" } else { "DELETE" };
    format!(
        "{kind} {} prev {}",
        e.kv.as_ref().map_or("-".into(), kv_text),
        e.prev_kv.as_ref().map_or("-".into(), kv_text)
    )
}

fn status_text(s: tonic::Status) -> String {
    format!("error {:?} {}", s.code(), s.message())
}

fn cmp_mod(key: &str, rev: i64) -> Compare {
    Compare {
        key: b(key),
        target: CompareTarget::Mod as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::ModRevision(rev)),
        range_end: Bytes::new(),
    }
}

fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: b(key),
            ..Default::default()
        })),
    }
}

/// Runs the sequence against the server at `url`; returns the transcript.
async fn sequence(url: &str) -> String {
    let ch = grpc_channel(url).await;
    let mut kv = KvClient::new(ch.clone());
    let mut out = Vec::new();
    // The watch: every change under /registry/, with the previous value.
    let (wtx, wrx) = mpsc::channel(16);
    wtx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b("/registry/"),
            range_end: b("/registry0"),
            prev_kv: true,
            progress_notify: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let requests = stream_from(wrx);
    let mut watch = WatchClient::new(ch.clone())
        .watch(requests)
        .await
        .expect("watch")
        .into_inner();
    let created = watch.message().await.unwrap().unwrap();
    out.push(format!(
        "watch created id {} {}",
        created.watch_id,
        header_text(&created.header)
    ));
    let granted = LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest {
            ttl: 3,
            id: LEASE_ID,
        })
        .await
        .expect("lease");
    out.push(format!(
        "lease {:x} ttl {}",
        granted.get_ref().id,
        granted.get_ref().ttl
    ));
    // Kept alive while the sequence runs (however slow the machine), left to expire after.
    let (ka_tx, ka_rx) = mpsc::channel(4);
    // The first request goes before the call: a Go server sends its headers with the first
    // answer.
    ka_tx
        .send(LeaseKeepAliveRequest { id: LEASE_ID })
        .await
        .unwrap();
    let keep_alive = {
        let requests = stream_from(ka_rx);
        let mut answers = LeaseClient::new(ch.clone())
            .lease_keep_alive(requests)
            .await
            .expect("keep-alive")
            .into_inner();
        tokio::spawn(async move {
            loop {
                if !matches!(answers.message().await, Ok(Some(_))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                if ka_tx
                    .send(LeaseKeepAliveRequest { id: LEASE_ID })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    };

    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // What each client believes: key -> mod revision.
    let mut known: Vec<Vec<(String, i64)>> = vec![Vec::new(); CLIENTS];
    let mut compact_version = 0;
    for step in 0..STEPS {
        let c = step % CLIENTS;
        let line = match rng.below(10) {
            // Create (events on the lease).
            0..=2 => {
                let event = rng.below(4) == 0;
                let key = if event {
                    format!("/registry/events/ns{c}/e{step}")
                } else {
                    format!("/registry/pods/ns{c}/pod{}", rng.below(12))
                };
                let put = PutRequest {
                    key: b(&key),
                    value: b(&format!("spec-{step}")),
                    lease: if event { LEASE_ID } else { 0 },
                    ..Default::default()
                };
                let txn = TxnRequest {
                    compare: vec![cmp_mod(&key, 0)],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(put)),
                    }],
                    failure: vec![get_op(&key)],
                };
                match kv.txn(txn).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        if r.succeeded && !event {
                            let rev = r.header.as_ref().unwrap().revision;
                            known[c].push((key.clone(), rev));
                        }
                        format!("create {key}: {}", txn_text(&r))
                    }
                    Err(e) => format!("create {key}: {}", status_text(e)),
                }
            }
            // Update, sometimes with a stale revision.
            3..=4 if !known[c].is_empty() => {
                let i = rng.below(known[c].len() as u64) as usize;
                let (key, rev) = known[c][i].clone();
                let stale = rng.below(5) == 0;
                let expect = if stale { rev - 1 } else { rev };
                let txn = TxnRequest {
                    compare: vec![cmp_mod(&key, expect)],
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: b(&key),
                            value: b(&format!("status-{step}")),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![get_op(&key)],
                };
                match kv.txn(txn).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        if r.succeeded {
                            known[c][i].1 = r.header.as_ref().unwrap().revision;
                        } else if let Some(OpResp::ResponseRange(got)) = &r.responses[0].response {
                            match got.kvs.first() {
                                Some(kv) => known[c][i].1 = kv.mod_revision,
                                None => {
                                    known[c].remove(i);
                                }
                            }
                        }
                        format!("update {key}@{expect}: {}", txn_text(&r))
                    }
                    Err(e) => format!("update {key}: {}", status_text(e)),
                }
            }
            // Delete, returning the deleted object.
            5 if !known[c].is_empty() => {
                let i = rng.below(known[c].len() as u64) as usize;
                let (key, rev) = known[c].remove(i);
                let txn = TxnRequest {
                    compare: vec![cmp_mod(&key, rev)],
                    success: vec![RequestOp {
                        request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                            key: b(&key),
                            prev_kv: true,
                            ..Default::default()
                        })),
                    }],
                    failure: vec![get_op(&key)],
                };
                match kv.txn(txn).await {
                    Ok(r) => format!("delete {key}@{rev}: {}", txn_text(&r.into_inner())),
                    Err(e) => format!("delete {key}: {}", status_text(e)),
                }
            }
            // A paginated list at one revision.
            6 | 7 => {
                let ns = rng.below(CLIENTS as u64);
                let prefix = if rng.below(2) == 0 {
                    "/registry/pods/".to_string()
                } else {
                    format!("/registry/pods/ns{ns}/")
                };
                let end = format!("{}0", prefix.trim_end_matches('/'));
                let mut lines = Vec::new();
                let mut key = prefix.clone();
                let mut revision = 0;
                loop {
                    let r = kv
                        .range(RangeRequest {
                            key: b(&key),
                            range_end: b(&end),
                            limit: 5,
                            revision,
                            ..Default::default()
                        })
                        .await;
                    match r {
                        Ok(r) => {
                            let r = r.into_inner();
                            lines.push(range_text(&r));
                            if revision == 0 {
                                revision = r.header.as_ref().unwrap().revision;
                            }
                            if !r.more || lines.len() > 20 {
                                break;
                            }
                            let last = r.kvs.last().unwrap();
                            key = format!("{}\0", s(&last.key));
                        }
                        Err(e) => {
                            lines.push(status_text(e));
                            break;
                        }
                    }
                }
                format!("list {prefix}: {}", lines.join(" | "))
            }
            // A count, or a get.
            8 => match kv
                .range(RangeRequest {
                    key: b("/registry/"),
                    range_end: b("/registry0"),
                    count_only: true,
                    ..Default::default()
                })
                .await
            {
                Ok(r) => format!("count: {}", range_text(&r.into_inner())),
                Err(e) => format!("count: {}", status_text(e)),
            },
            _ => {
                let key = format!("/registry/pods/ns{c}/pod{}", rng.below(12));
                match kv
                    .range(RangeRequest {
                        key: b(&key),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => format!("get {key}: {}", range_text(&r.into_inner())),
                    Err(e) => format!("get {key}: {}", status_text(e)),
                }
            }
        };
        out.push(format!("[{step} c{c}] {line}"));
        if step % 60 == 59 {
            // kube-apiserver's compaction: bump compact_rev_key if nobody else did, then
            // compact to the revision the last round saw.
            let key = "compact_rev_key";
            let txn = TxnRequest {
                compare: vec![Compare {
                    key: b(key),
                    target: CompareTarget::Version as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Version(compact_version)),
                    range_end: Bytes::new(),
                }],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: b(key),
                        value: b(&format!("{step}")),
                        ..Default::default()
                    })),
                }],
                failure: vec![get_op(key)],
            };
            let r = kv
                .txn(txn)
                .await
                .expect("compaction bookkeeping")
                .into_inner();
            compact_version += 1;
            let rev = r.header.as_ref().unwrap().revision;
            out.push(format!("compaction txn: {}", txn_text(&r)));
            let c = kv
                .compact(CompactionRequest {
                    revision: rev - 25,
                    physical: true,
                })
                .await;
            out.push(match c {
                Ok(c) => format!("compact {}: {}", rev - 25, header_text(&c.get_ref().header)),
                Err(e) => format!("compact {}: {}", rev - 25, status_text(e)),
            });
            // A list at a compacted revision.
            let r = kv
                .range(RangeRequest {
                    key: b("/registry/"),
                    range_end: b("/registry0"),
                    revision: rev - 30,
                    ..Default::default()
                })
                .await;
            out.push(match r {
                Ok(r) => format!("list at {}: {}", rev - 30, range_text(&r.into_inner())),
                Err(e) => format!("list at {}: {}", rev - 30, status_text(e)),
            });
        }
    }

    // The lease is left to expire: its keys go at one revision.
    keep_alive.abort();
    let final_rev = loop {
        let r = kv
            .range(RangeRequest {
                key: b("/registry/events/"),
                range_end: b("/registry/events0"),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if r.count == 0 {
            break r.header.unwrap().revision;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    out.push(format!("lease expired; revision {final_rev}"));
    // Progress: answered at the current revision.
    wtx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .unwrap();
    // Every change, in order, with its previous value; then the progress answer.
    let mut events = Vec::new();
    let mut progress = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while progress.is_none() || events.last().is_none_or(|(rev, _)| *rev < final_rev) {
        let r = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("watch answers in time")
            .unwrap()
            .unwrap();
        if r.watch_id == -1 {
            progress = Some(r.header.as_ref().unwrap().revision);
        }
        for e in &r.events {
            events.push((e.kv.as_ref().unwrap().mod_revision, event_text(e)));
        }
        assert!(Instant::now() < deadline, "the watch never caught up");
    }
    out.push(format!("progress at {}", progress.unwrap()));
    out.push(format!("{} events watched:", events.len()));
    out.extend(events.into_iter().map(|(rev, e)| format!("  {rev} {e}")));
    out.join("\n") + "\n"
}

/// The whole sequence takes a few seconds; a hang fails the test instead.
async fn bounded(f: impl std::future::Future<Output = String>) -> String {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("the sequence did not finish within 120 s")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_kubernetes_shaped_sequence_answers_as_etcd_3_4_did() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    if std::env::var_os("ETCD_RECORD").is_some() {
        let dir = tempfile::tempdir().unwrap();
        let (mut etcd, url) = start_etcd34(dir.path());
        let rt = runtime();
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "etcd 3.4 did not start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let transcript = rt.block_on(bounded(sequence(&url)));
        let _ = etcd.kill();
        let _ = etcd.wait();
        std::fs::write(&reference, transcript).unwrap();
        eprintln!("recorded {}", reference.display());
        return;
    }
    let node = Node::start("k8s", &[]);
    let ours = runtime().block_on(bounded(sequence(&node.client_url())));
    let want = std::fs::read_to_string(&reference).expect("the recorded transcript");
    if ours != want {
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("ours.txt"), &ours).unwrap();
        let at = ours
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(ours.lines().count().min(want.lines().count()));
        panic!(
            "the transcripts differ at line {} (ours in {}):\n--- etcd 3.4.23\n{}\n--- etcd-rs\n{}",
            at + 1,
            dir.display(),
            want.lines().nth(at).unwrap_or("<end>"),
            ours.lines().nth(at).unwrap_or("<end>")
        );
    }
}
