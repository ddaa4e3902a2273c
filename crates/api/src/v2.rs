//! The etcd v2 API's wire types: the node and event JSON, and the error codes with etcd v2's
//! own numbers, messages and statuses (which differ from the seed's v1 table in
//! [`crate::error`]: v2's 400 is "watcher cleared", its keyword error is 106).
//!
//! Field order and `omitempty` rules follow etcd's `NodeExtern`, so bodies are byte-for-byte
//! what etcd 3.4 sends with `--enable-v2` (modulo index values).

use serde::{Deserialize, Serialize};

/// A node as v2 shows it (etcd's `NodeExtern`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Absolute key; omitted for the root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// A file's value (also an empty one); omitted for directories and removals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// True for directories.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dir: bool,
    /// Absolute expiry, RFC 3339 with nanoseconds, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Whole seconds left, rounded up; omitted when 0.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ttl: i64,
    /// A directory's children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<Node>>,
    /// Index of the last change; omitted when 0 (the root).
    #[serde(rename = "modifiedIndex", default, skip_serializing_if = "is_zero_u64")]
    pub modified_index: u64,
    /// Index of the creation; omitted when 0 (the root).
    #[serde(rename = "createdIndex", default, skip_serializing_if = "is_zero_u64")]
    pub created_index: u64,
}

/// A v2 answer or watch event: `{"action":..,"node":..,"prevNode":..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `get`, `set`, `create`, `update`, `compareAndSwap`, `delete`, `compareAndDelete`,
    /// `expire`.
    pub action: String,
    /// The node after the change (or read).
    pub node: Node,
    /// The node before the change.
    #[serde(rename = "prevNode", default, skip_serializing_if = "Option::is_none")]
    pub prev_node: Option<Node>,
}

/// Serialises `value` as Go's `encoding/json` does, with the newline its `Encoder` adds:
/// compact, and `<`, `>`, `&`, U+2028 and U+2029 written as `\u003c`, `\u003e`, `\u0026`,
/// `\u2028`, `\u2029` (serde_json writes them as they are).
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .expect("serialising to memory cannot fail");
    out.push(b'\n');
    out
}

/// serde_json's compact output with Go's HTML-safe string escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// etcd v2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Code {
    /// 100.
    KeyNotFound = 100,
    /// 101.
    TestFailed = 101,
    /// 102.
    NotFile = 102,
    /// 104.
    NotDir = 104,
    /// 105.
    NodeExist = 105,
    /// 106.
    KeyIsPreserved = 106,
    /// 107.
    RootReadOnly = 107,
    /// 108.
    DirNotEmpty = 108,
    /// 110.
    Unauthorized = 110,
    /// 200.
    ValueRequired = 200,
    /// 201.
    PrevValueRequired = 201,
    /// 202.
    TtlNaN = 202,
    /// 203.
    IndexNaN = 203,
    /// 209.
    InvalidField = 209,
    /// 210.
    InvalidForm = 210,
    /// 211.
    RefreshValue = 211,
    /// 212.
    RefreshTtlRequired = 212,
    /// 213: the request body or value is larger than allowed (etcd-rs addition, as in v1).
    TooLarge = 213,
    /// 300.
    RaftInternal = 300,
    /// 301.
    LeaderElect = 301,
    /// 400.
    WatcherCleared = 400,
    /// 401.
    EventIndexCleared = 401,
}

impl Code {
    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// etcd v2's message text.
    pub fn message(self) -> &'static str {
        match self {
            Code::KeyNotFound => "Key not found",
            Code::TestFailed => "Compare failed",
            Code::NotFile => "Not a file",
            Code::NotDir => "Not a directory",
            Code::NodeExist => "Key already exists",
            Code::KeyIsPreserved => "The prefix of given key is a keyword in etcd",
            Code::RootReadOnly => "Root is read only",
            Code::DirNotEmpty => "Directory not empty",
            Code::Unauthorized => "The request requires user authentication",
            Code::ValueRequired => "Value is Required in POST form",
            Code::PrevValueRequired => "PrevValue is Required in POST form",
            Code::TtlNaN => "The given TTL in POST form is not a number",
            Code::IndexNaN => "The given index in POST form is not a number",
            Code::InvalidField => "Invalid field",
            Code::InvalidForm => "Invalid POST form",
            Code::RefreshValue => "Value provided on refresh",
            Code::RefreshTtlRequired => "A TTL must be provided on refresh",
            Code::TooLarge => "Request entity too large",
            Code::RaftInternal => "Raft Internal Error",
            Code::LeaderElect => "During Leader Election",
            Code::WatcherCleared => "watcher is cleared due to etcd recovery",
            Code::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// The HTTP status etcd answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            Code::KeyNotFound => 404,
            Code::NotFile | Code::DirNotEmpty => 403,
            Code::Unauthorized => 401,
            Code::TooLarge => 413,
            Code::TestFailed | Code::NodeExist => 412,
            Code::RaftInternal | Code::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// A v2 error: `{"errorCode":N,"message":"...","cause":"...","index":N}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Which error.
    pub code: Code,
    /// What caused it; omitted from the JSON when empty.
    pub cause: String,
    /// The store index when it happened (0 for requests refused before the store).
    pub index: u64,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "errorCode")]
    error_code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cause: &'a str,
    index: u64,
}

impl Error {
    /// An error with a cause, at `index`.
    pub fn new(code: Code, cause: impl Into<String>, index: u64) -> Error {
        Error {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// The JSON body, with etcd's trailing newline.
    pub fn to_json(&self) -> String {
        let body = to_go_json(&ErrorBody {
            error_code: self.code.as_u16(),
            message: self.code.message(),
            cause: &self.cause,
            index: self.index,
        });
        String::from_utf8(body).expect("JSON is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_serialise_in_etcds_order_with_its_omissions() {
        let n = Node {
            key: "/tmp".into(),
            value: Some("x".into()),
            expiration: Some("2026-11-25T00:02:16.307052239Z".into()),
            ttl: 5,
            modified_index: 6,
            created_index: 6,
            ..Node::default()
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"key":"/tmp","value":"x","expiration":"2026-11-25T00:02:16.307052239Z","ttl":5,"modifiedIndex":6,"createdIndex":6}"#
        );
        let root = Node {
            dir: true,
            nodes: Some(vec![Node {
                key: "/d".into(),
                dir: true,
                modified_index: 7,
                created_index: 7,
                ..Node::default()
            }]),
            ..Node::default()
        };
        assert_eq!(
            serde_json::to_string(&root).unwrap(),
            r#"{"dir":true,"nodes":[{"key":"/d","dir":true,"modifiedIndex":7,"createdIndex":7}],}"#
                .replace(",}", "}")
        );
        let empty = Node {
            value: Some(String::new()),
            key: "/e".into(),
            modified_index: 1,
            created_index: 1,
            ..Node::default()
        };
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"key":"/e","value":"","modifiedIndex":1,"createdIndex":1}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_go_does() {
        let e = Event {
            action: "set".into(),
            node: Node {
                key: "/k".into(),
                value: Some("a&b<c>\u{2028}\"é\n".into()),
                ..Node::default()
            },
            prev_node: None,
        };
        assert_eq!(
            String::from_utf8(to_go_json(&e)).unwrap(),
            "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"a\\u0026b\\u003cc\\u003e\\u2028\\\"é\\n\"}}\n"
        );
    }

    #[test]
    fn errors_have_etcds_bytes_and_statuses() {
        let e = Error::new(Code::KeyNotFound, "/nope", 5);
        assert_eq!(
            e.to_json(),
            "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/nope\",\"index\":5}\n"
        );
        assert_eq!(Code::KeyNotFound.http_status(), 404);
        assert_eq!(Code::TestFailed.http_status(), 412);
        assert_eq!(Code::NotFile.http_status(), 403);
        assert_eq!(Code::NotDir.http_status(), 400);
        assert_eq!(Code::NodeExist.http_status(), 412);
        assert_eq!(Code::DirNotEmpty.http_status(), 403);
        assert_eq!(Code::RootReadOnly.http_status(), 400);
        assert_eq!(Code::EventIndexCleared.http_status(), 400);
        assert_eq!(Code::RaftInternal.http_status(), 500);
    }
}
