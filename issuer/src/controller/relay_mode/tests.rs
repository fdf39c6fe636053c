use super::*;
use crate::api::{SecretKeyRef, SecretRef};
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

fn relay() -> RelaySource {
    RelaySource {
        address: "https://relay.example:9900".into(),
        server_name: None,
        ca_bundle_secret_ref: None,
        client_tls_secret_ref: None,
        token_secret_ref: None,
        cluster: "cluster-a".into(),
    }
}

fn pair(cn: &str, not_after: OffsetDateTime) -> KeyPair {
    KeyPair {
        chain_der: vec![],
        key_pem_label: "PRIVATE KEY".into(),
        key_der: vec![],
        subject: format!("CN={cn}"),
        common_name: Some(cn.to_string()),
        serial: "aa:bb".into(),
        not_before: NOW - Duration::hours(1),
        not_after,
    }
}

fn inputs<'a>(client: Result<KeyPair, String>, token: bool) -> RelayInputs<'a> {
    RelayInputs {
        namespace: "team-a",
        ca_bundle: Some(b"root"),
        client,
        token_present: token,
    }
}

#[test]
fn defaults_name_the_gloo_secrets() {
    let relay = relay();
    assert_eq!(relay.ca_bundle_secret(), "relay-root-tls-secret");
    assert_eq!(relay.client_tls_secret(), "relay-client-tls-secret");
    assert_eq!(
        relay.token_secret(),
        ("relay-identity-token-secret", "token")
    );
    let custom = RelaySource {
        ca_bundle_secret_ref: Some(SecretRef { name: "ca".into() }),
        client_tls_secret_ref: Some(SecretRef {
            name: "client".into(),
        }),
        token_secret_ref: Some(SecretKeyRef {
            name: "tok".into(),
            key: "t".into(),
        }),
        ..relay
    };
    assert_eq!(custom.ca_bundle_secret(), "ca");
    assert_eq!(custom.client_tls_secret(), "client");
    assert_eq!(custom.token_secret(), ("tok", "t"));
}

#[test]
fn a_valid_certificate_for_the_cluster_is_preferred_over_the_token() {
    let credential = choose_credential(
        &relay(),
        &inputs(Ok(pair("cluster-a", NOW + Duration::hours(1))), true),
        NOW,
    )
    .unwrap();
    assert!(matches!(credential, Credential::Certificate { ref serial, .. } if serial == "aa:bb"));
}

#[test]
fn the_token_takes_over_when_the_certificate_is_missing_expiring_or_for_another_cluster() {
    for client in [
        Err("no Secret".to_string()),
        Ok(pair("cluster-a", NOW + Duration::seconds(3))),
        Ok(pair("cluster-a", NOW - Duration::seconds(1))),
        Ok(pair("cluster-b", NOW + Duration::hours(1))),
    ] {
        assert_eq!(
            choose_credential(&relay(), &inputs(client, true), NOW).unwrap(),
            Credential::Token
        );
    }
}

#[test]
fn without_any_credential_the_issuer_says_what_to_create() {
    let not_ready = choose_credential(
        &relay(),
        &inputs(
            Err("Secret \"relay-client-tls-secret\" was not found".into()),
            false,
        ),
        NOW,
    )
    .unwrap_err();
    assert_eq!(not_ready.reason, "RelayNoCredentials");
    assert!(
        not_ready.message.contains("relay-identity-token-secret"),
        "{}",
        not_ready.message
    );
    assert!(
        not_ready.message.contains("was not found"),
        "{}",
        not_ready.message
    );
    let expired =
        choose_credential(&relay(), &inputs(Ok(pair("cluster-a", NOW)), false), NOW).unwrap_err();
    assert!(
        expired.message.contains("expires at"),
        "{}",
        expired.message
    );
}

#[test]
fn a_missing_ca_bundle_is_not_ready() {
    let mut inputs = inputs(Ok(pair("cluster-a", NOW + Duration::hours(1))), true);
    inputs.ca_bundle = None;
    let not_ready = choose_credential(&relay(), &inputs, NOW).unwrap_err();
    assert_eq!(not_ready.reason, "RelayCABundleMissing");
    assert!(
        not_ready.message.contains("relay-root-tls-secret") && not_ready.message.contains("team-a")
    );
}

#[test]
fn readiness_names_the_server_the_cluster_and_the_credential() {
    let ready = relay_readiness(&relay(), Ok(&Credential::Token));
    assert!(ready.ready);
    assert_eq!(ready.reason, "RelayConfigured");
    assert!(
        ready.message.contains("https://relay.example:9900")
            && ready.message.contains("bootstrap token")
    );
    let not_ready = NotReady {
        reason: "RelayNoCredentials",
        message: "m".into(),
    };
    let state = relay_readiness(&relay(), Err(&not_ready));
    assert!(!state.ready);
    assert_eq!(state.reason, "RelayNoCredentials");
}

#[test]
fn unreachable_or_unauthenticated_is_pending_and_refusals_fail_with_the_servers_reason() {
    assert!(matches!(
        relay_failure_outcome(&relay(), RelayAnswer::Unreachable("connection refused".into())),
        Outcome::Pending { message } if message.contains("unavailable (connection refused)")
    ));
    assert!(matches!(
        relay_failure_outcome(&relay(), RelayAnswer::Unauthenticated("token wrong".into())),
        Outcome::Pending { message } if message.contains("token wrong") && message.contains("relay-identity-token-secret")
    ));
    assert!(matches!(
        relay_failure_outcome(&relay(), RelayAnswer::Refused { code: "PermissionDenied".into(), message: "cluster \"x\" is not registered".into() }),
        Outcome::Failed { message } if message.contains("refused to sign (PermissionDenied): cluster \"x\" is not registered")
    ));
}

#[test]
fn an_issued_summary_says_who_signed_and_how() {
    let outcome = relay_issued_outcome(
        &relay(),
        &Credential::Token,
        "c".into(),
        "r".into(),
        "Certificate issued (serial 01)",
    );
    let Outcome::Issued {
        summary,
        chain_pem,
        ca_pem,
    } = outcome
    else {
        panic!()
    };
    assert_eq!((chain_pem.as_str(), ca_pem.as_str()), ("c", "r"));
    assert!(
        summary.starts_with(
            "Certificate issued (serial 01) by the relay server https://relay.example:9900"
        ),
        "{summary}"
    );
    assert!(summary.contains("bootstrap token"));
}

#[test]
fn a_certificate_the_server_does_not_accept_falls_back_to_the_token_once() {
    let certificate = Credential::Certificate {
        serial: "01".into(),
        not_after: datetime!(2027-01-01 00:00 UTC),
    };
    let revoked = RelayAnswer::Unauthenticated("the client certificate is revoked".into());
    assert_eq!(
        fallback_credential(&certificate, &revoked, true),
        Some(Credential::Token)
    );
    // No token to fall back to, or the token itself refused: the answer stands.
    assert_eq!(fallback_credential(&certificate, &revoked, false), None);
    assert_eq!(
        fallback_credential(&Credential::Token, &revoked, true),
        None
    );
    // Only a refused credential falls back: a refused cluster or an unreachable server does not.
    for answer in [
        RelayAnswer::Refused {
            code: "PermissionDenied".into(),
            message: "cluster \"a\" is suspended".into(),
        },
        RelayAnswer::Unreachable("down".into()),
    ] {
        assert_eq!(fallback_credential(&certificate, &answer, true), None);
    }
}
