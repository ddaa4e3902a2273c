//! The etcd-rs node: configuration, the raft driver, durable log and snapshots, and the HTTP
//! API. `server::run` composes them. Front-ends (`http`, later gRPC) reach the node only
//! through the door, `node::Node`, and change membership only through `cluster`.

pub mod clock;
pub mod cluster;
pub mod compactor;
pub mod config;
pub mod corrupt;
pub mod durable;
pub mod etcd_snapshot;
/// Go's parsing and printing where etcd's behaviour depends on it (in `etcd-api`, shared
/// with etcdctl).
pub use etcd_api::gocompat;
pub mod grpc;
pub mod http;
pub mod lockfile;
pub mod logger;
pub mod metrics;
pub mod node;
pub mod raft;
pub mod server;
pub mod snap;
pub mod systemd;
pub mod tls;
pub mod tokens;
pub mod transport;
pub mod values;
pub mod wal;
