//! cert-manager-sim: what cert-manager's webhook, approver and Certificate controller do, on a
//! `kube-sandbox`, for the tests of external issuers and their clients (and relay-tls's demo).
//! It knows nothing of relay-tls: it judges an issuer only by the CertificateRequests it
//! answers.
//!
//! - [`crds`]: cert-manager's own CRDs, from the pinned release's Go module.
//! - [`types`]: Rust types of cert-manager's kinds, generated from those CRDs (`build.rs`).
//! - [`webhook`]: the validating webhook's rules, as a sandbox admission hook.
//! - [`approver`]: the default approver (approve all, approve listed groups, deny all).
//! - [`csr`]: private keys and CSRs as the Certificate controller makes them.
//! - [`certificates`]: the Certificate controller (issue, complete, fail and back off, renew).
//! - [`renewal`], [`go_duration`]: cert-manager's renewal time and Go's durations, written
//!   independently of relay-issuer so that the simulator can judge the product;
//!   [`upstream_cases`]: cert-manager's and Go's test vectors for both, as data.

pub mod approver;
pub mod certificates;
pub mod crds;
pub mod csr;
pub mod go_duration;
pub mod renewal;
pub mod types;
pub mod upstream_cases;
pub mod webhook;

use kube_sandbox::{Error, Sandbox};

/// The API resource of a cert-manager.io/v1 kind (e.g. `CertificateRequest`,
/// `certificaterequests`).
pub fn resource(kind: &str, plural: &str) -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("cert-manager.io", "v1", kind),
        plural,
    )
}

/// The status condition of type `kind` on a cert-manager object, if present.
pub fn condition<'a>(object: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(serde_json::Value::as_str) == Some(kind))
}
use std::sync::Arc;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    /// The approver's behaviour.
    pub approver: approver::ApproverMode,
    /// Allow durations under cert-manager's 1 h minimum (rotation tests in seconds).
    pub relaxed: bool,
    /// Scale of cert-manager's failure backoff (1.0 = 1 h doubling to 32 h).
    pub backoff_scale: f64,
    /// How often the Certificate controller re-evaluates every Certificate.
    pub interval: std::time::Duration,
}

impl Default for SimulatorOptions {
    fn default() -> Self {
        Self {
            approver: approver::ApproverMode::ApproveAll,
            relaxed: false,
            backoff_scale: 1.0,
            interval: std::time::Duration::from_millis(200),
        }
    }
}

impl SimulatorOptions {
    /// For tests and the demo, where certificates live for seconds: every request approved,
    /// durations under cert-manager's minimum allowed, failure backoff scaled down a
    /// thousandfold, Certificates re-evaluated every 100 ms.
    pub fn fast() -> Self {
        Self {
            approver: approver::ApproverMode::ApproveAll,
            relaxed: true,
            backoff_scale: 0.001,
            interval: std::time::Duration::from_millis(100),
        }
    }
}

/// The running simulator; dropping it stops the approver and the controller.
pub struct Simulator {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Simulator {
    /// Registers cert-manager's CRDs (the pinned release's files, [`crds::cert_manager_crds`];
    /// any already present are kept), installs the webhook rules and starts the approver and
    /// the Certificate controller against `sandbox`.
    pub fn start(sandbox: &Sandbox, options: SimulatorOptions) -> Result<Self, Error> {
        for crd in kube_sandbox::read_crds(&crds::cert_manager_crds())? {
            let name = crd
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            if !sandbox.has_crd(&name) {
                sandbox.create_crd(crd)?;
            }
        }
        sandbox.add_admission(Arc::new(webhook::CertManagerWebhook {
            relaxed: options.relaxed,
        }));
        let client = sandbox.client()?;
        let approver_task = tokio::spawn({
            let client = client.clone();
            let mode = options.approver.clone();
            async move {
                if let Err(e) = approver::run(client, mode).await {
                    tracing::warn!(error = %e, "approver stopped");
                }
            }
        });
        let controller = certificates::Controller::new(client, options.backoff_scale);
        let controller_task = tokio::spawn(controller.run(options.interval));
        Ok(Self {
            tasks: vec![approver_task, controller_task],
        })
    }
}
