//! Snapshot files: the whole state machine at one log index.
//!
//! # On-disk format
//!
//! `DATA_DIR/snap/{term:016x}-{index:016x}.snap`, each:
//!
//! ```text
//! magic "ETCDRSS1" (8 B) | crc: u32 LE | meta_len: u32 LE | data_len: u64 LE | meta | data
//! ```
//!
//! `crc` is CRC-32 (IEEE) of everything after it. `meta` is the caller's metadata (raft
//! `SnapshotMetadata`: index, term, configuration), `data` the state machine's bytes.
//!
//! A file is written as `NAME.tmp`, fsynced, renamed into place, and the directory fsynced, so
//! a crash leaves either the old set of snapshots or the new one, never a half file under a
//! real name. Loading takes the newest file that verifies; a damaged one is renamed to
//! `NAME.broken` (kept for inspection) and the next older is tried. The newest
//! [`KEEP_SNAPSHOTS`] are kept, so a damaged newest snapshot can fall back to an older one, and
//! the WAL is only released up to the oldest kept snapshot.
//!
//! Not here: what the state machine bytes mean.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many snapshot files are kept.
pub const KEEP_SNAPSHOTS: usize = 2;

const MAGIC: &[u8; 8] = b"ETCDRSS1";
const HEADER_BYTES: usize = 8 + 4 + 4 + 8;

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
}

/// Snapshot result.
pub type Result<T> = std::result::Result<T, Error>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A snapshot read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Log index it covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The caller's metadata bytes.
    pub meta: Vec<u8>,
    /// The state machine bytes.
    pub data: Vec<u8>,
}

/// The snapshot directory.
pub struct Snapshotter {
    dir: PathBuf,
}

impl Snapshotter {
    /// Opens (creating if needed) the snapshot directory.
    pub fn open(dir: &Path) -> Result<Snapshotter> {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io(dir))?;
            if let Some(parent) = dir.parent() {
                fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(io(parent))?;
            }
        }
        Ok(Snapshotter {
            dir: dir.to_path_buf(),
        })
    }

    /// Durably writes a snapshot, then deletes all but the newest [`KEEP_SNAPSHOTS`].
    pub fn save(&self, index: u64, term: u64, meta: &[u8], data: &[u8]) -> Result<()> {
        let name = format!("{term:016x}-{index:016x}.snap");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut body = Vec::with_capacity(16 + meta.len() + data.len());
        body.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        body.extend_from_slice(&(data.len() as u64).to_le_bytes());
        body.extend_from_slice(meta);
        body.extend_from_slice(data);
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(MAGIC).map_err(io(&tmp))?;
        f.write_all(&crc32fast::hash(&body).to_le_bytes())
            .map_err(io(&tmp))?;
        f.write_all(&body).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        let files = self.list()?;
        for (_, _, old) in files.iter().rev().skip(KEEP_SNAPSHOTS) {
            fs::remove_file(old).map_err(io(old))?;
        }
        Ok(())
    }

    /// The newest snapshot that verifies, if any. Damaged files are set aside.
    pub fn load_newest(&self) -> Result<Option<Loaded>> {
        for (index, term, path) in self.list()?.into_iter().rev() {
            let bytes = fs::read(&path).map_err(io(&path))?;
            match decode(&bytes) {
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
                if name.ends_with(".tmp") {
                    // A save that crashed before its rename.
                    let _ = fs::remove_file(entry.path());
                }
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

fn decode(bytes: &[u8]) -> std::result::Result<(Vec<u8>, Vec<u8>), String> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
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

    #[test]
    fn newest_valid_snapshot_wins_and_old_ones_are_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        assert_eq!(s.load_newest().unwrap(), None);
        for i in 1..=4u64 {
            s.save(i * 10, 2, b"m", format!("d{i}").as_bytes()).unwrap();
        }
        assert_eq!(s.list().unwrap().len(), KEEP_SNAPSHOTS);
        assert_eq!(s.oldest_index().unwrap(), Some(30));
        let l = s.load_newest().unwrap().unwrap();
        assert_eq!(
            (l.index, l.term, l.meta.as_slice(), l.data.as_slice()),
            (40, 2, &b"m"[..], &b"d4"[..])
        );
    }

    #[test]
    fn damaged_newest_falls_back_to_older() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Snapshotter::open(tmp.path()).unwrap();
        s.save(10, 1, b"", b"old").unwrap();
        s.save(20, 1, b"", b"new").unwrap();
        let newest = s.list().unwrap().last().unwrap().2.clone();
        let mut d = fs::read(&newest).unwrap();
        let n = d.len();
        d[n - 1] ^= 1;
        fs::write(&newest, d).unwrap();
        let l = s.load_newest().unwrap().unwrap();
        assert_eq!((l.index, l.data.as_slice()), (10, &b"old"[..]));
        assert!(newest.with_extension("snap.broken").exists());
    }
}
