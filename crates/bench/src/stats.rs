//! What a run measured: latencies (an HDR histogram in microseconds), errors by kind, and the
//! CPU time and memory of local server processes read from `/proc`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records one latency.
pub fn record(hist: &mut Histogram<u64>, took: Duration) {
    let us = (took.as_micros() as u64).clamp(1, 600_000_000);
    hist.saturating_record(us);
}

/// Errors by kind: an HTTP status (`"412"`), `"connection"` or `"timeout"`.
pub type Errors = BTreeMap<String, u64>;

/// CPU time (user + system) of a process, from `/proc/<pid>/stat`, in microseconds.
///
/// The kernel reports it in clock ticks of `USER_HZ`, which is 100 on every Linux
/// architecture (it is part of the `/proc` ABI, independent of the kernel's own `HZ`).
pub fn cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks * 10_000)
}

/// utime + stime from the text of `/proc/<pid>/stat` (fields 14 and 15; the command name,
/// field 2, is in parentheses and may itself contain spaces and parentheses).
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state), so field N is at N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The summed CPU time of some processes.
pub fn total_cpu_us(pids: &[String]) -> Option<u64> {
    pids.iter().map(|p| cpu_us(p)).sum()
}

/// Everything a run reports.
pub struct Summary {
    /// Workload name (`put`, `get`, ...).
    pub op: String,
    /// `v1` or `v2`.
    pub api: &'static str,
    /// Connections (for `watch`: watchers).
    pub conns: usize,
    /// Key space.
    pub keys: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Measured time.
    pub elapsed: Duration,
    /// Operations completed without error.
    pub ok: u64,
    /// Latencies of successful operations.
    pub latency: Histogram<u64>,
    /// Failed operations by kind.
    pub errors: Errors,
    /// v3 operations sent again, to the next endpoint, after a member answered Unavailable
    /// (it was stopping, or had no leader) or could not be reached; each still counts once.
    pub retries: u64,
    /// Server CPU time spent during the measured phase, if server pids were given.
    pub server_cpu_us: Option<u64>,
    /// This process's CPU time during the measured phase.
    pub client_cpu_us: Option<u64>,
    /// Summed resident memory of the server processes at the end, if pids were given.
    pub server_rss_kib: Option<u64>,
}

impl Summary {
    fn per_op(&self, us: Option<u64>) -> Option<f64> {
        let ops = self.ok + self.errors.values().sum::<u64>();
        us.filter(|_| ops > 0).map(|us| us as f64 / ops as f64)
    }

    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_us(&self, q: f64) -> u64 {
        if self.latency.is_empty() {
            0
        } else {
            self.latency.value_at_quantile(q)
        }
    }

    /// The one-line JSON summary.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "op": self.op,
            "api": self.api,
            "conns": self.conns,
            "keys": self.keys,
            "value_size": self.value_size,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "ops": self.ok,
            "ops_per_s": (self.rate() * 10.0).round() / 10.0,
            "latency_us": {
                "p50": self.quantile_us(0.5),
                "p90": self.quantile_us(0.9),
                "p99": self.quantile_us(0.99),
                "p999": self.quantile_us(0.999),
                "max": if self.latency.is_empty() { 0 } else { self.latency.max() },
            },
            "errors": self.errors,
            "retries": self.retries,
            "server_cpu_us_per_op": self.per_op(self.server_cpu_us).map(round1),
            "client_cpu_us_per_op": self.per_op(self.client_cpu_us).map(round1),
            "server_rss_kib": self.server_rss_kib,
        })
    }

    /// The report for people.
    pub fn human(&self) -> String {
        let ms = |us: u64| format!("{:.3} ms", us as f64 / 1000.0);
        let mut out = format!(
            "{} ({}): {} connections, {} keys, {}-byte values, {:.2} s\n",
            self.op,
            self.api,
            self.conns,
            self.keys,
            self.value_size,
            self.elapsed.as_secs_f64()
        );
        out += &format!("  ops      {} ({:.1}/s)\n", self.ok, self.rate());
        out += &format!(
            "  latency  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n",
            ms(self.quantile_us(0.5)),
            ms(self.quantile_us(0.9)),
            ms(self.quantile_us(0.99)),
            ms(self.quantile_us(0.999)),
            ms(if self.latency.is_empty() {
                0
            } else {
                self.latency.max()
            }),
        );
        if self.errors.is_empty() {
            out += "  errors   none\n";
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            out += &format!("  errors   {}\n", list.join(", "));
        }
        if self.retries > 0 {
            out += &format!(
                "  retries  {} (sent again to the next endpoint after Unavailable)\n",
                self.retries
            );
        }
        if let Some(v) = self.per_op(self.server_cpu_us) {
            out += &format!("  server   {v:.1} µs CPU/op");
            if let Some(rss) = self.server_rss_kib {
                out += &format!(", {:.1} MiB resident", rss as f64 / 1024.0);
            }
            out += "\n";
        }
        if let Some(v) = self.per_op(self.client_cpu_us) {
            out += &format!("  client   {v:.1} µs CPU/op\n");
        }
        out
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_fields_survive_odd_command_names() {
        // Fields 14 and 15 are 7 and 5; the name has a space and a parenthesis.
        let stat = "1234 (etc d) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 9 1 2";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(12));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_has_cpu_and_memory() {
        let pid = std::process::id().to_string();
        assert!(cpu_us(&pid).is_some());
        assert!(rss_kib(&pid).unwrap() > 0);
        assert_eq!(cpu_us("no-such-pid"), None);
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  1234 kB\n"), Some(1234));
    }

    #[test]
    fn summary_reports_quantiles_errors_and_cpu_per_op() {
        let mut latency = histogram();
        for us in 1..=1000 {
            record(&mut latency, Duration::from_micros(us));
        }
        let mut errors = Errors::new();
        errors.insert("412".into(), 1000);
        let s = Summary {
            op: "put".into(),
            api: "v2",
            conns: 8,
            keys: 1000,
            value_size: 256,
            elapsed: Duration::from_secs(2),
            ok: 1000,
            latency,
            errors,
            retries: 0,
            server_cpu_us: Some(40_000),
            client_cpu_us: None,
            server_rss_kib: Some(2048),
        };
        let j = s.json();
        assert_eq!(j["ops"], 1000);
        assert_eq!(j["ops_per_s"], 500.0);
        assert_eq!(j["latency_us"]["p50"], 500);
        assert_eq!(j["latency_us"]["p99"], 990);
        assert_eq!(j["latency_us"]["max"], 1000);
        assert_eq!(j["errors"]["412"], 1000);
        // 40 ms over 2000 attempts.
        assert_eq!(j["server_cpu_us_per_op"], 20.0);
        assert!(j["client_cpu_us_per_op"].is_null());
        let text = s.human();
        assert!(text.contains("412: 1000"), "{text}");
        assert!(text.contains("20.0 µs CPU/op, 2.0 MiB resident"), "{text}");
    }
}
