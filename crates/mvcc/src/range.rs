//! Range: reading keys, now or at an older revision, with etcd's limit, count, sort, filter,
//! keys-only and count-only rules (etcd 3.4 `applierV3backend.Range` and `rangeKeys`).

use std::cmp::Ordering;
use std::ops::Bound;

use crate::keyspace::Keyspace;
use crate::mvccpb::KeyValue;
use crate::pb::range_request::{SortOrder, SortTarget};
use crate::pb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::{key_range, KeyRange, Result, Revision};

impl Keyspace {
    /// Calls `f` for each key in the request's range that existed at `rev`, in key order,
    /// until `f` returns false.
    pub(crate) fn each_at(
        &self,
        key: &[u8],
        end: &[u8],
        rev: Revision,
        mut f: impl FnMut(&KeyValue) -> bool,
    ) {
        let range: (Bound<&[u8]>, Bound<&[u8]>) = match key_range(key, end) {
            KeyRange::Empty => return,
            KeyRange::One => {
                if let Some(kv) = self.keys.get(key).and_then(|v| Keyspace::at(v, rev)) {
                    f(kv);
                }
                return;
            }
            KeyRange::From => (Bound::Included(key), Bound::Unbounded),
            KeyRange::Until => (Bound::Included(key), Bound::Excluded(end)),
        };
        for (_, versions) in self.keys.range::<_, [u8]>(range) {
            if let Some(kv) = Keyspace::at(versions, rev) {
                if !f(kv) {
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
        let mut kvs = Vec::new();
        self.each_at(&r.key, &r.range_end, rev, |kv| {
            count += 1;
            if !r.count_only && kvs.len() < fetch {
                kvs.push(kv.clone());
            }
            true
        });
        if filtered {
            kvs.retain(|kv| {
                !(r.max_mod_revision != 0 && kv.mod_revision > r.max_mod_revision
                    || r.min_mod_revision != 0 && kv.mod_revision < r.min_mod_revision
                    || r.max_create_revision != 0 && kv.create_revision > r.max_create_revision
                    || r.min_create_revision != 0 && kv.create_revision < r.min_create_revision)
            });
        }
        if sort_order != SortOrder::None {
            // Stable, so equal targets stay in key order.
            let target = r.sort_target();
            kvs.sort_by(|a, b| compare_by(target, a, b));
            if sort_order == SortOrder::Descend {
                kvs.reverse();
            }
        }
        let mut more = false;
        if r.limit > 0 && kvs.len() > r.limit as usize {
            kvs.truncate(r.limit as usize);
            more = true;
        }
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

fn compare_by(target: SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}
