//! Consensus: how this node drives raft-rs.
//!
//! # Threads
//!
//! One OS thread, `raft-driver` ([`driver`]), owns the `RawNode` and with it the log storage
//! ([`storage::DiskStorage`]) and the write path of the store. Everything else talks to it
//! through a [`Handle`]: a `std::sync::mpsc` channel of [`Request`]s in, `tokio` oneshot
//! replies out (their `send` works from a plain thread). Front-ends hold the door
//! (`crate::node::Node`) over the handle; reads and watch registration do not go through the
//! driver: the door takes the store's `RwLock` briefly.
//!
//! # One write, end to end
//!
//! 1. An HTTP handler validates the request and sends `Request::Propose(command)`.
//! 2. The driver drains every request waiting in its channel, proposes each (`RawNode::propose`,
//!    the entry's context naming the proposal), then handles one `Ready`:
//! 3. sends messages, applies a snapshot if any, applies committed entries, appends the new
//!    entries and hard state to the WAL, and **fsyncs once for the whole batch** (group commit);
//! 4. `advance` reports what is now committed; those entries are applied to the store under its
//!    write lock, watchers fire, and each proposer gets its event (or deterministic error).
//!
//! So a client is answered only after its entry is durable *and* applied.
//!
//! # Index arithmetic (spec section 4)
//!
//! A brand-new member writes its own registration as entry 1 (a configuration change adding
//! itself, whose context is the `Join` command), committed at term 1. It then campaigns; the new
//! leader's empty entry is 2, so the first client write is 3.
//!
//! # Failure policy
//!
//! Deterministic command errors go back to the client. No leader for [`PROPOSAL_TIMEOUT`] gives
//! a transient error (code 300). A storage error, or a committed entry that cannot be decoded,
//! stops the process: raft-rs cannot continue after a storage failure, and carrying on would
//! risk acknowledging writes that are not durable.
//!
//! # Membership
//!
//! Joining and removing members are raft configuration changes whose context is the `Join` or
//! `Leave` command, so the member list (`/_etcd/machines`) changes at the same log index as
//! raft's configuration, on every member. A member that applies its own removal stops.
//!
//! # Reads
//!
//! Reads are served from the local store. `consistent=true` puts a no-op `Read` command in the
//! log and answers once it is applied. (The raft ReadIndex path, [`Handle::read_index`], is
//! kept but not used for client reads: the fault test caught a resumed paused leader answering
//! a stale read through it, see the notes of issue #6.)
//!
//! # Snapshots
//!
//! Every `snapshot_count` applied entries the driver takes the store's state, which costs a
//! root clone of its persistent structures (microseconds, whatever the size), and hands it to
//! the `raft-snapshot` thread. That thread encodes it straight into the file, fsyncs, renames,
//! and reports back; only then does the driver compact the in-memory log and release WAL
//! segments, so the log always reaches back to a durable snapshot. Writes go on meanwhile.

mod committed;
pub mod driver;
pub mod offline;
pub mod storage;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_store::{Command, Event, Store};
use raft::eraftpb::{ConfChange, Message};

pub use driver::{start, Options, Started};
pub use storage::Layout;

/// Creates the storage of a new cluster of `voters` whose first state is `data` (an encoded
/// store snapshot at `index`, term 1): a member created from a snapshot file
/// (`crate::etcd_snapshot::restore`). Every member restored for the same cluster gets the same
/// snapshot, so they start as one cluster. Refused if `layout` has a log already.
pub fn restore_storage(
    layout: &Layout,
    voters: &[u64],
    index: u64,
    data: Vec<u8>,
) -> Result<(), storage::Error> {
    use raft::eraftpb::{ConfState, HardState, Snapshot, SnapshotMetadata};
    if storage::DiskStorage::exists(layout) {
        return Err(storage::Error::Inconsistent(
            "the data directory already holds a log".into(),
        ));
    }
    let mut s = storage::DiskStorage::create(layout, HardState::default(), &[])?;
    let metadata = SnapshotMetadata {
        index,
        term: 1,
        conf_state: Some(ConfState {
            voters: voters.to_vec(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    s.apply_snapshot(&Snapshot {
        data: data.into(),
        metadata: Some(metadata).into(),
        ..Default::default()
    })
}

/// How long a write may wait for a leader and a commit before the client gets code 300.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a waiting watcher holds: where its event goes.
pub type WatchSender = tokio::sync::oneshot::Sender<Event>;

/// The store, shared by the driver (apply) and the door (`node.rs`: reads, watches).
pub(crate) type SharedStore = Arc<RwLock<Store<WatchSender>>>;

/// Where a v3 watcher's events go (a gRPC watch stream).
pub type V3Sink = Box<dyn etcd_mvcc::WatchSink + Send + Sync>;

/// The v3 watchers, notified by the driver after each v3 write applies. Lock order: this
/// lock is never taken while the store's lock is held for writing.
pub type SharedWatchers = Arc<std::sync::Mutex<etcd_mvcc::Watchers<V3Sink>>>;

/// Why a write was not committed (answered with code 300).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Transient {
    /// No leader or no quorum in time.
    #[error("no leader elected, or no quorum, within {0:?}")]
    Timeout(Duration),
    /// The node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Raft refused the proposal (another configuration change is still in progress).
    #[error("{0}")]
    Refused(&'static str),
}

/// The answer to a proposal: the applied outcome (event or deterministic store error), or a
/// transient failure.
pub type ProposeResult = Result<etcd_store::Result<Option<Event>>, Transient>;

/// The answer to a v3 proposal: the applied outcome (answer or etcd error), or a transient
/// failure.
pub type V3Result = Result<etcd_mvcc::Result<etcd_mvcc::Answer>, Transient>;

/// A lease's TTL as the leader counts it, in seconds: granted (keep-alive) or remaining
/// (time-to-live), or why it could not be told.
pub type LeaseResult = Result<i64, etcd_api::v3::V3Error>;

/// Requests to the driver thread.
pub enum Request {
    /// Propose an etcd v3 request; the reply comes once it is applied locally.
    ProposeV3 {
        /// The request.
        request: etcd_v3proto::etcdrs::InternalRequest,
        /// Where the outcome goes.
        reply: tokio::sync::oneshot::Sender<V3Result>,
    },
    /// Propose a command; the reply comes once it is applied locally.
    Propose {
        /// The command.
        command: Command,
        /// Where the outcome goes.
        reply: tokio::sync::oneshot::Sender<ProposeResult>,
    },
    /// Propose a configuration change (join or removal; its context is the command); the
    /// reply comes once it is applied locally.
    ConfChange {
        /// The change.
        change: ConfChange,
        /// Where the outcome goes.
        reply: tokio::sync::oneshot::Sender<ProposeResult>,
    },
    /// As leader, restart lease `id`'s clock at its full TTL; answers the TTL.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
        /// `NotLeader` on a follower, `LeaseNotFound` for an unknown lease.
        reply: tokio::sync::oneshot::Sender<Result<LeaseResult, Transient>>,
    },
    /// As leader, how long lease `id` has left.
    LeaseTimeToLive {
        /// The lease.
        id: i64,
        /// `NotLeader` on a follower, `LeaseNotFound` for an unknown lease.
        reply: tokio::sync::oneshot::Sender<Result<LeaseResult, Transient>>,
    },
    /// As leader, how far member `id`'s log matches (and the leader's own): `None` on a
    /// follower or for an unknown member; 0 for a member not heard from lately.
    Progress {
        /// The member.
        id: u64,
        /// (the member's match index, the leader's).
        reply: tokio::sync::oneshot::Sender<Result<Option<(u64, u64)>, Transient>>,
    },
    /// Confirm leadership with a quorum and wait until the read index is applied.
    ReadIndex {
        /// Answered when a linearizable read may be served locally.
        reply: tokio::sync::oneshot::Sender<Result<(), Transient>>,
    },
    /// As leader, hand leadership to member `to` (raft's leader transfer: `to` is brought up
    /// to date, then told to campaign at once). Nothing is answered; the caller watches the
    /// leader change.
    TransferLeader {
        /// The transferee's raft id.
        to: u64,
    },
    /// A raft message from a peer.
    Step(Message),
    /// What the transport found out about delivery.
    Transport(crate::transport::Report),
    /// The snapshot thread made this snapshot durable.
    SnapshotSaved(raft::eraftpb::SnapshotMetadata),
    /// Stop after persisting what is in flight.
    Shutdown,
}

/// The raft status other threads may read.
#[derive(Debug, Default)]
pub struct Status {
    /// Raft id of the current leader, 0 if none is known.
    pub leader_id: AtomicU64,
    /// Current term.
    pub term: AtomicU64,
    /// Index of the last applied entry.
    pub applied: AtomicU64,
    /// When this member last saw the leader change (Unix nanoseconds).
    pub leader_since: std::sync::atomic::AtomicI64,
    /// Append requests received from a leader.
    pub append_received: AtomicU64,
    /// Append requests sent to followers.
    pub append_sent: AtomicU64,
    /// Delivery statistics of each peer (`/v2/stats/leader`).
    pub peers: crate::transport::SharedPeerStats,
    /// The commit index raft knows.
    pub committed: AtomicU64,
    /// Proposals made here and not answered yet.
    pub pending: AtomicU64,
    /// Whether this member is a learner, as the configuration applied here says.
    pub learner: std::sync::atomic::AtomicBool,
    /// Signalled when this member has applied its own removal from the cluster.
    pub removed: tokio::sync::Notify,
}

/// How the rest of the node talks to the driver.
#[derive(Clone)]
pub struct Handle {
    pub(crate) tx: std::sync::mpsc::Sender<Request>,
    /// Published raft status.
    pub status: Arc<Status>,
    /// This member's raft id.
    pub id: u64,
}

impl Handle {
    /// Sends a request and waits for its answer, at most [`PROPOSAL_TIMEOUT`].
    async fn ask<T>(
        &self,
        request: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, Transient>>) -> Request,
    ) -> Result<T, Transient> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(request(reply))
            .map_err(|_| Transient::ShuttingDown)?;
        match tokio::time::timeout(PROPOSAL_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Transient::ShuttingDown),
            Err(_) => Err(Transient::Timeout(PROPOSAL_TIMEOUT)),
        }
    }

    /// Proposes a command and waits until it is applied locally.
    pub async fn propose(&self, command: Command) -> ProposeResult {
        self.ask(|reply| Request::Propose { command, reply }).await
    }

    /// Proposes a v3 request and waits until it is applied locally.
    pub async fn propose_v3(&self, request: etcd_v3proto::etcdrs::InternalRequest) -> V3Result {
        self.ask(|reply| Request::ProposeV3 { request, reply })
            .await
    }

    /// As leader, restarts a lease's clock; answers its granted TTL.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseResult, Transient> {
        self.ask(|reply| Request::LeaseKeepAlive { id, reply })
            .await
    }

    /// As leader, answers the seconds a lease has left.
    pub async fn lease_time_to_live(&self, id: i64) -> Result<LeaseResult, Transient> {
        self.ask(|reply| Request::LeaseTimeToLive { id, reply })
            .await
    }

    /// As leader, member `id`'s match index and the leader's (see [`Request::Progress`]).
    pub async fn progress(&self, id: u64) -> Result<Option<(u64, u64)>, Transient> {
        self.ask(|reply| Request::Progress { id, reply }).await
    }

    /// Proposes a configuration change and waits until it is applied locally.
    pub async fn conf_change(&self, change: ConfChange) -> ProposeResult {
        self.ask(|reply| Request::ConfChange { change, reply })
            .await
    }

    /// Waits until a linearizable read may be served from the local store.
    pub async fn read_index(&self) -> Result<(), Transient> {
        self.ask(|reply| Request::ReadIndex { reply }).await
    }

    /// Asks the driver to hand leadership to `to` (see [`Request::TransferLeader`]).
    pub fn transfer_leader(&self, to: u64) -> Result<(), Transient> {
        self.tx
            .send(Request::TransferLeader { to })
            .map_err(|_| Transient::ShuttingDown)
    }

    /// Hands a peer's raft message to the driver.
    pub fn step(&self, msg: Message) -> Result<(), Transient> {
        self.tx
            .send(Request::Step(msg))
            .map_err(|_| Transient::ShuttingDown)
    }

    /// Raft id of the leader, if one is known.
    pub fn leader_id(&self) -> Option<u64> {
        match self.status.leader_id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Tells the driver what a peer's `410 Gone` tells it: this member was removed.
    pub fn report_removed(&self) {
        let _ = self
            .tx
            .send(Request::Transport(crate::transport::Report::Removed));
    }

    /// Asks the driver to stop.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown);
    }
}
