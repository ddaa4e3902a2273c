//! Time on the wire: Unix nanoseconds inside the system, RFC 3339 with nanoseconds outside.
//!
//! The seed prints Go's `time.RFC3339Nano` (trailing zeros of the fraction trimmed). We print UTC
//! (`Z`), which is what Go prints on a machine whose zone is UTC.

/// Nanoseconds since the Unix epoch, UTC.
pub type UnixNanos = i64;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Formats `t` as RFC 3339 in UTC with up to nine fraction digits, trailing zeros trimmed.
pub fn format_rfc3339_nanos(t: UnixNanos) -> String {
    let secs = t.div_euclid(NANOS_PER_SEC);
    let nanos = t.rem_euclid(NANOS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Formats `t` as ISO 8601 in UTC with milliseconds (`2026-12-06T11:21:00.468Z`), as zap's
/// ISO 8601 time encoder writes etcd's log timestamps.
pub fn format_iso8601_millis(t: UnixNanos) -> String {
    let secs = t.div_euclid(NANOS_PER_SEC);
    let millis = t.rem_euclid(NANOS_PER_SEC) / 1_000_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Remaining whole seconds until `expiration`, rounded down, as the seed reports `ttl`;
/// `None` when nothing (or less than a second) remains, because the seed omits `"ttl":0`.
pub fn remaining_ttl_secs(expiration: UnixNanos, now: UnixNanos) -> Option<i64> {
    let secs = expiration.saturating_sub(now).div_euclid(NANOS_PER_SEC);
    (secs > 0).then_some(secs)
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day).
/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano_in_utc() {
        // 2013-07-12T03:31:12.156146039Z is the seed's example instant, in UTC.
        assert_eq!(
            format_rfc3339_nanos(1_373_599_872_156_146_039),
            "2013-07-12T03:31:12.156146039Z"
        );
        assert_eq!(format_rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nanos(1_500_000_000),
            "1970-01-01T00:00:01.5Z"
        );
        assert_eq!(
            format_rfc3339_nanos(951_782_400 * NANOS_PER_SEC),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(format_rfc3339_nanos(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn formats_like_zap_iso8601_in_utc() {
        assert_eq!(
            format_iso8601_millis(1_373_599_872_156_146_039),
            "2013-07-12T03:31:12.156Z"
        );
        assert_eq!(format_iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn ttl_is_rounded_down_and_omitted_at_zero() {
        let now = 1_000 * NANOS_PER_SEC;
        assert_eq!(
            remaining_ttl_secs(now + 5 * NANOS_PER_SEC - 1, now),
            Some(4)
        );
        assert_eq!(remaining_ttl_secs(now + 5 * NANOS_PER_SEC, now), Some(5));
        assert_eq!(remaining_ttl_secs(now + NANOS_PER_SEC - 1, now), None);
        assert_eq!(remaining_ttl_secs(now - 10, now), None);
    }
}
