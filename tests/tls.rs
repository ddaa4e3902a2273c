//! TLS as real processes (spec section 8; the seed's "Transport security with HTTPS",
//! "Authentication with HTTPS client certificates" and "Using HTTPS between servers"):
//! the client API over HTTPS (checked with the real `curl` and with a rustls client), plain
//! HTTP refused on a TLS port, client-certificate authentication with one CA or a bundle of
//! several, peer TLS in a three-member cluster (joins, https URLs, replication, failover), a
//! member without peer TLS refused by a TLS cluster, and the startup errors of bad TLS flags.
//!
//! The certificates are the fixtures of `fixtures/ca/` (see `gen.sh` there): `server.crt` is
//! valid for 127.0.0.1 and is also the client certificate members present to each other.

mod support;

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;
use tempfile::TempDir;

/// The real curl, when installed.
const CURL: &str = "/usr/bin/curl";

/// `{"action":"SET","key":K,"value":V,"newKey":true,"index":N}`
fn set_json(key: &str, value: &str, index: u64) -> String {
    format!(r#"{{"action":"SET","key":"{key}","value":"{value}","newKey":true,"index":{index}}}"#)
}

/// `{"action":"GET","key":K,"value":V,"index":N}`
fn get_json(key: &str, value: &str, index: u64) -> String {
    format!(r#"{{"action":"GET","key":"{key}","value":"{value}","index":{index}}}"#)
}

/// The seed's answer to `curl ... /v1/keys/foo -d value=bar` on a fresh node.
const SEED_FOO_BAR: &str = r#"{"action":"SET","key":"/foo","value":"bar","newKey":true,"index":3}"#;

/// A rustls client trusting `ca.crt`, presenting `client` (`"client"` → `client.crt` +
/// `client.key.insecure`) if given.
fn tls_client(client: Option<&str>) -> TlsClient {
    let cert = client.map(|name| {
        (
            fixture(&format!("{name}.crt")),
            fixture(&format!("{name}.key.insecure")),
        )
    });
    TlsClient::new(
        &fixture("ca.crt"),
        cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .unwrap_or_else(|e| panic!("TLS client config: {e}"))
}

/// `Transport::Tls(tls_client(client))`
fn https(client: Option<&str>) -> Transport {
    Transport::Tls(tls_client(client))
}

/// `-clientCert server.crt -clientKey server.key.insecure [-clientCAFile <ca>]`
fn client_tls_flags(ca: Option<&str>) -> Vec<String> {
    let mut flags = vec![
        format!("-clientCert={}", fixture_arg("server.crt")),
        format!("-clientKey={}", fixture_arg("server.key.insecure")),
    ];
    if let Some(ca) = ca {
        flags.push(format!("-clientCAFile={}", fixture_arg(ca)));
    }
    flags
}

/// `-serverCert server.crt -serverKey server.key.insecure -serverCAFile ca.crt` (the
/// two-dash-free, space-separated spelling, as scripts of the time wrote it).
fn peer_tls_flags() -> Vec<String> {
    vec![
        "-serverCert".to_string(),
        fixture_arg("server.crt"),
        "-serverKey".to_string(),
        fixture_arg("server.key.insecure"),
        "-serverCAFile".to_string(),
        fixture_arg("ca.crt"),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn url(scheme: &str, port: u16) -> String {
    format!("{scheme}://127.0.0.1:{port}")
}

/// Starts a single node with `flags` and waits until `GET /v1/leader` through `client`
/// answers its own (plain) peer URL.
#[track_caller]
fn start_node(name: &str, flags: &[String], client: &Transport) -> Node {
    let mut node = Node::prepare(name, &strs(flags));
    node.launch();
    let peer = node.peer_url();
    node.wait_ready_via(client, &peer);
    node
}

/// Asserts that `r` is a refusal: no HTTP response, and not for lack of time (the server
/// ends the connection during or right after the handshake).
#[track_caller]
fn assert_refused(r: &io::Result<Response>, what: &str) {
    match r {
        Ok(r) => panic!(
            "{what}: expected the connection to be refused at the TLS handshake, got HTTP {} {:?}",
            r.status,
            r.text()
        ),
        Err(e) => assert_ne!(
            e.kind(),
            io::ErrorKind::TimedOut,
            "{what}: expected a prompt refusal at the TLS handshake, but the server kept the \
             connection open: {e}"
        ),
    }
}

/// Polls until a line of `node`'s stderr after byte `from` contains every one of `needles`
/// (case-insensitively); panics with that part of stderr after `timeout`.
#[track_caller]
fn wait_stderr_line(node: &Node, from: usize, needles: &[&str], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let err = node.stderr();
        let new = err.get(from..).unwrap_or("");
        if new.lines().any(|line| {
            let line = line.to_lowercase();
            needles.iter().all(|n| line.contains(&n.to_lowercase()))
        }) {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "no line of {}'s stderr mentions all of {needles:?} within {timeout:?}; new \
                 stderr:\n{new}",
                node.name
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs the real curl (never through a proxy, at most 10 s) with `args`; `None` when curl is
/// not installed.
fn curl(args: &[&str]) -> Option<std::process::Output> {
    if !Path::new(CURL).exists() {
        eprintln!("NOTE: {CURL} not found: the curl assertion is skipped");
        return None;
    }
    let out = Command::new(CURL)
        .args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("run curl");
    Some(out)
}

fn curl_text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// Client API over HTTPS
// ---------------------------------------------------------------------------------------------

/// The seed's HTTPS example, with the real curl:
/// `curl --cacert fixtures/ca/ca.crt https://127.0.0.1:4001/v1/keys/foo -d value=bar`.
#[test]
fn seed_https_example_with_curl() {
    let node = start_node("node0", &client_tls_flags(None), &https(None));
    let target = format!("{}/v1/keys/foo", url("https", node.client_port));
    let ca = fixture_arg("ca.crt");
    if let Some(out) = curl(&["--cacert", &ca, &target, "-d", "value=bar"]) {
        assert!(out.status.success(), "curl failed: {}", curl_text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            SEED_FOO_BAR,
            "curl output: {}",
            curl_text(&out)
        );
        // The write is there, read back over HTTPS with rustls.
        assert_json(
            &node.request_via(&https(None), "GET", "/v1/keys/foo", None),
            200,
            &get_json("/foo", "bar", 3),
        );
    }
}

/// The seed's HTTPS example with a rustls client that verifies the server against `ca.crt`
/// (server name 127.0.0.1, an IP address); the startup lines, `/v1/machines` and `/v1/leader`
/// carry `https` exactly where TLS is on (the client side here).
#[test]
fn seed_https_example_with_a_rustls_client_and_https_urls() {
    let client = https(None);
    let node = start_node("node0", &client_tls_flags(None), &client);

    let r = node.post_form_via(&client, "/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, SEED_FOO_BAR);
    assert_json(
        &node.request_via(&client, "GET", "/v1/keys/foo", None),
        200,
        &get_json("/foo", "bar", 3),
    );
    // A multipart body and the rest of the API work the same over TLS.
    let (content_type, body) = multipart(&[("value", "baz")]);
    let r = node.request_via(&client, "PUT", "/v1/keys/foo", Some((&content_type, &body)));
    assert_json(
        &r,
        200,
        r#"{"action":"SET","key":"/foo","prevValue":"bar","value":"baz","index":4}"#,
    );
    assert_json(
        &node.request_via(&client, "DELETE", "/v1/keys/foo", None),
        200,
        r#"{"action":"DELETE","key":"/foo","prevValue":"baz","index":5}"#,
    );

    let client_url = url("https", node.client_port);
    let peer_url = url("http", node.peer_port);
    assert_text(
        &node.request_via(&client, "GET", "/v1/machines", None),
        200,
        &client_url,
    );
    assert_text(
        &node.request_via(&client, "GET", "/v1/leader", None),
        200,
        &peer_url,
    );
    assert_json(
        &node.request_via(&client, "GET", "/v1/keys/_etcd/machines/node0", None),
        200,
        &format!(
            r#"{{"action":"GET","key":"/_etcd/machines/node0","value":"raft={peer_url}&etcd={client_url}","index":5}}"#
        ),
    );

    let etcd_line = format!("etcd server [node0] listening on {client_url}");
    let raft_line = format!("raft server [node0] listening on {peer_url}");
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

/// Plain HTTP to an HTTPS client port gets no HTTP response: the connection is closed during
/// the failed handshake. HTTPS keeps working afterwards.
#[test]
fn plain_http_to_the_https_client_port_gets_no_http_response() {
    let client = https(None);
    let node = start_node("plain", &client_tls_flags(None), &client);
    for path in ["/v1/leader", "/v1/keys/foo"] {
        let r = try_request(
            &node.client_addr(),
            "GET",
            path,
            None,
            Duration::from_secs(5),
        );
        assert_refused(&r, &format!("plain GET {path} on the HTTPS port"));
    }
    let r = node.post_form_via(&client, "/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, SEED_FOO_BAR);
}

// ---------------------------------------------------------------------------------------------
// Client certificates
// ---------------------------------------------------------------------------------------------

/// The seed's client-certificate example: with `-clientCAFile ca.crt`, a client without a
/// certificate (curl and rustls) or with one from another CA is refused at the handshake; a
/// certificate signed by ca.crt is accepted.
#[test]
fn client_ca_file_requires_a_certificate_signed_by_that_ca() {
    let client = https(Some("client"));
    let node = start_node("auth", &client_tls_flags(Some("ca.crt")), &client);
    let addr = node.client_addr();
    let target = format!("{}/v1/keys/foo", url("https", node.client_port));
    let ca = fixture_arg("ca.crt");

    // Without a certificate: refused (curl as in the seed, then rustls).
    if let Some(out) = curl(&["--cacert", &ca, &target, "-d", "value=bar"]) {
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "curl without a client certificate should be refused: {}",
            curl_text(&out)
        );
    }
    let body = form(&[("value", "bar")]);
    let post = Some((FORM_CONTENT_TYPE, body.as_bytes()));
    let r = try_https_request(
        &addr,
        &tls_client(None),
        "POST",
        "/v1/keys/foo",
        post,
        REQUEST_TIMEOUT,
    );
    assert_refused(&r, "no client certificate");
    // A certificate from an unrelated CA: refused.
    let r = try_https_request(
        &addr,
        &tls_client(Some("client2")),
        "POST",
        "/v1/keys/foo",
        post,
        REQUEST_TIMEOUT,
    );
    assert_refused(&r, "client2.crt (signed by ca2.crt)");
    // Plain HTTP: refused as well.
    assert_refused(
        &try_request(&addr, "GET", "/v1/leader", None, Duration::from_secs(5)),
        "plain HTTP",
    );

    // Signed by ca.crt: accepted, and nothing refused above was written.
    let r = node.post_form_via(&client, "/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, SEED_FOO_BAR);
    if let Some(out) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &fixture_arg("client.crt"),
        "--key",
        &fixture_arg("client.key.insecure"),
        &target,
    ]) {
        assert!(
            out.status.success(),
            "curl with client.crt: {}",
            curl_text(&out)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            get_json("/foo", "bar", 3),
            "curl with client.crt: {}",
            curl_text(&out)
        );
    }
    // The brief's helper, for completeness: the same answer with a fresh client each time.
    let r = https_request(
        &addr,
        "GET",
        "/v1/keys/foo",
        None,
        &fixture("ca.crt"),
        Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
    )
    .unwrap_or_else(|e| panic!("GET with client.crt: {e}"));
    assert_json(&r, 200, &get_json("/foo", "bar", 3));
    let r = https_request(&addr, "GET", "/v1/keys/foo", None, &fixture("ca.crt"), None);
    assert!(r.is_err(), "GET without a client certificate: {r:?}");
}

/// The same refusals and acceptance over TLS 1.2, where a refused client certificate fails
/// inside the handshake.
#[test]
fn client_ca_file_checks_certificates_over_tls12_too() {
    let client = https(Some("client"));
    let node = start_node("auth12", &client_tls_flags(Some("ca.crt")), &client);
    let addr = node.client_addr();
    let ca = fixture("ca.crt");
    let tls12 = |name: Option<&str>| {
        let files = name.map(|n| {
            (
                fixture(&format!("{n}.crt")),
                fixture(&format!("{n}.key.insecure")),
            )
        });
        TlsClient::new_tls12(&ca, files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())))
            .unwrap_or_else(|e| panic!("TLS 1.2 client config: {e}"))
    };
    let get =
        |tls: &TlsClient| try_https_request(&addr, tls, "GET", "/v1/leader", None, REQUEST_TIMEOUT);

    assert_refused(&get(&tls12(None)), "TLS 1.2 without a client certificate");
    assert_refused(&get(&tls12(Some("client2"))), "TLS 1.2 with client2.crt");
    let r = get(&tls12(Some("client"))).unwrap_or_else(|e| panic!("TLS 1.2 with client.crt: {e}"));
    assert_text(&r, 200, &node.peer_url());
}

/// A CA file with several CAs (`bundle.crt` = ca2.crt + ca.crt): certificates signed by either
/// are accepted, a client without a certificate is still refused.
#[test]
fn a_client_ca_bundle_accepts_certificates_of_every_ca_in_it() {
    let client = https(Some("client"));
    let node = start_node("bundle", &client_tls_flags(Some("bundle.crt")), &client);

    let r = node.post_form_via(&client, "/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, SEED_FOO_BAR);
    let other = https(Some("client2"));
    let r = node.request_via(&other, "GET", "/v1/keys/foo", None);
    assert_json(&r, 200, &get_json("/foo", "bar", 3));

    let r = try_https_request(
        &node.client_addr(),
        &tls_client(None),
        "GET",
        "/v1/keys/foo",
        None,
        REQUEST_TIMEOUT,
    );
    assert_refused(&r, "no client certificate, -clientCAFile bundle.crt");
}

// ---------------------------------------------------------------------------------------------
// Peer TLS
// ---------------------------------------------------------------------------------------------

/// One member of a `TlsCluster`.
struct Member {
    node: Node,
    /// How the tests reach its client API.
    client: Transport,
    /// `http` or `https`: its peer side.
    peer_scheme: &'static str,
}

impl Member {
    fn client_url(&self) -> String {
        url(self.client.scheme(), self.node.client_port)
    }

    fn peer_url(&self) -> String {
        url(self.peer_scheme, self.node.peer_port)
    }

    fn try_get(&self, path: &str, timeout: Duration) -> io::Result<Response> {
        self.node
            .try_request_via(&self.client, "GET", path, None, timeout)
    }

    fn get(&self, path: &str) -> Response {
        self.node.request_via(&self.client, "GET", path, None)
    }

    fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        self.node.post_form_via(&self.client, path, pairs)
    }
}

/// Members started one at a time in one temporary directory, like `support::Cluster`, but
/// reached through each member's own transport and with each side's scheme known. Every member
/// here is registered (joined) until killed.
struct TlsCluster {
    // Declared before `tmp`: the members are killed before their directory is removed.
    members: Vec<Member>,
    live: Vec<bool>,
    tmp: TempDir,
}

impl TlsCluster {
    fn new() -> TlsCluster {
        TlsCluster {
            members: Vec::new(),
            live: Vec::new(),
            tmp: tempfile::Builder::new()
                .prefix("etcd-rs-tls-cluster-")
                .tempdir()
                .expect("create temp dir"),
        }
    }

    fn used_ports(&self) -> Vec<u16> {
        self.members
            .iter()
            .flat_map(|m| [m.node.client_port, m.node.peer_port])
            .collect()
    }

    /// Launches `name` with `flags` (plus `-C <peer address of member 0>` unless it is the
    /// first); does not wait. Returns its number.
    fn launch(
        &mut self,
        name: &str,
        flags: &[String],
        client: Transport,
        peer_scheme: &'static str,
    ) -> usize {
        let ports = free_ports_vec(2, &self.used_ports());
        let mut args = flags.to_vec();
        if let Some(first) = self.members.first() {
            args.push("-C".to_string());
            args.push(first.node.peer_addr());
        }
        let mut node = Node::prepare_in(
            &self.tmp.path().join(name),
            name,
            ports[0],
            ports[1],
            &strs(&args),
        );
        node.launch();
        self.members.push(Member {
            node,
            client,
            peer_scheme,
        });
        self.live.push(true);
        self.members.len() - 1
    }

    /// `launch`, then wait until every live member is ready and lists it.
    #[track_caller]
    fn add(
        &mut self,
        name: &str,
        flags: &[String],
        client: Transport,
        peer_scheme: &'static str,
    ) -> usize {
        let i = self.launch(name, flags, client, peer_scheme);
        for j in self.live_members() {
            self.wait_ready(j);
        }
        i
    }

    fn live_members(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|&i| self.live[i]).collect()
    }

    /// Client URLs of all members ever added (none is removed here), sorted by name.
    fn expected_machines(&self) -> String {
        let mut members: Vec<&Member> = self.members.iter().collect();
        members.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        members
            .iter()
            .map(|m| m.client_url())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Polls member `i` until `/v1/leader` answers 200 with a member's peer URL and
    /// `/v1/machines` answers exactly `expected_machines()`.
    #[track_caller]
    fn wait_ready(&mut self, i: usize) {
        let machines = self.expected_machines();
        let peers: Vec<String> = self.members.iter().map(Member::peer_url).collect();
        let deadline = Instant::now() + MEMBER_READY_TIMEOUT;
        loop {
            self.members[i].node.assert_running();
            let leader = self.members[i].try_get("/v1/leader", PROBE_TIMEOUT);
            let listed = self.members[i].try_get("/v1/machines", PROBE_TIMEOUT);
            let leader_ok =
                matches!(&leader, Ok(r) if r.status == 200 && peers.contains(&r.text()));
            let machines_ok = matches!(&listed, Ok(r) if r.status == 200 && r.text() == machines);
            if leader_ok && machines_ok {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} not ready within {MEMBER_READY_TIMEOUT:?}: /v1/leader {}, /v1/machines {} \
                     (expected a leader among {peers:?} and machines {machines:?})",
                    self.members[i].node.name,
                    describe(&leader),
                    describe(&listed)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls until every live member answers `/v1/leader` with the peer URL of the same live
    /// member; returns it.
    #[track_caller]
    fn leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let live = self.live_members();
            let mut seen = Vec::new();
            let mut answers = Vec::new();
            for &i in &live {
                self.members[i].node.assert_running();
                let r = self.members[i].try_get("/v1/leader", PROBE_TIMEOUT);
                seen.push(format!("{}: {}", self.members[i].node.name, describe(&r)));
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
                panic!("live members did not agree on a live leader within {timeout:?}: {seen:?}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls `GET path` on member `i` until it answers 200 with exactly `expected`.
    #[track_caller]
    fn wait_body(&mut self, i: usize, path: &str, expected: &str) {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            self.members[i].node.assert_running();
            let r = self.members[i].try_get(path, PROBE_TIMEOUT);
            if matches!(&r, Ok(r) if r.status == 200 && r.text() == expected) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "GET {path} on {} did not answer {expected:?} within {CONVERGE_TIMEOUT:?}; \
                     last: {}",
                    self.members[i].node.name,
                    describe(&r)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn kill(&mut self, i: usize) {
        self.members[i].node.kill();
        self.live[i] = false;
    }

    /// The exact listing of `/v1/keys/_etcd/machines` (all members, by name) at `index`.
    fn machines_listing(&self, index: u64) -> String {
        let mut members: Vec<&Member> = self.members.iter().collect();
        members.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        let entries: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    r#"{{"action":"GET","key":"/_etcd/machines/{}","value":"raft={}&etcd={}","index":{index}}}"#,
                    m.node.name,
                    m.peer_url(),
                    m.client_url()
                )
            })
            .collect();
        format!("[{}]", entries.join(","))
    }
}

/// `FAST_TIMING` and peer TLS, plus `more`.
fn peer_tls_member_flags(more: &[String]) -> Vec<String> {
    let mut flags: Vec<String> = FAST_TIMING.iter().map(|s| s.to_string()).collect();
    flags.extend(peer_tls_flags());
    flags.extend_from_slice(more);
    flags
}

/// Three members with peer TLS (and `client_flags` on the client side, reached through
/// `client`): joins, https peer URLs everywhere, writes from index 5 replicated, a new leader
/// after the leader is killed, writes continuing.
fn three_members_with_peer_tls(client_flags: &[String], client: Transport) {
    let flags = peer_tls_member_flags(client_flags);
    let mut c = TlsCluster::new();
    for name in ["node1", "node2", "node3"] {
        c.add(name, &flags, client.clone(), "https");
    }
    for m in &c.members {
        assert!(
            m.peer_url().starts_with("https://"),
            "peer URLs are https here: {}",
            m.peer_url()
        );
    }

    // Every member lists every member; the registry holds `raft=https://...` at index 4;
    // node1 leads.
    let machines = c.expected_machines();
    let listing = c.machines_listing(4);
    for i in 0..3 {
        assert_text(&c.members[i].get("/v1/machines"), 200, &machines);
        assert_json(&c.members[i].get("/v1/keys/_etcd/machines"), 200, &listing);
    }
    let leader = c.leader(LEADER_TIMEOUT);
    assert_eq!(leader, 0, "node1 leads a freshly formed cluster");
    for i in 0..3 {
        assert_text(
            &c.members[i].get("/v1/leader"),
            200,
            &c.members[0].peer_url(),
        );
    }

    // The first write is index 5, and reaches every member over the TLS peer links.
    let r = c.members[0].post_form("/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, &set_json("/foo", "bar", 5));
    let r = c.members[1].post_form("/v1/keys/from2", &[("value", "two")]);
    assert_json(&r, 200, &set_json("/from2", "two", 6));
    for i in 0..3 {
        c.wait_body(i, "/v1/keys/foo", &get_json("/foo", "bar", 6));
        c.wait_body(i, "/v1/keys/from2", &get_json("/from2", "two", 6));
    }

    // Kill the leader: the others elect one of themselves, over TLS, and take writes.
    c.kill(0);
    let leader = c.leader(Duration::from_secs(15));
    assert!(leader == 1 || leader == 2, "new leader {leader}");
    for i in [1, 2] {
        assert_text(
            &c.members[i].get("/v1/leader"),
            200,
            &c.members[leader].peer_url(),
        );
    }
    let follower = if leader == 1 { 2 } else { 1 };
    for (i, key) in [(follower, "after1"), (leader, "after2")] {
        let r = c.members[i].post_form(&format!("/v1/keys/{key}"), &[("value", key)]);
        assert_eq!(
            r.status,
            200,
            "write on {}: {}",
            c.members[i].node.name,
            r.text()
        );
        let index = r.index();
        // 6 was the last write; the new leader commits an empty entry first.
        assert!(index >= 8, "index {index} of a write after the failover");
        assert_json(&r, 200, &set_json(&format!("/{key}"), key, index));
    }
    let last = c.members[leader].get("/v1/keys/after2").index();
    for i in [1, 2] {
        c.wait_body(i, "/v1/keys/after1", &get_json("/after1", "after1", last));
        c.wait_body(i, "/v1/keys/after2", &get_json("/after2", "after2", last));
    }
}

#[test]
fn three_members_with_peer_tls_and_a_plain_client_api() {
    three_members_with_peer_tls(&[], Transport::Plain);
}

#[test]
fn three_members_with_peer_tls_and_an_https_client_api() {
    three_members_with_peer_tls(&client_tls_flags(None), https(None));
}

/// A member without peer TLS cannot join a cluster whose peers use TLS: the joiner exits 1 and
/// says why; the TLS member logs the failed handshake and carries on alone.
#[test]
fn a_member_without_peer_tls_cannot_join_a_tls_cluster() {
    let mut c = TlsCluster::new();
    let first = c.add(
        "node1",
        &peer_tls_member_flags(&[]),
        Transport::Plain,
        "https",
    );
    let before = c.members[first].node.stderr().len();

    let ports = free_ports_vec(2, &c.used_ports());
    let join = c.members[first].node.peer_addr();
    let mut flags: Vec<String> = FAST_TIMING.iter().map(|s| s.to_string()).collect();
    flags.extend(["-C".to_string(), join.clone()]);
    let mut joiner = Node::prepare_in(
        &c.tmp.path().join("plain"),
        "plain",
        ports[0],
        ports[1],
        &strs(&flags),
    );
    joiner.launch();
    // At most 3 join rounds (-r), each attempt bounded; a refused handshake fails at once.
    let bound = Duration::from_secs(45);
    let status = joiner
        .wait_exit(bound)
        .unwrap_or_else(|| panic!("the plain joiner still runs after {bound:?}"));
    let err = joiner.stderr();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status of the plain joiner; stderr:\n{err}"
    );
    assert!(
        err.to_lowercase().contains("join"),
        "the refused joiner should say that joining failed; stderr:\n{err}"
    );

    // The TLS member logs the failed handshake (one line saying "TLS" and "handshake").
    wait_stderr_line(
        &c.members[first].node,
        before,
        &["TLS", "handshake"],
        Duration::from_secs(10),
    );

    // The TLS member is unaffected: alone, leading, writable.
    assert_text(
        &c.members[first].get("/v1/machines"),
        200,
        &c.members[first].client_url(),
    );
    assert_text(
        &c.members[first].get("/v1/leader"),
        200,
        &c.members[first].peer_url(),
    );
    let r = c.members[first].post_form("/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, SEED_FOO_BAR);
}

// ---------------------------------------------------------------------------------------------
// Startup errors
// ---------------------------------------------------------------------------------------------

/// Runs etcd to completion in a fresh directory with `-n x -d DIR -c ... -s ...` (free ports)
/// and `extra`; asserts exit code 1 and that stderr contains each of `expected`.
#[track_caller]
fn assert_fatal(extra: &[String], expected: &[&str]) {
    let dir = tempfile::Builder::new()
        .prefix("etcd-rs-tls-cli-")
        .tempdir()
        .expect("temp dir");
    let [client, peer] = free_ports::<2>();
    let mut args: Vec<String> = vec![
        "-n".into(),
        "x".into(),
        "-d".into(),
        dir.path().join("data").display().to_string(),
        "-c".into(),
        format!("127.0.0.1:{client}"),
        "-s".into(),
        format!("127.0.0.1:{peer}"),
    ];
    args.extend_from_slice(extra);
    let exit = run_etcd(&args, dir.path());
    assert_eq!(exit.code(), Some(1), "etcd {extra:?}: {exit:?}");
    for needle in expected {
        assert!(
            exit.stderr.contains(needle),
            "etcd {extra:?}: stderr should contain {needle:?}: {exit:?}"
        );
    }
}

fn flag(name: &str, file: &str) -> String {
    format!("-{name}={}", fixture_arg(file))
}

#[test]
fn half_a_tls_flag_set_is_fatal_naming_the_missing_flag() {
    assert_fatal(&[flag("clientCert", "server.crt")], &["-clientKey"]);
    assert_fatal(
        &[flag("clientKey", "server.key.insecure")],
        &["-clientCert"],
    );
    assert_fatal(
        &[flag("clientCAFile", "ca.crt")],
        &["-clientCert", "-clientKey"],
    );
    assert_fatal(
        &[
            flag("clientKey", "server.key.insecure"),
            flag("clientCAFile", "ca.crt"),
        ],
        &["-clientCert"],
    );
    assert_fatal(&[flag("serverCert", "server.crt")], &["-serverKey"]);
    assert_fatal(
        &[flag("serverKey", "server.key.insecure")],
        &["-serverCert"],
    );
    assert_fatal(
        &[flag("serverCAFile", "ca.crt")],
        &["-serverCert", "-serverKey"],
    );
    // A complete client set does not make up for half a server set.
    let mut args = client_tls_flags(None);
    args.push(flag("serverCert", "server.crt"));
    assert_fatal(&args, &["-serverKey"]);
}

#[test]
fn an_unreadable_tls_file_is_fatal_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key) = (
        fixture_arg("server.crt"),
        fixture_arg("server.key.insecure"),
    );
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                format!("-clientCert={}", missing("nocert.crt")),
                format!("-clientKey={key}"),
            ],
            missing("nocert.crt"),
        ),
        (
            vec![
                format!("-clientCert={cert}"),
                format!("-clientKey={}", missing("nokey.key")),
            ],
            missing("nokey.key"),
        ),
        (
            vec![
                format!("-clientCert={cert}"),
                format!("-clientKey={key}"),
                format!("-clientCAFile={}", missing("noca.crt")),
            ],
            missing("noca.crt"),
        ),
        (
            vec![
                format!("-serverCert={}", missing("nopeer.crt")),
                format!("-serverKey={key}"),
            ],
            missing("nopeer.crt"),
        ),
        (
            vec![
                format!("-serverCert={cert}"),
                format!("-serverKey={}", missing("nopeer.key")),
            ],
            missing("nopeer.key"),
        ),
        (
            vec![
                format!("-serverCert={cert}"),
                format!("-serverKey={key}"),
                format!("-serverCAFile={}", missing("nopeerca.crt")),
            ],
            missing("nopeerca.crt"),
        ),
    ];
    for (args, file) in cases {
        assert_fatal(&args, &[file.as_str()]);
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_fatal() {
    assert_fatal(
        &[
            flag("clientCert", "server.crt"),
            flag("clientKey", "client.key.insecure"),
        ],
        &["does not match"],
    );
    assert_fatal(
        &[
            flag("serverCert", "server.crt"),
            flag("serverKey", "client.key.insecure"),
        ],
        &["does not match"],
    );
}

#[test]
fn an_expired_certificate_is_fatal() {
    assert_fatal(
        &[
            flag("clientCert", "expired.crt"),
            flag("clientKey", "expired.key.insecure"),
        ],
        &["expired"],
    );
    assert_fatal(
        &[
            flag("serverCert", "expired.crt"),
            flag("serverKey", "expired.key.insecure"),
            flag("serverCAFile", "ca.crt"),
        ],
        &["expired"],
    );
}
