//! Process tests of `etcdctl`, the command-line client, against real `etcd` processes: every
//! command in simple and JSON output, server errors (`Error:  <code>: <message> (<cause>)
//! [<index>]`, exit 4), usage and connection errors (exit 1), endpoints from `--peers`/`-C` and
//! `ETCDCTL_PEERS`, failover to the next endpoint, one-shot and `--forever` watches, `exec-watch`,
//! TLS with client certificates, shell completions, and a three-member cluster.
//!
//! Every etcdctl run is bounded (killed and a panic after a deadline); long-running ones
//! (`watch --forever`, `exec-watch`) are killed when their guard is dropped. Watches that must
//! not miss a write are started with `--after-index <current index>`, so no sleep is needed to
//! let them register first.

mod support;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Deadline of one etcdctl run that should end by itself.
const CTL_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of an etcdctl run that must answer "at once" (a watch on recorded history),
/// process start-up included.
const CTL_AT_ONCE: Duration = Duration::from_secs(5);

fn etcdctl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_etcdctl")
}

/// `etcdctl args...` with `env` (and never an inherited `ETCDCTL_PEERS`).
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.args(args)
        .env_remove("ETCDCTL_PEERS")
        // The v2-era commands (v3 is the default, as in etcdctl 3.4).
        .env("ETCDCTL_API", "2")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).expect("seek output file");
    file.read_to_end(&mut bytes).expect("read output file");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs etcdctl to completion within `timeout` (killed and a panic after it).
#[track_caller]
fn run_env_within(args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Exit {
    let mut out = tempfile::tempfile().expect("stdout file");
    let mut err = tempfile::tempfile().expect("stderr file");
    let mut child = command(args, env)
        .stdout(out.try_clone().expect("clone stdout file"))
        .stderr(err.try_clone().expect("clone stderr file"))
        .spawn()
        .expect("spawn etcdctl");
    match wait_child(&mut child, timeout) {
        Some(status) => Exit {
            status,
            stdout: read_all(&mut out),
            stderr: read_all(&mut err),
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "etcdctl {args:?} (env {env:?}) did not exit within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                read_all(&mut out),
                read_all(&mut err)
            );
        }
    }
}

/// `etcdctl args...` within `CTL_TIMEOUT`.
#[track_caller]
fn run(args: &[&str]) -> Exit {
    run_env_within(args, &[], CTL_TIMEOUT)
}

/// `etcdctl --peers <peers> args...` within `CTL_TIMEOUT`.
#[track_caller]
fn ctl(peers: &str, args: &[&str]) -> Exit {
    let mut all = vec!["--peers", peers];
    all.extend_from_slice(args);
    run(&all)
}

/// `etcdctl --peers <peers> args...` within `CTL_AT_ONCE`.
#[track_caller]
fn ctl_at_once(peers: &str, args: &[&str]) -> Exit {
    let mut all = vec!["--peers", peers];
    all.extend_from_slice(args);
    run_env_within(&all, &[], CTL_AT_ONCE)
}

/// Exit code 0, exactly `stdout`, nothing on stderr.
#[track_caller]
fn assert_success(exit: &Exit, stdout: &str, what: &str) {
    assert_eq!(
        (exit.code(), exit.stdout.as_str(), exit.stderr.as_str()),
        (Some(0), stdout, ""),
        "etcdctl {what} (left: got exit code, stdout, stderr; right: expected)"
    );
}

/// Exit code `code`, nothing on stdout, exactly `stderr`.
#[track_caller]
fn assert_failure(exit: &Exit, code: i32, stderr: &str, what: &str) {
    assert_eq!(
        (exit.code(), exit.stdout.as_str(), exit.stderr.as_str()),
        (Some(code), "", stderr),
        "etcdctl {what} (left: got exit code, stdout, stderr; right: expected)"
    );
}

/// Exit code 1, nothing on stdout, a message on stderr (a usage error).
#[track_caller]
fn assert_usage_error(exit: &Exit, what: &str) {
    assert!(
        exit.code() == Some(1) && exit.stdout.is_empty() && !exit.stderr.trim().is_empty(),
        "etcdctl {what}: expected a usage error (exit 1, empty stdout, a message on stderr), \
         got exit {:?}, stdout {:?}, stderr {:?}",
        exit.code(),
        exit.stdout,
        exit.stderr
    );
}

/// Exit code 1, nothing on stdout, stderr starting with `Error:  ` (a connection error).
#[track_caller]
fn assert_connection_error(exit: &Exit, what: &str) {
    assert!(
        exit.code() == Some(1) && exit.stdout.is_empty() && exit.stderr.starts_with("Error:  "),
        "etcdctl {what}: expected a connection error (exit 1, empty stdout, stderr starting \
         with \"Error:  \"), got exit {:?}, stdout {:?}, stderr {:?}",
        exit.code(),
        exit.stdout,
        exit.stderr
    );
}

/// What etcdctl prints on stderr for a server error.
fn server_error(code: u16, message: &str, cause: &str, index: u64) -> String {
    format!("Error:  {code}: {message} ({cause}) [{index}]\n")
}

const KEY_NOT_FOUND: &str = "Key Not Found";
const PREV_VALUE_MISMATCH: &str = "The given PrevValue is not equal to the value of the key";

/// The node's store index now, from the `X-Etcd-Index` header of a GET.
#[track_caller]
fn store_index(node: &Node) -> u64 {
    let r = node.get("/v1/keys/");
    let header = r
        .header("x-etcd-index")
        .unwrap_or_else(|| panic!("GET /v1/keys/ has no X-Etcd-Index header: {r:?}"));
    header
        .parse()
        .unwrap_or_else(|e| panic!("X-Etcd-Index {header:?}: {e}"))
}

/// Sets `/v1/keys/<key>` with a raw request; returns the response body and index.
#[track_caller]
fn raw_set(node: &Node, key: &str, pairs: &[(&str, &str)]) -> (String, u64) {
    let r = node.post_form(&format!("/v1/keys/{key}"), pairs);
    assert_eq!(r.status, 200, "POST /v1/keys/{key} {pairs:?}: {}", r.text());
    (r.text(), r.index())
}

/// Deletes `/v1/keys/<key>` with a raw request; returns the response body and index.
#[track_caller]
fn raw_delete(node: &Node, key: &str) -> (String, u64) {
    let r = node.delete(&format!("/v1/keys/{key}"));
    assert_eq!(r.status, 200, "DELETE /v1/keys/{key}: {}", r.text());
    (r.text(), r.index())
}

/// The event a raw history watch on `prefix` returns for `index` (answered at once).
#[track_caller]
fn raw_watch_at(node: &Node, prefix: &str, index: u64) -> String {
    let r = node.post_form_at_once(
        &format!("/v1/watch/{prefix}"),
        &[("index", &index.to_string())],
    );
    assert_eq!(
        r.status,
        200,
        "POST /v1/watch/{prefix} index={index}: {}",
        r.text()
    );
    r.text()
}

// ---------------------------------------------------------------------------------------------
// Long-running etcdctl processes
// ---------------------------------------------------------------------------------------------

/// An etcdctl process running in the background; killed and reaped when dropped.
struct Background {
    child: Option<Child>,
    what: String,
    /// Stdout, when it was not piped.
    out: Option<File>,
    err: File,
}

impl Background {
    /// Spawns `etcdctl args...`; stdout is a pipe (see `take_stdout`) or a file.
    fn spawn(args: &[&str], pipe_stdout: bool) -> Background {
        let err = tempfile::tempfile().expect("stderr file");
        let out = if pipe_stdout {
            None
        } else {
            Some(tempfile::tempfile().expect("stdout file"))
        };
        let stdout = match &out {
            Some(f) => Stdio::from(f.try_clone().expect("clone stdout file")),
            None => Stdio::piped(),
        };
        let child = command(args, &[])
            .stdout(stdout)
            .stderr(err.try_clone().expect("clone stderr file"))
            .spawn()
            .expect("spawn etcdctl");
        Background {
            child: Some(child),
            what: format!("etcdctl {args:?}"),
            out,
            err,
        }
    }

    /// Lines of the piped stdout, read on a thread.
    fn lines(&mut self) -> mpsc::Receiver<String> {
        let stdout: ChildStdout = self
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout is piped and not taken yet");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }

    fn stderr(&mut self) -> String {
        read_all(&mut self.err)
    }

    fn stdout(&mut self) -> String {
        self.out.as_mut().map(read_all).unwrap_or_default()
    }

    /// Waits at most `timeout` for the process to exit.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("process already reaped");
        wait_child(child, timeout)
    }

    /// Panics (with stdout and stderr) if the process has exited.
    #[track_caller]
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("process already reaped");
        if let Ok(Some(status)) = child.try_wait() {
            let (stdout, stderr) = (self.stdout(), self.stderr());
            panic!(
                "{} exited unexpectedly ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                self.what
            );
        }
    }

    /// Waits (within `timeout`) for the process to exit by itself; its outcome.
    #[track_caller]
    fn finish(mut self, timeout: Duration) -> Exit {
        match self.wait(timeout) {
            Some(status) => Exit {
                status,
                stdout: self.stdout(),
                stderr: self.stderr(),
            },
            None => {
                let what = self.what.clone();
                let (stdout, stderr) = (self.stdout(), self.stderr());
                drop(self);
                panic!(
                    "{what} did not exit within {timeout:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
                );
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Receives `n` lines within `timeout` (panics with what arrived, and the stderr, if not).
#[track_caller]
fn receive_lines(
    bg: &mut Background,
    rx: &mpsc::Receiver<String>,
    n: usize,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(e) => {
                let stderr = bg.stderr();
                panic!(
                    "{}: got {} of {n} lines within {timeout:?} ({e}): {got:?}\n--- stderr\n{stderr}",
                    bg.what,
                    got.len()
                );
            }
        }
    }
    got
}

// ---------------------------------------------------------------------------------------------
// Single node: every command, simple output
// ---------------------------------------------------------------------------------------------

#[test]
fn simple_output_of_every_command() {
    let node = Node::start("ctl", &[]);
    let p = node.client_addr();
    let p = p.as_str();

    assert_success(&ctl(p, &["set", "/a", "1"]), "1\n", "set /a 1");
    assert_success(&ctl(p, &["get", "/a"]), "1\n", "get /a");
    assert_success(&ctl(p, &["set", "/a", "2"]), "2\n", "set /a 2 (overwrite)");
    assert_success(&ctl(p, &["get", "/a"]), "2\n", "get /a after overwrite");

    // Test-and-set: success, then failure (the value stays).
    assert_success(
        &ctl(p, &["set", "/a", "3", "--swap-with-value", "2"]),
        "3\n",
        "set /a 3 --swap-with-value 2",
    );
    let exit = ctl(p, &["set", "/a", "4", "--swap-with-value", "2"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(101, PREV_VALUE_MISMATCH, "TestAndSet: 3!=2", index),
        "set /a 4 --swap-with-value 2 (current value 3)",
    );
    assert_success(&ctl(p, &["get", "/a"]), "3\n", "get /a after a failed swap");

    // A value with spaces, form metacharacters and non-ASCII text travels intact.
    let odd = "hello world&x=1+2%20 ü";
    assert_success(
        &ctl(p, &["set", "/sp", odd]),
        &format!("{odd}\n"),
        "set odd value",
    );
    assert_success(
        &ctl(p, &["get", "/sp"]),
        &format!("{odd}\n"),
        "get odd value",
    );

    // Missing key.
    let exit = ctl(p, &["get", "/nope"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/nope", index),
        "get /nope",
    );

    // Directories: get refuses, ls lists.
    assert_success(&ctl(p, &["set", "/d/x", "1"]), "1\n", "set /d/x");
    assert_success(&ctl(p, &["set", "/d/y/z", "2"]), "2\n", "set /d/y/z");
    assert_success(&ctl(p, &["set", "/d/y/w", "3"]), "3\n", "set /d/y/w");
    assert_failure(
        &ctl(p, &["get", "/d"]),
        1,
        "Error:  /d: is a directory\n",
        "get /d (a directory)",
    );
    assert_success(&ctl(p, &["ls", "/d"]), "/d/x\n/d/y\n", "ls /d");
    assert_success(
        &ctl(p, &["ls", "/d", "--recursive"]),
        "/d/x\n/d/y\n/d/y/w\n/d/y/z\n",
        "ls /d --recursive",
    );
    assert_success(&ctl(p, &["ls", "/d/y"]), "/d/y/w\n/d/y/z\n", "ls /d/y");
    // The root listing holds the cluster's own `/_etcd` directory too (spec 5).
    assert_success(&ctl(p, &["ls"]), "/_etcd\n/a\n/d\n/sp\n", "ls (root)");
    assert_success(&ctl(p, &["ls", "/"]), "/_etcd\n/a\n/d\n/sp\n", "ls /");
    let exit = ctl(p, &["ls", "/nodir"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/nodir", index),
        "ls /nodir",
    );

    // rm.
    assert_success(&ctl(p, &["rm", "/a"]), "PrevNode.Value: 3\n", "rm /a");
    let exit = ctl(p, &["get", "/a"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/a", index),
        "get /a after rm",
    );
    let exit = ctl(p, &["rm", "/a"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/a", index),
        "rm /a again",
    );

    // leader, member list.
    assert_success(
        &ctl(p, &["leader"]),
        &format!("{}\n", node.peer_url()),
        "leader",
    );
    assert_success(
        &ctl(p, &["member", "list"]),
        &format!(
            "ctl: peerURLs={} clientURLs={} isLeader=true\n",
            node.peer_url(),
            node.client_url()
        ),
        "member list",
    );

    // TTL (last: its expiry changes the store index).
    assert_success(
        &ctl(p, &["set", "/t", "v", "--ttl", "5"]),
        "v\n",
        "set --ttl 5",
    );
    assert_success(&ctl(p, &["get", "/t"]), "v\n", "get of a TTL key");
    let r = node.get("/v1/keys/t");
    assert_eq!(r.json()["ttl"], 4, "the key got its TTL: {}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Single node: every command, JSON output (exact indexes on a fresh node)
// ---------------------------------------------------------------------------------------------

#[test]
fn json_output_of_every_command() {
    let node = Node::start("ctl", &[]);
    let p = node.client_addr();
    let p = p.as_str();

    assert_success(
        &ctl(p, &["-o", "json", "set", "/a", "1"]),
        "{\"action\":\"SET\",\"key\":\"/a\",\"value\":\"1\",\"newKey\":true,\"index\":3}\n",
        "-o json set /a 1",
    );
    assert_success(
        &ctl(p, &["-o", "json", "get", "/a"]),
        "{\"action\":\"GET\",\"key\":\"/a\",\"value\":\"1\",\"index\":3}\n",
        "-o json get /a",
    );
    assert_success(
        &ctl(
            p,
            &[
                "--output",
                "json",
                "set",
                "/a",
                "2",
                "--swap-with-value",
                "1",
            ],
        ),
        "{\"action\":\"SET\",\"key\":\"/a\",\"prevValue\":\"1\",\"value\":\"2\",\"index\":4}\n",
        "--output json set /a 2 --swap-with-value 1",
    );
    // A failed test-and-set consumes index 5; errors go to stderr in JSON mode too.
    let exit = ctl(
        p,
        &["-o", "json", "set", "/a", "9", "--swap-with-value", "1"],
    );
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(101, PREV_VALUE_MISMATCH, "TestAndSet: 2!=1", index),
        "-o json set /a 9 --swap-with-value 1",
    );
    assert_success(
        &ctl(p, &["-o", "json", "set", "/a", "3"]),
        "{\"action\":\"SET\",\"key\":\"/a\",\"prevValue\":\"2\",\"value\":\"3\",\"index\":6}\n",
        "-o json set /a 3 (overwrite)",
    );
    let exit = ctl(p, &["-o", "json", "get", "/nope"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/nope", index),
        "-o json get /nope",
    );
    assert_success(
        &ctl(p, &["-o", "json", "rm", "/a"]),
        "{\"action\":\"DELETE\",\"key\":\"/a\",\"prevValue\":\"3\",\"index\":7}\n",
        "-o json rm /a",
    );

    assert_success(
        &ctl(p, &["-o", "json", "set", "/d/x", "1"]),
        "{\"action\":\"SET\",\"key\":\"/d/x\",\"value\":\"1\",\"newKey\":true,\"index\":8}\n",
        "-o json set /d/x 1",
    );
    assert_success(
        &ctl(p, &["-o", "json", "set", "/d/y/z", "2"]),
        "{\"action\":\"SET\",\"key\":\"/d/y/z\",\"value\":\"2\",\"newKey\":true,\"index\":9}\n",
        "-o json set /d/y/z 2",
    );
    let x = "{\"action\":\"GET\",\"key\":\"/d/x\",\"value\":\"1\",\"index\":9}";
    let y = "{\"action\":\"GET\",\"key\":\"/d/y\",\"dir\":true,\"index\":9}";
    let z = "{\"action\":\"GET\",\"key\":\"/d/y/z\",\"value\":\"2\",\"index\":9}";
    assert_success(
        &ctl(p, &["-o", "json", "ls", "/d"]),
        &format!("[{x},{y}]\n"),
        "-o json ls /d",
    );
    assert_success(
        &ctl(p, &["-o", "json", "ls", "/d", "--recursive"]),
        &format!("[{x},{y},{z}]\n"),
        "-o json ls /d --recursive",
    );

    assert_success(
        &ctl(p, &["-o", "json", "member", "list"]),
        &format!(
            "[{{\"name\":\"ctl\",\"peerURLs\":\"{}\",\"clientURLs\":\"{}\",\"isLeader\":true}}]\n",
            node.peer_url(),
            node.client_url()
        ),
        "-o json member list",
    );

    // TTL (last: its expiry changes the store index).
    let before = unix_nanos_now();
    let exit = ctl(p, &["-o", "json", "set", "/t", "v", "--ttl", "5"]);
    let after = unix_nanos_now();
    assert_eq!(
        (exit.code(), exit.stderr.as_str()),
        (Some(0), ""),
        "-o json set /t v --ttl 5: {exit:?}"
    );
    assert_eq!(
        normalize_expiration(&exit.stdout),
        format!(
            "{{\"action\":\"SET\",\"key\":\"/t\",\"value\":\"v\",\"newKey\":true,\"expiration\":\"{EXPIRATION_PLACEHOLDER}\",\"ttl\":4,\"index\":10}}\n"
        ),
        "-o json set /t v --ttl 5"
    );
    let expiration = extract_expiration(&exit.stdout).expect("an expiration");
    let at = parse_rfc3339_nanos(&expiration)
        .unwrap_or_else(|| panic!("expiration {expiration:?} is not RFC 3339 with nanoseconds"));
    let five = 5_000_000_000;
    assert!(
        at >= before + five - 1_000_000_000 && at <= after + five + 1_000_000_000,
        "expiration {expiration} is not about 5 s after the request"
    );
}

// ---------------------------------------------------------------------------------------------
// Endpoints: --peers, -C, ETCDCTL_PEERS, failover, connection errors, --debug
// ---------------------------------------------------------------------------------------------

#[test]
fn endpoints_from_flags_and_environment_with_failover() {
    let node = Node::start("ctl", &[]);
    let live = node.client_addr();
    let live_url = node.client_url();
    let dead_ports = free_ports_vec(2, &[node.client_port, node.peer_port]);
    let dead = format!("127.0.0.1:{}", dead_ports[0]);
    let dead2 = format!("127.0.0.1:{}", dead_ports[1]);

    assert_success(
        &run(&["--peers", &live_url, "set", "/p", "1"]),
        "1\n",
        "--peers http://127.0.0.1:P set",
    );
    assert_success(
        &run(&["--peers", &live, "get", "/p"]),
        "1\n",
        "--peers 127.0.0.1:P get",
    );
    assert_success(
        &run(&["-C", &live, "get", "/p"]),
        "1\n",
        "-C 127.0.0.1:P get",
    );
    assert_success(
        &run(&["-C", &live_url, "get", "/p"]),
        "1\n",
        "-C http://127.0.0.1:P get",
    );

    // ETCDCTL_PEERS when the flag is absent; the flag wins when present.
    for peers in [live.as_str(), live_url.as_str()] {
        assert_success(
            &run_env_within(&["get", "/p"], &[("ETCDCTL_PEERS", peers)], CTL_TIMEOUT),
            "1\n",
            &format!("ETCDCTL_PEERS={peers} get"),
        );
    }
    assert_success(
        &run_env_within(
            &["--peers", &live, "get", "/p"],
            &[("ETCDCTL_PEERS", &dead)],
            CTL_TIMEOUT,
        ),
        "1\n",
        "ETCDCTL_PEERS=<dead> --peers <live> get",
    );

    // Failover: the first endpoint refuses connections, the second answers.
    assert_success(
        &run(&["--peers", &format!("{dead},{live}"), "set", "/fo", "x"]),
        "x\n",
        "--peers <dead>,<live> set",
    );
    assert_success(
        &run(&[
            "--peers",
            &format!("http://{dead},{live_url}"),
            "get",
            "/fo",
        ]),
        "x\n",
        "--peers http://<dead>,http://<live> get",
    );
    assert_success(
        &run(&["--peers", &format!("{dead},{dead2},{live}"), "get", "/fo"]),
        "x\n",
        "--peers <dead>,<dead>,<live> get",
    );
    assert_success(
        &run_env_within(
            &["get", "/fo"],
            &[("ETCDCTL_PEERS", &format!("{dead},{live}"))],
            CTL_TIMEOUT,
        ),
        "x\n",
        "ETCDCTL_PEERS=<dead>,<live> get",
    );
    // A server error is an answer, not a dead endpoint: no failover, exit 4.
    let exit = run(&["--peers", &format!("{dead},{live}"), "get", "/nope"]);
    let index = store_index(&node);
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/nope", index),
        "--peers <dead>,<live> get /nope",
    );

    // No endpoint reachable: exit 1, "Error:  ...".
    assert_connection_error(
        &run(&["--peers", &format!("{dead},{dead2}"), "get", "/p"]),
        "--peers <dead>,<dead> get",
    );
    assert_connection_error(
        &run(&["--peers", &dead, "set", "/p", "2"]),
        "--peers <dead> set",
    );
    assert_connection_error(
        &run_env_within(&["get", "/p"], &[("ETCDCTL_PEERS", &dead)], CTL_TIMEOUT),
        "ETCDCTL_PEERS=<dead> get",
    );
    // Nothing was written by the failed set.
    assert_success(&run(&["--peers", &live, "get", "/p"]), "1\n", "get /p");

    // --debug: the same stdout, request/endpoint information on stderr.
    let exit = run(&["--debug", "--peers", &live, "get", "/p"]);
    assert_eq!(
        (exit.code(), exit.stdout.as_str()),
        (Some(0), "1\n"),
        "--debug get: {exit:?}"
    );
    assert!(
        exit.stderr.contains(&node.client_port.to_string()),
        "--debug should print the endpoint (port {}) on stderr, got {:?}",
        node.client_port,
        exit.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Usage errors and completions (no server needed)
// ---------------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_1() {
    let dead = format!("127.0.0.1:{}", free_port());
    let cases: &[&[&str]] = &[
        &["frobnicate"],
        &["frobnicate", "/a"],
        &["set"],
        &["set", "/a"],
        &["get"],
        &["rm"],
        &["watch"],
        &["exec-watch"],
        &["exec-watch", "/k"],
        &["exec-watch", "/k", "--"],
        &["--no-such-flag", "get", "/a"],
        &["get", "/a", "--no-such-flag"],
        &["-o", "yaml", "get", "/a"],
        &["completion"],
        &["member"],
    ];
    for args in cases {
        let mut all = vec!["--peers", dead.as_str()];
        all.extend_from_slice(args);
        assert_usage_error(&run(&all), &format!("{args:?}"));
    }
    // Without any command at all.
    let exit = run(&[]);
    assert_eq!(exit.code(), Some(1), "etcdctl without a command: {exit:?}");
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let exit = run(&["completion", shell]);
        assert!(
            exit.code() == Some(0) && !exit.stdout.trim().is_empty(),
            "etcdctl completion {shell}: expected exit 0 and a script, got {exit:?}"
        );
        if shell == "bash" {
            assert!(
                exit.stdout.contains("etcdctl"),
                "the bash completion script should mention etcdctl: {:?}",
                short(&exit.stdout)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

/// Starts `etcdctl <args>` (a one-event watch on `prefix` with no index) and writes below
/// `prefix` every poll interval until it exits; returns its outcome and every write's
/// (value, response body).
#[track_caller]
fn watch_while_writing(node: &Node, args: &[&str], prefix: &str) -> (Exit, Vec<(String, String)>) {
    let mut bg = Background::spawn(args, false);
    let mut written = Vec::new();
    let deadline = Instant::now() + CTL_TIMEOUT;
    loop {
        let value = format!("w{}", written.len());
        let (body, _) = raw_set(
            node,
            &format!("{prefix}/k{}", written.len() % 2),
            &[("value", &value)],
        );
        written.push((value, body));
        if bg.wait(POLL_INTERVAL).is_some() {
            return (bg.finish(Duration::ZERO), written);
        }
        if Instant::now() >= deadline {
            let (stdout, stderr) = (bg.stdout(), bg.stderr());
            panic!(
                "etcdctl {args:?} did not report any of {} writes below {prefix} within \
                 {CTL_TIMEOUT:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                written.len()
            );
        }
    }
}

#[test]
fn watch_one_event_and_after_index() {
    let node = Node::start("ctl", &[]);
    let p = node.client_addr();
    let p = p.as_str();

    // A watch without an index reports the next write below the key, and exits 0.
    let (exit, written) = watch_while_writing(&node, &["--peers", p, "watch", "/pw"], "pw");
    assert!(
        exit.code() == Some(0)
            && exit.stderr.is_empty()
            && written.iter().any(|(v, _)| exit.stdout == format!("{v}\n")),
        "watch /pw: expected exit 0 with one of the values written ({:?}), got {exit:?}",
        written.iter().map(|(v, _)| v).collect::<Vec<_>>()
    );
    let (exit, written) =
        watch_while_writing(&node, &["--peers", p, "-o", "json", "watch", "/pj"], "pj");
    assert!(
        exit.code() == Some(0)
            && exit.stderr.is_empty()
            && written.iter().any(|(_, body)| exit.stdout == format!("{body}\n")),
        "-o json watch /pj: expected exit 0 with the JSON of one of the writes ({:?}), got {exit:?}",
        written.iter().map(|(_, b)| b).collect::<Vec<_>>()
    );

    // --after-index N: the first change with index > N, from history, at once.
    let (_, one) = raw_set(&node, "h", &[("value", "one")]);
    raw_set(&node, "other", &[("value", "no")]);
    let (two_body, two) = raw_set(&node, "h", &[("value", "two")]);
    let after = one.to_string();
    assert_success(
        &ctl_at_once(p, &["watch", "/h", "--after-index", &after]),
        "two\n",
        "watch /h --after-index <index of one>",
    );
    assert_success(
        &ctl_at_once(p, &["-o", "json", "watch", "/h", "--after-index", &after]),
        &format!("{two_body}\n"),
        "-o json watch /h --after-index <index of one>",
    );
    assert_eq!(two_body, raw_watch_at(&node, "h", one + 1));

    // --after-index of the last change: waits for the next one (no race: the index is fixed).
    let bg = Background::spawn(
        &[
            "--peers",
            p,
            "watch",
            "/h",
            "--after-index",
            &two.to_string(),
        ],
        false,
    );
    raw_set(&node, "hx", &[("value", "not below /h")]);
    let (_, three) = raw_set(&node, "h", &[("value", "three")]);
    assert_success(
        &bg.finish(CTL_TIMEOUT),
        "three\n",
        "watch /h waiting for a set",
    );

    // A delete.
    let (delete_body, _) = raw_delete(&node, "h");
    let after = three.to_string();
    assert_success(
        &ctl_at_once(p, &["watch", "/h", "--after-index", &after]),
        "PrevNode.Value: three\n",
        "watch /h --after-index <before the delete>",
    );
    assert_success(
        &ctl_at_once(p, &["-o", "json", "watch", "/h", "--after-index", &after]),
        &format!("{delete_body}\n"),
        "-o json watch /h --after-index <before the delete>",
    );

    // An expiry (a delete decided by the leader), waited for.
    let (_, set_at) = raw_set(&node, "exp", &[("value", "x"), ("ttl", "1")]);
    let after = set_at.to_string();
    let bg = Background::spawn(
        &[
            "--peers",
            p,
            "-o",
            "json",
            "watch",
            "/exp",
            "--after-index",
            &after,
        ],
        false,
    );
    let exit = bg.finish(CTL_TIMEOUT);
    let expiry = raw_watch_at(&node, "exp", set_at + 1);
    assert!(
        expiry.starts_with("{\"action\":\"DELETE\",\"key\":\"/exp\",\"prevValue\":\"x\""),
        "the expiry event: {expiry}"
    );
    assert_success(&exit, &format!("{expiry}\n"), "-o json watch /exp (expiry)");
    assert_success(
        &ctl_at_once(p, &["watch", "/exp", "--after-index", &after]),
        "PrevNode.Value: x\n",
        "watch /exp --after-index <set> (expiry)",
    );
}

#[test]
fn watch_forever_sees_every_write_in_order() {
    let node = Node::start("ctl", &[]);
    let p = node.client_addr();
    let start = store_index(&node).to_string();
    let mut bg = Background::spawn(
        &[
            "--peers",
            &p,
            "watch",
            "/f",
            "--forever",
            "--after-index",
            &start,
        ],
        true,
    );
    let lines = bg.lines();

    let mut expected = Vec::new();
    // Not below /f (a whole-segment prefix): never reported.
    raw_set(&node, "fx", &[("value", "not below /f")]);
    for i in 0..100 {
        let key = if i % 2 == 0 { "f/a" } else { "f/b/c" };
        let value = format!("val-{i}");
        raw_set(&node, key, &[("value", &value)]);
        expected.push(value);
    }
    raw_delete(&node, "f/b/c");
    expected.push("PrevNode.Value: val-99".to_string());

    let got = receive_lines(&mut bg, &lines, expected.len(), Duration::from_secs(30));
    assert_eq!(got, expected, "watch --forever: every change, in order");
    bg.assert_running();
    // Nothing more arrives (no duplicate) while a later change does.
    raw_set(&node, "f/a", &[("value", "last")]);
    let got = receive_lines(&mut bg, &lines, 1, Duration::from_secs(10));
    assert_eq!(
        got,
        ["last"],
        "watch --forever: the change after the delete"
    );
    bg.assert_running();
}

#[test]
fn exec_watch_runs_the_command_for_every_change() {
    let node = Node::start("ctl", &[]);
    let p = node.client_addr();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("events.txt");
    let script = format!(
        "echo \"$ETCD_WATCH_ACTION $ETCD_WATCH_KEY $ETCD_WATCH_VALUE $ETCD_WATCH_MODIFIED_INDEX\" >> '{}'",
        file.display()
    );
    let start = store_index(&node).to_string();
    let mut bg = Background::spawn(
        &[
            "--peers",
            &p,
            "exec-watch",
            "/ew",
            "--after-index",
            &start,
            "--",
            "sh",
            "-c",
            &script,
        ],
        false,
    );
    raw_set(&node, "ewx", &[("value", "not below /ew")]);
    let (_, set_at) = raw_set(&node, "ew/a", &[("value", "hello world")]);
    let (_, delete_at) = raw_delete(&node, "ew/a");
    let expected = format!("set /ew/a hello world {set_at}\ndelete /ew/a  {delete_at}\n");

    let deadline = Instant::now() + CTL_TIMEOUT;
    loop {
        bg.assert_running();
        let content = fs::read_to_string(&file).unwrap_or_default();
        if content.lines().count() >= 2 {
            assert_eq!(content, expected, "lines written by the exec-watch command");
            break;
        }
        if Instant::now() >= deadline {
            let stderr = bg.stderr();
            panic!(
                "exec-watch: the command did not run for both changes within {CTL_TIMEOUT:?}; \
                 file: {content:?}\n--- stderr\n{stderr}"
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
    // It keeps watching.
    let (_, again) = raw_set(&node, "ew/b", &[("value", "v3")]);
    let expected = format!("{expected}set /ew/b v3 {again}\n");
    poll_until(CTL_TIMEOUT, "exec-watch to run for a third change", || {
        bg.assert_running();
        let content = fs::read_to_string(&file).unwrap_or_default();
        (content.lines().count() >= 3).then_some(content)
    });
    assert_eq!(fs::read_to_string(&file).expect("events file"), expected);
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

#[test]
fn tls_with_client_certificates() {
    let flags = [
        format!("-clientCAFile={}", fixture_arg("ca.crt")),
        format!("-clientCert={}", fixture_arg("server.crt")),
        format!("-clientKey={}", fixture_arg("server.key.insecure")),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut node = Node::prepare("tls", &flags);
    node.launch();
    let tls = TlsClient::new(
        &fixture("ca.crt"),
        Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
    )
    .expect("TLS client");
    let peer = node.peer_url();
    node.wait_ready_via(&Transport::Tls(tls), &peer);

    let https = format!("https://127.0.0.1:{}", node.client_port);
    let bare = node.client_addr();
    let (ca, cert, key) = (
        fixture_arg("ca.crt"),
        fixture_arg("client.crt"),
        fixture_arg("client.key.insecure"),
    );
    let with_cert = |peers: &str, args: &[&str]| {
        let mut all = vec![
            "--ca-file",
            ca.as_str(),
            "--cert-file",
            cert.as_str(),
            "--key-file",
            key.as_str(),
            "--peers",
            peers,
        ];
        all.extend_from_slice(args);
        run(&all)
    };

    assert_success(
        &with_cert(&https, &["set", "/t", "v"]),
        "v\n",
        "TLS set (https:// endpoint)",
    );
    assert_success(
        &with_cert(&bare, &["get", "/t"]),
        "v\n",
        "TLS get (scheme-less endpoint becomes https://)",
    );
    assert_success(
        &with_cert(&https, &["-o", "json", "get", "/t"]),
        "{\"action\":\"GET\",\"key\":\"/t\",\"value\":\"v\",\"index\":3}\n",
        "TLS -o json get",
    );
    let exit = with_cert(&https, &["get", "/nope"]);
    let index = https_request(
        &https,
        "GET",
        "/v1/keys/",
        None,
        &fixture("ca.crt"),
        Some((&fixture("client.crt"), &fixture("client.key.insecure"))),
    )
    .expect("GET over TLS")
    .header("x-etcd-index")
    .expect("X-Etcd-Index")
    .parse::<u64>()
    .expect("numeric X-Etcd-Index");
    assert_failure(
        &exit,
        4,
        &server_error(100, KEY_NOT_FOUND, "/nope", index),
        "TLS get /nope",
    );

    // Refused: no client certificate; a certificate of another CA; not trusting the server.
    assert_connection_error(
        &run(&["--ca-file", &ca, "--peers", &https, "get", "/t"]),
        "TLS get without a client certificate",
    );
    let (cert2, key2) = (
        fixture_arg("client2.crt"),
        fixture_arg("client2.key.insecure"),
    );
    assert_connection_error(
        &run(&[
            "--ca-file",
            &ca,
            "--cert-file",
            &cert2,
            "--key-file",
            &key2,
            "--peers",
            &https,
            "get",
            "/t",
        ]),
        "TLS get with a client certificate of another CA",
    );
    assert_connection_error(
        &run(&[
            "--ca-file",
            &fixture_arg("ca2.crt"),
            "--cert-file",
            &cert,
            "--key-file",
            &key,
            "--peers",
            &https,
            "get",
            "/t",
        ]),
        "TLS get trusting another CA",
    );
}

// ---------------------------------------------------------------------------------------------
// Three-member cluster
// ---------------------------------------------------------------------------------------------

/// The expected `member list` (simple and JSON) with `leader` as the leader.
fn member_list(c: &Cluster, leader: usize) -> (String, String) {
    let mut simple = String::new();
    let mut json = Vec::new();
    for i in 0..3 {
        let m = c.member(i);
        simple.push_str(&format!(
            "{}: peerURLs={} clientURLs={} isLeader={}\n",
            m.name,
            m.peer_url(),
            m.client_url(),
            i == leader
        ));
        json.push(format!(
            "{{\"name\":\"{}\",\"peerURLs\":\"{}\",\"clientURLs\":\"{}\",\"isLeader\":{}}}",
            m.name,
            m.peer_url(),
            m.client_url(),
            i == leader
        ));
    }
    (simple, format!("[{}]\n", json.join(",")))
}

#[test]
fn three_member_cluster() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let addr: Vec<String> = (0..3).map(|i| c.member(i).client_addr()).collect();

    // The first client write of a three-member cluster is index 5 (spec 4).
    assert_success(
        &ctl(&addr[0], &["-o", "json", "set", "/cl", "v1"]),
        "{\"action\":\"SET\",\"key\":\"/cl\",\"value\":\"v1\",\"newKey\":true,\"index\":5}\n",
        "-o json set /cl v1 via node1",
    );
    // Read through another member once it has applied the write.
    poll_until(
        CONVERGE_TIMEOUT,
        "node3 to show /cl through etcdctl",
        || {
            let exit = ctl(&addr[2], &["get", "/cl"]);
            assert!(
                matches!(exit.code(), Some(0) | Some(4)),
                "get /cl via node3: {exit:?}"
            );
            (exit.code() == Some(0)).then_some(exit)
        },
    );
    assert_success(&ctl(&addr[2], &["get", "/cl"]), "v1\n", "get /cl via node3");
    assert_success(
        &ctl(&addr[1], &["-o", "json", "get", "/cl"]),
        "{\"action\":\"GET\",\"key\":\"/cl\",\"value\":\"v1\",\"index\":5}\n",
        "-o json get /cl via node2",
    );

    // A write through a follower, read through the leader.
    let leader = c.leader();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    assert_success(
        &ctl(&addr[follower], &["set", "/cl", "v2"]),
        "v2\n",
        "set /cl v2 via a follower",
    );
    assert_success(
        &ctl(&addr[leader], &["get", "/cl"]),
        "v2\n",
        "get via the leader",
    );

    // Failover across members.
    let dead = format!("127.0.0.1:{}", free_ports_vec(1, &c.used_ports())[0]);
    assert_success(
        &ctl(&format!("{dead},{}", addr[2]), &["get", "/cl"]),
        "v2\n",
        "--peers <dead>,<node3> get",
    );

    // member list and leader through every member (retried if the leader changed meanwhile).
    for (i, a) in addr.iter().enumerate() {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let leader = c.leader();
            let simple = ctl(a, &["member", "list"]);
            let json = ctl(a, &["-o", "json", "member", "list"]);
            let leader_out = ctl(a, &["leader"]);
            if c.leader() != leader && attempts < 3 {
                continue;
            }
            let (expected_simple, expected_json) = member_list(&c, leader);
            let what = format!("via node{}", i + 1);
            assert_success(&simple, &expected_simple, &format!("member list {what}"));
            assert_eq!(
                simple.stdout.matches("isLeader=true").count(),
                1,
                "exactly one leader"
            );
            assert_success(
                &json,
                &expected_json,
                &format!("-o json member list {what}"),
            );
            assert_success(
                &leader_out,
                &format!("{}\n", c.member(leader).peer_url()),
                &format!("leader {what}"),
            );
            break;
        }
    }
}
