//! Several relay server replicas on one sandbox: an agent moving between replicas never makes
//! its RelayCluster flap, a replica that stops renewing its Lease has its "connected" statuses
//! cleared by the others, a replica's own statuses from before a restart are cleared, a
//! status cleared while a session is open here is claimed back, a replica is not ready before
//! it has listed the RelayClusters, Secret reloads reach every replica, and a replica's
//! Kubernetes side (its Lease) keeps going while every worker serving agents is busy.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relay_issuer::api::{RelayCluster, RelayClusterStatus};
use relay_issuer::server::Settings;
use relay_sandbox::harness::put_secret_data;
use relay_sandbox::relay::{
    AgentSession, Pem, RELAY_NAMESPACE, RelayPki, RelayServer, client_config, connect_agent,
    install_secrets, metric_value, presented_serial, register_cluster, relay_settings, relay_world,
};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn replica(name: &str) -> Settings {
    let mut settings = relay_settings();
    settings.replica = name.into();
    settings.replica_lease_duration = Duration::from_secs(1);
    settings
}

async fn status(client: &kube::Client, name: &str) -> Option<RelayClusterStatus> {
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    api.get(name).await.ok().and_then(|c| c.status)
}

/// Waits (following the RelayCluster with a watch) until its status passes `check`.
async fn wait_status(
    client: &kube::Client,
    name: &str,
    what: &str,
    check: impl Fn(&RelayClusterStatus) -> bool,
) -> RelayClusterStatus {
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    let passes = |cluster: Option<&RelayCluster>| {
        cluster.and_then(|c| c.status.as_ref()).is_some_and(&check)
    };
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        kube::runtime::wait::await_condition(api, name, passes),
    )
    .await;
    match waited {
        Ok(Ok(Some(RelayCluster {
            status: Some(status),
            ..
        }))) => status,
        other => panic!(
            "RelayCluster {name}: never {what}; the wait ended with {other:?}, the status now is {:?}",
            status(client, name).await
        ),
    }
}

fn through(replica: &str) -> impl Fn(&RelayClusterStatus) -> bool + '_ {
    move |s| s.connected && s.replica.as_deref() == Some(replica)
}

/// Opens a session for `cluster` on `server` and waits until its status names `replica`.
async fn connect_through(
    client: &kube::Client,
    server: &RelayServer,
    pki: &RelayPki,
    cert: &Pem,
    cluster: &str,
    replica: &str,
) -> Result<AgentSession, tonic::Status> {
    let session = connect_agent(server.address, &pki.root, cert, cluster).await?;
    wait_status(
        client,
        cluster,
        &format!("connected through {replica}"),
        through(replica),
    )
    .await;
    Ok(session)
}

async fn set_status(client: &kube::Client, name: &str, status: serde_json::Value) -> TestResult {
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Waits until `series` of `server` counts at least one.
async fn wait_metric(server: &RelayServer, series: &str) {
    let text = server
        .wait_metric(series, 1.0, Duration::from_secs(20))
        .await;
    assert!(
        metric_value(&text, series) >= 1.0,
        "{series} never counted: {text}"
    );
}

/// A replica that served before its first list of RelayClusters would refuse every agent as
/// unregistered (a fleet's connect storm after a restart): it is not ready until then.
#[tokio::test]
async fn a_replica_is_not_ready_before_it_has_listed_the_relay_clusters() -> TestResult {
    relay_issuer::install_crypto_provider();
    // No RelayCluster CRD yet: the list fails until it is registered.
    let sandbox = kube_sandbox::Sandbox::start().await?;
    let client = sandbox.client()?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": RELAY_NAMESPACE}}))?,
        )
        .await?;
    let pki = RelayPki::new()?;
    install_secrets(&client, RELAY_NAMESPACE, &pki).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = RelayServer::spawn_on(client.clone(), replica("relay-a"), listener)?;
    // Sentinel: both TLS Secrets loaded; readiness still waits for the list.
    for secret in ["server_tls", "root_tls"] {
        wait_metric(
            &server,
            &format!("relay_server_secret_reloads_total{{secret=\"{secret}\",reason=\"\"}}"),
        )
        .await;
    }
    assert_eq!(
        server.health.readiness(),
        Err("waiting for the first list of RelayClusters".to_string())
    );
    for crd in relay_issuer::api::crds().into_values() {
        sandbox.create_crd(serde_json::to_value(&crd)?)?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !server.health.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            server.health.readiness()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn an_agent_moving_between_replicas_never_shows_disconnected() -> TestResult {
    let (_sandbox, client, pki) = relay_world(&["cluster-a"]).await?;
    let a = RelayServer::start(client.clone(), replica("relay-a")).await?;
    let b = RelayServer::start(client.clone(), replica("relay-b")).await?;
    let cert = pki.agent("cluster-a", time::Duration::hours(1))?;

    let on_a = connect_through(&client, &a, &pki, &cert, "cluster-a", "relay-a").await?;

    // Record every status from here on.
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    let (seen_sender, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let recorder = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(cluster) | watcher::Event::InitApply(cluster) = event {
                let _ = seen_sender.send(cluster);
            }
        }
    });

    // The agent moves to relay-b (the new stream first, as after a swap through the Service),
    // then its stream on relay-a ends: relay-a's disconnect no longer holds.
    let on_b = connect_through(&client, &b, &pki, &cert, "cluster-a", "relay-b").await?;
    drop(on_a);
    wait_metric(
        &a,
        "relay_server_status_writes_total{kind=\"update\",outcome=\"superseded\"}",
    )
    .await;

    // Sentinel: a label written after relay-a's refused write; every status the watch
    // delivered before it must say connected.
    let sentinel = "relaytls.dev/sentinel";
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    api.patch(
        "cluster-a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {sentinel: "1"}}})),
    )
    .await?;
    let mut statuses = Vec::new();
    while let Some(cluster) = tokio::time::timeout(Duration::from_secs(20), seen.recv()).await? {
        if cluster
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(sentinel))
        {
            break;
        }
        statuses.push(cluster.status);
    }
    recorder.abort();
    assert!(!statuses.is_empty());
    assert!(
        statuses
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.connected)),
        "the cluster flapped: {statuses:?}"
    );
    let now = status(&client, "cluster-a").await.ok_or("no status")?;
    assert!(through("relay-b")(&now), "{now:?}");

    // relay-b's own disconnect does hold.
    drop(on_b);
    let gone = wait_status(&client, "cluster-a", "disconnected", |s| !s.connected).await;
    assert_eq!(gone.replica.as_deref(), Some("relay-b"));
    a.stop().await?;
    b.stop().await?;
    Ok(())
}

#[tokio::test]
async fn statuses_nobody_alive_holds_are_cleared_and_live_sessions_are_claimed_back() -> TestResult
{
    let (_sandbox, client, pki) = relay_world(&[]).await?;
    let connected_through = |replica: &str| json!({"connected": true, "streams": 1, "replica": replica, "certificateSerial": "0a:0b"});
    // Held by: a replica that never had a Lease; one whose Lease is not renewed any more;
    // relay-a itself before a restart; a server from before replicas (no replica named); a
    // replica whose Lease runs for an hour.
    let held = [
        ("by-ghost", Some("relay-ghost")),
        ("by-dying", Some("relay-dying")),
        ("by-my-last-run", Some("relay-a")),
        ("by-old-server", None),
        ("by-live", Some("relay-live")),
    ];
    for (cluster, holder) in held {
        register_cluster(&client, RELAY_NAMESPACE, cluster).await?;
        let mut status = connected_through(holder.unwrap_or_default());
        if holder.is_none() {
            status["replica"] = serde_json::Value::Null;
        }
        set_status(&client, cluster, status).await?;
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    for (holder, seconds) in [("relay-dying", 1), ("relay-live", 3600)] {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {
                "name": format!("relay-server-{holder}"),
                "labels": {"relaytls.dev/relay-server-replica": holder},
            },
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": seconds,
                "renewTime": "2026-12-05T00:00:00.000000Z",
            },
        }))?;
        leases.create(&PostParams::default(), &lease).await?;
    }

    let a = RelayServer::start(client.clone(), replica("relay-a")).await?;
    for cluster in ["by-ghost", "by-dying", "by-my-last-run", "by-old-server"] {
        let cleared = wait_status(&client, cluster, "cleared", |s| !s.connected).await;
        assert_eq!(cleared.streams, 0);
        assert_eq!(
            cleared.certificate_serial.as_deref(),
            Some("0a:0b"),
            "the rest of the status is kept"
        );
    }
    // The sweep that cleared those looked at by-live in the same pass.
    let live = status(&client, "by-live").await.ok_or("no status")?;
    assert!(through("relay-live")(&live), "{live:?}");
    // relay-a's own Lease exists and names it.
    let own = leases.get("relay-server-relay-a").await?;
    assert_eq!(
        own.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("relay-a")
    );

    // A session held here whose status someone cleared is claimed back by the next sweep.
    register_cluster(&client, RELAY_NAMESPACE, "cluster-a").await?;
    let cert = pki.agent("cluster-a", time::Duration::hours(1))?;
    let _session = connect_through(&client, &a, &pki, &cert, "cluster-a", "relay-a").await?;
    set_status(
        &client,
        "cluster-a",
        json!({"connected": false, "streams": 0}),
    )
    .await?;
    wait_status(&client, "cluster-a", "claimed back", through("relay-a")).await;

    // A clean stop gives the Lease up.
    a.stop().await?;
    assert!(leases.get_opt("relay-server-relay-a").await?.is_none());
    Ok(())
}

/// Every replica watches the Secrets itself: a new server certificate and a new trust bundle
/// reach all of them.
#[tokio::test]
async fn every_replica_reloads_the_server_certificate_and_the_trust_bundle() -> TestResult {
    let (_sandbox, client, pki) = relay_world(&["cluster-a"]).await?;
    let replicas = [
        RelayServer::start(client.clone(), replica("relay-a")).await?,
        RelayServer::start(client.clone(), replica("relay-b")).await?,
    ];
    let new = pki.new_server_certificate()?;
    put_secret_data(
        &client,
        RELAY_NAMESPACE,
        "relay-server-tls-secret",
        &[("tls.crt", &new.chain), ("tls.key", &new.key)],
    )
    .await?;
    // A trust bundle of another root only: agents of the old root are refused by every replica.
    let other = RelayPki::new()?;
    put_secret_data(
        &client,
        RELAY_NAMESPACE,
        "relay-root-tls-secret",
        &[("ca.crt", &other.root)],
    )
    .await?;
    let agent = pki.agent("cluster-a", time::Duration::hours(1))?;
    for server in &replicas {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let serial = presented_serial(server.address, client_config(&pki.root, None)?).await?;
            let refused = connect_agent(server.address, &pki.root, &agent, "cluster-a")
                .await
                .is_err();
            if serial == new.serial() && refused {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a replica kept serial {serial} or still accepts the old root"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for server in replicas {
        server.stop().await?;
    }
    Ok(())
}

/// `relay-issuer server` serves agents on one runtime and talks to the Kubernetes API from
/// another: with the only serving worker blocked (as a connect storm keeps the workers busy),
/// the replica still renews its Lease, and once the worker is free an agent connects and its
/// status is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_while_every_serving_worker_is_busy() -> TestResult {
    let (_sandbox, client, pki) = relay_world(&["cluster-a"]).await?;
    let serving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = serving
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await??;
    let server = RelayServer::spawn_on_runtimes(
        client.clone(),
        replica("relay-a"),
        listener,
        serving.handle(),
        tokio::runtime::Handle::current(),
    )?;
    // Every renewal of relay-a's Lease, as a watch delivers it.
    let leases: Api<Lease> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    let mut renewals = std::pin::pin!(
        watcher(leases, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .filter_map(|lease| async move {
                let lease = lease.ok()?;
                (lease.metadata.name.as_deref() == Some("relay-server-relay-a")).then_some(())?;
                Some(lease.spec?.renew_time?.0)
            })
    );
    tokio::time::timeout(Duration::from_secs(20), renewals.next())
        .await?
        .ok_or("the Lease watch ended")?;

    // Block the serving runtime's only worker until told otherwise.
    let (blocking, blocked) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    serving.spawn(async move {
        let _ = blocking.send(());
        let _ = released.recv();
    });
    tokio::task::spawn_blocking(move || blocked.recv()).await??;
    // Two renewals stamped after the block began (every third of the 1 s Lease); renewals the
    // watch delivers late from before it do not count.
    let block_began = k8s_openapi::jiff::Timestamp::now();
    let renewed_twice = async {
        let mut during = std::collections::BTreeSet::new();
        while during.len() < 2 {
            let renewed = tokio::time::timeout(Duration::from_secs(10), renewals.next())
                .await
                .map_err(|_| {
                    format!(
                        "the Lease was renewed {} times while the serving worker was busy, not 2",
                        during.len()
                    )
                })?
                .ok_or("the Lease watch ended")?;
            if renewed > block_began {
                during.insert(renewed);
            }
        }
        Ok::<_, String>(())
    }
    .await;
    release.send(())?;
    if let Err(failed) = renewed_twice {
        serving.shutdown_background();
        return Err(failed.into());
    }

    // Agents are served on the (now free) serving runtime, statuses written from control.
    let cert = pki.agent("cluster-a", time::Duration::hours(1))?;
    let _session = connect_through(&client, &server, &pki, &cert, "cluster-a", "relay-a").await?;
    server.stop().await?;
    serving.shutdown_background();
    Ok(())
}
