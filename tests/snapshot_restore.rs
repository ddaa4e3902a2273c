//! `etcdctl snapshot save|status|restore` through our own etcdctl (no Debian package needed):
//!
//! - a snapshot of a node with history (rewrites, a delete, a transaction, a compaction),
//!   a lease with keys, users and roles and auth on, restored by `etcdctl snapshot restore`
//!   into three data directories (one per member, the same `--initial-cluster` and token),
//!   starts a three-member cluster that serves the same data through every member (keys with
//!   their revisions, reads at an older revision, HashKV, the lease with its keys, users and
//!   roles), lists the members by name with their published client URLs, takes writes after
//!   the restored revision, goes on when its leader is killed, and keeps everything across a
//!   kill -9 and restart of every member;
//! - `snapshot status` agrees with the server (revision) and with the file (size);
//! - restore refuses what etcdctl refuses (an existing data directory, a name not in the
//!   cluster, an advertised URL not in it, a damaged file) and leaves nothing behind, and a
//!   restored member refuses to start under another name or peer URL;
//! - `etcdutl backup` of a stopped member makes a new cluster's member holding its whole state
//!   (v1/v2 keys with their indexes, v3 keys with their revisions), alone in its member list,
//!   whose indexes and revisions go on from there;
//! - `etcdctl migrate` turns a stopped member's v2 keys into v3 keys in place (create and mod
//!   revisions from the v2 indexes, as etcd 3.4's), and refuses once there are v3 keys;
//! - neither tool, nor a second member, touches the files of a member that runs.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// Runs our etcdctl (v3) with `args`; (exit code, stdout, stderr).
fn ours(args: &[&str]) -> (Option<i32>, String, String) {
    tool(env!("CARGO_BIN_EXE_etcdctl"), args)
}

/// Runs `program` (our etcdctl or etcdutl) with `args`; (exit code, stdout, stderr).
fn tool(program: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .env("ETCDCTL_API", "3")
        .args(args)
        .output()
        .expect("run our etcdctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(ep: &str, args: &[&str]) -> String {
    let mut all = vec!["--endpoints", ep, "--user", "root:rootpw"];
    all.extend_from_slice(args);
    let (code, out, err) = ours(&all);
    assert_eq!(code, Some(0), "etcdctl {args:?} via {ep}: {out}{err}");
    out
}

/// The shared history (`support::history`) written through our etcdctl at `ep`.
fn write_history(ep: &str) {
    history::write_history(&|args, input| {
        etcdctl3_of(env!("CARGO_BIN_EXE_etcdctl"), ep, &[], args, input)
    });
}

/// The shared fingerprint (`support::history`) read through our etcdctl at `ep`.
fn fingerprint(ep: &str) -> Vec<String> {
    history::fingerprint(&|args, input| {
        etcdctl3_of(env!("CARGO_BIN_EXE_etcdctl"), ep, &[], args, input)
    })
}

/// Waits until `ep` commits a read through the cluster (bounded).
fn wait_serving(ep: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out, err) = ours(&[
            "--endpoints",
            ep,
            "--user",
            "root:rootpw",
            "endpoint",
            "health",
        ]);
        if code == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ep} did not serve within 30 s: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Restores `file` for member `node` of `cluster` into its data directory, with `program`
/// (etcdctl or etcdutl).
fn restore(
    program: &str,
    file: &Path,
    node: &Node,
    cluster: &str,
) -> (Option<i32>, String, String) {
    let data = node.data_dir.display().to_string();
    tool(
        program,
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--name",
            &node.name,
            "--initial-cluster",
            cluster,
            "--initial-cluster-token",
            "restored-token",
            "--initial-advertise-peer-urls",
            &node.peer_url(),
            "--data-dir",
            &data,
        ],
    )
}

#[test]
fn a_snapshot_restored_by_etcdctl_becomes_a_three_member_cluster_serving_the_same_data() {
    let source = Node::start("snapsrc", &["--bcrypt-cost", "4"]);
    let src = source.client_addr();
    write_history(&src);
    let expected = fingerprint(&src);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let f = file.to_str().unwrap();
    let saved = ok(&src, &["snapshot", "save", f]);
    assert_eq!(saved, format!("Snapshot saved at {f}\n"));
    assert!(
        !Path::new(&format!("{f}.part")).exists(),
        "the .part file is gone"
    );
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(len % 512, 32, "whole pages and the SHA-256");
    let (code, status, err) = ours(&["snapshot", "status", f, "-w", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    let revision = expected
        .iter()
        .find_map(|l| l.strip_prefix("revision "))
        .unwrap()
        .to_string();
    assert_eq!(status["revision"].to_string(), revision, "{status}");
    assert_eq!(status["totalSize"].as_u64(), Some(len - 32), "{status}");
    // etcdutl says the same, in every format.
    for format in ["simple", "json", "fields", "table"] {
        let args = ["snapshot", "status", f, "-w", format];
        assert_eq!(
            tool(env!("CARGO_BIN_EXE_etcdutl"), &args),
            ours(&args),
            "{format}"
        );
    }
    drop(source);

    // Three members, restored each from the same file with the same cluster and token.
    let mut members: Vec<Node> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| Node::prepare(n, &[]))
        .collect();
    let cluster = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for (i, m) in members.iter_mut().enumerate() {
        // The last member's with etcdutl, the others' with etcdctl.
        let program = if i == 2 {
            env!("CARGO_BIN_EXE_etcdutl")
        } else {
            env!("CARGO_BIN_EXE_etcdctl")
        };
        let (code, out, err) = restore(program, &file, m, &cluster);
        assert_eq!(code, Some(0), "restore {}: {out}{err}", m.name);
        assert_eq!(out, "", "restore prints its progress on stderr only");
        assert!(err.contains("\"msg\":\"restored snapshot\""), "{err}");
        m.args = m.modern_args();
        m.args
            .extend(["--initial-cluster".to_string(), cluster.clone()]);
        m.args
            .extend(["--bcrypt-cost".to_string(), "4".to_string()]);
        m.launch();
    }
    for m in &members {
        wait_serving(&m.client_addr());
    }
    for m in &members {
        assert_eq!(
            fingerprint(&m.client_addr()),
            expected,
            "through {}",
            m.name
        );
    }
    // The members by name, each with the client URL it published.
    let list = ok(&members[0].client_addr(), &["member", "list"]);
    for m in &members {
        let line = format!(
            ", started, {}, {}, {}, false",
            m.name,
            m.peer_url(),
            m.client_url()
        );
        assert!(list.contains(&line), "{list} lacks {line}");
    }
    assert_eq!(list.lines().count(), 3, "{list}");

    // Writes go on after the restored revision, and survive the leader's death.
    let put = ok(
        &members[1].client_addr(),
        &["put", "after", "restore", "-w", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&put).unwrap();
    let rev: i64 = revision.parse().unwrap();
    assert_eq!(v["header"]["revision"].as_i64(), Some(rev + 1), "{put}");
    let status = ok(
        &members[0].client_addr(),
        &["endpoint", "status", "-w", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let leader = v[0]["Status"]["leader"].as_u64().unwrap();
    let ids = ok(&members[0].client_addr(), &["member", "list", "-w", "json"]);
    let ids: serde_json::Value = serde_json::from_str(&ids).unwrap();
    let leader_name = ids["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ID"].as_u64() == Some(leader))
        .and_then(|m| m["name"].as_str())
        .expect("the leader is a member")
        .to_string();
    let li = members.iter().position(|m| m.name == leader_name).unwrap();
    members[li].kill();
    let other = &members[(li + 1) % 3].client_addr();
    wait_serving(other);
    ok(other, &["put", "after", "leader death"]);
    members[li].launch();
    wait_serving(&members[li].client_addr());
    // kill -9 of every member, then restart: the restored data is each member's own.
    for m in &mut members {
        m.kill();
    }
    for m in &mut members {
        m.launch();
    }
    for m in &members {
        wait_serving(&m.client_addr());
    }
    for m in &members {
        let ep = m.client_addr();
        let mut got = fingerprint(&ep);
        // (Two writes since: the keys, revision and hash moved; the rest stayed.)
        let after = ok(&ep, &["get", "after", "--print-value-only"]);
        assert_eq!(after, "leader death\n", "through {}", m.name);
        got.retain(|l| !history::moved_by_writes(l));
        let mut want = expected.clone();
        want.retain(|l| !history::moved_by_writes(l));
        assert_eq!(got, want, "through {}", m.name);
    }
}

#[test]
fn restore_refuses_what_etcdctl_refuses_and_a_restored_member_keeps_its_identity() {
    let source = Node::start("refusals", &[]);
    let src = source.client_addr();
    let (code, _, err) = ours(&["--endpoints", &src, "put", "a", "1"]);
    assert_eq!(code, Some(0), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let f = file.to_str().unwrap();
    let (code, _, err) = ours(&["--endpoints", &src, "snapshot", "save", f]);
    assert_eq!(code, Some(0), "{err}");
    // More than one endpoint: etcdctl's refusal, exit 5.
    let two = format!("{src},{src}");
    let (code, _, err) = ours(&["--endpoints", &two, "snapshot", "save", f]);
    assert_eq!(code, Some(5));
    assert_eq!(
        err,
        format!(
            "Error: snapshot must be requested to one selected node, not multiple [{src} {src}]\n"
        )
    );
    drop(source);

    let data = dir.path().join("m.etcd");
    let d = data.to_str().unwrap();
    let restore = |extra: &[&str]| {
        let mut args = vec!["snapshot", "restore", f, "--data-dir", d];
        args.extend_from_slice(extra);
        ours(&args)
    };
    let cases: [(&[&str], String); 4] = [
        (
            &["--name", "nobody"],
            "Error: couldn't find local name \"nobody\" in the initial cluster configuration\n"
                .to_string(),
        ),
        (
            &[
                "--name",
                "m",
                "--initial-cluster",
                "m=http://127.0.0.1:1,n=http://127.0.0.1:2",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:3",
            ],
            "Error: --initial-cluster has m=http://127.0.0.1:1 but missing from \
             --initial-advertise-peer-urls=http://127.0.0.1:3\n"
                .to_string(),
        ),
        (
            &[
                "--name",
                "m",
                "--initial-cluster",
                "m=http://127.0.0.1:1,n=http://127.0.0.1:1",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:1",
            ],
            "Error: initial cluster m=http://127.0.0.1:1,n=http://127.0.0.1:1 has duplicate \
             url\n"
                .to_string(),
        ),
        (
            &["a", "b"],
            "Error: snapshot restore requires exactly one argument\n".to_string(),
        ),
    ];
    for (extra, want) in cases {
        let (code, _, err) = restore(extra);
        assert_ne!(code, Some(0), "{extra:?}");
        assert_eq!(
            err.lines().last().map(|l| format!("{l}\n")),
            Some(want),
            "{extra:?}: {err}"
        );
        assert!(!data.exists(), "{extra:?} left {d} behind");
    }
    // A damaged file: refused, nothing left behind.
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xFF;
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, _, err) = ours(&[
        "snapshot",
        "restore",
        damaged.to_str().unwrap(),
        "--data-dir",
        d,
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("does not match its contents"), "{err}");
    assert!(!data.exists());

    // Restored for "m" at a peer URL; another name, or another URL, cannot start on it.
    let mut node = Node::prepare("m", &[]);
    let cluster = format!("m={}", node.peer_url());
    let (code, _, err) = ours(&[
        "snapshot",
        "restore",
        f,
        "--name",
        "m",
        "--initial-cluster",
        &cluster,
        "--initial-advertise-peer-urls",
        &node.peer_url(),
        "--data-dir",
        &node.data_dir.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // An existing data directory is refused.
    let (code, _, err) = ours(&[
        "snapshot",
        "restore",
        f,
        "--data-dir",
        &node.data_dir.display().to_string(),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err.lines().last().unwrap(),
        format!(
            "Error: data-dir {:?} exists",
            node.data_dir.display().to_string()
        )
    );
    let mut impostor = node.modern_args();
    let at = impostor.iter().position(|a| a == "--name").unwrap();
    impostor[at + 1] = "other".into();
    let exit = run_etcd(&impostor, node.tmp_path());
    assert_eq!(exit.code(), Some(1), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("was restored for member \"m\""),
        "{}",
        exit.stderr
    );
    node.args = node.modern_args();
    node.launch();
    wait_serving(&node.client_addr());
    let (code, out, err) = ours(&["--endpoints", &node.client_addr(), "get", "a"]);
    assert_eq!((code, out.as_str()), (Some(0), "a\n1\n"), "{err}");
}

/// Waits until `ep` commits a read through the cluster, without a user (bounded).
fn wait_plain(ep: &str) {
    poll_until(Duration::from_secs(30), "the member serves", || {
        (ours(&["--endpoints", ep, "endpoint", "health"]).0 == Some(0)).then_some(())
    });
}

/// (create revision, mod revision, value) of `key` through v3.
fn v3_kv(ep: &str, key: &str) -> Option<(i64, i64, String)> {
    let (code, out, err) = ours(&["--endpoints", ep, "get", key, "-w", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kv = v["kvs"].as_array()?.first()?.clone();
    let (_, value, _) = ours(&["--endpoints", ep, "get", key, "--print-value-only"]);
    Some((
        kv["create_revision"].as_i64().unwrap(),
        kv["mod_revision"].as_i64().unwrap(),
        value.trim_end().to_string(),
    ))
}

/// The v2 `modifiedIndex` of `key` (through the v2 API).
fn v2_index(addr: &str, key: &str) -> i64 {
    v2_indexes(addr, key).1
}

/// The v2 `createdIndex` and `modifiedIndex` of `key`.
fn v2_indexes(addr: &str, key: &str) -> (i64, i64) {
    let r = get(addr, &format!("/v2/keys{key}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let node = &r.json()["node"];
    (
        node["createdIndex"].as_i64().unwrap(),
        node["modifiedIndex"].as_i64().unwrap(),
    )
}

#[test]
fn etcdutl_backup_makes_a_new_cluster_member_with_the_whole_state() {
    let mut source = Node::start("bsrc", &[]);
    let src = source.client_addr();
    post_form(&src, "/v1/keys/a", &[("value", "1")]);
    post_form(&src, "/v1/keys/dir/b", &[("value", "2")]);
    let (code, _, err) = ours(&["--endpoints", &src, "put", "k", "v"]);
    assert_eq!(code, Some(0), "{err}");
    let a_index = v2_index(&src, "/a");
    let k_before = v3_kv(&src, "k").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = source.data_dir.display().to_string();
    // Not while the member runs: its files are in use.
    let elsewhere = dir.path().join("elsewhere").display().to_string();
    let (code, _, err) = tool(
        env!("CARGO_BIN_EXE_etcdutl"),
        &["backup", "--data-dir", &data, "--backup-dir", &elsewhere],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("is in use by another process"), "{err}");
    assert!(!Path::new(&elsewhere).exists());
    assert!(source.terminate().success());

    // A new cluster of one, under another name and peer URL.
    let mut copy = Node::prepare("bcopy", &[]);
    let (code, _, err) = tool(
        env!("CARGO_BIN_EXE_etcdutl"),
        &[
            "backup",
            "--data-dir",
            &data,
            "--backup-dir",
            &copy.data_dir.display().to_string(),
            "--name",
            "bcopy",
            "--initial-advertise-peer-urls",
            &copy.peer_url(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    copy.args = copy.modern_args();
    copy.args.extend([
        "--initial-cluster".to_string(),
        format!("bcopy={}", copy.peer_url()),
    ]);
    copy.launch();
    let ep = copy.client_addr();
    wait_plain(&ep);
    // v1/v2 keys, their indexes, and v3 keys with their revisions.
    assert_eq!(get(&ep, "/v1/keys/a").json()["value"], "1");
    assert_eq!(get(&ep, "/v2/keys/dir/b").json()["node"]["value"], "2");
    assert_eq!(v2_index(&ep, "/a"), a_index);
    assert_eq!(v3_kv(&ep, "k").unwrap(), k_before);
    // The new member alone, and the indexes and revisions go on from where they were.
    let (_, list, _) = ours(&["--endpoints", &ep, "member", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(", started, bcopy, "), "{list}");
    post_form(&ep, "/v1/keys/a", &[("value", "after")]);
    assert!(v2_index(&ep, "/a") > a_index);
    let (code, _, _) = ours(&["--endpoints", &ep, "put", "k", "w"]);
    assert_eq!(code, Some(0));
    assert_eq!(v3_kv(&ep, "k").unwrap().1, k_before.1 + 1);
}

#[test]
fn etcdctl_migrate_turns_a_stopped_members_v2_keys_into_v3_keys() {
    let mut node = Node::start("migrating", &[]);
    let ep = node.client_addr();
    post_form(&ep, "/v1/keys/a", &[("value", "1")]);
    post_form(&ep, "/v1/keys/dir/b", &[("value", "2")]);
    // (A v2 update keeps the node's createdIndex; a v1 set makes a new node.)
    let r = request(
        &ep,
        "PUT",
        "/v2/keys/a?prevExist=true",
        Some((FORM_CONTENT_TYPE, b"value=one")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (a, b) = (v2_indexes(&ep, "/a"), v2_index(&ep, "/dir/b"));
    let data = node.data_dir.display().to_string();
    let migrate = || ours(&["migrate", "--data-dir", &data]);
    let (code, _, err) = migrate();
    assert_eq!(code, Some(1));
    assert!(err.contains("is in use by another process"), "{err}");
    // Nor can a second member start on it.
    let second = run_etcd(&node.args, node.tmp_path());
    assert_eq!(second.code(), Some(1), "{}", second.stderr);
    assert!(
        second.stderr.contains("is in use by another process"),
        "{}",
        second.stderr
    );
    assert!(node.terminate().success());
    let (code, out, err) = migrate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "using default transformer\nfinished transforming keys\n"
    );
    node.launch();
    node.wait_ready();
    // etcd's migrate: create and mod revisions from the v2 indexes, version 1.
    let (create, modified, value) = v3_kv(&ep, "/a").unwrap();
    assert_eq!(((create, modified), value.as_str()), (a, "one"));
    assert!(create < modified, "{create} {modified}");
    assert_eq!(v3_kv(&ep, "/dir/b").unwrap(), (b, b, "2".to_string()));
    assert!(
        v3_kv(&ep, "/_etcd/machines/migrating").is_none(),
        "internal keys stay out"
    );
    // The v2 keys are still there, and the member takes writes on both.
    assert_eq!(get(&ep, "/v1/keys/a").json()["value"], "one");
    assert_eq!(ours(&["--endpoints", &ep, "put", "/a", "v3"]).0, Some(0));
    assert!(node.terminate().success());
    // Once there are v3 keys, nothing more is migrated.
    let (code, _, err) = migrate();
    assert_eq!(code, Some(1));
    assert!(err.contains("the v3 keyspace is not empty"), "{err}");
}
