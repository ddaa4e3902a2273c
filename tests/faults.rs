//! Jepsen-style fault injection (spec section 7: "`?consistent=true` on a GET makes it
//! linearizable"; writes may be sent to any member; killed members catch up when restarted).
//!
//! Six client threads run sets, consistent reads, test-and-sets and deletes on three keys,
//! against random members of a three-member cluster, while a nemesis kills, restarts, pauses
//! and resumes members (the leader or a random one, never more than one at a time). Every
//! operation is recorded with its invocation and completion time and its outcome, and the
//! whole history must be linearizable (`etcd_lincheck::check`). Afterwards every member must
//! be running again and agree with the leader on every key. Half of the kills also append a
//! torn write to the killed member's WAL tail (random bytes, a cut record, a record with a bad
//! checksum, or zeros): what an unsynced write in flight at a power loss leaves behind. The
//! member must start anyway and lose nothing acknowledged.
//!
//! Outcome rules: a request that could not be sent (connection refused) did not happen and is
//! left out; any other failure (a timeout, a reset, a 5xx such as 500/300) is "unknown": the
//! write may or may not have taken effect. A read with an unknown outcome has no effect and is
//! left out. Plain (non-consistent) reads may be stale by design and are never checked.
//!
//! The partition tests run the same workload on three and five members whose peer traffic
//! goes through a `PartitionProxy` (see `Cluster::start_partitionable`), while a nemesis
//! cycles through network partitions of about 2 s each, with about 1.5 s of whole network in
//! between: one random member isolated, the leader isolated, a majority/minority split, and a
//! bridge (one member sees both halves, which do not see each other). Client traffic is never
//! cut. The same checks apply, and the proxy must have refused or cut connections.
//!
//! The v3 tests run the same workload through gRPC (put, linearizable range, a value
//! compare-and-swap txn, delete range) under the kill/pause nemesis and under partitions of
//! three members, with two watchers that
//! follow every revision of the keys across the faults (resuming on another member after the
//! last revision they saw); each must see exactly the final history's changes from its first
//! revision on, in order, once.
//!
//! The Kubernetes-shaped tests (`faults/k8s.rs`) run kube-apiserver's shapes under kills and
//! pauses and under partitions: txns with mod-revision compares on shared `/registry/` keys,
//! paginated lists at a revision, events on short leases, a compaction every 1.5 s, prefix
//! watchers with `prev_kv` and progress requests, and a recorder of the whole keyspace. The
//! revisions in the answers witness a linearization that is checked against the recorded
//! history, revision by revision; no acknowledged write or watch event may be lost.
//!
//! The v3 auth test (`faults/auth.rs`) runs writers as a user whose roles allow one prefix,
//! forbid another and, flipped over and over by an admin, a third, under kills and pauses: no
//! forbidden write may go through, nor a write answered while its permission was surely
//! revoked.
//!
//! `ETCD_FAULT_SECS` sets how long operations run (default 20 s); `ETCD_FAULT_SEED` replays a
//! seed (the schedule of random choices; timing still varies); `ETCD_FAULT_KINDS=kill` or
//! `=pause` runs one fault type alone in the kill/pause test.

mod support;

use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_lincheck::{check, Input, Op, Output};
use support::*;

/// The keys the clients work on (`/v1/keys/jepsen/k0` ...).
const KEYS: [&str; 3] = ["jepsen/k0", "jepsen/k1", "jepsen/k2"];
/// Client threads.
const CLIENTS: usize = 6;
/// Deadline of one client operation. A write may legitimately wait about 5 s for a leader
/// before failing with 500/300, so a bit more than that.
const OP_TIMEOUT: Duration = Duration::from_millis(5500);
/// How long a paused member stays stopped: well beyond the 500 ms election timeout.
const PAUSE_FOR: Duration = Duration::from_millis(1500);
/// How long a killed member stays down before it is restarted.
const DOWN_FOR: Duration = Duration::from_millis(1000);
/// Default duration of the operation phase.
const DEFAULT_SECS: u64 = 20;
/// How long the members may take to agree on every key after the faults stop.
const FINAL_CONVERGE: Duration = Duration::from_secs(30);
/// The `client` number of the final consistent reads added to the history.
const FINAL_READER: usize = 99;

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/// xorshift64* seeded through splitmix64 (no dependency, reproducible from the printed seed).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// Uniform in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

fn seed_from_env_or_clock() -> u64 {
    match std::env::var("ETCD_FAULT_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("ETCD_FAULT_SEED={s:?}: {e}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

fn fault_secs() -> u64 {
    match std::env::var("ETCD_FAULT_SECS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("ETCD_FAULT_SECS={s:?}: {e}")),
        Err(_) => DEFAULT_SECS,
    }
}

// ---------------------------------------------------------------------------------------------
// Recorder and client operations
// ---------------------------------------------------------------------------------------------

/// The four kinds of client operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Read,
    Cas,
    Delete,
}

const KINDS: [Kind; 4] = [Kind::Set, Kind::Read, Kind::Cas, Kind::Delete];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Read => "read",
            Kind::Cas => "cas",
            Kind::Delete => "delete",
        }
    }
}

/// What became of one request.
enum Outcome {
    /// An outcome for the history.
    Record(Output),
    /// The request was never sent (connection refused): it did not happen.
    NotSent,
    /// An answer the API does not allow for this request: recorded as unknown (a read: left
    /// out) and reported as a failure of the test.
    Anomaly(String),
}

/// Counts per kind: successful (ok / found / not found / deleted either way), failed
/// (test-and-set refused), unknown, not sent.
#[derive(Debug, Default, Clone)]
struct Stats {
    ok: [u64; 4],
    failed: [u64; 4],
    unknown: [u64; 4],
    not_sent: [u64; 4],
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        for k in 0..4 {
            self.ok[k] += other.ok[k];
            self.failed[k] += other.failed[k];
            self.unknown[k] += other.unknown[k];
            self.not_sent[k] += other.not_sent[k];
        }
    }

    fn total(&self) -> u64 {
        (0..4)
            .map(|k| self.ok[k] + self.failed[k] + self.unknown[k] + self.not_sent[k])
            .sum()
    }

    /// Successful sets and test-and-sets.
    fn successful_writes(&self) -> u64 {
        self.ok[0] + self.ok[2]
    }

    fn successful_reads(&self) -> u64 {
        self.ok[1]
    }

    fn line(&self) -> String {
        KINDS
            .iter()
            .enumerate()
            .map(|(k, kind)| {
                format!(
                    "{} ok={} failed={} unknown={} not-sent={}",
                    kind.name(),
                    self.ok[k],
                    self.failed[k],
                    self.unknown[k],
                    self.not_sent[k]
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The `errorCode` of a JSON error body.
fn error_code(r: &Response) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()?
        .get("errorCode")?
        .as_u64()
}

/// The `value` of a JSON key result (`None` if the body is not one).
fn json_value(r: &Response) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()?
        .get("value")?
        .as_str()
        .map(String::from)
}

/// Classifies the result of one request of `kind` (`new`: the value a set or test-and-set
/// wrote).
fn classify(kind: Kind, new: Option<&str>, result: &io::Result<Response>) -> Outcome {
    let r = match result {
        Ok(r) => r,
        // connect(2) refused: nothing was sent.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Outcome::NotSent,
        // Timeout, reset, truncated answer...: it may have happened.
        Err(_) => return Outcome::Record(Output::Unknown),
    };
    // 500/300 (no quorum, commit timeout), 503...: the write may still be committed.
    if r.status >= 500 {
        return Outcome::Record(Output::Unknown);
    }
    let code = error_code(r);
    let anomaly = || {
        Outcome::Anomaly(format!(
            "{} answered {} {:?}",
            kind.name(),
            r.status,
            short(&r.text())
        ))
    };
    match (kind, r.status, code) {
        (Kind::Set | Kind::Cas, 200, _) => {
            if json_value(r).as_deref() == new {
                Outcome::Record(Output::Ok)
            } else {
                anomaly()
            }
        }
        (Kind::Cas, 400, Some(101)) | (Kind::Cas, 404, Some(100)) => {
            Outcome::Record(Output::Failed)
        }
        (Kind::Read, 200, _) => match json_value(r) {
            Some(v) => Outcome::Record(Output::Read(Some(v))),
            None => anomaly(),
        },
        (Kind::Read, 404, Some(100)) => Outcome::Record(Output::Read(None)),
        (Kind::Delete, 200, _) => Outcome::Record(Output::Deleted(true)),
        (Kind::Delete, 404, Some(100)) => Outcome::Record(Output::Deleted(false)),
        _ => anomaly(),
    }
}

/// What one client thread produced.
struct ClientRun {
    history: Vec<Op>,
    stats: Stats,
    anomalies: Vec<String>,
}

impl ClientRun {
    /// Counts an operation's outcome and adds it (with `outcome`'s output) to the history,
    /// unless it was never sent, or is a read whose result is unknown. Remembers in `recent`
    /// the value the client last wrote or saw in the key. `what` describes the request for
    /// an anomaly report.
    fn record(
        &mut self,
        kind: Kind,
        mut op: Op,
        outcome: Outcome,
        recent: &mut Option<String>,
        what: impl FnOnce() -> String,
    ) {
        let k = kind as usize;
        op.output = match outcome {
            Outcome::NotSent => {
                self.stats.not_sent[k] += 1;
                return;
            }
            Outcome::Anomaly(why) => {
                self.anomalies.push(format!("{}: {why}", what()));
                Output::Unknown
            }
            Outcome::Record(output) => output,
        };
        match &op.output {
            Output::Unknown => self.stats.unknown[k] += 1,
            Output::Failed => self.stats.failed[k] += 1,
            _ => self.stats.ok[k] += 1,
        }
        match (&op.input, &op.output) {
            (_, Output::Unknown) if kind == Kind::Read => return,
            (Input::Set(v), Output::Ok) | (Input::TestAndSet { new: v, .. }, Output::Ok) => {
                *recent = Some(v.clone())
            }
            (Input::Get, Output::Read(Some(v))) => *recent = Some(v.clone()),
            _ => {}
        }
        self.history.push(op);
    }
}

fn now_nanos(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// One client: random operations on random members until `until` (no operation starts after
/// it). `start` is the common time origin of the history.
fn run_client(
    id: usize,
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
) -> ClientRun {
    let mut rng = Rng::new(seed ^ (id as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut run = ClientRun {
        history: Vec::new(),
        stats: Stats::default(),
        anomalies: Vec::new(),
    };
    // The last value this client saw in or wrote to each key (for test-and-set).
    let mut recent: [Option<String>; KEYS.len()] = Default::default();
    let mut seq: u64 = 0;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        let addr = &addrs[rng.index(addrs.len())];
        let k = rng.index(KEYS.len());
        let key = KEYS[k];
        let path = format!("/v1/keys/{key}");
        let kind = match rng.below(100) {
            0..=29 => Kind::Set,
            30..=64 => Kind::Read,
            65..=84 => Kind::Cas,
            _ => Kind::Delete,
        };
        seq += 1;
        let new = format!("c{id}-{seq}");
        let (input, method, path, body) = match kind {
            Kind::Set => (
                Input::Set(new.clone()),
                "POST",
                path,
                Some(form(&[("value", &new)])),
            ),
            Kind::Read => (Input::Get, "GET", format!("{path}?consistent=true"), None),
            Kind::Cas => {
                let expected = match &recent[k] {
                    Some(v) if rng.below(4) != 0 => v.clone(),
                    // A random old value: maybe still there, maybe long gone.
                    _ => format!("c{}-{}", rng.index(CLIENTS), rng.below(seq.max(2) - 1) + 1),
                };
                (
                    Input::TestAndSet {
                        expected: expected.clone(),
                        new: new.clone(),
                    },
                    "POST",
                    path,
                    Some(form(&[("value", &new), ("prevValue", &expected)])),
                )
            }
            Kind::Delete => (Input::Delete, "DELETE", path, None),
        };
        let call = now_nanos(start);
        let result = try_request(
            addr,
            method,
            &path,
            body.as_deref().map(|b| (FORM_CONTENT_TYPE, b.as_bytes())),
            OP_TIMEOUT,
        );
        let outcome = classify(kind, Some(new.as_str()), &result);
        let ret = now_nanos(start);
        let op = Op {
            client: id,
            key: key.to_string(),
            input,
            output: Output::Unknown,
            call,
            ret,
        };
        let what = || {
            format!(
                "client {id} at {:.3}s on {addr} {method} {path}",
                call as f64 / 1e9
            )
        };
        run.record(kind, op, outcome, &mut recent[k], what);
    }
    run
}

/// Everything the clients produced, merged.
struct Workload {
    history: Vec<Op>,
    stats: Stats,
    anomalies: Vec<String>,
}

/// Starts `CLIENTS` client threads against `addrs`, running until `until`.
fn spawn_clients(
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<ClientRun>> {
    (0..CLIENTS)
        .map(|id| {
            let addrs = addrs.to_vec();
            let stop = stop.clone();
            thread::Builder::new()
                .name(format!("client{id}"))
                .spawn(move || run_client(id, &addrs, seed, start, until, &stop))
                .expect("spawn a client thread")
        })
        .collect()
}

fn join_clients(handles: Vec<thread::JoinHandle<ClientRun>>) -> Workload {
    let mut w = Workload {
        history: Vec::new(),
        stats: Stats::default(),
        anomalies: Vec::new(),
    };
    for h in handles {
        let run = h.join().expect("a client thread panicked");
        w.history.extend(run.history);
        w.stats.add(&run.stats);
        w.anomalies.extend(run.anomalies);
    }
    w
}

fn client_addrs(c: &Cluster) -> Vec<String> {
    (0..c.len()).map(|i| c.member(i).client_addr()).collect()
}

// ---------------------------------------------------------------------------------------------
// Nemesis
// ---------------------------------------------------------------------------------------------

/// The fault log, shared with the failure report.
#[derive(Clone, Default)]
struct FaultLog(Arc<Mutex<Vec<String>>>);

impl FaultLog {
    fn note(&self, start: Instant, what: String) {
        let line = format!("[nemesis {:>8.3}s] {what}", start.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.0.lock().expect("fault log").push(line);
    }

    fn dump(&self) -> String {
        self.0.lock().expect("fault log").join("\n")
    }
}

/// The faults the kill/pause nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// SIGKILL, sometimes a torn write added to the WAL tail, then a restart.
    Kill,
    /// SIGSTOP past the election timeout, then SIGCONT.
    Pause,
}

/// `ETCD_FAULT_KINDS`: a comma-separated subset of `kill,pause` (default both), to run one
/// fault type alone.
fn fault_kinds() -> Vec<FaultKind> {
    let spec = std::env::var("ETCD_FAULT_KINDS").unwrap_or_else(|_| "kill,pause".to_string());
    let kinds: Vec<FaultKind> = spec
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| match k {
            "kill" => FaultKind::Kill,
            "pause" => FaultKind::Pause,
            other => panic!("ETCD_FAULT_KINDS={spec:?}: unknown fault {other:?} (kill, pause)"),
        })
        .collect();
    assert!(
        !kinds.is_empty(),
        "ETCD_FAULT_KINDS={spec:?} names no fault"
    );
    kinds
}

/// Adds to the last WAL segment of a killed member what a write in flight at a power loss
/// can leave behind, and says what it added. None of it was ever synced, so none of it was
/// acknowledged: the member must start, drop it, and lose nothing (the history check and the
/// convergence check see to that).
fn tear_wal_tail(member: &Node, rng: &mut Rng) -> String {
    let segment = member
        .data_files("wal", ".wal")
        .pop()
        .unwrap_or_else(|| panic!("{}: no WAL segment", member.name));
    fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.next() as u8).collect()
    }
    let (what, tail) = match rng.below(4) {
        0 => {
            let n = 1 + rng.index(200);
            (format!("{n} random bytes"), bytes(rng, n))
        }
        1 => {
            // A record header, and only part of the body it announces.
            let len = 16 + rng.index(4096);
            let mut t = (len as u32).to_le_bytes().to_vec();
            let part = rng.index(len);
            t.extend(bytes(rng, 4 + part));
            (format!("a record of {len} B cut after {part} B"), t)
        }
        2 => {
            // A whole record whose pages did not all reach the disk: the CRC does not match.
            let len = 16 + rng.index(4096);
            let mut t = (len as u32).to_le_bytes().to_vec();
            t.extend(bytes(rng, 4 + len));
            (format!("a whole record of {len} B with a bad checksum"), t)
        }
        _ => {
            // The file grew but its new blocks were never written.
            let n = 1 + rng.index(8192);
            (format!("{n} zero bytes"), vec![0; n])
        }
    };
    // Right after the last whole record, in the segment's preallocated space.
    let end = wal_records_end(&fs::read(&segment).unwrap_or_default()) as u64;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap_or_else(|e| panic!("open {}: {e}", segment.display()));
    std::os::unix::fs::FileExt::write_all_at(&f, &tail, end)
        .and_then(|()| f.sync_all())
        .unwrap_or_else(|e| panic!("append to {}: {e}", segment.display()));
    format!(
        "torn WAL tail: {what} written after the last record of {}",
        segment.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// Runs faults until `until`, one at a time, each healed before the next starts. Returns the
/// number of faults injected.
fn nemesis(c: &mut Cluster, rng: &mut Rng, start: Instant, until: Instant, log: &FaultLog) -> u64 {
    let kinds = fault_kinds();
    let mut faults = 0;
    let mut round = 0usize;
    loop {
        // The first fault comes soon, then one every 1.5-2.5 s (plus the fault's own time).
        let gap = if round == 0 {
            rng.millis(500, 1000)
        } else {
            rng.millis(1500, 2500)
        };
        thread::sleep(gap);
        if Instant::now() >= until {
            return faults;
        }
        // A member that exited on its own (a crash) must not be masked by a kill.
        c.check_alive();
        // Rounds cycle through the fault kinds, each on a random member and then on the leader:
        // by default kill a random member, kill the leader, pause a random member, pause the
        // leader.
        let kill = kinds[(round / 2) % kinds.len()] == FaultKind::Kill;
        let on_leader = round % 2 == 1;
        let target = if on_leader {
            c.leader()
        } else {
            rng.index(c.len())
        };
        let role = if on_leader { "leader" } else { "random" };
        let name = c.member(target).name.clone();
        if kill {
            log.note(start, format!("SIGKILL {name} ({role})"));
            c.kill(target);
            if rng.below(2) == 0 {
                let torn = tear_wal_tail(c.member(target), rng);
                log.note(start, format!("{name}: {torn}"));
            }
            thread::sleep(DOWN_FOR);
            log.note(start, format!("restart {name}"));
            c.restart(target);
            log.note(start, format!("{name} ready again"));
        } else {
            log.note(start, format!("SIGSTOP {name} ({role})"));
            c.pause(target);
            thread::sleep(PAUSE_FOR);
            log.note(start, format!("SIGCONT {name}"));
            c.resume(target);
        }
        faults += 1;
        round += 1;
    }
}

/// Every member running and not paused, and ready. The nemesis heals each fault itself, so
/// this only finishes one it was interrupted in; a member that exited on its own fails the test.
fn heal(c: &mut Cluster, start: Instant, log: &FaultLog) {
    for i in 0..c.len() {
        if c.member(i).is_paused() {
            log.note(start, format!("heal: SIGCONT {}", c.member(i).name));
            c.resume(i);
        }
        if !c.member(i).is_launched() {
            log.note(start, format!("heal: relaunch {}", c.member(i).name));
            c.member_mut(i).launch();
        }
    }
    c.check_alive();
    c.wait_all_ready();
}

/// How long a partition lasts (uniform in this range of milliseconds).
const PARTITION_MS: (u64, u64) = (1800, 2200);
/// How long the network stays whole between two partitions.
const HEALED_MS: (u64, u64) = (1300, 1700);

/// A random order of `0..n`.
fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.index(i + 1);
        v.swap(i, j);
    }
    v
}

fn names(c: &Cluster, members: &[usize]) -> String {
    let names: Vec<&str> = members.iter().map(|&i| c.member(i).name.as_str()).collect();
    format!("{{{}}}", names.join(","))
}

/// Runs network partitions until `until`, one at a time, each healed before the next starts.
/// Rounds cycle through: isolate a random member, isolate the leader, a majority/minority
/// split, and a bridge (the members in a random ring, broken so that the middle one sees
/// both halves but the halves do not see each other). Returns the number of partitions.
fn partition_nemesis(
    c: &mut Cluster,
    rng: &mut Rng,
    start: Instant,
    until: Instant,
    log: &FaultLog,
) -> u64 {
    let n = c.len();
    let mut faults = 0;
    let mut round = 0usize;
    loop {
        let gap = if round == 0 {
            rng.millis(500, 1000)
        } else {
            rng.millis(HEALED_MS.0, HEALED_MS.1)
        };
        thread::sleep(gap);
        if Instant::now() >= until {
            return faults;
        }
        c.check_alive();
        let order = shuffled(rng, n);
        let cut = match round % 4 {
            0 | 1 => {
                let (target, role) = if round % 4 == 1 {
                    (c.leader(), "leader")
                } else {
                    (order[0], "random")
                };
                let cut = c.proxy().isolate(target);
                log.note(
                    start,
                    format!("partition: isolate {} ({role})", c.member(target).name),
                );
                cut
            }
            2 => {
                let minority = (n - 1) / 2;
                let (big, small) = order.split_at(n - minority);
                let cut = c.proxy().split(big, small);
                log.note(
                    start,
                    format!(
                        "partition: majority {} | minority {}",
                        names(c, big),
                        names(c, small)
                    ),
                );
                cut
            }
            _ => {
                let mid = n / 2;
                let (left, right) = (&order[..mid], &order[mid + 1..]);
                let cut = c.proxy().split(left, right);
                log.note(
                    start,
                    format!(
                        "partition: bridge {} - {} - {} (ring {})",
                        names(c, left),
                        c.member(order[mid]).name,
                        names(c, right),
                        names(c, &order)
                    ),
                );
                cut
            }
        };
        log.note(
            start,
            format!(
                "  blocked {:?}; {cut} open connections cut",
                c.proxy().blocked()
            ),
        );
        thread::sleep(rng.millis(PARTITION_MS.0, PARTITION_MS.1));
        c.proxy().heal();
        log.note(start, format!("heal ({:?})", c.proxy().stats()));
        faults += 1;
        round += 1;
    }
}

/// The partition test on `n` members: the workload of the kill/pause test, with the partition
/// nemesis instead.
fn partition_test(n: usize) {
    let seed = seed_from_env_or_clock();
    let secs = fault_secs();
    eprintln!(
        "partitions({n}): seed {seed} (ETCD_FAULT_SEED={seed} replays it), {secs} s of operations"
    );
    let mut c = Cluster::start_partitionable(n, &FAST_TIMING);
    let addrs = client_addrs(&c);
    let log = FaultLog::default();

    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let handles = spawn_clients(&addrs, seed, start, until, &stop);

    let mut rng = Rng::new(seed ^ 0x5A5A_A5A5_A5A5_5A5A);
    let faults = partition_nemesis(&mut c, &mut rng, start, until, &log);
    log.note(start, format!("stop: {faults} partitions; healing"));
    c.proxy().heal();
    c.check_alive();
    c.wait_all_ready();
    let mut w = join_clients(handles);
    drop(stop_guard);
    let ops_done = start.elapsed();

    converge(&mut c, start, &mut w.history);
    c.check_alive();
    let proxy = c.proxy().stats();

    let summary = format!(
        "{n} members, seed {seed}; {} ops in {:.1}s ({} in the history); {}; partitions {faults}; proxy {proxy:?}",
        w.stats.total(),
        ops_done.as_secs_f64(),
        w.history.len(),
        w.stats.line()
    );
    check_run("partitions", &summary, &w, seed, &log, faults);
    // The partitions were real: the proxy refused or cut connections on blocked pairs, and
    // it could tell the sender of every connection opened while one was in force.
    assert!(
        proxy.refused + proxy.cut > 0,
        "the partitions never refused or cut a connection: {proxy:?}"
    );
    assert_eq!(
        proxy.unattributed_during_partition, 0,
        "peer connections from an unknown source address during a partition: {proxy:?}"
    );
    assert_eq!(
        proxy.over_limit, 0,
        "proxy connection limit reached: {proxy:?}"
    );
}

/// Sets the flag when dropped (also on a panic), so the clients stop early.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// Convergence
// ---------------------------------------------------------------------------------------------

/// After the faults: for each key, a consistent read through the leader (added to the
/// history), then every member's plain GET must show the same (bounded).
fn converge(c: &mut Cluster, start: Instant, history: &mut Vec<Op>) {
    let leader = c.leader();
    let leader_addr = c.member(leader).client_addr();
    for key in KEYS {
        let path = format!("/v1/keys/{key}");
        let deadline = Instant::now() + FINAL_CONVERGE;
        let (value, call, ret) = loop {
            let call = now_nanos(start);
            let r = try_request(
                &leader_addr,
                "GET",
                &format!("{path}?consistent=true"),
                None,
                OP_TIMEOUT,
            );
            let ret = now_nanos(start);
            match classify(Kind::Read, None, &r) {
                Outcome::Record(Output::Read(v)) => break (v, call, ret),
                Outcome::Anomaly(what) => panic!("final consistent read of {key}: {what}"),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "no consistent read of {key} on the leader within {FINAL_CONVERGE:?}: {}",
                describe(&r)
            );
            thread::sleep(POLL_INTERVAL);
        };
        history.push(Op {
            client: FINAL_READER,
            key: key.to_string(),
            input: Input::Get,
            output: Output::Read(value.clone()),
            call,
            ret,
        });
        for i in 0..c.len() {
            c.wait_get(
                i,
                &path,
                FINAL_CONVERGE,
                &format!("the leader's {value:?}"),
                |r| match &value {
                    Some(v) => r.status == 200 && json_value(r).as_deref() == Some(v.as_str()),
                    None => r.status == 404 && error_code(r) == Some(100),
                },
            );
        }
        eprintln!("converged: {key} = {value:?} on every member");
    }
}

/// The checks every fault run ends with: the history is linearizable, no answer broke the
/// API, the history is thick enough to mean something, and enough faults happened.
fn check_run(what: &str, summary: &str, w: &Workload, seed: u64, log: &FaultLog, faults: u64) {
    eprintln!("{what} workload: {summary}; checking...");
    let check_time = check_history(&w.history, seed, log);
    eprintln!("{what} summary: {summary}; check {check_time:?}");
    assert!(
        w.anomalies.is_empty(),
        "answers the API does not allow (seed {seed}):\n{}",
        w.anomalies.join("\n")
    );
    let min = 50;
    assert!(
        w.stats.successful_writes() >= min && w.stats.successful_reads() >= min,
        "history too thin to mean anything (seed {seed}): {}",
        w.stats.line()
    );
    assert!(faults >= 4, "only {faults} {what} injected");
}

fn check_history(history: &[Op], seed: u64, faults: &FaultLog) -> Duration {
    let started = Instant::now();
    let result = check(history);
    let took = started.elapsed();
    if let Err(violation) = result {
        panic!(
            "NOT LINEARIZABLE (seed {seed}, checked in {took:?}):\n{violation}\n\
             (times are nanoseconds since the start; faults:\n{})",
            faults.dump()
        );
    }
    took
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn histories_under_kills_and_pauses_are_linearizable_and_members_converge() {
    let seed = seed_from_env_or_clock();
    let secs = fault_secs();
    eprintln!("faults: seed {seed} (ETCD_FAULT_SEED={seed} replays it), {secs} s of operations");
    let mut c = Cluster::start(3, &FAST_TIMING);
    let addrs = client_addrs(&c);
    let log = FaultLog::default();

    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    // Set if this thread panics (the guard is dropped): the clients stop early then.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let handles = spawn_clients(&addrs, seed, start, until, &stop);

    let mut rng = Rng::new(seed ^ 0xA5A5_A5A5_5A5A_5A5A);
    let faults = nemesis(&mut c, &mut rng, start, until, &log);
    log.note(start, format!("stop: {faults} faults injected; healing"));
    heal(&mut c, start, &log);
    let mut w = join_clients(handles);
    drop(stop_guard);
    let ops_done = start.elapsed();

    converge(&mut c, start, &mut w.history);
    c.check_alive();

    let summary = format!(
        "seed {seed}; {} ops in {:.1}s ({} in the history); {}; faults {faults}",
        w.stats.total(),
        ops_done.as_secs_f64(),
        w.history.len(),
        w.stats.line()
    );
    check_run("faults", &summary, &w, seed, &log, faults);
}

#[test]
fn histories_under_partitions_of_three_members_are_linearizable_and_members_converge() {
    partition_test(3);
}

#[test]
fn histories_under_partitions_of_five_members_are_linearizable_and_members_converge() {
    partition_test(5);
}

#[test]
fn a_tampered_read_in_a_real_history_is_rejected() {
    let seed = seed_from_env_or_clock();
    eprintln!("tamper: seed {seed}");
    let mut c = Cluster::start(3, &FAST_TIMING);
    let addrs = client_addrs(&c);
    let log = FaultLog::default();
    let start = Instant::now();
    let until = start + Duration::from_secs(3);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_guard = StopOnDrop(stop.clone());
    let mut w = join_clients(spawn_clients(&addrs, seed, start, until, &stop));
    converge(&mut c, start, &mut w.history);
    eprintln!(
        "tamper: {} ops ({} in the history); {}",
        w.stats.total(),
        w.history.len(),
        w.stats.line()
    );
    assert!(
        w.anomalies.is_empty(),
        "answers the API does not allow (seed {seed}):\n{}",
        w.anomalies.join("\n")
    );
    assert_eq!(
        w.stats.unknown.iter().sum::<u64>() + w.stats.not_sent.iter().sum::<u64>(),
        0,
        "a fault-free run had failed requests: {}",
        w.stats.line()
    );
    assert!(
        w.stats.successful_writes() >= 10 && w.stats.successful_reads() >= 10,
        "history too thin: {}",
        w.stats.line()
    );
    // The real history passes...
    check_history(&w.history, seed, &log);

    // ... and the same history with the last client read of some key changed to a value
    // nobody wrote does not.
    let (pos, key) = w
        .history
        .iter()
        .enumerate()
        .rev()
        .find(|(_, op)| op.client != FINAL_READER && matches!(op.output, Output::Read(Some(_))))
        .map(|(i, op)| (i, op.key.clone()))
        .expect("a successful read of an existing value");
    let mut tampered = w.history.clone();
    tampered[pos].output = Output::Read(Some("never-written".to_string()));
    let violation = check(&tampered).expect_err("a read of a value never written was accepted");
    eprintln!(
        "tamper: rejected as expected: key {}, failing window of {} operations",
        violation.key,
        violation.window.len()
    );
    assert_eq!(violation.key, key, "{violation}");
    // The window runs from the key's first operation to the first one invoked after the
    // tampered read returned (before that, the read could still be pending): it holds it.
    assert!(
        violation.window.contains(&tampered[pos]),
        "the failing window should hold the tampered read {:?}: {violation}",
        tampered[pos]
    );
}

/// Regression for the stale read the kill/pause test found (with raft ReadIndex serving
/// `consistent=true`): a leader paused past the election timeout, with consistent reads in
/// flight, answered a read invoked after its successor had acknowledged a write, from its
/// pre-pause state. Each round pauses the leader under a stream of consistent reads, writes
/// through the new leader, resumes the old one and fires reads at it at once: every read
/// invoked after the write was acknowledged must see it.
#[test]
fn a_resumed_deposed_leader_answers_no_consistent_read_from_before_its_pause() {
    const ROUNDS: usize = 4;
    const KEY_PATH: &str = "/v1/keys/regress/paused-leader";
    let mut c = Cluster::start(3, &FAST_TIMING);
    let read = |addr: &str| -> (Instant, io::Result<Response>) {
        let call = Instant::now();
        let r = try_request(
            addr,
            "GET",
            &format!("{KEY_PATH}?consistent=true"),
            None,
            OP_TIMEOUT,
        );
        (call, r)
    };
    for round in 0..ROUNDS {
        let old = c.leader();
        let old_addr = c.member(old).client_addr();
        // Consistent reads in flight on the leader when it stops.
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Vec<_> = (0..2)
            .map(|_| {
                let (addr, stop) = (old_addr.clone(), stop.clone());
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        seen.push(read(&addr));
                    }
                    seen
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(200));
        c.pause(old);
        let new = c.leader();
        assert_ne!(new, old, "a paused member cannot be the agreed leader");
        let value = format!("round-{round}");
        let deadline = Instant::now() + OP_TIMEOUT * 2;
        let body = form(&[("value", &value)]);
        loop {
            let r = try_request(
                &c.member(new).client_addr(),
                "PUT",
                KEY_PATH,
                Some((FORM_CONTENT_TYPE, body.as_bytes())),
                OP_TIMEOUT,
            );
            if matches!(&r, Ok(r) if r.status == 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "write through the new leader: {}",
                describe(&r)
            );
            thread::sleep(POLL_INTERVAL);
        }
        let acknowledged = Instant::now();
        c.resume(old);
        let burst: Vec<_> = (0..8)
            .map(|_| {
                let addr = old_addr.clone();
                thread::spawn(move || read(&addr))
            })
            .collect();
        let mut answers: Vec<(Instant, io::Result<Response>)> = burst
            .into_iter()
            .map(|h| h.join().expect("reader"))
            .collect();
        stop.store(true, Ordering::SeqCst);
        for s in streams {
            answers.extend(s.join().expect("reader"));
        }
        let mut fresh = 0;
        for (call, r) in &answers {
            let Ok(r) = r else { continue };
            if *call < acknowledged || r.status != 200 {
                continue;
            }
            assert_eq!(
                json_value(r).as_deref(),
                Some(value.as_str()),
                "round {round}: a consistent read on the resumed old leader {}, invoked {:?} \
                 after the write of {value:?} was acknowledged, answered {}",
                c.member(old).name,
                call.duration_since(acknowledged),
                r.text()
            );
            fresh += 1;
        }
        eprintln!(
            "round {round}: {} reads, {fresh} of them invoked after the write and answered",
            answers.len()
        );
        assert!(
            fresh > 0,
            "round {round}: no read after the write was answered"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The same faults under v3 (gRPC) clients
// ---------------------------------------------------------------------------------------------

/// The kill/pause nemesis until `until`, then every member healed; how many faults it injected.
fn kills_and_pauses_then_heal(
    c: &mut Cluster,
    rng: &mut Rng,
    start: Instant,
    until: Instant,
    log: &FaultLog,
) -> u64 {
    let faults = nemesis(c, rng, start, until, log);
    log.note(start, format!("stop: {faults} faults injected; healing"));
    heal(c, start, log);
    faults
}

/// The partition nemesis until `until`, then the network healed; how many partitions it made.
fn partitions_then_heal(
    c: &mut Cluster,
    rng: &mut Rng,
    start: Instant,
    until: Instant,
    log: &FaultLog,
) -> u64 {
    let faults = partition_nemesis(c, rng, start, until, log);
    log.note(start, format!("stop: {faults} partitions; healing"));
    c.proxy().heal();
    c.check_alive();
    c.wait_all_ready();
    faults
}

#[path = "faults/auth.rs"]
mod auth;
#[path = "faults/k8s.rs"]
mod k8s;
#[path = "faults/v3.rs"]
mod v3;

#[test]
fn v3_histories_under_kills_and_pauses_are_linearizable_and_watchers_see_every_revision_once() {
    v3_fault_run(
        "faults (v3)",
        Cluster::start(3, &FAST_TIMING),
        kills_and_pauses_then_heal,
    );
}

#[test]
fn v3_histories_under_partitions_are_linearizable_and_watchers_see_every_revision_once() {
    v3_fault_run(
        "partitions (v3)",
        Cluster::start_partitionable(3, &FAST_TIMING),
        partitions_then_heal,
    );
}

/// v3 clients and watchers on `c` while `faults` injects faults until its `until` and heals
/// them (returning how many it injected); then the history and the watchers are checked.
fn v3_fault_run(
    what: &str,
    mut c: Cluster,
    faults: impl FnOnce(&mut Cluster, &mut Rng, Instant, Instant, &FaultLog) -> u64,
) {
    use std::sync::atomic::AtomicI64;
    let seed = seed_from_env_or_clock();
    let secs = fault_secs();
    eprintln!("{what}: seed {seed} (ETCD_FAULT_SEED={seed} replays it), {secs} s");
    let addrs = client_addrs(&c);
    let log = FaultLog::default();
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("v3client{id}"))
                .spawn(move || v3::run_client(id, &addrs, seed, start, until, &stop))
                .expect("spawn a client")
        })
        .collect();
    let leasers: Vec<_> = (0..2)
        .map(|id| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("v3leaser{id}"))
                .spawn(move || v3::run_leaser(id, &addrs, seed, until, &stop))
                .expect("spawn a lease client")
        })
        .collect();
    let last = Arc::new(AtomicI64::new(0));
    let watch_deadline = Arc::new(Mutex::new(None));
    let watchers: Vec<_> = (0..2)
        .map(|id| {
            let (addrs, last, deadline) = (addrs.clone(), last.clone(), watch_deadline.clone());
            thread::Builder::new()
                .name(format!("v3watcher{id}"))
                .spawn(move || v3::run_watcher(id, &addrs, &last, &deadline))
                .expect("spawn a watcher")
        })
        .collect();

    let mut rng = Rng::new(seed ^ 0x5A5A_A5A5_5A5A_A5A5);
    let faults = faults(&mut c, &mut rng, start, until, &log);
    let mut w = join_clients(handles);
    let mut leased_checks = 0;
    let mut let_go = 0;
    for h in leasers {
        let leased = h.join().expect("a lease client panicked");
        w.anomalies.extend(leased.anomalies);
        leased_checks += leased.checked;
        let_go += leased.let_go.len();
    }
    drop(stop_guard);
    let ops_done = start.elapsed();

    // The final history, once every member has it; the watchers must reach its end.
    let leader = c.leader();
    let (all, rev) = v3::final_history(&c.member(leader).client_addr());
    let state = v3::converge(&addrs, rev);
    last.store(rev, Ordering::SeqCst);
    *watch_deadline.lock().unwrap() = Some(Instant::now() + FINAL_CONVERGE);
    for (id, h) in watchers.into_iter().enumerate() {
        let (seen, anomalies) = h.join().expect("a watcher panicked");
        w.anomalies.extend(anomalies);
        // Exactly the final history from the first revision it saw on: no gap, no repeat,
        // the same order, keys and values.
        let first = seen.first().map_or(rev + 1, |s| s.0);
        let expected: Vec<&v3::Seen> = all.iter().filter(|s| s.0 >= first).collect();
        let seen: Vec<&v3::Seen> = seen.iter().collect();
        assert_eq!(
            first,
            all.first().map_or(first, |s| s.0),
            "watcher {id} started late"
        );
        assert!(
            seen == expected,
            "watcher {id} saw {} changes, the history has {} from revision {first} (seed {seed})",
            seen.len(),
            expected.len()
        );
    }
    // The final values join the history as reads at the end.
    for key in KEYS {
        let call = now_nanos(start);
        w.history.push(Op {
            client: FINAL_READER,
            key: key.to_string(),
            input: Input::Get,
            output: Output::Read(state.get(key).cloned()),
            call,
            ret: now_nanos(start),
        });
    }
    // Leases nobody keeps alive end, and their keys with them.
    let leader = c.leader();
    let left = v3::leftover_leased_keys(&c.member(leader).client_addr(), FINAL_CONVERGE);
    if !left.is_empty() {
        w.anomalies.push(format!(
            "{} lease-bound keys outlived their leases: {left:?}",
            left.len()
        ));
    }
    assert!(
        let_go > 0 && leased_checks > 0,
        "the lease clients did nothing ({let_go} keys, {leased_checks} checks)"
    );
    c.check_alive();
    let summary = format!(
        "seed {seed}; {} v3 ops in {:.1}s ({} in the history, {} revisions watched; {let_go} \
         lease-bound keys, {leased_checks} lease answers checked); {}; faults {faults}",
        w.stats.total(),
        ops_done.as_secs_f64(),
        w.history.len(),
        all.len(),
        w.stats.line()
    );
    check_run(what, &summary, &w, seed, &log, faults);
}

/// See `faults/auth.rs`.
#[test]
fn v3_auth_under_kills_and_pauses_lets_no_forbidden_write_through() {
    let mut c = Cluster::start(
        3,
        &[
            "-heartbeat-interval",
            "50",
            "-election-timeout",
            "500",
            "--bcrypt-cost",
            "4",
        ],
    );
    let seed = seed_from_env_or_clock();
    let secs = fault_secs();
    eprintln!("auth faults: seed {seed} (ETCD_FAULT_SEED={seed} replays it), {secs} s");
    let addrs = client_addrs(&c);
    auth::set_up(&addrs[0]);
    let log = FaultLog::default();
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let writers: Vec<_> = (0..4)
        .map(|id| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("authwriter{id}"))
                .spawn(move || auth::run_writer(id, &addrs, seed, start, until, &stop))
                .expect("spawn a writer")
        })
        .collect();
    let admin = {
        let addrs = addrs.clone();
        thread::Builder::new()
            .name("authadmin".into())
            .spawn(move || auth::run_admin(&addrs, seed, start, until))
            .expect("spawn the admin")
    };
    let mut rng = Rng::new(seed ^ 0x0A07_4A07);
    let faults = kills_and_pauses_then_heal(&mut c, &mut rng, start, until, &log);
    let runs: Vec<auth::AuthRun> = writers
        .into_iter()
        .map(|h| h.join().expect("a writer panicked"))
        .collect();
    let changes = admin.join().expect("the admin panicked");
    drop(stop_guard);
    let mut anomalies: Vec<String> = runs.iter().flat_map(|r| r.anomalies.clone()).collect();
    let toggle_ok: Vec<_> = runs.iter().flat_map(|r| r.toggle_ok.clone()).collect();
    for w in auth::writes_while_revoked(&changes, &toggle_ok) {
        anomalies.push(format!("written while the permission was revoked: {w}"));
    }
    let leader = c.leader();
    let addr = c.member(leader).client_addr();
    let forbidden = auth::read_all(&addr, "forbidden/");
    if !forbidden.is_empty() {
        anomalies.push(format!("forbidden keys exist: {forbidden:?}"));
    }
    let refused: std::collections::HashSet<&String> =
        runs.iter().flat_map(|r| &r.toggle_refused).collect();
    for (k, v) in auth::read_all(&addr, "toggle/") {
        if refused.contains(&v) {
            anomalies.push(format!("{k} holds {v}, whose write was refused"));
        }
    }
    let sum = |f: fn(&auth::AuthRun) -> u64| runs.iter().map(f).sum::<u64>();
    let summary = format!(
        "seed {seed}; {} allowed writes, {} toggle writes ok, {} refused, {} forbidden \
         refused, {} permission changes ({} answered), {} authentications; faults {faults}",
        sum(|r| r.allowed_ok),
        toggle_ok.len(),
        refused.len(),
        sum(|r| r.forbidden_refused),
        changes.len(),
        changes.iter().filter(|c| c.2.is_some()).count(),
        sum(|r| r.reauthentications),
    );
    eprintln!("auth faults: {summary}");
    assert!(
        anomalies.is_empty(),
        "{summary}\n{}\n--- faults\n{}",
        anomalies.join("\n"),
        log.dump()
    );
    assert!(
        sum(|r| r.allowed_ok) >= 50
            && !toggle_ok.is_empty()
            && !refused.is_empty()
            && sum(|r| r.forbidden_refused) >= 20,
        "too little happened to mean anything: {summary}"
    );
    assert!(faults >= 4, "only {faults} faults injected");
    c.check_alive();
}

/// The auth check's own test: only a success sent after an answered revocation and
/// answered before the next grant was sent counts.
#[test]
fn the_auth_fault_check_flags_only_writes_surely_inside_a_revocation() {
    let changes: auth::Changes = vec![
        (true, 0, Some(10)),
        (false, 100, Some(110)),
        (true, 200, Some(210)),
        (false, 300, None), // unknown: no window of its own
        (false, 400, Some(410)),
    ];
    let w = |v: &str, sent: u64, answered: u64| {
        ("toggle/k0".to_string(), v.to_string(), sent, answered)
    };
    let writes = vec![
        w("before", 20, 90),
        w("inside", 120, 190),
        w("overlapping-grant", 150, 205),
        w("sent-before-revoke-answered", 105, 150),
        w("unknown-window", 310, 390),
        w("last-window", 500, 600),
    ];
    let flagged = auth::writes_while_revoked(&changes, &writes);
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    assert!(flagged[0].contains("=inside "), "{flagged:?}");
    assert!(flagged[1].contains("=last-window "), "{flagged:?}");
}

#[test]
fn kubernetes_shaped_runs_under_kills_and_pauses_stay_linearizable_and_lose_no_event() {
    k8s::fault_run(
        "k8s faults",
        Cluster::start(3, &FAST_TIMING),
        kills_and_pauses_then_heal,
    );
}

#[test]
fn kubernetes_shaped_runs_under_partitions_stay_linearizable_and_lose_no_event() {
    k8s::fault_run(
        "k8s partitions",
        Cluster::start_partitionable(3, &FAST_TIMING),
        partitions_then_heal,
    );
}
