//! Durable whole-file writes: the file is written as `NAME.tmp`, fsynced, renamed over `NAME`,
//! and the directory fsynced, so a crash at any point leaves either the old file or the new
//! one, never a half-written file under the real name. Used for the node configuration, the
//! join seed peers and snapshot files.
//!
//! Not here: appends (the WAL has its own records and fsync discipline).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The temporary name a durable write of `path` uses (`NAME.tmp`).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` durably with what `write` puts into the new file (see the module docs).
/// Errors name the step's file in their message.
pub fn replace(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let tmp = tmp_path(path);
    let at = |p: &Path| {
        let p = p.display().to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{p}: {e}"))
    };
    let mut file = File::create(&tmp).map_err(at(&tmp))?;
    write(&mut file).map_err(at(&tmp))?;
    file.sync_all().map_err(at(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(at(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(at(dir))
}

/// Fsyncs a directory, so that names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn replace_swaps_the_whole_file_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("info");
        replace(&path, |f| f.write_all(b"one")).unwrap();
        replace(&path, |f| f.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
        assert_eq!(tmp_path(&path), tmp.path().join("info.tmp"));
        // A failed write leaves the old file as it was.
        let err = replace(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }
}
