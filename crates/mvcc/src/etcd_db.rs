//! The keyspace as etcd's bbolt `key` bucket, and back: what moves a keyspace between etcd
//! and etcd-rs through a snapshot file (the bucket layout is etcd 3.4's `mvcc/kvstore.go`;
//! the record encoding is shared with HashKV, `hash.rs`).
//!
//! Export gives exactly the records etcd would hold for the same history (the versions its
//! compaction keeps), in revision order. Import rebuilds each key's versions from them; the
//! current revision is the newest record's, or the compacted revision if that is newer (as
//! etcd's restore does).

use bytes::Bytes;
use etcd_v3proto::prost::Message;

use crate::hash::{etcd_key, etcd_value};
use crate::mvccpb::KeyValue;
use crate::snapshot::DecodeError;
use crate::{Keyspace, Revision, Values};

impl Keyspace {
    /// Calls `record` with each record of etcd's `key` bucket for this keyspace (bbolt key,
    /// value), in revision order.
    pub fn each_etcd_record<E>(
        &self,
        mut record: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        for (key, v) in self.etcd_bucket() {
            let mut k = Vec::with_capacity(18);
            etcd_key(v, &mut k);
            let mut value = Vec::new();
            etcd_value(key, v, &mut value);
            record(k, value)?;
        }
        Ok(())
    }

    /// The versions etcd's `key` bucket holds, in revision order: every version after the
    /// compacted revision, and each key's newest version at or below it if that is a put
    /// (what etcd's compaction leaves).
    fn etcd_bucket(&self) -> Vec<(&[u8], &crate::keyspace::Version)> {
        let mut records = Vec::new();
        for (key, versions) in self.keys.iter() {
            let below = versions
                .iter()
                .take_while(|v| v.main <= self.compacted)
                .count();
            if below > 0 && versions[below - 1].is_put() {
                records.push((&key[..], &versions[below - 1]));
            }
            records.extend(versions.iter().skip(below).map(|v| (&key[..], v)));
        }
        records.sort_unstable_by_key(|(_, v)| (v.main, v.sub));
        records
    }

    /// A keyspace from etcd's `key` bucket records (in any order) and its compacted
    /// revision, keeping values where `values` says.
    pub fn from_etcd_records(
        records: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        compacted: Revision,
        values: Values,
    ) -> Result<Keyspace, DecodeError> {
        // (key, main, sub, put: (create, version, lease, value)) per record.
        type Put = Option<(i64, i64, i64, Bytes)>;
        let mut versions: Vec<(Bytes, i64, i64, Put)> = Vec::new();
        for (k, v) in records {
            let (main, sub, deleted) = match k.len() {
                17 | 18 if k[8] == b'_' => (
                    i64::from_be_bytes(k[..8].try_into().expect("8 bytes")),
                    i64::from_be_bytes(k[9..17].try_into().expect("8 bytes")),
                    k.len() == 18,
                ),
                _ => {
                    return Err(DecodeError(format!(
                        "etcd key bucket: a key of {} bytes",
                        k.len()
                    )))
                }
            };
            if deleted && k[17] != b't' {
                return Err(DecodeError(
                    "etcd key bucket: an unknown revision mark".into(),
                ));
            }
            if main < 1 || sub < 0 {
                return Err(DecodeError(format!(
                    "etcd key bucket: revision {main}_{sub}"
                )));
            }
            let kv = KeyValue::decode(&v[..])
                .map_err(|e| DecodeError(format!("etcd key bucket: revision {main}: {e}")))?;
            if kv.key.is_empty() {
                return Err(DecodeError(format!(
                    "etcd key bucket: revision {main}: no key"
                )));
            }
            let put = (!deleted).then_some((kv.create_revision, kv.version, kv.lease, kv.value));
            versions.push((kv.key, main, sub, put));
        }
        versions.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
        let newest = versions.iter().map(|v| v.1).max().unwrap_or(0);
        let rev = newest.max(compacted).max(1);
        let mut ks = Keyspace::with_values(values);
        let mut record = vec![0u8];
        record.extend_from_slice(&rev.to_le_bytes());
        record.extend_from_slice(&compacted.to_le_bytes());
        ks.read_record(&record)?;
        let mut i = 0;
        while i < versions.len() {
            let key = versions[i].0.clone();
            let n = versions[i..].iter().take_while(|v| v.0 == key).count();
            let mut r = vec![1u8];
            put_varint(&mut r, key.len() as u64);
            r.extend_from_slice(&key);
            put_varint(&mut r, n as u64);
            for (_, main, sub, put) in &versions[i..i + n] {
                r.extend_from_slice(&main.to_le_bytes());
                put_varint(&mut r, *sub as u64);
                match put {
                    None => r.push(0),
                    Some((create, version, lease, value)) => {
                        r.push(1);
                        r.extend_from_slice(&create.to_le_bytes());
                        r.extend_from_slice(&version.to_le_bytes());
                        r.extend_from_slice(&lease.to_le_bytes());
                        put_varint(&mut r, value.len() as u64);
                        r.extend_from_slice(value);
                    }
                }
            }
            ks.read_record(&r)?;
            i += n;
        }
        Ok(ks)
    }
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{DeleteRangeRequest, PutRequest};
    use crate::{Values, Write};

    fn put(ks: &mut Keyspace, k: &str, v: &str, lease: i64) {
        let p = PutRequest {
            key: Bytes::copy_from_slice(k.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
            lease,
            ..Default::default()
        };
        ks.apply(&Write::Put(p), &|_| true).0.unwrap();
    }

    #[test]
    fn a_keyspace_crosses_etcds_key_bucket_with_its_history_and_hash() {
        let mut ks = Keyspace::new();
        for i in 0..50 {
            put(
                &mut ks,
                &format!("k{}", i % 7),
                &format!("v{i}"),
                if i % 5 == 0 { 9 } else { 0 },
            );
        }
        let d = DeleteRangeRequest {
            key: Bytes::from_static(b"k3"),
            ..Default::default()
        };
        ks.apply(&Write::DeleteRange(d), &|_| true).0.unwrap();
        let c = crate::pb::CompactionRequest {
            revision: 30,
            physical: true,
        };
        ks.apply(&Write::Compact(c), &|_| true).0.unwrap();
        put(&mut ks, "k3", "again", 0);
        let mut records = Vec::new();
        ks.each_etcd_record(|k, v| {
            records.push((k, v));
            Ok::<(), ()>(())
        })
        .unwrap();
        let back =
            Keyspace::from_etcd_records(records.clone(), ks.compacted(), Values::memory()).unwrap();
        assert_eq!(back.revision(), ks.revision());
        assert_eq!(back.compacted(), 30);
        assert_eq!(back.hash_kv(0), ks.hash_kv(0));
        let everything = crate::pb::RangeRequest {
            key: Bytes::from_static(b"\0"),
            range_end: Bytes::from_static(b"\0"),
            ..Default::default()
        };
        assert_eq!(back.range(&everything), ks.range(&everything));
        // Reads at every revision from the compacted one on answer alike (a key rewritten
        // since keeps its version from before).
        for revision in 30..=ks.revision() {
            let at = crate::pb::RangeRequest {
                revision,
                ..everything.clone()
            };
            assert_eq!(back.range(&at), ks.range(&at), "at {revision}");
        }
        // Damaged records are refused.
        let mut bad = records.clone();
        bad[0].0.truncate(5);
        assert!(Keyspace::from_etcd_records(bad, 0, Values::memory()).is_err());
        let mut bad = records;
        bad[0].1 = vec![0xff, 0xff];
        assert!(Keyspace::from_etcd_records(bad, 0, Values::memory()).is_err());
    }
}
