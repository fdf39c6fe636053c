//! `relay-issuer server`: the relay server as a long-running process. Parses flags, sets up
//! logging, the two runtimes (agents are served on the main one; the Kubernetes client and the
//! admin server live on a one-thread control runtime, see [`crate::server::run`]), binds the
//! relay listener, then hands over to [`crate::server::run`]. Decisions live in `server`.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tracing::{info, warn};

use super::controller::{own_namespace, pod_identity, run_service, std_duration};
use crate::Error;
use crate::admin::{self, Health};
use crate::kube_client::{self, ClientOptions};
use crate::server::{self, Settings, metrics::ServerMetrics};
use crate::shutdown::shutdown_signal;
use crate::telemetry::LogOptions;

/// Arguments of `relay-issuer server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address the relay (gRPC over TLS 1.3) listens on.
    #[arg(long, env = "RELAY_LISTEN", default_value = "0.0.0.0:9900")]
    pub listen: String,
    /// The server's namespace: its Secrets and the RelayClusters. Default: the Pod's
    /// namespace, else `relay-tls`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// SPIFFE trust domain of agent identities (`spiffe://<trust-domain>/relay/cluster/<name>`).
    #[arg(long, env = "RELAY_TRUST_DOMAIN", default_value = "relay.local")]
    pub trust_domain: String,
    /// Secret with the server's own certificate (`tls.crt`, `tls.key`), hot-reloaded.
    #[arg(long, default_value = "relay-server-tls-secret")]
    pub server_tls_secret: String,
    /// Secret whose `ca.crt` holds the roots client certificates must chain to (several allowed).
    #[arg(long, default_value = "relay-root-tls-secret")]
    pub root_tls_secret: String,
    /// Secret with the CA that signs agent certificates (`tls.crt`, `tls.key`, `ca.crt`).
    #[arg(long, default_value = "relay-tls-signing-secret")]
    pub signing_secret: String,
    /// Secret with the bootstrap token (`token`); absent disables token bootstrap.
    #[arg(long, default_value = "relay-identity-token-secret")]
    pub token_secret: String,
    /// Heartbeat interval announced to agents (Go duration).
    #[arg(long, default_value = "10s", value_parser = super::duration_arg)]
    pub heartbeat_interval: time::Duration,
    /// Failed token attempts allowed per client address before it is rate-limited.
    #[arg(long, default_value_t = 5)]
    pub token_failure_burst: u32,
    /// How fast a rate-limited address regains one attempt (Go duration).
    #[arg(long, default_value = "12s", value_parser = super::duration_arg)]
    pub token_failure_refill: time::Duration,
    /// This replica's name, for events, `RelayCluster` statuses and its Lease. Must differ
    /// between replicas. Default: the host name (for statuses and the Lease, followed by the
    /// process id).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The Pod's UID (downward API): the replica's Lease is then owned by the Pod, and
    /// Kubernetes deletes it with the Pod.
    #[arg(long, env = "POD_UID")]
    pub pod_uid: Option<String>,
    /// How long this replica's Lease holds without renewal (Go duration; renewed every third
    /// of it). When a replica dies, the others clear its clusters' "connected" within this
    /// plus a third of it.
    #[arg(long, default_value = "15s", value_parser = super::duration_arg)]
    pub replica_lease_duration: time::Duration,
    /// How often heartbeats alone refresh a connected cluster's `status.lastSeen` (Go
    /// duration). Each refresh is one API write per cluster: at 100,000 agents, 10m is about
    /// 170 writes/s.
    #[arg(long, default_value = "10m", value_parser = super::duration_arg)]
    pub status_refresh: time::Duration,
    /// Address of the admin server (`/live`, `/ready`, `/metrics`).
    #[arg(long, env = "RELAY_ADMIN_ADDRESS", default_value = "0.0.0.0:9403")]
    pub admin_address: String,
    /// Threads serving agents. Default: one per CPU the process may use (a Pod's CPU limit
    /// counts). More threads than CPUs only add the cost of waking them: each heartbeat then
    /// costs a thread switch.
    #[arg(long, env = "RELAY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Kubernetes client limits.
    #[command(flatten)]
    pub client: ClientOptions,
    /// Logging.
    #[command(flatten)]
    pub log: LogOptions,
}

/// This replica's name in statuses and its Lease: the Pod's name; outside a Pod, the host name
/// and the process id (two servers on one host must not share a name, or each would take the
/// other's sessions for its own stale ones).
fn replica_name(pod_name: Option<&str>) -> String {
    match pod_name.filter(|name| !name.is_empty()) {
        Some(name) => name.to_string(),
        None => format!("{}-{}", pod_identity(None), std::process::id()),
    }
}

/// Each agent session holds a socket: raises the soft limit on open files to the hard limit
/// (as Go programs do at start), so a replica is bounded by what the container runtime allows,
/// not by the shell's customary 1024.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(limit, "open-file limit (each agent session holds one)"),
        Err(error) => {
            warn!(%error, "could not raise the open-file limit; each agent session holds one file descriptor")
        }
    }
}

/// Runs `relay-issuer server` until SIGINT/SIGTERM.
pub fn run(args: &ServerArgs) -> Result<(), Error> {
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay-control")
        .enable_all()
        .build()
        .map_err(|e| {
            Error::InvalidArgument(format!("cannot start the control runtime's thread: {e}"))
        })?;
    let served = run_service(
        &args.log,
        args.worker_threads.map(usize::from),
        run_async(args, control.handle().clone()),
    );
    // Whatever still runs there (a watch being torn down) is not waited for.
    control.shutdown_background();
    served
}

/// Runs `future` on `control` and waits for it from the serving runtime.
async fn on_control<T: Send + 'static>(
    control: &tokio::runtime::Handle,
    future: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    control
        .spawn(future)
        .await
        .map_err(|e| Error::TaskStopped {
            what: "starting the relay server on its Kubernetes runtime (relay-control)",
            detail: e.to_string(),
        })?
}

async fn run_async(args: &ServerArgs, control: tokio::runtime::Handle) -> Result<(), Error> {
    let namespace = own_namespace(args.namespace.as_deref());
    let mut settings = Settings::new(&namespace);
    settings.trust_domain = args.trust_domain.clone();
    settings.secrets = server::secrets::SecretNames {
        server_tls: args.server_tls_secret.clone(),
        root_tls: args.root_tls_secret.clone(),
        signing: args.signing_secret.clone(),
        token: args.token_secret.clone(),
    };
    settings.heartbeat_interval = std_duration(args.heartbeat_interval);
    settings.token_failure_burst = args.token_failure_burst;
    settings.token_failure_refill = std_duration(args.token_failure_refill);
    settings.pod_name = Some(pod_identity(args.pod_name.as_deref()));
    settings.replica = replica_name(args.pod_name.as_deref());
    settings.pod_uid = args.pod_uid.clone().filter(|uid| !uid.is_empty());
    settings.replica_lease_duration = std_duration(args.replica_lease_duration);
    settings.status_refresh = std_duration(args.status_refresh);
    crate::pki::identity::validate_trust_domain(&settings.trust_domain)?;

    raise_open_file_limit();
    // The client's request buffer and connections, and the admin server, are the control
    // runtime's: created there.
    let options = args.client.clone();
    let client = on_control(&control, async move {
        Ok(kube_client::client(&options, "relay-issuer-server").await?)
    })
    .await?;
    let mut registry = Registry::default();
    let metrics = ServerMetrics::register(&mut registry);
    let health = Health::default();
    let admin_address = args.admin_address.clone();
    let admin_listener = on_control(
        &control,
        async move { Ok(admin::bind(&admin_address).await?) },
    )
    .await?;
    let admin_task = control.spawn(admin::serve(
        admin_listener,
        Arc::new(registry),
        health.clone(),
        shutdown_signal(),
    ));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::Tls {
            what: format!("the relay server cannot listen on {}", args.listen),
            detail: format!("{e}; pick a free address with --listen"),
        })?;
    info!(%namespace, listen = %args.listen, "relay-issuer server starting");
    server::run(
        client,
        settings,
        listener,
        metrics,
        health,
        control,
        shutdown_signal(),
    )
    .await?;
    let _ = admin_task.await;
    info!("relay-issuer server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{on_control, replica_name};
    use crate::Error;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn worker_threads(extra: &[&str]) -> Result<Option<u16>, clap::Error> {
        let args = ["relay-issuer", "server"].iter().chain(extra);
        match Cli::try_parse_from(args)?.command {
            Command::Server(server) => Ok(server.worker_threads),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn worker_threads_default_to_the_runtime_choice_and_refuse_zero() {
        assert_eq!(worker_threads(&[]).unwrap(), None);
        assert_eq!(worker_threads(&["--worker-threads", "2"]).unwrap(), Some(2));
        let zero = worker_threads(&["--worker-threads", "0"]).unwrap_err();
        assert_eq!(zero.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn replicas_are_named_by_their_pod_else_by_host_and_process() {
        assert_eq!(
            replica_name(Some("relay-issuer-server-7d9f-x2")),
            "relay-issuer-server-7d9f-x2"
        );
        let pid = format!("-{}", std::process::id());
        for unnamed in [None, Some("")] {
            let name = replica_name(unnamed);
            assert!(name.ends_with(&pid) && name.len() > pid.len(), "{name}");
        }
    }

    #[tokio::test]
    async fn a_start_step_that_panics_is_an_internal_failure_not_bad_input() {
        let control = tokio::runtime::Handle::current();
        let error = on_control(&control, async {
            panic!("a start step panicked");
            #[allow(unreachable_code)]
            Ok::<(), Error>(())
        })
        .await
        .unwrap_err();
        assert!(matches!(error, Error::TaskStopped { .. }), "{error:?}");
        assert_eq!(crate::cli::exit_code(&error), 1);
        assert!(
            error.to_string().contains("restart relay-issuer"),
            "{error}"
        );
    }
}
