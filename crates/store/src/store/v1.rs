//! The v1 (seed) command family: `Set`, `TestAndSet`, `Delete`. Files only; a TTL of 0 or
//! less deletes the key; `_etcd` keys are the cluster's.

use super::{expiry, Fired, Outcome, Store};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::event::{Action, Event};
use crate::tree::Node;
use crate::{path, Index, UnixNanos};

impl<W> Store<W> {
    /// Applies a v1 command.
    pub(super) fn apply_v1(
        &mut self,
        index: Index,
        cmd: &Command,
        fired: &mut Fired<W>,
    ) -> Outcome {
        match cmd {
            Command::Set {
                key,
                value,
                ttl_secs,
                time,
            } => {
                self.stats.sets += 1;
                let key = path::clean(key);
                let r = self.v1_set(index, &key, value, *ttl_secs, *time, fired);
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
                            self.remove(index, &key, Action::Delete, *time, fired)
                        }
                        expire_at => Ok(self.write_file(
                            index,
                            &key,
                            value.clone(),
                            expire_at,
                            Action::CompareAndSwap,
                            *time,
                            fired,
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
                    self.v1_delete(index, &key, fired).map(Some)
                };
                self.stats.v2.count(Action::Delete, r.is_ok());
                r
            }
            _ => unreachable!("not a v1 command"),
        }
    }

    /// A v1 set: files only, below directories only; a TTL of 0 or less deletes the key.
    fn v1_set(
        &mut self,
        index: Index,
        key: &str,
        value: &str,
        ttl_secs: Option<i64>,
        time: UnixNanos,
        fired: &mut Fired<W>,
    ) -> Outcome {
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
    pub(super) fn v1_delete(
        &mut self,
        index: Index,
        key: &str,
        fired: &mut Fired<W>,
    ) -> Result<Event> {
        match self.tree.get(key) {
            _ if key == "/" => Err(Error::NotFile(key.to_string())),
            None => Err(Error::KeyNotFound(key.to_string())),
            Some(n) if n.is_dir() => Err(Error::NotFile(key.to_string())),
            Some(_) => self.remove(index, key, Action::Delete, 0, fired),
        }
    }
}
