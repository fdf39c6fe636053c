//! The relay server's decisions as plain functions: who may connect, who may have what signed,
//! with which usages and lifetime, and what each refusal tells the caller.
//!
//! No gRPC, TLS or Kubernetes types: callers pass identities (from `pki::identity`), facts
//! (registered or not) and get back a [`Refusal`] that the service maps to a gRPC status.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::Error;
use crate::pki::ClusterIdentity;
use crate::pki::csr::CertificateRequestInfo;
use crate::pki::usages::{ExtendedKeyUsage, KeyUsage};

/// The lifetime of a relay-signed certificate when the caller asks for none (1 year).
pub const DEFAULT_TTL: Duration = Duration::hours(8760);

/// How a caller of `SignCertificate` authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// With a client certificate the TLS layer verified, naming this cluster.
    Certificate(ClusterIdentity, Presented),
    /// With the bootstrap token (already checked).
    Token,
}

/// A verified client certificate, as far as access is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// Its serial, colon-separated hex.
    pub serial: String,
    /// Its notBefore: when it was issued.
    pub not_before: OffsetDateTime,
}

/// What a cluster's `RelayCluster` says about its access (the spec, without Kubernetes types).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    /// `spec.suspended`.
    pub suspended: bool,
    /// `spec.revokeCertificatesIssuedBefore`.
    pub revoked_before: Option<OffsetDateTime>,
}

/// Why a cluster's caller is shut out, whatever it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `RelayCluster` names the cluster.
    NotRegistered,
    /// `spec.suspended` is true.
    Suspended,
    /// The certificate was issued before `spec.revokeCertificatesIssuedBefore`.
    Revoked {
        /// The certificate's serial.
        serial: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// The RelayCluster's cut-off.
        revoked_before: OffsetDateTime,
    },
}

impl Denied {
    /// A label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Denied::NotRegistered => "not_registered",
            Denied::Suspended => "suspended",
            Denied::Revoked { .. } => "revoked",
        }
    }

    /// The refusal for a caller of cluster `cluster`, whose RelayCluster would live in
    /// `namespace`: the message says what was wrong and what to do.
    pub fn refusal(&self, cluster: &str, namespace: &str) -> Refusal {
        Refusal::Denied(self.clone(), self.message(cluster, namespace))
    }

    /// Whether the caller's credential itself is refused (rather than its cluster).
    pub fn is_credential(&self) -> bool {
        match self {
            Denied::Revoked { .. } => true,
            Denied::NotRegistered | Denied::Suspended => false,
        }
    }

    fn message(&self, cluster: &str, namespace: &str) -> String {
        match self {
            Denied::NotRegistered => format!(
                "cluster {cluster:?} is not registered with this relay server; create a RelayCluster named {cluster:?} in namespace {namespace:?} (kubectl -n {namespace} apply -f a RelayCluster manifest) to allow it"
            ),
            Denied::Suspended => format!(
                "cluster {cluster:?} is suspended: RelayCluster {cluster:?} in namespace {namespace:?} has spec.suspended: true, so the relay server closes its streams and signs nothing for it; to let it back in: kubectl -n {namespace} patch relaycluster {cluster} --type merge -p '{{\"spec\":{{\"suspended\":false}}}}'"
            ),
            Denied::Revoked {
                serial,
                not_before,
                revoked_before,
            } => format!(
                "the client certificate of cluster {cluster:?} (serial {serial}, issued {}) is revoked: RelayCluster {cluster:?} in namespace {namespace:?} refuses certificates issued before {} (spec.revokeCertificatesIssuedBefore); renew the agent's certificate (cert-manager: cmctl renew, or the bootstrap token) and the agent reconnects with the new one by itself",
                crate::pki::format_time(*not_before),
                crate::pki::format_time(*revoked_before),
            ),
        }
    }
}

/// Whether a caller of a cluster registered as `registration` (`None`: no RelayCluster),
/// presenting `certificate` (`None`: the bootstrap token), may be served at all.
pub fn check_access(
    registration: Option<&Registration>,
    certificate: Option<&Presented>,
) -> Result<(), Denied> {
    let Some(registration) = registration else {
        return Err(Denied::NotRegistered);
    };
    if registration.suspended {
        return Err(Denied::Suspended);
    }
    if let (Some(revoked_before), Some(certificate)) = (registration.revoked_before, certificate)
        && certificate.not_before < revoked_before
    {
        return Err(Denied::Revoked {
            serial: certificate.serial.clone(),
            not_before: certificate.not_before,
            revoked_before,
        });
    }
    Ok(())
}

/// Why a call is refused; each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No acceptable credentials (`UNAUTHENTICATED`).
    Unauthenticated(String),
    /// Authenticated, but not allowed (`PERMISSION_DENIED`).
    PermissionDenied(String),
    /// The request itself is wrong (`INVALID_ARGUMENT`).
    InvalidArgument(String),
    /// Too many failed attempts (`RESOURCE_EXHAUSTED`).
    RateLimited(String),
    /// The server cannot serve yet (`UNAVAILABLE`): retry later.
    Unavailable(String),
    /// The cluster or its certificate is shut out by its `RelayCluster` (`PERMISSION_DENIED`,
    /// or `UNAUTHENTICATED` for a revoked certificate).
    Denied(Denied, String),
}

impl Refusal {
    /// The message for the caller.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Unauthenticated(m)
            | Refusal::PermissionDenied(m)
            | Refusal::InvalidArgument(m)
            | Refusal::RateLimited(m)
            | Refusal::Unavailable(m)
            | Refusal::Denied(_, m) => m,
        }
    }

    /// A label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::PermissionDenied(_) => "permission_denied",
            Refusal::InvalidArgument(_) => "invalid_argument",
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Denied(denied, _) => denied.label(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Whether the agent's `Hello` agrees with the certificate it connected with.
pub fn check_hello(identity: &ClusterIdentity, hello_cluster: &str) -> Result<(), Refusal> {
    if hello_cluster != identity.cluster {
        return Err(Refusal::PermissionDenied(format!(
            "the hello names cluster {hello_cluster:?} but the client certificate is for cluster {:?}; run the agent with the cluster name its certificate was issued for",
            identity.cluster
        )));
    }
    Ok(())
}

/// Whether `caller` may have a certificate for `csr_identity` signed, having asked for
/// `requested_cluster`.
///
/// A client certificate of cluster A asking for anything of cluster B (in the request's
/// `cluster` or in the CSR) is `PermissionDenied`: the caller is known and not allowed. A
/// request whose `cluster` and CSR disagree is otherwise `InvalidArgument`: it is inconsistent,
/// whoever sends it.
pub fn authorize_sign(
    caller: &Caller,
    requested_cluster: &str,
    csr_identity: &ClusterIdentity,
    registration: Option<&Registration>,
    namespace: &str,
) -> Result<(), Refusal> {
    if let Caller::Certificate(holder, _) = caller {
        for asked in [requested_cluster, csr_identity.cluster.as_str()] {
            if holder.cluster != asked {
                return Err(Refusal::PermissionDenied(format!(
                    "the client certificate is for cluster {:?} and cannot obtain a certificate for cluster {asked:?}; a renewal must name the caller's own cluster",
                    holder.cluster
                )));
            }
        }
    }
    if csr_identity.cluster != requested_cluster {
        return Err(Refusal::InvalidArgument(format!(
            "the CSR names cluster {:?} but the request is for cluster {requested_cluster:?}; make the request's cluster and the CSR's CN and SPIFFE URI name the same cluster",
            csr_identity.cluster
        )));
    }
    let certificate = match caller {
        Caller::Certificate(_, presented) => Some(presented),
        Caller::Token => None,
    };
    check_access(registration, certificate)
        .map_err(|denied| denied.refusal(requested_cluster, namespace))
}

/// The usages the relay signs a CSR with: `client auth`, plus the CSR's key usages when it
/// carries them (only `digital signature` and `key encipherment` are allowed), else both.
/// A CSR asking for anything else is refused, naming it.
pub fn relay_usages(csr: &CertificateRequestInfo) -> Result<Vec<String>, Error> {
    let allowed = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
    let mut names = Vec::new();
    match csr.key_usage {
        Some(requested) => {
            let extra: Vec<&str> = KeyUsage::ALL
                .iter()
                .filter(|u| requested.contains(**u) && !allowed.contains(u))
                .map(|u| u.name())
                .collect();
            if !extra.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "the CSR asks for key usages the relay does not sign ({}); an agent client certificate may have only digital signature and key encipherment",
                    extra.join(", ")
                )));
            }
            names.extend(
                allowed
                    .iter()
                    .filter(|u| requested.contains(**u))
                    .map(|u| u.name().to_string()),
            );
        }
        None => names.extend(allowed.iter().map(|u| u.name().to_string())),
    }
    if let Some(extended) = &csr.extended_key_usage
        && extended.iter().any(|e| *e != ExtendedKeyUsage::ClientAuth)
    {
        let extra: Vec<&str> = extended
            .iter()
            .filter(|e| **e != ExtendedKeyUsage::ClientAuth)
            .map(|e| e.name())
            .collect();
        return Err(Error::InvalidArgument(format!(
            "the CSR asks for extended key usages the relay does not sign ({}); an agent client certificate has only client auth",
            extra.join(", ")
        )));
    }
    names.push(ExtendedKeyUsage::ClientAuth.name().to_string());
    Ok(names)
}

/// The lifetime to sign for: the requested seconds, or [`DEFAULT_TTL`] when 0.
pub fn requested_ttl(seconds: i64) -> Result<Duration, Error> {
    match seconds {
        0 => Ok(DEFAULT_TTL),
        s if s < 0 => Err(Error::InvalidArgument(format!(
            "requested_duration_seconds is {s}; ask for a positive lifetime, or 0 for the default of 8760h"
        ))),
        s => Ok(Duration::seconds(s)),
    }
}

#[cfg(test)]
mod tests;
