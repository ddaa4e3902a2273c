//! Wire types of etcd-rs's HTTP APIs, shared by the server and the client.
//!
//! This crate owns the *contract*: the JSON bodies clients see, the error codes with their exact
//! messages and HTTP statuses, and the time format. It depends on no other crate of ours and on
//! nothing async, so a client can use it without pulling in the server.
//!
//! The v1 contract is `shared/spec/v1-api.md`; field order and spelling follow the seed
//! (`prevValue`, `newKey`, actions `"SET"`/`"GET"`/`"DELETE"`).

pub mod error;
pub mod gocompat;
pub mod response;
pub mod time;
pub mod v2;
pub mod v3;

pub use error::{ApiError, ErrorCode};
pub use response::{Action, KeyResponse};
