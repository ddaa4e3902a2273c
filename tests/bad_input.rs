//! Bad input, as a property: one live node receives hundreds of random requests, most of them
//! odd or malformed, and must answer every well-formed one in time, with a documented status and
//! (on `/v1/keys` and `/v1/watch`) a documented body, without losing or corrupting state.
//!
//! The requests are built from random methods (the usual ones, odd but valid tokens), paths
//! (keys with unicode, `.`/`..`/`//`, `%00`, `%2F`, invalid escapes, keys of 4096 bytes and more,
//! `_etcd` prefixes, very deep keys), query strings and form bodies (repeated and empty fields,
//! values above 1 MiB, binary bytes, invalid UTF-8, bad `ttl` and `index` numbers), content types
//! (urlencoded, well-formed and broken multipart, none, garbage), chunked bodies, HTTP/1.0,
//! absolute-form targets; plus raw malformed HTTP (bad request lines and headers, truncated or
//! badly chunked bodies), for which only "400 or closed" is required.
//!
//! The property for every well-formed request:
//! - a response arrives within `DEADLINE` (`AT_ONCE` for a watch; a watch that may legitimately
//!   wait, having no usable `index`, is sent with a `WATCH_WAIT` deadline, and only for such a
//!   watch is silence accepted);
//! - the status is 200, 400, 404, 405, 413 or 500 (plus 414/431 for a request target longer than
//!   64 KiB: hyper's limits for the request head, as Go's net/http answers 431 above 1 MiB);
//! - on `/v1/keys` and `/v1/watch`, every 4xx/5xx except 405 (and except answers to HEAD) is
//!   the error JSON with `Content-Type: application/json`, the spec's exact message for its code,
//!   and a code that matches the status (404: 100; 413: 213; 400: 101, 102, 200, 202, 203, 209,
//!   210, 400, 401; 500: 300, 301); 210 ("Invalid POST form") never answers a body that is a
//!   well-formed form; 405 never answers a method the endpoint supports;
//! - a 200 on `/v1/keys` is a JSON object (a key event with the action of the method; a write
//!   with `ttl` <= 0 deletes, so POST/PUT may answer DELETE) or a JSON array of GET entries; a
//!   200 on `/v1/watch` is one SET or DELETE event.
//!
//! Every `CHECK_EVERY` requests and at the end, the node must still run, `GET /v1/leader` must
//! answer 200 with its peer URL, and a canary write must read back. At the end the node is
//! killed (SIGKILL) and restarted on the same data directory: it must start, keep the canary,
//! and show the same key tree (keys without a TTL) as before the kill. The node takes a snapshot
//! every 16 entries, so the restart reads snapshots as well as the log.
//!
//! Reproduction: the seed is printed first; `ETCD_FUZZ_SEED=<seed>` replays it, and
//! `ETCD_FUZZ_CASES=<n>` changes the number of requests (default 400). Violations are collected
//! by kind (up to `MAX_VIOLATIONS` kinds) and reported with the seed, the first offending request
//! of each kind and its count; a dead node or a failed health check stops the run at once.

mod support;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::{parse_response, Node, Response};

/// Requests per run unless `ETCD_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: usize = 400;
/// Health check (liveness, leader, canary) after this many requests.
const CHECK_EVERY: usize = 50;
/// Every well-formed request (except a watch that may wait) is answered within this.
const DEADLINE: Duration = Duration::from_secs(5);
/// A malformed request is answered with 400, or the connection closed, within this.
const RAW_DEADLINE: Duration = Duration::from_secs(3);
/// How long a watch that may legitimately wait is given.
const WATCH_WAIT: Duration = Duration::from_millis(200);
/// `-max-value-bytes` (default): a larger value is 413/213.
const MAX_VALUE: usize = 1 << 20;
/// Largest body read (docs/api.md): 3 × the largest value + 64 KiB.
const BODY_LIMIT: usize = 3 * MAX_VALUE + (64 << 10);
/// Longest key (decoded bytes) accepted; a longer one is 400/209.
const MAX_KEY: usize = 4096;
/// Longest request target hyper parses; a longer one is answered 414 (or 431 for a huge head).
const MAX_URI: usize = 65534;
/// The node under test (`DELETE /v1/machines/<name>` must never name it).
const NODE_NAME: &str = "fuzz-node";
/// The canary key; no generated path reaches it.
const CANARY: &str = "/v1/keys/bad_input_canary";
/// Stop early after this many distinct kinds of violation.
const MAX_VIOLATIONS: usize = 20;
/// Bound on the listings fetched to compare the key tree across the restart.
const MAX_LISTINGS: usize = 400;

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/// xorshift64, seeded through splitmix64 (so that small seeds give well-mixed states).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")))
}

fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Which checks apply to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Area {
    Keys,
    Watch,
    Other,
}

/// The area of an origin-form path (no query).
fn classify(path: &str) -> Area {
    if path == "/v1/keys" || path.starts_with("/v1/keys/") {
        Area::Keys
    } else if path == "/v1/watch" || path.starts_with("/v1/watch/") {
        Area::Watch
    } else {
        Area::Other
    }
}

/// A well-formed HTTP request, on the wire and described.
struct Req {
    method: String,
    target: String,
    area: Area,
    content_type: Option<Vec<u8>>,
    /// The body before any chunked framing.
    body: Option<Vec<u8>>,
    /// Framing and extra headers, for the failure message.
    notes: Vec<String>,
    /// A watch that may legitimately stay pending.
    may_wait: bool,
    /// The body (if read at all) is a well-formed form: 210 would be wrong.
    form_ok: bool,
    /// What the generator meant to send.
    what: &'static str,
    wire: Vec<u8>,
}

impl Req {
    /// How long the answer may take: a watch that may wait is cut short; other watches must
    /// answer "at once"; everything else within `DEADLINE`.
    fn timeout(&self) -> Duration {
        match (self.may_wait, self.area) {
            (true, _) => WATCH_WAIT,
            (false, Area::Watch) => support::AT_ONCE,
            _ => DEADLINE,
        }
    }
}

/// A malformed request: only "400 or closed" is required.
struct Raw {
    what: &'static str,
    wire: Vec<u8>,
}

enum Case {
    Http(Req),
    Raw(Raw),
}

/// A request before framing.
struct Draft {
    method: String,
    path: String,
    query: Option<String>,
    content_type: Option<Vec<u8>>,
    body: Option<Vec<u8>>,
    form_ok: bool,
    may_wait: bool,
    what: &'static str,
}

impl Draft {
    fn new(method: &str, path: String, what: &'static str) -> Draft {
        Draft {
            method: method.to_string(),
            path,
            query: None,
            content_type: None,
            body: None,
            form_ok: true,
            may_wait: false,
            what,
        }
    }

    /// Chooses the framing (HTTP/1.0, chunked, `Expect`, absolute form, extra headers) and
    /// builds the bytes.
    fn finish(self, rng: &mut Rng, host: &str) -> Req {
        let mut notes = Vec::new();
        let area = classify(&self.path);
        let mut target = self.path.clone();
        if let Some(q) = &self.query {
            target.push('?');
            target.push_str(q);
        }
        if rng.chance(3) {
            target = format!("http://{host}{target}");
            notes.push("absolute-form target".to_string());
        }
        let http10 = rng.chance(4);
        let chunked = self.body.is_some() && !http10 && rng.chance(12);
        let expect = self.body.is_some() && self.method != "HEAD" && rng.chance(5);

        let mut head = Vec::new();
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        head.extend_from_slice(format!("{} {target} {version}\r\n", self.method).as_bytes());
        head.extend_from_slice(format!("Host: {host}\r\nConnection: close\r\n").as_bytes());
        if let Some(ct) = &self.content_type {
            head.extend_from_slice(b"Content-Type: ");
            head.extend_from_slice(ct);
            head.extend_from_slice(b"\r\n");
        }
        if expect {
            head.extend_from_slice(b"Expect: 100-continue\r\n");
            notes.push("Expect: 100-continue".to_string());
        }
        if http10 {
            notes.push("HTTP/1.0".to_string());
        }
        if rng.chance(8) {
            let (name, value): (&str, Vec<u8>) = match rng.below(5) {
                0 => ("X-Noise", b"\x80\xff obs-text \xc3\xa9".to_vec()),
                1 => ("Accept-Encoding", b"gzip, deflate, br".to_vec()),
                2 => ("X-Long", vec![b'h'; rng.range(1000, 8000)]),
                3 => ("Content-Encoding", b"gzip".to_vec()),
                _ => ("Cookie", b"a=b; c=%zz".to_vec()),
            };
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(&value);
            head.extend_from_slice(b"\r\n");
            notes.push(format!("{name}: ({} bytes)", value.len()));
        }
        let mut wire = head;
        match &self.body {
            Some(body) if chunked => {
                wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                let mut rest: &[u8] = body;
                while !rest.is_empty() {
                    let n = rng.range(1, rest.len().min(1 << 20));
                    let ext = if rng.chance(10) { ";ext=1" } else { "" };
                    wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                    wire.extend_from_slice(&rest[..n]);
                    wire.extend_from_slice(b"\r\n");
                    rest = &rest[n..];
                }
                wire.extend_from_slice(b"0\r\n\r\n");
                notes.push("chunked".to_string());
            }
            Some(body) => {
                wire.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                wire.extend_from_slice(body);
            }
            None if matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") => {
                wire.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            }
            None => wire.extend_from_slice(b"\r\n"),
        }
        Req {
            method: self.method,
            target,
            area,
            content_type: self.content_type,
            body: self.body,
            notes,
            may_wait: self.may_wait,
            form_ok: self.form_ok,
            what: self.what,
            wire,
        }
    }
}

/// The current state the generator may use (never to decide what to draw, only values).
struct Ctx {
    host: String,
    /// Index of the latest canary write: events at or below it exist under `/`.
    canary_index: u64,
}

// --- pieces -----------------------------------------------------------------------------------

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// Path segments as they appear on the wire (all valid in a request target).
const SEGMENTS: &[&str] = &[
    "a",
    "b",
    "foo",
    "dir",
    "x1",
    "message",
    "ключ",
    "日本語",
    "🦀",
    "é",
    "%C3%A9",
    "%F0%9F%A6%80",
    "..",
    ".",
    "",
    "%00",
    "a%00b",
    "%2F",
    "a%2Fb",
    "%2f",
    "%2E%2E",
    "%2e",
    "%zz",
    "%",
    "%4",
    "%%",
    "%25",
    "%FF",
    "%C3",
    "%80%80",
    "%ED%A0%80",
    "_etcd",
    "%5Fetcd",
    "_etcd%2Fmachines",
    "_ETCD",
    "_etcdx",
    "a+b",
    "a;b",
    "a=b",
    "a&b",
    "a:b",
    "a@b",
    "!$'()*,",
    "~",
    "%3F",
    "%23",
    "%20",
    "a%0Ab",
    "%0D%0A",
    "%7B%22json%22%7D",
];

const FIELD_NAMES: &[&str] = &[
    "value",
    "value",
    "value",
    "ttl",
    "ttl",
    "prevValue",
    "index",
    "consistent",
    "",
    "Value",
    "value[]",
    "x",
    "%76alue",
    // The v2 API's parameters (only /v2 reads them).
    "prevExist",
    "prevIndex",
    "dir",
    "recursive",
    "refresh",
    "quorum",
    "waitIndex",
    "wait",
    "stream",
    "sorted",
];

const TTLS: &[&str] = &[
    "abc",
    "-1",
    "99999999999999999999",
    "+5",
    "0",
    "1",
    "5",
    "100",
    "",
    " 5",
    "5s",
    "1.5",
    "-99999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "0x10",
];

const INDEXES: &[&str] = &[
    "-1",
    "x",
    "18446744073709551616",
    "18446744073709551615",
    "0",
    "1",
    "",
    "+1",
    "99999999",
    "1.5",
];

/// `index` values that are not a u64: 400/203 at once.
const BAD_INDEXES: &[&str] = &[
    "-1",
    "x",
    "18446744073709551616",
    "1.5",
    " 1",
    "0x10",
    "1e3",
    "١",
    "99999999999999999999999",
    "--1",
];

/// Member names for `/v1/machines/<name>`; none of them decodes to `NODE_NAME`.
const MACHINE_NAMES: &[&str] = &[
    "nobody",
    "node2",
    "%2F",
    "%FF",
    "..",
    "a%20b",
    "ünï",
    "_etcd",
    "fuzz-node2",
    "FUZZ-NODE",
    "fuzz-nod",
];

const OTHER_PATHS: &[&str] = &[
    "/",
    "/v2/keys/",
    "/v2/keys/d/x",
    "/v2/keys/_etcd/machines",
    "/v2/keys/%00",
    "/v2/members",
    "/v2/members/abc",
    "/v2/members/leader",
    "/v2/stats/self",
    "/v2/stats/store",
    "/v2/stats/leader",
    "/v2/machines",
    "/health",
    "/v1/machines",
    "/v1/leader",
    "/v1/stats",
    "/v1",
    "/v1/",
    "/v2/keys/a",
    "/v1/keysx",
    "/V1/keys/a",
    "//v1/keys/a",
    "/v1/watchers",
    "/version",
    "/raft",
    "/join",
    "/name",
    "/v1/machines/",
    "/v1/leader/",
    "/%2e%2e/v1/keys",
    "/favicon.ico",
    "/v1/keys%2Fa",
    "/v1/watch%2Fa",
    "*",
];

fn gen_method(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=24 => "GET".into(),
        25..=49 => "POST".into(),
        50..=61 => "PUT".into(),
        62..=73 => "DELETE".into(),
        74..=79 => "PATCH".into(),
        80..=85 => "HEAD".into(),
        86..=90 => "OPTIONS".into(),
        91..=92 => "A".repeat(rng.range(16, 300)),
        _ => rng
            .pick(&[
                "FOO", "get", "Post", "PROPFIND", "BREW", "M-SEARCH", "TRACE", "X_Y.Z~!", "CONNECT",
            ])
            .into(),
    }
}

/// What follows `/v1/keys` or `/v1/watch`.
fn gen_key_suffix(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=4 => String::new(),
        5..=9 => "/".to_string(),
        // Longer than 4096 bytes once decoded: 209.
        10..=12 => format!("/{}", "k".repeat(rng.range(MAX_KEY, 6000))),
        // Long on the wire, short once decoded: accepted.
        13..=14 => format!("/{}", "%41".repeat(rng.range(1700, 2000))),
        // Right at the limit: "/" + 4095 bytes is 4096 (accepted), + 4096 is 4097 (209).
        15..=16 => format!("/{}", "b".repeat(rng.range(MAX_KEY - 1, MAX_KEY))),
        // Very deep (up to ~2000 levels), still within 4096 bytes.
        17..=18 => format!("/{}x", "d/".repeat(rng.range(100, 2000))),
        // No slash after the prefix: another path altogether.
        19 => rng.pick(&["x", "%2Fa", "..", "_etcd"]).to_string(),
        _ => {
            let mut s = String::new();
            for _ in 0..rng.range(1, 4) {
                s.push_str(if rng.chance(10) { "//" } else { "/" });
                s.push_str(rng.pick(SEGMENTS));
            }
            if rng.chance(15) {
                s.push('/');
            }
            s
        }
    }
}

/// A value, as raw bytes (encoded later). `huge_permille`: chance of a value above 1 MiB.
fn gen_value(rng: &mut Rng, huge_permille: usize) -> Vec<u8> {
    if rng.below(1000) < huge_permille {
        let n = match rng.below(10) {
            0..=4 => MAX_VALUE + rng.range(1, 4096),
            5..=7 => rng.range(
                2 * MAX_VALUE + MAX_VALUE / 10,
                2 * MAX_VALUE + 9 * MAX_VALUE / 10,
            ),
            _ => rng.range(BODY_LIMIT + 1, BODY_LIMIT + MAX_VALUE / 2),
        };
        return vec![b'v'; n];
    }
    match rng.below(100) {
        0..=9 => Vec::new(),
        10..=39 => rng
            .pick(&["one", "two", "bar", "Hello world", "x", "0", "1", "true"])
            .into(),
        40..=49 => rng
            .pick(&["ключ", "日本語", "🦀🦀", "é", "\u{feff}", "\u{202e}rtl"])
            .into(),
        50..=59 => {
            let n = rng.range(1, 64);
            rng.bytes(n)
        }
        60..=64 => rng
            .pick(&[
                &b"\xff\xfe"[..],
                b"\xc3",
                b"a\x80b",
                b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80",
            ])
            .to_vec(),
        65 => vec![b'w'; MAX_VALUE],
        66..=67 => vec![b's'; rng.range(1000, 70_000)],
        _ => rng
            .pick(&[
                "=", "&", "%", "%zz", "a=b&c", "+", "  ", "\r\n", "\0", "%00", "value=x",
            ])
            .into(),
    }
}

fn gen_param(rng: &mut Rng, huge_permille: usize) -> (Vec<u8>, Vec<u8>) {
    let name = rng.pick(FIELD_NAMES);
    let value = match name {
        "ttl" => rng.pick(TTLS).as_bytes().to_vec(),
        "index" => rng.pick(INDEXES).as_bytes().to_vec(),
        "consistent" => rng.pick(&["true", "false", "1", ""]).as_bytes().to_vec(),
        _ => gen_value(rng, huge_permille),
    };
    (name.as_bytes().to_vec(), value)
}

fn percent_encode(bytes: &[u8], lower: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for &b in bytes {
        if UNRESERVED.contains(&b) {
            out.push(b);
        } else if b == b' ' {
            out.push(b'+');
        } else if lower {
            out.extend_from_slice(format!("%{b:02x}").as_bytes());
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// One form component. `raw_ok`: unencoded bytes are allowed (a body, not a query string).
fn encode_component(rng: &mut Rng, bytes: &[u8], raw_ok: bool) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => percent_encode(bytes, false),
        6 | 7 if raw_ok => bytes.to_vec(),
        6 | 7 => percent_encode(bytes, true),
        8 => {
            // An invalid escape somewhere.
            let mut out = percent_encode(bytes, false);
            let at = rng.range(0, out.len());
            let bad = rng.pick(&["%zz", "%", "%4", "%%", "%g0"]);
            out.splice(at..at, bad.bytes());
            out
        }
        _ => percent_encode(bytes, true),
    }
}

/// `k=v&k=v...` from pairs, with the occasional odd separator.
fn encode_form(rng: &mut Rng, pairs: &[(Vec<u8>, Vec<u8>)], raw_ok: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(if rng.chance(5) { b"&&" } else { b"&" });
        }
        out.extend(encode_component(rng, k, raw_ok));
        if !(v.is_empty() && rng.chance(30)) {
            out.push(b'=');
        }
        out.extend(encode_component(rng, v, raw_ok));
    }
    out
}

fn gen_query(rng: &mut Rng) -> Option<String> {
    if rng.chance(40) {
        return None;
    }
    if rng.chance(5) {
        return Some(
            rng.pick(&["", "value", "=x", "&&", "%zz", "index", "?", "a=1=2"])
                .into(),
        );
    }
    let pairs: Vec<_> = (0..rng.range(1, 4)).map(|_| gen_param(rng, 4)).collect();
    let bytes = encode_form(rng, &pairs, false);
    Some(String::from_utf8(bytes).expect("an encoded query is ASCII"))
}

/// A random token of boundary characters.
fn gen_boundary(rng: &mut Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let n = rng.range(1, 40);
    (0..n).map(|_| rng.pick(CHARS) as char).collect()
}

/// Names that are safe inside `name="..."`.
fn multipart_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).replace(['"', '\r', '\n', '\\'], "_")
}

/// A well-formed `multipart/form-data` body (at least one part).
fn gen_multipart(rng: &mut Rng, pairs: &[(Vec<u8>, Vec<u8>)], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    let dummy = [(b"x".to_vec(), b"y".to_vec())];
    let pairs = if pairs.is_empty() { &dummy[..] } else { pairs };
    for (name, value) in pairs {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"",
                multipart_name(name)
            )
            .as_bytes(),
        );
        if rng.chance(10) {
            body.extend_from_slice(b"; filename=\"f.txt\"");
        }
        body.extend_from_slice(b"\r\n");
        if rng.chance(10) {
            body.extend_from_slice(b"Content-Type: application/octet-stream\r\n");
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A body with its content type; `form_ok` is false only for bodies meant to be broken.
fn gen_body(rng: &mut Rng, d: &mut Draft) {
    gen_body_with(rng, d, Vec::new());
}

/// `gen_body` whose form starts with `lead`.
fn gen_body_with(rng: &mut Rng, d: &mut Draft, lead: Vec<(Vec<u8>, Vec<u8>)>) {
    let mut pairs = lead;
    pairs.extend((0..rng.range(0, 3)).map(|_| gen_param(rng, 15)));
    match rng.below(100) {
        0..=49 => {
            let ct = rng.pick(&[
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "APPLICATION/X-WWW-FORM-URLENCODED",
            ]);
            d.content_type = Some(ct.into());
            d.body = Some(encode_form(rng, &pairs, true));
        }
        50..=59 => {
            d.content_type = None;
            d.body = Some(encode_form(rng, &pairs, true));
        }
        60..=79 => {
            let boundary = gen_boundary(rng);
            let body = gen_multipart(rng, &pairs, &boundary);
            let delimiter = format!("--{boundary}");
            // A value that happens to hold the delimiter makes the body ambiguous.
            let clean = pairs
                .iter()
                .all(|(k, v)| !contains(v, delimiter.as_bytes()) && !contains(k, b"--"));
            let ct = if rng.chance(20) {
                format!("multipart/form-data; boundary=\"{boundary}\"")
            } else {
                format!("multipart/form-data; boundary={boundary}")
            };
            d.content_type = Some(ct.into_bytes());
            d.body = Some(body);
            d.form_ok = clean;
        }
        80..=89 => {
            let boundary = gen_boundary(rng);
            let good = gen_multipart(rng, &pairs, &boundary);
            let (ct, body) = match rng.below(8) {
                0 => {
                    // No close delimiter.
                    let cut = good.len() - boundary.len() - 6;
                    (format!("multipart/form-data; boundary={boundary}"), good[..cut].to_vec())
                }
                1 => (format!("multipart/form-data; boundary={boundary}X"), good),
                2 => ("multipart/form-data".to_string(), good),
                3 => {
                    let n = rng.range(1, 200);
                    (format!("multipart/form-data; boundary={boundary}"), rng.bytes(n))
                }
                4 => (
                    format!("multipart/form-data; boundary={boundary}"),
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"value\"\r\nvalue\r\n--{boundary}--\r\n")
                        .into_bytes(),
                ),
                5 => (format!("multipart/form-data; boundary={boundary}"), Vec::new()),
                6 => ("multipart/form-data; boundary=".to_string(), good),
                _ => {
                    let cut = rng.range(0, good.len().saturating_sub(1));
                    (format!("multipart/form-data; boundary={boundary}"), good[..cut].to_vec())
                }
            };
            d.content_type = Some(ct.into_bytes());
            d.body = Some(body);
            d.form_ok = false;
        }
        _ => {
            let ct: &[u8] = rng.pick(&[
                &b"text/plain"[..],
                b"application/json",
                b"foo",
                b"multipart/mixed; boundary=x",
                b";;;",
                b"",
                b"x/y; boundary=",
                b"application/x-www-form-urlencoded\xc3\xa9",
                b"application/x-www-form-urlencoded\x80",
            ]);
            d.content_type = Some(ct.to_vec());
            d.body = Some(if rng.chance(50) {
                encode_form(rng, &pairs, true)
            } else {
                let n = rng.range(0, 300);
                rng.bytes(n)
            });
        }
    }
}

/// Whether to attach a body: almost always for POST/PUT/PATCH, now and then for the others.
fn wants_body(rng: &mut Rng, method: &str) -> bool {
    if matches!(method, "POST" | "PUT" | "PATCH") {
        rng.chance(90)
    } else {
        rng.chance(10)
    }
}

fn gen_keys(rng: &mut Rng, ctx: &Ctx) -> Req {
    let method = gen_method(rng);
    let path = format!("/v1/keys{}", gen_key_suffix(rng));
    let mut d = Draft::new(&method, path, "random keys request");
    d.query = gen_query(rng);
    if matches!(method.as_str(), "POST" | "PUT") && rng.chance(50) {
        // A write that may well succeed: odd keys and values must survive the restart.
        let mut value = gen_value(rng, 15);
        if value.is_empty() {
            value.push(b'v');
        }
        gen_body_with(rng, &mut d, vec![(b"value".to_vec(), value)]);
        d.what = "keys write with a value";
    } else if wants_body(rng, &method) {
        gen_body(rng, &mut d);
    }
    d.finish(rng, &ctx.host)
}

/// A watch parameter `index=value`, in the query or (POST) in the body, nowhere else.
fn place_index(rng: &mut Rng, d: &mut Draft, value: &str) {
    let index = (b"index".to_vec(), value.as_bytes().to_vec());
    let mut noise: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if rng.chance(30) {
        noise.push((b"value".to_vec(), b"x".to_vec()));
    }
    if d.method == "POST" && rng.chance(60) {
        let mut pairs = noise;
        pairs.insert(rng.range(0, pairs.len()), index);
        if rng.chance(25) {
            let boundary = gen_boundary(rng);
            d.body = Some(gen_multipart(rng, &pairs, &boundary));
            d.content_type = Some(format!("multipart/form-data; boundary={boundary}").into_bytes());
        } else {
            d.body = Some(encode_pairs_exact(&pairs));
            d.content_type = Some(b"application/x-www-form-urlencoded".to_vec());
        }
    } else {
        let mut pairs = noise;
        pairs.push(index);
        d.query = Some(String::from_utf8(encode_pairs_exact(&pairs)).expect("ASCII"));
    }
}

/// `k=v&...`, properly encoded (no random damage).
fn encode_pairs_exact(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend(percent_encode(k, false));
        out.push(b'=');
        out.extend(percent_encode(v, false));
    }
    out
}

fn gen_watch(rng: &mut Rng, ctx: &Ctx) -> Req {
    let roll = rng.below(100);
    let method = if rng.chance(50) { "GET" } else { "POST" };
    match roll {
        // History that exists: a root (or canary) watch from an index at or below the
        // canary's: the event, or 401 if it was cleared; either way at once.
        0..=29 => {
            let prefix = rng.pick(&["", "/", "//", "/./", "/x/..", "/bad_input_canary"]);
            let index = 1 + rng.next() % ctx.canary_index.max(1);
            let mut d = Draft::new(
                method,
                format!("/v1/watch{prefix}"),
                "watch on recorded history",
            );
            place_index(rng, &mut d, &index.to_string());
            d.finish(rng, &ctx.host)
        }
        // Not a number: 400/203 at once.
        30..=54 => {
            let mut d = Draft::new(
                method,
                format!("/v1/watch{}", gen_key_suffix(rng)),
                "watch with a bad index",
            );
            let bad = rng.pick(BAD_INDEXES);
            place_index(rng, &mut d, bad);
            // A long key (209) is as good an answer; a path outside /v1/watch is another check.
            d.finish(rng, &ctx.host)
        }
        // Key too long: 400/209 at once.
        55..=64 => {
            let mut d = Draft::new(
                method,
                format!("/v1/watch/{}", "w".repeat(rng.range(MAX_KEY, 6000))),
                "watch on a key that is too long",
            );
            d.query = gen_query(rng);
            if method == "POST" && rng.chance(50) {
                gen_body(rng, &mut d);
            }
            d.finish(rng, &ctx.host)
        }
        // Unsupported method: 405 at once.
        65..=74 => {
            let method = rng.pick(&["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO", "get"]);
            let mut d = Draft::new(
                method,
                format!("/v1/watch{}", gen_key_suffix(rng)),
                "watch with an unsupported method",
            );
            d.query = gen_query(rng);
            if wants_body(rng, method) {
                gen_body(rng, &mut d);
            }
            d.finish(rng, &ctx.host)
        }
        // Anything: may wait for an event that never comes.
        _ => {
            let method = gen_method(rng);
            let mut d = Draft::new(
                &method,
                format!("/v1/watch{}", gen_key_suffix(rng)),
                "random watch",
            );
            d.query = gen_query(rng);
            if wants_body(rng, &method) {
                gen_body(rng, &mut d);
            }
            // Only GET and POST reach the long poll; anything else is 405 at once.
            d.may_wait = matches!(method.as_str(), "GET" | "POST");
            d.finish(rng, &ctx.host)
        }
    }
}

fn gen_other(rng: &mut Rng, ctx: &Ctx) -> Req {
    let method = gen_method(rng);
    let path = if rng.chance(20) {
        format!("/v1/machines/{}", rng.pick(MACHINE_NAMES))
    } else {
        rng.pick(OTHER_PATHS).to_string()
    };
    let mut d = Draft::new(
        &method,
        path,
        "random request outside /v1/keys and /v1/watch",
    );
    d.query = gen_query(rng);
    if wants_body(rng, &method) {
        gen_body(rng, &mut d);
    }
    // A v2 GET with `wait` is a long poll.
    d.may_wait =
        d.path.starts_with("/v2/") && d.query.as_deref().is_some_and(|q| q.contains("wait"));
    d.finish(rng, &ctx.host)
}

fn gen_raw(rng: &mut Rng, ctx: &Ctx) -> Raw {
    let host = &ctx.host;
    let key = rng.pick(&["a", "b", "dir/x", "%2F", "ключ"]);
    let (what, wire): (&'static str, Vec<u8>) = match rng.below(10) {
        0 => (
            "bad request line",
            rng.pick(&[
                &b"GARBAGE\r\n\r\n"[..],
                b"GET\r\n\r\n",
                b"GET /v1/keys/a\r\n\r\n",
                b" GET /v1/keys/a HTTP/1.1\r\n\r\n",
                b"GET  /v1/keys/a HTTP/1.1\r\n\r\n",
                b"GET /v1/keys/a HTTP/1.1 extra\r\n\r\n",
                b"GET /v1/keys/a HTTP/2.0\r\n\r\n",
                b"GET /v1/keys/a HTTP/9.9\r\n\r\n",
                b"get /v1/keys/a http/1.1\r\n\r\n",
                b"GET /v1/keys/a HTTP/1.1\r\r\n\r\n",
            ])
            .to_vec(),
        ),
        1 => {
            let target: &[u8] = rng.pick(&[
                &b"/v1/keys/<a>"[..],
                b"/v1/keys/a b",
                b"/v1/keys/\xff\xfe",
                b"/v1/keys/`x`",
                b"/v1/keys/a\x00b",
                b"/v1/keys/a\x7f",
                b"/v1/watch/\xc3",
                b"/v1/keys/a?x=<y>",
            ]);
            let mut w = b"GET ".to_vec();
            w.extend_from_slice(target);
            w.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
            ("bad request target", w)
        }
        2 => {
            let method: &[u8] = rng.pick(&[&b"G(T"[..], b"GE\"T", b"GET\x00", b"\x80GET", b"G@T"]);
            let mut w = method.to_vec();
            w.extend_from_slice(
                format!(" /v1/keys/{key} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            );
            ("bad method token", w)
        }
        3 => {
            let header: &[u8] = rng.pick(&[
                &b"Foo bar"[..],
                b"Host : x",
                b"X: a\x00b",
                b"X: a\r\n b",
                b"X Y: z",
                b": x",
                b"\x01: y",
                b"Content-Length: abc",
                b"Content-Length: -1",
                b"Content-Length: +5",
                b"Content-Length: 1, 2",
                b"Content-Length: 1\r\nContent-Length: 2",
                b"Content-Length: 99999999999999999999999",
                b"Transfer-Encoding: gzip",
                b"Transfer-Encoding: chunked, gzip",
            ]);
            let method = rng.pick(&["GET", "POST", "PUT", "DELETE"]);
            let mut w =
                format!("{method} /v1/keys/{key} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
            w.extend_from_slice(header);
            w.extend_from_slice(b"\r\n\r\nvalue=x");
            ("bad header", w)
        }
        4 | 5 => {
            // A body shorter than its Content-Length, on a request that reads its body.
            let (method, path) = rng.pick(&[
                ("POST", "/v1/keys/"),
                ("PUT", "/v1/keys/"),
                ("POST", "/v1/watch/"),
            ]);
            let sent = match rng.below(3) {
                0 => b"value=x".to_vec(),
                1 => b"--B\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nx".to_vec(),
                _ => Vec::new(),
            };
            let declared = sent.len() + rng.range(1, 4096);
            let ct = if sent.starts_with(b"--") {
                "multipart/form-data; boundary=B"
            } else {
                "application/x-www-form-urlencoded"
            };
            let mut w = format!(
                "{method} {path}{key} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ct}\r\nContent-Length: {declared}\r\n\r\n"
            )
            .into_bytes();
            w.extend_from_slice(&sent);
            ("truncated body (Content-Length larger than sent)", w)
        }
        6 => {
            let (method, path) = rng.pick(&[("POST", "/v1/keys/"), ("POST", "/v1/watch/")]);
            let chunks: &[u8] = rng.pick(&[
                &b"zz\r\nvalue=x\r\n0\r\n\r\n"[..],
                b"5\r\nvalue",
                b"7\r\nvalue=xXX0\r\n\r\n",
                b"ffffffffffffffffffff\r\nvalue=x\r\n0\r\n\r\n",
                b"-1\r\nvalue=x\r\n0\r\n\r\n",
                b"7\r\nvalue=x\r\n",
            ]);
            let mut w = format!(
                "{method} {path}{key} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .into_bytes();
            w.extend_from_slice(chunks);
            ("bad chunked body", w)
        }
        7 => {
            let full = format!(
                "POST /v1/keys/{key}?ttl=5 HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\n"
            );
            let cut = rng.range(0, full.len() - 3);
            ("truncated request head", full.as_bytes()[..cut].to_vec())
        }
        8 => {
            let n = rng.range(1, 512);
            ("random bytes", rng.bytes(n))
        }
        _ => (
            "not HTTP",
            rng.pick(&[
                &b""[..],
                b"\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                b"\x00\x00\x00\x00",
            ])
            .to_vec(),
        ),
    };
    Raw { what, wire }
}

fn gen_case(rng: &mut Rng, ctx: &Ctx) -> Case {
    match rng.below(100) {
        0..=7 => Case::Raw(gen_raw(rng, ctx)),
        8..=27 => Case::Http(gen_watch(rng, ctx)),
        28..=77 => Case::Http(gen_keys(rng, ctx)),
        _ => Case::Http(gen_other(rng, ctx)),
    }
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// What came back on one connection.
enum Outcome {
    Response(Response),
    /// The connection ended (EOF or error) before a complete response; the bytes received.
    Closed(Vec<u8>, String),
    /// The deadline passed before a complete response; the bytes received.
    TimedOut(Vec<u8>),
    /// Connecting failed, or the bytes received are not HTTP.
    Broken(String),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The response to a HEAD request: the head only, whatever its length headers say.
fn parse_head_only(buf: &[u8]) -> Result<Option<Response>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|line| {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            name != "content-length" && name != "transfer-encoding"
        })
        .collect();
    let synthetic = format!("{}\r\ncontent-length: 0\r\n\r\n", kept.join("\r\n"));
    parse_response(synthetic.as_bytes(), false)
}

/// Sends `wire` on a fresh connection (from a second thread when large, so an early answer
/// is never lost), optionally half-closes, and reads one response until `timeout`.
fn exchange(
    addr: SocketAddr,
    wire: Vec<u8>,
    timeout: Duration,
    head_only: bool,
    half_close: bool,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut stream = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("connect: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(timeout));
    let writer = if wire.len() > 64 * 1024 {
        let mut w = match stream.try_clone() {
            Ok(w) => w,
            Err(e) => return Outcome::Broken(format!("clone: {e}")),
        };
        Some(thread::spawn(move || {
            // A write error (the server answered early and closed) shows in what is read.
            let _ = w.write_all(&wire);
            if half_close {
                let _ = w.shutdown(Shutdown::Write);
            }
        }))
    } else {
        let _ = stream.write_all(&wire);
        if half_close {
            let _ = stream.shutdown(Shutdown::Write);
        }
        None
    };
    let parse = |buf: &[u8], eof: bool| {
        if head_only {
            parse_head_only(buf)
        } else {
            parse_response(buf, eof)
        }
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Outcome::TimedOut(buf);
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => {
                break match parse(&buf, true) {
                    Ok(Some(r)) => Outcome::Response(r),
                    _ => Outcome::Closed(buf, "end of stream".to_string()),
                }
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                match parse(&buf, false) {
                    Ok(Some(r)) => break Outcome::Response(r),
                    Ok(None) => {}
                    Err(e) => break Outcome::Broken(format!("unparseable response: {e}")),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Outcome::TimedOut(buf)
            }
            Err(e) => {
                break match parse(&buf, true) {
                    Ok(Some(r)) => Outcome::Response(r),
                    _ => Outcome::Closed(buf, e.to_string()),
                }
            }
        }
    };
    drop(stream);
    if let Some(w) = writer {
        let _ = w.join();
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// The spec's exact message for each error code.
fn message_of(code: u64) -> Option<&'static str> {
    Some(match code {
        100 => "Key Not Found",
        101 => "The given PrevValue is not equal to the value of the key",
        102 => "Not A File",
        103 => "Reached the max number of machines in the cluster",
        200 => "Value is Required in POST form",
        202 => "The given TTL in POST form is not a number",
        203 => "The given index in POST form is not a number",
        209 => "Invalid field",
        210 => "Invalid POST form",
        213 => "Request entity too large",
        300 => "Raft Internal Error",
        301 => "During Leader Election",
        400 => "The prefix of the given key is a keyword in etcd",
        401 => "The event in requested index is outdated and cleared",
        _ => return None,
    })
}

/// The error codes an API error with this status may carry.
fn codes_for(status: u16) -> &'static [u64] {
    match status {
        404 => &[100],
        413 => &[213],
        400 => &[101, 102, 200, 202, 203, 209, 210, 400, 401],
        500 => &[300, 301],
        _ => &[],
    }
}

fn short_text(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    let mut s = shown.escape_ascii().to_string();
    if bytes.len() > limit {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

fn describe_response(r: &Response) -> String {
    format!(
        "{} (Content-Type {:?}) {}",
        r.status,
        r.content_type(),
        short_text(&r.body, 300)
    )
}

fn check_error_json(r: &Response) -> Result<u64, String> {
    if r.content_type() != "application/json" {
        return Err("error answer without Content-Type: application/json".into());
    }
    if !r.body.starts_with(b"{\"errorCode\":") {
        return Err("error answer does not start with {\"errorCode\":".into());
    }
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("error answer is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("error answer is not a JSON object")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "errorCode" | "message" | "cause"))
    {
        return Err(format!("error answer has an unexpected field {k:?}"));
    }
    let code = obj["errorCode"]
        .as_u64()
        .ok_or("errorCode is not a number")?;
    let expected = message_of(code).ok_or_else(|| format!("unknown errorCode {code}"))?;
    if obj.get("message").and_then(Value::as_str) != Some(expected) {
        return Err(format!(
            "errorCode {code} with a message other than {expected:?}"
        ));
    }
    if obj.get("cause").is_some_and(|c| !c.is_string()) {
        return Err("cause is not a string".into());
    }
    if !codes_for(r.status).contains(&code) {
        return Err(format!(
            "errorCode {code} does not belong with status {} (expected one of {:?})",
            r.status,
            codes_for(r.status)
        ));
    }
    Ok(code)
}

/// A key event object: known fields only, `action` among `actions`, `key` absolute, `index`.
fn check_event(v: &Value, actions: &[&str]) -> Result<(), String> {
    let obj = v.as_object().ok_or("not a JSON object")?;
    for (k, field) in obj {
        let ok = match k.as_str() {
            "action" => field.as_str().is_some_and(|a| actions.contains(&a)),
            "key" => field.as_str().is_some_and(|k| k.starts_with('/')),
            "dir" | "newKey" => field == &Value::Bool(true),
            "prevValue" | "value" | "expiration" => field.is_string(),
            "ttl" => field.is_i64() || field.is_u64(),
            "index" => field.is_u64(),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "field {k:?} = {field} is not expected (actions {actions:?})"
            ));
        }
    }
    for required in ["action", "key", "index"] {
        if !obj.contains_key(required) {
            return Err(format!("no {required:?} field"));
        }
    }
    Ok(())
}

fn check_ok_body(req: &Req, r: &Response) -> Result<(), String> {
    if r.content_type() != "application/json" {
        return Err("200 without Content-Type: application/json".into());
    }
    let v: Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("200 body is not JSON: {e}"))?;
    match (req.area, req.method.as_str()) {
        (Area::Watch, _) => check_event(&v, &["SET", "DELETE"]),
        (_, "GET") => match &v {
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| check_event(item, &["GET"])),
            _ => check_event(&v, &["GET"]),
        },
        // `ttl` <= 0 deletes the key (spec section 5): a write may answer a DELETE event.
        (_, "POST" | "PUT") => check_event(&v, &["SET", "DELETE"]),
        (_, "DELETE") => check_event(&v, &["DELETE"]),
        (_, m) => Err(format!("200 for method {m:?}")),
    }
}

fn check_response(req: &Req, r: &Response) -> Result<(), String> {
    let long_target = req.target.len() > MAX_URI;
    // The v2 API's answers (docs/api-v2.md) include created, conflicts and preconditions.
    // (The target may be in absolute form, `http://host/v2/...`.)
    let v2 = req.target.starts_with("/v2/") || req.target.contains("/v2/");
    let allowed = matches!(r.status, 200 | 400 | 404 | 405 | 413 | 500)
        || (v2 && matches!(r.status, 201 | 204 | 403 | 409 | 410 | 412 | 415 | 503))
        || (long_target && matches!(r.status, 414 | 431));
    if !allowed {
        return Err(format!(
            "status {} is not one of 200, 400, 404, 405, 413, 500 (nor, for /v2, 201, 204, \
             403, 409, 410, 412, 415, 503)",
            r.status
        ));
    }
    if matches!(r.status, 414 | 431) || req.area == Area::Other {
        return Ok(());
    }
    let supported: &[&str] = match req.area {
        Area::Keys => &["GET", "POST", "PUT", "DELETE"],
        _ => &["GET", "POST"],
    };
    if r.status == 405 {
        return if supported.contains(&req.method.as_str()) {
            Err(format!(
                "405 for {}, which the endpoint supports",
                req.method
            ))
        } else {
            Ok(())
        };
    }
    if req.method == "HEAD" {
        return Ok(());
    }
    if r.status == 200 {
        return check_ok_body(req, r);
    }
    let code = check_error_json(r)?;
    if code == 210 && req.form_ok {
        return Err("210 (Invalid POST form) for a body that is a well-formed form".into());
    }
    Ok(())
}

fn check_http(req: &Req, outcome: &Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Response(r) => check_response(req, r),
        Outcome::TimedOut(buf) if req.may_wait && only_interim(buf) => Ok(()),
        Outcome::TimedOut(buf) => Err(format!(
            "no complete response within {:?}; received {}",
            req.timeout(),
            short_text(buf, 300)
        )),
        Outcome::Closed(buf, why) => Err(format!(
            "connection ended ({why}) without a complete response; received {}",
            short_text(buf, 300)
        )),
        Outcome::Broken(e) => Err(e.clone()),
    }
}

/// Whether `buf` holds nothing but complete interim responses (`100 Continue`).
fn only_interim(mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let Some(end) = find(buf, b"\r\n\r\n") else {
            return false;
        };
        if !(buf.starts_with(b"HTTP/1.1 1") || buf.starts_with(b"HTTP/1.0 1")) {
            return false;
        }
        buf = &buf[end + 4..];
    }
    true
}

/// The HTTP/2 connection preface (h2c: gRPC in the clear).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` starts with an HTTP/2 SETTINGS frame on stream 0: the server's side of the
/// preface.
fn h2_settings(buf: &[u8]) -> bool {
    buf.len() >= 9 && buf[3] == 0x04 && buf[5..9] == [0, 0, 0, 0]
}

fn check_raw(wire: &[u8], outcome: &Outcome) -> Result<(), String> {
    match outcome {
        Outcome::Response(r) if r.status == 400 => Ok(()),
        // The client port speaks HTTP/2 in the clear (gRPC): the preface is answered with the
        // server's settings, and the connection closes when the client goes.
        Outcome::Closed(buf, _) if wire.starts_with(H2_PREFACE) && h2_settings(buf) => Ok(()),
        Outcome::Response(r) => Err(format!(
            "a malformed request was answered {}; expected 400 or a closed connection",
            describe_response(r)
        )),
        Outcome::Closed(buf, _) if buf.is_empty() => Ok(()),
        Outcome::Closed(buf, why) => Err(format!(
            "connection ended ({why}) inside a response: {}",
            short_text(buf, 300)
        )),
        Outcome::TimedOut(buf) => Err(format!(
            "neither answered nor closed within {RAW_DEADLINE:?} after the request was sent and \
             the connection half-closed; received {}",
            short_text(buf, 300)
        )),
        Outcome::Broken(e) => Err(e.clone()),
    }
}

fn describe_req(req: &Req) -> String {
    let target: String = req.target.chars().take(200).collect();
    let target = if target.len() < req.target.len() {
        format!("{target}... ({} bytes)", req.target.len())
    } else {
        target
    };
    let mut s = format!(
        "{} {target}",
        req.method.chars().take(40).collect::<String>()
    );
    if let Some(ct) = &req.content_type {
        s.push_str(&format!("\n    Content-Type: {}", short_text(ct, 100)));
    }
    if !req.notes.is_empty() {
        s.push_str(&format!("\n    framing: {}", req.notes.join(", ")));
    }
    if let Some(body) = &req.body {
        s.push_str(&format!(
            "\n    body ({} bytes): {}",
            body.len(),
            short_text(body, 300)
        ));
    }
    s.push_str(&format!("\n    ({}; area {:?})", req.what, req.area));
    s
}

fn describe_case(case: &Case) -> String {
    match case {
        Case::Http(req) => describe_req(req),
        Case::Raw(raw) => format!("raw ({}): {}", raw.what, short_text(&raw.wire, 400)),
    }
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

/// The node runs, has a leader (itself), and a canary write reads back. Returns the canary
/// write's index.
fn health(node: &mut Node, canary: u64) -> Result<u64, String> {
    if !node.is_running() {
        return Err("the node process has exited".into());
    }
    let addr = node.client_addr();
    let leader = support::try_request(&addr, "GET", "/v1/leader", None, DEADLINE)
        .map_err(|e| format!("GET /v1/leader: {e}"))?;
    if leader.status != 200 || leader.text() != node.peer_url() {
        return Err(format!(
            "GET /v1/leader answered {}",
            describe_response(&leader)
        ));
    }
    let body = format!("value={canary}");
    let set = support::try_request(
        &addr,
        "POST",
        CANARY,
        Some((support::FORM_CONTENT_TYPE, body.as_bytes())),
        DEADLINE,
    )
    .map_err(|e| format!("POST {CANARY}: {e}"))?;
    let set_json: Value = serde_json::from_slice(&set.body).unwrap_or(Value::Null);
    let index = match (set.status, set_json["index"].as_u64()) {
        (200, Some(index)) => index,
        _ => {
            return Err(format!(
                "POST {CANARY} value={canary} answered {}",
                describe_response(&set)
            ))
        }
    };
    read_canary(node, canary)?;
    Ok(index)
}

fn read_canary(node: &Node, canary: u64) -> Result<(), String> {
    let get = support::try_request(&node.client_addr(), "GET", CANARY, None, DEADLINE)
        .map_err(|e| format!("GET {CANARY}: {e}"))?;
    let v: Value = serde_json::from_slice(&get.body).unwrap_or(Value::Null);
    if get.status != 200 || v["value"].as_str() != Some(canary.to_string().as_str()) {
        return Err(format!(
            "GET {CANARY} answered {}; expected the value {canary}",
            describe_response(&get)
        ));
    }
    Ok(())
}

/// `%XX` for every byte of a clean key that is not unreserved or `/`.
fn key_to_path(key: &str) -> String {
    let mut out = String::from("/v1/keys");
    for &b in key.as_bytes() {
        if UNRESERVED.contains(&b) || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The key tree (breadth first, at most `MAX_LISTINGS` listings): key → value, or `None` for
/// a directory. Keys with a TTL are left out (they may expire at any moment).
fn tree(node: &Node) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec!["/".to_string()];
    let mut listings = 0;
    while let Some(dir) = dirs.pop() {
        if listings == MAX_LISTINGS {
            break;
        }
        listings += 1;
        let path = key_to_path(&dir);
        let r = support::try_request(&node.client_addr(), "GET", &path, None, DEADLINE)
            .map_err(|e| format!("GET {path}: {e}"))?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("GET {path} answered {} ({e})", describe_response(&r)))?;
        let Value::Array(items) = v else {
            return Err(format!(
                "GET {path} of a directory answered {}",
                describe_response(&r)
            ));
        };
        for item in items {
            let key = item["key"].as_str().unwrap_or("?").to_string();
            if item.get("expiration").is_some() {
                continue;
            }
            if item["dir"] == Value::Bool(true) {
                dirs.push(key.clone());
                out.insert(key, None);
            } else {
                out.insert(key, item["value"].as_str().map(str::to_string));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

/// Violations, grouped by kind: the first example of each and how often it recurred.
struct Failure {
    seed: u64,
    /// (kind, first example, occurrences), in order of discovery.
    kinds: Vec<(String, String, usize)>,
}

impl Failure {
    fn add(&mut self, case_no: usize, case: &Case, problem: &str, outcome: &Outcome) {
        let what = match case {
            Case::Http(req) => req.what,
            Case::Raw(raw) => raw.what,
        };
        let kind = format!("{what}: {}", problem.chars().take(90).collect::<String>());
        if let Some(entry) = self.kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            entry.2 += 1;
            return;
        }
        let got = match outcome {
            Outcome::Response(r) => format!("\n  response: {}", describe_response(r)),
            _ => String::new(),
        };
        let text = format!(
            "case #{case_no} (seed {}): {problem}\n  request: {}{got}",
            self.seed,
            describe_case(case)
        );
        eprintln!("VIOLATION {text}");
        self.kinds.push((kind, text, 1));
    }

    fn report(&self) -> String {
        self.kinds
            .iter()
            .map(|(_, text, n)| format!("{text}\n  (this kind of violation: {n} time(s))"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[track_caller]
    fn fatal(&self, problem: &str, recent: &[String]) -> ! {
        panic!(
            "{problem}\nseed {seed} (replay: ETCD_FUZZ_SEED={seed} cargo test --test bad_input)\n\
             the requests since the last good health check, oldest first:\n{}\n\
             violations so far:\n{}",
            recent.join("\n"),
            self.report(),
            seed = self.seed,
        )
    }
}

#[test]
fn random_bad_input_never_breaks_the_node() {
    let seed = env_number("ETCD_FUZZ_SEED").unwrap_or_else(fresh_seed);
    let cases = env_number("ETCD_FUZZ_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let banner =
        format!("bad_input: seed {seed} ({cases} cases; replay with ETCD_FUZZ_SEED={seed})");
    println!("{banner}");
    eprintln!("{banner}");

    let mut node = Node::start(NODE_NAME, &["-snapshot-count", "16"]);
    let addr: SocketAddr = node.client_addr().parse().expect("client address");
    let mut rng = Rng::new(seed);
    let mut failure = Failure {
        seed,
        kinds: Vec::new(),
    };
    let mut canary = 0u64;
    let mut ctx = Ctx {
        host: node.client_addr(),
        canary_index: 0,
    };
    ctx.canary_index = health(&mut node, canary)
        .unwrap_or_else(|e| failure.fatal(&format!("before any request: {e}"), &[]));

    let started = Instant::now();
    let mut recent: Vec<String> = Vec::new();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut done = 0;
    for case_no in 1..=cases {
        done = case_no;
        let case = gen_case(&mut rng, &ctx);
        recent.push(format!("#{case_no}: {}", describe_case(&case)));
        let (result, outcome) = match &case {
            Case::Http(req) => {
                let outcome = exchange(
                    addr,
                    req.wire.clone(),
                    req.timeout(),
                    req.method == "HEAD",
                    false,
                );
                (check_http(req, &outcome), outcome)
            }
            Case::Raw(raw) => {
                let outcome = exchange(addr, raw.wire.clone(), RAW_DEADLINE, false, true);
                (check_raw(&raw.wire, &outcome), outcome)
            }
        };
        let area = match &case {
            Case::Http(req) => format!("{:?}", req.area).to_lowercase(),
            Case::Raw(_) => "raw".to_string(),
        };
        let label = match &outcome {
            Outcome::Response(r) => format!("{area} {}", r.status),
            Outcome::Closed(..) => format!("{area} closed"),
            Outcome::TimedOut(_) => format!("{area} timeout"),
            Outcome::Broken(_) => format!("{area} broken"),
        };
        *statuses.entry(label).or_default() += 1;
        if let Err(problem) = result {
            failure.add(case_no, &case, &problem, &outcome);
        }
        if !node.is_running() {
            failure.fatal(
                &format!(
                    "the node exited right after case #{case_no}: {}",
                    describe_case(&case)
                ),
                &recent,
            );
        }
        if case_no % CHECK_EVERY == 0 || case_no == cases {
            canary += 1;
            match health(&mut node, canary) {
                Ok(index) => ctx.canary_index = index,
                Err(e) => {
                    failure.fatal(&format!("health check after case #{case_no}: {e}"), &recent)
                }
            }
            recent.clear();
        }
        if failure.kinds.len() >= MAX_VIOLATIONS {
            eprintln!("bad_input: {MAX_VIOLATIONS} kinds of violation, stopping early");
            canary += 1;
            if let Err(e) = health(&mut node, canary) {
                failure.fatal(&format!("health check after case #{case_no}: {e}"), &recent);
            }
            break;
        }
    }
    let elapsed = started.elapsed();

    // Kill and restart on the same data: the log and snapshots written so far must load, and
    // the state must be the same.
    let snapshots = node.data_files("snap", ".snap").len();
    let before =
        tree(&node).unwrap_or_else(|e| failure.fatal(&format!("before the restart: {e}"), &[]));
    node.kill();
    node.restart();
    read_canary(&node, canary)
        .unwrap_or_else(|e| failure.fatal(&format!("after the restart: {e}"), &[]));
    let after =
        tree(&node).unwrap_or_else(|e| failure.fatal(&format!("after the restart: {e}"), &[]));
    if before != after {
        let lost: Vec<_> = before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(v))
            .take(5)
            .collect();
        let new: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .take(5)
            .collect();
        failure.fatal(
            &format!(
                "the key tree changed across the restart ({} entries before, {} after); \
                 before only (first 5): {lost:?}; after only (first 5): {new:?}",
                before.len(),
                after.len()
            ),
            &[],
        );
    }
    canary += 1;
    if let Err(e) = health(&mut node, canary) {
        failure.fatal(&format!("health check after the restart: {e}"), &[]);
    }

    let summary = format!(
        "bad_input: {done} cases in {elapsed:.1?}, answers {statuses:?}; {snapshots} snapshot \
         file(s) and {} keys (without TTL) compared across the restart",
        before.len()
    );
    println!("{summary}");
    eprintln!("{summary}");
    assert!(
        failure.kinds.is_empty(),
        "{} kind(s) of violation with seed {seed} (replay: ETCD_FUZZ_SEED={seed} cargo test --test bad_input):\n{}",
        failure.kinds.len(),
        failure.report()
    );
}
