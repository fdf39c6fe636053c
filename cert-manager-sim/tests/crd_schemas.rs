//! The emulator's structural schemas (`kube_sandbox::schema`) with cert-manager's real CRDs:
//! objects cert-manager accepts validate and keep their fields, pruning drops what the schemas
//! do not declare, list types are read as declared, and a bad value is refused the way
//! kube-apiserver words it.

use cert_manager_sim::crds::cert_manager_crd;
use kube_sandbox::Cause;
use kube_sandbox::schema::{ListType, StructuralSchema};
use serde_json::{Value, json};

fn one(reason: &str, field: &str, message: &str) -> Vec<Cause> {
    vec![Cause {
        reason: reason.to_owned(),
        message: message.to_owned(),
        field: field.to_owned(),
    }]
}

const CSR_PEM: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIIBBjCBrQIBADAcMRowGAYDVQQDDBFjbGllbnQucmVsYXkudGVzdDBZMBMGByqG
SM49AgEGCCqGSM49AwEHA0IABIWewo5hTJy8LgHpOV/JgFjij85rm8XG8WH6egJU
343N6CCyHEd+AufPQrMn6wLi91P5VWXMAmI9jhbmtudKeH6gLzAtBgkqhkiG9w0B
CQ4xIDAeMBwGA1UdEQQVMBOCEWNsaWVudC5yZWxheS50ZXN0MAoGCCqGSM49BAMC
A0gAMEUCIQCtp5iW3XTjSDtp6UgWMzI+mv2gBoMaQL731WEDb2zejQIgftidKsYY
wBjv3j2iop6mEsfjE7DR3+bbZqCdndhxT2w=
-----END CERTIFICATE REQUEST-----
";

/// The v1 schema of one of cert-manager's CRD files.
fn cert_manager_schema(file: &str) -> StructuralSchema {
    let path = cert_manager_crd(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let crd: Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v1 = versions
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("a v1 version");
    StructuralSchema::compile(&v1["schema"]["openAPIV3Schema"])
        .unwrap_or_else(|e| panic!("{file} should compile: {e}"))
}

fn certificate() -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "relay-client", "namespace": "relay"},
        "spec": {
            "secretName": "relay-client-tls",
            "commonName": "client.relay.test",
            "dnsNames": ["client.relay.test"],
            "issuerRef": {"name": "relay-issuer", "kind": "Issuer", "group": "relay.example.com"},
            "duration": "8760h",
            "renewBefore": "720h",
            "usages": ["client auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        },
    })
}

fn certificate_request() -> Value {
    use base64::Engine as _;
    let request = base64::engine::general_purpose::STANDARD.encode(CSR_PEM);
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": "relay-client-1", "namespace": "relay"},
        "spec": {
            "request": request,
            "issuerRef": {"name": "relay-issuer", "kind": "Issuer", "group": "relay.example.com"},
            "usages": ["client auth", "digital signature"],
            "duration": "8760h",
        },
        "status": {
            "conditions": [
                {"type": "Approved", "status": "True", "reason": "cert-manager.io", "lastTransitionTime": "2026-01-02T03:04:05Z"},
                {"type": "Ready", "status": "False", "reason": "Pending", "message": "Waiting for the signer"},
            ],
        },
    })
}

#[test]
fn cert_manager_certificate_validates_and_prunes() {
    let schema = cert_manager_schema("cert-manager.io_certificates.yaml");
    let valid = certificate();
    let mut pruned = valid.clone();
    schema.prune(&mut pruned);
    assert_eq!(pruned, valid);
    assert_eq!(schema.validate(&valid), Vec::new());

    let mut unknown = certificate();
    unknown["spec"]["privateKey"]["colour"] = json!("blue");
    unknown["spec"]["extra"] = json!({"a": 1});
    schema.prune(&mut unknown);
    assert_eq!(unknown, certificate());

    let mut wrong_type = certificate();
    wrong_type["spec"]["duration"] = json!(5);
    assert_eq!(
        schema.validate(&wrong_type),
        one(
            "FieldValueTypeInvalid",
            "spec.duration",
            "Invalid value: \"integer\": spec.duration in body must be of type string: \"integer\""
        )
    );

    let mut bad_enum = certificate();
    bad_enum["spec"]["privateKey"]["algorithm"] = json!("DSA");
    assert_eq!(
        schema.validate(&bad_enum),
        one(
            "FieldValueNotSupported",
            "spec.privateKey.algorithm",
            "Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\""
        )
    );

    let mut missing = certificate();
    missing["spec"]["issuerRef"] = json!({"kind": "Issuer"});
    assert_eq!(
        schema.validate(&missing),
        one(
            "FieldValueRequired",
            "spec.issuerRef.name",
            "Required value"
        )
    );

    let mut bad_usage = certificate();
    bad_usage["spec"]["usages"] = json!(["client auth", "digital signature", "teleportation"]);
    let found = schema.validate(&bad_usage);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "spec.usages[2]");
    assert_eq!(found[0].reason, "FieldValueNotSupported");

    assert_eq!(
        schema.list_type_at(&["status", "conditions"]),
        Some(ListType::Map {
            keys: vec!["type".into()]
        })
    );
    assert_eq!(
        schema.list_type_at(&["spec", "dnsNames"]),
        Some(ListType::Atomic)
    );
}

#[test]
fn cert_manager_certificate_request_validates() {
    let schema = cert_manager_schema("cert-manager.io_certificaterequests.yaml");
    let valid = certificate_request();
    let mut pruned = valid.clone();
    schema.prune(&mut pruned);
    assert_eq!(pruned, valid);
    assert_eq!(schema.validate(&valid), Vec::new());

    let mut not_base64 = certificate_request();
    not_base64["spec"]["request"] = json!(CSR_PEM);
    let found = schema.validate(&not_base64);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].reason, "FieldValueTypeInvalid");
    assert_eq!(found[0].field, "spec.request");
    assert!(
        found[0]
            .message
            .ends_with(&format!("must be of type byte: {CSR_PEM:?}"))
    );

    let mut missing_request = certificate_request();
    if let Some(spec) = missing_request["spec"].as_object_mut() {
        spec.remove("request");
    }
    assert_eq!(
        schema.validate(&missing_request),
        one("FieldValueRequired", "spec.request", "Required value")
    );

    let mut duplicate_condition = certificate_request();
    duplicate_condition["status"]["conditions"][1]["type"] = json!("Approved");
    assert_eq!(
        schema.validate(&duplicate_condition),
        one(
            "FieldValueDuplicate",
            "status.conditions[1]",
            "Duplicate value: {\"type\":\"Approved\"}"
        )
    );

    let mut bad_status = certificate_request();
    bad_status["status"]["conditions"][0]["status"] = json!("Maybe");
    let found = schema.validate(&bad_status);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "status.conditions[0].status");
    assert_eq!(
        found[0].message,
        "Unsupported value: \"Maybe\": supported values: \"True\", \"False\", \"Unknown\""
    );
}
