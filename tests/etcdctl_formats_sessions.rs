//! The long-running etcdctl commands in every output format, against Debian's etcdctl 3.4 as
//! the oracle: the same command through both, against the same etcd-rs node, must print the
//! same bytes and end with the same code.
//!
//! - `watch -i`: the watches of lines on standard input (each line's own flags; the command
//!   line's do not apply), with a command to run per event, `progress`, what etcdctl says of a
//!   line it cannot take (and of those that end it), and the end of standard input (exit 3),
//!   in `simple`, `json`, `fields`, `table` and `protobuf`.
//! - `lock NAME` and `elect NAME PROPOSAL` (each printing the key it holds as `get` prints it),
//!   then SIGTERM, in every format, each run on a lock or election of its own, compared with
//!   what differs between two holders masked (the lease in the key, revisions, the lease id;
//!   protobuf answers decoded); `lock NAME -- COMMAND` with a failing command.
//! - `elect -l NAME`: both etcdctls observing the same election at once, as one leader
//!   resigns and the next leads, print the same bytes in every format.
//!
//! The tests need etcdctl 3.x on the PATH. Without it they say so and pass, unless
//! `ETCD_REQUIRE_ETCDCTL` is set (`.ci/run` installs the package and sets it).

mod support;

use std::io::{Read as _, Write as _};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use etcd_v3proto::etcdserverpb::RangeResponse;
use prost::Message as _;
use support::*;

const FORMATS: [&str; 5] = ["simple", "json", "fields", "table", "protobuf"];
/// The bound on anything expected to happen.
const WITHIN: Duration = Duration::from_secs(15);
/// How long Debian's etcdctl's output must stay still to be taken as all it prints for now.
const STILL: Duration = Duration::from_millis(500);

const THEIRS: &str = "etcdctl";

fn ours() -> &'static str {
    env!("CARGO_BIN_EXE_etcdctl")
}

/// How an etcdctl run ended: exit code (`None`: by a signal), stdout bytes, stderr without Go's
/// client retry logs.
#[derive(PartialEq, Eq)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl std::fmt::Debug for Run {
    /// Standard output as text (its bytes escaped), to read where two runs differ.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("code", &self.code)
            .field("stdout", &self.stdout.escape_ascii().to_string())
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// A running etcdctl: standard input held open, its output collected as it comes; killed if
/// dropped still running.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<Option<i32>>,
}

impl Session {
    fn start(program: &str, ep: &str, args: &[&str]) -> Session {
        let mut child = etcdctl3_command(program, ep)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        let stdin = child.stdin.take();
        let collect = |mut pipe: Box<dyn std::io::Read + Send>| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let b = buf.clone();
            let reader = std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    b.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
            (buf, reader)
        };
        let (out, r1) = collect(Box::new(child.stdout.take().unwrap()));
        let (err, r2) = collect(Box::new(child.stderr.take().unwrap()));
        Session {
            child,
            stdin,
            out,
            err,
            readers: vec![r1, r2],
            exited: None,
        }
    }

    /// `text` on its standard input (nothing if it is gone).
    fn send(&mut self, text: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(text.as_bytes());
            let _ = stdin.flush();
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Whether it has exited (remembering its code).
    fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status.code());
            }
        }
        self.exited.is_some()
    }

    /// How many bytes it printed so far (both streams).
    fn printed(&self) -> usize {
        self.out.lock().unwrap().len() + self.err.lock().unwrap().len()
    }

    /// Waits until `done(stdout)` holds, or it exited; panics after [`WITHIN`].
    #[track_caller]
    fn wait_for(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + WITHIN;
        loop {
            if done(&self.out.lock().unwrap()) || self.has_exited() {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {:?}", self.shown());
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until it printed more than `before` bytes, and then nothing more for [`STILL`]
    /// (or it exited); gives up after [`WITHIN`] (the comparison that follows then fails).
    fn settle(&mut self, before: usize) -> usize {
        let deadline = Instant::now() + WITHIN;
        let (mut seen, mut since) = (self.printed(), Instant::now());
        while Instant::now() < deadline && !self.has_exited() {
            std::thread::sleep(POLL_INTERVAL);
            let now = self.printed();
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if now > before && since.elapsed() >= STILL {
                break;
            }
        }
        self.printed()
    }

    /// Waits until it printed at least `len` bytes (or it exited), within a bound.
    fn reach(&mut self, len: usize) {
        let deadline = Instant::now() + WITHIN;
        while self.printed() < len && !self.has_exited() && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn shown(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.lock().unwrap()),
            String::from_utf8_lossy(&self.err.lock().unwrap())
        )
    }

    /// Sends `signal` if it still runs, then waits for its end (bounded) and what it printed.
    #[track_caller]
    fn finish(mut self, signal: Option<libc::c_int>) -> Run {
        if let Some(signal) = signal.filter(|_| !self.has_exited()) {
            send_signal(&self.child, signal);
        }
        self.close_stdin();
        let code = match self.exited {
            Some(code) => code,
            None => {
                let status = wait_child(&mut self.child, WITHIN);
                status
                    .unwrap_or_else(|| panic!("etcdctl went on: {}", self.shown()))
                    .code()
            }
        };
        self.exited = Some(code);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(POLL_INTERVAL);
        }
        let stderr = String::from_utf8_lossy(&self.err.lock().unwrap())
            .lines()
            .filter(|l| !l.starts_with("{\"level\":\"warn\""))
            .map(|l| format!("{l}\n"))
            .collect();
        let stdout = self.out.lock().unwrap().clone();
        Run {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `etcdctl ARGS` with `input` on its standard input, run to its end (bounded).
#[track_caller]
fn run(program: &str, ep: &str, args: &[&str], input: &str) -> Run {
    let mut s = Session::start(program, ep, args);
    s.send(input);
    s.finish(None)
}

#[track_caller]
fn ok(ep: &str, args: &[&str]) -> String {
    let r = run(ours(), ep, args, "");
    assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
    String::from_utf8(r.stdout).unwrap()
}

/// A whole `get`-shaped answer of one pair (`count` 1 when `counted`) in `format`.
fn one_pair_printed(format: &str, out: &[u8], counted: bool) -> bool {
    match format {
        "simple" => out.iter().filter(|&&b| b == b'\n').count() >= 2,
        "json" => out.ends_with(b"\n"),
        "fields" => {
            let text = String::from_utf8_lossy(out);
            text.contains("\"Count\" : ") && text.ends_with('\n')
        }
        "protobuf" => {
            RangeResponse::decode(out).is_ok_and(|r| r.kvs.len() == 1 && (r.count == 1 || !counted))
        }
        _ => false,
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (JSON's bytes in etcdctl's answers).
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut n, mut bits) = (0u32, 0);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let v = BASE64.iter().position(|&b| b == c).expect("base64") as u32;
        (n, bits) = (n << 6 | v, bits + 6);
        if bits >= 8 {
            bits -= 8;
            out.push((n >> bits) as u8);
        }
    }
    out
}

/// `text` with the digits after each of `labels` replaced by `N`.
fn mask_numbers(text: &str, labels: &[&str]) -> String {
    labels.iter().fold(text.to_string(), |t, label| {
        mask_after(&t, label, |c| c.is_ascii_digit())
    })
}

/// A holder's key `NAME/LEASE` (the lease in hex) as `NAME/L`, for the holder's `name`.
fn mask_key(key: &[u8], name: &str) -> Vec<u8> {
    let key = String::from_utf8_lossy(key);
    match key.strip_prefix(&format!("{name}/")) {
        Some(lease) if lease.chars().all(|c| c.is_ascii_hexdigit()) => b"NAME/L".to_vec(),
        _ => key.as_bytes().to_vec(),
    }
}

/// What a holder of `name` printed (a `get` answer of its key) with what differs between two
/// holders masked: the name, the lease in the key, revisions and the lease id.
fn holder_printed(format: &str, r: &Run, name: &str) -> String {
    let shown = |stdout: String| format!("exit {:?}\n{stdout}{}", r.code, r.stderr);
    if format == "protobuf" && !r.stdout.is_empty() {
        let mut a = RangeResponse::decode(&r.stdout[..]).expect("a RangeResponse");
        if let Some(h) = a.header.as_mut() {
            h.revision = 0;
        }
        for kv in &mut a.kvs {
            kv.key = mask_key(&kv.key, name).into();
            (kv.create_revision, kv.mod_revision, kv.lease) = (0, 0, 0);
        }
        return shown(format!("{a:?}"));
    }
    let mut text = String::from_utf8_lossy(&r.stdout).into_owned();
    // JSON's key is base64: shown decoded and masked.
    while let Some(at) = text.find("\"key\":\"") {
        let start = at + "\"key\":\"".len();
        let end = start + text[start..].find('"').expect("the key's end");
        let key = base64_decode(&text[start..end]);
        let masked = String::from_utf8_lossy(&mask_key(&key, name)).into_owned();
        text = format!("{}\"key\":<{masked}>{}", &text[..at], &text[end + 1..]);
    }
    let text = mask_after(&text, &format!("{name}/"), |c| c.is_ascii_hexdigit());
    let text = text.replace(name, "NAME");
    shown(mask_numbers(
        &text,
        &[
            "\"revision\":",
            "\"create_revision\":",
            "\"mod_revision\":",
            "\"lease\":",
            "\"Revision\" : ",
            "\"CreateRevision\" : ",
            "\"ModRevision\" : ",
            "\"Lease\" : ",
        ],
    ))
}

#[test]
fn base64_is_standard() {
    for (bytes, text) in [
        (&b"p1"[..], "cDE="),
        (b"abc", "YWJj"),
        (b"lock/7f", "bG9jay83Zg=="),
    ] {
        assert_eq!(base64_encode(bytes), text);
        assert_eq!(base64_decode(text), bytes);
    }
}

#[test]
fn holders_of_a_lock_or_an_election_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatholders", &[]);
    let ep = node.client_addr();
    let mut compared = 0;
    for format in FORMATS {
        for command in ["lock", "elect"] {
            let mut runs = Vec::new();
            // Each on a lock or election of its own: etcdctl 3.4 exits on a format it cannot
            // print without letting go (the key stays until its session's lease expires).
            for (i, program) in [THEIRS, ours()].into_iter().enumerate() {
                let name = format!("{command}-{format}-{i}");
                let mut args = vec!["-w", format, command, &name];
                if command == "elect" {
                    args.push("proposal");
                }
                let mut holder = Session::start(program, &ep, &args);
                holder.wait_for(&format!("{program} {args:?} holds"), |out| {
                    one_pair_printed(format, out, true)
                });
                let r = holder.finish(Some(libc::SIGTERM));
                if format != "table" {
                    assert_eq!(r.code, Some(0), "{program} {args:?} lets go on SIGTERM");
                    let left = ok(&ep, &["get", &format!("{name}/"), "--prefix"]);
                    assert_eq!(left, "", "{program} {args:?} left its key");
                }
                runs.push((name, r));
            }
            let ((a_name, a), (b_name, b)) = (&runs[0], &runs[1]);
            assert_eq!(
                holder_printed(format, b, b_name),
                holder_printed(format, a, a_name),
                "{command} -w {format}"
            );
            compared += 1;
        }
    }
    // A command run under the lock: its output, and its failure as etcdctl's.
    for format in ["simple", "json"] {
        let mut runs = Vec::new();
        for (i, program) in [THEIRS, ours()].into_iter().enumerate() {
            let name = format!("run-{i}");
            let script = "echo \"${ETCD_LOCK_KEY%/*}\"; exit 3";
            let args = ["-w", format, "lock", &name, "--", "sh", "-c", script];
            runs.push((name.clone(), run(program, &ep, &args, "")));
        }
        let ((a_name, a), (b_name, b)) = (&runs[0], &runs[1]);
        assert_eq!(
            holder_printed(format, b, b_name),
            holder_printed(format, a, a_name),
            "lock -w {format} -- sh"
        );
        assert_eq!(a.code, Some(1), "{a:?}");
        compared += 1;
    }
    assert_eq!(compared, FORMATS.len() * 2 + 2);
}

/// Whether an observer's output shows a leader proposing `value`, in `format`.
fn shows(format: &str, out: &[u8], value: &str) -> bool {
    let text = String::from_utf8_lossy(out);
    match format {
        "simple" => text.contains(&format!("\n{value}\n")),
        "json" => text.contains(&base64_encode(value.as_bytes())),
        "fields" => text.contains(&format!("\"Value\" : \"{value}\"\n\"Lease\"")),
        _ => out.windows(value.len()).any(|w| w == value.as_bytes()),
    }
}

#[test]
fn observers_of_an_election_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatobserve", &[]);
    let ep = node.client_addr();
    for format in FORMATS {
        let name = format!("observed-{format}");
        let observe = ["-w", format, "elect", "-l", &name];
        let mut observers = [
            Session::start(THEIRS, &ep, &observe),
            Session::start(ours(), &ep, &observe),
        ];
        let mut first = Session::start(ours(), &ep, &["elect", &name, "p1"]);
        first.wait_for("the first leads", |out| out.ends_with(b"p1\n"));
        for o in &mut observers {
            o.wait_for("the observers see the first", |out| {
                shows(format, out, "p1")
            });
        }
        // The next candidate waits behind the first (its key is there), then leads once the
        // first resigns.
        let mut second = Session::start(ours(), &ep, &["elect", &name, "p2"]);
        poll_until(WITHIN, "the second candidate waits", || {
            let keys = ok(
                &ep,
                &["get", &format!("{name}/"), "--prefix", "--keys-only"],
            );
            (keys.lines().filter(|l| !l.is_empty()).count() == 2).then_some(())
        });
        assert_eq!(first.finish(Some(libc::SIGTERM)).code, Some(0));
        second.wait_for("the second leads", |out| out.ends_with(b"p2\n"));
        for o in &mut observers {
            o.wait_for("the observers see the second", |out| {
                shows(format, out, "p2")
            });
        }
        let [theirs, mine] = observers;
        let (a, b) = (
            theirs.finish(Some(libc::SIGTERM)),
            mine.finish(Some(libc::SIGTERM)),
        );
        assert_eq!(b, a, "elect -l -w {format}");
        assert_eq!(second.finish(Some(libc::SIGTERM)).code, Some(0));
    }
}

#[test]
fn interactive_watches_print_alike_in_every_format() {
    if !have_etcdctl() {
        return;
    }
    let node = Node::start("formatinteractive", &[]);
    let ep = node.client_addr();
    for (k, v) in [("w/a", "1"), ("w/b", "two words"), ("w/a", "\"3\"")] {
        ok(&ep, &["put", k, v]);
    }
    ok(&ep, &["del", "w/b"]);
    // Each step's lines, written at once; Debian's etcdctl's output after each is the oracle
    // of how much ours prints before the next.
    let steps = [
        // A watch replaying the history (the command line's --prefix and --rev do not apply
        // to a line: its own flags do).
        "watch w/ --prefix --rev 1 --prev-kv\n",
        // What etcdctl cannot take, and a progress notification on the one watch open.
        "\nget w/a\nwatch\nwatch w/a w/b --prefix\nwatch -- echo x\nprogress\n",
        // A watch running a command per event, and one from now on (quiet).
        "watch w/a --rev=2 -- printenv ETCD_WATCH_KEY ETCD_WATCH_VALUE ETCD_WATCH_REVISION \
         ETCD_WATCH_EVENT_TYPE\nwatch 'w/a' --rev=0x2 extra\nwatch w/a\n",
    ];
    for format in FORMATS {
        let args = ["watch", "-i", "--prefix", "--rev", "3", "-w", format];
        let mut theirs = Session::start(THEIRS, &ep, &args);
        let mut reached = Vec::new();
        for step in steps {
            let before = theirs.printed();
            theirs.send(step);
            reached.push(theirs.settle(before));
        }
        let mut mine = Session::start(ours(), &ep, &args);
        for (step, len) in steps.iter().zip(&reached) {
            mine.send(step);
            mine.reach(*len);
        }
        // The end of standard input ends both (exit 3).
        let (a, b) = (theirs.finish(None), mine.finish(None));
        assert_eq!(b, a, "watch -i -w {format}");
        let shape = (a.code, a.stdout.is_empty());
        let refused = format == "table";
        assert_eq!(shape, (Some(if refused { 4 } else { 3 }), refused), "{a:?}");
    }
    // Lines that end the command, and a last line without its newline (not read).
    let ending = [
        "watch w/a --rev=x\n",
        "watch w/a --rev\n",
        "watch w/a --bogus\n",
        "watch w/a -x\n",
        "watch w/a --prefix=maybe\n",
        "watch --prefix\n",
        "watch w/a --\n",
        "watch \"w/\\q\"\n",
        "watch w/a --rev=1",
    ];
    for input in ending {
        let args = ["watch", "-i"];
        let (a, b) = (
            run(THEIRS, &ep, &args, input),
            run(ours(), &ep, &args, input),
        );
        assert_eq!(b, a, "watch -i with {input:?}");
        assert_ne!(a.code, Some(0), "{a:?}");
    }
}
