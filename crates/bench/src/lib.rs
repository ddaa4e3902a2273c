//! `etcd-bench`: a closed-loop load generator for the etcd HTTP APIs.
//!
//! N workers each own one keep-alive HTTP/1.1 connection (spread round-robin over the
//! endpoints) and send their next request as soon as the previous answer is in. Workloads:
//! `put`, `get` (optionally `--consistent`), `mixed` reads and writes, `txn` (test-and-set on
//! keys each worker owns, so that a failed comparison is a server error, not a race), and
//! `watch` (W watchers on one key; the latency of each notification is measured from the
//! response of the write that caused it). Both the v1 API and the v2 flavour (`PUT /v2/keys`)
//! are spoken, so the same tool drives etcd-rs and stock etcd with `--enable-v2`.
//!
//! Reports ops/s, latency quantiles from an HDR histogram, errors by status, and, given
//! `--server-pid`, the servers' CPU time per operation and resident memory (from `/proc`).
//! The key space is filled before the clock starts for workloads that read or compare.
//!
//! What it does not do: open-loop (fixed-rate) load, or any coordination between several
//! bench processes.

#![allow(clippy::too_many_arguments)]

mod api;
mod stats;
mod v3;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use etcd_client::{Bytes, Connection, Method, Tls};
use hdrhistogram::Histogram;

pub use api::Api;
use stats::{Errors, Summary};

/// A request that takes longer than this counts as a `timeout` error (and its connection is
/// replaced).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A worker whose connection cannot be re-established this many times in a row stops.
const MAX_RECONNECTS: u32 = 20;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "etcd-bench",
    version,
    about = "Closed-loop load for the etcd v1/v2 HTTP APIs (etcd-rs, or etcd with --enable-v2)"
)]
pub struct Cli {
    /// Client URLs, comma-separated; connections are spread over them round-robin.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:4001",
        global = true
    )]
    pub endpoints: Vec<String>,
    /// Keep-alive connections (workers).
    #[arg(long, short = 'c', default_value_t = 8, global = true)]
    pub conns: usize,
    /// The API flavour.
    #[arg(long, value_enum, default_value = "v1", global = true)]
    pub api: Api,
    /// Size of the key space.
    #[arg(long, default_value_t = 1000, global = true)]
    pub keys: u64,
    /// Directory the benchmark keys live under.
    #[arg(long, default_value = "/bench", global = true)]
    pub prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256, global = true)]
    pub value_size: usize,
    /// How long to measure (`10s`, `500ms`, `2m`); the default is 10 s unless `--total` is
    /// given.
    #[arg(long, value_parser = parse_duration, global = true)]
    pub duration: Option<Duration>,
    /// Stop after this many operations (with `--duration` too: whichever comes first).
    #[arg(long, global = true)]
    pub total: Option<u64>,
    /// A local server process whose CPU time and memory to report (repeatable).
    #[arg(long = "server-pid", global = true)]
    pub server_pids: Vec<u32>,
    /// Print one line of JSON instead of the report.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress line.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// CA certificate (PEM) for https:// endpoints.
    #[arg(long, global = true)]
    pub cacert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), with `--key`.
    #[arg(long, requires = "key", global = true)]
    pub cert: Option<std::path::PathBuf>,
    /// Client key (PEM), with `--cert`.
    #[arg(long, requires = "cert", global = true)]
    pub key: Option<std::path::PathBuf>,
    /// v3 auth: authenticate as `NAME:PASSWORD` (as etcdctl's `--user`) and send the token
    /// with every request.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The workload.
    #[command(subcommand)]
    pub op: Op,
}

/// Workloads.
#[derive(Debug, Clone, Subcommand)]
pub enum Op {
    /// Set keys (round-robin over the key space).
    Put,
    /// Read keys (filled first).
    Get {
        /// Linearizable reads (`consistent=true` / `quorum=true`).
        #[arg(long)]
        consistent: bool,
    },
    /// Reads and writes, each operation a read with probability F.
    Mixed {
        /// Fraction of operations that are reads, 0 to 1.
        #[arg(long, default_value_t = 0.9, value_parser = parse_fraction)]
        read_fraction: f64,
        /// Linearizable reads.
        #[arg(long)]
        consistent: bool,
    },
    /// Test-and-set: each worker swaps the values of its own keys, comparing the value it set.
    Txn,
    /// W watchers on one key; each write's notification latency to every watcher.
    Watch {
        /// Watchers, each on its own connection.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Writes to measure (after one unmeasured warm-up write).
        #[arg(long, default_value_t = 100)]
        writes: u64,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s or m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(format!("{f} is not between 0 and 1"))
    }
}

/// Runs `etcd-bench` with the process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(summary) if summary.ok > 0 => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("etcd-bench: no operation succeeded");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("etcd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one benchmark and prints its report; returns the summary.
pub async fn run(cli: Cli) -> Result<Summary, String> {
    if cli.conns == 0 || cli.keys == 0 || cli.endpoints.is_empty() {
        return Err("--conns, --keys and --endpoints must not be zero or empty".into());
    }
    if !cli.prefix.starts_with('/') || cli.prefix.ends_with('/') {
        return Err("--prefix must start with / and not end with /".into());
    }
    let tls = match (&cli.cacert, &cli.cert, &cli.key) {
        (None, None, _) => None,
        (ca, cert, key) => {
            let pair = cert.clone().zip(key.clone());
            Some(Tls::new(ca.as_deref(), pair.as_ref()).map_err(|e| e.to_string())?)
        }
    };
    if cli.api == Api::V3 && tls.is_some() {
        return Err("--api v3 over TLS is not supported by etcd-bench yet".into());
    }
    let setup = Setup {
        endpoints: cli.endpoints.iter().map(|e| endpoint(e, &tls)).collect(),
        tls,
        api: cli.api,
        pids: cli.server_pids.iter().map(u32::to_string).collect(),
        quiet: cli.quiet,
    };
    let summary = match cli.op.clone() {
        Op::Watch { watchers, writes } if cli.api == Api::V3 => {
            watch_v3(&cli, &setup, watchers, writes).await?
        }
        Op::Watch { watchers, writes } => watch(&cli, &setup, watchers, writes).await?,
        op => closed_loop(&cli, &setup, op).await?,
    };
    if cli.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.human());
    }
    Ok(summary)
}

/// `HOST:PORT` → a URL.
fn endpoint(e: &str, tls: &Option<Tls>) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_string()
    } else if tls.is_some() {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    }
}

struct Setup {
    endpoints: Vec<String>,
    tls: Option<Tls>,
    api: Api,
    pids: Vec<String>,
    quiet: bool,
}

impl Setup {
    fn endpoint_for(&self, worker: usize) -> &str {
        &self.endpoints[worker % self.endpoints.len()]
    }

    async fn connect(&self, worker: usize) -> Result<Connection, String> {
        let ep = self.endpoint_for(worker);
        Connection::open(ep, self.tls.as_ref())
            .await
            .map_err(|e| format!("{ep}: {e}"))
    }
}

/// What a closed-loop worker sends.
#[derive(Clone, Copy)]
enum Kind {
    Put,
    Get,
    Mixed(f64),
    Txn,
}

/// State shared by the workers of one run.
struct Plan {
    kind: Kind,
    api: Api,
    conns: usize,
    /// Key paths (`/v2/keys/bench/17`).
    paths: Vec<String>,
    /// Read paths (with the consistency query when asked).
    read_paths: Vec<String>,
    /// `value=...`: what `put` writes and the key space is filled with.
    put_form: Bytes,
    /// Test-and-set bodies: `swap[0]` sets values[1] if values[0] is there, `swap[1]` back.
    swap: [Bytes; 2],
    next: AtomicU64,
    total: Option<u64>,
    deadline: Option<Instant>,
    stop: AtomicBool,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Plan {
    /// Claims the next operation; `None` when the run is over.
    fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if self.total.is_some_and(|t| n >= t) {
            return None;
        }
        Some(n)
    }
}

struct WorkerResult {
    latency: Histogram<u64>,
    ok: u64,
    errors: Errors,
    /// Operations sent again after Unavailable (v3).
    retries: u64,
    fatal: Option<String>,
}

async fn closed_loop(cli: &Cli, setup: &Setup, op: Op) -> Result<Summary, String> {
    let (kind, consistent, name) = match op {
        Op::Put => (Kind::Put, false, "put".to_string()),
        Op::Get { consistent } => (Kind::Get, consistent, "get".to_string()),
        Op::Mixed {
            read_fraction,
            consistent,
        } => (
            Kind::Mixed(read_fraction),
            consistent,
            format!("mixed({read_fraction})"),
        ),
        Op::Txn => (Kind::Txn, false, "txn".to_string()),
        Op::Watch { .. } => unreachable!("watch has its own loop"),
    };
    let name = if consistent {
        format!("{name} --consistent")
    } else {
        name
    };
    if matches!(kind, Kind::Txn) && cli.keys < cli.conns as u64 {
        return Err("txn needs at least as many keys as connections".into());
    }
    let api = setup.api;
    let paths: Vec<String> = (0..cli.keys)
        .map(|i| api.key_path(&format!("{}/{i}", cli.prefix)))
        .collect();
    let read_paths = if consistent {
        paths
            .iter()
            .map(|p| format!("{p}{}", api.consistent_query()))
            .collect()
    } else {
        paths.clone()
    };
    let values = [api::value(cli.value_size, 0), api::value(cli.value_size, 1)];
    let mut plan = Plan {
        kind,
        api,
        conns: cli.conns,
        paths,
        read_paths,
        put_form: api::set_form(&values[0]),
        swap: [
            api::cas_form(&values[0], &values[1]),
            api::cas_form(&values[1], &values[0]),
        ],
        next: AtomicU64::new(0),
        total: None,
        deadline: None,
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };

    // v3: one HTTP/2 connection per worker.
    let mut v3_plan = v3::V3Plan {
        keys: plan.paths.iter().map(|k| Bytes::from(k.clone())).collect(),
        values: [
            Bytes::from(values[0].clone()),
            Bytes::from(values[1].clone()),
        ],
        consistent,
        token: None,
    };
    let mut conns = Vec::with_capacity(cli.conns);
    let mut channels = Vec::new();
    for w in 0..cli.conns {
        if api == Api::V3 {
            channels.push(v3::connect(setup.endpoint_for(w)).await?);
        } else {
            conns.push(setup.connect(w).await?);
        }
    }
    if let (Some(user), Some(channel)) = (&cli.user, channels.first()) {
        v3_plan.token = Some(v3::authenticate(channel, user).await?);
    }
    let v3_plan = Arc::new(v3_plan);
    if !matches!(kind, Kind::Put) {
        if api == Api::V3 {
            v3::fill(&v3_plan, &channels).await?;
        } else {
            fill(&plan, &mut conns).await?;
        }
    }

    plan.total = cli.total;
    let duration = cli
        .duration
        .or(cli.total.is_none().then_some(Duration::from_secs(10)));
    let started = Instant::now();
    plan.deadline = duration.map(|d| started + d);
    let plan = Arc::new(plan);
    let meter = Meter::start(&setup.pids);

    let progress = progress(setup.quiet, plan.clone(), started);
    let mut tasks = Vec::with_capacity(cli.conns);
    for (w, conn) in conns.into_iter().enumerate() {
        let plan = plan.clone();
        let endpoint = setup.endpoint_for(w).to_string();
        let tls = setup.tls.clone();
        tasks.push(tokio::spawn(worker(w, plan, conn, endpoint, tls)));
    }
    let endpoints = Arc::new(setup.endpoints.clone());
    for (w, channel) in channels.into_iter().enumerate() {
        let (plan, v3_plan) = (plan.clone(), v3_plan.clone());
        let at = v3::At {
            endpoints: endpoints.clone(),
            current: w % endpoints.len(),
        };
        tasks.push(tokio::spawn(v3::worker(w, plan, v3_plan, channel, at)));
    }
    let mut latency = stats::histogram();
    let mut ok = 0;
    let mut retries = 0;
    let mut errors = Errors::new();
    let mut fatal = None;
    for t in tasks {
        let r = t.await.map_err(|e| format!("a worker failed: {e}"))?;
        latency.add(&r.latency).expect("same histogram bounds");
        ok += r.ok;
        retries += r.retries;
        for (k, n) in r.errors {
            *errors.entry(k).or_default() += n;
        }
        fatal = fatal.or(r.fatal);
    }
    let elapsed = started.elapsed();
    plan.stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    if let Some(f) = fatal {
        eprintln!("etcd-bench: a worker gave up: {f}");
    }
    let mut summary = meter.finish(name, api, cli, elapsed, latency, errors);
    summary.ok = ok;
    summary.retries = retries;
    Ok(summary)
}

/// Sets every key to `values[0]`, each connection taking its share of the key space.
async fn fill(plan: &Plan, conns: &mut [Connection]) -> Result<(), String> {
    let n = conns.len() as u64;
    let keys = plan.paths.len() as u64;
    let sets = conns.iter_mut().enumerate().map(|(w, conn)| async move {
        let mut k = w as u64;
        while k < keys {
            let r = conn
                .request(
                    plan.api.put_method(),
                    &plan.paths[k as usize],
                    Some(plan.put_form.clone()),
                )
                .await
                .map_err(|e| format!("filling the key space: {e}"))?;
            if r.status >= 300 {
                return Err(format!(
                    "filling the key space: HTTP {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            k += n;
        }
        Ok(())
    });
    for r in join_all(sets).await {
        r?;
    }
    Ok(())
}

/// Awaits all futures concurrently on this task.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.expect("all ready")).collect()
}

async fn worker(
    w: usize,
    plan: Arc<Plan>,
    mut conn: Connection,
    endpoint: String,
    tls: Option<Tls>,
) -> WorkerResult {
    let mut res = WorkerResult {
        latency: stats::histogram(),
        ok: 0,
        errors: Errors::new(),
        retries: 0,
        fatal: None,
    };
    let keys = plan.paths.len() as u64;
    // Test-and-set: this worker's keys, and which value each holds now.
    let mine: Vec<u64> = (w as u64..keys).step_by(plan.conns).collect();
    let mut holds = vec![0usize; mine.len()];
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    while let Some(n) = plan.claim() {
        let key = (n % keys) as usize;
        let read = match plan.kind {
            Kind::Get => true,
            Kind::Mixed(f) => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 11) as f64 / (1u64 << 53) as f64 <= f
            }
            Kind::Put | Kind::Txn => false,
        };
        let slot = (n / plan.conns as u64) as usize % mine.len().max(1);
        let (method, path, form) = if read {
            (Method::GET, &plan.read_paths[key], None)
        } else if matches!(plan.kind, Kind::Txn) {
            let k = mine[slot] as usize;
            (
                plan.api.put_method(),
                &plan.paths[k],
                Some(plan.swap[holds[slot]].clone()),
            )
        } else {
            (
                plan.api.put_method(),
                &plan.paths[key],
                Some(plan.put_form.clone()),
            )
        };
        let t = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, conn.request(method, path, form)).await;
        let failure = match answer {
            Ok(Ok(r)) if r.status < 300 => {
                stats::record(&mut res.latency, t.elapsed());
                res.ok += 1;
                if matches!(plan.kind, Kind::Txn) {
                    holds[slot] ^= 1;
                }
                plan.done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(Ok(r)) => {
                *res.errors.entry(r.status.to_string()).or_default() += 1;
                plan.failed.fetch_add(1, Ordering::Relaxed);
                if conn.is_open() {
                    continue;
                }
                "connection closed by the server"
            }
            Ok(Err(_)) => "connection",
            Err(_) => "timeout",
        };
        if failure != "connection closed by the server" {
            *res.errors.entry(failure.to_string()).or_default() += 1;
            plan.failed.fetch_add(1, Ordering::Relaxed);
        }
        match reconnect(&endpoint, tls.as_ref(), &plan).await {
            Ok(c) => conn = c,
            Err(e) => {
                res.fatal = Some(e);
                break;
            }
        }
    }
    res
}

async fn reconnect(endpoint: &str, tls: Option<&Tls>, plan: &Plan) -> Result<Connection, String> {
    let mut last = String::new();
    for _ in 0..MAX_RECONNECTS {
        if plan.stop.load(Ordering::Relaxed) {
            break;
        }
        match Connection::open(endpoint, tls).await {
            Ok(c) => return Ok(c),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cannot reconnect to {endpoint}: {last}"))
}

/// Prints a progress line each second on standard error until the plan stops.
fn progress(quiet: bool, plan: Arc<Plan>, started: Instant) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let tty = std::io::stderr().is_terminal();
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while !plan.stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let done = plan.done.load(Ordering::Relaxed);
            let line = format!(
                "[{:6.1}s] {done} ops, {}/s now, {} errors",
                started.elapsed().as_secs_f64(),
                done - last,
                plan.failed.load(Ordering::Relaxed)
            );
            last = done;
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}   ")
            } else {
                writeln!(err, "{line}")
            };
        }
        if tty {
            let _ = writeln!(std::io::stderr());
        }
    })
}

/// The watch workload: `watchers` long polls on one key, `writes` measured writes, each
/// waiting for every watcher's notification (or 10 s) before the next.
async fn watch(cli: &Cli, setup: &Setup, watchers: usize, writes: u64) -> Result<Summary, String> {
    let api = setup.api;
    let key = format!("{}/watched", cli.prefix);
    let path = api.key_path(&key);
    let form = api::set_form(&api::value(cli.value_size, 0));
    let mut writer = setup.connect(0).await?;
    let (first, _) = write_once(api, &mut writer, &path, &form).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let mut conn = setup.connect(w).await?;
        let tx = tx.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = first + 1;
            loop {
                let (m, p, f) = api.watch_request(&key, next);
                let Ok(r) = conn.request(m, &p, f).await else {
                    return;
                };
                let at = Instant::now();
                let Some(index) = api.event_index(&r.body) else {
                    return;
                };
                if tx.send((index, at)).is_err() {
                    return;
                }
                next = index + 1;
            }
        }));
    }
    drop(tx);

    let mut latency = stats::histogram();
    let mut errors = Errors::new();
    let mut ok = 0;
    let mut started = Instant::now();
    let mut meter = Meter::start(&setup.pids);
    for round in 0..=writes {
        if round == 1 {
            started = Instant::now();
            meter = Meter::start(&setup.pids);
        }
        let (index, at) = write_once(api, &mut writer, &path, &form).await?;
        let round_stats = (round > 0).then_some((&mut latency, &mut ok, &mut errors));
        collect_round(&mut rx, index, at, watchers, round_stats).await;
        if !setup.quiet && round > 0 && round % 10 == 0 {
            eprintln!("[{round}/{writes} writes] {ok} notifications");
        }
    }
    let elapsed = started.elapsed();
    for t in tasks {
        t.abort();
    }
    let op = format!("watch({watchers} watchers)");
    let mut summary = meter.finish(op, api, cli, elapsed, latency, errors);
    summary.ok = ok;
    (summary.conns, summary.keys) = (watchers, 1);
    Ok(summary)
}

/// The watch workload over v3: `watchers` streams on one key, spread over `--conns`
/// connections.
async fn watch_v3(
    cli: &Cli,
    setup: &Setup,
    watchers: usize,
    writes: u64,
) -> Result<Summary, String> {
    let mut channels = Vec::with_capacity(cli.conns);
    for w in 0..cli.conns {
        channels.push(v3::connect(setup.endpoint_for(w)).await?);
    }
    let key = Bytes::from(format!("{}/watched", cli.prefix));
    let value = Bytes::from(api::value(cli.value_size, 0));
    let mut meter = Meter::start(&setup.pids);
    let (latency, ok, errors, elapsed) =
        v3::watch(&channels, key, value, watchers, writes, setup.quiet, || {
            meter = Meter::start(&setup.pids)
        })
        .await?;
    let op = format!("watch({watchers} watchers)");
    let mut summary = meter.finish(op, Api::V3, cli, elapsed, latency, errors);
    summary.ok = ok;
    summary.keys = 1;
    Ok(summary)
}

/// How long one watch round may wait for its notifications.
const ROUND_LIMIT: Duration = Duration::from_secs(10);

/// One watch round: waits (at most [`ROUND_LIMIT`]) until each of `watchers` has reported
/// change `id`, written at `at`, on `rx`; with `measured`, records each notification's
/// latency, counts it, and counts the watchers that never reported as `missed`.
async fn collect_round(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    id: u64,
    at: Instant,
    watchers: usize,
    measured: Option<(&mut Histogram<u64>, &mut u64, &mut Errors)>,
) {
    let mut seen = 0;
    let mut measured = measured;
    let limit = Instant::now() + ROUND_LIMIT;
    while seen < watchers {
        match tokio::time::timeout_at(limit.into(), rx.recv()).await {
            Ok(Some((i, when))) if i == id => {
                seen += 1;
                if let Some((latency, ok, _)) = measured.as_mut() {
                    stats::record(latency, when.saturating_duration_since(at));
                    **ok += 1;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Some((_, _, errors)) = measured {
        if seen < watchers {
            *errors.entry("missed".into()).or_default() += (watchers - seen) as u64;
        }
    }
}

/// CPU time of the servers and of this process from the start of the measured phase.
struct Meter {
    pids: Vec<String>,
    server: Option<u64>,
    client: Option<u64>,
}

impl Meter {
    fn start(pids: &[String]) -> Meter {
        Meter {
            pids: pids.to_vec(),
            server: stats::total_cpu_us(pids),
            client: stats::cpu_us(&std::process::id().to_string()),
        }
    }

    /// The summary of a run that ends now (its `ok` count still to fill in).
    fn finish(
        &self,
        op: String,
        api: Api,
        cli: &Cli,
        elapsed: Duration,
        latency: Histogram<u64>,
        errors: Errors,
    ) -> Summary {
        let since = |now: Option<u64>, then: Option<u64>| {
            now.zip(then).map(|(now, then)| now.saturating_sub(then))
        };
        Summary {
            op,
            api: api.name(),
            conns: cli.conns,
            keys: cli.keys,
            value_size: cli.value_size,
            elapsed,
            ok: 0,
            latency,
            errors,
            retries: 0,
            server_cpu_us: since(stats::total_cpu_us(&self.pids), self.server),
            client_cpu_us: since(stats::cpu_us(&std::process::id().to_string()), self.client),
            server_rss_kib: (!self.pids.is_empty())
                .then(|| self.pids.iter().filter_map(|p| stats::rss_kib(p)).sum()),
        }
    }
}

/// One write: its index and when its answer arrived.
async fn write_once(
    api: Api,
    writer: &mut Connection,
    path: &str,
    form: &Bytes,
) -> Result<(u64, Instant), String> {
    let r = writer
        .request(api.put_method(), path, Some(form.clone()))
        .await
        .map_err(|e| format!("write: {e}"))?;
    let at = Instant::now();
    if r.status >= 300 {
        return Err(format!("write: HTTP {}", r.status));
    }
    let index = api
        .event_index(&r.body)
        .ok_or_else(|| format!("write answer has no index: {:?}", r.body))?;
    Ok((index, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_fractions_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5h").is_err());
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert!(parse_fraction("1.5").is_err());
    }

    #[test]
    fn command_line_shapes() {
        let cli = Cli::parse_from([
            "etcd-bench",
            "--endpoints",
            "a:1,http://b:2",
            "-c",
            "64",
            "--api",
            "v2",
            "get",
            "--consistent",
        ]);
        assert_eq!(cli.endpoints, ["a:1", "http://b:2"]);
        assert_eq!(cli.conns, 64);
        assert_eq!(cli.api, Api::V2);
        assert!(matches!(cli.op, Op::Get { consistent: true }));
        assert_eq!(endpoint("a:1", &None), "http://a:1");
        let cli = Cli::parse_from(["etcd-bench", "mixed", "--read-fraction", "0.5", "--json"]);
        assert!(cli.json);
        assert!(matches!(cli.op, Op::Mixed { read_fraction, .. } if read_fraction == 0.5));
    }

    #[test]
    fn claims_stop_at_the_total() {
        let plan = Plan {
            kind: Kind::Put,
            api: Api::V1,
            conns: 1,
            paths: vec![],
            read_paths: vec![],
            put_form: Bytes::new(),
            swap: [Bytes::new(), Bytes::new()],
            next: AtomicU64::new(0),
            total: Some(3),
            deadline: None,
            stop: AtomicBool::new(false),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        };
        let claimed: Vec<u64> = std::iter::from_fn(|| plan.claim()).collect();
        assert_eq!(claimed, [0, 1, 2]);
    }
}
