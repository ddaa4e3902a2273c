//! `etcdctl lock` and `etcdctl elect`, as etcd 3.4's etcdctl runs them, on the Lock and
//! Election services (which hold etcd's `concurrency` recipes server-side: the same keys,
//! `NAME/LEASE` in hex, and the same order of waiters).
//!
//! Each takes a session: a lease (`lock --ttl`, 10 s by default; 60 s for `elect`) kept alive
//! while the command runs. The holder's key is printed as `etcdctl get` prints it (in every
//! format; `elect -l` without a count, as clientv3's Observe hands a leader out); then:
//! - `lock NAME` holds the lock until SIGINT or SIGTERM, then unlocks; `lock NAME CMD ARGS…`
//!   runs the command with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` set, then unlocks, and fails
//!   as the command failed;
//! - `elect NAME PROPOSAL` campaigns, leads until a signal, then resigns; `elect -l NAME`
//!   prints each leader as it changes.
//!
//! A signal while waiting (for the lock, or to lead) ends with `context canceled`. A session
//! whose lease is lost ends with `session expired` (`elect: session expired`). The session's
//! lease is revoked on the way out, so nothing the command took outlives it.

use std::io::Write as _;
use std::time::Duration;

use etcd_client::v3::proto::etcdserverpb::{RangeRequest, RangeResponse};
use etcd_client::v3::proto::v3electionpb::{CampaignRequest, LeaderKey, ResignRequest};
use etcd_client::v3::proto::v3lockpb::{LockRequest, UnlockRequest};
use etcd_client::v3::{Client, KeepAlive, KeepAliveState};

use super::{bad_args, fail, print_range, Cli, Failure, Shown};

/// The session TTL `elect` uses (etcd's `concurrency` default).
const DEFAULT_SESSION_TTL: i64 = 60;

/// SIGINT or SIGTERM.
async fn signalled() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handling, wait forever (the process still ends on the signal).
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Resolves once the session's lease is gone.
async fn lost(keeper: &KeepAlive) {
    loop {
        if keeper.state() == KeepAliveState::Gone {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A session: a lease kept alive until dropped (and then revoked by [`Session::close`]).
struct Session {
    client: Client,
    lease: i64,
    keeper: KeepAlive,
}

impl Session {
    async fn new(client: &Client, ttl: i64) -> Result<Session, Failure> {
        let lease = client.lease_grant(ttl).await?.id;
        Ok(Session {
            client: client.clone(),
            lease,
            keeper: client.keep_alive(lease),
        })
    }

    /// Revokes the lease (its keys go with it).
    async fn close(self) {
        drop(self.keeper);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.client.lease_revoke(self.lease))
            .await;
    }
}

/// Prints `key` as `etcdctl get` would, at once.
async fn print_key(cli: &Cli, client: &Client, key: &[u8]) -> Result<RangeResponse, Failure> {
    let r = client
        .range(RangeRequest {
            key: key.to_vec().into(),
            ..Default::default()
        })
        .await?;
    print_now(cli, &r)?;
    Ok(r)
}

/// `r` printed at once as `etcdctl get` prints it.
fn print_now(cli: &Cli, r: &RangeResponse) -> Result<(), Failure> {
    let mut out = String::new();
    if !super::rpc_printed(&mut out, cli.write_out, r, true)? {
        print_range(&mut out, cli.write_out, r, Shown::default());
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

/// `lock NAME [COMMAND ARGS…]`.
pub(super) async fn lock(cli: &Cli, args: &[String], ttl: i64) -> Result<(), Failure> {
    let Some((name, command)) = args.split_first() else {
        return Err(bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let client = super::client(cli)?;
    let session = Session::new(&client, ttl).await?;
    let request = LockRequest {
        name: name.clone().into_bytes().into(),
        lease: session.lease,
    };
    let locked = tokio::select! {
        r = client.lock(request) => r,
        _ = signalled() => {
            session.close().await;
            return Err(fail("context canceled"));
        }
    };
    let locked = match locked {
        Ok(l) => l,
        Err(e) => {
            session.close().await;
            return Err(e.into());
        }
    };
    let key = locked.key.to_vec();
    let unlock = || {
        client.unlock(UnlockRequest {
            key: key.clone().into(),
        })
    };
    if let Some((program, rest)) = command.split_first() {
        let revision = locked.header.map_or(0, |h| h.revision);
        let status = tokio::process::Command::new(program)
            .args(rest)
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).as_ref())
            .env("ETCD_LOCK_REV", revision.to_string())
            .status()
            .await;
        let unlocked = unlock().await;
        session.close().await;
        return match super::gotext::run_error(program, &status) {
            Some(e) => Err(fail(e)),
            None => unlocked.map(|_| ()).map_err(Failure::from),
        };
    }
    let held = print_key(cli, &client, &key).await;
    if let Err(f) = held {
        session.close().await;
        return Err(f);
    }
    tokio::select! {
        _ = signalled() => {
            let unlocked = unlock().await;
            session.close().await;
            unlocked.map(|_| ()).map_err(Failure::from)
        }
        _ = lost(&session.keeper) => Err(fail("session expired")),
    }
}

/// `elect NAME PROPOSAL`, or `elect -l NAME`.
pub(super) async fn elect(cli: &Cli, args: &[String], listen: bool) -> Result<(), Failure> {
    let (name, proposal) = match (args, listen) {
        ([name], true) => (name, None),
        ([_], false) => return Err(bad_args("no proposal argument but -l not set")),
        ([name, proposal], false) => (name, Some(proposal)),
        ([_, _], true) => return Err(bad_args("proposal given but -l is set")),
        _ => {
            return Err(bad_args(
                "elect takes one election name argument and an optional proposal argument",
            ))
        }
    };
    let client = super::client(cli)?;
    let Some(proposal) = proposal else {
        return observe(cli, &client, name).await;
    };
    let session = Session::new(&client, DEFAULT_SESSION_TTL).await?;
    let request = CampaignRequest {
        name: name.clone().into_bytes().into(),
        lease: session.lease,
        value: proposal.clone().into_bytes().into(),
    };
    let campaign = tokio::select! {
        r = client.campaign(request) => r,
        _ = signalled() => {
            session.close().await;
            return Err(fail("context canceled"));
        }
    };
    let leader: LeaderKey = match campaign {
        Ok(r) => r.leader.unwrap_or_default(),
        Err(e) => {
            session.close().await;
            return Err(e.into());
        }
    };
    if let Err(f) = print_key(cli, &client, &leader.key).await {
        session.close().await;
        return Err(f);
    }
    tokio::select! {
        _ = signalled() => {
            let resigned = client.resign(ResignRequest { leader: Some(leader) }).await;
            session.close().await;
            resigned.map(|_| ()).map_err(Failure::from)
        }
        _ = lost(&session.keeper) => Err(fail("elect: session expired")),
    }
}

/// `elect -l NAME`: each leader as it comes, until a signal.
async fn observe(cli: &Cli, client: &Client, name: &str) -> Result<(), Failure> {
    let mut leaders = client.observe(name.to_string()).await?;
    loop {
        let next = tokio::select! {
            n = leaders.message() => n,
            _ = signalled() => return Ok(()),
        };
        let Ok(Some(leader)) = next else {
            return Err(fail("elect: observer lost"));
        };
        let Some(kv) = leader.kv else { continue };
        // What clientv3's Observe hands out: the header and the leader's pair, no count.
        let r = RangeResponse {
            header: leader.header,
            kvs: vec![kv],
            ..Default::default()
        };
        print_now(cli, &r)?;
    }
}
