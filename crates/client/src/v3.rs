//! A client for etcd's v3 API (gRPC), as served by etcd-rs and by etcd: KV, transactions,
//! leases with a keep-alive task, and watches that resume across failures.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcd_client::v3::Error> {
//! use etcd_client::v3::Client;
//!
//! let client = Client::new(["127.0.0.1:2379", "http://127.0.0.1:22379"])?;
//! client.put("greeting", "hello").await?;
//! let got = client.get("greeting").await?;
//! assert_eq!(&got.kvs[0].value[..], b"hello");
//!
//! // A lease kept alive for as long as `keeper` lives, and a key attached to it.
//! let lease = client.lease_grant(10).await?;
//! let keeper = client.keep_alive(lease.id);
//! client.put_with_lease("session", "me", lease.id).await?;
//!
//! // Every change under "jobs/" from revision 1 on, across member failures.
//! let mut watch = client.watch_prefix("jobs/", 1);
//! while let Some(event) = watch.next().await? {
//!     println!("{:?} at {}", event.kv.as_ref().map(|kv| &kv.key), event.kv.as_ref().map_or(0, |kv| kv.mod_revision));
//! }
//! # drop(keeper);
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints, failover and retries
//!
//! The client holds the members' client URLs (`HOST:PORT` gets `http://`) and talks to one
//! at a time. A call that fails for want of that member is sent to the next, by etcd's
//! client rules:
//! - reads (Range, lease TimeToLive and Leases) are sent again on `Unavailable`, whatever
//!   caused it: the member is stopping, has no leader, or cannot be reached;
//! - writes (Put, DeleteRange, Txn, Compact, lease Grant and Revoke) are sent again only when
//!   they provably did not reach a member (the connection could not be made, or the member
//!   refused the stream unread when it stopped), so a write is never applied twice;
//! - every other error is the member's answer and is returned as [`Error::Status`].
//!
//! Once every endpoint has failed a call in a row, the call fails with
//! [`Error::Unavailable`].
//!
//! # Watches
//!
//! [`Client::watch`] returns a [`Watch`] that follows the key (or range) from a revision on.
//! When its stream breaks (the member stops, loses its leader, or cannot be reached), it
//! watches again on the next member from the revision after the last event it delivered: no
//! event is lost or delivered twice. If that revision has been compacted away, the watch ends
//! with [`Error::Compacted`].
//!
//! # Leases
//!
//! [`Client::keep_alive`] starts a task that renews a lease at a third of its TTL, moving to
//! the next member on failure, until the returned [`KeepAlive`] is dropped or the lease is
//! gone.
//!
//! Not here (yet): TLS, auth, Lock, Election, Cluster and Maintenance calls (the generated
//! clients in `etcd_v3proto` serve those meanwhile).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use etcd_v3proto::mvccpb::Event;
use futures_util::StreamExt as _;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause before going round the endpoints again once all have failed.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint that is not a URL or `HOST:PORT`.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// No member could serve the call: every endpoint failed in a row (the last failure).
    #[error("no member available: {0}")]
    Unavailable(String),
    /// A member's answer.
    #[error("{}", .0.message())]
    Status(Status),
    /// A watch's next revision was compacted away; the oldest revision left.
    #[error("required revision has been compacted (oldest left: {compact_revision})")]
    Compacted {
        /// The compaction revision the member reported.
        compact_revision: i64,
    },
}

/// Whether a failed call is sent again to another member.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Retry {
    /// A read: on any `Unavailable`.
    Read,
    /// A write: only when it provably reached no member.
    Write,
}

/// Whether `status` says the call reached no member (the connection failed, or a stopping
/// member refused the stream unread).
fn not_delivered(status: &Status) -> bool {
    let transport = std::error::Error::source(status).is_some();
    transport
        && matches!(
            status.code(),
            Code::Unavailable | Code::Cancelled | Code::Internal | Code::Unknown
        )
}

fn retryable(retry: Retry, status: &Status) -> bool {
    match retry {
        Retry::Read => status.code() == Code::Unavailable || not_delivered(status),
        Retry::Write => not_delivered(status),
    }
}

/// A v3 client over a list of members. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<Endpoint>,
    /// The endpoint in use.
    current: AtomicUsize,
    /// A connection per endpoint, made when first needed.
    channels: Mutex<Vec<Option<Channel>>>,
}

impl Client {
    /// A client for the members at `endpoints` (`http://HOST:PORT`, or `HOST:PORT`). No
    /// connection is made until the first call.
    pub fn new<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for e in endpoints {
            let e = e.as_ref().trim();
            let url = if e.contains("://") {
                e.to_string()
            } else {
                format!("http://{e}")
            };
            if url.starts_with("https://") {
                return Err(Error::InvalidEndpoint(format!(
                    "{e} (TLS is not supported by this client yet)"
                )));
            }
            let endpoint = Endpoint::from_shared(url)
                .map_err(|_| Error::InvalidEndpoint(e.to_string()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            list.push(endpoint);
        }
        if list.is_empty() {
            return Err(Error::InvalidEndpoint("no endpoint given".into()));
        }
        let n = list.len();
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: list,
                current: AtomicUsize::new(0),
                channels: Mutex::new(vec![None; n]),
            }),
        })
    }

    /// The connection to the endpoint in use (made if needed), and its index.
    async fn channel(&self) -> Result<(usize, Channel), Status> {
        let i = self.inner.current.load(Ordering::Acquire) % self.inner.endpoints.len();
        if let Some(ch) = self.inner.channels.lock().expect("channels lock")[i].clone() {
            return Ok((i, ch));
        }
        let ch = self.inner.endpoints[i]
            .connect()
            .await
            .map_err(|e| Status::from_error(Box::new(e)))?;
        self.inner.channels.lock().expect("channels lock")[i] = Some(ch.clone());
        Ok((i, ch))
    }

    /// Moves past endpoint `i` (if it is still the one in use), forgetting its connection.
    fn failed(&self, i: usize) {
        self.inner.channels.lock().expect("channels lock")[i] = None;
        let next = (i + 1) % self.inner.endpoints.len();
        let _ = self
            .inner
            .current
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Runs `call` on the member in use, sending it on to the next by `retry`'s rule, until
    /// every endpoint has failed it in a row.
    async fn call<T, F, Fut>(&self, retry: Retry, call: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let n = self.inner.endpoints.len();
        let mut failures = 0;
        loop {
            let outcome = match self.channel().await {
                Ok((i, ch)) => (i, call(ch).await),
                Err(e) => (self.inner.current.load(Ordering::Acquire) % n, Err(e)),
            };
            match outcome {
                (_, Ok(t)) => return Ok(t),
                (i, Err(status)) if retryable(retry, &status) => {
                    self.failed(i);
                    failures += 1;
                    if failures >= n {
                        return Err(Error::Unavailable(status.message().to_string()));
                    }
                }
                (_, Err(status)) => return Err(Error::Status(status)),
            }
        }
    }

    /// `KV.Range` of one key.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<RangeResponse, Error> {
        self.range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
    }

    /// `KV.Range` as asked (ranges, revisions, limits, sorting, serializable reads).
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, Error> {
        self.call(Retry::Read, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).range(request).await?.into_inner()) }
        })
        .await
    }

    /// `KV.Put` of `value` at `key`.
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<PutResponse, Error> {
        self.put_request(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
        .await
    }

    /// `KV.Put` of `value` at `key`, attached to lease `lease`.
    pub async fn put_with_lease(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        lease: i64,
    ) -> Result<PutResponse, Error> {
        self.put_request(PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        })
        .await
    }

    /// `KV.Put` as asked (`prev_kv`, `ignore_value`, `ignore_lease`).
    pub async fn put_request(&self, request: PutRequest) -> Result<PutResponse, Error> {
        self.call(Retry::Write, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).put(request).await?.into_inner()) }
        })
        .await
    }

    /// `KV.DeleteRange` as asked.
    pub async fn delete(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, Error> {
        self.call(Retry::Write, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).delete_range(request).await?.into_inner()) }
        })
        .await
    }

    /// `KV.Txn`: compares, then the success or the failure operations.
    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, Error> {
        self.call(Retry::Write, |ch| {
            let request = request.clone();
            async move { Ok(KvClient::new(ch).txn(request).await?.into_inner()) }
        })
        .await
    }

    /// `KV.Compact`: forgets the history before `revision`.
    pub async fn compact(&self, revision: i64) -> Result<CompactionResponse, Error> {
        self.call(Retry::Write, |ch| async move {
            let request = CompactionRequest {
                revision,
                physical: false,
            };
            Ok(KvClient::new(ch).compact(request).await?.into_inner())
        })
        .await
    }

    /// `Lease.LeaseGrant` of a lease of `ttl` seconds (id chosen by the cluster).
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(Retry::Write, |ch| async move {
            let request = LeaseGrantRequest { ttl, id: 0 };
            Ok(LeaseClient::new(ch)
                .lease_grant(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// `Lease.LeaseRevoke`: ends lease `id` and deletes its keys.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(Retry::Write, |ch| async move {
            let request = LeaseRevokeRequest { id };
            Ok(LeaseClient::new(ch)
                .lease_revoke(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// `Lease.LeaseTimeToLive` of lease `id` (with its keys if `keys`).
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.call(Retry::Read, |ch| async move {
            let request = LeaseTimeToLiveRequest { id, keys };
            Ok(LeaseClient::new(ch)
                .lease_time_to_live(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// Keeps lease `id` alive until the returned [`KeepAlive`] is dropped (or the lease is
    /// gone): renewed at a third of its TTL, through whichever member serves.
    pub fn keep_alive(&self, id: i64) -> KeepAlive {
        let (tx, rx) = tokio::sync::watch::channel(KeepAliveState::Starting);
        let client = self.clone();
        let task = tokio::spawn(async move { client.keep_alive_loop(id, tx).await });
        KeepAlive { task, state: rx }
    }

    async fn keep_alive_loop(&self, id: i64, state: tokio::sync::watch::Sender<KeepAliveState>) {
        let mut every = Duration::from_millis(500);
        loop {
            let Ok((i, ch)) = self.channel().await else {
                let i = self.inner.current.load(Ordering::Acquire) % self.inner.endpoints.len();
                self.failed(i);
                tokio::time::sleep(ROUND_PAUSE).await;
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<LeaseKeepAliveRequest>(4);
            let requests = tokio_stream_of(rx);
            let _ = tx.try_send(LeaseKeepAliveRequest { id });
            let mut responses = match LeaseClient::new(ch).lease_keep_alive(requests).await {
                Ok(r) => r.into_inner(),
                Err(_) => {
                    self.failed(i);
                    tokio::time::sleep(ROUND_PAUSE).await;
                    continue;
                }
            };
            loop {
                match tokio::time::timeout(every * 2, responses.message()).await {
                    Ok(Ok(Some(r))) if r.ttl <= 0 => {
                        let _ = state.send(KeepAliveState::Gone);
                        return;
                    }
                    Ok(Ok(Some(r))) => {
                        let _ = state.send(KeepAliveState::Alive { ttl: r.ttl });
                        every = Duration::from_millis((r.ttl as u64 * 1000 / 3).max(100));
                        tokio::time::sleep(every).await;
                        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                            break;
                        }
                    }
                    // The stream ended, failed, or went quiet: renew through the next member.
                    _ => break,
                }
            }
            self.failed(i);
        }
    }

    /// Watches `key` from `start_revision` on (0: from now).
    pub fn watch_key(&self, key: impl Into<Bytes>, start_revision: i64) -> Watch {
        self.watch(WatchCreateRequest {
            key: key.into(),
            start_revision,
            ..Default::default()
        })
    }

    /// Watches every key starting with `prefix` from `start_revision` on (0: from now).
    pub fn watch_prefix(&self, prefix: impl Into<Bytes>, start_revision: i64) -> Watch {
        let key: Bytes = prefix.into();
        self.watch(WatchCreateRequest {
            range_end: Bytes::from(prefix_end(&key)),
            key,
            start_revision,
            ..Default::default()
        })
    }

    /// Watches as `request` asks, resuming across member failures (see the module docs).
    /// `prev_kv`, filters and ranges are kept on every resumption.
    pub fn watch(&self, request: WatchCreateRequest) -> Watch {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let client = self.clone();
        let task = tokio::spawn(async move { client.watch_loop(request, tx).await });
        Watch {
            events: rx,
            pending: std::collections::VecDeque::new(),
            task,
        }
    }

    async fn watch_loop(
        &self,
        mut request: WatchCreateRequest,
        out: tokio::sync::mpsc::Sender<Result<Vec<Event>, Error>>,
    ) {
        // The revision the next event must have at least.
        let mut next = request.start_revision;
        loop {
            let Ok((i, ch)) = self.channel().await else {
                let i = self.inner.current.load(Ordering::Acquire) % self.inner.endpoints.len();
                self.failed(i);
                tokio::time::sleep(ROUND_PAUSE).await;
                continue;
            };
            request.start_revision = next;
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(request.clone())),
            };
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let mut call = tonic::Request::new(requests);
            // Without a leader a member ends the stream, so the watch moves on (etcd's
            // clients ask the same).
            call.metadata_mut().insert(
                "hasleader",
                tonic::metadata::MetadataValue::from_static("true"),
            );
            let mut stream = match WatchClient::new(ch).watch(call).await {
                Ok(r) => r.into_inner(),
                Err(_) => {
                    self.failed(i);
                    tokio::time::sleep(ROUND_PAUSE).await;
                    continue;
                }
            };
            loop {
                let response = match stream.message().await {
                    Ok(Some(r)) => r,
                    // Ended or broken: resume on the next member.
                    _ => break,
                };
                if response.compact_revision > 0 {
                    let _ = out
                        .send(Err(Error::Compacted {
                            compact_revision: response.compact_revision,
                        }))
                        .await;
                    return;
                }
                if next == 0 {
                    // From now: the revision the watch was created at, plus one.
                    next = response.header.as_ref().map_or(0, |h| h.revision) + 1;
                }
                if response.canceled {
                    break;
                }
                let events: Vec<Event> = response
                    .events
                    .into_iter()
                    .filter(|e| e.kv.as_ref().is_some_and(|kv| kv.mod_revision >= next))
                    .collect();
                if let Some(last) = events.last().and_then(|e| e.kv.as_ref()) {
                    next = last.mod_revision + 1;
                }
                if !events.is_empty() && out.send(Ok(events)).await.is_err() {
                    // Nobody reads the watch any more.
                    return;
                }
            }
            self.failed(i);
            tokio::time::sleep(ROUND_PAUSE).await;
        }
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): every key after.
    vec![0]
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A watch that resumes across member failures; events come in revision order, each once.
pub struct Watch {
    events: tokio::sync::mpsc::Receiver<Result<Vec<Event>, Error>>,
    pending: std::collections::VecDeque<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// The next event; `Ok(None)` once the watch has ended (it does not end on its own, but
    /// on [`Error::Compacted`]).
    pub async fn next(&mut self) -> Result<Option<Event>, Error> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            match self.events.recv().await {
                Some(Ok(batch)) => self.pending.extend(batch),
                Some(Err(e)) => return Err(e),
                None => return Ok(None),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where a kept-alive lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveState {
    /// No renewal answered yet.
    Starting,
    /// Renewed; the TTL the cluster answered with, in seconds.
    Alive {
        /// Seconds.
        ttl: i64,
    },
    /// The lease expired or was revoked: nothing to keep alive.
    Gone,
}

/// A lease kept alive; dropping it stops the renewals (the lease then expires after its TTL).
pub struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
    state: tokio::sync::watch::Receiver<KeepAliveState>,
}

impl KeepAlive {
    /// Where the lease stands now.
    pub fn state(&self) -> KeepAliveState {
        *self.state.borrow()
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_as_etcds() {
        assert_eq!(prefix_end(b"jobs/"), b"jobs0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
    }

    #[test]
    fn reads_retry_on_unavailable_and_writes_only_when_undelivered() {
        let answered = Status::unavailable("etcdserver: no leader");
        assert!(retryable(Retry::Read, &answered));
        assert!(!retryable(Retry::Write, &answered));
        let refused = Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )));
        assert!(retryable(Retry::Write, &refused), "{refused:?}");
        assert!(!retryable(Retry::Read, &Status::not_found("x")));
        assert!(!retryable(
            Retry::Write,
            &Status::internal("a member's own error")
        ));
    }

    #[test]
    fn endpoints_are_checked() {
        assert!(Client::new(["127.0.0.1:2379", "http://127.0.0.1:2380"]).is_ok());
        assert!(matches!(
            Client::new(Vec::<String>::new()),
            Err(Error::InvalidEndpoint(_))
        ));
        assert!(matches!(
            Client::new(["https://127.0.0.1:2379"]),
            Err(Error::InvalidEndpoint(_))
        ));
    }
}
