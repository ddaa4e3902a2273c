//! The Rust client library's v3 client (`etcd_client::v3`) against real members: the KV,
//! transaction and lease calls on one node; a watch's batches (whole revisions); one stream
//! carrying several watches and a progress notification; a watch that neither loses nor repeats an event
//! while the member it watches through and the leader are killed, or cut off from the others
//! by the fault harness's partition proxy (checked against a fresh watch of the whole
//! history); and a lease kept alive by the client across the same faults, which expires once
//! the client stops renewing it.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::v3::{Client, Error, KeepAliveState};
use etcd_v3proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_v3proto::etcdserverpb::request_op::Request as Op;
use etcd_v3proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use support::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn kv_txn_and_lease_calls_on_one_node() {
    let node = Node::start("clientv3", &[]);
    let client = Client::new([node.client_url()]).expect("client");
    rt().block_on(async {
        let put = client.put("a", "1").await.unwrap();
        let rev = put.header.unwrap().revision;
        let got = client.get("a").await.unwrap();
        assert_eq!(&got.kvs[0].value[..], b"1");
        assert_eq!(got.kvs[0].mod_revision, rev);
        // A transaction: compare the value, then set it.
        let txn = client
            .txn(TxnRequest {
                compare: vec![Compare {
                    key: "a".into(),
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Value as i32,
                    target_union: Some(TargetUnion::Value("1".into())),
                    range_end: Default::default(),
                }],
                success: vec![RequestOp {
                    request: Some(Op::RequestPut(PutRequest {
                        key: "a".into(),
                        value: "2".into(),
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            })
            .await
            .unwrap();
        assert!(txn.succeeded);
        // A range with prev revisions, and a delete.
        client.put("b", "x").await.unwrap();
        let all = client
            .range(RangeRequest {
                key: "a".into(),
                range_end: "c".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.count, 2);
        let old = client
            .range(RangeRequest {
                key: "a".into(),
                revision: rev,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(&old.kvs[0].value[..], b"1");
        let del = client
            .delete(DeleteRangeRequest {
                key: "b".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(del.deleted, 1);
        // Compacted history is refused with the member's own error.
        client.compact(rev + 1).await.unwrap();
        let refused = client
            .range(RangeRequest {
                key: "a".into(),
                revision: rev,
                ..Default::default()
            })
            .await
            .unwrap_err();
        match refused {
            Error::Status(s) => assert_eq!(
                s.message(),
                "etcdserver: mvcc: required revision has been compacted"
            ),
            other => panic!("{other:?}"),
        }
        // Leases.
        let lease = client.lease_grant(60).await.unwrap();
        client
            .put_with_lease("leased", "v", lease.id)
            .await
            .unwrap();
        let listed = client.leases(Default::default()).await.unwrap();
        assert_eq!(
            listed.leases.iter().map(|l| l.id).collect::<Vec<_>>(),
            [lease.id]
        );
        let ttl = client.lease_time_to_live(lease.id, true).await.unwrap();
        assert!(ttl.ttl > 0 && ttl.keys == vec![bytes::Bytes::from("leased")]);
        client.lease_revoke(lease.id).await.unwrap();
        assert_eq!(client.get("leased").await.unwrap().count, 0);
    });
    // Nobody there: Unavailable, once every endpoint failed.
    let gone = Client::new([format!("127.0.0.1:{}", free_port())]).unwrap();
    match rt().block_on(gone.get("a")) {
        Err(Error::Unavailable(_)) => {}
        other => panic!("{other:?}"),
    }
}

/// `Watch::next_batch` hands out whole revisions: a txn's puts come together, never split
/// from their revision, and what `next` left of a batch comes first, alone.
#[test]
fn a_watch_hands_out_whole_revisions_in_batches() {
    let node = Node::start("clientbatch", &[]);
    let client = Client::new([node.client_url()]).expect("client");
    let put = |key: &str| RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_string().into(),
            value: "v".into(),
            ..Default::default()
        })),
    };
    let txn = |keys: &[&str]| TxnRequest {
        success: keys.iter().map(|k| put(k)).collect(),
        ..Default::default()
    };
    let at = |e: &etcd_v3proto::mvccpb::Event| {
        let kv = e.kv.as_ref().unwrap();
        (
            kv.mod_revision,
            String::from_utf8_lossy(&kv.key).into_owned(),
        )
    };
    rt().block_on(async {
        let start = client
            .put("other", "x")
            .await
            .unwrap()
            .header
            .unwrap()
            .revision
            + 1;
        let mut watch = client.watch_prefix("n/", start);
        let r1 = client.txn(txn(&["n/1", "n/2", "n/3"])).await.unwrap();
        let r1 = r1.header.unwrap().revision;
        let r2 = client
            .put("n/4", "v")
            .await
            .unwrap()
            .header
            .unwrap()
            .revision;
        // Caught up (both revisions in one answer) or live (one each): the txn's three
        // together either way, in order, and n/4 after them.
        let mut seen = Vec::new();
        while seen.len() < 4 {
            let batch = tokio::time::timeout(Duration::from_secs(10), watch.next_batch())
                .await
                .expect("a batch in time")
                .unwrap()
                .expect("the watch goes on");
            let batch: Vec<_> = batch.iter().map(at).collect();
            assert!(batch.len() == 3 || batch.len() == 4 || batch == [(r2, "n/4".into())]);
            seen.extend(batch);
        }
        let expected: Vec<(i64, String)> = vec![
            (r1, "n/1".into()),
            (r1, "n/2".into()),
            (r1, "n/3".into()),
            (r2, "n/4".into()),
        ];
        assert_eq!(seen, expected);
        // `next` takes one event of a revision; `next_batch` then gives the rest of it alone.
        let r3 = client.txn(txn(&["n/5", "n/6"])).await.unwrap();
        let r3 = r3.header.unwrap().revision;
        client.put("n/7", "v").await.unwrap();
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(at(&first), (r3, "n/5".into()));
        for expected in [(r3, "n/6"), (r3 + 1, "n/7")] {
            let batch = watch.next_batch().await.unwrap().unwrap();
            let batch: Vec<_> = batch.iter().map(at).collect();
            assert_eq!(batch, [(expected.0, expected.1.to_string())]);
        }
    });
}

/// `Client::watch_stream`: two watches on one stream, each named by its `created` answer in
/// the order they were created; a progress notification (id -1) at the member's revision
/// comes after the events up to it; a cancelled watch hears no more.
#[test]
fn one_stream_carries_several_watches_and_progress() {
    let node = Node::start("clientstream", &[]);
    let client = Client::new([node.client_url()]).expect("client");
    rt().block_on(async {
        let mut stream = client.watch_stream().await.unwrap();
        let requests = stream.requests();
        let within = Duration::from_secs(10);
        let rev = client.put("x", "0").await.unwrap().header.unwrap().revision;
        for key in ["a", "b"] {
            assert!(
                requests.create(etcd_v3proto::etcdserverpb::WatchCreateRequest {
                    key: key.into(),
                    start_revision: rev + 1,
                    ..Default::default()
                })
            );
        }
        let mut ids = Vec::new();
        while ids.len() < 2 {
            let r = tokio::time::timeout(within, stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(r.created, "{r:?}");
            ids.push(r.watch_id);
        }
        assert_ne!(ids[0], ids[1]);
        client.put("a", "1").await.unwrap();
        let last = client.put("b", "2").await.unwrap().header.unwrap().revision;
        requests.request_progress();
        let mut seen = Vec::new();
        loop {
            let r = tokio::time::timeout(within, stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if r.watch_id == -1 {
                assert!(r.events.is_empty());
                assert_eq!(r.header.unwrap().revision, last);
                break;
            }
            for e in &r.events {
                seen.push((r.watch_id, e.kv.as_ref().unwrap().key.to_vec()));
            }
        }
        assert_eq!(seen, [(ids[0], b"a".to_vec()), (ids[1], b"b".to_vec())]);
        // Cancelled: b's watch hears no more, a's still does.
        assert!(requests.cancel(ids[1]));
        let r = tokio::time::timeout(within, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(r.canceled && r.watch_id == ids[1], "{r:?}");
        client.put("b", "3").await.unwrap();
        client.put("a", "4").await.unwrap();
        let r = tokio::time::timeout(within, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.watch_id, ids[0], "{r:?}");
    });
}

/// (revision, key, value, is a delete) of an event.
type Seen = (i64, Vec<u8>, Vec<u8>, bool);

fn seen(e: &etcd_v3proto::mvccpb::Event) -> Seen {
    let kv = e.kv.clone().unwrap_or_default();
    (
        kv.mod_revision,
        kv.key.to_vec(),
        kv.value.to_vec(),
        e.r#type == 1,
    )
}

#[test]
fn a_watch_loses_and_repeats_nothing_while_members_die_and_a_lease_stays_alive() {
    let mut killed = 0;
    watch_and_lease_through_faults(Cluster::start(3, &FAST_TIMING), |c, stage| match stage {
        // The member the watch and the lease use, then whoever leads.
        0 => c.kill(0),
        1 => {
            c.restart(0);
            killed = c.leader();
            c.kill(killed);
        }
        _ => c.restart(killed),
    });
}

#[test]
fn a_watch_loses_and_repeats_nothing_through_partitions_and_a_lease_stays_alive() {
    watch_and_lease_through_faults(Cluster::start_partitionable(3, &FAST_TIMING), |c, stage| {
        match stage {
            // The member the watch and the lease use is cut off from the others (its clients
            // still reach it), then the leader is.
            0 => {
                c.proxy().isolate(0);
            }
            1 => {
                c.proxy().heal();
                let leader = c.leader();
                c.proxy().isolate(leader);
            }
            _ => c.proxy().heal(),
        }
    });
}

/// Writes 300 puts under `w/` through the client (each retried until it is acknowledged)
/// while `fault` is called at three points (after 80, 160 and 240 writes); meanwhile a
/// watch of `w/` from revision 1 and a 3 s lease kept alive by the client run through
/// member 0 first. Then the watch must have seen exactly the history a fresh watch sees,
/// the lease must still live with its key, and it must expire once nobody renews it.
fn watch_and_lease_through_faults(mut c: Cluster, mut fault: impl FnMut(&mut Cluster, usize)) {
    let urls: Vec<String> = (0..3).map(|i| c.member(i).client_url()).collect();
    let client = Client::new(&urls).expect("client");
    let rt = rt();
    // The watch and the lease go through member 0 first, the first endpoint.
    let mut watch = rt.block_on(async { client.watch_prefix("w/", 1) });
    let (lease, keeper) = rt.block_on(async {
        let lease = client.lease_grant(3).await.unwrap();
        client
            .put_with_lease("w-session", "me", lease.id)
            .await
            .unwrap();
        (lease.id, client.keep_alive(lease.id))
    });
    let collected = Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let collector = {
        let collected = collected.clone();
        rt.spawn(async move {
            loop {
                match watch.next().await {
                    Ok(Some(e)) => collected.lock().unwrap().push(seen(&e)),
                    other => panic!("the watch ended: {other:?}"),
                }
            }
        })
    };
    const WRITES: usize = 300;
    let done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (client, done) = (client.clone(), done.clone());
        rt.spawn(async move {
            for i in 0..WRITES {
                // A write that failed for want of a leader is written again (the history,
                // not this loop, is what the watch is checked against).
                loop {
                    match client.put(format!("w/{}", i % 50), format!("v{i}")).await {
                        Ok(_) => break,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let wait_for = |n: usize| {
        poll_until(Duration::from_secs(60), "writes", || {
            (done.load(Ordering::Relaxed) >= n).then_some(())
        })
    };
    for (stage, writes) in [80, 160, 240].into_iter().enumerate() {
        wait_for(writes);
        fault(&mut c, stage);
    }
    rt.block_on(writer).expect("writer");
    // Every write's event, as a fresh watch of the whole history on a healthy member sees it.
    let last = rt
        .block_on(client.get("w/0"))
        .unwrap()
        .header
        .unwrap()
        .revision;
    let fresh = Client::new(&urls[1..]).unwrap();
    let history: Vec<Seen> = rt.block_on(async {
        let mut w = fresh.watch_prefix("w/", 1);
        let mut all = Vec::new();
        while all.last().is_none_or(|s: &Seen| s.0 < last) {
            let e = tokio::time::timeout(Duration::from_secs(30), w.next())
                .await
                .expect("the history in time")
                .unwrap()
                .unwrap();
            all.push(seen(&e));
        }
        all
    });
    assert!(history.len() >= WRITES, "{}", history.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = collected.lock().unwrap().clone();
        if got.last().is_some_and(|s| s.0 >= last) || Instant::now() > deadline {
            assert_eq!(got.len(), history.len(), "events lost or repeated");
            assert!(got == history, "the resumed watch differs from the history");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.abort();
    // The lease lived through it all (its TTL is 3 s; this took longer).
    let ttl = rt.block_on(client.lease_time_to_live(lease, true)).unwrap();
    assert!(ttl.ttl > 0, "{ttl:?}");
    assert!(matches!(keeper.state(), KeepAliveState::Alive { .. }));
    assert_eq!(rt.block_on(client.get("w-session")).unwrap().count, 1);
    // Once the client stops renewing it, it expires with its key.
    drop(keeper);
    poll_until(Duration::from_secs(15), "the lease expires", || {
        (rt.block_on(client.get("w-session")).unwrap().count == 0).then_some(())
    });
}

#[test]
fn txn_builder_lock_election_cluster_and_maintenance_calls() {
    use etcd_client::v3::proto::etcdserverpb::{MemberListRequest, StatusRequest};
    use etcd_client::v3::proto::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};
    use etcd_client::v3::proto::v3lockpb::{LockRequest, UnlockRequest};
    use etcd_client::v3::{Cmp, CmpOp, Txn, TxnOp};
    let node = Node::start("clientcalls", &[]);
    let client = Client::new([node.client_addr()]).expect("client");
    rt().block_on(async {
        let create_once = || {
            Txn::new()
                .when([Cmp::version("once", CmpOp::Equal, 0)])
                .and_then([TxnOp::put("once", "1")])
                .or_else([TxnOp::get("once")])
        };
        assert!(client.txn(create_once()).await.unwrap().succeeded);
        assert!(!client.txn(create_once()).await.unwrap().succeeded);
        let lease = client.lease_grant(30).await.unwrap().id;
        let held = client
            .lock(LockRequest {
                name: "mylock".into(),
                lease,
            })
            .await
            .unwrap();
        assert!(held.key.starts_with(b"mylock/"));
        client
            .unlock(UnlockRequest { key: held.key })
            .await
            .unwrap();
        let leader = client
            .campaign(CampaignRequest {
                name: "elect".into(),
                lease,
                value: "p1".into(),
            })
            .await
            .unwrap()
            .leader
            .unwrap();
        let now = client
            .election_leader(LeaderRequest {
                name: "elect".into(),
            })
            .await
            .unwrap();
        assert_eq!(&now.kv.unwrap().value[..], b"p1");
        client
            .resign(ResignRequest {
                leader: Some(leader),
            })
            .await
            .unwrap();
        let members = client
            .member_list(MemberListRequest::default())
            .await
            .unwrap();
        assert_eq!(members.members.len(), 1);
        let status = client.status(StatusRequest::default()).await.unwrap();
        assert_eq!(status.leader, status.header.unwrap().member_id);
        let snapshot = client.snapshot().await.unwrap();
        assert!(snapshot.len() > 32 * 1024, "{}", snapshot.len());
    });
}

#[test]
fn tls_with_client_certificates_and_auth_with_token_refresh() {
    use etcd_client::v3::proto::authpb::permission::Type as PermType;
    use etcd_client::v3::proto::authpb::Permission;
    use etcd_client::v3::proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
        AuthUserGrantRoleRequest,
    };
    use etcd_client::v3::Options;
    let rt = rt();
    // TLS: client certificates required by the member.
    let members = start_tls_members(&["clienttls"], &[]);
    let tls = Options {
        ca_file: Some(fixture("ca.crt")),
        client_cert: Some((fixture("client.crt"), fixture("client.key.insecure"))),
        ..Default::default()
    };
    let url = format!("https://{}", members[0].client_addr());
    let client = Client::with_options([&url], tls.clone()).expect("client");
    rt.block_on(async {
        client.put("secure", "yes").await.unwrap();
        assert_eq!(
            &client.get("secure").await.unwrap().kvs[0].value[..],
            b"yes"
        );
    });
    // Without a client certificate the member refuses the connection.
    let bare = Client::with_options(
        [&url],
        Options {
            client_cert: None,
            ..tls.clone()
        },
    )
    .unwrap();
    assert!(matches!(
        rt.block_on(bare.get("secure")),
        Err(Error::Unavailable(_))
    ));
    // A CA that did not sign the member's certificate: refused, unless told to take any
    // certificate (etcdctl's --insecure-skip-tls-verify).
    let wrong_ca = Options {
        ca_file: Some(fixture("ca2.crt")),
        ..tls.clone()
    };
    let doubting = Client::with_options([&url], wrong_ca.clone()).unwrap();
    assert!(matches!(
        rt.block_on(doubting.get("secure")),
        Err(Error::Unavailable(_))
    ));
    let trusting = Client::with_options(
        [&url],
        Options {
            insecure_skip_tls_verify: true,
            ..wrong_ca
        },
    )
    .unwrap();
    assert_eq!(
        &rt.block_on(trusting.get("secure")).unwrap().kvs[0].value[..],
        b"yes"
    );

    // Auth, with simple tokens that lapse after a second unused.
    let node = Node::start("clientauth", &["--auth-token-ttl", "1"]);
    let admin = Client::new([node.client_addr()]).unwrap();
    rt.block_on(async {
        for (name, password) in [("root", "rootpw"), ("app", "apppw")] {
            admin
                .user_add(AuthUserAddRequest {
                    name: name.into(),
                    password: password.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        for role in ["root", "app"] {
            if role == "app" {
                admin
                    .role_add(AuthRoleAddRequest { name: role.into() })
                    .await
                    .unwrap();
            }
            admin
                .user_grant_role(AuthUserGrantRoleRequest {
                    user: role.into(),
                    role: role.into(),
                })
                .await
                .unwrap();
        }
        admin
            .role_grant_permission(AuthRoleGrantPermissionRequest {
                name: "app".into(),
                perm: Some(Permission {
                    perm_type: PermType::Readwrite as i32,
                    key: "app/".into(),
                    range_end: "app0".into(),
                }),
            })
            .await
            .unwrap();
        let users = admin.user_list(Default::default()).await.unwrap().users;
        assert_eq!(users, ["app", "root"]);
        let role = admin
            .role_get(etcd_client::v3::proto::etcdserverpb::AuthRoleGetRequest {
                role: "app".into(),
            })
            .await
            .unwrap();
        assert_eq!(&role.perm[0].key[..], b"app/");
        admin.auth_enable(AuthEnableRequest {}).await.unwrap();
    });
    let app = Client::with_options(
        [node.client_addr()],
        Options {
            user: Some(("app".into(), "apppw".into())),
            ..Default::default()
        },
    )
    .unwrap();
    rt.block_on(async {
        app.put("app/x", "1").await.unwrap();
        match app.put("other", "1").await {
            Err(Error::Status(s)) => {
                assert_eq!(s.message(), "etcdserver: permission denied")
            }
            other => panic!("{other:?}"),
        }
        // The token lapses unused; the client authenticates again by itself.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(&app.get("app/x").await.unwrap().kvs[0].value[..], b"1");
    });
    // A client without a user is refused now.
    match rt.block_on(admin.get("app/x")) {
        Err(Error::Status(s)) => assert_eq!(s.code(), tonic::Code::InvalidArgument, "{s:?}"),
        other => panic!("{other:?}"),
    }
}
