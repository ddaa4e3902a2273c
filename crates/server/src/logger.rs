//! Logging: where log lines go and how they look, and the bridge from raft-rs.
//!
//! [`init`] sets up `tracing` from `--logger`, `--log-level` and `--log-outputs`: plain text
//! (the default, as the seed's etcd printed), or with `--logger zap` one JSON object per line
//! in etcd's shape: `level`, `ts` (ISO 8601, UTC, milliseconds), `caller` (`dir/file.rs:line`),
//! `msg`, then the event's named fields (etcd's names where etcd logs the same event:
//! `local-member-id`, `snapshot-index`, `took`, …). Outputs are `stderr`, `stdout` or files,
//! appended to; each line is written whole to every output.
//!
//! raft-rs logs through `slog`; everything else in etcd-rs logs through `tracing`. This is the
//! one bridge: a `slog::Drain` that forwards each record, with its key-value pairs, to `tracing`
//! under the target `raft`.
//!
//! Not here: log rotation (left to logrotate or journald, as the compatibility flags say).

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::Logging;

/// Sets up the process's logging; `verbosity` is the seed's `-v` (1) or `-vv` (2). `RUST_LOG`
/// overrides the levels. Fails if a log file cannot be opened.
pub fn init(logging: &Logging, verbosity: u8) -> Result<(), String> {
    let default = match (verbosity, logging.level) {
        (2.., _) => "trace",
        (1, _) | (_, Some("debug")) => "debug,raft=info,hyper=info,h2=info",
        (_, Some("warn")) => "warn",
        (_, Some("error")) => "error",
        _ => "info,raft=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let outputs = Outputs::open(&logging.outputs)?;
    let ansi =
        logging.outputs == ["stderr"] && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(outputs)
        .with_ansi(ansi);
    let result = if logging.zap {
        builder.event_format(Zap).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Where each log line goes.
#[derive(Clone)]
struct Outputs(Arc<Vec<Output>>);

enum Output {
    Stderr,
    Stdout,
    File(Mutex<std::fs::File>),
}

impl Outputs {
    fn open(names: &[String]) -> Result<Outputs, String> {
        let mut outputs = Vec::new();
        for name in names {
            outputs.push(match name.as_str() {
                "stderr" => Output::Stderr,
                "stdout" => Output::Stdout,
                path => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| format!("--log-outputs: cannot open {path}: {e}"))?;
                    Output::File(Mutex::new(file))
                }
            });
        }
        Ok(Outputs(Arc::new(outputs)))
    }
}

/// One line being written: collected, then written whole to every output.
struct Line {
    outputs: Arc<Vec<Output>>,
    buf: Vec<u8>,
}

impl std::io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A log line that cannot be written is dropped: there is nowhere to report it.
        for out in self.outputs.iter() {
            let _ = match out {
                Output::Stderr => std::io::stderr().lock().write_all(&self.buf),
                Output::Stdout => std::io::stdout().lock().write_all(&self.buf),
                Output::File(f) => f.lock().map_or(Ok(()), |mut f| f.write_all(&self.buf)),
            };
        }
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            outputs: self.0.clone(),
            buf: Vec::new(),
        }
    }
}

/// etcd's zap JSON lines.
struct Zap;

impl<S, N> FormatEvent<S, N> for Zap
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        writer.write_str(&zap_line(event, crate::clock::now()))
    }
}

/// The JSON line (with its newline) for `event` at `now` (Unix nanoseconds).
fn zap_line(event: &tracing::Event<'_>, now: i64) -> String {
    let meta = event.metadata();
    let level = match *meta.level() {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        _ => "debug",
    };
    let caller = match (meta.file(), meta.line()) {
        (Some(file), Some(line)) => format!("{}:{line}", short_path(file)),
        _ => meta.target().to_string(),
    };
    let mut fields = JsonFields::default();
    event.record(&mut fields);
    let mut line = format!(
        "{{\"level\":\"{level}\",\"ts\":\"{}\",\"caller\":{},\"msg\":{}",
        etcd_api::time::format_iso8601_millis(now),
        json_str(&caller),
        json_str(&fields.message),
    );
    line.push_str(&fields.rest);
    line.push_str("}\n");
    line
}

/// The last directory and the file name, as zap's short caller encoder writes them.
fn short_path(file: &str) -> &str {
    let mut slashes = file.rmatch_indices('/');
    match (slashes.next(), slashes.next()) {
        (Some(_), Some((i, _))) => &file[i + 1..],
        _ => file,
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// An event's message and its other fields as `,"name":value` JSON.
#[derive(Default)]
struct JsonFields {
    message: String,
    rest: String,
}

impl JsonFields {
    fn push(&mut self, field: &tracing::field::Field, value: String) {
        let _ = write!(self.rest, ",{}:{value}", json_str(field.name()));
    }
}

impl tracing::field::Visit for JsonFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.push(field, json_str(value));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.push(field, json_str(&text));
        }
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.push(field, value.to_string());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.push(field, value.to_string());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.push(field, value.to_string());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        let v = if value.is_finite() {
            value.to_string()
        } else {
            json_str(&value.to_string())
        };
        self.push(field, v);
    }
}

/// A slog logger that writes into tracing.
pub fn raft_logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let mut kv = KvText(String::new());
        let _ = slog::KV::serialize(&record.kv(), record, &mut kv);
        let _ = slog::KV::serialize(values, record, &mut kv);
        let msg = record.msg();
        let kv = kv.0;
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{msg}{kv}")
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{msg}{kv}"),
            slog::Level::Info => tracing::info!(target: "raft", "{msg}{kv}"),
            slog::Level::Debug => tracing::debug!(target: "raft", "{msg}{kv}"),
            slog::Level::Trace => tracing::trace!(target: "raft", "{msg}{kv}"),
        }
        Ok(())
    }
}

struct KvText(String);

impl slog::Serializer for KvText {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures the zap lines of the events `f` emits.
    fn zap_lines(f: impl FnOnce()) -> Vec<(String, serde_json::Value)> {
        let lines = Arc::new(Mutex::new(Vec::new()));
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_event(
                &self,
                event: &tracing::Event<'_>,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                self.0
                    .lock()
                    .unwrap()
                    .push(zap_line(event, 1_373_599_872_156_146_039));
            }
        }
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let lines = lines.lock().unwrap();
        lines
            .iter()
            .map(|l| {
                assert!(l.ends_with('\n') && !l[..l.len() - 1].contains('\n'), "{l}");
                let v = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
                (l.clone(), v)
            })
            .collect()
    }

    #[test]
    fn zap_lines_carry_etcds_fields_in_order() {
        let lines = zap_lines(|| {
            tracing::info!(
                "local-member-id" = %format!("{:x}", 0xbdae_u64),
                "snapshot-index" = 12u64,
                ok = true,
                took = ?std::time::Duration::from_millis(3),
                "saved \"snapshot\""
            );
            tracing::warn!(term = -1i64, "lost leader");
        });
        let (text, first) = &lines[0];
        // etcd's order: level, ts, caller, msg, then the fields as given.
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        let keys = [
            "level",
            "ts",
            "caller",
            "msg",
            "local-member-id",
            "snapshot-index",
            "ok",
            "took",
        ];
        assert_eq!(at("level"), 1, "{text}");
        assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        assert_eq!(first["level"], "info");
        assert_eq!(first["ts"], "2013-07-12T03:31:12.156Z");
        let caller = first["caller"].as_str().unwrap();
        assert!(caller.starts_with("src/logger.rs:"), "{caller}");
        assert_eq!(first["msg"], "saved \"snapshot\"");
        assert_eq!(first["local-member-id"], "bdae");
        assert_eq!(first["snapshot-index"], 12);
        assert_eq!(first["ok"], true);
        assert_eq!(first["took"], "3ms");
        assert_eq!(lines[1].1["level"], "warn");
        assert_eq!(lines[1].1["term"], -1);
    }

    #[test]
    fn callers_are_shortened_like_zaps() {
        assert_eq!(
            short_path("crates/server/src/raft/driver.rs"),
            "raft/driver.rs"
        );
        assert_eq!(short_path("src/main.rs"), "src/main.rs");
        assert_eq!(short_path("main.rs"), "main.rs");
    }
}
