//! etcdctl's v3 command line (what `etcdctl` runs unless `ETCDCTL_API=2`), on
//! `etcd_client::v3`, printing exactly what etcd's etcdctl 3.4 prints.
//!
//! Commands so far: `put`, `get`, `del`, `version`. Output formats (`-w`): `simple`, `json`,
//! `fields`. Global flags and their `ETCDCTL_*` variables: `--endpoints`, `--cacert`,
//! `--cert`, `--key`, `--user`, `--password`, `--command-timeout`, `--dial-timeout`,
//! `--write-out`. Errors print `Error: <message>` on standard error and exit 1, as etcdctl.
//!
//! Not here yet (issue 17): txn, watch, lease, member, endpoint, snapshot, auth, user and role,
//! lock, elect, compaction, alarm, defrag, move-leader, check, make-mirror; the `table` and
//! `protobuf` formats.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use etcd_client::v3::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use etcd_client::v3::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, ResponseHeader,
};
use etcd_client::v3::proto::mvccpb::KeyValue;
use etcd_client::v3::{Client, Error, Options};

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
    /// Dial timeout for a client connection (accepted; connections time out after 3 s).
    #[arg(long = "dial-timeout", env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration, global = true)]
    dial_timeout: Duration,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Simple,
    Json,
    Fields,
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
    /// Prints the version of etcdctl.
    Version,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration {s:?}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A command's failure, printed as etcdctl prints it.
struct Failure(String);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(match e {
            Error::Status(s) => s.message().to_string(),
            other => other.to_string(),
        })
    }
}

/// Runs the v3 command line with the process's arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
    if let Cmd::Version = cli.command {
        println!("etcdctl version: {}", env!("CARGO_PKG_VERSION"));
        println!("API version: 3.4");
        return ExitCode::SUCCESS;
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("Error: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn client(cli: &Cli) -> Result<Client, Failure> {
    let user = match (&cli.user, &cli.password) {
        (None, _) => None,
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        (Some(u), None) => match u.split_once(':') {
            Some((name, password)) => Some((name.to_string(), password.to_string())),
            None => return Err(Failure("password is missing (--user NAME:PASSWORD)".into())),
        },
    };
    let options = Options {
        ca_file: cli.cacert.clone(),
        client_cert: cli.cert.clone().zip(cli.key_file.clone()),
        user,
    };
    Client::with_options(&cli.endpoints, options).map_err(Failure::from)
}

async fn run(cli: &Cli, out: &mut String) -> Result<(), Failure> {
    let client = client(cli)?;
    let timeout = cli.command_timeout;

    match &cli.command {
        Cmd::Put {
            key,
            value,
            lease,
            prev_kv,
            ignore_value,
            ignore_lease,
        } => {
            let lease = i64::from_str_radix(lease, 16)
                .map_err(|_| Failure(format!("bad lease ID ({lease}), expecting ID in Hex")))?;
            let value = match value {
                Some(v) => v.clone(),
                None if *ignore_value => String::new(),
                None => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .map_err(|e| Failure(e.to_string()))?;
                    v
                }
            };
            let request = PutRequest {
                key: key.clone().into(),
                value: value.into(),
                lease,
                prev_kv: *prev_kv,
                ignore_value: *ignore_value,
                ignore_lease: *ignore_lease,
            };
            let r = within(timeout, client.put_request(request)).await?;
            match cli.write_out {
                Format::Simple => {
                    out.push_str("OK\n");
                    if let Some(kv) = &r.prev_kv {
                        simple_kv(out, kv, false, false);
                    }
                }
                Format::Json => {
                    let mut o = JsonObject::new();
                    o.raw("header", &header_json(&r.header));
                    if let Some(kv) = &r.prev_kv {
                        o.raw("prev_kv", &kv_json(kv));
                    }
                    out.push_str(&o.finish());
                    out.push('\n');
                }
                Format::Fields => {
                    header_fields(out, &r.header);
                    if let Some(kv) = &r.prev_kv {
                        out.push_str("\"PrevKey\" : ");
                        out.push_str(&go_quote(&kv.key));
                        out.push('\n');
                        out.push_str("\"PrevValue\" : ");
                        out.push_str(&go_quote(&kv.value));
                        out.push('\n');
                    }
                }
            }
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
                other => return Err(Failure(format!("unknown consistency flag {other:?}"))),
            };
            let sort_order = match order.as_str() {
                "" => None,
                "ASCEND" => Some(SortOrder::Ascend),
                "DESCEND" => Some(SortOrder::Descend),
                other => return Err(Failure(format!("bad sort order {other:?}"))),
            };
            let sort_target = match sort_by.as_str() {
                "" => None,
                "CREATE" => Some(SortTarget::Create),
                "KEY" => Some(SortTarget::Key),
                "MODIFY" => Some(SortTarget::Mod),
                "VALUE" => Some(SortTarget::Value),
                "VERSION" => Some(SortTarget::Version),
                other => return Err(Failure(format!("bad sort target {other:?}"))),
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
                key: key.clone().into(),
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
            let r = within(timeout, client.range(request)).await?;
            match cli.write_out {
                Format::Simple => {
                    for kv in &r.kvs {
                        simple_kv(out, kv, *keys_only, *print_value_only);
                    }
                    if *count_only {
                        out.push_str(&format!("{}\n", r.count));
                    }
                }
                Format::Json => {
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
                    out.push_str(&o.finish());
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
        Cmd::Del {
            key,
            range_end,
            prefix,
            prev_kv,
            from_key,
        } => {
            let request = DeleteRangeRequest {
                key: key.clone().into(),
                range_end: range_end_of(key, range_end.as_deref(), *prefix, *from_key)?.into(),
                prev_kv: *prev_kv,
            };
            let r = within(timeout, client.delete(request)).await?;
            match cli.write_out {
                Format::Simple => {
                    out.push_str(&format!("{}\n", r.deleted));
                    for kv in &r.prev_kvs {
                        simple_kv(out, kv, false, false);
                    }
                }
                Format::Json => {
                    let mut o = JsonObject::new();
                    o.raw("header", &header_json(&r.header));
                    if r.deleted != 0 {
                        o.raw("deleted", &r.deleted.to_string());
                    }
                    if !r.prev_kvs.is_empty() {
                        let kvs: Vec<String> = r.prev_kvs.iter().map(kv_json).collect();
                        o.raw("prev_kvs", &format!("[{}]", kvs.join(",")));
                    }
                    out.push_str(&o.finish());
                    out.push('\n');
                }
                Format::Fields => {
                    header_fields(out, &r.header);
                    out.push_str(&format!("\"Deleted\" : {}\n", r.deleted));
                    for kv in &r.prev_kvs {
                        kv_fields(out, kv);
                    }
                }
            }
        }
        Cmd::Version => unreachable!("answered before connecting"),
    }
    Ok(())
}

/// `call`'s answer, or etcdctl's error once `timeout` passes.
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r.map_err(Failure::from),
        Err(_) => Err(Failure("context deadline exceeded".into())),
    }
}

/// The range end etcdctl sends for `key` with these flags.
fn range_end_of(
    key: &str,
    given: Option<&str>,
    prefix: bool,
    from_key: bool,
) -> Result<Vec<u8>, Failure> {
    if prefix && from_key {
        return Err(Failure(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one".into(),
        ));
    }
    if given.is_some() && (prefix || from_key) {
        return Err(Failure(
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"
                .into(),
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
    if !value_only {
        out.push_str(&String::from_utf8_lossy(&kv.key));
        out.push('\n');
    }
    if !keys_only {
        out.push_str(&String::from_utf8_lossy(&kv.value));
    }
    out.push('\n');
}

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
    out.push_str(&format!("\"Key\" : {}\n", go_quote(&kv.key)));
    out.push_str(&format!("\"CreateRevision\" : {}\n", kv.create_revision));
    out.push_str(&format!("\"ModRevision\" : {}\n", kv.mod_revision));
    out.push_str(&format!("\"Version\" : {}\n", kv.version));
    out.push_str(&format!("\"Value\" : {}\n", go_quote(&kv.value)));
    out.push_str(&format!("\"Lease\" : {}\n", kv.lease));
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
