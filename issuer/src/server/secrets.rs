//! The Secrets the relay server serves from, watched and hot-reloaded:
//! `relay-server-tls-secret` (its own certificate), `relay-root-tls-secret` (`ca.crt`: roots
//! that client certificates must chain to; several at once during a rotation),
//! `relay-tls-signing-secret` (the CA that signs agent certificates) and
//! `relay-identity-token-secret` (`token`: the bootstrap token).
//!
//! New data is checked first; data that fails keeps the previous version in use and is
//! reported with a Warning event on the Secret, a log line and
//! `relay_server_secret_reload_failures_total`. Messages name the Secret and the problem,
//! never the data.

use std::pin::pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::runtime::{WatchStreamExt, watcher::Event as WatchEvent};
use kube::{Api, Resource, ResourceExt};
use time::OffsetDateTime;
use tracing::{Instrument, info, info_span, warn};

use super::metrics::ServerMetrics;
use super::tls::ServerTls;
use crate::Error;
use crate::k8s::secret_data as data;
use crate::pki::{SigningCa, format_time, load_key_pair};
use crate::tls::{certified_key, root_store};

/// The names of the Secrets the server reads, all in its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretNames {
    /// The server's certificate (`tls.crt`, `tls.key`).
    pub server_tls: String,
    /// The client trust bundle (`ca.crt`).
    pub root_tls: String,
    /// The signing CA (`tls.crt`, `tls.key`, optional `ca.crt`).
    pub signing: String,
    /// The bootstrap token (`token`).
    pub token: String,
}

impl Default for SecretNames {
    fn default() -> Self {
        Self {
            server_tls: "relay-server-tls-secret".into(),
            root_tls: "relay-root-tls-secret".into(),
            signing: "relay-tls-signing-secret".into(),
            token: "relay-identity-token-secret".into(),
        }
    }
}

/// Which Secret a reload concerns (the `secret` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    ServerTls,
    RootTls,
    Signing,
    Token,
}

impl Which {
    fn label(self) -> &'static str {
        match self {
            Which::ServerTls => "server_tls",
            Which::RootTls => "root_tls",
            Which::Signing => "signing",
            Which::Token => "token",
        }
    }

    /// The Warning event reason when its new data is refused.
    fn refusal_reason(self) -> &'static str {
        match self {
            Which::ServerTls => "InvalidServerCertificate",
            Which::RootTls => "InvalidTrustBundle",
            Which::Signing => "InvalidSigningCA",
            Which::Token => "InvalidBootstrapToken",
        }
    }
}

/// What the server serves from, as last loaded.
#[derive(Debug, Default)]
pub struct Material {
    /// The server certificate and trust bundle.
    pub tls: Arc<ServerTls>,
    /// The signing CA; `None` until a usable one is loaded (signing answers Unavailable).
    pub signing: ArcSwapOption<SigningCa>,
    /// Why there is no signing CA, for the Unavailable message.
    pub signing_problem: ArcSwapOption<String>,
    /// The bootstrap token; `None` disables token bootstrap.
    pub token: ArcSwapOption<Vec<u8>>,
}

/// Applies Secret versions to [`Material`], reporting refusals.
#[derive(Clone)]
pub struct Reloader {
    material: Arc<Material>,
    metrics: ServerMetrics,
    recorder: Recorder,
    namespace: String,
}

impl Reloader {
    /// A reloader writing into `material`.
    pub fn new(
        material: Arc<Material>,
        metrics: ServerMetrics,
        recorder: Recorder,
        namespace: &str,
    ) -> Self {
        Self {
            material,
            metrics,
            recorder,
            namespace: namespace.to_string(),
        }
    }

    fn refused(&self, which: Which, secret: Option<&Secret>, name: &str, error: &Error) {
        let label = error.metric_label();
        self.metrics.secret_reload(which.label(), Some(label));
        warn!(secret = %format!("{}/{name}", self.namespace), reason = label, %error, "new Secret data refused; the previous data stays in use");
        if let Some(secret) = secret {
            let recorder = self.recorder.clone();
            let reference = secret.object_ref(&());
            let event = Event {
                type_: EventType::Warning,
                reason: which.refusal_reason().into(),
                note: Some(format!(
                    "{error} (the relay server keeps using the previous data)"
                )),
                action: "Reload".into(),
                secondary: None,
            };
            tokio::spawn(async move {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    warn!(%error, "could not publish an event");
                }
            });
        }
    }

    fn apply(&self, which: Which, name: &str, secret: Option<&Secret>) {
        let now = OffsetDateTime::now_utc();
        let result = match (which, secret) {
            (Which::ServerTls, Some(s)) => self.apply_server_tls(s, now),
            (Which::RootTls, Some(s)) => root_store(
                data(s, "ca.crt").unwrap_or_default(),
                &format!("{}/{name}", self.namespace),
            )
            .map_err(Error::from)
            .and_then(|roots| {
                let count = roots.len();
                let anchors =
                    super::tls::RootAnchor::from_bundle(data(s, "ca.crt").unwrap_or_default());
                self.material.tls.set_roots(roots, anchors)?;
                info!(secret = %format!("{}/{name}", self.namespace), roots = count, "client trust bundle loaded");
                Ok(())
            }),
            (Which::Signing, Some(s)) => self.apply_signing(s, now),
            (Which::Token, Some(s)) => match data(s, "token").filter(|t| !t.trim_ascii().is_empty()) {
                Some(token) => {
                    self.material.token.store(Some(Arc::new(token.to_vec())));
                    info!(secret = %format!("{}/{name}", self.namespace), "bootstrap token loaded");
                    Ok(())
                }
                None => {
                    self.material.token.store(None);
                    Err(Error::InvalidArgument(format!(
                        "Secret {}/{name} has no non-empty key \"token\"; token bootstrap is disabled until it has one",
                        self.namespace
                    )))
                }
            },
            (Which::Signing, None) => {
                self.material.signing.store(None);
                self.material.signing_problem.store(Some(Arc::new(format!(
                    "the signing Secret {}/{name} does not exist",
                    self.namespace
                ))));
                warn!(secret = %format!("{}/{name}", self.namespace), "signing Secret missing; signing is unavailable");
                return;
            }
            (Which::Token, None) => {
                self.material.token.store(None);
                info!(secret = %format!("{}/{name}", self.namespace), "no bootstrap token Secret; token bootstrap is disabled");
                return;
            }
            (Which::ServerTls | Which::RootTls, None) => {
                warn!(secret = %format!("{}/{name}", self.namespace), "Secret missing; the data loaded before stays in use");
                return;
            }
        };
        match result {
            Ok(()) => self.metrics.secret_reload(which.label(), None),
            Err(error) => self.refused(which, secret, name, &error),
        }
    }

    fn apply_server_tls(&self, secret: &Secret, now: OffsetDateTime) -> Result<(), Error> {
        let pair = load_key_pair(data(secret, "tls.crt"), data(secret, "tls.key"), now)?;
        let key = certified_key(&pair)?;
        self.material.tls.set_server_key(key)?;
        self.metrics
            .certificate_expiry
            .set(pair.not_after.unix_timestamp());
        info!(
            secret = %format!("{}/{}", self.namespace, secret.name_any()),
            serial = %pair.serial,
            not_after = %format_time(pair.not_after),
            "serving a new server certificate to new connections"
        );
        Ok(())
    }

    fn apply_signing(&self, secret: &Secret, now: OffsetDateTime) -> Result<(), Error> {
        let ca = SigningCa::load(
            data(secret, "tls.crt").unwrap_or_default(),
            data(secret, "tls.key").unwrap_or_default(),
            data(secret, "ca.crt"),
            now,
        )?;
        info!(
            secret = %format!("{}/{}", self.namespace, secret.name_any()),
            ca = %ca.subject(),
            not_after = %format_time(ca.not_after()),
            "signing CA loaded"
        );
        self.material.signing.store(Some(Arc::new(ca)));
        self.material.signing_problem.store(None);
        Ok(())
    }

    /// Follows the four Secrets until the returned future is dropped.
    pub async fn watch(self, api: Api<Secret>, names: SecretNames) {
        futures::join!(
            self.follow(api.clone(), Which::ServerTls, names.server_tls),
            self.follow(api.clone(), Which::RootTls, names.root_tls),
            self.follow(api.clone(), Which::Signing, names.signing),
            self.follow(api, Which::Token, names.token),
        );
    }

    async fn follow(&self, api: Api<Secret>, which: Which, name: String) {
        let span = info_span!("secret", namespace = %self.namespace, name = %name);
        async {
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let mut events = pin!(watcher(api, config).default_backoff());
            let mut seen_in_init = false;
            let mut last_version: Option<String> = None;
            while let Some(event) = events.next().await {
                let secret = match event {
                    Ok(WatchEvent::Init) => {
                        seen_in_init = false;
                        continue;
                    }
                    Ok(WatchEvent::InitApply(secret)) => {
                        seen_in_init = true;
                        Some(secret)
                    }
                    Ok(WatchEvent::Apply(secret)) => Some(secret),
                    Ok(WatchEvent::InitDone) if seen_in_init => continue,
                    Ok(WatchEvent::InitDone | WatchEvent::Delete(_)) => None,
                    Err(error) => {
                        warn!(%error, "watching the Secret failed; retrying with backoff");
                        continue;
                    }
                };
                let version = secret.as_ref().and_then(|s| s.resource_version());
                if version.is_some() && version == last_version {
                    continue;
                }
                if secret.is_none()
                    && last_version.is_none()
                    && which != Which::Signing
                    && which != Which::Token
                {
                    // Missing from the start: nothing to keep, nothing new to say.
                    warn!("Secret does not exist yet; waiting for it");
                    continue;
                }
                last_version = version;
                self.apply(which, &name, secret.as_ref());
            }
        }
        .instrument(span)
        .await
    }
}
