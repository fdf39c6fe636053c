//! The relay server (`relay-issuer server`): gRPC over TLS 1.3 for agents, with the
//! certificate-signing endpoint and the long-lived `Connect` stream.
//!
//! - [`decide`]: who may connect or sign what, usages and lifetimes (pure).
//! - [`auth`]: bootstrap tokens and the failed-attempt limiter (pure).
//! - [`clusters`]: the connection book, replica liveness, and the `RelayCluster` status writer.
//! - [`gate`]: tells open sessions when their `RelayCluster` changes what it allows.
//! - [`secrets`]: watching and hot-reloading the server's Secrets.
//! - [`tls`]: rustls configuration and the accept loop.
//! - [`service`]: the tonic services.
//! - [`metrics`]: `relay_server_*` metrics.
//!
//! [`run`] wires them. The admin server and the command line live in `admin` and `cli`.

pub mod auth;
pub mod clusters;
pub mod decide;
pub mod gate;
pub mod metrics;
pub mod secrets;
pub mod service;
pub mod signatures;
pub mod tls;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use relay_proto::v1::relay_certificates_server::RelayCertificatesServer;
use relay_proto::v1::relay_server::RelayServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::info;

use crate::Error;
use crate::admin::Health;
use crate::api::RelayCluster;
use clusters::{ConnectionBook, ReplicaLease, ReplicaLiveness, StatusWriter};
use gate::AccessGate;
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
    /// This replica's name in `RelayCluster` statuses and its Lease: the Pod's name in a
    /// cluster; unique per process otherwise.
    pub replica: String,
    /// The Pod's UID, when known: the replica's Lease is owned by the Pod.
    pub pod_uid: Option<String>,
    /// How long this replica's Lease holds without renewal (renewed every third of it); other
    /// replicas clear its statuses once it lapses.
    pub replica_lease_duration: Duration,
    /// How often heartbeats alone refresh `status.lastSeen` of a connected cluster.
    pub status_refresh: Duration,
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
            replica: unique_replica_name(),
            pod_uid: None,
            replica_lease_duration: Duration::from_secs(15),
            status_refresh: Duration::from_secs(600),
        }
    }
}

/// A replica name unique to this process and call (for servers outside a Pod, and tests that
/// run several in one process).
fn unique_replica_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("relay-server-{}-{n}", std::process::id())
}

/// Serves the relay on `listener` until `shutdown` completes: watches the Secrets and the
/// RelayClusters, keeps `health` current (ready when a server certificate, a trust bundle and
/// the RelayCluster list are loaded), ends open streams with Unavailable on shutdown and marks
/// their clusters disconnected.
///
/// Agents are served on the runtime that polls this future; everything that talks to the
/// Kubernetes API (the watches, status writes, this replica's Lease, the sweep, readiness) is
/// spawned on `control`. `relay-issuer server` gives `control` a thread of its own, so a connect
/// storm (tens of thousands of TLS handshakes queued on the serving workers) cannot delay a
/// Lease renewal (the other replicas would judge this one dead and clear its statuses), a
/// Secret reload, or the reading of watch events. Tests may pass the current runtime's handle.
pub async fn run(
    client: Client,
    settings: Settings,
    listener: TcpListener,
    metrics: ServerMetrics,
    health: Health,
    control: tokio::runtime::Handle,
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
    let reloader = Reloader::new(
        material.clone(),
        metrics.clone(),
        recorder.clone(),
        &namespace,
    );
    let secrets_task = control.spawn(reloader.watch(
        Api::<Secret>::namespaced(client.clone(), &namespace),
        settings.secrets.clone(),
    ));

    let cluster_api = Api::<RelayCluster>::namespaced(client.clone(), &namespace);
    let (store, writer) = reflector::store();
    let gate = AccessGate::new(store.clone(), &namespace);
    let refresh =
        time::Duration::try_from(settings.status_refresh).unwrap_or(time::Duration::minutes(10));
    let status = StatusWriter::new(
        cluster_api.clone(),
        ConnectionBook::new(
            &settings.replica,
            refresh,
            time::Duration::try_from(settings.replica_lease_duration)
                .unwrap_or(time::Duration::seconds(15)),
        ),
        metrics.clone(),
    );
    let clusters_task = {
        let gate = gate.clone();
        let status = status.clone();
        control.spawn(
            reflector(
                writer,
                // managedFields are of no use here and cost about 2 KiB per cluster in memory.
                watcher(cluster_api.clone(), watcher::Config::default())
                    .modify(|cluster| cluster.managed_fields_mut().clear()),
            )
            .default_backoff()
            // The store has taken the event in by now: tell the cluster's open sessions.
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Apply(cluster)) => {
                        status.observed(&cluster);
                        gate.publish(&cluster.name_any());
                    }
                    Ok(watcher::Event::Delete(cluster)) => gate.publish(&cluster.name_any()),
                    Ok(watcher::Event::InitApply(cluster)) => status.observed(&cluster),
                    Ok(watcher::Event::InitDone) => gate.publish_all(),
                    Ok(watcher::Event::Init) | Err(_) => {}
                }
                futures::future::ready(())
            }),
        )
    };
    // One task waits for the first list and tells the others: kube-runtime's
    // `Store::wait_until_ready` wakes only one of several concurrent waiters (a oneshot receiver
    // keeps one waker).
    let (listed_sender, listed) = watch::channel(false);
    let listed_task = {
        let store = store.clone();
        control.spawn(async move {
            if store.wait_until_ready().await.is_ok() {
                listed_sender.send_replace(true);
            }
            // Keep the sender: receivers then wait for nothing rather than fail.
            std::future::pending::<()>().await;
        })
    };
    let (stop_sender, stopping) = watch::channel(false);
    let stopped = |mut stopping: watch::Receiver<bool>| async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let status_task = control.spawn(status.clone().run(stopped(stopping.clone())));

    // Replicas: this one's Lease, everyone's Leases, and the sweep that clears statuses of
    // replicas that stopped renewing.
    let lease_duration = settings.replica_lease_duration;
    let lease_api = Api::<Lease>::namespaced(client.clone(), &namespace);
    let liveness = Arc::new(Mutex::new(ReplicaLiveness::new(
        &settings.replica,
        lease_duration,
        Instant::now(),
    )));
    let lease_task = control.spawn(
        ReplicaLease::new(
            lease_api.clone(),
            &settings.replica,
            lease_duration,
            settings.pod_uid.as_deref(),
        )
        .keep(stopped(stopping.clone())),
    );
    let replicas_task = control.spawn(clusters::writer::watch_replicas(
        lease_api,
        liveness.clone(),
    ));
    let sweep_task = control.spawn(clusters::writer::sweep_forever(
        status.clone(),
        store.clone(),
        listed.clone(),
        liveness,
        (lease_duration / 3).max(Duration::from_millis(200)),
        stopped(stopping.clone()),
    ));

    let readiness_task = {
        let tls = material.tls.clone();
        let health = health.clone();
        let mut listed = listed.clone();
        control.spawn(async move {
            // Until the first list, every agent would be refused as unregistered.
            health.set_not_ready("waiting for the first list of RelayClusters");
            if listed.wait_for(|listed| *listed).await.is_err() {
                return;
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
        gate,
        token_failures: (settings.token_failure_burst, settings.token_failure_refill),
        status,
        metrics: metrics.clone(),
        recorder,
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
    info!(%address, namespace = %namespace, trust_domain = %settings.trust_domain, replica = %settings.replica, "relay server listening (TLS 1.3, gRPC)");
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
    listed_task.abort();
    // Let the status writer record the disconnects before the watches go, then give up the
    // Lease (other replicas need not wait for it to lapse).
    let _ = tokio::time::timeout(Duration::from_secs(5), status_task).await;
    sweep_task.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    replicas_task.abort();
    secrets_task.abort();
    clusters_task.abort();
    served.map_err(|e| Error::Tls {
        what: format!("serving the relay on {address}"),
        detail: e.to_string(),
    })
}
