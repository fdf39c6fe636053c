//! Tests of the CSR reader (`csr::read_csr`) against x509-parser as an independent oracle, plus
//! the shapes real tools emit (openssl fixtures) and hand-broken encodings. Requests whose info is
//! mutated and signed again (so that the extension readers are reached) are in
//! `tests_csr_resigned`, which shares this module's oracle.

use super::csr::{SubjectAltName, csr_der_from_pem, read_csr};
use super::der::{DerWriter, oid};
use super::keys::KeyType;
use super::test_support::{CsrSpec, fixture, mk_csr};
use super::usages::{ExtendedKeyUsage, KeyUsageSet};
use crate::Error;
use crate::generate::GeneratedKeyType;
use proptest::prelude::*;
use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use std::collections::BTreeSet;
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;

/// What a CSR asks for, as compared between the two readers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct View {
    pub(super) subject_der: Vec<u8>,
    spki_der: Vec<u8>,
    public_key: Vec<u8>,
    sans: Vec<SubjectAltName>,
    key_usage: Option<u16>,
    extended_key_usage: Option<BTreeSet<ExtendedKeyUsage>>,
    basic_constraints_ca: Option<bool>,
}

pub(super) fn ours(der: &[u8]) -> Result<View, Error> {
    read_csr(der).map(|csr| View {
        subject_der: csr.subject_der,
        spki_der: csr.spki_der,
        public_key: csr.public_key,
        sans: csr.sans,
        key_usage: csr.key_usage.map(|k| k.0),
        extended_key_usage: csr.extended_key_usage,
        basic_constraints_ca: csr.basic_constraints_ca,
    })
}

/// The same view read with x509-parser (and its ring-backed signature check), or `None` when it
/// refuses the request, its names, or one of the four extensions the signer reads (SAN, KU, EKU,
/// BasicConstraints). An extension x509-parser knows but the signer never reads (say a subject
/// key identifier) may fail x509-parser's parse without a verdict: the signer ignores it and
/// never copies it.
pub(super) fn oracle(der: &[u8]) -> Option<View> {
    let (rest, csr) = X509CertificationRequest::from_der(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    csr.verify_signature().ok()?;
    let info = &csr.certification_request_info;
    let mut view = View {
        subject_der: info.subject.as_raw().to_vec(),
        spki_der: info.subject_pki.raw.to_vec(),
        public_key: info.subject_pki.subject_public_key.data.to_vec(),
        sans: Vec::new(),
        key_usage: None,
        extended_key_usage: None,
        basic_constraints_ca: None,
    };
    let requested =
        info.iter_attributes()
            .find_map(|attribute| match attribute.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(request) => Some(&request.extensions),
                _ => None,
            });
    for extension in requested.into_iter().flatten() {
        let read_by_the_signer = [
            &OID_X509_EXT_SUBJECT_ALT_NAME,
            &OID_X509_EXT_KEY_USAGE,
            &OID_X509_EXT_EXTENDED_KEY_USAGE,
            &OID_X509_EXT_BASIC_CONSTRAINTS,
        ]
        .contains(&&extension.oid);
        match extension.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    view.sans.push(match name {
                        GeneralName::DNSName(n) => SubjectAltName::Dns(n.to_string()),
                        GeneralName::RFC822Name(n) => SubjectAltName::Email(n.to_string()),
                        GeneralName::URI(n) => SubjectAltName::Uri(n.to_string()),
                        GeneralName::IPAddress(b) => SubjectAltName::Ip(match b.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*b).ok()?),
                            16 => IpAddr::from(<[u8; 16]>::try_from(*b).ok()?),
                            _ => return None,
                        }),
                        _ => return None,
                    });
                }
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
                    set.insert(ExtendedKeyUsage::from_oid_der(other.as_bytes())?);
                }
                view.extended_key_usage = Some(set);
            }
            ParsedExtension::BasicConstraints(bc) => view.basic_constraints_ca = Some(bc.ca),
            ParsedExtension::ParseError { .. } if read_by_the_signer => return None,
            _ => {}
        }
    }
    Some(view)
}

pub(super) fn der_of(pem: &str) -> Vec<u8> {
    csr_der_from_pem(pem.as_bytes()).unwrap()
}

fn fixture_der(name: &str) -> Vec<u8> {
    csr_der_from_pem(&fixture(name)).unwrap()
}

/// The CSR with its outer signature AlgorithmIdentifier replaced by `algorithm` (DER).
fn with_signature_algorithm(der: &[u8], algorithm: &[u8]) -> Vec<u8> {
    let (info, _, signature) = split(der);
    let mut w = DerWriter::default();
    w.sequence(|w| {
        w.raw(info);
        w.raw(algorithm);
        w.raw(signature);
    });
    w.into_bytes()
}

/// The three elements of a CertificationRequest: info, algorithm, signature (each whole).
pub(super) fn split(der: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut top = super::der::DerReader::new(der);
    let request = top.any("request").unwrap();
    let mut fields = request.reader();
    let info = fields.any("info").unwrap().raw;
    let algorithm = fields.any("algorithm").unwrap().raw;
    let signature = fields.any("signature").unwrap().raw;
    (info, algorithm, signature)
}

fn algorithm_identifier(oid_der: &[u8]) -> Vec<u8> {
    let mut w = DerWriter::default();
    w.sequence(|w| w.oid(oid_der));
    w.into_bytes()
}

#[test]
fn every_fixture_reads_as_x509_parser_reads_it() {
    for name in [
        "cert-manager-shaped.csr",
        "extra-extensions.csr",
        "rsa2048.csr",
        "rsa2048-pss.csr",
        "ed25519.csr",
        "p384-names.csr",
    ] {
        let der = fixture_der(name);
        let expected = oracle(&der).unwrap_or_else(|| panic!("{name}: the oracle refuses it"));
        assert_eq!(ours(&der).unwrap(), expected, "{name}");
    }
}

#[test]
fn reads_every_name_kind_and_usage_openssl_writes() {
    let csr = read_csr(&fixture_der("p384-names.csr")).unwrap();
    assert_eq!(csr.key_type, KeyType::EcdsaP384);
    assert_eq!(
        csr.sans,
        vec![
            SubjectAltName::Ip("10.0.0.1".parse::<IpAddr>().unwrap()),
            SubjectAltName::Ip("::1".parse::<IpAddr>().unwrap()),
            SubjectAltName::Email("a@example.com".into()),
            SubjectAltName::Uri("spiffe://x/y".into()),
        ]
    );
    assert_eq!(csr.key_usage, Some(KeyUsageSet(1)));
    assert_eq!(
        csr.extended_key_usage,
        Some(BTreeSet::from([
            ExtendedKeyUsage::ClientAuth,
            ExtendedKeyUsage::ServerAuth
        ]))
    );
    assert_eq!(csr.basic_constraints_ca, Some(false));
    assert_eq!(csr.subject_text(), "CN=p384, O=Example");
}

#[test]
fn accepts_rsa_pss_ed25519_and_sha384_over_p256() {
    assert!(matches!(
        read_csr(&fixture_der("rsa2048-pss.csr")).unwrap().key_type,
        KeyType::Rsa(2048)
    ));
    assert_eq!(
        read_csr(&fixture_der("ed25519.csr")).unwrap().key_type,
        KeyType::Ed25519
    );
    // ecdsa-with-SHA384 over a P-256 key is fine; its registeredID name is not.
    match read_csr(&fixture_der("rid-san-p256-sha384.csr")) {
        Err(Error::CsrSanUnsupported { kind }) => assert_eq!(kind, "registeredID"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_signature_algorithm_that_does_not_fit_the_key_is_named() {
    let (csr, _) = mk_csr(&CsrSpec::default());
    let der = with_signature_algorithm(&der_of(&csr), &algorithm_identifier(oid::SHA256_WITH_RSA));
    let err = read_csr(&der).unwrap_err();
    assert!(matches!(err, Error::CsrSignatureInvalid { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("sha256WithRSAEncryption") && text.contains("ECDSA P-256"),
        "{text}"
    );
    let unknown = with_signature_algorithm(&der_of(&csr), &algorithm_identifier(&[0x2a, 0x03]));
    let text = read_csr(&unknown).unwrap_err().to_string();
    assert!(text.contains("algorithm 1.2.3"), "{text}");
}

#[test]
fn pss_over_sha1_is_refused_in_words() {
    let der = fixture_der("rsa2048-pss.csr");
    // RSASSA-PSS with empty parameters means SHA-1.
    let mut w = DerWriter::default();
    w.sequence(|w| {
        w.oid(oid::RSASSA_PSS);
        w.sequence(|_| {});
    });
    let err = read_csr(&with_signature_algorithm(&der, &w.into_bytes())).unwrap_err();
    assert!(
        err.to_string().contains("RSA-PSS over a hash other than"),
        "{err}"
    );
}

#[test]
fn trailing_bytes_wrong_versions_and_ber_lengths_are_refused() {
    let (csr, _) = mk_csr(&CsrSpec::default());
    let der = der_of(&csr);

    let mut trailing = der.clone();
    trailing.push(0);
    let err = read_csr(&trailing).unwrap_err();
    assert!(matches!(err, Error::CsrInvalid { .. }), "{err:?}");
    assert!(
        err.to_string().contains("1 unexpected trailing bytes"),
        "{err}"
    );

    // An indefinite length on the outer SEQUENCE (BER, not DER).
    let header = if der[1] < 0x80 {
        2
    } else {
        2 + usize::from(der[1] & 0x7f)
    };
    let mut indefinite = vec![0x30, 0x80];
    indefinite.extend_from_slice(&der[header..]);
    let err = read_csr(&indefinite).unwrap_err();
    assert!(err.to_string().contains("indefinite length"), "{err}");

    // A long-form length for a short element.
    let err = read_csr(&[0x30, 0x81, 0x01, 0x00]).unwrap_err();
    assert!(err.to_string().contains("non-minimal length"), "{err}");

    // Version 2 inside the info (the signature then also fails, but the structure is read first).
    let (info, algorithm, signature) = split(&der);
    let mut bumped = info.to_vec();
    let at = bumped
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x00])
        .unwrap();
    bumped[at + 2] = 1;
    let mut w = DerWriter::default();
    w.sequence(|w| {
        w.raw(&bumped);
        w.raw(algorithm);
        w.raw(signature);
    });
    let err = read_csr(&w.into_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("the version is not v1 (0)"),
        "{err}"
    );

    for empty in [&[][..], &[0x30, 0x00], &[0x30]] {
        assert!(matches!(read_csr(empty), Err(Error::CsrInvalid { .. })));
    }
}

#[test]
fn ca_true_is_read_as_true() {
    let (csr, _) = mk_csr(&CsrSpec {
        is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
        ..CsrSpec::default()
    });
    assert_eq!(
        read_csr(&der_of(&csr)).unwrap().basic_constraints_ca,
        Some(true)
    );
}

#[test]
fn reader_errors_are_invalid_csrs_and_say_which_part() {
    let err = read_csr(&[0x02, 0x01, 0x00]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the certificate signing request does not parse as PKCS#10: the request has tag 0x02 where 0x30 was expected"
    );
}

// ---------- properties ----------

fn san_strategy() -> impl Strategy<Value = SanType> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}"
            .prop_map(|d| SanType::DnsName(d.try_into().unwrap())),
        "[a-z]{1,8}@[a-z]{1,8}\\.example".prop_map(|e| SanType::Rfc822Name(e.try_into().unwrap())),
        "spiffe://[a-z]{1,8}\\.local/relay/cluster/[a-z0-9-]{1,20}"
            .prop_map(|u| SanType::URI(u.try_into().unwrap())),
        any::<[u8; 4]>().prop_map(|b| SanType::IpAddress(IpAddr::from(b))),
        any::<[u8; 16]>().prop_map(|b| SanType::IpAddress(IpAddr::from(b))),
    ]
}

fn key_usage_strategy() -> impl Strategy<Value = Vec<KeyUsagePurpose>> {
    proptest::sample::subsequence(
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::DataEncipherment,
            KeyUsagePurpose::KeyAgreement,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::EncipherOnly,
            KeyUsagePurpose::DecipherOnly,
        ],
        0..=9,
    )
}

fn extended_strategy() -> impl Strategy<Value = Vec<ExtendedKeyUsagePurpose>> {
    proptest::sample::subsequence(
        vec![
            ExtendedKeyUsagePurpose::Any,
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::CodeSigning,
            ExtendedKeyUsagePurpose::EmailProtection,
            ExtendedKeyUsagePurpose::TimeStamping,
            ExtendedKeyUsagePurpose::OcspSigning,
        ],
        0..=7,
    )
}

pub(super) fn spec_strategy() -> impl Strategy<Value = CsrSpec> {
    (
        prop_oneof![
            Just(GeneratedKeyType::P256),
            Just(GeneratedKeyType::P384),
            Just(GeneratedKeyType::Ed25519),
        ],
        proptest::option::of("[A-Za-z0-9 .-]{1,30}"),
        proptest::collection::vec(san_strategy(), 0..6),
        key_usage_strategy(),
        extended_strategy(),
        prop_oneof![
            Just(IsCa::NoCa),
            Just(IsCa::ExplicitNoCa),
            Just(IsCa::Ca(BasicConstraints::Unconstrained)),
            (0u8..5).prop_map(|n| IsCa::Ca(BasicConstraints::Constrained(n))),
        ],
    )
        .prop_map(
            |(key_type, common_name, sans, key_usages, extended, is_ca)| CsrSpec {
                key_type,
                common_name,
                sans,
                key_usages,
                extended,
                is_ca,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any CSR rcgen writes is read exactly as x509-parser reads it.
    #[test]
    fn random_requests_read_as_the_oracle_reads_them(spec in spec_strategy()) {
        let (pem, _) = mk_csr(&spec);
        let der = der_of(&pem);
        let expected = oracle(&der);
        prop_assert!(expected.is_some(), "the oracle refuses a valid CSR");
        prop_assert_eq!(ours(&der).ok(), expected);
    }

    /// Damaged CSRs never panic the reader, and whatever it still accepts the oracle accepts
    /// with the same content. Nearly every edit here breaks the self-signature, so both readers
    /// refuse before the extension readers: this covers framing and the signature check;
    /// `tests_csr_resigned` signs its mutations again to reach the rest.
    #[test]
    fn damaged_requests_never_panic_and_never_read_differently(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let base = match which {
            0 => fixture_der("cert-manager-shaped.csr"),
            1 => fixture_der("p384-names.csr"),
            2 => fixture_der("ed25519.csr"),
            _ => fixture_der("extra-extensions.csr"),
        };
        let mut der = base;
        for (index, byte, kind) in edits {
            if der.is_empty() {
                break;
            }
            let at = index.index(der.len());
            match kind {
                0 => der[at] = byte,
                1 => der.truncate(at),
                _ => der.insert(at, byte),
            }
        }
        if let Ok(view) = ours(&der) {
            prop_assert_eq!(Some(view), oracle(&der));
        }
    }

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = read_csr(&bytes);
    }
}
