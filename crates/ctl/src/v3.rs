//! etcdctl's v3 command line (what `etcdctl` runs unless `ETCDCTL_API=2`), on
//! `etcd_client::v3`, printing exactly what etcd's etcdctl 3.4 prints.
//!
//! Commands: `put`, `get`, `del`, `txn` (etcdctl's grammar on standard input; `-i` prompts),
//! `compaction`, `watch` (with `-i` and the `-- command` form; it prints as it goes),
//! `endpoint status|health|hashkv` (each endpoint through a client of its own; `--cluster` for
//! every member's), `lease grant|revoke|timetolive|list|keep-alive` (`--once`, or printing
//! each renewal until the lease is gone), `member list|add|remove|update|promote`,
//! `move-leader`, `user`, `role` and `auth` commands, `alarm list|disarm`, `defrag`,
//! `snapshot save|status|restore` (`snapshot`), `version`.
//!
//! Output formats (`-w`), as etcdctl's printers: `simple`, `json`, `fields`; `table`
//! (`table`: member list, endpoint status/health/hashkv and snapshot status only); and
//! `protobuf` (the RPC answers' wire bytes). A format etcdctl has no printer for is refused
//! after the request, with `… not supported as output format` and exit code 4.
//!
//! Global flags and their `ETCDCTL_*` variables: `--endpoints`, `--cacert`, `--cert`,
//! `--key`, `--user`, `--password`, `--command-timeout`, `--dial-timeout`, `--write-out`.
//! Errors print `Error: <message>` on standard error and exit 1 (2 when authentication
//! fails, 3 for unreadable input, 4 for an unsupported format, 5 when a watch is canceled or
//! a snapshot save fails, 128 for usage errors), as etcdctl.
//!
//! Tested: `tools/v3-reference/kv.cmds`, `auth.cmds`, `members.cmds` and `learners.cmds`
//! (over TLS) through this etcdctl give etcd 3.4.23's recorded transcripts byte for byte;
//! `tests/etcdctl_formats.rs` runs commands in every format through Debian's etcdctl and
//! this one against the same server.
//!
//! `lock` and `elect` (`concurrency`) hold until a signal, printing as they go.
//!
//! `make-mirror` (`mirror`) copies keys to another cluster and follows their changes.
//!
//! `check perf` (`check`) runs etcdctl's one-minute write check, `check datascale` its memory
//! check, both drawing etcdctl's progress bar (`progress`).

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use etcd_client::v3::proto::etcdserverpb as pb;
use etcd_client::v3::proto::etcdserverpb::alarm_request::AlarmAction;
use etcd_client::v3::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use etcd_client::v3::proto::etcdserverpb::request_op::Request as Op;
use etcd_client::v3::proto::etcdserverpb::response_op::Response;
use etcd_client::v3::proto::etcdserverpb::{
    AlarmRequest, AlarmType, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest,
    AuthRoleGetResponse, AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest,
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest, HashKvRequest, Member, MemberAddRequest,
    MemberListResponse, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest,
    MoveLeaderRequest,
};
use etcd_client::v3::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use etcd_client::v3::proto::mvccpb::KeyValue;
use etcd_client::v3::{Client, Cmp, CmpOp, Error, Options};

mod check;
mod concurrency;
pub mod etcdutl;
mod gotext;
mod mirror;
mod offline;
mod progress;
mod snapshot;
mod table;
mod watch;

/// etcdctl's exit code for errors.
const EXIT_ERROR: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "etcdctl",
    version,
    about = "A simple command line client for etcd3 (etcd-rs); ETCDCTL_API=2 for the v2 commands"
)]
struct Cli {
    /// gRPC endpoints, comma-separated.
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        global = true,
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    /// Output format: simple, json or fields.
    #[arg(long = "write-out", short = 'w', env = "ETCDCTL_WRITE_OUT", value_enum, default_value_t = Format::Simple, global = true)]
    write_out: Format,
    /// Verify certificates of TLS members with this CA bundle.
    #[arg(long, env = "ETCDCTL_CACERT", global = true)]
    cacert: Option<std::path::PathBuf>,
    /// Identify this client with this TLS certificate.
    #[arg(long, env = "ETCDCTL_CERT", global = true)]
    cert: Option<std::path::PathBuf>,
    /// Identify this client with this TLS key.
    #[arg(long = "key", id = "tls-key", env = "ETCDCTL_KEY", global = true)]
    key_file: Option<std::path::PathBuf>,
    /// username[:password] for authentication.
    #[arg(long, env = "ETCDCTL_USER", global = true)]
    user: Option<String>,
    /// Password for authentication (with --user).
    #[arg(long, env = "ETCDCTL_PASSWORD", global = true)]
    password: Option<String>,
    /// Timeout for short running commands (excluding dial timeout).
    #[arg(long = "command-timeout", env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    command_timeout: Duration,
    /// Whether `--command-timeout` was given (a snapshot save has no time limit otherwise).
    #[arg(skip)]
    command_timeout_set: bool,
    /// Dial timeout for a client connection.
    #[arg(long = "dial-timeout", env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration, global = true)]
    dial_timeout: Duration,
    /// Keepalive time for client connections.
    #[arg(long = "keepalive-time", env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s", value_parser = parse_duration, global = true)]
    keepalive_time: Duration,
    /// Keepalive timeout for client connections.
    #[arg(long = "keepalive-timeout", env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s", value_parser = parse_duration, global = true)]
    keepalive_timeout: Duration,
    /// Print byte strings as hex encoded strings.
    #[arg(long, env = "ETCDCTL_HEX", global = true)]
    hex: bool,
    /// Enable client-side debug logging (accepted; nothing more is logged).
    #[arg(long, env = "ETCDCTL_DEBUG", global = true)]
    debug: bool,
    /// Disable transport security for client connections (https:// endpoints use TLS).
    #[arg(long = "insecure-transport", env = "ETCDCTL_INSECURE_TRANSPORT", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, global = true)]
    insecure_transport: bool,
    /// Skip server certificate verification (CAUTION: for testing only).
    #[arg(
        long = "insecure-skip-tls-verify",
        env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY",
        global = true
    )]
    insecure_skip_tls_verify: bool,
    /// Domain name to query for SRV records describing cluster endpoints (not supported).
    #[arg(
        long = "discovery-srv",
        short = 'd',
        env = "ETCDCTL_DISCOVERY_SRV",
        global = true
    )]
    discovery_srv: Option<String>,
    /// Service name to query when using DNS discovery (not supported).
    #[arg(
        long = "discovery-srv-name",
        env = "ETCDCTL_DISCOVERY_SRV_NAME",
        global = true
    )]
    discovery_srv_name: Option<String>,
    /// Accept insecure SRV records describing cluster endpoints (accepted; no discovery).
    #[arg(long = "insecure-discovery", env = "ETCDCTL_INSECURE_DISCOVERY", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, global = true)]
    insecure_discovery: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Simple,
    Json,
    Fields,
    /// Tables (member list, endpoint and snapshot status only, as etcdctl).
    Table,
    /// The response's protobuf bytes (RPC answers only, as etcdctl).
    Protobuf,
}

impl Format {
    /// The name `-w` takes.
    fn name(self) -> &'static str {
        match self {
            Format::Simple => "simple",
            Format::Json => "json",
            Format::Fields => "fields",
            Format::Table => "table",
            Format::Protobuf => "protobuf",
        }
    }
}

/// etcdctl's exit code for an output format a command cannot print (`ExitBadFeature`).
const EXIT_BAD_FEATURE: u8 = 4;

/// etcdctl's refusal of a format for a command's answer (after the request was made, as
/// etcdctl refuses it when it prints).
fn unsupported(format: Format) -> Failure {
    Failure {
        message: format!("{} not supported as output format", format.name()),
        code: EXIT_BAD_FEATURE,
    }
}

/// `-w protobuf` prints an RPC answer's wire bytes (straight to standard output, after what
/// `out` holds so far: they are not text); `-w table`, and `-w fields` where etcdctl has no
/// fields printer for the answer (`has_fields` false), are refused. True when the answer is
/// printed (protobuf); false when the caller prints it in the other formats.
fn rpc_printed(
    out: &mut String,
    format: Format,
    answer: &impl prost::Message,
    has_fields: bool,
) -> Result<bool, Failure> {
    match format {
        Format::Protobuf => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(std::mem::take(out).as_bytes());
            let _ = stdout.write_all(&answer.encode_to_vec());
            let _ = stdout.flush();
            Ok(true)
        }
        Format::Table => Err(unsupported(format)),
        Format::Fields if !has_fields => Err(unsupported(format)),
        _ => Ok(false),
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Puts the given key into the store (the value from standard input if not given).
    Put {
        key: String,
        value: Option<String>,
        /// Lease ID (in hexadecimal) to attach to the key.
        #[arg(long, default_value = "0")]
        lease: String,
        /// Return the previous key-value pair before modification.
        #[arg(long = "prev-kv")]
        prev_kv: bool,
        /// Updates the key using its current value.
        #[arg(long = "ignore-value")]
        ignore_value: bool,
        /// Updates the key using its current lease.
        #[arg(long = "ignore-lease")]
        ignore_lease: bool,
    },
    /// Gets the key or a range of keys.
    Get {
        key: String,
        range_end: Option<String>,
        /// Linearizable(l) or Serializable(s).
        #[arg(long, default_value = "l")]
        consistency: String,
        /// Order of results; ASCEND or DESCEND (ASCEND by default).
        #[arg(long, default_value = "")]
        order: String,
        /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION.
        #[arg(long = "sort-by", default_value = "")]
        sort_by: String,
        /// Maximum number of results.
        #[arg(long, default_value_t = 0)]
        limit: i64,
        /// Get keys with matching prefix.
        #[arg(long)]
        prefix: bool,
        /// Get keys that are greater than or equal to the given key using byte compare.
        #[arg(long = "from-key")]
        from_key: bool,
        /// Specify the kv revision.
        #[arg(long, default_value_t = 0)]
        rev: i64,
        /// Get only the keys.
        #[arg(long = "keys-only")]
        keys_only: bool,
        /// Get only the count.
        #[arg(long = "count-only")]
        count_only: bool,
        /// Only write values when using the "simple" output format.
        #[arg(long = "print-value-only")]
        print_value_only: bool,
    },
    /// Removes the specified key or range of keys [key, range_end).
    Del {
        key: String,
        range_end: Option<String>,
        /// Delete keys with matching prefix.
        #[arg(long)]
        prefix: bool,
        /// Return deleted key-value pairs.
        #[arg(long = "prev-kv")]
        prev_kv: bool,
        /// Delete keys that are greater than or equal to the given key using byte compare.
        #[arg(long = "from-key")]
        from_key: bool,
    },
    /// Txn processes all the requests in one transaction (read from standard input).
    Txn {
        /// Input transaction in interactive mode.
        #[arg(short = 'i', long)]
        interactive: bool,
    },
    /// Compacts the event history in etcd.
    Compaction {
        /// The revision to compact at.
        revision: String,
        /// Wait for the compaction to physically remove all old revisions.
        #[arg(long)]
        physical: bool,
    },
    /// Watches events stream on keys or prefixes (`-- command args` runs a command for each
    /// event; `-i` reads `watch ...` lines from standard input).
    Watch {
        /// Interactive mode.
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Watch on a prefix if prefix is set.
        #[arg(long)]
        prefix: bool,
        /// Revision to start watching.
        #[arg(long, default_value_t = 0, value_parser = gotext::parse_int)]
        rev: i64,
        /// Get the previous key-value pair before the event happens.
        #[arg(long = "prev-kv")]
        prev_kv: bool,
        /// The key and optional range end.
        keys: Vec<String>,
        /// The command to run for each event (after `--`).
        #[arg(last = true)]
        exec: Vec<String>,
    },
    /// Endpoint related commands.
    Endpoint {
        /// Use all endpoints from the cluster member list.
        #[arg(long, global = true)]
        cluster: bool,
        #[command(subcommand)]
        cmd: EndpointCmd,
    },
    /// Lease related commands.
    Lease {
        #[command(subcommand)]
        cmd: LeaseCmd,
    },
    /// Membership related commands.
    Member {
        #[command(subcommand)]
        cmd: MemberCmd,
    },
    /// User related commands.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Role related commands.
    Role {
        #[command(subcommand)]
        cmd: RoleCmd,
    },
    /// Enable or disable authentication.
    Auth {
        #[command(subcommand)]
        cmd: AuthCmd,
    },
    /// Alarm related commands.
    Alarm {
        #[command(subcommand)]
        cmd: AlarmCmd,
    },
    /// Transfers leadership to another etcd cluster member.
    MoveLeader { args: Vec<String> },
    /// Defragments the storage of the etcd members with given endpoints.
    Defrag {
        /// Use all endpoints from the cluster member list.
        #[arg(long)]
        cluster: bool,
    },
    /// Acquires a named lock (and runs a command while holding it).
    Lock {
        /// Timeout for session.
        #[arg(long, default_value_t = 10)]
        ttl: i64,
        /// The lock name, then the command to run and its arguments (flags may come anywhere,
        /// as etcdctl takes them: a command's own flags go after `--`).
        args: Vec<String>,
    },
    /// Observes and participates in leader election.
    Elect {
        /// Observation mode.
        #[arg(short = 'l', long)]
        listen: bool,
        /// The election name and the proposal.
        args: Vec<String>,
    },
    /// Makes a mirror at the destination etcd cluster.
    MakeMirror(mirror::MirrorArgs),
    /// Migrates keys in a v2 store to a mvcc store (a stopped single member, in place).
    Migrate {
        /// Do not convert TTL keys.
        #[arg(long = "no-ttl")]
        no_ttl: bool,
        /// Path to the data directory.
        #[arg(long = "data-dir", default_value = "")]
        data_dir: String,
        /// Path to the WAL directory.
        #[arg(long = "wal-dir", default_value = "")]
        wal_dir: String,
        /// Path to the user-provided transformer program (not supported).
        #[arg(long, default_value = "")]
        transformer: String,
    },
    /// Commands for checking properties of the etcd cluster.
    Check {
        #[command(subcommand)]
        cmd: check::CheckCmd,
    },
    /// Manages etcd node snapshots.
    Snapshot {
        #[command(subcommand)]
        cmd: snapshot::SnapshotCmd,
    },
    /// Prints the version of etcdctl.
    Version,
}

#[derive(Subcommand, Debug)]
enum EndpointCmd {
    /// Prints out the status of endpoints specified in `--endpoints` flag.
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag.
    Health,
    /// Prints the KV history hash for each endpoint in --endpoints.
    Hashkv {
        /// Maximum revision to hash (default: all revisions).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Adds a new user (`name:password`, or the password from --new-user-password or input).
    Add {
        args: Vec<String>,
        /// Supply password from the command line flag.
        #[arg(long = "new-user-password", default_value = "")]
        new_user_password: String,
        /// Read password from stdin instead of interactive terminal.
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        interactive: bool,
        /// Create a user without password.
        #[arg(long = "no-password")]
        no_password: bool,
    },
    /// Deletes a user.
    Delete { args: Vec<String> },
    /// Gets detailed information of a user.
    Get {
        args: Vec<String>,
        /// Show permissions of roles granted to the user.
        #[arg(long)]
        detail: bool,
    },
    /// Lists all users.
    List { args: Vec<String> },
    /// Changes password of user.
    Passwd {
        args: Vec<String>,
        /// If true, read password from stdin instead of interactive terminal.
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        interactive: bool,
    },
    /// Grants a role to a user.
    GrantRole { args: Vec<String> },
    /// Revokes a role from a user.
    RevokeRole { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
enum RoleCmd {
    /// Adds a new role.
    Add { args: Vec<String> },
    /// Deletes a role.
    Delete { args: Vec<String> },
    /// Gets detailed information of a role.
    Get { args: Vec<String> },
    /// Lists all roles.
    List { args: Vec<String> },
    /// Grants a key to a role (read, write or readwrite).
    GrantPermission {
        args: Vec<String>,
        /// Grant a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Grant a permission of keys that are greater than or equal to the given key.
        #[arg(long = "from-key")]
        from_key: bool,
    },
    /// Revokes a key from a role.
    RevokePermission {
        args: Vec<String>,
        /// Revoke a prefix permission.
        #[arg(long)]
        prefix: bool,
        /// Revoke a permission of keys that are greater than or equal to the given key.
        #[arg(long = "from-key")]
        from_key: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AlarmCmd {
    /// Disarms all alarms.
    Disarm { args: Vec<String> },
    /// Lists all alarms.
    List { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
enum AuthCmd {
    /// Enables authentication.
    Enable { args: Vec<String> },
    /// Disables authentication.
    Disable { args: Vec<String> },
    /// Returns authentication status (etcdctl 3.5's).
    Status { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
enum MemberCmd {
    /// Lists all members in the cluster.
    List,
    /// Adds a member into the cluster.
    Add {
        args: Vec<String>,
        /// Comma separated peer URLs for the new member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
        /// Indicates if the new member is raft learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster.
    Remove { args: Vec<String> },
    /// Updates a member in the cluster.
    Update {
        args: Vec<String>,
        /// Comma separated peer URLs for the updated member.
        #[arg(long = "peer-urls", default_value = "")]
        peer_urls: String,
    },
    /// Promotes a non-voting member in the cluster.
    Promote { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
enum LeaseCmd {
    /// Creates leases (TTL in seconds).
    Grant { ttl: String },
    /// Revokes leases.
    Revoke { id: String },
    /// Get lease information.
    Timetolive {
        id: String,
        /// Get keys attached to this lease.
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases.
    List,
    /// Keeps leases alive (renew).
    KeepAlive {
        id: String,
        /// Resets the keep-alive time to its original value and exits immediately.
        #[arg(long)]
        once: bool,
    },
}

/// A Go duration (`5s`, `1m30s`, `500ms`), as etcdctl's timeout flags take.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match etcd_api::gocompat::parse_duration(s) {
        Some(n) if n >= 0 => Ok(Duration::from_nanos(n as u64)),
        _ => Err(format!("invalid duration {s:?}")),
    }
}

/// A command's failure, printed as etcdctl prints it.
#[derive(Debug)]
struct Failure {
    message: String,
    /// The exit code (etcdctl's: 1 for most errors).
    code: u8,
}

/// A failure with etcdctl's usual exit code.
fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: EXIT_ERROR,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        // etcd's own errors print their message; others as grpc-go prints a status.
        let message = match e {
            Error::Status(s) if s.message().starts_with("etcdserver: ") => s.message().to_string(),
            Error::Status(s) => {
                let code = match s.code() {
                    tonic::Code::Cancelled => "Canceled".to_string(),
                    other => format!("{other:?}"),
                };
                format!("rpc error: code = {code} desc = {}", s.message())
            }
            other => other.to_string(),
        };
        // etcdctl cannot even make its client: ExitBadConnection.
        let code = if message == "etcdserver: authentication failed, invalid user ID or password" {
            2
        } else {
            EXIT_ERROR
        };
        Failure { message, code }
    }
}

/// Runs the v3 command line with the process's arguments.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            cli.command_timeout_set = matches!(
                matches.value_source("command_timeout"),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            );
            cli
        }
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_ERROR),
            };
        }
    };
    HEX.store(cli.hex, std::sync::atomic::Ordering::Relaxed);
    if let Cmd::Lock { .. } | Cmd::Elect { .. } | Cmd::MakeMirror(_) = cli.command {
        // Hold until a signal: printing as they go.
        let runtime = match long_running() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        let result = runtime.block_on(async {
            match &cli.command {
                Cmd::Lock { ttl, args } => concurrency::lock(&cli, args, *ttl).await,
                Cmd::Elect { listen, args } => concurrency::elect(&cli, args, *listen).await,
                Cmd::MakeMirror(m) => mirror::make_mirror(&cli, m).await,
                _ => unreachable!("matched above"),
            }
        });
        return exit_with(result);
    }
    if let Cmd::Watch { .. } = cli.command {
        // Prints as it goes, until the server ends the watch (or the process is stopped).
        let runtime = match long_running() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        let Failure { message, code } = runtime.block_on(watch::watch(&cli));
        eprintln!("Error: {message}");
        return ExitCode::from(code);
    }
    if cli.discovery_srv.as_deref().is_some_and(|d| !d.is_empty()) {
        eprintln!(
            "Error: --discovery-srv: DNS SRV discovery is not supported by this etcdctl; \
             name the members with --endpoints"
        );
        return ExitCode::from(EXIT_ERROR);
    }
    if let Cmd::Version = cli.command {
        println!("etcdctl version: {}", env!("CARGO_PKG_VERSION"));
        println!("API version: 3.4");
        return ExitCode::SUCCESS;
    }
    // The offline snapshot commands: no client.
    let offline = match &cli.command {
        Cmd::Snapshot {
            cmd: snapshot::SnapshotCmd::Status { args },
        } => {
            let mut out = String::new();
            let r = snapshot::status(cli.write_out, args, &mut out);
            let _ = std::io::stdout().write_all(out.as_bytes());
            Some(r)
        }
        Cmd::Snapshot {
            cmd: snapshot::SnapshotCmd::Restore(args),
        } => Some(snapshot::restore(args)),
        Cmd::Migrate {
            no_ttl,
            data_dir,
            wal_dir,
            transformer,
        } => {
            let mut out = String::new();
            let r = offline::migrate(data_dir, wal_dir, *no_ttl, transformer, &mut out);
            let _ = std::io::stdout().write_all(out.as_bytes());
            Some(r)
        }
        _ => None,
    };
    if let Some(result) = offline {
        return exit_with(result);
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut out = String::new();
    let result = runtime.block_on(run(&cli, &mut out));
    let _ = std::io::stdout().write_all(out.as_bytes());
    exit_with(result)
}

/// The runtime of a command that prints as it goes (watch, lock, elect, make-mirror): tasks
/// run beside the printing (keep-alives, signal handlers).
fn long_running() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("Error: {e}");
            ExitCode::from(EXIT_ERROR)
        })
}

/// The exit code of a command's result, its failure printed as etcdctl prints one.
fn exit_with(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { message, code }) => {
            if !message.is_empty() {
                eprintln!("Error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn options(cli: &Cli) -> Result<Options, Failure> {
    let user = match (&cli.user, &cli.password) {
        (None, _) => None,
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (Some(u), None) => match u.split_once(':') {
            Some((name, password)) => Some((name.to_string(), password.to_string())),
            None => {
                // Asked once, however many clients the command makes.
                static ASKED: std::sync::OnceLock<Result<String, String>> =
                    std::sync::OnceLock::new();
                let password = ASKED.get_or_init(|| ask_password("Password: ")).clone();
                Some((u.clone(), password.map_err(fail)?))
            }
        },
    };
    // As etcd's client: no password, no authentication (the calls go without a token).
    let user = user.filter(|(name, password)| !name.is_empty() && !password.is_empty());
    // (--debug, --insecure-transport, --insecure-discovery and --discovery-srv-name change
    // nothing here: https:// endpoints use TLS, and there is no DNS discovery.)
    let _ = (
        cli.debug,
        cli.insecure_transport,
        cli.insecure_discovery,
        &cli.discovery_srv_name,
    );
    Ok(Options {
        ca_file: cli.cacert.clone(),
        client_cert: cli.cert.clone().zip(cli.key_file.clone()),
        user,
        dial_timeout: Some(cli.dial_timeout),
        keep_alive: Some((cli.keepalive_time, cli.keepalive_timeout)),
        insecure_skip_tls_verify: cli.insecure_skip_tls_verify,
    })
}

/// A client of endpoint `ep` alone (etcdctl's per-endpoint commands).
fn client_for(cli: &Cli, ep: &str) -> Result<Client, Failure> {
    Client::with_options([ep], options(cli)?).map_err(Failure::from)
}

/// The endpoints a per-endpoint command goes through: `--endpoints`, or with `--cluster`
/// every member's client URLs.
async fn endpoints_of(cli: &Cli, client: &Client, cluster: bool) -> Result<Vec<String>, Failure> {
    if !cluster {
        return Ok(cli.endpoints.clone());
    }
    let list = within(cli.command_timeout, client.member_list(Default::default())).await?;
    Ok(list
        .members
        .iter()
        .flat_map(|m| m.client_ur_ls.clone())
        .collect())
}

fn client(cli: &Cli) -> Result<Client, Failure> {
    Client::with_options(&cli.endpoints, options(cli)?).map_err(Failure::from)
}

async fn run(cli: &Cli, out: &mut String) -> Result<(), Failure> {
    let client = client(cli)?;
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    match &cli.command {
        Cmd::Txn { interactive } => {
            let prompt = |heading: &str| {
                if *interactive {
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{heading}");
                    let _ = stdout.flush();
                }
            };
            // etcdctl's ExitInvalidInput for a txn it cannot read.
            let request = read_txn(&mut std::io::stdin().lock(), prompt).map_err(|f| Failure {
                message: f.message,
                code: 3,
            })?;
            let r = within(timeout, client.txn(request)).await?;
            if !rpc_printed(out, format, &r, true)? {
                print_txn(out, format, &r);
            }
        }
        Cmd::Compaction { revision, physical } => {
            let rev: i64 = revision
                .parse()
                .map_err(|e| fail(format!("strconv.ParseInt: parsing {revision:?}: {e}")))?;
            let request = CompactionRequest {
                revision: rev,
                physical: *physical,
            };
            within(timeout, client.compact_request(request)).await?;
            out.push_str(&format!("compacted revision {rev}\n"));
        }
        Cmd::Endpoint { cluster, cmd } => {
            let endpoints = endpoints_of(cli, &client, *cluster).await?;
            endpoint(cli, cmd, &endpoints, out).await?;
        }
        Cmd::Lease { cmd } => lease(cli, &client, cmd, out).await?,
        Cmd::User { cmd } => user(cli, &client, cmd, out).await?,
        Cmd::Role { cmd } => role(cli, &client, cmd, out).await?,
        Cmd::Auth { cmd } => auth(cli, &client, cmd, out).await?,
        Cmd::Alarm { cmd } => {
            let (args, action, what) = match cmd {
                AlarmCmd::List { args } => (args, AlarmAction::Get, "list"),
                AlarmCmd::Disarm { args } => (args, AlarmAction::Deactivate, "disarm"),
            };
            if !args.is_empty() {
                return Err(bad_args(format!(
                    "alarm {what} command accepts no arguments"
                )));
            }
            let request = AlarmRequest {
                action: action as i32,
                member_id: 0,
                alarm: 0,
            };
            let r = within(timeout, client.alarm(request)).await?;
            if !rpc_printed(out, format, &r, true)? {
                print_alarms(out, format, &r);
            }
        }
        Cmd::Defrag { cluster } => {
            let endpoints = endpoints_of(cli, &client, *cluster).await?;
            let mut failures = 0;
            for ep in &endpoints {
                let one = client_for(cli, ep)?;
                match within(timeout, one.defragment(Default::default())).await {
                    Ok(_) => out.push_str(&format!("Finished defragmenting etcd member[{ep}]\n")),
                    Err(f) => {
                        eprintln!("Failed to defragment etcd member[{ep}] ({})", f.message);
                        failures += 1;
                    }
                }
            }
            if failures > 0 {
                // etcdctl says why on the lines above, and exits 1 without an Error line.
                return Err(Failure {
                    message: String::new(),
                    code: EXIT_ERROR,
                });
            }
        }
        Cmd::Member { cmd } => member(cli, &client, cmd, out).await?,
        Cmd::MoveLeader { args } => {
            let [target] = args.as_slice() else {
                return Err(bad_args("move-leader command needs 1 argument"));
            };
            let target = gotext::parse_uint(target, 16).map_err(bad_args)?;
            // Asked of the leader: found among the endpoints by their status.
            let mut leader = None;
            for ep in &cli.endpoints {
                let one = client_for(cli, ep)?;
                let st = within(timeout, one.status(Default::default())).await?;
                if st.header.is_some_and(|h| h.member_id == st.leader) {
                    leader = Some((one, st.leader));
                    break;
                }
            }
            let Some((leader, leader_id)) = leader else {
                return Err(bad_args(format!(
                    "no leader endpoint given at [{}]",
                    cli.endpoints.join(" ")
                )));
            };
            let request = MoveLeaderRequest { target_id: target };
            let r = within(timeout, leader.move_leader(request)).await?;
            if !rpc_printed(out, format, &r, false)? {
                if format == Format::Json {
                    print_done(out, format, &r, String::new(), false)?;
                } else {
                    out.push_str(&format!(
                        "Leadership transferred from {leader_id:x} to {target:x}\n"
                    ));
                }
            }
        }
        Cmd::Snapshot {
            cmd: snapshot::SnapshotCmd::Save { args },
        } => snapshot::save(cli, args, out).await?,
        Cmd::Check { cmd } => check::check(cli, cmd, out).await?,
        Cmd::Version
        | Cmd::Watch { .. }
        | Cmd::Snapshot { .. }
        | Cmd::Lock { .. }
        | Cmd::Elect { .. }
        | Cmd::MakeMirror(_)
        | Cmd::Migrate { .. } => {
            unreachable!("answered before")
        }
        cmd => match op_of(cmd, true)? {
            Operation::Put(request) => {
                let r = within(timeout, client.put_request(request)).await?;
                if !rpc_printed(out, format, &r, true)? {
                    print_put(out, format, &r);
                }
            }
            Operation::Range(request, shown) => {
                let r = within(timeout, client.range(request)).await?;
                if !rpc_printed(out, format, &r, true)? {
                    print_range(out, format, &r, shown);
                }
            }
            Operation::Delete(request) => {
                let r = within(timeout, client.delete(request)).await?;
                if !rpc_printed(out, format, &r, true)? {
                    print_delete(out, format, &r);
                }
            }
        },
    }
    Ok(())
}

/// `endpoint status|health|hashkv`, one endpoint at a time (each through a client of its own).
async fn endpoint(
    cli: &Cli,
    cmd: &EndpointCmd,
    endpoints: &[String],
    out: &mut String,
) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    let mut json = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut unhealthy = false;
    for ep in endpoints {
        let client = client_for(cli, ep)?;
        match cmd {
            EndpointCmd::Status => {
                let r = within(timeout, client.status(Default::default())).await?;
                let h = r.header.unwrap_or_default();
                let row = vec![
                    ep.clone(),
                    format!("{:x}", h.member_id),
                    r.version.clone(),
                    humanize_bytes(r.db_size as u64),
                    (r.leader == h.member_id).to_string(),
                    r.is_learner.to_string(),
                    r.raft_term.to_string(),
                    r.raft_index.to_string(),
                    r.raft_applied_index.to_string(),
                    r.errors.join(", "),
                ];
                match format {
                    Format::Simple => {
                        out.push_str(&row.join(", "));
                        out.push('\n');
                    }
                    Format::Table | Format::Protobuf => rows.push(row),
                    Format::Json => {
                        let mut o = JsonObject::new();
                        o.raw("header", &header_json(&r.header));
                        if !r.version.is_empty() {
                            o.raw("version", &json_string(&r.version));
                        }
                        for (name, v) in [
                            ("dbSize", r.db_size as u64),
                            ("leader", r.leader),
                            ("raftIndex", r.raft_index),
                            ("raftTerm", r.raft_term),
                            ("raftAppliedIndex", r.raft_applied_index),
                        ] {
                            if v != 0 {
                                o.raw(name, &v.to_string());
                            }
                        }
                        if !r.errors.is_empty() {
                            let errs: Vec<String> =
                                r.errors.iter().map(|e| json_string(e)).collect();
                            o.raw("errors", &format!("[{}]", errs.join(",")));
                        }
                        if r.db_size_in_use != 0 {
                            o.raw("dbSizeInUse", &r.db_size_in_use.to_string());
                        }
                        if r.is_learner {
                            o.raw("isLearner", "true");
                        }
                        json.push(format!(
                            "{{\"Endpoint\":{},\"Status\":{}}}",
                            json_string(ep),
                            o.finish()
                        ));
                    }
                    Format::Fields => {
                        header_fields(out, &r.header);
                        out.push_str(&format!(
                            "\"Version\" : {}\n",
                            go_quote(r.version.as_bytes())
                        ));
                        out.push_str(&format!("\"DBSize\" : {}\n", r.db_size));
                        out.push_str(&format!("\"Leader\" : {}\n", r.leader));
                        out.push_str(&format!("\"IsLearner\" : {}\n", r.is_learner));
                        out.push_str(&format!("\"RaftIndex\" : {}\n", r.raft_index));
                        out.push_str(&format!("\"RaftTerm\" : {}\n", r.raft_term));
                        out.push_str(&format!(
                            "\"RaftAppliedIndex\" : {}\n",
                            r.raft_applied_index
                        ));
                        out.push_str(&format!("\"Errors\" : [{}]\n", r.errors.join(" ")));
                        out.push_str(&format!("\"Endpoint\" : {}\n\n", go_quote(ep.as_bytes())));
                    }
                }
            }
            EndpointCmd::Health => {
                let started = std::time::Instant::now();
                let answer = within(timeout, client.get("health")).await;
                let took = go_duration(started.elapsed());
                // (Permission denied still went through consensus: healthy, as etcdctl says.)
                let error = match answer {
                    Ok(_) => None,
                    Err(f) if f.message == "etcdserver: permission denied" => None,
                    Err(f) => Some(f.message),
                };
                unhealthy |= error.is_some();
                match format {
                    Format::Table | Format::Protobuf => rows.push(vec![
                        ep.clone(),
                        error.is_none().to_string(),
                        took.clone(),
                        error.clone().unwrap_or_default(),
                    ]),
                    Format::Simple => match &error {
                        None => eprintln!(
                            "{ep} is healthy: successfully committed proposal: took = {took}"
                        ),
                        Some(e) => {
                            eprintln!("{ep} is unhealthy: failed to commit proposal: {e}")
                        }
                    },
                    Format::Json => {
                        let mut o = JsonObject::new();
                        o.raw("endpoint", &json_string(ep));
                        o.raw("health", &error.is_none().to_string());
                        o.raw("took", &json_string(&took));
                        if let Some(e) = &error {
                            o.raw("error", &json_string(e));
                        }
                        json.push(o.finish());
                    }
                    Format::Fields => out.push_str(&format!(
                        "\"Endpoint\" : {}\n\"Health\" : {}\n\"Took\" : {took}\n\"Error\" : {}\n\n",
                        go_quote(ep.as_bytes()),
                        error.is_none(),
                        error.as_deref().unwrap_or("")
                    )),
                }
            }
            EndpointCmd::Hashkv { rev } => {
                let request = HashKvRequest { revision: *rev };
                let r = within(timeout, client.hash_kv(request)).await?;
                match format {
                    Format::Simple => out.push_str(&format!("{ep}, {}\n", r.hash)),
                    Format::Table | Format::Protobuf => {
                        rows.push(vec![ep.clone(), r.hash.to_string()])
                    }
                    Format::Json => {
                        let mut o = JsonObject::new();
                        o.raw("header", &header_json(&r.header));
                        if r.hash != 0 {
                            o.raw("hash", &r.hash.to_string());
                        }
                        if r.compact_revision != 0 {
                            o.raw("compact_revision", &r.compact_revision.to_string());
                        }
                        json.push(format!(
                            "{{\"Endpoint\":{},\"HashKV\":{}}}",
                            json_string(ep),
                            o.finish()
                        ));
                    }
                    Format::Fields => {
                        header_fields(out, &r.header);
                        out.push_str(&format!(
                            "\"Endpoint\" : {}\n\"Hash\" : {}\n\n",
                            go_quote(ep.as_bytes()),
                            r.hash
                        ));
                    }
                }
            }
        }
    }
    match format {
        Format::Json => out.push_str(&format!("[{}]\n", json.join(","))),
        // As etcdctl: the answers are gathered, then refused.
        Format::Protobuf => return Err(unsupported(format)),
        Format::Table => {
            let header: &[&str] = match cmd {
                EndpointCmd::Status => &[
                    "endpoint",
                    "ID",
                    "version",
                    "db size",
                    "is leader",
                    "is learner",
                    "raft term",
                    "raft index",
                    "raft applied index",
                    "errors",
                ],
                EndpointCmd::Health => &["endpoint", "health", "took", "error"],
                EndpointCmd::Hashkv { .. } => &["endpoint", "hash"],
            };
            out.push_str(&table::render(header, &rows));
        }
        Format::Simple | Format::Fields => {}
    }
    if unhealthy {
        return Err(fail("unhealthy cluster"));
    }
    Ok(())
}

/// `lease grant|revoke|timetolive|list|keep-alive`.
async fn lease(
    cli: &Cli,
    client: &Client,
    cmd: &LeaseCmd,
    out: &mut String,
) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    let id_of = |id: &str| {
        i64::from_str_radix(id, 16)
            .map_err(|_| fail(format!("bad lease ID arg ({id}), expecting ID in Hex")))
    };
    match cmd {
        LeaseCmd::Grant { ttl } => {
            let ttl: i64 = ttl.parse().map_err(|_| fail(format!("bad TTL ({ttl})")))?;
            let r = within(timeout, client.lease_grant(ttl)).await?;
            if lease_printed(out, format, "LeaseGrantResponse", &r.header, true)? {
                return Ok(());
            }
            // (Go's LeaseGrantResponse has an Error field, empty.)
            let line = format!("lease {:016x} granted with TTL({}s)", r.id, r.ttl);
            print_id_ttl(
                out,
                format,
                &r.header,
                (r.id, r.ttl),
                ",\"Error\":\"\"",
                line,
            );
        }
        LeaseCmd::Revoke { id } => {
            let id = id_of(id)?;
            let r = within(timeout, client.lease_revoke(id))
                .await
                .map_err(|f| fail(format!("failed to revoke lease ({})", f.message)))?;
            lease_printed(out, format, "LeaseRevokeResponse", &r.header, false)?;
            match format {
                Format::Json => {
                    let mut o = JsonObject::new();
                    o.raw("header", &header_json(&r.header));
                    out.push_str(&o.finish());
                    out.push('\n');
                }
                Format::Fields => header_fields(out, &r.header),
                _ => out.push_str(&format!("lease {id:016x} revoked\n")),
            }
        }
        LeaseCmd::Timetolive { id, keys } => {
            let id = id_of(id)?;
            let r = within(timeout, client.lease_time_to_live(id, *keys)).await?;
            if lease_printed(out, format, "LeaseTimeToLiveResponse", &r.header, true)? {
                return Ok(());
            }
            match format {
                Format::Json => {
                    let keys = if r.keys.is_empty() {
                        "null".to_string()
                    } else {
                        let b64: Vec<String> = r
                            .keys
                            .iter()
                            .map(|k| {
                                format!(
                                    "\"{}\"",
                                    base64::engine::general_purpose::STANDARD.encode(k)
                                )
                            })
                            .collect();
                        format!("[{}]", b64.join(","))
                    };
                    out.push_str(&lease_json(
                        &r.header,
                        &[
                            ("id", r.id.to_string()),
                            ("ttl", r.ttl.to_string()),
                            ("granted-ttl", r.granted_ttl.to_string()),
                            ("keys", keys),
                        ],
                        "",
                    ));
                }
                Format::Fields => {
                    header_fields(out, &r.header);
                    out.push_str(&format!(
                        "\"ID\" : {}\n\"TTL\" : {}\n\"GrantedTTL\" : {}\n",
                        r.id, r.ttl, r.granted_ttl
                    ));
                    for k in &r.keys {
                        out.push_str(&format!("\"Key\" : {}\n", go_quote(k)));
                    }
                }
                _ if r.granted_ttl == 0 && r.ttl == -1 => {
                    out.push_str(&format!("lease {id:016x} already expired\n"))
                }
                _ => {
                    out.push_str(&format!(
                        "lease {id:016x} granted with TTL({}s), remaining({}s)",
                        r.granted_ttl, r.ttl
                    ));
                    if *keys {
                        let names: Vec<String> = r
                            .keys
                            .iter()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .collect();
                        out.push_str(&format!(", attached keys([{}])", names.join(" ")));
                    }
                    out.push('\n');
                }
            }
        }
        LeaseCmd::List => {
            let r = within(timeout, client.leases(Default::default())).await?;
            if lease_printed(out, format, "LeaseLeasesResponse", &r.header, true)? {
                return Ok(());
            }
            match format {
                Format::Json => {
                    let items: Vec<String> = r
                        .leases
                        .iter()
                        .map(|l| format!("{{\"id\":{}}}", l.id))
                        .collect();
                    out.push_str(&lease_json(
                        &r.header,
                        &[("leases", format!("[{}]", items.join(",")))],
                        "",
                    ));
                }
                Format::Fields => {
                    header_fields(out, &r.header);
                    for l in &r.leases {
                        out.push_str(&format!("\"ID\" : {}\n", l.id));
                    }
                }
                _ => {
                    out.push_str(&format!("found {} leases\n", r.leases.len()));
                    for l in &r.leases {
                        out.push_str(&format!("{:016x}\n", l.id));
                    }
                }
            }
        }
        LeaseCmd::KeepAlive { id, once } => {
            let id = id_of(id)?;
            if *once {
                let r = within(timeout, client.keep_alive_once(id))
                    .await
                    .map_err(|f| Failure {
                        message: f.message,
                        // etcdctl's ExitBadConnection.
                        code: 2,
                    })?;
                if !lease_printed(out, format, "LeaseKeepAliveResponse", &r.header, true)? {
                    print_keep_alive(out, format, id, &r);
                }
                return Ok(());
            }
            // Each renewal printed as it comes, until the lease is gone.
            let mut keeper = client.keep_alive(id);
            while let Some(r) = keeper.next().await {
                let mut text = String::new();
                if !lease_printed(&mut text, format, "LeaseKeepAliveResponse", &r.header, true)? {
                    print_keep_alive(&mut text, format, id, &r);
                }
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
            if format == Format::Simple {
                out.push_str(&format!("lease {id:016x} expired or revoked.\n"));
            }
        }
    }
    Ok(())
}

/// What etcdctl does with a lease answer in `table` (refused) and `protobuf`: its printer is
/// handed the Go client's own answer type, which marshals as the header it embeds
/// (`marshals`), or not at all (a revoke's: refused with Go's `%v` of the answer, the
/// header's compact text form in braces). True when the answer is printed.
fn lease_printed(
    out: &mut String,
    format: Format,
    answer: &str,
    header: &Option<ResponseHeader>,
    marshals: bool,
) -> Result<bool, Failure> {
    match format {
        Format::Protobuf if marshals => rpc_printed(out, format, &header.unwrap_or_default(), true),
        Format::Protobuf => Err(Failure {
            message: format!(
                "marshal unsupported for type clientv3.{answer} ({{{}}})",
                header
                    .as_ref()
                    .map_or("<nil>".to_string(), gotext::header_text)
            ),
            code: EXIT_BAD_FEATURE,
        }),
        Format::Table => Err(unsupported(format)),
        _ => Ok(false),
    }
}

/// A lease answer as etcdctl's JSON shows the client's answer types: the header's fields at
/// the top level, then `fields` (raw JSON values), then `tail`.
fn lease_json(header: &Option<ResponseHeader>, fields: &[(&str, String)], tail: &str) -> String {
    let header = header_json(header);
    let mut parts: Vec<String> = Vec::new();
    let inner = header.trim_start_matches('{').trim_end_matches('}');
    if !inner.is_empty() {
        parts.push(inner.to_string());
    }
    for (name, value) in fields {
        parts.push(format!("\"{name}\":{value}"));
    }
    format!("{{{}{tail}}}\n", parts.join(","))
}

/// One keep-alive answer.
fn print_keep_alive(
    out: &mut String,
    format: Format,
    id: i64,
    r: &etcd_client::v3::proto::etcdserverpb::LeaseKeepAliveResponse,
) {
    let line = format!("lease {id:016x} keepalived with TTL({})", r.ttl);
    print_id_ttl(out, format, &r.header, (r.id, r.ttl), "", line);
}

/// A lease grant's or renewal's answer: its id and TTL in the json and fields forms (`tail`
/// closes the JSON), `line` in the simple one.
fn print_id_ttl(
    out: &mut String,
    format: Format,
    header: &Option<ResponseHeader>,
    (id, ttl): (i64, i64),
    tail: &str,
    line: String,
) {
    match format {
        Format::Json => out.push_str(&lease_json(
            header,
            &[("ID", id.to_string()), ("TTL", ttl.to_string())],
            tail,
        )),
        Format::Fields => {
            header_fields(out, header);
            out.push_str(&format!("\"ID\" : {id}\n\"TTL\" : {ttl}\n"));
        }
        _ => {
            out.push_str(&line);
            out.push('\n');
        }
    }
}

/// The one argument `args` must hold, or etcdctl's usage error `usage`.
fn one_arg<'a>(args: &'a [String], usage: &str) -> Result<&'a String, Failure> {
    match args {
        [arg] => Ok(arg),
        _ => Err(bad_args(usage)),
    }
}

/// etcdctl's usage errors (exit 128).
fn bad_args(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 128,
    }
}

/// An RPC answer, and the header it carries.
trait Answer: prost::Message {
    /// The answer's header.
    fn header(&self) -> &Option<ResponseHeader>;
}

macro_rules! answers {
    ($($t:ty),* $(,)?) => {
        $(impl Answer for $t {
            fn header(&self) -> &Option<ResponseHeader> {
                &self.header
            }
        })*
    };
}

answers!(
    pb::MoveLeaderResponse,
    pb::AuthUserAddResponse,
    pb::AuthUserDeleteResponse,
    pb::AuthUserChangePasswordResponse,
    pb::AuthUserGrantRoleResponse,
    pb::AuthUserRevokeRoleResponse,
    pb::AuthRoleAddResponse,
    pb::AuthRoleDeleteResponse,
    pb::AuthRoleGrantPermissionResponse,
    pb::AuthRoleRevokePermissionResponse,
    pb::AuthEnableResponse,
    pb::AuthDisableResponse,
    pb::MemberRemoveResponse,
    pb::MemberUpdateResponse,
    pb::MemberPromoteResponse,
);

/// A header-only answer as JSON (`-w json` of most auth commands), or `simple`'s line.
fn print_done(
    out: &mut String,
    format: Format,
    r: &impl Answer,
    line: String,
    has_fields: bool,
) -> Result<(), Failure> {
    let header = r.header();
    if rpc_printed(out, format, r, has_fields)? {
        return Ok(());
    }
    match format {
        Format::Json => {
            let mut o = JsonObject::new();
            // (Go leaves out a header the answer does not have: etcd's MoveLeader sends none.)
            if header.is_some() {
                o.raw("header", &header_json(header));
            }
            out.push_str(&o.finish());
            out.push('\n');
        }
        Format::Fields => header_fields(out, header),
        _ => {
            out.push_str(&line);
            out.push('\n');
        }
    }
    Ok(())
}

/// Asks for a password as etcdctl does (speakeasy's `Ask`): `prompt` on standard output, the
/// terminal's echo off (through `stty`, as speakeasy does; on a non-terminal `stty` says so on
/// standard error and the line is read all the same) while a line is read from standard
/// input, then a newline.
fn ask_password(prompt: &str) -> Result<String, String> {
    let stty = |arg: &str| {
        use std::os::unix::process::CommandExt as _;
        // (Named `stty` as speakeasy names it, which is how stty signs its complaints.)
        let _ = std::process::Command::new("/bin/stty")
            .arg0("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit())
            .status();
    };
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    stty("echo");
    println!();
    read.map_err(|e| format!("failed during password entry: {e}"))?;
    Ok(line.trim().to_string())
}

/// etcdctl's `readPasswordInteractive`: the password of `name`, asked twice.
fn password_of(name: &str) -> Result<String, Failure> {
    let asked = |prompt: String| {
        ask_password(&prompt).map_err(|e| bad_args(format!("failed to ask password: {e}")))
    };
    let first = asked(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(bad_args("empty password"));
    }
    let again = asked(format!("Type password of {name} again for confirmation: "))?;
    if first != again {
        return Err(bad_args("given passwords are different"));
    }
    Ok(first)
}

/// A word read from standard input (Go's `fmt.Scanf("%s")`).
fn read_word() -> String {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    input.split_whitespace().next().unwrap_or("").to_string()
}

async fn user(cli: &Cli, client: &Client, cmd: &UserCmd, out: &mut String) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    match cmd {
        UserCmd::Add {
            args,
            new_user_password,
            interactive,
            no_password,
        } => {
            let arg = one_arg(args, "user add command requires user name as its argument")?;
            let (name, password) = if *no_password {
                (arg.clone(), String::new())
            } else if !new_user_password.is_empty() {
                (arg.clone(), new_user_password.clone())
            } else if let Some((name, password)) = arg.split_once(':') {
                if name.is_empty() {
                    return Err(bad_args("empty user name is not allowed"));
                }
                (name.to_string(), password.to_string())
            } else if *interactive {
                (arg.clone(), password_of(arg)?)
            } else {
                (arg.clone(), read_word())
            };
            let request = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(etcd_client::v3::proto::authpb::UserAddOptions {
                    no_password: *no_password,
                }),
                ..Default::default()
            };
            let r = within(timeout, client.user_add(request)).await?;
            print_done(out, format, &r, format!("User {name} created"), true)?;
        }
        UserCmd::Delete { args } => {
            let name = one_arg(
                args,
                "user delete command requires user name as its argument",
            )?;
            let request = AuthUserDeleteRequest { name: name.clone() };
            let r = within(timeout, client.user_delete(request)).await?;
            print_done(out, format, &r, format!("User {name} deleted"), true)?;
        }
        UserCmd::Get { args, detail } => {
            let name = one_arg(args, "user get command requires user name as its argument")?;
            let request = AuthUserGetRequest { name: name.clone() };
            let r = within(timeout, client.user_get(request)).await?;
            if *detail {
                out.push_str(&format!("User: {name}\n"));
                for role_name in &r.roles {
                    out.push('\n');
                    let request = AuthRoleGetRequest {
                        role: role_name.clone(),
                    };
                    let role = within(timeout, client.role_get(request)).await?;
                    if !rpc_printed(out, format, &role, true)? {
                        print_role(out, format, role_name, &role);
                    }
                }
            } else if rpc_printed(out, format, &r, false)? {
            } else if format == Format::Json {
                let mut o = JsonObject::new();
                o.raw("header", &header_json(&r.header));
                if !r.roles.is_empty() {
                    o.raw("roles", &json_strings(&r.roles));
                }
                out.push_str(&o.finish());
                out.push('\n');
            } else {
                out.push_str(&format!("User: {name}\nRoles:"));
                for role in &r.roles {
                    out.push_str(&format!(" {role}"));
                }
                out.push('\n');
            }
        }
        UserCmd::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("user list command requires no arguments"));
            }
            let r = within(timeout, client.user_list(Default::default())).await?;
            if !rpc_printed(out, format, &r, false)? {
                print_names(out, format, &r.header, "users", &r.users);
            }
        }
        UserCmd::Passwd { args, interactive } => {
            let name = one_arg(
                args,
                "user passwd command requires user name as its argument",
            )?;
            let password = if *interactive {
                password_of(name)?
            } else {
                read_word()
            };
            let request = AuthUserChangePasswordRequest {
                name: name.clone(),
                password,
                ..Default::default()
            };
            let r = within(timeout, client.user_change_password(request)).await?;
            print_done(out, format, &r, "Password updated".into(), true)?;
        }
        UserCmd::GrantRole { args } => {
            let [name, role] = args.as_slice() else {
                return Err(bad_args(
                    "user grant command requires user name and role name as its argument",
                ));
            };
            let request = AuthUserGrantRoleRequest {
                user: name.clone(),
                role: role.clone(),
            };
            let r = within(timeout, client.user_grant_role(request)).await?;
            print_done(
                out,
                format,
                &r,
                format!("Role {role} is granted to user {name}"),
                true,
            )?;
        }
        UserCmd::RevokeRole { args } => {
            let [name, role] = args.as_slice() else {
                return Err(bad_args(
                    "user revoke-role requires user name and role name as its argument",
                ));
            };
            let request = AuthUserRevokeRoleRequest {
                name: name.clone(),
                role: role.clone(),
            };
            let r = within(timeout, client.user_revoke_role(request)).await?;
            print_done(
                out,
                format,
                &r,
                format!("Role {role} is revoked from user {name}"),
                true,
            )?;
        }
    }
    Ok(())
}

/// The key and range end of a permission given as etcdctl's arguments and flags.
fn perm_range(args: &[String], prefix: bool, from_key: bool) -> Result<(String, String), Failure> {
    let key = args[0].clone();
    if key.is_empty() {
        if prefix && from_key {
            return Err(bad_args(
                "--from-key and --prefix flags are mutually exclusive",
            ));
        }
        let end = if prefix || from_key { "\0" } else { "" };
        return Ok(("\0".into(), end.into()));
    }
    if prefix && from_key {
        return Err(bad_args(
            "--from-key and --prefix flags are mutually exclusive",
        ));
    }
    if prefix {
        if args.len() > 1 {
            return Err(bad_args("unexpected endkey argument with --prefix flag"));
        }
        let end = etcd_client::v3::prefix_end(key.as_bytes());
        return Ok((key, String::from_utf8_lossy(&end).into_owned()));
    }
    if from_key {
        if args.len() > 1 {
            return Err(bad_args("unexpected endkey argument with --from-key flag"));
        }
        return Ok((key, "\0".into()));
    }
    Ok((key, args.get(1).cloned().unwrap_or_default()))
}

/// `role get` in etcdctl's simple or json form.
fn print_role(out: &mut String, format: Format, name: &str, r: &AuthRoleGetResponse) {
    if format == Format::Json {
        let perms: Vec<String> = r
            .perm
            .iter()
            .map(|p| {
                let b64 = |b: &[u8]| {
                    format!(
                        "\"{}\"",
                        base64::engine::general_purpose::STANDARD.encode(b)
                    )
                };
                let mut o = JsonObject::new();
                if p.perm_type != 0 {
                    o.raw("permType", &p.perm_type.to_string());
                }
                if !p.key.is_empty() {
                    o.raw("key", &b64(&p.key));
                }
                if !p.range_end.is_empty() {
                    o.raw("range_end", &b64(&p.range_end));
                }
                o.finish()
            })
            .collect();
        let mut o = JsonObject::new();
        o.raw("header", &header_json(&r.header));
        if !perms.is_empty() {
            o.raw("perm", &format!("[{}]", perms.join(",")));
        }
        out.push_str(&o.finish());
        out.push('\n');
        return;
    }
    if format == Format::Fields {
        header_fields(out, &r.header);
        for p in &r.perm {
            let kind = etcd_client::v3::proto::authpb::permission::Type::try_from(p.perm_type)
                .map_or("READ", |t| t.as_str_name());
            // (Go's Println puts a space between its operands: two after the colon.)
            out.push_str(&format!("\"PermType\" :  {kind}\n"));
            out.push_str(&format!("\"Key\" : {}\n", go_quote(&p.key)));
            out.push_str(&format!("\"RangeEnd\" : {}\n", go_quote(&p.range_end)));
        }
        return;
    }
    out.push_str(&format!("Role {name}\nKV Read:\n"));
    let line = |p: &etcd_client::v3::proto::authpb::Permission| -> String {
        let key = String::from_utf8_lossy(&p.key).into_owned();
        if p.range_end.is_empty() {
            return format!("\t{key}\n");
        }
        let end = String::from_utf8_lossy(&p.range_end).into_owned();
        let mut l = if end != "\0" {
            format!("\t[{key}, {end})")
        } else {
            format!("\t[{key}, <open ended>")
        };
        if etcd_client::v3::prefix_end(&p.key) == p.range_end.as_ref() {
            l.push_str(&format!(" (prefix {key})"));
        }
        l.push('\n');
        l
    };
    // READ 0, WRITE 1, READWRITE 2.
    for p in r
        .perm
        .iter()
        .filter(|p| p.perm_type == 0 || p.perm_type == 2)
    {
        out.push_str(&line(p));
    }
    out.push_str("KV Write:\n");
    for p in r
        .perm
        .iter()
        .filter(|p| p.perm_type == 1 || p.perm_type == 2)
    {
        out.push_str(&line(p));
    }
}

async fn role(cli: &Cli, client: &Client, cmd: &RoleCmd, out: &mut String) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    match cmd {
        RoleCmd::Add { args } => {
            let name = one_arg(args, "role add command requires role name as its argument")?;
            let request = AuthRoleAddRequest { name: name.clone() };
            let r = within(timeout, client.role_add(request)).await?;
            print_done(out, format, &r, format!("Role {name} created"), true)?;
        }
        RoleCmd::Delete { args } => {
            let name = one_arg(
                args,
                "role delete command requires role name as its argument",
            )?;
            let request = AuthRoleDeleteRequest { role: name.clone() };
            let r = within(timeout, client.role_delete(request)).await?;
            print_done(out, format, &r, format!("Role {name} deleted"), true)?;
        }
        RoleCmd::Get { args } => {
            let name = one_arg(args, "role get command requires role name as its argument")?;
            let request = AuthRoleGetRequest { role: name.clone() };
            let r = within(timeout, client.role_get(request)).await?;
            if !rpc_printed(out, format, &r, true)? {
                print_role(out, format, name, &r);
            }
        }
        RoleCmd::List { args } => {
            if !args.is_empty() {
                return Err(bad_args("role list command requires no arguments"));
            }
            let r = within(timeout, client.role_list(Default::default())).await?;
            if !rpc_printed(out, format, &r, true)? {
                print_names(out, format, &r.header, "roles", &r.roles);
            }
        }
        RoleCmd::GrantPermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 3 {
                return Err(bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let perm_type = match args[1].to_uppercase().as_str() {
                "READ" => 0,
                "WRITE" => 1,
                "READWRITE" => 2,
                _ => return Err(bad_args(format!("invalid permission type: {}", args[1]))),
            };
            let (key, range_end) = perm_range(&args[2..], *prefix, *from_key)?;
            let request = AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(etcd_client::v3::proto::authpb::Permission {
                    perm_type,
                    key: key.into(),
                    range_end: range_end.into(),
                }),
            };
            let r = within(timeout, client.role_grant_permission(request)).await?;
            print_done(out, format, &r, format!("Role {} updated", args[0]), true)?;
        }
        RoleCmd::RevokePermission {
            args,
            prefix,
            from_key,
        } => {
            if args.len() < 2 {
                return Err(bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let (key, range_end) = perm_range(&args[1..], *prefix, *from_key)?;
            let request = AuthRoleRevokePermissionRequest {
                role: args[0].clone(),
                key: key.into(),
                range_end: range_end.clone().into(),
            };
            let r = within(timeout, client.role_revoke_permission(request)).await?;
            let shown_key = &args[1];
            let line = if range_end.is_empty() {
                format!(
                    "Permission of key {shown_key} is revoked from role {}",
                    args[0]
                )
            } else if range_end != "\0" {
                format!(
                    "Permission of range [{shown_key}, {range_end}) is revoked from role {}",
                    args[0]
                )
            } else {
                format!(
                    "Permission of range [{shown_key}, <open ended> is revoked from role {}",
                    args[0]
                )
            };
            print_done(out, format, &r, line, true)?;
        }
    }
    Ok(())
}

async fn auth(cli: &Cli, client: &Client, cmd: &AuthCmd, out: &mut String) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    match cmd {
        AuthCmd::Enable { args } => {
            if !args.is_empty() {
                return Err(bad_args(
                    "auth enable command does not accept any arguments",
                ));
            }
            // etcdctl makes the root role (and grants it to root) when only it is missing.
            loop {
                match within(timeout, client.auth_enable(Default::default())).await {
                    Ok(_) => break,
                    Err(f) if f.message == "etcdserver: root user does not have root role" => {
                        within(
                            timeout,
                            client.role_add(AuthRoleAddRequest {
                                name: "root".into(),
                            }),
                        )
                        .await?;
                        within(
                            timeout,
                            client.user_grant_role(AuthUserGrantRoleRequest {
                                user: "root".into(),
                                role: "root".into(),
                            }),
                        )
                        .await?;
                    }
                    Err(f) => return Err(f),
                }
            }
            out.push_str("Authentication Enabled\n");
        }
        AuthCmd::Disable { args } => {
            if !args.is_empty() {
                return Err(bad_args(
                    "auth disable command does not accept any arguments",
                ));
            }
            within(timeout, client.auth_disable(Default::default())).await?;
            out.push_str("Authentication Disabled\n");
        }
        AuthCmd::Status { args } => {
            if !args.is_empty() {
                return Err(bad_args(
                    "auth status command does not accept any arguments",
                ));
            }
            let r = within(timeout, client.auth_status(Default::default())).await?;
            if rpc_printed(out, cli.write_out, &r, true)? {
                return Ok(());
            }
            match cli.write_out {
                Format::Json => {
                    let mut o = JsonObject::new();
                    o.raw("header", &header_json(&r.header));
                    if r.enabled {
                        o.raw("enabled", "true");
                    }
                    if r.auth_revision != 0 {
                        o.raw("authRevision", &r.auth_revision.to_string());
                    }
                    out.push_str(&o.finish());
                    out.push('\n');
                }
                Format::Fields => {
                    header_fields(out, &r.header);
                    out.push_str(&format!(
                        "\"Enabled\" : {}\n\"AuthRevision\" : {}\n",
                        r.enabled, r.auth_revision
                    ));
                }
                _ => out.push_str(&format!(
                    "Authentication Status: {}\nAuthRevision: {}\n",
                    r.enabled, r.auth_revision
                )),
            }
        }
    }
    Ok(())
}

/// `user list` and `role list`: one name a line, or the JSON with the names as `field`.
fn print_names(
    out: &mut String,
    format: Format,
    header: &Option<ResponseHeader>,
    field: &str,
    names: &[String],
) {
    if format == Format::Json {
        let mut o = JsonObject::new();
        o.raw("header", &header_json(header));
        if !names.is_empty() {
            o.raw(field, &json_strings(names));
        }
        out.push_str(&o.finish());
        out.push('\n');
    } else if format == Format::Fields {
        // (Only `role list` has a fields form.)
        header_fields(out, header);
        out.push_str("\"Roles\" :");
        for n in names {
            out.push_str(&format!(" {}", go_quote(n.as_bytes())));
        }
        out.push('\n');
    } else {
        for n in names {
            out.push_str(&format!("{n}\n"));
        }
    }
}

fn json_strings(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(","))
}

/// Checks peer URLs as etcd's client does before adding or updating a member.
fn check_peer_urls(urls: &[String]) -> Result<(), Failure> {
    for u in urls {
        let Some((scheme, rest)) = u.split_once("://") else {
            return Err(fail(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            )));
        };
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            return Err(fail(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            )));
        }
        if rest.contains('/') {
            return Err(fail(format!("URL must not contain a path: {u}")));
        }
        if !rest.contains(':') {
            return Err(fail(format!(
                "URL address does not have the form \"host:port\": {u}"
            )));
        }
    }
    Ok(())
}

/// A member id argument (hexadecimal).
fn member_id(arg: &str) -> Result<u64, Failure> {
    gotext::parse_uint(arg, 16)
        .map_err(|e| bad_args(format!("bad member ID arg ({e}), expecting ID in Hex")))
}

/// `member add|remove|update|promote`.
async fn member(
    cli: &Cli,
    client: &Client,
    cmd: &MemberCmd,
    out: &mut String,
) -> Result<(), Failure> {
    let timeout = cli.command_timeout;
    let format = cli.write_out;
    let cluster_id = |h: &Option<ResponseHeader>| h.map_or(0, |h| h.cluster_id);
    match cmd {
        MemberCmd::List => {
            let r = within(timeout, client.member_list(Default::default())).await?;
            if format == Format::Table || !rpc_printed(out, format, &r, true)? {
                print_members(out, format, &r);
            }
        }
        MemberCmd::Add {
            args,
            peer_urls,
            learner,
        } => {
            let name = match args.as_slice() {
                [] => return Err(bad_args("member name not provided")),
                [name] => name.clone(),
                many => {
                    let mut e = String::from("too many arguments");
                    for a in many {
                        if a.to_lowercase().starts_with("http") {
                            e.push_str(&format!(", did you mean --peer-urls={a}"));
                        }
                    }
                    return Err(bad_args(e));
                }
            };
            if peer_urls.is_empty() {
                return Err(bad_args("member peer urls not provided"));
            }
            let urls: Vec<String> = peer_urls.split(',').map(String::from).collect();
            check_peer_urls(&urls)?;
            let request = MemberAddRequest {
                peer_ur_ls: urls,
                is_learner: *learner,
            };
            let r = within(timeout, client.member_add(request)).await?;
            if rpc_printed(out, format, &r, false)? {
                return Ok(());
            }
            let new = r.member.clone().unwrap_or_default();
            if format == Format::Json {
                let mut o = JsonObject::new();
                o.raw("header", &header_json(&r.header));
                o.raw("member", &member_json(&new));
                if !r.members.is_empty() {
                    let all: Vec<String> = r.members.iter().map(member_json).collect();
                    o.raw("members", &format!("[{}]", all.join(",")));
                }
                out.push_str(&o.finish());
                out.push('\n');
                return Ok(());
            }
            out.push_str(&format!(
                "Member {:16x} added to cluster {:16x}\n",
                new.id,
                cluster_id(&r.header)
            ));
            let mut conf = Vec::new();
            for m in &r.members {
                for u in &m.peer_ur_ls {
                    let n = if m.id == new.id { &name } else { &m.name };
                    conf.push(format!("{n}={u}"));
                }
            }
            out.push('\n');
            out.push_str(&format!("ETCD_NAME={}\n", go_quote(name.as_bytes())));
            out.push_str(&format!(
                "ETCD_INITIAL_CLUSTER={}\n",
                go_quote(conf.join(",").as_bytes())
            ));
            out.push_str(&format!(
                "ETCD_INITIAL_ADVERTISE_PEER_URLS={}\n",
                go_quote(peer_urls.as_bytes())
            ));
            out.push_str("ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n");
        }
        MemberCmd::Remove { args } => {
            let id = member_id(one_arg(args, "member ID is not provided")?)?;
            let r = within(timeout, client.member_remove(MemberRemoveRequest { id })).await?;
            print_member_change(out, format, &r, &r.members, id, "removed from")?;
        }
        MemberCmd::Update { args, peer_urls } => {
            let id = member_id(one_arg(args, "member ID is not provided")?)?;
            if peer_urls.is_empty() {
                return Err(bad_args("member peer urls not provided"));
            }
            let urls: Vec<String> = peer_urls.split(',').map(String::from).collect();
            check_peer_urls(&urls)?;
            let request = MemberUpdateRequest {
                id,
                peer_ur_ls: urls,
            };
            let r = within(timeout, client.member_update(request)).await?;
            print_member_change(out, format, &r, &r.members, id, "updated in")?;
        }
        MemberCmd::Promote { args } => {
            let id = member_id(one_arg(args, "member ID is not provided")?)?;
            let r = within(timeout, client.member_promote(MemberPromoteRequest { id })).await?;
            print_member_change(out, format, &r, &r.members, id, "promoted in")?;
        }
    }
    Ok(())
}

/// `alarm list` and `alarm disarm`'s answer in etcdctl's forms.
fn print_alarms(
    out: &mut String,
    format: Format,
    r: &etcd_client::v3::proto::etcdserverpb::AlarmResponse,
) {
    let kind = |a: i32| AlarmType::try_from(a).map_or("NONE", |t| t.as_str_name());
    match format {
        Format::Json => {
            let alarms: Vec<String> = r
                .alarms
                .iter()
                .map(|a| {
                    let mut o = JsonObject::new();
                    if a.member_id != 0 {
                        o.raw("memberID", &a.member_id.to_string());
                    }
                    if a.alarm != 0 {
                        o.raw("alarm", &a.alarm.to_string());
                    }
                    o.finish()
                })
                .collect();
            let mut o = JsonObject::new();
            // (etcd's alarm answers carry no header: then there is none to show.)
            if r.header.is_some() {
                o.raw("header", &header_json(&r.header));
            }
            if !alarms.is_empty() {
                o.raw("alarms", &format!("[{}]", alarms.join(",")));
            }
            out.push_str(&o.finish());
            out.push('\n');
        }
        Format::Fields => {
            // (Without a header etcdctl 3.4 crashes here; this prints the alarms.)
            if r.header.is_some() {
                header_fields(out, &r.header);
            }
            for a in &r.alarms {
                out.push_str(&format!(
                    "\"MemberID\" : {}\n\"AlarmType\" : {}\n\n",
                    a.member_id,
                    kind(a.alarm)
                ));
            }
        }
        _ => {
            for a in &r.alarms {
                out.push_str(&format!(
                    "memberID:{} alarm:{} \n",
                    a.member_id,
                    kind(a.alarm)
                ));
            }
        }
    }
}

/// `member remove|update|promote`'s answer `r`: in JSON the header and the members now,
/// otherwise `Member ID {what} cluster ID` (or the format's header-only form).
fn print_member_change(
    out: &mut String,
    format: Format,
    r: &impl Answer,
    members: &[Member],
    id: u64,
    what: &str,
) -> Result<(), Failure> {
    if format != Format::Json {
        let line = format!(
            "Member {id:16x} {what} cluster {:16x}",
            r.header().map_or(0, |h| h.cluster_id)
        );
        return print_done(out, format, r, line, false);
    }
    let mut o = JsonObject::new();
    o.raw("header", &header_json(r.header()));
    if !members.is_empty() {
        let all: Vec<String> = members.iter().map(member_json).collect();
        o.raw("members", &format!("[{}]", all.join(",")));
    }
    out.push_str(&o.finish());
    out.push('\n');
    Ok(())
}

/// A member as etcdctl's JSON shows it.
fn member_json(m: &Member) -> String {
    let mut o = JsonObject::new();
    if m.id != 0 {
        o.raw("ID", &m.id.to_string());
    }
    if !m.name.is_empty() {
        o.raw("name", &json_string(&m.name));
    }
    if !m.peer_ur_ls.is_empty() {
        o.raw("peerURLs", &json_strings(&m.peer_ur_ls));
    }
    if !m.client_ur_ls.is_empty() {
        o.raw("clientURLs", &json_strings(&m.client_ur_ls));
    }
    if m.is_learner {
        o.raw("isLearner", "true");
    }
    o.finish()
}

/// `member list` in etcdctl's forms.
fn print_members(out: &mut String, format: Format, r: &MemberListResponse) {
    let rows = || -> Vec<Vec<String>> {
        r.members
            .iter()
            .map(|m| {
                vec![
                    format!("{:x}", m.id),
                    if m.name.is_empty() {
                        "unstarted"
                    } else {
                        "started"
                    }
                    .to_string(),
                    m.name.clone(),
                    m.peer_ur_ls.join(","),
                    m.client_ur_ls.join(","),
                    m.is_learner.to_string(),
                ]
            })
            .collect()
    };
    match format {
        Format::Simple => {
            for row in rows() {
                out.push_str(&row.join(", "));
                out.push('\n');
            }
        }
        Format::Table => out.push_str(&table::render(
            &[
                "ID",
                "Status",
                "Name",
                "Peer Addrs",
                "Client Addrs",
                "Is Learner",
            ],
            &rows(),
        )),
        // (Printed by `rpc_printed`.)
        Format::Protobuf => {}
        Format::Json => {
            let members: Vec<String> = r.members.iter().map(member_json).collect();
            let mut o = JsonObject::new();
            o.raw("header", &header_json(&r.header));
            if !members.is_empty() {
                o.raw("members", &format!("[{}]", members.join(",")));
            }
            out.push_str(&o.finish());
            out.push('\n');
        }
        Format::Fields => {
            header_fields(out, &r.header);
            for m in &r.members {
                out.push_str(&format!("\"ID\" : {}\n", m.id));
                out.push_str(&format!("\"Name\" : {}\n", go_quote(m.name.as_bytes())));
                for u in &m.peer_ur_ls {
                    out.push_str(&format!("\"PeerURL\" : {}\n", go_quote(u.as_bytes())));
                }
                for u in &m.client_ur_ls {
                    out.push_str(&format!("\"ClientURL\" : {}\n", go_quote(u.as_bytes())));
                }
                out.push_str(&format!("\"IsLearner\" : {}\n\n", m.is_learner));
            }
        }
    }
}

/// A JSON string literal (Go's encoding: HTML characters escaped).
fn json_string(s: &str) -> String {
    serde_json::to_string(s)
        .expect("a string serializes")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// go-humanize's `Bytes`: SI units, one decimal under 10.
fn humanize_bytes(n: u64) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((n as f64).ln() / 1000f64.ln()).floor();
    let val = ((n as f64) / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    let suffix = SIZES[e as usize];
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `time.Duration.String()`.
fn go_duration(d: Duration) -> String {
    etcd_api::gocompat::duration(d.as_nanos().min(i64::MAX as u128) as i64)
}

/// How a range's answer is printed in the simple format.
#[derive(Clone, Copy, Default)]
struct Shown {
    keys_only: bool,
    value_only: bool,
    count_only: bool,
}

/// A put, get or del, as a request.
enum Operation {
    Put(PutRequest),
    Range(RangeRequest, Shown),
    Delete(DeleteRangeRequest),
}

/// The request a `put`, `get` or `del` command line makes (`stdin`: a put without a value
/// reads it from standard input, except inside a txn).
fn op_of(cmd: &Cmd, stdin: bool) -> Result<Operation, Failure> {
    Ok(match cmd {
        Cmd::Put {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        } => {
            let lease = i64::from_str_radix(lease, 16)
                .map_err(|_| fail(format!("bad lease ID ({lease}), expecting ID in Hex")))?;
            let value = match value {
                Some(v) => v.clone(),
                None if *ignore_value || !stdin => String::new(),
                None => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .map_err(|e| fail(e.to_string()))?;
                    v
                }
            };
            Operation::Put(PutRequest {
                key: key.clone().into(),
                value: value.into(),
                lease,
                prev_kv: *prev_kv,
                ignore_value: *ignore_value,
                ignore_lease: *ignore_lease,
            })
        }
        Cmd::Get {
            key,
            range_end,
            consistency,
            order,
            sort_by,
            limit,
            prefix,
            from_key,
            rev,
            keys_only,
            count_only,
            print_value_only,
        } => {
            let serializable = match consistency.as_str() {
                "l" => false,
                "s" => true,
                other => return Err(fail(format!("unknown consistency flag {other:?}"))),
            };
            let sort_order = match order.as_str() {
                "" => None,
                "ASCEND" => Some(SortOrder::Ascend),
                "DESCEND" => Some(SortOrder::Descend),
                other => return Err(fail(format!("bad sort order {other:?}"))),
            };
            let sort_target = match sort_by.as_str() {
                "" => None,
                "CREATE" => Some(SortTarget::Create),
                "KEY" => Some(SortTarget::Key),
                "MODIFY" => Some(SortTarget::Mod),
                "VALUE" => Some(SortTarget::Value),
                "VERSION" => Some(SortTarget::Version),
                other => return Err(fail(format!("bad sort target {other:?}"))),
            };
            // etcdctl: an order without a target sorts by key; a target without an order
            // ascends.
            let (sort_order, sort_target) = match (sort_order, sort_target) {
                (None, None) => (SortOrder::None, SortTarget::Key),
                (Some(o), None) => (o, SortTarget::Key),
                (None, Some(t)) => (SortOrder::Ascend, t),
                (Some(o), Some(t)) => (o, t),
            };
            let request = RangeRequest {
                key: key_of(key, *prefix, *from_key).into(),
                range_end: range_end_of(key, range_end.as_deref(), *prefix, *from_key)?.into(),
                limit: *limit,
                revision: *rev,
                sort_order: sort_order as i32,
                sort_target: sort_target as i32,
                serializable,
                keys_only: *keys_only,
                count_only: *count_only,
                ..Default::default()
            };
            let shown = Shown {
                keys_only: *keys_only,
                value_only: *print_value_only,
                count_only: *count_only,
            };
            Operation::Range(request, shown)
        }
        Cmd::Del {
            key,
            range_end,
            prefix,
            prev_kv,
            from_key,
        } => Operation::Delete(DeleteRangeRequest {
            key: key_of(key, *prefix, *from_key).into(),
            range_end: range_end_of(key, range_end.as_deref(), *prefix, *from_key)?.into(),
            prev_kv: *prev_kv,
        }),
        _ => return Err(fail("not a put, get or del")),
    })
}

fn print_put(out: &mut String, format: Format, r: &PutResponse) {
    match format {
        // (Printed, or refused, by `rpc_printed`.)
        Format::Table | Format::Protobuf => {}
        Format::Simple => {
            out.push_str("OK\n");
            if let Some(kv) = &r.prev_kv {
                simple_kv(out, kv, false, false);
            }
        }
        Format::Json => {
            out.push_str(&put_json(r));
            out.push('\n');
        }
        Format::Fields => {
            header_fields(out, &r.header);
            if let Some(kv) = &r.prev_kv {
                kv_fields_named(out, "Prev", kv);
            }
        }
    }
}

fn put_json(r: &PutResponse) -> String {
    let mut o = JsonObject::new();
    o.raw("header", &header_json(&r.header));
    if let Some(kv) = &r.prev_kv {
        o.raw("prev_kv", &kv_json(kv));
    }
    o.finish()
}

fn print_range(out: &mut String, format: Format, r: &RangeResponse, shown: Shown) {
    match format {
        // (Printed, or refused, by `rpc_printed`.)
        Format::Table | Format::Protobuf => {}
        Format::Simple => {
            for kv in &r.kvs {
                simple_kv(out, kv, shown.keys_only, shown.value_only);
            }
            if shown.count_only {
                out.push_str(&format!("{}\n", r.count));
            }
        }
        Format::Json => {
            out.push_str(&range_json(r));
            out.push('\n');
        }
        Format::Fields => {
            header_fields(out, &r.header);
            for kv in &r.kvs {
                kv_fields(out, kv);
            }
            out.push_str(&format!("\"More\" : {}\n", r.more));
            out.push_str(&format!("\"Count\" : {}\n", r.count));
        }
    }
}

fn range_json(r: &RangeResponse) -> String {
    let mut o = JsonObject::new();
    o.raw("header", &header_json(&r.header));
    if !r.kvs.is_empty() {
        let kvs: Vec<String> = r.kvs.iter().map(kv_json).collect();
        o.raw("kvs", &format!("[{}]", kvs.join(",")));
    }
    if r.more {
        o.raw("more", "true");
    }
    if r.count != 0 {
        o.raw("count", &r.count.to_string());
    }
    o.finish()
}

fn print_delete(out: &mut String, format: Format, r: &DeleteRangeResponse) {
    match format {
        // (Printed, or refused, by `rpc_printed`.)
        Format::Table | Format::Protobuf => {}
        Format::Simple => {
            out.push_str(&format!("{}\n", r.deleted));
            for kv in &r.prev_kvs {
                simple_kv(out, kv, false, false);
            }
        }
        Format::Json => {
            out.push_str(&delete_json(r));
            out.push('\n');
        }
        Format::Fields => {
            header_fields(out, &r.header);
            out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
            for kv in &r.prev_kvs {
                kv_fields_named(out, "Prev", kv);
            }
        }
    }
}

fn delete_json(r: &DeleteRangeResponse) -> String {
    let mut o = JsonObject::new();
    o.raw("header", &header_json(&r.header));
    if r.deleted != 0 {
        o.raw("deleted", &r.deleted.to_string());
    }
    if !r.prev_kvs.is_empty() {
        let kvs: Vec<String> = r.prev_kvs.iter().map(kv_json).collect();
        o.raw("prev_kvs", &format!("[{}]", kvs.join(",")));
    }
    o.finish()
}

fn print_txn(out: &mut String, format: Format, r: &TxnResponse) {
    match format {
        // (Printed, or refused, by `rpc_printed`.)
        Format::Table | Format::Protobuf => {}
        Format::Simple => {
            out.push_str(if r.succeeded {
                "SUCCESS\n"
            } else {
                "FAILURE\n"
            });
            for op in &r.responses {
                out.push('\n');
                match &op.response {
                    Some(Response::ResponsePut(p)) => print_put(out, format, p),
                    Some(Response::ResponseRange(g)) => {
                        print_range(out, format, g, Shown::default())
                    }
                    Some(Response::ResponseDeleteRange(d)) => print_delete(out, format, d),
                    other => out.push_str(&format!("unexpected response {other:?}\n")),
                }
            }
        }
        Format::Json => {
            let mut o = JsonObject::new();
            o.raw("header", &header_json(&r.header));
            if r.succeeded {
                o.raw("succeeded", "true");
            }
            if !r.responses.is_empty() {
                let ops: Vec<String> = r
                    .responses
                    .iter()
                    .map(|op| {
                        let (name, json) = match &op.response {
                            Some(Response::ResponsePut(p)) => ("ResponsePut", put_json(p)),
                            Some(Response::ResponseRange(g)) => ("ResponseRange", range_json(g)),
                            Some(Response::ResponseDeleteRange(d)) => {
                                ("ResponseDeleteRange", delete_json(d))
                            }
                            _ => return "{}".to_string(),
                        };
                        format!("{{\"Response\":{{\"{name}\":{json}}}}}")
                    })
                    .collect();
                o.raw("responses", &format!("[{}]", ops.join(",")));
            }
            out.push_str(&o.finish());
            out.push('\n');
        }
        Format::Fields => {
            header_fields(out, &r.header);
            out.push_str(&format!("\"Succeeded\" : {}\n", r.succeeded));
            for op in &r.responses {
                match &op.response {
                    Some(Response::ResponsePut(p)) => print_put(out, format, p),
                    Some(Response::ResponseRange(g)) => {
                        print_range(out, format, g, Shown::default())
                    }
                    Some(Response::ResponseDeleteRange(d)) => print_delete(out, format, d),
                    other => out.push_str(&format!("\"Unknown\" : {:?}\n", format!("{other:?}"))),
                }
            }
        }
    }
}

/// etcdctl's txn grammar: compares, a blank line, success operations, a blank line,
/// failure operations, a blank line; every line ends with a newline.
///
/// Reads a txn as etcdctl does: a section at a time (comparisons, then the operations on
/// success, then on failure), each ended by an empty line, every line parsed as it is read
/// (the first bad one ends the read); `prompt` is told each section's heading before it is
/// read (`txn -i` prints them).
fn read_txn(
    input: &mut impl std::io::BufRead,
    mut prompt: impl FnMut(&str),
) -> Result<TxnRequest, Failure> {
    fn section<T>(
        input: &mut impl std::io::BufRead,
        parse: impl Fn(&str) -> Result<T, Failure>,
    ) -> Result<Vec<T>, Failure> {
        let mut got = Vec::new();
        loop {
            let mut line = Vec::new();
            input
                .read_until(b'\n', &mut line)
                .map_err(|e| fail(e.to_string()))?;
            if !line.ends_with(b"\n") {
                return Err(fail("EOF"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim();
            if line.is_empty() {
                return Ok(got);
            }
            got.push(parse(line)?);
        }
    }
    prompt("compares:");
    let compare = section(input, parse_compare)?;
    prompt("success requests (get, put, del):");
    let success = section(input, parse_op)?;
    prompt("failure requests (get, put, del):");
    let failure = section(input, parse_op)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

/// One txn operation line (`put k v`, `get k --prefix`, `del k`), with the commands' flags.
fn parse_op(line: &str) -> Result<RequestOp, Failure> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Line {
        #[command(subcommand)]
        cmd: Cmd,
    }
    let invalid = || fail(format!("invalid txn request: {line}"));
    let args = gotext::argify(line)?;
    if args.len() < 2 {
        return Err(fail(format!("invalid txn compare request: {line}")));
    }
    let parsed = Line::try_parse_from(&args).map_err(|_| invalid())?;
    let request = match op_of(&parsed.cmd, false).map_err(|_| invalid())? {
        Operation::Put(p) => Op::RequestPut(p),
        Operation::Range(r, _) => Op::RequestRange(r),
        Operation::Delete(d) => Op::RequestDeleteRange(d),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// A txn comparison line: `target("key") op "value"` (etcdctl's grammar).
fn parse_compare(line: &str) -> Result<Compare, Failure> {
    let malformed = || fail(format!("malformed comparison: {line}"));
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = gotext::unquote_prefix(rest.trim_start()).ok_or_else(malformed)?;
    let rest = rest.strip_prefix(')').ok_or_else(malformed)?.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace).ok_or_else(malformed)?;
    let (value, _) = gotext::unquote_prefix(rest.trim_start()).ok_or_else(malformed)?;
    let op = match op {
        "=" => CmpOp::Equal,
        "!=" => CmpOp::NotEqual,
        ">" => CmpOp::Greater,
        "<" => CmpOp::Less,
        _ => return Err(fail(format!("malformed comparison: {line}"))),
    };
    let number = || {
        String::from_utf8_lossy(&value)
            .parse::<i64>()
            .map_err(|_| fail(format!("invalid txn compare request: {line}")))
    };
    Ok(match target {
        "ver" | "version" => Cmp::version(key, op, number()?),
        "c" | "create" => Cmp::create_revision(key, op, number()?),
        "m" | "mod" => Cmp::mod_revision(key, op, number()?),
        "val" | "value" => Cmp::value(key, op, value),
        "lease" => Cmp::lease(key, op, number()?),
        other => {
            return Err(fail(format!(
                "malformed comparison: {line} (unknown target {other})"
            )))
        }
    })
}

/// `call`'s answer, or etcdctl's error once `timeout` passes.
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(Failure::from),
        Err(_) => Err(fail("context deadline exceeded")),
    }
}

/// The range end etcdctl sends for `key` with these flags.
/// The key sent: as given, or `\0` for an empty one with `--prefix` or `--from-key` (every
/// key), as etcd's client makes it.
fn key_of(key: &str, prefix: bool, from_key: bool) -> Vec<u8> {
    if key.is_empty() && (prefix || from_key) {
        vec![0]
    } else {
        key.as_bytes().to_vec()
    }
}

fn range_end_of(
    key: &str,
    given: Option<&str>,
    prefix: bool,
    from_key: bool,
) -> Result<Vec<u8>, Failure> {
    if prefix && from_key {
        return Err(fail(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if given.is_some() && (prefix || from_key) {
        return Err(fail(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
        ));
    }
    Ok(if prefix {
        etcd_client::v3::prefix_end(key.as_bytes())
    } else if from_key {
        vec![0]
    } else {
        given.map(|e| e.as_bytes().to_vec()).unwrap_or_default()
    })
}

/// `key\nvalue\n`, as etcdctl's simple format prints a pair.
fn simple_kv(out: &mut String, kv: &KeyValue, keys_only: bool, value_only: bool) {
    let shown = |b: &[u8]| {
        if HEX.load(std::sync::atomic::Ordering::Relaxed) {
            b.iter().map(|x| format!("\\x{x:02x}")).collect()
        } else {
            String::from_utf8_lossy(b).into_owned()
        }
    };
    if !value_only {
        out.push_str(&shown(&kv.key));
        out.push('\n');
    }
    if !keys_only {
        out.push_str(&shown(&kv.value));
    }
    out.push('\n');
}

/// `--hex`: the simple format prints keys and values as `\x..` bytes.
static HEX: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A JSON object written field by field in the order given (Go's struct order).
struct JsonObject(Vec<String>);

impl JsonObject {
    fn new() -> JsonObject {
        JsonObject(Vec::new())
    }

    fn raw(&mut self, name: &str, value: &str) {
        self.0.push(format!("\"{name}\":{value}"));
    }

    fn finish(self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

fn header_json(h: &Option<ResponseHeader>) -> String {
    let h = h.unwrap_or_default();
    let mut o = JsonObject::new();
    for (name, v) in [
        ("cluster_id", h.cluster_id),
        ("member_id", h.member_id),
        ("revision", h.revision as u64),
        ("raft_term", h.raft_term),
    ] {
        if v != 0 {
            o.raw(name, &v.to_string());
        }
    }
    o.finish()
}

fn kv_json(kv: &KeyValue) -> String {
    let b64 = |b: &[u8]| {
        format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(b)
        )
    };
    let mut o = JsonObject::new();
    if !kv.key.is_empty() {
        o.raw("key", &b64(&kv.key));
    }
    for (name, v) in [
        ("create_revision", kv.create_revision),
        ("mod_revision", kv.mod_revision),
        ("version", kv.version),
    ] {
        if v != 0 {
            o.raw(name, &v.to_string());
        }
    }
    if !kv.value.is_empty() {
        o.raw("value", &b64(&kv.value));
    }
    if kv.lease != 0 {
        o.raw("lease", &kv.lease.to_string());
    }
    o.finish()
}

fn header_fields(out: &mut String, h: &Option<ResponseHeader>) {
    let h = h.unwrap_or_default();
    out.push_str(&format!("\"ClusterID\" : {}\n", h.cluster_id));
    out.push_str(&format!("\"MemberID\" : {}\n", h.member_id));
    out.push_str(&format!("\"Revision\" : {}\n", h.revision));
    out.push_str(&format!("\"RaftTerm\" : {}\n", h.raft_term));
}

fn kv_fields(out: &mut String, kv: &KeyValue) {
    kv_fields_named(out, "", kv);
}

/// A pair's fields, their names after `prefix` (`Prev` for a watch event's previous pair).
fn kv_fields_named(out: &mut String, prefix: &str, kv: &KeyValue) {
    out.push_str(&format!("\"{prefix}Key\" : {}\n", go_quote(&kv.key)));
    out.push_str(&format!(
        "\"{prefix}CreateRevision\" : {}\n",
        kv.create_revision
    ));
    out.push_str(&format!("\"{prefix}ModRevision\" : {}\n", kv.mod_revision));
    out.push_str(&format!("\"{prefix}Version\" : {}\n", kv.version));
    out.push_str(&format!("\"{prefix}Value\" : {}\n", go_quote(&kv.value)));
    out.push_str(&format!("\"{prefix}Lease\" : {}\n", kv.lease));
}

/// Go's `%q` of a byte string: double-quoted, with Go's escapes.
fn go_quote(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\x07' => s.push_str("\\a"),
                '\x08' => s.push_str("\\b"),
                '\x0c' => s.push_str("\\f"),
                '\x0b' => s.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    s.push_str(&format!("\\x{:02x}", c as u32))
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_txn(input: &str) -> Result<TxnRequest, Failure> {
        read_txn(&mut input.as_bytes(), |_| {})
    }

    /// Lines are parsed as they are read, as etcdctl reads them: a bad one is refused even
    /// where the input ends before the txn does; `txn -i`'s headings come before each
    /// section.
    #[test]
    fn a_txn_is_read_a_line_at_a_time() {
        let refused = parse_txn("nonsense\n").unwrap_err();
        assert_eq!(refused.message, "malformed comparison: nonsense");
        assert_eq!(parse_txn("\nput a 1\n").unwrap_err().message, "EOF");
        let mut asked = Vec::new();
        let t = read_txn(&mut "\nput a 1\n\n\n".as_bytes(), |h| {
            asked.push(h.to_string())
        });
        assert_eq!(t.unwrap().success.len(), 1);
        assert_eq!(
            asked,
            [
                "compares:",
                "success requests (get, put, del):",
                "failure requests (get, put, del):"
            ]
        );
    }

    /// As etcdctl 3.4 refused `lease revoke -w protobuf` (recorded).
    #[test]
    fn a_revoke_is_refused_in_protobuf_with_gos_text_of_its_header() {
        let header = Some(ResponseHeader {
            cluster_id: 15232116037701992911,
            member_id: 9370049018660523747,
            revision: 43975,
            raft_term: 2,
        });
        let refused = lease_printed(
            &mut String::new(),
            Format::Protobuf,
            "LeaseRevokeResponse",
            &header,
            false,
        )
        .unwrap_err();
        assert_eq!(
            (refused.message.as_str(), refused.code),
            (
                "marshal unsupported for type clientv3.LeaseRevokeResponse ({cluster_id:\
                 15232116037701992911 member_id:9370049018660523747 revision:43975 raft_term:2 })",
                EXIT_BAD_FEATURE
            )
        );
        let zero = Some(ResponseHeader::default());
        let refused =
            lease_printed(&mut String::new(), Format::Protobuf, "X", &zero, false).unwrap_err();
        assert_eq!(
            refused.message,
            "marshal unsupported for type clientv3.X ({})"
        );
    }

    #[test]
    fn txn_input_parses_as_etcdctls() {
        let t = parse_txn("mod(\"a\") > \"0\"\nvalue(\"x y\") != \"a\\\"b\"\n\nput a 11\nget a --prefix\n\ndel \"b c\"\nput 'key' v\n\n")
            .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(t.compare.len(), 2);
        assert_eq!(&t.compare[1].key[..], b"x y");
        assert_eq!(t.success.len(), 2);
        match &t.failure[0].request {
            Some(Op::RequestDeleteRange(d)) => assert_eq!(&d.key[..], b"b c"),
            other => panic!("{other:?}"),
        }
        // etcdctl 3.4's slicing of a single-quoted word: bytes 1 to the word count less one.
        match &t.failure[1].request {
            Some(Op::RequestPut(p)) => assert_eq!(&p.key[..], b"k"),
            other => panic!("{other:?}"),
        }
        for (input, want) in [
            ("mod(\"a\") > \"0\"\n", "EOF"),
            ("\n\nput a 1", "EOF"),
            (
                "mod(a) > \"0\"\n\n\n\n",
                "malformed comparison: mod(a) > \"0\"",
            ),
            (
                "size(\"a\") > \"0\"\n\n\n\n",
                "malformed comparison: size(\"a\") > \"0\" (unknown target size)",
            ),
            (
                "ver(\"a\") > \"x\"\n\n\n\n",
                "invalid txn compare request: ver(\"a\") > \"x\"",
            ),
            ("\nwatch a\n\n\n", "invalid txn request: watch a"),
            ("\nput\n\n\n", "invalid txn compare request: put"),
        ] {
            match parse_txn(input) {
                Err(Failure { message, .. }) => assert_eq!(message, want, "{input:?}"),
                Ok(t) => panic!("{input:?}: {t:?}"),
            }
        }
    }

    #[test]
    fn sizes_and_durations_print_as_gos() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(16384), "16 kB");
        assert_eq!(humanize_bytes(1536), "1.5 kB");
        assert_eq!(humanize_bytes(2_147_483_648), "2.1 GB");
        assert_eq!(go_duration(Duration::from_nanos(642_379)), "642.379µs");
        assert_eq!(go_duration(Duration::from_nanos(1_500_000)), "1.5ms");
        assert_eq!(go_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_nanos(999)), "999ns");
        assert_eq!(json_string("a<b>&"), r#""a\u003cb\u003e\u0026""#);
    }

    #[test]
    fn go_quotes_as_go() {
        assert_eq!(go_quote(b"bar3"), "\"bar3\"");
        assert_eq!(
            go_quote(b"a\"b\\c\n\x01\xff"),
            "\"a\\\"b\\\\c\\n\\x01\\xff\""
        );
    }

    #[test]
    fn durations_parse_as_etcdctls() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn json_omits_zero_fields_in_go_order() {
        let kv = KeyValue {
            key: "foo".into(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            value: "bar2".into(),
            lease: 0,
        };
        assert_eq!(
            kv_json(&kv),
            r#"{"key":"Zm9v","create_revision":2,"mod_revision":3,"version":2,"value":"YmFyMg=="}"#
        );
        let h = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 4,
            raft_term: 2,
        };
        assert_eq!(
            header_json(&Some(h)),
            r#"{"cluster_id":1,"member_id":2,"revision":4,"raft_term":2}"#
        );
    }
}
