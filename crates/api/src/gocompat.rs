//! What Go's standard library does, where etcd's behaviour depends on it: `strconv.ParseBool`
//! (flags, `ETCD_*` variables, v2 query parameters), `strconv.Atoi` (v1 TTLs),
//! `time.ParseDuration` (duration flags) and `time.Duration.String()` (v2 uptimes, etcdctl's
//! timings). One copy, shared by the server (`config`, `http/`) and etcdctl.

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, no spaces, within i64.
pub fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `time.ParseDuration`, in nanoseconds: a sign, then one or more decimal numbers
/// (`1`, `1.5`, `.5`) each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), as
/// `1h30m` or `-1.5s`; `0` alone needs no unit. `None` for anything else, or beyond i64.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = |t: &str| t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let whole_len = digits(rest);
        let whole: i128 = if whole_len == 0 {
            0
        } else {
            rest[..whole_len].parse().ok()?
        };
        rest = &rest[whole_len..];
        let (mut frac, mut scale, mut frac_len) = (0i128, 1i128, 0);
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = digits(after);
            // Digits past nanosecond precision of the largest unit change nothing.
            for c in after[..frac_len].bytes().take(18) {
                frac = frac * 10 + i128::from(c - b'0');
                scale *= 10;
            }
            rest = &after[frac_len..];
        }
        if whole_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c != '.' && !c.is_ascii_digit())
                .len();
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += whole.checked_mul(unit)? + frac * unit / scale;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    i64::try_from(if negative { -total } else { total }).ok()
}

/// Go's `time.Duration.String()` for a non-negative duration in nanoseconds, as etcd prints
/// uptimes (`17.586195881s`, `1m2.5s`, `1h0m0s`).
pub fn duration(nanos: i64) -> String {
    let nanos = nanos.max(0);
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_fraction(nanos, div));
    }
    let secs = nanos / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, nanos % 60_000_000_000);
    let s = format!("{}s", trim_fraction(s, 1_000_000_000));
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

fn trim_fraction(n: i64, div: i64) -> String {
    let whole = n / div;
    let frac = n % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_parse_as_go_parses_them() {
        use super::parse_duration as d;
        assert_eq!(d("0"), Some(0));
        assert_eq!(d("5s"), Some(5_000_000_000));
        assert_eq!(d("300ms"), Some(300_000_000));
        assert_eq!(d("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(d("2h45m"), Some(9_900_000_000_000));
        assert_eq!(d("1µs"), Some(1_000));
        assert_eq!(d("1μs"), Some(1_000));
        assert_eq!(d("1us"), Some(1_000));
        assert_eq!(d(".5s"), Some(500_000_000));
        assert_eq!(d("1.s"), Some(1_000_000_000));
        assert_eq!(d("10m"), Some(600_000_000_000));
        assert_eq!(d("+3ns"), Some(3));
        for bad in [
            "", "1", "s", ".s", "1x", "1s2", "--1s", "1.5.5s", "3000000h",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(17_586_195_881), "17.586195881s");
        assert_eq!(duration(62_500_000_000), "1m2.5s");
        assert_eq!(duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration(1_500_000), "1.5ms");
    }

    #[test]
    fn booleans_parse_like_go() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["", "yes", "maybe", "tRUE"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    #[test]
    fn ttl_parses_like_go_atoi() {
        assert_eq!(atoi("5"), Some(5));
        assert_eq!(atoi("+5"), Some(5));
        assert_eq!(atoi("-3"), Some(-3));
        assert_eq!(atoi("0"), Some(0));
        for bad in ["", "5s", " 5", "1.5", "abc", "-", "99999999999999999999"] {
            assert_eq!(atoi(bad), None, "{bad:?}");
        }
    }
}
