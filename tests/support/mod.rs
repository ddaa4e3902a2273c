//! Process-level test harness shared by the integration tests in `tests/`.
//!
//! Every test starts its own `etcd` process (the binary Cargo built for this package,
//! `CARGO_BIN_EXE_etcd`) in its own temporary directory, on ephemeral ports, so tests run in
//! parallel without sharing anything. The process's stdout and stderr go to files in that
//! directory, so the child never blocks on a full pipe; when a test panics, the logs of every
//! run of its node are printed (see `Drop for Node`).
//!
//! The HTTP client is hand-written on purpose: the tests check the exact bytes the server sends
//! (status, headers, body), so nothing may sit between the socket and the assertion. It speaks
//! just enough HTTP/1.1: one request per connection (`Connection: close`), bodies delimited by
//! `Content-Length`, `chunked`, or end of stream. Every network call has a deadline.
//!
//! Rule for all waits: poll with a deadline, never sleep a fixed time to synchronise.

#![allow(dead_code)] // every test file uses a different subset of the harness

pub mod history;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// How long a node may take from spawn to answering `/v1/leader` with its own peer URL.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of one ordinary (non-watch) HTTP request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between two attempts of a polling loop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a process may take to exit after SIGTERM/SIGINT, or to fail at startup.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline for requests that must be answered "at once" (e.g. a watch on recorded history).
pub const AT_ONCE: Duration = Duration::from_secs(3);
/// What `normalize_expiration` puts in place of an `expiration` value.
pub const EXPIRATION_PLACEHOLDER: &str = "<EXPIRATION>";

/// Path of the `etcd` binary under test.
pub fn etcd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_etcd")
}

/// Binds a port for a test process to use, chosen at random BELOW the kernel's ephemeral range
/// (32768 and up on Linux): outgoing connections of the processes under test take their source
/// ports from that range, so a port picked from it could be taken again between our release
/// and the child's bind. Falls back to an ephemeral port if no random pick is free.
pub fn bind_test_port(ip: std::net::Ipv4Addr) -> TcpListener {
    // One generator and one record of the ports handed out, for the whole test process: tests
    // run in parallel threads, and two of them must never get the same port (a port released
    // by one would bind again for the other).
    struct Picker {
        x: u64,
        handed: std::collections::HashSet<u16>,
    }
    static PICKER: std::sync::Mutex<Option<Picker>> = std::sync::Mutex::new(None);
    let mut guard = PICKER.lock().unwrap_or_else(|e| e.into_inner());
    let picker = guard.get_or_insert_with(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Picker {
            x: t ^ (u64::from(std::process::id()) << 32) | 1,
            handed: std::collections::HashSet::new(),
        }
    });
    for _ in 0..400 {
        picker.x ^= picker.x << 13;
        picker.x ^= picker.x >> 7;
        picker.x ^= picker.x << 17;
        let port = 15_000 + (picker.x % 17_768) as u16;
        if picker.handed.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            picker.handed.insert(port);
            return listener;
        }
    }
    TcpListener::bind((ip, 0)).expect("bind a port")
}

/// One free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports: all are held at once before any is released, so they differ.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| bind_test_port(std::net::Ipv4Addr::LOCALHOST))
        .collect();
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().expect("local address").port();
    }
    ports
}

/// `n` distinct free ports, none of them in `avoid` (e.g. the ports of a cluster's members that
/// are down at the moment). All are held at once before any is released.
pub fn free_ports_vec(n: usize, avoid: &[u16]) -> Vec<u16> {
    let mut held: Vec<TcpListener> = Vec::new();
    let mut ports = Vec::with_capacity(n);
    for _ in 0..(n + avoid.len() + 16) {
        if ports.len() == n {
            break;
        }
        let listener = bind_test_port(std::net::Ipv4Addr::LOCALHOST);
        let port = listener.local_addr().expect("local address").port();
        if !avoid.contains(&port) {
            ports.push(port);
        }
        held.push(listener);
    }
    assert_eq!(
        ports.len(),
        n,
        "could not find {n} free ports outside {avoid:?}"
    );
    ports
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names are lower-cased; values are trimmed; order as received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` header, or `""`.
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The `index` field of a JSON object body.
    pub fn index(&self) -> u64 {
        self.json()["index"].as_u64().unwrap_or_else(|| {
            panic!(
                "response has no numeric \"index\": status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// Where the records of a WAL segment end: past them is only a preallocated (zero) tail. A
/// record is `u32 LE length | u32 CRC | body`; a zero length or one running past the file
/// ends the walk.
pub fn wal_records_end(data: &[u8]) -> usize {
    let mut offset = 0;
    while let Some(header) = data.get(offset..offset + 8) {
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        if len == 0 || offset + 8 + len > data.len() {
            break;
        }
        offset += 8 + len;
    }
    offset
}

/// `host:port` from `http://host:port[/]` or `host:port`.
fn host_port(addr: &str) -> &str {
    let addr = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .unwrap_or(addr);
    addr.trim_end_matches('/')
}

/// The bytes of one HTTP/1.1 request with `Connection: close`.
pub fn build_request(method: &str, host: &str, path: &str, body: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: etcd-rs-tests\r\nAccept: */*\r\nConnection: close\r\n"
    );
    match body {
        Some((content_type, bytes)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                bytes.len()
            ));
        }
        None if method == "POST" || method == "PUT" || method == "PATCH" => {
            head.push_str("Content-Length: 0\r\n");
        }
        None => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some((_, bytes)) = body {
        out.extend_from_slice(bytes);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body. `Ok(None)` while incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers (usually none), then an empty line.
            return Ok(find(data, b"\r\n").map(|_| body));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&data[..size]);
        if &data[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".to_string());
        }
        data = &data[size + 2..];
    }
}

/// Parses a response from the bytes received so far. `Ok(None)`: more bytes are needed.
/// `eof`: the peer closed the stream, so a body without a length ends here.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if eof {
            Err(format!(
                "connection closed before the end of the response head; got {:?}",
                String::from_utf8_lossy(buf)
            ))
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let rest = &buf[head_end + 4..];
    if (100..200).contains(&status) {
        // An interim response (100 Continue): the real one follows.
        return parse_response(rest, eof);
    }
    let response = |body: Vec<u8>| Response {
        status,
        headers: headers.clone(),
        body,
    };
    if status == 204 || status == 304 {
        return Ok(Some(response(Vec::new())));
    }
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return match decode_chunked(rest)? {
            Some(body) => Ok(Some(response(body))),
            None if eof => Err("connection closed inside a chunked body".to_string()),
            None => Ok(None),
        };
    }
    if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|e| format!("bad content-length {len:?}: {e}"))?;
        return if rest.len() >= len {
            Ok(Some(response(rest[..len].to_vec())))
        } else if eof {
            Err(format!(
                "connection closed after {} of {len} body bytes",
                rest.len()
            ))
        } else {
            Ok(None)
        };
    }
    if eof {
        Ok(Some(response(rest.to_vec())))
    } else {
        Ok(None)
    }
}

fn connect(addr: &str, deadline: Instant) -> io::Result<TcpStream> {
    let sock: SocketAddr = host_port(addr)
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let remaining = remaining(deadline)?;
    let stream = TcpStream::connect_timeout(&sock, remaining)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request deadline passed",
        ))
    } else {
        Ok(left)
    }
}

/// Reads one response from `stream`, until it is complete or `deadline`.
pub fn read_response(stream: &mut TcpStream, deadline: Instant) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return parse_response(&buf, true)
                    .map_err(invalid)?
                    .ok_or_else(unreachable_eof)
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(response) = parse_response(&buf, false).map_err(invalid)? {
                    return Ok(response);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no complete response before the deadline; got {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            Err(e) => {
                // A reset after the response was sent: use what arrived.
                if let Ok(Some(response)) = parse_response(&buf, true) {
                    return Ok(response);
                }
                return Err(e);
            }
        }
    }
}

fn unreachable_eof() -> io::Error {
    io::Error::other("parser gave no response at end of stream")
}

/// Bodies bigger than this are written from a second thread while the response is read, so a
/// server that answers early (413) and closes cannot make us lose its answer.
const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// One HTTP request; errors (including the deadline) are returned.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr, deadline)?;
    let request = build_request(method, host_port(addr), path, body);
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    let writer = if request.len() > INLINE_BODY_LIMIT {
        let mut w = stream.try_clone()?;
        Some(thread::spawn(move || {
            // A write error (the server closed early) shows up as the response, or its absence.
            let _ = w.write_all(&request);
        }))
    } else {
        // Same: a failed write is judged by what we can read.
        let _ = stream.write_all(&request);
        None
    };
    let result = read_response(&mut stream, deadline);
    drop(stream);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    result
}

/// One HTTP request that must succeed at the transport level (any status is fine).
pub fn request(addr: &str, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Response {
    try_request(addr, method, path, body, REQUEST_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr} failed: {e}"))
}

/// `GET path` on `addr` (`http://host:port` or `host:port`).
pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, None)
}

/// `DELETE path` on `addr`.
pub fn delete(addr: &str, path: &str) -> Response {
    request(addr, "DELETE", path, None)
}

/// `POST path` on `addr` with a form-urlencoded body.
pub fn post_form(addr: &str, path: &str, pairs: &[(&str, &str)]) -> Response {
    let body = form(pairs);
    request(
        addr,
        "POST",
        path,
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
    )
}

/// `application/x-www-form-urlencoded` encoding of one component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k1=v1&k2=v2`, form-encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A `multipart/form-data` body and its content type.
pub fn multipart(pairs: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "etcdrsTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in pairs {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A request running on its own thread (for long-poll watches).
pub struct Pending {
    rx: mpsc::Receiver<io::Result<Response>>,
    done: Option<io::Result<Response>>,
    what: String,
}

impl Pending {
    /// Sends the request and returns once its bytes are written (the response is awaited on
    /// the thread). Panics if connecting or writing fails.
    pub fn spawn(
        addr: &str,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        timeout: Duration,
    ) -> Pending {
        let what = format!("{method} {path}");
        let deadline = Instant::now() + timeout;
        let request = build_request(method, host_port(addr), path, body);
        let addr = addr.to_string();
        let (sent_tx, sent_rx) = mpsc::channel::<io::Result<()>>();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut stream = match connect(&addr, deadline).and_then(|mut s| {
                s.set_write_timeout(Some(remaining(deadline)?))?;
                s.write_all(&request)?;
                Ok(s)
            }) {
                Ok(s) => {
                    let _ = sent_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = sent_tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(read_response(&mut stream, deadline));
        });
        match sent_rx.recv_timeout(REQUEST_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{what}: could not send the request: {e}"),
            Err(e) => panic!("{what}: request not sent in time: {e}"),
        }
        Pending {
            rx,
            done: None,
            what,
        }
    }

    /// Whether the response (or an error) has arrived.
    pub fn is_done(&mut self) -> bool {
        if self.done.is_none() {
            match self.rx.try_recv() {
                Ok(r) => self.done = Some(r),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.done = Some(Err(io::Error::other("request thread died")))
                }
            }
        }
        self.done.is_some()
    }

    /// The response, waiting at most `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Response {
        let result = match self.done.take() {
            Some(r) => r,
            None => match self.rx.recv_timeout(timeout) {
                Ok(r) => r,
                Err(e) => panic!("{}: no response within {timeout:?}: {e}", self.what),
            },
        };
        result.unwrap_or_else(|e| panic!("{}: {e}", self.what))
    }

    /// The response as text if it has arrived (for failure messages).
    pub fn describe(&mut self) -> String {
        if !self.is_done() {
            return "still pending".to_string();
        }
        match &self.done {
            Some(Ok(r)) => format!("answered {} {:?}", r.status, r.text()),
            Some(Err(e)) => format!("failed: {e}"),
            None => "still pending".to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Body helpers
// ---------------------------------------------------------------------------------------------

/// Replaces the value of every `"expiration":"..."` by `EXPIRATION_PLACEHOLDER`.
pub fn normalize_expiration(body: &str) -> String {
    const MARKER: &str = "\"expiration\":\"";
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(pos) = rest.find(MARKER) {
        out.push_str(&rest[..pos + MARKER.len()]);
        rest = &rest[pos + MARKER.len()..];
        match rest.find('"') {
            Some(end) => {
                out.push_str(EXPIRATION_PLACEHOLDER);
                rest = &rest[end..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// The first `expiration` value of a body, if any.
pub fn extract_expiration(body: &str) -> Option<String> {
    const MARKER: &str = "\"expiration\":\"";
    let start = body.find(MARKER)? + MARKER.len();
    let len = body[start..].find('"')?;
    Some(body[start..start + len].to_string())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parses RFC 3339 with a fractional second in Go's `RFC3339Nano` form (1 to 9 digits,
/// trailing zeros trimmed), e.g. `2013-07-11T20:31:12.156146039-07:00`. Returns the instant
/// as nanoseconds since the Unix epoch, or `None` if the text is not in that form.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'.')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let digits = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || b[20 + digits - 1] == b'0' {
        return None;
    }
    let mut nanos = num(20, digits)?;
    for _ in digits..9 {
        nanos *= 10;
    }
    let zone = &s[20 + digits..];
    let offset_secs = if zone == "Z" {
        0
    } else {
        let zb = zone.as_bytes();
        if zb.len() != 6 || zb[3] != b':' || (zb[0] != b'+' && zb[0] != b'-') {
            return None;
        }
        let zh: i64 = zone[1..3].parse().ok()?;
        let zm: i64 = zone[4..6].parse().ok()?;
        let off = zh * 3600 + zm * 60;
        if zb[0] == b'-' {
            -off
        } else {
            off
        }
    };
    let secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Now, as nanoseconds since the Unix epoch.
pub fn unix_nanos_now() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

/// At most the first 300 characters of `text` (for failure messages about huge bodies).
pub fn short(text: &str) -> String {
    text.chars().take(300).collect()
}

/// `{"errorCode":N,"message":"...","cause":"..."}` (cause omitted when empty).
pub fn error_body(code: u16, message: &str, cause: &str) -> String {
    if cause.is_empty() {
        format!(r#"{{"errorCode":{code},"message":"{message}"}}"#)
    } else {
        format!(r#"{{"errorCode":{code},"message":"{message}","cause":"{cause}"}}"#)
    }
}

/// Asserts status, `Content-Type: application/json` and the exact body.
#[track_caller]
pub fn assert_json(response: &Response, status: u16, body: &str) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (status, body),
        "unexpected response (left: got, right: expected)"
    );
    assert_eq!(
        response.content_type(),
        "application/json",
        "Content-Type of a JSON response with body {body}"
    );
}

/// Like `assert_json`, after `normalize_expiration` of the received body.
#[track_caller]
pub fn assert_json_normalized(response: &Response, status: u16, body: &str) {
    assert_eq!(
        (
            response.status,
            normalize_expiration(&response.text()).as_str()
        ),
        (status, body),
        "unexpected response (left: got, normalised; right: expected)"
    );
    assert_eq!(response.content_type(), "application/json");
}

/// Asserts status, a `text/plain` content type and the exact body.
#[track_caller]
pub fn assert_text(response: &Response, status: u16, body: &str) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (status, body),
        "unexpected response (left: got, right: expected)"
    );
    assert!(
        response.content_type().starts_with("text/plain"),
        "Content-Type should be text/plain, got {:?}",
        response.content_type()
    );
}

/// Calls `f` every `POLL_INTERVAL` until it returns `Some`, or panics after `timeout`.
#[track_caller]
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// Whether Debian's etcdctl 3.x (the `etcd-client` package) is on the PATH; panics if it is
/// required (`ETCD_REQUIRE_ETCDCTL`, set by `.ci/run`) and missing, else says the test skips.
pub fn have_etcdctl() -> bool {
    let found = Command::new("etcdctl")
        .arg("version")
        .env("ETCDCTL_API", "3")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("etcdctl version: 3."))
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("ETCD_REQUIRE_ETCDCTL").is_none(),
            "ETCD_REQUIRE_ETCDCTL is set but etcdctl 3.x is not on the PATH"
        );
        eprintln!("SKIPPED: etcdctl 3.x is not installed (apt-get install etcd-client)");
    }
    found
}

/// Whether Debian's etcd 3.4 server (`etcd`) is on the PATH; says so when it is not, and
/// fails then if `ETCD_REQUIRE_ETCD34` is set (`.ci/run` installs it and sets it).
pub fn have_etcd34() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("etcd Version: 3."))
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("ETCD_REQUIRE_ETCD34").is_none(),
            "ETCD_REQUIRE_ETCD34 is set but etcd 3.x is not on the PATH"
        );
        eprintln!("SKIPPED: etcd 3.x is not installed (apt-get install etcd-server)");
    }
    found
}

/// Waits for `child` to exit, at most `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for the etcd process failed: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends `signal` to a process we started.
pub fn send_signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child, not yet
    // reaped (we hold its `Child`), so the pid cannot have been reused.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        io::Error::last_os_error()
    );
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The outcome of a process run to completion.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Exit {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `etcd args...` in `cwd` to completion (bounded by `EXIT_TIMEOUT`; killed and a panic
/// after it). Output goes to files in `cwd`.
pub fn run_etcd(args: &[String], cwd: &Path) -> Exit {
    let out_path = cwd.join("run.stdout");
    let err_path = cwd.join("run.stderr");
    let mut child = Command::new(etcd_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"))
        .spawn()
        .expect("spawn etcd");
    let status = match wait_child(&mut child, EXIT_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "etcd {args:?} did not exit within {EXIT_TIMEOUT:?}\n--- stdout\n{}\n--- stderr\n{}",
                read_lossy(&out_path),
                read_lossy(&err_path)
            );
        }
    };
    Exit {
        status,
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
    }
}

/// One etcd process (and its restarts) with its data directory and captured logs.
pub struct Node {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// The host of the advertised peer address (`-s`): `127.0.0.1` unless a test changes it
    /// (see `Cluster::start_partitionable`). `peer_addr` and `peer_url` use it.
    pub peer_host: String,
    /// The data directory (`-d`), `<tmp>/data`, created by the node itself.
    pub data_dir: PathBuf,
    /// Command-line arguments of the next launch (see `default_args`).
    pub args: Vec<String>,
    /// Environment variables added to the next launch.
    pub env: Vec<(String, String)>,
    log_dir: PathBuf,
    child: Option<Child>,
    /// Whether the process is stopped by SIGSTOP (see `pause`).
    paused: bool,
    /// Exit status of the last run, once it was reaped by `is_running` or `wait_exit`.
    last_exit: Option<ExitStatus>,
    runs: usize,
    /// The directory that holds `data/` and `logs/`.
    root: PathBuf,
    /// The temporary directory `root` when the node owns it (not when it is a cluster member).
    _tmp: Option<TempDir>,
}

impl Node {
    /// A node that is not running yet, with fresh ports and `default_args` plus `extra`.
    pub fn prepare(name: &str, extra: &[&str]) -> Node {
        let tmp = tempfile::Builder::new()
            .prefix("etcd-rs-test-")
            .tempdir()
            .expect("create temp dir");
        let [client_port, peer_port] = free_ports::<2>();
        let root = tmp.path().to_path_buf();
        Node::prepare_at(root, Some(tmp), name, client_port, peer_port, extra)
    }

    /// A node that is not running yet, in `root` (created if missing; not removed by the
    /// node), on the given ports, with `default_args` plus `extra`.
    pub fn prepare_in(
        root: &Path,
        name: &str,
        client_port: u16,
        peer_port: u16,
        extra: &[&str],
    ) -> Node {
        fs::create_dir_all(root).expect("create node dir");
        Node::prepare_at(
            root.to_path_buf(),
            None,
            name,
            client_port,
            peer_port,
            extra,
        )
    }

    fn prepare_at(
        root: PathBuf,
        tmp: Option<TempDir>,
        name: &str,
        client_port: u16,
        peer_port: u16,
        extra: &[&str],
    ) -> Node {
        let log_dir = root.join("logs");
        fs::create_dir(&log_dir).expect("create log dir");
        let mut node = Node {
            name: name.to_string(),
            client_port,
            peer_port,
            peer_host: "127.0.0.1".to_string(),
            data_dir: root.join("data"),
            args: Vec::new(),
            env: Vec::new(),
            log_dir,
            child: None,
            paused: false,
            last_exit: None,
            runs: 0,
            root,
            _tmp: tmp,
        };
        node.args = node.default_args();
        node.args.extend(extra.iter().map(|s| s.to_string()));
        node
    }

    /// Like `prepare`, with the data directory at `data_dir` instead of `<tmp>/data`.
    pub fn prepare_with_data_dir(name: &str, data_dir: &Path, extra: &[&str]) -> Node {
        let mut node = Node::prepare(name, &[]);
        node.data_dir = data_dir.to_path_buf();
        node.args = node.default_args();
        node.args.extend(extra.iter().map(|s| s.to_string()));
        node
    }

    /// Starts a node and waits until it is ready.
    pub fn start(name: &str, extra: &[&str]) -> Node {
        let mut node = Node::prepare(name, extra);
        node.launch();
        node.wait_ready();
        node
    }

    /// `-n NAME -d DIR -c 127.0.0.1:CPORT -s 127.0.0.1:SPORT`
    pub fn default_args(&self) -> Vec<String> {
        vec![
            "-n".to_string(),
            self.name.clone(),
            "-d".to_string(),
            self.data_dir.display().to_string(),
            "-c".to_string(),
            self.client_addr(),
            "-s".to_string(),
            format!("127.0.0.1:{}", self.peer_port),
        ]
    }

    /// Modern etcd's flags for this node (URLs of its own ports, fast raft timing), with no
    /// `--initial-cluster`: what `default_args` says, spelled the etcd 3.x way.
    pub fn modern_args(&self) -> Vec<String> {
        let data_dir = self.data_dir.display().to_string();
        let (client, peer) = (self.client_url(), self.peer_url());
        [
            "--name",
            &self.name,
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The temporary directory that holds `data/` and `logs/`.
    pub fn tmp_path(&self) -> &Path {
        &self.root
    }

    /// `127.0.0.1:CPORT`
    pub fn client_addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `http://127.0.0.1:CPORT`
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// `PEERHOST:SPORT` (`127.0.0.1:SPORT` unless `peer_host` was changed)
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.peer_host, self.peer_port)
    }

    /// `http://PEERHOST:SPORT`
    pub fn peer_url(&self) -> String {
        format!("http://{}:{}", self.peer_host, self.peer_port)
    }

    /// Spawns the process with `self.args` (no waiting). Panics if one is still running.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "launch: the node is already running");
        self.runs += 1;
        self.paused = false;
        self.last_exit = None;
        let stdout = File::create(self.stdout_path(self.runs)).expect("create stdout log");
        let stderr = File::create(self.stderr_path(self.runs)).expect("create stderr log");
        let child = Command::new(etcd_bin())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
    }

    fn stdout_path(&self, run: usize) -> PathBuf {
        self.log_dir.join(format!("run{run}.stdout"))
    }

    fn stderr_path(&self, run: usize) -> PathBuf {
        self.log_dir.join(format!("run{run}.stderr"))
    }

    /// Stdout of the current (latest) run.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path(self.runs))
    }

    /// Stderr of the current (latest) run.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path(self.runs))
    }

    /// Stdout followed by stderr of the current (latest) run.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// The logs of every run, labelled.
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for run in 1..=self.runs {
            out.push_str(&format!(
                "===== node {} run {run} ({:?}) stdout =====\n{}\n===== node {} run {run} stderr =====\n{}\n",
                self.name,
                self.args,
                read_lossy(&self.stdout_path(run)),
                self.name,
                read_lossy(&self.stderr_path(run)),
            ));
        }
        out
    }

    /// Panics (with the logs) if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("node not launched");
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            self.last_exit = Some(status);
            panic!("etcd {} exited unexpectedly: {status}", self.name);
        }
    }

    /// Whether a launched process has not exited (reaps it if it has; see `wait_exit`).
    pub fn is_running(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.child = None;
                self.last_exit = Some(status);
                false
            }
            Err(e) => panic!("waiting for etcd {} failed: {e}", self.name),
        }
    }

    /// Whether the process was launched and neither killed nor seen to exit since.
    /// The running process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_launched(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is stopped by `pause`.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Stops the process with SIGSTOP (a "partition": it neither sends nor answers anything).
    #[track_caller]
    pub fn pause(&mut self) {
        assert!(!self.paused, "pause: {} is already paused", self.name);
        let child = self.child.as_ref().expect("pause: node not running");
        send_signal(child, libc::SIGSTOP);
        self.paused = true;
    }

    /// Continues a process stopped by `pause` (SIGCONT). No-op when not paused.
    pub fn resume(&mut self) {
        if self.paused {
            if let Some(child) = self.child.as_ref() {
                send_signal(child, libc::SIGCONT);
            }
            self.paused = false;
        }
    }

    /// Polls `GET /v1/leader` until it answers 200 with this node's peer URL.
    #[track_caller]
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let peer_url = self.peer_url();
        loop {
            self.assert_running();
            let last = match try_request(
                &self.client_addr(),
                "GET",
                "/v1/leader",
                None,
                Duration::from_secs(2),
            ) {
                Ok(r) if r.status == 200 && r.body == peer_url.as_bytes() => return,
                Ok(r) => format!("{} {:?}", r.status, r.text()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                panic!("node not ready within {READY_TIMEOUT:?}; last /v1/leader answer: {last}");
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        // A stopped child is continued first, so that it surely dies and can be reaped.
        self.resume();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` and waits (bounded) for the exit status.
    #[track_caller]
    pub fn stop_with(&mut self, signal: libc::c_int) -> ExitStatus {
        self.resume();
        let mut child = self.child.take().expect("node not running");
        send_signal(&child, signal);
        match wait_child(&mut child, EXIT_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node did not exit within {EXIT_TIMEOUT:?} after signal {signal}");
            }
        }
    }

    /// SIGTERM, then the exit status (bounded wait).
    #[track_caller]
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let Some(child) = self.child.as_mut() else {
            return Some(self.last_exit.expect("node not launched"));
        };
        let status = wait_child(child, timeout);
        if let Some(status) = status {
            self.child = None;
            self.last_exit = Some(status);
        }
        status
    }

    /// Launches again with the same arguments and data dir, and waits until ready.
    #[track_caller]
    pub fn restart(&mut self) {
        self.launch();
        self.wait_ready();
    }

    // --- HTTP against this node's client API ---

    pub fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Response {
        request(&self.client_addr(), method, path, body)
    }

    /// Like `request`, with a custom deadline (e.g. short, for "answers at once").
    pub fn request_within(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        timeout: Duration,
    ) -> Response {
        try_request(&self.client_addr(), method, path, body, timeout)
            .unwrap_or_else(|e| panic!("{method} {path}: no response within {timeout:?}: {e}"))
    }

    /// A form POST that must be answered within `AT_ONCE`.
    pub fn post_form_at_once(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        let body = form(pairs);
        self.request_within(
            "POST",
            path,
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
            AT_ONCE,
        )
    }

    /// A GET that must be answered within `AT_ONCE`.
    pub fn get_at_once(&self, path: &str) -> Response {
        self.request_within("GET", path, None, AT_ONCE)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    pub fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, None)
    }

    /// `method path` with a form-urlencoded body.
    pub fn send_form(&self, method: &str, path: &str, pairs: &[(&str, &str)]) -> Response {
        let body = form(pairs);
        self.request(method, path, Some((FORM_CONTENT_TYPE, body.as_bytes())))
    }

    pub fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        self.send_form("POST", path, pairs)
    }

    /// Sets `/v1/keys/<key>` to `value`, asserts 200, and returns the entry's index.
    #[track_caller]
    pub fn set(&self, key: &str, value: &str) -> u64 {
        let r = self.post_form(&format!("/v1/keys/{key}"), &[("value", value)]);
        assert_eq!(r.status, 200, "set {key}: {}", r.text());
        r.index()
    }

    /// Starts a request on its own thread (for watches).
    pub fn spawn_request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Pending {
        Pending::spawn(
            &self.client_addr(),
            method,
            path,
            body,
            Duration::from_secs(60),
        )
    }

    /// Asserts that `pending` has not been answered, after several complete request/response
    /// round trips on other connections (so the server has had the chance to process it).
    #[track_caller]
    pub fn assert_pending(&self, pending: &mut Pending) {
        for _ in 0..3 {
            let r = self.get("/v1/leader");
            assert_eq!(r.status, 200, "GET /v1/leader: {}", r.text());
        }
        assert!(
            !pending.is_done(),
            "watch should still be pending, but {}",
            pending.describe()
        );
    }

    /// Paths of the files in `<data>/<sub>` whose names end with `suffix`, sorted by name.
    pub fn data_files(&self, sub: &str, suffix: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match fs::read_dir(self.data_dir.join(sub)) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }
}

/// Whether `ETCD_TEST_LOGS` is set: then logs are printed also when a test passes (use with
/// `--nocapture`).
pub fn show_logs() -> bool {
    std::env::var_os("ETCD_TEST_LOGS").is_some()
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() || show_logs() {
            eprintln!("{}", self.all_logs());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// Raft timing that makes cluster tests fast: 50 ms heartbeats, 500 ms election timeout.
pub const FAST_TIMING: [&str; 4] = ["-heartbeat-interval", "50", "-election-timeout", "500"];
/// How long a member may take from spawn (or restart) to being ready (`Cluster::wait_ready`).
pub const MEMBER_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the running members may take to agree on one leader.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a member may take to show a write made elsewhere.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of one probe (a status request inside a polling loop).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The exact body of `GET /v1/leader` (status 500) while there is no leader.
pub const DURING_ELECTION_BODY: &str = r#"{"errorCode":301,"message":"During Leader Election"}"#;

/// Several etcd processes forming one cluster, all in one temporary directory (each member has
/// its own `<tmp>/<name>/data` and `<tmp>/<name>/logs`).
///
/// Members are numbered from 0 in the order they were added; member `i` of `Cluster::start` is
/// named `node{i+1}`. The first member starts without `-C`; every other one joins with
/// `-C <peer address of a running member>`, one at a time, each waited for before the next, so
/// the log indexes are exact (node1: 1, 2; node2: 3; node3: 4; ...).
///
/// A member is *registered* while it belongs to the cluster (it joined and was not removed) and
/// *live* when it is registered, running and not paused. Waits poll only live members, and
/// every wait has a deadline. When a test panics, the logs of every member are printed (by
/// `Drop for Node`), after a summary of the members (by `Drop for Cluster`).
pub struct Cluster {
    // Declared before `tmp`: the members are killed before their directory is removed.
    members: Vec<Node>,
    registered: Vec<bool>,
    extra: Vec<String>,
    /// The partition proxy between the members (`start_partitionable` only).
    proxy: Option<PartitionProxy>,
    tmp: TempDir,
}

impl Cluster {
    /// Starts `n` members (`node1`..`node{n}`), each with `extra` flags, one at a time, and
    /// waits until every member is ready and knows all the others.
    #[track_caller]
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(n, extra);
        for i in 0..n {
            cluster.registered[i] = true;
            cluster.members[i].launch();
            cluster.wait_ready(i);
        }
        cluster.wait_all_ready();
        cluster
    }

    /// The members of `start`, neither launched nor registered yet.
    fn prepare(n: usize, extra: &[&str]) -> Cluster {
        assert!(n >= 1, "a cluster has at least one member");
        let tmp = tempfile::Builder::new()
            .prefix("etcd-rs-cluster-")
            .tempdir()
            .expect("create temp dir");
        let ports = free_ports_vec(2 * n, &[]);
        let mut cluster = Cluster {
            members: Vec::with_capacity(n),
            registered: Vec::with_capacity(n),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            proxy: None,
            tmp,
        };
        for i in 0..n {
            let name = format!("node{}", i + 1);
            let mut args = cluster.extra.clone();
            if i > 0 {
                args.push("-C".to_string());
                args.push(cluster.members[0].peer_addr());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = Node::prepare_in(
                &cluster.tmp.path().join(&name),
                &name,
                ports[2 * i],
                ports[2 * i + 1],
                &args,
            );
            cluster.members.push(node);
            cluster.registered.push(false);
        }
        cluster
    }

    /// The directory that holds every member's directory.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Number of members ever added (including killed, removed and refused ones).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, i: usize) -> &Node {
        &self.members[i]
    }

    pub fn member_mut(&mut self, i: usize) -> &mut Node {
        &mut self.members[i]
    }

    /// The member with this name.
    #[track_caller]
    pub fn index_of(&self, name: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member named {name}"))
    }

    /// Whether member `i` belongs to the cluster (joined, not removed).
    pub fn is_registered(&self, i: usize) -> bool {
        self.registered[i]
    }

    /// Registered members that are running and not paused, in member order.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| {
                self.registered[i] && self.members[i].is_launched() && !self.members[i].is_paused()
            })
            .collect()
    }

    /// What `GET /v1/machines` must answer: the client URLs of the registered members, sorted
    /// by member name, joined with `, `.
    pub fn expected_machines(&self) -> String {
        let mut registered: Vec<&Node> = (0..self.members.len())
            .filter(|&i| self.registered[i])
            .map(|i| &self.members[i])
            .collect();
        registered.sort_by(|a, b| a.name.cmp(&b.name));
        registered
            .iter()
            .map(|m| m.client_url())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The peer URLs of the registered members.
    fn registered_peer_urls(&self) -> Vec<String> {
        (0..self.members.len())
            .filter(|&i| self.registered[i])
            .map(|i| self.members[i].peer_url())
            .collect()
    }

    /// Panics if a live member's process has exited.
    #[track_caller]
    pub fn check_alive(&mut self) {
        for i in self.live() {
            if !self.members[i].is_running() {
                panic!(
                    "member {} exited unexpectedly: {:?}",
                    self.members[i].name, self.members[i].last_exit
                );
            }
        }
    }

    /// Polls member `i` until `GET /v1/leader` answers 200 with the peer URL of a registered
    /// member and `GET /v1/machines` answers exactly `expected_machines()` (so a joiner lists
    /// itself and every member registered so far).
    #[track_caller]
    pub fn wait_ready(&mut self, i: usize) {
        let expected_machines = self.expected_machines();
        let peers = self.registered_peer_urls();
        let addr = self.members[i].client_addr();
        let deadline = Instant::now() + MEMBER_READY_TIMEOUT;
        loop {
            self.members[i].assert_running();
            let leader = try_request(&addr, "GET", "/v1/leader", None, PROBE_TIMEOUT);
            let machines = try_request(&addr, "GET", "/v1/machines", None, PROBE_TIMEOUT);
            let leader_ok =
                matches!(&leader, Ok(r) if r.status == 200 && peers.contains(&r.text()));
            let machines_ok =
                matches!(&machines, Ok(r) if r.status == 200 && r.text() == expected_machines);
            if leader_ok && machines_ok {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "member {} not ready within {MEMBER_READY_TIMEOUT:?}: /v1/leader {}, \
                     /v1/machines {} (expected a leader among {peers:?} and machines \
                     {expected_machines:?})",
                    self.members[i].name,
                    describe(&leader),
                    describe(&machines)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `wait_ready` for every live member.
    #[track_caller]
    pub fn wait_all_ready(&mut self) {
        for i in self.live() {
            self.wait_ready(i);
        }
    }

    /// Panics unless `r` is a valid `/v1/leader` answer: 200 with the peer URL of a member, or
    /// 500 with exactly `DURING_ELECTION_BODY`.
    #[track_caller]
    fn check_leader_answer(&self, i: usize, r: &Response) {
        let ok = match r.status {
            200 => self.members.iter().any(|m| m.peer_url() == r.text()),
            500 => r.text() == DURING_ELECTION_BODY && r.content_type() == "application/json",
            _ => false,
        };
        assert!(
            ok,
            "GET /v1/leader on {} answered {} {:?} (Content-Type {:?}); expected 200 with a \
             member's peer URL or 500 {DURING_ELECTION_BODY}",
            self.members[i].name,
            r.status,
            r.text(),
            r.content_type()
        );
    }

    /// Polls until every live member answers `GET /v1/leader` with the same live member's peer
    /// URL, within `LEADER_TIMEOUT`; returns that member. Any other answer than 200 with a
    /// member's peer URL or the exact 500/301 election error fails at once.
    #[track_caller]
    pub fn leader(&mut self) -> usize {
        self.leader_within(LEADER_TIMEOUT)
    }

    /// `leader` with a custom deadline.
    #[track_caller]
    pub fn leader_within(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive();
            let live = self.live();
            assert!(!live.is_empty(), "leader: no live member");
            let mut answers: Vec<Option<String>> = Vec::new();
            let mut seen = Vec::new();
            for &i in &live {
                let r = try_request(
                    &self.members[i].client_addr(),
                    "GET",
                    "/v1/leader",
                    None,
                    PROBE_TIMEOUT,
                );
                if let Ok(r) = &r {
                    self.check_leader_answer(i, r);
                }
                seen.push(format!("{}: {}", self.members[i].name, describe(&r)));
                answers.push(match r {
                    Ok(r) if r.status == 200 => Some(r.text()),
                    _ => None,
                });
            }
            if let Some(Some(first)) = answers.first() {
                if answers.iter().all(|a| a.as_ref() == Some(first)) {
                    if let Some(&j) = live.iter().find(|&&j| self.members[j].peer_url() == *first) {
                        return j;
                    }
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "live members {:?} did not agree on a live leader within {timeout:?}; last \
                     answers: {seen:?}",
                    live.iter()
                        .map(|&i| self.members[i].name.as_str())
                        .collect::<Vec<_>>()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The live members other than the leader (after `leader()`), in member order.
    #[track_caller]
    pub fn followers(&mut self) -> Vec<usize> {
        let leader = self.leader();
        self.live().into_iter().filter(|&i| i != leader).collect()
    }

    /// SIGKILL member `i` (resumed first if paused) and reap it.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// SIGKILL every member.
    pub fn kill_all(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }

    /// SIGSTOP member `i`.
    #[track_caller]
    pub fn pause(&mut self, i: usize) {
        self.members[i].pause();
    }

    /// SIGCONT member `i`.
    pub fn resume(&mut self, i: usize) {
        self.members[i].resume();
    }

    /// Launches member `i` again with the same arguments (data dir included) and waits until
    /// it is ready.
    #[track_caller]
    pub fn restart(&mut self, i: usize) {
        self.members[i].launch();
        self.wait_ready(i);
    }

    /// Launches every registered member that is not running (all at once, so a cluster without
    /// quorum can form again), then waits until all are ready.
    #[track_caller]
    pub fn restart_all(&mut self) {
        for i in 0..self.members.len() {
            if self.registered[i] && !self.members[i].is_launched() {
                self.members[i].launch();
            }
        }
        self.wait_all_ready();
    }

    /// Launches a new member `name` (fresh ports, empty data dir, the cluster's extra flags,
    /// `-C <peer address of the first live member>`) without waiting; it is not registered.
    #[track_caller]
    pub fn launch_joiner(&mut self, name: &str) -> usize {
        let via = *self
            .live()
            .first()
            .expect("launch_joiner: no live member to join through");
        let join = self.members[via].peer_addr();
        self.launch_joiner_with(name, &join)
    }

    /// Like `launch_joiner`, with `-C <join>` (e.g. a comma-separated list of peer addresses).
    pub fn launch_joiner_with(&mut self, name: &str, join: &str) -> usize {
        let ports = free_ports_vec(2, &self.used_ports());
        let mut args = self.extra.clone();
        args.push("-C".to_string());
        args.push(join.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut node =
            Node::prepare_in(&self.tmp.path().join(name), name, ports[0], ports[1], &args);
        node.launch();
        self.members.push(node);
        self.registered.push(false);
        self.members.len() - 1
    }

    /// Adds a member `name` through `-C` and waits until it and every live member are ready
    /// and list it.
    #[track_caller]
    pub fn add_member(&mut self, name: &str) -> usize {
        let i = self.launch_joiner(name);
        self.registered[i] = true;
        self.wait_ready(i);
        self.wait_all_ready();
        i
    }

    /// Like `add_member`, with `-C <join>`.
    #[track_caller]
    pub fn add_member_with(&mut self, name: &str, join: &str) -> usize {
        let i = self.launch_joiner_with(name, join);
        self.registered[i] = true;
        self.wait_ready(i);
        self.wait_all_ready();
        i
    }

    /// All ports used by members so far (client and peer).
    pub fn used_ports(&self) -> Vec<u16> {
        self.members
            .iter()
            .flat_map(|m| [m.client_port, m.peer_port])
            .collect()
    }

    /// `GET /v1/machines` on member `i`.
    pub fn machines_on(&self, i: usize) -> Response {
        self.members[i].get("/v1/machines")
    }

    /// `DELETE /v1/machines/<name of member>` on member `via`; on 200 the member counts as
    /// removed. Returns the response.
    #[track_caller]
    pub fn remove_member(&mut self, via: usize, member: usize) -> Response {
        let r = self.members[via].delete(&format!("/v1/machines/{}", self.members[member].name));
        if r.status == 200 {
            self.registered[member] = false;
        }
        r
    }

    /// `Node::set` on member `i`.
    #[track_caller]
    pub fn set(&self, i: usize, key: &str, value: &str) -> u64 {
        self.members[i].set(key, value)
    }

    /// Polls `GET path` on member `i` until it answers 200 with exactly `expected`.
    #[track_caller]
    pub fn wait_body(&mut self, i: usize, path: &str, expected: &str) -> Response {
        self.wait_get(
            i,
            path,
            CONVERGE_TIMEOUT,
            &format!("exactly {expected:?}"),
            |r| r.status == 200 && r.text() == expected,
        )
    }

    /// Polls `GET /v1/keys/<key>` on member `i` until it answers 200 with this value.
    #[track_caller]
    pub fn wait_value(&mut self, i: usize, key: &str, value: &str) -> Response {
        let path = format!("/v1/keys/{key}");
        self.wait_get(
            i,
            &path,
            CONVERGE_TIMEOUT,
            &format!("value {value:?}"),
            |r| {
                r.status == 200
                    && serde_json::from_slice::<serde_json::Value>(&r.body)
                        .is_ok_and(|v| v["value"].as_str() == Some(value))
            },
        )
    }

    /// `wait_value` on every live member.
    #[track_caller]
    pub fn wait_converged(&mut self, key: &str, value: &str) {
        for i in self.live() {
            self.wait_value(i, key, value);
        }
    }

    /// `wait_body` on every live member.
    #[track_caller]
    pub fn wait_body_everywhere(&mut self, path: &str, expected: &str) {
        for i in self.live() {
            self.wait_body(i, path, expected);
        }
    }

    /// Polls `GET path` on member `i` until `accept` says yes (bounded by `timeout`).
    #[track_caller]
    pub fn wait_get(
        &mut self,
        i: usize,
        path: &str,
        timeout: Duration,
        what: &str,
        mut accept: impl FnMut(&Response) -> bool,
    ) -> Response {
        let addr = self.members[i].client_addr();
        let deadline = Instant::now() + timeout;
        loop {
            self.members[i].assert_running();
            let r = try_request(&addr, "GET", path, None, PROBE_TIMEOUT);
            if let Ok(r) = &r {
                if accept(r) {
                    return r.clone();
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "GET {path} on {} did not answer {what} within {timeout:?}; last answer: {}",
                    self.members[i].name,
                    describe(&r)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// A one-line description of every member (for failure output).
    pub fn summary(&self) -> String {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "{} (#{i}): client {} peer {} registered={} launched={} paused={}",
                    m.name,
                    m.client_url(),
                    m.peer_url(),
                    self.registered[i],
                    m.is_launched(),
                    m.is_paused()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() || show_logs() {
            eprintln!(
                "===== cluster in {} =====\n{}",
                self.tmp.path().display(),
                self.summary()
            );
        }
        // Continue paused members, so every process can be killed and reaped.
        for m in &mut self.members {
            m.resume();
        }
        // The members are killed, and their logs printed on panic, by `Drop for Node`.
    }
}

/// `status "body"` of a response, or the error (for failure messages; bodies shortened).
pub fn describe(r: &io::Result<Response>) -> String {
    match r {
        Ok(r) => format!("{} {:?}", r.status, short(&r.text())),
        Err(e) => format!("error: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// Path of a test certificate file in `fixtures/ca/` (see `fixtures/ca/gen.sh`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("ca")
        .join(name)
}

/// `fixture(name)` as a string, for command lines.
pub fn fixture_arg(name: &str) -> String {
    fixture(name).display().to_string()
}

/// A rustls client configuration for the tests: trusts the CAs of one PEM file, optionally
/// presents a client certificate. Cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    config: std::sync::Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Trusts every certificate in `ca` (PEM); presents `client_cert` (certificate chain and
    /// key, PEM) when the server asks for one. TLS 1.3 and 1.2, as the server chooses.
    pub fn new(ca: &Path, client_cert: Option<(&Path, &Path)>) -> Result<TlsClient, String> {
        TlsClient::with_versions(ca, client_cert, rustls::DEFAULT_VERSIONS)
    }

    /// Like `new`, speaking TLS 1.2 only (where a refused client certificate fails inside the
    /// handshake itself, not after it as in TLS 1.3).
    pub fn new_tls12(ca: &Path, client_cert: Option<(&Path, &Path)>) -> Result<TlsClient, String> {
        TlsClient::with_versions(ca, client_cert, &[&rustls::version::TLS12])
    }

    fn with_versions(
        ca: &Path,
        client_cert: Option<(&Path, &Path)>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<TlsClient, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, String> {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate", path.display()));
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
            }
        };
        Ok(TlsClient {
            config: std::sync::Arc::new(config),
        })
    }
}

/// How a client API is reached: plain HTTP or HTTPS with a `TlsClient`.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(TlsClient),
}

impl Transport {
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }

    /// `try_request` or `try_https_request`.
    pub fn try_request(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        timeout: Duration,
    ) -> io::Result<Response> {
        match self {
            Transport::Plain => try_request(addr, method, path, body, timeout),
            Transport::Tls(tls) => try_https_request(addr, tls, method, path, body, timeout),
        }
    }
}

/// Reads one response from `stream` (any byte stream whose read deadline `set_timeout` sets),
/// until it is complete or `deadline`. The logic of `read_response`.
fn read_response_from<S: Read>(
    stream: &mut S,
    mut set_timeout: impl FnMut(&mut S, Duration) -> io::Result<()>,
    deadline: Instant,
) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    loop {
        set_timeout(stream, remaining(deadline)?)?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return parse_response(&buf, true)
                    .map_err(invalid)?
                    .ok_or_else(unreachable_eof)
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(response) = parse_response(&buf, false).map_err(invalid)? {
                    return Ok(response);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no complete response before the deadline; got {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            Err(e) => {
                // A close without close_notify (or a reset) after the response: use it.
                if let Ok(Some(response)) = parse_response(&buf, true) {
                    return Ok(response);
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!(
                        "{e} (after {} response bytes: {:?})",
                        buf.len(),
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
        }
    }
}

/// One HTTPS request (blocking rustls client, `Connection: close`). The server name is the
/// host of `addr` (`127.0.0.1` is verified as an IP address). A failed handshake is an error
/// whose text starts with `TLS handshake`; a refusal after the handshake (TLS 1.3 reports a
/// refused client certificate then) is an error too: the result is `Ok` only for a complete
/// HTTP response. A deadline passing is an error of kind `TimedOut`.
pub fn try_https_request(
    addr: &str,
    tls: &TlsClient,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let authority = host_port(addr);
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let conn = rustls::ClientConnection::new(tls.config.clone(), name)
        .map_err(|e| io::Error::other(format!("TLS client for {addr}: {e}")))?;
    let sock = connect(addr, deadline)?;
    let mut stream = rustls::StreamOwned::new(conn, sock);
    let timed_out = |e: io::Error| {
        if e.kind() == io::ErrorKind::WouldBlock {
            io::Error::new(io::ErrorKind::TimedOut, e.to_string())
        } else {
            e
        }
    };

    while stream.conn.is_handshaking() {
        let left = remaining(deadline)?;
        stream.sock.set_read_timeout(Some(left))?;
        stream.sock.set_write_timeout(Some(left))?;
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            let e = timed_out(e);
            return Err(io::Error::new(
                e.kind(),
                format!("TLS handshake with {addr} failed: {e}"),
            ));
        }
    }

    let request = build_request(method, authority, path, body);
    stream.sock.set_write_timeout(Some(remaining(deadline)?))?;
    // A failed write (the server refused us after the handshake and closed) is judged by
    // what can be read: usually the server's alert.
    let written = stream.write_all(&request).and_then(|()| stream.flush());
    let result = read_response_from(
        &mut stream,
        |s, left| s.sock.set_read_timeout(Some(left)),
        deadline,
    );
    match (result, written) {
        (Ok(response), _) => Ok(response),
        (Err(e), Ok(())) => Err(io::Error::new(
            e.kind(),
            format!("{method} {path} over TLS on {addr}: {e}"),
        )),
        (Err(e), Err(w)) => Err(io::Error::new(
            e.kind(),
            format!("{method} {path} over TLS on {addr}: writing failed ({w}), then {e}"),
        )),
    }
}

/// One HTTPS request with a fresh `TlsClient` trusting `ca` and presenting `client_cert`;
/// `Err` for handshake failures, refusals and missing responses (`REQUEST_TIMEOUT`).
pub fn https_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    ca: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Response, String> {
    let tls = TlsClient::new(ca, client_cert)?;
    try_https_request(addr, &tls, method, path, body, REQUEST_TIMEOUT).map_err(|e| e.to_string())
}

impl Node {
    /// A request to this node's client API through `transport`.
    pub fn try_request_via(
        &self,
        transport: &Transport,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        timeout: Duration,
    ) -> io::Result<Response> {
        transport.try_request(&self.client_addr(), method, path, body, timeout)
    }

    /// `try_request_via` with `REQUEST_TIMEOUT`; panics on a transport error.
    pub fn request_via(
        &self,
        transport: &Transport,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Response {
        self.try_request_via(transport, method, path, body, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.name))
    }

    /// A form POST through `transport`.
    pub fn post_form_via(
        &self,
        transport: &Transport,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Response {
        let body = form(pairs);
        self.request_via(
            transport,
            "POST",
            path,
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
        )
    }

    /// Polls `GET /v1/leader` through `transport` until it answers 200 with `leader_url`
    /// (within `READY_TIMEOUT`): `wait_ready` for a node whose client API is HTTPS or whose
    /// peer URL is not `peer_url()`.
    #[track_caller]
    pub fn wait_ready_via(&mut self, transport: &Transport, leader_url: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.assert_running();
            let r = self.try_request_via(transport, "GET", "/v1/leader", None, PROBE_TIMEOUT);
            if matches!(&r, Ok(r) if r.status == 200 && r.body == leader_url.as_bytes()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not ready within {READY_TIMEOUT:?}; last {}://.../v1/leader answer: {} \
                     (expected 200 {leader_url:?})",
                    self.name,
                    transport.scheme(),
                    describe(&r)
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Network partitions
// ---------------------------------------------------------------------------------------------

/// Most connections the partition proxy forwards at once (beyond that, new ones are closed).
pub const PROXY_MAX_CONNECTIONS: usize = 1024;
/// Deadline for the proxy's connection to a member's real peer listener.
pub const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The loopback address of member `i` of a partitionable cluster: `127.0.0.(10+i)`. Member
/// `i` advertises and binds its outgoing peer connections to it, so the proxy can tell who
/// is talking by the source address alone.
pub fn member_ip(i: usize) -> std::net::Ipv4Addr {
    assert!(i < 200, "member_ip: too many members");
    std::net::Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// Counters of a `PartitionProxy`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted on a member's advertised peer address.
    pub accepted: u64,
    /// Connections closed at once because their (sender, receiver) pair was blocked.
    pub refused: u64,
    /// Forwarded connections shut down because a partition blocked their pair.
    pub cut: u64,
    /// Connections whose source address is no member's (joins; nothing else should be).
    pub unattributed: u64,
    /// Of those, the ones that arrived while a partition was in force (it did not hold).
    pub unattributed_during_partition: u64,
    /// Connections closed because `PROXY_MAX_CONNECTIONS` were open.
    pub over_limit: u64,
    /// Connections to a member's real listener that could not be opened.
    pub connect_failed: u64,
}

/// One forwarded connection, as the proxy tracks it.
struct ProxyConn {
    from: Option<usize>,
    to: usize,
    /// Dropping it ends the forwarding task, which closes both sockets.
    _cancel: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct ProxyState {
    /// Blocked (sender, receiver) pairs: connections from `sender` to `receiver` are refused
    /// and cut. A pair blocks one direction; `PartitionProxy::split` blocks both.
    blocked: std::collections::BTreeSet<(usize, usize)>,
    conns: std::collections::HashMap<u64, ProxyConn>,
    next_id: u64,
    stats: ProxyStats,
}

/// A TCP proxy that owns every member's advertised peer address and forwards each connection
/// to the member's real peer listener, unless the (sender, receiver) pair is blocked. The
/// sender is identified by the connection's source address (`member_ip`). Blocking a pair
/// also shuts down the connections already open on it. Runs on its own small tokio runtime;
/// dropping the proxy drops every task, listener and connection.
pub struct PartitionProxy {
    runtime: Option<tokio::runtime::Runtime>,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    members: usize,
}

/// What the proxy does for one member: accept on `listener` (the advertised peer address) and
/// forward to `target` (the member's `-sl` address).
pub struct ProxyRoute {
    pub listener: TcpListener,
    pub target: SocketAddr,
}

impl PartitionProxy {
    /// Starts forwarding; route `i` belongs to member `i` (whose source address is
    /// `member_ip(i)`).
    pub fn start(routes: Vec<ProxyRoute>) -> PartitionProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("partition-proxy")
            .enable_all()
            .build()
            .expect("start the partition proxy's runtime");
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState::default()));
        let members = routes.len();
        let ips: std::sync::Arc<Vec<std::net::Ipv4Addr>> =
            std::sync::Arc::new((0..members).map(member_ip).collect());
        for (to, route) in routes.into_iter().enumerate() {
            route
                .listener
                .set_nonblocking(true)
                .expect("make the proxy listener non-blocking");
            let listener = {
                let _guard = runtime.enter();
                tokio::net::TcpListener::from_std(route.listener)
                    .expect("register the proxy listener")
            };
            runtime.spawn(proxy_accept_loop(
                listener,
                to,
                route.target,
                ips.clone(),
                state.clone(),
            ));
        }
        PartitionProxy {
            runtime: Some(runtime),
            state,
            members,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ProxyState> {
        self.state.lock().expect("partition proxy state")
    }

    /// Blocks each (sender, receiver) pair (one direction each) in addition to those blocked
    /// already, and shuts down the open connections on them. Returns how many were shut down.
    pub fn block(&self, pairs: &[(usize, usize)]) -> usize {
        let mut st = self.state();
        for &(from, to) in pairs {
            assert!(
                from < self.members && to < self.members && from != to,
                "block: bad pair ({from}, {to})"
            );
            st.blocked.insert((from, to));
        }
        let blocked = st.blocked.clone();
        let doomed: Vec<u64> = st
            .conns
            .iter()
            .filter(|(_, c)| c.from.is_some_and(|f| blocked.contains(&(f, c.to))))
            .map(|(&id, _)| id)
            .collect();
        for id in &doomed {
            // Dropping the entry drops its cancel sender: the task closes both sockets.
            st.conns.remove(id);
        }
        st.stats.cut += doomed.len() as u64;
        doomed.len()
    }

    /// Blocks both directions between every member of `a` and every member of `b`.
    pub fn split(&self, a: &[usize], b: &[usize]) -> usize {
        let pairs: Vec<(usize, usize)> = a
            .iter()
            .flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)]))
            .collect();
        self.block(&pairs)
    }

    /// Cuts member `i` off from every other member, both directions.
    pub fn isolate(&self, i: usize) -> usize {
        let others: Vec<usize> = (0..self.members).filter(|&j| j != i).collect();
        self.split(&[i], &others)
    }

    /// Unblocks every pair (connections are re-established by the members).
    pub fn heal(&self) {
        self.state().blocked.clear();
    }

    /// The blocked (sender, receiver) pairs.
    pub fn blocked(&self) -> Vec<(usize, usize)> {
        self.state().blocked.iter().copied().collect()
    }

    /// Number of connections being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.state().conns.len()
    }

    pub fn stats(&self) -> ProxyStats {
        self.state().stats.clone()
    }
}

impl Drop for PartitionProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Drops every task: the listeners and all forwarded sockets are closed.
            runtime.shutdown_background();
        }
    }
}

async fn proxy_accept_loop(
    listener: tokio::net::TcpListener,
    to: usize,
    target: SocketAddr,
    ips: std::sync::Arc<Vec<std::net::Ipv4Addr>>,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
) {
    loop {
        let (stream, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // E.g. EMFILE: back off a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let from = match source.ip() {
            std::net::IpAddr::V4(ip) => ips.iter().position(|m| *m == ip),
            std::net::IpAddr::V6(_) => None,
        };
        let (id, cancelled) = {
            let mut st = state.lock().expect("partition proxy state");
            st.stats.accepted += 1;
            if from.is_none() {
                st.stats.unattributed += 1;
                if !st.blocked.is_empty() {
                    st.stats.unattributed_during_partition += 1;
                }
            }
            if from.is_some_and(|f| st.blocked.contains(&(f, to))) {
                st.stats.refused += 1;
                drop(stream);
                continue;
            }
            if st.conns.len() >= PROXY_MAX_CONNECTIONS {
                st.stats.over_limit += 1;
                drop(stream);
                continue;
            }
            let id = st.next_id;
            st.next_id += 1;
            let (cancel, cancelled) = tokio::sync::oneshot::channel();
            st.conns.insert(
                id,
                ProxyConn {
                    from,
                    to,
                    _cancel: cancel,
                },
            );
            (id, cancelled)
        };
        tokio::spawn(proxy_forward(stream, target, id, cancelled, state.clone()));
    }
}

/// Forwards bytes both ways between `inbound` and a new connection to `target` until both
/// sides are done, an error, or the connection is cancelled (by a partition). Dropping the
/// sockets closes them.
async fn proxy_forward(
    mut inbound: tokio::net::TcpStream,
    target: SocketAddr,
    id: u64,
    cancelled: tokio::sync::oneshot::Receiver<()>,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
) {
    let work = async {
        let connect = tokio::net::TcpStream::connect(target);
        let mut outbound = match tokio::time::timeout(PROXY_CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            _ => {
                state
                    .lock()
                    .expect("partition proxy state")
                    .stats
                    .connect_failed += 1;
                return;
            }
        };
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    };
    tokio::select! {
        () = work => {}
        _ = cancelled => {}
    }
    state
        .lock()
        .expect("partition proxy state")
        .conns
        .remove(&id);
}

/// A free port on `ip` (bound, read, released).
fn free_port_on(ip: std::net::Ipv4Addr) -> u16 {
    bind_test_port(ip)
        .local_addr()
        .unwrap_or_else(|e| panic!("a port on {ip}: {e}"))
        .port()
}

impl Cluster {
    /// Like `start`, with a `PartitionProxy` between the members: member `i` advertises
    /// `-s 127.0.0.(10+i):P_i` (a proxy listener), listens for peers on `-sl
    /// 127.0.0.(10+i):L_i`, and serves clients on `-c 127.0.0.1:C_i` as usual. Every other
    /// member joins with `-C 127.0.0.10:P_0` (through the proxy, before any partition).
    #[track_caller]
    pub fn start_partitionable(n: usize, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(n, extra);
        let mut routes = Vec::with_capacity(n);
        for i in 0..n {
            let ip = member_ip(i);
            let listener = TcpListener::bind((ip, 0))
                .unwrap_or_else(|e| panic!("bind the proxy listener on {ip}: {e}"));
            let advertised = listener
                .local_addr()
                .expect("proxy listener address")
                .port();
            let listen = free_port_on(ip);
            routes.push(ProxyRoute {
                listener,
                target: SocketAddr::from((ip, listen)),
            });
            let node = &mut cluster.members[i];
            node.peer_host = ip.to_string();
            node.peer_port = advertised;
            let mut args = vec![
                "-n".to_string(),
                node.name.clone(),
                "-d".to_string(),
                node.data_dir.display().to_string(),
                "-c".to_string(),
                node.client_addr(),
                "-s".to_string(),
                node.peer_addr(),
                "-sl".to_string(),
                format!("{ip}:{listen}"),
            ];
            args.extend(cluster.extra.iter().cloned());
            node.args = args;
        }
        let join = cluster.members[0].peer_addr();
        for node in cluster.members.iter_mut().skip(1) {
            node.args.push("-C".to_string());
            node.args.push(join.clone());
        }
        cluster.proxy = Some(PartitionProxy::start(routes));
        for i in 0..n {
            cluster.registered[i] = true;
            cluster.members[i].launch();
            cluster.wait_ready(i);
        }
        cluster.wait_all_ready();
        cluster
    }

    /// The partition proxy of a cluster from `start_partitionable`.
    #[track_caller]
    pub fn proxy(&self) -> &PartitionProxy {
        self.proxy
            .as_ref()
            .expect("proxy: the cluster was not started with start_partitionable")
    }
}

/// The items sent into `rx`, as a stream: the requests of a gRPC client stream that a test
/// feeds as it goes.
pub fn stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

/// A gRPC channel to `url` (one HTTP/2 connection), connected now.
pub async fn grpc_channel(url: &str) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(url.to_string())
        .expect("a URL")
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("gRPC connection to {url}: {e}"))
}

/// Starts Debian's etcd 3.4 (`etcd` on the PATH) as a single member on free ports with its
/// data in `dir`; returns the process and its client URL. For tests that record or compare
/// etcd's own answers.
pub fn start_etcd34(dir: &Path) -> (Child, String) {
    let [client, peer] = free_ports::<2>();
    let peer_url = format!("http://127.0.0.1:{peer}");
    start_etcd34_on(&dir.join("data"), "reference", &peer_url, client)
}

/// Starts Debian's etcd 3.4 as the one member `name` (at `peer_url`) of a cluster whose data
/// is in `data_dir` (a new one, or one `etcdctl snapshot restore` made for that member),
/// serving clients on `client_port`; returns the process and its client URL.
pub fn start_etcd34_on(
    data_dir: &Path,
    name: &str,
    peer_url: &str,
    client_port: u16,
) -> (Child, String) {
    let url = format!("http://127.0.0.1:{client_port}");
    let child = Command::new("etcd")
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args(["--listen-peer-urls", peer_url])
        .args(["--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("{name}={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd 3.4 on the PATH");
    (child, url)
}

// ---------------------------------------------------------------------------------------------
// etcdctl 3.x (v3) and members over TLS
// ---------------------------------------------------------------------------------------------

/// Runs `etcdctl --endpoints <endpoint> <extra> <args>` in v3 mode with `input` (if any) on
/// its standard input; (exit code, stdout, stderr).
pub fn etcdctl3(
    endpoint: &str,
    extra: &[String],
    args: &[&str],
    input: Option<&str>,
) -> (Option<i32>, String, String) {
    etcdctl3_of("etcdctl", endpoint, extra, args, input)
}

/// `program` (Debian's `etcdctl`, or ours: `env!("CARGO_BIN_EXE_etcdctl")`) set up to speak
/// v3 to `endpoint`; the caller adds the arguments and standard streams.
pub fn etcdctl3_command(program: &str, endpoint: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint);
    command
}

/// [`etcdctl3`] through `program` (ours: `env!("CARGO_BIN_EXE_etcdctl")`).
pub fn etcdctl3_of(
    program: &str,
    endpoint: &str,
    extra: &[String],
    args: &[&str],
    input: Option<&str>,
) -> (Option<i32>, String, String) {
    let mut child = etcdctl3_command(program, endpoint)
        .args(extra)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("etcdctl's stdin");
    }
    let out = child.wait_with_output().expect("etcdctl finishes");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// etcdctl's flags for the test CA and client certificate.
pub fn etcdctl_tls_flags() -> Vec<String> {
    vec![
        format!("--cacert={}", fixture_arg("ca.crt")),
        format!("--cert={}", fixture_arg("client.crt")),
        format!("--key={}", fixture_arg("client.key.insecure")),
    ]
}

/// Members `names` serving clients over TLS with client certificates required (the test
/// CA; peers over plain HTTP) with `extra` flags: the first starts a cluster, the others
/// join it. Returns once every member is started and healthy through etcdctl (bounded).
pub fn start_tls_members(names: &[&str], extra: &[&str]) -> Vec<Node> {
    let mut flags: Vec<String> = vec![
        format!("-clientCert={}", fixture_arg("server.crt")),
        format!("-clientKey={}", fixture_arg("server.key.insecure")),
        format!("-clientCAFile={}", fixture_arg("ca.crt")),
    ];
    flags.extend(extra.iter().map(|f| f.to_string()));
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut first = Node::prepare(names[0], &args);
    first.launch();
    let client = TlsClient::new(
        &fixture("ca.crt"),
        Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
    )
    .expect("TLS client");
    let peer = first.peer_url();
    first.wait_ready_via(&Transport::Tls(client), &peer);
    let join = first.peer_addr();
    let mut members = vec![first];
    for name in &names[1..] {
        let mut a = args.clone();
        a.extend_from_slice(&["-C", &join]);
        let mut n = Node::prepare(name, &a);
        n.launch();
        members.push(n);
    }
    let tls = etcdctl_tls_flags();
    let ep = format!("https://{}", members[0].client_addr());
    poll_until(
        Duration::from_secs(30),
        "every member started over TLS",
        || {
            let (_, list, _) = etcdctl3(&ep, &tls, &["member", "list"], None);
            let healthy = members.iter().all(|n| {
                let ep = format!("https://{}", n.client_addr());
                etcdctl3(&ep, &tls, &["endpoint", "health"], None).0 == Some(0)
            });
            (list.matches(", started, ").count() == names.len() && healthy).then_some(())
        },
    );
    members
}

/// Requires the transcript `ours` to equal `tools/v3-reference/<recorded>` (etcd 3.4.23's)
/// once `mask` is applied to both; otherwise writes both to a directory kept for a look and
/// panics showing the first difference.
#[track_caller]
pub fn assert_same_as_recorded(recorded: &str, ours: &str, mask: impl Fn(&str) -> String) {
    let reference = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/v3-reference")
            .join(recorded),
    )
    .expect("the recorded transcript");
    let (ours, reference) = (mask(ours), mask(&reference));
    if ours == reference {
        return;
    }
    let dir = std::env::temp_dir().join(format!(
        "etcd-rs-transcript-{}-{}",
        recorded.replace('.', "_"),
        std::process::id()
    ));
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(dir.join("ours.txt"), &ours);
    let _ = fs::write(dir.join("etcd.txt"), &reference);
    let first = ours
        .lines()
        .zip(reference.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(ours.lines().count().min(reference.lines().count()));
    let context = |t: &str| {
        t.lines()
            .skip(first.saturating_sub(6))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    };
    panic!(
        "transcripts differ at line {} (both in {}):\n--- etcd 3.4.23\n{}\n--- etcd-rs\n{}",
        first + 1,
        dir.display(),
        context(&reference),
        context(&ours)
    );
}

/// Replaces what follows each `label` while `keep` holds for its characters with `N` (for
/// masking what differs between two servers' transcripts).
pub fn mask_after(text: &str, label: &str, keep: impl Fn(char) -> bool) -> String {
    let mut result = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(label) {
        let (before, after) = rest.split_at(at + label.len());
        result.push_str(before);
        let len = after.len() - after.trim_start_matches(&keep).len();
        result.push('N');
        rest = &after[len..];
    }
    result.push_str(rest);
    result
}
