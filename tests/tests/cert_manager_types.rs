//! The drift test of the product's own `CertificateRequest` type
//! (`relay_issuer::cert_manager::types`, hand-written: the shipped binaries are built without
//! cert-manager's CRDs) against the pinned release's real CRD: the CRD generated from the type
//! is structural; requests built with the type pass cert-manager's schema untouched (nothing
//! invalid, nothing pruned) and ours; requests valid under cert-manager's schema round-trip
//! through the type; the two schemas agree field by field; and a sandbox serving the real CRDs
//! takes typed objects, merges status conditions from two server-side apply managers by `type`,
//! and filters CertificateRequests by `spec.issuerRef.*`. Certificates are built with the types
//! cert-manager-sim generates from the same release (and round-trip through them).

use std::collections::BTreeMap;

use cert_manager_sim::crds::cert_manager_crds;
use cert_manager_sim::types::certificates::{Certificate, CertificateIssuerRef};
use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_sandbox::Sandbox;
use kube_sandbox::schema::{ListType, StructuralSchema};
use relay_issuer::cert_manager::types::{
    CertificateRequest, CertificateRequestCondition, CertificateRequestSpec,
    CertificateRequestStatus, ConditionStatus, IssuerReference, KeyUsage,
};
use relay_issuer::cert_manager::{self as cm};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const CERTIFICATES_YAML: &str = "cert-manager.io_certificates.yaml";
const CERTIFICATE_REQUESTS_YAML: &str = "cert-manager.io_certificaterequests.yaml";

/// cert-manager's CRD of the pinned release (test data, never shipped).
fn real_crd(file: &str) -> Value {
    let text = std::fs::read_to_string(cert_manager_crds().join(file)).unwrap();
    serde_saphyr::from_str::<Value>(&text).unwrap()
}

/// `spec.versions[name=v1].schema.openAPIV3Schema` of a CRD.
fn v1_schema(crd: &Value) -> Value {
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .unwrap()["schema"]["openAPIV3Schema"]
        .clone()
}

/// The CRD generated from the product's `CertificateRequest` (never installed; compared).
fn our_crd() -> Value {
    serde_json::to_value(CertificateRequest::crd()).unwrap()
}

fn real_schema(file: &str) -> StructuralSchema {
    StructuralSchema::compile(&v1_schema(&real_crd(file))).unwrap()
}

fn our_schema() -> StructuralSchema {
    StructuralSchema::compile(&v1_schema(&our_crd())).unwrap()
}

fn time(text: &str) -> Time {
    Time(text.parse().unwrap())
}

const CSR_PEM: &str = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBDTCBtAIBADAUMRIwEAYDVQQDDAljbHVzdGVyLWEwWTATBgcqhkjOPQIBBggq\nhkjOPQMBBwNCAAThhsPy/w==\n-----END CERTIFICATE REQUEST-----\n";
const CERT_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUBw==\n-----END CERTIFICATE-----\n";
const CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBjzCCATWgAwIBAgIUCA==\n-----END CERTIFICATE-----\n";

fn relay_issuer() -> IssuerReference {
    IssuerReference {
        name: "relay".into(),
        kind: Some("RelayIssuer".into()),
        group: Some("relaytls.dev".into()),
    }
}

/// A Certificate as relay-tls users write it, with a status as cert-manager writes it (the
/// generated type).
fn certificate(name: &str) -> Certificate {
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "secretName": format!("{name}-tls"),
            "issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"},
            "commonName": "agent-a.relay.internal",
            "subject": {"organizations": ["relay-tls"]},
            "dnsNames": ["agent-a.relay.internal"],
            "uris": ["spiffe://relay.internal/agent/a"],
            "duration": "8760h",
            "renewBefore": "720h",
            "usages": ["client auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always", "encoding": "PKCS8"},
            "secretTemplate": {"labels": {"app.kubernetes.io/part-of": "relay"}},
            "revisionHistoryLimit": 2
        },
        "status": {
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Ready",
                "message": "Certificate is up to date and has not expired",
                "lastTransitionTime": "2026-01-10T08:00:00Z", "observedGeneration": 1
            }],
            "notBefore": "2026-01-10T08:00:00Z",
            "notAfter": "2027-01-10T08:00:00Z",
            "renewalTime": "2026-12-11T08:00:00Z",
            "revision": 1
        }
    }))
    .unwrap()
}

/// A CertificateRequest as cert-manager creates it for `certificate(name)`, approved and issued.
fn certificate_request(name: &str, issuer: IssuerReference) -> CertificateRequest {
    CertificateRequest {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            annotations: Some(BTreeMap::from([
                ("cert-manager.io/certificate-name".into(), "agent-a".into()),
                ("cert-manager.io/certificate-revision".into(), "1".into()),
                (
                    "cert-manager.io/private-key-secret-name".into(),
                    "agent-a-x7k2p".into(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: CertificateRequestSpec {
            request: ByteString(CSR_PEM.as_bytes().to_vec()),
            issuer_ref: issuer,
            duration: Some("8760h".into()),
            is_ca: Some(false),
            usages: vec![KeyUsage::ClientAuth, KeyUsage::DigitalSignature],
            ..CertificateRequestSpec::default()
        },
        status: Some(CertificateRequestStatus {
            conditions: vec![approved(), ready()],
            certificate: Some(ByteString(CERT_PEM.as_bytes().to_vec())),
            ca: Some(ByteString(CA_PEM.as_bytes().to_vec())),
            failure_time: None,
        }),
    }
}

fn approved() -> CertificateRequestCondition {
    CertificateRequestCondition {
        type_: cm::CONDITION_APPROVED.into(),
        status: ConditionStatus::True,
        reason: Some(cm::REASON_APPROVED_BY_CERT_MANAGER.into()),
        message: Some(cm::MESSAGE_APPROVED_BY_CERT_MANAGER.into()),
        last_transition_time: Some(time("2026-01-10T07:59:58Z")),
    }
}

fn ready() -> CertificateRequestCondition {
    CertificateRequestCondition {
        type_: cm::CONDITION_READY.into(),
        status: ConditionStatus::True,
        reason: Some(cm::REASON_ISSUED.into()),
        message: Some("Certificate fetched from issuer successfully".into()),
        last_transition_time: Some(time("2026-01-10T07:59:59Z")),
    }
}

/// Validates `object` under `schema`: no causes, and pruning removes nothing.
fn assert_accepted(schema: &StructuralSchema, object: &Value, what: &str) {
    let causes = schema.validate(object);
    assert!(
        causes.is_empty(),
        "{what}: {:#?}\n{object:#}",
        causes
            .iter()
            .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
            .collect::<Vec<_>>()
    );
    let mut pruned = object.clone();
    schema.prune(&mut pruned);
    assert_eq!(&pruned, object, "{what}: pruning removed fields");
}

// ---------------------------------------------------------------------------------------------
// 1. Our CRDs are structural
// ---------------------------------------------------------------------------------------------

#[test]
fn the_generated_crd_compiles_as_a_structural_schema() {
    let crd = our_crd();
    StructuralSchema::compile(&v1_schema(&crd)).unwrap();
    let types = kube_sandbox::crd_resource_types(&crd).unwrap();
    assert_eq!(types.len(), 1);
    assert!(types[0].status_subresource);
}

#[test]
fn the_type_names_cert_managers_kind() {
    let (ours, real) = (our_crd(), real_crd(CERTIFICATE_REQUESTS_YAML));
    assert_eq!(ours["metadata"]["name"], real["metadata"]["name"]);
    for key in ["group", "scope"] {
        assert_eq!(ours["spec"][key], real["spec"][key], "{key}");
    }
    for key in ["kind", "plural", "singular"] {
        assert_eq!(
            ours["spec"]["names"][key], real["spec"]["names"][key],
            "names.{key}"
        );
    }
    let (ours, real) = (&ours["spec"]["versions"][0], &real["spec"]["versions"][0]);
    for key in ["name", "subresources"] {
        assert_eq!(ours[key], real[key], "{key}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Objects built with the types pass cert-manager's real schemas
// ---------------------------------------------------------------------------------------------

#[test]
fn typed_objects_pass_cert_managers_real_schemas_unpruned() {
    let certificates = real_schema(CERTIFICATES_YAML);
    let requests = real_schema(CERTIFICATE_REQUESTS_YAML);
    let certificate = serde_json::to_value(certificate("agent-a")).unwrap();
    let request = serde_json::to_value(certificate_request("agent-a-1", relay_issuer())).unwrap();
    assert_accepted(&certificates, &certificate, "Certificate");
    assert_accepted(&requests, &request, "CertificateRequest");

    // The wire shape is cert-manager's: camelCase, isCA, usage names, base64, no nulls.
    assert_eq!(certificate["apiVersion"], "cert-manager.io/v1");
    assert_eq!(certificate["kind"], "Certificate");
    assert_eq!(
        certificate["spec"]["usages"],
        json!(["client auth", "digital signature"])
    );
    assert_eq!(
        certificate["spec"]["privateKey"],
        json!({"algorithm": "ECDSA", "encoding": "PKCS8", "rotationPolicy": "Always", "size": 256})
    );
    assert_eq!(
        certificate["spec"]["issuerRef"],
        json!({"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"})
    );
    assert!(certificate["spec"].get("ipAddresses").is_none());
    assert!(certificate["spec"].get("commonName").is_some());
    assert_eq!(certificate["status"]["notAfter"], "2027-01-10T08:00:00Z");
    assert_eq!(request["spec"]["isCA"], false);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(request["spec"]["request"], b64.encode(CSR_PEM));
    assert_eq!(request["status"]["certificate"], b64.encode(CERT_PEM));
    assert_eq!(request["status"]["ca"], b64.encode(CA_PEM));
    assert!(request["status"].get("failureTime").is_none());
    assert!(!request.to_string().contains("null"), "{request}");
}

#[test]
fn a_denied_request_and_a_failing_certificate_pass_the_schemas() {
    let mut request = certificate_request("denied", relay_issuer());
    request.status = Some(CertificateRequestStatus {
        conditions: vec![
            CertificateRequestCondition {
                type_: cm::CONDITION_DENIED.into(),
                status: ConditionStatus::True,
                reason: Some("policy".into()),
                message: Some("not allowed".into()),
                last_transition_time: Some(time("2026-01-10T08:00:00Z")),
            },
            CertificateRequestCondition {
                type_: cm::CONDITION_READY.into(),
                status: ConditionStatus::False,
                reason: Some(cm::REASON_DENIED.into()),
                message: Some("The CertificateRequest was denied by an approval controller".into()),
                last_transition_time: Some(time("2026-01-10T08:00:01Z")),
            },
        ],
        failure_time: Some(time("2026-01-10T08:00:01Z")),
        ..CertificateRequestStatus::default()
    });
    let mut certificate = certificate("failing");
    certificate.status = Some(
        serde_json::from_value(json!({
            "conditions": [{
                "type": "Issuing", "status": "False", "reason": cm::REASON_FAILED,
                "message": "The certificate request has failed to complete",
                "observedGeneration": 3
            }],
            "lastFailureTime": "2026-01-10T08:00:01Z",
            "failedIssuanceAttempts": 2,
            "nextPrivateKeySecretName": "failing-x7k2p"
        }))
        .unwrap(),
    );
    for (schema, object, what) in [
        (
            real_schema(CERTIFICATE_REQUESTS_YAML),
            serde_json::to_value(&request).unwrap(),
            "real CertificateRequest",
        ),
        (
            our_schema(),
            serde_json::to_value(&request).unwrap(),
            "our CertificateRequest",
        ),
        (
            real_schema(CERTIFICATES_YAML),
            serde_json::to_value(&certificate).unwrap(),
            "real Certificate",
        ),
    ] {
        assert_accepted(&schema, &object, what);
    }
}

#[test]
fn every_key_usage_is_in_the_real_enum_in_the_same_order() {
    for file in [CERTIFICATES_YAML, CERTIFICATE_REQUESTS_YAML] {
        let real = v1_schema(&real_crd(file))["properties"]["spec"]["properties"]["usages"]
            ["items"]["enum"]
            .clone();
        let ours: Vec<Value> = KeyUsage::ALL
            .iter()
            .map(|u| serde_json::to_value(u).unwrap())
            .collect();
        assert_eq!(Value::Array(ours), real, "{file}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Our schemas accept the same objects; real-schema-valid objects round-trip
// ---------------------------------------------------------------------------------------------

#[test]
fn typed_requests_pass_our_generated_schema_unpruned() {
    assert_accepted(
        &our_schema(),
        &serde_json::to_value(certificate_request("agent-a-1", relay_issuer())).unwrap(),
        "CertificateRequest",
    );
}

/// A Certificate using most of its fields, as cert-manager would store it.
fn full_certificate_json() -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "full", "namespace": "default"},
        "spec": {
            "secretName": "full-tls",
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "commonName": "full.example.com",
            "subject": {
                "organizations": ["Example"], "countries": ["NL"], "organizationalUnits": ["Ops"],
                "localities": ["Delft"], "provinces": ["ZH"], "streetAddresses": ["Main 1"],
                "postalCodes": ["2611"], "serialNumber": "42"
            },
            "dnsNames": ["full.example.com", "www.example.com"],
            "ipAddresses": ["10.0.0.1", "fd00::1"],
            "uris": ["spiffe://example.com/full"],
            "emailAddresses": ["ops@example.com"],
            "otherNames": [{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "upn@example.com"}],
            "duration": "2160h",
            "renewBeforePercentage": 25,
            "isCA": true,
            "usages": ["cert sign", "crl sign", "digital signature", "s/mime", "ipsec end system"],
            "privateKey": {"algorithm": "RSA", "encoding": "PKCS1", "size": 4096, "rotationPolicy": "Never"},
            "signatureAlgorithm": "SHA384WithRSA",
            "encodeUsagesInRequest": false,
            "secretTemplate": {"annotations": {"a": "1"}, "labels": {"l": "2"}},
            "keystores": {
                "jks": {"create": true, "alias": "full", "passwordSecretRef": {"name": "jks-pass", "key": "password"}},
                "pkcs12": {"create": true, "password": "changeit", "profile": "Modern2023"}
            },
            "revisionHistoryLimit": 3,
            "additionalOutputFormats": [{"type": "DER"}, {"type": "CombinedPEM"}],
            "nameConstraints": {
                "critical": true,
                "permitted": {"dnsDomains": ["example.com"], "ipRanges": ["10.0.0.0/8"]},
                "excluded": {"emailAddresses": ["bad@example.com"], "uriDomains": ["evil.example.com"]}
            }
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist", "lastTransitionTime": "2026-01-10T08:00:00Z", "observedGeneration": 4},
                {"type": "Issuing", "status": "True", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist", "lastTransitionTime": "2026-01-10T08:00:00Z", "observedGeneration": 4}
            ],
            "lastFailureTime": "2026-01-09T08:00:00Z",
            "notBefore": "2025-10-12T08:00:00Z",
            "notAfter": "2026-01-10T08:00:00Z",
            "renewalTime": "2025-12-17T08:00:00Z",
            "revision": 7,
            "nextPrivateKeySecretName": "full-q2w9z",
            "failedIssuanceAttempts": 1
        }
    })
}

/// A CertificateRequest using every field, as cert-manager would store it.
fn full_certificate_request_json() -> Value {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": "full-7", "namespace": "default", "annotations": {"cert-manager.io/certificate-revision": "7"}},
        "spec": {
            "request": b64(CSR_PEM),
            "issuerRef": {"name": "relay", "kind": "RelayClusterIssuer", "group": "relaytls.dev"},
            "duration": "1h",
            "isCA": false,
            "usages": ["server auth", "client auth", "key encipherment"],
            "username": "system:serviceaccount:cert-manager:cert-manager",
            "uid": "5b7c9f1e-0000-4000-8000-000000000001",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/pod-name": ["cert-manager-6d8f"]}
        },
        "status": {
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": "Certificate request has been approved by cert-manager.io", "lastTransitionTime": "2026-01-10T08:00:00Z"},
                {"type": "InvalidRequest", "status": "False", "reason": "Valid"},
                {"type": "Ready", "status": "False", "reason": "Failed", "message": "usages do not match the CSR", "lastTransitionTime": "2026-01-10T08:00:01Z"}
            ],
            "certificate": b64(CERT_PEM),
            "ca": b64(CA_PEM),
            "failureTime": "2026-01-10T08:00:01Z"
        }
    })
}

#[test]
fn real_schema_valid_objects_round_trip_through_the_types() {
    for (file, kind, object) in [
        (CERTIFICATES_YAML, "Certificate", full_certificate_json()),
        (
            CERTIFICATE_REQUESTS_YAML,
            "CertificateRequest",
            full_certificate_request_json(),
        ),
    ] {
        assert_accepted(&real_schema(file), &object, &format!("real {kind}"));
        if kind == "CertificateRequest" {
            assert_accepted(&our_schema(), &object, &format!("our {kind}"));
        }
        let back = match kind {
            "Certificate" => {
                serde_json::to_value(serde_json::from_value::<Certificate>(object.clone()).unwrap())
            }
            _ => serde_json::to_value(
                serde_json::from_value::<CertificateRequest>(object.clone()).unwrap(),
            ),
        }
        .unwrap();
        assert_eq!(back, object, "{kind} round trip");
    }
    // And the typed view reads what cert-manager wrote.
    let request: CertificateRequest =
        serde_json::from_value(full_certificate_request_json()).unwrap();
    assert_eq!(request.spec.request.0, CSR_PEM.as_bytes());
    assert_eq!(request.spec.issuer_ref.group_or_default(), "relaytls.dev");
    let status = request.status.unwrap();
    assert!(status.is_true(cm::CONDITION_APPROVED));
    assert!(!status.is_true(cm::CONDITION_READY));
    assert_eq!(
        status
            .condition(cm::CONDITION_READY)
            .unwrap()
            .reason
            .as_deref(),
        Some(cm::REASON_FAILED)
    );
    let certificate: Certificate = serde_json::from_value(full_certificate_json()).unwrap();
    assert_eq!(certificate.spec.is_ca, Some(true));
    assert!(
        certificate
            .spec
            .usages
            .unwrap_or_default()
            .contains(&"s/mime".to_string())
    );
    assert_eq!(
        certificate.status.unwrap().not_after.as_deref(),
        Some("2026-01-10T08:00:00Z")
    );
}

#[test]
fn issuer_ref_defaults_are_cert_managers() {
    let bare = IssuerReference {
        name: "ca".into(),
        kind: None,
        group: Some(String::new()),
    };
    assert_eq!(bare.kind_or_default(), "Issuer");
    assert_eq!(bare.group_or_default(), cm::GROUP);
    assert_eq!(relay_issuer().kind_or_default(), "RelayIssuer");
}

#[test]
fn values_the_real_schema_rejects_do_not_deserialize_or_are_rejected_by_ours_too() {
    let mut bad = full_certificate_json();
    bad["spec"]["usages"] = json!(["Digital Signature"]);
    bad["spec"]["privateKey"]["algorithm"] = json!("DSA");
    bad["status"]["conditions"][0]["status"] = json!("Maybe");
    let mut fields: Vec<String> = real_schema(CERTIFICATES_YAML)
        .validate(&bad)
        .into_iter()
        .map(|c| c.field)
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec.privateKey.algorithm",
            "spec.usages[0]",
            "status.conditions[0].status"
        ]
    );
    assert!(serde_json::from_value::<Certificate>(bad).is_err());
    let mut bad = full_certificate_request_json();
    bad["spec"]["request"] = json!("not base64!");
    bad["spec"]["issuerRef"] = json!({"kind": "Issuer"});
    for (name, schema) in [
        ("real", real_schema(CERTIFICATE_REQUESTS_YAML)),
        ("ours", our_schema()),
    ] {
        let mut fields: Vec<String> = schema.validate(&bad).into_iter().map(|c| c.field).collect();
        fields.sort();
        assert_eq!(fields, ["spec.issuerRef.name", "spec.request"], "{name}");
    }
    assert!(serde_json::from_value::<CertificateRequest>(bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// Field-by-field agreement of the schemas
// ---------------------------------------------------------------------------------------------

/// Walks our schema next to cert-manager's: every property we declare must exist there with the
/// same type, enum, format (an integer width cert-manager leaves open is allowed), list type and
/// required set. Properties cert-manager declares that we do not are collected in `uncovered`.
fn compare(
    ours: &Value,
    real: &Value,
    path: &str,
    mismatches: &mut Vec<String>,
    uncovered: &mut Vec<String>,
) {
    let mut differ = |what: &str, a: Option<&Value>, b: Option<&Value>| {
        mismatches.push(format!(
            "{path}: {what} {a:?} (ours) vs {b:?} (cert-manager)"
        ));
    };
    for key in [
        "type",
        "enum",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    ] {
        if ours.get(key) != real.get(key) {
            differ(key, ours.get(key), real.get(key));
        }
    }
    match (ours.get("format"), real.get("format")) {
        (a, b) if a == b => {}
        (Some(f), None) if ours["type"] == "integer" && (f == "int32" || f == "int64") => {}
        (a, b) => differ("format", a, b),
    }
    let required = |v: &Value| -> Vec<String> {
        let mut r: Vec<String> = v["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        r.sort();
        r
    };
    if required(ours) != required(real) {
        differ(
            "required",
            Some(&json!(required(ours))),
            Some(&json!(required(real))),
        );
    }
    let empty = serde_json::Map::new();
    let ours_props = ours["properties"].as_object().unwrap_or(&empty);
    let real_props = real["properties"].as_object().unwrap_or(&empty);
    for (name, schema) in ours_props {
        match real_props.get(name) {
            Some(theirs) => compare(
                schema,
                theirs,
                &format!("{path}.{name}"),
                mismatches,
                uncovered,
            ),
            None => mismatches.push(format!("{path}.{name}: not in cert-manager's schema")),
        }
    }
    for name in real_props.keys().filter(|n| !ours_props.contains_key(*n)) {
        uncovered.push(format!("{path}.{name}"));
    }
    for key in ["items", "additionalProperties"] {
        match (ours.get(key), real.get(key)) {
            (Some(a), Some(b)) => compare(a, b, &format!("{path}[{key}]"), mismatches, uncovered),
            (None, None) => {}
            (a, b) => mismatches.push(format!("{path}: {key} {a:?} vs {b:?}")),
        }
    }
}

#[test]
fn the_generated_schema_agrees_with_cert_managers_field_by_field() {
    let ours = v1_schema(&our_crd());
    let real = v1_schema(&real_crd(CERTIFICATE_REQUESTS_YAML));
    let (mut mismatches, mut uncovered) = (Vec::new(), Vec::new());
    for part in ["spec", "status"] {
        compare(
            &ours["properties"][part],
            &real["properties"][part],
            part,
            &mut mismatches,
            &mut uncovered,
        );
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    assert!(uncovered.is_empty(), "fields not modelled: {uncovered:?}");
}

#[test]
fn the_schema_comparison_notices_differences() {
    let ours = v1_schema(&our_crd())["properties"]["spec"].clone();
    let mut real = v1_schema(&real_crd(CERTIFICATE_REQUESTS_YAML))["properties"]["spec"].clone();
    let props = real["properties"].as_object_mut().unwrap();
    props.remove("username");
    props.insert("renewal".into(), json!({"type": "string"}));
    props["usages"]["items"]["enum"] = json!(["signing"]);
    props["groups"]["x-kubernetes-list-type"] = json!("set");
    props["duration"]["format"] = json!("duration");
    real["required"] = json!(["request"]);
    let (mut mismatches, mut uncovered) = (Vec::new(), Vec::new());
    compare(&ours, &real, "spec", &mut mismatches, &mut uncovered);
    let mut fields: Vec<&str> = mismatches
        .iter()
        .map(|m| m.split(':').next().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "spec",
            "spec.duration",
            "spec.groups",
            "spec.usages[items]",
            "spec.username"
        ],
        "{mismatches:#?}"
    );
    assert_eq!(uncovered, ["spec.renewal"]);
}

#[test]
fn conditions_are_list_maps_keyed_by_type_in_both_schemas() {
    let map = Some(ListType::Map {
        keys: vec!["type".into()],
    });
    let path = ["status", "conditions"];
    assert_eq!(our_schema().list_type_at(&path), map, "ours");
    for file in [CERTIFICATE_REQUESTS_YAML, CERTIFICATES_YAML] {
        assert_eq!(real_schema(file).list_type_at(&path), map, "{file}");
    }
    assert_eq!(
        our_schema().list_type_at(&["spec", "usages"]),
        Some(ListType::Atomic)
    );
}

// ---------------------------------------------------------------------------------------------
// 4. End to end through a sandbox
// ---------------------------------------------------------------------------------------------

/// A sandbox serving every CRD of the release's deploy/crds/.
async fn sandbox() -> Sandbox {
    let sandbox = Sandbox::start().await.unwrap();
    let mut names = sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "certificaterequests.cert-manager.io",
            "certificates.cert-manager.io",
            "challenges.acme.cert-manager.io",
            "clusterissuers.cert-manager.io",
            "issuers.cert-manager.io",
            "orders.acme.cert-manager.io",
        ]
    );
    sandbox
}

fn condition_types(request: &CertificateRequest) -> Vec<String> {
    let mut types: Vec<String> = request
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().map(|c| c.type_.clone()))
        .collect();
    types.sort();
    types
}

/// A status-only apply body holding one condition.
fn status_apply(condition: &CertificateRequestCondition) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "status": {"conditions": [serde_json::to_value(condition).unwrap()]}
    })
}

#[tokio::test]
async fn the_sandbox_serves_typed_objects_and_merges_conditions() {
    let sandbox = sandbox().await;
    let client = sandbox.client().unwrap();
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), "default");
    let requests: Api<CertificateRequest> = Api::namespaced(client, "default");

    let certificate = certificate("agent-a");
    let created = certificates
        .create(&PostParams::default(), &certificate)
        .await
        .unwrap();
    assert_eq!(
        created.spec, certificate.spec,
        "nothing pruned or defaulted"
    );
    assert!(created.status.is_none());
    assert_eq!(created.metadata.generation, Some(1));

    let request = certificate_request("agent-a-1", relay_issuer());
    let created = requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    assert_eq!(created.spec, request.spec);

    // The approver applies Approved, then the issuer (another manager) applies Ready alone.
    let after_approval = requests
        .patch_status(
            "agent-a-1",
            &PatchParams::apply("cert-manager-approver"),
            &Patch::Apply(status_apply(&approved())),
        )
        .await
        .unwrap();
    assert_eq!(condition_types(&after_approval), ["Approved"]);
    let after_issuance = requests
        .patch_status(
            "agent-a-1",
            &PatchParams::apply("relay-issuer"),
            &Patch::Apply(status_apply(&ready())),
        )
        .await
        .unwrap();
    assert_eq!(
        condition_types(&after_issuance),
        ["Approved", "Ready"],
        "list-map on type keeps the approver's entry"
    );
    let stored = requests.get("agent-a-1").await.unwrap();
    let status = stored.status.clone().unwrap();
    assert_eq!(status.condition(cm::CONDITION_APPROVED), Some(&approved()));
    assert_eq!(status.condition(cm::CONDITION_READY), Some(&ready()));
    let mut managers: Vec<String> = stored
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    managers.sort();
    managers.dedup();
    assert!(
        managers.contains(&"cert-manager-approver".to_string())
            && managers.contains(&"relay-issuer".to_string()),
        "{managers:?}"
    );

    // The issuer re-applies Ready with the chain: Approved still survives, status is typed.
    let final_status = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "status": serde_json::to_value(CertificateRequestStatus {
            conditions: vec![ready()],
            certificate: Some(ByteString(CERT_PEM.as_bytes().to_vec())),
            ca: Some(ByteString(CA_PEM.as_bytes().to_vec())),
            failure_time: None,
        }).unwrap()
    });
    let issued = requests
        .patch_status(
            "agent-a-1",
            &PatchParams::apply("relay-issuer"),
            &Patch::Apply(final_status),
        )
        .await
        .unwrap();
    assert_eq!(condition_types(&issued), ["Approved", "Ready"]);
    let status = issued.status.unwrap();
    assert_eq!(
        status.certificate.map(|b| b.0),
        Some(CERT_PEM.as_bytes().to_vec())
    );
    assert_eq!(status.ca.map(|b| b.0), Some(CA_PEM.as_bytes().to_vec()));
}

#[tokio::test]
async fn the_sandbox_selects_requests_and_certificates_by_issuer_ref() {
    let sandbox = sandbox().await;
    let client = sandbox.client().unwrap();
    let requests: Api<CertificateRequest> = Api::namespaced(client.clone(), "default");
    let certificates: Api<Certificate> = Api::namespaced(client, "default");
    let cert_manager_ca = IssuerReference {
        name: "ca".into(),
        kind: Some("ClusterIssuer".into()),
        group: Some(cm::GROUP.into()),
    };
    for (name, issuer) in [
        ("relay-1", relay_issuer()),
        ("relay-2", relay_issuer()),
        ("ca-1", cert_manager_ca.clone()),
    ] {
        requests
            .create(&PostParams::default(), &certificate_request(name, issuer))
            .await
            .unwrap();
    }
    let names = |list: kube::core::ObjectList<CertificateRequest>| -> Vec<String> {
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        names.sort();
        names
    };
    let ours = requests
        .list(&ListParams::default().fields("spec.issuerRef.group=relaytls.dev"))
        .await
        .unwrap();
    assert_eq!(names(ours), ["relay-1", "relay-2"]);
    let theirs = requests
        .list(
            &ListParams::default()
                .fields("spec.issuerRef.kind=ClusterIssuer,spec.issuerRef.name=ca"),
        )
        .await
        .unwrap();
    assert_eq!(names(theirs), ["ca-1"]);
    let not_ours = requests
        .list(&ListParams::default().fields("spec.issuerRef.group!=relaytls.dev"))
        .await
        .unwrap();
    assert_eq!(names(not_ours), ["ca-1"]);
    // Only declared fields are selectable.
    match requests
        .list(&ListParams::default().fields("spec.duration=8760h"))
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => assert_eq!(status.code, 400, "{}", status.message),
        other => panic!("{other:?}"),
    }

    let mut other = certificate("other");
    other.spec.issuer_ref = CertificateIssuerRef {
        name: cert_manager_ca.name.clone(),
        kind: cert_manager_ca.kind.clone(),
        group: cert_manager_ca.group.clone(),
    };
    for certificate in [certificate("agent-a"), other] {
        certificates
            .create(&PostParams::default(), &certificate)
            .await
            .unwrap();
    }
    let relay: Vec<String> = certificates
        .list(&ListParams::default().fields("spec.issuerRef.group=relaytls.dev"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(relay, ["agent-a"]);
}
