//! The requests each workload sends, in the v1 or the v2 flavour of the HTTP API (the v3
//! flavour speaks gRPC: `v3.rs`).
//!
//! Everything a worker sends is built once, before the clock starts: key paths, and the form
//! bodies as shared [`Bytes`] (cloning one is a reference count, not a copy).

use etcd_client::{Bytes, Method};

/// Which HTTP API to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// `/v1/keys` and `/v1/watch` (etcd v0.1, etcd-rs).
    V1,
    /// `/v2/keys` (etcd 2.x, etcd 3.x with `--enable-v2`, etcd-rs).
    V2,
    /// etcd's v3 API over gRPC (etcd 3.x, etcd-rs).
    V3,
}

impl Api {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Api::V1 => "v1",
            Api::V2 => "v2",
            Api::V3 => "v3",
        }
    }

    /// The method that sets a key.
    pub fn put_method(self) -> Method {
        match self {
            Api::V1 => Method::POST,
            Api::V2 | Api::V3 => Method::PUT,
        }
    }

    /// The path of a key (`key` starts with `/`).
    pub fn key_path(self, key: &str) -> String {
        match self {
            Api::V1 => format!("/v1/keys{key}"),
            Api::V2 => format!("/v2/keys{key}"),
            // v3 keys are the key bytes themselves.
            Api::V3 => key.to_string(),
        }
    }

    /// The query that makes a read linearizable.
    pub fn consistent_query(self) -> &'static str {
        match self {
            Api::V1 => "?consistent=true",
            Api::V2 => "?quorum=true",
            Api::V3 => "",
        }
    }

    /// A long poll for the first change of `key` at or after `index`: method, path, form.
    pub fn watch_request(self, key: &str, index: u64) -> (Method, String, Option<Bytes>) {
        match self {
            Api::V1 => (
                Method::POST,
                format!("/v1/watch{key}"),
                Some(Bytes::from(format!("index={index}"))),
            ),
            Api::V2 | Api::V3 => (
                Method::GET,
                format!("/v2/keys{key}?wait=true&waitIndex={index}"),
                None,
            ),
        }
    }

    /// The index of the change a write or watch answer describes.
    pub fn event_index(self, body: &[u8]) -> Option<u64> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        match self {
            Api::V1 => v.get("index")?.as_u64(),
            Api::V2 => v.get("node")?.get("modifiedIndex")?.as_u64(),
            Api::V3 => None,
        }
    }
}

/// A value of `size` bytes that needs no URL escaping, distinct per `seed`.
pub fn value(size: usize, seed: u8) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size)
        .map(|i| ALPHABET[(i + seed as usize * 7) % ALPHABET.len()] as char)
        .collect()
}

/// `value=V` as a form body.
pub fn set_form(value: &str) -> Bytes {
    Bytes::from(format!("value={value}"))
}

/// A test-and-set form body: set to `new` if the value is `old`.
pub fn cas_form(old: &str, new: &str) -> Bytes {
    Bytes::from(format!("value={new}&prevValue={old}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_size_asked_and_differ_by_seed() {
        let a = value(256, 0);
        let b = value(256, 1);
        assert_eq!(a.len(), 256);
        assert_eq!(b.len(), 256);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn event_index_reads_each_flavour() {
        let v1 = br#"{"action":"SET","key":"/a","value":"1","newKey":true,"index":42}"#;
        let v2 = br#"{"action":"set","node":{"key":"/a","value":"1","modifiedIndex":43,"createdIndex":43}}"#;
        assert_eq!(Api::V1.event_index(v1), Some(42));
        assert_eq!(Api::V2.event_index(v2), Some(43));
        assert_eq!(Api::V2.event_index(v1), None);
        assert_eq!(Api::V1.event_index(b"not json"), None);
    }

    #[test]
    fn requests_per_flavour() {
        assert_eq!(Api::V1.key_path("/b/1"), "/v1/keys/b/1");
        assert_eq!(Api::V2.key_path("/b/1"), "/v2/keys/b/1");
        assert_eq!(Api::V1.put_method(), Method::POST);
        assert_eq!(Api::V2.put_method(), Method::PUT);
        let (m, p, f) = Api::V2.watch_request("/w", 7);
        assert_eq!(
            (m, p.as_str(), f),
            (Method::GET, "/v2/keys/w?wait=true&waitIndex=7", None)
        );
        let (m, p, f) = Api::V1.watch_request("/w", 7);
        assert_eq!(
            (m, p.as_str(), f),
            (Method::POST, "/v1/watch/w", Some(Bytes::from("index=7")))
        );
        assert_eq!(&cas_form("a", "b")[..], b"value=b&prevValue=a");
    }
}
