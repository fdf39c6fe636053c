//! The crate's one error type.
//!
//! Every variant says what was wrong and what to do about it. No variant carries key material:
//! messages name Secrets, keys and serial numbers, never the contents of `tls.key`.

/// Everything that can go wrong in `relay-agent`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting that cannot work (flag values, or a [`crate::Config`] built in code).
    #[error("{0}")]
    InvalidArgument(String),

    /// `--relay-address` is not an `https://host:port` URL.
    #[error(
        "--relay-address {address:?} cannot be used: {detail}; give the relay server as https://host:port, e.g. https://relay.gloo-mesh:9900"
    )]
    RelayAddress {
        /// What was given.
        address: String,
        /// What is wrong with it.
        detail: String,
    },

    /// No client certificate has been accepted yet, so no connection can be attempted.
    #[error(
        "no usable client certificate yet; waiting for Secret {secret} to hold a valid tls.crt and tls.key (cert-manager writes it, or create it yourself)"
    )]
    NoCertificate {
        /// `namespace/name` of the client certificate Secret.
        secret: String,
    },

    /// No trust bundle has been accepted yet, so the relay server cannot be verified.
    #[error(
        "no trust bundle to verify the relay server yet; waiting for Secret {secret} to hold one or more PEM root certificates in ca.crt"
    )]
    NoRoots {
        /// `namespace/name` of the root Secret.
        secret: String,
    },

    /// The TCP connection or the TLS handshake with the relay server failed.
    #[error(
        "cannot connect to the relay server {address}: {detail}; check --relay-address, that the server runs, that its certificate is signed by a root in the root Secret and names --server-name, and that the client certificate is valid"
    )]
    Connect {
        /// The address dialled.
        address: String,
        /// What failed.
        detail: String,
    },

    /// The relay server answered the `Connect` RPC with an error status.
    #[error("the relay server refused or closed the Connect stream ({code:?}: {message}); {hint}")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// The `Connect` stream broke or the server ended it.
    #[error("the relay Connect stream ended: {detail}; reconnecting")]
    StreamEnded {
        /// Why (status, transport error, or a clean end from the server).
        detail: String,
    },

    /// The server did not follow the protocol (e.g. no `Welcome` after `Hello`).
    #[error(
        "the relay server broke the protocol: {detail}; check that server and agent versions match"
    )]
    Protocol {
        /// What was expected and what came.
        detail: String,
    },

    /// A step took longer than allowed.
    #[error(
        "{what} took longer than {seconds:.1}s; the relay server may be overloaded or unreachable"
    )]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The limit, in seconds.
        seconds: f64,
    },

    /// A call to the Kubernetes API failed.
    #[error(
        "the Kubernetes API call to {action} failed: {source}; it is retried — if it keeps failing, check that the API server is reachable and that the agent's ServiceAccount may get, list and watch Secrets in its namespace and create events"
    )]
    KubeApi {
        /// What was being done.
        action: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },

    /// An error from the PKI core (`relay-pki`); its message already says what to do.
    #[error(transparent)]
    Pki(#[from] relay_pki::Error),

    /// An error from the shared runtime (`relay-runtime`: TLS, admin server, Kubernetes client);
    /// its message already says what to do.
    #[error(transparent)]
    Shared(#[from] relay_runtime::Error),

    /// The async runtime could not start.
    #[error(
        "cannot start the async runtime: {0}; the process may be out of threads or file descriptors"
    )]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// Wraps a Kubernetes client error with what was being done.
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::KubeApi {
            action: action.into(),
            source: Box::new(source),
        }
    }

    /// A short, low-cardinality label for metrics (e.g. `relay_agent_reconnects_total{reason}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) | Error::RelayAddress { .. } => "invalid_argument",
            Error::NoCertificate { .. } => "no_certificate",
            Error::NoRoots { .. } => "no_trust_bundle",
            Error::Connect { .. } => "connect_failed",
            Error::Refused { .. } => "refused",
            Error::StreamEnded { .. } => "stream_ended",
            Error::Protocol { .. } => "protocol",
            Error::Timeout { .. } => "timeout",
            Error::KubeApi { .. } => "kube_api",
            Error::Pki(error) => error.metric_label(),
            Error::Shared(error) => error.metric_label(),
            Error::Runtime(_) => "runtime",
        }
    }

    /// Whether the server refused this agent (rather than failed): the refusal's gRPC code.
    pub fn refusal_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Refused { code, .. }
                if matches!(
                    code,
                    tonic::Code::PermissionDenied | tonic::Code::Unauthenticated
                ) =>
            {
                Some(*code)
            }
            _ => None,
        }
    }

    /// The error for a gRPC status the server answered `Connect` with.
    pub(crate) fn refused(status: &tonic::Status) -> Self {
        let hint = match status.code() {
            tonic::Code::Unauthenticated => {
                "the server did not accept the client certificate: check that it is unexpired, signed by the relay's intermediate CA and not revoked (the server's message says which); the agent reconnects by itself once a new certificate arrives"
            }
            tonic::Code::PermissionDenied => {
                "the server refuses this cluster: its RelayCluster is missing or suspended, or the certificate names another cluster than --cluster (the server's message says which); the agent keeps retrying and gets back in once that is fixed"
            }
            tonic::Code::Unavailable => "the relay server is unavailable; retrying",
            _ => "retrying; if it persists, check the relay server's logs",
        };
        Error::Refused {
            code: status.code(),
            message: status.message().to_string(),
            hint,
        }
    }
}
