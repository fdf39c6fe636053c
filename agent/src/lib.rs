//! relay-agent: keeps a relay agent's mTLS connection to the relay server with the client
//! certificate from its Secret. Renewal is cert-manager's job; the agent follows the Secret.
//!
//! - [`watcher`]: follows `relay-client-tls-secret` (and the root Secret), checks each new
//!   version and feeds the provider; bad versions leave the last good one in service.
//! - [`provider`]: holds the current certificate and trust bundle for new TLS handshakes, and
//!   publishes a generation on every swap.
//! - [`connector`] and [`client`]: the TLS connector tonic dials with, and the `Connect` stream
//!   with heartbeats, backoff and make-before-break swaps.
//! - [`backoff`], [`readiness`]: the pure rules (reconnect delays, what `/ready` says).
//! - [`metrics`], [`cli`], [`Error`].
//!
//! Programmatic use (what the binary does, and what tests do in-process):
//!
//! ```no_run
//! # async fn example(client: kube::Client) -> Result<(), relay_agent::Error> {
//! let mut config = relay_agent::Config::new("gloo-mesh", "https://relay.gloo-mesh:9900", "cluster-1");
//! config.admin_address = Some("127.0.0.1:0".into());
//! let agent = relay_agent::Agent::start(config, client).await?;
//! // ... agent.metrics(), agent.provider(), agent.admin_address(), agent.connection() ...
//! agent.stop().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backoff;
pub mod cli;
pub mod client;
pub mod connector;
mod error;
pub mod metrics;
pub mod provider;
pub mod readiness;
pub mod watcher;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Reporter;
use prometheus_client::registry::Registry;
use relay_runtime::admin::{self, Health};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

pub use backoff::BackoffPolicy;
pub use error::Error;
pub use metrics::Metrics;
pub use provider::Provider;
pub use readiness::ConnectionStatus;

use client::{ClientSettings, RelayConnection};
use connector::Target;
use readiness::{ReadinessInputs, readiness};
use watcher::{Role, SecretWatcher, WatchSettings};

/// Installs ring as the process-wide rustls crypto provider (the only one compiled in).
pub fn install_crypto_provider() {
    relay_runtime::install_crypto_provider();
}

/// Default `--client-tls-secret-name`.
pub const DEFAULT_CLIENT_TLS_SECRET: &str = "relay-client-tls-secret";
/// Default `--root-tls-secret-name`.
pub const DEFAULT_ROOT_TLS_SECRET: &str = "relay-root-tls-secret";
/// Default `--namespace`.
pub const DEFAULT_NAMESPACE: &str = "gloo-mesh";
/// Default `--trust-domain` (the one `relay-issuer ca create` uses by default).
pub const DEFAULT_TRUST_DOMAIN: &str = "relay.local";
/// The events' reporting controller.
pub const REPORTER: &str = "relay-agent";

/// How often `/ready` is re-evaluated even without a change (certificates expire silently).
const READINESS_PERIOD: Duration = Duration::from_secs(1);

/// Everything the agent needs to run (the command line fills it; tests build it in code).
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of both Secrets (and of the events about them).
    pub namespace: String,
    /// The client certificate Secret (`tls.crt`, `tls.key`).
    pub client_tls_secret_name: String,
    /// The root Secret (`ca.crt`, one or more roots that verify the relay server).
    pub root_tls_secret_name: String,
    /// `https://host:port` of the relay server.
    pub relay_address: String,
    /// The name the relay server's certificate must carry; `None`: the address's host.
    pub server_name: Option<String>,
    /// This cluster's name, sent in `Hello`; the certificate must name it.
    pub cluster: String,
    /// The relay trust domain, to read the certificate's cluster identity for logs.
    pub trust_domain: String,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// How long a heartbeat may wait for its echo before the connection counts as dead.
    pub heartbeat_timeout: Duration,
    /// Limit on each connection set-up step.
    pub connect_timeout: Duration,
    /// How often the Secrets are re-read besides the watch.
    pub resync_interval: Duration,
    /// Whether to watch the Secrets (`false`: resync only).
    pub watch: bool,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
    /// Where the admin server (`/live`, `/ready`, `/metrics`) listens; `None`: no admin server.
    pub admin_address: Option<String>,
    /// This replica's name for events (`POD_NAME`); `None`: the host name.
    pub instance: Option<String>,
}

impl Config {
    /// The defaults, for the given namespace, relay address and cluster.
    pub fn new(namespace: &str, relay_address: &str, cluster: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            client_tls_secret_name: DEFAULT_CLIENT_TLS_SECRET.to_string(),
            root_tls_secret_name: DEFAULT_ROOT_TLS_SECRET.to_string(),
            relay_address: relay_address.to_string(),
            server_name: None,
            cluster: cluster.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            resync_interval: Duration::from_secs(300),
            watch: true,
            backoff: BackoffPolicy::default(),
            admin_address: None,
            instance: None,
        }
    }

    /// Checks the settings; the error names the flag to fix.
    pub fn validate(&self) -> Result<Target, Error> {
        if self.cluster.is_empty() {
            return Err(Error::InvalidArgument(
                "--cluster is empty; give this cluster's name (env CLUSTER_NAME), the one its certificate names".into(),
            ));
        }
        for (flag, value) in [
            ("--namespace", &self.namespace),
            ("--client-tls-secret-name", &self.client_tls_secret_name),
            ("--root-tls-secret-name", &self.root_tls_secret_name),
        ] {
            if value.is_empty() {
                return Err(Error::InvalidArgument(format!("{flag} is empty")));
            }
        }
        for (flag, value) in [
            ("--heartbeat-interval", self.heartbeat_interval),
            ("--heartbeat-timeout", self.heartbeat_timeout),
            ("--connect-timeout", self.connect_timeout),
            ("--resync-interval", self.resync_interval),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidArgument(format!(
                    "{flag} must be positive (e.g. 10s)"
                )));
            }
        }
        if self.heartbeat_timeout < self.heartbeat_interval {
            return Err(Error::InvalidArgument(format!(
                "--heartbeat-timeout ({:?}) is shorter than --heartbeat-interval ({:?}); give the echo at least one interval",
                self.heartbeat_timeout, self.heartbeat_interval
            )));
        }
        self.backoff.validate()?;
        Target::parse(&self.relay_address, self.server_name.as_deref())
    }

    fn client_secret(&self) -> String {
        format!("{}/{}", self.namespace, self.client_tls_secret_name)
    }

    fn root_secret(&self) -> String {
        format!("{}/{}", self.namespace, self.root_tls_secret_name)
    }
}

/// A running agent: its watchers, relay client, readiness and admin server.
pub struct Agent {
    provider: Arc<Provider>,
    metrics: Metrics,
    health: Health,
    connection: watch::Receiver<ConnectionStatus>,
    admin_address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// A future that completes when `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

impl Agent {
    /// Starts the agent with `client` for the Kubernetes API. Returns once the admin server
    /// listens; everything else runs in background tasks until [`Agent::stop`].
    pub async fn start(config: Config, client: kube::Client) -> Result<Self, Error> {
        let target = Arc::new(config.validate()?);
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let provider = Provider::new();
        let health = Health::new();
        let (stop, stop_rx) = watch::channel(false);
        let (status_tx, status_rx) = watch::channel(ConnectionStatus::Starting);
        let mut tasks = JoinSet::new();

        let admin_address = match &config.admin_address {
            Some(address) => {
                let listener = admin::bind(address).await?;
                let local = listener.local_addr().ok();
                let registry = Arc::new(registry);
                let health = health.clone();
                let shutdown = stopped(stop_rx.clone());
                tasks.spawn(async move {
                    if let Err(error) = admin::serve(listener, registry, health, shutdown).await {
                        tracing::error!(%error, "the admin server stopped");
                    }
                });
                local
            }
            None => None,
        };

        let settings = WatchSettings {
            resync_interval: config.resync_interval,
            watch: config.watch,
            reporter: Reporter {
                controller: REPORTER.to_string(),
                instance: config.instance.clone(),
            },
            cluster: config.cluster.clone(),
            trust_domain: config.trust_domain.clone(),
        };
        for (name, role) in [
            (&config.client_tls_secret_name, Role::ClientCertificate),
            (&config.root_tls_secret_name, Role::TrustBundle),
        ] {
            let watcher = SecretWatcher::new(
                client.clone(),
                &config.namespace,
                name,
                role,
                provider.clone(),
                metrics.clone(),
                settings.clone(),
            );
            tasks.spawn(watcher.run(stopped(stop_rx.clone())));
        }

        let connection = RelayConnection::new(
            ClientSettings {
                target: target.clone(),
                cluster: config.cluster.clone(),
                heartbeat_interval: config.heartbeat_interval,
                heartbeat_timeout: config.heartbeat_timeout,
                connect_timeout: config.connect_timeout,
                backoff: config.backoff,
                secret: config.client_secret(),
                root_secret: config.root_secret(),
            },
            provider.clone(),
            metrics.clone(),
            status_tx,
        );
        let span = info_span!(
            "relay",
            address = %target.address,
            cluster = %config.cluster,
            namespace = %config.namespace,
            secret = %config.client_tls_secret_name,
        );
        tasks.spawn(connection.run(stopped(stop_rx.clone())).instrument(span));

        tasks.spawn(keep_readiness(
            provider.clone(),
            status_rx.clone(),
            health.clone(),
            config.client_secret(),
            config.root_secret(),
            stopped(stop_rx),
        ));
        info!(
            relay = %target.address,
            server_name = %target.server_name,
            cluster = %config.cluster,
            secret = %config.client_secret(),
            roots = %config.root_secret(),
            "relay agent started"
        );
        Ok(Self {
            provider,
            metrics,
            health,
            connection: status_rx,
            admin_address,
            stop,
            tasks,
        })
    }

    /// The provider (current certificate and trust bundle).
    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Readiness as `/ready` reports it.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The relay connection's state, as it changes.
    pub fn connection(&self) -> watch::Receiver<ConnectionStatus> {
        self.connection.clone()
    }

    /// Where the admin server listens, when it runs.
    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin_address
    }

    /// Stops everything: closes the relay connection (letting heartbeats in flight finish),
    /// the watchers and the admin server, and waits for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        info!("relay agent stopped");
    }
}

/// Runs the agent until `shutdown` completes.
pub async fn run(
    config: Config,
    client: kube::Client,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let agent = Agent::start(config, client).await?;
    shutdown.await;
    agent.stop().await;
    Ok(())
}

/// Keeps `/ready` up to date: on every change of the certificate, trust bundle or connection,
/// and every second (a certificate expires without any event).
async fn keep_readiness(
    provider: Arc<Provider>,
    mut connection: watch::Receiver<ConnectionStatus>,
    health: Health,
    secret: String,
    root_secret: String,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut certificates = provider.subscribe();
    let mut roots = provider.subscribe_roots();
    let mut ticks = tokio::time::interval(READINESS_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Result<(), String>> = None;
    loop {
        let facts = provider.current().map(|c| c.facts());
        let verdict = {
            let status = connection.borrow_and_update();
            readiness(&ReadinessInputs {
                certificate: facts.as_ref(),
                secret: &secret,
                roots_loaded: provider.roots().is_some(),
                root_secret: &root_secret,
                connection: &status,
                now: OffsetDateTime::now_utc(),
            })
        };
        if last.as_ref() != Some(&verdict) {
            let was_ready = matches!(last, Some(Ok(())));
            match &verdict {
                Ok(()) => {
                    info!("ready");
                    health.set_ready(true);
                }
                Err(reason) => {
                    // Transitions at info; a changing reason while not ready at debug.
                    if was_ready || last.is_none() {
                        info!(%reason, "not ready");
                    } else {
                        tracing::debug!(%reason, "still not ready");
                    }
                    health.set_not_ready(reason.clone());
                }
            }
            last = Some(verdict);
        }
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
            _ = connection.changed() => {}
            _ = certificates.changed() => {}
            _ = roots.changed() => {}
        }
    }
}
