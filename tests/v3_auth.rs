//! v3 auth through a gRPC client, for what etcdctl's transcript (tests/etcdctl_v3.rs) cannot
//! show: tokens (unknown, forged, lapsed, voided by a password change or by turning auth
//! off; made through one member and used through another; JWTs and the auth revision they
//! carry), every service's check (KV, Watch, Lease, Lock, Cluster, Maintenance) with etcd's
//! codes and messages, and auth state surviving kill -9 through the log and through
//! snapshots.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_v3proto::authpb::{permission::Type as PermType, Permission, UserAddOptions};
use etcd_v3proto::etcdserverpb::auth_client::AuthClient;
use etcd_v3proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_v3proto::etcdserverpb::kv_client::KvClient;
use etcd_v3proto::etcdserverpb::lease_client::LeaseClient;
use etcd_v3proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::watch_client::WatchClient;
use etcd_v3proto::etcdserverpb::watch_request::RequestUnion;
use etcd_v3proto::etcdserverpb::*;
use etcd_v3proto::v3lockpb::lock_client::LockClient;
use etcd_v3proto::v3lockpb::LockRequest;
use support::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

const WAIT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `message` with `token` in its metadata (none for "").
fn as_user<T>(token: &str, message: T) -> Request<T> {
    let mut r = Request::new(message);
    if !token.is_empty() {
        r.metadata_mut()
            .insert("token", token.parse().expect("token metadata"));
    }
    r
}

/// Asserts a refusal's code and message.
#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, message: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} {message:?}, got {v:?}"),
        Err(s) => assert_eq!((s.code(), s.message()), (code, message), "{s:?}"),
    }
}

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: b(k),
        value: b(v),
        ..Default::default()
    }
}

fn range_req(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: b(k),
        range_end: b(end),
        ..Default::default()
    }
}

fn perm(t: PermType, key: &str, end: &str) -> Option<Permission> {
    Some(Permission {
        perm_type: t as i32,
        key: b(key),
        range_end: b(end),
    })
}

/// With auth off: user `root` (role root), user `alice` (password `alicepw`) holding role
/// `app`, which may read and write `app/`…, and read `shared`; then auth on.
async fn set_up(ch: &Channel) {
    let mut auth = AuthClient::new(ch.clone());
    for (name, password) in [("root", "rootpw"), ("alice", "alicepw")] {
        auth.user_add(AuthUserAddRequest {
            name: name.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .expect("user add");
    }
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .expect("grant root");
    auth.role_add(AuthRoleAddRequest { name: "app".into() })
        .await
        .expect("role add");
    for p in [
        perm(PermType::Readwrite, "app/", "app0"),
        perm(PermType::Read, "shared", ""),
    ] {
        auth.role_grant_permission(AuthRoleGrantPermissionRequest {
            name: "app".into(),
            perm: p,
        })
        .await
        .expect("grant permission");
    }
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "alice".into(),
        role: "app".into(),
    })
    .await
    .expect("grant app");
    auth.auth_enable(AuthEnableRequest {})
        .await
        .expect("auth enable");
}

async fn token(ch: &Channel, name: &str, password: &str) -> String {
    AuthClient::new(ch.clone())
        .authenticate(AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("authenticate {name}: {e:?}"))
        .into_inner()
        .token
}

async fn put_as(ch: &Channel, token: &str, k: &str, v: &str) -> Result<PutResponse, tonic::Status> {
    KvClient::new(ch.clone())
        .put(as_user(token, put_req(k, v)))
        .await
        .map(|r| r.into_inner())
}

/// The first response of a watch of `key` opened with `token`.
async fn first_watch_response(ch: &Channel, token: &str, key: &str) -> WatchResponse {
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b(key),
            ..Default::default()
        })),
    };
    let requests =
        futures_util::stream::iter([create]).chain(futures_util::stream::pending::<WatchRequest>());
    let mut stream = WatchClient::new(ch.clone())
        .watch(as_user(token, requests))
        .await
        .expect("watch stream")
        .into_inner();
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("stream ok")
        .expect("a response")
}

use futures_util::StreamExt as _;

#[test]
fn every_service_checks_the_caller_with_etcds_codes_and_messages() {
    let node = Node::start("v3auth", &["--bcrypt-cost", "4"]);
    rt().block_on(async {
        let ch = grpc_channel(&node.client_url()).await;
        set_up(&ch).await;
        let mut auth = AuthClient::new(ch.clone());
        refused(
            auth.authenticate(AuthenticateRequest {
                name: "alice".into(),
                password: "wrong".into(),
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        );
        refused(
            auth.authenticate(AuthenticateRequest {
                name: "nobody".into(),
                password: "x".into(),
            })
            .await,
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        );
        let alice = token(&ch, "alice", "alicepw").await;
        let root = token(&ch, "root", "rootpw").await;
        let (prefix, index) = alice.split_once('.').expect("a simple token");
        assert_eq!(prefix.len(), 16, "{alice}");
        assert!(prefix.bytes().all(|c| c.is_ascii_alphabetic()), "{alice}");
        assert!(index.parse::<u64>().is_ok(), "{alice}");

        // KV: the permitted key, a key outside, nobody, an unknown token.
        put_as(&ch, &alice, "app/x", "1")
            .await
            .expect("permitted put");
        refused(
            put_as(&ch, &alice, "other", "1").await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        refused(
            put_as(&ch, "", "app/x", "1").await,
            Code::InvalidArgument,
            "etcdserver: user name is empty",
        );
        refused(
            put_as(&ch, "AAAAAAAAAAAAAAAA.3", "app/x", "1").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        let mut kv = KvClient::new(ch.clone());
        let got = kv
            .range(as_user(&alice, range_req("app/", "app0")))
            .await
            .expect("a permitted range")
            .into_inner();
        assert_eq!(got.count, 1);
        // A range only partly permitted is refused; serializable reads too.
        refused(
            kv.range(as_user(&alice, range_req("app", "apq"))).await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        refused(
            kv.range(as_user(
                &alice,
                RangeRequest {
                    serializable: true,
                    ..range_req("other", "")
                },
            ))
            .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        // Read-only permission: reading yes, writing no.
        kv.range(as_user(&alice, range_req("shared", "")))
            .await
            .expect("read of a read-only key");
        refused(
            put_as(&ch, &alice, "shared", "1").await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        // Txn: every compare and op, nested txns included.
        let nested = TxnRequest {
            success: vec![RequestOp {
                request: Some(Op::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(Op::RequestPut(put_req("other", "sneaky"))),
                    }],
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        refused(
            kv.txn(as_user(&alice, nested)).await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        let compare_outside = TxnRequest {
            compare: vec![Compare {
                key: b("other"),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(put_req("app/y", "1"))),
            }],
            ..Default::default()
        };
        refused(
            kv.txn(as_user(&alice, compare_outside)).await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        let got = kv
            .range(as_user(&root, range_req("other", "")))
            .await
            .expect("root reads everything")
            .into_inner();
        assert_eq!(got.count, 0, "no refused write went through");

        // Watch: refused watches are created and canceled at once, with etcd's reason.
        let w = first_watch_response(&ch, &alice, "other").await;
        assert!(w.created && w.canceled, "{w:?}");
        assert_eq!(w.watch_id, -1);
        assert_eq!(
            w.cancel_reason,
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
        );
        let w = first_watch_response(&ch, "", "app/x").await;
        assert_eq!(
            w.cancel_reason,
            "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
        );
        let w = first_watch_response(&ch, &alice, "app/x").await;
        assert!(w.created && !w.canceled, "{w:?}");

        // Lease: whoever cannot write a lease's keys may neither revoke it nor grow it.
        let mut leases = LeaseClient::new(ch.clone());
        let lease = leases
            .lease_grant(as_user(&alice, LeaseGrantRequest { ttl: 60, id: 0 }))
            .await
            .expect("anyone may grant")
            .into_inner()
            .id;
        KvClient::new(ch.clone())
            .put(as_user(
                &root,
                PutRequest {
                    lease,
                    ..put_req("other", "on the lease")
                },
            ))
            .await
            .expect("root's put");
        refused(
            leases
                .lease_revoke(as_user(&alice, LeaseRevokeRequest { id: lease }))
                .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        refused(
            KvClient::new(ch.clone())
                .put(as_user(
                    &alice,
                    PutRequest {
                        lease,
                        ..put_req("app/z", "1")
                    },
                ))
                .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );

        // Lock acts with its caller's permissions (errors as etcd's embedded client's).
        refused(
            LockClient::new(ch.clone())
                .lock(as_user(
                    &alice,
                    LockRequest {
                        name: b("other-lock"),
                        lease,
                    },
                ))
                .await,
            Code::Unknown,
            "etcdserver: permission denied",
        );

        // Management: root only, but users see themselves and the roles they hold.
        auth.user_get(as_user(
            &alice,
            AuthUserGetRequest {
                name: "alice".into(),
            },
        ))
        .await
        .expect("a user gets itself");
        auth.role_get(as_user(&alice, AuthRoleGetRequest { role: "app".into() }))
            .await
            .expect("a user gets a role it holds");
        refused(
            auth.user_get(as_user(
                &alice,
                AuthUserGetRequest {
                    name: "root".into(),
                },
            ))
            .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        refused(
            auth.user_list(as_user(&alice, AuthUserListRequest {}))
                .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        refused(
            ClusterClient::new(ch.clone())
                .member_add(as_user(
                    &alice,
                    MemberAddRequest {
                        peer_ur_ls: vec!["http://127.0.0.1:1".into()],
                        is_learner: false,
                    },
                ))
                .await,
            Code::PermissionDenied,
            "etcdserver: permission denied",
        );
        ClusterClient::new(ch.clone())
            .member_list(as_user(&alice, MemberListRequest::default()))
            .await
            .expect("anyone lists members");
        // Maintenance's refusals are the auth store's own text, under Unknown.
        let mut m = MaintenanceClient::new(ch.clone());
        refused(
            m.hash_kv(as_user(&alice, HashKvRequest { revision: 0 }))
                .await,
            Code::Unknown,
            "auth: permission denied",
        );
        refused(
            m.defragment(as_user("", DefragmentRequest {})).await,
            Code::Unknown,
            "auth: user name is empty",
        );
        m.hash_kv(as_user(&root, HashKvRequest { revision: 0 }))
            .await
            .expect("root hashes");
        m.status(as_user(&alice, StatusRequest {}))
            .await
            .expect("anyone gets the status");
        let status = auth
            .auth_status(as_user(&alice, AuthStatusRequest {}))
            .await
            .expect("auth status")
            .into_inner();
        assert!(status.enabled);
        assert!(status.auth_revision > 1, "{status:?}");

        // Root cannot lose its powers while auth is on.
        refused(
            auth.user_delete(as_user(
                &root,
                AuthUserDeleteRequest {
                    name: "root".into(),
                },
            ))
            .await,
            Code::InvalidArgument,
            "etcdserver: invalid auth management",
        );

        // A new password voids the user's tokens; so does turning auth off (everyone's).
        auth.user_change_password(as_user(
            &root,
            AuthUserChangePasswordRequest {
                name: "alice".into(),
                password: "new".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("password change");
        refused(
            put_as(&ch, &alice, "app/x", "2").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        let alice = token(&ch, "alice", "new").await;
        put_as(&ch, &alice, "app/x", "2")
            .await
            .expect("the new token");
        // A user without a password cannot authenticate.
        auth.user_add(as_user(
            &root,
            AuthUserAddRequest {
                name: "svc".into(),
                options: Some(UserAddOptions { no_password: true }),
                ..Default::default()
            },
        ))
        .await
        .expect("a user without password");
        refused(
            auth.authenticate(AuthenticateRequest {
                name: "svc".into(),
                password: "".into(),
            })
            .await,
            Code::Unknown,
            "auth: authentication failed, password was given for no password user",
        );
        auth.auth_disable(as_user(&root, AuthDisableRequest {}))
            .await
            .expect("auth disable");
        refused(
            put_as(&ch, &root, "other", "1").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        put_as(&ch, "", "other", "1").await.expect("auth is off");
        refused(
            auth.authenticate(AuthenticateRequest {
                name: "root".into(),
                password: "rootpw".into(),
            })
            .await,
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        );
    });
}

#[test]
fn simple_tokens_lapse_when_unused_for_their_ttl() {
    let node = Node::start(
        "v3authttl",
        &["--bcrypt-cost", "4", "--auth-token-ttl", "2"],
    );
    rt().block_on(async {
        let ch = grpc_channel(&node.client_url()).await;
        set_up(&ch).await;
        let alice = token(&ch, "alice", "alicepw").await;
        // Used every half second for 3 s (beyond the TTL): it stays valid.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            put_as(&ch, &alice, "app/x", "1").await.expect("in use");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Unused, it lapses after the TTL (and not much later).
        let idle = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let ok = KvClient::new(ch.clone())
                .range(as_user(
                    &alice,
                    RangeRequest {
                        serializable: true,
                        ..range_req("app/x", "")
                    },
                ))
                .await;
            match ok {
                // A use restarts the clock: wait out a full TTL since the last one.
                Ok(_) => {
                    assert!(idle.elapsed() < WAIT, "the token never lapsed");
                    tokio::time::sleep(Duration::from_millis(2100)).await;
                }
                Err(s) => {
                    assert_eq!(s.message(), "etcdserver: invalid auth token");
                    assert!(idle.elapsed() >= Duration::from_secs(2), "lapsed early");
                    break;
                }
            }
        }
    });
}

#[test]
fn a_token_made_through_one_member_serves_through_the_others_and_auth_survives_kill_9() {
    // A snapshot every 20 entries, so that restarts restore auth from snapshots too.
    let mut c = Cluster::start(
        3,
        &[
            "--bcrypt-cost",
            "4",
            "-snapshot-count",
            "20",
            "-heartbeat-interval",
            "50",
            "-election-timeout",
            "500",
        ],
    );
    let urls: Vec<String> = (0..3).map(|i| c.member(i).client_url()).collect();
    let runtime = rt();
    runtime.block_on(async {
        let ch0 = grpc_channel(&urls[0]).await;
        set_up(&ch0).await;
        for round in 0..5 {
            let alice = token(&ch0, "alice", "alicepw").await;
            // At once through the other members: they wait for the entry that made it.
            for url in &urls[1..] {
                let ch = grpc_channel(url).await;
                put_as(&ch, &alice, "app/x", &round.to_string())
                    .await
                    .expect("the token through another member");
                refused(
                    put_as(&ch, &alice, "other", "1").await,
                    Code::PermissionDenied,
                    "etcdserver: permission denied",
                );
            }
        }
        // Enough entries for snapshots on every member.
        let root = token(&ch0, "root", "rootpw").await;
        for i in 0..50 {
            put_as(&ch0, &root, &format!("k{i}"), "v")
                .await
                .expect("root put");
        }
    });
    c.kill_all();
    c.restart_all();
    runtime.block_on(async {
        for url in &urls {
            let ch = grpc_channel(url).await;
            let status = poll_async(|| {
                let ch = ch.clone();
                async move {
                    let r = AuthClient::new(ch)
                        .authenticate(AuthenticateRequest {
                            name: "alice".into(),
                            password: "alicepw".into(),
                        })
                        .await;
                    r.ok().map(|r| r.into_inner().token)
                }
            })
            .await;
            refused(
                put_as(&ch, "", "app/x", "1").await,
                Code::InvalidArgument,
                "etcdserver: user name is empty",
            );
            refused(
                put_as(&ch, &status, "other", "1").await,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            );
            put_as(&ch, &status, "app/x", "after")
                .await
                .expect("alice after restart");
        }
    });
}

/// Polls `f` until it gives something (bounded by [`WAIT`]).
async fn poll_async<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "nothing within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jwt_flag() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/jwt");
    format!(
        "jwt,pub-key={},priv-key={},sign-method=RS256,ttl=10m",
        dir.join("public.pem").display(),
        dir.join("private.pem").display()
    )
}

#[test]
fn jwts_serve_through_every_member_and_carry_the_auth_revision() {
    let flag = jwt_flag();
    let c = Cluster::start(
        3,
        &[
            "--bcrypt-cost",
            "4",
            "--auth-token",
            &flag,
            "-heartbeat-interval",
            "50",
            "-election-timeout",
            "500",
        ],
    );
    let urls: Vec<String> = (0..3).map(|i| c.member(i).client_url()).collect();
    rt().block_on(async {
        let ch0 = grpc_channel(&urls[0]).await;
        set_up(&ch0).await;
        let alice = token(&ch0, "alice", "alicepw").await;
        assert_eq!(alice.split('.').count(), 3, "a JWT: {alice}");
        for url in &urls {
            let ch = grpc_channel(url).await;
            put_as(&ch, &alice, "app/x", "1").await.expect("the JWT");
        }
        // Tampered: refused.
        let mut forged = alice.clone();
        let at = forged.rfind('.').unwrap() + 3;
        let c = if &forged[at..=at] == "A" { "B" } else { "A" };
        forged.replace_range(at..=at, c);
        refused(
            put_as(&ch0, &forged, "app/x", "1").await,
            Code::Unauthenticated,
            "etcdserver: invalid auth token",
        );
        // Any auth change makes tokens issued before it old, for writes and reads alike.
        let root = token(&ch0, "root", "rootpw").await;
        AuthClient::new(ch0.clone())
            .role_add(as_user(
                &root,
                AuthRoleAddRequest {
                    name: "more".into(),
                },
            ))
            .await
            .expect("role add");
        refused(
            put_as(&ch0, &alice, "app/x", "1").await,
            Code::InvalidArgument,
            "etcdserver: revision of auth store is old",
        );
        refused(
            KvClient::new(ch0.clone())
                .range(as_user(
                    &alice,
                    RangeRequest {
                        serializable: true,
                        ..range_req("app/x", "")
                    },
                ))
                .await,
            Code::InvalidArgument,
            "etcdserver: revision of auth store is old",
        );
        let alice = token(&ch0, "alice", "alicepw").await;
        put_as(&ch0, &alice, "app/x", "2")
            .await
            .expect("a fresh JWT");
    });
}

#[test]
fn a_bad_auth_token_flag_is_refused_at_start_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, says) in [
        ("magic", "invalid --auth-token type"),
        ("jwt,sign-method=RS256,pub-key=/nonexistent", "/nonexistent"),
        ("jwt,sign-method=XX999", "unknown sign-method"),
        ("jwt,colour=blue", "invalid --auth-token option"),
    ] {
        let args: Vec<String> = ["-n", "bad", "--auth-token", flag]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let exit = run_etcd(&args, dir.path());
        assert_ne!(exit.code(), Some(0), "{flag}");
        assert!(exit.stderr.contains(says), "{flag}: {}", exit.stderr);
    }
}
