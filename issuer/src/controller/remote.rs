//! Remote signing glue: reads the relay Secrets of an issuer in `spec.relay` mode, forwards a
//! request's CSR to the relay server's `SignCertificate`, and maps the answer through
//! `relay_mode`'s decisions.
//!
//! What does not live here: which credential to use or what an answer means (`relay_mode`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use relay_proto::SignCertificateRequest;
use relay_proto::v1::relay_certificates_client::RelayCertificatesClient;
use time::OffsetDateTime;
use tonic::Code;

use super::decide::{NotReady, Outcome};
use super::relay_mode::{
    Credential, RelayAnswer, RelayInputs, choose_credential, fallback_credential,
    relay_failure_outcome, relay_issued_outcome,
};
use crate::Error;
use crate::api::RelaySource;
use crate::pki::{KeyPair, load_key_pair};
use crate::tls::{certified_key, client_config, connect_channel, root_store};

/// Limit on connecting to the relay server and on its answer.
const RELAY_TIMEOUT: Duration = Duration::from_secs(15);

/// What an issuer's relay Secrets hold.
#[derive(Debug)]
pub struct RelaySecrets {
    /// `ca.crt` of the CA bundle Secret.
    pub ca_bundle: Option<Vec<u8>>,
    /// The client certificate, checked.
    pub client: Result<KeyPair, String>,
    /// The bootstrap token.
    pub token: Option<Vec<u8>>,
}

/// Key `key` of `secret`, unless the Secret or the key is missing or the value is blank.
fn key(secret: &Option<Secret>, key: &str) -> Option<Vec<u8>> {
    crate::k8s::secret_data(secret.as_ref()?, key)
        .filter(|v| !v.trim_ascii().is_empty())
        .map(<[u8]>::to_vec)
}

/// Reads the three Secrets from `namespace`.
pub async fn read_secrets(
    client: &kube::Client,
    namespace: &str,
    relay: &RelaySource,
    now: OffsetDateTime,
) -> Result<RelaySecrets, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let get = |name: &str| {
        let api = api.clone();
        let name = name.to_string();
        async move {
            api.get_opt(&name)
                .await
                .map_err(|e| Error::kube(format!("read Secret {namespace}/{name}"), e))
        }
    };
    let (token_name, token_key) = relay.token_secret();
    let ca_bundle = get(relay.ca_bundle_secret()).await?;
    let client_secret = get(relay.client_tls_secret()).await?;
    let token = get(token_name).await?;
    let client = match &client_secret {
        None => Err(format!(
            "Secret {:?} in namespace {namespace:?} was not found",
            relay.client_tls_secret()
        )),
        Some(_) => load_key_pair(
            key(&client_secret, "tls.crt").as_deref(),
            key(&client_secret, "tls.key").as_deref(),
            now,
        )
        .map_err(|e| format!("Secret {:?}: {e}", relay.client_tls_secret())),
    };
    Ok(RelaySecrets {
        ca_bundle: key(&ca_bundle, "ca.crt"),
        client,
        token: key(&token, token_key),
    })
}

/// The credential these Secrets allow, or why the issuer is not ready.
pub fn credential(
    relay: &RelaySource,
    namespace: &str,
    secrets: &RelaySecrets,
    now: OffsetDateTime,
) -> Result<Credential, NotReady> {
    choose_credential(
        relay,
        &RelayInputs {
            namespace,
            ca_bundle: secrets.ca_bundle.as_deref(),
            client: secrets.client.clone(),
            token_present: secrets.token.is_some(),
        },
        now,
    )
}

/// What a gRPC status means for the request.
pub fn answer_of(status: &tonic::Status) -> RelayAnswer {
    let message = status.message().to_string();
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Internal
        | Code::Unknown
        | Code::Aborted
        | Code::Cancelled => RelayAnswer::Unreachable(format!("{:?}: {message}", status.code())),
        Code::Unauthenticated => RelayAnswer::Unauthenticated(message),
        code => RelayAnswer::Refused {
            code: format!("{code:?}"),
            message,
        },
    }
}

/// Forwards `csr_pem` to the relay server with `credential` and returns the request's outcome.
/// When the server does not accept the client certificate (revoked, say) and a bootstrap token
/// is at hand, the request is sent once more with the token.
pub async fn sign_remotely(
    relay: &RelaySource,
    secrets: &RelaySecrets,
    credential: &Credential,
    csr_pem: &[u8],
    duration: Option<time::Duration>,
) -> Outcome {
    match attempt(relay, secrets, credential, csr_pem, duration).await {
        Attempt::Done(outcome) => outcome,
        Attempt::Refused(status) => {
            let answer = answer_of(&status);
            match fallback_credential(credential, &answer, secrets.token.is_some()) {
                Some(fallback) => {
                    tracing::info!(cluster = %relay.cluster, "the relay server did not accept the client certificate ({}); signing with the bootstrap token instead", status.message());
                    match attempt(relay, secrets, &fallback, csr_pem, duration).await {
                        Attempt::Done(outcome) => outcome,
                        Attempt::Refused(status) => {
                            relay_failure_outcome(relay, answer_of(&status))
                        }
                    }
                }
                None => relay_failure_outcome(relay, answer),
            }
        }
    }
}

/// How one call to the relay server ended.
enum Attempt {
    /// An outcome for the request (issued, or it could not be tried).
    Done(Outcome),
    /// The server answered with this status.
    Refused(tonic::Status),
}

async fn attempt(
    relay: &RelaySource,
    secrets: &RelaySecrets,
    credential: &Credential,
    csr_pem: &[u8],
    duration: Option<time::Duration>,
) -> Attempt {
    let unreachable =
        |why: String| Attempt::Done(relay_failure_outcome(relay, RelayAnswer::Unreachable(why)));
    let roots = match root_store(
        secrets.ca_bundle.as_deref().unwrap_or_default(),
        relay.ca_bundle_secret(),
    ) {
        Ok(roots) => roots,
        Err(e) => {
            return Attempt::Done(Outcome::Pending {
                message: format!("Not signed yet, will retry: {e}"),
            });
        }
    };
    let client_key = match (credential, &secrets.client) {
        (Credential::Certificate { .. }, Ok(pair)) => match certified_key(pair) {
            Ok(key) => Some(key),
            Err(e) => return unreachable(e.to_string()),
        },
        _ => None,
    };
    let config = client_config(roots, client_key);
    let channel = match connect_channel(
        &relay.address,
        relay.server_name.as_deref(),
        config,
        RELAY_TIMEOUT,
    )
    .await
    {
        Ok(channel) => channel,
        Err(e) => return unreachable(e.to_string()),
    };
    let mut request = tonic::Request::new(SignCertificateRequest {
        csr_pem: String::from_utf8_lossy(csr_pem).into_owned(),
        cluster: relay.cluster.clone(),
        requested_duration_seconds: duration.map_or(0, |d| d.whole_seconds()),
    });
    request.set_timeout(RELAY_TIMEOUT);
    if *credential == Credential::Token
        && let Some(token) = &secrets.token
    {
        let header = format!("Bearer {}", String::from_utf8_lossy(token.trim_ascii()));
        match header.parse() {
            Ok(value) => {
                request.metadata_mut().insert("authorization", value);
            }
            Err(_) => {
                return Attempt::Done(Outcome::Pending {
                    message: format!(
                        "Not signed yet, will retry: the bootstrap token in Secret {:?} is not a valid header value; store it as plain printable text",
                        relay.token_secret().0
                    ),
                });
            }
        }
    }
    match RelayCertificatesClient::new(channel)
        .sign_certificate(request)
        .await
    {
        Ok(response) => {
            let response = response.into_inner();
            Attempt::Done(relay_issued_outcome(
                relay,
                credential,
                response.chain_pem,
                response.ca_pem,
                response.message.trim(),
            ))
        }
        Err(status) => Attempt::Refused(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_retry_or_failure() {
        assert!(
            matches!(answer_of(&tonic::Status::unavailable("down")), RelayAnswer::Unreachable(m) if m.contains("down"))
        );
        assert!(matches!(
            answer_of(&tonic::Status::resource_exhausted("slow")),
            RelayAnswer::Unreachable(_)
        ));
        assert!(matches!(
            answer_of(&tonic::Status::deadline_exceeded("t")),
            RelayAnswer::Unreachable(_)
        ));
        assert!(
            matches!(answer_of(&tonic::Status::unauthenticated("tok")), RelayAnswer::Unauthenticated(m) if m == "tok")
        );
        assert!(
            matches!(answer_of(&tonic::Status::permission_denied("no")), RelayAnswer::Refused { code, message } if code == "PermissionDenied" && message == "no")
        );
        assert!(
            matches!(answer_of(&tonic::Status::invalid_argument("csr")), RelayAnswer::Refused { code, .. } if code == "InvalidArgument")
        );
    }
}
