//! A ready-made world for testing `relay-issuer controller` in-process: a sandbox with
//! cert-manager's CRDs and ours, the cluster resource namespace, signing-CA Secrets, helpers to
//! make CertificateRequests and approve or deny them, and controller replicas that can be
//! started and killed. Used by the controller tests and `make bench-issuer`.
//!
//! What does not live here: assertions (the tests make them) and the controller's logic.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use relay_issuer::admin::Health;
use relay_issuer::controller::{self, Settings, metrics::Metrics};
use relay_issuer::leader::Leadership;
use relay_issuer::pki::generate::{GeneratedKeyType, PkiSpec, generate_pki};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use cert_manager_sim::csr;
use kube_sandbox::{Error, Sandbox};

/// The controller's own (and cluster resource) namespace in these tests.
pub const CONTROLLER_NAMESPACE: &str = "relay-tls";

/// A sandbox with every CRD the controller needs and its namespace.
pub async fn sandbox() -> Result<Sandbox, Error> {
    let sandbox = Sandbox::start().await?;
    for crd in kube_sandbox::read_crds(&cert_manager_sim::crds::cert_manager_crds())? {
        sandbox.create_crd(crd)?;
    }
    for crd in relay_issuer::api::crds().into_values() {
        let value = serde_json::to_value(&crd)
            .map_err(|e| Error::BadRequest(format!("our CRD does not serialize: {e}")))?;
        sandbox.create_crd(value)?;
    }
    let client = sandbox.client()?;
    let namespaces: Api<Namespace> = Api::all(client);
    for name in [CONTROLLER_NAMESPACE, "team-a"] {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let _ = namespaces.create(&PostParams::default(), &ns).await;
    }
    Ok(sandbox)
}

/// The PEMs of a freshly generated relay PKI.
pub struct TestCa {
    /// Root certificate PEM.
    pub root_pem: String,
    /// Intermediate certificate PEM.
    pub intermediate_pem: String,
    /// Intermediate key PEM.
    pub intermediate_key_pem: String,
}

/// Generates a root and an intermediate with `key_type`, the intermediate valid for
/// `intermediate_ttl`.
pub fn test_ca(
    key_type: GeneratedKeyType,
    intermediate_ttl: time::Duration,
) -> Result<TestCa, relay_issuer::Error> {
    let spec = PkiSpec {
        key_type,
        intermediate_ttl,
        ..PkiSpec::default()
    };
    let pki = generate_pki(&spec, time::OffsetDateTime::now_utc())?;
    Ok(TestCa {
        root_pem: pki.root.cert_pem,
        intermediate_pem: pki.intermediate.cert_pem,
        intermediate_key_pem: pki.intermediate.key_pem,
    })
}

/// Creates or replaces Secret `namespace/name` with the CA's `tls.crt`, `tls.key`, `ca.crt`.
pub async fn put_signing_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ca: &TestCa,
) -> Result<(), kube::Error> {
    put_secret_data(
        client,
        namespace,
        name,
        &[
            ("tls.crt", ca.intermediate_pem.as_str()),
            ("tls.key", ca.intermediate_key_pem.as_str()),
            ("ca.crt", ca.root_pem.as_str()),
        ],
    )
    .await
}

/// Creates or replaces Secret `namespace/name` with exactly `data`.
pub async fn put_secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    data: &[(&str, &str)],
) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(STANDARD.encode(v.as_bytes()))))
        .collect();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}, "data": data});
    secrets
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .map(|_| ())
}

/// Creates a `RelayIssuer` (namespace `Some`) or `RelayClusterIssuer` with `spec`.
pub async fn create_issuer(
    client: &kube::Client,
    namespace: Option<&str>,
    name: &str,
    spec: Value,
) -> Result<(), kube::Error> {
    let (kind, plural) = if namespace.is_some() {
        ("RelayIssuer", "relayissuers")
    } else {
        ("RelayClusterIssuer", "relayclusterissuers")
    };
    let api = issuer_api(client, namespace, kind, plural);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "relaytls.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec,
    }))
    .map_err(kube::Error::SerdeError)?;
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
}

/// The API of one of our issuer kinds.
pub fn issuer_api(
    client: &kube::Client,
    namespace: Option<&str>,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let resource = kube::api::ApiResource {
        group: "relaytls.dev".into(),
        version: "v1alpha1".into(),
        api_version: "relaytls.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The CertificateRequest API of a namespace.
pub fn requests(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &cert_manager_sim::resource("CertificateRequest", "certificaterequests"),
    )
}

/// A PEM CSR shaped like cert-manager's for a Certificate `spec` (`commonName`, `usages`, ...),
/// with the key `spec.privateKey` asks for, ECDSA P-256 by default (agent certificates use it;
/// RSA key generation would dominate tests that make thousands of requests).
pub fn csr_pem(spec: &Value) -> Result<String, Error> {
    let default_key = json!({"algorithm": "ECDSA"});
    let key = csr::generate_private_key(Some(spec.get("privateKey").unwrap_or(&default_key)))?;
    csr::certificate_signing_request(spec, &key)
}

/// Creates CertificateRequest `namespace/name` for issuer (`kind`, `issuer`) in our group, with
/// a CSR for CN `name` and client-auth usages.
pub async fn create_request(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    kind: &str,
    issuer: &str,
) -> Result<(), kube::Error> {
    let usages = ["digital signature", "key encipherment", "client auth"];
    let csr = csr_pem(&json!({"commonName": name, "usages": usages}))
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    create_request_with(
        client,
        namespace,
        name,
        json!({
            "request": STANDARD.encode(csr.as_bytes()),
            "issuerRef": {"group": "relaytls.dev", "kind": kind, "name": issuer},
            "duration": "2160h",
            "usages": usages,
        }),
    )
    .await
}

/// Creates CertificateRequest `namespace/name` with exactly `spec`.
pub async fn create_request_with(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    spec: Value,
) -> Result<(), kube::Error> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    }))
    .map_err(kube::Error::SerdeError)?;
    requests(client, namespace)
        .create(&PostParams::default(), &object)
        .await
        .map(|_| ())
}

/// Sets `Approved=True` (or `Denied=True` when `approve` is false) as cert-manager's approver
/// does, by server-side apply under its own field manager.
pub async fn decide_request(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    approve: bool,
) -> Result<(), kube::Error> {
    let (type_, reason, message) = if approve {
        (
            "Approved",
            "cert-manager.io",
            cert_manager_sim::approver::APPROVED_MESSAGE,
        )
    } else {
        (
            "Denied",
            "cert-manager.io",
            cert_manager_sim::approver::DENIED_MESSAGE,
        )
    };
    let status = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "status": {"conditions": [{"type": type_, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": kube_sandbox::now_rfc3339()}]}});
    requests(client, namespace)
        .patch_status(
            name,
            &PatchParams::apply("cert-manager-approver").force(),
            &Patch::Apply(&status),
        )
        .await
        .map(|_| ())
}

/// The `Ready` condition of an object as JSON, if any.
pub fn ready_condition(object: &DynamicObject) -> Option<Value> {
    object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
}

/// Polls `namespace/name` until its Ready reason is `reason`, returning the object; panics with
/// the last status after `timeout`.
pub async fn wait_for_reason(
    api: &Api<DynamicObject>,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> DynamicObject {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let object = api.get_opt(name).await.ok().flatten();
        if let Some(object) = &object
            && ready_condition(object).is_some_and(|c| c["reason"] == reason)
        {
            return object.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{name} did not reach Ready reason {reason} within {timeout:?}; status: {}",
                object
                    .map(|o| o.data["status"].to_string())
                    .unwrap_or_else(|| "(object missing)".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One in-process controller replica.
pub struct Replica {
    /// Its metrics (signature counts, outcomes, CA loads).
    pub metrics: Metrics,
    /// Its leadership handle.
    pub leadership: Leadership,
    /// Its readiness.
    pub health: Health,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), relay_issuer::Error>>,
}

impl Replica {
    /// Starts a replica with `settings` and `leadership` against `client`.
    pub fn start(client: kube::Client, settings: Settings, leadership: Leadership) -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let health = Health::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            client,
            settings,
            leadership.clone(),
            metrics.clone(),
            health.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            metrics,
            leadership,
            health,
            stop: Some(stop),
            task,
        }
    }

    /// Starts a lone replica (no leader election) with test settings.
    pub fn alone(client: kube::Client) -> Self {
        Self::start(client, test_settings(), Leadership::always())
    }

    /// Stops it gracefully and waits.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Kills it at once (as `kill -9` would: nothing is released).
    pub fn kill(&self) {
        self.task.abort();
    }

    /// Certificates this replica signed.
    pub fn signatures(&self) -> u64 {
        self.metrics.signatures.get()
    }
}

/// Settings for tests: our namespace as the cluster resource namespace, quick retries.
pub fn test_settings() -> Settings {
    let mut settings = Settings::new(CONTROLLER_NAMESPACE);
    settings.pending_backoff_base = Duration::from_millis(200);
    settings.pending_backoff_max = Duration::from_secs(2);
    settings
}
