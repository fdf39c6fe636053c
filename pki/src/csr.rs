//! Reading a PKCS#10 certificate signing request: its key, names and requested extensions.
//!
//! The CSR is walked with the strict DER reader in `der` (the sign path runs this per request, so
//! it avoids a general X.509 parser), its self-signature verified with ring and its key
//! classified here; what it asks for is returned as plain owned data for the signing rules in
//! `sign` to judge. Nothing here decides whether a request is allowed.

use super::der::{DerError, DerReader, Element, oid, oid_text, tag};
use super::keys::{KeyType, SpkiParts, classify_key};
use super::usages::{ExtendedKeyUsage, KeyUsageSet};
use crate::Error;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use std::collections::BTreeSet;
use std::net::IpAddr;
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
    super::pem::first_block_labelled(
        pem_text,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    )
    .map_err(|e| Error::CsrNotPem {
        detail: format!("the PEM is malformed ({e})"),
    })?
    .ok_or_else(|| Error::CsrNotPem {
        detail: "no CERTIFICATE REQUEST block was found".into(),
    })
}

/// A CSR's elements, located but not yet judged.
struct CsrParts<'a> {
    /// The whole certificationRequestInfo element: the bytes the signature covers.
    info: &'a [u8],
    subject: Element<'a>,
    spki: Element<'a>,
    key: SpkiParts<'a>,
    signature_algorithm: &'a [u8],
    signature_parameters: Option<Element<'a>>,
    signature: &'a [u8],
    /// The contents of the extensionRequest attribute's Extensions, when there is one.
    extensions: Option<&'a [u8]>,
}

impl<'a> CsrParts<'a> {
    /// Walks the PKCS#10 structure (RFC 2986 §4) without interpreting extension contents.
    fn read(der: &'a [u8]) -> Result<Self, DerError> {
        let mut top = DerReader::new(der);
        let request = top.expect(tag::SEQUENCE, "the request")?;
        top.finish("the request")?;
        let mut fields = request.reader();
        let info = fields.expect(tag::SEQUENCE, "the certificationRequestInfo")?;
        let algorithm = fields.expect(tag::SEQUENCE, "the signature algorithm")?;
        let signature = fields.expect(tag::BIT_STRING, "the signature")?;
        fields.finish("the request")?;

        let mut info_fields = info.reader();
        let version = info_fields.expect(tag::INTEGER, "the version")?;
        if version.content != [0] {
            return Err(DerError::new("the version", "is not v1 (0)"));
        }
        let subject = info_fields.expect(tag::SEQUENCE, "the subject")?;
        check_name(subject)?;
        let spki = info_fields.expect(tag::SEQUENCE, "the subjectPublicKeyInfo")?;
        let key = SpkiParts::read(spki.raw)?;
        if info_fields.is_empty() {
            return Err(DerError::new(
                "the attributes field",
                "is missing; PKCS#10 requires it, empty when there are no attributes (RFC 2986 4.1)",
            ));
        }
        let attributes = info_fields.expect(tag::CONTEXT_0_CONSTRUCTED, "the attributes field")?;
        info_fields.finish("the certificationRequestInfo")?;
        // `[0] IMPLICIT SET OF Attribute`: the implicit tag hides the SET from the reader.
        attributes.check_set_of("the attributes field")?;

        let (signature_algorithm, signature_parameters) =
            algorithm.algorithm_identifier("the signature algorithm")?;

        Ok(Self {
            info: info.raw,
            subject,
            spki,
            key,
            signature_algorithm,
            signature_parameters,
            signature: signature.whole_bytes("the signature")?,
            extensions: extension_request(attributes)?,
        })
    }
}

/// The universal string types a Name's attribute values and a challengePassword may use
/// (UTF8String, NumericString, PrintableString, TeletexString, IA5String, VisibleString,
/// UniversalString, BMPString), primitive as DER requires. Anything else would be copied into
/// the certificate verbatim, and other tools refuse such a Name (OpenSSL: "mstring not
/// universal").
const STRING_TAGS: [u8; 8] = [0x0c, 0x12, 0x13, 0x14, 0x16, 0x1a, 0x1c, 0x1e];

/// Reads one string value (see [`STRING_TAGS`]).
fn expect_string(reader: &mut DerReader<'_>, what: &'static str) -> Result<(), DerError> {
    match reader.peek_tag() {
        Some(found) if STRING_TAGS.contains(&found) => reader.any(what).map(|_| ()),
        Some(found) => Err(DerError::new(
            what,
            format!(
                "has tag 0x{found:02x}, which is not a string type (UTF8String, PrintableString, IA5String, ...)"
            ),
        )),
        None => Err(DerError::new(what, "is missing")),
    }
}

/// Checks that a Name is a SEQUENCE OF non-empty SETs of (OID, string value) pairs.
fn check_name(name: Element<'_>) -> Result<(), DerError> {
    let mut rdns = name.reader();
    while !rdns.is_empty() {
        let rdn = rdns.expect(tag::SET, "a subject component")?;
        let mut pairs = rdn.reader();
        if pairs.is_empty() {
            return Err(DerError::new("a subject component", "is empty"));
        }
        while !pairs.is_empty() {
            let pair = pairs.expect(tag::SEQUENCE, "a subject attribute")?;
            let mut parts = pair.reader();
            parts.expect(tag::OID, "a subject attribute type")?;
            expect_string(&mut parts, "a subject attribute value")?;
            parts.finish("a subject attribute")?;
        }
    }
    Ok(())
}

/// Finds the extensionRequest attribute (PKCS#9) and returns its Extensions' contents.
fn extension_request<'a>(attributes: Element<'a>) -> Result<Option<&'a [u8]>, DerError> {
    let mut found = None;
    let mut reader = attributes.reader();
    while !reader.is_empty() {
        let attribute = reader.expect(tag::SEQUENCE, "an attribute")?;
        let mut parts = attribute.reader();
        let kind = parts.expect(tag::OID, "an attribute type")?;
        let values = parts.expect(tag::SET, "an attribute's values")?;
        parts.finish("an attribute")?;
        if kind.content == oid::CHALLENGE_PASSWORD {
            // PKCS#9: a single DirectoryString. Unused here, but read as the type says, as
            // other readers of the request do.
            let mut values = values.reader();
            expect_string(&mut values, "the challengePassword attribute")?;
            values.finish("the challengePassword attribute")?;
            continue;
        }
        if kind.content != oid::EXTENSION_REQUEST {
            continue;
        }
        if found.is_some() {
            return Err(DerError::new(
                "the request",
                "carries two extensionRequest attributes",
            ));
        }
        let mut values = values.reader();
        let extensions = values.expect(tag::SEQUENCE, "the extensionRequest attribute")?;
        values.finish("the extensionRequest attribute")?;
        found = Some(extensions.content);
    }
    Ok(found)
}

/// Parses a DER CSR, verifies its self-signature and checks its key type.
pub fn read_csr(der: &[u8]) -> Result<CertificateRequestInfo, Error> {
    let invalid = |e: DerError| Error::CsrInvalid {
        detail: e.to_string(),
    };
    let parts = CsrParts::read(der).map_err(invalid)?;
    let key_type = classify_key(&parts.key).map_err(|seen| Error::CsrKeyUnsupported { seen })?;

    if WEAK_SIGNATURE_ALGORITHMS.contains(&parts.signature_algorithm) {
        return Err(Error::CsrSignatureInvalid {
            detail: "it is signed with SHA-1 or MD5, which are not accepted; sign the CSR with SHA-256 or better".into(),
        });
    }
    let algorithm = verification_algorithm(&parts, key_type)?;
    UnparsedPublicKey::new(algorithm, parts.key.key)
        .verify(parts.info, parts.signature)
        .map_err(|_| Error::CsrSignatureInvalid {
            detail: format!(
                "the {} signature does not match the request's contents and key",
                algorithm_name(parts.signature_algorithm)
            ),
        })?;

    let mut request = CertificateRequestInfo {
        subject_der: parts.subject.raw.to_vec(),
        spki_der: parts.spki.raw.to_vec(),
        public_key: parts.key.key.to_vec(),
        key_type,
        sans: Vec::new(),
        key_usage: None,
        extended_key_usage: None,
        basic_constraints_ca: None,
    };
    let Some(extensions) = parts.extensions else {
        return Ok(request);
    };
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut reader = DerReader::new(extensions);
    while !reader.is_empty() {
        let extension = reader
            .expect(tag::SEQUENCE, "a requested extension")
            .map_err(invalid)?;
        let mut fields = extension.reader();
        let id = fields
            .expect(tag::OID, "a requested extension's OID")
            .map_err(invalid)?;
        fields
            .optional(tag::BOOLEAN, "a requested extension's criticality")
            .map_err(invalid)?;
        let value = fields
            .expect(tag::OCTET_STRING, "a requested extension's value")
            .map_err(invalid)?;
        fields.finish("a requested extension").map_err(invalid)?;
        if seen.contains(&id.content) {
            return Err(Error::CsrInvalid {
                detail: format!("extension {} appears twice", oid_text(id.content)),
            });
        }
        seen.push(id.content);
        read_extension(&mut request, id.content, value.content)?;
    }
    Ok(request)
}

/// The ring algorithm that verifies this CSR's signature, given its key.
fn verification_algorithm(
    parts: &CsrParts<'_>,
    key_type: KeyType,
) -> Result<&'static dyn VerificationAlgorithm, Error> {
    let algorithm = parts.signature_algorithm;
    let chosen: Option<&'static dyn VerificationAlgorithm> = match (algorithm, key_type) {
        (oid::ECDSA_WITH_SHA256, KeyType::EcdsaP256) => Some(&signature::ECDSA_P256_SHA256_ASN1),
        (oid::ECDSA_WITH_SHA384, KeyType::EcdsaP256) => Some(&signature::ECDSA_P256_SHA384_ASN1),
        (oid::ECDSA_WITH_SHA256, KeyType::EcdsaP384) => Some(&signature::ECDSA_P384_SHA256_ASN1),
        (oid::ECDSA_WITH_SHA384, KeyType::EcdsaP384) => Some(&signature::ECDSA_P384_SHA384_ASN1),
        (oid::SHA256_WITH_RSA, KeyType::Rsa(_)) => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
        (oid::SHA384_WITH_RSA, KeyType::Rsa(_)) => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
        (oid::SHA512_WITH_RSA, KeyType::Rsa(_)) => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
        (oid::RSASSA_PSS, KeyType::Rsa(_)) => match pss_hash(parts.signature_parameters) {
            Some(oid::SHA256) => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Some(oid::SHA384) => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Some(oid::SHA512) => Some(&signature::RSA_PSS_2048_8192_SHA512),
            _ => {
                return Err(Error::CsrSignatureInvalid {
                        detail: "it is signed with RSA-PSS over a hash other than SHA-256, SHA-384 or SHA-512".into(),
                    });
            }
        },
        (oid::ED25519, KeyType::Ed25519) => Some(&signature::ED25519),
        _ => None,
    };
    chosen.ok_or_else(|| Error::CsrSignatureInvalid {
        detail: format!(
            "it is signed with {}, which is not accepted for a {key_type} key; sign it with the key's usual algorithm (ECDSA with SHA-256/384, RSA PKCS#1 v1.5 or PSS with SHA-256/384/512, or Ed25519)",
            algorithm_name(algorithm)
        ),
    })
}

/// The hash OID of RSASSA-PSS parameters (RFC 4055 §3.1); `None` when absent (SHA-1) or
/// unreadable.
fn pss_hash(parameters: Option<Element<'_>>) -> Option<&[u8]> {
    let parameters = parameters.filter(|p| p.tag == tag::SEQUENCE)?;
    let hash = parameters
        .reader()
        .optional(tag::CONTEXT_0_CONSTRUCTED, "the PSS hash")
        .ok()??;
    let algorithm = hash.reader().expect(tag::SEQUENCE, "the PSS hash").ok()?;
    let (id, _) = algorithm.algorithm_identifier("the PSS hash").ok()?;
    Some(id)
}

/// A signature algorithm's name for messages.
fn algorithm_name(algorithm: &[u8]) -> String {
    match algorithm {
        oid::ECDSA_WITH_SHA256 => "ecdsa-with-SHA256".into(),
        oid::ECDSA_WITH_SHA384 => "ecdsa-with-SHA384".into(),
        oid::SHA256_WITH_RSA => "sha256WithRSAEncryption".into(),
        oid::SHA384_WITH_RSA => "sha384WithRSAEncryption".into(),
        oid::SHA512_WITH_RSA => "sha512WithRSAEncryption".into(),
        oid::RSASSA_PSS => "RSASSA-PSS".into(),
        oid::ED25519 => "Ed25519".into(),
        other => format!("algorithm {}", oid_text(other)),
    }
}

/// Reads one requested extension's value into `request`. Extensions other than the four the
/// rules look at are ignored: they are never copied into the certificate.
fn read_extension(
    request: &mut CertificateRequestInfo,
    id: &[u8],
    value: &[u8],
) -> Result<(), Error> {
    let malformed = |extension: &'static str| {
        move |e: DerError| Error::CsrExtensionInvalid {
            extension,
            detail: e.to_string(),
        }
    };
    match id {
        oid::EXT_SUBJECT_ALT_NAME => {
            request.sans = read_general_names(value)?;
        }
        oid::EXT_KEY_USAGE => {
            let bits = read_named_bits(value).map_err(malformed("keyUsage"))?;
            request.key_usage = Some(KeyUsageSet(bits & 0x1ff));
        }
        oid::EXT_EXTENDED_KEY_USAGE => {
            let mut outer = DerReader::new(value);
            let list = outer
                .expect(tag::SEQUENCE, "the purpose list")
                .map_err(malformed("extendedKeyUsage"))?;
            outer
                .finish("the extension value")
                .map_err(malformed("extendedKeyUsage"))?;
            let mut purposes = list.reader();
            let mut set = BTreeSet::new();
            while !purposes.is_empty() {
                let purpose = purposes
                    .expect(tag::OID, "a purpose")
                    .map_err(malformed("extendedKeyUsage"))?;
                match ExtendedKeyUsage::from_oid_der(purpose.content) {
                    Some(known) => {
                        set.insert(known);
                    }
                    None => {
                        return Err(Error::UsageMismatch {
                            what: "extended key usages",
                            in_csr: format!("includes {}", oid_text(purpose.content)),
                            requested: "only purposes cert-manager can name".into(),
                        });
                    }
                }
            }
            request.extended_key_usage = Some(set);
        }
        oid::EXT_BASIC_CONSTRAINTS => {
            let ca = read_basic_constraints_ca(value).map_err(malformed("basicConstraints"))?;
            request.basic_constraints_ca = Some(ca);
        }
        _ => {}
    }
    Ok(())
}

/// A named-bit BIT STRING as flags: named bit n is `1 << n` (bits past 15 are dropped).
fn read_named_bits(value: &[u8]) -> Result<u16, DerError> {
    let mut outer = DerReader::new(value);
    let bits = outer.expect(tag::BIT_STRING, "the bit string")?;
    outer.finish("the extension value")?;
    let Some((&unused, bytes)) = bits.content.split_first() else {
        return Err(DerError::new("the bit string", "is empty"));
    };
    if unused > 7 || (bytes.is_empty() && unused != 0) {
        return Err(DerError::new(
            "the bit string",
            "has an invalid unused-bit count",
        ));
    }
    if bytes
        .last()
        .is_some_and(|last| last & ((1u8 << unused) - 1) != 0)
    {
        return Err(DerError::new(
            "the bit string",
            "has unused bits that are not zero (DER needs them zero, X.690 11.2.1)",
        ));
    }
    let mut flags = 0u16;
    for (n, flag) in (0..16).map(|n| (n, 1u16 << n)) {
        if bytes
            .get(n / 8)
            .is_some_and(|byte| byte & (0x80 >> (n % 8)) != 0)
        {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// BasicConstraints' `cA` (DEFAULT FALSE).
fn read_basic_constraints_ca(value: &[u8]) -> Result<bool, DerError> {
    let mut outer = DerReader::new(value);
    let constraints = outer.expect(tag::SEQUENCE, "the constraints")?;
    outer.finish("the extension value")?;
    let mut fields = constraints.reader();
    // The reader has refused any BOOLEAN other than 0x00 / 0xff.
    let ca = fields
        .optional(tag::BOOLEAN, "cA")?
        .is_some_and(|flag| flag.content == [0xff]);
    if let Some(path_length) = fields.optional(tag::INTEGER, "pathLenConstraint")? {
        // The reader has refused non-minimal INTEGERs, so the first byte carries the sign and a
        // value of 32 bits takes at most five bytes.
        let content = path_length.content;
        if content.first().is_some_and(|b| b & 0x80 != 0) {
            return Err(DerError::new(
                "pathLenConstraint",
                "is negative; it must be 0 or more",
            ));
        }
        if content.len() > 5 || (content.len() == 5 && content.first() != Some(&0)) {
            return Err(DerError::new(
                "pathLenConstraint",
                "does not fit in 32 bits",
            ));
        }
    }
    fields.finish("the constraints")?;
    Ok(ca)
}

/// The subjectAltName's GeneralNames, refusing kinds we do not issue.
fn read_general_names(value: &[u8]) -> Result<Vec<SubjectAltName>, Error> {
    let malformed = |detail: String| Error::CsrExtensionInvalid {
        extension: "subjectAltName",
        detail,
    };
    let mut outer = DerReader::new(value);
    let list = outer
        .expect(tag::SEQUENCE, "the name list")
        .map_err(|e| malformed(e.to_string()))?;
    outer
        .finish("the extension value")
        .map_err(|e| malformed(e.to_string()))?;
    let mut names = Vec::new();
    let mut reader = list.reader();
    while !reader.is_empty() {
        let name = reader.any("a name").map_err(|e| malformed(e.to_string()))?;
        let text = |kind: &str| {
            std::str::from_utf8(name.content)
                .ok()
                .filter(|t| t.is_ascii())
                .map(str::to_owned)
                .ok_or_else(|| malformed(format!("a {kind} name is not ASCII (IA5String)")))
        };
        let unsupported = |kind: &str| Error::CsrSanUnsupported { kind: kind.into() };
        names.push(match name.tag {
            tag::SAN_DNS => SubjectAltName::Dns(text("DNS")?),
            tag::SAN_EMAIL => SubjectAltName::Email(text("email")?),
            tag::SAN_URI => SubjectAltName::Uri(text("URI")?),
            tag::SAN_IP => SubjectAltName::Ip(ip_address(name.content).ok_or_else(|| {
                malformed(format!(
                    "an IP address of {} bytes (expected 4 or 16)",
                    name.content.len()
                ))
            })?),
            tag::SAN_OTHER_NAME => return Err(unsupported("otherName")),
            tag::SAN_DIRECTORY_NAME => return Err(unsupported("directoryName")),
            tag::SAN_REGISTERED_ID => return Err(unsupported("registeredID")),
            tag::SAN_X400_ADDRESS => return Err(unsupported("x400Address")),
            tag::SAN_EDI_PARTY_NAME => return Err(unsupported("ediPartyName")),
            other => {
                return Err(malformed(format!(
                    "a name has the unknown tag 0x{other:02x}"
                )));
            }
        });
    }
    Ok(names)
}

/// An iPAddress GeneralName's bytes as an address: 4 bytes IPv4, 16 bytes IPv6, else `None`.
pub fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::from(octets));
    }
    <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
}
