//! The container images `make images` builds, run as the charts run them
//! (`relay_sandbox::images`: the image each rendered Deployment names, its args and env, user
//! 65532, a read-only root filesystem, every capability dropped):
//! - the images are what the charts name, minimal (only the binary, the shared libraries its
//!   ELF header asks for, the CA bundle, passwd/group), labelled, and the agent's ≤ 12 MB;
//! - a bad flag makes either image exit non-zero with the message;
//! - against the sandbox and the cert-manager simulator: the controller from the issuer image
//!   serves `/ready` and signs the agent's CertificateRequests, the relay server from the same
//!   image serves the agent, and the agent from its image connects, swaps renewed certificates
//!   with no failed RPC, reconnects to a restarted server and stops cleanly on SIGTERM — what
//!   `lifecycle_e2e` checks of the processes.
//!
//! `make test-images` builds the images and runs these with `RELAY_TLS_IMAGES=1`; then a missing
//! podman or image fails. Under a plain `cargo test` they say so and pass.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cert_manager_sim::{Simulator, SimulatorOptions};
use kube::Api;
use kube::api::DynamicObject;
use relay_sandbox::charts::{Rendered, render_chart};
use relay_sandbox::e2e::{RelayClusters, metrics, wait_metric_grows};
use relay_sandbox::harness;
use relay_sandbox::images::{
    Container, image_present, inspect, podman_output, podman_present, readable_kubeconfig,
};
use relay_sandbox::processes::free_port;
use relay_sandbox::relay::{
    RELAY_NAMESPACE, RelayPki, install_managed_agent, install_relay, metric_value,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The uncompressed size the agent's image must stay within (issue 17).
const AGENT_IMAGE_MAX_BYTES: u64 = 12_000_000;

const AGENT_NS: &str = "team-a";

fn enabled(test: &str) -> bool {
    if std::env::var_os("RELAY_TLS_IMAGES").is_none() {
        eprintln!("{test}: not run here: `make test-images` builds the images and runs it");
        return false;
    }
    assert!(
        podman_present(),
        "podman is not installed: run scripts/tools.sh (Debian's podman and runc)"
    );
    true
}

/// The issuer chart and the agent chart (for `cluster`, relay server at `relay_port`).
fn charts(cluster: &str, relay_port: u16) -> Result<(Rendered, Rendered), BoxError> {
    let issuer = render_chart("relay-issuer", RELAY_NAMESPACE, &[])?;
    let agent = render_chart(
        "relay-agent",
        AGENT_NS,
        &[
            ("cluster", cluster.to_string()),
            (
                "glooAgent.relay.serverAddress",
                format!("127.0.0.1:{relay_port}"),
            ),
            ("glooAgent.relay.serverName", "localhost".into()),
        ],
    )?;
    Ok((issuer, agent))
}

/// The image the chart's Deployment names, checked to be in podman's storage.
fn chart_image(rendered: &Rendered, deployment: &str) -> Result<String, BoxError> {
    let image = rendered.image(deployment)?;
    assert!(
        image_present(&image),
        "{deployment} runs {image}, which podman does not have: run make images"
    );
    Ok(image)
}

/// Exports `image`'s filesystem (a container created, never started) into `dir`.
fn export(image: &str, dir: &Path) -> Result<(), BoxError> {
    let created = podman_output(&["create", image])?;
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let tar = dir.join("fs.tar");
    let exported = podman_output(&["export", "-o", &tar.to_string_lossy(), &id]);
    let _ = podman_output(&["rm", "-f", &id]);
    assert!(exported?.status.success());
    let root = dir.join("root");
    std::fs::create_dir_all(&root)?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&root)
        .status()?;
    assert!(untar.success());
    Ok(())
}

/// Every path under `root` (files, links and directories), relative.
fn walk(root: &Path) -> Result<BTreeSet<String>, BoxError> {
    let mut paths = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                pending.push(path);
                paths.insert(format!("{relative}/"));
            } else {
                paths.insert(relative);
            }
        }
    }
    Ok(paths)
}

/// The ELF interpreter and NEEDED libraries of `binary`, as readelf (binutils) reports them.
fn elf_dependencies(binary: &Path) -> Result<(String, BTreeSet<String>), BoxError> {
    let output = Command::new("readelf").arg("-ld").arg(binary).output()?;
    assert!(output.status.success(), "readelf: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let interpreter = text
        .lines()
        .find_map(|l| l.split("Requesting program interpreter: ").nth(1))
        .map(|rest| rest.trim_end_matches(']').to_string())
        .ok_or("no program interpreter")?;
    let needed = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1))
        .map(|rest| rest.trim_end_matches(']').to_string())
        .collect();
    Ok((interpreter, needed))
}

#[test]
fn images_are_what_the_charts_name_minimal_and_labelled() -> TestResult {
    if !enabled("images_are_what_the_charts_name_minimal_and_labelled") {
        return Ok(());
    }
    let version = env!("CARGO_PKG_VERSION");
    let head = Command::new("git").args(["rev-parse", "HEAD"]).output()?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let (issuer, agent) = charts("cluster-a", 9900)?;
    for (rendered, deployment, binary) in [
        (&issuer, "relay-issuer-controller", "relay-issuer"),
        (&issuer, "relay-issuer-server", "relay-issuer"),
        (&agent, "relay-agent", "relay-agent"),
    ] {
        let image = chart_image(rendered, deployment)?;
        assert_eq!(image, format!("ghcr.io/relay-tls/{binary}:{version}"));
        let meta = inspect(&image)?;
        assert_eq!(meta["Config"]["User"], "65532:65532", "{image}");
        assert_eq!(
            meta["Config"]["Entrypoint"],
            serde_json::json!([format!("/usr/local/bin/{binary}")])
        );
        let labels = &meta["Config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.version"], version);
        assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
        assert!(
            labels["org.opencontainers.image.source"]
                .as_str()
                .is_some_and(|s| s.starts_with("https://")),
            "{labels}"
        );
        let revision = labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default();
        assert!(
            revision.trim_end_matches("-dirty") == head,
            "{image}: revision {revision:?}, HEAD is {head}"
        );
        let size = meta["Size"].as_u64().ok_or("no Size")?;
        eprintln!("{image}: {size} bytes uncompressed");
        if binary == "relay-agent" {
            assert!(
                size <= AGENT_IMAGE_MAX_BYTES,
                "{image} is {size} bytes, over {AGENT_IMAGE_MAX_BYTES}"
            );
        }

        // Its files: the binary, what its ELF header asks the loader for, the CA bundle,
        // passwd/group, an empty /tmp; no shell, no package manager.
        let dir = tempfile::tempdir()?;
        export(&image, dir.path())?;
        let root = dir.path().join("root");
        let binary_path = root.join(format!("usr/local/bin/{binary}"));
        let (interpreter, needed) = elf_dependencies(&binary_path)?;
        let mut expected: BTreeSet<String> = [
            format!("usr/local/bin/{binary}"),
            "etc/passwd".into(),
            "etc/group".into(),
            "etc/ssl/certs/ca-certificates.crt".into(),
            interpreter.trim_start_matches('/').to_string(),
        ]
        .into();
        let files: BTreeSet<String> = walk(&root)?
            .into_iter()
            .filter(|p| !p.ends_with('/'))
            .collect();
        let mut libraries = BTreeSet::new();
        for path in &files {
            let file = path.rsplit('/').next().unwrap_or_default().to_string();
            if path.starts_with("lib") && (needed.contains(&file) || interpreter.ends_with(&file)) {
                libraries.insert(file);
                expected.insert(path.clone());
            }
        }
        assert_eq!(
            files, expected,
            "{image}: only the binary and what it needs"
        );
        for library in &needed {
            assert!(
                libraries.contains(library),
                "{image} lacks {library}, which {binary} links"
            );
        }
        for absent in ["bin/sh", "usr/bin/apt", "usr/bin/dpkg", "bin/busybox"] {
            assert!(!root.join(absent).exists(), "{image} has {absent}");
        }
        let passwd = std::fs::read_to_string(root.join("etc/passwd"))?;
        assert!(
            passwd
                .lines()
                .any(|l| l.starts_with("nonroot:x:65532:65532:")),
            "{passwd}"
        );
        let group = std::fs::read_to_string(root.join("etc/group"))?;
        assert!(group.lines().any(|l| l == "nonroot:x:65532:"), "{group}");
        // The binary runs with what the image has (the loader finds every library).
        let version_run = podman_output(&["run", "--rm", &image, "--version"])?;
        assert!(
            version_run.status.success()
                && String::from_utf8_lossy(&version_run.stdout).contains(version),
            "{image} --version: {version_run:?}"
        );
    }
    Ok(())
}

#[test]
fn a_bad_flag_exits_non_zero_with_the_message() -> TestResult {
    if !enabled("a_bad_flag_exits_non_zero_with_the_message") {
        return Ok(());
    }
    let (issuer, agent) = charts("cluster-a", 9900)?;
    for (image, args) in [
        (
            chart_image(&issuer, "relay-issuer-server")?,
            &["server", "--no-such-flag"][..],
        ),
        (chart_image(&agent, "relay-agent")?, &["--no-such-flag"][..]),
    ] {
        let mut command = vec!["run", "--rm", "--read-only", "--cap-drop=ALL", &image];
        command.extend_from_slice(args);
        let output = podman_output(&command)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{image}: {output:?}");
        assert!(
            stderr.contains("unexpected argument '--no-such-flag'"),
            "{image}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_images_run_as_the_charts_say_and_the_agent_connects_swaps_and_reconnects() -> TestResult
{
    if !enabled("the_images_run_as_the_charts_say_and_the_agent_connects_swaps_and_reconnects") {
        return Ok(());
    }
    relay_issuer::install_crypto_provider();
    let logs = tempfile::tempdir()?;
    let sandbox = harness::sandbox().await?;
    let client = sandbox.client()?;
    let kubeconfig = readable_kubeconfig(sandbox.kubeconfig(), logs.path())?;
    let _simulator = Simulator::start(
        &sandbox,
        SimulatorOptions {
            interval: Duration::from_millis(50),
            ..SimulatorOptions::fast()
        },
    )?;
    let pki = RelayPki::new()?;
    install_relay(&client, &pki, &["cluster-a"], &[AGENT_NS]).await?;
    // Certificates of 6 s, renewed half-way: the agent swaps every 3 s.
    let duration = time::Duration::seconds(6);
    let renew_before = relay_issuer::pki::renewal::renew_before_for_ratio(duration, 0.5)?;
    install_managed_agent(
        &client,
        &pki,
        AGENT_NS,
        "cluster-a",
        &relay_issuer::pki::format_duration(duration),
        &relay_issuer::pki::format_duration(renew_before),
    )
    .await?;

    let relay_port = free_port();
    let (issuer, agent_chart) = charts("cluster-a", relay_port)?;

    // The controller from the issuer image: ready, and it signs the agent's first request.
    let controller_admin = free_port();
    let mut controller = issuer.start_container(
        "relay-issuer-controller",
        &[
            ("--admin-address", format!("127.0.0.1:{controller_admin}")),
            ("--leader-elect", "false".into()),
        ],
        "relay-issuer-controller-0",
        &kubeconfig,
        logs.path(),
    )?;
    controller
        .process
        .wait_ready(controller_admin, Duration::from_secs(60))
        .await?;
    let requests = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        AGENT_NS,
        &cert_manager_sim::resource("CertificateRequest", "certificaterequests"),
    );
    let signed = wait_signed_request(&requests, Duration::from_secs(30))
        .await
        .map_err(|e| format!("{e}\ncontroller:\n{}", controller.process.log()))?;
    eprintln!("the controller in its image signed CertificateRequest {signed}");

    // The relay server from the same image, then the agent from its own.
    let server_admin = free_port();
    let mut server =
        start_server(&issuer, relay_port, server_admin, &kubeconfig, logs.path()).await?;
    let agent_admin = free_port();
    let mut agent = agent_chart.start_container(
        "relay-agent",
        &[
            ("--heartbeat-interval", "200ms".into()),
            ("--reconnect-backoff", "100ms".into()),
            ("--reconnect-backoff-max", "1s".into()),
            ("--resync-interval", "30s".into()),
            ("--admin-address", format!("127.0.0.1:{agent_admin}")),
        ],
        "cluster-a-agent",
        &kubeconfig,
        logs.path(),
    )?;
    agent
        .process
        .wait_ready(agent_admin, Duration::from_secs(60))
        .await?;
    // The container runs as the chart's securityContext says.
    let running = agent.inspect()?;
    assert_eq!(running["Config"]["User"], "65532:65532", "{running}");
    assert_eq!(running["HostConfig"]["ReadonlyRootfs"], true, "{running}");
    assert!(
        running["EffectiveCaps"]
            .as_array()
            .is_none_or(|caps| caps.is_empty()),
        "every capability dropped: {}",
        running["EffectiveCaps"]
    );
    assert!(
        running["HostConfig"]["SecurityOpt"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o == "no-new-privileges"),
        "{}",
        running["HostConfig"]["SecurityOpt"]
    );
    let clusters = RelayClusters::new(&client, RELAY_NAMESPACE);
    let first = clusters
        .wait("cluster-a", Duration::from_secs(20), |s| s.connected)
        .await?;

    // Renewals by cert-manager, each swapped by the agent in its container.
    let serials = clusters
        .wait_renewals(
            "cluster-a",
            first.certificate_serial.unwrap_or_default(),
            3,
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| format!("{e}\nagent:\n{}", agent.process.log()))?;
    let text = metrics(agent_admin);
    assert!(
        metric_value(&text, "relay_agent_certificate_swaps_total") >= 3.0,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "relay_agent_rpc_failures_total"),
        0.0,
        "no failed RPC across the swaps:\n{text}\n{}",
        agent.process.log()
    );
    eprintln!(
        "the agent in its image swapped {} certificates",
        serials.len() - 1
    );

    // The relay server restarts (a new container on the same port): the agent reconnects.
    let reconnects = metric_value(&text, "relay_agent_reconnects_total");
    assert_eq!(server.terminate(Duration::from_secs(10)).await?, Some(0));
    let mut server =
        start_server(&issuer, relay_port, server_admin, &kubeconfig, logs.path()).await?;
    wait_metric_grows(
        agent_admin,
        "relay_agent_reconnects_total",
        reconnects,
        Duration::from_secs(20),
    )
    .await
    .map_err(|e| format!("{e}\nagent:\n{}", agent.process.log()))?;
    let restarted = clusters
        .wait("cluster-a", Duration::from_secs(20), |s| s.connected)
        .await?;
    assert!(restarted.connected);
    agent
        .process
        .wait_ready(agent_admin, Duration::from_secs(20))
        .await?;

    // SIGTERM, as a Pod's deletion sends it: each exits 0.
    assert_eq!(agent.terminate(Duration::from_secs(10)).await?, Some(0));
    assert_eq!(server.terminate(Duration::from_secs(10)).await?, Some(0));
    assert_eq!(
        controller.terminate(Duration::from_secs(10)).await?,
        Some(0)
    );
    Ok(())
}

/// The relay server from the issuer image, listening on `relay_port`, once ready.
async fn start_server(
    issuer: &Rendered,
    relay_port: u16,
    admin: u16,
    kubeconfig: &Path,
    logs: &Path,
) -> Result<Container, BoxError> {
    let mut server = issuer.start_container(
        "relay-issuer-server",
        &[
            ("--listen", format!("127.0.0.1:{relay_port}")),
            ("--admin-address", format!("127.0.0.1:{admin}")),
            ("--heartbeat-interval", "1s".into()),
        ],
        "relay-issuer-server-0",
        kubeconfig,
        logs,
    )?;
    server
        .process
        .wait_ready(admin, Duration::from_secs(60))
        .await?;
    Ok(server)
}

/// Waits (on a watch) for a CertificateRequest whose Ready condition is True with a
/// certificate; its name.
async fn wait_signed_request(
    requests: &Api<DynamicObject>,
    within: Duration,
) -> Result<String, BoxError> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let signed = |request: &DynamicObject| {
        let ready = request.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready
            && request.data["status"]["certificate"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
    };
    let mut events = std::pin::pin!(
        watcher(requests.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects()
    );
    let found = tokio::time::timeout(within, async {
        while let Some(request) = events.next().await {
            if let Ok(request) = request
                && signed(&request)
            {
                return request.metadata.name;
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(name)) => Ok(name),
        _ => Err(format!("no CertificateRequest was signed within {within:?}").into()),
    }
}
