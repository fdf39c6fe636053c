//! The crate's one error type.
//!
//! Every variant says what was wrong and what to do about it, in words a person reading
//! `kubectl describe certificaterequest` or the CLI's stderr can act on. No variant carries key
//! material: messages name files, keys and fields, never their secret contents.

use std::path::PathBuf;

/// Everything that can go wrong in `relay-issuer`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the PKI core: the signing CA, the request, the signing rules, durations, identities ----
    /// An error of the PKI core (`relay-pki`): its message says what to do.
    #[error(transparent)]
    Pki(#[from] relay_pki::Error),

    /// An error of the shared runtime (`relay-runtime`: TLS material, the Kubernetes client,
    /// leader election, the admin server); its message says what to do.
    #[error(transparent)]
    Runtime(#[from] relay_runtime::Error),

    /// A TLS listener or connection cannot be set up.
    #[error("{what}: {detail}")]
    Tls {
        /// What was being done.
        what: String,
        /// What went wrong.
        detail: String,
    },

    // ---- CLI input and output ----
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read` or `write` or `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An output file exists and `--force` was not given.
    #[error("{path} already exists; remove it or pass --force to overwrite")]
    FileExists {
        /// The file.
        path: PathBuf,
    },
    /// A Secret manifest that cannot be used.
    #[error("{path}: not a usable Secret manifest: {detail}")]
    SecretManifest {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An input that is neither PEM nor a Secret manifest.
    #[error("{path}: {detail}")]
    UnrecognisedInput {
        /// The file.
        path: PathBuf,
        /// What was expected.
        detail: String,
    },
    /// A command-line argument that is inconsistent with the others.
    #[error("{0}")]
    InvalidArgument(String),
    /// Generating keys or certificates failed.
    #[error("generating {what} failed: {detail}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// What the library said.
        detail: String,
    },

    /// A task of the process's own stopped before it finished (it panicked, or its runtime
    /// shut down): a bug, or a process being stopped.
    #[error(
        "{what} stopped before it finished: {detail}; restart relay-issuer, and if this recurs, report it with the log above this line"
    )]
    TaskStopped {
        /// What the task was doing.
        what: &'static str,
        /// What the runtime said (a panic message, or that it was cancelled).
        detail: String,
    },

    // ---- running against Kubernetes (the controller's own API calls) ----
    /// A call to the Kubernetes API failed.
    #[error(
        "the Kubernetes API call to {action} failed: {source}; it is retried with backoff — if it keeps failing, check that the API server is reachable and that the relay-issuer ServiceAccount has the RBAC permissions the Helm chart grants"
    )]
    KubeApi {
        /// What was being done, e.g. `patch the status of CertificateRequest ns/name`.
        action: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// Wraps a Kubernetes client error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::KubeApi {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// How the controller should treat a signing error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The request itself is wrong: mark it `Failed` and never retry.
    Permanent,
    /// The issuer or its inputs are not usable yet: keep the request `Pending` and retry.
    Retryable,
}

impl Error {
    /// Whether an error ends the request (`Failed`) or leaves it `Pending`. No `_` arm: a new
    /// variant must be placed here, or it would silently become "retry forever".
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Pki(error) if error.is_request_fault() => Disposition::Permanent,
            Error::Pki(_)
            | Error::Runtime(_)
            | Error::Tls { .. }
            | Error::Io { .. }
            | Error::FileExists { .. }
            | Error::SecretManifest { .. }
            | Error::UnrecognisedInput { .. }
            | Error::InvalidArgument(_)
            | Error::Generate { .. }
            | Error::TaskStopped { .. }
            | Error::KubeApi { .. } => Disposition::Retryable,
        }
    }

    /// A short, low-cardinality label for metrics and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Pki(error) => error.metric_label(),
            Error::Runtime(error) => error.metric_label(),
            Error::Tls { .. } => "tls",
            Error::Io { .. } | Error::FileExists { .. } => "io",
            Error::SecretManifest { .. } | Error::UnrecognisedInput { .. } => "input_invalid",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Generate { .. } => "generate_failed",
            Error::TaskStopped { .. } => "task_stopped",
            Error::KubeApi { .. } => "kube_api",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_errors_are_permanent_and_ca_errors_retryable() {
        let pki = |e: relay_pki::Error| Error::from(e).disposition();
        assert_eq!(pki(relay_pki::Error::CaNotAllowed), Disposition::Permanent);
        assert_eq!(
            pki(relay_pki::Error::CsrKeyUnsupported {
                seen: "RSA 1024-bit".into()
            }),
            Disposition::Permanent
        );
        assert_eq!(pki(relay_pki::Error::CaKeyMissing), Disposition::Retryable);
        assert_eq!(
            pki(relay_pki::Error::CaExpired {
                subject: "x".into(),
                not_after: "y".into()
            }),
            Disposition::Retryable
        );
        assert_eq!(
            Error::InvalidArgument("x".into()).disposition(),
            Disposition::Retryable
        );
    }

    #[test]
    fn pki_errors_keep_their_message_and_label() {
        let inner = relay_pki::Error::CaKeyMismatch {
            subject: "CN=relay intermediate".into(),
            detail: "the public keys differ".into(),
        };
        let (message, label) = (inner.to_string(), inner.metric_label());
        let outer = Error::from(inner);
        assert_eq!(outer.to_string(), message);
        assert_eq!(outer.metric_label(), label);
    }
}
