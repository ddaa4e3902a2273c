//! The Cluster service: MemberList, from the one member list the log keeps (the same list
//! `/v2/members` shows). Adding, removing, updating and promoting members over v3 are not
//! served yet.

use std::sync::Arc;

use etcd_v3proto::etcdserverpb::cluster_server;
use etcd_v3proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::not_served;
use super::Ctx;

/// The Cluster service.
pub struct Cluster(pub Arc<Ctx>);

#[tonic::async_trait]
impl cluster_server::Cluster for Cluster {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let members = self.0.node.read(|s| {
            s.members()
                .iter()
                .map(|(id, m)| Member {
                    id: *id,
                    name: m.name.clone(),
                    peer_ur_ls: vec![m.raft_url.clone()],
                    // A member added but not started yet has no client URL.
                    client_ur_ls: if m.etcd_url.is_empty() {
                        Vec::new()
                    } else {
                        vec![m.etcd_url.clone()]
                    },
                    is_learner: false,
                })
                .collect::<Vec<_>>()
        });
        Ok(Response::new(MemberListResponse {
            // etcd's Cluster answers carry no revision.
            header: Some(self.0.header(0)),
            members,
        }))
    }

    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(not_served("Cluster.MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(not_served("Cluster.MemberRemove"))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(not_served("Cluster.MemberUpdate"))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(not_served("Cluster.MemberPromote"))
    }
}
