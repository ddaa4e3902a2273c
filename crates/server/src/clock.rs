//! The only place that reads wall-clock time. Commands carry what it returns into the log, so
//! the state machine itself never reads a clock.

use etcd_store::UnixNanos;

/// Now, as Unix nanoseconds.
pub fn now() -> UnixNanos {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
