//! The keyspace as snapshot records, and back.
//!
//! The state machine's snapshot (`etcd-store`'s `snapshot.rs`) frames and checksums records;
//! this module only says what one record holds:
//!
//! ```text
//! meta record: 0 | rev: i64 | compacted: i64                      (first, exactly once)
//! key record:  1 | key: varint len, bytes | versions: varint n | version*
//! version:     main: i64 | sub: varint | kind: u8 (0 deleted, 1 put)
//!              put: create: i64 | version: i64 | lease: i64 | value: varint len, bytes
//! ```
//! integers little-endian; keys in increasing order; versions as in the keyspace.

use std::sync::Arc;

use crate::keyspace::{Keyspace, Version};
use crate::value::Value;

const META: u8 = 0;
const KEY: u8 = 1;

/// Why a keyspace record did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v3 keyspace record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

fn bad<T>(what: &str) -> Result<T, DecodeError> {
    Err(DecodeError(what.to_string()))
}

impl Keyspace {
    /// Calls `record` with each record's encoder, meta first then every key in order.
    pub fn each_record<E>(
        &self,
        mut record: impl FnMut(&dyn Fn(&mut Vec<u8>)) -> Result<(), E>,
    ) -> Result<(), E> {
        record(&|b: &mut Vec<u8>| {
            b.push(META);
            b.extend_from_slice(&self.rev.to_le_bytes());
            b.extend_from_slice(&self.compacted.to_le_bytes());
        })?;
        for (key, versions) in self.keys.iter() {
            record(&|b: &mut Vec<u8>| {
                b.push(KEY);
                put_bytes(b, key);
                put_varint(b, versions.len() as u64);
                for v in versions.iter() {
                    b.extend_from_slice(&v.main.to_le_bytes());
                    put_varint(b, v.sub as u64);
                    if v.is_put() {
                        b.push(1);
                        b.extend_from_slice(&v.create.to_le_bytes());
                        b.extend_from_slice(&v.version.to_le_bytes());
                        b.extend_from_slice(&v.lease.to_le_bytes());
                        put_bytes(b, &v.value.load());
                    } else {
                        b.push(0);
                    }
                }
            })?;
        }
        Ok(())
    }

    /// Decodes one record at the start of `data` into the keyspace being rebuilt; returns the
    /// bytes it took. Records must come as [`Keyspace::each_record`] gives them.
    pub fn read_record(&mut self, data: &[u8]) -> Result<usize, DecodeError> {
        let mut c = Cursor { data, pos: 0 };
        match c.u8()? {
            META => {
                self.rev = c.i64()?;
                self.compacted = c.i64()?;
            }
            KEY => {
                let key: Arc<[u8]> = c.bytes()?.into();
                if self.keys.get_max().is_some_and(|(last, _)| *last >= key) {
                    return bad("keys out of order");
                }
                let n = c.varint()? as usize;
                let mut versions: Vec<Version> = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    let main = c.i64()?;
                    let sub = c.varint()? as i64;
                    let version = match c.u8()? {
                        0 => Version {
                            main,
                            sub,
                            create: 0,
                            version: 0,
                            lease: 0,
                            value: Value::Deleted,
                        },
                        1 => Version {
                            main,
                            sub,
                            create: c.i64()?,
                            version: c.i64()?,
                            lease: c.i64()?,
                            value: self.values.keep(c.bytes()?),
                        },
                        _ => return bad("unknown version kind"),
                    };
                    if versions
                        .last()
                        .is_some_and(|p| (p.main, p.sub) >= (main, sub))
                    {
                        return bad("versions out of order");
                    }
                    self.bytes += crate::keyspace::version_size(&key, &version);
                    versions.push(version);
                }
                match versions.last() {
                    None => return bad("a key without versions"),
                    Some(v) if v.main > self.rev => return bad("a version after the revision"),
                    Some(v) if v.is_put() => self.live += 1,
                    Some(_) => {}
                }
                self.keys.insert(key, versions.into());
            }
            _ => return bad("unknown record"),
        }
        Ok(c.pos)
    }
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_bytes(b: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.pos.checked_add(n).filter(|e| *e <= self.data.len()) {
            Some(end) => {
                let out = &self.data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => bad("truncated"),
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bad("varint too long")
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.varint()? as usize;
        self.take(n)
    }
}
