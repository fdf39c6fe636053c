//! The real `kubectl` (1.35, installed by `make tools` into target/tools/bin) as an independent
//! client of the sandbox: create, get -o yaml, replace with a stale resourceVersion, delete,
//! get --watch, wait --for=condition, and describe with events written via events.k8s.io/v1.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube_sandbox::fidelity::Target;
use kube_sandbox::kubectl::Kubectl;
mod upstream;
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use upstream::cert_manager_crds;

/// The real kubectl for the target (its kubeconfig names the test's namespace); these tests
/// require it (`make tools` installs it).
fn kubectl(sandbox: &Target) -> Kubectl {
    let binary =
        kube_sandbox::kubectl::kubectl().expect("kubectl not found: run `make tools` first");
    Kubectl::new(binary, sandbox.kubeconfig()).unwrap()
}

/// A manifest of the `default` namespace moved to the test's.
fn in_ns(target: &Target, manifest: &str) -> String {
    manifest.replace(
        "namespace: default\n",
        &format!("namespace: {}\n", target.namespace()),
    )
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: relay-client-tls-secret\n  namespace: default\ntype: Opaque\nstringData:\n  token: hello\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_replace_conflict_and_delete() {
    let sandbox = Target::start().await.unwrap();
    let k = kubectl(&sandbox);
    let file = k.write("secret.yaml", &in_ns(&sandbox, SECRET));
    let created = k.ok(&["create", "-f", &file]);
    assert!(
        created.contains("secret/relay-client-tls-secret created"),
        "{created}"
    );
    let yaml = k.ok(&["get", "secret", "relay-client-tls-secret", "-o", "yaml"]);
    assert!(yaml.contains("token: aGVsbG8="), "{yaml}");
    assert!(!yaml.contains("stringData"), "{yaml}");
    // Save the current object, change it, then replace with the saved (stale) copy.
    let stale = k.write("stale.yaml", &yaml.replace("aGVsbG8=", "c3RhbGU="));
    k.ok(&[
        "patch",
        "secret",
        "relay-client-tls-secret",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"token":"bmV3"}}"#,
    ]);
    let out = k.run(&["replace", "-f", &stale]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the object has been modified; please apply your changes to the latest version and try again"), "{err}");
    let deleted = k.ok(&["delete", "secret", "relay-client-tls-secret"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    let out = k.run(&["get", "secret", "relay-client-tls-secret"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
            || String::from_utf8_lossy(&out.stderr).contains("not found")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_an_update() {
    let sandbox = Target::start().await.unwrap();
    let k = kubectl(&sandbox);
    let file = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: \"1\"\n",
    );
    k.ok(&["create", "-f", &file]);
    let watch = k.stream(&[
        "get",
        "configmap",
        "watched",
        "--watch",
        "-o",
        "jsonpath={.data.a}{\"\\n\"}",
    ]);
    assert_eq!(watch.next_line(), "1");
    k.ok(&[
        "patch",
        "configmap",
        "watched",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ]);
    assert_eq!(watch.next_line(), "2");
}

const REQUEST: &str = "apiVersion: cert-manager.io/v1\nkind: CertificateRequest\nmetadata:\n  name: agent-1\n  namespace: default\nspec:\n  request: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQkRUQ0J0QUlCQURBVU1SSXdFQVlEVlFRRERBbGpiSFZ6ZEdWeUxXRXdXVEFUQmdjcWhrak9QUUlCQmdncQpoa2pPUFFNQkJ3TkNBQVRoaHNQeS93PT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==\n  issuerRef:\n    name: relay\n    kind: RelayIssuer\n    group: relaytls.dev\n  usages: [client auth, digital signature]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_and_describe_shows_conditions_and_events() {
    let sandbox = Target::start().await.unwrap();
    sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    let k = kubectl(&sandbox);
    let file = k.write("cr.yaml", &in_ns(&sandbox, REQUEST));
    k.ok(&["create", "-f", &file]);
    let waiter = k
        .command(&[
            "wait",
            "--for=condition=Ready",
            "certificaterequest/agent-1",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Change the request only once kubectl wait watches it: its watch reached the sandbox
    // (the list before it fixed the resourceVersion the watch starts from).
    // (A real kube-apiserver has no request log to wait on: there kubectl wait may see the
    // condition in its list or in its watch; both must satisfy it.)
    if let Some(sandbox) = sandbox.sandbox() {
        sandbox
            .wait_for_requests(1, Duration::from_secs(30), |r| {
                r.verb == "watch" && r.resource == "certificaterequests"
            })
            .await
            .unwrap();
    }

    let client = sandbox.client();
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        sandbox.namespace(),
        &ApiResource::from_gvk_with_plural(&gvk, "certificaterequests"),
    );
    let cr = api.get("agent-1").await.unwrap();
    let status = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "Certificate request has been approved by cert-manager.io", "lastTransitionTime": "2026-11-28T04:00:00Z"},
        {"type": "Ready", "status": "True", "reason": "Issued", "message": "Certificate issued (serial 7e:cf)", "lastTransitionTime": "2026-11-28T04:00:01Z"}
    ]}});
    api.patch_status(
        "agent-1",
        &PatchParams::apply("relay-issuer"),
        &Patch::Apply(status),
    )
    .await
    .unwrap();
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "relay-issuer".into(),
            instance: Some("relay-issuer-0".into()),
        },
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("cert-manager.io/v1".into()),
        kind: Some("CertificateRequest".into()),
        name: Some("agent-1".into()),
        namespace: Some(sandbox.namespace().into()),
        uid: cr.metadata.uid.clone(),
        ..Default::default()
    };
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "CertificateIssued".into(),
                note: Some("Certificate fetched from issuer successfully".into()),
                action: "Sign".into(),
                secondary: None,
            },
            &reference,
        )
        .await
        .unwrap();

    let waited = tokio::task::spawn_blocking(move || waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        waited.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&waited.stderr)
    );
    assert!(String::from_utf8_lossy(&waited.stdout).contains("condition met"));

    let described = k.ok(&["describe", "certificaterequest", "agent-1"]);
    for needle in [
        "Approved",
        "Ready",
        "Issued",
        "Certificate issued (serial 7e:cf)",
        "CertificateIssued",
        "Certificate fetched from issuer successfully",
        "relay-issuer",
    ] {
        assert!(
            described.contains(needle),
            "describe lacks {needle:?}:\n{described}"
        );
    }
}
