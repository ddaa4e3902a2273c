//! Range: reading keys, now or at an older revision, with etcd's limit, count, sort, filter,
//! keys-only and count-only rules (etcd 3.4 `applierV3backend.Range` and `rangeKeys`).

use std::cmp::Ordering;
use std::ops::Bound;

use crate::keyspace::{Keyspace, Version};
use crate::mvccpb::KeyValue;
use crate::pb::range_request::{SortOrder, SortTarget};
use crate::pb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::{key_range, KeyRange, Result, Revision};

impl Keyspace {
    /// Calls `f` with each key in the request's range that existed at `rev` and its version
    /// then, in key order, until `f` returns false.
    pub(crate) fn each_at<'a>(
        &'a self,
        key: &[u8],
        end: &[u8],
        rev: Revision,
        mut f: impl FnMut(&'a [u8], &'a Version) -> bool,
    ) {
        let range: (Bound<&[u8]>, Bound<&[u8]>) = match key_range(key, end) {
            KeyRange::Empty => return,
            KeyRange::One => {
                if let Some((key, versions)) = self.keys.get_key_value(key) {
                    if let Some(v) = Keyspace::at(versions, rev) {
                        f(key, v);
                    }
                }
                return;
            }
            KeyRange::From => (Bound::Included(key), Bound::Unbounded),
            KeyRange::Until => (Bound::Included(key), Bound::Excluded(end)),
        };
        for (key, versions) in self.keys.range::<_, [u8]>(range) {
            if let Some(v) = Keyspace::at(versions, rev) {
                if !f(key, v) {
                    return;
                }
            }
        }
    }

    /// Serves a Range (validated: the key is not empty) at the current revision.
    pub fn range(&self, r: &RangeRequest) -> Result<RangeResponse> {
        self.range_as_of(r, self.rev)
    }

    /// Serves a Range as if `current` were the current revision (inside a txn that has
    /// written, reads see its writes at the revision it will make).
    pub(crate) fn range_as_of(&self, r: &RangeRequest, current: Revision) -> Result<RangeResponse> {
        let rev = self.read_revision(r.revision, current)?;
        let sort_order = match (r.sort_order(), r.sort_target()) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            (SortOrder::None, _) => SortOrder::Ascend,
            (order, _) => order,
        };
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        // Without sorting or filters only limit + 1 keys are needed (the extra one sets
        // `more`); the count is of every key in the range either way.
        let fetch = if sort_order != SortOrder::None || filtered || r.limit <= 0 {
            usize::MAX
        } else {
            r.limit as usize + 1
        };
        let mut count = 0i64;
        let mut found: Vec<(&[u8], &Version)> = Vec::new();
        self.each_at(&r.key, &r.range_end, rev, |key, v| {
            count += 1;
            if !r.count_only && found.len() < fetch {
                found.push((key, v));
            }
            true
        });
        if filtered {
            found.retain(|(_, v)| {
                !(r.max_mod_revision != 0 && v.main > r.max_mod_revision
                    || r.min_mod_revision != 0 && v.main < r.min_mod_revision
                    || r.max_create_revision != 0 && v.create > r.max_create_revision
                    || r.min_create_revision != 0 && v.create < r.min_create_revision)
            });
        }
        // Values are read only to sort by them; otherwise only for the keys answered.
        let mut kvs: Vec<KeyValue> = match (sort_order, r.sort_target()) {
            (SortOrder::None, _) => Vec::new(),
            (_, SortTarget::Value) => {
                let mut kvs: Vec<KeyValue> = found.iter().map(|(k, v)| v.kv(k, false)).collect();
                // Stable, so equal values stay in key order.
                kvs.sort_by(|a, b| a.value.cmp(&b.value));
                found.clear();
                kvs
            }
            (_, target) => {
                found.sort_by(|a, b| compare_by(target, a, b));
                Vec::new()
            }
        };
        if sort_order == SortOrder::Descend {
            kvs.reverse();
            found.reverse();
        }
        let answered = found.len() + kvs.len();
        let more = r.limit > 0 && answered > r.limit as usize;
        let keep = if more { r.limit as usize } else { answered };
        kvs.truncate(keep);
        kvs.extend(
            found[..keep.min(found.len())]
                .iter()
                .map(|(k, v)| v.kv(k, r.keys_only)),
        );
        if r.keys_only {
            for kv in &mut kvs {
                kv.value = Default::default();
            }
        }
        Ok(RangeResponse {
            header: Some(ResponseHeader {
                revision: current,
                ..Default::default()
            }),
            kvs,
            more,
            count,
        })
    }
}

fn compare_by(target: SortTarget, a: &(&[u8], &Version), b: &(&[u8], &Version)) -> Ordering {
    match target {
        SortTarget::Key => a.0.cmp(b.0),
        SortTarget::Version => a.1.version.cmp(&b.1.version),
        SortTarget::Create => a.1.create.cmp(&b.1.create),
        SortTarget::Mod => a.1.main.cmp(&b.1.main),
        // Sorted by value before this is reached.
        SortTarget::Value => Ordering::Equal,
    }
}
