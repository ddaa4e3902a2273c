//! `etcdctl`: etcd's command line on top of `etcd-client`. As etcdctl 3.4, it speaks v3 unless
//! `ETCDCTL_API=2` (`v3.rs`); with `ETCDCTL_API=2` the v2-era surface over the v1 API (here).
//!
//! Output modes: `simple` prints values (what scripts want); `json` prints the server's JSON.
//! Exit codes: 0 success; 4 the server answered with an etcd error (printed as
//! `Error:  <code>: <message> (<cause>) [<index>]`); 1 usage or connection errors.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use etcd_client::{Action, Client, ClientBuilder, Error, Got, KeyResponse};

/// Exit code for errors answered by the server.
const EXIT_SERVER_ERROR: u8 = 4;
/// Exit code for usage and connection errors.
const EXIT_OTHER_ERROR: u8 = 1;

#[derive(Parser, Debug)]
#[command(name = "etcdctl", version, about = "A command line client for etcd-rs")]
struct Cli {
    /// Comma-separated endpoints (HOST:PORT or URLs).
    #[arg(
        long = "peers",
        short = 'C',
        env = "ETCDCTL_PEERS",
        default_value = "127.0.0.1:4001",
        global = true
    )]
    peers: String,
    /// Client certificate (PEM) for HTTPS.
    #[arg(long = "cert-file", global = true)]
    cert_file: Option<String>,
    /// Client key (PEM) for HTTPS.
    #[arg(long = "key-file", global = true)]
    key_file: Option<String>,
    /// CA certificate (PEM) to verify the server with.
    #[arg(long = "ca-file", global = true)]
    ca_file: Option<String>,
    /// Output format.
    #[arg(long = "output", short = 'o', value_enum, default_value_t = Output::Simple, global = true)]
    output: Output,
    /// Print what is being done to stderr.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Values only.
    Simple,
    /// The server's JSON.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set a key (test-and-set with --swap-with-value).
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Time to live, in seconds.
        #[arg(long)]
        ttl: Option<i64>,
        /// Only set if the current value is this.
        #[arg(long = "swap-with-value")]
        swap_with_value: Option<String>,
    },
    /// Print a key's value.
    Get {
        /// The key.
        key: String,
        /// Read through the leader's quorum (linearizable).
        #[arg(long)]
        consistent: bool,
    },
    /// Remove a key.
    Rm {
        /// The key.
        key: String,
    },
    /// List a directory.
    Ls {
        /// The directory (default /).
        key: Option<String>,
        /// Everything below it.
        #[arg(long, short = 'r')]
        recursive: bool,
    },
    /// Wait for a change at or below a key.
    Watch {
        /// The key or prefix.
        key: String,
        /// Report the first change after this index.
        #[arg(long = "after-index")]
        after_index: Option<u64>,
        /// Keep watching.
        #[arg(long)]
        forever: bool,
    },
    /// Run a command for every change at or below a key.
    ExecWatch {
        /// The key or prefix.
        key: String,
        /// Start after this index.
        #[arg(long = "after-index")]
        after_index: Option<u64>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Cluster members.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
    /// Print the leader's peer URL.
    Leader,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum MemberCommand {
    /// List the members.
    List,
}

mod v3;

/// The command line as `P`, or the exit code once clap has said why not (0 after `--help` or
/// `--version`, `failure` otherwise).
fn parse_or_exit<P: Parser>(failure: u8) -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                ExitCode::SUCCESS
            }
            _ => ExitCode::from(failure),
        }
    })
}

pub use v3::etcdutl::main as etcdutl_main;

/// Runs etcdctl with the process's arguments: the v3 command line, or with `ETCDCTL_API=2`
/// the v2-era one.
pub fn main() -> ExitCode {
    if !matches!(std::env::var("ETCDCTL_API").as_deref(), Ok("2")) {
        return v3::main();
    }
    let cli: Cli = match parse_or_exit(EXIT_OTHER_ERROR) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "etcdctl",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error:  cannot start: {e}");
            return ExitCode::from(EXIT_OTHER_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(Error::Server { error, index })) => {
            eprintln!(
                "Error:  {}: {} ({}) [{}]",
                error.code.as_u16(),
                error.code.message(),
                error.cause,
                index.unwrap_or(0)
            );
            ExitCode::from(EXIT_SERVER_ERROR)
        }
        Err(Failure::Client(e)) => {
            eprintln!("Error:  {e}");
            ExitCode::from(EXIT_OTHER_ERROR)
        }
        Err(Failure::Other(msg)) => {
            eprintln!("Error:  {msg}");
            ExitCode::from(EXIT_OTHER_ERROR)
        }
    }
}

enum Failure {
    Client(Error),
    Other(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Client(e)
    }
}

fn client(cli: &Cli) -> Result<Client, Failure> {
    let endpoints: Vec<&str> = cli.peers.split(',').collect();
    let mut builder = ClientBuilder::new(endpoints);
    if let Some(ca) = &cli.ca_file {
        builder = builder.ca_file(ca);
    }
    match (&cli.cert_file, &cli.key_file) {
        (Some(cert), Some(key)) => builder = builder.client_cert(cert, key),
        (None, None) => {}
        _ => {
            return Err(Failure::Other(
                "--cert-file and --key-file go together".into(),
            ))
        }
    }
    let client = builder.build()?;
    if cli.debug {
        eprintln!("etcdctl: endpoints {:?}", client.endpoints());
    }
    Ok(client)
}

fn print(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialising a response cannot fail")
}

/// The simple form of an event: the new value, or the previous one for a deletion.
fn simple(event: &KeyResponse) -> String {
    match (event.action, &event.value) {
        (Action::Delete, _) | (_, None) => {
            format!(
                "PrevNode.Value: {}",
                event.prev_value.as_deref().unwrap_or("")
            )
        }
        (_, Some(v)) => v.clone(),
    }
}

fn show(cli: &Cli, event: &KeyResponse) {
    match cli.output {
        Output::Simple => print(&simple(event)),
        Output::Json => print(&json(event)),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let client = client(&cli)?;
    match &cli.command {
        Command::Set {
            key,
            value,
            ttl,
            swap_with_value,
        } => {
            let event = match swap_with_value {
                Some(prev) => client.test_and_set(key, prev, value, *ttl).await?,
                None => client.set(key, value, *ttl).await?,
            };
            show(&cli, &event);
        }
        Command::Get { key, consistent } => {
            let got = if *consistent {
                client.get_consistent(key).await?
            } else {
                client.get(key).await?
            };
            match got {
                Got::Value(event) => show(&cli, &event),
                Got::Dir(_) => return Err(Failure::Other(format!("{key}: is a directory"))),
            }
        }
        Command::Rm { key } => {
            let event = client.delete(key).await?;
            show(&cli, &event);
        }
        Command::Ls { key, recursive } => {
            let items = client
                .list(key.as_deref().unwrap_or("/"), *recursive)
                .await?;
            match cli.output {
                Output::Simple => {
                    for item in &items {
                        print(&item.key);
                    }
                }
                Output::Json => print(&json(&items)),
            }
        }
        Command::Watch {
            key,
            after_index,
            forever,
        } => {
            let mut stream = client.watch_stream(key, after_index.map(|i| i + 1));
            loop {
                let event = stream.next().await?;
                show(&cli, &event);
                if !forever {
                    break;
                }
            }
        }
        Command::ExecWatch {
            key,
            after_index,
            command,
        } => {
            let mut stream = client.watch_stream(key, after_index.map(|i| i + 1));
            loop {
                let event = stream.next().await?;
                let action = match event.action {
                    Action::Delete => "delete",
                    Action::Set => "set",
                    Action::Get => "get",
                };
                if cli.debug {
                    eprintln!(
                        "etcdctl: {action} {} at {}: running {command:?}",
                        event.key, event.index
                    );
                }
                let status = tokio::process::Command::new(&command[0])
                    .args(&command[1..])
                    .env("ETCD_WATCH_ACTION", action)
                    .env("ETCD_WATCH_KEY", &event.key)
                    .env("ETCD_WATCH_VALUE", event.value.as_deref().unwrap_or(""))
                    .env("ETCD_WATCH_MODIFIED_INDEX", event.index.to_string())
                    .status()
                    .await
                    .map_err(|e| Failure::Other(format!("cannot run {}: {e}", command[0])))?;
                if cli.debug {
                    eprintln!("etcdctl: {} exited with {status}", command[0]);
                }
            }
        }
        Command::Member {
            command: MemberCommand::List,
        } => {
            let members = match client.get("/_etcd/machines").await? {
                Got::Dir(items) => items,
                Got::Value(_) => Vec::new(),
            };
            let leader = client.leader().await.ok();
            let rows: Vec<Member> = members
                .iter()
                .map(|m| {
                    let value = m.value.as_deref().unwrap_or("");
                    let field = |name: &str| {
                        value
                            .split('&')
                            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                            .unwrap_or("")
                            .to_string()
                    };
                    let peer_urls = field("raft");
                    Member {
                        name: m.key.rsplit('/').next().unwrap_or("").to_string(),
                        is_leader: leader.as_deref() == Some(peer_urls.as_str()),
                        peer_urls,
                        client_urls: field("etcd"),
                    }
                })
                .collect();
            match cli.output {
                Output::Simple => {
                    for m in &rows {
                        print(&format!(
                            "{}: peerURLs={} clientURLs={} isLeader={}",
                            m.name, m.peer_urls, m.client_urls, m.is_leader
                        ));
                    }
                }
                Output::Json => print(&json(&rows)),
            }
        }
        Command::Leader => print(&client.leader().await?),
        Command::Completion { .. } => unreachable!("handled before connecting"),
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Member {
    name: String,
    #[serde(rename = "peerURLs")]
    peer_urls: String,
    #[serde(rename = "clientURLs")]
    client_urls: String,
    #[serde(rename = "isLeader")]
    is_leader: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn simple_output_of_events() {
        let mut e = KeyResponse {
            action: Action::Set,
            key: "/a".into(),
            dir: false,
            prev_value: Some("old".into()),
            value: Some("new".into()),
            new_key: false,
            expiration: None,
            ttl: None,
            index: 5,
        };
        assert_eq!(simple(&e), "new");
        e.action = Action::Delete;
        e.value = None;
        assert_eq!(simple(&e), "PrevNode.Value: old");
    }
}
