//! `RelayCluster`: one per agent cluster allowed to talk to the relay server, in the server's
//! namespace. Its existence registers the cluster (Connect and SignCertificate refuse clusters
//! without one); its spec can suspend the cluster or revoke its older certificates (decided in
//! `server::decide::check_access`); its status is written by the relay server
//! (`server::clusters`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Kind of the registered-cluster resource.
pub const KIND_CLUSTER: &str = "RelayCluster";

/// A registered agent cluster. The object's name is the cluster name, which agent certificates
/// carry as CN and in `spiffe://<trust-domain>/relay/cluster/<name>`.
// clippy reads the repeated `type_ = ...` of the `printcolumn(...)` lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "relaytls.dev",
    version = "v1alpha1",
    kind = "RelayCluster",
    plural = "relayclusters",
    namespaced,
    status = "RelayClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "rcluster",
    category = "relay-tls",
    doc = "A RelayCluster registers an agent cluster with the relay server: only clusters with a RelayCluster in the server's namespace may connect or have certificates signed. The relay server keeps its status current.",
    printcolumn(name = "Connected", type_ = "boolean", json_path = ".status.connected"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspended"),
    printcolumn(name = "Last Seen", type_ = "date", json_path = ".status.lastSeen"),
    printcolumn(
        name = "Serial",
        type_ = "string",
        json_path = ".status.certificateSerial"
    ),
    printcolumn(
        name = "Cert Expires",
        type_ = "string",
        json_path = ".status.certificateNotAfter"
    ),
    printcolumn(
        name = "Replica",
        type_ = "string",
        json_path = ".status.replica",
        priority = 1
    ),
    printcolumn(
        name = "Agent",
        type_ = "string",
        json_path = ".status.agentVersion",
        priority = 1
    ),
    printcolumn(
        name = "Root",
        type_ = "string",
        json_path = ".status.certificateRoot",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RelayClusterSpec {
    /// A free-form description for people (which environment, who owns it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Cuts the cluster off while true: the relay server closes its live Connect streams within
    /// a second, refuses its reconnects and signs nothing for it (token or certificate). Set it
    /// back to false to let the agent in again; the agent needs no restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// Refuses this cluster's client certificates issued (notBefore) before this time, for
    /// Connect and for renewal by certificate, and closes live streams that hold one: the
    /// response to a leaked key. A certificate issued afterwards (cert-manager renewal, or the
    /// bootstrap token) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::cert_manager::types::DateTimeSchema>")]
    pub revoke_certificates_issued_before: Option<Time>,
}

/// What the relay server last saw of the cluster's agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelayClusterStatus {
    /// Whether an agent of this cluster holds a Connect stream now.
    #[serde(default)]
    pub connected: bool,
    /// The relay server replica (its Pod's name) that holds the agent's session, or held it
    /// last. A status that says connected through a replica that stopped renewing its Lease is
    /// cleared by the other replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// When the server last heard from the agent: connect, disconnect, and while connected at
    /// most every `--status-refresh` (10 minutes by default; liveness while connected is the
    /// replica's Lease, not this time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::cert_manager::types::DateTimeSchema>")]
    pub last_seen: Option<Time>,
    /// Serial of the client certificate the agent last connected with, colon-separated hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
    /// notAfter of that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::cert_manager::types::DateTimeSchema>")]
    pub certificate_not_after: Option<Time>,
    /// The SHA-256 fingerprint (lowercase hex) of the root in the server's trust bundle that
    /// certificate chains to: what a root rotation (`relay-issuer ca rotate`) waits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_root: Option<String>,
    /// The SHA-256 fingerprint of the intermediate that issued it, when the agent sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_issuer: Option<String>,
    /// The agent's version, from its hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// How many Connect streams the cluster's agents hold (2 briefly during a certificate swap).
    #[serde(default)]
    pub streams: u32,
}
