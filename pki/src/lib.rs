//! relay-pki, the PKI core: signing rules, CA checks and renewal arithmetic as plain functions.
//!
//! Nothing in here knows about Kubernetes, gRPC or the network, and its [`Error`] holds no such
//! type. The issuer's controller, the relay server, the offline CLI and the agent feed it bytes
//! and a clock and get back certificates or precise errors.
//!
//! - [`ca`]: loading and checking the signing CA (`tls.crt`, `tls.key`, `ca.crt`).
//! - [`csr`]: reading and verifying a PKCS#10 request.
//! - [`sign`]: the signing rules and the certificate builder.
//! - [`usages`]: cert-manager usage names ↔ X.509 key usages.
//! - [`renewal`]: cert-manager's renewal time and the relay grace ratio.
//! - [`duration`]: Go duration syntax.
//! - `generate` (feature `generate`): creating a root, an intermediate and a server certificate
//!   (`ca create`).
//! - [`inspect`]: describing certificates for people and machines.
//! - [`identity`]: the relay cluster identity (CN + SPIFFE URI) of a certificate or CSR.
//! - [`keypair`]: checking a `kubernetes.io/tls` Secret's certificate and key before use.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anchor;
pub mod ca;
pub mod csr;
pub(crate) mod der;
pub mod duration;
#[cfg(any(test, feature = "generate"))]
pub mod generate;
pub mod identity;
pub mod inspect;
pub mod keypair;
pub mod keys;
pub mod pem;
pub mod renewal;
pub mod sign;
pub mod usages;

mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_csr;
#[cfg(test)]
mod tests_csr_resigned;
#[cfg(test)]
mod tests_identity;

pub use ca::{RootSource, SigningCa};
pub use duration::{format_duration, parse_duration};
pub use error::Error;
pub use identity::{
    ClusterIdentity, PeerCertificate, certificate_identity, csr_identity, peer_certificate,
    spiffe_id,
};
pub use keypair::{KeyPair, KeyPairProblem, load_key_pair};
pub use keys::KeyType;
pub use sign::{
    CertificateTerms, Clamped, DEFAULT_DURATION, IssuedCertificate, SignRequest, SigningPolicy,
    sign, sign_csr,
};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a timestamp as RFC 3339 in UTC (`2026-11-28T03:04:05Z`), as Kubernetes does.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Drops the fraction of a second (X.509 times and cert-manager's renewal times are whole
/// seconds); for any time this is the floor to the second.
pub fn truncate_to_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// PEM-encodes one DER certificate with LF line endings.
pub fn pem_certificate(der: &[u8]) -> String {
    pem::encode_pem("CERTIFICATE", der)
}

pub(crate) fn to_offset_date_time(t: x509_parser::time::ASN1Time) -> OffsetDateTime {
    t.to_datetime()
}
