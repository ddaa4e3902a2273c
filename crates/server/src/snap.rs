//! Snapshot files: the whole state machine at one log index.
//!
//! # On-disk format
//!
//! `DATA_DIR/snap/{term:016x}-{index:016x}.snap`, each (format 2, written since the snapshot
//! thread; little-endian integers):
//!
//! ```text
//! magic "ETCDRSS2" (8 B) | meta_len: u32 | meta_crc: u32 | meta | data | data_len: u64 | data_crc: u32
//! ```
//!
//! `meta` is the caller's metadata (raft `SnapshotMetadata`: index, term, configuration) with
//! its CRC-32 (IEEE); `data` is the state machine's bytes, streamed in as they are encoded, and
//! the trailer holds their length and CRC-32, so a file is written in one pass and read in one
//! pass without holding the data in memory. Format 1 files (`"ETCDRSS1" | crc | meta_len: u32 |
//! data_len: u64 | meta | data`, one CRC over everything after it) are still read.
//!
//! A file is written as `NAME.tmp`, fsynced, renamed into place, and the directory fsynced, so
//! a crash leaves either the old set of snapshots or the new one, never a half file under a
//! real name (a `.tmp` left by a crash is removed when the directory is next opened). Loading
//! takes the newest file that verifies *and* whose data the caller accepts; a damaged one is
//! renamed to `NAME.broken` (kept for inspection) and the next older is tried. The newest
//! [`KEEP_SNAPSHOTS`] are kept, so a damaged newest snapshot can fall back to an older one, and
//! the WAL is only released up to the oldest kept snapshot.
//!
//! Files may be written from two threads (the driver installs a leader's snapshot while the
//! snapshot thread writes one of its own): names differ by index, and pruning tolerates a file
//! the other already removed.
//!
//! Not here: what the state machine bytes mean.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How many snapshot files are kept unless told otherwise (`--max-snapshots`).
pub const KEEP_SNAPSHOTS: usize = 2;

/// While a snapshot is written, its file is synced every this many bytes, so the disk takes it
/// in steps and a WAL fsync never waits behind the whole file's writeback at once.
const SYNC_EVERY_BYTES: u64 = 8 << 20;

const MAGIC_V1: &[u8; 8] = b"ETCDRSS1";
const MAGIC: &[u8; 8] = b"ETCDRSS2";
const HEADER_V1_BYTES: usize = 8 + 4 + 4 + 8;
const HEADER_BYTES: u64 = 8 + 4 + 4;
const TRAILER_BYTES: u64 = 8 + 4;

/// Snapshot errors (fatal for the node).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O on a snapshot file failed.
    #[error("snapshot I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot raft asked for is damaged.
    #[error("snapshot {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Snapshot result.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot read back from disk, with what the caller made of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded<T> {
    /// Log index it covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The caller's metadata bytes.
    pub meta: Vec<u8>,
    /// What the caller decoded from the state machine bytes.
    pub data: T,
}

/// The snapshot directory. Cloning gives another handle on the same directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
    /// Snapshot files kept after a save (0: all).
    keep: usize,
}

impl Snapshotter {
    /// Opens (creating if needed) the snapshot directory, removing files a crash left half
    /// written.
    pub fn open(dir: &Path) -> Result<Snapshotter> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io(dir))?;
            if let Some(parent) = dir.parent() {
                crate::durable::sync_dir(parent).map_err(io(parent))?;
            }
        }
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                // A save that crashed before its rename.
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Snapshotter {
            dir: dir.to_path_buf(),
            keep: KEEP_SNAPSHOTS,
        })
    }

    /// Keeps `keep` snapshot files after each save from now on (0: all of them).
    pub fn set_keep(&mut self, keep: usize) {
        self.keep = keep;
    }

    /// Durably writes a snapshot whose data `write_data` streams out, then deletes all but the
    /// newest few (see [`Snapshotter::set_keep`]). Returns the size of the data.
    pub fn save(
        &self,
        index: u64,
        term: u64,
        meta: &[u8],
        write_data: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<u64> {
        let path = self.dir.join(format!("{term:016x}-{index:016x}.snap"));
        let mut len = 0;
        crate::durable::replace(&path, |file| {
            let mut w = BufWriter::with_capacity(1 << 20, file);
            w.write_all(MAGIC)?;
            w.write_all(&(meta.len() as u32).to_le_bytes())?;
            w.write_all(&crc32fast::hash(meta).to_le_bytes())?;
            w.write_all(meta)?;
            let mut data = Checksummed {
                inner: Paced {
                    w: &mut w,
                    unsynced: 0,
                },
                crc: crc32fast::Hasher::new(),
                len: 0,
            };
            write_data(&mut data)?;
            let crc = data.crc.finalize();
            len = data.len;
            w.write_all(&len.to_le_bytes())?;
            w.write_all(&crc.to_le_bytes())?;
            w.flush()
        })
        .map_err(io(&path))?;
        let files = self.list()?;
        let keep = if self.keep == 0 {
            files.len()
        } else {
            self.keep
        };
        for (_, _, old) in files.iter().rev().skip(keep) {
            match fs::remove_file(old) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(old)(e)),
                _ => {}
            }
        }
        Ok(len)
    }

    /// [`Snapshotter::save`] of data already in memory.
    pub fn save_bytes(&self, index: u64, term: u64, meta: &[u8], data: &[u8]) -> Result<()> {
        self.save(index, term, meta, &mut |w| w.write_all(data))
            .map(|_| ())
    }

    /// The newest snapshot that verifies and whose data `decode` accepts, if any; `decode`
    /// reads the data as a stream. Files that fail are set aside and the next older is tried.
    pub fn load_newest<T>(
        &self,
        decode: &mut dyn FnMut(&mut dyn Read) -> std::result::Result<T, String>,
    ) -> Result<Option<Loaded<T>>> {
        for (index, term, path) in self.list()?.into_iter().rev() {
            let loaded = open_file(&path).and_then(|(meta, mut data)| {
                let value = decode(&mut data)?;
                data.verify()?;
                Ok((meta, value))
            });
            match loaded {
                Ok((meta, data)) => {
                    return Ok(Some(Loaded {
                        index,
                        term,
                        meta,
                        data,
                    }))
                }
                Err(reason) => {
                    let broken = path.with_extension("snap.broken");
                    tracing::error!(file = %path.display(), "damaged snapshot ({reason}); set aside as {}", broken.display());
                    fs::rename(&path, &broken).map_err(io(&path))?;
                }
            }
        }
        Ok(None)
    }

    /// The state machine bytes of the snapshot at `index` and `term` (what a lagging follower
    /// is sent), verified.
    pub fn read_data(&self, index: u64, term: u64) -> Result<Vec<u8>> {
        let path = self.dir.join(format!("{term:016x}-{index:016x}.snap"));
        let damaged = |reason| Error::Damaged {
            path: path.clone(),
            reason,
        };
        let (_, mut data) = open_file(&path).map_err(damaged)?;
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).map_err(io(&path))?;
        data.verify().map_err(damaged)?;
        Ok(bytes)
    }

    /// Index of the oldest snapshot kept (the WAL must keep everything after it).
    pub fn oldest_index(&self) -> Result<Option<u64>> {
        Ok(self.list()?.first().map(|(i, _, _)| *i))
    }

    /// Snapshot files by ascending index.
    fn list(&self) -> Result<Vec<(u64, u64, PathBuf)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".snap") else {
                continue;
            };
            let Some((t, i)) = stem.split_once('-') else {
                continue;
            };
            if let (Ok(term), Ok(index)) = (u64::from_str_radix(t, 16), u64::from_str_radix(i, 16))
            {
                out.push((index, term, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A writer or reader that counts and checksums what passes through it.
struct Checksummed<T> {
    inner: T,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Syncs the file every [`SYNC_EVERY_BYTES`] written.
struct Paced<'a, 'f> {
    w: &'a mut BufWriter<&'f mut fs::File>,
    unsynced: u64,
}

impl Write for Paced<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.w.flush()?;
            self.w.get_ref().sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// The data of an open snapshot file, checked against its CRC by [`Data::verify`].
struct Data {
    reader: Checksummed<Box<dyn Read>>,
    expect: (u64, u32),
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl Read for Data {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Data {
    /// Reads what the caller left and checks length and CRC.
    fn verify(mut self) -> std::result::Result<(), String> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| e.to_string())?;
        let got = (self.reader.len, self.reader.crc.finalize());
        if got != self.expect {
            return Err(format!(
                "data length or checksum mismatch ({got:?}, expected {:?})",
                self.expect
            ));
        }
        Ok(())
    }
}

/// Opens a snapshot file of either format: its metadata and a reader of its data.
fn open_file(path: &Path) -> std::result::Result<(Vec<u8>, Data), String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0)
        .map_err(|_| "not a snapshot file".to_string())?;
    if &magic == MAGIC_V1 {
        let bytes = fs::read(path).map_err(|e| e.to_string())?;
        let (meta, data) = decode_v1(&bytes)?;
        let expect = (data.len() as u64, crc32fast::hash(&data));
        return Ok((meta, data_reader(Box::new(io::Cursor::new(data)), expect)));
    }
    if &magic != MAGIC || size < HEADER_BYTES + TRAILER_BYTES {
        return Err("not a snapshot file".into());
    }
    let mut header = [0u8; 8];
    file.read_exact_at(&mut header, 8)
        .map_err(|e| e.to_string())?;
    let meta_len = u64::from(u32::from_le_bytes(header[..4].try_into().expect("4 bytes")));
    let meta_crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let Some(data_len) = size.checked_sub(HEADER_BYTES + meta_len + TRAILER_BYTES) else {
        return Err("length fields disagree with the file size".into());
    };
    let mut meta = vec![0u8; meta_len as usize];
    file.read_exact_at(&mut meta, HEADER_BYTES)
        .map_err(|e| e.to_string())?;
    if crc32fast::hash(&meta) != meta_crc {
        return Err("metadata checksum mismatch".into());
    }
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    file.read_exact_at(&mut trailer, size - TRAILER_BYTES)
        .map_err(|e| e.to_string())?;
    let len = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(trailer[8..].try_into().expect("4 bytes"));
    if len != data_len {
        return Err("length fields disagree with the file size".into());
    }
    let mut file = file;
    file.seek(io::SeekFrom::Start(HEADER_BYTES + meta_len))
        .map_err(|e| e.to_string())?;
    let body = BufReader::with_capacity(1 << 20, file).take(data_len);
    Ok((meta, data_reader(Box::new(body), (len, crc))))
}

fn data_reader(inner: Box<dyn Read>, expect: (u64, u32)) -> Data {
    Data {
        reader: Checksummed {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
        },
        expect,
    }
}

fn decode_v1(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    if bytes.len() < HEADER_V1_BYTES || &bytes[..8] != MAGIC_V1 {
        return Err("not a snapshot file".into());
    }
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let body = &bytes[12..];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let meta_len = u32::from_le_bytes(body[0..4].try_into().expect("4 bytes")) as usize;
    let data_len = u64::from_le_bytes(body[4..12].try_into().expect("8 bytes")) as usize;
    if 12usize
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(data_len))
        != Some(body.len())
    {
        return Err("length fields disagree with the file size".into());
    }
    Ok((
        body[12..12 + meta_len].to_vec(),
        body[12 + meta_len..].to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_bytes(s: &Snapshotter) -> Option<Loaded<Vec<u8>>> {
        s.load_newest(&mut |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(|e| e.to_string())?;
            Ok(v)
        })
        .unwrap()
    }

    #[test]
    fn max_snapshots_is_kept_and_zero_keeps_all() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Snapshotter::open(tmp.path()).unwrap();
        s.set_keep(0);
        for i in 1..=4u64 {
            s.save_bytes(i * 10, 2, b"m", b"d").unwrap();
        }
        assert_eq!(s.list().unwrap().len(), 4);
        s.set_keep(1);
        s.save_bytes(50, 2, b"m", b"d").unwrap();
        let left: Vec<u64> = s.list().unwrap().iter().map(|(i, _, _)| *i).collect();
        assert_eq!(left, vec![50]);
    }

    #[test]
    fn newest_valid_snapshot_wins_and_old_ones_are_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        assert_eq!(load_bytes(&s), None);
        for i in 1..=4u64 {
            s.save_bytes(i * 10, 2, b"m", format!("d{i}").as_bytes())
                .unwrap();
        }
        assert_eq!(s.list().unwrap().len(), KEEP_SNAPSHOTS);
        assert_eq!(s.oldest_index().unwrap(), Some(30));
        let l = load_bytes(&s).unwrap();
        assert_eq!(
            (l.index, l.term, l.meta.as_slice(), l.data.as_slice()),
            (40, 2, &b"m"[..], &b"d4"[..])
        );
        assert_eq!(s.read_data(40, 2).unwrap(), b"d4");
    }

    #[test]
    fn damaged_newest_falls_back_to_older() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        s.save_bytes(10, 1, b"", b"old").unwrap();
        s.save_bytes(20, 1, b"", &[7u8; 100_000]).unwrap();
        let newest = s.list().unwrap().last().unwrap().2.clone();
        for at in [0usize, 9, 17, 50_000, 100_020, 100_027] {
            let good = fs::read(&newest).unwrap();
            let mut d = good.clone();
            d[at] ^= 1;
            fs::write(&newest, d).unwrap();
            assert!(s.read_data(20, 1).is_err(), "flipped byte {at}");
            fs::write(&newest, good).unwrap();
        }
        let mut d = fs::read(&newest).unwrap();
        d[60_000] ^= 1;
        fs::write(&newest, d).unwrap();
        let l = load_bytes(&s).unwrap();
        assert_eq!((l.index, l.data.as_slice()), (10, &b"old"[..]));
        assert!(newest.with_extension("snap.broken").exists());
    }

    #[test]
    fn data_the_caller_refuses_sets_the_file_aside() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        s.save_bytes(10, 1, b"", b"good").unwrap();
        s.save_bytes(20, 1, b"", b"bad").unwrap();
        let l = s
            .load_newest(&mut |r| {
                let mut v = Vec::new();
                r.read_to_end(&mut v).map_err(|e| e.to_string())?;
                (v == b"good").then_some(v).ok_or_else(|| "refused".into())
            })
            .unwrap()
            .unwrap();
        assert_eq!(l.index, 10);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn format_1_files_still_load() {
        let tmp = tempfile::tempdir().unwrap();
        let (meta, data) = (b"meta".as_slice(), b"the state".as_slice());
        let mut body = Vec::new();
        body.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u64).to_le_bytes());
        body.extend_from_slice(meta);
        body.extend_from_slice(data);
        let mut file = MAGIC_V1.to_vec();
        file.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        file.extend_from_slice(&body);
        fs::write(tmp.path().join(format!("{:016x}-{:016x}.snap", 3, 9)), file).unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        let l = load_bytes(&s).unwrap();
        assert_eq!(
            (l.index, l.term, l.meta.as_slice(), l.data.as_slice()),
            (9, 3, meta, data)
        );
        assert_eq!(s.read_data(9, 3).unwrap(), data);
    }

    #[test]
    fn half_written_files_are_removed_when_the_directory_is_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        let tmp_file = tmp
            .path()
            .join("0000000000000001-0000000000000005.snap.tmp");
        fs::write(&tmp_file, b"half").unwrap();
        s.save_bytes(10, 1, b"", b"x").unwrap();
        assert!(
            tmp_file.exists(),
            "a save in progress elsewhere is left alone"
        );
        Snapshotter::open(tmp.path()).unwrap();
        assert!(!tmp_file.exists());
    }
}
