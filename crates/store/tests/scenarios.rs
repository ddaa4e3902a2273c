//! Scenario tests of the state machine: the seed's usage section replayed as log entries, and
//! each area's edge cases. Time is an argument, so TTL behaviour is exact.

use etcd_store::{Action, Command, Error, Event, Got, Store, StoreSnapshot, Watched};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_373_599_872 * SEC;

fn set(key: &str, value: &str) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        ttl_secs: None,
        time: T0,
    }
}

fn set_ttl(key: &str, value: &str, ttl: i64, time: i64) -> Command {
    Command::Set {
        key: key.into(),
        value: value.into(),
        ttl_secs: Some(ttl),
        time,
    }
}

fn tas(key: &str, prev: &str, value: &str) -> Command {
    Command::TestAndSet {
        key: key.into(),
        prev_value: prev.into(),
        value: value.into(),
        ttl_secs: None,
        time: T0,
    }
}

fn del(key: &str) -> Command {
    Command::Delete { key: key.into() }
}

fn join(id: u64, name: &str) -> Command {
    Command::Join {
        id,
        name: name.into(),
        raft_url: "http://127.0.0.1:7001".into(),
        etcd_url: "http://127.0.0.1:4001".into(),
    }
}

/// A store as a fresh node has it: its registration at 1, the leader's empty entry at 2.
fn fresh() -> Store<u32> {
    let mut s = Store::new(1024);
    assert!(s.apply(1, &join(1, "node0")).result.is_ok());
    s.skip(2);
    s
}

fn ok(s: &mut Store<u32>, index: u64, cmd: Command) -> Event {
    s.apply(index, &cmd)
        .result
        .unwrap_or_else(|e| panic!("{cmd:?} at {index}: {e}"))
        .expect("command answers with an event")
}

fn value(s: &Store<u32>, key: &str) -> Event {
    match s.get(key).unwrap() {
        Got::Value(e) => e,
        other => panic!("{key} is not a file: {other:?}"),
    }
}

fn listing_keys(s: &Store<u32>, key: &str) -> Vec<(String, bool)> {
    match s.get(key).unwrap() {
        Got::Listing(items) => items.into_iter().map(|e| (e.key, e.dir)).collect(),
        other => panic!("{key} is not a dir: {other:?}"),
    }
}

#[test]
fn seed_usage_section_replayed_as_log_entries() {
    // Reference: spec section 10.
    let mut s = fresh();
    let e = ok(&mut s, 3, set("message", "Hello world"));
    assert_eq!(
        (e.action, e.new_key, e.prev_value.as_deref(), e.index),
        (Action::Set, true, None, 3)
    );
    assert_eq!(value(&s, "/message").index, 3);
    let e = ok(&mut s, 4, set("/message", "Hello etcd"));
    assert_eq!(
        (e.new_key, e.prev_value.as_deref()),
        (false, Some("Hello world"))
    );
    let e = ok(&mut s, 5, del("/message"));
    assert_eq!(
        (e.action, e.prev_value.as_deref(), e.value),
        (Action::Delete, Some("Hello etcd"), None)
    );
    let e = ok(&mut s, 6, set_ttl("/foo", "bar", 5, T0));
    assert_eq!(e.expiration, Some(T0 + 5 * SEC));
    // The leader's clock passes the expiry; the expiry is entry 7.
    let fired = s
        .apply(
            7,
            &Command::Expire {
                time: T0 + 6 * SEC,
                key: None,
            },
        )
        .fired;
    assert!(fired.is_empty());
    assert_eq!(s.get("/foo"), Err(Error::KeyNotFound("/foo".into())));
    assert_eq!(s.index(), 7, "the expiry changed the store");
    // A watch on /foo waits, then fires with the set of /foo/foo.
    let Watched::Pending(_) = s.watch("/foo", 0, 42).unwrap() else {
        panic!("nothing to report yet")
    };
    let applied = s.apply(8, &set("/foo/foo", "barbar"));
    let e = applied.result.unwrap().unwrap();
    assert_eq!(applied.fired, vec![(42, e.clone())]);
    // Watching from index 8 replays it at once.
    match s.watch("/foo", 8, 43).unwrap() {
        Watched::Ready(ev, 43) => assert_eq!(ev, e),
        _ => panic!("index 8 is in the history"),
    }
    ok(&mut s, 9, set("/testAndSet", "one"));
    assert_eq!(
        s.apply(10, &tas("/testAndSet", "two", "three")).result,
        Err(Error::TestFailed {
            current: "one".into(),
            prev_value: "two".into()
        })
    );
    let e = ok(&mut s, 11, tas("/testAndSet", "one", "two"));
    assert_eq!(
        (e.prev_value.as_deref(), e.value.as_deref(), e.index),
        (Some("one"), Some("two"), 11)
    );
    ok(&mut s, 12, set("/foo/foo_dir/bar", "barbarbar"));
    match s.get("/foo/").unwrap() {
        Got::Listing(items) => {
            assert_eq!(items.len(), 2);
            assert_eq!(
                (
                    items[0].key.as_str(),
                    items[0].value.as_deref(),
                    items[0].index
                ),
                ("/foo/foo", Some("barbar"), 12)
            );
            assert_eq!(
                (items[1].key.as_str(), items[1].dir, items[1].index),
                ("/foo/foo_dir", true, 12)
            );
        }
        other => panic!("{other:?}"),
    }
    let stats = s.stats();
    assert_eq!((stats.sets, stats.deletes, stats.test_and_sets), (6, 1, 2));
}

#[test]
fn a_read_entry_consumes_an_index_and_changes_nothing() {
    let mut s = fresh();
    ok(&mut s, 3, set("/a", "1"));
    let applied = s.apply(4, &Command::Read);
    assert_eq!(applied.result, Ok(None));
    assert_eq!((s.applied(), s.index()), (4, 3));
    assert_eq!(value(&s, "/a").index, 3);
}

#[test]
fn failed_commands_consume_an_index_but_change_nothing() {
    let mut s = fresh();
    ok(&mut s, 3, set("/a", "1"));
    assert!(s.apply(4, &tas("/a", "x", "2")).result.is_err());
    assert_eq!(s.applied(), 4);
    assert_eq!(
        s.index(),
        3,
        "GET reports the last change, not the last entry"
    );
    assert_eq!(value(&s, "/a").index, 3);
}

#[test]
fn not_a_file_cases() {
    let mut s = fresh();
    ok(&mut s, 3, set("/d/x", "1"));
    assert_eq!(
        s.apply(4, &set("/d", "v")).result,
        Err(Error::NotFile("/d".into()))
    );
    assert_eq!(
        s.apply(5, &set("/d/x/y", "v")).result,
        Err(Error::NotFile("/d/x/y".into()))
    );
    assert_eq!(
        s.apply(6, &set("/", "v")).result,
        Err(Error::NotFile("/".into()))
    );
    assert_eq!(
        s.apply(7, &del("/d")).result,
        Err(Error::NotFile("/d".into()))
    );
    assert_eq!(
        s.apply(8, &tas("/d", "a", "b")).result,
        Err(Error::NotFile("/d".into()))
    );
    assert_eq!(
        s.apply(9, &tas("/nope", "a", "b")).result,
        Err(Error::KeyNotFound("/nope".into()))
    );
    assert_eq!(
        s.apply(10, &del("/nope")).result,
        Err(Error::KeyNotFound("/nope".into()))
    );
}

#[test]
fn reserved_keys_are_readable_not_writable() {
    let mut s = fresh();
    assert_eq!(
        listing_keys(&s, "/_etcd/machines"),
        vec![("/_etcd/machines/node0".to_string(), false)]
    );
    assert_eq!(
        value(&s, "/_etcd/machines/node0").value.as_deref(),
        Some("raft=http://127.0.0.1:7001&etcd=http://127.0.0.1:4001")
    );
    assert_eq!(
        s.apply(3, &set("/_etcd/x", "v")).result,
        Err(Error::Keyword("Set"))
    );
    assert_eq!(
        s.apply(4, &del("/_etcd/machines/node0")).result,
        Err(Error::Keyword("Delete"))
    );
    assert_eq!(s.members().len(), 1);
}

#[test]
fn listings_are_sorted_arrays_and_directories_survive_deletes() {
    let mut s = fresh();
    ok(&mut s, 3, set("/l/b", "1"));
    ok(&mut s, 4, set("/l/a/x", "1"));
    ok(&mut s, 5, set("/l/c", "1"));
    assert_eq!(
        listing_keys(&s, "/l"),
        vec![
            ("/l/a".into(), true),
            ("/l/b".into(), false),
            ("/l/c".into(), false)
        ]
    );
    ok(&mut s, 6, del("/l/a/x"));
    assert_eq!(listing_keys(&s, "/l/a"), vec![]);
    let root = listing_keys(&s, "/");
    assert_eq!(root, vec![("/_etcd".into(), true), ("/l".into(), true)]);
}

#[test]
fn ttl_set_replaces_and_clears_expiry() {
    let mut s = fresh();
    ok(&mut s, 3, set_ttl("/t", "v", 10, T0));
    assert_eq!(s.next_expiry(), Some(T0 + 10 * SEC));
    // A set without ttl makes the key permanent again.
    let e = ok(&mut s, 4, set("/t", "w"));
    assert_eq!(e.expiration, None);
    assert_eq!(s.next_expiry(), None);
    s.apply(
        5,
        &Command::Expire {
            time: T0 + 100 * SEC,
            key: None,
        },
    );
    assert_eq!(value(&s, "/t").value.as_deref(), Some("w"));
    // A new TTL moves the expiry; the old one no longer applies.
    ok(&mut s, 6, set_ttl("/t", "x", 5, T0));
    ok(&mut s, 7, set_ttl("/t", "y", 50, T0));
    s.apply(
        8,
        &Command::Expire {
            time: T0 + 6 * SEC,
            key: None,
        },
    );
    assert_eq!(value(&s, "/t").value.as_deref(), Some("y"));
}

#[test]
fn ttl_zero_or_negative_deletes() {
    let mut s = fresh();
    ok(&mut s, 3, set("/k", "v"));
    let e = ok(&mut s, 4, set_ttl("/k", "v2", 0, T0));
    assert_eq!(
        (e.action, e.prev_value.as_deref()),
        (Action::Delete, Some("v"))
    );
    assert_eq!(
        s.apply(5, &set_ttl("/k", "v", -3, T0)).result,
        Err(Error::KeyNotFound("/k".into()))
    );
}

#[test]
fn legacy_expiry_removes_due_keys_at_one_index_and_notifies_with_expire() {
    // `Expire` without a key (logs written before per-key expiry) still means every node due.
    let mut s = fresh();
    ok(&mut s, 3, set_ttl("/e/a", "1", 1, T0));
    ok(&mut s, 4, set_ttl("/e/b", "2", 2, T0));
    ok(&mut s, 5, set_ttl("/e/c", "3", 30, T0));
    let Watched::Pending(_) = s.watch("/e", 0, 1).unwrap() else {
        panic!()
    };
    let Watched::Pending(_) = s.watch("/e/b", 0, 2).unwrap() else {
        panic!()
    };
    let applied = s.apply(
        6,
        &Command::Expire {
            time: T0 + 2 * SEC,
            key: None,
        },
    );
    assert_eq!(applied.result, Ok(None));
    let mut fired: Vec<(u32, String, Action, Option<String>, u64)> = applied
        .fired
        .into_iter()
        .map(|(w, e)| (w, e.key, e.action, e.prev_value, e.index))
        .collect();
    fired.sort();
    assert_eq!(
        fired,
        vec![
            (1, "/e/a".into(), Action::Expire, Some("1".into()), 6),
            (2, "/e/b".into(), Action::Expire, Some("2".into()), 6)
        ]
    );
    assert_eq!(listing_keys(&s, "/e"), vec![("/e/c".into(), false)]);
    // History holds both deletions at index 6.
    match s.watch("/e/b", 6, 9).unwrap() {
        Watched::Ready(e, _) => {
            assert_eq!((e.key.as_str(), e.expiration), ("/e/b", Some(T0 + 2 * SEC)))
        }
        _ => panic!("in history"),
    }
}

#[test]
fn watch_from_an_index_beyond_the_present_waits_for_that_index() {
    let mut s = fresh();
    let Watched::Pending(_) = s.watch("/k", 5, 1).unwrap() else {
        panic!()
    };
    assert!(s.apply(3, &set("/k", "a")).fired.is_empty());
    assert!(s.apply(4, &set("/k", "b")).fired.is_empty());
    assert_eq!(s.apply(5, &set("/k", "c")).fired.len(), 1);
}

#[test]
fn watch_on_root_sees_everything_and_prefixes_match_whole_segments() {
    let mut s = fresh();
    let Watched::Pending(_) = s.watch("/", 0, 1).unwrap() else {
        panic!()
    };
    let Watched::Pending(_) = s.watch("/w", 0, 2).unwrap() else {
        panic!()
    };
    let fired = s.apply(3, &set("/ww/x", "v")).fired;
    assert_eq!(fired.iter().map(|(w, _)| *w).collect::<Vec<_>>(), vec![1]);
    let fired = s.apply(4, &set("/w/x", "v")).fired;
    assert_eq!(fired.iter().map(|(w, _)| *w).collect::<Vec<_>>(), vec![2]);
    // History watch on / works too (a 2013 bug).
    match s.watch("/", 3, 3).unwrap() {
        Watched::Ready(e, _) => assert_eq!(e.key, "/ww/x"),
        _ => panic!(),
    }
}

#[test]
fn cleared_history_is_reported() {
    let mut s: Store<u32> = Store::new(4);
    s.apply(1, &join(1, "n"));
    for i in 2..=10 {
        ok(&mut s, i, set("/k", &i.to_string()));
    }
    // Kept: 7..=10.
    assert_eq!(
        s.watch("/k", 6, 0).err(),
        Some(Error::HistoryCleared {
            first: 7,
            requested: 6
        })
    );
    assert!(matches!(s.watch("/k", 7, 0), Ok(Watched::Ready(e, _)) if e.index == 7));
}

#[test]
fn unwatch_removes_a_waiting_watcher() {
    let mut s = fresh();
    let Ok(Watched::Pending(id)) = s.watch("/k", 0, 5) else {
        panic!()
    };
    assert_eq!(s.watcher_count(), 1);
    assert_eq!(s.unwatch(id), Some(5));
    assert_eq!(s.watcher_count(), 0);
    assert!(s.apply(3, &set("/k", "v")).fired.is_empty());
}

#[test]
fn snapshot_restores_everything_replicated() {
    let mut s = fresh();
    ok(&mut s, 3, set("/a/b/c", "1"));
    ok(&mut s, 4, set_ttl("/t", "2", 100, T0));
    ok(&mut s, 5, set("/empty/x", "1"));
    ok(&mut s, 6, del("/empty/x"));
    s.get("/a/b/c").unwrap();
    let bytes = s.snapshot().encode();

    let mut r: Store<u32> = Store::new(1024);
    assert!(r.restore(StoreSnapshot::decode(&bytes).unwrap()).is_empty());
    assert_eq!((r.index(), r.applied()), (6, 6));
    assert_eq!(r.stats().gets.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(value(&r, "/a/b/c").value.as_deref(), Some("1"));
    assert_eq!(listing_keys(&r, "/empty"), vec![]);
    assert_eq!(r.next_expiry(), Some(T0 + 100 * SEC));
    assert_eq!(r.members().len(), 1);
    assert_eq!(r.stats().sets, 3);
    match r.watch("/a", 3, 0).unwrap() {
        Watched::Ready(e, _) => assert_eq!(e.key, "/a/b/c"),
        _ => panic!("history restored"),
    }
    // Applying continues identically on both.
    let a = s
        .apply(
            7,
            &Command::Expire {
                time: T0 + 200 * SEC,
                key: None,
            },
        )
        .result;
    let b = r
        .apply(
            7,
            &Command::Expire {
                time: T0 + 200 * SEC,
                key: None,
            },
        )
        .result;
    assert_eq!(a, b);
    // Equal but for `gets`, which counts this member's own reads.
    let (mut a, mut b) = (s.snapshot(), r.snapshot());
    for x in [&mut a, &mut b] {
        *x.stats.gets.get_mut() = 0;
        *x.stats.v2.gets_success.get_mut() = 0;
        *x.stats.v2.gets_fail.get_mut() = 0;
    }
    assert_eq!(a.encode(), b.encode());
}

#[test]
fn restore_fires_watchers_the_new_history_answers() {
    let mut leader = fresh();
    ok(&mut leader, 3, set("/k", "v"));
    let snap = leader.snapshot();

    let mut behind: Store<u32> = Store::new(1024);
    behind.apply(1, &join(1, "node0"));
    let Ok(Watched::Pending(_)) = behind.watch("/k", 0, 7) else {
        panic!()
    };
    let Ok(Watched::Pending(_)) = behind.watch("/other", 0, 8) else {
        panic!()
    };
    let fired = behind.restore(snap);
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].0, fired[0].1.index), (7, 3));
    assert_eq!(behind.watcher_count(), 1);
}

#[test]
fn deep_keys_snapshot_without_recursion_limits() {
    let mut s = fresh();
    let deep: String = (0..1000).map(|i| format!("/d{i}")).collect();
    ok(&mut s, 3, set(&deep, "v"));
    let mut r: Store<u32> = Store::new(16);
    r.restore(StoreSnapshot::decode(&s.snapshot().encode()).unwrap());
    assert_eq!(value(&r, &deep).value.as_deref(), Some("v"));
}

#[test]
fn members_join_and_leave_through_the_log() {
    let mut s = fresh();
    let e = ok(&mut s, 3, join(7, "node2"));
    assert_eq!(
        (e.key.as_str(), e.new_key, e.index),
        ("/_etcd/machines/node2", true, 3)
    );
    assert_eq!(s.members().keys().copied().collect::<Vec<_>>(), vec![1, 7]);
    let e = ok(
        &mut s,
        4,
        Command::Leave {
            id: 7,
            name: "node2".into(),
        },
    );
    assert_eq!(
        (e.action, e.key.as_str(), e.index),
        (Action::Delete, "/_etcd/machines/node2", 4)
    );
    assert_eq!(s.members().keys().copied().collect::<Vec<_>>(), vec![1]);
    assert!(s.is_removed(7) && !s.is_removed(1));
    let mut r: Store<u32> = Store::new(16);
    r.restore(StoreSnapshot::decode(&s.snapshot().encode()).unwrap());
    assert!(r.is_removed(7), "removals survive snapshots");
    assert_eq!(
        listing_keys(&s, "/_etcd/machines"),
        vec![("/_etcd/machines/node0".to_string(), false)]
    );
}

#[test]
fn restore_ends_watchers_whose_events_the_new_history_no_longer_holds() {
    // A leader whose history (capacity 2) has moved past index 3.
    let mut leader: Store<u32> = Store::new(2);
    leader.apply(1, &join(1, "node0"));
    leader.skip(2);
    for i in 3..=6 {
        ok(&mut leader, i, set("/k", "v"));
    }
    let snap = leader.snapshot();
    let mut behind: Store<u32> = Store::new(2);
    behind.apply(1, &join(1, "node0"));
    let Ok(Watched::Pending(_)) = behind.watch("/k", 3, 7) else {
        panic!()
    };
    let fired = behind.restore(snap);
    // Not answered with a later event (that would skip 3 and 4), and not left waiting.
    assert!(fired.is_empty(), "{:?}", fired.len());
    assert_eq!(behind.watcher_count(), 0);
}
