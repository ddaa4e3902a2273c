//! The write-ahead log: append-only segment files of checksummed records.
//!
//! # On-disk format
//!
//! The log lives in `DATA_DIR/wal/`. It is a sequence of *segment* files named
//! `{seq:016x}-{first_index:016x}.wal`: `seq` numbers segments from 0 in creation order, and
//! `first_index` is the raft index the first entry written to that segment was expected to have
//! (informational except for release, see below). Each segment is a sequence of records:
//!
//! ```text
//! +----------------+----------------+--------+---------------------+
//! | len: u32 LE    | crc: u32 LE    | kind:u8| payload (len-1 B)   |
//! +----------------+----------------+--------+---------------------+
//! ```
//!
//! `len` counts `kind` plus `payload` (1 ..= [`MAX_RECORD_BYTES`]); `crc` is CRC-32 (IEEE) of
//! `kind` and `payload`. What kinds mean is up to the caller (`raft::storage`); this module only
//! frames, checksums, syncs and recovers them.
//!
//! # Durability
//!
//! [`Wal::append`] only buffers; [`Wal::sync`] writes the buffer and `fdatasync`s the segment,
//! so a batch of records (all the entries and the hard state of one raft `Ready`) costs one
//! fsync: group commit. Creating or deleting a segment also fsyncs the directory.
//!
//! # Preallocation
//!
//! The segment being written is preallocated to [`PREALLOCATE_BYTES`] (`fallocate`, size
//! synced once), so an append does not change the file's size: its `fdatasync` need not commit
//! the inode too (about a fifth cheaper on ext4, measured: docs/performance.md). The end of the
//! log in the last segment is therefore the first record followed only by zero bytes. A rolled
//! segment is truncated to its records before the next one is created, so only the last one
//! ever has such a tail. Filesystems without `fallocate` simply go without.
//!
//! # Recovery rules ([`Wal::open`])
//!
//! - A record that does not parse (short header, length past end of file, bad CRC, unknown
//!   kind) in the **last** segment, with no valid record anywhere after it, is a torn tail from a
//!   crash during an unsynced write: the file is truncated at the record's start and the node
//!   starts. Nothing acknowledged is lost, because acknowledgements wait for `sync`.
//! - Such a record with a valid record after it, or in any segment but the last, is corruption
//!   of data that was synced: [`Wal::open`] fails with [`Error::Corrupt`] naming the file and the
//!   byte offset, and the node refuses to start rather than silently drop acknowledged writes.
//!
//! # Release
//!
//! Segment `i` may be deleted once every entry in it is covered by a snapshot: when segment
//! `i + 1` starts at or below `covered + 1`. The last segment is never deleted.
//!
//! Not here: what records mean, raft semantics, snapshots (see `snap.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Largest record body accepted, in bytes; longer lengths are treated as corruption.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// The size the segment being written is preallocated to.
pub const PREALLOCATE_BYTES: u64 = 64 << 20;

const HEADER_BYTES: usize = 8;

/// WAL errors. All of them are fatal for the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a WAL file failed.
    #[error("WAL I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A synced record is damaged.
    #[error("corrupt WAL record in {path} at offset {offset}: {reason}; refusing to start (restore this member from a peer or a backup)")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file name in the WAL directory is not a segment name.
    #[error("unexpected file in WAL directory: {0}")]
    BadName(PathBuf),
}

/// WAL result.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The caller's record kind.
    pub kind: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Segment {
    seq: u64,
    first_index: u64,
    path: PathBuf,
}

/// An open write-ahead log, positioned at the end of its last segment.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: File,
    /// Records appended since the last sync.
    buf: Vec<u8>,
    /// Bytes of records synced to the current segment (where the next write goes).
    size: u64,
    /// Which record kinds exist; anything else is corruption.
    known_kinds: &'static [u8],
}

impl Wal {
    /// True if `dir` exists and is not empty. Anything in it counts (a stray file, an
    /// unreadable directory): [`Wal::open`] then reports what is wrong, rather than a member
    /// with data starting over as a new one.
    pub fn exists(dir: &Path) -> bool {
        match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        }
    }

    /// Creates a new log in `dir` (created if missing), whose first entry will be `first_index`.
    pub fn create(dir: &Path, first_index: u64, known_kinds: &'static [u8]) -> Result<Wal> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let seg = Segment {
            seq: 0,
            first_index,
            path: dir.join(segment_name(0, first_index)),
        };
        let file = create_file(&seg.path)?;
        preallocate(&file, &seg.path)?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            // The new directory's own entry must survive a crash too.
            sync_dir(parent)?;
        }
        Ok(Wal {
            dir: dir.to_path_buf(),
            segments: vec![seg],
            file,
            buf: Vec::new(),
            size: 0,
            known_kinds,
        })
    }

    /// Opens the log in `dir`, returning every record in order. Repairs a torn tail; fails on
    /// corruption (see the module docs).
    pub fn open(dir: &Path, known_kinds: &'static [u8]) -> Result<(Wal, Vec<Record>)> {
        let mut records = Vec::new();
        let wal = Wal::open_each(dir, known_kinds, &mut |r| {
            records.push(r);
            Ok::<(), Error>(())
        })?;
        Ok((wal, records))
    }

    /// Opens the log in `dir`, handing every record in order to `each` as it is read (the
    /// segments are streamed, never held whole). Repairs a torn tail; fails on corruption
    /// (see the module docs), or with the first error `each` returns.
    pub fn open_each<E: From<Error>>(
        dir: &Path,
        known_kinds: &'static [u8],
        each: &mut dyn FnMut(Record) -> std::result::Result<(), E>,
    ) -> std::result::Result<Wal, E> {
        let segments = list_segments(dir)?;
        let Some(last) = segments.last().cloned() else {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no WAL segments"),
            }
            .into());
        };
        // Segments are only ever released from the front, so their numbers have no gaps.
        for pair in segments.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                return Err(Error::Corrupt {
                    path: pair[1].path.clone(),
                    offset: 0,
                    reason: format!("segment {:x} is missing before it", pair[0].seq + 1),
                }
                .into());
            }
        }
        // Where the records of the segment just read end.
        let mut end = 0usize;
        for (i, seg) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            end = scan_segment(&seg.path, is_last, known_kinds, each)?;
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&last.path)
            .map_err(io(&last.path))?;
        preallocate(&file, &last.path)?;
        let size = end as u64;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segments,
            file,
            buf: Vec::new(),
            size,
            known_kinds,
        })
    }

    /// Buffers a record; durable only after [`Wal::sync`].
    pub fn append(&mut self, kind: u8, payload: &[u8]) {
        debug_assert!(self.known_kinds.contains(&kind));
        let len = payload.len() + 1;
        assert!(len <= MAX_RECORD_BYTES, "WAL record of {len} bytes");
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(payload);
        self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        self.buf.extend_from_slice(&h.finalize().to_le_bytes());
        self.buf.push(kind);
        self.buf.extend_from_slice(payload);
    }

    /// True if records were appended since the last sync.
    pub fn is_dirty(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes buffered records and fdatasyncs the segment: one fsync for the whole batch.
    pub fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = &self.segments.last().expect("a WAL has a segment").path;
        self.file
            .write_all_at(&self.buf, self.size)
            .map_err(io(path))?;
        let started = std::time::Instant::now();
        self.file.sync_data().map_err(io(path))?;
        let took = started.elapsed();
        crate::metrics::metrics()
            .wal_fsync
            .observe(took.as_secs_f64());
        // etcd's warning for an fsync over a second.
        if took > std::time::Duration::from_secs(1) {
            tracing::warn!(
                path = %path.display(),
                took = ?took,
                "expected-duration" = "1s",
                "slow fdatasync"
            );
        }
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Bytes in the current segment.
    pub fn segment_size(&self) -> u64 {
        self.size
    }

    /// Starts a new segment whose first entry will be `first_index`, writing `header` records
    /// (the caller's current state) into it first. Syncs pending records first.
    pub fn roll(&mut self, first_index: u64, header: &[(u8, Vec<u8>)]) -> Result<()> {
        self.sync()?;
        // Only the last segment may end in preallocated zeros (see the module docs).
        let old = &self.segments.last().expect("a WAL has a segment").path;
        self.file.set_len(self.size).map_err(io(old))?;
        self.file.sync_all().map_err(io(old))?;
        let seq = self.segments.last().map_or(0, |s| s.seq + 1);
        let seg = Segment {
            seq,
            first_index,
            path: self.dir.join(segment_name(seq, first_index)),
        };
        let file = create_file(&seg.path)?;
        preallocate(&file, &seg.path)?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.segments.push(seg);
        self.size = 0;
        for (kind, payload) in header {
            self.append(*kind, payload);
        }
        self.sync()
    }

    /// Deletes the oldest segments whose entries are all at or below `covered` (held by a
    /// snapshot) while more than `keep` segments remain (0: keeps them all).
    pub fn release(&mut self, covered: u64, keep: usize) -> Result<()> {
        let mut removed = false;
        while keep > 0
            && self.segments.len() > keep.max(1)
            && self.segments[1].first_index <= covered + 1
        {
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path).map_err(io(&seg.path))?;
            tracing::debug!(file = %seg.path.display(), "released WAL segment");
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Paths of the segments, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }
}

fn segment_name(seq: u64, first_index: u64) -> String {
    format!("{seq:016x}-{first_index:016x}.wal")
}

fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            continue;
        }
        let (seq, first_index) = parse_name(&name).ok_or_else(|| Error::BadName(path.clone()))?;
        out.push(Segment {
            seq,
            first_index,
            path,
        });
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

fn create_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(io(path))
}

/// Extends `file` to [`PREALLOCATE_BYTES`] of allocated (zero) space and makes that size
/// durable, so that appends within it need only `fdatasync`. A filesystem that cannot
/// preallocate is used as it is.
fn preallocate(file: &File, path: &Path) -> Result<()> {
    let len = file.metadata().map_err(io(path))?.len();
    if len >= PREALLOCATE_BYTES {
        return Ok(());
    }
    match rustix::fs::fallocate(
        file,
        rustix::fs::FallocateFlags::empty(),
        0,
        PREALLOCATE_BYTES,
    ) {
        Ok(()) => file.sync_all().map_err(io(path)),
        Err(e) => {
            tracing::debug!(file = %path.display(), "no WAL preallocation: {e}");
            Ok(())
        }
    }
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::durable::sync_dir(dir).map_err(io(dir))
}

/// Reads the records of one segment in order, handing each to `each`; returns the offset where
/// its records end. The file is streamed; a record that does not parse makes it read the rest
/// of the file at once, to tell a torn tail or the preallocated zero tail from corruption
/// ([`damaged_at`]).
fn scan_segment<E: From<Error>>(
    path: &Path,
    is_last: bool,
    known_kinds: &[u8],
    each: &mut dyn FnMut(Record) -> std::result::Result<(), E>,
) -> std::result::Result<usize, E> {
    let file = File::open(path).map_err(io(path))?;
    let size = file.metadata().map_err(io(path))?.len() as usize;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut off = 0usize;
    while off < size {
        if size - off >= HEADER_BYTES {
            let mut header = [0u8; HEADER_BYTES];
            r.read_exact(&mut header).map_err(io(path))?;
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let rest = size - off - HEADER_BYTES;
            if header == [0; HEADER_BYTES] && is_last && zeros(&mut r, rest).map_err(io(path))? {
                // The preallocated, never written rest of the segment.
                return Ok(off);
            }
            if (1..=MAX_RECORD_BYTES).contains(&len) && len <= rest {
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).map_err(io(path))?;
                if crc32fast::hash(&body) == crc && known_kinds.contains(&body[0]) {
                    let kind = body[0];
                    body.remove(0);
                    each(Record {
                        kind,
                        payload: body,
                    })?;
                    off += HEADER_BYTES + len;
                    continue;
                }
            }
        }
        return Ok(damaged_at(path, off, is_last, known_kinds)?);
    }
    Ok(off)
}

/// True if the next `n` bytes of `r` are all zero (reads them).
fn zeros(r: &mut impl Read, mut n: usize) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; 1 << 16];
    while n > 0 {
        let take = n.min(chunk.len());
        r.read_exact(&mut chunk[..take])?;
        if chunk[..take].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        n -= take;
    }
    Ok(true)
}

/// A record at `off` that does not parse: the end of the records if the rest of the last
/// segment is its zero tail, or a torn tail (which is truncated); otherwise corruption.
fn damaged_at(path: &Path, off: usize, is_last: bool, known_kinds: &[u8]) -> Result<usize> {
    let data = fs::read(path).map_err(io(path))?;
    let reason = match parse_at(&data, off, known_kinds) {
        Err(reason) => reason,
        Ok(_) => "a record that reads differently the second time".to_string(),
    };
    if is_last && data[off..].iter().all(|&b| b == 0) {
        return Ok(off);
    }
    if is_last && !valid_record_after(&data, off + 1, known_kinds) {
        tracing::warn!(
            file = %path.display(),
            offset = off,
            dropped_bytes = data.len() - off,
            "truncating torn WAL tail ({reason})"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        f.set_len(off as u64).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
        return Ok(off);
    }
    Err(Error::Corrupt {
        path: path.to_path_buf(),
        offset: off as u64,
        reason,
    })
}

/// Parses the record at `off`; returns it and the offset after it, or why it is not valid.
fn parse_at(
    data: &[u8],
    off: usize,
    known_kinds: &[u8],
) -> std::result::Result<(Record, usize), String> {
    let rest = &data[off..];
    if rest.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes left, short of a record header",
            rest.len()
        ));
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(format!("impossible record length {len}"));
    }
    if rest.len() - HEADER_BYTES < len {
        return Err(format!(
            "record of {len} bytes runs past the end of the file ({} left)",
            rest.len() - HEADER_BYTES
        ));
    }
    let body = &rest[HEADER_BYTES..HEADER_BYTES + len];
    // The kind first: it is one byte, and the search for a valid record after damage
    // (`valid_record_after`) tries every offset, where a checksum over a random length can
    // cost up to 64 MiB each.
    if !known_kinds.contains(&body[0]) {
        return Err(format!("unknown record kind {}", body[0]));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok((
        Record {
            kind: body[0],
            payload: body[1..].to_vec(),
        },
        off + HEADER_BYTES + len,
    ))
}

/// True if a valid record starts at any offset from `from` on: then the damage is not a torn
/// tail, because data written after it survived.
fn valid_record_after(data: &[u8], from: usize, known_kinds: &[u8]) -> bool {
    // A record's length field is not zero, so none starts past the last non-zero byte (which
    // spares scanning a preallocated tail).
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    (from..end.min(data.len().saturating_sub(HEADER_BYTES)))
        .any(|p| parse_at(data, p, known_kinds).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[u8] = &[1, 2];

    fn write_n(dir: &Path, n: usize) -> Vec<Record> {
        let mut wal = Wal::create(dir, 1, KINDS).unwrap();
        let mut recs = Vec::new();
        for i in 0..n {
            let payload = format!("record number {i}").into_bytes();
            wal.append(1, &payload);
            recs.push(Record { kind: 1, payload });
            if i % 3 == 2 {
                wal.sync().unwrap();
            }
        }
        wal.sync().unwrap();
        recs
    }

    fn only_segment(dir: &Path) -> PathBuf {
        let segs = list_segments(dir).unwrap();
        assert_eq!(segs.len(), 1);
        segs[0].path.clone()
    }

    #[test]
    fn records_round_trip_across_reopen_and_append() {
        let tmp = tempfile::tempdir().unwrap();
        let mut want = write_n(tmp.path(), 10);
        let (mut wal, got) = Wal::open(tmp.path(), KINDS).unwrap();
        assert_eq!(got, want);
        wal.append(2, b"more");
        wal.sync().unwrap();
        want.push(Record {
            kind: 2,
            payload: b"more".to_vec(),
        });
        assert_eq!(Wal::open(tmp.path(), KINDS).unwrap().1, want);
    }

    #[test]
    fn unsynced_records_are_not_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(tmp.path(), 1, KINDS).unwrap();
        wal.append(1, b"x");
        assert!(wal.is_dirty());
        assert_eq!(Wal::open(tmp.path(), KINDS).unwrap().1, vec![]);
    }

    #[test]
    fn the_segment_written_is_preallocated_and_a_rolled_one_trimmed() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(tmp.path(), 1, KINDS).unwrap();
        wal.append(1, b"e1");
        wal.sync().unwrap();
        let len = |p: &Path| fs::metadata(p).unwrap().len();
        let first = only_segment(tmp.path());
        assert_eq!(len(&first), PREALLOCATE_BYTES);
        assert_eq!(wal.segment_size(), 11);
        wal.roll(2, &[]).unwrap();
        assert_eq!(len(&first), 11, "a rolled segment holds just its records");
        assert_eq!(len(&wal.segment_paths()[1]), PREALLOCATE_BYTES);
        // Reopening finds the end of the records in the zeros, and writes go there.
        wal.append(1, b"e2");
        wal.sync().unwrap();
        let (mut wal, recs) = Wal::open(tmp.path(), KINDS).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(wal.segment_size(), 11);
        wal.append(1, b"e3");
        wal.sync().unwrap();
        let (_, recs) = Wal::open(tmp.path(), KINDS).unwrap();
        let payloads: Vec<&[u8]> = recs.iter().map(|r| r.payload.as_slice()).collect();
        assert_eq!(payloads, [b"e1", b"e2", b"e3"]);
    }

    #[test]
    fn torn_tail_is_truncated() {
        let tmp = tempfile::tempdir().unwrap();
        let want = write_n(tmp.path(), 5);
        let seg = only_segment(tmp.path());
        let full = Wal::open(tmp.path(), KINDS).unwrap().0.segment_size();
        // A partially written last record: its final bytes never reached the disk.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0; 3], full - 3).unwrap();
        let (mut wal, got) = Wal::open(tmp.path(), KINDS).unwrap();
        assert_eq!(got, want[..4]);
        assert!(
            wal.segment_size() < full - 3,
            "truncated at the record start"
        );
        wal.append(1, b"after");
        wal.sync().unwrap();
        let (_, got) = Wal::open(tmp.path(), KINDS).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4].payload, b"after");
    }

    #[test]
    fn garbage_or_zeros_after_the_last_record_are_dropped() {
        for junk in [
            vec![0u8; 4096],
            (0..37u8).map(|b| b.wrapping_mul(97) ^ 0x5a).collect(),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let want = write_n(tmp.path(), 4);
            let seg = only_segment(tmp.path());
            let end = Wal::open(tmp.path(), KINDS).unwrap().0.segment_size();
            OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .write_all_at(&junk, end)
                .unwrap();
            let (mut wal, got) = Wal::open(tmp.path(), KINDS).unwrap();
            assert_eq!(got, want);
            wal.append(1, b"after");
            wal.sync().unwrap();
            assert_eq!(Wal::open(tmp.path(), KINDS).unwrap().1.len(), 5);
        }
    }

    #[test]
    fn records_bigger_than_the_read_buffer_stream_and_zeros_before_a_record_are_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(tmp.path(), 1, KINDS).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        for payload in [&b"small"[..], &big, b"after the big one"] {
            wal.append(2, payload);
        }
        wal.sync().unwrap();
        drop(wal);
        let mut seen = Vec::new();
        Wal::open_each(tmp.path(), KINDS, &mut |r| {
            seen.push(r.payload.len());
            Ok::<(), Error>(())
        })
        .unwrap();
        assert_eq!(seen, [5, 3_000_000, 17]);
        // A header zeroed out in front of valid records is damage, not the preallocated tail.
        let seg = only_segment(tmp.path());
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .write_all_at(&[0; HEADER_BYTES], 0)
            .unwrap();
        assert!(matches!(
            Wal::open(tmp.path(), KINDS),
            Err(Error::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn corruption_in_the_middle_refuses_to_open_naming_file_and_offset() {
        let tmp = tempfile::tempdir().unwrap();
        write_n(tmp.path(), 20);
        let seg = only_segment(tmp.path());
        let mid = Wal::open(tmp.path(), KINDS).unwrap().0.segment_size() as usize / 2;
        let mut data = fs::read(&seg).unwrap();
        // Every byte position in the first record's body or header is detected.
        for pos in [0usize, 3, 4, 8, 12] {
            let mut d = data.clone();
            d[pos] ^= 0x40;
            fs::write(&seg, &d).unwrap();
            match Wal::open(tmp.path(), KINDS) {
                Err(Error::Corrupt { path, offset, .. }) => {
                    assert_eq!(path, seg);
                    assert_eq!(offset, 0);
                    let msg = Error::Corrupt {
                        path,
                        offset,
                        reason: String::new(),
                    }
                    .to_string();
                    assert!(msg.contains(".wal") && msg.contains("offset 0"), "{msg}");
                }
                Err(e) => panic!("flip at {pos}: wrong error {e}"),
                Ok(_) => panic!("flip at {pos} went unnoticed"),
            }
        }
        data[mid] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        assert!(matches!(
            Wal::open(tmp.path(), KINDS),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_directory_with_anything_in_it_counts_as_a_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        assert!(!Wal::exists(&dir));
        fs::create_dir(&dir).unwrap();
        assert!(!Wal::exists(&dir));
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        assert!(
            Wal::exists(&dir),
            "a stray file must not make a member start over"
        );
        assert!(matches!(Wal::open(&dir, KINDS), Err(Error::BadName(_))));
    }

    /// A WAL of three segments holding entries 1, 2 and 3.
    fn three_segments(dir: &Path) -> Wal {
        let mut wal = Wal::create(dir, 1, KINDS).unwrap();
        wal.append(1, b"e1");
        wal.roll(2, &[(2, b"state".to_vec())]).unwrap();
        wal.append(1, b"e2");
        wal.roll(3, &[(2, b"state".to_vec())]).unwrap();
        wal.append(1, b"e3");
        wal.sync().unwrap();
        assert_eq!(wal.segment_paths().len(), 3);
        wal
    }

    #[test]
    fn roll_and_release() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = three_segments(tmp.path());
        wal.release(1, 1).unwrap();
        assert_eq!(wal.segment_paths().len(), 2);
        wal.release(100, 1).unwrap();
        assert_eq!(wal.segment_paths().len(), 1, "the last segment stays");
        let (_, recs) = Wal::open(tmp.path(), KINDS).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.payload.clone()).collect::<Vec<_>>(),
            vec![b"state".to_vec(), b"e3".to_vec()]
        );
    }

    #[test]
    fn release_keeps_max_wals_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = three_segments(tmp.path());
        // --max-wals 0 keeps every segment; N keeps N even when a snapshot covers them.
        wal.release(100, 0).unwrap();
        assert_eq!(wal.segment_paths().len(), 3);
        wal.release(100, 3).unwrap();
        assert_eq!(wal.segment_paths().len(), 3);
        wal.release(100, 2).unwrap();
        assert_eq!(wal.segment_paths().len(), 2);
        // Never a segment a snapshot does not cover.
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = three_segments(tmp.path());
        wal.release(1, 1).unwrap();
        assert_eq!(wal.segment_paths().len(), 2);
    }

    #[test]
    fn a_missing_segment_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(tmp.path(), 1, KINDS).unwrap();
        wal.append(1, b"e1");
        wal.roll(2, &[]).unwrap();
        wal.append(1, b"e2");
        wal.roll(3, &[]).unwrap();
        wal.sync().unwrap();
        let middle = wal.segment_paths()[1].clone();
        fs::remove_file(&middle).unwrap();
        match Wal::open(tmp.path(), KINDS) {
            Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
            other => panic!("a gap must be refused, got {:?}", other.map(|(_, r)| r)),
        }
    }

    #[test]
    fn a_bad_record_in_an_older_segment_is_fatal_even_at_its_end() {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(tmp.path(), 1, KINDS).unwrap();
        wal.append(1, b"e1");
        wal.roll(2, &[]).unwrap();
        wal.append(1, b"e2");
        wal.sync().unwrap();
        let first = wal.segment_paths()[0].clone();
        let mut d = fs::read(&first).unwrap();
        let n = d.len();
        d[n - 1] ^= 1;
        fs::write(&first, d).unwrap();
        assert!(matches!(
            Wal::open(tmp.path(), KINDS),
            Err(Error::Corrupt { .. })
        ));
    }
}
