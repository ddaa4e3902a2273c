//! `grpc.health.v1.Health`, which etcd registers too: the server as a whole (service `""`)
//! is SERVING while this member knows a leader, NOT_SERVING otherwise. Other service names
//! are unknown (`NotFound`, as gRPC's own health server answers).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use etcd_v3proto::grpc::health::v1::health_check_response::ServingStatus;
use etcd_v3proto::grpc::health::v1::health_server;
use etcd_v3proto::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse};
use futures_util::Stream;
use tonic::{Request, Response, Status};

use super::Ctx;

/// How often a health watch looks for a change.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The health service.
pub struct Health(pub Arc<Ctx>);

impl Health {
    fn status(ctx: &Ctx, service: &str) -> Result<ServingStatus, Status> {
        if !service.is_empty() {
            return Err(Status::not_found("unknown service"));
        }
        Ok(if ctx.node.leader_id().is_some() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl health_server::Health for Health {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let status = Health::status(&self.0, &req.into_inner().service)?;
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = WatchStream;

    /// The status now, then each change.
    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = req.into_inner().service;
        let first = Health::status(&self.0, &service)?;
        let ctx = self.0.clone();
        let stream = futures_util::stream::unfold(
            (ctx, None::<ServingStatus>, Some(first)),
            move |(ctx, last, mut now)| async move {
                loop {
                    let status = match now.take() {
                        Some(s) => s,
                        None => {
                            tokio::time::sleep(WATCH_INTERVAL).await;
                            Health::status(&ctx, "").ok()?
                        }
                    };
                    if last != Some(status) {
                        let resp = HealthCheckResponse {
                            status: status as i32,
                        };
                        return Some((Ok(resp), (ctx, Some(status), None)));
                    }
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
