//! The target of the fidelity suites: the sandbox, or a real kube-apiserver, chosen by one
//! switch, so the same tests judge both (`make fidelity-real`; README, "The sandbox").
//!
//! `RELAY_FIDELITY_TARGET=real` (with `KUBECONFIG` naming an admin kubeconfig of the real
//! cluster, as `scripts/control-plane.sh env` prints) makes [`Target::start`] connect to that
//! cluster and give each test a fresh namespace (the kubeconfig's and the client's default), so
//! tests neither collide nor depend on what an earlier test left. Anything else (or unset) starts
//! a [`Sandbox`] whose test namespace is `default`, as before. Tests that need an instrument only
//! the sandbox has (fault injection, forced compaction, the request log) ask
//! [`Target::sandbox_only`], which on the real target prints why the test did not run there.
//! What does not live here: the sandbox itself (`sandbox.rs`), and starting or stopping the real
//! control plane (`scripts/control-plane.sh`).

use crate::{Error, Sandbox};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that chooses the target; `real` selects the cluster of `KUBECONFIG`.
pub const TARGET_ENV: &str = "RELAY_FIDELITY_TARGET";

/// Whether the suites run against a real kube-apiserver in this process.
pub fn is_real() -> bool {
    std::env::var(TARGET_ENV).is_ok_and(|v| v == "real")
}

/// What a fidelity test talks to: a client, a kubeconfig (for kubectl) and the namespace to
/// work in; the sandbox too when the target is the sandbox.
pub struct Target {
    sandbox: Option<Sandbox>,
    client: kube::Client,
    kubeconfig: PathBuf,
    namespace: String,
    suffix: String,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// The sandbox, or (with `RELAY_FIDELITY_TARGET=real`) the real cluster with a fresh namespace.
    pub async fn start() -> Result<Self, Error> {
        if is_real() {
            Self::real().await
        } else {
            Self::from_sandbox(Sandbox::start().await?)
        }
    }

    /// Wraps a sandbox started by the test (with options); its namespace is `default`.
    pub fn from_sandbox(sandbox: Sandbox) -> Result<Self, Error> {
        Ok(Self {
            client: sandbox.client()?,
            kubeconfig: sandbox.kubeconfig().to_path_buf(),
            namespace: "default".into(),
            suffix: String::new(),
            sandbox: Some(sandbox),
            _dir: None,
        })
    }

    async fn real() -> Result<Self, Error> {
        let source = std::env::var("KUBECONFIG").map_err(|_| {
            Error::BadRequest(format!(
                "{TARGET_ENV}=real needs KUBECONFIG: run `eval \"$(scripts/control-plane.sh env)\"` after `make cluster`"
            ))
        })?;
        let suffix = crate::store::new_uid()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        let namespace = format!("fidelity-{suffix}");
        let mut config = kube::config::Kubeconfig::read_from(&source)
            .map_err(|e| Error::BadRequest(format!("cannot read the kubeconfig {source}: {e}")))?;
        for context in &mut config.contexts {
            if let Some(context) = context.context.as_mut() {
                context.namespace = Some(namespace.clone());
            }
        }
        let dir = tempfile::tempdir()
            .map_err(|e| Error::Internal(format!("cannot create a temporary folder: {e}")))?;
        let kubeconfig = dir.path().join("kubeconfig");
        let text = serde_json::to_string(&config).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(&kubeconfig, text)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", kubeconfig.display())))?;
        let options = kube::config::KubeConfigOptions::default();
        let mut client_config = kube::Config::from_custom_kubeconfig(config, &options)
            .await
            .map_err(|e| {
                Error::BadRequest(format!("the kubeconfig {source} is not usable: {e}"))
            })?;
        client_config.default_namespace = namespace.clone();
        let client = kube::Client::try_from(client_config)
            .map_err(|e| Error::Internal(format!("cannot build a client: {e}")))?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        // cert-manager's webhook (part of `make cluster`) skips namespaces with this label: the
        // suites judge the API server, and the sandbox has no webhook unless a test adds one.
        let object: Namespace = serde_json::from_value(json!({"metadata": {
            "name": namespace,
            "labels": {"cert-manager.io/disable-validation": "true"},
        }}))
        .map_err(|e| Error::Internal(e.to_string()))?;
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .map_err(|e| Error::Internal(format!("cannot create namespace {namespace}: {e}")))?;
        Ok(Self {
            sandbox: None,
            client,
            kubeconfig,
            namespace,
            suffix,
            _dir: Some(dir),
        })
    }

    /// Whether this target is a real kube-apiserver.
    pub fn is_real(&self) -> bool {
        self.sandbox.is_none()
    }

    /// A client whose default namespace is [`Target::namespace`].
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig whose context's namespace is [`Target::namespace`].
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The namespace this test works in: `default` on the sandbox, a fresh one on a real cluster.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A cluster-scoped name for this test: `name` on the sandbox (a fresh server per test),
    /// `name-<suffix>` on a real cluster that every test shares.
    pub fn unique(&self, name: &str) -> String {
        if self.suffix.is_empty() {
            name.to_string()
        } else {
            format!("{name}-{}", self.suffix)
        }
    }

    /// The sandbox, when the target is one.
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// The sandbox for a test that needs one of its instruments; on a real target, prints
    /// `SANDBOX-ONLY <test>: <reason>` (what `make fidelity-real` counts) and gives `None`, and
    /// the test returns without running.
    pub fn sandbox_only(&self, test: &str, reason: &str) -> Option<&Sandbox> {
        if self.sandbox.is_none() {
            println!("SANDBOX-ONLY {test}: {reason}");
        }
        self.sandbox.as_ref()
    }

    /// Creates every CustomResourceDefinition in the YAML files of `dir` and waits until each is
    /// Established; returns their names.
    pub async fn load_crds(&self, dir: &Path) -> Result<Vec<String>, Error> {
        match &self.sandbox {
            Some(sandbox) => sandbox.load_crds(dir).await,
            None => {
                let mut names = Vec::new();
                for crd in crate::sandbox::read_crds(dir)? {
                    names.push(self.create_crd(crd).await?);
                }
                Ok(names)
            }
        }
    }

    /// Creates (or, on the sandbox, replaces) a CustomResourceDefinition; on a real cluster,
    /// keeps an existing one of that name and waits until it is Established. Returns its name.
    pub async fn create_crd(&self, crd: Value) -> Result<String, Error> {
        match &self.sandbox {
            Some(sandbox) => sandbox.create_crd(crd),
            None => self.create_real_crd(crd).await,
        }
    }

    async fn create_real_crd(&self, crd: Value) -> Result<String, Error> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let object: CustomResourceDefinition =
            serde_json::from_value(crd).map_err(|e| Error::BadRequest(e.to_string()))?;
        let name = object.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            // An existing CRD is kept: cert-manager's are the plane's own (never replaced by a
            // test's copy), and tests that create a CRD of one name create it alike.
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(Error::Internal(format!("cannot create CRD {name}: {e}"))),
        }
        // Wait on the server's own verdict; a CRD that never becomes Established fails here.
        for _ in 0..300 {
            let current = api
                .get(&name)
                .await
                .map_err(|e| Error::Internal(format!("cannot read CRD {name}: {e}")))?;
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return Ok(name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Internal(format!(
            "CRD {name} was not Established within 30 s"
        )))
    }
}
