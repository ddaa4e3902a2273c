//! Key normalisation and the reserved key space.
//!
//! Keys are absolute slash-separated paths. `clean` turns what a client sent into the canonical
//! form every other part of the system uses: a leading `/`, no empty segments, `.` and `..`
//! resolved (`..` at the root stays at the root, as Go's `path.Clean`), no trailing `/`.

/// The first path segment reserved for the cluster's own keys.
pub const RESERVED_SEGMENT: &str = "_etcd";

/// Where member registrations live.
pub const MACHINES_DIR: &str = "/_etcd/machines";

/// Normalises a key: `a//b/./c/../d/` becomes `/a/b/d`; the empty key is `/`.
pub fn clean(key: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in key.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(key.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Splits a clean key into its segments (`/` has none).
pub fn segments(clean_key: &str) -> impl Iterator<Item = &str> {
    clean_key.split('/').filter(|s| !s.is_empty())
}

/// True when the clean key's first segment is reserved (`/_etcd`, `/_etcd/x`, not `/_etcdx`).
pub fn is_reserved(clean_key: &str) -> bool {
    segments(clean_key).next() == Some(RESERVED_SEGMENT)
}

/// Joins a clean directory key and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The clean key itself and all its ancestors, root first: `/a/b` gives `/`, `/a`, `/a/b`.
pub fn ancestors_and_self(clean_key: &str) -> Vec<&str> {
    let mut out = vec!["/"];
    for (i, c) in clean_key.char_indices() {
        if c == '/' && i > 0 {
            out.push(&clean_key[..i]);
        }
    }
    if clean_key != "/" {
        out.push(clean_key);
    }
    out
}

/// True when `key`, below the watched key `watched`, lies below a hidden segment (one that
/// starts with `_`) under `watched`.
pub(crate) fn hidden_below(watched: &str, key: &str) -> bool {
    let rest = if watched == "/" {
        key
    } else {
        &key[watched.len().min(key.len())..]
    };
    rest.contains("/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_resolves_like_go_path_clean() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("message", "/message"),
            ("/foo/", "/foo"),
            ("//a/./b/../c", "/a/c"),
            ("../../x", "/x"),
            ("a/b/..", "/a"),
            ("/a//b///c/", "/a/b/c"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }

    #[test]
    fn reserved_means_first_segment_exactly() {
        assert!(is_reserved("/_etcd"));
        assert!(is_reserved("/_etcd/machines/n"));
        assert!(!is_reserved("/_etcdx"));
        assert!(!is_reserved("/a/_etcd"));
        assert!(!is_reserved("/"));
    }

    #[test]
    fn ancestors_walk_from_the_root() {
        assert_eq!(ancestors_and_self("/"), vec!["/"]);
        assert_eq!(ancestors_and_self("/a"), vec!["/", "/a"]);
        assert_eq!(
            ancestors_and_self("/a/b/c"),
            vec!["/", "/a", "/a/b", "/a/b/c"]
        );
    }
}
