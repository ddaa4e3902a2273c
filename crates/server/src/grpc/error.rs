//! The one place etcd's v3 errors and the node's transient failures become gRPC statuses.
//! Codes and messages come from the table in `etcd_api::v3`.

use etcd_api::v3::V3Error;
use tonic::{Code, Status};

use crate::node::Transient;

/// The status clients see for an etcd error.
pub fn status(e: V3Error) -> Status {
    Status::new(Code::from_i32(e.code() as i32), e.to_string())
}

/// The status for a write or linearizable read that could not complete: etcd's `no leader`
/// when none is known, otherwise `request timed out` (the outcome is unknown to the client).
pub fn transient(t: Transient, leader_known: bool) -> Status {
    status(match t {
        Transient::ShuttingDown => V3Error::Stopped,
        Transient::Timeout(_) if !leader_known => V3Error::NoLeader,
        Transient::Timeout(_) | Transient::Refused(_) => V3Error::Timeout,
    })
}

/// For RPCs of a service that this release does not serve yet.
pub fn not_served(what: &str) -> Status {
    Status::unimplemented(format!("etcd-rs does not serve {what} yet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_errors_keep_their_code_and_exact_message() {
        let s = status(V3Error::Compacted);
        assert_eq!(s.code(), Code::OutOfRange);
        assert_eq!(
            s.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        let s = transient(Transient::Timeout(std::time::Duration::from_secs(5)), false);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s = transient(Transient::ShuttingDown, true);
        assert_eq!(s.message(), "etcdserver: server stopped");
    }
}
