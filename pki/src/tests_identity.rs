//! Tests of the relay identity rule and of TLS key pair checks.

use super::generate::GeneratedKeyType;
use super::identity::{
    certificate_identity, csr_identity, identity_from_names, spiffe_id, validate_cluster_name,
    validate_trust_domain,
};
use super::keypair::{KeyPairProblem, load_key_pair};
use super::test_support::{CsrSpec, NOW, mk_csr, mk_pki};
use super::{SignRequest, SigningPolicy, csr, sign};
use crate::Error;
use proptest::prelude::*;
use rcgen::SanType;
use time::Duration;

const TD: &str = "relay.local";

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

fn detail(result: Result<super::ClusterIdentity, Error>) -> String {
    match result {
        Err(Error::IdentityInvalid { detail }) => detail,
        other => panic!("expected IdentityInvalid, got {other:?}"),
    }
}

#[test]
fn spiffe_id_has_the_cluster_path() {
    assert_eq!(
        spiffe_id(TD, "cluster-a"),
        "spiffe://relay.local/relay/cluster/cluster-a"
    );
}

#[test]
fn a_matching_cn_and_spiffe_uri_is_the_identity() {
    let id = identity_from_names(
        Some("cluster-a"),
        &["spiffe://relay.local/relay/cluster/cluster-a"],
        TD,
    )
    .unwrap();
    assert_eq!(id.cluster, "cluster-a");
    assert_eq!(id.spiffe_id, "spiffe://relay.local/relay/cluster/cluster-a");
}

#[test]
fn other_uri_schemes_are_ignored_by_the_identity_rule() {
    let id = identity_from_names(
        Some("c1"),
        &[
            "https://example.com/x",
            "spiffe://relay.local/relay/cluster/c1",
        ],
        TD,
    )
    .unwrap();
    assert_eq!(id.cluster, "c1");
}

#[test]
fn no_spiffe_uri_is_refused() {
    assert!(detail(identity_from_names(Some("c1"), &[], TD)).contains("no spiffe:// URI SAN"));
}

#[test]
fn two_spiffe_uris_are_refused() {
    let d = detail(identity_from_names(
        Some("c1"),
        &[
            "spiffe://relay.local/relay/cluster/c1",
            "spiffe://relay.local/relay/cluster/c2",
        ],
        TD,
    ));
    assert!(d.contains("2 spiffe:// URI SANs"), "{d}");
}

#[test]
fn another_trust_domain_is_refused_and_named() {
    let d = detail(identity_from_names(
        Some("c1"),
        &["spiffe://evil.example/relay/cluster/c1"],
        TD,
    ));
    assert!(
        d.contains("\"evil.example\"") && d.contains("\"relay.local\""),
        "{d}"
    );
}

#[test]
fn a_wrong_path_is_refused() {
    let d = detail(identity_from_names(
        Some("c1"),
        &["spiffe://relay.local/ns/default/sa/c1"],
        TD,
    ));
    assert!(d.contains("/relay/cluster/<cluster-name>"), "{d}");
}

#[test]
fn a_cn_that_differs_is_refused() {
    let d = detail(identity_from_names(
        Some("c2"),
        &["spiffe://relay.local/relay/cluster/c1"],
        TD,
    ));
    assert!(d.contains("\"c2\"") && d.contains("\"c1\""), "{d}");
}

#[test]
fn a_missing_cn_is_refused() {
    let d = detail(identity_from_names(
        None,
        &["spiffe://relay.local/relay/cluster/c1"],
        TD,
    ));
    assert!(d.contains("no common name"), "{d}");
}

#[test]
fn an_invalid_cluster_name_in_the_uri_is_refused() {
    for bad in ["", "UPPER", "-lead", "trail-", "a/b", "a..b", "a_b"] {
        let uri = format!("spiffe://relay.local/relay/cluster/{bad}");
        assert!(
            identity_from_names(Some(bad), &[uri.as_str()], TD).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn cluster_names_follow_dns_1123_subdomains() {
    for good in ["a", "cluster-a", "c1.prod", "0abc", &"a".repeat(63)] {
        validate_cluster_name(good).unwrap();
    }
    for bad in [
        "",
        "A",
        "a-",
        "-a",
        "a..b",
        ".a",
        "a_b",
        &"a".repeat(64),
        &"a.".repeat(127),
    ] {
        assert!(validate_cluster_name(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn trust_domains_are_checked() {
    validate_trust_domain("relay.local").unwrap();
    validate_trust_domain("cluster_1.example-corp").unwrap();
    for bad in ["", "Relay.local", "relay/local", "relay local"] {
        assert!(validate_trust_domain(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn the_error_message_says_what_an_agent_certificate_needs() {
    let message = identity_from_names(None, &[], TD).unwrap_err().to_string();
    assert!(message.contains("CN=<cluster>"), "{message}");
    assert!(
        message.contains("spiffe://<trust-domain>/relay/cluster/<cluster>"),
        "{message}"
    );
}

fn signed_leaf(spec: &CsrSpec) -> (Vec<u8>, String, String) {
    let pki = mk_pki(GeneratedKeyType::P256);
    let (csr_pem, key) = mk_csr(spec);
    let usages = vec!["client auth".to_string(), "digital signature".to_string()];
    let issued = sign(
        &pki.ca(),
        &SignRequest {
            csr_pem: csr_pem.as_bytes(),
            duration: Some(Duration::hours(1)),
            is_ca: false,
            usages: &usages,
        },
        &SigningPolicy::default(),
        NOW,
    )
    .unwrap();
    (issued.leaf_der, issued.chain_pem, key.serialize_pem())
}

#[test]
fn a_signed_agent_certificate_carries_its_identity() {
    let (leaf, _, _) = signed_leaf(&CsrSpec::default());
    let id = certificate_identity(&leaf, TD).unwrap();
    assert_eq!(id.cluster, "cluster-a");
    assert!(certificate_identity(&leaf, "other.domain").is_err());
}

#[test]
fn a_certificate_may_carry_dns_names_beside_its_identity() {
    let mut spec = CsrSpec::default();
    spec.sans
        .push(SanType::DnsName("agent.example".try_into().unwrap()));
    let (leaf, _, _) = signed_leaf(&spec);
    assert_eq!(
        certificate_identity(&leaf, TD).unwrap().cluster,
        "cluster-a"
    );
}

#[test]
fn garbage_is_not_a_certificate_identity() {
    assert!(detail(certificate_identity(b"garbage", TD)).contains("does not parse"));
}

fn read(spec: &CsrSpec) -> csr::CertificateRequestInfo {
    let (pem, _) = mk_csr(spec);
    csr::read_csr(&csr::csr_der_from_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[test]
fn a_csr_with_only_the_identity_names_is_accepted() {
    let id = csr_identity(&read(&CsrSpec::default()), TD).unwrap();
    assert_eq!(id.cluster, "cluster-a");
}

#[test]
fn a_csr_with_extra_names_is_refused_with_the_names() {
    let mut spec = CsrSpec::default();
    spec.sans
        .push(SanType::DnsName("evil.example".try_into().unwrap()));
    spec.sans.push(uri("https://example.com/"));
    let d = detail(csr_identity(&read(&spec), TD));
    assert!(d.contains("DNS:evil.example"), "{d}");
    assert!(d.contains("URI:https://example.com/"), "{d}");
}

#[test]
fn a_csr_for_another_cluster_names_that_cluster() {
    let spec = CsrSpec {
        common_name: Some("cluster-b".into()),
        sans: vec![uri("spiffe://relay.local/relay/cluster/cluster-b")],
        ..CsrSpec::default()
    };
    assert_eq!(csr_identity(&read(&spec), TD).unwrap().cluster, "cluster-b");
}

proptest! {
    #[test]
    fn any_valid_name_round_trips(name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}") {
        let id = spiffe_id(TD, &name);
        let identity = identity_from_names(Some(&name), &[id.as_str()], TD).unwrap();
        prop_assert_eq!(identity.cluster, name);
        prop_assert_eq!(identity.spiffe_id, id);
    }

    #[test]
    fn arbitrary_names_never_panic_and_accept_only_a_matching_cn(
        cn in proptest::option::of(".{0,20}"),
        uris in proptest::collection::vec("(spiffe://)?.{0,40}", 0..3),
    ) {
        let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
        if let Ok(identity) = identity_from_names(cn.as_deref(), &refs, TD) {
            prop_assert_eq!(Some(identity.cluster.clone()), cn);
            prop_assert_eq!(identity.spiffe_id, spiffe_id(TD, &identity.cluster));
        }
    }
}

// ---- key pairs ----

fn problem_of(result: Result<super::KeyPair, Error>) -> KeyPairProblem {
    match result {
        Err(Error::KeyPairInvalid { problem, detail }) => {
            assert!(
                !detail.contains("PRIVATE KEY-----"),
                "key material in {detail}"
            );
            problem
        }
        other => panic!("expected KeyPairInvalid, got {other:?}"),
    }
}

#[test]
fn a_signed_leaf_and_its_key_load() {
    let (leaf, chain_pem, key_pem) = signed_leaf(&CsrSpec::default());
    let pair = load_key_pair(Some(chain_pem.as_bytes()), Some(key_pem.as_bytes()), NOW).unwrap();
    assert_eq!(pair.chain_der[0], leaf);
    assert_eq!(pair.chain_der.len(), 2, "leaf and intermediate");
    assert_eq!(pair.key_pem_label, "PRIVATE KEY");
    assert!(pair.subject.contains("cluster-a"));
    assert_eq!(pair.common_name.as_deref(), Some("cluster-a"));
    let debug = format!("{pair:?}");
    assert!(!debug.contains("key_der"), "{debug}");

    // No CN: no common name, whatever the rest of the subject or the SANs say.
    let (_, chain_pem, key_pem) = signed_leaf(&CsrSpec {
        common_name: None,
        ..CsrSpec::default()
    });
    let pair = load_key_pair(Some(chain_pem.as_bytes()), Some(key_pem.as_bytes()), NOW).unwrap();
    assert_eq!(pair.common_name, None);
}

#[test]
fn the_serial_is_the_one_the_signer_reported() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let (csr_pem, key) = mk_csr(&CsrSpec::default());
    for _ in 0..20 {
        let issued = sign(
            &pki.ca(),
            &SignRequest {
                csr_pem: csr_pem.as_bytes(),
                duration: None,
                is_ca: false,
                usages: &[],
            },
            &SigningPolicy::default(),
            NOW,
        )
        .unwrap();
        let pair = load_key_pair(
            Some(issued.chain_pem.as_bytes()),
            Some(key.serialize_pem().as_bytes()),
            NOW,
        )
        .unwrap();
        assert_eq!(pair.serial, issued.serial);
    }
}

#[test]
fn a_self_signed_root_after_the_chain_is_dropped() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let (_, chain_pem, key_pem) = signed_leaf(&CsrSpec::default());
    let with_root = format!("{chain_pem}{}", pki.root_pem);
    let pair = load_key_pair(Some(with_root.as_bytes()), Some(key_pem.as_bytes()), NOW).unwrap();
    assert_eq!(pair.chain_der.len(), 2);
}

#[test]
fn each_broken_pair_names_its_problem() {
    let (_, chain_pem, key_pem) = signed_leaf(&CsrSpec::default());
    let (_, _, other_key) = signed_leaf(&CsrSpec::default());
    let pki = mk_pki(GeneratedKeyType::P256);
    let c = Some(chain_pem.as_bytes());
    let k = Some(key_pem.as_bytes());
    use KeyPairProblem::*;
    assert_eq!(problem_of(load_key_pair(None, k, NOW)), CertificateMissing);
    assert_eq!(problem_of(load_key_pair(c, None, NOW)), KeyMissing);
    assert_eq!(
        problem_of(load_key_pair(Some(b"garbage"), k, NOW)),
        CertificateMissing
    );
    assert_eq!(
        problem_of(load_key_pair(
            Some(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            k,
            NOW
        )),
        CertificateInvalid
    );
    assert_eq!(
        problem_of(load_key_pair(c, Some(b"garbage"), NOW)),
        KeyMissing
    );
    assert_eq!(
        problem_of(load_key_pair(
            c,
            Some(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            NOW
        )),
        KeyInvalid
    );
    assert_eq!(
        problem_of(load_key_pair(c, Some(other_key.as_bytes()), NOW)),
        KeyMismatch
    );
    assert_eq!(
        problem_of(load_key_pair(
            Some(pki.intermediate_pem.as_bytes()),
            Some(pki.intermediate_key_pem.as_bytes()),
            NOW
        )),
        IsCa
    );
    assert_eq!(
        problem_of(load_key_pair(c, k, NOW + Duration::hours(2))),
        Expired
    );
    assert_eq!(
        problem_of(load_key_pair(c, k, NOW - Duration::hours(1))),
        NotYetValid
    );
}

#[test]
fn key_pair_errors_say_what_to_write() {
    let message = load_key_pair(None, None, NOW).unwrap_err().to_string();
    assert!(message.contains("tls.crt is missing"), "{message}");
    assert!(
        message.contains("write a valid PEM certificate chain"),
        "{message}"
    );
}
