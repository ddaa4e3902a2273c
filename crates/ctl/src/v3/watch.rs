//! `etcdctl watch`, as etcd 3.4's etcdctl runs it.
//!
//! - `watch [flags] KEY [RANGE_END] [-- COMMAND ARGS…]`: etcdctl's words (a third and later
//!   are ignored, as etcdctl ignores them), `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END`
//!   in place of the key and range end, and etcdctl's errors (exit 128) for what does not fit.
//!   The watch runs until the server ends it, which is a failure (`watch is canceled by the
//!   server`, exit 5).
//! - `watch -i`: one command per line of standard input: `watch` with a line's own words and
//!   flags (the command line's flags do not apply: etcdctl 3.4 resets them for each line),
//!   `progress`, or what etcdctl says of anything else. Each watch prints as it goes, beside
//!   the others; the end of standard input ends it (`Error reading watch request line: EOF`,
//!   exit 3). The lines' watches share one stream, as clientv3's watches of one context do;
//!   `progress` asks the member for a progress notification on it, which every open watch
//!   prints (`progress notify: REV`, then the notification in the format) once the member
//!   has sent it every event up to that revision.
//! - Each response prints as etcdctl's printers print a `clientv3.WatchResponse` (a response
//!   the server sends without events shows `"Events":[]` in JSON; a watch the server refused
//!   at creation, `watch was canceled (REASON)` then an empty header and `"Events":null`);
//!   with a command, the command then runs once per event with `ETCD_WATCH_REVISION`,
//!   `ETCD_WATCH_EVENT_TYPE`, `ETCD_WATCH_KEY` and `ETCD_WATCH_VALUE` set (Go-quoted), its
//!   output after the response's; if it fails, etcdctl's `command [...] error (...)` and
//!   exit 1.

use std::io::{BufRead as _, Write as _};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use etcd_client::v3::proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use etcd_client::v3::{Client, WatchRequests, WatchStream};
use prost::Message as _;
use tokio::sync::mpsc;

use super::{
    client, go_quote, gotext, header_fields, header_json, kv_fields, kv_fields_named, kv_json,
    simple_kv, unsupported, Cli, Cmd, Failure, Format, EXIT_ERROR,
};

/// etcdctl's `ExitInvalidInput`.
const EXIT_INVALID_INPUT: u8 = 3;
/// etcdctl's `ExitInterrupted`.
const EXIT_INTERRUPTED: u8 = 5;
/// etcdctl's `ExitBadArgs`.
const EXIT_BAD_ARGS: u8 = 128;

const BAD_ARGS_NUM: &str = "bad number of arguments";
const CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const NOTHING_AFTER_SEPARATOR: &str =
    "bad number of arguments (found separator --, but no commands)";
/// etcd's error for a watch from a compacted revision (`v3rpc.ErrCompacted`).
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

/// A watch's flags: the command line's, or an interactive line's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    prefix: bool,
    rev: i64,
    prev_kv: bool,
}

/// `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END` (empty when unset).
struct Env {
    key: String,
    range_end: String,
}

impl Env {
    fn read() -> Env {
        let var = |name| std::env::var(name).unwrap_or_default();
        Env {
            key: var("ETCDCTL_WATCH_KEY"),
            range_end: var("ETCDCTL_WATCH_RANGE_END"),
        }
    }

    /// `words` after the key and range end of the environment, if set.
    fn before(&self, words: Vec<String>) -> Vec<String> {
        if self.key.is_empty() {
            return words;
        }
        let mut all = vec![self.key.clone()];
        if !self.range_end.is_empty() {
            all.push(self.range_end.clone());
        }
        all.extend(words);
        all
    }
}

fn bad_args(message: &str) -> Failure {
    Failure {
        message: message.to_string(),
        code: EXIT_BAD_ARGS,
    }
}

/// The watch etcdctl asks for with these words (key, range end; any more are ignored).
fn request(words: &[String], flags: Flags) -> Result<WatchCreateRequest, String> {
    let Some(key) = words.first() else {
        return Err(BAD_ARGS_NUM.to_string());
    };
    let mut key = key.as_bytes().to_vec();
    let mut range_end = Vec::new();
    if let [_, end] = words {
        if flags.prefix {
            return Err("`range_end` and `--prefix` are mutually exclusive".to_string());
        }
        range_end = end.as_bytes().to_vec();
    }
    if flags.prefix {
        if key.is_empty() {
            // Every key: clientv3's WithPrefix of the empty key.
            (key, range_end) = (vec![0], vec![0]);
        } else {
            range_end = etcd_client::v3::prefix_end(&key);
        }
    }
    Ok(WatchCreateRequest {
        key: key.into(),
        range_end: range_end.into(),
        start_revision: flags.rev,
        prev_kv: flags.prev_kv,
        ..Default::default()
    })
}

/// The watch's words and its command, of the command line: `positional` is every word
/// (the command's after the key's), `raw` the process's arguments after `watch` (where
/// etcdctl looks for `--`).
fn command_line(
    positional: Vec<String>,
    raw: &[String],
    env: &Env,
) -> Result<(Vec<String>, Vec<String>), Failure> {
    let separator = raw.iter().position(|a| a == "--");
    if separator.is_some_and(|i| i + 1 == raw.len()) {
        return Err(bad_args(NOTHING_AFTER_SEPARATOR));
    }
    if separator.is_none() && raw.is_empty() && env.key.is_empty() {
        return Err(bad_args(BAD_ARGS_NUM));
    }
    let exec: Vec<String> = separator.map_or_else(Vec::new, |i| raw[i + 1..].to_vec());
    // With the key from the environment, no key may be given.
    let keys = positional.len() - exec.len().min(positional.len());
    if !env.key.is_empty() && keys > 0 {
        return Err(bad_args(CONFLICT_ENV));
    }
    let words = without_command(env.before(positional), &exec);
    Ok((words, exec))
}

/// etcdctl's cut of the command off the words: before the last word equal to its first.
fn without_command(mut words: Vec<String>, exec: &[String]) -> Vec<String> {
    if let Some(first) = exec.first() {
        let end = words.iter().rposition(|w| w == first).unwrap_or(0);
        words.truncate(end);
    }
    words
}

/// What one line of `watch -i` asks.
#[derive(Debug, PartialEq)]
enum Line {
    /// Said on standard error; the next line is read.
    Complaint(String),
    Progress,
    Watch {
        words: Vec<String>,
        flags: Flags,
        exec: Vec<String>,
    },
}

/// One line of `watch -i` as etcdctl reads it (a failure ends the command).
fn interactive_line(line: &str, env: &Env) -> Result<Line, Failure> {
    let args = gotext::argify(line)?;
    let Some(command) = args.first() else {
        return Ok(Line::Complaint(format!(
            "Invalid command: {line} (watch and progress supported)"
        )));
    };
    match command.as_str() {
        "watch" => {
            if args.len() < 2 && env.key.is_empty() {
                return Ok(Line::Complaint(format!(
                    "Invalid command {line} (command type or key is not provided)"
                )));
            }
            let rest = &args[1..];
            let separator = rest.iter().position(|a| a == "--");
            if separator.is_some_and(|i| i + 1 == rest.len()) {
                return Err(bad_args(NOTHING_AFTER_SEPARATOR));
            }
            let (flags, positional) = parse_flags(rest).map_err(|e| bad_args(&e))?;
            if separator.is_none() && env.key.is_empty() && positional.is_empty() {
                return Err(bad_args(BAD_ARGS_NUM));
            }
            if separator.is_none() && !positional.is_empty() && !env.key.is_empty() {
                return Err(bad_args(CONFLICT_ENV));
            }
            let exec = separator.map_or_else(Vec::new, |i| rest[i + 1..].to_vec());
            let words = without_command(env.before(positional), &exec);
            Ok(Line::Watch { words, flags, exec })
        }
        "progress" => Ok(Line::Progress),
        _ => Ok(Line::Complaint(format!(
            "Invalid command {line} (only support watch)"
        ))),
    }
}

/// The watch command's flags in a line's words, as pflag parses them (flags anywhere, `--`
/// ending them): the flags and the other words, with pflag's error texts.
fn parse_flags(args: &[String]) -> Result<(Flags, Vec<String>), String> {
    const HELP: &str = "pflag: help requested";
    let invalid = |value: &str, flag: &str, e: String| {
        format!(
            "invalid argument {} for {} flag: {e}",
            go_quote(value.as_bytes()),
            go_quote(flag.as_bytes())
        )
    };
    let boolean =
        |value: &str, flag: &str| gotext::parse_bool(value).map_err(|e| invalid(value, flag, e));
    let mut flags = Flags::default();
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s.len() < 2 || !s.starts_with('-') {
            words.push(s.clone());
            continue;
        }
        if let Some(long) = s.strip_prefix("--") {
            if long.is_empty() {
                words.extend_from_slice(&args[i..]);
                break;
            }
            if long.starts_with('-') || long.starts_with('=') {
                return Err(format!("bad flag syntax: {s}"));
            }
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let flag = format!("--{name}");
            match name {
                "prefix" => flags.prefix = boolean(value.unwrap_or("true"), &flag)?,
                "prev-kv" => flags.prev_kv = boolean(value.unwrap_or("true"), &flag)?,
                "interactive" => {
                    boolean(value.unwrap_or("true"), "-i, --interactive")?;
                }
                "rev" => {
                    let value = match value {
                        Some(v) => v,
                        None if i < args.len() => {
                            i += 1;
                            args[i - 1].as_str()
                        }
                        None => return Err(format!("flag needs an argument: {s}")),
                    };
                    flags.rev = gotext::parse_int(value).map_err(|e| invalid(value, &flag, e))?;
                }
                "help" => return Err(HELP.to_string()),
                _ => return Err(format!("unknown flag: --{name}")),
            }
            continue;
        }
        // Shorthands: `-i` (interactive) is the only one.
        let mut shorts = &s[1..];
        while let Some(c) = shorts.chars().next() {
            let after = &shorts[c.len_utf8()..];
            match c {
                'i' => match after.strip_prefix('=') {
                    Some(value) => {
                        boolean(value, "-i, --interactive")?;
                        shorts = "";
                    }
                    None => shorts = after,
                },
                'h' => return Err(HELP.to_string()),
                _ => return Err(format!("unknown shorthand flag: '{c}' in -{shorts}")),
            }
        }
    }
    Ok((flags, words))
}

/// `watch`: the command line's watch, or `watch -i`'s; the failure it ends with.
pub(super) async fn watch(cli: &Cli) -> Failure {
    let Cmd::Watch {
        interactive,
        prefix,
        rev,
        prev_kv,
        keys,
        exec,
    } = &cli.command
    else {
        unreachable!("called for watch");
    };
    let env = Env::read();
    if env.key.is_empty() && !env.range_end.is_empty() {
        return bad_args(&format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            go_quote(env.range_end.as_bytes())
        ));
    }
    if *interactive {
        return match client(cli) {
            Ok(c) => interactive_watches(&c, cli.write_out, &env).await,
            Err(f) => f,
        };
    }
    let raw: Vec<String> = std::env::args()
        .skip(1)
        .skip_while(|a| a != "watch")
        .skip(1)
        .collect();
    let positional = keys.iter().chain(exec).cloned().collect();
    let (words, exec) = match command_line(positional, &raw, &env) {
        Ok(w) => w,
        Err(f) => return f,
    };
    let client = match client(cli) {
        Ok(c) => c,
        Err(f) => return f,
    };
    let flags = Flags {
        prefix: *prefix,
        rev: *rev,
        prev_kv: *prev_kv,
    };
    let request = match request(&words, flags) {
        Ok(r) => r,
        Err(e) => return bad_args(&e),
    };
    let source = match client.watch_responses(request).await {
        Ok(stream) => Source::Own(Box::new(stream)),
        Err(e) => return Failure::from(e),
    };
    match follow(source, cli.write_out, &exec).await {
        Ok(()) => Failure {
            message: "watch is canceled by the server".into(),
            code: EXIT_INTERRUPTED,
        },
        Err(f) => f,
    }
}

/// `watch -i`: each line's command, until standard input ends.
async fn interactive_watches(client: &Client, format: Format, env: &Env) -> Failure {
    // Lines are read on a thread of their own; a line is complete with its newline (what is
    // left without one at the end is not read, as etcdctl does not read it).
    let (tx, mut lines) = mpsc::unbounded_channel::<Result<String, String>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let read = match stdin.read_until(b'\n', &mut line) {
                Ok(_) if line.ends_with(b"\n") => {
                    line.pop();
                    Ok(String::from_utf8_lossy(&line).into_owned())
                }
                Ok(_) => Err("EOF".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let last = read.is_err();
            if tx.send(read).is_err() || last {
                return;
            }
        }
    });
    // The stream every line's watch shares, opened with the first (as clientv3 opens it).
    // (Its requests, and its watches waiting to be named.)
    let mut shared: Option<(WatchRequests, Pending)> = None;
    loop {
        let line = match lines.recv().await {
            Some(Ok(line)) => line,
            Some(Err(e)) => {
                return Failure {
                    message: format!("Error reading watch request line: {e}"),
                    code: EXIT_INVALID_INPUT,
                }
            }
            None => {
                return Failure {
                    message: "Error reading watch request line: EOF".into(),
                    code: EXIT_INVALID_INPUT,
                }
            }
        };
        let (words, flags, exec) = match interactive_line(&line, env) {
            Err(f) => return f,
            Ok(Line::Complaint(c)) => {
                eprintln!("{c}");
                continue;
            }
            Ok(Line::Progress) => {
                // Answered on the stream (watch id -1) once every watch on it has its events
                // up to the member's revision; each prints it. No stream, no watches: nothing.
                if let Some((requests, _)) = &shared {
                    requests.request_progress();
                }
                continue;
            }
            Ok(Line::Watch { words, flags, exec }) => (words, flags, exec),
        };
        let request = match request(&words, flags) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Invalid command {line} ({e})");
                continue;
            }
        };
        let (tx, responses) = mpsc::unbounded_channel();
        // A stream the member ended takes no more watches: the line goes on a new one.
        let mut tx = Some(tx);
        for _ in 0..2 {
            let (requests, pending) = match &shared {
                Some(open) => open.clone(),
                None => {
                    let stream = match client.watch_stream().await {
                        Ok(stream) => stream,
                        Err(e) => return Failure::from(e),
                    };
                    let open = (stream.requests(), Pending::default());
                    tokio::spawn(dispatch(stream, open.1.clone()));
                    shared = Some(open.clone());
                    open
                }
            };
            // Queued before the creation is sent: the dispatcher pairs each `created`
            // answer with the oldest waiting watch (the member answers creations in order).
            let mut waiting = pending.lock().expect("pending lock");
            waiting.push_back(tx.take().expect("one watch"));
            if requests.create(request.clone()) {
                break;
            }
            tx = waiting.pop_back();
            drop(waiting);
            shared = None;
        }
        tokio::spawn(async move {
            let source = Source::Shared(responses);
            if let Err(f) = follow(source, format, &exec).await {
                // As etcdctl, whose printers exit from the watch's goroutine.
                eprintln!("Error: {}", f.message);
                std::process::exit(i32::from(f.code));
            }
        });
    }
}

/// The watches of `watch -i` waiting for the member to name them, oldest first.
type Pending = Arc<Mutex<VecDeque<mpsc::UnboundedSender<WatchResponse>>>>;

/// Hands each response of the shared stream to its watch, as clientv3 dispatches them: a
/// creation's answer names the oldest waiting watch (or is refused, and handed to it), a
/// progress notification (id -1) goes to every watch, anything else to the watch it names.
/// When the member ends the stream, every watch ends.
async fn dispatch(mut stream: WatchStream, pending: Pending) {
    let mut watches: HashMap<i64, mpsc::UnboundedSender<WatchResponse>> = HashMap::new();
    while let Ok(Some(r)) = stream.message().await {
        if r.created {
            let Some(tx) = pending.lock().expect("pending lock").pop_front() else {
                continue;
            };
            if r.canceled {
                let _ = tx.send(r);
            } else {
                watches.insert(r.watch_id, tx);
            }
            continue;
        }
        if r.watch_id == -1 {
            for tx in watches.values() {
                let _ = tx.send(r.clone());
            }
            continue;
        }
        let canceled = r.canceled;
        let id = r.watch_id;
        if let Some(tx) = watches.get(&id) {
            let _ = tx.send(r);
        }
        if canceled {
            watches.remove(&id);
        }
    }
}

/// Where one watch's responses come from: a stream of its own (the command line's watch) or
/// the dispatcher of `watch -i`'s shared stream.
enum Source {
    Own(Box<tonic::Streaming<WatchResponse>>),
    Shared(mpsc::UnboundedReceiver<WatchResponse>),
}

impl Source {
    /// The next response; `None` once the watch's stream has ended or broken.
    async fn next(&mut self) -> Option<WatchResponse> {
        match self {
            Source::Own(stream) => stream.message().await.ok().flatten(),
            Source::Shared(rx) => rx.recv().await,
        }
    }
}

/// Prints one watch's responses (and runs `exec` for each event) until the server ends it.
async fn follow(mut source: Source, format: Format, exec: &[String]) -> Result<(), Failure> {
    loop {
        let Some(r) = source.next().await else {
            return Ok(());
        };
        if r.created {
            if !r.canceled {
                continue;
            }
            // Refused at creation: clientv3 closes the watch with the reason as its error,
            // and hands out an empty canceled response.
            eprintln!("watch was canceled ({})", r.cancel_reason);
            let closed = WatchResponse {
                header: Some(ResponseHeader::default()),
                canceled: true,
                ..Default::default()
            };
            write_out(&printed(format, &closed, true)?);
            return Ok(());
        }
        if r.canceled && r.compact_revision == 0 {
            // clientv3 closes the watch without handing the response out.
            return Ok(());
        }
        if r.canceled {
            eprintln!("watch was canceled ({COMPACTED})");
        }
        let revision = r.header.map_or(0, |h| h.revision);
        let mut text = Vec::new();
        if r.events.is_empty() && !r.canceled && r.compact_revision == 0 && revision != 0 {
            text.extend(format!("progress notify: {revision}\n").into_bytes());
        }
        text.extend(printed(format, &r, false)?);
        write_out(&text);
        if let Some((program, args)) = exec.split_first() {
            for e in &r.events {
                let kv = e.kv.clone().unwrap_or_default();
                let kind = if e.r#type == 1 { "DELETE" } else { "PUT" };
                let outcome = tokio::process::Command::new(program)
                    .args(args)
                    .env("ETCD_WATCH_REVISION", revision.to_string())
                    .env("ETCD_WATCH_EVENT_TYPE", format!("\"{kind}\""))
                    .env("ETCD_WATCH_KEY", go_quote(&kv.key))
                    .env("ETCD_WATCH_VALUE", go_quote(&kv.value))
                    .status()
                    .await;
                if let Some(e) = gotext::run_error(program, &outcome) {
                    eprintln!("command {} error ({e})", gotext::quote_list(exec));
                    std::process::exit(i32::from(EXIT_ERROR));
                }
            }
        }
        if r.canceled {
            return Ok(());
        }
    }
}

/// Written to standard output at once.
fn write_out(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// A watch response as etcdctl's printer for `format` prints a `clientv3.WatchResponse`;
/// `null_events`: one clientv3 made itself (its events `null` in JSON, not `[]`).
fn printed(format: Format, r: &WatchResponse, null_events: bool) -> Result<Vec<u8>, Failure> {
    let kind = |t: i32| if t == 1 { "DELETE" } else { "PUT" };
    let mut text = String::new();
    match format {
        Format::Simple => {
            for e in &r.events {
                text.push_str(kind(e.r#type));
                text.push('\n');
                if let Some(prev) = &e.prev_kv {
                    simple_kv(&mut text, prev, false, false);
                }
                simple_kv(&mut text, &e.kv.clone().unwrap_or_default(), false, false);
            }
        }
        Format::Json => {
            let events: Vec<String> = r
                .events
                .iter()
                .map(|e| {
                    let mut o = super::JsonObject::new();
                    if e.r#type != 0 {
                        o.raw("type", &e.r#type.to_string());
                    }
                    if let Some(kv) = &e.kv {
                        o.raw("kv", &kv_json(kv));
                    }
                    if let Some(prev) = &e.prev_kv {
                        o.raw("prev_kv", &kv_json(prev));
                    }
                    o.finish()
                })
                .collect();
            let events = if null_events && events.is_empty() {
                "null".to_string()
            } else {
                format!("[{}]", events.join(","))
            };
            text.push_str(&format!(
                "{{\"Header\":{},\"Events\":{events},\"CompactRevision\":{},\"Canceled\":{},\"Created\":{}}}\n",
                header_json(&r.header),
                r.compact_revision,
                r.canceled,
                r.created
            ));
        }
        Format::Fields => {
            header_fields(&mut text, &r.header);
            for e in &r.events {
                text.push_str(&format!("\"Type\" : {}\n", kind(e.r#type)));
                if let Some(prev) = &e.prev_kv {
                    kv_fields_named(&mut text, "Prev", prev);
                }
                kv_fields(&mut text, &e.kv.clone().unwrap_or_default());
            }
        }
        Format::Table => return Err(unsupported(format)),
        Format::Protobuf => {
            // What etcdctl's protobuf printer rebuilds from the client's response.
            let answer = WatchResponse {
                header: Some(r.header.unwrap_or_default()),
                events: r.events.clone(),
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: r.created,
                ..Default::default()
            };
            return Ok(answer.encode_to_vec());
        }
    }
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn no_env() -> Env {
        Env {
            key: String::new(),
            range_end: String::new(),
        }
    }

    #[test]
    fn interactive_lines_read_as_etcdctls() {
        let env = no_env();
        let line = |l: &str| interactive_line(l, &env);
        let watch = |words: &[&str], flags: Flags, exec: &[&str]| Line::Watch {
            words: strings(words),
            flags,
            exec: strings(exec),
        };
        assert_eq!(
            line("watch w/ --prefix --rev 0x3 --prev-kv").unwrap(),
            watch(
                &["w/"],
                Flags {
                    prefix: true,
                    rev: 3,
                    prev_kv: true
                },
                &[]
            )
        );
        assert_eq!(
            line("watch a --rev=2 -- printenv ETCD_WATCH_KEY").unwrap(),
            watch(
                &["a"],
                Flags {
                    rev: 2,
                    ..Flags::default()
                },
                &["printenv", "ETCD_WATCH_KEY"]
            )
        );
        // etcdctl cuts the command at the last word equal to its first.
        assert_eq!(
            line("watch a -- echo echo").unwrap(),
            watch(&["a", "echo"], Flags::default(), &["echo", "echo"])
        );
        assert_eq!(line("progress").unwrap(), Line::Progress);
        for (l, said) in [
            ("", "Invalid command:  (watch and progress supported)"),
            ("get a", "Invalid command get a (only support watch)"),
            (
                "watch",
                "Invalid command watch (command type or key is not provided)",
            ),
        ] {
            assert_eq!(line(l).unwrap(), Line::Complaint(said.into()), "{l:?}");
        }
        for (l, error) in [
            ("watch a --rev", "flag needs an argument: --rev"),
            (
                "watch a --rev=x",
                "invalid argument \"x\" for \"--rev\" flag: strconv.ParseInt: parsing \"x\": \
                 invalid syntax",
            ),
            (
                "watch a --prefix=maybe",
                "invalid argument \"maybe\" for \"--prefix\" flag: strconv.ParseBool: parsing \
                 \"maybe\": invalid syntax",
            ),
            ("watch a --bogus", "unknown flag: --bogus"),
            ("watch a -ix", "unknown shorthand flag: 'x' in -x"),
            ("watch a -h", "pflag: help requested"),
            ("watch --prefix", BAD_ARGS_NUM),
            ("watch a --", NOTHING_AFTER_SEPARATOR),
        ] {
            let f = line(l).unwrap_err();
            assert_eq!(
                (f.message.as_str(), f.code),
                (error, EXIT_BAD_ARGS),
                "{l:?}"
            );
        }
        let keyed = Env {
            key: "k".into(),
            range_end: "z".into(),
        };
        assert_eq!(
            interactive_line("watch --rev=1", &keyed).unwrap(),
            watch(
                &["k", "z"],
                Flags {
                    rev: 1,
                    ..Flags::default()
                },
                &[]
            )
        );
        assert_eq!(
            interactive_line("watch a", &keyed).unwrap_err().message,
            CONFLICT_ENV
        );
    }

    #[test]
    fn command_lines_read_as_etcdctls() {
        let env = no_env();
        let run = |positional: &[&str], raw: &[&str]| {
            command_line(strings(positional), &strings(raw), &env)
        };
        assert_eq!(
            run(&["a", "b", "c"], &["a", "b", "c"]).unwrap(),
            (strings(&["a", "b", "c"]), vec![])
        );
        assert_eq!(
            run(
                &["a", "sh", "-c", "x"],
                &["a", "--rev=1", "--", "sh", "-c", "x"]
            )
            .unwrap(),
            (strings(&["a"]), strings(&["sh", "-c", "x"]))
        );
        assert_eq!(
            run(&["a"], &["a", "--"]).unwrap_err().message,
            NOTHING_AFTER_SEPARATOR
        );
        assert_eq!(run(&[], &[]).unwrap_err().message, BAD_ARGS_NUM);
        let keyed = Env {
            key: "k".into(),
            range_end: String::new(),
        };
        assert_eq!(
            command_line(strings(&["echo"]), &strings(&["--", "echo"]), &keyed).unwrap(),
            (strings(&["k"]), strings(&["echo"]))
        );
        assert_eq!(
            command_line(
                strings(&["a", "echo"]),
                &strings(&["a", "--", "echo"]),
                &keyed
            )
            .unwrap_err()
            .message,
            CONFLICT_ENV
        );
        // The third word on is ignored; two with --prefix are refused.
        let r = request(&strings(&["a", "b", "c"]), Flags::default()).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"a"[..], &b""[..]));
        let prefixed = Flags {
            prefix: true,
            ..Flags::default()
        };
        assert!(request(&strings(&["a", "b"]), prefixed).is_err());
        let r = request(&strings(&[""]), prefixed).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&[0u8][..], &[0u8][..]));
    }
}
