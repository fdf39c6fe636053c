//! `make demo`: the whole relay client-certificate lifecycle on a laptop with no cluster.
//!
//! Starts the sandbox API server with the cert-manager simulator, creates the relay CA with
//! `relay-issuer ca create`, renders both Helm charts and creates what they render, starts
//! `relay-issuer controller`, `relay-issuer server` and `relay-agent` as processes with the
//! arguments the rendered Deployments carry, and narrates the lifecycle as it happens with
//! short certificate lifetimes: issuance, the agent connecting, renewal at the grace ratio, the
//! swap and reconnect, and a server certificate reload. It ends with `kubectl describe
//! certificaterequest` for the latest request and a summary table.
//!
//! `--keep` (`make demo KEEP=1`) keeps everything running afterwards; the kubeconfig is written
//! to `target/demo/kubeconfig` either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cert_manager_sim::{Simulator, SimulatorOptions};
use clap::Parser;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DynamicObject, ListParams, PostParams};
use kube_sandbox::{Sandbox, SandboxOptions};
use relay_issuer::api::RelayCluster;
use relay_issuer::pki::{self, SigningCa};
use relay_sandbox::charts::{Rendered, render_chart};
use relay_sandbox::processes::{Process, binary, free_port, http_get};
use relay_sandbox::relay::{Pem, client_config, metric_value, presented_serial, sign_server};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything runs in this namespace (management and agent side by side).
const NAMESPACE: &str = "gloo-mesh";
/// The agent's cluster name.
const CLUSTER: &str = "cluster-1";

/// The demo's options.
#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "The relay client-certificate lifecycle, narrated"
)]
struct Args {
    /// Keep everything running after the summary (until Ctrl-C).
    #[arg(long)]
    keep: bool,
    /// Lifetime of the agent's certificates.
    #[arg(long, default_value = "24s")]
    duration: String,
    /// The grace ratio (renewal starts ratio × lifetime before expiry).
    #[arg(long, default_value_t = 0.5)]
    ratio: f64,
    /// How many renewals to watch before the server certificate reload and the summary.
    #[arg(long, default_value_t = 2)]
    renewals: usize,
}

struct Narrator {
    started: Instant,
}

impl Narrator {
    fn say(&self, text: impl AsRef<str>) {
        println!(
            "[{:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            text.as_ref()
        );
    }
}

/// Step 7: `kubectl apply` a CertificateSigningRequest for signer `relaytls.dev/agent`,
/// `kubectl certificate approve` it, wait for the controller to sign it, show `kubectl get csr`.
/// Returns the issued certificate's serial.
async fn kubernetes_csr(
    kubeconfig: &Path,
    client: &kube::Client,
    n: &Narrator,
) -> Result<String, BoxError> {
    use base64::Engine as _;
    const NAME: &str = "cluster-1-agent";
    let (csr, key) = relay_sandbox::relay::agent_csr(CLUSTER)?;
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {NAME}}}\nspec:\n  signerName: relaytls.dev/agent\n  request: {}\n  usages: [client auth, digital signature]\n  expirationSeconds: 86400\n",
        base64::engine::general_purpose::STANDARD.encode(&csr)
    );
    println!("\n$ kubectl apply -f csr.yaml   # signerName: relaytls.dev/agent, CN={CLUSTER}");
    print!(
        "{}",
        kubectl_cmd(kubeconfig, &["apply", "-f", "-"], Some(&manifest))?
    );
    println!("$ kubectl certificate approve {NAME}");
    print!(
        "{}",
        kubectl_cmd(kubeconfig, &["certificate", "approve", NAME], None)?
    );
    let issued = relay_sandbox::relay::wait_csr(client, NAME, Duration::from_secs(30), |s| {
        s.certificate.is_some()
    })
    .await?;
    let chain = String::from_utf8(issued.certificate.map(|c| c.0).unwrap_or_default())?;
    println!("$ kubectl get csr {NAME}");
    print!("{}", kubectl_cmd(kubeconfig, &["get", "csr", NAME], None)?);
    let serial = pki::load_key_pair(
        Some(chain.as_bytes()),
        Some(key.as_bytes()),
        time::OffsetDateTime::now_utc(),
    )?
    .serial;
    n.say(format!(
        "the controller signed CertificateSigningRequest {NAME} (signer relaytls.dev/agent) once approved: serial {serial}"
    ));
    Ok(serial)
}

fn workdir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/demo"))
}

fn kubectl_cmd(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, BoxError> {
    Ok(kube_sandbox::kubectl::kubectl_run(
        kubeconfig,
        &workdir().join("kube-cache"),
        args,
        stdin,
    )?)
}

/// Creates every rendered object the sandbox serves; returns the kinds left out (workloads
/// need a kubelet, which the sandbox does not have: their processes are started directly).
fn apply_rendered(kubeconfig: &Path, rendered: &Rendered) -> Result<Vec<String>, BoxError> {
    let mut skipped = Vec::new();
    for object in &rendered.objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        match kubectl_cmd(
            kubeconfig,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "helm",
                "-f",
                "-",
            ],
            Some(&object.to_string()),
        ) {
            Ok(_) => {}
            Err(e)
                if [
                    "the server doesn't have a resource type",
                    "no matches for kind",
                    "could not find the requested resource",
                ]
                .iter()
                .any(|unserved| e.to_string().contains(unserved)) =>
            {
                skipped.push(kind)
            }
            Err(e) => return Err(format!("creating the rendered {kind}: {e}").into()),
        }
    }
    skipped.sort();
    skipped.dedup();
    Ok(skipped)
}

/// Starts a binary with the args/env of a rendered Deployment, with local addresses.
fn start_from_chart(
    name: &str,
    binary_name: &str,
    rendered: &Rendered,
    deployment: &str,
    overrides: &[(&str, String)],
    kubeconfig: &Path,
    logs: &Path,
) -> Result<Process, BoxError> {
    let mut command = rendered.process_command(
        &binary(binary_name),
        deployment,
        overrides,
        &format!("{name}-0"),
    )?;
    command.env("KUBECONFIG", kubeconfig);
    Ok(Process::spawn(name, command, logs)?)
}

fn new_server_certificate(pki_dir: &Path) -> Result<Pem, BoxError> {
    let ca = SigningCa::load(
        &std::fs::read(pki_dir.join("intermediate.crt"))?,
        &std::fs::read(pki_dir.join("intermediate.key"))?,
        Some(&std::fs::read(pki_dir.join("root.crt"))?),
        time::OffsetDateTime::now_utc(),
    )?;
    sign_server(&ca)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    relay_issuer::install_crypto_provider();
    let n = Narrator {
        started: Instant::now(),
    };
    let dir = workdir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs"))?;
    let kubeconfig = dir.join("kubeconfig");

    // 1. The cluster: the sandbox API server and cert-manager (simulator).
    let sandbox = Sandbox::start_with(SandboxOptions {
        kubeconfig_out: Some(kubeconfig.clone()),
        namespaces: vec![NAMESPACE.to_string()],
        ..SandboxOptions::default()
    })
    .await?;
    for crd in relay_issuer::api::crds().into_values() {
        sandbox.create_crd(serde_json::to_value(&crd)?)?;
    }
    let _simulator = Simulator::start(&sandbox, SimulatorOptions::fast())?;
    let client = sandbox.client()?;
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?,
        )
        .await;
    n.say(format!(
        "sandbox API server at {} with the cert-manager simulator; kubeconfig: {}",
        sandbox.url(),
        kubeconfig.display()
    ));

    // 2. The relay CA.
    let pki_dir = dir.join("pki");
    let status = Command::new(binary("relay-issuer"))
        .args(["ca", "create", "--out"])
        .arg(&pki_dir)
        .args([
            "--namespace",
            NAMESPACE,
            "--server-name",
            "localhost",
            "--server-name",
            "127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err("relay-issuer ca create failed".into());
    }
    for entry in std::fs::read_dir(&pki_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            kubectl_cmd(&kubeconfig, &["apply", "-f", &path.to_string_lossy()], None)?;
        }
    }
    kubectl_cmd(&kubeconfig, &["apply", "-f", "-"], Some(&json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "relay-identity-token-secret", "namespace": NAMESPACE},
        "stringData": {"token": "demo-bootstrap-token"}}).to_string()))?;
    n.say("relay-issuer ca create: root, intermediate (relay-tls-signing-secret), relay-root-tls-secret, relay-server-tls-secret applied");

    // 3. The charts.
    let issuer = render_chart("relay-issuer", NAMESPACE, &[])?;
    let duration = pki::parse_duration(&args.duration)?;
    let agent_chart = render_chart(
        "relay-agent",
        NAMESPACE,
        &[
            ("cluster", CLUSTER.to_string()),
            ("certificate.create", "true".into()),
            (
                "certificate.duration",
                relay_issuer::pki::format_duration(duration),
            ),
            ("certificate.issuer.create", "false".into()),
            (
                "glooAgent.relay.clientTlsSecretRotationGracePeriodRatio",
                args.ratio.to_string(),
            ),
            (
                "glooAgent.relay.serverAddress",
                "https://relay-server.gloo-mesh:9900".into(),
            ),
        ],
    )?;
    let mut skipped = apply_rendered(&kubeconfig, &issuer)?;
    skipped.extend(apply_rendered(&kubeconfig, &agent_chart)?);
    skipped.sort();
    skipped.dedup();
    kubectl_cmd(&kubeconfig, &["apply", "-f", "-"], Some(&json!({
        "apiVersion": "relaytls.dev/v1alpha1", "kind": "RelayCluster", "metadata": {"name": CLUSTER, "namespace": NAMESPACE},
        "spec": {"description": "the demo agent"}}).to_string()))?;
    kubectl_cmd(&kubeconfig, &["apply", "-f", "-"], Some(&json!({
        "apiVersion": "relaytls.dev/v1alpha1", "kind": "RelayIssuer", "metadata": {"name": "relay", "namespace": NAMESPACE},
        "spec": {}}).to_string()))?;
    n.say(format!(
        "charts rendered and created (RBAC, CRDs, Certificate for {CLUSTER}); RelayCluster {CLUSTER} and RelayIssuer relay created{}",
        if skipped.is_empty() { String::new() } else { format!("; not served by the sandbox (no kubelet here; RBAC objects are stored, not enforced): {} — the Deployments' binaries run below as local processes with their rendered arguments", skipped.join(", ")) }
    ));

    // 4. The processes, with the rendered arguments.
    let logs = dir.join("logs");
    let (controller_admin, relay_port, server_admin, agent_admin) =
        (free_port(), free_port(), free_port(), free_port());
    let mut controller = start_from_chart(
        "relay-issuer-controller",
        "relay-issuer",
        &issuer,
        "relay-issuer-controller",
        &[
            ("--admin-address", format!("127.0.0.1:{controller_admin}")),
            ("--leader-elect", "false".into()),
        ],
        &kubeconfig,
        &logs,
    )?;
    let mut server = start_from_chart(
        "relay-issuer-server",
        "relay-issuer",
        &issuer,
        "relay-issuer-server",
        &[
            ("--admin-address", format!("127.0.0.1:{server_admin}")),
            ("--listen", format!("127.0.0.1:{relay_port}")),
        ],
        &kubeconfig,
        &logs,
    )?;
    controller
        .wait_ready(controller_admin, Duration::from_secs(60))
        .await?;
    server
        .wait_ready(server_admin, Duration::from_secs(60))
        .await?;
    n.say(format!(
        "relay-issuer controller ready; relay server listening on 127.0.0.1:{relay_port} (TLS 1.3)"
    ));
    let mut agent = start_from_chart(
        "relay-agent",
        "relay-agent",
        &agent_chart,
        "relay-agent",
        &[
            ("--admin-address", format!("127.0.0.1:{agent_admin}")),
            ("--relay-address", format!("https://127.0.0.1:{relay_port}")),
            ("--server-name", "localhost".into()),
            ("--heartbeat-interval", "1s".into()),
        ],
        &kubeconfig,
        &logs,
    )?;

    // 5. Narrate.
    let requests = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        NAMESPACE,
        &cert_manager_sim::resource("CertificateRequest", "certificaterequests"),
    );
    let clusters: Api<RelayCluster> = Api::namespaced(client.clone(), NAMESPACE);
    let mut told_requests = BTreeMap::new();
    let mut serials: Vec<String> = Vec::new();
    let mut swaps_seen = 0.0;
    let mut reloaded: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut agent_ready = false;
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "the demo did not finish in time; logs in {}",
                logs.display()
            )
            .into());
        }
        for request in requests.list(&ListParams::default()).await?.items {
            let name = request.metadata.name.clone().unwrap_or_default();
            let ready = relay_sandbox::harness::ready_condition(&request);
            let reason = ready
                .as_ref()
                .and_then(|c| c["reason"].as_str())
                .unwrap_or("")
                .to_string();
            if !reason.is_empty() && told_requests.get(&name) != Some(&reason) {
                let message = ready
                    .as_ref()
                    .and_then(|c| c["message"].as_str())
                    .unwrap_or("");
                n.say(format!("CertificateRequest {name}: {reason} — {message}"));
                told_requests.insert(name, reason);
            }
        }
        if !agent_ready && http_get(agent_admin, "/ready").is_some_and(|(code, _)| code == 200) {
            agent_ready = true;
            n.say("relay-agent ready: connected with a valid certificate");
        }
        if let Some(status) = clusters.get(CLUSTER).await.ok().and_then(|c| c.status)
            && status.connected
            && let Some(serial) = status.certificate_serial
            && serials.last() != Some(&serial)
        {
            let expires = status
                .certificate_not_after
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            if serials.is_empty() {
                n.say(format!(
                    "agent connected over mTLS: serial {serial}, expires {expires}"
                ));
            } else {
                n.say(format!("renewed by cert-manager at the grace ratio {}: the agent swapped and reconnected with serial {serial} (expires {expires})", args.ratio));
            }
            serials.push(serial);
        }
        let swaps = metric_value(
            &http_get(agent_admin, "/metrics")
                .map(|r| r.1)
                .unwrap_or_default(),
            "relay_agent_certificate_swaps_total",
        );
        if swaps > swaps_seen {
            swaps_seen = swaps;
        }
        if serials.len() > args.renewals && reloaded.is_none() {
            let pem = new_server_certificate(&pki_dir)?;
            let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
            let mut secret = secrets.get("relay-server-tls-secret").await?;
            let data = secret.data.get_or_insert_default();
            data.insert(
                "tls.crt".into(),
                k8s_openapi::ByteString(pem.chain.clone().into_bytes()),
            );
            data.insert(
                "tls.key".into(),
                k8s_openapi::ByteString(pem.key.clone().into_bytes()),
            );
            secrets
                .replace("relay-server-tls-secret", &PostParams::default(), &secret)
                .await?;
            let root = std::fs::read_to_string(pki_dir.join("root.crt"))?;
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], relay_port));
            let want = pem.serial();
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until
                && presented_serial(address, client_config(&root, None)?)
                    .await
                    .ok()
                    .as_deref()
                    != Some(want.as_str())
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let connected = clusters
                .get(CLUSTER)
                .await
                .ok()
                .and_then(|c| c.status)
                .is_some_and(|s| s.connected);
            n.say(format!("relay-server-tls-secret replaced: new handshakes get serial {want}; the agent's stream stays open (connected: {connected})"));
            reloaded = Some(want);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 6. What a person would look at.
    let latest = requests
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .max_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .and_then(|r| r.metadata.name)
        .ok_or("no CertificateRequest")?;
    println!("\n$ kubectl describe certificaterequest {latest} -n {NAMESPACE}");
    println!(
        "{}",
        kubectl_cmd(
            &kubeconfig,
            &["describe", "certificaterequest", &latest, "-n", NAMESPACE],
            None
        )?
    );
    println!("$ kubectl get relayclusters -n {NAMESPACE}");
    println!(
        "{}",
        kubectl_cmd(
            &kubeconfig,
            &["get", "relayclusters", "-n", NAMESPACE],
            None
        )?
    );
    // 7. The same identity through the Kubernetes CSR API: a person with kubectl, no
    // cert-manager.
    let csr_issued = kubernetes_csr(&kubeconfig, &client, &n).await?;

    let agent_metrics = http_get(agent_admin, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    let server_metrics = http_get(server_admin, "/metrics")
        .map(|r| r.1)
        .unwrap_or_default();
    println!("summary");
    println!(
        "  {:<44} {}",
        "certificates issued (CertificateRequests)",
        told_requests.values().filter(|r| *r == "Issued").count()
    );
    println!(
        "  {:<44} {}",
        "agent serials seen by the server",
        serials.len()
    );
    println!(
        "  {:<44} {}",
        "agent swaps",
        metric_value(&agent_metrics, "relay_agent_certificate_swaps_total")
    );
    println!(
        "  {:<44} {}",
        "heartbeats acknowledged",
        metric_value(&agent_metrics, "relay_agent_heartbeats_total")
    );
    println!(
        "  {:<44} {}",
        "failed RPCs",
        metric_value(&agent_metrics, "relay_agent_rpc_failures_total")
    );
    println!(
        "  {:<44} {}",
        "server certificate reloads",
        metric_value(
            &server_metrics,
            "relay_server_secret_reloads_total{secret=\"server_tls\",reason=\"\"}"
        )
    );
    println!(
        "  {:<44} {}",
        "new server certificate serial",
        reloaded.unwrap_or_default()
    );
    println!(
        "  {:<44} {}",
        "certificate through the CSR API (serial)", csr_issued
    );
    println!(
        "  {:<44} {:.1}s",
        "elapsed",
        n.started.elapsed().as_secs_f64()
    );
    println!(
        "  logs: {}   kubeconfig: {}",
        logs.display(),
        kubeconfig.display()
    );

    if args.keep {
        println!(
            "\nKEEP=1: still running. Try: KUBECONFIG={} kubectl get relayclusters,certificaterequests -n {NAMESPACE}  (Ctrl-C to stop)",
            kubeconfig.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = agent.terminate(Duration::from_secs(10)).await;
    let _ = server.terminate(Duration::from_secs(10)).await;
    let _ = controller.terminate(Duration::from_secs(10)).await;
    Ok(())
}
