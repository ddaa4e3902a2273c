//! The command line (spec section 1) and the node configuration stored in the data directory.
//!
//! Flags are parsed the way Go's `flag` package does, because scripts of 2013 start etcd that
//! way: one or two dashes, `-n x`, `-n=x`, `--name=x`; booleans as `-f` or `-f=true`; parsing
//! stops at `--`. Unknown flags and malformed values are usage errors (exit 2); values that
//! parse but make no sense (an empty name, an address without a port, half a TLS set) are
//! configuration errors (exit 1), with a message naming the flag.
//!
//! Modern etcd's long flags are accepted too (`--name`, `--data-dir`, `--listen-client-urls`,
//! `--advertise-client-urls`, `--listen-peer-urls`, `--initial-advertise-peer-urls`,
//! `--initial-cluster`, `--initial-cluster-state`, `--initial-cluster-token`, `--cert-file`,
//! `--key-file`, `--trusted-ca-file`, `--client-cert-auth` and their `--peer-*` forms,
//! `--enable-v2`), and every long flag can come from an `ETCD_*` variable (`--data-dir` from
//! `ETCD_DATA_DIR`); a flag on the command line wins over its variable. `--config-file` reads
//! etcd's YAML file instead (`file`): then, as in etcd, the other flags and variables are
//! ignored. etcd flags that change nothing here are accepted at etcd's defaults (`compat`).
//!
//! URLs map onto the seed's addresses: an `https` URL needs the matching certificate and key.
//! Every URL of a `--listen-*-urls` list is listened on (https ones with the side's
//! certificate, http ones in the clear); a member advertises every `--advertise-client-urls`
//! URL, and the first peer URL. A
//! static `--initial-cluster` becomes joins: with state `new` the first member listed starts
//! the cluster (after checking that none of the others already runs one) and the others join
//! through it, expecting the cluster id `--initial-cluster-token` names; with `existing` the
//! member joins through the others.
//!
//! Not here: starting anything, reading TLS files, setting up logging (`crate::logger`).

mod compat;
mod file;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version string printed by `-version` and served at `/`.
pub const VERSION: &str = concat!("etcd v", env!("CARGO_PKG_VERSION"));

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;

/// Certificate, key and optional CA file for one side (client or peer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// Certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// CA bundle that client certificates must chain to.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// True if any file is given.
    pub fn is_set(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some()
    }
}

/// What identifies a member; stored in `DATA_DIR/info` on first start, and on later starts
/// preferred over the flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Raft id.
    pub id: u64,
    /// Member name.
    pub name: String,
    /// Advertised client address, `HOST:PORT`.
    pub client_addr: String,
    /// Advertised peer address, `HOST:PORT`.
    pub peer_addr: String,
    /// Host the client API listens on.
    pub client_listen_host: String,
    /// Host the peer API listens on.
    pub peer_listen_host: String,
    /// Client-side TLS files.
    pub client_tls: TlsFiles,
    /// Peer-side TLS files.
    pub peer_tls: TlsFiles,
    /// More advertised client URLs beside `client_addr`'s (the rest of
    /// `--advertise-client-urls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_client_urls: Vec<String>,
    /// The WAL's own directory (`--wal-dir`), if not `DATA_DIR/wal`. Stored, as the rest, so
    /// that a restart without the flag still finds the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_dir: Option<PathBuf>,
}

impl NodeInfo {
    /// Advertised client URL.
    pub fn client_url(&self) -> String {
        format!("{}://{}", scheme(&self.client_tls), self.client_addr)
    }

    /// Every advertised client URL, comma-separated, as the member list holds them.
    pub fn client_urls(&self) -> String {
        std::iter::once(self.client_url())
            .chain(self.more_client_urls.iter().cloned())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Advertised peer URL.
    pub fn peer_url(&self) -> String {
        format!("{}://{}", scheme(&self.peer_tls), self.peer_addr)
    }

    /// `HOST:PORT` the client API binds.
    pub fn client_listen(&self) -> String {
        listen_addr(&self.client_listen_host, &self.client_addr)
    }

    /// `HOST:PORT` the peer API binds.
    pub fn peer_listen(&self) -> String {
        listen_addr(&self.peer_listen_host, &self.peer_addr)
    }
}

fn scheme(tls: &TlsFiles) -> &'static str {
    if tls.cert.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The address to bind: `-cl`/`-sl` is a host (the port is the advertised one), or a
/// `HOST:PORT` of its own (`[v6]:PORT` for IPv6), for example to listen behind a proxy that
/// owns the advertised port.
fn listen_addr(host: &str, advertised: &str) -> String {
    let bracketed = host.starts_with('[');
    let one_colon = host.matches(':').count() == 1;
    if (bracketed || one_colon) && split_host_port(host).is_ok() {
        return host.to_string();
    }
    let (_, port) = split_host_port(advertised).expect("validated at parse time");
    if host.contains(':') && !bracketed {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Identity and addresses (replaced by the stored ones on a restart).
    pub node: NodeInfo,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Peer addresses to join through.
    pub join: Vec<String>,
    /// File holding such a list.
    pub join_file: Option<PathBuf>,
    /// Forget the previous configuration and data.
    pub force: bool,
    /// Watch history size, in events.
    pub history: usize,
    /// Largest cluster.
    pub max_cluster_size: usize,
    /// Join retry rounds.
    pub join_retries: u32,
    /// 0 normal, 1 `-v`, 2 `-vv`.
    pub verbosity: u8,
    /// Snapshot every this many applied entries.
    pub snapshot_count: u64,
    /// Raft heartbeat (tick) interval, in milliseconds.
    pub heartbeat_ms: u64,
    /// Raft election timeout, in milliseconds.
    pub election_ms: u64,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
    /// Largest v3 request put in the log, in bytes (`--max-request-bytes`).
    pub max_request_bytes: usize,
    /// Most compares or operations per v3 txn level (`--max-txn-ops`).
    pub max_txn_ops: usize,
    /// How often v3 watches that asked for progress notifications get one
    /// (`--experimental-watch-progress-notify-interval`).
    pub watch_progress_interval: std::time::Duration,
    /// Auto-compaction of the v3 keyspace, if asked for (`--auto-compaction-mode`,
    /// `--auto-compaction-retention`).
    pub auto_compaction: Option<crate::compactor::Mode>,
    /// The v3 space quota in bytes, if any (`--quota-backend-bytes`: 0 is etcd's 2 GiB, a
    /// negative value none).
    pub quota_backend_bytes: Option<u64>,
    /// How often the leader compares the members' hashes, if at all
    /// (`--experimental-corrupt-check-time`).
    pub corrupt_check: Option<std::time::Duration>,
    /// The v3 auth token provider (`--auth-token`: `simple`, or `jwt,` and its options),
    /// checked when parsed and built by the server.
    pub auth_token: String,
    /// How long a simple token lives unused (`--auth-token-ttl`, seconds).
    pub auth_token_ttl: std::time::Duration,
    /// The bcrypt cost of v3 passwords (`--bcrypt-cost`; outside 4..=31, etcd's 10).
    pub bcrypt_cost: u32,
    /// Compare the keyspace's hash with the peers' before serving, on a restart
    /// (`--experimental-initial-corrupt-check`): a member whose data differs does not start.
    pub initial_corrupt_check: bool,
    /// Extra addresses serving `/metrics` and the health checks alone (`--listen-metrics-urls`,
    /// comma-separated): (over https with the client certificate, `HOST:PORT`).
    pub listen_metrics: Vec<Listen>,
    /// More client addresses listened on beside the member's own (the rest of
    /// `--listen-client-urls`): (over https, `HOST:PORT`).
    pub more_client_listen: Vec<Listen>,
    /// More peer addresses listened on (the rest of `--listen-peer-urls`).
    pub more_peer_listen: Vec<Listen>,
    /// A new static cluster (`--initial-cluster` with state `new`): its token names it.
    pub static_cluster: Option<StaticCluster>,
    /// `--logger`, `--log-level`, `--log-outputs`.
    pub logging: Logging,
    /// Origins the v2 API answers CORS requests for (`*`: any).
    pub cors: Vec<String>,
    /// `--metrics extensive`: gRPC calls are timed too.
    pub metrics_extensive: bool,
    /// Snapshot files kept (0: all).
    pub max_snapshots: usize,
    /// WAL segments kept once snapshots cover them (0: all).
    pub max_wals: usize,
    /// Warnings about the configuration, for once logging is set up (URLs not advertised,
    /// flags ignored or not served).
    pub notices: Vec<String>,
    /// Compatibility flags given that change nothing here, each with the reason (logged at
    /// info: a deployment's config file has many).
    pub accepted: Vec<String>,
    /// A snapshot file (etcd's or ours) to create the data directory from, when it holds
    /// no log yet (`--restore-snapshot`): see `crate::etcd_snapshot`.
    pub restore_snapshot: Option<PathBuf>,
    /// Restore a snapshot file without a SHA-256 trailer, or whose trailer does not match
    /// (`--skip-hash-check`).
    pub skip_hash_check: bool,
    /// Peers to ask before starting a new cluster: if one of them already runs a cluster, this
    /// member joins it instead (the first member of a static `--initial-cluster`).
    pub probe: Vec<String>,
    /// With no client address flag: etcd's client port too (`127.0.0.1:2379`), served beside
    /// the seed's 4001 (as etcd 2.x served both 2379 and 4001), so that v3 tools work
    /// without flags. Binding it may fail (another etcd there): the node runs on.
    pub extra_client_listen: Option<String>,
    /// With no peer address flag: etcd's peer port too (`127.0.0.1:2380`).
    pub extra_peer_listen: Option<String>,
}

/// An address to listen on: (over https, `HOST:PORT`).
pub type Listen = (bool, String);

/// A new cluster started from a static member list.
///
/// As in etcd, `--initial-cluster-token` takes part in the cluster id: the first member listed
/// takes a raft id derived from the token and its peer URL, and the cluster id derives from
/// that; the other members expect that id, so a member started with another token (or another
/// list) is refused instead of joining a cluster it was not meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticCluster {
    /// `--initial-cluster-token` (etcd's default `etcd-cluster`).
    pub token: String,
    /// The first member's peer address, `HOST:PORT`.
    pub first_peer: String,
    /// This member is the first.
    pub first: bool,
}

/// Where logs go and how they look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `--logger zap`: one JSON object per line, with etcd's fields; else plain text.
    pub zap: bool,
    /// `--log-level` as a tracing level (`debug`, `info`, `warn`, `error`), if given.
    pub level: Option<&'static str>,
    /// `--log-outputs`: `stderr`, `stdout`, or file paths (appended to).
    pub outputs: Vec<String>,
}

/// The logging flags.
fn logging(get: &dyn Fn(&str) -> Option<String>, debug: bool) -> Result<Logging, Error> {
    let zap = match get("logger").as_deref() {
        None | Some("capnslog") => false,
        Some("zap") => true,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "--logger: {other:?} is neither zap nor capnslog"
            )))
        }
    };
    let level = match get("log-level").as_deref() {
        _ if debug => Some("debug"),
        None => None,
        Some("debug") => Some("debug"),
        Some("info") => Some("info"),
        Some("warn") => Some("warn"),
        Some("error" | "dpanic" | "panic" | "fatal") => Some("error"),
        Some(other) => {
            return Err(Error::Invalid(format!(
            "--log-level: {other:?} is not one of debug, info, warn, error, dpanic, panic, fatal"
        )))
        }
    };
    let mut outputs: Vec<String> = Vec::new();
    for out in get("log-outputs")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let out = if out == "default" { "stderr" } else { out };
        if !outputs.iter().any(|o| o == out) {
            outputs.push(out.to_string());
        }
    }
    if outputs.is_empty() {
        outputs.push("stderr".into());
    }
    Ok(Logging {
        zap,
        level,
        outputs,
    })
}

/// etcd's default `--experimental-watch-progress-notify-interval`.
pub const WATCH_PROGRESS_DEFAULT: std::time::Duration = std::time::Duration::from_secs(600);

/// etcd's client port, served beside the seed's default one.
pub const ETCD_CLIENT_DEFAULT: &str = "127.0.0.1:2379";
/// etcd's peer port, served beside the seed's default one.
pub const ETCD_PEER_DEFAULT: &str = "127.0.0.1:2380";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a node.
    Run(Box<Config>),
    /// Print the version.
    Version,
    /// Print the usage.
    Help,
}

/// A command line that cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Unknown flag or unparsable value: usage, exit 2.
    #[error("{0}")]
    Usage(String),
    /// A value that parses but cannot be used: exit 1.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
}

/// (names, kind, value name, help).
const FLAGS: &[(&[&str], Kind, &str, &str)] = &[
    (
        &["n", "name"],
        Kind::Str,
        "NAME",
        "the node name (required, unique in the cluster) [default-name]",
    ),
    (
        &["d", "data-dir"],
        Kind::Str,
        "DIR",
        "the directory to store log, snapshots and configuration [NAME.etcd]",
    ),
    (
        &["c"],
        Kind::Str,
        "HOST:PORT",
        "the advertised address for clients [127.0.0.1:4001]",
    ),
    (
        &["s"],
        Kind::Str,
        "HOST:PORT",
        "the advertised address for peers [127.0.0.1:7001]",
    ),
    (
        &["cl"],
        Kind::Str,
        "HOST[:PORT]",
        "the host (and port) the client API listens on [host of -c]",
    ),
    (
        &["sl"],
        Kind::Str,
        "HOST[:PORT]",
        "the host (and port) the peer API listens on [host of -s]",
    ),
    (
        &["C"],
        Kind::Str,
        "HOST:PORT,...",
        "peer addresses of existing members to join",
    ),
    (
        &["CF"],
        Kind::Str,
        "FILE",
        "a file holding such a list (used when -C is empty)",
    ),
    (
        &["f"],
        Kind::Bool,
        "",
        "forget the previous configuration and data in DIR (DATA LOSS)",
    ),
    (
        &["m"],
        Kind::Int,
        "N",
        "watch history size, in events [1024]",
    ),
    (
        &["maxsize"],
        Kind::Int,
        "N",
        "maximum number of members [9]",
    ),
    (&["r"], Kind::Int, "N", "join retry rounds [3]"),
    (
        &["clientCert"],
        Kind::Str,
        "FILE",
        "certificate for the client API (HTTPS)",
    ),
    (&["clientKey"], Kind::Str, "FILE", "key for the client API"),
    (
        &["clientCAFile"],
        Kind::Str,
        "FILE",
        "CA that client certificates must be signed by",
    ),
    (
        &["serverCert"],
        Kind::Str,
        "FILE",
        "certificate for peer traffic",
    ),
    (&["serverKey"], Kind::Str, "FILE", "key for peer traffic"),
    (
        &["serverCAFile"],
        Kind::Str,
        "FILE",
        "CA that peer certificates must be signed by",
    ),
    (
        &["snapshot-count"],
        Kind::Int,
        "N",
        "applied entries between snapshots [10000]",
    ),
    (
        &["heartbeat-interval"],
        Kind::Int,
        "MS",
        "raft heartbeat interval [100]",
    ),
    (
        &["election-timeout"],
        Kind::Int,
        "MS",
        "raft election timeout [1000]",
    ),
    (
        &["max-value-bytes"],
        Kind::Int,
        "N",
        "largest value accepted [1048576]",
    ),
    (
        &["max-request-bytes"],
        Kind::Int,
        "N",
        "largest v3 request put in the log [1572864]",
    ),
    (
        &["max-txn-ops"],
        Kind::Int,
        "N",
        "most compares or operations per v3 txn [128]",
    ),
    (
        &["experimental-watch-progress-notify-interval"],
        Kind::Str,
        "DURATION",
        "how often v3 watches that ask get a progress notification [10m]",
    ),
    (
        &["quota-backend-bytes"],
        Kind::Str,
        "N",
        "v3 space quota: writes that grow the keyspace past it raise NOSPACE (0: 2 GiB; <0: none) [0]",
    ),
    (
        &["experimental-corrupt-check-time"],
        Kind::Str,
        "DURATION",
        "how often the leader compares the members' v3 hashes (0: never) [0s]",
    ),
    (
        &["auth-token"],
        Kind::Str,
        "simple|jwt,…",
        "v3 auth tokens: simple, or jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m [simple]",
    ),
    (
        &["auth-token-ttl"],
        Kind::Int,
        "SECONDS",
        "how long a simple token lives unused [300]",
    ),
    (
        &["bcrypt-cost"],
        Kind::Int,
        "N",
        "bcrypt cost of v3 passwords (4 to 31) [10]",
    ),
    (
        &["experimental-initial-corrupt-check"],
        Kind::Bool,
        "",
        "on a restart, compare the v3 hash with the peers' before serving; refuse to start on a difference",
    ),
    (
        &["listen-metrics-urls"],
        Kind::Str,
        "URLS",
        "also serve /metrics, /health, /livez and /readyz on these http:// URLs (comma-separated)",
    ),
    (
        &["restore-snapshot"],
        Kind::Str,
        "FILE",
        "with an empty data dir: start a new cluster holding the v3 data of an etcd snapshot file (etcdctl snapshot save)",
    ),
    (
        &["skip-hash-check"],
        Kind::Bool,
        "",
        "with --restore-snapshot: take a file without (or with a wrong) SHA-256 trailer",
    ),
    (
        &["auto-compaction-mode"],
        Kind::Str,
        "periodic|revision",
        "keep --auto-compaction-retention of time or of revisions [periodic]",
    ),
    (
        &["auto-compaction-retention"],
        Kind::Str,
        "N|DURATION",
        "v3 history kept by auto-compaction: hours (or a duration), or revisions; 0 is off [0]",
    ),
    (
        &["listen-client-urls"],
        Kind::Str,
        "URLS",
        "modern form of -cl: http(s)://HOST:PORT,... the client API listens on (comma-separated; all are listened on)",
    ),
    (
        &["advertise-client-urls"],
        Kind::Str,
        "URLS",
        "modern form of -c: the client URL members advertise (the first of a comma-separated list)",
    ),
    (
        &["listen-peer-urls"],
        Kind::Str,
        "URLS",
        "modern form of -sl: the URLs the peer API listens on (comma-separated; all are listened on)",
    ),
    (
        &["initial-advertise-peer-urls"],
        Kind::Str,
        "URLS",
        "modern form of -s: the peer URL members advertise (the first of a comma-separated list)",
    ),
    (
        &["initial-cluster"],
        Kind::Str,
        "NAME=URL,...",
        "a static cluster's members and peer URLs (this member's among them)",
    ),
    (
        &["initial-cluster-state"],
        Kind::Str,
        "new|existing",
        "start the static cluster, or join an existing one [new]",
    ),
    (
        &["initial-cluster-token"],
        Kind::Str,
        "TOKEN",
        "names a new static cluster: it takes part in the cluster id, and members started with another token do not join [etcd-cluster]",
    ),
    (
        &["cert-file"],
        Kind::Str,
        "FILE",
        "modern form of -clientCert",
    ),
    (
        &["key-file"],
        Kind::Str,
        "FILE",
        "modern form of -clientKey",
    ),
    (
        &["trusted-ca-file"],
        Kind::Str,
        "FILE",
        "CA for client certificates (with --client-cert-auth)",
    ),
    (
        &["client-cert-auth"],
        Kind::Bool,
        "",
        "require client certificates signed by --trusted-ca-file",
    ),
    (
        &["peer-cert-file"],
        Kind::Str,
        "FILE",
        "modern form of -serverCert",
    ),
    (
        &["peer-key-file"],
        Kind::Str,
        "FILE",
        "modern form of -serverKey",
    ),
    (
        &["peer-trusted-ca-file"],
        Kind::Str,
        "FILE",
        "CA for peer certificates (with --peer-client-cert-auth)",
    ),
    (
        &["peer-client-cert-auth"],
        Kind::Bool,
        "",
        "require peer certificates signed by --peer-trusted-ca-file",
    ),
    (
        &["enable-v2"],
        Kind::Bool,
        "",
        "accepted for compatibility: the v2 API is always served",
    ),
    (
        &["config-file"],
        Kind::Str,
        "FILE",
        "etcd's YAML configuration file; when given, other flags and ETCD_* variables are ignored",
    ),
    (
        &["logger"],
        Kind::Str,
        "zap|capnslog",
        "zap: JSON lines with etcd's fields (level, ts, caller, msg, ...); capnslog: plain text [capnslog]",
    ),
    (
        &["log-level"],
        Kind::Str,
        "LEVEL",
        "debug, info, warn, error, panic or fatal [info]",
    ),
    (
        &["log-outputs"],
        Kind::Str,
        "OUTPUTS",
        "where logs go, comma-separated: stderr, stdout, default (stderr), or file paths [default]",
    ),
    (&["debug"], Kind::Bool, "", "same as --log-level debug"),
    (
        &["wal-dir"],
        Kind::Str,
        "DIR",
        "keep the WAL in this directory (say, on a disk of its own) instead of DATA_DIR/wal",
    ),
    (
        &["metrics"],
        Kind::Str,
        "basic|extensive",
        "extensive also times every gRPC call (grpc_server_handling_seconds) [basic]",
    ),
    (
        &["cors"],
        Kind::Str,
        "ORIGINS",
        "origins the v2 API answers CORS requests for, comma-separated, or * for any [*]",
    ),
    (
        &["max-snapshots"],
        Kind::Int,
        "N",
        "snapshot files kept; 0 keeps all (each holds the whole keyspace: etcd keeps 5) [2]",
    ),
    (
        &["max-wals"],
        Kind::Int,
        "N",
        "WAL segments kept once snapshots cover them; 0 keeps all [5]",
    ),
    (
        &["enable-pprof"],
        Kind::Bool,
        "",
        "accepted: there is no Go runtime to profile, so /debug/pprof is not served (use perf)",
    ),
    (&["v"], Kind::Bool, "", "verbose logging"),
    (&["vv"], Kind::Bool, "", "very verbose logging"),
    (&["version"], Kind::Bool, "", "print the version and exit"),
    (&["h", "help"], Kind::Bool, "", "print this help and exit"),
];

/// A flag by any of its names: its canonical name and kind (compatibility flags too).
fn lookup(name: &str) -> Option<(&'static str, Kind)> {
    FLAGS
        .iter()
        .find(|(names, ..)| names.contains(&name))
        .map(|(names, kind, ..)| (names[0], *kind))
        .or_else(|| {
            compat::COMPAT
                .iter()
                .find(|(n, ..)| *n == name)
                .map(|(n, kind, _)| (*n, *kind))
        })
}

/// Every flag name with its kind.
fn all_flags() -> impl Iterator<Item = (&'static str, &'static str, Kind)> {
    FLAGS
        .iter()
        .flat_map(|(names, kind, ..)| names.iter().map(move |n| (*n, names[0], *kind)))
        .chain(compat::COMPAT.iter().map(|(n, kind, _)| (*n, *n, *kind)))
}

/// The usage text.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: etcd [flags]\n\nflags (one or two dashes; -flag value or -flag=value):\n",
    );
    for (names, _, value, help) in FLAGS {
        let spelled: Vec<String> = names.iter().map(|n| format!("-{n}")).collect();
        let left = format!("{} {value}", spelled.join(", "));
        s.push_str(&format!("  {left:<34} {help}\n"));
    }
    s.push_str(&compat::usage());
    s
}

/// Parses the arguments after the program name, with `ETCD_*` variables from the process
/// environment.
pub fn parse(args: &[String]) -> Result<Command, Error> {
    parse_with_env(args, &|name| std::env::var(name).ok())
}

/// The `ETCD_*` variable of a long flag (`data-dir` → `ETCD_DATA_DIR`), if it has one: flags
/// spelled in lowercase with at least four letters (not `help` or `version`).
fn env_name(flag: &str) -> Option<String> {
    let long = flag.len() >= 4
        && flag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !matches!(flag, "help" | "version");
    long.then(|| format!("ETCD_{}", flag.to_ascii_uppercase().replace('-', "_")))
}

/// A boolean as Go's `strconv.ParseBool` spells it, as "true"/"false".
fn go_bool(v: &str) -> Option<&'static str> {
    crate::gocompat::parse_bool(v).map(|b| if b { "true" } else { "false" })
}

/// A comma-separated list of `http(s)://HOST:PORT[/]` → (is https, `HOST:PORT`) each; at
/// least one.
fn parse_urls(flag: &str, list: &str) -> Result<Vec<(bool, String)>, Error> {
    let urls: Vec<(bool, String)> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| parse_url(flag, u))
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(Error::Invalid(format!("--{flag}: no URL in {list:?}")));
    }
    Ok(urls)
}

/// `http(s)://HOST:PORT[/]` → (is https, `HOST:PORT`).
pub fn parse_url(flag: &str, url: &str) -> Result<(bool, String), Error> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(Error::Invalid(format!(
            "--{flag}: {url:?} is not an http:// or https:// URL"
        )));
    };
    let addr = rest.trim_end_matches('/');
    split_host_port(addr)
        .map_err(|e| Error::Invalid(format!("--{flag}: invalid URL {url:?}: {e}")))?;
    Ok((https, addr.to_string()))
}

/// Parses the arguments after the program name; `env` looks up `ETCD_*` variables.
pub fn parse_with_env(
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, Error> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    for (n, canonical, kind) in all_flags() {
        let Some(var) = env_name(n) else { continue };
        let Some(v) = env(&var) else { continue };
        let v = match kind {
            Kind::Bool => go_bool(&v)
                .ok_or_else(|| Error::Usage(format!("invalid boolean value {v:?} for {var}")))?
                .to_string(),
            Kind::Int if v.parse::<u64>().is_err() => {
                return Err(Error::Usage(format!(
                    "invalid value {v:?} for {var}: parse error"
                )))
            }
            _ => v,
        };
        values.push((canonical, v));
    }
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            if let Some(extra) = it.next() {
                return Err(Error::Usage(format!("unexpected argument: {extra}")));
            }
            break;
        }
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(Error::Usage(format!("unexpected argument: {arg}")));
        };
        if flag.is_empty() || flag.starts_with('-') || flag.starts_with('=') {
            return Err(Error::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let Some((canonical, kind)) = lookup(name) else {
            return Err(Error::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match go_bool(&v) {
                Some(b) => b.into(),
                None => {
                    return Err(Error::Usage(format!(
                        "invalid boolean value {v:?} for -{name}"
                    )))
                }
            },
            (_, Some(v)) => v,
            (_, None) => it
                .next()
                .cloned()
                .ok_or_else(|| Error::Usage(format!("flag needs an argument: -{name}")))?,
        };
        if kind == Kind::Int && value.parse::<u64>().is_err() {
            return Err(Error::Usage(format!(
                "invalid value {value:?} for flag -{name}: parse error"
            )));
        }
        values.push((canonical, value));
    }
    let mut notices = Vec::new();
    // etcd: with a configuration file, the other flags and variables are ignored.
    if let Some((_, path)) = values.iter().rev().find(|(n, _)| *n == "config-file") {
        let path = PathBuf::from(path);
        if values.iter().any(|(n, _)| *n != "config-file") {
            notices.push(format!(
                "--config-file {}: the other flags and ETCD_* variables are ignored",
                path.display()
            ));
        }
        values = file::read(&path, &|name| lookup(name).map(|(_, kind)| kind))?
            .into_iter()
            .map(|(name, value)| {
                (
                    lookup(&name).expect("the file reader checks names").0,
                    value,
                )
            })
            .collect();
    }
    let mut accepted = Vec::new();
    for (name, value) in &values {
        if let Some((_, accept)) = compat::find(name) {
            let note = compat::check(name, accept, value)?;
            if !note.is_empty() {
                accepted.push(note);
            }
        }
    }
    let get = |name: &str| {
        values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let flag = |name: &str| get(name).as_deref() == Some("true");
    let int =
        |name: &str, default: u64| get(name).map_or(default, |v| v.parse().expect("checked above"));

    if flag("h") {
        return Ok(Command::Help);
    }
    if flag("version") {
        return Ok(Command::Version);
    }
    let name = get("n").unwrap_or_else(|| "default-name".into());
    if name.is_empty() {
        return Err(Error::Invalid("-n: the node name must not be empty".into()));
    }
    if name.contains('/') {
        return Err(Error::Invalid(format!(
            "-n: the node name {name:?} must not contain '/'"
        )));
    }
    // Modern URL flags, where the seed's flags are not given. A member advertises one URL of
    // each kind; it listens on every URL listed.
    let urls = |flag: &str| get(flag).map(|v| parse_urls(flag, &v)).transpose();
    let advertise_client_all = urls("advertise-client-urls")?.unwrap_or_default();
    let advertise_client = advertise_client_all.first().cloned();
    let advertise_peer = match urls("initial-advertise-peer-urls")? {
        Some(all) => {
            if all.len() > 1 {
                notices.push(format!(
                    "--initial-advertise-peer-urls: a member advertises one peer URL; advertising the first, {}",
                    all[0].1
                ));
            }
            all.into_iter().next()
        }
        None => None,
    };
    let listen_client = urls("listen-client-urls")?;
    let listen_peer = urls("listen-peer-urls")?;
    let default_client = get("c").is_none()
        && get("cl").is_none()
        && advertise_client.is_none()
        && listen_client.is_none();
    let default_peer = get("s").is_none()
        && get("sl").is_none()
        && advertise_peer.is_none()
        && listen_peer.is_none();
    let client_addr = get("c")
        .or_else(|| advertise_client.as_ref().map(|(_, a)| a.clone()))
        .unwrap_or_else(|| "127.0.0.1:4001".into());
    let peer_addr = get("s")
        .or_else(|| advertise_peer.as_ref().map(|(_, a)| a.clone()))
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let (client_host, _) = split_host_port(&client_addr)
        .map_err(|e| Error::Invalid(format!("-c: invalid address {client_addr:?}: {e}")))?;
    let (peer_host, _) = split_host_port(&peer_addr)
        .map_err(|e| Error::Invalid(format!("-s: invalid address {peer_addr:?}: {e}")))?;
    // The modern TLS flags fill in where the seed's are not given; a trusted CA only matters
    // with client-cert-auth (it is what makes certificates required).
    let file = |old: &str, modern: &str| get(old).or_else(|| get(modern));
    let tls = |cert: &str, key: &str, ca: &str, modern: [&str; 4]| -> Result<TlsFiles, Error> {
        let modern_ca = if flag(modern[3]) {
            get(modern[2])
        } else {
            None
        };
        let files = TlsFiles {
            cert: file(cert, modern[0])
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            key: file(key, modern[1])
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            ca: get(ca)
                .or(modern_ca)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        };
        if files.is_set() && (files.cert.is_none() || files.key.is_none()) {
            return Err(Error::Invalid(format!(
                "-{cert} and -{key} must be given together (with -{ca} optional), or none of the three"
            )));
        }
        Ok(files)
    };
    let client_tls = tls(
        "clientCert",
        "clientKey",
        "clientCAFile",
        [
            "cert-file",
            "key-file",
            "trusted-ca-file",
            "client-cert-auth",
        ],
    )?;
    let peer_tls = tls(
        "serverCert",
        "serverKey",
        "serverCAFile",
        [
            "peer-cert-file",
            "peer-key-file",
            "peer-trusted-ca-file",
            "peer-client-cert-auth",
        ],
    )?;
    // An https URL needs a certificate; an advertised http one must not have one (it would be
    // https). Listening, with a certificate, the first https URL is the member's own and any
    // http ones are served in the clear beside it, as etcd does (say, on loopback).
    let mismatch = |flag: &str, https: bool| {
        Error::Invalid(format!(
            "--{flag}: {} URLs need {}",
            if https { "https" } else { "http" },
            if https {
                "a certificate and key (--cert-file/--key-file, --peer-cert-file/--peer-key-file)"
            } else {
                "no certificate: with a certificate the API is served over https"
            }
        ))
    };
    let advertised = advertise_client_all
        .iter()
        .map(|u| ("advertise-client-urls", u, &client_tls))
        .chain(
            advertise_peer
                .iter()
                .map(|u| ("initial-advertise-peer-urls", u, &peer_tls)),
        );
    for (flag, (https, _), files) in advertised {
        if *https != files.is_set() {
            return Err(mismatch(flag, *https));
        }
    }
    let more_client_urls: Vec<String> = advertise_client_all
        .iter()
        .skip(1)
        .map(|(https, addr)| format!("{}://{addr}", if *https { "https" } else { "http" }))
        .collect();
    let split_listen = |flag: &str,
                        all: Option<Vec<(bool, String)>>,
                        files: &TlsFiles|
     -> Result<(Option<String>, Vec<Listen>), Error> {
        let Some(mut all) = all else {
            return Ok((None, Vec::new()));
        };
        if !files.is_set() && all.iter().any(|(https, _)| *https) {
            return Err(mismatch(flag, true));
        }
        let own = all
            .iter()
            .position(|(https, _)| *https == files.is_set())
            .ok_or_else(|| mismatch(flag, false))?;
        let (_, addr) = all.remove(own);
        Ok((Some(addr), all))
    };
    let (listen_client, more_client_listen) =
        split_listen("listen-client-urls", listen_client, &client_tls)?;
    let (listen_peer, more_peer_listen) = split_listen("listen-peer-urls", listen_peer, &peer_tls)?;
    let mut join: Vec<String> = get("C")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut probe = Vec::new();
    let mut static_cluster = None;
    let mut join_retries = int("r", 3) as u32;
    if let Some(cluster) = get("initial-cluster").filter(|c| !c.is_empty()) {
        let members = parse_initial_cluster(&cluster)?;
        let Some(pos) = members.iter().position(|(n, _)| *n == name) else {
            return Err(Error::Invalid(format!(
                "--initial-cluster: this member's name {name:?} is not in {cluster:?}"
            )));
        };
        if members[pos].1 != peer_addr {
            return Err(Error::Invalid(format!(
                "--initial-cluster: {name}={} does not match the advertised peer address {peer_addr} (--initial-advertise-peer-urls)",
                members[pos].1
            )));
        }
        let others: Vec<String> = members
            .iter()
            .filter(|(n, _)| *n != name)
            .map(|(_, a)| a.clone())
            .collect();
        let state = get("initial-cluster-state").unwrap_or_else(|| "new".into());
        if state == "new" {
            static_cluster = Some(StaticCluster {
                token: get("initial-cluster-token")
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "etcd-cluster".into()),
                first_peer: members[0].1.clone(),
                first: pos == 0,
            });
        }
        match state.as_str() {
            "existing" => join = others,
            "new" if pos == 0 => probe = others,
            "new" => {
                join = vec![members[0].1.clone()];
                // Members of a new static cluster start in any order: wait for the first.
                if get("r").is_none() {
                    join_retries = 120;
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "--initial-cluster-state: {other:?} is neither \"new\" nor \"existing\""
                )))
            }
        }
    }
    for peer in &join {
        split_host_port(peer)
            .map_err(|e| Error::Invalid(format!("-C: invalid address {peer:?}: {e}")))?;
    }
    let heartbeat_ms = int("heartbeat-interval", 100);
    let election_ms = int("election-timeout", 1000);
    if heartbeat_ms == 0 || election_ms < 2 * heartbeat_ms {
        return Err(Error::Invalid(
            "-election-timeout must be at least twice -heartbeat-interval, which must be positive"
                .into(),
        ));
    }
    // etcd keeps its default for a duration that is not positive.
    let watch_progress_interval = match get("experimental-watch-progress-notify-interval") {
        None => WATCH_PROGRESS_DEFAULT,
        Some(v) => match crate::gocompat::parse_duration(&v) {
            Some(n) if n > 0 => std::time::Duration::from_nanos(n as u64),
            Some(_) => WATCH_PROGRESS_DEFAULT,
            None => {
                return Err(Error::Invalid(format!(
                    "--experimental-watch-progress-notify-interval: invalid duration {v:?}"
                )))
            }
        },
    };
    let auto_compaction = crate::compactor::parse(
        &get("auto-compaction-mode").unwrap_or_else(|| "periodic".into()),
        &get("auto-compaction-retention").unwrap_or_default(),
    )
    .map_err(|e| Error::Invalid(format!("--auto-compaction-*: {e}")))?;
    let quota_flag = get("quota-backend-bytes").unwrap_or_else(|| "0".into());
    let quota_backend_bytes =
        crate::grpc::quota::quota_of(crate::gocompat::atoi(&quota_flag).ok_or_else(|| {
            Error::Usage(format!(
                "invalid value {quota_flag:?} for flag -quota-backend-bytes: parse error"
            ))
        })?);
    let corrupt_check = match get("experimental-corrupt-check-time") {
        None => None,
        Some(v) => match crate::gocompat::parse_duration(&v) {
            Some(n) if n > 0 => Some(std::time::Duration::from_nanos(n as u64)),
            Some(_) => None,
            None => {
                return Err(Error::Invalid(format!(
                    "--experimental-corrupt-check-time: invalid duration {v:?}"
                )))
            }
        },
    };
    let auth_token = get("auth-token").unwrap_or_else(|| "simple".into());
    let auth_token_ttl = std::time::Duration::from_secs(int("auth-token-ttl", 300).max(1));
    crate::tokens::Tokens::from_flag(&auth_token, auth_token_ttl)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let bcrypt_cost = match int("bcrypt-cost", 10) {
        c @ 4..=31 => c as u32,
        c => {
            tracing::warn!("--bcrypt-cost {c} is outside 4..=31: using the default, 10");
            10
        }
    };
    // https metrics URLs use the client certificate, as in etcd.
    let listen_metrics = match get("listen-metrics-urls").filter(|v| !v.trim().is_empty()) {
        None => Vec::new(),
        Some(v) => parse_urls("listen-metrics-urls", &v)?,
    };
    if listen_metrics.iter().any(|(https, _)| *https) && client_tls.cert.is_none() {
        return Err(Error::Invalid(
            "--listen-metrics-urls: https URLs need the client certificate and key (--cert-file/--key-file)".into(),
        ));
    }
    let logging = logging(&get, flag("debug"))?;
    let cors = match get("cors") {
        None => vec!["*".to_string()],
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    };
    let metrics_extensive = match get("metrics").as_deref() {
        None | Some("basic") => false,
        Some("extensive") => true,
        Some(other) => {
            return Err(Error::Invalid(format!(
                "--metrics: {other:?} is neither basic nor extensive"
            )))
        }
    };
    if flag("enable-pprof") {
        notices.push(
            "--enable-pprof: there is no Go runtime to profile, so /debug/pprof is not served; profile etcd-rs with perf".into(),
        );
    }
    let restore_snapshot = get("restore-snapshot").map(PathBuf::from);
    if restore_snapshot.is_some() && !join.is_empty() {
        return Err(Error::Invalid(
            "--restore-snapshot starts a new cluster: it cannot join one (-C, -CF, or --initial-cluster with other members)".into(),
        ));
    }
    let config = Config {
        data_dir: PathBuf::from(get("d").unwrap_or_else(|| format!("{name}.etcd"))),
        node: NodeInfo {
            id: 0,
            client_listen_host: get("cl").or(listen_client).unwrap_or(client_host),
            peer_listen_host: get("sl").or(listen_peer).unwrap_or(peer_host),
            name,
            client_addr,
            peer_addr,
            client_tls,
            peer_tls,
            more_client_urls,
            wal_dir: get("wal-dir").filter(|d| !d.is_empty()).map(PathBuf::from),
        },
        join,
        join_file: get("CF").map(PathBuf::from),
        force: flag("f"),
        history: int("m", DEFAULT_HISTORY as u64) as usize,
        max_cluster_size: int("maxsize", 9) as usize,
        join_retries,
        extra_client_listen: default_client.then(|| ETCD_CLIENT_DEFAULT.to_string()),
        extra_peer_listen: default_peer.then(|| ETCD_PEER_DEFAULT.to_string()),
        verbosity: if flag("vv") { 2 } else { u8::from(flag("v")) },
        snapshot_count: int("snapshot-count", 10_000).max(1),
        heartbeat_ms,
        election_ms,
        max_value_bytes: int("max-value-bytes", 1 << 20) as usize,
        max_request_bytes: int("max-request-bytes", 1536 * 1024) as usize,
        max_txn_ops: int("max-txn-ops", 128) as usize,
        watch_progress_interval,
        auto_compaction,
        quota_backend_bytes,
        corrupt_check,
        auth_token,
        auth_token_ttl,
        bcrypt_cost,
        restore_snapshot,
        skip_hash_check: flag("skip-hash-check"),
        initial_corrupt_check: flag("experimental-initial-corrupt-check"),
        listen_metrics,
        more_client_listen,
        more_peer_listen,
        probe,
        static_cluster,
        logging,
        cors,
        metrics_extensive,
        max_snapshots: int("max-snapshots", 2) as usize,
        max_wals: int("max-wals", 5) as usize,
        notices,
        accepted,
    };
    Ok(Command::Run(Box::new(config)))
}

/// `--initial-cluster`'s members in the order given: (name, peer `HOST:PORT`), each name once
/// (with its first URL).
fn parse_initial_cluster(list: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(initial_cluster_urls(list)?
        .into_iter()
        .map(|(name, _, addr)| (name, addr))
        .collect())
}

/// `--initial-cluster`'s members in the order given: (name, is https, peer `HOST:PORT`), each
/// name once (with its first URL).
pub fn initial_cluster_urls(list: &str) -> Result<Vec<(String, bool, String)>, Error> {
    let mut members: Vec<(String, bool, String)> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, url)) = item.split_once('=') else {
            return Err(Error::Invalid(format!(
                "--initial-cluster: {item:?} is not NAME=URL"
            )));
        };
        let (https, addr) = parse_url("initial-cluster", url.trim())?;
        // etcd lists a member once per peer URL; a member advertises its first.
        if !members.iter().any(|(n, _, _)| n == name) {
            members.push((name.to_string(), https, addr));
        }
    }
    Ok(members)
}

/// Splits `HOST:PORT` (`[v6]:PORT` too).
pub fn split_host_port(addr: &str) -> Result<(String, u16), String> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.contains(['/', ' ']) {
        return Err("expected HOST:PORT, not a URL".into());
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    if port == 0 {
        return Err("port 0 cannot be advertised".into());
    }
    Ok((host.to_string(), port))
}

/// Where the node configuration lives in a data directory.
pub fn info_path(data_dir: &Path) -> PathBuf {
    data_dir.join("info")
}

/// Reads a stored node configuration, if there is one.
pub fn load_info(data_dir: &Path) -> std::io::Result<Option<NodeInfo>> {
    load_json(&info_path(data_dir))
}

/// Durably stores the node configuration (temp file, fsync, rename, directory fsync).
pub fn save_info(data_dir: &Path, info: &NodeInfo) -> std::io::Result<()> {
    save_json(&info_path(data_dir), info)
}

/// The JSON file at `path`, if there is one.
fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Durably writes `value` as pretty JSON at `path` (temp file, fsync, rename, directory
/// fsync).
fn save_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    crate::durable::replace(path, |f| f.write_all(&json))
}

/// The v2 watch history's default size, in events (`-m`).
pub const DEFAULT_HISTORY: usize = 1024;

/// Who a data directory made by `etcdctl snapshot restore` or `etcdutl backup`
/// (`DATA_DIR/restored`) was made for: read at the member's first start, which takes this id. The rest of the member's
/// configuration (client URLs, TLS) comes from that start's flags and is stored then, as for
/// any new member; this file is not read once `DATA_DIR/info` exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// The member's raft id (the same in every member's restored directory).
    pub id: u64,
    /// The member's name (`--name`).
    pub name: String,
    /// The member's peer URL, as `--initial-cluster` gave it.
    pub peer_url: String,
    /// Where the WAL was put (`--wal-dir`), if not `DATA_DIR/wal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_dir: Option<PathBuf>,
}

/// Where a restored data directory says whom it was made for.
pub fn restored_path(data_dir: &Path) -> PathBuf {
    data_dir.join("restored")
}

/// Reads what a restore left for the member's first start, if it left anything.
pub fn load_restored(data_dir: &Path) -> std::io::Result<Option<Restored>> {
    load_json(&restored_path(data_dir))
}

/// Durably stores whom a restored data directory was made for.
pub fn save_restored(data_dir: &Path, restored: &Restored) -> std::io::Result<()> {
    save_json(&restored_path(data_dir), restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match parse(&args)? {
            Command::Run(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = run(&[]).unwrap();
        assert_eq!(c.node.name, "default-name");
        assert_eq!(c.data_dir, PathBuf::from("default-name.etcd"));
        assert_eq!(c.node.client_url(), "http://127.0.0.1:4001");
        assert_eq!(c.node.peer_url(), "http://127.0.0.1:7001");
        assert_eq!(
            (
                c.history,
                c.max_cluster_size,
                c.join_retries,
                c.snapshot_count
            ),
            (1024, 9, 3, 10_000)
        );
        assert_eq!(c.node.client_listen(), "127.0.0.1:4001");
        // etcd's own ports too, with no address flags.
        assert_eq!(c.extra_client_listen.as_deref(), Some("127.0.0.1:2379"));
        assert_eq!(c.extra_peer_listen.as_deref(), Some("127.0.0.1:2380"));
        // Any client (or peer) address flag means exactly that address.
        for flags in [
            &["-c", "127.0.0.1:5001"][..],
            &["-cl", "0.0.0.0"],
            &["--listen-client-urls", "http://127.0.0.1:5001"],
            &["--advertise-client-urls", "http://127.0.0.1:5001"],
        ] {
            let c = run(flags).unwrap();
            assert_eq!(c.extra_client_listen, None, "{flags:?}");
            assert_eq!(c.extra_peer_listen.as_deref(), Some("127.0.0.1:2380"));
        }
        assert_eq!(
            run(&["-s", "127.0.0.1:8001"]).unwrap().extra_peer_listen,
            None
        );
    }

    #[test]
    fn every_go_spelling_works() {
        for args in [
            &["-n", "node0", "-d", "dir"][..],
            &["-n=node0", "-d=dir"],
            &["--name=node0", "--data-dir", "dir"],
            &["--n", "node0", "-data-dir=dir"],
        ] {
            let c = run(args).unwrap();
            assert_eq!(
                (c.node.name.as_str(), c.data_dir.to_str().unwrap()),
                ("node0", "dir"),
                "{args:?}"
            );
        }
        let c = run(&[
            "-d",
            "DIR",
            "-n",
            "NAME",
            "-s",
            "127.0.0.1:8001",
            "-c",
            "127.0.0.1:6001",
            "-C",
            "127.0.0.1:8001",
            "-clientCert=server.crt",
            "-clientKey=server.key",
        ])
        .unwrap();
        assert_eq!(c.join, vec!["127.0.0.1:8001"]);
        assert_eq!(c.node.client_url(), "https://127.0.0.1:6001");
        assert!(run(&["-f"]).unwrap().force);
        assert!(!run(&["-f=false"]).unwrap().force);
        assert_eq!(run(&["-vv"]).unwrap().verbosity, 2);
        assert_eq!(
            run(&["-cl", "0.0.0.0"]).unwrap().node.client_listen(),
            "0.0.0.0:4001"
        );
        assert_eq!(
            run(&["-sl", "127.0.0.1:9001"]).unwrap().node.peer_listen(),
            "127.0.0.1:9001"
        );
        assert_eq!(
            run(&["-sl", "::1"]).unwrap().node.peer_listen(),
            "[::1]:7001"
        );
        assert_eq!(
            run(&["-sl", "[::1]:9"]).unwrap().node.peer_listen(),
            "[::1]:9"
        );
    }

    #[test]
    fn usage_errors_and_invalid_values() {
        let parse_args =
            |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).err();
        assert!(matches!(parse_args(&["-nope"]), Some(Error::Usage(m)) if m.contains("-nope")));
        assert!(matches!(parse_args(&["-m", "x"]), Some(Error::Usage(_))));
        assert!(matches!(parse_args(&["-n"]), Some(Error::Usage(_))));
        assert!(matches!(parse_args(&["stray"]), Some(Error::Usage(_))));
        assert!(matches!(parse_args(&["-n", ""]), Some(Error::Invalid(m)) if m.contains("-n")));
        assert!(
            matches!(parse_args(&["-c", "notaport"]), Some(Error::Invalid(m)) if m.starts_with("-c"))
        );
        assert!(
            matches!(parse_args(&["-s", "host:99999"]), Some(Error::Invalid(m)) if m.starts_with("-s"))
        );
        assert!(
            matches!(parse_args(&["-clientCert", "a.crt"]), Some(Error::Invalid(m)) if m.contains("-clientKey"))
        );
        assert!(matches!(
            parse_args(&["-serverCAFile", "ca.crt"]),
            Some(Error::Invalid(_))
        ));
        assert!(matches!(
            parse(&["-version".to_string()]),
            Ok(Command::Version)
        ));
        assert!(matches!(parse(&["--help".to_string()]), Ok(Command::Help)));
    }

    fn run_env(args: &[&str], env: &[(&str, &str)]) -> Result<Config, Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        match parse_with_env(&args, &lookup)? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn v3_limits_and_the_progress_interval_default_to_etcds_and_take_flags_and_variables() {
        let c = run(&["-n", "a"]).unwrap();
        assert_eq!(
            (
                c.max_request_bytes,
                c.max_txn_ops,
                c.watch_progress_interval
            ),
            (1536 * 1024, 128, std::time::Duration::from_secs(600))
        );
        let c = run(&[
            "-n",
            "a",
            "--max-request-bytes=33554432",
            "--max-txn-ops",
            "1024",
            "--experimental-watch-progress-notify-interval",
            "5s",
        ])
        .unwrap();
        assert_eq!(
            (
                c.max_request_bytes,
                c.max_txn_ops,
                c.watch_progress_interval
            ),
            (32 << 20, 1024, std::time::Duration::from_secs(5))
        );
        let c = run_env(
            &["-n", "a"],
            &[
                ("ETCD_MAX_TXN_OPS", "7"),
                ("ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "1m30s"),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.max_txn_ops, c.watch_progress_interval),
            (7, std::time::Duration::from_secs(90))
        );
        // Not positive: etcd's default stays.
        let c = run(&["-n", "a", "--experimental-watch-progress-notify-interval=0"]).unwrap();
        assert_eq!(c.watch_progress_interval, WATCH_PROGRESS_DEFAULT);
        assert_eq!(
            run(&["-n", "a", "--experimental-watch-progress-notify-interval=5"]),
            Err(Error::Invalid(
                "--experimental-watch-progress-notify-interval: invalid duration \"5\"".into()
            ))
        );
        assert!(matches!(
            run(&["-n", "a", "--max-txn-ops=many"]),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn auto_compaction_is_off_by_default_and_takes_etcds_flags() {
        use crate::compactor::Mode;
        assert_eq!(run(&["-n", "a"]).unwrap().auto_compaction, None);
        let c = run(&["-n", "a", "--auto-compaction-retention", "1"]).unwrap();
        assert_eq!(
            c.auto_compaction,
            Some(Mode::Periodic(std::time::Duration::from_secs(3600)))
        );
        let c = run_env(
            &["-n", "a"],
            &[
                ("ETCD_AUTO_COMPACTION_MODE", "revision"),
                ("ETCD_AUTO_COMPACTION_RETENTION", "1000"),
            ],
        )
        .unwrap();
        assert_eq!(c.auto_compaction, Some(Mode::Revision(1000)));
        assert_eq!(
            run(&[
                "-n",
                "a",
                "--auto-compaction-mode=hourly",
                "--auto-compaction-retention=1"
            ]),
            Err(Error::Invalid(
                "--auto-compaction-*: unknown auto-compaction-mode \"hourly\"".into()
            ))
        );
    }

    #[test]
    fn modern_flags_and_variables_map_onto_the_seeds_settings() {
        let c = run_env(
            &[
                "--listen-client-urls",
                "http://0.0.0.0:2379",
                "--advertise-client-urls",
                "http://10.0.0.1:2379/",
                "--listen-peer-urls=http://0.0.0.0:2380",
                "--initial-advertise-peer-urls",
                "http://10.0.0.1:2380",
                "--name",
                "flagname",
            ],
            &[
                ("ETCD_NAME", "envname"),
                ("ETCD_DATA_DIR", "/var/lib/etcd"),
                ("ETCD_SNAPSHOT_COUNT", "5"),
                ("ETCD_ENABLE_V2", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.node.name, "flagname", "a flag beats its variable");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/etcd"));
        assert_eq!(c.snapshot_count, 5);
        assert_eq!(c.node.client_url(), "http://10.0.0.1:2379");
        assert_eq!(c.node.peer_url(), "http://10.0.0.1:2380");
        assert_eq!(c.node.client_listen(), "0.0.0.0:2379");
        assert_eq!(c.node.peer_listen(), "0.0.0.0:2380");
        assert!(matches!(
            run_env(&[], &[("ETCD_ENABLE_V2", "yes")]),
            Err(Error::Usage(m)) if m.contains("ETCD_ENABLE_V2")
        ));
        assert!(matches!(
            run_env(&[], &[("ETCD_SNAPSHOT_COUNT", "x")]),
            Err(Error::Usage(m)) if m.contains("ETCD_SNAPSHOT_COUNT")
        ));
        assert_eq!(env_name("data-dir").as_deref(), Some("ETCD_DATA_DIR"));
        assert_eq!(env_name("clientCert"), None);
        assert_eq!(env_name("n"), None);
        assert_eq!(env_name("help"), None);
    }

    #[test]
    fn modern_tls_flags_fill_in_and_urls_must_match_them() {
        let c = run_env(
            &[
                "--cert-file",
                "s.crt",
                "--key-file",
                "s.key",
                "--trusted-ca-file",
                "ca.crt",
                "--advertise-client-urls",
                "https://127.0.0.1:2379",
                "--peer-cert-file",
                "p.crt",
                "--peer-key-file",
                "p.key",
                "--peer-trusted-ca-file",
                "pca.crt",
                "--peer-client-cert-auth",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.node.client_tls.cert, Some(PathBuf::from("s.crt")));
        assert_eq!(
            c.node.client_tls.ca, None,
            "without --client-cert-auth the CA does not make certificates required"
        );
        assert_eq!(c.node.peer_tls.ca, Some(PathBuf::from("pca.crt")));
        assert!(c.node.client_url().starts_with("https://"));
        let c = run_env(
            &[
                "--cert-file=a",
                "--key-file=b",
                "--trusted-ca-file=c",
                "--client-cert-auth",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.node.client_tls.ca, Some(PathBuf::from("c")));
        assert!(matches!(
            run_env(&["--advertise-client-urls", "https://h:1"], &[]),
            Err(Error::Invalid(m)) if m.contains("--advertise-client-urls")
        ));
        assert!(matches!(
            run_env(&["--cert-file=a", "--key-file=b", "--listen-client-urls", "http://h:1"], &[]),
            Err(Error::Invalid(m)) if m.contains("--listen-client-urls")
        ));
    }

    #[test]
    fn a_static_initial_cluster_becomes_joins() {
        let cluster = "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,c=http://127.0.0.1:2382";
        let member = |name: &str, port: u16, state: Option<&str>| {
            let url = format!("http://127.0.0.1:{port}");
            let mut args = vec![
                "--name",
                name,
                "--initial-advertise-peer-urls",
                &url,
                "--initial-cluster",
                cluster,
            ]
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
            if let Some(s) = state {
                args.extend(["--initial-cluster-state".to_string(), s.to_string()]);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_env(&refs, &[])
        };
        let a = member("a", 2380, None).unwrap();
        assert!(a.join.is_empty());
        assert_eq!(a.probe, vec!["127.0.0.1:2381", "127.0.0.1:2382"]);
        let b = member("b", 2381, Some("new")).unwrap();
        assert_eq!(b.join, vec!["127.0.0.1:2380"]);
        assert!(b.probe.is_empty());
        assert_eq!(b.join_retries, 120);
        let c = member("c", 2382, Some("existing")).unwrap();
        assert_eq!(c.join, vec!["127.0.0.1:2380", "127.0.0.1:2381"]);
        assert!(
            matches!(member("d", 2383, None), Err(Error::Invalid(m)) if m.contains("\"d\" is not in"))
        );
        assert!(
            matches!(member("a", 2390, None), Err(Error::Invalid(m)) if m.contains("does not match"))
        );
        assert!(
            matches!(member("a", 2380, Some("old")), Err(Error::Invalid(m)) if m.contains("--initial-cluster-state"))
        );
        // etcd lists a member once per peer URL: the first is the one advertised.
        let twice = run_env(
            &[
                "--name",
                "a",
                "--initial-cluster",
                "a=http://127.0.0.1:7001,a=http://x:1",
            ],
            &[],
        )
        .unwrap();
        assert!(twice.join.is_empty() && twice.probe.is_empty());
        // The token names a new static cluster (etcd's default when not given).
        assert_eq!(
            a.static_cluster,
            Some(StaticCluster {
                token: "etcd-cluster".into(),
                first_peer: "127.0.0.1:2380".into(),
                first: true
            })
        );
        assert_eq!(b.static_cluster.as_ref().map(|s| s.first), Some(false));
        assert_eq!(c.static_cluster, None);
        let t = run_env(
            &[
                "--name",
                "a",
                "--initial-cluster",
                "a=http://127.0.0.1:7001",
                "--initial-cluster-token",
                "prod-1",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(t.static_cluster.unwrap().token, "prod-1");
    }

    #[test]
    fn url_lists_listen_on_every_url_and_advertise_the_first() {
        let c = run(&[
            "--name",
            "a",
            "--listen-client-urls",
            "http://127.0.0.1:2379, http://10.0.0.1:2379",
            "--advertise-client-urls",
            "http://10.0.0.1:2379,http://10.0.0.2:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:2380,http://10.0.0.1:2380",
            "--listen-metrics-urls",
            "http://127.0.0.1:2381,http://10.0.0.1:2381",
        ])
        .unwrap();
        assert_eq!(c.node.client_listen(), "127.0.0.1:2379");
        assert_eq!(c.node.client_addr, "10.0.0.1:2379");
        assert_eq!(
            c.more_client_listen,
            vec![(false, "10.0.0.1:2379".to_string())]
        );
        assert_eq!(c.node.peer_listen(), "127.0.0.1:2380");
        assert_eq!(
            c.more_peer_listen,
            vec![(false, "10.0.0.1:2380".to_string())]
        );
        assert_eq!(
            c.listen_metrics,
            vec![
                (false, "127.0.0.1:2381".to_string()),
                (false, "10.0.0.1:2381".to_string())
            ]
        );
        // Every advertised client URL is the member's.
        assert_eq!(c.node.more_client_urls, vec!["http://10.0.0.2:2379"]);
        assert_eq!(
            c.node.client_urls(),
            "http://10.0.0.1:2379,http://10.0.0.2:2379"
        );
        assert!(c.notices.is_empty(), "{:?}", c.notices);
        // With a certificate, the first https URL is the member's own; http ones are served
        // in the clear beside it, and https metrics use the client certificate.
        let tls = [
            "--cert-file",
            "/c.pem",
            "--key-file",
            "/k.pem",
            "--listen-client-urls",
            "http://127.0.0.1:2379,https://10.0.0.1:2379,https://10.0.0.2:2379",
            "--advertise-client-urls",
            "https://10.0.0.1:2379",
            "--listen-metrics-urls",
            "https://127.0.0.1:2381",
        ];
        let mut args = vec!["--name", "a"];
        args.extend(tls);
        let c = run(&args).unwrap();
        assert_eq!(c.node.client_listen(), "10.0.0.1:2379");
        assert_eq!(
            c.more_client_listen,
            vec![
                (false, "127.0.0.1:2379".to_string()),
                (true, "10.0.0.2:2379".to_string())
            ]
        );
        assert_eq!(c.listen_metrics, vec![(true, "127.0.0.1:2381".to_string())]);
        for (args, want) in [
            (
                &[
                    "--listen-client-urls",
                    "https://127.0.0.1:2379,http://127.0.0.1:2378",
                ][..],
                "--listen-client-urls: https URLs need a certificate",
            ),
            (
                &[
                    "--cert-file",
                    "/c",
                    "--key-file",
                    "/k",
                    "--listen-client-urls",
                    "http://127.0.0.1:2379",
                ][..],
                "--listen-client-urls: http URLs need no certificate",
            ),
            (
                &["--listen-metrics-urls", "https://127.0.0.1:2381"][..],
                "--listen-metrics-urls: https URLs need the client certificate",
            ),
            (
                &["--listen-peer-urls", "http://127.0.0.1:2380,127.0.0.1:1"][..],
                "is not an http:// or https:// URL",
            ),
            (
                &["--listen-peer-urls", " , "][..],
                "--listen-peer-urls: no URL",
            ),
        ] {
            let mut all = vec!["--name", "a"];
            all.extend(args);
            match run(&all) {
                Err(Error::Invalid(m)) => assert!(m.contains(want), "{args:?}: {m}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn logging_cors_retention_and_pprof_flags() {
        let c = run(&["-n", "a"]).unwrap();
        assert_eq!(
            c.logging,
            Logging {
                zap: false,
                level: None,
                outputs: vec!["stderr".into()]
            }
        );
        assert_eq!(c.cors, vec!["*"]);
        assert_eq!((c.max_snapshots, c.max_wals), (2, 5));
        assert!(c.notices.is_empty(), "{:?}", c.notices);
        let c = run(&[
            "-n",
            "a",
            "--logger",
            "zap",
            "--log-level",
            "warn",
            "--log-outputs",
            "default,stdout,/var/log/etcd.log,stderr",
            "--cors",
            "http://a.example, https://b.example",
            "--max-snapshots",
            "0",
            "--max-wals",
            "1",
            "--enable-pprof",
        ])
        .unwrap();
        assert_eq!(
            c.logging,
            Logging {
                zap: true,
                level: Some("warn"),
                outputs: vec!["stderr".into(), "stdout".into(), "/var/log/etcd.log".into()]
            }
        );
        assert_eq!(c.cors, vec!["http://a.example", "https://b.example"]);
        assert_eq!((c.max_snapshots, c.max_wals), (0, 1));
        assert!(
            c.notices.iter().any(|n| n.contains("--enable-pprof")),
            "{:?}",
            c.notices
        );
        assert_eq!(
            run(&["-n", "a", "--debug"]).unwrap().logging.level,
            Some("debug")
        );
        assert!(!run(&["-n", "a"]).unwrap().metrics_extensive);
        assert!(
            run(&["-n", "a", "--metrics", "extensive"])
                .unwrap()
                .metrics_extensive
        );
        assert_eq!(
            run(&["-n", "a", "--metrics", "all"]).unwrap_err(),
            Error::Invalid("--metrics: \"all\" is neither basic nor extensive".into())
        );
        assert_eq!(
            run(&["-n", "a", "--log-level", "fatal"])
                .unwrap()
                .logging
                .level,
            Some("error")
        );
        for (args, want) in [
            (
                &["--logger", "glog"][..],
                "--logger: \"glog\" is neither zap nor capnslog",
            ),
            (
                &["--log-level", "loud"][..],
                "--log-level: \"loud\" is not one of",
            ),
        ] {
            let mut all = vec!["-n", "a"];
            all.extend(args);
            match run(&all) {
                Err(Error::Invalid(m)) => assert!(m.starts_with(want), "{m}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn compatibility_flags_are_accepted_at_etcds_defaults_and_named_otherwise() {
        let c = run_env(
            &[
                "-n",
                "a",
                "--wal-dir=",
                "--proxy",
                "off",
                "--auto-tls=false",
                "--strict-reconfig-check",
                "--pre-vote=true",
            ],
            &[
                ("ETCD_DISCOVERY_FALLBACK", "proxy"),
                ("ETCD_GRPC_KEEPALIVE_TIMEOUT", "20s"),
            ],
        )
        .unwrap();
        let notes = c.accepted.join("\n");
        for flag in [
            "--strict-reconfig-check=true",
            "--pre-vote=true",
            "--grpc-keepalive-timeout=20s",
        ] {
            assert!(notes.contains(flag), "{notes}");
        }
        assert!(
            !notes.contains("wal-dir") && !notes.contains("proxy"),
            "{notes}"
        );
        for (args, env, want) in [
            (&["--auto-tls"][..], &[][..], "--auto-tls=\"true\""),
            (
                &[][..],
                &[("ETCD_DISCOVERY", "https://discovery.etcd.io/x")][..],
                "--discovery=",
            ),
            (
                &["--force-new-cluster=true"][..],
                &[][..],
                "--force-new-cluster=",
            ),
            (&["--unsafe-no-fsync"][..], &[][..], "always fsyncs"),
        ] {
            let mut all = vec!["-n", "a"];
            all.extend(args);
            match run_env(&all, env) {
                Err(Error::Invalid(m)) => {
                    assert!(m.starts_with(want) || m.contains(want), "{args:?}: {m}")
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
        // Unknown flags are still refused with their name.
        assert_eq!(
            run(&["-n", "a", "--wal-directory", "x"]).unwrap_err(),
            Error::Usage("flag provided but not defined: -wal-directory".into())
        );
        assert!(usage().contains("--discovery-srv"));
    }

    #[test]
    fn a_config_file_replaces_flags_and_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.conf.yml");
        std::fs::write(
            &path,
            "name: 'infra1'\ndata-dir: /var/lib/etcd\nsnapshot-count: 500\n\
             listen-client-urls: http://127.0.0.1:2379,http://10.0.0.1:2379\n\
             advertise-client-urls: http://10.0.0.1:2379\n\
             listen-peer-urls: https://10.0.0.1:2380\ninitial-advertise-peer-urls: https://10.0.0.1:2380\n\
             initial-cluster: infra1=https://10.0.0.1:2380,infra2=https://10.0.0.2:2380\n\
             initial-cluster-token: 'tok'\ninitial-cluster-state: 'new'\n\
             proxy: 'off'\ndiscovery:\nwal-dir:\ndebug: false\nlogger: zap\nlog-outputs: [stderr]\n\
             peer-transport-security:\n  cert-file: /p.crt\n  key-file: /p.key\n  client-cert-auth: true\n  trusted-ca-file: /ca.crt\n  auto-tls: false\n",
        )
        .unwrap();
        let file = path.display().to_string();
        let c = run_env(
            &["--config-file", &file, "--name", "ignored"],
            &[("ETCD_SNAPSHOT_COUNT", "7")],
        )
        .unwrap();
        assert_eq!(c.node.name, "infra1");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/etcd"));
        assert_eq!(c.snapshot_count, 500);
        assert_eq!(
            c.more_client_listen,
            vec![(false, "10.0.0.1:2379".to_string())]
        );
        assert_eq!(c.node.peer_url(), "https://10.0.0.1:2380");
        assert_eq!(c.node.peer_tls.ca, Some(PathBuf::from("/ca.crt")));
        assert!(c.logging.zap);
        assert_eq!(c.static_cluster.unwrap().token, "tok");
        assert!(
            c.notices.iter().any(|n| n.contains("are ignored")),
            "{:?}",
            c.notices
        );
        // From a variable too; errors name the file and the key.
        let c = run_env(&[], &[("ETCD_CONFIG_FILE", &file)]).unwrap();
        assert_eq!(c.node.name, "infra1");
        std::fs::write(&path, "name: a\nwal-dir: /ssd/wal\nproxy: on\n").unwrap();
        assert_eq!(
            run_env(&["--config-file", &file], &[]).unwrap_err().to_string(),
            "--proxy=\"on\": proxy mode is not supported: run a member, or point clients at the members"
        );
        std::fs::write(&path, "name: a\nwal-dir: /ssd/wal\n").unwrap();
        let c = run_env(&["--config-file", &file], &[]).unwrap();
        assert_eq!(c.node.wal_dir, Some(PathBuf::from("/ssd/wal")));
        std::fs::write(&path, "name: a\nlisten-client-urls: 2379\n").unwrap();
        assert!(run_env(&["--config-file", &file], &[])
            .unwrap_err()
            .to_string()
            .contains("--listen-client-urls: \"2379\" is not an http:// or https:// URL"));
        let missing = dir.path().join("nope.yml").display().to_string();
        assert!(run_env(&["--config-file", &missing], &[])
            .unwrap_err()
            .to_string()
            .starts_with(&format!("--config-file {missing}: ")));
    }

    #[test]
    fn info_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load_info(tmp.path()).unwrap(), None);
        let mut info = run(&["-n", "x"]).unwrap().node;
        info.id = 42;
        save_info(tmp.path(), &info).unwrap();
        assert_eq!(load_info(tmp.path()).unwrap(), Some(info));
    }
}
