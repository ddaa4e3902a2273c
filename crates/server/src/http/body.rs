//! Reading request bodies with a size limit, and refusing oversized ones in a way clients can
//! read.
//!
//! A client that sends a whole body before reading the answer (Python's `http.client`, curl
//! without `Expect`) would lose a 413 sent while it is still writing: the server closes the
//! connection with unread data, the kernel resets it, and the client sees a broken pipe. So,
//! as nginx does, the rest of an oversized body is read and thrown away first, up to
//! [`DRAIN_BYTES`] and for at most [`DRAIN_TIME`]; past either, the connection is closed
//! anyway (a client pushing more than that is not owed an answer). A client that asked with
//! `Expect: 100-continue` is answered at once: it has not sent the body.
//!
//! Not here: what the limit is (each API's own).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;

/// Most of an oversized body read and discarded before the refusal is sent.
pub const DRAIN_BYTES: u64 = 64 << 20;

/// Longest time spent discarding an oversized body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit (declared, or as it arrived); what arrived was discarded.
    TooLarge,
    /// The body could not be read (the client went away, bad chunking).
    Read(String),
}

/// Reads the whole body if it is at most `limit` bytes. An oversized one is discarded (see
/// the module docs) before [`BodyError::TooLarge`] is returned.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut data = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        let expects_continue = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        // (Polling the body is what makes hyper send `100 Continue`: not for a refusal.)
        if !expects_continue && declared.is_some_and(|n| n <= DRAIN_BYTES) {
            discard(&mut data, 0).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            discard(&mut data, (buf.len() + chunk.len()) as u64).await;
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Reads and drops the rest of `data`, bounded by [`DRAIN_BYTES`] (counting `already` read)
/// and [`DRAIN_TIME`].
async fn discard(data: &mut axum::body::BodyDataStream, already: u64) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = already;
        while read <= DRAIN_BYTES {
            match data.next().await {
                Some(Ok(chunk)) => read += chunk.len() as u64,
                _ => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// A streamed body of `chunks` chunks of `size` bytes, and how many were taken from it.
    fn counted(
        chunks: usize,
        size: usize,
    ) -> (Body, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = taken.clone();
        let stream = futures_util::stream::iter(0..chunks).map(move |_| {
            t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size]))
        });
        (Body::from_stream(stream), taken)
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        let (body, _) = counted(4, 10);
        assert_eq!(
            read_limited(&HeaderMap::new(), body, 40)
                .await
                .unwrap()
                .len(),
            40
        );
    }

    #[tokio::test]
    async fn oversized_bodies_are_read_to_the_end_before_the_refusal() {
        // Streamed past the limit.
        let (body, taken) = counted(100, 1000);
        assert_eq!(
            read_limited(&HeaderMap::new(), body, 5000).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 100);
        // Declared too large.
        let (body, taken) = counted(100, 1000);
        let h = headers(&[("content-length", "100000")]);
        assert_eq!(read_limited(&h, body, 5000).await, Err(BodyError::TooLarge));
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 100);
        // A client waiting for `100 Continue` has sent nothing: nothing is read.
        let (body, taken) = counted(100, 1000);
        let h = headers(&[("content-length", "100000"), ("expect", "100-continue")]);
        assert_eq!(read_limited(&h, body, 5000).await, Err(BodyError::TooLarge));
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn discarding_stops_at_its_bound() {
        let chunk = 1 << 20;
        let chunks = (DRAIN_BYTES as usize / chunk) + 100;
        let (body, taken) = counted(chunks, chunk);
        assert_eq!(
            read_limited(&HeaderMap::new(), body, 10).await,
            Err(BodyError::TooLarge)
        );
        let n = taken.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < chunks && n as u64 * chunk as u64 > DRAIN_BYTES, "{n}");
    }
}
