//! The command line (spec section 1) and the node configuration stored in the data directory.
//!
//! Flags are parsed the way Go's `flag` package does, because scripts of 2013 start etcd that
//! way: one or two dashes, `-n x`, `-n=x`, `--name=x`; booleans as `-f` or `-f=true`; parsing
//! stops at `--`. Unknown flags and malformed values are usage errors (exit 2); values that
//! parse but make no sense (an empty name, an address without a port, half a TLS set) are
//! configuration errors (exit 1), with a message naming the flag.
//!
//! Not here: starting anything, reading TLS files.

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
}

impl NodeInfo {
    /// Advertised client URL.
    pub fn client_url(&self) -> String {
        format!("{}://{}", scheme(&self.client_tls), self.client_addr)
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
}

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
    (&["v"], Kind::Bool, "", "verbose logging"),
    (&["vv"], Kind::Bool, "", "very verbose logging"),
    (&["version"], Kind::Bool, "", "print the version and exit"),
    (&["h", "help"], Kind::Bool, "", "print this help and exit"),
];

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
    s
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, Error> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
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
        let Some((names, kind, _, _)) = FLAGS.iter().find(|(names, ..)| names.contains(&name))
        else {
            return Err(Error::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let canonical = names[0];
        let value = match (kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match v.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => "true".into(),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => "false".into(),
                _ => {
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
        if *kind == Kind::Int && value.parse::<u64>().is_err() {
            return Err(Error::Usage(format!(
                "invalid value {value:?} for flag -{name}: parse error"
            )));
        }
        values.push((canonical, value));
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
    let client_addr = get("c").unwrap_or_else(|| "127.0.0.1:4001".into());
    let peer_addr = get("s").unwrap_or_else(|| "127.0.0.1:7001".into());
    let (client_host, _) = split_host_port(&client_addr)
        .map_err(|e| Error::Invalid(format!("-c: invalid address {client_addr:?}: {e}")))?;
    let (peer_host, _) = split_host_port(&peer_addr)
        .map_err(|e| Error::Invalid(format!("-s: invalid address {peer_addr:?}: {e}")))?;
    let tls = |cert: &str, key: &str, ca: &str| -> Result<TlsFiles, Error> {
        let files = TlsFiles {
            cert: get(cert).filter(|s| !s.is_empty()).map(PathBuf::from),
            key: get(key).filter(|s| !s.is_empty()).map(PathBuf::from),
            ca: get(ca).filter(|s| !s.is_empty()).map(PathBuf::from),
        };
        if files.is_set() && (files.cert.is_none() || files.key.is_none()) {
            return Err(Error::Invalid(format!(
                "-{cert} and -{key} must be given together (with -{ca} optional), or none of the three"
            )));
        }
        Ok(files)
    };
    let client_tls = tls("clientCert", "clientKey", "clientCAFile")?;
    let peer_tls = tls("serverCert", "serverKey", "serverCAFile")?;
    let join: Vec<String> = get("C")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
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
    let config = Config {
        data_dir: PathBuf::from(get("d").unwrap_or_else(|| format!("{name}.etcd"))),
        node: NodeInfo {
            id: 0,
            client_listen_host: get("cl").unwrap_or(client_host),
            peer_listen_host: get("sl").unwrap_or(peer_host),
            name,
            client_addr,
            peer_addr,
            client_tls,
            peer_tls,
        },
        join,
        join_file: get("CF").map(PathBuf::from),
        force: flag("f"),
        history: int("m", 1024) as usize,
        max_cluster_size: int("maxsize", 9) as usize,
        join_retries: int("r", 3) as u32,
        verbosity: if flag("vv") { 2 } else { u8::from(flag("v")) },
        snapshot_count: int("snapshot-count", 10_000).max(1),
        heartbeat_ms,
        election_ms,
        max_value_bytes: int("max-value-bytes", 1 << 20) as usize,
    };
    Ok(Command::Run(Box::new(config)))
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
    match std::fs::read(info_path(data_dir)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Durably stores the node configuration (temp file, fsync, rename, directory fsync).
pub fn save_info(data_dir: &Path, info: &NodeInfo) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = data_dir.join("info.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, info_path(data_dir))?;
    std::fs::File::open(data_dir)?.sync_all()
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
