//! cert-manager's approver: approves (or denies) CertificateRequests as soon as they appear.
//!
//! [`decide`] is the pure rule; [`run`] watches CertificateRequests and writes the condition
//! exactly as cert-manager's default approver does (reason `cert-manager.io`, message
//! "Certificate request has been approved by cert-manager.io").

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use kube_sandbox::Error;
use serde_json::{Value, json};

/// How the approver behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverMode {
    /// Approve every request (cert-manager's default approver with RBAC for every signer).
    ApproveAll,
    /// Approve only requests whose `spec.issuerRef.group` is listed; leave the others alone
    /// (models an external issuer whose approve RBAC is missing).
    ApproveGroups(Vec<String>),
    /// Deny every request.
    DenyAll,
}

impl std::str::FromStr for ApproverMode {
    type Err = Error;

    /// `approve-all`, `deny-all`, or `groups:G1,G2` (approve only those issuer groups).
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "approve-all" => Ok(ApproverMode::ApproveAll),
            "deny-all" => Ok(ApproverMode::DenyAll),
            other => match other.strip_prefix("groups:") {
                Some(groups) if !groups.is_empty() => Ok(ApproverMode::ApproveGroups(
                    groups.split(',').map(str::to_string).collect(),
                )),
                _ => Err(Error::BadRequest(format!(
                    "the approver mode must be approve-all, deny-all or groups:G1,G2 (got {other:?})"
                ))),
            },
        }
    }
}

/// What the approver does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write `Approved=True`.
    Approve,
    /// Write `Denied=True`.
    Deny,
}

/// The approval message cert-manager writes.
pub const APPROVED_MESSAGE: &str = "Certificate request has been approved by cert-manager.io";
/// The denial message the simulator writes.
pub const DENIED_MESSAGE: &str = "Certificate request has been denied by cert-manager.io";

/// Whether (and how) to approve this request: nothing when already decided or not ours to decide.
pub fn decide(mode: &ApproverMode, request: &Value) -> Option<Decision> {
    let decided = request
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter().any(|c| {
                matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("Approved" | "Denied")
                )
            })
        });
    if decided {
        return None;
    }
    let group = request
        .pointer("/spec/issuerRef/group")
        .and_then(Value::as_str)
        .unwrap_or("cert-manager.io");
    match mode {
        ApproverMode::ApproveAll => Some(Decision::Approve),
        ApproverMode::ApproveGroups(groups) => groups
            .iter()
            .any(|g| g == group)
            .then_some(Decision::Approve),
        ApproverMode::DenyAll => Some(Decision::Deny),
    }
}

/// The status condition for a decision.
pub fn condition(decision: &Decision, now: &str) -> Value {
    match decision {
        Decision::Approve => {
            json!({"type": "Approved", "status": "True", "reason": "cert-manager.io", "message": APPROVED_MESSAGE, "lastTransitionTime": now})
        }
        Decision::Deny => {
            json!({"type": "Denied", "status": "True", "reason": "cert-manager.io", "message": DENIED_MESSAGE, "lastTransitionTime": now})
        }
    }
}

/// The CertificateRequest API for a client.
pub fn requests_api(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client,
        &super::resource("CertificateRequest", "certificaterequests"),
    )
}

/// How many approvals are written at once (cert-manager runs its controllers with several
/// workers; one at a time would make the approver the bottleneck of any burst).
const WORKERS: usize = 16;

/// Watches every CertificateRequest and approves or denies per `mode`, until the stream ends.
pub async fn run(client: kube::Client, mode: ApproverMode) -> Result<(), Error> {
    use futures::StreamExt;
    let api = requests_api(client.clone());
    let events = watcher(api, watcher::Config::default()).filter_map(|event| async move {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => Some(o),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "approver watch error; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                None
            }
        }
    });
    events
        .for_each_concurrent(WORKERS, |object| {
            let client = client.clone();
            let mode = mode.clone();
            async move { approve(client, &mode, object).await }
        })
        .await;
    Ok(())
}

/// Writes the approver's decision on one request, if it has one to make.
async fn approve(client: kube::Client, mode: &ApproverMode, object: DynamicObject) {
    let value = serde_json::to_value(&object).unwrap_or(Value::Null);
    let Some(decision) = decide(mode, &value) else {
        return;
    };
    let (Some(ns), Some(name)) = (
        object.metadata.namespace.clone(),
        object.metadata.name.clone(),
    ) else {
        return;
    };
    let mut conditions = value
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.push(condition(&decision, &kube_sandbox::now_rfc3339()));
    let namespaced = Api::<DynamicObject>::namespaced_with(
        client,
        &ns,
        &super::resource("CertificateRequest", "certificaterequests"),
    );
    // The approver updates status with the whole list, keeping other conditions, guarded by
    // the resourceVersion it read (a conflict means someone else wrote; the watch retries).
    let patch = json!({"metadata": {"resourceVersion": object.metadata.resource_version}, "status": {"conditions": conditions}});
    let params = PatchParams {
        field_manager: Some("cert-manager-approver".into()),
        ..PatchParams::default()
    };
    if let Err(e) = namespaced
        .patch_status(&name, &params, &Patch::Merge(patch))
        .await
    {
        tracing::debug!(error = %e, request = %name, "approval write failed; the next event retries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(group: &str, conditions: Value) -> Value {
        json!({"spec": {"issuerRef": {"name": "x", "kind": "RelayIssuer", "group": group}}, "status": {"conditions": conditions}})
    }

    #[test]
    fn modes_decide_as_cert_manager_would() {
        let fresh = request("relaytls.dev", json!([]));
        assert_eq!(
            decide(&ApproverMode::ApproveAll, &fresh),
            Some(Decision::Approve)
        );
        assert_eq!(decide(&ApproverMode::DenyAll, &fresh), Some(Decision::Deny));
        assert_eq!(
            decide(
                &ApproverMode::ApproveGroups(vec!["cert-manager.io".into()]),
                &fresh
            ),
            None
        );
        assert_eq!(
            decide(
                &ApproverMode::ApproveGroups(vec!["relaytls.dev".into()]),
                &fresh
            ),
            Some(Decision::Approve)
        );
    }

    #[test]
    fn modes_parse_from_flags() {
        assert_eq!(
            "approve-all".parse::<ApproverMode>().unwrap(),
            ApproverMode::ApproveAll
        );
        assert_eq!(
            "deny-all".parse::<ApproverMode>().unwrap(),
            ApproverMode::DenyAll
        );
        assert_eq!(
            "groups:a.io,b.io".parse::<ApproverMode>().unwrap(),
            ApproverMode::ApproveGroups(vec!["a.io".into(), "b.io".into()])
        );
        assert!("groups:".parse::<ApproverMode>().is_err());
        assert!(
            "maybe"
                .parse::<ApproverMode>()
                .unwrap_err()
                .to_string()
                .contains("approve-all")
        );
    }

    #[test]
    fn decided_requests_are_left_alone() {
        let approved = request(
            "relaytls.dev",
            json!([{"type": "Approved", "status": "True"}]),
        );
        assert_eq!(decide(&ApproverMode::DenyAll, &approved), None);
        let denied = request(
            "relaytls.dev",
            json!([{"type": "Denied", "status": "True"}]),
        );
        assert_eq!(decide(&ApproverMode::ApproveAll, &denied), None);
    }

    #[test]
    fn the_condition_is_cert_managers() {
        let c = condition(&Decision::Approve, "2026-11-28T00:00:00Z");
        assert_eq!(c["reason"], "cert-manager.io");
        assert_eq!(c["message"], APPROVED_MESSAGE);
    }
}
