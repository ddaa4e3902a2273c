//! The one place that turns errors into HTTP responses.
//!
//! Request errors ([`RequestError`], found before any API gave the request meaning),
//! `store::Error` and raft's transient failures become [`ApiError`]s (v1) or v2 errors here
//! (once per API), and the `IntoResponse` impls send the status that the code
//! tables in `etcd-api` name. No other code picks a status for an error.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::v2::{self, Code};
use etcd_api::{ApiError, ErrorCode};

use crate::node::Transient;

/// Why a request could not be read (body, form, key path), before any API gave it meaning.
/// Each API maps it once to its own error (`From` below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What went wrong.
    pub kind: RequestErrorKind,
    /// For the answer's `cause`.
    pub cause: String,
}

/// The kinds of [`RequestError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// The body is larger than the limit.
    TooLarge,
    /// The body or form cannot be read.
    Malformed,
    /// The key is longer than the limit.
    KeyTooLong,
}

impl RequestError {
    /// An error of `kind`.
    pub fn new(kind: RequestErrorKind, cause: impl Into<String>) -> RequestError {
        RequestError {
            kind,
            cause: cause.into(),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Error {
        let code = match e.kind {
            RequestErrorKind::TooLarge => ErrorCode::TooLarge,
            RequestErrorKind::Malformed => ErrorCode::InvalidForm,
            RequestErrorKind::KeyTooLong => ErrorCode::InvalidField,
        };
        Error::new(code, e.cause)
    }
}

impl From<RequestError> for V2Error {
    fn from(e: RequestError) -> V2Error {
        let code = match e.kind {
            RequestErrorKind::TooLarge => Code::TooLarge,
            RequestErrorKind::Malformed => Code::InvalidForm,
            RequestErrorKind::KeyTooLong => Code::InvalidField,
        };
        V2Error::request(code, e.cause)
    }
}

/// An API error on its way to the client.
#[derive(Debug)]
pub struct Error(pub ApiError);

impl Error {
    /// An error with a cause.
    pub fn new(code: ErrorCode, cause: impl Into<String>) -> Error {
        Error(ApiError::new(code, cause))
    }
}

impl From<etcd_store::Error> for Error {
    fn from(e: etcd_store::Error) -> Error {
        use etcd_store::Error as S;
        Error(match e {
            S::KeyNotFound(key) => ApiError::new(ErrorCode::KeyNotFound, key),
            S::TestFailed {
                current,
                prev_value,
            } => ApiError::new(
                ErrorCode::TestFailed,
                format!("TestAndSet: {current}!={prev_value}"),
            ),
            S::NotFile(key) => ApiError::new(ErrorCode::NotFile, key),
            S::Keyword(op) => ApiError::new(ErrorCode::KeywordPrefix, op),
            // v2 outcomes, should a v1 request meet them: the nearest v1 code.
            S::NotDir(key) | S::NodeExist(key) | S::DirNotEmpty(key) => {
                ApiError::new(ErrorCode::NotFile, key)
            }
            S::RootReadOnly => ApiError::new(ErrorCode::NotFile, "/"),
            S::CompareFailed(cause) => ApiError::new(ErrorCode::TestFailed, cause),
            S::Reserved(key) => ApiError::new(ErrorCode::KeywordPrefix, key),
            S::Auth { message, .. } => ApiError::new(ErrorCode::Unauthorized, message),
            S::HistoryCleared { first, requested } => ApiError::new(
                ErrorCode::EventIndexCleared,
                format!("the requested history has been cleared [{first}/{requested}]"),
            ),
        })
    }
}

impl From<Transient> for Error {
    fn from(t: Transient) -> Error {
        Error::new(ErrorCode::RaftInternal, t.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .expect("the code table holds valid statuses");
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_json(),
        )
            .into_response()
    }
}

/// A v2 API error on its way to the client (`{"errorCode":..,"index":..}`, v2's statuses).
#[derive(Debug)]
pub struct V2Error(pub v2::Error);

impl V2Error {
    /// An error found before the store was asked (etcd sends index 0 for these).
    pub fn request(code: Code, cause: impl Into<String>) -> V2Error {
        V2Error(v2::Error::new(code, cause, 0))
    }

    /// A store error, at the store's `index`.
    pub fn store(e: etcd_store::Error, index: u64) -> V2Error {
        use etcd_store::Error as S;
        let (code, cause) = match e {
            S::KeyNotFound(key) => (Code::KeyNotFound, key),
            S::TestFailed {
                current,
                prev_value,
            } => (Code::TestFailed, format!("[{prev_value} != {current}]")),
            S::CompareFailed(cause) => (Code::TestFailed, cause),
            S::NotFile(key) => (Code::NotFile, key),
            S::NotDir(key) => (Code::NotDir, key),
            S::NodeExist(key) => (Code::NodeExist, key),
            S::RootReadOnly => (Code::RootReadOnly, "/".to_string()),
            S::DirNotEmpty(key) => (Code::DirNotEmpty, key),
            S::Reserved(key) => (Code::KeyIsPreserved, key),
            S::Keyword(op) => (Code::KeyIsPreserved, op.to_string()),
            S::Auth { message, .. } => (Code::Unauthorized, message),
            S::HistoryCleared { first, requested } => (
                Code::EventIndexCleared,
                format!("the requested history has been cleared [{first}/{requested}]"),
            ),
        };
        V2Error(v2::Error::new(code, cause, index))
    }
}

impl From<Transient> for V2Error {
    fn from(t: Transient) -> V2Error {
        V2Error::request(Code::RaftInternal, t.to_string())
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .expect("the code table holds valid statuses");
        (
            status,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (
                    header::HeaderName::from_static("x-etcd-index"),
                    self.0.index.to_string(),
                ),
            ],
            self.0.to_json(),
        )
            .into_response()
    }
}

impl Error {
    /// v1's answer to a request that auth does not allow.
    pub fn unauthorized() -> Error {
        Error::new(ErrorCode::Unauthorized, "Insufficient credentials")
    }
}

impl V2Error {
    /// v2's answer to a key request that auth does not allow (etcd's 401/110).
    pub fn unauthorized() -> V2Error {
        V2Error::request(Code::Unauthorized, "Insufficient credentials")
    }
}
