//! The controller's signer for the Kubernetes CSR API (`relaytls.dev/agent`) against the
//! sandbox: nothing before approval, the leaf and its intermediate after, `Failed` with the
//! reason for a CSR that breaks a rule, other signers' requests untouched, the signing CA read
//! from the cluster resource namespace. (`real_e2e` runs the same against kube-apiserver.)

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Api;
use kube::api::PostParams;
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, Replica};
use relay_sandbox::relay::{TRUST_DOMAIN, agent_csr, csr_failed, wait_csr};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SIGNER: &str = "relaytls.dev/agent";

async fn create(
    csrs: &Api<CertificateSigningRequest>,
    name: &str,
    signer: &str,
    cluster: &str,
    usages: Value,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let (csr, key) = agent_csr(cluster)?;
    let object: CertificateSigningRequest = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(&csr),
                 "signerName": signer, "usages": usages, "expirationSeconds": 7200},
    }))?;
    csrs.create(&PostParams::default(), &object).await?;
    Ok(key)
}

/// What `kubectl certificate approve` does: the Approved condition through `/approval`.
async fn approve(client: &kube::Client, name: &str) -> TestResult {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let mut object = serde_json::to_value(csrs.get(name).await?)?;
    object["status"] = json!({"conditions": [{"type": "Approved", "status": "True",
        "reason": "KubectlApprove", "message": "This CSR was approved by kubectl certificate approve."}]});
    let request = http::Request::put(format!(
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&object)?)?;
    client.request::<CertificateSigningRequest>(request).await?;
    Ok(())
}

#[tokio::test]
async fn approved_agent_csrs_are_signed_rule_breakers_fail_and_the_rest_is_left_alone() -> TestResult
{
    let sandbox = harness::sandbox().await?;
    let client = sandbox.client()?;
    let ca = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365))?;
    harness::put_signing_secret(
        &client,
        CONTROLLER_NAMESPACE,
        "relay-tls-signing-secret",
        &ca,
    )
    .await?;
    let replica = Replica::alone(client.clone());
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());

    let key = create(
        &csrs,
        "good",
        SIGNER,
        "cluster-1",
        json!(["client auth", "digital signature"]),
    )
    .await?;
    create(
        &csrs,
        "server-auth",
        SIGNER,
        "cluster-1",
        json!(["server auth", "client auth"]),
    )
    .await?;
    create(
        &csrs,
        "unapproved",
        SIGNER,
        "cluster-1",
        json!(["client auth"]),
    )
    .await?;
    create(
        &csrs,
        "other-signer",
        "example.com/other",
        "cluster-1",
        json!(["client auth"]),
    )
    .await?;
    for name in ["good", "server-auth", "other-signer"] {
        approve(&client, name).await?;
    }

    let within = Duration::from_secs(20);
    let good = wait_csr(&client, "good", within, |s| s.certificate.is_some()).await?;
    let failed = wait_csr(&client, "server-auth", within, csr_failed).await?;
    // The leaf for the CSR's cluster and key, then the intermediate; two hours as asked.
    let chain = String::from_utf8(good.certificate.unwrap_or_default().0)?;
    assert_eq!(
        chain.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{chain}"
    );
    assert!(
        chain.contains(ca.intermediate_pem.trim()),
        "the intermediate follows the leaf"
    );
    let pair = relay_issuer::pki::load_key_pair(
        Some(chain.as_bytes()),
        Some(key.as_bytes()),
        time::OffsetDateTime::now_utc(),
    )?;
    let lifetime = pair.not_after - time::OffsetDateTime::now_utc();
    assert!(
        lifetime > time::Duration::minutes(119) && lifetime <= time::Duration::hours(2),
        "{lifetime}"
    );
    let leaf = x509_parser::pem::parse_x509_pem(chain.as_bytes())?.1;
    assert_eq!(
        relay_issuer::pki::certificate_identity(&leaf.contents, TRUST_DOMAIN)?.cluster,
        "cluster-1"
    );
    let condition = failed
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .ok_or("no Failed condition")?;
    assert_eq!(condition.reason.as_deref(), Some("UsagesNotAllowed"));
    assert!(
        condition
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("server auth"),
        "{condition:?}"
    );
    // Sentinel passed (both writes above landed): the unapproved one and the other signer's
    // approved one have no certificate and no condition of ours.
    for name in ["unapproved", "other-signer"] {
        let status = csrs.get(name).await?.status.unwrap_or_default();
        assert!(status.certificate.is_none(), "{name}: {status:?}");
        assert!(
            !status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Failed"),
            "{name}: {status:?}"
        );
    }
    let issued = replica
        .metrics
        .csr_requests
        .get(&relay_issuer::controller::metrics::OutcomeLabels {
            outcome: "issued".into(),
        })
        .map(|c| c.get());
    assert_eq!(issued, Some(1));
    replica.stop().await;
    Ok(())
}
