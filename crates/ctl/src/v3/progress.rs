//! The progress bar `check perf` and `check datascale` draw on standard output, as etcdctl's
//! (the `pb` package, format `Bom !`) draws it:
//!
//! - redrawn every 200 ms, each time as `\r` and one line: ` DONE / TOTAL ` then the bar,
//!   ` PERCENT%` and, while running, the time left (` 00m03s`), once finished the time taken
//!   (Go's duration: ` 2s`, ` 1m0s`), then a newline;
//! - the bar (`B`, `o`… with `m` at its head, spaces, `!`) fills what the terminal's width
//!   leaves, and the line is padded to that width. The width is the one of `/dev/tty` (else of
//!   standard input), asked once of `stty size`; without a terminal it is 0: no bar and no
//!   padding, which is what a pipe or a file gets.
//!
//! It does not follow a terminal resized while it runs (etcdctl asks at each redraw).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the bar is redrawn.
const REFRESH: Duration = Duration::from_millis(200);

/// A bar counting to a total; finished with [`Bar::finish`].
pub(super) struct Bar {
    shared: Arc<Shared>,
    refresher: tokio::task::JoinHandle<()>,
}

struct Shared {
    total: u64,
    width: usize,
    started: Instant,
    current: AtomicU64,
    /// The count at the last redraw, when it last changed, and whether the bar is finished.
    state: Mutex<(u64, Option<Instant>, bool)>,
}

impl Bar {
    /// Draws the bar at 0 of `total`, then redraws it every 200 ms.
    pub(super) fn start(total: u64) -> Bar {
        let shared = Arc::new(Shared {
            total,
            width: terminal_width(),
            started: Instant::now(),
            current: AtomicU64::new(0),
            state: Mutex::new((0, None, false)),
        });
        shared.update(false);
        let refresher = {
            let shared = shared.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(REFRESH).await;
                    shared.update(false);
                }
            })
        };
        Bar { shared, refresher }
    }

    /// Counts `n` more.
    pub(super) fn add(&self, n: u64) {
        self.shared.current.fetch_add(n, Ordering::Relaxed);
    }

    /// Draws the bar a last time with the time taken, and ends its line.
    pub(super) fn finish(&self) {
        self.refresher.abort();
        self.shared.update(true);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

impl Shared {
    fn update(&self, finish: bool) {
        let mut state = self.state.lock().expect("bar lock");
        if state.2 {
            return;
        }
        let now = Instant::now();
        let current = self.current.load(Ordering::Relaxed);
        if current != state.0 {
            state.0 = current;
            state.1 = Some(now);
        }
        let elapsed = now - self.started;
        let time = if finish {
            format!(" {}", go_whole_seconds(elapsed))
        } else {
            match state.1 {
                Some(changed) if current > 0 => {
                    time_left(self.total, current, changed - self.started, now - changed)
                }
                _ => String::new(),
            }
        };
        let mut text = format!("\r{}", line(self.total, current, self.width, &time));
        if finish {
            text.push('\n');
            state.2 = true;
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// One drawing of the bar (without its `\r`): counters, bar, percentage, `time`, padding.
fn line(total: u64, current: u64, width: usize, time: &str) -> String {
    let counters = format!(" {current} / {total} ");
    let percent = format!(" {:6.2}%", current as f64 / (total.max(1) as f64 / 100.0));
    // What the bar's ends and the boxes around it take.
    let taken = counters.chars().count() + 2 + percent.chars().count() + time.chars().count();
    let mut bar = String::new();
    if width > taken {
        let size = width - taken;
        let filled = ((current as f64 / total.max(1) as f64) * size as f64).ceil() as usize;
        let empty = size.saturating_sub(filled);
        let filled = filled.min(size);
        bar.push('B');
        if empty == 0 {
            bar.push_str(&"o".repeat(filled));
        } else if filled > 0 {
            bar.push_str(&"o".repeat(filled - 1));
            bar.push('m');
        }
        bar.push_str(&" ".repeat(empty));
        bar.push('!');
    }
    let out = format!("{counters}{bar}{percent}{time}");
    let pad = width.saturating_sub(out.chars().count());
    out + &" ".repeat(pad)
}

/// ` 00m03s`: the time left at the pace so far, `from_start_to_change` having counted
/// `current`, the last change `since_change` ago; empty when nothing is left.
fn time_left(
    total: u64,
    current: u64,
    from_start_to_change: Duration,
    since_change: Duration,
) -> String {
    let per = from_start_to_change.as_nanos() / u128::from(current.max(1));
    let left = i128::try_from(u128::from(total.saturating_sub(current)) * per).unwrap_or(0)
        - since_change.as_nanos() as i128;
    let secs = left / 1_000_000_000;
    if secs <= 0 {
        return String::new();
    }
    let (mut s, mut out) = (secs, String::new());
    if s > 24 * 3600 {
        out.push_str(&format!("{}d", s / (24 * 3600)));
        s %= 24 * 3600;
    }
    if s > 3600 {
        out.push_str(&format!("{}h", s / 3600));
        s %= 3600;
    }
    format!(" {out}{:02}m{:02}s", s / 60, s % 60)
}

/// Go's `time.Duration.String()` of the whole seconds of `d`, as `pb` shows the time taken:
/// `0s`, `2s`, `1m0s`, `1h2m3s`.
fn go_whole_seconds(d: Duration) -> String {
    super::go_duration(Duration::from_secs(d.as_secs()))
}

/// The terminal's width in columns, as `stty size` reports it for `/dev/tty` (else for
/// standard input); 0 without a terminal.
fn terminal_width() -> usize {
    let stdin = match std::fs::File::open("/dev/tty") {
        Ok(tty) => std::process::Stdio::from(tty),
        Err(_) => std::process::Stdio::inherit(),
    };
    let Ok(out) = std::process::Command::new("stty")
        .arg("size")
        .stdin(stdin)
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return 0;
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines recorded from Debian's etcdctl 3.4 (`check datascale` through a pipe, and under
    /// a terminal of 100 columns).
    #[test]
    fn lines_as_etcdctl_draws_them() {
        assert_eq!(line(10000, 0, 0, ""), " 0 / 10000    0.00%");
        assert_eq!(
            line(10000, 500, 0, " 00m03s"),
            " 500 / 10000    5.00% 00m03s"
        );
        assert_eq!(line(10000, 10000, 0, " 2s"), " 10000 / 10000  100.00% 2s");
        assert_eq!(line(60, 0, 0, ""), " 0 / 60    0.00%");
    }

    #[test]
    fn bars_fill_the_width() {
        let at = |current, time| line(10000, current, 100, time);
        let bar = |o: usize, head: &str, blank: usize| {
            format!("B{}{head}{}!", "o".repeat(o), " ".repeat(blank))
        };
        assert_eq!(at(0, ""), format!(" 0 / 10000 {}   0.00%", bar(0, "", 79)));
        assert_eq!(
            at(990, " 00m01s"),
            format!(" 990 / 10000 {}   9.90% 00m01s", bar(6, "m", 63))
        );
        assert_eq!(
            at(9093, ""),
            format!(" 9093 / 10000 {}  90.93%", bar(69, "m", 6))
        );
        assert_eq!(
            at(10000, " 2s"),
            format!(" 10000 / 10000 {} 100.00% 2s", bar(72, "", 0))
        );
        // Room for the ends and 4 more; then too narrow for a bar: only the boxes, padded.
        assert_eq!(line(10000, 1, 25, ""), " 1 / 10000 Bm   !   0.01%");
        assert_eq!(line(10000, 1, 21, ""), " 1 / 10000    0.01%  ");
    }

    #[test]
    fn times_as_go_prints_them() {
        let s = Duration::from_secs;
        assert_eq!(go_whole_seconds(Duration::from_millis(900)), "0s");
        assert_eq!(go_whole_seconds(Duration::from_millis(2700)), "2s");
        assert_eq!(go_whole_seconds(s(60)), "1m0s");
        assert_eq!(go_whole_seconds(s(3723)), "1h2m3s");
        assert_eq!(time_left(10000, 500, s(1), Duration::ZERO), " 00m19s");
        assert_eq!(time_left(10000, 5000, s(1), s(2)), "");
        assert_eq!(time_left(60, 1, s(1), Duration::ZERO), " 00m59s");
        assert_eq!(time_left(100, 1, s(3600), Duration::ZERO), " 4d3h00m00s");
    }
}
