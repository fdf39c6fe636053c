//! Unit tests of the signing rules and CA checks: one test per rule and per error, plus
//! property tests that every issued certificate verifies with an independent verifier (webpki).

use super::generate::GeneratedKeyType;
use super::test_support::*;
use super::*;
use crate::Error;
use ::time::Duration;
use rcgen::{BasicConstraints, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use x509_parser::prelude::*;

fn sign_with(
    ca: &SigningCa,
    csr: &str,
    usages: &[&str],
    is_ca: bool,
    duration: Option<&str>,
    policy: &SigningPolicy,
) -> Result<IssuedCertificate, Error> {
    let usages: Vec<String> = usages.iter().map(|s| s.to_string()).collect();
    sign(
        ca,
        &SignRequest {
            csr_pem: csr.as_bytes(),
            duration: duration.map(dur),
            is_ca,
            usages: &usages,
        },
        policy,
        NOW,
    )
}

fn sign_default(ca: &SigningCa, csr: &str) -> IssuedCertificate {
    sign_with(ca, csr, &[], false, None, &SigningPolicy::default()).unwrap()
}

fn parse_many(text: &str) -> Result<Vec<super::pem::PemBlock>, super::pem::PemError> {
    super::pem::parse_pem(text.as_bytes())
}

fn parse_one(text: &str) -> super::pem::PemBlock {
    super::pem::parse_pem(text.as_bytes()).unwrap().remove(0)
}

fn leaf(issued: &IssuedCertificate) -> X509Certificate<'_> {
    X509Certificate::from_der(&issued.leaf_der).unwrap().1
}

// ---------- CSR signature and key types ----------

#[test]
fn accepts_every_supported_csr_key_type() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    for key_type in [
        GeneratedKeyType::P256,
        GeneratedKeyType::P384,
        GeneratedKeyType::Ed25519,
        GeneratedKeyType::Rsa2048,
    ] {
        let (csr, _) = mk_csr(&CsrSpec {
            key_type,
            ..CsrSpec::default()
        });
        let issued = sign_default(&ca, &csr);
        assert_eq!(
            keys::classify_public_key(leaf(&issued).public_key()).unwrap(),
            key_type.key_type()
        );
    }
    let rsa = String::from_utf8(fixture("rsa2048.csr")).unwrap();
    sign_default(&ca, &rsa);
}

#[test]
fn refuses_unsupported_keys_naming_the_key_seen() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    for (file, seen) in [
        ("rsa1024.csr", "RSA 1024-bit"),
        ("p521.csr", "ECDSA P-521"),
        ("secp256k1.csr", "ECDSA secp256k1"),
        ("ed448.csr", "Ed448"),
        ("dsa.csr", "DSA"),
    ] {
        let csr = String::from_utf8(fixture(file)).unwrap();
        match sign_with(&ca, &csr, &[], false, None, &SigningPolicy::default()) {
            Err(Error::CsrKeyUnsupported { seen: got }) => assert_eq!(got, seen, "{file}"),
            other => panic!("{file}: expected CsrKeyUnsupported, got {other:?}"),
        }
    }
}

#[test]
fn refuses_a_tampered_csr() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let mut der = csr::csr_der_from_pem(csr.as_bytes()).unwrap();
    // Flip a byte inside the common name "cluster-a".
    let at = der.windows(9).position(|w| w == b"cluster-a").unwrap();
    der[at] = b'k';
    let tampered = super::pem::encode_pem("CERTIFICATE REQUEST", &der);
    let err = sign_with(&ca, &tampered, &[], false, None, &SigningPolicy::default()).unwrap_err();
    assert!(matches!(err, Error::CsrSignatureInvalid { .. }), "{err:?}");
    assert!(err.to_string().contains("does not verify"));
}

#[test]
fn refuses_sha1_signed_csrs() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let csr = String::from_utf8(fixture("rsa2048-sha1.csr")).unwrap();
    let err = sign_with(&ca, &csr, &[], false, None, &SigningPolicy::default()).unwrap_err();
    assert!(err.to_string().contains("SHA-1"), "{err}");
}

#[test]
fn refuses_garbage_empty_and_non_csr_pem() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    for input in [
        "",
        "   \n",
        "not pem at all",
        "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        let err = sign_with(&ca, input, &[], false, None, &SigningPolicy::default()).unwrap_err();
        assert!(matches!(err, Error::CsrNotPem { .. }), "{input:?}: {err:?}");
    }
    let not_csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    let err = sign_with(&ca, not_csr, &[], false, None, &SigningPolicy::default()).unwrap_err();
    assert!(matches!(err, Error::CsrInvalid { .. }), "{err:?}");
    let cert = mk_pki(GeneratedKeyType::P256).root_pem;
    let err = sign_with(&ca, &cert, &[], false, None, &SigningPolicy::default()).unwrap_err();
    assert!(
        err.to_string().contains("no CERTIFICATE REQUEST block"),
        "{err}"
    );
}

#[test]
fn refuses_san_kinds_we_do_not_issue() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    for (file, kind) in [
        ("othername-san.csr", "otherName"),
        ("dirname-san.csr", "directoryName"),
    ] {
        let csr = String::from_utf8(fixture(file)).unwrap();
        match sign_with(&ca, &csr, &[], false, None, &SigningPolicy::default()) {
            Err(Error::CsrSanUnsupported { kind: got }) => assert_eq!(got, kind),
            other => panic!("{file}: {other:?}"),
        }
    }
}

// ---------- usages and isCA ----------

#[test]
fn csr_key_usages_must_match_requested_usages() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec {
        key_usages: vec![KeyUsagePurpose::DigitalSignature],
        ..CsrSpec::default()
    });
    // Default usages are digital signature + key encipherment: mismatch.
    let err = sign_with(&ca, &csr, &[], false, None, &SigningPolicy::default()).unwrap_err();
    match &err {
        Error::UsageMismatch {
            what,
            in_csr,
            requested,
        } => {
            assert_eq!(*what, "key usages");
            assert_eq!(in_csr, "digital signature");
            assert_eq!(requested, "digital signature, key encipherment");
        }
        other => panic!("{other:?}"),
    }
    // "signing" is cert-manager's alias for digital signature.
    sign_with(
        &ca,
        &csr,
        &["signing"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap();
    sign_with(
        &ca,
        &csr,
        &["digital signature"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap();
}

#[test]
fn csr_extended_key_usages_must_match_requested_usages() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec {
        key_usages: vec![KeyUsagePurpose::DigitalSignature],
        extended: vec![ExtendedKeyUsagePurpose::ClientAuth],
        ..CsrSpec::default()
    });
    let err = sign_with(
        &ca,
        &csr,
        &["digital signature", "server auth"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::UsageMismatch {
                what: "extended key usages",
                ..
            }
        ),
        "{err:?}"
    );
    let issued = sign_with(
        &ca,
        &csr,
        &["client auth", "digital signature"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap();
    let cert = leaf(&issued);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
}

#[test]
fn csrs_without_usage_extensions_take_the_requested_usages() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_with(
        &ca,
        &csr,
        &["client auth", "digital signature", "key encipherment"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap();
    let cert = leaf(&issued);
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(
        ku.value.digital_signature() && ku.value.key_encipherment() && !ku.value.key_cert_sign()
    );
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
}

#[test]
fn default_usages_are_digital_signature_and_key_encipherment_without_eku() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let cert_issued = sign_default(&ca, &csr);
    let cert = leaf(&cert_issued);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
    assert!(cert.extended_key_usage().unwrap().is_none());
}

#[test]
fn unknown_usage_names_are_refused() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let err = sign_with(
        &ca,
        &csr,
        &["client-auth"],
        false,
        None,
        &SigningPolicy::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UsageUnknown { .. }));
}

#[test]
fn basic_constraints_in_the_csr_must_agree_with_is_ca() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let allow = SigningPolicy {
        allow_ca: true,
        ..SigningPolicy::default()
    };
    let (ca_csr, _) = mk_csr(&CsrSpec {
        is_ca: IsCa::Ca(BasicConstraints::Unconstrained),
        ..CsrSpec::default()
    });
    let err = sign_with(&ca, &ca_csr, &[], false, None, &allow).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IsCaMismatch {
                in_csr: true,
                requested: false
            }
        ),
        "{err:?}"
    );
    let (leaf_csr, _) = mk_csr(&CsrSpec {
        is_ca: IsCa::ExplicitNoCa,
        ..CsrSpec::default()
    });
    let err = sign_with(&ca, &leaf_csr, &[], true, None, &allow).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IsCaMismatch {
                in_csr: false,
                requested: true
            }
        ),
        "{err:?}"
    );
    // CA:FALSE in the CSR and isCA false agree.
    sign_with(&ca, &leaf_csr, &[], false, None, &SigningPolicy::default()).unwrap();
}

#[test]
fn is_ca_is_refused_unless_the_policy_allows_it() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let err = sign_with(&ca, &csr, &[], true, None, &SigningPolicy::default()).unwrap_err();
    assert!(matches!(err, Error::CaNotAllowed));
    assert!(err.to_string().contains("allowCA"));
    let allow = SigningPolicy {
        allow_ca: true,
        ..SigningPolicy::default()
    };
    let issued = sign_with(&ca, &csr, &[], true, None, &allow).unwrap();
    let cert = leaf(&issued);
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert!(cert.key_usage().unwrap().unwrap().value.key_cert_sign());
}

// ---------- names and extensions ----------

#[test]
fn subject_and_every_san_kind_come_from_the_csr() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let sans = vec![
        SanType::DnsName("agent.example.com".try_into().unwrap()),
        SanType::IpAddress("10.0.0.7".parse().unwrap()),
        SanType::IpAddress("2001:db8::1".parse().unwrap()),
        SanType::URI("spiffe://relay.local/relay/cluster/a".try_into().unwrap()),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
    ];
    let (csr, _) = mk_csr(&CsrSpec {
        sans,
        ..CsrSpec::default()
    });
    let issued = sign_default(&ca, &csr);
    let cert = leaf(&issued);
    assert_eq!(cert.subject().to_string(), "CN=cluster-a");
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(!san.critical, "SAN is not critical when the subject is set");
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().any(|n| n.contains("agent.example.com")));
    assert!(
        names
            .iter()
            .any(|n| n.contains("spiffe://relay.local/relay/cluster/a"))
    );
    assert!(names.iter().any(|n| n.contains("ops@example.com")));
}

#[test]
fn san_is_critical_when_the_subject_is_empty() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec {
        common_name: None,
        ..CsrSpec::default()
    });
    let issued = sign_default(&ca, &csr);
    let cert = leaf(&issued);
    assert!(cert.subject_alternative_name().unwrap().unwrap().critical);
}

#[test]
fn no_other_csr_extension_is_copied() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let csr = String::from_utf8(fixture("extra-extensions.csr")).unwrap();
    let issued = sign_default(&ca, &csr);
    let cert = leaf(&issued);
    let oids: Vec<String> = cert
        .extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect();
    assert_eq!(
        oids,
        vec![
            "2.5.29.19",
            "2.5.29.15",
            "2.5.29.14",
            "2.5.29.35",
            "2.5.29.17"
        ],
        "only BasicConstraints, KeyUsage, SKI, AKI and SAN"
    );
}

#[test]
fn leaf_has_critical_ca_false_ski_aki_and_a_random_serial() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = pki.ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let first = sign_default(&ca, &csr);
    let second = sign_default(&ca, &csr);
    let cert = leaf(&first);
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    let ski = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    assert_eq!(
        ski.unwrap(),
        keys::key_identifier(&cert.public_key().subject_public_key.data)
    );
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert_eq!(aki.unwrap(), ca.key_identifier, "AKI is the CA's SKI");
    let serial = cert.raw_serial();
    assert!(serial[0] & 0x80 == 0, "positive");
    assert!(serial.len() * 8 >= 64, "at least 64 bits");
    assert_ne!(first.serial, second.serial);
    assert_eq!(cert.version(), X509Version::V3);
}

// ---------- validity ----------

#[test]
fn not_before_is_now_and_not_after_is_now_plus_duration() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_with(
        &ca,
        &csr,
        &[],
        false,
        Some("8760h"),
        &SigningPolicy::default(),
    )
    .unwrap();
    assert_eq!(issued.not_before, NOW);
    assert_eq!(issued.not_after, NOW + Duration::hours(8760));
    assert!(issued.clamped.is_none());
    let cert = leaf(&issued);
    assert_eq!(cert.validity().not_before.timestamp(), NOW.unix_timestamp());
    assert_eq!(
        cert.validity().not_after.timestamp(),
        (NOW + Duration::hours(8760)).unix_timestamp()
    );
}

#[test]
fn absent_duration_means_cert_manager_default_of_2160h() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    assert_eq!(issued.not_after - issued.not_before, Duration::hours(2160));
}

#[test]
fn not_before_can_be_back_dated() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let policy = SigningPolicy {
        backdate: Duration::minutes(5),
        ..SigningPolicy::default()
    };
    let issued = sign_with(&ca, &csr, &[], false, Some("1h"), &policy).unwrap();
    assert_eq!(issued.not_before, NOW - Duration::minutes(5));
    assert_eq!(issued.not_after, NOW + Duration::hours(1));
}

#[test]
fn back_dating_never_goes_before_the_ca() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let policy = SigningPolicy {
        backdate: Duration::days(30),
        ..SigningPolicy::default()
    };
    let issued = sign_with(&ca, &csr, &[], false, Some("1h"), &policy).unwrap();
    assert_eq!(issued.not_before, ca.not_before());
}

#[test]
fn not_after_is_clamped_to_the_ca_and_the_result_says_so() {
    let ca_expiry = NOW + Duration::days(10);
    let ca = mk_pki_until(GeneratedKeyType::P256, ca_expiry).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_with(
        &ca,
        &csr,
        &[],
        false,
        Some("8760h"),
        &SigningPolicy::default(),
    )
    .unwrap();
    assert_eq!(issued.not_after, ca_expiry);
    let clamped = issued.clamped.unwrap();
    assert_eq!(clamped.ca_not_after, ca_expiry);
    assert_eq!(clamped.requested_not_after, NOW + Duration::hours(8760));
    let summary = issued.summary();
    assert!(summary.contains("clamped to the CA's expiry"), "{summary}");
    assert!(summary.contains(&format_time(ca_expiry)), "{summary}");
    assert!(
        summary.contains(&format_time(NOW + Duration::hours(8760))),
        "{summary}"
    );
}

#[test]
fn without_clamping_a_leaf_that_would_outlive_its_ca_is_refused() {
    let ca = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(10)).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let policy = SigningPolicy {
        clamp_to_ca: false,
        ..SigningPolicy::default()
    };
    let err = sign_with(&ca, &csr, &[], false, Some("8760h"), &policy).unwrap_err();
    assert!(matches!(err, Error::WouldOutliveCa { .. }), "{err:?}");
    sign_with(&ca, &csr, &[], false, Some("24h"), &policy).unwrap();
}

#[test]
fn durations_over_the_policy_maximum_are_refused() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let policy = SigningPolicy {
        max_duration: Some(dur("720h")),
        ..SigningPolicy::default()
    };
    let err = sign_with(&ca, &csr, &[], false, Some("8760h"), &policy).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the requested duration 8760h0m0s exceeds this issuer's maximum of 720h0m0s; request a shorter spec.duration or raise spec.policy.maxDuration"
    );
    sign_with(&ca, &csr, &[], false, Some("720h"), &policy).unwrap();
}

#[test]
fn non_positive_durations_are_refused() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    for d in ["0s", "-1h"] {
        let err = sign_with(&ca, &csr, &[], false, Some(d), &SigningPolicy::default()).unwrap_err();
        assert!(
            matches!(err, Error::DurationNotPositive { .. }),
            "{d}: {err:?}"
        );
    }
}

#[test]
fn signing_after_the_ca_expired_is_refused() {
    let pki = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(1));
    let ca = pki.ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let later = NOW + Duration::days(2);
    let err = sign(
        &ca,
        &SignRequest {
            csr_pem: csr.as_bytes(),
            duration: None,
            is_ca: false,
            usages: &[],
        },
        &SigningPolicy::default(),
        later,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CaExpired { .. }), "{err:?}");
}

// ---------- output: chain and CA ----------

#[test]
fn chain_is_leaf_then_intermediate_and_ca_is_the_root() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = pki.ca();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    let chain = parse_many(&issued.chain_pem).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].der.as_slice(), issued.leaf_der.as_slice());
    assert_eq!(
        chain[1].der.clone(),
        parse_one(&pki.intermediate_pem).der.clone()
    );
    assert_eq!(
        parse_one(&issued.ca_pem).der.clone(),
        parse_one(&pki.root_pem).der.clone()
    );
    assert_eq!(issued.root_source, RootSource::CaCrt);
}

#[test]
fn a_root_at_the_top_of_tls_crt_becomes_the_ca_and_leaves_the_chain() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let bundle = format!("{}{}", pki.intermediate_pem, pki.root_pem);
    let ca = SigningCa::load(
        bundle.as_bytes(),
        pki.intermediate_key_pem.as_bytes(),
        None,
        NOW,
    )
    .unwrap();
    assert_eq!(ca.root_source(), RootSource::TopOfChain);
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    assert_eq!(
        parse_many(&issued.chain_pem).unwrap().len(),
        2,
        "never the self-signed root"
    );
    assert_eq!(
        parse_one(&issued.ca_pem).der.clone(),
        parse_one(&pki.root_pem).der.clone()
    );
}

#[test]
fn with_no_root_known_the_intermediate_is_the_ca_and_the_result_says_so() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = SigningCa::load(
        pki.intermediate_pem.as_bytes(),
        pki.intermediate_key_pem.as_bytes(),
        None,
        NOW,
    )
    .unwrap();
    assert_eq!(ca.root_source(), RootSource::NoRootKnown);
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    assert_eq!(issued.root_source, RootSource::NoRootKnown);
    assert_eq!(
        parse_one(&issued.ca_pem).der.clone(),
        parse_one(&pki.intermediate_pem).der.clone()
    );
    assert!(issued.summary().contains("no root CA is known"));
}

#[test]
fn signing_directly_with_a_root_gives_a_leaf_only_chain() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = SigningCa::load(
        pki.root_pem.as_bytes(),
        pki.root_key.serialize_pem().as_bytes(),
        None,
        NOW,
    )
    .unwrap();
    let (csr, _) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    assert_eq!(parse_many(&issued.chain_pem).unwrap().len(), 1);
    assert_eq!(issued.root_source, RootSource::TopOfChain);
}

// ---------- CA checks ----------

#[test]
fn every_ca_key_type_loads_and_signs() {
    for key_type in [
        GeneratedKeyType::P256,
        GeneratedKeyType::P384,
        GeneratedKeyType::Ed25519,
        GeneratedKeyType::Rsa2048,
    ] {
        let pki = mk_pki(key_type);
        let ca = pki.ca();
        assert_eq!(ca.key_type(), key_type.key_type());
        let (csr, _) = mk_csr(&CsrSpec::default());
        let issued = sign_default(&ca, &csr);
        let cert = leaf(&issued);
        let intermediate_pem = parse_one(&pki.intermediate_pem);
        let (_, intermediate) = X509Certificate::from_der(&intermediate_pem.der).unwrap();
        cert.verify_signature(Some(intermediate.public_key()))
            .unwrap();
    }
}

#[test]
fn a_leaf_certificate_is_not_a_ca() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = pki.ca();
    let (csr, key) = mk_csr(&CsrSpec::default());
    let issued = sign_default(&ca, &csr);
    let err = SigningCa::load(
        issued.chain_pem.as_bytes(),
        key.serialize_pem().as_bytes(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CaNotCa { .. }), "{err:?}");
    assert!(err.to_string().contains("CA:FALSE"), "{err}");
}

#[test]
fn a_ca_without_key_cert_sign_is_refused() {
    let key = generate::generate_key(GeneratedKeyType::P256).unwrap();
    let mut params = ca_params(
        "no certsign",
        NOW - Duration::days(1),
        NOW + Duration::days(10),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).unwrap();
    let err = SigningCa::load(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(err.to_string().contains("keyCertSign"), "{err}");
}

#[test]
fn a_ca_without_key_usage_is_accepted() {
    let key = generate::generate_key(GeneratedKeyType::P256).unwrap();
    let mut params = ca_params("no ku", NOW - Duration::days(1), NOW + Duration::days(10));
    params.key_usages = vec![];
    let cert = params.self_signed(&key).unwrap();
    SigningCa::load(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        None,
        NOW,
    )
    .unwrap();
}

#[test]
fn an_expired_or_not_yet_valid_ca_is_refused() {
    let pki = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(1));
    let load = |at| {
        SigningCa::load(
            pki.intermediate_pem.as_bytes(),
            pki.intermediate_key_pem.as_bytes(),
            Some(pki.root_pem.as_bytes()),
            at,
        )
    };
    assert!(matches!(
        load(NOW + Duration::days(2)),
        Err(Error::CaExpired { .. })
    ));
    assert!(matches!(
        load(NOW - Duration::days(2)),
        Err(Error::CaNotYetValid { .. })
    ));
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let other = mk_pki(GeneratedKeyType::P256);
    let err = SigningCa::load(
        pki.intermediate_pem.as_bytes(),
        other.intermediate_key_pem.as_bytes(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CaKeyMismatch { .. }), "{err:?}");
    let ed = mk_pki(GeneratedKeyType::Ed25519);
    let err = SigningCa::load(
        pki.intermediate_pem.as_bytes(),
        ed.intermediate_key_pem.as_bytes(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the key is Ed25519 but the certificate's public key is ECDSA P-256"),
        "{err}"
    );
}

#[test]
fn a_chain_not_signed_by_the_given_root_is_refused() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let other = mk_pki(GeneratedKeyType::P256);
    let err = SigningCa::load(
        pki.intermediate_pem.as_bytes(),
        pki.intermediate_key_pem.as_bytes(),
        Some(other.root_pem.as_bytes()),
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CaChainBroken { .. }), "{err:?}");
    // The same root twice in ca.crt bundles with a foreign one still links.
    let bundle = format!("{}{}", other.root_pem, pki.root_pem);
    SigningCa::load(
        pki.intermediate_pem.as_bytes(),
        pki.intermediate_key_pem.as_bytes(),
        Some(bundle.as_bytes()),
        NOW,
    )
    .unwrap();
}

#[test]
fn a_tls_crt_chain_out_of_order_is_refused() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let other = mk_pki(GeneratedKeyType::P256);
    let bundle = format!("{}{}", pki.intermediate_pem, other.root_pem);
    let err = SigningCa::load(
        bundle.as_bytes(),
        pki.intermediate_key_pem.as_bytes(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, Error::CaChainBroken { .. }), "{err:?}");
}

#[test]
fn missing_or_garbage_ca_inputs_are_refused() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let key = pki.intermediate_key_pem.as_bytes();
    assert!(matches!(
        SigningCa::load(b"", key, None, NOW),
        Err(Error::CaCertificateMissing)
    ));
    let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        SigningCa::load(garbage, key, None, NOW),
        Err(Error::CaCertificateInvalid { index: 1, .. })
    ));
    assert!(matches!(
        SigningCa::load(pki.intermediate_pem.as_bytes(), b"", None, NOW),
        Err(Error::CaKeyMissing)
    ));
    let err =
        SigningCa::load(pki.intermediate_pem.as_bytes(), key, Some(b"nonsense"), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CaCertificateInvalid {
                source_name: "ca.crt",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cert_manager_shaped_csrs_are_accepted() {
    let ca = mk_pki(GeneratedKeyType::P256).ca();
    let csr = String::from_utf8(fixture("cert-manager-shaped.csr")).unwrap();
    let issued = sign_with(
        &ca,
        &csr,
        &["digital signature", "key encipherment", "client auth"],
        false,
        Some("8760h"),
        &SigningPolicy::default(),
    )
    .unwrap();
    let cert = leaf(&issued);
    let names = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .len();
    assert_eq!(names, 4);
    // The same CSR asking for other usages is refused.
    assert!(
        sign_with(
            &ca,
            &csr,
            &["digital signature", "client auth"],
            false,
            None,
            &SigningPolicy::default()
        )
        .is_err()
    );
}

// ---------- properties ----------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn pkis() -> &'static Vec<TestPki> {
        static PKIS: OnceLock<Vec<TestPki>> = OnceLock::new();
        PKIS.get_or_init(|| {
            [
                GeneratedKeyType::P256,
                GeneratedKeyType::P384,
                GeneratedKeyType::Ed25519,
                GeneratedKeyType::Rsa2048,
            ]
            .into_iter()
            .map(mk_pki)
            .collect()
        })
    }

    fn san_strategy() -> impl Strategy<Value = SanType> {
        let label = "[a-z][a-z0-9]{0,10}";
        prop_oneof![
            (label, label).prop_map(|(a, b)| SanType::DnsName(
                format!("{a}.{b}.example.com").try_into().unwrap()
            )),
            any::<[u8; 4]>().prop_map(|o| SanType::IpAddress(std::net::IpAddr::from(o))),
            any::<[u8; 16]>().prop_map(|o| SanType::IpAddress(std::net::IpAddr::from(o))),
            label.prop_map(|c| SanType::URI(
                format!("spiffe://relay.local/relay/cluster/{c}")
                    .try_into()
                    .unwrap()
            )),
            label.prop_map(|u| SanType::Rfc822Name(format!("{u}@example.com").try_into().unwrap())),
        ]
    }

    fn general_name_text(san: &SanType) -> String {
        match san {
            SanType::DnsName(d) => format!("DNSName({})", d.as_str()),
            SanType::IpAddress(ip) => ip.to_string(),
            SanType::URI(u) => format!("URI({})", u.as_str()),
            SanType::Rfc822Name(e) => format!("RFC822Name({})", e.as_str()),
            _ => unreachable!(),
        }
    }

    fn issued_name_text(name: &GeneralName<'_>) -> String {
        match name {
            GeneralName::IPAddress(b) => csr::ip_address(b).unwrap().to_string(),
            other => other.to_string(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn every_issued_certificate_verifies_with_webpki_and_keeps_key_and_names(
            ca_index in 0usize..4,
            key_index in 0usize..3,
            sans in proptest::collection::vec(san_strategy(), 1..5),
            hours in 1i64..20_000,
            client in any::<bool>(),
            server in any::<bool>(),
        ) {
            let pki = &pkis()[ca_index];
            let ca = pki.ca();
            let key_type = [GeneratedKeyType::P256, GeneratedKeyType::P384, GeneratedKeyType::Ed25519][key_index];
            let (csr, _) = mk_csr(&CsrSpec { key_type, sans: sans.clone(), ..CsrSpec::default() });
            let mut usages = vec!["digital signature"];
            if client { usages.push("client auth"); }
            if server { usages.push("server auth"); }
            let duration = format!("{hours}h");
            let issued = sign_with(&ca, &csr, &usages, false, Some(&duration), &SigningPolicy::default()).unwrap();

            // Independent verifier: webpki, from the root as trust anchor.
            let root_der = rustls_pki_types::CertificateDer::from(parse_one(&issued.ca_pem).der.clone());
            let anchor = webpki::anchor_from_trusted_cert(&root_der).unwrap();
            let chain = parse_many(&issued.chain_pem).unwrap();
            let leaf_der = rustls_pki_types::CertificateDer::from(chain[0].der.clone());
            let intermediates: Vec<_> = chain[1..].iter().map(|p| rustls_pki_types::CertificateDer::from(p.der.clone())).collect();
            let end_entity = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
            let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW.unix_timestamp() as u64 + 60));
            let usage = if client || !server { webpki::KeyUsage::client_auth() } else { webpki::KeyUsage::server_auth() };
            end_entity
                .verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], &intermediates, at, usage, None, None)
                .unwrap();

            // The CSR's key and names are kept.
            let csr_der = csr::csr_der_from_pem(csr.as_bytes()).unwrap();
            let (_, parsed_csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&csr_der).unwrap();
            let cert = leaf(&issued);
            prop_assert_eq!(cert.public_key().raw, parsed_csr.certification_request_info.subject_pki.raw);
            let issued_names: Vec<String> = cert.subject_alternative_name().unwrap().unwrap().value.general_names.iter().map(issued_name_text).collect();
            let wanted: Vec<String> = sans.iter().map(general_name_text).collect();
            prop_assert_eq!(issued_names, wanted);
            prop_assert!(issued.not_after <= ca.not_after());
        }
    }
}
