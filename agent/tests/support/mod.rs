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
use relay_agent::Provider;
use relay_pki::{SigningCa, spiffe_id};
use relay_proto::v1::relay_server::{Relay, RelayServer};
use relay_proto::{AgentMessage, ServerMessage, Welcome, agent_message};
use relay_sandbox::relay::{self, RelayPki};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

/// The trust domain of the test PKI.
pub use relay_sandbox::relay::TRUST_DOMAIN;

/// An agent certificate: `pem.chain` (leaf then intermediate, `tls.crt`), `pem.key` (PKCS#8,
/// `tls.key`), its serial (colon-separated hex) and notAfter.
pub type AgentCert = relay::Issued;

/// The relay test PKI ([`RelayPki`]: a root, an intermediate that signs agents, and a relay
/// server certificate for 127.0.0.1 and localhost) with its signing CA loaded.
pub struct Pki {
    relay: RelayPki,
    ca: SigningCa,
}

impl Pki {
    /// A fresh PKI.
    pub fn new() -> Self {
        let relay = RelayPki::new().unwrap();
        let ca = relay.ca().unwrap();
        Self { relay, ca }
    }

    /// The root, PEM (`ca.crt`).
    pub fn root_pem(&self) -> &str {
        &self.relay.root
    }

    /// A root store holding the root.
    pub fn roots(&self) -> Arc<RootCertStore> {
        relay_runtime::tls::root_store(self.root_pem().as_bytes(), "test root").unwrap()
    }

    /// A client certificate for `cluster` valid for `lifetime` from now.
    pub fn agent(&self, cluster: &str, lifetime: time::Duration) -> AgentCert {
        relay::issue_agent(&self.ca, cluster, lifetime).unwrap()
    }

    /// The rustls server configuration of the test relay: client certificates required and
    /// verified against the root (expired ones refused), ALPN h2.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider.clone())
            .build()
            .unwrap();
        let key = self.relay.server.certified_key().unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
        config.alpn_protocols = vec![b"h2".to_vec()];
        config
    }
}

/// Puts `cert` in service in `provider`.
pub fn swap_in(provider: &Provider, cert: &AgentCert) {
    provider.swap(&cert.pem.key_pair().unwrap()).unwrap();
}

/// The serial of a DER certificate, colon-separated hex (as the agent reports it).
pub fn serial_of(der: &[u8]) -> String {
    relay::serial_of(der).unwrap()
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
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw, in order (shared with a relay started on the same `seen`).
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

    /// A copy of what it saw so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Serials of the Connect streams opened so far, in order.
    pub fn opened(&self) -> Vec<String> {
        opened(&self.seen())
    }
}

/// Serials of the Connect streams opened in `seen`, in order.
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
