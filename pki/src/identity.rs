//! The relay identity of an agent certificate: which cluster it names.
//!
//! An agent certificate names its cluster twice: subject CN = the cluster name, and exactly one
//! URI SAN `spiffe://<trust-domain>/relay/cluster/<cluster-name>`. [`identity_from_names`] is
//! the one rule; [`certificate_identity`] and [`csr_identity`] feed it the names of a
//! certificate or a CSR. The relay server (Connect and SignCertificate), the agent and the
//! tests all go through these functions. Whether a cluster is *registered* is not decided here.

use super::csr::{CertificateRequestInfo, SubjectAltName};
use crate::Error;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The path prefix of a cluster's SPIFFE ID.
pub const CLUSTER_PATH_PREFIX: &str = "/relay/cluster/";

/// A cluster identity taken from a certificate or a CSR.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterIdentity {
    /// The cluster name (CN, and the last segment of the SPIFFE ID).
    pub cluster: String,
    /// `spiffe://<trust-domain>/relay/cluster/<cluster>`.
    pub spiffe_id: String,
}

const SPIFFE_SCHEME: &str = "spiffe://";

/// Whether a URI has the `spiffe` scheme (case-insensitively, as URI schemes are).
fn is_spiffe(uri: &str) -> bool {
    uri.as_bytes()
        .get(..SPIFFE_SCHEME.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(SPIFFE_SCHEME.as_bytes()))
}

/// The SPIFFE ID of `cluster` in `trust_domain`.
pub fn spiffe_id(trust_domain: &str, cluster: &str) -> String {
    format!("spiffe://{trust_domain}{CLUSTER_PATH_PREFIX}{cluster}")
}

/// Checks a cluster name: a DNS-1123 subdomain (it is also the name of the cluster's
/// `RelayCluster` resource), at most 253 characters.
pub fn validate_cluster_name(name: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Err(Error::IdentityInvalid {
            detail: format!(
                "cluster name {name:?} {why}; use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (a DNS-1123 subdomain, as Kubernetes object names)"
            ),
        })
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name.len() > 253 {
        return invalid("is longer than 253 characters");
    }
    for label in name.split('.') {
        let bytes = label.as_bytes();
        let edge_ok =
            |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !edge_ok(bytes.first()) || !edge_ok(bytes.last()) || label.len() > 63 {
            return invalid("has a malformed label");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return invalid("has a character that is not allowed");
        }
    }
    Ok(())
}

/// Checks a SPIFFE trust domain: lowercase letters, digits, '.', '-' and '_' (SPIFFE ID spec).
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), Error> {
    let ok = !trust_domain.is_empty()
        && trust_domain.len() <= 255
        && trust_domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "trust domain {trust_domain:?} is not a valid SPIFFE trust domain; use lowercase letters, digits, '.', '-' and '_' (for example relay.local)"
        )))
    }
}

/// The identity rule: `common_name` must be the cluster name and `uri_sans` must hold exactly
/// one `spiffe://` URI, `spiffe://<trust_domain>/relay/cluster/<cluster>`. URI SANs with other
/// schemes are ignored here (see [`csr_identity`] for the stricter signing rule).
pub fn identity_from_names(
    common_name: Option<&str>,
    uri_sans: &[&str],
    trust_domain: &str,
) -> Result<ClusterIdentity, Error> {
    let invalid = |detail: String| Error::IdentityInvalid { detail };
    let spiffe: Vec<&str> = uri_sans.iter().copied().filter(|u| is_spiffe(u)).collect();
    let uri = match spiffe.as_slice() {
        [] => {
            return Err(invalid("it has no spiffe:// URI SAN".to_string()));
        }
        [one] => *one,
        many => {
            return Err(invalid(format!(
                "it has {} spiffe:// URI SANs ({}); exactly one is allowed",
                many.len(),
                many.join(", ")
            )));
        }
    };
    let rest = uri.get(SPIFFE_SCHEME.len()..).unwrap_or_default();
    let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if domain != trust_domain {
        return Err(invalid(format!(
            "its SPIFFE ID {uri} is in trust domain {domain:?}, but this relay's trust domain is {trust_domain:?}"
        )));
    }
    let Some(cluster) = path.strip_prefix(CLUSTER_PATH_PREFIX) else {
        return Err(invalid(format!(
            "its SPIFFE ID {uri} does not have the path {CLUSTER_PATH_PREFIX}<cluster-name>"
        )));
    };
    validate_cluster_name(cluster).map_err(|e| match e {
        Error::IdentityInvalid { detail } => invalid(format!("in its SPIFFE ID {uri}: {detail}")),
        other => other,
    })?;
    match common_name {
        Some(cn) if cn == cluster => Ok(ClusterIdentity {
            cluster: cluster.to_string(),
            spiffe_id: uri.to_string(),
        }),
        Some(cn) => Err(invalid(format!(
            "its common name {cn:?} differs from the cluster {cluster:?} named by its SPIFFE ID"
        ))),
        None => Err(invalid(format!(
            "it has no common name; it must be the cluster name {cluster:?}"
        ))),
    }
}

/// The common name of a DER subject, when it has exactly one.
pub(crate) fn common_name(subject: &X509Name<'_>) -> Result<Option<String>, Error> {
    let names: Vec<_> = subject.iter_common_name().collect();
    match names.as_slice() {
        [] => Ok(None),
        [one] => one
            .as_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| Error::IdentityInvalid {
                detail: "its common name is not a UTF-8 or printable string".into(),
            }),
        _ => Err(Error::IdentityInvalid {
            detail: "it has more than one common name".into(),
        }),
    }
}

/// An agent's client certificate as the relay sees it: its identity, serial and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The cluster it names.
    pub identity: ClusterIdentity,
    /// Its serial, colon-separated hex.
    pub serial: String,
    /// Its notBefore (when it was issued, for revocation by time).
    pub not_before: time::OffsetDateTime,
    /// Its notAfter.
    pub not_after: time::OffsetDateTime,
}

/// The cluster identity, serial, notBefore and notAfter of a DER certificate (an agent's client
/// certificate) in `trust_domain`. DNS, IP and e-mail SANs are allowed beside the identity.
pub fn peer_certificate(der: &[u8], trust_domain: &str) -> Result<PeerCertificate, Error> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::IdentityInvalid {
        detail: format!("the certificate does not parse ({e})"),
    })?;
    let cn = common_name(cert.subject())?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Error::IdentityInvalid {
            detail: format!("its subjectAltName extension is malformed ({e})"),
        })?;
    let uris: Vec<&str> = san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(PeerCertificate {
        identity: identity_from_names(cn.as_deref(), &uris, trust_domain)?,
        serial: super::sign::colon_hex(cert.raw_serial()),
        not_before: super::to_offset_date_time(cert.validity().not_before),
        not_after: super::to_offset_date_time(cert.validity().not_after),
    })
}

/// The cluster identity of a DER certificate in `trust_domain` (see [`peer_certificate`]).
pub fn certificate_identity(der: &[u8], trust_domain: &str) -> Result<ClusterIdentity, Error> {
    peer_certificate(der, trust_domain).map(|peer| peer.identity)
}

/// The cluster identity of a verified CSR, for signing: besides the identity rule, the CSR may
/// carry no subject alternative name other than the cluster's SPIFFE ID (the relay signs only
/// the identity names).
pub fn csr_identity(
    csr: &CertificateRequestInfo,
    trust_domain: &str,
) -> Result<ClusterIdentity, Error> {
    let (_, subject) =
        X509Name::from_der(&csr.subject_der).map_err(|e| Error::IdentityInvalid {
            detail: format!("the CSR's subject does not parse ({e})"),
        })?;
    let cn = common_name(&subject)?;
    let mut uris = Vec::new();
    let mut others = Vec::new();
    for san in &csr.sans {
        match san {
            SubjectAltName::Uri(uri) => uris.push(uri.as_str()),
            SubjectAltName::Dns(name) => others.push(format!("DNS:{name}")),
            SubjectAltName::Ip(ip) => others.push(format!("IP:{ip}")),
            SubjectAltName::Email(mail) => others.push(format!("email:{mail}")),
        }
    }
    others.extend(
        uris.iter()
            .filter(|u| !is_spiffe(u))
            .map(|u| format!("URI:{u}")),
    );
    let identity = identity_from_names(cn.as_deref(), &uris, trust_domain)?;
    if !others.is_empty() {
        return Err(Error::IdentityInvalid {
            detail: format!(
                "it asks for names besides the cluster identity ({}); the relay signs only CN=<cluster> and the cluster's SPIFFE ID",
                others.join(", ")
            ),
        });
    }
    Ok(identity)
}
