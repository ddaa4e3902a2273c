//! The registry of waiting watchers.
//!
//! Watchers are keyed by the exact prefix they watch. An event on key K fires the watchers of
//! `/`, every ancestor of K and K itself (etcd v2's `watcher_hub`), so the cost of an event
//! follows the depth of its key, not the number of watchers. A watcher fires once and is
//! removed; it only fires for events with index ≥ its `since`.

use std::collections::HashMap;

use crate::path;
use crate::store::Event;
use crate::Index;

struct Watcher<W> {
    id: u64,
    since: Index,
    payload: W,
}

/// Watchers by prefix.
pub(crate) struct WatcherHub<W> {
    by_path: HashMap<String, Vec<Watcher<W>>>,
    path_of: HashMap<u64, String>,
    next_id: u64,
}

impl<W> WatcherHub<W> {
    pub(crate) fn new() -> WatcherHub<W> {
        WatcherHub {
            by_path: HashMap::new(),
            path_of: HashMap::new(),
            next_id: 1,
        }
    }

    /// Registers a watcher on a clean prefix; returns its id.
    pub(crate) fn add(&mut self, prefix: &str, since: Index, payload: W) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_path
            .entry(prefix.to_string())
            .or_default()
            .push(Watcher { id, since, payload });
        self.path_of.insert(id, prefix.to_string());
        id
    }

    /// Removes a watcher that is no longer wanted; `None` if it already fired.
    pub(crate) fn remove(&mut self, id: u64) -> Option<W> {
        let path = self.path_of.remove(&id)?;
        let list = self.by_path.get_mut(&path)?;
        let pos = list.iter().position(|w| w.id == id)?;
        let w = list.swap_remove(pos);
        if list.is_empty() {
            self.by_path.remove(&path);
        }
        Some(w.payload)
    }

    /// Fires (and removes) every watcher the event concerns.
    pub(crate) fn notify(&mut self, event: &Event, fired: &mut Vec<(W, Event)>) {
        for p in path::ancestors_and_self(&event.key) {
            let Some(list) = self.by_path.get_mut(p) else {
                continue;
            };
            let mut i = 0;
            while i < list.len() {
                if list[i].since <= event.index {
                    let w = list.swap_remove(i);
                    self.path_of.remove(&w.id);
                    fired.push((w.payload, event.clone()));
                } else {
                    i += 1;
                }
            }
            if list.is_empty() {
                self.by_path.remove(p);
            }
        }
    }

    /// Removes and returns every watcher for which `pick(prefix, since)` finds an event.
    pub(crate) fn drain_matching(
        &mut self,
        mut pick: impl FnMut(&str, Index) -> Option<Event>,
        fired: &mut Vec<(W, Event)>,
    ) {
        let paths: Vec<String> = self.by_path.keys().cloned().collect();
        for p in paths {
            let Some(list) = self.by_path.get_mut(&p) else {
                continue;
            };
            let mut i = 0;
            while i < list.len() {
                if let Some(e) = pick(&p, list[i].since) {
                    let w = list.swap_remove(i);
                    self.path_of.remove(&w.id);
                    fired.push((w.payload, e));
                } else {
                    i += 1;
                }
            }
            if list.is_empty() {
                self.by_path.remove(&p);
            }
        }
    }

    /// How many watchers wait.
    pub(crate) fn len(&self) -> usize {
        self.path_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Action;

    fn ev(key: &str, index: Index) -> Event {
        Event {
            action: Action::Set,
            key: key.into(),
            dir: false,
            prev_value: None,
            value: None,
            new_key: false,
            expiration: None,
            index,
        }
    }

    #[test]
    fn event_fires_ancestors_once_and_not_siblings() {
        let mut hub = WatcherHub::new();
        hub.add("/", 0, "root");
        hub.add("/w", 0, "w");
        hub.add("/ww", 0, "ww");
        hub.add("/w/x", 0, "wx");
        hub.add("/w/x/y", 0, "deeper");
        let mut fired = vec![];
        hub.notify(&ev("/w/x", 5), &mut fired);
        let mut names: Vec<_> = fired.iter().map(|(w, _)| *w).collect();
        names.sort();
        assert_eq!(names, vec!["root", "w", "wx"]);
        assert_eq!(hub.len(), 2);
        fired.clear();
        hub.notify(&ev("/w/x", 6), &mut fired);
        assert!(fired.is_empty(), "fired watchers are gone");
    }

    #[test]
    fn since_index_holds_a_watcher_back() {
        let mut hub = WatcherHub::new();
        hub.add("/k", 10, ());
        let mut fired = vec![];
        hub.notify(&ev("/k", 9), &mut fired);
        assert!(fired.is_empty());
        hub.notify(&ev("/k", 10), &mut fired);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn removed_watcher_costs_nothing() {
        let mut hub = WatcherHub::new();
        let id = hub.add("/k", 0, 7);
        assert_eq!(hub.remove(id), Some(7));
        assert_eq!(hub.remove(id), None);
        assert_eq!(hub.len(), 0);
        assert!(hub.by_path.is_empty());
    }
}
