//! A fix-up for one client quirk on the client port's HTTP/2 connections: etcd's Go client 3.4
//! dials some calls (etcdctl's `endpoint status`, `endpoint hashkv`, `move-leader`, …: the
//! Maintenance calls aimed at one endpoint) with the endpoint URL itself as the `:authority`,
//! `http://10.0.0.1:2379`, which is not an authority. Go's HTTP/2 server takes it; the h2
//! crate refuses the stream (PROTOCOL_ERROR), so `etcdctl --endpoints=https://… endpoint status`
//! (what operators run) failed against etcd-rs.
//!
//! [`AuthorityFix`] wraps a connection before the HTTP server reads it. On an HTTP/2
//! connection it looks at the first HEADERS frame (where the Go client writes the authority
//! literally; later requests refer to it through HPACK's dynamic table) and, if its
//! `:authority` is `scheme://rest`, rewrites it as `scheme:x@rest`: a valid authority naming
//! the same host and port (the `scheme:x` is userinfo, which nothing reads), of the same
//! length, so the HPACK dynamic table, sized by decoded lengths, stays the same on both sides.
//! Everything after that frame, and every HTTP/1 connection, passes through untouched, with
//! no copying.
//!
//! Not here: a general HTTP/2 proxy. A first header block split over CONTINUATION frames, or
//! one that cannot be parsed, passes unchanged (h2 judges it).

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 client connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Frame types and flags (RFC 9113).
const HEADERS: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame a peer may send before settings say otherwise, and so the largest this
/// writes.
const MAX_FRAME: usize = 16_384;

/// A connection whose first HTTP/2 header block gets its `:authority` fixed (see the module
/// docs).
pub struct AuthorityFix<S> {
    inner: S,
    state: State,
    /// Read from `inner`, not yet looked at.
    pending: BytesMut,
    /// Looked at, not yet handed to the reader.
    ready: BytesMut,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Waiting to see whether the connection starts with the HTTP/2 preface.
    Preface,
    /// HTTP/2, before the first HEADERS frame.
    Frames,
    /// Everything passes through.
    Pass,
}

impl<S> AuthorityFix<S> {
    /// Wraps `inner`; with `enabled` false, everything passes through.
    pub fn new(inner: S, enabled: bool) -> AuthorityFix<S> {
        AuthorityFix {
            inner,
            state: if enabled { State::Preface } else { State::Pass },
            pending: BytesMut::new(),
            ready: BytesMut::new(),
        }
    }

    /// Moves what `pending` holds that can be judged into `ready`.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Pass => {
                    let all = self.pending.split();
                    self.ready.unsplit(all);
                    return;
                }
                State::Preface => {
                    let n = self.pending.len().min(PREFACE.len());
                    if self.pending[..n] != PREFACE[..n] {
                        self.state = State::Pass;
                    } else if n == PREFACE.len() {
                        let preface = self.pending.split_to(n);
                        self.ready.unsplit(preface);
                        self.state = State::Frames;
                    } else {
                        return;
                    }
                }
                State::Frames => {
                    if self.pending.len() < 9 {
                        return;
                    }
                    let len = (usize::from(self.pending[0]) << 16)
                        | (usize::from(self.pending[1]) << 8)
                        | usize::from(self.pending[2]);
                    if len > MAX_FRAME {
                        // Not a frame this server accepts: h2 will say so.
                        self.state = State::Pass;
                        continue;
                    }
                    if self.pending.len() < 9 + len {
                        return;
                    }
                    let frame = self.pending.split_to(9 + len);
                    if frame[3] == HEADERS {
                        match fix_headers_frame(&frame) {
                            Some(fixed) => self.ready.extend_from_slice(&fixed),
                            None => self.ready.unsplit(frame),
                        }
                        self.state = State::Pass;
                    } else {
                        self.ready.unsplit(frame);
                    }
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.state == State::Pass && this.pending.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.state == State::Pass {
                this.process();
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The end: hand over what is left as it is.
                this.state = State::Pass;
                this.process();
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.pending.extend_from_slice(read.filled());
            this.process();
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The HEADERS frame `frame` (header included) with its `:authority` fixed, if it needed it
/// and could be.
fn fix_headers_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let flags = frame[4];
    if flags & END_HEADERS == 0 {
        return None;
    }
    let payload = &frame[9..];
    let mut start = 0;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*payload.first()?);
        start = 1;
    }
    if flags & PRIORITY != 0 {
        start += 5;
    }
    let end = payload.len().checked_sub(pad)?;
    if start > end {
        return None;
    }
    let block = fix_block(&payload[start..end])?;
    let len = start + block.len() + pad;
    if len > MAX_FRAME {
        return None;
    }
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(&frame[3..9]);
    out.extend_from_slice(&payload[..start]);
    out.extend_from_slice(&block);
    out.extend_from_slice(&payload[end..]);
    Some(out)
}

/// The header block with its `:authority` fixed, if it has one that needs it.
fn fix_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut i = 0;
    while i < block.len() {
        let b = block[i];
        if b & 0x80 != 0 {
            // Indexed field.
            i = read_int(block, i, 7)?.1;
            continue;
        }
        if b & 0xe0 == 0x20 {
            // Dynamic table size update.
            i = read_int(block, i, 5)?.1;
            continue;
        }
        // A literal: with incremental indexing (01), or without / never indexed (000x).
        let prefix = if b & 0xc0 == 0x40 { 6 } else { 4 };
        let (name_index, mut j) = read_int(block, i, prefix)?;
        let authority = if name_index == 0 {
            let (name, k) = read_string(block, j)?;
            j = k;
            name == b":authority"
        } else {
            // Index 1 of the static table is `:authority`.
            name_index == 1
        };
        let (value, k) = read_string(block, j)?;
        if authority {
            let fixed = fix_authority(&value)?;
            let mut out = Vec::with_capacity(block.len() + 8);
            out.extend_from_slice(&block[..j]);
            write_int(&mut out, 0x00, 7, fixed.len());
            out.extend_from_slice(&fixed);
            out.extend_from_slice(&block[k..]);
            return Some(out);
        }
        i = k;
    }
    None
}

/// `scheme://rest` as `scheme:x@rest` (same length, a valid authority); `None` for anything
/// else.
fn fix_authority(value: &[u8]) -> Option<Vec<u8>> {
    let at = value.windows(3).position(|w| w == b"://")?;
    let scheme = &value[..at];
    let rest = &value[at + 3..];
    let plain_scheme = !scheme.is_empty()
        && scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !plain_scheme || rest.is_empty() || rest.contains(&b'@') || rest.contains(&b'/') {
        return None;
    }
    let mut out = Vec::with_capacity(value.len());
    out.extend_from_slice(scheme);
    out.extend_from_slice(b":x@");
    out.extend_from_slice(rest);
    Some(out)
}

/// An HPACK integer with an `n`-bit prefix at `buf[i]` (RFC 7541 §5.1): its value and the
/// index after it.
fn read_int(buf: &[u8], i: usize, n: u32) -> Option<(usize, usize)> {
    let max = (1usize << n) - 1;
    let mut value = usize::from(*buf.get(i)?) & max;
    let mut j = i + 1;
    if value < max {
        return Some((value, j));
    }
    let mut shift = 0;
    loop {
        let b = *buf.get(j)?;
        j += 1;
        value = value.checked_add(usize::from(b & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((value, j));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Appends `value` as an HPACK integer with an `n`-bit prefix after the bits `first`.
fn write_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// An HPACK string literal at `buf[i]` (Huffman-coded or not), decoded, and the index after.
fn read_string(buf: &[u8], i: usize) -> Option<(Vec<u8>, usize)> {
    let huffman = *buf.get(i)? & 0x80 != 0;
    let (len, j) = read_int(buf, i, 7)?;
    let raw = buf.get(j..j.checked_add(len)?)?;
    let value = if huffman {
        huffman_decode(raw)?
    } else {
        raw.to_vec()
    };
    Some((value, j + len))
}

/// The bit length of each symbol's code in HPACK's canonical Huffman code (RFC 7541
/// Appendix B): bytes 0 to 255, then EOS.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// The canonical code's decoding tables: per length, the first code, how many codes, and
/// where their symbols start in `symbols` (sorted by length, then value).
struct Canonical {
    first_code: [u32; 31],
    count: [u32; 31],
    first_symbol: [usize; 31],
    symbols: Vec<u16>,
}

fn canonical() -> &'static Canonical {
    static CODE: OnceLock<Canonical> = OnceLock::new();
    CODE.get_or_init(|| {
        let mut symbols: Vec<u16> = (0..257).collect();
        symbols.sort_by_key(|&s| (CODE_LENGTHS[usize::from(s)], s));
        let mut count = [0u32; 31];
        for &l in CODE_LENGTHS.iter() {
            count[usize::from(l)] += 1;
        }
        let (mut first_code, mut first_symbol) = ([0u32; 31], [0usize; 31]);
        let (mut code, mut index) = (0u32, 0usize);
        for len in 1..31 {
            first_code[len] = code;
            first_symbol[len] = index;
            code = (code + count[len]) << 1;
            index += count[len] as usize;
        }
        Canonical {
            first_code,
            count,
            first_symbol,
            symbols,
        }
    })
}

/// Decodes a Huffman-coded string; `None` if it is malformed (EOS inside, bad padding).
fn huffman_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let c = canonical();
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for byte in bytes {
        for bit in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> bit) & 1);
            len += 1;
            if len > 30 {
                return None;
            }
            let offset = code.wrapping_sub(c.first_code[len]);
            if code >= c.first_code[len] && offset < c.count[len] {
                let symbol = c.symbols[c.first_symbol[len] + offset as usize];
                if symbol == 256 {
                    return None;
                }
                out.push(symbol as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the start of EOS).
    (len < 8 && code == (1 << len) - 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical code of `symbol` (for encoding in tests).
    fn code_of(symbol: u16) -> (u32, usize) {
        let c = canonical();
        let len = usize::from(CODE_LENGTHS[usize::from(symbol)]);
        let rank = c.symbols[c.first_symbol[len]..]
            .iter()
            .position(|&s| s == symbol)
            .unwrap();
        (c.first_code[len] + rank as u32, len)
    }

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0usize, Vec::new());
        for &b in s {
            let (code, len) = code_of(u16::from(b));
            acc = (acc << len) | u64::from(code);
            bits += len;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
        }
        out
    }

    #[test]
    fn the_canonical_code_is_rfc_7541s() {
        // Appendix B: '0' 00000, 'a' 00011, ' ' 010100, '%' 010101, EOS 30 ones.
        assert_eq!(code_of(u16::from(b'0')), (0x0, 5));
        assert_eq!(code_of(u16::from(b'a')), (0x3, 5));
        assert_eq!(code_of(u16::from(b' ')), (0x14, 6));
        assert_eq!(code_of(u16::from(b'%')), (0x15, 6));
        assert_eq!(code_of(256), (0x3fff_ffff, 30));
        // C.4.1: "www.example.com".
        let coded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(huffman_decode(&coded).unwrap(), b"www.example.com");
        assert_eq!(huffman_encode(b"www.example.com"), coded);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all)).unwrap(), all);
        // Padding of 8 bits or more, or not all ones, is malformed.
        assert_eq!(huffman_decode(&[0xff]), None);
        assert_eq!(huffman_decode(&[0x00]), None);
    }

    #[test]
    fn integers_follow_rfc_7541() {
        // C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(read_int(&[0x1f, 0x9a, 0x0a], 0, 5), Some((1337, 3)));
        let mut out = Vec::new();
        write_int(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        assert_eq!(read_int(&[0x0a], 0, 5), Some((10, 1)));
        assert_eq!(read_int(&[0x1f, 0x9a], 0, 5), None);
    }

    /// A first header block as Go's client writes it: :method POST (indexed), :scheme http,
    /// :path, then :authority with incremental indexing, Huffman-coded or not.
    fn go_block(authority: &str, huffman: bool) -> Vec<u8> {
        let mut b = vec![0x83, 0x86];
        b.push(0x44);
        let path = b"/etcdserverpb.Maintenance/Status";
        write_int(&mut b, 0x00, 7, path.len());
        b.extend_from_slice(path);
        b.push(0x41);
        if huffman {
            let coded = huffman_encode(authority.as_bytes());
            write_int(&mut b, 0x80, 7, coded.len());
            b.extend_from_slice(&coded);
        } else {
            write_int(&mut b, 0x00, 7, authority.len());
            b.extend_from_slice(authority.as_bytes());
        }
        b.extend_from_slice(&[0x5f, 0x10]);
        b.extend_from_slice(b"application/grpc");
        b
    }

    /// The `:authority` of a block, as h2 would read it.
    fn authority_of(block: &[u8]) -> String {
        let mut i = 0;
        loop {
            let b = block[i];
            if b & 0x80 != 0 {
                i = read_int(block, i, 7).unwrap().1;
                continue;
            }
            let prefix = if b & 0xc0 == 0x40 { 6 } else { 4 };
            let (index, j) = read_int(block, i, prefix).unwrap();
            let (value, k) = read_string(block, j).unwrap();
            if index == 1 {
                return String::from_utf8(value).unwrap();
            }
            i = k;
        }
    }

    fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            HEADERS,
            flags,
        ];
        f.extend_from_slice(&[0, 0, 0, 1]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_url_authority_becomes_a_valid_one_of_the_same_length() {
        for huffman in [false, true] {
            let block = go_block("http://127.0.0.1:2379", huffman);
            let fixed = fix_block(&block).unwrap();
            let authority = authority_of(&fixed);
            assert_eq!(authority, "http:x@127.0.0.1:2379");
            assert_eq!(authority.len(), "http://127.0.0.1:2379".len());
            let parsed = axum::http::uri::Authority::try_from(authority.as_str()).unwrap();
            assert_eq!(
                (parsed.host(), parsed.port_u16()),
                ("127.0.0.1", Some(2379))
            );
            // Fields after it are kept.
            assert!(fixed.ends_with(b"application/grpc"));
            // Valid authorities are left alone.
            assert_eq!(fix_block(&go_block("127.0.0.1:2379", huffman)), None);
        }
        assert_eq!(
            authority_of(&fix_block(&go_block("https://[::1]:2379", true)).unwrap()),
            "https:x@[::1]:2379"
        );
        assert_eq!(fix_block(&go_block("http://a/b", false)), None);
    }

    #[test]
    fn frames_keep_their_padding_priority_and_stream() {
        let block = go_block("https://10.0.0.1:2379", true);
        let mut payload = vec![3];
        payload.extend_from_slice(&[0, 0, 0, 0, 16]);
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&[0, 0, 0]);
        let f = frame(END_HEADERS | PADDED | PRIORITY, &payload);
        let fixed = fix_headers_frame(&f).unwrap();
        let len = (usize::from(fixed[1]) << 8) | usize::from(fixed[2]);
        assert_eq!(len, fixed.len() - 9);
        assert_eq!(&fixed[3..9], &f[3..9]);
        let body = &fixed[9..];
        assert_eq!(&body[..6], &[3, 0, 0, 0, 0, 16]);
        assert_eq!(&body[body.len() - 3..], &[0, 0, 0]);
        assert_eq!(
            authority_of(&body[6..body.len() - 3]),
            "https:x@10.0.0.1:2379"
        );
        // Split over CONTINUATION frames: left to h2.
        assert_eq!(fix_headers_frame(&frame(0, &block)), None);
    }

    #[tokio::test]
    async fn a_connection_is_fixed_once_and_http1_passes_through() {
        use tokio::io::AsyncReadExt as _;
        let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
        let headers = frame(END_HEADERS, &go_block("http://127.0.0.1:2379", true));
        let later = frame(END_HEADERS, &[0x83, 0x86, 0xbe]);
        let mut input = PREFACE.to_vec();
        input.extend_from_slice(&settings);
        input.extend_from_slice(&headers);
        input.extend_from_slice(&later);
        // Delivered a few bytes at a time.
        let mut mock = tokio_test_reader(&input, 7);
        let mut fixed = AuthorityFix::new(&mut mock, true);
        let mut got = Vec::new();
        fixed.read_to_end(&mut got).await.unwrap();
        let mut want = PREFACE.to_vec();
        want.extend_from_slice(&settings);
        want.extend_from_slice(&fix_headers_frame(&headers).unwrap());
        want.extend_from_slice(&later);
        assert_eq!(got, want);

        let http1 = b"GET /version HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        let mut mock = tokio_test_reader(&http1, 5);
        let mut got = Vec::new();
        AuthorityFix::new(&mut mock, true)
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(got, http1);
    }

    /// A reader that hands out `data` `step` bytes at a time.
    fn tokio_test_reader(data: &[u8], step: usize) -> impl AsyncRead + Unpin {
        let chunks: Vec<io::Result<bytes::Bytes>> = data
            .chunks(step)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        tokio_util_reader(chunks)
    }

    fn tokio_util_reader(chunks: Vec<io::Result<bytes::Bytes>>) -> impl AsyncRead + Unpin {
        struct Chunks(std::collections::VecDeque<io::Result<bytes::Bytes>>);
        impl AsyncRead for Chunks {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.0.front_mut() {
                    None => Poll::Ready(Ok(())),
                    Some(Err(_)) => Poll::Ready(self.0.pop_front().unwrap().map(drop)),
                    Some(Ok(b)) => {
                        let n = b.len().min(buf.remaining());
                        buf.put_slice(&b[..n]);
                        b.advance(n);
                        if b.is_empty() {
                            self.0.pop_front();
                        }
                        Poll::Ready(Ok(()))
                    }
                }
            }
        }
        Chunks(chunks.into())
    }
}
