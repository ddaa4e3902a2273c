//! A Kubernetes-shaped v3 workload under faults (`tests/k8s_shaped.rs` runs the same shapes
//! without faults and compares them with etcd 3.4's answers).
//!
//! Six clients do what kube-apiserver does, against random members: creates as
//! `txn(mod(key) = 0, put, range)` on pod keys that the clients share (so they race), updates
//! and deletes as `txn(mod(key) = rev, put | delete with prev_kv, range)` with the revision
//! they last saw (sometimes a stale one), events bound to short leases that are never kept
//! alive, paginated lists with `limit` whose continuations read at the first page's revision,
//! lists at an older revision, gets and counts (a quarter of the reads serializable). A
//! compactor writes kube-apiserver's `compact_rev_key` bookkeeping txn and compacts every
//! 1.5 s. Prefix watchers on `/registry/` (with `prev_kv`, `hasleader` and a progress request
//! every half second) resume after every fault from the revision after the last event or
//! progress answer they had; a recorder watches the whole keyspace the same way.
//!
//! The revisions etcd's answers carry are the witness of a linearization, and everything is
//! checked against the recorder's history replayed revision by revision:
//! - the recorder's history has every revision from 2 to the last, each change written by a
//!   client (a unique value, applied at most once; never one whose request definitely failed)
//!   or a lease expiry (all of the lease's keys at one revision, never before its TTL has run
//!   since the grant was sent), with the right create/mod revision, version, lease and
//!   `prev_kv`, and only when its txn's compare held;
//! - every acknowledged write is in it at the revision its answer gave;
//! - every answered read (each list page, get, count, and the range of a txn whose compare
//!   failed, with the compare indeed false) equals the replayed state at its revision;
//! - real time: a write's revision is above, a linearizable read's at least, the revision of
//!   every answer received before it was sent (serializable reads are exempt);
//! - a read refused as compacted had a compaction above its revision sent before it ended;
//! - each watcher saw exactly the history's changes under its prefix from revision 1, in
//!   order, once, and no event at or below a progress answer it had already received;
//! - after healing, every member holds the replayed final state.
//!
//! Compaction never passes the revision the slowest watcher has reached, as kube-apiserver
//! never compacts what its watch cache still needs, so a watcher is never compacted away.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicI64;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op3;
use etcd_v3proto::etcdserverpb::response_op::Response as OpResp;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::mvccpb::{Event, KeyValue};
use tonic::transport::Channel;
use tonic::Code;

use super::v3::{channels, failure, refused, runtime};
use super::*;

/// Kubernetes-shaped client threads.
const K8S_CLIENTS: usize = 6;
/// Prefix watchers (besides the recorder).
const WATCHERS: usize = 2;
/// The TTL of the events' leases, in seconds (never kept alive).
const EVENT_TTL: i64 = 2;
/// A client takes a new lease for its events when its lease is older than this.
const LEASE_REUSE: Duration = Duration::from_millis(700);
/// Page size of the lists.
const PAGE: i64 = 4;
/// How often the compactor compacts.
const COMPACT_EVERY: Duration = Duration::from_millis(1500);
/// How long the compactor waits for an answer before it moves on to its next round. A call
/// that reaches a cut-off member goes unanswered until [`OP_TIMEOUT`]; with that wait, two
/// such calls took 11 of a run's 20 s, and the run ended with too few compactions to count.
const COMPACTOR_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often a watcher asks for progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// A watcher that heard nothing (not even a progress answer) for this long moves on.
const WATCH_SILENCE: Duration = Duration::from_secs(3);

/// What a txn's compare asks of its key before it writes.
#[derive(Debug, Clone, Copy)]
enum Cmp {
    /// The key's mod revision (0: absent).
    Mod(i64),
    /// The key's version (0: absent).
    Version(i64),
}

impl Cmp {
    fn holds(self, kv: Option<&KeyValue>) -> bool {
        match self {
            Cmp::Mod(r) => kv.map_or(0, |kv| kv.mod_revision) == r,
            Cmp::Version(v) => kv.map_or(0, |kv| kv.version) == v,
        }
    }

    fn compare(self, key: &Bytes) -> Compare {
        let (target, union) = match self {
            Cmp::Mod(r) => (CompareTarget::Mod, TargetUnion::ModRevision(r)),
            Cmp::Version(v) => (CompareTarget::Version, TargetUnion::Version(v)),
        };
        Compare {
            key: key.clone(),
            target: target as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(union),
            range_end: Bytes::new(),
        }
    }
}

/// One write: a txn whose compare guards a put (`value`) or a delete (`value: None`).
#[derive(Debug)]
struct Write {
    key: Bytes,
    value: Option<Bytes>,
    cmp: Cmp,
    lease: i64,
    /// Nanoseconds since the start: sent, answered (`u64::MAX`: never).
    call: u64,
    ret: u64,
    /// The revision of a successful answer.
    acked: Option<i64>,
    /// Definitely not applied: the compare failed, or the request was refused.
    failed: bool,
}

/// One answered read, to be compared with the replayed state at revision `at`.
#[derive(Debug)]
struct Read {
    what: String,
    /// The revision whose state it read, and the revision its header carried.
    at: i64,
    header: i64,
    key: Bytes,
    /// Empty: the key alone.
    end: Bytes,
    limit: i64,
    count_only: bool,
    kvs: Vec<KeyValue>,
    count: i64,
    more: bool,
    /// A failed txn's compare, which must be false at `at`.
    not: Option<Cmp>,
    /// Linearizable (checked in real time too), not serializable.
    linear: bool,
    call: u64,
    ret: u64,
}

/// A read refused as compacted: it read at `at`.
struct CompactedRead {
    what: String,
    at: i64,
    ret: u64,
}

/// What a client thread did.
#[derive(Default)]
struct ClientLog {
    writes: Vec<Write>,
    reads: Vec<Read>,
    compacted: Vec<CompactedRead>,
    /// Lease id → when its grant was sent (nanoseconds since the start).
    grants: Vec<(i64, u64)>,
    /// Compactions sent: revision and when.
    compactions: Vec<(i64, u64)>,
    anomalies: Vec<String>,
    /// Answers and unknown outcomes.
    answered: u64,
    unknown: u64,
}

/// The answer to one call, classified.
enum Answer<T> {
    Ok(T),
    /// It certainly did not take effect (refused connection, lease gone).
    NotApplied,
    /// It may or may not have taken effect.
    Unknown,
    /// A read at a compacted revision.
    Compacted,
    /// A read at a revision the member has not reached.
    Future,
    Anomaly(String),
}

async fn call<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Answer<T> {
    let s = match tokio::time::timeout(timeout, call).await {
        Err(_) => return Answer::Unknown,
        Ok(Ok(r)) => return Answer::Ok(r.into_inner()),
        Ok(Err(s)) => s,
    };
    if refused(&s) {
        return Answer::NotApplied;
    }
    if s.code() == Code::OutOfRange && s.message().contains("required revision has been compacted")
    {
        return Answer::Compacted;
    }
    if s.code() == Code::OutOfRange
        && s.message()
            .contains("required revision is a future revision")
    {
        return Answer::Future;
    }
    if s.code() == Code::NotFound && s.message() == "etcdserver: requested lease not found" {
        return Answer::NotApplied;
    }
    match failure(&s) {
        Outcome::Anomaly(a) => Answer::Anomaly(a),
        _ => Answer::Unknown,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The end of the range of every key under `prefix` (which ends in `/`).
fn prefix_end(prefix: &str) -> Bytes {
    b(&format!("{}0", prefix.trim_end_matches('/')))
}

fn range_op(key: &Bytes) -> RequestOp {
    RequestOp {
        request: Some(Op3::RequestRange(RangeRequest {
            key: key.clone(),
            ..Default::default()
        })),
    }
}

/// Runs `writes` txns, reads and lease grants for one client.
struct Client {
    id: usize,
    start: Instant,
    chans: Vec<Channel>,
    rng: Rng,
    seq: u64,
    /// What the client last saw of a pod key: its mod revision (0: absent).
    known: BTreeMap<Bytes, i64>,
    /// Revisions lists were answered at, for lists at an older revision.
    list_revs: Vec<i64>,
    lease: Option<(i64, Instant)>,
    /// How long a call waits for its answer (then its outcome is unknown).
    timeout: Duration,
    log: ClientLog,
}

impl Client {
    fn kv(&mut self) -> KvClient<Channel> {
        KvClient::new(self.chans[self.rng.index(self.chans.len())].clone())
    }

    /// A guarded write; returns, if it was answered, whether it succeeded and the answer's
    /// revision.
    async fn write(
        &mut self,
        key: Bytes,
        value: Option<Bytes>,
        cmp: Cmp,
        lease: i64,
    ) -> Option<(bool, i64)> {
        let op = match &value {
            Some(v) => Op3::RequestPut(PutRequest {
                key: key.clone(),
                value: v.clone(),
                lease,
                ..Default::default()
            }),
            None => Op3::RequestDeleteRange(DeleteRangeRequest {
                key: key.clone(),
                prev_kv: true,
                ..Default::default()
            }),
        };
        let txn = TxnRequest {
            compare: vec![cmp.compare(&key)],
            success: vec![RequestOp { request: Some(op) }],
            failure: vec![range_op(&key)],
        };
        let mut kv = self.kv();
        let sent = now_nanos(self.start);
        let answer = call(self.timeout, kv.txn(txn)).await;
        let ret = now_nanos(self.start);
        let mut w = Write {
            key: key.clone(),
            value,
            cmp,
            lease,
            call: sent,
            ret: u64::MAX,
            acked: None,
            failed: false,
        };
        let mut answered = None;
        match answer {
            Answer::Ok(r) => {
                self.log.answered += 1;
                w.ret = ret;
                let rev = r.header.as_ref().map_or(0, |h| h.revision);
                answered = Some((r.succeeded, rev));
                if r.succeeded {
                    w.acked = Some(rev);
                    self.learn(&key, if w.value.is_some() { rev } else { 0 });
                } else {
                    w.failed = true;
                    match r.responses.first().and_then(|r| r.response.as_ref()) {
                        Some(OpResp::ResponseRange(got)) => {
                            self.learn(&key, got.kvs.first().map_or(0, |kv| kv.mod_revision));
                            self.log.reads.push(Read {
                                what: format!("client {} failed txn on {}", self.id, text(&key)),
                                at: rev,
                                header: rev,
                                key: key.clone(),
                                end: Bytes::new(),
                                limit: 0,
                                count_only: false,
                                kvs: got.kvs.clone(),
                                count: got.count,
                                more: got.more,
                                not: Some(cmp),
                                linear: true,
                                call: sent,
                                ret,
                            });
                        }
                        other => self.log.anomalies.push(format!(
                            "client {}: a failed txn answered {other:?}",
                            self.id
                        )),
                    }
                }
            }
            Answer::NotApplied => {
                w.failed = true;
                w.ret = ret;
            }
            Answer::Unknown => self.log.unknown += 1,
            Answer::Compacted | Answer::Future => self.log.anomalies.push(format!(
                "client {}: a txn on {} answered a revision error",
                self.id,
                text(&key)
            )),
            Answer::Anomaly(a) => {
                self.log
                    .anomalies
                    .push(format!("client {} txn on {}: {a}", self.id, text(&key)))
            }
        }
        self.log.writes.push(w);
        answered
    }

    fn learn(&mut self, key: &Bytes, rev: i64) {
        if key.starts_with(b"/registry/pods/") {
            self.known.insert(key.clone(), rev);
        }
    }

    /// A range; `Some(answer)` if it was answered.
    async fn read(&mut self, what: String, req: RangeRequest) -> Option<RangeResponse> {
        let mut kv = self.kv();
        let sent = now_nanos(self.start);
        let answer = call(self.timeout, kv.range(req.clone())).await;
        let ret = now_nanos(self.start);
        match answer {
            Answer::Ok(r) => {
                self.log.answered += 1;
                let header = r.header.as_ref().map_or(0, |h| h.revision);
                for kv in &r.kvs {
                    self.learn(&kv.key, kv.mod_revision);
                }
                self.log.reads.push(Read {
                    what,
                    at: if req.revision > 0 {
                        req.revision
                    } else {
                        header
                    },
                    header,
                    key: req.key,
                    end: req.range_end,
                    limit: req.limit,
                    count_only: req.count_only,
                    kvs: r.kvs.clone(),
                    count: r.count,
                    more: r.more,
                    not: None,
                    linear: !req.serializable,
                    call: sent,
                    ret,
                });
                Some(r)
            }
            Answer::Compacted if req.revision > 0 => {
                self.log.compacted.push(CompactedRead {
                    what,
                    at: req.revision,
                    ret,
                });
                None
            }
            // A serializable continuation on a member behind the first page's.
            Answer::Future if req.serializable && req.revision > 0 => None,
            Answer::Compacted | Answer::Future => {
                self.log.anomalies.push(format!("{what}: a revision error"));
                None
            }
            Answer::Anomaly(a) => {
                self.log.anomalies.push(format!("{what}: {a}"));
                None
            }
            Answer::Unknown => {
                self.log.unknown += 1;
                None
            }
            Answer::NotApplied => None,
        }
    }

    /// A list of `prefix` in pages of [`PAGE`], at `revision` (0: now); the continuations
    /// read at the first page's revision.
    async fn list(&mut self, prefix: &str, mut revision: i64, serializable: bool) {
        let end = prefix_end(prefix);
        let mut key = b(prefix);
        for page in 0..40 {
            let what = format!(
                "client {} list {prefix} page {page} at {revision}{}",
                self.id,
                if serializable { " (serializable)" } else { "" }
            );
            let req = RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                limit: PAGE,
                revision,
                serializable,
                ..Default::default()
            };
            let Some(r) = self.read(what, req).await else {
                return;
            };
            if revision == 0 {
                revision = r.header.as_ref().map_or(0, |h| h.revision);
                self.list_revs.push(revision);
            }
            match r.kvs.last() {
                Some(last) if r.more => {
                    let mut next = last.key.to_vec();
                    next.push(0);
                    key = Bytes::from(next);
                }
                _ => return,
            }
        }
    }

    /// The client's lease for events, granted anew when older than [`LEASE_REUSE`].
    async fn event_lease(&mut self) -> Option<i64> {
        if let Some((id, at)) = self.lease {
            if at.elapsed() < LEASE_REUSE {
                return Some(id);
            }
        }
        let mut lease = LeaseClient::new(self.chans[self.rng.index(self.chans.len())].clone());
        let sent = now_nanos(self.start);
        let at = Instant::now();
        match call(
            self.timeout,
            lease.lease_grant(LeaseGrantRequest {
                ttl: EVENT_TTL,
                id: 0,
            }),
        )
        .await
        {
            Answer::Ok(g) => {
                self.log.grants.push((g.id, sent));
                self.lease = Some((g.id, at));
                Some(g.id)
            }
            Answer::Anomaly(a) => {
                self.log
                    .anomalies
                    .push(format!("client {} lease grant: {a}", self.id));
                None
            }
            _ => None,
        }
    }

    async fn step(&mut self) {
        self.seq += 1;
        let id = self.id;
        let seq = self.seq;
        let roll = self.rng.below(100);
        match roll {
            // Create a pod (clients race for the same keys).
            0..=19 => {
                let key = b(&format!(
                    "/registry/pods/ns{}/pod{}",
                    self.rng.below(3),
                    self.rng.below(5)
                ));
                let value = b(&format!("pod-c{id}-{seq}"));
                self.write(key, Some(value), Cmp::Mod(0), 0).await;
            }
            // An event on the client's short lease.
            20..=29 => {
                if let Some(lease) = self.event_lease().await {
                    let key = b(&format!(
                        "/registry/events/ns{}/c{id}-{seq}",
                        self.rng.below(3)
                    ));
                    let value = b(&format!("event-c{id}-{seq}"));
                    self.write(key, Some(value), Cmp::Mod(0), lease).await;
                }
            }
            // Update or delete what the client saw, sometimes with a stale revision.
            30..=57 => {
                let present: Vec<(Bytes, i64)> = self
                    .known
                    .iter()
                    .filter(|(_, r)| **r > 0)
                    .map(|(k, r)| (k.clone(), *r))
                    .collect();
                if present.is_empty() {
                    let key = b(&format!("/registry/pods/ns{}/pod0", self.rng.below(3)));
                    let what = format!("client {id} get {}", text(&key));
                    self.read(
                        what,
                        RangeRequest {
                            key,
                            ..Default::default()
                        },
                    )
                    .await;
                    return;
                }
                let (key, rev) = present[self.rng.index(present.len())].clone();
                let rev = if self.rng.below(5) == 0 { rev - 1 } else { rev };
                if roll < 50 {
                    let value = b(&format!("status-c{id}-{seq}"));
                    self.write(key, Some(value), Cmp::Mod(rev), 0).await;
                } else {
                    self.write(key, None, Cmp::Mod(rev), 0).await;
                }
            }
            // A paginated list: now, at an older revision, or serializable.
            58..=77 => {
                let prefix = match self.rng.below(3) {
                    0 => "/registry/".to_string(),
                    1 => "/registry/pods/".to_string(),
                    n => format!("/registry/pods/ns{}/", n % 3),
                };
                let (rev, serializable) = match self.rng.below(4) {
                    0 if !self.list_revs.is_empty() => {
                        let i = self.list_revs.len() - 1 - self.rng.index(self.list_revs.len());
                        (self.list_revs[i], false)
                    }
                    1 => (0, true),
                    _ => (0, false),
                };
                self.list(&prefix, rev, serializable).await;
            }
            // A get.
            78..=89 => {
                let key = b(&format!(
                    "/registry/pods/ns{}/pod{}",
                    self.rng.below(3),
                    self.rng.below(5)
                ));
                let serializable = self.rng.below(4) == 0;
                let what = format!("client {id} get {}", text(&key));
                self.read(
                    what,
                    RangeRequest {
                        key,
                        serializable,
                        ..Default::default()
                    },
                )
                .await;
            }
            // A count of everything.
            _ => {
                let what = format!("client {id} count /registry/");
                self.read(
                    what,
                    RangeRequest {
                        key: b("/registry/"),
                        range_end: prefix_end("/registry/"),
                        count_only: true,
                        ..Default::default()
                    },
                )
                .await;
            }
        }
    }
}

fn run_client(
    id: usize,
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
) -> ClientLog {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let mut c = Client {
        id,
        start,
        chans: channels(addrs),
        rng: Rng::new(seed ^ (id as u64 + 11).wrapping_mul(0xD6E8_FEB8_6659_FD93)),
        seq: 0,
        known: BTreeMap::new(),
        list_revs: Vec::new(),
        lease: None,
        timeout: OP_TIMEOUT,
        log: ClientLog::default(),
    };
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        rt.block_on(c.step());
    }
    c.log
}

/// kube-apiserver's compactor: every [`COMPACT_EVERY`], the `compact_rev_key` txn (a version
/// compare), then a compaction to the revision that txn saw last round, held back to the
/// revision every watcher has reached.
fn run_compactor(
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
    reached: &[Arc<AtomicI64>],
) -> ClientLog {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let mut c = Client {
        id: K8S_CLIENTS,
        start,
        chans: channels(addrs),
        rng: Rng::new(seed ^ 0xC0A1_C0A1_C0A1_C0A1),
        seq: 0,
        known: BTreeMap::new(),
        list_revs: Vec::new(),
        lease: None,
        timeout: COMPACTOR_TIMEOUT,
        log: ClientLog::default(),
    };
    let key = b("compact_rev_key");
    let mut version = 0;
    let mut last_round = 0;
    let mut compacted = 0;
    rt.block_on(async {
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(COMPACT_EVERY).await;
            c.seq += 1;
            let value = b(&format!("compact-{}", c.seq));
            let reads = c.log.reads.len();
            let answer = c
                .write(key.clone(), Some(value), Cmp::Version(version), 0)
                .await;
            let this_round = match answer {
                Some((true, rev)) => {
                    version += 1;
                    rev
                }
                Some((false, rev)) => {
                    // An earlier round's write whose answer was lost: take its version.
                    if let Some(r) = c.log.reads.get(reads) {
                        version = r.kvs.first().map_or(0, |kv| kv.version);
                    }
                    rev
                }
                None => last_round,
            };
            let watched = reached
                .iter()
                .map(|r| r.load(Ordering::SeqCst))
                .min()
                .unwrap_or(0);
            let target = last_round.min(watched);
            last_round = this_round;
            if target <= compacted {
                continue;
            }
            let sent = now_nanos(start);
            c.log.compactions.push((target, sent));
            let mut kv = c.kv();
            match call(
                c.timeout,
                kv.compact(CompactionRequest {
                    revision: target,
                    physical: c.rng.below(2) == 0,
                }),
            )
            .await
            {
                Answer::Ok(_) => {
                    c.log.answered += 1;
                    compacted = target;
                }
                Answer::Compacted => compacted = target,
                Answer::Anomaly(a) => c.log.anomalies.push(format!("compact {target}: {a}")),
                Answer::Future => c
                    .log
                    .anomalies
                    .push(format!("compact {target}: a future revision")),
                Answer::Unknown => c.log.unknown += 1,
                Answer::NotApplied => {}
            }
        }
    });
    c.log
}

/// One event as a watcher received it: the event, and when (nanoseconds since the start).
type Seen = (Event, u64);

/// What a watcher saw.
struct Watched {
    events: Vec<Seen>,
    progress_answers: u64,
    streams: u64,
    anomalies: Vec<String>,
}

/// Watches `[key, end)` with `prev_kv` from revision 1, asking for progress every
/// [`PROGRESS_EVERY`], moving to another member when a stream ends, fails or stays silent,
/// and resuming after the last event or progress answer. Publishes in `reached` the revision
/// it has every event up to; stops once that is `last` (set when the clients are done), or
/// at `deadline`.
#[allow(clippy::too_many_arguments)]
fn run_watcher(
    n: usize,
    addrs: &[String],
    key: Bytes,
    end: Bytes,
    start: Instant,
    reached: &AtomicI64,
    last: &AtomicI64,
    deadline: &Mutex<Option<Instant>>,
) -> Watched {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let name = match n {
        0 => "the recorder".to_string(),
        n => format!("watcher {n}"),
    };
    let mut out = Watched {
        events: Vec::new(),
        progress_answers: 0,
        streams: 0,
        anomalies: Vec::new(),
    };
    let mut member = n % chans.len();
    rt.block_on(async {
        loop {
            let through = reached.load(Ordering::SeqCst);
            let target = last.load(Ordering::SeqCst);
            if target > 0 && through >= target {
                return;
            }
            if deadline
                .lock()
                .expect("deadline")
                .is_some_and(|d| Instant::now() > d)
            {
                out.anomalies.push(format!(
                    "{name} did not reach revision {target} (it has every event up to {through})"
                ));
                return;
            }
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    start_revision: through + 1,
                    prev_kv: true,
                    progress_notify: true,
                    ..Default::default()
                })),
            };
            tx.send(create).await.expect("a fresh channel");
            let mut req = tonic::Request::new(stream_from(rx));
            req.metadata_mut()
                .insert("hasleader", "true".parse().expect("metadata"));
            let mut client = WatchClient::new(chans[member].clone());
            member = (member + 1) % chans.len();
            let mut stream = match tokio::time::timeout(OP_TIMEOUT, client.watch(req)).await {
                Ok(Ok(s)) => s.into_inner(),
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            out.streams += 1;
            let mut heard = Instant::now();
            // A progress answer above what was received is only trusted for this stream.
            loop {
                let r = match tokio::time::timeout(PROGRESS_EVERY, stream.message()).await {
                    Ok(Ok(Some(r))) => r,
                    Ok(Ok(None)) | Ok(Err(_)) => break,
                    Err(_) => {
                        if heard.elapsed() > WATCH_SILENCE {
                            break;
                        }
                        let progress = WatchRequest {
                            request_union: Some(RequestUnion::ProgressRequest(
                                WatchProgressRequest::default(),
                            )),
                        };
                        if tx.send(progress).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                heard = Instant::now();
                if r.canceled || r.compact_revision != 0 {
                    out.anomalies.push(format!(
                        "{name}: watch from {} canceled (compact revision {}, reason {:?})",
                        reached.load(Ordering::SeqCst) + 1,
                        r.compact_revision,
                        r.cancel_reason
                    ));
                    return;
                }
                if r.created {
                    continue;
                }
                let through = reached.load(Ordering::SeqCst);
                if r.events.is_empty() {
                    // A progress answer: every event up to its revision has been sent.
                    out.progress_answers += 1;
                    let rev = r.header.as_ref().map_or(0, |h| h.revision);
                    reached.fetch_max(rev, Ordering::SeqCst);
                } else {
                    let at = now_nanos(start);
                    let mut top = through;
                    for e in r.events {
                        let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        if rev <= through {
                            out.anomalies.push(format!(
                                "{name}: an event at revision {rev} after it had every event \
                                 up to {through}"
                            ));
                        }
                        top = top.max(rev);
                        out.events.push((e, at));
                    }
                    reached.fetch_max(top, Ordering::SeqCst);
                }
                let target = last.load(Ordering::SeqCst);
                if target > 0 && reached.load(Ordering::SeqCst) >= target {
                    return;
                }
            }
        }
    });
    out
}

/// The state after each revision, replayed from a history.
#[derive(Default)]
struct Model {
    keys: BTreeMap<Bytes, KeyValue>,
}

impl Model {
    /// The answer a range over `[key, end)` (or `key` alone) with `limit` gives: keys, count,
    /// more.
    fn range(&self, key: &Bytes, end: &Bytes, limit: i64) -> (Vec<KeyValue>, i64, bool) {
        let all: Vec<&KeyValue> = if end.is_empty() {
            self.keys.get(key).into_iter().collect()
        } else if key.as_ref() > end.as_ref() {
            Vec::new()
        } else {
            self.keys
                .range(key.clone()..end.clone())
                .map(|(_, v)| v)
                .collect()
        };
        let count = all.len() as i64;
        let take = if limit > 0 { limit as usize } else { all.len() };
        let kvs = all.into_iter().take(take).cloned().collect();
        (kvs, count, limit > 0 && count > limit)
    }
}

/// Everything the run produced, checked against the recorder's history.
struct Check<'a> {
    history: &'a [Seen],
    writes: Vec<Write>,
    reads: Vec<Read>,
    compacted: Vec<CompactedRead>,
    grants: HashMap<i64, u64>,
    compactions: Vec<(i64, u64)>,
    last: i64,
}

impl Check<'_> {
    /// Replays the history; returns the anomalies and the final state.
    fn run(mut self) -> (Vec<String>, BTreeMap<Bytes, KeyValue>) {
        let mut bad = Vec::new();
        let mut model = Model::default();
        let by_value: HashMap<Bytes, usize> = self
            .writes
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.value.clone().map(|v| (v, i)))
            .collect();
        let mut applied: Vec<Option<i64>> = vec![None; self.writes.len()];
        self.reads.sort_by_key(|r| r.at);
        let mut next_read = 0;
        let mut check_reads = |model: &Model, rev: i64, bad: &mut Vec<String>| {
            while next_read < self.reads.len() && self.reads[next_read].at <= rev {
                let r = &self.reads[next_read];
                next_read += 1;
                if r.at < rev || r.header < r.at {
                    bad.push(format!(
                        "{}: read at {} with header revision {}",
                        r.what, r.at, r.header
                    ));
                    continue;
                }
                let (kvs, count, more) = model.range(&r.key, &r.end, r.limit);
                let kvs = if r.count_only { Vec::new() } else { kvs };
                if r.kvs != kvs || r.count != count || r.more != more {
                    bad.push(format!(
                        "{}: at revision {} answered {} keys (count {}, more {}): {:?}; the \
                         history has {} (count {count}, more {more}): {:?}",
                        r.what,
                        r.at,
                        r.kvs.len(),
                        r.count,
                        r.more,
                        r.kvs.iter().map(|kv| text(&kv.key)).collect::<Vec<_>>(),
                        kvs.len(),
                        kvs.iter().map(|kv| text(&kv.key)).collect::<Vec<_>>()
                    ));
                }
                if let Some(cmp) = r.not {
                    if cmp.holds(model.keys.get(&r.key)) {
                        bad.push(format!("{}: failed, but {cmp:?} held at {}", r.what, r.at));
                    }
                }
            }
        };
        check_reads(&model, 1, &mut bad);
        let mut ended: std::collections::HashSet<i64> = Default::default();
        let mut i = 0;
        for rev in 2..=self.last {
            let from = i;
            while i < self.history.len() && rev_of(&self.history[i].0) == rev {
                i += 1;
            }
            if from == i {
                bad.push(format!(
                    "revision {rev} is missing from the recorded history"
                ));
                continue;
            }
            let mut expired: Vec<i64> = Vec::new();
            for (e, seen) in &self.history[from..i] {
                let kv = e.kv.clone().unwrap_or_default();
                let before = model.keys.get(&kv.key).cloned();
                if e.prev_kv != before {
                    bad.push(format!(
                        "revision {rev}: the event on {} has prev_kv {:?}, the history {:?}",
                        text(&kv.key),
                        e.prev_kv,
                        before
                    ));
                }
                if e.r#type == 0 {
                    let Some(&w) = by_value.get(&kv.value) else {
                        bad.push(format!(
                            "revision {rev}: {}={} was written by nobody",
                            text(&kv.key),
                            text(&kv.value)
                        ));
                        model.keys.insert(kv.key.clone(), kv);
                        continue;
                    };
                    let write = &self.writes[w];
                    if applied[w].replace(rev).is_some() {
                        bad.push(format!("revision {rev}: {write:?} applied twice"));
                    }
                    if write.failed || write.acked.is_some_and(|a| a != rev) {
                        bad.push(format!("revision {rev}: applied, but answered: {write:?}"));
                    }
                    if write.lease != 0 && ended.contains(&write.lease) {
                        bad.push(format!(
                            "revision {rev}: {write:?} applied with a lease that had ended"
                        ));
                    }
                    if !write.cmp.holds(before.as_ref()) {
                        bad.push(format!(
                            "revision {rev}: {write:?} applied though its compare did not hold \
                             ({before:?})"
                        ));
                    }
                    let want = KeyValue {
                        key: write.key.clone(),
                        create_revision: before.as_ref().map_or(rev, |b| b.create_revision),
                        mod_revision: rev,
                        version: before.as_ref().map_or(1, |b| b.version + 1),
                        value: kv.value.clone(),
                        lease: write.lease,
                    };
                    if kv != want {
                        bad.push(format!("revision {rev}: put {kv:?}, the model {want:?}"));
                    }
                    model.keys.insert(kv.key.clone(), want);
                    continue;
                }
                // A delete: a client's txn, or its lease ended.
                let Some(before) = before else {
                    bad.push(format!("revision {rev}: deleted {}, absent", text(&kv.key)));
                    continue;
                };
                model.keys.remove(&kv.key);
                let mine = |w: &Write| w.value.is_none() && w.key == kv.key;
                let acked = self
                    .writes
                    .iter()
                    .position(|w| mine(w) && w.acked == Some(rev));
                let guess = acked.or_else(|| {
                    (0..self.writes.len()).find(|&j| {
                        let w = &self.writes[j];
                        mine(w)
                            && w.acked.is_none()
                            && !w.failed
                            && applied[j].is_none()
                            && w.cmp.holds(Some(&before))
                    })
                });
                if let Some(j) = guess {
                    applied[j] = Some(rev);
                    if !self.writes[j].cmp.holds(Some(&before)) {
                        bad.push(format!(
                            "revision {rev}: {:?} applied though its compare did not hold \
                             ({before:?})",
                            self.writes[j]
                        ));
                    }
                } else if before.lease != 0 {
                    if let Some(&sent) = self.grants.get(&before.lease) {
                        if *seen < sent + EVENT_TTL as u64 * 1_000_000_000 {
                            bad.push(format!(
                                "revision {rev}: {} went with lease {:x} {:.3}s after its \
                                 grant was sent, before its TTL",
                                text(&kv.key),
                                before.lease,
                                (*seen - sent) as f64 / 1e9
                            ));
                        }
                    }
                    expired.push(before.lease);
                } else {
                    bad.push(format!(
                        "revision {rev}: {} deleted by nobody",
                        text(&kv.key)
                    ));
                }
            }
            for lease in expired {
                ended.insert(lease);
                if let Some((k, _)) = model.keys.iter().find(|(_, kv)| kv.lease == lease) {
                    bad.push(format!(
                        "revision {rev}: lease {lease:x} ended, but its key {} stayed",
                        text(k)
                    ));
                }
            }
            check_reads(&model, rev, &mut bad);
        }
        if i < self.history.len() {
            bad.push(format!(
                "the recorded history goes past revision {}: {:?}",
                self.last, self.history[i]
            ));
        }
        check_reads(&model, i64::MAX, &mut bad);
        // Every acknowledged write is in the history, where its answer said.
        for (j, w) in self.writes.iter().enumerate() {
            if w.acked.is_some() && applied[j] != w.acked {
                bad.push(format!(
                    "acknowledged write lost: {w:?} (applied at {:?})",
                    applied[j]
                ));
            }
        }
        // A read refused as compacted came after a compaction above its revision was sent.
        for r in &self.compacted {
            if !self
                .compactions
                .iter()
                .any(|&(c, sent)| c > r.at && sent < r.ret)
            {
                bad.push(format!(
                    "{}: compacted, though no compaction covered it",
                    r.what
                ));
            }
        }
        bad.extend(self.real_time(&applied));
        (bad, model.keys)
    }

    /// Revisions against real time: an operation's revision is at least (a write's: above)
    /// the revision of every answer received before it was sent.
    fn real_time(&self, applied: &[Option<i64>]) -> Vec<String> {
        // (sent, answered, revision, is a write, what)
        let mut ops: Vec<(u64, u64, i64, bool, String)> = Vec::new();
        for (w, rev) in self.writes.iter().zip(applied) {
            if let Some(rev) = rev {
                ops.push((w.call, w.ret, *rev, true, format!("{w:?}")));
            }
        }
        for r in self.reads.iter().filter(|r| r.linear) {
            ops.push((r.call, r.ret, r.header, false, r.what.clone()));
        }
        let mut by_ret: Vec<(u64, i64)> = ops.iter().map(|o| (o.1, o.2)).collect();
        by_ret.sort();
        ops.sort_by_key(|o| o.0);
        let mut bad = Vec::new();
        let (mut j, mut seen) = (0, 0);
        for (call, _, rev, write, what) in &ops {
            while j < by_ret.len() && by_ret[j].0 < *call {
                seen = seen.max(by_ret[j].1);
                j += 1;
            }
            if *rev < seen || (*write && *rev == seen) {
                bad.push(format!(
                    "{what} at revision {rev}, though revision {seen} had been answered \
                     before it was sent"
                ));
            }
        }
        bad
    }
}

fn rev_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// A linearizable read of every key, through any member that answers: its revision.
fn current_revision(addrs: &[String]) -> i64 {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let deadline = Instant::now() + FINAL_CONVERGE;
    rt.block_on(async {
        loop {
            for ch in &chans {
                let mut kv = KvClient::new(ch.clone());
                let r = kv.range(RangeRequest {
                    key: b("\0"),
                    range_end: b("\0"),
                    count_only: true,
                    ..Default::default()
                });
                if let Ok(Ok(r)) = tokio::time::timeout(OP_TIMEOUT, r).await {
                    return r.into_inner().header.map_or(0, |h| h.revision);
                }
            }
            assert!(Instant::now() < deadline, "no member answered a read");
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
}

/// Waits until no key under `/registry/events/` is left (their leases end).
fn events_gone(addrs: &[String]) -> bool {
    let rt = runtime();
    let _in_runtime = rt.enter();
    let chans = channels(addrs);
    let deadline = Instant::now() + Duration::from_secs(EVENT_TTL as u64) + FINAL_CONVERGE;
    rt.block_on(async {
        while Instant::now() < deadline {
            let mut kv = KvClient::new(chans[0].clone());
            let r = kv.range(RangeRequest {
                key: b("/registry/events/"),
                range_end: prefix_end("/registry/events/"),
                count_only: true,
                ..Default::default()
            });
            if let Ok(Ok(r)) = tokio::time::timeout(OP_TIMEOUT, r).await {
                if r.into_inner().count == 0 {
                    return true;
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        false
    })
}

/// How a prefix watcher's events differ from the recorder's history under `/registry/`
/// (nothing: exactly the same events, in the same order).
fn watch_difference(n: usize, seen: &[Seen], history: &[Seen]) -> Option<String> {
    let expected: Vec<&Event> = history
        .iter()
        .map(|(e, _)| e)
        .filter(|e| {
            e.kv.as_ref()
                .is_some_and(|kv| kv.key.starts_with(b"/registry/"))
        })
        .collect();
    let seen: Vec<&Event> = seen.iter().map(|(e, _)| e).collect();
    if seen == expected {
        return None;
    }
    let at = seen
        .iter()
        .zip(&expected)
        .position(|(a, b)| a != b)
        .unwrap_or(seen.len().min(expected.len()));
    Some(format!(
        "watcher {n} saw {} events, the history has {} under /registry/; first difference at \
         {at}: {:?} against {:?}",
        seen.len(),
        expected.len(),
        seen.get(at),
        expected.get(at)
    ))
}

/// Runs the workload on `c` while `faults` injects faults until its `until` and heals them
/// (returning how many it injected); then checks everything (see the module's doc).
pub(super) fn fault_run(
    what: &str,
    mut c: Cluster,
    faults: impl FnOnce(&mut Cluster, &mut Rng, Instant, Instant, &FaultLog) -> u64,
) {
    let seed = seed_from_env_or_clock();
    let secs = fault_secs();
    eprintln!("{what}: seed {seed} (ETCD_FAULT_SEED={seed} replays it), {secs} s");
    let addrs = client_addrs(&c);
    let log = FaultLog::default();
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let last = Arc::new(AtomicI64::new(0));
    let deadline = Arc::new(Mutex::new(None));
    // The recorder (the whole keyspace) and the prefix watchers.
    let reached: Vec<Arc<AtomicI64>> = (0..=WATCHERS)
        .map(|_| Arc::new(AtomicI64::new(0)))
        .collect();
    let watchers: Vec<_> = (0..=WATCHERS)
        .map(|n| {
            let (addrs, last, deadline) = (addrs.clone(), last.clone(), deadline.clone());
            let reached = reached[n].clone();
            let (key, end) = if n == 0 {
                (b("\0"), b("\0"))
            } else {
                (b("/registry/"), prefix_end("/registry/"))
            };
            thread::Builder::new()
                .name(format!("k8swatch{n}"))
                .spawn(move || run_watcher(n, &addrs, key, end, start, &reached, &last, &deadline))
                .expect("spawn a watcher")
        })
        .collect();
    let mut clients: Vec<_> = (0..K8S_CLIENTS)
        .map(|id| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("k8sclient{id}"))
                .spawn(move || run_client(id, &addrs, seed, start, until, &stop))
                .expect("spawn a client")
        })
        .collect();
    clients.push({
        let (addrs, stop, reached) = (addrs.clone(), stop.clone(), reached.clone());
        thread::Builder::new()
            .name("k8scompactor".into())
            .spawn(move || run_compactor(&addrs, seed, start, until, &stop, &reached))
            .expect("spawn the compactor")
    });

    let mut rng = Rng::new(seed ^ 0x0123_4567_89AB_CDEF);
    let faults = faults(&mut c, &mut rng, start, until, &log);
    let mut all = ClientLog::default();
    for h in clients {
        let l = h.join().expect("a client panicked");
        all.writes.extend(l.writes);
        all.reads.extend(l.reads);
        all.compacted.extend(l.compacted);
        all.grants.extend(l.grants);
        all.compactions.extend(l.compactions);
        all.anomalies.extend(l.anomalies);
        all.answered += l.answered;
        all.unknown += l.unknown;
    }
    drop(stop_guard);
    let ops_done = start.elapsed();

    // The events' leases end; then every member reaches the last revision, and so must every
    // watcher.
    assert!(
        events_gone(&addrs),
        "lease-bound events outlived their leases (seed {seed})"
    );
    let final_rev = current_revision(&addrs);
    let state = v3::converge_range(&addrs, final_rev, b("\0"), b("\0"));
    last.store(final_rev, Ordering::SeqCst);
    *deadline.lock().expect("deadline") = Some(Instant::now() + FINAL_CONVERGE);
    let mut watched: Vec<Watched> = watchers
        .into_iter()
        .map(|h| h.join().expect("a watcher panicked"))
        .collect();
    let recorder = watched.remove(0);
    let mut anomalies = all.anomalies;
    anomalies.extend(recorder.anomalies.iter().cloned());
    let (bad, model) = Check {
        history: &recorder.events,
        writes: all.writes,
        reads: all.reads,
        compacted: all.compacted,
        grants: all.grants.iter().copied().collect(),
        compactions: all.compactions.clone(),
        last: final_rev,
    }
    .run();
    anomalies.extend(bad);
    let model: BTreeMap<String, String> = model
        .values()
        .map(|kv| (text(&kv.key), text(&kv.value)))
        .collect();
    if model != state {
        anomalies.push(format!(
            "the members hold {state:?}, the history ends with {model:?}"
        ));
    }
    for (n, w) in watched.iter().enumerate() {
        anomalies.extend(w.anomalies.iter().cloned());
        anomalies.extend(watch_difference(n + 1, &w.events, &recorder.events));
    }
    c.check_alive();
    let compactions = all.compactions.len();
    let summary = format!(
        "{} answers, {} unknown, in {:.1}s; {final_rev} revisions; {} watch \
         streams, {} progress answers; {compactions} compactions; {} lease grants; faults \
         {faults}",
        all.answered,
        all.unknown,
        ops_done.as_secs_f64(),
        watched.iter().map(|w| w.streams).sum::<u64>() + recorder.streams,
        watched.iter().map(|w| w.progress_answers).sum::<u64>() + recorder.progress_answers,
        all.grants.len()
    );
    eprintln!("{what} summary: {summary}");
    assert!(
        anomalies.is_empty(),
        "{what}: {} anomalies (seed {seed}; {summary}):\n{}\nfaults:\n{}",
        anomalies.len(),
        anomalies
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        log.dump()
    );
    assert!(
        all.answered >= 200 && final_rev >= 100 && compactions >= 3,
        "{what}: too little happened to mean anything ({summary})"
    );
    assert!(faults >= 4, "only {faults} {what} injected");
}

/// The checker on a small history written by hand: it accepts the true one and rejects each
/// kind of tampering (a test that cannot fail would prove nothing about the server).
mod checker {
    use super::*;

    const A: &str = "/registry/pods/ns0/pod0";
    const E: &str = "/registry/events/ns0/c0-9";
    const LEASE: i64 = 0x77;
    const SEC: u64 = 1_000_000_000;

    fn kv(key: &str, value: &str, create: i64, rev: i64, version: i64, lease: i64) -> KeyValue {
        KeyValue {
            key: b(key),
            create_revision: create,
            mod_revision: rev,
            version,
            value: b(value),
            lease,
        }
    }

    fn put(kv: KeyValue, prev: Option<KeyValue>, at: u64) -> Seen {
        let e = Event {
            r#type: 0,
            kv: Some(kv),
            prev_kv: prev,
        };
        (e, at)
    }

    fn delete(key: &str, rev: i64, prev: KeyValue, at: u64) -> Seen {
        let e = Event {
            r#type: 1,
            kv: Some(KeyValue {
                key: b(key),
                mod_revision: rev,
                ..Default::default()
            }),
            prev_kv: Some(prev),
        };
        (e, at)
    }

    fn write(key: &str, value: Option<&str>, cmp: Cmp, lease: i64, t: u64, rev: i64) -> Write {
        Write {
            key: b(key),
            value: value.map(b),
            cmp,
            lease,
            call: t,
            ret: t + 5,
            acked: Some(rev),
            failed: false,
        }
    }

    fn get(key: &str, header: i64, kvs: Vec<KeyValue>, t: u64) -> Read {
        Read {
            what: format!("get {key} at {header}"),
            at: header,
            header,
            key: b(key),
            end: Bytes::new(),
            limit: 0,
            count_only: false,
            count: kvs.len() as i64,
            kvs,
            more: false,
            not: None,
            linear: true,
            call: t,
            ret: t + 5,
        }
    }

    /// Revisions 2..=6: create A, an event on a lease, update A, delete A, the lease ends;
    /// reads between them; a list and a failed txn.
    struct Case {
        history: Vec<Seen>,
        writes: Vec<Write>,
        reads: Vec<Read>,
        compacted: Vec<CompactedRead>,
        compactions: Vec<(i64, u64)>,
    }

    fn truth() -> Case {
        let a2 = kv(A, "pod-c0-1", 2, 2, 1, 0);
        let e3 = kv(E, "event-c0-9", 3, 3, 1, LEASE);
        let a4 = kv(A, "status-c1-2", 2, 4, 2, 0);
        Case {
            history: vec![
                put(a2.clone(), None, 11),
                put(e3.clone(), None, 21),
                put(a4.clone(), Some(a2.clone()), 31),
                delete(A, 5, a4.clone(), 41),
                delete(E, 6, e3.clone(), 3 * SEC),
            ],
            writes: vec![
                write(A, Some("pod-c0-1"), Cmp::Mod(0), 0, 5, 2),
                write(E, Some("event-c0-9"), Cmp::Mod(0), LEASE, 15, 3),
                write(A, Some("status-c1-2"), Cmp::Mod(2), 0, 25, 4),
                write(A, None, Cmp::Mod(4), 0, 35, 5),
            ],
            reads: vec![
                get(A, 2, vec![a2.clone()], 12),
                get(A, 4, vec![a4.clone()], 32),
                get(A, 5, vec![], 42),
                Read {
                    what: "a list of /registry/ at 3, one page of 1".into(),
                    at: 3,
                    header: 5,
                    key: b("/registry/"),
                    end: prefix_end("/registry/"),
                    limit: 1,
                    count_only: false,
                    kvs: vec![e3.clone()],
                    count: 2,
                    more: true,
                    not: None,
                    linear: true,
                    call: 43,
                    ret: 44,
                },
                Read {
                    not: Some(Cmp::Mod(2)),
                    ..get(A, 4, vec![a4], 33)
                },
            ],
            compacted: vec![CompactedRead {
                what: "a list at 2".into(),
                at: 2,
                ret: 60,
            }],
            compactions: vec![(3, 50)],
        }
    }

    fn anomalies(case: Case) -> Vec<String> {
        let check = Check {
            history: &case.history,
            writes: case.writes,
            reads: case.reads,
            compacted: case.compacted,
            grants: [(LEASE, 14)].into_iter().collect(),
            compactions: case.compactions,
            last: 6,
        };
        check.run().0
    }

    #[test]
    fn the_kubernetes_checker_accepts_a_true_history() {
        assert_eq!(anomalies(truth()), Vec::<String>::new());
    }

    #[test]
    fn the_kubernetes_checker_rejects_every_kind_of_tampering() {
        type Tampering = (&'static str, fn(&mut Case));
        let tamperings: Vec<Tampering> = vec![
            ("a revision missing", |c| {
                c.history.remove(2);
            }),
            ("an acknowledged write lost", |c| {
                c.writes[2].acked = Some(7)
            }),
            ("a failed write applied", |c| c.writes[2].failed = true),
            ("a compare that did not hold", |c| {
                c.writes[3].cmp = Cmp::Mod(2)
            }),
            ("a value nobody wrote", |c| {
                c.history[0].0.kv.as_mut().unwrap().value = b("pod-c9-9")
            }),
            ("a wrong version", |c| {
                c.history[2].0.kv.as_mut().unwrap().version = 1
            }),
            ("a wrong prev_kv", |c| c.history[2].0.prev_kv = None),
            ("a stale read", |c| {
                c.reads[1] = get(A, 2, vec![kv(A, "pod-c0-1", 2, 2, 1, 0)], 32)
            }),
            ("a wrong answer", |c| {
                c.reads[2].kvs = c.reads[1].kvs.clone()
            }),
            ("a wrong page", |c| c.reads[3].more = false),
            ("a wrong count", |c| c.reads[3].count = 1),
            ("a failed txn whose compare held", |c| {
                c.reads[4].not = Some(Cmp::Mod(4))
            }),
            ("a write back in time", |c| {
                c.writes[3].call = 50;
                c.writes[3].ret = 55;
                c.reads[3].call = 45;
                c.reads[3].ret = 46;
                c.writes[2].call = 47;
            }),
            ("a lease ended early", |c| c.history[4].1 = SEC),
            ("a delete by nobody", |c| {
                c.writes.remove(3);
            }),
            ("a compacted read before any compaction", |c| {
                c.compactions[0].1 = 70
            }),
            ("a read past the end", |c| c.reads[2].at = 7),
        ];
        for (what, tamper) in tamperings {
            let mut case = truth();
            tamper(&mut case);
            assert!(!anomalies(case).is_empty(), "{what}: not caught");
        }
    }

    #[test]
    fn a_watcher_that_missed_repeated_or_reordered_an_event_is_caught() {
        let history = truth().history;
        let registry: Vec<Seen> = history.clone();
        assert_eq!(watch_difference(1, &registry, &history), None);
        let mut missed = registry.clone();
        missed.remove(1);
        let mut repeated = registry.clone();
        repeated.insert(1, registry[1].clone());
        let mut reordered = registry.clone();
        reordered.swap(1, 2);
        for seen in [missed, repeated, reordered] {
            assert!(watch_difference(1, &seen, &history).is_some());
        }
    }
}
