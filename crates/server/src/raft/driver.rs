//! The `raft-driver` thread: sole owner of the `RawNode`.
//!
//! The loop (numbered as in raft-rs's crate docs):
//! 1. wait for a request, up to the next tick or the next key expiry;
//! 2. drain all queued requests (proposals become entries of the same `Ready`: group commit;
//!    peer messages are stepped);
//! 3. tick when due; as leader, propose an expiry when a TTL is due;
//! 4. handle `Ready`: send messages (a leader replicates before its own fsync), snapshot,
//!    committed entries, append + hard state, one fsync, persisted messages, `advance`, newly
//!    committed entries, `advance_apply`;
//! 5. answer reads whose read index is applied; publish the status; take a snapshot every
//!    `snapshot_count` applied entries.
//!
//! Invariants: nothing is acknowledged before it is durable and applied; a storage failure
//! ends the process (see `raft/mod.rs`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_store::envelope;
use etcd_store::{Command, LeaseChange, StoreSnapshot};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, HardState, Message, MessageType,
};
use raft::{RawNode, SnapshotStatus, StateRole};

use super::committed::Committed;
use super::storage::{DiskStorage, Layout, Recovered, CATCH_UP_ENTRIES};
use super::{
    Handle, ProposeResult, Request, SharedStore, SharedWatchers, Status, Transient, V3Result,
    PROPOSAL_TIMEOUT,
};
use crate::clock;
use crate::snap::Snapshotter;
use crate::transport::{Report, Transport};

/// Most requests taken from the channel before handling a `Ready`, so that one huge burst
/// cannot delay the fsync of what is already proposed.
const MAX_BATCH: usize = 4096;

/// The log in memory is trimmed (see `Driver::trim_log`) this many entries at a time.
const TRIM_STEP: u64 = 1000;

/// The snapshot thread is kept busy at most about one part in this many of the time: after a
/// snapshot that took `t` to write, the next one waits at least `(SNAPSHOT_DUTY - 1) * t`
/// (while the log grows past `snapshot_count`), so a store big enough to take seconds to write
/// is snapshotted less often instead of always.
const SNAPSHOT_DUTY: u32 = 4;

/// Most expiry entries the leader proposes at once (the rest follow once they are applied).
const EXPIRY_BATCH: usize = 1000;
/// A read index request not answered after this many ticks is asked again (raft drops read
/// requests it cannot serve yet, for example on a leader that has not committed in its term).
const READ_RETRY_TICKS: u32 = 3;

/// How the driver is set up.
#[derive(Clone)]
pub struct Options {
    /// This member's raft id.
    pub id: u64,
    /// For a brand-new cluster: entry 1, this member adding itself (`cluster::first_entry`),
    /// committed at term 1. `None` for a member that joined an existing cluster (its log comes
    /// from the leader).
    pub first_entry: Option<Entry>,
    /// Tick interval (the heartbeat interval).
    pub tick: Duration,
    /// Election timeout, in ticks.
    pub election_ticks: usize,
    /// Snapshot every this many applied entries.
    pub snapshot_count: u64,
    /// Peer URLs by raft id to use while the store knows no members yet (a member that just
    /// joined learns them from the join answer, before the leader's log reaches it).
    pub seed_peers: BTreeMap<u64, String>,
    /// TLS for connections to other members, when peer TLS is on.
    pub peer_tls: Option<tokio_rustls::TlsConnector>,
    /// Address outgoing peer connections start from, if any.
    pub peer_local: Option<std::net::IpAddr>,
    /// The v3 auth tokens, which follow the auth entries as they apply.
    pub tokens: Arc<crate::tokens::Tokens>,
    /// Snapshot files kept (`--max-snapshots`; 0: all).
    pub max_snapshots: usize,
    /// WAL segments kept once covered by snapshots (`--max-wals`; 0: all).
    pub max_wals: usize,
}

/// Errors that stop the node from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Log or snapshot storage.
    #[error(transparent)]
    Storage(#[from] super::storage::Error),
    /// raft-rs refused the configuration or state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),

    /// The thread could not be spawned.
    #[error("spawning the raft thread: {0}")]
    Spawn(std::io::Error),
}

/// An apply (batch) slower than this counts as slow (`etcd_server_slow_apply_total`).
const SLOW_APPLY: Duration = Duration::from_millis(100);

/// What [`start`] returns.
pub struct Started {
    /// How the rest of the node talks to the driver.
    pub handle: Handle,
    /// The v3 watchers the driver notifies.
    pub watchers: SharedWatchers,
    /// The driver thread.
    pub thread: std::thread::JoinHandle<()>,
    /// Fires once the member has replayed its own log (and, when it is the only voter, become
    /// leader and committed everything it had): from then on reads see every write
    /// acknowledged before a restart.
    pub ready: tokio::sync::oneshot::Receiver<()>,
}

/// Opens (or creates) the member's storage, restores the store, and starts the driver thread.
/// Peer messages go out through tasks spawned on `runtime`.
pub fn start(
    layout: &Layout,
    opts: Options,
    store: SharedStore,
    runtime: tokio::runtime::Handle,
) -> Result<Started, StartError> {
    let (storage, snapshot_data) = if DiskStorage::exists(layout) {
        // The snapshot is decoded as it is read: the file's bytes are never held whole.
        let Recovered {
            storage,
            snapshot_data,
        } = DiskStorage::open(layout, &mut |r| {
            let values = store.read().expect("store lock poisoned").v3_values();
            StoreSnapshot::read_from_with(r, &values).map_err(|e| e.to_string())
        })?;
        (storage, snapshot_data)
    } else if let Some(e) = opts.first_entry.clone() {
        let hs = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        (DiskStorage::create(layout, hs, &[e])?, None)
    } else {
        (
            DiskStorage::create(layout, HardState::default(), &[])?,
            None,
        )
    };
    let mut storage = storage;
    storage.set_retention(opts.max_snapshots, opts.max_wals);
    if let Some(snap) = snapshot_data {
        write_store(&store).restore(snap);
    }
    let watchers: SharedWatchers = Arc::new(std::sync::Mutex::new(etcd_mvcc::Watchers::new(
        store.read().expect("store lock poisoned").v3().revision(),
    )));
    let snapshot_index = storage.snapshot_metadata().index;
    let conf_state = storage.snapshot_metadata().get_conf_state().clone();
    let startup_commit = storage.hard_state().commit;
    let startup_last = raft::Storage::last_index(&storage)?;
    let config = raft::Config {
        id: opts.id,
        election_tick: opts.election_ticks,
        heartbeat_tick: 1,
        applied: snapshot_index,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        check_quorum: true,
        pre_vote: true,
        ..Default::default()
    };
    config.validate()?;
    let raw_node = RawNode::new(&config, storage, &crate::logger::raft_logger())?;

    let (tx, rx) = std::sync::mpsc::channel();
    let status = Arc::new(Status::default());
    status.applied.store(snapshot_index, Ordering::Release);
    status
        .learner
        .store(conf_state.learners.contains(&opts.id), Ordering::Release);
    let handle = Handle {
        tx: tx.clone(),
        status: status.clone(),
        id: opts.id,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let snapshots = SnapshotThread::spawn(raw_node.store().snapshotter().clone(), tx.clone())?;
    let mut driver = Driver {
        raw_node,
        rx,
        transport: Transport::new(
            runtime,
            opts.peer_tls.clone(),
            opts.peer_local,
            Arc::new(move |report| {
                let _ = tx.send(Request::Transport(report));
            }),
            opts.id,
            status.peers.clone(),
        ),
        store,
        watchers: watchers.clone(),
        lease_clock: etcd_mvcc::Deadlines::new(),
        lease_clock_running: false,
        revoking: HashSet::new(),
        lease_epoch: Instant::now(),
        status,
        opts,
        conf_state,
        applied: snapshot_index,
        last_snapshot: snapshot_index,
        snapshots,
        boot: clock::now() as u64,
        next_seq: 1,
        pending: HashMap::new(),
        waiting: VecDeque::new(),
        reads: HashMap::new(),
        reads_waiting: Vec::new(),
        reads_indexed: Vec::new(),
        expiry_in_flight: None,
        startup_commit,
        startup_last,
        ready_tx: Some(ready_tx),
        campaigned: false,
        removed: false,
    };
    driver.update_peers();
    let thread = std::thread::Builder::new()
        .name("raft-driver".into())
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| driver.run());
            if std::panic::catch_unwind(run).is_err() {
                fatal("the raft driver panicked");
            }
        })
        .map_err(StartError::Spawn)?;
    Ok(Started {
        handle,
        watchers,
        thread,
        ready: ready_rx,
    })
}

fn write_store(
    store: &SharedStore,
) -> std::sync::RwLockWriteGuard<'_, etcd_store::Store<super::WatchSender>> {
    store
        .write()
        .expect("store lock poisoned: a panic while applying")
}

/// Something to put in the log.
enum Proposal {
    Command(Command),
    /// An etcd v3 request, already in its log entry envelope.
    V3(Vec<u8>),
    ConfChange(ConfChange),
}

/// Where a proposal's outcome goes: a store command's or a v3 request's.
enum Reply {
    Store(tokio::sync::oneshot::Sender<ProposeResult>),
    V3(tokio::sync::oneshot::Sender<V3Result>),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::Store(tx) => tx.is_closed(),
            Reply::V3(tx) => tx.is_closed(),
        }
    }

    fn fail(self, why: Transient) {
        crate::metrics::metrics().proposals_failed.inc();
        match self {
            Reply::Store(tx) => drop(tx.send(Err(why))),
            Reply::V3(tx) => drop(tx.send(Err(why))),
        }
    }
}

/// What applying an entry answers its proposer.
enum Outcome {
    Store(etcd_store::Result<Option<etcd_store::Event>>),
    V3(etcd_mvcc::Result<etcd_mvcc::Answer>),
}
type ReadReply = tokio::sync::oneshot::Sender<Result<(), Transient>>;

/// A proposal and its proposer: in the log as far as this member knows (`pending`, waiting to
/// be applied), or waiting for a leader (`waiting`).
struct Pending {
    proposal: Proposal,
    reply: Reply,
    since: Instant,
}

/// A read index request in flight.
struct Read {
    reply: ReadReply,
    since: Instant,
    ticks: u32,
}

/// A snapshot for the snapshot thread to write.
struct SnapshotJob {
    meta: raft::eraftpb::SnapshotMetadata,
    state: StoreSnapshot,
}

/// The `raft-snapshot` thread: encodes, writes and fsyncs snapshots while the driver goes on,
/// then tells the driver ([`Request::SnapshotSaved`]), which only then compacts the log.
struct SnapshotThread {
    jobs: std::sync::mpsc::Sender<SnapshotJob>,
    /// When the snapshot being written, if one is, was handed over.
    in_flight: Option<Instant>,
    /// No snapshot (but one raft asks for) is started before this.
    not_before: Instant,
}

impl SnapshotThread {
    fn spawn(
        snaps: Snapshotter,
        driver: std::sync::mpsc::Sender<Request>,
    ) -> Result<SnapshotThread, StartError> {
        let (jobs, rx) = std::sync::mpsc::channel::<SnapshotJob>();
        std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                // Writes matter more than snapshots: on a busy machine the scheduler favours
                // the driver and the request handlers over this thread (Linux nice values are
                // per thread).
                if let Err(e) = rustix::process::nice(10) {
                    tracing::debug!("the snapshot thread keeps its priority: {e}");
                }
                for job in rx {
                    let started = Instant::now();
                    let (index, term) = (job.meta.index, job.meta.term);
                    let meta = job
                        .meta
                        .write_to_bytes()
                        .expect("encoding metadata cannot fail");
                    let saving = Instant::now();
                    let saved = snaps.save(index, term, &meta, &mut |w| job.state.write_to(w));
                    crate::metrics::metrics()
                        .backend_commit
                        .observe(saving.elapsed().as_secs_f64());
                    // The state is released here, before the driver hears of it.
                    drop(job.state);
                    match saved {
                        Ok(bytes) => tracing::info!(
                            "snapshot-index" = index,
                            "snapshot-size-bytes" = bytes,
                            took = ?started.elapsed(),
                            "saved snapshot"
                        ),
                        Err(e) => fatal(&format!("writing a snapshot: {e}")),
                    }
                    if driver.send(Request::SnapshotSaved(job.meta)).is_err() {
                        return;
                    }
                }
            })
            .map_err(StartError::Spawn)?;
        Ok(SnapshotThread {
            jobs,
            in_flight: None,
            not_before: Instant::now(),
        })
    }
}

struct Driver {
    raw_node: RawNode<DiskStorage>,
    watchers: SharedWatchers,
    /// As leader (once it has applied an entry of its own term): when each lease runs out,
    /// on `lease_epoch`'s clock. Empty on followers.
    lease_clock: etcd_mvcc::Deadlines,
    /// True while `lease_clock` counts (this member leads and has caught up).
    lease_clock_running: bool,
    /// Leases whose time ran out and whose revocation this leader proposed, until it applies:
    /// a keep-alive for one finds it gone (as etcd's lessor answers a lease pending
    /// revocation), never a lease that is about to go.
    revoking: HashSet<i64>,
    /// The origin of `lease_clock`'s nanoseconds.
    lease_epoch: Instant,
    rx: Receiver<Request>,
    transport: Transport,
    store: SharedStore,
    status: Arc<Status>,
    opts: Options,
    /// The configuration as of the last applied entry.
    conf_state: ConfState,
    applied: u64,
    /// Index of the last snapshot taken (being written, or durable).
    last_snapshot: u64,
    snapshots: SnapshotThread,
    /// Distinguishes this process's proposals from those of earlier runs in the log.
    boot: u64,
    next_seq: u64,
    /// Proposals in the log, by sequence number, waiting to be applied.
    pending: HashMap<u64, Pending>,
    /// Proposals waiting for a leader.
    waiting: VecDeque<Pending>,
    /// Read index requests given to raft, by sequence number.
    reads: HashMap<u64, Read>,
    /// Read requests waiting for a leader.
    reads_waiting: Vec<(ReadReply, Instant)>,
    /// Reads confirmed by a quorum, waiting for their index to be applied.
    reads_indexed: Vec<(u64, ReadReply)>,
    /// Log index of an expiry proposal not yet applied.
    expiry_in_flight: Option<u64>,
    startup_commit: u64,
    startup_last: u64,
    ready_tx: Option<tokio::sync::oneshot::Sender<()>>,
    campaigned: bool,
    /// This member applied its own removal.
    removed: bool,
}

impl Driver {
    fn run(&mut self) {
        let mut next_tick = Instant::now() + self.opts.tick;
        let mut stopping = false;
        while !stopping {
            let wake = self
                .next_expiry_wake()
                .map_or(next_tick, |t| t.min(next_tick));
            let timeout = wake.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(req) => stopping |= self.handle(req),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
            for _ in 0..MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(req) => stopping |= self.handle(req),
                    Err(_) => break,
                }
            }
            if Instant::now() >= next_tick {
                self.raw_node.tick();
                next_tick += self.opts.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.opts.tick;
                }
                self.on_tick();
            }
            self.retry_waiting();
            self.maybe_expire();
            self.expire_leases();
            self.on_ready();
            if self.maybe_campaign() {
                self.on_ready();
            }
            if !self.waiting.is_empty() && self.leader_known() {
                // Proposals queued again while handling requests go out now, not a tick later.
                self.retry_waiting();
                self.on_ready();
            }
            self.maybe_snapshot();
            self.trim_log();
            self.publish();
            self.follow_lease_clock();
        }
        // Persist whatever is in flight (including a buffered commit-only hard state), then
        // fail what cannot complete.
        self.on_ready();
        fatal_on_err(
            self.raw_node.mut_store().persist(),
            "persisting the log at shutdown",
        );
        for (_, p) in self.pending.drain() {
            p.reply.fail(Transient::ShuttingDown);
        }
        for w in self.waiting.drain(..) {
            w.reply.fail(Transient::ShuttingDown);
        }
        tracing::info!("raft driver stopped at applied index {}", self.applied);
    }

    /// Returns true when asked to stop.
    fn handle(&mut self, req: Request) -> bool {
        match req {
            Request::Propose { command, reply } => self.propose(
                Proposal::Command(command),
                Reply::Store(reply),
                Instant::now(),
            ),
            Request::ProposeV3 { request, reply } => self.propose(
                Proposal::V3(envelope::v3_entry(&request)),
                Reply::V3(reply),
                Instant::now(),
            ),
            Request::ConfChange { change, reply } => self.propose(
                Proposal::ConfChange(change),
                Reply::Store(reply),
                Instant::now(),
            ),
            Request::ReadIndex { reply } => self.read_index(reply, Instant::now()),
            Request::LeaseKeepAlive { id, reply } => {
                let _ = reply.send(Ok(self.lease_keep_alive(id)));
            }
            Request::LeaseTimeToLive { id, reply } => {
                let _ = reply.send(Ok(self.lease_time_to_live(id)));
            }
            Request::Progress { id, reply } => {
                let raft = &self.raw_node.raft;
                let answer = (raft.state == raft::StateRole::Leader)
                    .then(|| {
                        let prs = raft.prs();
                        let peer = prs.get(id)?;
                        // A peer not heard from lately counts as having nothing.
                        let matched = if peer.recent_active { peer.matched } else { 0 };
                        Some((matched, prs.get(self.opts.id)?.matched))
                    })
                    .flatten();
                let _ = reply.send(Ok(answer));
            }
            Request::TransferLeader { to } => {
                if self.raw_node.raft.state == raft::StateRole::Leader {
                    tracing::info!(to, "leadership transfer starting");
                    self.raw_node.transfer_leader(to);
                }
            }
            Request::Step(msg) => {
                let (from, kind) = (msg.from, msg.get_msg_type());
                if kind == MessageType::MsgAppend {
                    self.status.append_received.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = self.raw_node.step(msg) {
                    tracing::debug!(from, "raft message {kind:?} not stepped: {e}");
                }
            }
            Request::Transport(report) => self.on_transport(report),
            Request::SnapshotSaved(meta) => {
                if let Some(since) = self.snapshots.in_flight.take() {
                    self.snapshots.not_before =
                        Instant::now() + since.elapsed() * (SNAPSHOT_DUTY - 1);
                }
                fatal_on_err(
                    self.raw_node.mut_store().snapshot_saved(meta),
                    "releasing the log a snapshot covers",
                );
            }
            Request::Shutdown => return true,
        }
        false
    }

    fn on_transport(&mut self, report: Report) {
        match report {
            Report::Unreachable(id) => {
                // A leader's messages to a peer it cannot reach: its heartbeats among them.
                if self.raw_node.raft.state == raft::StateRole::Leader {
                    crate::metrics::metrics().heartbeat_send_failures.inc();
                }
                self.raw_node.report_unreachable(id)
            }
            Report::Undelivered(contexts) => self.requeue_undelivered(contexts),
            Report::Removed => {
                if !self.removed {
                    self.removed = true;
                    self.status.removed.notify_one();
                }
            }
            Report::SnapshotStatus { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw_node.report_snapshot(to, status);
            }
        }
    }

    fn leader_known(&self) -> bool {
        self.raw_node.raft.leader_id != raft::INVALID_ID
    }

    fn propose(&mut self, proposal: Proposal, reply: Reply, since: Instant) {
        if !self.leader_known() {
            self.waiting.push_back(Pending {
                proposal,
                reply,
                since,
            });
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let context = self.context(seq);
        let result = match &proposal {
            Proposal::Command(command) => self.raw_node.propose(context, command.to_entry()),
            Proposal::V3(entry) => self.raw_node.propose(context, entry.clone()),
            Proposal::ConfChange(cc) => self.raw_node.propose_conf_change(context, cc.clone()),
        };
        match result {
            Ok(()) => {
                self.pending.insert(
                    seq,
                    Pending {
                        proposal,
                        reply,
                        since,
                    },
                );
            }
            Err(raft::Error::ProposalDropped) => self.waiting.push_back(Pending {
                proposal,
                reply,
                since,
            }),
            Err(e) => {
                tracing::warn!("proposal refused by raft: {e}");
                reply.fail(Transient::Timeout(PROPOSAL_TIMEOUT));
            }
        }
    }

    fn read_index(&mut self, reply: ReadReply, since: Instant) {
        if !self.leader_known() {
            self.reads_waiting.push((reply, since));
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.raw_node.read_index(self.context(seq));
        self.reads.insert(
            seq,
            Read {
                reply,
                since,
                ticks: 0,
            },
        );
    }

    /// Entry context naming a request of this process: member id, boot stamp, sequence.
    fn context(&self, seq: u64) -> Vec<u8> {
        let mut c = Vec::with_capacity(24);
        c.extend_from_slice(&self.opts.id.to_le_bytes());
        c.extend_from_slice(&self.boot.to_le_bytes());
        c.extend_from_slice(&seq.to_le_bytes());
        c
    }

    /// The sequence number of a request of this process, if `context` names one.
    fn own_seq(&self, context: &[u8]) -> Option<u64> {
        if context.len() != 24 {
            return None;
        }
        let id = u64::from_le_bytes(context[0..8].try_into().ok()?);
        let boot = u64::from_le_bytes(context[8..16].try_into().ok()?);
        (id == self.opts.id && boot == self.boot)
            .then(|| u64::from_le_bytes(context[16..24].try_into().expect("8 bytes")))
    }

    fn retry_waiting(&mut self) {
        if !self.leader_known() {
            return;
        }
        for w in std::mem::take(&mut self.waiting) {
            if !w.reply.is_closed() {
                self.propose(w.proposal, w.reply, w.since);
            }
        }
        for (reply, since) in std::mem::take(&mut self.reads_waiting) {
            if !reply.is_closed() {
                self.read_index(reply, since);
            }
        }
    }

    /// Per tick: forget requests whose client has gone (timed out or disconnected); ask again
    /// for read indexes raft has not answered.
    fn on_tick(&mut self) {
        self.pending.retain(|_, p| !p.reply.is_closed());
        self.waiting
            .retain(|w| !w.reply.is_closed() && w.since.elapsed() < PROPOSAL_TIMEOUT);
        self.reads_waiting
            .retain(|(reply, since)| !reply.is_closed() && since.elapsed() < PROPOSAL_TIMEOUT);
        self.reads
            .retain(|_, r| !r.reply.is_closed() && r.since.elapsed() < PROPOSAL_TIMEOUT);
        let mut again = Vec::new();
        for (seq, r) in self.reads.iter_mut() {
            r.ticks += 1;
            if r.ticks % READ_RETRY_TICKS == 0 {
                again.push(*seq);
            }
        }
        if self.leader_known() {
            for seq in again {
                self.raw_node.read_index(self.context(seq));
            }
        }
    }

    fn is_sole_voter(&self) -> bool {
        self.conf_state.voters == [self.opts.id] && self.conf_state.learners.is_empty()
    }

    /// A member that is the only voter need not wait an election timeout to lead. Returns
    /// true if it campaigned.
    fn maybe_campaign(&mut self) -> bool {
        if self.campaigned || !self.is_sole_voter() || self.raw_node.raft.state == StateRole::Leader
        {
            return false;
        }
        self.campaigned = true;
        if let Err(e) = self.raw_node.campaign() {
            tracing::warn!("campaign failed: {e}");
        }
        true
    }

    /// Nanoseconds on the lease clock.
    fn lease_now(&self) -> i64 {
        self.lease_epoch.elapsed().as_nanos() as i64
    }

    fn lease_keep_alive(&mut self, id: i64) -> super::LeaseResult {
        use etcd_api::v3::V3Error;
        if !self.lease_clock_running {
            return Err(V3Error::NotLeader);
        }
        if self.revoking.contains(&id) {
            return Err(V3Error::LeaseNotFound);
        }
        let ttl = self
            .store
            .read()
            .expect("store lock poisoned")
            .leases()
            .get(id)
            .map(|l| l.ttl)
            .ok_or(V3Error::LeaseNotFound)?;
        self.lease_clock
            .set(id, self.lease_now() + ttl * 1_000_000_000);
        Ok(ttl)
    }

    fn lease_time_to_live(&self, id: i64) -> super::LeaseResult {
        use etcd_api::v3::V3Error;
        if !self.lease_clock_running {
            return Err(V3Error::NotLeader);
        }
        let at = self.lease_clock.get(id).ok_or(V3Error::LeaseNotFound)?;
        let left = (at - self.lease_now()).max(0);
        // Whole seconds, rounded down, as etcd reports them (just granted for 60 s: 59).
        Ok(left / 1_000_000_000)
    }

    /// Starts the lease clock once this member leads and has applied an entry of its own
    /// term (so it knows every lease granted before): every lease gets its full TTL from now,
    /// so none expires early across a leader change. Stops it when leadership is lost.
    fn follow_lease_clock(&mut self) {
        let raft = &self.raw_node.raft;
        let leads = raft.state == StateRole::Leader
            && raft.raft_log.term(self.applied).ok() == Some(raft.term);
        if leads == self.lease_clock_running {
            return;
        }
        self.lease_clock_running = leads;
        self.lease_clock.clear();
        self.revoking.clear();
        if leads {
            let now = self.lease_now();
            let store = self.store.read().expect("store lock poisoned");
            for (id, lease) in store.leases().iter() {
                self.lease_clock.set(id, now + lease.ttl * 1_000_000_000);
            }
            tracing::debug!(leases = store.leases().len(), "lease clock started");
        }
    }

    /// As leader, proposes the revocation of leases whose time ran out.
    fn expire_leases(&mut self) {
        if !self.lease_clock_running {
            return;
        }
        let now = self.lease_now();
        for id in self.lease_clock.take_due(now, EXPIRY_BATCH) {
            let request = etcd_v3proto::etcdrs::InternalRequest {
                request: Some(
                    etcd_v3proto::etcdrs::internal_request::Request::LeaseRevoke(
                        etcd_v3proto::etcdserverpb::LeaseRevokeRequest { id },
                    ),
                ),
                system: true,
                time: clock::now(),
                ..Default::default()
            };
            if let Err(e) = self
                .raw_node
                .propose(Vec::new(), envelope::v3_entry(&request))
            {
                tracing::debug!("lease expiry proposal dropped: {e}");
                // Asked again a moment later.
                self.lease_clock.set(id, now + 100_000_000);
                break;
            }
            self.revoking.insert(id);
            tracing::debug!(id = format!("{id:x}"), "lease expired");
        }
    }

    /// When the leader should next look at the TTL index.
    fn next_expiry_wake(&self) -> Option<Instant> {
        let lease = self
            .lease_clock
            .next()
            .map(|at| self.lease_epoch + Duration::from_nanos(at.max(0) as u64));
        let ttl = self.next_ttl_wake();
        match (lease, ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the leader should next look at the v2 TTL index.
    fn next_ttl_wake(&self) -> Option<Instant> {
        if self.raw_node.raft.state != StateRole::Leader || self.expiry_in_flight.is_some() {
            return None;
        }
        let due = self
            .store
            .read()
            .expect("store lock poisoned")
            .next_expiry()?;
        let wait = due.saturating_sub(clock::now()).max(0) as u64;
        Some(Instant::now() + Duration::from_nanos(wait))
    }

    /// As leader, proposes one expiry carrying the leader's clock when a key is due.
    fn maybe_expire(&mut self) {
        if let Some(index) = self.expiry_in_flight {
            if self.applied >= index || self.raw_node.raft.state != StateRole::Leader {
                self.expiry_in_flight = None;
            } else {
                return;
            }
        }
        if self.raw_node.raft.state != StateRole::Leader {
            return;
        }
        let now = clock::now();
        // One entry per key, so that every expiry has its own index (as etcd v2's do): a
        // watcher re-arming at index + 1 misses none of them.
        let due = self
            .store
            .read()
            .expect("store lock poisoned")
            .due(now, EXPIRY_BATCH);
        for key in due {
            let cmd = Command::Expire {
                time: now,
                key: Some(key),
            };
            match self.raw_node.propose(Vec::new(), cmd.to_entry()) {
                Ok(()) => self.expiry_in_flight = Some(self.raw_node.raft.raft_log.last_index()),
                Err(e) => {
                    tracing::debug!("expiry proposal dropped: {e}");
                    break;
                }
            }
        }
    }

    fn on_ready(&mut self) {
        if !self.raw_node.has_ready() {
            return;
        }
        let mut ready = self.raw_node.ready();
        // A leader's appends go out before its own fsync (raft allows it; etcd does the same).
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            // Decoded before anything is persisted: a bad snapshot must not outlive a restart.
            let values = self.store.read().expect("store lock poisoned").v3_values();
            let data = StoreSnapshot::decode_with(&snap.data, &values).unwrap_or_else(|e| {
                fatal(&format!("snapshot from the leader does not decode: {e}"))
            });
            fatal_on_err(
                self.raw_node.mut_store().apply_snapshot(&snap),
                "applying a snapshot",
            );
            let fired = write_store(&self.store).restore(data);
            let revision = self
                .store
                .read()
                .expect("store lock poisoned")
                .v3()
                .revision();
            lock_watchers(&self.watchers).restored(revision);
            self.conf_state = snap.get_metadata().get_conf_state().clone();
            self.status.learner.store(
                self.conf_state.learners.contains(&self.opts.id),
                Ordering::Release,
            );
            self.applied = snap.get_metadata().index;
            self.last_snapshot = self.applied;
            self.publish_applied();
            for (w, ev) in fired {
                let _ = w.send(ev);
            }
            self.update_peers();
            tracing::info!(
                "snapshot-index" = self.applied,
                "applied snapshot from the leader"
            );
        }
        for rs in ready.take_read_states() {
            if let Some(read) = self
                .own_seq(&rs.request_ctx)
                .and_then(|s| self.reads.remove(&s))
            {
                self.reads_indexed.push((rs.index, read.reply));
            }
        }
        let committed = ready.take_committed_entries();
        self.apply(committed);
        let store = self.raw_node.mut_store();
        let must_sync = store.must_sync(ready.entries().len(), ready.hs())
            || !ready.persisted_messages().is_empty();
        store.append(ready.entries());
        if let Some(hs) = ready.hs() {
            store.set_hard_state(hs);
        }
        if must_sync {
            fatal_on_err(store.persist(), "persisting the log");
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.raw_node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw_node.mut_store().set_commit(commit);
        }
        self.send(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply(committed);
        self.raw_node.advance_apply();
        self.answer_reads();
    }

    /// Queues again proposals whose messages never left this member (the transport could not
    /// connect, or the queue was full): nobody can have appended them, so proposing them again
    /// cannot apply them twice. (Proposals that may have been delivered are never re-proposed:
    /// they succeed or time out.)
    fn requeue_undelivered(&mut self, contexts: Vec<Vec<u8>>) {
        for context in contexts {
            let Some(p) = self
                .own_seq(&context)
                .and_then(|seq| self.pending.remove(&seq))
            else {
                continue;
            };
            tracing::debug!("proposal not delivered to the leader; proposing again");
            self.waiting.push_back(p);
        }
    }

    /// Answers linearizable reads whose read index is now applied.
    fn answer_reads(&mut self) {
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_indexed)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_indexed = waiting;
        for (_, reply) in ready {
            let _ = reply.send(Ok(()));
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let started = Instant::now();
        self.apply_entries(entries);
        // etcd warns of (and counts) applies over 100 ms; here a batch's.
        let took = started.elapsed();
        if took > SLOW_APPLY {
            crate::metrics::metrics().slow_apply.inc();
            tracing::warn!(
                took = ?took,
                "expected-duration" = ?SLOW_APPLY,
                "applied-index" = self.applied,
                "apply request took too long"
            );
        }
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        let mut fired = Vec::new();
        let mut replies = Vec::new();
        let mut membership_changed = false;
        let mut refused = Vec::new();
        let mut v3_changes = Vec::new();
        let store = self.store.clone();
        {
            let mut store = write_store(&store);
            for e in entries {
                let index = e.index;
                let decoded = super::committed::decode(&e).unwrap_or_else(|err| fatal(&err));
                let command = match decoded {
                    Committed::Empty => {
                        // Raft turns a configuration change proposed while another is pending
                        // into an empty entry, keeping its context.
                        if let Some(seq) = self.own_seq(&e.context) {
                            refused.push(seq);
                        }
                        None
                    }
                    Committed::Store(cmd) => {
                        // A pre-added member naming itself, or a member's new peer URL.
                        if matches!(cmd, Command::Join { .. } | Command::UpdatePeer { .. }) {
                            membership_changed = true;
                        }
                        Some(cmd)
                    }
                    Committed::V3(request) => {
                        let applied = store.apply_v3(index, request);
                        if let Some(change) = &applied.tokens {
                            self.opts.tokens.follow(change);
                        }
                        if !applied.changes.is_empty() {
                            v3_changes.push((store.v3().revision(), applied.changes));
                        }
                        match applied.lease {
                            Some(LeaseChange::Granted { id, ttl }) if self.lease_clock_running => {
                                let at = self.lease_now() + ttl * 1_000_000_000;
                                self.lease_clock.set(id, at);
                            }
                            Some(LeaseChange::Revoked(id)) => {
                                self.lease_clock.remove(id);
                                self.revoking.remove(&id);
                            }
                            _ => {}
                        }
                        if let Some(seq) = self.own_seq(&e.context) {
                            replies.push((seq, Outcome::V3(applied.result)));
                        }
                        self.applied = index;
                        continue;
                    }
                    Committed::ConfChange {
                        change,
                        registration,
                    } => {
                        membership_changed = true;
                        self.apply_conf_change(&change, index);
                        registration
                    }
                };
                match command {
                    Some(cmd) => {
                        let applied = store.apply(index, &cmd);
                        fired.extend(applied.fired);
                        if let Some(seq) = self.own_seq(&e.context) {
                            replies.push((seq, Outcome::Store(applied.result)));
                        }
                    }
                    None => store.skip(index),
                }
                self.applied = index;
            }
        }
        // Published before anyone is answered: an answer's headers may read the applied index
        // and term, and must not see them behind the entry they answer for.
        self.publish_applied();
        for (w, ev) in fired {
            let _ = w.send(ev);
        }
        if !v3_changes.is_empty() {
            let mut watchers = lock_watchers(&self.watchers);
            for (revision, changes) in &v3_changes {
                watchers.notify(*revision, changes);
            }
        }
        for (seq, result) in replies {
            if let Some(p) = self.pending.remove(&seq) {
                match (p.reply, result) {
                    (Reply::Store(tx), Outcome::Store(r)) => drop(tx.send(Ok(r))),
                    (Reply::V3(tx), Outcome::V3(r)) => drop(tx.send(Ok(r))),
                    // A context names the proposal it was made with, so kinds always match.
                    (reply, _) => reply.fail(Transient::Refused("mismatched proposal")),
                }
            }
        }
        for seq in refused {
            if let Some(p) = self.pending.remove(&seq) {
                p.reply.fail(Transient::Refused(
                    "another membership change is in progress; try again",
                ));
            }
        }

        if membership_changed {
            self.update_peers();
        }
        if self.removed {
            self.status.removed.notify_one();
        }
    }

    /// Applies a committed configuration change to raft, noting whether it removes this
    /// member (the registration its context carries is applied to the store by the caller).
    fn apply_conf_change(&mut self, cc: &ConfChangeV2, index: u64) {
        self.conf_state = self
            .raw_node
            .apply_conf_change(cc)
            .unwrap_or_else(|err| fatal(&format!("applying conf change at {index}: {err}")));
        self.status.learner.store(
            self.conf_state.learners.contains(&self.opts.id),
            Ordering::Release,
        );
        for c in &cc.changes {
            let what = match c.get_change_type() {
                ConfChangeType::AddNode => "added member",
                ConfChangeType::AddLearnerNode => "added learner member",
                ConfChangeType::RemoveNode => "removed member",
            };
            tracing::info!(
                "local-member-id" = %format!("{:x}", self.opts.id),
                "peer-id" = %format!("{:x}", c.node_id),
                "raft-index" = index,
                "{what}"
            );
        }
        let removes_me = cc.changes.iter().any(|c| {
            c.get_change_type() == ConfChangeType::RemoveNode && c.node_id == self.opts.id
        });
        if removes_me {
            tracing::warn!(index, "this member has been removed from the cluster");
            self.removed = true;
        }
    }

    /// Points the transport at the members the store knows (or, while it knows none, at the
    /// seed peers).
    fn update_peers(&mut self) {
        let peers = self.store.read().expect("store lock poisoned").peer_urls();
        if peers.is_empty() {
            self.transport.set_peers(&self.opts.seed_peers);
        } else {
            self.transport.set_peers(&peers);
        }
    }

    /// Every `snapshot_count` applied entries (paced by [`SNAPSHOT_DUTY`]), or when raft needs
    /// a newer snapshot for a peer, takes the store's state (a root clone, microseconds) and
    /// hands it to the snapshot thread; one snapshot is written at a time.
    fn maybe_snapshot(&mut self) {
        if self.snapshots.in_flight.is_some() {
            return;
        }
        let wanted = self.raw_node.store().take_snapshot_wanted();
        let due = self.applied >= self.last_snapshot + self.opts.snapshot_count
            && Instant::now() >= self.snapshots.not_before;
        // (A request raft makes while it cannot be served is made again: raft asks the
        // storage each time it wants to send one.)
        let needed = wanted && self.applied > self.last_snapshot;
        if !due && !needed {
            return;
        }
        let state = self.store.read().expect("store lock poisoned").snapshot();
        debug_assert_eq!(state.applied(), self.applied);
        let meta = self
            .raw_node
            .store()
            .snapshot_meta(self.applied, self.conf_state.clone())
            .unwrap_or_else(|e| fatal(&format!("taking a snapshot: {e}")));
        if self
            .snapshots
            .jobs
            .send(SnapshotJob { meta, state })
            .is_err()
        {
            fatal("the snapshot thread has stopped");
        }
        self.snapshots.in_flight = Some(Instant::now());
        self.last_snapshot = self.applied;
    }

    /// Forgets the log entries in memory that no member needs any more: those more than
    /// [`CATCH_UP_ENTRIES`] behind what this member applied and (on a leader) what every
    /// follower has. They stay in the WAL until the next snapshot. Between snapshots (every
    /// `snapshot_count` entries) the log in memory would otherwise hold every entry, values and
    /// all. A member that falls further behind later gets a snapshot, as it would after a
    /// snapshot's compaction.
    fn trim_log(&mut self) {
        let raft = &self.raw_node.raft;
        let mut needed = self.applied;
        if raft.state == StateRole::Leader {
            for (id, progress) in raft.prs().iter() {
                if *id != self.opts.id {
                    needed = needed.min(progress.matched);
                }
            }
        }
        let keep_after = needed.saturating_sub(CATCH_UP_ENTRIES);
        let first = raft::Storage::first_index(self.raw_node.store()).unwrap_or(0);
        // In steps, so that the entries still kept are moved only now and then.
        if keep_after >= first + TRIM_STEP {
            self.raw_node.mut_store().compact(keep_after);
        }
    }

    /// Proposes again, once a leader is known, the consistent reads still waiting: a `Read`
    /// entry changes nothing, so applying one twice is harmless, and one appended by a leader
    /// that lost its place would otherwise keep its client waiting for the whole proposal
    /// timeout. (Writes are never proposed again: see `requeue_undelivered`.)
    fn requeue_reads(&mut self) {
        let reads: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.proposal, Proposal::Command(Command::Read)))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in reads {
            if let Some(p) = self.pending.remove(&seq) {
                self.waiting.push_back(p);
            }
        }
    }

    /// Hands messages to the transport, counting append requests (`/v2/stats/self`).
    fn send(&mut self, msgs: Vec<Message>) {
        let appends = msgs
            .iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgAppend)
            .count();
        self.status
            .append_sent
            .fetch_add(appends as u64, Ordering::Relaxed);
        self.transport.send(msgs);
    }

    fn publish(&mut self) {
        let raft = &self.raw_node.raft;
        let old_leader = self.status.leader_id.swap(raft.leader_id, Ordering::AcqRel);
        let leader_changed = old_leader != raft.leader_id;
        self.status
            .committed
            .store(raft.raft_log.committed, Ordering::Release);
        self.status.pending.store(
            (self.pending.len() + self.waiting.len()) as u64,
            Ordering::Release,
        );
        if leader_changed && raft.leader_id != raft::INVALID_ID {
            crate::metrics::metrics().leader_changes.inc();
            tracing::info!(
                "local-member-id" = %format!("{:x}", raft.id),
                "leader-member-id" = %format!("{:x}", raft.leader_id),
                term = raft.term,
                "elected leader"
            );
        } else if leader_changed {
            tracing::warn!(
                "local-member-id" = %format!("{:x}", raft.id),
                "lost-leader-member-id" = %format!("{old_leader:x}"),
                term = raft.term,
                "lost leader"
            );
        }
        if leader_changed {
            self.status
                .leader_since
                .store(clock::now(), Ordering::Release);
            self.requeue_reads();
        }
        self.publish_applied();
        if self.ready_tx.is_some() && self.caught_up() {
            if let Some(tx) = self.ready_tx.take() {
                let _ = tx.send(());
            }
        }
    }

    /// Publishes the applied index and the term it was applied in.
    fn publish_applied(&self) {
        self.status
            .term
            .store(self.raw_node.raft.term, Ordering::Release);
        self.status.applied.store(self.applied, Ordering::Release);
    }

    /// True once everything this member had durably committed before starting is applied
    /// (and, as the only voter, once it leads and has applied its whole log).
    fn caught_up(&self) -> bool {
        if self.applied < self.startup_commit {
            return false;
        }
        if self.is_sole_voter() {
            return self.raw_node.raft.state == StateRole::Leader
                && self.applied >= self.startup_last
                && self.applied >= self.raw_node.raft.raft_log.committed;
        }
        true
    }
}

fn lock_watchers(
    watchers: &SharedWatchers,
) -> std::sync::MutexGuard<'_, etcd_mvcc::Watchers<super::V3Sink>> {
    watchers.lock().expect("watchers lock poisoned")
}

fn fatal_on_err<E: std::fmt::Display>(r: Result<(), E>, what: &str) {
    if let Err(e) = r {
        fatal(&format!("{what}: {e}"));
    }
}

/// Stops the process: the node cannot continue safely.
fn fatal(msg: &str) -> ! {
    tracing::error!("fatal: {msg}");
    eprintln!("etcd: fatal: {msg}");
    std::process::exit(1)
}
