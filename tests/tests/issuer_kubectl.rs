//! What a person sees with the real `kubectl` (installed by `make tools` into target/tools/bin)
//! while `relay-issuer controller` runs in-process against the sandbox: `kubectl describe
//! certificaterequest` shows the Ready reason, its message and the controller's event for each
//! outcome (Issued, Denied, Pending on a missing signing Secret, Failed on a bad CSR), and `kubectl
//! get relayissuers` / the `rissuer` short name show the Ready and Reason columns.
//!
//! Skipped (with a message) only when the kubectl binary is absent.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, PostParams};
use kube_sandbox::Sandbox;
use kube_sandbox::kubectl::Kubectl;
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, Replica};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
/// How long events may take to show in `kubectl describe`.
const EVENT_WAIT: Duration = Duration::from_secs(10);
const NAMESPACE: &str = "team-a";
/// A namespace with a RelayIssuer but no signing Secret.
const EMPTY_NAMESPACE: &str = "team-b";

/// `kubectl describe certificaterequest name -n namespace`, polled until it contains every
/// one of `needles` (events are written asynchronously) or [`EVENT_WAIT`] passes; returns the
/// last output either way, for the caller's assertions.
async fn describe_until(k: &Kubectl, namespace: &str, name: &str, needles: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let out = k.ok(&["describe", "certificaterequest", name, "-n", namespace]);
        if needles.iter().all(|n| out.contains(n)) || tokio::time::Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
fn assert_contains(haystack: &str, needles: &[&str], what: &str) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "{what} lacks {needle:?}:\n{haystack}"
        );
    }
}

/// The conditions in `describe` output (the `Status: Conditions:` block), each as its
/// `Key: value` fields, e.g. `[("Type", "Ready"), ("Reason", "Issued"), ...]`.
fn described_conditions(described: &str) -> Vec<Vec<(String, String)>> {
    let mut conditions: Vec<Vec<(String, String)>> = Vec::new();
    let mut inside = false;
    for line in described.lines() {
        if line.trim() == "Conditions:" {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        // The block ends at the next line indented no deeper than "  Conditions:".
        if !line.starts_with("    ") {
            break;
        }
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        if key == "Last Transition Time" || conditions.is_empty() {
            conditions.push(Vec::new());
        }
        if let Some(last) = conditions.last_mut() {
            last.push((key.to_string(), value.trim().to_string()));
        }
    }
    conditions
}

/// The described condition of `type_` as a map-like lookup.
fn described_condition(described: &str, type_: &str) -> Vec<(String, String)> {
    described_conditions(described)
        .into_iter()
        .find(|c| c.iter().any(|(k, v)| k == "Type" && v == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in describe:\n{described}"))
}

fn field<'a>(condition: &'a [(String, String)], key: &str) -> &'a str {
    condition
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {condition:?}"))
}

/// Asserts that describe's Ready condition has `status`, `reason` and exactly `message`.
fn assert_described_ready(described: &str, status: &str, reason: &str, message: &str) {
    let ready = described_condition(described, "Ready");
    assert_eq!(field(&ready, "Status"), status, "{described}");
    assert_eq!(field(&ready, "Reason"), reason, "{described}");
    assert_eq!(field(&ready, "Message"), message, "{described}");
}

/// The line of `describe` output that carries the event with `reason` (the Events table).
fn event_line<'a>(described: &'a str, reason: &str) -> Option<&'a str> {
    let events = described.split("Events:").nth(1)?;
    events
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(reason))
}

/// A sandbox with a Ready RelayIssuer `relay` in team-a, a RelayIssuer `relay` in team-b whose
/// Secret is missing, and one controller replica.
async fn world() -> (Sandbox, kube::Client, Replica) {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": EMPTY_NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let ca = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365)).unwrap();
    harness::put_signing_secret(&client, NAMESPACE, "relay-tls-signing-secret", &ca)
        .await
        .unwrap();
    harness::create_issuer(&client, Some(NAMESPACE), "relay", json!({}))
        .await
        .unwrap();
    harness::create_issuer(&client, Some(EMPTY_NAMESPACE), "relay", json!({}))
        .await
        .unwrap();
    let replica = Replica::alone(client.clone());
    (sandbox, client, replica)
}

/// Polls request `namespace/name` until its Ready condition has `reason` and a message that
/// contains `message_part`; returns that condition.
async fn wait_for_ready(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    message_part: &str,
) -> Value {
    let requests = harness::requests(client, namespace);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let object: Option<DynamicObject> = requests.get_opt(name).await.ok().flatten();
        let ready = object.as_ref().and_then(harness::ready_condition);
        if let Some(ready) = &ready
            && ready["reason"] == reason
            && ready["message"]
                .as_str()
                .is_some_and(|m| m.contains(message_part))
        {
            return ready.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{namespace}/{name} did not reach Ready reason {reason} with {message_part:?} within {WAIT:?}; last Ready: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_an_issued_request_shows_reason_message_and_event() {
    let (sandbox, client, replica) = world().await;
    let Some(k) = Kubectl::for_test(
        "describe_an_issued_request_shows_reason_message_and_event",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    harness::create_request(&client, NAMESPACE, "issued", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, NAMESPACE, "issued", true)
        .await
        .unwrap();
    let ready = wait_for_ready(
        &client,
        NAMESPACE,
        "issued",
        "Issued",
        "Certificate issued (serial ",
    )
    .await;
    assert_eq!(ready["status"], "True");
    let message = ready["message"].as_str().unwrap();

    let described = describe_until(&k, NAMESPACE, "issued", &["CertificateIssued", message]).await;
    assert_contains(
        &described,
        &["Name:         issued", "Namespace:    team-a"],
        "describe (Issued)",
    );
    assert_described_ready(&described, "True", "Issued", message);
    let approved = described_condition(&described, "Approved");
    assert_eq!(field(&approved, "Status"), "True");
    assert_eq!(field(&approved, "Reason"), "cert-manager.io");
    let event = event_line(&described, "CertificateIssued")
        .unwrap_or_else(|| panic!("no CertificateIssued event in describe:\n{described}"));
    assert!(
        event.trim_start().starts_with("Normal"),
        "a Normal event: {event}"
    );
    assert!(event.contains("relay-issuer"), "from relay-issuer: {event}");
    assert!(
        event.contains(message),
        "the event carries the message: {event}"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_a_denied_request_shows_reason_message_and_event() {
    let (sandbox, client, replica) = world().await;
    let Some(k) = Kubectl::for_test(
        "describe_a_denied_request_shows_reason_message_and_event",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    harness::create_request(&client, NAMESPACE, "denied", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, NAMESPACE, "denied", false)
        .await
        .unwrap();
    let ready = wait_for_ready(&client, NAMESPACE, "denied", "Denied", "denied").await;
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains(cert_manager_sim::approver::DENIED_MESSAGE),
        "quotes the approver: {message}"
    );

    let described = describe_until(&k, NAMESPACE, "denied", &["Warning  Denied", message]).await;
    assert_contains(
        &described,
        &["Name:         denied", "Failure Time:"],
        "describe (Denied)",
    );
    assert_described_ready(&described, "False", "Denied", message);
    assert_eq!(
        field(&described_condition(&described, "Denied"), "Status"),
        "True"
    );
    let event = event_line(&described, "Denied")
        .unwrap_or_else(|| panic!("no Denied event in describe:\n{described}"));
    assert!(
        event.trim_start().starts_with("Warning"),
        "a Warning event: {event}"
    );
    assert!(event.contains("relay-issuer"), "from relay-issuer: {event}");
    assert!(
        event.contains(message),
        "the event carries the message: {event}"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_a_request_pending_on_a_missing_secret_names_the_secret_and_namespace() {
    let (sandbox, client, replica) = world().await;
    let Some(k) = Kubectl::for_test(
        "describe_a_request_pending_on_a_missing_secret_names_the_secret_and_namespace",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    harness::create_request(&client, EMPTY_NAMESPACE, "pending", "RelayIssuer", "relay")
        .await
        .unwrap();
    harness::decide_request(&client, EMPTY_NAMESPACE, "pending", true)
        .await
        .unwrap();
    // Not the "waiting for approval" Pending: the one about the Secret.
    let ready = wait_for_ready(
        &client,
        EMPTY_NAMESPACE,
        "pending",
        "Pending",
        "relay-tls-signing-secret",
    )
    .await;
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("Secret \"relay-tls-signing-secret\" in namespace \"team-b\""),
        "names the Secret and the namespace: {message}"
    );
    assert!(message.contains("SecretNotFound"), "{message}");

    let described = describe_until(
        &k,
        EMPTY_NAMESPACE,
        "pending",
        &["Warning  Pending", message],
    )
    .await;
    assert_contains(
        &described,
        &["Name:         pending", "Namespace:    team-b"],
        "describe (Pending)",
    );
    assert_described_ready(&described, "False", "Pending", message);
    assert!(
        !described.contains("Failure Time:"),
        "Pending is not terminal:\n{described}"
    );
    let event = event_line(&described, "Pending")
        .unwrap_or_else(|| panic!("no Pending event in describe:\n{described}"));
    assert!(
        event.trim_start().starts_with("Warning"),
        "a Warning event: {event}"
    );
    assert!(
        event.contains(message),
        "the event carries the message: {event}"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_a_request_with_a_bad_csr_shows_failed_and_the_event() {
    let (sandbox, client, replica) = world().await;
    let Some(k) = Kubectl::for_test(
        "describe_a_request_with_a_bad_csr_shows_failed_and_the_event",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    // The CSR asks for server auth; spec.usages says client auth.
    let csr = harness::csr_pem(&json!({"commonName": "bad", "usages": ["digital signature", "key encipherment", "server auth"]})).unwrap();
    harness::create_request_with(
        &client,
        NAMESPACE,
        "bad-csr",
        json!({"request": STANDARD.encode(csr), "issuerRef": {"group": "relaytls.dev", "kind": "RelayIssuer", "name": "relay"},
               "duration": "2160h", "usages": ["digital signature", "key encipherment", "client auth"]}),
    )
    .await
    .unwrap();
    harness::decide_request(&client, NAMESPACE, "bad-csr", true)
        .await
        .unwrap();
    let ready = wait_for_ready(
        &client,
        NAMESPACE,
        "bad-csr",
        "Failed",
        "extended key usages",
    )
    .await;
    assert_eq!(ready["status"], "False");
    let message = ready["message"].as_str().unwrap();

    let described = describe_until(&k, NAMESPACE, "bad-csr", &["Warning  Failed", message]).await;
    assert_contains(
        &described,
        &["Name:         bad-csr", "Failure Time:"],
        "describe (Failed)",
    );
    assert_described_ready(&described, "False", "Failed", message);
    let event = event_line(&described, "Failed")
        .unwrap_or_else(|| panic!("no Failed event in describe:\n{described}"));
    assert!(
        event.trim_start().starts_with("Warning"),
        "a Warning event: {event}"
    );
    assert!(
        event.contains(message),
        "the event carries the message: {event}"
    );
    assert_eq!(replica.signatures(), 0, "nothing signed");
    replica.stop().await;
}

/// The header and the row of `name` from `kubectl get` table output.
fn table_row<'a>(table: &'a str, name: &str) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut lines = table.lines();
    let header = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name:?} in:\n{table}"))
        .split_whitespace()
        .collect();
    (header, row)
}

/// The CRD's served `additionalPrinterColumns` as (name, jsonPath), read with kubectl.
fn printer_columns(k: &Kubectl, crd: &str) -> Vec<(String, String)> {
    let crd: Value = serde_json::from_str(&k.ok(&["get", "crd", crd, "-o", "json"])).unwrap();
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap_or_else(|| panic!("no additionalPrinterColumns: {crd}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["jsonPath"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_relayissuers_shows_ready_and_reason_columns_and_the_short_name_works() {
    let (sandbox, client, replica) = world().await;
    let Some(k) = Kubectl::for_test(
        "get_relayissuers_shows_ready_and_reason_columns_and_the_short_name_works",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    for (namespace, reason) in [
        (NAMESPACE, "CAVerified"),
        (EMPTY_NAMESPACE, "SecretNotFound"),
    ] {
        let issuers = harness::issuer_api(&client, Some(namespace), "RelayIssuer", "relayissuers");
        harness::wait_for_reason(&issuers, "relay", reason, WAIT).await;
    }

    // The CRD as served declares the Ready, Reason, Message and Age columns.
    let columns = printer_columns(&k, "relayissuers.relaytls.dev");
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Ready", "Reason", "Message", "Age"]);
    let path = |name: &str| {
        columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap()
    };
    // The columns are rendered here with kubectl's own JSONPath engine from the jsonPaths the
    // CRD declares: the values `kubectl get` shows against a cluster, independently of the
    // sandbox's server-side Tables (tests/tests/table.rs checks those).
    let ready_reason = format!(
        "custom-columns=NAME:.metadata.name,READY:{},REASON:{}",
        path("Ready"),
        path("Reason")
    );

    let table = k.ok(&["get", "relayissuers", "-n", NAMESPACE, "-o", &ready_reason]);
    let (header, row) = table_row(&table, "relay");
    assert_eq!(header, ["NAME", "READY", "REASON"], "{table}");
    assert_eq!(row, ["relay", "True", "CAVerified"], "{table}");

    let table = k.ok(&[
        "get",
        "relayissuers",
        "-n",
        EMPTY_NAMESPACE,
        "-o",
        &ready_reason,
    ]);
    let (_, row) = table_row(&table, "relay");
    assert_eq!(row, ["relay", "False", "SecretNotFound"], "{table}");

    // The short name resolves to the same resource.
    let short = k.ok(&["get", "rissuer", "-n", NAMESPACE, "-o", &ready_reason]);
    let (header, row) = table_row(&short, "relay");
    assert_eq!(header, ["NAME", "READY", "REASON"], "{short}");
    assert_eq!(row, ["relay", "True", "CAVerified"], "{short}");
    let plain = k.ok(&["get", "rissuer", "relay", "-n", EMPTY_NAMESPACE]);
    let (header, row) = table_row(&plain, "relay");
    assert_eq!(header[0], "NAME", "{plain}");
    assert_eq!(row[0], "relay", "{plain}");
    let named = k.ok(&["get", "rissuer/relay", "-n", EMPTY_NAMESPACE, "-o", "name"]);
    assert_eq!(named.trim(), "relayissuer.relaytls.dev/relay");

    // The Message column (priority 1, shown by -o wide) names the Secret and the namespace.
    let message = k.ok(&[
        "get",
        "rissuer",
        "relay",
        "-n",
        EMPTY_NAMESPACE,
        "-o",
        &format!("jsonpath={}", path("Message").replacen('.', "{.", 1) + "}"),
    ]);
    assert!(
        message.contains("Secret \"relay-tls-signing-secret\" in namespace \"team-b\""),
        "{message}"
    );
    replica.stop().await;
}
