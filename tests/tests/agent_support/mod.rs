//! Shared by the `agent_*` tests: a relay PKI that mints agent certificates with the cluster
//! identity names, and a minimal test-only relay server (tokio-rustls acceptor requiring client
//! certificates from the test root, a `Relay` service answering `Welcome` and echoing
//! heartbeats, recording which serials were presented and when streams opened and closed).
//!
//! The real relay server lives in `relay-issuer`; this one exists so the agent's tests do not
//! depend on it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use relay_issuer::pki::generate::{
    GeneratedKeyType, PkiSpec, generate_key, generate_pki, make_csr,
};
use relay_issuer::pki::{SignRequest, SigningCa, SigningPolicy, sign, spiffe_id};
use relay_proto::v1::relay_server::{Relay, RelayServer};
use relay_proto::{AgentMessage, ServerMessage, Welcome, agent_message};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

/// The trust domain of the test PKI.
pub const TRUST_DOMAIN: &str = "relay.local";

/// A root, an intermediate that signs agents, and a relay server certificate for 127.0.0.1 and
/// localhost.
pub struct Pki {
    pub root_pem: String,
    pub ca: SigningCa,
    pub server_chain_pem: String,
    pub server_key_pem: String,
}

/// An agent certificate.
#[derive(Clone)]
pub struct AgentCert {
    /// Leaf then intermediate, PEM (`tls.crt`).
    pub chain_pem: String,
    /// PKCS#8 PEM (`tls.key`).
    pub key_pem: String,
    /// Colon-separated hex.
    pub serial: String,
    pub not_after: time::OffsetDateTime,
}

impl Pki {
    pub fn new() -> Self {
        let now = time::OffsetDateTime::now_utc();
        let spec = PkiSpec {
            server_names: vec!["127.0.0.1".into(), "localhost".into()],
            ..PkiSpec::default()
        };
        let pki = generate_pki(&spec, now).unwrap();
        let ca = SigningCa::load(
            pki.intermediate.cert_pem.as_bytes(),
            pki.intermediate.key_pem.as_bytes(),
            Some(pki.root.cert_pem.as_bytes()),
            now,
        )
        .unwrap();
        let server = pki.server.unwrap();
        Self {
            root_pem: pki.root.cert_pem,
            ca,
            server_chain_pem: server.cert_pem,
            server_key_pem: server.key_pem,
        }
    }

    /// A client certificate for `cluster` valid for `lifetime` from now.
    pub fn agent(&self, cluster: &str, lifetime: time::Duration) -> AgentCert {
        let key = generate_key(GeneratedKeyType::P256).unwrap();
        let csr = make_csr(&key, cluster, &[], &[spiffe_id(TRUST_DOMAIN, cluster)]).unwrap();
        let usages = ["client auth".to_string(), "digital signature".to_string()];
        let issued = sign(
            &self.ca,
            &SignRequest {
                csr_pem: csr.as_bytes(),
                duration: Some(lifetime),
                is_ca: false,
                usages: &usages,
            },
            &SigningPolicy::default(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        AgentCert {
            chain_pem: issued.chain_pem,
            key_pem: key.serialize_pem(),
            serial: issued.serial,
            not_after: issued.not_after,
        }
    }

    /// The rustls server configuration of the test relay: client certificates required and
    /// verified against the root (expired ones refused), ALPN h2.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = relay_issuer::tls::root_store(self.root_pem.as_bytes(), "test root").unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .unwrap();
        let chain = pem_certs(&self.server_chain_pem);
        let key = pem_key(&self.server_key_pem);
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

pub fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    relay_issuer::pki::pem::parse_pem(pem.as_bytes())
        .unwrap()
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.der))
        .collect()
}

pub fn pem_key(pem: &str) -> PrivateKeyDer<'static> {
    let block = relay_issuer::pki::pem::parse_pem(pem.as_bytes())
        .unwrap()
        .into_iter()
        .find(|b| b.label == "PRIVATE KEY")
        .unwrap();
    PrivateKeyDer::Pkcs8(block.der.into())
}

/// The serial of a DER certificate, colon-separated hex (as the agent reports it).
pub fn serial_of(der: &[u8]) -> String {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    relay_issuer::pki::sign::colon_hex(cert.raw_serial())
}

/// What the test relay saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A TLS handshake was refused (e.g. an expired client certificate).
    HandshakeFailed(String),
    /// A Connect stream got its Welcome; the serial is the verified client certificate's.
    Opened { serial: String, cluster: String },
    /// A heartbeat was echoed on the stream of `serial`.
    Echoed { serial: String, sequence: u64 },
    /// The stream of `serial` ended (the agent closed its side).
    Closed { serial: String },
}

/// A TLS stream that tells tonic its client certificate's serial.
struct TlsIo(TlsStream<TcpStream>);

#[derive(Clone, Debug)]
struct PeerSerial(Option<String>);

impl Connected for TlsIo {
    type ConnectInfo = PeerSerial;

    fn connect_info(&self) -> PeerSerial {
        let (_, session) = self.0.get_ref();
        PeerSerial(
            session
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| serial_of(c)),
        )
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[derive(Clone)]
struct Service {
    seen: Arc<Mutex<Vec<Seen>>>,
    kill: watch::Receiver<bool>,
}

type OutStream = Pin<Box<dyn Stream<Item = Result<ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Relay for Service {
    type ConnectStream = OutStream;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<OutStream>, Status> {
        let serial = request
            .extensions()
            .get::<PeerSerial>()
            .and_then(|p| p.0.clone())
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<ServerMessage, Status>>(64);
        let seen = self.seen.clone();
        let mut kill = self.kill.clone();
        tokio::spawn(async move {
            let mut welcomed = false;
            loop {
                let message = tokio::select! {
                    () = async { let _ = kill.wait_for(|k| *k).await; } => {
                        let _ = tx.send(Err(Status::unavailable("relay server going away"))).await;
                        return;
                    }
                    message = inbound.message() => message,
                };
                match message {
                    Ok(Some(AgentMessage {
                        message: Some(agent_message::Message::Hello(hello)),
                    })) if !welcomed => {
                        welcomed = true;
                        seen.lock().unwrap().push(Seen::Opened {
                            serial: serial.clone(),
                            cluster: hello.cluster.clone(),
                        });
                        let welcome = ServerMessage::welcome(Welcome {
                            cluster: hello.cluster,
                            spiffe_id: spiffe_id(TRUST_DOMAIN, "test"),
                            certificate_serial: serial.clone(),
                            certificate_not_after_unix: hello.certificate_not_after_unix,
                            server_version: "test".into(),
                            heartbeat_interval_seconds: 0,
                        });
                        if tx.send(Ok(welcome)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(AgentMessage {
                        message: Some(agent_message::Message::Heartbeat(beat)),
                    })) if welcomed => {
                        seen.lock().unwrap().push(Seen::Echoed {
                            serial: serial.clone(),
                            sequence: beat.sequence,
                        });
                        let echo = ServerMessage::heartbeat(beat.sequence, beat.sent_unix_millis);
                        if tx.send(Ok(echo)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {
                        let _ = tx
                            .send(Err(Status::invalid_argument(
                                "Hello first, then heartbeats",
                            )))
                            .await;
                        return;
                    }
                    Ok(None) | Err(_) => {
                        seen.lock().unwrap().push(Seen::Closed { serial });
                        return;
                    }
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A running test relay server.
pub struct TestRelay {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    kill: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestRelay {
    /// Starts on an ephemeral loopback port.
    pub async fn start(pki: &Pki) -> Self {
        Self::start_on(pki, "127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    /// Starts on `addr`, appending to `seen`.
    pub async fn start_on(pki: &Pki, addr: SocketAddr, seen: Arc<Mutex<Vec<Seen>>>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()));
        let (kill, killed) = watch::channel(false);
        let (conn_tx, conn_rx) = mpsc::channel::<Result<TlsIo, std::io::Error>>(16);
        let accept_seen = seen.clone();
        let mut accept_kill = killed.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    () = async { let _ = accept_kill.wait_for(|k| *k).await; } => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let acceptor = acceptor.clone();
                let conn_tx = conn_tx.clone();
                let seen = accept_seen.clone();
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(tls) => {
                            let _ = conn_tx.send(Ok(TlsIo(tls))).await;
                        }
                        Err(error) => seen
                            .lock()
                            .unwrap()
                            .push(Seen::HandshakeFailed(error.to_string())),
                    }
                });
            }
        });
        let incoming = futures::stream::unfold(conn_rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let service = Service {
            seen: seen.clone(),
            kill: killed.clone(),
        };
        let mut shutdown = killed;
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(RelayServer::new(service))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = shutdown.wait_for(|k| *k).await;
                })
                .await;
        });
        Self {
            addr,
            seen,
            kill,
            task,
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Ends every stream with UNAVAILABLE, stops accepting and waits for the server to stop.
    pub async fn stop(self) {
        let _ = self.kill.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Serials of the Connect streams opened so far, in order.
    pub fn opened(&self) -> Vec<String> {
        opened(&self.seen())
    }
}

pub fn opened(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Opened { serial, .. } => Some(serial.clone()),
            _ => None,
        })
        .collect()
}

/// Polls `check` every 20 ms until it is true, panicking with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
