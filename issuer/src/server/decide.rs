//! The relay server's decisions as plain functions: who may connect, who may have what signed,
//! with which usages and lifetime, and what each refusal tells the caller.
//!
//! No gRPC, TLS or Kubernetes types: callers pass identities (from `pki::identity`), facts
//! (registered or not) and get back a [`Refusal`] that the service maps to a gRPC status.

use std::fmt;

use time::Duration;

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
    Certificate(ClusterIdentity),
    /// With the bootstrap token (already checked).
    Token,
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
}

impl Refusal {
    /// The message for the caller.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Unauthenticated(m)
            | Refusal::PermissionDenied(m)
            | Refusal::InvalidArgument(m)
            | Refusal::RateLimited(m)
            | Refusal::Unavailable(m) => m,
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
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// What to tell a caller whose cluster has no `RelayCluster`.
pub fn not_registered(cluster: &str, namespace: &str) -> Refusal {
    Refusal::PermissionDenied(format!(
        "cluster {cluster:?} is not registered with this relay server; create a RelayCluster named {cluster:?} in namespace {namespace:?} (kubectl -n {namespace} apply -f a RelayCluster manifest) to allow it"
    ))
}

/// Whether a certificate holder may open `Connect`.
pub fn authorize_connect(
    identity: &ClusterIdentity,
    registered: bool,
    namespace: &str,
) -> Result<(), Refusal> {
    if !registered {
        return Err(not_registered(&identity.cluster, namespace));
    }
    Ok(())
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
    registered: bool,
    namespace: &str,
) -> Result<(), Refusal> {
    if let Caller::Certificate(holder) = caller {
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
    if !registered {
        return Err(not_registered(requested_cluster, namespace));
    }
    Ok(())
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
