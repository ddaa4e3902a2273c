//! The key tree: directories own their children by name, files hold a value and an optional
//! expiry. Owned, no back-pointers; lookups walk path segments from the root.
//!
//! Invariants: a file has no children; a directory has no value; the root is a directory.
//! Knows nothing of TTL ordering, watches or indexes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::path;
use crate::UnixNanos;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A key with a value.
    File {
        /// The value.
        value: String,
        /// When it expires, if it has a TTL.
        expire_at: Option<UnixNanos>,
    },
    /// A directory; children sorted by name, so listings are sorted by key.
    Dir(BTreeMap<String, Node>),
}

/// The previous content of a file that a write replaced or removed.
pub(crate) struct Previous {
    pub(crate) value: String,
    pub(crate) expire_at: Option<UnixNanos>,
}

/// The whole tree.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    root: BTreeMap<String, Node>,
}

impl Tree {
    /// The children of the root.
    pub(crate) fn root(&self) -> &BTreeMap<String, Node> {
        &self.root
    }

    /// The node at a clean key; `None` for the root itself (use [`Tree::root`]) or a missing key.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        let mut dir = Some(&self.root);
        let mut node = None;
        for seg in path::segments(key) {
            let n = dir?.get(seg)?;
            dir = match n {
                Node::Dir(children) => Some(children),
                Node::File { .. } => None,
            };
            node = Some(n);
        }
        node
    }

    /// Sets a file, creating missing parent directories. Fails with `NotFile` (carrying `key`)
    /// for `/`, a directory, or a key below a file; nothing is changed then.
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: String,
        expire_at: Option<UnixNanos>,
    ) -> Result<Option<Previous>> {
        let segs: Vec<&str> = path::segments(key).collect();
        let Some((last, parents)) = segs.split_last() else {
            return Err(Error::NotFile(key.to_string()));
        };
        // Check first so that a failed set creates no directories.
        let mut dir = Some(&self.root);
        for seg in parents {
            match dir.and_then(|d| d.get(*seg)) {
                Some(Node::File { .. }) => return Err(Error::NotFile(key.to_string())),
                Some(Node::Dir(children)) => dir = Some(children),
                None => dir = None,
            }
        }
        if let Some(Node::Dir(_)) = dir.and_then(|d| d.get(*last)) {
            return Err(Error::NotFile(key.to_string()));
        }
        let mut dir = &mut self.root;
        for seg in parents {
            let node = dir
                .entry((*seg).to_string())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            match node {
                Node::Dir(children) => dir = children,
                Node::File { .. } => unreachable!("checked above: no file on the path"),
            }
        }
        let new = Node::File { value, expire_at };
        Ok(match dir.insert((*last).to_string(), new) {
            Some(Node::File { value, expire_at }) => Some(Previous { value, expire_at }),
            Some(Node::Dir(_)) => unreachable!("checked above: target is not a directory"),
            None => None,
        })
    }

    /// Removes a file. `KeyNotFound` if missing, `NotFile` for a directory or `/`.
    /// Parent directories stay, even when they become empty.
    pub(crate) fn remove_file(&mut self, key: &str) -> Result<Previous> {
        let segs: Vec<&str> = path::segments(key).collect();
        let Some((last, parents)) = segs.split_last() else {
            return Err(Error::NotFile(key.to_string()));
        };
        let mut dir = &mut self.root;
        for seg in parents {
            match dir.get_mut(*seg) {
                Some(Node::Dir(children)) => dir = children,
                _ => return Err(Error::KeyNotFound(key.to_string())),
            }
        }
        match dir.get(*last) {
            None => Err(Error::KeyNotFound(key.to_string())),
            Some(Node::Dir(_)) => Err(Error::NotFile(key.to_string())),
            Some(Node::File { .. }) => match dir.remove(*last) {
                Some(Node::File { value, expire_at }) => Ok(Previous { value, expire_at }),
                _ => unreachable!("checked above: a file is there"),
            },
        }
    }

    /// Visits every node in pre-order (directories before their children), with its clean key.
    pub(crate) fn walk(&self, mut visit: impl FnMut(&str, &Node)) {
        let mut stack: Vec<(String, &Node)> = self
            .root
            .iter()
            .rev()
            .map(|(name, node)| (path::join("/", name), node))
            .collect();
        while let Some((key, node)) = stack.pop() {
            visit(&key, node);
            if let Node::Dir(children) = node {
                // Reversed, so that pops come out in sorted order.
                for (name, child) in children.iter().rev() {
                    stack.push((path::join(&key, name), child));
                }
            }
        }
    }

    /// Creates an (empty) directory and its parents; used by restore. Fails if a file is in
    /// the way.
    pub(crate) fn make_dir(&mut self, key: &str) -> Result<()> {
        let mut dir = &mut self.root;
        for seg in path::segments(key) {
            let node = dir
                .entry(seg.to_string())
                .or_insert_with(|| Node::Dir(BTreeMap::new()));
            match node {
                Node::Dir(children) => dir = children,
                Node::File { .. } => return Err(Error::NotFile(key.to_string())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(v: &str) -> Node {
        Node::File {
            value: v.into(),
            expire_at: None,
        }
    }

    #[test]
    fn set_creates_parents_and_get_finds_them() {
        let mut t = Tree::default();
        assert!(t.set("/a/b/c", "v".into(), None).unwrap().is_none());
        assert_eq!(t.get("/a/b/c"), Some(&file("v")));
        assert!(matches!(t.get("/a/b"), Some(Node::Dir(_))));
        assert_eq!(t.get("/a/b/c/d"), None);
        assert_eq!(t.get("/x"), None);
    }

    #[test]
    fn failed_set_changes_nothing() {
        let mut t = Tree::default();
        t.set("/f", "v".into(), None).unwrap();
        assert_eq!(
            t.set("/f/x/y", "v".into(), None).err(),
            Some(Error::NotFile("/f/x/y".into()))
        );
        t.set("/d/x", "v".into(), None).unwrap();
        assert_eq!(
            t.set("/d", "v".into(), None).err(),
            Some(Error::NotFile("/d".into()))
        );
        assert_eq!(
            t.set("/", "v".into(), None).err(),
            Some(Error::NotFile("/".into()))
        );
        let mut keys = vec![];
        t.walk(|k, _| keys.push(k.to_string()));
        assert_eq!(keys, vec!["/d", "/d/x", "/f"]);
    }

    #[test]
    fn remove_keeps_directories() {
        let mut t = Tree::default();
        t.set("/d/x", "v".into(), None).unwrap();
        assert_eq!(t.remove_file("/d/x").unwrap().value, "v");
        assert!(matches!(t.get("/d"), Some(Node::Dir(c)) if c.is_empty()));
        assert_eq!(t.remove_file("/d").err(), Some(Error::NotFile("/d".into())));
        assert_eq!(
            t.remove_file("/d/x").err(),
            Some(Error::KeyNotFound("/d/x".into()))
        );
        assert_eq!(
            t.remove_file("/q/x").err(),
            Some(Error::KeyNotFound("/q/x".into()))
        );
    }
}
