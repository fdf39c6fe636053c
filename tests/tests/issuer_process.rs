//! The real `relay-issuer controller` process against a sandbox: it reads a kubeconfig, elects
//! itself leader on its Lease, signs an approved request, serves `/live`, `/ready` and
//! `/metrics`, and on SIGTERM stops and releases the Lease.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, wait_for_reason};
use relay_sandbox::processes::{Process, binary, free_port, http_get as get};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_process_signs_serves_admin_and_releases_its_lease() {
    let binary = binary("relay-issuer");
    let logs = tempfile::tempdir().unwrap();
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let ca = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365)).unwrap();
    harness::put_signing_secret(
        &client,
        CONTROLLER_NAMESPACE,
        "relay-tls-signing-secret",
        &ca,
    )
    .await
    .unwrap();
    harness::create_issuer(&client, None, "relay", json!({}))
        .await
        .unwrap();

    let port = free_port();
    let mut command = Command::new(&binary);
    command
        .args([
            "controller",
            "--namespace",
            CONTROLLER_NAMESPACE,
            "--pod-name",
            "relay-issuer-0",
            "--admin-address",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .env("KUBECONFIG", sandbox.kubeconfig());
    let mut child = Process::spawn("relay-issuer-controller", command, logs.path())
        .expect("start relay-issuer controller");

    // Live at once; ready once it leads and has synced.
    child
        .wait_ready(port, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(get(port, "/live").map(|r| r.0), Some(200));

    harness::create_request(&client, "team-a", "agent", "RelayClusterIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "agent", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    wait_for_reason(&requests, "agent", "Issued", Duration::from_secs(30)).await;

    // The outcome is counted once the status write has returned, a moment after a watcher can
    // see it: wait for the count.
    let issued = r#"relay_issuer_certificate_requests_total{outcome="issued"} 1"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (code, metrics) = loop {
        let (code, metrics) = get(port, "/metrics").unwrap();
        if metrics.contains(issued) || std::time::Instant::now() > deadline {
            break (code, metrics);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, 200);
    assert!(
        metrics.contains("relay_issuer_signatures_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("relay_issuer_leader 1"), "{metrics}");
    assert!(
        metrics.contains(r#"relay_issuer_certificate_requests_total{outcome="issued"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("relay_issuer_issuer_ready{"), "{metrics}");

    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_NAMESPACE);
    let lease = leases.get("relay-issuer-controller").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("relay-issuer-0")
    );

    // SIGTERM: it stops, exits 0 and releases the Lease for the next replica.
    let status = child.terminate(Duration::from_secs(20)).await.unwrap();
    let stderr = child.log();
    assert!(status.success(), "exit {status:?}; stderr:\n{stderr}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed["level"].is_string(), "{line}");
    }
    assert!(!stderr.contains("PRIVATE KEY"), "no key material in logs");
    let lease = leases.get("relay-issuer-controller").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.unwrap_or_default(),
        "",
        "the Lease was released"
    );
}
