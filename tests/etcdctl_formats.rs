//! Every output format of our etcdctl against Debian's etcdctl 3.4 as the oracle: the same
//! command through both, against the same etcd-rs node, must print the same bytes and exit
//! with the same code.
//!
//! - Read-only answers (get, member list, endpoint status/hashkv/health, alarm list, users,
//!   roles, leases, snapshot status) in `simple`, `json`, `fields`, `table` and `protobuf`,
//!   unsupported combinations included (`… not supported as output format`, exit 4).
//! - Writes that change nothing (alarm disarm, defrag, member update to the same
//!   URL) and a watch replaying history with `--prev-kv`, in every format.
//! - Watches running a command per event (`watch … -- COMMAND`, with `ETCD_WATCH_*` set), the
//!   key and range end from `ETCDCTL_WATCH_KEY`/`ETCDCTL_WATCH_RANGE_END`, a failing command,
//!   the watch arguments etcdctl refuses, and a watch from a compacted revision, in every
//!   format, both etcdctls at once (`watch -i`, `lock` and `elect` are in
//!   tests/etcdctl_formats_sessions.rs).
//! - `member add --learner` (of a member that never starts), `member promote` of it (refused:
//!   not in sync) and `member remove`, each etcdctl on a learner of its own, in every format,
//!   with the learner's id masked and the members (listed by id) sorted; protobuf answers
//!   decoded. Member arguments etcdctl refuses, and the server's refusals, compared as they
//!   are.
//! - `snapshot save` (its line on standard output) in every format.
//! - `move-leader` on a three-member cluster, each etcdctl moving the leadership on in
//!   turn, with the ids, term and revision masked.
//! - Writes (put and del with `--prev-kv`, txn (and `txn -i`), compaction, lease grant,
//!   revoke and keep-alive --once, user add, passwd, delete, grant-role and revoke-role, role add,
//!   delete, grant-permission and revoke-permission, auth enable and disable): each
//!   etcdctl's run is set up the same way, and the answers compared with what must
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
use std::process::Stdio;
use std::time::Duration;

use etcd_v3proto::etcdserverpb::{
    AuthRoleAddResponse, AuthUserAddResponse, DeleteRangeResponse, Member, MemberAddResponse,
    MemberRemoveResponse, MoveLeaderResponse, PutResponse, ResponseHeader, TxnResponse,
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
    let mut child = etcdctl3_command(program, ep)
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
    settled_with(program, ep, args, &[])
}

/// [`settled`], with these variables in etcdctl's environment.
fn settled_with(program: &str, ep: &str, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let child = etcdctl3_command(program, ep)
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcdctl");
    let mut child = Reaped(child);
    let out = Collected::of(child.0.stdout.take().unwrap());
    let err = Collected::of(child.0.stderr.take().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (mut seen, mut since) = (0, std::time::Instant::now());
    let mut code = None;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(Some(status)) = child.0.try_wait() {
            code = status.code();
            break;
        }
        let len = out.len() + err.len();
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
    drop(child);
    let stderr = String::from_utf8_lossy(&err.all())
        .lines()
        .filter(|l| !l.starts_with("{\"level\":\"warn\""))
        .map(|l| format!("{l}\n"))
        .collect();
    Run {
        code,
        stdout: out.all(),
        stderr,
    }
}

/// A child process, killed and reaped when dropped (a failed assertion included).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a pipe gave, read on a thread of its own until it closes.
struct Collected {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Collected {
    fn of(mut pipe: impl std::io::Read + Send + 'static) -> Collected {
        let bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b = bytes.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Collected { bytes, reader }
    }

    fn len(&self) -> usize {
        self.bytes.lock().unwrap().len()
    }

    /// Everything, once the pipe closed (its writer is gone), or within a bound.
    fn all(self) -> Vec<u8> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.reader.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let bytes = self.bytes.lock().unwrap().clone();
        bytes
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

/// Both etcdctls' [`settled_with`] runs of `args` at once, each settling on its own:
/// (Debian's, ours).
fn settled_pair(ep: &str, args: &[&str], envs: &[(&str, &str)]) -> (Run, Run) {
    std::thread::scope(|s| {
        let theirs = s.spawn(|| settled_with("etcdctl", ep, args, envs));
        let ours = settled_with(env!("CARGO_BIN_EXE_etcdctl"), ep, args, envs);
        (theirs.join().expect("Debian's etcdctl ran"), ours)
    })
}

#[test]
fn watches_running_a_command_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatexec", &[]);
    let ep = node.client_addr();
    for (k, v) in [("w/a", "1"), ("w/b", "two\nlines"), ("w/a", "\"3\" \u{e9}")] {
        ok(&ep, &["put", k, v]);
    }
    ok(&ep, &["del", "w/b"]);
    let printenv: &[&str] = &[
        "--",
        "printenv",
        "ETCD_WATCH_REVISION",
        "ETCD_WATCH_EVENT_TYPE",
        "ETCD_WATCH_KEY",
        "ETCD_WATCH_VALUE",
    ];
    let failing: &[&str] = &["--", "sh", "-c", "echo \"$ETCD_WATCH_KEY\"; exit 3"];
    let range: &[(&str, &str)] = &[
        ("ETCDCTL_WATCH_KEY", "w/a"),
        ("ETCDCTL_WATCH_RANGE_END", "w/c"),
    ];
    let all: &[&str] = &["w/", "--prefix", "--rev", "1"];
    for format in FORMATS {
        // (etcdctl's arguments after `watch -w FORMAT`, its environment)
        type Env<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Vec<&str>, Env); 9] = [
            // Each event runs the command, its output after the response's.
            ([all, &["--prev-kv"], printenv].concat(), &[]),
            // The key and range end from the environment.
            (vec!["--rev", "1", "--", "echo", "ran"], range),
            // A third word on is ignored: a watch of w/a alone.
            (vec!["w/a", "w/b", "w/c", "--rev", "1"], &[]),
            // A failing command ends the watch (exit 1).
            ([all, failing].concat(), &[]),
            // What etcdctl refuses (exit 128).
            (vec!["w/", "--"], &[]),
            (vec![], &[]),
            (vec!["w/a", "w/c", "--prefix"], &[]),
            (vec!["w/a", "--rev", "1"], &range[..1]),
            (vec!["--rev", "1"], &range[1..]),
        ];
        for (args, envs) in &cases {
            let args = [&["watch", "-w", format], args.as_slice()].concat();
            let (a, b) = settled_pair(&ep, &args, envs);
            assert_eq!(b, a, "etcdctl {args:?} with {envs:?}");
            assert!(!a.stdout.is_empty() || !a.stderr.is_empty(), "{args:?}");
        }
    }
    // From a compacted revision: the server cancels the watch, and etcdctl says so (exit 5).
    let got = ok(&ep, &["get", "w/a", "-w", "json"]);
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    let revision = got["header"]["revision"].as_i64().unwrap().to_string();
    ok(&ep, &["compaction", &revision]);
    for format in FORMATS {
        let args = ["watch", "w/", "--prefix", "--rev", "1", "-w", format];
        let (a, b) = settled_pair(&ep, &args, &[]);
        assert_eq!(b, a, "etcdctl {args:?} after a compaction");
        assert!(a.code.is_some(), "{args:?} went on: {a:?}");
    }
}

/// The id of the one learner of the node at `ep`, if there is one.
fn learner_id(ep: &str) -> Option<u64> {
    let list = ok(ep, &["member", "list", "-w", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let members = list["members"].as_array()?;
    let learner = members.iter().find(|m| m["isLearner"] == true)?;
    learner["ID"].as_u64()
}

/// `text` with the entries of the JSON array that follows `label` (up to its closing `]`)
/// sorted.
fn sort_json_array(text: &str, label: &str) -> String {
    let Some(at) = text.find(label) else {
        return text.to_string();
    };
    let start = at + label.len();
    let (mut depth, mut from, mut items, mut end) = (0, start, Vec::new(), text.len());
    for (i, c) in text[start..].char_indices().map(|(i, c)| (start + i, c)) {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' if depth > 0 => depth -= 1,
            ']' => {
                items.push(&text[from..i]);
                end = i;
                break;
            }
            ',' if depth == 0 => {
                items.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.sort_unstable();
    format!("{}{}{}", &text[..start], items.join(","), &text[end..])
}

/// A member change's answer (exit code, output, errors) with what differs between two runs
/// made alike: the new member's id shown as `ID`, and the members, which etcd lists by id,
/// sorted (in JSON and in `ETCD_INITIAL_CLUSTER`).
fn member_text(r: &Run, id: u64) -> String {
    let text = format!(
        "exit {:?}\n{}{}",
        r.code,
        String::from_utf8_lossy(&r.stdout),
        r.stderr
    );
    let text = text
        .replace(&format!("Member {id:16x} "), "Member ID ")
        .replace(&format!("\"ID\":{id},"), "\"ID\":ID,")
        .replace(&format!("\"ID\":{id}}}"), "\"ID\":ID}");
    let text = sort_json_array(&text, "\"members\":[");
    text.lines()
        .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
            Some(rest) => {
                let mut entries: Vec<&str> = rest.trim_end_matches('"').split(',').collect();
                entries.sort_unstable();
                format!("ETCD_INITIAL_CLUSTER=\"{}\"\n", entries.join(","))
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// A member change's protobuf answer, decoded, with the new member's id cleared and the
/// members sorted.
fn member_answer(bytes: &[u8], id: u64, removed: bool) -> String {
    let alike = |members: &mut Vec<Member>| {
        for m in members.iter_mut().filter(|m| m.id == id) {
            m.id = 0;
        }
        members.sort_by(|a, b| a.peer_ur_ls.cmp(&b.peer_ur_ls));
    };
    if removed {
        let mut r = MemberRemoveResponse::decode(bytes).expect("a MemberRemoveResponse");
        alike(&mut r.members);
        return format!("{r:?}");
    }
    let mut r = MemberAddResponse::decode(bytes).expect("a MemberAddResponse");
    if let Some(m) = r.member.as_mut().filter(|m| m.id == id) {
        m.id = 0;
    }
    alike(&mut r.members);
    format!("{r:?}")
}

/// `move-leader` through both etcdctls in turn on a three-member cluster, each moving the
/// leadership on to another member, in every format: the ids, the term and the revision,
/// which move with each transfer, masked (protobuf decoded, those fields cleared).
#[test]
fn move_leader_prints_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(3, &FAST_TIMING);
    let all: Vec<String> = (0..3).map(|i| c.member(i).client_addr()).collect();
    let all = all.join(",");
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&all, &["member", "list", "-w", "json"])).unwrap();
    let id_of = |name: &str| -> String {
        let members = listed["members"].as_array().unwrap();
        let m = members.iter().find(|m| m["name"] == name).unwrap();
        format!("{:x}", m["ID"].as_u64().unwrap())
    };
    let ids: Vec<String> = (0..3).map(|i| id_of(&c.member(i).name)).collect();
    let labels = [
        "\"member_id\":",
        "\"raft_term\":",
        "\"revision\":",
        "from ",
        "to ",
    ];
    fn cleared(b: &[u8]) -> String {
        let mut r = MoveLeaderResponse::decode(b).expect("a MoveLeaderResponse");
        if let Some(h) = r.header.as_mut() {
            (h.member_id, h.raft_term, h.revision) = (0, 0, 0);
        }
        format!("{r:?}")
    }
    for format in FORMATS {
        let mut runs = Vec::new();
        for runner in [theirs, ours] {
            let leader = c.leader();
            let target = ids[(leader + 1) % 3].clone();
            let run = runner(&all, &["move-leader", &target, "-w", format], "");
            if run.code == Some(0) {
                poll_until(Duration::from_secs(15), "the new leader leads", || {
                    (ids[c.leader()] == target).then_some(())
                });
            }
            runs.push(run);
        }
        let (a, b) = (&runs[0], &runs[1]);
        assert_eq!(
            (b.code, &b.stderr),
            (a.code, &a.stderr),
            "move-leader -w {format}"
        );
        if format == "protobuf" {
            assert_eq!(
                cleared(&b.stdout),
                cleared(&a.stdout),
                "move-leader -w {format}"
            );
        } else {
            let m = |r: &Run| mask(&String::from_utf8_lossy(&r.stdout), &labels);
            assert_eq!(m(b), m(a), "move-leader -w {format}");
        }
    }
}

#[test]
fn member_changes_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatmember", &[]);
    let ep = node.client_addr();
    // A learner on a peer URL nothing serves: it never starts, so the node keeps its quorum,
    // and etcd refuses to promote it (not in sync with the leader).
    let peer = format!("--peer-urls=http://127.0.0.1:{}", free_port());
    let add: &[&str] = &["member", "add", "newbie", "--learner", &peer];
    for format in FORMATS {
        let w = ["-w", format];
        let mut runs = Vec::new();
        for runner in [theirs, ours] {
            let added = runner(&ep, &[add, &w].concat(), "");
            let id = learner_id(&ep).unwrap_or_else(|| panic!("no learner after {added:?}"));
            let hex = format!("{id:x}");
            let promoted = runner(&ep, &["member", "promote", &hex, "-w", format], "");
            let removed = runner(&ep, &["member", "remove", &hex, "-w", format], "");
            assert_eq!(learner_id(&ep), None, "the learner outlived {removed:?}");
            runs.push((id, [added, promoted, removed]));
        }
        let ((a_id, a), (b_id, b)) = (&runs[0], &runs[1]);
        for (step, (a, b)) in ["add", "promote", "remove"].iter().zip(a.iter().zip(b)) {
            let what = format!("member {step} -w {format}");
            assert_eq!(b.code, a.code, "{what}: {b:?} / {a:?}");
            if format == "protobuf" && a.code == Some(0) {
                let removed = *step == "remove";
                assert_eq!(
                    member_answer(&b.stdout, *b_id, removed),
                    member_answer(&a.stdout, *a_id, removed),
                    "{what}"
                );
                assert_eq!(b.stderr, a.stderr, "{what}");
            } else {
                assert_eq!(member_text(b, *b_id), member_text(a, *a_id), "{what}");
            }
        }
        assert_eq!(
            a[1].code,
            Some(1),
            "etcd promoted a learner not in sync: {:?}",
            a[1]
        );
    }
    // What is refused before or by the server, alike in every format.
    let members = ok(&ep, &["member", "list", "-w", "json"]);
    let members: serde_json::Value = serde_json::from_str(&members).unwrap();
    let own = format!("{:x}", members["members"][0]["ID"].as_u64().unwrap());
    let refused: [&[&str]; 10] = [
        &["member", "add"],
        &["member", "add", "x"],
        &["member", "add", "x", "y", "http://127.0.0.1:1"],
        &["member", "add", "x", "--peer-urls=ftp://127.0.0.1:1"],
        &["member", "remove"],
        &["member", "remove", "+10"],
        &["member", "remove", "1ffffffffffffffff"],
        &["member", "remove", "1234"],
        &["member", "promote", "1234"],
        &["member", "promote", &own],
    ];
    for cmd in refused {
        for format in FORMATS {
            let args = [cmd, &["-w", format]].concat();
            let (a, b) = (theirs(&ep, &args, ""), ours(&ep, &args, ""));
            assert_eq!(b, a, "etcdctl {args:?}");
        }
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
    /// `txn -i`'s answer: its three headings, then the answer.
    fn prompted_txn(b: &[u8]) -> String {
        let mut at = 0;
        for _ in 0..3 {
            at += b[at..].iter().position(|&c| c == b'\n').expect("a heading") + 1;
        }
        format!(
            "{}{}",
            String::from_utf8_lossy(&b[..at]),
            txn_answer(&b[at..])
        )
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
    /// An answer that is only a header (most auth answers, compaction's).
    fn header_only(b: &[u8]) -> String {
        let mut r = AuthRoleAddResponse::decode(b).unwrap_or_else(|e| {
            panic!(
                "a header-only answer: {e} in {:?}",
                String::from_utf8_lossy(b)
            )
        });
        clear(&mut r.header);
        format!("{r:?}")
    }
    /// What etcdctl prints whatever the format (`auth enable|disable` print a line).
    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }
    // Each run starts from the same state: a fresh `zz` (version 1), no user w1, a user w2
    // and a role q2 of their own, and auth off (set up through ours; failures, such as
    // deleting what is not there, change nothing).
    let zz: &[&[&str]] = &[&["del", "zz"], &["put", "zz", "base"]];
    let w2: &[&[&str]] = &[&["user", "delete", "w2"], &["user", "add", "w2:pw"]];
    let q2: &[&[&str]] = &[&["role", "delete", "q2"], &["role", "add", "q2"]];
    let both = [w2, q2].concat();
    let granted = [w2, q2, &[&["user", "grant-role", "w2", "q2"][..]]].concat();
    let allowed = [
        q2,
        &[&["role", "grant-permission", "q2", "readwrite", "k1", "k9"][..]],
    ]
    .concat();
    let root: &[&[&str]] = &[
        &["user", "add", "root:rootpw"],
        &["user", "grant-role", "root", "root"],
    ];
    let enabled = [root, &[&["auth", "enable"][..]]].concat();
    /// Commands that set a run up.
    type Setup<'a> = &'a [&'a [&'a str]];
    let cases: Vec<(Setup, Vec<&str>, &str, Decode)> = vec![
        (zz, vec!["put", "zz", "new", "--prev-kv"], "", put),
        (zz, vec!["del", "zz", "--prev-kv"], "", del),
        (zz, vec!["txn"], txn, txn_answer),
        (zz, vec!["txn", "-i"], txn, prompted_txn),
        (
            zz,
            vec!["txn", "--interactive"],
            "value(\"zz\") = \"base\"\nbad\n",
            txn_answer,
        ),
        (&[], vec!["lease", "grant", "100"], "", header),
        (
            &[&["user", "delete", "w1"]],
            vec!["user", "add", "w1:pw"],
            "",
            user_added,
        ),
        (
            w2,
            vec!["user", "passwd", "w2", "--interactive=false"],
            "pw2\n",
            header_only,
        ),
        (w2, vec!["user", "delete", "w2"], "", header_only),
        (
            &both,
            vec!["user", "grant-role", "w2", "q2"],
            "",
            header_only,
        ),
        (
            &granted,
            vec!["user", "revoke-role", "w2", "q2"],
            "",
            header_only,
        ),
        (
            &[&["role", "delete", "q3"]],
            vec!["role", "add", "q3"],
            "",
            header_only,
        ),
        (q2, vec!["role", "delete", "q2"], "", header_only),
        (
            q2,
            vec!["role", "grant-permission", "q2", "readwrite", "k1", "k9"],
            "",
            header_only,
        ),
        (
            &allowed,
            vec!["role", "revoke-permission", "q2", "k1", "k9"],
            "",
            header_only,
        ),
        (root, vec!["auth", "enable"], "", text),
        (
            &enabled,
            vec!["--user", "root:rootpw", "auth", "disable"],
            "",
            text,
        ),
    ];
    for (fresh, cmd, input, decode) in &cases {
        for format in FORMATS {
            let mut args = cmd.clone();
            args.extend_from_slice(&["-w", format]);
            let mut answers = Vec::new();
            for runner in [theirs, ours] {
                let _ = ours(&ep, &["--user", "root:rootpw", "auth", "disable"], "");
                for setup in *fresh {
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
    // A snapshot saved by each to a file of its own: the same line whatever the format (the
    // progress logs on standard error differ in shape: zap's fields).
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let mut said = Vec::new();
        for (who, runner) in [
            ("theirs", theirs as fn(&str, &[&str], &str) -> Run),
            ("ours", ours),
        ] {
            let file = dir.path().join(format!("{who}-{format}.db"));
            let run = runner(
                &ep,
                &["snapshot", "save", file.to_str().unwrap(), "-w", format],
                "",
            );
            assert!(file.exists(), "{run:?}");
            let stdout = String::from_utf8_lossy(&run.stdout).replace(who, "WHO");
            said.push((run.code, stdout));
        }
        assert_eq!(said[1], said[0], "snapshot save -w {format}");
    }
    // A compaction at the revision of a write of each's own.
    for format in FORMATS {
        let mut answers = Vec::new();
        for runner in [theirs, ours] {
            let put = ok(&ep, &["put", "zz", "again", "-w", "json"]);
            let put: serde_json::Value = serde_json::from_str(&put).unwrap();
            let rev = put["header"]["revision"].to_string();
            answers.push(runner(&ep, &["compaction", &rev, "-w", format], ""));
        }
        let (a, b) = (&answers[0], &answers[1]);
        assert_eq!(
            (b.code, &b.stderr),
            (a.code, &a.stderr),
            "compaction -w {format}"
        );
        // (etcdctl prints its line whatever the format.)
        let labels = [WRITE_LABELS, &["compacted revision "]].concat();
        let m = |r: &Run| mask(&String::from_utf8_lossy(&r.stdout), &labels);
        assert_eq!(m(b), m(a), "compaction -w {format}");
    }
    // A revoke of a lease of each's own (refused in protobuf, the answer's header shown in
    // the refusal).
    for format in FORMATS {
        let mut answers = Vec::new();
        for runner in [theirs, ours] {
            let granted = ok(&ep, &["lease", "grant", "100"]);
            let id = granted.split_whitespace().nth(1).unwrap().to_string();
            answers.push(runner(&ep, &["lease", "revoke", &id, "-w", format], ""));
        }
        let (a, b) = (&answers[0], &answers[1]);
        let m = |r: &Run| {
            let stdout = String::from_utf8_lossy(&r.stdout);
            (
                r.code,
                mask(&stdout, WRITE_LABELS),
                mask(&r.stderr, &["revision:"]),
            )
        };
        assert_eq!(m(b), m(a), "lease revoke -w {format}");
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
