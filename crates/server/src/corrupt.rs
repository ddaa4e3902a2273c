//! The periodic corruption check (`--experimental-corrupt-check-time`), as etcd 3.4's
//! `checkHashKV`: every period the leader hashes its keyspace (HashKV, etcd's own hash), asks
//! every peer for its hash at the same revision (`POST /v3rs/hashkv` on the peer port), hashes
//! again after a linearizable read, and raises the CORRUPT alarm through the log for the first
//! member found inconsistent:
//! - itself, if its hash changed while its revision and compaction did not;
//! - a peer whose revision or compaction is ahead of the leader's;
//! - a peer with the leader's compaction whose hash at the leader's revision differs.
//!
//! A peer that cannot answer (down, behind the revision, compacted past it) is skipped, as in
//! etcd. Under the alarm every member refuses writes (`corrupt cluster`) until it is cleared.
//!
//! [`first_mismatch`] decides (pure); [`run`] gathers the hashes and raises the alarm.
//! [`initial_check`] is the check a restarted member makes before it serves.

use std::time::Duration;

use etcd_v3proto::etcdrs::{internal_request::Request as Internal, InternalRequest};
use etcd_v3proto::etcdserverpb::alarm_request::AlarmAction;
use etcd_v3proto::etcdserverpb::{AlarmRequest, AlarmType, HashKvResponse};
use prost::Message as _;

use crate::node::Node;
use crate::transport;

/// A member's HashKV: hash, the revision it was taken at (the member's current one for a
/// peer), and the compacted revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// The hash.
    pub hash: u32,
    /// The member's current revision.
    pub revision: i64,
    /// Its compacted revision (0: never compacted).
    pub compacted: i64,
}

impl Hashed {
    /// The compacted revision as etcd's HashKV answers it: -1 before any compaction.
    pub fn compact_revision(&self) -> i64 {
        if self.compacted > 0 {
            self.compacted
        } else {
            -1
        }
    }
}

/// The member to raise CORRUPT for, if any: `me` hashed `before` and `after` a linearizable
/// read; `peers` answered (member id, its hash at `before.revision`).
pub fn first_mismatch(
    me: u64,
    before: Hashed,
    after: Hashed,
    peers: &[(u64, Hashed)],
) -> Option<u64> {
    if after.hash != before.hash
        && after.revision == before.revision
        && after.compacted == before.compacted
    {
        return Some(me);
    }
    peers.iter().find_map(|&(id, p)| {
        let ahead = p.revision > after.revision || p.compacted > after.compacted;
        let differs = p.compacted == before.compacted && p.hash != before.hash;
        (ahead || differs).then_some(id)
    })
}

/// This member's HashKV at `revision` (0: now), as [`Hashed`] (`revision` the current one):
/// what the Hash and HashKV RPCs answer, and what peers compare. The hash reads every
/// version: it runs on a copy of the keyspace (cheap: the structures are shared), off the
/// store's lock and on a blocking thread.
pub async fn local_hash(node: &Node, revision: i64) -> Result<Hashed, etcd_mvcc::Error> {
    let keyspace = node.read(|s| s.v3().clone());
    tokio::task::spawn_blocking(move || {
        let (hash, _) = keyspace.hash_kv(revision)?;
        Ok(Hashed {
            hash,
            revision: keyspace.revision(),
            compacted: keyspace.compacted(),
        })
    })
    .await
    .unwrap_or(Err(etcd_mvcc::Error::Stopped))
}

/// Asks the peer at `url` for its hash at `revision`.
async fn peer_hash(
    url: &str,
    revision: i64,
    tls: Option<&tokio_rustls::TlsConnector>,
    local: Option<std::net::IpAddr>,
) -> Option<(u64, Hashed)> {
    let body = revision.to_le_bytes().to_vec();
    let (status, body) = transport::post_once(
        url,
        tls,
        local,
        "/v3rs/hashkv",
        body,
        Duration::from_secs(5),
    )
    .await
    .ok()?;
    if status != 200 {
        return None;
    }
    let r = HashKvResponse::decode(body).ok()?;
    let header = r.header?;
    Some((
        header.member_id,
        Hashed {
            hash: r.hash,
            revision: header.revision,
            compacted: r.compact_revision.max(0),
        },
    ))
}

/// The check, every `every`, on whichever member leads (see the module docs).
pub async fn run(
    node: Node,
    every: Duration,
    tls: Option<tokio_rustls::TlsConnector>,
    local: Option<std::net::IpAddr>,
) {
    loop {
        tokio::time::sleep(every).await;
        if !node.is_leader() {
            continue;
        }
        let me = node.id();
        let Ok(before) = local_hash(&node, 0).await else {
            continue;
        };
        let mut peers = Vec::new();
        for url in &crate::cluster::other_peer_urls(&node) {
            if let Some(answer) = peer_hash(url, before.revision, tls.as_ref(), local).await {
                peers.push(answer);
            }
        }
        if !matches!(node.propose(etcd_store::Command::Read).await, Ok(Ok(_))) {
            continue;
        }
        let Ok(after) = local_hash(&node, 0).await else {
            continue;
        };
        match first_mismatch(me, before, after, &peers) {
            None => tracing::info!(
                revision = before.revision,
                peers = peers.len(),
                "corruption check passed"
            ),
            Some(id) => {
                tracing::error!(
                    member = format!("{id:x}"),
                    "corruption check: the member's keyspace differs; raising CORRUPT"
                );
                let raise = InternalRequest {
                    request: Some(Internal::Alarm(AlarmRequest {
                        action: AlarmAction::Activate as i32,
                        member_id: id,
                        alarm: AlarmType::Corrupt as i32,
                    })),
                    system: true,
                    time: crate::clock::now(),
                    ..Default::default()
                };
                let _ = node.propose_v3(raise).await;
            }
        }
    }
}

/// The peers whose hash at this member's revision differs from `mine` while their
/// compaction agrees (the initial check's rule; others cannot be compared).
pub fn initial_mismatches(mine: Hashed, peers: &[(u64, Hashed)]) -> Vec<u64> {
    peers
        .iter()
        .filter(|(_, theirs)| theirs.compacted == mine.compacted && theirs.hash != mine.hash)
        .map(|(id, _)| *id)
        .collect()
}

/// The initial check (`--experimental-initial-corrupt-check`, etcd 3.4's
/// `CheckInitialHashKV`): before a restarted member serves, its hash must equal the hash
/// every peer that can answer has at its revision, when their compactions agree. Peers that
/// cannot answer (down, behind, compacted past it) are skipped. An error names the
/// inconsistency: the member must not serve.
pub async fn initial_check(
    node: &Node,
    tls: Option<&tokio_rustls::TlsConnector>,
    local: Option<std::net::IpAddr>,
) -> Result<(), String> {
    let mine = local_hash(node, 0)
        .await
        .map_err(|e| format!("{:x} failed to fetch hash ({e})", node.id()))?;
    let mut peers = Vec::new();
    for url in &crate::cluster::other_peer_urls(node) {
        match peer_hash(url, mine.revision, tls, local).await {
            Some(answer) => peers.push(answer),
            None => {
                tracing::info!(%url, "initial corruption check: the peer could not answer; skipped")
            }
        }
    }
    let checked = peers.len();
    let mismatch = initial_mismatches(mine, &peers);
    for id in &mismatch {
        tracing::error!(
            peer = format!("{id:x}"),
            revision = mine.revision,
            "initial corruption check: hashes differ"
        );
    }
    if !mismatch.is_empty() {
        return Err(format!(
            "{:x} found data inconsistency with peers",
            node.id()
        ));
    }
    tracing::info!(
        revision = mine.revision,
        peers = checked,
        "initial corruption check passed; no corruption"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u64 = 1;

    fn h(hash: u32, revision: i64, compacted: i64) -> Hashed {
        Hashed {
            hash,
            revision,
            compacted,
        }
    }

    #[test]
    fn the_initial_check_names_peers_that_differ_at_the_same_compaction_only() {
        let mine = h(7, 10, 4);
        assert!(initial_mismatches(mine, &[]).is_empty());
        assert!(initial_mismatches(mine, &[(2, h(7, 12, 4))]).is_empty());
        // Another compaction: the hashes cannot be compared.
        assert!(initial_mismatches(mine, &[(2, h(9, 12, 6))]).is_empty());
        assert_eq!(
            initial_mismatches(mine, &[(2, h(7, 10, 4)), (3, h(8, 10, 4))]),
            vec![3]
        );
    }

    #[test]
    fn agreeing_members_and_unanswering_ones_raise_nothing() {
        let mine = h(7, 10, 4);
        assert_eq!(first_mismatch(ME, mine, mine, &[]), None);
        assert_eq!(
            first_mismatch(ME, mine, mine, &[(2, h(7, 10, 4)), (3, h(7, 9, 4))]),
            None
        );
        // Writes between the two hashes change the leader's hash and revision: no mismatch.
        assert_eq!(
            first_mismatch(ME, mine, h(8, 11, 4), &[(2, h(7, 11, 4))]),
            None
        );
        // A peer compacted at another revision hashes other records: not compared.
        assert_eq!(first_mismatch(ME, mine, mine, &[(2, h(9, 10, 3))]), None);
    }

    #[test]
    fn a_differing_hash_or_a_peer_ahead_is_named() {
        let mine = h(7, 10, 4);
        assert_eq!(
            first_mismatch(ME, mine, mine, &[(2, h(7, 10, 4)), (3, h(8, 10, 4))]),
            Some(3)
        );
        assert_eq!(first_mismatch(ME, mine, mine, &[(2, h(7, 12, 4))]), Some(2));
        assert_eq!(first_mismatch(ME, mine, mine, &[(2, h(7, 10, 6))]), Some(2));
        // The leader's own hash changed with nothing applied: the leader.
        assert_eq!(
            first_mismatch(ME, mine, h(9, 10, 4), &[(2, h(7, 10, 4))]),
            Some(ME)
        );
    }
}
