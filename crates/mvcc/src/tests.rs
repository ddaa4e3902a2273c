//! The checklist of `shared/design/v3.md` §3 (Revisions, Key fields, Range, Put, DeleteRange,
//! Txn, Compact), one test per rule where a rule is testable alone, and a model check: random
//! writes, reads at random revisions and compactions against a plain copy of the whole keyspace
//! at every revision.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::range_request::{SortOrder, SortTarget};
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::*;
use crate::{
    check_txn, Answer, Error, FileHandle, Keyspace, Stored, ValueFile, ValueStore, Values, Write,
};

/// A value store in memory with tiny files (256 bytes), counting the files still alive, so
/// that the tests below run every value through the stored path and compaction rewrites.
#[derive(Debug, Default)]
pub(crate) struct MemFiles {
    active: Mutex<Option<(Arc<MemFile>, FileHandle)>>,
    pub(crate) alive: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct MemFile {
    data: Mutex<Vec<u8>>,
    sealed: AtomicBool,
    alive: Arc<AtomicUsize>,
}

impl Drop for MemFile {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, SeqCst);
    }
}

/// A [`MemFile`] as a [`ValueFile`].
#[derive(Debug)]
struct Shared(Arc<MemFile>);

impl ValueFile for Shared {
    fn read(&self, offset: u32, len: u32) -> std::io::Result<Bytes> {
        let data = self.0.data.lock().unwrap();
        let at = offset as usize;
        Ok(Bytes::copy_from_slice(&data[at..at + len as usize]))
    }

    fn written(&self) -> u64 {
        self.0.data.lock().unwrap().len() as u64
    }

    fn sealed(&self) -> bool {
        self.0.sealed.load(SeqCst)
    }
}

impl ValueStore for MemFiles {
    fn store(&self, value: &[u8]) -> Option<Stored> {
        let mut active = self.active.lock().unwrap();
        let full = active
            .as_ref()
            .is_none_or(|(f, _)| f.data.lock().unwrap().len() + value.len() > 256);
        if full {
            if let Some((old, _)) = active.take() {
                old.sealed.store(true, SeqCst);
            }
            self.alive.fetch_add(1, SeqCst);
            let file = Arc::new(MemFile {
                data: Mutex::new(Vec::new()),
                sealed: AtomicBool::new(false),
                alive: self.alive.clone(),
            });
            let handle: FileHandle = Arc::new(Box::new(Shared(file.clone())));
            *active = Some((file, handle));
        }
        let (file, handle) = active.as_ref().expect("an active file");
        let mut data = file.data.lock().unwrap();
        let offset = data.len() as u32;
        data.extend_from_slice(value);
        Some(Stored::new(handle.clone(), offset, value.len() as u32))
    }
}

/// A keyspace storing every value in a [`MemFiles`].
fn new_ks() -> Keyspace {
    Keyspace::with_values(Values::all_stored(Arc::new(MemFiles::default())))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn no_lease(_: i64) -> bool {
    false
}

fn put(ks: &mut Keyspace, k: &str, v: &str) -> PutResponse {
    match ks.apply(
        &Write::Put(PutRequest {
            key: b(k),
            value: b(v),
            prev_kv: true,
            ..Default::default()
        }),
        &no_lease,
    ) {
        (Ok(Answer::Put(p)), _) => p,
        other => panic!("{other:?}"),
    }
}

fn del(ks: &mut Keyspace, k: &str, end: &str) -> DeleteRangeResponse {
    match ks.apply(
        &Write::DeleteRange(DeleteRangeRequest {
            key: b(k),
            range_end: b(end),
            prev_kv: true,
        }),
        &no_lease,
    ) {
        (Ok(Answer::DeleteRange(d)), _) => d,
        other => panic!("{other:?}"),
    }
}

fn txn(ks: &mut Keyspace, t: TxnRequest) -> TxnResponse {
    match ks.apply(&Write::Txn(t), &no_lease) {
        (Ok(Answer::Txn(t)), _) => t,
        other => panic!("{other:?}"),
    }
}

fn get(ks: &Keyspace, k: &str, end: &str) -> RangeResponse {
    ks.range(&RangeRequest {
        key: b(k),
        range_end: b(end),
        ..Default::default()
    })
    .unwrap()
}

fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        key: b(key),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
        range_end: Bytes::new(),
    }
}

fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })),
    }
}

fn op_get(k: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: b(k),
            ..Default::default()
        })),
    }
}

fn op_del(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: b(k),
            range_end: b(end),
            ..Default::default()
        })),
    }
}

#[test]
fn revisions_start_at_1_and_each_write_makes_one() {
    let mut ks = new_ks();
    assert_eq!(ks.revision(), 1);
    assert_eq!(put(&mut ks, "a", "1").header.unwrap().revision, 2);
    // A put bumps the revision even when the value is unchanged.
    assert_eq!(put(&mut ks, "a", "1").header.unwrap().revision, 3);
    assert_eq!(ks.revision(), 3);
}

#[test]
fn a_delete_that_deletes_nothing_does_not_bump_the_revision() {
    let mut ks = new_ks();
    put(&mut ks, "a", "1");
    let d = del(&mut ks, "zzz", "");
    assert_eq!((d.deleted, d.header.unwrap().revision), (0, 2));
    assert_eq!(ks.revision(), 2);
}

#[test]
fn key_fields_follow_generations() {
    let mut ks = new_ks();
    put(&mut ks, "k", "1"); // rev 2
    put(&mut ks, "k", "2"); // rev 3
    let kv = get(&ks, "k", "").kvs[0].clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    del(&mut ks, "k", ""); // rev 4
    assert!(get(&ks, "k", "").kvs.is_empty());
    let p = put(&mut ks, "k", "3"); // rev 5: a new generation
    assert!(p.prev_kv.is_none());
    let kv = get(&ks, "k", "").kvs[0].clone();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn range_end_rules_single_from_key_and_prefix() {
    let mut ks = new_ks();
    for k in ["a", "b", "b/1", "b/2", "c"] {
        put(&mut ks, k, "v");
    }
    assert_eq!(keys(&get(&ks, "b", "")), ["b"]);
    assert_eq!(keys(&get(&ks, "b", "\0")), ["b", "b/1", "b/2", "c"]);
    assert_eq!(keys(&get(&ks, "b/", "b0")), ["b/1", "b/2"]);
    assert_eq!(keys(&get(&ks, "\0", "\0")), ["a", "b", "b/1", "b/2", "c"]);
    // An end at or before the key is an empty range.
    assert!(get(&ks, "c", "a").kvs.is_empty());
}

#[test]
fn range_at_old_revisions_compacted_and_future() {
    let mut ks = new_ks();
    put(&mut ks, "k", "1"); // 2
    put(&mut ks, "k", "2"); // 3
    del(&mut ks, "k", ""); // 4
    let at = |ks: &Keyspace, rev| {
        ks.range(&RangeRequest {
            key: b("k"),
            revision: rev,
            ..Default::default()
        })
    };
    assert_eq!(at(&ks, 2).unwrap().kvs[0].value, b("1"));
    assert_eq!(at(&ks, 3).unwrap().kvs[0].value, b("2"));
    assert!(at(&ks, 4).unwrap().kvs.is_empty());
    // The header carries the current revision even for an old read.
    assert_eq!(at(&ks, 2).unwrap().header.unwrap().revision, 4);
    assert_eq!(at(&ks, 5), Err(Error::FutureRevision));
    ks.compact(3).unwrap();
    assert_eq!(at(&ks, 2), Err(Error::Compacted));
    // Reading at the compaction revision is allowed.
    assert_eq!(at(&ks, 3).unwrap().kvs[0].value, b("2"));
}

#[test]
fn limit_more_and_count_before_limit() {
    let mut ks = new_ks();
    for k in ["a", "b", "c"] {
        put(&mut ks, k, "v");
    }
    let r = |limit| {
        ks.range(&RangeRequest {
            key: b("a"),
            range_end: b("\0"),
            limit,
            ..Default::default()
        })
        .unwrap()
    };
    let two = r(2);
    assert_eq!(
        (keys(&two), two.more, two.count),
        (vec!["a".into(), "b".into()], true, 3)
    );
    let three = r(3);
    assert_eq!((three.kvs.len(), three.more, three.count), (3, false, 3));
}

#[test]
fn sort_filters_keys_only_and_count_only() {
    let mut ks = new_ks();
    put(&mut ks, "a", "3"); // 2
    put(&mut ks, "b", "1"); // 3
    put(&mut ks, "c", "2"); // 4
    put(&mut ks, "a", "4"); // 5
    let all = |f: &dyn Fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: b("a"),
            range_end: b("\0"),
            ..Default::default()
        };
        f(&mut r);
        ks.range(&r).unwrap()
    };
    // DESCEND by key: the "last key" idiom.
    let last = all(&|r| {
        r.sort_order = SortOrder::Descend as i32;
        r.limit = 1;
    });
    assert_eq!(
        (keys(&last), last.more, last.count),
        (vec!["c".into()], true, 3)
    );
    // A target other than KEY with order NONE sorts ascending.
    let by_value = all(&|r| r.sort_target = SortTarget::Value as i32);
    assert_eq!(keys(&by_value), ["b", "c", "a"]);
    let by_mod_desc = all(&|r| {
        r.sort_target = SortTarget::Mod as i32;
        r.sort_order = SortOrder::Descend as i32;
    });
    assert_eq!(keys(&by_mod_desc), ["a", "c", "b"]);
    // Filters apply after counting.
    let created_late = all(&|r| r.min_create_revision = 3);
    assert_eq!(
        (keys(&created_late), created_late.count),
        (vec!["b".into(), "c".into()], 3)
    );
    let modded_early = all(&|r| r.max_mod_revision = 4);
    assert_eq!(keys(&modded_early), ["b", "c"]);
    let ko = all(&|r| r.keys_only = true);
    assert!(ko.kvs.iter().all(|kv| kv.value.is_empty()) && ko.kvs.len() == 3);
    let co = all(&|r| r.count_only = true);
    assert_eq!((co.kvs.len(), co.count), (0, 3));
}

#[test]
fn put_prev_kv_ignore_value_ignore_lease_and_leases() {
    let mut ks = new_ks();
    let p = put(&mut ks, "k", "1");
    assert!(p.prev_kv.is_none());
    assert_eq!(put(&mut ks, "k", "2").prev_kv.unwrap().value, b("1"));
    // ignore_value on a missing key: key not found.
    let missing = PutRequest {
        key: b("nope"),
        ignore_value: true,
        ..Default::default()
    };
    assert_eq!(
        ks.apply(&Write::Put(missing), &no_lease).0,
        Err(Error::KeyNotFound)
    );
    // A lease that does not exist.
    let leased = PutRequest {
        key: b("k"),
        lease: 7,
        ..Default::default()
    };
    assert_eq!(
        ks.apply(&Write::Put(leased.clone()), &no_lease).0,
        Err(Error::LeaseNotFound)
    );
    let rev = ks.revision();
    // With the lease live: attached; ignore_value keeps the value.
    ks.apply(&Write::Put(leased), &|id| id == 7).0.unwrap();
    assert_eq!(ks.revision(), rev + 1);
    let kv = get(&ks, "k", "").kvs[0].clone();
    assert_eq!((kv.value.clone(), kv.lease), (Bytes::new(), 7));
    let keep = PutRequest {
        key: b("k"),
        value: b("v"),
        ignore_lease: true,
        ..Default::default()
    };
    ks.apply(&Write::Put(keep), &|_| true).0.unwrap();
    assert_eq!(get(&ks, "k", "").kvs[0].lease, 7);
    // A put without a lease detaches the key.
    put(&mut ks, "k", "x");
    assert_eq!(get(&ks, "k", "").kvs[0].lease, 0);
}

#[test]
fn delete_range_one_revision_increasing_subs_and_prev_kvs() {
    let mut ks = new_ks();
    for k in ["a", "b", "c"] {
        put(&mut ks, k, "v");
    }
    let (answer, changes) = ks.apply(
        &Write::DeleteRange(DeleteRangeRequest {
            key: b("a"),
            range_end: b("c"),
            prev_kv: true,
        }),
        &no_lease,
    );
    let Ok(Answer::DeleteRange(d)) = answer else {
        panic!()
    };
    assert_eq!(
        (d.deleted, d.header.unwrap().revision, d.prev_kvs.len()),
        (2, 5, 2)
    );
    let subs: Vec<_> = changes.iter().map(|c| c.sub).collect();
    assert_eq!(subs, [0, 1]);
    for c in &changes {
        let kv = c.event.kv.as_ref().unwrap();
        assert_eq!((kv.mod_revision, kv.version, kv.create_revision), (5, 0, 0));
        assert!(kv.value.is_empty());
    }
}

#[test]
fn txn_compares_branches_one_revision_and_reads_see_earlier_writes() {
    let mut ks = new_ks();
    put(&mut ks, "k", "1"); // rev 2, mod 2
    let t = TxnRequest {
        compare: vec![cmp(
            "k",
            CompareTarget::Mod,
            CompareResult::Equal,
            TargetUnion::ModRevision(2),
        )],
        success: vec![op_put("k", "2"), op_put("j", "x"), op_get("k")],
        failure: vec![op_get("k")],
    };
    let r = txn(&mut ks, t.clone());
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 3);
    assert_eq!(ks.revision(), 3);
    let Some(Response::ResponseRange(read)) = &r.responses[2].response else {
        panic!()
    };
    assert_eq!(read.kvs[0].value, b("2"));
    assert_eq!(read.header.as_ref().unwrap().revision, 3);
    // Same txn again: the compare fails now, the read-only branch makes no revision.
    let r = txn(&mut ks, t);
    assert!(!r.succeeded);
    assert_eq!(r.header.unwrap().revision, 3);
    assert_eq!(ks.revision(), 3);
}

#[test]
fn txn_compare_rules_missing_keys_values_and_ranges() {
    let mut ks = new_ks();
    put(&mut ks, "p/a", "1");
    put(&mut ks, "p/b", "2");
    let holds = |ks: &mut Keyspace, c: Compare| {
        txn(
            ks,
            TxnRequest {
                compare: vec![c],
                ..Default::default()
            },
        )
        .succeeded
    };
    // A missing key compares as version 0 …
    assert!(holds(
        &mut ks,
        cmp(
            "nope",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0)
        )
    ));
    assert!(holds(
        &mut ks,
        cmp(
            "nope",
            CompareTarget::Create,
            CompareResult::Equal,
            TargetUnion::CreateRevision(0)
        )
    ));
    // … but a value compare on a missing key never holds, even NOT_EQUAL.
    assert!(!holds(
        &mut ks,
        cmp(
            "nope",
            CompareTarget::Value,
            CompareResult::NotEqual,
            TargetUnion::Value(b("x"))
        )
    ));
    // Value ordering is bytewise.
    assert!(holds(
        &mut ks,
        cmp(
            "p/a",
            CompareTarget::Value,
            CompareResult::Less,
            TargetUnion::Value(b("2"))
        )
    ));
    // A range compare holds only if it holds for every key.
    let mut over = |v: i64, r: CompareResult| {
        let mut c = cmp("p/", CompareTarget::Mod, r, TargetUnion::ModRevision(v));
        c.range_end = b("p0");
        holds(&mut ks, c)
    };
    assert!(over(1, CompareResult::Greater));
    assert!(!over(2, CompareResult::Greater));
    assert!(holds(
        &mut ks,
        cmp(
            "p/a",
            CompareTarget::Lease,
            CompareResult::Equal,
            TargetUnion::Lease(0)
        )
    ));
}

#[test]
fn nested_txns_follow_their_own_compares_and_share_one_revision() {
    let mut ks = new_ks();
    put(&mut ks, "a", "1"); // 2
    let nested = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(b("nope")),
        )],
        success: vec![op_put("x", "then")],
        failure: vec![op_put("x", "else"), op_del("a", "")],
    };
    let r = txn(
        &mut ks,
        TxnRequest {
            compare: vec![],
            success: vec![
                op_put("b", "1"),
                RequestOp {
                    request: Some(Request::RequestTxn(nested)),
                },
            ],
            failure: vec![],
        },
    );
    assert!(r.succeeded);
    assert_eq!(r.header.unwrap().revision, 3);
    let Some(Response::ResponseTxn(inner)) = &r.responses[1].response else {
        panic!()
    };
    assert!(!inner.succeeded);
    // etcd leaves a nested txn's header empty.
    assert_eq!(inner.header, Some(ResponseHeader::default()));
    assert_eq!(get(&ks, "x", "").kvs[0].value, b("else"));
    assert_eq!(get(&ks, "x", "").kvs[0].mod_revision, 3);
    assert!(get(&ks, "a", "").kvs.is_empty());
}

#[test]
fn txn_validation_op_limit_empty_keys_and_duplicate_keys() {
    let many = TxnRequest {
        success: (0..129).map(|i| op_put(&format!("k{i}"), "v")).collect(),
        ..Default::default()
    };
    assert_eq!(check_txn(&many, 128), Err(Error::TooManyOps));
    let mut ok = many.clone();
    ok.success.pop();
    assert_eq!(check_txn(&ok, 128), Ok(()));
    let dup = TxnRequest {
        success: vec![op_put("k", "1"), op_put("k", "2")],
        ..Default::default()
    };
    assert_eq!(check_txn(&dup, 128), Err(Error::DuplicateKey));
    let put_in_deleted = TxnRequest {
        success: vec![op_del("a", "c"), op_put("b", "2")],
        ..Default::default()
    };
    assert_eq!(check_txn(&put_in_deleted, 128), Err(Error::DuplicateKey));
    // The same key in success and failure is fine (only one runs).
    let both = TxnRequest {
        success: vec![op_put("k", "1")],
        failure: vec![op_put("k", "2")],
        ..Default::default()
    };
    assert_eq!(check_txn(&both, 128), Ok(()));
    // … also inside a nested txn; but not beside a put of the same key outside it.
    let nested = |outer: Vec<RequestOp>| TxnRequest {
        success: outer
            .into_iter()
            .chain([RequestOp {
                request: Some(Request::RequestTxn(both.clone())),
            }])
            .collect(),
        ..Default::default()
    };
    assert_eq!(check_txn(&nested(vec![]), 128), Ok(()));
    assert_eq!(
        check_txn(&nested(vec![op_put("k", "0")]), 128),
        Err(Error::DuplicateKey)
    );
    let empty_cmp = TxnRequest {
        compare: vec![cmp(
            "",
            CompareTarget::Version,
            CompareResult::Equal,
            TargetUnion::Version(0),
        )],
        ..Default::default()
    };
    assert_eq!(check_txn(&empty_cmp, 128), Err(Error::KeyNotProvided));
    let empty_op = TxnRequest {
        success: vec![RequestOp { request: None }],
        ..Default::default()
    };
    assert_eq!(check_txn(&empty_op, 128), Err(Error::KeyNotFound));
}

#[test]
fn txn_apply_errors_change_nothing() {
    let mut ks = new_ks();
    put(&mut ks, "a", "1");
    let t = TxnRequest {
        success: vec![
            op_put("b", "1"),
            RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: b("c"),
                    lease: 99,
                    ..Default::default()
                })),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        ks.apply(&Write::Txn(t), &no_lease).0,
        Err(Error::LeaseNotFound)
    );
    assert_eq!(ks.revision(), 2);
    assert!(get(&ks, "b", "").kvs.is_empty());
    let future = TxnRequest {
        success: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: b("a"),
                revision: 9,
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    assert_eq!(
        ks.apply(&Write::Txn(future), &no_lease).0,
        Err(Error::FutureRevision)
    );
}

#[test]
fn compact_rules() {
    let mut ks = new_ks();
    put(&mut ks, "k", "1"); // 2
    put(&mut ks, "k", "2"); // 3
    put(&mut ks, "gone", "x"); // 4
    del(&mut ks, "gone", ""); // 5
    assert_eq!(ks.compact(9), Err(Error::FutureRevision));
    ks.compact(5).unwrap();
    assert_eq!(ks.compact(5), Err(Error::Compacted));
    assert_eq!(ks.compact(4), Err(Error::Compacted));
    // Only the newest version at or below 5 survives, and deleted keys are gone; so does
    // their size.
    assert_eq!(ks.size(), 1 + 1 + 64);
    assert_eq!(ks.keys.get(&b"k"[..]).unwrap().len(), 1);
    assert!(ks.keys.get(&b"gone"[..]).is_none());
    assert_eq!(get(&ks, "k", "").kvs[0].value, b("2"));
}

#[test]
fn compaction_stores_again_the_values_of_mostly_unused_files_which_then_go() {
    let files = Arc::new(MemFiles::default());
    let mut ks = Keyspace::with_values(Values::all_stored(files.clone()));
    // The same writes with every value in memory.
    let mut plain = Keyspace::new();
    let value = |i: usize, round: u8| format!("{round}{i:039}");
    // 60 keys of 40 bytes: 6 to a 256-byte file, 10 files.
    for i in 0..60 {
        put(&mut ks, &format!("k{i:02}"), &value(i, 0));
        put(&mut plain, &format!("k{i:02}"), &value(i, 0));
    }
    assert_eq!(files.alive.load(SeqCst), 10);
    // Two of every three keys written again: their first versions are unused after a
    // compaction, so each first file keeps only a third of its bytes in use.
    for i in (0..60).filter(|i| i % 3 != 0) {
        put(&mut ks, &format!("k{i:02}"), &value(i, 1));
        put(&mut plain, &format!("k{i:02}"), &value(i, 1));
    }
    assert_eq!(ks.hash_kv(0).unwrap(), plain.hash_kv(0).unwrap());
    let snapshot = ks.clone();
    ks.compact(ks.revision()).unwrap();
    plain.compact(plain.revision()).unwrap();
    assert_eq!(ks.hash_kv(0).unwrap(), plain.hash_kv(0).unwrap());
    for i in 0..60 {
        let round = if i % 3 == 0 { 0 } else { 1 };
        let got = get(&ks, &format!("k{i:02}"), "");
        assert_eq!(got.kvs[0].value, b(&value(i, round)), "k{i:02}");
    }
    // The clone still reads every old version from the old files...
    assert_eq!(get(&snapshot, "k01", "").kvs[0].value, b(&value(1, 1)));
    assert_eq!(
        snapshot
            .range(&RangeRequest {
                key: b("k01"),
                revision: 3,
                ..Default::default()
            })
            .unwrap()
            .kvs[0]
            .value,
        b(&value(1, 0))
    );
    // ...and once it is gone, only the files in use are left: the 20 rewritten values and the
    // 40 second versions (60 x 40 bytes, 10 files, the last one still taking values).
    drop(snapshot);
    assert_eq!(files.alive.load(SeqCst), 10);
    // A file in use over half its bytes stays where it is.
    let alive = files.alive.load(SeqCst);
    for i in (0..60).filter(|i| i % 3 == 0).take(2) {
        put(&mut ks, &format!("k{i:02}"), &value(i, 2));
    }
    ks.compact(ks.revision()).unwrap();
    assert_eq!(files.alive.load(SeqCst), alive + 1);
}

#[test]
fn hash_kv_is_equal_for_equal_histories() {
    let mut a = new_ks();
    let mut b2 = new_ks();
    for ks in [&mut a, &mut b2] {
        put(ks, "x", "1");
        put(ks, "y", "2");
    }
    assert_eq!(a.hash_kv(0), b2.hash_kv(0));
    assert_ne!(a.hash_kv(2).unwrap().0, a.hash_kv(3).unwrap().0);
    put(&mut b2, "y", "3");
    assert_ne!(a.hash_kv(0).unwrap().0, b2.hash_kv(0).unwrap().0);
}

/// The hashes etcd 3.4.23 gave (`etcdctl endpoint hashkv -w json`) after each step of the
/// same history on a fresh server.
#[test]
fn hash_kv_equals_etcd_3_4s_through_writes_deletes_and_compaction() {
    let mut ks = new_ks();
    assert_eq!(ks.hash_kv(0), Ok((1_084_519_789, 1)));
    put(&mut ks, "a", "1");
    assert_eq!(ks.hash_kv(0), Ok((2_587_454_935, 2)));
    put(&mut ks, "b", "2");
    put(&mut ks, "a", "11");
    del(&mut ks, "b", "");
    assert_eq!(ks.hash_kv(0), Ok((3_058_379_190, 5)));
    assert_eq!(ks.hash_kv(4), Ok((2_181_957_126, 4)));
    assert_eq!(ks.hash_kv(2), Ok((2_587_454_935, 2)));
    ks.compact(5).unwrap();
    assert_eq!(ks.hash_kv(0), Ok((2_039_062_377, 5)));
    // HashKV refuses the compacted revision itself (a range may read there).
    assert_eq!(ks.hash_kv(5), Err(Error::Compacted));
    assert_eq!(ks.hash_kv(6), Err(Error::FutureRevision));
    put(&mut ks, "a", "12");
    assert_eq!(ks.hash_kv(0), Ok((1_768_536_785, 6)));
    // No key left: the version the compaction kept counts again.
    del(&mut ks, "a", "");
    assert_eq!(ks.hash_kv(0), Ok((424_769_188, 7)));
    put(&mut ks, "z", "1");
    assert_eq!(ks.hash_kv(0), Ok((340_283_207, 8)));
}

/// The same, through a txn of two puts (sub-revisions), a lease, an empty value.
#[test]
fn hash_kv_equals_etcd_3_4s_with_sub_revisions_leases_and_empty_values() {
    let mut ks = new_ks();
    put(&mut ks, "a", "1");
    txn(
        &mut ks,
        TxnRequest {
            success: vec![op_put("c", "1"), op_put("d", "2")],
            ..Default::default()
        },
    );
    assert_eq!(ks.hash_kv(0), Ok((1_933_524_979, 3)));
    let lease = 0x2040_a24a_0598_a507;
    for value in ["v", ""] {
        let leased = PutRequest {
            key: b("e"),
            value: b(value),
            lease,
            ..Default::default()
        };
        let (answer, _) = ks.apply(&Write::Put(leased), &|_| true);
        answer.unwrap();
    }
    assert_eq!(ks.hash_kv(0), Ok((216_721_796, 5)));
    // The lease revoked: its key deleted.
    del(&mut ks, "e", "");
    assert_eq!(ks.hash_kv(0), Ok((3_732_788_286, 6)));
    del(&mut ks, "a", "");
    assert_eq!(ks.hash_kv(0), Ok((2_387_628_965, 7)));
    ks.compact(6).unwrap();
    assert_eq!(ks.hash_kv(0), Ok((813_350_616, 7)));
    put(&mut ks, "k", "x");
    assert_eq!(ks.hash_kv(0), Ok((2_539_122_779, 8)));
}

#[test]
fn snapshot_records_round_trip() {
    let mut ks = new_ks();
    put(&mut ks, "a", "1");
    put(&mut ks, "a", "2");
    put(&mut ks, "b", "x");
    del(&mut ks, "b", "");
    put(&mut ks, "c\0\u{ff}", "bin");
    let mut bytes = Vec::new();
    ks.each_record(|rec| {
        rec(&mut bytes);
        Ok::<_, ()>(())
    })
    .unwrap();
    let mut back = new_ks();
    let mut pos = 0;
    while pos < bytes.len() {
        pos += back.read_record(&bytes[pos..]).unwrap();
    }
    assert_eq!(back.revision(), ks.revision());
    assert_eq!(back.len(), ks.len());
    assert_eq!(back.hash_kv(0), ks.hash_kv(0));
    assert_eq!(back.size(), ks.size());
    assert_eq!(get(&back, "\0", "\0"), get(&ks, "\0", "\0"));
    // Damage is refused, not misread.
    assert!(new_ks().read_record(&bytes[..bytes.len() - 2]).is_ok());
    assert!(new_ks().read_record(&[9]).is_err());
}

/// A tiny deterministic generator (no dependency needed for a test).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn model_check_reads_at_every_revision_through_writes_and_compactions() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut ks = new_ks();
        // The model: the whole keyspace (key -> kv) after every revision.
        let mut model: Vec<BTreeMap<Bytes, crate::mvccpb::KeyValue>> = vec![BTreeMap::new(); 2];
        let mut compacted = 0;
        for _ in 0..300 {
            let key = b(&format!("k{}", rng.below(12)));
            let current = model.last().unwrap().clone();
            let rev = ks.revision();
            match rng.below(10) {
                0..=5 => {
                    put(
                        &mut ks,
                        std::str::from_utf8(&key).unwrap(),
                        &rng.below(100).to_string(),
                    );
                    let mut next = current.clone();
                    next.insert(
                        key.clone(),
                        get(&ks, std::str::from_utf8(&key).unwrap(), "").kvs[0].clone(),
                    );
                    model.push(next);
                }
                6..=7 => {
                    let end = b(&format!("k{}", rng.below(12)));
                    let mut next = current.clone();
                    let doomed: Vec<_> = current
                        .keys()
                        .filter(|k| **k >= key && **k < end)
                        .cloned()
                        .collect();
                    for k in &doomed {
                        next.remove(k);
                    }
                    ks.apply(
                        &Write::DeleteRange(DeleteRangeRequest {
                            key: key.clone(),
                            range_end: end,
                            prev_kv: false,
                        }),
                        &no_lease,
                    )
                    .0
                    .unwrap();
                    if !doomed.is_empty() {
                        model.push(next);
                    }
                }
                8 => {
                    let to = rev - rng.below(5) as i64;
                    if to > compacted {
                        ks.compact(to).unwrap();
                        compacted = to;
                    }
                }
                _ => {}
            }
            assert_eq!(ks.revision() as usize, model.len() - 1);
            // Read the whole keyspace at a random uncompacted revision.
            let low = compacted.max(1) as u64;
            let at = low + rng.below(ks.revision() as u64 - low + 1);
            let got = ks
                .range(&RangeRequest {
                    key: b("\0"),
                    range_end: b("\0"),
                    revision: at as i64,
                    ..Default::default()
                })
                .unwrap();
            let want: Vec<_> = model[at as usize].values().cloned().collect();
            assert_eq!(got.kvs, want, "seed {seed} at {at}");
            assert_eq!(got.count as usize, want.len());
            assert_eq!(ks.len(), model.last().unwrap().len());
        }
    }
}

mod watch {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;
    use crate::mvccpb::event::EventType;
    use crate::{WatchSink, WatchSpec, Watchers};

    /// What a sink was offered: watch id, revision, events.
    type Offers = Vec<(i64, i64, Vec<crate::mvccpb::Event>)>;

    /// A sink that takes at most `room` offers.
    #[derive(Clone, Default)]
    struct Sink {
        got: Rc<RefCell<Offers>>,
        room: Rc<RefCell<usize>>,
        behind: Rc<RefCell<usize>>,
    }

    impl WatchSink for Sink {
        fn offer(&self, id: i64, rev: i64, events: Vec<crate::mvccpb::Event>) -> bool {
            if *self.room.borrow() == 0 {
                return false;
            }
            *self.room.borrow_mut() -= 1;
            self.got.borrow_mut().push((id, rev, events));
            true
        }
        fn fell_behind(&self) {
            *self.behind.borrow_mut() += 1;
        }
    }

    fn apply_and_notify(ks: &mut Keyspace, w: &mut Watchers<Sink>, write: Write) {
        let (_, changes) = ks.apply(&write, &no_lease);
        if !changes.is_empty() {
            w.notify(ks.revision(), &changes);
        }
    }

    fn put_w(k: &str, v: &str) -> Write {
        Write::Put(PutRequest {
            key: b(k),
            value: b(v),
            ..Default::default()
        })
    }

    #[test]
    fn synced_watchers_get_each_revisions_matching_events_filtered() {
        let mut ks = new_ks();
        let mut w = Watchers::new(ks.revision());
        let sink = Sink {
            room: Rc::new(RefCell::new(100)),
            ..Default::default()
        };
        let prefix = WatchSpec {
            key: b("p/"),
            range_end: b("p0"),
            prev_kv: true,
            ..Default::default()
        };
        let id = w.add(prefix, 0, ks.revision() + 1, sink.clone());
        assert!(w.try_sync(id, ks.revision()));
        let no_del = WatchSpec {
            key: b("p/a"),
            no_delete: true,
            ..Default::default()
        };
        let id2 = w.add(no_del, 1, ks.revision() + 1, sink.clone());
        assert!(w.try_sync(id2, ks.revision()));
        apply_and_notify(&mut ks, &mut w, put_w("p/a", "1")); // 2
        apply_and_notify(&mut ks, &mut w, put_w("q", "1")); // 3: nobody
        apply_and_notify(&mut ks, &mut w, put_w("p/a", "2")); // 4
        apply_and_notify(
            &mut ks,
            &mut w,
            Write::DeleteRange(DeleteRangeRequest {
                key: b("p/"),
                range_end: b("p0"),
                prev_kv: false,
            }),
        ); // 5
           // Per watcher, in revision order (the order between watchers does not matter).
        let mut got = sink.got.borrow().clone();
        got.sort_by_key(|(id, rev, _)| (*id, *rev));
        let summary: Vec<(i64, i64, usize)> = got
            .iter()
            .map(|(id, rev, evs)| (*id, *rev, evs.len()))
            .collect();
        assert_eq!(
            summary,
            [(0, 2, 1), (0, 4, 1), (0, 5, 1), (1, 2, 1), (1, 4, 1)]
        );
        // prev_kv only where asked for.
        assert_eq!(got[1].2[0].prev_kv.as_ref().unwrap().value, b("1"));
        assert!(got[4].2[0].prev_kv.is_none());
        assert_eq!(got[2].2[0].r#type, EventType::Delete as i32);
    }

    #[test]
    fn a_slow_watcher_falls_behind_and_catches_up_from_history_without_loss() {
        let mut ks = new_ks();
        let mut w = Watchers::new(ks.revision());
        let sink = Sink {
            room: Rc::new(RefCell::new(1)),
            ..Default::default()
        };
        let spec = WatchSpec {
            key: b("k"),
            range_end: b("\0"),
            ..Default::default()
        };
        let id = w.add(spec.clone(), 7, 2, sink.clone());
        assert!(w.try_sync(id, ks.revision()));
        apply_and_notify(&mut ks, &mut w, put_w("k1", "a")); // 2: taken
        apply_and_notify(&mut ks, &mut w, put_w("k2", "b")); // 3: refused
        assert_eq!(w.behind_from(id), Some(3));
        assert_eq!(*sink.behind.borrow(), 1);
        apply_and_notify(&mut ks, &mut w, put_w("k1", "c")); // 4: not offered
        assert_eq!(sink.got.borrow().len(), 1);
        // The stream catches up on a clone; meanwhile another write is notified.
        let snapshot = ks.clone();
        apply_and_notify(&mut ks, &mut w, put_w("k3", "d")); // 5
        let caught: Vec<i64> = snapshot
            .events(&spec, 3, snapshot.revision())
            .iter()
            .map(|(rev, _)| *rev)
            .collect();
        assert_eq!(caught, [3, 4]);
        // Not synced yet: revision 5 was notified after the clone.
        assert!(!w.try_sync(id, snapshot.revision()));
        assert_eq!(w.behind_from(id), Some(5));
        let rest: Vec<i64> = ks
            .events(&spec, 5, ks.revision())
            .iter()
            .map(|(r, _)| *r)
            .collect();
        assert_eq!(rest, [5]);
        assert!(w.try_sync(id, ks.revision()));
        *sink.room.borrow_mut() = 10;
        apply_and_notify(&mut ks, &mut w, put_w("k4", "e")); // 6: synced again
        assert_eq!(sink.got.borrow().last().unwrap().1, 6);
    }

    #[test]
    fn history_events_equal_the_changes_that_made_them() {
        let mut ks = new_ks();
        let mut all = Vec::new();
        for write in [
            put_w("a", "1"),
            put_w("b", "1"),
            put_w("a", "2"),
            Write::DeleteRange(DeleteRangeRequest {
                key: b("a"),
                range_end: b("c"),
                prev_kv: false,
            }),
            put_w("a", "3"),
        ] {
            let (_, changes) = ks.apply(&write, &no_lease);
            all.extend(changes.into_iter().map(|c| (ks.revision(), c.event)));
        }
        let spec = WatchSpec {
            key: b("\0"),
            range_end: b("\0"),
            ..Default::default()
        };
        assert_eq!(ks.events(&spec, 2, ks.revision()), all);
        // A restored registry makes synced watchers catch up.
        let mut w: Watchers<Sink> = Watchers::new(1);
        let id = w.add(spec, 0, 2, Sink::default());
        assert!(w.try_sync(id, 1));
        w.restored(ks.revision());
        assert_eq!(w.behind_from(id), Some(2));
    }
}

mod lease {
    use super::*;
    use crate::{Deadlines, Leases};

    fn put_leased(
        ks: &mut Keyspace,
        leases: &mut Leases,
        k: &str,
        lease: i64,
    ) -> Result<(), Error> {
        let (result, changes) = ks.apply(
            &Write::Put(PutRequest {
                key: b(k),
                value: b("v"),
                lease,
                ..Default::default()
            }),
            &|id| leases.exists(id),
        );
        leases.track(&changes);
        result.map(drop)
    }

    #[test]
    fn grant_rules_and_revocation_deletes_the_keys_at_one_revision() {
        let mut ks = new_ks();
        let mut leases = Leases::new();
        leases.grant(5, 10).unwrap();
        assert_eq!(leases.grant(5, 10), Err(Error::LeaseExists));
        assert_eq!(
            leases.grant(6, crate::MAX_LEASE_TTL + 1),
            Err(Error::LeaseTtlTooLarge)
        );
        assert_eq!(
            put_leased(&mut ks, &mut leases, "x", 9),
            Err(Error::LeaseNotFound)
        );
        for k in ["a", "b", "c"] {
            put_leased(&mut ks, &mut leases, k, 5).unwrap();
        }
        // Rewritten without the lease: detached. Deleted: detached.
        put_leased(&mut ks, &mut leases, "c", 0).unwrap();
        let (_, changes) = ks.apply(
            &Write::DeleteRange(DeleteRangeRequest {
                key: b("b"),
                ..Default::default()
            }),
            &no_lease,
        );
        leases.track(&changes);
        assert_eq!(leases.get(5).unwrap().keys.len(), 1);
        put_leased(&mut ks, &mut leases, "b", 5).unwrap();
        let rev = ks.revision();
        let lease = leases.revoke(5).unwrap();
        let changes = ks.delete_keys(lease.keys);
        assert_eq!(ks.revision(), rev + 1);
        assert_eq!(changes.len(), 2);
        assert!(changes
            .iter()
            .all(|c| c.event.kv.as_ref().unwrap().mod_revision == rev + 1));
        assert_eq!(keys(&get(&ks, "a", "\0")), ["c"]);
        assert_eq!(leases.revoke(5).map(drop), Err(Error::LeaseNotFound));
        // Key sets rebuild from the keyspace.
        leases.grant(7, 10).unwrap();
        put_leased(&mut ks, &mut leases, "d", 7).unwrap();
        let mut rebuilt = Leases::new();
        rebuilt.grant(7, 10).unwrap();
        rebuilt.attach_from(&ks);
        assert_eq!(rebuilt.get(7), leases.get(7));
    }

    #[test]
    fn deadlines_give_due_leases_earliest_first() {
        let mut d = Deadlines::new();
        d.set(1, 100);
        d.set(2, 50);
        d.set(3, 300);
        d.set(1, 200); // a keep-alive moves it
        assert_eq!(d.next(), Some(50));
        assert_eq!(d.take_due(250, 10), [2, 1]);
        assert_eq!(d.take_due(250, 10), Vec::<i64>::new());
        assert_eq!(d.get(3), Some(300));
        d.remove(3);
        assert_eq!(d.next(), None);
    }
}
