//! The v1 HTTP contract (`shared/spec/v1-api.md`), checked byte for byte against a real node.
//!
//! Every test starts its own fresh single node, so index numbers are exact: a brand-new node
//! commits two internal entries, and its first client write gets index 3 (spec §4).

mod support;

use std::time::{Duration, Instant};

use support::*;

const NOT_FOUND: &str = "Key Not Found";
const PREV_VALUE_MISMATCH: &str = "The given PrevValue is not equal to the value of the key";
const NOT_A_FILE: &str = "Not A File";
const VALUE_REQUIRED: &str = "Value is Required in POST form";
const TTL_NAN: &str = "The given TTL in POST form is not a number";
const INDEX_NAN: &str = "The given index in POST form is not a number";
const KEYWORD_PREFIX: &str = "The prefix of the given key is a keyword in etcd";

/// Spec §10: the seed README's walkthrough on a fresh node, as exact bytes.
#[test]
fn seed_walkthrough_matches_spec_section_10_byte_for_byte() {
    let node = Node::start("node0", &[]);

    let r = node.post_form("/v1/keys/message", &[("value", "Hello world")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/message","value":"Hello world","newKey":true,"index":3}"#,
    );
    let r = node.get("/v1/keys/message");
    assert_json(
        &r,
        200,
        r#"{"action":"GET","key":"/message","value":"Hello world","index":3}"#,
    );
    let r = node.post_form("/v1/keys/message", &[("value", "Hello etcd")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/message","prevValue":"Hello world","value":"Hello etcd","index":4}"#,
    );
    let r = node.delete("/v1/keys/message");
    assert_json(
        &r,
        200,
        r#"{"action":"DELETE","key":"/message","prevValue":"Hello etcd","index":5}"#,
    );

    // A key with a TTL: expiration is absolute (RFC 3339, nanoseconds), ttl rounds down.
    let started = Instant::now();
    let before_ns = unix_nanos_now();
    let set = node.post_form("/v1/keys/foo", &[("value", "bar"), ("ttl", "5")]);
    let after_ns = unix_nanos_now();
    assert_json_normalized(
        &set,
        200,
        r#"{"action":"SET","key":"/foo","value":"bar","newKey":true,"expiration":"<EXPIRATION>","ttl":4,"index":6}"#,
    );
    let expiration = extract_expiration(&set.text()).expect("SET with ttl has an expiration");
    let expires_ns = parse_rfc3339_nanos(&expiration).unwrap_or_else(|| {
        panic!("expiration {expiration:?} is not RFC 3339 with (trimmed) nanoseconds")
    });
    let slack = 500_000_000;
    assert!(
        expires_ns >= before_ns + 5_000_000_000 - slack
            && expires_ns <= after_ns + 5_000_000_000 + slack,
        "expiration {expiration:?} should be about 5 s after the request"
    );

    // Until it expires, GET shows the same absolute expiry; then 404/100.
    let (gone, elapsed) = poll_until(Duration::from_secs(10), "/foo to expire", || {
        let r = node.get("/v1/keys/foo");
        if r.status != 200 {
            return Some((r, started.elapsed()));
        }
        let text = r.text();
        assert_eq!(
            extract_expiration(&text).as_deref(),
            Some(expiration.as_str()),
            "GET of a TTL key must report the expiration the SET reported: {text}"
        );
        let normalized = normalize_expiration(&text);
        let alive = |ttl: &str| {
            format!(
                r#"{{"action":"GET","key":"/foo","value":"bar","expiration":"<EXPIRATION>",{ttl}"index":6}}"#
            )
        };
        let ok = (1..=4).any(|t| normalized == alive(&format!("\"ttl\":{t},")))
            || normalized == alive("");
        assert!(ok, "GET /foo before expiry: {text}");
        None
    });
    assert_json(&gone, 404, &error_body(100, NOT_FOUND, "/foo"));
    assert!(
        elapsed >= Duration::from_millis(4500),
        "/foo disappeared after {elapsed:?}, before its 5 s TTL"
    );

    // The expiry itself is the log entry at index 7: a DELETE with prevValue and expiration.
    let r = node.post_form_at_once("/v1/watch/foo", &[("index", "7")]);
    assert_json(
        &r,
        200,
        &format!(
            r#"{{"action":"DELETE","key":"/foo","prevValue":"bar","expiration":"{expiration}","index":7}}"#
        ),
    );

    // A pending watch fires with exactly the writer's response.
    let mut watch = node.spawn_request("GET", "/v1/watch/foo", None);
    node.assert_pending(&mut watch);
    let event = r#"{"action":"SET","key":"/foo/foo","value":"barbar","newKey":true,"index":8}"#;
    let r = node.post_form("/v1/keys/foo/foo", &[("value", "barbar")]);
    assert_json(&r, 200, event);
    assert_json(&watch.wait(Duration::from_secs(10)), 200, event);

    // History: the same event again, at once.
    let r = node.post_form_at_once("/v1/watch/foo", &[("index", "8")]);
    assert_json(&r, 200, event);

    // Test-and-set.
    let r = node.post_form("/v1/keys/testAndSet", &[("value", "one")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/testAndSet","value":"one","newKey":true,"index":9}"#,
    );
    let r = node.post_form(
        "/v1/keys/testAndSet",
        &[("prevValue", "two"), ("value", "three")],
    );
    assert_json(
        &r,
        400,
        &error_body(101, PREV_VALUE_MISMATCH, "TestAndSet: one!=two"),
    );
    let r = node.post_form(
        "/v1/keys/testAndSet",
        &[("prevValue", "one"), ("value", "two")],
    );
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/testAndSet","prevValue":"one","value":"two","index":11}"#,
    );

    // Listing.
    let r = node.post_form("/v1/keys/foo/foo_dir/bar", &[("value", "barbarbar")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/foo/foo_dir/bar","value":"barbarbar","newKey":true,"index":12}"#,
    );
    let listing = r#"[{"action":"GET","key":"/foo/foo","value":"barbar","index":12},{"action":"GET","key":"/foo/foo_dir","dir":true,"index":12}]"#;
    assert_json(&node.get("/v1/keys/foo/"), 200, listing);
    assert_json(&node.get("/v1/keys/foo"), 200, listing);
}

#[test]
fn startup_prints_one_line_per_listener() {
    let node = Node::start("printer", &[]);
    let etcd_line = format!(
        "etcd server [printer] listening on http://127.0.0.1:{}",
        node.client_port
    );
    let raft_line = format!(
        "raft server [printer] listening on http://127.0.0.1:{}",
        node.peer_port
    );
    poll_until(
        Duration::from_secs(5),
        "both listener lines on stdout",
        || {
            let out = node.stdout();
            let has = |l: &str| out.lines().any(|line| line == l);
            (has(&etcd_line) && has(&raft_line)).then_some(())
        },
    );
}

#[test]
fn missing_key_is_error_100_for_get_delete_and_test_and_set() {
    let node = Node::start("n100", &[]);
    assert_json(
        &node.get("/v1/keys/missing"),
        404,
        &error_body(100, NOT_FOUND, "/missing"),
    );
    assert_json(
        &node.get("/v1/keys/no/such/key"),
        404,
        &error_body(100, NOT_FOUND, "/no/such/key"),
    );
    assert_json(
        &node.delete("/v1/keys/missing"),
        404,
        &error_body(100, NOT_FOUND, "/missing"),
    );
    let r = node.post_form("/v1/keys/missing", &[("prevValue", "x"), ("value", "y")]);
    assert_json(&r, 404, &error_body(100, NOT_FOUND, "/missing"));
    // The failed test-and-set created nothing.
    assert_json(
        &node.get("/v1/keys/missing"),
        404,
        &error_body(100, NOT_FOUND, "/missing"),
    );
}

#[test]
fn test_and_set_mismatch_is_error_101_and_keeps_the_value() {
    let node = Node::start("n101", &[]);
    assert_eq!(node.set("tas", "one"), 3);
    let r = node.post_form("/v1/keys/tas", &[("prevValue", "two"), ("value", "three")]);
    assert_json(
        &r,
        400,
        &error_body(101, PREV_VALUE_MISMATCH, "TestAndSet: one!=two"),
    );
    // The failed test-and-set (index 4) did not change the store.
    assert_json(
        &node.get("/v1/keys/tas"),
        200,
        r#"{"action":"GET","key":"/tas","value":"one","index":3}"#,
    );
    let r = node.post_form("/v1/keys/tas", &[("prevValue", "one"), ("value", "two")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/tas","prevValue":"one","value":"two","index":5}"#,
    );
}

#[test]
fn writes_on_directories_below_files_or_on_root_are_error_102() {
    let node = Node::start("n102", &[]);
    assert_eq!(node.set("d/x", "1"), 3);
    let r = node.post_form("/v1/keys/d", &[("value", "v")]);
    assert_json(&r, 400, &error_body(102, NOT_A_FILE, "/d"));
    let r = node.post_form("/v1/keys/d/x/y", &[("value", "v")]);
    assert_json(&r, 400, &error_body(102, NOT_A_FILE, "/d/x/y"));
    let r = node.post_form("/v1/keys/", &[("value", "v")]);
    assert_json(&r, 400, &error_body(102, NOT_A_FILE, "/"));
    let r = node.post_form("/v1/keys", &[("value", "v")]);
    assert_json(&r, 400, &error_body(102, NOT_A_FILE, "/"));
    let r = node.delete("/v1/keys/d");
    assert_json(&r, 400, &error_body(102, NOT_A_FILE, "/d"));
    // Nothing changed.
    let r = node.get("/v1/keys/d/x");
    assert_eq!((r.status, r.json()["value"].as_str()), (200, Some("1")));
    assert_json(
        &node.get("/v1/keys/d"),
        200,
        &format!(
            r#"[{{"action":"GET","key":"/d/x","value":"1","index":{}}}]"#,
            r.index()
        ),
    );
}

#[test]
fn missing_or_empty_value_is_error_200_and_consumes_no_index() {
    let node = Node::start("n200", &[]);
    assert_eq!(node.set("a", "1"), 3);
    let expected = error_body(200, VALUE_REQUIRED, "Set");
    assert_json(&node.post_form("/v1/keys/b", &[]), 400, &expected);
    assert_json(&node.request("POST", "/v1/keys/b", None), 400, &expected);
    assert_json(
        &node.post_form("/v1/keys/b", &[("value", "")]),
        400,
        &expected,
    );
    assert_json(
        &node.post_form("/v1/keys/b", &[("ttl", "5")]),
        400,
        &expected,
    );
    assert_json(&node.send_form("PUT", "/v1/keys/b", &[]), 400, &expected);
    assert_json(
        &node.get("/v1/keys/b"),
        404,
        &error_body(100, NOT_FOUND, "/b"),
    );
    assert_eq!(
        node.set("c", "1"),
        4,
        "validation errors must not consume an index"
    );
}

#[test]
fn non_numeric_ttl_is_error_202_and_consumes_no_index() {
    let node = Node::start("n202", &[]);
    assert_eq!(node.set("a", "1"), 3);
    let expected = error_body(202, TTL_NAN, "Set");
    for ttl in ["abc", "5s", "1.5", "0x10", "five"] {
        let r = node.post_form("/v1/keys/t", &[("value", "v"), ("ttl", ttl)]);
        assert_json(&r, 400, &expected);
    }
    assert_json(
        &node.get("/v1/keys/t"),
        404,
        &error_body(100, NOT_FOUND, "/t"),
    );
    assert_eq!(
        node.set("c", "1"),
        4,
        "validation errors must not consume an index"
    );
}

#[test]
fn non_numeric_watch_index_is_error_203_at_once() {
    let node = Node::start("n203", &[]);
    let expected = error_body(203, INDEX_NAN, "Watch From Index");
    assert_json(&node.get_at_once("/v1/watch/foo?index=abc"), 400, &expected);
    for index in ["-1", "1.0", "18446744073709551616", "x1"] {
        let r = node.post_form_at_once("/v1/watch/foo", &[("index", index)]);
        assert_json(&r, 400, &expected);
    }
    assert_eq!(node.set("a", "1"), 3);
}

#[test]
fn writes_and_deletes_under_etcd_prefix_are_error_400_and_consume_no_index() {
    let node = Node::start("n400", &[]);
    let set_err = error_body(400, KEYWORD_PREFIX, "Set");
    let delete_err = error_body(400, KEYWORD_PREFIX, "Delete");
    for path in [
        "/v1/keys/_etcd/foo",
        "/v1/keys/_etcd",
        "/v1/keys/_etcd/machines/n400",
        "/v1/keys//_etcd/x",
        "/v1/keys/a/../_etcd/y",
    ] {
        assert_json(&node.post_form(path, &[("value", "x")]), 400, &set_err);
    }
    let r = node.send_form("PUT", "/v1/keys/_etcd/machines/n400", &[("value", "x")]);
    assert_json(&r, 400, &set_err);
    assert_json(
        &node.delete("/v1/keys/_etcd/machines/n400"),
        400,
        &delete_err,
    );
    assert_json(&node.delete("/v1/keys/_etcd"), 400, &delete_err);
    // The registration is intact.
    assert_text(&node.get("/v1/machines"), 200, &node.client_url());
    // Only the first segment is reserved.
    let r = node.post_form("/v1/keys/_etcdx/a", &[("value", "ok")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/_etcdx/a","value":"ok","newKey":true,"index":3}"#,
    );
}

/// Spec §6/§9: a watch index older than the `-m` history is error 401, never a silent gap.
#[test]
fn watch_index_older_than_history_is_error_401() {
    let node = Node::start("n401", &["-m", "4"]);
    let mut writes = Vec::new();
    for i in 0..10u64 {
        let r = node.post_form(&format!("/v1/keys/h/k{i}"), &[("value", &i.to_string())]);
        assert_eq!((r.status, r.index()), (200, 3 + i), "{}", r.text());
        writes.push(r.text());
    }
    // History keeps the last 4 events: indexes 9..=12.
    let prefix = r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared ["#;
    let r = node.post_form_at_once("/v1/watch/h", &[("index", "1")]);
    let text = r.text();
    assert_eq!(r.status, 400, "{text}");
    assert_eq!(r.content_type(), "application/json");
    assert!(
        text.starts_with(prefix) && text.ends_with(r#"/1]"}"#),
        "unexpected 401 body: {text}"
    );
    let first = &text[prefix.len()..text.len() - r#"/1]"}"#.len()];
    assert_eq!(
        first, "9",
        "first index still available with -m 4 after writes 3..=12: {text}"
    );
    assert_json(
        &node.get_at_once("/v1/watch/h?index=8"),
        400,
        &format!("{prefix}9/8]\"}}"),
    );
    // The oldest kept event is still served.
    let r = node.get_at_once("/v1/watch/h?index=9");
    assert_json(&r, 200, &writes[6]);
}

#[test]
fn validation_errors_consume_no_index_but_a_failed_test_and_set_does() {
    let node = Node::start("idx", &[]);
    assert_eq!(node.set("a", "1"), 3);
    assert_eq!(node.post_form("/v1/keys/b", &[]).status, 400);
    assert_eq!(
        node.post_form("/v1/keys/b", &[("value", "v"), ("ttl", "x")])
            .status,
        400
    );
    assert_eq!(
        node.post_form("/v1/keys/_etcd/b", &[("value", "v")]).status,
        400
    );
    assert_eq!(node.delete("/v1/keys/_etcd/machines").status, 400);
    assert_eq!(
        node.post_form_at_once("/v1/watch/b", &[("index", "q")])
            .status,
        400
    );
    assert_eq!(node.set("b", "1"), 4);
    let r = node.post_form("/v1/keys/b", &[("prevValue", "2"), ("value", "3")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        node.set("c", "1"),
        6,
        "the failed test-and-set consumed index 5"
    );
    assert_json(
        &node.get("/v1/keys/a"),
        200,
        r#"{"action":"GET","key":"/a","value":"1","index":6}"#,
    );
}

#[test]
fn keys_are_normalised_and_percent_decoded() {
    let node = Node::start("norm", &[]);
    let r = node.post_form("/v1/keys//a/./b/../c", &[("value", "x")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/a/c","value":"x","newKey":true,"index":3}"#,
    );
    assert_json(
        &node.get("/v1/keys/a/c"),
        200,
        r#"{"action":"GET","key":"/a/c","value":"x","index":3}"#,
    );
    assert_json(
        &node.get("/v1/keys//a//c/"),
        200,
        r#"{"action":"GET","key":"/a/c","value":"x","index":3}"#,
    );
    let r = node.post_form("/v1/keys/x%2Fy", &[("value", "v")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/x/y","value":"v","newKey":true,"index":4}"#,
    );
    assert_json(
        &node.get("/v1/keys/x/y"),
        200,
        r#"{"action":"GET","key":"/x/y","value":"v","index":4}"#,
    );
    let r = node.post_form("/v1/keys/t/", &[("value", "1")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/t","value":"1","newKey":true,"index":5}"#,
    );
    let r = node.post_form("/v1/keys/../../z", &[("value", "1")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/z","value":"1","newKey":true,"index":6}"#,
    );
    let r = node.post_form("/v1/keys/sp%20ace", &[("value", "1")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/sp ace","value":"1","newKey":true,"index":7}"#,
    );
}

#[test]
fn root_listing_is_a_sorted_array_including_the_etcd_directory() {
    let node = Node::start("root", &[]);
    assert_eq!(node.set("a", "1"), 3);
    let expected = r#"[{"action":"GET","key":"/_etcd","dir":true,"index":3},{"action":"GET","key":"/a","value":"1","index":3}]"#;
    assert_json(&node.get("/v1/keys"), 200, expected);
    assert_json(&node.get("/v1/keys/"), 200, expected);
}

#[test]
fn listing_with_one_or_zero_children_is_still_an_array() {
    let node = Node::start("one", &[]);
    assert_eq!(node.set("one/x", "v"), 3);
    assert_json(
        &node.get("/v1/keys/one"),
        200,
        r#"[{"action":"GET","key":"/one/x","value":"v","index":3}]"#,
    );
    let r = node.delete("/v1/keys/one/x");
    assert_json(
        &r,
        200,
        r#"{"action":"DELETE","key":"/one/x","prevValue":"v","index":4}"#,
    );
    // Directories are never deleted by v1 calls: an empty directory lists as [].
    assert_json(&node.get("/v1/keys/one"), 200, "[]");
}

#[test]
fn listing_is_sorted_by_key() {
    let node = Node::start("sorted", &[]);
    for (i, key) in ["z", "a", "m", "B", "10", "9", "dir/x"].iter().enumerate() {
        assert_eq!(node.set(&format!("s/{key}"), key), 3 + i as u64);
    }
    let expected = concat!(
        r#"[{"action":"GET","key":"/s/10","value":"10","index":9},"#,
        r#"{"action":"GET","key":"/s/9","value":"9","index":9},"#,
        r#"{"action":"GET","key":"/s/B","value":"B","index":9},"#,
        r#"{"action":"GET","key":"/s/a","value":"a","index":9},"#,
        r#"{"action":"GET","key":"/s/dir","dir":true,"index":9},"#,
        r#"{"action":"GET","key":"/s/m","value":"m","index":9},"#,
        r#"{"action":"GET","key":"/s/z","value":"z","index":9}]"#,
    );
    assert_json(&node.get("/v1/keys/s"), 200, expected);
}

#[test]
fn ttl_zero_or_negative_deletes_the_key() {
    let node = Node::start("ttl0", &[]);
    assert_eq!(node.set("t", "1"), 3);
    let r = node.post_form("/v1/keys/t", &[("value", "2"), ("ttl", "0")]);
    assert_json(
        &r,
        200,
        r#"{"action":"DELETE","key":"/t","prevValue":"1","index":4}"#,
    );
    assert_json(
        &node.get("/v1/keys/t"),
        404,
        &error_body(100, NOT_FOUND, "/t"),
    );
    assert_eq!(node.set("u", "1"), 5);
    let r = node.post_form("/v1/keys/u", &[("value", "2"), ("ttl", "-5")]);
    assert_json(
        &r,
        200,
        r#"{"action":"DELETE","key":"/u","prevValue":"1","index":6}"#,
    );
    assert_json(
        &node.get("/v1/keys/u"),
        404,
        &error_body(100, NOT_FOUND, "/u"),
    );
    for ttl in ["0", "-1"] {
        let r = node.post_form("/v1/keys/never", &[("value", "1"), ("ttl", ttl)]);
        assert_json(&r, 404, &error_body(100, NOT_FOUND, "/never"));
    }
}

#[test]
fn set_without_ttl_over_a_ttl_key_makes_it_permanent() {
    let node = Node::start("perm", &[]);
    let r = node.post_form("/v1/keys/p", &[("value", "a"), ("ttl", "100")]);
    assert_json_normalized(
        &r,
        200,
        r#"{"action":"SET","key":"/p","value":"a","newKey":true,"expiration":"<EXPIRATION>","ttl":99,"index":3}"#,
    );
    let r = node.post_form("/v1/keys/p", &[("value", "b")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/p","prevValue":"a","value":"b","index":4}"#,
    );
    assert_json(
        &node.get("/v1/keys/p"),
        200,
        r#"{"action":"GET","key":"/p","value":"b","index":4}"#,
    );
    // A new ttl replaces the old (absent) one.
    let r = node.post_form("/v1/keys/p", &[("value", "c"), ("ttl", "50")]);
    assert_json_normalized(
        &r,
        200,
        r#"{"action":"SET","key":"/p","prevValue":"b","value":"c","expiration":"<EXPIRATION>","ttl":49,"index":5}"#,
    );
}

#[test]
fn parameters_are_read_from_the_query_string() {
    let node = Node::start("query", &[]);
    let r = node.request("POST", "/v1/keys/q?value=from%20query", None);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/q","value":"from query","newKey":true,"index":3}"#,
    );
    let r = node.request("PUT", "/v1/keys/q2?value=put+plus", None);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/q2","value":"put plus","newKey":true,"index":4}"#,
    );
    let r = node.request("POST", "/v1/keys/q?prevValue=from%20query&value=next", None);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/q","prevValue":"from query","value":"next","index":5}"#,
    );
    let r = node.request("POST", "/v1/keys/qt?value=v&ttl=100", None);
    assert_json_normalized(
        &r,
        200,
        r#"{"action":"SET","key":"/qt","value":"v","newKey":true,"expiration":"<EXPIRATION>","ttl":99,"index":6}"#,
    );
    assert_json(
        &node.get("/v1/keys/q?value=ignored"),
        200,
        r#"{"action":"GET","key":"/q","value":"next","index":6}"#,
    );
}

#[test]
fn parameters_are_read_from_a_multipart_form() {
    let node = Node::start("multipart", &[]);
    let (content_type, body) = multipart(&[("value", "multi part")]);
    let r = node.request("POST", "/v1/keys/mp", Some((&content_type, &body)));
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/mp","value":"multi part","newKey":true,"index":3}"#,
    );
    let (content_type, body) = multipart(&[("prevValue", "multi part"), ("value", "next")]);
    let r = node.request("POST", "/v1/keys/mp", Some((&content_type, &body)));
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/mp","prevValue":"multi part","value":"next","index":4}"#,
    );
    let (content_type, body) = multipart(&[("value", "x"), ("ttl", "100")]);
    let r = node.request("PUT", "/v1/keys/mpt", Some((&content_type, &body)));
    assert_json_normalized(
        &r,
        200,
        r#"{"action":"SET","key":"/mpt","value":"x","newKey":true,"expiration":"<EXPIRATION>","ttl":99,"index":5}"#,
    );
}

#[test]
fn body_parameters_win_over_the_query_string() {
    let node = Node::start("bodywins", &[]);
    let body = form(&[("value", "body")]);
    let r = node.request(
        "POST",
        "/v1/keys/bw?value=query",
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
    );
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/bw","value":"body","newKey":true,"index":3}"#,
    );
    // Per parameter: a ttl only in the query still applies.
    let r = node.request(
        "POST",
        "/v1/keys/mix?ttl=100",
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
    );
    assert_json_normalized(
        &r,
        200,
        r#"{"action":"SET","key":"/mix","value":"body","newKey":true,"expiration":"<EXPIRATION>","ttl":99,"index":4}"#,
    );
}

#[test]
fn first_of_repeated_parameters_wins() {
    let node = Node::start("repeated", &[]);
    let r = node.post_form("/v1/keys/r", &[("value", "first"), ("value", "second")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/r","value":"first","newKey":true,"index":3}"#,
    );
    let r = node.request("POST", "/v1/keys/rq?value=q1&value=q2", None);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/rq","value":"q1","newKey":true,"index":4}"#,
    );
    let body = form(&[("value", "b1"), ("value", "b2")]);
    let r = node.request(
        "POST",
        "/v1/keys/rb?value=q",
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
    );
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/rb","value":"b1","newKey":true,"index":5}"#,
    );
}

#[test]
fn values_with_special_characters_round_trip() {
    let node = Node::start("special", &[]);
    let value = "a b&c=d+e/ü%20\"quoted\"\\ \u{1F600}\ttab";
    let r = node.post_form("/v1/keys/special", &[("value", value)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["value"].as_str(), Some(value));
    let r = node.get("/v1/keys/special");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["value"].as_str(), Some(value));
}

#[test]
fn machines_and_leader_report_this_node_urls() {
    let node = Node::start("machine0", &[]);
    assert_text(&node.get("/v1/machines"), 200, &node.client_url());
    assert_text(&node.get("/v1/leader"), 200, &node.peer_url());
    assert_eq!(node.set("k", "v"), 3);
    let entry = format!(
        r#"{{"action":"GET","key":"/_etcd/machines/machine0","value":"raft={}&etcd={}","index":3}}"#,
        node.peer_url(),
        node.client_url()
    );
    assert_json(
        &node.get("/v1/keys/_etcd/machines"),
        200,
        &format!("[{entry}]"),
    );
    assert_json(&node.get("/v1/keys/_etcd/machines/machine0"), 200, &entry);
    let r = node.get("/v1/keys/_etcd");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains(r#"{"action":"GET","key":"/_etcd/machines","dir":true,"index":3}"#),
        "listing of /_etcd: {}",
        r.text()
    );
}

fn stats(node: &Node) -> [u64; 4] {
    let r = node.get("/v1/stats");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    let v = r.json();
    let field = |name: &str| {
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("stats has no numeric {name}: {}", r.text()))
    };
    let values = [
        field("gets"),
        field("sets"),
        field("deletes"),
        field("testAndSets"),
    ];
    assert_eq!(
        r.text(),
        format!(
            r#"{{"gets":{},"sets":{},"deletes":{},"testAndSets":{}}}"#,
            values[0], values[1], values[2], values[3]
        ),
        "field order"
    );
    values
}

#[test]
fn stats_count_gets_sets_deletes_and_test_and_sets() {
    let node = Node::start("stats", &[]);
    let [gets0, sets0, deletes0, tas0] = stats(&node);
    node.set("a", "1");
    node.set("b", "1");
    node.set("c", "1");
    assert_eq!(node.get("/v1/keys/a").status, 200);
    assert_eq!(node.get("/v1/keys/b").status, 200);
    assert_eq!(node.delete("/v1/keys/c").status, 200);
    let r = node.post_form("/v1/keys/a", &[("prevValue", "1"), ("value", "2")]);
    assert_eq!(r.status, 200, "{}", r.text());
    let [gets, sets, deletes, tas] = stats(&node);
    assert_eq!(gets - gets0, 2, "gets");
    assert!((3..=4).contains(&(sets - sets0)), "sets: {sets0} -> {sets}");
    assert_eq!(deletes - deletes0, 1, "deletes");
    assert_eq!(tas - tas0, 1, "testAndSets");
}

#[test]
fn root_path_answers_the_version_and_unknown_paths_are_404() {
    let node = Node::start("version", &[]);
    let r = node.get("/");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type().starts_with("text/plain"),
        "{:?}",
        r.content_type()
    );
    let text = r.text();
    assert!(
        text.starts_with("etcd ") && text.len() > 5 && !text.ends_with('\n'),
        "version body: {text:?}"
    );
    for path in [
        "/nope",
        "/v1/nope",
        "/v1/keysx",
        "/v2/keys/foo",
        "/machines",
        "/v1",
    ] {
        assert_eq!(node.get(path).status, 404, "GET {path}");
    }
}

#[test]
fn unsupported_methods_are_405() {
    let node = Node::start("methods", &[]);
    assert_eq!(node.request("PATCH", "/v1/keys/foo", None).status, 405);
    assert_eq!(node.delete("/v1/watch/foo").status, 405);
    assert_eq!(node.request("PUT", "/v1/watch/foo", None).status, 405);
}

#[test]
fn key_longer_than_4096_bytes_is_rejected_with_209() {
    let node = Node::start("longkey", &[]);
    let key = "k".repeat(5000);
    let r = node.post_form(&format!("/v1/keys/{key}"), &[("value", "v")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.json()["errorCode"].as_u64(), Some(209), "{}", r.text());
    assert!(r.json()["message"].is_string(), "{}", r.text());
    // Still healthy, and the rejected write consumed nothing.
    assert_eq!(node.set("short", "v"), 3);
}

#[test]
fn value_of_exactly_one_mib_is_accepted() {
    let node = Node::start("mib", &[]);
    let value = "x".repeat(1 << 20);
    let r = node.post_form("/v1/keys/big", &[("value", &value)]);
    assert_eq!(r.status, 200, "{}", short(&r.text()));
    assert_eq!(r.index(), 3);
    let r = node.get("/v1/keys/big");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["value"].as_str().map(str::len), Some(1 << 20));
}

#[test]
fn value_larger_than_one_mib_is_413_and_the_node_stays_healthy() {
    let node = Node::start("toobig", &[]);
    let value = "x".repeat((1 << 20) + 1);
    let r = node.post_form("/v1/keys/big", &[("value", &value)]);
    assert_eq!(r.status, 413, "{}", short(&r.text()));
    assert_eq!(r.content_type(), "application/json");
    let v = r.json();
    assert!(v["errorCode"].is_u64(), "{}", r.text());
    assert!(v["message"].is_string(), "{}", r.text());
    assert_json(
        &node.get("/v1/keys/big"),
        404,
        &error_body(100, NOT_FOUND, "/big"),
    );
    assert_eq!(node.set("after", "ok"), 3);
    assert_text(&node.get("/v1/leader"), 200, &node.peer_url());
}

#[test]
fn watch_on_root_fires_for_any_write() {
    let node = Node::start("rootwatch", &[]);
    let mut watch = node.spawn_request("GET", "/v1/watch/", None);
    node.assert_pending(&mut watch);
    let r = node.post_form("/v1/keys/deep/down/key", &[("value", "v")]);
    let event = r#"{"action":"SET","key":"/deep/down/key","value":"v","newKey":true,"index":3}"#;
    assert_json(&r, 200, event);
    assert_json(&watch.wait(Duration::from_secs(10)), 200, event);
    // A history watch on the root works too.
    assert_json(
        &node.post_form_at_once("/v1/watch", &[("index", "3")]),
        200,
        event,
    );
}

#[test]
fn watch_fires_by_whole_path_segment_only() {
    let node = Node::start("segment", &[]);
    assert_eq!(node.set("seed", "0"), 3);
    // Ask for index 4, the next write's index: no registration race.
    let mut watch = node.spawn_request("GET", "/v1/watch/w?index=4", None);
    node.assert_pending(&mut watch);
    assert_eq!(node.set("ww/x", "1"), 4);
    assert_eq!(node.set("w0", "1"), 5);
    node.assert_pending(&mut watch);
    let r = node.post_form("/v1/keys/w/x", &[("value", "1")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/w/x","value":"1","newKey":true,"index":6}"#,
    );
    assert_json(&watch.wait(Duration::from_secs(10)), 200, &r.text());

    // A change of the watched key itself fires too.
    let mut watch = node.spawn_request("GET", "/v1/watch/solo?index=7", None);
    node.assert_pending(&mut watch);
    assert_eq!(node.set("solo2", "1"), 7);
    node.assert_pending(&mut watch);
    let r = node.post_form("/v1/keys/solo", &[("value", "1")]);
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/solo","value":"1","newKey":true,"index":8}"#,
    );
    assert_json(&watch.wait(Duration::from_secs(10)), 200, &r.text());
}

/// Spec §6: an expiry is delivered to watchers as a DELETE with prevValue and expiration.
#[test]
fn expiry_is_a_delete_event_with_prev_value_and_expiration() {
    let node = Node::start("expiry", &[]);
    let r = node.post_form("/v1/keys/e/k", &[("value", "x"), ("ttl", "1")]);
    assert_eq!((r.status, r.index()), (200, 3), "{}", r.text());
    let expiration = extract_expiration(&r.text()).expect("expiration");
    let watch = node.spawn_request("GET", "/v1/watch/e?index=4", None);
    let r = watch.wait(Duration::from_secs(10));
    assert_json(
        &r,
        200,
        &format!(
            r#"{{"action":"DELETE","key":"/e/k","prevValue":"x","expiration":"{expiration}","index":4}}"#
        ),
    );
    assert_json(
        &node.get("/v1/keys/e/k"),
        404,
        &error_body(100, NOT_FOUND, "/e/k"),
    );
}

#[test]
fn json_responses_have_application_json_content_type() {
    let node = Node::start("ctype", &[]);
    let responses = [
        node.post_form("/v1/keys/a", &[("value", "1")]),
        node.get("/v1/keys/a"),
        node.get("/v1/keys"),
        node.get("/v1/keys/missing"),
        node.get("/v1/stats"),
        node.post_form_at_once("/v1/watch/a", &[("index", "3")]),
        node.delete("/v1/keys/a"),
    ];
    for r in &responses {
        assert_eq!(r.content_type(), "application/json", "{}", r.text());
        assert!(!r.body.ends_with(b"\n"), "trailing newline: {:?}", r.text());
    }
    assert!(node
        .get("/v1/machines")
        .content_type()
        .starts_with("text/plain"));
    assert!(node
        .get("/v1/leader")
        .content_type()
        .starts_with("text/plain"));
}
