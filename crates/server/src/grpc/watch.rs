//! The Watch service: many watches over one bidirectional stream (etcd 3.4
//! `v3rpc/watch.go`).
//!
//! Each stream has one bounded outgoing queue and one task. The task reads the client's
//! requests (create, cancel, progress) and catches up the stream's watchers that are behind;
//! the raft driver offers each applied revision's events to the synced ones through
//! [`StreamSink`], which never waits: when the queue is full the watcher becomes unsynced and
//! the task catches it up from the keyspace's history at the client's pace (so a slow client
//! never holds up writes, and loses nothing).
//!
//! Ordering: a create is answered before the watcher is registered, so its events follow the
//! answer; a watcher is offered live events only once its catch-up reached the last revision
//! notified (see `etcd_mvcc::Watchers`); a progress answer is queued under the registry's
//! lock, after every event up to the revision it reports.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_mvcc::{WatchSink, WatchSpec};
use etcd_v3proto::etcdserverpb::watch_create_request::FilterType;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::watch_server;
use etcd_v3proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse};
use etcd_v3proto::mvccpb::Event;
use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use tokio::sync::{mpsc, Notify};
use tonic::{Request, Response, Status, Streaming};

use etcd_api::v3::V3Error;

use super::error::status;
use super::Ctx;

/// Responses queued per stream before its watchers start falling behind.
const STREAM_QUEUE: usize = 1024;
/// Most revisions in one catch-up response (etcd's batch).
const REVISIONS_PER_BATCH: usize = 1000;
/// How often a stream opened with `hasleader` checks that there still is a leader.
const LEADER_CHECK: Duration = Duration::from_millis(500);

/// What a watch stream carries out: responses, or the error that ends it.
pub(super) type Out = Result<WatchResponse, Status>;

/// The Watch service.
pub struct Watch(pub Arc<Ctx>);

/// What a stream's responses need in their header.
#[derive(Clone)]
struct Headers {
    ctx: Arc<Ctx>,
    cluster_id: u64,
}

impl Headers {
    fn at(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.ctx.node.id(),
            revision,
            raft_term: self.ctx.node.term(),
        })
    }
}

/// The driver's way into one stream: offers never wait.
struct StreamSink {
    tx: mpsc::Sender<Out>,
    headers: Headers,
    wake: Arc<Notify>,
    fragment: bool,
}

impl WatchSink for StreamSink {
    fn offer(&self, watch_id: i64, revision: i64, events: Vec<Event>) -> bool {
        let resp = WatchResponse {
            header: self.headers.at(revision),
            watch_id,
            events,
            ..Default::default()
        };
        let parts = fragments(resp, self.fragment, self.headers.ctx.max_request_bytes);
        match self.tx.try_reserve_many(parts.len()) {
            Ok(permits) => {
                for (permit, part) in permits.zip(parts) {
                    permit.send(Ok(part));
                }
                true
            }
            Err(_) => false,
        }
    }

    fn fell_behind(&self) {
        tracing::debug!("a watcher fell behind its stream; catching up from history");
        self.wake.notify_one();
    }
}

/// Splits a response whose encoding exceeds `limit` into parts of whole events, all but the
/// last marked `fragment` (only for watchers that asked for it).
fn fragments(resp: WatchResponse, fragment: bool, limit: usize) -> Vec<WatchResponse> {
    if !fragment || resp.encoded_len() <= limit || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut parts = Vec::new();
    let mut current = WatchResponse {
        events: Vec::new(),
        ..resp.clone()
    };
    let mut size = 0;
    for event in resp.events {
        let len = event.encoded_len() + 8;
        if !current.events.is_empty() && size + len > limit {
            let next = WatchResponse {
                events: Vec::new(),
                ..current.clone()
            };
            parts.push(std::mem::replace(&mut current, next));
            size = 0;
        }
        size += len;
        current.events.push(event);
    }
    parts.push(current);
    let last = parts.len() - 1;
    for (i, p) in parts.iter_mut().enumerate() {
        p.fragment = i < last;
    }
    parts
}

/// One of a stream's watchers.
struct Entry {
    id: u64,
    spec: WatchSpec,
    fragment: bool,
    progress: bool,
}

/// A watch stream's task. See the module docs.
struct StreamTask {
    /// What the stream's request carried to say who sent it: each watch created is checked
    /// for READ on its range (etcd checks at creation only).
    credentials: super::caller::Credentials,
    headers: Headers,
    tx: mpsc::Sender<Out>,
    wake: Arc<Notify>,
    watches: HashMap<i64, Entry>,
    next_watch_id: i64,
    progress_wanted: bool,
}

#[tonic::async_trait]
impl watch_server::Watch for Watch {
    type WatchStream = Pin<Box<dyn Stream<Item = Out> + Send + 'static>>;

    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let ctx = self.0.clone();
        let require_leader = super::wants_leader(&req);
        if require_leader && ctx.node.leader_id().is_none() {
            return Err(status(etcd_api::v3::V3Error::NoLeader));
        }
        let credentials = super::caller::Credentials::of(&req);
        let rx = open(ctx, req.into_inner(), require_leader, credentials);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Starts a watch stream's task on `incoming` requests; its responses come out of the
/// receiver (and the stream ends when the receiver is dropped, or `incoming` ends). The
/// Watch service's streams and the services' own watches (see `local.rs`) are both this.
pub(super) fn open(
    ctx: Arc<Ctx>,
    incoming: impl Stream<Item = Result<WatchRequest, Status>> + Unpin + Send + 'static,
    require_leader: bool,
    credentials: super::caller::Credentials,
) -> mpsc::Receiver<Out> {
    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
    let task = StreamTask {
        credentials,
        headers: Headers {
            cluster_id: ctx.cluster_id(),
            ctx,
        },
        tx,
        wake: Arc::new(Notify::new()),
        watches: HashMap::new(),
        next_watch_id: 0,
        progress_wanted: false,
    };
    tokio::spawn(task.run(incoming, require_leader));
    rx
}

impl StreamTask {
    /// Answers a watch creation refused for `reason`: created and canceled at once, with no
    /// watch id (etcd's answer).
    async fn refuse_create(&mut self, revision: i64, reason: String) -> bool {
        self.send(WatchResponse {
            header: self.headers.at(revision),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        })
        .await
    }

    /// Whether the stream's caller may read what `c` watches.
    async fn permitted(&self, c: &WatchCreateRequest) -> Result<(), V3Error> {
        let ctx = &self.headers.ctx;
        let caller = ctx.caller_of(&self.credentials).await?;
        let check = etcd_store::ReadCheck::Range(&c.key, &c.range_end);
        ctx.node.read(|s| s.check_read(caller.who(), &check))
    }

    async fn run(
        mut self,
        mut incoming: impl Stream<Item = Result<WatchRequest, Status>> + Unpin,
        require_leader: bool,
    ) {
        let mut progress = tokio::time::interval(self.headers.ctx.progress_interval);
        progress.tick().await;
        let mut leader_check = tokio::time::interval(LEADER_CHECK);
        let mut stopping = self.headers.ctx.stopping.clone();
        loop {
            tokio::select! {
                _ = async { drop(stopping.wait_for(|s| *s).await) } => {
                    let _ = self.tx.send(Err(status(etcd_api::v3::V3Error::Stopped))).await;
                    break;
                }
                msg = incoming.next() => match msg {
                    Some(Ok(req)) => {
                        if !self.handle(req).await {
                            break;
                        }
                    }
                    // The client closed its side or went away.
                    None | Some(Err(_)) => break,
                },
                _ = self.wake.notified() => {
                    if !self.catch_up_all().await {
                        break;
                    }
                }
                _ = progress.tick() => self.notify_progress(),
                _ = leader_check.tick(), if require_leader => {
                    if self.headers.ctx.node.leader_id().is_none() {
                        let _ = self.tx.send(Err(status(etcd_api::v3::V3Error::NoLeader))).await;
                        break;
                    }
                }
                _ = self.tx.closed() => break,
            }
        }
        let ids: Vec<u64> = self.watches.values().map(|e| e.id).collect();
        self.headers.ctx.node.v3_watchers(|w| {
            for id in ids {
                w.remove(id);
            }
        });
    }

    /// Handles one client request; false when the stream is gone.
    async fn handle(&mut self, req: WatchRequest) -> bool {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                let Some(entry) = self.watches.remove(&c.watch_id) else {
                    // Unknown ids are ignored, as etcd does.
                    return true;
                };
                self.headers.ctx.node.v3_watchers(|w| w.remove(entry.id));
                let revision = self.current_revision();
                self.send(WatchResponse {
                    header: self.headers.at(revision),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                self.progress_wanted = true;
                self.answer_progress();
                true
            }
            None => true,
        }
    }

    async fn create(&mut self, c: WatchCreateRequest) -> bool {
        let revision = self.current_revision();
        if let Err(e) = self.permitted(&c).await {
            // etcd's reasons: the token's, the revision's, the missing user's, or else
            // permission denied.
            let reason = match e {
                V3Error::InvalidAuthToken | V3Error::AuthOldRevision | V3Error::UserEmpty => e,
                _ => V3Error::PermissionDenied,
            };
            // The text of a Go gRPC status error, as etcd puts it.
            let code = crate::metrics::grpc_code_name(reason.code() as i32);
            let why = format!("rpc error: code = {code} desc = {reason}");
            return self.refuse_create(revision, why).await;
        }
        let mut watch_id = c.watch_id;
        let duplicate = watch_id != 0 && self.watches.contains_key(&watch_id);
        if duplicate {
            let why = "mvcc: duplicate watch ID provided on the WatchStream".to_string();
            return self.refuse_create(revision, why).await;
        }
        if watch_id == 0 {
            while self.watches.contains_key(&self.next_watch_id) {
                self.next_watch_id += 1;
            }
            watch_id = self.next_watch_id;
            self.next_watch_id += 1;
        }
        // etcd's rules: an empty key is "\0"; a range end "\0" means every key from the key on.
        let key = if c.key.is_empty() {
            bytes::Bytes::from_static(b"\0")
        } else {
            c.key.clone()
        };
        let spec = WatchSpec {
            key,
            range_end: c.range_end.clone(),
            prev_kv: c.prev_kv,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        };
        let start = if c.start_revision > 0 {
            c.start_revision
        } else {
            revision + 1
        };
        if !self
            .send(WatchResponse {
                header: self.headers.at(revision),
                watch_id,
                created: true,
                ..Default::default()
            })
            .await
        {
            return false;
        }
        let sink = StreamSink {
            tx: self.tx.clone(),
            headers: self.headers.clone(),
            wake: self.wake.clone(),
            fragment: c.fragment,
        };
        let id = self
            .headers
            .ctx
            .node
            .v3_watchers(|w| w.add(spec.clone(), watch_id, start, Box::new(sink)));
        self.watches.insert(
            watch_id,
            Entry {
                id,
                spec,
                fragment: c.fragment,
                progress: c.progress_notify,
            },
        );
        self.catch_up(&[watch_id]).await
    }

    /// Catches up every watcher of this stream that is behind.
    async fn catch_up_all(&mut self) -> bool {
        let mine: Vec<(i64, u64)> = self.watches.iter().map(|(w, e)| (*w, e.id)).collect();
        let behind: Vec<i64> = self.headers.ctx.node.v3_watchers(|w| {
            mine.iter()
                .filter(|(_, id)| w.behind_from(*id).is_some())
                .map(|(watch_id, _)| *watch_id)
                .collect()
        });
        self.catch_up(&behind).await
    }

    /// Catches up the watchers `ids` of this stream while they are behind, until each is
    /// synced (or canceled by a compaction). False when the stream is gone.
    async fn catch_up(&mut self, ids: &[i64]) -> bool {
        for &watch_id in ids {
            while let Some(entry) = self.watches.get(&watch_id) {
                let id = entry.id;
                let Some(from) = self.headers.ctx.node.v3_watchers(|w| w.behind_from(id)) else {
                    break;
                };
                // An O(1) clone, read outside every lock.
                let keyspace = self.headers.ctx.node.read(|s| s.v3().clone());
                let to = keyspace.revision();
                if from < keyspace.compacted() {
                    let entry = self.watches.remove(&watch_id).expect("present");
                    self.headers.ctx.node.v3_watchers(|w| w.remove(entry.id));
                    // etcd's answer carries no revision in its header here.
                    if !self
                        .send(WatchResponse {
                            header: self.headers.at(0),
                            watch_id,
                            compact_revision: keyspace.compacted(),
                            canceled: true,
                            ..Default::default()
                        })
                        .await
                    {
                        return false;
                    }
                    break;
                }
                if from <= to {
                    let spec = entry.spec.clone();
                    let fragment = entry.fragment;
                    let events: Vec<(i64, Event)> = keyspace
                        .events(&spec, from, to)
                        .into_iter()
                        .filter_map(|(rev, e)| spec.sees(&e).map(|e| (rev, e)))
                        .collect();
                    drop(keyspace);
                    for batch in batches(events) {
                        let resp = WatchResponse {
                            header: self.headers.at(to),
                            watch_id,
                            events: batch,
                            ..Default::default()
                        };
                        for part in fragments(resp, fragment, self.headers.ctx.max_request_bytes) {
                            if !self.send(part).await {
                                return false;
                            }
                        }
                    }
                }
                if self.headers.ctx.node.v3_watchers(|w| w.try_sync(id, to)) {
                    break;
                }
            }
        }
        self.answer_progress();
        true
    }

    /// Answers a pending progress request once every watcher of the stream is synced: an
    /// empty response with watch id -1 at the last revision notified, queued under the
    /// registry's lock so that it follows every event up to that revision.
    fn answer_progress(&mut self) {
        if !self.progress_wanted {
            return;
        }
        let ids: Vec<u64> = self.watches.values().map(|e| e.id).collect();
        let headers = self.headers.clone();
        let tx = self.tx.clone();
        let answered = self.headers.ctx.node.v3_watchers(|w| {
            if ids.iter().any(|id| w.behind_from(*id).is_some()) {
                return false;
            }
            tx.try_send(Ok(WatchResponse {
                header: headers.at(w.notified()),
                watch_id: -1,
                ..Default::default()
            }))
            .is_ok()
        });
        if answered {
            self.progress_wanted = false;
        } else if !self.watches.is_empty() {
            // Not synced, or the queue is full: the next catch-up answers it.
            self.wake.notify_one();
        }
    }

    /// Sends a progress notification to each synced watcher that asked for them.
    fn notify_progress(&mut self) {
        let wanted: Vec<(i64, u64)> = self
            .watches
            .iter()
            .filter(|(_, e)| e.progress)
            .map(|(watch_id, e)| (*watch_id, e.id))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let headers = self.headers.clone();
        let tx = self.tx.clone();
        self.headers.ctx.node.v3_watchers(|w| {
            for (watch_id, id) in wanted {
                if w.behind_from(id).is_none() {
                    let _ = tx.try_send(Ok(WatchResponse {
                        header: headers.at(w.notified()),
                        watch_id,
                        ..Default::default()
                    }));
                }
            }
        });
    }

    fn current_revision(&self) -> i64 {
        self.headers.ctx.node.read(|s| s.v3().revision())
    }

    /// Queues a response, waiting for room; false when the client is gone.
    async fn send(&self, resp: WatchResponse) -> bool {
        self.tx.send(Ok(resp)).await.is_ok()
    }
}

/// Splits catch-up events into responses of at most [`REVISIONS_PER_BATCH`] revisions, never
/// splitting a revision.
fn batches(events: Vec<(i64, Event)>) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut revisions = 0;
    let mut last = None;
    for (rev, event) in events {
        if last != Some(rev) {
            revisions += 1;
            last = Some(rev);
            if revisions > REVISIONS_PER_BATCH || out.is_empty() {
                out.push(Vec::new());
                revisions = 1;
            }
        }
        out.last_mut().expect("a batch").push(event);
    }
    out
}
