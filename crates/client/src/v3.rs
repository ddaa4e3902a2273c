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
//! with [`Error::Compacted`]. [`Watch::next`] hands out one event at a time;
//! [`Watch::next_batch`] hands out whole revisions, as the member grouped them.
//!
//! # Leases
//!
//! [`Client::keep_alive`] starts a task that renews a lease at a third of its TTL, moving to
//! the next member on failure, until the returned [`KeepAlive`] is dropped or the lease is
//! gone.
//!
//! # TLS and auth
//!
//! [`Options`] gives a CA (and a client certificate) for `https://` members, and a user: the
//! client then authenticates, sends its token with every call, and authenticates again when
//! a member says the token is no longer valid.
//!
//! Besides KV, leases and watches: [`Txn`] builds transactions; Lock, Election, Cluster,
//! Maintenance and Auth calls take and give etcd's own messages.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use etcd_v3proto::etcdserverpb::auth_client::AuthClient;
use etcd_v3proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::mvccpb::Event;
use etcd_v3proto::v3electionpb::election_client::ElectionClient;
use etcd_v3proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use etcd_v3proto::v3lockpb::lock_client::LockClient;
use etcd_v3proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use futures_util::StreamExt as _;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// etcd's v3 messages (requests and responses of every call).
///
/// ```no_run
/// use etcd_client::v3::prefix_end;
/// use etcd_client::v3::proto::etcdserverpb::{range_request::{SortOrder, SortTarget}, RangeRequest};
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// // The 10 most recently modified keys under "logs/".
/// let request = RangeRequest {
///     key: "logs/".into(),
///     range_end: prefix_end(b"logs/").into(),
///     limit: 10,
///     sort_order: SortOrder::Descend as i32,
///     sort_target: SortTarget::Mod as i32,
///     ..Default::default()
/// };
/// let newest = client.range(request).await?.kvs;
/// # Ok(()) }
/// ```
pub use etcd_v3proto as proto;

/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Pause before going round the endpoints again once all have failed.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// What went wrong.
///
/// ```no_run
/// use etcd_client::v3::Error;
///
/// # async fn f(client: etcd_client::v3::Client) {
/// match client.get("config").await {
///     Ok(got) => println!("{} key(s)", got.kvs.len()),
///     Err(Error::Unavailable(last)) => eprintln!("no member could answer: {last}"),
///     Err(Error::Status(status)) => eprintln!("{:?}: {}", status.code(), status.message()),
///     Err(other) => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint that is not a URL or `HOST:PORT`.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// Unusable options (a certificate file that cannot be read).
    #[error("{0}")]
    Config(String),
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
///
/// ```no_run
/// use etcd_client::v3::Client;
///
/// # fn f() -> Result<(), etcd_client::v3::Error> {
/// let client = Client::new(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"])?;
/// // A clone per task: they share the client's connections.
/// let worker = client.clone();
/// tokio::spawn(async move { worker.put("workers/1", "up").await });
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each endpoint, and whether it is `https`.
    endpoints: Vec<(Endpoint, bool)>,
    /// The endpoint in use.
    current: AtomicUsize,
    /// A connection per endpoint, made when first needed.
    channels: Mutex<Vec<Option<Channel>>>,
    /// TLS for `https` endpoints.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The user to authenticate as.
    user: Option<(String, String)>,
    /// The auth token in use.
    token: Mutex<Option<AsciiMetadataValue>>,
}

/// How a [`Client`] reaches the members.
///
/// ```no_run
/// use etcd_client::v3::{Client, Options};
///
/// # fn f() -> Result<(), etcd_client::v3::Error> {
/// let options = Options {
///     ca_file: Some("/etc/etcd/ca.pem".into()),
///     client_cert: Some(("/etc/etcd/client.pem".into(), "/etc/etcd/client-key.pem".into())),
///     // HTTP/2 pings every 2 s; a member silent for 6 s after one is given up.
///     keep_alive: Some((Duration::from_secs(2), Duration::from_secs(6))),
///     ..Default::default()
/// };
/// let client = Client::with_options(["https://10.0.0.1:2379"], options)?;
/// # Ok(()) }
/// # use std::time::Duration;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// CA certificates (PEM) to verify `https://` members with.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM files), for members that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// A v3 user and password to authenticate as.
    pub user: Option<(String, String)>,
    /// How long a connection may take to be made (3 s if not given).
    pub dial_timeout: Option<Duration>,
    /// HTTP/2 keep-alive pings on each connection: every so often, and how long to wait for
    /// the answer before the connection is dropped (none if not given), as etcd's client's
    /// `--keepalive-time` and `--keepalive-timeout`.
    pub keep_alive: Option<(Duration, Duration)>,
    /// Take any server certificate (etcdctl's `--insecure-skip-tls-verify`; testing only).
    pub insecure_skip_tls_verify: bool,
}

/// `message` as a call, with the auth token if there is one.
fn with_token<T>(message: T, token: &Option<AsciiMetadataValue>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Some(t) = token {
        r.metadata_mut().insert("token", t.clone());
    }
    r
}

/// A Watch call carrying `requests`, with the token and `hasleader`: without a leader a
/// member ends the stream rather than keep it silent, so a watch can move on (etcd's clients
/// ask the same).
fn watch_call<S>(requests: S, token: &Option<AsciiMetadataValue>) -> tonic::Request<S> {
    let mut call = with_token(requests, token);
    call.metadata_mut().insert(
        "hasleader",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    call
}

/// Connects to `uri`'s host and port over TLS, offering HTTP/2.
async fn tls_connect(
    uri: tonic::transport::Uri,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>
{
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string());
    let host = uri.host().ok_or_else(|| invalid("no host"))?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((bare.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name =
        rustls::pki_types::ServerName::try_from(bare).map_err(|_| invalid("bad host name"))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    Ok(hyper_util::rt::TokioIo::new(stream))
}

/// Defines a method making one unary call.
macro_rules! unary {
    ($(#[$doc:meta])* $name:ident($req:ty) -> $resp:ty, $client:ident::$method:ident, $retry:expr) => {
        $(#[$doc])*
        pub async fn $name(&self, request: $req) -> Result<$resp, Error> {
            self.call($retry, |ch, token| {
                let request = with_token(request.clone(), &token);
                async move { Ok($client::new(ch).$method(request).await?.into_inner()) }
            })
            .await
        }
    };
}

impl Client {
    /// A client for the members at `endpoints` (`http://HOST:PORT`, or `HOST:PORT`), without
    /// TLS or auth. No connection is made until the first call.
    ///
    /// ```no_run
    /// use etcd_client::v3::Client;
    ///
    /// # fn f() -> Result<(), etcd_client::v3::Error> {
    /// let client = Client::new(["127.0.0.1:2379", "http://127.0.0.1:22379"])?;
    /// # Ok(()) }
    /// ```
    pub fn new<I, S>(endpoints: I) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::with_options(endpoints, Options::default())
    }

    /// A client for the members at `endpoints` (`https://` ones over TLS), as `options` say.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Client, Options};
    ///
    /// # fn f() -> Result<(), etcd_client::v3::Error> {
    /// let options = Options {
    ///     ca_file: Some("/etc/etcd/ca.pem".into()),
    ///     user: Some(("app".into(), "s3cret".into())),
    ///     ..Default::default()
    /// };
    /// let client = Client::with_options(["https://10.0.0.1:2379", "https://10.0.0.2:2379"], options)?;
    /// # Ok(()) }
    /// ```
    pub fn with_options<I, S>(endpoints: I, options: Options) -> Result<Client, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        for e in endpoints {
            let e = e.as_ref().trim();
            let (https, rest) = match e.split_once("://") {
                Some(("https", rest)) => (true, rest),
                Some(("http", rest)) => (false, rest),
                Some(_) => return Err(Error::InvalidEndpoint(e.to_string())),
                None => (false, e),
            };
            // (TLS is made by this client's own connector: the endpoint only names the member.)
            let mut endpoint =
                Endpoint::from_shared(format!("http://{}", rest.trim_end_matches('/')))
                    .map_err(|_| Error::InvalidEndpoint(e.to_string()))?
                    .connect_timeout(options.dial_timeout.unwrap_or(CONNECT_TIMEOUT))
                    .tcp_nodelay(true);
            if let Some((every, timeout)) = options.keep_alive {
                endpoint = endpoint
                    .http2_keep_alive_interval(every)
                    .keep_alive_timeout(timeout);
            }
            list.push((endpoint, https));
        }
        if list.is_empty() {
            return Err(Error::InvalidEndpoint("no endpoint given".into()));
        }
        let tls = crate::conn::tls_config(
            options.ca_file.as_deref(),
            options.client_cert.as_ref(),
            &[b"h2"],
            options.insecure_skip_tls_verify,
        )
        .map_err(|e| Error::Config(e.to_string()))?;
        if tls.is_none() && list.iter().any(|(_, https)| *https) {
            return Err(Error::Config(
                "https endpoints need a CA file (Options::ca_file)".into(),
            ));
        }
        let n = list.len();
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: list,
                current: AtomicUsize::new(0),
                channels: Mutex::new(vec![None; n]),
                tls,
                user: options.user,
                token: Mutex::new(None),
            }),
        })
    }

    /// The connection to the endpoint in use (made if needed), and its index.
    async fn channel(&self) -> Result<(usize, Channel), Status> {
        let i = self.inner.current.load(Ordering::Acquire) % self.inner.endpoints.len();
        if let Some(ch) = self.inner.channels.lock().expect("channels lock")[i].clone() {
            return Ok((i, ch));
        }
        let (endpoint, https) = &self.inner.endpoints[i];
        let connected = if *https {
            let tls = self.inner.tls.clone().expect("checked when built");
            endpoint
                .connect_with_connector(tower::service_fn(move |uri: tonic::transport::Uri| {
                    tls_connect(uri, tls.clone())
                }))
                .await
        } else {
            endpoint.connect().await
        };
        let ch = connected.map_err(|e| Status::from_error(Box::new(e)))?;
        self.inner.channels.lock().expect("channels lock")[i] = Some(ch.clone());
        Ok((i, ch))
    }

    /// The auth token to send (authenticating first if there is a user and no token yet).
    async fn token(&self, ch: &Channel) -> Result<Option<AsciiMetadataValue>, Status> {
        let Some((name, password)) = &self.inner.user else {
            return Ok(None);
        };
        if let Some(t) = self.inner.token.lock().expect("token lock").clone() {
            return Ok(Some(t));
        }
        let answer = match AuthClient::new(ch.clone())
            .authenticate(AuthenticateRequest {
                name: name.clone(),
                password: password.clone(),
            })
            .await
        {
            Ok(a) => a.into_inner(),
            // As etcd's clients: with auth off, calls go without a token.
            Err(s) if s.message() == "etcdserver: authentication is not enabled" => {
                return Ok(None)
            }
            Err(s) => return Err(s),
        };
        let token: AsciiMetadataValue = answer
            .token
            .parse()
            .map_err(|_| Status::internal("the member answered an unusable token"))?;
        *self.inner.token.lock().expect("token lock") = Some(token.clone());
        Ok(Some(token))
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
        F: Fn(Channel, Option<AsciiMetadataValue>) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let n = self.inner.endpoints.len();
        let mut failures = 0;
        let mut reauthenticated = false;
        loop {
            let outcome = match self.channel().await {
                Ok((i, ch)) => match self.token(&ch).await {
                    Ok(token) => (i, call(ch, token).await),
                    Err(e) => (i, Err(e)),
                },
                Err(e) => (self.inner.current.load(Ordering::Acquire) % n, Err(e)),
            };
            match outcome {
                (_, Ok(t)) => return Ok(t),
                // A token the cluster no longer takes: authenticate again, once.
                (_, Err(status))
                    if self.inner.user.is_some()
                        && !reauthenticated
                        && status.message().contains("auth token") =>
                {
                    reauthenticated = true;
                    *self.inner.token.lock().expect("token lock") = None;
                }
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
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let got = client.get("config/db").await?;
    /// if let Some(kv) = got.kvs.first() {
    ///     println!("{} (revision {})", String::from_utf8_lossy(&kv.value), kv.mod_revision);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<RangeResponse, Error> {
        self.range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
    }

    unary!(
        /// `KV.Range` as asked (ranges, revisions, limits, sorting, serializable reads).
        ///
        /// ```no_run
        /// use etcd_client::v3::{prefix_end, proto::etcdserverpb::RangeRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = RangeRequest {
        ///     key: "jobs/".into(),
        ///     range_end: prefix_end(b"jobs/").into(),
        ///     limit: 100,
        ///     ..Default::default()
        /// };
        /// let got = client.range(request).await?;
        /// println!("{} of {} jobs (more: {})", got.kvs.len(), got.count, got.more);
        /// # Ok(()) }
        /// ```
        range(RangeRequest) -> RangeResponse, KvClient::range, Retry::Read
    );

    /// `KV.Put` of `value` at `key`.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let put = client.put("config/db", "postgres://db:5432").await?;
    /// println!("written at revision {}", put.header.map_or(0, |h| h.revision));
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // "nodes/me" is deleted when the lease ends: 10 s after the renewals stop.
    /// let lease = client.lease_grant(10).await?;
    /// let keeper = client.keep_alive(lease.id);
    /// client.put_with_lease("nodes/me", "10.0.0.7", lease.id).await?;
    /// # drop(keeper);
    /// # Ok(()) }
    /// ```
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

    unary!(
        /// `KV.Put` as asked (`prev_kv`, `ignore_value`, `ignore_lease`).
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::PutRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = PutRequest {
        ///     key: "config/db".into(),
        ///     value: "postgres://db:5432".into(),
        ///     prev_kv: true,
        ///     ..Default::default()
        /// };
        /// if let Some(old) = client.put_request(request).await?.prev_kv {
        ///     println!("replaced {:?}", old.value);
        /// }
        /// # Ok(()) }
        /// ```
        put_request(PutRequest) -> PutResponse, KvClient::put, Retry::Write
    );

    unary!(
        /// `KV.DeleteRange` as asked.
        ///
        /// ```no_run
        /// use etcd_client::v3::{prefix_end, proto::etcdserverpb::DeleteRangeRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // Every key starting with "jobs/".
        /// let request = DeleteRangeRequest {
        ///     key: "jobs/".into(),
        ///     range_end: prefix_end(b"jobs/").into(),
        ///     ..Default::default()
        /// };
        /// let deleted = client.delete(request).await?.deleted;
        /// # Ok(()) }
        /// ```
        delete(DeleteRangeRequest) -> DeleteRangeResponse, KvClient::delete_range, Retry::Write
    );

    /// `KV.Txn`: compares, then the success or the failure operations.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Creates "leader" only if it does not exist yet.
    /// let txn = Txn::new()
    ///     .when([Cmp::create_revision("leader", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("leader", "me")])
    ///     .or_else([TxnOp::get("leader")]);
    /// let answer = client.txn(txn).await?;
    /// println!("became leader: {}", answer.succeeded);
    /// # Ok(()) }
    /// ```
    pub async fn txn(&self, request: impl Into<TxnRequest>) -> Result<TxnResponse, Error> {
        let request = request.into();
        self.call(Retry::Write, |ch, token| {
            let request = with_token(request.clone(), &token);
            async move { Ok(KvClient::new(ch).txn(request).await?.into_inner()) }
        })
        .await
    }

    /// `KV.Compact`: forgets the history before `revision`.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Keeps only the history from the current revision on.
    /// let now = client.get("any").await?.header.map_or(0, |h| h.revision);
    /// client.compact(now).await?;
    /// # Ok(()) }
    /// ```
    pub async fn compact(&self, revision: i64) -> Result<CompactionResponse, Error> {
        self.call(Retry::Write, |ch, token| async move {
            let request = with_token(
                CompactionRequest {
                    revision,
                    physical: false,
                },
                &token,
            );
            Ok(KvClient::new(ch).compact(request).await?.into_inner())
        })
        .await
    }

    /// `Lease.LeaseGrant` of a lease of `ttl` seconds (id chosen by the cluster).
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(30).await?;
    /// println!("lease {:x} for {} s", lease.id, lease.ttl);
    /// client.put_with_lease("sessions/me", "alive", lease.id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(Retry::Write, |ch, token| async move {
            let request = with_token(LeaseGrantRequest { ttl, id: 0 }, &token);
            Ok(LeaseClient::new(ch)
                .lease_grant(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// `Lease.LeaseRevoke`: ends lease `id` and deletes its keys.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(60).await?;
    /// client.put_with_lease("sessions/me", "alive", lease.id).await?;
    /// // Ends the session now: "sessions/me" is deleted with the lease.
    /// client.lease_revoke(lease.id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(Retry::Write, |ch, token| async move {
            let request = with_token(LeaseRevokeRequest { id }, &token);
            Ok(LeaseClient::new(ch)
                .lease_revoke(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// `Lease.LeaseTimeToLive` of lease `id` (with its keys if `keys`).
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(60).await?;
    /// let left = client.lease_time_to_live(lease.id, true).await?;
    /// println!("{} s of {} left, keys {:?}", left.ttl, left.granted_ttl, left.keys);
    /// # Ok(()) }
    /// ```
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.call(Retry::Read, |ch, token| async move {
            let request = with_token(LeaseTimeToLiveRequest { id, keys }, &token);
            Ok(LeaseClient::new(ch)
                .lease_time_to_live(request)
                .await?
                .into_inner())
        })
        .await
    }

    /// Keeps lease `id` alive until the returned [`KeepAlive`] is dropped (or the lease is
    /// gone): renewed at a third of its TTL, through whichever member serves.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(10).await?;
    /// let keeper = client.keep_alive(lease.id);
    /// client.put_with_lease("nodes/me", "10.0.0.7", lease.id).await?;
    /// // ... serve; then, on a clean shutdown:
    /// drop(keeper);
    /// client.lease_revoke(lease.id).await?; // "nodes/me" goes now, not 10 s later
    /// # Ok(()) }
    /// ```
    pub fn keep_alive(&self, id: i64) -> KeepAlive {
        let (tx, rx) = tokio::sync::watch::channel(KeepAliveState::Starting);
        let (answers, answered) = tokio::sync::mpsc::channel(KEEP_ALIVE_ANSWERS);
        let client = self.clone();
        let task = tokio::spawn(async move { client.keep_alive_loop(id, tx, answers).await });
        KeepAlive {
            task,
            state: rx,
            answers: answered,
        }
    }

    async fn keep_alive_loop(
        &self,
        id: i64,
        state: tokio::sync::watch::Sender<KeepAliveState>,
        answers: tokio::sync::mpsc::Sender<LeaseKeepAliveResponse>,
    ) {
        let mut every = Duration::from_millis(500);
        loop {
            let Ok((i, ch)) = self.channel().await else {
                let i = self.inner.current.load(Ordering::Acquire) % self.inner.endpoints.len();
                self.failed(i);
                tokio::time::sleep(ROUND_PAUSE).await;
                continue;
            };
            let (tx, rx) = tokio::sync::mpsc::channel::<LeaseKeepAliveRequest>(4);
            let token = self.token(&ch).await.unwrap_or(None);
            let requests = with_token(tokio_stream_of(rx), &token);
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
                        let ttl = r.ttl;
                        // Kept for a reader of `next`; dropped when nobody reads.
                        let _ = answers.try_send(r);
                        every = Duration::from_millis((ttl as u64 * 1000 / 3).max(100));
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

    /// Renews lease `id` once (`etcdctl lease keep-alive --once`); a lease that is gone is
    /// `etcdserver: requested lease not found`.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(10).await?;
    /// let renewed = client.keep_alive_once(lease.id).await?;
    /// println!("lease {:x} renewed for {} s", renewed.id, renewed.ttl);
    /// # Ok(()) }
    /// ```
    pub async fn keep_alive_once(&self, id: i64) -> Result<LeaseKeepAliveResponse, Error> {
        self.call(Retry::Read, |ch, token| async move {
            let requests = with_token(
                futures_util::stream::iter([LeaseKeepAliveRequest { id }]),
                &token,
            );
            let mut answers = LeaseClient::new(ch)
                .lease_keep_alive(requests)
                .await?
                .into_inner();
            match answers.message().await? {
                Some(r) if r.ttl > 0 => Ok(r),
                Some(_) => Err(Status::not_found("etcdserver: requested lease not found")),
                None => Err(Status::unavailable("the keep-alive stream ended")),
            }
        })
        .await
    }

    /// One watch stream on the member in use, as the member answers it (the created
    /// response, progress notifications, cancellation), without resuming elsewhere: for
    /// tools that print each response (etcdctl's `watch`). [`Client::watch`] is the one that
    /// survives failures.
    ///
    /// ```no_run
    /// use etcd_client::v3::{proto::etcdserverpb::WatchCreateRequest, Error};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let request = WatchCreateRequest {
    ///     key: "config".into(),
    ///     progress_notify: true,
    ///     ..Default::default()
    /// };
    /// let mut responses = client.watch_responses(request).await?;
    /// while let Some(response) = responses.message().await.map_err(Error::Status)? {
    ///     println!("created: {}, {} event(s)", response.created, response.events.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn watch_responses(
        &self,
        request: WatchCreateRequest,
    ) -> Result<tonic::Streaming<WatchResponse>, Error> {
        self.call(Retry::Read, |ch, token| {
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(request.clone())),
            };
            let requests =
                futures_util::stream::iter([create]).chain(futures_util::stream::pending());
            let call = watch_call(requests, &token);
            async move { Ok(WatchClient::new(ch).watch(call).await?.into_inner()) }
        })
        .await
    }

    /// Opens one watch stream that carries many watches, as etcd's clients share one stream
    /// among the watches of a context: [`WatchRequests::create`] adds a watch,
    /// [`WatchRequests::request_progress`] asks for a progress notification, and every
    /// watch's responses come out of [`WatchStream::message`] (by watch id; a progress
    /// notification has id -1). It does not resume on another member when the stream breaks:
    /// [`Client::watch`] is the one that does.
    ///
    /// ```no_run
    /// use etcd_client::v3::proto::etcdserverpb::WatchCreateRequest;
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut stream = client.watch_stream().await?;
    /// let requests = stream.requests();
    /// requests.create(WatchCreateRequest { key: "a".into(), ..Default::default() });
    /// requests.create(WatchCreateRequest { key: "b".into(), ..Default::default() });
    /// requests.request_progress();
    /// while let Some(response) = stream.message().await? {
    ///     println!("watch {}: {} event(s)", response.watch_id, response.events.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn watch_stream(&self) -> Result<WatchStream, Error> {
        self.call(Retry::Read, |ch, token| {
            let (requests, rx) = tokio::sync::mpsc::unbounded_channel();
            let mut rx: tokio::sync::mpsc::UnboundedReceiver<WatchRequest> = rx;
            let call = watch_call(
                futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)),
                &token,
            );
            async move {
                let responses = WatchClient::new(ch).watch(call).await?.into_inner();
                Ok(WatchStream {
                    requests: WatchRequests(requests),
                    responses,
                })
            }
        })
        .await
    }

    /// Watches `key` from `start_revision` on (0: from now).
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Every change of "config" from now on.
    /// let mut watch = client.watch_key("config", 0);
    /// while let Some(event) = watch.next().await? {
    ///     println!("{:?} {:?}", event.r#type(), event.kv.map(|kv| kv.value));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn watch_key(&self, key: impl Into<Bytes>, start_revision: i64) -> Watch {
        self.watch(WatchCreateRequest {
            key: key.into(),
            start_revision,
            ..Default::default()
        })
    }

    /// Watches every key starting with `prefix` from `start_revision` on (0: from now).
    ///
    /// ```no_run
    /// use etcd_client::v3::{prefix_end, proto::etcdserverpb::RangeRequest};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // The jobs now, then every change after them: none missed, none seen twice.
    /// let end = prefix_end(b"jobs/").into();
    /// let list = RangeRequest { key: "jobs/".into(), range_end: end, ..Default::default() };
    /// let jobs = client.range(list).await?;
    /// let mut watch = client.watch_prefix("jobs/", jobs.header.map_or(0, |h| h.revision) + 1);
    /// while let Some(event) = watch.next().await? {
    ///     println!("{:?} {:?}", event.r#type(), event.kv.map(|kv| kv.key));
    /// }
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// use etcd_client::v3::proto::etcdserverpb::{watch_create_request::FilterType, WatchCreateRequest};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Deletions of "config" only, each with the value it had.
    /// let mut watch = client.watch(WatchCreateRequest {
    ///     key: "config".into(),
    ///     prev_kv: true,
    ///     filters: vec![FilterType::Noput as i32],
    ///     ..Default::default()
    /// });
    /// while let Some(event) = watch.next().await? {
    ///     println!("deleted: {:?}", event.prev_kv.map(|kv| kv.value));
    /// }
    /// # Ok(()) }
    /// ```
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
            let token = self.token(&ch).await.unwrap_or(None);
            let call = watch_call(requests, &token);
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

/// Lock, Election, Cluster, Maintenance and Auth: one call each, etcd's messages in and out.
impl Client {
    unary!(
        /// `Lock.Lock`: waits for the lock `name`, held while lease `lease` lives.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3lockpb::{LockRequest, UnlockRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // Held only while the lease lives: released if this process dies.
        /// let lease = client.lease_grant(10).await?;
        /// let keeper = client.keep_alive(lease.id);
        /// let locked = client.lock(LockRequest { name: "my-lock".into(), lease: lease.id }).await?;
        /// // ... work while holding the lock ...
        /// client.unlock(UnlockRequest { key: locked.key }).await?;
        /// # drop(keeper);
        /// # Ok(()) }
        /// ```
        lock(LockRequest) -> LockResponse, LockClient::lock, Retry::Write
    );
    unary!(
        /// `Lock.Unlock`: releases a lock by the key `lock` answered.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3lockpb::{LockRequest, UnlockRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let lease = client.lease_grant(10).await?;
        /// let locked = client.lock(LockRequest { name: "my-lock".into(), lease: lease.id }).await?;
        /// // ... work while holding the lock, then release it by its key:
        /// client.unlock(UnlockRequest { key: locked.key }).await?;
        /// client.lease_revoke(lease.id).await?;
        /// # Ok(()) }
        /// ```
        unlock(UnlockRequest) -> UnlockResponse, LockClient::unlock, Retry::Write
    );
    unary!(
        /// `Election.Campaign`: waits to lead election `name`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3electionpb::CampaignRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // Leads while the lease lives: kept alive for as long as this process runs.
        /// let lease = client.lease_grant(10).await?;
        /// let keeper = client.keep_alive(lease.id);
        /// let request = CampaignRequest {
        ///     name: "my-election".into(),
        ///     lease: lease.id,
        ///     value: "10.0.0.7:8080".into(),
        /// };
        /// let won = client.campaign(request).await?;
        /// println!("leading as {:?}", won.leader.map(|l| l.key));
        /// # drop(keeper);
        /// # Ok(()) }
        /// ```
        campaign(CampaignRequest) -> CampaignResponse, ElectionClient::campaign, Retry::Write
    );
    unary!(
        /// `Election.Proclaim`: a leader's new value.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3electionpb::{CampaignRequest, ProclaimRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let lease = client.lease_grant(10).await?;
        /// let request = CampaignRequest { name: "my-election".into(), lease: lease.id, value: "v1".into() };
        /// let leader = client.campaign(request).await?.leader;
        /// // Still leading, with a new value for observers.
        /// client.proclaim(ProclaimRequest { leader, value: "v2".into() }).await?;
        /// # Ok(()) }
        /// ```
        proclaim(ProclaimRequest) -> ProclaimResponse, ElectionClient::proclaim, Retry::Write
    );
    unary!(
        /// `Election.Leader`: who leads an election now.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3electionpb::LeaderRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let answer = client.election_leader(LeaderRequest { name: "my-election".into() }).await?;
        /// if let Some(kv) = answer.kv {
        ///     println!("the leader's value: {:?}", kv.value);
        /// }
        /// # Ok(()) }
        /// ```
        election_leader(LeaderRequest) -> LeaderResponse, ElectionClient::leader, Retry::Read
    );
    unary!(
        /// `Election.Resign`: gives up leadership.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::v3electionpb::{CampaignRequest, ResignRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let lease = client.lease_grant(10).await?;
        /// let request = CampaignRequest { name: "my-election".into(), lease: lease.id, value: "me".into() };
        /// let leader = client.campaign(request).await?.leader;
        /// // ... lead; then hand over to the next candidate:
        /// client.resign(ResignRequest { leader }).await?;
        /// # Ok(()) }
        /// ```
        resign(ResignRequest) -> ResignResponse, ElectionClient::resign, Retry::Write
    );
    /// `Election.Observe`: the leader of election `name` (once there is one), then each new
    /// leader or value, as the member in use streams them. The stream ends, or fails, when
    /// that member does; observe again to go on.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut leaders = client.observe("my-election").await?;
    /// while let Some(leader) = leaders.message().await.map_err(etcd_client::v3::Error::Status)? {
    ///     if let Some(kv) = leader.kv {
    ///         println!("{:?} leads with {:?}", kv.key, kv.value);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn observe(
        &self,
        name: impl Into<Bytes>,
    ) -> Result<tonic::Streaming<LeaderResponse>, Error> {
        let name = name.into();
        self.call(Retry::Read, |ch, token| {
            let request = with_token(LeaderRequest { name: name.clone() }, &token);
            async move { Ok(ElectionClient::new(ch).observe(request).await?.into_inner()) }
        })
        .await
    }

    unary!(
        /// `Cluster.MemberList`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::MemberListRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let list = client.member_list(MemberListRequest { linearizable: true }).await?;
        /// for m in &list.members {
        ///     println!("{:x} {} {:?} learner: {}", m.id, m.name, m.client_ur_ls, m.is_learner);
        /// }
        /// # Ok(()) }
        /// ```
        member_list(MemberListRequest) -> MemberListResponse, ClusterClient::member_list, Retry::Read
    );
    unary!(
        /// `Cluster.MemberAdd` (a learner with `is_learner`).
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::MemberAddRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // A learner catches up without counting for quorum; promote it once it has.
        /// let peers = vec!["http://10.0.0.4:2380".to_string()];
        /// let added = client.member_add(MemberAddRequest { peer_ur_ls: peers, is_learner: true }).await?;
        /// println!("new member {:x}", added.member.map_or(0, |m| m.id));
        /// # Ok(()) }
        /// ```
        member_add(MemberAddRequest) -> MemberAddResponse, ClusterClient::member_add, Retry::Write
    );
    unary!(
        /// `Cluster.MemberRemove`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{MemberListRequest, MemberRemoveRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let members = client.member_list(MemberListRequest::default()).await?.members;
        /// if let Some(m) = members.iter().find(|m| m.name == "node-4") {
        ///     client.member_remove(MemberRemoveRequest { id: m.id }).await?;
        /// }
        /// # Ok(()) }
        /// ```
        member_remove(MemberRemoveRequest) -> MemberRemoveResponse, ClusterClient::member_remove, Retry::Write
    );
    unary!(
        /// `Cluster.MemberUpdate`: a member's peer URLs.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::MemberUpdateRequest;
        /// # async fn f(client: etcd_client::v3::Client, id: u64) -> Result<(), etcd_client::v3::Error> {
        /// // Member `id` now listens for its peers at a new address.
        /// let peer_ur_ls = vec!["http://10.0.0.9:2380".to_string()];
        /// client.member_update(MemberUpdateRequest { id, peer_ur_ls }).await?;
        /// # Ok(()) }
        /// ```
        member_update(MemberUpdateRequest) -> MemberUpdateResponse, ClusterClient::member_update, Retry::Write
    );
    unary!(
        /// `Cluster.MemberPromote`: a learner becomes a voter.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{MemberAddRequest, MemberPromoteRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let peers = vec!["http://10.0.0.4:2380".to_string()];
        /// let added = client.member_add(MemberAddRequest { peer_ur_ls: peers, is_learner: true }).await?;
        /// let learner = added.member.unwrap_or_default();
        /// // ... start the new member and let it catch up with the leader ...
        /// client.member_promote(MemberPromoteRequest { id: learner.id }).await?;
        /// # Ok(()) }
        /// ```
        member_promote(MemberPromoteRequest) -> MemberPromoteResponse, ClusterClient::member_promote, Retry::Write
    );
    unary!(
        /// `Maintenance.Status` of the member in use.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::StatusRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let status = client.status(StatusRequest {}).await?;
        /// let member = status.header.as_ref().map_or(0, |h| h.member_id);
        /// println!("{member:x}: etcd {}, {} B, leader {:x}", status.version, status.db_size, status.leader);
        /// # Ok(()) }
        /// ```
        status(StatusRequest) -> StatusResponse, MaintenanceClient::status, Retry::Read
    );
    unary!(
        /// `Maintenance.HashKV` of the member in use.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::HashKvRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // At the current revision (0); members agree on the hash at the same revision.
        /// let hash = client.hash_kv(HashKvRequest { revision: 0 }).await?;
        /// println!("{:x} at revision {}", hash.hash, hash.hash_revision);
        /// # Ok(()) }
        /// ```
        hash_kv(HashKvRequest) -> HashKvResponse, MaintenanceClient::hash_kv, Retry::Read
    );
    unary!(
        /// `Maintenance.Alarm`: list, activate or deactivate alarms.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{alarm_request::AlarmAction, AlarmRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = AlarmRequest { action: AlarmAction::Get as i32, ..Default::default() };
        /// for alarm in client.alarm(request).await?.alarms {
        ///     println!("member {:x}: {:?}", alarm.member_id, alarm.alarm());
        /// }
        /// # Ok(()) }
        /// ```
        alarm(AlarmRequest) -> AlarmResponse, MaintenanceClient::alarm, Retry::Write
    );
    unary!(
        /// `Maintenance.Defragment` of the member in use.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{DefragmentRequest, StatusRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // After a compaction: gives the freed space back to the file system.
        /// client.defragment(DefragmentRequest {}).await?;
        /// let status = client.status(StatusRequest {}).await?;
        /// println!("{} B, {} B in use", status.db_size, status.db_size_in_use);
        /// # Ok(()) }
        /// ```
        defragment(DefragmentRequest) -> DefragmentResponse, MaintenanceClient::defragment, Retry::Write
    );
    unary!(
        /// `Maintenance.MoveLeader`: hands leadership to another member (sent to the leader).
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{MemberListRequest, MoveLeaderRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // E.g. before the leader's maintenance (this client must be talking to the leader).
        /// let members = client.member_list(MemberListRequest::default()).await?.members;
        /// let target_id = members.iter().find(|m| m.name == "node-2").map_or(0, |m| m.id);
        /// client.move_leader(MoveLeaderRequest { target_id }).await?;
        /// # Ok(()) }
        /// ```
        move_leader(MoveLeaderRequest) -> MoveLeaderResponse, MaintenanceClient::move_leader, Retry::Write
    );
    unary!(
        /// `Auth.AuthEnable`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::{AuthEnableRequest, AuthUserAddRequest};
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserGrantRoleRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // etcd turns auth on only once user "root" exists and has the "root" role.
        /// let password = "s3cret".into();
        /// client.user_add(AuthUserAddRequest { name: "root".into(), password, ..Default::default() }).await?;
        /// let grant = AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() };
        /// client.user_grant_role(grant).await?;
        /// client.auth_enable(AuthEnableRequest {}).await?;
        /// // From now on, clients need `Options::user`.
        /// # Ok(()) }
        /// ```
        auth_enable(AuthEnableRequest) -> AuthEnableResponse, AuthClient::auth_enable, Retry::Write
    );
    unary!(
        /// `Auth.AuthDisable`.
        ///
        /// ```no_run
        /// use etcd_client::v3::{proto::etcdserverpb::AuthDisableRequest, Client, Options};
        /// # async fn f() -> Result<(), etcd_client::v3::Error> {
        /// // Only root may turn auth off.
        /// let options = Options { user: Some(("root".into(), "s3cret".into())), ..Default::default() };
        /// let client = Client::with_options(["127.0.0.1:2379"], options)?;
        /// client.auth_disable(AuthDisableRequest {}).await?;
        /// # Ok(()) }
        /// ```
        auth_disable(AuthDisableRequest) -> AuthDisableResponse, AuthClient::auth_disable, Retry::Write
    );
    unary!(
        /// `Auth.AuthStatus`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthStatusRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let status = client.auth_status(AuthStatusRequest {}).await?;
        /// println!("auth enabled: {} (auth revision {})", status.enabled, status.auth_revision);
        /// # Ok(()) }
        /// ```
        auth_status(AuthStatusRequest) -> AuthStatusResponse, AuthClient::auth_status, Retry::Read
    );
    unary!(
        /// `Auth.UserAdd`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserAddRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = AuthUserAddRequest {
        ///     name: "app".into(),
        ///     password: "s3cret".into(),
        ///     ..Default::default()
        /// };
        /// client.user_add(request).await?;
        /// # Ok(()) }
        /// ```
        user_add(AuthUserAddRequest) -> AuthUserAddResponse, AuthClient::user_add, Retry::Write
    );
    unary!(
        /// `Auth.UserGrantRole`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserGrantRoleRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = AuthUserGrantRoleRequest { user: "app".into(), role: "app-rw".into() };
        /// client.user_grant_role(request).await?;
        /// # Ok(()) }
        /// ```
        user_grant_role(AuthUserGrantRoleRequest) -> AuthUserGrantRoleResponse, AuthClient::user_grant_role, Retry::Write
    );
    unary!(
        /// `Auth.RoleAdd`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthRoleAddRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // A new role has no permission: grant some with `role_grant_permission`.
        /// client.role_add(AuthRoleAddRequest { name: "app-rw".into() }).await?;
        /// # Ok(()) }
        /// ```
        role_add(AuthRoleAddRequest) -> AuthRoleAddResponse, AuthClient::role_add, Retry::Write
    );
    unary!(
        /// `Auth.RoleGrantPermission`.
        ///
        /// ```no_run
        /// use etcd_client::v3::prefix_end;
        /// use etcd_client::v3::proto::authpb::{permission::Type, Permission};
        /// use etcd_client::v3::proto::etcdserverpb::AuthRoleGrantPermissionRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // Reads and writes of every key under "app/".
        /// let perm = Permission {
        ///     perm_type: Type::Readwrite as i32,
        ///     key: "app/".into(),
        ///     range_end: prefix_end(b"app/").into(),
        /// };
        /// let request = AuthRoleGrantPermissionRequest { name: "app-rw".into(), perm: Some(perm) };
        /// client.role_grant_permission(request).await?;
        /// # Ok(()) }
        /// ```
        role_grant_permission(AuthRoleGrantPermissionRequest) -> AuthRoleGrantPermissionResponse, AuthClient::role_grant_permission, Retry::Write
    );

    unary!(
        /// `Lease.LeaseLeases`: every lease's id.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::LeaseLeasesRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// for lease in client.leases(LeaseLeasesRequest {}).await?.leases {
        ///     let left = client.lease_time_to_live(lease.id, false).await?;
        ///     println!("{:x}: {} s left", lease.id, left.ttl);
        /// }
        /// # Ok(()) }
        /// ```
        leases(LeaseLeasesRequest) -> LeaseLeasesResponse, LeaseClient::lease_leases, Retry::Read
    );
    unary!(
        /// `Auth.UserGet`: a user's roles.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserGetRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let user = client.user_get(AuthUserGetRequest { name: "app".into() }).await?;
        /// println!("app has roles {:?}", user.roles);
        /// # Ok(()) }
        /// ```
        user_get(AuthUserGetRequest) -> AuthUserGetResponse, AuthClient::user_get, Retry::Read
    );
    unary!(
        /// `Auth.UserList`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserListRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// for name in client.user_list(AuthUserListRequest {}).await?.users {
        ///     println!("{name}");
        /// }
        /// # Ok(()) }
        /// ```
        user_list(AuthUserListRequest) -> AuthUserListResponse, AuthClient::user_list, Retry::Read
    );
    unary!(
        /// `Auth.UserDelete`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserDeleteRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// client.user_delete(AuthUserDeleteRequest { name: "app".into() }).await?;
        /// # Ok(()) }
        /// ```
        user_delete(AuthUserDeleteRequest) -> AuthUserDeleteResponse, AuthClient::user_delete, Retry::Write
    );
    unary!(
        /// `Auth.UserChangePassword`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserChangePasswordRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = AuthUserChangePasswordRequest {
        ///     name: "app".into(),
        ///     password: "n3w-s3cret".into(),
        ///     ..Default::default()
        /// };
        /// client.user_change_password(request).await?;
        /// # Ok(()) }
        /// ```
        user_change_password(AuthUserChangePasswordRequest) -> AuthUserChangePasswordResponse, AuthClient::user_change_password, Retry::Write
    );
    unary!(
        /// `Auth.UserRevokeRole`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthUserRevokeRoleRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let request = AuthUserRevokeRoleRequest { name: "app".into(), role: "app-rw".into() };
        /// client.user_revoke_role(request).await?;
        /// # Ok(()) }
        /// ```
        user_revoke_role(AuthUserRevokeRoleRequest) -> AuthUserRevokeRoleResponse, AuthClient::user_revoke_role, Retry::Write
    );
    unary!(
        /// `Auth.RoleGet`: a role's permissions.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthRoleGetRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// for perm in client.role_get(AuthRoleGetRequest { role: "app-rw".into() }).await?.perm {
        ///     println!("{:?} on [{:?}, {:?})", perm.perm_type(), perm.key, perm.range_end);
        /// }
        /// # Ok(()) }
        /// ```
        role_get(AuthRoleGetRequest) -> AuthRoleGetResponse, AuthClient::role_get, Retry::Read
    );
    unary!(
        /// `Auth.RoleList`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthRoleListRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let roles = client.role_list(AuthRoleListRequest {}).await?.roles;
        /// println!("roles: {}", roles.join(", "));
        /// # Ok(()) }
        /// ```
        role_list(AuthRoleListRequest) -> AuthRoleListResponse, AuthClient::role_list, Retry::Read
    );
    unary!(
        /// `Auth.RoleDelete`.
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::AuthRoleDeleteRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // Users that had the role lose it too.
        /// client.role_delete(AuthRoleDeleteRequest { role: "app-rw".into() }).await?;
        /// # Ok(()) }
        /// ```
        role_delete(AuthRoleDeleteRequest) -> AuthRoleDeleteResponse, AuthClient::role_delete, Retry::Write
    );
    unary!(
        /// `Auth.RoleRevokePermission`.
        ///
        /// ```no_run
        /// use etcd_client::v3::{prefix_end, proto::etcdserverpb::AuthRoleRevokePermissionRequest};
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// // The permission granted on exactly this range.
        /// let request = AuthRoleRevokePermissionRequest {
        ///     role: "app-rw".into(),
        ///     key: "app/".into(),
        ///     range_end: prefix_end(b"app/").into(),
        /// };
        /// client.role_revoke_permission(request).await?;
        /// # Ok(()) }
        /// ```
        role_revoke_permission(AuthRoleRevokePermissionRequest) -> AuthRoleRevokePermissionResponse, AuthClient::role_revoke_permission, Retry::Write
    );

    unary!(
        /// `KV.Compact` as asked (`physical`: wait until the old revisions are gone).
        ///
        /// ```no_run
        /// use etcd_client::v3::proto::etcdserverpb::CompactionRequest;
        /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
        /// let revision = client.get("any").await?.header.map_or(0, |h| h.revision);
        /// // Returns once the compacted revisions are gone from the backend too.
        /// client.compact_request(CompactionRequest { revision, physical: true }).await?;
        /// # Ok(()) }
        /// ```
        compact_request(CompactionRequest) -> CompactionResponse, KvClient::compact, Retry::Write
    );

    /// `Maintenance.Snapshot` of the member in use: the whole snapshot file (etcd's bbolt
    /// format with its SHA-256 trailer), as `etcdctl snapshot save` writes it.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// // As `etcdctl snapshot save backup.db`; `etcdutl snapshot restore` restores it.
    /// let file = client.snapshot().await?;
    /// std::fs::write("backup.db", file)?;
    /// # Ok(()) }
    /// ```
    pub async fn snapshot(&self) -> Result<Vec<u8>, Error> {
        self.call(Retry::Read, |ch, token| async move {
            let mut stream = MaintenanceClient::new(ch)
                .snapshot(with_token(SnapshotRequest {}, &token))
                .await?
                .into_inner();
            let mut file = Vec::new();
            while let Some(part) = stream.message().await? {
                file.extend_from_slice(&part.blob);
            }
            Ok(file)
        })
        .await
    }
}

/// A comparison of a [`Txn`].
///
/// ```no_run
/// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// // Every comparison must hold: "config" is "v1", and was last written before revision 100.
/// let txn = Txn::new()
///     .when([
///         Cmp::value("config", CmpOp::Equal, "v1"),
///         Cmp::mod_revision("config", CmpOp::Less, 100),
///     ])
///     .and_then([TxnOp::put("config", "v2")]);
/// client.txn(txn).await?;
/// # Ok(()) }
/// ```
pub struct Cmp;

/// How a [`Cmp`] compares.
///
/// ```no_run
/// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// // Writes "config" only if it exists (version > 0) and is not "frozen".
/// let txn = Txn::new()
///     .when([Cmp::version("config", CmpOp::Greater, 0)])
///     .when([Cmp::value("config", CmpOp::NotEqual, "frozen")])
///     .and_then([TxnOp::put("config", "v2")]);
/// client.txn(txn).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`.
    Equal,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `<`.
    Less,
}

impl Cmp {
    fn make(key: Bytes, op: CmpOp, target: CompareTarget, union: TargetUnion) -> Compare {
        let result = match op {
            CmpOp::Equal => CompareResult::Equal,
            CmpOp::NotEqual => CompareResult::NotEqual,
            CmpOp::Greater => CompareResult::Greater,
            CmpOp::Less => CompareResult::Less,
        };
        Compare {
            key,
            result: result as i32,
            target: target as i32,
            target_union: Some(union),
            range_end: Bytes::new(),
        }
    }

    /// The key's value compared with `value`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Compare-and-swap: "config" becomes "v2" only if it still is "v1".
    /// let txn = Txn::new()
    ///     .when([Cmp::value("config", CmpOp::Equal, "v1")])
    ///     .and_then([TxnOp::put("config", "v2")]);
    /// let swapped = client.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn value(key: impl Into<Bytes>, op: CmpOp, value: impl Into<Bytes>) -> Compare {
        Cmp::make(
            key.into(),
            op,
            CompareTarget::Value,
            TargetUnion::Value(value.into()),
        )
    }

    /// The key's version (0: absent) compared with `version`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Creates "config" only if it does not exist (version 0).
    /// let txn = Txn::new()
    ///     .when([Cmp::version("config", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("config", "defaults")]);
    /// let created = client.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn version(key: impl Into<Bytes>, op: CmpOp, version: i64) -> Compare {
        Cmp::make(
            key.into(),
            op,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    }

    /// The key's create revision (0: absent) compared with `revision`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Writes "leader" only if it is the key that was read: not deleted and created again since.
    /// let created = client.get("leader").await?.kvs.first().map_or(0, |kv| kv.create_revision);
    /// let txn = Txn::new()
    ///     .when([Cmp::create_revision("leader", CmpOp::Equal, created)])
    ///     .and_then([TxnOp::put("leader", "still me")]);
    /// client.txn(txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn create_revision(key: impl Into<Bytes>, op: CmpOp, revision: i64) -> Compare {
        Cmp::make(
            key.into(),
            op,
            CompareTarget::Create,
            TargetUnion::CreateRevision(revision),
        )
    }

    /// The key's last modification revision compared with `revision`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Read-modify-write: the put happens only if nobody wrote "counter" since the read.
    /// let kv = client.get("counter").await?.kvs.pop().unwrap_or_default();
    /// let n: u64 = std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    /// let txn = Txn::new()
    ///     .when([Cmp::mod_revision("counter", CmpOp::Equal, kv.mod_revision)])
    ///     .and_then([TxnOp::put("counter", (n + 1).to_string())]);
    /// let done = client.txn(txn).await?.succeeded; // false: read again and retry
    /// # Ok(()) }
    /// ```
    pub fn mod_revision(key: impl Into<Bytes>, op: CmpOp, revision: i64) -> Compare {
        Cmp::make(
            key.into(),
            op,
            CompareTarget::Mod,
            TargetUnion::ModRevision(revision),
        )
    }

    /// The key's lease compared with `lease` (0: none).
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(10).await?;
    /// client.put_with_lease("nodes/me", "10.0.0.7", lease.id).await?;
    /// // Later: deletes "nodes/me" only if it is still attached to that lease.
    /// let txn = Txn::new()
    ///     .when([Cmp::lease("nodes/me", CmpOp::Equal, lease.id)])
    ///     .and_then([TxnOp::delete("nodes/me")]);
    /// client.txn(txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn lease(key: impl Into<Bytes>, op: CmpOp, lease: i64) -> Compare {
        Cmp::make(
            key.into(),
            op,
            CompareTarget::Lease,
            TargetUnion::Lease(lease),
        )
    }
}

/// An operation of a [`Txn`].
///
/// ```no_run
/// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// // Moves "jobs/1" to "done/1" in one revision, if nobody changed it since it was read.
/// let kv = client.get("jobs/1").await?.kvs.pop().unwrap_or_default();
/// let txn = Txn::new()
///     .when([Cmp::mod_revision("jobs/1", CmpOp::Equal, kv.mod_revision)])
///     .and_then([TxnOp::delete("jobs/1"), TxnOp::put("done/1", kv.value)]);
/// client.txn(txn).await?;
/// # Ok(()) }
/// ```
pub struct TxnOp;

impl TxnOp {
    /// Sets `key` to `value`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Both keys are written at the same revision, or neither is.
    /// let txn = Txn::new().and_then([TxnOp::put("config/a", "1"), TxnOp::put("config/b", "2")]);
    /// client.txn(txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    /// Reads `key`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{proto::etcdserverpb::response_op::Response, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Two keys read at one revision.
    /// let txn = Txn::new().and_then([TxnOp::get("config/a"), TxnOp::get("config/b")]);
    /// for answer in client.txn(txn).await?.responses {
    ///     if let Some(Response::ResponseRange(range)) = answer.response {
    ///         println!("{:?}", range.kvs.first().map(|kv| &kv.value));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn get(key: impl Into<Bytes>) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestRange(RangeRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    /// Deletes `key`.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Releases "lock" only if this process still holds it.
    /// let txn = Txn::new()
    ///     .when([Cmp::value("lock", CmpOp::Equal, "me")])
    ///     .and_then([TxnOp::delete("lock")]);
    /// let released = client.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn delete(key: impl Into<Bytes>) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    /// A nested transaction.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // If "mode" is "on": creates "a" unless it exists already.
    /// let create = Txn::new()
    ///     .when([Cmp::version("a", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("a", "1")]);
    /// let txn = Txn::new()
    ///     .when([Cmp::value("mode", CmpOp::Equal, "on")])
    ///     .and_then([TxnOp::txn(create)]);
    /// client.txn(txn).await?;
    /// # Ok(()) }
    /// ```
    pub fn txn(txn: Txn) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestTxn(txn.0)),
        }
    }
}

/// A transaction: if every comparison holds, the `and_then` operations, else the `or_else`
/// ones, at one revision.
///
/// ```
/// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
///
/// let txn = Txn::new()
///     .when([Cmp::value("owner", CmpOp::Equal, "me")])
///     .and_then([TxnOp::put("owner", "you")])
///     .or_else([TxnOp::get("owner")]);
/// let request: etcd_client::v3::proto::etcdserverpb::TxnRequest = txn.into();
/// assert_eq!(request.success.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Txn(TxnRequest);

impl Txn {
    /// An empty transaction (it succeeds and does nothing).
    ///
    /// ```no_run
    /// use etcd_client::v3::{Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Without comparisons a transaction always succeeds.
    /// let answer = client.txn(Txn::new().and_then([TxnOp::put("a", "1")])).await?;
    /// assert!(answer.succeeded);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Adds comparisons, all of which must hold.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Both must hold: "a" exists and "b" does not.
    /// let txn = Txn::new()
    ///     .when([Cmp::version("a", CmpOp::Greater, 0), Cmp::version("b", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("b", "after a")]);
    /// let done = client.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Txn {
        self.0.compare.extend(compares);
        self
    }

    /// Adds operations done when the comparisons hold.
    ///
    /// ```no_run
    /// use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Claims job 1 for this worker, unless another worker has it already.
    /// let txn = Txn::new()
    ///     .when([Cmp::version("claims/1", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("claims/1", "worker-7"), TxnOp::get("jobs/1")]);
    /// let claimed = client.txn(txn).await?.succeeded;
    /// # Ok(()) }
    /// ```
    pub fn and_then(mut self, ops: impl IntoIterator<Item = RequestOp>) -> Txn {
        self.0.success.extend(ops);
        self
    }

    /// Adds operations done when a comparison fails.
    ///
    /// ```no_run
    /// use etcd_client::v3::{proto::etcdserverpb::response_op::Response, Cmp, CmpOp, Txn, TxnOp};
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// // Creates "leader", or else reads who has it: one round trip either way.
    /// let txn = Txn::new()
    ///     .when([Cmp::version("leader", CmpOp::Equal, 0)])
    ///     .and_then([TxnOp::put("leader", "me")])
    ///     .or_else([TxnOp::get("leader")]);
    /// let first = client.txn(txn).await?.responses.into_iter().next().and_then(|r| r.response);
    /// if let Some(Response::ResponseRange(range)) = first {
    ///     println!("led by {:?}", range.kvs.first().map(|kv| &kv.value));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn or_else(mut self, ops: impl IntoIterator<Item = RequestOp>) -> Txn {
        self.0.failure.extend(ops);
        self
    }
}

impl From<Txn> for TxnRequest {
    fn from(txn: Txn) -> TxnRequest {
        txn.0
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`).
///
/// ```no_run
/// use etcd_client::v3::{prefix_end, proto::etcdserverpb::RangeRequest};
///
/// assert_eq!(prefix_end(b"jobs/"), b"jobs0");
/// // Every key starting with "jobs/": the range [jobs/, jobs0).
/// let request = RangeRequest {
///     key: "jobs/".into(),
///     range_end: prefix_end(b"jobs/").into(),
///     ..Default::default()
/// };
/// ```
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
///
/// ```no_run
/// use etcd_client::v3::proto::mvccpb::event::EventType;
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// let mut watch = client.watch_prefix("jobs/", 0);
/// // Until the first deletion; dropping the watch ends it.
/// while let Some(event) = watch.next().await? {
///     if event.r#type() == EventType::Delete {
///         break;
///     }
/// }
/// drop(watch);
/// # Ok(()) }
/// ```
pub struct Watch {
    events: tokio::sync::mpsc::Receiver<Result<Vec<Event>, Error>>,
    pending: std::collections::VecDeque<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// The next event; `Ok(None)` once the watch has ended (it does not end on its own, but
    /// on [`Error::Compacted`]).
    ///
    /// ```no_run
    /// use etcd_client::v3::Error;
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut watch = client.watch_key("config", 1);
    /// loop {
    ///     match watch.next().await {
    ///         Ok(Some(event)) => println!("{:?}", event.kv.map(|kv| kv.value)),
    ///         Ok(None) => break,
    ///         Err(Error::Compacted { .. }) => {
    ///             // Revision 1 is compacted away: read "config" afresh, then watch
    ///             // from the revision after that read.
    ///             break;
    ///         }
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
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

    /// The next events as the member sent them: one or more whole revisions, in order, never
    /// part of one (a resumed watch starts after the last revision handed out). Events that
    /// [`Watch::next`] left over come first, on their own. `Ok(None)` and errors as for
    /// [`Watch::next`].
    ///
    /// For a mirror or a cache that must apply each revision's changes together:
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut watch = client.watch_prefix("jobs/", 0);
    /// while let Some(events) = watch.next_batch().await? {
    ///     let first = events[0].kv.as_ref().map_or(0, |kv| kv.mod_revision);
    ///     println!("{} change(s) from revision {first} on", events.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Event>>, Error> {
        if !self.pending.is_empty() {
            return Ok(Some(self.pending.drain(..).collect()));
        }
        match self.events.recv().await {
            Some(Ok(batch)) => Ok(Some(batch)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One watch stream carrying many watches (see [`Client::watch_stream`]).
pub struct WatchStream {
    requests: WatchRequests,
    responses: tonic::Streaming<WatchResponse>,
}

impl WatchStream {
    /// Where the stream's requests go: creations, cancellations and progress requests, from
    /// wherever the handle is cloned to while the responses are read here.
    ///
    /// ```no_run
    /// use etcd_client::v3::proto::etcdserverpb::WatchCreateRequest;
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut stream = client.watch_stream().await?;
    /// let requests = stream.requests();
    /// tokio::spawn(async move {
    ///     requests.create(WatchCreateRequest { key: "a".into(), ..Default::default() });
    /// });
    /// while let Some(response) = stream.message().await? {
    ///     println!("{response:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn requests(&self) -> WatchRequests {
        self.requests.clone()
    }

    /// The next response of any of the stream's watches; `Ok(None)` once the member ended
    /// the stream.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut stream = client.watch_stream().await?;
    /// while let Some(response) = stream.message().await? {
    ///     println!("{response:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        self.responses.message().await.map_err(Error::Status)
    }
}

/// The requests of a [`WatchStream`]; cheap to clone. Each call is false once the stream is
/// gone.
#[derive(Clone)]
pub struct WatchRequests(tokio::sync::mpsc::UnboundedSender<WatchRequest>);

impl WatchRequests {
    fn send(&self, request: RequestUnion) -> bool {
        self.0
            .send(WatchRequest {
                request_union: Some(request),
            })
            .is_ok()
    }

    /// Adds a watch; the member answers with a `created` response naming its id (creations
    /// are answered in the order they were sent).
    ///
    /// ```no_run
    /// use etcd_client::v3::proto::etcdserverpb::WatchCreateRequest;
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let stream = client.watch_stream().await?;
    /// let start_revision = 1;
    /// stream.requests().create(WatchCreateRequest { key: "a".into(), start_revision, ..Default::default() });
    /// # Ok(()) }
    /// ```
    pub fn create(&self, request: WatchCreateRequest) -> bool {
        self.send(RequestUnion::CreateRequest(request))
    }

    /// Ends the watch `watch_id`; the member answers with a `canceled` response.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let stream = client.watch_stream().await?;
    /// stream.requests().cancel(0);
    /// # Ok(()) }
    /// ```
    pub fn cancel(&self, watch_id: i64) -> bool {
        self.send(RequestUnion::CancelRequest(WatchCancelRequest { watch_id }))
    }

    /// Asks for a progress notification: once every watch of the stream has been sent its
    /// events up to the member's revision, a response with watch id -1, no events and that
    /// revision in its header.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let mut stream = client.watch_stream().await?;
    /// stream.requests().request_progress();
    /// let notification = stream.message().await?;
    /// # Ok(()) }
    /// ```
    pub fn request_progress(&self) -> bool {
        self.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
    }
}

/// Where a kept-alive lease stands.
///
/// ```no_run
/// use etcd_client::v3::KeepAliveState;
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// let lease = client.lease_grant(10).await?;
/// let keeper = client.keep_alive(lease.id);
/// match keeper.state() {
///     KeepAliveState::Starting => println!("not renewed yet"),
///     KeepAliveState::Alive { ttl } => println!("renewed: {ttl} s left"),
///     KeepAliveState::Gone => println!("expired or revoked"),
/// }
/// # Ok(()) }
/// ```
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
///
/// ```no_run
/// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
/// // A registration that lasts as long as this process (and `keeper`) does.
/// let lease = client.lease_grant(10).await?;
/// let keeper = client.keep_alive(lease.id);
/// client.put_with_lease("services/api/10.0.0.7", "up", lease.id).await?;
/// // ... serve ...
/// drop(keeper); // renewals stop: the key goes within 10 s
/// # Ok(()) }
/// ```
pub struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
    state: tokio::sync::watch::Receiver<KeepAliveState>,
    answers: tokio::sync::mpsc::Receiver<LeaseKeepAliveResponse>,
}

/// Renewal answers kept for [`KeepAlive::next`] before newer ones are dropped.
const KEEP_ALIVE_ANSWERS: usize = 16;

impl KeepAlive {
    /// Where the lease stands now.
    ///
    /// ```no_run
    /// use etcd_client::v3::KeepAliveState;
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(10).await?;
    /// let keeper = client.keep_alive(lease.id);
    /// // ... from time to time:
    /// if keeper.state() == KeepAliveState::Gone {
    ///     eprintln!("lease {:x} lost: register again", lease.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> KeepAliveState {
        *self.state.borrow()
    }

    /// The next renewal's answer, or `None` once the lease expired or was revoked (as etcd's
    /// client closes its keep-alive channel). Answers not read in time are dropped, so a
    /// keeper nobody reads never blocks.
    ///
    /// ```no_run
    /// # async fn f(client: etcd_client::v3::Client) -> Result<(), etcd_client::v3::Error> {
    /// let lease = client.lease_grant(10).await?;
    /// let mut keeper = client.keep_alive(lease.id);
    /// while let Some(answer) = keeper.next().await {
    ///     println!("renewed for {} s", answer.ttl);
    /// }
    /// println!("lease {:x} expired or revoked", lease.id);
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<LeaseKeepAliveResponse> {
        self.answers.recv().await
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
        // https needs a CA to verify members with.
        assert!(matches!(
            Client::new(["https://127.0.0.1:2379"]),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Client::new(["unix://etcd.sock"]),
            Err(Error::InvalidEndpoint(_))
        ));
    }
}
