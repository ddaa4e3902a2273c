//! TLS for the client API, the peer API and outgoing peer connections (rustls with the `ring`
//! provider; no OpenSSL).
//!
//! - A side (client or peer) with a certificate and key serves HTTPS only.
//! - With a CA file too, that side requires a client certificate signed by one of the CAs in
//!   the file; a connection without one, or with one from another CA, fails at the handshake.
//! - A member presents its peer certificate as its client certificate when it connects to
//!   other members. It verifies their certificates against `-serverCAFile`; without that file
//!   it does not verify them (etcd v0.1's behaviour), and says so at start-up.
//!
//! Everything is checked before the node starts: files readable, certificates and keys
//! parseable, the key matching the certificate, the certificate within its validity period. Each
//! error names the flag and the file.
//!
//! Not here: binding listeners (`server.rs`), HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::config::TlsFiles;

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS configuration problem, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("-{flag}: cannot read {path}: {source}")]
    Read {
        /// The flag that names the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file holds nothing usable.
    #[error("-{flag}: {path}: {reason}")]
    Invalid {
        /// The flag that names the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("-{key_flag} {key} does not match the certificate in -{cert_flag} {cert}")]
    Mismatch {
        /// Key flag.
        key_flag: &'static str,
        /// Key file.
        key: PathBuf,
        /// Certificate flag.
        cert_flag: &'static str,
        /// Certificate file.
        cert: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration for -{flag}: {reason}")]
    Config {
        /// The certificate flag of the side.
        flag: &'static str,
        /// What rustls said.
        reason: String,
    },
}

/// Which side a [`TlsFiles`] belongs to, for messages.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// `-clientCert`, `-clientKey`, `-clientCAFile`.
    Client,
    /// `-serverCert`, `-serverKey`, `-serverCAFile`.
    Peer,
}

impl Side {
    fn flags(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Side::Client => ("clientCert", "clientKey", "clientCAFile"),
            Side::Peer => ("serverCert", "serverKey", "serverCAFile"),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })
}

fn certs(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(flag, path)?;
    let invalid = |reason: String| Error::Invalid {
        flag,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Loads a side's certificate chain and key, checking that they match and that the
/// certificate is valid now.
fn certified_key(
    files: &TlsFiles,
    side: Side,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let (cert_flag, key_flag, _) = side.flags();
    let cert_path = files
        .cert
        .as_deref()
        .expect("validated: cert and key come together");
    let key_path = files
        .key
        .as_deref()
        .expect("validated: cert and key come together");
    let chain = certs(cert_flag, cert_path)?;
    let key_pem = read(key_flag, key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Invalid {
        flag: key_flag,
        path: key_path.to_path_buf(),
        reason: format!("no usable private key: {e}"),
    })?;
    let now = crate::clock::now() / 1_000_000_000;
    match validity(&chain[0]) {
        Some((not_before, not_after)) => {
            let at = |secs: i64| {
                etcd_api::time::format_rfc3339_nanos(secs.saturating_mul(1_000_000_000))
            };
            let invalid = |reason: String| Error::Invalid {
                flag: cert_flag,
                path: cert_path.to_path_buf(),
                reason,
            };
            if now > not_after {
                return Err(invalid(format!(
                    "the certificate expired on {}",
                    at(not_after)
                )));
            }
            if now < not_before {
                return Err(invalid(format!(
                    "the certificate is not valid before {}",
                    at(not_before)
                )));
            }
        }
        None => {
            return Err(Error::Invalid {
                flag: cert_flag,
                path: cert_path.to_path_buf(),
                reason: "the certificate does not parse".into(),
            })
        }
    }
    match CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()) {
        Ok(_) => Ok((chain, key)),
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::Mismatch {
            key_flag,
            key: key_path.to_path_buf(),
            cert_flag,
            cert: cert_path.to_path_buf(),
        }),
        Err(e) => Err(Error::Invalid {
            flag: key_flag,
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

fn roots(flag: &'static str, path: &Path) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in certs(flag, path)? {
        store.add(cert).map_err(|e| Error::Invalid {
            flag,
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(store)
}

/// The server configuration of a side, or `None` if it has no TLS.
pub fn server_config(files: &TlsFiles, side: Side) -> Result<Option<Arc<ServerConfig>>, Error> {
    if files.cert.is_none() {
        return Ok(None);
    }
    let (cert_flag, _, ca_flag) = side.flags();
    let (chain, key) = certified_key(files, side)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config {
            flag: cert_flag,
            reason: e.to_string(),
        })?;
    let builder = match &files.ca {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca_flag, ca)?),
                provider(),
            )
            .build()
            .map_err(|e| Error::Config {
                flag: ca_flag,
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config {
            flag: cert_flag,
            reason: e.to_string(),
        })?;
    // h2 for gRPC (grpc-go refuses TLS without it), http/1.1 for everything else.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The configuration for connecting to other members: present the peer certificate; verify
/// theirs against the CA file if there is one.
pub fn peer_client_config(files: &TlsFiles) -> Result<Option<Arc<ClientConfig>>, Error> {
    if files.cert.is_none() {
        return Ok(None);
    }
    let (chain, key) = certified_key(files, Side::Peer)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config {
            flag: "serverCert",
            reason: e.to_string(),
        })?;
    let builder = match &files.ca {
        Some(ca) => builder.with_root_certificates(roots("serverCAFile", ca)?),
        None => {
            tracing::warn!("no -serverCAFile: other members' certificates are not verified");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServerCert(
                    provider().signature_verification_algorithms,
                )))
        }
    };
    let config = builder
        .with_client_auth_cert(chain, key)
        .map_err(|e| Error::Config {
            flag: "serverCert",
            reason: e.to_string(),
        })?;
    Ok(Some(Arc::new(config)))
}

/// Accepts any server certificate, but still checks the handshake signatures (so the peer
/// holds the key of the certificate it shows). Used for peers only without `-serverCAFile`.
#[derive(Debug)]
struct AnyServerCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A listener whose connections are TLS streams. Handshakes run concurrently, so a slow or
/// hostile client cannot hold up others; failed handshakes are logged and dropped.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: JoinSet<Option<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)>>,
    what: &'static str,
}

impl TlsListener {
    /// Wraps a bound listener; `what` names it in logs ("client", "peer").
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, what: &'static str) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            handshakes: JoinSet::new(),
            what,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let acceptor = self.acceptor.clone();
                        let what = self.what;
                        self.handshakes.spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => Some((tls, addr)),
                                Ok(Err(e)) => {
                                    tracing::warn!(%addr, "TLS handshake on the {what} listener failed: {e}");
                                    None
                                }
                                Err(_) => {
                                    tracing::warn!(%addr, "TLS handshake on the {what} listener timed out");
                                    None
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// The fields of a DER certificate's `tbsCertificate` from `validity` on (validity, subject,
/// …), past the optional version, serial number, signature algorithm and issuer.
fn from_validity(der: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2; // version
    }
    rest = tlv(rest)?.2; // serial number
    rest = tlv(rest)?.2; // signature algorithm
    Some(tlv(rest)?.2) // issuer
}

/// The validity period (notBefore, notAfter) of a DER certificate, in Unix seconds.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, validity, _) = tlv(from_validity(der)?)?;
    let (tag_nb, not_before, rest) = tlv(validity)?;
    let (tag_na, not_after, _) = tlv(rest)?;
    Some((
        asn1_time(tag_nb, not_before)?,
        asn1_time(tag_na, not_after)?,
    ))
}

/// One DER tag-length-value: (tag, value, rest).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let value = b.get(header..header.checked_add(len)?)?;
    Some((tag, value, &b[header + len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) to Unix seconds.
fn asn1_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(0..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// The subject common name (OID 2.5.4.3) of a DER certificate, if it has one. A minimal DER
/// walk over `Certificate → tbsCertificate → subject`; anything unexpected gives `None`.
pub fn common_name(der: &[u8]) -> Option<String> {
    let rest = tlv(from_validity(der)?)?.2; // validity
    let (_, mut subject, _) = tlv(rest)?;
    while !subject.is_empty() {
        let (_, mut set, next) = tlv(subject)?;
        subject = next;
        while !set.is_empty() {
            let (_, atv, next) = tlv(set)?;
            set = next;
            let (_, oid, value) = tlv(atv)?;
            if oid == [0x55, 0x04, 0x03] {
                let (_, s, _) = tlv(value)?;
                return String::from_utf8(s.to_vec()).ok();
            }
        }
    }
    None
}

/// The certificate common name of the connection a request came on, when the client API is
/// HTTPS and the client presented a verified certificate (set by the TLS listener; the v2
/// auth check reads it).
#[derive(Clone, Debug, Default)]
pub struct ClientCn(pub Option<String>);

/// A plain TCP listener whose connections send without Nagle's delay, as Go's (and so
/// etcd's) do: an answer goes out at once, not after the ACK of the previous segment.
pub struct PlainListener(pub TcpListener);

impl axum::serve::Listener for PlainListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        let _ = stream.set_nodelay(true);
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The client certificate name of a TLS connection (when the client presented one).
pub fn client_cn(stream: &tokio_rustls::server::TlsStream<TcpStream>) -> ClientCn {
    let (_, conn) = stream.get_ref();
    let cn = conn
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|c| common_name(c.as_ref()));
    ClientCn(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/ca")
            .join(name)
    }

    fn files(cert: &str, key: &str, ca: Option<&str>) -> TlsFiles {
        TlsFiles {
            cert: Some(fixture(cert)),
            key: Some(fixture(key)),
            ca: ca.map(fixture),
        }
    }

    #[test]
    fn asn1_times_convert_to_unix_seconds() {
        assert_eq!(asn1_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(asn1_time(0x17, b"010101000000Z"), Some(978_307_200));
        assert_eq!(asn1_time(0x18, b"20000229120000Z"), Some(951_825_600));
        assert_eq!(asn1_time(0x18, b"2126"), None);
    }

    #[test]
    fn fixture_certificates_load_and_bad_ones_are_named() {
        assert!(server_config(
            &files("server.crt", "server.key.insecure", Some("ca.crt")),
            Side::Client
        )
        .unwrap()
        .is_some());
        assert!(
            peer_client_config(&files("server.crt", "server.key.insecure", None))
                .unwrap()
                .is_some()
        );
        let e = server_config(
            &files("server.crt", "client.key.insecure", None),
            Side::Client,
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = server_config(
            &files("expired.crt", "expired.key.insecure", None),
            Side::Peer,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("expired on 2001-01-01T00:00:00Z"),
            "{e}"
        );
        assert!(e.to_string().starts_with("-serverCert"), "{e}");
        let e = server_config(
            &files("nope.crt", "server.key.insecure", None),
            Side::Client,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("-clientCert: cannot read")
                && e.to_string().contains("nope.crt"),
            "{e}"
        );
        let e = server_config(
            &files("server.key.insecure", "server.key.insecure", None),
            Side::Client,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
    }

    #[test]
    fn validity_of_the_fixtures() {
        let der = certs("x", &fixture("expired.crt")).unwrap();
        assert_eq!(validity(&der[0]), Some((946_684_800, 978_307_200)));
        let der = certs("x", &fixture("server.crt")).unwrap();
        let (nb, na) = validity(&der[0]).unwrap();
        assert!(nb < na && na > 4_000_000_000, "{nb} {na}");
    }
}

#[cfg(test)]
mod cn_tests {
    use base64::Engine as _;

    fn der(pem: &str) -> Vec<u8> {
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    }

    #[test]
    fn common_names_come_out_of_the_fixture_certificates() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/ca/");
        for (file, cn) in [
            ("client.crt", "client"),
            ("client2.crt", "client2"),
            ("ca.crt", "etcd-rs test CA"),
        ] {
            let pem = std::fs::read_to_string(format!("{root}{file}")).expect("fixture");
            assert_eq!(
                super::common_name(&der(&pem)).as_deref(),
                Some(cn),
                "{file}"
            );
        }
        assert_eq!(super::common_name(b"\x30\x03\x02\x01"), None);
        assert_eq!(super::common_name(b""), None);
    }
}
