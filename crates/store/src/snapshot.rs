//! [`StoreSnapshot`]: the replicated state at one log index, and its encoding.
//!
//! Taking a snapshot ([`crate::Store::snapshot`]) clones the roots of the persistent structures
//! (the tree and the TTL index are copy-on-write maps, history events are shared): a few
//! microseconds however big the store is, so the raft thread can take one between two batches
//! and hand it to another thread, which encodes it ([`StoreSnapshot::write_to`]) while writes
//! go on. Decoding ([`StoreSnapshot::read_from`]) reads a stream, building the tree as node
//! records arrive, so restoring never holds the encoded bytes and the decoded state at once.
//!
//! # Encoding (format 3; see also `docs/formats.md`)
//!
//! ```text
//! magic "ETCDSM03" | section* | end tag 0
//! section = tag: u8 | frame* | empty frame
//! frame   = len: u32 LE | crc: u32 LE | payload (len bytes; CRC-32 IEEE of the payload)
//! empty frame = len 0 | crc 0
//! ```
//!
//! A payload holds whole records (a record never spans two frames); frames are cut at about
//! 64 KiB. Sections, in this order (a decoder refuses a tag it does not know, or a section out
//! of place, rather than restore part of a state):
//! 1. meta: varints `index`, `applied`, `history_cleared_through`;
//! 2. v2 tree: one record per node in pre-order (parents before children): key, flags
//!    (bit 0 directory, bit 1 has an expiry), value (files), created and modified index
//!    (varints), expiry (i64 LE Unix nanoseconds, when flagged); strings are a varint length
//!    and UTF-8 bytes;
//! 3. v2 history: one record per event, oldest first, each the event as length-prefixed JSON
//!    (at most `-m` events);
//! 4. members: one length-prefixed JSON record `{"members":[[id,member]…],"removed":[id…]}`;
//! 5. auth: the v2 users and roles as one length-prefixed JSON record;
//! 6. stats: the counters as one length-prefixed JSON record;
//! 7. v3 keyspace (optional: snapshots written before v3 end after section 6): the records of
//!    `etcd_mvcc::Keyspace::each_record`, a meta record then one record per key with all its
//!    versions;
//! 8. v3 leases (optional like 7): one record per lease, `etcd_mvcc::Leases::each_record`
//!    (id and TTL; the keys attached are rebuilt from the keyspace);
//! 9. v3 alarms (optional: snapshots written before alarms end after section 8): one record
//!    per active alarm, varints member id and `etcdserverpb.AlarmType`;
//! 10. v3 auth (optional: snapshots written before v3 auth end after section 9): one record,
//!     the protobuf `etcdrs.AuthState` (a varint length, then the message).
//!
//! Snapshots of formats 1 and 2 (one JSON document, told apart by its first byte `{`) still
//! decode.
//!
//! Not here: files, fsync, raft metadata (the server's `snap.rs` wraps these bytes).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::event::Event;
use crate::member::Member;
use crate::stats::Stats;
use crate::tree::{Node, Tree};
use crate::{path, Index, UnixNanos};

/// The first bytes of a format 3 snapshot.
pub const MAGIC: &[u8; 8] = b"ETCDSM03";

/// Frames are cut once their payload reaches this size.
const FRAME_BYTES: usize = 64 << 10;
/// Largest frame payload a decoder accepts (one record may exceed [`FRAME_BYTES`]: a value can
/// be as big as the node allows, and history events carry two).
const MAX_FRAME_BYTES: usize = 256 << 20;

const TAG_END: u8 = 0;
const TAG_META: u8 = 1;
const TAG_V2_TREE: u8 = 2;
const TAG_V2_HISTORY: u8 = 3;
const TAG_MEMBERS: u8 = 4;
const TAG_AUTH: u8 = 5;
const TAG_STATS: u8 = 6;
const TAG_V3_KEYSPACE: u8 = 7;
const TAG_V3_LEASES: u8 = 8;
const TAG_V3_ALARMS: u8 = 9;
const TAG_V3_AUTH: u8 = 10;

const FLAG_DIR: u8 = 1;
const FLAG_EXPIRES: u8 = 2;

/// Why snapshot bytes did not decode.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed.
    #[error("reading the snapshot: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a snapshot this version understands, or are damaged.
    #[error("snapshot corrupt: {0}")]
    Corrupt(String),
    /// A JSON part (a format 1 or 2 snapshot, or a JSON record) does not parse.
    #[error("snapshot JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn corrupt<T>(what: impl Into<String>) -> Result<T, SnapshotError> {
    Err(SnapshotError::Corrupt(what.into()))
}

/// The whole replicated state at one index (not the watchers, which are local). Cheap to take
/// and to hold: it shares its structure with the store it was taken from.
#[derive(Debug)]
pub struct StoreSnapshot {
    pub(crate) tree: Tree,
    /// The TTL index, derived from the tree (kept so that restoring need not walk the tree).
    pub(crate) ttl: imbl::OrdSet<(UnixNanos, String)>,
    pub(crate) history: Vec<Arc<Event>>,
    pub(crate) history_cleared_through: Index,
    pub(crate) members: BTreeMap<u64, Member>,
    pub(crate) removed: BTreeSet<u64>,
    pub(crate) auth: Auth,
    pub(crate) index: Index,
    pub(crate) applied: Index,
    /// Counters.
    pub stats: Stats,
    pub(crate) v3: etcd_mvcc::Keyspace,
    pub(crate) leases: etcd_mvcc::Leases,
    pub(crate) alarms: BTreeSet<(u64, i32)>,
    pub(crate) auth3: crate::v3auth::AuthV3,
    pub(crate) cluster_id: u64,
}

#[derive(Serialize, Deserialize)]
struct Membership {
    members: Vec<(u64, Member)>,
    removed: Vec<u64>,
    /// Absent in snapshots written before v3: see [`legacy_cluster_id`].
    #[serde(default)]
    cluster_id: u64,
}

/// The cluster id for a snapshot written before the id was recorded: derived from the
/// smallest member id ever registered, which every member restoring the same snapshot agrees
/// on (a member that applied the first registration itself may hold another id: such mixed
/// clusters predate v3 and keep a stable, if different, id per member).
fn legacy_cluster_id(members: &BTreeMap<u64, Member>, removed: &BTreeSet<u64>) -> u64 {
    let first = members.keys().chain(removed).min().copied().unwrap_or(0);
    crate::member::cluster_id_of(first)
}

impl StoreSnapshot {
    /// Index of the last entry applied.
    pub fn applied(&self) -> Index {
        self.applied
    }

    /// Encodes into a vector (tests and small states; the server streams with
    /// [`StoreSnapshot::write_to`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out)
            .expect("writing into a vector cannot fail");
        out
    }

    /// Writes the encoding (see the module docs) to `w`.
    pub fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(MAGIC)?;
        let mut s = SectionWriter {
            w,
            buf: Vec::with_capacity(FRAME_BYTES + 4096),
        };
        s.section(TAG_META, |s| {
            s.record(|b| {
                put_varint(b, self.index);
                put_varint(b, self.applied);
                put_varint(b, self.history_cleared_through);
            })
        })?;
        s.section(TAG_V2_TREE, |s| {
            let mut result = Ok(());
            self.tree.walk(|key, node| {
                if result.is_ok() {
                    result = s.record(|b| put_node(b, key, node));
                }
            });
            result
        })?;
        s.section(TAG_V2_HISTORY, |s| {
            for e in &self.history {
                s.json_record(&**e)?;
            }
            Ok(())
        })?;
        s.section(TAG_MEMBERS, |s| {
            s.json_record(&Membership {
                members: self.members.iter().map(|(k, v)| (*k, v.clone())).collect(),
                removed: self.removed.iter().copied().collect(),
                cluster_id: self.cluster_id,
            })
        })?;
        s.section(TAG_AUTH, |s| s.json_record(&self.auth))?;
        s.section(TAG_STATS, |s| s.json_record(&self.stats))?;
        s.section(TAG_V3_KEYSPACE, |s| {
            self.v3.each_record(|record| s.record(|b| record(b)))
        })?;
        s.section(TAG_V3_LEASES, |s| {
            self.leases.each_record(|record| s.record(|b| record(b)))
        })?;
        s.section(TAG_V3_ALARMS, |s| {
            for &(member, alarm) in &self.alarms {
                s.record(|b| {
                    put_varint(b, member);
                    put_varint(b, alarm as u64);
                })?;
            }
            Ok(())
        })?;
        s.section(TAG_V3_AUTH, |s| {
            let state = prost::Message::encode_to_vec(&self.auth3.to_state());
            s.record(|b| {
                put_varint(b, state.len() as u64);
                b.extend_from_slice(&state);
            })
        })?;
        s.w.write_all(&[TAG_END])
    }

    /// Decodes a snapshot of any format this version knows, keeping v3 values in memory.
    pub fn decode(bytes: &[u8]) -> Result<StoreSnapshot, SnapshotError> {
        StoreSnapshot::decode_with(bytes, &etcd_mvcc::Values::memory())
    }

    /// Decodes a snapshot, keeping v3 values where `values` says.
    pub fn decode_with(
        bytes: &[u8],
        values: &etcd_mvcc::Values,
    ) -> Result<StoreSnapshot, SnapshotError> {
        StoreSnapshot::read_from_with(&mut &bytes[..], values)
    }

    /// Decodes a snapshot from a stream, keeping v3 values in memory.
    pub fn read_from(r: &mut dyn Read) -> Result<StoreSnapshot, SnapshotError> {
        StoreSnapshot::read_from_with(r, &etcd_mvcc::Values::memory())
    }

    /// Decodes a snapshot of any format this version knows from a stream, building the state
    /// as it reads, and keeping v3 values where `values` says (as they are read: a snapshot's
    /// values are never all in memory at once). Format 3 must end with its end tag: a
    /// truncated stream is an error.
    pub fn read_from_with(
        r: &mut dyn Read,
        values: &etcd_mvcc::Values,
    ) -> Result<StoreSnapshot, SnapshotError> {
        let mut r = BufReader::with_capacity(FRAME_BYTES, r);
        if r.fill_buf()?.first() == Some(&b'{') {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)?;
            return Ok(serde_json::from_slice::<Legacy>(&bytes)?.into_snapshot());
        }
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return corrupt("not a snapshot of a format this version knows");
        }
        let mut snap = StoreSnapshot {
            tree: Tree::default(),
            ttl: imbl::OrdSet::new(),
            history: Vec::new(),
            history_cleared_through: 0,
            members: BTreeMap::new(),
            removed: BTreeSet::new(),
            auth: Auth::default(),
            index: 0,
            applied: 0,
            stats: Stats::default(),
            v3: etcd_mvcc::Keyspace::with_values(values.clone()),
            leases: etcd_mvcc::Leases::new(),
            alarms: BTreeSet::new(),
            auth3: Default::default(),
            cluster_id: 0,
        };
        let order = [
            TAG_META,
            TAG_V2_TREE,
            TAG_V2_HISTORY,
            TAG_MEMBERS,
            TAG_AUTH,
            TAG_STATS,
        ];
        for expected in order {
            let tag = read_u8(&mut r)?;
            if tag != expected {
                return corrupt(format!("section {tag} where section {expected} belongs"));
            }
            let mut s = SectionReader::new(&mut r);
            match tag {
                TAG_META => {
                    s.record(|b| {
                        snap.index = b.varint()?;
                        snap.applied = b.varint()?;
                        snap.history_cleared_through = b.varint()?;
                        Ok(())
                    })?;
                }
                TAG_V2_TREE => while s.record(|b| read_node(b, &mut snap))?.is_some() {},
                TAG_V2_HISTORY => {
                    while let Some(e) = s.json_record::<Event>()? {
                        snap.history.push(Arc::new(e));
                    }
                }
                TAG_MEMBERS => {
                    if let Some(m) = s.json_record::<Membership>()? {
                        snap.members = m.members.into_iter().collect();
                        snap.removed = m.removed.into_iter().collect();
                        snap.cluster_id = match m.cluster_id {
                            0 => legacy_cluster_id(&snap.members, &snap.removed),
                            id => id,
                        };
                    }
                }
                TAG_AUTH => {
                    if let Some(a) = s.json_record()? {
                        snap.auth = a;
                    }
                }
                TAG_STATS => {
                    if let Some(st) = s.json_record()? {
                        snap.stats = st;
                    }
                }
                _ => unreachable!("tags come from `order`"),
            }
            s.finish()?;
        }
        let mut tag = read_u8(&mut r)?;
        if tag == TAG_V3_KEYSPACE {
            read_records(&mut r, |data| snap.v3.read_record(data))?;
            tag = read_u8(&mut r)?;
        }
        if tag == TAG_V3_LEASES {
            read_records(&mut r, |data| snap.leases.read_record(data))?;
            snap.leases.attach_from(&snap.v3);
            tag = read_u8(&mut r)?;
        }
        if tag == TAG_V3_ALARMS {
            let mut s = SectionReader::new(&mut r);
            while let Some(alarm) = s.record(|b| {
                let member = b.varint()?;
                let alarm = b.varint()?;
                Ok((member, i32::try_from(alarm).unwrap_or(i32::MAX)))
            })? {
                snap.alarms.insert(alarm);
            }
            s.finish()?;
            tag = read_u8(&mut r)?;
        }
        if tag == TAG_V3_AUTH {
            let mut s = SectionReader::new(&mut r);
            while let Some(state) = s.record(|b| {
                let len = b.varint()?;
                let bytes = b.bytes(usize::try_from(len).unwrap_or(usize::MAX))?;
                prost::Message::decode(bytes).or_else(|e| corrupt(format!("v3 auth: {e}")))
            })? {
                snap.auth3 = crate::v3auth::AuthV3::from_state(state);
            }
            s.finish()?;
            tag = read_u8(&mut r)?;
        }
        match tag {
            TAG_END => Ok(snap),
            tag => corrupt(format!("unknown section {tag}")),
        }
    }
}

/// Reads a section of records that `decode` parses from the start of the bytes it is given
/// (returning how many it took), as the v3 crates encode them.
fn read_records(
    r: &mut dyn Read,
    mut decode: impl FnMut(&[u8]) -> Result<usize, etcd_mvcc::DecodeError>,
) -> Result<(), SnapshotError> {
    let mut s = SectionReader::new(r);
    while s
        .record(|c| {
            let n = decode(c.rest()).or_else(|e| corrupt(e.to_string()))?;
            c.bytes(n).map(drop)
        })?
        .is_some()
    {}
    s.finish()
}

fn read_u8(r: &mut dyn Read) -> Result<u8, SnapshotError> {
    let mut b = [0u8; 1];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(b[0]),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => corrupt("truncated"),
        Err(e) => Err(e.into()),
    }
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_varint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

fn put_node(b: &mut Vec<u8>, key: &str, node: &Node) {
    put_str(b, key);
    let flags = if node.is_dir() { FLAG_DIR } else { 0 }
        | if node.expire_at.is_some() {
            FLAG_EXPIRES
        } else {
            0
        };
    b.push(flags);
    if let Some(v) = node.value() {
        put_str(b, v);
    }
    put_varint(b, node.created);
    put_varint(b, node.modified);
    if let Some(at) = node.expire_at {
        b.extend_from_slice(&at.to_le_bytes());
    }
}

fn read_node(b: &mut Cursor<'_>, snap: &mut StoreSnapshot) -> Result<(), SnapshotError> {
    let key = b.string()?;
    let flags = b.u8()?;
    let value = if flags & FLAG_DIR == 0 {
        Some(b.string()?)
    } else {
        None
    };
    let created = b.varint()?;
    let modified = b.varint()?;
    let expire_at = if flags & FLAG_EXPIRES != 0 {
        Some(b.i64()?)
    } else {
        None
    };
    if key == "/" || path::clean(&key) != key || snap.tree.check_parents(&key).is_err() {
        return corrupt(format!("node {key:?} cannot be in a tree"));
    }
    let mut node = match value {
        Some(v) => Node::file(v, created, expire_at),
        None => Node::dir(created, expire_at),
    };
    node.modified = modified;
    if let Some(at) = expire_at {
        snap.ttl.insert((at, key.clone()));
    }
    snap.tree.put(&key, node, created);
    Ok(())
}

/// Writes sections of checksummed frames.
struct SectionWriter<'a> {
    w: &'a mut dyn Write,
    buf: Vec<u8>,
}

impl SectionWriter<'_> {
    fn section(
        &mut self,
        tag: u8,
        body: impl FnOnce(&mut Self) -> io::Result<()>,
    ) -> io::Result<()> {
        self.w.write_all(&[tag])?;
        body(self)?;
        self.flush_frame()?;
        self.w.write_all(&[0u8; 8])
    }

    fn record(&mut self, put: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        put(&mut self.buf);
        if self.buf.len() >= FRAME_BYTES {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn json_record<T: Serialize + ?Sized>(&mut self, value: &T) -> io::Result<()> {
        let json = serde_json::to_vec(value).map_err(io::Error::other)?;
        self.record(|b| {
            put_varint(b, json.len() as u64);
            b.extend_from_slice(&json);
        })
    }

    fn flush_frame(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(self.buf.len()).map_err(io::Error::other)?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w
            .write_all(&crc32fast::hash(&self.buf).to_le_bytes())?;
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

/// Reads the records of one section, frame by frame, checking each frame's CRC.
struct SectionReader<'a> {
    r: &'a mut dyn Read,
    frame: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<'a> SectionReader<'a> {
    fn new(r: &'a mut dyn Read) -> SectionReader<'a> {
        SectionReader {
            r,
            frame: Vec::new(),
            pos: 0,
            ended: false,
        }
    }

    /// Makes the next record readable; false at the end of the section.
    fn fill(&mut self) -> Result<bool, SnapshotError> {
        while !self.ended && self.pos == self.frame.len() {
            let mut header = [0u8; 8];
            self.r.read_exact(&mut header).map_err(eof_is_corrupt)?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            if len == 0 {
                self.ended = true;
                break;
            }
            if len > MAX_FRAME_BYTES {
                return corrupt(format!("a frame of {len} bytes"));
            }
            self.frame.resize(len, 0);
            self.r.read_exact(&mut self.frame).map_err(eof_is_corrupt)?;
            if crc32fast::hash(&self.frame) != crc {
                return corrupt("frame checksum mismatch");
            }
            self.pos = 0;
        }
        Ok(!self.ended)
    }

    /// Parses the next record, or `None` at the end of the section.
    fn record<T>(
        &mut self,
        parse: impl FnOnce(&mut Cursor<'_>) -> Result<T, SnapshotError>,
    ) -> Result<Option<T>, SnapshotError> {
        if !self.fill()? {
            return Ok(None);
        }
        let mut c = Cursor {
            data: &self.frame[self.pos..],
            pos: 0,
        };
        let value = parse(&mut c)?;
        self.pos += c.pos;
        Ok(Some(value))
    }

    fn json_record<T: serde::de::DeserializeOwned>(&mut self) -> Result<Option<T>, SnapshotError> {
        self.record(|c| {
            let len = c.varint()? as usize;
            Ok(serde_json::from_slice(c.bytes(len)?)?)
        })
    }

    /// Checks that the section holds nothing more.
    fn finish(mut self) -> Result<(), SnapshotError> {
        if self.fill()? {
            return corrupt("more records than the section holds");
        }
        Ok(())
    }
}

fn eof_is_corrupt(e: io::Error) -> SnapshotError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SnapshotError::Corrupt("truncated".into())
    } else {
        e.into()
    }
}

/// A read position in one frame's payload.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len());
        match end {
            Some(end) => {
                let out = &self.data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => corrupt("a record runs past its frame"),
        }
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.bytes(1)?[0])
    }

    /// The unread rest of the frame.
    fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    fn varint(&mut self) -> Result<u64, SnapshotError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        corrupt("a varint longer than 64 bits")
    }

    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, SnapshotError> {
        let len = self.varint()? as usize;
        match std::str::from_utf8(self.bytes(len)?) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => corrupt("a string that is not UTF-8"),
        }
    }
}

/// One node of a format 2 snapshot.
#[derive(Deserialize)]
struct LegacyNode {
    key: String,
    value: Option<String>,
    created: Index,
    modified: Index,
    expire_at: Option<UnixNanos>,
}

/// A snapshot of format 1 or 2: one JSON document. Format 2 lists every node, parents first;
/// format 1 had `dirs` and `files` and no node indexes.
#[derive(Deserialize)]
struct Legacy {
    index: Index,
    applied: Index,
    #[serde(default)]
    nodes: Vec<LegacyNode>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    files: Vec<(String, String, Option<UnixNanos>)>,
    history: Vec<Event>,
    history_cleared_through: Index,
    members: Vec<(u64, Member)>,
    #[serde(default)]
    removed: Vec<u64>,
    stats: Stats,
    #[serde(default)]
    auth: Auth,
}

impl Legacy {
    fn into_snapshot(self) -> StoreSnapshot {
        let mut tree = Tree::default();
        let mut ttl = imbl::OrdSet::new();
        // Format 1: nodes get the snapshot's index.
        let index = self.index;
        let old_dirs = self.dirs.into_iter().map(|d| (d, None, None));
        let old_files = self.files.into_iter().map(|(k, v, e)| (k, Some(v), e));
        let old = old_dirs
            .chain(old_files)
            .map(|(key, value, expire_at)| LegacyNode {
                key,
                value,
                created: index,
                modified: index,
                expire_at,
            });
        for n in self.nodes.into_iter().chain(old) {
            // A snapshot we wrote lists parents first and has no file on a node's path.
            if n.key == "/" || tree.check_parents(&n.key).is_err() {
                continue;
            }
            let mut node = match n.value {
                Some(v) => Node::file(v, n.created, n.expire_at),
                None => Node::dir(n.created, n.expire_at),
            };
            node.modified = n.modified;
            if let Some(at) = n.expire_at {
                ttl.insert((at, n.key.clone()));
            }
            match tree.get_mut(&n.key) {
                // A format 1 directory created implicitly by a file listed before it.
                Some(existing) if existing.is_dir() && node.is_dir() => {}
                _ => {
                    tree.put(&n.key, node, n.created);
                }
            }
        }
        let members = self.members.into_iter().collect();
        let removed = self.removed.into_iter().collect();
        StoreSnapshot {
            tree,
            ttl,
            history: self.history.into_iter().map(Arc::new).collect(),
            history_cleared_through: self.history_cleared_through,
            cluster_id: legacy_cluster_id(&members, &removed),
            members,
            removed,
            auth: self.auth,
            index: self.index,
            applied: self.applied,
            v3: etcd_mvcc::Keyspace::new(),
            leases: etcd_mvcc::Leases::new(),
            alarms: BTreeSet::new(),
            auth3: Default::default(),
            stats: self.stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoreSnapshot {
        let mut tree = Tree::default();
        tree.put("/a/b", Node::file("x".repeat(100_000), 3, Some(-5)), 3);
        tree.put("/d", Node::dir(4, None), 4);
        for i in 0..3000 {
            tree.put(
                &format!("/many/k{i}"),
                Node::file(format!("v{i}"), 5, None),
                5,
            );
        }
        let mut ttl = imbl::OrdSet::new();
        ttl.insert((-5, "/a/b".to_string()));
        StoreSnapshot {
            tree,
            ttl,
            history: Vec::new(),
            history_cleared_through: 2,
            members: BTreeMap::new(),
            removed: [9].into_iter().collect(),
            auth: Auth::default(),
            index: 5,
            applied: 6,
            stats: Stats::default(),
            v3: etcd_mvcc::Keyspace::new(),
            leases: etcd_mvcc::Leases::new(),
            alarms: [(3, 1), (9, 2)].into_iter().collect(),
            auth3: Default::default(),
            cluster_id: 77,
        }
    }

    /// The encoded length of the v3 auth section (its tag, one frame, the empty frame).
    fn auth_section(s: &StoreSnapshot) -> usize {
        let state = prost::Message::encoded_len(&s.auth3.to_state());
        1 + 8 + (1 + state) + 8
    }

    fn with_v3(mut s: StoreSnapshot) -> StoreSnapshot {
        s.leases.grant(7, 60).unwrap();
        s.leases.grant(8, 5).unwrap();
        for i in 0..5000 {
            let put = etcd_mvcc::pb::PutRequest {
                key: format!("/registry/k{}", i % 3000).into_bytes().into(),
                value: vec![i as u8; 40].into(),
                lease: if i % 1000 == 0 { 7 } else { 0 },
                ..Default::default()
            };
            let (result, changes) = s.v3.apply(&etcd_mvcc::Write::Put(put), &|_| true);
            result.unwrap();
            s.leases.track(&changes);
        }
        s
    }

    #[test]
    fn format_3_round_trips_across_many_frames() {
        let s = with_v3(sample());
        let bytes = s.encode();
        assert!(bytes.starts_with(MAGIC));
        let r = StoreSnapshot::decode(&bytes).unwrap();
        assert_eq!(r.encode(), bytes);
        assert_eq!((r.index, r.applied, r.history_cleared_through), (5, 6, 2));
        assert_eq!(r.ttl, s.ttl);
        assert_eq!(r.removed, s.removed);
        assert_eq!(
            r.tree.get("/a/b").and_then(|n| n.value().map(str::len)),
            Some(100_000)
        );
        assert_eq!(r.cluster_id, 77);
        assert_eq!(r.leases.len(), 2);
        // Keys 0, 1000 and 2000 were last written with the lease; the key sets are rebuilt
        // from the keyspace.
        assert_eq!(r.leases.get(7).unwrap().keys, s.leases.get(7).unwrap().keys);
        assert_eq!(r.leases.get(7).unwrap().keys.len(), 3);
        assert_eq!(r.leases.get(8).unwrap().ttl, 5);
        assert_eq!(r.v3.revision(), 5001);
        assert_eq!(r.v3.len(), 3000);
        assert_eq!(r.v3.hash_kv(0), s.v3.hash_kv(0));
        assert_eq!(r.alarms, s.alarms);
    }

    #[test]
    fn format_3_without_the_v3_section_still_decodes() {
        // Written before v3: section 6 is followed by the end tag. An empty keyspace's section
        // is its tag, one frame (header and the 17-byte meta record) and the empty frame.
        let mut s = sample();
        s.alarms.clear();
        let bytes = s.encode();
        let v3_section = 1 + 8 + 17 + 8;
        let leases_section = 1 + 8;
        let alarms_section = 1 + 8;
        let mut old = bytes
            [..bytes.len() - 1 - v3_section - leases_section - alarms_section - auth_section(&s)]
            .to_vec();
        assert_eq!(old[old.len() - 8..], [0u8; 8]);
        old.push(TAG_END);
        let r = StoreSnapshot::decode(&old).unwrap();
        assert_eq!((r.v3.revision(), r.v3.len()), (1, 0));
        assert_eq!(r.encode(), bytes);
    }

    #[test]
    fn format_3_without_the_alarms_section_decodes_with_no_alarm() {
        // Written before alarms: the leases section is followed by the end tag. Two alarm
        // records are a frame of 8 + 2 * 2 bytes, then the empty frame.
        let s = sample();
        let bytes = s.encode();
        let alarms_section = 1 + (8 + 4) + 8;
        let mut old = bytes[..bytes.len() - 1 - alarms_section - auth_section(&s)].to_vec();
        assert_eq!(old[old.len() - 8..], [0u8; 8]);
        old.push(TAG_END);
        let r = StoreSnapshot::decode(&old).unwrap();
        assert!(r.alarms.is_empty());
        assert_eq!(r.members, s.members);
    }

    #[test]
    fn v3_auth_round_trips_and_snapshots_without_it_decode_with_auth_off() {
        let mut s = sample();
        let mut a = crate::v3auth::AuthV3::default();
        a.add_user("root", "$2b$04$hash", false).unwrap();
        a.grant_role("root", "root").unwrap();
        a.enable().unwrap();
        s.auth3 = a;
        let bytes = s.encode();
        let r = StoreSnapshot::decode(&bytes).unwrap();
        assert_eq!(r.auth3, s.auth3);
        assert!(r.auth3.enabled());
        // Written before v3 auth: the alarms section is followed by the end tag.
        let mut old = bytes[..bytes.len() - 1 - auth_section(&s)].to_vec();
        assert_eq!(old[old.len() - 8..], [0u8; 8]);
        old.push(TAG_END);
        let r = StoreSnapshot::decode(&old).unwrap();
        assert_eq!(r.auth3, crate::v3auth::AuthV3::default());
        assert_eq!(r.alarms, s.alarms);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let bytes = with_v3(sample()).encode();
        for cut in (0..bytes.len()).step_by(bytes.len() / 150) {
            assert!(
                StoreSnapshot::decode(&bytes[..cut]).is_err(),
                "cut at {cut} of {}",
                bytes.len()
            );
        }
        for at in (0..bytes.len()).step_by(bytes.len() / 149) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x20;
            assert!(StoreSnapshot::decode(&bad).is_err(), "flipped byte {at}");
        }
    }

    #[test]
    fn unknown_or_misplaced_sections_are_refused() {
        let mut bytes = sample().encode();
        *bytes.last_mut().unwrap() = 8;
        let err = StoreSnapshot::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("unknown section 8"), "{err}");
        let mut bytes = sample().encode();
        bytes[8] = TAG_V2_TREE;
        assert!(StoreSnapshot::decode(&bytes).is_err());
    }
}
