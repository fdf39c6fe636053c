//! The relay server (`relay-issuer server`): gRPC over TLS 1.3 for agents, with the
//! certificate-signing endpoint and the long-lived `Connect` stream.
//!
//! - [`decide`]: who may connect or sign what, usages and lifetimes (pure).
//! - [`auth`]: bootstrap tokens and the failed-attempt limiter (pure).
//! - [`clusters`]: the connection book and the `RelayCluster` status writer.
//! - [`secrets`]: watching and hot-reloading the server's Secrets.
//! - [`tls`]: rustls configuration and the accept loop.
//! - [`service`]: the tonic services.
//! - [`metrics`]: `relay_server_*` metrics.
//!
//! [`run`] wires them. The admin server and the command line live in `admin` and `cli`.

pub mod auth;
pub mod clusters;
pub mod decide;
pub mod metrics;
pub mod secrets;
pub mod service;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use relay_proto::v1::relay_certificates_server::RelayCertificatesServer;
use relay_proto::v1::relay_server::RelayServer;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::info;

use crate::Error;
use crate::admin::Health;
use crate::api::RelayCluster;
use clusters::StatusWriter;
use metrics::ServerMetrics;
use secrets::{Material, Reloader, SecretNames};
use service::{RelayService, ServiceParts};

/// Everything the relay server is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's namespace: its Secrets and the RelayClusters.
    pub namespace: String,
    /// The SPIFFE trust domain of agent identities.
    pub trust_domain: String,
    /// The Secrets it reads.
    pub secrets: SecretNames,
    /// The heartbeat interval announced to agents.
    pub heartbeat_interval: Duration,
    /// Failed token attempts allowed per address before limiting.
    pub token_failure_burst: u32,
    /// How fast a limited address regains one attempt.
    pub token_failure_refill: Duration,
    /// This Pod's name, for events.
    pub pod_name: Option<String>,
}

impl Settings {
    /// Defaults for `namespace`: trust domain `relay.local`, the default Secret names,
    /// heartbeats every 10 s, 5 failed token attempts then one per 12 s.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            trust_domain: "relay.local".into(),
            secrets: SecretNames::default(),
            heartbeat_interval: Duration::from_secs(10),
            token_failure_burst: 5,
            token_failure_refill: Duration::from_secs(12),
            pod_name: None,
        }
    }
}

/// Serves the relay on `listener` until `shutdown` completes: watches the Secrets and the
/// RelayClusters, keeps `health` current (ready when a server certificate, a trust bundle and
/// the RelayCluster list are loaded), ends open streams with Unavailable on shutdown and marks
/// their clusters disconnected.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: TcpListener,
    metrics: ServerMetrics,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    crate::pki::identity::validate_trust_domain(&settings.trust_domain)?;
    let namespace = settings.namespace.clone();
    let material = Arc::new(Material::default());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "relay-server".into(),
            instance: settings.pod_name.clone(),
        },
    );
    let reloader = Reloader::new(material.clone(), metrics.clone(), recorder, &namespace);
    let secrets_task = tokio::spawn(reloader.watch(
        Api::<Secret>::namespaced(client.clone(), &namespace),
        settings.secrets.clone(),
    ));

    let cluster_api = Api::<RelayCluster>::namespaced(client.clone(), &namespace);
    let (store, writer) = reflector::store();
    let clusters_task = tokio::spawn(
        reflector(
            writer,
            watcher(cluster_api.clone(), watcher::Config::default()),
        )
        .default_backoff()
        .for_each(|_| futures::future::ready(())),
    );
    let status = StatusWriter::new(cluster_api);
    let (stop_sender, stopping) = watch::channel(false);
    let status_task = {
        let status = status.clone();
        let mut stopped = stopping.clone();
        tokio::spawn(status.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    };

    let readiness_task = {
        let store = store.clone();
        let tls = material.tls.clone();
        let status = status.clone();
        let health = health.clone();
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                let now = OffsetDateTime::now_utc();
                status.update(|book| {
                    for cluster in store.state() {
                        if let Some(s) = &cluster.status {
                            book.restore(&cluster.name_any(), s, now);
                        }
                    }
                });
            }
            if !tls.is_ready() {
                health.set_not_ready(
                    "waiting for a usable relay-server-tls-secret and relay-root-tls-secret",
                );
                tls.wait_until_ready().await;
            }
            health.set_ready(true);
        })
    };

    let service = RelayService::new(ServiceParts {
        namespace: namespace.clone(),
        trust_domain: settings.trust_domain.clone(),
        heartbeat_interval: settings.heartbeat_interval,
        material: material.clone(),
        clusters: store,
        token_failures: (settings.token_failure_burst, settings.token_failure_refill),
        status,
        metrics: metrics.clone(),
        stopping: stopping.clone(),
    });
    let address = listener.local_addr().map_err(|e| Error::Tls {
        what: "reading the relay listener's address".into(),
        detail: e.to_string(),
    })?;
    let (connections, incoming) = mpsc::channel(64);
    let accept_task = tokio::spawn(tls::accept_loop(
        listener,
        material.tls.clone(),
        metrics,
        connections,
    ));
    info!(%address, namespace = %namespace, trust_domain = %settings.trust_domain, "relay server listening (TLS 1.3, gRPC)");
    let served = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(RelayCertificatesServer::new(service.clone()))
        .add_service(RelayServer::new(service))
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async move {
            shutdown.await;
            info!("relay server stopping: ending agent streams");
            let _ = stop_sender.send(true);
        })
        .await;
    accept_task.abort();
    readiness_task.abort();
    // Let the status writer record the disconnects before the watches go.
    let _ = tokio::time::timeout(Duration::from_secs(5), status_task).await;
    secrets_task.abort();
    clusters_task.abort();
    served.map_err(|e| Error::Tls {
        what: format!("serving the relay on {address}"),
        detail: e.to_string(),
    })
}
