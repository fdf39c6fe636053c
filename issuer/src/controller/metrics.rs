//! The controller's Prometheus metrics, registered under the `relay_issuer` prefix:
//! CertificateRequests by outcome, signatures, signing latency, issuer readiness and CA expiry,
//! CA parses, leadership and reconcile errors.
//!
//! What does not live here: serving them (`admin`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label set: a request outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `issued`, `failed`, `denied`, `pending`, `waiting_for_approval`.
    pub outcome: String,
}

/// Label set: one issuer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssuerLabels {
    /// `RelayIssuer` or `RelayClusterIssuer`.
    pub kind: String,
    /// The issuer's namespace (empty for a cluster issuer).
    pub namespace: String,
    /// The issuer's name.
    pub name: String,
}

/// Label set: an error kind (the error's `metric_label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Low-cardinality error label.
    pub error: String,
}

/// Every metric of the controller.
#[derive(Clone)]
pub struct Metrics {
    /// `relay_issuer_certificate_requests_total{outcome}`: reconciles that wrote an outcome.
    pub requests: Family<OutcomeLabels, Counter>,
    /// `relay_issuer_signatures_total`: certificates signed (each signature counted once).
    pub signatures: Counter,
    /// `relay_issuer_signing_duration_seconds`: time to sign one request (parse, verify, sign).
    pub signing_seconds: Histogram,
    /// `relay_issuer_issuer_ready{kind,namespace,name}`: 1 when the issuer can sign.
    pub issuer_ready: Family<IssuerLabels, Gauge>,
    /// `relay_issuer_ca_expiry_timestamp_seconds{kind,namespace,name}`: the signing CA's notAfter.
    pub ca_expiry: Family<IssuerLabels, Gauge>,
    /// `relay_issuer_ca_expiring_soon{kind,namespace,name}`: 1 when the CA expires within 30 days.
    pub ca_expiring_soon: Family<IssuerLabels, Gauge>,
    /// `relay_issuer_ca_loads_total`: times a signing CA was parsed and checked (cache misses).
    pub ca_loads: Counter<u64, AtomicU64>,
    /// `relay_issuer_leader`: 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// `relay_issuer_reconcile_errors_total{error}`: reconciles that failed and were retried.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// `relay_issuer_certificate_signing_requests_total{outcome}`: Kubernetes CSRs of signer
    /// `relaytls.dev/agent` signed (`issued`) or failed (`failed`).
    pub csr_requests: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` under `relay_issuer_`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            signatures: Counter::default(),
            // 50 µs .. ~1.6 s
            signing_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            issuer_ready: Family::default(),
            ca_expiry: Family::default(),
            ca_expiring_soon: Family::default(),
            ca_loads: Counter::default(),
            leader: Gauge::default(),
            reconcile_errors: Family::default(),
            csr_requests: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("relay_issuer");
        r.register(
            "certificate_requests",
            "CertificateRequests reconciled, by the outcome written",
            metrics.requests.clone(),
        );
        r.register(
            "signatures",
            "Certificates signed",
            metrics.signatures.clone(),
        );
        r.register(
            "signing_duration_seconds",
            "Time to sign one CertificateRequest (CSR parse and verify, certificate build and signature)",
            metrics.signing_seconds.clone(),
        );
        r.register(
            "issuer_ready",
            "1 when the issuer's signing CA is usable (Ready=True), else 0",
            metrics.issuer_ready.clone(),
        );
        r.register(
            "ca_expiry_timestamp_seconds",
            "notAfter of the issuer's signing CA, seconds since the Unix epoch",
            metrics.ca_expiry.clone(),
        );
        r.register(
            "ca_expiring_soon",
            "1 when the issuer's signing CA expires within 30 days",
            metrics.ca_expiring_soon.clone(),
        );
        r.register(
            "ca_loads",
            "Signing CAs parsed and checked (cache misses; the cache is keyed by Secret resourceVersion)",
            metrics.ca_loads.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controllers",
            metrics.leader.clone(),
        );
        r.register(
            "certificate_signing_requests",
            "Kubernetes CertificateSigningRequests of signer relaytls.dev/agent, by the outcome written (issued, failed)",
            metrics.csr_requests.clone(),
        );
        r.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by error",
            metrics.reconcile_errors.clone(),
        );
        metrics
    }

    /// Counts one outcome written to a request.
    pub fn count_outcome(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a reconcile that failed with `error` (it will be retried).
    pub fn count_reconcile_error(&self, error: &crate::Error) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                error: error.metric_label().to_string(),
            })
            .inc();
    }

    /// Counts one outcome written to a Kubernetes CSR.
    pub fn csr_outcome(&self, outcome: &'static str) {
        self.csr_requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Removes the series of an issuer that no longer exists.
    pub fn forget_issuer(&self, labels: &IssuerLabels) {
        self.issuer_ready.remove(labels);
        self.ca_expiry.remove(labels);
        self.ca_expiring_soon.remove(labels);
    }

    /// How many requests ended with `outcome` (for tests and benchmarks).
    pub fn outcome_count(&self, outcome: &'static str) -> u64 {
        self.requests
            .get(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .map(|c| c.get())
            .unwrap_or(0)
    }
}
