use super::*;

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose};

use crate::cert_manager::{MESSAGE_APPROVED_BY_CERT_MANAGER, REASON_APPROVED_BY_CERT_MANAGER};
use crate::pki::generate::{GeneratedKeyType, generate_key};
use crate::pki::test_support::{NOW, TestPki, mk_pki, mk_pki_until};
use crate::pki::{RootSource, format_time};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const NS: &str = "team-a";
const CLUSTER_NS: &str = "cert-manager";
const SECRET: &str = "relay-tls-signing-secret";

fn k8s_time(t: OffsetDateTime) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.unix_timestamp()).unwrap())
}

fn cond(
    type_: &str,
    status: ConditionStatus,
    reason: Option<&str>,
    message: Option<&str>,
) -> CertificateRequestCondition {
    CertificateRequestCondition {
        type_: type_.to_string(),
        status,
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: Some(k8s_time(NOW - Duration::hours(1))),
    }
}

fn approved() -> CertificateRequestCondition {
    cond(
        CONDITION_APPROVED,
        ConditionStatus::True,
        Some(REASON_APPROVED_BY_CERT_MANAGER),
        Some(MESSAGE_APPROVED_BY_CERT_MANAGER),
    )
}

fn denied(message: Option<&str>) -> CertificateRequestCondition {
    cond(
        CONDITION_DENIED,
        ConditionStatus::True,
        Some("policy.example"),
        message,
    )
}

fn ready(status: ConditionStatus, reason: &str) -> CertificateRequestCondition {
    cond(
        CONDITION_READY,
        status,
        Some(reason),
        Some("earlier message"),
    )
}

fn with_conditions(conditions: Vec<CertificateRequestCondition>) -> CertificateRequestStatus {
    CertificateRequestStatus {
        conditions,
        ..Default::default()
    }
}

/// The one condition of an applied status, asserting it is `Ready` and alone.
fn only_ready(change: &StatusChange) -> &CertificateRequestCondition {
    assert_eq!(
        change.status.conditions.len(),
        1,
        "only the Ready condition is applied: {:?}",
        change.status.conditions
    );
    let ready = &change.status.conditions[0];
    assert_eq!(ready.type_, CONDITION_READY);
    ready
}

/// What the API server holds after a server-side apply of `change` onto `current`: the
/// `Ready` entry replaced (list-map keyed by type, other managers' entries kept), and the
/// scalar fields this controller sets.
fn apply(
    current: Option<&CertificateRequestStatus>,
    change: &StatusChange,
) -> CertificateRequestStatus {
    let mut merged = current.cloned().unwrap_or_default();
    for applied in &change.status.conditions {
        match merged
            .conditions
            .iter_mut()
            .find(|c| c.type_ == applied.type_)
        {
            Some(existing) => *existing = applied.clone(),
            None => merged.conditions.push(applied.clone()),
        }
    }
    if change.status.certificate.is_some() {
        merged.certificate = change.status.certificate.clone();
    }
    if change.status.ca.is_some() {
        merged.ca = change.status.ca.clone();
    }
    if change.status.failure_time.is_some() {
        merged.failure_time = change.status.failure_time.clone();
    }
    merged
}

fn issued() -> Outcome {
    Outcome::Issued {
        chain_pem: "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".into(),
        summary: "Certificate issued: serial 01, valid until 2027-02-26T12:00:00Z".into(),
    }
}

fn every_outcome() -> Vec<Outcome> {
    vec![
        Outcome::WaitingForApproval,
        Outcome::Denied {
            approver_message: Some("not for this team".into()),
        },
        Outcome::Denied {
            approver_message: None,
        },
        issued(),
        Outcome::Pending {
            message: "RelayIssuer team-a/relay not found".into(),
        },
        Outcome::Failed {
            message: "The CSR cannot be signed: isCA not allowed".into(),
        },
    ]
}

fn namespaced_location() -> SecretLocation<'static> {
    SecretLocation {
        issuer_kind: KIND_ISSUER,
        namespace: NS,
        name: SECRET,
    }
}

fn cluster_location() -> SecretLocation<'static> {
    SecretLocation {
        issuer_kind: KIND_CLUSTER_ISSUER,
        namespace: CLUSTER_NS,
        name: SECRET,
    }
}

fn found<'a>(crt: Option<&'a str>, key: Option<&'a str>, ca: Option<&'a str>) -> SecretData<'a> {
    SecretData::Found {
        tls_crt: crt.map(str::as_bytes),
        tls_key: key.map(str::as_bytes),
        ca_crt: ca.map(str::as_bytes),
    }
}

fn load(pki: &TestPki, now: OffsetDateTime) -> Result<SigningCa, NotReady> {
    load_signing_ca(
        namespaced_location(),
        found(
            Some(&pki.intermediate_pem),
            Some(&pki.intermediate_key_pem),
            Some(&pki.root_pem),
        ),
        now,
    )
}

/// A self-signed certificate that is not a CA (`is_ca` = `NoCa`: no BasicConstraints;
/// `ExplicitNoCa`: CA:FALSE), and its key PEM.
fn leaf_certificate(is_ca: IsCa) -> (String, String) {
    let key = generate_key(GeneratedKeyType::P256).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "not a ca");
    params.distinguished_name = dn;
    params.is_ca = is_ca;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = NOW - Duration::days(1);
    params.not_after = NOW + Duration::days(365);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn facts(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    root_known: bool,
) -> CaFacts<'static> {
    CaFacts {
        subject: "CN=relay intermediate",
        not_before,
        not_after,
        root_known,
    }
}

fn readiness_at(ca: CaFacts<'_>, now: OffsetDateTime) -> Readiness {
    readiness(namespaced_location(), Ok(ca), now)
}

// ---------------------------------------------------------------------------------------------
// route
// ---------------------------------------------------------------------------------------------

#[test]
fn route_group_absent_empty_or_cert_manager_is_not_ours() {
    for group in [
        None,
        Some(""),
        Some("cert-manager.io"),
        Some("awspca.cert-manager.io"),
        Some("RelayTLS.dev"),
        Some("relaytls.dev."),
    ] {
        for kind in [
            None,
            Some(""),
            Some("Issuer"),
            Some(KIND_ISSUER),
            Some(KIND_CLUSTER_ISSUER),
        ] {
            assert_eq!(
                route(group, kind, "relay", NS),
                Route::NotOurs,
                "group {group:?} kind {kind:?}"
            );
        }
    }
}

#[test]
fn route_our_group_with_empty_or_absent_kind_is_the_namespaced_issuer_in_the_request_namespace() {
    for kind in [None, Some("")] {
        assert_eq!(
            route(Some(GROUP), kind, "relay", NS),
            Route::Issuer(IssuerRef::Namespaced {
                namespace: NS.into(),
                name: "relay".into()
            }),
            "kind {kind:?}"
        );
    }
}

#[test]
fn route_relay_issuer_is_namespaced_in_the_request_namespace() {
    assert_eq!(
        route(Some(GROUP), Some(KIND_ISSUER), "relay", "other-ns"),
        Route::Issuer(IssuerRef::Namespaced {
            namespace: "other-ns".into(),
            name: "relay".into()
        })
    );
}

#[test]
fn route_relay_cluster_issuer_is_cluster_scoped() {
    assert_eq!(
        route(Some(GROUP), Some(KIND_CLUSTER_ISSUER), "relay-cluster", NS),
        Route::Issuer(IssuerRef::Cluster {
            name: "relay-cluster".into()
        })
    );
}

#[test]
fn route_cert_manager_kind_names_in_our_group_are_read_as_our_kinds() {
    // cert-manager reads an empty kind as `Issuer`; `Issuer`/`ClusterIssuer` in our group are
    // accepted as aliases of our two kinds.
    assert_eq!(
        route(Some(GROUP), Some("Issuer"), "relay", NS),
        Route::Issuer(IssuerRef::Namespaced {
            namespace: NS.into(),
            name: "relay".into()
        })
    );
    assert_eq!(
        route(Some(GROUP), Some("ClusterIssuer"), "relay", NS),
        Route::Issuer(IssuerRef::Cluster {
            name: "relay".into()
        })
    );
}

#[test]
fn route_unknown_kind_in_our_group_is_unknown_kind_with_the_kind() {
    for kind in [
        "relayissuer",
        "RELAYISSUER",
        "RelayIssuers",
        "CertificateRequest",
        " RelayIssuer",
    ] {
        assert_eq!(
            route(Some(GROUP), Some(kind), "relay", NS),
            Route::UnknownKind(kind.to_string())
        );
    }
}

#[test]
fn issuer_ref_kind_name_namespace_and_display() {
    let namespaced = IssuerRef::Namespaced {
        namespace: NS.into(),
        name: "relay".into(),
    };
    let cluster = IssuerRef::Cluster {
        name: "relay-cluster".into(),
    };
    assert_eq!(namespaced.kind(), "RelayIssuer");
    assert_eq!(cluster.kind(), "RelayClusterIssuer");
    assert_eq!(namespaced.name(), "relay");
    assert_eq!(cluster.name(), "relay-cluster");
    assert_eq!(namespaced.secret_namespace(CLUSTER_NS), NS);
    assert_eq!(cluster.secret_namespace(CLUSTER_NS), CLUSTER_NS);
    assert_eq!(namespaced.to_string(), "RelayIssuer team-a/relay");
    assert_eq!(cluster.to_string(), "RelayClusterIssuer relay-cluster");
}

// ---------------------------------------------------------------------------------------------
// next_step
// ---------------------------------------------------------------------------------------------

#[test]
fn next_step_without_status_waits_for_approval() {
    assert_eq!(next_step(None), Step::WaitForApproval);
    assert_eq!(
        next_step(Some(&CertificateRequestStatus::default())),
        Step::WaitForApproval
    );
}

#[test]
fn next_step_approved_signs() {
    assert_eq!(
        next_step(Some(&with_conditions(vec![approved()]))),
        Step::Sign
    );
}

#[test]
fn next_step_approved_false_or_unknown_waits() {
    for status in [ConditionStatus::False, ConditionStatus::Unknown] {
        let conditions = vec![cond(CONDITION_APPROVED, status, None, None)];
        assert_eq!(
            next_step(Some(&with_conditions(conditions))),
            Step::WaitForApproval,
            "{status:?}"
        );
    }
}

#[test]
fn next_step_denied_denies_with_the_approver_message() {
    assert_eq!(
        next_step(Some(&with_conditions(vec![denied(Some("not for team-a"))]))),
        Step::Deny {
            approver_message: Some("not for team-a".into())
        }
    );
    assert_eq!(
        next_step(Some(&with_conditions(vec![denied(None)]))),
        Step::Deny {
            approver_message: None
        }
    );
}

#[test]
fn next_step_denied_wins_over_approved_in_either_order() {
    let expected = Step::Deny {
        approver_message: Some("no".into()),
    };
    assert_eq!(
        next_step(Some(&with_conditions(vec![approved(), denied(Some("no"))]))),
        expected
    );
    assert_eq!(
        next_step(Some(&with_conditions(vec![denied(Some("no")), approved()]))),
        expected
    );
}

#[test]
fn next_step_denied_false_does_not_deny() {
    let conditions = vec![
        cond(CONDITION_DENIED, ConditionStatus::False, None, None),
        approved(),
    ];
    assert_eq!(next_step(Some(&with_conditions(conditions))), Step::Sign);
}

#[test]
fn next_step_ready_issued_failed_or_denied_is_finished_even_if_approved() {
    for (status, reason) in [
        (ConditionStatus::True, REASON_ISSUED),
        (ConditionStatus::False, REASON_FAILED),
        (ConditionStatus::False, REASON_DENIED),
    ] {
        for extra in [vec![], vec![approved()], vec![denied(Some("no"))]] {
            let mut conditions = extra.clone();
            conditions.push(ready(status, reason));
            assert_eq!(
                next_step(Some(&with_conditions(conditions))),
                Step::Finished,
                "{reason} with {extra:?}"
            );
        }
    }
}

#[test]
fn next_step_certificate_present_is_finished_even_if_approved() {
    let status = CertificateRequestStatus {
        conditions: vec![approved()],
        certificate: Some(ByteString(b"-----BEGIN CERTIFICATE-----".to_vec())),
        ..Default::default()
    };
    assert_eq!(next_step(Some(&status)), Step::Finished);
    // Even with a Pending Ready condition (a certificate written by someone else).
    let status = CertificateRequestStatus {
        conditions: vec![approved(), ready(ConditionStatus::False, REASON_PENDING)],
        ..status
    };
    assert_eq!(next_step(Some(&status)), Step::Finished);
}

#[test]
fn next_step_empty_certificate_is_not_a_certificate() {
    let status = CertificateRequestStatus {
        conditions: vec![approved()],
        certificate: Some(ByteString(Vec::new())),
        ..Default::default()
    };
    assert_eq!(next_step(Some(&status)), Step::Sign);
}

#[test]
fn next_step_invalid_request_true_is_finished() {
    let invalid = cond(
        CONDITION_INVALID_REQUEST,
        ConditionStatus::True,
        Some("RequestParsingError"),
        Some("bad CSR"),
    );
    assert_eq!(
        next_step(Some(&with_conditions(vec![invalid.clone()]))),
        Step::Finished
    );
    assert_eq!(
        next_step(Some(&with_conditions(vec![approved(), invalid]))),
        Step::Finished
    );
    let not_invalid = cond(
        CONDITION_INVALID_REQUEST,
        ConditionStatus::False,
        None,
        None,
    );
    assert_eq!(
        next_step(Some(&with_conditions(vec![approved(), not_invalid]))),
        Step::Sign
    );
}

#[test]
fn next_step_pending_and_approved_retries_signing() {
    let conditions = vec![approved(), ready(ConditionStatus::False, REASON_PENDING)];
    assert_eq!(next_step(Some(&with_conditions(conditions))), Step::Sign);
}

#[test]
fn next_step_pending_without_approval_waits_and_then_denial_denies() {
    let waiting = vec![ready(ConditionStatus::False, REASON_PENDING)];
    assert_eq!(
        next_step(Some(&with_conditions(waiting.clone()))),
        Step::WaitForApproval
    );
    let mut denied_later = waiting;
    denied_later.push(denied(Some("late")));
    assert_eq!(
        next_step(Some(&with_conditions(denied_later))),
        Step::Deny {
            approver_message: Some("late".into())
        }
    );
}

// ---------------------------------------------------------------------------------------------
// status_change
// ---------------------------------------------------------------------------------------------

#[test]
fn status_change_each_outcome_gives_ready_status_reason_and_message() {
    let cases: Vec<(Outcome, ConditionStatus, &str, &str)> = vec![
        (
            Outcome::WaitingForApproval,
            ConditionStatus::False,
            REASON_PENDING,
            "Not signing CertificateRequest until it is Approved",
        ),
        (
            Outcome::Denied {
                approver_message: Some("not for this team".into()),
            },
            ConditionStatus::False,
            REASON_DENIED,
            "The CertificateRequest was denied by an approver (not for this team); it will not be signed",
        ),
        (
            Outcome::Denied {
                approver_message: None,
            },
            ConditionStatus::False,
            REASON_DENIED,
            "The CertificateRequest was denied by an approver; it will not be signed",
        ),
        (
            Outcome::Denied {
                approver_message: Some(String::new()),
            },
            ConditionStatus::False,
            REASON_DENIED,
            "The CertificateRequest was denied by an approver; it will not be signed",
        ),
        (
            issued(),
            ConditionStatus::True,
            REASON_ISSUED,
            "Certificate issued: serial 01, valid until 2027-02-26T12:00:00Z",
        ),
        (
            Outcome::Pending {
                message: "issuer not ready".into(),
            },
            ConditionStatus::False,
            REASON_PENDING,
            "issuer not ready",
        ),
        (
            Outcome::Failed {
                message: "The CSR cannot be signed: bad".into(),
            },
            ConditionStatus::False,
            REASON_FAILED,
            "The CSR cannot be signed: bad",
        ),
    ];
    for (outcome, status, reason, message) in cases {
        let change = status_change(&outcome, None, NOW);
        let ready = only_ready(&change);
        assert_eq!(ready.status, status, "{outcome:?}");
        assert_eq!(ready.reason.as_deref(), Some(reason), "{outcome:?}");
        assert_eq!(ready.message.as_deref(), Some(message), "{outcome:?}");
        assert_eq!(ready.last_transition_time, Some(k8s_time(NOW)));
        assert!(change.changes_anything, "{outcome:?}");
    }
}

#[test]
fn status_change_applies_only_the_ready_condition_never_approved_or_denied() {
    let current = with_conditions(vec![
        approved(),
        denied(Some("no")),
        cond(
            CONDITION_INVALID_REQUEST,
            ConditionStatus::False,
            None,
            None,
        ),
        ready(ConditionStatus::False, REASON_PENDING),
    ]);
    for outcome in every_outcome() {
        let change = status_change(&outcome, Some(&current), NOW);
        only_ready(&change);
        let json = serde_json::to_value(&change.status).unwrap();
        let types: Vec<&str> = json["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Ready"], "{outcome:?}");
    }
}

#[test]
fn status_change_sets_failure_time_for_denied_and_failed() {
    for outcome in [
        Outcome::Denied {
            approver_message: None,
        },
        Outcome::Failed {
            message: "bad".into(),
        },
    ] {
        let change = status_change(&outcome, None, NOW);
        assert_eq!(
            change.status.failure_time,
            Some(k8s_time(NOW)),
            "{outcome:?}"
        );
        let current = with_conditions(vec![approved()]);
        let change = status_change(&outcome, Some(&current), NOW);
        assert_eq!(
            change.status.failure_time,
            Some(k8s_time(NOW)),
            "{outcome:?}"
        );
    }
}

#[test]
fn status_change_preserves_an_existing_failure_time() {
    let earlier = k8s_time(NOW - Duration::days(2));
    let current = CertificateRequestStatus {
        conditions: vec![denied(None)],
        failure_time: Some(earlier.clone()),
        ..Default::default()
    };
    for outcome in [
        Outcome::Denied {
            approver_message: None,
        },
        Outcome::Failed {
            message: "bad".into(),
        },
    ] {
        let change = status_change(&outcome, Some(&current), NOW);
        assert_eq!(
            change.status.failure_time,
            Some(earlier.clone()),
            "{outcome:?}"
        );
    }
}

#[test]
fn status_change_never_sets_failure_time_for_waiting_pending_or_issued() {
    let current = CertificateRequestStatus {
        conditions: vec![approved()],
        failure_time: Some(k8s_time(NOW - Duration::days(2))),
        ..Default::default()
    };
    for outcome in [
        Outcome::WaitingForApproval,
        Outcome::Pending {
            message: "later".into(),
        },
        issued(),
    ] {
        for current in [None, Some(&current)] {
            let change = status_change(&outcome, current, NOW);
            assert_eq!(change.status.failure_time, None, "{outcome:?}");
        }
    }
}

#[test]
fn status_change_sets_certificate_and_ca_only_for_issued() {
    let change = status_change(&issued(), None, NOW);
    let Outcome::Issued {
        chain_pem, ca_pem, ..
    } = issued()
    else {
        unreachable!()
    };
    assert_eq!(
        change.status.certificate,
        Some(ByteString(chain_pem.into_bytes()))
    );
    assert_eq!(change.status.ca, Some(ByteString(ca_pem.into_bytes())));

    for outcome in every_outcome() {
        if matches!(outcome, Outcome::Issued { .. }) {
            continue;
        }
        let change = status_change(&outcome, None, NOW);
        assert_eq!(change.status.certificate, None, "{outcome:?}");
        assert_eq!(change.status.ca, None, "{outcome:?}");
    }
}

#[test]
fn status_change_keeps_last_transition_time_while_status_is_unchanged() {
    let earlier = k8s_time(NOW - Duration::hours(3));
    let mut previous = ready(ConditionStatus::False, REASON_PENDING);
    previous.last_transition_time = Some(earlier.clone());
    let current = with_conditions(vec![approved(), previous]);
    // False → False with a different reason and message: the time stays.
    for outcome in [
        Outcome::WaitingForApproval,
        Outcome::Pending {
            message: "other".into(),
        },
        Outcome::Failed {
            message: "bad".into(),
        },
        Outcome::Denied {
            approver_message: None,
        },
    ] {
        let change = status_change(&outcome, Some(&current), NOW);
        assert_eq!(
            only_ready(&change).last_transition_time,
            Some(earlier.clone()),
            "{outcome:?}"
        );
    }
}

#[test]
fn status_change_resets_last_transition_time_when_status_changes() {
    let mut previous = ready(ConditionStatus::False, REASON_PENDING);
    previous.last_transition_time = Some(k8s_time(NOW - Duration::hours(3)));
    let current = with_conditions(vec![approved(), previous]);
    let change = status_change(&issued(), Some(&current), NOW);
    assert_eq!(
        only_ready(&change).last_transition_time,
        Some(k8s_time(NOW))
    );

    // Unknown → False is a change too.
    let current = with_conditions(vec![ready(ConditionStatus::Unknown, REASON_PENDING)]);
    let change = status_change(&Outcome::WaitingForApproval, Some(&current), NOW);
    assert_eq!(
        only_ready(&change).last_transition_time,
        Some(k8s_time(NOW))
    );
}

#[test]
fn status_change_sets_last_transition_time_when_the_previous_one_is_missing() {
    let mut previous = ready(ConditionStatus::False, REASON_PENDING);
    previous.last_transition_time = None;
    let current = with_conditions(vec![previous]);
    let change = status_change(&Outcome::WaitingForApproval, Some(&current), NOW);
    assert_eq!(
        only_ready(&change).last_transition_time,
        Some(k8s_time(NOW))
    );
}

#[test]
fn status_change_event_types_and_reasons() {
    let cases = [
        (
            Outcome::WaitingForApproval,
            EventType::Normal,
            "WaitingForApproval",
        ),
        (
            Outcome::Denied {
                approver_message: Some("no".into()),
            },
            EventType::Warning,
            "Denied",
        ),
        (issued(), EventType::Normal, "CertificateIssued"),
        (
            Outcome::Pending {
                message: "later".into(),
            },
            EventType::Warning,
            "Pending",
        ),
        (
            Outcome::Failed {
                message: "bad".into(),
            },
            EventType::Warning,
            "Failed",
        ),
    ];
    for (outcome, type_, reason) in cases {
        let change = status_change(&outcome, None, NOW);
        let event = change
            .event
            .clone()
            .expect("a first outcome publishes an event");
        assert_eq!(event.type_, type_, "{outcome:?}");
        assert_eq!(event.reason, reason, "{outcome:?}");
        assert_eq!(
            Some(event.note.as_str()),
            only_ready(&change).message.as_deref(),
            "the note is the condition message"
        );
    }
}

#[test]
fn status_change_waiting_twice_publishes_one_event() {
    let first = status_change(&Outcome::WaitingForApproval, None, NOW);
    assert_eq!(
        first.event,
        Some(EventNote {
            type_: EventType::Normal,
            reason: EVENT_WAITING_FOR_APPROVAL,
            note: MESSAGE_WAITING_FOR_APPROVAL.into(),
        })
    );
    let stored = apply(None, &first);
    let second = status_change(
        &Outcome::WaitingForApproval,
        Some(&stored),
        NOW + Duration::minutes(5),
    );
    assert_eq!(second.event, None);
    assert!(!second.changes_anything);
    assert_eq!(second.status, first.status, "the re-apply is identical");
}

#[test]
fn status_change_pending_with_the_same_message_twice_publishes_one_event() {
    let pending = Outcome::Pending {
        message: "RelayIssuer team-a/relay is not ready".into(),
    };
    let current = with_conditions(vec![approved()]);
    let first = status_change(&pending, Some(&current), NOW);
    assert_eq!(first.event.as_ref().map(|e| e.reason), Some("Pending"));
    let stored = apply(Some(&current), &first);
    let second = status_change(&pending, Some(&stored), NOW + Duration::minutes(1));
    assert_eq!(second.event, None);
    assert!(!second.changes_anything);

    // A different message is news: a second event and a write, but the same transition time.
    let other = Outcome::Pending {
        message: "the signing Secret was not found".into(),
    };
    let third = status_change(&other, Some(&stored), NOW + Duration::minutes(2));
    assert_eq!(
        third.event.as_ref().map(|e| e.note.as_str()),
        Some("the signing Secret was not found")
    );
    assert!(third.changes_anything);
    assert_eq!(only_ready(&third).last_transition_time, Some(k8s_time(NOW)));
}

#[test]
fn status_change_waiting_then_pending_publishes_a_new_event() {
    let first = status_change(&Outcome::WaitingForApproval, None, NOW);
    let stored = apply(None, &first);
    let pending = Outcome::Pending {
        message: "later".into(),
    };
    let second = status_change(&pending, Some(&stored), NOW);
    assert_eq!(
        second.event,
        Some(EventNote {
            type_: EventType::Warning,
            reason: REASON_PENDING,
            note: "later".into()
        })
    );
}

#[test]
fn status_change_identical_re_apply_changes_nothing_for_every_outcome() {
    for outcome in every_outcome() {
        let current = with_conditions(vec![approved()]);
        let first = status_change(&outcome, Some(&current), NOW);
        assert!(first.changes_anything, "{outcome:?}");
        let stored = apply(Some(&current), &first);
        let again = status_change(&outcome, Some(&stored), NOW + Duration::hours(1));
        assert!(!again.changes_anything, "{outcome:?}: {again:?}");
        assert_eq!(again.event, None, "{outcome:?}");
        assert_eq!(again.status, first.status, "{outcome:?}");
    }
}

#[test]
fn status_change_same_reason_and_message_but_missing_transition_time_is_written() {
    let mut previous = cond(
        CONDITION_READY,
        ConditionStatus::False,
        Some(REASON_PENDING),
        Some(MESSAGE_WAITING_FOR_APPROVAL),
    );
    previous.last_transition_time = None;
    let current = with_conditions(vec![previous]);
    let change = status_change(&Outcome::WaitingForApproval, Some(&current), NOW);
    assert!(change.changes_anything, "the transition time is new");
    assert_eq!(change.event, None, "reason and message are unchanged");
}

#[test]
fn outcome_from_sign_error_by_disposition() {
    let failed = Outcome::from_sign_error(&PkiError::CaNotAllowed.into());
    let Outcome::Failed { message } = &failed else {
        panic!("permanent errors fail: {failed:?}")
    };
    assert!(
        message.starts_with("The CSR cannot be signed: "),
        "{message}"
    );
    assert!(
        message.contains(&PkiError::CaNotAllowed.to_string()),
        "{message}"
    );

    let pending = Outcome::from_sign_error(&PkiError::CaKeyMissing.into());
    let Outcome::Pending { message } = &pending else {
        panic!("retryable errors are pending: {pending:?}")
    };
    assert!(
        message.starts_with("Not signed yet, will retry: "),
        "{message}"
    );
    assert!(
        message.contains(&PkiError::CaKeyMissing.to_string()),
        "{message}"
    );
}

#[test]
fn outcome_metric_labels() {
    let labels: Vec<&str> = every_outcome().iter().map(Outcome::metric_label).collect();
    assert_eq!(
        labels,
        [
            "waiting_for_approval",
            "denied",
            "denied",
            "issued",
            "pending",
            "failed"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// pending_backoff
// ---------------------------------------------------------------------------------------------

#[test]
fn pending_backoff_doubles_from_base() {
    let base = StdDuration::from_secs(1);
    let max = StdDuration::from_secs(300);
    let waits: Vec<u64> = (0..=8)
        .map(|attempt| pending_backoff(attempt, base, max).as_secs())
        .collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256]);
    assert_eq!(
        pending_backoff(3, StdDuration::from_millis(250), max),
        StdDuration::from_secs(2)
    );
}

#[test]
fn pending_backoff_is_capped_at_max() {
    let base = StdDuration::from_secs(1);
    let max = StdDuration::from_secs(300);
    assert_eq!(pending_backoff(9, base, max), max);
    assert_eq!(pending_backoff(20, base, max), max);
    // A base above the cap is capped too.
    assert_eq!(pending_backoff(0, StdDuration::from_secs(600), max), max);
}

#[test]
fn pending_backoff_huge_attempts_do_not_overflow() {
    let max = StdDuration::from_secs(300);
    for attempt in [30, 31, 32, 33, 63, 64, 1_000, u32::MAX] {
        assert_eq!(
            pending_backoff(attempt, StdDuration::from_secs(1), max),
            max,
            "attempt {attempt}"
        );
        assert_eq!(
            pending_backoff(attempt, StdDuration::MAX, StdDuration::MAX),
            StdDuration::MAX,
            "attempt {attempt}"
        );
    }
}

#[test]
fn pending_backoff_zero_base_stays_zero() {
    assert_eq!(
        pending_backoff(10, StdDuration::ZERO, StdDuration::from_secs(300)),
        StdDuration::ZERO
    );
}

// ---------------------------------------------------------------------------------------------
// load_signing_ca
// ---------------------------------------------------------------------------------------------

#[test]
fn load_signing_ca_not_found_names_secret_and_namespace() {
    let error = load_signing_ca(namespaced_location(), SecretData::NotFound, NOW).unwrap_err();
    assert_eq!(error.reason, "SecretNotFound");
    assert!(
        error.message.contains("\"relay-tls-signing-secret\""),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("namespace \"team-a\""),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("the RelayIssuer's own namespace"),
        "{}",
        error.message
    );
    assert!(error.message.contains("was not found"), "{}", error.message);
    assert!(
        !error.message.contains("cluster-resource-namespace"),
        "{}",
        error.message
    );
}

#[test]
fn load_signing_ca_not_found_for_cluster_issuer_hints_at_cluster_resource_namespace() {
    let error = load_signing_ca(cluster_location(), SecretData::NotFound, NOW).unwrap_err();
    assert_eq!(error.reason, "SecretNotFound");
    assert!(
        error.message.contains("namespace \"cert-manager\""),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("cluster resource namespace"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("--cluster-resource-namespace"),
        "{}",
        error.message
    );
}

#[test]
fn load_signing_ca_missing_or_empty_keys_are_named() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let crt = pki.intermediate_pem.as_str();
    let key = pki.intermediate_key_pem.as_str();
    let cases = [
        (None, Some(key), "has no tls.crt;"),
        (Some(""), Some(key), "has no tls.crt;"),
        (Some(crt), None, "has no tls.key;"),
        (Some(crt), Some(""), "has no tls.key;"),
        (None, None, "has no tls.crt or tls.key;"),
        (Some(""), Some(""), "has no tls.crt or tls.key;"),
    ];
    for (tls_crt, tls_key, expected) in cases {
        for location in [namespaced_location(), cluster_location()] {
            let error = load_signing_ca(location, found(tls_crt, tls_key, None), NOW).unwrap_err();
            assert_eq!(error.reason, "SecretMissingKeys");
            assert!(
                error.message.contains(expected),
                "{expected}: {}",
                error.message
            );
            assert!(
                error
                    .message
                    .contains(&format!("namespace {:?}", location.namespace)),
                "{}",
                error.message
            );
            assert!(
                error.message.contains("\"relay-tls-signing-secret\""),
                "{}",
                error.message
            );
        }
    }
}

#[test]
fn load_signing_ca_key_mismatch() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let other = generate_key(GeneratedKeyType::P256)
        .unwrap()
        .serialize_pem();
    let error = load_signing_ca(
        namespaced_location(),
        found(
            Some(&pki.intermediate_pem),
            Some(&other),
            Some(&pki.root_pem),
        ),
        NOW,
    )
    .unwrap_err();
    assert_eq!(error.reason, "KeyMismatch");
    assert!(
        error.message.contains("does not match"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("namespace \"team-a\""),
        "{}",
        error.message
    );
}

#[test]
fn load_signing_ca_not_a_ca() {
    for is_ca in [IsCa::NoCa, IsCa::ExplicitNoCa] {
        let (cert, key) = leaf_certificate(is_ca);
        let error = load_signing_ca(
            namespaced_location(),
            found(Some(&cert), Some(&key), None),
            NOW,
        )
        .unwrap_err();
        assert_eq!(error.reason, "NotACA");
        assert!(error.message.contains("is not a CA"), "{}", error.message);
        assert!(
            error.message.contains("not a ca"),
            "the subject: {}",
            error.message
        );
    }
}

#[test]
fn load_signing_ca_expired() {
    let pki = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(10));
    let error = load(&pki, NOW + Duration::days(11)).unwrap_err();
    assert_eq!(error.reason, "CAExpired");
    assert!(
        error
            .message
            .contains(&format_time(NOW + Duration::days(10))),
        "{}",
        error.message
    );
}

#[test]
fn load_signing_ca_not_yet_valid() {
    let pki = mk_pki(GeneratedKeyType::P256);
    // The intermediate is valid from NOW - 1 day.
    let error = load(&pki, NOW - Duration::days(2)).unwrap_err();
    assert_eq!(error.reason, "CANotYetValid");
    assert!(
        error
            .message
            .contains(&format_time(NOW - Duration::days(1))),
        "{}",
        error.message
    );
}

#[test]
fn load_signing_ca_invalid_certificate_key_and_chain() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let other = mk_pki(GeneratedKeyType::P256);
    let key = pki.intermediate_key_pem.as_str();
    let crt = pki.intermediate_pem.as_str();
    let cases = [
        (
            found(Some("not pem at all"), Some(key), None),
            "CACertificateInvalid",
        ),
        (
            found(
                Some("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
                Some(key),
                None,
            ),
            "CACertificateInvalid",
        ),
        (found(Some(crt), Some("not a key"), None), "CAKeyInvalid"),
        (
            found(Some(crt), Some(key), Some(&other.root_pem)),
            "ChainBroken",
        ),
    ];
    for (data, reason) in cases {
        let error = load_signing_ca(namespaced_location(), data, NOW).unwrap_err();
        assert_eq!(error.reason, reason, "{}", error.message);
        assert!(
            error
                .message
                .starts_with("Secret \"relay-tls-signing-secret\" in namespace \"team-a\""),
            "{}",
            error.message
        );
    }
}

#[test]
fn load_signing_ca_good_ca_loads() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = load(&pki, NOW).unwrap();
    assert_eq!(ca.subject(), "CN=test intermediate");
    assert_eq!(ca.not_after(), NOW + Duration::days(1825));
    assert_eq!(ca.root_source(), RootSource::CaCrt);
    assert_eq!(
        ca.root_pem().replace('\r', "").trim(),
        pki.root_pem.replace('\r', "").trim()
    );

    // Without ca.crt, an intermediate alone loads but no root is known.
    let ca = load_signing_ca(
        cluster_location(),
        found(
            Some(&pki.intermediate_pem),
            Some(&pki.intermediate_key_pem),
            Some(""),
        ),
        NOW,
    )
    .unwrap();
    assert_eq!(ca.root_source(), RootSource::NoRootKnown);
}

#[test]
fn load_signing_ca_messages_never_contain_private_key_material() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let expired = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(1));
    let (leaf, leaf_key) = leaf_certificate(IsCa::NoCa);
    let wrong_key = generate_key(GeneratedKeyType::P256)
        .unwrap()
        .serialize_pem();
    let key = pki.intermediate_key_pem.as_str();
    let crt = pki.intermediate_pem.as_str();
    let truncated_key = &key[..key.len() / 2];
    let broken_key = key.replace("-----END PRIVATE KEY-----", "");
    let mangled_key = key.replacen('M', "!", 3);
    let key_as_certificate = key.replace("PRIVATE KEY", "CERTIFICATE");

    let cases: Vec<(SecretData<'_>, OffsetDateTime, Vec<&str>)> = vec![
        // Swapped keys.
        (found(Some(key), Some(crt), None), NOW, vec![key]),
        // The key in every slot.
        (found(Some(key), Some(key), Some(key)), NOW, vec![key]),
        (found(Some(crt), Some(key), Some(key)), NOW, vec![key]),
        (
            found(Some(&key_as_certificate), Some(key), None),
            NOW,
            vec![key],
        ),
        // Malformed keys.
        (found(Some(crt), Some(truncated_key), None), NOW, vec![key]),
        (found(Some(crt), Some(&broken_key), None), NOW, vec![key]),
        (found(Some(crt), Some(&mangled_key), None), NOW, vec![key]),
        // Well-formed keys that are refused.
        (
            found(Some(crt), Some(&wrong_key), None),
            NOW,
            vec![key, wrong_key.as_str()],
        ),
        (
            found(Some(&leaf), Some(&leaf_key), None),
            NOW,
            vec![leaf_key.as_str()],
        ),
        (
            found(
                Some(&expired.intermediate_pem),
                Some(&expired.intermediate_key_pem),
                None,
            ),
            NOW + Duration::days(2),
            vec![expired.intermediate_key_pem.as_str()],
        ),
        (
            found(Some(crt), Some(key), None),
            NOW - Duration::days(2),
            vec![key],
        ),
        (found(None, Some(key), None), NOW, vec![key]),
    ];
    for (data, now, secrets) in cases {
        for location in [namespaced_location(), cluster_location()] {
            let error = load_signing_ca(location, data, now).unwrap_err();
            for secret in &secrets {
                assert_no_key_material(&error.message, secret);
                assert_no_key_material(
                    &issuer_not_ready_message(
                        &IssuerRef::Cluster {
                            name: "relay".into(),
                        },
                        &error,
                    ),
                    secret,
                );
                let ready = readiness(location, Err(&error), now);
                assert_no_key_material(&ready.message, secret);
            }
        }
    }
}

/// Asserts `message` holds no part of the PEM `key_pem`: not the whole, no body line, and no
/// 16-character run of its base64 body.
fn assert_no_key_material(message: &str, key_pem: &str) {
    let key_pem = key_pem.replace('\r', "");
    assert!(!message.contains(key_pem.trim()), "{message}");
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(body.len() > 64, "a real key body");
    for line in key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
    {
        assert!(!message.contains(line), "key line in {message}");
    }
    let chars: Vec<char> = body.chars().collect();
    for window in chars.windows(16) {
        let run: String = window.iter().collect();
        assert!(!message.contains(&run), "key material {run:?} in {message}");
    }
}

#[test]
fn ca_error_reasons() {
    let cases = [
        (PkiError::CaCertificateMissing, "CACertificateInvalid"),
        (
            PkiError::CaCertificateInvalid {
                source_name: "tls.crt",
                index: 1,
                detail: "x".into(),
            },
            "CACertificateInvalid",
        ),
        (PkiError::CaKeyMissing, "CAKeyInvalid"),
        (
            PkiError::CaKeyInvalid { detail: "x".into() },
            "CAKeyInvalid",
        ),
        (
            PkiError::CaNotCa {
                subject: "s".into(),
                detail: "d".into(),
            },
            "NotACA",
        ),
        (
            PkiError::CaNotYetValid {
                subject: "s".into(),
                not_before: "t".into(),
            },
            "CANotYetValid",
        ),
        (
            PkiError::CaExpired {
                subject: "s".into(),
                not_after: "t".into(),
            },
            "CAExpired",
        ),
        (
            PkiError::CaKeyMismatch {
                subject: "s".into(),
                detail: "d".into(),
            },
            "KeyMismatch",
        ),
        (
            PkiError::CaChainBroken { detail: "d".into() },
            "ChainBroken",
        ),
        (PkiError::CaNotAllowed, "CAInvalid"),
    ];
    for (error, reason) in cases {
        assert_eq!(ca_error_reason(&error), reason, "{error:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// readiness
// ---------------------------------------------------------------------------------------------

#[test]
fn readiness_of_a_good_ca_is_ca_verified() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = load(&pki, NOW).unwrap();
    let r = readiness(namespaced_location(), Ok(CaFacts::from(&ca)), NOW);
    assert!(r.ready);
    assert_eq!(r.reason, "CAVerified");
    assert!(!r.expiring_soon);
    assert_eq!(
        r.message,
        format!(
            "Signing CA CN=test intermediate from Secret \"relay-tls-signing-secret\" in namespace \"team-a\" (the RelayIssuer's own namespace) verified: a CA, valid until {}, key matches certificate",
            format_time(NOW + Duration::days(1825))
        )
    );
}

#[test]
fn readiness_within_thirty_days_is_expiring_soon_but_ready() {
    let not_after = NOW + Duration::days(10) + Duration::hours(5);
    let r = readiness_at(facts(NOW - Duration::days(300), not_after, true), NOW);
    assert!(r.ready);
    assert!(r.expiring_soon);
    assert_eq!(r.reason, "CAExpiringSoon");
    assert!(r.message.contains("expires in 10 days"), "{}", r.message);
    assert!(
        r.message
            .contains(&format!("at {}", format_time(not_after))),
        "{}",
        r.message
    );
    assert!(r.message.contains("CN=relay intermediate"), "{}", r.message);
    assert!(r.message.contains("namespace \"team-a\""), "{}", r.message);
    assert!(r.message.contains("clamped"), "{}", r.message);
    assert!(!r.message.contains("no root is known"), "{}", r.message);
}

#[test]
fn readiness_expiry_warning_boundary_is_thirty_days() {
    let not_after = NOW + Duration::days(365);
    let ca = facts(NOW - Duration::days(1), not_after, true);
    let at_boundary = readiness_at(ca, not_after - CA_EXPIRY_WARNING);
    assert_eq!(at_boundary.reason, "CAExpiringSoon");
    assert!(
        at_boundary.message.contains("expires in 30 days"),
        "{}",
        at_boundary.message
    );
    let before = readiness_at(ca, not_after - CA_EXPIRY_WARNING - Duration::seconds(1));
    assert_eq!(before.reason, "CAVerified");
    assert!(!before.expiring_soon);
    let last_second = readiness_at(ca, not_after);
    assert_eq!(last_second.reason, "CAExpiringSoon");
    assert!(last_second.ready, "notAfter itself is still valid");
    assert!(
        last_second.message.contains("expires in 0 days"),
        "{}",
        last_second.message
    );
}

#[test]
fn readiness_of_a_cached_ca_that_expired_after_loading_is_ca_expired() {
    let pki = mk_pki_until(GeneratedKeyType::P256, NOW + Duration::days(5));
    let ca = load(&pki, NOW).unwrap();
    let later = NOW + Duration::days(5) + Duration::seconds(1);
    for location in [namespaced_location(), cluster_location()] {
        let r = readiness(location, Ok(CaFacts::from(&ca)), later);
        assert!(!r.ready);
        assert!(!r.expiring_soon);
        assert_eq!(r.reason, "CAExpired");
        assert!(
            r.message.contains(&format!(
                "expired at {}",
                format_time(NOW + Duration::days(5))
            )),
            "{}",
            r.message
        );
        assert!(r.message.contains("CN=test intermediate"), "{}", r.message);
        assert!(
            r.message
                .contains(&format!("namespace {:?}", location.namespace)),
            "{}",
            r.message
        );
    }
}

#[test]
fn readiness_before_not_before_is_ca_not_yet_valid() {
    let not_before = NOW + Duration::hours(2);
    let r = readiness_at(facts(not_before, NOW + Duration::days(400), true), NOW);
    assert!(!r.ready);
    assert!(!r.expiring_soon);
    assert_eq!(r.reason, "CANotYetValid");
    assert!(
        r.message
            .contains(&format!("not valid until {}", format_time(not_before))),
        "{}",
        r.message
    );
    let at = readiness_at(
        facts(not_before, NOW + Duration::days(400), true),
        not_before,
    );
    assert_eq!(at.reason, "CAVerified", "notBefore itself is valid");
}

#[test]
fn readiness_says_when_no_root_is_known() {
    let verified = readiness_at(
        facts(NOW - Duration::days(1), NOW + Duration::days(400), false),
        NOW,
    );
    assert_eq!(verified.reason, "CAVerified");
    assert!(
        verified.message.contains("no root is known"),
        "{}",
        verified.message
    );
    assert!(
        verified.message.contains("add ca.crt"),
        "{}",
        verified.message
    );

    let expiring = readiness_at(
        facts(NOW - Duration::days(1), NOW + Duration::days(3), false),
        NOW,
    );
    assert_eq!(expiring.reason, "CAExpiringSoon");
    assert!(
        expiring.message.contains("no root is known"),
        "{}",
        expiring.message
    );

    let known = readiness_at(
        facts(NOW - Duration::days(1), NOW + Duration::days(400), true),
        NOW,
    );
    assert!(!known.message.contains("root"), "{}", known.message);
}

#[test]
fn readiness_from_a_real_ca_without_root() {
    let pki = mk_pki(GeneratedKeyType::P256);
    let ca = load_signing_ca(
        namespaced_location(),
        found(
            Some(&pki.intermediate_pem),
            Some(&pki.intermediate_key_pem),
            None,
        ),
        NOW,
    )
    .unwrap();
    let ca_facts = CaFacts::from(&ca);
    assert!(!ca_facts.root_known);
    let r = readiness(namespaced_location(), Ok(ca_facts), NOW);
    assert!(r.ready);
    assert!(r.message.contains("no root is known"), "{}", r.message);
}

#[test]
fn readiness_passes_a_load_failure_through() {
    let not_ready = NotReady {
        reason: "SecretNotFound",
        message: "Secret \"x\" in namespace \"y\" was not found".into(),
    };
    let r = readiness(namespaced_location(), Err(&not_ready), NOW);
    assert_eq!(
        r,
        Readiness {
            ready: false,
            reason: "SecretNotFound",
            message: not_ready.message.clone(),
            expiring_soon: false,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// next_readiness_change
// ---------------------------------------------------------------------------------------------

#[test]
fn next_readiness_change_picks_the_earliest_future_boundary() {
    let not_before = NOW + Duration::days(1);
    let not_after = NOW + Duration::days(100);
    let ca = facts(not_before, not_after, true);
    // Not yet valid: it becomes valid first.
    assert_eq!(next_readiness_change(ca, NOW), Some(not_before));
    // Valid, outside the window: it enters the warning window next.
    assert_eq!(
        next_readiness_change(ca, not_before),
        Some(not_after - CA_EXPIRY_WARNING)
    );
    // In the window (the window's start is not in the future): it expires next.
    assert_eq!(
        next_readiness_change(ca, not_after - CA_EXPIRY_WARNING),
        Some(not_after + Duration::seconds(1))
    );
    assert_eq!(
        next_readiness_change(ca, not_after),
        Some(not_after + Duration::seconds(1))
    );
    // Expired: nothing changes by the clock any more.
    assert_eq!(
        next_readiness_change(ca, not_after + Duration::seconds(1)),
        None
    );
    assert_eq!(
        next_readiness_change(ca, not_after + Duration::days(9)),
        None
    );
}

#[test]
fn next_readiness_change_for_a_short_lived_ca_not_yet_valid() {
    // The warning window starts before notBefore: the next change is still the earliest
    // future boundary.
    let not_before = NOW + Duration::days(2);
    let not_after = NOW + Duration::days(10);
    let ca = facts(not_before, not_after, true);
    assert_eq!(
        next_readiness_change(ca, NOW + Duration::days(1)),
        Some(not_before)
    );
    assert_eq!(
        next_readiness_change(ca, not_before),
        Some(not_after + Duration::seconds(1))
    );
    // Before the (past-dated) warning window too, the window start comes first.
    assert_eq!(
        next_readiness_change(ca, NOW - Duration::days(30)),
        Some(not_after - CA_EXPIRY_WARNING)
    );
}

// ---------------------------------------------------------------------------------------------
// issuer_condition
// ---------------------------------------------------------------------------------------------

fn verified() -> Readiness {
    Readiness {
        ready: true,
        reason: "CAVerified",
        message: "verified".into(),
        expiring_soon: false,
    }
}

#[test]
fn issuer_condition_new_condition() {
    let c = issuer_condition(&verified(), None, Some(3), NOW);
    assert_eq!(
        c,
        IssuerCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("CAVerified".into()),
            message: Some("verified".into()),
            last_transition_time: Some(k8s_time(NOW)),
            observed_generation: Some(3),
        }
    );
    let not_ready = Readiness {
        ready: false,
        reason: "SecretNotFound",
        message: "missing".into(),
        expiring_soon: false,
    };
    let c = issuer_condition(&not_ready, None, None, NOW);
    assert_eq!(c.status, "False");
    assert_eq!(c.reason.as_deref(), Some("SecretNotFound"));
    assert_eq!(c.message.as_deref(), Some("missing"));
    assert_eq!(c.observed_generation, None);
}

#[test]
fn issuer_condition_keeps_last_transition_time_while_status_is_unchanged() {
    let earlier = NOW - Duration::days(3);
    let previous = issuer_condition(&verified(), None, Some(1), earlier);
    let expiring = Readiness {
        ready: true,
        reason: "CAExpiringSoon",
        message: "expires in 3 days".into(),
        expiring_soon: true,
    };
    let c = issuer_condition(&expiring, Some(&previous), Some(2), NOW);
    assert_eq!(c.status, "True");
    assert_eq!(c.last_transition_time, Some(k8s_time(earlier)));
    assert_eq!(c.reason.as_deref(), Some("CAExpiringSoon"));
    assert_eq!(c.message.as_deref(), Some("expires in 3 days"));
    assert_eq!(
        c.observed_generation,
        Some(2),
        "observedGeneration follows the spec"
    );
}

#[test]
fn issuer_condition_resets_last_transition_time_when_status_changes() {
    let previous = issuer_condition(&verified(), None, Some(1), NOW - Duration::days(3));
    let expired = Readiness {
        ready: false,
        reason: "CAExpired",
        message: "expired".into(),
        expiring_soon: false,
    };
    let c = issuer_condition(&expired, Some(&previous), Some(1), NOW);
    assert_eq!(c.status, "False");
    assert_eq!(c.last_transition_time, Some(k8s_time(NOW)));

    let mut no_time = previous;
    no_time.last_transition_time = None;
    let c = issuer_condition(&verified(), Some(&no_time), Some(1), NOW);
    assert_eq!(c.last_transition_time, Some(k8s_time(NOW)));
}

// ---------------------------------------------------------------------------------------------
// signing_policy
// ---------------------------------------------------------------------------------------------

#[test]
fn signing_policy_parses_max_duration_and_carries_the_rest() {
    let policy = IssuerPolicy {
        allow_ca: true,
        max_duration: Some("8760h".into()),
        clamp_to_ca: false,
    };
    let p = signing_policy(&policy, Duration::minutes(5)).unwrap();
    assert_eq!(p.max_duration, Some(Duration::hours(8760)));
    assert!(p.allow_ca);
    assert!(!p.clamp_to_ca);
    assert_eq!(p.backdate, Duration::minutes(5));

    let p = signing_policy(
        &IssuerPolicy {
            max_duration: Some("1h30m".into()),
            ..IssuerPolicy::default()
        },
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(p.max_duration, Some(Duration::minutes(90)));
    assert!(!p.allow_ca);
    assert!(p.clamp_to_ca);
}

#[test]
fn signing_policy_absent_or_empty_max_duration_is_no_limit() {
    for max_duration in [None, Some(String::new())] {
        let p = signing_policy(
            &IssuerPolicy {
                max_duration,
                ..IssuerPolicy::default()
            },
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(p.max_duration, None);
    }
}

#[test]
fn signing_policy_garbage_max_duration_is_invalid_policy() {
    for garbage in ["forever", "365d", "h", "10", "1h-", "  "] {
        let error = signing_policy(
            &IssuerPolicy {
                max_duration: Some(garbage.into()),
                ..IssuerPolicy::default()
            },
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(error.reason, "InvalidPolicy", "{garbage:?}");
        assert!(
            error
                .message
                .starts_with("spec.policy.maxDuration is invalid: "),
            "{}",
            error.message
        );
        assert!(error.message.contains(garbage.trim()), "{}", error.message);
    }
}

// ---------------------------------------------------------------------------------------------
// messages
// ---------------------------------------------------------------------------------------------

#[test]
fn issuer_not_ready_message_names_issuer_reason_and_cause() {
    let issuer = IssuerRef::Namespaced {
        namespace: NS.into(),
        name: "relay".into(),
    };
    let not_ready = NotReady {
        reason: "KeyMismatch",
        message: "tls.key does not match".into(),
    };
    assert_eq!(
        issuer_not_ready_message(&issuer, &not_ready),
        "RelayIssuer team-a/relay is not ready (KeyMismatch): tls.key does not match"
    );
}

#[test]
fn issuer_missing_message_explains_where_it_was_looked_for() {
    let namespaced = issuer_missing_message(&IssuerRef::Namespaced {
        namespace: NS.into(),
        name: "relay".into(),
    });
    assert!(
        namespaced.starts_with("RelayIssuer team-a/relay not found"),
        "{namespaced}"
    );
    assert!(
        namespaced.contains("no RelayIssuer \"relay\" in namespace \"team-a\""),
        "{namespaced}"
    );
    assert!(
        namespaced.contains("use kind RelayClusterIssuer"),
        "{namespaced}"
    );
    assert!(
        namespaced.contains("waiting for it to be created"),
        "{namespaced}"
    );

    let cluster = issuer_missing_message(&IssuerRef::Cluster {
        name: "relay".into(),
    });
    assert_eq!(
        cluster,
        "RelayClusterIssuer relay not found: no RelayClusterIssuer \"relay\"; waiting for it to be created"
    );
}

#[test]
fn unknown_kind_message_names_the_kind_and_the_served_kinds() {
    let message = unknown_kind_message("RelayIssuers");
    assert!(message.contains("\"RelayIssuers\""), "{message}");
    assert!(message.contains("relaytls.dev"), "{message}");
    assert!(
        message.contains("use RelayIssuer or RelayClusterIssuer"),
        "{message}"
    );
    assert!(message.contains("spec is immutable"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn outcome_strategy() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::WaitingForApproval),
        proptest::option::of("[ -~]{0,24}")
            .prop_map(|approver_message| Outcome::Denied { approver_message }),
        ("[ -~]{0,24}", "[ -~]{0,24}", "[ -~]{0,24}").prop_map(|(chain_pem, ca_pem, summary)| {
            Outcome::Issued {
                chain_pem,
                ca_pem,
                summary,
            }
        }),
        "[ -~]{0,24}".prop_map(|message| Outcome::Pending { message }),
        "[ -~]{0,24}".prop_map(|message| Outcome::Failed { message }),
    ]
}

fn condition_strategy() -> impl Strategy<Value = CertificateRequestCondition> {
    (
        prop_oneof![
            Just(CONDITION_READY),
            Just(CONDITION_APPROVED),
            Just(CONDITION_DENIED),
            Just(CONDITION_INVALID_REQUEST),
        ],
        prop_oneof![
            Just(ConditionStatus::True),
            Just(ConditionStatus::False),
            Just(ConditionStatus::Unknown),
        ],
        proptest::option::of(prop_oneof![
            Just(REASON_PENDING),
            Just(REASON_ISSUED),
            Just(REASON_FAILED),
            Just(REASON_DENIED),
            Just("Other"),
        ]),
    )
        .prop_map(|(type_, status, reason)| cond(type_, status, reason, Some("m")))
}

fn status_strategy() -> impl Strategy<Value = CertificateRequestStatus> {
    (
        proptest::collection::vec(condition_strategy(), 0..5),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut conditions, certificate, failure)| {
            // A list-map keyed by type: one entry per type.
            let mut seen = Vec::new();
            conditions.retain(|c| {
                let first = !seen.contains(&c.type_);
                seen.push(c.type_.clone());
                first
            });
            CertificateRequestStatus {
                conditions,
                certificate: certificate.then(|| ByteString(b"cert".to_vec())),
                ca: None,
                failure_time: failure.then(|| k8s_time(NOW - Duration::days(1))),
            }
        })
}

proptest! {
    #[test]
    fn prop_pending_backoff_is_monotone_and_capped(
        attempt in any::<u32>(),
        base_ms in 0u64..10_000_000,
        max_ms in 0u64..100_000_000,
    ) {
        let base = StdDuration::from_millis(base_ms);
        let max = StdDuration::from_millis(max_ms);
        let now = pending_backoff(attempt, base, max);
        prop_assert!(now <= max);
        if attempt < u32::MAX {
            prop_assert!(pending_backoff(attempt + 1, base, max) >= now);
        }
        if attempt < 20 {
            let expected = base.saturating_mul(1 << attempt).min(max);
            prop_assert_eq!(now, expected);
        }
    }

    #[test]
    fn prop_pending_backoff_monotone_across_any_two_attempts(
        a in any::<u32>(),
        b in any::<u32>(),
        base_nanos in any::<u64>(),
        max_secs in any::<u64>(),
    ) {
        let base = StdDuration::from_nanos(base_nanos);
        let max = StdDuration::from_secs(max_secs);
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(pending_backoff(lo, base, max) <= pending_backoff(hi, base, max));
        prop_assert!(pending_backoff(hi, base, max) <= max);
    }

    #[test]
    fn prop_route_other_groups_are_never_ours(
        group in proptest::option::of("[a-z.-]{0,20}"),
        kind in proptest::option::of("[A-Za-z]{0,20}"),
    ) {
        prop_assume!(group.as_deref() != Some(GROUP));
        prop_assert_eq!(route(group.as_deref(), kind.as_deref(), "n", NS), Route::NotOurs);
    }

    #[test]
    fn prop_next_step_never_signs_an_ended_or_denied_request(status in status_strategy()) {
        let step = next_step(Some(&status));
        let ready_reason = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .and_then(|c| c.reason.as_deref());
        let ended = matches!(ready_reason, Some("Issued" | "Failed" | "Denied"))
            || status.certificate.is_some()
            || status.is_true(CONDITION_INVALID_REQUEST);
        if ended {
            prop_assert_eq!(step, Step::Finished);
        } else if status.is_true(CONDITION_DENIED) {
            prop_assert!(matches!(step, Step::Deny { .. }), "{:?}", step);
        } else if status.is_true(CONDITION_APPROVED) {
            prop_assert_eq!(step, Step::Sign);
        } else {
            prop_assert_eq!(step, Step::WaitForApproval);
        }
    }

    #[test]
    fn prop_status_change_reapply_is_a_fixed_point(
        outcome in outcome_strategy(),
        current in proptest::option::of(status_strategy()),
        later_secs in 0i64..10_000_000,
    ) {
        let first = status_change(&outcome, current.as_ref(), NOW);
        prop_assert_eq!(first.status.conditions.len(), 1);
        prop_assert_eq!(first.status.conditions[0].type_.as_str(), CONDITION_READY);
        let stored = apply(current.as_ref(), &first);
        let again = status_change(&outcome, Some(&stored), NOW + Duration::seconds(later_secs));
        prop_assert!(!again.changes_anything, "{:?}", again);
        prop_assert_eq!(again.event, None);
        prop_assert_eq!(&again.status, &first.status);
    }

    #[test]
    fn prop_status_change_event_iff_reason_or_message_changes(
        first_outcome in outcome_strategy(),
        second_outcome in outcome_strategy(),
    ) {
        let first = status_change(&first_outcome, None, NOW);
        let stored = apply(None, &first);
        let second = status_change(&second_outcome, Some(&stored), NOW + Duration::minutes(1));
        let (a, b) = (only_ready(&first), only_ready(&second));
        let news = a.reason != b.reason || a.message != b.message;
        prop_assert_eq!(second.event.is_some(), news);
        if news {
            prop_assert!(second.changes_anything);
        }
        // lastTransitionTime moves exactly when the status does.
        if a.status == b.status {
            prop_assert_eq!(&b.last_transition_time, &a.last_transition_time);
        } else {
            prop_assert_eq!(&b.last_transition_time, &Some(k8s_time(NOW + Duration::minutes(1))));
        }
    }

    #[test]
    fn prop_next_readiness_change_is_the_next_moment_readiness_can_change(
        not_before_h in -2_000i64..2_000,
        life_h in 1i64..20_000,
        now_h in -4_000i64..25_000,
        now_s in 0i64..3_600,
    ) {
        let not_before = NOW + Duration::hours(not_before_h);
        let not_after = not_before + Duration::hours(life_h);
        let now = NOW + Duration::hours(now_h) + Duration::seconds(now_s);
        let ca = facts(not_before, not_after, true);
        let boundaries = [
            not_before,
            not_after - CA_EXPIRY_WARNING,
            not_after + Duration::seconds(1),
        ];
        let here = readiness_at(ca, now);
        match next_readiness_change(ca, now) {
            Some(next) => {
                prop_assert!(next > now);
                prop_assert!(boundaries.contains(&next));
                prop_assert!(boundaries.iter().all(|b| *b <= now || *b >= next));
                // Nothing changes before it.
                let just_before = readiness_at(ca, next - Duration::seconds(1));
                prop_assert_eq!(just_before.reason, here.reason);
                prop_assert_eq!(just_before.ready, here.ready);
            }
            None => {
                prop_assert_eq!(here.reason, "CAExpired");
                prop_assert!(!here.ready);
            }
        }
    }
}

#[test]
fn signing_policy_refuses_a_zero_or_negative_max_duration() {
    for text in ["0s", "-1h"] {
        let error = signing_policy(
            &IssuerPolicy {
                max_duration: Some(text.into()),
                ..IssuerPolicy::default()
            },
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(error.reason, "InvalidPolicy", "{text}");
        assert!(error.message.contains("positive"), "{}", error.message);
    }
}
