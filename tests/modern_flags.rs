//! Modern etcd's flags and `ETCD_*` variables (issue 7): a static `--initial-cluster` of three
//! started in any order, a node configured by environment variables alone (a flag beats its
//! variable), the first member of a static cluster refusing to start a second cluster after
//! losing its data, and configuration errors that name the flag.

mod support;

use std::time::Duration;

use support::*;

/// The modern flags for `node`, and `--enable-v2` as etcd 3.4 unit files have it.
fn modern_args(node: &Node) -> Vec<String> {
    let mut args = node.modern_args();
    args.push("--enable-v2".into());
    args
}

/// Names of the members `/v2/members` lists on `node`, sorted.
fn member_names(node: &Node) -> Option<Vec<String>> {
    let r = try_request(
        &node.client_addr(),
        "GET",
        "/v2/members",
        None,
        PROBE_TIMEOUT,
    )
    .ok()?;
    if r.status != 200 {
        return None;
    }
    let mut names: Vec<String> = r.json()["members"]
        .as_array()?
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Some(names)
}

fn start_static_cluster() -> Vec<Node> {
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::prepare(n, &[]))
        .collect();
    let cluster = nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for (i, node) in nodes.iter_mut().enumerate() {
        node.args = modern_args(node);
        node.args
            .extend(["--initial-cluster-token".into(), "t1".into()]);
        if i == 1 {
            // One member takes the cluster from its environment.
            node.env
                .push(("ETCD_INITIAL_CLUSTER".into(), cluster.clone()));
            node.env
                .push(("ETCD_INITIAL_CLUSTER_STATE".into(), "new".into()));
        } else {
            node.args
                .extend(["--initial-cluster".into(), cluster.clone()]);
        }
    }
    // The joiners first: they wait for the first member listed.
    for i in [2, 1, 0] {
        nodes[i].launch();
    }
    for node in &mut nodes {
        poll_until(MEMBER_READY_TIMEOUT, "three members listed", || {
            node.assert_running();
            member_names(node).filter(|names| names.len() == 3)
        });
    }
    nodes
}

#[test]
fn a_static_cluster_starts_in_any_order_from_modern_flags_and_variables() {
    let nodes = start_static_cluster();
    for node in &nodes {
        assert_eq!(member_names(node).unwrap(), vec!["a", "b", "c"]);
    }
    // Writes on one member are read linearizably on another.
    let put = nodes[2].send_form("PUT", "/v2/keys/static", &[("value", "yes")]);
    assert_eq!(put.status, 201, "{}", put.text());
    let got = poll_until(LEADER_TIMEOUT, "a quorum read on a", || {
        let r = nodes[0].get("/v2/keys/static?quorum=true");
        (r.status == 200).then_some(r)
    });
    assert_eq!(got.json()["node"]["value"], "yes");
    // Every member names the same leader.
    let leaders: Vec<String> = nodes.iter().map(|n| n.get("/v1/leader").text()).collect();
    assert!(leaders.iter().all(|l| *l == leaders[0]), "{leaders:?}");
}

#[test]
fn the_first_member_of_a_static_cluster_does_not_start_a_second_one_after_losing_its_data() {
    let mut nodes = start_static_cluster();
    nodes[0].kill();
    std::fs::remove_dir_all(&nodes[0].data_dir).expect("wipe a's data");
    nodes[0].launch();
    let status = nodes[0]
        .wait_exit(Duration::from_secs(30))
        .expect("a should refuse to start");
    assert_eq!(status.code(), Some(1), "{}", nodes[0].logs());
    assert!(
        nodes[0].logs().contains("is taken by another member"),
        "the refusal should say why: {}",
        nodes[0].logs()
    );
    // The others still serve as a cluster of three with two alive.
    let r = nodes[1].send_form("PUT", "/v2/keys/still", &[("value", "up")]);
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn a_node_configured_only_by_etcd_variables_and_a_flag_beats_its_variable() {
    let mut node = Node::prepare("envnode", &[]);
    node.args = vec!["--name".into(), "envnode".into()];
    node.env = vec![
        ("ETCD_NAME".into(), "overridden".into()),
        ("ETCD_DATA_DIR".into(), node.data_dir.display().to_string()),
        ("ETCD_LISTEN_CLIENT_URLS".into(), node.client_url()),
        ("ETCD_ADVERTISE_CLIENT_URLS".into(), node.client_url()),
        ("ETCD_LISTEN_PEER_URLS".into(), node.peer_url()),
        ("ETCD_INITIAL_ADVERTISE_PEER_URLS".into(), node.peer_url()),
        ("ETCD_ENABLE_V2".into(), "true".into()),
    ];
    node.launch();
    node.wait_ready();
    assert_eq!(member_names(&node).unwrap(), vec!["envnode"]);
    assert!(node.data_dir.join("info").exists());
    let r = node.send_form("PUT", "/v2/keys/from-env", &[("value", "1")]);
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn bad_modern_flags_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["--name".into(), "x".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        run_etcd(&args, tmp.path())
    };
    for (extra, expect) in [
        (
            &["--advertise-client-urls", "https://127.0.0.1:2379"][..],
            "--advertise-client-urls",
        ),
        (
            &[
                "--listen-client-urls",
                "http://127.0.0.1:1,https://127.0.0.1:2",
            ][..],
            "--listen-client-urls: https URLs need a certificate",
        ),
        (
            &["--listen-peer-urls", "127.0.0.1:2380"][..],
            "not an http:// or https:// URL",
        ),
        (
            &[
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "y=http://127.0.0.1:2380",
            ][..],
            "\"x\" is not in",
        ),
        (
            &[
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "x=http://127.0.0.1:2381",
            ][..],
            "does not match the advertised peer address",
        ),
        (
            &[
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "x=http://127.0.0.1:2380",
                "--initial-cluster-state",
                "maybe",
            ][..],
            "--initial-cluster-state",
        ),
    ] {
        let exit = run(extra);
        assert_eq!(exit.code(), Some(1), "{extra:?}: {}", exit.stderr);
        assert!(
            exit.stderr.contains(expect),
            "{extra:?}: stderr should mention {expect:?}: {}",
            exit.stderr
        );
    }
}
