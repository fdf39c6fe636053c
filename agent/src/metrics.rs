//! The agent's Prometheus metrics, registered under the `relay_agent` prefix: the certificate's
//! expiry, swaps and rejections, and the relay connection's state, reconnects, heartbeats and
//! failures.
//!
//! What does not live here: serving them (`relay_runtime::admin`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set: why something happened (a low-cardinality label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// e.g. `expired`, `key_mismatch`, `stream_ended`, `certificate_swap`.
    pub reason: String,
}

/// Every metric of the agent. Cloning is cheap: clones share the series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// `relay_agent_certificate_expiry_timestamp_seconds`: notAfter of the certificate in use.
    pub certificate_expiry: Gauge,
    /// `relay_agent_certificate_swaps_total`: certificates replaced by a new one (the first
    /// certificate loaded is not a swap).
    pub certificate_swaps: Counter,
    /// `relay_agent_certificate_rejected_total{reason}`: Secret versions refused (the last good
    /// certificate or trust bundle stayed in use).
    pub certificate_rejected: Family<ReasonLabels, Counter>,
    /// `relay_agent_connection_state`: 1 while a `Connect` stream is established, else 0.
    pub connection_state: Gauge,
    /// `relay_agent_reconnects_total{reason}`: new connections opened after the first, by why.
    pub reconnects: Family<ReasonLabels, Counter>,
    /// `relay_agent_heartbeats_total`: heartbeats the server acknowledged.
    pub heartbeats: Counter,
    /// `relay_agent_rpc_failures_total`: failed connection attempts, broken streams and
    /// heartbeats never acknowledged.
    pub rpc_failures: Counter,
    /// `relay_agent_refusals_total{code}`: connections the relay server refused or closed
    /// because of who the agent is (`permission_denied`: cluster not registered, suspended, or
    /// another cluster; `unauthenticated`: certificate not accepted, e.g. revoked).
    pub refusals: Family<CodeLabels, Counter>,
}

/// Label set: a gRPC status code, snake case.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// e.g. `permission_denied`, `unauthenticated`.
    pub code: String,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `relay_agent_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let r = registry.sub_registry_with_prefix("relay_agent");
        r.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the client certificate in use, seconds since the Unix epoch",
            metrics.certificate_expiry.clone(),
        );
        r.register(
            "certificate_swaps",
            "Client certificates replaced by a new one (the first certificate loaded is not counted)",
            metrics.certificate_swaps.clone(),
        );
        r.register(
            "certificate_rejected",
            "Secret versions refused (the last good certificate or trust bundle stays in use), by reason",
            metrics.certificate_rejected.clone(),
        );
        r.register(
            "connection_state",
            "1 while a Connect stream to the relay server is established, else 0",
            metrics.connection_state.clone(),
        );
        r.register(
            "reconnects",
            "Connections to the relay server opened after the first one, by reason",
            metrics.reconnects.clone(),
        );
        r.register(
            "heartbeats",
            "Heartbeats acknowledged by the relay server",
            metrics.heartbeats.clone(),
        );
        r.register(
            "rpc_failures",
            "Failed connection attempts, broken Connect streams and unacknowledged heartbeats",
            metrics.rpc_failures.clone(),
        );
        r.register(
            "refusals",
            "Connections the relay server refused or closed because of who the agent is, by gRPC code (permission_denied: cluster not registered or suspended; unauthenticated: certificate not accepted, e.g. revoked)",
            metrics.refusals.clone(),
        );
        metrics
    }

    /// Counts a refusal with gRPC code `code`.
    pub fn count_refusal(&self, code: tonic::Code) {
        let code = match code {
            tonic::Code::PermissionDenied => "permission_denied",
            tonic::Code::Unauthenticated => "unauthenticated",
            _ => "other",
        };
        self.refusals
            .get_or_create(&CodeLabels { code: code.into() })
            .inc();
    }

    /// How many refusals with gRPC code label `code` were counted.
    pub fn refusals_for(&self, code: &str) -> u64 {
        self.refusals
            .get(&CodeLabels { code: code.into() })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Counts a refused Secret version.
    pub fn count_rejected(&self, reason: &str) {
        self.certificate_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// How many Secret versions were refused for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.certificate_rejected
            .get(&ReasonLabels {
                reason: reason.to_string(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Counts a reconnect.
    pub fn count_reconnect(&self, reason: &str) {
        self.reconnects
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// How many reconnects happened for `reason`.
    pub fn reconnects_for(&self, reason: &str) -> u64 {
        self.reconnects
            .get(&ReasonLabels {
                reason: reason.to_string(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_under_its_name() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.count_rejected("expired");
        metrics.count_reconnect("stream_ended");
        metrics.certificate_swaps.inc();
        metrics.heartbeats.inc();
        metrics.rpc_failures.inc();
        metrics.connection_state.set(1);
        metrics.certificate_expiry.set(1_900_000_000);
        metrics.count_refusal(tonic::Code::PermissionDenied);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "relay_agent_certificate_expiry_timestamp_seconds 1900000000",
            "relay_agent_certificate_swaps_total 1",
            "relay_agent_certificate_rejected_total{reason=\"expired\"} 1",
            "relay_agent_connection_state 1",
            "relay_agent_reconnects_total{reason=\"stream_ended\"} 1",
            "relay_agent_heartbeats_total 1",
            "relay_agent_rpc_failures_total 1",
            "relay_agent_refusals_total{code=\"permission_denied\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert_eq!(metrics.rejected("expired"), 1);
        assert_eq!(metrics.rejected("key_mismatch"), 0);
        assert_eq!(metrics.reconnects_for("stream_ended"), 1);
        assert_eq!(metrics.refusals_for("permission_denied"), 1);
        assert_eq!(metrics.refusals_for("unauthenticated"), 0);
    }
}
