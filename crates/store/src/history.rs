//! The bounded event history behind watch-from-index (`-m` events, default 1024).
//!
//! Events are kept in index order. When the ring is full the oldest is dropped and
//! `cleared_through` remembers its index: a watch from an index at or below it could have
//! missed that event, so it gets "history cleared" instead of a silent gap.
//!
//! Events are shared (`Arc`), so cloning the history for a snapshot costs one reference count
//! per event, not a copy of each.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::Index;

/// The ring of recent events.
#[derive(Debug, Clone)]
pub(crate) struct History {
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    cleared_through: Index,
}

impl History {
    /// An empty history keeping at most `capacity` events (at least one).
    pub(crate) fn new(capacity: usize) -> History {
        History {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            cleared_through: 0,
        }
    }

    /// Rebuilds a history from a snapshot, trimmed to this node's capacity.
    pub(crate) fn restore(
        capacity: usize,
        events: impl IntoIterator<Item = Arc<Event>>,
        cleared_through: Index,
    ) -> History {
        let mut h = History::new(capacity);
        h.cleared_through = cleared_through;
        for e in events {
            h.push(e);
        }
        h
    }

    /// Records an event, dropping the oldest when full.
    pub(crate) fn push(&mut self, event: Arc<Event>) {
        if self.events.len() == self.capacity {
            if let Some(old) = self.events.pop_front() {
                self.cleared_through = old.index;
            }
        }
        self.events.push_back(event);
    }

    /// The first recorded event with index ≥ `since` that a watcher of `key` sees: an event
    /// on `key` itself, with `recursive` one below it, or the removal of a directory above
    /// it. Refreshes are skipped (they wake no watcher).
    pub(crate) fn scan(
        &self,
        key: &str,
        recursive: bool,
        hide: bool,
        since: Index,
    ) -> Result<Option<&Event>> {
        if since <= self.cleared_through {
            return Err(Error::HistoryCleared {
                first: self.cleared_through + 1,
                requested: since,
            });
        }
        let start = self.events.partition_point(|e| e.index < since);
        Ok(self
            .events
            .range(start..)
            .map(|e| &**e)
            .find(|e| !e.refresh && concerns(e, key, recursive, hide)))
    }

    /// The events, oldest first, and the index through which events were dropped.
    pub(crate) fn parts(&self) -> (impl Iterator<Item = &Arc<Event>>, Index) {
        (self.events.iter(), self.cleared_through)
    }
}

/// True when a watcher of `key` (with `recursive`; `hide`: not below hidden segments under
/// `key`, as v2 watchers) is concerned by `e`: the live hub's rule.
pub(crate) fn concerns(e: &Event, key: &str, recursive: bool, hide: bool) -> bool {
    e.key == key
        || (recursive
            && key_is_under(&e.key, key)
            && !(hide && crate::path::hidden_below(key, &e.key)))
        || (e.dir && e.action.removes() && key_is_under(key, &e.key))
}

/// True when `key` is `prefix` or lies below it by whole segments (`/w` covers `/w/x`, not
/// `/ww`); `/` covers everything.
pub(crate) fn key_is_under(key: &str, prefix: &str) -> bool {
    prefix == "/"
        || key == prefix
        || (key.len() > prefix.len()
            && key.starts_with(prefix)
            && key.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Action;

    fn ev(key: &str, index: Index) -> Event {
        Event {
            action: Action::Set,
            key: key.into(),
            dir: false,
            prev_value: None,
            value: Some("v".into()),
            new_key: true,
            expiration: None,
            index,
            created_index: index,
            ttl: None,
            prev_node: None,
            refresh: false,
        }
    }

    #[test]
    fn prefix_matches_whole_segments() {
        assert!(key_is_under("/w/x", "/w"));
        assert!(key_is_under("/w", "/w"));
        assert!(!key_is_under("/ww/x", "/w"));
        assert!(key_is_under("/anything", "/"));
    }

    #[test]
    fn scan_finds_first_matching_event_at_or_after_index() {
        let mut h = History::new(10);
        h.push(Arc::new(ev("/a", 3)));
        h.push(Arc::new(ev("/b/c", 4)));
        h.push(Arc::new(ev("/b/d", 6)));
        assert_eq!(
            h.scan("/b", true, false, 1).unwrap().map(|e| e.index),
            Some(4)
        );
        assert_eq!(
            h.scan("/b", true, false, 5).unwrap().map(|e| e.index),
            Some(6)
        );
        assert_eq!(h.scan("/b", true, false, 7).unwrap(), None);
        assert_eq!(
            h.scan("/", true, false, 4).unwrap().map(|e| e.index),
            Some(4)
        );
    }

    #[test]
    fn exact_watch_sees_its_key_and_removals_of_directories_above_it() {
        let mut h = History::new(10);
        h.push(Arc::new(ev("/d/k/child", 3)));
        let mut removal = ev("/d", 4);
        removal.action = Action::Delete;
        removal.dir = true;
        h.push(Arc::new(removal));
        h.push(Arc::new(ev("/d/k", 5)));
        assert_eq!(
            h.scan("/d/k", false, false, 1).unwrap().map(|e| e.index),
            Some(4)
        );
        assert_eq!(
            h.scan("/d/k", true, false, 1).unwrap().map(|e| e.index),
            Some(3)
        );
        assert_eq!(
            h.scan("/d/k", false, false, 5).unwrap().map(|e| e.index),
            Some(5)
        );
        let mut refresh = ev("/r", 6);
        refresh.refresh = true;
        h.push(Arc::new(refresh));
        assert_eq!(h.scan("/r", false, false, 1).unwrap(), None);
        // Below a hidden segment: not for a v2 recursive watcher of the parent.
        h.push(Arc::new(ev("/d/_h/x", 7)));
        assert_eq!(h.scan("/d", true, true, 7).unwrap(), None);
        assert_eq!(
            h.scan("/d", true, false, 7).unwrap().map(|e| e.index),
            Some(7)
        );
        assert_eq!(
            h.scan("/d/_h", true, true, 7).unwrap().map(|e| e.index),
            Some(7)
        );
    }

    #[test]
    fn dropped_history_is_an_error_not_a_gap() {
        let mut h = History::new(2);
        for i in 3..=6 {
            h.push(Arc::new(ev("/k", i)));
        }
        assert_eq!(
            h.scan("/k", true, false, 4),
            Err(Error::HistoryCleared {
                first: 5,
                requested: 4
            })
        );
        assert_eq!(
            h.scan("/k", true, false, 5).unwrap().map(|e| e.index),
            Some(5)
        );
    }
}
