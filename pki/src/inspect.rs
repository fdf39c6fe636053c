//! Describing certificates for people and machines: names, validity, key, and renewal timing.
//!
//! Used by `relay-issuer inspect`. The report is plain data (serializable to JSON); the CLI
//! decides how to print it.

use super::ca::{certificates_from_pem, is_self_signed};
use super::keys::{SigningKey, classify_public_key};
use super::renewal::{cert_manager_renewal_time, grace_rotation_time};
use super::{format_duration, format_time, to_offset_date_time};
use crate::Error;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Which rule decides when a certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewalRule {
    /// cert-manager's default: a third of the lifetime before expiry.
    CertManagerDefault,
    /// cert-manager `renewBefore`.
    RenewBefore(Duration),
    /// cert-manager `renewBeforePercentage`.
    RenewBeforePercentage(i32),
    /// The relay grace ratio.
    GraceRatio(f64),
}

impl RenewalRule {
    fn describe(self) -> String {
        match self {
            RenewalRule::CertManagerDefault => {
                "cert-manager default (a third of the lifetime before expiry)".into()
            }
            RenewalRule::RenewBefore(d) => format!("renewBefore {}", format_duration(d)),
            RenewalRule::RenewBeforePercentage(p) => format!("renewBeforePercentage {p}"),
            RenewalRule::GraceRatio(r) => format!("grace ratio {r}"),
        }
    }
}

/// The state of a certificate's validity at the time of inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidityState {
    /// Within validity and before its renewal time.
    Valid,
    /// Within validity but past its renewal time.
    Expiring,
    /// Past notAfter.
    Expired,
    /// Before notBefore.
    NotYetValid,
}

/// One certificate, described.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial, colon-separated hex.
    pub serial: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Lifetime, Go duration syntax.
    pub lifetime: String,
    /// Key algorithm and size.
    pub key_type: String,
    /// Subject alternative names, `DNS:x`, `IP:x`, `URI:x`, `email:x`.
    pub subject_alt_names: Vec<String>,
    /// Whether BasicConstraints say CA:TRUE.
    pub is_ca: bool,
    /// Whether the certificate is self-signed.
    pub self_signed: bool,
    /// Validity state now.
    pub state: ValidityState,
    /// When renewal is due under `renewal_rule`, RFC 3339.
    pub renewal_time: String,
    /// The rule used for `renewal_time`.
    pub renewal_rule: String,
}

/// A whole inspection: certificates in file order, the key check and plain-word findings.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// Each certificate found, in order.
    pub certificates: Vec<CertificateReport>,
    /// `Some(true)` when a private key was present and matches the first certificate.
    pub key_matches_certificate: Option<bool>,
    /// Problems in plain words: expired, expiring, mismatched key, …
    pub findings: Vec<String>,
}

/// Describes the certificates in `cert_pem` (and checks `key_pem` against the first one) as of
/// `now`, computing renewal under `rule`.
pub fn inspect(
    cert_pem: &[u8],
    key_pem: Option<&[u8]>,
    rule: RenewalRule,
    now: OffsetDateTime,
) -> Result<InspectReport, Error> {
    let ders =
        certificates_from_pem(cert_pem, "tls.crt").map_err(|e| Error::CertificateInvalid {
            what: "the certificate PEM".into(),
            detail: e.to_string(),
        })?;
    if ders.is_empty() {
        return Err(Error::CertificateInvalid {
            what: "the input".into(),
            detail: "it holds no PEM CERTIFICATE block".into(),
        });
    }
    let mut certificates = Vec::new();
    let mut findings = Vec::new();
    let mut key_matches_certificate = None;
    for (index, der) in ders.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::CertificateInvalid {
            what: format!("certificate #{}", index + 1),
            detail: e.to_string(),
        })?;
        let report = describe(&cert, rule, now)?;
        let label = format!("certificate #{} ({})", index + 1, report.subject);
        match report.state {
            ValidityState::Expired => {
                findings.push(format!("{label} EXPIRED at {}", report.not_after))
            }
            ValidityState::NotYetValid => findings.push(format!(
                "{label} is NOT YET VALID (from {})",
                report.not_before
            )),
            ValidityState::Expiring => findings.push(format!(
                "{label} is EXPIRING: renewal was due at {} and it expires at {}",
                report.renewal_time, report.not_after
            )),
            ValidityState::Valid => {}
        }
        if index == 0
            && let Some(key_pem) = key_pem
        {
            let outcome = SigningKey::from_pem(key_pem)
                .map_err(|e| e.to_string())
                .and_then(|key| key.matches(cert.public_key()));
            match outcome {
                Ok(()) => key_matches_certificate = Some(true),
                Err(detail) => {
                    key_matches_certificate = Some(false);
                    findings.push(format!("the private key does NOT MATCH {label}: {detail}"));
                }
            }
        }
        if index > 0 {
            let (_, previous) = X509Certificate::from_der(&ders[index - 1]).map_err(|e| {
                Error::CertificateInvalid {
                    what: format!("certificate #{index}"),
                    detail: e.to_string(),
                }
            })?;
            if previous.issuer().as_raw() != cert.subject().as_raw()
                || previous.verify_signature(Some(cert.public_key())).is_err()
            {
                findings.push(format!("certificate #{index} was not issued by {label}: the chain is out of order or broken"));
            }
        }
        certificates.push(report);
    }
    Ok(InspectReport {
        certificates,
        key_matches_certificate,
        findings,
    })
}

fn describe(
    cert: &X509Certificate<'_>,
    rule: RenewalRule,
    now: OffsetDateTime,
) -> Result<CertificateReport, Error> {
    let not_before = to_offset_date_time(cert.validity().not_before);
    let not_after = to_offset_date_time(cert.validity().not_after);
    let renewal_time = match rule {
        RenewalRule::CertManagerDefault => {
            cert_manager_renewal_time(not_before, not_after, None, None)
        }
        RenewalRule::RenewBefore(d) => {
            cert_manager_renewal_time(not_before, not_after, Some(d), None)
        }
        RenewalRule::RenewBeforePercentage(p) => {
            cert_manager_renewal_time(not_before, not_after, None, Some(p))
        }
        RenewalRule::GraceRatio(r) => grace_rotation_time(not_before, not_after, r)?,
    };
    let state = if now < not_before {
        ValidityState::NotYetValid
    } else if now > not_after {
        ValidityState::Expired
    } else if now >= renewal_time {
        ValidityState::Expiring
    } else {
        ValidityState::Valid
    };
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(describe_name).collect(),
        _ => Vec::new(),
    };
    Ok(CertificateReport {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: super::sign::colon_hex(cert.raw_serial()),
        not_before: format_time(not_before),
        not_after: format_time(not_after),
        lifetime: format_duration(not_after - not_before),
        key_type: match classify_public_key(cert.public_key()) {
            Ok(t) => t.to_string(),
            Err(seen) => format!("{seen} (not accepted by relay-tls)"),
        },
        subject_alt_names: sans,
        is_ca: cert.is_ca(),
        self_signed: is_self_signed(cert),
        state,
        renewal_time: format_time(renewal_time),
        renewal_rule: rule.describe(),
    })
}

fn describe_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::IPAddress(bytes) => match super::csr::ip_address(bytes) {
            Some(ip) => format!("IP:{ip}"),
            None => "IP:(malformed)".into(),
        },
        other => format!("{other}"),
    }
}
