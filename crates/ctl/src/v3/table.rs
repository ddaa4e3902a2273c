//! etcdctl's `-w table`: the tables of Go's `olekukonko/tablewriter` as etcdctl 3.4 sets
//! them up (borders, upper-case headers centred, cells aligned right, cells wider than 30
//! columns wrapped at spaces with the least raggedness).
//!
//! ```text
//! +----------+----------+
//! |   HASH   | REVISION |
//! +----------+----------+
//! | 1b2c3d4e |       17 |
//! +----------+----------+
//! ```

/// Widest a cell gets before its words are wrapped onto more lines (tablewriter's
/// `MAX_ROW_WIDTH`).
const MAX_WIDTH: usize = 30;
/// The cost tablewriter adds for a line longer than the limit when it wraps words.
const LONG_LINE_PENALTY: usize = 100_000;

/// The table of `header` and `rows`, each line ending in a newline.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<Vec<String>> = header.iter().map(|h| lines(&title(h))).collect();
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| lines(c)).collect())
        .collect();
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| widest(h)).collect();
    for row in &rows {
        for (c, cell) in row.iter().enumerate().take(columns) {
            widths[c] = widths[c].max(widest(cell));
        }
    }
    let rule: String = std::iter::once("+".to_string())
        .chain(widths.iter().map(|w| format!("{}+", "-".repeat(w + 2))))
        .collect::<String>()
        + "\n";
    let mut out = rule.clone();
    print_cells(&mut out, &header, &widths, centre);
    out.push_str(&rule);
    for row in &rows {
        print_cells(&mut out, row, &widths, right);
    }
    // (Under an empty table too, as tablewriter does.)
    out.push_str(&rule);
    out
}

/// One row (each cell's lines, as many lines as its tallest cell), padded by `pad`.
fn print_cells(
    out: &mut String,
    cells: &[Vec<String>],
    widths: &[usize],
    pad: fn(&str, usize) -> String,
) {
    let height = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for line in 0..height {
        out.push('|');
        for (c, width) in widths.iter().enumerate() {
            let text = cells
                .get(c)
                .and_then(|cell| cell.get(line))
                .map_or("", String::as_str);
            out.push(' ');
            out.push_str(&pad(text, *width));
            out.push_str(" |");
        }
        out.push('\n');
    }
}

/// tablewriter's `Title`: `_` and `.` as spaces, trimmed, upper case.
fn title(h: &str) -> String {
    let t = h.replace(['_', '.'], " ");
    let t = t.trim();
    if t.is_empty() && !h.is_empty() {
        return " ".into();
    }
    t.to_uppercase()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn widest(lines: &[String]) -> usize {
    lines.iter().map(|l| width(l)).max().unwrap_or(0)
}

/// Centred: the odd space goes to the right.
fn centre(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{s}{}", " ".repeat(left), " ".repeat(gap - left))
}

fn right(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// A cell's lines: each of its own lines, words wrapped to fit [`MAX_WIDTH`] when it is
/// wider.
fn lines(cell: &str) -> Vec<String> {
    let raw: Vec<&str> = cell.split('\n').collect();
    let limit = raw
        .iter()
        .map(|l| width(l))
        .max()
        .unwrap_or(0)
        .min(MAX_WIDTH);
    let mut out = Vec::new();
    for (i, para) in raw.iter().enumerate() {
        if i > 0 {
            out.push(" ".to_string());
        }
        let words: Vec<&str> = para.split_whitespace().collect();
        if words.is_empty() {
            out.push(String::new());
            continue;
        }
        out.extend(wrap(&words, limit));
    }
    out
}

/// Breaks `words` into lines of at most `limit` columns (a longer word stands alone) with the
/// least raggedness: the sum of the squares of each line's shortfall, the last line free.
fn wrap(words: &[&str], limit: usize) -> Vec<String> {
    let n = words.len();
    // length(i, j): words i..=j on one line, one space apart.
    let length = |i: usize, j: usize| -> usize {
        words[i..=j].iter().map(|w| width(w)).sum::<usize>() + (j - i)
    };
    let mut cost = vec![usize::MAX; n];
    let mut next = vec![n; n];
    for i in (0..n).rev() {
        if length(i, n - 1) <= limit {
            cost[i] = 0;
            next[i] = n;
            continue;
        }
        for j in i + 1..n {
            let len = length(i, j - 1);
            let short = limit as i64 - len as i64;
            let mut c = (short * short) as usize + cost[j];
            if len > limit {
                c += LONG_LINE_PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                next[i] = j;
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        out.push(words[i..next[i]].join(" "));
        i = next[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_centred_cells_right_and_an_empty_column() {
        let got = render(
            &["endpoint", "hash", "errors"],
            &[vec![
                "127.0.0.1:2379".into(),
                "1084519789".into(),
                String::new(),
            ]],
        );
        assert_eq!(
            got,
            "+----------------+------------+--------+\n\
             |    ENDPOINT    |    HASH    | ERRORS |\n\
             +----------------+------------+--------+\n\
             | 127.0.0.1:2379 | 1084519789 |        |\n\
             +----------------+------------+--------+\n"
        );
    }

    #[test]
    fn long_cells_wrap_at_spaces_and_long_words_stand_alone() {
        let cell = "rpc error: code = DeadlineExceeded desc = context deadline exceeded";
        let lines = lines(cell);
        assert!(lines.iter().all(|l| width(l) <= MAX_WIDTH), "{lines:?}");
        assert_eq!(lines.join(" "), cell);
        let word = "x".repeat(40);
        assert_eq!(super::lines(&word), vec![word.clone()]);
        let got = render(&["a"], &[vec![format!("{word} y")]]);
        assert!(got.contains(&format!("| {word} |")), "{got}");
        assert!(got.contains(&format!("| {}y |", " ".repeat(39))), "{got}");
    }

    #[test]
    fn titles_as_tablewriter_makes_them() {
        assert_eq!(title("raft applied index"), "RAFT APPLIED INDEX");
        assert_eq!(title("is_learner"), "IS LEARNER");
        assert_eq!(title("ID"), "ID");
    }
}
