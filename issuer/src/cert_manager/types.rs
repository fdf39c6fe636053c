//! The Rust types of cert-manager's `Certificate` and `CertificateRequest` (`cert-manager.io/v1`).
//!
//! Field names, JSON shapes and enum spellings follow cert-manager's API so that objects built
//! here are accepted by cert-manager's own CRD schemas, and objects written by cert-manager
//! deserialize here. Optional fields are `Option`s (absent when `None`); lists and maps are
//! plain collections that are left out when empty, as Go's `omitempty` does. Times are
//! [`Time`] (RFC 3339, whole seconds) and binary fields are [`ByteString`] (standard base64 on
//! the wire, the CRDs' `format: byte`).
//!
//! Not modelled: `spec.renewal` (renewal windows, alpha) and `status.acme` of a Certificate;
//! such fields are dropped when an object passes through these types.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Certificate
// ---------------------------------------------------------------------------------------------

/// The desired state of a Certificate: which X.509 certificate to keep, signed by which issuer,
/// in which Secret.
// clippy reads the repeated `type_ = ...` of the `printcolumn(...)` lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "cert",
    shortname = "certs",
    category = "cert-manager",
    doc = "A Certificate asks for an up-to-date X.509 certificate, signed by the referenced issuer, kept in the Secret named by `spec.secretName`.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Ready")].status"#
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(
        name = "Issuer",
        type_ = "string",
        json_path = ".spec.issuerRef.name",
        priority = 1
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Ready")].message"#,
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.issuerRef.group",
    selectable = ".spec.issuerRef.kind",
    selectable = ".spec.issuerRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Name of the Secret (in the Certificate's namespace) that receives the key and the
    /// signed certificate.
    pub secret_name: String,
    /// The issuer that signs the certificate.
    pub issuer_ref: IssuerReference,
    /// Requested subject common name. Exclusive with `literalSubject`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Requested subject as an RFC 4514 string (attribute order preserved). Exclusive with
    /// `subject` and `commonName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal_subject: Option<String>,
    /// Requested subject attributes other than the common name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Subject>,
    /// Requested DNS subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub dns_names: Vec<String>,
    /// Requested IP address subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ip_addresses: Vec<String>,
    /// Requested URI subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub uris: Vec<String>,
    /// Requested email subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub email_addresses: Vec<String>,
    /// Requested `otherName` subject alternative names (UTF-8 string values only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub other_names: Vec<OtherName>,
    /// Requested lifetime, a Go duration (`8760h`). cert-manager's default is 90 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How long before expiry to renew, a Go duration. Exclusive with `renewBeforePercentage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// When to renew, as a percentage (exclusive range 0..100) of the lifetime left. Exclusive
    /// with `renewBefore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before_percentage: Option<i32>,
    /// Requested BasicConstraints `isCA`; true also requests the `cert sign` usage.
    #[serde(rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    /// Requested key usages and extended key usages; none means `digital signature` and
    /// `key encipherment`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub usages: Vec<KeyUsage>,
    /// How the private key is generated, encoded and rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<CertificatePrivateKey>,
    /// Requested signature algorithm (must suit the key algorithm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<SignatureAlgorithm>,
    /// Whether the usages are also encoded as extensions in the CSR (cert-manager's default:
    /// true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encode_usages_in_request: Option<bool>,
    /// Annotations and labels copied onto the target Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<CertificateSecretTemplate>,
    /// Extra keystore files (JKS, PKCS#12) written to the target Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keystores: Option<CertificateKeystores>,
    /// How many CertificateRequests of this Certificate are kept (cert-manager's default: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Extra encodings of the key and chain written to the target Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub additional_output_formats: Vec<CertificateAdditionalOutputFormat>,
    /// X.509 NameConstraints for a CA certificate (alpha in cert-manager, behind a feature
    /// gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_constraints: Option<NameConstraints>,
}

/// The observed state of a Certificate, written by cert-manager's controllers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// Conditions, one per `type` (`Ready`, `Issuing`); a list-map keyed by `type`, so
    /// server-side apply merges entries written by different managers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<CertificateCondition>,
    /// When the latest issuance failed; unset after a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub last_failure_time: Option<Time>,
    /// `notBefore` of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub not_before: Option<Time>,
    /// `notAfter` of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub not_after: Option<Time>,
    /// When the next renewal is due; unset when none is scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<DateTimeSchema>")]
    pub renewal_time: Option<Time>,
    /// The revision of the issued certificate (the `cert-manager.io/certificate-revision` of
    /// the CertificateRequest it came from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The Secret holding the private key for the issuance in progress (set while `Issuing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
    /// Consecutive failed issuances; the back-off is 1h × 2^(n-1). Unset after a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
}

/// One condition of a Certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCondition {
    /// The condition type (`Ready`, `Issuing`).
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
    /// The `metadata.generation` this condition was computed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// CertificateRequest
// ---------------------------------------------------------------------------------------------

/// A one-shot request to an issuer to sign a CSR. The spec is immutable once created.
// clippy reads the repeated `type_ = ...` of the `printcolumn(...)` lists as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    namespaced,
    status = "CertificateRequestStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "cr",
    shortname = "crs",
    category = "cert-manager",
    doc = "A CertificateRequest asks one issuer, once, to sign a certificate signing request; its `Ready` condition and `status.failureTime` tell how it ended.",
    printcolumn(
        name = "Approved",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Approved")].status"#
    ),
    printcolumn(
        name = "Denied",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Denied")].status"#
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Ready")].status"#
    ),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.username"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type == "Ready")].message"#,
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.issuerRef.group",
    selectable = ".spec.issuerRef.kind",
    selectable = ".spec.issuerRef.name"
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

/// Subject attributes of a requested certificate (the common name is separate).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct X509Subject {
    /// Organizations (O).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub organizations: Vec<String>,
    /// Countries (C).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub countries: Vec<String>,
    /// Organizational units (OU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub organizational_units: Vec<String>,
    /// Localities (L).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub localities: Vec<String>,
    /// States or provinces (ST).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub provinces: Vec<String>,
    /// Street addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub street_addresses: Vec<String>,
    /// Postal codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub postal_codes: Vec<String>,
    /// Subject serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// An `otherName` subject alternative name with a UTF-8 string value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtherName {
    /// The type OID, dotted (`1.3.6.1.4.1.311.20.2.3` for a UPN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// The UTF-8 string value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utf8_value: Option<String>,
}

/// Private key options of a Certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    /// Whether a re-issuance reuses (`Never`) or regenerates (`Always`, cert-manager's default
    /// since 1.18) the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<PrivateKeyRotationPolicy>,
    /// PKCS encoding of the key in the Secret (cert-manager's default: PKCS1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<PrivateKeyEncoding>,
    /// Key algorithm (cert-manager's default: RSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<PrivateKeyAlgorithm>,
    /// Key size in bits: 2048/4096/8192 for RSA (default 2048), 256/384/521 for ECDSA
    /// (default 256); ignored for Ed25519.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
}

/// Private key algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PrivateKeyAlgorithm {
    /// RSA.
    #[serde(rename = "RSA")]
    Rsa,
    /// ECDSA over P-256, P-384 or P-521.
    #[serde(rename = "ECDSA")]
    Ecdsa,
    /// Ed25519.
    Ed25519,
}

/// Private key encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PrivateKeyEncoding {
    /// PKCS#1 (`RSA PRIVATE KEY` / `EC PRIVATE KEY`).
    #[serde(rename = "PKCS1")]
    Pkcs1,
    /// PKCS#8 (`PRIVATE KEY`).
    #[serde(rename = "PKCS8")]
    Pkcs8,
}

/// Private key rotation policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PrivateKeyRotationPolicy {
    /// Keep the existing key if it matches the spec.
    Never,
    /// Generate a new key on every issuance.
    Always,
}

/// Signature algorithm of a requested certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SignatureAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "SHA256WithRSA")]
    Sha256WithRsa,
    /// RSA PKCS#1 v1.5 with SHA-384.
    #[serde(rename = "SHA384WithRSA")]
    Sha384WithRsa,
    /// RSA PKCS#1 v1.5 with SHA-512.
    #[serde(rename = "SHA512WithRSA")]
    Sha512WithRsa,
    /// ECDSA with SHA-256.
    #[serde(rename = "ECDSAWithSHA256")]
    EcdsaWithSha256,
    /// ECDSA with SHA-384.
    #[serde(rename = "ECDSAWithSHA384")]
    EcdsaWithSha384,
    /// ECDSA with SHA-512.
    #[serde(rename = "ECDSAWithSHA512")]
    EcdsaWithSha512,
    /// Ed25519.
    PureEd25519,
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

/// Annotations and labels copied onto a Certificate's Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateSecretTemplate {
    /// Annotations for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Labels for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// An extra output format for a Certificate's Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateAdditionalOutputFormat {
    /// The format.
    #[serde(rename = "type")]
    pub type_: AdditionalOutputFormatType,
}

/// The extra output formats cert-manager can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AdditionalOutputFormatType {
    /// `key.der`: the private key, DER.
    #[serde(rename = "DER")]
    Der,
    /// `tls-combined.pem`: key then chain, PEM.
    #[serde(rename = "CombinedPEM")]
    CombinedPem,
}

/// Keystore files written next to `tls.crt`/`tls.key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CertificateKeystores {
    /// A Java KeyStore (`keystore.jks`, `truststore.jks`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jks: Option<JksKeystore>,
    /// A PKCS#12 file (`keystore.p12`, `truststore.p12`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Keystore>,
}

/// JKS keystore options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JksKeystore {
    /// Whether to write the keystore.
    pub create: bool,
    /// Alias of the key entry (cert-manager's default: `certificate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// A literal password; exclusive with `passwordSecretRef`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A Secret key holding the password; exclusive with `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
}

/// PKCS#12 keystore options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pkcs12Keystore {
    /// Whether to write the keystore.
    pub create: bool,
    /// A literal password; exclusive with `passwordSecretRef`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A Secret key holding the password; exclusive with `password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeySelector>,
    /// Encryption profile (cert-manager's default: `LegacyRC2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Pkcs12Profile>,
}

/// PKCS#12 encryption profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Pkcs12Profile {
    /// RC2 (deprecated; unsupported by default in OpenSSL 3).
    #[serde(rename = "LegacyRC2")]
    LegacyRc2,
    /// DES (less secure, most compatible).
    #[serde(rename = "LegacyDES")]
    LegacyDes,
    /// Modern algorithms as of 2023.
    Modern2023,
    /// Modern algorithms as of 2026 (PBES2/AES-256, PBMAC1).
    Modern2026,
}

/// A key of a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    pub name: String,
    /// Key in the Secret's `data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// X.509 NameConstraints of a CA certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NameConstraints {
    /// Whether the extension is marked critical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    /// Names the CA may sign for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permitted: Option<NameConstraintItem>,
    /// Names the CA may not sign for, whatever `permitted` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded: Option<NameConstraintItem>,
}

/// One side (permitted or excluded) of NameConstraints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NameConstraintItem {
    /// DNS domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub dns_domains: Vec<String>,
    /// IP ranges in CIDR notation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ip_ranges: Vec<String>,
    /// Email addresses or domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub email_addresses: Vec<String>,
    /// URI domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub uri_domains: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Condition look-ups
// ---------------------------------------------------------------------------------------------

impl CertificateStatus {
    /// The condition of type `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&CertificateCondition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

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
