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
    /// The restore's settings do not describe a cluster with this member in it.
    #[error("{0}")]
    Config(String),
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

/// Creates the data directory (and WAL) of `layout` for a member of a new cluster whose members
/// are `registrations` (`Command::Join`s, in order: the first names the cluster), holding the
/// v3 state of the snapshot file `path`. The member then starts as from its own data: the
/// state is its first raft snapshot, at index `registrations.len()`, with every member a voter;
/// each member restored with the same registrations gets the same snapshot.
pub fn restore(
    path: &Path,
    skip_hash_check: bool,
    layout: &crate::raft::Layout,
    registrations: &[Command],
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
    // Indexes 1, 2…: the members' registrations, as the first entries of a new cluster are.
    let voters = register(&mut store, 1, registrations).map_err(dir_error)?;
    store.import_etcd(import);
    let data = store.snapshot().encode();
    crate::raft::restore_storage(layout, &voters, voters.len() as u64, data)
        .map_err(|e| dir_error(e.to_string()))
}

/// Applies `registrations` (`Command::Join`s) to `store` at indexes `first`, `first + 1`…, as
/// a new cluster's first entries; returns the members' ids (the voters).
fn register(
    store: &mut etcd_store::Store<()>,
    first: u64,
    registrations: &[Command],
) -> Result<Vec<u64>, String> {
    let mut voters = Vec::new();
    for (index, registration) in (first..).zip(registrations) {
        let Command::Join { id, .. } = registration else {
            return Err(format!("not a member: {registration:?}"));
        };
        voters.push(*id);
        store
            .apply(index, registration)
            .result
            .map_err(|e| format!("registering the members: {e}"))?;
    }
    Ok(voters)
}

/// What `etcdctl snapshot status` reports of a snapshot file, as etcd computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbStatus {
    /// CRC-32C of every bucket's name, then each of its keys and values, in order.
    pub hash: u32,
    /// The main revision of the last key in the `key` bucket.
    pub revision: i64,
    /// Records in every bucket.
    pub total_key: u64,
    /// The database's size as bbolt counts it (pages in use × page size).
    pub total_size: u64,
}

/// The status of the snapshot (or bbolt database) file at `path`, as etcd's
/// `etcdctl snapshot status` computes it: read as a database (a SHA-256 after it is ignored).
pub fn status(path: &Path) -> Result<DbStatus, RestoreError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RestoreError::Read {
        path: shown.clone(),
        source,
    })?;
    let content = |e: etcd_bolt::Error| RestoreError::Content {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let total_size = etcd_bolt::size(&bytes).map_err(content)?;
    let buckets = etcd_bolt::read(&bytes).map_err(content)?;
    let mut crc = etcd_mvcc::Crc32c::new();
    let (mut revision, mut total_key) = (0, 0);
    for (name, records) in &buckets {
        crc.update(name);
        for (k, v) in records {
            crc.update(k);
            crc.update(v);
            if name == b"key" && k.len() >= 8 {
                let mut main = [0u8; 8];
                main.copy_from_slice(&k[..8]);
                revision = i64::from_be_bytes(main);
            }
            total_key += 1;
        }
    }
    Ok(DbStatus {
        hash: crc.finish(),
        revision,
        total_key,
        total_size,
    })
}

/// What `etcdctl snapshot restore` is asked for (its flags).
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    /// The snapshot file.
    pub snapshot: std::path::PathBuf,
    /// Restore a file without its SHA-256 (`--skip-hash-check`).
    pub skip_hash_check: bool,
    /// The member to make.
    pub member: NewMember,
}

/// One member of a new cluster, as the offline tools take it (`snapshot restore`'s and
/// `backup`'s flags).
#[derive(Debug, Clone)]
pub struct NewMember {
    /// This member's name (`--name`).
    pub name: String,
    /// The data directory to create (`--data-dir`; etcd's default `NAME.etcd`).
    pub data_dir: std::path::PathBuf,
    /// The WAL's own directory (`--wal-dir`), if not `DATA_DIR/wal`.
    pub wal_dir: Option<std::path::PathBuf>,
    /// Every member, `NAME=URL,…` (`--initial-cluster`).
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// This member's peer URLs (`--initial-advertise-peer-urls`).
    pub peer_urls: Vec<String>,
}

/// Creates one member's data directory of a new cluster holding a snapshot file's v3 data,
/// as etcd's `etcdctl snapshot restore`: run once per member with the same
/// `--initial-cluster` and token, each directory names the same members (ids derived from the
/// token and peer addresses), so the members start as one cluster, each from its own copy.
/// The data directory (and the WAL's, if given) must not exist. The member must then start
/// with the name and peer URL it was restored for (`config::Restored`).
pub fn restore_cluster(cfg: &RestoreConfig) -> Result<(), RestoreError> {
    found_cluster(&cfg.member, |layout, registrations| {
        restore(
            &cfg.snapshot,
            cfg.skip_hash_check,
            layout,
            registrations,
            crate::config::DEFAULT_HISTORY,
        )
    })
}

/// Creates one member's data directory of a new cluster holding `state`, the whole state
/// (v2 and v3 keys, history, leases, users and roles) of a stopped member whose log was
/// applied through `applied` (`raft::offline::load`): etcd-rs's `etcdutl backup`. As with
/// [`restore_cluster`], run once per member of the new cluster (the same `state` each time)
/// with the same `--initial-cluster` and token. The old cluster's members and alarms are
/// forgotten; the log goes on after `applied`, so the v2 index and the v3 revision keep
/// growing from where they were.
pub fn backup_cluster(
    state: StoreSnapshot,
    applied: u64,
    member: &NewMember,
) -> Result<(), RestoreError> {
    found_cluster(member, |layout, registrations| {
        let dir_error = |reason: String| RestoreError::DataDir {
            path: layout.data.display().to_string(),
            reason,
        };
        let mut store: etcd_store::Store<()> =
            etcd_store::Store::new(crate::config::DEFAULT_HISTORY);
        store.set_v3_values(etcd_mvcc::Values::new(std::sync::Arc::new(
            crate::values::ValueFiles::new(&layout.data),
        )));
        store.restore(state.refounded());
        let voters = register(&mut store, applied + 1, registrations).map_err(dir_error)?;
        let index = applied + voters.len() as u64;
        crate::raft::restore_storage(layout, &voters, index, store.snapshot().encode())
            .map_err(|e| dir_error(e.to_string()))
    })
}

/// Checks `cfg` (this member in its cluster, the directories free), then makes the member's
/// data directory with `build` (given the layout and every member's registration, in
/// `--initial-cluster`'s order), and leaves the note of whom it was made for; on failure
/// nothing half-made stays.
fn found_cluster(
    cfg: &NewMember,
    build: impl FnOnce(&crate::raft::Layout, &[Command]) -> Result<(), RestoreError>,
) -> Result<(), RestoreError> {
    let members = crate::config::initial_cluster_urls(&cfg.initial_cluster)
        .map_err(|e| RestoreError::Config(e.to_string()))?;
    let Some(own) = members.iter().position(|(n, _, _)| *n == cfg.name) else {
        return Err(RestoreError::Config(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        )));
    };
    let mut advertised = Vec::new();
    for url in &cfg.peer_urls {
        let (_, addr) = crate::config::parse_url("initial-advertise-peer-urls", url)
            .map_err(|e| RestoreError::Config(e.to_string()))?;
        advertised.push(addr);
    }
    let url_of = |(_, https, addr): &(String, bool, String)| {
        format!("{}://{addr}", if *https { "https" } else { "http" })
    };
    if !advertised.contains(&members[own].2) {
        return Err(RestoreError::Config(format!(
            "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={}",
            cfg.name,
            url_of(&members[own]),
            cfg.peer_urls.join(",")
        )));
    }
    let mut seen = std::collections::HashSet::new();
    if members.iter().any(|(_, _, a)| !seen.insert(a.clone())) {
        // Named as etcd names the cluster: by member name.
        let mut named: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.0, url_of(m)))
            .collect();
        named.sort();
        return Err(RestoreError::Config(format!(
            "initial cluster {} has duplicate url",
            named.join(",")
        )));
    }
    if cfg.data_dir.exists() {
        return Err(RestoreError::Config(format!(
            "data-dir {:?} exists",
            cfg.data_dir.display().to_string()
        )));
    }
    if let Some(wal) = cfg.wal_dir.as_ref().filter(|w| w.exists()) {
        return Err(RestoreError::Config(format!(
            "wal-dir {:?} exists",
            wal.display().to_string()
        )));
    }
    let registrations: Vec<Command> = members
        .iter()
        .map(|m| Command::Join {
            id: crate::cluster::static_member_id(&cfg.token, &m.2),
            name: m.0.clone(),
            raft_url: url_of(m),
            // Published by each member when it first runs (etcd's publish step).
            etcd_url: String::new(),
        })
        .collect();
    let Command::Join { id, raft_url, .. } = &registrations[own] else {
        unreachable!("registrations are joins");
    };
    let dir_error = |e: io::Error| RestoreError::DataDir {
        path: cfg.data_dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(dir_error)?;
    let layout = crate::raft::Layout::new(&cfg.data_dir, cfg.wal_dir.as_deref());
    let made = build(&layout, &registrations).and_then(|()| {
        let restored = crate::config::Restored {
            id: *id,
            name: cfg.name.clone(),
            peer_url: raft_url.clone(),
            wal_dir: cfg.wal_dir.clone(),
        };
        crate::config::save_restored(&cfg.data_dir, &restored).map_err(dir_error)
    });
    if made.is_err() {
        // Nothing half-made is left to be started.
        let _ = std::fs::remove_dir_all(&cfg.data_dir);
        if let Some(wal) = &cfg.wal_dir {
            let _ = std::fs::remove_dir_all(wal);
        }
    }
    made
}
