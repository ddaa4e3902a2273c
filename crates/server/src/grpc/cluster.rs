//! The Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate and MemberPromote
//! (etcd 3.4 `v3rpc/member.go`, `etcdserver/server.go`), through the one member list the log
//! keeps (`crate::cluster`; the same list `/v2/members` shows).
//!
//! As etcd with `--strict-reconfig-check` (its default), a change that would leave fewer
//! started members (those that have published their name) than a quorum is refused; a member
//! added but not started yet counts as not started. Answers carry etcd's Cluster header (no
//! revision) and the member list after the change.
//!
//! Learners (etcd 3.4's): MemberAdd with `isLearner` adds one (at most one at a time); it
//! receives the log, does not vote, and counts for no quorum; MemberPromote makes it a voter
//! once its log matches 90% of the leader's (the leader judges: a follower forwards the
//! promotion to it). A learner serves only Status and serializable Range (see `mod.rs`).
//!
//! Deliberately not yet: more than one peer URL per member.

use std::sync::Arc;

use etcd_api::v3::V3Error;
use etcd_v3proto::etcdserverpb::cluster_server;
use etcd_v3proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::{status, transient};
use super::Ctx;
use crate::cluster::Error as ClusterError;

/// The Cluster service.
pub struct Cluster(pub Arc<Ctx>);

impl Cluster {
    /// The member list as etcd shows it (a member added but not started has no name and no
    /// client URL).
    fn members(&self) -> Vec<Member> {
        self.0.node.read(|s| {
            s.members()
                .iter()
                .map(|(id, m)| Member {
                    id: *id,
                    name: m.name.clone(),
                    peer_ur_ls: vec![m.raft_url.clone()],
                    client_ur_ls: m.client_urls(),
                    is_learner: m.learner,
                })
                .collect()
        })
    }

    /// etcd's Cluster answers carry no revision.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.0.header(0))
    }

    /// (voting members, started voting members), leaving out `without` (learners do not
    /// count: they do not vote).
    fn counts(&self, without: Option<u64>) -> (usize, usize) {
        self.0.node.read(|s| {
            let members = s
                .members()
                .iter()
                .filter(|(id, m)| Some(**id) != without && !m.learner);
            members.fold((0, 0), |(n, started), (_, m)| {
                (n + 1, started + usize::from(!m.name.is_empty()))
            })
        })
    }

    /// A cluster error as etcd's gRPC error.
    fn error(&self, e: ClusterError) -> Status {
        match e {
            ClusterError::PeerUrlTaken(_) => status(V3Error::PeerUrlExists),
            ClusterError::NotFound | ClusterError::Removed => status(V3Error::MemberNotFound),
            ClusterError::TooManyLearners => status(V3Error::TooManyLearners),
            ClusterError::NotLearner => status(V3Error::MemberNotLearner),
            ClusterError::LearnerNotReady => status(V3Error::LearnerNotReady),
            ClusterError::NotLeader => status(V3Error::NotLeader),
            ClusterError::NotEnoughStarted => status(V3Error::NotEnoughStartedMembers),
            ClusterError::Transient(t) => transient(t, self.0.node.leader_id().is_some()),
            other => Status::failed_precondition(other.to_string()),
        }
    }
}

/// The one peer URL of a request, checked as etcd checks URLs (`http` or `https`,
/// `host:port`, nothing after).
fn peer_url(urls: &[String]) -> Result<String, Status> {
    let [url] = urls else {
        if urls.is_empty() {
            return Err(status(V3Error::MemberBadUrls));
        }
        return Err(Status::invalid_argument(
            "etcd-rs: exactly one peer URL is supported per member",
        ));
    };
    let addr = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| status(V3Error::MemberBadUrls))?;
    crate::config::split_host_port(addr).map_err(|_| status(V3Error::MemberBadUrls))?;
    Ok(url.clone())
}

#[tonic::async_trait]
impl cluster_server::Cluster for Cluster {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let url = peer_url(&req.get_ref().peer_ur_ls)?;
        self.0.check_member_admin(&req).await?;
        let req = req.into_inner();
        if req.is_learner {
            // A learner does not vote: no quorum to keep.
            let id = crate::cluster::add_learner(&self.0.node, self.0.max_members, &url)
                .await
                .map_err(|e| self.error(e))?;
            return Ok(Response::new(MemberAddResponse {
                header: self.header(),
                member: Some(Member {
                    id,
                    peer_ur_ls: vec![url],
                    is_learner: true,
                    ..Default::default()
                }),
                members: self.members(),
            }));
        }
        // etcd's IsReadyToAddVotingMember: a second member may join a single started one;
        // otherwise the started members must stay a quorum of the grown cluster.
        let (members, started) = self.counts(None);
        let grown = members + 1;
        if !(started == 1 && grown == 2) && started < grown / 2 + 1 {
            return Err(status(V3Error::NotEnoughStartedMembers));
        }
        let id = crate::cluster::add_unstarted(&self.0.node, self.0.max_members, &url)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(Member {
                id,
                peer_ur_ls: vec![url],
                ..Default::default()
            }),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.0.check_member_admin(&req).await?;
        let id = req.into_inner().id;
        crate::cluster::name_of(&self.0.node, id).map_err(|e| self.error(e))?;
        // etcd's IsReadyToRemoveVotingMember: the started members left must be a quorum of
        // the members left.
        let (members, started) = self.counts(Some(id));
        if started < members / 2 + 1 {
            return Err(status(V3Error::NotEnoughStartedMembers));
        }
        crate::cluster::remove(&self.0.node, id)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let url = peer_url(&req.get_ref().peer_ur_ls)?;
        self.0.check_member_admin(&req).await?;
        let req = req.into_inner();
        crate::cluster::update_peer(&self.0.node, req.id, &url)
            .await
            .map_err(|e| self.error(e))?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    /// Only the leader knows whether the learner has caught up: a follower forwards the
    /// promotion to it over the peer API, as etcd does.
    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.0.check_member_admin(&req).await?;
        let id = req.into_inner().id;
        match crate::cluster::promote(&self.0.node, id).await {
            Ok(()) => {}
            Err(ClusterError::NotLeader) => self.promote_through_leader(id).await?,
            Err(e) => return Err(self.error(e)),
        }
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        }))
    }
}

impl Cluster {
    /// Asks the leader to promote learner `id` (`POST /v3rs/promote` on its peer URL).
    async fn promote_through_leader(&self, id: u64) -> Result<(), Status> {
        let node = &self.0.node;
        let Some(url) = node
            .leader_id()
            .and_then(|leader| node.read(|s| s.peer_urls().get(&leader).cloned()))
        else {
            return Err(status(V3Error::NoLeader));
        };
        let answer = crate::transport::post_once(
            &url,
            self.0.peer_tls.as_ref(),
            None,
            "/v3rs/promote",
            id.to_le_bytes().to_vec(),
            std::time::Duration::from_secs(10),
        )
        .await;
        match answer {
            Ok((200, _)) => Ok(()),
            Ok((404, _)) => Err(status(V3Error::MemberNotFound)),
            Ok((409, _)) => Err(status(V3Error::MemberNotLearner)),
            Ok((412, _)) => Err(status(V3Error::LearnerNotReady)),
            Ok((424, _)) => Err(status(V3Error::NotEnoughStartedMembers)),
            Ok(_) | Err(_) => Err(status(V3Error::LeaderChanged)),
        }
    }
}
