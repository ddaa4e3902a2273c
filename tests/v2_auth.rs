//! v2 authentication (issue 7): the `/v2/auth` API, and that an unauthenticated or
//! under-privileged request never reads or changes a key it may not — through v2 and v1 alike,
//! for read-only, write-only and read-write roles, exact and prefix patterns, recursive reads,
//! listings and watches, member changes — and that all of it survives a restart (from the log
//! and from a snapshot). Passwords never reach the disk or the logs. With client certificates,
//! the certificate's common name is the user.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use serde_json::Value;
use support::*;

const JSON: &str = "application/json";
const ROOT_PW: &str = "r00t-s3cret-pw";
const ALICE_PW: &str = "alice-s3cret-pw";

/// One request with HTTP basic credentials (`None`: without any).
fn req_as(
    addr: &str,
    user: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> Response {
    let mut wire = build_request(method, addr, path, body);
    if let Some((u, p)) = user {
        let token = base64(format!("{u}:{p}").as_bytes());
        let at = wire
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("request line")
            + 2;
        let header = format!("Authorization: Basic {token}\r\n");
        wire.splice(at..at, header.into_bytes());
    }
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .expect("timeout");
    stream.write_all(&wire).expect("send");
    let mut buf = Vec::new();
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).unwrap_or(0);
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(Some(r)) = parse_response(&buf, n == 0) {
            return r;
        }
        assert!(
            n > 0 && Instant::now() < deadline,
            "no complete answer to {method} {path}"
        );
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json_body(v: &str) -> Option<(&str, &[u8])> {
    Some((JSON, v.as_bytes()))
}

const ROOT: Option<(&str, &str)> = Some(("root", ROOT_PW));
const ALICE: Option<(&str, &str)> = Some(("alice", ALICE_PW));

#[track_caller]
fn status(r: &Response, want: u16) {
    assert_eq!(r.status, want, "{}", r.text());
}

/// The v2 answer to a key request that is not allowed.
#[track_caller]
fn v2_denied(r: &Response) {
    assert_eq!(
        (r.status, r.text()),
        (
            401,
            "{\"errorCode\":110,\"message\":\"The request requires user authentication\",\"cause\":\"Insufficient credentials\",\"index\":0}\n"
                .to_string()
        )
    );
}

/// The v1 answer to a key request that is not allowed.
#[track_caller]
fn v1_denied(r: &Response) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["errorCode"], 110, "{}", r.text());
}

/// Root and alice, roles `r1` (read-write `/foo/*`), `ro` (read `/ro/*`), `wo` (write `/wo`),
/// `exact` (read `/pub`); alice has all four; auth on; guest without permissions.
fn set_up(node: &Node) {
    let a = node.client_addr();
    let put_user = |name: &str, body: &str| {
        req_as(
            &a,
            None,
            "PUT",
            &format!("/v2/auth/users/{name}"),
            json_body(body),
        )
    };
    // Enabling needs a root user first.
    let r = req_as(&a, None, "PUT", "/v2/auth/enable", None);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (
            409,
            "auth: No root user available, please create one".into()
        )
    );
    let r = put_user(
        "root",
        &format!(r#"{{"user":"root","password":"{ROOT_PW}"}}"#),
    );
    status(&r, 201);
    assert_eq!(r.json()["roles"], serde_json::json!(["root"]));
    status(
        &put_user(
            "alice",
            &format!(r#"{{"user":"alice","password":"{ALICE_PW}"}}"#),
        ),
        201,
    );
    status(&put_user("bob", r#"{"user":"bob"}"#), 400);
    for (role, perms) in [
        ("r1", r#"{"read":["/foo/*"],"write":["/foo/*"]}"#),
        ("ro", r#"{"read":["/ro/*"],"write":[]}"#),
        ("wo", r#"{"read":[],"write":["/wo","/wdir"]}"#),
        ("exact", r#"{"read":["/pub","/pubdir"],"write":[]}"#),
    ] {
        let body = format!(r#"{{"role":"{role}","permissions":{{"kv":{perms}}}}}"#);
        status(
            &req_as(
                &a,
                None,
                "PUT",
                &format!("/v2/auth/roles/{role}"),
                json_body(&body),
            ),
            201,
        );
    }
    // Granting a role that does not exist is refused (etcd 3.4 stores it and breaks).
    let r = put_user("alice", r#"{"user":"alice","grant":["nope"]}"#);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (404, "auth: Role nope does not exist.".into())
    );
    let r = put_user(
        "alice",
        r#"{"user":"alice","grant":["r1","ro","wo","exact"]}"#,
    );
    status(&r, 200);
    assert_eq!(
        r.json()["roles"],
        serde_json::json!(["exact", "r1", "ro", "wo"])
    );
    // Data to protect, written while auth is off.
    for (k, v) in [
        ("/foo/x", "fx"),
        ("/ro/x", "rx"),
        ("/pub", "p"),
        ("/secret", "s"),
        ("/foo/sub/y", "fy"),
        ("/pubdir/child", "c"),
        ("/wdir/child", "w"),
    ] {
        status(
            &node.send_form("PUT", &format!("/v2/keys{k}"), &[("value", v)]),
            201,
        );
    }
    status(&req_as(&a, None, "PUT", "/v2/auth/enable", None), 200);
    // Enabling created the guest role with everything; take it away.
    let r = req_as(&a, ROOT, "GET", "/v2/auth/roles/guest", None);
    assert_eq!(
        r.json()["permissions"]["kv"]["read"],
        serde_json::json!(["/*"])
    );
    status(
        &req_as(
            &a,
            None,
            "PUT",
            "/v2/auth/roles/guest",
            json_body(r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#),
        ),
        401,
    );
    let r = req_as(
        &a,
        ROOT,
        "PUT",
        "/v2/auth/roles/guest",
        json_body(r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#),
    );
    status(&r, 200);
    assert_eq!(
        r.text(),
        "{\"role\":\"guest\",\"permissions\":{\"kv\":{\"read\":[],\"write\":[]}}}\n"
    );
}

/// Every access rule, checked through v2 and v1.
fn check_rules(node: &Node) {
    let a = node.client_addr();
    let get2 = |user, path: &str| req_as(&a, user, "GET", &format!("/v2/keys{path}"), None);
    let put2 = |user, path: &str| {
        let body = form(&[("value", "new")]);
        req_as(
            &a,
            user,
            "PUT",
            &format!("/v2/keys{path}"),
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
        )
    };
    let get1 = |user, path: &str| req_as(&a, user, "GET", &format!("/v1/keys{path}"), None);
    let put1 = |user, path: &str| {
        let body = form(&[("value", "new1")]);
        req_as(
            &a,
            user,
            "POST",
            &format!("/v1/keys{path}"),
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
        )
    };

    // No credentials, wrong ones, an unknown user: nothing.
    for user in [
        None,
        Some(("alice", "wrong")),
        Some(("ghost", "x")),
        Some(("alice", "")),
    ] {
        v2_denied(&get2(user, "/pub"));
        v2_denied(&put2(user, "/foo/x"));
        v1_denied(&get1(user, "/pub"));
        v1_denied(&put1(user, "/foo/x"));
        v1_denied(&req_as(&a, user, "GET", "/v1/watch/foo?index=1", None));
        status(&req_as(&a, user, "GET", "/v2/auth/users", None), 401);
    }
    // Read-write prefix pattern `/foo/*`: keys below, recursive reads below; not `/foo` itself.
    status(&get2(ALICE, "/foo/x"), 200);
    status(&put2(ALICE, "/foo/x"), 200);
    status(&put1(ALICE, "/foo/y"), 200);
    assert_eq!(get1(ALICE, "/foo/x").json()["value"], "new");
    status(&get2(ALICE, "/foo/sub?recursive=true"), 200);
    v2_denied(&get2(ALICE, "/foo"));
    v2_denied(&get2(ALICE, "/foo?recursive=true"));
    v2_denied(&req_as(
        &a,
        ALICE,
        "DELETE",
        "/v2/keys/foo?recursive=true",
        None,
    ));
    v2_denied(&get2(ALICE, "/foobar"));
    status(&get2(ALICE, "/foo/sub/"), 200);
    // A listing shows children: it needs the tree, not just the directory's own key
    // (deliberately stricter than etcd).
    v2_denied(&get2(ALICE, "/pubdir"));
    v1_denied(&get1(ALICE, "/pubdir"));
    v2_denied(&get2(ALICE, "/pubdir/child"));
    // Read-only `/ro/*`.
    assert_eq!(get2(ALICE, "/ro/x").json()["node"]["value"], "rx");
    v2_denied(&put2(ALICE, "/ro/x"));
    v1_denied(&put1(ALICE, "/ro/x"));
    v2_denied(&req_as(&a, ALICE, "DELETE", "/v2/keys/ro/x", None));
    // Write-only `/wo`.
    let w = put2(ALICE, "/wo");
    assert!(matches!(w.status, 200 | 201), "{}", w.text());
    // Writing is not reading: the previous value stays out of the answers.
    let w = put2(ALICE, "/wo");
    assert_eq!(w.status, 200, "{}", w.text());
    assert!(
        w.json()["prevNode"]["modifiedIndex"].is_u64(),
        "{}",
        w.text()
    );
    assert!(w.json()["prevNode"].get("value").is_none(), "{}", w.text());
    let w = put1(ALICE, "/wo");
    assert_eq!(w.status, 200, "{}", w.text());
    assert!(w.json().get("prevValue").is_none(), "{}", w.text());
    let cas = req_as(
        &a,
        ALICE,
        "PUT",
        "/v2/keys/wo?prevValue=guess",
        Some((FORM_CONTENT_TYPE, form(&[("value", "x")]).as_bytes())),
    );
    assert_eq!(cas.status, 412, "{}", cas.text());
    assert!(
        !cas.text().contains("new1"),
        "the cause shows the value: {}",
        cas.text()
    );
    // A POST creates a child the pattern must cover.
    v2_denied(&req_as(
        &a,
        ALICE,
        "POST",
        "/v2/keys/wo",
        Some((FORM_CONTENT_TYPE, form(&[("value", "x")]).as_bytes())),
    ));
    // A TTL on a directory would remove its whole tree: it needs the tree.
    v2_denied(&req_as(
        &a,
        ALICE,
        "PUT",
        "/v2/keys/wdir?prevExist=true&dir=true&ttl=1",
        None,
    ));
    v2_denied(&get2(ALICE, "/wo"));
    v1_denied(&get1(ALICE, "/wo"));
    v2_denied(&req_as(
        &a,
        ALICE,
        "GET",
        "/v2/keys/wo?wait=true&waitIndex=1",
        None,
    ));
    // Exact pattern `/pub`: that key, nothing below it.
    assert_eq!(get2(ALICE, "/pub").json()["node"]["value"], "p");
    v2_denied(&get2(ALICE, "/pub/x"));
    // Outside every pattern.
    v2_denied(&get2(ALICE, "/secret"));
    v1_denied(&get1(ALICE, "/secret"));
    v2_denied(&get2(ALICE, "/?recursive=true"));
    v1_denied(&get1(ALICE, "/"));
    v1_denied(&req_as(&a, ALICE, "GET", "/v1/watch/?index=1", None));
    v2_denied(&req_as(
        &a,
        ALICE,
        "GET",
        "/v2/keys/secret?wait=true&waitIndex=1",
        None,
    ));
    // Only root changes auth and members.
    status(&req_as(&a, ALICE, "GET", "/v2/auth/users/alice", None), 401);
    status(&req_as(&a, ALICE, "DELETE", "/v2/auth/enable", None), 401);
    status(
        &req_as(
            &a,
            ALICE,
            "POST",
            "/v2/members",
            json_body(r#"{"peerURLs":["http://127.0.0.1:9"]}"#),
        ),
        401,
    );
    status(
        &req_as(
            &a,
            ALICE,
            "DELETE",
            &format!("/v1/machines/{}", node.name),
            None,
        ),
        401,
    );
    // Root may do everything.
    assert_eq!(get2(ROOT, "/secret").json()["node"]["value"], "s");
    status(&get2(ROOT, "/?recursive=true"), 200);
    status(&get1(ROOT, "/"), 200);
    let users = req_as(&a, ROOT, "GET", "/v2/auth/users", None);
    status(&users, 200);
    let users = users.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "root"]);
    // Anyone may read the state of auth and the member list.
    assert_eq!(
        req_as(&a, None, "GET", "/v2/auth/enable", None).json(),
        serde_json::json!({"enabled": true})
    );
    status(&req_as(&a, None, "GET", "/v2/members", None), 200);
}

#[test]
fn auth_rules_hold_for_every_permission_kind_through_v2_and_v1_and_after_restarts() {
    let mut node = Node::start("authnode", &["-snapshot-count", "20"]);
    set_up(&node);
    check_rules(&node);
    // Root cannot be deleted while auth is on, nor the root role touched.
    let a = node.client_addr();
    let r = req_as(&a, ROOT, "DELETE", "/v2/auth/users/root", None);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (
            403,
            "auth: Cannot delete root user while auth is enabled.".into()
        )
    );
    status(
        &req_as(&a, ROOT, "DELETE", "/v2/auth/roles/root", None),
        403,
    );

    // A restart replays the log (and, with -snapshot-count 20, a snapshot): same rules.
    node.kill();
    node.restart();
    check_rules(&node);
    for _ in 0..25 {
        let body = form(&[("value", "x")]);
        let r = req_as(
            &a,
            ROOT,
            "PUT",
            "/v2/keys/filler",
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
        );
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
    }
    node.kill();
    node.restart();
    assert!(
        !node.data_files("snap", ".snap").is_empty(),
        "the restart should come from a snapshot"
    );
    check_rules(&node);

    // Passwords are on no disk and in no log.
    let mut files = node.data_files("wal", ".wal");
    files.extend(node.data_files("snap", ".snap"));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for pw in [ROOT_PW, ALICE_PW] {
            assert!(
                !bytes.windows(pw.len()).any(|w| w == pw.as_bytes()),
                "{} holds a password",
                f.display()
            );
        }
    }
    let logs = node.all_logs();
    assert!(
        !logs.contains(ROOT_PW) && !logs.contains(ALICE_PW),
        "a password in the logs"
    );

    // Disabling: root only; then everyone may do everything again.
    status(&req_as(&a, ALICE, "DELETE", "/v2/auth/enable", None), 401);
    status(&req_as(&a, ROOT, "DELETE", "/v2/auth/enable", None), 200);
    assert_eq!(
        req_as(&a, None, "GET", "/v2/keys/secret", None).json()["node"]["value"],
        "s"
    );
}

#[test]
fn auth_state_replicates_to_every_member() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let a = c.member(leader).client_addr();
    let r = req_as(
        &a,
        None,
        "PUT",
        "/v2/auth/users/root",
        json_body(&format!(r#"{{"user":"root","password":"{ROOT_PW}"}}"#)),
    );
    status(&r, 201);
    status(&req_as(&a, None, "PUT", "/v2/auth/enable", None), 200);
    status(
        &req_as(
            &a,
            ROOT,
            "PUT",
            "/v2/auth/roles/guest",
            json_body(r#"{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}"#),
        ),
        200,
    );
    for i in 0..3 {
        let addr = c.member(i).client_addr();
        poll_until(CONVERGE_TIMEOUT, "auth applied on every member", || {
            let r = req_as(&addr, None, "GET", "/v2/keys/", None);
            (r.status == 401).then_some(())
        });
        let r = req_as(&addr, ROOT, "GET", "/v2/keys/", None);
        status(&r, 200);
    }
}

#[test]
fn a_client_certificate_names_the_user() {
    let mut node = Node::prepare(
        "certauth",
        &[
            &format!("-clientCert={}", fixture_arg("server.crt")),
            &format!("-clientKey={}", fixture_arg("server.key.insecure")),
            &format!("-clientCAFile={}", fixture_arg("ca.crt")),
        ],
    );
    let tls = Transport::Tls(
        TlsClient::new(
            &fixture("ca.crt"),
            Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
        )
        .expect("tls client"),
    );
    node.launch();
    let peer = node.peer_url();
    node.wait_ready_via(&tls, &peer);
    let a = node.client_addr();
    let ask = |method: &str, path: &str, body: Option<(&str, &[u8])>| {
        tls.try_request(&a, method, path, body, REQUEST_TIMEOUT)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    };
    let put_json = |path: &str, body: &str| ask("PUT", path, Some((JSON, body.as_bytes())));
    status(
        &put_json(
            "/v2/auth/users/root",
            &format!(r#"{{"user":"root","password":"{ROOT_PW}"}}"#),
        ),
        201,
    );
    status(
        &put_json(
            "/v2/auth/roles/mine",
            r#"{"role":"mine","permissions":{"kv":{"read":["/mine/*"],"write":["/mine/*"]}}}"#,
        ),
        201,
    );
    // The user is the certificate's common name, "client"; it has no password of its own use.
    status(
        &put_json(
            "/v2/auth/users/client",
            r#"{"user":"client","password":"unused","roles":["mine"]}"#,
        ),
        201,
    );
    let value = form(&[("value", "v")]);
    let put_key = |path: &str| ask("PUT", path, Some((FORM_CONTENT_TYPE, value.as_bytes())));
    status(&put_key("/v2/keys/other"), 201);
    status(
        &put_json(
            "/v2/auth/roles/guest",
            r#"{"role":"guest","permissions":{"kv":{"read":[],"write":[]}}}"#,
        ),
        201,
    );
    status(&ask("PUT", "/v2/auth/enable", None), 200);
    status(&put_key("/v2/keys/mine/a"), 201);
    assert_eq!(
        ask("GET", "/v2/keys/mine/a", None).json()["node"]["value"],
        "v"
    );
    let denied = ask("GET", "/v2/keys/other", None);
    assert_eq!(
        (denied.status, denied.json()["errorCode"].clone()),
        (401, Value::from(110))
    );
    status(&ask("GET", "/v2/auth/users", None), 401);
}

#[test]
fn a_stream_watch_ends_when_its_permission_is_revoked() {
    let node = Node::start("authstream", &[]);
    set_up(&node);
    let a = node.client_addr();
    let put_root = |v: &str| {
        let body = form(&[("value", v)]);
        let r = req_as(
            &a,
            ROOT,
            "PUT",
            "/v2/keys/foo/x",
            Some((FORM_CONTENT_TYPE, body.as_bytes())),
        );
        assert!(matches!(r.status, 200 | 201), "{}", r.text());
    };
    // alice streams /foo/x (role r1 reads /foo/*).
    let mut wire = build_request("GET", &a, "/v2/keys/foo/x?wait=true&stream=true", None);
    let at = wire.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let header = format!(
        "Authorization: Basic {}\r\n",
        base64(format!("alice:{ALICE_PW}").as_bytes())
    );
    wire.splice(at..at, header.into_bytes());
    let mut stream = TcpStream::connect(&a).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    stream.write_all(&wire).unwrap();
    let mut seen = Vec::new();
    let mut read_until = |stream: &mut TcpStream, what: &dyn Fn(&str) -> bool| -> (bool, String) {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let text = String::from_utf8_lossy(&seen).into_owned();
            if what(&text) {
                return (true, text);
            }
            if Instant::now() >= deadline {
                return (false, text);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) => return (what(&text), text),
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    };
    // The stream is open once its headers arrived.
    assert!(read_until(&mut stream, &|t| t.contains("\r\n\r\n")).0);
    put_root("first");
    let (ok, text) = read_until(&mut stream, &|t| t.contains("\"value\":\"first\""));
    assert!(ok, "the first event should arrive: {text}");
    // Revoke alice's read below /foo; the next event ends the stream instead of arriving.
    let r = req_as(
        &a,
        ROOT,
        "PUT",
        "/v2/auth/roles/r1",
        json_body(r#"{"role":"r1","revoke":{"kv":{"read":["/foo/*"],"write":[]}}}"#),
    );
    status(&r, 200);
    put_root("second");
    let (ended, text) = read_until(&mut stream, &|t| t.ends_with("0\r\n\r\n"));
    assert!(ended, "the stream should end: {text}");
    assert!(!text.contains("\"value\":\"second\""), "{text}");
}
