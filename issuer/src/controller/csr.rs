//! The signer for the Kubernetes CSR API: reconciles `certificates.k8s.io/v1`
//! CertificateSigningRequests whose `spec.signerName` is `relaytls.dev/agent` (the watch asks
//! for those only). Once a request is approved (`kubectl certificate approve`), it is signed
//! with `relay-tls-signing-secret` of the cluster resource namespace and `status.certificate`
//! gets the leaf followed by its intermediates; a request that breaks a rule gets a `Failed`
//! condition with the reason.
//!
//! Glue only: the decision is `csr_rules::csr_step`, the signing `pki::sign`. Status writes are
//! JSON patches that test the resourceVersion the decision was made on, so a reconcile that saw
//! an old version (watch lag) never writes over a newer status.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use time::OffsetDateTime;
use tracing::{info, warn};

use super::Context;
use super::csr_rules::{CsrFacts, CsrStep, csr_step};
use super::decide::SecretLocation;
use crate::Error;
use crate::api::KIND_CLUSTER_ISSUER;
use crate::pki::{self, SignRequest, SigningPolicy};

/// How soon a request is looked at again while the signing CA is not usable.
const CA_RETRY: StdDuration = StdDuration::from_secs(30);

fn condition_true(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == kind && c.status == "True")
        })
}

/// Signs or fails one CertificateSigningRequest of our signer.
pub async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Some(_in_flight) = ctx.enter() else {
        return Ok(Action::await_change());
    };
    let name = csr.name_any();
    let span = tracing::info_span!("certificatesigningrequest", name = %name);
    let _entered = span.enter();
    let usages = csr.spec.usages.clone().unwrap_or_default();
    let facts = CsrFacts {
        signer_name: &csr.spec.signer_name,
        approved: condition_true(&csr, "Approved"),
        denied: condition_true(&csr, "Denied"),
        failed: condition_true(&csr, "Failed"),
        issued: csr
            .status
            .as_ref()
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty()),
        request_pem: &csr.spec.request.0,
        usages: &usages,
        expiration_seconds: csr.spec.expiration_seconds,
    };
    let now = OffsetDateTime::now_utc();
    let (usages, duration) = match csr_step(&facts, &ctx.settings.trust_domain) {
        CsrStep::Skip | CsrStep::AwaitApproval => return Ok(Action::await_change()),
        CsrStep::Fail { reason, message } => {
            return fail(&ctx, &csr, reason, &message, now).await;
        }
        CsrStep::Sign {
            usages, duration, ..
        } => (usages, duration),
    };
    let location = SecretLocation {
        issuer_kind: KIND_CLUSTER_ISSUER,
        namespace: &ctx.settings.cluster_resource_namespace,
        name: &ctx.settings.csr_signing_secret,
    };
    let ca = match ctx.signing_ca(location).await {
        Ok(ca) => ca,
        Err(not_ready) => {
            warn!(
                reason = not_ready.reason,
                "cannot sign CertificateSigningRequest {name} yet: {}; retrying in {CA_RETRY:?}",
                not_ready.message
            );
            return Ok(Action::requeue(CA_RETRY));
        }
    };
    if !ctx.leadership.leads_for_at_least(super::SIGN_MARGIN) {
        return Ok(Action::requeue(super::SIGN_MARGIN));
    }
    let policy = SigningPolicy {
        backdate: ctx.settings.backdate,
        ..SigningPolicy::default()
    };
    let request = SignRequest {
        csr_pem: &csr.spec.request.0,
        duration: Some(duration),
        is_ca: false,
        usages: &usages,
    };
    match pki::sign(&ca, &request, &policy, now) {
        Ok(issued) => {
            let certificate =
                base64::engine::general_purpose::STANDARD.encode(issued.chain_pem.as_bytes());
            let written = write_status(
                &ctx,
                &csr,
                serde_json::json!({"op": "add", "path": "/status/certificate", "value": certificate}),
            )
            .await?;
            if written {
                ctx.metrics.signatures.inc();
                ctx.metrics.csr_outcome("issued");
                info!(serial = %issued.serial, not_after = %pki::format_time(issued.not_after), "signed CertificateSigningRequest {name}: {}", issued.summary());
            }
            Ok(Action::await_change())
        }
        Err(error) if error.is_request_fault() => {
            fail(&ctx, &csr, "SigningRefused", &error.to_string(), now).await
        }
        Err(error) => Err(Error::Pki(error)),
    }
}

async fn fail(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    reason: &str,
    message: &str,
    now: OffsetDateTime,
) -> Result<Action, Error> {
    let at = pki::format_time(now);
    let condition = serde_json::json!({
        "type": "Failed", "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": at, "lastTransitionTime": at,
    });
    let has_conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some();
    let operation = if has_conditions {
        serde_json::json!({"op": "add", "path": "/status/conditions/-", "value": condition})
    } else {
        serde_json::json!({"op": "add", "path": "/status/conditions", "value": [condition]})
    };
    if write_status(ctx, csr, operation).await? {
        ctx.metrics.csr_outcome("failed");
        warn!(
            reason,
            "CertificateSigningRequest {} failed: {message}",
            csr.name_any()
        );
    }
    Ok(Action::await_change())
}

/// Applies `operation` to the status of `csr`, only on the version judged. False when the
/// request changed meanwhile (the next reconcile sees the change) or is gone.
async fn write_status(
    ctx: &Context,
    csr: &CertificateSigningRequest,
    operation: serde_json::Value,
) -> Result<bool, Error> {
    let name = csr.name_any();
    let version = csr.resource_version().unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        operation,
    ]))
    .map_err(|e| Error::InvalidArgument(format!("building the status patch: {e}")))?;
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let params = PatchParams {
        field_manager: Some(ctx.settings.reporter.clone()),
        ..PatchParams::default()
    };
    match api
        .patch_status(&name, &params, &Patch::<()>::Json(patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409 | 422) => Ok(false),
        Err(error) => Err(Error::kube(
            format!("write the status of CertificateSigningRequest {name}"),
            error,
        )),
    }
}
