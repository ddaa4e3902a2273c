//! etcd's v2 HTTP API (`/v2/keys`, `/v2/machines`, `/v2/members`, `/v2/stats/*`, `/version`,
//! `/health`), checked against real `etcd` processes: exact statuses, headers and JSON bodies
//! as etcd 3.4 answers them (recorded in a reference session), except for our deliberate
//! differences: indexes are raft log indexes (a fresh node's first client write is 3), the
//! `/_etcd` member registry is reserved for writes (error 106), listings are always sorted,
//! and `/version` reports our own versions.
//!
//! Indexes are never hard-coded except on a fresh node's first write: every test reads the
//! `modifiedIndex` of a write's answer and derives the rest (created indexes, compare-failure
//! causes, error indexes) from it. A write's `X-Etcd-Index` is its own index; an error's
//! `index` (and `X-Etcd-Index`) is that of the last change; validation errors found before
//! the store (2xx codes) carry index 0.
//!
//! Covered: GET of files, directories and the root (hidden children omitted); PUT (set,
//! create/update through `prevExist`, compare-and-swap, TTLs and refresh, directories,
//! validation errors); in-order POST; DELETE (files, directories, compare-and-delete); the
//! index headers; 405; long-poll, history, recursive, hidden, refresh, expiry and streaming
//! watches and a history that has been cleared; v1 and v2 sharing one store; a 3-member
//! cluster; `/version`, `/health`, `/v2/members`, `/v2/machines` and `/v2/stats/*`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const KEY_NOT_FOUND: &str = "Key not found";
const COMPARE_FAILED: &str = "Compare failed";
const NOT_A_FILE: &str = "Not a file";
const NOT_A_DIR: &str = "Not a directory";
const KEY_EXISTS: &str = "Key already exists";
const KEYWORD: &str = "The prefix of given key is a keyword in etcd";
const ROOT_READ_ONLY: &str = "Root is read only";
const DIR_NOT_EMPTY: &str = "Directory not empty";
const PREV_VALUE_REQUIRED: &str = "PrevValue is Required in POST form";
const TTL_NAN: &str = "The given TTL in POST form is not a number";
const INDEX_NAN: &str = "The given index in POST form is not a number";
const INVALID_FIELD: &str = "Invalid field";
const REFRESH_VALUE: &str = "Value provided on refresh";
const REFRESH_TTL_REQUIRED: &str = "A TTL must be provided on refresh";
const INDEX_CLEARED: &str = "The event in requested index is outdated and cleared";

/// How long a watch may take to be woken once its event happened (expiries included).
const WAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a watch that must not fire is observed (beyond `Node::assert_pending`).
const QUIET_PERIOD: Duration = Duration::from_millis(200);
/// What `normalize` puts in place of every `ttl` number.
const TTL_PLACEHOLDER: &str = "<TTL>";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A fresh single node named `node0` with fast raft timing (and `extra` flags).
fn start_node(extra: &[&str]) -> Node {
    let mut args: Vec<&str> = FAST_TIMING.to_vec();
    args.extend_from_slice(extra);
    Node::start("node0", &args)
}

/// `/v2/keys` + `key` (`key` starts with `/`, and may carry a query).
fn keys(key: &str) -> String {
    format!("/v2/keys{key}")
}

/// `PUT /v2/keys<key>` with a form body (an empty form body when `pairs` is empty).
fn put(node: &Node, key: &str, pairs: &[(&str, &str)]) -> Response {
    node.send_form("PUT", &keys(key), pairs)
}

/// `PUT /v2/keys<key>` without any body.
fn put_nothing(node: &Node, key: &str) -> Response {
    node.request("PUT", &keys(key), None)
}

fn get(node: &Node, key: &str) -> Response {
    node.get(&keys(key))
}

fn delete(node: &Node, key: &str) -> Response {
    node.delete(&keys(key))
}

/// A watch GET that must be answered at once (its event is in the history).
fn get_at_once(node: &Node, key: &str) -> Response {
    node.get_at_once(&keys(key))
}

/// Replaces every `<name>` in `template` by its number.
fn fill(template: &str, vars: &[(&str, u64)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("<{name}>"), &value.to_string());
    }
    out
}

/// A numeric response header; panics if it is missing or not a number.
#[track_caller]
fn header_u64(r: &Response, name: &str) -> u64 {
    let value = r.header(name).unwrap_or_else(|| {
        panic!(
            "no {name} header in the {} answer {:?} (headers {:?})",
            r.status,
            r.text(),
            r.headers
        )
    });
    value
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {value:?} is not a number: {e}"))
}

/// Checks the headers of a successful keys answer: `Content-Type: application/json`,
/// numeric `X-Etcd-Index`, `X-Raft-Index` and `X-Raft-Term` (≥ 1), and a body that ends
/// with a newline. Returns `X-Etcd-Index`. (That `X-Raft-Index` is at least `X-Etcd-Index`
/// is checked by `index_headers_on_successes_and_errors`.)
#[track_caller]
fn check_success_headers(r: &Response) -> u64 {
    assert_eq!(
        r.content_type(),
        "application/json",
        "Content-Type of {} {:?}",
        r.status,
        r.text()
    );
    assert!(
        r.body.ends_with(b"\n"),
        "a v2 JSON body ends with a newline: {:?}",
        r.text()
    );
    let etcd_index = header_u64(r, "x-etcd-index");
    header_u64(r, "x-raft-index");
    let raft_term = header_u64(r, "x-raft-term");
    assert!(
        raft_term >= 1,
        "X-Raft-Term is the raft term, at least 1: {raft_term}"
    );
    etcd_index
}

/// `X-Raft-Index` (the applied raft index) is at least `X-Etcd-Index` (the last change):
/// the change is applied before it is answered.
#[track_caller]
fn check_raft_index_covers(r: &Response) {
    let etcd_index = header_u64(r, "x-etcd-index");
    let raft_index = header_u64(r, "x-raft-index");
    assert!(
        raft_index >= etcd_index,
        "X-Raft-Index (applied) {raft_index} < X-Etcd-Index (last change) {etcd_index} in the \
         {} answer {:?}",
        r.status,
        r.text()
    );
}

/// Asserts a successful answer: status, exactly `body` plus a newline, and the success
/// headers. Returns `X-Etcd-Index`.
#[track_caller]
fn check_ok(r: &Response, status: u16, body: &str) -> u64 {
    assert_eq!(
        (r.status, r.text()),
        (status, format!("{body}\n")),
        "unexpected answer (left: got, right: expected)"
    );
    check_success_headers(r)
}

/// The HTTP status etcd answers with for a v2 error code.
fn status_of(code: u16) -> u16 {
    match code {
        100 => 404,
        101 | 105 => 412,
        102 | 108 => 403,
        104 | 106 | 107 => 400,
        200..=299 => 400,
        300 | 301 => 500,
        401 => 400,
        other => panic!("no status known for error code {other}"),
    }
}

/// `{"errorCode":N,"message":"...","cause":"...","index":N}` (`cause` is inserted as is: JSON
/// escapes must already be in it).
fn error_json(code: u16, message: &str, cause: &str, index: u64) -> String {
    format!(r#"{{"errorCode":{code},"message":"{message}","cause":"{cause}","index":{index}}}"#)
}

/// Asserts a v2 error answer: etcd's status for `code`, `Content-Type: application/json`, the
/// exact body plus a newline, `X-Etcd-Index: index`, and no `X-Raft-*` headers.
#[track_caller]
fn check_error(r: &Response, code: u16, message: &str, cause: &str, index: u64) {
    assert_eq!(
        (r.status, r.text()),
        (
            status_of(code),
            format!("{}\n", error_json(code, message, cause, index))
        ),
        "unexpected answer (left: got, right: expected)"
    );
    assert_eq!(
        r.content_type(),
        "application/json",
        "Content-Type of an error"
    );
    assert_eq!(
        r.header("x-etcd-index"),
        Some(index.to_string().as_str()),
        "X-Etcd-Index of an error is its index (headers {:?})",
        r.headers
    );
    assert_eq!(
        (r.header("x-raft-index"), r.header("x-raft-term")),
        (None, None),
        "errors carry X-Etcd-Index only (headers {:?})",
        r.headers
    );
}

/// The `node.modifiedIndex` of a write's answer (asserting the write succeeded with
/// `status` and that `X-Etcd-Index` is that same index).
#[track_caller]
fn written(r: &Response, status: u16) -> u64 {
    assert_eq!(r.status, status, "write answered {:?}", r.text());
    let index = r.json()["node"]["modifiedIndex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no node.modifiedIndex in {:?}", r.text()));
    assert_eq!(
        header_u64(r, "x-etcd-index"),
        index,
        "X-Etcd-Index of a write is the write's index: {:?}",
        r.text()
    );
    index
}

/// Every `expiration` value in `text`, in order.
fn expirations(text: &str) -> Vec<String> {
    const MARKER: &str = "\"expiration\":\"";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(MARKER) {
        rest = &rest[pos + MARKER.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// `text` with every expiration replaced by `EXPIRATION_PLACEHOLDER` and every `"ttl":N` by
/// `"ttl":<TTL>`, and the ttl numbers found, in order.
fn normalize(text: &str) -> (String, Vec<u64>) {
    const MARKER: &str = "\"ttl\":";
    let text = normalize_expiration(text);
    let mut out = String::with_capacity(text.len());
    let mut ttls = Vec::new();
    let mut rest = text.as_str();
    while let Some(pos) = rest.find(MARKER) {
        out.push_str(&rest[..pos + MARKER.len()]);
        rest = &rest[pos + MARKER.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        ttls.push(rest[..digits].parse().expect("digits"));
        out.push_str(TTL_PLACEHOLDER);
        rest = &rest[digits..];
    }
    out.push_str(rest);
    (out, ttls)
}

/// Asserts an answer whose nodes carry TTLs: `template` uses `<EXPIRATION>` and `<TTL>` for
/// each of them; `ttls` are the TTLs in the order they appear. Each reported ttl must be the
/// whole seconds left rounded up (`t` or `t - 1`, as time passes), and each expiration
/// RFC 3339 in UTC with nanoseconds, about `t` seconds from now. Returns `X-Etcd-Index`.
#[track_caller]
fn check_ok_ttl(r: &Response, status: u16, template: &str, ttls: &[u64]) -> u64 {
    let text = r.text();
    let (normalized, found) = normalize(&text);
    assert_eq!(
        (r.status, normalized.as_str()),
        (status, format!("{template}\n").as_str()),
        "unexpected answer (left: got, normalised; right: expected); raw: {text:?}"
    );
    assert_eq!(found.len(), ttls.len(), "ttl fields in {text:?}");
    let exps = expirations(&text);
    assert_eq!(exps.len(), ttls.len(), "expiration fields in {text:?}");
    let now = unix_nanos_now();
    for ((got, &want), exp) in found.iter().zip(ttls).zip(&exps) {
        assert!(
            *got == want || *got + 1 == want,
            "ttl {got} should be the seconds left rounded up, {want} or {} in {text:?}",
            want - 1
        );
        assert!(exp.ends_with('Z'), "expiration {exp:?} should be in UTC");
        let at = parse_rfc3339_nanos(exp).unwrap_or_else(|| {
            panic!("expiration {exp:?} is not RFC 3339 with (trimmed) nanoseconds")
        });
        let left = at - now;
        let want_ns = i128::from(want) * 1_000_000_000;
        assert!(
            left > want_ns - 2_500_000_000 && left <= want_ns + 500_000_000,
            "expiration {exp:?} should be about {want} s from now (it is {left} ns away)"
        );
    }
    check_success_headers(r)
}

/// Asserts the answer of a watch: 200, exactly `body` (which ends with a newline: the
/// writer's body), and the success headers.
#[track_caller]
fn check_event(r: &Response, body: &str) {
    assert_eq!(
        (r.status, r.text()),
        (200, body.to_string()),
        "unexpected watch answer (left: got, right: expected)"
    );
    check_success_headers(r);
}

/// `Node::assert_pending`, then the watch stays unanswered for `QUIET_PERIOD` more.
#[track_caller]
fn assert_quiet(node: &Node, pending: &mut Pending) {
    node.assert_pending(pending);
    let until = Instant::now() + QUIET_PERIOD;
    while Instant::now() < until {
        assert!(
            !pending.is_done(),
            "watch should still be pending, but {}",
            pending.describe()
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// Starts a watch (a GET on its own thread).
fn watch(node: &Node, key: &str) -> Pending {
    node.spawn_request("GET", &keys(key), None)
}

/// `text` with every run of digits replaced by `N`.
fn digits_to_n(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// True for etcd's member ids: a non-zero 64-bit number in lower-case hex without leading
/// zeros (Go's `strconv.FormatUint(id, 16)`: usually, not always, 16 digits).
fn is_member_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && !id.starts_with('0')
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A `stream=true` watch read straight off the socket: the head once, then one event per
/// line of the (chunked) body, as the server flushes them.
struct EventStream {
    sock: TcpStream,
    /// Received body bytes not decoded yet.
    raw: Vec<u8>,
    /// Decoded body bytes not returned yet.
    body: Vec<u8>,
    chunked: bool,
    status: u16,
    headers: Vec<(String, String)>,
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl EventStream {
    /// Sends `GET path` and reads the response head, which must arrive within `AT_ONCE`.
    fn open(addr: &str, path: &str) -> EventStream {
        let deadline = Instant::now() + AT_ONCE;
        let sock_addr: SocketAddr = addr.parse().expect("a host:port address");
        let mut sock = TcpStream::connect_timeout(&sock_addr, AT_ONCE).expect("connect");
        sock.set_write_timeout(Some(AT_ONCE))
            .expect("write timeout");
        sock.write_all(&build_request("GET", addr, path, None))
            .expect("send the stream request");
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(end) = find_bytes(&raw, b"\r\n\r\n") {
                break end;
            }
            read_some(
                &mut sock,
                &mut raw,
                deadline,
                "the head of the stream answer",
            );
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        EventStream {
            sock,
            raw: raw[head_end + 4..].to_vec(),
            body: Vec::new(),
            chunked,
            status,
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Moves complete chunks (or everything, when not chunked) from `raw` to `body`.
    fn decode(&mut self) {
        if !self.chunked {
            self.body.append(&mut self.raw);
            return;
        }
        loop {
            let Some(line_end) = find_bytes(&self.raw, b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
            let size = usize::from_str_radix(&size_text, 16)
                .unwrap_or_else(|e| panic!("bad chunk size {size_text:?}: {e}"));
            assert!(size > 0, "the stream's body ended (last chunk)");
            let end = line_end + 2 + size + 2;
            if self.raw.len() < end {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..end);
        }
    }

    /// The next line of the body (without its newline), waiting at most `timeout`.
    fn next_line(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            self.decode();
            if let Some(pos) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=pos).collect();
                return String::from_utf8_lossy(&line[..pos]).into_owned();
            }
            read_some(
                &mut self.sock,
                &mut self.raw,
                deadline,
                "the next streamed event",
            );
        }
    }
}

/// Reads what is available into `buf` before `deadline`; panics on timeout or end of stream.
fn read_some(sock: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant, what: &str) {
    let left = deadline.saturating_duration_since(Instant::now());
    assert!(
        !left.is_zero(),
        "timed out waiting for {what}; received so far {:?}",
        String::from_utf8_lossy(buf)
    );
    sock.set_read_timeout(Some(left)).expect("read timeout");
    let mut chunk = [0u8; 16 * 1024];
    match sock.read(&mut chunk) {
        Ok(0) => panic!(
            "connection closed while waiting for {what}; received {:?}",
            String::from_utf8_lossy(buf)
        ),
        Ok(n) => buf.extend_from_slice(&chunk[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
        Err(e) => panic!(
            "reading {what}: {e}; received so far {:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// GET
// ---------------------------------------------------------------------------------------------

/// The root of a fresh node is an empty directory (the member registry `/_etcd` is hidden),
/// its first client write is index 3, and listings show files and directories (children of
/// child directories only when recursive), sorted, without hidden (`_`) children.
#[test]
fn get_root_files_and_directory_listings() {
    let node = start_node(&[]);

    let r = get(&node, "/");
    let first = check_ok(&r, 200, r#"{"action":"get","node":{"dir":true}}"#);
    assert!(first < 3, "X-Etcd-Index before any client write: {first}");
    let r = node.get("/v2/keys");
    check_ok(&r, 200, r#"{"action":"get","node":{"dir":true}}"#);

    // Written out of order: listings are sorted by key.
    let r = put(&node, "/foo", &[("value", "bar")]);
    let foo = check_ok(
        &r,
        201,
        r#"{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":3,"createdIndex":3}}"#,
    );
    assert_eq!(foo, 3, "a fresh node's first client write is index 3");
    let b = written(&put(&node, "/dir/sub/b", &[("value", "2")]), 201);
    let a = written(&put(&node, "/dir/a", &[("value", "1")]), 201);
    let hidden = written(&put(&node, "/dir/_hidden", &[("value", "h")]), 201);
    let hd = written(&put(&node, "/dir/_hd/x", &[("value", "x")]), 201);
    let last = written(&put(&node, "/dir/sub/_c", &[("value", "c")]), 201);
    assert!(3 < b && b < a && a < hidden && hidden < hd && hd < last);
    let vars = [("b", b), ("a", a), ("h", hidden), ("hd", hd)];

    let r = get(&node, "/foo");
    let index = check_ok(
        &r,
        200,
        r#"{"action":"get","node":{"key":"/foo","value":"bar","modifiedIndex":3,"createdIndex":3}}"#,
    );
    assert_eq!(index, last, "X-Etcd-Index of a GET is the last change");

    // /dir was created (implicitly) by the write of /dir/sub/b, and keeps that index.
    let listing = fill(
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":<a>,"createdIndex":<a>},{"key":"/dir/sub","dir":true,"modifiedIndex":<b>,"createdIndex":<b>}],"modifiedIndex":<b>,"createdIndex":<b>}}"#,
        &vars,
    );
    check_ok(&get(&node, "/dir"), 200, &listing);
    check_ok(&get(&node, "/dir/"), 200, &listing);
    check_ok(&get(&node, "/dir?sorted=true"), 200, &listing);

    let recursive = fill(
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":<a>,"createdIndex":<a>},{"key":"/dir/sub","dir":true,"nodes":[{"key":"/dir/sub/b","value":"2","modifiedIndex":<b>,"createdIndex":<b>}],"modifiedIndex":<b>,"createdIndex":<b>}],"modifiedIndex":<b>,"createdIndex":<b>}}"#,
        &vars,
    );
    check_ok(&get(&node, "/dir?recursive=true"), 200, &recursive);
    check_ok(
        &get(&node, "/dir?recursive=true&sorted=true"),
        200,
        &recursive,
    );

    // Hidden keys are readable by name, and so are hidden directories.
    check_ok(
        &get(&node, "/dir/_hidden"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/dir/_hidden","value":"h","modifiedIndex":<h>,"createdIndex":<h>}}"#,
            &vars,
        ),
    );
    check_ok(
        &get(&node, "/dir/_hd"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/dir/_hd","dir":true,"nodes":[{"key":"/dir/_hd/x","value":"x","modifiedIndex":<hd>,"createdIndex":<hd>}],"modifiedIndex":<hd>,"createdIndex":<hd>}}"#,
            &vars,
        ),
    );

    // The root has neither key nor indexes; `_etcd` is hidden.
    check_ok(
        &get(&node, "/"),
        200,
        &fill(
            r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/dir","dir":true,"modifiedIndex":<b>,"createdIndex":<b>},{"key":"/foo","value":"bar","modifiedIndex":3,"createdIndex":3}]}}"#,
            &vars,
        ),
    );
    check_ok(
        &get(&node, "/?recursive=true&sorted=true"),
        200,
        &fill(
            r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":<a>,"createdIndex":<a>},{"key":"/dir/sub","dir":true,"nodes":[{"key":"/dir/sub/b","value":"2","modifiedIndex":<b>,"createdIndex":<b>}],"modifiedIndex":<b>,"createdIndex":<b>}],"modifiedIndex":<b>,"createdIndex":<b>},{"key":"/foo","value":"bar","modifiedIndex":3,"createdIndex":3}]}}"#,
            &vars,
        ),
    );

    // The reserved registry is readable.
    let r = get(&node, "/_etcd");
    check_success_headers(&r);
    assert_eq!(r.status, 200, "GET /_etcd: {}", r.text());
    let v = r.json();
    assert_eq!(v["action"], "get", "{}", r.text());
    assert_eq!(v["node"]["key"], "/_etcd", "{}", r.text());
    assert_eq!(v["node"]["dir"], true, "{}", r.text());
}

/// A missing key is 404/100 with the first missing path prefix as cause; a path below a
/// file is 400/104 with the file's key; both carry the index of the last change.
#[test]
fn get_missing_keys_and_paths_below_a_file() {
    let node = start_node(&[]);
    let f = written(&put(&node, "/a0/file", &[("value", "f")]), 201);

    check_error(&get(&node, "/nope"), 100, KEY_NOT_FOUND, "/nope", f);
    check_error(
        &get(&node, "/nope?recursive=true"),
        100,
        KEY_NOT_FOUND,
        "/nope",
        f,
    );
    check_error(&get(&node, "/a/b/c"), 100, KEY_NOT_FOUND, "/a", f);
    check_error(&get(&node, "/a0/nope/x"), 100, KEY_NOT_FOUND, "/a0/nope", f);
    check_error(&get(&node, "/a0/file/x"), 104, NOT_A_DIR, "/a0/file", f);
    check_error(&get(&node, "/a0/file/x/y"), 104, NOT_A_DIR, "/a0/file", f);

    // Reads change nothing: a following write is the next index.
    let g = written(&put(&node, "/a0/g", &[("value", "g")]), 201);
    assert_eq!(g, f + 1, "failed reads must not consume an index");
}

// ---------------------------------------------------------------------------------------------
// PUT
// ---------------------------------------------------------------------------------------------

/// PUT of a new key is 201 "set"; of an existing key 200 "set" with `prevNode` (and a new
/// createdIndex); without a value it sets `""`; values are JSON-escaped as Go does.
#[test]
fn put_sets_new_and_existing_keys() {
    let node = start_node(&[]);

    let r = put(&node, "/k", &[("value", "one")]);
    let a = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/k","value":"one","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a)],
        ),
    );
    let r = put(&node, "/k", &[("value", "two")]);
    let b = written(&r, 200);
    assert_eq!(b, a + 1, "consecutive writes take consecutive indexes");
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"set","node":{"key":"/k","value":"two","modifiedIndex":<b>,"createdIndex":<b>},"prevNode":{"key":"/k","value":"one","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
    );
    check_ok(
        &get(&node, "/k"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/k","value":"two","modifiedIndex":<b>,"createdIndex":<b>}}"#,
            &[("b", b)],
        ),
    );

    // No body at all: the value is "".
    let r = put_nothing(&node, "/empty");
    let c = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/empty","value":"","modifiedIndex":<c>,"createdIndex":<c>}}"#,
            &[("c", c)],
        ),
    );
    let r = put_nothing(&node, "/k");
    let d = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"set","node":{"key":"/k","value":"","modifiedIndex":<d>,"createdIndex":<d>},"prevNode":{"key":"/k","value":"two","modifiedIndex":<b>,"createdIndex":<b>}}"#,
            &[("b", b), ("d", d)],
        ),
    );

    // A large value round-trips.
    let big: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let r = put(&node, "/big", &[("value", &big)]);
    let g = written(&r, 201);
    let big_node =
        format!(r#"{{"key":"/big","value":"{big}","modifiedIndex":{g},"createdIndex":{g}}}"#);
    check_ok(&r, 201, &format!(r#"{{"action":"set","node":{big_node}}}"#));
    check_ok(
        &get(&node, "/big"),
        200,
        &format!(r#"{{"action":"get","node":{big_node}}}"#),
    );

    // Go's encoder escapes <, > and & (and control characters); other UTF-8 is raw.
    let r = put(&node, "/esc", &[("value", "a&b<c>\"q\"\n\té")]);
    let e = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/esc","value":"a\u0026b\u003cc\u003e\"q\"\n\té","modifiedIndex":<e>,"createdIndex":<e>}}"#,
            &[("e", e)],
        ),
    );
}

/// `prevExist=false` creates (201 "create"; 412/105 if the key exists); `prevExist=true`
/// updates (200 "update" with prevNode; 404/100 if missing).
#[test]
fn put_create_and_update_with_prev_exist() {
    let node = start_node(&[]);
    let a = written(&put(&node, "/k", &[("value", "one")]), 201);

    check_error(
        &put(&node, "/k?prevExist=false", &[("value", "x")]),
        105,
        KEY_EXISTS,
        "/k",
        a,
    );

    let r = put(&node, "/new1?prevExist=false", &[("value", "x")]);
    let b = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"create","node":{"key":"/new1","value":"x","modifiedIndex":<b>,"createdIndex":<b>}}"#,
            &[("b", b)],
        ),
    );

    check_error(
        &put(&node, "/new2?prevExist=true", &[("value", "x")]),
        100,
        KEY_NOT_FOUND,
        "/new2",
        b,
    );

    let r = put(&node, "/new1?prevExist=true", &[("value", "y")]);
    let c = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"update","node":{"key":"/new1","value":"y","modifiedIndex":<c>,"createdIndex":<b>},"prevNode":{"key":"/new1","value":"x","modifiedIndex":<b>,"createdIndex":<b>}}"#,
            &[("b", b), ("c", c)],
        ),
    );

    // The form body works as well as the query string.
    let r = put(&node, "/new3", &[("value", "z"), ("prevExist", "false")]);
    let d = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"create","node":{"key":"/new3","value":"z","modifiedIndex":<d>,"createdIndex":<d>}}"#,
            &[("d", d)],
        ),
    );

    // A directory can be created too.
    let r = put(&node, "/nd?prevExist=false", &[("dir", "true")]);
    let e = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"create","node":{"key":"/nd","dir":true,"modifiedIndex":<e>,"createdIndex":<e>}}"#,
            &[("e", e)],
        ),
    );
    check_error(
        &put(&node, "/nd?prevExist=false", &[("dir", "true")]),
        105,
        KEY_EXISTS,
        "/nd",
        e,
    );
}

/// Compare-and-swap by `prevValue`, `prevIndex` or both: 200 "compareAndSwap"; a mismatch is
/// 412/101 with etcd's cause texts; a missing key 404/100; a directory 403/102.
#[test]
fn put_compare_and_swap() {
    let node = start_node(&[]);
    let a = written(&put(&node, "/cas", &[("value", "one")]), 201);

    check_error(
        &put(&node, "/cas?prevValue=two", &[("value", "three")]),
        101,
        COMPARE_FAILED,
        "[two != one]",
        a,
    );

    let r = put(&node, "/cas?prevValue=one", &[("value", "two")]);
    let b = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndSwap","node":{"key":"/cas","value":"two","modifiedIndex":<b>,"createdIndex":<a>},"prevNode":{"key":"/cas","value":"one","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
    );

    check_error(
        &put(&node, "/cas?prevIndex=1", &[("value", "x")]),
        101,
        COMPARE_FAILED,
        &format!("[1 != {b}]"),
        b,
    );
    check_error(
        &put(&node, "/cas?prevIndex=1&prevValue=zz", &[("value", "x")]),
        101,
        COMPARE_FAILED,
        &format!("[zz != two] [1 != {b}]"),
        b,
    );
    check_error(
        &put(&node, "/cas?prevIndex=1&prevValue=two", &[("value", "x")]),
        101,
        COMPARE_FAILED,
        &format!("[1 != {b}]"),
        b,
    );
    check_error(
        &put(
            &node,
            &format!("/cas?prevIndex={b}&prevValue=zz"),
            &[("value", "x")],
        ),
        101,
        COMPARE_FAILED,
        "[zz != two]",
        b,
    );

    let r = put(&node, &format!("/cas?prevIndex={b}"), &[("value", "three")]);
    let c = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndSwap","node":{"key":"/cas","value":"three","modifiedIndex":<c>,"createdIndex":<a>},"prevNode":{"key":"/cas","value":"two","modifiedIndex":<b>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b), ("c", c)],
        ),
    );

    let r = put(
        &node,
        &format!("/cas?prevIndex={c}&prevValue=three"),
        &[("value", "four")],
    );
    let d = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndSwap","node":{"key":"/cas","value":"four","modifiedIndex":<d>,"createdIndex":<a>},"prevNode":{"key":"/cas","value":"three","modifiedIndex":<c>,"createdIndex":<a>}}"#,
            &[("a", a), ("c", c), ("d", d)],
        ),
    );

    check_error(
        &put(&node, "/missing?prevValue=a", &[("value", "x")]),
        100,
        KEY_NOT_FOUND,
        "/missing",
        d,
    );
    check_error(
        &put(&node, "/missing?prevIndex=5", &[("value", "x")]),
        100,
        KEY_NOT_FOUND,
        "/missing",
        d,
    );

    let e = written(&put(&node, "/casdir/x", &[("value", "x")]), 201);
    check_error(
        &put(&node, "/casdir?prevValue=x", &[("value", "y")]),
        102,
        NOT_A_FILE,
        "/casdir",
        e,
    );

    check_ok(
        &get(&node, "/cas"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/cas","value":"four","modifiedIndex":<d>,"createdIndex":<a>}}"#,
            &[("a", a), ("d", d)],
        ),
    );
}

/// A TTL adds `expiration` and `ttl`; `ttl=` with `prevExist=true` clears it; `refresh=true`
/// with a TTL keeps the value (an "update" with `prevExist=true`, a "set" without); refresh
/// of a missing key is 404; a plain set makes the key permanent again.
#[test]
fn put_with_ttl_clear_and_refresh() {
    let node = start_node(&[]);

    let r = put(&node, "/t1", &[("value", "a"), ("ttl", "100")]);
    let a = written(&r, 201);
    check_ok_ttl(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a)],
        ),
        &[100],
    );
    let expiration = extract_expiration(&r.text()).expect("an expiration");

    // GET reports the same absolute expiration.
    let r = get(&node, "/t1");
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a)],
        ),
        &[100],
    );
    assert_eq!(
        extract_expiration(&r.text()).as_deref(),
        Some(expiration.as_str())
    );

    // `ttl=` (empty) with prevExist=true: an update that drops the TTL.
    let r = put(&node, "/t1?prevExist=true", &[("value", "a"), ("ttl", "")]);
    let b = written(&r, 200);
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"update","node":{"key":"/t1","value":"a","modifiedIndex":<b>,"createdIndex":<a>},"prevNode":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
        &[100],
    );
    check_ok(
        &get(&node, "/t1"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/t1","value":"a","modifiedIndex":<b>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
    );

    // Refresh with prevExist=true: "update", value kept.
    let r = put(
        &node,
        "/t1",
        &[("ttl", "50"), ("refresh", "true"), ("prevExist", "true")],
    );
    let c = written(&r, 200);
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"update","node":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<c>,"createdIndex":<a>},"prevNode":{"key":"/t1","value":"a","modifiedIndex":<b>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b), ("c", c)],
        ),
        &[50],
    );

    // Refresh without prevExist: a "set" (new createdIndex), value kept.
    let r = put(&node, "/t1", &[("ttl", "50"), ("refresh", "true")]);
    let d = written(&r, 200);
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"set","node":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<d>,"createdIndex":<d>},"prevNode":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<c>,"createdIndex":<a>}}"#,
            &[("a", a), ("c", c), ("d", d)],
        ),
        &[50, 50],
    );

    // A plain set (no value, no ttl) makes it permanent with value "".
    let r = put_nothing(&node, "/t1");
    let e = written(&r, 200);
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"set","node":{"key":"/t1","value":"","modifiedIndex":<e>,"createdIndex":<e>},"prevNode":{"key":"/t1","value":"a","expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<d>,"createdIndex":<d>}}"#,
            &[("d", d), ("e", e)],
        ),
        &[50],
    );

    // Refreshing a key that does not exist.
    check_error(
        &put(&node, "/t2", &[("ttl", "50"), ("refresh", "true")]),
        100,
        KEY_NOT_FOUND,
        "/t2",
        e,
    );
}

/// Parameters that do not parse are 400 with a 2xx code, `"index":0` and `X-Etcd-Index: 0`,
/// and change nothing.
#[test]
fn invalid_parameters_are_rejected_with_index_zero() {
    let node = start_node(&[]);
    let a = written(&put(&node, "/t1", &[("value", "a")]), 201);

    let cases: Vec<(Response, u16, &str, &str)> = vec![
        (
            put(&node, "/t1", &[("value", "b"), ("ttl", "abc")]),
            202,
            TTL_NAN,
            r#"invalid value for \"ttl\""#,
        ),
        (
            put(&node, "/t1", &[("value", "b"), ("ttl", "-5")]),
            202,
            TTL_NAN,
            r#"invalid value for \"ttl\""#,
        ),
        (
            put(&node, "/t1?prevIndex=abc", &[("value", "b")]),
            203,
            INDEX_NAN,
            r#"invalid value for \"prevIndex\""#,
        ),
        (
            put(&node, "/t1?prevExist=maybe", &[("value", "b")]),
            209,
            INVALID_FIELD,
            "invalid value for prevExist",
        ),
        (
            get(&node, "/t1?recursive=maybe"),
            209,
            INVALID_FIELD,
            r#"invalid value for \"recursive\""#,
        ),
        (
            get(&node, "/t1?wait=true&waitIndex=abc"),
            203,
            INDEX_NAN,
            r#"invalid value for \"waitIndex\""#,
        ),
        (
            put(&node, "/t1?prevValue=", &[("value", "b")]),
            201,
            PREV_VALUE_REQUIRED,
            r#"\"prevValue\" cannot be empty"#,
        ),
        (
            put(
                &node,
                "/t1",
                &[("value", "b"), ("ttl", "50"), ("refresh", "true")],
            ),
            211,
            REFRESH_VALUE,
            "A value was provided on a refresh",
        ),
        (
            put(&node, "/t1", &[("refresh", "true")]),
            212,
            REFRESH_TTL_REQUIRED,
            "No TTL value set",
        ),
        (
            delete(&node, "/t1?prevValue="),
            201,
            PREV_VALUE_REQUIRED,
            r#"\"prevValue\" cannot be empty"#,
        ),
        (
            delete(&node, "/t1?dir=maybe"),
            209,
            INVALID_FIELD,
            r#"invalid value for \"dir\""#,
        ),
        (
            put(&node, "/t1?wait=true", &[("value", "b")]),
            209,
            INVALID_FIELD,
            r#"\"wait\" can only be used with GET requests"#,
        ),
    ];
    for (r, code, message, cause) in &cases {
        check_error(r, *code, message, cause, 0);
    }

    // Nothing changed.
    check_ok(
        &get(&node, "/t1"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/t1","value":"a","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a)],
        ),
    );
}

/// `dir=true` creates a directory (201); again, or a value on it, is 403/102; a file is
/// replaced by a directory (200 with prevNode); a value given with `dir=true` is ignored; a
/// directory TTL is cleared by `prevExist=true&dir=true&ttl=`.
#[test]
fn put_directories() {
    let node = start_node(&[]);

    let r = put(&node, "/d", &[("dir", "true")]);
    let a = written(&r, 201);
    let dir_node = fill(
        r#"{"key":"/d","dir":true,"modifiedIndex":<a>,"createdIndex":<a>}"#,
        &[("a", a)],
    );
    check_ok(&r, 201, &format!(r#"{{"action":"set","node":{dir_node}}}"#));
    check_error(
        &put(&node, "/d", &[("dir", "true")]),
        102,
        NOT_A_FILE,
        "/d",
        a,
    );
    check_error(
        &put(&node, "/d", &[("value", "x")]),
        102,
        NOT_A_FILE,
        "/d",
        a,
    );
    check_error(
        &put(&node, "/d", &[("dir", "true"), ("value", "x")]),
        102,
        NOT_A_FILE,
        "/d",
        a,
    );
    check_ok(
        &get(&node, "/d"),
        200,
        &format!(r#"{{"action":"get","node":{dir_node}}}"#),
    );

    // A file replaced by a directory.
    let b = written(&put(&node, "/f", &[("value", "file")]), 201);
    let r = put(&node, "/f", &[("dir", "true")]);
    let c = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"set","node":{"key":"/f","dir":true,"modifiedIndex":<c>,"createdIndex":<c>},"prevNode":{"key":"/f","value":"file","modifiedIndex":<b>,"createdIndex":<b>}}"#,
            &[("b", b), ("c", c)],
        ),
    );

    // A new directory with a value: the value is ignored.
    let r = put(&node, "/dd", &[("dir", "true"), ("value", "x")]);
    let d = written(&r, 201);
    check_ok(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/dd","dir":true,"modifiedIndex":<d>,"createdIndex":<d>}}"#,
            &[("d", d)],
        ),
    );

    // A directory with a TTL, then the TTL cleared.
    let r = put(&node, "/d2", &[("dir", "true"), ("ttl", "100")]);
    let e = written(&r, 201);
    check_ok_ttl(
        &r,
        201,
        &fill(
            r#"{"action":"set","node":{"key":"/d2","dir":true,"expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<e>,"createdIndex":<e>}}"#,
            &[("e", e)],
        ),
        &[100],
    );
    let r = put(&node, "/d2?prevExist=true", &[("dir", "true"), ("ttl", "")]);
    let g = written(&r, 200);
    check_ok_ttl(
        &r,
        200,
        &fill(
            r#"{"action":"update","node":{"key":"/d2","dir":true,"modifiedIndex":<g>,"createdIndex":<e>},"prevNode":{"key":"/d2","dir":true,"expiration":"<EXPIRATION>","ttl":<TTL>,"modifiedIndex":<e>,"createdIndex":<e>}}"#,
            &[("e", e), ("g", g)],
        ),
        &[100],
    );
    check_ok(
        &get(&node, "/d2"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/d2","dir":true,"modifiedIndex":<g>,"createdIndex":<e>}}"#,
            &[("e", e), ("g", g)],
        ),
    );
}

/// The root is read only (400/107); writing below a file is 400/104; the `/_etcd` registry
/// is reserved for writes and deletes (400/106).
#[test]
fn put_on_root_below_a_file_and_in_the_reserved_prefix() {
    let node = start_node(&[]);
    let a = written(&put(&node, "/file", &[("value", "f")]), 201);

    check_error(
        &put(&node, "/", &[("value", "x")]),
        107,
        ROOT_READ_ONLY,
        "/",
        a,
    );
    check_error(
        &put(&node, "/", &[("dir", "true")]),
        107,
        ROOT_READ_ONLY,
        "/",
        a,
    );
    check_error(
        &put(&node, "/file/child", &[("value", "x")]),
        104,
        NOT_A_DIR,
        "/file",
        a,
    );
    check_error(
        &put(&node, "/file/child/deeper", &[("value", "x")]),
        104,
        NOT_A_DIR,
        "/file",
        a,
    );

    check_error(
        &put(&node, "/_etcd/x", &[("value", "a")]),
        106,
        KEYWORD,
        "/_etcd/x",
        a,
    );
    check_error(
        &put(&node, "/_etcd", &[("dir", "true")]),
        106,
        KEYWORD,
        "/_etcd",
        a,
    );
    check_error(
        &delete(&node, "/_etcd/machines?recursive=true"),
        106,
        KEYWORD,
        "/_etcd/machines",
        a,
    );
    check_error(
        &delete(&node, "/_etcd/machines/node0"),
        106,
        KEYWORD,
        "/_etcd/machines/node0",
        a,
    );

    // The registry is intact and still readable; nothing was written.
    let r = get(&node, "/_etcd/machines/node0");
    assert_eq!(r.status, 200, "GET /_etcd/machines/node0: {}", r.text());
    check_success_headers(&r);
    check_error(&get(&node, "/nope"), 100, KEY_NOT_FOUND, "/nope", a);
}

// ---------------------------------------------------------------------------------------------
// POST
// ---------------------------------------------------------------------------------------------

/// POST creates in-order keys named by their 20-digit zero-padded index, increasing; the
/// listing is sorted; POST below a file is 400/104.
#[test]
fn post_creates_in_order_keys() {
    let node = start_node(&[]);
    let mut created = Vec::new();
    for job in ["job1", "job2", "job3"] {
        let r = node.send_form("POST", &keys("/q"), &[("value", job)]);
        let i = written(&r, 201);
        check_ok(
            &r,
            201,
            &format!(
                r#"{{"action":"create","node":{{"key":"/q/{i:020}","value":"{job}","modifiedIndex":{i},"createdIndex":{i}}}}}"#
            ),
        );
        created.push((i, job));
    }
    assert!(
        created.windows(2).all(|w| w[0].0 < w[1].0),
        "in-order keys increase: {created:?}"
    );
    let first = created[0].0;
    let nodes: Vec<String> = created
        .iter()
        .map(|(i, job)| {
            format!(
                r#"{{"key":"/q/{i:020}","value":"{job}","modifiedIndex":{i},"createdIndex":{i}}}"#
            )
        })
        .collect();
    let listing = format!(
        r#"{{"action":"get","node":{{"key":"/q","dir":true,"nodes":[{}],"modifiedIndex":{first},"createdIndex":{first}}}}}"#,
        nodes.join(",")
    );
    check_ok(&get(&node, "/q?recursive=true&sorted=true"), 200, &listing);
    check_ok(&get(&node, "/q"), 200, &listing);

    let f = written(&put(&node, "/file", &[("value", "f")]), 201);
    check_error(
        &node.send_form("POST", &keys("/file"), &[("value", "x")]),
        104,
        NOT_A_DIR,
        "/file",
        f,
    );
}

// ---------------------------------------------------------------------------------------------
// DELETE
// ---------------------------------------------------------------------------------------------

/// DELETE of a file (200 "delete", node without value), of directories (403/102 without
/// flags, 403/108 non-empty with `dir=true`, 200 with `recursive=true` or empty with
/// `dir=true`), of a file with `dir=true`, of the root (400/107) and of a missing key (404).
#[test]
fn delete_files_and_directories() {
    let node = start_node(&[]);

    let a = written(&put(&node, "/f", &[("value", "v")]), 201);
    let r = delete(&node, "/f");
    let b = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"delete","node":{"key":"/f","modifiedIndex":<b>,"createdIndex":<a>},"prevNode":{"key":"/f","value":"v","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
    );
    check_error(&get(&node, "/f"), 100, KEY_NOT_FOUND, "/f", b);
    check_error(
        &delete(&node, "/nothere"),
        100,
        KEY_NOT_FOUND,
        "/nothere",
        b,
    );
    check_error(&delete(&node, "/f"), 100, KEY_NOT_FOUND, "/f", b);

    let c = written(&put(&node, "/dir/x", &[("value", "x")]), 201);
    check_error(&delete(&node, "/dir"), 102, NOT_A_FILE, "/dir", c);
    check_error(
        &delete(&node, "/dir?dir=true"),
        108,
        DIR_NOT_EMPTY,
        "/dir",
        c,
    );
    let r = delete(&node, "/dir?recursive=true");
    let d = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"delete","node":{"key":"/dir","dir":true,"modifiedIndex":<d>,"createdIndex":<c>},"prevNode":{"key":"/dir","dir":true,"modifiedIndex":<c>,"createdIndex":<c>}}"#,
            &[("c", c), ("d", d)],
        ),
    );
    check_error(&get(&node, "/dir/x"), 100, KEY_NOT_FOUND, "/dir", d);

    // An empty directory with dir=true.
    let e = written(&put(&node, "/e", &[("dir", "true")]), 201);
    let r = delete(&node, "/e?dir=true");
    let g = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"delete","node":{"key":"/e","dir":true,"modifiedIndex":<g>,"createdIndex":<e>},"prevNode":{"key":"/e","dir":true,"modifiedIndex":<e>,"createdIndex":<e>}}"#,
            &[("e", e), ("g", g)],
        ),
    );

    // A file with dir=true is deleted like a file.
    let h = written(&put(&node, "/g", &[("value", "file")]), 201);
    let r = delete(&node, "/g?dir=true");
    let i = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"delete","node":{"key":"/g","modifiedIndex":<i>,"createdIndex":<h>},"prevNode":{"key":"/g","value":"file","modifiedIndex":<h>,"createdIndex":<h>}}"#,
            &[("h", h), ("i", i)],
        ),
    );

    // The root.
    for path in ["/", "/?recursive=true", "/?dir=true"] {
        check_error(&delete(&node, path), 107, ROOT_READ_ONLY, "/", i);
    }
}

/// DELETE with `prevValue`/`prevIndex`: 200 "compareAndDelete"; 412/101 on a mismatch;
/// 404/100 on a missing key; 403/102 on a directory.
#[test]
fn compare_and_delete() {
    let node = start_node(&[]);
    let a = written(&put(&node, "/c", &[("value", "one")]), 201);

    check_error(
        &delete(&node, "/c?prevValue=two"),
        101,
        COMPARE_FAILED,
        "[two != one]",
        a,
    );
    check_error(
        &delete(&node, "/c?prevIndex=1"),
        101,
        COMPARE_FAILED,
        &format!("[1 != {a}]"),
        a,
    );
    check_error(
        &delete(&node, "/c?prevValue=two&prevIndex=1"),
        101,
        COMPARE_FAILED,
        &format!("[two != one] [1 != {a}]"),
        a,
    );

    let r = delete(&node, "/c?prevValue=one");
    let b = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndDelete","node":{"key":"/c","modifiedIndex":<b>,"createdIndex":<a>},"prevNode":{"key":"/c","value":"one","modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a), ("b", b)],
        ),
    );
    check_error(
        &delete(&node, "/c?prevValue=one"),
        100,
        KEY_NOT_FOUND,
        "/c",
        b,
    );
    check_error(
        &delete(&node, "/c?prevIndex=3"),
        100,
        KEY_NOT_FOUND,
        "/c",
        b,
    );

    let c = written(&put(&node, "/c2", &[("value", "v")]), 201);
    let r = delete(&node, &format!("/c2?prevIndex={c}"));
    let d = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndDelete","node":{"key":"/c2","modifiedIndex":<d>,"createdIndex":<c>},"prevNode":{"key":"/c2","value":"v","modifiedIndex":<c>,"createdIndex":<c>}}"#,
            &[("c", c), ("d", d)],
        ),
    );

    let e = written(&put(&node, "/cd/x", &[("value", "x")]), 201);
    check_error(&delete(&node, "/cd?prevValue=x"), 102, NOT_A_FILE, "/cd", e);
    check_error(
        &delete(&node, "/cd?recursive=true&prevIndex=1"),
        102,
        NOT_A_FILE,
        "/cd",
        e,
    );
}

// ---------------------------------------------------------------------------------------------
// Headers and methods
// ---------------------------------------------------------------------------------------------

/// Successes carry `X-Etcd-Index`, `X-Raft-Index` and `X-Raft-Term`; errors only
/// `X-Etcd-Index`; every body is JSON ending with a newline. `X-Raft-Index` (applied) is
/// never below `X-Etcd-Index` (last change): checked over many writes, as a lag would be a
/// race between answering and recording the applied index.
#[test]
fn index_headers_on_successes_and_errors() {
    let node = start_node(&[]);

    let r = put(&node, "/h", &[("value", "1")]);
    let a = written(&r, 201);
    assert_eq!(check_success_headers(&r), a);
    let term = header_u64(&r, "x-raft-term");

    let r = get(&node, "/h");
    assert_eq!(r.status, 200);
    assert_eq!(check_success_headers(&r), a, "X-Etcd-Index of a GET");
    assert_eq!(
        header_u64(&r, "x-raft-term"),
        term,
        "a stable single node keeps its term"
    );

    let r = get_at_once(&node, &format!("/h?wait=true&waitIndex={a}"));
    assert_eq!(r.status, 200, "{}", r.text());
    check_success_headers(&r);

    // Errors: X-Etcd-Index only (0 for validation errors).
    check_error(&get(&node, "/nope"), 100, KEY_NOT_FOUND, "/nope", a);
    check_error(
        &put(&node, "/h", &[("ttl", "x")]),
        202,
        TTL_NAN,
        r#"invalid value for \"ttl\""#,
        0,
    );

    let r = delete(&node, "/h");
    let b = written(&r, 200);
    assert_eq!(check_success_headers(&r), b);

    // The applied index covers every answered change, and never goes back.
    let mut raft_seen = 0;
    for i in 0..40 {
        let w = put(&node, &format!("/h{}", i % 4), &[("value", "v")]);
        let index = written(&w, if i < 4 { 201 } else { 200 });
        let g = get(&node, &format!("/h{}", i % 4));
        assert_eq!(check_success_headers(&g), index);
        for r in [&w, &g] {
            check_raft_index_covers(r);
            let raft = header_u64(r, "x-raft-index");
            assert!(
                raft >= raft_seen,
                "X-Raft-Index went back: {raft} < {raft_seen}"
            );
            raft_seen = raft;
        }
    }
}

/// Methods other than GET, HEAD, PUT, POST and DELETE are 405.
#[test]
fn unsupported_method_is_405() {
    let node = start_node(&[]);
    written(&put(&node, "/t1", &[("value", "a")]), 201);
    for path in ["/t1", "/", "/missing"] {
        let r = node.request("PATCH", &keys(path), None);
        assert_eq!(r.status, 405, "PATCH {path}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

/// A `wait=true` GET waits for the next change of the key and answers with exactly the
/// writer's event (200, even when the writer got 201).
#[test]
fn watch_is_woken_by_a_later_write() {
    let node = start_node(&[]);

    let mut w = watch(&node, "/w?wait=true");
    assert_quiet(&node, &mut w);
    let r = put(&node, "/w", &[("value", "1")]);
    written(&r, 201);
    check_event(&w.wait(WAKE_TIMEOUT), &r.text());

    // An update of an existing key, with prevNode.
    let mut w = watch(&node, "/w?wait=true");
    assert_quiet(&node, &mut w);
    let r = put(&node, "/w", &[("value", "2")]);
    written(&r, 200);
    check_event(&w.wait(WAKE_TIMEOUT), &r.text());

    // A delete.
    let mut w = watch(&node, "/w?wait=true");
    assert_quiet(&node, &mut w);
    let r = delete(&node, "/w");
    written(&r, 200);
    check_event(&w.wait(WAKE_TIMEOUT), &r.text());
}

/// `waitIndex` answers at once with the first recorded event at or after it that concerns
/// the key; when there is none yet, the watch waits for the next one.
#[test]
fn watch_from_history_returns_the_first_event_at_or_after_wait_index() {
    let node = start_node(&[]);
    let set1 = put(&node, "/h", &[("value", "1")]);
    let a = written(&set1, 201);
    let other = put(&node, "/other", &[("value", "o")]);
    let o = written(&other, 201);
    let set2 = put(&node, "/h", &[("value", "2")]);
    let b = written(&set2, 200);
    assert!(a < o && o < b);

    check_event(
        &get_at_once(&node, &format!("/h?wait=true&waitIndex={a}")),
        &set1.text(),
    );
    check_event(
        &get_at_once(&node, "/h?wait=true&waitIndex=1"),
        &set1.text(),
    );
    check_event(
        &get_at_once(&node, &format!("/h?wait=true&waitIndex={}", a + 1)),
        &set2.text(),
    );
    check_event(
        &get_at_once(
            &node,
            &format!("/?wait=true&recursive=true&waitIndex={}", a + 1),
        ),
        &other.text(),
    );
    check_event(
        &get_at_once(&node, &format!("/other?wait=true&waitIndex={a}")),
        &other.text(),
    );

    // Nothing on /h after b yet: waits for the next change.
    let mut w = watch(&node, &format!("/h?wait=true&waitIndex={}", b + 1));
    assert_quiet(&node, &mut w);
    written(&put(&node, "/other", &[("value", "p")]), 200);
    assert_quiet(&node, &mut w);
    let set3 = put(&node, "/h", &[("value", "3")]);
    written(&set3, 200);
    check_event(&w.wait(WAKE_TIMEOUT), &set3.text());
}

/// A recursive watch on a directory sees changes below it, a non-recursive one does not; a
/// recursive watch is not woken by keys below a hidden (`_`) segment under the watched
/// directory, but a watch on the hidden directory itself is.
#[test]
fn watch_recursive_non_recursive_and_hidden_keys() {
    let node = start_node(&[]);
    written(&put(&node, "/wd/_h/x", &[("value", "1")]), 201);
    written(&put(&node, "/wd2", &[("dir", "true")]), 201);

    let mut on_wd = watch(&node, "/wd?wait=true&recursive=true");
    let mut on_hidden = watch(&node, "/wd/_h?wait=true&recursive=true");
    let mut on_wd2 = watch(&node, "/wd2?wait=true");
    assert_quiet(&node, &mut on_wd);
    assert_quiet(&node, &mut on_hidden);
    assert_quiet(&node, &mut on_wd2);

    // Below a hidden segment: only the watch on the hidden directory fires.
    let hidden_write = put(&node, "/wd/_h/x", &[("value", "2")]);
    written(&hidden_write, 200);
    check_event(&on_hidden.wait(WAKE_TIMEOUT), &hidden_write.text());
    assert_quiet(&node, &mut on_wd);

    // A child of /wd2: a non-recursive watch on /wd2 does not fire.
    written(&put(&node, "/wd2/c", &[("value", "1")]), 201);
    assert_quiet(&node, &mut on_wd2);

    // A visible key below /wd wakes the recursive watch.
    let visible = put(&node, "/wd/y", &[("value", "1")]);
    written(&visible, 201);
    check_event(&on_wd.wait(WAKE_TIMEOUT), &visible.text());

    // Deleting /wd2 itself wakes its watch.
    let gone = delete(&node, "/wd2?recursive=true");
    written(&gone, 200);
    check_event(&on_wd2.wait(WAKE_TIMEOUT), &gone.text());
}

/// Deleting a directory wakes a watcher of a key inside it (even below a hidden segment);
/// the event is the directory's delete.
#[test]
fn watch_on_a_child_is_woken_by_deleting_the_parent_directory() {
    let node = start_node(&[]);
    written(&put(&node, "/wd/_h/x", &[("value", "1")]), 201);
    written(&put(&node, "/wd/y", &[("value", "1")]), 201);

    let mut on_hidden_child = watch(&node, "/wd/_h/x?wait=true");
    let mut on_child = watch(&node, "/wd/y?wait=true");
    assert_quiet(&node, &mut on_hidden_child);
    assert_quiet(&node, &mut on_child);

    let gone = delete(&node, "/wd?recursive=true");
    let d = written(&gone, 200);
    assert!(
        gone.text()
            .starts_with(r#"{"action":"delete","node":{"key":"/wd","dir":true,"#),
        "{}",
        gone.text()
    );
    check_event(&on_hidden_child.wait(WAKE_TIMEOUT), &gone.text());
    check_event(&on_child.wait(WAKE_TIMEOUT), &gone.text());

    // The same from history.
    check_event(
        &get_at_once(&node, &format!("/wd/y?wait=true&waitIndex={d}")),
        &gone.text(),
    );
}

/// A refresh (`refresh=true`) wakes no watcher and is skipped by history watches: the next
/// real write is what the watcher sees.
#[test]
fn refresh_does_not_wake_a_watcher() {
    let node = start_node(&[]);
    written(&put(&node, "/r", &[("value", "a"), ("ttl", "100")]), 201);

    let mut w = watch(&node, "/r?wait=true");
    let mut on_root = watch(&node, "/?wait=true&recursive=true");
    assert_quiet(&node, &mut w);
    let refresh = put(
        &node,
        "/r",
        &[("ttl", "50"), ("refresh", "true"), ("prevExist", "true")],
    );
    let refreshed = written(&refresh, 200);
    assert_quiet(&node, &mut w);
    assert_quiet(&node, &mut on_root);

    let write = put(&node, "/r", &[("value", "b")]);
    let b = written(&write, 200);
    assert!(b > refreshed);
    check_event(&w.wait(WAKE_TIMEOUT), &write.text());
    check_event(&on_root.wait(WAKE_TIMEOUT), &write.text());

    // From history, the refresh is skipped too.
    check_event(
        &get_at_once(&node, &format!("/r?wait=true&waitIndex={refreshed}")),
        &write.text(),
    );
}

/// A key with `ttl=1` expires: its watcher gets an "expire" event whose node has only key
/// and indexes and whose prevNode has the expiration but no `ttl`; the key is then gone.
#[test]
fn expiry_wakes_a_watcher_with_an_expire_event() {
    let node = start_node(&[]);
    let set = put(&node, "/ex", &[("value", "a"), ("ttl", "1")]);
    let s = written(&set, 201);
    let expiration = extract_expiration(&set.text()).expect("an expiration");

    let w = watch(&node, &format!("/ex?wait=true&waitIndex={}", s + 1));
    let r = w.wait(WAKE_TIMEOUT);
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json()["node"]["modifiedIndex"]
        .as_u64()
        .unwrap_or_else(|| panic!("no node.modifiedIndex in {}", r.text()));
    assert!(e > s, "the expiry is a later change: {}", r.text());
    check_event(
        &r,
        &format!(
            "{}\n",
            fill(
                &format!(
                    r#"{{"action":"expire","node":{{"key":"/ex","modifiedIndex":<e>,"createdIndex":<s>}},"prevNode":{{"key":"/ex","value":"a","expiration":"{expiration}","modifiedIndex":<s>,"createdIndex":<s>}}}}"#
                ),
                &[("e", e), ("s", s)],
            )
        ),
    );
    check_error(&get(&node, "/ex"), 100, KEY_NOT_FOUND, "/ex", e);
}

/// Two keys that expire together are two events with different indexes (a recursive watch
/// on their directory, re-armed after the first, sees both).
#[test]
fn two_keys_expiring_together_are_two_events() {
    let node = start_node(&[]);
    let set_a = put(&node, "/exd/a", &[("value", "va"), ("ttl", "1")]);
    let a = written(&set_a, 201);
    let set_b = put(&node, "/exd/b", &[("value", "vb"), ("ttl", "1")]);
    let b = written(&set_b, 201);
    let exp_a = extract_expiration(&set_a.text()).expect("an expiration");
    let exp_b = extract_expiration(&set_b.text()).expect("an expiration");

    let first = watch(
        &node,
        &format!("/exd?wait=true&recursive=true&waitIndex={}", b + 1),
    )
    .wait(WAKE_TIMEOUT);
    assert_eq!(first.status, 200, "{}", first.text());
    let e1 = first.json()["node"]["modifiedIndex"]
        .as_u64()
        .expect("index");
    let second = watch(
        &node,
        &format!("/exd?wait=true&recursive=true&waitIndex={}", e1 + 1),
    )
    .wait(WAKE_TIMEOUT);
    assert_eq!(second.status, 200, "{}", second.text());
    let e2 = second.json()["node"]["modifiedIndex"]
        .as_u64()
        .expect("index");
    assert!(
        e1 > b && e2 > e1,
        "two expiries at different indexes: {e1}, {e2}"
    );

    let expected = |key: &str, value: &str, exp: &str, created: u64, at: u64| {
        format!(
            r#"{{"action":"expire","node":{{"key":"{key}","modifiedIndex":{at},"createdIndex":{created}}},"prevNode":{{"key":"{key}","value":"{value}","expiration":"{exp}","modifiedIndex":{created},"createdIndex":{created}}}}}"#
        ) + "\n"
    };
    let first_key = first.json()["node"]["key"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let (k1, k2) = if first_key == "/exd/a" {
        (("/exd/a", "va", &exp_a, a), ("/exd/b", "vb", &exp_b, b))
    } else {
        (("/exd/b", "vb", &exp_b, b), ("/exd/a", "va", &exp_a, a))
    };
    check_event(&first, &expected(k1.0, k1.1, k1.2, k1.3, e1));
    check_event(&second, &expected(k2.0, k2.1, k2.2, k2.3, e2));

    // The directory stays, empty.
    check_ok(
        &get(&node, "/exd"),
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/exd","dir":true,"modifiedIndex":<a>,"createdIndex":<a>}}"#,
            &[("a", a)],
        ),
    );
}

/// `stream=true`: the head (200, index headers) arrives at once, then every event as one
/// JSON line on the same connection.
#[test]
fn stream_watch_delivers_consecutive_events_on_one_connection() {
    let node = start_node(&[]);
    let mut stream = EventStream::open(
        &node.client_addr(),
        &keys("/s?wait=true&stream=true&recursive=true"),
    );
    assert_eq!(stream.status, 200, "stream head {:?}", stream.headers);
    assert_eq!(stream.header("content-type"), Some("application/json"));
    for name in ["x-etcd-index", "x-raft-index", "x-raft-term"] {
        assert!(
            stream
                .header(name)
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "numeric {name} in the stream head {:?}",
            stream.headers
        );
    }

    let writes = [
        put(&node, "/s", &[("dir", "true")]),
        put(&node, "/s/a", &[("value", "1")]),
        put(&node, "/s/a", &[("value", "2")]),
    ];
    for w in &writes {
        assert!(w.status == 200 || w.status == 201, "{}", w.text());
    }
    for w in &writes {
        let line = stream.next_line(WAKE_TIMEOUT);
        assert_eq!(format!("{line}\n"), w.text(), "streamed event");
    }

    // Still open: a later write arrives too.
    let later = delete(&node, "/s/a");
    written(&later, 200);
    let line = stream.next_line(WAKE_TIMEOUT);
    assert_eq!(format!("{line}\n"), later.text(), "streamed event");
}

/// A `waitIndex` older than the kept history is 400/401 with the first kept index in the
/// cause. The node keeps 100 events (`-m 100`) so the test stays fast.
#[test]
fn wait_index_older_than_the_history_is_401() {
    const HISTORY: u64 = 100;
    let node = start_node(&["-m", "100"]);
    let mut key_at = std::collections::HashMap::new();
    let mut last = 0;
    for i in 0..HISTORY + 10 {
        let key = format!("/k{}", i % 7);
        let r = put(&node, &key, &[("value", &i.to_string())]);
        let index = written(&r, if i < 7 { 201 } else { 200 });
        if last != 0 {
            assert_eq!(
                index,
                last + 1,
                "sequential writes take consecutive indexes"
            );
        }
        last = index;
        key_at.insert(index, key);
    }
    let first_kept = last - HISTORY + 1;
    for since in [1, first_kept - 1] {
        check_error(
            &get_at_once(&node, &format!("/k0?wait=true&waitIndex={since}")),
            401,
            INDEX_CLEARED,
            &format!("the requested history has been cleared [{first_kept}/{since}]"),
            last,
        );
    }
    // The first kept event is still answered.
    let key = &key_at[&first_kept];
    let r = get_at_once(&node, &format!("{key}?wait=true&waitIndex={first_kept}"));
    assert_eq!(r.status, 200, "{}", r.text());
    check_success_headers(&r);
    assert_eq!(
        r.json()["node"]["modifiedIndex"].as_u64(),
        Some(first_kept),
        "{}",
        r.text()
    );
    let r = get_at_once(
        &node,
        &format!("/?wait=true&recursive=true&waitIndex={first_kept}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["node"]["modifiedIndex"].as_u64(), Some(first_kept));
}

// ---------------------------------------------------------------------------------------------
// v1 and v2 together
// ---------------------------------------------------------------------------------------------

/// The v1 and v2 APIs serve one store with one index.
#[test]
fn v1_and_v2_share_one_store_and_one_index() {
    let node = start_node(&[]);

    let n = node.set("x", "one");
    let r = get(&node, "/x");
    let index = check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"get","node":{"key":"/x","value":"one","modifiedIndex":<n>,"createdIndex":<n>}}"#,
            &[("n", n)],
        ),
    );
    assert_eq!(index, n, "X-Etcd-Index after the v1 write");

    let r = put(&node, "/y", &[("value", "two")]);
    let m = written(&r, 201);
    assert_eq!(m, n + 1, "v2 writes continue v1's index");
    assert_json(
        &node.get("/v1/keys/y"),
        200,
        &format!(r#"{{"action":"GET","key":"/y","value":"two","index":{m}}}"#),
    );
    let z = node.set("z", "three");
    assert_eq!(z, m + 1, "v1 writes continue v2's index");

    // A v2 compare-and-swap of a key v1 wrote, read back through v1.
    let r = put(&node, "/x?prevValue=one", &[("value", "uno")]);
    let s = written(&r, 200);
    check_ok(
        &r,
        200,
        &fill(
            r#"{"action":"compareAndSwap","node":{"key":"/x","value":"uno","modifiedIndex":<s>,"createdIndex":<n>},"prevNode":{"key":"/x","value":"one","modifiedIndex":<n>,"createdIndex":<n>}}"#,
            &[("n", n), ("s", s)],
        ),
    );
    assert_json(
        &node.get("/v1/keys/x"),
        200,
        &format!(r#"{{"action":"GET","key":"/x","value":"uno","index":{s}}}"#),
    );
}

// ---------------------------------------------------------------------------------------------
// Cluster and server endpoints
// ---------------------------------------------------------------------------------------------

/// `/version`, `/health`, `/v2/members`, `/v2/machines` and `/v2/stats/*` on a single node.
#[test]
fn version_health_members_machines_and_stats_on_a_single_node() {
    let node = start_node(&[]);

    let r = node.get("/version");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    let v = r.json();
    let fields = v.as_object().expect("an object");
    assert_eq!(fields.len(), 2, "/version: {}", r.text());
    let server = v["etcdserver"].as_str().expect("etcdserver is a string");
    let cluster = v["etcdcluster"].as_str().expect("etcdcluster is a string");
    // An etcd 3.5 release: tools that choose v3 by this version must.
    assert!(server.starts_with("3.5."), "{}", r.text());
    assert!(cluster.starts_with("3.5."), "{}", r.text());
    let parts: Vec<&str> = cluster.split('.').collect();
    assert!(
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts[2] == "0",
        "etcdcluster is x.y.0: {cluster:?}"
    );

    let r = node.get("/health");
    assert_eq!(
        (r.status, r.text().trim_end()),
        (200, r#"{"health":"true"}"#),
        "/health"
    );
    let health_content_type = r.content_type().to_string();

    let r = node.get("/v2/members");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    let id = r.json()["members"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no member id in {}", r.text()))
        .to_string();
    assert!(is_member_id(&id), "member id {id:?}");
    assert_eq!(
        r.text(),
        format!(
            r#"{{"members":[{{"id":"{id}","name":"node0","peerURLs":["{}"],"clientURLs":["{}"]}}]}}"#,
            node.peer_url(),
            node.client_url()
        ) + "\n"
    );

    assert_text(&node.get("/v2/machines"), 200, &node.client_url());

    let r = node.get("/v2/stats/self");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    let s = r.json();
    assert_eq!(s["name"], "node0", "{}", r.text());
    assert_eq!(s["id"], id.as_str(), "{}", r.text());
    assert_eq!(s["state"], "StateLeader", "{}", r.text());
    assert_eq!(s["leaderInfo"]["leader"], id.as_str(), "{}", r.text());
    for time in [&s["startTime"], &s["leaderInfo"]["startTime"]] {
        let t = time.as_str().unwrap_or_else(|| panic!("{}", r.text()));
        assert!(parse_rfc3339_nanos(t).is_some(), "RFC 3339 time {t:?}");
    }
    let uptime = s["leaderInfo"]["uptime"].as_str().expect("uptime");
    assert!(uptime.ends_with('s'), "uptime is a Go duration: {uptime:?}");
    assert!(s["recvAppendRequestCnt"].is_u64(), "{}", r.text());
    assert!(s["sendAppendRequestCnt"].is_u64(), "{}", r.text());

    let r = node.get("/v2/stats/leader");
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(
        (r.status, r.text().trim_end()),
        (
            200,
            format!(r#"{{"leader":"{id}","followers":{{}}}}"#).as_str()
        )
    );

    // Store stats: etcd's fields, in etcd's order, all numbers; they count v2 operations.
    let store_stats = |node: &Node| {
        let r = node.get("/v2/stats/store");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(
            digits_to_n(r.text().trim_end()),
            r#"{"getsSuccess":N,"getsFail":N,"setsSuccess":N,"setsFail":N,"deleteSuccess":N,"deleteFail":N,"updateSuccess":N,"updateFail":N,"createSuccess":N,"createFail":N,"compareAndSwapSuccess":N,"compareAndSwapFail":N,"compareAndDeleteSuccess":N,"compareAndDeleteFail":N,"expireCount":N,"watchers":N}"#,
            "{}",
            r.text()
        );
        r.json()
    };
    let before = store_stats(&node);
    written(&put(&node, "/st", &[("value", "1")]), 201);
    assert_eq!(get(&node, "/st").status, 200);
    assert_eq!(get(&node, "/nope").status, 404);
    let after = store_stats(&node);
    for (field, delta) in [("setsSuccess", 1), ("getsSuccess", 1), ("getsFail", 1)] {
        assert_eq!(
            after[field].as_u64().expect("a number"),
            before[field].as_u64().expect("a number") + delta,
            "{field}: before {before}, after {after}"
        );
    }

    // etcd sends /health's JSON as text/plain.
    assert!(
        health_content_type.starts_with("text/plain"),
        "/health Content-Type (etcd: text/plain; charset=utf-8): {health_content_type:?}"
    );
}

/// A 3-member cluster: a v2 write on a follower is readable with `quorum=true` on another
/// member; every member lists the 3 members and their client URLs and is healthy; the
/// leader's stats list the two followers.
#[test]
fn cluster_write_on_a_follower_quorum_read_members_machines_health() {
    let mut cluster = Cluster::start(3, &FAST_TIMING);
    let leader = cluster.leader();
    let followers = cluster.followers();
    let (writer, reader) = (followers[0], followers[1]);

    let r = put(cluster.member(writer), "/cx", &[("value", "v")]);
    let w = written(&r, 201);
    let expected_node = fill(
        r#"{"key":"/cx","value":"v","modifiedIndex":<w>,"createdIndex":<w>}"#,
        &[("w", w)],
    );
    check_ok(
        &r,
        201,
        &format!(r#"{{"action":"set","node":{expected_node}}}"#),
    );
    for i in [reader, leader] {
        let r = get(cluster.member(i), "/cx?quorum=true");
        let index = check_ok(
            &r,
            200,
            &format!(r#"{{"action":"get","node":{expected_node}}}"#),
        );
        assert!(
            index >= w,
            "X-Etcd-Index {index} of a quorum read after {w}"
        );
        let r = get(cluster.member(i), "/nope?quorum=true");
        assert_eq!(r.status, 404, "{}", r.text());
        let index = r.index();
        assert!(index >= w);
        check_error(&r, 100, KEY_NOT_FOUND, "/nope", index);
    }

    // Members: every member answers the same list, sorted by id.
    let r = cluster.member(0).get("/v2/members");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type(), "application/json");
    assert!(r.body.ends_with(b"\n"));
    let members = r.json()["members"].as_array().expect("members").clone();
    assert_eq!(members.len(), 3, "{}", r.text());
    let mut ids = Vec::new();
    let mut id_of = std::collections::HashMap::new();
    for m in &members {
        let id = m["id"].as_str().expect("id").to_string();
        assert!(is_member_id(&id), "member id {id:?}");
        let name = m["name"].as_str().expect("name");
        let node = cluster.member(cluster.index_of(name));
        assert_eq!(
            m.to_string(),
            format!(
                r#"{{"clientURLs":["{}"],"id":"{id}","name":"{name}","peerURLs":["{}"]}}"#,
                node.client_url(),
                node.peer_url()
            ),
            "member entry"
        );
        ids.push(u64::from_str_radix(&id, 16).expect("hex id"));
        id_of.insert(cluster.index_of(name), id);
    }
    assert_eq!(id_of.len(), 3, "three distinct members: {}", r.text());
    assert!(
        ids.windows(2).all(|p| p[0] < p[1]),
        "sorted by id: {}",
        r.text()
    );
    let mut urls: Vec<String> = (0..3).map(|i| cluster.member(i).client_url()).collect();
    urls.sort();
    let machines = urls.join(", ");
    let mut machines_answers = Vec::new();
    for i in 0..3 {
        let m = cluster.member(i);
        let again = m.get("/v2/members");
        assert_eq!(again.text(), r.text(), "/v2/members on {}", m.name);
        let mach = m.get("/v2/machines");
        assert_eq!(mach.status, 200, "/v2/machines on {}", m.name);
        assert!(
            mach.content_type().starts_with("text/plain"),
            "/v2/machines Content-Type: {:?}",
            mach.content_type()
        );
        let mut listed: Vec<String> = mach.text().split(", ").map(str::to_string).collect();
        listed.sort();
        assert_eq!(
            listed,
            urls,
            "/v2/machines on {}: {:?}",
            m.name,
            mach.text()
        );
        machines_answers.push((m.name.clone(), mach.text()));
        let h = m.get("/health");
        assert_eq!(
            (h.status, h.text().trim_end()),
            (200, r#"{"health":"true"}"#),
            "/health on {}",
            m.name
        );
    }

    // Stats: the leader lists its followers; a follower knows the leader.
    let r = cluster.member(leader).get("/v2/stats/leader");
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["leader"], id_of[&leader].as_str(), "{}", r.text());
    let mut follower_ids: Vec<&str> = s["followers"]
        .as_object()
        .unwrap_or_else(|| panic!("no followers object in {}", r.text()))
        .keys()
        .map(String::as_str)
        .collect();
    follower_ids.sort();
    let mut want: Vec<&str> = followers.iter().map(|f| id_of[f].as_str()).collect();
    want.sort();
    assert_eq!(follower_ids, want, "{}", r.text());

    let r = cluster.member(reader).get("/v2/stats/self");
    assert_eq!(r.status, 200, "{}", r.text());
    let s = r.json();
    assert_eq!(s["state"], "StateFollower", "{}", r.text());
    assert_eq!(s["id"], id_of[&reader].as_str(), "{}", r.text());
    assert_eq!(
        s["leaderInfo"]["leader"],
        id_of[&leader].as_str(),
        "{}",
        r.text()
    );

    let r = cluster.member(reader).get("/v2/stats/leader");
    assert_eq!(
        (r.status, r.text().trim_end()),
        (403, r#"{"message":"not current leader"}"#),
        "/v2/stats/leader on a follower"
    );

    // etcd sorts the client URLs of /v2/machines as strings.
    for (name, answer) in &machines_answers {
        assert_eq!(
            answer, &machines,
            "/v2/machines on {name}: etcd lists the client URLs sorted as strings"
        );
    }
}

/// `noValueOnSuccess=true` answers a successful set, create, update or compare-and-swap with
/// its action alone (etcd 3.4: `{"action":"set"}`); removals and failures answer in full; a
/// bad boolean is 209.
#[test]
fn no_value_on_success_answers_with_the_action_only() {
    let node = start_node(&[]);
    let r = put(&node, "/nv?noValueOnSuccess=true", &[("value", "1")]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.text(), "{\"action\":\"set\"}\n");
    check_success_headers(&r);
    let r = put(
        &node,
        "/nv?noValueOnSuccess=true&prevValue=1",
        &[("value", "2")],
    );
    assert_eq!(
        (r.status, r.text()),
        (200, "{\"action\":\"compareAndSwap\"}\n".to_string())
    );
    let r = put(
        &node,
        "/nv?noValueOnSuccess=true&prevValue=zz",
        &[("value", "3")],
    );
    assert_eq!(r.status, 412, "{}", r.text());
    assert_eq!(r.json()["errorCode"], 101);
    let r = delete(&node, "/nv?noValueOnSuccess=true");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["node"]["key"], "/nv");
    assert_eq!(r.json()["prevNode"]["value"], "2");
    let r = put(&node, "/nv?noValueOnSuccess=maybe", &[("value", "1")]);
    check_error(
        &r,
        209,
        INVALID_FIELD,
        r#"invalid value for \"noValueOnSuccess\""#,
        0,
    );
}

/// etcd 3.4's CORS headers on v2 answers and 200 to a preflight `OPTIONS`; none on v1.
#[test]
fn cors_headers_on_v2_and_preflight_options() {
    let node = start_node(&[]);
    let check = |r: &Response| {
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("POST, GET, OPTIONS, PUT, DELETE")
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("accept, content-type, authorization")
        );
    };
    let r = node.request("OPTIONS", "/v2/keys/foo", None);
    assert_eq!(r.status, 200, "{}", r.text());
    check(&r);
    check(&get(&node, "/missing"));
    check(&node.get("/version"));
    let v1 = node.get("/v1/keys/missing");
    assert_eq!(v1.header("access-control-allow-origin"), None);
}
