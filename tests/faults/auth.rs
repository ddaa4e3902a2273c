//! v3 auth under faults: a user's permissions never let a write through that its roles
//! forbid, across leader changes, kills (tokens lost with a restart are made again) and
//! pauses.
//!
//! User `writer` holds role `w` (read-write on `allowed/`…) and role `flip`, to which an admin
//! thread (as root) grants read-write on `toggle/`… and revokes it again, over and over.
//! Writer threads, each through a random member, put under `allowed/` (must go through when
//! the cluster can serve), under `forbidden/` (must never succeed; also hidden in a nested
//! txn and as a delete), and under `toggle/`. A put under `toggle/` sent after a revocation was
//! acknowledged and answered before the next grant was even sent applied while the permission
//! was revoked: it must have been refused. At the end, nothing exists under `forbidden/`, and
//! no `toggle/` key holds a value whose write was refused.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use etcd_v3proto::authpb::{permission::Type as PermType, Permission};
use etcd_v3proto::etcdserverpb::auth_client::AuthClient;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::request_op::Request as ReqOp;
use etcd_v3proto::etcdserverpb::*;
use tonic::transport::Channel;
use tonic::Code;

use super::*;

/// A deadline for one call.
const CALL: Duration = Duration::from_secs(6);

/// What one thread saw.
#[derive(Default)]
pub(super) struct AuthRun {
    pub(super) anomalies: Vec<String>,
    /// Puts under `toggle/` that succeeded: (key, value, sent, answered) in ns since start.
    pub(super) toggle_ok: Vec<(String, String, u64, u64)>,
    /// Values of refused puts under `toggle/`.
    pub(super) toggle_refused: Vec<String>,
    pub(super) allowed_ok: u64,
    pub(super) forbidden_refused: u64,
    pub(super) reauthentications: u64,
}

/// The admin's changes to `flip`: (granted?, sent, answered or `None` if unknown), in ns.
pub(super) type Changes = Vec<(bool, u64, Option<u64>)>;

fn req<T>(token: &str, m: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    if !token.is_empty() {
        if let Ok(v) = token.parse() {
            r.metadata_mut().insert("token", v);
        }
    }
    r
}

async fn call<T>(
    f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(CALL, f).await {
        Ok(r) => r.map(|r| r.into_inner()),
        Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
    }
}

async fn authenticate(ch: &Channel, name: &str, password: &str) -> Option<String> {
    call(
        AuthClient::new(ch.clone()).authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        }),
    )
    .await
    .ok()
    .map(|r| r.token)
}

fn toggle_perm() -> Option<Permission> {
    Some(Permission {
        perm_type: PermType::Readwrite as i32,
        key: Bytes::from_static(b"toggle/"),
        range_end: Bytes::from_static(b"toggle0"),
    })
}

/// Users, roles and auth on, through the member at `addr` (auth off).
pub(super) fn set_up(addr: &str) {
    let rt = v3::runtime();
    let _in = rt.enter();
    let ch = &v3::channels(&[addr.to_string()])[0];
    rt.block_on(async {
        let mut a = AuthClient::new(ch.clone());
        for (name, pw) in [("root", "rootpw"), ("writer", "writerpw")] {
            call(a.user_add(AuthUserAddRequest {
                name: name.into(),
                password: pw.into(),
                ..Default::default()
            }))
            .await
            .expect("user add");
        }
        for role in ["w", "flip"] {
            call(a.role_add(AuthRoleAddRequest { name: role.into() }))
                .await
                .expect("role add");
        }
        call(a.role_grant_permission(AuthRoleGrantPermissionRequest {
            name: "w".into(),
            perm: Some(Permission {
                perm_type: PermType::Readwrite as i32,
                key: Bytes::from_static(b"allowed/"),
                range_end: Bytes::from_static(b"allowed0"),
            }),
        }))
        .await
        .expect("grant");
        for (user, role) in [("root", "root"), ("writer", "w"), ("writer", "flip")] {
            call(a.user_grant_role(AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            }))
            .await
            .expect("grant role");
        }
        call(a.auth_enable(AuthEnableRequest {}))
            .await
            .expect("auth enable");
    });
}

/// The admin: grants and revokes `flip`'s permission on `toggle/` until `until`.
pub(super) fn run_admin(addrs: &[String], seed: u64, start: Instant, until: Instant) -> Changes {
    let rt = v3::runtime();
    let _in = rt.enter();
    let chans = v3::channels(addrs);
    let mut rng = Rng::new(seed ^ 0xA11C_E5ED);
    let mut changes = Changes::new();
    let mut token = String::new();
    let mut grant = true;
    while Instant::now() < until {
        let ch = &chans[rng.index(chans.len())];
        rt.block_on(async {
            if token.is_empty() {
                token = authenticate(ch, "root", "rootpw").await.unwrap_or_default();
                return;
            }
            let mut a = AuthClient::new(ch.clone());
            let sent = now_nanos(start);
            let r = if grant {
                call(a.role_grant_permission(req(
                    &token,
                    AuthRoleGrantPermissionRequest {
                        name: "flip".into(),
                        perm: toggle_perm(),
                    },
                )))
                .await
                .map(drop)
            } else {
                call(a.role_revoke_permission(req(
                    &token,
                    AuthRoleRevokePermissionRequest {
                        role: "flip".into(),
                        key: Bytes::from_static(b"toggle/"),
                        range_end: Bytes::from_static(b"toggle0"),
                    },
                )))
                .await
                .map(drop)
            };
            match r {
                Ok(()) => {
                    changes.push((grant, sent, Some(now_nanos(start))));
                    grant = !grant;
                }
                // Revoking what a lost answer already revoked.
                Err(s) if s.message().contains("permission is not granted") => {
                    changes.push((grant, sent, None));
                    grant = !grant;
                }
                Err(s) => {
                    changes.push((grant, sent, None));
                    if s.code() == Code::Unauthenticated || s.message().contains("old") {
                        token.clear();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50 + rng.below(250))).await;
        });
    }
    changes
}

/// A writer thread as user `writer`.
pub(super) fn run_writer(
    id: usize,
    addrs: &[String],
    seed: u64,
    start: Instant,
    until: Instant,
    stop: &AtomicBool,
) -> AuthRun {
    let rt = v3::runtime();
    let _in = rt.enter();
    let chans = v3::channels(addrs);
    let mut rng = Rng::new(seed ^ (id as u64 + 7).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut run = AuthRun::default();
    let mut tokens: Vec<String> = vec![String::new(); chans.len()];
    let mut seq = 0u64;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        let m = rng.index(chans.len());
        let ch = &chans[m];
        seq += 1;
        rt.block_on(async {
            if tokens[m].is_empty() {
                match authenticate(ch, "writer", "writerpw").await {
                    Some(t) => {
                        tokens[m] = t;
                        run.reauthentications += 1;
                    }
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
                return;
            }
            let token = tokens[m].clone();
            let mut kv = KvClient::new(ch.clone());
            let k = rng.below(4);
            let value = format!("w{id}-{seq}");
            let put = |key: String| PutRequest {
                key: Bytes::from(key),
                value: Bytes::from(value.clone()),
                ..Default::default()
            };
            let what = rng.below(100);
            let sent = now_nanos(start);
            let (kind, r) = match what {
                0..=29 => (
                    "allowed",
                    call(kv.put(req(&token, put(format!("allowed/k{k}")))))
                        .await
                        .map(drop),
                ),
                30..=49 => (
                    "forbidden",
                    call(kv.put(req(&token, put(format!("forbidden/k{k}")))))
                        .await
                        .map(drop),
                ),
                50..=59 => {
                    let nested = TxnRequest {
                        success: vec![
                            RequestOp {
                                request: Some(ReqOp::RequestPut(put(format!("allowed/k{k}")))),
                            },
                            RequestOp {
                                request: Some(ReqOp::RequestTxn(TxnRequest {
                                    success: vec![RequestOp {
                                        request: Some(ReqOp::RequestPut(put(format!(
                                            "forbidden/n{k}"
                                        )))),
                                    }],
                                    ..Default::default()
                                })),
                            },
                        ],
                        ..Default::default()
                    };
                    (
                        "forbidden",
                        call(kv.txn(req(&token, nested))).await.map(drop),
                    )
                }
                60..=64 => {
                    let d = DeleteRangeRequest {
                        key: Bytes::from_static(b"forbidden/"),
                        range_end: Bytes::from_static(b"forbidden0"),
                        ..Default::default()
                    };
                    (
                        "forbidden",
                        call(kv.delete_range(req(&token, d))).await.map(drop),
                    )
                }
                _ => (
                    "toggle",
                    call(kv.put(req(&token, put(format!("toggle/k{k}")))))
                        .await
                        .map(drop),
                ),
            };
            let answered = now_nanos(start);
            match (kind, r) {
                ("allowed", Ok(())) => run.allowed_ok += 1,
                ("toggle", Ok(())) => {
                    run.toggle_ok
                        .push((format!("toggle/k{k}"), value.clone(), sent, answered))
                }
                (_, Ok(())) => run.anomalies.push(format!(
                    "writer {id}: a forbidden write went through ({value})"
                )),
                (_, Err(s)) if s.code() == Code::PermissionDenied => {
                    if kind == "forbidden" {
                        run.forbidden_refused += 1;
                    } else if kind == "toggle" {
                        run.toggle_refused.push(value.clone());
                    } else {
                        run.anomalies.push(format!(
                            "writer {id}: {kind} write refused: {}",
                            s.message()
                        ));
                    }
                }
                (_, Err(s)) if s.code() == Code::Unauthenticated => tokens[m].clear(),
                (_, Err(s))
                    if s.message() == "etcdserver: revision of auth store is old"
                        || s.message() == "etcdserver: user name is empty" =>
                {
                    tokens[m].clear()
                }
                (_, Err(s)) => {
                    if let Outcome::Anomaly(a) = v3::failure(&s) {
                        run.anomalies.push(format!("writer {id}: {a}"));
                    }
                }
            }
        });
    }
    run
}

/// The writes that succeeded while the permission was surely revoked: sent after a
/// revocation was answered, and answered before the next grant was sent.
pub(super) fn writes_while_revoked(
    changes: &Changes,
    writes: &[(String, String, u64, u64)],
) -> Vec<String> {
    let mut revoked: Vec<(u64, u64)> = Vec::new();
    for (i, &(grant, _, answered)) in changes.iter().enumerate() {
        let (false, Some(from)) = (grant, answered) else {
            continue;
        };
        let to = changes[i + 1..]
            .iter()
            .find(|c| c.0)
            .map_or(u64::MAX, |c| c.1);
        revoked.push((from, to));
    }
    writes
        .iter()
        .filter(|(_, _, sent, answered)| {
            revoked
                .iter()
                .any(|&(from, to)| *sent >= from && *answered <= to)
        })
        .map(|(k, v, sent, answered)| format!("{k}={v} (sent {sent} ns, answered {answered} ns)"))
        .collect()
}

/// Everything under `prefix`, read as root through `addr` once the cluster is whole.
pub(super) fn read_all(addr: &str, prefix: &str) -> Vec<(String, String)> {
    let rt = v3::runtime();
    let _in = rt.enter();
    let ch = v3::channels(&[addr.to_string()]).remove(0);
    let end = format!("{}0", prefix.trim_end_matches('/'));
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(token) = authenticate(&ch, "root", "rootpw").await {
                let r = call(KvClient::new(ch.clone()).range(req(
                    &token,
                    RangeRequest {
                        key: Bytes::from(prefix.to_string()),
                        range_end: Bytes::from(end.clone()),
                        ..Default::default()
                    },
                )))
                .await;
                if let Ok(r) = r {
                    return r
                        .kvs
                        .into_iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(&kv.key).into_owned(),
                                String::from_utf8_lossy(&kv.value).into_owned(),
                            )
                        })
                        .collect();
                }
            }
            assert!(Instant::now() < deadline, "no final read within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
