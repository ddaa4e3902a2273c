//! Oversized requests are refused readably, even by clients that send the whole body before
//! reading anything (Python's `http.client`, curl without `Expect`): the member reads and
//! discards the rest of the body before it answers 413, so the client's writes complete and
//! the answer is there to read, on the v1 and v2 APIs (declared and chunked bodies) and on the
//! v3 JSON gateway. A client that waits for `100 Continue` is refused without sending.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// Writes all of `request` (failing if the member stops reading), then reads the answer:
/// what a client that does not read while it sends sees.
fn send_whole_then_read(addr: &str, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    stream
        .write_all(request)
        .unwrap_or_else(|e| panic!("the member stopped reading the body: {e}"));
    read_response(&mut stream, Instant::now() + Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("no answer after sending the body: {e}"))
}

/// A request with a body of `len` bytes of `a`, form-encoded as `value=`, declared by
/// Content-Length or chunked.
fn form_request(method: &str, path: &str, len: usize, chunked: bool) -> Vec<u8> {
    let mut body = b"value=".to_vec();
    body.extend(std::iter::repeat_n(b'a', len));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    );
    if !chunked {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut r = head.into_bytes();
        r.extend(body);
        return r;
    }
    head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    let mut r = head.into_bytes();
    for piece in body.chunks(64 << 10) {
        r.extend(format!("{:x}\r\n", piece.len()).into_bytes());
        r.extend(piece);
        r.extend(b"\r\n");
    }
    r.extend(b"0\r\n\r\n");
    r
}

#[test]
fn a_413_is_readable_after_the_whole_body_was_sent() {
    let node = Node::start("big", &[]);
    let addr = node.client_addr();
    for (method, path, chunked) in [
        ("PUT", "/v2/keys/big", false),
        ("PUT", "/v2/keys/big", true),
        ("POST", "/v1/keys/big", false),
        ("POST", "/v1/keys/big", true),
    ] {
        let r = send_whole_then_read(&addr, &form_request(method, path, 4 << 20, chunked));
        assert_eq!(
            r.status,
            413,
            "{method} {path} chunked={chunked}: {}",
            r.text()
        );
        assert_eq!(r.json()["errorCode"], 213, "{}", r.text());
    }
    // The body was read to its end: the connection can carry the next request.
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("write timeout");
    stream
        .write_all(&form_request("PUT", "/v2/keys/big", 4 << 20, false))
        .expect("send the oversized request");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = read_response(&mut stream, deadline).expect("the 413");
    assert_eq!(first.status, 413);
    stream
        .write_all(&form_request("PUT", "/v2/keys/small", 10, false))
        .expect("send the next request");
    let second = read_response(&mut stream, deadline).expect("the next answer");
    assert_eq!(second.status, 201, "{}", second.text());
    // The v3 JSON gateway: a readable gRPC-style error.
    let value = "a".repeat(9 << 20);
    let json = format!("{{\"key\":\"YQ==\",\"value\":\"{value}\"}}");
    let request = build_request(
        "POST",
        &addr,
        "/v3/kv/put",
        Some(("application/json", json.as_bytes())),
    );
    let r = send_whole_then_read(&addr, &request);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], 3, "{}", r.text());
    assert!(r.text().contains("too large"), "{}", r.text());
}

#[test]
fn a_client_waiting_for_continue_is_refused_without_sending() {
    let node = Node::start("expect", &[]);
    let mut stream = TcpStream::connect(node.client_addr()).expect("connect");
    stream
        .write_all(
            b"PUT /v2/keys/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 50000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .expect("send the head");
    let r = read_response(&mut stream, Instant::now() + Duration::from_secs(10))
        .expect("an answer without the body");
    assert_eq!(r.status, 413, "{}", r.text());
}
