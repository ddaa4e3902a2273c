//! [`DiskStorage`]: raft-rs's [`Storage`] over our WAL and snapshot files.
//!
//! Raft reads the log through the `Storage` trait; the driver writes it through the inherent
//! methods here. Entries after the last compaction point are also held in memory (like etcd's
//! `MemoryStorage` in front of its WAL), so raft's reads never touch the disk.
//!
//! WAL record kinds (stable; never renumber):
//! - `1` entry: a protobuf `Entry`. An entry at an index that already exists replaces it and
//!   everything after it (a new leader overwrote an uncommitted tail).
//! - `2` hard state: a protobuf `HardState`; the last one wins.
//! - `3` log reset: a protobuf `SnapshotMetadata`; a snapshot from the leader replaced the
//!   whole log, so every entry before this record is void.
//!
//! Restart ([`DiskStorage::open`]): load the newest valid snapshot, replay the WAL, keep the
//! entries after the snapshot. Gaps between the snapshot and the log, or a commit index beyond
//! the log, are corruption and refuse to start.

use std::cell::Cell;
use std::io::Read;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::snap::{self, Snapshotter};
use crate::wal::{self, Wal};

const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_LOG_RESET: u8 = 3;
const KINDS: &[u8] = &[KIND_ENTRY, KIND_HARD_STATE, KIND_LOG_RESET];

/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Entries kept in memory before the last snapshot, so a slightly slow follower can catch up
/// from the log instead of needing a snapshot (etcd's `SnapshotCatchUpEntries`).
pub const CATCH_UP_ENTRIES: u64 = 5000;

/// Storage errors: all fatal for the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] wal::Error),
    /// A snapshot file failed.
    #[error(transparent)]
    Snap(#[from] snap::Error),
    /// The files are readable but inconsistent.
    #[error("inconsistent data directory: {0}")]
    Inconsistent(String),
}

/// Storage result.
pub type Result<T> = std::result::Result<T, Error>;

/// Durable raft log + hard state + snapshots.
pub struct DiskStorage {
    wal: Wal,
    snaps: Snapshotter,
    hard_state: HardState,
    /// Metadata of the newest snapshot (index 0 if none): the configuration raft starts from.
    snapshot: SnapshotMetadata,
    /// Index and term of the entry just before `entries[0]`.
    offset: (u64, u64),
    entries: Vec<Entry>,
    /// Set when raft asked for a snapshot that the newest one cannot serve (it predates the
    /// peer's addition, or the index raft needs): the driver then takes a fresh one.
    snapshot_wanted: Cell<bool>,
    /// WAL segments kept once snapshots cover them (`--max-wals`; 0: all).
    keep_wals: usize,
}

/// What a restart found.
pub struct Recovered<T> {
    /// The storage, ready for raft.
    pub storage: DiskStorage,
    /// What the caller decoded from the state machine bytes of the snapshot raft starts from,
    /// if there is one.
    pub snapshot_data: Option<T>,
}

/// Decodes a snapshot's state machine bytes from a stream (an error sets the file aside).
pub type DecodeSnapshot<'a, T> = &'a mut dyn FnMut(&mut dyn Read) -> std::result::Result<T, String>;

/// Reads a snapshot's state machine bytes whole.
#[cfg(test)]
fn read_all(r: &mut dyn Read) -> std::result::Result<Vec<u8>, String> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Where a member's log lives: snapshots in `DATA_DIR/snap`, the WAL in `DATA_DIR/wal` or a
/// directory of its own (`--wal-dir`, say on a disk of its own, as in etcd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The data directory.
    pub data: PathBuf,
    /// The WAL's directory.
    pub wal: PathBuf,
}

impl Layout {
    /// The WAL in `wal_dir` if given, else in `DATA_DIR/wal`.
    pub fn new(data_dir: &Path, wal_dir: Option<&Path>) -> Layout {
        Layout {
            data: data_dir.to_path_buf(),
            wal: wal_dir.map_or_else(|| data_dir.join("wal"), Path::to_path_buf),
        }
    }

    /// Where a new WAL is built before it is renamed into place (beside it, on its disk).
    pub fn wal_tmp(&self) -> PathBuf {
        let mut name = self
            .wal
            .file_name()
            .map_or_else(|| "wal".into(), |n| n.to_os_string());
        name.push(".tmp");
        self.wal.with_file_name(name)
    }

    /// The directory holding the WAL's directory (synced when it appears).
    fn wal_parent(&self) -> &Path {
        self.wal
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

impl DiskStorage {
    /// True if `layout` holds a log.
    pub fn exists(layout: &Layout) -> bool {
        Wal::exists(&layout.wal)
    }

    /// Creates the storage of a brand-new member whose log starts with `initial` entries
    /// (already committed per `hard_state`), all durable when this returns. The log is built
    /// in `wal.tmp` and renamed into place, so a crash leaves either no log or a complete one.
    pub fn create(
        layout: &Layout,
        hard_state: HardState,
        initial: &[Entry],
    ) -> Result<DiskStorage> {
        let tmp = layout.wal_tmp();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Wal(wal::Error::Io { path, source })
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        {
            let mut wal = Wal::create(&tmp, 1, KINDS)?;
            for e in initial {
                wal.append(
                    KIND_ENTRY,
                    &e.write_to_bytes().expect("encoding an entry cannot fail"),
                );
            }
            wal.append(
                KIND_HARD_STATE,
                &hard_state
                    .write_to_bytes()
                    .expect("encoding a hard state cannot fail"),
            );
            wal.sync()?;
        }
        let dir = &layout.wal;
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        wal::sync_dir(layout.wal_parent())?;
        Ok(DiskStorage::open(layout, &mut |_| Ok(()))?.storage)
    }

    /// Opens an existing data directory (see the module docs); `decode` reads the newest
    /// snapshot's state machine bytes as a stream (an older snapshot is tried if it fails).
    pub fn open<T>(layout: &Layout, decode: DecodeSnapshot<'_, T>) -> Result<Recovered<T>> {
        let snaps = Snapshotter::open(&layout.data.join("snap"))?;
        let loaded = snaps.load_newest(decode)?;
        let mut snapshot = SnapshotMetadata::default();
        let mut snapshot_data = None;
        if let Some(l) = loaded {
            snapshot = SnapshotMetadata::parse_from_bytes(&l.meta)
                .map_err(|e| Error::Inconsistent(format!("snapshot {} metadata: {e}", l.index)))?;
            snapshot_data = Some(l.data);
        }
        let mut hard_state = HardState::default();
        let mut entries: Vec<Entry> = Vec::new();
        let mut reset_at = 0;
        // Records are handled as they are read. Entries before the snapshot are not kept: the
        // snapshot holds what they did, and committed entries are never written again, so one
        // of them read after later entries means those later entries were replaced.
        let wal = Wal::open_each(&layout.wal, KINDS, &mut |rec| {
            match rec.kind {
                KIND_ENTRY => {
                    let e = Entry::parse_from_bytes(&rec.payload)
                        .map_err(|e| Error::Inconsistent(format!("WAL entry: {e}")))?;
                    if e.index < snapshot.index {
                        entries.clear();
                        return Ok(());
                    }
                    if let Some(first) = entries.first().map(|f| f.index) {
                        if e.index < first {
                            entries.clear();
                        } else {
                            entries.truncate((e.index - first) as usize);
                        }
                    }
                    if let Some(last) = entries.last() {
                        if last.index + 1 != e.index {
                            return Err(Error::Inconsistent(format!(
                                "WAL jumps from entry {} to {}",
                                last.index, e.index
                            )));
                        }
                    }
                    entries.push(e);
                }
                KIND_HARD_STATE => {
                    hard_state = HardState::parse_from_bytes(&rec.payload)
                        .map_err(|e| Error::Inconsistent(format!("WAL hard state: {e}")))?;
                }
                KIND_LOG_RESET => {
                    let m = SnapshotMetadata::parse_from_bytes(&rec.payload)
                        .map_err(|e| Error::Inconsistent(format!("WAL log reset: {e}")))?;
                    entries.clear();
                    reset_at = m.index;
                }
                _ => unreachable!("the WAL only returns known kinds"),
            }
            Ok(())
        })?;
        if reset_at > snapshot.index {
            return Err(Error::Inconsistent(format!(
                "the log was reset to a snapshot at {reset_at}, but the newest valid snapshot is at {}",
                snapshot.index
            )));
        }
        if let Some(at) = entries.iter().find(|e| e.index == snapshot.index) {
            if at.term != snapshot.term {
                // A crash while installing a leader's snapshot, after the file and before the
                // log reset: the snapshot is committed state, so the log's tail is stale.
                tracing::warn!(
                    index = snapshot.index,
                    "the log disagrees with the newest snapshot at its index; dropping the log's tail"
                );
                entries.clear();
            }
        }
        entries.retain(|e| e.index > snapshot.index);
        if let Some(first) = entries.first() {
            if first.index != snapshot.index + 1 {
                return Err(Error::Inconsistent(format!(
                    "the log starts at {} but the newest snapshot ends at {}",
                    first.index, snapshot.index
                )));
            }
        }
        let last = entries.last().map_or(snapshot.index, |e| e.index);
        // The commit index in the hard state may lag what was applied and snapshotted.
        hard_state.commit = hard_state.commit.max(snapshot.index);
        if hard_state.commit > last {
            return Err(Error::Inconsistent(format!(
                "commit index {} is beyond the last log entry {last}",
                hard_state.commit
            )));
        }
        let storage = DiskStorage {
            wal,
            snaps,
            hard_state,
            offset: (snapshot.index, snapshot.term),
            snapshot,
            entries,
            snapshot_wanted: Cell::new(false),
            // Until told otherwise: only what the snapshots do not cover, and the newest.
            keep_wals: 1,
        };
        Ok(Recovered {
            storage,
            snapshot_data,
        })
    }

    /// The hard state as last set.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Metadata of the newest snapshot.
    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot
    }

    /// True (once) if raft asked for a snapshot the newest one could not serve.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    /// Buffers entries for the log (replacing any from the first one's index on).
    pub fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first().map(|e| e.index) else {
            return;
        };
        assert!(
            first > self.offset.0,
            "appending entry {first} at or before the compaction point {}",
            self.offset.0
        );
        let keep = (first - self.offset.0 - 1) as usize;
        assert!(keep <= self.entries.len(), "log gap before entry {first}");
        self.entries.truncate(keep);
        for e in ents {
            self.wal.append(
                KIND_ENTRY,
                &e.write_to_bytes().expect("encoding an entry cannot fail"),
            );
        }
        self.entries.extend_from_slice(ents);
    }

    /// Buffers a new hard state.
    pub fn set_hard_state(&mut self, hs: &HardState) {
        self.hard_state = hs.clone();
        self.wal.append(
            KIND_HARD_STATE,
            &hs.write_to_bytes()
                .expect("encoding a hard state cannot fail"),
        );
    }

    /// Notes a commit index learnt after a `Ready` (persisted with the next hard state).
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Makes everything buffered durable with one fsync; starts a new segment when the current
    /// one is full.
    pub fn persist(&mut self) -> Result<()> {
        self.wal.sync()?;
        if self.wal.segment_size() >= SEGMENT_BYTES {
            self.roll()?;
        }
        Ok(())
    }

    /// Starts a new WAL segment, labelled with the index of the next entry and opening with the
    /// current hard state.
    fn roll(&mut self) -> Result<()> {
        let hs = self
            .hard_state
            .write_to_bytes()
            .expect("encoding a hard state cannot fail");
        self.wal.roll(self.last() + 1, &[(KIND_HARD_STATE, hs)])?;
        Ok(())
    }

    /// True if a `Ready` with `entries` new entries and hard state `hs` must be fsynced before
    /// raft may go on (etcd's `MustSync`): new entries, or a changed term or vote. A hard state
    /// that only moves the commit index may stay buffered until the next sync: raft
    /// recomputes the commit index after a restart.
    pub fn must_sync(&self, entries: usize, hs: Option<&HardState>) -> bool {
        entries > 0
            || hs.is_some_and(|hs| {
                hs.term != self.hard_state.term || hs.vote != self.hard_state.vote
            })
    }

    /// The metadata of a snapshot of the state machine at `index` (applied locally), for the
    /// snapshot thread to write with [`DiskStorage::snapshotter`].
    pub fn snapshot_meta(&self, index: u64, conf_state: ConfState) -> Result<SnapshotMetadata> {
        let term = self.term_of(index).ok_or_else(|| {
            Error::Inconsistent(format!("snapshot at {index}, which is not in the log"))
        })?;
        Ok(SnapshotMetadata {
            index,
            term,
            conf_state: Some(conf_state).into(),
            ..Default::default()
        })
    }

    /// The snapshot directory, for the snapshot thread.
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snaps
    }

    /// How many snapshot files and covered WAL segments to keep (`--max-snapshots`,
    /// `--max-wals`; 0 keeps all), from the next snapshot on.
    pub fn set_retention(&mut self, snapshots: usize, wals: usize) {
        self.snaps.set_keep(snapshots);
        self.keep_wals = wals;
    }

    /// Takes note that the snapshot `meta` describes is durable: raft is offered it from now
    /// on, the in-memory log is compacted, and WAL segments the kept snapshots cover are
    /// released. A snapshot older than the one raft has (a leader's snapshot was installed
    /// while it was written) changes nothing.
    pub fn snapshot_saved(&mut self, meta: SnapshotMetadata) -> Result<()> {
        if meta.index <= self.snapshot.index {
            return Ok(());
        }
        let index = meta.index;
        self.snapshot = meta;
        self.compact(index.saturating_sub(CATCH_UP_ENTRIES));
        if let Some(oldest) = self.snaps.oldest_index()? {
            self.wal.release(oldest, self.keep_wals)?;
        }
        Ok(())
    }

    /// Writes a snapshot and takes note of it at once (tests; the node writes snapshots on
    /// its snapshot thread).
    #[cfg(test)]
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: &[u8],
    ) -> Result<()> {
        let meta = self.snapshot_meta(index, conf_state)?;
        let meta_bytes = meta
            .write_to_bytes()
            .expect("encoding metadata cannot fail");
        self.snaps
            .save_bytes(meta.index, meta.term, &meta_bytes, data)?;
        self.snapshot_saved(meta)
    }

    /// Replaces the whole log with a snapshot received from the leader; durable on return.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<()> {
        let meta = snapshot.get_metadata().clone();
        self.snaps.save_bytes(
            meta.index,
            meta.term,
            &meta
                .write_to_bytes()
                .expect("encoding metadata cannot fail"),
            &snapshot.data,
        )?;
        self.wal.append(
            KIND_LOG_RESET,
            &meta
                .write_to_bytes()
                .expect("encoding metadata cannot fail"),
        );
        self.entries.clear();
        self.offset = (meta.index, meta.term);
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        self.set_hard_state(&hs);
        self.snapshot = meta;
        self.persist()
    }

    /// Forgets the entries in memory up to `index` (they stay in the WAL until a snapshot
    /// covers them, which is what a restart needs). Raft then reaches entries from `index + 1`
    /// on; a member further behind gets a snapshot (one at or after `index`: see
    /// [`Storage::snapshot`]). The driver calls it with entries every follower has (see
    /// `Driver::trim_log`), so that the log in memory stays short between snapshots.
    pub fn compact(&mut self, index: u64) {
        if index <= self.offset.0 {
            return;
        }
        let index = index.min(self.last());
        let term = self.term_of(index).expect("index within the log");
        let n = (index - self.offset.0) as usize;
        self.entries.drain(..n);
        // A long log drained to a short one gives its memory back.
        if self.entries.capacity() > 4 * self.entries.len() + 1024 {
            self.entries.shrink_to(2 * self.entries.len());
        }
        self.offset = (index, term);
    }

    fn last(&self) -> u64 {
        self.offset.0 + self.entries.len() as u64
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.offset.0 {
            return Some(self.offset.1);
        }
        if index < self.offset.0 || index > self.last() {
            return None;
        }
        Some(self.entries[(index - self.offset.0 - 1) as usize].term)
    }
}

impl Storage for DiskStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.snapshot.get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.offset.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.offset.0 - 1) as usize;
        let hi = (high - self.offset.0 - 1) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.offset.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.offset.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let meta = &self.snapshot;
        let cs = meta.get_conf_state();
        let includes_peer = cs.voters.contains(&to) || cs.learners.contains(&to);
        if meta.index == 0
            || meta.index < request_index
            || meta.index < self.offset.0
            || !includes_peer
        {
            // A snapshot taken before `to` joined would be refused by it, and one older than
            // the log in memory would leave a gap after it: ask for a new one.
            self.snapshot_wanted.set(true);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        match self.snaps.read_data(meta.index, meta.term) {
            Ok(data) => Ok(Snapshot {
                data: data.into(),
                metadata: Some(meta.clone()).into(),
                ..Default::default()
            }),
            Err(e) => {
                tracing::warn!("the snapshot for a lagging member cannot be read: {e}");
                self.snapshot_wanted.set(true);
                Err(raft::Error::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: data.as_bytes().to_vec().into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            commit,
            ..Default::default()
        }
    }

    fn voters(ids: &[u64]) -> ConfState {
        ConfState {
            voters: ids.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_wal_in_a_directory_of_its_own_survives_reopen() {
        let data = tempfile::tempdir().unwrap();
        let disk = tempfile::tempdir().unwrap();
        let layout = Layout::new(data.path(), Some(&disk.path().join("etcd-wal")));
        assert!(!DiskStorage::exists(&layout));
        let mut s = DiskStorage::create(&layout, hs(1, 1), &[entry(1, 1, "a")]).unwrap();
        s.append(&[entry(2, 1, "b")]);
        s.set_hard_state(&hs(1, 2));
        s.persist().unwrap();
        drop(s);
        assert!(DiskStorage::exists(&layout));
        assert!(!data.path().join("wal").exists());
        assert!(!layout.wal_tmp().exists());
        assert_eq!(layout.wal_tmp(), disk.path().join("etcd-wal.tmp"));
        // The default layout of the same data directory has no log.
        assert!(!DiskStorage::exists(&Layout::new(data.path(), None)));
        let s = DiskStorage::open(&layout, &mut read_all).unwrap().storage;
        assert_eq!((s.hard_state().commit, s.last_index().unwrap()), (2, 2));
    }

    #[test]
    fn log_and_hard_state_survive_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        s.append(&[entry(2, 2, "b"), entry(3, 2, "c")]);
        s.set_hard_state(&hs(2, 3));
        s.persist().unwrap();
        drop(s);
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        let s = r.storage;
        assert_eq!(s.hard_state().commit, 3);
        assert_eq!(s.last_index().unwrap(), 3);
        assert_eq!(s.term(2).unwrap(), 2);
        let ents = s
            .entries(1, 4, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(
            ents.iter().map(|e| e.data.to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn overwritten_tail_is_replaced_on_replay() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        s.append(&[entry(2, 1, "old2"), entry(3, 1, "old3")]);
        s.persist().unwrap();
        s.append(&[entry(2, 3, "new2")]);
        s.persist().unwrap();
        drop(s);
        let s = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all)
            .unwrap()
            .storage;
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.term(2).unwrap(), 3);
    }

    #[test]
    fn snapshot_then_tail_is_what_a_restart_sees() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        let more: Vec<Entry> = (2..=10).map(|i| entry(i, 2, "x")).collect();
        s.append(&more);
        s.set_hard_state(&hs(2, 10));
        s.persist().unwrap();
        let cs = voters(&[1]);
        s.create_snapshot(8, cs.clone(), b"state at 8").unwrap();
        s.append(&[entry(11, 2, "y")]);
        s.persist().unwrap();
        drop(s);
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        assert_eq!(r.snapshot_data.as_deref(), Some(&b"state at 8"[..]));
        let s = r.storage;
        assert_eq!(s.first_index().unwrap(), 9);
        assert_eq!(s.last_index().unwrap(), 11);
        assert_eq!(s.initial_state().unwrap().conf_state, cs);
        assert_eq!(s.term(8).unwrap(), 2);
        assert!(matches!(
            s.term(7),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.snapshot(8, 1).unwrap().get_metadata().index, 8);
        // Peer 2 is not in the snapshot's configuration: it would refuse it.
        assert!(!s.take_snapshot_wanted());
        assert!(matches!(
            s.snapshot(8, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.take_snapshot_wanted());
        assert!(!s.take_snapshot_wanted());
    }

    #[test]
    fn a_log_trimmed_in_memory_past_the_snapshot_asks_for_a_newer_one_and_restarts_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        let more: Vec<Entry> = (2..=20).map(|i| entry(i, 2, "x")).collect();
        s.append(&more);
        s.set_hard_state(&hs(2, 20));
        s.persist().unwrap();
        let cs = voters(&[1, 2]);
        s.create_snapshot(5, cs.clone(), b"state at 5").unwrap();
        // Entries every member has are forgotten in memory, past the snapshot.
        s.compact(15);
        assert_eq!(s.first_index().unwrap(), 16);
        assert!(matches!(
            s.entries(10, 12, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.term(15).unwrap(), 2);
        // The snapshot at 5 would leave a gap before 16: a newer one is asked for.
        assert!(matches!(
            s.snapshot(0, 2),
            Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable
            ))
        ));
        assert!(s.take_snapshot_wanted());
        s.create_snapshot(18, cs, b"state at 18").unwrap();
        assert_eq!(s.snapshot(0, 2).unwrap().get_metadata().index, 18);
        drop(s);
        // The WAL still has every entry after the last snapshot.
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        assert_eq!(r.storage.first_index().unwrap(), 19);
        assert_eq!(r.storage.last_index().unwrap(), 20);
        let mut s = DiskStorage::create(
            &Layout::new(&tmp.path().join("b"), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        s.append(&(2..=30).map(|i| entry(i, 2, "x")).collect::<Vec<_>>());
        s.persist().unwrap();
        s.compact(25);
        drop(s);
        // With no snapshot at all, a restart replays the whole WAL.
        let r =
            DiskStorage::open(&Layout::new(&tmp.path().join("b"), None), &mut read_all).unwrap();
        assert_eq!(r.storage.first_index().unwrap(), 1);
        assert_eq!(r.storage.last_index().unwrap(), 30);
    }

    #[test]
    fn snapshot_from_leader_resets_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        s.append(&[entry(2, 1, "stale"), entry(3, 1, "stale")]);
        s.persist().unwrap();
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 50;
        snap.mut_metadata().term = 4;
        snap.data = b"leader state".to_vec().into();
        s.apply_snapshot(&snap).unwrap();
        s.append(&[entry(51, 4, "new")]);
        s.persist().unwrap();
        drop(s);
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        assert_eq!(r.snapshot_data.as_deref(), Some(&b"leader state"[..]));
        assert_eq!(
            (
                r.storage.first_index().unwrap(),
                r.storage.last_index().unwrap()
            ),
            (51, 51)
        );
        assert_eq!(r.storage.hard_state().commit, 50);
    }

    #[test]
    fn released_segments_never_leave_a_gap_after_the_snapshot() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        // Segment boundaries after entries 1..=i for every i, so that release is tried at each.
        for i in 2..=12 {
            s.append(&[entry(i, 1, "x")]);
            s.set_hard_state(&hs(1, i));
            s.persist().unwrap();
            s.roll().unwrap();
        }
        let cs = voters(&[1]);
        s.create_snapshot(6, cs.clone(), b"at 6").unwrap();
        s.create_snapshot(7, cs, b"at 7").unwrap();
        drop(s);
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        assert_eq!(r.snapshot_data.as_deref(), Some(&b"at 7"[..]));
        assert_eq!(
            (
                r.storage.first_index().unwrap(),
                r.storage.last_index().unwrap()
            ),
            (8, 12)
        );
        // Falling back to the older snapshot must find every entry after it, too.
        let snaps: Vec<_> = std::fs::read_dir(tmp.path().join("snap"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let newest = snaps.iter().max().unwrap();
        std::fs::write(newest, b"damaged").unwrap();
        let r = DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all).unwrap();
        assert_eq!(r.snapshot_data.as_deref(), Some(&b"at 6"[..]));
        assert_eq!(
            (
                r.storage.first_index().unwrap(),
                r.storage.last_index().unwrap()
            ),
            (7, 12)
        );
    }

    #[test]
    fn a_commit_only_hard_state_need_not_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        assert!(!s.must_sync(0, Some(&hs(1, 7))));
        assert!(s.must_sync(0, Some(&hs(2, 1))));
        let mut voted = hs(1, 1);
        voted.vote = 3;
        assert!(s.must_sync(0, Some(&voted)));
        assert!(s.must_sync(1, None));
        assert!(!s.must_sync(0, None));
    }

    #[test]
    fn commit_beyond_the_log_refuses_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::create(
            &Layout::new(tmp.path(), None),
            hs(1, 1),
            &[entry(1, 1, "a")],
        )
        .unwrap();
        s.set_hard_state(&hs(1, 5));
        s.persist().unwrap();
        drop(s);
        assert!(matches!(
            DiskStorage::open(&Layout::new(tmp.path(), None), &mut read_all),
            Err(Error::Inconsistent(_))
        ));
    }
}
