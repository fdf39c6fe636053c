//! The gRPC client: keeps the agent's `Connect` stream to the relay server.
//!
//! One session is one TLS connection (through [`TlsConnector`]) carrying one `Connect` stream:
//! the agent sends `Hello` (cluster, version, the serial and notAfter of the certificate its
//! handshake presented), waits for `Welcome`, then sends a heartbeat every
//! `heartbeat_interval` and counts the server's echoes.
//!
//! - A broken stream, or a heartbeat not echoed within `heartbeat_timeout`, ends the session;
//!   the client reconnects after a jittered exponential delay ([`crate::backoff`]) that starts
//!   over only once a connection stayed up for the stable period. A new certificate arriving
//!   while it waits cuts the wait short (the server may have refused an expired one).
//! - When the provider swaps the certificate, the client moves **make-before-break**: it opens a
//!   second session with the new certificate while the old one keeps heartbeating, and only
//!   after the new session's `Welcome` does it stop the old one, waiting for the old
//!   session's heartbeats in flight to be echoed before closing it.
//! - An expired certificate does not end a live session (the TLS session stays valid); only a
//!   reconnect needs a valid one.
//!
//! Every failure is counted in `relay_agent_rpc_failures_total`: a failed attempt, a broken
//! stream, and each heartbeat that was never echoed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use relay_proto::v1::relay_client::RelayClient;
use relay_proto::{AgentMessage, Hello, ServerMessage, Welcome, server_message};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::Error;
use crate::backoff::{Backoff, BackoffPolicy, random_unit};
use crate::connector::{Target, TlsConnector};
use crate::metrics::Metrics;
use crate::provider::{ClientCertificate, Provider};
use crate::readiness::ConnectionStatus;

/// The agent's version, sent in `Hello`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a closing session waits for the server to end its stream after the agent ended
/// its own.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Room for messages queued to the server (Hello plus heartbeats).
const OUTBOUND_QUEUE: usize = 16;

/// How the client connects and heartbeats.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The relay server.
    pub target: Arc<Target>,
    /// The cluster name sent in `Hello` (`--cluster`).
    pub cluster: String,
    /// How often a heartbeat is sent (shortened to the server's `Welcome` interval when that
    /// is shorter).
    pub heartbeat_interval: Duration,
    /// How long a heartbeat may wait for its echo before the session is declared dead.
    pub heartbeat_timeout: Duration,
    /// Limit on each of: TCP + TLS + HTTP/2 set-up, the `Connect` call, and `Welcome`.
    pub connect_timeout: Duration,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
    /// `namespace/name` of the client certificate Secret, for messages.
    pub secret: String,
    /// `namespace/name` of the root Secret, for messages.
    pub root_secret: String,
}

/// One established `Connect` stream.
struct Session {
    outbound: Option<mpsc::Sender<AgentMessage>>,
    inbound: tonic::Streaming<ServerMessage>,
    _channel: Channel,
    certificate: Arc<ClientCertificate>,
    welcome: Welcome,
    next_sequence: u64,
    pending: VecDeque<(u64, Instant)>,
}

impl Session {
    /// Queues the next heartbeat.
    fn send_heartbeat(&mut self) -> Result<(), Error> {
        let Some(outbound) = &self.outbound else {
            return Ok(());
        };
        self.next_sequence += 1;
        let sequence = self.next_sequence;
        let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let message = AgentMessage::heartbeat(sequence, i64::try_from(millis).unwrap_or(i64::MAX));
        match outbound.try_send(message) {
            Ok(()) => {
                self.pending.push_back((sequence, Instant::now()));
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Error::Timeout {
                what: "sending a heartbeat (the outbound queue is full)",
                seconds: 0.0,
            }),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::StreamEnded {
                detail: "the request stream is closed".into(),
            }),
        }
    }

    /// Handles a server message; returns how many heartbeats it acknowledged.
    fn receive(&mut self, message: ServerMessage) -> u64 {
        match message.message {
            Some(server_message::Message::Heartbeat(beat)) => {
                match self.pending.iter().position(|(s, _)| *s == beat.sequence) {
                    Some(index) => {
                        // Older heartbeats still waiting stay pending: they time out and are
                        // counted as failures if their echo never comes.
                        self.pending.remove(index);
                        1
                    }
                    None => {
                        debug!(
                            sequence = beat.sequence,
                            "heartbeat from the server (not an echo of ours)"
                        );
                        0
                    }
                }
            }
            Some(server_message::Message::Welcome(_)) => {
                debug!("a second Welcome on the same stream; ignored");
                0
            }
            None => 0,
        }
    }

    /// Whether the oldest heartbeat waits longer than `timeout` for its echo.
    fn overdue(&self, now: Instant, timeout: Duration) -> bool {
        self.pending
            .front()
            .is_some_and(|(_, sent)| now.saturating_duration_since(*sent) > timeout)
    }

    /// Forgets the heartbeats still waiting; returns how many there were (each a failure).
    fn abandon_pending(&mut self) -> u64 {
        let n = self.pending.len() as u64;
        self.pending.clear();
        n
    }

    /// Stops heartbeating, waits up to `timeout` for the echoes in flight, then ends the stream
    /// and drops the connection. Unechoed heartbeats are counted as failures.
    async fn close(mut self, timeout: Duration, metrics: Metrics) {
        let deadline = Instant::now() + timeout;
        let mut ended = false;
        while !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, self.inbound.message()).await {
                Ok(Ok(Some(message))) => {
                    metrics.heartbeats.inc_by(self.receive(message));
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let lost = self.abandon_pending();
        if lost > 0 {
            metrics.rpc_failures.inc_by(lost);
            warn!(
                serial = %self.certificate.serial,
                lost,
                "closing the old connection: {lost} heartbeat(s) were never echoed"
            );
        }
        // Ending our side lets the server end its stream cleanly.
        self.outbound = None;
        if !ended {
            let grace = Instant::now() + CLOSE_GRACE;
            while let Ok(Ok(Some(_))) = tokio::time::timeout_at(grace, self.inbound.message()).await
            {
            }
        }
        info!(serial = %self.certificate.serial, "closed the relay connection that used certificate serial {}", self.certificate.serial);
    }
}

/// Everything a session set-up needs, shared by the client loop and the make-before-break
/// attempts.
struct Shared {
    settings: ClientSettings,
    provider: Arc<Provider>,
}

/// Opens a session: TLS connection, `Connect` stream, `Hello`, `Welcome`.
async fn establish(shared: Arc<Shared>) -> Result<Session, Error> {
    let settings = &shared.settings;
    if shared.provider.current().is_none() {
        return Err(Error::NoCertificate {
            secret: settings.secret.clone(),
        });
    }
    if shared.provider.roots().is_none() {
        return Err(Error::NoRoots {
            secret: settings.root_secret.clone(),
        });
    }
    let target = &settings.target;
    let connector = TlsConnector::new(shared.provider.clone(), target.clone());
    let presented = connector.presented();
    let endpoint = Endpoint::from_shared(target.address.clone())
        .map_err(|e| Error::RelayAddress {
            address: target.address.clone(),
            detail: error_chain(&e),
        })?
        .connect_timeout(settings.connect_timeout);
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| Error::Connect {
            address: target.address.clone(),
            detail: error_chain(&e),
        })?;
    let certificate = presented.get().ok_or_else(|| Error::Connect {
        address: target.address.clone(),
        detail: "the handshake presented no client certificate".into(),
    })?;
    let (outbound, requests) = mpsc::channel(OUTBOUND_QUEUE);
    let hello = AgentMessage::hello(Hello {
        cluster: settings.cluster.clone(),
        agent_version: AGENT_VERSION.to_string(),
        certificate_serial: certificate.serial.clone(),
        certificate_not_after_unix: certificate.not_after.unix_timestamp(),
    });
    outbound.try_send(hello).map_err(|_| Error::StreamEnded {
        detail: "the request stream closed before Hello".into(),
    })?;
    let seconds = settings.connect_timeout.as_secs_f64();
    let mut client = RelayClient::new(channel.clone());
    let response = tokio::time::timeout(
        settings.connect_timeout,
        client.connect(ReceiverStream::new(requests)),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: "opening the Connect stream",
        seconds,
    })?
    .map_err(|status| Error::refused(&status))?;
    let mut inbound = response.into_inner();
    let first = tokio::time::timeout(settings.connect_timeout, inbound.message())
        .await
        .map_err(|_| Error::Timeout {
            what: "waiting for Welcome",
            seconds,
        })?
        .map_err(|status| Error::refused(&status))?;
    let welcome = match first {
        Some(ServerMessage {
            message: Some(server_message::Message::Welcome(welcome)),
        }) => welcome,
        Some(other) => {
            return Err(Error::Protocol {
                detail: format!("expected Welcome as the first message, got {other:?}"),
            });
        }
        None => {
            return Err(Error::StreamEnded {
                detail: "the server ended the stream before Welcome".into(),
            });
        }
    };
    if welcome.certificate_serial != certificate.serial {
        warn!(
            presented = %certificate.serial,
            authenticated = %welcome.certificate_serial,
            "the server authenticated a different certificate serial than the one presented"
        );
    }
    if welcome.cluster != settings.cluster {
        warn!(
            cluster = %settings.cluster,
            server_says = %welcome.cluster,
            "the server authenticated a different cluster than --cluster"
        );
    }
    Ok(Session {
        outbound: Some(outbound),
        inbound,
        _channel: channel,
        certificate,
        welcome,
        next_sequence: 0,
        pending: VecDeque::new(),
    })
}

/// An error and its sources on one line (tonic's transport errors keep the cause in sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a connected phase ended.
enum Ended {
    Shutdown,
    Lost(Error),
}

type Attempt = Pin<Box<dyn Future<Output = Result<Session, Error>> + Send>>;

/// The relay connection: runs until shut down, reconnecting as needed.
pub struct RelayConnection {
    shared: Arc<Shared>,
    metrics: Metrics,
    status: watch::Sender<ConnectionStatus>,
}

impl RelayConnection {
    /// A client with `settings`, presenting the provider's certificates, reporting into
    /// `metrics` and `status`.
    pub fn new(
        settings: ClientSettings,
        provider: Arc<Provider>,
        metrics: Metrics,
        status: watch::Sender<ConnectionStatus>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared { settings, provider }),
            metrics,
            status,
        }
    }

    fn set_status(&self, status: ConnectionStatus) {
        self.metrics.connection_state.set(i64::from(matches!(
            status,
            ConnectionStatus::Connected { .. }
        )));
        self.status.send_replace(status);
    }

    /// Keeps the relay connection until `shutdown` completes, then closes it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let provider = self.shared.provider.clone();
        let mut generations = provider.subscribe();
        let mut roots = provider.subscribe_roots();
        let mut backoff = Backoff::new(self.shared.settings.backoff);
        let mut lost_reason: Option<&'static str> = None;
        loop {
            if provider.current().is_none() || provider.roots().is_none() {
                let waiting = if provider.current().is_none() {
                    Error::NoCertificate {
                        secret: self.shared.settings.secret.clone(),
                    }
                } else {
                    Error::NoRoots {
                        secret: self.shared.settings.root_secret.clone(),
                    }
                };
                info!("{waiting}");
                self.set_status(ConnectionStatus::Disconnected {
                    reason: waiting.to_string(),
                });
                tokio::select! {
                    () = &mut shutdown => return,
                    _ = generations.changed() => {}
                    _ = roots.changed() => {}
                }
                continue;
            }
            generations.borrow_and_update();
            self.set_status(ConnectionStatus::Connecting);
            let attempt = tokio::select! {
                () = &mut shutdown => return,
                attempt = establish(self.shared.clone()) => attempt,
            };
            let error = match attempt {
                Ok(session) => {
                    if let Some(reason) = lost_reason.take() {
                        self.metrics.count_reconnect(reason);
                    }
                    match self
                        .connected(session, &mut backoff, &mut generations, &mut shutdown)
                        .await
                    {
                        Ended::Shutdown => return,
                        Ended::Lost(error) => {
                            lost_reason = Some(error.metric_label());
                            error
                        }
                    }
                }
                Err(error) => {
                    self.metrics.rpc_failures.inc();
                    error
                }
            };
            if let Some(code) = error.refusal_code() {
                self.metrics.count_refusal(code);
            }
            let delay = backoff.next_delay(random_unit());
            warn!(
                reason = error.metric_label(),
                delay_seconds = delay.as_secs_f64(),
                "reconnecting in {:.1}s because {error}",
                delay.as_secs_f64()
            );
            self.set_status(ConnectionStatus::Disconnected {
                reason: format!("{error} (next attempt in {:.1}s)", delay.as_secs_f64()),
            });
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => {}
                changed = generations.changed() => {
                    if changed.is_ok() {
                        info!("a new client certificate arrived; reconnecting now");
                    }
                }
            }
        }
    }

    /// Runs an established session (and the ones that replace it on certificate swaps) until
    /// it is lost or `shutdown` completes.
    async fn connected(
        &self,
        session: Session,
        backoff: &mut Backoff,
        generations: &mut watch::Receiver<u64>,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Ended {
        let settings = &self.shared.settings;
        let mut active = session;
        backoff.connected(Instant::now().into_std());
        self.on_connected(&active, None);
        let interval = effective_interval(settings.heartbeat_interval, &active.welcome);
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut candidate: Option<Attempt> = None;
        let mut candidate_backoff = Backoff::new(settings.backoff);
        let mut closing = JoinSet::new();
        let ended = loop {
            // `Some(error)`: the active session is lost.
            let lost: Option<Error> = tokio::select! {
                () = shutdown.as_mut() => break Ended::Shutdown,
                _ = ticks.tick() => {
                    if active.overdue(Instant::now(), settings.heartbeat_timeout) {
                        self.metrics.rpc_failures.inc_by(active.abandon_pending());
                        Some(Error::Timeout {
                            what: "waiting for a heartbeat echo",
                            seconds: settings.heartbeat_timeout.as_secs_f64(),
                        })
                    } else if let Err(error) = active.send_heartbeat() {
                        self.metrics.rpc_failures.inc_by(active.abandon_pending().max(1));
                        Some(error)
                    } else {
                        None
                    }
                }
                message = active.inbound.message() => match message {
                    Ok(Some(message)) => {
                        self.metrics.heartbeats.inc_by(active.receive(message));
                        None
                    }
                    Ok(None) => {
                        self.metrics.rpc_failures.inc_by(1 + active.abandon_pending());
                        Some(Error::StreamEnded {
                            detail: "the server closed the stream".into(),
                        })
                    }
                    Err(status) => {
                        self.metrics.rpc_failures.inc_by(1 + active.abandon_pending());
                        let refused = Error::refused(&status);
                        if refused.refusal_code().is_some() {
                            // The server closed the stream because of who we are (cluster
                            // suspended or deregistered, certificate revoked): say so.
                            Some(refused)
                        } else {
                            Some(Error::StreamEnded {
                                detail: format!("{:?}: {}", status.code(), error_chain(&status)),
                            })
                        }
                    }
                },
                changed = generations.changed(), if candidate.is_none() => {
                    if changed.is_ok() {
                        let generation = *generations.borrow_and_update();
                        if generation != active.certificate.generation {
                            info!(
                                serial = %active.certificate.serial,
                                "new client certificate (generation {generation}): opening a new connection before closing the one with serial {}",
                                active.certificate.serial
                            );
                            candidate = Some(Box::pin(establish(self.shared.clone())));
                        }
                    }
                    None
                }
                result = async {
                    match candidate.as_mut() {
                        Some(attempt) => attempt.await,
                        None => std::future::pending().await,
                    }
                } => {
                    candidate = None;
                    match result {
                        Ok(new) => {
                            let old = std::mem::replace(&mut active, new);
                            self.metrics.count_reconnect("certificate_swap");
                            backoff.connected(Instant::now().into_std());
                            candidate_backoff = Backoff::new(settings.backoff);
                            self.on_connected(&active, Some(&old.certificate.serial));
                            closing.spawn(old.close(settings.heartbeat_timeout, self.metrics.clone()));
                        }
                        Err(error) => {
                            self.metrics.rpc_failures.inc();
                            let delay = candidate_backoff.next_delay(random_unit());
                            warn!(
                                reason = error.metric_label(),
                                serial = %active.certificate.serial,
                                "could not open a connection with the new certificate, keeping the current one and retrying in {:.1}s: {error}",
                                delay.as_secs_f64()
                            );
                            let shared = self.shared.clone();
                            candidate = Some(Box::pin(async move {
                                tokio::time::sleep(delay).await;
                                establish(shared).await
                            }));
                        }
                    }
                    None
                }
                Some(_) = closing.join_next(), if !closing.is_empty() => None,
            };
            let Some(error) = lost else { continue };
            // Lost while a connection with a new certificate is opening: that one may take
            // over rather than starting again from nothing.
            let Some(attempt) = candidate.take() else {
                break Ended::Lost(error);
            };
            warn!(
                reason = error.metric_label(),
                "the relay connection with serial {} was lost ({error}) while the new one opens; waiting for it",
                active.certificate.serial
            );
            let replacement = tokio::select! {
                () = shutdown.as_mut() => break Ended::Shutdown,
                result = attempt => result,
            };
            match replacement {
                Ok(new) => {
                    let old = std::mem::replace(&mut active, new);
                    drop(old);
                    self.metrics.count_reconnect(error.metric_label());
                    backoff.connected(Instant::now().into_std());
                    candidate_backoff = Backoff::new(settings.backoff);
                    self.on_connected(&active, None);
                }
                Err(failed) => {
                    self.metrics.rpc_failures.inc();
                    warn!(
                        reason = failed.metric_label(),
                        "the new connection failed too: {failed}"
                    );
                    break Ended::Lost(error);
                }
            }
        };
        backoff.disconnected(Instant::now().into_std());
        match &ended {
            Ended::Shutdown => {
                info!(serial = %active.certificate.serial, "shutting down: closing the relay connection");
                self.set_status(ConnectionStatus::Disconnected {
                    reason: "shutting down".into(),
                });
                let grace = settings.heartbeat_timeout.min(Duration::from_secs(5));
                active.close(grace, self.metrics.clone()).await;
            }
            Ended::Lost(_) => drop(active),
        }
        // Let old sessions finish closing (bounded by their own timeouts).
        while closing.join_next().await.is_some() {}
        ended
    }

    fn on_connected(&self, session: &Session, replaced: Option<&str>) {
        let serial = &session.certificate.serial;
        match replaced {
            Some(previous) => info!(
                from = %previous,
                to = %serial,
                "swapped the relay connection from certificate serial {previous} to {serial} (new connection up before the old one closes)"
            ),
            None => info!(
                %serial,
                cluster = %session.welcome.cluster,
                server_version = %session.welcome.server_version,
                "connected to the relay server with certificate serial {serial}"
            ),
        }
        self.set_status(ConnectionStatus::Connected {
            serial: serial.clone(),
        });
    }
}

/// The heartbeat interval: ours, or the server's when it asks for more frequent heartbeats.
fn effective_interval(configured: Duration, welcome: &Welcome) -> Duration {
    let asked = Duration::from_secs(u64::from(welcome.heartbeat_interval_seconds));
    let interval = if asked.is_zero() {
        configured
    } else {
        configured.min(asked)
    };
    interval.max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_may_shorten_the_heartbeat_interval_but_not_lengthen_it() {
        let welcome = |seconds| Welcome {
            heartbeat_interval_seconds: seconds,
            ..Welcome::default()
        };
        let ten = Duration::from_secs(10);
        assert_eq!(effective_interval(ten, &welcome(0)), ten);
        assert_eq!(effective_interval(ten, &welcome(5)), Duration::from_secs(5));
        assert_eq!(effective_interval(ten, &welcome(30)), ten);
        assert_eq!(
            effective_interval(Duration::ZERO, &welcome(0)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn error_chains_keep_every_distinct_cause() {
        let inner = std::io::Error::other("connection refused");
        let outer = Error::Connect {
            address: "https://x:1".into(),
            detail: "TCP".into(),
        };
        assert!(error_chain(&inner).contains("connection refused"));
        assert!(error_chain(&outer).contains("https://x:1"));
    }
}
