//! The CertificateRequest reconciler: reads the request, asks `decide` what to do, signs through
//! the issuer's `Signer` (local CA or relay server) when the request is approved and the
//! signer's check passes, and applies the result
//! (server-side apply of `status` with only the `Ready` condition, under a fixed field
//! manager), then publishes the event `decide` chose.
//!
//! What does not live here: any decision (see `decide`) and the watches (see `run`).

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use super::Context;
use super::decide::{
    self, IssuerRef, Outcome, Route, Step, issuer_missing_message, issuer_not_ready_message,
    unknown_kind_message,
};
use super::signer::{self, SignInput};
use crate::Error;
use crate::api::{RelayClusterIssuer, RelayIssuer};
use crate::cert_manager::types::CertificateRequest;

/// Reconciles one CertificateRequest.
#[tracing::instrument(skip_all, fields(namespace = %request.namespace().unwrap_or_default(), name = %request.name_any()))]
pub async fn reconcile(
    request: Arc<CertificateRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let uid = request.uid().unwrap_or_default();
    let issuer_ref = &request.spec.issuer_ref;
    let route = decide::route(
        issuer_ref.group.as_deref(),
        issuer_ref.kind.as_deref(),
        &issuer_ref.name,
        &namespace,
    );
    if route == Route::NotOurs {
        return Ok(Action::await_change());
    }
    if !ctx.leadership.is_leader() {
        // A replica that lost the Lease writes nothing; the new leader takes over.
        return Ok(Action::await_change());
    }
    let Some(_in_flight) = ctx.enter() else {
        return Ok(Action::await_change());
    };

    let step = decide::next_step(request.status.as_ref());
    let outcome = match step {
        Step::Finished => {
            ctx.forget(&uid);
            return Ok(Action::await_change());
        }
        Step::WaitForApproval => Outcome::WaitingForApproval,
        Step::Deny { approver_message } => Outcome::Denied { approver_message },
        Step::Sign => match &route {
            Route::Issuer(issuer) => match sign(&request, &uid, issuer, &ctx).await {
                Some(outcome) => outcome,
                // Too little leadership left to sign and record: leave it to the next term.
                None => return Ok(Action::requeue(super::SIGN_MARGIN)),
            },
            Route::UnknownKind(kind) => Outcome::Failed {
                message: unknown_kind_message(kind),
            },
            Route::NotOurs => return Ok(Action::await_change()),
        },
    };

    if outcome == Outcome::WaitingForApproval {
        // As cert-manager's own issuers do: no status write while unapproved (the approver's
        // write is what moves the request on), and the event once per request.
        if ctx.first_wait(&uid) {
            let change =
                decide::status_change(&outcome, request.status.as_ref(), OffsetDateTime::now_utc());
            if let Some(event) = change.event {
                ctx.publish_event(&request, event);
            }
            ctx.metrics.count_outcome(outcome.metric_label());
        }
        return Ok(Action::await_change());
    }

    let now = OffsetDateTime::now_utc();
    let change = decide::status_change(&outcome, request.status.as_ref(), now);
    if change.changes_anything {
        // A certificate signed while leading is always recorded (signing left enough
        // leadership for this write); anything else is written only while still leading.
        let signed_here = matches!(outcome, Outcome::Issued { .. });
        if !signed_here && !ctx.leadership.is_leader() {
            return Ok(Action::await_change());
        }
        let api: Api<CertificateRequest> = Api::namespaced(ctx.client.clone(), &namespace);
        match crate::k8s::apply_status(&api, &name, super::decide::FIELD_MANAGER, &change.status)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                debug!("the request was deleted while being reconciled");
                ctx.forget(&uid);
                return Ok(Action::await_change());
            }
            Err(error) => {
                return Err(Error::kube(
                    format!("write the status of CertificateRequest {namespace}/{name}"),
                    error,
                ));
            }
        }
        // A reconcile that saw the request from before our first write (watch lag) re-applies
        // the same certificate: the write is idempotent, but the outcome is counted and
        // announced once per request.
        if !(signed_here && ctx.issued_recorded(&uid)) {
            ctx.metrics.count_outcome(outcome.metric_label());
            if let Some(event) = change.event {
                ctx.publish_event(&request, event);
            }
        }
        if signed_here {
            ctx.mark_issued_recorded(&uid);
        }
    }

    match &outcome {
        Outcome::Issued { summary, .. } => {
            info!(%summary, "certificate issued");
            // The signed certificate stays remembered until the request is seen finished: a
            // reconcile that still sees the request as it was before our write (watch lag)
            // re-applies the same certificate instead of signing again.
            ctx.forget_attempts(&uid);
            Ok(Action::await_change())
        }
        Outcome::Pending { message } => {
            let wait = ctx.next_backoff(&uid);
            debug!(%message, retry_in = ?wait, "pending");
            Ok(Action::requeue(wait))
        }
        Outcome::Failed { message } => {
            warn!(%message, "request failed");
            ctx.forget(&uid);
            Ok(Action::await_change())
        }
        Outcome::Denied { .. } | Outcome::WaitingForApproval => {
            ctx.forget(&uid);
            Ok(Action::await_change())
        }
    }
}

/// Signs an approved request through the issuer's [`Signer`], or says why not. A certificate
/// signed earlier whose status write failed is reused, so a retry never signs twice. `None`:
/// this replica has too little leadership left to sign and record a certificate now.
async fn sign(
    request: &CertificateRequest,
    uid: &str,
    issuer: &IssuerRef,
    ctx: &Context,
) -> Option<Outcome> {
    if let Some(issued) = ctx.signed_but_unrecorded(uid) {
        return Some(issued);
    }
    let settings = match issuer {
        IssuerRef::Namespaced { namespace, name } => ctx
            .issuers
            .get(&ObjectRef::<RelayIssuer>::new(name).within(namespace))
            .map(|i| i.spec.settings()),
        IssuerRef::Cluster { name } => ctx
            .cluster_issuers
            .get(&ObjectRef::<RelayClusterIssuer>::new(name))
            .map(|i| i.spec.settings()),
    };
    let Some(settings) = settings else {
        return Some(Outcome::Pending {
            message: issuer_missing_message(issuer),
        });
    };
    let signer = match signer::check(issuer, &settings, ctx, OffsetDateTime::now_utc()).await {
        Ok(Ok(signer)) => signer,
        Ok(Err(not_ready)) => {
            return Some(Outcome::Pending {
                message: issuer_not_ready_message(issuer, &not_ready),
            });
        }
        Err(error) => return Some(Outcome::from_sign_error(&error)),
    };
    let input = match SignInput::of(request) {
        Ok(input) => input,
        Err(error) => return Some(Outcome::from_sign_error(&error)),
    };
    if !ctx.leadership.leads_for_at_least(super::SIGN_MARGIN) {
        return None;
    }
    let started = Instant::now();
    let outcome = signer.sign(&input, OffsetDateTime::now_utc()).await;
    ctx.metrics
        .signing_seconds
        .observe(started.elapsed().as_secs_f64());
    if matches!(outcome, Outcome::Issued { .. }) {
        ctx.metrics.signatures.inc();
        ctx.remember_signed(uid, outcome.clone());
    }
    Some(outcome)
}
