//! TTLs: the arithmetic (absolute expiry from a TTL, whole seconds left), the expiry index's
//! queries (what the leader proposes to expire, and when), and the `Expire` family. The leader
//! proposes `Expire` entries carrying its clock (one per due key since the per-key expiry
//! change; older logs hold one entry for every due key, which replays as it was), so every
//! member expires the same keys at the same index.
//!
//! Invariant: the index (`Store::ttl`, ordered by expiry then key) holds exactly the nodes that
//! have an expiry; writes and removals keep it so (`Store::write_file`, `Store::remove`).

use super::{Fired, Outcome, Store};
use crate::command::Command;
use crate::event::Action;
use crate::{path, Index, UnixNanos};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Whole seconds from `time` to `expire_at`, rounded up; `None` when nothing is left.
pub fn ttl_left(expire_at: Option<UnixNanos>, time: UnixNanos) -> Option<i64> {
    let left = expire_at?.saturating_sub(time);
    // Rounded up without overflowing next to i64::MAX (a TTL of billions of years).
    (left > 0).then(|| left / NANOS_PER_SEC + i64::from(left % NANOS_PER_SEC != 0))
}

/// The absolute expiry of a TTL given at `time` (a negative TTL is already over).
pub(super) fn expiry(ttl_secs: Option<i64>, time: UnixNanos) -> Option<UnixNanos> {
    ttl_secs.map(|t| time.saturating_add(t.max(0).saturating_mul(NANOS_PER_SEC)))
}

impl<W> Store<W> {
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
