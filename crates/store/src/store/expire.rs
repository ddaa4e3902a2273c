//! TTL expiry: the leader proposes `Expire` entries carrying its clock (one per due key since
//! the per-key expiry change; older logs hold one entry for every due key, which replays as
//! it was), so every member expires the same keys at the same index.

use super::{Fired, Outcome, Store};
use crate::command::Command;
use crate::event::Action;
use crate::{path, Index};

impl<W> Store<W> {
    /// Applies an `Expire` command.
    pub(super) fn apply_expire(
        &mut self,
        index: Index,
        cmd: &Command,
        fired: &mut Fired<W>,
    ) -> Outcome {
        match cmd {
            Command::Expire { time, key: None } => {
                while let Some((at, key)) = self.ttl.get_min().cloned() {
                    if at > *time {
                        break;
                    }
                    // Off the index first, so that a stale entry cannot loop forever.
                    self.ttl.remove(&(at, key.clone()));
                    if self
                        .remove(index, &key, Action::Expire, *time, fired)
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
                    self.remove(index, &key, Action::Expire, *time, fired)
                        .map(Some)
                } else {
                    Ok(None)
                }
            }
            _ => unreachable!("not an expiry"),
        }
    }
}
