//! The key tree: directories own their children by name, files hold a value. Every node
//! carries the log index that created it, the index that last modified it, and an optional
//! expiry (directories can expire too, as in etcd v2). Owned, no back-pointers; lookups walk
//! path segments from the root.
//!
//! Invariants: a file has no children; a directory has no value; the root is a directory that
//! is never replaced or removed. Missing parent directories are created with the index of the
//! write that needed them. Knows nothing of TTL ordering, watches or events.
//!
//! Directories are persistent (copy-on-write) ordered maps ([`imbl::OrdMap`], a B+tree whose
//! nodes are shared through reference counts): cloning the whole [`Tree`] copies one pointer,
//! and a write after a clone copies only the nodes on its path. That is what lets a snapshot
//! take the state in microseconds on the raft thread and encode it on another thread while
//! writes go on. (imbl rather than rpds: a B+tree of 16-entry chunks is a few pointer hops per
//! lookup and about one allocation per 16 entries, where rpds's red-black tree allocates a node
//! per entry; both mutate in place when nothing shares the node.)

/// A directory's children by name.
pub(crate) type Children = imbl::OrdMap<String, Node>;

use crate::error::{Error, Result};
use crate::path;
use crate::{Index, UnixNanos};

/// What a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A key with a value.
    File(String),
    /// A directory; children sorted by name, so listings are sorted by key.
    Dir(Children),
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// Index of the write that created the node.
    pub(crate) created: Index,
    /// Index of the write that last changed it (a child's write does not change a directory).
    pub(crate) modified: Index,
    /// When it expires, if it has a TTL.
    pub(crate) expire_at: Option<UnixNanos>,
    /// File or directory.
    pub(crate) kind: Kind,
}

impl Node {
    pub(crate) fn file(value: String, index: Index, expire_at: Option<UnixNanos>) -> Node {
        Node {
            created: index,
            modified: index,
            expire_at,
            kind: Kind::File(value),
        }
    }

    pub(crate) fn dir(index: Index, expire_at: Option<UnixNanos>) -> Node {
        Node {
            created: index,
            modified: index,
            expire_at,
            kind: Kind::Dir(Children::new()),
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// The value of a file; `None` for a directory.
    pub(crate) fn value(&self) -> Option<&str> {
        match &self.kind {
            Kind::File(v) => Some(v),
            Kind::Dir(_) => None,
        }
    }

    /// The children of a directory; `None` for a file.
    pub(crate) fn children(&self) -> Option<&Children> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            Kind::File(_) => None,
        }
    }

    /// Visits this node and everything below it in pre-order, with clean keys.
    pub(crate) fn walk(&self, key: &str, visit: &mut impl FnMut(&str, &Node)) {
        let mut stack: Vec<(String, &Node)> = vec![(key.to_string(), self)];
        while let Some((key, node)) = stack.pop() {
            visit(&key, node);
            if let Kind::Dir(children) = &node.kind {
                // Reversed, so that pops come out in sorted order.
                for (name, child) in children.iter().rev() {
                    stack.push((path::join(&key, name), child));
                }
            }
        }
    }
}

/// The whole tree. Cloning it is O(1) (see the module docs).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tree {
    root: Children,
}

impl Tree {
    /// The children of the root.
    pub(crate) fn root(&self) -> &Children {
        &self.root
    }

    /// The node at a clean key; `None` for the root itself (use [`Tree::root`]) or a missing key.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.lookup(key).ok().flatten()
    }

    /// Like [`Tree::get`], but tells why a key is missing the way etcd v2 does: `NotDir`
    /// naming the file that lies on the path, or `KeyNotFound` naming the first missing
    /// segment's key. `Ok(None)` is the root.
    pub(crate) fn lookup(&self, key: &str) -> Result<Option<&Node>> {
        let mut dir = &self.root;
        let mut node: Option<&Node> = None;
        let mut walked = String::new();
        for seg in path::segments(key) {
            if let Some(n) = node {
                match &n.kind {
                    Kind::Dir(children) => dir = children,
                    Kind::File(_) => return Err(Error::NotDir(walked)),
                }
            }
            walked.push('/');
            walked.push_str(seg);
            match dir.get(seg) {
                Some(n) => node = Some(n),
                None => return Err(Error::KeyNotFound(walked)),
            }
        }
        Ok(node)
    }

    /// Mutable access to the node at a clean key (not the root).
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        let segs: Vec<&str> = path::segments(key).collect();
        let (last, parents) = segs.split_last()?;
        let mut dir = &mut self.root;
        for seg in parents {
            match dir.get_mut(*seg) {
                Some(Node {
                    kind: Kind::Dir(children),
                    ..
                }) => dir = children,
                _ => return None,
            }
        }
        dir.get_mut(*last)
    }

    /// Checks that every parent of `key` is a directory or missing: `NotDir` names the first
    /// file on the path. Nothing is changed.
    pub(crate) fn check_parents(&self, key: &str) -> Result<()> {
        let segs: Vec<&str> = path::segments(key).collect();
        let Some((_, parents)) = segs.split_last() else {
            return Ok(());
        };
        let mut dir = Some(&self.root);
        let mut walked = String::new();
        for seg in parents {
            walked.push('/');
            walked.push_str(seg);
            match dir.and_then(|d| d.get(*seg)) {
                Some(Node {
                    kind: Kind::File(_),
                    ..
                }) => return Err(Error::NotDir(walked)),
                Some(Node {
                    kind: Kind::Dir(children),
                    ..
                }) => dir = Some(children),
                None => dir = None,
            }
        }
        Ok(())
    }

    /// Puts `node` at `key` (not the root), creating missing parent directories with `index`,
    /// and returns what was there. The caller has checked the parents ([`Tree::check_parents`])
    /// and decided that replacing is allowed.
    pub(crate) fn put(&mut self, key: &str, node: Node, index: Index) -> Option<Node> {
        let segs: Vec<&str> = path::segments(key).collect();
        let (last, parents) = segs.split_last().expect("put is never called for the root");
        let mut dir = &mut self.root;
        for seg in parents {
            if !dir.contains_key(*seg) {
                dir.insert((*seg).to_string(), Node::dir(index, None));
            }
            let n = dir.get_mut(*seg).expect("inserted above");
            match &mut n.kind {
                Kind::Dir(children) => dir = children,
                Kind::File(_) => {
                    unreachable!("put: the caller checked that no file is on the path")
                }
            }
        }
        dir.insert((*last).to_string(), node)
    }

    /// Removes the node at `key` (not the root) with everything below it.
    pub(crate) fn remove(&mut self, key: &str) -> Option<Node> {
        let segs: Vec<&str> = path::segments(key).collect();
        let (last, parents) = segs.split_last()?;
        let mut dir = &mut self.root;
        for seg in parents {
            match dir.get_mut(*seg) {
                Some(Node {
                    kind: Kind::Dir(children),
                    ..
                }) => dir = children,
                _ => return None,
            }
        }
        dir.remove(*last)
    }

    /// Visits every node in pre-order (directories before their children), with its clean key.
    pub(crate) fn walk(&self, mut visit: impl FnMut(&str, &Node)) {
        for (name, node) in self.root.iter() {
            node.walk(&path::join("/", name), &mut visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_creates_parents_with_the_writes_index() {
        let mut t = Tree::default();
        assert!(t
            .put("/a/b/c", Node::file("v".into(), 7, None), 7)
            .is_none());
        assert_eq!(t.get("/a/b/c"), Some(&Node::file("v".into(), 7, None)));
        let b = t.get("/a/b").unwrap();
        assert!(b.is_dir());
        assert_eq!((b.created, b.modified), (7, 7));
        assert_eq!(t.get("/a/b/c/d"), None);
        assert_eq!(t.get("/x"), None);
    }

    #[test]
    fn lookup_names_the_first_missing_key_or_the_file_in_the_way() {
        let mut t = Tree::default();
        t.put("/f", Node::file("v".into(), 3, None), 3);
        t.put("/d/x", Node::file("v".into(), 4, None), 4);
        assert_eq!(t.lookup("/f/x/y"), Err(Error::NotDir("/f".into())));
        assert_eq!(t.lookup("/q/x"), Err(Error::KeyNotFound("/q".into())));
        assert_eq!(t.lookup("/d/y"), Err(Error::KeyNotFound("/d/y".into())));
        assert_eq!(t.lookup("/"), Ok(None));
        assert!(t.lookup("/d").unwrap().unwrap().is_dir());
        assert_eq!(t.check_parents("/f/x/y"), Err(Error::NotDir("/f".into())));
        assert_eq!(
            t.check_parents("/d/x/y/z"),
            Err(Error::NotDir("/d/x".into()))
        );
        assert_eq!(t.check_parents("/new/a/b"), Ok(()));
        assert_eq!(t.check_parents("/f"), Ok(()));
    }

    #[test]
    fn remove_takes_the_whole_subtree_and_keeps_the_parent() {
        let mut t = Tree::default();
        t.put("/d/s/x", Node::file("v".into(), 3, None), 3);
        t.put("/d/y", Node::file("v".into(), 4, None), 4);
        let gone = t.remove("/d/s").unwrap();
        assert!(gone.is_dir());
        assert!(t.get("/d/s/x").is_none());
        assert!(t.get("/d/y").is_some());
        assert!(t.remove("/d/s").is_none());
        let mut keys = vec![];
        t.walk(|k, _| keys.push(k.to_string()));
        assert_eq!(keys, vec!["/d", "/d/y"]);
    }
}
