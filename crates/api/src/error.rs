//! Error codes, their exact messages and HTTP statuses, and the error JSON body.
//!
//! Numbers and texts follow the seed's v0.1 `error.go` (spec section 3), not etcd v2's, where
//! they differ. Codes 209, 210 and 213 are etcd-rs additions for limits the seed did not have;
//! they reuse etcd v2's numbers where v2 has the same meaning. This table is the only place that
//! decides an HTTP status for an error.

use serde::{Deserialize, Serialize};

/// An etcd error code, as sent in `errorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 100: the key does not exist.
    KeyNotFound = 100,
    /// 101: test-and-set found another value.
    TestFailed = 101,
    /// 102: the key is a directory, below a file, or `/`.
    NotFile = 102,
    /// 103: a join beyond `-maxsize`.
    NoMoreMachine = 103,
    /// 110: auth is on and the credentials do not allow the request (etcd-rs addition,
    /// etcd v2's number; v1 requests obey v2 auth too).
    Unauthorized = 110,
    /// 200: `value` missing or empty.
    ValueRequired = 200,
    /// 202: `ttl` is not a base-10 integer.
    TtlNaN = 202,
    /// 203: watch `index` is not an unsigned integer.
    IndexNaN = 203,
    /// 209: a field is out of bounds (key too long). etcd-rs addition, v2's number.
    InvalidField = 209,
    /// 210: the form could not be parsed. etcd-rs addition, v2's number.
    InvalidForm = 210,
    /// 213: the request body or value is larger than allowed. etcd-rs addition.
    TooLarge = 213,
    /// 300: the write could not be committed (no leader, no quorum, timeout).
    RaftInternal = 300,
    /// 301: there is no leader right now.
    LeaderElect = 301,
    /// 400: the key's first segment is reserved (`_etcd`).
    KeywordPrefix = 400,
    /// 401: the watch index is older than the kept history.
    EventIndexCleared = 401,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::KeyNotFound,
        ErrorCode::TestFailed,
        ErrorCode::NotFile,
        ErrorCode::NoMoreMachine,
        ErrorCode::Unauthorized,
        ErrorCode::ValueRequired,
        ErrorCode::TtlNaN,
        ErrorCode::IndexNaN,
        ErrorCode::InvalidField,
        ErrorCode::InvalidForm,
        ErrorCode::TooLarge,
        ErrorCode::RaftInternal,
        ErrorCode::LeaderElect,
        ErrorCode::KeywordPrefix,
        ErrorCode::EventIndexCleared,
    ];

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_u16() == n)
    }

    /// The exact message text of the seed.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "Key Not Found",
            ErrorCode::TestFailed => "The given PrevValue is not equal to the value of the key",
            ErrorCode::NotFile => "Not A File",
            ErrorCode::NoMoreMachine => "Reached the max number of machines in the cluster",
            ErrorCode::Unauthorized => "The request requires user authentication",
            ErrorCode::ValueRequired => "Value is Required in POST form",
            ErrorCode::TtlNaN => "The given TTL in POST form is not a number",
            ErrorCode::IndexNaN => "The given index in POST form is not a number",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidForm => "Invalid POST form",
            ErrorCode::TooLarge => "Request entity too large",
            ErrorCode::RaftInternal => "Raft Internal Error",
            ErrorCode::LeaderElect => "During Leader Election",
            ErrorCode::KeywordPrefix => "The prefix of the given key is a keyword in etcd",
            ErrorCode::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::KeyNotFound => 404,
            ErrorCode::Unauthorized => 401,
            ErrorCode::TooLarge => 413,
            ErrorCode::RaftInternal | ErrorCode::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// An error as sent to clients: `{"errorCode":N,"message":"...","cause":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Which error.
    pub code: ErrorCode,
    /// What caused it (a key, a command name, a reason); omitted from JSON when empty.
    pub cause: String,
}

/// The JSON shape of [`ApiError`], field order as the seed.
#[derive(Serialize, Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode")]
    error_code: u16,
    message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cause: String,
}

impl ApiError {
    /// An error with a cause.
    pub fn new(code: ErrorCode, cause: impl Into<String>) -> ApiError {
        ApiError {
            code,
            cause: cause.into(),
        }
    }

    /// The compact JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error_code: self.code.as_u16(),
            message: self.code.message().to_string(),
            cause: self.cause.clone(),
        })
        .expect("serialising a struct of strings cannot fail")
    }

    /// Parses an error body sent by a server. Returns `None` for bodies that are not one, or
    /// whose code is unknown.
    pub fn from_json(body: &[u8]) -> Option<ApiError> {
        let b: ErrorBody = serde_json::from_slice(body).ok()?;
        Some(ApiError {
            code: ErrorCode::from_u16(b.error_code)?,
            cause: b.cause,
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_u16(), self.code.message())?;
        if !self.cause.is_empty() {
            write!(f, " ({})", self.cause)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_matches_the_seed_bytes() {
        let e = ApiError::new(ErrorCode::KeyNotFound, "/foo");
        assert_eq!(
            e.to_json(),
            r#"{"errorCode":100,"message":"Key Not Found","cause":"/foo"}"#
        );
    }

    #[test]
    fn empty_cause_is_omitted() {
        let e = ApiError::new(ErrorCode::LeaderElect, "");
        assert_eq!(
            e.to_json(),
            r#"{"errorCode":301,"message":"During Leader Election"}"#
        );
    }

    #[test]
    fn statuses_follow_the_spec_table() {
        assert_eq!(ErrorCode::KeyNotFound.http_status(), 404);
        assert_eq!(ErrorCode::TestFailed.http_status(), 400);
        assert_eq!(ErrorCode::RaftInternal.http_status(), 500);
        assert_eq!(ErrorCode::LeaderElect.http_status(), 500);
        assert_eq!(ErrorCode::EventIndexCleared.http_status(), 400);
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
    }

    #[test]
    fn json_round_trips() {
        for code in ErrorCode::ALL {
            let e = ApiError::new(code, "c");
            assert_eq!(ApiError::from_json(e.to_json().as_bytes()), Some(e));
        }
    }
}
