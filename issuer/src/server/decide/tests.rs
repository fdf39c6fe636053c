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

const T0: OffsetDateTime = time::macros::datetime!(2026-12-05 10:00:00 UTC);

fn issued(not_before: OffsetDateTime) -> Presented {
    Presented {
        serial: "0a:0b".into(),
        not_before,
    }
}

fn registered() -> Registration {
    Registration::default()
}

#[test]
fn connect_needs_a_registered_cluster_and_says_how_to_register() {
    assert_eq!(check_access(Some(&registered()), Some(&issued(T0))), Ok(()));
    let denied = check_access(None, Some(&issued(T0))).unwrap_err();
    assert_eq!(denied, Denied::NotRegistered);
    let refusal = denied.refusal("a", "relay");
    assert_eq!(refusal.label(), "not_registered");
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
fn a_suspended_cluster_is_shut_out_whatever_it_presents_and_told_how_to_resume() {
    let suspended = Registration {
        suspended: true,
        revoked_before: None,
    };
    for certificate in [Some(issued(T0)), None] {
        assert_eq!(
            check_access(Some(&suspended), certificate.as_ref()),
            Err(Denied::Suspended)
        );
    }
    let refusal = Denied::Suspended.refusal("a", "relay");
    assert_eq!(refusal.label(), "suspended");
    assert!(!Denied::Suspended.is_credential());
    assert!(
        refusal.message().contains("spec.suspended: true")
            && refusal
                .message()
                .contains("kubectl -n relay patch relaycluster a"),
        "{refusal}"
    );
}

#[test]
fn certificates_issued_before_the_cut_off_are_revoked_later_ones_and_tokens_are_not() {
    let cut = Registration {
        suspended: false,
        revoked_before: Some(T0),
    };
    let before = T0 - Duration::seconds(1);
    assert_eq!(
        check_access(Some(&cut), Some(&issued(before))),
        Err(Denied::Revoked {
            serial: "0a:0b".into(),
            not_before: before,
            revoked_before: T0,
        })
    );
    // Issued at the cut-off or after: accepted (the cut-off is "issued before").
    assert_eq!(check_access(Some(&cut), Some(&issued(T0))), Ok(()));
    assert_eq!(
        check_access(Some(&cut), Some(&issued(T0 + Duration::hours(1)))),
        Ok(())
    );
    // The bootstrap token is no certificate: a revocation by time does not touch it.
    assert_eq!(check_access(Some(&cut), None), Ok(()));
    let denied = check_access(Some(&cut), Some(&issued(before))).unwrap_err();
    assert!(denied.is_credential());
    let refusal = denied.refusal("a", "relay");
    assert_eq!(refusal.label(), "revoked");
    let message = refusal.message();
    assert!(
        message.contains("serial 0a:0b")
            && message.contains("2026-12-05T09:59:59Z")
            && message.contains("2026-12-05T10:00:00Z")
            && message.contains("renew"),
        "{message}"
    );
}

#[test]
fn renewal_by_a_revoked_certificate_is_refused_and_by_token_allowed() {
    let cut = Registration {
        suspended: false,
        revoked_before: Some(T0),
    };
    let old = Caller::Certificate(id("a"), issued(T0 - Duration::days(30)));
    let refusal = authorize_sign(&old, "a", &id("a"), Some(&cut), "relay").unwrap_err();
    assert_eq!(refusal.label(), "revoked");
    assert_eq!(
        authorize_sign(&Caller::Token, "a", &id("a"), Some(&cut), "relay"),
        Ok(())
    );
    let suspended = Registration {
        suspended: true,
        revoked_before: None,
    };
    assert_eq!(
        authorize_sign(&Caller::Token, "a", &id("a"), Some(&suspended), "relay")
            .unwrap_err()
            .label(),
        "suspended"
    );
}

proptest::proptest! {
    /// Access is allowed exactly when a RelayCluster exists, it is not suspended, and a
    /// presented certificate was issued no earlier than the cut-off (if any).
    #[test]
    fn access_is_allowed_exactly_when_registered_unsuspended_and_not_revoked(
        exists: bool,
        suspended: bool,
        cut_off: Option<i64>,
        certificate: Option<i64>,
    ) {
        let at = |seconds: i64| T0 + Duration::seconds(seconds % 1_000_000);
        let registration = exists.then(|| Registration {
            suspended,
            revoked_before: cut_off.map(at),
        });
        let presented = certificate.map(|s| issued(at(s)));
        let revoked = match (cut_off, certificate) {
            (Some(c), Some(n)) => n % 1_000_000 < c % 1_000_000,
            _ => false,
        };
        let expected = if !exists {
            Some("not_registered")
        } else if suspended {
            Some("suspended")
        } else if revoked {
            Some("revoked")
        } else {
            None
        };
        let got = check_access(registration.as_ref(), presented.as_ref()).err();
        proptest::prop_assert_eq!(got.as_ref().map(Denied::label), expected);
    }
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
    let refusal = authorize_sign(
        &Caller::Certificate(id("a"), issued(T0)),
        "b",
        &id("b"),
        Some(&registered()),
        "relay",
    )
    .unwrap_err();
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
        authorize_sign(
            &Caller::Certificate(id("a"), issued(T0)),
            "a",
            &id("a"),
            Some(&registered()),
            "relay"
        ),
        Ok(())
    );
}

#[test]
fn the_csr_must_name_the_requested_cluster() {
    // Inconsistent, not forbidden: a valid token for a registered cluster.
    let refusal =
        authorize_sign(&Caller::Token, "a", &id("b"), Some(&registered()), "relay").unwrap_err();
    assert!(
        matches!(refusal, Refusal::InvalidArgument(_)),
        "{refusal:?}"
    );
    assert_eq!(refusal.label(), "invalid_argument");
    assert!(refusal.message().contains("CSR names cluster \"b\""));
}

#[test]
fn a_certificate_for_a_cannot_slip_a_csr_for_b_into_its_own_renewal() {
    let refusal = authorize_sign(
        &Caller::Certificate(id("a"), issued(T0)),
        "a",
        &id("b"),
        Some(&registered()),
        "relay",
    )
    .unwrap_err();
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
        authorize_sign(&Caller::Token, "a", &id("a"), Some(&registered()), "relay"),
        Ok(())
    );
    let refusal = authorize_sign(&Caller::Token, "a", &id("a"), None, "relay").unwrap_err();
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
