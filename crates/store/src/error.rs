//! Deterministic outcomes of store operations that are answered to clients with an error code.
//! Every variant is *deterministic*: the same command on the same state gives the same error on
//! every member, so it is safe to return to the client (never a reason to stop the node).

/// A store error. The server maps each variant to the seed's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The key does not exist (code 100). Carries the key.
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// Test-and-set found another value (code 101).
    #[error("test failed: {current}!={prev_value}")]
    TestFailed {
        /// The value the key holds.
        current: String,
        /// The value the client expected.
        prev_value: String,
    },
    /// The key is a directory, lies below a file, or is `/` (code 102). Carries the key.
    #[error("not a file: {0}")]
    NotFile(String),
    /// A file lies on the key's path (v2 code 104). Carries the file's key.
    #[error("not a directory: {0}")]
    NotDir(String),
    /// The key exists and the write required it not to (v2 code 105). Carries the key.
    #[error("key already exists: {0}")]
    NodeExist(String),
    /// A write or delete of `/` (v2 code 107).
    #[error("root is read only")]
    RootReadOnly,
    /// A directory delete without `recursive` found children (v2 code 108). Carries the key.
    #[error("directory not empty: {0}")]
    DirNotEmpty(String),
    /// A v2 compare-and-swap or compare-and-delete failed (v2 code 101). Carries etcd's
    /// cause text, e.g. `[two != one]`.
    #[error("compare failed: {0}")]
    CompareFailed(String),
    /// A v2 write under the reserved prefix (v2 code 106). Carries the key.
    #[error("reserved key: {0}")]
    Reserved(String),
    /// An auth command was refused: HTTP status and etcd's message.
    #[error("auth: {message}")]
    Auth {
        /// 400, 403, 404 or 409.
        status: u16,
        /// What is wrong.
        message: String,
    },
    /// The key is under a reserved prefix (code 400). Carries the operation name.
    #[error("reserved key prefix ({0})")]
    Keyword(&'static str),
    /// A watch asked for history that has been dropped (code 401).
    #[error("history cleared: first kept index is {first}, requested {requested}")]
    HistoryCleared {
        /// The oldest index still answerable.
        first: u64,
        /// The index asked for.
        requested: u64,
    },
}

/// Result with a store [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
