//! The v3 (gRPC) error table: every error etcd's v3 API answers with, its gRPC status code and
//! its exact message. Clients branch on both (etcd's `clientv3` retries only `Unavailable`,
//! surfaces `OutOfRange` compactions to Kubernetes, re-authenticates on `invalid auth token`),
//! so neither may drift from etcd's (`etcdserver/api/v3rpc/rpctypes/error.go`).
//!
//! This crate knows no gRPC library: a code is the number of the gRPC status, and the server
//! turns it into a `tonic::Status` in one place.

/// The etcd server version etcd-rs answers as (`Status.version`, `GET /version`): a 3.5
/// release, so that clients that pick features by version (Kubernetes' watch progress
/// requests, HA managers choosing v3) treat it as current.
pub const ETCD_VERSION: &str = "3.5.17";

/// The cluster version reported beside it.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";

/// gRPC status codes, as numbered by the gRPC protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// The operation was cancelled.
    Canceled = 1,
    /// An error the server gives no code of its own.
    Unknown = 2,
    /// The client sent something the server cannot take.
    InvalidArgument = 3,
    /// Something looked for does not exist.
    NotFound = 5,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A limit was reached.
    ResourceExhausted = 8,
    /// The system is not in the state the operation needs.
    FailedPrecondition = 9,
    /// A value is outside the range served (compacted or future revisions).
    OutOfRange = 11,
    /// The service cannot serve now; the client may try again.
    Unavailable = 14,
    /// Unrecoverable data loss.
    DataLoss = 15,
    /// No valid credentials.
    Unauthenticated = 16,
}

/// An error of etcd's v3 API. `Display` gives the exact message clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum V3Error {
    /// An empty key where one is needed.
    #[error("etcdserver: key is not provided")]
    KeyNotProvided,
    /// `ignore_value`/`ignore_lease` on a key that does not exist, or an empty txn op.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// More operations in one txn level than `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A key written twice in one txn branch.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A request bigger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A read or compaction below the compaction revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction above the current revision.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A lease TTL above the maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// The lease named does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease granted with an ID that is taken.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// The member named does not exist.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// A member added or updated with another member's peer URL.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// A member added with peer URLs that do not parse.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// A promotion of a member that is not a learner.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// A member change that would leave fewer started members than a quorum. etcd 3.4 sends
    /// it under `Unknown` (it maps the error to its client-side form).
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// The space quota is used up.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// Too many requests in flight.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// No leader is known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The leader changed while the request was in flight.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The member is stopping.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// A request this member cannot serve (a newer member's).
    #[error("etcdserver: not capable")]
    NotCapable,
    /// Sent to a member that must be the leader for it.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// MoveLeader to a member that cannot lead (unknown, or a learner).
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// The request was not committed in time; its outcome is unknown.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Learners serve only status and serializable reads.
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// A CORRUPT alarm is active: the members' keyspaces differ.
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// The caller may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// The auth token is not valid.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// AuthEnable without a `root` user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while the `root` user lacks the `root` role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of a user that exists.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExists,
    /// An empty user name, or (with auth on) a request that names no user.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// The user named does not exist.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of a role that exists.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExists,
    /// The role named does not exist.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// An empty role name.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Authenticate with an unknown user or a wrong password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// Authenticate with a password for a user created without one. etcd 3.4 has no gRPC
    /// error of its own for it: the message is the auth store's, under `Unknown`.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// UserRevokeRole of a role the user does not have.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticate while auth is off.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// Deleting `root`, its role, or taking the role from it, while auth is on.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A second learner (etcd allows one).
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    /// A promotion of a learner whose log is not close enough to the leader's.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// The request was checked against auth state that has changed since.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
}

impl V3Error {
    /// The gRPC status code etcd answers this error with.
    pub fn code(&self) -> Code {
        use V3Error::*;
        match self {
            KeyNotProvided | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps
            | DuplicateKey | RequestTooLarge | MemberBadUrls | UserEmpty | RoleEmpty
            | AuthFailed | InvalidAuthMgmt | AuthOldRevision => Code::InvalidArgument,
            Compacted | FutureRevision | LeaseTtlTooLarge => Code::OutOfRange,
            LeaseNotFound | MemberNotFound => Code::NotFound,
            LeaseExists | NotLeader | BadLeaderTransferee | PeerUrlExists | MemberNotLearner
            | RootUserNotExist | RootRoleNotExist | UserAlreadyExists | UserNotFound
            | RoleAlreadyExists | RoleNotFound | RoleNotGranted | PermissionNotGranted
            | AuthNotEnabled | TooManyLearners | LearnerNotReady => Code::FailedPrecondition,
            NotEnoughStartedMembers | NoPasswordUser => Code::Unknown,
            NoSpace | TooManyRequests => Code::ResourceExhausted,
            NoLeader | LeaderChanged | Stopped | NotCapable | Timeout | NotSupportedForLearner => {
                Code::Unavailable
            }
            PermissionDenied => Code::PermissionDenied,
            Corrupt => Code::DataLoss,
            InvalidAuthToken => Code::Unauthenticated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_etcds() {
        let table = [
            (
                V3Error::KeyNotProvided,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                V3Error::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                V3Error::FutureRevision,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                V3Error::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                V3Error::Corrupt,
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
            (
                V3Error::BadLeaderTransferee,
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            (
                V3Error::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                V3Error::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                V3Error::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                V3Error::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                V3Error::AuthOldRevision,
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
            ),
            (
                V3Error::UserNotFound,
                Code::FailedPrecondition,
                "etcdserver: user name not found",
            ),
            (
                V3Error::InvalidAuthToken,
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
            (
                V3Error::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
        ];
        for (e, code, message) in table {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.to_string(), message);
        }
    }
}
