//! The one place that turns errors into HTTP responses.
//!
//! `store::Error` and raft's transient failures become [`ApiError`]s here (one function each),
//! and [`Error`]'s `IntoResponse` sends the status that the error code's table in `etcd-api`
//! names. No other code picks a status for an error.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use etcd_api::{ApiError, ErrorCode};

use crate::raft::Transient;

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
