//! Membership: who is in the cluster, and every way that changes.
//!
//! The member list is replicated state (`etcd_store`'s `Join`, `Leave` and `UpdatePeer`
//! commands); a member joins or leaves as a raft configuration change whose context is the
//! `Join` or `Leave` command, so raft's configuration and the member list change at the same
//! log index on every member. This module is the only place such changes are built:
//! - `first_entry`: a brand-new cluster's entry 1, its first member adding itself;
//! - [`join`]: the receiving side of `POST /join` (a starting member asks to be added);
//!   [`join_cluster`] is the asking side;
//! - [`add_unstarted`]: `POST /v2/members`, a member added before it runs;
//! - [`remove`]: `DELETE /v1/machines/<name>`, `DELETE /v2/members/<id>`;
//! - [`update_peer`]: `PUT /v2/members/<id>`;
//! - [`publish`]: a running member makes its registration carry its name and client URL;
//! - [`notice_removal`]: a member that hears from no leader asks its peers whether it was
//!   removed.
//!
//! Invariants: a peer URL belongs to one member; a name to one raft id (a member that lost its
//! data never takes its old place with an empty log); `-maxsize` bounds new members; a removed
//! id never comes back.
//!
//! Not here: wire formats and status codes (each API maps [`Error`]), the raft driver's
//! application of changes (`raft::driver`).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use etcd_api::{ApiError, ErrorCode};
use etcd_store::{Command, Event};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType};
use serde::{Deserialize, Serialize};

use crate::node::{Node, Transient};
use crate::transport;

/// How long a join of a member added beforehand waits for its name to commit.
const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// How long a new member waits to see its own registration before publishing its name.
const PUBLISH_WAIT: Duration = Duration::from_secs(60);
/// How long one join attempt may take (the receiving member waits for the commit).
const JOIN_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A joining member gave no name.
    #[error("the member name must not be empty")]
    EmptyName,
    /// Another member has this name.
    #[error("the member name {0:?} is taken by another member")]
    NameTaken(String),
    /// Another member has this peer URL.
    #[error("the peer URL {0} is taken by another member")]
    PeerUrlTaken(String),
    /// The cluster has `-maxsize` members.
    #[error("the cluster has -maxsize {0} members")]
    Full(usize),
    /// No such member.
    #[error("member not found")]
    NotFound,
    /// The member was removed.
    #[error("member removed")]
    Removed,
    /// A second learner (etcd allows one).
    #[error("too many learner members in cluster")]
    TooManyLearners,
    /// A promotion of a member that is not a learner.
    #[error("can only promote a learner member")]
    NotLearner,
    /// A promotion of a learner too far behind the leader.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Asked of a member that must be the leader.
    #[error("not leader")]
    NotLeader,
    /// The change would leave fewer started voting members than a quorum.
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// The state machine refused the change.
    #[error(transparent)]
    Refused(#[from] etcd_store::Error),
    /// No leader, no quorum, or stopping.
    #[error(transparent)]
    Transient(#[from] Transient),
}

/// The answer to a successful join.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinAnswer {
    /// Peer URL of every member, by raft id.
    pub members: BTreeMap<u64, String>,
    /// The raft id the new member must take, when it differs from the one it asked with: the
    /// member was added beforehand (`POST /v2/members`) with this id for its peer URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// A fresh random raft id (never 0).
pub fn new_member_id() -> u64 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(crate::clock::now());
        h.write_u32(std::process::id());
        let id = h.finish();
        if id != 0 {
            return id;
        }
    }
}

/// The raft id of a member of a cluster laid out in advance (`--initial-cluster`): derived
/// from the cluster token and the member's peer address (`HOST:PORT`), as etcd derives member
/// ids. The first member of a new static cluster takes it, so that every member listed can
/// work out the cluster id (`etcd_store::cluster_id_of`) it expects to join; a restored
/// cluster's members (`etcdctl snapshot restore`) all take theirs, so that each restore
/// names the same members. Never 0.
pub fn static_member_id(token: &str, peer: &str) -> u64 {
    // (The text hashed is fixed: ids of clusters already running were derived from it.)
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("etcd-rs first member\0{peer}\0{token}").as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(bytes).max(1)
}

/// The cluster id the members of a new static cluster expect.
pub fn static_cluster_id(token: &str, first_peer: &str) -> u64 {
    etcd_store::cluster_id_of(static_member_id(token, first_peer))
}

/// Entry 1 of a brand-new cluster: its first member, `registration` (a `Join`), adding itself.
/// Committed at term 1 by construction.
pub(crate) fn first_entry(id: u64, registration: &Command) -> Entry {
    let cc = add_node(id, registration);
    Entry {
        entry_type: EntryType::EntryConfChange,
        term: 1,
        index: 1,
        data: cc.write_to_bytes().expect("encoding a conf change").into(),
        ..Default::default()
    }
}

fn add_node(id: u64, join: &Command) -> ConfChange {
    ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id: id,
        context: join.to_entry().into(),
        ..Default::default()
    }
}

/// What happened to a propose: the event, or why not.
fn outcome(r: crate::node::ProposeResult) -> Result<Option<Event>, Error> {
    Ok(r??)
}

/// The peer URL of every member, by raft id.
pub fn peer_urls(node: &Node) -> BTreeMap<u64, String> {
    node.read(|s| s.peer_urls())
}

/// The peer URL of every member but this one.
pub fn other_peer_urls(node: &Node) -> Vec<String> {
    let me = node.id();
    peer_urls(node)
        .into_iter()
        .filter(|(id, _)| *id != me)
        .map(|(_, url)| url)
        .collect()
}

/// `POST /join`: adds the member that asks (`id`, `name`, its URLs) and answers once the change
/// is applied here, with what it needs to talk to the others before its log tells it.
pub async fn join(
    node: &Node,
    max_members: usize,
    id: u64,
    name: &str,
    raft_url: &str,
    etcd_url: &str,
) -> Result<JoinAnswer, Error> {
    if name.is_empty() {
        return Err(Error::EmptyName);
    }
    enum Plan {
        AlreadyIn,
        Claim(u64),
        Add,
    }
    let plan = node.read(|s| {
        if let Some((member_id, _)) = s.members().iter().find(|(_, m)| m.name == name) {
            // A retry of a join that went through. (Never a member of that name under another
            // id, even at the same URLs: that is a member that lost its data, and taking its
            // old place with an empty log could undo committed entries.)
            return if *member_id == id {
                Ok(Plan::AlreadyIn)
            } else {
                Err(Error::NameTaken(name.to_string()))
            };
        }
        let added = s
            .members()
            .iter()
            .find(|(_, m)| m.name.is_empty() && m.raft_url == raft_url)
            .map(|(id, _)| *id);
        if let Some(added) = added {
            return Ok(Plan::Claim(added));
        }
        if s.members().values().any(|m| m.raft_url == raft_url) {
            // Another member (named, so running) has this peer URL: messages for the new one
            // would reach it.
            return Err(Error::PeerUrlTaken(raft_url.to_string()));
        }
        if s.members().len() >= max_members {
            return Err(Error::Full(max_members));
        }
        Ok(Plan::Add)
    })?;
    let registration = Command::Join {
        id,
        name: name.to_string(),
        raft_url: raft_url.to_string(),
        etcd_url: etcd_url.to_string(),
    };
    match plan {
        Plan::AlreadyIn => {}
        Plan::Claim(added) => {
            // Added beforehand with `POST /v2/members`: it is a voter already (the cluster may
            // even need it for a quorum), so it only has to take the id it was added with;
            // once it runs, it publishes its name and client URL through the log itself.
            tracing::info!(%name, id = added, "a member added beforehand joins");
            // Bind the name through the log first, so that the id is handed out once: another
            // process (or this one after losing its data) asking later meets "name taken".
            // When the cluster has no quorum without the new member (one member growing to
            // two), that cannot commit until the member runs: then answer anyway, and the
            // member publishes its name itself once it runs.
            let claim = Command::Join {
                id: added,
                name: name.to_string(),
                raft_url: raft_url.to_string(),
                etcd_url: etcd_url.to_string(),
            };
            match tokio::time::timeout(CLAIM_WAIT, node.propose(claim)).await {
                Ok(Ok(Err(e))) => return Err(e.into()),
                Ok(Ok(Ok(_))) => {}
                Ok(Err(_)) | Err(_) => tracing::info!(
                    %name,
                    "the claim did not commit without the new member; it publishes its name once it runs"
                ),
            }
            return Ok(JoinAnswer {
                members: peer_urls(node),
                id: Some(added),
            });
        }
        Plan::Add => {
            tracing::info!(%name, id, "proposing to add a member");
            outcome(node.conf_change(add_node(id, &registration)).await)?;
        }
    }
    Ok(JoinAnswer {
        members: peer_urls(node),
        id: None,
    })
}

/// `POST /v2/members`: adds a member that has not started yet, at `peer_url`. It becomes a
/// voter at once (so the quorum grows, as in etcd); started with `--initial-cluster-state
/// existing` (or `-C`), it takes the returned id and publishes its name.
pub async fn add_unstarted(node: &Node, max_members: usize, peer_url: &str) -> Result<u64, Error> {
    node.read(|s| {
        if s.members().values().any(|m| m.raft_url == peer_url) {
            return Err(Error::PeerUrlTaken(peer_url.to_string()));
        }
        if s.members().len() >= max_members {
            return Err(Error::Full(max_members));
        }
        Ok(())
    })?;
    let id = new_member_id();
    let registration = Command::Join {
        id,
        name: String::new(),
        raft_url: peer_url.to_string(),
        etcd_url: String::new(),
    };
    outcome(node.conf_change(add_node(id, &registration)).await)?;
    Ok(id)
}

/// `MemberAdd` with `isLearner`: adds a learner that has not started yet, at `peer_url` (at
/// most one learner, as etcd). It receives the log and does not vote; started with
/// `--initial-cluster-state existing` (or `-C`), it takes the returned id like any added
/// member.
pub async fn add_learner(node: &Node, max_members: usize, peer_url: &str) -> Result<u64, Error> {
    node.read(|s| {
        if s.members().values().any(|m| m.raft_url == peer_url) {
            return Err(Error::PeerUrlTaken(peer_url.to_string()));
        }
        if s.members().len() >= max_members {
            return Err(Error::Full(max_members));
        }
        if s.members().values().any(|m| m.learner) {
            return Err(Error::TooManyLearners);
        }
        Ok(())
    })?;
    let id = new_member_id();
    let context = Command::AddLearner {
        id,
        raft_url: peer_url.to_string(),
    };
    let cc = ConfChange {
        change_type: ConfChangeType::AddLearnerNode,
        node_id: id,
        context: context.to_entry().into(),
        ..Default::default()
    };
    outcome(node.conf_change(cc).await)?;
    Ok(id)
}

/// The share of the leader's log a learner must have to be promoted (etcd's).
const PROMOTE_READY: f64 = 0.9;

/// `MemberPromote`, on the leader: makes learner `id` a voter once its log matches at least
/// 90% of the leader's ([`Error::NotLeader`] elsewhere: the caller forwards), and if the
/// started voters then make a quorum (checked in etcd's order).
pub async fn promote(node: &Node, id: u64) -> Result<(), Error> {
    let learner = node.read(|s| {
        if s.is_removed(id) {
            return Err(Error::NotFound);
        }
        s.members()
            .get(&id)
            .map(|m| m.learner)
            .ok_or(Error::NotFound)
    })?;
    if !learner {
        return Err(Error::NotLearner);
    }
    let Some((matched, leader)) = node.progress(id).await? else {
        return Err(Error::NotLeader);
    };
    if (matched as f64) < (leader as f64) * PROMOTE_READY {
        return Err(Error::LearnerNotReady);
    }
    // etcd's IsReadyToPromoteMember: the started voters, the learner among them, must be a
    // quorum of the voters it makes.
    let (voters, started) = node.read(|s| {
        s.members().iter().fold((0, 0), |(n, started), (m_id, m)| {
            let counts = !m.learner || *m_id == id;
            (
                n + usize::from(counts),
                started + usize::from(counts && !m.name.is_empty()),
            )
        })
    });
    if started < voters / 2 + 1 {
        return Err(Error::NotEnoughStarted);
    }
    let cc = ConfChange {
        change_type: ConfChangeType::AddNode,
        node_id: id,
        context: Command::Promote { id }.to_entry().into(),
        ..Default::default()
    };
    outcome(node.conf_change(cc).await)?;
    Ok(())
}

/// The raft id of the member named `name`.
pub fn id_of(node: &Node, name: &str) -> Option<u64> {
    node.read(|s| {
        s.members()
            .iter()
            .find(|(_, m)| m.name == name)
            .map(|(id, _)| *id)
    })
}

/// The name of member `id` (empty for one added but not started): [`Error::NotFound`], or
/// [`Error::Removed`] for a member removed from the cluster.
pub fn name_of(node: &Node, id: u64) -> Result<String, Error> {
    node.read(|s| member_name(s, id))
}

/// [`name_of`] on a store already in hand.
fn member_name(s: &crate::node::Store, id: u64) -> Result<String, Error> {
    if s.is_removed(id) {
        return Err(Error::Removed);
    }
    s.members()
        .get(&id)
        .map(|m| m.name.clone())
        .ok_or(Error::NotFound)
}

/// Removes member `id` through the log; the event is the removal of its
/// `/_etcd/machines/<name>` key, if it had a name.
pub async fn remove(node: &Node, id: u64) -> Result<Option<Event>, Error> {
    let name = name_of(node, id)?;
    tracing::info!(%name, id, "proposing to remove a member");
    let change = ConfChange {
        change_type: ConfChangeType::RemoveNode,
        node_id: id,
        context: Command::Leave { id, name }.to_entry().into(),
        ..Default::default()
    };
    outcome(node.conf_change(change).await)
}

/// Changes member `id`'s peer URL through the log.
pub async fn update_peer(node: &Node, id: u64, peer_url: &str) -> Result<(), Error> {
    node.read(|s| {
        member_name(s, id)?;
        let taken = s
            .members()
            .iter()
            .any(|(other, m)| *other != id && m.raft_url == peer_url);
        if taken {
            return Err(Error::PeerUrlTaken(peer_url.to_string()));
        }
        Ok(())
    })?;
    let update = Command::UpdatePeer {
        id,
        raft_url: peer_url.to_string(),
    };
    outcome(node.propose(update).await).map(|_| ())
}

/// Watches for this member's removal where raft cannot tell it: a member removed before it
/// first heard from the leader has an empty configuration, never campaigns, and so never sends
/// the peers the message they would answer `410 Gone`. While no leader is known, every `every`
/// it asks the peers it knows (the log's members, or those it joined through) whether it was
/// removed (`POST /v3rs/removed`, from its own peer address `local` as raft traffic goes); on
/// the first yes it stops as if it had applied its removal.
pub async fn notice_removal(
    node: Node,
    joined_through: Vec<String>,
    tls: Option<tokio_rustls::TlsConnector>,
    local: Option<std::net::IpAddr>,
    every: Duration,
) {
    let id = node.id();
    loop {
        tokio::time::sleep(every).await;
        if node.leader_id().is_some() {
            continue;
        }
        let mut peers = other_peer_urls(&node);
        if peers.is_empty() {
            peers = joined_through.clone();
        }
        for url in peers {
            let asked = transport::post_once(
                &url,
                tls.as_ref(),
                local,
                "/v3rs/removed",
                id.to_le_bytes().to_vec(),
                Duration::from_secs(2),
            );
            if let Ok((410, _)) = asked.await {
                tracing::warn!(peer = %url, "peer says this member was removed from the cluster");
                node.report_removed();
                return;
            }
        }
    }
}

/// Makes the log's registration of this member (`id`, `name`, `client_url`) carry its name and
/// client URL: a member added with `POST /v2/members` is registered without them until it runs
/// (etcd's "publish" step). Retries until it is so, or the node stops; a no-op for every other
/// start.
pub async fn publish(node: Node, name: String, client_url: String) {
    let id = node.id();
    // A member that just joined learns its own registration from the log a little later.
    let unknown_until = tokio::time::Instant::now() + PUBLISH_WAIT;
    loop {
        // Name and client URL only: the peer URL is the cluster's to change
        // (`PUT /v2/members/<id>`), as in etcd's publish.
        let registered = node.read(|s| {
            s.members().get(&id).map(|m| {
                (
                    m.name == name && m.etcd_url == client_url,
                    m.raft_url.clone(),
                )
            })
        });
        let raft_url = match registered {
            // Registered as it is.
            Some((true, _)) => return,
            // Not (or no longer) in the member list this member has applied.
            None if tokio::time::Instant::now() >= unknown_until => return,
            None => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Some((false, raft_url)) => raft_url,
        };
        let publish = Command::Join {
            id,
            name: name.clone(),
            raft_url,
            etcd_url: client_url.clone(),
        };
        match node.propose(publish).await {
            Ok(Ok(_)) => {
                tracing::info!(%name, "published this member's name and client URL");
                return;
            }
            Ok(Err(e)) => tracing::warn!("publishing this member's attributes: {e}"),
            Err(Transient::ShuttingDown) => return,
            Err(e) => tracing::debug!("publishing this member's attributes: {e}; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Why asking to join failed.
pub enum Joined {
    /// No peer could be reached.
    NobodyAnswered(String),
    /// A peer answered and refused (or its answer was unusable).
    Refused(String),
}

impl Joined {
    /// What went wrong, either way.
    pub fn into_message(self) -> String {
        match self {
            Joined::NobodyAnswered(e) | Joined::Refused(e) => e,
        }
    }
}

/// Asks the members at `peers` (peer addresses) to add this member (`registration`, a
/// `Join`), trying each in turn for `rounds` rounds. A refusal because the cluster is full ends
/// the attempt at once.
pub async fn join_cluster(
    registration: &Command,
    peers: &[String],
    rounds: u32,
    tls: Option<&tokio_rustls::TlsConnector>,
    expect_cluster: Option<u64>,
) -> Result<JoinAnswer, Joined> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    // A member of a new static cluster names the cluster it expects: another one refuses it
    // before adding it.
    let path = match expect_cluster {
        Some(id) => format!("/join?cluster-id={id:x}"),
        None => "/join".to_string(),
    };
    let body = registration.encode();
    let mut last_error = String::from("no peer answered");
    let mut answered = false;
    for round in 0..rounds.max(1) {
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for peer in peers {
            let url = format!("{scheme}://{peer}");
            let attempt =
                transport::post_once(&url, tls, None, &path, body.clone(), JOIN_ATTEMPT_TIMEOUT);
            match attempt.await {
                Ok((200, body)) => {
                    let answer: JoinAnswer = serde_json::from_slice(&body).map_err(|e| {
                        Joined::Refused(format!(
                            "{peer} accepted the join but its answer is unreadable: {e}"
                        ))
                    })?;
                    tracing::info!(%peer, "joined the cluster");
                    return Ok(answer);
                }
                Ok((412, body)) => {
                    return Err(Joined::Refused(format!(
                        "{peer} refused the join: {}",
                        String::from_utf8_lossy(&body).trim()
                    )));
                }
                Ok((status, body)) => {
                    answered = true;
                    match ApiError::from_json(&body) {
                        Some(e) if e.code == ErrorCode::NoMoreMachine => {
                            return Err(Joined::Refused(e.code.message().to_string()));
                        }
                        Some(e) => last_error = format!("{peer} refused the join: {e}"),
                        None => last_error = format!("{peer} answered {status}"),
                    }
                }
                Err(e) => {
                    // Only a refused connection proves nobody runs there; a timeout or a
                    // failed handshake may hide a running cluster (see the bootstrap probe).
                    if !e.contains("Connection refused") {
                        answered = true;
                    }
                    last_error = e;
                    if tls.is_none() {
                        last_error.push_str(" (if the cluster uses TLS between members, this member needs -serverCert/-serverKey too)");
                    }
                }
            }
            tracing::warn!("join through {peer} failed: {last_error}");
        }
    }
    let e = format!(
        "could not join the cluster through {}: {last_error}",
        peers.join(",")
    );
    Err(if answered {
        Joined::Refused(e)
    } else {
        Joined::NobodyAnswered(e)
    })
}
