//! Reading a PKCS#10 certificate signing request: its key, names and requested extensions.
//!
//! The CSR is parsed, its self-signature verified and its key classified here; what it asks for
//! is returned as plain owned data for the signing rules in `sign` to judge. Nothing here decides
//! whether a request is allowed.

use super::keys::{KeyType, classify_public_key};
use super::usages::{ExtendedKeyUsage, KeyUsageSet};
use crate::Error;
use std::collections::BTreeSet;
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

/// A subject alternative name we issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectAltName {
    /// `dNSName`.
    Dns(String),
    /// `iPAddress`.
    Ip(IpAddr),
    /// `uniformResourceIdentifier`.
    Uri(String),
    /// `rfc822Name`.
    Email(String),
}

/// A verified CSR, reduced to what the signer needs.
#[derive(Debug, Clone)]
pub struct CertificateRequestInfo {
    /// The subject Name, DER-encoded as it appears in the CSR (copied verbatim into the leaf).
    pub subject_der: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER (copied verbatim into the leaf).
    pub spki_der: Vec<u8>,
    /// The public key bytes inside the SPKI BIT STRING (for the subject key identifier).
    pub public_key: Vec<u8>,
    /// The key's algorithm and size.
    pub key_type: KeyType,
    /// Subject alternative names, in CSR order.
    pub sans: Vec<SubjectAltName>,
    /// KeyUsage requested in the CSR, when it carries the extension.
    pub key_usage: Option<KeyUsageSet>,
    /// ExtendedKeyUsage requested in the CSR, when it carries the extension.
    pub extended_key_usage: Option<BTreeSet<ExtendedKeyUsage>>,
    /// BasicConstraints `cA` requested in the CSR, when it carries the extension.
    pub basic_constraints_ca: Option<bool>,
}

/// Signature algorithms refused on CSRs (DER OID contents): sha1WithRSAEncryption,
/// md5WithRSAEncryption, sha1WithRSA (OIW) and ecdsa-with-SHA1.
const WEAK_SIGNATURE_ALGORITHMS: [&[u8]; 4] = [
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
    &[0x2b, 0x0e, 0x03, 0x02, 0x1d],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
];

impl CertificateRequestInfo {
    /// The subject in RFC 4514 text, for messages.
    pub fn subject_text(&self) -> String {
        x509_parser::x509::X509Name::from_der(&self.subject_der)
            .map(|(_, name)| name.to_string())
            .unwrap_or_else(|_| "(unreadable subject)".into())
    }
}

/// Decodes the first `CERTIFICATE REQUEST` block of PEM text.
pub fn csr_der_from_pem(pem_text: &[u8]) -> Result<Vec<u8>, Error> {
    if pem_text.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::CsrNotPem {
            detail: "the request is empty".into(),
        });
    }
    let blocks = super::pem::parse_pem(pem_text).map_err(|e| Error::CsrNotPem {
        detail: format!("the PEM is malformed ({e})"),
    })?;
    let block = blocks
        .into_iter()
        .find(|b| b.label == "CERTIFICATE REQUEST" || b.label == "NEW CERTIFICATE REQUEST")
        .ok_or_else(|| Error::CsrNotPem {
            detail: "no CERTIFICATE REQUEST block was found".into(),
        })?;
    Ok(block.der)
}

/// Parses a DER CSR, verifies its self-signature and checks its key type.
pub fn read_csr(der: &[u8]) -> Result<CertificateRequestInfo, Error> {
    let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| Error::CsrInvalid {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::CsrInvalid {
            detail: format!("{} trailing bytes after the request", rest.len()),
        });
    }
    let info = &csr.certification_request_info;
    let key_type =
        classify_public_key(&info.subject_pki).map_err(|seen| Error::CsrKeyUnsupported { seen })?;

    if WEAK_SIGNATURE_ALGORITHMS.contains(&csr.signature_algorithm.algorithm.as_bytes()) {
        return Err(Error::CsrSignatureInvalid {
            detail: "it is signed with SHA-1 or MD5, which are not accepted; sign the CSR with SHA-256 or better".into(),
        });
    }
    csr.verify_signature()
        .map_err(|e| Error::CsrSignatureInvalid {
            detail: e.to_string(),
        })?;

    let mut request = CertificateRequestInfo {
        subject_der: info.subject.as_raw().to_vec(),
        spki_der: info.subject_pki.raw.to_vec(),
        public_key: info.subject_pki.subject_public_key.data.to_vec(),
        key_type,
        sans: Vec::new(),
        key_usage: None,
        extended_key_usage: None,
        basic_constraints_ca: None,
    };

    let mut seen_extension_request = false;
    for attribute in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(requested) = attribute.parsed_attribute() else {
            continue;
        };
        if seen_extension_request {
            return Err(Error::CsrInvalid {
                detail: "the request carries two extensionRequest attributes".into(),
            });
        }
        seen_extension_request = true;
        for (i, extension) in requested.extensions.iter().enumerate() {
            if requested.extensions[..i]
                .iter()
                .any(|e| e.oid == extension.oid)
            {
                return Err(Error::CsrInvalid {
                    detail: format!("extension {} appears twice", extension.oid.to_id_string()),
                });
            }
            read_extension(&mut request, extension.parsed_extension())?;
        }
    }
    Ok(request)
}

fn read_extension(
    request: &mut CertificateRequestInfo,
    extension: &ParsedExtension<'_>,
) -> Result<(), Error> {
    match extension {
        ParsedExtension::SubjectAlternativeName(san) => {
            for name in &san.general_names {
                request.sans.push(san_from_general_name(name)?);
            }
        }
        ParsedExtension::KeyUsage(ku) => {
            // x509-parser stores named bit n at bit n of `flags`.
            request.key_usage = Some(KeyUsageSet(ku.flags & 0x1ff));
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let mut set = BTreeSet::new();
            let flags = [
                (eku.any, ExtendedKeyUsage::Any),
                (eku.server_auth, ExtendedKeyUsage::ServerAuth),
                (eku.client_auth, ExtendedKeyUsage::ClientAuth),
                (eku.code_signing, ExtendedKeyUsage::CodeSigning),
                (eku.email_protection, ExtendedKeyUsage::EmailProtection),
                (eku.time_stamping, ExtendedKeyUsage::Timestamping),
                (eku.ocsp_signing, ExtendedKeyUsage::OcspSigning),
            ];
            set.extend(flags.iter().filter(|(on, _)| *on).map(|(_, e)| *e));
            for other in &eku.other {
                match ExtendedKeyUsage::from_oid_der(other.as_bytes()) {
                    Some(known) => {
                        set.insert(known);
                    }
                    None => {
                        return Err(Error::UsageMismatch {
                            what: "extended key usages",
                            in_csr: format!("includes {}", other.to_id_string()),
                            requested: "only purposes cert-manager can name".into(),
                        });
                    }
                }
            }
            request.extended_key_usage = Some(set);
        }
        ParsedExtension::BasicConstraints(bc) => {
            request.basic_constraints_ca = Some(bc.ca);
        }
        ParsedExtension::ParseError { error } => {
            return Err(Error::CsrExtensionInvalid {
                extension: "requested",
                detail: error.to_string(),
            });
        }
        // Any other requested extension is ignored: it is never copied into the certificate.
        _ => {}
    }
    Ok(())
}

/// An iPAddress GeneralName's bytes as an address: 4 bytes IPv4, 16 bytes IPv6, else `None`.
pub fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(octets));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}

fn san_from_general_name(name: &GeneralName<'_>) -> Result<SubjectAltName, Error> {
    let unsupported = |kind: &str| Error::CsrSanUnsupported { kind: kind.into() };
    match name {
        GeneralName::DNSName(dns) => Ok(SubjectAltName::Dns((*dns).to_string())),
        GeneralName::RFC822Name(email) => Ok(SubjectAltName::Email((*email).to_string())),
        GeneralName::URI(uri) => Ok(SubjectAltName::Uri((*uri).to_string())),
        GeneralName::IPAddress(bytes) => {
            ip_address(bytes)
                .map(SubjectAltName::Ip)
                .ok_or_else(|| Error::CsrExtensionInvalid {
                    extension: "subjectAltName",
                    detail: format!("an IP address of {} bytes (expected 4 or 16)", bytes.len()),
                })
        }
        GeneralName::OtherName(..) => Err(unsupported("otherName")),
        GeneralName::DirectoryName(_) => Err(unsupported("directoryName")),
        GeneralName::RegisteredID(_) => Err(unsupported("registeredID")),
        GeneralName::X400Address(_) => Err(unsupported("x400Address")),
        GeneralName::EDIPartyName(_) => Err(unsupported("ediPartyName")),
        GeneralName::Invalid(..) => Err(Error::CsrExtensionInvalid {
            extension: "subjectAltName",
            detail: "a name does not parse".into(),
        }),
    }
}
