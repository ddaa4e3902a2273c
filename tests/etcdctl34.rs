//! Compatibility with a real v2 client (issue 7): Debian's `etcd-client` (etcdctl 3.4) in v2
//! mode runs set, get, mk, mkdir, update, rm, rmdir, ls -r, watch, exec-watch, member list,
//! member add/remove and cluster-health against one node and against a three-member cluster,
//! and the `user`, `role` and `auth` commands.
//!
//! The tests need `etcdctl` 3.x on the PATH. Without it they say so and pass, unless
//! `ETCD_REQUIRE_ETCDCTL` is set (`.ci/run` installs the package and sets it), when a missing
//! `etcdctl` fails them.

mod support;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const CTL_TIMEOUT: Duration = Duration::from_secs(20);

/// The outcome of one etcdctl run.
struct Ctl {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn spawn_ctl(endpoints: &str, args: &[&str], dir: &Path, tag: &str) -> Child {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "2")
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(File::create(dir.join(format!("{tag}.out"))).expect("stdout file"))
        .stderr(File::create(dir.join(format!("{tag}.err"))).expect("stderr file"))
        .spawn()
        .expect("spawn etcdctl")
}

fn finish(mut child: Child, dir: &Path, tag: &str, what: &str) -> Ctl {
    let status = wait_child(&mut child, CTL_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("etcdctl {what} did not finish within {CTL_TIMEOUT:?}");
    });
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{tag}.{ext}"))).unwrap();
    Ctl {
        code: status.code(),
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// Runs etcdctl with `input` on its standard input (the password prompts read it).
fn ctl_input(endpoints: &str, args: &[&str], dir: &Path, input: &str) -> Ctl {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "2")
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(File::create(dir.join("in.out")).expect("stdout file"))
        .stderr(File::create(dir.join("in.err")).expect("stderr file"))
        .spawn()
        .expect("spawn etcdctl");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(input.as_bytes());
    }
    finish(child, dir, "in", &args.join(" "))
}

fn ctl(endpoints: &str, args: &[&str], dir: &Path) -> Ctl {
    let child = spawn_ctl(endpoints, args, dir, "run");
    finish(child, dir, "run", &args.join(" "))
}

#[track_caller]
fn ok(endpoints: &str, args: &[&str], dir: &Path) -> String {
    let r = ctl(endpoints, args, dir);
    assert_eq!(
        r.code,
        Some(0),
        "etcdctl {args:?}: stdout {:?} stderr {:?}",
        r.stdout,
        r.stderr
    );
    r.stdout
}

#[track_caller]
fn fails(endpoints: &str, args: &[&str], dir: &Path, code: i32, stderr_has: &str) {
    let r = ctl(endpoints, args, dir);
    assert_eq!(r.code, Some(code), "etcdctl {args:?}: {r:?}", r = r.stderr);
    assert!(
        r.stderr.contains(stderr_has),
        "etcdctl {args:?}: stderr {:?} should contain {stderr_has:?}",
        r.stderr
    );
}

/// Waits until the members at `addrs` have at least `n` watchers registered in all
/// (`/v2/stats/store`).
fn wait_watchers(addrs: &[String], n: u64) {
    poll_until(AT_ONCE * 3, "the watcher registered", || {
        let mut total = 0;
        for addr in addrs {
            let r = try_request(addr, "GET", "/v2/stats/store", None, PROBE_TIMEOUT).ok()?;
            total += r.json()["watchers"].as_u64()?;
        }
        (total >= n).then_some(())
    });
}

/// set, get, mk, mkdir, update, rm, rmdir, ls, TTLs and compare-and-swap through `ep`
/// (one endpoint or several), on a store without these keys.
fn everyday(ep: &str, d: &Path) {
    assert_eq!(ok(ep, &["set", "/foo", "bar"], d), "bar\n");
    assert_eq!(ok(ep, &["get", "/foo"], d), "bar\n");
    assert_eq!(ok(ep, &["mk", "/new", "v"], d), "v\n");
    fails(
        ep,
        &["mk", "/new", "v"],
        d,
        4,
        "105: Key already exists (/new)",
    );
    assert_eq!(ok(ep, &["mkdir", "/dir"], d), "");
    fails(
        ep,
        &["mkdir", "/dir"],
        d,
        4,
        "105: Key already exists (/dir)",
    );
    assert_eq!(ok(ep, &["update", "/foo", "baz"], d), "baz\n");
    fails(
        ep,
        &["update", "/nope", "x"],
        d,
        4,
        "100: Key not found (/nope)",
    );
    ok(ep, &["set", "/dir/a", "1"], d);
    ok(ep, &["set", "/dir/sub/b", "2"], d);
    assert_eq!(
        ok(ep, &["ls", "-r", "/"], d),
        "/dir\n/dir/a\n/dir/sub\n/dir/sub/b\n/foo\n/new\n"
    );
    assert_eq!(ok(ep, &["ls", "/dir"], d), "/dir/a\n/dir/sub\n");
    fails(
        ep,
        &["rmdir", "/dir"],
        d,
        4,
        "108: Directory not empty (/dir)",
    );
    assert_eq!(ok(ep, &["rm", "/foo"], d), "PrevNode.Value: baz\n");
    fails(ep, &["get", "/foo"], d, 4, "100: Key not found (/foo)");
    ok(ep, &["mkdir", "/empty"], d);
    assert_eq!(ok(ep, &["rmdir", "/empty"], d), "");
    assert_eq!(ok(ep, &["rm", "-r", "/dir"], d), "");
    fails(ep, &["get", "/dir/a"], d, 4, "100: Key not found (/dir)");
    // TTLs and the extended output.
    ok(ep, &["set", "/t", "v", "--ttl", "100"], d);
    let ext = ok(ep, &["-o", "extended", "get", "/t"], d);
    assert!(ext.starts_with("Key: /t\nCreated-Index: "), "{ext}");
    let ttl: i64 = ext
        .lines()
        .find_map(|l| l.strip_prefix("TTL: "))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no TTL line: {ext}"));
    assert!((99..=100).contains(&ttl), "{ext}");
    // Compare-and-swap spelled etcdctl's way.
    ok(ep, &["set", "/cas", "one"], d);
    fails(
        ep,
        &["set", "/cas", "two", "--swap-with-value", "zzz"],
        d,
        4,
        "101: Compare failed ([zzz != one])",
    );
    assert_eq!(
        ok(ep, &["set", "/cas", "two", "--swap-with-value", "one"], d),
        "two\n"
    );
}

#[test]
fn etcdctl_v2_runs_the_everyday_commands_against_one_node() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("ctl34", &[]);
    let ep = node.client_url();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();

    everyday(&ep, d);
    // Membership and health.
    let members = ok(&ep, &["member", "list"], d);
    assert!(
        members.ends_with(&format!(
            ": name=ctl34 peerURLs={} clientURLs={} isLeader=true\n",
            node.peer_url(),
            node.client_url()
        )),
        "{members}"
    );
    let health = ok(&ep, &["cluster-health"], d);
    assert!(
        health.contains(&format!("is healthy: got healthy result from {ep}"))
            && health.ends_with("cluster is healthy\n"),
        "{health}"
    );
}

/// watch and exec-watch through `ep`; `addrs` are the members the watchers may wait on.
fn watches(ep: &str, addrs: &[String], d: &Path) {
    let ep = ep.to_string();
    let watch = spawn_ctl(&ep, &["watch", "/w"], d, "watch");
    wait_watchers(addrs, 1);
    ok(&ep, &["set", "/w", "hello"], d);
    let w = finish(watch, d, "watch", "watch /w");
    assert_eq!(
        (w.code, w.stdout.as_str()),
        (Some(0), "hello\n"),
        "{}",
        w.stderr
    );

    // exec-watch runs the command once per event, with the event in its environment.
    let out = d.join("events");
    let script = format!(
        "echo \"$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\" >> {}",
        out.display()
    );
    let mut exec = spawn_ctl(
        &ep,
        &[
            "exec-watch",
            "--recursive",
            "/ew",
            "--",
            "sh",
            "-c",
            &script,
        ],
        d,
        "exec",
    );
    wait_watchers(addrs, 1);
    ok(&ep, &["set", "/ew/a", "1"], d);
    poll_until(AT_ONCE * 3, "the first event's command ran", || {
        let text = std::fs::read_to_string(&out).ok()?;
        text.contains("set /ew/a 1\n").then_some(())
    });
    wait_watchers(addrs, 1);
    ok(&ep, &["set", "/ew/b", "2"], d);
    let events = poll_until(AT_ONCE * 3, "the second event's command ran", || {
        let text = std::fs::read_to_string(&out).ok()?;
        text.contains("set /ew/b 2\n").then_some(text)
    });
    assert_eq!(events, "set /ew/a 1\nset /ew/b 2\n");
    let _ = exec.kill();
    let _ = exec.wait();
}

#[test]
fn etcdctl_v2_watch_and_exec_watch_see_writes() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("ctlwatch", &[]);
    let ep = node.client_url();
    let addr = node.client_addr();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();

    watches(&ep, &[addr], d);
}

#[test]
fn etcdctl_v2_works_against_a_three_member_cluster() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let endpoints: Vec<String> = (0..3).map(|i| c.member(i).client_url()).collect();
    let all = endpoints.join(",");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Writes through one member are read through another.
    let follower = (leader + 1) % 3;
    assert_eq!(ok(&endpoints[follower], &["set", "/c", "3"], d), "3\n");
    assert_eq!(ok(&endpoints[leader], &["get", "/c"], d), "3\n");
    assert_eq!(ok(&all, &["mk", "/m", "x"], d), "x\n");
    assert_eq!(ok(&all, &["ls", "-r", "/"], d), "/c\n/m\n");
    assert_eq!(ok(&all, &["rm", "/c"], d), "PrevNode.Value: 3\n");
    assert_eq!(ok(&all, &["rm", "/m"], d), "PrevNode.Value: x\n");
    // The whole everyday list, and watches, through all three endpoints.
    everyday(&all, d);
    let addrs: Vec<String> = (0..3).map(|i| c.member(i).client_addr()).collect();
    watches(&all, &addrs, d);
    let members = ok(&all, &["member", "list"], d);
    assert_eq!(members.lines().count(), 3, "{members}");
    assert_eq!(members.matches("isLeader=true").count(), 1, "{members}");
    for i in 0..3 {
        let m = c.member(i);
        assert!(
            members.contains(&format!(
                "name={} peerURLs={} clientURLs={}",
                m.name,
                m.peer_url(),
                m.client_url()
            )),
            "{members}"
        );
    }
    let health = ok(&all, &["cluster-health"], d);
    assert_eq!(health.matches(" is healthy: ").count(), 3, "{health}");
    assert!(health.ends_with("cluster is healthy\n"), "{health}");

    // member add prints what the new member needs; an unstarted member can be removed again
    // (three of four are still a quorum meanwhile).
    let url = format!("http://127.0.0.1:{}", free_port());
    let added = ok(&all, &["member", "add", "newbie", &url], d);
    let id = added
        .strip_prefix("Added member named newbie with ID ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{added}"))
        .to_string();
    assert!(
        added.contains("ETCD_NAME=\"newbie\"")
            && added.contains(&format!("newbie={url}"))
            && added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let members = ok(&all, &["member", "list"], d);
    assert!(
        members.contains(&format!("{id}[unstarted]: peerURLs={url}")),
        "{members}"
    );
    let removed = ok(&all, &["member", "remove", &id], d);
    assert_eq!(removed, format!("Removed member {id} from cluster\n"));
    assert_eq!(ok(&all, &["member", "list"], d).lines().count(), 3);
}

#[test]
fn etcdctl_v2_user_role_and_auth_commands() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("ctlauth", &[]);
    let ep = node.client_url();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let root = ["--username", "root:rootpw"];
    let with_root =
        |args: &[&str]| -> Vec<String> { root.iter().chain(args).map(|s| s.to_string()).collect() };

    let r = ctl_input(&ep, &["user", "add", "root"], d, "rootpw\n");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("User root created"), "{}", r.stdout);
    assert_eq!(ok(&ep, &["role", "add", "r1"], d), "Role r1 created\n");
    assert_eq!(
        ok(
            &ep,
            &["role", "grant", "r1", "--path", "/foo/*", "--readwrite"],
            d
        ),
        "Role r1 updated\n"
    );
    let r = ctl_input(&ep, &["user", "add", "alice"], d, "apw\n");
    assert!(r.stdout.contains("User alice created"), "{}", r.stdout);
    assert_eq!(
        ok(&ep, &["user", "grant", "alice", "--roles", "r1"], d),
        "User alice updated\n"
    );
    assert_eq!(ok(&ep, &["auth", "enable"], d), "Authentication Enabled\n");
    let revoke = with_root(&["role", "revoke", "guest", "--path", "/*", "--readwrite"]);
    let revoke: Vec<&str> = revoke.iter().map(String::as_str).collect();
    assert_eq!(ok(&ep, &revoke, d), "Role guest updated\n");

    // alice may write below /foo and nowhere else; without credentials nothing.
    assert_eq!(
        ok(&ep, &["--username", "alice:apw", "set", "/foo/x", "1"], d),
        "1\n"
    );
    fails(
        &ep,
        &["--username", "alice:apw", "set", "/secret", "1"],
        d,
        4,
        "110: The request requires user authentication",
    );
    fails(
        &ep,
        &["--username", "alice:wrong", "get", "/foo/x"],
        d,
        4,
        "110: The request requires user authentication",
    );
    fails(
        &ep,
        &["get", "/foo/x"],
        d,
        4,
        "110: The request requires user authentication",
    );
    let users = with_root(&["user", "list"]);
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(ok(&ep, &users, d), "alice\nroot\n");
    let roles = with_root(&["role", "list"]);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    assert_eq!(ok(&ep, &roles, d), "guest\nr1\nroot\n");
    let get = with_root(&["role", "get", "r1"]);
    let get: Vec<&str> = get.iter().map(String::as_str).collect();
    assert_eq!(
        ok(&ep, &get, d),
        "Role: r1\nKV Read:\n\t/foo/*\nKV Write:\n\t/foo/*\n"
    );
    let remove = with_root(&["user", "remove", "alice"]);
    let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
    assert_eq!(ok(&ep, &remove, d), "User alice removed\n");
    fails(
        &ep,
        &["--username", "alice:apw", "get", "/foo/x"],
        d,
        4,
        "110: The request requires user authentication",
    );
    let disable = with_root(&["auth", "disable"]);
    let disable: Vec<&str> = disable.iter().map(String::as_str).collect();
    assert_eq!(ok(&ep, &disable, d), "Authentication Disabled\n");
    assert_eq!(ok(&ep, &["get", "/foo/x"], d), "1\n");
}
