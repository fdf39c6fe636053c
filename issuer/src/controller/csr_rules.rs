//! What the signer for the Kubernetes CSR API (`certificates.k8s.io/v1`
//! CertificateSigningRequests with `spec.signerName: relaytls.dev/agent`) does with one request,
//! as a plain function of its facts: nothing (another signer's, or already finished), wait for
//! approval, sign, or fail it with a reason.
//!
//! The rules are the relay server's for an agent certificate: the CSR names exactly one agent
//! identity (CN = cluster, URI SAN = its SPIFFE ID in the trust domain), the usages are client
//! auth with digital signature and/or key encipherment, nothing else; the PKI core then applies
//! its own rules when signing. What does not live here: reading the CSR object and writing its
//! status (`csr`).

use time::Duration;

use crate::pki::csr::{csr_der_from_pem, read_csr};
use crate::pki::csr_identity;

/// The signer name this controller signs for.
pub const SIGNER_NAME: &str = "relaytls.dev/agent";

/// The lifetime when the request sets no `spec.expirationSeconds` (as the relay server's).
pub const DEFAULT_DURATION: Duration = Duration::hours(8760);

/// The usages an agent certificate may carry (Kubernetes' and cert-manager's names).
const ALLOWED_USAGES: [&str; 3] = ["client auth", "digital signature", "key encipherment"];

/// What a CertificateSigningRequest says, without Kubernetes types.
#[derive(Debug, Clone, Copy)]
pub struct CsrFacts<'a> {
    /// `spec.signerName`.
    pub signer_name: &'a str,
    /// An `Approved` condition is `True`.
    pub approved: bool,
    /// A `Denied` condition is `True`.
    pub denied: bool,
    /// A `Failed` condition is `True`.
    pub failed: bool,
    /// `status.certificate` is set.
    pub issued: bool,
    /// `spec.request`: the PEM CSR.
    pub request_pem: &'a [u8],
    /// `spec.usages`.
    pub usages: &'a [String],
    /// `spec.expirationSeconds`.
    pub expiration_seconds: Option<i32>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrStep {
    /// Not for this signer, or finished (issued, denied or failed): nothing.
    Skip,
    /// Ours and not approved yet (`kubectl certificate approve <name>`).
    AwaitApproval,
    /// Sign it for `cluster`, with these usages, for `duration`.
    Sign {
        /// The cluster the CSR names.
        cluster: String,
        /// The usages to sign with (cert-manager names, as the PKI core takes them).
        usages: Vec<String>,
        /// The certificate's lifetime.
        duration: Duration,
    },
    /// It breaks a rule: a `Failed` condition with this reason and message.
    Fail {
        /// The condition's reason (CamelCase).
        reason: &'static str,
        /// What was wrong and what to do.
        message: String,
    },
}

/// The step for a request with `facts`, for agent identities in `trust_domain`.
pub fn csr_step(facts: &CsrFacts<'_>, trust_domain: &str) -> CsrStep {
    if facts.signer_name != SIGNER_NAME || facts.issued || facts.denied || facts.failed {
        return CsrStep::Skip;
    }
    if !facts.approved {
        return CsrStep::AwaitApproval;
    }
    let fail = |reason, message: String| CsrStep::Fail { reason, message };
    let csr = match csr_der_from_pem(facts.request_pem).and_then(|der| read_csr(&der)) {
        Ok(csr) => csr,
        Err(error) => {
            return fail(
                "InvalidRequest",
                format!("spec.request is not a usable PKCS#10 request: {error}"),
            );
        }
    };
    let identity = match csr_identity(&csr, trust_domain) {
        Ok(identity) => identity,
        Err(error) => {
            return fail(
                "IdentityInvalid",
                format!(
                    "the CSR is not an agent identity of trust domain {trust_domain:?}: {error}; an agent CSR has CN = the cluster name and the single URI SAN spiffe://{trust_domain}/relay/cluster/<cluster>"
                ),
            );
        }
    };
    let refused: Vec<&str> = facts
        .usages
        .iter()
        .map(String::as_str)
        .filter(|u| !ALLOWED_USAGES.contains(u))
        .collect();
    if !refused.is_empty() {
        return fail(
            "UsagesNotAllowed",
            format!(
                "spec.usages asks for {} which {SIGNER_NAME} does not sign; an agent certificate has client auth with digital signature and/or key encipherment",
                refused.join(", ")
            ),
        );
    }
    if !facts.usages.iter().any(|u| u == "client auth") {
        return fail(
            "UsagesNotAllowed",
            "spec.usages lacks client auth; an agent certificate is a client certificate: ask for [\"client auth\", \"digital signature\"]".to_string(),
        );
    }
    let duration = match facts.expiration_seconds {
        None => DEFAULT_DURATION,
        Some(seconds) if seconds >= 600 => Duration::seconds(i64::from(seconds)),
        Some(seconds) => {
            return fail(
                "InvalidExpiration",
                format!(
                    "spec.expirationSeconds is {seconds}; ask for at least 600 (10 minutes), or leave it out for {}h",
                    DEFAULT_DURATION.whole_hours()
                ),
            );
        }
    };
    let mut usages: Vec<String> = ALLOWED_USAGES
        .iter()
        .filter(|allowed| facts.usages.iter().any(|u| u == *allowed))
        .map(|u| u.to_string())
        .collect();
    usages.dedup();
    CsrStep::Sign {
        cluster: identity.cluster,
        usages,
        duration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::generate::{GeneratedKeyType, generate_key};
    use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};

    fn csr_pem(cn: &str, uri: Option<&str>) -> String {
        let key = generate_key(GeneratedKeyType::P256).unwrap();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        if let Some(uri) = uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        }
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn agent_pem() -> String {
        csr_pem(
            "cluster-1",
            Some("spiffe://relay.local/relay/cluster/cluster-1"),
        )
    }

    fn usages(names: &[&str]) -> Vec<String> {
        names.iter().map(|u| u.to_string()).collect()
    }

    fn facts<'a>(pem: &'a str, usages: &'a [String]) -> CsrFacts<'a> {
        CsrFacts {
            signer_name: SIGNER_NAME,
            approved: true,
            denied: false,
            failed: false,
            issued: false,
            request_pem: pem.as_bytes(),
            usages,
            expiration_seconds: None,
        }
    }

    #[test]
    fn an_approved_agent_csr_is_signed_for_its_cluster() {
        let pem = agent_pem();
        let asked = usages(&["digital signature", "client auth"]);
        assert_eq!(
            csr_step(&facts(&pem, &asked), "relay.local"),
            CsrStep::Sign {
                cluster: "cluster-1".into(),
                usages: usages(&["client auth", "digital signature"]),
                duration: DEFAULT_DURATION,
            }
        );
        let one_hour = CsrFacts {
            expiration_seconds: Some(3600),
            ..facts(&pem, &asked)
        };
        assert!(matches!(
            csr_step(&one_hour, "relay.local"),
            CsrStep::Sign { duration, .. } if duration == Duration::hours(1)
        ));
    }

    #[test]
    fn other_signers_and_finished_requests_are_left_alone_and_unapproved_ones_wait() {
        let pem = agent_pem();
        let asked = usages(&["client auth"]);
        let base = facts(&pem, &asked);
        for skipped in [
            CsrFacts {
                signer_name: "kubernetes.io/kube-apiserver-client",
                ..base
            },
            CsrFacts {
                issued: true,
                ..base
            },
            CsrFacts {
                denied: true,
                ..base
            },
            CsrFacts {
                failed: true,
                ..base
            },
            // Denied wins over a (contradictory) approval, and nothing is signed unapproved.
            CsrFacts {
                approved: false,
                denied: true,
                ..base
            },
        ] {
            assert_eq!(csr_step(&skipped, "relay.local"), CsrStep::Skip);
        }
        let unapproved = CsrFacts {
            approved: false,
            ..base
        };
        assert_eq!(csr_step(&unapproved, "relay.local"), CsrStep::AwaitApproval);
    }

    fn failure(step: CsrStep) -> (&'static str, String) {
        match step {
            CsrStep::Fail { reason, message } => (reason, message),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn rule_breakers_fail_with_a_reason_that_says_what_to_do() {
        let asked = usages(&["client auth"]);
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            failure(csr_step(&facts(garbage, &asked), "relay.local")).0,
            "InvalidRequest"
        );
        let no_uri = csr_pem("cluster-1", None);
        let (reason, message) = failure(csr_step(&facts(&no_uri, &asked), "relay.local"));
        assert_eq!(reason, "IdentityInvalid");
        assert!(
            message.contains("spiffe://relay.local/relay/cluster/<cluster>"),
            "{message}"
        );
        let other_domain = agent_pem();
        assert_eq!(
            failure(csr_step(&facts(&other_domain, &asked), "example.org")).0,
            "IdentityInvalid"
        );
        let pem = agent_pem();
        let server = usages(&["server auth", "client auth"]);
        let (reason, message) = failure(csr_step(&facts(&pem, &server), "relay.local"));
        assert_eq!(reason, "UsagesNotAllowed");
        assert!(message.contains("server auth"), "{message}");
        let no_client = usages(&["digital signature"]);
        assert_eq!(
            failure(csr_step(&facts(&pem, &no_client), "relay.local")).0,
            "UsagesNotAllowed"
        );
        let short = CsrFacts {
            expiration_seconds: Some(599),
            ..facts(&pem, &asked)
        };
        let (reason, message) = failure(csr_step(&short, "relay.local"));
        assert_eq!(reason, "InvalidExpiration");
        assert!(message.contains("600"), "{message}");
    }
}
