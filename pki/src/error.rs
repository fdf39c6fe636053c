//! The PKI core's one error type.
//!
//! Every variant says what was wrong and what to do about it, in words a person reading
//! `kubectl describe certificaterequest` or the CLI's stderr can act on. No variant carries key
//! material: messages name files, keys and fields, never their secret contents. No variant
//! carries a Kubernetes or network type: the callers (`relay-issuer`, `relay-agent`) wrap these
//! in their own error enums.

/// Everything that can go wrong in the PKI core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the signing CA (Secret `relay-tls-signing-secret`) ----
    /// `tls.crt` holds no certificate.
    #[error(
        "the CA certificate (tls.crt) holds no PEM CERTIFICATE block; put the intermediate CA certificate, optionally followed by its chain, in tls.crt"
    )]
    CaCertificateMissing,
    /// A certificate in `tls.crt` or `ca.crt` does not parse.
    #[error(
        "{source_name} certificate #{index} does not parse as X.509 ({detail}); replace it with a valid PEM certificate"
    )]
    CaCertificateInvalid {
        /// `tls.crt` or `ca.crt`.
        source_name: &'static str,
        /// 1-based position in the PEM bundle.
        index: usize,
        /// What the parser said.
        detail: String,
    },
    /// `tls.key` holds no private key.
    #[error(
        "the CA private key (tls.key) holds no PEM private key block; expected PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 (BEGIN RSA PRIVATE KEY) or SEC1 (BEGIN EC PRIVATE KEY)"
    )]
    CaKeyMissing,
    /// `tls.key` is not a usable private key.
    #[error(
        "the CA private key (tls.key) cannot be used: {detail}; provide an ECDSA P-256/P-384, RSA (2048-8192 bit) or Ed25519 key in PKCS#8, PKCS#1 or SEC1 PEM"
    )]
    CaKeyInvalid {
        /// What is wrong with the key (never the key itself).
        detail: String,
    },
    /// The signing certificate is not a CA.
    #[error(
        "the certificate in tls.crt ({subject}) is not a CA: {detail}; use an intermediate CA certificate with BasicConstraints CA:TRUE and keyCertSign"
    )]
    CaNotCa {
        /// Subject of the signing certificate.
        subject: String,
        /// Which property is missing.
        detail: String,
    },
    /// The signing certificate is not yet valid.
    #[error(
        "the CA certificate ({subject}) is not valid until {not_before}; wait, or check the clock of this machine"
    )]
    CaNotYetValid {
        /// Subject of the signing certificate.
        subject: String,
        /// Its notBefore, RFC 3339.
        not_before: String,
    },
    /// The signing certificate has expired.
    #[error(
        "the CA certificate ({subject}) expired at {not_after}; issue a new intermediate CA and update the signing Secret"
    )]
    CaExpired {
        /// Subject of the signing certificate.
        subject: String,
        /// Its notAfter, RFC 3339.
        not_after: String,
    },
    /// `tls.key` does not belong to `tls.crt`.
    #[error(
        "the CA private key (tls.key) does not match the CA certificate (tls.crt, {subject}): {detail}; put the key that belongs to this certificate in tls.key"
    )]
    CaKeyMismatch {
        /// Subject of the signing certificate.
        subject: String,
        /// How they differ (key types, or the public keys differ).
        detail: String,
    },
    /// The chain in `tls.crt`, or its link to `ca.crt`, is broken.
    #[error(
        "the CA chain is broken: {detail}; tls.crt must list the intermediate first, then each issuer in order, and ca.crt must hold the root that signed the top of that chain"
    )]
    CaChainBroken {
        /// Which link fails.
        detail: String,
    },

    // ---- the certificate signing request ----
    /// The request is not a PEM CSR.
    #[error(
        "the certificate signing request is not PEM-encoded: {detail}; expected a -----BEGIN CERTIFICATE REQUEST----- block"
    )]
    CsrNotPem {
        /// What was seen instead.
        detail: String,
    },
    /// The CSR does not parse.
    #[error("the certificate signing request does not parse as PKCS#10: {detail}")]
    CsrInvalid {
        /// What the parser said.
        detail: String,
    },
    /// The CSR's self-signature does not verify.
    #[error(
        "the certificate signing request's signature does not verify ({detail}); the CSR was altered or not signed with the key it carries"
    )]
    CsrSignatureInvalid {
        /// Why verification failed.
        detail: String,
    },
    /// The CSR's public key type or size is refused.
    #[error(
        "the certificate signing request carries a {seen} key, which is not accepted; use ECDSA P-256 or P-384, RSA 2048-8192 bits, or Ed25519"
    )]
    CsrKeyUnsupported {
        /// The key that was seen, e.g. `RSA 1024-bit` or `ECDSA secp256k1`.
        seen: String,
    },
    /// A subject alternative name of a kind we do not issue.
    #[error(
        "the certificate signing request asks for a {kind} subject alternative name; only DNS, IP, URI and email names are issued"
    )]
    CsrSanUnsupported {
        /// The GeneralName kind.
        kind: String,
    },
    /// An extension in the CSR that cannot be read.
    #[error("the certificate signing request's {extension} extension is malformed: {detail}")]
    CsrExtensionInvalid {
        /// Which extension.
        extension: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A usage name cert-manager does not define.
    #[error("unknown usage {name:?}; cert-manager usages are: {known}")]
    UsageUnknown {
        /// The name given.
        name: String,
        /// The accepted names.
        known: String,
    },
    /// The CSR's key usages disagree with `spec.usages`.
    #[error(
        "the certificate signing request's {what} ({in_csr}) does not match the requested usages ({requested}); request the same usages in the CSR and in spec.usages"
    )]
    UsageMismatch {
        /// `key usages` or `extended key usages`.
        what: &'static str,
        /// What the CSR carries.
        in_csr: String,
        /// What the usages ask for.
        requested: String,
    },
    /// The CSR's BasicConstraints disagree with `spec.isCA`.
    #[error(
        "the certificate signing request's BasicConstraints say CA:{in_csr} but isCA is {requested}; make them agree"
    )]
    IsCaMismatch {
        /// cA in the CSR.
        in_csr: bool,
        /// spec.isCA.
        requested: bool,
    },
    /// isCA requested but the policy forbids it.
    #[error(
        "a CA certificate (isCA: true) was requested, but this issuer's policy does not allow CA certificates; set spec.policy.allowCA: true on the issuer to permit it"
    )]
    CaNotAllowed,
    /// The requested duration is zero or negative.
    #[error("the requested duration {requested} is not positive; request a duration such as 8760h")]
    DurationNotPositive {
        /// Go-formatted duration.
        requested: String,
    },
    /// The requested duration exceeds the policy maximum.
    #[error(
        "the requested duration {requested} exceeds this issuer's maximum of {max}; request a shorter spec.duration or raise spec.policy.maxDuration"
    )]
    DurationTooLong {
        /// Go-formatted requested duration.
        requested: String,
        /// Go-formatted maximum.
        max: String,
    },
    /// The certificate would outlive its CA and clamping is off.
    #[error(
        "the certificate would expire at {requested_not_after}, after its CA ({ca_not_after}), and this issuer's policy has clampToCA: false; request a shorter duration, renew the CA, or enable clampToCA"
    )]
    WouldOutliveCa {
        /// The notAfter the request asked for.
        requested_not_after: String,
        /// The CA's notAfter.
        ca_not_after: String,
    },
    /// The cryptographic signing operation itself failed.
    #[error(
        "signing failed inside the crypto library ({detail}); this is a bug or a broken key, please report it"
    )]
    SigningFailed {
        /// What the library said.
        detail: String,
    },

    // ---- arithmetic and syntax ----
    /// A duration string that is not Go syntax.
    #[error("invalid duration {input:?}: {detail}")]
    DurationSyntax {
        /// What was given.
        input: String,
        /// What is wrong.
        detail: String,
    },
    /// A grace-period ratio outside (0, 1).
    #[error(
        "the rotation grace period ratio must be greater than 0 and less than 1 (e.g. 0.1 = rotate 10% of the lifetime before expiry), got {ratio}"
    )]
    RatioOutOfRange {
        /// What was given.
        ratio: f64,
    },
    /// renewBeforePercentage outside (0, 100).
    #[error(
        "renewBeforePercentage must be an integer greater than 0 and less than 100, got {percentage}"
    )]
    PercentageOutOfRange {
        /// What was given.
        percentage: i64,
    },
    /// A certificate whose validity period is empty or inverted.
    #[error(
        "the certificate's validity period is empty (notBefore {not_before} is not before notAfter {not_after})"
    )]
    EmptyValidity {
        /// RFC 3339.
        not_before: String,
        /// RFC 3339.
        not_after: String,
    },
    /// A certificate (not a CA) that does not parse, e.g. for `inspect`.
    #[error("{what} does not parse: {detail}")]
    CertificateInvalid {
        /// What was being read.
        what: String,
        /// What is wrong.
        detail: String,
    },

    // ---- relay identities and TLS key pairs (agent and relay server) ----
    /// A certificate or CSR does not carry a valid relay cluster identity.
    #[error(
        "not a valid relay cluster identity: {detail}; an agent certificate needs CN=<cluster> and the single URI SAN spiffe://<trust-domain>/relay/cluster/<cluster>"
    )]
    IdentityInvalid {
        /// What is wrong with the names.
        detail: String,
    },
    /// A `kubernetes.io/tls` Secret's certificate and key cannot be used.
    #[error(
        "{detail}; write a valid PEM certificate chain (leaf first) to tls.crt and its private key to tls.key"
    )]
    KeyPairInvalid {
        /// Which check failed.
        problem: crate::keypair::KeyPairProblem,
        /// What is wrong (never key material).
        detail: String,
    },

    /// An argument that the PKI core cannot use (a name, a size), said in the message.
    #[error("{0}")]
    InvalidArgument(String),
    /// Generating keys or certificates failed.
    #[error("generating {what} failed: {detail}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// What the library said.
        detail: String,
    },
}

impl Error {
    /// Whether the error is the request's fault (a CSR, usages, a duration or an identity that
    /// will never be signed as asked), as opposed to the issuer's CA or the machine: callers
    /// fail such a request for good, and retry the others.
    pub fn is_request_fault(&self) -> bool {
        match self {
            Error::CsrNotPem { .. }
            | Error::CsrInvalid { .. }
            | Error::CsrSignatureInvalid { .. }
            | Error::CsrKeyUnsupported { .. }
            | Error::CsrSanUnsupported { .. }
            | Error::CsrExtensionInvalid { .. }
            | Error::UsageUnknown { .. }
            | Error::UsageMismatch { .. }
            | Error::IsCaMismatch { .. }
            | Error::CaNotAllowed
            | Error::DurationNotPositive { .. }
            | Error::DurationTooLong { .. }
            | Error::WouldOutliveCa { .. }
            | Error::DurationSyntax { .. }
            | Error::IdentityInvalid { .. } => true,
            Error::CaCertificateMissing
            | Error::CaCertificateInvalid { .. }
            | Error::CaKeyMissing
            | Error::CaKeyInvalid { .. }
            | Error::CaNotCa { .. }
            | Error::CaNotYetValid { .. }
            | Error::CaExpired { .. }
            | Error::CaKeyMismatch { .. }
            | Error::CaChainBroken { .. }
            | Error::SigningFailed { .. }
            | Error::RatioOutOfRange { .. }
            | Error::PercentageOutOfRange { .. }
            | Error::EmptyValidity { .. }
            | Error::CertificateInvalid { .. }
            | Error::KeyPairInvalid { .. }
            | Error::InvalidArgument(_)
            | Error::Generate { .. } => false,
        }
    }

    /// A short, low-cardinality label for metrics and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::CaCertificateMissing | Error::CaCertificateInvalid { .. } => {
                "ca_certificate_invalid"
            }
            Error::CaKeyMissing | Error::CaKeyInvalid { .. } => "ca_key_invalid",
            Error::CaNotCa { .. } => "ca_not_ca",
            Error::CaNotYetValid { .. } => "ca_not_yet_valid",
            Error::CaExpired { .. } => "ca_expired",
            Error::CaKeyMismatch { .. } => "ca_key_mismatch",
            Error::CaChainBroken { .. } => "ca_chain_broken",
            Error::CsrNotPem { .. } | Error::CsrInvalid { .. } => "csr_invalid",
            Error::CsrSignatureInvalid { .. } => "csr_signature_invalid",
            Error::CsrKeyUnsupported { .. } => "csr_key_unsupported",
            Error::CsrSanUnsupported { .. } => "csr_san_unsupported",
            Error::CsrExtensionInvalid { .. } => "csr_extension_invalid",
            Error::UsageUnknown { .. } | Error::UsageMismatch { .. } => "usage_mismatch",
            Error::IsCaMismatch { .. } => "is_ca_mismatch",
            Error::CaNotAllowed => "policy_ca_not_allowed",
            Error::DurationNotPositive { .. } | Error::DurationSyntax { .. } => "duration_invalid",
            Error::DurationTooLong { .. } => "policy_duration_too_long",
            Error::WouldOutliveCa { .. } => "policy_outlives_ca",
            Error::SigningFailed { .. } => "signing_failed",
            Error::RatioOutOfRange { .. } | Error::PercentageOutOfRange { .. } => {
                "renewal_setting_invalid"
            }
            Error::EmptyValidity { .. } | Error::CertificateInvalid { .. } => "certificate_invalid",
            Error::IdentityInvalid { .. } => "identity_invalid",
            Error::KeyPairInvalid { problem, .. } => problem.label(),
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Generate { .. } => "generate_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_are_the_requests_fault_and_ca_errors_are_not() {
        assert!(Error::CaNotAllowed.is_request_fault());
        assert!(
            Error::CsrKeyUnsupported {
                seen: "RSA 1024-bit".into()
            }
            .is_request_fault()
        );
        assert!(!Error::CaKeyMissing.is_request_fault());
        assert!(
            !Error::CaExpired {
                subject: "x".into(),
                not_after: "y".into()
            }
            .is_request_fault()
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let message = Error::CaKeyMismatch {
            subject: "CN=relay intermediate".into(),
            detail: "the public keys differ".into(),
        }
        .to_string();
        assert!(message.contains("does not match"), "{message}");
        assert!(message.contains("put the key that belongs"), "{message}");
    }
}
