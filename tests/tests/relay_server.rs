//! `relay-issuer server` in-process against the sandbox: Connect and SignCertificate with every
//! kind of caller, RelayCluster status, and hot reload of the server certificate and trust
//! bundle (including broken Secrets, which keep the old data with a Warning event).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use relay_issuer::api::RelayCluster;
use relay_proto::v1::relay_certificates_client::RelayCertificatesClient;
use relay_proto::v1::relay_client::RelayClient;
use relay_proto::{AgentMessage, SignCertificateRequest, server_message};
use relay_sandbox::harness::put_secret_data;
use relay_sandbox::relay::{
    AgentSession, Pem, RELAY_NAMESPACE, RelayPki, RelayServer, TOKEN, agent_csr, channel,
    client_config, connect_agent, handshake_then_reset, metric_value, presented_serial,
    relay_settings, relay_world,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct World {
    _sandbox: kube_sandbox::Sandbox,
    client: kube::Client,
    pki: RelayPki,
    server: RelayServer,
}

async fn world() -> Result<World, Box<dyn std::error::Error + Send + Sync>> {
    let (sandbox, client, pki) = relay_world(&["cluster-a", "cluster-b"]).await?;
    // Ready only after the RelayCluster reflector's first list, which holds both clusters.
    let server = RelayServer::start(client.clone(), relay_settings()).await?;
    Ok(World {
        _sandbox: sandbox,
        client,
        pki,
        server,
    })
}

/// Opens Connect to the world's server with `hello_cluster`.
async fn connect(
    world: &World,
    cert: &Pem,
    hello_cluster: &str,
) -> Result<AgentSession, tonic::Status> {
    connect_agent(world.server.address, &world.pki.root, cert, hello_cluster).await
}

async fn cluster_status(
    client: &kube::Client,
    name: &str,
) -> Option<relay_issuer::api::RelayClusterStatus> {
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    api.get(name).await.ok().and_then(|c| c.status)
}

async fn wait_status(
    client: &kube::Client,
    name: &str,
    check: impl Fn(&relay_issuer::api::RelayClusterStatus) -> bool,
) -> relay_issuer::api::RelayClusterStatus {
    for _ in 0..200 {
        if let Some(status) = cluster_status(client, name).await
            && check(&status)
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "RelayCluster {name} status never matched: {:?}",
        cluster_status(client, name).await
    );
}

#[tokio::test]
async fn a_registered_agent_connects_gets_its_identity_and_heartbeats() -> TestResult {
    let w = world().await?;
    let cert = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let (tx, mut inbound, welcome) = connect(&w, &cert, "cluster-a").await?;
    assert_eq!(welcome.cluster, "cluster-a");
    assert_eq!(
        welcome.spiffe_id,
        "spiffe://relay.local/relay/cluster/cluster-a"
    );
    assert_eq!(welcome.certificate_serial, cert.serial());
    for sequence in 1..=3 {
        tx.send(AgentMessage::heartbeat(sequence, 0)).await?;
        match inbound.next().await {
            Some(Ok(relay_proto::ServerMessage {
                message: Some(server_message::Message::Heartbeat(beat)),
            })) => assert_eq!(beat.sequence, sequence),
            other => panic!("expected a heartbeat echo, got {other:?}"),
        }
    }
    let status = wait_status(&w.client, "cluster-a", |s| s.connected).await;
    assert_eq!(
        status.certificate_serial.as_deref(),
        Some(cert.serial().as_str())
    );
    assert_eq!(status.streams, 1);
    assert_eq!(status.agent_version.as_deref(), Some("test"));
    // The root and intermediate the certificate chains to, by SHA-256 fingerprint (what a
    // root rotation waits on).
    let der = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    };
    assert_eq!(
        status.certificate_root,
        Some(relay_issuer::pki::anchor::fingerprint(&der(&w.pki.root)))
    );
    assert_eq!(
        status.certificate_issuer,
        Some(relay_issuer::pki::anchor::fingerprint(&der(&w
            .pki
            .intermediate)))
    );
    assert!(status.last_seen.is_some() && status.certificate_not_after.is_some());
    let text = w.server.metrics_text();
    assert_eq!(metric_value(&text, "relay_server_connected_agents"), 1.0);
    assert!(metric_value(&text, "relay_server_heartbeats_total") >= 3.0);

    drop(tx);
    drop(inbound);
    let status = wait_status(&w.client, "cluster-a", |s| !s.connected).await;
    assert_eq!(status.streams, 0);
    w.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn connect_refuses_unregistered_untrusted_anonymous_and_lying_agents() -> TestResult {
    let w = world().await?;
    // Unregistered cluster.
    let cert = w.pki.agent("cluster-z", time::Duration::hours(1))?;
    let status = connect(&w, &cert, "cluster-z").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("RelayCluster named \"cluster-z\""),
        "{status:?}"
    );
    // Hello that names another cluster.
    let cert = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let status = connect(&w, &cert, "cluster-b").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // No client certificate.
    let channel = channel(w.server.address, client_config(&w.pki.root, None)?).await?;
    let (_tx, rx) = mpsc::channel::<AgentMessage>(1);
    let status = RelayClient::new(channel)
        .connect(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // A certificate from another CA: the handshake itself fails.
    let other = RelayPki::new()?;
    let foreign = other.agent("cluster-a", time::Duration::hours(1))?;
    assert!(connect(&w, &foreign, "cluster-a").await.is_err());
    // The server counts the failed handshake on its side, after the client gave up.
    let series = "relay_server_handshake_failures_total{reason=\"untrusted_client_certificate\"}";
    let mut text = w.server.metrics_text();
    for _ in 0..200 {
        if metric_value(&text, series) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        text = w.server.metrics_text();
    }
    assert!(metric_value(&text, series) >= 1.0, "{text}");
    assert!(
        metric_value(
            &text,
            "relay_server_connect_refusals_total{reason=\"not_registered\"}"
        ) >= 1.0
    );
    assert!(
        metric_value(
            &text,
            "relay_server_connect_refusals_total{reason=\"hello_mismatch\"}"
        ) >= 1.0
    );
    assert!(
        metric_value(
            &text,
            "relay_server_connect_refusals_total{reason=\"no_client_certificate\"}"
        ) >= 1.0
    );
    w.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn probes_and_clients_that_reset_after_the_handshake_are_not_handshake_failures() -> TestResult
{
    let w = world().await?;
    // A TCP health check: connect, then close without a byte.
    drop(tokio::net::TcpStream::connect(w.server.address).await?);
    let probe = "relay_server_client_closed_connections_total{stage=\"before_client_hello\"}";
    let text = w
        .server
        .wait_metric(probe, 1.0, Duration::from_secs(10))
        .await;
    assert_eq!(metric_value(&text, probe), 1.0, "{text}");

    // TLS probes: complete the handshake (with and without a client certificate), then reset.
    // The server sees either the completed handshake or a reset after its whole flight.
    let cert = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let probes = 20;
    for i in 0..probes {
        let client = (i % 2 == 0).then_some(&cert);
        handshake_then_reset(w.server.address, client_config(&w.pki.root, client)?).await?;
    }
    let ended = |text: &str| {
        metric_value(
            text,
            "relay_server_handshakes_total{client=\"certificate\"}",
        ) + metric_value(text, "relay_server_handshakes_total{client=\"none\"}")
            + metric_value(
                text,
                "relay_server_client_closed_connections_total{stage=\"after_server_flight\"}",
            )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut text = w.server.metrics_text();
    while ended(&text) < f64::from(probes) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = w.server.metrics_text();
    }
    assert_eq!(ended(&text), f64::from(probes), "{text}");
    assert!(
        !text.contains("relay_server_handshake_failures_total{"),
        "no probe is a handshake failure: {text}"
    );

    // A real failure still counts as one.
    let foreign = RelayPki::new()?.agent("cluster-a", time::Duration::hours(1))?;
    assert!(connect(&w, &foreign, "cluster-a").await.is_err());
    let series = "relay_server_handshake_failures_total{reason=\"untrusted_client_certificate\"}";
    let text = w
        .server
        .wait_metric(series, 1.0, Duration::from_secs(10))
        .await;
    assert!(metric_value(&text, series) >= 1.0, "{text}");
    w.server.stop().await?;
    Ok(())
}

fn sign_request(csr: &str, cluster: &str) -> tonic::Request<SignCertificateRequest> {
    tonic::Request::new(SignCertificateRequest {
        csr_pem: csr.into(),
        cluster: cluster.into(),
        requested_duration_seconds: 0,
    })
}

fn with_token(
    mut request: tonic::Request<SignCertificateRequest>,
    token: &str,
) -> tonic::Request<SignCertificateRequest> {
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn bootstrap_with_the_token_then_renew_with_the_certificate() -> TestResult {
    let w = world().await?;
    let anonymous = channel(w.server.address, client_config(&w.pki.root, None)?).await?;
    let (csr, key) = agent_csr("cluster-a")?;
    let response = RelayCertificatesClient::new(anonymous)
        .sign_certificate(with_token(sign_request(&csr, "cluster-a"), TOKEN))
        .await?
        .into_inner();
    assert!(
        !response.chain_pem.contains(w.pki.root.trim()),
        "the root is not in the chain"
    );
    assert_eq!(
        response.ca_pem.trim(),
        w.pki.root.trim(),
        "ca.crt is the root"
    );
    let first = Pem {
        chain: response.chain_pem.clone(),
        key,
    };
    assert_eq!(first.serial(), response.serial);
    let lifetime = response.not_after_unix - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (8759 * 3600..=8760 * 3600).contains(&lifetime),
        "default TTL 8760h, got {lifetime}s"
    );
    let leaf = x509_parser::pem::parse_x509_pem(response.chain_pem.as_bytes())?.1;
    let identity = relay_issuer::pki::certificate_identity(&leaf.contents, "relay.local")?;
    assert_eq!(identity.cluster, "cluster-a");

    // Renewal: authenticated by the certificate just issued, no token.
    let with_cert = channel(w.server.address, client_config(&w.pki.root, Some(&first))?).await?;
    let (csr2, _) = agent_csr("cluster-a")?;
    let mut request = sign_request(&csr2, "cluster-a");
    request.get_mut().requested_duration_seconds = 3600;
    let renewed = RelayCertificatesClient::new(with_cert.clone())
        .sign_certificate(request)
        .await?
        .into_inner();
    assert_ne!(renewed.serial, response.serial);
    // The same certificate asking for cluster B is refused.
    let (csr_b, _) = agent_csr("cluster-b")?;
    let status = RelayCertificatesClient::new(with_cert)
        .sign_certificate(sign_request(&csr_b, "cluster-b"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("cannot obtain a certificate for cluster \"cluster-b\"")
    );
    let text = w.server.metrics_text();
    assert_eq!(
        metric_value(
            &text,
            "relay_server_sign_requests_total{outcome=\"issued\",auth=\"token\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "relay_server_sign_requests_total{outcome=\"issued\",auth=\"certificate\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "relay_server_sign_requests_total{outcome=\"permission_denied\",auth=\"certificate\"}"
        ),
        1.0
    );
    w.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_unauthenticated_then_rate_limited() -> TestResult {
    let w = world().await?;
    let anonymous = channel(w.server.address, client_config(&w.pki.root, None)?).await?;
    let mut signer = RelayCertificatesClient::new(anonymous);
    let (csr, _) = agent_csr("cluster-a")?;
    let status = signer
        .sign_certificate(sign_request(&csr, "cluster-a"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{status:?}");
    assert!(!status.message().contains(TOKEN));
    for _ in 0..4 {
        let status = signer
            .sign_certificate(with_token(sign_request(&csr, "cluster-a"), "wrong"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // Five failures used the burst: even the right token is now refused until it refills.
    let status = signer
        .sign_certificate(with_token(sign_request(&csr, "cluster-a"), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("retry in"), "{status:?}");
    // Unregistered cluster with the right token, from another address (limits are per address).
    w.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn token_callers_need_a_registered_cluster_and_a_matching_csr() -> TestResult {
    let w = world().await?;
    let anonymous = channel(w.server.address, client_config(&w.pki.root, None)?).await?;
    let mut signer = RelayCertificatesClient::new(anonymous);
    let (csr_z, _) = agent_csr("cluster-z")?;
    let status = signer
        .sign_certificate(with_token(sign_request(&csr_z, "cluster-z"), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not registered"));
    // A request whose cluster and CSR disagree is inconsistent: InvalidArgument.
    let (csr_b, _) = agent_csr("cluster-b")?;
    let status = signer
        .sign_certificate(with_token(sign_request(&csr_b, "cluster-a"), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("CSR names cluster \"cluster-b\""),
        "{status:?}"
    );
    let status = signer
        .sign_certificate(with_token(sign_request("garbage", "cluster-a"), TOKEN))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    w.server.stop().await?;
    Ok(())
}

async fn warning_events(client: &kube::Client, secret: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    events
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(secret)
        })
        .collect()
}

#[tokio::test]
async fn the_server_certificate_reloads_for_new_handshakes_and_open_streams_keep_running()
-> TestResult {
    let w = world().await?;
    let config = || client_config(&w.pki.root, None).unwrap();
    let old_serial = w.pki.server.serial();
    assert_eq!(
        presented_serial(w.server.address, config()).await?,
        old_serial
    );
    let agent = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let (tx, mut inbound, _) = connect(&w, &agent, "cluster-a").await?;

    let new = w.pki.new_server_certificate()?;
    put_secret_data(
        &w.client,
        RELAY_NAMESPACE,
        "relay-server-tls-secret",
        &[("tls.crt", &new.chain), ("tls.key", &new.key)],
    )
    .await?;
    let mut seen = String::new();
    for _ in 0..100 {
        seen = presented_serial(w.server.address, config()).await?;
        if seen == new.serial() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, new.serial(), "new handshakes get the new certificate");
    tx.send(AgentMessage::heartbeat(7, 0)).await?;
    assert!(
        matches!(
            inbound.next().await,
            Some(Ok(relay_proto::ServerMessage { message: Some(server_message::Message::Heartbeat(b)) })) if b.sequence == 7
        ),
        "the open stream keeps running"
    );

    // A broken Secret keeps the current certificate, with a Warning event and a metric.
    put_secret_data(
        &w.client,
        RELAY_NAMESPACE,
        "relay-server-tls-secret",
        &[("tls.crt", &new.chain), ("tls.key", &agent.key)],
    )
    .await?;
    let mut events = Vec::new();
    for _ in 0..100 {
        events = warning_events(&w.client, "relay-server-tls-secret").await;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 1, "one Warning event on the Secret");
    assert_eq!(
        events[0].reason.as_deref(),
        Some("InvalidServerCertificate")
    );
    let note = events[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("does not belong to the certificate"),
        "{note}"
    );
    assert!(!note.contains("PRIVATE KEY"), "{note}");
    assert_eq!(
        presented_serial(w.server.address, config()).await?,
        new.serial()
    );
    let text = w.server.metrics_text();
    assert_eq!(
        metric_value(
            &text,
            "relay_server_secret_reload_failures_total{secret=\"server_tls\",reason=\"key_mismatch\"}"
        ),
        1.0,
        "{text}"
    );
    w.server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_second_root_in_the_trust_bundle_admits_its_agents() -> TestResult {
    let w = world().await?;
    let other = RelayPki::new()?;
    let foreign = other.agent("cluster-a", time::Duration::hours(1))?;
    assert!(connect(&w, &foreign, "cluster-a").await.is_err());
    let bundle = format!("{}{}", w.pki.root, other.root);
    put_secret_data(
        &w.client,
        RELAY_NAMESPACE,
        "relay-root-tls-secret",
        &[("ca.crt", &bundle)],
    )
    .await?;
    let mut result = Err(tonic::Status::unknown("not tried"));
    for _ in 0..100 {
        // Our client must trust the server, which is still under the first root.
        let channel = channel(
            w.server.address,
            client_config(&w.pki.root, Some(&foreign))?,
        )
        .await;
        if channel.is_ok() {
            result = connect(&w, &foreign, "cluster-a").await.map(|_| ());
            if result.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    result?;
    // Both roots work at once.
    let own = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    connect(&w, &own, "cluster-b").await?;
    w.server.stop().await?;
    Ok(())
}
