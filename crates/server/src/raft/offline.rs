//! A stopped member's state, read from its data directory without starting it: for the
//! offline tools (`etcdutl backup`, `etcdctl migrate`).
//!
//! [`load`] opens the log as the member's own start would (the newest readable snapshot, then
//! the WAL after it; a torn tail is cut as a start cuts it), and applies every entry after the
//! snapshot to the store, decoded as the driver decodes them (`raft::committed`) and
//! applied as it applies them, without any of the driver's side effects
//! (no lease clock, no watchers, no replies). Every entry the log holds, not only those up to
//! the commit index it recorded (which lags: a member learns and writes down commits after
//! the entries): the tools found a new cluster on this log, or rewrite a single member's,
//! which commits all of it as it starts, as etcd's `--force-new-cluster` does.
//!
//! [`replace_state`] writes a new state back into a member's own data directory: as a snapshot
//! at the applied index installed the way a leader's snapshot is (the file, then a log reset),
//! so the member restarts from it.

use std::path::Path;
use std::sync::Arc;

use etcd_store::{Store, StoreSnapshot};
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, Storage as _};

use super::committed::Committed;
use super::storage::{DiskStorage, Layout, Recovered};

/// What [`load`] read.
pub struct Loaded {
    /// The state after the last entry of the log.
    pub store: Store<()>,
    /// The index of that entry.
    pub applied: u64,
    /// Its term.
    pub term: u64,
    /// Raft's configuration as of the newest snapshot.
    pub conf_state: ConfState,
    /// Whether committed configuration changes follow the snapshot (then `conf_state` is not
    /// the configuration at `applied`).
    pub conf_changed_since_snapshot: bool,
}

/// Reads the state of the member whose log is at `layout` (see the module docs).
pub fn load(layout: &Layout, history: usize) -> Result<Loaded, String> {
    if !DiskStorage::exists(layout) {
        return Err(format!(
            "no etcd-rs log in {} (the data directory of a member that ran)",
            layout.wal.display()
        ));
    }
    let mut store: Store<()> = Store::new(history);
    store.set_v3_values(etcd_mvcc::Values::new(Arc::new(
        crate::values::ValueFiles::new(&layout.data),
    )));
    let values = store.v3_values();
    let Recovered {
        storage,
        snapshot_data,
    } = DiskStorage::open(layout, &mut |r| {
        StoreSnapshot::read_from_with(r, &values).map_err(|e| e.to_string())
    })
    .map_err(|e| format!("reading the log in {}: {e}", layout.wal.display()))?;
    if let Some(snap) = snapshot_data {
        store.restore(snap);
    }
    let meta = storage.snapshot_metadata().clone();
    let last = storage
        .last_index()
        .map_err(|e| format!("reading the log: {e}"))?;
    let entries = if last > meta.index {
        storage
            .entries(
                meta.index + 1,
                last + 1,
                None,
                GetEntriesContext::empty(false),
            )
            .map_err(|e| format!("reading entries {}..={last}: {e}", meta.index + 1))?
    } else {
        Vec::new()
    };
    let mut conf_changed = false;
    let mut term = meta.term;
    for e in entries {
        let index = e.index;
        term = e.term;
        // As the driver applies entries, without its effects (see the module docs).
        let command = match super::committed::decode(&e)? {
            Committed::Empty => None,
            Committed::Store(cmd) => Some(cmd),
            Committed::V3(request) => {
                store.apply_v3(index, request);
                continue;
            }
            Committed::ConfChange { registration, .. } => {
                conf_changed = true;
                registration
            }
        };
        match command {
            Some(cmd) => {
                store.apply(index, &cmd);
            }
            None => store.skip(index),
        }
    }
    Ok(Loaded {
        applied: store.snapshot().applied().max(meta.index),
        store,
        term,
        conf_state: meta.get_conf_state().clone(),
        conf_changed_since_snapshot: conf_changed,
    })
}

/// Makes `state` (a store snapshot at `index`, of term `term`, whose raft configuration is
/// `voters`) the state the member at `layout` restarts from: installed as a leader's snapshot
/// is, so the log after it is reset.
pub fn replace_state(
    layout: &Layout,
    state: &StoreSnapshot,
    index: u64,
    term: u64,
    voters: &[u64],
) -> Result<(), String> {
    let conf_state = ConfState {
        voters: voters.to_vec(),
        ..Default::default()
    };
    let Recovered { mut storage, .. } =
        DiskStorage::open(layout, &mut |_| Ok(())).map_err(|e| e.to_string())?;
    let snapshot = Snapshot {
        data: state.encode().into(),
        metadata: Some(SnapshotMetadata {
            index,
            term,
            conf_state: Some(conf_state).into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    storage
        .apply_snapshot(&snapshot)
        .map_err(|e| format!("writing the new state into {}: {e}", layout.data.display()))
}

/// Whether the store's members other than `id` are none: the member is the whole cluster.
pub fn alone(store: &Store<()>, id: u64) -> bool {
    store.members().keys().all(|m| *m == id)
}

/// The member configuration stored in `data_dir` (`DATA_DIR/info`), and where its WAL is.
pub fn member_layout(
    data_dir: &Path,
    wal_dir: Option<&Path>,
) -> Result<(Option<crate::config::NodeInfo>, Layout), String> {
    let info = crate::config::load_info(data_dir)
        .map_err(|e| format!("{}: {e}", crate::config::info_path(data_dir).display()))?;
    let wal = wal_dir
        .map(Path::to_path_buf)
        .or_else(|| info.as_ref().and_then(|i| i.wal_dir.clone()));
    Ok((info, Layout::new(data_dir, wal.as_deref())))
}
