//! The signing seam. Both issuer kinds sign through one [`Signer`], which has exactly the two
//! operations cert-manager's issuer-lib asks of an issuer:
//!
//! - [`check`]: can this issuer sign now? It loads what signing needs (the local CA from its
//!   Secret, or the relay Secrets and the credential to present) or says why not ([`NotReady`]).
//!   The issuer reconciler turns the answer into the issuer's `Ready` condition
//!   ([`readiness`]); the request reconciler signs only with a ready signer.
//! - [`Signer::sign`]: CSR → chain, by the local CA in process or by the relay server.
//!
//! What does not live here: leadership, metrics and remembering signed certificates (the request
//! reconciler), the readiness and outcome rules (`decide`, `relay_mode`), the gRPC call
//! (`remote`).

use std::sync::Arc;

use time::OffsetDateTime;

use super::Context;
use super::decide::{self, CaFacts, IssuerRef, NotReady, Outcome, Readiness, SecretLocation};
use super::relay_mode::{Credential, relay_readiness};
use super::remote::{self, RelaySecrets};
use crate::Error;
use crate::api::{IssuerSettings, RelaySource};
use crate::cert_manager::types::CertificateRequest;
use crate::pki::{self, SignRequest, SigningCa, SigningPolicy, parse_duration};

/// What an issuer signs with, once [`check`] found it ready.
#[derive(Debug)]
pub enum Signer {
    /// `spec.ca`: the relay intermediate CA, signing in this process.
    Local(LocalCa),
    /// `spec.relay`: the CSR is forwarded to the relay server (boxed: the Secrets it holds
    /// make it several times the size of the local variant).
    Remote(Box<RemoteRelay>),
}

/// The local CA and the issuer's signing policy.
#[derive(Debug)]
pub struct LocalCa {
    /// The CA, parsed and checked (shared with the CA cache).
    pub ca: Arc<SigningCa>,
    /// The issuer's policy (`spec.policy` and the controller's back-dating).
    pub policy: SigningPolicy,
}

/// The relay server, and how to authenticate to it.
#[derive(Debug)]
pub struct RemoteRelay {
    /// The issuer's `spec.relay`.
    pub relay: RelaySource,
    /// What the relay Secrets hold.
    pub secrets: RelaySecrets,
    /// The credential presented: the current client certificate, or the bootstrap token.
    pub credential: Credential,
}

/// What a request asks to be signed: its CSR and the parts of its spec signing reads.
#[derive(Debug)]
pub struct SignInput<'a> {
    /// The PEM CSR (`spec.request`).
    pub csr_pem: &'a [u8],
    /// `spec.duration`, parsed.
    pub duration: Option<time::Duration>,
    /// `spec.isCA`.
    pub is_ca: bool,
    /// `spec.usages`.
    pub usages: Vec<String>,
}

impl<'a> SignInput<'a> {
    /// Reads a request's spec; fails on a `spec.duration` that is not a Go duration.
    pub fn of(request: &'a CertificateRequest) -> Result<Self, Error> {
        let spec = &request.spec;
        let duration = match spec.duration.as_deref().filter(|d| !d.is_empty()) {
            None => None,
            Some(text) => Some(parse_duration(text)?),
        };
        Ok(SignInput {
            csr_pem: &spec.request.0,
            duration,
            is_ca: spec.is_ca.unwrap_or(false),
            usages: spec.usages.iter().map(|u| u.as_str().to_string()).collect(),
        })
    }
}

/// Check: whether `issuer` (with `settings`) can sign now, and with what. `Err` only when a
/// Secret could not be read at all (the API server failed); a missing or unusable Secret is a
/// [`NotReady`] with a message saying what to fix.
pub async fn check(
    issuer: &IssuerRef,
    settings: &IssuerSettings,
    ctx: &Context,
    now: OffsetDateTime,
) -> Result<Result<Signer, NotReady>, Error> {
    let policy = match decide::signing_policy(&settings.policy, ctx.settings.backdate) {
        Ok(policy) => policy,
        Err(not_ready) => return Ok(Err(not_ready)),
    };
    if settings.both_sources {
        return Ok(Err(decide::both_sources_not_ready()));
    }
    let namespace = issuer.secret_namespace(&ctx.settings.cluster_resource_namespace);
    match &settings.relay {
        Some(relay) => {
            let secrets = remote::read_secrets(&ctx.client, namespace, relay, now).await?;
            Ok(
                remote::credential(relay, namespace, &secrets, now).map(|credential| {
                    Signer::Remote(Box::new(RemoteRelay {
                        relay: relay.clone(),
                        secrets,
                        credential,
                    }))
                }),
            )
        }
        None => {
            let location = SecretLocation {
                issuer_kind: issuer.kind(),
                namespace,
                name: &settings.secret_name,
            };
            Ok(ctx
                .signing_ca(location)
                .await
                .map(|ca| Signer::Local(LocalCa { ca, policy })))
        }
    }
}

/// The issuer's `Ready` state from a [`check`]: a local CA is judged by its validity window
/// (expired, not yet valid, expiring soon); a relay by the credential it would present.
pub fn readiness(
    checked: Result<&Signer, &NotReady>,
    location: SecretLocation<'_>,
    now: OffsetDateTime,
) -> Readiness {
    match checked {
        Err(not_ready) => decide::readiness(location, Err(not_ready), now),
        Ok(Signer::Local(local)) => decide::readiness(location, Ok(CaFacts::from(&*local.ca)), now),
        Ok(Signer::Remote(remote)) => relay_readiness(&remote.relay, Ok(&remote.credential)),
    }
}

impl Signer {
    /// Sign: the request's outcome, `Issued` with the chain and CA, or why not.
    pub async fn sign(&self, input: &SignInput<'_>, now: OffsetDateTime) -> Outcome {
        match self {
            Signer::Local(local) => {
                let request = SignRequest {
                    csr_pem: input.csr_pem,
                    duration: input.duration,
                    is_ca: input.is_ca,
                    usages: &input.usages,
                };
                match pki::sign(&local.ca, &request, &local.policy, now) {
                    Ok(issued) => Outcome::Issued {
                        summary: issued.summary(),
                        chain_pem: issued.chain_pem,
                        ca_pem: issued.ca_pem,
                    },
                    Err(error) => Outcome::from_sign_error(&error.into()),
                }
            }
            // The relay server applies its own policy for the agent's cluster; it reads only
            // the CSR and the requested duration.
            Signer::Remote(remote) => {
                remote::sign_remotely(
                    &remote.relay,
                    &remote.secrets,
                    &remote.credential,
                    input.csr_pem,
                    input.duration,
                )
                .await
            }
        }
    }

    /// The local CA, for the CA-expiry metric and the next clock-driven readiness change.
    pub fn local_ca(&self) -> Option<&SigningCa> {
        match self {
            Signer::Local(local) => Some(&local.ca),
            Signer::Remote(_) => None,
        }
    }
}
