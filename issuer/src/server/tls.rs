//! The relay server's TLS: the reloadable server certificate and client trust bundle, the
//! rustls configuration built from them, and the accept loop that hands verified connections to
//! tonic with the peer's certificate attached.
//!
//! Swapping material builds a new `ServerConfig`; each handshake takes the newest one, so new
//! connections get a new certificate at once while established ones keep running. Session
//! tickets and server-side session storage are off: every connection presents and verifies a
//! certificate in full, so an old client certificate cannot live on through resumption.
//! What does not live here: where the material comes from (`secrets`) and what a verified peer
//! may do (`service`, `decide`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::RootCertStore;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use super::metrics::ServerMetrics;
use crate::Error;
use crate::server::signatures;
use crate::tls::{ALPN_H2, relay_crypto_provider};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server certificate and client trust bundle in use, and the config built from them.
#[derive(Default)]
pub struct ServerTls {
    material: Mutex<Material>,
    config: ArcSwapOption<ServerConfig>,
    /// The roots of the trust bundle in use, for naming the root a client's chain hangs from.
    anchors: ArcSwap<Vec<RootAnchor>>,
    /// What [`ServerTls::chain_fingerprints`] found for the chains' upper certificates.
    chain_tops: Mutex<ChainTops>,
    /// Becomes true once a config exists (it never goes back: bad Secrets keep the old data).
    ready: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct Material {
    key: Option<Arc<CertifiedKey>>,
    roots: Option<Arc<RootCertStore>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("ready", &self.config.load().is_some())
            .finish()
    }
}

/// One root of the client trust bundle: its DER and fingerprint (`relay_pki::anchor`).
#[derive(Debug, Clone)]
pub struct RootAnchor {
    /// The root certificate, DER.
    pub der: Vec<u8>,
    /// Its SHA-256 fingerprint, shared by every session it anchors.
    pub fingerprint: Arc<str>,
}

impl RootAnchor {
    /// The roots of a `ca.crt` bundle (PEM CERTIFICATE blocks; other blocks are skipped, as
    /// the root store skips them).
    pub fn from_bundle(ca_crt: &[u8]) -> Vec<RootAnchor> {
        crate::pki::pem::parse_pem(ca_crt)
            .unwrap_or_default()
            .into_iter()
            .filter(|block| block.label == "CERTIFICATE")
            .map(|block| RootAnchor {
                fingerprint: crate::pki::anchor::fingerprint(&block.der).into(),
                der: block.der,
            })
            .collect()
    }
}

/// The root and issuer fingerprints found for the certificates above client leaves, for one
/// trust bundle. A fleet's agents share a handful of intermediates, so finding the root costs
/// one signature check per intermediate and bundle instead of one per handshake (9 % of a relay
/// server's CPU in a connect storm, measured). Forgotten when the bundle changes, and
/// when it holds more than [`CHAIN_TOPS_KEPT`] certificates (only certificates of chains the
/// handshake verified get here, but nothing bounds how many a CA issues).
#[derive(Default)]
struct ChainTops {
    /// The bundle the entries were found against.
    anchors: Option<Arc<Vec<RootAnchor>>>,
    /// The root (index into `anchors`) that issued a chain's top certificate, by its DER.
    roots: HashMap<Vec<u8>, Option<usize>>,
    /// The fingerprint of a chain's issuing certificate, by its DER.
    issuers: HashMap<Vec<u8>, Arc<str>>,
}

/// How many certificates [`ChainTops`] keeps per map before it starts over.
const CHAIN_TOPS_KEPT: usize = 256;

impl ChainTops {
    /// Starts over when `anchors` is not the bundle the entries were found against.
    fn for_bundle(&mut self, anchors: &Arc<Vec<RootAnchor>>) {
        if !self
            .anchors
            .as_ref()
            .is_some_and(|a| Arc::ptr_eq(a, anchors))
        {
            *self = ChainTops {
                anchors: Some(anchors.clone()),
                ..ChainTops::default()
            };
        }
    }

    fn root(&mut self, chain: &[&[u8]]) -> Option<usize> {
        let anchors = self.anchors.clone()?;
        let top = *chain.last()?;
        remembered(&mut self.roots, top, || {
            let roots: Vec<&[u8]> = anchors.iter().map(|a| a.der.as_slice()).collect();
            crate::pki::anchor::issuing_root(chain, &roots)
        })
    }

    fn issuer(&mut self, der: &[u8]) -> Arc<str> {
        remembered(&mut self.issuers, der, || {
            crate::pki::anchor::fingerprint(der).into()
        })
    }
}

/// What `map` holds for certificate `der`, else `find()`, then remembered (starting over when
/// the map holds [`CHAIN_TOPS_KEPT`]).
fn remembered<V: Clone>(map: &mut HashMap<Vec<u8>, V>, der: &[u8], find: impl FnOnce() -> V) -> V {
    if let Some(found) = map.get(der) {
        return found.clone();
    }
    let found = find();
    if map.len() >= CHAIN_TOPS_KEPT {
        map.clear();
    }
    map.insert(der.to_vec(), found.clone());
    found
}

/// Always answers with one certificate.
#[derive(Debug)]
struct FixedCertificate(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ServerTls {
    /// Serves `key` on new handshakes from now on.
    pub fn set_server_key(&self, key: Arc<CertifiedKey>) -> Result<(), Error> {
        let mut material = self.lock();
        let previous = material.key.replace(key);
        self.rebuild(&material).inspect_err(|_| {
            material.key = previous;
        })
    }

    /// Verifies client certificates against `roots` (whose certificates are `anchors`) on new
    /// handshakes from now on.
    pub fn set_roots(
        &self,
        roots: Arc<RootCertStore>,
        anchors: Vec<RootAnchor>,
    ) -> Result<(), Error> {
        let mut material = self.lock();
        let previous = material.roots.replace(roots);
        self.rebuild(&material).inspect_err(|_| {
            material.roots = previous;
        })?;
        self.anchors.store(Arc::new(anchors));
        Ok(())
    }

    /// The fingerprints of the root that issued `chain` (DER, leaf first) among the trust
    /// bundle's roots, and of the chain's issuing certificate (the second one) when sent.
    pub fn chain_fingerprints(&self, chain: &[&[u8]]) -> (Option<Arc<str>>, Option<Arc<str>>) {
        let anchors = self.anchors.load_full();
        let mut tops = self
            .chain_tops
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tops.for_bundle(&anchors);
        let root = tops
            .root(chain)
            .and_then(|index| anchors.get(index))
            .map(|anchor| anchor.fingerprint.clone());
        let issuer = chain.get(1).map(|der| tops.issuer(der));
        (root, issuer)
    }

    /// The config new handshakes use; `None` until both a certificate and roots are known.
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        self.config.load_full()
    }

    /// Whether both the server certificate and the trust bundle are loaded.
    pub fn is_ready(&self) -> bool {
        self.config.load().is_some()
    }

    /// Completes once both the server certificate and the trust bundle are loaded.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives in `self`, so the wait can only end by becoming ready.
        let _ = ready.wait_for(|ready| *ready).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Material> {
        self.material.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn rebuild(&self, material: &Material) -> Result<(), Error> {
        let (Some(key), Some(roots)) = (&material.key, &material.roots) else {
            return Ok(());
        };
        let config = server_config(key.clone(), roots.clone())?;
        self.config.store(Some(Arc::new(config)));
        self.ready.send_replace(true);
        Ok(())
    }
}

/// TLS 1.3 only, AES-128-GCM-SHA256 first, ALPN h2, client certificates optional (a bootstrap
/// caller has none) but verified against `roots` when presented, certificate signatures
/// checked once per process (`signatures`), no resumption.
fn server_config(key: Arc<CertifiedKey>, roots: Arc<RootCertStore>) -> Result<ServerConfig, Error> {
    let mut provider = relay_crypto_provider();
    provider.signature_verification_algorithms = signatures::remembering_algorithms();
    let provider = Arc::new(provider);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Tls {
            what: "building the client certificate verifier from relay-root-tls-secret".into(),
            detail: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls {
            what: "setting up TLS 1.3 for the relay server".into(),
            detail: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(FixedCertificate(key)));
    // The relay suite order decides whatever the client lists first (`relay_crypto_provider`).
    config.ignore_client_order = true;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    Ok(config)
}

/// What tonic hands each request about its connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// The verified client leaf certificate (DER), when the client presented one. Only the
    /// leaf: the services need nothing else, and each open connection keeps this copy.
    pub client_leaf: Option<Arc<[u8]>>,
    /// The fingerprint of the trust-bundle root the client's chain hangs from.
    pub client_root: Option<Arc<str>>,
    /// The fingerprint of the certificate that issued the client's leaf, when sent.
    pub client_issuer: Option<Arc<str>>,
}

impl PeerInfo {
    /// The verified client leaf certificate, DER.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.client_leaf.as_deref()
    }
}

/// A TLS connection that completed its handshake.
pub struct TlsConnection {
    stream: TlsStream<Counted<TcpStream>>,
    peer: PeerInfo,
}

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// How far a handshake got, as seen from the socket: what the server read and wrote before it
/// ended. Kept beside the connection (not derived from rustls' state, which the failed
/// handshake takes with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeProgress {
    /// Bytes read from the client.
    pub read: u64,
    /// Bytes written to the client (the server's flight: ServerHello … Finished, or an alert).
    pub written: u64,
}

/// How a handshake that did not complete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeEnd {
    /// A real failure (`relay_server_handshake_failures_total{reason}`): TLS refused the
    /// client or the client refused us with an alert, or the connection broke otherwise.
    Failed(&'static str),
    /// The client closed or reset the connection without a TLS alert
    /// (`relay_server_client_closed_connections_total{stage}`): a TCP health check, or a client
    /// such as `openssl s_time` or a load balancer's TLS probe that completes its side of the
    /// handshake and then resets. Not a failure of the server or of the client's credentials.
    ClosedByClient(&'static str),
}

/// Stage label: the client closed before sending anything (a TCP probe).
pub const CLOSED_BEFORE_CLIENT_HELLO: &str = "before_client_hello";
/// Stage label: the client closed after its first bytes, before the server answered.
pub const CLOSED_BEFORE_SERVER_FLIGHT: &str = "before_server_flight";
/// Stage label: the client closed after the server's whole flight, which is all a client needs
/// to complete the handshake on its side.
pub const CLOSED_AFTER_SERVER_FLIGHT: &str = "after_server_flight";

/// Classifies a handshake that ended with `error` after `progress`.
pub fn handshake_end(error: &io::Error, progress: HandshakeProgress) -> HandshakeEnd {
    if error.kind() == io::ErrorKind::TimedOut {
        return HandshakeEnd::Failed("timeout");
    }
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return HandshakeEnd::Failed(tls_failure_reason(tls));
    }
    let closed = matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    );
    match (closed, progress) {
        (false, _) => HandshakeEnd::Failed("io"),
        (true, HandshakeProgress { read: 0, .. }) => {
            HandshakeEnd::ClosedByClient(CLOSED_BEFORE_CLIENT_HELLO)
        }
        (true, HandshakeProgress { written: 0, .. }) => {
            HandshakeEnd::ClosedByClient(CLOSED_BEFORE_SERVER_FLIGHT)
        }
        (true, _) => HandshakeEnd::ClosedByClient(CLOSED_AFTER_SERVER_FLIGHT),
    }
}

/// A low-cardinality label for a TLS-level handshake failure.
fn tls_failure_reason(tls: &rustls::Error) -> &'static str {
    match tls {
        // A chain to an unknown root, or one whose signatures do not verify under a root of
        // the same name (another CA with the same subject).
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => "untrusted_client_certificate",
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "expired_client_certificate",
        rustls::Error::InvalidCertificate(_) => "invalid_client_certificate",
        rustls::Error::NoApplicationProtocol => "no_alpn",
        rustls::Error::PeerIncompatible(_) => "incompatible_client",
        rustls::Error::AlertReceived(_) => "client_alert",
        _ => "tls_error",
    }
}

/// A socket that counts what passes through it, so that a failed handshake can say how far it
/// got ([`HandshakeProgress`]).
pub struct Counted<S> {
    inner: S,
    progress: HandshakeProgress,
}

impl<S> Counted<S> {
    /// Wraps `inner` with nothing counted yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            progress: HandshakeProgress::default(),
        }
    }

    /// What has passed so far.
    pub fn progress(&self) -> HandshakeProgress {
        self.progress
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        self.progress.read = self.progress.read.saturating_add(read as u64);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = &polled {
            self.progress.written = self.progress.written.saturating_add(*written as u64);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = &polled {
            self.progress.written = self.progress.written.saturating_add(*written as u64);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections, completes TLS handshakes with the newest config and sends the
/// connections to `connections` until the receiver is dropped.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    metrics: ServerMetrics,
    connections: mpsc::Sender<Result<TlsConnection, io::Error>>,
) {
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accepting a relay connection failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if connections.is_closed() {
            return;
        }
        let Some(config) = tls.current() else {
            metrics.handshake_failed("server_not_ready");
            debug!(%remote, "refusing a connection: no server certificate or trust bundle yet");
            continue;
        };
        let sender = connections.clone();
        let metrics = metrics.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let handshake = TlsAcceptor::from(config)
                .accept(Counted::new(tcp))
                .into_fallible();
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err((error, socket))) => {
                    match handshake_end(&error, socket.progress()) {
                        HandshakeEnd::Failed(reason) => {
                            metrics.handshake_failed(reason);
                            debug!(%remote, reason, %error, "TLS handshake failed");
                        }
                        HandshakeEnd::ClosedByClient(stage) => {
                            metrics.client_closed(stage);
                            debug!(%remote, stage, "the client closed the connection during the TLS handshake");
                        }
                    }
                    return;
                }
                Err(_) => {
                    metrics.handshake_failed("timeout");
                    return;
                }
            };
            let chain: Vec<&[u8]> = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.as_ref()).collect())
                .unwrap_or_default();
            let client_leaf = chain.first().map(|leaf| Arc::<[u8]>::from(*leaf));
            let (client_root, client_issuer) = if chain.is_empty() {
                (None, None)
            } else {
                tls.chain_fingerprints(&chain)
            };
            drop(chain);
            metrics.handshake_succeeded(client_leaf.is_some());
            let connection = TlsConnection {
                stream,
                peer: PeerInfo {
                    remote,
                    client_leaf,
                    client_root,
                    client_issuer,
                },
            };
            let _ = sender.send(Ok(connection)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::generate::{PkiSpec, generate_pki};
    use crate::pki::load_key_pair;
    use rustls_pki_types::CertificateDer;
    use time::OffsetDateTime;

    fn progress(read: u64, written: u64) -> HandshakeProgress {
        HandshakeProgress { read, written }
    }

    #[test]
    fn a_client_that_closes_without_an_alert_is_not_a_failure() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            let error = io::Error::from(kind);
            assert_eq!(
                handshake_end(&error, progress(0, 0)),
                HandshakeEnd::ClosedByClient("before_client_hello"),
                "{kind:?}"
            );
            assert_eq!(
                handshake_end(&error, progress(517, 0)),
                HandshakeEnd::ClosedByClient("before_server_flight"),
                "{kind:?}"
            );
            assert_eq!(
                handshake_end(&error, progress(517, 1400)),
                HandshakeEnd::ClosedByClient("after_server_flight"),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn tls_refusals_timeouts_and_other_io_errors_are_failures() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let cases = [
            (
                tls(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                )),
                "untrusted_client_certificate",
            ),
            (
                tls(rustls::Error::InvalidCertificate(
                    CertificateError::BadSignature,
                )),
                "untrusted_client_certificate",
            ),
            (
                tls(rustls::Error::InvalidCertificate(CertificateError::Expired)),
                "expired_client_certificate",
            ),
            (
                tls(rustls::Error::InvalidCertificate(CertificateError::Revoked)),
                "invalid_client_certificate",
            ),
            (tls(rustls::Error::NoApplicationProtocol), "no_alpn"),
            (
                tls(rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate,
                )),
                "client_alert",
            ),
            (tls(rustls::Error::DecryptError), "tls_error"),
            (io::Error::from(io::ErrorKind::TimedOut), "timeout"),
            (io::Error::from(io::ErrorKind::OutOfMemory), "io"),
        ];
        for (error, reason) in cases {
            // However far the handshake got, these stay failures.
            for at in [progress(0, 0), progress(517, 0), progress(517, 1400)] {
                assert_eq!(
                    handshake_end(&error, at),
                    HandshakeEnd::Failed(reason),
                    "{error:?} at {at:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn counted_sockets_count_both_directions() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(64);
        let mut counted = Counted::new(near);
        counted.write_all(b"server flight").await.unwrap();
        far.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        counted.read_exact(&mut buf).await.unwrap();
        assert_eq!(counted.progress(), progress(5, 13));
    }

    /// A fresh relay PKI with a server certificate for relay.example: the root (PEM) and the
    /// server's rustls key.
    fn relay_example_pki() -> (String, Arc<CertifiedKey>) {
        let (pki, server_key) = relay_example_pki_whole();
        (pki.root.cert_pem, server_key)
    }

    /// [`relay_example_pki`], with the whole PKI generated (root, intermediate, server).
    fn relay_example_pki_whole() -> (crate::pki::generate::GeneratedPki, Arc<CertifiedKey>) {
        let now = OffsetDateTime::now_utc();
        let spec = PkiSpec {
            server_names: vec!["relay.example".into()],
            ..PkiSpec::default()
        };
        let pki = generate_pki(&spec, now).unwrap();
        let server = pki.server.as_ref().unwrap();
        let pair = load_key_pair(
            Some(server.cert_pem.as_bytes()),
            Some(server.key_pem.as_bytes()),
            now,
        )
        .unwrap();
        let server_key = crate::tls::certified_key(&pair).unwrap();
        (pki, server_key)
    }

    /// Makes `bundle` the trust bundle `tls` uses.
    fn trust(tls: &ServerTls, bundle: &str) {
        tls.set_roots(
            crate::tls::root_store(bundle.as_bytes(), "test").unwrap(),
            RootAnchor::from_bundle(bundle.as_bytes()),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn readiness_waits_for_both_the_certificate_and_the_roots() {
        let (root_pem, server_key) = relay_example_pki();
        let tls = Arc::new(ServerTls::default());
        let waiter = tokio::spawn({
            let tls = tls.clone();
            async move { tls.wait_until_ready().await }
        });
        tls.set_server_key(server_key).unwrap();
        tokio::task::yield_now().await;
        assert!(!tls.is_ready() && !waiter.is_finished());
        trust(&tls, &root_pem);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("ready once both are loaded")
            .unwrap();
        assert!(tls.is_ready());
        // Already ready: the wait ends at once.
        tls.wait_until_ready().await;
    }

    #[test]
    fn the_server_picks_aes_128_gcm_sha256_whatever_the_client_lists_first() {
        let (root_pem, server_key) = relay_example_pki();
        let tls = ServerTls::default();
        tls.set_server_key(server_key).unwrap();
        trust(&tls, &root_pem);

        // ring's own order, AES-256-GCM-SHA384 first, as a client built on it lists them.
        let client_provider = rustls::crypto::ring::default_provider();
        assert_eq!(
            client_provider.cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        let mut client_config =
            rustls::ClientConfig::builder_with_provider(Arc::new(client_provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(
                    crate::tls::root_store(root_pem.as_bytes(), "test").unwrap(),
                )
                .with_no_client_auth();
        client_config.alpn_protocols = vec![b"h2".to_vec()];
        let (client, server) = handshake(&tls, client_config);
        for suite in [
            client.negotiated_cipher_suite(),
            server.negotiated_cipher_suite(),
        ] {
            assert_eq!(
                suite.map(|s| s.suite()),
                Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
            );
        }
    }

    /// The rustls key of a client certificate for cluster-a from `pki`'s intermediate (its chain:
    /// the leaf, then the intermediate), as the agent loads it.
    fn agent_key(pki: &crate::pki::generate::GeneratedPki) -> Arc<CertifiedKey> {
        use relay_pki::test_support::{CsrSpec, mk_csr};
        let now = OffsetDateTime::now_utc();
        let ca = crate::pki::SigningCa::load(
            pki.intermediate.cert_pem.as_bytes(),
            pki.intermediate.key_pem.as_bytes(),
            Some(pki.root.cert_pem.as_bytes()),
            now,
        )
        .unwrap();
        let (csr, key) = mk_csr(&CsrSpec::default());
        let usages = vec!["client auth".to_string(), "digital signature".to_string()];
        let issued = crate::pki::sign(
            &ca,
            &crate::pki::SignRequest {
                csr_pem: csr.as_bytes(),
                duration: None,
                is_ca: false,
                usages: &usages,
            },
            &crate::pki::SigningPolicy::default(),
            now,
        )
        .unwrap();
        let pair = load_key_pair(
            Some(issued.chain_pem.as_bytes()),
            Some(key.serialize_pem().as_bytes()),
            now,
        )
        .unwrap();
        crate::tls::certified_key(&pair).unwrap()
    }

    /// A client with `client_config` for relay.example and a server with `tls`'s configuration,
    /// after a TLS handshake in memory.
    fn handshake(
        tls: &ServerTls,
        client_config: rustls::ClientConfig,
    ) -> (rustls::ClientConnection, rustls::ServerConnection) {
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_config),
            "relay.example".try_into().unwrap(),
        )
        .unwrap();
        let mut server = rustls::ServerConnection::new(tls.current().unwrap()).unwrap();
        let mut wire = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            wire.clear();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            wire.clear();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        (client, server)
    }

    #[test]
    fn an_agents_intermediate_is_checked_against_the_root_once() {
        let (pki, server_key) = relay_example_pki_whole();
        let tls = ServerTls::default();
        tls.set_server_key(server_key).unwrap();
        trust(&tls, &pki.root.cert_pem);
        // The agent's own client configuration, with a certificate from the intermediate.
        let client_config = crate::tls::client_config(
            crate::tls::root_store(pki.root.cert_pem.as_bytes(), "test").unwrap(),
            Some(agent_key(&pki)),
        );

        // The check of the intermediate's signature by the root, as webpki makes it.
        let der = |pem: &str| {
            rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
                .map(|der: CertificateDer<'static>| der.to_vec())
                .unwrap()
        };
        let (root_der, intermediate_der) =
            (der(&pki.root.cert_pem), der(&pki.intermediate.cert_pem));
        let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
        let (_, intermediate) = x509_parser::parse_x509_certificate(&intermediate_der).unwrap();
        let intermediates_check = (
            root.public_key().subject_public_key.data.to_vec(),
            intermediate.tbs_certificate.as_ref().to_vec(),
            intermediate.signature_value.data.to_vec(),
        );
        let remembered = || {
            let (key, message, signature) = &intermediates_check;
            signatures::remembers(key, message, signature)
        };
        assert!(!remembered(), "a new PKI's check is not remembered yet");

        for _ in 0..2 {
            let (_, server) = handshake(&tls, client_config.clone());
            assert_eq!(server.peer_certificates().map(<[_]>::len), Some(2));
            assert!(
                remembered(),
                "the server remembers the intermediate's check"
            );
        }
    }

    fn sha256_hex(der: &[u8]) -> String {
        ring::digest::digest(&ring::digest::SHA256, der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn chain_fingerprints_follow_the_trust_bundle_in_use() {
        let now = OffsetDateTime::now_utc();
        let spec = PkiSpec {
            server_names: vec!["relay.example".into()],
            ..PkiSpec::default()
        };
        let (a, b) = (
            generate_pki(&spec, now).unwrap(),
            generate_pki(&spec, now).unwrap(),
        );
        let der = |pem: &str| {
            crate::pki::pem::parse_pem(pem.as_bytes()).unwrap()[0]
                .der
                .clone()
        };
        let leaf = der(&a.server.as_ref().unwrap().cert_pem);
        let intermediate = der(&a.intermediate.cert_pem);
        let chain = [leaf.as_slice(), intermediate.as_slice()];
        let root_a = sha256_hex(&der(&a.root.cert_pem));
        let tls = ServerTls::default();
        let found = |tls: &ServerTls| {
            let (root, issuer) = tls.chain_fingerprints(&chain);
            (root.map(|r| r.to_string()), issuer.map(|i| i.to_string()))
        };
        let issuer = Some(sha256_hex(&intermediate));

        trust(&tls, &format!("{}{}", b.root.cert_pem, a.root.cert_pem));
        for _ in 0..2 {
            assert_eq!(found(&tls), (Some(root_a.clone()), issuer.clone()));
        }
        // A bundle without the chain's root: found again, not remembered from before.
        trust(&tls, &b.root.cert_pem);
        assert_eq!(found(&tls), (None, issuer.clone()));
        trust(&tls, &a.root.cert_pem);
        assert_eq!(found(&tls), (Some(root_a), issuer));
    }
}
