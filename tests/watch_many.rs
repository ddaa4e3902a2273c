//! Spec §6: "Many watchers (thousands) may wait at once". 1,000 concurrent long-poll watches
//! on one node, all fired by a single write, all answered with exactly the writer's bytes.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::*;

const WATCHERS: usize = 1000;
/// Bound on sending every watch request.
const SEND_DEADLINE: Duration = Duration::from_secs(30);
/// Bound on every watcher receiving the event once the write is acknowledged.
const FIRE_DEADLINE: Duration = Duration::from_secs(60);

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit, so that 1,000 client
/// sockets fit here, and so that the node (spawned afterwards) inherits room for its 1,000.
fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we own and pass by pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0, "getrlimit: {}", std::io::Error::last_os_error());
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        1 << 20
    } else {
        limit.rlim_max
    };
    if limit.rlim_cur < target {
        limit.rlim_cur = target;
        // SAFETY: setrlimit only reads the struct we own and pass by pointer.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
    let needed = (2 * WATCHERS + 256) as libc::rlim_t;
    assert!(
        limit.rlim_cur >= needed,
        "RLIMIT_NOFILE hard limit {} is below the {needed} this test needs",
        limit.rlim_max
    );
}

/// One watcher: connect, send, count as sent; count as answered on the first byte (or EOF).
async fn watch(
    addr: String,
    request: Arc<Vec<u8>>,
    sent: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
) -> Result<Response, String> {
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    sent.fetch_add(1, Ordering::SeqCst);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut first = true;
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if first {
            answered.fetch_add(1, Ordering::SeqCst);
            first = false;
        }
        if n == 0 {
            return parse_response(&buf, true)?
                .ok_or_else(|| "end of stream without a response".to_string());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(response) = parse_response(&buf, false)? {
            return Ok(response);
        }
    }
}

#[test]
fn one_write_fires_a_thousand_pending_watches() {
    raise_nofile_limit();
    let node = Node::start("many", &[]);
    assert_eq!(node.set("seed", "0"), 3);
    // Every watcher asks for the index the write will get, so a watch registered after the
    // write still sees it: no race between registration and the write.
    let current = node.get("/v1/keys/seed").index();
    let next = current + 1;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let addr = node.client_addr();
    let request = Arc::new(build_request(
        "GET",
        &addr,
        &format!("/v1/watch/many?index={next}"),
        None,
    ));
    let sent = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let future = watch(
                addr.clone(),
                Arc::clone(&request),
                Arc::clone(&sent),
                Arc::clone(&answered),
            );
            runtime.spawn(async move {
                tokio::time::timeout(
                    SEND_DEADLINE + FIRE_DEADLINE + Duration::from_secs(30),
                    future,
                )
                .await
            })
        })
        .collect();

    // All requests are sent, and none is answered, even after round trips on another
    // connection have completed.
    let deadline = Instant::now() + SEND_DEADLINE;
    loop {
        let finished = handles.iter().filter(|h| h.is_finished()).count();
        assert_eq!(
            (finished, answered.load(Ordering::SeqCst)),
            (0, 0),
            "watchers finished or answered before the write"
        );
        if sent.load(Ordering::SeqCst) == WATCHERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {WATCHERS} watch requests sent within {SEND_DEADLINE:?}",
            sent.load(Ordering::SeqCst)
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    for _ in 0..3 {
        assert_text(&node.get("/v1/leader"), 200, &node.peer_url());
    }
    let finished = handles.iter().filter(|h| h.is_finished()).count();
    assert_eq!(
        (finished, answered.load(Ordering::SeqCst)),
        (0, 0),
        "watchers must still be pending before the write"
    );

    let fire = node.post_form("/v1/keys/many", &[("value", "fire")]);
    let expected =
        format!(r#"{{"action":"SET","key":"/many","value":"fire","newKey":true,"index":{next}}}"#);
    assert_json(&fire, 200, &expected);

    let results = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + FIRE_DEADLINE;
        let mut results = Vec::with_capacity(WATCHERS);
        for handle in handles {
            results.push(match tokio::time::timeout_at(deadline, handle).await {
                Err(_) => Err(format!(
                    "not answered within {FIRE_DEADLINE:?} of the write"
                )),
                Ok(Err(join)) => Err(format!("task failed: {join}")),
                Ok(Ok(Err(_))) => Err("watch timed out".to_string()),
                Ok(Ok(Ok(result))) => result,
            });
        }
        results
    });
    let mut ok = 0;
    let mut failures = Vec::new();
    for result in &results {
        match result {
            Ok(r) if r.status == 200 && r.text() == expected => ok += 1,
            Ok(r) => failures.push(format!("{} {:?}", r.status, r.text())),
            Err(e) => failures.push(e.clone()),
        }
    }
    failures.truncate(5);
    assert_eq!(
        ok, WATCHERS,
        "watchers answered with the writer's body; first failures: {failures:?}"
    );
    for r in results.iter().flatten() {
        assert_eq!(r.content_type(), "application/json");
    }
    // The node is still healthy afterwards.
    assert_eq!(node.set("after", "1"), next + 1);
}

/// Spec §6: "a client that disconnects costs nothing after". The node is started with `-v`, so
/// it logs each watcher it removes because its client went away, with the number still waiting.
#[test]
fn a_disconnected_watcher_is_removed() {
    let node = Node::start("gone", &["-v"]);
    let addr = node.client_addr();
    let mut watch = std::net::TcpStream::connect(&addr).expect("connect");
    std::io::Write::write_all(
        &mut watch,
        format!("GET /v1/watch/gone HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .expect("send the watch");
    // Round trips on other connections give the server time to register the watch...
    for _ in 0..3 {
        assert_eq!(node.get("/v1/leader").status, 200);
    }
    // ...which must still be waiting: nothing to read yet.
    watch.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut watch, &mut byte);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the watch answered early: {read:?}"
    );
    assert!(!node.logs().contains("watch abandoned"));
    drop(watch);
    let line = poll_until(Duration::from_secs(20), "the watcher to be removed", || {
        node.logs()
            .lines()
            .find(|l| l.contains("watch abandoned"))
            .map(str::to_string)
    });
    assert!(line.contains("waiting=0"), "{line}");
    // The node still serves watches and writes normally.
    let mut again = Pending::spawn(
        &addr,
        "GET",
        "/v1/watch/gone",
        None,
        Duration::from_secs(30),
    );
    node.assert_pending(&mut again);
    let set = post_form(&addr, "/v1/keys/gone", &[("value", "v")]);
    assert_eq!(set.status, 200);
    assert_eq!(again.wait(Duration::from_secs(20)).body, set.body);
}
