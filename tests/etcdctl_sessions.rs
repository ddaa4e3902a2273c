//! The long-running etcdctl commands through our etcdctl against a real node: `lease
//! keep-alive` prints each renewal until the lease is revoked, then says so and exits 0;
//! `make-mirror` copies a prefix's keys to another node under another prefix, then each later
//! revision's changes in one transaction (a put and a delete of one txn land together), and
//! nothing outside the prefix, and goes on across kills of the source member it follows;
//! `etcdctl lock` and `etcdctl elect`: a lock is
//! held by one process at a time (a waiter runs its command only once the holder let go on
//! SIGTERM, with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` set), a failing command fails the lock
//! command as etcdctl's does, candidates lead one at a time while an observer prints each
//! leader, and bad arguments are refused with etcdctl's messages. Where Debian's etcdctl is
//! installed, its lock and ours exclude each other (the same keys, the same order).

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// How long a waiter is given to show that it is (wrongly) not waiting.
const STILL_WAITING: Duration = Duration::from_millis(1500);
/// The bound on anything expected to happen.
const WITHIN: Duration = Duration::from_secs(15);

/// A running etcdctl whose standard output is read line by line.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(program: &str, ep: &str, args: &[&str]) -> Running {
        let mut child = etcdctl3_command(program, ep)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next line printed, within `t`.
    fn line(&self, t: Duration) -> Option<String> {
        self.lines.recv_timeout(t).ok()
    }

    /// SIGTERM, then the exit code (bounded).
    fn terminate(mut self) -> Option<i32> {
        send_signal(&self.child, libc::SIGTERM);
        self.wait()
    }

    fn wait(&mut self) -> Option<i32> {
        let status = wait_child(&mut self.child, WITHIN).expect("etcdctl exits");
        status.code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_etcdctl")
}

fn run(ep: &str, args: &[&str]) -> (Option<i32>, String, String) {
    etcdctl3_of(ours(), ep, &[], args, None)
}

/// A lock held by `holder` (its printed key returned) keeps a waiter running `sh -c` out
/// until the holder is stopped; then the waiter runs with the lock's key and revision.
fn exclusion(ep: &str, holder_program: &str, name: &str, dir: &std::path::Path) {
    let holder = Running::start(holder_program, ep, &["lock", name]);
    let key = holder.line(WITHIN).expect("the holder prints its key");
    assert!(key.starts_with(&format!("{name}/")), "{key}");
    assert_eq!(
        holder.line(WITHIN).as_deref(),
        Some(""),
        "then the empty value"
    );
    let file = dir.join(format!("{name}.ran"));
    let script = format!(
        "echo \"$ETCD_LOCK_KEY $ETCD_LOCK_REV\" > {}",
        file.display()
    );
    let mut waiter = Running::start(ours(), ep, &["lock", name, "--", "sh", "-c", &script]);
    std::thread::sleep(STILL_WAITING);
    assert!(!file.exists(), "the waiter ran while {key} held the lock");
    assert_eq!(holder.terminate(), Some(0), "the holder unlocks on SIGTERM");
    assert_eq!(waiter.wait(), Some(0));
    let ran = std::fs::read_to_string(&file).unwrap();
    let (waiter_key, rev) = ran.trim().split_once(' ').expect("key and revision");
    assert!(
        waiter_key.starts_with(&format!("{name}/")) && waiter_key != key,
        "{ran}"
    );
    assert!(rev.parse::<i64>().unwrap() > 1, "{ran}");
    // Both keys are gone: each let go.
    let (code, out, _) = run(ep, &["get", &format!("{name}/"), "--prefix", "--keys-only"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "the keys outlived their holders"
    );
}

#[test]
fn a_lock_is_held_by_one_process_at_a_time() {
    let node = Node::start("locks", &[]);
    let ep = node.client_addr();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        exclusion(&ep, ours(), &format!("lock{round}"), dir.path());
    }
    // A failing command fails the lock command, and its lock is released.
    let (code, _, err) = run(&ep, &["lock", "failing", "--", "sh", "-c", "exit 3"]);
    assert_eq!((code, err.as_str()), (Some(1), "Error: exit status 3\n"));
    let (code, out, _) = run(&ep, &["get", "failing/", "--prefix"]);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    let (code, _, err) = run(&ep, &["lock"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(128),
            "Error: lock takes a lock name argument and an optional command to execute\n"
        )
    );
    // With Debian's etcdctl (its lock is client-side, on the same keys): each excludes the
    // other.
    if have_etcdctl() {
        exclusion(&ep, "etcdctl", "mixed", dir.path());
    }
}

#[test]
fn candidates_lead_one_at_a_time_and_an_observer_sees_each() {
    let node = Node::start("elections", &[]);
    let ep = node.client_addr();
    let observer = Running::start(ours(), &ep, &["elect", "-l", "e"]);
    let first = Running::start(ours(), &ep, &["elect", "e", "p1"]);
    let key1 = first.line(WITHIN).expect("the first leads");
    assert!(key1.starts_with("e/"), "{key1}");
    assert_eq!(first.line(WITHIN).as_deref(), Some("p1"));
    assert_eq!(observer.line(WITHIN).as_deref(), Some(key1.as_str()));
    assert_eq!(observer.line(WITHIN).as_deref(), Some("p1"));
    let second = Running::start(ours(), &ep, &["elect", "e", "p2"]);
    assert_eq!(second.line(STILL_WAITING), None, "two leaders at once");
    assert_eq!(first.terminate(), Some(0), "the leader resigns on SIGTERM");
    let key2 = second.line(WITHIN).expect("the second leads next");
    assert!(key2.starts_with("e/") && key2 != key1, "{key2}");
    assert_eq!(second.line(WITHIN).as_deref(), Some("p2"));
    let deadline = Instant::now() + WITHIN;
    loop {
        let line = observer
            .line(WITHIN)
            .expect("the observer sees the new leader");
        if line == "p2" {
            break;
        }
        assert!(Instant::now() < deadline, "the observer never saw p2");
    }
    assert_eq!(second.terminate(), Some(0));
    assert_eq!(
        observer.terminate(),
        Some(0),
        "the observer ends on SIGTERM"
    );
    for (args, message) in [
        (&["elect", "e"][..], "no proposal argument but -l not set"),
        (
            &["elect", "-l", "e", "p"][..],
            "proposal given but -l is set",
        ),
        (
            &["elect"][..],
            "elect takes one election name argument and an optional proposal argument",
        ),
    ] {
        let (code, _, err) = run(&ep, args);
        assert_eq!(
            (code, err),
            (Some(128), format!("Error: {message}\n")),
            "{args:?}"
        );
    }
}

#[test]
fn lease_keep_alive_prints_each_renewal_until_the_lease_is_revoked() {
    let node = Node::start("keepalive", &[]);
    let ep = node.client_addr();
    let (code, granted, err) = run(&ep, &["lease", "grant", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let id = granted.split_whitespace().nth(1).unwrap().to_string();
    let mut keeper = Running::start(ours(), &ep, &["lease", "keep-alive", &id]);
    let renewed = format!("lease {id} keepalived with TTL(3)");
    // A 3 s lease is renewed every second: three renewals outlive its first TTL.
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(keeper.line(WITHIN).as_deref(), Some(renewed.as_str()));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "renewed too eagerly"
    );
    let (code, ttl, _) = run(&ep, &["lease", "timetolive", &id]);
    assert_eq!(code, Some(0));
    assert!(ttl.contains("granted with TTL(3s)"), "{ttl}");
    let (code, _, err) = run(&ep, &["lease", "revoke", &id]);
    assert_eq!(code, Some(0), "{err}");
    let deadline = Instant::now() + WITHIN;
    loop {
        let line = keeper
            .line(WITHIN)
            .expect("the keeper says the lease is gone");
        if line == format!("lease {id} expired or revoked.") {
            break;
        }
        assert_eq!(line, renewed);
        assert!(Instant::now() < deadline);
    }
    assert_eq!(keeper.wait(), Some(0));
}

/// `get KEY -w json` through our etcdctl: (mod revision, value) of the key, if present.
fn kv_of(ep: &str, key: &str, rev: i64) -> Option<(i64, String)> {
    let (code, out, err) = run(ep, &["get", key, "-w", "json", &format!("--rev={rev}")]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kv = v["kvs"].as_array()?.first()?.clone();
    let (_, value, _) = run(
        ep,
        &["get", key, "--print-value-only", &format!("--rev={rev}")],
    );
    Some((
        kv["mod_revision"].as_i64().unwrap(),
        value.trim_end().to_string(),
    ))
}

#[test]
fn make_mirror_copies_a_prefix_then_each_revision_in_one_transaction() {
    let source = Node::start("mirrorsrc", &[]);
    let dest = Node::start("mirrordst", &[]);
    let (src, dst) = (source.client_addr(), dest.client_addr());
    for (k, v) in [("app/a", "1"), ("app/b", "2"), ("other", "x")] {
        assert_eq!(run(&src, &["put", k, v]).0, Some(0));
    }
    let _mirror = Running::start(
        ours(),
        &src,
        &[
            "make-mirror",
            "--prefix",
            "app/",
            "--dest-prefix",
            "copy/",
            &dst,
        ],
    );
    poll_until(WITHIN, "the base is copied", || {
        (kv_of(&dst, "copy/a", 0).is_some() && kv_of(&dst, "copy/b", 0).is_some()).then_some(())
    });
    assert_eq!(kv_of(&dst, "copy/a", 0).unwrap().1, "1");
    // One txn: a put and a delete.
    let out = etcdctl3_command(ours(), &src)
        .arg("txn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"\nput app/a new\ndel app/b\n\n\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert_eq!(run(&src, &["put", "other", "y"]).0, Some(0));
    assert_eq!(run(&src, &["put", "app/c", "3"]).0, Some(0));
    poll_until(WITHIN, "the updates are copied", || {
        kv_of(&dst, "copy/c", 0).map(|_| ())
    });
    let (at, value) = kv_of(&dst, "copy/a", 0).unwrap();
    assert_eq!(value, "new");
    // copy/b went at the same revision as copy/a changed: there before it, gone at it.
    assert!(
        kv_of(&dst, "copy/b", at - 1).is_some(),
        "copy/b before {at}"
    );
    assert!(kv_of(&dst, "copy/b", at).is_none(), "copy/b at {at}");
    // Nothing outside the prefix.
    assert!(kv_of(&dst, "other", 0).is_none());
    assert!(kv_of(&dst, "copy/other", 0).is_none());
    let (code, _, err) = run(
        &src,
        &[
            "make-mirror",
            "--dest-prefix",
            "x",
            "--no-dest-prefix",
            &dst,
        ],
    );
    assert_eq!(
        (code, err.as_str()),
        (
            Some(128),
            "Error: `--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one\n"
        )
    );
}

/// The mirror follows a source cluster whose members are killed one after another: its watch
/// resumes on the next endpoint, and every key written around the kills reaches the
/// destination with its last value, none lost.
#[test]
fn make_mirror_resumes_when_the_source_member_it_follows_is_killed() {
    let mut source = Cluster::start(3, &FAST_TIMING);
    let dest = Node::start("mirrordst2", &[]);
    let dst = dest.client_addr();
    let endpoints: Vec<String> = (0..3).map(|i| source.member(i).client_addr()).collect();
    let all = endpoints.join(",");
    assert_eq!(run(&all, &["put", "app/base", "0"]).0, Some(0));
    let mut mirror = Running::start(ours(), &all, &["make-mirror", "--prefix", "app/", &dst]);
    poll_until(WITHIN, "the base is copied", || kv_of(&dst, "app/base", 0));
    // Each member in turn is killed while keys are written through the others; whichever
    // member the mirror followed, one of these kills is its own.
    for victim in 0..3 {
        source.kill(victim);
        let live: Vec<String> = (0..3)
            .filter(|&i| i != victim)
            .map(|i| endpoints[i].clone())
            .collect();
        for n in 0..5 {
            let key = format!("app/k{victim}-{n}");
            let (code, _, err) = run(&live.join(","), &["put", &key, &format!("v{n}")]);
            assert_eq!(code, Some(0), "{err}");
        }
        let last = format!("app/k{victim}-4");
        poll_until(WITHIN, &format!("{last} is copied"), || {
            kv_of(&dst, &last, 0)
        });
        assert!(
            mirror.child.try_wait().unwrap().is_none(),
            "the mirror stopped when member {victim} was killed"
        );
        source.restart(victim);
    }
    for victim in 0..3 {
        for n in 0..5 {
            let key = format!("app/k{victim}-{n}");
            let got = kv_of(&dst, &key, 0).map(|(_, v)| v);
            assert_eq!(got.as_deref(), Some(format!("v{n}").as_str()), "{key}");
        }
    }
    assert_eq!(mirror.terminate(), None, "ended by SIGTERM");
}

/// Debian's etcdctl and ours exit alike and say the same on standard error for `args`.
#[track_caller]
fn refused_as_etcdctl_refuses(ep: &str, args: &[&str]) {
    let theirs = etcdctl3_command("etcdctl", ep).args(args).output().unwrap();
    let ours = run(ep, args);
    assert_eq!(
        (
            theirs.status.code(),
            String::from_utf8_lossy(&theirs.stderr).into_owned()
        ),
        (ours.0, ours.2),
        "{args:?}"
    );
}

/// `check datascale`'s output with what varies from run to run taken out: its first line,
/// the bar's first and last drawings and what follows them, digits masked in the last two
/// (the bar is drawn every 200 ms; a pipe gets no bar, only the counters).
fn datascale_shape(stdout: &str) -> Vec<String> {
    let mask = |s: &str| -> String {
        let mut out = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let draws: Vec<&str> = stdout.split('\r').collect();
    assert!(draws.len() >= 3, "{stdout:?}");
    vec![
        draws[0].to_string(),
        draws[1].to_string(),
        // The member may have given memory back: a difference of either sign.
        mask(draws[draws.len() - 1]).replace(": -#", ": #"),
    ]
}

/// `check datascale` writes its 10,000 keys, prints etcdctl's lines (the bar as etcdctl draws
/// it into a pipe, the memory the member grew by), deletes its keys, compacts after them and
/// defragments;
/// it refuses a used prefix and an unknown load. Where Debian's etcdctl is installed, its
/// output has the same shape and its refusals the same bytes.
#[test]
fn check_datascale_writes_measures_and_cleans_up() {
    let node = Node::start("checkdatascale", &[]);
    let ep = node.client_addr();
    let flags = ["check", "datascale", "--auto-compact", "--auto-defrag"];
    let (code, out, err) = run(&ep, &flags);
    assert_eq!(code, Some(0), "{err}");
    let shape = datascale_shape(&out);
    assert_eq!(
        shape[..2],
        [
            "Start data scale check for work load [10000 key-value pairs, 1024 bytes per \
             key-value, 50 concurrent clients].\n"
                .to_string(),
            " 0 / 10000    0.00%".to_string()
        ]
    );
    assert!(
        shape[2].starts_with(
            " # / #  #.#% #s\nCompacting with revision #\nCompacted with revision #\n\
             Defragmenting \"#.#.#.#:#\"\nDefragmented \"#.#.#.#:#\"\n\
             PASS: Approximate system memory used : "
        ) && shape[2].ends_with("#.# MB.\n"),
        "{:?}",
        shape[2]
    );
    assert!(out.contains("\r 10000 / 10000  100.00% "), "{out:?}");
    let (_, count, _) = run(
        &ep,
        &[
            "get",
            "/etcdctl-check-datascale/",
            "--prefix",
            "--count-only",
            "-w",
            "fields",
        ],
    );
    assert!(count.contains("\"Count\" : 0\n"), "{count}");
    // Compacted at the deletion: the history before it is gone.
    let (code, _, err) = run(&ep, &["get", "x", "--rev=2"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("required revision has been compacted"),
        "{err}"
    );
    assert_eq!(
        run(&ep, &["put", "/etcdctl-check-datascale/x", "1"]).0,
        Some(0)
    );
    let refusals: [&[&str]; 2] = [
        &["check", "datascale"],
        &["check", "datascale", "--load", "huge"],
    ];
    let expected = [
        (
            Some(3),
            "Error: prefix \"/etcdctl-check-datascale/\" has keys. Delete with etcdctl del \
             --prefix /etcdctl-check-datascale/ first\n",
        ),
        (Some(4), "Error: unknown load option huge\n"),
    ];
    for (args, expected) in refusals.iter().zip(expected) {
        let (code, _, err) = run(&ep, args);
        assert_eq!((code, err.as_str()), expected, "{args:?}");
    }
    if !have_etcdctl() {
        return;
    }
    for args in refusals {
        refused_as_etcdctl_refuses(&ep, args);
    }
    assert_eq!(run(&ep, &["del", "/etcdctl-check-datascale/x"]).0, Some(0));
    let theirs = etcdctl3_command("etcdctl", &ep)
        .args(flags)
        .output()
        .unwrap();
    assert_eq!(theirs.status.code(), Some(0));
    assert_eq!(
        datascale_shape(&String::from_utf8_lossy(&theirs.stdout)),
        shape
    );
}

/// `check perf` refuses to run over keys of its prefix, and an unknown load, as etcdctl does
/// (the run itself takes etcdctl's fixed minute: its verdict is unit-tested in
/// `crates/ctl/src/v3/check.rs`).
#[test]
fn check_perf_refuses_a_used_prefix_and_an_unknown_load() {
    let node = Node::start("checkperf", &[]);
    let ep = node.client_addr();
    assert_eq!(run(&ep, &["put", "/etcdctl-check-perf/x", "1"]).0, Some(0));
    let (code, _, err) = run(&ep, &["check", "perf"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(3),
            "Error: prefix \"/etcdctl-check-perf/\" has keys. Delete with etcdctl del --prefix \
             /etcdctl-check-perf/ first\n"
        )
    );
    let (code, _, err) = run(&ep, &["check", "perf", "--load", "huge"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(4), "Error: unknown load option huge\n")
    );
    if have_etcdctl() {
        for args in [
            &["check", "perf"][..],
            &["check", "perf", "--load", "huge"][..],
        ] {
            refused_as_etcdctl_refuses(&ep, args);
        }
    }
}

/// `auth status` (etcdctl 3.5's: 3.4 has no such command) in 3.5's printers' forms.
#[test]
fn auth_status_as_etcdctl_3_5_prints_it() {
    let node = Node::start("authstatus", &["--bcrypt-cost", "4"]);
    let ep = node.client_addr();
    let (code, out, err) = run(&ep, &["auth", "status"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Authentication Status: false\nAuthRevision: 1\n"),
        "{err}"
    );
    for args in [
        &["user", "add", "root:pw"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        assert_eq!(run(&ep, args).0, Some(0), "{args:?}");
    }
    let (code, out, err) = run(
        &ep,
        &["--user", "root:pw", "auth", "status", "-w", "fields"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.ends_with("\"Enabled\" : true\n\"AuthRevision\" : 3\n"),
        "{out}"
    );
    let (code, out, _) = run(&ep, &["--user", "root:pw", "auth", "status", "-w", "json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["enabled"].as_bool(), v["authRevision"].as_u64()),
        (Some(true), Some(3))
    );
    let (code, _, err) = run(&ep, &["auth", "status", "x"]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(128),
            "Error: auth status command does not accept any arguments\n"
        )
    );
}
