//! The cert-manager simulator end to end: Certificate → CertificateRequest → (a tiny test
//! signer built on relay-issuer's PKI core) → Secret → renewal at the computed time → a new
//! revision; and the denial path with failure bookkeeping. Relaxed durations keep it to seconds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cert_manager_sim::approver::ApproverMode;
use cert_manager_sim::crds::cert_manager_crds;
use cert_manager_sim::{Simulator, SimulatorOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sandbox::Sandbox;
use serde_json::{Value, json};
use std::time::Duration;

fn api(client: &kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &cert_manager_sim::resource(kind, plural),
    )
}

/// Answers every approved, unanswered request with the status `answer` returns (the stand-in
/// for an issuer), writing it by server-side apply as `manager`.
async fn signer(client: kube::Client, manager: &str, answer: impl Fn(&Value) -> Value) {
    let requests = api(&client, "CertificateRequest", "certificaterequests");
    loop {
        for r in requests
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let v = serde_json::to_value(&r).unwrap();
            let conditions = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let approved = conditions.iter().any(|c| c["type"] == "Approved");
            let done = conditions.iter().any(|c| c["type"] == "Ready");
            if !approved || done {
                continue;
            }
            let status = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": answer(&v)});
            let _ = requests
                .patch_status(
                    r.metadata.name.as_deref().unwrap(),
                    &PatchParams::apply(manager),
                    &Patch::Apply(status),
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Marks every approved request Failed, as an issuer does with a request it can never sign.
async fn failing_signer(client: kube::Client) {
    signer(client, "failing-signer", |_| {
        json!({"failureTime": kube_sandbox::now_rfc3339(),
            "conditions": [{"type": "Ready", "status": "False", "reason": "Failed", "message": "the CSR carries a RSA 1024-bit key", "lastTransitionTime": kube_sandbox::now_rfc3339()}]})
    })
    .await
}

/// Signs every approved request with a fresh relay PKI.
async fn test_signer(client: kube::Client) {
    let now = time::OffsetDateTime::now_utc();
    let pki = relay_issuer::pki::generate::generate_pki(
        &relay_issuer::pki::generate::PkiSpec::default(),
        now,
    )
    .unwrap();
    let ca = relay_issuer::pki::SigningCa::load(
        pki.intermediate.cert_pem.as_bytes(),
        pki.intermediate.key_pem.as_bytes(),
        Some(pki.root.cert_pem.as_bytes()),
        now,
    )
    .unwrap();
    signer(client, "test-signer", move |v| {
        let csr = STANDARD.decode(v["spec"]["request"].as_str().unwrap()).unwrap();
        let usages: Vec<String> = v["spec"]["usages"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect();
        let duration = relay_issuer::pki::parse_duration(v["spec"]["duration"].as_str().unwrap()).unwrap();
        let issued = relay_issuer::pki::sign(
            &ca,
            &relay_issuer::pki::SignRequest { csr_pem: &csr, duration: Some(duration), is_ca: false, usages: &usages },
            &relay_issuer::pki::SigningPolicy::default(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        json!({"certificate": STANDARD.encode(issued.chain_pem.as_bytes()), "ca": STANDARD.encode(issued.ca_pem.as_bytes()),
            "conditions": [{"type": "Ready", "status": "True", "reason": "Issued", "message": issued.summary(), "lastTransitionTime": kube_sandbox::now_rfc3339()}]})
    })
    .await
}

/// A sandbox running the simulator, with cert-manager's real CRDs (`real_crds`) or the ones
/// generated from this project's Rust types.
async fn start(mode: ApproverMode, real_crds: bool) -> (Sandbox, Simulator, kube::Client) {
    start_with_signer(mode, real_crds, true).await
}

async fn start_with_signer(
    mode: ApproverMode,
    real_crds: bool,
    signs: bool,
) -> (Sandbox, Simulator, kube::Client) {
    let sandbox = Sandbox::start().await.unwrap();
    if real_crds {
        sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    }
    let options = SimulatorOptions {
        approver: mode,
        ..SimulatorOptions::fast()
    };
    let simulator = Simulator::start(&sandbox, options).unwrap();
    let client = sandbox.client().unwrap();
    if signs {
        tokio::spawn(test_signer(client.clone()));
    } else {
        tokio::spawn(failing_signer(client.clone()));
    }
    (sandbox, simulator, client)
}

fn certificate(duration: &str, renew_before: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "agent", "labels": {"team": "relay"}},
        "spec": {
            "secretName": "relay-client-tls-secret", "commonName": "cluster-a",
            "uris": ["spiffe://relay.local/relay/cluster/cluster-a"],
            "duration": duration, "renewBefore": renew_before,
            "usages": ["client auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"},
            "secretTemplate": {"labels": {"app": "relay-agent"}}
        }
    }))
    .unwrap()
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_to_secret_then_renewal_at_the_computed_time() {
    // With the CRDs generated from this project's Rust types.
    let (_s, _sim, client) = start(ApproverMode::ApproveAll, false).await;
    let certs = api(&client, "Certificate", "certificates");
    certs
        .create(&PostParams::default(), &certificate("6s", "3s"))
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let first = wait_for("the Secret", async || {
        secrets
            .get_opt("relay-client-tls-secret")
            .await
            .ok()
            .flatten()
    })
    .await;
    assert_eq!(first.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = first.data.clone().unwrap();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(data.contains_key(key), "{key} missing");
    }
    let annotations = first.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["cert-manager.io/certificate-name"], "agent");
    assert_eq!(annotations["cert-manager.io/issuer-kind"], "RelayIssuer");
    assert_eq!(
        annotations["cert-manager.io/uri-sans"],
        "spiffe://relay.local/relay/cluster/cluster-a"
    );
    let labels = first.metadata.labels.clone().unwrap();
    assert_eq!(labels["controller.cert-manager.io/fao"], "true");
    assert_eq!(labels["app"], "relay-agent");

    let status = wait_for("revision 1", async || {
        let c = serde_json::to_value(certs.get("agent").await.ok()?).ok()?;
        (c["status"]["revision"] == 1).then(|| c["status"].clone())
    })
    .await;
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    );
    let not_after = time::OffsetDateTime::parse(
        status["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let renewal = time::OffsetDateTime::parse(
        status["renewalTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        (not_after - renewal).whole_seconds(),
        3,
        "renewal = notAfter - renewBefore"
    );

    // The request carried cert-manager's shape.
    let requests = api(&client, "CertificateRequest", "certificaterequests");
    let r1 = serde_json::to_value(requests.get("agent-1").await.unwrap()).unwrap();
    assert_eq!(
        r1["metadata"]["annotations"]["cert-manager.io/certificate-revision"],
        "1"
    );
    assert_eq!(r1["metadata"]["labels"]["team"], "relay");
    assert_eq!(r1["metadata"]["ownerReferences"][0]["kind"], "Certificate");
    assert_eq!(r1["spec"]["issuerRef"]["group"], "relaytls.dev");

    // Renewal at the computed time: revision 2, a new key (rotationPolicy Always), old request pruned.
    wait_for("revision 2", async || {
        let c = serde_json::to_value(certs.get("agent").await.ok()?).ok()?;
        (c["status"]["revision"] == 2).then_some(())
    })
    .await;
    let renewed = secrets.get("relay-client-tls-secret").await.unwrap();
    assert_ne!(
        renewed.data.clone().unwrap()["tls.key"],
        data["tls.key"],
        "a new private key per issuance"
    );
    assert_ne!(renewed.data.unwrap()["tls.crt"], data["tls.crt"]);
    let remaining = wait_for("pruning", async || {
        let names: Vec<String> = requests
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        (names.len() == 1).then_some(names)
    })
    .await;
    assert_eq!(remaining, vec!["agent-2".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_is_recorded_and_retried_with_backoff() {
    let (_s, _sim, client) = start(ApproverMode::DenyAll, true).await;
    let certs = api(&client, "Certificate", "certificates");
    certs
        .create(&PostParams::default(), &certificate("1h", "10m"))
        .await
        .unwrap();
    let status = wait_for("two failed attempts", async || {
        let c = serde_json::to_value(certs.get("agent").await.ok()?).ok()?;
        (c["status"]["failedIssuanceAttempts"].as_i64()? >= 2).then(|| c["status"].clone())
    })
    .await;
    assert!(status["lastFailureTime"].is_string());
    let issuing = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Issuing")
        .unwrap();
    assert_eq!(issuing["status"], "False");
    assert!(
        issuing["message"].as_str().unwrap().contains("denied"),
        "{issuing}"
    );
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    assert!(
        secrets
            .get_opt("relay-client-tls-secret")
            .await
            .unwrap()
            .is_none(),
        "a denied request is never signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_illegal_updates() {
    let (_s, _sim, client) = start(
        ApproverMode::ApproveGroups(vec!["cert-manager.io".into()]),
        true,
    )
    .await;
    let certs = api(&client, "Certificate", "certificates");
    // Even relaxed, renewBefore must be shorter than the duration.
    match certs
        .create(&PostParams::default(), &certificate("1h", "2h"))
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => assert_eq!(status.code, 422, "{}", status.message),
        other => panic!("{other:?}"),
    }
    certs
        .create(&PostParams::default(), &certificate("1h", "10m"))
        .await
        .unwrap();
    let requests = api(&client, "CertificateRequest", "certificaterequests");
    // Not our group: the approver leaves it unapproved (the missing-RBAC case).
    let request = wait_for("the request", async || {
        requests.get_opt("agent-1").await.ok().flatten()
    })
    .await;
    // Sentinel: a request of the approved group, created after agent-1 was seen, is approved;
    // the approver's watch delivered agent-1 before it.
    let usages = ["digital signature", "key encipherment", "client auth"];
    let csr = relay_sandbox::harness::csr_pem(&json!({"commonName": "sentinel", "usages": usages}))
        .unwrap();
    let sentinel: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "sentinel", "namespace": "default"},
        "spec": {"request": STANDARD.encode(csr), "usages": usages, "duration": "1h",
                 "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": "sentinel"}}
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &sentinel)
        .await
        .unwrap();
    wait_for("the sentinel's approval", async || {
        let v = serde_json::to_value(requests.get("sentinel").await.ok()?).ok()?;
        cert_manager_sim::condition(&v, "Approved").map(|_| ())
    })
    .await;
    let v = serde_json::to_value(requests.get("agent-1").await.unwrap()).unwrap();
    assert!(
        v.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_none_or(|c| c.iter().all(|c| c["type"] != "Approved"))
    );
    // spec is immutable.
    match requests
        .patch(
            "agent-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"duration": "2h"}})),
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => assert!(
            status.code == 422 && status.message.contains("immutable"),
            "{}",
            status.message
        ),
        other => panic!("{other:?}"),
    }
    // Approved and Denied never coexist.
    let both = json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "x", "message": "x"}, {"type": "Denied", "status": "True", "reason": "x", "message": "x"}]}});
    assert!(
        requests
            .patch_status("agent-1", &PatchParams::default(), &Patch::Merge(both))
            .await
            .is_err()
    );
    drop(request);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_is_recorded_with_the_issuers_reason_and_retried_after_backoff() {
    let (_s, _sim, client) = start_with_signer(ApproverMode::ApproveAll, false, false).await;
    let certs = api(&client, "Certificate", "certificates");
    certs
        .create(&PostParams::default(), &certificate("1h", "10m"))
        .await
        .unwrap();
    let status = wait_for("two failed attempts", async || {
        let c = serde_json::to_value(certs.get("agent").await.ok()?).ok()?;
        (c["status"]["failedIssuanceAttempts"].as_i64()? >= 2).then(|| c["status"].clone())
    })
    .await;
    let issuing = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Issuing")
        .unwrap();
    assert_eq!(issuing["reason"], "Failed");
    assert!(
        issuing["message"]
            .as_str()
            .unwrap()
            .contains("RSA 1024-bit"),
        "{issuing}"
    );
    // Each retry replaces the failed request of the same revision.
    let requests = api(&client, "CertificateRequest", "certificaterequests");
    let names: Vec<String> = requests
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    assert_eq!(names, vec!["agent-1".to_string()]);
}

/// The simulator's CSR (what cert-manager's Certificate controller would send) is one
/// relay-issuer signs, and its KeyUsage/ExtendedKeyUsage are binding.
#[test]
fn csr_carries_names_and_usages_and_signs_with_relay_issuer() {
    let spec = json!({"commonName": "cluster-a", "uris": ["spiffe://relay.local/relay/cluster/cluster-a"], "dnsNames": ["a.example.com"],
        "ipAddresses": ["10.0.0.1"], "emailAddresses": ["ops@example.com"], "usages": ["client auth", "digital signature"]});
    let key = cert_manager_sim::csr::generate_private_key(Some(
        &json!({"algorithm": "ECDSA", "size": 256}),
    ))
    .unwrap();
    let csr = cert_manager_sim::csr::certificate_signing_request(&spec, &key).unwrap();
    let pki = relay_issuer::pki::generate::generate_pki(
        &relay_issuer::pki::generate::PkiSpec::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let ca = relay_issuer::pki::SigningCa::load(
        pki.intermediate.cert_pem.as_bytes(),
        pki.intermediate.key_pem.as_bytes(),
        Some(pki.root.cert_pem.as_bytes()),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let usages = cert_manager_sim::csr::usages_of(&spec);
    let issued = relay_issuer::pki::sign(
        &ca,
        &relay_issuer::pki::SignRequest {
            csr_pem: csr.as_bytes(),
            duration: None,
            is_ca: false,
            usages: &usages,
        },
        &relay_issuer::pki::SigningPolicy::default(),
        time::OffsetDateTime::now_utc(),
    );
    assert!(issued.is_ok(), "{issued:?}");
    // The same CSR asking for other usages is refused: KU/EKU are encoded in the CSR.
    let other = vec!["server auth".to_string()];
    assert!(
        relay_issuer::pki::sign(
            &ca,
            &relay_issuer::pki::SignRequest {
                csr_pem: csr.as_bytes(),
                duration: None,
                is_ca: false,
                usages: &other
            },
            &relay_issuer::pki::SigningPolicy::default(),
            time::OffsetDateTime::now_utc()
        )
        .is_err()
    );
}
