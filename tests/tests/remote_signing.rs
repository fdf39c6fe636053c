//! Remote signing across two clusters, each its own sandbox: the management cluster runs the
//! relay server; the workload cluster runs cert-manager (simulator), `relay-issuer controller`
//! with a `RelayIssuer` in `spec.relay` mode, and the agent.
//!
//! - Token bootstrap → first certificate → the agent connects → the token is removed → renewal
//!   authenticated by the agent's own certificate (mTLS) → the agent swaps.
//! - The relay server stopped across a renewal: the request stays Pending, then is Issued once
//!   the server is back.

use std::time::{Duration, Instant};

use cert_manager_sim::approver::ApproverMode;
use cert_manager_sim::{Simulator, SimulatorOptions};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use kube_sandbox::Sandbox;
use relay_issuer::api::{RelayCluster, RelayClusterStatus};
use relay_sandbox::harness::{self, Replica, put_secret_data};
use relay_sandbox::relay::{
    RELAY_NAMESPACE, RelayPki, RelayServer, TOKEN, agent_certificate, install_secrets,
    metric_value, register_cluster, relay_settings,
};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

/// The agent's namespace in the workload cluster.
const AGENT_NS: &str = "team-a";

struct Clusters {
    management: Sandbox,
    workload: Sandbox,
    _simulator: Simulator,
    controller: Replica,
    server: Option<RelayServer>,
    port: u16,
    pki: RelayPki,
}

impl Clusters {
    async fn start(certificate_duration: &str, renew_before: &str) -> Result<Self, BoxError> {
        relay_issuer::install_crypto_provider();
        let management = harness::sandbox().await?;
        let workload = harness::sandbox().await?;
        let m = management.client()?;
        let w = workload.client()?;
        let pki = RelayPki::new()?;
        install_secrets(&m, RELAY_NAMESPACE, &pki).await?;
        register_cluster(&m, RELAY_NAMESPACE, "cluster-a").await?;
        let server = RelayServer::start(m.clone(), relay_settings()).await?;
        let port = server.address.port();

        let simulator = Simulator::start(
            &workload,
            SimulatorOptions {
                approver: ApproverMode::ApproveAll,
                relaxed: true,
                backoff_scale: 0.0001,
                interval: Duration::from_millis(50),
            },
        )?;
        put_secret_data(
            &w,
            AGENT_NS,
            "relay-root-tls-secret",
            &[("ca.crt", &pki.root)],
        )
        .await?;
        put_secret_data(
            &w,
            AGENT_NS,
            "relay-identity-token-secret",
            &[("token", TOKEN)],
        )
        .await?;
        harness::create_issuer(
            &w,
            Some(AGENT_NS),
            "relay",
            json!({"relay": {
                "address": format!("https://127.0.0.1:{port}"),
                "serverName": "localhost",
                "cluster": "cluster-a",
            }}),
        )
        .await?;
        let controller = Replica::alone(w.clone());
        let certificates = Api::<DynamicObject>::namespaced_with(
            w.clone(),
            AGENT_NS,
            &cert_manager_sim::resource("Certificate", "certificates"),
        );
        let certificate: DynamicObject = serde_json::from_value(agent_certificate(
            AGENT_NS,
            "cluster-a",
            "relay",
            certificate_duration,
            renew_before,
        ))?;
        certificates
            .create(&PostParams::default(), &certificate)
            .await?;
        Ok(Self {
            management,
            workload,
            _simulator: simulator,
            controller,
            server: Some(server),
            port,
            pki,
        })
    }

    fn server_metric(&self, series: &str) -> f64 {
        self.server
            .as_ref()
            .map_or(0.0, |s| metric_value(&s.metrics_text(), series))
    }

    async fn cluster_status(&self) -> Option<RelayClusterStatus> {
        let api: Api<RelayCluster> =
            Api::namespaced(self.management.client().ok()?, RELAY_NAMESPACE);
        api.get("cluster-a").await.ok().and_then(|c| c.status)
    }

    async fn start_agent(&self) -> Result<relay_agent::Agent, BoxError> {
        let mut config = relay_agent::Config::new(
            AGENT_NS,
            &format!("https://127.0.0.1:{}", self.port),
            "cluster-a",
        );
        config.server_name = Some("localhost".into());
        config.heartbeat_interval = Duration::from_millis(200);
        config.backoff.base = Duration::from_millis(100);
        config.backoff.max = Duration::from_millis(500);
        Ok(relay_agent::Agent::start(config, self.workload.client()?).await?)
    }
}

async fn wait_for<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, BoxError> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {within:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_by_token_then_renewal_by_mtls_and_the_agent_swaps() -> TestResult {
    let clusters = Clusters::start("20s", "10s").await?;
    // The first certificate comes through the token.
    wait_for(
        "a token-authenticated signature",
        Duration::from_secs(20),
        async || {
            (clusters.server_metric(
                "relay_server_sign_requests_total{outcome=\"issued\",auth=\"token\"}",
            ) >= 1.0)
                .then_some(())
        },
    )
    .await?;
    let agent = clusters.start_agent().await?;
    let first = wait_for("the agent connected", Duration::from_secs(20), async || {
        clusters
            .cluster_status()
            .await
            .filter(|s| s.connected)
            .and_then(|s| s.certificate_serial)
    })
    .await?;

    // The token is gone: renewals must authenticate with the agent's certificate.
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(clusters.workload.client()?, AGENT_NS)
        .delete("relay-identity-token-secret", &DeleteParams::default())
        .await?;
    let token_signatures = clusters
        .server_metric("relay_server_sign_requests_total{outcome=\"issued\",auth=\"token\"}");
    let renewal = wait_for(
        "a renewal authenticated by mTLS",
        Duration::from_secs(30),
        async || {
            (clusters.server_metric(
                "relay_server_sign_requests_total{outcome=\"issued\",auth=\"certificate\"}",
            ) >= 1.0)
                .then_some(())
        },
    )
    .await;
    if renewal.is_err() {
        let requests = harness::requests(&clusters.workload.client()?, AGENT_NS)
            .list(&Default::default())
            .await?;
        for r in requests.items {
            eprintln!(
                "{}: {:?}",
                r.metadata.name.clone().unwrap_or_default(),
                harness::ready_condition(&r)
            );
        }
        eprintln!(
            "{}",
            clusters
                .server
                .as_ref()
                .map(|s| s.metrics_text())
                .unwrap_or_default()
        );
    }
    renewal?;
    let renewed = wait_for(
        "the agent swapped to the renewed certificate",
        Duration::from_secs(20),
        async || {
            clusters
                .cluster_status()
                .await
                .filter(|s| s.connected)
                .and_then(|s| s.certificate_serial)
                .filter(|serial| *serial != first)
        },
    )
    .await?;
    assert_ne!(renewed, first);
    assert_eq!(
        clusters
            .server_metric("relay_server_sign_requests_total{outcome=\"issued\",auth=\"token\"}"),
        token_signatures,
        "no token use after the token was removed"
    );
    assert!(agent.metrics().certificate_swaps.get() >= 1);
    assert_eq!(agent.metrics().rpc_failures.get(), 0);
    agent.stop().await;
    clusters.controller.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_waits_pending_while_the_relay_server_is_down() -> TestResult {
    let mut clusters = Clusters::start("1h", "1m").await?;
    let w = clusters.workload.client()?;
    let requests = harness::requests(&w, AGENT_NS);
    wait_for(
        "the first certificate",
        Duration::from_secs(20),
        async || {
            let list = requests.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .any(|r| harness::ready_condition(r).is_some_and(|c| c["reason"] == "Issued"))
                .then_some(())
        },
    )
    .await?;

    // Stop the relay server, then ask for a renewal (a new request for the same Certificate).
    if let Some(server) = clusters.server.take() {
        server.stop().await?;
    }
    let started = Instant::now();
    // What cert-manager sends for the agent's Certificate: CN and SPIFFE URI of the cluster.
    let usages = ["client auth", "digital signature"];
    let csr = harness::csr_pem(&json!({
        "commonName": "cluster-a",
        "uris": ["spiffe://relay.local/relay/cluster/cluster-a"],
        "usages": usages,
    }))?;
    harness::create_request_with(
        &w,
        AGENT_NS,
        "renewal",
        json!({
            "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr.as_bytes()),
            "issuerRef": {"group": "relaytls.dev", "kind": "RelayIssuer", "name": "relay"},
            "duration": "1h",
            "usages": usages,
        }),
    )
    .await?;
    let pending =
        harness::wait_for_reason(&requests, "renewal", "Pending", Duration::from_secs(20)).await;
    let message = harness::ready_condition(&pending)
        .and_then(|c| c["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(message.contains("unavailable"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", clusters.port)),
        "{message}"
    );

    // The controller retries by itself while the server is down: hold the port, hang up on
    // the next attempt, then serve on it again. The request recovers by itself.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", clusters.port)).await?;
    let (retry, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .map_err(|_| "the controller made no further attempt within 20 s")??;
    drop(retry);
    clusters.server = Some(
        RelayServer::start_on(clusters.management.client()?, relay_settings(), listener).await?,
    );
    harness::wait_for_reason(&requests, "renewal", "Issued", Duration::from_secs(30)).await;
    eprintln!(
        "renewal issued {:?} after the server went down",
        started.elapsed()
    );
    let _ = &clusters.pki;
    clusters.controller.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_by_the_relay_server_fails_the_request_with_the_servers_reason() -> TestResult {
    let clusters = Clusters::start("1h", "1m").await?;
    let w = clusters.workload.client()?;
    // An issuer for a cluster the management cluster never registered.
    harness::create_issuer(
        &w,
        Some(AGENT_NS),
        "stranger",
        json!({"relay": {
            "address": format!("https://127.0.0.1:{}", clusters.port),
            "serverName": "localhost",
            "cluster": "cluster-z",
        }}),
    )
    .await?;
    let usages = ["client auth", "digital signature"];
    let csr = harness::csr_pem(&json!({
        "commonName": "cluster-z",
        "uris": ["spiffe://relay.local/relay/cluster/cluster-z"],
        "usages": usages,
    }))?;
    harness::create_request_with(
        &w,
        AGENT_NS,
        "stranger",
        json!({
            "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr.as_bytes()),
            "issuerRef": {"group": "relaytls.dev", "kind": "RelayIssuer", "name": "stranger"},
            "usages": usages,
        }),
    )
    .await?;
    let requests = harness::requests(&w, AGENT_NS);
    let failed =
        harness::wait_for_reason(&requests, "stranger", "Failed", Duration::from_secs(20)).await;
    let message = harness::ready_condition(&failed)
        .and_then(|c| c["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        message.contains("refused to sign (PermissionDenied)"),
        "{message}"
    );
    assert!(
        message.contains("cluster \"cluster-z\" is not registered"),
        "{message}"
    );
    assert!(message.contains("RelayCluster"), "{message}");
    clusters.controller.stop().await;
    Ok(())
}
