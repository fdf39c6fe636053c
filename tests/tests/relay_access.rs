//! Deregistration, suspension and revocation take effect at once (`relay-issuer server`
//! in-process against the sandbox): a live stream is cut within a second of the RelayCluster
//! change, reconnects and signing are refused with a reason that says what to do, clearing the
//! change lets the agent back in without a restart, other clusters are untouched, and a deleted
//! RelayCluster's status is no longer written.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use relay_issuer::api::RelayCluster;
use relay_proto::v1::relay_certificates_client::RelayCertificatesClient;
use relay_proto::{AgentMessage, ServerMessage, SignCertificateRequest, server_message};
use relay_sandbox::relay::{
    AgentSession, Pem, RELAY_NAMESPACE, RelayPki, RelayServer, TOKEN, agent_csr, channel,
    client_config, connect_agent, issue_agent_aged, metric_value, register_cluster, relay_settings,
    relay_world,
};
use serde_json::json;
use tonic::Code;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How soon a live stream must end after its RelayCluster changed (issue 16).
const CUT_WITHIN: Duration = Duration::from_secs(1);

struct World {
    sandbox: kube_sandbox::Sandbox,
    client: kube::Client,
    pki: RelayPki,
    server: RelayServer,
}

impl World {
    async fn start() -> Result<Self, BoxError> {
        let (sandbox, client, pki) = relay_world(&["cluster-a", "cluster-b"]).await?;
        let server = RelayServer::start(client.clone(), relay_settings()).await?;
        Ok(Self {
            sandbox,
            client,
            pki,
            server,
        })
    }

    fn clusters(&self) -> Api<RelayCluster> {
        Api::namespaced(self.client.clone(), RELAY_NAMESPACE)
    }

    async fn connect(&self, cert: &Pem, cluster: &str) -> Result<AgentSession, tonic::Status> {
        connect_agent(self.server.address, &self.pki.root, cert, cluster).await
    }

    async fn set_spec(&self, cluster: &str, spec: serde_json::Value) -> Result<(), BoxError> {
        self.clusters()
            .patch(
                cluster,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    /// Signs a CSR for `cluster` with the token, or with `cert` as the caller's certificate.
    async fn sign(&self, cluster: &str, cert: Option<&Pem>) -> Result<String, tonic::Status> {
        let config = client_config(&self.pki.root, cert)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let channel = channel(self.server.address, config)
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let (csr, _) = agent_csr(cluster).map_err(|e| tonic::Status::internal(e.to_string()))?;
        let mut request = tonic::Request::new(SignCertificateRequest {
            csr_pem: csr,
            cluster: cluster.into(),
            requested_duration_seconds: 3600,
        });
        if cert.is_none() {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        }
        RelayCertificatesClient::new(channel)
            .sign_certificate(request)
            .await
            .map(|response| response.into_inner().serial)
    }

    /// Warning events the server wrote about RelayCluster `cluster`, by reason.
    async fn event_reasons(&self, cluster: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), RELAY_NAMESPACE);
        events
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(cluster))
            .filter_map(|e| e.reason)
            .collect()
    }

    async fn wait_event(&self, cluster: &str, reason: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .event_reasons(cluster)
                .await
                .iter()
                .any(|r| r == reason)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no {reason} event for {cluster}: {:?}",
            self.event_reasons(cluster).await
        );
    }
}

/// Waits for the session's stream to end; returns the status it ended with and how long after
/// `since` that was, or panics if it is still open after `CUT_WITHIN` plus a margin for the
/// report (the assertion on the figure is the caller's).
async fn ended(session: &mut AgentSession, since: Instant) -> (tonic::Status, Duration) {
    let (_, inbound, _) = session;
    loop {
        match tokio::time::timeout(CUT_WITHIN * 5, inbound.next()).await {
            Ok(Some(Err(status))) => return (status, since.elapsed()),
            Ok(Some(Ok(_))) => {}
            Ok(None) => panic!("the stream ended without a status"),
            Err(_) => panic!("the stream is still open {:?} later", CUT_WITHIN * 5),
        }
    }
}

/// The session is alive: a heartbeat is echoed.
async fn echoes(session: &mut AgentSession, sequence: u64) {
    let (tx, inbound, _) = session;
    tx.send(AgentMessage::heartbeat(sequence, 0)).await.unwrap();
    match inbound.next().await {
        Some(Ok(ServerMessage {
            message: Some(server_message::Message::Heartbeat(beat)),
        })) => assert_eq!(beat.sequence, sequence),
        other => panic!("expected the echo of heartbeat {sequence}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspending_a_cluster_cuts_its_stream_at_once_refuses_it_and_resuming_lets_it_back()
-> TestResult {
    let w = World::start().await?;
    let cert_a = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let cert_b = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    let mut a = w.connect(&cert_a, "cluster-a").await?;
    let mut b = w.connect(&cert_b, "cluster-b").await?;
    echoes(&mut a, 1).await;

    let since = Instant::now();
    w.set_spec("cluster-a", json!({"suspended": true})).await?;
    let (status, took) = ended(&mut a, since).await;
    eprintln!("suspension: cluster-a's stream cut {took:?} after the patch returned");
    assert!(took <= CUT_WITHIN, "cut after {took:?}");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("suspended")
            && status
                .message()
                .contains("patch relaycluster cluster-a --type merge"),
        "{status:?}"
    );
    // Another cluster is untouched.
    echoes(&mut b, 1).await;

    // Reconnects and signing (token or certificate) are refused while suspended.
    let refused = w.connect(&cert_a, "cluster-a").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("suspended"), "{refused:?}");
    for cert in [None, Some(&cert_a)] {
        let refused = w.sign("cluster-a", cert).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
        assert!(refused.message().contains("suspended"), "{refused:?}");
    }
    w.sign("cluster-b", Some(&cert_b)).await?;
    w.wait_event("cluster-a", "StreamClosedSuspended").await;
    let text = w.server.metrics_text();
    for (series, value) in [
        ("relay_server_streams_cut_total{reason=\"suspended\"}", 1.0),
        (
            "relay_server_connect_refusals_total{reason=\"suspended\"}",
            1.0,
        ),
        (
            "relay_server_sign_requests_total{outcome=\"suspended\",auth=\"token\"}",
            1.0,
        ),
        (
            "relay_server_sign_requests_total{outcome=\"suspended\",auth=\"certificate\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric_value(&text, series), value, "{series}\n{text}");
    }
    let shown = w.clusters().get("cluster-a").await?;
    assert!(shown.spec.suspended);

    // Resumed: the same certificate gets back in, no restart of anything.
    w.set_spec("cluster-a", json!({"suspended": false})).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match w.connect(&cert_a, "cluster-a").await {
            Ok(session) => break session,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("still refused after resuming: {status:?}"),
        }
    };
    echoes(&mut again, 2).await;
    w.sign("cluster-a", None).await?;
    w.server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_cuts_its_stream_and_its_status_is_no_longer_written() -> TestResult {
    let w = World::start().await?;
    let cert_a = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let cert_b = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    let mut a = w.connect(&cert_a, "cluster-a").await?;
    let mut b = w.connect(&cert_b, "cluster-b").await?;
    w.server
        .wait_metric(
            "relay_server_status_writes_total{kind=\"claim\",outcome=\"written\"}",
            2.0,
            Duration::from_secs(10),
        )
        .await;
    let writes_to_a = || {
        w.sandbox
            .requests()
            .iter()
            .filter(|r| {
                r.resource == "relayclusters"
                    && r.subresource == "status"
                    && r.name == "cluster-a"
                    && r.verb == "patch"
            })
            .count()
    };
    let before = writes_to_a();

    let since = Instant::now();
    w.clusters()
        .delete("cluster-a", &DeleteParams::default())
        .await?;
    let (status, took) = ended(&mut a, since).await;
    eprintln!("deletion: cluster-a's stream cut {took:?} after the delete returned");
    assert!(took <= CUT_WITHIN, "cut after {took:?}");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("not registered"), "{status:?}");
    echoes(&mut b, 1).await;
    let refused = w.connect(&cert_a, "cluster-a").await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(
        w.sign("cluster-a", None).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // The stream's close tried one write, which found the RelayCluster gone (404) ...
    w.server
        .wait_metric(
            "relay_server_status_writes_total{kind=\"update\",outcome=\"gone\"}",
            1.0,
            Duration::from_secs(10),
        )
        .await;
    // ... and nothing more is written for it. Sentinel: cluster-b's disconnect, written after.
    drop(b);
    let clusters = w.clusters();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = clusters.get("cluster-b").await?.status.unwrap_or_default();
        if !status.connected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster-b never shown disconnected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        writes_to_a() <= before + 1,
        "status writes to the deleted cluster-a: {} after deletion",
        writes_to_a() - before
    );
    let text = w.server.metrics_text();
    assert_eq!(
        metric_value(
            &text,
            "relay_server_status_writes_total{kind=\"update\",outcome=\"failed\"}"
        ),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "relay_server_streams_cut_total{reason=\"not_registered\"}"
        ),
        1.0
    );

    // Registered again: the agent is let back in.
    register_cluster(&w.client, RELAY_NAMESPACE, "cluster-a").await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match w.connect(&cert_a, "cluster-a").await {
            Ok(session) => break session,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(status) => panic!("still refused after registering again: {status:?}"),
        }
    };
    echoes(&mut again, 1).await;
    w.server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_older_certificates_cuts_their_streams_and_a_renewed_certificate_gets_back_in()
-> TestResult {
    let w = World::start().await?;
    // An intermediate under the same root whose own notBefore is five minutes back, so that
    // it can sign certificates "issued" five minutes ago: the leak, and one of cluster-b as old.
    let ca = w.pki.other_intermediate("relay earlier intermediate")?;
    let leaked = issue_agent_aged(
        &ca,
        "cluster-a",
        time::Duration::hours(1),
        time::Duration::minutes(5),
    )?;
    let old_b = issue_agent_aged(
        &ca,
        "cluster-b",
        time::Duration::hours(1),
        time::Duration::minutes(5),
    )?;
    let mut a = w.connect(&leaked.pem, "cluster-a").await?;
    let mut b = w.connect(&old_b.pem, "cluster-b").await?;

    let cut_off = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let cut_off_text =
        relay_issuer::pki::format_time(relay_issuer::pki::truncate_to_second(cut_off));
    let since = Instant::now();
    w.set_spec(
        "cluster-a",
        json!({"revokeCertificatesIssuedBefore": cut_off_text}),
    )
    .await?;
    let (status, took) = ended(&mut a, since).await;
    eprintln!("revocation: the leaked certificate's stream cut {took:?} after the patch returned");
    assert!(took <= CUT_WITHIN, "cut after {took:?}");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("revoked")
            && status.message().contains(&leaked.serial)
            && status.message().contains(&cut_off_text),
        "{status:?}"
    );
    // Cluster-b's equally old certificate is not affected.
    echoes(&mut b, 1).await;

    // The leaked certificate can neither reconnect nor renew itself ...
    let refused = w.connect(&leaked.pem, "cluster-a").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = w.sign("cluster-a", Some(&leaked.pem)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
    // ... while a certificate issued now (cert-manager's renewal, or the token) is accepted.
    w.sign("cluster-a", None).await?;
    let renewed = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let mut back = w.connect(&renewed, "cluster-a").await?;
    echoes(&mut back, 1).await;
    w.sign("cluster-a", Some(&renewed)).await?;
    w.wait_event("cluster-a", "StreamClosedRevoked").await;
    let text = w.server.metrics_text();
    for (series, value) in [
        ("relay_server_streams_cut_total{reason=\"revoked\"}", 1.0),
        (
            "relay_server_connect_refusals_total{reason=\"revoked\"}",
            1.0,
        ),
        (
            "relay_server_sign_requests_total{outcome=\"revoked\",auth=\"certificate\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric_value(&text, series), value, "{series}\n{text}");
    }
    w.server.stop().await?;
    Ok(())
}
