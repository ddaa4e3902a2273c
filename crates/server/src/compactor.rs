//! Auto-compaction of the v3 keyspace (`--auto-compaction-mode`, `--auto-compaction-retention`),
//! as etcd 3.4's compactors do it, run by whichever member leads.
//!
//! - **periodic** with a retention period P: the revision is noted every P/10 (at most every
//!   6 minutes); once P has passed since the start (then every min(P, 1 h) since the last
//!   compaction), the keyspace is compacted to the revision noted P ago.
//! - **revision** with a retention R: every 5 minutes, compacted to the current revision - R,
//!   unless that is not positive or was the last compaction.
//!
//! A compaction is an ordinary Compaction request through the log, so every member compacts at
//! the same revision; followers note revisions but never compact. A failed compaction is tried
//! again at the next turn; one refused as already compacted counts as done.
//!
//! [`Periodic`] and [`ByRevision`] decide (pure, time passed in); [`run`] is the loop that asks
//! them and proposes.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_v3proto::etcdrs::{internal_request::Request as Internal, InternalRequest};
use etcd_v3proto::etcdserverpb::CompactionRequest;

use crate::node::Node;

/// How often the revision compactor looks (etcd's `revInterval`).
pub const REVISION_INTERVAL: Duration = Duration::from_secs(300);

/// What `--auto-compaction-*` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep this much time of history.
    Periodic(Duration),
    /// Keep this many revisions of history.
    Revision(i64),
}

/// Parses etcd's two flags: `None` when the retention is 0 (etcd's default: off). A plain
/// integer retention is hours (periodic) or revisions (revision); otherwise a Go duration
/// (which the revision mode takes as that many nanoseconds' worth of revisions, as etcd 3.4
/// does).
pub fn parse(mode: &str, retention: &str) -> Result<Option<Mode>, String> {
    if mode != "periodic" && mode != "revision" {
        return Err(format!("unknown auto-compaction-mode {mode:?}"));
    }
    let retention = if retention.is_empty() { "0" } else { retention };
    let nanos: i64 = match crate::gocompat::atoi(retention) {
        Some(n) if n >= 0 => match mode {
            "periodic" => n
                .checked_mul(3_600_000_000_000)
                .ok_or_else(|| format!("auto-compaction-retention {retention:?} is too long"))?,
            _ => n,
        },
        _ => crate::gocompat::parse_duration(retention).ok_or_else(|| {
            format!("error parsing CompactionRetention: invalid duration {retention:?}")
        })?,
    };
    if nanos <= 0 {
        return Ok(None);
    }
    Ok(Some(match mode {
        "periodic" => Mode::Periodic(Duration::from_nanos(nanos as u64)),
        _ => Mode::Revision(nanos),
    }))
}

/// The periodic compactor's decisions (etcd 3.4 `compactor.Periodic`). Times are offsets from
/// an origin the caller picks.
#[derive(Debug)]
pub struct Periodic {
    period: Duration,
    /// Revisions noted, one per turn; the first is the one noted a period ago.
    revs: VecDeque<i64>,
    last_success: Duration,
    /// How long after the last success the next compaction is due: the period the first
    /// time, then the compaction interval.
    wait: Duration,
}

impl Periodic {
    /// A compactor for `period`, started at `now`.
    pub fn new(period: Duration, now: Duration) -> Periodic {
        Periodic {
            period,
            revs: VecDeque::new(),
            last_success: now,
            wait: period,
        }
    }

    /// How often it turns: a tenth of the period, capped at an hour's tenth.
    pub fn turn(&self) -> Duration {
        self.period.min(Duration::from_secs(3600)) / 10
    }

    /// Notes the revision at the start of a turn.
    pub fn note(&mut self, rev: i64) {
        self.revs.push_back(rev);
        let keep = (self.period.as_nanos() / self.turn().as_nanos().max(1)) as usize + 1;
        while self.revs.len() > keep {
            self.revs.pop_front();
        }
    }

    /// At the end of a turn: the revision to compact to now, if one is due (never on a
    /// follower).
    pub fn due(&mut self, now: Duration, leader: bool) -> Option<i64> {
        if !leader || now.saturating_sub(self.last_success) < self.wait {
            return None;
        }
        self.wait = self.period.min(Duration::from_secs(3600));
        self.revs.front().copied()
    }

    /// The compaction it asked for was done at `now` (or had been already).
    pub fn done(&mut self, now: Duration) {
        self.last_success = now;
    }
}

/// The revision compactor's decisions (etcd 3.4 `compactor.Revision`).
#[derive(Debug)]
pub struct ByRevision {
    retention: i64,
    last: i64,
}

impl ByRevision {
    /// A compactor keeping `retention` revisions.
    pub fn new(retention: i64) -> ByRevision {
        ByRevision { retention, last: 0 }
    }

    /// Every [`REVISION_INTERVAL`]: the revision to compact to, given the current one.
    pub fn due(&self, current: i64, leader: bool) -> Option<i64> {
        let rev = current.saturating_sub(self.retention);
        (leader && rev > 0 && rev != self.last).then_some(rev)
    }

    /// The compaction to `rev` was done (or had been already).
    pub fn done(&mut self, rev: i64) {
        self.last = rev;
    }
}

/// Compacts the keyspace to `rev` through the log: true when done, or done already.
async fn compact(node: &Node, rev: i64) -> bool {
    let request = InternalRequest {
        request: Some(Internal::Compaction(CompactionRequest {
            revision: rev,
            physical: false,
        })),
        system: true,
        time: crate::clock::now(),
        ..Default::default()
    };
    match node.propose_v3(request).await {
        Ok(Ok(_)) | Ok(Err(etcd_mvcc::Error::Compacted)) => {
            tracing::info!(revision = rev, "auto-compaction done");
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(revision = rev, "auto-compaction refused: {e}");
            false
        }
        Err(e) => {
            tracing::warn!(revision = rev, "auto-compaction not committed: {e}");
            false
        }
    }
}

/// The auto-compaction loop, for as long as the node runs.
pub async fn run(node: Node, mode: Mode) {
    let start = tokio::time::Instant::now();
    let revision = |node: &Node| node.read(|s| s.v3().revision());
    match mode {
        Mode::Periodic(period) => {
            let mut p = Periodic::new(period, Duration::ZERO);
            loop {
                p.note(revision(&node));
                tokio::time::sleep(p.turn()).await;
                if let Some(rev) = p.due(start.elapsed(), node.is_leader()) {
                    if compact(&node, rev).await {
                        p.done(start.elapsed());
                    }
                }
            }
        }
        Mode::Revision(retention) => {
            let mut r = ByRevision::new(retention);
            loop {
                tokio::time::sleep(REVISION_INTERVAL).await;
                if let Some(rev) = r.due(revision(&node), node.is_leader()) {
                    if compact(&node, rev).await {
                        r.done(rev);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;

    #[test]
    fn flags_parse_as_etcd_parses_them() {
        let p = |m, r| parse(m, r);
        assert_eq!(p("periodic", "0"), Ok(None));
        assert_eq!(p("periodic", ""), Ok(None));
        assert_eq!(
            p("periodic", "1"),
            Ok(Some(Mode::Periodic(Duration::from_secs(H))))
        );
        assert_eq!(
            p("periodic", "30m"),
            Ok(Some(Mode::Periodic(Duration::from_secs(1800))))
        );
        assert_eq!(p("revision", "1000"), Ok(Some(Mode::Revision(1000))));
        assert!(p("periodic", "soon")
            .unwrap_err()
            .contains("CompactionRetention"));
        assert_eq!(
            p("hourly", "1"),
            Err("unknown auto-compaction-mode \"hourly\"".into())
        );
    }

    /// Turns of a compactor with a 10 s period: a turn each second; nothing before 10 s, then
    /// the revision noted 10 s earlier, then every 10 s.
    #[test]
    fn periodic_compacts_to_the_revision_of_a_period_ago_once_a_period_has_passed() {
        let mut p = Periodic::new(Duration::from_secs(10), Duration::ZERO);
        assert_eq!(p.turn(), Duration::from_secs(1));
        let mut compacted = Vec::new();
        for t in 1..=30u64 {
            // The revision grows by 100 a second.
            p.note(t as i64 * 100);
            let now = Duration::from_secs(t);
            if let Some(rev) = p.due(now, true) {
                compacted.push((t, rev));
                p.done(now);
            }
        }
        assert_eq!(compacted, [(10, 100), (20, 1000), (30, 2000)]);
    }

    #[test]
    fn periodic_retries_a_failed_compaction_and_waits_an_hour_at_most() {
        let mut p = Periodic::new(Duration::from_secs(5 * H), Duration::ZERO);
        assert_eq!(p.turn(), Duration::from_secs(360));
        for turn in 1..=50u64 {
            p.note(turn as i64);
        }
        // Not as a follower; as leader at 5 h; failed, so due again at the next turn.
        assert_eq!(p.due(Duration::from_secs(5 * H), false), None);
        let first = p.due(Duration::from_secs(5 * H), true).expect("due");
        assert_eq!(p.due(Duration::from_secs(5 * H + 360), true), Some(first));
        p.done(Duration::from_secs(5 * H + 360));
        // Then every hour (not every 5 h).
        assert_eq!(p.due(Duration::from_secs(6 * H), true), None);
        assert!(p.due(Duration::from_secs(6 * H + 360), true).is_some());
    }

    #[test]
    fn by_revision_keeps_the_retention_and_does_not_repeat_itself() {
        let mut r = ByRevision::new(1000);
        assert_eq!(r.due(900, true), None);
        assert_eq!(r.due(5000, false), None);
        assert_eq!(r.due(5000, true), Some(4000));
        r.done(4000);
        assert_eq!(r.due(5000, true), None);
        assert_eq!(r.due(5001, true), Some(4001));
    }
}
