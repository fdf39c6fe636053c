//! Structure-aware fuzzing of the CSR reader and the sign path.
//!
//! The fuzzer's bytes choose a request through `arbitrary`: subject RDNs, SAN entries of every
//! kind (odd ones too: non-ASCII names, IPs of any length, GeneralName kinds we do not issue),
//! KeyUsage bits, purposes, BasicConstraints, criticality, raw extension values under known and
//! unknown OIDs, extra attributes, and the key type (P-256, P-384 or Ed25519, one fixed key each).
//! The request is signed with that key; in the second mode the fuzzer's edits are applied to the
//! CertificationRequestInfo bytes first and the result is signed again, so damage reaches past
//! the signature check.
//!
//! Every request goes to relay-issuer's CSR reader and to x509-parser: whatever the reader
//! accepts, x509-parser must read alike (names, usages, basic constraints, key). A request built
//! only from well-formed parts must be accepted and read exactly as built. An accepted request
//! then goes through the sign path with usages matching it: a certificate must carry the
//! request's subject, key, names and usages, and a refusal may only be a usage or isCA rule.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use relay_issuer::pki::Error;
use relay_issuer::pki::csr::{SubjectAltName, read_csr};
use relay_issuer::pki::generate::{PkiSpec, generate_pki};
use relay_issuer::pki::pem::encode_pem;
use relay_issuer::pki::usages::{ExtendedKeyUsage, KeyUsage};
use relay_issuer::pki::{SignRequest, SigningCa, SigningPolicy, sign};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::OnceLock;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

// ---------- the fuzzer's choices ----------

#[derive(Debug, Arbitrary)]
enum KeyChoice {
    P256,
    P384,
    Ed25519,
}

#[derive(Debug, Arbitrary)]
enum NameValue {
    Utf8(String),
    Printable(String),
    Ia5(String),
    /// Any tag, any contents.
    Raw(u8, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum SanEntry {
    Dns(String),
    Email(String),
    Uri(String),
    Ipv4([u8; 4]),
    Ipv6([u8; 16]),
    /// An iPAddress of any length.
    IpBytes(Vec<u8>),
    /// Any tag, any contents (otherName, directoryName, registeredID, garbage).
    Other(u8, Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Purpose {
    /// One of the purposes cert-manager can name (index into `PURPOSES`).
    Known(u8),
    /// Any OID contents.
    Oid(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum OidChoice {
    SubjectAltName,
    KeyUsage,
    ExtendedKeyUsage,
    BasicConstraints,
    SubjectKeyIdentifier,
    /// 1.3.6.1.4.1.55555.n
    Private(u16),
}

#[derive(Debug, Arbitrary)]
enum ExtensionChoice {
    SubjectAltName(Vec<SanEntry>),
    KeyUsage(u16),
    KeyUsageRaw {
        unused: u8,
        bytes: Vec<u8>,
    },
    ExtendedKeyUsage(Vec<Purpose>),
    BasicConstraints {
        ca: Option<bool>,
        path_len: Option<u32>,
    },
    Raw {
        oid: OidChoice,
        value: Vec<u8>,
    },
}

#[derive(Debug, Arbitrary)]
struct Extension {
    /// `None`: omitted (DEFAULT FALSE).
    critical: Option<bool>,
    choice: ExtensionChoice,
}

#[derive(Debug, Arbitrary)]
struct Request {
    key: KeyChoice,
    /// RDNs, each a list of (attribute type index, value).
    subject: Vec<Vec<(u8, NameValue)>>,
    extensions: Vec<Extension>,
    /// Unknown attributes: (private OID arc, UTF8String value).
    attributes: Vec<(u16, String)>,
    extension_request: bool,
}

#[derive(Debug, Arbitrary)]
enum EditKind {
    Set,
    Xor,
    Insert,
    Remove,
    Truncate,
}

#[derive(Debug, Arbitrary)]
struct Edit {
    at: u16,
    byte: u8,
    kind: EditKind,
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// The request as built.
    Built(Request, Terms),
    /// The request with its info bytes edited, then signed again.
    Edited(Request, Vec<Edit>, Terms),
}

#[derive(Debug, Arbitrary)]
struct Terms {
    allow_ca: bool,
    hours: u16,
}

// ---------- DER ----------

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// A SET OF in DER order.
fn set_of(mut parts: Vec<Vec<u8>>, tag: u8) -> Vec<u8> {
    parts.sort();
    tlv(tag, &parts.concat())
}

/// A non-negative INTEGER, minimal.
fn uint(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    let mut content = Vec::new();
    if bytes[first] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[first..]);
    tlv(0x02, &content)
}

/// A named-bit BIT STRING with trailing zero bits removed.
fn named_bits(bits: u16) -> Vec<u8> {
    let Some(highest) = (0..16).rev().find(|n| bits & (1 << n) != 0) else {
        return tlv(0x03, &[0]);
    };
    let mut bytes = [0u8; 2];
    for n in 0..=highest {
        if bits & (1 << n) != 0 {
            bytes[n / 8] |= 0x80 >> (n % 8);
        }
    }
    let mut content = vec![(7 - highest % 8) as u8];
    content.extend_from_slice(&bytes[..highest / 8 + 1]);
    tlv(0x03, &content)
}

/// 1.3.6.1.4.1.55555.n
fn private_oid(n: u16) -> Vec<u8> {
    let mut content = vec![0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03];
    let n = u32::from(n);
    if n >= 1 << 14 {
        content.push(0x80 | (n >> 14) as u8);
    }
    if n >= 1 << 7 {
        content.push(0x80 | ((n >> 7) & 0x7f) as u8);
    }
    content.push((n & 0x7f) as u8);
    content
}

const SAN: &[u8] = &[0x55, 0x1d, 0x11];
const KU: &[u8] = &[0x55, 0x1d, 0x0f];
const EKU: &[u8] = &[0x55, 0x1d, 0x25];
const BC: &[u8] = &[0x55, 0x1d, 0x13];
const SKI: &[u8] = &[0x55, 0x1d, 0x0e];
const EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];

/// Subject attribute types: CN, O, OU, C, serialNumber, emailAddress, DC.
const NAME_TYPES: [&[u8]; 7] = [
    &[0x55, 0x04, 0x03],
    &[0x55, 0x04, 0x0a],
    &[0x55, 0x04, 0x0b],
    &[0x55, 0x04, 0x06],
    &[0x55, 0x04, 0x05],
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
    &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
];

/// The purposes cert-manager can name and their OIDs, written out here (not taken from the
/// code under test).
const PURPOSES: [(&[u8], ExtendedKeyUsage); 12] = [
    (&[0x55, 0x1d, 0x25, 0x00], ExtendedKeyUsage::Any),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
        ExtendedKeyUsage::ServerAuth,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
        ExtendedKeyUsage::ClientAuth,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03],
        ExtendedKeyUsage::CodeSigning,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04],
        ExtendedKeyUsage::EmailProtection,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x05],
        ExtendedKeyUsage::IpsecEndSystem,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x06],
        ExtendedKeyUsage::IpsecTunnel,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x07],
        ExtendedKeyUsage::IpsecUser,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08],
        ExtendedKeyUsage::Timestamping,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09],
        ExtendedKeyUsage::OcspSigning,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x03],
        ExtendedKeyUsage::MicrosoftSgc,
    ),
    (
        &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x04, 0x01],
        ExtendedKeyUsage::NetscapeSgc,
    ),
];

// ---------- keys ----------

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

struct Key {
    signer: Signer,
    spki: Vec<u8>,
    algorithm: Vec<u8>,
}

impl Key {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Ecdsa(key) => key
                .sign(&SystemRandom::new(), message)
                .expect("ECDSA signs")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }
}

fn keys() -> &'static [Key; 3] {
    static KEYS: OnceLock<[Key; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = SystemRandom::new();
        let ec_public_key = tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
        let ecdsa = |signing: &'static signature::EcdsaSigningAlgorithm, curve: &[u8], hash: u8| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &rng).expect("generate");
            let key = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref(), &rng).expect("load");
            let mut bits = vec![0];
            bits.extend_from_slice(key.public_key().as_ref());
            let spki = seq(&[
                seq(&[ec_public_key.clone(), tlv(0x06, curve)]),
                tlv(0x03, &bits),
            ]);
            let algorithm = seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, hash])]);
            Key {
                signer: Signer::Ecdsa(key),
                spki,
                algorithm,
            }
        };
        let p256 = ecdsa(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            2,
        );
        let p384 = ecdsa(
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            &[0x2b, 0x81, 0x04, 0x00, 0x22],
            3,
        );
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("load");
        let mut bits = vec![0];
        bits.extend_from_slice(ed.public_key().as_ref());
        let ed_algorithm = seq(&[tlv(0x06, &[0x2b, 0x65, 0x70])]);
        let ed25519 = Key {
            spki: seq(&[ed_algorithm.clone(), tlv(0x03, &bits)]),
            algorithm: ed_algorithm,
            signer: Signer::Ed25519(ed),
        };
        [p256, p384, ed25519]
    })
}

fn ca() -> &'static SigningCa {
    static CA: OnceLock<SigningCa> = OnceLock::new();
    CA.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        let pki = generate_pki(&PkiSpec::default(), now).expect("generate a CA");
        SigningCa::load(
            pki.intermediate.cert_pem.as_bytes(),
            pki.intermediate.key_pem.as_bytes(),
            Some(pki.root.cert_pem.as_bytes()),
            now,
        )
        .expect("load the CA")
    })
}

// ---------- building a request, and what it must read as ----------

/// What a request reads as: the comparison between readers, and the model of a well-built one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct View {
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
    sans: Vec<SubjectAltName>,
    key_usage: Option<u16>,
    extended_key_usage: Option<BTreeSet<ExtendedKeyUsage>>,
    basic_constraints_ca: Option<bool>,
}

/// The info's DER, and the view it must read as when every part is well-formed (`None` when
/// some part is odd and the reader may refuse it).
fn build(request: &Request, key: &Key) -> (Vec<u8>, Option<View>) {
    let mut well_formed = true;
    let mut view = View::default();

    let mut rdns = Vec::new();
    for rdn in &request.subject {
        if rdn.is_empty() {
            well_formed = false;
        }
        let pairs = rdn
            .iter()
            .map(|(kind, value)| {
                let value = match value {
                    NameValue::Utf8(text) => tlv(0x0c, text.as_bytes()),
                    NameValue::Printable(text) => tlv(0x13, text.as_bytes()),
                    NameValue::Ia5(text) => tlv(0x16, text.as_bytes()),
                    NameValue::Raw(tag, bytes) => {
                        well_formed = false;
                        tlv(*tag, bytes)
                    }
                };
                seq(&[
                    tlv(0x06, NAME_TYPES[usize::from(*kind) % NAME_TYPES.len()]),
                    value,
                ])
            })
            .collect();
        rdns.push(set_of(pairs, 0x31));
    }
    let subject = seq(&rdns);
    view.subject_der = subject.clone();
    view.spki_der = key.spki.clone();

    let mut extensions = Vec::new();
    let mut seen = BTreeSet::new();
    for extension in &request.extensions {
        let (id, value): (Vec<u8>, Vec<u8>) = match &extension.choice {
            ExtensionChoice::SubjectAltName(entries) => {
                let mut names = Vec::new();
                for entry in entries {
                    let ascii = |text: &String| text.is_ascii();
                    let (tag, content, read) = match entry {
                        SanEntry::Dns(t) => (
                            0x82,
                            t.as_bytes().to_vec(),
                            ascii(t).then(|| SubjectAltName::Dns(t.clone())),
                        ),
                        SanEntry::Email(t) => (
                            0x81,
                            t.as_bytes().to_vec(),
                            ascii(t).then(|| SubjectAltName::Email(t.clone())),
                        ),
                        SanEntry::Uri(t) => (
                            0x86,
                            t.as_bytes().to_vec(),
                            ascii(t).then(|| SubjectAltName::Uri(t.clone())),
                        ),
                        SanEntry::Ipv4(b) => {
                            (0x87, b.to_vec(), Some(SubjectAltName::Ip(IpAddr::from(*b))))
                        }
                        SanEntry::Ipv6(b) => {
                            (0x87, b.to_vec(), Some(SubjectAltName::Ip(IpAddr::from(*b))))
                        }
                        SanEntry::IpBytes(b) => (0x87, b.clone(), None),
                        SanEntry::Other(tag, b) => (*tag, b.clone(), None),
                    };
                    match read {
                        Some(name) => view.sans.push(name),
                        None => well_formed = false,
                    }
                    names.push(tlv(tag, &content));
                }
                (SAN.to_vec(), seq(&names))
            }
            ExtensionChoice::KeyUsage(bits) => {
                view.key_usage = Some(bits & 0x1ff);
                (KU.to_vec(), named_bits(*bits))
            }
            ExtensionChoice::KeyUsageRaw { unused, bytes } => {
                well_formed = false;
                let mut content = vec![*unused];
                content.extend_from_slice(bytes);
                (KU.to_vec(), tlv(0x03, &content))
            }
            ExtensionChoice::ExtendedKeyUsage(purposes) => {
                let mut set = BTreeSet::new();
                let oids = purposes
                    .iter()
                    .map(|purpose| match purpose {
                        Purpose::Known(i) => {
                            let (oid, usage) = PURPOSES[usize::from(*i) % PURPOSES.len()];
                            set.insert(usage);
                            tlv(0x06, oid)
                        }
                        Purpose::Oid(bytes) => {
                            well_formed = false;
                            tlv(0x06, bytes)
                        }
                    })
                    .collect::<Vec<_>>();
                view.extended_key_usage = Some(set);
                (EKU.to_vec(), seq(&oids))
            }
            ExtensionChoice::BasicConstraints { ca, path_len } => {
                let mut fields = Vec::new();
                if let Some(ca) = ca {
                    fields.push(tlv(0x01, &[if *ca { 0xff } else { 0x00 }]));
                }
                if let Some(n) = path_len {
                    fields.push(uint(*n));
                }
                view.basic_constraints_ca = Some(ca.unwrap_or(false));
                (BC.to_vec(), seq(&fields))
            }
            ExtensionChoice::Raw { oid, value } => {
                let id = match oid {
                    OidChoice::SubjectAltName => SAN.to_vec(),
                    OidChoice::KeyUsage => KU.to_vec(),
                    OidChoice::ExtendedKeyUsage => EKU.to_vec(),
                    OidChoice::BasicConstraints => BC.to_vec(),
                    OidChoice::SubjectKeyIdentifier => SKI.to_vec(),
                    OidChoice::Private(n) => private_oid(*n),
                };
                if [SAN, KU, EKU, BC].contains(&id.as_slice()) {
                    well_formed = false;
                }
                (id, value.clone())
            }
        };
        if !seen.insert(id.clone()) {
            // A repeated extension is refused.
            well_formed = false;
        }
        let mut fields = vec![tlv(0x06, &id)];
        if let Some(critical) = extension.critical {
            fields.push(tlv(0x01, &[if critical { 0xff } else { 0x00 }]));
        }
        fields.push(tlv(0x04, &value));
        extensions.push(seq(&fields));
    }

    let mut attributes: Vec<Vec<u8>> = request
        .attributes
        .iter()
        .map(|(arc, text)| {
            seq(&[
                tlv(0x06, &private_oid(*arc)),
                set_of(vec![tlv(0x0c, text.as_bytes())], 0x31),
            ])
        })
        .collect();
    if request.extension_request {
        attributes.push(seq(&[
            tlv(0x06, EXTENSION_REQUEST),
            set_of(vec![seq(&extensions)], 0x31),
        ]));
    } else if !extensions.is_empty() {
        // Extensions with no extensionRequest to carry them: the request reads without them.
        view.sans.clear();
        view.key_usage = None;
        view.extended_key_usage = None;
        view.basic_constraints_ca = None;
    }
    let sorted: BTreeSet<&Vec<u8>> = attributes.iter().collect();
    if sorted.len() != attributes.len() {
        // Two identical attributes: a SET OF may repeat them, but keep the model simple.
        well_formed = false;
    }
    let info = seq(&[
        tlv(0x02, &[0]),
        subject,
        key.spki.clone(),
        set_of(attributes, 0xa0),
    ]);
    (info, well_formed.then_some(view))
}

fn signed(info: &[u8], key: &Key) -> Vec<u8> {
    let mut bits = vec![0];
    bits.extend_from_slice(&key.sign(info));
    seq(&[info.to_vec(), key.algorithm.clone(), tlv(0x03, &bits)])
}

fn edit(info: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits {
        if info.is_empty() {
            return;
        }
        let at = usize::from(edit.at) % info.len();
        match edit.kind {
            EditKind::Set => info[at] = edit.byte,
            EditKind::Xor => info[at] ^= edit.byte,
            EditKind::Insert => info.insert(at, edit.byte),
            EditKind::Remove => {
                info.remove(at);
            }
            EditKind::Truncate => info.truncate(at),
        }
    }
}

// ---------- the oracle ----------

fn purpose_of(oid: &[u8]) -> Option<ExtendedKeyUsage> {
    PURPOSES
        .iter()
        .find(|(id, _)| *id == oid)
        .map(|(_, usage)| *usage)
}

fn general_names(names: &[GeneralName<'_>]) -> Option<Vec<SubjectAltName>> {
    names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(n) => Some(SubjectAltName::Dns(n.to_string())),
            GeneralName::RFC822Name(n) => Some(SubjectAltName::Email(n.to_string())),
            GeneralName::URI(n) => Some(SubjectAltName::Uri(n.to_string())),
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| SubjectAltName::Ip(IpAddr::from(a))),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| SubjectAltName::Ip(IpAddr::from(a))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Reads the four extensions the signer reads into `view`; `None` when one is refused.
fn read_extensions<'a>(
    extensions: impl Iterator<Item = &'a X509Extension<'a>>,
    view: &mut View,
) -> Option<()> {
    for extension in extensions {
        let read_by_the_signer = [SAN, KU, EKU, BC].contains(&extension.oid.as_bytes());
        match extension.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                view.sans.extend(general_names(&san.general_names)?)
            }
            ParsedExtension::KeyUsage(ku) => view.key_usage = Some(ku.flags & 0x1ff),
            ParsedExtension::ExtendedKeyUsage(eku) => {
                let mut set = BTreeSet::new();
                for (on, purpose) in [
                    (eku.any, ExtendedKeyUsage::Any),
                    (eku.server_auth, ExtendedKeyUsage::ServerAuth),
                    (eku.client_auth, ExtendedKeyUsage::ClientAuth),
                    (eku.code_signing, ExtendedKeyUsage::CodeSigning),
                    (eku.email_protection, ExtendedKeyUsage::EmailProtection),
                    (eku.time_stamping, ExtendedKeyUsage::Timestamping),
                    (eku.ocsp_signing, ExtendedKeyUsage::OcspSigning),
                ] {
                    if on {
                        set.insert(purpose);
                    }
                }
                for other in &eku.other {
                    set.insert(purpose_of(other.as_bytes())?);
                }
                view.extended_key_usage = Some(set);
            }
            ParsedExtension::BasicConstraints(bc) => view.basic_constraints_ca = Some(bc.ca),
            ParsedExtension::ParseError { .. } if read_by_the_signer => return None,
            _ => {}
        }
    }
    Some(())
}

/// The request as x509-parser (with its ring-backed signature check) reads it.
fn oracle(der: &[u8]) -> Option<View> {
    let (rest, csr) = X509CertificationRequest::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    csr.verify_signature().ok()?;
    let info = &csr.certification_request_info;
    let mut view = View {
        subject_der: info.subject.as_raw().to_vec(),
        spki_der: info.subject_pki.raw.to_vec(),
        ..View::default()
    };
    let requested =
        info.iter_attributes()
            .find_map(|attribute| match attribute.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(request) => Some(&request.extensions),
                _ => None,
            });
    read_extensions(requested.into_iter().flatten(), &mut view)?;
    Some(view)
}

// ---------- the checks ----------

fn check(der: &[u8], model: Option<&View>, terms: &Terms) {
    let ours = read_csr(der);
    if let Some(model) = model {
        let read = ours
            .as_ref()
            .unwrap_or_else(|e| panic!("a well-built request is refused: {e}"));
        let view = View {
            subject_der: read.subject_der.clone(),
            spki_der: read.spki_der.clone(),
            sans: read.sans.clone(),
            key_usage: read.key_usage.map(|k| k.0),
            extended_key_usage: read.extended_key_usage.clone(),
            basic_constraints_ca: read.basic_constraints_ca,
        };
        assert_eq!(
            &view, model,
            "a well-built request is read otherwise than built"
        );
    }
    let Ok(csr) = ours else {
        return;
    };
    let view = View {
        subject_der: csr.subject_der.clone(),
        spki_der: csr.spki_der.clone(),
        sans: csr.sans.clone(),
        key_usage: csr.key_usage.map(|k| k.0),
        extended_key_usage: csr.extended_key_usage.clone(),
        basic_constraints_ca: csr.basic_constraints_ca,
    };
    assert_eq!(
        Some(&view),
        oracle(der).as_ref(),
        "x509-parser reads an accepted request otherwise"
    );

    // The sign path, with usages matching the request.
    let mut usages: Vec<String> = Vec::new();
    if let Some(ku) = csr.key_usage {
        usages.extend(
            KeyUsage::ALL
                .iter()
                .filter(|u| ku.contains(**u))
                .map(|u| u.name().to_string()),
        );
    }
    if let Some(eku) = &csr.extended_key_usage {
        usages.extend(eku.iter().map(|e| e.name().to_string()));
    }
    let is_ca = csr.basic_constraints_ca.unwrap_or(false);
    let policy = SigningPolicy {
        allow_ca: terms.allow_ca,
        ..SigningPolicy::default()
    };
    let pem = encode_pem("CERTIFICATE REQUEST", der);
    let duration = Some(Duration::hours(1 + i64::from(terms.hours % 2000)));
    let request = SignRequest {
        csr_pem: pem.as_bytes(),
        duration,
        is_ca,
        usages: &usages,
    };
    match sign(ca(), &request, &policy, OffsetDateTime::now_utc()) {
        Ok(issued) => {
            let (_, leaf) = X509Certificate::from_der(&issued.leaf_der).expect("the leaf parses");
            assert_eq!(
                leaf.subject().as_raw(),
                csr.subject_der.as_slice(),
                "leaf subject"
            );
            assert_eq!(leaf.public_key().raw, csr.spki_der.as_slice(), "leaf key");
            let mut leaf_view = View::default();
            read_extensions(leaf.extensions().iter(), &mut leaf_view)
                .expect("the leaf's extensions parse");
            assert_eq!(leaf_view.sans, csr.sans, "leaf names");
            assert_eq!(
                leaf_view.basic_constraints_ca,
                Some(is_ca),
                "leaf basic constraints"
            );
            // An empty KeyUsage or ExtendedKeyUsage is left out of the leaf (RFC 5280: KeyUsage
            // has at least one bit; ExtendedKeyUsage at least one purpose).
            if let Some(ku) = csr.key_usage {
                assert_eq!(leaf_view.key_usage.unwrap_or(0), ku.0, "leaf key usage");
            }
            if let Some(eku) = &csr.extended_key_usage {
                assert_eq!(
                    leaf_view.extended_key_usage.unwrap_or_default(),
                    *eku,
                    "leaf extended key usage"
                );
            }
        }
        Err(Error::UsageMismatch { .. } | Error::IsCaMismatch { .. } | Error::CaNotAllowed) => {}
        Err(other) => {
            panic!("the sign path refuses an accepted request for another reason: {other}")
        }
    }
}

fuzz_target!(|input: Input| {
    let (request, edits, terms) = match &input {
        Input::Built(request, terms) => (request, None, terms),
        Input::Edited(request, edits, terms) => (request, Some(edits), terms),
    };
    let key = &keys()[match request.key {
        KeyChoice::P256 => 0,
        KeyChoice::P384 => 1,
        KeyChoice::Ed25519 => 2,
    }];
    let (mut info, model) = build(request, key);
    let model = match edits {
        Some(edits) if !edits.is_empty() => {
            edit(&mut info, edits);
            None
        }
        _ => model,
    };
    check(&signed(&info, key), model.as_ref(), terms);
});
