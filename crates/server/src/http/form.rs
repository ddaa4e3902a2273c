//! Request parameters: the form body (`application/x-www-form-urlencoded` or
//! `multipart/form-data`) and the query string, as Go's `Request.FormValue` sees them: the
//! body wins over the query, and the first of repeated values wins. As in Go, only POST, PUT
//! and PATCH bodies are read.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Uri};

use super::error::{RequestError, RequestErrorKind};
use crate::config::MAX_KEY_BYTES;

/// Parsed parameters, body pairs first.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The first value of `name`, body before query.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parameters from the query string only.
    pub fn from_query(uri: &Uri) -> Params {
        let mut p = Params::default();
        if let Some(q) = uri.query() {
            p.pairs
                .extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        p
    }

    /// Parameters from the body (read up to `limit` bytes) and the query string.
    pub async fn from_request(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Params, RequestError> {
        let mut p = Params::default();
        if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            let too_large = || {
                RequestError::new(
                    RequestErrorKind::TooLarge,
                    format!("the request body is larger than {limit} bytes"),
                )
            };
            let bytes = super::body::read_limited(headers, body, limit)
                .await
                .map_err(|e| match e {
                    super::body::BodyError::TooLarge => too_large(),
                    super::body::BodyError::Read(e) => RequestError::new(
                        RequestErrorKind::Malformed,
                        format!("the request body could not be read: {e}"),
                    ),
                })?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-www-form-urlencoded");
            let mime = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match mime.as_str() {
                "application/x-www-form-urlencoded" => {
                    p.pairs.extend(form_urlencoded::parse(&bytes).into_owned());
                }
                "multipart/form-data" => {
                    let invalid = |e: multer::Error| {
                        RequestError::new(RequestErrorKind::Malformed, e.to_string())
                    };
                    let boundary = multer::parse_boundary(content_type).map_err(invalid)?;
                    // The body is already read and bounded by `limit`; parse it as it is.
                    let whole = futures_util::stream::once(async move {
                        Ok::<_, std::convert::Infallible>(bytes)
                    });
                    let mut mp = multer::Multipart::new(whole, boundary);
                    while let Some(field) = mp.next_field().await.map_err(invalid)? {
                        let name = field.name().unwrap_or("").to_string();
                        let data = field.bytes().await.map_err(invalid)?;
                        p.pairs
                            .push((name, String::from_utf8_lossy(&data).into_owned()));
                    }
                }
                _ => {}
            }
        }
        p.pairs.extend(Params::from_query(uri).pairs);
        Ok(p)
    }
}

/// The clean key named by a request path below `prefix`, percent-decoded.
pub(super) fn key_from_path(path: &str, prefix: &str) -> Result<String, RequestError> {
    let raw = path.strip_prefix(prefix).unwrap_or("");
    let decoded = percent_decode(raw);
    if decoded.len() > MAX_KEY_BYTES {
        return Err(RequestError::new(
            RequestErrorKind::KeyTooLong,
            format!("the key is longer than {MAX_KEY_BYTES} bytes"),
        ));
    }
    Ok(etcd_store::path::clean(&decoded))
}

/// `%XX` decoding of a path (a `+` stays a `+`); invalid escapes stay as written. Also gRPC's
/// encoding of `grpc-message` (the JSON gateway reads it).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod key_tests {
    use super::*;
    use etcd_api::ErrorCode;

    #[test]
    fn keys_are_decoded_and_cleaned() {
        assert_eq!(key_from_path("/v1/keys/a%2Fb", "/v1/keys").unwrap(), "/a/b");
        assert_eq!(
            key_from_path("/v1/keys//a/./b/../c", "/v1/keys").unwrap(),
            "/a/c"
        );
        assert_eq!(key_from_path("/v1/keys", "/v1/keys").unwrap(), "/");
        assert_eq!(
            key_from_path("/v1/keys/a+b%zz%4", "/v1/keys").unwrap(),
            "/a+b%zz%4"
        );
        assert_eq!(key_from_path("/v1/keys/%41", "/v1/keys").unwrap(), "/A");
        let long = format!("/v1/keys/{}", "k".repeat(MAX_KEY_BYTES + 1));
        assert_eq!(
            super::super::error::Error::from(key_from_path(&long, "/v1/keys").unwrap_err())
                .0
                .code,
            ErrorCode::InvalidField
        );
    }
}
