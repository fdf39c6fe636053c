//! The real `relay-issuer controller` process against a sandbox: it reads a kubeconfig, elects
//! itself leader on its Lease, signs an approved request, serves `/live`, `/ready` and
//! `/metrics`, and on SIGTERM stops and releases the Lease.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, wait_for_reason};
use serde_json::json;

/// The relay-issuer binary of this workspace, built if needed.
fn relay_issuer_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "relay-issuer", "--bin", "relay-issuer"])
        .status()
        .expect("cargo build relay-issuer");
    assert!(status.success(), "building relay-issuer failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("debug/relay-issuer")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the admin server: (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_process_signs_serves_admin_and_releases_its_lease() {
    let binary = relay_issuer_binary();
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
    let child = Command::new(&binary)
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
        .env("KUBECONFIG", sandbox.kubeconfig())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start relay-issuer controller");
    let mut child = Killed(child);

    // Live at once; ready once it leads and has synced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = get(port, "/ready") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            get(port, "/ready")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(port, "/live").map(|r| r.0), Some(200));

    harness::create_request(&client, "team-a", "agent", "RelayClusterIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "agent", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    wait_for_reason(&requests, "agent", "Issued", Duration::from_secs(30)).await;

    let (code, metrics) = get(port, "/metrics").unwrap();
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
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
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
