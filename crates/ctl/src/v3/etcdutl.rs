//! `etcdutl`: etcd 3.5's offline tool, for a stopped member's files rather than a running
//! cluster: `snapshot status FILE` and `snapshot restore FILE …` (the same as etcdctl's,
//! `super::snapshot`), `backup` (`super::offline`), `defrag --data-dir` (nothing to do: the keyspace lives in memory and
//! snapshots are written whole, so a data directory has no free pages to reclaim) and
//! `version`. Output formats (`-w`) as etcdctl's.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::snapshot::{self, RestoreArgs};
use super::{exit_with, Format};

#[derive(Parser, Debug)]
#[command(
    name = "etcdutl",
    version,
    about = "An administrative command line tool for etcd-rs's files (etcd 3.5's etcdutl)"
)]
struct Cli {
    /// Output format: simple, json, fields, table or protobuf.
    #[arg(long = "write-out", short = 'w', value_enum, default_value_t = Format::Simple, global = true)]
    write_out: Format,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Manages etcd node snapshots.
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Backs up a stopped member's data directory as a member directory of a new cluster.
    Backup(super::offline::BackupArgs),
    /// Defragments the storage of an etcd member (nothing to do in etcd-rs).
    Defrag {
        /// Data directory of the etcd member.
        #[arg(long = "data-dir", default_value = "")]
        data_dir: String,
    },
    /// Prints the version of etcdutl.
    Version,
}

#[derive(Subcommand, Debug)]
enum SnapshotCmd {
    /// Gets backend snapshot status of a given file.
    Status { args: Vec<String> },
    /// Restores an etcd member snapshot to an etcd directory.
    Restore(RestoreArgs),
}

/// Runs etcdutl with the process's arguments.
pub fn main() -> ExitCode {
    let cli: Cli = match crate::parse_or_exit(super::EXIT_ERROR) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match &cli.command {
        Cmd::Snapshot {
            cmd: SnapshotCmd::Status { args },
        } => {
            let mut out = String::new();
            let result = snapshot::status(cli.write_out, args, &mut out);
            print!("{out}");
            exit_with(result)
        }
        Cmd::Snapshot {
            cmd: SnapshotCmd::Restore(args),
        } => exit_with(snapshot::restore(args)),
        Cmd::Backup(args) => exit_with(super::offline::backup(args)),
        Cmd::Defrag { data_dir } => {
            if data_dir.is_empty() || !std::path::Path::new(data_dir).is_dir() {
                return exit_with(Err(super::fail(format!(
                    "data directory {data_dir:?} not found (--data-dir)"
                ))));
            }
            println!("Finished defragmenting etcd data[{data_dir}]");
            ExitCode::SUCCESS
        }
        Cmd::Version => {
            println!("etcdutl version: {}", env!("CARGO_PKG_VERSION"));
            println!("API version: 3.5");
            ExitCode::SUCCESS
        }
    }
}
