//! The `relay-agent` command line: flags (with environment fallbacks) to [`Config`], logging,
//! the Kubernetes client, a current-thread runtime, and SIGTERM/SIGINT handling.

use std::time::Duration;

use relay_runtime::kube_client::{self, ClientOptions};
use relay_runtime::shutdown::shutdown_signal;
use relay_runtime::telemetry::{self, LogOptions};

use crate::backoff::BackoffPolicy;
use crate::{Config, Error};

/// relay-agent: follows its client TLS Secret and keeps an mTLS connection to the relay server.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "relay-agent", version, about)]
pub struct Args {
    /// The relay server, https://host:port (e.g. https://relay.gloo-mesh:9900).
    #[arg(long, env = "RELAY_ADDRESS")]
    pub relay_address: String,
    /// This cluster's name: sent in Hello, and the name its certificate must carry.
    #[arg(long, env = "CLUSTER_NAME")]
    pub cluster: String,
    /// The name the relay server's certificate must carry. Default: the host of
    /// --relay-address.
    #[arg(long, env = "RELAY_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Namespace of the Secrets.
    #[arg(long, env = "POD_NAMESPACE", default_value = crate::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The Secret holding the client certificate (tls.crt, tls.key).
    #[arg(long, env = "RELAY_CLIENT_TLS_SECRET_NAME", default_value = crate::DEFAULT_CLIENT_TLS_SECRET)]
    pub client_tls_secret_name: String,
    /// The Secret holding the roots (ca.crt) that verify the relay server.
    #[arg(long, env = "RELAY_ROOT_TLS_SECRET_NAME", default_value = crate::DEFAULT_ROOT_TLS_SECRET)]
    pub root_tls_secret_name: String,
    /// The relay trust domain (to read the cluster identity of the certificate for logs).
    #[arg(long, env = "RELAY_TRUST_DOMAIN", default_value = crate::DEFAULT_TRUST_DOMAIN)]
    pub trust_domain: String,
    /// Heartbeat period (Go duration).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub heartbeat_interval: Duration,
    /// How long a heartbeat may wait for its echo before the connection counts as dead.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub heartbeat_timeout: Duration,
    /// Limit on each connection set-up step (TCP+TLS+HTTP/2, Connect, Welcome).
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub connect_timeout: Duration,
    /// How often the Secrets are read in full besides the watch (catches missed updates).
    #[arg(long, default_value = "5m", value_parser = duration_arg)]
    pub resync_interval: Duration,
    /// First reconnect delay; doubles per failed attempt (jittered).
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub reconnect_backoff: Duration,
    /// Longest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub reconnect_backoff_max: Duration,
    /// How long a connection must stay up before the reconnect delays start over.
    #[arg(long, default_value = "30s", value_parser = duration_arg)]
    pub reconnect_stable_after: Duration,
    /// Address of the admin server (/live, /ready, /metrics).
    #[arg(long, env = "RELAY_ADMIN_ADDRESS", default_value = "0.0.0.0:9091")]
    pub admin_address: String,
    /// This replica's name, for events. Default: the host name.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Logging.
    #[command(flatten)]
    pub log: LogOptions,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    let parsed = relay_pki::parse_duration(text).map_err(|e| e.to_string())?;
    Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative; give e.g. 10s"))
}

impl Args {
    /// The configuration these flags describe.
    pub fn config(&self) -> Config {
        let mut config = Config::new(&self.namespace, &self.relay_address, &self.cluster);
        config.client_tls_secret_name = self.client_tls_secret_name.clone();
        config.root_tls_secret_name = self.root_tls_secret_name.clone();
        config.server_name = self.server_name.clone();
        config.trust_domain = self.trust_domain.clone();
        config.heartbeat_interval = self.heartbeat_interval;
        config.heartbeat_timeout = self.heartbeat_timeout;
        config.connect_timeout = self.connect_timeout;
        config.resync_interval = self.resync_interval;
        config.backoff = BackoffPolicy {
            base: self.reconnect_backoff,
            max: self.reconnect_backoff_max,
            stable_after: self.reconnect_stable_after,
            ..BackoffPolicy::default()
        };
        config.admin_address = Some(self.admin_address.clone());
        config.instance = self.pod_name.clone();
        config
    }
}

/// Runs the agent on a current-thread runtime until SIGTERM or SIGINT.
pub fn run(args: Args) -> Result<(), Error> {
    telemetry::init_logging(&args.log)?;
    let config = args.config();
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        // The agent makes a handful of API calls a minute: a small client-side limit suffices.
        let options = ClientOptions {
            kube_api_qps: 5.0,
            kube_api_burst: 10,
        };
        let user_agent = format!("relay-agent/{}", crate::client::AGENT_VERSION);
        let client = kube_client::client(&options, &user_agent).await?;
        crate::run(config, client, shutdown_signal()).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_match_the_documented_ones() {
        let args = Args::try_parse_from([
            "relay-agent",
            "--relay-address",
            "https://relay.gloo-mesh:9900",
            "--cluster",
            "cluster-1",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.namespace, "gloo-mesh");
        assert_eq!(config.client_tls_secret_name, "relay-client-tls-secret");
        assert_eq!(config.root_tls_secret_name, "relay-root-tls-secret");
        assert_eq!(config.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(config.resync_interval, Duration::from_secs(300));
        assert_eq!(config.admin_address.as_deref(), Some("0.0.0.0:9091"));
        assert_eq!(config.backoff, BackoffPolicy::default());
        let target = config.validate().unwrap();
        assert_eq!(target.server_name, "relay.gloo-mesh");
    }

    #[test]
    fn durations_use_go_syntax_and_bad_values_are_refused() {
        let args = Args::try_parse_from([
            "relay-agent",
            "--relay-address",
            "https://127.0.0.1:9900",
            "--cluster",
            "c",
            "--heartbeat-interval",
            "1m30s",
            "--heartbeat-timeout",
            "5m",
            "--server-name",
            "relay.example.com",
        ])
        .unwrap();
        assert_eq!(args.heartbeat_interval, Duration::from_secs(90));
        assert_eq!(
            args.config().validate().unwrap().server_name,
            "relay.example.com"
        );
        for bad in [
            ["--heartbeat-interval", "ten"],
            ["--resync-interval", "-5m"],
        ] {
            let result = Args::try_parse_from([
                "relay-agent",
                "--relay-address",
                "https://r:1",
                "--cluster",
                "c",
                bad[0],
                bad[1],
            ]);
            assert!(result.is_err(), "{bad:?}");
        }
        let mut config = args.config();
        config.heartbeat_timeout = Duration::from_secs(1);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("--heartbeat-timeout"), "{message}");
        config = args.config();
        config.cluster.clear();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("--cluster")
        );
    }
}
