//! The issuer reconciler (both `RelayIssuer` and `RelayClusterIssuer`): runs the `Signer` check
//! (the signing CA through the cache, or the relay Secrets), asks `decide` whether the issuer is
//! Ready, applies the `Ready` condition
//! when it changed, keeps the readiness and CA-expiry metrics, and re-queues itself for the
//! moment readiness changes by the clock alone (CA expiry warning, expiry).
//!
//! What does not live here: the readiness rules (`decide`) and the watches (`run`).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tracing::info;

use super::Context;
use super::decide::{CaFacts, IssuerRef, SecretLocation, issuer_condition, next_readiness_change};
use super::metrics::IssuerLabels;
use super::signer::{self, Signer};
use crate::Error;
use crate::api::{IssuerSettings, IssuerStatus, RelayClusterIssuer, RelayIssuer};

/// Re-check an issuer at least this often even if nothing changes.
const RECHECK: StdDuration = StdDuration::from_secs(3600);

/// What the reconciler needs from either issuer kind.
pub trait IssuerObject:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static
{
    /// Which issuer this is.
    fn issuer_ref(&self) -> IssuerRef;
    /// Its settings.
    fn settings(&self) -> IssuerSettings;
    /// Its status.
    fn issuer_status(&self) -> Option<&IssuerStatus>;
    /// The API to patch it through.
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

impl IssuerObject for RelayIssuer {
    fn issuer_ref(&self) -> IssuerRef {
        IssuerRef::Namespaced {
            namespace: self.namespace().unwrap_or_default(),
            name: self.name_any(),
        }
    }
    fn settings(&self) -> IssuerSettings {
        self.spec.settings()
    }
    fn issuer_status(&self) -> Option<&IssuerStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl IssuerObject for RelayClusterIssuer {
    fn issuer_ref(&self) -> IssuerRef {
        IssuerRef::Cluster {
            name: self.name_any(),
        }
    }
    fn settings(&self) -> IssuerSettings {
        self.spec.settings()
    }
    fn issuer_status(&self) -> Option<&IssuerStatus> {
        self.status.as_ref()
    }
    fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// The metric labels of an issuer.
pub fn labels(issuer: &IssuerRef) -> IssuerLabels {
    IssuerLabels {
        kind: issuer.kind().to_string(),
        namespace: match issuer {
            IssuerRef::Namespaced { namespace, .. } => namespace.clone(),
            IssuerRef::Cluster { .. } => String::new(),
        },
        name: issuer.name().to_string(),
    }
}

/// Reconciles one issuer of either kind.
#[tracing::instrument(skip_all, fields(kind = %K::kind(&()), namespace = %issuer.namespace().unwrap_or_default(), name = %issuer.name_any()))]
pub async fn reconcile<K: IssuerObject>(
    issuer: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let issuer_ref = issuer.issuer_ref();
    let settings = issuer.settings();
    let location = SecretLocation {
        issuer_kind: issuer_ref.kind(),
        namespace: issuer_ref.secret_namespace(&ctx.settings.cluster_resource_namespace),
        name: &settings.secret_name,
    };
    let now = OffsetDateTime::now_utc();
    let checked = signer::check(&issuer_ref, &settings, &ctx, now).await?;
    let state = signer::readiness(checked.as_ref(), location, now);
    let ca = checked.as_ref().ok().and_then(Signer::local_ca);

    let labels = labels(&issuer_ref);
    ctx.metrics
        .issuer_ready
        .get_or_create(&labels)
        .set(i64::from(state.ready));
    ctx.metrics
        .ca_expiring_soon
        .get_or_create(&labels)
        .set(i64::from(state.expiring_soon));
    if let Some(ca) = ca {
        ctx.metrics
            .ca_expiry
            .get_or_create(&labels)
            .set(ca.not_after().unix_timestamp());
    }

    let previous = issuer
        .issuer_status()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let generation = issuer.meta().generation;
    let condition = issuer_condition(&state, previous, generation, now);
    let unchanged = previous.is_some_and(|p| {
        p.status == condition.status
            && p.reason == condition.reason
            && p.message == condition.message
            && p.observed_generation == condition.observed_generation
    });
    if !unchanged {
        let api = K::api(ctx.client.clone(), issuer.namespace().as_deref());
        let status = IssuerStatus {
            conditions: vec![condition],
        };
        match crate::k8s::apply_status(
            &api,
            &issuer.name_any(),
            super::decide::FIELD_MANAGER,
            &status,
        )
        .await
        {
            Ok(true) => {
                info!(
                    ready = state.ready,
                    reason = state.reason,
                    "issuer status updated"
                );
            }
            Ok(false) => return Ok(Action::await_change()),
            Err(error) => {
                return Err(Error::kube(
                    format!("write the status of {issuer_ref}"),
                    error,
                ));
            }
        }
    }

    let next = ca
        .as_ref()
        .and_then(|ca| next_readiness_change(CaFacts::from(*ca), now))
        .map(|at| StdDuration::from_secs((at - now).whole_seconds().max(1) as u64))
        .map_or(RECHECK, |wait| wait.min(RECHECK));
    Ok(Action::requeue(next))
}
