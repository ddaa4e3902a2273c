//! etcd's v3 API against a real v3 client: Debian's etcdctl 3.4 with `ETCDCTL_API=3`.
//!
//! - The scripted sequence of `tools/v3-reference/kv.cmds` (put, get with every option, del,
//!   txn, compaction, errors) gives, on a fresh node of ours, the same transcript as real
//!   etcd 3.4.23 gave (`tools/v3-reference/kv.etcd-3.4.23.txt`), byte for byte once cluster
//!   and member ids and raft terms are masked: the same revisions, versions, counts, errors
//!   and exit codes. It includes `endpoint status`, `health` and `hashkv` (etcd's own hash
//!   of the keyspace, equal to etcd's), where what differs by design is masked too (see
//!   `mask`).
//!   The same sequence gives the same transcript through three members (each command through
//!   the next member: written through one, read through another) and over TLS with client
//!   certificates. It ends with watches in interactive (`watch -i`) and exec form.
//! - endpoint status, health and hashkv, and member list, on one node; member list of three
//!   members as etcd 3.4.23 gave it (`tools/v3-reference/members.cmds`);
//! - three members: written through one, read through another, linearizable and
//!   serializable, with equal hashes and one cluster id;
//! - over TLS with client certificates.
//!
//! The tests need etcdctl 3.x on the PATH. Without it they say so and pass, unless
//! `ETCD_REQUIRE_ETCDCTL` is set (`.ci/run` installs the package and sets it).

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const CTL_TIMEOUT: Duration = Duration::from_secs(20);

thread_local! {
    /// The etcdctl this test thread runs: Debian's (on the PATH), or ours in the tests that
    /// say so ([`with_our_etcdctl`]).
    static PROGRAM: std::cell::Cell<&'static str> = const { std::cell::Cell::new("etcdctl") };
}

/// Runs `f` with our etcdctl in place of Debian's.
fn with_our_etcdctl<T>(f: impl FnOnce() -> T) -> T {
    PROGRAM.with(|p| p.set(env!("CARGO_BIN_EXE_etcdctl")));
    let out = f();
    PROGRAM.with(|p| p.set("etcdctl"));
    out
}

/// One etcdctl run.
#[derive(Debug)]
struct Ctl {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `etcdctl --endpoints <endpoints> <extra> <args>` in v3 mode with `input` on its
/// standard input, which is closed at once or, with `hold_stdin`, kept open while it runs
/// (for `watch -i`). Returns what it printed, and whether it was still running after `time`
/// (and was ended).
fn run_ctl(
    endpoints: &str,
    extra: &[&str],
    args: &[&str],
    input: &str,
    hold_stdin: bool,
    time: Duration,
    dir: &Path,
) -> (Ctl, bool) {
    let out = dir.join("ctl.out");
    let err = dir.join("ctl.err");
    let mut child = Command::new(PROGRAM.with(|p| p.get()))
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoints)
        .args(extra)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn etcdctl");
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        let _ = s.write_all(input.as_bytes());
    }
    if !hold_stdin {
        stdin = None;
    }
    let status = wait_child(&mut child, time);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(stdin);
    let ctl = Ctl {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    };
    (ctl, status.is_none())
}

/// Runs `etcdctl --endpoints <endpoints> <extra> <args>` in v3 mode with `input` on its
/// standard input; it must finish within [`CTL_TIMEOUT`].
fn ctl_with(endpoints: &str, extra: &[&str], args: &[&str], input: &str, dir: &Path) -> Ctl {
    let (ctl, ended) = run_ctl(endpoints, extra, args, input, false, CTL_TIMEOUT, dir);
    assert!(
        !ended,
        "etcdctl {args:?} did not finish within {CTL_TIMEOUT:?}"
    );
    ctl
}

#[track_caller]
fn ok_with(endpoints: &str, extra: &[&str], args: &[&str], dir: &Path) -> String {
    let r = ctl_with(endpoints, extra, args, "", dir);
    assert_eq!(r.code, Some(0), "etcdctl {args:?}: {r:?}");
    r.stdout
}

#[track_caller]
fn ok(endpoints: &str, args: &[&str], dir: &Path) -> String {
    ok_with(endpoints, &[], args, dir)
}

/// The transcript with what differs from run to run or by design masked: cluster and member
/// ids and raft terms everywhere; and in the per-endpoint answers, the endpoint's port, the
/// version (we say 3.5.17, for Kubernetes), the database size, raft indexes and how long the
/// health check took (and the TLS run's `https://`). Revisions, hashes, errors and the shape of every answer stay.
fn mask(text: &str) -> String {
    let numbers = [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
        "\"dbSize\":",
        "\"dbSizeInUse\":",
        "\"leader\":",
        "\"raftIndex\":",
        "\"raftTerm\":",
        "\"raftAppliedIndex\":",
        "\"DBSize\" : ",
        "\"Leader\" : ",
        "\"RaftIndex\" : ",
        "\"RaftAppliedIndex\" : ",
        "127.0.0.1:",
    ];
    // The TLS run names its endpoint with its scheme.
    let mut out = text.replace("https://127.0.0.1:", "127.0.0.1:");
    for label in numbers {
        out = mask_after(&out, label, |c| c.is_ascii_digit());
    }
    for label in ["\"version\":\"", "\"Version\" : \"", "\"took\":\""] {
        out = mask_after(&out, label, |c| c != '"');
    }
    // `endpoint status`: endpoint, member id, version, size, leader?, learner?, raft term,
    // raft index, applied index, errors.
    out.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(", ").collect();
            if line.starts_with("127.0.0.1:N, ") && fields.len() == 10 {
                let mut fields = fields;
                for i in [1, 2, 3, 6, 7, 8] {
                    fields[i] = "N";
                }
                fields.join(", ")
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

/// Runs the commands of `tools/v3-reference/kv.cmds` as `kv.sh` does and returns the
/// transcript in the same format (see [`transcript_of`]).
fn transcript(endpoints: &[String], extra: &[&str], dir: &Path) -> String {
    transcript_of("kv.cmds", endpoints, extra, dir)
}

/// Runs the commands of `tools/v3-reference/<cmds>` as `kv.sh` does and returns the
/// transcript in the same format. Command `n` goes to `endpoints[n % len]` (so on a cluster
/// each write goes through one member and the reads after it through others), except that
/// reads served from a member's own state (`--consistency=s`, `lease list`) go to the member
/// that took the last write, and the per-endpoint commands (`endpoint …`) to the first
/// endpoint (the leader, so that it says it is); `extra` flags go to every command.
fn transcript_of(cmds: &str, endpoints: &[String], extra: &[&str], dir: &Path) -> String {
    let cmds = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/v3-reference")
            .join(cmds),
    )
    .expect("the commands");
    let mut out = String::new();
    // The id the last `lease grant` printed: `$LEASE` in the commands, `LEASE` in the output.
    let mut lease = "none".to_string();
    // The id the last successful `member add` printed (hex, and decimal for json): `$MEMBER`
    // in the commands, `MEMBER` in the output (as kv.sh).
    let mut member = ("none".to_string(), String::new());
    let mut last_write = endpoints[0].as_str();
    for (n, line) in cmds
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
    {
        let (shown, input) = match line.split_once(" | ") {
            Some((args, input)) => (args, input.replace("\\n", "\n")),
            None => (line, String::new()),
        };
        let args = shown
            .replace("$LEASE", &lease)
            .replace("$MEMBER", &member.0);
        let argv: Vec<&str> = args.split(' ').collect();
        let local = args.contains("--consistency=s") || args.starts_with("lease list");
        let per_endpoint = args.starts_with("endpoint");
        let endpoint = if per_endpoint {
            endpoints[0].as_str()
        } else if local {
            last_write
        } else {
            endpoints[n % endpoints.len()].as_str()
        };
        let r = if args.starts_with("watch") {
            watch_for(endpoint, extra, &argv, &input, Duration::from_secs(2), dir)
        } else {
            if !args.starts_with("get") && !args.starts_with("lease timetolive") && !per_endpoint {
                last_write = endpoint;
            }
            ctl_with(endpoint, extra, &argv, &input, dir)
        };
        if args.starts_with("lease grant") {
            if let Some(id) = r.stdout.split_whitespace().nth(1) {
                lease = id.to_string();
            }
        }
        if args.starts_with("member add") && r.code == Some(0) {
            if let Some(hex) = r
                .stdout
                .strip_prefix("Member ")
                .and_then(|rest| rest.split_whitespace().next())
            {
                let id = u64::from_str_radix(hex, 16).unwrap_or(0);
                member = (hex.to_string(), id.to_string());
            } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.stdout) {
                let id = v["member"]["ID"].as_u64().unwrap_or(0);
                member = (format!("{id:x}"), id.to_string());
            }
        }
        let hide = |text: &str| -> String {
            let mut t = text.replace(&lease, "LEASE");
            if !member.1.is_empty() {
                t = t
                    .replace(&format!("{:>16}", member.0), "MEMBER")
                    .replace(&member.0, "MEMBER")
                    .replace(&member.1, "MEMBER");
            }
            t
        };
        out.push_str(&format!("$ etcdctl {shown}\n"));
        // As the shell's $(...): trailing newlines dropped.
        let stdout = hide(r.stdout.trim_end_matches('\n'));
        if !stdout.is_empty() {
            out.push_str(&stdout);
            out.push('\n');
        }
        for l in r.stderr.lines().filter(|l| l.starts_with("Error:")) {
            out.push_str(&hide(l));
            out.push('\n');
        }
        match r.code {
            Some(code) => out.push_str(&format!("[exit {code}]\n")),
            None => out.push_str("[ended]\n"),
        }
    }
    out
}

/// Runs `etcdctl watch …` for `time` with `input` on its standard input, which stays open
/// until then (for `watch -i`); `code` is `None` when it was still running then (and was
/// ended).
fn watch_for(
    endpoint: &str,
    extra: &[&str],
    args: &[&str],
    input: &str,
    time: Duration,
    dir: &Path,
) -> Ctl {
    run_ctl(endpoint, extra, args, input, true, time, dir).0
}

/// Requires `ours` to be the recorded etcd 3.4.23 transcript of `kv.cmds` (both masked),
/// showing the first difference otherwise.
#[track_caller]
fn assert_same_as_etcd(ours: &str) {
    assert_same_as_recorded("kv.etcd-3.4.23.txt", ours, mask)
}

/// Our own etcdctl, through the whole script (put, get and del with every option and the
/// simple, json and fields formats, interactive txns, compactions, endpoint status, health
/// and hashkv, leases, and watches replaying history, interactive and in exec form, with their
/// errors and exit codes), prints what etcdctl 3.4.23
/// printed against etcd 3.4.23, byte for byte once ids are masked. Needs no Debian package.
#[test]
fn our_etcdctl_answers_the_scripted_kv_sequence_as_etcd_3_4_did() {
    let node = Node::start("ourctl", &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let ours = with_our_etcdctl(|| transcript(&[node.client_addr()], &[], dir.path()));
    assert_same_as_etcd(&ours);
}

/// Our own etcdctl through the whole recorded auth script (users, roles, permissions, auth
/// enable and disable, and every kind of call as users, with their errors and exit codes):
/// etcd 3.4.23's transcript byte for byte, masked as the Debian etcdctl's run is. Needs no
/// Debian package.
#[test]
fn our_etcdctl_answers_the_scripted_auth_sequence_as_etcd_3_4_did() {
    let node = Node::start("default", &["--bcrypt-cost", "4"]);
    let dir = tempfile::tempdir().expect("tmp");
    let ours =
        with_our_etcdctl(|| transcript_of("auth.cmds", &[node.client_addr()], &[], dir.path()));
    assert_same_as_recorded("auth.etcd-3.4.23.txt", &ours, mask_auth);
}

#[test]
fn the_scripted_kv_sequence_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("v3kv", &[]);
    let dir = tempfile::tempdir().expect("tmp");
    assert_same_as_etcd(&transcript(&[node.client_addr()], &[], dir.path()));
}

#[test]
fn the_scripted_kv_sequence_through_three_members_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    // etcd's default timing (heartbeat 100 ms, election 1 s), which sets the minimum lease
    // TTL the transcript shows (2 s).
    let mut c = Cluster::start(
        3,
        &["-heartbeat-interval", "100", "-election-timeout", "1000"],
    );
    // The leader first: the per-endpoint commands go there.
    let leader = c.leader();
    let endpoints: Vec<String> = (0..3)
        .map(|i| c.member((leader + i) % 3).client_addr())
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    assert_same_as_etcd(&transcript(&endpoints, &[], dir.path()));
}

#[test]
fn the_scripted_kv_sequence_over_tls_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let (node, tls) = tls_node("v3kvtls");
    let dir = tempfile::tempdir().expect("tmp");
    let flags: Vec<&str> = tls.iter().map(String::as_str).collect();
    let ours = transcript(
        &[format!("https://{}", node.client_addr())],
        &flags,
        dir.path(),
    );
    assert_same_as_etcd(&ours);
}

/// Masks what differs between two runs of `tools/v3-reference/auth.cmds` besides [`mask`]'s:
/// the member id in `member list` (its port and name are masked or the same).
fn mask_auth(text: &str) -> String {
    let text = mask(text);
    let text = mask_after(&text, "\"ID\":", |c| c.is_ascii_digit());
    text.lines()
        .map(|line| match line.split_once(", started, ") {
            Some((id, rest)) if id.chars().all(|c| c.is_ascii_hexdigit()) => {
                format!("N, started, {rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// The scripted v3 auth sequence (`tools/v3-reference/auth.cmds`: users, roles, permissions
/// on keys, ranges and prefixes, enabling, what each user may then do, and every refusal)
/// answers as etcd 3.4.23 did, byte for byte once masked.
#[test]
fn the_scripted_auth_sequence_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    // Named as etcd's default member, as in the recording.
    let node = Node::start("default", &["--bcrypt-cost", "4"]);
    let dir = tempfile::tempdir().expect("tmp");
    let ours = transcript_of("auth.cmds", &[node.client_addr()], &[], dir.path());
    assert_same_as_recorded("auth.etcd-3.4.23.txt", &ours, mask_auth);
}

/// The same sequence through three members (each command through the next member, so a
/// token made through one is used through another), the same where one member's answer
/// cannot differ from one node's: everything but `member list` and `endpoint`.
#[test]
fn the_scripted_auth_sequence_through_three_members_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(
        3,
        &[
            "-heartbeat-interval",
            "100",
            "-election-timeout",
            "1000",
            "--bcrypt-cost",
            "4",
        ],
    );
    let leader = c.leader();
    let endpoints: Vec<String> = (0..3)
        .map(|i| c.member((leader + i) % 3).client_addr())
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let ours = transcript_of("auth.cmds", &endpoints, &[], dir.path());
    let single_member_only = |text: &str| -> String {
        let mut out = String::new();
        let mut skip = false;
        for line in text.lines() {
            if let Some(cmd) = line.strip_prefix("$ etcdctl ") {
                skip = cmd.starts_with("member list") || cmd.starts_with("endpoint");
            }
            if !skip {
                out.push_str(line);
                out.push('\n');
            }
        }
        mask_auth(&out)
    };
    assert_same_as_recorded("auth.etcd-3.4.23.txt", &ours, single_member_only);
}

/// The same sequence over TLS with client certificates, recorded so from etcd 3.4.23
/// (`--client-cert-auth`): while auth is on, a request without a token is its certificate's
/// common name's (`client`, no such user), so refusals without `--user` say so.
#[test]
fn the_scripted_auth_sequence_over_tls_takes_the_certificate_name_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let (node, tls) = tls_node_with("default", &["--bcrypt-cost", "4"]);
    let dir = tempfile::tempdir().expect("tmp");
    let flags: Vec<&str> = tls.iter().map(String::as_str).collect();
    let ours = transcript_of(
        "auth.cmds",
        &[format!("https://{}", node.client_addr())],
        &flags,
        dir.path(),
    );
    assert_same_as_recorded("auth-tls.etcd-3.4.23.txt", &ours, mask_auth);
}

/// Learners through etcdctl 3.4 on three members over TLS, as etcd 3.4.23 answered
/// (`tools/v3-reference/learners.cmds`): a learner added (a second refused), promotions of
/// one not in sync refused, removals, an unknown member, a bad URL, a bad transferee. What
/// depends on random member ids is normalized: ids and ports masked, and member lists (in
/// etcd's id order) sorted by name.
#[test]
fn learner_commands_on_three_members_over_tls_answer_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let mut members = start_tls_members(&["node1", "node2", "node3"], &FAST_TIMING);
    let tls = etcdctl_tls_flags();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().expect("tmp");
    // The first member leads (the others joined it): move-leader is asked of it.
    let ep = format!("https://{}", members[0].client_addr());
    let ours = transcript_of("learners.cmds", &[ep], &tls, dir.path());
    let normalize = |text: &str| -> String {
        let sorted: String = text
            .lines()
            .map(|line| {
                if let Some(list) = line
                    .strip_prefix("ETCD_INITIAL_CLUSTER=\"")
                    .and_then(|l| l.strip_suffix('"'))
                {
                    let mut items: Vec<&str> = list.split(',').collect();
                    items.sort();
                    format!("ETCD_INITIAL_CLUSTER=\"{}\"\n", items.join(","))
                } else if line.starts_with("{\"header\"") && line.contains("\"members\"") {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&line.replace("MEMBER", "0")).expect("json");
                    if let Some(members) = v["members"].as_array_mut() {
                        members.sort_by_key(|m| m["name"].as_str().unwrap_or("").to_string());
                    }
                    format!("{v}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let text = mask(&sorted);
        let text = mask_after(&text, "\"ID\":", |c| c.is_ascii_digit());
        // (etcdctl pads the hex id to 16 places.)
        let text = mask_after(&text, "to cluster", |c| c.is_ascii_hexdigit() || c == ' ');
        mask_after(&text, "from cluster", |c| c.is_ascii_hexdigit() || c == ' ')
    };
    assert_same_as_recorded("learners.etcd-3.4.23.txt", &ours, normalize);
    // Our etcdctl too (the script leaves the cluster as it found it).
    let ep = format!("https://{}", members[0].client_addr());
    let mine = with_our_etcdctl(|| transcript_of("learners.cmds", &[ep], &tls, dir.path()));
    assert_same_as_recorded("learners.etcd-3.4.23.txt", &mine, normalize);
    for n in &mut members {
        n.kill();
    }
}

/// A node serving TLS with client certificates required, and etcdctl's flags for it.
fn tls_node(name: &str) -> (Node, [String; 3]) {
    tls_node_with(name, &[])
}

/// [`tls_node`] with `extra` flags.
fn tls_node_with(name: &str, extra: &[&str]) -> (Node, [String; 3]) {
    let mut flags = vec![
        format!("-clientCert={}", fixture_arg("server.crt")),
        format!("-clientKey={}", fixture_arg("server.key.insecure")),
        format!("-clientCAFile={}", fixture_arg("ca.crt")),
    ];
    flags.extend(extra.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut node = Node::prepare(name, &flags);
    node.launch();
    let client = TlsClient::new(
        &fixture("ca.crt"),
        Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
    )
    .expect("TLS client");
    let peer = node.peer_url();
    node.wait_ready_via(&Transport::Tls(client), &peer);
    let flags = [
        format!("--cacert={}", fixture_arg("ca.crt")),
        format!("--cert={}", fixture_arg("client.crt")),
        format!("--key={}", fixture_arg("client.key.insecure")),
    ];
    (node, flags)
}

#[test]
fn endpoint_status_health_hashkv_and_member_list_on_one_node() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("v3status", &[]);
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Endpoints without a scheme: etcdctl 3.4 sends a scheme-ful endpoint as the HTTP/2
    // authority of these per-endpoint calls, which the HTTP/2 library refuses.
    let ep = node.client_addr();
    ok(&ep, &["put", "k", "v"], d);
    let status = ok(&ep, &["endpoint", "status", "-w", "json"], d);
    let status: serde_json::Value = serde_json::from_str(&status).expect("json");
    let s = &status[0]["Status"];
    assert!(
        s["version"].as_str().unwrap().starts_with("3.5."),
        "{status}"
    );
    let member_id = s["header"]["member_id"].as_u64().unwrap();
    assert_eq!(s["leader"].as_u64(), Some(member_id), "{status}");
    assert_eq!(s["header"]["revision"].as_i64(), Some(2), "{status}");
    assert!(s["dbSize"].as_i64().unwrap() > 0, "{status}");
    assert!(s["raftIndex"].as_u64().unwrap() >= 3, "{status}");
    // etcdctl 3.4 prints health to standard error.
    let health = ctl_with(&ep, &[], &["endpoint", "health"], "", d);
    assert_eq!(health.code, Some(0), "{health:?}");
    assert!(
        health
            .stderr
            .contains(&format!("{ep} is healthy: successfully committed proposal")),
        "{health:?}"
    );
    let hash = ok(&ep, &["endpoint", "hashkv", "-w", "json"], d);
    let hash: serde_json::Value = serde_json::from_str(&hash).expect("json");
    assert!(hash[0]["HashKV"]["hash"].as_u64().is_some(), "{hash}");
    let members = ok(&node.client_url(), &["member", "list"], d);
    assert_eq!(
        members.trim_end(),
        format!(
            "{member_id:x}, started, v3status, {}, {}, false",
            node.peer_url(),
            node.client_url()
        )
    );
    // As etcd's, the Cluster service's header carries no revision.
    let members = ok(&node.client_url(), &["member", "list", "-w", "json"], d);
    let members: serde_json::Value = serde_json::from_str(&members).expect("json");
    let header = members["header"].as_object().expect("a header");
    assert_eq!(
        header.keys().collect::<Vec<_>>(),
        ["cluster_id", "member_id", "raft_term"],
        "{members}"
    );
}

#[test]
fn three_members_write_through_one_read_through_another() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let ep = |i: usize| c.member(i).client_addr();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    ok(&ep(follower), &["put", "/registry/a", "1"], d);
    ok(&ep(leader), &["put", "/registry/b", "2"], d);
    let json = |i: usize, args: &[&str]| -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-w", "json"]);
        serde_json::from_str(&ok(&ep(i), &all, d)).expect("json")
    };
    // Linearizable by default: another member sees both writes at once.
    let got = json(other, &["get", "/registry/", "--prefix"]);
    assert_eq!(got["count"], 2, "{got}");
    assert_eq!(got["header"]["revision"], 3, "{got}");
    let cluster_id = got["header"]["cluster_id"].as_u64().unwrap();
    // Every member names the same cluster, and itself.
    let mut member_ids = Vec::new();
    for i in 0..3 {
        let h = json(i, &["get", "/registry/a"])["header"].clone();
        assert_eq!(h["cluster_id"].as_u64(), Some(cluster_id), "{h}");
        member_ids.push(h["member_id"].as_u64().unwrap());
    }
    member_ids.sort();
    member_ids.dedup();
    assert_eq!(member_ids.len(), 3);
    // A txn through a follower; then a serializable read there sees it (applied before
    // the answer).
    let out = ctl_with(
        &ep(follower),
        &[],
        &["txn"],
        "mod(\"/registry/a\") = \"2\"\n\nput /registry/a 11\n\nget /registry/a\n\n",
        d,
    );
    assert_eq!(out.stdout, "SUCCESS\n\nOK\n", "{out:?}");
    let s = json(follower, &["get", "/registry/a", "--consistency=s"]);
    assert_eq!(s["kvs"][0]["mod_revision"], 4, "{s}");
    // Every member hashes the same keyspace to the same value.
    let all = (0..3).map(ep).collect::<Vec<_>>().join(",");
    poll_until(
        Duration::from_secs(10),
        "equal hashes on every member",
        || {
            let hashes: serde_json::Value =
                serde_json::from_str(&ok(&all, &["endpoint", "hashkv", "-w", "json"], d)).ok()?;
            let hashes: Vec<u64> = (0..3)
                .map(|i| hashes[i]["HashKV"]["hash"].as_u64())
                .collect::<Option<_>>()?;
            (hashes.iter().all(|h| *h == hashes[0]) && hashes.len() == 3).then_some(())
        },
    );
    let members = ok(&ep(other), &["member", "list"], d);
    assert_eq!(members.lines().count(), 3, "{members}");
    // Compaction through one member is seen by the others.
    ok(&ep(leader), &["compaction", "3"], d);
    let r = ctl_with(&ep(other), &[], &["get", "/registry/a", "--rev=2"], "", d);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Error: etcdserver: mvcc: required revision has been compacted"),
        "{r:?}"
    );
}

/// `member list` of three members as etcd 3.4.23 answered it
/// (`tools/v3-reference/members.cmds`): with member ids, ports and names masked besides
/// [`mask`]'s (etcd lists members in the order of their random ids); the names themselves are
/// checked apart.
#[test]
fn member_list_of_three_members_answers_as_etcd_3_4_did() {
    if !have_etcdctl() {
        return;
    }
    let c = Cluster::start(3, &FAST_TIMING);
    let endpoints: Vec<String> = (0..3).map(|i| c.member(i).client_addr()).collect();
    let dir = tempfile::tempdir().expect("tmp");
    let ours = transcript_of("members.cmds", &endpoints, &[], dir.path());
    let mask_members = |text: &str| -> String {
        let text = mask(text);
        let text = mask_after(&text, "\"ID\":", |c| c.is_ascii_digit());
        let text = mask_after(&text, "\"ID\" : ", |c| c.is_ascii_digit());
        let text = mask_after(&text, "node", |c| c.is_ascii_digit());
        text.lines()
            .map(|line| match line.split_once(", started, ") {
                Some((id, rest)) if id.chars().all(|c| c.is_ascii_hexdigit()) => {
                    format!("N, started, {rest}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect()
    };
    assert_same_as_recorded("members.etcd-3.4.23.txt", &ours, mask_members);
    // Our etcdctl too.
    let mine = with_our_etcdctl(|| transcript_of("members.cmds", &endpoints, &[], dir.path()));
    assert_same_as_recorded("members.etcd-3.4.23.txt", &mine, mask_members);
    let mut names: Vec<&str> = ours
        .lines()
        .filter_map(|l| l.split(", ").nth(2).filter(|_| l.contains(", started, ")))
        .collect();
    names.sort();
    assert_eq!(names, ["node1", "node2", "node3"], "{ours}");
}

#[test]
fn move_leader_and_defrag_as_etcd_3_4s_etcdctl_does_them() {
    if !have_etcdctl() {
        return;
    }
    let mut c = Cluster::start(3, &FAST_TIMING);
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let all = (0..3)
        .map(|i| c.member(i).client_addr())
        .collect::<Vec<_>>()
        .join(",");
    // Member ids by name, from `member list`.
    let ids: std::collections::HashMap<String, String> = ok(&all, &["member", "list"], d)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[2].to_string(), f[0].to_string())
        })
        .collect();
    let id = |c: &Cluster, i: usize| ids[&c.member(i).name].clone();
    let leader = c.leader();
    let target = (leader + 1) % 3;
    // etcdctl finds the leader among the endpoints and asks it.
    let out = ok(&all, &["move-leader", &id(&c, target)], d);
    assert_eq!(
        out,
        format!(
            "Leadership transferred from {} to {}\n",
            id(&c, leader),
            id(&c, target)
        )
    );
    assert_eq!(c.leader(), target);
    // Only followers given: etcdctl's own error (its exit code for bad arguments).
    let followers: Vec<String> = (0..3)
        .filter(|&i| i != target)
        .map(|i| c.member(i).client_addr())
        .collect();
    let r = ctl_with(
        &followers.join(","),
        &[],
        &["move-leader", &id(&c, leader)],
        "",
        d,
    );
    assert_eq!(r.code, Some(128), "{r:?}");
    assert!(r.stderr.contains("no leader endpoint given at"), "{r:?}");
    // A member id that is not in the cluster.
    let r = ctl_with(&all, &[], &["move-leader", "1234abcd"], "", d);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Error: etcdserver: bad leader transferee"),
        "{r:?}"
    );
    // Defragment: each endpoint answers.
    let out = ok(&all, &["defrag"], d);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut want: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "Finished defragmenting etcd member[{}]",
                c.member(i).client_addr()
            )
        })
        .collect();
    want.sort();
    assert_eq!(lines, want);
}

/// The space quota as etcd 3.4 enforces it (its answers recorded by hand with the same
/// commands against `etcd --quota-backend-bytes 300000`): filling the keyspace raises NOSPACE;
/// puts, lease grants and txns that put are refused while deletes and reads go; the alarm
/// survives a restart; once space is freed (compaction here; etcd also needs a defrag) and the
/// alarm disarmed, writes go again.
#[test]
fn the_space_quota_raises_nospace_and_disarming_clears_it() {
    if !have_etcdctl() {
        return;
    }
    let mut node = Node::start(
        "v3quota",
        &["--quota-backend-bytes", "300000", "-snapshot-count", "10"],
    );
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = node.client_addr();
    let value = "x".repeat(16 << 10);
    let full = (1..=40)
        .map(|i| ctl_with(&ep, &[], &["put", &format!("k{i}"), &value], "", d))
        .find(|r| r.code != Some(0))
        .expect("the quota was never reached");
    let no_space = "Error: etcdserver: mvcc: database space exceeded";
    assert!(full.stderr.contains(no_space), "{full:?}");
    let status: serde_json::Value =
        serde_json::from_str(&ok(&ep, &["endpoint", "status", "-w", "json"], d)).unwrap();
    let id = status[0]["Status"]["header"]["member_id"].as_u64().unwrap();
    let alarm = format!("memberID:{id} alarm:NOSPACE \n");
    assert_eq!(ok(&ep, &["alarm", "list"], d), alarm);
    assert_eq!(
        status[0]["Status"]["errors"],
        serde_json::json!([alarm.trim_end_matches('\n')])
    );
    // Capped: what grows the keyspace is refused, reads and deletes are not.
    let refused = |args: &[&str], input: &str, message: &str| {
        let r = ctl_with(&ep, &[], args, input, d);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(r.stderr.contains(message), "{args:?}: {r:?}");
    };
    refused(&["put", "small", "x"], "", no_space);
    refused(
        &["lease", "grant", "100"],
        "",
        "Error: failed to grant lease (etcdserver: mvcc: database space exceeded)",
    );
    refused(&["txn"], "\nput t 1\n\n\n", no_space);
    assert_eq!(ok(&ep, &["get", "k1", "--keys-only"], d), "k1\n\n");
    // The alarm is in the log (and the snapshots): it survives kill -9.
    node.kill();
    node.restart();
    assert_eq!(ok(&ep, &["alarm", "list"], d), alarm);
    let deleted = ok(&ep, &["del", "k", "--prefix"], d);
    assert!(deleted.trim().parse::<u32>().unwrap() > 10, "{deleted}");
    let rev = serde_json::from_str::<serde_json::Value>(&ok(&ep, &["get", "x", "-w", "json"], d))
        .unwrap()["header"]["revision"]
        .as_i64()
        .unwrap();
    ok(&ep, &["compaction", &rev.to_string()], d);
    // Disarmed: listed as it goes, then gone, and writes go again.
    assert_eq!(ok(&ep, &["alarm", "disarm"], d), alarm);
    assert_eq!(ok(&ep, &["alarm", "list"], d), "");
    assert_eq!(ok(&ep, &["put", "small", "x"], d), "OK\n");
}

/// Starts `node`, added to `c`'s three members beforehand, as etcdctl's variables say: modern
/// flags, the initial cluster with it, state `existing`.
fn launch_joining(c: &Cluster, node: &mut Node) {
    let mut cluster: Vec<String> = (0..3)
        .map(|i| format!("{}={}", c.member(i).name, c.member(i).peer_url()))
        .collect();
    cluster.push(format!("{}={}", node.name, node.peer_url()));
    let mut args = node.modern_args();
    args.extend(
        [
            "--initial-cluster",
            &cluster.join(","),
            "--initial-cluster-state",
            "existing",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    node.args = args;
    node.launch();
}

/// etcdctl 3.4's `member add`, `update`, `promote` and `remove` (their output formats as
/// etcdctl prints etcd's answers): a member added with etcdctl, its peer URL updated before it
/// starts, started as etcdctl's variables say, then removed; errors for a member that is not
/// there, for promoting a member that is no learner, for learners, and for a change that
/// would leave fewer started members than a quorum.
#[test]
fn member_add_update_promote_and_remove_through_etcdctl() {
    if !have_etcdctl() {
        return;
    }
    let c = Cluster::start(3, &FAST_TIMING);
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let all = (0..3)
        .map(|i| c.member(i).client_addr())
        .collect::<Vec<_>>()
        .join(",");
    let listed = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(&all, &["member", "list", "-w", "json"], d)).unwrap()
    };
    let cluster_id = listed(d)["header"]["cluster_id"].as_u64().unwrap();
    let mut new = Node::prepare("newbie", &[]);
    let [placeholder] = free_ports::<1>();
    let first_url = format!("http://127.0.0.1:{placeholder}");
    let out = ok(
        &all,
        &["member", "add", "newbie", "--peer-urls", &first_url],
        d,
    );
    let id_hex = out.split_whitespace().nth(1).expect("an id").to_string();
    let id = u64::from_str_radix(&id_hex, 16).unwrap();
    let cluster: Vec<String> = (0..3)
        .map(|i| format!("{}={}", c.member(i).name, c.member(i).peer_url()))
        .collect();
    // etcdctl lists the members as the answer orders them (by id): compare as sets.
    let printed_cluster = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
        .expect("ETCD_INITIAL_CLUSTER")
        .trim_matches('"')
        .to_string();
    let mut printed: Vec<&str> = printed_cluster.split(',').collect();
    printed.sort();
    let mut want: Vec<String> = cluster.clone();
    want.push(format!("newbie={first_url}"));
    want.sort();
    assert_eq!(printed, want, "{out}");
    assert_eq!(
        out.replace(&format!("ETCD_INITIAL_CLUSTER=\"{printed_cluster}\"\n"), ""),
        format!(
            "Member {id:16x} added to cluster {cluster_id:16x}\n\nETCD_NAME=\"newbie\"\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS=\"{first_url}\"\n\
             ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        )
    );
    // Not started yet: no name, no client URL.
    let members = listed(d)["members"].clone();
    let added = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["ID"].as_u64() == Some(id))
        .expect("listed");
    assert!(
        added.get("name").is_none() && added.get("clientURLs").is_none(),
        "{added}"
    );
    // Moved to the address it will run at, then started there.
    assert_eq!(
        ok(
            &all,
            &["member", "update", &id_hex, "--peer-urls", &new.peer_url()],
            d
        ),
        format!("Member {id:16x} updated in cluster {cluster_id:16x}\n")
    );
    launch_joining(&c, &mut new);
    poll_until(
        MEMBER_READY_TIMEOUT,
        "the new member publishes its name",
        || {
            new.assert_running();
            let members = listed(d)["members"].clone();
            members
                .as_array()?
                .iter()
                .any(|m| m["ID"].as_u64() == Some(id) && m["name"] == "newbie")
                .then_some(())
        },
    );
    // It has caught up: it serves a linearizable read.
    ok(&all, &["put", "joined", "yes"], d);
    poll_until(MEMBER_READY_TIMEOUT, "the new member serves reads", || {
        let r = ctl_with(
            &new.client_addr(),
            &[],
            &["get", "joined", "--print-value-only"],
            "",
            d,
        );
        (r.stdout == "yes\n").then_some(())
    });
    // No learner to promote.
    let r = ctl_with(&all, &[], &["member", "promote", &id_hex], "", d);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("Error: etcdserver: can only promote a learner member"),
        "{r:?}"
    );
    // Removed: it stops; a second removal finds no member.
    assert_eq!(
        ok(&all, &["member", "remove", &id_hex], d),
        format!("Member {id:16x} removed from cluster {cluster_id:16x}\n")
    );
    if new.wait_exit(Duration::from_secs(30)).is_none() {
        panic!("a removed member stops: {}", new.logs());
    }
    assert_eq!(listed(d)["members"].as_array().unwrap().len(), 3);
    let r = ctl_with(&all, &[], &["member", "remove", &id_hex], "", d);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("Error: etcdserver: member not found"),
        "{r:?}"
    );
    // A member removed as soon as it has joined, before it may have heard from the leader,
    // learns it from its peers and stops too.
    let mut quick = Node::prepare("quick", &[]);
    let out = ok(
        &all,
        &["member", "add", "quick", "--peer-urls", &quick.peer_url()],
        d,
    );
    let quick_hex = out.split_whitespace().nth(1).expect("an id").to_string();
    let quick_id = u64::from_str_radix(&quick_hex, 16).unwrap();
    launch_joining(&c, &mut quick);
    poll_until(MEMBER_READY_TIMEOUT, "the quick member joins", || {
        quick.assert_running();
        let members = listed(d)["members"].clone();
        members
            .as_array()?
            .iter()
            .any(|m| m["ID"].as_u64() == Some(quick_id) && m["name"] == "quick")
            .then_some(())
    });
    ok(&all, &["member", "remove", &quick_hex], d);
    if quick.wait_exit(Duration::from_secs(30)).is_none() {
        panic!("a member removed at once stops: {}", quick.logs());
    }
    // A learner (tests/v3_learners.rs has the rest): added through any member (a follower
    // forwards the change to the leader), listed as one, removed.
    let out = ok(
        &all,
        &[
            "member",
            "add",
            "learner",
            "--learner",
            "--peer-urls",
            &first_url,
        ],
        d,
    );
    let learner_hex = out.split_whitespace().nth(1).expect("an id").to_string();
    let list = ok(&all, &["member", "list"], d);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&learner_hex) && l.ends_with(", true")),
        "{list}"
    );
    ok(&all, &["member", "remove", &learner_hex], d);
    // Three started members take two more that have not started, not a third.
    let urls: Vec<String> = free_ports::<3>()
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for (name, url) in [("e", &urls[0]), ("f", &urls[1])] {
        ok(&all, &["member", "add", name, "--peer-urls", url], d);
    }
    let r = ctl_with(
        &all,
        &[],
        &["member", "add", "g", "--peer-urls", &urls[2]],
        "",
        d,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(
            "Error: etcdserver: re-configuration failed due to not enough started members"
        ),
        "{r:?}"
    );
}

/// The alarms through three members: the quota is reached through one, the alarm is listed
/// and enforced through the others, and disarmed through yet another.
#[test]
fn nospace_raised_through_one_member_is_seen_and_cleared_through_the_others() {
    if !have_etcdctl() {
        return;
    }
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(&["--quota-backend-bytes", "300000"]);
    let c = Cluster::start(3, &flags);
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = |i: usize| c.member(i).client_addr();
    let value = "x".repeat(16 << 10);
    let full = (1..=40)
        .map(|i| ctl_with(&ep(0), &[], &["put", &format!("k{i}"), &value], "", d))
        .find(|r| r.code != Some(0))
        .expect("the quota was never reached");
    let no_space = "Error: etcdserver: mvcc: database space exceeded";
    assert!(full.stderr.contains(no_space), "{full:?}");
    let listed = ok(&ep(1), &["alarm", "list"], d);
    assert!(
        listed.starts_with("memberID:") && listed.ends_with(" alarm:NOSPACE \n"),
        "{listed}"
    );
    let r = ctl_with(&ep(2), &[], &["put", "small", "x"], "", d);
    assert!(r.stderr.contains(no_space), "{r:?}");
    ok(&ep(2), &["del", "k", "--prefix"], d);
    let rev =
        serde_json::from_str::<serde_json::Value>(&ok(&ep(2), &["get", "x", "-w", "json"], d))
            .unwrap()["header"]["revision"]
            .as_i64()
            .unwrap();
    ok(&ep(2), &["compaction", &rev.to_string()], d);
    assert_eq!(ok(&ep(1), &["alarm", "disarm"], d), listed);
    assert_eq!(ok(&ep(0), &["put", "small", "x"], d), "OK\n");
    for i in 0..3 {
        assert_eq!(ok(&ep(i), &["alarm", "list"], d), "");
    }
}

/// Lock (its exec form), election, alarms and defragmentation over TLS with client
/// certificates.
#[test]
fn lock_elect_alarm_and_defrag_over_tls() {
    if !have_etcdctl() {
        return;
    }
    let (node, flags) = tls_node("v3tlsmore");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = format!("https://{}", node.client_addr());
    let tls: Vec<&str> = flags.iter().map(String::as_str).collect();
    // The exec form: the command runs while the lock is held, told the lock's key.
    let lock = [
        "lock",
        "mylock",
        "--",
        "sh",
        "-c",
        "echo held $ETCD_LOCK_KEY",
    ];
    let held = ok_with(&ep, &tls, &lock, d);
    assert!(held.starts_with("held mylock/"), "{held}");
    assert_eq!(
        ok_with(&ep, &tls, &["get", "mylock", "--prefix", "--keys-only"], d),
        ""
    );
    assert_eq!(ok_with(&ep, &tls, &["alarm", "list"], d), "");
    assert_eq!(
        ok_with(&ep, &tls, &["defrag"], d),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    let mut args: Vec<&str> = tls.clone();
    args.extend(["--endpoints", ep.as_str(), "elect", "myelection", "p1"]);
    let mut campaign = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(&args)
        .stdout(std::fs::File::create(d.join("elect.out")).unwrap())
        .stderr(std::fs::File::create(d.join("elect.err")).unwrap())
        .spawn()
        .expect("etcdctl elect");
    let leader = poll_until(Duration::from_secs(10), "elected over TLS", || {
        let out = std::fs::read_to_string(d.join("elect.out")).ok()?;
        (out.lines().count() >= 2).then_some(out)
    });
    assert!(
        leader.starts_with("myelection/") && leader.ends_with("\np1\n"),
        "{leader}"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &campaign.id().to_string()])
        .status();
    let status = wait_child(&mut campaign, Duration::from_secs(10)).expect("it resigns and exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        ok_with(
            &ep,
            &tls,
            &["get", "myelection", "--prefix", "--keys-only"],
            d
        ),
        ""
    );
}

#[test]
fn v3_over_tls_with_client_certificates() {
    if !have_etcdctl() {
        return;
    }
    let (node, flags) = tls_node("v3tls");
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ep = format!("https://{}", node.client_addr());
    let tls: Vec<&str> = flags.iter().map(String::as_str).collect();
    let ca = flags[0].clone();
    assert_eq!(ok_with(&ep, &tls, &["put", "secure", "yes"], d), "OK\n");
    assert_eq!(ok_with(&ep, &tls, &["get", "secure"], d), "secure\nyes\n");
    // Without a client certificate the handshake is refused.
    let r = ctl_with(
        &ep,
        &[ca.as_str(), "--dial-timeout=1s", "--command-timeout=2s"],
        &["get", "secure"],
        "",
        d,
    );
    assert_ne!(r.code, Some(0), "{r:?}");
}
