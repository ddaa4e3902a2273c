//! [`Keyspace::hash_kv`]: etcd's HashKV, computed as etcd 3.4 computes it, so that the hash of
//! a keyspace equals the one etcd gives for the same history.
//!
//! etcd hashes its bbolt `key` bucket: a CRC-32C (Castagnoli) of the bucket's name, then of
//! every record at or below the hashed revision in revision order, each as its bbolt key (the
//! revision: 8 bytes of main revision, `_`, 8 bytes of sub-revision, all big-endian, and a `t`
//! after a deletion's) followed by its value (the version as a protobuf `mvccpb.KeyValue`; a
//! deletion's holds only the key). At or below the compacted revision, a record counts only
//! if it is its key's newest put at or below the hashed revision (unless no key has one).
//! Those are the records etcd's compaction leaves, which are the versions the keyspace keeps
//! there: so every member, and etcd, hash the same records.
//!
//! It does not hash anything etcd keeps beside its keyspace (leases, members, auth), as
//! HashKV does not; etcd's `Hash` (of the whole database file) has no equal here.

use etcd_v3proto::prost::Message;

use crate::keyspace::{Keyspace, Version};
use crate::mvccpb::KeyValue;
use crate::{Error, Result, Revision};

impl Keyspace {
    /// etcd's HashKV at `rev` (0: the current revision): see the module docs. Returns the
    /// hash and the revision hashed. A revision at or below the compacted one is
    /// [`Error::Compacted`] (etcd's rule for HashKV, where a range may read at the compacted
    /// revision itself); one above the current revision is [`Error::FutureRevision`].
    pub fn hash_kv(&self, rev: Revision) -> Result<(u32, Revision)> {
        if rev > self.rev {
            return Err(Error::FutureRevision);
        }
        if rev > 0 && rev <= self.compacted {
            return Err(Error::Compacted);
        }
        let rev = if rev <= 0 { self.rev } else { rev };
        let mut h = Crc32c::new();
        h.update(b"key");
        let mut buf = Vec::new();
        for (key, v) in self.etcd_kept(rev) {
            buf.clear();
            etcd_record(key, v, &mut buf);
            h.update(&buf);
        }
        Ok((h.finish(), rev))
    }
}

impl Keyspace {
    /// The versions etcd's `key` bucket holds at or below `rev` (see the module docs), in
    /// revision order.
    pub(crate) fn etcd_kept(&self, rev: Revision) -> Vec<(&[u8], &Version)> {
        // Every version at or below `rev`, with whether it is its key's newest put there.
        let mut records: Vec<(&[u8], &Version, bool)> = Vec::new();
        let mut any_kept = false;
        for (key, versions) in self.keys.iter() {
            let newest = Keyspace::at(versions, rev).map(|v| (v.main, v.sub));
            any_kept |= newest.is_some();
            for v in versions.iter().take_while(|v| v.main <= rev) {
                records.push((key, v, newest == Some((v.main, v.sub))));
            }
        }
        records.sort_unstable_by_key(|(_, v, _)| (v.main, v.sub));
        records
            .into_iter()
            .filter(|(_, v, kept)| !(v.main <= self.compacted && any_kept && !kept))
            .map(|(k, v, _)| (k, v))
            .collect()
    }
}

/// Appends a version's bbolt record to `buf`: its key (the revision, and `t` for a deletion)
/// then its value (the `mvccpb.KeyValue`).
pub(crate) fn etcd_record(key: &[u8], v: &Version, buf: &mut Vec<u8>) {
    etcd_key(v, buf);
    etcd_value(key, v, buf);
}

/// A version's bbolt key: 8 bytes of main revision, `_`, 8 bytes of sub-revision (big-endian),
/// and `t` after a deletion's.
pub(crate) fn etcd_key(v: &Version, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&v.main.to_be_bytes());
    buf.push(b'_');
    buf.extend_from_slice(&v.sub.to_be_bytes());
    if !v.is_put() {
        buf.push(b't');
    }
}

/// A version's bbolt value: the `mvccpb.KeyValue` (a deletion's holds only the key).
pub(crate) fn etcd_value(key: &[u8], v: &Version, buf: &mut Vec<u8>) {
    let kv = if v.is_put() {
        v.kv(key, false)
    } else {
        KeyValue {
            key: bytes::Bytes::copy_from_slice(key),
            ..Default::default()
        }
    };
    kv.encode(buf).expect("a Vec grows");
}

/// CRC-32C (the Castagnoli polynomial, reflected), as Go's `crc32.MakeTable(crc32.Castagnoli)`.
#[derive(Debug, Clone)]
pub struct Crc32c(u32);

/// The table of the byte-at-a-time CRC-32C, built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Default for Crc32c {
    fn default() -> Crc32c {
        Crc32c::new()
    }
}

impl Crc32c {
    /// A CRC of nothing yet.
    pub fn new() -> Crc32c {
        Crc32c(!0)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = CRC32C_TABLE[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    /// The CRC of everything added.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_of_the_check_string() {
        let mut h = Crc32c::new();
        h.update(b"123456789");
        assert_eq!(h.finish(), 0xE306_9283);
    }
}
