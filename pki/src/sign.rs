//! The signing rules: turning a CSR plus cert-manager's request fields into a certificate.
//!
//! [`sign`] applies every rule (signature, key type, usages, isCA, policy, validity clamping) and
//! builds the leaf. The controller, the relay server and the `relay-issuer sign` CLI all call
//! this one function, so they refuse and issue exactly alike.

use super::ca::SigningCa;
use super::csr::{CertificateRequestInfo, SubjectAltName, csr_der_from_pem, read_csr};
use super::der::{DerWriter, oid, tag};
use super::keys::key_identifier;
use super::usages::{Usages, describe_extended, usages_from_names};
use super::{RootSource, format_time, pem_certificate, truncate_to_second};
use crate::Error;
use crate::duration::format_duration;
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

/// cert-manager's default `spec.duration` (90 days).
pub const DEFAULT_DURATION: Duration = Duration::hours(2160);

/// What a caller asks to have signed: cert-manager's CertificateRequest fields.
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    /// The PEM CSR (`spec.request`).
    pub csr_pem: &'a [u8],
    /// `spec.duration`; `None` means [`DEFAULT_DURATION`].
    pub duration: Option<Duration>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.usages` (cert-manager names); empty means the default usages.
    pub usages: &'a [String],
}

impl SignRequest<'_> {
    /// What the request asks of the certificate, apart from the CSR.
    pub fn terms(&self) -> CertificateTerms<'_> {
        CertificateTerms {
            duration: self.duration,
            is_ca: self.is_ca,
            usages: self.usages,
        }
    }
}

/// The request fields besides the CSR, for [`sign_csr`].
#[derive(Debug, Clone, Copy)]
pub struct CertificateTerms<'a> {
    /// `spec.duration`; `None` means [`DEFAULT_DURATION`].
    pub duration: Option<Duration>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.usages` (cert-manager names); empty means the default usages.
    pub usages: &'a [String],
}

/// What an issuer allows, beyond the fixed rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPolicy {
    /// Whether `isCA: true` requests may be signed (default: no).
    pub allow_ca: bool,
    /// The longest duration that may be requested (default: no limit).
    pub max_duration: Option<Duration>,
    /// Whether notAfter is clamped to the CA's notAfter (default) or such requests are refused.
    pub clamp_to_ca: bool,
    /// How far notBefore is back-dated to absorb clock skew (default: none).
    pub backdate: Duration,
}

impl Default for SigningPolicy {
    fn default() -> Self {
        Self {
            allow_ca: false,
            max_duration: None,
            clamp_to_ca: true,
            backdate: Duration::ZERO,
        }
    }
}

/// notAfter was cut to the CA's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    /// What `now + duration` would have been.
    pub requested_not_after: OffsetDateTime,
    /// The CA's notAfter, which the certificate got instead.
    pub ca_not_after: OffsetDateTime,
}

/// A signed certificate and what the caller needs to report about it.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// Leaf then intermediates, PEM (`status.certificate` / `tls.crt`); never the root.
    pub chain_pem: String,
    /// The root, PEM (`status.ca` / `ca.crt`); see [`Self::root_source`].
    pub ca_pem: String,
    /// Where `ca_pem` came from; [`RootSource::NoRootKnown`] means it is an intermediate.
    pub root_source: RootSource,
    /// The leaf alone, DER.
    pub leaf_der: Vec<u8>,
    /// The serial number, colon-separated hex.
    pub serial: String,
    /// notBefore of the leaf.
    pub not_before: OffsetDateTime,
    /// notAfter of the leaf.
    pub not_after: OffsetDateTime,
    /// Set when notAfter was clamped to the CA's expiry.
    pub clamped: Option<Clamped>,
}

impl IssuedCertificate {
    /// A one-line summary for condition messages and logs, mentioning clamping and a missing
    /// root in plain words.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "Certificate issued (serial {}, valid until {})",
            self.serial,
            format_time(self.not_after)
        );
        if let Some(clamped) = self.clamped {
            text.push_str(&format!(
                "; notAfter was clamped to the CA's expiry {} (the request asked for {})",
                format_time(clamped.ca_not_after),
                format_time(clamped.requested_not_after)
            ));
        }
        if self.root_source == RootSource::NoRootKnown {
            text.push_str("; no root CA is known (add ca.crt to the signing Secret), so ca.crt holds the intermediate");
        }
        text
    }
}

/// Signs `request` with `ca` under `policy`, as of `now`.
pub fn sign(
    ca: &SigningCa,
    request: &SignRequest<'_>,
    policy: &SigningPolicy,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, Error> {
    let usages = usages_from_names(request.usages, request.is_ca)?;
    let csr = read_csr(&csr_der_from_pem(request.csr_pem)?)?;
    issue(ca, &csr, &usages, &request.terms(), policy, now)
}

/// [`sign`] for a CSR the caller has already read and verified with
/// [`read_csr`](super::csr::read_csr) (the relay server reads it first to check the identity).
pub fn sign_csr(
    ca: &SigningCa,
    csr: &CertificateRequestInfo,
    terms: &CertificateTerms<'_>,
    policy: &SigningPolicy,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, Error> {
    let usages = usages_from_names(terms.usages, terms.is_ca)?;
    issue(ca, csr, &usages, terms, policy, now)
}

fn issue(
    ca: &SigningCa,
    csr: &CertificateRequestInfo,
    usages: &Usages,
    terms: &CertificateTerms<'_>,
    policy: &SigningPolicy,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, Error> {
    check_request(csr, usages, terms.is_ca, policy)?;

    let duration = terms.duration.unwrap_or(DEFAULT_DURATION);
    if duration <= Duration::ZERO {
        return Err(Error::DurationNotPositive {
            requested: format_duration(duration),
        });
    }
    if let Some(max) = policy.max_duration
        && duration > max
    {
        return Err(Error::DurationTooLong {
            requested: format_duration(duration),
            max: format_duration(max),
        });
    }
    let validity = validity(ca, now, duration, policy)?;

    let serial = random_serial()?;

    let tbs = tbs_certificate(ca, csr, usages, terms.is_ca, &serial, &validity);
    let signature = ca.key.sign(&tbs)?;
    let mut w = DerWriter::with_capacity(tbs.len() + signature.len() + 32);
    w.sequence(|w| {
        w.raw(&tbs);
        ca.key.write_signature_algorithm(w);
        w.bit_string(&signature);
    });
    let leaf_der = w.into_bytes();

    let mut chain_pem = pem_certificate(&leaf_der);
    chain_pem.push_str(&ca.chain_pem);
    Ok(IssuedCertificate {
        chain_pem,
        ca_pem: ca.root_pem.clone(),
        root_source: ca.root_source,
        leaf_der,
        serial: colon_hex(&serial),
        not_before: validity.not_before,
        not_after: validity.not_after,
        clamped: validity.clamped,
    })
}

/// How many serials one read from the operating system's random source covers.
const SERIALS_PER_READ: usize = 256;

/// Random bytes from the operating system, read [`SERIALS_PER_READ`] serials at a time so that
/// a certificate costs no system call of its own; every byte is used once.
struct SerialPool {
    bytes: [u8; 16 * SERIALS_PER_READ],
    used: usize,
}

thread_local! {
    static SERIAL_POOL: std::cell::RefCell<SerialPool> = const {
        std::cell::RefCell::new(SerialPool {
            bytes: [0; 16 * SERIALS_PER_READ],
            used: 16 * SERIALS_PER_READ,
        })
    };
}

/// A fresh serial: 16 random bytes from the OS, positive (top bit clear) and at least 121 bits
/// long (second bit set), so at least 120 bits are unpredictable.
fn random_serial() -> Result<[u8; 16], Error> {
    SERIAL_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used == pool.bytes.len() {
            SystemRandom::new()
                .fill(&mut pool.bytes)
                .map_err(|_| Error::SigningFailed {
                    detail: "the system random number generator failed".into(),
                })?;
            pool.used = 0;
        }
        let at = pool.used;
        let mut serial = [0u8; 16];
        serial.copy_from_slice(&pool.bytes[at..at + 16]);
        // Each byte is handed out once.
        pool.bytes[at..at + 16].fill(0);
        pool.used += 16;
        serial[0] = (serial[0] & 0x7f) | 0x40;
        Ok(serial)
    })
}

/// The request-level rules: isCA policy and agreement, and usage agreement.
fn check_request(
    csr: &CertificateRequestInfo,
    usages: &Usages,
    is_ca: bool,
    policy: &SigningPolicy,
) -> Result<(), Error> {
    if let Some(csr_ca) = csr.basic_constraints_ca
        && csr_ca != is_ca
    {
        return Err(Error::IsCaMismatch {
            in_csr: csr_ca,
            requested: is_ca,
        });
    }
    if is_ca && !policy.allow_ca {
        return Err(Error::CaNotAllowed);
    }
    if let Some(csr_ku) = csr.key_usage
        && csr_ku != usages.key_usage
    {
        return Err(Error::UsageMismatch {
            what: "key usages",
            in_csr: csr_ku.to_string(),
            requested: usages.key_usage.to_string(),
        });
    }
    if let Some(csr_eku) = &csr.extended_key_usage
        && *csr_eku != usages.extended
    {
        return Err(Error::UsageMismatch {
            what: "extended key usages",
            in_csr: describe_extended(csr_eku),
            requested: describe_extended(&usages.extended),
        });
    }
    Ok(())
}

struct Validity {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    clamped: Option<Clamped>,
}

fn validity(
    ca: &SigningCa,
    now: OffsetDateTime,
    duration: Duration,
    policy: &SigningPolicy,
) -> Result<Validity, Error> {
    let now = truncate_to_second(now);
    if now > ca.not_after {
        return Err(Error::CaExpired {
            subject: ca.subject_text.clone(),
            not_after: format_time(ca.not_after),
        });
    }
    if now < ca.not_before {
        return Err(Error::CaNotYetValid {
            subject: ca.subject_text.clone(),
            not_before: format_time(ca.not_before),
        });
    }
    let not_before = (now - policy.backdate.max(Duration::ZERO)).max(ca.not_before);
    let requested_not_after = truncate_to_second(now + duration);
    if requested_not_after <= ca.not_after {
        return Ok(Validity {
            not_before,
            not_after: requested_not_after,
            clamped: None,
        });
    }
    if !policy.clamp_to_ca {
        return Err(Error::WouldOutliveCa {
            requested_not_after: format_time(requested_not_after),
            ca_not_after: format_time(ca.not_after),
        });
    }
    Ok(Validity {
        not_before,
        not_after: ca.not_after,
        clamped: Some(Clamped {
            requested_not_after,
            ca_not_after: ca.not_after,
        }),
    })
}

/// Bytes as lower-case hex pairs joined by colons (`7e:cf:51`), as serials are shown.
pub fn colon_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

fn tbs_certificate(
    ca: &SigningCa,
    csr: &CertificateRequestInfo,
    usages: &Usages,
    is_ca: bool,
    serial: &[u8],
    validity: &Validity,
) -> Vec<u8> {
    let mut w = DerWriter::with_capacity(512 + csr.spki_der.len());
    w.sequence(|w| {
        w.nested(tag::CONTEXT_0_CONSTRUCTED, |w| w.small_integer(2));
        w.unsigned_integer(serial);
        ca.key.write_signature_algorithm(w);
        w.raw(&ca.subject_der);
        w.sequence(|w| {
            w.time(validity.not_before);
            w.time(validity.not_after);
        });
        w.raw(&csr.subject_der);
        w.raw(&csr.spki_der);
        w.nested(tag::CONTEXT_3_CONSTRUCTED, |w| {
            w.sequence(|w| write_extensions(w, ca, csr, usages, is_ca));
        });
    });
    w.into_bytes()
}

fn write_extension(
    w: &mut DerWriter,
    oid_der: &[u8],
    critical: bool,
    value: impl FnOnce(&mut DerWriter),
) {
    w.sequence(|w| {
        w.oid(oid_der);
        if critical {
            w.boolean(true);
        }
        w.nested(tag::OCTET_STRING, value);
    });
}

fn write_extensions(
    w: &mut DerWriter,
    ca: &SigningCa,
    csr: &CertificateRequestInfo,
    usages: &Usages,
    is_ca: bool,
) {
    write_extension(w, oid::EXT_BASIC_CONSTRAINTS, true, |w| {
        w.sequence(|w| {
            if is_ca {
                w.boolean(true);
            }
        });
    });
    if !usages.key_usage.is_empty() {
        write_extension(w, oid::EXT_KEY_USAGE, true, |w| {
            w.named_bits(usages.key_usage.0)
        });
    }
    if !usages.extended.is_empty() {
        write_extension(w, oid::EXT_EXTENDED_KEY_USAGE, false, |w| {
            w.sequence(|w| {
                for eku in &usages.extended {
                    w.oid(eku.oid_der());
                }
            });
        });
    }
    write_extension(w, oid::EXT_SUBJECT_KEY_IDENTIFIER, false, |w| {
        w.octet_string(&key_identifier(&csr.public_key));
    });
    write_extension(w, oid::EXT_AUTHORITY_KEY_IDENTIFIER, false, |w| {
        w.sequence(|w| w.element(tag::CONTEXT_0_PRIMITIVE, &ca.key_identifier));
    });
    if !csr.sans.is_empty() {
        // RFC 5280 §4.2.1.6: critical when the subject is empty.
        let subject_empty = csr.subject_der.len() <= 2;
        write_extension(w, oid::EXT_SUBJECT_ALT_NAME, subject_empty, |w| {
            w.sequence(|w| {
                for san in &csr.sans {
                    match san {
                        SubjectAltName::Dns(name) => w.element(tag::SAN_DNS, name.as_bytes()),
                        SubjectAltName::Email(email) => w.element(tag::SAN_EMAIL, email.as_bytes()),
                        SubjectAltName::Uri(uri) => w.element(tag::SAN_URI, uri.as_bytes()),
                        SubjectAltName::Ip(std::net::IpAddr::V4(ip)) => {
                            w.element(tag::SAN_IP, &ip.octets())
                        }
                        SubjectAltName::Ip(std::net::IpAddr::V6(ip)) => {
                            w.element(tag::SAN_IP, &ip.octets())
                        }
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_stay_distinct_and_well_formed_across_pool_refills() {
        let count = 3 * SERIALS_PER_READ + 5;
        let serials: std::collections::HashSet<[u8; 16]> =
            (0..count).map(|_| random_serial().unwrap()).collect();
        assert_eq!(serials.len(), count, "every serial is new");
        for serial in &serials {
            assert_eq!(serial[0] & 0xc0, 0x40, "positive, 121 bits or more");
        }
        // Each thread draws from its own pool.
        let other = std::thread::spawn(|| random_serial().unwrap())
            .join()
            .unwrap();
        assert!(!serials.contains(&other));
    }
}
