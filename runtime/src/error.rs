//! The runtime crate's one error type: what can go wrong setting up and running a long-running
//! command (TLS material, the Kubernetes client, leader election, the admin server, logging).
//!
//! Every variant says what was wrong and what to do about it; none carries key material.

/// Everything that can go wrong in `relay-runtime`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error of the PKI core (a key pair or certificate that cannot be used for TLS).
    #[error(transparent)]
    Pki(#[from] relay_pki::Error),

    /// A trust bundle (`ca.crt` of `relay-root-tls-secret`) cannot be used.
    #[error(
        "the trust bundle in {source_name} cannot be used: {detail}; put one or more PEM root CA certificates in its ca.crt"
    )]
    TrustBundleInvalid {
        /// `namespace/name` of the Secret.
        source_name: String,
        /// What is wrong.
        detail: String,
    },
    /// A TLS listener or connection cannot be set up.
    #[error("{what}: {detail}")]
    Tls {
        /// What was being done.
        what: String,
        /// What went wrong.
        detail: String,
    },

    /// A setting that is inconsistent with the others, or out of range.
    #[error("{0}")]
    InvalidArgument(String),

    // ---- running against Kubernetes (client, leader election, admin server) ----
    /// A call to the Kubernetes API failed.
    #[error(
        "the Kubernetes API call to {action} failed: {source}; it is retried with backoff — if it keeps failing, check that the API server is reachable and that this component's ServiceAccount has the RBAC permissions its Helm chart grants"
    )]
    KubeApi {
        /// What was being done, e.g. `patch the status of CertificateRequest ns/name`.
        action: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
    /// No usable Kubernetes client configuration (kubeconfig or in-cluster).
    #[error(
        "cannot configure the Kubernetes client: {detail}; run in a Pod with a ServiceAccount, or point KUBECONFIG at a kubeconfig file"
    )]
    KubeConfig {
        /// What went wrong.
        detail: String,
    },
    /// Leader election cannot proceed.
    #[error("leader election on Lease {lease} failed: {detail}")]
    LeaderElection {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What went wrong.
        detail: String,
    },
    /// The admin server (`/live`, `/ready`, `/metrics`) cannot serve.
    #[error(
        "the admin server cannot listen on {address}: {source}; pick a free address with --admin-address"
    )]
    AdminServer {
        /// The address it tried.
        address: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
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

    /// A short, low-cardinality label for metrics and event reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Pki(error) => error.metric_label(),
            Error::TrustBundleInvalid { .. } => "trust_bundle_invalid",
            Error::Tls { .. } => "tls",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::KubeApi { .. } => "kube_api",
            Error::KubeConfig { .. } => "kube_config",
            Error::LeaderElection { .. } => "leader_election",
            Error::AdminServer { .. } => "admin_server",
        }
    }
}
