//! etcd's v3 wire types: the messages of etcd's gRPC API as prost structs, and (behind the
//! `server` and `client` features) the tonic service traits and clients.
//!
//! The `.proto` files in `proto/` are our own, written from etcd's public wire contract:
//! package, service, method, message and field names, numbers and types are etcd 3.6's (a
//! wire-compatible superset of 3.4's), so every etcd v3 client talks to us unchanged.
//! `proto/etcdrs/internal.proto` is ours alone: a v3 write as it travels through the raft log.
//! `proto/grpc/health/v1/health.proto` is gRPC's standard health service, which etcd serves.
//!
//! The Rust code in `src/gen/` is generated and committed (as etcd commits its `rpc.pb.go`):
//! building needs only prost and tonic, no `protoc` and no code generator. After editing a
//! `.proto` file, run `cargo run --manifest-path tools/gen-v3proto/Cargo.toml`; CI runs it
//! with `--check` and fails when the committed code is stale.
//!
//! Every `bytes` field is a [`prost::bytes::Bytes`], so keys and values are shared, not
//! copied, between the keyspace, its history and responses.
//!
//! Deliberately nothing else: no logic, no conversions, no gateway routes (the server's
//! gateway maps JSON with [`FILE_DESCRIPTOR_SET`]).

#![allow(missing_docs, clippy::all)]

/// Every message and service above as an encoded `google.protobuf.FileDescriptorSet`
/// (generated with the code): what the server's JSON gateway maps JSON with.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptors.bin");

/// Key-value records: `KeyValue` and `Event`.
pub mod mvccpb {
    include!("gen/mvccpb.rs");
}

/// v3 auth records.
pub mod authpb {
    include!("gen/authpb.rs");
}

/// etcd's v3 services and their messages.
pub mod etcdserverpb {
    include!("gen/etcdserverpb.rs");
}

/// etcd's lock service.
pub mod v3lockpb {
    include!("gen/v3lockpb.rs");
}

/// etcd's leader election service.
pub mod v3electionpb {
    include!("gen/v3electionpb.rs");
}

/// etcd-rs's own log record of a v3 write.
pub mod etcdrs {
    include!("gen/etcdrs.rs");
}

/// gRPC's standard health service.
pub mod grpc {
    /// `grpc.health`
    pub mod health {
        /// `grpc.health.v1`
        pub mod v1 {
            include!("gen/grpc.health.v1.rs");
        }
    }
}

pub use prost;
