//! Outbound peer traffic: raft messages to the other members over HTTP on their `-s` address.
//!
//! Each peer has a bounded queue and one task that owns one keep-alive HTTP/1.1 connection.
//! The task takes whatever is queued (up to [`MAX_BATCH_MESSAGES`] messages or
//! [`MAX_BATCH_BYTES`]) and sends it as one `POST /raft`, so a busy leader sends few, large
//! requests. The raft thread only ever calls [`Transport::send`], which never blocks: when a
//! peer's queue is full the message is dropped and raft retransmits (a follower that misses an
//! append rejects the next one; heartbeats repeat). A failed request drops its batch, reports
//! the peer unreachable to raft (which then probes instead of pipelining), and the connection
//! is re-established with exponential backoff.
//!
//! Snapshots (`MsgSnapshot`) can be large, so each is sent on a connection of its own
//! (`POST /raft/snapshot`) without holding up the peer's queue; the outcome is reported to
//! raft (`report_snapshot`).
//!
//! Wire format of a `/raft` body: repeated `len: u32 LE` + protobuf `eraftpb.Message`.
//!
//! With peer TLS on, every connection is TLS, presenting this member's peer certificate.
//!
//! Not here: receiving (see `http/peer.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::mpsc;

/// What the transport tells the raft driver about delivery.
#[derive(Debug)]
pub enum Report {
    /// A peer could not be reached.
    Unreachable(u64),
    /// A peer answered that this member has been removed from the cluster.
    Removed,
    /// Proposals (by entry context) that were never sent: the connection failed before it.
    Undelivered(Vec<Vec<u8>>),
    /// How sending a snapshot to a peer went.
    SnapshotStatus {
        /// The peer.
        to: u64,
        /// Whether it was delivered.
        ok: bool,
    },
}

/// Where reports go (the driver wraps its request channel in it).
pub type Reports = std::sync::Arc<dyn Fn(Report) + Send + Sync>;

/// Messages a peer's queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most messages in one request.
pub const MAX_BATCH_MESSAGES: usize = 512;
/// Most bytes in one request (a batch stops growing past this).
pub const MAX_BATCH_BYTES: usize = 8 << 20;
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on one `/raft` request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on sending one snapshot.
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Encodes messages as a `/raft` body.
pub fn encode_batch(msgs: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        let bytes = m
            .write_to_bytes()
            .expect("encoding a raft message cannot fail");
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Decodes a `/raft` body.
pub fn decode_batch(mut body: &[u8]) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 4 {
            return Err("truncated length".into());
        }
        let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        body = &body[4..];
        if body.len() < len {
            return Err("truncated message".into());
        }
        out.push(Message::parse_from_bytes(&body[..len]).map_err(|e| e.to_string())?);
        body = &body[len..];
    }
    Ok(out)
}

/// Delivery statistics of one peer, as `/v2/stats/leader` shows them: how many batches of raft
/// messages were delivered or failed, and the round-trip times of the delivered ones.
#[derive(Debug, Clone, Default)]
pub struct PeerStats {
    /// Batches delivered.
    pub success: u64,
    /// Batches that failed (connect, send, or an error answer).
    pub fail: u64,
    /// Latest round trip, in seconds.
    pub current: f64,
    /// Smallest round trip, in seconds.
    pub minimum: f64,
    /// Largest round trip, in seconds.
    pub maximum: f64,
    sum: f64,
    sum_of_squares: f64,
}

impl PeerStats {
    fn succeeded(&mut self, rtt: Duration) {
        let s = rtt.as_secs_f64();
        self.success += 1;
        self.current = s;
        self.minimum = if self.success == 1 {
            s
        } else {
            self.minimum.min(s)
        };
        self.maximum = self.maximum.max(s);
        self.sum += s;
        self.sum_of_squares += s * s;
    }

    /// Mean round trip, in seconds.
    pub fn average(&self) -> f64 {
        if self.success == 0 {
            0.0
        } else {
            self.sum / self.success as f64
        }
    }

    /// Standard deviation of the round trips, in seconds.
    pub fn standard_deviation(&self) -> f64 {
        if self.success == 0 {
            return 0.0;
        }
        let mean = self.average();
        (self.sum_of_squares / self.success as f64 - mean * mean)
            .max(0.0)
            .sqrt()
    }
}

/// Statistics of every peer, by raft id, shared with the HTTP API.
pub type SharedPeerStats = Arc<Mutex<HashMap<u64, PeerStats>>>;

fn record(stats: &SharedPeerStats, id: u64, rtt: Option<Duration>) {
    let mut all = stats.lock().expect("peer stats poisoned");
    let s = all.entry(id).or_default();
    match rtt {
        Some(rtt) => s.succeeded(rtt),
        None => s.fail += 1,
    }
}

struct Peer {
    url: String,
    queue: mpsc::Sender<Message>,
    task: tokio::task::JoinHandle<()>,
}

/// The raft thread's outbound side. Owned by the driver.
pub struct Transport {
    runtime: tokio::runtime::Handle,
    tls: Option<tokio_rustls::TlsConnector>,
    local: Option<IpAddr>,
    /// Where to report unreachable peers and snapshot outcomes.
    driver: Reports,
    peers: HashMap<u64, Peer>,
    self_id: u64,
    stats: SharedPeerStats,
}

impl Transport {
    /// A transport that spawns its tasks on `runtime`.
    pub fn new(
        runtime: tokio::runtime::Handle,
        tls: Option<tokio_rustls::TlsConnector>,
        local: Option<IpAddr>,
        driver: Reports,
        self_id: u64,
        stats: SharedPeerStats,
    ) -> Transport {
        Transport {
            runtime,
            tls,
            local,
            driver,
            stats,
            peers: HashMap::new(),
            self_id,
        }
    }

    /// Makes the peer set match `members` (id → peer URL): starts, restarts or stops tasks.
    pub fn set_peers(&mut self, members: &BTreeMap<u64, String>) {
        self.peers.retain(|id, p| {
            let keep = members.get(id) == Some(&p.url);
            if !keep {
                p.task.abort();
            }
            keep
        });
        self.stats
            .lock()
            .expect("peer stats poisoned")
            .retain(|id, _| members.contains_key(id));
        for (id, url) in members {
            if *id == self.self_id || self.peers.contains_key(id) {
                continue;
            }
            let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
            let task = self.runtime.spawn(run_peer(
                *id,
                url.clone(),
                self.tls.clone(),
                self.local,
                rx,
                self.driver.clone(),
                self.stats.clone(),
            ));
            self.peers.insert(
                *id,
                Peer {
                    url: url.clone(),
                    queue,
                    task,
                },
            );
        }
    }

    /// Queues messages; never blocks.
    pub fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let Some(peer) = self.peers.get(&m.to) else {
                tracing::debug!(
                    to = m.to,
                    "no address for raft message {:?}",
                    m.get_msg_type()
                );
                continue;
            };
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.runtime.spawn(send_snapshot(
                    m,
                    peer.url.clone(),
                    self.tls.clone(),
                    self.local,
                    self.driver.clone(),
                ));
                continue;
            }
            if let Err(e) = peer.queue.try_send(m) {
                tracing::debug!("dropping a raft message: {e}");
                let m = match e {
                    mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
                };
                report_undelivered(std::slice::from_ref(&m), &self.driver);
            }
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for p in self.peers.values() {
            p.task.abort();
        }
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn run_peer(
    id: u64,
    url: String,
    tls: Option<tokio_rustls::TlsConnector>,
    local: Option<IpAddr>,
    mut rx: mpsc::Receiver<Message>,
    driver: Reports,
    stats: SharedPeerStats,
) {
    let mut conn: Option<Sender> = None;
    let mut backoff = Duration::from_millis(50);
    while let Some(first) = rx.recv().await {
        let mut size = first.compute_size() as usize;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_MESSAGES && size < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(m) => {
                    size += m.compute_size() as usize;
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let body = encode_batch(&batch);
        let body_len = body.len() as u64;
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            match connect(&url, tls.as_ref(), local).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    // Nothing of this batch left this member.
                    record(&stats, id, None);
                    sent_failure(id);
                    tracing::debug!(peer = id, %url, "raft messages not delivered: {e}");
                    report_undelivered(&batch, &driver);
                    driver(Report::Unreachable(id));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        let sender = conn.as_mut().expect("connected above");
        let started = std::time::Instant::now();
        let result = post_checked(sender, &url, "/raft", body, REQUEST_TIMEOUT).await;
        let delivered = matches!(result, Ok((204, _)));
        record(&stats, id, delivered.then(|| started.elapsed()));
        if delivered {
            let m = crate::metrics::metrics();
            let to = format!("{id:x}");
            m.peer_sent_bytes.with_label_values(&[&to]).inc_by(body_len);
            // The batch's round trip (etcd measures it with probes).
            m.peer_rtt
                .with_label_values(&[&to])
                .observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok((204, _)) => backoff = Duration::from_millis(50),
            Ok((410, _)) => {
                tracing::warn!(peer = id, %url, "peer says this member was removed from the cluster");
                driver(Report::Removed);
                conn = None;
            }
            Ok((status, body)) => {
                tracing::warn!(peer = id, %url, status, "peer refused raft messages: {}", String::from_utf8_lossy(&body));
                conn = None;
            }
            Err(e) => {
                sent_failure(id);
                tracing::debug!(peer = id, %url, "raft messages not delivered: {}", e.message);
                if !e.sent {
                    // The connection had closed (the peer died) before the batch was written:
                    // forwarded proposals in it can safely go again.
                    report_undelivered(&batch, &driver);
                }
                conn = None;
                driver(Report::Unreachable(id));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Tells the driver which forwarded proposals in `msgs` were never sent.
fn report_undelivered(msgs: &[Message], driver: &Reports) {
    let contexts: Vec<Vec<u8>> = msgs
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgPropose)
        .flat_map(|m| m.get_entries().iter().map(|e| e.context.to_vec()))
        .collect();
    if !contexts.is_empty() {
        driver(Report::Undelivered(contexts));
    }
}

async fn send_snapshot(
    msg: Message,
    url: String,
    tls: Option<tokio_rustls::TlsConnector>,
    local: Option<IpAddr>,
    driver: Reports,
) {
    let to = msg.to;
    let index = msg.get_snapshot().get_metadata().index;
    let body = encode_batch(std::slice::from_ref(&msg));
    let result = async {
        let mut sender = connect(&url, tls.as_ref(), local).await?;
        post(&mut sender, &url, "/raft/snapshot", body, SNAPSHOT_TIMEOUT).await
    }
    .await;
    let ok = matches!(result, Ok((204, _)));
    match &result {
        Ok((204, _)) => tracing::info!(peer = to, index, "snapshot sent"),
        Ok((status, body)) => tracing::warn!(
            peer = to,
            index,
            status,
            "snapshot refused: {}",
            String::from_utf8_lossy(body)
        ),
        Err(e) => tracing::warn!(peer = to, index, "snapshot not sent: {e}"),
    }
    driver(Report::SnapshotStatus { to, ok });
}

/// `host:port` of an `http://host:port` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// What a connection runs over: TCP, or TLS over TCP.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Opens a keep-alive HTTP/1.1 connection to a peer URL, over TLS when `tls` is given.
/// With `local`, the connection starts from that address (a member's own peer address, so
/// that peers and anything between them can tell who is talking).
pub async fn connect(
    url: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    local: Option<IpAddr>,
) -> Result<Sender, String> {
    let addr = authority(url);
    let open = async {
        let target = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let socket = if target.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(ip) = local.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            if let Err(e) = socket.bind(std::net::SocketAddr::new(ip, 0)) {
                tracing::debug!("cannot bind outgoing peer connection to {ip}: {e}");
            }
        }
        socket.connect(target).await
    };
    let stream = tokio::time::timeout(Duration::from_secs(2), open)
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = match tls {
        Some(connector) => {
            let host = addr
                .rsplit_once(':')
                .map_or(addr, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
            let handshake = connector.connect(name, stream);
            Box::new(
                tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, handshake)
                    .await
                    .map_err(|_| format!("TLS handshake with {addr} timed out"))?
                    .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?,
            )
        }
        None => Box::new(stream),
    };
    let (sender, connection) = http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("peer connection closed: {e}");
        }
    });
    Ok(sender)
}

/// Opens a connection to a peer URL (see [`connect`]) for one POST; returns status and body.
pub async fn post_once(
    url: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    local: Option<IpAddr>,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let mut conn = connect(url, tls, local).await?;
    post(&mut conn, url, path, body, timeout).await
}

/// Sends one POST on a connection; returns status and body.
pub async fn post(
    sender: &mut Sender,
    url: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    post_checked(sender, url, path, body, timeout)
        .await
        .map_err(|e| e.message)
}

/// Why a POST failed; `sent` is false when the request provably never left this process (the
/// connection closed before hyper wrote it), so nothing of it can have reached the peer.
struct PostError {
    sent: bool,
    message: String,
}

async fn post_checked(
    sender: &mut Sender,
    url: &str,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), PostError> {
    let unsent = |message: String| PostError {
        sent: false,
        message,
    };
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority(url))
        .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| unsent(e.to_string()))?;
    let exchange = async {
        sender.ready().await.map_err(|e| unsent(e.to_string()))?;
        let response = sender.try_send_request(request).await.map_err(|mut e| {
            // hyper hands the request back only if it never wrote it.
            let sent = e.take_message().is_none();
            PostError {
                sent,
                message: e.into_error().to_string(),
            }
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| PostError {
                sent: true,
                message: e.to_string(),
            })?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| PostError {
            sent: true,
            message: format!("{path} on {url} timed out after {timeout:?}"),
        })?
}

/// Counts a batch of raft messages not delivered to `id`.
fn sent_failure(id: u64) {
    crate::metrics::metrics()
        .peer_sent_failures
        .with_label_values(&[&format!("{id:x}")])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip() {
        let msgs: Vec<Message> = (1..=3)
            .map(|i| Message {
                to: i,
                from: 9,
                term: 4,
                ..Default::default()
            })
            .collect();
        let body = encode_batch(&msgs);
        assert_eq!(decode_batch(&body).unwrap(), msgs);
        assert!(decode_batch(&body[..body.len() - 1]).is_err());
        assert_eq!(decode_batch(&[]).unwrap(), vec![]);
    }

    #[test]
    fn authority_strips_scheme_and_path() {
        assert_eq!(authority("http://127.0.0.1:7001"), "127.0.0.1:7001");
        assert_eq!(authority("https://h:1/x"), "h:1");
    }
}
