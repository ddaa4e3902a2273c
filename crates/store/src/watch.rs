//! The registry of waiting watchers.
//!
//! Watchers are keyed by the exact key they watch. An event on key K looks at the watchers of
//! `/`, every ancestor of K and K itself (etcd v2's `watcher_hub`), so the cost of an event
//! follows the depth of its key, not the number of watchers: K's own watchers fire, and an
//! ancestor's fire if they are recursive (v2 watchers not for keys below a hidden `_` segment
//! under the watched key). Removing a directory also fires every watcher below it. A watcher
//! fires once and is removed; it only fires for events with index ≥ its `since`; refreshes
//! fire nobody.

use std::collections::{BTreeMap, HashMap};

use crate::event::Event;
use crate::path;
use crate::Index;

struct Watcher<W> {
    id: u64,
    since: Index,
    /// Also events below the watched key.
    recursive: bool,
    /// Not events below a hidden segment under the watched key (v2 watchers).
    hide: bool,
    payload: W,
}

/// Watchers by prefix.
pub(crate) struct WatcherHub<W> {
    /// Ordered, so that the watchers below a removed directory are one range.
    by_path: BTreeMap<String, Vec<Watcher<W>>>,
    path_of: HashMap<u64, String>,
    next_id: u64,
}

impl<W> WatcherHub<W> {
    pub(crate) fn new() -> WatcherHub<W> {
        WatcherHub {
            by_path: BTreeMap::new(),
            path_of: HashMap::new(),
            next_id: 1,
        }
    }

    /// Registers a watcher on a clean key; returns its id.
    pub(crate) fn add(
        &mut self,
        prefix: &str,
        since: Index,
        recursive: bool,
        hide: bool,
        payload: W,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_path
            .entry(prefix.to_string())
            .or_default()
            .push(Watcher {
                id,
                since,
                recursive,
                hide,
                payload,
            });
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
        if event.refresh {
            return;
        }
        for p in path::ancestors_and_self(&event.key) {
            let own = p == event.key;
            let hidden = !own && path::hidden_below(p, &event.key);
            self.fire(p, event, fired, |w| {
                own || (w.recursive && !(w.hide && hidden))
            });
        }
        if event.dir && event.action.removes() {
            let below = format!("{}/", event.key);
            let paths: Vec<String> = self
                .by_path
                .range(below.clone()..)
                .take_while(|(p, _)| p.starts_with(&below))
                .map(|(p, _)| p.clone())
                .collect();
            for p in paths {
                self.fire(&p, event, fired, |_| true);
            }
        }
    }

    fn fire(
        &mut self,
        path: &str,
        event: &Event,
        fired: &mut Vec<(W, Event)>,
        wants: impl Fn(&Watcher<W>) -> bool,
    ) {
        let Some(list) = self.by_path.get_mut(path) else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            if list[i].since <= event.index && wants(&list[i]) {
                let w = list.swap_remove(i);
                self.path_of.remove(&w.id);
                fired.push((w.payload, event.clone()));
            } else {
                i += 1;
            }
        }
        if list.is_empty() {
            self.by_path.remove(path);
        }
    }

    /// Removes and returns every watcher for which `pick(key, recursive, hide, since)` finds
    /// an event; drops (without an event: its payload is dropped) every watcher for which it
    /// answers `Err`, whose events may be gone.
    pub(crate) fn drain_matching(
        &mut self,
        mut pick: impl FnMut(&str, bool, bool, Index) -> Result<Option<Event>, ()>,
        fired: &mut Vec<(W, Event)>,
    ) {
        let paths: Vec<String> = self.by_path.keys().cloned().collect();
        for p in paths {
            let Some(list) = self.by_path.get_mut(&p) else {
                continue;
            };
            let mut i = 0;
            while i < list.len() {
                match pick(&p, list[i].recursive, list[i].hide, list[i].since) {
                    Ok(Some(e)) => {
                        let w = list.swap_remove(i);
                        self.path_of.remove(&w.id);
                        fired.push((w.payload, e));
                    }
                    Ok(None) => i += 1,
                    Err(()) => {
                        let w = list.swap_remove(i);
                        self.path_of.remove(&w.id);
                    }
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
    use crate::event::Action;

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
            created_index: index,
            ttl: None,
            prev_node: None,
            refresh: false,
        }
    }

    #[test]
    fn event_fires_ancestors_once_and_not_siblings() {
        let mut hub = WatcherHub::new();
        hub.add("/", 0, true, false, "root");
        hub.add("/w", 0, true, false, "w");
        hub.add("/ww", 0, true, false, "ww");
        hub.add("/w/x", 0, true, false, "wx");
        hub.add("/w/x/y", 0, true, false, "deeper");
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
    fn v2_watchers_skip_hidden_keys_and_children_unless_recursive() {
        let mut hub = WatcherHub::new();
        hub.add("/d", 0, false, true, "exact");
        hub.add("/d", 0, true, true, "recursive");
        hub.add("/d/_h", 0, true, true, "in hidden");
        hub.add("/", 0, true, false, "v1 root");
        let mut fired = vec![];
        hub.notify(&ev("/d/_h/x", 5), &mut fired);
        let mut names: Vec<_> = fired.iter().map(|(w, _)| *w).collect();
        names.sort();
        assert_eq!(names, vec!["in hidden", "v1 root"]);
        fired.clear();
        hub.notify(&ev("/d/x", 6), &mut fired);
        let names: Vec<_> = fired.iter().map(|(w, _)| *w).collect();
        assert_eq!(names, vec!["recursive"]);
    }

    #[test]
    fn removing_a_directory_fires_watchers_below_it_and_refreshes_fire_none() {
        let mut hub = WatcherHub::new();
        hub.add("/d/a/b", 0, false, true, "deep");
        hub.add("/d/a", 0, false, true, "child");
        hub.add("/d!", 0, false, true, "not below");
        hub.add("/dd", 0, false, true, "sibling");
        let mut refresh = ev("/d/a", 4);
        refresh.refresh = true;
        let mut fired = vec![];
        hub.notify(&refresh, &mut fired);
        assert!(fired.is_empty());
        let mut removal = ev("/d", 5);
        removal.action = Action::Delete;
        removal.dir = true;
        hub.notify(&removal, &mut fired);
        let mut names: Vec<_> = fired.iter().map(|(w, _)| *w).collect();
        names.sort();
        assert_eq!(names, vec!["child", "deep"]);
        assert_eq!(hub.len(), 2);
    }

    #[test]
    fn since_index_holds_a_watcher_back() {
        let mut hub = WatcherHub::new();
        hub.add("/k", 10, true, false, ());
        let mut fired = vec![];
        hub.notify(&ev("/k", 9), &mut fired);
        assert!(fired.is_empty());
        hub.notify(&ev("/k", 10), &mut fired);
        assert_eq!(fired.len(), 1);
    }

    #[test]
    fn removed_watcher_costs_nothing() {
        let mut hub = WatcherHub::new();
        let id = hub.add("/k", 0, true, false, 7);
        assert_eq!(hub.remove(id), Some(7));
        assert_eq!(hub.remove(id), None);
        assert_eq!(hub.len(), 0);
        assert!(hub.by_path.is_empty());
    }
}
