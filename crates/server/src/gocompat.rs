//! What Go's standard library does, where etcd's behaviour depends on it: `strconv.ParseBool`
//! (flags, `ETCD_*` variables, v2 query parameters), `strconv.Atoi` (v1 TTLs) and
//! `time.Duration.String()` (v2 uptimes). One copy, shared by `config.rs` and `http/`.

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
