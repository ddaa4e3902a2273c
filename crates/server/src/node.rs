//! [`Node`]: the one door to this member, for every front-end (v1 and v2 HTTP, the peer API,
//! and later gRPC).
//!
//! A `Node` is a cheap clone (mini-redis's `Db` is the model): it holds the channel to the raft
//! driver, the published raft [`Status`], and the store. Through it a front-end can
//! - **propose** a command, or an etcd v3 request, and wait until it is applied here
//!   ([`Node::propose`], [`Node::propose_v3`]);
//! - **read** the store as applied on this member ([`Node::read`], a closure run under the
//!   store's read lock);
//! - **watch** a key ([`Node::watch`]): registration happens under the same lock as apply, so
//!   no event can fall between a read and a watch, and the returned [`Watch`] unregisters
//!   itself when dropped unanswered;
//! - hand in **raft messages** from peers ([`Node::receive`]);
//! - read the **status** (leader, term, applied index) and this member's raft id.
//!
//! Membership changes go through [`crate::cluster`], which builds every raft configuration
//! change.
//!
//! Invariants: the store's lock is private to this module and the driver; it is never held
//! across an `.await` (the closures are synchronous); apply and watch registration take it for
//! writing, everything else for reading.
//!
//! Deliberately not here: wire formats, status codes, authentication (each front-end's own),
//! and anything of raft-rs's beyond decoding what peers send.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use etcd_store::{Command, Event, Index, Watched};
use raft::eraftpb::{ConfChange, ConfChangeV2, EntryType, Message, MessageType};

use crate::raft::{Handle, SharedWatchers, V3Sink, WatchSender};
pub use crate::raft::{LeaseResult, ProposeResult, Status, Transient, V3Result};
use crate::transport;

/// The state machine as this member holds it.
pub type Store = etcd_store::Store<WatchSender>;

/// The store, shared by the driver (apply) and the door (reads, watches).
pub(crate) type SharedStore = Arc<RwLock<Store>>;

/// The door to this member. See the module docs.
#[derive(Clone)]
pub struct Node {
    raft: Handle,
    store: SharedStore,
    watchers: SharedWatchers,
    tokens: Arc<crate::tokens::Tokens>,
}

/// What a watch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// The v1 API: the key and everything below it.
    V1Prefix,
    /// The v2 API: the key itself (and removals of a directory above it), and with
    /// `recursive` everything below it but hidden keys.
    V2 {
        /// Below the key too.
        recursive: bool,
    },
}

/// A registered watch: answered at once from history, or waiting for its event.
pub enum Watch {
    /// A recorded event answers it.
    Ready(Event),
    /// Waiting; see [`Waiter::event`].
    Waiting(Waiter),
}

/// A watcher waiting in the store. Dropping it unanswered unregisters it.
pub struct Waiter {
    rx: tokio::sync::oneshot::Receiver<Event>,
    guard: Unwatch,
}

impl Waiter {
    /// The event, or `None` if the watcher was dropped unanswered (the node stops, or it
    /// caught up from a snapshot whose history no longer reaches back to the watch).
    pub async fn event(mut self) -> Option<Event> {
        let event = (&mut self.rx).await.ok();
        // Fired or dropped by the store: nothing left to unregister.
        self.guard.id = None;
        event
    }
}

/// Removes a watcher that has not fired when its waiter goes away (client gone, shutdown).
struct Unwatch {
    store: SharedStore,
    id: Option<u64>,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut store) = self.store.write() {
                if store.unwatch(id).is_some() {
                    tracing::debug!(id, waiting = store.watcher_count(), "watch abandoned");
                }
            }
        }
    }
}

/// Why raft messages from a peer were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The batch does not decode.
    #[error("bad raft message batch: {0}")]
    Malformed(String),
    /// The sender has been removed from the cluster (etcd answers 410 Gone).
    #[error("this member has been removed from the cluster")]
    SenderRemoved,
    /// A proposal that no member could apply (it would stop every member at every restart).
    #[error("{0}")]
    InvalidProposal(String),
    /// The node is stopping.
    #[error("shutting down")]
    ShuttingDown,
}

impl Node {
    /// The door over a started driver and the store it applies to.
    pub(crate) fn new(
        raft: Handle,
        store: SharedStore,
        watchers: SharedWatchers,
        tokens: Arc<crate::tokens::Tokens>,
    ) -> Node {
        Node {
            raft,
            store,
            watchers,
            tokens,
        }
    }

    /// The v3 auth tokens this member knows.
    pub fn tokens(&self) -> &crate::tokens::Tokens {
        &self.tokens
    }

    /// Runs `f` on the v3 watcher registry, under its lock (never held across an `.await`).
    pub fn v3_watchers<R>(&self, f: impl FnOnce(&mut etcd_mvcc::Watchers<V3Sink>) -> R) -> R {
        f(&mut self.watchers.lock().expect("watchers lock poisoned"))
    }

    /// This member's raft id.
    pub fn id(&self) -> u64 {
        self.raft.id
    }

    /// Raft id of the leader, if one is known.
    pub fn leader_id(&self) -> Option<u64> {
        self.raft.leader_id()
    }

    /// True while this member leads.
    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.id())
    }

    /// The raft status the driver publishes.
    pub fn status(&self) -> &Status {
        &self.raft.status
    }

    /// Index of the last entry applied here (published before any proposer is answered).
    pub fn applied(&self) -> Index {
        self.raft.status.applied.load(Ordering::Acquire)
    }

    /// The current raft term.
    pub fn term(&self) -> u64 {
        self.raft.status.term.load(Ordering::Acquire)
    }

    /// Proposes a command and waits until it is applied here.
    pub async fn propose(&self, command: Command) -> ProposeResult {
        self.raft.propose(command).await
    }

    /// Proposes an etcd v3 request and waits until it is applied here.
    pub async fn propose_v3(&self, request: etcd_v3proto::etcdrs::InternalRequest) -> V3Result {
        self.raft.propose_v3(request).await
    }

    /// As leader, restarts lease `id`'s clock at its full TTL and answers the TTL (a
    /// follower answers `NotLeader`: the caller forwards to the leader).
    ///
    /// Leadership is confirmed first, by a no-op through the log committed after the call: a
    /// leader deposed without knowing it yet (paused, cut off) must not restart a clock the
    /// real leader does not share, or the lease could expire earlier than the TTL after an
    /// answered keep-alive (etcd 3.4 had that bug; 3.6 checks leadership in the same way).
    /// Any leader elected after the no-op restarts every lease at its full TTL anyway.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseResult, Transient> {
        // (Applying a `Read` changes nothing and cannot fail.)
        let _ = self.propose(Command::Read).await?;
        self.raft.lease_keep_alive(id).await
    }

    /// As leader, answers the seconds lease `id` has left (a follower answers `NotLeader`).
    pub async fn lease_time_to_live(&self, id: i64) -> Result<LeaseResult, Transient> {
        self.raft.lease_time_to_live(id).await
    }

    /// As leader, hands leadership to member `to` and waits until it leads, checking every
    /// `tick` (etcd 3.4's `MoveLeader`): `NotLeader` on a follower, `BadLeaderTransferee` for
    /// a member that is not in the cluster, `Ok(false)` if `to` did not take over within
    /// `timeout`.
    pub async fn move_leader(
        &self,
        to: u64,
        tick: std::time::Duration,
        timeout: std::time::Duration,
    ) -> Result<bool, etcd_api::v3::V3Error> {
        use etcd_api::v3::V3Error;
        if !self.is_leader() {
            return Err(V3Error::NotLeader);
        }
        // A learner cannot lead: it does not vote.
        if !self.read(|s| s.members().get(&to).is_some_and(|m| !m.learner)) {
            return Err(V3Error::BadLeaderTransferee);
        }
        self.raft
            .transfer_leader(to)
            .map_err(|_| V3Error::Stopped)?;
        let deadline = tokio::time::Instant::now() + timeout;
        while self.leader_id() != Some(to) {
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(tick).await;
        }
        Ok(true)
    }

    /// As leader, member `id`'s match index and the leader's (`None` on a follower).
    pub async fn progress(&self, id: u64) -> Result<Option<(u64, u64)>, Transient> {
        self.raft.progress(id).await
    }

    /// Whether this member is a learner (it receives the log but does not vote).
    pub fn is_learner(&self) -> bool {
        self.raft.status.learner.load(Ordering::Acquire)
    }

    /// Proposes a configuration change (built by [`crate::cluster`] only).
    pub(crate) async fn conf_change(&self, change: ConfChange) -> ProposeResult {
        self.raft.conf_change(change).await
    }

    /// Runs `f` on the store as applied here, under its read lock.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.store.read().expect("store lock poisoned"))
    }

    /// Registers a watch of `key` from index `since` (0: the next event). Returns the watch
    /// and the index of the store's last change at registration.
    pub fn watch(
        &self,
        key: &str,
        kind: WatchKind,
        since: Index,
    ) -> (etcd_store::Result<Watch>, Index) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut store = self.store.write().expect("store lock poisoned");
        let index = store.index();
        let watched = match kind {
            WatchKind::V1Prefix => store.watch(key, since, tx),
            WatchKind::V2 { recursive } => store.watch_v2(key, recursive, since, tx),
        };
        let watch = watched.map(|w| match w {
            Watched::Ready(event, _) => Watch::Ready(event),
            Watched::Pending(id) => Watch::Waiting(Waiter {
                rx,
                guard: Unwatch {
                    store: self.store.clone(),
                    id: Some(id),
                },
            }),
        });
        (watch, index)
    }

    /// Hands a batch of raft messages from a peer (the transport's encoding) to the driver.
    pub fn receive(&self, batch: &[u8]) -> Result<(), Refused> {
        let msgs = transport::decode_batch(batch).map_err(|e| Refused::Malformed(e.to_string()))?;
        if let Some(first) = msgs.first() {
            // A batch comes from one peer.
            crate::metrics::metrics()
                .peer_received_bytes
                .with_label_values(&[&format!("{:x}", first.from)])
                .inc_by(batch.len() as u64);
        }
        // A removed member must learn it (and stop) rather than disrupt the cluster.
        if self.read(|s| msgs.iter().any(|m| s.is_removed(m.from))) {
            return Err(Refused::SenderRemoved);
        }
        // A proposal that the state machine could not decode would be committed and then stop
        // every member at every restart: refuse it here.
        if let Some(reason) = msgs.iter().find_map(invalid_proposal) {
            tracing::warn!("refusing a raft proposal from a peer: {reason}");
            return Err(Refused::InvalidProposal(reason));
        }
        for m in msgs {
            self.raft.step(m).map_err(|_| Refused::ShuttingDown)?;
        }
        Ok(())
    }

    /// Whether member `id` was removed from the cluster, as this member's log says.
    pub fn is_removed(&self, id: u64) -> bool {
        self.read(|s| s.is_removed(id))
    }

    /// A peer said this member was removed (see `cluster::notice_removal`): it stops as if it
    /// had applied its removal.
    pub(crate) fn report_removed(&self) {
        self.raft.report_removed();
    }

    /// Asks the driver to stop.
    pub(crate) fn shutdown(&self) {
        self.raft.shutdown();
    }

    /// Resolves once this member has applied its own removal from the cluster.
    pub async fn removed(&self) {
        self.raft.status.removed.notified().await;
    }
}

/// A door over an in-memory stand-in for the driver, for handler tests without a disk or raft:
/// one member (raft id 1, named `node0`, always leader at term 1) that applies each proposal
/// at the next index as soon as it arrives. Configuration changes are refused.
#[cfg(test)]
pub(crate) fn in_memory() -> Node {
    use crate::raft::Request;
    let store: SharedStore = Arc::new(RwLock::new(Store::new(1000)));
    let (tx, rx) = std::sync::mpsc::channel::<Request>();
    let status = Arc::new(Status::default());
    status.leader_id.store(1, Ordering::Release);
    status.term.store(1, Ordering::Release);
    let handle = Handle {
        tx,
        status: status.clone(),
        id: 1,
    };
    let applier = store.clone();
    let v3_applier = store.clone();
    let v3_status = status.clone();
    let watchers: SharedWatchers = Arc::new(std::sync::Mutex::new(etcd_mvcc::Watchers::new(1)));
    let v3_watchers = watchers.clone();
    let tokens = Arc::new(crate::tokens::Tokens::simple(crate::tokens::DEFAULT_TTL));
    let v3_tokens = tokens.clone();
    let apply = move |index: u64, command: &Command| {
        let applied = applier
            .write()
            .expect("store lock poisoned")
            .apply(index, command);
        status.applied.store(index, Ordering::Release);
        for (w, ev) in applied.fired {
            let _ = w.send(ev);
        }
        applied.result
    };
    apply(
        1,
        &Command::Join {
            id: 1,
            name: "node0".into(),
            raft_url: "http://127.0.0.1:7001".into(),
            etcd_url: "http://127.0.0.1:4001".into(),
        },
    )
    .expect("registering the member");
    std::thread::spawn(move || {
        let mut index = 1;
        for request in rx {
            match request {
                Request::Propose { command, reply } => {
                    index += 1;
                    let _ = reply.send(Ok(apply(index, &command)));
                }
                Request::ProposeV3 { request, reply } => {
                    index += 1;
                    let (applied, revision) = {
                        let mut store = v3_applier.write().expect("store lock poisoned");
                        let applied = store.apply_v3(index, request);
                        (applied, store.v3().revision())
                    };
                    if let Some(change) = &applied.tokens {
                        v3_tokens.follow(change);
                    }
                    v3_status.applied.store(index, Ordering::Release);
                    if !applied.changes.is_empty() {
                        v3_watchers
                            .lock()
                            .expect("watchers lock poisoned")
                            .notify(revision, &applied.changes);
                    }
                    let _ = reply.send(Ok(applied.result));
                }
                Request::ConfChange { reply, .. } => {
                    let _ = reply.send(Err(Transient::Refused("no raft in this test node")));
                }
                Request::ReadIndex { reply } => {
                    let _ = reply.send(Ok(()));
                }
                Request::Shutdown => return,
                _ => {}
            }
        }
    });
    Node::new(handle, store, watchers, tokens)
}

/// Why a forwarded proposal must not enter the log, if it must not.
fn invalid_proposal(m: &Message) -> Option<String> {
    use protobuf::Message as _;
    if m.get_msg_type() != MessageType::MsgPropose {
        return None;
    }
    m.get_entries().iter().find_map(|e| {
        let context = match e.get_entry_type() {
            EntryType::EntryNormal if e.data.is_empty() => return None,
            EntryType::EntryNormal => {
                return etcd_store::envelope::Entry::decode(&e.data)
                    .err()
                    .map(|err| err.to_string())
            }
            EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&e.data) {
                Ok(cc) => cc.context,
                Err(err) => return Some(err.to_string()),
            },
            EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&e.data) {
                Ok(cc) => cc.context,
                Err(err) => return Some(err.to_string()),
            },
        };
        if context.is_empty() {
            return None;
        }
        match Command::from_entry(&context) {
            Ok(
                Command::Join { .. }
                | Command::Leave { .. }
                | Command::AddLearner { .. }
                | Command::Promote { .. },
            ) => None,
            Ok(_) => Some(
                "a configuration change must carry a join, a leave, a learner or a promotion"
                    .into(),
            ),
            Err(err) => Some(err.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::Entry;

    fn proposal(data: &[u8]) -> Message {
        Message {
            msg_type: MessageType::MsgPropose,
            entries: vec![Entry {
                data: data.to_vec().into(),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn undecodable_proposals_are_refused_at_the_door() {
        assert!(invalid_proposal(&proposal(b"garbage")).is_some());
        assert!(invalid_proposal(&proposal(b"")).is_none());
        // v3 requests are entries too.
        let v3 = etcd_store::envelope::v3_entry(&Default::default());
        assert!(invalid_proposal(&proposal(&v3)).is_none());
        assert!(invalid_proposal(&proposal(&etcd_store::envelope::seal(1, b"\xff"))).is_some());
        let ok = Command::Delete { key: "/k".into() }.encode();
        assert!(invalid_proposal(&proposal(&ok)).is_none());
        let mut heartbeat = proposal(b"garbage");
        heartbeat.msg_type = MessageType::MsgHeartbeat;
        assert!(invalid_proposal(&heartbeat).is_none());
    }

    #[test]
    fn membership_changes_forwarded_by_a_follower_pass_the_door() {
        use raft::eraftpb::{ConfChange, EntryType};
        let change = |context: Command| {
            let cc = ConfChange {
                context: context.to_entry().into(),
                ..Default::default()
            };
            let mut m = proposal(&protobuf::Message::write_to_bytes(&cc).unwrap());
            m.entries[0].set_entry_type(EntryType::EntryConfChange);
            m
        };
        let learner = Command::AddLearner {
            id: 7,
            raft_url: "http://127.0.0.1:1".into(),
        };
        assert_eq!(invalid_proposal(&change(learner)), None);
        assert_eq!(invalid_proposal(&change(Command::Promote { id: 7 })), None);
        let other = change(Command::Delete { key: "/k".into() });
        assert!(invalid_proposal(&other).is_some());
    }
}
