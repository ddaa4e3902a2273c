//! The composition root: prepare the data directory, open storage and start the raft driver,
//! bind the client and peer listeners, serve, and shut down in order.
//!
//! Shutdown order: stop accepting connections and end waiting watches, let in-flight requests
//! finish (bounded by [`DRAIN_TIMEOUT`]), then stop the driver, which persists what it has and
//! fails anything still unanswered, then return.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_store::{Command, Store};
use tokio::net::TcpListener;

use crate::cluster::{self, Joined};
use crate::config::{self, Config, NodeInfo};
use crate::http::{self, App};
use crate::node::Node;
use crate::raft::{self, driver::StartError, storage::DiskStorage};
use crate::tls;

/// How long in-flight requests may take to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle HTTP/2 connection is pinged this often (etcd's `--grpc-keepalive-interval`).
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
/// … and closed when a ping is not answered within this (`--grpc-keepalive-timeout`).
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the node could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory or its configuration file.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Storage or raft could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A TLS file is missing, unreadable, mismatched or expired.
    #[error(transparent)]
    Tls(#[from] tls::Error),
    /// The raft driver stopped before the node was ready.
    #[error("the raft driver stopped during start-up")]
    DriverStopped,
    /// Joining the cluster given with `-C`/`-CF` failed.
    #[error("{0}")]
    Join(String),
    /// A configuration value that parsed but cannot be used (a key file gone since).
    #[error("{0}")]
    Config(String),
}

/// Runs a node until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let (mut node, _data_dir_lock) = prepare_data_dir(&config)?;
    // (The WAL's directory is stored with the rest of the member's configuration: later
    // starts find the log where the first one put it.)
    let layout = raft::Layout::new(&config.data_dir, node.wal_dir.as_deref());
    let client_tls = tls::server_config(&node.client_tls, tls::Side::Client)?;
    let peer_tls = tls::server_config(&node.peer_tls, tls::Side::Peer)?;
    let peer_connector =
        tls::peer_client_config(&node.peer_tls)?.map(tokio_rustls::TlsConnector::from);
    // Stored only once it is known to work, so that a start with a wrong flag does not pin
    // that flag for every later start.
    if !config::info_path(&config.data_dir).exists() {
        config::save_info(&config.data_dir, &node).map_err(|source| Error::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let registration = Command::Join {
        id: node.id,
        name: node.name.clone(),
        raft_url: node.peer_url(),
        etcd_url: node.client_urls(),
    };
    // A member with a log restarts from it (and rejoins silently); a new one either joins the
    // cluster named by -C/-CF or starts a new cluster of its own.
    if let Some(file) = &config.restore_snapshot {
        if DiskStorage::exists(&layout) {
            tracing::info!(
                "--restore-snapshot: the data directory holds a log already; starting from it"
            );
        } else {
            crate::etcd_snapshot::restore(
                file,
                config.skip_hash_check,
                &layout,
                std::slice::from_ref(&registration),
                config.history,
            )
            .map_err(|e| Error::Config(e.to_string()))?;
            tracing::info!(file = %file.display(), "data directory created from the snapshot");
        }
    }
    let peers_file = config.data_dir.join("peers");
    let mut seed_peers = load_peers(&peers_file);
    // A member restarting from its own data (etcd checks only such a one on boot).
    let restarted = DiskStorage::exists(&layout);
    let expected_cluster = config
        .static_cluster
        .as_ref()
        .map(|s| cluster::static_cluster_id(&s.token, &s.first_peer));
    let registration = if DiskStorage::exists(&layout) {
        None
    } else {
        let mut peers = join_peers(&config)?;
        if peers.is_empty() && !config.probe.is_empty() {
            // The first member of a static cluster: if the others already run the cluster
            // (this member lost its data, or was late), join it rather than start a second.
            match cluster::join_cluster(
                &registration,
                &config.probe,
                1,
                peer_connector.as_ref(),
                expected_cluster,
            )
            .await
            {
                Ok(_) => peers = config.probe.clone(),
                Err(Joined::NobodyAnswered(_)) => {}
                Err(Joined::Refused(e)) => return Err(Error::Join(e)),
            }
        }
        if peers.is_empty() {
            if let Some(s) = config.static_cluster.as_ref().filter(|s| s.first) {
                // The first member of a new static cluster: the token names the cluster.
                node.id = cluster::static_member_id(&s.token, &s.first_peer);
                config::save_info(&config.data_dir, &node).map_err(|source| Error::DataDir {
                    path: config.data_dir.display().to_string(),
                    source,
                })?;
                Some(Command::Join {
                    id: node.id,
                    name: node.name.clone(),
                    raft_url: node.peer_url(),
                    etcd_url: node.client_urls(),
                })
            } else {
                Some(registration)
            }
        } else {
            let answer = cluster::join_cluster(
                &registration,
                &peers,
                config.join_retries,
                peer_connector.as_ref(),
                expected_cluster,
            )
            .await
            .map_err(|e| Error::Join(e.into_message()))?;
            seed_peers = answer.members;
            if let Some(id) = answer.id.filter(|id| *id != node.id) {
                // Added beforehand (`POST /v2/members`) under this id: take it. Nothing is in
                // the log yet, so only the stored configuration changes.
                tracing::info!(
                    id = format!("{id:x}"),
                    "taking the id this member was added with"
                );
                node.id = id;
                config::save_info(&config.data_dir, &node).map_err(|source| Error::DataDir {
                    path: config.data_dir.display().to_string(),
                    source,
                })?;
            }
            // Kept until the log names the members: a restart before then still reaches them.
            save_peers(&peers_file, &seed_peers).map_err(|source| Error::DataDir {
                path: peers_file.display().to_string(),
                source,
            })?;
            None
        }
    };
    let mut store = Store::new(config.history);
    // v3 values over a few dozen bytes live in files beside the log, not in the heap.
    store.set_v3_values(etcd_mvcc::Values::new(Arc::new(
        crate::values::ValueFiles::new(&config.data_dir),
    )));
    let store = Arc::new(RwLock::new(store));
    let tokens = Arc::new(
        crate::tokens::Tokens::from_flag(&config.auth_token, config.auth_token_ttl)
            .map_err(|e| Error::Config(e.to_string()))?,
    );
    let joined_through: Vec<String> = seed_peers.values().cloned().collect();
    let opts = raft::Options {
        id: node.id,
        first_entry: registration.map(|r| cluster::first_entry(node.id, &r)),
        tick: Duration::from_millis(config.heartbeat_ms),
        election_ticks: (config.election_ms / config.heartbeat_ms) as usize,
        snapshot_count: config.snapshot_count,
        seed_peers,
        peer_tls: peer_connector.clone(),
        peer_local: peer_local_ip(&node),
        tokens: tokens.clone(),
        max_snapshots: config.max_snapshots,
        max_wals: config.max_wals,
    };
    let raft::Started {
        handle,
        watchers,
        thread: driver,
        ready,
    } = raft::start(
        &layout,
        opts,
        store.clone(),
        tokio::runtime::Handle::current(),
    )?;
    let door = Node::new(handle, store, watchers, tokens);
    ready.await.map_err(|_| Error::DriverStopped)?;
    if config.initial_corrupt_check && restarted {
        crate::corrupt::initial_check(&door, peer_connector.as_ref(), peer_local_ip(&node))
            .await
            .map_err(Error::Config)?;
    }
    tokio::spawn(cluster::publish(
        door.clone(),
        node.name.clone(),
        node.client_urls(),
    ));
    tokio::spawn(cluster::notice_removal(
        door.clone(),
        joined_through,
        peer_connector.clone(),
        peer_local_ip(&node),
        Duration::from_millis(config.election_ms * 2).max(Duration::from_secs(1)),
    ));
    if let Some(every) = config.corrupt_check {
        tokio::spawn(crate::corrupt::run(
            door.clone(),
            every,
            peer_connector.clone(),
            peer_local_ip(&node),
        ));
    }
    if let Some(mode) = config.auto_compaction {
        tracing::info!(?mode, "auto-compaction on");
        tokio::spawn(crate::compactor::run(door.clone(), mode));
    }

    let bind = |addr: String| async move {
        TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    };
    let client_listener = bind(node.client_listen()).await?;
    let peer_listener = bind(node.peer_listen()).await?;
    // etcd's default ports beside the seed's, when no address was asked for: optional.
    let also = |addr: Option<String>| async move {
        let addr = addr?;
        match TcpListener::bind(&addr).await {
            Ok(l) => {
                tracing::info!("also listening on {addr}");
                Some(l)
            }
            Err(e) => {
                tracing::warn!("not also listening on {addr}: {e}");
                None
            }
        }
    };
    let extra_client = also(config.extra_client_listen.clone()).await;
    let extra_peer = also(config.extra_peer_listen.clone()).await;
    // The rest of --listen-client-urls and --listen-peer-urls: https ones with the side's
    // certificate, http ones in the clear.
    let more = |list: &[(bool, String)], tls: &Option<Arc<rustls::ServerConfig>>| {
        let list = list.to_vec();
        let tls = tls.clone();
        async move {
            let mut out = Vec::new();
            for (https, addr) in list {
                out.push((bind(addr).await?, if https { tls.clone() } else { None }));
            }
            Ok::<_, Error>(out)
        }
    };
    let client_listeners: Vec<_> = std::iter::once(client_listener)
        .chain(extra_client)
        .map(|l| (l, client_tls.clone()))
        .chain(more(&config.more_client_listen, &client_tls).await?)
        .collect();
    // Every listener is bound before any serves: a client that finds one port open finds
    // them all.
    let mut metrics_listeners = Vec::new();
    for (_, addr) in &config.listen_metrics {
        metrics_listeners.push(bind(addr.clone()).await?);
    }
    let peer_listeners: Vec<_> = std::iter::once(peer_listener)
        .chain(extra_peer)
        .map(|l| (l, peer_tls.clone()))
        .chain(more(&config.more_peer_listen, &peer_tls).await?)
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = App {
        node: door.clone(),
        member: Arc::new(node.clone()),
        max_value_bytes: config.max_value_bytes,
        max_members: config.max_cluster_size,
        shutdown: stop_rx.clone(),
        started: crate::clock::now(),
        passwords: Default::default(),
        quota: config.quota_backend_bytes,
        cors: Arc::new(config.cors.clone()),
    };
    crate::metrics::preregister_grpc();
    crate::metrics::set_extensive(config.metrics_extensive);
    let grpc = crate::grpc::router(crate::grpc::Ctx {
        node: door.clone(),
        max_request_bytes: config.max_request_bytes,
        max_txn_ops: config.max_txn_ops,
        progress_interval: config.watch_progress_interval,
        tick: std::time::Duration::from_millis(config.heartbeat_ms),
        quota: config.quota_backend_bytes,
        max_members: config.max_cluster_size,
        min_lease_ttl: (3 * config.election_ms).div_ceil(2000) as i64,
        bcrypt_cost: config.bcrypt_cost,
        peer_tls: peer_connector,
        cluster_id: Default::default(),
        stopping: stop_rx.clone(),
    });
    let mut servers = Vec::new();
    for (listener, tls) in client_listeners {
        servers.push(serve(
            listener,
            tls,
            "client",
            http::client_router(app.clone())
                .nest_service("/v3", crate::grpc::gateway::router(grpc.clone()))
                .nest_service("/v3beta", crate::grpc::gateway::router(grpc.clone())),
            Some(grpc.clone()),
            &stop_rx,
        ));
    }
    for ((https, addr), listener) in config.listen_metrics.iter().zip(metrics_listeners) {
        tracing::info!(
            "serving /metrics on {}://{addr}",
            if *https { "https" } else { "http" }
        );
        servers.push(serve(
            listener,
            if *https { client_tls.clone() } else { None },
            "metrics",
            http::metrics_router(app.clone()),
            None,
            &stop_rx,
        ));
    }
    // The peer API outlives the client one on stop: requests in flight here still need raft.
    let (peer_stop_tx, peer_stop_rx) = tokio::sync::watch::channel(false);
    let mut peer_servers = Vec::new();
    for (listener, tls) in peer_listeners {
        peer_servers.push(serve(
            listener,
            tls,
            "peer",
            http::peer_router(app.clone()),
            None,
            &peer_stop_rx,
        ));
    }
    println!(
        "etcd server [{}] listening on {}",
        node.name,
        node.client_url()
    );
    println!(
        "raft server [{}] listening on {}",
        node.name,
        node.peer_url()
    );
    tokio::spawn(notify_ready_once_published(door.clone()));

    tokio::select! {
        _ = shutdown => {}
        _ = door.removed() => {
            println!("etcd server [{}] was removed from the cluster; stopping", node.name);
        }
    }
    crate::systemd::notify_stopping();
    // A leader that stops hands leadership over first (etcd's leadership transfer on stop):
    // the cluster does not wait out an election timeout, and requests in flight here are
    // answered through the new leader.
    hand_over_leadership(
        &door,
        Duration::from_millis(config.heartbeat_ms),
        Duration::from_millis(config.election_ms),
    )
    .await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, async {
        for server in servers {
            let _ = server.await;
        }
    })
    .await
    .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
    }
    let _ = peer_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        for server in peer_servers {
            let _ = server.await;
        }
    })
    .await;
    door.shutdown();
    let _ = tokio::task::spawn_blocking(move || driver.join()).await;
    Ok(())
}

/// Tells systemd the member is ready once it serves as etcd means it: a leader is known and
/// the log has published this member (its name is in the member list), so a client of a unit
/// ordered after this one finds the cluster with this member in it.
async fn notify_ready_once_published(node: Node) {
    let me = node.id();
    loop {
        let published = node.read(|s| s.members().get(&me).is_some_and(|m| !m.name.is_empty()));
        if published && node.leader_id().is_some() {
            crate::systemd::notify_ready();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// As leader, transfers leadership to the started voting member whose log is furthest along,
/// waiting at most an election timeout; nothing to do on a follower or alone.
async fn hand_over_leadership(node: &Node, tick: Duration, election: Duration) {
    if !node.is_leader() {
        return;
    }
    let me = node.id();
    let voters: Vec<u64> = node.read(|s| {
        s.members()
            .iter()
            .filter(|(id, m)| **id != me && !m.learner && !m.name.is_empty())
            .map(|(id, _)| *id)
            .collect()
    });
    let mut best: Option<(u64, u64)> = None;
    for id in voters {
        // (A member not heard from lately, or with nothing, cannot take over.)
        if let Ok(Some((matched, _))) = node.progress(id).await {
            if matched > 0 && best.is_none_or(|(_, m)| matched > m) {
                best = Some((id, matched));
            }
        }
    }
    let Some((to, _)) = best else {
        return;
    };
    tracing::info!(to = format!("{to:x}"), "leadership transfer on stop");
    match node.move_leader(to, tick, election).await {
        Ok(true) => tracing::info!(to = format!("{to:x}"), "leadership transferred"),
        Ok(false) => tracing::warn!("leadership transfer on stop did not finish in time"),
        Err(e) => tracing::warn!("leadership transfer on stop: {e}"),
    }
}

/// With a loopback peer address (several members on one machine, as in the seed's examples
/// and the tests), outgoing peer connections start from it, so that members, and a proxy
/// between them, can tell who is talking. Other addresses are left to the routing table.
fn peer_local_ip(node: &NodeInfo) -> Option<std::net::IpAddr> {
    let (host, _) = config::split_host_port(&node.peer_addr).ok()?;
    let ip: std::net::IpAddr = host.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

/// Peer URLs by raft id saved by a member that joined (empty if none).
fn load_peers(path: &Path) -> BTreeMap<u64, String> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_peers(path: &Path, peers: &BTreeMap<u64, String>) -> std::io::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec(peers).map_err(std::io::Error::other)?;
    crate::durable::replace(path, |f| f.write_all(&json))
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` turns true; with `grpc`,
/// gRPC requests (by content type) go to it instead, on the same connections.
fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    what: &'static str,
    router: axum::Router,
    grpc: Option<axum::Router>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let stop = stop.clone();
    tokio::spawn(async move {
        match tls {
            Some(config) => {
                let listener = tls::TlsListener::new(listener, config, what);
                accept_loop(listener, router, grpc, stop, tls::client_cn).await
            }
            None => {
                let listener = tls::PlainListener(listener);
                accept_loop(listener, router, grpc, stop, |_| tls::ClientCn(None)).await
            }
        }
    })
}

/// Accepts connections until `stop`, serving HTTP/1.1 and HTTP/2 (h2c by the connection
/// preface, h2 by ALPN) on each, then waits for the open connections to finish what they
/// are doing. Our own loop rather than `axum::serve`, so that HTTP/2 allows as many
/// concurrent streams per connection as etcd does (kube-apiserver multiplexes its watches).
async fn accept_loop<L>(
    mut listener: L,
    http: axum::Router,
    grpc: Option<axum::Router>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    client_cn: fn(&L::Io) -> tls::ClientCn,
) where
    L: axum::serve::Listener,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(u32::MAX)
        .keep_alive_interval(HTTP2_PING_INTERVAL)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .timer(TokioTimer::new());
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        // Every request carries its connection's client certificate name (auth).
        let cn = axum::extract::ConnectInfo(client_cn(&io));
        // (etcd's Go clients 3.4 send some calls with a URL as the HTTP/2 authority.)
        let io = crate::grpc::authority::AuthorityFix::new(io, grpc.is_some());
        let (http, grpc) = (http.clone(), grpc.clone());
        let service = hyper::service::service_fn(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(cn.clone());
                let router = match &grpc {
                    Some(grpc) if crate::grpc::is_grpc(&req) => grpc.clone(),
                    _ => http.clone(),
                };
                router.oneshot(req)
            },
        );
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Peer addresses to join through: `-C`, or else the contents of `-CF`.
fn join_peers(config: &Config) -> Result<Vec<String>, Error> {
    if !config.join.is_empty() {
        return Ok(config.join.clone());
    }
    let Some(file) = &config.join_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Join(format!("-CF: cannot read {}: {e}", file.display())))?;
    let peers: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for p in &peers {
        config::split_host_port(p).map_err(|e| {
            Error::Join(format!(
                "-CF: invalid address {p:?} in {}: {e}",
                file.display()
            ))
        })?;
    }
    Ok(peers)
}

/// Takes the data directory's lock (held until the returned guard is dropped: as long as the
/// member runs), applies `-f` and loads the stored node configuration (or takes the flags'
/// one, with a new raft id, or the id a restore made the directory for).
fn prepare_data_dir(config: &Config) -> Result<(NodeInfo, crate::lockfile::DataDirLock), Error> {
    let dir = &config.data_dir;
    let data_err = |source| Error::DataDir {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(data_err)?;
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        crate::durable::sync_dir(parent.unwrap_or(Path::new("."))).map_err(data_err)?;
    }
    // Held for as long as this member runs: no second process may use its files.
    let lock = crate::lockfile::lock(dir).map_err(Error::Config)?;
    if config.force {
        tracing::warn!(
            "-f: forgetting the node configuration and all data in '{}' (DATA LOSS)",
            dir.display()
        );
        // Data first, the configuration last: a crash in between leaves a data-less
        // configuration (a fresh start), never old data under a new identity.
        if let Some(wal) = &config.node.wal_dir {
            let layout = raft::Layout::new(dir, Some(wal));
            for path in [layout.wal.clone(), layout.wal_tmp()] {
                remove_if_present(&path).map_err(data_err)?;
            }
        }
        for sub in ["snap", "wal", "wal.tmp", "peers", "restored", "info"] {
            remove_if_present(&dir.join(sub)).map_err(data_err)?;
        }
    }
    let node = match config::load_info(dir).map_err(data_err)? {
        Some(stored) => {
            println!(
                "Found node configuration in '{}'. Ignoring flags.",
                config::info_path(dir).display()
            );
            stored
        }
        None => {
            let mut node = config.node.clone();
            match config::load_restored(dir).map_err(data_err)? {
                // Made by `etcdctl snapshot restore`: this member is the one it was made for.
                Some(restored) => take_restored(&mut node, restored, dir)?,
                None => node.id = cluster::new_member_id(),
            }
            node
        }
    };
    Ok((node, lock))
}

/// Makes `node` (the flags' configuration) the member a restored data directory `dir` was made
/// for: its id, and its WAL's place; refused if the flags name another member.
fn take_restored(node: &mut NodeInfo, restored: config::Restored, dir: &Path) -> Result<(), Error> {
    let made = format!(
        "{} was restored for member {:?} at {}",
        dir.display(),
        restored.name,
        restored.peer_url
    );
    if restored.name != node.name {
        return Err(Error::Config(format!(
            "{made}; this member is named {:?} (--name)",
            node.name
        )));
    }
    if restored.peer_url != node.peer_url() {
        return Err(Error::Config(format!(
            "{made}; this member advertises {} (--initial-advertise-peer-urls)",
            node.peer_url()
        )));
    }
    match (&node.wal_dir, &restored.wal_dir) {
        (Some(flag), Some(wal)) if flag != wal => {
            return Err(Error::Config(format!(
                "{made} with its WAL in {}; --wal-dir says {}",
                wal.display(),
                flag.display()
            )))
        }
        (None, Some(wal)) => node.wal_dir = Some(wal.clone()),
        _ => {}
    }
    node.id = restored.id;
    Ok(())
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
