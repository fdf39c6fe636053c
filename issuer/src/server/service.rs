//! The gRPC services: `RelayCertificates.SignCertificate` and `Relay.Connect`.
//!
//! Glue only: authentication facts come from the TLS layer (`tls::PeerInfo`) and the request
//! metadata, identities from `pki::identity`, decisions from `decide`, signing from `pki::sign`;
//! this module wires them and maps refusals to gRPC statuses and metrics.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::Stream;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};
use relay_proto::v1::relay_certificates_server::RelayCertificates;
use relay_proto::v1::relay_server::Relay;
use relay_proto::{
    AgentMessage, ServerMessage, SignCertificateRequest, SignCertificateResponse, Welcome,
    agent_message,
};
use time::OffsetDateTime;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, info_span, warn};

use super::auth::{FailureLimiter, TokenProblem, bearer_token, check_token};
use super::clusters::StatusWriter;
use super::decide::{
    Caller, Denied, Presented, Refusal, authorize_sign, check_access, check_hello, relay_usages,
    requested_ttl,
};
use super::gate::{AccessGate, Subscription};
use super::metrics::ServerMetrics;
use super::secrets::Material;
use super::tls::PeerInfo;
use crate::pki::csr::{csr_der_from_pem, read_csr};
use crate::pki::identity::validate_cluster_name;
use crate::pki::{self, CertificateTerms, SigningPolicy, csr_identity, peer_certificate};

/// How long an agent has to send its `Hello` after opening `Connect`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// What both services share.
#[derive(Clone)]
pub struct RelayService {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    trust_domain: String,
    heartbeat_interval: Duration,
    material: Arc<Material>,
    gate: Arc<AccessGate>,
    limiter: Mutex<FailureLimiter>,
    status: StatusWriter,
    metrics: ServerMetrics,
    recorder: Recorder,
    stopping: watch::Receiver<bool>,
}

/// Everything [`RelayService::new`] needs.
pub struct ServiceParts {
    /// The server's namespace (where RelayClusters live).
    pub namespace: String,
    /// The SPIFFE trust domain of agent identities.
    pub trust_domain: String,
    /// The heartbeat interval announced to agents.
    pub heartbeat_interval: Duration,
    /// The loaded Secrets.
    pub material: Arc<Material>,
    /// Registered clusters, and the channels that tell sessions when theirs changes.
    pub gate: Arc<AccessGate>,
    /// Failed token attempts allowed per address before limiting, and the refill period.
    pub token_failures: (u32, Duration),
    /// The RelayCluster status writer.
    pub status: StatusWriter,
    /// Metrics.
    pub metrics: ServerMetrics,
    /// Events on RelayClusters (a stream cut by its RelayCluster).
    pub recorder: Recorder,
    /// Becomes true when the server stops; open streams end with Unavailable.
    pub stopping: watch::Receiver<bool>,
}

impl RelayService {
    /// The services over shared state.
    pub fn new(parts: ServiceParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                namespace: parts.namespace,
                trust_domain: parts.trust_domain,
                heartbeat_interval: parts.heartbeat_interval,
                material: parts.material,
                gate: parts.gate,
                limiter: Mutex::new(FailureLimiter::new(
                    parts.token_failures.0,
                    parts.token_failures.1,
                )),
                status: parts.status,
                metrics: parts.metrics,
                recorder: parts.recorder,
                stopping: parts.stopping,
            }),
        }
    }
}

fn status_of(refusal: &Refusal) -> Status {
    let message = refusal.message().to_string();
    match refusal {
        Refusal::Unauthenticated(_) => Status::unauthenticated(message),
        Refusal::PermissionDenied(_) => Status::permission_denied(message),
        Refusal::InvalidArgument(_) => Status::invalid_argument(message),
        Refusal::RateLimited(_) => Status::resource_exhausted(message),
        Refusal::Unavailable(_) => Status::unavailable(message),
        Refusal::Denied(denied, _) if denied.is_credential() => Status::unauthenticated(message),
        Refusal::Denied(..) => Status::permission_denied(message),
    }
}

fn token_refusal(problem: TokenProblem, secret_hint: &str) -> Refusal {
    Refusal::Unauthenticated(match problem {
        TokenProblem::Missing => "no client certificate and no bootstrap token; send `authorization: Bearer <token>` with the token from relay-identity-token-secret, or call with the agent's current client certificate".to_string(),
        TokenProblem::Malformed => "the authorization metadata is not `Bearer <token>`".to_string(),
        TokenProblem::NotConfigured => format!("token bootstrap is disabled: the relay server has no token ({secret_hint} is missing or has no key \"token\"); renew with a client certificate instead"),
        TokenProblem::Wrong => "the bootstrap token is wrong; use the token from relay-identity-token-secret".to_string(),
    })
}

impl Inner {
    fn limiter(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Who is calling `SignCertificate`.
    fn authenticate(
        &self,
        peer: Option<&PeerInfo>,
        authorization: Option<&str>,
    ) -> Result<Caller, Refusal> {
        if let Some(leaf) = peer.and_then(PeerInfo::leaf) {
            return peer_certificate(leaf, &self.trust_domain)
                .map(|p| {
                    Caller::Certificate(
                        p.identity,
                        Presented {
                            serial: p.serial,
                            not_before: p.not_before,
                        },
                    )
                })
                .map_err(|e| {
                    Refusal::PermissionDenied(format!("the client certificate is verified but {e}"))
                });
        }
        let address: Option<IpAddr> = peer.map(|p| p.remote.ip());
        let now = Instant::now();
        if let Some(address) = address
            && let Err(wait) = self.limiter().check(address, now)
        {
            return Err(Refusal::RateLimited(format!(
                "too many failed bootstrap attempts from {address}; retry in {}s",
                wait.as_secs().max(1)
            )));
        }
        let configured = self.material.token.load_full();
        let checked = bearer_token(authorization)
            .and_then(|token| check_token(token, configured.as_deref().map(Vec::as_slice)));
        match checked {
            Ok(()) => Ok(Caller::Token),
            Err(problem) => {
                if let Some(address) = address {
                    self.limiter().record_failure(address, now);
                }
                Err(token_refusal(problem, "relay-identity-token-secret"))
            }
        }
    }

    fn sign(
        &self,
        caller: &Caller,
        request: &SignCertificateRequest,
    ) -> Result<SignCertificateResponse, Refusal> {
        fn invalid(e: impl std::fmt::Display) -> Refusal {
            Refusal::InvalidArgument(e.to_string())
        }
        validate_cluster_name(&request.cluster).map_err(invalid)?;
        let csr_der = csr_der_from_pem(request.csr_pem.as_bytes()).map_err(invalid)?;
        let csr = read_csr(&csr_der).map_err(invalid)?;
        let identity = csr_identity(&csr, &self.trust_domain).map_err(invalid)?;
        authorize_sign(
            caller,
            &request.cluster,
            &identity,
            self.gate.registration(&request.cluster).as_ref(),
            &self.namespace,
        )?;
        let usages = relay_usages(&csr).map_err(invalid)?;
        let ttl = requested_ttl(request.requested_duration_seconds).map_err(invalid)?;
        let Some(ca) = self.material.signing.load_full() else {
            let why = self
                .material
                .signing_problem
                .load_full()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "no signing CA is loaded yet".into());
            return Err(Refusal::Unavailable(format!(
                "the relay server cannot sign now: {why}; retry later"
            )));
        };
        let issued = pki::sign_csr(
            &ca,
            &csr,
            &CertificateTerms {
                duration: Some(ttl),
                is_ca: false,
                usages: &usages,
            },
            &SigningPolicy::default(),
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| {
            if e.is_request_fault() {
                Refusal::InvalidArgument(e.to_string())
            } else {
                Refusal::Unavailable(e.to_string())
            }
        })?;
        info!(cluster = %request.cluster, serial = %issued.serial, not_after = %pki::format_time(issued.not_after), "signed an agent certificate");
        Ok(SignCertificateResponse {
            message: issued.summary(),
            chain_pem: issued.chain_pem,
            ca_pem: issued.ca_pem,
            serial: issued.serial,
            not_after_unix: issued.not_after.unix_timestamp(),
        })
    }
}

#[tonic::async_trait]
impl RelayCertificates for RelayService {
    async fn sign_certificate(
        &self,
        request: Request<SignCertificateRequest>,
    ) -> Result<Response<SignCertificateResponse>, Status> {
        let inner = &self.inner;
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let span = info_span!("sign_certificate", cluster = %request.get_ref().cluster, namespace = %inner.namespace);
        let _entered = span.enter();
        let caller = match inner.authenticate(peer.as_ref(), authorization.as_deref()) {
            Ok(caller) => caller,
            Err(refusal) => {
                inner.metrics.sign_request(refusal.label(), "none");
                warn!(reason = refusal.label(), peer = ?peer.as_ref().map(|p| p.remote), "SignCertificate refused: {refusal}");
                return Err(status_of(&refusal));
            }
        };
        let auth = match caller {
            Caller::Certificate(..) => "certificate",
            Caller::Token => "token",
        };
        match inner.sign(&caller, request.get_ref()) {
            Ok(response) => {
                inner.metrics.sign_request("issued", auth);
                Ok(Response::new(response))
            }
            Err(refusal) => {
                inner.metrics.sign_request(refusal.label(), auth);
                warn!(
                    reason = refusal.label(),
                    auth, "SignCertificate refused: {refusal}"
                );
                Err(status_of(&refusal))
            }
        }
    }
}

/// The server side of a `Connect` stream.
pub type ConnectStream = Pin<Box<dyn Stream<Item = Result<ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Relay for RelayService {
    type ConnectStream = ConnectStream;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<ConnectStream>, Status> {
        let inner = self.inner.clone();
        let refuse = |reason: &str, status: Status| {
            inner.metrics.connect_refused(reason);
            debug!(reason, message = status.message(), "Connect refused");
            Err(status)
        };
        let peer_info = request.extensions().get::<PeerInfo>().cloned();
        let Some(leaf) = peer_info
            .as_ref()
            .and_then(|p| p.leaf().map(<[u8]>::to_vec))
        else {
            return refuse(
                "no_client_certificate",
                Status::unauthenticated(
                    "Connect needs a client certificate issued under relay-root-tls-secret; give the agent its relay-client-tls-secret",
                ),
            );
        };
        let peer = match peer_certificate(&leaf, &inner.trust_domain) {
            Ok(peer) => peer,
            Err(e) => {
                return refuse(
                    "identity_invalid",
                    Status::permission_denied(format!(
                        "the client certificate is verified but {e}"
                    )),
                );
            }
        };
        let presented = Presented {
            serial: peer.serial.clone(),
            not_before: peer.not_before,
        };
        // Followed from before the check, so that a change right after it still reaches the
        // session.
        let mut access = inner.gate.subscribe(&peer.identity.cluster);
        if let Err(denied) = check_access(access.current().as_ref(), Some(&presented)) {
            let refusal = denied.refusal(&peer.identity.cluster, &inner.namespace);
            return refuse(denied.label(), status_of(&refusal));
        }
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(AgentMessage {
                message: Some(agent_message::Message::Hello(hello)),
            }))) => hello,
            Ok(Ok(_)) | Err(_) => {
                return refuse(
                    "no_hello",
                    Status::invalid_argument(
                        "the first message on Connect must be Hello, sent at once",
                    ),
                );
            }
            Ok(Err(status)) => return Err(status),
        };
        if let Err(refusal) = check_hello(&peer.identity, &hello.cluster) {
            return refuse("hello_mismatch", status_of(&refusal));
        }
        let cluster = peer.identity.cluster.clone();
        let span = info_span!("connect", namespace = %inner.namespace, cluster = %cluster, serial = %peer.serial);
        let welcome = ServerMessage::welcome(Welcome {
            cluster: cluster.clone(),
            spiffe_id: peer.identity.spiffe_id.clone(),
            certificate_serial: peer.serial.clone(),
            certificate_not_after_unix: peer.not_after.unix_timestamp(),
            server_version: env!("CARGO_PKG_VERSION").to_string(),
            heartbeat_interval_seconds: u32::try_from(inner.heartbeat_interval.as_secs())
                .unwrap_or(u32::MAX),
        });
        let (root, issuer) = peer_info
            .map(|p| (p.client_root, p.client_issuer))
            .unwrap_or_default();
        inner.status.update(|book| {
            book.opened(
                &cluster,
                &peer.serial,
                peer.not_after,
                &hello.agent_version,
                OffsetDateTime::now_utc(),
            );
            book.anchored(&cluster, root, issuer);
        });
        inner.metrics.connected_agents.inc();
        info!(parent: &span, cluster = %cluster, serial = %peer.serial, agent_version = %hello.agent_version, not_after = %pki::format_time(peer.not_after), "agent connected");
        let session = Session {
            stopping: inner.stopping.clone(),
            inner,
            inbound,
            access,
            presented,
            cluster,
            welcome: Some(welcome),
            how: "closed by the agent",
            span,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            Some(session),
            Session::next,
        ))))
    }
}

/// One open `Connect` stream. The response stream itself reads the agent's messages and answers
/// them, so a session costs no task and no channel of its own (a relay server holds one per
/// agent); dropping it, when the agent goes away or the stream ends, records the disconnect.
struct Session {
    inner: Arc<Inner>,
    inbound: Streaming<AgentMessage>,
    /// The cluster's registration, followed for changes that shut the session out.
    access: Subscription,
    /// The certificate the session was opened with.
    presented: Presented,
    cluster: String,
    stopping: watch::Receiver<bool>,
    /// Sent first.
    welcome: Option<ServerMessage>,
    /// How the session ended, for the log.
    how: &'static str,
    span: tracing::Span,
}

impl Session {
    /// The next message to the agent; `None` ends the stream (and drops the session).
    async fn next(state: Option<Self>) -> Option<(Result<ServerMessage, Status>, Option<Self>)> {
        let mut session = state?;
        if let Some(welcome) = session.welcome.take() {
            return Some((Ok(welcome), Some(session)));
        }
        loop {
            let mut stopping = session.stopping.clone();
            tokio::select! {
                message = session.inbound.message() => match message {
                    Ok(Some(AgentMessage { message: Some(agent_message::Message::Heartbeat(beat)) })) => {
                        let inner = &session.inner;
                        inner.metrics.heartbeats.inc();
                        inner.status.update(|book| book.heard_from(&session.cluster, OffsetDateTime::now_utc()));
                        let echo = ServerMessage::heartbeat(beat.sequence, OffsetDateTime::now_utc().unix_timestamp() * 1000);
                        return Some((Ok(echo), Some(session)));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        session.how = "ended by the agent";
                        return None;
                    }
                    Err(_) => {
                        session.how = "broken";
                        return None;
                    }
                },
                registration = session.access.changed() => {
                    if let Err(denied) = check_access(registration.as_ref(), Some(&session.presented)) {
                        session.how = "closed by the server: its RelayCluster shuts it out";
                        let status = session.cut(&denied);
                        return Some((Err(status), None));
                    }
                }
                _ = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    session.how = "server stopping";
                    return Some((Err(Status::unavailable("the relay server is shutting down; reconnect")), None));
                }
            }
        }
    }
}

impl Session {
    /// Ends the session because its RelayCluster now shuts it out: counts it, says so in the log
    /// and, while the RelayCluster exists, in an event on it. Returns the status the stream
    /// ends with.
    fn cut(&self, denied: &Denied) -> Status {
        let inner = &self.inner;
        let refusal = denied.refusal(&self.cluster, &inner.namespace);
        inner.metrics.stream_cut(denied.label());
        warn!(parent: &self.span, reason = denied.label(), "closing the agent's stream: {refusal}");
        if let Some(cluster) = inner.gate.object(&self.cluster) {
            let recorder = inner.recorder.clone();
            let reference = cluster.object_ref(&());
            let event = Event {
                type_: EventType::Warning,
                reason: match denied {
                    Denied::Suspended => "StreamClosedSuspended",
                    Denied::Revoked { .. } => "StreamClosedRevoked",
                    Denied::NotRegistered => "StreamClosedDeregistered",
                }
                .into(),
                note: Some(format!(
                    "closed the agent's stream (certificate serial {}): {}",
                    self.presented.serial,
                    refusal.message()
                )),
                action: "CloseStream".into(),
                secondary: None,
            };
            tokio::spawn(async move {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    warn!(%error, "could not publish an event");
                }
            });
        }
        status_of(&refusal)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.inner.metrics.connected_agents.dec();
        self.inner
            .status
            .update(|book| book.closed(&self.cluster, OffsetDateTime::now_utc()));
        info!(parent: &self.span, how = self.how, "agent stream closed");
    }
}
