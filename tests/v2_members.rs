//! `/v2/members` changes (issue 7): adding a member that is not started yet (it takes the id it
//! was added with and publishes its name when it starts with `--initial-cluster-state
//! existing`), removing one (204, then 410 for it, 404 for ids never seen), updating a peer
//! URL, and etcd's errors for bad requests. Also etcdctl 3.4's `member add`/`remove` when it is
//! installed.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

const JSON: &str = "application/json";

fn members(addr: &str) -> Vec<Value> {
    let r = get(addr, "/v2/members");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["members"].as_array().cloned().unwrap_or_default()
}

fn member_named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|m| m["name"] == name)
}

fn peer_urls_body(url: &str) -> String {
    format!(r#"{{"peerURLs":["{url}"]}}"#)
}

/// A member process for `node`, configured with modern flags to join an existing cluster
/// through `cluster` (`name=url,...`, this member included).
fn joiner_args(node: &Node, cluster: &str) -> Vec<String> {
    let mut args = node.modern_args();
    args.extend(
        [
            "--initial-cluster",
            cluster,
            "--initial-cluster-state",
            "existing",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args
}

#[test]
fn an_added_member_takes_its_id_and_publishes_its_name_then_can_be_removed() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let addr = c.member(leader).client_addr();
    let mut d = Node::prepare("d", &[]);

    // Add: 201 with a fresh id, no name and no client URLs until it starts.
    let r = request(
        &addr,
        "POST",
        "/v2/members",
        Some((JSON, peer_urls_body(&d.peer_url()).as_bytes())),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let added = r.json();
    let id = added["id"].as_str().expect("id").to_string();
    assert!(
        !id.is_empty() && id.len() <= 16 && u64::from_str_radix(&id, 16).is_ok(),
        "{added}"
    );
    assert_eq!(added["name"], "");
    assert_eq!(added["peerURLs"][0], d.peer_url());
    assert_eq!(added["clientURLs"], Value::Array(vec![]));
    let listed = members(&addr);
    assert_eq!(listed.len(), 4);
    assert!(listed.iter().any(|m| m["id"] == id.as_str()
        && m["name"] == ""
        && m["clientURLs"] == Value::Array(vec![])));
    // The same peer URL twice is a conflict.
    let again = request(
        &addr,
        "POST",
        "/v2/members",
        Some((JSON, peer_urls_body(&d.peer_url()).as_bytes())),
    );
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.json()["message"], "etcdserver: peerURL exists");

    // Start it: it joins under the id it was added with and publishes its name.
    let mut cluster: Vec<String> = (0..3)
        .map(|i| format!("{}={}", c.member(i).name, c.member(i).peer_url()))
        .collect();
    cluster.push(format!("d={}", d.peer_url()));
    d.args = joiner_args(&d, &cluster.join(","));
    d.launch();
    let published = poll_until(MEMBER_READY_TIMEOUT, "d publishes its name", || {
        d.assert_running();
        let list = members(&addr);
        member_named(&list, "d").cloned()
    });
    assert_eq!(
        published["id"],
        id.as_str(),
        "d must take the id it was added with"
    );
    assert_eq!(published["clientURLs"][0], d.client_url());
    // It serves the cluster's data.
    let w = c
        .member(leader)
        .send_form("PUT", "/v2/keys/added", &[("value", "1")]);
    assert_eq!(w.status, 201, "{}", w.text());
    let got = poll_until(CONVERGE_TIMEOUT, "d has the write", || {
        let r = try_request(
            &d.client_addr(),
            "GET",
            "/v2/keys/added?quorum=true",
            None,
            PROBE_TIMEOUT,
        )
        .ok()?;
        (r.status == 200).then_some(r)
    });
    assert_eq!(got.json()["node"]["value"], "1");
    let machines = get(&addr, "/v2/machines").text();
    assert!(machines.contains(&d.client_url()), "{machines}");

    // Remove: 204; the member learns it and stops; its id is gone for good.
    let r = request(&addr, "DELETE", &format!("/v2/members/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("a removed member stops");
    assert!(status.success(), "{status:?}: {}", d.logs());
    assert_eq!(members(&addr).len(), 3);
    let r = request(&addr, "DELETE", &format!("/v2/members/{id}"), None);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (410, "etcdserver: member removed".into())
    );
    let r = request(&addr, "DELETE", "/v2/members/abcdef", None);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (404, "etcdserver: member not found".into())
    );
    // The cluster of three goes on.
    let w = c
        .member(leader)
        .send_form("PUT", "/v2/keys/after", &[("value", "2")]);
    assert_eq!(w.status, 201, "{}", w.text());
}

#[test]
fn a_member_peer_url_can_be_changed_and_changed_back() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let followers = c.followers();
    let leader = c.leader();
    let addr = c.member(leader).client_addr();
    let f = followers[0];
    let list = members(&addr);
    let id = member_named(&list, &c.member(f).name).expect("follower listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let real = c.member(f).peer_url();
    let elsewhere = format!("http://127.0.0.1:{}", free_port());

    let put = |url: &str| {
        request(
            &addr,
            "PUT",
            &format!("/v2/members/{id}"),
            Some((JSON, peer_urls_body(url).as_bytes())),
        )
    };
    let counts = |what: &str| -> u64 {
        let r = get(&addr, "/v2/stats/leader");
        r.json()["followers"][id.as_str()]["counts"][what]
            .as_u64()
            .unwrap_or_else(|| panic!("no {what} count for {id}: {}", r.text()))
    };
    let failed_before = counts("fail");
    let r = put(&elsewhere);
    assert_eq!(r.status, 204, "{}", r.text());
    // The leader now sends to the new URL, where nobody listens.
    poll_until(CONVERGE_TIMEOUT, "deliveries to the new URL fail", || {
        (counts("fail") > failed_before).then_some(())
    });
    let listed = members(&addr);
    assert_eq!(
        member_named(&listed, &c.member(f).name).unwrap()["peerURLs"][0],
        elsewhere.as_str()
    );
    // Another member's URL is a conflict.
    let other = c.member(followers[1]).peer_url();
    assert_eq!(put(&other).status, 409);
    // Back to where it listens; the cluster works with all three again.
    assert_eq!(put(&real).status, 204);
    let delivered = counts("success");
    poll_until(
        CONVERGE_TIMEOUT,
        "deliveries to the real URL succeed",
        || (counts("success") > delivered).then_some(()),
    );
    let w = c
        .member(leader)
        .send_form("PUT", "/v2/keys/moved", &[("value", "back")]);
    assert_eq!(w.status, 201, "{}", w.text());
    c.wait_get(f, "/v1/keys/moved", CONVERGE_TIMEOUT, "the write", |r| {
        r.status == 200 && r.json()["value"] == "back"
    });
    // The leader's view of the follower: etcd's latency and counts.
    let stats = get(&addr, "/v2/stats/leader").json();
    let lat = &stats["followers"][id.as_str()]["latency"];
    for k in [
        "current",
        "average",
        "standardDeviation",
        "minimum",
        "maximum",
    ] {
        assert!(lat[k].as_f64().is_some_and(|v| v >= 0.0), "{k}: {stats}");
    }
    assert!(
        lat["minimum"].as_f64() <= lat["average"].as_f64(),
        "{stats}"
    );
    assert!(
        lat["average"].as_f64() <= lat["maximum"].as_f64(),
        "{stats}"
    );
}

#[test]
fn bad_member_requests_get_etcds_errors() {
    let node = Node::start("solo", &[]);
    let addr = node.client_addr();
    let post =
        |ct: &str, body: &str| request(&addr, "POST", "/v2/members", Some((ct, body.as_bytes())));
    let r = post(FORM_CONTENT_TYPE, "peerURLs=http://127.0.0.1:1");
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (415, "Bad Content-Type".into())
    );
    assert_eq!(post(JSON, "{not json").status, 400);
    assert_eq!(post(JSON, r#"{"peerURLs":[]}"#).status, 400);
    assert_eq!(post(JSON, r#"{"peerURLs":["127.0.0.1:7001"]}"#).status, 400);
    assert_eq!(
        post(JSON, r#"{"peerURLs":["https://127.0.0.1:7001"]}"#).status,
        400
    );
    let r = request(
        &addr,
        "PUT",
        "/v2/members/123",
        Some((JSON, peer_urls_body("http://127.0.0.1:9").as_bytes())),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    // Nothing was added.
    assert_eq!(members(&addr).len(), 1);
}

#[test]
fn a_peer_url_in_use_cannot_join_again_under_another_name() {
    let c = Cluster::start(3, &FAST_TIMING);
    // A process that advertises member 1's peer URL under a new name.
    let imposter = Node::prepare("imposter", &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let taken = c.member(1).peer_addr();
    let args: Vec<String> = [
        "-n",
        "imposter",
        "-d",
        &dir.path().join("data").display().to_string(),
        "-c",
        &imposter.client_addr(),
        "-s",
        &taken,
        "-C",
        &c.member(0).peer_addr(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let exit = run_etcd(&args, dir.path());
    assert_eq!(exit.code(), Some(1), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("is taken by another member"),
        "{}",
        exit.stderr
    );
}
