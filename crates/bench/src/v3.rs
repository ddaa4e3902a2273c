//! The v3 (gRPC) flavour of the workloads, for etcd-rs and stock etcd alike: each worker owns
//! one HTTP/2 connection (a tonic channel) and sends its next request when the previous
//! answer is in.
//!
//! - `put`: `KV.Put` round-robin over the key space;
//! - `get`: `KV.Range` of one key, serializable unless `--consistent` (linearizable);
//! - `mixed`: either, by the read fraction;
//! - `txn`: `KV.Txn` comparing the value this worker last wrote to one of its own keys and
//!   putting the other value (so a failed comparison is a server error, not a race);
//! - `watch`: W watch streams on one key spread over the connections; each write's
//!   notification latency to every watcher, measured from the write's answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use tonic::transport::Channel;

use crate::stats::{self, Errors};
use crate::{Kind, Plan, WorkerResult, REQUEST_TIMEOUT};

/// Opens one HTTP/2 connection to `endpoint` (`http://HOST:PORT`).
pub(crate) async fn connect(endpoint: &str) -> Result<Channel, String> {
    Channel::from_shared(endpoint.to_string())
        .map_err(|e| format!("{endpoint}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("{endpoint}: {e}"))
}

fn put_request(key: &bytes::Bytes, value: &bytes::Bytes) -> PutRequest {
    PutRequest {
        key: key.clone(),
        value: value.clone(),
        ..Default::default()
    }
}

/// Sets every key to the first value, each connection taking its share of the key space.
pub(crate) async fn fill(plan: &V3Plan, channels: &[Channel]) -> Result<(), String> {
    let n = channels.len();
    let sets = channels.iter().enumerate().map(|(w, ch)| {
        let mut kv = KvClient::new(ch.clone());
        async move {
            for k in (w..plan.keys.len()).step_by(n) {
                kv.put(plan.request(put_request(&plan.keys[k], &plan.values[0])))
                    .await
                    .map_err(|e| format!("filling the key space: {e}"))?;
            }
            Ok::<(), String>(())
        }
    });
    for r in crate::join_all(sets).await {
        r?;
    }
    Ok(())
}

/// What the v3 workers of one run share besides the counters.
pub(crate) struct V3Plan {
    pub(crate) keys: Vec<bytes::Bytes>,
    pub(crate) values: [bytes::Bytes; 2],
    pub(crate) consistent: bool,
    /// The auth token every request carries (`--user`), if any.
    pub(crate) token: Option<tonic::metadata::AsciiMetadataValue>,
}

impl V3Plan {
    /// `message` as a request, with the auth token when there is one.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        if let Some(token) = &self.token {
            r.metadata_mut().insert("token", token.clone());
        }
        r
    }
}

/// Authenticates `user` (`NAME:PASSWORD`, as etcdctl's `--user`) through `channel`; the
/// token, as request metadata.
pub(crate) async fn authenticate(
    channel: &Channel,
    user: &str,
) -> Result<tonic::metadata::AsciiMetadataValue, String> {
    let (name, password) = user
        .split_once(':')
        .ok_or_else(|| format!("--user {user:?}: want NAME:PASSWORD"))?;
    let token = etcd_v3proto::etcdserverpb::auth_client::AuthClient::new(channel.clone())
        .authenticate(etcd_v3proto::etcdserverpb::AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
        })
        .await
        .map_err(|e| format!("authenticating {name}: {}", e.message()))?
        .into_inner()
        .token;
    token
        .parse()
        .map_err(|_| format!("authenticating {name}: an unusable token"))
}

/// Where a worker sends: every endpoint, and the one it uses now.
pub(crate) struct At {
    pub(crate) endpoints: Arc<Vec<String>>,
    pub(crate) current: usize,
}

impl At {
    /// A connection to the next endpoint that accepts one (trying each once), if any.
    async fn next(&mut self) -> Option<KvClient<Channel>> {
        for _ in 0..self.endpoints.len() {
            self.current = (self.current + 1) % self.endpoints.len();
            if let Ok(channel) = connect(&self.endpoints[self.current]).await {
                return Some(KvClient::new(channel));
            }
        }
        None
    }
}

/// One operation of a worker.
enum Operation<'a> {
    Range(&'a bytes::Bytes),
    Put(&'a bytes::Bytes),
    /// Set `key` from `old` to `new` if it holds `old`.
    Swap {
        key: &'a bytes::Bytes,
        old: &'a bytes::Bytes,
        new: &'a bytes::Bytes,
    },
}

/// Sends `op` once: the answer, or `Err` on the request timeout.
async fn send(
    kv: &mut KvClient<Channel>,
    v3: &V3Plan,
    op: &Operation<'_>,
) -> Result<Result<(), tonic::Status>, tokio::time::error::Elapsed> {
    match op {
        Operation::Range(key) => {
            let r = RangeRequest {
                key: (*key).clone(),
                serializable: !v3.consistent,
                ..Default::default()
            };
            tokio::time::timeout(REQUEST_TIMEOUT, kv.range(v3.request(r)))
                .await
                .map(|r| r.map(drop))
        }
        Operation::Swap { key, old, new } => {
            let txn = TxnRequest {
                compare: vec![Compare {
                    key: (*key).clone(),
                    target: CompareTarget::Value as i32,
                    result: CompareResult::Equal as i32,
                    target_union: Some(TargetUnion::Value((*old).clone())),
                    range_end: Default::default(),
                }],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(put_request(key, new))),
                }],
                failure: Vec::new(),
            };
            match tokio::time::timeout(REQUEST_TIMEOUT, kv.txn(v3.request(txn))).await {
                Ok(Ok(r)) if !r.get_ref().succeeded => {
                    Ok(Err(tonic::Status::aborted("the comparison failed")))
                }
                other => other.map(|r| r.map(drop)),
            }
        }
        Operation::Put(key) => {
            let put = v3.request(put_request(key, &v3.values[0]));
            tokio::time::timeout(REQUEST_TIMEOUT, kv.put(put))
                .await
                .map(|r| r.map(drop))
        }
    }
}

/// Whether an operation that failed with `status` is sent again (to the next endpoint), as
/// etcd's clients (grpc-go) do: the member answered Unavailable (it is stopping, or has no
/// leader) or could not be reached, or the connection failed under the request (a stopping
/// member's GOAWAY refused a stream it had not started, a closing connection dropped a
/// request not yet sent). An error the member answered with (a grpc-status) is final.
fn send_again(status: &tonic::Status) -> bool {
    use tonic::Code;
    let transport = std::error::Error::source(status).is_some();
    status.code() == Code::Unavailable
        || (transport
            && matches!(
                status.code(),
                Code::Cancelled | Code::Internal | Code::Unknown
            ))
}

/// One closed-loop worker on its own connection, to `at`'s endpoint. An operation that
/// failed as [`send_again`] says is sent again to the next endpoint, until the request
/// timeout: one operation, one retry counted.
pub(crate) async fn worker(
    w: usize,
    plan: Arc<Plan>,
    v3: Arc<V3Plan>,
    channel: Channel,
    mut at: At,
) -> WorkerResult {
    let mut res = WorkerResult {
        latency: stats::histogram(),
        ok: 0,
        errors: Errors::new(),
        retries: 0,
        fatal: None,
    };
    let mut kv = KvClient::new(channel);
    let keys = v3.keys.len() as u64;
    let mine: Vec<u64> = (w as u64..keys).step_by(plan.conns).collect();
    let mut holds = vec![0usize; mine.len()];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while let Some(n) = plan.claim() {
        let key = &v3.keys[(n % keys) as usize];
        let read = match plan.kind {
            Kind::Get => true,
            Kind::Mixed(f) => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 11) as f64 / (1u64 << 53) as f64 <= f
            }
            Kind::Put | Kind::Txn => false,
        };
        let slot = (n / plan.conns as u64) as usize % mine.len().max(1);
        let op = if read {
            Operation::Range(key)
        } else if matches!(plan.kind, Kind::Txn) {
            Operation::Swap {
                key: &v3.keys[mine[slot] as usize],
                old: &v3.values[holds[slot]],
                new: &v3.values[holds[slot] ^ 1],
            }
        } else {
            Operation::Put(key)
        };
        let t = Instant::now();
        let answer = loop {
            let answer = send(&mut kv, &v3, &op).await;
            let again = matches!(&answer, Ok(Err(s)) if send_again(s));
            if !again || t.elapsed() >= REQUEST_TIMEOUT {
                break answer;
            }
            res.retries += 1;
            match at.next().await {
                Some(next) => kv = next,
                // Nobody accepts a connection now: wait a little, then try again.
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        match answer {
            Ok(Ok(())) => {
                stats::record(&mut res.latency, t.elapsed());
                res.ok += 1;
                if matches!(plan.kind, Kind::Txn) {
                    holds[slot] ^= 1;
                }
                plan.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(status)) => {
                *res.errors
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
                plan.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                *res.errors.entry("timeout".into()).or_default() += 1;
                plan.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    res
}

/// The v3 watch workload: `watchers` streams on one key over `channels`; returns the
/// latencies, the notifications seen and the errors.
pub(crate) async fn watch(
    channels: &[Channel],
    key: bytes::Bytes,
    value: bytes::Bytes,
    watchers: usize,
    writes: u64,
    quiet: bool,
    mut on_measured_start: impl FnMut(),
) -> Result<(hdrhistogram::Histogram<u64>, u64, Errors, Duration), String> {
    let mut writer = KvClient::new(channels[0].clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let mut tasks = Vec::with_capacity(watchers);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(watchers.max(1));
    for w in 0..watchers {
        let mut client = WatchClient::new(channels[w % channels.len()].clone());
        let tx = tx.clone();
        let ready = ready_tx.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key,
                    ..Default::default()
                })),
            };
            // The request stream stays open while the watch runs.
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let Ok(resp) = client.watch(requests).await else {
                return;
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(r)) = stream.message().await {
                let at = Instant::now();
                if r.created {
                    let _ = ready.send(()).await;
                    continue;
                }
                for e in &r.events {
                    let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision) as u64;
                    if tx.send((rev, at)).is_err() {
                        return;
                    }
                }
            }
        }));
    }
    drop(tx);
    drop(ready_tx);
    for _ in 0..watchers {
        if tokio::time::timeout(crate::ROUND_LIMIT, ready_rx.recv())
            .await
            .ok()
            .flatten()
            .is_none()
        {
            return Err("the watchers were not created in time".into());
        }
    }
    let mut latency = stats::histogram();
    let mut errors = Errors::new();
    let mut ok = 0;
    let mut started = Instant::now();
    for round in 0..=writes {
        if round == 1 {
            started = Instant::now();
            on_measured_start();
        }
        let r = writer
            .put(put_request(&key, &value))
            .await
            .map_err(|e| format!("write: {e}"))?;
        let at = Instant::now();
        let rev = r.get_ref().header.as_ref().map_or(0, |h| h.revision) as u64;
        let round_stats = (round > 0).then_some((&mut latency, &mut ok, &mut errors));
        crate::collect_round(&mut rx, rev, at, watchers, round_stats).await;
        if !quiet && round > 0 && round % 10 == 0 {
            eprintln!("[{round}/{writes} writes] {ok} notifications");
        }
    }
    let elapsed = started.elapsed();
    for t in tasks {
        t.abort();
    }
    Ok((latency, ok, errors, elapsed))
}

use futures_util::StreamExt as _;
