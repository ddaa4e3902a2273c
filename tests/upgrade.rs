//! A data directory written by an earlier release starts under this binary with all its data.
//!
//! `fixtures/datadir-v0.1-45de213/` was written by the release at commit 45de213 (snapshot
//! format 2, JSON log entries) with `-snapshot-count 20`, then the process was killed with
//! SIGKILL, so the directory holds a snapshot at index 20 and the entries after it in the WAL
//! (the WAL's preallocated zero tail was cut off to keep the fixture small; recovery treats
//! both the same). What it holds, as that release answered it:
//! - v1 writes `/message` (twice), `/seed/k1`..`k25`, then `/seed/k25` deleted and `/seed/k24`
//!   test-and-set to `swapped` (last change: index 39);
//! - v2 writes `/dir/sub/leaf`, the empty directory `/emptydir`, `/longttl` with a TTL of
//!   3,000,000,000 s, two in-order keys under `/queue`, the hidden `/_hidden`, `/binary`;
//! - the v2 auth user `alice` (auth not enabled).
//!
//! Each test copies the fixture to a temporary directory and points the stored `info` at free
//! ports (a member's stored configuration wins over its flags).

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use support::*;

const FIXTURE: &str = "fixtures/datadir-v0.1-45de213";

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A node on a copy of the fixture, launched and answering reads.
fn start_on_fixture(extra: &[&str]) -> Node {
    let mut node = Node::prepare("node0", extra);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    copy_dir(&fixture, &node.data_dir);
    let info_path = node.data_dir.join("info");
    let mut info: serde_json::Value =
        serde_json::from_slice(&fs::read(&info_path).unwrap()).unwrap();
    info["client_addr"] = node.client_addr().into();
    info["peer_addr"] = format!("127.0.0.1:{}", node.peer_port).into();
    fs::write(&info_path, serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    node.launch();
    wait_serving(&mut node);
    node
}

/// Waits until the node has replayed its log and answers a read of the last v1 write.
fn wait_serving(node: &mut Node) {
    poll_until(
        Duration::from_secs(20),
        "the node to serve /message",
        || {
            node.assert_running();
            let r = try_request(
                &node.client_addr(),
                "GET",
                "/v1/keys/message",
                None,
                Duration::from_secs(2),
            )
            .ok()?;
            (r.status == 200).then_some(())
        },
    );
}

/// A v2 answer: status 200 and this body (v2 bodies end with a newline, as etcd's do).
#[track_caller]
fn assert_v2(r: &Response, body: &str) {
    assert_eq!((r.status, r.text().trim_end()), (200, body));
}

/// Everything the old release answered, checked field by field.
fn assert_fixture_data(node: &Node) {
    // (A v1 GET's `index` is the last change of the store: the member publishing its new
    // client URL after the start may have moved it past 39.)
    for (key, value) in [("/message", "Hello etcd"), ("/seed/k24", "swapped")] {
        let r = node.get(&format!("/v1/keys{key}"));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.json();
        assert_eq!(
            (body["key"].as_str(), body["value"].as_str()),
            (Some(key), Some(value))
        );
        assert!(r.index() >= 39, "{}", r.text());
    }
    assert_eq!(node.get("/v1/keys/seed/k25").status, 404);
    for i in 1..=23 {
        let r = node.get(&format!("/v2/keys/seed/k{i}"));
        let index = 3 + i;
        assert_v2(
            &r,
            &format!(
                r#"{{"action":"get","node":{{"key":"/seed/k{i}","value":"v{i}","modifiedIndex":{index},"createdIndex":{index}}}}}"#
            ),
        );
    }
    assert_v2(
        &node.get("/v2/keys/seed/k24"),
        r#"{"action":"get","node":{"key":"/seed/k24","value":"swapped","modifiedIndex":39,"createdIndex":27}}"#,
    );
    assert_v2(
        &node.get("/v2/keys/dir?recursive=true"),
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/sub","dir":true,"nodes":[{"key":"/dir/sub/leaf","value":"deep","modifiedIndex":30,"createdIndex":30}],"modifiedIndex":30,"createdIndex":30}],"modifiedIndex":30,"createdIndex":30}}"#,
    );
    assert_v2(
        &node.get("/v2/keys/emptydir"),
        r#"{"action":"get","node":{"key":"/emptydir","dir":true,"modifiedIndex":31,"createdIndex":31}}"#,
    );
    assert_v2(
        &node.get("/v2/keys/queue?sorted=true"),
        r#"{"action":"get","node":{"key":"/queue","dir":true,"nodes":[{"key":"/queue/00000000000000000033","value":"job1","modifiedIndex":33,"createdIndex":33},{"key":"/queue/00000000000000000034","value":"job2","modifiedIndex":34,"createdIndex":34}],"modifiedIndex":33,"createdIndex":33}}"#,
    );
    assert_v2(
        &node.get("/v2/keys/_hidden"),
        r#"{"action":"get","node":{"key":"/_hidden","value":"h","modifiedIndex":35,"createdIndex":35}}"#,
    );
    assert_v2(
        &node.get("/v2/keys/binary"),
        r#"{"action":"get","node":{"key":"/binary","value":"ünïcödé ","modifiedIndex":36,"createdIndex":36}}"#,
    );
    let ttl = node.get("/v2/keys/longttl").json();
    assert_eq!(ttl["node"]["value"], "stays");
    assert_eq!(
        ttl["node"]["expiration"], "2121-12-30T06:07:01.543624209Z",
        "{ttl}"
    );
    assert_eq!(ttl["node"]["modifiedIndex"], 32);
    assert_v2(
        &node.get("/v2/auth/users"),
        r#"{"users":[{"user":"alice"}]}"#,
    );
    let members = node.get("/v2/members").json();
    assert_eq!(members["members"][0]["name"], "node0", "{members}");
    assert_eq!(members["members"][0]["id"], "5d6d90f9c00d5e55", "{members}");
    let stats = node.get("/v2/stats/store").json();
    assert_eq!(stats["setsSuccess"], 32, "{stats}");
    assert_eq!(stats["deleteSuccess"], 1, "{stats}");
    assert_eq!(stats["createSuccess"], 2, "{stats}");
    assert_eq!(stats["compareAndSwapSuccess"], 1, "{stats}");
}

#[test]
fn a_data_dir_of_the_previous_release_starts_with_all_its_data() {
    let node = start_on_fixture(&[]);
    assert_fixture_data(&node);
    // New writes follow the old ones in the same index sequence (40 is the restarted
    // leader's empty entry).
    let r = node.post_form("/v1/keys/message", &[("value", "after upgrade")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.index() > 40, "{}", r.text());
}

#[test]
fn an_upgraded_data_dir_writes_snapshots_in_the_new_format_and_restarts_from_them() {
    let mut node = start_on_fixture(&["-snapshot-count", "5"]);
    let before = node.data_files("snap", ".snap");
    for i in 0..12 {
        node.set(&format!("new/k{i}"), &format!("n{i}"));
    }
    // Snapshots are written in the background; wait for one taken after the writes, in the
    // current file format (docs/formats.md).
    poll_until(Duration::from_secs(20), "a new snapshot", || {
        node.data_files("snap", ".snap")
            .into_iter()
            .find(|p| !before.contains(p) && fs::read(p).is_ok_and(|b| b.starts_with(b"ETCDRSS2")))
    });
    node.kill();
    node.launch();
    wait_serving(&mut node);
    for i in 0..12 {
        let r = node.get(&format!("/v1/keys/new/k{i}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["value"], format!("n{i}"));
    }
    let r = node.get("/v1/keys/message");
    assert_eq!(r.json()["value"], "Hello etcd", "{}", r.text());
    assert_v2(
        &node.get("/v2/auth/users"),
        r#"{"users":[{"user":"alice"}]}"#,
    );
}
