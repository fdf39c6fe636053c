//! The watcher: follows one Secret by name and feeds each new version, once checked, to the
//! provider.
//!
//! Two Secrets are followed, each by its own [`SecretWatcher`]:
//! - the client certificate (`relay-client-tls-secret`, `tls.crt` + `tls.key`), checked with
//!   `load_key_pair` and handed to [`Provider::swap`];
//! - the trust bundle (`relay-root-tls-secret`, `ca.crt`, one or more roots), handed to
//!   [`Provider::set_roots`] to verify the relay server on new connections.
//!
//! A version that fails its check leaves the last good one in service and is reported three
//! ways: a Warning event regarding the Secret (reason `InvalidClientCertificate` or
//! `InvalidTrustBundle`, the note naming the problem), the metric
//! `relay_agent_certificate_rejected_total{reason}`, and a log line. Nothing crashes.
//!
//! The watch uses kube's watcher with a field selector on `metadata.name`; a dropped watch is
//! resumed by the watcher itself (with backoff). A periodic resync (`--resync-interval`) also
//! reads the Secret, catching an update a stalled watch missed. Each resourceVersion is
//! examined once, whichever path saw it first. What is decided ([`examine`], [`check_client`],
//! [`check_roots`]) is plain functions; this module's loop only does the I/O.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use relay_pki::{KeyPair, certificate_identity, format_time, load_key_pair};
use rustls::RootCertStore;
use time::OffsetDateTime;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::metrics::Metrics;
use crate::provider::{Provider, Swap};

/// The event reason for a refused client certificate version.
pub const INVALID_CLIENT_CERTIFICATE: &str = "InvalidClientCertificate";
/// The event reason for a refused trust bundle version.
pub const INVALID_TRUST_BUNDLE: &str = "InvalidTrustBundle";
/// The event action.
const EVENT_ACTION: &str = "LoadCertificate";
/// Events' notes are limited to 1 kB.
const MAX_NOTE: usize = 1000;

/// Which Secret a watcher follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `tls.crt` + `tls.key`: the agent's client certificate.
    ClientCertificate,
    /// `ca.crt`: the roots that verify the relay server.
    TrustBundle,
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Role::ClientCertificate => "client certificate",
            Role::TrustBundle => "trust bundle",
        }
    }

    fn event_reason(self) -> &'static str {
        match self {
            Role::ClientCertificate => INVALID_CLIENT_CERTIFICATE,
            Role::TrustBundle => INVALID_TRUST_BUNDLE,
        }
    }
}

/// What to do with a version of the Secret as observed.
#[derive(Debug, PartialEq, Eq)]
pub enum Examination<'a> {
    /// Already examined (same resourceVersion): nothing to do.
    Seen,
    /// The Secret does not exist (not created yet, or deleted): keep what is in service.
    Missing,
    /// A new version: check its data.
    Check(&'a BTreeMap<String, ByteString>),
}

/// Decides whether an observed Secret needs checking, given the resourceVersion examined last.
/// A Secret without `data` is checked as empty (its checks then say which key is missing).
pub fn examine<'a>(
    last_resource_version: Option<&str>,
    secret: Option<&'a Secret>,
    empty: &'a BTreeMap<String, ByteString>,
) -> Examination<'a> {
    let Some(secret) = secret else {
        return Examination::Missing;
    };
    let version = secret.metadata.resource_version.as_deref();
    if version.is_some() && version == last_resource_version {
        return Examination::Seen;
    }
    Examination::Check(secret.data.as_ref().unwrap_or(empty))
}

fn value<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Option<&'a [u8]> {
    data.get(key).map(|v| v.0.as_slice())
}

/// Checks a client certificate Secret's data (`tls.crt`, `tls.key`) as of `now`.
pub fn check_client(
    data: &BTreeMap<String, ByteString>,
    now: OffsetDateTime,
) -> Result<KeyPair, relay_runtime::Error> {
    Ok(load_key_pair(
        value(data, "tls.crt"),
        value(data, "tls.key"),
        now,
    )?)
}

/// Checks a root Secret's `ca.crt`; `source` (`namespace/name`) is named in messages.
pub fn check_roots(
    data: &BTreeMap<String, ByteString>,
    source: &str,
) -> Result<Arc<RootCertStore>, relay_runtime::Error> {
    let Some(ca) = value(data, "ca.crt") else {
        return Err(relay_runtime::Error::TrustBundleInvalid {
            source_name: source.to_string(),
            detail: "the key ca.crt is missing".to_string(),
        });
    };
    relay_runtime::tls::root_store(ca, source)
}

/// A refused version: what the metric, the event and the log say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The metric label (e.g. `expired`, `key_mismatch`, `trust_bundle_invalid`).
    pub reason: &'static str,
    /// The event note (what is wrong and what to do; never key material).
    pub note: String,
}

impl Rejection {
    fn from_error(error: &relay_runtime::Error) -> Self {
        let mut note = error.to_string();
        if note.len() > MAX_NOTE {
            let mut end = MAX_NOTE;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        Self {
            reason: error.metric_label(),
            note,
        }
    }
}

/// What a watcher needs besides its Secret.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// How often the Secret is read in full, besides the watch.
    pub resync_interval: Duration,
    /// Whether to watch at all; `false` relies on the resync alone (for API servers that refuse
    /// watches, and to test the resync path).
    pub watch: bool,
    /// Events' reporting controller and instance.
    pub reporter: Reporter,
    /// The cluster the agent runs for (`--cluster`): a certificate naming another is logged.
    pub cluster: String,
    /// The relay trust domain, for reading the certificate's cluster identity.
    pub trust_domain: String,
}

/// Follows one Secret and feeds the provider.
pub struct SecretWatcher {
    api: Api<Secret>,
    namespace: String,
    name: String,
    role: Role,
    provider: Arc<Provider>,
    metrics: Metrics,
    client: kube::Client,
    settings: WatchSettings,
    last_version: Option<String>,
    missing: bool,
}

impl SecretWatcher {
    /// A watcher of Secret `namespace/name` in `role`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        role: Role,
        provider: Arc<Provider>,
        metrics: Metrics,
        settings: WatchSettings,
    ) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            role,
            provider,
            metrics,
            client,
            settings,
            last_version: None,
            missing: false,
        }
    }

    fn source(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Follows the Secret until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let span = info_span!(
            "secret",
            namespace = %self.namespace,
            name = %self.name,
            role = self.role.describe()
        );
        self.run_inner(shutdown).instrument(span).await;
    }

    async fn run_inner(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let fields = format!("metadata.name={}", self.name);
        let mut stream = if self.settings.watch {
            Some(
                watcher::watcher(self.api.clone(), watcher::Config::default().fields(&fields))
                    .default_backoff()
                    .boxed(),
            )
        } else {
            None
        };
        let period = self.settings.resync_interval.max(Duration::from_millis(10));
        let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if stream.is_none() {
            // No watch to list it first: read it now.
            self.resync().await;
        }
        // Whether the Secret showed up in the watch's current (re)list.
        let mut listed = false;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = async {
                    match stream.as_mut() {
                        Some(stream) => stream.next().await,
                        None => std::future::pending().await,
                    }
                } => match event {
                    Some(Ok(Event::Init)) => listed = false,
                    Some(Ok(Event::InitApply(secret))) => {
                        listed = true;
                        self.observe(Some(&secret)).await;
                    }
                    Some(Ok(Event::InitDone)) => {
                        if !listed {
                            self.observe(None).await;
                        }
                    }
                    Some(Ok(Event::Apply(secret))) => self.observe(Some(&secret)).await,
                    Some(Ok(Event::Delete(_))) => self.observe(None).await,
                    Some(Err(error)) => warn!(
                        %error,
                        "watching the Secret failed; the watch is resumed with backoff, and the resync reads it every {:?}",
                        self.settings.resync_interval
                    ),
                    None => {
                        warn!("the Secret watch ended; relying on the periodic resync");
                        stream = None;
                    }
                },
                _ = resync.tick() => self.resync().await,
            }
        }
        debug!("stopped following the Secret");
    }

    async fn resync(&mut self) {
        match self.api.get_opt(&self.name).await {
            Ok(secret) => self.observe(secret.as_ref()).await,
            Err(error) => warn!(
                error = %crate::Error::kube(format!("get Secret {}", self.source()), error),
                "resync failed"
            ),
        }
    }

    /// Handles one observation of the Secret (`None`: it does not exist).
    async fn observe(&mut self, secret: Option<&Secret>) {
        let empty = BTreeMap::new();
        let data = match examine(self.last_version.as_deref(), secret, &empty) {
            Examination::Seen => return,
            Examination::Missing => {
                if !self.missing {
                    self.missing = true;
                    self.last_version = None;
                    warn!(
                        "Secret {} does not exist; keeping the {} in service, if any, until it is created",
                        self.source(),
                        self.role.describe()
                    );
                }
                return;
            }
            Examination::Check(data) => data,
        };
        self.missing = false;
        let Some(secret) = secret else { return };
        self.last_version = secret.metadata.resource_version.clone();
        let version = self.last_version.clone().unwrap_or_default();
        let outcome = match self.role {
            Role::ClientCertificate => match check_client(data, OffsetDateTime::now_utc()) {
                Ok(pair) => self.accept_certificate(&pair, &version),
                Err(error) => Err(error),
            },
            Role::TrustBundle => match check_roots(data, &self.source()) {
                Ok(roots) => {
                    let count = roots.len();
                    self.provider.set_roots(roots);
                    info!(
                        roots = count,
                        resource_version = %version,
                        "trust bundle loaded; new connections verify the relay server against it"
                    );
                    Ok(())
                }
                Err(error) => Err(error),
            },
        };
        if let Err(error) = outcome {
            self.reject(secret, &Rejection::from_error(&error), &version)
                .await;
        }
    }

    fn accept_certificate(
        &self,
        pair: &KeyPair,
        version: &str,
    ) -> Result<(), relay_runtime::Error> {
        match self.provider.swap(pair).map_err(|e| match e {
            crate::Error::Shared(inner) => inner,
            other => relay_runtime::Error::Tls {
                what: "cannot use the client certificate".into(),
                detail: other.to_string(),
            },
        })? {
            Swap::Unchanged => {
                debug!(resource_version = %version, serial = %pair.serial, "Secret rewritten with the certificate already in service");
            }
            Swap::Replaced {
                previous_serial,
                generation,
            } => {
                if previous_serial.is_some() {
                    // The first certificate is a load, not a swap.
                    self.metrics.certificate_swaps.inc();
                }
                self.metrics
                    .certificate_expiry
                    .set(pair.not_after.unix_timestamp());
                let not_after = format_time(pair.not_after);
                match previous_serial {
                    Some(previous) => info!(
                        from = %previous,
                        to = %pair.serial,
                        %not_after,
                        generation,
                        resource_version = %version,
                        "swapped the client certificate from serial {previous} to {}; new handshakes present it",
                        pair.serial
                    ),
                    None => info!(
                        serial = %pair.serial,
                        %not_after,
                        resource_version = %version,
                        "client certificate loaded (serial {})",
                        pair.serial
                    ),
                }
                self.check_identity(pair);
            }
        }
        Ok(())
    }

    /// Logs which cluster the certificate names, and warns when it is not `--cluster` (the
    /// relay server will refuse it).
    fn check_identity(&self, pair: &KeyPair) {
        let Some(leaf) = pair.chain_der.first() else {
            return;
        };
        match certificate_identity(leaf, &self.settings.trust_domain) {
            Ok(identity) if identity.cluster == self.settings.cluster => {
                debug!(cluster = %identity.cluster, spiffe_id = %identity.spiffe_id, "the certificate names this cluster");
            }
            Ok(identity) => warn!(
                certificate_cluster = %identity.cluster,
                cluster = %self.settings.cluster,
                "the client certificate names cluster {:?} but this agent runs for {:?} (--cluster); the relay server will refuse it — fix the Certificate's commonName and URI SAN",
                identity.cluster,
                self.settings.cluster
            ),
            Err(error) => warn!(
                %error,
                trust_domain = %self.settings.trust_domain,
                "the client certificate carries no relay cluster identity in this trust domain (--trust-domain); the relay server will likely refuse it"
            ),
        }
    }

    async fn reject(&self, secret: &Secret, rejection: &Rejection, version: &str) {
        self.metrics.count_rejected(rejection.reason);
        warn!(
            reason = rejection.reason,
            resource_version = %version,
            "refused the new {} in Secret {}; the last good one stays in service: {}",
            self.role.describe(),
            self.source(),
            rejection.note
        );
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: self.role.event_reason().to_string(),
            note: Some(rejection.note.clone()),
            action: EVENT_ACTION.to_string(),
            secondary: None,
        };
        // A recorder per event: kube's Recorder folds events with the same reason regarding the
        // same object into one series and keeps the first note, which would name the wrong
        // problem. Each refused version is examined once, so there is nothing to fold anyway.
        let recorder = Recorder::new(self.client.clone(), self.settings.reporter.clone());
        if let Err(error) = recorder.publish(&event, &secret.object_ref(&())).await {
            warn!(%error, "could not publish the Warning event regarding the Secret");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use relay_pki::generate::{PkiSpec, generate_pki};

    fn secret(version: Option<&str>, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("s".into()),
                resource_version: version.map(str::to_string),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn each_resource_version_is_examined_once() {
        let empty = BTreeMap::new();
        let s = secret(Some("7"), &[("tls.crt", b"x")]);
        assert!(matches!(examine(None, Some(&s), &empty), Examination::Check(d) if d.len() == 1));
        assert_eq!(examine(Some("7"), Some(&s), &empty), Examination::Seen);
        assert!(matches!(
            examine(Some("6"), Some(&s), &empty),
            Examination::Check(_)
        ));
        assert_eq!(examine(Some("7"), None, &empty), Examination::Missing);
        // No data at all: checked as empty (the check then names the missing key).
        let bare = Secret {
            metadata: ObjectMeta {
                resource_version: Some("8".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            matches!(examine(Some("7"), Some(&bare), &empty), Examination::Check(d) if d.is_empty())
        );
    }

    /// A server certificate, its key, and the root with its key.
    fn server_pem() -> (String, String, String, String) {
        let spec = PkiSpec {
            server_names: vec!["relay.example".into()],
            ..PkiSpec::default()
        };
        let pki = generate_pki(&spec, OffsetDateTime::now_utc()).unwrap();
        let server = pki.server.unwrap();
        (
            server.cert_pem,
            server.key_pem,
            pki.root.cert_pem,
            pki.root.key_pem,
        )
    }

    #[test]
    fn client_checks_name_the_problem() {
        let (cert, key, root, root_key) = server_pem();
        let now = OffsetDateTime::now_utc();
        let good = secret(
            None,
            &[("tls.crt", cert.as_bytes()), ("tls.key", key.as_bytes())],
        );
        assert!(check_client(good.data.as_ref().unwrap(), now).is_ok());
        let (_, other_key, _, _) = server_pem();
        type Case<'a> = (Vec<(&'a str, &'a [u8])>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (vec![("tls.key", key.as_bytes())], "certificate_missing"),
            (vec![("tls.crt", cert.as_bytes())], "key_missing"),
            (
                vec![
                    ("tls.crt", b"-----BEGIN CERTIFICATE-----\ngarbage\n"),
                    ("tls.key", key.as_bytes()),
                ],
                "certificate_invalid",
            ),
            (
                vec![
                    ("tls.crt", cert.as_bytes()),
                    ("tls.key", other_key.as_bytes()),
                ],
                "key_mismatch",
            ),
            (
                vec![
                    ("tls.crt", root.as_bytes()),
                    ("tls.key", root_key.as_bytes()),
                ],
                "is_ca",
            ),
        ];
        for (data, label) in cases {
            let s = secret(None, &data);
            let error = check_client(s.data.as_ref().unwrap(), now).unwrap_err();
            let rejection = Rejection::from_error(&error);
            assert_eq!(rejection.reason, label, "{}", rejection.note);
            assert!(
                !rejection.note.contains("PRIVATE KEY-----"),
                "{}",
                rejection.note
            );
        }
        let late = now + time::Duration::days(400 * 2);
        let error = check_client(good.data.as_ref().unwrap(), late).unwrap_err();
        assert_eq!(Rejection::from_error(&error).reason, "expired");
    }

    #[test]
    fn root_checks_accept_bundles_and_name_the_problem() {
        let (_, _, root, _) = server_pem();
        let (_, _, other_root, _) = server_pem();
        let bundle = format!("{root}{other_root}");
        let s = secret(None, &[("ca.crt", bundle.as_bytes())]);
        let store = check_roots(s.data.as_ref().unwrap(), "ns/roots").unwrap();
        assert_eq!(store.len(), 2);
        let missing = secret(None, &[("tls.crt", root.as_bytes())]);
        let error = check_roots(missing.data.as_ref().unwrap(), "ns/roots").unwrap_err();
        let rejection = Rejection::from_error(&error);
        assert_eq!(rejection.reason, "trust_bundle_invalid");
        assert!(
            rejection.note.contains("ca.crt is missing"),
            "{}",
            rejection.note
        );
        assert!(rejection.note.contains("ns/roots"), "{}", rejection.note);
        let garbage = secret(None, &[("ca.crt", b"hello")]);
        assert!(check_roots(garbage.data.as_ref().unwrap(), "ns/roots").is_err());
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let error = relay_runtime::Error::InvalidArgument("é".repeat(800));
        let rejection = Rejection::from_error(&error);
        assert!(rejection.note.len() <= MAX_NOTE);
    }
}
