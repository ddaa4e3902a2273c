//! bbolt's database file format, as etcd's backend (bbolt 1.3, etcd 3.x) writes it: enough to
//! write a database of buckets that etcd and its tools open, and to read every bucket of one
//! they wrote. Written from the format, which is documented by its structures:
//!
//! ```text
//! file  = page*                     (page N at N × page size; 4096 here)
//! page  = header: id u64 | flags u16 | count u16 | overflow u32   (16 bytes, little-endian)
//!         then `count` elements, then their keys and values; a page may run on into
//!         `overflow` more pages
//! flags = 0x01 branch | 0x02 leaf | 0x04 meta | 0x10 freelist
//! leaf element   = flags u32 (0x01: the value is a bucket) | pos u32 | ksize u32 | vsize u32
//! branch element = pos u32 | ksize u32 | child page id u64
//!                  (pos: from the element to its key; the value follows the key)
//! meta  (pages 0 and 1, after the header) = magic u32 0xED0CDAED | version u32 2 |
//!         page size u32 | flags u32 | root bucket (root page u64, sequence u64) |
//!         freelist page u64 | high-water page id u64 | txid u64 |
//!         checksum u64 (FNV-1a 64 of the 56 bytes before it)
//! bucket value = root page u64 | sequence u64, then, when the root is 0, the bucket's one
//!         leaf page inline
//! ```
//!
//! The meta with the greater txid among the valid ones is the database's state. The root
//! bucket's leaf (or branch) pages hold one element per bucket, in name order.
//!
//! [`write()`] lays a database out page by page: pages 0 and 1 the metas (written last, once
//! the layout is known), 2 an empty freelist, then every bucket's leaf pages (full, a value
//! bigger than a page on overflow pages), the branch pages above them, and the root bucket's
//! pages. [`read`] checks metas, page ids, sizes and page types, and hands out every
//! bucket's records in key order; a damaged file is an [`Error`], never a panic.
//!
//! Not here: transactions, free-page reuse, nested buckets (etcd has none), files (callers
//! pass a writer or the bytes).

use std::io::{self, Seek, SeekFrom, Write};

/// The page size written.
pub const PAGE_SIZE: usize = 4096;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const META: u16 = 0x04;
const FREELIST: u16 = 0x10;
const BUCKET_FLAG: u32 = 0x01;
/// The meta's bytes covered by its checksum.
const META_SUMMED: usize = 56;
/// Deeper than any real tree: a deeper one loops.
const MAX_DEPTH: usize = 64;

/// Why a database file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Neither meta page is valid.
    #[error("not a bbolt database, or both meta pages are damaged ({0})")]
    NoValidMeta(String),
    /// A page id outside the file, or a page that is not what it should be.
    #[error("bbolt: page {page}: {what}")]
    BadPage {
        /// The page.
        page: u64,
        /// What is wrong.
        what: String,
    },
    /// A structure that runs past the end of its page or of the file.
    #[error("bbolt: truncated ({0})")]
    Truncated(String),
}

/// One bucket's records, in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A bucket's records as [`write()`] takes them: (key, value) in key order.
pub type RecordIter<'a> = Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a>;

/// Writes a database holding `buckets` (name, records), each sorted by name and by key and
/// without duplicates (checked: an unsorted input is an `InvalidInput` error).
pub fn write<W: Write + Seek>(
    out: &mut W,
    buckets: &mut dyn Iterator<Item = (Vec<u8>, RecordIter<'_>)>,
) -> io::Result<()> {
    let mut w = Writer {
        out,
        next: 3,
        page: Vec::with_capacity(PAGE_SIZE),
    };
    w.out.seek(SeekFrom::Start(0))?;
    // Metas come last; the freelist (empty) is page 2.
    w.out.write_all(&[0u8; 2 * PAGE_SIZE])?;
    let mut freelist = vec![0u8; PAGE_SIZE];
    header(&mut freelist, 2, FREELIST, 0, 0);
    w.out.write_all(&freelist)?;
    let mut roots: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, records) in buckets {
        if roots.last().is_some_and(|(last, _)| *last >= name) {
            return Err(unsorted("bucket names"));
        }
        let root = w.tree(records)?;
        let mut value = Vec::with_capacity(16);
        value.extend_from_slice(&root.to_le_bytes());
        value.extend_from_slice(&0u64.to_le_bytes());
        roots.push((name, value));
    }
    let root = w.tree_of(roots.into_iter(), BUCKET_FLAG)?;
    let high_water = w.next;
    for (page, txid) in [(0u64, 0u64), (1, 1)] {
        let mut p = vec![0u8; PAGE_SIZE];
        header(&mut p, page, META, 0, 0);
        let m = &mut p[HEADER..];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
        m[16..24].copy_from_slice(&root.to_le_bytes());
        m[32..40].copy_from_slice(&2u64.to_le_bytes());
        m[40..48].copy_from_slice(&high_water.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..META_SUMMED]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        w.out.seek(SeekFrom::Start(page * PAGE_SIZE as u64))?;
        w.out.write_all(&p)?;
    }
    w.out.seek(SeekFrom::Start(high_water * PAGE_SIZE as u64))?;
    Ok(())
}

fn unsorted(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} must be sorted and unique"),
    )
}

fn header(p: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    p[0..8].copy_from_slice(&id.to_le_bytes());
    p[8..10].copy_from_slice(&flags.to_le_bytes());
    p[10..12].copy_from_slice(&count.to_le_bytes());
    p[12..16].copy_from_slice(&overflow.to_le_bytes());
}

struct Writer<'a, W> {
    out: &'a mut W,
    /// The next free page id.
    next: u64,
    page: Vec<u8>,
}

/// A page being filled: its elements' (flags or child, key, value).
struct Pending {
    elements: Vec<(u64, Vec<u8>, Vec<u8>)>,
    bytes: usize,
}

impl<W: Write + Seek> Writer<'_, W> {
    /// Writes a bucket's tree; returns its root page.
    fn tree(
        &mut self,
        records: Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + '_>,
    ) -> io::Result<u64> {
        self.tree_of(records, 0)
    }

    /// Writes the leaf pages of `records` (each element flagged `flags`) and the branch pages
    /// above them; returns the root page.
    fn tree_of(
        &mut self,
        records: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
        flags: u32,
    ) -> io::Result<u64> {
        // (first key, page id) of each page of the level just written.
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut pending = Pending {
            elements: Vec::new(),
            bytes: HEADER,
        };
        let mut last: Option<Vec<u8>> = None;
        for (key, value) in records {
            if last.as_ref().is_some_and(|l| *l >= key) {
                return Err(unsorted("keys"));
            }
            last = Some(key.clone());
            let size = ELEMENT + key.len() + value.len();
            if !pending.elements.is_empty() && pending.bytes + size > PAGE_SIZE {
                let first = pending.elements[0].1.clone();
                let id = self.flush(&mut pending, LEAF)?;
                level.push((first, id));
            }
            pending.bytes += size;
            pending.elements.push((u64::from(flags), key, value));
        }
        if !pending.elements.is_empty() || level.is_empty() {
            let first = pending
                .elements
                .first()
                .map(|e| e.1.clone())
                .unwrap_or_default();
            let id = self.flush(&mut pending, LEAF)?;
            level.push((first, id));
        }
        while level.len() > 1 {
            let mut above = Vec::new();
            for (key, child) in std::mem::take(&mut level) {
                let size = ELEMENT + key.len();
                if !pending.elements.is_empty() && pending.bytes + size > PAGE_SIZE {
                    let first = pending.elements[0].1.clone();
                    let id = self.flush(&mut pending, BRANCH)?;
                    above.push((first, id));
                }
                pending.bytes += size;
                pending.elements.push((child, key, Vec::new()));
            }
            let first = pending.elements[0].1.clone();
            let id = self.flush(&mut pending, BRANCH)?;
            above.push((first, id));
            level = above;
        }
        Ok(level[0].1)
    }

    /// Writes `pending` as the next page (and its overflow pages); returns its id.
    fn flush(&mut self, pending: &mut Pending, kind: u16) -> io::Result<u64> {
        let id = self.next;
        let pages = pending.bytes.div_ceil(PAGE_SIZE).max(1);
        let p = &mut self.page;
        p.clear();
        p.resize(pages * PAGE_SIZE, 0);
        let count = pending.elements.len();
        header(p, id, kind, count as u16, (pages - 1) as u32);
        let mut data = HEADER + count * ELEMENT;
        for (i, (extra, key, value)) in pending.elements.iter().enumerate() {
            let at = HEADER + i * ELEMENT;
            let pos = (data - at) as u32;
            let e = &mut p[at..at + ELEMENT];
            if kind == LEAF {
                e[0..4].copy_from_slice(&(*extra as u32).to_le_bytes());
                e[4..8].copy_from_slice(&pos.to_le_bytes());
                e[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
            } else {
                e[0..4].copy_from_slice(&pos.to_le_bytes());
                e[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[8..16].copy_from_slice(&extra.to_le_bytes());
            }
            p[data..data + key.len()].copy_from_slice(key);
            data += key.len();
            p[data..data + value.len()].copy_from_slice(value);
            data += value.len();
        }
        self.out.seek(SeekFrom::Start(id * PAGE_SIZE as u64))?;
        self.out.write_all(p)?;
        self.next += pages as u64;
        pending.elements.clear();
        pending.bytes = HEADER;
        Ok(id)
    }
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A database's meta: the root bucket's page, the high-water page id, the txid.
#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: usize,
    root: u64,
    high_water: u64,
    txid: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn meta_at(db: &[u8], offset: usize) -> Result<Meta, String> {
    let p = db
        .get(offset..offset + HEADER + 64)
        .ok_or("the file is too short for a meta page")?;
    if u16_at(p, 8) & META == 0 {
        return Err("not a meta page".into());
    }
    let m = &p[HEADER..];
    if u32_at(m, 0) != MAGIC {
        return Err("bad magic".into());
    }
    if u32_at(m, 4) != VERSION {
        return Err(format!("unsupported version {}", u32_at(m, 4)));
    }
    let sum = u64_at(m, 56);
    if sum != 0 && sum != fnv1a64(&m[..META_SUMMED]) {
        return Err("meta checksum mismatch".into());
    }
    let page_size = u32_at(m, 8) as usize;
    if !(512..=1 << 20).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(format!("implausible page size {page_size}"));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16),
        high_water: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// The size of the database `db` (a whole file, perhaps with more after it) as bbolt counts it
/// (`Tx.Size`): its high-water page id times its page size.
pub fn size(db: &[u8]) -> Result<u64, Error> {
    let meta = current_meta(db)?;
    Ok(meta.high_water * meta.page_size as u64)
}

/// Reads every bucket of the database `db` (a whole file): (name, records), by name.
pub fn read(db: &[u8]) -> Result<Vec<(Vec<u8>, Records)>, Error> {
    let meta = current_meta(db)?;
    let r = Reader { db, meta };
    let mut buckets = Vec::new();
    let mut roots = Vec::new();
    r.walk(r.page(meta.root)?, meta.root, 0, &mut |flags, k, v| {
        roots.push((flags, k.to_vec(), v.to_vec()));
        Ok(())
    })?;
    for (flags, name, value) in roots {
        if flags & BUCKET_FLAG == 0 {
            continue; // not a bucket: bbolt keeps none at the top, skip it
        }
        let mut records = Records::new();
        r.bucket(&value, &mut |flags, k, v| {
            if flags & BUCKET_FLAG == 0 {
                records.push((k.to_vec(), v.to_vec()));
            }
            Ok(())
        })?;
        buckets.push((name, records));
    }
    Ok(buckets)
}

/// The meta page in force: the valid one with the greater txid.
fn current_meta(db: &[u8]) -> Result<Meta, Error> {
    let first = meta_at(db, 0);
    // The second meta is one page further: its page size is the first's, or try 4096.
    let second_offset = first.as_ref().map_or(PAGE_SIZE, |m| m.page_size);
    let second = meta_at(db, second_offset);
    let meta = match (first, second) {
        (Ok(a), Ok(b)) => {
            if b.txid > a.txid {
                b
            } else {
                a
            }
        }
        (Ok(a), Err(_)) => a,
        (Err(_), Ok(b)) => b,
        (Err(a), Err(b)) => return Err(Error::NoValidMeta(format!("{a}; {b}"))),
    };
    Ok(meta)
}

struct Reader<'a> {
    db: &'a [u8],
    meta: Meta,
}

type Visit<'v> = dyn FnMut(u32, &[u8], &[u8]) -> Result<(), Error> + 'v;

impl<'a> Reader<'a> {
    /// Page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<&'a [u8], Error> {
        let bad = |what: &str| Error::BadPage {
            page: id,
            what: what.to_string(),
        };
        if id < 2 || id >= self.meta.high_water {
            return Err(bad("outside the database"));
        }
        let ps = self.meta.page_size;
        let start = usize::try_from(id)
            .ok()
            .and_then(|i| i.checked_mul(ps))
            .ok_or_else(|| bad("outside the file"))?;
        let head = self
            .db
            .get(start..start + HEADER)
            .ok_or_else(|| Error::Truncated(format!("page {id} is past the end of the file")))?;
        if u64_at(head, 0) != id {
            return Err(bad(&format!("says it is page {}", u64_at(head, 0))));
        }
        let len = (u32_at(head, 12) as usize + 1)
            .checked_mul(ps)
            .ok_or_else(|| bad("absurd overflow"))?;
        self.db
            .get(start..start.saturating_add(len))
            .ok_or_else(|| Error::Truncated(format!("page {id} runs past the end of the file")))
    }

    /// Calls `f` with the records of the bucket whose value is `value`.
    fn bucket(&self, value: &[u8], f: &mut Visit<'_>) -> Result<(), Error> {
        if value.len() < 16 {
            return Err(Error::Truncated(
                "a bucket value shorter than its header".into(),
            ));
        }
        match u64_at(value, 0) {
            0 => self.walk(&value[16..], 0, 0, f),
            root => self.walk(self.page(root)?, root, 0, f),
        }
    }

    /// Calls `f` with the leaf records under page `p` (id `id`; 0 for an inline page).
    fn walk(&self, p: &[u8], id: u64, depth: usize, f: &mut Visit<'_>) -> Result<(), Error> {
        let bad = |what: String| Error::BadPage { page: id, what };
        if depth > MAX_DEPTH {
            return Err(bad("the tree is too deep (a loop?)".into()));
        }
        if p.len() < HEADER {
            return Err(Error::Truncated(format!(
                "page {id}: no room for its header"
            )));
        }
        let flags = u16_at(p, 8);
        let count = usize::from(u16_at(p, 10));
        let slice = |at: usize, len: usize| -> Result<&[u8], Error> {
            at.checked_add(len)
                .and_then(|end| p.get(at..end))
                .ok_or_else(|| Error::Truncated(format!("page {id}: an element past its end")))
        };
        for i in 0..count {
            let at = HEADER + i * ELEMENT;
            let e = slice(at, ELEMENT)?;
            if flags & LEAF != 0 {
                let (eflags, pos, ksize, vsize) = (
                    u32_at(e, 0),
                    u32_at(e, 4) as usize,
                    u32_at(e, 8) as usize,
                    u32_at(e, 12) as usize,
                );
                let key = slice(at + pos, ksize)?;
                let value = slice(at + pos + ksize, vsize)?;
                f(eflags, key, value)?;
            } else if flags & BRANCH != 0 {
                let child = u64_at(e, 8);
                if child == id {
                    return Err(bad("a branch pointing at itself".into()));
                }
                self.walk(self.page(child)?, child, depth + 1, f)?;
            } else {
                return Err(bad(format!("a {flags:#x} page where a tree page belongs")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bucket = (Vec<u8>, Records);

    fn write_vec(buckets: &[Bucket]) -> Vec<u8> {
        let mut out = io::Cursor::new(Vec::new());
        let mut it = buckets.iter().map(|(n, r)| {
            let records: Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)>> =
                Box::new(r.clone().into_iter());
            (n.clone(), records)
        });
        write(&mut out, &mut it).unwrap();
        out.into_inner()
    }

    fn sample() -> Vec<Bucket> {
        let many: Records = (0..5000u32)
            .map(|i| {
                (
                    format!("k{i:06}").into_bytes(),
                    vec![(i % 251) as u8; (i % 300) as usize],
                )
            })
            .collect();
        vec![
            (b"empty".to_vec(), Vec::new()),
            (b"key".to_vec(), many),
            (
                b"large".to_vec(),
                vec![
                    (b"a".to_vec(), vec![7u8; 10_000]),
                    (b"b".to_vec(), vec![8u8; 3]),
                    (b"c".to_vec(), vec![9u8; 70_000]),
                ],
            ),
            (
                b"meta".to_vec(),
                vec![(b"consistent_index".to_vec(), 42u64.to_be_bytes().to_vec())],
            ),
        ]
    }

    #[test]
    fn what_is_written_reads_back_bucket_by_bucket_and_key_by_key() {
        let buckets = sample();
        let db = write_vec(&buckets);
        assert_eq!(db.len() % PAGE_SIZE, 0);
        assert_eq!(read(&db).unwrap(), buckets);
    }

    #[test]
    fn many_buckets_and_long_keys_make_branch_pages_at_every_level() {
        let buckets: Vec<Bucket> = (0..400u32)
            .map(|i| {
                let name = format!("bucket-{i:04}-{}", "x".repeat(200)).into_bytes();
                let records = (0..40u32)
                    .map(|j| {
                        (
                            format!("{j:03}{}", "k".repeat(500)).into_bytes(),
                            vec![1, 2, 3],
                        )
                    })
                    .collect();
                (name, records)
            })
            .collect();
        let db = write_vec(&buckets);
        assert_eq!(read(&db).unwrap(), buckets);
    }

    #[test]
    fn metas_are_checked_and_the_valid_one_is_used() {
        let buckets = sample();
        let mut db = write_vec(&buckets);
        // One damaged meta: the other serves.
        db[HEADER + 20] ^= 0xff;
        assert_eq!(read(&db).unwrap(), buckets);
        // Both: refused.
        db[PAGE_SIZE + HEADER + 20] ^= 0xff;
        assert!(matches!(read(&db), Err(Error::NoValidMeta(_))));
        assert!(matches!(
            read(b"not a database at all"),
            Err(Error::NoValidMeta(_))
        ));
    }

    #[test]
    fn every_truncation_and_damaged_page_is_an_error_not_a_panic() {
        let db = write_vec(&sample());
        for cut in (0..db.len()).step_by(db.len() / 200) {
            let r = read(&db[..cut]);
            assert!(r.is_err(), "cut at {cut}");
        }
        // Flip bytes in every page's header and elements: never a panic.
        for at in (2 * PAGE_SIZE..db.len()).step_by(db.len() / 400) {
            let mut d = db.clone();
            d[at] ^= 0x5a;
            let _ = read(&d);
        }
    }

    #[test]
    fn unsorted_input_is_refused() {
        let mut out = io::Cursor::new(Vec::new());
        let records: Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)>> =
            Box::new(vec![(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])].into_iter());
        let mut it = std::iter::once((b"x".to_vec(), records));
        let e = write(&mut out, &mut it).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
