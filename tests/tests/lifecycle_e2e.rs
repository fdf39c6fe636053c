//! The relay client-certificate lifecycle end to end with real processes: the sandbox API
//! server and cert-manager simulator (in this test process), and `relay-issuer controller`,
//! `relay-issuer server` and `relay-agent` as child processes reading a sandbox kubeconfig.
//!
//! One scenario per test, run one at a time (they share the machine's two cores and some use
//! second-scale certificate lifetimes):
//! 1. Gloo-managed: Certificate → RelayIssuer → Secret → agent; 20+ renewals by cert-manager,
//!    each swapped make-before-break, with zero failed heartbeats/RPCs.
//! 2. Bring-your-own: the Secret replaced by hand (`kubectl replace`) with a certificate from
//!    another intermediate under the same root.
//! 3. Server certificate reload, checked with `openssl s_client`, while the agent's stream stays.
//! 4. Expiry: a live session outlives its certificate; a forced reconnect fails until a new
//!    certificate arrives, then recovers by itself.
//! 5. Bad Secret data keeps the last good certificate, with Warning events regarding the Secret
//!    that `kubectl events --for secret/relay-client-tls-secret` lists (`kubectl describe
//!    secret` has no events section for any Secret).
//! 6. Security against the real server process.
//! 7. Swap latency over 100 swaps (reported, not asserted).
//! 8. Cut off and let back in: the agent's RelayCluster suspended (refused, `/ready` says why,
//!    retries), resumed (back by itself), its certificate revoked by time (refused) and renewed
//!    through cert-manager as `cmctl renew` asks (back with the new certificate).
//! 9. Root rotation: `relay-issuer ca rotate --apply` under five live Gloo-managed agents and a
//!    stale bring-your-own one: stages 1-4, stage 5 refused naming the stale cluster, resumed
//!    once it is fixed; 0 failed RPCs on every agent.

use std::time::{Duration, Instant, SystemTime};

use cert_manager_sim::{Simulator, SimulatorOptions};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube_sandbox::Sandbox;
use relay_proto::v1::relay_certificates_client::RelayCertificatesClient;
use relay_proto::v1::relay_client::RelayClient;
use relay_proto::{AgentMessage, Hello, SignCertificateRequest};
use relay_sandbox::charts::render_chart;
use relay_sandbox::e2e::{
    RelayClusters, metric, metrics, wait_metric, wait_metric_grows, wait_not_ready_because,
    wait_openssl_serial, wait_ready,
};
use relay_sandbox::harness::{self, put_secret_data};
use relay_sandbox::processes::{Process, binary, free_port};
use relay_sandbox::relay::{
    Pem, RELAY_NAMESPACE, RelayPki, RotationPki, TOKEN, agent_csr, assert_bundles_hold_only,
    channel, client_config, install_managed_agent, install_relay, metric_sum, metric_value,
    pem_fingerprint, run_relay_issuer, sign_agent,
};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The Gloo-managed agent's namespace (Certificate + RelayIssuer there).
const MANAGED_NS: &str = "team-a";
/// The bring-your-own agent's namespace (no Certificate: the Secret is written by hand).
const BYO_NS: &str = "team-b";

struct World {
    sandbox: Sandbox,
    _simulator: Simulator,
    client: kube::Client,
    pki: RelayPki,
    logs: tempfile::TempDir,
    _controller: Process,
    server: Process,
    relay_port: u16,
    server_admin: u16,
}

impl World {
    /// The relay server's RelayClusters.
    fn clusters(&self) -> RelayClusters {
        RelayClusters::new(&self.client, RELAY_NAMESPACE)
    }

    async fn start() -> Result<Self, BoxError> {
        relay_issuer::install_crypto_provider();
        let issuer = binary("relay-issuer");
        let logs = tempfile::tempdir()?;
        let sandbox = harness::sandbox().await?;
        let client = sandbox.client()?;
        let simulator = Simulator::start(
            &sandbox,
            SimulatorOptions {
                interval: Duration::from_millis(50),
                ..SimulatorOptions::fast()
            },
        )?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": BYO_NS}}))?,
            )
            .await;
        let pki = RelayPki::new()?;
        install_relay(
            &client,
            &pki,
            &["cluster-a", "cluster-b"],
            &[MANAGED_NS, BYO_NS],
        )
        .await?;

        // Every binary runs with the args and env its chart's Deployment carries; only the
        // addresses (loopback), leader election (one replica) and intervals are overridden.
        let controller_admin = free_port();
        let issuer_chart = render_chart("relay-issuer", RELAY_NAMESPACE, &[])?;
        let mut command = issuer_chart.process_command(
            &issuer,
            "relay-issuer-controller",
            &[
                ("--admin-address", format!("127.0.0.1:{controller_admin}")),
                ("--leader-elect", "false".into()),
            ],
            "relay-issuer-controller-0",
        )?;
        command.env("KUBECONFIG", sandbox.kubeconfig());
        let mut controller = Process::spawn("relay-issuer-controller", command, logs.path())?;
        controller
            .wait_ready(controller_admin, Duration::from_secs(30))
            .await?;

        let relay_port = free_port();
        let server_admin = free_port();
        let server = start_server(&sandbox, logs.path(), relay_port, server_admin).await?;
        Ok(Self {
            sandbox,
            _simulator: simulator,
            client,
            pki,
            logs,
            _controller: controller,
            server,
            relay_port,
            server_admin,
        })
    }

    fn relay_address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.relay_port))
    }

    /// Starts `relay-agent` for `cluster` in `namespace`; returns it and its admin port.
    async fn start_agent(
        &self,
        namespace: &str,
        cluster: &str,
    ) -> Result<(Process, u16), BoxError> {
        let admin = free_port();
        let chart = render_chart(
            "relay-agent",
            namespace,
            &[
                ("cluster", cluster.to_string()),
                (
                    "glooAgent.relay.serverAddress",
                    format!("127.0.0.1:{}", self.relay_port),
                ),
                ("glooAgent.relay.serverName", "localhost".into()),
            ],
        )?;
        let mut command = chart.process_command(
            &binary("relay-agent"),
            "relay-agent",
            &[
                ("--heartbeat-interval", "200ms".into()),
                ("--reconnect-backoff", "100ms".into()),
                ("--reconnect-backoff-max", "1s".into()),
                ("--resync-interval", "30s".into()),
                ("--admin-address", format!("127.0.0.1:{admin}")),
            ],
            &format!("{cluster}-agent"),
        )?;
        command.env("KUBECONFIG", self.sandbox.kubeconfig());
        let agent = Process::spawn(&format!("relay-agent-{cluster}"), command, self.logs.path())?;
        Ok((agent, admin))
    }
}

impl World {
    /// The cluster side of a Gloo-managed agent in `namespace`: a signing Secret with the
    /// world's intermediate, RelayIssuer `relay`, and the agent chart's Certificate for
    /// `cluster` with `duration` and `renew_before` (Go durations). Returns the namespace's
    /// Certificates.
    async fn managed_certificate(
        &self,
        namespace: &str,
        cluster: &str,
        duration: &str,
        renew_before: &str,
    ) -> Result<Api<DynamicObject>, BoxError> {
        install_managed_agent(
            &self.client,
            &self.pki,
            namespace,
            cluster,
            duration,
            renew_before,
        )
        .await
    }
}

async fn start_server(
    sandbox: &Sandbox,
    logs: &std::path::Path,
    relay_port: u16,
    admin: u16,
) -> Result<Process, BoxError> {
    let chart = render_chart("relay-issuer", RELAY_NAMESPACE, &[])?;
    let mut command = chart.process_command(
        &binary("relay-issuer"),
        "relay-issuer-server",
        &[
            ("--listen", format!("127.0.0.1:{relay_port}")),
            ("--admin-address", format!("127.0.0.1:{admin}")),
            ("--heartbeat-interval", "1s".into()),
        ],
        "relay-issuer-server-0",
    )?;
    command.env("KUBECONFIG", sandbox.kubeconfig());
    let name = format!(
        "relay-issuer-server-{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_millis()
    );
    let mut server = Process::spawn(&name, command, logs)?;
    server.wait_ready(admin, Duration::from_secs(30)).await?;
    Ok(server)
}

/// Writes `relay-client-tls-secret` (type `kubernetes.io/tls`, as cert-manager writes it) in
/// `namespace` through the API.
async fn put_client_secret(
    client: &kube::Client,
    namespace: &str,
    pem: &Pem,
) -> Result<(), kube::Error> {
    put_client_secret_data(
        client,
        namespace,
        &[("tls.crt", &pem.chain), ("tls.key", &pem.key)],
    )
    .await
}

/// Writes `relay-client-tls-secret` (type `kubernetes.io/tls`) with exactly `data`.
async fn put_client_secret_data(
    client: &kube::Client,
    namespace: &str,
    data: &[(&str, &str)],
) -> Result<(), kube::Error> {
    use base64::Engine as _;
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                base64::engine::general_purpose::STANDARD.encode(v).into(),
            )
        })
        .collect();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "relay-client-tls-secret", "namespace": namespace},
        "data": data,
    });
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .patch(
            "relay-client-tls-secret",
            &kube::api::PatchParams::apply("test").force(),
            &kube::api::Patch::Apply(&secret),
        )
        .await
        .map(|_| ())
}

fn tls_secret_manifest(namespace: &str, pem: &Pem, root: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "relay-client-tls-secret", "namespace": namespace},
        "stringData": {"tls.crt": pem.chain, "tls.key": pem.key, "ca.crt": root},
    })
    .to_string()
}

fn kubectl_run(world: &World, args: &[&str], stdin: Option<&str>) -> Result<String, BoxError> {
    Ok(kube_sandbox::kubectl::kubectl_run(
        world.sandbox.kubeconfig(),
        &world.logs.path().join("kube-cache"),
        args,
        stdin,
    )?)
}

// ---- least privilege: the charts' RBAC against what the binaries did ----

/// Checks every request each binary made (by User-Agent) against the RBAC the charts render
/// for it, and returns the grants no request used, per component.
fn check_rbac(w: &World) -> Result<Vec<(String, Vec<String>)>, BoxError> {
    use kube_sandbox::rbac::{denied, grants_for, unused};
    use relay_sandbox::charts::render_chart;
    let issuer = render_chart("relay-issuer", RELAY_NAMESPACE, &[])?;
    let agent = render_chart(
        "relay-agent",
        MANAGED_NS,
        &[
            ("cluster", "cluster-a".into()),
            ("glooAgent.relay.serverAddress", "relay:9900".into()),
        ],
    )?;
    let log = w.sandbox.requests();
    let mut report = Vec::new();
    for (rendered, deployment, agent_prefix) in [
        (
            &issuer,
            "relay-issuer-controller",
            "relay-issuer-controller",
        ),
        (&issuer, "relay-issuer-server", "relay-issuer-server"),
        (&agent, "relay-agent", "relay-agent/"),
    ] {
        let account = rendered
            .find("Deployment", deployment)
            .and_then(|d| d.pointer("/spec/template/spec/serviceAccountName"))
            .and_then(serde_json::Value::as_str)
            .ok_or(format!("{deployment} has no serviceAccountName"))?;
        let grants = grants_for(
            &rendered.objects,
            &rendered.namespace,
            account,
            &rendered.namespace,
        );
        let used: Vec<_> = log
            .iter()
            .filter(|r| r.user_agent.starts_with(agent_prefix))
            .cloned()
            .collect();
        assert!(
            !used.is_empty(),
            "no request from {agent_prefix} in the log"
        );
        let refused = denied(&grants, &used);
        assert!(
            refused.is_empty(),
            "{deployment}'s RBAC does not allow requests it made: {:#?}",
            refused
                .iter()
                .map(|r| format!(
                    "{} {}/{} {}.{} ns={} name={}",
                    r.verb, r.resource, r.subresource, r.resource, r.group, r.namespace, r.name
                ))
                .collect::<Vec<_>>()
        );
        report.push((deployment.to_string(), unused(&grants, &used)));
    }
    Ok(report)
}

// ---- 1. Gloo-managed ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gloo_managed_certificates_rotate_twenty_times_without_a_failed_rpc() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    // Short lifetimes; cert-manager renews at the relay grace ratio (0.5 here: half-way).
    let duration = time::Duration::seconds(4);
    let renew_before = relay_issuer::pki::renewal::renew_before_for_ratio(duration, 0.5)?;
    w.managed_certificate(
        MANAGED_NS,
        "cluster-a",
        &relay_issuer::pki::format_duration(duration),
        &relay_issuer::pki::format_duration(renew_before),
    )
    .await?;

    let (mut agent, admin) = w.start_agent(MANAGED_NS, "cluster-a").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    let first = w
        .clusters()
        .wait("cluster-a", Duration::from_secs(10), |s| s.connected)
        .await?;

    // 20 renewals, each swapped by the agent and recorded by the server.
    let serials = w
        .clusters()
        .wait_renewals(
            "cluster-a",
            first.certificate_serial.unwrap_or_default(),
            20,
            Duration::from_secs(150),
        )
        .await
        .map_err(|e| {
            format!(
                "{e}
agent log:
{}",
                agent.log()
            )
        })?;
    let text = metrics(admin);
    let swaps = metric_value(&text, "relay_agent_certificate_swaps_total");
    let heartbeats = metric_value(&text, "relay_agent_heartbeats_total");
    let failures = metric_value(&text, "relay_agent_rpc_failures_total");
    eprintln!(
        "gloo-managed: {} distinct serials seen by the server, {swaps} swaps, {heartbeats} heartbeats acked, {failures} failed RPCs",
        serials.len()
    );
    assert!(swaps >= 20.0, "{text}");
    assert!(heartbeats > 0.0, "{text}");
    assert_eq!(
        failures,
        0.0,
        "no failed heartbeat or RPC across the rotations:\n{text}\n{}",
        agent.log()
    );
    let unique: std::collections::BTreeSet<_> = serials.iter().collect();
    assert_eq!(
        unique.len(),
        serials.len(),
        "every rotation brought a new serial"
    );
    // The server's view stays connected on exactly one stream once swaps settle.
    let status = w
        .clusters()
        .wait("cluster-a", Duration::from_secs(5), |s| {
            s.connected && s.streams >= 1
        })
        .await?;
    assert!(status.streams <= 2, "{status:?}");
    assert_eq!(
        agent.terminate(Duration::from_secs(10)).await?.code(),
        Some(0)
    );
    // Least privilege: what the scenario did not use is only what it cannot reach (leader
    // election is off here, no RelayClusterIssuer, no repeated or Warning events).
    for (component, unused) in check_rbac(&w)? {
        eprintln!("{component}: granted but not used in this scenario: {unused:?}");
        let allowed_unused: &[&str] = match component.as_str() {
            // No Kubernetes CSR is signed in this scenario (real_e2e signs them).
            "relay-issuer-controller" => &[
                "create leases.coordination.k8s.io",
                "get leases.coordination.k8s.io",
                "update leases.coordination.k8s.io",
                "patch events.events.k8s.io",
                "patch relayclusterissuers/status.relaytls.dev",
                "patch certificatesigningrequests/status.certificates.k8s.io",
                "sign signers.certificates.k8s.io",
            ],
            // The server deletes its replica Lease when it stops, which is after this check.
            _ => &[
                "create events.events.k8s.io",
                "patch events.events.k8s.io",
                "delete leases.coordination.k8s.io",
            ],
        };
        for grant in &unused {
            assert!(
                allowed_unused.contains(&grant.as_str()),
                "{component} is granted {grant}, which it never uses"
            );
        }
    }
    Ok(())
}

// ---- 2. Bring-your-own, 3. server reload ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bring_your_own_secret_replaced_by_kubectl_swaps_and_server_reload_leaves_the_stream()
-> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let first = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    put_client_secret(&w.client, BYO_NS, &first).await?;
    let (mut agent, admin) = w.start_agent(BYO_NS, "cluster-b").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    let serial = first.serial();
    w.clusters()
        .wait("cluster-b", Duration::from_secs(10), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await?;

    // Another intermediate under the same root, written by a person with kubectl replace.
    let other = w.pki.other_intermediate("relay intermediate 2")?;
    let second = sign_agent(&other, "cluster-b", time::Duration::hours(1))?;
    kubectl_run(
        &w,
        &["replace", "-f", "-"],
        Some(&tls_secret_manifest(BYO_NS, &second, &w.pki.root)),
    )?;
    let serial = second.serial();
    w.clusters()
        .wait("cluster-b", Duration::from_secs(10), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    wait_metric(
        admin,
        "relay_agent_certificate_swaps_total",
        Duration::from_secs(5),
        |v| v >= 1.0,
    )
    .await?;

    // 3. Server certificate reload: new handshakes (openssl s_client) see the new certificate.
    let reconnects_before = metric_sum(&metrics(admin), "relay_agent_reconnects_total");
    let heartbeats_before = metric(admin, "relay_agent_heartbeats_total");
    let new_server = w.pki.new_server_certificate()?;
    put_secret_data(
        &w.client,
        RELAY_NAMESPACE,
        "relay-server-tls-secret",
        &[("tls.crt", &new_server.chain), ("tls.key", &new_server.key)],
    )
    .await?;
    // openssl s_client sees the new server certificate.
    wait_openssl_serial(w.relay_port, &new_server.serial(), Duration::from_secs(10)).await?;
    // The agent's open stream is unaffected: heartbeats continue, no reconnect, no failure.
    wait_metric(
        admin,
        "relay_agent_heartbeats_total",
        Duration::from_secs(5),
        |v| v >= heartbeats_before + 3.0,
    )
    .await?;
    let text = metrics(admin);
    let reconnects_after = metric_sum(&text, "relay_agent_reconnects_total");
    assert_eq!(
        reconnects_after, reconnects_before,
        "the stream was not reconnected:\n{text}"
    );
    assert_eq!(
        metric_value(&text, "relay_agent_rpc_failures_total"),
        0.0,
        "{text}"
    );
    let status = w.clusters().status("cluster-b").await.ok_or("no status")?;
    assert!(status.connected && status.streams == 1, "{status:?}");
    assert_eq!(metric(w.server_admin, "relay_server_connected_agents"), 1.0);
    Ok(())
}

// ---- 4. Expiry ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_outlives_its_certificate_and_a_reconnect_waits_for_a_new_one() -> TestResult
{
    let _one = SERIAL.lock().await;
    let mut w = World::start().await?;
    let short = w.pki.agent("cluster-b", time::Duration::seconds(4))?;
    let short_not_after = short.key_pair()?.not_after;
    put_client_secret(&w.client, BYO_NS, &short).await?;
    let (mut agent, admin) = w.start_agent(BYO_NS, "cluster-b").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    w.clusters()
        .wait("cluster-b", Duration::from_secs(10), |s| s.connected)
        .await?;

    // Past notAfter: the agent says so on /ready, and the session goes on (heartbeats acked).
    wait_not_ready_because(admin, "expired", Duration::from_secs(10)).await?;
    wait_metric_grows(
        admin,
        "relay_agent_heartbeats_total",
        3.0,
        Duration::from_secs(5),
    )
    .await?;
    assert_eq!(metric(admin, "relay_agent_rpc_failures_total"), 0.0);
    assert!(
        w.clusters()
            .status("cluster-b")
            .await
            .is_some_and(|s| s.connected)
    );
    wait_ready(admin, false, Duration::from_secs(3)).await?;

    // Force a reconnect: restart the relay server. The expired certificate is refused — once
    // its notAfter second has passed: the server's verifier (webpki) compares whole seconds and
    // still accepts a certificate during that second, which the agent already calls expired.
    while time::OffsetDateTime::now_utc() <= short_not_after + time::Duration::seconds(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.server.terminate(Duration::from_secs(15)).await?;
    w.server = start_server(&w.sandbox, w.logs.path(), w.relay_port, w.server_admin).await?;
    // Two refused attempts: the second, later one is the sentinel that no attempt in between
    // got through.
    wait_metric(
        w.server_admin,
        "relay_server_handshake_failures_total{reason=\"expired_client_certificate\"}",
        Duration::from_secs(10),
        |v| v >= 2.0,
    )
    .await?;
    assert_eq!(metric(w.server_admin, "relay_server_connected_agents"), 0.0);
    wait_ready(admin, false, Duration::from_secs(1)).await?;

    // A new certificate: the agent recovers by itself.
    let fresh = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    put_client_secret(&w.client, BYO_NS, &fresh).await?;
    let serial = fresh.serial();
    w.clusters()
        .wait("cluster-b", Duration::from_secs(15), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    wait_ready(admin, true, Duration::from_secs(10)).await?;
    Ok(())
}

// ---- 5. Bad Secret data ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secret_data_keeps_the_last_good_certificate_with_warning_events() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let good = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    // A hand-made Opaque Secret (a kubernetes.io/tls one could not even lose its keys).
    put_secret_data(
        &w.client,
        BYO_NS,
        "relay-client-tls-secret",
        &[("tls.crt", &good.chain), ("tls.key", &good.key)],
    )
    .await?;
    let (mut agent, admin) = w.start_agent(BYO_NS, "cluster-b").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    let serial = good.serial();
    w.clusters()
        .wait("cluster-b", Duration::from_secs(10), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await?;
    let other = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "certificate_missing",
            vec![("tls.crt", "garbage"), ("tls.key", &good.key)],
        ),
        (
            "key_mismatch",
            vec![("tls.crt", &good.chain), ("tls.key", &other.key)],
        ),
        (
            "is_ca",
            vec![
                ("tls.crt", &w.pki.intermediate),
                ("tls.key", &w.pki.intermediate_key),
            ],
        ),
        ("key_missing", vec![("tls.crt", &good.chain)]),
    ];
    for (reason, data) in &cases {
        put_secret_data(&w.client, BYO_NS, "relay-client-tls-secret", data).await?;
        wait_metric(
            admin,
            &format!("relay_agent_certificate_rejected_total{{reason=\"{reason}\"}}"),
            Duration::from_secs(10),
            |v| v >= 1.0,
        )
        .await
        .map_err(|e| format!("{reason}: {e}\n{}", agent.log()))?;
        let status = w.clusters().status("cluster-b").await.ok_or("no status")?;
        assert!(status.connected, "{reason}: still connected");
        assert_eq!(
            status.certificate_serial.as_deref(),
            Some(serial.as_str()),
            "{reason}: last good certificate kept"
        );
    }
    assert_eq!(metric(admin, "relay_agent_certificate_swaps_total"), 0.0);
    wait_ready(admin, true, Duration::from_secs(1)).await?;
    // The Warning events regarding the Secret, where a person looks. (`kubectl describe secret`
    // prints no events for any Secret — its describer has no events section — so the
    // place is `kubectl events --for secret/…`.)
    let mut listed = String::new();
    for _ in 0..100 {
        listed = kubectl_run(
            &w,
            &[
                "events",
                "-n",
                BYO_NS,
                "--for",
                "secret/relay-client-tls-secret",
                "--types",
                "Warning",
            ],
            None,
        )?;
        if listed.matches("InvalidClientCertificate").count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed.matches("InvalidClientCertificate").count(),
        4,
        "{listed}\n{}",
        agent.log()
    );
    assert!(
        listed.contains("does not belong to the certificate"),
        "{listed}"
    );
    assert!(listed.contains("is a CA"), "{listed}");
    assert!(!listed.contains("PRIVATE KEY"), "{listed}");
    let described = kubectl_run(
        &w,
        &[
            "describe",
            "secret",
            "relay-client-tls-secret",
            "-n",
            BYO_NS,
        ],
        None,
    )?;
    assert!(
        described.contains("Type:  Opaque") && !described.contains("BEGIN"),
        "{described}"
    );
    // And a good version is taken again.
    let next = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    put_secret_data(
        &w.client,
        BYO_NS,
        "relay-client-tls-secret",
        &[("tls.crt", &next.chain), ("tls.key", &next.key)],
    )
    .await?;
    let serial = next.serial();
    w.clusters()
        .wait("cluster-b", Duration::from_secs(10), |s| {
            s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await?;
    Ok(())
}

// ---- 6. Security against the real server process ----

fn sign_request(
    csr: &str,
    cluster: &str,
    token: Option<&str>,
) -> tonic::Request<SignCertificateRequest> {
    let mut request = tonic::Request::new(SignCertificateRequest {
        csr_pem: csr.into(),
        cluster: cluster.into(),
        requested_duration_seconds: 0,
    });
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_process_refuses_what_it_must() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let address = w.relay_address();
    // A certificate for cluster A asking to sign for B.
    let a = w.pki.agent("cluster-a", time::Duration::hours(1))?;
    let (csr_b, _) = agent_csr("cluster-b")?;
    let mut as_a = RelayCertificatesClient::new(
        channel(address, client_config(&w.pki.root, Some(&a))?).await?,
    );
    let status = as_a
        .sign_certificate(sign_request(&csr_b, "cluster-b", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // An unregistered cluster, with the right token.
    let mut anonymous =
        RelayCertificatesClient::new(channel(address, client_config(&w.pki.root, None)?).await?);
    let (csr_z, _) = agent_csr("cluster-z")?;
    let status = anonymous
        .sign_certificate(sign_request(&csr_z, "cluster-z", Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let z = w.pki.agent("cluster-z", time::Duration::hours(1))?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(AgentMessage::hello(Hello {
        cluster: "cluster-z".into(),
        ..Default::default()
    }))
    .await?;
    let status = RelayClient::new(channel(address, client_config(&w.pki.root, Some(&z))?).await?)
        .connect(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Missing, then wrong tokens: Unauthenticated, then rate-limited.
    let (csr_a, _) = agent_csr("cluster-a")?;
    let status = anonymous
        .sign_certificate(sign_request(&csr_a, "cluster-a", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut codes = Vec::new();
    for _ in 0..6 {
        let status = anonymous
            .sign_certificate(sign_request(&csr_a, "cluster-a", Some("wrong")))
            .await
            .unwrap_err();
        codes.push(status.code());
    }
    assert_eq!(&codes[..4], &[Code::Unauthenticated; 4], "{codes:?}");
    assert_eq!(&codes[4..], &[Code::ResourceExhausted; 2], "{codes:?}");
    // A client certificate from an untrusted CA cannot connect.
    let stranger = RelayPki::new()?.agent("cluster-a", time::Duration::hours(1))?;
    let refused = match channel(address, client_config(&w.pki.root, Some(&stranger))?).await {
        Err(_) => true,
        Ok(channel) => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(AgentMessage::hello(Hello {
                cluster: "cluster-a".into(),
                ..Default::default()
            }))
            .await?;
            RelayClient::new(channel)
                .connect(ReceiverStream::new(rx))
                .await
                .is_err()
        }
    };
    assert!(refused, "an untrusted client certificate must not connect");
    wait_metric(
        w.server_admin,
        "relay_server_handshake_failures_total{reason=\"untrusted_client_certificate\"}",
        Duration::from_secs(5),
        |v| v >= 1.0,
    )
    .await?;
    Ok(())
}

// ---- 7. Swap latency ----

fn log_time_of_connect(log: &str, serial: &str) -> Option<time::OffsetDateTime> {
    log.lines().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = &value["fields"];
        (fields["message"] == "agent connected" && fields["serial"] == serial).then_some(())?;
        time::OffsetDateTime::parse(
            value["timestamp"].as_str()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_latency_over_100_swaps() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let first = w.pki.agent("cluster-b", time::Duration::hours(1))?;
    put_client_secret(&w.client, BYO_NS, &first).await?;
    let (mut agent, admin) = w.start_agent(BYO_NS, "cluster-b").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    let ca = w.pki.ca()?;
    let certificates: Vec<Pem> = (0..100)
        .map(|_| sign_agent(&ca, "cluster-b", time::Duration::hours(1)))
        .collect::<Result<_, _>>()?;
    let mut latencies = Vec::new();
    for pem in &certificates {
        let serial = pem.serial();
        let written = time::OffsetDateTime::now_utc();
        put_client_secret(&w.client, BYO_NS, pem).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let connected = loop {
            if let Some(at) = log_time_of_connect(&w.server.log(), &serial) {
                break at;
            }
            if Instant::now() > deadline {
                return Err(format!("serial {serial} never connected\n{}", agent.log()).into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        latencies.push((connected - written).as_seconds_f64() * 1000.0);
        // The old connection closes before the next swap: the server's book holds one stream,
        // the new certificate's.
        w.clusters()
            .wait("cluster-b", Duration::from_secs(10), |s| {
                s.streams == 1 && s.certificate_serial.as_deref() == Some(serial.as_str())
            })
            .await?;
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    eprintln!(
        "swap latency (Secret write → first Connect with the new certificate, server log), {} swaps: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 ≤ 100 ms)",
        latencies.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    );
    assert_eq!(latencies.len(), 100);
    assert_eq!(metric(admin, "relay_agent_certificate_swaps_total"), 100.0);
    assert_eq!(
        metric(admin, "relay_agent_rpc_failures_total"),
        0.0,
        "{}",
        metrics(admin)
    );
    Ok(())
}

// ---- 8. Cut off and let back in: suspension and revocation with the real agent ----

/// notBefore of the certificate in `namespace`'s `relay-client-tls-secret`.
async fn client_not_before(
    client: &kube::Client,
    namespace: &str,
) -> Result<time::OffsetDateTime, BoxError> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get("relay-client-tls-secret")
        .await?;
    let chain = secret
        .data
        .and_then(|d| d.get("tls.crt").cloned())
        .ok_or("no tls.crt")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&chain.0)?;
    let certificate = pem.parse_x509()?;
    Ok(time::OffsetDateTime::from_unix_timestamp(
        certificate.validity().not_before.timestamp(),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_or_revoked_agent_is_cut_off_says_why_and_comes_back_by_itself() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let certificates = w
        .managed_certificate(MANAGED_NS, "cluster-a", "1h", "20m")
        .await?;
    let (mut agent, admin) = w.start_agent(MANAGED_NS, "cluster-a").await?;
    agent.wait_ready(admin, Duration::from_secs(30)).await?;
    let first = w
        .clusters()
        .wait("cluster-a", Duration::from_secs(10), |s| s.connected)
        .await?;
    let relayclusters: Api<relay_issuer::api::RelayCluster> =
        Api::namespaced(w.client.clone(), RELAY_NAMESPACE);
    let set_spec = |spec: serde_json::Value| {
        let relayclusters = relayclusters.clone();
        async move {
            relayclusters
                .patch(
                    "cluster-a",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({ "spec": spec })),
                )
                .await
                .map(|_| ())
        }
    };

    // Suspended: the agent's stream is closed, it says why on /ready, in its log and metric,
    // and keeps retrying (two refusals: the second is the sentinel that it did not give up).
    set_spec(json!({"suspended": true})).await?;
    let reason = wait_not_ready_because(admin, "suspended", Duration::from_secs(5))
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    eprintln!("suspended agent's /ready: {reason}");
    wait_metric(
        admin,
        "relay_agent_refusals_total{code=\"permission_denied\"}",
        Duration::from_secs(10),
        |v| v >= 2.0,
    )
    .await?;
    assert!(
        agent.log().contains("is suspended"),
        "the agent's log names the suspension:\n{}",
        agent.log()
    );
    w.clusters()
        .wait("cluster-a", Duration::from_secs(10), |s| !s.connected)
        .await?;

    // Resumed: back by itself, with the same certificate.
    set_spec(json!({"suspended": false})).await?;
    wait_ready(admin, true, Duration::from_secs(10))
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    w.clusters()
        .wait("cluster-a", Duration::from_secs(10), |s| {
            s.connected && s.certificate_serial == first.certificate_serial
        })
        .await?;

    // Revoked: certificates issued before a second later than the current one's notBefore.
    let not_before = client_not_before(&w.client, MANAGED_NS).await?;
    while time::OffsetDateTime::now_utc().unix_timestamp() <= not_before.unix_timestamp() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut_off = relay_issuer::pki::truncate_to_second(time::OffsetDateTime::now_utc());
    set_spec(json!({"revokeCertificatesIssuedBefore": relay_issuer::pki::format_time(cut_off)}))
        .await?;
    wait_not_ready_because(admin, "revoked", Duration::from_secs(5))
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    wait_metric(
        admin,
        "relay_agent_refusals_total{code=\"unauthenticated\"}",
        Duration::from_secs(10),
        |v| v >= 1.0,
    )
    .await?;
    // cert-manager renews when asked (what `cmctl renew` does: the Certificate's Issuing
    // condition); the agent swaps to the new certificate and is let in.
    let renew: json_patch::Patch = serde_json::from_value(json!([{
        "op": "add", "path": "/status/conditions/-",
        "value": {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
                  "message": "Certificate re-issuance manually triggered",
                  "lastTransitionTime": relay_issuer::pki::format_time(time::OffsetDateTime::now_utc())}
    }]))?;
    certificates
        .patch_status(
            "relay-client",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::<()>::Json(renew),
        )
        .await?;
    let renewed = w
        .clusters()
        .wait("cluster-a", Duration::from_secs(30), |s| {
            s.connected && s.certificate_serial != first.certificate_serial
        })
        .await
        .map_err(|e| format!("{e}\n{}", agent.log()))?;
    wait_ready(admin, true, Duration::from_secs(10)).await?;
    assert!(client_not_before(&w.client, MANAGED_NS).await? >= cut_off);
    eprintln!(
        "revocation: renewed from serial {:?} to {:?}",
        first.certificate_serial, renewed.certificate_serial
    );
    Ok(())
}

// ---- 9. Root rotation without an outage: `relay-issuer ca rotate` ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_rotates_under_five_live_agents_without_a_failed_rpc() -> TestResult {
    let _one = SERIAL.lock().await;
    let w = World::start().await?;
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    // Five Gloo-managed agents (cert-manager renews through a RelayIssuer in their namespace),
    // and one bring-your-own agent whose certificate nobody renews.
    let managed: Vec<(String, String)> = (1..=5)
        .map(|n| (format!("rot-{n}"), format!("cluster-{n}")))
        .collect();
    let (stale_ns, stale_cluster) = ("rot-6".to_string(), "cluster-6".to_string());
    // The world's own two clusters have no agent in this scenario: not part of the fleet.
    let registered: Api<relay_issuer::api::RelayCluster> =
        Api::namespaced(w.client.clone(), RELAY_NAMESPACE);
    for cluster in ["cluster-a", "cluster-b"] {
        registered
            .delete(cluster, &kube::api::DeleteParams::default())
            .await?;
    }
    let mut agents = Vec::new();
    for (ns, cluster) in managed
        .iter()
        .chain(std::iter::once(&(stale_ns.clone(), stale_cluster.clone())))
    {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
        relay_sandbox::relay::put_root_secret(&w.client, ns, &w.pki).await?;
        relay_sandbox::relay::register_cluster(&w.client, RELAY_NAMESPACE, cluster).await?;
    }
    for (ns, cluster) in &managed {
        w.managed_certificate(ns, cluster, "1h", "20m").await?;
        agents.push(w.start_agent(ns, cluster).await?);
    }
    let stale_pem = w.pki.agent(&stale_cluster, time::Duration::hours(1))?;
    put_client_secret(&w.client, &stale_ns, &stale_pem).await?;
    agents.push(w.start_agent(&stale_ns, &stale_cluster).await?);
    for (agent, admin) in &mut agents {
        agent.wait_ready(*admin, Duration::from_secs(30)).await?;
    }
    let old_root = pem_fingerprint(&w.pki.root)?;
    for (_, cluster) in &managed {
        w.clusters()
            .wait(cluster, Duration::from_secs(15), |s| {
                s.connected && s.certificate_root.as_deref() == Some(old_root.as_str())
            })
            .await?;
    }

    // The new PKI, and the plan (a dry run changes nothing).
    let kubeconfig = w.sandbox.kubeconfig().to_path_buf();
    let new_pki = RotationPki::create(&kubeconfig)?;
    let new_path = new_pki.path();
    let new_root = new_pki.root_fingerprint()?;
    let rotate = |apply: bool| {
        let mut args = vec![
            "ca",
            "rotate",
            "--namespace",
            RELAY_NAMESPACE,
            "--new",
            &new_path,
            "--renew-timeout",
            "30s",
            "--settle",
            "2s",
        ];
        if apply {
            args.push("--apply");
        }
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                run_relay_issuer(&kubeconfig, &refs)
            })
            .await?
        }
    };
    let (code, plan) = run(rotate(false)).await?;
    assert_eq!(code, 0, "{plan}");
    assert!(
        plan.contains("stage 1/5") && plan.contains("dry run"),
        "{plan}"
    );
    eprintln!("rotation plan:\n{plan}");

    // Carried out: stages 1-4 go through; stage 5 refuses, naming the stale cluster.
    let (code, output) = run(rotate(true)).await?;
    eprintln!("rotation, first run:\n{output}");
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("stage 5/5")
            && output.contains("\"cluster-6\"")
            && output.contains("refused"),
        "{output}"
    );
    for (_, cluster) in &managed {
        w.clusters()
            .wait(cluster, Duration::from_secs(10), |s| {
                s.connected && s.certificate_root.as_deref() == Some(new_root.as_str())
            })
            .await?;
    }
    // The server now serves a certificate under the new root.
    wait_openssl_serial(
        w.relay_port,
        &new_pki.server_serial()?,
        Duration::from_secs(10),
    )
    .await?;

    // The stale cluster fixed (its agent gets a certificate under the new root): the rotation
    // resumes and completes; the old root is gone from every bundle.
    let fresh = new_pki.agent(&stale_cluster)?;
    put_client_secret(&w.client, &stale_ns, &fresh).await?;
    w.clusters()
        .wait(&stale_cluster, Duration::from_secs(15), |s| {
            s.connected && s.certificate_root.as_deref() == Some(new_root.as_str())
        })
        .await?;
    let (code, output) = run(rotate(true)).await?;
    eprintln!("rotation, second run:\n{output}");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("done"), "{output}");
    assert_bundles_hold_only(&w.client, &new_root).await?;
    // Every agent stayed up: no failed RPC on any of them, all connected now.
    for (agent, admin) in &agents {
        assert_eq!(
            metric(*admin, "relay_agent_rpc_failures_total"),
            0.0,
            "{}",
            agent.log()
        );
        wait_ready(*admin, true, Duration::from_secs(10)).await?;
    }
    Ok(())
}
