//! Watches: the registry of watchers over key ranges, and the history they catch up from.
//!
//! A watcher is either **synced** (it has been offered every event up to the last revision
//! the registry was notified of, and is offered each new revision's events as it applies) or
//! **unsynced** (it is behind: new, started at an old revision, or too slow to take what it
//! was offered). Unsynced watchers catch up from the keyspace's history
//! ([`Keyspace::events`], on a clone taken outside any lock) at their own pace, then ask to be
//! synced again ([`Watchers::try_sync`]). So a slow watcher never holds up a write: an offer
//! it cannot take makes it unsynced instead of waiting (etcd's synced, unsynced and victim
//! groups, with the victims folded into unsynced).
//!
//! Invariants: [`Watchers::notify`] is called once per revision that changed something, in
//! revision order, after the keyspace applied it; a synced watcher has been offered every
//! matching event of every revision up to [`Watchers::notified`]; an unsynced watcher's
//! `next` is the first revision it has not been offered.

use std::collections::HashMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::keyspace::{Change, Keyspace};
use crate::mvccpb::{event::EventType, Event, KeyValue};
use crate::{key_range, KeyRange, Revision};

/// Where a watcher's events go (the server's stream). Offers must not block.
pub trait WatchSink {
    /// Offers one revision's matching events to the stream's watch `watch_id`; false when
    /// the stream cannot take them now (the watcher becomes unsynced).
    fn offer(&self, watch_id: i64, revision: Revision, events: Vec<Event>) -> bool;
    /// Called when a watcher of this sink became unsynced: its stream should catch it up.
    fn fell_behind(&self);
}

/// What a watcher watches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSpec {
    /// First key.
    pub key: Bytes,
    /// End of the range (etcd's rules: empty for the one key, `"\0"` for every key from
    /// `key` on).
    pub range_end: Bytes,
    /// Include each change's previous key-value.
    pub prev_kv: bool,
    /// Leave out puts.
    pub no_put: bool,
    /// Leave out deletions.
    pub no_delete: bool,
}

impl WatchSpec {
    fn matches(&self, key: &[u8]) -> bool {
        match key_range(&self.key, &self.range_end) {
            KeyRange::One => key == &self.key[..],
            KeyRange::From => key >= &self.key[..],
            KeyRange::Until => key >= &self.key[..] && key < &self.range_end[..],
            KeyRange::Empty => false,
        }
    }

    /// The event as this watcher sees it, if it sees it.
    pub fn sees(&self, event: &Event) -> Option<Event> {
        let key = event.kv.as_ref().map(|kv| &kv.key[..]).unwrap_or_default();
        let put = event.r#type == EventType::Put as i32;
        if !self.matches(key) || (put && self.no_put) || (!put && self.no_delete) {
            return None;
        }
        let mut event = event.clone();
        if !self.prev_kv {
            event.prev_kv = None;
        }
        Some(event)
    }
}

impl<T: WatchSink + ?Sized> WatchSink for Box<T> {
    fn offer(&self, watch_id: i64, revision: Revision, events: Vec<Event>) -> bool {
        (**self).offer(watch_id, revision, events)
    }

    fn fell_behind(&self) {
        (**self).fell_behind()
    }
}

struct Watcher<S> {
    spec: WatchSpec,
    watch_id: i64,
    sink: S,
    /// `None` while synced; else the first revision not offered.
    behind_from: Option<Revision>,
    /// The first revision it watches (a start in the future is waited for).
    start: Revision,
}

/// The watchers of this member. See the module docs.
pub struct Watchers<S> {
    watchers: HashMap<u64, Watcher<S>>,
    next_id: u64,
    notified: Revision,
}

impl<S: WatchSink> Watchers<S> {
    /// An empty registry whose keyspace is at `revision`.
    pub fn new(revision: Revision) -> Watchers<S> {
        Watchers {
            watchers: HashMap::new(),
            next_id: 1,
            notified: revision,
        }
    }

    /// The last revision whose events were offered to the synced watchers.
    pub fn notified(&self) -> Revision {
        self.notified
    }

    /// Registers an unsynced watcher that watches from revision `next`; returns its registry
    /// id. Its stream catches it up, then calls [`Watchers::try_sync`]. Nothing below `next`
    /// is ever offered to it.
    pub fn add(&mut self, spec: WatchSpec, watch_id: i64, next: Revision, sink: S) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.watchers.insert(
            id,
            Watcher {
                spec,
                watch_id,
                sink,
                behind_from: Some(next),
                start: next,
            },
        );
        id
    }

    /// Removes a watcher.
    pub fn remove(&mut self, id: u64) {
        self.watchers.remove(&id);
    }

    /// Where an unsynced watcher stands: the first revision it has not been offered (`None`
    /// when synced or unknown).
    pub fn behind_from(&self, id: u64) -> Option<Revision> {
        self.watchers.get(&id)?.behind_from
    }

    /// After a catch-up that offered an unsynced watcher everything through `through`:
    /// syncs it if nothing newer was notified meanwhile (true), else records where it stands
    /// (false; catch up again).
    pub fn try_sync(&mut self, id: u64, through: Revision) -> bool {
        let notified = self.notified;
        let Some(w) = self.watchers.get_mut(&id) else {
            return false;
        };
        if through >= notified {
            w.behind_from = None;
            true
        } else {
            w.behind_from = Some((through + 1).max(w.start));
            false
        }
    }

    /// Offers the changes of `revision` to every synced watcher that matches them.
    pub fn notify(&mut self, revision: Revision, changes: &[Change]) {
        debug_assert!(revision > self.notified, "revisions notified out of order");
        self.notified = revision;
        let events: Vec<&Event> = changes.iter().map(|c| &c.event).collect();
        for w in self.watchers.values_mut() {
            if w.behind_from.is_some() || revision < w.start {
                continue;
            }
            let mine: Vec<Event> = events.iter().filter_map(|e| w.spec.sees(e)).collect();
            if mine.is_empty() {
                continue;
            }
            if !w.sink.offer(w.watch_id, revision, mine) {
                w.behind_from = Some(revision);
                w.sink.fell_behind();
            }
        }
    }

    /// The keyspace was replaced (a snapshot from the leader) at `revision`: every synced
    /// watcher is behind from the revision after the last one notified.
    pub fn restored(&mut self, revision: Revision) {
        let next = self.notified + 1;
        for w in self.watchers.values_mut() {
            if w.behind_from.is_none() {
                w.behind_from = Some(next.max(w.start));
                w.sink.fell_behind();
            }
        }
        self.notified = revision;
    }
}

impl Keyspace {
    /// Every change to keys in `[key, range_end)` (etcd's range rules) at revisions `from`
    /// through `to`, in revision order, each with the key-value it replaced (when that is
    /// still kept). `from` must not be below the compaction revision.
    pub fn events(&self, spec: &WatchSpec, from: Revision, to: Revision) -> Vec<(i64, Event)> {
        let mut out: Vec<(Revision, i64, Event)> = Vec::new();
        let mut visit = |key: &[u8], versions: &[crate::keyspace::Version]| {
            let start = versions.partition_point(|v| v.main < from);
            for i in start..versions.len() {
                let v = &versions[i];
                if v.main > to {
                    break;
                }
                let prev = i
                    .checked_sub(1)
                    .map(|p| &versions[p])
                    .filter(|p| p.is_put())
                    .map(|p| p.kv(key, false));
                let event = if v.is_put() {
                    Event {
                        r#type: EventType::Put as i32,
                        kv: Some(v.kv(key, false)),
                        prev_kv: prev,
                    }
                } else {
                    Event {
                        r#type: EventType::Delete as i32,
                        kv: Some(KeyValue {
                            key: Bytes::copy_from_slice(key),
                            mod_revision: v.main,
                            ..Default::default()
                        }),
                        prev_kv: prev,
                    }
                };
                out.push((v.main, v.sub, event));
            }
        };
        let range: (Bound<&[u8]>, Bound<&[u8]>) = match key_range(&spec.key, &spec.range_end) {
            KeyRange::Empty => (
                Bound::Excluded(&spec.key[..]),
                Bound::Excluded(&spec.key[..]),
            ),
            KeyRange::One => (
                Bound::Included(&spec.key[..]),
                Bound::Included(&spec.key[..]),
            ),
            KeyRange::From => (Bound::Included(&spec.key[..]), Bound::Unbounded),
            KeyRange::Until => (
                Bound::Included(&spec.key[..]),
                Bound::Excluded(&spec.range_end[..]),
            ),
        };
        if !matches!(key_range(&spec.key, &spec.range_end), KeyRange::Empty) {
            for (key, versions) in self.keys.range::<_, [u8]>(range) {
                visit(key, versions);
            }
        }
        out.sort_by_key(|(main, sub, _)| (*main, *sub));
        out.into_iter().map(|(main, _, e)| (main, e)).collect()
    }
}
