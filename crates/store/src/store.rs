//! [`Store`]: the state machine that raft log entries are applied to.
//!
//! This file holds the state, the reads, watch registration, snapshots, and
//! [`Store::apply`], a short dispatch to one function per command family, each in its own
//! file below `store/`: `v1` (seed writes), `v2` (etcd v2 writes), `ttl` (TTL arithmetic, the expiry
//! index's queries, and the `Expire` family),
//! `members` (membership), `auth` (v2 users and roles), `v3` (etcd v3 requests on the MVCC keyspace). The helpers every family shares
//! (`write_file`, `remove`, `record`) stay here: a change goes into the tree, the TTL index,
//! the history and the watcher hub in one place.
//!
//! Invariants: indexes applied only increase; every change is recorded (history, then
//! watchers) at the index of the entry that made it; the TTL index holds exactly the nodes
//! with an expiry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::auth::Auth;
use crate::command::Command;
use crate::error::{Error, Result};
use crate::event::{Action, Event, NodeInfo, NodeView};
use crate::history::History;
use crate::member::Member;
use crate::path;
use crate::snapshot::StoreSnapshot;
use crate::stats::Stats;
use crate::tree::{Children, Kind, Node, Tree};
use crate::watch::WatcherHub;
use crate::{Index, UnixNanos};

mod alarms;
mod auth;
mod members;
mod refound;
mod ttl;
mod v1;
mod v2;
mod v3;
mod v3auth;

pub use refound::MigrateError;
pub use v3::{AppliedV3, LeaseChange};
pub use v3auth::{ReadCheck, TokenChange};

use ttl::expiry;
pub use ttl::ttl_left;

/// Watchers fired while applying, with their events (the caller delivers them).
type Fired<W> = Vec<(W, Event)>;

/// What applying a command answers its proposer: the event, or a deterministic error.
type Outcome = Result<Option<Event>>;

/// What a write did, for its event (see `Store::written`).
pub(super) struct Written {
    /// The write's action.
    pub(super) action: Action,
    /// The node is a directory.
    pub(super) dir: bool,
    /// A file's new value.
    pub(super) value: Option<String>,
    /// The node before, if there was one.
    pub(super) prev: Option<NodeInfo>,
    /// The node's created index.
    pub(super) created: Index,
    /// Its new expiry.
    pub(super) expire_at: Option<UnixNanos>,
    /// A TTL refresh (wakes no watcher).
    pub(super) refresh: bool,
}

/// The outcome of applying one command.
pub struct Applied<W> {
    /// What to answer the proposer: the event, or a deterministic error. `None` for commands
    /// with no single answer (expiry).
    pub result: Result<Option<Event>>,
    /// Watchers fired by this command, with their event, to be delivered by the caller.
    pub fired: Vec<(W, Event)>,
}

/// The outcome of a watch request.
pub enum Watched<W> {
    /// A recorded event answers it at once; the watcher payload is handed back.
    Ready(Event, W),
    /// Registered; the id can cancel it with [`Store::unwatch`].
    Pending(u64),
}

/// What a GET finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A file.
    Value(Event),
    /// A directory: its immediate children, sorted by key.
    Listing(Vec<Event>),
}

/// The key-value state machine. See the crate docs for the contract.
pub struct Store<W> {
    tree: Tree,
    /// Expiry index ordered by (expiry, key): the next node due is the first element. Holds
    /// files and directories. Persistent, like the tree, so snapshots share it.
    ttl: imbl::OrdSet<(UnixNanos, String)>,
    history: History,
    history_capacity: usize,
    watchers: WatcherHub<W>,
    members: BTreeMap<u64, Member>,
    /// Raft ids of members removed from the cluster: they may never come back.
    removed: BTreeSet<u64>,
    /// Index of the last entry that changed the key space (reported by GET).
    index: Index,
    /// Index of the last entry applied.
    applied: Index,
    stats: Stats,
    /// v2 authentication.
    auth: Auth,
    /// The v3 keyspace (its own revisions, apart from the v2 tree).
    v3: etcd_mvcc::Keyspace,
    /// The v3 leases.
    leases: etcd_mvcc::Leases,
    /// Active alarms: (member id, `etcdserverpb.AlarmType`), see `store/alarms.rs`.
    alarms: BTreeSet<(u64, i32)>,
    /// v3 authentication (apart from v2's, as in etcd).
    auth3: crate::v3auth::AuthV3,
    /// Set by the first member's registration (see [`crate::member::cluster_id_of`]).
    cluster_id: u64,
}

/// A node's description at `time`.
pub(super) fn info(key: &str, n: &Node, time: UnixNanos) -> NodeInfo {
    NodeInfo {
        key: key.to_string(),
        dir: n.is_dir(),
        value: n.value().map(str::to_string),
        expiration: n.expire_at,
        ttl: ttl_left(n.expire_at, time),
        created_index: n.created,
        modified_index: n.modified,
    }
}

impl<W> Store<W> {
    /// An empty store keeping `history_capacity` events for watch-from-index.
    pub fn new(history_capacity: usize) -> Store<W> {
        Store {
            tree: Tree::default(),
            ttl: imbl::OrdSet::new(),
            history: History::new(history_capacity),
            history_capacity,
            watchers: WatcherHub::new(),
            members: BTreeMap::new(),
            removed: BTreeSet::new(),
            index: 0,
            applied: 0,
            stats: Stats::default(),
            auth: Auth::default(),
            v3: etcd_mvcc::Keyspace::new(),
            leases: etcd_mvcc::Leases::new(),
            alarms: BTreeSet::new(),
            auth3: Default::default(),
            cluster_id: 0,
        }
    }

    /// The v3 leases as applied here.
    pub fn leases(&self) -> &etcd_mvcc::Leases {
        &self.leases
    }

    /// The cluster's id, the same on every member and for the life of the cluster (0 before
    /// the first member's registration is applied).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The v3 keyspace as applied here.
    pub fn v3(&self) -> &etcd_mvcc::Keyspace {
        &self.v3
    }

    /// Keeps v3 values written from now on (and those of snapshots restored later, when they
    /// are decoded with [`Store::v3_values`]) where `values` says.
    pub fn set_v3_values(&mut self, values: etcd_mvcc::Values) {
        self.v3.set_values(values);
    }

    /// Where v3 values are kept: what a snapshot to restore here is decoded with
    /// ([`StoreSnapshot::read_from_with`]).
    pub fn v3_values(&self) -> etcd_mvcc::Values {
        self.v3.values().clone()
    }

    /// The v2 authentication state.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Index of the last entry that changed the key space.
    pub fn index(&self) -> Index {
        self.index
    }

    /// Index of the last entry applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Notes that a log entry without a command (a leader's empty entry, a configuration
    /// change without registration) was applied.
    pub fn skip(&mut self, index: Index) {
        self.applied = self.applied.max(index);
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Members by raft id.
    pub fn members(&self) -> &BTreeMap<u64, Member> {
        &self.members
    }

    /// Each member's peer URL, by raft id.
    pub fn peer_urls(&self) -> BTreeMap<u64, String> {
        self.members
            .iter()
            .map(|(id, m)| (*id, m.raft_url.clone()))
            .collect()
    }

    /// True if `id` was a member and has been removed.
    pub fn is_removed(&self, id: u64) -> bool {
        self.removed.contains(&id)
    }

    /// How many watchers are waiting.
    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Reads a key for the v1 API: a file's value or a directory's listing. Counts as a GET.
    pub fn get(&self, key: &str) -> Result<Got> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        let key = path::clean(key);
        let found = if key == "/" {
            Ok(self.tree.root())
        } else {
            match self.tree.get(&key) {
                None => Err(Error::KeyNotFound(key.clone())),
                Some(n) => match &n.kind {
                    Kind::File(value) => {
                        self.stats.v2.gets_success.fetch_add(1, Ordering::Relaxed);
                        return Ok(Got::Value(Event {
                            action: Action::Get,
                            key,
                            dir: false,
                            prev_value: None,
                            value: Some(value.clone()),
                            new_key: false,
                            expiration: n.expire_at,
                            index: self.index,
                            created_index: n.created,
                            ttl: None,
                            prev_node: None,
                            refresh: false,
                        }));
                    }
                    Kind::Dir(children) => Ok(children),
                },
            }
        };
        let children = match found {
            Ok(c) => c,
            Err(e) => {
                self.stats.v2.gets_fail.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.stats.v2.gets_success.fetch_add(1, Ordering::Relaxed);
        Ok(Got::Listing(
            children
                .iter()
                .map(|(name, node)| Event {
                    action: Action::Get,
                    key: path::join(&key, name),
                    dir: node.is_dir(),
                    prev_value: None,
                    value: node.value().map(str::to_string),
                    new_key: false,
                    expiration: node.expire_at,
                    index: self.index,
                    created_index: node.created,
                    ttl: None,
                    prev_node: None,
                    refresh: false,
                })
                .collect(),
        ))
    }

    /// True when `key` is a directory (`/` included). Not counted as a read.
    pub fn is_dir(&self, key: &str) -> bool {
        let key = path::clean(key);
        key == "/" || self.tree.get(&key).is_some_and(Node::is_dir)
    }

    /// Reads a node for the v2 API: a file, or a directory with its children (and, with
    /// `recursive`, theirs). Children whose name starts with `_` are hidden. Counts as a GET.
    pub fn get_v2(&self, key: &str, recursive: bool) -> Result<NodeView> {
        let key = path::clean(key);
        let view = match self.tree.lookup(&key) {
            Ok(None) => Ok(NodeView {
                key: "/".to_string(),
                dir: true,
                value: None,
                expiration: None,
                created_index: 0,
                modified_index: 0,
                nodes: Some(Self::list(&key, self.tree.root(), recursive)),
            }),
            Ok(Some(n)) => Ok(Self::view(&key, n, true, recursive)),
            Err(e) => Err(e),
        };
        self.stats.v2.count_get(view.is_ok());
        view
    }

    fn view(key: &str, n: &Node, expand: bool, recursive: bool) -> NodeView {
        NodeView {
            key: key.to_string(),
            dir: n.is_dir(),
            value: n.value().map(str::to_string),
            expiration: n.expire_at,
            created_index: n.created,
            modified_index: n.modified,
            nodes: match n.children() {
                Some(children) if expand => Some(Self::list(key, children, recursive)),
                _ => None,
            },
        }
    }

    fn list(key: &str, children: &Children, recursive: bool) -> Vec<NodeView> {
        children
            .iter()
            .filter(|(name, _)| !name.starts_with('_'))
            .map(|(name, child)| Self::view(&path::join(key, name), child, recursive, recursive))
            .collect()
    }

    /// Watches `prefix` and everything below it (the v1 API). With `since` > 0, the first
    /// recorded event with index ≥ `since` answers at once; otherwise the watcher waits for
    /// the next event (with index ≥ `since`).
    pub fn watch(&mut self, prefix: &str, since: Index, payload: W) -> Result<Watched<W>> {
        self.watch_with(prefix, true, false, since, payload)
    }

    /// Watches a key the v2 way: only the key itself (and removals of a directory above it),
    /// or with `recursive` everything below it too, except below hidden (`_`) segments
    /// under the watched key.
    pub fn watch_v2(
        &mut self,
        key: &str,
        recursive: bool,
        since: Index,
        payload: W,
    ) -> Result<Watched<W>> {
        self.watch_with(key, recursive, true, since, payload)
    }

    fn watch_with(
        &mut self,
        key: &str,
        recursive: bool,
        hide: bool,
        since: Index,
        payload: W,
    ) -> Result<Watched<W>> {
        let key = path::clean(key);
        if since > 0 {
            if let Some(e) = self.history.scan(&key, recursive, hide, since)? {
                return Ok(Watched::Ready(e.clone(), payload));
            }
        }
        Ok(Watched::Pending(
            self.watchers.add(&key, since, recursive, hide, payload),
        ))
    }

    /// Cancels a waiting watcher (its client went away). Returns its payload if it had not
    /// fired yet.
    pub fn unwatch(&mut self, id: u64) -> Option<W> {
        self.watchers.remove(id)
    }

    /// Applies the command of log entry `index`. Indexes must increase.
    pub fn apply(&mut self, index: Index, cmd: &Command) -> Applied<W> {
        debug_assert!(index > self.applied, "log index {index} applied twice");
        self.applied = index;
        let mut fired = Vec::new();
        let result = match cmd {
            Command::Set { .. } | Command::TestAndSet { .. } | Command::Delete { .. } => {
                self.apply_v1(index, cmd, &mut fired)
            }
            Command::V2Put { .. } | Command::V2Post { .. } | Command::V2Delete { .. } => {
                self.apply_v2(index, cmd, &mut fired)
            }
            Command::Expire { .. } => self.apply_expire(index, cmd, &mut fired),
            Command::Join { .. }
            | Command::AddLearner { .. }
            | Command::Promote { .. }
            | Command::Leave { .. }
            | Command::UpdatePeer { .. } => self.apply_members(index, cmd, &mut fired),
            Command::AuthPutUser { .. }
            | Command::AuthDeleteUser { .. }
            | Command::AuthPutRole { .. }
            | Command::AuthDeleteRole { .. }
            | Command::AuthEnable { .. } => self.apply_auth(cmd),
            Command::Read => Ok(None),
        };
        Applied { result, fired }
    }

    /// Writes a file at `key` (checked by the caller: not the root, no file on the path, not a
    /// directory) and records the event. `Set` and `Create` make a new node; `Update` and
    /// `CompareAndSwap` keep the node's `createdIndex`.
    #[allow(clippy::too_many_arguments)]
    fn write_file(
        &mut self,
        index: Index,
        key: &str,
        value: String,
        expire_at: Option<UnixNanos>,
        action: Action,
        time: UnixNanos,
        fired: &mut Fired<W>,
    ) -> Event {
        let mut node = Node::file(value.clone(), index, expire_at);
        let prev = self.tree.get(key).map(|n| info(key, n, time));
        if let Some(p) = &prev {
            if matches!(action, Action::Update | Action::CompareAndSwap) {
                node.created = p.created_index;
            }
            if let Some(at) = p.expiration {
                self.ttl.remove(&(at, key.to_string()));
            }
        }
        let created = node.created;
        self.tree.put(key, node, index);
        self.written(
            index,
            key,
            Written {
                action,
                dir: false,
                value: Some(value),
                prev,
                created,
                expire_at,
                refresh: false,
            },
            time,
            fired,
        )
    }

    /// Finishes a write at `key` whose node is in the tree (and whose old expiry is off the
    /// index): indexes the new expiry, builds the event and records it.
    pub(super) fn written(
        &mut self,
        index: Index,
        key: &str,
        w: Written,
        time: UnixNanos,
        fired: &mut Fired<W>,
    ) -> Event {
        if let Some(at) = w.expire_at {
            self.ttl.insert((at, key.to_string()));
        }
        let event = Event {
            action: w.action,
            key: key.to_string(),
            dir: w.dir,
            prev_value: w.prev.as_ref().and_then(|p| p.value.clone()),
            value: w.value,
            new_key: w.prev.is_none(),
            expiration: w.expire_at,
            index,
            created_index: w.created,
            ttl: ttl_left(w.expire_at, time),
            prev_node: w.prev.map(Box::new),
            refresh: w.refresh,
        };
        self.record(&event, fired);
        event
    }

    /// Removes the node at `key` (which exists and is not the root) and everything below it,
    /// and records the event.
    fn remove(
        &mut self,
        index: Index,
        key: &str,
        action: Action,
        time: UnixNanos,
        fired: &mut Fired<W>,
    ) -> Result<Event> {
        let node = self
            .tree
            .remove(key)
            .ok_or_else(|| Error::KeyNotFound(key.to_string()))?;
        let ttl = &mut self.ttl;
        node.walk(key, &mut |k, n| {
            if let Some(at) = n.expire_at {
                ttl.remove(&(at, k.to_string()));
            }
        });
        let mut prev = info(key, &node, time);
        if action == Action::Expire {
            prev.ttl = None;
        }
        let event = Event {
            action,
            key: key.to_string(),
            dir: node.is_dir(),
            prev_value: node.value().map(str::to_string),
            value: None,
            new_key: false,
            expiration: node.expire_at,
            index,
            created_index: node.created,
            ttl: None,
            prev_node: Some(Box::new(prev)),
            refresh: false,
        };
        self.record(&event, fired);
        Ok(event)
    }

    fn record(&mut self, event: &Event, fired: &mut Fired<W>) {
        self.index = event.index;
        self.history.push(Arc::new(event.clone()));
        self.watchers.notify(event, fired);
    }

    /// The whole replicated state (not the watchers, which are local). O(1) in the size of the
    /// tree: it shares the persistent structures (see [`StoreSnapshot`]).
    pub fn snapshot(&self) -> StoreSnapshot {
        let (events, cleared) = self.history.parts();
        StoreSnapshot {
            tree: self.tree.clone(),
            ttl: self.ttl.clone(),
            history: events.cloned().collect(),
            history_cleared_through: cleared,
            members: self.members.clone(),
            removed: self.removed.clone(),
            auth: self.auth.clone(),
            index: self.index,
            applied: self.applied,
            stats: self.stats.copy(),
            v3: self.v3.clone(),
            leases: self.leases.clone(),
            alarms: self.alarms.clone(),
            auth3: self.auth3.clone(),
            cluster_id: self.cluster_id,
        }
    }

    /// Takes in the v3 state of an etcd database (read with this store's
    /// [`Store::v3_values`]): the keyspace, leases and auth replace this store's (a member
    /// being created from a snapshot file; nothing else is touched).
    pub fn import_etcd(&mut self, import: crate::EtcdImport) {
        self.v3 = import.v3;
        self.leases = import.leases;
        self.auth3 = import.auth3;
    }

    /// Replaces the whole replicated state with a snapshot. Waiting watchers stay; those that
    /// the restored history answers fire now (returned for delivery).
    pub fn restore(&mut self, snap: StoreSnapshot) -> Vec<(W, Event)> {
        self.tree = snap.tree;
        self.ttl = snap.ttl;
        self.history = History::restore(
            self.history_capacity,
            snap.history,
            snap.history_cleared_through,
        );
        self.members = snap.members;
        self.removed = snap.removed;
        self.stats = snap.stats;
        self.auth = snap.auth;
        // Values written from now on go where they went before, whatever the snapshot was
        // decoded with.
        let values = self.v3_values();
        self.v3 = snap.v3;
        self.v3.set_values(values);
        self.leases = snap.leases;
        self.alarms = snap.alarms;
        self.auth3 = snap.auth3;
        self.cluster_id = snap.cluster_id;
        // A watcher waiting for "the next event" registered before the old state's last entry
        // was applied, so events after that are new to it.
        let next_after_old = self.applied + 1;
        self.index = snap.index;
        self.applied = snap.applied;
        let mut fired = Vec::new();
        let history = &self.history;
        self.watchers.drain_matching(
            |key, recursive, hide, since| match history.scan(
                key,
                recursive,
                hide,
                since.max(next_after_old),
            ) {
                Ok(found) => Ok(found.cloned()),
                // Events it waited for may be gone with the old state: it ends (the client
                // watches again and hears "history cleared" if so), rather than skip them.
                Err(_) => Err(()),
            },
            &mut fired,
        );
        fired
    }
}
