//! [`Store`]: the state machine that raft log entries are applied to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::error::{Error, Result};
use crate::history::History;
use crate::path;
use crate::tree::{Node, Previous, Tree};
use crate::watch::WatcherHub;
use crate::{Index, UnixNanos};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Set (also a successful test-and-set).
    Set,
    /// Read.
    Get,
    /// Delete or expiry.
    Delete,
}

/// One change (or, for reads, one entry) of the key space, in the seed's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// Clean key.
    pub key: String,
    /// True for directory entries of a listing.
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
    /// Absolute expiry, when the key has (or had) a TTL.
    #[serde(default)]
    pub expiration: Option<UnixNanos>,
    /// Log index of the change (for reads: of the last change of the store).
    pub index: Index,
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

/// Operation counters (`/v1/stats`). `gets` counts reads served by this member; the others
/// count commands applied.
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
    /// Expiry index ordered by (expiry, key): the next key due is the first element.
    ttl: BTreeSet<(UnixNanos, String)>,
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
}

/// The whole replicated state, for snapshots. The tree is flattened (directories in pre-order,
/// then files) so that restoring never recurses, however deep a key is.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// Format version of this struct.
    pub version: u32,
    /// Last index that changed the key space.
    pub index: Index,
    /// Last index applied.
    pub applied: Index,
    /// Every directory, parents first.
    pub dirs: Vec<String>,
    /// Every file: key, value, expiry.
    pub files: Vec<(String, String, Option<UnixNanos>)>,
    /// Recent events, oldest first.
    pub history: Vec<Event>,
    /// Index through which history was dropped.
    pub history_cleared_through: Index,
    /// Members by raft id.
    pub members: Vec<(u64, Member)>,
    /// Raft ids of removed members.
    #[serde(default)]
    pub removed: Vec<u64>,
    /// Counters.
    pub stats: Stats,
}

impl StoreSnapshot {
    /// Encodes for a snapshot file.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialising a snapshot cannot fail")
    }

    /// Decodes from a snapshot file.
    pub fn decode(bytes: &[u8]) -> std::result::Result<StoreSnapshot, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

impl<W> Store<W> {
    /// An empty store keeping `history_capacity` events for watch-from-index.
    pub fn new(history_capacity: usize) -> Store<W> {
        Store {
            tree: Tree::default(),
            ttl: BTreeSet::new(),
            history: History::new(history_capacity),
            history_capacity,
            watchers: WatcherHub::new(),
            members: BTreeMap::new(),
            removed: BTreeSet::new(),
            index: 0,
            applied: 0,
            stats: Stats::default(),
        }
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

    /// The earliest expiry of any key, if any key has a TTL.
    pub fn next_expiry(&self) -> Option<UnixNanos> {
        self.ttl.first().map(|(t, _)| *t)
    }

    /// How many watchers are waiting.
    pub fn watcher_count(&self) -> usize {
        self.watchers.len()
    }

    /// Reads a key: a file's value or a directory's listing. Counts as a GET.
    pub fn get(&self, key: &str) -> Result<Got> {
        self.stats.gets.fetch_add(1, Ordering::Relaxed);
        let key = path::clean(key);
        let children = if key == "/" {
            self.tree.root()
        } else {
            match self.tree.get(&key) {
                None => return Err(Error::KeyNotFound(key)),
                Some(Node::File { value, expire_at }) => {
                    return Ok(Got::Value(Event {
                        action: Action::Get,
                        key,
                        dir: false,
                        prev_value: None,
                        value: Some(value.clone()),
                        new_key: false,
                        expiration: *expire_at,
                        index: self.index,
                    }))
                }
                Some(Node::Dir(children)) => children,
            }
        };
        Ok(Got::Listing(
            children
                .iter()
                .map(|(name, node)| {
                    let (dir, value, expiration) = match node {
                        Node::Dir(_) => (true, None, None),
                        Node::File { value, expire_at } => (false, Some(value.clone()), *expire_at),
                    };
                    Event {
                        action: Action::Get,
                        key: path::join(&key, name),
                        dir,
                        prev_value: None,
                        value,
                        new_key: false,
                        expiration,
                        index: self.index,
                    }
                })
                .collect(),
        ))
    }

    /// Watches `prefix` (and everything below it). With `since` > 0, the first recorded event
    /// with index ≥ `since` answers at once; otherwise the watcher waits for the next event
    /// (with index ≥ `since`).
    pub fn watch(&mut self, prefix: &str, since: Index, payload: W) -> Result<Watched<W>> {
        let prefix = path::clean(prefix);
        if since > 0 {
            if let Some(e) = self.history.scan(&prefix, since)? {
                return Ok(Watched::Ready(e.clone(), payload));
            }
        }
        Ok(Watched::Pending(self.watchers.add(&prefix, since, payload)))
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
                self.set(
                    index,
                    &path::clean(key),
                    value,
                    *ttl_secs,
                    *time,
                    &mut fired,
                )
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
                match self.tree.get(&key) {
                    None => Err(Error::KeyNotFound(key)),
                    Some(Node::Dir(_)) => Err(Error::NotFile(key)),
                    Some(Node::File { value: current, .. }) if current != prev_value => {
                        Err(Error::TestFailed {
                            current: current.clone(),
                            prev_value: prev_value.clone(),
                        })
                    }
                    Some(Node::File { .. }) => {
                        self.set(index, &key, value, *ttl_secs, *time, &mut fired)
                    }
                }
            }
            Command::Delete { key } => {
                self.stats.deletes += 1;
                let key = path::clean(key);
                if path::is_reserved(&key) {
                    Err(Error::Keyword("Delete"))
                } else {
                    self.delete(index, &key, &mut fired).map(Some)
                }
            }
            Command::Read => Ok(None),
            Command::Expire { time } => {
                self.expire(index, *time, &mut fired);
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
                let key = path::join(path::MACHINES_DIR, name);
                let value = format!("raft={raft_url}&etcd={etcd_url}");
                self.write(index, &key, value, None, &mut fired).map(Some)
            }
            Command::Leave { id, name } => {
                self.members.remove(id);
                self.removed.insert(*id);
                let key = path::join(path::MACHINES_DIR, name);
                self.delete(index, &key, &mut fired).map(Some)
            }
        };
        Applied { result, fired }
    }

    fn set(
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
        let expire_at = match ttl_secs {
            // The seed deletes the key when its TTL is already over.
            Some(t) if t <= 0 => return self.delete(index, key, fired).map(Some),
            Some(t) => Some(time.saturating_add(t.saturating_mul(NANOS_PER_SEC))),
            None => None,
        };
        self.write(index, key, value.to_string(), expire_at, fired)
            .map(Some)
    }

    /// Sets a file and records the event; no keyword check (used for `/_etcd` too).
    fn write(
        &mut self,
        index: Index,
        key: &str,
        value: String,
        expire_at: Option<UnixNanos>,
        fired: &mut Vec<(W, Event)>,
    ) -> Result<Event> {
        let prev = self.tree.set(key, value.clone(), expire_at)?;
        if let Some(Previous {
            expire_at: Some(old),
            ..
        }) = &prev
        {
            self.ttl.remove(&(*old, key.to_string()));
        }
        if let Some(t) = expire_at {
            self.ttl.insert((t, key.to_string()));
        }
        let event = Event {
            action: Action::Set,
            key: key.to_string(),
            dir: false,
            new_key: prev.is_none(),
            prev_value: prev.map(|p| p.value),
            value: Some(value),
            expiration: expire_at,
            index,
        };
        self.record(&event, fired);
        Ok(event)
    }

    fn delete(&mut self, index: Index, key: &str, fired: &mut Vec<(W, Event)>) -> Result<Event> {
        let prev = self.tree.remove_file(key)?;
        if let Some(t) = prev.expire_at {
            self.ttl.remove(&(t, key.to_string()));
        }
        let event = Event {
            action: Action::Delete,
            key: key.to_string(),
            dir: false,
            prev_value: Some(prev.value),
            value: None,
            new_key: false,
            expiration: prev.expire_at,
            index,
        };
        self.record(&event, fired);
        Ok(event)
    }

    fn expire(&mut self, index: Index, time: UnixNanos, fired: &mut Vec<(W, Event)>) {
        while let Some((at, _)) = self.ttl.first() {
            if *at > time {
                break;
            }
            let (_, key) = self.ttl.pop_first().expect("first() was Some");
            match self.delete(index, &key, fired) {
                Ok(_) => {}
                Err(e) => unreachable!("TTL index names {key}, which the tree lacks: {e}"),
            }
        }
    }

    fn record(&mut self, event: &Event, fired: &mut Vec<(W, Event)>) {
        self.index = event.index;
        self.history.push(event.clone());
        self.watchers.notify(event, fired);
    }

    /// The whole replicated state (not the watchers, which are local).
    pub fn snapshot(&self) -> StoreSnapshot {
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        self.tree.walk(|key, node| match node {
            Node::Dir(_) => dirs.push(key.to_string()),
            Node::File { value, expire_at } => {
                files.push((key.to_string(), value.clone(), *expire_at))
            }
        });
        let (events, cleared) = self.history.parts();
        StoreSnapshot {
            version: 1,
            index: self.index,
            applied: self.applied,
            dirs,
            files,
            history: events.cloned().collect(),
            history_cleared_through: cleared,
            members: self.members.iter().map(|(k, v)| (*k, v.clone())).collect(),
            removed: self.removed.iter().copied().collect(),
            stats: Stats {
                gets: AtomicU64::new(self.stats.gets.load(Ordering::Relaxed)),
                sets: self.stats.sets,
                deletes: self.stats.deletes,
                test_and_sets: self.stats.test_and_sets,
            },
        }
    }

    /// Replaces the whole replicated state with a snapshot. Waiting watchers stay; those that
    /// the restored history answers fire now (returned for delivery).
    pub fn restore(&mut self, snap: StoreSnapshot) -> Vec<(W, Event)> {
        let mut tree = Tree::default();
        let mut ttl = BTreeSet::new();
        for d in &snap.dirs {
            // A snapshot we wrote has no file on a directory's path.
            let _ = tree.make_dir(d);
        }
        for (key, value, expire_at) in snap.files {
            if tree.set(&key, value, expire_at).is_ok() {
                if let Some(t) = expire_at {
                    ttl.insert((t, key));
                }
            }
        }
        self.tree = tree;
        self.ttl = ttl;
        self.history = History::restore(
            self.history_capacity,
            snap.history,
            snap.history_cleared_through,
        );
        self.members = snap.members.into_iter().collect();
        self.removed = snap.removed.into_iter().collect();
        self.stats = snap.stats;
        // A watcher waiting for "the next event" registered before the old state's last entry
        // was applied, so events after that are new to it.
        let next_after_old = self.applied + 1;
        self.index = snap.index;
        self.applied = snap.applied;
        let mut fired = Vec::new();
        let history = &self.history;
        self.watchers.drain_matching(
            |prefix, since| match history.scan(prefix, since.max(next_after_old)) {
                Ok(found) => found.cloned(),
                Err(_) => None,
            },
            &mut fired,
        );
        fired
    }
}
