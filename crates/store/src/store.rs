//! [`Store`]: the state machine that raft log entries are applied to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::{Auth, Refusal};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::history::History;
use crate::path;
use crate::snapshot::StoreSnapshot;
use crate::tree::{Children, Kind, Node, Tree};
use crate::watch::WatcherHub;
use crate::{Index, UnixNanos};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// What an event did: etcd v2's actions (the v1 API shows `SET`, `GET` or `DELETE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Set (replace or create).
    Set,
    /// Read.
    Get,
    /// Delete.
    Delete,
    /// Create of a key that must not exist (v2 `prevExist=false`, `POST`).
    Create,
    /// Update of a key that must exist (v2 `prevExist=true`).
    Update,
    /// Compare-and-swap (v1 test-and-set, v2 `prevValue`/`prevIndex`).
    CompareAndSwap,
    /// Compare-and-delete.
    CompareAndDelete,
    /// TTL expiry.
    Expire,
}

impl Action {
    /// True for actions that remove a node.
    pub fn removes(self) -> bool {
        matches!(
            self,
            Action::Delete | Action::CompareAndDelete | Action::Expire
        )
    }
}

/// A node as it was at some index, as events and `prevNode` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Clean key.
    pub key: String,
    /// A directory.
    #[serde(default)]
    pub dir: bool,
    /// A file's value.
    #[serde(default)]
    pub value: Option<String>,
    /// Absolute expiry, if it has a TTL.
    #[serde(default)]
    pub expiration: Option<UnixNanos>,
    /// Whole seconds left then, rounded up (etcd v2's `ttl`), if it had some left.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// Index that created it.
    pub created_index: Index,
    /// Index that last modified it.
    pub modified_index: Index,
}

/// One change (or, for reads, one entry) of the key space.
///
/// The v1 fields (`prev_value`, `new_key`, `expiration` of a removed key) and the v2 fields
/// (`created_index`, `ttl`, `prev_node`) describe the same change; each API renders its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// Clean key.
    pub key: String,
    /// True for directories (listings, and v2 directory writes and removals).
    #[serde(default)]
    pub dir: bool,
    /// The value before the change.
    #[serde(default)]
    pub prev_value: Option<String>,
    /// The value after the change (or the value read).
    #[serde(default)]
    pub value: Option<String>,
    /// True when a set created the key.
    #[serde(default)]
    pub new_key: bool,
    /// Absolute expiry, when the key has (or, for removals, had) a TTL.
    #[serde(default)]
    pub expiration: Option<UnixNanos>,
    /// Log index of the change, the node's `modifiedIndex` (for v1 reads: of the last change
    /// of the store).
    pub index: Index,
    /// The node's `createdIndex`.
    #[serde(default)]
    pub created_index: Index,
    /// TTL left at the time of the change (v2's `ttl`), for nodes that still exist.
    #[serde(default)]
    pub ttl: Option<i64>,
    /// The node before the change, if there was one (v2's `prevNode`).
    #[serde(default)]
    pub prev_node: Option<Box<NodeInfo>>,
    /// A TTL refresh: recorded, but it wakes no watcher.
    #[serde(default)]
    pub refresh: bool,
}

/// A node and (for directories) what a v2 GET shows of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Clean key (`/` for the root).
    pub key: String,
    /// A directory.
    pub dir: bool,
    /// A file's value.
    pub value: Option<String>,
    /// Absolute expiry, if it has a TTL.
    pub expiration: Option<UnixNanos>,
    /// Index that created it (0 for the root).
    pub created_index: Index,
    /// Index that last modified it (0 for the root).
    pub modified_index: Index,
    /// A directory's children (hidden ones left out), sorted by key; `None` for files and for
    /// directories below the listed one in a non-recursive listing.
    pub nodes: Option<Vec<NodeView>>,
}

/// A cluster member, as registered through the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Unique name.
    pub name: String,
    /// Advertised peer URL.
    pub raft_url: String,
    /// Advertised client URL.
    pub etcd_url: String,
}

/// Operation counters (`/v1/stats`, `/v2/stats/store`). Reads count on the member that
/// served them; the others count commands applied, so they agree on every member.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// GETs served (file reads and listings).
    #[serde(with = "atomic")]
    pub gets: AtomicU64,
    /// Set commands applied.
    pub sets: u64,
    /// Delete commands applied.
    pub deletes: u64,
    /// Test-and-set commands applied.
    #[serde(rename = "testAndSets")]
    pub test_and_sets: u64,
    /// etcd v2's store counters.
    #[serde(default)]
    pub v2: V2Stats,
}

/// etcd v2's store counters, in its JSON names.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V2Stats {
    /// Successful reads.
    #[serde(with = "atomic", default)]
    pub gets_success: AtomicU64,
    /// Failed reads.
    #[serde(with = "atomic", default)]
    pub gets_fail: AtomicU64,
    /// Successful sets.
    pub sets_success: u64,
    /// Failed sets.
    pub sets_fail: u64,
    /// Successful deletes.
    pub delete_success: u64,
    /// Failed deletes.
    pub delete_fail: u64,
    /// Successful updates.
    pub update_success: u64,
    /// Failed updates.
    pub update_fail: u64,
    /// Successful creates.
    pub create_success: u64,
    /// Failed creates.
    pub create_fail: u64,
    /// Successful compare-and-swaps.
    pub compare_and_swap_success: u64,
    /// Failed compare-and-swaps.
    pub compare_and_swap_fail: u64,
    /// Successful compare-and-deletes.
    pub compare_and_delete_success: u64,
    /// Failed compare-and-deletes.
    pub compare_and_delete_fail: u64,
    /// Expired nodes.
    pub expire_count: u64,
}

impl Stats {
    /// A copy of the counters as they are now.
    pub(crate) fn copy(&self) -> Stats {
        Stats {
            gets: AtomicU64::new(self.gets.load(Ordering::Relaxed)),
            sets: self.sets,
            deletes: self.deletes,
            test_and_sets: self.test_and_sets,
            v2: self.v2.copy(),
        }
    }
}

impl V2Stats {
    fn count(&mut self, action: Action, ok: bool) {
        let (success, fail) = match action {
            Action::Set => (&mut self.sets_success, &mut self.sets_fail),
            Action::Delete => (&mut self.delete_success, &mut self.delete_fail),
            Action::Update => (&mut self.update_success, &mut self.update_fail),
            Action::Create => (&mut self.create_success, &mut self.create_fail),
            Action::CompareAndSwap => (
                &mut self.compare_and_swap_success,
                &mut self.compare_and_swap_fail,
            ),
            Action::CompareAndDelete => (
                &mut self.compare_and_delete_success,
                &mut self.compare_and_delete_fail,
            ),
            Action::Expire => {
                self.expire_count += u64::from(ok);
                return;
            }
            Action::Get => {
                self.count_get(ok);
                return;
            }
        };
        if ok {
            *success += 1;
        } else {
            *fail += 1;
        }
    }

    fn count_get(&self, ok: bool) {
        let c = if ok {
            &self.gets_success
        } else {
            &self.gets_fail
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn copy(&self) -> V2Stats {
        V2Stats {
            gets_success: AtomicU64::new(self.gets_success.load(Ordering::Relaxed)),
            gets_fail: AtomicU64::new(self.gets_fail.load(Ordering::Relaxed)),
            ..*self
        }
    }
}

mod atomic {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(super) fn serialize<S: serde::Serializer>(v: &AtomicU64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.load(Ordering::Relaxed))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<AtomicU64, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(AtomicU64::new)
    }
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
}

/// An auth command's outcome as an apply result.
fn auth_result<T>(r: std::result::Result<T, Refusal>) -> Result<Option<Event>> {
    r.map(|_| None).map_err(|e| Error::Auth {
        status: e.status,
        message: e.message,
    })
}

/// Whole seconds from `time` to `expire_at`, rounded up; `None` when nothing is left.
fn ttl_left(expire_at: Option<UnixNanos>, time: UnixNanos) -> Option<i64> {
    let left = expire_at?.saturating_sub(time);
    // Rounded up without overflowing next to i64::MAX (a TTL of billions of years).
    (left > 0).then(|| left / NANOS_PER_SEC + i64::from(left % NANOS_PER_SEC != 0))
}

/// A node's description at `time`.
fn info(key: &str, n: &Node, time: UnixNanos) -> NodeInfo {
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

/// The absolute expiry of a TTL given at `time` (a negative TTL is already over).
fn expiry(ttl_secs: Option<i64>, time: UnixNanos) -> Option<UnixNanos> {
    ttl_secs.map(|t| time.saturating_add(t.max(0).saturating_mul(NANOS_PER_SEC)))
}

/// etcd v2's cause text for a failed compare.
fn compare_failure(
    node: &Node,
    prev_value: Option<&str>,
    prev_index: Option<u64>,
) -> Option<String> {
    let current = node.value().unwrap_or("");
    let value_ok = prev_value.is_none_or(|v| v == current);
    let index_ok = prev_index.is_none_or(|i| i == node.modified);
    match (value_ok, index_ok) {
        (true, true) => None,
        (false, true) => Some(format!("[{} != {current}]", prev_value.unwrap_or(""))),
        (true, false) => Some(format!(
            "[{} != {}]",
            prev_index.unwrap_or(0),
            node.modified
        )),
        (false, false) => Some(format!(
            "[{} != {current}] [{} != {}]",
            prev_value.unwrap_or(""),
            prev_index.unwrap_or(0),
            node.modified
        )),
    }
}

/// How a v2 PUT is carried out (etcd's `apply_v2` dispatch).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PutKind {
    Set,
    Create,
    Update,
    CompareAndSwap,
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
        }
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

    /// The earliest expiry of any node, if any node has a TTL.
    pub fn next_expiry(&self) -> Option<UnixNanos> {
        self.ttl.get_min().map(|(t, _)| *t)
    }

    /// Up to `limit` keys due at `time`, earliest first: what the leader proposes to expire.
    pub fn due(&self, time: UnixNanos, limit: usize) -> Vec<String> {
        self.ttl
            .iter()
            .take_while(|(at, _)| *at <= time)
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect()
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
            Command::Set {
                key,
                value,
                ttl_secs,
                time,
            } => {
                self.stats.sets += 1;
                let key = path::clean(key);
                let r = self.v1_set(index, &key, value, *ttl_secs, *time, &mut fired);
                self.stats.v2.count(Action::Set, r.is_ok());
                r
            }
            Command::TestAndSet {
                key,
                prev_value,
                value,
                ttl_secs,
                time,
            } => {
                self.stats.test_and_sets += 1;
                let key = path::clean(key);
                let r = match self.tree.get(&key) {
                    None => Err(Error::KeyNotFound(key)),
                    Some(n) if n.is_dir() => Err(Error::NotFile(key)),
                    Some(n) if n.value() != Some(prev_value.as_str()) => Err(Error::TestFailed {
                        current: n.value().unwrap_or("").to_string(),
                        prev_value: prev_value.clone(),
                    }),
                    Some(_) if path::is_reserved(&key) => Err(Error::Keyword("Set")),
                    Some(_) => match expiry(*ttl_secs, *time) {
                        _ if ttl_secs.is_some_and(|t| t <= 0) => {
                            self.remove(index, &key, Action::Delete, *time, &mut fired)
                        }
                        expire_at => Ok(self.write_file(
                            index,
                            &key,
                            value.clone(),
                            expire_at,
                            Action::CompareAndSwap,
                            *time,
                            &mut fired,
                        )),
                    }
                    .map(Some),
                };
                self.stats.v2.count(Action::CompareAndSwap, r.is_ok());
                r
            }
            Command::Delete { key } => {
                self.stats.deletes += 1;
                let key = path::clean(key);
                let r = if path::is_reserved(&key) {
                    Err(Error::Keyword("Delete"))
                } else {
                    self.v1_delete(index, &key, &mut fired).map(Some)
                };
                self.stats.v2.count(Action::Delete, r.is_ok());
                r
            }
            Command::Read => Ok(None),
            Command::AuthPutUser {
                name,
                password_hash,
                roles,
                grant,
                revoke,
            } => auth_result(self.auth.put_user(
                name,
                password_hash.as_deref(),
                roles,
                grant,
                revoke,
            )),
            Command::AuthDeleteUser { name } => auth_result(self.auth.delete_user(name)),
            Command::AuthPutRole {
                name,
                permissions,
                grant,
                revoke,
            } => auth_result(self.auth.put_role(
                name,
                permissions.as_ref(),
                grant.as_ref(),
                revoke.as_ref(),
            )),
            Command::AuthDeleteRole { name } => auth_result(self.auth.delete_role(name)),
            Command::AuthEnable { enabled } => auth_result(self.auth.set_enabled(*enabled)),
            Command::Expire { time, key: None } => {
                while let Some((at, key)) = self.ttl.get_min().cloned() {
                    if at > *time {
                        break;
                    }
                    // Off the index first, so that a stale entry cannot loop forever.
                    self.ttl.remove(&(at, key.clone()));
                    if self
                        .remove(index, &key, Action::Expire, *time, &mut fired)
                        .is_ok()
                    {
                        self.stats.v2.count(Action::Expire, true);
                    }
                }
                Ok(None)
            }
            Command::Expire {
                time,
                key: Some(key),
            } => {
                let key = path::clean(key);
                let due = self
                    .tree
                    .get(&key)
                    .and_then(|n| n.expire_at)
                    .is_some_and(|at| at <= *time);
                if due {
                    self.stats.v2.count(Action::Expire, true);
                    self.remove(index, &key, Action::Expire, *time, &mut fired)
                        .map(Some)
                } else {
                    Ok(None)
                }
            }
            Command::V2Put {
                key,
                value,
                dir,
                ttl_secs,
                refresh,
                prev_exist,
                prev_value,
                prev_index,
                time,
            } => {
                let compare = prev_value.is_some() || prev_index.is_some();
                let kind = match prev_exist {
                    Some(true) if compare => PutKind::CompareAndSwap,
                    Some(true) => PutKind::Update,
                    Some(false) => PutKind::Create,
                    None if compare => PutKind::CompareAndSwap,
                    None => PutKind::Set,
                };
                let r = self.v2_put(
                    index,
                    kind,
                    &path::clean(key),
                    value,
                    *dir,
                    expiry(*ttl_secs, *time),
                    *refresh,
                    prev_value.as_deref(),
                    *prev_index,
                    *time,
                    &mut fired,
                );
                let action = match kind {
                    PutKind::Set => Action::Set,
                    PutKind::Create => Action::Create,
                    PutKind::Update => Action::Update,
                    PutKind::CompareAndSwap => Action::CompareAndSwap,
                };
                self.stats.v2.count(action, r.is_ok());
                r.map(Some)
            }
            Command::V2Post {
                key,
                value,
                dir,
                ttl_secs,
                time,
            } => {
                let key = path::join(&path::clean(key), &format!("{index:020}"));
                let r = self.v2_put(
                    index,
                    PutKind::Create,
                    &key,
                    value,
                    *dir,
                    expiry(*ttl_secs, *time),
                    false,
                    None,
                    None,
                    *time,
                    &mut fired,
                );
                self.stats.v2.count(Action::Create, r.is_ok());
                r.map(Some)
            }
            Command::V2Delete {
                key,
                dir,
                recursive,
                prev_value,
                prev_index,
                time,
            } => {
                let key = path::clean(key);
                let compare = prev_value.is_some() || prev_index.is_some();
                let r = self.v2_delete(
                    index,
                    &key,
                    *dir || *recursive,
                    *recursive,
                    compare.then_some((prev_value.as_deref(), *prev_index)),
                    *time,
                    &mut fired,
                );
                let action = if compare {
                    Action::CompareAndDelete
                } else {
                    Action::Delete
                };
                self.stats.v2.count(action, r.is_ok());
                r.map(Some)
            }
            Command::Join { id, .. } if self.removed.contains(id) => {
                // A late registration of a member removed meanwhile: it stays removed.
                Ok(None)
            }
            Command::Join {
                id,
                name,
                raft_url,
                etcd_url,
            } => {
                self.members.insert(
                    *id,
                    Member {
                        name: name.clone(),
                        raft_url: raft_url.clone(),
                        etcd_url: etcd_url.clone(),
                    },
                );
                if name.is_empty() {
                    // Added through `POST /v2/members`: registered once it starts and joins.
                    return Applied {
                        result: Ok(None),
                        fired,
                    };
                }
                let key = path::join(path::MACHINES_DIR, name);
                let value = format!("raft={raft_url}&etcd={etcd_url}");
                self.tree
                    .check_parents(&key)
                    .map_err(|_| Error::NotFile(key.clone()))
                    .and_then(|()| match self.tree.get(&key) {
                        Some(n) if n.is_dir() => Err(Error::NotFile(key.clone())),
                        _ => Ok(()),
                    })
                    .map(|()| {
                        Some(self.write_file(index, &key, value, None, Action::Set, 0, &mut fired))
                    })
            }
            Command::Leave { id, name } => {
                self.members.remove(id);
                self.removed.insert(*id);
                if name.is_empty() {
                    Ok(None)
                } else {
                    let key = path::join(path::MACHINES_DIR, name);
                    self.v1_delete(index, &key, &mut fired).map(Some)
                }
            }
            Command::UpdatePeer { id, raft_url } => {
                let update = self
                    .members
                    .get(id)
                    .map(|m| (m.name.clone(), m.etcd_url.clone()));
                match update {
                    Some((name, etcd_url)) => {
                        if let Some(m) = self.members.get_mut(id) {
                            m.raft_url = raft_url.clone();
                        }
                        if name.is_empty() {
                            Ok(None)
                        } else {
                            let key = path::join(path::MACHINES_DIR, &name);
                            let value = format!("raft={raft_url}&etcd={etcd_url}");
                            Ok(Some(self.write_file(
                                index,
                                &key,
                                value,
                                None,
                                Action::Set,
                                0,
                                &mut fired,
                            )))
                        }
                    }
                    None => Err(Error::KeyNotFound(format!("member {id:x}"))),
                }
            }
        };
        Applied { result, fired }
    }

    /// A v1 set: files only, below directories only; a TTL of 0 or less deletes the key.
    fn v1_set(
        &mut self,
        index: Index,
        key: &str,
        value: &str,
        ttl_secs: Option<i64>,
        time: UnixNanos,
        fired: &mut Vec<(W, Event)>,
    ) -> Result<Option<Event>> {
        if path::is_reserved(key) {
            return Err(Error::Keyword("Set"));
        }
        if key == "/" || self.tree.check_parents(key).is_err() {
            return Err(Error::NotFile(key.to_string()));
        }
        if self.tree.get(key).is_some_and(Node::is_dir) {
            return Err(Error::NotFile(key.to_string()));
        }
        if ttl_secs.is_some_and(|t| t <= 0) {
            // The seed deletes the key when its TTL is already over.
            return self.v1_delete(index, key, fired).map(Some);
        }
        let expire_at = expiry(ttl_secs, time);
        Ok(Some(self.write_file(
            index,
            key,
            value.to_string(),
            expire_at,
            Action::Set,
            time,
            fired,
        )))
    }

    /// A v1 delete: files only.
    fn v1_delete(&mut self, index: Index, key: &str, fired: &mut Vec<(W, Event)>) -> Result<Event> {
        match self.tree.get(key) {
            _ if key == "/" => Err(Error::NotFile(key.to_string())),
            None => Err(Error::KeyNotFound(key.to_string())),
            Some(n) if n.is_dir() => Err(Error::NotFile(key.to_string())),
            Some(_) => self.remove(index, key, Action::Delete, 0, fired),
        }
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
        fired: &mut Vec<(W, Event)>,
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
        if let Some(at) = expire_at {
            self.ttl.insert((at, key.to_string()));
        }
        let event = Event {
            action,
            key: key.to_string(),
            dir: false,
            prev_value: prev.as_ref().and_then(|p| p.value.clone()),
            value: Some(value),
            new_key: prev.is_none(),
            expiration: expire_at,
            index,
            created_index: created,
            ttl: ttl_left(expire_at, time),
            prev_node: prev.map(Box::new),
            refresh: false,
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
        fired: &mut Vec<(W, Event)>,
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

    /// A v2 PUT or POST (see [`Command::V2Put`]).
    #[allow(clippy::too_many_arguments)]
    fn v2_put(
        &mut self,
        index: Index,
        kind: PutKind,
        key: &str,
        value: &str,
        dir: bool,
        expire_at: Option<UnixNanos>,
        refresh: bool,
        prev_value: Option<&str>,
        prev_index: Option<u64>,
        time: UnixNanos,
        fired: &mut Vec<(W, Event)>,
    ) -> Result<Event> {
        if key == "/" {
            return Err(Error::RootReadOnly);
        }
        if path::is_reserved(key) {
            return Err(Error::Reserved(key.to_string()));
        }
        let mut value = value.to_string();
        let (action, created, prev) = match kind {
            PutKind::Set | PutKind::Create => {
                self.tree.check_parents(key)?;
                let existing = self.tree.get(key);
                if refresh {
                    match existing {
                        None => return Err(Error::KeyNotFound(key.to_string())),
                        Some(n) => value = n.value().unwrap_or("").to_string(),
                    }
                }
                match existing {
                    Some(_) if kind == PutKind::Create => {
                        return Err(Error::NodeExist(key.to_string()))
                    }
                    Some(n) if n.is_dir() => return Err(Error::NotFile(key.to_string())),
                    _ => {}
                }
                let action = if kind == PutKind::Set {
                    Action::Set
                } else {
                    Action::Create
                };
                let prev = existing.map(|n| info(key, n, time));
                (action, index, prev)
            }
            PutKind::Update | PutKind::CompareAndSwap => {
                let n = self.tree.lookup(key)?.ok_or(Error::RootReadOnly)?;
                if kind == PutKind::CompareAndSwap {
                    if n.is_dir() {
                        return Err(Error::NotFile(key.to_string()));
                    }
                    if let Some(cause) = compare_failure(n, prev_value, prev_index) {
                        return Err(Error::CompareFailed(cause));
                    }
                } else if n.is_dir() && !value.is_empty() {
                    return Err(Error::NotFile(key.to_string()));
                }
                if refresh {
                    value = n.value().unwrap_or("").to_string();
                }
                let action = if kind == PutKind::Update {
                    Action::Update
                } else {
                    Action::CompareAndSwap
                };
                (action, n.created, Some(info(key, n, time)))
            }
        };
        // Write: a new node for set/create, the same node changed for update/compare-and-swap.
        let is_dir;
        match kind {
            PutKind::Set | PutKind::Create => {
                let node = if dir {
                    Node::dir(index, expire_at)
                } else {
                    Node::file(value.clone(), index, expire_at)
                };
                is_dir = dir;
                if let Some(at) = prev.as_ref().and_then(|p| p.expiration) {
                    self.ttl.remove(&(at, key.to_string()));
                }
                self.tree.put(key, node, index);
            }
            PutKind::Update | PutKind::CompareAndSwap => {
                let n = self.tree.get_mut(key).expect("looked up above");
                if let Some(at) = n.expire_at {
                    self.ttl.remove(&(at, key.to_string()));
                }
                n.modified = index;
                n.expire_at = expire_at;
                if let Kind::File(v) = &mut n.kind {
                    *v = value.clone();
                }
                is_dir = n.is_dir();
            }
        }
        if let Some(at) = expire_at {
            self.ttl.insert((at, key.to_string()));
        }
        let event = Event {
            action,
            key: key.to_string(),
            dir: is_dir,
            prev_value: prev.as_ref().and_then(|p| p.value.clone()),
            value: (!is_dir).then_some(value),
            new_key: prev.is_none(),
            expiration: expire_at,
            index,
            created_index: created,
            ttl: ttl_left(expire_at, time),
            prev_node: prev.map(Box::new),
            refresh,
        };
        self.record(&event, fired);
        Ok(event)
    }

    /// A v2 DELETE (see [`Command::V2Delete`]); `compare` holds `prevValue`/`prevIndex`.
    #[allow(clippy::too_many_arguments)]
    fn v2_delete(
        &mut self,
        index: Index,
        key: &str,
        dir: bool,
        recursive: bool,
        compare: Option<(Option<&str>, Option<u64>)>,
        time: UnixNanos,
        fired: &mut Vec<(W, Event)>,
    ) -> Result<Event> {
        if key == "/" {
            return Err(Error::RootReadOnly);
        }
        if path::is_reserved(key) {
            return Err(Error::Reserved(key.to_string()));
        }
        let n = self.tree.lookup(key)?.ok_or(Error::RootReadOnly)?;
        if let Some((prev_value, prev_index)) = compare {
            if n.is_dir() {
                return Err(Error::NotFile(key.to_string()));
            }
            if let Some(cause) = compare_failure(n, prev_value, prev_index) {
                return Err(Error::CompareFailed(cause));
            }
            return self.remove(index, key, Action::CompareAndDelete, time, fired);
        }
        if let Some(children) = n.children() {
            if !dir {
                return Err(Error::NotFile(key.to_string()));
            }
            if !children.is_empty() && !recursive {
                return Err(Error::DirNotEmpty(key.to_string()));
            }
        }
        self.remove(index, key, Action::Delete, time, fired)
    }

    fn record(&mut self, event: &Event, fired: &mut Vec<(W, Event)>) {
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
        }
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
