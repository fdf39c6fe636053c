//! A TLS certificate and its key as stored in a `kubernetes.io/tls` Secret (`tls.crt`,
//! `tls.key`), checked before anyone presents it.
//!
//! [`load_key_pair`] is what the agent's watcher and the relay server's reloader run on every
//! new version of their Secret: the chain parses, the key parses and belongs to the leaf, the
//! leaf is not a CA and is within its validity. A version that fails keeps the previous one in
//! service; the error says which check failed ([`KeyPairProblem`]) for events and metrics.
//! Turning the checked pair into a rustls key is the callers' business.

use super::ca::is_self_signed;
use super::identity::common_name;
use super::keys::SigningKey;
use super::pem::parse_pem;
use super::sign::colon_hex;
use super::{format_time, to_offset_date_time};
use crate::Error;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Which check a key pair failed (a low-cardinality label for metrics and event reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPairProblem {
    /// `tls.crt` is missing or holds no certificate.
    CertificateMissing,
    /// A certificate does not parse.
    CertificateInvalid,
    /// `tls.key` is missing or holds no private key.
    KeyMissing,
    /// The private key does not parse or is of an unsupported type.
    KeyInvalid,
    /// The key does not belong to the leaf certificate.
    KeyMismatch,
    /// The leaf is a CA certificate.
    IsCa,
    /// The leaf's notAfter has passed.
    Expired,
    /// The leaf's notBefore is in the future.
    NotYetValid,
}

impl KeyPairProblem {
    /// The label used in metrics and as the event reason suffix.
    pub fn label(self) -> &'static str {
        match self {
            KeyPairProblem::CertificateMissing => "certificate_missing",
            KeyPairProblem::CertificateInvalid => "certificate_invalid",
            KeyPairProblem::KeyMissing => "key_missing",
            KeyPairProblem::KeyInvalid => "key_invalid",
            KeyPairProblem::KeyMismatch => "key_mismatch",
            KeyPairProblem::IsCa => "is_ca",
            KeyPairProblem::Expired => "expired",
            KeyPairProblem::NotYetValid => "not_yet_valid",
        }
    }
}

/// A checked certificate chain and key.
#[derive(Clone)]
pub struct KeyPair {
    /// The chain as DER, leaf first (self-signed roots are dropped: peers have them).
    pub chain_der: Vec<Vec<u8>>,
    /// The private key block as found (PEM label and DER), for building a TLS signing key.
    pub key_pem_label: String,
    /// The private key, DER, in the encoding `key_pem_label` names.
    pub key_der: Vec<u8>,
    /// The leaf's subject, RFC 4514.
    pub subject: String,
    /// The leaf's common name, when it has exactly one that reads as text.
    pub common_name: Option<String>,
    /// The leaf's serial, colon-separated hex.
    pub serial: String,
    /// The leaf's notBefore.
    pub not_before: OffsetDateTime,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("KeyPair")
            .field("subject", &self.subject)
            .field("serial", &self.serial)
            .field("not_after", &format_time(self.not_after))
            .finish_non_exhaustive()
    }
}

fn problem(problem: KeyPairProblem, detail: impl Into<String>) -> Error {
    Error::KeyPairInvalid {
        problem,
        detail: detail.into(),
    }
}

/// Checks `tls.crt` (leaf first, then intermediates) and `tls.key` as of `now`.
pub fn load_key_pair(
    tls_crt: Option<&[u8]>,
    tls_key: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<KeyPair, Error> {
    use KeyPairProblem::*;
    let tls_crt =
        tls_crt.ok_or_else(|| problem(CertificateMissing, "the key tls.crt is missing"))?;
    let tls_key = tls_key.ok_or_else(|| problem(KeyMissing, "the key tls.key is missing"))?;
    let blocks = parse_pem(tls_crt).map_err(|e| {
        problem(
            CertificateInvalid,
            format!("tls.crt is not valid PEM ({e})"),
        )
    })?;
    let certificates: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect();
    if certificates.is_empty() {
        return Err(problem(
            CertificateMissing,
            "tls.crt holds no PEM CERTIFICATE block",
        ));
    }
    let mut chain_der = Vec::with_capacity(certificates.len());
    let mut leaf_facts = None;
    for (index, der) in certificates.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| {
            problem(
                CertificateInvalid,
                format!(
                    "tls.crt certificate #{} does not parse as X.509 ({e})",
                    index + 1
                ),
            )
        })?;
        if index == 0 {
            leaf_facts = Some(check_leaf(&cert, tls_key, now)?);
            chain_der.push(der.clone());
        } else if !is_self_signed(&cert) {
            chain_der.push(der.clone());
        }
    }
    let mut pair =
        leaf_facts.ok_or_else(|| problem(CertificateMissing, "tls.crt holds no certificate"))?;
    pair.chain_der = chain_der;
    Ok(pair)
}

/// Checks the leaf against the key and the clock; the result has everything but the chain.
fn check_leaf(
    leaf: &X509Certificate<'_>,
    tls_key: &[u8],
    now: OffsetDateTime,
) -> Result<KeyPair, Error> {
    use KeyPairProblem::*;
    let subject = leaf.subject().to_string();
    let key = SigningKey::from_pem(tls_key).map_err(|e| match e {
        Error::CaKeyMissing => problem(KeyMissing, "tls.key holds no PEM private key block"),
        Error::CaKeyInvalid { detail } => problem(KeyInvalid, format!("tls.key: {detail}")),
        other => problem(KeyInvalid, format!("tls.key: {other}")),
    })?;
    key.matches(leaf.public_key()).map_err(|detail| {
        problem(
            KeyMismatch,
            format!("tls.key does not belong to the certificate {subject} ({detail})"),
        )
    })?;
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        return Err(problem(
            IsCa,
            format!(
                "the certificate {subject} is a CA (BasicConstraints CA:TRUE); a client or server certificate must not be a CA"
            ),
        ));
    }
    let not_before = to_offset_date_time(leaf.validity().not_before);
    let not_after = to_offset_date_time(leaf.validity().not_after);
    if now > not_after {
        return Err(problem(
            Expired,
            format!(
                "the certificate {subject} expired at {}",
                format_time(not_after)
            ),
        ));
    }
    if now < not_before {
        return Err(problem(
            NotYetValid,
            format!(
                "the certificate {subject} is not valid until {}",
                format_time(not_before)
            ),
        ));
    }
    // The key block again, as found, for the TLS library (which wants the original encoding).
    let blocks = parse_pem(tls_key)
        .map_err(|e| problem(KeyInvalid, format!("tls.key is not valid PEM ({e})")))?;
    let block = blocks
        .into_iter()
        .find(|b| b.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| problem(KeyMissing, "tls.key holds no PEM private key block"))?;
    Ok(KeyPair {
        chain_der: Vec::new(),
        key_pem_label: block.label,
        key_der: block.der,
        common_name: common_name(leaf.subject()).ok().flatten(),
        subject,
        serial: colon_hex(leaf.raw_serial()),
        not_before,
        not_after,
    })
}
