//! etcd flags (and config-file keys) that etcd-rs accepts so that an etcd deployment's unit
//! and config files start it unchanged, but that change nothing here, or only at etcd's
//! default value.
//!
//! Each entry says why. A flag whose non-default value would silently change what an operator
//! relies on (a discovery service, a proxy, automatic TLS, skipped fsyncs, a certificate
//! revocation list) is refused at any other value, with the flag named: starting without it
//! would be worse than not starting. A tuning knob of etcd's Go internals is accepted with any
//! value and mentioned once in the log.
//!
//! Not here: the flags etcd-rs implements (`super::FLAGS`).

use super::{Error, Kind};

/// What etcd-rs does with a compatibility flag's value.
#[derive(Clone, Copy)]
pub(super) enum Accept {
    /// Any value (of the flag's kind); the reason is logged when the flag is given.
    Any(&'static str),
    /// Only these values (etcd's defaults, or what means "off"); the reason is the error
    /// for any other.
    Only(&'static [&'static str], &'static str),
}

/// (name, kind, what is accepted).
pub(super) const COMPAT: &[(&str, Kind, Accept)] = &[
    ("discovery", Kind::Str, Accept::Only(&[""], "discovery services are not supported: use --initial-cluster")),
    ("discovery-srv", Kind::Str, Accept::Only(&[""], "DNS discovery is not supported: use --initial-cluster")),
    ("discovery-srv-name", Kind::Str, Accept::Only(&[""], "DNS discovery is not supported: use --initial-cluster")),
    ("discovery-proxy", Kind::Str, Accept::Only(&[""], "discovery services are not supported: use --initial-cluster")),
    ("discovery-fallback", Kind::Str, Accept::Only(&["proxy", "exit"], "must be proxy or exit (and discovery is not supported)")),
    ("proxy", Kind::Str, Accept::Only(&["off", "false", ""], "proxy mode is not supported: run a member, or point clients at the members")),
    ("proxy-failure-wait", Kind::Int, Accept::Any("only used in proxy mode, which is off")),
    ("proxy-refresh-interval", Kind::Int, Accept::Any("only used in proxy mode, which is off")),
    ("proxy-dial-timeout", Kind::Int, Accept::Any("only used in proxy mode, which is off")),
    ("proxy-write-timeout", Kind::Int, Accept::Any("only used in proxy mode, which is off")),
    ("proxy-read-timeout", Kind::Int, Accept::Any("only used in proxy mode, which is off")),
    ("auto-tls", Kind::Bool, Accept::Only(&["false"], "self-signed client certificates are not generated: give --cert-file and --key-file")),
    ("peer-auto-tls", Kind::Bool, Accept::Only(&["false"], "self-signed peer certificates are not generated: give --peer-cert-file and --peer-key-file")),
    ("force-new-cluster", Kind::Bool, Accept::Only(&["false"], "forcing a one-member cluster from a member's data is not supported: restore a snapshot (--restore-snapshot) instead")),
    ("unsafe-no-fsync", Kind::Bool, Accept::Only(&["false"], "etcd-rs always fsyncs before answering a write")),
    ("experimental-enable-v2v3", Kind::Str, Accept::Only(&[""], "the v2 API over the v3 keyspace is not supported: v2 has its own keyspace")),
    ("client-crl-file", Kind::Str, Accept::Only(&[""], "certificate revocation lists are not supported")),
    ("peer-crl-file", Kind::Str, Accept::Only(&[""], "certificate revocation lists are not supported")),
    ("peer-cert-allowed-cn", Kind::Str, Accept::Only(&[""], "restricting peers by certificate CN is not supported")),
    ("peer-cert-allowed-hostname", Kind::Str, Accept::Only(&[""], "restricting peers by certificate host name is not supported")),
    ("enable-log-rotation", Kind::Bool, Accept::Only(&["false"], "log rotation is left to the system (logrotate, journald)")),
    ("log-rotation-config-json", Kind::Str, Accept::Any("log rotation is left to the system (logrotate, journald)")),
    ("strict-reconfig-check", Kind::Bool, Accept::Any("membership changes are always checked against the cluster's health")),
    ("enable-grpc-gateway", Kind::Bool, Accept::Any("the v3 JSON gateway is always served under /v3")),
    ("pre-vote", Kind::Bool, Accept::Any("raft pre-vote is always on")),
    ("initial-election-tick-advance", Kind::Bool, Accept::Any("elections start after one election timeout")),
    ("log-package-levels", Kind::Str, Accept::Any("per-package log levels are capnslog's: use --log-level")),
    ("grpc-keepalive-min-time", Kind::Str, Accept::Any("gRPC keepalive uses fixed settings")),
    ("grpc-keepalive-interval", Kind::Str, Accept::Any("gRPC keepalive uses fixed settings")),
    ("grpc-keepalive-timeout", Kind::Str, Accept::Any("gRPC keepalive uses fixed settings")),
    ("max-concurrent-streams", Kind::Int, Accept::Any("HTTP/2 streams per connection use the server's default")),
    ("host-whitelist", Kind::Str, Accept::Any("Host headers are not checked")),
    ("cipher-suites", Kind::Str, Accept::Any("TLS cipher suites are rustls' safe defaults (TLS 1.2 and 1.3, forward-secret AEAD only)")),
    ("backend-batch-interval", Kind::Str, Accept::Any("writes are batched per fsync, not by a timer")),
    ("backend-batch-limit", Kind::Int, Accept::Any("writes are batched per fsync, not by count")),
    ("experimental-backend-bbolt-freelist-type", Kind::Str, Accept::Any("there is no bbolt backend")),
    ("experimental-enable-lease-checkpoint", Kind::Bool, Accept::Any("lease expiry is in the replicated log already")),
    ("experimental-enable-lease-checkpoint-persist", Kind::Bool, Accept::Any("lease expiry is in the replicated log already")),
    ("experimental-compaction-batch-limit", Kind::Int, Accept::Any("compaction is not batched")),
    ("experimental-warning-apply-duration", Kind::Str, Accept::Any("slow applies are those over 100ms")),
    ("self-signed-cert-validity", Kind::Int, Accept::Any("no self-signed certificates are made")),
    ("socket-reuse-address", Kind::Bool, Accept::Any("listening sockets use the system's defaults")),
    ("socket-reuse-port", Kind::Bool, Accept::Any("listening sockets use the system's defaults")),
];

/// The compatibility flag `name`, if it is one.
pub(super) fn find(name: &str) -> Option<(Kind, Accept)> {
    COMPAT
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, kind, accept)| (*kind, *accept))
}

/// Checks a compatibility flag's value: a note to log if it is accepted, the error naming it
/// if not.
pub(super) fn check(name: &str, accept: Accept, value: &str) -> Result<String, Error> {
    match accept {
        Accept::Any(why) => Ok(format!("--{name}={value} has no effect: {why}")),
        Accept::Only(ok, _) if ok.contains(&value) => Ok(String::new()),
        Accept::Only(_, why) => Err(Error::Invalid(format!("--{name}={value:?}: {why}"))),
    }
}

/// The usage lines for compatibility flags.
pub(super) fn usage() -> String {
    let names: Vec<&str> = COMPAT.iter().map(|(n, ..)| *n).collect();
    let mut s = String::from(
        "\naccepted for compatibility with etcd's flags and config files (no effect, or only at etcd's default):\n ",
    );
    let mut width = 1;
    for n in names {
        if width + n.len() + 3 > 96 {
            s.push_str("\n ");
            width = 1;
        }
        s.push_str(&format!(" --{n}"));
        width += n.len() + 3;
    }
    s.push('\n');
    s
}
