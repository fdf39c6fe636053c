//! `relay-issuer controller` against the sandbox: one test per rule of cert-manager's
//! external-issuer contract (approval, issuance, Pending vs Failed, idempotency, status writes
//! that keep Approved, issuer readiness, the CA cache).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, Replica, wait_for_reason};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn ca() -> harness::TestCa {
    harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365)).unwrap()
}

/// A sandbox with RelayIssuer team-a/relay on a fresh P-256 CA, and one controller replica.
async fn issuing_world() -> (kube_sandbox::Sandbox, kube::Client, Replica) {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    (sandbox, client, replica)
}

fn decode(object: &DynamicObject, field: &str) -> String {
    let b64 = object.data["status"][field].as_str().unwrap_or_default();
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

fn conditions(object: &DynamicObject) -> Vec<Value> {
    object.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Events (events.k8s.io/v1) about `name` with `reason`.
async fn events_for(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<Value> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .collect()
}

async fn eventually_events(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<Value> {
    for _ in 0..200 {
        let found = events_for(client, namespace, name, reason).await;
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {reason} event for {namespace}/{name}");
}

/// The sentinel of "nothing else happened": creates and approves request `name` and waits until
/// it is Issued. Watch events reach the controller in order, so once a request created after
/// some change is Issued, the controller has seen that change (and a reconcile it caused, which
/// makes no API call, has long finished).
async fn sentinel_issued(client: &kube::Client, name: &str) {
    harness::create_request(client, "team-a", name, "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(client, "team-a", name, true)
        .await
        .unwrap();
    wait_for_reason(&harness::requests(client, "team-a"), name, "Issued", WAIT).await;
}

#[tokio::test]
async fn approved_request_is_issued_with_chain_root_condition_and_event() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let ca = ca();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca)
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());

    harness::create_request(&client, "team-a", "agent-1", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "agent-1", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let issued = wait_for_reason(&requests, "agent-1", "Issued", WAIT).await;

    let chain = decode(&issued, "certificate");
    assert_eq!(
        chain.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf + intermediate"
    );
    assert!(
        chain.ends_with(&ca.intermediate_pem),
        "the intermediate follows the leaf"
    );
    assert!(
        !chain.contains(ca.root_pem.trim()),
        "never the root in the chain"
    );
    assert_eq!(
        decode(&issued, "ca").trim(),
        ca.root_pem.trim(),
        "ca.crt is the root"
    );
    let ready = harness::ready_condition(&issued).unwrap();
    assert_eq!(ready["status"], "True");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .starts_with("Certificate issued (serial ")
    );
    assert!(issued.data["status"]["failureTime"].is_null());
    // Our status write kept the approver's condition.
    assert!(
        conditions(&issued)
            .iter()
            .any(|c| c["type"] == "Approved" && c["status"] == "True"),
        "Approved survives: {:?}",
        conditions(&issued)
    );
    let events = eventually_events(&client, "team-a", "agent-1", "CertificateIssued").await;
    assert_eq!(events[0]["type"], "Normal");
    assert_eq!(replica.signatures(), 1);
    replica.stop().await;
}

#[tokio::test]
async fn unapproved_request_waits_with_one_event_and_is_signed_once_approved() {
    let (_sandbox, client, replica) = issuing_world().await;
    harness::create_request(&client, "team-a", "waiting", "", "relay")
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let events = eventually_events(&client, "team-a", "waiting", "WaitingForApproval").await;
    assert_eq!(events[0]["type"], "Normal");
    assert_eq!(
        events[0]["note"],
        "Not signing CertificateRequest until it is Approved"
    );
    let waiting = requests.get("waiting").await.unwrap();
    assert!(
        harness::ready_condition(&waiting).is_none(),
        "no status is written while unapproved, as cert-manager's own issuers do"
    );
    // Touch the request a few times: it is reconciled again, but the event is not repeated.
    for i in 0..3 {
        requests
            .patch(
                "waiting",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"touch": i.to_string()}}})),
            )
            .await
            .unwrap();
    }
    // Sentinel: another unapproved request, created after the touches, gets its own event; by
    // then the touches were handled.
    harness::create_request(&client, "team-a", "sentinel", "", "relay")
        .await
        .unwrap();
    eventually_events(&client, "team-a", "sentinel", "WaitingForApproval").await;
    let events = eventually_events(&client, "team-a", "waiting", "WaitingForApproval").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0]["series"].is_null(),
        "one event, not a series: {}",
        events[0]
    );
    assert_eq!(replica.signatures(), 0, "nothing is signed before approval");

    harness::decide_request(&client, "team-a", "waiting", true)
        .await
        .unwrap();
    wait_for_reason(&requests, "waiting", "Issued", WAIT).await;
    assert_eq!(replica.signatures(), 1);
    replica.stop().await;
}

#[tokio::test]
async fn denied_request_is_never_signed() {
    let (_sandbox, client, replica) = issuing_world().await;
    harness::create_request(&client, "team-a", "denied", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "denied", false)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let denied = wait_for_reason(&requests, "denied", "Denied", WAIT).await;
    let ready = harness::ready_condition(&denied).unwrap();
    assert_eq!(ready["status"], "False");
    assert!(ready["message"].as_str().unwrap().contains("denied"));
    assert!(denied.data["status"]["failureTime"].is_string());
    assert!(denied.data["status"]["certificate"].is_null());
    assert!(conditions(&denied).iter().any(|c| c["type"] == "Denied"));
    eventually_events(&client, "team-a", "denied", "Denied").await;
    // Sentinel: a request created after the denial was written is signed; by then the
    // reconcile our own Denied write caused has run too.
    sentinel_issued(&client, "sentinel").await;
    assert_eq!(replica.signatures(), 1, "only the sentinel was signed");
    let denied = requests.get("denied").await.unwrap();
    assert!(denied.data["status"]["certificate"].is_null());
    replica.stop().await;
}

#[tokio::test]
async fn bad_request_fails_once_and_is_not_retried() {
    let (sandbox, client, replica) = issuing_world().await;
    // The CSR asks for server auth but the request says client auth: a usage mismatch.
    let csr = harness::csr_pem(&json!({"commonName": "x", "usages": ["digital signature", "key encipherment", "server auth"]})).unwrap();
    harness::create_request_with(
        &client,
        "team-a",
        "mismatch",
        json!({"request": STANDARD.encode(csr), "issuerRef": {"group": "relaytls.dev", "name": "relay"},
               "usages": ["digital signature", "key encipherment", "client auth"]}),
    )
    .await
    .unwrap();
    harness::decide_request(&client, "team-a", "mismatch", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let failed = wait_for_reason(&requests, "mismatch", "Failed", WAIT).await;
    let message = harness::ready_condition(&failed).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("extended key usages"), "{message}");
    let failure_time = failed.data["status"]["failureTime"].clone();
    assert!(failure_time.is_string());
    let writes_before = status_writes(&sandbox, "mismatch");

    // Touch it: it must not be retried (no new status write, failureTime unchanged).
    requests
        .patch(
            "mismatch",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touch": "1"}}})),
        )
        .await
        .unwrap();
    // Sentinel: a request created after the touch is signed, so the touch was seen.
    sentinel_issued(&client, "sentinel").await;
    let after = requests.get("mismatch").await.unwrap();
    assert_eq!(after.data["status"]["failureTime"], failure_time);
    assert_eq!(status_writes(&sandbox, "mismatch"), writes_before);
    assert_eq!(replica.signatures(), 1, "only the sentinel was signed");
    replica.stop().await;
}

/// Status writes by relay-issuer to request `name`, from the sandbox's request log.
fn status_writes(sandbox: &kube_sandbox::Sandbox, name: &str) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.name == name && r.subresource == "status")
        .filter(|r| r.field_manager == "relay-issuer")
        .count()
}

#[tokio::test]
async fn pending_on_missing_secret_recovers_when_it_appears() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let mut settings = harness::test_settings();
    // A long backoff: recovery must come from the Secret watch, not from a retry timer.
    settings.pending_backoff_base = Duration::from_secs(3600);
    settings.pending_backoff_max = Duration::from_secs(3600);
    let replica = Replica::start(
        client.clone(),
        settings,
        relay_issuer::leader::Leadership::always(),
    );
    harness::create_request(&client, "team-a", "early", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "early", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let pending = wait_for_reason(&requests, "early", "Pending", WAIT).await;
    let message = harness::ready_condition(&pending).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("\"relay-tls-signing-secret\""),
        "{message}"
    );
    assert!(
        message.contains("\"team-a\""),
        "names the namespace: {message}"
    );
    assert!(
        pending.data["status"]["failureTime"].is_null(),
        "Pending is not terminal"
    );

    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    wait_for_reason(&requests, "early", "Issued", WAIT).await;
    replica.stop().await;
}

#[tokio::test]
async fn pending_on_missing_issuer_recovers_when_it_is_created() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::put_signing_secret(
        &client,
        CONTROLLER_NAMESPACE,
        "relay-tls-signing-secret",
        &ca(),
    )
    .await
    .unwrap();
    let mut settings = harness::test_settings();
    settings.pending_backoff_base = Duration::from_secs(3600);
    settings.pending_backoff_max = Duration::from_secs(3600);
    let replica = Replica::start(
        client.clone(),
        settings,
        relay_issuer::leader::Leadership::always(),
    );
    harness::create_request(
        &client,
        "team-a",
        "orphan",
        "RelayClusterIssuer",
        "cluster-relay",
    )
    .await
    .unwrap();
    harness::decide_request(&client, "team-a", "orphan", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let pending = wait_for_reason(&requests, "orphan", "Pending", WAIT).await;
    let message = harness::ready_condition(&pending).unwrap()["message"].to_string();
    assert!(
        message.contains("RelayClusterIssuer cluster-relay not found"),
        "{message}"
    );

    harness::create_issuer(&client, None, "cluster-relay", json!({}))
        .await
        .unwrap();
    wait_for_reason(&requests, "orphan", "Issued", WAIT).await;
    replica.stop().await;
}

#[tokio::test]
async fn cluster_issuer_secret_in_the_wrong_namespace_says_where_it_looked() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    // The Secret is in the request's namespace, but cluster issuers read the cluster resource
    // namespace.
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    harness::create_issuer(&client, None, "cluster-relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    harness::create_request(
        &client,
        "team-a",
        "lost",
        "RelayClusterIssuer",
        "cluster-relay",
    )
    .await
    .unwrap();
    harness::decide_request(&client, "team-a", "lost", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let pending = wait_for_reason(&requests, "lost", "Pending", WAIT).await;
    let message = harness::ready_condition(&pending).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("in namespace \"{CONTROLLER_NAMESPACE}\"")),
        "{message}"
    );
    assert!(message.contains("cluster resource namespace"), "{message}");

    let issuers = harness::issuer_api(&client, None, "RelayClusterIssuer", "relayclusterissuers");
    let issuer = wait_for_reason(&issuers, "cluster-relay", "SecretNotFound", WAIT).await;
    let ready = harness::ready_condition(&issuer).unwrap();
    assert_eq!(ready["status"], "False");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains(CONTROLLER_NAMESPACE)
    );
    replica.stop().await;
}

#[tokio::test]
async fn merge_patching_conditions_would_drop_approved_but_our_writes_keep_it() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    // What a naive issuer does: a merge patch replaces the whole conditions list.
    harness::create_request(&client, "team-a", "naive", "RelayIssuer", "nobody")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "naive", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    requests
        .patch_status(
            "naive",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending", "message": "m", "lastTransitionTime": kube_sandbox::now_rfc3339()}]}})),
        )
        .await
        .unwrap();
    let naive = requests.get("naive").await.unwrap();
    assert!(
        !conditions(&naive).iter().any(|c| c["type"] == "Approved"),
        "a merge patch drops Approved"
    );

    // Ours: server-side apply of the Ready condition alone, every step of the way.
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    harness::create_request(&client, "team-a", "ours", "RelayIssuer", "relay")
        .await
        .unwrap();
    eventually_events(&client, "team-a", "ours", "WaitingForApproval").await;
    harness::decide_request(&client, "team-a", "ours", true)
        .await
        .unwrap();
    let issued = wait_for_reason(&requests, "ours", "Issued", WAIT).await;
    let types: Vec<_> = conditions(&issued)
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"Approved".to_string()), "{types:?}");
    assert!(types.contains(&"Ready".to_string()), "{types:?}");
    let managers: Vec<_> = issued.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("relay-issuer")
                && m.operation.as_deref() == Some("Apply")),
        "written by server-side apply as relay-issuer"
    );
    replica.stop().await;
}

#[tokio::test]
async fn a_request_that_already_has_a_certificate_is_never_signed_again() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    harness::create_request(&client, "team-a", "done", "RelayIssuer", "relay")
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    requests
        .patch_status(
            "done",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(
                json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
                "status": {"certificate": STANDARD.encode("-----BEGIN CERTIFICATE-----\n")}}),
            ),
        )
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "done", true)
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    // A second request proves the controller is running and synced.
    harness::create_request(&client, "team-a", "fresh", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "fresh", true)
        .await
        .unwrap();
    wait_for_reason(&requests, "fresh", "Issued", WAIT).await;
    let done = requests.get("done").await.unwrap();
    assert!(harness::ready_condition(&done).is_none(), "left alone");
    assert_eq!(replica.signatures(), 1, "only the fresh request was signed");
    replica.stop().await;
}

#[tokio::test]
async fn a_request_deleted_mid_flight_is_not_an_error() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    harness::create_request(&client, "team-a", "gone", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "gone", true)
        .await
        .unwrap();
    // A second request waits on the same issuer: it is the sentinel below.
    harness::create_request(&client, "team-a", "kept", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "kept", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    wait_for_reason(&requests, "gone", "Pending", WAIT).await;
    wait_for_reason(&requests, "kept", "Pending", WAIT).await;
    requests.delete("gone", &Default::default()).await.unwrap();
    // The Secret appearing re-queues whatever waited on the issuer; the deleted request is
    // simply gone.
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    // Sentinel: the request that waited with it is signed once the Secret change was handled.
    wait_for_reason(&requests, "kept", "Issued", WAIT).await;
    assert_eq!(
        replica.signatures(),
        1,
        "only the request that still exists"
    );
    let errors: u64 = ["kube_api"]
        .iter()
        .map(|e| {
            replica
                .metrics
                .reconcile_errors
                .get(&relay_issuer::controller::metrics::ErrorLabels {
                    error: e.to_string(),
                })
                .map(|c| c.get())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(errors, 0);
    replica.stop().await;
}

#[tokio::test]
async fn issuer_ready_needs_a_matching_key_and_follows_secret_changes() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let good = ca();
    let other = ca();
    // tls.key from another CA: parses, is a CA, but the pair does not match.
    harness::put_secret_data(
        &client,
        "team-a",
        "relay-tls-signing-secret",
        &[
            ("tls.crt", &good.intermediate_pem),
            ("tls.key", &other.intermediate_key_pem),
            ("ca.crt", &good.root_pem),
        ],
    )
    .await
    .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    let issuers = harness::issuer_api(&client, Some("team-a"), "RelayIssuer", "relayissuers");
    let mismatched = wait_for_reason(&issuers, "relay", "KeyMismatch", WAIT).await;
    let ready = harness::ready_condition(&mismatched).unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(
        ready["observedGeneration"],
        mismatched.metadata.generation.unwrap()
    );
    assert!(!ready["message"].as_str().unwrap().contains("PRIVATE KEY"));

    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &good)
        .await
        .unwrap();
    let verified = wait_for_reason(&issuers, "relay", "CAVerified", WAIT).await;
    assert_eq!(
        harness::ready_condition(&verified).unwrap()["status"],
        "True"
    );
    replica.stop().await;
}

#[tokio::test]
async fn a_ca_expiring_within_30_days_stays_ready_and_says_so() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let short = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(10)).unwrap();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &short)
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    let issuers = harness::issuer_api(&client, Some("team-a"), "RelayIssuer", "relayissuers");
    let issuer = wait_for_reason(&issuers, "relay", "CAExpiringSoon", WAIT).await;
    let ready = harness::ready_condition(&issuer).unwrap();
    assert_eq!(ready["status"], "True");
    assert!(ready["message"].as_str().unwrap().contains("expires in"));
    let labels = relay_issuer::controller::metrics::IssuerLabels {
        kind: "RelayIssuer".into(),
        namespace: "team-a".into(),
        name: "relay".into(),
    };
    assert_eq!(
        replica
            .metrics
            .ca_expiring_soon
            .get(&labels)
            .map(|g| g.get()),
        Some(1)
    );
    assert_eq!(
        replica.metrics.issuer_ready.get(&labels).map(|g| g.get()),
        Some(1)
    );
    assert!(
        replica
            .metrics
            .ca_expiry
            .get(&labels)
            .map(|g| g.get())
            .unwrap()
            > 0
    );

    // Requests are clamped to the CA's expiry, and the condition says so with both times.
    harness::create_request(&client, "team-a", "clamped", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "clamped", true)
        .await
        .unwrap();
    let requests = harness::requests(&client, "team-a");
    let issued = wait_for_reason(&requests, "clamped", "Issued", WAIT).await;
    let message = harness::ready_condition(&issued).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("notAfter was clamped to the CA's expiry"),
        "{message}"
    );
    assert!(message.contains("the request asked for"), "{message}");
    replica.stop().await;
}

#[tokio::test]
async fn the_ca_is_parsed_once_per_secret_version_not_per_request() {
    let (_sandbox, client, replica) = issuing_world().await;
    let issuers = harness::issuer_api(&client, Some("team-a"), "RelayIssuer", "relayissuers");
    wait_for_reason(&issuers, "relay", "CAVerified", WAIT).await;
    let requests = harness::requests(&client, "team-a");
    for i in 0..20 {
        let name = format!("burst-{i}");
        harness::create_request(&client, "team-a", &name, "RelayIssuer", "relay")
            .await
            .unwrap();
        harness::decide_request(&client, "team-a", &name, true)
            .await
            .unwrap();
    }
    for i in 0..20 {
        wait_for_reason(&requests, &format!("burst-{i}"), "Issued", WAIT).await;
    }
    assert_eq!(replica.signatures(), 20);
    assert_eq!(
        replica.metrics.ca_loads.get(),
        1,
        "one parse for one Secret version"
    );

    // A new Secret version is parsed once more.
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    wait_for_reason(&issuers, "relay", "CAVerified", WAIT).await;
    harness::create_request(&client, "team-a", "after", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, "team-a", "after", true)
        .await
        .unwrap();
    wait_for_reason(&requests, "after", "Issued", WAIT).await;
    assert_eq!(replica.metrics.ca_loads.get(), 2);
    replica.stop().await;
}

#[tokio::test]
async fn a_deleted_issuer_takes_its_metric_series_with_it() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca())
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "short-lived", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    let issuers = harness::issuer_api(&client, Some("team-a"), "RelayIssuer", "relayissuers");
    wait_for_reason(&issuers, "short-lived", "CAVerified", WAIT).await;
    let labels = relay_issuer::controller::metrics::IssuerLabels {
        kind: "RelayIssuer".into(),
        namespace: "team-a".into(),
        name: "short-lived".into(),
    };
    assert_eq!(
        replica.metrics.issuer_ready.get(&labels).map(|g| g.get()),
        Some(1)
    );

    issuers
        .delete("short-lived", &Default::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while replica.metrics.issuer_ready.get(&labels).is_some()
        || replica.metrics.ca_expiry.get(&labels).is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "series still exported"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    replica.stop().await;
}
