//! The v3 keyspace's value files: where values over [`etcd_mvcc::INLINE_MAX`] bytes live, so
//! that the heap holds the key index and not the data (etcd keeps its values in bbolt's file
//! in the same way; its heap holds the key index).
//!
//! The files are a cache of the replicated state, not part of it: the snapshot and the WAL hold
//! every value, and a start rebuilds the files while it loads them. So they are never fsynced,
//! and each is unlinked as soon as it is created. Its space goes back to the file system when
//! its last value is dropped (every stored value holds its file), or when the process ends,
//! however it ends; nothing is ever left to clean up.
//!
//! Each file takes values until it reaches [`FILE_BYTES`]. Appends are gathered in memory and
//! written [`FLUSH_BYTES`] at a time (reads of what is not yet written come from memory).
//! Compaction rewrites the values still in use of files mostly unused (`etcd_mvcc`), after
//! which those files go.
//!
//! A file that cannot be created or written (a full disk) takes no more values: they stay in
//! memory, and the member goes on. A file that cannot be read back stops the member (see
//! `etcd_mvcc::Stored`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use etcd_mvcc::{FileHandle, Stored, ValueFile, ValueStore};

/// A value file takes values until it holds this many bytes.
pub const FILE_BYTES: u64 = 64 << 20;

/// Appends are written out once this many bytes are waiting.
pub const FLUSH_BYTES: usize = 256 << 10;

/// The value files of one member, in its data directory.
#[derive(Debug)]
pub struct ValueFiles {
    dir: PathBuf,
    active: Mutex<Option<Active>>,
    /// Numbers the files (their short-lived names).
    next: AtomicU64,
}

/// The file taking values now.
#[derive(Debug)]
struct Active {
    file: Arc<Segment>,
    handle: FileHandle,
}

/// One value file.
#[derive(Debug)]
struct Segment {
    file: File,
    /// Bytes appended so far (written out or waiting).
    written: AtomicU64,
    sealed: AtomicBool,
    tail: Mutex<Tail>,
}

/// What is waiting to be written out.
#[derive(Debug, Default)]
struct Tail {
    /// The bytes at `flushed..written`.
    buf: Vec<u8>,
    /// Bytes written out.
    flushed: u64,
    /// A write failed: the file takes no more values, and keeps `buf` in memory.
    failed: bool,
}

impl ValueFiles {
    /// Value files in `dir` (which must exist).
    pub fn new(dir: &Path) -> ValueFiles {
        ValueFiles {
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            next: AtomicU64::new(0),
        }
    }

    /// A new file, already unlinked.
    fn create(&self) -> io::Result<Segment> {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("v3-values.{n}.tmp"));
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => other?,
            };
            std::fs::remove_file(&path)?;
            return Ok(Segment {
                file,
                written: AtomicU64::new(0),
                sealed: AtomicBool::new(false),
                tail: Mutex::new(Tail::default()),
            });
        }
    }
}

impl ValueStore for ValueFiles {
    fn store(&self, value: &[u8]) -> Option<Stored> {
        let mut active = self.active.lock().expect("value files lock poisoned");
        let full = active.as_ref().is_none_or(|a| {
            a.file.written.load(Ordering::Relaxed) + value.len() as u64 > FILE_BYTES
        });
        if full {
            if let Some(old) = active.take() {
                old.file.seal();
            }
            match self.create() {
                Ok(segment) => {
                    let file = Arc::new(segment);
                    let handle: FileHandle = Arc::new(Box::new(Handle(file.clone())));
                    *active = Some(Active { file, handle });
                }
                Err(e) => {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        "cannot create a value file, keeping values in memory: {e}"
                    );
                    return None;
                }
            }
        }
        let a = active.as_ref().expect("an active file");
        let offset = a.file.append(value)?;
        Some(Stored::new(a.handle.clone(), offset, value.len() as u32))
    }
}

impl Segment {
    /// Appends `value`; returns its offset, or `None` if the file takes no more.
    fn append(&self, value: &[u8]) -> Option<u32> {
        let mut tail = self.tail.lock().expect("value file lock poisoned");
        if tail.failed {
            return None;
        }
        let offset = self.written.load(Ordering::Relaxed);
        tail.buf.extend_from_slice(value);
        self.written
            .store(offset + value.len() as u64, Ordering::Relaxed);
        if tail.buf.len() >= FLUSH_BYTES {
            self.flush(&mut tail);
        }
        Some(offset as u32)
    }

    /// Writes out what is waiting; on failure, keeps it in memory for good.
    fn flush(&self, tail: &mut Tail) {
        if tail.buf.is_empty() || tail.failed {
            return;
        }
        match self.file.write_all_at(&tail.buf, tail.flushed) {
            Ok(()) => {
                tail.flushed += tail.buf.len() as u64;
                tail.buf.clear();
                if tail.buf.capacity() > FLUSH_BYTES * 2 {
                    tail.buf.shrink_to(FLUSH_BYTES);
                }
            }
            Err(e) => {
                tracing::warn!("cannot write a value file, keeping values in memory: {e}");
                tail.failed = true;
            }
        }
    }

    /// Takes no more values; what is waiting is written out.
    fn seal(&self) {
        let mut tail = self.tail.lock().expect("value file lock poisoned");
        self.flush(&mut tail);
        if !tail.failed {
            tail.buf = Vec::new();
        }
        self.sealed.store(true, Ordering::Relaxed);
    }
}

/// A [`Segment`] as the keyspace holds it.
#[derive(Debug)]
struct Handle(Arc<Segment>);

impl ValueFile for Handle {
    fn read(&self, offset: u32, len: u32) -> io::Result<Bytes> {
        let segment = &self.0;
        let (offset, len) = (u64::from(offset), len as usize);
        {
            let tail = segment.tail.lock().expect("value file lock poisoned");
            if offset >= tail.flushed {
                let at = (offset - tail.flushed) as usize;
                return match tail.buf.get(at..at + len) {
                    Some(b) => Ok(Bytes::copy_from_slice(b)),
                    None => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "past the end of the value file",
                    )),
                };
            }
        }
        let mut buf = vec![0; len];
        segment.file.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    fn written(&self) -> u64 {
        self.0.written.load(Ordering::Relaxed)
    }

    fn sealed(&self) -> bool {
        self.0.sealed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_before_and_after_they_are_written_out() {
        let dir = tempfile_dir();
        let files = ValueFiles::new(&dir);
        let mut kept = Vec::new();
        // Enough to flush several times, and to fill more than one file would take too long:
        // 3 MiB in values of 1,000 bytes.
        for i in 0..3_000u32 {
            let value = vec![(i % 251) as u8; 1_000];
            let stored = files.store(&value).expect("stored");
            kept.push((stored, value));
        }
        let active = files.active.lock().unwrap();
        let handle = &active.as_ref().unwrap().handle;
        for (i, (stored, value)) in kept.iter().enumerate() {
            let offset = i as u32 * 1_000;
            assert_eq!(format!("{stored:?}"), format!("Stored(1000@{offset})"));
            assert_eq!(&handle.read(offset, 1_000).unwrap()[..], &value[..], "{i}");
        }
        // The file was unlinked at once: nothing is left in the directory.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(handle.read(3_000 * 1_000, 1).is_err());
        drop(active);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_file_is_sealed_and_a_new_one_takes_values() {
        let dir = tempfile_dir();
        let files = ValueFiles::new(&dir);
        let big = vec![7u8; 1 << 20];
        let first = files.store(&big).unwrap();
        for _ in 1..(FILE_BYTES >> 20) {
            files.store(&big).unwrap();
        }
        let next = files.store(&big).unwrap();
        let active = files.active.lock().unwrap();
        let handle = &active.as_ref().unwrap().handle;
        assert_eq!(handle.written(), 1 << 20);
        assert!(!handle.sealed());
        drop(active);
        assert_ne!(first, next);
        assert_eq!(format!("{next:?}"), format!("Stored({}@0)", 1 << 20));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "etcd-values-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
