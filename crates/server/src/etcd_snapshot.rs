//! Snapshot files as etcd makes and reads them: a bbolt database (`etcd_store`'s
//! `write_etcd_db`, `read_etcd_db`) followed by the SHA-256 of the database (32 bytes), which
//! `etcdctl snapshot restore` checks when the file's size is a multiple of 512 plus 32.
//!
//! - [`write_db`] and [`stream`]: `Maintenance.Snapshot`, so that `etcdctl snapshot save`
//!   against etcd-rs gives a file etcd's tools take (`snapshot status`, `snapshot restore`,
//!   and an etcd 3.4 started on the restored data directory).
//! - [`read_file`] and [`restore`]: a new data directory from such a file
//!   (`--restore-snapshot`), so that an etcd cluster's data moves to etcd-rs: the keyspace
//!   with its revisions and history since the last compaction, leases, users and roles. The
//!   member starts a new single-member cluster of its own (members join it as they would any
//!   cluster); members, alarms and the raft log of the cluster that wrote the file stay
//!   behind, as with `etcdctl snapshot restore`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use etcd_store::{Command, StoreSnapshot};
use etcd_v3proto::etcdserverpb::SnapshotResponse;
use tonic::Status;

/// The size of each blob streamed, as etcd's.
const BLOB: usize = 32 * 1024;
/// The SHA-256 trailer's size.
const SHA_LEN: usize = 32;

/// Writes `snap`'s v3 state as an etcd database to an unnamed temporary file, rewound.
pub fn write_db(snap: &StoreSnapshot) -> io::Result<File> {
    let path = std::env::temp_dir().join(format!(
        "etcd-rs-snapshot-{:x}.db",
        crate::cluster::new_member_id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Unnamed from now on: the file goes with its last handle.
    std::fs::remove_file(&path)?;
    snap.write_etcd_db(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Sends `file` (a database from [`write_db`]) as `Maintenance.Snapshot` answers, then its
/// SHA-256; stops early if the receiver is gone. Runs on a blocking thread.
pub fn stream(mut file: File, tx: &tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>) {
    let total = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            let _ = tx.blocking_send(Err(Status::internal(format!("etcd-rs: snapshot: {e}"))));
            return;
        }
    };
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut sent = 0u64;
    let mut buf = vec![0u8; BLOB];
    while sent < total {
        let n = match read_full(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(format!("etcd-rs: snapshot: {e}"))));
                return;
            }
        };
        sent += n as u64;
        sha.update(&buf[..n]);
        let blob = SnapshotResponse {
            remaining_bytes: total - sent,
            blob: buf[..n].to_vec().into(),
            ..Default::default()
        };
        if tx.blocking_send(Ok(blob)).is_err() {
            return;
        }
    }
    let trailer = SnapshotResponse {
        remaining_bytes: 0,
        blob: sha.finish().as_ref().to_vec().into(),
        ..Default::default()
    };
    let _ = tx.blocking_send(Ok(trailer));
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

/// Why a snapshot file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The file could not be read.
    #[error("snapshot {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The SHA-256 trailer does not match the database.
    #[error("snapshot {0}: the SHA-256 at its end does not match its contents (a damaged file)")]
    HashMismatch(String),
    /// No trailer, and it was not waived.
    #[error("snapshot {0}: no SHA-256 at its end (a database copied from a data directory?); give --skip-hash-check to restore it anyway")]
    NoHash(String),
    /// The database is damaged or not etcd's.
    #[error("snapshot {path}: {reason}")]
    Content {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The data directory could not be written.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The database in the snapshot file at `path`, its SHA-256 trailer checked (a file without
/// one only with `skip_hash_check`, as etcd's `--skip-hash-check`).
pub fn read_file(path: &Path, skip_hash_check: bool) -> Result<Vec<u8>, RestoreError> {
    let shown = path.display().to_string();
    let mut bytes = std::fs::read(path).map_err(|source| RestoreError::Read {
        path: shown.clone(),
        source,
    })?;
    if bytes.len() % 512 == SHA_LEN {
        let db_len = bytes.len() - SHA_LEN;
        let sha = ring::digest::digest(&ring::digest::SHA256, &bytes[..db_len]);
        if sha.as_ref() != &bytes[db_len..] && !skip_hash_check {
            return Err(RestoreError::HashMismatch(shown));
        }
        bytes.truncate(db_len);
    } else if !skip_hash_check {
        return Err(RestoreError::NoHash(shown));
    }
    Ok(bytes)
}

/// Creates the data directory (and WAL) of `layout` for a new single-member cluster (member `id`,
/// registered as `registration`) holding the v3 state of the snapshot file `path`. The
/// member then starts as from its own data: the state is its first raft snapshot.
pub fn restore(
    path: &Path,
    skip_hash_check: bool,
    layout: &crate::raft::Layout,
    id: u64,
    registration: &Command,
    history: usize,
) -> Result<(), RestoreError> {
    let shown = path.display().to_string();
    let db = read_file(path, skip_hash_check)?;
    let data_dir = &layout.data;
    let dir_error = |reason: String| RestoreError::DataDir {
        path: data_dir.display().to_string(),
        reason,
    };
    let mut store: etcd_store::Store<()> = etcd_store::Store::new(history);
    store.set_v3_values(etcd_mvcc::Values::new(std::sync::Arc::new(
        crate::values::ValueFiles::new(data_dir),
    )));
    let import =
        etcd_store::read_etcd_db(&db, store.v3_values()).map_err(|e| RestoreError::Content {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    tracing::info!(
        revision = import.revision(),
        keys = import.keys(),
        leases = import.leases(),
        "restoring an etcd snapshot"
    );
    // Index 1: the member's registration, as the first entry of a new cluster would be.
    store
        .apply(1, registration)
        .result
        .map_err(|e| dir_error(format!("registering the member: {e}")))?;
    store.import_etcd(import);
    let data = store.snapshot().encode();
    crate::raft::restore_storage(layout, id, data).map_err(|e| dir_error(e.to_string()))
}
