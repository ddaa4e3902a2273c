//! Scenario tests of the v2 commands: the node model (created/modified indexes, directories
//! with TTLs), etcd v2's dispatch of PUT and DELETE, its error causes, per-key expiry, watch
//! rules and snapshots. Expected values follow a recorded session against etcd 3.4's v2 API.

use etcd_store::{Action, Command, Error, Event, NodeView, Store, StoreSnapshot, Watched};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;

#[derive(Default)]
struct Put {
    value: &'static str,
    dir: bool,
    ttl: Option<i64>,
    refresh: bool,
    prev_exist: Option<bool>,
    prev_value: Option<&'static str>,
    prev_index: Option<u64>,
}

fn put(key: &str, p: Put) -> Command {
    Command::V2Put {
        key: key.into(),
        value: p.value.into(),
        dir: p.dir,
        ttl_secs: p.ttl,
        refresh: p.refresh,
        prev_exist: p.prev_exist,
        prev_value: p.prev_value.map(str::to_string),
        prev_index: p.prev_index,
        time: T0,
    }
}

fn set(key: &str, value: &'static str) -> Command {
    put(
        key,
        Put {
            value,
            ..Put::default()
        },
    )
}

fn del(key: &str, dir: bool, recursive: bool) -> Command {
    Command::V2Delete {
        key: key.into(),
        dir,
        recursive,
        prev_value: None,
        prev_index: None,
        time: T0,
    }
}

fn ok(s: &mut Store<u32>, index: u64, cmd: Command) -> Event {
    s.apply(index, &cmd)
        .result
        .unwrap_or_else(|e| panic!("{cmd:?} at {index}: {e}"))
        .expect("an event")
}

fn err(s: &mut Store<u32>, index: u64, cmd: Command) -> Error {
    match s.apply(index, &cmd).result {
        Err(e) => e,
        Ok(e) => panic!("{cmd:?} at {index} succeeded: {e:?}"),
    }
}

fn view(s: &Store<u32>, key: &str, recursive: bool) -> NodeView {
    s.get_v2(key, recursive).expect("get")
}

#[test]
fn set_create_update_and_compare_and_swap_keep_or_renew_created_index() {
    let mut s = Store::new(100);
    let e = ok(&mut s, 4, set("/foo", "bar"));
    assert_eq!(
        (e.action, e.index, e.created_index, e.prev_node),
        (Action::Set, 4, 4, None)
    );
    let e = ok(&mut s, 5, set("/foo", "baz"));
    assert_eq!((e.index, e.created_index), (5, 5));
    let prev = e.prev_node.expect("prevNode");
    assert_eq!(
        (
            prev.value.as_deref(),
            prev.modified_index,
            prev.created_index
        ),
        (Some("bar"), 4, 4)
    );
    let e = ok(
        &mut s,
        6,
        put(
            "/foo",
            Put {
                value: "x",
                prev_exist: Some(true),
                ..Put::default()
            },
        ),
    );
    assert_eq!((e.action, e.index, e.created_index), (Action::Update, 6, 5));
    let e = ok(
        &mut s,
        7,
        put(
            "/foo",
            Put {
                value: "y",
                prev_value: Some("x"),
                ..Put::default()
            },
        ),
    );
    assert_eq!(
        (e.action, e.index, e.created_index),
        (Action::CompareAndSwap, 7, 5)
    );
    assert_eq!(
        err(
            &mut s,
            8,
            put(
                "/foo",
                Put {
                    value: "z",
                    prev_exist: Some(false),
                    ..Put::default()
                }
            )
        ),
        Error::NodeExist("/foo".into())
    );
    assert_eq!(
        err(
            &mut s,
            9,
            put(
                "/new",
                Put {
                    value: "z",
                    prev_exist: Some(true),
                    ..Put::default()
                }
            )
        ),
        Error::KeyNotFound("/new".into())
    );
    let e = ok(
        &mut s,
        10,
        put(
            "/new",
            Put {
                value: "z",
                prev_exist: Some(false),
                ..Put::default()
            },
        ),
    );
    assert_eq!(e.action, Action::Create);
    // Failed commands change nothing.
    assert_eq!(s.index(), 10);
    let foo = view(&s, "/foo", false);
    assert_eq!(
        (foo.value.as_deref(), foo.modified_index, foo.created_index),
        (Some("y"), 7, 5)
    );
}

#[test]
fn compare_failures_name_what_differed_like_etcd() {
    let mut s = Store::new(100);
    ok(&mut s, 13, set("/cas", "one"));
    ok(
        &mut s,
        14,
        put(
            "/cas",
            Put {
                value: "two",
                prev_value: Some("one"),
                ..Put::default()
            },
        ),
    );
    let cas = |pv: Option<&'static str>, pi: Option<u64>| {
        put(
            "/cas",
            Put {
                value: "x",
                prev_value: pv,
                prev_index: pi,
                ..Put::default()
            },
        )
    };
    assert_eq!(
        err(&mut s, 15, cas(Some("three"), None)),
        Error::CompareFailed("[three != two]".into())
    );
    assert_eq!(
        err(&mut s, 16, cas(None, Some(1))),
        Error::CompareFailed("[1 != 14]".into())
    );
    assert_eq!(
        err(&mut s, 17, cas(Some("zz"), Some(1))),
        Error::CompareFailed("[zz != two] [1 != 14]".into())
    );
    // Compare-and-delete the same way.
    let cad = |pv: Option<&'static str>, pi: Option<u64>| Command::V2Delete {
        key: "/cas".into(),
        dir: false,
        recursive: false,
        prev_value: pv.map(str::to_string),
        prev_index: pi,
        time: T0,
    };
    assert_eq!(
        err(&mut s, 18, cad(None, Some(1))),
        Error::CompareFailed("[1 != 14]".into())
    );
    let e = ok(&mut s, 19, cad(Some("two"), None));
    assert_eq!(
        (e.action, e.index, e.created_index),
        (Action::CompareAndDelete, 19, 13)
    );
    assert_eq!(
        err(&mut s, 20, cad(Some("two"), None)),
        Error::KeyNotFound("/cas".into())
    );
}

#[test]
fn directories_are_nodes_with_their_own_rules() {
    let mut s = Store::new(100);
    let mkdir = |ttl| {
        put(
            "/dir",
            Put {
                dir: true,
                ttl,
                ..Put::default()
            },
        )
    };
    let e = ok(&mut s, 7, mkdir(None));
    assert!(e.dir && e.value.is_none());
    assert_eq!(err(&mut s, 8, mkdir(None)), Error::NotFile("/dir".into()));
    assert_eq!(
        err(&mut s, 9, set("/dir", "x")),
        Error::NotFile("/dir".into())
    );
    ok(&mut s, 10, set("/dir/a", "1"));
    ok(&mut s, 11, set("/dir/_hidden", "h"));
    ok(&mut s, 12, set("/dir/sub/b", "2"));
    // A child's write leaves the directory's indexes alone; implicit parents take the write's.
    let d = view(&s, "/dir", false);
    assert_eq!((d.modified_index, d.created_index), (7, 7));
    let keys: Vec<_> = d
        .nodes
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| (n.key.as_str(), n.nodes.is_some(), n.modified_index))
        .collect();
    assert_eq!(keys, vec![("/dir/a", false, 10), ("/dir/sub", false, 12)]);
    let d = view(&s, "/dir", true);
    let sub = &d.nodes.as_ref().unwrap()[1];
    assert_eq!(sub.nodes.as_ref().unwrap()[0].key, "/dir/sub/b");
    // A hidden key is readable by name.
    assert_eq!(view(&s, "/dir/_hidden", false).value.as_deref(), Some("h"));
    // A file in the way.
    assert_eq!(
        err(&mut s, 13, set("/dir/a/x", "1")),
        Error::NotDir("/dir/a".into())
    );
    assert_eq!(
        s.get_v2("/dir/a/x", false),
        Err(Error::NotDir("/dir/a".into()))
    );
    assert_eq!(
        s.get_v2("/nope/x", false),
        Err(Error::KeyNotFound("/nope".into()))
    );
    // Deletes.
    assert_eq!(
        err(&mut s, 14, del("/dir", false, false)),
        Error::NotFile("/dir".into())
    );
    assert_eq!(
        err(&mut s, 15, del("/dir", true, false)),
        Error::DirNotEmpty("/dir".into())
    );
    assert_eq!(err(&mut s, 16, del("/", true, true)), Error::RootReadOnly);
    assert_eq!(err(&mut s, 17, set("/", "x")), Error::RootReadOnly);
    let e = ok(&mut s, 18, del("/dir", false, true));
    assert_eq!(
        (e.action, e.dir, e.index, e.created_index),
        (Action::Delete, true, 18, 7)
    );
    assert!(s.get_v2("/dir/sub/b", false).is_err());
    // dir=true deletes a file too; a set replaces a file by a directory.
    ok(&mut s, 19, set("/f", "file"));
    assert!(!ok(&mut s, 20, del("/f", true, false)).dir);
    ok(&mut s, 21, set("/g", "file"));
    let e = ok(
        &mut s,
        22,
        put(
            "/g",
            Put {
                dir: true,
                ..Put::default()
            },
        ),
    );
    assert!(e.dir && e.prev_node.unwrap().value.as_deref() == Some("file"));
    // The reserved prefix.
    assert_eq!(
        err(&mut s, 23, set("/_etcd/x", "1")),
        Error::Reserved("/_etcd/x".into())
    );
}

#[test]
fn post_creates_in_order_keys_named_by_their_index() {
    let mut s = Store::new(100);
    let post = |v: &str| Command::V2Post {
        key: "/q".into(),
        value: v.into(),
        dir: false,
        ttl_secs: None,
        time: T0,
    };
    let a = ok(&mut s, 19, post("job1"));
    let b = ok(&mut s, 20, post("job2"));
    assert_eq!(
        (a.action, a.key.as_str()),
        (Action::Create, "/q/00000000000000000019")
    );
    assert_eq!(b.key, "/q/00000000000000000020");
    ok(&mut s, 21, set("/file", "x"));
    let mut bad = post("x");
    if let Command::V2Post { key, .. } = &mut bad {
        *key = "/file".into();
    }
    assert_eq!(err(&mut s, 22, bad), Error::NotDir("/file".into()));
}

#[test]
fn ttls_refresh_clear_and_expire_one_key_per_entry() {
    let mut s = Store::new(100);
    let e = ok(
        &mut s,
        3,
        put(
            "/t",
            Put {
                value: "a",
                ttl: Some(100),
                ..Put::default()
            },
        ),
    );
    assert_eq!((e.expiration, e.ttl), (Some(T0 + 100 * SEC), Some(100)));
    let Watched::Pending(_) = s.watch_v2("/t", false, 0, 1).unwrap() else {
        panic!()
    };
    // A refresh keeps the value, moves the expiry and wakes nobody.
    let mut refresh = put(
        "/t",
        Put {
            ttl: Some(50),
            refresh: true,
            prev_exist: Some(true),
            ..Put::default()
        },
    );
    let applied = s.apply(4, &refresh);
    let e = applied.result.unwrap().unwrap();
    assert!(applied.fired.is_empty());
    assert_eq!(
        (e.action, e.value.as_deref(), e.expiration),
        (Action::Update, Some("a"), Some(T0 + 50 * SEC))
    );
    assert_eq!(s.next_expiry(), Some(T0 + 50 * SEC));
    // An update without a TTL makes the key permanent.
    let e = ok(
        &mut s,
        5,
        put(
            "/t",
            Put {
                value: "a",
                prev_exist: Some(true),
                ..Put::default()
            },
        ),
    );
    assert_eq!(e.expiration, None);
    assert_eq!(s.next_expiry(), None);
    if let Command::V2Put { key, .. } = &mut refresh {
        *key = "/missing".into();
    }
    assert_eq!(
        err(&mut s, 6, refresh),
        Error::KeyNotFound("/missing".into())
    );
    // Two keys due at the same time expire in two entries, each with its own index.
    ok(
        &mut s,
        7,
        put(
            "/e1",
            Put {
                value: "1",
                ttl: Some(1),
                ..Put::default()
            },
        ),
    );
    ok(
        &mut s,
        8,
        put(
            "/e2",
            Put {
                value: "2",
                ttl: Some(1),
                ..Put::default()
            },
        ),
    );
    ok(
        &mut s,
        9,
        put(
            "/d",
            Put {
                dir: true,
                ttl: Some(1),
                ..Put::default()
            },
        ),
    );
    ok(
        &mut s,
        10,
        put(
            "/d/in",
            Put {
                value: "x",
                ttl: Some(30),
                ..Put::default()
            },
        ),
    );
    let due = s.due(T0 + SEC, 10);
    assert_eq!(due, vec!["/d", "/e1", "/e2"]);
    let mut indexes = vec![];
    for (i, key) in due.iter().enumerate() {
        let index = 11 + i as u64;
        let e = ok(
            &mut s,
            index,
            Command::Expire {
                time: T0 + SEC,
                key: Some(key.clone()),
            },
        );
        assert_eq!((e.action, e.index), (Action::Expire, index));
        assert_eq!(e.prev_node.as_ref().and_then(|p| p.ttl), None);
        indexes.push(e.index);
    }
    assert_eq!(indexes, vec![11, 12, 13]);
    // The directory took its child (and the child's TTL entry) with it.
    assert!(s.get_v2("/d/in", false).is_err());
    assert_eq!(s.next_expiry(), None);
    // An expiry proposed for a key that was renewed in between does nothing.
    ok(
        &mut s,
        14,
        put(
            "/late",
            Put {
                value: "1",
                ttl: Some(100),
                ..Put::default()
            },
        ),
    );
    assert_eq!(
        s.apply(
            15,
            &Command::Expire {
                time: T0 + SEC,
                key: Some("/late".into())
            }
        )
        .result,
        Ok(None)
    );
    assert_eq!(s.index(), 14);
    assert_eq!(s.stats().v2.expire_count, 3);
}

#[test]
fn v2_watches_follow_etcds_rules() {
    let mut s = Store::new(100);
    ok(&mut s, 3, set("/wd/_h/x", "1"));
    let Watched::Pending(_) = s.watch_v2("/wd", true, 0, 1).unwrap() else {
        panic!()
    };
    let Watched::Pending(_) = s.watch_v2("/wd", false, 0, 2).unwrap() else {
        panic!()
    };
    let Watched::Pending(_) = s.watch_v2("/wd/_h/x", false, 0, 3).unwrap() else {
        panic!()
    };
    // Below a hidden segment: only the key's own watcher.
    let fired = s.apply(4, &set("/wd/_h/x", "2")).fired;
    assert_eq!(fired.iter().map(|(w, _)| *w).collect::<Vec<_>>(), vec![3]);
    let Watched::Pending(_) = s.watch_v2("/wd/_h/x", false, 0, 4).unwrap() else {
        panic!()
    };
    // Removing the directory fires the recursive watcher, the exact one and the one below.
    let fired = s.apply(5, &del("/wd", true, true)).fired;
    let mut who: Vec<_> = fired
        .iter()
        .map(|(w, e)| (*w, e.key.as_str(), e.action))
        .collect();
    who.sort();
    assert_eq!(
        who,
        vec![
            (1, "/wd", Action::Delete),
            (2, "/wd", Action::Delete),
            (4, "/wd", Action::Delete)
        ]
    );
    // History answers the same way.
    match s.watch_v2("/wd/_h/x", false, 5, 9).unwrap() {
        Watched::Ready(e, _) => assert_eq!((e.key.as_str(), e.index), ("/wd", 5)),
        Watched::Pending(_) => panic!("history should answer"),
    }
    assert_eq!(
        s.watch_v2("/wd", false, 4, 9)
            .ok()
            .map(|w| matches!(w, Watched::Ready(ref e, _) if e.index == 5)),
        Some(true)
    );
}

#[test]
fn snapshots_keep_indexes_and_directory_ttls_and_read_version_1() {
    let mut s = Store::new(100);
    ok(
        &mut s,
        3,
        put(
            "/d",
            Put {
                dir: true,
                ttl: Some(10),
                ..Put::default()
            },
        ),
    );
    ok(&mut s, 4, set("/d/x", "1"));
    ok(
        &mut s,
        5,
        put(
            "/d/x",
            Put {
                value: "2",
                prev_exist: Some(true),
                ..Put::default()
            },
        ),
    );
    ok(
        &mut s,
        6,
        put(
            "/empty",
            Put {
                dir: true,
                ..Put::default()
            },
        ),
    );
    let snap = StoreSnapshot::decode(&s.snapshot().encode()).unwrap();
    let mut r: Store<u32> = Store::new(100);
    r.restore(snap);
    assert_eq!(view(&r, "/", true), view(&s, "/", true));
    assert_eq!(r.next_expiry(), Some(T0 + 10 * SEC));
    let x = view(&r, "/d/x", false);
    assert_eq!((x.created_index, x.modified_index), (4, 5));
    // A version 1 snapshot (directories and files, no indexes) still restores.
    let v1 = br#"{"version":1,"index":9,"applied":9,"dirs":["/a","/a/b","/e"],
        "files":[["/a/b/c","1",null],["/t","2",1700000100000000000]],"history":[],
        "history_cleared_through":0,"members":[],"stats":{"gets":0,"sets":2,"deletes":0,"testAndSets":0}}"#;
    let mut old: Store<u32> = Store::new(100);
    old.restore(StoreSnapshot::decode(v1).unwrap());
    assert_eq!(view(&old, "/a/b/c", false).value.as_deref(), Some("1"));
    assert!(view(&old, "/e", false).dir);
    assert_eq!(view(&old, "/t", false).modified_index, 9);
    assert_eq!(old.next_expiry(), Some(1_700_000_100_000_000_000));
}

#[test]
fn huge_ttls_neither_overflow_nor_panic() {
    let mut s = Store::new(100);
    let e = ok(
        &mut s,
        3,
        put(
            "/forever",
            Put {
                value: "v",
                ttl: Some(i64::MAX),
                ..Put::default()
            },
        ),
    );
    assert_eq!(e.expiration, Some(i64::MAX));
    assert_eq!(e.ttl, Some((i64::MAX - T0) / SEC + 1));
    let e = ok(&mut s, 4, del("/forever", false, false));
    assert_eq!(e.prev_node.unwrap().expiration, Some(i64::MAX));
    // The v1 commands too.
    let v1 = Command::Set {
        key: "/v1".into(),
        value: "v".into(),
        ttl_secs: Some(i64::MAX),
        time: T0,
    };
    assert!(s.apply(5, &v1).result.is_ok());
    let gone = Command::Delete { key: "/v1".into() };
    assert!(s.apply(6, &gone).result.is_ok());
}

#[test]
fn a_late_registration_does_not_bring_a_removed_member_back() {
    let mut s: Store<u32> = Store::new(100);
    let join = |id: u64, name: &str| Command::Join {
        id,
        name: name.into(),
        raft_url: "http://127.0.0.1:7001".into(),
        etcd_url: "http://127.0.0.1:4001".into(),
    };
    assert!(s.apply(1, &join(5, "")).result.is_ok());
    assert!(s.members().contains_key(&5));
    let leave = Command::Leave {
        id: 5,
        name: String::new(),
    };
    assert!(s.apply(2, &leave).result.is_ok());
    // Its publish, committed after the removal.
    assert_eq!(s.apply(3, &join(5, "late")).result, Ok(None));
    assert!(!s.members().contains_key(&5));
    assert!(s.is_removed(5));
    assert!(s.get_v2("/_etcd/machines/late", false).is_err());
}
