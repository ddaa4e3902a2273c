//! Txn: validation before the log (etcd 3.4 `v3rpc/key.go` `checkTxnRequest` and
//! `checkIntervals`), compares, and applying the chosen branch as one write (etcd 3.4
//! `applierV3backend.Txn`).

use std::collections::HashSet;

use bytes::Bytes;

use crate::keyspace::{Change, Keyspace, Version};
use crate::pb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::request_op::Request;
use crate::pb::response_op::Response;
use crate::pb::{Compare, RequestOp, ResponseOp, TxnRequest, TxnResponse};
use crate::write::{header, WriteTxn};
use crate::{Error, Result, Revision};

/// Checks a txn before it is proposed: at most `max_ops` compares and ops per level (counting
/// what outer levels used), no empty keys or empty ops, and no key written twice (or written
/// inside a range deleted) in one branch.
pub fn check_txn(t: &TxnRequest, max_ops: usize) -> Result<()> {
    check_ops(t, max_ops)?;
    intervals(&t.success)?;
    intervals(&t.failure)?;
    Ok(())
}

fn check_ops(t: &TxnRequest, max_ops: usize) -> Result<()> {
    let used = t.compare.len().max(t.success.len()).max(t.failure.len());
    if used > max_ops {
        return Err(Error::TooManyOps);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Error::KeyNotProvided);
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Request::RequestRange(r)) if r.key.is_empty() => {
                return Err(Error::KeyNotProvided)
            }
            Some(Request::RequestPut(p)) => {
                if p.key.is_empty() {
                    return Err(Error::KeyNotProvided);
                }
                if p.ignore_value && !p.value.is_empty() {
                    return Err(Error::ValueProvided);
                }
                if p.ignore_lease && p.lease != 0 {
                    return Err(Error::LeaseProvided);
                }
            }
            Some(Request::RequestDeleteRange(d)) if d.key.is_empty() => {
                return Err(Error::KeyNotProvided)
            }
            Some(Request::RequestTxn(t)) => check_ops(t, max_ops - used)?,
            Some(_) => {}
            None => return Err(Error::KeyNotFound),
        }
    }
    Ok(())
}

/// A deleted range as etcd's interval check sees it: `[key, end)`, or the one key.
struct Deleted {
    key: Bytes,
    end: Bytes,
}

impl Deleted {
    fn contains(&self, k: &[u8]) -> bool {
        if self.end.is_empty() {
            k == &self.key[..]
        } else {
            &self.key[..] <= k && k < &self.end[..]
        }
    }
}

/// etcd's `checkIntervals`: the keys put and ranges deleted by one branch, refusing a key put
/// twice or put inside a deleted range. A key put in both branches of a nested txn is fine
/// (only one runs).
fn intervals(ops: &[RequestOp]) -> Result<(HashSet<Bytes>, Vec<Deleted>)> {
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(Deleted {
                key: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let mut puts = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = intervals(&t.success)?;
        let (puts_else, dels_else) = intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || dels.iter().any(|d| d.contains(k)) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            if puts.contains(k) && !puts_then.contains(k) || dels.iter().any(|d| d.contains(k)) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || dels.iter().any(|d| d.contains(&p.key)) {
            return Err(Error::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

/// True when no op in either branch, at any depth, writes: such a txn is served as a read.
pub fn is_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(t)) => is_read_only(t),
            Some(_) => false,
        })
}

impl Keyspace {
    /// Does every compare hold now?
    fn compares_hold(&self, compares: &[Compare]) -> bool {
        compares.iter().all(|c| self.compare_holds(c))
    }

    /// A compare over a key, or over every key of a range (a missing key compares as zero
    /// version, revisions and lease; a value compare on a missing key never holds).
    fn compare_holds(&self, c: &Compare) -> bool {
        let mut any = false;
        let mut all = true;
        self.each_at(&c.key, &c.range_end, Revision::MAX, |_, v| {
            any = true;
            all = compare_version(c, Some(v));
            all
        });
        if !any {
            return c.target() != CompareTarget::Value && compare_version(c, None);
        }
        all
    }

    /// The branches chosen, depth first: the top level's first, then each nested txn's in the
    /// chosen branch (etcd's `compareToPath`). All compares are evaluated before any write.
    fn path(&self, t: &TxnRequest, path: &mut Vec<bool>) {
        let ok = self.compares_hold(&t.compare);
        path.push(ok);
        for op in if ok { &t.success } else { &t.failure } {
            if let Some(Request::RequestTxn(nested)) = &op.request {
                self.path(nested, path);
            }
        }
    }

    /// Checks the ops of the chosen branches: puts (lease, `ignore_*`) and read revisions.
    fn check_path(
        &self,
        t: &TxnRequest,
        path: &mut std::slice::Iter<'_, bool>,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<()> {
        let ok = *path.next().expect("a branch for every txn");
        for op in if ok { &t.success } else { &t.failure } {
            match &op.request {
                Some(Request::RequestPut(p)) => self.check_put(p, lease_exists)?,
                Some(Request::RequestRange(r)) => {
                    self.read_revision(r.revision, self.rev)?;
                }
                Some(Request::RequestTxn(nested)) => self.check_path(nested, path, lease_exists)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Applies a txn (validated by [`check_txn`]). Either every op of the chosen branches
    /// runs, at one new revision if any writes, or (on an apply-time error) nothing does.
    pub(crate) fn txn(
        &mut self,
        t: &TxnRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<(TxnResponse, Vec<Change>)> {
        let mut path = Vec::new();
        self.path(t, &mut path);
        self.check_path(t, &mut path.iter(), lease_exists)?;
        let mut txn = WriteTxn::new(self);
        let mut resp = txn.run(t, &mut path.iter());
        let rev = txn.read_revision();
        let changes = txn.finish();
        resp.header = Some(header(rev));
        Ok((resp, changes))
    }
}

impl WriteTxn<'_> {
    /// Runs the chosen branch of `t`, nested txns included.
    fn run(&mut self, t: &TxnRequest, path: &mut std::slice::Iter<'_, bool>) -> TxnResponse {
        let succeeded = *path.next().expect("a branch for every txn");
        let ops = if succeeded { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => {
                    let current = self.read_revision();
                    // Checked before anything ran; a read cannot fail now.
                    let resp = self.ks.range_as_of(r, current).unwrap_or_default();
                    Some(Response::ResponseRange(resp))
                }
                Some(Request::RequestPut(p)) => Some(Response::ResponsePut(self.put_request(p))),
                Some(Request::RequestDeleteRange(d)) => {
                    Some(Response::ResponseDeleteRange(self.delete_request(d)))
                }
                Some(Request::RequestTxn(nested)) => {
                    // etcd leaves a nested txn's header empty.
                    let mut resp = self.run(nested, path);
                    resp.header = Some(Default::default());
                    Some(Response::ResponseTxn(resp))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        TxnResponse {
            header: None,
            succeeded,
            responses,
        }
    }
}

/// A compare against a key's version (`None`: a missing key, all zeros and no value).
fn compare_version(c: &Compare, v: Option<&Version>) -> bool {
    use std::cmp::Ordering;
    let ord: Ordering = match c.target() {
        CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            let have = v.map(|v| v.value.load()).unwrap_or_default();
            have[..].cmp(want)
        }
        target => {
            let want = match (&c.target_union, target) {
                (Some(TargetUnion::Version(v)), CompareTarget::Version)
                | (Some(TargetUnion::CreateRevision(v)), CompareTarget::Create)
                | (Some(TargetUnion::ModRevision(v)), CompareTarget::Mod)
                | (Some(TargetUnion::Lease(v)), CompareTarget::Lease) => *v,
                _ => 0,
            };
            let have = v.map_or(0, |v| match target {
                CompareTarget::Version => v.version,
                CompareTarget::Create => v.create,
                CompareTarget::Mod => v.main,
                _ => v.lease,
            });
            have.cmp(&want)
        }
    };
    match c.result() {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::NotEqual => ord.is_ne(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
    }
}
