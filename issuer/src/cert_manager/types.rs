//! The Rust type of cert-manager's `CertificateRequest` (`cert-manager.io/v1`): the one kind
//! the issuer reads and writes.
//!
//! Hand-written, not generated: the shipped binaries are built without cert-manager's CRDs (the
//! generator needs them, and Go to fetch them, at build time), and the issuer reads six fields.
//! Tests check it against the pinned release's CRD field by field
//! (`tests/tests/cert_manager_types.rs`); the complete generated types of every cert-manager
//! kind live in the test crate `cert-manager-sim` (`types`).
//!
//! Field names, JSON shapes and enum spellings follow cert-manager's API so that objects built
//! here are accepted by cert-manager's own CRD schema, and objects written by cert-manager
//! deserialize here. Optional fields are `Option`s (absent when `None`); lists and maps are
//! plain collections that are left out when empty, as Go's `omitempty` does. Times are
//! [`Time`] (RFC 3339, whole seconds) and binary fields are [`ByteString`] (standard base64 on
//! the wire, the CRDs' `format: byte`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// CertificateRequest
// ---------------------------------------------------------------------------------------------

/// A one-shot request to an issuer to sign a CSR. The spec is immutable once created. (Its
/// CRD, printer columns and short names are cert-manager's own; this type never generates one
/// that is installed.)
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    namespaced,
    status = "CertificateRequestStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// The PEM-encoded certificate signing request (base64 on the wire).
    #[schemars(with = "ByteSchema")]
    pub request: ByteString,
    /// The issuer asked to sign.
    pub issuer_ref: IssuerReference,
    /// Requested lifetime, a Go duration; issuers default to 90 days (`2160h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Requested BasicConstraints `isCA`; must agree with the CSR's BasicConstraints if any.
    #[serde(rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    /// Requested key usages and extended key usages; none means `digital signature` and
    /// `key encipherment`. Must equal the CSR's KU/EKU extensions if it has them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub usages: Vec<KeyUsage>,
    /// The user who created the request (set by cert-manager's webhook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The uid of the user who created the request (set by cert-manager's webhook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The groups of the user who created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub groups: Vec<String>,
    /// Extra attributes of the user who created the request (set by cert-manager's webhook).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The observed state of a CertificateRequest, written by the approver and the issuer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    /// Conditions, one per `type` (`Ready`, `InvalidRequest`, `Approved`, `Denied`); a
    /// list-map keyed by `type`, so the approver's and the issuer's entries survive each
    /// other's server-side applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<CertificateRequestCondition>,
    /// The signed certificate chain, PEM, leaf first (base64 on the wire).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ByteSchema>")]
    pub certificate: Option<ByteString>,
    /// The signer's CA certificate, PEM, when the issuer knows it (base64 on the wire).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<ByteSchema>")]
    pub ca: Option<ByteString>,
    /// When the request failed (or was denied).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub failure_time: Option<Time>,
}

/// One condition of a CertificateRequest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestCondition {
    /// The condition type (`Ready`, `InvalidRequest`, `Approved`, `Denied`).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason of the last transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail of the last transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub last_transition_time: Option<Time>,
}

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

/// A reference to an Issuer, ClusterIssuer or external issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IssuerReference {
    /// Name of the issuer.
    pub name: String,
    /// Kind of the issuer; empty means `Issuer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// API group of the issuer; empty means `cert-manager.io`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl IssuerReference {
    /// The kind, with cert-manager's default (`Issuer`) for an absent or empty one.
    pub fn kind_or_default(&self) -> &str {
        match self.kind.as_deref() {
            Some(kind) if !kind.is_empty() => kind,
            _ => "Issuer",
        }
    }

    /// The group, with cert-manager's default (`cert-manager.io`) for an absent or empty one.
    pub fn group_or_default(&self) -> &str {
        match self.group.as_deref() {
            Some(group) if !group.is_empty() => group,
            _ => super::GROUP,
        }
    }
}

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known.
    Unknown,
}

/// A key usage or extended key usage, spelled as cert-manager spells it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum KeyUsage {
    /// `signing`.
    #[serde(rename = "signing")]
    Signing,
    /// `digital signature` (KU).
    #[serde(rename = "digital signature")]
    DigitalSignature,
    /// `content commitment` (KU, a.k.a. non-repudiation).
    #[serde(rename = "content commitment")]
    ContentCommitment,
    /// `key encipherment` (KU).
    #[serde(rename = "key encipherment")]
    KeyEncipherment,
    /// `key agreement` (KU).
    #[serde(rename = "key agreement")]
    KeyAgreement,
    /// `data encipherment` (KU).
    #[serde(rename = "data encipherment")]
    DataEncipherment,
    /// `cert sign` (KU).
    #[serde(rename = "cert sign")]
    CertSign,
    /// `crl sign` (KU).
    #[serde(rename = "crl sign")]
    CrlSign,
    /// `encipher only` (KU).
    #[serde(rename = "encipher only")]
    EncipherOnly,
    /// `decipher only` (KU).
    #[serde(rename = "decipher only")]
    DecipherOnly,
    /// `any` (EKU anyExtendedKeyUsage).
    #[serde(rename = "any")]
    Any,
    /// `server auth` (EKU).
    #[serde(rename = "server auth")]
    ServerAuth,
    /// `client auth` (EKU).
    #[serde(rename = "client auth")]
    ClientAuth,
    /// `code signing` (EKU).
    #[serde(rename = "code signing")]
    CodeSigning,
    /// `email protection` (EKU).
    #[serde(rename = "email protection")]
    EmailProtection,
    /// `s/mime` (EKU, same as email protection).
    #[serde(rename = "s/mime")]
    SMime,
    /// `ipsec end system` (EKU).
    #[serde(rename = "ipsec end system")]
    IpsecEndSystem,
    /// `ipsec tunnel` (EKU).
    #[serde(rename = "ipsec tunnel")]
    IpsecTunnel,
    /// `ipsec user` (EKU).
    #[serde(rename = "ipsec user")]
    IpsecUser,
    /// `timestamping` (EKU).
    #[serde(rename = "timestamping")]
    Timestamping,
    /// `ocsp signing` (EKU).
    #[serde(rename = "ocsp signing")]
    OcspSigning,
    /// `microsoft sgc` (EKU).
    #[serde(rename = "microsoft sgc")]
    MicrosoftSgc,
    /// `netscape sgc` (EKU).
    #[serde(rename = "netscape sgc")]
    NetscapeSgc,
}

impl KeyUsage {
    /// Every usage, in the order cert-manager's CRDs list them.
    pub const ALL: [KeyUsage; 23] = [
        KeyUsage::Signing,
        KeyUsage::DigitalSignature,
        KeyUsage::ContentCommitment,
        KeyUsage::KeyEncipherment,
        KeyUsage::KeyAgreement,
        KeyUsage::DataEncipherment,
        KeyUsage::CertSign,
        KeyUsage::CrlSign,
        KeyUsage::EncipherOnly,
        KeyUsage::DecipherOnly,
        KeyUsage::Any,
        KeyUsage::ServerAuth,
        KeyUsage::ClientAuth,
        KeyUsage::CodeSigning,
        KeyUsage::EmailProtection,
        KeyUsage::SMime,
        KeyUsage::IpsecEndSystem,
        KeyUsage::IpsecTunnel,
        KeyUsage::IpsecUser,
        KeyUsage::Timestamping,
        KeyUsage::OcspSigning,
        KeyUsage::MicrosoftSgc,
        KeyUsage::NetscapeSgc,
    ];

    /// The usages cert-manager requests when none are given.
    pub const DEFAULT: [KeyUsage; 2] = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];

    /// The name as written in `spec.usages`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyUsage::Signing => "signing",
            KeyUsage::DigitalSignature => "digital signature",
            KeyUsage::ContentCommitment => "content commitment",
            KeyUsage::KeyEncipherment => "key encipherment",
            KeyUsage::KeyAgreement => "key agreement",
            KeyUsage::DataEncipherment => "data encipherment",
            KeyUsage::CertSign => "cert sign",
            KeyUsage::CrlSign => "crl sign",
            KeyUsage::EncipherOnly => "encipher only",
            KeyUsage::DecipherOnly => "decipher only",
            KeyUsage::Any => "any",
            KeyUsage::ServerAuth => "server auth",
            KeyUsage::ClientAuth => "client auth",
            KeyUsage::CodeSigning => "code signing",
            KeyUsage::EmailProtection => "email protection",
            KeyUsage::SMime => "s/mime",
            KeyUsage::IpsecEndSystem => "ipsec end system",
            KeyUsage::IpsecTunnel => "ipsec tunnel",
            KeyUsage::IpsecUser => "ipsec user",
            KeyUsage::Timestamping => "timestamping",
            KeyUsage::OcspSigning => "ocsp signing",
            KeyUsage::MicrosoftSgc => "microsoft sgc",
            KeyUsage::NetscapeSgc => "netscape sgc",
        }
    }

    /// The usage named `name` (as written in `spec.usages`), if any.
    pub fn from_name(name: &str) -> Option<KeyUsage> {
        KeyUsage::ALL.into_iter().find(|u| u.as_str() == name)
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Condition look-ups
// ---------------------------------------------------------------------------------------------

impl CertificateRequestStatus {
    /// The condition of type `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&CertificateRequestCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition of type `type_` is present with status `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas of foreign types
// ---------------------------------------------------------------------------------------------
//
// k8s-openapi is built without its `schemars` feature here, so `Time` and `ByteString` have no
// `JsonSchema`; these stand-ins give their fields the schemas the API server expects.

/// Schema of a [`Time`]: an RFC 3339 string.
pub(crate) struct DateTimeSchema;

impl JsonSchema for DateTimeSchema {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "DateTime".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "date-time"})
    }
}

/// Schema of a [`ByteString`]: a standard-base64 string.
struct ByteSchema;

impl JsonSchema for ByteSchema {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Byte".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "format": "byte"})
    }
}
