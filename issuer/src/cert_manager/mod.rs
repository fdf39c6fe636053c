//! cert-manager's API as the issuer sees it: the `CertificateRequest` type ([`types`]) and the
//! condition, reason and message names cert-manager's controllers and approver use.
//!
//! What does not live here: cert-manager's CRDs (cert-manager installs them; tests read the
//! pinned release's files), the other kinds (`Certificate`, issuers, ACME), and cert-manager's
//! behaviour (the test crate `cert-manager-sim`).

pub mod types;

/// cert-manager's API group.
pub const GROUP: &str = "cert-manager.io";
/// The API version served.
pub const VERSION: &str = "v1";

/// Condition type: the Certificate is up to date / the request has ended (see the reason).
pub const CONDITION_READY: &str = "Ready";
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

#[cfg(test)]
mod tests {
    use super::types::{CertificateRequest, KeyUsage};
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    /// The v1 schema of the CRD generated from [`CertificateRequest`] (what the drift test
    /// compares with cert-manager's).
    fn schema() -> Value {
        let crd = serde_json::to_value(CertificateRequest::crd()).unwrap_or(Value::Null);
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    #[test]
    fn the_type_is_cert_managers_namespaced_kind() {
        let crd = serde_json::to_value(CertificateRequest::crd()).unwrap_or(Value::Null);
        assert_eq!(
            crd["metadata"]["name"],
            "certificaterequests.cert-manager.io"
        );
        assert_eq!(crd["spec"]["group"], GROUP);
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["versions"][0]["name"], VERSION);
        assert_eq!(
            crd["spec"]["versions"][0]["subresources"]["status"],
            json!({})
        );
    }

    #[test]
    fn conditions_are_list_maps_keyed_by_type() {
        let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["type"], "array", "{conditions}");
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
        assert_eq!(
            conditions["items"]["required"],
            json!(["status", "type"]),
            "list-map keys must be required"
        );
    }

    #[test]
    fn binary_and_time_fields_have_api_server_formats() {
        let properties = &schema()["properties"];
        for path in [
            "/spec/properties/request",
            "/status/properties/certificate",
            "/status/properties/ca",
        ] {
            let field = properties.pointer(path).unwrap_or(&Value::Null);
            assert_eq!(
                (&field["type"], &field["format"]),
                (&json!("string"), &json!("byte")),
                "{path}"
            );
        }
        let failure = &properties["status"]["properties"]["failureTime"];
        assert_eq!(failure["format"], "date-time");
    }

    #[test]
    fn key_usage_names_round_trip() {
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
