//! Custom resources through the sandbox, using cert-manager's real CRDs: schema validation and
//! pruning, the status subresource, generation, strategic-merge refusal, and the
//! external-issuer contract's key rule — merge-patching conditions drops `Approved`, server-side
//! apply of `Ready` alone keeps it.

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube_sandbox::fidelity::Target;
mod upstream;
use serde_json::{Value, json};
use upstream::cert_manager_crds;

const CSR_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQkRUQ0J0QUlCQURBVU1SSXdFQVlEVlFRRERBbGpiSFZ6ZEdWeUxXRXdXVEFUQmdjcWhrak9QUUlCQmdncQpoa2pPUFFNQkJ3TkNBQVRoaHNQeS93PT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==";

/// The target (the sandbox, or a real kube-apiserver with `RELAY_FIDELITY_TARGET=real`) with
/// cert-manager's CRDs, and an API of CertificateRequests in the test's namespace.
async fn sandbox() -> (Target, Api<DynamicObject>) {
    let sandbox = Target::start().await.unwrap();
    let names = sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    assert!(
        names.contains(&"certificaterequests.cert-manager.io".to_string()),
        "{names:?}"
    );
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "certificaterequests");
    let api = Api::default_namespaced_with(sandbox.client(), &resource);
    (sandbox, api)
}

fn request(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name},
        "spec": {
            "request": CSR_B64,
            "issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"},
            "usages": ["client auth", "digital signature"],
            "duration": "8760h",
            "unknownField": "pruned"
        },
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Issued"}]}
    }))
    .unwrap()
}

fn condition_types(object: &DynamicObject) -> Vec<String> {
    object.data["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn create_prunes_unknown_fields_drops_status_and_sets_generation() {
    let (_s, api) = sandbox().await;
    let created = api
        .create(&PostParams::default(), &request("a"))
        .await
        .unwrap();
    assert!(
        created.data["spec"].get("unknownField").is_none(),
        "unknown fields are pruned"
    );
    assert!(
        created.data.get("status").is_none_or(Value::is_null),
        "create drops .status: {:?}",
        created.data
    );
    assert_eq!(created.metadata.generation, Some(1));
}

#[tokio::test]
async fn schema_violations_are_422_with_causes() {
    let (_s, api) = sandbox().await;
    let mut bad = request("bad");
    bad.data["spec"]["duration"] = json!(5);
    bad.data["spec"]["request"] = json!("not base64!");
    match api.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(
                status.message.contains("spec.duration"),
                "{}",
                status.message
            );
            assert!(
                status.message.contains("spec.request"),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_writes_only_touch_status_and_never_bump_generation() {
    let (_s, api) = sandbox().await;
    api.create(&PostParams::default(), &request("a"))
        .await
        .unwrap();
    let with_status = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "Certificate request has been approved by cert-manager.io"}]}, "spec": {"duration": "1h"}})))
        .await
        .unwrap();
    assert_eq!(condition_types(&with_status), vec!["Approved"]);
    assert_eq!(
        with_status.data["spec"]["duration"], "8760h",
        "/status ignores spec"
    );
    assert_eq!(with_status.metadata.generation, Some(1));
    // A main-resource write keeps the stored status, and a spec change bumps generation.
    let mut edited = with_status.clone();
    edited.data["spec"]["duration"] = json!("2h");
    edited.data["status"] = json!({"conditions": []});
    let replaced = api
        .replace("a", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_eq!(condition_types(&replaced), vec!["Approved"]);
    assert_eq!(replaced.metadata.generation, Some(2));
}

#[tokio::test]
async fn merge_patching_conditions_drops_approved_but_apply_keeps_it() {
    let (_s, api) = sandbox().await;
    api.create(&PostParams::default(), &request("merge"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &request("apply"))
        .await
        .unwrap();
    let approve = json!({"status": {"conditions": [{"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "Certificate request has been approved by cert-manager.io", "lastTransitionTime": "2026-11-28T04:00:00Z"}]}});
    let approver = PatchParams {
        field_manager: Some("cert-manager-approver".into()),
        ..PatchParams::default()
    };
    for name in ["merge", "apply"] {
        api.patch_status(name, &approver, &Patch::Merge(approve.clone()))
            .await
            .unwrap();
    }
    let ready = json!({"type": "Ready", "status": "True", "reason": "Issued", "message": "Certificate issued", "lastTransitionTime": "2026-11-28T04:00:01Z"});
    // The naive way: merge patch with only Ready replaces the whole array.
    let merged = api
        .patch_status(
            "merge",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [ready.clone()]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        condition_types(&merged),
        vec!["Ready"],
        "merge patch replaced the list: Approved is gone"
    );
    // The right way: server-side apply of the status with only Ready.
    let issuer = PatchParams::apply("relay-issuer");
    let applied = api
        .patch_status("apply", &issuer, &Patch::Apply(json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [ready]}})))
        .await
        .unwrap();
    let mut types = condition_types(&applied);
    types.sort();
    assert_eq!(
        types,
        vec!["Approved", "Ready"],
        "apply keeps the approver's entry"
    );
    // Changing Approved through apply conflicts with its owner.
    let hijack = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "status": {"conditions": [{"type": "Approved", "status": "False", "reason": "x", "message": "x"}]}});
    match api
        .patch_status("apply", &issuer, &Patch::Apply(hijack))
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert!(
                status.message.contains("cert-manager-approver"),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn apply_needs_a_field_manager_creates_missing_objects_and_strategic_merge_is_415() {
    let (s, api) = sandbox().await;
    let body = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "metadata": {"name": "new"}, "spec": request("x").data["spec"].clone()});
    // Apply does not prune: a field the schema does not declare is refused (500, no reason).
    match api
        .patch("new", &PatchParams::apply("tester"), &Patch::Apply(&body))
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (500, ""));
            assert_eq!(
                status.message,
                "failed to create typed patch object (/new; cert-manager.io/v1, Kind=CertificateRequest): .spec.unknownField: field not declared in schema"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut body = body;
    body["spec"].as_object_mut().unwrap().remove("unknownField");
    let created = api
        .patch("new", &PatchParams::apply("tester"), &Patch::Apply(body))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["tester".to_string()]);
    match api
        .patch(
            "new",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"duration": "1h"}})),
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => assert_eq!(
            (status.code, status.reason.as_str()),
            (415, "UnsupportedMediaType")
        ),
        other => panic!("{other:?}"),
    }
    let client = s.client();
    let request = http::Request::patch(format!(
        "/apis/cert-manager.io/v1/namespaces/{}/certificaterequests/new",
        s.namespace()
    ))
    .header("content-type", "application/apply-patch+yaml")
    .body(b"apiVersion: cert-manager.io/v1\nkind: CertificateRequest\n".to_vec())
    .unwrap();
    match client.request::<DynamicObject>(request).await.unwrap_err() {
        kube::Error::Api(status) => assert_eq!(
            (status.code, status.message.as_str()),
            (
                422,
                r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
            )
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn crd_types_appear_in_discovery_with_short_names_and_status() {
    let (s, _api) = sandbox().await;
    let client = s.client();
    let request = http::Request::get("/apis/cert-manager.io/v1")
        .body(Vec::new())
        .unwrap();
    let list: Value = client.request(request).await.unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"certificaterequests") && names.contains(&"certificaterequests/status"),
        "{names:?}"
    );
    let cr = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "certificaterequests")
        .unwrap();
    assert!(
        cr["shortNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "cr"),
        "{cr}"
    );
    let request = http::Request::get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/certificates.cert-manager.io",
    )
    .body(Vec::new())
    .unwrap();
    let crd: Value = client.request(request).await.unwrap();
    assert!(
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"),
        "{crd}"
    );
}

#[tokio::test]
async fn writes_to_the_status_of_a_missing_object_are_404_and_create_nothing() {
    let (_s, api) = sandbox().await;
    let status = json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "missing"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Pending", "message": "x"}]}});
    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "add", "path": "/status", "value": status["status"].clone()}
    ]))
    .unwrap();
    let replaced: DynamicObject = serde_json::from_value(status.clone()).unwrap();
    let attempts = [
        (
            "apply",
            api.patch_status(
                "missing",
                &PatchParams::apply("tester"),
                &Patch::Apply(&status),
            )
            .await,
        ),
        (
            "merge",
            api.patch_status("missing", &PatchParams::default(), &Patch::Merge(&status))
                .await,
        ),
        (
            "json",
            api.patch_status(
                "missing",
                &PatchParams::default(),
                &Patch::<()>::Json(json_patch),
            )
            .await,
        ),
        (
            "put",
            api.replace_status("missing", &PostParams::default(), &replaced)
                .await,
        ),
    ];
    for (how, result) in attempts {
        match result {
            Err(kube::Error::Api(status)) => assert_eq!(
                (status.code, status.reason.as_str(), status.message.as_str()),
                (
                    404,
                    "NotFound",
                    r#"certificaterequests.cert-manager.io "missing" not found"#
                ),
                "{how}"
            ),
            other => panic!("{how}: {other:?}"),
        }
    }
    match api.get("missing").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("no write may have created it: {other:?}"),
    }
}
