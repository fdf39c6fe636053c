//! The relay server's Prometheus metrics, registered under the `relay_server` prefix: connected
//! agents, handshakes and their failures by reason, connections the client closed mid-handshake, Connect refusals, sign requests by outcome,
//! the server certificate's expiry, and Secret reloads.
//!
//! What does not live here: serving them (`admin`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set: why something failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Low-cardinality reason.
    pub reason: String,
}

/// Label set: how far a handshake got.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `before_client_hello`, `before_server_flight` or `after_server_flight`.
    pub stage: String,
}

/// Label set: a RelayCluster status write.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusWriteLabels {
    /// `claim`, `update` or `clear`.
    pub kind: String,
    /// `written`, `superseded`, `gone`, `rejected` or `failed`.
    pub outcome: String,
}

/// Label set: a handshake's client authentication.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `certificate` (the client presented a verified certificate) or `none`.
    pub client: String,
}

/// Label set: a sign request's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignLabels {
    /// `issued`, or the refusal (`unauthenticated`, `permission_denied`, `not_registered`,
    /// `suspended`, `revoked`, …).
    pub outcome: String,
    /// `certificate` (renewal) or `token` (bootstrap), or `none` before authentication.
    pub auth: String,
}

/// Label set: a watched Secret and why its new data was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecretLabels {
    /// `server_tls`, `root_tls`, `signing` or `token`.
    pub secret: String,
    /// The problem label (empty for successful reloads).
    pub reason: String,
}

/// Every metric of the relay server. Clones share the same series.
#[derive(Clone, Default)]
pub struct ServerMetrics {
    /// `relay_server_connected_agents`: open Connect streams.
    pub connected_agents: Gauge,
    /// `relay_server_handshakes_total{client}`: completed TLS handshakes.
    pub handshakes: Family<HandshakeLabels, Counter>,
    /// `relay_server_handshake_failures_total{reason}`: failed TLS handshakes.
    pub handshake_failures: Family<ReasonLabels, Counter>,
    /// `relay_server_client_closed_connections_total{stage}`: connections the client closed or
    /// reset during the TLS handshake without an alert (TCP health checks, TLS probes that reset
    /// after the server's flight). Not counted as handshake failures.
    pub client_closed: Family<StageLabels, Counter>,
    /// `relay_server_connect_refusals_total{reason}`: Connect streams refused after the handshake.
    pub connect_refusals: Family<ReasonLabels, Counter>,
    /// `relay_server_streams_cut_total{reason}`: open Connect streams the server closed because
    /// their RelayCluster shut them out (`not_registered`: deleted, `suspended`, `revoked`).
    pub streams_cut: Family<ReasonLabels, Counter>,
    /// `relay_server_sign_requests_total{outcome,auth}`: SignCertificate calls.
    pub sign_requests: Family<SignLabels, Counter>,
    /// `relay_server_certificate_expiry_timestamp_seconds`: notAfter of the served certificate.
    pub certificate_expiry: Gauge,
    /// `relay_server_secret_reloads_total{secret,reason=""}`: new Secret data taken into use.
    pub secret_reloads: Family<SecretLabels, Counter>,
    /// `relay_server_secret_reload_failures_total{secret,reason}`: new Secret data refused (the
    /// previous data stays in use).
    pub secret_reload_failures: Family<SecretLabels, Counter>,
    /// `relay_server_status_writes_total{kind,outcome}`: RelayCluster status writes.
    pub status_writes: Family<StatusWriteLabels, Counter>,
    /// `relay_server_heartbeats_total`: agent heartbeats answered.
    pub heartbeats: Counter,
}

impl ServerMetrics {
    /// Creates the metrics and registers them in `registry` under `relay_server_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("relay_server");
        r.register(
            "connected_agents",
            "Open Connect streams",
            metrics.connected_agents.clone(),
        );
        r.register(
            "handshakes",
            "Completed TLS handshakes, by whether the client presented a certificate",
            metrics.handshakes.clone(),
        );
        r.register(
            "handshake_failures",
            "Failed TLS handshakes, by reason",
            metrics.handshake_failures.clone(),
        );
        r.register(
            "client_closed_connections",
            "Connections the client closed or reset during the TLS handshake without an alert (health checks, probes), by stage; not handshake failures",
            metrics.client_closed.clone(),
        );
        r.register(
            "connect_refusals",
            "Connect streams refused after the handshake, by reason",
            metrics.connect_refusals.clone(),
        );
        r.register(
            "sign_requests",
            "SignCertificate calls, by outcome and authentication",
            metrics.sign_requests.clone(),
        );
        r.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the server certificate in use (Unix seconds)",
            metrics.certificate_expiry.clone(),
        );
        r.register(
            "secret_reloads",
            "New Secret data taken into use",
            metrics.secret_reloads.clone(),
        );
        r.register(
            "secret_reload_failures",
            "New Secret data refused; the previous data stays in use",
            metrics.secret_reload_failures.clone(),
        );
        r.register(
            "streams_cut",
            "Open Connect streams the server closed because their RelayCluster shut them out (deleted, suspended, certificate revoked), by reason",
            metrics.streams_cut.clone(),
        );
        r.register(
            "status_writes",
            "RelayCluster status writes, by kind (claim, update, clear) and outcome (written, superseded, gone, rejected, failed)",
            metrics.status_writes.clone(),
        );
        r.register(
            "heartbeats",
            "Agent heartbeats answered",
            metrics.heartbeats.clone(),
        );
        metrics
    }

    /// Counts a failed handshake.
    pub fn handshake_failed(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a connection the client closed during the handshake.
    pub fn client_closed(&self, stage: &str) {
        self.client_closed
            .get_or_create(&StageLabels {
                stage: stage.to_string(),
            })
            .inc();
    }

    /// Counts a completed handshake.
    pub fn handshake_succeeded(&self, with_certificate: bool) {
        self.handshakes
            .get_or_create(&HandshakeLabels {
                client: if with_certificate {
                    "certificate"
                } else {
                    "none"
                }
                .into(),
            })
            .inc();
    }

    /// Counts a RelayCluster status write.
    pub fn status_write(&self, kind: &str, outcome: &str) {
        self.status_writes
            .get_or_create(&StatusWriteLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a refused Connect.
    pub fn connect_refused(&self, reason: &str) {
        self.connect_refusals
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a stream closed because its RelayCluster shut it out.
    pub fn stream_cut(&self, reason: &str) {
        self.streams_cut
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a SignCertificate call.
    pub fn sign_request(&self, outcome: &str, auth: &str) {
        self.sign_requests
            .get_or_create(&SignLabels {
                outcome: outcome.to_string(),
                auth: auth.to_string(),
            })
            .inc();
    }

    /// Counts new Secret data taken into use (`reason` empty) or refused.
    pub fn secret_reload(&self, secret: &str, refused: Option<&str>) {
        let labels = SecretLabels {
            secret: secret.to_string(),
            reason: refused.unwrap_or_default().to_string(),
        };
        match refused {
            None => self.secret_reloads.get_or_create(&labels).inc(),
            Some(_) => self.secret_reload_failures.get_or_create(&labels).inc(),
        };
    }
}
