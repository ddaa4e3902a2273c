//! The v1 key result object (spec section 3): one JSON object per event, or an array of them
//! for a directory listing.

use serde::{Deserialize, Serialize};

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// A set or a successful test-and-set.
    #[serde(rename = "SET")]
    Set,
    /// A read.
    #[serde(rename = "GET")]
    Get,
    /// A delete or an expiry.
    #[serde(rename = "DELETE")]
    Delete,
}

/// The v1 result object. Field order is the wire order; absent fields are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyResponse {
    /// `"SET"`, `"GET"` or `"DELETE"`.
    pub action: Action,
    /// Absolute normalised key, `/a/b`.
    pub key: String,
    /// `true` only on directory entries of a listing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dir: bool,
    /// The value before this change, when there was one.
    #[serde(rename = "prevValue", default, skip_serializing_if = "Option::is_none")]
    pub prev_value: Option<String>,
    /// The value the key holds (after a SET), or held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `true` when a SET created the key.
    #[serde(rename = "newKey", default, skip_serializing_if = "is_false")]
    pub new_key: bool,
    /// Absolute expiry, RFC 3339 with nanoseconds, when the key has a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// Remaining whole seconds (rounded down) when the key has a TTL; omitted when 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The log index (see spec section 4).
    pub index: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_response_has_the_seed_field_order() {
        let r = KeyResponse {
            action: Action::Set,
            key: "/foo".into(),
            dir: false,
            prev_value: None,
            value: Some("bar".into()),
            new_key: true,
            expiration: Some("2013-07-11T20:31:12.156146039-07:00".into()),
            ttl: Some(4),
            index: 6,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"action":"SET","key":"/foo","value":"bar","newKey":true,"expiration":"2013-07-11T20:31:12.156146039-07:00","ttl":4,"index":6}"#
        );
    }

    #[test]
    fn directory_entry_and_round_trip() {
        let r = KeyResponse {
            action: Action::Get,
            key: "/foo/foo_dir".into(),
            dir: true,
            prev_value: None,
            value: None,
            new_key: false,
            expiration: None,
            ttl: None,
            index: 12,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"action":"GET","key":"/foo/foo_dir","dir":true,"index":12}"#
        );
        assert_eq!(serde_json::from_str::<KeyResponse>(&s).unwrap(), r);
    }
}
