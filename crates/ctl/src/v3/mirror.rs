//! `etcdctl make-mirror DEST`: copies the keys under `--prefix` (every key by default) to
//! another cluster, then keeps copying their changes, as etcd 3.4's etcdctl does.
//!
//! - The base: every key at one revision, read in pages of 1,000, each put at the
//!   destination (under `--dest-prefix`, the source prefix by default, or at the root with
//!   `--no-dest-prefix`).
//! - The updates: a watch from the revision after the base, resumed on the next source
//!   member when its stream breaks; each revision's changes are written at the destination
//!   in one transaction, so the mirror never shows half a revision.
//! - Every 30 s the number of keys copied so far is printed. A compacted watch ends the
//!   mirror with etcd's `mvcc: required revision has been compacted`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::v3::proto::etcdserverpb::request_op::Request as Op;
use etcd_client::v3::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
};
use etcd_client::v3::{Client, Options};

use super::{bad_args, fail, Cli, Failure};

/// Keys read per page of the base.
const PAGE: i64 = 1000;
/// How often the count is printed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// `make-mirror`'s own flags.
#[derive(clap::Args, Debug)]
pub(super) struct MirrorArgs {
    /// The destination endpoint.
    args: Vec<String>,
    /// Key-value prefix to mirror.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Destination prefix to mirror a prefix to a different prefix in the destination cluster.
    #[arg(long = "dest-prefix", default_value = "")]
    dest_prefix: String,
    /// Mirror key-values to the root of the destination cluster.
    #[arg(long = "no-dest-prefix")]
    no_dest_prefix: bool,
    /// Identify secure client using this TLS certificate file for the destination cluster.
    #[arg(long = "dest-cert")]
    dest_cert: Option<std::path::PathBuf>,
    /// Identify secure client using this TLS key file.
    #[arg(long = "dest-key")]
    dest_key: Option<std::path::PathBuf>,
    /// Verify certificates of TLS enabled secure servers using this CA bundle.
    #[arg(long = "dest-cacert")]
    dest_cacert: Option<std::path::PathBuf>,
    /// Disable transport security for client connections (https:// endpoints use TLS).
    #[arg(long = "dest-insecure-transport", default_value = "true", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    dest_insecure_transport: bool,
}

/// Runs the mirror until it fails (it has no end of its own).
pub(super) async fn make_mirror(cli: &Cli, m: &MirrorArgs) -> Result<(), Failure> {
    let [dest] = m.args.as_slice() else {
        return Err(bad_args("make-mirror takes one destination argument"));
    };
    if m.no_dest_prefix && !m.dest_prefix.is_empty() {
        return Err(bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let source = super::client(cli)?;
    let options = Options {
        ca_file: m.dest_cacert.clone(),
        client_cert: m.dest_cert.clone().zip(m.dest_key.clone()),
        dial_timeout: Some(cli.dial_timeout),
        keep_alive: Some((cli.keepalive_time, cli.keepalive_timeout)),
        ..Default::default()
    };
    let _ = m.dest_insecure_transport;
    let dest = Client::with_options([dest.as_str()], options)?;
    let dest_prefix = if m.no_dest_prefix {
        String::new()
    } else if m.dest_prefix.is_empty() {
        m.prefix.clone()
    } else {
        m.dest_prefix.clone()
    };
    let renamed = |key: &[u8]| -> Vec<u8> {
        // etcdctl replaces the first occurrence of the prefix (the key starts with it).
        let mut out = dest_prefix.as_bytes().to_vec();
        out.extend_from_slice(&key[m.prefix.len().min(key.len())..]);
        out
    };
    let total = Arc::new(AtomicU64::new(0));
    let reporter = {
        let total = total.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REPORT_EVERY).await;
                println!("{}", total.load(Ordering::Relaxed));
            }
        })
    };
    let result = mirror(&source, &dest, &m.prefix, &renamed, &total).await;
    reporter.abort();
    result
}

async fn mirror(
    source: &Client,
    dest: &Client,
    prefix: &str,
    renamed: &dyn Fn(&[u8]) -> Vec<u8>,
    total: &AtomicU64,
) -> Result<(), Failure> {
    // The prefix's keys (every key for an empty prefix), as `get --prefix` reads them.
    let mut key = super::key_of(prefix, true, false);
    let end = etcd_client::v3::prefix_end(prefix.as_bytes());
    // The base, at one revision.
    let mut rev = 0;
    loop {
        let page = source
            .range(RangeRequest {
                key: key.clone().into(),
                range_end: end.clone().into(),
                limit: PAGE,
                revision: rev,
                ..Default::default()
            })
            .await?;
        if rev == 0 {
            rev = page.header.as_ref().map_or(0, |h| h.revision);
        }
        for kv in &page.kvs {
            dest.put_request(PutRequest {
                key: renamed(&kv.key).into(),
                value: kv.value.clone(),
                ..Default::default()
            })
            .await?;
            total.fetch_add(1, Ordering::Relaxed);
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = last.key.to_vec();
                key.push(0);
            }
            _ => break,
        }
    }
    // Then every change after it, a revision at a time, resumed on another member when the
    // stream breaks (from the revision after the last one copied).
    let mut watch = source.watch(WatchCreateRequest {
        key: super::key_of(prefix, true, false).into(),
        range_end: end.into(),
        start_revision: rev + 1,
        ..Default::default()
    });
    loop {
        let events = match watch.next_batch().await {
            Ok(Some(events)) => events,
            Ok(None) => return Err(fail("the source's watch ended")),
            Err(etcd_client::v3::Error::Compacted { .. }) => {
                return Err(fail(
                    "etcdserver: mvcc: required revision has been compacted",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let mut ops = Vec::new();
        let mut at = 0;
        for e in &events {
            let Some(kv) = &e.kv else { continue };
            if at != 0 && kv.mod_revision > at {
                commit(dest, std::mem::take(&mut ops)).await?;
            }
            at = kv.mod_revision;
            let key = renamed(&kv.key);
            ops.push(RequestOp {
                request: Some(if e.r#type == 1 {
                    Op::RequestDeleteRange(DeleteRangeRequest {
                        key: key.into(),
                        ..Default::default()
                    })
                } else {
                    Op::RequestPut(PutRequest {
                        key: key.into(),
                        value: kv.value.clone(),
                        ..Default::default()
                    })
                }),
            });
            total.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            commit(dest, ops).await?;
        }
    }
}

/// One revision's changes at the destination, in one transaction.
async fn commit(dest: &Client, ops: Vec<RequestOp>) -> Result<(), Failure> {
    dest.txn(TxnRequest {
        success: ops,
        ..Default::default()
    })
    .await?;
    Ok(())
}
