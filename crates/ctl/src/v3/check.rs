//! `etcdctl check perf`: etcd 3.4's one-minute write check. Puts of 256-byte keys (random,
//! under `--prefix`) and 1 KiB values are sent at the load's rate over its number of client
//! connections for 60 s; the verdict is etcdctl's: PASS when the throughput reached 90 % of
//! the rate, no request took over 0.5 s, the latencies' standard deviation stayed under
//! 0.1 s, and nothing failed. The keys are deleted afterwards (then compacted and
//! defragmented with `--auto-compact` / `--auto-defrag`).
//!
//! Not here: `check datascale`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::v3::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};

use super::{client_for, fail, Cli, Failure, EXIT_BAD_FEATURE};

/// How long the check writes.
const DURATION: Duration = Duration::from_secs(60);

/// `check` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(super) enum CheckCmd {
    /// Check the performance of the etcd cluster.
    Perf {
        /// The performance check's workload model. Accepted workloads: s(small), m(medium),
        /// l(large), xl(xLarge).
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the performance check's keys.
        #[arg(long, default_value = "/etcdctl-check-perf/")]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long = "auto-compact")]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long = "auto-defrag")]
        auto_defrag: bool,
    },
    /// Check the memory usage of holding data for different workloads (not supported).
    Datascale {
        /// Accepted, not used.
        #[arg(long, default_value = "s")]
        load: String,
    },
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

/// `check perf|datascale`.
pub(super) async fn check(cli: &Cli, cmd: &CheckCmd, out: &mut String) -> Result<(), Failure> {
    let CheckCmd::Perf {
        load,
        prefix,
        auto_compact,
        auto_defrag,
    } = cmd
    else {
        return Err(fail(
            "check datascale is not supported by this etcdctl (use check perf)",
        ));
    };
    let Some((rate, connections)) = load_of(load) else {
        return Err(Failure {
            message: format!("unknown load option {load}"),
            code: EXIT_BAD_FEATURE,
        });
    };
    let client = super::client(cli)?;
    let end = etcd_client::v3::prefix_end(prefix.as_bytes());
    let existing = client
        .range(RangeRequest {
            key: prefix.clone().into_bytes().into(),
            range_end: end.clone().into(),
            limit: 1,
            ..Default::default()
        })
        .await?;
    if !existing.kvs.is_empty() {
        return Err(Failure {
            message: format!(
                "prefix {prefix:?} has keys. Delete with etcdctl del --prefix {prefix} first"
            ),
            code: 3,
        });
    }
    let stats = run(cli, prefix, rate, connections).await?;
    let deleted = client
        .delete(DeleteRangeRequest {
            key: prefix.clone().into_bytes().into(),
            range_end: end.into(),
            ..Default::default()
        })
        .await?;
    if *auto_compact {
        let rev = deleted.header.map_or(0, |h| h.revision);
        client
            .compact_request(CompactionRequest {
                revision: rev,
                physical: true,
            })
            .await?;
        out.push_str(&format!("compacted revision {rev}\n"));
    }
    if *auto_defrag {
        for ep in &cli.endpoints {
            client_for(cli, ep)?.defragment(Default::default()).await?;
            out.push_str(&format!("Finished defragmenting etcd member[{ep}]\n"));
        }
    }
    let (verdict, ok) = stats.verdict(rate);
    out.push_str(&verdict);
    if ok {
        Ok(())
    } else {
        Err(Failure {
            message: String::new(),
            code: 1,
        })
    }
}

/// The writes themselves: `rate` puts a second over `connections` clients for [`DURATION`],
/// with a progress bar on standard output.
async fn run(cli: &Cli, prefix: &str, rate: u32, connections: usize) -> Result<Stats, Failure> {
    let (tx, rx) = async_channel(connections);
    let results = Arc::new(std::sync::Mutex::new((Vec::new(), BTreeMap::new())));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let client = super::client(cli)?;
        let (rx, results) = (rx.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(put) = next else { break };
                let started = Instant::now();
                let r = client.put_request(put).await;
                let took = started.elapsed().as_secs_f64();
                let mut res = results.lock().expect("results lock");
                match r {
                    Ok(_) => res.0.push(took),
                    Err(e) => *res.1.entry(Failure::from(e).message).or_insert(0) += 1,
                }
            }
        }));
    }
    let started = Instant::now();
    let value = vec![0u8; 1024];
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shown = 0;
    while started.elapsed() < DURATION {
        every.tick().await;
        // etcdctl's key: a random varint in 256 bytes.
        let mut key = prefix.as_bytes().to_vec();
        let mut k = [0u8; 256];
        varint(&mut k, random());
        key.extend_from_slice(&k);
        let put = PutRequest {
            key: key.into(),
            value: value.clone().into(),
            ..Default::default()
        };
        if tx.send(put).await.is_err() {
            break;
        }
        let secs = started.elapsed().as_secs();
        if secs > shown {
            shown = secs.min(DURATION.as_secs());
            progress(shown, DURATION.as_secs());
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    if shown < DURATION.as_secs() {
        progress(DURATION.as_secs(), DURATION.as_secs());
    }
    println!();
    let took = started.elapsed();
    let (latencies, errors) = std::mem::take(&mut *results.lock().expect("results lock"));
    Ok(Stats::of(&latencies, took, errors))
}

/// One bounded channel shared by the workers.
fn async_channel(
    capacity: usize,
) -> (
    tokio::sync::mpsc::Sender<PutRequest>,
    Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<PutRequest>>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// The progress bar, redrawn in place.
fn progress(done: u64, total: u64) {
    let width = 40;
    let filled = (done * width / total.max(1)) as usize;
    let mut stdout = std::io::stdout().lock();
    let _ = write!(
        stdout,
        "\r{done:3} / {total} B{}m ! {:6.2}%",
        "o".repeat(filled) + &" ".repeat(width as usize - filled),
        done as f64 * 100.0 / total.max(1) as f64
    );
    let _ = stdout.flush();
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
