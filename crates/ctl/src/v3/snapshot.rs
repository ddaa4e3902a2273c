//! `etcdctl snapshot save|status|restore` (and `etcdutl snapshot status|restore`), as etcd
//! 3.4's etcdctl runs them.
//!
//! - `save FILE` streams `Maintenance.Snapshot` of the one endpoint given into `FILE.part`,
//!   checks that it ends with a SHA-256 (its size is whole 512-byte pages plus 32), fsyncs it
//!   and renames it into place: a file never appears half-written under its name.
//! - `status FILE` reads the file as a bbolt database and prints etcd's hash (CRC-32C over
//!   every bucket), revision, key count and size (`etcd_server::etcd_snapshot::status`).
//! - `restore FILE` makes one member's data directory of a new cluster
//!   (`etcd_server::etcd_snapshot::restore_cluster`): run once per member with the same
//!   `--initial-cluster` and `--initial-cluster-token`, the members start as one cluster
//!   serving the snapshot's keys, leases, users and roles.
//!
//! Progress goes to standard error as zap's JSON lines (level, time, message, fields), as
//! etcdctl logs it; what scripts read (`Snapshot saved at …`, the status) goes to standard
//! output.
//!
//! Not here: etcd's own data directory layout. A directory restored here is etcd-rs's (for an
//! etcd 3.4 data directory, run etcd's `etcdctl snapshot restore` on the same file: the file is
//! etcd's format both ways).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Subcommand;
use etcd_server::etcd_snapshot::{self, DbStatus, NewMember, RestoreConfig};

use super::{bad_args, humanize_bytes, json_string, table, Cli, Failure, Format};

/// etcdctl's exit code for a snapshot save that failed (`ExitInterrupted`).
const EXIT_INTERRUPTED: u8 = 5;

/// `snapshot` subcommands.
#[derive(Subcommand, Debug)]
pub(super) enum SnapshotCmd {
    /// Stores an etcd node backend snapshot to a given file.
    Save { args: Vec<String> },
    /// Gets backend snapshot status of a given file.
    Status { args: Vec<String> },
    /// Restores an etcd member snapshot to an etcd directory.
    Restore(RestoreArgs),
}

/// `snapshot restore`'s arguments and flags (etcdctl's and etcdutl's).
#[derive(clap::Args, Debug)]
pub(crate) struct RestoreArgs {
    args: Vec<String>,
    /// Path to the data directory.
    #[arg(long = "data-dir", default_value = "")]
    data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given).
    #[arg(long = "wal-dir", default_value = "")]
    wal_dir: String,
    /// Initial cluster configuration for restore bootstrap.
    #[arg(
        long = "initial-cluster",
        default_value = "default=http://localhost:2380"
    )]
    initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long = "initial-cluster-token", default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        default_value = "http://localhost:2380"
    )]
    initial_advertise_peer_urls: String,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory).
    #[arg(long = "skip-hash-check")]
    skip_hash_check: bool,
}

/// One zap-style JSON log line on standard error: `msg` and string `fields`.
pub(super) fn log(msg: &str, fields: &[(&str, String)]) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut line = format!(
        "{{\"level\":\"info\",\"ts\":{ts},\"msg\":{}",
        json_string(msg)
    );
    for (k, v) in fields {
        line.push_str(&format!(",{}:{}", json_string(k), json_string(v)));
    }
    line.push_str("}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// An I/O error as Go prints one (`open x: no such file or directory`).
fn go_io_error(op: &str, path: &str, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{op} {path}: {text}")
}

/// `snapshot save FILE`: the one endpoint's snapshot, written to `FILE.part` and renamed.
pub(super) async fn save(cli: &Cli, args: &[String], out: &mut String) -> Result<(), Failure> {
    let [path] = args else {
        return Err(bad_args("snapshot save expects one argument"));
    };
    let interrupted = |message: String| Failure {
        message,
        code: EXIT_INTERRUPTED,
    };
    if cli.endpoints.len() != 1 {
        return Err(interrupted(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            cli.endpoints.join(" ")
        )));
    }
    let part = format!("{path}.part");
    let result = save_through(cli, path, &part).await;
    // Never left behind, whatever happened.
    let _ = std::fs::remove_file(&part);
    result.map_err(interrupted)?;
    out.push_str(&format!("Snapshot saved at {path}\n"));
    Ok(())
}

async fn save_through(cli: &Cli, path: &str, part: &str) -> Result<(), String> {
    let mut file = {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        o.open(part)
            .map_err(|e| format!("could not open {part} ({})", go_io_error("open", part, &e)))?
    };
    log("created temporary db file", &[("path", part.to_string())]);
    let start = Instant::now();
    let client = super::client(cli).map_err(|f| f.message)?;
    let endpoint = cli.endpoints[0].clone();
    // As etcdctl: no time limit unless --command-timeout was given.
    let fetch = client.snapshot();
    let bytes = if cli.command_timeout_set {
        match tokio::time::timeout(cli.command_timeout, fetch).await {
            Ok(r) => r,
            Err(_) => return Err("context deadline exceeded".into()),
        }
    } else {
        fetch.await
    }
    .map_err(|e| Failure::from(e).message)?;
    log("fetching snapshot", &[("endpoint", endpoint.clone())]);
    file.write_all(&bytes)
        .map_err(|e| go_io_error("write", part, &e))?;
    let size = bytes.len() as u64;
    if size % 512 != 32 {
        return Err(format!("sha256 checksum not found [bytes: {size}]"));
    }
    file.sync_all().map_err(|e| go_io_error("sync", part, &e))?;
    drop(file);
    log(
        "fetched snapshot",
        &[
            ("endpoint", endpoint),
            ("size", humanize_bytes(size)),
            ("took", super::go_duration(start.elapsed())),
        ],
    );
    std::fs::rename(part, path).map_err(|e| {
        format!(
            "could not rename {part} to {path} ({})",
            go_io_error("rename", part, &e)
        )
    })?;
    log("saved", &[("path", path.to_string())]);
    Ok(())
}

/// `snapshot status FILE`, printed in `format`.
pub(crate) fn status(format: Format, args: &[String], out: &mut String) -> Result<(), Failure> {
    let [path] = args else {
        return Err(bad_args("snapshot status requires exactly one argument"));
    };
    if let Err(e) = std::fs::metadata(path) {
        return Err(super::fail(go_io_error("stat", path, &e)));
    }
    let st = etcd_snapshot::status(Path::new(path)).map_err(|e| super::fail(e.to_string()))?;
    print_status(out, format, &st)
}

fn print_status(out: &mut String, format: Format, st: &DbStatus) -> Result<(), Failure> {
    let row = [
        format!("{:x}", st.hash),
        st.revision.to_string(),
        st.total_key.to_string(),
        humanize_bytes(st.total_size),
    ];
    match format {
        Format::Simple => {
            out.push_str(&row.join(", "));
            out.push('\n');
        }
        Format::Json => out.push_str(&format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            st.hash, st.revision, st.total_key, st.total_size
        )),
        Format::Fields => out.push_str(&format!(
            "\"Hash\" : {}\n\"Revision\" : {}\n\"Keys\" : {}\n\"Size\" : {}\n",
            st.hash, st.revision, st.total_key, st.total_size
        )),
        Format::Table => out.push_str(&table::render(
            &["hash", "revision", "total keys", "total size"],
            &[row.to_vec()],
        )),
        Format::Protobuf => return Err(super::unsupported(format)),
    }
    Ok(())
}

/// `snapshot restore FILE …`: one member's data directory of a new cluster.
pub(crate) fn restore(cmd: &RestoreArgs) -> Result<(), Failure> {
    let RestoreArgs {
        args,
        data_dir,
        wal_dir,
        initial_cluster,
        initial_cluster_token,
        initial_advertise_peer_urls,
        name,
        skip_hash_check,
    } = cmd;
    let [path] = args.as_slice() else {
        return Err(bad_args("snapshot restore requires exactly one argument"));
    };
    let data_dir = if data_dir.is_empty() {
        PathBuf::from(format!("{name}.etcd"))
    } else {
        PathBuf::from(data_dir)
    };
    let cfg = RestoreConfig {
        snapshot: PathBuf::from(path),
        skip_hash_check: *skip_hash_check,
        member: NewMember {
            name: name.clone(),
            data_dir: data_dir.clone(),
            wal_dir: (!wal_dir.is_empty()).then(|| PathBuf::from(wal_dir)),
            initial_cluster: initial_cluster.clone(),
            token: initial_cluster_token.clone(),
            peer_urls: initial_advertise_peer_urls
                .split(',')
                .map(str::to_string)
                .collect(),
        },
    };
    let wal_shown = cfg
        .member
        .wal_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("wal"))
        .display()
        .to_string();
    let fields = [
        ("path", path.clone()),
        ("wal-dir", wal_shown),
        ("data-dir", data_dir.display().to_string()),
    ];
    log("restoring snapshot", &fields);
    etcd_snapshot::restore_cluster(&cfg).map_err(|e| super::fail(e.to_string()))?;
    log("restored snapshot", &fields);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_prints_io_errors_in_lower_case_without_the_os_code() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(
            go_io_error("stat", "x.db", &e),
            "stat x.db: no such file or directory"
        );
    }

    #[test]
    fn status_in_every_format() {
        let st = DbStatus {
            hash: 0x1b2c_3d4e,
            revision: 17,
            total_key: 42,
            total_size: 20480,
        };
        let shown = |format| {
            let mut out = String::new();
            print_status(&mut out, format, &st).map(|()| out)
        };
        assert_eq!(
            shown(Format::Simple).ok().unwrap(),
            "1b2c3d4e, 17, 42, 20 kB\n"
        );
        assert_eq!(
            shown(Format::Json).ok().unwrap(),
            "{\"hash\":455884110,\"revision\":17,\"totalKey\":42,\"totalSize\":20480}\n"
        );
        assert_eq!(
            shown(Format::Fields).ok().unwrap(),
            "\"Hash\" : 455884110\n\"Revision\" : 17\n\"Keys\" : 42\n\"Size\" : 20480\n"
        );
        assert_eq!(
            shown(Format::Table).ok().unwrap(),
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | 1b2c3d4e |       17 |         42 |      20 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert!(shown(Format::Protobuf).is_err());
    }
}
