//! The Maintenance service: Status, Hash, HashKV, MoveLeader, Defragment (nothing to do
//! here) and Alarm (list, raise, clear, through the log; see `quota.rs` for NOSPACE).
//! Snapshot and Downgrade are not served yet.

use std::sync::Arc;

use etcd_mvcc::Answer;
use etcd_v3proto::etcdrs::internal_request::Request as Internal;
use etcd_v3proto::etcdserverpb::maintenance_server;
use etcd_v3proto::etcdserverpb::*;
use tonic::{Request, Response, Status};

use super::error::{not_served, status};
use super::{Ctx, ETCD_VERSION};

/// How long MoveLeader waits for the target to take over (etcd waits as long as the
/// client's deadline; etcdctl's is 5 s).
const TRANSFER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The Maintenance service.
pub struct Maintenance(pub Arc<Ctx>);

/// An alarm as etcd writes it in Status' errors (and etcdctl prints it): gogoproto's compact
/// text form, trailing space included.
fn alarm_text(a: &AlarmMember) -> String {
    let name = AlarmType::try_from(a.alarm)
        .map_or_else(|_| a.alarm.to_string(), |t| t.as_str_name().to_string());
    format!("memberID:{} alarm:{name} ", a.member_id)
}

#[tonic::async_trait]
impl maintenance_server::Maintenance for Maintenance {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let node = &self.0.node;
        let (size, revision, alarms) =
            node.read(|s| (s.v3().size() as i64, s.v3().revision(), s.alarms()));
        let applied = node.applied();
        Ok(Response::new(StatusResponse {
            header: Some(self.0.header(revision)),
            version: ETCD_VERSION.to_string(),
            db_size: size,
            leader: node.leader_id().unwrap_or(0),
            raft_index: applied,
            raft_term: node.term(),
            raft_applied_index: applied,
            // etcd 3.4 lists the active alarms here, in their protobuf text form.
            errors: alarms.iter().map(alarm_text).collect(),
            db_size_in_use: size,
            is_learner: self.0.node.is_learner(),
            storage_version: String::new(),
            db_size_quota: self.0.quota.map_or(0, |q| q as i64),
            downgrade_info: None,
        }))
    }

    async fn hash(&self, req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.0.check_admin(&req).await?;
        let h = crate::corrupt::local_hash(&self.0.node, 0)
            .await
            .map_err(status)?;
        Ok(Response::new(HashResponse {
            header: Some(self.0.header(h.revision)),
            hash: h.hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        self.0.check_admin(&req).await?;
        let rev = req.into_inner().revision;
        let h = crate::corrupt::local_hash(&self.0.node, rev)
            .await
            .map_err(status)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.0.header(h.revision)),
            hash: h.hash,
            compact_revision: h.compact_revision(),
            // The revision hashed: the one asked for, or the current one.
            hash_revision: if rev > 0 { rev } else { h.revision },
        }))
    }

    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let caller = self.0.caller(&req).await?;
        match self
            .0
            .write(&caller, Internal::Alarm(req.into_inner()))
            .await?
        {
            // etcd's answer carries no header.
            Answer::Alarm(resp) => Ok(Response::new(AlarmResponse {
                header: None,
                alarms: resp.alarms,
            })),
            _ => Err(Status::internal("etcd-rs: mismatched answer")),
        }
    }

    /// Nothing to defragment: the keyspace lives in memory, snapshots are written whole, the
    /// WAL is cut at each snapshot, and value files are rewritten as compaction frees them.
    /// Answered as etcd answers a finished defragmentation (an empty response).
    async fn defragment(
        &self,
        req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        self.0.check_admin(&req).await?;
        Ok(Response::new(DefragmentResponse::default()))
    }

    type SnapshotStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<SnapshotResponse, Status>> + Send>,
    >;

    /// The whole v3 state as etcd's backend database (`crate::etcd_snapshot`), streamed as
    /// etcd 3.4 streams it: 32 KiB blobs with the bytes remaining, then one blob holding the
    /// SHA-256 of everything sent. The snapshot is the state at one applied index; it is
    /// written to an unnamed temporary file first, so that memory holds one blob at a time.
    async fn snapshot(
        &self,
        req: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.0.check_admin(&req).await?;
        let snap = self.0.node.read(|s| s.snapshot());
        let file = tokio::task::spawn_blocking(move || crate::etcd_snapshot::write_db(&snap))
            .await
            .map_err(|e| Status::internal(format!("etcd-rs: snapshot: {e}")))?
            .map_err(|e| Status::internal(format!("etcd-rs: snapshot: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || crate::etcd_snapshot::stream(file, &tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        let to = req.into_inner().target_id;
        let node = &self.0.node;
        match node.move_leader(to, self.0.tick, TRANSFER_TIMEOUT).await {
            // As etcd's: an empty answer.
            Ok(true) => Ok(Response::new(MoveLeaderResponse::default())),
            // etcd's text for it, under `Unknown` (it is not among etcd's gRPC errors).
            Ok(false) => Err(Status::unknown(
                "etcdserver: request timed out, leader transfer took too long",
            )),
            Err(e) => Err(status(e)),
        }
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(not_served("Maintenance.Downgrade"))
    }
}
