//! Keep-alive HTTP/1.1 connections per endpoint, plain or TLS.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::{Error, Result};

type Sender = SendRequest<Full<Bytes>>;

/// A server's answer.
pub(crate) type Answer = Response;

/// Idle connections by endpoint.
pub(crate) struct Pool {
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<HashMap<String, Vec<Sender>>>,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl Pool {
    pub(crate) fn new(tls: Option<tokio_rustls::TlsConnector>) -> Pool {
        Pool {
            tls,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one request to `base` (an endpoint URL). `Err` means the endpoint could not be
    /// talked to (the caller may fail over); any HTTP answer is `Ok`.
    pub(crate) async fn request(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> std::result::Result<Answer, String> {
        let pooled = self.take_idle(base);
        let fresh = pooled.is_none();
        let mut sender = match pooled {
            Some(s) => s,
            None => self.connect(base).await?,
        };
        match self
            .send(&mut sender, base, method, path, body.clone(), timeout)
            .await
        {
            Ok(answer) => {
                self.put_idle(base, sender);
                Ok(answer)
            }
            // A kept-alive connection the server closed while idle: once more on a new one.
            Err(_) if !fresh => {
                let mut sender = self.connect(base).await?;
                let answer = self
                    .send(&mut sender, base, method, path, body, timeout)
                    .await?;
                self.put_idle(base, sender);
                Ok(answer)
            }
            Err(e) => Err(e),
        }
    }

    fn take_idle(&self, base: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(base)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, base: &str, sender: Sender) {
        if !sender.is_closed() {
            let mut idle = self.idle.lock().expect("pool lock");
            let list = idle.entry(base.to_string()).or_default();
            if list.len() < 32 {
                list.push(sender);
            }
        }
    }

    async fn connect(&self, base: &str) -> std::result::Result<Sender, String> {
        open(self.tls.as_ref(), base).await
    }

    async fn send(
        &self,
        sender: &mut Sender,
        base: &str,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> std::result::Result<Answer, String> {
        let authority = base.split_once("://").map_or(base, |(_, r)| r);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority);
        if body.is_some() {
            request = request.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let exchange = async { exchange(sender, request).await.map_err(|e| e.to_string()) };
        match timeout {
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .map_err(|_| format!("{method} {path} on {base} timed out after {t:?}"))?,
            None => exchange.await,
        }
    }
}

/// Opens one HTTP/1.1 connection to `base` (an endpoint URL; `https://` needs `tls`).
async fn open(
    tls: Option<&tokio_rustls::TlsConnector>,
    base: &str,
) -> std::result::Result<Sender, String> {
    let (tls_wanted, authority) = match base.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some((_, rest)) => (false, rest),
        None => (false, base),
    };
    let stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .map_err(|_| format!("connecting to {authority} timed out"))?
    .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = if tls_wanted {
        let connector = tls.ok_or_else(|| format!("{base}: an https endpoint needs a CA file"))?;
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
        Box::new(
            tokio::time::timeout(Duration::from_secs(5), connector.connect(name, stream))
                .await
                .map_err(|_| format!("TLS handshake with {authority} timed out"))?
                .map_err(|e| format!("TLS handshake with {authority} failed: {e}"))?,
        )
    } else {
        Box::new(stream)
    };
    let (sender, connection) = http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends `request` once the connection is ready and reads the whole answer.
async fn exchange(
    sender: &mut Sender,
    request: hyper::Request<Full<Bytes>>,
) -> std::result::Result<Response, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let etcd_index = response
        .headers()
        .get("x-etcd-index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Response {
        status,
        body,
        etcd_index,
    })
}

/// TLS settings for [`Connection`]s: a CA to trust and, optionally, a client certificate.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsConnector);

impl Tls {
    /// Trusts the CA certificates in `ca_file` (PEM) and presents `client_cert` (certificate
    /// and key PEM files), if given.
    pub fn new(ca_file: Option<&Path>, client_cert: Option<&(PathBuf, PathBuf)>) -> Result<Tls> {
        tls_connector(ca_file, client_cert)?
            .map(Tls)
            .ok_or_else(|| Error::Config("TLS needs a CA file or a client certificate".into()))
    }
}

/// An answer read off a [`Connection`].
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The whole body.
    pub body: Bytes,
    /// `X-Etcd-Index`, if the server sent it.
    pub etcd_index: Option<u64>,
}

/// One keep-alive HTTP/1.1 connection to one endpoint, owned by its caller: no pool, no
/// failover, no retries. For load generators and tools that want to control exactly which
/// connection each request uses; applications want [`crate::Client`].
pub struct Connection {
    sender: Sender,
    host: hyper::header::HeaderValue,
}

impl Connection {
    /// Connects to `endpoint` (`http://HOST:PORT`, `https://HOST:PORT` with `tls`, or
    /// `HOST:PORT`).
    pub async fn open(endpoint: &str, tls: Option<&Tls>) -> Result<Connection> {
        let base = endpoint.trim_end_matches('/');
        let sender = open(tls.map(|t| &t.0), base)
            .await
            .map_err(Error::Unavailable)?;
        let authority = base.split_once("://").map_or(base, |(_, r)| r);
        let host = hyper::header::HeaderValue::from_str(authority)
            .map_err(|e| Error::Config(format!("{authority}: {e}")))?;
        Ok(Connection { sender, host })
    }

    /// Sends one request (`path` with its query string; `form`, if given, is sent as
    /// `application/x-www-form-urlencoded`) and reads the whole answer. `Err` is
    /// [`Error::Unavailable`]: the connection failed and is of no further use.
    pub async fn request(
        &mut self,
        method: hyper::Method,
        path: &str,
        form: Option<Bytes>,
    ) -> Result<Response> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.host.clone());
        if form.is_some() {
            request = request.header(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let request = request
            .body(Full::new(form.unwrap_or_default()))
            .map_err(|e| Error::Config(e.to_string()))?;
        exchange(&mut self.sender, request)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// False once the server has closed the connection.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

/// The TLS connector for `https://` endpoints, if a CA or client certificate is given.
pub(crate) fn tls_connector(
    ca_file: Option<&Path>,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<Option<tokio_rustls::TlsConnector>> {
    Ok(tls_config(ca_file, client_cert, &[], false)?.map(tokio_rustls::TlsConnector::from))
}

/// A rustls client configuration trusting `ca_file` and presenting `client_cert`, offering
/// `alpn` (`h2` for gRPC); `None` when neither file is given.
pub(crate) fn tls_config(
    ca_file: Option<&Path>,
    client_cert: Option<&(PathBuf, PathBuf)>,
    alpn: &[&[u8]],
    skip_verify: bool,
) -> Result<Option<Arc<rustls::ClientConfig>>> {
    if ca_file.is_none() && client_cert.is_none() && !skip_verify {
        return Ok(None);
    }
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))
    };
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca_file {
        for cert in CertificateDer::pem_slice_iter(&read(ca)?) {
            let cert = cert.map_err(|e| Error::Config(format!("{}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("{}: {e}", ca.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Config(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| Error::Config(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if skip_verify {
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoVerify(provider)));
    }
    Ok(Some(Arc::new(config)))
}

/// etcdctl's `--insecure-skip-tls-verify`: any server certificate is taken (its signatures
/// over the handshake are still checked, so the connection is encrypted to whoever holds
/// it). For testing only, as etcdctl says.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
