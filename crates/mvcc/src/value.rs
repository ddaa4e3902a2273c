//! Where the keyspace keeps values: small ones in memory, bigger ones, when the server gives
//! the keyspace a [`ValueStore`], out of the heap (in the server's value files), so that the
//! heap holds the key index and not the data, as etcd's holds its key index while values live
//! in bbolt's file.
//!
//! This crate does no I/O itself: a [`ValueStore`] appends a value and says where it went (a
//! [`Stored`]: a file handle, an offset and a length); reading one back goes through the file
//! handle. A stored value is immutable, and its file lives as long as any version (in the
//! keyspace or in a clone of it, such as a snapshot being written) refers to it, because every
//! [`Stored`] holds the file by `Arc`.
//!
//! Where a value is kept is local to a member and not part of the replicated state: hashes,
//! snapshots and answers see only the bytes.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Values of at most this many bytes stay in memory: a stored value's handle costs about as
/// much as they do, and reading one is a system call.
pub const INLINE_MAX: usize = 64;

/// Somewhere values can be appended and read back (the server's value files).
pub trait ValueStore: Send + Sync + fmt::Debug {
    /// Appends `value` and says where it is, or `None` if it cannot be stored (a full disk):
    /// the keyspace then keeps it in memory.
    fn store(&self, value: &[u8]) -> Option<Stored>;
}

/// One file of a [`ValueStore`].
pub trait ValueFile: Send + Sync + fmt::Debug {
    /// Reads `len` bytes at `offset`, which a [`ValueStore::store`] returned.
    fn read(&self, offset: u32, len: u32) -> std::io::Result<Bytes>;

    /// Bytes appended to the file so far.
    fn written(&self) -> u64;

    /// True once the file takes no more values.
    fn sealed(&self) -> bool;
}

/// A [`ValueFile`] as stored values hold it (a thin pointer, so that a [`Stored`] takes 16
/// bytes).
pub type FileHandle = Arc<Box<dyn ValueFile>>;

/// Where a stored value is.
#[derive(Clone)]
pub struct Stored {
    file: FileHandle,
    offset: u32,
    len: u32,
}

impl Stored {
    /// The value at `offset` in `file`, `len` bytes long.
    pub fn new(file: FileHandle, offset: u32, len: u32) -> Stored {
        Stored { file, offset, len }
    }

    /// The file it is in.
    pub(crate) fn file(&self) -> &FileHandle {
        &self.file
    }

    /// Its length.
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Reads it back. A value file the server wrote and cannot read again is a failure of the
    /// member's own disk, which no answer can cover: the member stops, as etcd does when bbolt
    /// fails, and rebuilds its files from its snapshot and log when it starts again.
    fn load(&self) -> Bytes {
        match self.file.read(self.offset, self.len) {
            Ok(b) if b.len() == self.len as usize => b,
            Ok(b) => panic!(
                "value file {:?}: {} bytes at {} read as {}",
                self.file,
                self.len,
                self.offset,
                b.len()
            ),
            Err(e) => panic!(
                "value file {:?}: reading {} bytes at {}: {e}",
                self.file, self.len, self.offset
            ),
        }
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stored({}@{})", self.len, self.offset)
    }
}

impl PartialEq for Stored {
    fn eq(&self, other: &Stored) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.offset == other.offset && self.len == other.len
    }
}

/// A version's value: none (a deletion), in memory, or stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// The version is a deletion.
    Deleted,
    /// Kept in memory (its own copy, never a slice of a bigger buffer such as a log entry).
    Inline(Box<[u8]>),
    /// Kept in a value file.
    Stored(Stored),
}

impl Value {
    /// The bytes (empty for a deletion).
    pub(crate) fn load(&self) -> Bytes {
        match self {
            Value::Deleted => Bytes::new(),
            Value::Inline(b) => Bytes::copy_from_slice(b),
            Value::Stored(s) => s.load(),
        }
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Value::Deleted => 0,
            Value::Inline(b) => b.len(),
            Value::Stored(s) => s.len as usize,
        }
    }
}

/// The keyspace's handle on its [`ValueStore`], if it has one: cloned with the keyspace.
#[derive(Debug, Clone, Default)]
pub struct Values {
    store: Option<Arc<dyn ValueStore>>,
    /// Values up to this many bytes stay in memory.
    inline_max: usize,
}

impl Values {
    /// Values kept out of the heap in `store` (those over [`INLINE_MAX`] bytes).
    pub fn new(store: Arc<dyn ValueStore>) -> Values {
        Values {
            store: Some(store),
            inline_max: INLINE_MAX,
        }
    }

    /// Every value in memory.
    pub fn memory() -> Values {
        Values::default()
    }

    /// Every non-empty value in `store` (for tests of the stored path).
    #[cfg(test)]
    pub(crate) fn all_stored(store: Arc<dyn ValueStore>) -> Values {
        Values {
            store: Some(store),
            inline_max: 0,
        }
    }

    /// Keeps `value`: stored if it is big enough and there is a store that takes it, else a
    /// copy in memory.
    pub(crate) fn keep(&self, value: &[u8]) -> Value {
        if value.len() > self.inline_max {
            if let Some(stored) = self.store.as_ref().and_then(|s| s.store(value)) {
                return Value::Stored(stored);
            }
        }
        Value::Inline(value.into())
    }
}

#[cfg(test)]
#[test]
fn a_version_takes_64_bytes() {
    assert_eq!(std::mem::size_of::<Stored>(), 16);
    assert_eq!(std::mem::size_of::<Value>(), 24);
    assert_eq!(std::mem::size_of::<crate::keyspace::Version>(), 64);
}
