//! The Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate and MemberPromote
//! (etcd 3.4 `v3rpc/member.go`, `etcdserver/server.go`), through the one member list the log
//! keeps (`crate::cluster`; the same list `/v2/members` shows).
//!
//! As etcd with `--strict-reconfig-check` (its default), a change that would leave fewer
//! started members (those that have published their name) than a quorum is refused; a member
//! added but not started yet counts as not started. Answers carry etcd's Cluster header (no
//! revision) and the member list after the change.
//!
//! Deliberately not yet: learners (a MemberAdd with `isLearner` is refused as not served, and
//! MemberPromote finds no learner to promote), and more than one peer URL per member.

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
                    client_ur_ls: if m.etcd_url.is_empty() {
                        Vec::new()
                    } else {
                        vec![m.etcd_url.clone()]
                    },
                    is_learner: false,
                })
                .collect()
        })
    }

    /// etcd's Cluster answers carry no revision.
    fn header(&self) -> Option<ResponseHeader> {
        Some(self.0.header(0))
    }

    /// (members, started members), leaving out `without`.
    fn counts(&self, without: Option<u64>) -> (usize, usize) {
        self.0.node.read(|s| {
            let members = s.members().iter().filter(|(id, _)| Some(**id) != without);
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
            return Err(super::error::not_served("MemberAdd of a learner"));
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

    /// There are no learners yet: a member that exists is not one.
    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.0.check_member_admin(&req).await?;
        let id = req.into_inner().id;
        crate::cluster::name_of(&self.0.node, id).map_err(|e| self.error(e))?;
        Err(status(V3Error::MemberNotLearner))
    }
}
