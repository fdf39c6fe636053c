use super::*;
use crate::pki::csr::{csr_der_from_pem, read_csr};
use crate::pki::generate::{GeneratedKeyType, generate_key};
use crate::pki::usages::KeyUsageSet;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
};

fn id(cluster: &str) -> ClusterIdentity {
    ClusterIdentity {
        cluster: cluster.into(),
        spiffe_id: crate::pki::spiffe_id("relay.local", cluster),
    }
}

fn csr(ku: Vec<KeyUsagePurpose>, eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateRequestInfo {
    let key = generate_key(GeneratedKeyType::P256).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "a");
    params.distinguished_name = dn;
    params.key_usages = ku;
    params.extended_key_usages = eku;
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    read_csr(&csr_der_from_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[test]
fn connect_needs_a_registered_cluster_and_says_how_to_register() {
    assert_eq!(authorize_connect(&id("a"), true, "relay"), Ok(()));
    let refusal = authorize_connect(&id("a"), false, "relay").unwrap_err();
    assert_eq!(refusal.label(), "permission_denied");
    assert!(
        refusal.message().contains("RelayCluster named \"a\""),
        "{refusal}"
    );
    assert!(
        refusal.message().contains("namespace \"relay\""),
        "{refusal}"
    );
}

#[test]
fn hello_must_name_the_certificates_cluster() {
    assert_eq!(check_hello(&id("a"), "a"), Ok(()));
    let refusal = check_hello(&id("a"), "b").unwrap_err();
    assert!(matches!(refusal, Refusal::PermissionDenied(_)));
    assert!(refusal.message().contains("\"b\"") && refusal.message().contains("\"a\""));
}

#[test]
fn a_certificate_for_a_cannot_sign_for_b() {
    let refusal =
        authorize_sign(&Caller::Certificate(id("a")), "b", &id("b"), true, "relay").unwrap_err();
    assert!(matches!(refusal, Refusal::PermissionDenied(_)));
    assert!(
        refusal
            .message()
            .contains("cannot obtain a certificate for cluster \"b\"")
    );
}

#[test]
fn a_renewal_for_the_own_cluster_is_allowed() {
    assert_eq!(
        authorize_sign(&Caller::Certificate(id("a")), "a", &id("a"), true, "relay"),
        Ok(())
    );
}

#[test]
fn the_csr_must_name_the_requested_cluster() {
    // Inconsistent, not forbidden: a valid token for a registered cluster.
    let refusal = authorize_sign(&Caller::Token, "a", &id("b"), true, "relay").unwrap_err();
    assert!(
        matches!(refusal, Refusal::InvalidArgument(_)),
        "{refusal:?}"
    );
    assert_eq!(refusal.label(), "invalid_argument");
    assert!(refusal.message().contains("CSR names cluster \"b\""));
}

#[test]
fn a_certificate_for_a_cannot_slip_a_csr_for_b_into_its_own_renewal() {
    let refusal =
        authorize_sign(&Caller::Certificate(id("a")), "a", &id("b"), true, "relay").unwrap_err();
    assert!(
        matches!(refusal, Refusal::PermissionDenied(_)),
        "{refusal:?}"
    );
    assert!(
        refusal
            .message()
            .contains("cannot obtain a certificate for cluster \"b\""),
        "{refusal}"
    );
}

#[test]
fn token_callers_need_a_registered_cluster() {
    assert_eq!(
        authorize_sign(&Caller::Token, "a", &id("a"), true, "relay"),
        Ok(())
    );
    let refusal = authorize_sign(&Caller::Token, "a", &id("a"), false, "relay").unwrap_err();
    assert!(refusal.message().contains("not registered"));
}

#[test]
fn usages_default_to_client_auth_with_both_key_usages() {
    assert_eq!(
        relay_usages(&csr(vec![], vec![])).unwrap(),
        ["digital signature", "key encipherment", "client auth"]
    );
}

#[test]
fn usages_follow_a_cert_manager_shaped_csr() {
    let info = csr(
        vec![KeyUsagePurpose::DigitalSignature],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    assert_eq!(
        info.key_usage,
        Some(KeyUsageSet(KeyUsage::DigitalSignature.bit()))
    );
    assert_eq!(
        relay_usages(&info).unwrap(),
        ["digital signature", "client auth"]
    );
}

#[test]
fn server_auth_or_cert_sign_are_refused_by_name() {
    let message = relay_usages(&csr(vec![], vec![ExtendedKeyUsagePurpose::ServerAuth]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("server auth"), "{message}");
    let message = relay_usages(&csr(vec![KeyUsagePurpose::KeyCertSign], vec![]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("cert sign"), "{message}");
}

#[test]
fn ttl_defaults_to_a_year_and_refuses_negative() {
    assert_eq!(requested_ttl(0).unwrap(), Duration::hours(8760));
    assert_eq!(requested_ttl(3600).unwrap(), Duration::hours(1));
    assert!(
        requested_ttl(-1)
            .unwrap_err()
            .to_string()
            .contains("positive")
    );
}
