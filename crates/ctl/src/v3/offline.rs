//! The offline tools that work on a stopped member's own files (they take its data
//! directory's lock, so they refuse while it runs):
//!
//! - `etcdutl backup`: a new cluster's member directory holding the member's whole state (v2
//!   and v3 keys, history, leases, users and roles), named as `snapshot restore` names
//!   members (`--name`, `--initial-cluster`, `--initial-cluster-token`,
//!   `--initial-advertise-peer-urls`; by default the member itself, alone). etcd's backup
//!   keeps the member and needs `--force-new-cluster` at start; here the new cluster is named
//!   up front, as a restore names it, and starts like any restored member.
//! - `etcdctl migrate`: etcd 3.4's v2 → v3 migration of a stopped single member, in place
//!   (`etcd_store::Store::migrate_v2_to_v3`): the new state is installed as a snapshot at the
//!   member's applied index, the way a leader's snapshot is.

use std::path::{Path, PathBuf};

use etcd_server::etcd_snapshot::{self, NewMember};
use etcd_server::raft::offline;

use super::{fail, Failure};

/// `etcdutl backup`'s flags.
#[derive(clap::Args, Debug)]
pub(crate) struct BackupArgs {
    /// Path to the etcd data dir.
    #[arg(long = "data-dir")]
    data_dir: PathBuf,
    /// Path to the etcd wal dir (if not in the data directory).
    #[arg(long = "wal-dir")]
    wal_dir: Option<PathBuf>,
    /// Path to the backup dir.
    #[arg(long = "backup-dir")]
    backup_dir: PathBuf,
    /// Path to the backup wal dir.
    #[arg(long = "backup-wal-dir")]
    backup_wal_dir: Option<PathBuf>,
    /// Backup v3 backend data (always, in etcd-rs: one state holds both).
    #[arg(long = "with-v3", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    with_v3: bool,
    /// The new cluster's member this backup is for (default: the backed-up member's name).
    #[arg(long)]
    name: Option<String>,
    /// The new cluster's members, NAME=URL,… (default: this member alone).
    #[arg(long = "initial-cluster")]
    initial_cluster: Option<String>,
    /// The new cluster's token.
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs (default: the backed-up member's).
    #[arg(long = "initial-advertise-peer-urls")]
    initial_advertise_peer_urls: Option<String>,
}

/// A stopped member's state, its lock held while it is read.
fn load(
    data_dir: &Path,
    wal_dir: Option<&Path>,
) -> Result<
    (
        etcd_server::lockfile::DataDirLock,
        Option<etcd_server::config::NodeInfo>,
        etcd_server::raft::Layout,
        offline::Loaded,
    ),
    Failure,
> {
    if !data_dir.is_dir() {
        return Err(fail(format!(
            "data directory {:?} not found",
            data_dir.display().to_string()
        )));
    }
    let lock = etcd_server::lockfile::lock(data_dir).map_err(fail)?;
    let (info, layout) = offline::member_layout(data_dir, wal_dir).map_err(fail)?;
    let loaded = offline::load(&layout, etcd_server::config::DEFAULT_HISTORY).map_err(fail)?;
    Ok((lock, info, layout, loaded))
}

/// `etcdutl backup`.
pub(crate) fn backup(a: &BackupArgs) -> Result<(), Failure> {
    if !a.with_v3 {
        return Err(fail(
            "--with-v3=false: etcd-rs keeps v2 and v3 in one state, and backs up both",
        ));
    }
    let (_lock, info, _, loaded) = load(&a.data_dir, a.wal_dir.as_deref())?;
    let name = a
        .name
        .clone()
        .or_else(|| info.as_ref().map(|i| i.name.clone()))
        .unwrap_or_else(|| "default".into());
    let peer = a
        .initial_advertise_peer_urls
        .clone()
        .or_else(|| info.as_ref().map(|i| i.peer_url()))
        .unwrap_or_else(|| "http://localhost:2380".into());
    let initial_cluster = a.initial_cluster.clone().unwrap_or_else(|| {
        let first = peer.split(',').next().unwrap_or_default();
        format!("{name}={first}")
    });
    let member = NewMember {
        name,
        data_dir: a.backup_dir.clone(),
        wal_dir: a.backup_wal_dir.clone(),
        initial_cluster,
        token: a.initial_cluster_token.clone(),
        peer_urls: peer.split(',').map(str::to_string).collect(),
    };
    let fields = [
        ("data-dir", a.data_dir.display().to_string()),
        ("backup-dir", a.backup_dir.display().to_string()),
        ("applied-index", loaded.applied.to_string()),
    ];
    super::snapshot::log("backing up", &fields);
    etcd_snapshot::backup_cluster(loaded.store.snapshot(), loaded.applied, &member)
        .map_err(|e| fail(e.to_string()))?;
    super::snapshot::log("backed up", &fields);
    Ok(())
}

/// `etcdctl migrate`.
pub(super) fn migrate(
    data_dir: &str,
    wal_dir: &str,
    no_ttl: bool,
    transformer: &str,
    out: &mut String,
) -> Result<(), Failure> {
    if !transformer.is_empty() {
        return Err(fail(
            "--transformer: a transformer program is not supported by this etcdctl (the \
             default one is etcd's)",
        ));
    }
    if data_dir.is_empty() {
        return Err(fail("--data-dir is required"));
    }
    out.push_str("using default transformer\n");
    let wal = (!wal_dir.is_empty()).then(|| PathBuf::from(wal_dir));
    let (_lock, info, layout, mut loaded) = load(Path::new(data_dir), wal.as_deref())?;
    let Some(info) = info else {
        return Err(fail(format!(
            "{data_dir}: no member configuration (info): not a data directory a member ran on"
        )));
    };
    if !offline::alone(&loaded.store, info.id) {
        return Err(fail(format!(
            "{data_dir} is one of {} members: migrating it alone would leave them \
             disagreeing; migrate a single member (etcdutl backup makes one), then add the \
             others",
            loaded.store.members().len()
        )));
    }
    let made = loaded
        .store
        .migrate_v2_to_v3(no_ttl)
        .map_err(|e| fail(e.to_string()))?;
    if made == 0 {
        out.push_str("no v2 keys to migrate\n");
        return Ok(());
    }
    // A single member: the configuration is the member itself.
    offline::replace_state(
        &layout,
        &loaded.store.snapshot(),
        loaded.applied,
        loaded.term,
        &[info.id],
    )
    .map_err(fail)?;
    out.push_str("finished transforming keys\n");
    Ok(())
}
