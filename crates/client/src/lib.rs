//! Async clients for etcd-rs: this crate's root speaks the etcd v1 HTTP API served by etcd-rs
//! (and by etcd v0.1); [`v3`] speaks etcd's v3 API (gRPC), as served by etcd-rs and etcd 3.x.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etcd_client::Error> {
//! use etcd_client::{Client, Got};
//!
//! let client = Client::new(["127.0.0.1:4001", "http://127.0.0.1:4002"])?;
//! let set = client.set("/message", "Hello world", None).await?;
//! assert_eq!(set.value.as_deref(), Some("Hello world"));
//! match client.get("/message").await? {
//!     Got::Value(v) => println!("{} = {:?} at index {}", v.key, v.value, v.index),
//!     Got::Dir(entries) => println!("a directory of {}", entries.len()),
//! }
//!
//! // Every change below /message, with no gap between polls.
//! let mut changes = client.watch_stream("/message", Some(set.index + 1));
//! let next = changes.next().await?;
//! println!("{:?} {}", next.action, next.key);
//! # Ok(())
//! # }
//! ```
//!
//! # Endpoints and failover
//!
//! A client holds a list of member client URLs (`HOST:PORT` gets `http://`). Requests go to the
//! current endpoint; on a connection error the client moves to the next one and retries, until
//! every endpoint has failed once ([`Error::Unavailable`]). [`Client::sync_endpoints`] replaces
//! the list with the cluster's own (`/v1/machines`). Errors answered by a server are never
//! retried: they come back as [`Error::Server`] with the server's code, message and cause.
//!
//! # TLS
//!
//! [`ClientBuilder::ca_file`] trusts a CA for `https://` endpoints; [`ClientBuilder::client_cert`]
//! presents a client certificate. Connections are kept alive and reused.

mod conn;
pub mod v3;

pub use bytes::Bytes;
pub use conn::{Connection, Response, Tls};
pub use hyper::Method;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use etcd_api::{Action, ApiError, ErrorCode, KeyResponse};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an etcd error.
    #[error("{error}")]
    Server {
        /// Code, message and cause.
        error: ApiError,
        /// The server's store index when it answered (`X-Etcd-Index`), if it said.
        index: Option<u64>,
    },
    /// No endpoint could be reached.
    #[error("no endpoint reachable ({0})")]
    Unavailable(String),
    /// The server answered something that is not the v1 API.
    #[error("unexpected answer: HTTP {status}: {body}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// Body text.
        body: String,
    },
    /// The client configuration is unusable (no endpoints, bad URL, unreadable TLS file).
    #[error("{0}")]
    Config(String),
}

/// Result with a client [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What a GET found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A key with a value.
    Value(KeyResponse),
    /// A directory: its immediate children, sorted by key.
    Dir(Vec<KeyResponse>),
}

/// Builds a [`Client`] with TLS or timeouts.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    timeout: Duration,
}

impl ClientBuilder {
    /// A builder for these endpoints (`HOST:PORT` or URLs).
    pub fn new<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> ClientBuilder {
        ClientBuilder {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.as_ref().to_string())
                .collect(),
            ca_file: None,
            client_cert: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Trusts the CA certificates in this PEM file for `https://` endpoints.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ClientBuilder {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files).
    pub fn client_cert(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> ClientBuilder {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Bounds every request except watches (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.timeout = timeout;
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client> {
        let endpoints = normalise_endpoints(
            &self.endpoints,
            self.ca_file.is_some() || self.client_cert.is_some(),
        )?;
        let tls = conn::tls_connector(self.ca_file.as_deref(), self.client_cert.as_ref())?;
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: Mutex::new(endpoints),
                current: AtomicUsize::new(0),
                pool: conn::Pool::new(tls),
                timeout: self.timeout,
            }),
        })
    }
}

/// `HOST:PORT` → `http://HOST:PORT` (or `https://` when TLS files are given); URLs kept, with
/// any trailing `/` removed.
fn normalise_endpoints(endpoints: &[String], tls: bool) -> Result<Vec<String>> {
    let scheme = if tls { "https" } else { "http" };
    let out: Vec<String> = endpoints
        .iter()
        .map(|e| e.trim().trim_end_matches('/'))
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.contains("://") {
                e.to_string()
            } else {
                format!("{scheme}://{e}")
            }
        })
        .collect();
    if out.is_empty() {
        return Err(Error::Config("no endpoints given".into()));
    }
    for e in &out {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::Config(format!(
                "{e}: only http:// and https:// endpoints are supported"
            )));
        }
    }
    Ok(out)
}

struct Inner {
    endpoints: Mutex<Vec<String>>,
    current: AtomicUsize,
    pool: conn::Pool,
    timeout: Duration,
}

/// A client for one cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A plain-HTTP client for these endpoints.
    pub fn new<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> Result<Client> {
        ClientBuilder::new(endpoints).build()
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.endpoints.lock().expect("endpoint lock").clone()
    }

    /// Sets a key, optionally with a TTL in seconds.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<i64>) -> Result<KeyResponse> {
        let mut form = vec![("value", value.to_string())];
        if let Some(t) = ttl {
            form.push(("ttl", t.to_string()));
        }
        self.key_op("POST", &keys_path(key), &form).await
    }

    /// Sets a key only if its current value is `prev_value`.
    pub async fn test_and_set(
        &self,
        key: &str,
        prev_value: &str,
        value: &str,
        ttl: Option<i64>,
    ) -> Result<KeyResponse> {
        let mut form = vec![
            ("value", value.to_string()),
            ("prevValue", prev_value.to_string()),
        ];
        if let Some(t) = ttl {
            form.push(("ttl", t.to_string()));
        }
        self.key_op("POST", &keys_path(key), &form).await
    }

    /// Reads a key: its value, or a directory's listing.
    pub async fn get(&self, key: &str) -> Result<Got> {
        self.read(&keys_path(key), false).await
    }

    /// Reads a key linearizably (`consistent=true`).
    pub async fn get_consistent(&self, key: &str) -> Result<Got> {
        self.read(&keys_path(key), true).await
    }

    async fn read(&self, path: &str, consistent: bool) -> Result<Got> {
        let path = if consistent {
            format!("{path}?consistent=true")
        } else {
            path.to_string()
        };
        let body = self.call("GET", &path, None, true).await?;
        if body.first() == Some(&b'[') {
            Ok(Got::Dir(parse(&body)?))
        } else {
            Ok(Got::Value(parse(&body)?))
        }
    }

    /// Lists a directory's entries; with `recursive`, every key below it (directories first
    /// appear as entries, then their contents), walking directories one request at a time.
    pub async fn list(&self, key: &str, recursive: bool) -> Result<Vec<KeyResponse>> {
        let mut out = Vec::new();
        let mut stack = vec![key.to_string()];
        while let Some(dir) = stack.pop() {
            let items = match self.get(&dir).await? {
                Got::Dir(items) => items,
                Got::Value(v) if dir == key => vec![v],
                Got::Value(_) => continue,
            };
            let mut subdirs = Vec::new();
            for item in items {
                if recursive && item.dir {
                    subdirs.push(item.key.clone());
                }
                out.push(item);
            }
            stack.extend(subdirs.into_iter().rev());
            if !recursive {
                break;
            }
        }
        if recursive {
            out.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Ok(out)
    }

    /// Deletes a key.
    pub async fn delete(&self, key: &str) -> Result<KeyResponse> {
        self.key_op("DELETE", &keys_path(key), &[]).await
    }

    /// Waits for the next change at or below `prefix`; with `index`, the first recorded change
    /// with an index at or after it.
    pub async fn watch(&self, prefix: &str, index: Option<u64>) -> Result<KeyResponse> {
        let mut path = format!("/v1/watch{}", encode_key(prefix));
        if let Some(i) = index {
            path.push_str(&format!("?index={i}"));
        }
        let body = self.call("GET", &path, None, false).await?;
        parse(&body)
    }

    /// Every change at or below `prefix` from `index` on (or from now), in order: each poll
    /// re-arms at the index after the last event, so nothing is missed between polls.
    pub fn watch_stream(&self, prefix: &str, index: Option<u64>) -> WatchStream {
        WatchStream {
            client: self.clone(),
            prefix: prefix.to_string(),
            next_index: index,
        }
    }

    /// Client URLs of all members.
    pub async fn machines(&self) -> Result<Vec<String>> {
        let body = self.call("GET", "/v1/machines", None, true).await?;
        Ok(String::from_utf8_lossy(&body)
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect())
    }

    /// The leader's peer URL.
    pub async fn leader(&self) -> Result<String> {
        let body = self.call("GET", "/v1/leader", None, true).await?;
        Ok(String::from_utf8_lossy(&body).trim().to_string())
    }

    /// Replaces the endpoint list with the cluster's members (`/v1/machines`).
    pub async fn sync_endpoints(&self) -> Result<Vec<String>> {
        let machines = self.machines().await?;
        if !machines.is_empty() {
            *self.inner.endpoints.lock().expect("endpoint lock") = machines.clone();
            self.inner.current.store(0, Ordering::Relaxed);
        }
        Ok(machines)
    }

    async fn key_op(
        &self,
        method: &str,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<KeyResponse> {
        let body = if form.is_empty() {
            None
        } else {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            Some(s.finish().into_bytes())
        };
        let answer = self.call(method, path, body, true).await?;
        parse(&answer)
    }

    /// Sends a request, failing over between endpoints on connection errors.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        bounded: bool,
    ) -> Result<bytes::Bytes> {
        let endpoints = self.endpoints();
        let start = self.inner.current.load(Ordering::Relaxed) % endpoints.len();
        let mut last = String::new();
        for step in 0..endpoints.len() {
            let i = (start + step) % endpoints.len();
            let timeout = bounded.then_some(self.inner.timeout);
            match self
                .inner
                .pool
                .request(&endpoints[i], method, path, body.clone(), timeout)
                .await
            {
                Ok(answer) => {
                    if step > 0 {
                        self.inner.current.store(i, Ordering::Relaxed);
                    }
                    if (200..300).contains(&answer.status) {
                        return Ok(answer.body);
                    }
                    return Err(match ApiError::from_json(&answer.body) {
                        Some(error) => Error::Server {
                            error,
                            index: answer.etcd_index,
                        },
                        None => Error::Unexpected {
                            status: answer.status,
                            body: String::from_utf8_lossy(&answer.body).into_owned(),
                        },
                    });
                }
                Err(e) => last = format!("{}: {e}", endpoints[i]),
            }
        }
        Err(Error::Unavailable(last))
    }
}

/// Successive events of a prefix; see [`Client::watch_stream`].
pub struct WatchStream {
    client: Client,
    prefix: String,
    next_index: Option<u64>,
}

impl WatchStream {
    /// The next event (waits for it).
    pub async fn next(&mut self) -> Result<KeyResponse> {
        let event = self.client.watch(&self.prefix, self.next_index).await?;
        self.next_index = Some(event.index + 1);
        Ok(event)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Unexpected {
        status: 200,
        body: format!("{e}: {}", String::from_utf8_lossy(body)),
    })
}

fn keys_path(key: &str) -> String {
    format!("/v1/keys{}", encode_key(key))
}

/// Percent-encodes each segment of a key, keeping the slashes.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for seg in key.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        for b in seg.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(
            normalise_endpoints(&["127.0.0.1:4001".into(), "https://h:1/".into()], false).unwrap(),
            vec!["http://127.0.0.1:4001", "https://h:1"]
        );
        assert_eq!(
            normalise_endpoints(&["h:1".into()], true).unwrap(),
            vec!["https://h:1"]
        );
        assert!(normalise_endpoints(&[" ".into()], false).is_err());
        assert!(normalise_endpoints(&["ftp://h".into()], false).is_err());
    }

    #[test]
    fn keys_are_encoded_by_segment() {
        assert_eq!(encode_key("/a b/c"), "/a%20b/c");
        assert_eq!(encode_key("foo"), "/foo");
        assert_eq!(encode_key("/"), "/");
        assert_eq!(encode_key("/x%/y"), "/x%25/y");
    }
}
