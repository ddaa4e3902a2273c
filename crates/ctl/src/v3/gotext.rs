//! What etcdctl 3.4 does with text through Go's library, where it shows: `strconv`'s number
//! and boolean parsing (and their error texts), `strconv.Unquote`, etcdctl's `argify` (the
//! words of an interactive line), pflag's parsing of a watch line's flags, `os/exec`'s
//! texts of a command that failed, and protobuf's text form of a response header.

use std::process::ExitStatus;

use etcd_client::v3::proto::etcdserverpb::ResponseHeader;

use super::{go_quote, Failure};

/// Go's `*strconv.NumError` text.
fn num_error(func: &str, s: &str, err: &str) -> String {
    format!("strconv.{func}: parsing {}: {err}", go_quote(s.as_bytes()))
}

/// Go's `strconv.ParseUint(s, base, 64)` (`base` 0: a `0x`, `0o`, `0b` or `0` prefix picks it,
/// and `_` may separate digits), with Go's error text.
pub(super) fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    parse_uint_as(s, base, "ParseUint").map_err(|(e, _)| e)
}

/// [`parse_uint`], naming `func` in the error; the error's second part is true for a value
/// out of range.
fn parse_uint_as(s0: &str, base: u32, func: &str) -> Result<u64, (String, bool)> {
    let syntax = || (num_error(func, s0, "invalid syntax"), false);
    let range = || (num_error(func, s0, "value out of range"), true);
    if s0.is_empty() {
        return Err(syntax());
    }
    let base0 = base == 0;
    let (mut s, mut base) = (s0.as_bytes(), base);
    if base0 {
        base = 10;
        if s[0] == b'0' {
            let letter = s.get(1).map(u8::to_ascii_lowercase);
            (base, s) = match letter {
                Some(b'b') if s.len() >= 3 => (2, &s[2..]),
                Some(b'o') if s.len() >= 3 => (8, &s[2..]),
                Some(b'x') if s.len() >= 3 => (16, &s[2..]),
                _ => (8, &s[1..]),
            };
        }
    }
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in s {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            c if c.to_ascii_lowercase().is_ascii_lowercase() => c.to_ascii_lowercase() - b'a' + 10,
            _ => return Err(syntax()),
        };
        if u32::from(d) >= base {
            return Err(syntax());
        }
        n = n
            .checked_mul(u64::from(base))
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or_else(range)?;
    }
    if underscores && !underscores_ok(s0) {
        return Err(syntax());
    }
    Ok(n)
}

/// Go's `underscoreOK`: each `_` between digits (a base prefix counts as one).
fn underscores_ok(s: &str) -> bool {
    let mut s = s.as_bytes();
    if let [b'+' | b'-', rest @ ..] = s {
        s = rest;
    }
    // '^': the start, '0': a digit or the base prefix, '_': an underscore, '!': other.
    let (mut saw, mut i, mut hex) = (b'^', 0, false);
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        (saw, i, hex) = (b'0', 2, s[1].eq_ignore_ascii_case(&b'x'));
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// Go's `strconv.ParseInt(s, 0, 64)` (how pflag reads an `int64` flag), with Go's error text.
pub(super) fn parse_int(s0: &str) -> Result<i64, String> {
    let (negative, digits) = match s0.as_bytes().first() {
        Some(b'+') => (false, &s0[1..]),
        Some(b'-') => (true, &s0[1..]),
        _ => (false, s0),
    };
    let range = || num_error("ParseInt", s0, "value out of range");
    let n = match parse_uint_as(digits, 0, "ParseInt") {
        Ok(n) => n,
        Err((_, true)) => return Err(range()),
        Err(_) => return Err(num_error("ParseInt", s0, "invalid syntax")),
    };
    let cutoff = 1u64 << 63;
    match (negative, n) {
        (false, n) if n >= cutoff => Err(range()),
        (true, n) if n > cutoff => Err(range()),
        (true, n) => Ok((n as i64).wrapping_neg()),
        (false, n) => Ok(n as i64),
    }
}

/// Go's `strconv.ParseBool`, with Go's error text.
pub(super) fn parse_bool(s: &str) -> Result<bool, String> {
    etcd_api::gocompat::parse_bool(s).ok_or_else(|| num_error("ParseBool", s, "invalid syntax"))
}

/// A Go double-quoted string at the start of `s` (`strconv.Unquote`'s escapes): its bytes
/// and the rest; `None` if it is not one.
pub(super) fn unquote_prefix(s: &str) -> Option<(Vec<u8>, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut out = Vec::new();
    let digits = |chars: &mut std::str::CharIndices, n: usize, radix: u32| {
        (0..n).try_fold(0u32, |v, _| {
            let d = chars.next()?.1.to_digit(radix)?;
            Some(v * radix + d)
        })
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'a' => out.push(0x07),
                    'b' => out.push(0x08),
                    'f' => out.push(0x0c),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(0x0b),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => out.push(digits(&mut chars, 2, 16)? as u8),
                    '0'..='7' => {
                        let rest = digits(&mut chars, 2, 8)?;
                        let v = e.to_digit(8)? * 64 + rest;
                        out.push(u8::try_from(v).ok()?);
                    }
                    'u' | 'U' => {
                        let v = digits(&mut chars, if e == 'u' { 4 } else { 8 }, 16)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(char::from_u32(v)?.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return None,
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// The blanks of Go's regular expressions (`\s`).
fn is_blank(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// etcdctl 3.4's `argify`: the words its regular expression finds in `line` (a `"…"` string
/// with Go's escapes, a `'…'` string, or a run of non-blanks), a `"…"` one unquoted
/// (`invalid syntax`, exit 3, if it cannot be). A `'…'` word keeps etcdctl 3.4's slicing: its
/// bytes from the second up to the number of words less one (`put 'k' v` puts `k`, `get 'k'`
/// gets the empty key); where that slice is out of bounds etcdctl panics, and so does this
/// (exit 2).
pub(super) fn argify(line: &str) -> Result<Vec<String>, Failure> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let at = |k: usize| chars.get(k).map_or(line.len(), |&(i, _)| i);
    let mut words = Vec::new();
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k].1;
        // The closing index (in chars) of a quoted word starting here, if there is one.
        let end = match c {
            '"' => {
                let mut j = k + 1;
                loop {
                    match chars.get(j).map(|&(_, c)| c) {
                        Some('"') => break Some(j),
                        Some('\\') if chars.get(j + 1).is_some_and(|&(_, c)| c != '\n') => j += 2,
                        Some('\\') | None => break None,
                        Some(_) => j += 1,
                    }
                }
            }
            '\'' => (k + 1..chars.len()).find(|&j| chars[j].1 == '\''),
            c if is_blank(c) => {
                k += 1;
                continue;
            }
            _ => {
                let j = (k..chars.len())
                    .find(|&j| is_blank(chars[j].1))
                    .unwrap_or(chars.len());
                words.push(&line[at(k)..at(j)]);
                k = j;
                continue;
            }
        };
        match end {
            Some(j) => {
                words.push(&line[at(k)..at(j + 1)]);
                k = j + 1;
            }
            // Not a word: the regular expression goes on from the next character.
            None => k += 1,
        }
    }
    let count = words.len();
    words
        .iter()
        .map(|w| {
            if w.starts_with('\'') {
                let end = count.wrapping_sub(1);
                if end < 1 || end > w.len() {
                    let bounds = if end < 1 {
                        format!("[1:{end}]")
                    } else {
                        format!("[:{end}] with length {}", w.len())
                    };
                    eprintln!("panic: runtime error: slice bounds out of range {bounds}\n");
                    std::process::exit(2);
                }
                Ok(String::from_utf8_lossy(&w.as_bytes()[1..end]).into_owned())
            } else if w.starts_with('"') {
                match unquote_prefix(w) {
                    Some((bytes, "")) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
                    _ => Err(Failure {
                        message: "invalid syntax".into(),
                        code: 3,
                    }),
                }
            } else {
                Ok(w.to_string())
            }
        })
        .collect()
}

/// What Go's `exec.Cmd.Run` returns for `program` run with this outcome, as `%v` shows it
/// (`None`: it ran and exited 0).
pub(super) fn run_error(program: &str, outcome: &std::io::Result<ExitStatus>) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    let status = match outcome {
        Ok(s) => s,
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound if !program.contains('/') => {
                    return Some(format!(
                        "exec: {}: executable file not found in $PATH",
                        go_quote(program.as_bytes())
                    ))
                }
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            return Some(format!("fork/exec {program}: {why}"));
        }
    };
    if status.success() {
        return None;
    }
    let mut text = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {}", signal_name(signal)),
        (None, None) => "exit status -1".to_string(),
    };
    if status.core_dumped() {
        text.push_str(" (core dumped)");
    }
    Some(text)
}

/// Go's name of a Linux signal (`syscall.Signal.String`).
fn signal_name(signal: i32) -> String {
    const NAMES: [&str; 15] = [
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
    ];
    usize::try_from(signal - 1)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {signal}"), |n| n.to_string())
}

/// Go's `%q` of a list of strings (`["a" "b"]`).
pub(super) fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s.as_bytes())).collect();
    format!("[{}]", quoted.join(" "))
}

/// A header as Go's protobuf `String()` writes it: each field that is set, `name:value `.
pub(super) fn header_text(h: &ResponseHeader) -> String {
    let mut text = String::new();
    for (name, value) in [
        ("cluster_id", h.cluster_id as i128),
        ("member_id", h.member_id as i128),
        ("revision", h.revision as i128),
        ("raft_term", h.raft_term as i128),
    ] {
        if value != 0 {
            text.push_str(&format!("{name}:{value} "));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_gos_strconv() {
        assert_eq!(parse_uint("2efec639f24dc9ca", 16), Ok(0x2efec639f24dc9ca));
        assert_eq!(
            parse_uint("+10", 16).unwrap_err(),
            "strconv.ParseUint: parsing \"+10\": invalid syntax"
        );
        assert_eq!(
            parse_uint("1ffffffffffffffff", 16).unwrap_err(),
            "strconv.ParseUint: parsing \"1ffffffffffffffff\": value out of range"
        );
        assert!(parse_uint("1_0", 16).is_err());
        for (s, n) in [
            ("0x10", 16),
            ("010", 8),
            ("0b11", 3),
            ("0o17", 15),
            ("-5", -5),
            ("+7", 7),
            ("1_000", 1000),
            ("-9223372036854775808", i64::MIN),
            ("0", 0),
        ] {
            assert_eq!(parse_int(s), Ok(n), "{s}");
        }
        for (s, e) in [
            ("x", "invalid syntax"),
            ("", "invalid syntax"),
            ("1__0", "invalid syntax"),
            ("_1", "invalid syntax"),
            ("08", "invalid syntax"),
            ("9223372036854775808", "value out of range"),
            ("99999999999999999999", "value out of range"),
        ] {
            assert_eq!(
                parse_int(s).unwrap_err(),
                format!("strconv.ParseInt: parsing {}: {e}", go_quote(s.as_bytes())),
                "{s}"
            );
        }
        assert_eq!(parse_bool("T"), Ok(true));
        assert_eq!(
            parse_bool("yes").unwrap_err(),
            "strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn lines_split_as_etcdctls_argify() {
        let words = |l: &str| argify(l).unwrap_or_else(|f| panic!("{l}: {}", f.message));
        assert_eq!(words("  put a  b\t"), ["put", "a", "b"]);
        assert_eq!(
            words(r#"put "a b" "\x41\u00e9\101\n""#),
            ["put", "a b", "A\u{e9}A\n"]
        );
        // An unterminated quote is skipped; a word runs on through quotes inside it.
        assert_eq!(words("put \"a b"), ["put", "a", "b"]);
        assert_eq!(words("put a\"b c'"), ["put", "a\"b", "c'"]);
        assert_eq!(words(r#"put "a"b"#), ["put", "a", "b"]);
        // etcdctl 3.4's slicing of a single-quoted word.
        assert_eq!(words("put 'key' v"), ["put", "k", "v"]);
        assert_eq!(words("get 'key'"), ["get", ""]);
        assert_eq!(
            words("watch 'a b' --rev=1 x"),
            ["watch", "a ", "--rev=1", "x"]
        );
        let bad = argify(r#"put "\q" v"#).unwrap_err();
        assert_eq!((bad.message.as_str(), bad.code), ("invalid syntax", 3));
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn failed_commands_read_as_gos_exec() {
        let missing = std::process::Command::new("no-such-program-here").status();
        assert_eq!(
            run_error("no-such-program-here", &missing).as_deref(),
            Some("exec: \"no-such-program-here\": executable file not found in $PATH")
        );
        let three = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .status();
        assert_eq!(run_error("sh", &three).as_deref(), Some("exit status 3"));
        let killed = std::process::Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status();
        assert_eq!(
            run_error("sh", &killed).as_deref(),
            Some("signal: terminated")
        );
        assert_eq!(
            quote_list(&["sh".into(), "-c".into(), "exit 3".into()]),
            r#"["sh" "-c" "exit 3"]"#
        );
    }
}
