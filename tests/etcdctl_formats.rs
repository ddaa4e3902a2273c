//! Every output format of our etcdctl against Debian's etcdctl 3.4 as the oracle: the same
//! command through both, against the same etcd-rs node, must print the same bytes and exit
//! with the same code.
//!
//! - Read-only answers (get, member list, endpoint status/hashkv/health, alarm list, users,
//!   roles, leases, snapshot status) in `simple`, `json`, `fields`, `table` and `protobuf`,
//!   unsupported combinations included (`… not supported as output format`, exit 4).
//! - Writes that change nothing (alarm disarm, defrag, member update to the same
//!   URL) and a watch replaying history with `--prev-kv`, in every format.
//! - Writes (put and del with `--prev-kv`, txn, lease grant and keep-alive --once, user add):
//!   each etcdctl's run is set up the same way, and the answers compared with what must
//!   differ between two writes masked (revisions, lease ids); protobuf answers are decoded
//!   and compared with the revisions cleared.
//!
//! Not compared: `alarm list|disarm -w fields` (etcdctl 3.4 dereferences the missing header
//! of an alarm answer and crashes) and the order of `endpoint health` lines (by completion).
//!
//! The tests need etcdctl 3.x on the PATH. Without it they say so and pass, unless
//! `ETCD_REQUIRE_ETCDCTL` is set (`.ci/run` installs the package and sets it).

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use etcd_v3proto::etcdserverpb::{
    AuthUserAddResponse, DeleteRangeResponse, PutResponse, ResponseHeader, TxnResponse,
};
use prost::Message as _;
use support::*;

const FORMATS: [&str; 5] = ["simple", "json", "fields", "table", "protobuf"];

/// One etcdctl run: exit code, stdout bytes, stderr without Go's client retry logs.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn run(program: &str, ep: &str, args: &[&str], input: &str) -> Run {
    let mut child = Command::new(program)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("etcdctl ends");
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr,
    }
}

fn ours(ep: &str, args: &[&str], input: &str) -> Run {
    run(env!("CARGO_BIN_EXE_etcdctl"), ep, args, input)
}

fn theirs(ep: &str, args: &[&str], input: &str) -> Run {
    run("etcdctl", ep, args, input)
}

#[track_caller]
fn ok(ep: &str, args: &[&str]) -> String {
    let r = ours(ep, args, "");
    assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
    String::from_utf8(r.stdout).unwrap()
}

/// `text` with the digits after each of `labels` replaced by `N`.
fn mask(text: &str, labels: &[&str]) -> String {
    let mut out = text.to_string();
    for label in labels {
        let mut masked = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(label) {
            let after = at + label.len();
            masked.push_str(&rest[..after]);
            let digits = rest[after..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(rest.len() - after);
            if digits > 0 {
                masked.push('N');
            }
            rest = &rest[after + digits..];
        }
        masked.push_str(rest);
        out = masked;
    }
    out
}

/// What differs between two equal writes: revisions and lease ids.
const WRITE_LABELS: &[&str] = &[
    "\"revision\":",
    "\"Revision\" : ",
    "\"mod_revision\":",
    "\"create_revision\":",
    "ModRevision\" : ",
    "CreateRevision\" : ",
    "\"ID\":",
    "\"ID\" : ",
    "lease ",
];

#[test]
fn read_only_answers_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formats", &["--bcrypt-cost", "4"]);
    let ep = node.client_addr();
    for (k, v) in [("k1", "v1"), ("k2", "two words"), ("k3", "\u{e9}\t\"q\"")] {
        ok(&ep, &["put", k, v]);
    }
    let lease = ok(&ep, &["lease", "grant", "600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    ok(&ep, &["put", "leased", "x", "--lease", &id]);
    ok(&ep, &["user", "add", "u1:pw"]);
    ok(&ep, &["role", "add", "r1"]);
    ok(
        &ep,
        &[
            "role",
            "grant-permission",
            "r1",
            "readwrite",
            "k",
            "--prefix",
        ],
    );
    ok(&ep, &["role", "grant-permission", "r1", "read", "a", "b"]);
    ok(&ep, &["user", "grant-role", "u1", "r1"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let f = file.to_str().unwrap();
    ok(&ep, &["snapshot", "save", f]);

    let members = ok(&ep, &["member", "list", "-w", "json"]);
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    let member_id = format!("{:x}", members["members"][0]["ID"].as_u64().unwrap());
    let peer = node.peer_url();
    let update = format!("--peer-urls={peer}");
    let commands: Vec<Vec<&str>> = vec![
        vec!["get", "k1"],
        vec!["get", "k", "--prefix"],
        vec!["get", "k", "--prefix", "--keys-only"],
        vec!["get", "k", "--prefix", "--hex"],
        // (`--count-only` is etcdctl 3.5's: 3.4 refuses it as an unknown flag.)
        vec!["get", "missing"],
        vec!["member", "list"],
        vec!["endpoint", "status"],
        vec!["endpoint", "hashkv"],
        vec!["endpoint", "status", "--cluster"],
        vec!["alarm", "list"],
        vec!["user", "list"],
        vec!["user", "get", "u1"],
        vec!["user", "get", "u1", "--detail"],
        vec!["role", "list"],
        vec!["role", "get", "r1"],
        vec!["lease", "list"],
        vec!["lease", "timetolive", &id],
        vec!["lease", "timetolive", &id, "--keys"],
        vec!["snapshot", "status", f],
        // Writes that change nothing here, and what prints without a printer. (`auth status`
        // is 3.5's: 3.4 prints its help; see tests/etcdctl_sessions.rs.)
        vec!["alarm", "disarm"],
        vec!["defrag"],
        vec!["member", "update", &member_id, &update],
    ];
    let mut compared = 0;
    for cmd in &commands {
        for format in FORMATS {
            if cmd[0] == "alarm" && format == "fields" {
                continue; // etcdctl 3.4 crashes on the header-less answer
            }
            let mut args = cmd.clone();
            args.extend_from_slice(&["-w", format]);
            let (a, b) = (theirs(&ep, &args, ""), ours(&ep, &args, ""));
            let shown = |r: &Run| {
                format!(
                    "exit {:?}\n{}{}",
                    r.code,
                    String::from_utf8_lossy(&r.stdout),
                    r.stderr
                )
            };
            if cmd[0] == "lease" && cmd[1] == "timetolive" {
                // The remaining TTL moves between the two runs.
                let m = |r: &Run| mask(&shown(r), &["remaining(", "\"ttl\":", "\"TTL\" : "]);
                if format != "protobuf" {
                    assert_eq!(m(&b), m(&a), "etcdctl {args:?}");
                    compared += 1;
                    continue;
                }
            }
            assert_eq!(shown(&b), shown(&a), "etcdctl {args:?}");
            compared += 1;
        }
    }
    // Health: the time it took differs, and the lines come in completion order.
    for format in FORMATS {
        let args = ["endpoint", "health", "-w", format];
        let (a, b) = (theirs(&ep, &args, ""), ours(&ep, &args, ""));
        assert_eq!(b.code, a.code, "{args:?}");
        assert_eq!(health_shape(&b), health_shape(&a), "{args:?}");
        compared += 1;
    }
    // (Less the two alarm commands' fields form.)
    assert_eq!(compared, commands.len() * FORMATS.len() - 2 + FORMATS.len());
}

/// An `endpoint health` answer without how long each check took (in a table, the rows and
/// borders, whose width follows it, are reduced to their count, and the header to its words).
fn health_shape(r: &Run) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&r.stdout), r.stderr);
    text.lines()
        .map(|l| {
            if let Some((head, _)) = l.split_once("took = ") {
                format!("{head}took = T")
            } else if let Some((head, rest)) = l.split_once("\"took\":\"") {
                let tail = rest.split_once('"').map_or("", |(_, t)| t);
                format!("{head}\"took\":\"T\"{tail}")
            } else if l.starts_with("\"Took\" : ") {
                "\"Took\" : T".to_string()
            } else if l.starts_with('+') {
                "+border".to_string()
            } else if l.starts_with("| ") && !l.contains("ENDPOINT") {
                "|row".to_string()
            } else if l.starts_with("| ") {
                // The header's padding follows the widest time too.
                l.split_whitespace().collect::<Vec<_>>().join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a long-running etcdctl printed once its output stopped growing (bounded), after which
/// it is stopped.
fn settled(program: &str, ep: &str, args: &[&str]) -> Run {
    let mut child = Command::new(program)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", ep])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    let collect = |mut r: Box<dyn std::io::Read + Send>| {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        buf
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (mut seen, mut since) = (0, std::time::Instant::now());
    let mut code = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(Some(status)) = child.try_wait() {
            code = status.code();
            std::thread::sleep(Duration::from_millis(100));
            break;
        }
        let len = out.lock().unwrap().len() + err.lock().unwrap().len();
        if len != seen {
            (seen, since) = (len, std::time::Instant::now());
        } else if len > 0 && since.elapsed() > Duration::from_millis(700) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?} printed nothing"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = String::from_utf8_lossy(&err.lock().unwrap())
        .lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let stdout = out.lock().unwrap().clone();
    Run {
        code,
        stdout,
        stderr,
    }
}

#[test]
fn watched_history_prints_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatwatch", &[]);
    let ep = node.client_addr();
    for (k, v) in [("w/a", "1"), ("w/b", "2"), ("w/a", "3")] {
        ok(&ep, &["put", k, v]);
    }
    ok(&ep, &["del", "w/b"]);
    for format in FORMATS {
        let args = [
            "watch",
            "w/",
            "--prefix",
            "--rev",
            "1",
            "--prev-kv",
            "-w",
            format,
        ];
        let (a, b) = (
            settled("etcdctl", &ep, &args),
            settled(env!("CARGO_BIN_EXE_etcdctl"), &ep, &args),
        );
        assert_eq!(b, a, "etcdctl {args:?}");
    }
}

#[test]
fn write_answers_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatw", &["--bcrypt-cost", "4"]);
    let ep = node.client_addr();
    let txn = "value(\"zz\") = \"base\"\n\nput zz a\nget zz\ndel other\n\nput zz b\n\n";
    // (command, standard input, how a protobuf answer is compared)
    type Decode = fn(&[u8]) -> String;
    fn put(b: &[u8]) -> String {
        let mut r = PutResponse::decode(b).expect("a PutResponse");
        clear(&mut r.header);
        if let Some(kv) = r.prev_kv.as_mut() {
            (kv.create_revision, kv.mod_revision) = (0, 0);
        }
        format!("{r:?}")
    }
    fn del(b: &[u8]) -> String {
        let mut r = DeleteRangeResponse::decode(b).expect("a DeleteRangeResponse");
        clear(&mut r.header);
        for kv in &mut r.prev_kvs {
            (kv.create_revision, kv.mod_revision) = (0, 0);
        }
        format!("{r:?}")
    }
    fn txn_answer(b: &[u8]) -> String {
        let r = TxnResponse::decode(b).expect("a TxnResponse");
        // Every revision inside moves together: show the shape and the values.
        format!("succeeded {} ops {}", r.succeeded, r.responses.len())
    }
    fn header(b: &[u8]) -> String {
        let mut h = Some(ResponseHeader::decode(b).expect("a ResponseHeader"));
        clear(&mut h);
        format!("{h:?}")
    }
    fn user_added(b: &[u8]) -> String {
        let mut r = AuthUserAddResponse::decode(b).expect("an AuthUserAddResponse");
        clear(&mut r.header);
        format!("{r:?}")
    }
    fn clear(h: &mut Option<ResponseHeader>) {
        if let Some(h) = h.as_mut() {
            h.revision = 0;
        }
    }
    // Each run starts from a fresh `zz` (version 1) and no user w1.
    let fresh: &[&[&str]] = &[
        &["del", "zz"],
        &["put", "zz", "base"],
        &["user", "delete", "w1"],
    ];
    let cases: Vec<(Vec<&str>, &str, Decode)> = vec![
        (vec!["put", "zz", "new", "--prev-kv"], "", put),
        (vec!["del", "zz", "--prev-kv"], "", del),
        (vec!["txn"], txn, txn_answer),
        (vec!["lease", "grant", "100"], "", header),
        (vec!["user", "add", "w1:pw"], "", user_added),
    ];
    for (cmd, input, decode) in &cases {
        for format in FORMATS {
            let mut args = cmd.clone();
            args.extend_from_slice(&["-w", format]);
            let mut answers = Vec::new();
            for runner in [theirs, ours] {
                for setup in fresh {
                    let _ = ours(&ep, setup, "");
                }
                answers.push(runner(&ep, &args, input));
            }
            let (a, b) = (&answers[0], &answers[1]);
            assert_eq!(b.code, a.code, "etcdctl {args:?}: {b:?} / {a:?}");
            assert_eq!(b.stderr, a.stderr, "etcdctl {args:?}");
            if format == "protobuf" && a.code == Some(0) {
                assert_eq!(decode(&b.stdout), decode(&a.stdout), "etcdctl {args:?}");
            } else {
                let m = |r: &Run| mask(&String::from_utf8_lossy(&r.stdout), WRITE_LABELS);
                assert_eq!(m(b), m(a), "etcdctl {args:?}");
            }
        }
    }
    // keep-alive --once of a lease of each's own.
    for format in FORMATS {
        let mut answers = Vec::new();
        for runner in [theirs, ours] {
            let granted = ok(&ep, &["lease", "grant", "100"]);
            let id = granted.split_whitespace().nth(1).unwrap().to_string();
            answers.push(runner(
                &ep,
                &["lease", "keep-alive", "--once", &id, "-w", format],
                "",
            ));
        }
        let (a, b) = (&answers[0], &answers[1]);
        assert_eq!(b.code, a.code, "keep-alive -w {format}: {b:?} / {a:?}");
        if format == "protobuf" {
            assert_eq!(header(&b.stdout), header(&a.stdout));
        } else {
            let m = |r: &Run| mask(&String::from_utf8_lossy(&r.stdout), WRITE_LABELS);
            assert_eq!(m(b), m(a), "keep-alive -w {format}");
        }
    }
}

#[test]
fn masking_replaces_only_the_numbers_after_a_label() {
    assert_eq!(
        mask(
            "{\"revision\":12,\"raft_term\":2} lease 694d7f1b2c3d4e5f x",
            WRITE_LABELS
        ),
        "{\"revision\":N,\"raft_term\":2} lease N x"
    );
}

/// Passwords asked as etcdctl asks them (speakeasy: the prompt on standard output, `stty`
/// around the read, a newline after): `user add` and `user passwd` ask twice and refuse an
/// empty or a differing answer; `--user NAME` asks once.
#[test]
fn passwords_are_asked_as_etcdctl_asks_them() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("prompts", &["--bcrypt-cost", "4"]);
    let ep = node.client_addr();
    let cases: [(&[&str], &[&str], &str); 5] = [
        (
            &["user", "delete", "pat"],
            &["user", "add", "pat"],
            "pw\npw\n",
        ),
        (
            &["user", "delete", "pat"],
            &["user", "add", "pat"],
            "pw\nother\n",
        ),
        (&["user", "delete", "pat"], &["user", "add", "pat"], "\n"),
        (
            &["user", "add", "pat:x"],
            &["user", "passwd", "pat"],
            "pw2\npw2\n",
        ),
        (
            &["user", "delete", "pat"],
            &["user", "passwd", "pat"],
            "a\nb\n",
        ),
    ];
    for (setup, cmd, input) in cases {
        let mut answers = Vec::new();
        for runner in [theirs, ours] {
            let _ = ours(&ep, setup, "");
            answers.push(runner(&ep, cmd, input));
        }
        assert_eq!(answers[1], answers[0], "{cmd:?} with {input:?}");
    }
    for setup in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
        &["--user", "root:rootpw", "put", "secret", "s"],
    ] {
        assert_eq!(ours(&ep, setup, "").code, Some(0), "{setup:?}");
    }
    for input in ["rootpw\n", "wrong\n"] {
        let args = ["--user", "root", "get", "secret"];
        let (a, b) = (theirs(&ep, &args, input), ours(&ep, &args, input));
        assert_eq!(b, a, "--user root with {input:?}");
    }
}
