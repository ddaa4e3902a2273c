//! The v2 command family: `V2Put` (set, create, update, compare-and-swap, by etcd's
//! dispatch), `V2Post` (in-order keys), `V2Delete` (files, directories, compare-and-delete),
//! with etcd v2's error causes.

use super::{expiry, info, Fired, Outcome, Store, Written};
use crate::command::Command;
use crate::error::{Error, Result};
use crate::event::{Action, Event};
use crate::tree::{Kind, Node};
use crate::{path, Index, UnixNanos};

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

/// A v2 write may not touch the root or the cluster's `/_etcd` keys.
fn writable(key: &str) -> Result<()> {
    if key == "/" {
        return Err(Error::RootReadOnly);
    }
    if path::is_reserved(key) {
        return Err(Error::Reserved(key.to_string()));
    }
    Ok(())
}

impl<W> Store<W> {
    /// Applies a v2 command.
    pub(super) fn apply_v2(
        &mut self,
        index: Index,
        cmd: &Command,
        fired: &mut Fired<W>,
    ) -> Outcome {
        match cmd {
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
                    fired,
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
                    fired,
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
                    fired,
                );
                let action = if compare {
                    Action::CompareAndDelete
                } else {
                    Action::Delete
                };
                self.stats.v2.count(action, r.is_ok());
                r.map(Some)
            }
            _ => unreachable!("not a v2 command"),
        }
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
        fired: &mut Fired<W>,
    ) -> Result<Event> {
        writable(key)?;
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
        Ok(self.written(
            index,
            key,
            Written {
                action,
                dir: is_dir,
                value: (!is_dir).then_some(value),
                prev,
                created,
                expire_at,
                refresh,
            },
            time,
            fired,
        ))
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
        fired: &mut Fired<W>,
    ) -> Result<Event> {
        writable(key)?;
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
}
