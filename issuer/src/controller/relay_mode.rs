//! Remote signing (`spec.relay`) as plain decisions: which credential authenticates the
//! forwarded CSR, whether the issuer is Ready, and what a relay answer means for the request.
//!
//! Nothing here talks to the network or Kubernetes; `remote` reads the Secrets, calls the relay
//! server and feeds the results in.

use time::{Duration, OffsetDateTime};

use super::decide::{NotReady, Outcome, Readiness};
use crate::api::RelaySource;
use crate::pki::{KeyPair, format_time};

/// A client certificate this close to its notAfter is not used: the token takes over rather
/// than risk a handshake that fails on expiry mid-way.
pub const CERTIFICATE_MARGIN: Duration = Duration::seconds(5);

/// How the forwarded CSR is authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The current client certificate (renewal by mTLS).
    Certificate {
        /// Its serial.
        serial: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// The bootstrap token.
    Token,
}

impl Credential {
    /// Words for messages.
    pub fn describe(&self) -> String {
        match self {
            Credential::Certificate { serial, not_after } => format!(
                "the current client certificate (serial {serial}, valid until {})",
                format_time(*not_after)
            ),
            Credential::Token => "the bootstrap token".to_string(),
        }
    }
}

/// What the Secrets hold, as read by the glue.
#[derive(Debug)]
pub struct RelayInputs<'a> {
    /// The Secrets' namespace.
    pub namespace: &'a str,
    /// `ca.crt` of the CA bundle Secret; `None`: Secret or key missing.
    pub ca_bundle: Option<&'a [u8]>,
    /// The client certificate, checked (`Err`: missing or unusable, with why).
    pub client: Result<KeyPair, String>,
    /// Whether the token Secret holds a non-empty token.
    pub token_present: bool,
}

/// Picks the credential: the client certificate while it is valid (for at least
/// [`CERTIFICATE_MARGIN`] more) and names the configured cluster, else the token.
pub fn choose_credential(
    relay: &RelaySource,
    inputs: &RelayInputs<'_>,
    now: OffsetDateTime,
) -> Result<Credential, NotReady> {
    if inputs.ca_bundle.is_none_or(|b| b.is_empty()) {
        return Err(NotReady {
            reason: "RelayCABundleMissing",
            message: format!(
                "Secret {:?} in namespace {:?} has no ca.crt; put the relay's root CA there so the relay server ({}) can be verified",
                relay.ca_bundle_secret(),
                inputs.namespace,
                relay.address
            ),
        });
    }
    let certificate_problem = match &inputs.client {
        // The trust domain is the server's business; only the cluster name is compared here.
        Ok(pair)
            if pair.not_after - now > CERTIFICATE_MARGIN && names_cluster(pair, &relay.cluster) =>
        {
            return Ok(Credential::Certificate {
                serial: pair.serial.clone(),
                not_after: pair.not_after,
            });
        }
        Ok(pair) if pair.not_after - now > CERTIFICATE_MARGIN => format!(
            "the client certificate in Secret {:?} ({}) does not name cluster {:?}",
            relay.client_tls_secret(),
            pair.subject,
            relay.cluster
        ),
        Ok(pair) => format!(
            "the client certificate in Secret {:?} expires at {}",
            relay.client_tls_secret(),
            format_time(pair.not_after)
        ),
        Err(why) => why.clone(),
    };
    if inputs.token_present {
        return Ok(Credential::Token);
    }
    let (token_secret, token_key) = relay.token_secret();
    Err(NotReady {
        reason: "RelayNoCredentials",
        message: format!(
            "no credential to authenticate to the relay server: {certificate_problem}, and Secret {token_secret:?} in namespace {:?} has no key {token_key:?}; put the bootstrap token there to obtain the first certificate",
            inputs.namespace
        ),
    })
}

/// Whether the key pair's common name is `cluster`.
fn names_cluster(pair: &KeyPair, cluster: &str) -> bool {
    pair.common_name.as_deref() == Some(cluster)
}

/// The issuer's readiness in relay mode.
pub fn relay_readiness(
    relay: &RelaySource,
    credential: Result<&Credential, &NotReady>,
) -> Readiness {
    match credential {
        Ok(credential) => Readiness {
            ready: true,
            reason: "RelayConfigured",
            message: format!(
                "Forwarding CSRs for cluster {:?} to the relay server {}, authenticated by {}",
                relay.cluster,
                relay.address,
                credential.describe()
            ),
            expiring_soon: false,
        },
        Err(not_ready) => Readiness {
            ready: false,
            reason: not_ready.reason,
            message: not_ready.message.clone(),
            expiring_soon: false,
        },
    }
}

/// How the relay server answered (the glue maps gRPC codes to these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayAnswer {
    /// Could not reach it, or it answered UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED
    /// / INTERNAL / UNKNOWN: try again later.
    Unreachable(String),
    /// It refused the credential (UNAUTHENTICATED): fixable by a new token or certificate.
    Unauthenticated(String),
    /// It refused the request for good (PERMISSION_DENIED, INVALID_ARGUMENT,
    /// FAILED_PRECONDITION, …), with its reason.
    Refused {
        /// The gRPC code's name.
        code: String,
        /// The server's message.
        message: String,
    },
}

/// The request's outcome for a relay answer other than success.
pub fn relay_failure_outcome(relay: &RelaySource, answer: RelayAnswer) -> Outcome {
    match answer {
        RelayAnswer::Unreachable(why) => Outcome::Pending {
            message: format!(
                "Not signed yet, will retry: the relay server {} is unavailable ({why})",
                relay.address
            ),
        },
        RelayAnswer::Unauthenticated(why) => Outcome::Pending {
            message: format!(
                "Not signed yet, will retry: the relay server {} did not accept the credential ({why}); check the bootstrap token Secret {:?} or the client certificate Secret {:?}",
                relay.address,
                relay.token_secret().0,
                relay.client_tls_secret()
            ),
        },
        RelayAnswer::Refused { code, message } => Outcome::Failed {
            message: format!(
                "The relay server {} refused to sign ({code}): {message}",
                relay.address
            ),
        },
    }
}

/// The credential to try next after the relay server answered `answer` to a request sent with
/// `credential`: the bootstrap token, when the server did not accept the client certificate
/// (expired at its end, or revoked by `spec.revokeCertificatesIssuedBefore` on the cluster's
/// RelayCluster) and a token is present; otherwise none.
pub fn fallback_credential(
    credential: &Credential,
    answer: &RelayAnswer,
    token_present: bool,
) -> Option<Credential> {
    match (credential, answer) {
        (Credential::Certificate { .. }, RelayAnswer::Unauthenticated(_)) if token_present => {
            Some(Credential::Token)
        }
        (Credential::Certificate { .. } | Credential::Token, _) => None,
    }
}

/// The request's outcome for a certificate the relay server signed.
pub fn relay_issued_outcome(
    relay: &RelaySource,
    credential: &Credential,
    chain_pem: String,
    ca_pem: String,
    server_message: &str,
) -> Outcome {
    Outcome::Issued {
        summary: format!(
            "{server_message} by the relay server {} for cluster {:?} (authenticated by {})",
            relay.address,
            relay.cluster,
            match credential {
                Credential::Certificate { .. } => "the current client certificate",
                Credential::Token => "the bootstrap token",
            }
        ),
        chain_pem,
        ca_pem,
    }
}

#[cfg(test)]
mod tests;
