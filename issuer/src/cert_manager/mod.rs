//! cert-manager's API (`cert-manager.io/v1` `Certificate` and `CertificateRequest`) as this
//! project's own Rust types, the CustomResourceDefinitions generated from them, and the
//! condition, reason, annotation and label names cert-manager's controllers use.
//!
//! The sandbox registers [`crds()`] to serve these kinds without reading cert-manager's CRD
//! files at run time; `tests/tests/cert_manager_types.rs` proves that objects built with
//! [`types`] pass cert-manager's real schemas, and round-trip through these types.
//!
//! What does not live here: the behaviour of cert-manager (webhook rules, approver, Certificate
//! controller) — that is the simulator's job; Issuer/ClusterIssuer types; the ACME types
//! (`Order`, `Challenge`); and the Certificate fields listed as not modelled in [`types`].

pub mod types;

use kube::CustomResourceExt;
use serde_json::Value;

use types::{Certificate, CertificateRequest};

/// cert-manager's API group.
pub const GROUP: &str = "cert-manager.io";
/// The API version served.
pub const VERSION: &str = "v1";

/// Condition type: the Certificate is up to date / the request has ended (see the reason).
pub const CONDITION_READY: &str = "Ready";
/// Condition type (Certificate): an issuance is in progress.
pub const CONDITION_ISSUING: &str = "Issuing";
/// Condition type (CertificateRequest): an approver approved the request.
pub const CONDITION_APPROVED: &str = "Approved";
/// Condition type (CertificateRequest): an approver denied the request.
pub const CONDITION_DENIED: &str = "Denied";
/// Condition type (CertificateRequest): the request can never be signed as written.
pub const CONDITION_INVALID_REQUEST: &str = "InvalidRequest";

/// `Ready` reason: the certificate was signed.
pub const REASON_ISSUED: &str = "Issued";
/// `Ready` reason: not signed yet; a transient problem or still waiting.
pub const REASON_PENDING: &str = "Pending";
/// `Ready` reason: signing failed for good (`status.failureTime` is set).
pub const REASON_FAILED: &str = "Failed";
/// `Ready` reason: the request was denied (`status.failureTime` is set).
pub const REASON_DENIED: &str = "Denied";
/// `Approved` reason written by cert-manager's default approver.
pub const REASON_APPROVED_BY_CERT_MANAGER: &str = "cert-manager.io";
/// `Approved` message written by cert-manager's default approver.
pub const MESSAGE_APPROVED_BY_CERT_MANAGER: &str =
    "Certificate request has been approved by cert-manager.io";

/// Annotation (CertificateRequest, Secret): the Certificate it belongs to.
pub const ANNOTATION_CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";
/// Annotation (CertificateRequest): the Certificate revision it issues.
pub const ANNOTATION_CERTIFICATE_REVISION: &str = "cert-manager.io/certificate-revision";
/// Annotation (CertificateRequest): the Secret holding the private key of its CSR.
pub const ANNOTATION_PRIVATE_KEY_SECRET_NAME: &str = "cert-manager.io/private-key-secret-name";
/// Annotation (Secret): the issuer's name.
pub const ANNOTATION_ISSUER_NAME: &str = "cert-manager.io/issuer-name";
/// Annotation (Secret): the issuer's kind.
pub const ANNOTATION_ISSUER_KIND: &str = "cert-manager.io/issuer-kind";
/// Annotation (Secret): the issuer's group.
pub const ANNOTATION_ISSUER_GROUP: &str = "cert-manager.io/issuer-group";
/// Annotation (Secret): the certificate's common name.
pub const ANNOTATION_COMMON_NAME: &str = "cert-manager.io/common-name";
/// Annotation (Secret): the certificate's DNS names, comma-separated.
pub const ANNOTATION_ALT_NAMES: &str = "cert-manager.io/alt-names";
/// Annotation (Secret): the certificate's IP addresses, comma-separated.
pub const ANNOTATION_IP_SANS: &str = "cert-manager.io/ip-sans";
/// Annotation (Secret): the certificate's URIs, comma-separated.
pub const ANNOTATION_URI_SANS: &str = "cert-manager.io/uri-sans";
/// Label (Secret, value `"true"`): cert-manager owns the Secret ("for attention of").
pub const LABEL_FAO: &str = "controller.cert-manager.io/fao";

/// The CustomResourceDefinitions of [`Certificate`] and [`CertificateRequest`], generated from
/// the types, as JSON ready for `Sandbox::create_crd`.
pub fn crds() -> Vec<Value> {
    [Certificate::crd(), CertificateRequest::crd()]
        .iter()
        // Serializing a CRD cannot fail (string keys, no fallible `Serialize`); a `Null` here
        // would be refused loudly by `create_crd` rather than silently skipped.
        .map(|crd| serde_json::to_value(crd).unwrap_or(Value::Null))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::types::KeyUsage;
    use super::*;
    use serde_json::json;

    fn version(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]
    }

    #[test]
    fn cert_manager_crds_names_and_scope() {
        let crds = crds();
        assert_eq!(crds.len(), 2);
        let (cert, cr) = (&crds[0], &crds[1]);
        assert_eq!(cert["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(cert["kind"], "CustomResourceDefinition");
        assert_eq!(cert["metadata"]["name"], "certificates.cert-manager.io");
        assert_eq!(
            cr["metadata"]["name"],
            "certificaterequests.cert-manager.io"
        );
        for (crd, kind, plural, short) in [
            (
                cert,
                "Certificate",
                "certificates",
                json!(["cert", "certs"]),
            ),
            (
                cr,
                "CertificateRequest",
                "certificaterequests",
                json!(["cr", "crs"]),
            ),
        ] {
            assert_eq!(crd["spec"]["group"], GROUP);
            assert_eq!(crd["spec"]["scope"], "Namespaced");
            assert_eq!(crd["spec"]["names"]["kind"], kind);
            assert_eq!(crd["spec"]["names"]["plural"], plural);
            assert_eq!(crd["spec"]["names"]["singular"], kind.to_ascii_lowercase());
            assert_eq!(crd["spec"]["names"]["shortNames"], short);
            assert_eq!(crd["spec"]["names"]["categories"], json!(["cert-manager"]));
            let v = version(crd);
            assert_eq!(v["name"], VERSION);
            assert_eq!((&v["served"], &v["storage"]), (&json!(true), &json!(true)));
            assert_eq!(v["subresources"]["status"], json!({}));
            assert_eq!(
                v["selectableFields"],
                json!([
                    {"jsonPath": ".spec.issuerRef.group"},
                    {"jsonPath": ".spec.issuerRef.kind"},
                    {"jsonPath": ".spec.issuerRef.name"}
                ])
            );
        }
    }

    #[test]
    fn cert_manager_printer_columns_match_upstream_layout() {
        let crds = crds();
        let columns = |crd: &Value| -> Vec<(String, String, i64)> {
            version(crd)["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["jsonPath"].as_str().unwrap_or_default().to_string(),
                        c["priority"].as_i64().unwrap_or(0),
                    )
                })
                .collect()
        };
        let names =
            |crd: &Value| -> Vec<String> { columns(crd).into_iter().map(|(n, _, _)| n).collect() };
        assert_eq!(
            names(&crds[0]),
            ["Ready", "Secret", "Issuer", "Status", "Age"]
        );
        assert_eq!(
            names(&crds[1]),
            [
                "Approved",
                "Denied",
                "Ready",
                "Issuer",
                "Requester",
                "Status",
                "Age"
            ]
        );
        assert!(columns(&crds[1]).contains(&(
            "Approved".into(),
            r#".status.conditions[?(@.type == "Approved")].status"#.into(),
            0
        )));
        assert!(columns(&crds[0]).contains(&("Secret".into(), ".spec.secretName".into(), 0)));
    }

    #[test]
    fn cert_manager_conditions_are_list_maps_keyed_by_type() {
        for crd in crds() {
            let conditions = &version(&crd)["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
                ["conditions"];
            assert_eq!(conditions["type"], "array", "{conditions}");
            assert_eq!(conditions["x-kubernetes-list-type"], "map");
            assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
            assert_eq!(
                conditions["items"]["required"],
                json!(["status", "type"]),
                "list-map keys must be required"
            );
        }
    }

    #[test]
    fn cert_manager_binary_and_time_fields_have_api_server_formats() {
        let crds = crds();
        let cr = &version(&crds[1])["schema"]["openAPIV3Schema"]["properties"];
        for path in [
            "/spec/properties/request",
            "/status/properties/certificate",
            "/status/properties/ca",
        ] {
            let field = cr.pointer(path).unwrap_or(&Value::Null);
            assert_eq!(
                (&field["type"], &field["format"]),
                (&json!("string"), &json!("byte")),
                "{path}"
            );
        }
        let failure = &cr["status"]["properties"]["failureTime"];
        assert_eq!(failure["format"], "date-time");
        let cert =
            &version(&crds[0])["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
        for field in ["notBefore", "notAfter", "renewalTime", "lastFailureTime"] {
            assert_eq!(cert[field]["format"], "date-time", "{field}");
        }
    }

    #[test]
    fn cert_manager_key_usage_names_round_trip() {
        for usage in KeyUsage::ALL {
            assert_eq!(
                serde_json::to_value(usage).ok(),
                Some(json!(usage.as_str()))
            );
            assert_eq!(KeyUsage::from_name(usage.as_str()), Some(usage));
            assert_eq!(usage.to_string(), usage.as_str());
        }
        assert_eq!(KeyUsage::from_name("Digital Signature"), None);
    }
}
