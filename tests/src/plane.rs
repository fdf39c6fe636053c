//! The control plane (or cluster) a real-stack suite runs on, and this workspace's binaries run
//! on it as the pods of the Deployments `helm install` created: `make cluster`'s plane
//! (`scripts/control-plane.sh`) or any cluster that runs cert-manager (`RELAY_E2E_KUBECONFIG`).
//!
//! Used by `tests/real_e2e.rs` (`make e2e`) and `examples/bench_real.rs` (`make bench-real`).
//! Each process gets a kubeconfig with a token of its Deployment's own ServiceAccount, so the
//! API server's RBAC decides what it may do. The scenarios and measurements live with their
//! callers; reads and waits on relay objects in [`crate::e2e`].

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::charts::{self, container_command, run_helm};
use crate::e2e::RelayClusters;
use crate::processes::{Process, binary};
use crate::relay::RELAY_NAMESPACE;
use kube_sandbox::kubectl::kubectl_run;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A binary of this workspace and the chart's Deployment it stands in for.
pub type Workload = (&'static str, &'static str);
pub const CONTROLLER: Workload = ("relay-issuer", "relay-issuer-controller");
pub const SERVER: Workload = ("relay-issuer", "relay-issuer-server");
pub const AGENT: Workload = ("relay-agent", "relay-agent");

/// The control plane (or cluster) under test: an admin kubeconfig and how to get one per
/// ServiceAccount.
pub struct Plane {
    /// Its admin kubeconfig.
    pub admin: PathBuf,
    /// A client with the admin kubeconfig.
    pub client: kube::Client,
    /// `Some(state dir)` for `make cluster`'s plane (kubeconfig-for, audit log).
    pub local: Option<PathBuf>,
    /// Where logs, kubeconfigs and kubectl's cache go (`target/<work>`).
    pub work: PathBuf,
}

impl Plane {
    /// The relay server's RelayClusters.
    pub fn clusters(&self) -> RelayClusters {
        RelayClusters::new(&self.client, RELAY_NAMESPACE)
    }

    /// The plane `RELAY_E2E_KUBECONFIG` names, else `make cluster`'s (started or reused through
    /// `scripts/control-plane.sh up`, state in `RELAY_TLS_CONTROL_PLANE_DIR` or
    /// `target/control-plane`); work files in `target/<work>`, emptied first.
    pub async fn start(work: &str) -> Result<Self, BoxError> {
        let root = charts::repo_root();
        let work = root.join("target").join(work);
        let _ = std::fs::remove_dir_all(&work);
        match std::env::var("RELAY_E2E_KUBECONFIG") {
            Ok(path) => Self::with(PathBuf::from(path), None, work).await,
            Err(_) => {
                let state = std::env::var("RELAY_TLS_CONTROL_PLANE_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| root.join("target/control-plane"));
                Self::local(state, work).await
            }
        }
    }

    /// `scripts/control-plane.sh up` with its state in `state` (a second plane runs beside
    /// the first with another state directory).
    pub async fn local(state: PathBuf, work: PathBuf) -> Result<Self, BoxError> {
        let out = Command::new(charts::repo_root().join("scripts/control-plane.sh"))
            .arg("up")
            .env("RELAY_TLS_CONTROL_PLANE_DIR", &state)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "scripts/control-plane.sh up failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let admin = PathBuf::from(String::from_utf8(out.stdout)?.trim());
        Self::with(admin, Some(state), work).await
    }

    pub async fn with(
        admin: PathBuf,
        local: Option<PathBuf>,
        work: PathBuf,
    ) -> Result<Self, BoxError> {
        std::fs::create_dir_all(work.join("kube-cache"))?;
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&admin)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        Ok(Self {
            admin,
            client,
            local,
            work,
        })
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, BoxError> {
        Ok(kubectl_run(
            &self.admin,
            &self.work.join("kube-cache"),
            args,
            stdin,
        )?)
    }

    pub fn helm(&self, args: &[&str]) -> Result<String, BoxError> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.push("--kubeconfig".into());
        all.push(self.admin.display().to_string());
        Ok(run_helm(&all)?)
    }

    /// A kubeconfig that authenticates as ServiceAccount `namespace/account`.
    pub fn kubeconfig_for(&self, namespace: &str, account: &str) -> Result<PathBuf, BoxError> {
        if let Some(state) = &self.local {
            let out = Command::new(charts::repo_root().join("scripts/control-plane.sh"))
                .args(["kubeconfig-for", namespace, account])
                .env("RELAY_TLS_CONTROL_PLANE_DIR", state)
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "kubeconfig-for {namespace} {account}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            return Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()));
        }
        // Another cluster: a TokenRequest token and the admin kubeconfig's cluster entry.
        let token = self.kubectl(
            &[
                "create",
                "token",
                "-n",
                namespace,
                account,
                "--duration",
                "2h",
            ],
            None,
        )?;
        let view: Value = serde_json::from_str(&self.kubectl(
            &[
                "config",
                "view",
                "--raw",
                "--minify",
                "--flatten",
                "-o",
                "json",
            ],
            None,
        )?)?;
        let cluster = view["clusters"][0]["cluster"].clone();
        let user = format!("system:serviceaccount:{namespace}:{account}");
        let config = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token.trim()}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
            "current-context": "e2e",
        });
        let path = self.work.join(format!("{namespace}.{account}.kubeconfig"));
        std::fs::write(&path, config.to_string())?;
        Ok(path)
    }

    /// Starts the first container of Deployment `namespace/deployment` as a process: its args
    /// (with `overrides`, and its admin server on port `admin`) and env, `KUBECONFIG` of the
    /// Deployment's ServiceAccount.
    pub fn run_deployment(
        &self,
        (binary_name, deployment): Workload,
        namespace: &str,
        admin: u16,
        overrides: &[(&str, String)],
        log_name: &str,
    ) -> Result<Process, BoxError> {
        let mut overrides = overrides.to_vec();
        overrides.push(("--admin-address", format!("127.0.0.1:{admin}")));
        let object: Value = serde_json::from_str(&self.kubectl(
            &[
                "get",
                "deployment",
                "-n",
                namespace,
                deployment,
                "-o",
                "json",
            ],
            None,
        )?)?;
        let account = object
            .pointer("/spec/template/spec/serviceAccountName")
            .and_then(Value::as_str)
            .ok_or(format!("Deployment {deployment} names no ServiceAccount"))?
            .to_string();
        let (args, env) = container_command(std::slice::from_ref(&object), deployment)?;
        // `make e2e` builds the binaries first and names their folder: a cargo build from inside
        // this test process would see another environment and rebuild them every run.
        let program = match std::env::var("RELAY_E2E_BINARIES") {
            Ok(dir) => PathBuf::from(dir).join(binary_name),
            Err(_) => binary(binary_name),
        };
        let mut command = Command::new(program);
        command
            .args(charts::with_overrides(args, &overrides))
            .envs(charts::resolve_env(
                &env,
                namespace,
                &format!("{log_name}-0"),
            ))
            .env("KUBECONFIG", self.kubeconfig_for(namespace, &account)?);
        Ok(Process::spawn(log_name, command, &self.work)?)
    }

    /// [`Plane::run_deployment`], then waits until `/ready` answers 200 on port `admin`.
    pub async fn start_ready(
        &self,
        workload: Workload,
        namespace: &str,
        admin: u16,
        overrides: &[(&str, String)],
        log_name: &str,
        within: Duration,
    ) -> Result<Process, BoxError> {
        let mut process = self.run_deployment(workload, namespace, admin, overrides, log_name)?;
        process.wait_ready(admin, within).await?;
        Ok(process)
    }

    /// `helm upgrade --install RELEASE CHART --namespace NAMESPACE`, each of `sets` a `--set`.
    pub fn helm_install(
        &self,
        release: &str,
        chart: &str,
        namespace: &str,
        sets: &[impl AsRef<str>],
    ) -> Result<String, BoxError> {
        let mut args = vec![
            "upgrade",
            "--install",
            release,
            chart,
            "--namespace",
            namespace,
        ];
        for set in sets {
            args.extend(["--set", set.as_ref()]);
        }
        self.helm(&args)
    }

    /// The agent chart from folder `chart` into `namespace` for RelayCluster `cluster`, pointed
    /// at the relay server (`relay_address`, a `--set`), with the further `--set` values `sets`.
    pub fn install_agent(
        &self,
        chart: &str,
        namespace: &str,
        cluster: &str,
        relay_address: &str,
        sets: &[&str],
    ) -> Result<String, BoxError> {
        let mut all = vec![
            format!("cluster={cluster}"),
            relay_address.to_string(),
            "glooAgent.relay.serverName=localhost".to_string(),
        ];
        all.extend(sets.iter().map(|s| s.to_string()));
        self.helm_install("relay-agent", chart, namespace, &all)
    }

    /// Creates namespace `name` unless it exists.
    pub fn namespace(&self, name: &str) -> Result<(), BoxError> {
        let manifest = self.kubectl(
            &[
                "create",
                "namespace",
                name,
                "--dry-run=client",
                "-o",
                "yaml",
            ],
            None,
        )?;
        self.kubectl(&["apply", "-f", "-"], Some(&manifest))?;
        Ok(())
    }

    /// `kubectl describe certificaterequest` until its output contains every one of `words`.
    pub async fn describe_until(
        &self,
        namespace: &str,
        name: &str,
        words: &[&str],
    ) -> Result<String, BoxError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.kubectl(
                &["describe", "certificaterequest", "-n", namespace, name],
                None,
            )?;
            // Columns are padded to their widest entry: compare with whitespace runs collapsed.
            let flat = collapse(&text);
            if words.iter().all(|w| flat.contains(&collapse(w))) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                return Err(
                    format!("describe {namespace}/{name} never showed {words:?}:\n{text}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `text` with every run of whitespace made one space.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Plane {
    /// The PID of the plane's process `name` (`etcd`, `kube-apiserver`, `cert-manager-controller`,
    /// ...), from `scripts/control-plane.sh`'s PID files; `None` on another cluster.
    pub fn process_pid(&self, name: &str) -> Option<u32> {
        let text = std::fs::read_to_string(
            self.local
                .as_ref()?
                .join("pids")
                .join(format!("{name}.pid")),
        )
        .ok()?;
        text.split_whitespace().next()?.parse().ok()
    }
}
