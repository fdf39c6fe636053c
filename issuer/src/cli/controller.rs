//! `relay-issuer controller`: the cert-manager external issuer as a long-running process.
//! Parses flags, sets up logging, the Kubernetes client, the admin server and leader election,
//! then hands over to [`crate::controller::run`]. Decisions live in `controller`.

use std::sync::Arc;

use clap::ArgAction;
use prometheus_client::registry::Registry;
use tracing::info;

use crate::Error;
use crate::admin::{self, Health};
use crate::controller::{self, Settings, metrics::Metrics};
use crate::kube_client::{self, ClientOptions};
use crate::leader::{self, LeaderElectionConfig, Leadership};
use crate::shutdown::shutdown_signal;
use crate::telemetry::{self, LogOptions};

/// Where a Pod's namespace is mounted.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Arguments of `relay-issuer controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// The controller's own namespace (for its Lease, and the default cluster resource
    /// namespace). Default: the Pod's namespace, else `relay-tls`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where RelayClusterIssuer signing Secrets are read from. Default: --namespace.
    #[arg(long, env = "RELAY_CLUSTER_RESOURCE_NAMESPACE")]
    pub cluster_resource_namespace: Option<String>,
    /// This replica's name, for the Lease holder and the events' reporting instance.
    /// Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Back-date notBefore by this much to absorb clock skew (Go duration).
    #[arg(long, default_value = "0s", value_parser = super::duration_arg)]
    pub backdate: time::Duration,
    /// The SPIFFE trust domain of agent identities (the Kubernetes CSR API signer checks that
    /// a CSR names spiffe://<trust-domain>/relay/cluster/<cluster>).
    #[arg(long, default_value = "relay.local")]
    pub trust_domain: String,
    /// Sign Kubernetes CertificateSigningRequests of signer `relaytls.dev/agent` once approved
    /// (`--csr-signer=false` to leave them alone).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub csr_signer: bool,
    /// The Secret in the cluster resource namespace the CSR API signer signs with.
    #[arg(long, default_value = "relay-tls-signing-secret")]
    pub csr_signing_secret: String,
    /// How many CertificateRequests are reconciled at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// First retry delay of a Pending request; doubles per attempt (Go duration).
    #[arg(long, default_value = "1s", value_parser = super::duration_arg)]
    pub pending_backoff: time::Duration,
    /// Longest retry delay of a Pending request (Go duration).
    #[arg(long, default_value = "5m", value_parser = super::duration_arg)]
    pub pending_backoff_max: time::Duration,
    /// Elect a leader on a Lease so only one replica signs (`--leader-elect=false` to run
    /// alone).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "relay-issuer-controller")]
    pub leader_election_lease: String,
    /// Namespace of the leader-election Lease. Default: --namespace.
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// How long a Lease holds without renewal (Go duration).
    #[arg(long, default_value = "15s", value_parser = super::duration_arg)]
    pub leader_election_lease_duration: time::Duration,
    /// How long the leader keeps trying to renew before it stops leading (Go duration).
    #[arg(long, default_value = "10s", value_parser = super::duration_arg)]
    pub leader_election_renew_deadline: time::Duration,
    /// How often candidates try to acquire or renew (Go duration).
    #[arg(long, default_value = "2s", value_parser = super::duration_arg)]
    pub leader_election_retry_period: time::Duration,
    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "RELAY_ADMIN_ADDRESS", default_value = "0.0.0.0:9402")]
    pub admin_address: String,
    /// Kubernetes client limits.
    #[command(flatten)]
    pub client: ClientOptions,
    /// Logging.
    #[command(flatten)]
    pub log: LogOptions,
}

pub(crate) fn std_duration(d: time::Duration) -> std::time::Duration {
    std::time::Duration::try_from(d).unwrap_or_default()
}

/// `--namespace`, else the Pod's namespace (from the ServiceAccount mount), else `relay-tls`.
pub(crate) fn own_namespace(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "relay-tls".to_string())
}

/// `--pod-name`, else the host name, else `relay-issuer-<pid>`.
pub(crate) fn pod_identity(flag: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("relay-issuer-{}", std::process::id()))
}

/// Runs `relay-issuer controller` until SIGINT/SIGTERM.
pub fn run(args: &ControllerArgs) -> Result<(), Error> {
    run_service(&args.log, None, run_async(args))
}

/// Sets up logging, then runs a long-running command's `main` on a multi-threaded runtime of
/// `worker_threads` threads (default: one per CPU the process may use).
pub(crate) fn run_service(
    log: &LogOptions,
    worker_threads: Option<usize>,
    main: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    telemetry::init_logging(log)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .enable_all()
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(main)
}

async fn run_async(args: &ControllerArgs) -> Result<(), Error> {
    let namespace = own_namespace(args.namespace.as_deref());
    let identity = pod_identity(args.pod_name.as_deref());
    let client = kube_client::client(&args.client, "relay-issuer-controller").await?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::default();
    let listener = admin::bind(&args.admin_address).await?;
    let admin_task = tokio::spawn(admin::serve(
        listener,
        Arc::new(registry),
        health.clone(),
        shutdown_signal(),
    ));

    let (leadership, election) = if args.leader_elect {
        let config = LeaderElectionConfig {
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| namespace.clone()),
            lease_name: args.leader_election_lease.clone(),
            identity: identity.clone(),
            lease_duration: std_duration(args.leader_election_lease_duration),
            renew_deadline: std_duration(args.leader_election_renew_deadline),
            retry_period: std_duration(args.leader_election_retry_period),
        };
        config.validate()?;
        let (leadership, task) = leader::spawn(client.clone(), config, shutdown_signal());
        (leadership, Some(task))
    } else {
        (Leadership::always(), None)
    };

    let mut settings = Settings::new(
        args.cluster_resource_namespace
            .clone()
            .unwrap_or_else(|| namespace.clone()),
    );
    settings.backdate = args.backdate;
    settings.concurrency = args.concurrency.max(1);
    settings.pending_backoff_base = std_duration(args.pending_backoff);
    settings.pending_backoff_max = std_duration(args.pending_backoff_max);
    settings.instance = identity.clone();
    crate::pki::identity::validate_trust_domain(&args.trust_domain)?;
    settings.trust_domain = args.trust_domain.clone();
    settings.csr_signer = args.csr_signer;
    settings.csr_signing_secret = args.csr_signing_secret.clone();
    info!(
        %namespace,
        cluster_resource_namespace = %settings.cluster_resource_namespace,
        %identity,
        leader_elect = args.leader_elect,
        "relay-issuer controller starting"
    );

    controller::run(
        client,
        settings,
        leadership,
        metrics,
        health,
        shutdown_signal(),
    )
    .await?;
    if let Some(task) = election {
        // The election releases the Lease on shutdown so a standby takes over at once.
        match task.await {
            Ok(result) => result?,
            Err(e) => tracing::warn!(error = %e, "leader election task ended abnormally"),
        }
    }
    let _ = admin_task.await;
    info!("relay-issuer controller stopped");
    Ok(())
}
