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

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::RootCertStore;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ServerConfig};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use super::metrics::ServerMetrics;
use crate::Error;
use crate::tls::ALPN_H2;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server certificate and client trust bundle in use, and the config built from them.
#[derive(Default)]
pub struct ServerTls {
    material: Mutex<Material>,
    config: ArcSwapOption<ServerConfig>,
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

    /// Verifies client certificates against `roots` on new handshakes from now on.
    pub fn set_roots(&self, roots: Arc<RootCertStore>) -> Result<(), Error> {
        let mut material = self.lock();
        let previous = material.roots.replace(roots);
        self.rebuild(&material).inspect_err(|_| {
            material.roots = previous;
        })
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

/// TLS 1.3 only, ALPN h2, client certificates optional (a bootstrap caller has none) but
/// verified against `roots` when presented, no resumption.
fn server_config(key: Arc<CertifiedKey>, roots: Arc<RootCertStore>) -> Result<ServerConfig, Error> {
    let verifier = WebPkiClientVerifier::builder(roots)
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Tls {
            what: "building the client certificate verifier from relay-root-tls-secret".into(),
            detail: e.to_string(),
        })?;
    let mut config = ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(FixedCertificate(key)));
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
    /// The verified client certificate chain (leaf first), when the client presented one.
    pub client_chain: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl PeerInfo {
    /// The verified client leaf certificate, DER.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.client_chain
            .as_ref()
            .and_then(|chain| chain.first())
            .map(|der| der.as_ref())
    }
}

/// A TLS connection that completed its handshake.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
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

/// A low-cardinality label for why a handshake failed.
pub fn handshake_failure_reason(error: &io::Error) -> &'static str {
    if error.kind() == io::ErrorKind::TimedOut {
        return "timeout";
    }
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return "io";
    };
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
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let handshake = TlsAcceptor::from(config).accept(tcp);
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    let reason = handshake_failure_reason(&error);
                    metrics.handshake_failed(reason);
                    debug!(%remote, reason, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.handshake_failed("timeout");
                    return;
                }
            };
            let client_chain = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect()));
            metrics.handshake_succeeded(client_chain.is_some());
            let connection = TlsConnection {
                stream,
                peer: PeerInfo {
                    remote,
                    client_chain,
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
    use time::OffsetDateTime;

    #[tokio::test]
    async fn readiness_waits_for_both_the_certificate_and_the_roots() {
        let now = OffsetDateTime::now_utc();
        let spec = PkiSpec {
            server_names: vec!["relay.example".into()],
            ..PkiSpec::default()
        };
        let pki = generate_pki(&spec, now).unwrap();
        let server = pki.server.unwrap();
        let pair = load_key_pair(
            Some(server.cert_pem.as_bytes()),
            Some(server.key_pem.as_bytes()),
            now,
        )
        .unwrap();

        let tls = Arc::new(ServerTls::default());
        let waiter = tokio::spawn({
            let tls = tls.clone();
            async move { tls.wait_until_ready().await }
        });
        tls.set_server_key(crate::tls::certified_key(&pair).unwrap())
            .unwrap();
        tokio::task::yield_now().await;
        assert!(!tls.is_ready() && !waiter.is_finished());
        tls.set_roots(crate::tls::root_store(pki.root.cert_pem.as_bytes(), "test").unwrap())
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("ready once both are loaded")
            .unwrap();
        assert!(tls.is_ready());
        // Already ready: the wait ends at once.
        tls.wait_until_ready().await;
    }
}
