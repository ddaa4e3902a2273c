//! The log entry envelope: what the data of a raft log entry (and the context of a
//! configuration change) holds, versioned so that entries of other kinds, with byte keys and
//! values, can join the log beside today's commands.
//!
//! ```text
//! version: u8 = 1 | kind: u8 | payload
//! ```
//!
//! Kinds (stable; never renumber or reuse):
//! - `0` — a [`Command`] as JSON (the v1/v2 store's commands, tags as in `command.rs`);
//! - `1` — an etcd v3 request: our protobuf `etcdrs.InternalRequest`
//!   (`crates/v3proto/proto/etcdrs/internal.proto`), whose keys and values are bytes.
//!
//! Entries written before the envelope existed are a bare JSON command; their first byte is
//! always `{`, which no envelope version will ever be, so they decode as kind 0. A kind this
//! version does not know is an error, never skipped: applying some entries and not others
//! would make members diverge.

use etcd_v3proto::etcdrs::InternalRequest;
use prost::Message as _;

use crate::command::Command;

/// The envelope version written now.
pub const VERSION: u8 = 1;

/// Kind `0`: a store [`Command`] as JSON.
pub const KIND_COMMAND: u8 = 0;

/// Kind `1`: an etcd v3 request (protobuf `etcdrs.InternalRequest`).
pub const KIND_V3: u8 = 1;

/// Why entry bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Empty, or a version this release does not know.
    #[error("not a log entry of a version this release knows (first byte {0:?})")]
    Version(Option<u8>),
    /// A kind this release does not know.
    #[error("a log entry of kind {0}, which this release does not know")]
    Kind(u8),
    /// The command's JSON does not parse.
    #[error("the command does not decode: {0}")]
    Json(#[from] serde_json::Error),
    /// The v3 request's protobuf does not parse.
    #[error("the v3 request does not decode: {0}")]
    Proto(#[from] prost::DecodeError),
}

/// What a log entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A v1/v2 store command.
    Command(Command),
    /// An etcd v3 request.
    V3(InternalRequest),
}

impl Entry {
    /// Decodes log entry bytes of any kind this release knows.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        match open(bytes)? {
            (KIND_COMMAND, payload) => Ok(Entry::Command(Command::decode(payload)?)),
            (KIND_V3, payload) => Ok(Entry::V3(InternalRequest::decode(payload)?)),
            (kind, _) => Err(EntryError::Kind(kind)),
        }
    }
}

/// A v3 request as log entry bytes (in the envelope).
pub fn v3_entry(req: &InternalRequest) -> Vec<u8> {
    seal(KIND_V3, &req.encode_to_vec())
}

/// Wraps `payload` of `kind` in the envelope.
pub fn seal(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(payload);
    out
}

/// The kind and payload of entry bytes (a bare JSON command of an earlier release is kind 0).
pub fn open(bytes: &[u8]) -> Result<(u8, &[u8]), EntryError> {
    match bytes {
        [b'{', ..] => Ok((KIND_COMMAND, bytes)),
        [VERSION, kind, payload @ ..] => Ok((*kind, payload)),
        _ => Err(EntryError::Version(bytes.first().copied())),
    }
}

impl Command {
    /// The command as log entry bytes (in the envelope).
    pub fn to_entry(&self) -> Vec<u8> {
        seal(KIND_COMMAND, &self.encode())
    }

    /// The command that log entry bytes hold (enveloped, or bare JSON from an earlier release).
    pub fn from_entry(bytes: &[u8]) -> Result<Command, EntryError> {
        match open(bytes)? {
            (KIND_COMMAND, payload) => Ok(Command::decode(payload)?),
            (kind, _) => Err(EntryError::Kind(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_in_the_envelope_and_bare_json_still_decodes() {
        let c = Command::Delete { key: "/k".into() };
        let entry = c.to_entry();
        assert_eq!(&entry[..2], &[VERSION, KIND_COMMAND]);
        assert_eq!(&entry[2..], c.encode().as_slice());
        assert_eq!(Command::from_entry(&entry).unwrap(), c);
        // What the release before the envelope wrote.
        assert_eq!(
            Command::from_entry(br#"{"op":"etcd:delete","key":"/k"}"#).unwrap(),
            c
        );
    }

    #[test]
    fn unknown_versions_and_kinds_are_errors() {
        assert!(matches!(
            Command::from_entry(&[]),
            Err(EntryError::Version(None))
        ));
        assert!(matches!(
            Command::from_entry(&[2, 0, b'{']),
            Err(EntryError::Version(Some(2)))
        ));
        assert!(matches!(
            Command::from_entry(&seal(KIND_V3, b"\x0a\x03foo")),
            Err(EntryError::Kind(KIND_V3))
        ));
        assert!(matches!(
            Command::from_entry(&seal(KIND_COMMAND, b"{nope")),
            Err(EntryError::Json(_))
        ));
        // v3 requests decode as such; damaged ones are errors.
        let req = InternalRequest {
            time: 7,
            ..Default::default()
        };
        assert_eq!(Entry::decode(&v3_entry(&req)).unwrap(), Entry::V3(req));
        assert!(matches!(
            Entry::decode(&seal(KIND_V3, b"\x0a\xff")),
            Err(EntryError::Proto(_))
        ));
        assert!(matches!(
            Entry::decode(&seal(9, b"")),
            Err(EntryError::Kind(9))
        ));
        // Byte payloads pass through untouched.
        let bytes = [0u8, 255, 1, 2];
        assert_eq!(open(&seal(KIND_V3, &bytes)).unwrap(), (KIND_V3, &bytes[..]));
    }
}
