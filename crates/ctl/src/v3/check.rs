//! `etcdctl check perf` and `check datascale`, as etcd 3.4's etcdctl runs them.
//!
//! - `perf`: puts of 256-byte keys (random, under `--prefix`) and 1 KiB values are sent at
//!   the load's rate over its number of client connections for 60 s; the verdict is
//!   etcdctl's: PASS when the throughput reached 90 % of the rate, no request took over
//!   0.5 s, the latencies' standard deviation stayed under 0.1 s, and nothing failed.
//! - `datascale`: the load's number of puts (512-byte random keys under `--prefix`, 512-byte
//!   values) over its number of connections, as fast as they go; the first endpoint's
//!   `process_resident_memory_bytes` (from its `/metrics`) is read before and after, and the
//!   difference printed: `PASS: Approximate system memory used : 27.14 MB.`, or FAIL when a
//!   put failed or the metric could not be read.
//!
//! Both refuse a prefix that has keys, draw etcdctl's progress bar ([`super::progress`]),
//! delete their keys afterwards, then compact and defragment with `--auto-compact` and
//! `--auto-defrag`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::v3::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use etcd_client::v3::Client;

use super::progress::Bar;
use super::{client_for, within, Cli, Failure, EXIT_BAD_FEATURE};

/// etcdctl's bound on the compaction and each defragmentation after a check.
const HALF_MINUTE: Duration = Duration::from_secs(30);
/// How long `check perf` writes.
const DURATION: Duration = Duration::from_secs(60);

/// The flags both checks take.
#[derive(clap::Args, Debug)]
pub(super) struct CheckArgs {
    /// The check's workload model. Accepted workloads: s(small), m(medium), l(large),
    /// xl(xLarge).
    #[arg(long, default_value = "s")]
    load: String,
    /// The prefix for writing the check's keys (`/etcdctl-check-perf/` or
    /// `/etcdctl-check-datascale/`).
    #[arg(long)]
    prefix: Option<String>,
    /// Compact storage with last revision after test is finished.
    #[arg(long = "auto-compact")]
    auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long = "auto-defrag")]
    auto_defrag: bool,
}

/// `check` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(super) enum CheckCmd {
    /// Check the performance of the etcd cluster.
    Perf(CheckArgs),
    /// Check the memory usage of holding data for different workloads on a given server
    /// endpoint (the first one given).
    Datascale(CheckArgs),
}

/// A load: writes per second, client connections.
fn load_of(name: &str) -> Option<(u32, usize)> {
    match name {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

/// What the writes measured.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Answered writes per second over the run.
    rps: f64,
    /// The slowest answered write, in seconds.
    slowest: f64,
    /// The standard deviation of the answered writes' latencies, in seconds.
    stddev: f64,
    /// Failed writes by error.
    errors: BTreeMap<String, u64>,
}

impl Stats {
    /// The statistics of `latencies` (seconds) over `took`, with `errors`.
    fn of(latencies: &[f64], took: Duration, errors: BTreeMap<String, u64>) -> Stats {
        let n = latencies.len() as f64;
        let mean = latencies.iter().sum::<f64>() / n.max(1.0);
        let var = latencies
            .iter()
            .map(|l| (l - mean) * (l - mean))
            .sum::<f64>()
            / n.max(1.0);
        Stats {
            rps: n / took.as_secs_f64().max(f64::MIN_POSITIVE),
            slowest: latencies.iter().copied().fold(0.0, f64::max),
            stddev: var.sqrt(),
            errors,
        }
    }

    /// etcdctl's verdict lines, and whether it passed.
    fn verdict(&self, rate: u32) -> (String, bool) {
        let mut out = String::new();
        let mut ok = true;
        if !self.errors.is_empty() {
            out.push_str("FAIL: too many errors\n");
            for (e, n) in &self.errors {
                out.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
            }
            ok = false;
        }
        let throughput = self.rps as i64 + 1;
        if self.rps / f64::from(rate) <= 0.9 {
            out.push_str(&format!(
                "FAIL: Throughput too low: {throughput} writes/s\n"
            ));
            ok = false;
        } else {
            out.push_str(&format!("PASS: Throughput is {throughput} writes/s\n"));
        }
        if self.slowest > 0.5 {
            out.push_str(&format!(
                "Slowest request took too long: {:.6}s\n",
                self.slowest
            ));
            ok = false;
        } else {
            out.push_str(&format!(
                "PASS: Slowest request took {:.6}s\n",
                self.slowest
            ));
        }
        if self.stddev > 0.1 {
            out.push_str(&format!("Stddev too high: {:.6}s\n", self.stddev));
            ok = false;
        } else {
            out.push_str(&format!("PASS: Stddev is {:.6}s\n", self.stddev));
        }
        out.push_str(if ok { "PASS\n" } else { "FAIL\n" });
        (out, ok)
    }
}

/// A `datascale` load: puts, client connections.
fn scale_of(name: &str) -> Option<(u64, usize)> {
    match name {
        "s" | "small" => Some((10_000, 50)),
        "m" | "medium" => Some((100_000, 200)),
        "l" | "large" => Some((1_000_000, 500)),
        "xl" | "xLarge" => Some((3_000_000, 1000)),
        _ => None,
    }
}

/// `check perf|datascale`.
pub(super) async fn check(cli: &Cli, cmd: &CheckCmd, out: &mut String) -> Result<(), Failure> {
    match cmd {
        CheckCmd::Perf(args) => perf(cli, args, out).await,
        CheckCmd::Datascale(args) => datascale(cli, args, out).await,
    }
}

fn unknown_load(load: &str) -> Failure {
    Failure {
        message: format!("unknown load option {load}"),
        code: EXIT_BAD_FEATURE,
    }
}

/// What etcdctl prints and exits with on a failed check (the lines are on `out`).
fn failed() -> Failure {
    Failure {
        message: String::new(),
        code: 1,
    }
}

async fn perf(cli: &Cli, args: &CheckArgs, out: &mut String) -> Result<(), Failure> {
    let prefix = args.prefix.as_deref().unwrap_or("/etcdctl-check-perf/");
    let (rate, connections) = load_of(&args.load).ok_or_else(|| unknown_load(&args.load))?;
    let client = super::client(cli)?;
    refuse_used(&client, prefix).await?;
    let stats = run(cli, prefix, rate, connections).await?;
    clean_up(cli, &client, prefix, args, out).await?;
    let (verdict, ok) = stats.verdict(rate);
    out.push_str(&verdict);
    if ok {
        Ok(())
    } else {
        Err(failed())
    }
}

async fn datascale(cli: &Cli, args: &CheckArgs, out: &mut String) -> Result<(), Failure> {
    let prefix = args
        .prefix
        .as_deref()
        .unwrap_or("/etcdctl-check-datascale/");
    let (puts, connections) = scale_of(&args.load).ok_or_else(|| unknown_load(&args.load))?;
    let client = super::client(cli)?;
    refuse_used(&client, prefix).await?;
    let first = cli
        .endpoints
        .first()
        .map_or("127.0.0.1:2379", |e| e.as_str());
    let Some(before) = resident_memory(cli, first).await else {
        out.push_str(
            "FAIL: Could not read process_resident_memory_bytes before the put operations.\n",
        );
        return Err(failed());
    };
    println!(
        "Start data scale check for work load [{puts} key-value pairs, 1024 bytes per \
         key-value, {connections} concurrent clients]."
    );
    let bar = Arc::new(Bar::start(puts));
    let counted = bar.clone();
    let writers = Writers::start(cli, connections, move || counted.add(1))?;
    let value = vec![0u8; 512];
    let mut k = [0u8; 512];
    for _ in 0..puts {
        if !writers.send(random_put(prefix, &mut k, &value)).await {
            break;
        }
    }
    let (_, errors) = writers.finish().await;
    bar.finish();
    let Some(after) = resident_memory(cli, first).await else {
        out.push_str(
            "FAIL: Could not read process_resident_memory_bytes after the put operations.\n",
        );
        return Err(failed());
    };
    clean_up(cli, &client, prefix, args, out).await?;
    if !errors.is_empty() {
        out.push_str("FAIL: too many errors\n");
        for (e, n) in &errors {
            out.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
        }
        return Err(failed());
    }
    let used = (after - before) / (1024.0 * 1024.0);
    out.push_str(&format!(
        "PASS: Approximate system memory used : {used:.2} MB.\n"
    ));
    Ok(())
}

/// etcdctl's refusal of a prefix that has keys.
async fn refuse_used(client: &Client, prefix: &str) -> Result<(), Failure> {
    let existing = client
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: etcd_client::v3::prefix_end(prefix.as_bytes()).into(),
            limit: 1,
            ..Default::default()
        })
        .await?;
    if existing.kvs.is_empty() {
        return Ok(());
    }
    Err(Failure {
        message: format!(
            "prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"
        ),
        code: 3,
    })
}

/// Deletes the check's keys, then compacts and defragments if asked.
async fn clean_up(
    cli: &Cli,
    client: &Client,
    prefix: &str,
    args: &CheckArgs,
    out: &mut String,
) -> Result<(), Failure> {
    let deleted = client
        .delete(DeleteRangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: etcd_client::v3::prefix_end(prefix.as_bytes()).into(),
            ..Default::default()
        })
        .await?;
    // etcdctl prints these as it goes, before the verdict.
    if args.auto_compact {
        let rev = deleted.header.map_or(0, |h| h.revision);
        out.push_str(&format!("Compacting with revision {rev}\n"));
        within(
            HALF_MINUTE,
            client.compact_request(CompactionRequest {
                revision: rev,
                physical: true,
            }),
        )
        .await?;
        out.push_str(&format!("Compacted with revision {rev}\n"));
    }
    if args.auto_defrag {
        for ep in &cli.endpoints {
            out.push_str(&format!("Defragmenting {ep:?}\n"));
            within(
                HALF_MINUTE,
                client_for(cli, ep)?.defragment(Default::default()),
            )
            .await?;
            out.push_str(&format!("Defragmented {ep:?}\n"));
        }
    }
    Ok(())
}

/// The member's `process_resident_memory_bytes`, read from `GET /metrics` at `endpoint`
/// (plain, or TLS with the command's CA and client certificate); `None`, with etcdctl's
/// line on what went wrong printed, when it cannot be read.
async fn resident_memory(cli: &Cli, endpoint: &str) -> Option<f64> {
    const NAME: &str = "process_resident_memory_bytes";
    let base = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    };
    let fetched = async {
        let tls = if base.starts_with("https://") {
            let cert = cli.cert.clone().zip(cli.key_file.clone());
            Some(
                etcd_client::Tls::new(cli.cacert.as_deref(), cert.as_ref())
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let mut conn = etcd_client::Connection::open(&base, tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        conn.request(etcd_client::Method::GET, "/metrics", None)
            .await
            .map_err(|e| e.to_string())
    };
    let body = match tokio::time::timeout(cli.command_timeout, fetched).await {
        Ok(Ok(answer)) => answer.body,
        Ok(Err(e)) => {
            println!("fetch error: {e}");
            return None;
        }
        Err(_) => {
            println!("fetch error: {base}/metrics: timed out");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&body);
    let Some(value) = text
        .lines()
        .find_map(|l| l.strip_prefix(NAME))
        .map(str::trim)
    else {
        println!("could not find: {NAME}");
        return None;
    };
    match value.parse::<f64>() {
        Ok(v) if v != 0.0 => Some(v),
        Ok(_) => None,
        Err(e) => {
            println!("parse error: {e}");
            None
        }
    }
}

/// `connections` clients, each sending the puts it is handed in turn, and what came of them.
struct Writers {
    tx: tokio::sync::mpsc::Sender<PutRequest>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    results: Arc<std::sync::Mutex<Results>>,
}

/// Answered puts' latencies (seconds), and failed puts by error.
type Results = (Vec<f64>, BTreeMap<String, u64>);

impl Writers {
    /// Starts the clients; `done` is called as each put is answered or fails.
    fn start(
        cli: &Cli,
        connections: usize,
        done: impl Fn() + Send + Sync + 'static,
    ) -> Result<Writers, Failure> {
        let (tx, rx) = tokio::sync::mpsc::channel(connections.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let results = Arc::new(std::sync::Mutex::new(Results::default()));
        let done = Arc::new(done);
        let mut workers = Vec::new();
        for _ in 0..connections {
            let client = super::client(cli)?;
            let (rx, results, done) = (rx.clone(), results.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(put) = next else { break };
                    let started = Instant::now();
                    let r = client.put_request(put).await;
                    let took = started.elapsed().as_secs_f64();
                    {
                        let mut res = results.lock().expect("results lock");
                        match r {
                            Ok(_) => res.0.push(took),
                            Err(e) => *res.1.entry(Failure::from(e).message).or_insert(0) += 1,
                        }
                    }
                    done();
                }
            }));
        }
        Ok(Writers {
            tx,
            workers,
            results,
        })
    }

    /// Hands out one put; false once no client is left to take it.
    async fn send(&self, put: PutRequest) -> bool {
        self.tx.send(put).await.is_ok()
    }

    /// Waits for the puts handed out, then gives what came of them.
    async fn finish(self) -> Results {
        drop(self.tx);
        for w in self.workers {
            let _ = w.await;
        }
        std::mem::take(&mut *self.results.lock().expect("results lock"))
    }
}

/// `check perf`'s writes: `rate` puts a second over `connections` clients for [`DURATION`],
/// with the bar counting its seconds.
async fn run(cli: &Cli, prefix: &str, rate: u32, connections: usize) -> Result<Stats, Failure> {
    let writers = Writers::start(cli, connections, || {})?;
    let started = Instant::now();
    let seconds = DURATION.as_secs();
    let bar = Bar::start(seconds);
    let ticker = tokio::spawn(async move {
        for _ in 0..seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            bar.add(1);
        }
        bar.finish();
    });
    let value = vec![0u8; 1024];
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut k = [0u8; 256];
    while started.elapsed() < DURATION {
        every.tick().await;
        if !writers.send(random_put(prefix, &mut k, &value)).await {
            break;
        }
    }
    let (latencies, errors) = writers.finish().await;
    let took = started.elapsed();
    let _ = ticker.await;
    Ok(Stats::of(&latencies, took, errors))
}

/// A put of `value` at etcdctl's random key: `prefix`, then `k` (which etcdctl reuses from
/// put to put) with a random varint written at its head.
fn random_put(prefix: &str, k: &mut [u8], value: &[u8]) -> PutRequest {
    varint(k, random());
    let mut key = prefix.as_bytes().to_vec();
    key.extend_from_slice(k);
    PutRequest {
        key: key.into(),
        value: value.to_vec().into(),
        ..Default::default()
    }
}

/// Go's `binary.PutVarint`: zig-zag, then 7 bits a byte.
fn varint(buf: &mut [u8], x: i64) -> usize {
    let mut ux = ((x << 1) ^ (x >> 63)) as u64;
    let mut i = 0;
    while ux >= 0x80 && i < buf.len() {
        buf[i] = (ux as u8) | 0x80;
        ux >>= 7;
        i += 1;
    }
    if i < buf.len() {
        buf[i] = ux as u8;
        i += 1;
    }
    i
}

/// A non-negative random number (the keys only need to differ).
fn random() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_varints() {
        let mut b = [0u8; 10];
        assert_eq!((varint(&mut b, 1), b[0]), (1, 2));
        assert_eq!((varint(&mut b, -1), b[0]), (1, 1));
        assert_eq!(varint(&mut b, 300), 2);
        assert_eq!(&b[..2], &[0xd8, 0x04]);
    }

    #[test]
    fn verdicts_as_etcdctl_gives_them() {
        let fast = Stats::of(&[0.01; 9000], Duration::from_secs(60), BTreeMap::new());
        let (text, ok) = fast.verdict(150);
        assert!(ok);
        assert_eq!(
            text,
            "PASS: Throughput is 151 writes/s\nPASS: Slowest request took 0.010000s\n\
             PASS: Stddev is 0.000000s\nPASS\n"
        );
        let mut errors = BTreeMap::new();
        errors.insert("etcdserver: request timed out".to_string(), 3);
        let slow = Stats::of(&[0.01, 0.9], Duration::from_secs(60), errors);
        let (text, ok) = slow.verdict(150);
        assert!(!ok);
        assert_eq!(
            text,
            "FAIL: too many errors\nFAIL: ERROR(etcdserver: request timed out) -> 3\n\
             FAIL: Throughput too low: 1 writes/s\nSlowest request took too long: 0.900000s\n\
             Stddev too high: 0.445000s\nFAIL\n"
        );
        assert_eq!(load_of("xLarge"), Some((15000, 1000)));
        assert_eq!(load_of("huge"), None);
    }
}
