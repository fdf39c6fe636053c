//! The `relaytls.dev/v1alpha1` API: `RelayIssuer` (namespaced) and `RelayClusterIssuer`
//! (cluster-scoped), `RelayCluster` (registered agent clusters, in [`cluster`]), as Rust types, and the CustomResourceDefinitions generated from them
//! (`relay-issuer crds` writes them to `deploy/crds/`; a test fails when the committed files
//! differ).
//!
//! What does not live here: how an issuer's readiness is decided (`controller::decide`) and
//! cert-manager's own types (`cert_manager`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, CustomResourceExt as _};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

pub mod cluster;
pub use cluster::{RelayCluster, RelayClusterSpec, RelayClusterStatus};

/// The API group of every relay-tls resource.
pub const GROUP: &str = "relaytls.dev";
/// The API version served.
pub const VERSION: &str = "v1alpha1";
/// Kind of the namespaced issuer.
pub const KIND_ISSUER: &str = "RelayIssuer";
/// Kind of the cluster-scoped issuer.
pub const KIND_CLUSTER_ISSUER: &str = "RelayClusterIssuer";
/// The signing Secret's name when `spec.ca.secretName` is not given.
pub const DEFAULT_SIGNING_SECRET: &str = "relay-tls-signing-secret";

/// Declares one issuer kind. Both kinds carry exactly the same spec and status; only their
/// scope differs, and kube's derive needs one spec struct per kind.
macro_rules! issuer_kind {
    ($spec:ident, $kind:literal, $plural:literal, $short:literal, $kind_doc:literal $(, $namespaced:ident)?) => {
        #[doc = concat!("The desired state of a ", $kind, ": where its signing CA lives and what it may sign.")]
        // clippy reads the repeated `type_ = ...` of the `printcolumn(...)` lists as duplicates.
        #[allow(clippy::duplicated_attributes)]
        #[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[kube(
            group = "relaytls.dev",
            version = "v1alpha1",
            kind = $kind,
            plural = $plural,
            $($namespaced,)?
            status = "IssuerStatus",
            derive = "PartialEq",
            derive = "Default",
            shortname = $short,
            category = "relay-tls",
            category = "cert-manager",
            doc = $kind_doc,
            printcolumn(
                name = "Ready",
                type_ = "string",
                json_path = r#".status.conditions[?(@.type == "Ready")].status"#
            ),
            printcolumn(
                name = "Reason",
                type_ = "string",
                json_path = r#".status.conditions[?(@.type == "Ready")].reason"#
            ),
            printcolumn(
                name = "Message",
                type_ = "string",
                json_path = r#".status.conditions[?(@.type == "Ready")].message"#,
                priority = 1
            ),
            printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
        )]
        #[serde(rename_all = "camelCase")]
        pub struct $spec {
            /// The signing CA: a Secret with `tls.crt` (the intermediate, optionally followed by
            /// its chain), `tls.key` and optionally `ca.crt` (the root). Absent means the Secret
            /// `relay-tls-signing-secret`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub ca: Option<CaSource>,
            /// Remote signing (exclusive with `ca`): forward each request's CSR to the relay
            /// server in the management cluster, authenticated by the agent's current client
            /// certificate while it is valid, else by the bootstrap token.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub relay: Option<RelaySource>,
            /// What this issuer agrees to sign beyond the fixed rules.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub policy: Option<IssuerPolicy>,
        }

        impl $spec {
            /// The issuer-independent view of this spec.
            pub fn settings(&self) -> IssuerSettings {
                IssuerSettings {
                    secret_name: self
                        .ca
                        .as_ref()
                        .map(|ca| ca.secret_name.clone())
                        .unwrap_or_else(|| DEFAULT_SIGNING_SECRET.to_string()),
                    policy: self.policy.clone().unwrap_or_default(),
                    relay: self.relay.clone(),
                    both_sources: self.ca.is_some() && self.relay.is_some(),
                }
            }
        }
    };
}

issuer_kind!(
    RelayIssuerSpec,
    "RelayIssuer",
    "relayissuers",
    "rissuer",
    "A RelayIssuer signs cert-manager CertificateRequests in its own namespace with the relay intermediate CA from a Secret in that namespace.",
    namespaced
);

issuer_kind!(
    RelayClusterIssuerSpec,
    "RelayClusterIssuer",
    "relayclusterissuers",
    "rcissuer",
    "A RelayClusterIssuer signs cert-manager CertificateRequests in every namespace with the relay intermediate CA from a Secret in the controller's cluster resource namespace (--cluster-resource-namespace)."
);

/// Where the signing CA is kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSource {
    /// Name of the Secret with `tls.crt`, `tls.key` and optionally `ca.crt`. For a
    /// RelayClusterIssuer it is read from the cluster resource namespace.
    #[serde(default = "default_signing_secret")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

impl Default for CaSource {
    fn default() -> Self {
        Self {
            secret_name: default_signing_secret(),
        }
    }
}

fn default_signing_secret() -> String {
    DEFAULT_SIGNING_SECRET.to_string()
}

/// A Secret in the issuer's Secret namespace (the issuer's own, or the cluster resource
/// namespace for a RelayClusterIssuer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key (default `token`).
    #[serde(default = "default_token_key")]
    pub key: String,
}

fn default_token_key() -> String {
    "token".to_string()
}

/// Where and as whom to forward CSRs for remote signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelaySource {
    /// The relay server, `https://host[:port]`; the port defaults to 9900, as the agent reads the
    /// same address (e.g. `https://relay.gloo-mesh.example:9900`).
    #[schemars(length(min = 1), regex(pattern = r"^https://"))]
    pub address: String,
    /// The name the relay server's certificate must carry. Default: the host of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// Secret whose `ca.crt` verifies the relay server. Default `relay-root-tls-secret`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "caBundleSecretRef"
    )]
    pub ca_bundle_secret_ref: Option<SecretRef>,
    /// Secret with the current client certificate (`tls.crt`, `tls.key`) that authenticates
    /// renewals. Default `relay-client-tls-secret`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "clientTLSSecretRef"
    )]
    pub client_tls_secret_ref: Option<SecretRef>,
    /// Secret key with the bootstrap token, used while there is no valid client certificate.
    /// Default `relay-identity-token-secret`, key `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// The cluster identity to request (the CSR must name it).
    #[schemars(length(min = 1, max = 253))]
    pub cluster: String,
}

impl RelaySource {
    /// The CA bundle Secret's name.
    pub fn ca_bundle_secret(&self) -> &str {
        self.ca_bundle_secret_ref
            .as_ref()
            .map_or("relay-root-tls-secret", |r| r.name.as_str())
    }

    /// The client TLS Secret's name.
    pub fn client_tls_secret(&self) -> &str {
        self.client_tls_secret_ref
            .as_ref()
            .map_or("relay-client-tls-secret", |r| r.name.as_str())
    }

    /// The token Secret's name and key.
    pub fn token_secret(&self) -> (&str, &str) {
        self.token_secret_ref
            .as_ref()
            .map_or(("relay-identity-token-secret", "token"), |r| {
                (r.name.as_str(), r.key.as_str())
            })
    }
}

/// What an issuer agrees to sign, beyond the rules that always apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerPolicy {
    /// Whether requests with `isCA: true` may be signed. Default false: an agent certificate
    /// never needs to be a CA.
    #[serde(default, rename = "allowCA")]
    pub allow_ca: bool,
    /// The longest `spec.duration` a request may ask for, as a Go duration (`8760h`). Longer
    /// requests fail. Absent: no limit beyond the CA's own expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub max_duration: Option<String>,
    /// Whether a certificate that would outlive the CA is cut to the CA's notAfter (default,
    /// and the condition message says so) or refused.
    #[serde(default = "default_true", rename = "clampToCA")]
    pub clamp_to_ca: bool,
}

impl Default for IssuerPolicy {
    fn default() -> Self {
        Self {
            allow_ca: false,
            max_duration: None,
            clamp_to_ca: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The part of either issuer kind's spec the controller acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The signing Secret's name.
    pub secret_name: String,
    /// The signing policy.
    pub policy: IssuerPolicy,
    /// Remote signing through the relay server, when set (then `secret_name` is unused).
    pub relay: Option<RelaySource>,
    /// Both `spec.ca` and `spec.relay` are set (invalid: they are exclusive).
    pub both_sources: bool,
}

impl IssuerSettings {
    /// Whether this issuer reads Secret `name` (in its Secret namespace): the signing Secret,
    /// or in relay mode the CA bundle, client certificate and token Secrets.
    pub fn uses_secret(&self, name: &str) -> bool {
        match &self.relay {
            Some(relay) => {
                relay.ca_bundle_secret() == name
                    || relay.client_tls_secret() == name
                    || relay.token_secret().0 == name
            }
            None => self.secret_name == name,
        }
    }
}

/// The observed state of an issuer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    /// `Ready` says whether the issuer can sign, and if not, why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<IssuerCondition>,
}

/// One condition of an issuer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerCondition {
    /// The condition type (`Ready`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, CamelCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a person needs to know, including what to do when not Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::cert_manager::types::DateTimeSchema>")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CustomResourceDefinitions of this API, keyed by file name (`<plural>.<group>.yaml`).
pub fn crds() -> BTreeMap<
    String,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
> {
    [
        RelayIssuer::crd(),
        RelayClusterIssuer::crd(),
        RelayCluster::crd(),
    ]
    .into_iter()
    .map(|crd| {
        (
            format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default()),
            crd,
        )
    })
    .collect()
}

/// The CRDs rendered as YAML files, keyed by file name, exactly as `relay-issuer crds` writes
/// them to `deploy/crds/`.
pub fn crd_files() -> Result<BTreeMap<String, String>, Error> {
    crds()
        .into_iter()
        .map(|(file, crd)| {
            let yaml = serde_saphyr::to_string(&crd).map_err(|e| Error::Generate {
                what: "the CustomResourceDefinition YAML",
                detail: e.to_string(),
            })?;
            Ok((
                file,
                format!(
                    "# Generated by `relay-issuer crds` from issuer/src/api; do not edit.\n{yaml}"
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_issue() {
        let spec: RelayIssuerSpec = serde_json::from_str("{}").unwrap();
        let settings = spec.settings();
        assert_eq!(settings.secret_name, "relay-tls-signing-secret");
        assert!(!settings.policy.allow_ca);
        assert!(settings.policy.clamp_to_ca);
        assert_eq!(settings.policy.max_duration, None);

        let spec: RelayClusterIssuerSpec =
            serde_json::from_str(r#"{"ca":{},"policy":{"maxDuration":"8760h"}}"#).unwrap();
        let settings = spec.settings();
        assert_eq!(settings.secret_name, "relay-tls-signing-secret");
        assert!(settings.policy.clamp_to_ca, "clampToCA defaults to true");
        assert_eq!(settings.policy.max_duration.as_deref(), Some("8760h"));
    }

    #[test]
    fn field_names_are_the_documented_ones() {
        let spec = RelayIssuerSpec {
            relay: None,
            ca: Some(CaSource {
                secret_name: "s".into(),
            }),
            policy: Some(IssuerPolicy {
                allow_ca: true,
                max_duration: Some("1h".into()),
                clamp_to_ca: false,
            }),
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ca":{"secretName":"s"},"policy":{"allowCA":true,"maxDuration":"1h","clampToCA":false}})
        );
    }

    #[test]
    fn crds_have_scope_status_columns_and_short_names() {
        let crds = crds();
        let issuer = &crds["relayissuers.relaytls.dev.yaml"];
        let cluster = &crds["relayclusterissuers.relaytls.dev.yaml"];
        assert_eq!(issuer.spec.scope, "Namespaced");
        assert_eq!(cluster.spec.scope, "Cluster");
        for crd in [issuer, cluster] {
            assert_eq!(crd.spec.group, GROUP);
            let version = &crd.spec.versions[0];
            assert_eq!(version.name, VERSION);
            assert!(version.subresources.as_ref().unwrap().status.is_some());
            let columns: Vec<_> = version
                .additional_printer_columns
                .as_ref()
                .unwrap()
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            assert_eq!(columns, ["Ready", "Reason", "Message", "Age"]);
            assert!(!crd.spec.names.short_names.as_ref().unwrap().is_empty());
        }
    }
}
