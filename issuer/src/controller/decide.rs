//! The controller's decisions as pure functions: which requests are ours, what step a request
//! is at, what status and event each outcome produces, whether an issuer is Ready, and how long
//! to wait before retrying.
//!
//! Nothing here performs I/O or reads a clock: callers pass the observed objects and `now`,
//! and apply what comes back (`requests.rs`, `issuers.rs`). No kube client, no network types;
//! cert-manager's and our API *types* are plain data and appear here.

use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};

use crate::api::{GROUP, IssuerCondition, IssuerPolicy, KIND_CLUSTER_ISSUER, KIND_ISSUER};
use crate::cert_manager::types::{
    CertificateRequestCondition, CertificateRequestStatus, ConditionStatus,
};
use crate::cert_manager::{
    CONDITION_APPROVED, CONDITION_DENIED, CONDITION_INVALID_REQUEST, CONDITION_READY,
    REASON_DENIED, REASON_FAILED, REASON_ISSUED, REASON_PENDING,
};
use crate::k8s::kube_time;
use crate::pki::{Error as PkiError, SigningCa, SigningPolicy, format_time, parse_duration};
use crate::{Disposition, Error};

/// The field manager of every status write, so server-side apply owns exactly our fields.
pub const FIELD_MANAGER: &str = "relay-issuer";
/// Event reason: the request is not approved yet.
pub const EVENT_WAITING_FOR_APPROVAL: &str = "WaitingForApproval";
/// Event reason: a certificate was issued.
pub const EVENT_CERTIFICATE_ISSUED: &str = "CertificateIssued";
/// Message while a request waits for an approver (cert-manager's wording).
pub const MESSAGE_WAITING_FOR_APPROVAL: &str =
    "Not signing CertificateRequest until it is Approved";
/// A CA expiring within this window keeps the issuer Ready but says so.
pub const CA_EXPIRY_WARNING: Duration = Duration::days(30);

/// Which issuer a request names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IssuerRef {
    /// A `RelayIssuer` in the request's namespace.
    Namespaced {
        /// The request's (and issuer's) namespace.
        namespace: String,
        /// The issuer's name.
        name: String,
    },
    /// A `RelayClusterIssuer`.
    Cluster {
        /// The issuer's name.
        name: String,
    },
}

impl IssuerRef {
    /// The kind, as users write it.
    pub fn kind(&self) -> &'static str {
        match self {
            IssuerRef::Namespaced { .. } => KIND_ISSUER,
            IssuerRef::Cluster { .. } => KIND_CLUSTER_ISSUER,
        }
    }

    /// The issuer's name.
    pub fn name(&self) -> &str {
        match self {
            IssuerRef::Namespaced { name, .. } | IssuerRef::Cluster { name } => name,
        }
    }

    /// The namespace its signing Secret is read from.
    pub fn secret_namespace<'a>(&'a self, cluster_resource_namespace: &'a str) -> &'a str {
        match self {
            IssuerRef::Namespaced { namespace, .. } => namespace,
            IssuerRef::Cluster { .. } => cluster_resource_namespace,
        }
    }
}

impl std::fmt::Display for IssuerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssuerRef::Namespaced { namespace, name } => {
                write!(f, "{KIND_ISSUER} {namespace}/{name}")
            }
            IssuerRef::Cluster { name } => write!(f, "{KIND_CLUSTER_ISSUER} {name}"),
        }
    }
}

/// Whether a request is ours, and for which issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `spec.issuerRef.group` is not `relaytls.dev`: another issuer's request.
    NotOurs,
    /// Ours, for this issuer.
    Issuer(IssuerRef),
    /// Our group, but a kind we do not serve.
    UnknownKind(String),
}

/// Routes a request by its `spec.issuerRef` (group, kind, name) and namespace. An empty group
/// is cert-manager's own (not ours); an empty kind means the namespaced issuer, as cert-manager
/// reads an empty kind as `Issuer`.
pub fn route(group: Option<&str>, kind: Option<&str>, name: &str, namespace: &str) -> Route {
    if group != Some(GROUP) {
        return Route::NotOurs;
    }
    match kind.unwrap_or("") {
        "" | "Issuer" | KIND_ISSUER => Route::Issuer(IssuerRef::Namespaced {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }),
        "ClusterIssuer" | KIND_CLUSTER_ISSUER => Route::Issuer(IssuerRef::Cluster {
            name: name.to_string(),
        }),
        other => Route::UnknownKind(other.to_string()),
    }
}

/// What to do with a request that is ours, judged from its status alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// It already has a certificate, or has ended (`Issued`, `Failed`, `Denied`, or cert-manager
    /// marked it `InvalidRequest`): never touch it again.
    Finished,
    /// Neither Approved nor Denied yet.
    WaitForApproval,
    /// Denied: record it, never sign.
    Deny {
        /// The approver's message, if any.
        approver_message: Option<String>,
    },
    /// Approved and open: sign it.
    Sign,
}

fn condition<'a>(
    status: &'a CertificateRequestStatus,
    type_: &str,
) -> Option<&'a CertificateRequestCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(status: &CertificateRequestStatus, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// The step a request is at. Denial wins over approval; a request that has ended is finished
/// whatever its approval says, so nothing is ever signed twice.
pub fn next_step(status: Option<&CertificateRequestStatus>) -> Step {
    let Some(status) = status else {
        return Step::WaitForApproval;
    };
    let ended = condition(status, CONDITION_READY).is_some_and(|ready| {
        matches!(
            ready.reason.as_deref(),
            Some(REASON_ISSUED | REASON_FAILED | REASON_DENIED)
        )
    });
    let has_certificate = status.certificate.as_ref().is_some_and(|c| !c.0.is_empty());
    if ended || has_certificate || is_true(status, CONDITION_INVALID_REQUEST) {
        return Step::Finished;
    }
    if is_true(status, CONDITION_DENIED) {
        return Step::Deny {
            approver_message: condition(status, CONDITION_DENIED).and_then(|c| c.message.clone()),
        };
    }
    if is_true(status, CONDITION_APPROVED) {
        return Step::Sign;
    }
    Step::WaitForApproval
}

/// How a reconcile of a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not approved yet.
    WaitingForApproval,
    /// Denied by an approver.
    Denied {
        /// The approver's message, if any.
        approver_message: Option<String>,
    },
    /// Signed.
    Issued {
        /// Leaf then intermediates, PEM.
        chain_pem: String,
        /// The root, PEM.
        ca_pem: String,
        /// What to tell the user (serial, expiry, clamping, missing root).
        summary: String,
    },
    /// Not signed yet, for a reason that may pass (retry with backoff).
    Pending {
        /// What is wrong and what to do.
        message: String,
    },
    /// Can never be signed as written.
    Failed {
        /// The precise reason.
        message: String,
    },
}

impl Outcome {
    /// The outcome of a signing attempt: errors are Failed or Pending by their disposition.
    pub fn from_sign_error(error: &Error) -> Self {
        match error.disposition() {
            Disposition::Permanent => Outcome::Failed {
                message: format!("The CSR cannot be signed: {error}"),
            },
            Disposition::Retryable => Outcome::Pending {
                message: format!("Not signed yet, will retry: {error}"),
            },
        }
    }

    /// A low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Outcome::WaitingForApproval => "waiting_for_approval",
            Outcome::Denied { .. } => "denied",
            Outcome::Issued { .. } => "issued",
            Outcome::Pending { .. } => "pending",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Progress.
    Normal,
    /// Something a person should look at.
    Warning,
}

/// An event to publish on the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason.
    pub reason: &'static str,
    /// The note (the condition message).
    pub note: String,
}

/// The status to apply (only the fields this controller owns) and the event to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusChange {
    /// `status` for server-side apply: the `Ready` condition alone, plus `certificate`, `ca`
    /// and `failureTime` when they are set. `Approved`/`Denied` are never in it.
    pub status: CertificateRequestStatus,
    /// Whether the apply changes anything at all (if not, skip the write).
    pub changes_anything: bool,
    /// Published only when the Ready condition's reason or message changes, so a request that
    /// waits or retries does not repeat its event.
    pub event: Option<EventNote>,
}

/// The status to apply for `outcome`, given the request's current status, as of `now`.
pub fn status_change(
    outcome: &Outcome,
    current: Option<&CertificateRequestStatus>,
    now: OffsetDateTime,
) -> StatusChange {
    let (status, reason, message, event_type, event_reason) = match outcome {
        Outcome::WaitingForApproval => (
            ConditionStatus::False,
            REASON_PENDING,
            MESSAGE_WAITING_FOR_APPROVAL.to_string(),
            EventType::Normal,
            EVENT_WAITING_FOR_APPROVAL,
        ),
        Outcome::Denied { approver_message } => (
            ConditionStatus::False,
            REASON_DENIED,
            match approver_message {
                Some(m) if !m.is_empty() => {
                    format!(
                        "The CertificateRequest was denied by an approver ({m}); it will not be signed"
                    )
                }
                _ => "The CertificateRequest was denied by an approver; it will not be signed"
                    .to_string(),
            },
            EventType::Warning,
            REASON_DENIED,
        ),
        Outcome::Issued { summary, .. } => (
            ConditionStatus::True,
            REASON_ISSUED,
            summary.clone(),
            EventType::Normal,
            EVENT_CERTIFICATE_ISSUED,
        ),
        Outcome::Pending { message } => (
            ConditionStatus::False,
            REASON_PENDING,
            message.clone(),
            EventType::Warning,
            REASON_PENDING,
        ),
        Outcome::Failed { message } => (
            ConditionStatus::False,
            REASON_FAILED,
            message.clone(),
            EventType::Warning,
            REASON_FAILED,
        ),
    };

    let previous = current.and_then(|s| condition(s, CONDITION_READY));
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.last_transition_time.is_some() => {
            p.last_transition_time.clone()
        }
        _ => Some(kube_time(now)),
    };
    let same_condition = previous.is_some_and(|p| {
        p.status == status
            && p.reason.as_deref() == Some(reason)
            && p.message.as_deref() == Some(message.as_str())
    });

    let terminal_failure = matches!(outcome, Outcome::Denied { .. } | Outcome::Failed { .. });
    let failure_time = if terminal_failure {
        current
            .and_then(|s| s.failure_time.clone())
            .or_else(|| Some(kube_time(now)))
    } else {
        None
    };
    let (certificate, ca) = match outcome {
        Outcome::Issued {
            chain_pem, ca_pem, ..
        } => (
            Some(k8s_openapi::ByteString(chain_pem.as_bytes().to_vec())),
            Some(k8s_openapi::ByteString(ca_pem.as_bytes().to_vec())),
        ),
        _ => (None, None),
    };
    let ready = CertificateRequestCondition {
        type_: CONDITION_READY.to_string(),
        status,
        reason: Some(reason.to_string()),
        message: Some(message.clone()),
        last_transition_time,
    };
    // Only what the apply would actually change: the Ready entry, and each field it sets.
    let changes_anything = previous != Some(&ready)
        || (certificate.is_some()
            && certificate.as_ref() != current.and_then(|s| s.certificate.as_ref()))
        || (ca.is_some() && ca.as_ref() != current.and_then(|s| s.ca.as_ref()))
        || (failure_time.is_some()
            && failure_time.as_ref() != current.and_then(|s| s.failure_time.as_ref()));
    StatusChange {
        status: CertificateRequestStatus {
            conditions: vec![ready],
            certificate,
            ca,
            failure_time,
        },
        changes_anything,
        event: (!same_condition).then_some(EventNote {
            type_: event_type,
            reason: event_reason,
            note: message,
        }),
    }
}

/// How long a Pending request waits before its `attempt`-th retry (0-based): `base × 2^attempt`,
/// capped at `max`. Watches on the issuer and its Secret re-queue it sooner when they change.
pub fn pending_backoff(attempt: u32, base: StdDuration, max: StdDuration) -> StdDuration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

// ---------------------------------------------------------------------------------------------
// Issuer readiness
// ---------------------------------------------------------------------------------------------

/// Why an issuer cannot sign (the `Ready=False` reason and message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// CamelCase reason for the condition.
    pub reason: &'static str,
    /// What is wrong and what to do; names the Secret and the namespace looked in.
    pub message: String,
}

/// What the controller found where the signing Secret should be.
#[derive(Clone, Copy, Debug)]
pub enum SecretData<'a> {
    /// No such Secret.
    NotFound,
    /// The Secret's keys (`None` when absent).
    Found {
        /// `tls.crt`.
        tls_crt: Option<&'a [u8]>,
        /// `tls.key`.
        tls_key: Option<&'a [u8]>,
        /// `ca.crt`.
        ca_crt: Option<&'a [u8]>,
    },
}

/// Where an issuer's Secret is, for messages.
#[derive(Clone, Copy, Debug)]
pub struct SecretLocation<'a> {
    /// The issuer kind (`RelayIssuer` or `RelayClusterIssuer`).
    pub issuer_kind: &'static str,
    /// The Secret's namespace.
    pub namespace: &'a str,
    /// The Secret's name.
    pub name: &'a str,
}

impl SecretLocation<'_> {
    fn describe(&self) -> String {
        let why = if self.issuer_kind == KIND_CLUSTER_ISSUER {
            " (the cluster resource namespace, where RelayClusterIssuer Secrets are read; set with --cluster-resource-namespace)"
        } else {
            " (the RelayIssuer's own namespace)"
        };
        format!(
            "Secret {:?} in namespace {:?}{why}",
            self.name, self.namespace
        )
    }
}

/// Loads and checks the signing CA from the Secret's data as of `now`: the Secret must exist
/// and hold `tls.crt` and `tls.key`, and the PKI core must accept them (a CA, within its
/// validity, key matching the certificate, chain linking). Every failure names the Secret and
/// its namespace.
pub fn load_signing_ca<'a>(
    location: SecretLocation<'_>,
    data: SecretData<'a>,
    now: OffsetDateTime,
) -> Result<SigningCa, NotReady> {
    let SecretData::Found {
        tls_crt,
        tls_key,
        ca_crt,
    } = data
    else {
        return Err(NotReady {
            reason: "SecretNotFound",
            message: format!(
                "{} was not found; create it with tls.crt, tls.key and ca.crt (`relay-issuer ca create` writes one)",
                location.describe()
            ),
        });
    };
    let present = |v: Option<&'a [u8]>| v.filter(|v| !v.is_empty());
    let (tls_crt, tls_key) = match (present(tls_crt), present(tls_key)) {
        (Some(crt), Some(key)) => (crt, key),
        (crt, key) => {
            let missing: Vec<&str> = [("tls.crt", crt.is_none()), ("tls.key", key.is_none())]
                .iter()
                .filter(|(_, absent)| *absent)
                .map(|(k, _)| *k)
                .collect();
            return Err(NotReady {
                reason: "SecretMissingKeys",
                message: format!(
                    "{} has no {}; it must hold tls.crt (the intermediate CA), tls.key (its private key) and optionally ca.crt (the root)",
                    location.describe(),
                    missing.join(" or ")
                ),
            });
        }
    };
    SigningCa::load(tls_crt, tls_key, present(ca_crt), now).map_err(|error| NotReady {
        reason: ca_error_reason(&error),
        message: format!("{}: {error}", location.describe()),
    })
}

/// The issuer condition reason for a CA load error (no `_` arm: a new error is placed here).
pub fn ca_error_reason(error: &PkiError) -> &'static str {
    match error {
        PkiError::CaCertificateMissing | PkiError::CaCertificateInvalid { .. } => {
            "CACertificateInvalid"
        }
        PkiError::CaKeyMissing | PkiError::CaKeyInvalid { .. } => "CAKeyInvalid",
        PkiError::CaNotCa { .. } => "NotACA",
        PkiError::CaNotYetValid { .. } => "CANotYetValid",
        PkiError::CaExpired { .. } => "CAExpired",
        PkiError::CaKeyMismatch { .. } => "KeyMismatch",
        PkiError::CaChainBroken { .. } => "ChainBroken",
        PkiError::CsrNotPem { .. }
        | PkiError::CsrInvalid { .. }
        | PkiError::CsrSignatureInvalid { .. }
        | PkiError::CsrKeyUnsupported { .. }
        | PkiError::CsrSanUnsupported { .. }
        | PkiError::CsrExtensionInvalid { .. }
        | PkiError::UsageUnknown { .. }
        | PkiError::UsageMismatch { .. }
        | PkiError::IsCaMismatch { .. }
        | PkiError::CaNotAllowed
        | PkiError::DurationNotPositive { .. }
        | PkiError::DurationTooLong { .. }
        | PkiError::WouldOutliveCa { .. }
        | PkiError::SigningFailed { .. }
        | PkiError::DurationSyntax { .. }
        | PkiError::RatioOutOfRange { .. }
        | PkiError::PercentageOutOfRange { .. }
        | PkiError::EmptyValidity { .. }
        | PkiError::CertificateInvalid { .. }
        | PkiError::IdentityInvalid { .. }
        | PkiError::KeyPairInvalid { .. }
        | PkiError::InvalidArgument(_)
        | PkiError::Generate { .. } => "CAInvalid",
    }
}

/// Turns an issuer's `spec.policy` into the PKI core's policy; a malformed `maxDuration` makes
/// the issuer not Ready.
pub fn signing_policy(
    policy: &IssuerPolicy,
    backdate: Duration,
) -> Result<SigningPolicy, NotReady> {
    let max_duration = match policy.max_duration.as_deref() {
        None | Some("") => None,
        Some(text) => {
            let max = parse_duration(text).map_err(|error| NotReady {
                reason: "InvalidPolicy",
                message: format!("spec.policy.maxDuration is invalid: {error}"),
            })?;
            if max <= Duration::ZERO {
                return Err(NotReady {
                    reason: "InvalidPolicy",
                    message: format!(
                        "spec.policy.maxDuration is {text:?}, which would refuse every request; give a positive duration such as 8760h, or remove it"
                    ),
                });
            }
            Some(max)
        }
    };
    Ok(SigningPolicy {
        allow_ca: policy.allow_ca,
        max_duration,
        clamp_to_ca: policy.clamp_to_ca,
        backdate,
    })
}

/// The facts the issuer's Ready condition is computed from.
#[derive(Clone, Copy, Debug)]
pub struct CaFacts<'a> {
    /// Subject of the signing certificate.
    pub subject: &'a str,
    /// Its notBefore.
    pub not_before: OffsetDateTime,
    /// Its notAfter.
    pub not_after: OffsetDateTime,
    /// Whether a root is known (`ca.crt` or the chain's top).
    pub root_known: bool,
}

impl<'a> From<&'a SigningCa> for CaFacts<'a> {
    fn from(ca: &'a SigningCa) -> Self {
        Self {
            subject: ca.subject(),
            not_before: ca.not_before(),
            not_after: ca.not_after(),
            root_known: ca.root_source() != crate::pki::RootSource::NoRootKnown,
        }
    }
}

/// An issuer's readiness as of `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Whether requests can be signed.
    pub ready: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// The condition message.
    pub message: String,
    /// The CA expires within [`CA_EXPIRY_WARNING`] (still Ready).
    pub expiring_soon: bool,
}

/// Readiness from a CA that loaded (re-checking its validity at `now`, since a cached CA can
/// expire) or from the reason it did not.
pub fn readiness(
    location: SecretLocation<'_>,
    ca: Result<CaFacts<'_>, &NotReady>,
    now: OffsetDateTime,
) -> Readiness {
    let ca = match ca {
        Ok(ca) => ca,
        Err(not_ready) => {
            return Readiness {
                ready: false,
                reason: not_ready.reason,
                message: not_ready.message.clone(),
                expiring_soon: false,
            };
        }
    };
    if now > ca.not_after {
        return Readiness {
            ready: false,
            reason: "CAExpired",
            message: format!(
                "{}: the CA certificate ({}) expired at {}; issue a new intermediate CA and update the Secret",
                location.describe(),
                ca.subject,
                format_time(ca.not_after)
            ),
            expiring_soon: false,
        };
    }
    if now < ca.not_before {
        return Readiness {
            ready: false,
            reason: "CANotYetValid",
            message: format!(
                "{}: the CA certificate ({}) is not valid until {}; wait, or check the clocks",
                location.describe(),
                ca.subject,
                format_time(ca.not_before)
            ),
            expiring_soon: false,
        };
    }
    let root = if ca.root_known {
        ""
    } else {
        "; no root is known (add ca.crt to the Secret), so issued certificates carry the intermediate in ca.crt"
    };
    let left = ca.not_after - now;
    if left <= CA_EXPIRY_WARNING {
        return Readiness {
            ready: true,
            reason: "CAExpiringSoon",
            message: format!(
                "Signing CA {} from {} verified (key matches certificate), but it expires in {} days at {}: issue a new intermediate CA and update the Secret before then; certificates are clamped to that time{root}",
                ca.subject,
                location.describe(),
                left.whole_days(),
                format_time(ca.not_after)
            ),
            expiring_soon: true,
        };
    }
    Readiness {
        ready: true,
        reason: "CAVerified",
        message: format!(
            "Signing CA {} from {} verified: a CA, valid until {}, key matches certificate{root}",
            ca.subject,
            location.describe(),
            format_time(ca.not_after)
        ),
        expiring_soon: false,
    }
}

/// When an issuer's readiness next changes by the clock alone (CA becomes valid, enters the
/// expiry warning window, or expires), so the controller re-checks then.
pub fn next_readiness_change(ca: CaFacts<'_>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    [
        ca.not_before,
        ca.not_after - CA_EXPIRY_WARNING,
        ca.not_after + Duration::seconds(1),
    ]
    .into_iter()
    .filter(|t| *t > now)
    .min()
}

/// The issuer's `Ready` condition for `readiness`, keeping `lastTransitionTime` while the status
/// does not change, and carrying `observedGeneration`.
pub fn issuer_condition(
    readiness: &Readiness,
    previous: Option<&IssuerCondition>,
    generation: Option<i64>,
    now: OffsetDateTime,
) -> IssuerCondition {
    let status = if readiness.ready { "True" } else { "False" };
    let last_transition_time = match previous {
        Some(p) if p.status == status && p.last_transition_time.is_some() => {
            p.last_transition_time.clone()
        }
        _ => Some(kube_time(now)),
    };
    IssuerCondition {
        type_: CONDITION_READY.to_string(),
        status: status.to_string(),
        reason: Some(readiness.reason.to_string()),
        message: Some(readiness.message.clone()),
        last_transition_time,
        observed_generation: generation,
    }
}

/// Why an issuer with both `spec.ca` and `spec.relay` cannot sign.
pub fn both_sources_not_ready() -> NotReady {
    NotReady {
        reason: "InvalidSpec",
        message: "spec.ca and spec.relay are exclusive: sign locally with the CA Secret (spec.ca) or forward to the relay server (spec.relay), not both; remove one".into(),
    }
}

/// The Pending message of a request whose issuer cannot sign.
pub fn issuer_not_ready_message(issuer: &IssuerRef, not_ready: &NotReady) -> String {
    format!(
        "{issuer} is not ready ({}): {}",
        not_ready.reason, not_ready.message
    )
}

/// The Pending message of a request whose issuer does not exist.
pub fn issuer_missing_message(issuer: &IssuerRef) -> String {
    match issuer {
        IssuerRef::Namespaced { namespace, name } => format!(
            "{issuer} not found: no RelayIssuer {name:?} in namespace {namespace:?} (a RelayIssuer must be in the request's namespace; use kind RelayClusterIssuer for a cluster-wide one); waiting for it to be created"
        ),
        IssuerRef::Cluster { name } => format!(
            "{issuer} not found: no RelayClusterIssuer {name:?}; waiting for it to be created"
        ),
    }
}

/// The Failed message of a request in our group with a kind we do not serve.
pub fn unknown_kind_message(kind: &str) -> String {
    format!(
        "spec.issuerRef.kind {kind:?} is not served by relay-issuer in group {GROUP}; use {KIND_ISSUER} or {KIND_CLUSTER_ISSUER} (create a new request: spec is immutable)"
    )
}

#[cfg(test)]
mod tests;
